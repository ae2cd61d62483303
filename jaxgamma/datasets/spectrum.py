"""1D spectral datasets: ``SpectrumDataset`` (Cash, known background) and ``SpectrumDatasetOnOff``
(WStat, ON/OFF counts), as Gammapy 2.1's.

A dataset holds, per reconstructed-energy bin ``Er`` and true-energy bin ``Et``, float64 numpy arrays:
counts, background or (counts_off, acceptance, acceptance_off), exposure [cm2 s] (ARF x livetime),
the energy dispersion matrix ``edisp[Et, Er]``, the energy edges [TeV], the masks, the livetime [s]
and an optional GTI. It holds no model. :meth:`plan` precomputes in numpy what does not depend on
the parameters (the integration grid, the kernels, the masks) and returns an ``equinox.Module``
whose ``npred_signal`` / ``stat_sum`` are pure JAX functions of the models:

``npred_signal[Er] = sum_models sum_Et integral(spectral, Et bin) * exposure[Et] * edisp[Et, Er]``

with the integral on Gammapy's log-log grid. Spatial models do not enter (a spectrum without a
region has a spatial factor of 1, as in Gammapy); FoV background models are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, ClassVar, cast

import astropy.units as u
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..data.gti import GTI, _as_gti
from ..models.sky import SkyModel, TemplateNPredModel
from ..models.spectral import integration_grid
from ..stats import cash, masked_sum, wstat
from ..units import ENERGY
from .core import (
    Dataset,
    DatasetPlan,
    OnOffPlanMixin,
    _as_models,
    _livetime_seconds,
    _make_name,
    _meta_tuple,
    _random_state,
    add_time_info,
    summary_count_rows,
    summary_row,
    time_intervals,
)

__all__ = [
    "GTI",
    "SpectrumDataset",
    "SpectrumDatasetOnOff",
    "SpectrumOnOffPlan",
    "SpectrumPlan",
    "stack_onoff",
    "stack_spectrum",
]

EXPOSURE_UNIT = "cm2 s"


# -- small helpers ---------------------------------------------------------------------------------
def _frozen(array: Any, dtype: Any) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def _as_array(
    value: Any, unit: str | None, what: str, shape: tuple[int, ...] | None, dtype: Any = np.float64
):
    if value is None:
        return None
    if isinstance(value, (u.Quantity, str)) and unit is not None:
        try:
            value = u.Quantity(value).to_value(unit)
        except u.UnitConversionError as err:
            raise ValueError(f"{what}: {err}") from None
    elif isinstance(value, u.Quantity):
        value = value.to_value("")
    out = np.asarray(value)
    if dtype is bool and out.dtype != bool:
        raise ValueError(f"{what}: a boolean array is required, got dtype {out.dtype}")
    out = _frozen(out, dtype)
    if shape is not None and out.shape != shape:
        raise ValueError(f"{what}: shape {out.shape}, expected {shape}")
    return out


def _edges(value: Any, what: str) -> np.ndarray:
    edges = _as_array(value, ENERGY, what, None)
    if edges is None or edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"{what}: a 1D array of at least 2 energy edges is required")
    if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0) or edges[0] <= 0:
        raise ValueError(f"{what}: energy edges must be positive, finite and increasing")
    return edges


def _region_geom(geom: Any, what: str) -> Any:
    """The ON region geometry of a spectrum (spatial part only), or None."""
    if geom is None:
        return None
    from ..geom.region import RegionGeom

    if not isinstance(geom, RegionGeom):
        raise TypeError(f"{what}: geom must be a RegionGeom (the ON region) or None, got {type(geom).__name__}")
    return geom.to_image() if geom.axes else geom


def _gammapy_log_axis_edges(edges: np.ndarray) -> np.ndarray:
    """The edges of Gammapy's log-interpolated ``MapAxis`` built from ``edges``: ``exp`` of scipy's
    order-1 ``interp1d`` of ``log(edges)`` at the integer pixel positions (ulp-level noise that
    decides which bins a threshold on an edge keeps)."""
    from scipy.interpolate import interp1d  # a dependency of jax

    tiny = np.finfo(np.float64).tiny
    y = np.log(np.clip(edges, tiny, np.inf))
    x = np.arange(edges.size, dtype=float)
    out = np.exp(interp1d(x, y, kind=1, fill_value="extrapolate")(x))
    return np.where(np.abs(out) - tiny <= tiny, 0.0, out)


# -- plans -----------------------------------------------------------------------------------------
class _SpectralPlan(DatasetPlan):
    """Shared part of the spectrum plans: the predicted signal counts."""

    energy_grid: np.ndarray  # (Et, num) Gammapy integration points per true-energy bin, TeV
    exposure: np.ndarray  # (Et,) cm2 s
    edisp: np.ndarray  # (Et, Er)
    edisp_diagonal: np.ndarray  # (Et, Er) bin-overlap kernel, for models with apply_irf edisp=False
    counts: np.ndarray  # (Er,)
    mask: np.ndarray  # (Er,) bool: the bins summed in the statistic
    # per model: (2, n_gti) MJD start / stop for its temporal norm, or None (see MapEvaluatorPlan)
    time_intervals: tuple[np.ndarray | None, ...]
    model_names: tuple[str, ...] = eqx.field(static=True)
    apply_exposure: tuple[bool, ...] = eqx.field(static=True)
    apply_edisp: tuple[bool, ...] = eqx.field(static=True)

    def npred_signal(self, models: Any) -> Any:
        """Predicted signal counts per reconstructed-energy bin (pure JAX)."""
        total = jnp.zeros(self.edisp.shape[1])
        for name, use_exposure, use_edisp, times in zip(
            self.model_names, self.apply_exposure, self.apply_edisp, self.time_intervals, strict=True
        ):
            flux = models[name].spectral_model.integral_on_grid(self.energy_grid)
            if times is not None:
                flux = flux * models[name].temporal_model.time_average(times[0], times[1])
            npred_true = flux * self.exposure if use_exposure else flux
            kernel = self.edisp if use_edisp else self.edisp_diagonal
            total = total + jnp.matmul(npred_true, kernel)
        return total

    def stat_sum(self, models: Any) -> Any:
        return masked_sum(self.stat_array(models), self.mask)

    def stat_array(self, models: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class SpectrumPlan(_SpectralPlan):
    """Plan of a :class:`SpectrumDataset`: Cash statistic with a known background."""

    background: np.ndarray  # (Er,)

    def npred_background(self, models: Any) -> Any:
        return jnp.asarray(self.background)

    def npred(self, models: Any) -> Any:
        npred = self.npred_signal(models) + self.background
        return jnp.where(npred < 0, 0.0, npred)

    def stat_array(self, models: Any) -> Any:
        return cash(self.counts, self.npred(models))


class SpectrumOnOffPlan(OnOffPlanMixin, _SpectralPlan):
    """Plan of a :class:`SpectrumDatasetOnOff`: WStat, the background profiled out per bin."""

    counts_off: np.ndarray  # (Er,)
    alpha: np.ndarray  # (Er,)
    empty: bool = eqx.field(static=True)  # no OFF counts and nothing in the safe range: statistic 0

    def stat_sum(self, models: Any) -> Any:
        if self.empty:
            return jnp.asarray(0.0)
        return masked_sum(self.stat_array(models), self.mask)


@eqx.filter_jit
def _evaluate(plan: DatasetPlan, models: Any, method: str) -> Any:
    """``plan.<method>(models)`` compiled once per plan structure: the eager conveniences (npred,
    stat_sum, fake) reuse one program instead of dispatching every operation."""
    return getattr(plan, method)(models)


def _overlap_fraction(energy_true_edges: np.ndarray, energy_edges: np.ndarray) -> np.ndarray:
    """Gammapy's diagonal response: the fraction of each true bin inside each reco bin."""
    a_min, a_max = energy_edges[:-1], energy_edges[1:]
    b_min, b_max = energy_true_edges[:-1, None], energy_true_edges[1:, None]
    xmin = np.fmin(a_max, b_max)
    xmax = np.fmax(a_min, b_min)
    return np.clip(xmin - xmax, 0, np.inf) / (b_max - b_min)


