"""Flux points: Gammapy 2.1's ``FluxPointsEstimator``.

In each energy group the source's spectrum is scaled by a free ``norm`` (the reference model being
the source's spectrum) while every other parameter stays at its value. With the other models
fixed, each dataset's prediction is linear in ``norm``: ``npred = other + norm * source`` (Cash,
clipped at 0 as Gammapy's ``npred``) or ``mu_sig = other_signal + norm * source`` (WStat). The
estimator therefore precomputes the two predictions once per dataset and fits every energy group
at the same time: the statistic of all groups is one JAX function of the vector of norms (one per
group; its Hessian is diagonal), minimised by a safeguarded Newton iteration, and the errors,
upper limits and profiles are vectorised root searches and evaluations of that function.

``norm_err`` is ``n_sigma * sqrt(2 / F'')`` from the exact second derivative (Gammapy: Minuit's
covariance), ``norm_errn``/``norm_errp`` and ``norm_ul`` are where the statistic rises by
``n_sigma^2`` / ``n_sigma_ul^2`` (Gammapy: ``brentq`` on the profile), ``ts = F(0) - F(norm)``.

With ``reoptimize=True`` the other models' free parameters are fitted in each group as well: one
:func:`jaxgamma.fit` per group on the datasets' bins of that group (the same compiled program for
every group), the profile-likelihood functions for the errors, upper limits and profiles.
"""

from __future__ import annotations

import warnings
from typing import Any

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from ..datasets.flux_points import FluxPoints
from ..datasets.map import MapDataset, MapDatasetOnOff
from ..datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from ..geom import MapAxis
from ..geom.axes import snapped_edge_indices
from ..stats import bisect_roots, cash, wstat, wstat_npred_background

__all__ = ["FluxPointsEstimator"]

_SELECTION_OPTIONAL = ("errn-errp", "ul", "scan", "sensitivity")
_CASH = (MapDataset, SpectrumDataset)
_WSTAT = (MapDatasetOnOff, SpectrumDatasetOnOff)


def _energy_axis(dataset: Any) -> MapAxis:
    if isinstance(dataset, (MapDataset, MapDatasetOnOff)):
        return dataset.geom.axis("energy")
    return MapAxis.from_edges(
        np.asarray(dataset.energy_edges, dtype=np.float64), name="energy", unit="TeV", interp="log"
    )


def _group_bins(axis: MapAxis, energy_min: float, energy_max: float) -> tuple[int, int] | None:
    """The reconstructed bins ``[i, j]`` of Gammapy's ``slice_by_energy`` (``group_table`` with two
    edges, rounding in pixel coordinates); None when the range does not overlap the axis."""
    idx = snapped_edge_indices(axis, [energy_min, energy_max])
    if idx.size < 2:
        return None
    return int(idx[0]), int(idx[1]) - 1


def _aligned(axis: MapAxis, other: MapAxis, atol: float = 2e-2) -> bool:
    """Gammapy's ``MapAxis.is_aligned``: the centres of each axis fall on (integer) centres of the
    other, within ``atol`` bins, and the interpolations agree."""
    pix = np.append(axis.coord_to_pix(other.center), other.coord_to_pix(axis.center))
    return bool(np.allclose(np.round(pix) - pix, 0, atol=atol)) and axis.interp == other.interp


class _Terms:
    """One dataset's statistic as a function of the group norms, over its bins inside ``mask``:
    flat arrays (numpy, moved to JAX when evaluated) and the group of each bin."""

    def __init__(self, dataset: Any, source: Any, others: Any, groups: np.ndarray):
        mask = dataset.mask
        mask = np.ones(np.shape(dataset.counts), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        # groups: the group index of each reconstructed energy bin (-1 outside every group)
        bin_group = np.broadcast_to(groups.reshape((-1,) + (1,) * (mask.ndim - 1)), mask.shape)
        self.keep = mask & (bin_group >= 0)
        self.group = bin_group[self.keep].astype(np.int32)
        self.counts = np.asarray(dataset.counts, dtype=np.float64)[self.keep]
        self.source = np.asarray(dataset.npred_signal(source), dtype=np.float64)[self.keep]
        self.wstat = isinstance(dataset, _WSTAT)
        if self.wstat:
            self.other = np.asarray(dataset.npred_signal(others), dtype=np.float64)[self.keep]
            self.counts_off = np.asarray(dataset.counts_off, dtype=np.float64)[self.keep]
            alpha = np.broadcast_to(np.asarray(dataset.alpha, dtype=np.float64), mask.shape)
            self.alpha = alpha[self.keep]
        else:
            # unclipped: Gammapy clips the total prediction at 0, not the part without the source
            other = np.asarray(dataset.npred_signal(others), dtype=np.float64) + np.asarray(
                dataset.npred_background(others), dtype=np.float64
            )
            self.other = other[self.keep]
            self.counts_off = self.alpha = np.zeros(0)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.group, self.counts, self.other, self.source, self.counts_off, self.alpha)