# -- datasets --------------------------------------------------------------------------------------
class _AbstractSpectrumDataset(Dataset):
    """Fields and methods shared by the two spectrum datasets."""

    counts: np.ndarray | None
    exposure: np.ndarray | None
    edisp: np.ndarray | None
    # The exposure the edisp matrix is weighted with when stacking (Gammapy's edisp exposure map):
    # the exposure without containment correction of a reduced spectrum; None = ``exposure``.
    edisp_exposure: np.ndarray | None
    energy_edges: np.ndarray
    energy_true_edges: np.ndarray
    mask_safe: np.ndarray | None
    mask_fit: np.ndarray | None
    livetime: float | None
    gti: GTI | None
    # The reconstructed edges in the unit they were given in (e.g. keV from OGIP files), used by
    # energy_mask to compare exactly as Gammapy does (in the axis unit); None when given in TeV.
    energy_edges_native: np.ndarray | None
    energy_unit: str = eqx.field(static=True, default=ENERGY)
    name: str = eqx.field(static=True, default="")
    meta: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())
    # The ON region of a spectrum reduced from events (a RegionGeom without axes), or None.
    geom: Any = eqx.field(static=True, default=None)

    def _init_common(
        self,
        name,
        counts,
        exposure,
        edisp,
        energy_edges,
        energy_true_edges,
        mask_safe,
        mask_fit,
        livetime,
        gti,
        meta,
        energy_edges_native=None,
        energy_unit=None,
        geom=None,
        edisp_exposure=None,
    ) -> None:
        self.name = _make_name() if name is None else str(name)
        what = f"{type(self).__name__} {self.name!r}"
        self.geom = _region_geom(geom, what)
        self.energy_edges = _edges(energy_edges, f"{what}: energy_edges")
        if (
            energy_edges_native is None
            and isinstance(energy_edges, u.Quantity)
            and energy_edges.unit != u.TeV
        ):
            energy_edges_native, energy_unit = energy_edges.value, energy_edges.unit.to_string()
        if energy_edges_native is not None:
            energy_edges_native = _frozen(energy_edges_native, np.float64)
            if energy_edges_native.shape != self.energy_edges.shape:
                raise ValueError(
                    f"{what}: energy_edges_native has shape {energy_edges_native.shape}, "
                    f"expected {self.energy_edges.shape}"
                )
        self.energy_edges_native = energy_edges_native
        self.energy_unit = (
            ENERGY if energy_edges_native is None else u.Unit(energy_unit or ENERGY).to_string()
        )
        self.energy_true_edges = _edges(
            self.energy_edges if energy_true_edges is None else energy_true_edges,
            f"{what}: energy_true_edges",
        )
        n_reco, n_true = self.energy_edges.size - 1, self.energy_true_edges.size - 1
        self.counts = _as_array(counts, "", f"{what}: counts", (n_reco,))
        self.exposure = _as_array(exposure, EXPOSURE_UNIT, f"{what}: exposure", (n_true,))
        self.edisp = _as_array(edisp, "", f"{what}: edisp", (n_true, n_reco))
        self.edisp_exposure = _as_array(edisp_exposure, EXPOSURE_UNIT, f"{what}: edisp_exposure", (n_true,))
        self.mask_safe = _as_array(mask_safe, None, f"{what}: mask_safe", (n_reco,), dtype=bool)
        self.mask_fit = _as_array(mask_fit, None, f"{what}: mask_fit", (n_reco,), dtype=bool)
        self.livetime = _livetime_seconds(livetime, what)
        self.gti = _as_gti(gti)
        self.meta = _meta_tuple(meta)

    # -- geometry and masks ----------------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        return self.energy_edges.size - 1

    @property
    def energy_center(self) -> np.ndarray:
        """Log centres of the reconstructed-energy bins [TeV]."""
        return np.sqrt(self.energy_edges[:-1] * self.energy_edges[1:])

    @property
    def energy_axis(self) -> Any:
        """The reconstructed-energy axis (TeV, log), as a :class:`~jaxgamma.geom.MapAxis`."""
        from ..geom import MapAxis

        return MapAxis.from_edges(self.energy_edges, name="energy", unit="TeV", interp="log")

    @property
    def energy_axis_true(self) -> Any:
        """The true-energy axis (TeV, log), as a :class:`~jaxgamma.geom.MapAxis`."""
        from ..geom import MapAxis

        return MapAxis.from_edges(self.energy_true_edges, name="energy_true", unit="TeV", interp="log")

    @property
    def energy_true_center(self) -> np.ndarray:
        return np.sqrt(self.energy_true_edges[:-1] * self.energy_true_edges[1:])

    @property
    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)

    @property
    def mask(self) -> np.ndarray | None:
        """``mask_safe & mask_fit`` (whichever exists; None when neither does)."""
        if self.mask_safe is not None and self.mask_fit is not None:
            return self.mask_safe & self.mask_fit
        if self.mask_fit is not None:
            return self.mask_fit
        return self.mask_safe

    @property
    def mask_safe_image(self) -> bool:
        """True if any bin is in the safe range (Gammapy's ``mask_safe_image`` of a spectrum)."""
        return True if self.mask_safe is None else bool(np.any(self.mask_safe))

    def energy_mask(self, energy_min: Any = None, energy_max: Any = None) -> np.ndarray:
        """Bins fully inside ``[energy_min, energy_max]`` (Quantities, strings or TeV), as Gammapy's
        ``geom.energy_mask``: ``(E_lo >= energy_min) & (E_hi <= energy_max)``."""
        # Compare exactly as Gammapy: in the unit the edges were read in (its axis keeps the file
        # unit), with the edges as its MapAxis returns them (exp of a linear interpolation of their
        # logs, which moves some by an ulp). Thresholds that fall on a bin edge then select the same
        # bins as Gammapy.
        native = self.energy_edges if self.energy_edges_native is None else self.energy_edges_native
        edges = _gammapy_log_axis_edges(native)
        unit = u.Unit(self.energy_unit)

        def bound(value: Any, what: str, default: float) -> float:
            if value is None:
                return default
            if not isinstance(value, (u.Quantity, str)):
                value = u.Quantity(float(value), ENERGY)
            try:
                return float(u.Quantity(value).to_value(unit))
            except (u.UnitConversionError, TypeError, ValueError) as err:
                raise ValueError(f"{what}: {value!r} is not an energy: {err}") from None

        emin = bound(energy_min, "energy_min", edges[0])
        emax = bound(energy_max, "energy_max", edges[-1])
        return (edges[:-1] >= emin) & (edges[1:] <= emax)

    # -- Gammapy's energy manipulations (jaxgamma.datasets._spectrum_ops) -----------------------
    def slice_by_idx(self, slices: dict[str, slice], name: str | None = None) -> Any:
        """The spectrum restricted to energy bins, as Gammapy's ``slice_by_idx``: ``slices`` maps
        ``"energy"`` and/or ``"energy_true"`` to a ``slice`` (integer indices are refused)."""
        from ._spectrum_ops import slice_by_idx

        return slice_by_idx(self, slices, name=name)

    def slice_by_energy(self, energy_min: Any = None, energy_max: Any = None, name: str | None = None) -> Any:
        """The reconstructed-energy bins between ``energy_min`` and ``energy_max`` (Quantity, string
        or TeV; default the axis bounds), snapped to the bin edges as Gammapy's ``slice_by_energy``."""
        from ._spectrum_ops import slice_by_energy

        return slice_by_energy(self, energy_min, energy_max, name=name)

    def resample_energy_axis(self, energy_axis: Any, name: str | None = None) -> Any:
        """The reconstructed-energy bins grouped onto ``energy_axis`` (a MapAxis whose edges are some
        of the dataset's), as Gammapy's ``resample_energy_axis``: counts, background and OFF counts
        summed over the safe bins, masks ORed, the energy dispersion regrouped with the safe mask;
        ON/OFF acceptances as Gammapy's (the merged alpha weights the OFF counts)."""
        from ._spectrum_ops import resample_energy_axis

        return resample_energy_axis(self, energy_axis, name=name)

    def downsample(self, factor: int, axis_name: str = "energy", name: str | None = None) -> Any:
        """Every ``factor`` reconstructed-energy bins merged into one (Gammapy's ``downsample`` of a
        spectrum dataset): :meth:`resample_energy_axis` onto every ``factor``-th edge; the number
        of bins must be divisible by ``factor``."""
        if axis_name != "energy":
            raise ValueError(
                f"{type(self).__name__} {self.name!r}.downsample: a spectrum has one axis to downsample, "
                f"'energy'; got axis_name={axis_name!r}"
            )
        try:
            axis = self.energy_axis.downsample(factor)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__} {self.name!r}.downsample: {err}") from None
        return self.resample_energy_axis(axis, name=name)

    def to_image(self, name: str | None = None) -> Any:
        """One reconstructed-energy bin: :meth:`resample_energy_axis` onto the squashed axis."""
        from ._spectrum_ops import to_image

        return to_image(self, name=name)

    # -- model evaluation ------------------------------------------------------------------------
    def _sky_models(self, models: Any) -> list[SkyModel]:
        out = []
        for m in _as_models(models):
            if isinstance(m, SkyModel) and m.applies_to(self.name):
                out.append(m)
            elif isinstance(m, TemplateNPredModel) and m.applies_to(self.name):
                raise ValueError(
                    f"{type(self).__name__} {self.name!r}: TemplateNPredModel {m.name!r} applies to it, but "
                    "npred templates apply to map datasets only (give the template datasets_names)"
                )
        return out

    def _plan_signal_fields(self, models: Any) -> dict[str, Any]:
        what = f"{type(self).__name__} {self.name!r}"
        if self.counts is None:
            raise ValueError(f"{what}: no counts, cannot plan a likelihood")
        sky = self._sky_models(models)
        n_true, n_reco = self.energy_true_edges.size - 1, self.n_bins
        apply_exposure = tuple(bool(dict(m.apply_irf)["exposure"]) for m in sky)
        if self.exposure is None and any(apply_exposure):
            raise ValueError(f"{what}: no exposure, cannot predict counts")
        diagonal = _overlap_fraction(self.energy_true_edges, self.energy_edges)
        edisp = diagonal if self.edisp is None else self.edisp
        mask = self.mask
        return {
            "energy_grid": integration_grid(self.energy_true_edges[:-1], self.energy_true_edges[1:]),
            "exposure": np.zeros(n_true) if self.exposure is None else np.asarray(self.exposure),
            "edisp": np.asarray(edisp, dtype=np.float64),
            "edisp_diagonal": diagonal.reshape(n_true, n_reco),
            "counts": np.asarray(self.counts),
            "mask": np.ones(n_reco, dtype=bool) if mask is None else np.asarray(mask),
            "model_names": tuple(m.name for m in sky),
            "time_intervals": tuple(time_intervals(m, self.gti) for m in sky),
            "apply_exposure": apply_exposure,
            "apply_edisp": tuple(bool(dict(m.apply_irf)["edisp"]) for m in sky),
        }

    def _eval(self, models: Any, method: str) -> np.ndarray:
        models = _as_models(() if models is None else models)
        dataset: Any = self
        if self.counts is None and method == "npred_signal":
            # the signal needs no counts (Gammapy's npred_signal of a dataset made from IRFs alone)
            dataset = self.replace(counts=np.zeros(self.n_bins))
        return np.asarray(_evaluate(dataset.plan(models), models, method))

    def npred_signal(self, models: Any) -> np.ndarray:
        """Predicted signal counts per reconstructed-energy bin."""
        return self._eval(models, "npred_signal")

    def npred_background(self, models: Any = None) -> np.ndarray:
        """Predicted background counts per bin."""
        return self._eval(models, "npred_background")

    def npred(self, models: Any = None) -> np.ndarray:
        """Predicted counts per bin (signal + background, negative values set to 0)."""
        return self._eval(models, "npred")

    def stat_array(self, models: Any) -> np.ndarray:
        """The statistic per bin (masked bins included)."""
        return self._eval(models, "stat_array")

    def stat_sum(self, models: Any) -> float:
        """The fit statistic summed over ``mask_safe & mask_fit``."""
        return float(self._eval(models, "stat_sum"))

    # -- summaries -------------------------------------------------------------------------------
    def _info_common(self, models: Any, in_safe_data_range: bool) -> tuple[dict[str, Any], Any]:
        info: dict[str, Any] = {"name": self.name}
        mask = self.mask_safe if (self.mask_safe is not None and in_safe_data_range) else slice(None)
        counts = 0.0 if self.counts is None else float(np.sum(self.counts[mask]))
        info["counts"] = int(counts)
        return info, mask

    def _info_tail(self, info: dict[str, Any], models: Any, mask: Any) -> dict[str, Any]:
        has_signal = models is not None and len(self._sky_models(models)) > 0
        npred_signal = np.nan
        if has_signal:
            npred_signal = float(np.sum(self.npred_signal(models)[mask]))
        npred = np.nan
        if has_signal or not np.isnan(info["background"]):
            npred = float(np.sum(self.npred(models)[mask]))
        npred_background = np.nan
        if not np.isnan(info["background"]):
            npred_background = float(np.sum(self.npred_background(models)[mask]))
        info["npred"] = npred
        info["npred_background"] = npred_background
        info["npred_signal"] = npred_signal

        exposure_min = exposure_max = np.nan
        if self.exposure is not None:
            sel = self.exposure > 0
            if self.mask_safe is not None:
                sel = sel & self.mask_safe_image
            values = self.exposure[sel] if np.any(sel) else self.exposure
            exposure_min, exposure_max = float(np.min(values)), float(np.max(values))
        info["exposure_min"] = exposure_min
        info["exposure_max"] = exposure_max
        add_time_info(info, self.livetime, self.gti)
        info["n_bins"] = self.n_bins
        info["n_fit_bins"] = int(np.sum(self.mask)) if self.mask is not None else 0
        info["stat_type"] = self.stat_type
        # Without models Gammapy prints the ON/OFF statistic of the background alone (its ON/OFF
        # datasets always hold a, possibly empty, model list) and no statistic for a Cash spectrum.
        if self.counts is None or (models is None and self.stat_type != "wstat"):
            info["stat_sum"] = np.nan
        else:
            info["stat_sum"] = self.stat_sum([] if models is None else models)
        return info

    def _summary_lines(self, info: dict[str, Any], models: Any) -> list[str]:
        title = type(self).__name__
        lines = [title, "-" * len(title), ""]

        row = summary_row
        lines += [row("Name", f"{info['name']} "), ""]
        lines += summary_count_rows(info, EXPOSURE_UNIT)
        n_models = n_pars = n_free = 0
        sky = [] if models is None else self._sky_models(models)
        if sky:
            n_models = len(sky)
            pars = [p for m in sky for p in m.parameters]
            n_pars, n_free = len(pars), sum(not p.frozen for p in pars)
        lines += [
            row("Number of models", f"{n_models} "),
            row("Number of parameters", f"{n_pars}"),
            row("Number of free parameters", f"{n_free}"),
            "",
        ]
        for m in sky:
            lines += ["  " + line for line in str(m).split("\n")]
            lines.append("")
        return lines

    def info_dict(self, models: Any = None, in_safe_data_range: bool = True) -> dict[str, Any]:  # type: ignore[override]
        raise NotImplementedError  # pragma: no cover - concrete classes

    def summary(self, models: Any = None) -> str:
        """Gammapy's dataset summary; with ``models``, the predicted counts and statistic too."""
        return "\n".join(self._summary_lines(self.info_dict(models), models)) + "\n"

    def __str__(self) -> str:
        return self.summary()

    # -- plots (Gammapy's spectrum-dataset PlotMixin; models are an argument) -------------------------
    def _excess_error(self, models: Any) -> np.ndarray:  # pragma: no cover - concrete classes
        raise NotImplementedError

    def _residual_wstat(self, models: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        return None

    def _plot_edges(self, true: bool = False) -> np.ndarray:
        """Energy edges in the dataset's energy unit (Gammapy plots OGIP spectra in keV)."""
        if not true and self.energy_edges_native is not None:
            return self.energy_edges_native
        edges = self.energy_true_edges if true else self.energy_edges
        return edges * u.Unit(ENERGY).to(self.energy_unit)

    def _require_counts(self, what: str) -> np.ndarray:
        if self.counts is None:
            raise ValueError(f"{type(self).__name__} {self.name!r}: no counts, nothing to plot in {what}")
        return np.asarray(self.counts, dtype=np.float64)

    def plot_counts(
        self, ax: Any = None, kwargs_counts: dict[str, Any] | None = None,
        kwargs_background: dict[str, Any] | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Gammapy's ``plot_counts``: step histograms of the counts ("Counts") and of the background
        ("Background"; ``alpha * counts_off`` ON/OFF, none drawn without one) per reconstructed
        energy bin. ``kwargs`` go to both ``ax.hist`` calls. Returns the axes."""
        from ._plots import current_axes, plot_hist

        counts = self._require_counts("plot_counts")
        ax = current_axes(ax)
        options = {**kwargs, **(kwargs_counts or {})}
        options.setdefault("label", "Counts")
        plot_hist(ax, self._plot_edges(), counts, self.energy_unit, **options)
        background = getattr(self, "background", None)  # a field, or alpha * counts_off
        if background is not None:
            options = {**kwargs, **(kwargs_background or {})}
            options.setdefault("label", "Background")
            plot_hist(ax, self._plot_edges(), background, self.energy_unit, **options)
        ax.legend(numpoints=1)
        return ax

    def plot_masks(
        self, ax: Any = None, kwargs_fit: dict[str, Any] | None = None, kwargs_safe: dict[str, Any] | None = None
    ) -> Any:
        """Gammapy's ``plot_masks``: shaded energy ranges of ``mask_fit`` ("Mask fit", green) and
        ``mask_safe`` ("Mask safe", black), where the dataset has them. Returns the axes."""
        from ._plots import plot_dataset_masks

        edges = self._plot_edges()
        return plot_dataset_masks(ax, edges, self.mask_fit, self.mask_safe, kwargs_fit, kwargs_safe, self.energy_unit)

    def plot_excess(
        self, models: Any = None, ax: Any = None, kwargs_excess: dict[str, Any] | None = None,
        kwargs_npred_signal: dict[str, Any] | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Gammapy's ``plot_excess``: the excess counts ("Excess counts") with the symmetric error of
        the counts statistic (Cash of counts and predicted background; WStat of ON, OFF and alpha)
        and a step histogram of ``npred_signal(models)`` ("Predicted signal counts"). ``models`` is
        a Models, a model list or a FitResult. Returns the axes."""
        from ._plots import current_axes, plot_hist, plot_models, plot_points

        self._require_counts("plot_excess")
        excess = getattr(self, "excess", None)
        if excess is None:
            raise ValueError(f"{type(self).__name__} {self.name!r}: no background, no excess to plot")
        models = plot_models(models)
        ax = current_axes(ax)
        options = {**kwargs, **(kwargs_excess or {})}
        options.setdefault("label", "Excess counts")
        edges = self._plot_edges()
        plot_points(ax, edges, excess, yerr=self._excess_error(models), unit=self.energy_unit, **options)
        options = {**kwargs, **(kwargs_npred_signal or {})}
        options.setdefault("label", "Predicted signal counts")
        plot_hist(ax, edges, self.npred_signal(models), self.energy_unit, **options)
        ax.legend(numpoints=1)
        return ax

    def plot_residuals_spectral(
        self, models: Any = None, ax: Any = None, method: str = "diff", kwargs_fit: dict[str, Any] | None = None,
        kwargs_safe: dict[str, Any] | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Gammapy's ``plot_residuals_spectral``: residuals of the masked counts against the masked
        ``npred(models)`` (``method`` "diff" or "diff/sqrt(model)"), error bars from the counts
        statistic, a line at 0, the masks. Keyword arguments go to ``ax.errorbar``. Returns the axes."""
        from ._plots import draw_residuals_spectral, plot_models, residual_errors
        from .map import _residuals

        counts = self._require_counts("plot_residuals_spectral")
        models = plot_models(models)
        npred = np.asarray(self.npred(models), dtype=np.float64)
        if self.mask is not None:
            counts, npred = counts * self.mask, npred * self.mask
        errors = residual_errors(counts, npred, method, self._residual_wstat(models))
        residuals = _residuals(counts, npred, method)
        return draw_residuals_spectral(
            ax, self._plot_edges(), residuals, errors, method, self.mask_fit, self.mask_safe,
            kwargs_fit, kwargs_safe, self.energy_unit, **kwargs,
        )  # fmt: skip

    def plot_residuals_spatial(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported for spectrum datasets (Gammapy's error)."""
        raise NotImplementedError("Method not supported on a spectrum dataset")

    def plot_fit(
        self, models: Any = None, ax_spectrum: Any = None, ax_residuals: Any = None,
        kwargs_spectrum: dict[str, Any] | None = None, kwargs_residuals: dict[str, Any] | None = None,
    ) -> tuple[Any, Any]:  # fmt: skip
        """Gammapy's ``plot_fit``: :meth:`plot_excess` above :meth:`plot_residuals_spectral` on a
        7-row grid (5 + 2) of an 8 x 7 inch figure, the masks on both; give both axes or neither.
        Returns both axes."""
        import matplotlib.pyplot as plt

        from ._plots import RESIDUALS_LABELS, two_axes

        visible = not (ax_spectrum is None and ax_residuals is None)
        ax_spectrum, ax_residuals = two_axes(ax_spectrum, ax_residuals, (8, 7), (7, 1, (1, 5)), (7, 1, (6, 7)))
        kwargs_spectrum = kwargs_spectrum or {}
        kwargs_residuals = kwargs_residuals or {}
        self.plot_excess(models, ax_spectrum, **kwargs_spectrum)
        self.plot_residuals_spectral(models, ax_residuals, **kwargs_residuals)
        ax_residuals.set_ylabel(f"Residuals\n{RESIDUALS_LABELS[kwargs_residuals.get('method', 'diff')]}")
        plt.setp(ax_spectrum.get_xticklabels(), visible=visible)
        self.plot_masks(ax=ax_spectrum)
        return ax_spectrum, ax_residuals

    def peek(self, figsize: tuple[float, float] = (16, 4)) -> tuple[Any, Any, Any]:
        """Gammapy's ``peek``: counts with background and masks, the exposure against true energy,
        and the energy-dispersion matrix, side by side. Returns the three axes."""
        import matplotlib.pyplot as plt

        from ._plots import plot_edisp_matrix, plot_points, unit_label

        _, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=figsize)
        ax1.set_title("Counts")
        self.plot_counts(ax1)
        self.plot_masks(ax=ax1)
        ax1.legend()
        ax2.set_title("Exposure")
        if self.exposure is not None:
            edges = self._plot_edges(true=True)
            options = {"ls": "-", "markersize": 0, "xerr": None}
            plot_points(ax2, edges, self.exposure, name="energy_true", unit=self.energy_unit, **options)
            ax2.set_ylabel(f"Exposure [{unit_label(EXPOSURE_UNIT)}]")
        ax3.set_title("Energy Dispersion")
        if self.edisp is not None:
            edges, edges_true = self._plot_edges(), self._plot_edges(true=True)
            plot_edisp_matrix(ax3, edges_true, edges, self.edisp, add_cbar=True, unit=self.energy_unit)
        return ax1, ax2, ax3


class SpectrumDataset(_AbstractSpectrumDataset):
    """Spectrum dataset with a known background: Cash statistic.

    Parameters
    ----------
    counts : array (Er,)
    background : array (Er,), optional
        Expected background counts (0 when None).
    exposure : array (Et,) or Quantity
        Exposure [cm2 s] per true-energy bin.
    edisp : array (Et, Er), optional
        Energy dispersion matrix; a diagonal (bin-overlap) response when None, as Gammapy.
    energy_edges, energy_true_edges : array or Quantity
        Bin edges [TeV] (true edges default to the reco edges).
    mask_safe, mask_fit : bool array (Er,), optional
    livetime : float or Quantity, optional
        [s]
    gti : GTI, optional
    name : str, optional
        A random name when not given.
    meta : dict, optional
        Header-like metadata (OBS_ID, ...).
    energy_edges_native, energy_unit : optional
        The reconstructed edges in the unit they were read in (set from a Quantity ``energy_edges``);
        :meth:`energy_mask` compares in that unit, exactly as Gammapy does.
    """

    tag: ClassVar[str] = "SpectrumDataset"
    stat_type: ClassVar[str] = "cash"

    background: np.ndarray | None = None  # (defaults: see _AbstractSpectrumDataset.name)

    def __init__(
        self,
        *,
        counts: Any = None,
        background: Any = None,
        exposure: Any = None,
        edisp: Any = None,
        energy_edges: Any,
        energy_true_edges: Any = None,
        mask_safe: Any = None,
        mask_fit: Any = None,
        livetime: Any = None,
        gti: Any = None,
        name: str | None = None,
        meta: Any = None,
        energy_edges_native: Any = None,
        energy_unit: str | None = None,
        geom: Any = None,
        edisp_exposure: Any = None,
    ):
        self._init_common(
            name,
            counts,
            exposure,
            edisp,
            energy_edges,
            energy_true_edges,
            mask_safe,
            mask_fit,
            livetime,
            gti,
            meta,
            energy_edges_native,
            energy_unit,
            geom,
            edisp_exposure,
        )
        self.background = _as_array(
            background, "", f"SpectrumDataset {self.name!r}: background", (self.n_bins,)
        )

    @classmethod
    def create(
        cls, geom: Any, energy_axis_true: Any = None, name: str | None = None, **kwargs: Any
    ) -> SpectrumDataset:
        """An empty spectrum on ``geom`` (a :class:`~jaxgamma.geom.RegionGeom` with an ``energy``
        axis), the reference a :class:`~jaxgamma.makers.SpectrumDatasetMaker` fills, as Gammapy's
        ``SpectrumDataset.create``: zero counts, background and exposure, the true-energy axis
        ``energy_axis_true`` (default: the reconstructed one). Gammapy's IRF-map options
        (``binsz_irf``, ``reco_psf``, ...) have no meaning for a spectrum and are refused."""
        from ..geom.region import RegionGeom

        if kwargs:
            raise TypeError(f"SpectrumDataset.create: unexpected arguments {sorted(kwargs)}")
        if not isinstance(geom, RegionGeom):
            raise TypeError(f"SpectrumDataset.create: geom must be a RegionGeom, got {type(geom).__name__}")
        energy_axis = geom.axis("energy")
        edges = energy_axis.edges_in("TeV")
        true_edges = edges if energy_axis_true is None else energy_axis_true.edges_in("TeV")
        n, n_true = edges.size - 1, true_edges.size - 1
        return cls(
            counts=np.zeros(n),
            background=np.zeros(n),
            exposure=np.zeros(n_true),
            energy_edges=edges,
            energy_true_edges=true_edges,
            name=name,
            geom=geom,
        )

    def plan(self, models: Any) -> SpectrumPlan:
        fields = self._plan_signal_fields(models)
        background = np.zeros(self.n_bins) if self.background is None else np.asarray(self.background)
        return SpectrumPlan(background=background, **fields)

    @property
    def excess(self) -> np.ndarray | None:
        if self.counts is None or self.background is None:
            return None
        return self.counts - self.background

    def _excess_error(self, models: Any) -> np.ndarray:
        from ..stats import CashCountsStatistic

        return np.asarray(CashCountsStatistic(self.counts, self.npred_background(models)).error)

    def fake(self, models: Any, seed: Any = None) -> SpectrumDataset:
        """A copy whose counts are a Poisson realisation of ``npred(models)`` (seeded as Gammapy)."""
        npred = self.npred(models)
        data = np.nan_to_num(npred, nan=0.0, posinf=0.0, neginf=0.0)
        counts = _random_state(seed).poisson(data).astype(np.float64)
        return cast(SpectrumDataset, self.replace(counts=counts))

    def info_dict(self, models: Any = None, in_safe_data_range: bool = True) -> dict[str, Any]:
        """Summary numbers as Gammapy's ``info_dict`` (floats: exposure in cm2 s, times in s)."""
        info, mask = self._info_common(models, in_safe_data_range)
        background = excess = sqrt_ts = np.nan
        if self.counts is not None and self.background is not None:
            n_on = float(np.sum(self.counts[mask]))
            background = float(np.sum(self.background[mask]))
            excess = n_on - background
            ts = float(cash(n_on, background) - cash(n_on, n_on + 0.0))
            sqrt_ts = float(np.sign(excess) * np.sqrt(max(ts, 0.0)))
        info["excess"] = excess
        info["sqrt_ts"] = sqrt_ts
        info["background"] = background
        return self._info_tail(info, models, mask)

    def write(self, path: Any, overwrite: bool = False, format: str = "gadf") -> None:
        """Write Gammapy's dataset file (``format="gadf"``, its default: one FITS file of region
        maps, read by :meth:`read` and Gammapy's ``SpectrumDataset.read``); written atomically,
        refused if it exists unless ``overwrite``. OGIP files hold only ON/OFF spectra."""
        if format != "gadf":
            raise ValueError(
                f"SpectrumDataset.write: unsupported format {format!r} (supported: 'gadf'; OGIP files hold "
                "ON/OFF spectra, see SpectrumDatasetOnOff)"
            )
        _write_gadf(self, path, overwrite)

    @classmethod
    def read(cls, path: Any, name: str | None = None, format: str = "gadf") -> SpectrumDataset:
        """Read Gammapy's dataset file of a spectrum (``format="gadf"``), as Gammapy's ``read``."""
        if format != "gadf":
            raise ValueError(f"SpectrumDataset.read: unsupported format {format!r} (supported: 'gadf')")
        from ..io.datasets import read_spectrum_dataset

        return cast(SpectrumDataset, read_spectrum_dataset(path, name=name, tag="SpectrumDataset"))


class SpectrumDatasetOnOff(_AbstractSpectrumDataset):
    """Spectrum dataset with ON and OFF counts: WStat statistic (background profiled out).

    Parameters
    ----------
    counts, counts_off : array (Er,)
    acceptance, acceptance_off : array (Er,)
        ON and OFF acceptances (OGIP ``BACKSCAL``); ``alpha = acceptance / acceptance_off``.
    exposure, edisp, energy_edges, energy_true_edges, mask_safe, mask_fit, livetime, gti, name, meta :
        as :class:`SpectrumDataset`.
    """

    tag: ClassVar[str] = "SpectrumDatasetOnOff"
    stat_type: ClassVar[str] = "wstat"

    counts_off: np.ndarray | None = None
    acceptance: np.ndarray | None = None
    acceptance_off: np.ndarray | None = None

    def __init__(
        self,
        *,
        counts: Any = None,
        counts_off: Any = None,
        acceptance: Any = None,
        acceptance_off: Any = None,
        exposure: Any = None,
        edisp: Any = None,
        energy_edges: Any,
        energy_true_edges: Any = None,
        mask_safe: Any = None,
        mask_fit: Any = None,
        livetime: Any = None,
        gti: Any = None,
        name: str | None = None,
        meta: Any = None,
        energy_edges_native: Any = None,
        energy_unit: str | None = None,
        geom: Any = None,
        edisp_exposure: Any = None,
    ):
        self._init_common(
            name,
            counts,
            exposure,
            edisp,
            energy_edges,
            energy_true_edges,
            mask_safe,
            mask_fit,
            livetime,
            gti,
            meta,
            energy_edges_native,
            energy_unit,
            geom,
            edisp_exposure,
        )
        what = f"SpectrumDatasetOnOff {self.name!r}"
        shape = (self.n_bins,)
        self.counts_off = _as_array(counts_off, "", f"{what}: counts_off", shape)
        self.acceptance = _as_array(acceptance, "", f"{what}: acceptance", shape)
        self.acceptance_off = _as_array(acceptance_off, "", f"{what}: acceptance_off", shape)

    @classmethod
    def from_spectrum_dataset(
        cls,
        dataset: SpectrumDataset,
        acceptance: Any = None,
        acceptance_off: Any = None,
        counts_off: Any = None,
        name: str | None = None,
    ) -> SpectrumDatasetOnOff:
        """An ON/OFF spectrum from a spectrum and OFF counts and acceptances (Gammapy's
        ``SpectrumDatasetOnOff.from_spectrum_dataset``); scalars are broadcast over the bins.
        Without ``counts_off``, they are the spectrum's background divided by
        ``alpha = acceptance / acceptance_off`` (when it has one), as Gammapy."""
        if not isinstance(dataset, SpectrumDataset):
            raise TypeError(
                f"SpectrumDatasetOnOff.from_spectrum_dataset: expected a SpectrumDataset, got {type(dataset).__name__}"
            )
        n = dataset.n_bins

        def per_bin(value: Any) -> Any:
            if value is None:
                return None
            return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()

        if counts_off is None and dataset.background is not None and acceptance is not None and acceptance_off is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha = per_bin(acceptance) / per_bin(acceptance_off)
                counts_off = np.asarray(dataset.background) / alpha
        return cls(
            counts=dataset.counts,
            counts_off=per_bin(counts_off),
            acceptance=per_bin(acceptance),
            acceptance_off=per_bin(acceptance_off),
            exposure=dataset.exposure,
            edisp=dataset.edisp,
            energy_edges=dataset.energy_edges,
            energy_edges_native=dataset.energy_edges_native,
            energy_unit=dataset.energy_unit,
            energy_true_edges=dataset.energy_true_edges,
            mask_safe=dataset.mask_safe,
            mask_fit=dataset.mask_fit,
            livetime=dataset.livetime,
            gti=dataset.gti,
            name=dataset.name if name is None else name,
            meta=dataset.meta,
            geom=dataset.geom,
            edisp_exposure=dataset.edisp_exposure,
        )

    # -- derived quantities ----------------------------------------------------------------------
    @property
    def alpha(self) -> np.ndarray:
        """``acceptance / acceptance_off``, non-finite values set to 0 (as Gammapy)."""
        if self.acceptance is None or self.acceptance_off is None:
            raise ValueError(f"SpectrumDatasetOnOff {self.name!r}: alpha needs acceptance and acceptance_off")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(self.acceptance / self.acceptance_off)

    @property
    def background(self) -> np.ndarray | None:
        """``alpha * counts_off`` (None without OFF counts)."""
        if self.counts_off is None:
            return None
        return self.alpha * self.counts_off

    @property
    def excess(self) -> np.ndarray | None:
        if self.counts is None or self.counts_off is None:
            return None
        return self.counts - self.background

    def _excess_error(self, models: Any) -> np.ndarray:
        from ..stats import WStatCountsStatistic

        return np.asarray(WStatCountsStatistic(self.counts, self.counts_off, self.alpha).error)

    def _residual_wstat(self, models: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if self.counts_off is None or self.background is None:
            return None
        return np.asarray(self.counts_off, dtype=np.float64), self.background, self.npred_signal(models)

    def plan(self, models: Any) -> SpectrumOnOffPlan:
        fields = self._plan_signal_fields(models)
        mask_safe_any = self.mask_safe_image
        if self.counts_off is None:
            if mask_safe_any:
                raise ValueError(f"SpectrumDatasetOnOff {self.name!r}: no OFF counts (counts_off is None)")
            counts_off = np.zeros(self.n_bins)
            alpha = np.zeros(self.n_bins)
        else:
            counts_off = np.asarray(self.counts_off)
            alpha = np.asarray(self.alpha)
        return SpectrumOnOffPlan(
            counts_off=counts_off,
            alpha=alpha,
            empty=self.counts_off is None and not mask_safe_any,
            **fields,
        )

    def npred_off(self, models: Any = None) -> np.ndarray:
        """Predicted OFF counts ``mu_bkg`` per bin."""
        return self._eval(models, "npred_off")

    def fake(self, models: Any, seed: Any = None, npred_background: Any = None) -> SpectrumDatasetOnOff:
        """A copy with Poisson realisations of the counts and OFF counts, as Gammapy's ``fake``.

        ``counts ~ Poisson(npred_signal) + Poisson(npred_background)`` and
        ``counts_off ~ Poisson(npred_background / alpha)``, drawn in that order from
        ``numpy.random.RandomState(seed)`` (the same draws as Gammapy for the same seed).
        ``npred_background`` (ON-region background counts per bin) defaults to this dataset's
        profile-likelihood background ``alpha * mu_bkg`` for ``models``.
        """
        models = _as_models(models)
        signal, background = _evaluate(self.plan(models), models, "signal_and_background")
        npred_signal = np.asarray(signal)
        if npred_background is None:
            npred_background = np.asarray(background)
        npred_background = np.asarray(npred_background, dtype=np.float64)
        if npred_background.shape != (self.n_bins,):
            raise ValueError(
                f"SpectrumDatasetOnOff {self.name!r}: npred_background has shape {npred_background.shape}, "
                f"expected {(self.n_bins,)}"
            )
        rng = _random_state(seed)
        signal = rng.poisson(np.nan_to_num(npred_signal, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.float64)
        background = rng.poisson(npred_background).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            npred_off = npred_background / self.alpha
        off = rng.poisson(np.nan_to_num(npred_off, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.float64)
        return cast(SpectrumDatasetOnOff, self.replace(counts=signal + background, counts_off=off))

    def to_spectrum_dataset(self, name: str | None = None) -> SpectrumDataset:
        """The Cash dataset with background ``alpha * counts_off``."""
        return SpectrumDataset(
            counts=self.counts,
            background=self.background,
            exposure=self.exposure,
            edisp=self.edisp,
            energy_edges=self.energy_edges,
            energy_edges_native=self.energy_edges_native,
            energy_unit=self.energy_unit,
            energy_true_edges=self.energy_true_edges,
            mask_safe=self.mask_safe,
            mask_fit=self.mask_fit,
            livetime=self.livetime,
            gti=self.gti,
            name=name,
            meta=self.meta,
            geom=self.geom,
            edisp_exposure=self.edisp_exposure,
        )

    # -- summaries -------------------------------------------------------------------------------
    def info_dict(self, models: Any = None, in_safe_data_range: bool = True) -> dict[str, Any]:
        """Summary numbers as Gammapy's ``info_dict`` (floats: exposure in cm2 s, times in s)."""
        info, mask = self._info_common(models, in_safe_data_range)
        background = excess = sqrt_ts = np.nan
        n_off = 0.0
        alpha_sum = np.nan
        if self.counts is not None and self.counts_off is not None:
            n_on = float(np.sum(self.counts[mask]))
            n_off = float(np.sum(self.counts_off[mask]))
            n_bkg = float(np.sum((self.alpha * self.counts_off)[mask]))
            background = n_bkg
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha_sum = n_bkg / n_off if n_off != 0 else np.nan
            excess = n_on - alpha_sum * n_off if n_off != 0 else np.nan
            if np.isfinite(alpha_sum):
                stat_null = float(wstat(n_on, n_off, alpha_sum, 0.0))
                stat_max = float(wstat(n_on, n_off, alpha_sum, excess))
                sqrt_ts = float(np.sign(excess) * np.sqrt(max(stat_null - stat_max, 0.0)))
        info["excess"] = excess
        info["sqrt_ts"] = sqrt_ts
        info["background"] = background
        info = self._info_tail(info, models, mask)
        info["counts_off"] = int(n_off)
        acceptance = 1.0 if self.acceptance is None else float(np.sum(self.acceptance[mask]))
        info["acceptance"] = acceptance
        acceptance_off = np.nan
        alpha = np.nan
        if self.acceptance_off is not None:
            alpha = alpha_sum
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptance_off = acceptance / alpha
        info["acceptance_off"] = float(acceptance_off)
        info["alpha"] = float(alpha)
        return info

    def _summary_lines(self, info: dict[str, Any], models: Any) -> list[str]:
        lines = super()._summary_lines(info, models)
        mask = self.mask_safe if self.mask_safe is not None else slice(None)

        def total(a: np.ndarray | None) -> float:
            return np.nan if a is None else float(np.sum(a[mask]))

        lines += [
            f"  {'Total counts_off':32}: {total(self.counts_off):.0f} ",
            f"  {'Acceptance':32}: {total(self.acceptance):.0f} ",
            f"  {'Acceptance off':32}: {total(self.acceptance_off):.0f} ",
        ]
        return lines

    # -- I/O -------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Any, name: str | None = None, format: str | None = None) -> SpectrumDatasetOnOff:
        """Read a dataset file, as Gammapy's ``SpectrumDatasetOnOff.read``.

        ``format="ogip"``: a PHA file and the BKG, ARF and RMF its header names (relative to the
        PHA's folder), as Gammapy's ``OGIPDatasetReader``; ``name`` defaults to ``OBS_ID``.
        ``format="gadf"``: Gammapy's own dataset file (``dataset.write(path)``); Gammapy stores
        no livetime in it (jaxgamma's files carry it as a keyword, read back here). ``None``
        decides from the file's HDUs, as Gammapy does.
        """
        from ..io.ogip import detect_format, read_gadf_spectrum, read_ogip

        if format is None:
            format = detect_format(path)
        if format == "ogip":
            return cls(**read_ogip(path, name=name))
        if format == "gadf":
            from ..io.datasets import _livetime_keyword, _path

            kwargs = read_gadf_spectrum(path, name=name)
            kwargs["livetime"] = _livetime_keyword(_path(path))
            return cls(**kwargs)
        raise ValueError(
            f"SpectrumDatasetOnOff.read: unsupported format {format!r} (supported: 'ogip', 'gadf')"
        )

    def write(self, path: Any, overwrite: bool = False, format: str = "gadf") -> None:
        """Write the dataset as Gammapy 2.1 does: ``format="gadf"`` (its default) one FITS file of
        region maps (with the livetime as a keyword, which Gammapy ignores); ``format="ogip"``
        OGIP files as Gammapy's ``OGIPDatasetWriter``: ``path`` (PHA) and ``<stem>_bkg``,
        ``<stem>_arf``, ``<stem>_rmf`` beside it. All files or none are written; existing files
        are refused unless ``overwrite``."""
        if format == "gadf":
            _write_gadf(self, path, overwrite)
            return
        if format != "ogip":
            raise ValueError(
                f"SpectrumDatasetOnOff.write: unsupported format {format!r} (supported: 'gadf', 'ogip')"
            )
        from ..io.ogip import write_ogip

        write_ogip(self, os.fspath(path), overwrite=overwrite)


def _write_gadf(dataset: Any, path: Any, overwrite: bool) -> None:
    from ..io._atomic import atomic_paths
    from ..io.datasets import spectrum_dataset_to_hdulist

    hdulist = spectrum_dataset_to_hdulist(dataset)
    with atomic_paths(os.path.expandvars(os.fspath(path)), overwrite=overwrite) as (tmp,):
        hdulist.writeto(tmp, overwrite=True)


# -- stacking --------------------------------------------------------------------------------------
def _check_stackable(datasets: list[Any], cls: type) -> None:
    if not datasets:
        raise ValueError("cannot stack an empty list of datasets")
    for d in datasets:
        if not isinstance(d, cls):
            raise TypeError(f"stacking {cls.__name__}: got {type(d).__name__} {getattr(d, 'name', '')!r}")
    ref = datasets[0]
    for d in datasets[1:]:
        if d.energy_edges.shape != ref.energy_edges.shape or not np.allclose(
            d.energy_edges, ref.energy_edges, rtol=1e-10, atol=0
        ):
            raise ValueError(f"cannot stack {d.name!r} on {ref.name!r}: reconstructed energy edges differ")
        if d.energy_true_edges.shape != ref.energy_true_edges.shape or not np.allclose(
            d.energy_true_edges, ref.energy_true_edges, rtol=1e-10, atol=0
        ):
            raise ValueError(f"cannot stack {d.name!r} on {ref.name!r}: true energy edges differ")


def _safe(d: Any) -> np.ndarray:
    return np.ones(d.n_bins, dtype=bool) if d.mask_safe is None else d.mask_safe


def _stack_common(datasets: list[Any], name: str | None) -> dict[str, Any]:
    """Counts, exposure, edisp, masks, livetime and GTI stacked as Gammapy's ``MapDataset.stack``
    onto ``datasets[0].to_masked()``."""
    ref = datasets[0]
    n_true = ref.energy_true_edges.size - 1
    counts = np.zeros(ref.n_bins)
    for d in datasets:
        if d.counts is not None:
            counts += np.nan_to_num(d.counts) * _safe(d)

    # exposure and the edisp exposure weights: summed where the dataset has any safe bin
    exposure = None
    if ref.exposure is not None:
        exposure = np.zeros(n_true)
        for d in datasets:
            if d.exposure is not None:
                exposure += np.nan_to_num(d.exposure) * float(d.mask_safe_image)

    # edisp: exposure-weighted mean, each dataset's kernel weighted by its safe reco bins
    # (weights: the edisp exposure where a dataset has one, as Gammapy's edisp exposure maps)
    edisp = edisp_exposure = None
    if ref.edisp is not None:
        numerator = np.zeros((n_true, ref.n_bins))
        weight = np.zeros((n_true, 1))
        for d in datasets:
            if d.edisp is None:
                continue
            x = d.edisp_exposure if d.edisp_exposure is not None else d.exposure
            x = np.zeros(n_true) if x is None else np.nan_to_num(x)
            numerator += np.nan_to_num(d.edisp * x[:, None]) * _safe(d)[None, :]
            weight += x[:, None] * float(d.mask_safe_image)
        with np.errstate(invalid="ignore", divide="ignore"):
            edisp = np.nan_to_num(numerator / weight)
        if any(d.edisp_exposure is not None for d in datasets):
            edisp_exposure = weight[:, 0]

    mask_safe = np.zeros(ref.n_bins, dtype=bool)
    for d in datasets:
        mask_safe |= _safe(d)
    mask_fit = None
    for d in datasets:
        if d.mask_fit is not None:
            mask_fit = d.mask_fit.copy() if mask_fit is None else (mask_fit | d.mask_fit)

    livetime = None
    for d in datasets:
        if d.livetime is not None and d.mask_safe_image:
            livetime = d.livetime if livetime is None else livetime + d.livetime

    gtis = [d.gti for d in datasets if d.gti is not None]
    gti = gtis[0].stack_union(gtis[1:]) if gtis else None

    obs_ids = [dict(d.meta).get("OBS_ID", d.name) for d in datasets]
    return {
        "counts": counts,
        "exposure": exposure,
        "edisp": edisp,
        "energy_edges": ref.energy_edges,
        "energy_edges_native": ref.energy_edges_native,
        "energy_unit": ref.energy_unit,
        "energy_true_edges": ref.energy_true_edges,
        "mask_safe": mask_safe,
        "mask_fit": mask_fit,
        "livetime": livetime,
        "gti": gti,
        "name": _make_name() if name is None else name,
        "meta": {"OBS_IDS": tuple(str(o) for o in obs_ids)},
        "geom": ref.geom,
        "edisp_exposure": edisp_exposure,
    }


def stack_onoff(datasets: Iterable[SpectrumDatasetOnOff], name: str | None = None) -> SpectrumDatasetOnOff:
    """Stack ON/OFF spectra as Gammapy's ``Datasets.stack_reduce`` (float64 throughout).

    With ``m_i`` the safe masks: counts, OFF counts and acceptances are masked sums,
    ``acceptance_off = acceptance * n_off / sum_i(m_i alpha_i n_off_i)`` so that the stacked alpha
    is the OFF-weighted mean of the alphas; where the stacked ``n_off`` is 0,
    ``acceptance_off = acceptance / mean_alpha`` with ``mean_alpha = sum(m alpha n_off) / sum(m n_off)``
    over all bins. Exposure is summed over datasets with any safe bin, the edisp matrix is their
    exposure-weighted mean (weighted by the safe reco bins), masks are ORed, livetimes summed and
    the GTIs merged. Gammapy stores the stacked maps as float32, so its numbers differ from these at
    the 1e-8 level.
    """
    datasets = list(datasets)
    _check_stackable(datasets, SpectrumDatasetOnOff)
    for d in datasets:
        incomplete = d.counts_off is None or d.acceptance is None or d.acceptance_off is None
        if incomplete and d.mask_safe_image:
            raise ValueError(
                f"cannot stack incomplete SpectrumDatasetOnOff {d.name!r} (no OFF counts or acceptances)"
            )
    common = _stack_common(datasets, name)
    n = datasets[0].n_bins
    total_off = np.zeros(n)
    total_alpha = np.zeros(n)
    total_acceptance = np.zeros(n)
    for d in datasets:
        m = _safe(d)
        if d.acceptance is not None:
            total_acceptance += np.nan_to_num(d.acceptance) * m
        if d.counts_off is not None:
            total_off += np.nan_to_num(d.counts_off) * m
            total_alpha += np.nan_to_num(d.alpha * d.counts_off) * m
    with np.errstate(divide="ignore", invalid="ignore"):
        acceptance_off = total_acceptance * total_off / total_alpha
        average_alpha = total_alpha.sum() / total_off.sum()
        is_zero = total_off == 0
        acceptance_off[is_zero] = total_acceptance[is_zero] / average_alpha
    return SpectrumDatasetOnOff(
        counts_off=total_off,
        acceptance=total_acceptance,
        acceptance_off=acceptance_off,
        **common,
    )


def stack_spectrum(datasets: Iterable[SpectrumDataset], name: str | None = None) -> SpectrumDataset:
    """Stack Cash spectra as Gammapy's ``Datasets.stack_reduce``: as :func:`stack_onoff` for counts,
    exposure, edisp, masks and livetime; the background is the masked sum of the backgrounds."""
    datasets = list(datasets)
    _check_stackable(datasets, SpectrumDataset)
    common = _stack_common(datasets, name)
    background = None
    if datasets[0].background is not None:
        background = np.zeros(datasets[0].n_bins)
        for d in datasets:
            if d.background is not None:
                background += np.nan_to_num(d.background) * _safe(d)
    return SpectrumDataset(background=background, **common)


def _stack_datasets_onoff(cls: type, datasets: list[Any], name: str | None = None) -> SpectrumDatasetOnOff:
    return stack_onoff(datasets, name=name)


def _stack_datasets_spectrum(cls: type, datasets: list[Any], name: str | None = None) -> SpectrumDataset:
    return stack_spectrum(datasets, name=name)


# ``Datasets.stack_reduce`` dispatches on these
SpectrumDatasetOnOff.stack_datasets = classmethod(_stack_datasets_onoff)  # type: ignore[attr-defined]
SpectrumDataset.stack_datasets = classmethod(_stack_datasets_spectrum)  # type: ignore[attr-defined]