def _as_datasets(datasets: Any) -> Any:
    """A Datasets from one dataset, a list / tuple of them or a Datasets."""
    from ..datasets import Datasets

    if isinstance(datasets, Datasets):
        return datasets
    return Datasets(list(datasets) if isinstance(datasets, (list, tuple)) else [datasets])


def _has_free(models: Any) -> bool:
    from ..parameters import ParameterVector

    return bool(ParameterVector.from_tree(models).names)


def _stat_per_group(
    norms: jax.Array, terms: tuple[tuple[jax.Array, ...], ...], kinds: tuple[bool, ...], n_groups: int
) -> jax.Array:
    """The statistic of each group at its own norm, summed over the datasets."""
    total = jnp.zeros(n_groups)
    for (group, counts, other, source, counts_off, alpha), is_wstat in zip(terms, kinds, strict=True):
        norm = norms[group]
        if is_wstat:
            per_bin = wstat(counts, counts_off, alpha, other + norm * source)
        else:
            mu = other + norm * source
            per_bin = cash(counts, jnp.where(mu < 0, 0.0, mu))
        total = total + jax.ops.segment_sum(per_bin, group, num_segments=n_groups)
    return total


def _derivatives(
    norms: jax.Array, terms: Any, kinds: tuple[bool, ...], n_groups: int
) -> tuple[jax.Array, ...]:
    """Value, first and second derivatives of each group's statistic in its norm (the groups are
    independent: the gradient and the Hessian-vector product with ones are per group)."""

    def total(x: jax.Array) -> jax.Array:
        return jnp.sum(_stat_per_group(x, terms, kinds, n_groups))

    value = _stat_per_group(norms, terms, kinds, n_groups)
    grad, hess = jax.jvp(jax.grad(total), (norms,), (jnp.ones_like(norms),))
    return value, grad, hess


def _asimov_ts_per_group(
    norms: jax.Array, terms: tuple[tuple[jax.Array, ...], ...], kinds: tuple[bool, ...], n_groups: int
) -> jax.Array:
    """Gammapy's ``ts_asimov`` of each group at its own norm: counts = the prediction at the norm
    (WStat: with the background profiled on the real counts, as Gammapy's ``npred``), the
    statistic at norm 0 minus at the norm."""
    total = jnp.zeros(n_groups)
    for (group, counts, other, source, counts_off, alpha), is_wstat in zip(terms, kinds, strict=True):
        norm = norms[group]
        if is_wstat:
            mu_sig = other + norm * source
            asimov = mu_sig + wstat_npred_background(counts, counts_off, alpha, mu_sig)
            asimov = jnp.nan_to_num(jnp.where(asimov < 0, 0.0, asimov), nan=0.0, posinf=0.0, neginf=0.0)
            per_bin = wstat(asimov, counts_off, alpha, other) - wstat(asimov, counts_off, alpha, mu_sig)
        else:
            mu = other + norm * source
            asimov = jnp.nan_to_num(jnp.where(mu < 0, 0.0, mu), nan=0.0, posinf=0.0, neginf=0.0)
            per_bin = cash(asimov, jnp.where(other < 0, 0.0, other)) - cash(asimov, asimov)
        total = total + jax.ops.segment_sum(per_bin, group, num_segments=n_groups)
    return total


_stat_jit = jax.jit(_stat_per_group, static_argnames=("kinds", "n_groups"))
_asimov_jit = jax.jit(_asimov_ts_per_group, static_argnames=("kinds", "n_groups"))
_asimov_grid_jit = jax.jit(
    jax.vmap(_asimov_ts_per_group, in_axes=(1, None, None, None), out_axes=1), static_argnames=("kinds", "n_groups")
)
_derivatives_jit = jax.jit(_derivatives, static_argnames=("kinds", "n_groups"))


class FluxPointsEstimator:
    """Flux points of one source in energy groups (Gammapy's ``FluxPointsEstimator``).

    Parameters
    ----------
    source : str or int
        The source (name or index in the models).
    energy_edges : Quantity or array (TeV)
        Edges of the flux points (snapped to each dataset's reconstructed edges). Default 1, 10 TeV.
    n_sigma, n_sigma_ul, n_sigma_sensitivity : float
        Confidence levels of the errors and of the upper limits; significance of the sensitivity.
    selection_optional : list of str or "all", optional
        Any of "errn-errp", "ul", "scan", "sensitivity" ("all": the four). The sensitivity is the
        norm whose Asimov dataset (counts = prediction) reaches ``n_sigma_sensitivity`` against norm
        0 (Gammapy's ``ParameterSensitivityEstimator``), solved exactly where Gammapy stops at 1 %.
    norm : dict, optional
        Scan settings of the norm: ``scan_min`` (0.2), ``scan_max`` (5), ``scan_n_values`` (11),
        or ``scan_values``.
    allow_multiple_telescopes : bool
        Datasets whose ``meta_table`` name different ``TELESCOP`` values are refused unless True
        (Gammapy's experimental option).
    reoptimize : bool
        False (default): every other parameter stays at its value and all groups are fitted at
        once. True: in each group the free parameters of the other models are fitted together
        with the norm (the source's own parameters stay frozen), the TS with them re-fitted at norm
        0, and errn/errp, UL and profiles come from the profile likelihood
        (:func:`jaxgamma.confidence`, :func:`jaxgamma.stat_profile`), as Gammapy.
    """

    tag = "FluxPointsEstimator"

    def __init__(
        self,
        source: Any = 0,
        energy_edges: Any = (1.0, 10.0),
        n_sigma: float = 1,
        n_sigma_ul: float = 2,
        selection_optional: Any = None,
        norm: dict[str, Any] | None = None,
        n_sigma_sensitivity: float = 5,
        reoptimize: bool = False,
        allow_multiple_telescopes: bool = False,
    ):
        self.source = source
        self.reoptimize = bool(reoptimize)
        self.allow_multiple_telescopes = bool(allow_multiple_telescopes)
        edges = np.atleast_1d(np.asarray(u.Quantity(energy_edges, "TeV").to_value("TeV"), dtype=np.float64))
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0) or not np.all(edges > 0):
            raise ValueError(
                f"FluxPointsEstimator: energy_edges must be >= 2 increasing positive energies, got {energy_edges!r}"
            )
        self.energy_edges = edges
        for label, value in (("n_sigma", n_sigma), ("n_sigma_ul", n_sigma_ul), ("n_sigma_sensitivity", n_sigma_sensitivity)):
            if not float(value) > 0:
                raise ValueError(f"FluxPointsEstimator: {label} must be > 0, got {value}")
        self.n_sigma = float(n_sigma)
        self.n_sigma_ul = float(n_sigma_ul)
        self.n_sigma_sensitivity = float(n_sigma_sensitivity)
        if selection_optional is None:
            selection = []
        elif selection_optional == "all":
            selection = list(_SELECTION_OPTIONAL)
        else:
            selection = (
                [selection_optional] if isinstance(selection_optional, str) else list(selection_optional)
            )
        unknown = sorted(set(selection) - set(_SELECTION_OPTIONAL))
        if unknown:
            raise ValueError(
                f"FluxPointsEstimator: unknown selection_optional {unknown}; choose from {list(_SELECTION_OPTIONAL)}"
            )
        self.selection_optional = selection
        norm = dict(norm or {})
        unknown = sorted(set(norm) - {"scan_min", "scan_max", "scan_n_values", "scan_values"})
        if unknown:
            raise ValueError(f"FluxPointsEstimator: unknown norm settings {unknown}")
        if norm.get("scan_values") is not None:
            self.scan_values = np.asarray(norm["scan_values"], dtype=np.float64)
        else:
            lo, hi = float(norm.get("scan_min", 0.2)), float(norm.get("scan_max", 5.0))
            n = int(norm.get("scan_n_values", 11))
            if not 0 < lo < hi or n < 2:
                raise ValueError(f"FluxPointsEstimator: bad norm scan settings {norm}")
            self.scan_values = np.exp(np.linspace(np.log(lo), np.log(hi), n))  # Gammapy's "log" scale

    # -- estimation ---------------------------------------------------------------------------------
    def run(self, datasets: Any, models: Any) -> FluxPoints:
        """Flux points of the source in ``models`` from ``datasets`` (a dataset, a list or a
        Datasets of map and spectrum datasets, Cash or ON/OFF)."""
        from ..models import Models

        datasets = _as_datasets(datasets)
        for d in datasets:
            if not isinstance(d, _CASH + _WSTAT):
                raise TypeError(
                    f"FluxPointsEstimator: dataset {d.name!r} is a {type(d).__name__}; flux points need map or "
                    "spectrum datasets (Cash or ON/OFF)"
                )
            if d.counts is None:
                raise ValueError(f"FluxPointsEstimator: dataset {d.name!r} has no counts")
        models = models if isinstance(models, Models) else Models(models)
        try:
            source = models[self.source]
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(
                f"FluxPointsEstimator: no source {self.source!r} in the models {models.names}"
            ) from exc
        others = Models([m for m in models if m.name != source.name])
        spectral = source.spectral_model
        from ..models import TemplateSpatialModel

        if isinstance(getattr(source, "spatial_model", None), TemplateSpatialModel):
            raise NotImplementedError(
                f"FluxPointsEstimator: source {source.name!r} has a template spatial model; Gammapy's "
                "reference spectrum is then the template integrated over the map, not available yet in jaxgamma"
            )

        telescopes: list[str] = []
        for d in datasets:
            table = getattr(d, "meta_table", None)
            if table is not None and "TELESCOP" in table.colnames:
                telescopes.extend(str(t) for t in np.asarray(table["TELESCOP"]).ravel())
        if len(set(telescopes)) > 1 and not self.allow_multiple_telescopes:
            raise ValueError(
                f"FluxPointsEstimator: all datasets must use the same value of the 'TELESCOP' meta keyword, got "
                f"{sorted(set(telescopes))} (as Gammapy; allow_multiple_telescopes=True to go on)"
            )
        axes = [_energy_axis(d) for d in datasets]
        if not all(_aligned(axes[0], axis) for axis in axes[1:]):
            raise ValueError(
                f"FluxPointsEstimator: all datasets must have aligned energy axes (as Gammapy); "
                f"{datasets.names} do not: estimate their flux points separately"
            )
        n_groups = self.energy_edges.size - 1
        group_of_bin = []
        e_min = np.full(n_groups, np.inf)
        e_max = np.full(n_groups, -np.inf)
        for d in datasets:
            axis = _energy_axis(d)
            groups = np.full(axis.nbin, -1)
            for g in range(n_groups):
                bins = _group_bins(axis, self.energy_edges[g], self.energy_edges[g + 1])
                if bins is None:
                    inside = self.energy_edges[g + 1] > axis.edges[0] and self.energy_edges[g] < axis.edges[-1]
                    if inside:
                        raise ValueError(
                            f"FluxPointsEstimator: the energy group {self.energy_edges[g]:.6g} - "
                            f"{self.energy_edges[g + 1]:.6g} TeV is narrower than the bins of dataset {d.name!r} "
                            f"(both edges snap to its edge near {axis.edges[np.argmin(np.abs(np.log(axis.edges / self.energy_edges[g])))]:.6g} "
                            f"TeV): use wider groups"
                        )
                    continue
                groups[bins[0] : bins[1] + 1] = g
                e_min[g] = min(e_min[g], axis.edges[bins[0]])
                e_max[g] = max(e_max[g], axis.edges[bins[1] + 1])
            group_of_bin.append(groups)
        covered = np.isfinite(e_min)
        if not np.any(covered):
            raise ValueError(
                f"FluxPointsEstimator: energy_edges {self.energy_edges.tolist()} TeV do not overlap the datasets' energy ranges"
            )
        # groups no dataset reaches: Gammapy's NaN rows with the requested edges
        e_min = np.where(covered, e_min, self.energy_edges[:-1])
        e_max = np.where(covered, e_max, self.energy_edges[1:])

        rows: dict[str, Any] = {
            "e_ref": np.sqrt(e_min * e_max),
            "e_min": e_min,
            "e_max": e_max,
        }
        e_ref = rows["e_ref"]
        dnde = np.asarray(spectral.dnde(jnp.asarray(e_ref)), dtype=np.float64)
        rows["ref_dnde"] = dnde
        rows["ref_flux"] = np.asarray(spectral.integral_array(e_min, e_max), dtype=np.float64)
        rows["ref_eflux"] = np.asarray(spectral.energy_flux_array(e_min, e_max), dtype=np.float64)
        rows["ref_e2dnde"] = dnde * e_ref**2
        estimate = self._estimate_reoptimized if self.reoptimize else self._estimate_fixed
        values, contributes = estimate(datasets, source, others, group_of_bin, n_groups)
        rows.update(values)
        rows["counts"] = np.asarray(rows["counts"]).astype(np.int64)
        # groups whose bins are all masked: Gammapy's values (no fit: stat 0, the rest NaN); groups
        # no dataset reaches: all NaN (Gammapy's "nan result")
        fill = {"success": False, "stat": 0.0, "stat_null": 0.0, "npred_excess": 0.0}
        for key in rows:
            if key in (
                "e_ref",
                "e_min",
                "e_max",
                "ref_dnde",
                "ref_flux",
                "ref_eflux",
                "ref_e2dnde",
                "counts",
                "norm_scan",
            ):
                continue
            value = np.asarray(rows[key], dtype=bool if key == "success" else float)
            shape = (-1,) + (1,) * (value.ndim - 1)
            value = np.where(contributes.reshape(shape), value, fill.get(key, np.nan))
            rows[key] = np.where(covered.reshape(shape) | (key == "success"), value, np.nan)
        table = Table(rows)
        table["e_ref"].unit = table["e_min"].unit = table["e_max"].unit = "TeV"
        table["ref_dnde"].unit = "cm-2 s-1 TeV-1"
        table["ref_flux"].unit = "cm-2 s-1"
        table["ref_eflux"].unit = table["ref_e2dnde"].unit = "TeV cm-2 s-1"
        table.meta.update(
            {
                "SED_TYPE": "likelihood",
                "n_sigma": self.n_sigma,
                "n_sigma_ul": self.n_sigma_ul,
                "sqrt_ts_threshold_ul": 2,
            }
        )
        table.meta["datasets"] = list(datasets.names)
        with warnings.catch_warnings():  # edges snapped apart (an unreached group between): as Gammapy
            warnings.filterwarnings("ignore", message=".*not contiguous.*")
            return FluxPoints.from_table(table, sed_type="likelihood", reference_model=spectral)

    def _estimate_fixed(
        self, datasets: Any, source: Any, others: Any, group_of_bin: list[np.ndarray], n_groups: int
    ) -> tuple[dict[str, Any], np.ndarray]:
        """All groups at once with the other parameters fixed: each dataset's prediction is linear
        in the norm (module docstring). Returns the per-group values and which groups any
        dataset's unmasked bins reach."""
        from ..models import Models

        terms = [_Terms(d, Models([source]), others, g) for d, g in zip(datasets, group_of_bin, strict=True)]
        kinds = tuple(t.wstat for t in terms)
        arrays = tuple(tuple(jnp.asarray(a) for a in t.arrays()) for t in terms)
        contributes = np.zeros(n_groups, dtype=bool)
        for t in terms:
            contributes[np.unique(t.group)] = True

        def stat(x: np.ndarray) -> np.ndarray:
            return np.asarray(_stat_jit(jnp.asarray(x, dtype=float), arrays, kinds, n_groups))

        norm, success, curvature = self._minimise(arrays, kinds, n_groups)
        best = stat(norm)
        null = stat(np.zeros(n_groups))
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.where(curvature > 0, np.sqrt(2.0 / curvature), np.nan)
        rows: dict[str, Any] = {"norm": norm, "stat": best, "success": success, "norm_err": error * self.n_sigma}
        rows["ts"] = null - best
        rows["stat_null"] = null
        if "errn-errp" in self.selection_optional:
            rows["norm_errn"] = norm - self._crossing(stat, norm, best, error, self.n_sigma, upper=False)
            rows["norm_errp"] = self._crossing(stat, norm, best, error, self.n_sigma, upper=True) - norm
        if "ul" in self.selection_optional:
            rows["norm_ul"] = self._crossing(stat, norm, best, error, self.n_sigma_ul, upper=True)
        if "sensitivity" in self.selection_optional:
            rows["norm_sensitivity"] = self._sensitivity_fixed(arrays, kinds, n_groups, norm, error)
        if "scan" in self.selection_optional:
            scan = np.stack([stat(np.full(n_groups, v)) for v in self.scan_values], axis=1)
            rows["norm_scan"] = np.broadcast_to(self.scan_values, scan.shape).copy()
            rows["stat_scan"] = scan
        rows["counts"], rows["npred"], rows["npred_excess"] = self._sums(terms, norm, n_groups)
        return rows, contributes

    def _estimate_reoptimized(
        self, datasets: Any, source: Any, others: Any, group_of_bin: list[np.ndarray], n_groups: int
    ) -> tuple[dict[str, Any], np.ndarray]:
        """Gammapy's ``reoptimize=True``: in each group a fit of the source's norm (its other
        parameters frozen) together with the free parameters of the other models that apply to the
        datasets reaching the group, on those datasets' bins of the group; TS with the norm at 0 and
        the others re-fitted; errors, upper limit and profile from the profile likelihood (the
        others re-optimised at each norm).

        The fit starts from the norm found with the others fixed. Where no other parameter is free
        the problem is the fixed one and its values are used. Where the fit does not converge the
        norm is reported with ``success`` False and the quantities derived from it are NaN. When
        the nuisance parameters are degenerate (no covariance), ``norm_err`` comes from the
        curvature of the profile likelihood (Gammapy: Minuit's covariance)."""
        from ..datasets import Datasets
        from ..fit import confidence, fit, stat_profile
        from ..models import Models, ScaleSpectralModel
        from ..parameters import map_parameters

        fixed, _ = self._estimate_fixed(datasets, source, others, group_of_bin, n_groups)
        frozen = map_parameters(lambda _, p: p.replace(frozen=True), source)
        name = f"{source.name}.spectral.norm"
        n_data = len(datasets)
        nan = np.full(n_groups, np.nan)
        rows: dict[str, Any] = {
            "norm": nan.copy(),
            "stat": nan.copy(),
            "success": np.zeros(n_groups, dtype=bool),
            "norm_err": nan.copy(),
            "ts": nan.copy(),
            "stat_null": nan.copy(),
            "counts": np.zeros((n_groups, n_data)),
            "npred": np.zeros((n_groups, n_data)),
            "npred_excess": np.zeros((n_groups, n_data)),
        }
        if "errn-errp" in self.selection_optional:
            rows["norm_errn"], rows["norm_errp"] = nan.copy(), nan.copy()
        if "ul" in self.selection_optional:
            rows["norm_ul"] = nan.copy()
        if "sensitivity" in self.selection_optional:
            rows["norm_sensitivity"] = nan.copy()
        if "scan" in self.selection_optional:
            rows["norm_scan"] = np.broadcast_to(self.scan_values, (n_groups, self.scan_values.size)).copy()
            rows["stat_scan"] = np.full((n_groups, self.scan_values.size), np.nan)
        contributes = np.zeros(n_groups, dtype=bool)
        for g in range(n_groups):
            members, masks = [], []
            for i, (d, groups) in enumerate(zip(datasets, group_of_bin, strict=True)):
                mask = d.mask
                mask = np.ones(np.shape(d.counts), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
                in_group = (groups == g).reshape((-1,) + (1,) * (mask.ndim - 1))
                mask = mask & in_group
                if mask.any():
                    base = d.mask_fit
                    fit_mask = in_group if base is None else np.asarray(base, dtype=bool) & in_group
                    members.append((i, d.replace(mask_fit=np.broadcast_to(fit_mask, mask.shape).copy())))
                    masks.append(mask)
            if not members:
                continue
            contributes[g] = True
            sliced = Datasets([d for _, d in members])
            # only the models of the datasets in the group: a background norm of a dataset outside
            # it has no data (Gammapy's datasets carry their own models)
            nuisance = Models([m for m in others if any(m.applies_to(n) for n in sliced.names)])
            if not _has_free(nuisance):
                for key, value in fixed.items():
                    if key in ("counts", "npred", "npred_excess"):
                        for i, _ in members:
                            rows[key][g, i] = value[g, i]
                    elif key != "norm_scan":
                        rows[key][g] = value[g]
                continue
            norm_start = float(fixed["norm"][g]) if np.isfinite(fixed["norm"][g]) else 1.0
            scaled = frozen.replace(spectral_model=ScaleSpectralModel(source.spectral_model, norm=norm_start))
            start = Models([scaled, *nuisance])
            result = fit(sliced, start)
            norm = result.value(name)
            rows["norm"][g] = norm
            rows["stat"][g] = result.total_stat
            rows["success"][g] = result.optimize_success
            best = result.models
            source_only = Models([best[source.name]])
            for (i, d), mask in zip(members, masks, strict=True):
                rows["counts"][g, i] = np.asarray(d.counts, dtype=np.float64)[mask].sum()
                rows["npred"][g, i] = np.asarray(d.npred(best), dtype=np.float64)[mask].sum()
                rows["npred_excess"][g, i] = np.asarray(d.npred_signal(source_only), dtype=np.float64)[mask].sum()
            if not result.optimize_success:
                continue  # no minimum: nothing derived from it
            if result.covariance_success:
                rows["norm_err"][g] = result.error(name) * self.n_sigma
            else:
                rows["norm_err"][g] = self._profile_error(sliced, result, name, norm) * self.n_sigma
            # the null hypothesis, from the best fit and from the start (the lower one)
            null_stats = []
            for models in (best, start):
                null_source = models[source.name].replace(
                    spectral_model=models[source.name].spectral_model.with_parameters(
                        norm={"value": 0.0, "frozen": True}
                    )
                )
                null_models = Models([null_source, *(m for m in models if m.name != source.name)])
                null_fit = fit(sliced, null_models)
                null_stats.append(null_fit.total_stat if null_fit.optimize_success else np.inf)
            rows["stat_null"][g] = min(null_stats) if np.isfinite(min(null_stats)) else np.nan
            rows["ts"][g] = rows["stat_null"][g] - rows["stat"][g]
            if "errn-errp" in self.selection_optional:
                interval = confidence(sliced, result, name, sigma=self.n_sigma)
                rows["norm_errn"][g], rows["norm_errp"][g] = interval["errn"], interval["errp"]
            if "ul" in self.selection_optional:
                rows["norm_ul"][g] = norm + confidence(sliced, result, name, sigma=self.n_sigma_ul)["errp"]
            if "sensitivity" in self.selection_optional:
                from .parameter import parameter_matching_significance

                # against norm 0; the far end of the range at least norm 1e5
                rows["norm_sensitivity"][g] = parameter_matching_significance(
                    sliced, best, name, 0.0, self.n_sigma_sensitivity, result.error(name), self._scan_n_sigma,
                    large_min=1.0, owner=self.tag,
                )
            if "scan" in self.selection_optional:
                profile = stat_profile(sliced, result, name, values=self.scan_values, reoptimize=True)
                rows["stat_scan"][g] = profile["stat_scan"]
        return rows, contributes

    @property
    def _scan_n_sigma(self) -> int:
        """Gammapy's ``scan_n_sigma`` of the norm: ``max(n_sigma_ul, n_sigma_sensitivity) + 1``."""
        return int(max(self.n_sigma_ul, self.n_sigma_sensitivity) + 1)

    def _sensitivity_fixed(
        self, arrays: Any, kinds: tuple[bool, ...], n_groups: int, norm: np.ndarray, error: np.ndarray
    ) -> np.ndarray:
        """Gammapy's norm sensitivity per group: the first positive norm where the Asimov
        significance ``sqrt(ts_asimov)`` reaches ``n_sigma_sensitivity``. Gammapy's search grid
        (101 points evenly spaced in log from the smallest float to ``max(norm + scan_n_sigma x
        error, 1e5 x max(error, |norm|, 1))``; Gammapy's has no 1) is one vmapped evaluation; the first bracket with finite
        ends is then bisected to full precision (Gammapy: brentq to 1 %). NaN without a bracket."""
        from .parameter import scale_grid

        step = np.where(error > 0, error, np.abs(norm))
        # Gammapy's 1e5 x max(error, |norm|), at least 1e5: where the minimum is a kink at norm 0
        # (no counts) the norm and its error are ~0 and Gammapy's range depends on Minuit's error
        large = np.maximum(np.maximum(step, np.abs(norm)), 1.0)
        top = np.maximum(norm + step * self._scan_n_sigma, large * 1e5)
        usable = np.isfinite(top) & (top > np.finfo(np.float64).tiny)
        top = np.where(usable, top, 1.0)
        grid = scale_grid(0.0, top, 101, "log")

        def sigma(ts: Any) -> np.ndarray:
            return np.sqrt(np.clip(np.asarray(ts), 0.0, None)) - self.n_sigma_sensitivity

        values = sigma(_asimov_grid_jit(jnp.asarray(grid), arrays, kinds, n_groups))
        finite = np.isfinite(values)
        change = (np.sign(values[:, :-1]) != np.sign(values[:, 1:])) & finite[:, :-1] & finite[:, 1:]
        found = usable & change.any(axis=1)
        k = np.argmax(change, axis=1)
        rows = np.arange(n_groups)
        lo = np.where(found, grid[rows, k], 0.0)
        hi = np.where(found, grid[rows, k + 1], 1.0)
        root = bisect_roots(lambda x: sigma(_asimov_jit(jnp.asarray(x), arrays, kinds, n_groups)), lo, hi)
        return np.where(found & (root > 0), root, np.nan)

    @staticmethod
    def _profile_error(datasets: Any, result: Any, name: str, norm: float) -> float:
        """``sqrt(2 / P'')`` with ``P''`` the curvature of the profile likelihood in the norm at the
        best fit: the Schur complement ``H_nn - H_no H_oo^+ H_on`` of the exact Hessian, with a
        pseudo-inverse of the (correlation-scaled) nuisance block, so that degenerate nuisance
        parameters (no covariance) still give the norm's error."""
        from ..likelihood import make_stat_function, value_grad_hessian

        fun, x, names = make_stat_function(datasets, result.models)
        _, _, hessian = value_grad_hessian(fun, jnp.asarray(x))
        h = np.asarray(hessian, dtype=np.float64)
        i = list(names).index(name)
        d = np.sqrt(np.abs(np.diag(h)))
        d = np.where(d > 0, d, 1.0)
        scaled = h / np.outer(d, d)
        rest = [j for j in range(len(names)) if j != i]
        cross = scaled[i, rest]
        schur = scaled[i, i] - cross @ np.linalg.pinv(scaled[np.ix_(rest, rest)], rcond=1e-10, hermitian=True) @ cross
        curvature = schur * d[i] ** 2
        return float(np.sqrt(2.0 / curvature)) if curvature > 0 else float("nan")

    @staticmethod
    def _minimise(
        arrays: Any, kinds: tuple[bool, ...], n_groups: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Safeguarded Newton on each group's statistic: started from the best of a coarse grid of
        norms (0 and +-1e-3 .. 1e3, so that plateaus, e.g. where a prediction is clipped at 0, and
        kinks do not stop it), kept in a bracket on the sign of the derivative, bisection when a
        Newton step leaves it or the curvature is not positive."""
        magnitudes = np.logspace(-3, 3, 25)
        grid = np.concatenate([-magnitudes[::-1], [0.0], magnitudes])
        values = np.stack([np.asarray(_stat_jit(jnp.full(n_groups, v), arrays, kinds, n_groups)) for v in grid], axis=1)
        values = np.where(np.isfinite(values), values, np.inf)
        best = np.argmin(values, axis=1)
        x = grid[best]
        lo = np.where(best > 0, grid[np.maximum(best - 1, 0)], -np.inf)
        hi = np.where(best < grid.size - 1, grid[np.minimum(best + 1, grid.size - 1)], np.inf)
        converged = np.zeros(n_groups, dtype=bool)
        for _ in range(200):
            _, g, h = (np.asarray(a) for a in _derivatives_jit(jnp.asarray(x), arrays, kinds, n_groups))
            lo = np.where(g < 0, np.maximum(lo, x), lo)
            hi = np.where(g > 0, np.minimum(hi, x), hi)
            with np.errstate(invalid="ignore", divide="ignore"):
                newton = x - g / h
            ok = (h > 0) & np.isfinite(newton) & (newton > lo) & (newton < hi)
            both = np.isfinite(lo) & np.isfinite(hi)
            width = np.maximum(np.abs(x), 1.0)
            middle = 0.5 * (np.where(both, lo, 0.0) + np.where(both, hi, 0.0))
            fallback = np.where(both, middle, np.where(g > 0, x - 2 * width, x + 2 * width))
            new = np.where(ok, newton, fallback)
            new = np.where(g == 0, x, new)
            step = np.abs(new - x)
            converged = step <= 1e-12 * np.maximum(np.abs(new), 1e-3)
            x = new
            if np.all(converged):
                break
        _, g, h = (np.asarray(a) for a in _derivatives_jit(jnp.asarray(x), arrays, kinds, n_groups))
        # a minimum on a kink (e.g. at norm = 0 with bins without counts) has a bracket of zero width
        kink = np.isfinite(lo) & np.isfinite(hi) & (hi - lo <= 1e-9 * np.maximum(np.abs(x), 1e-3))
        return x, converged & ((h > 0) | kink), h

    @staticmethod
    def _crossing(
        stat: Any, norm: np.ndarray, best: np.ndarray, error: np.ndarray, n_sigma: float, upper: bool
    ) -> np.ndarray:
        """Where the statistic reaches ``best + n_sigma^2`` above (or below) the best norm: a
        bisection in Gammapy's range (``1e5 x max(error, |norm|)`` away), NaN without a crossing."""
        target = best + n_sigma**2
        reach = 1e5 * np.maximum(np.nan_to_num(error, nan=1.0), np.abs(norm))
        far = norm + reach if upper else norm - reach
        return bisect_roots(lambda x: stat(x) - target, norm, far)

    @staticmethod
    def _sums(terms: list[_Terms], norm: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
        """Per group and dataset: counts, predicted counts and the source's predicted counts, summed
        over the dataset's bins in the group (at the best norm)."""
        shape = (n_groups, len(terms))
        counts, npred, excess = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for i, t in enumerate(terms):
            scale = norm[t.group]
            signal = scale * t.source
            if t.wstat:
                mu_sig = t.other + signal
                total = mu_sig + np.asarray(wstat_npred_background(t.counts, t.counts_off, t.alpha, mu_sig))
            else:
                total = np.clip(t.other + signal, 0, None)
            counts[:, i] = np.bincount(t.group, weights=t.counts, minlength=n_groups)
            npred[:, i] = np.bincount(t.group, weights=total, minlength=n_groups)
            excess[:, i] = np.bincount(t.group, weights=signal, minlength=n_groups)
        return counts, npred, excess
