"""Energy-dependent morphology (Gammapy 2.1's ``EnergyDependentMorphologyEstimator`` and
``weighted_chi2_parameter``; Feijen et al. 2025).

The dataset is sliced into energy bands; the source's morphology is fitted in each band on its own
(hypothesis H1: one set of spatial parameters per band) and jointly with the spatial parameters
linked across the bands (H0: one morphology, a spectrum per band). The TS between the two says how
significant an energy dependence of the morphology is. Each band also gets the significance of the
source above the background (the band's fit against the same fit without the source).

Each band's dataset is named ``f"{source}_{i}"``, its copy of the source ``f"{source}_{i}-model"``
and its own FoV background model (norm free) is added, as in Gammapy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np

from ..datasets.core import _as_models
from ..models.sky import FoVBackgroundModel, Models
from ..parameters import ParameterVector, iter_parameters
from ..stats import ts_to_sigma

__all__ = ["EnergyDependentMorphologyEstimator", "weighted_chi2_parameter"]


def weighted_chi2_parameter(results_edep: dict[str, Any], parameters: Sequence[str] = ("sigma",)) -> dict[str, Any]:
    r"""The weighted chi-squared of the per-band values of each parameter about their weighted
    mean, :math:`\chi^2 = \sum_i (x_i - \bar\mu)^2 / \sigma_i^2`, with ``n_bands - 1`` degrees of
    freedom and its significance (Gammapy's ``weighted_chi2_parameter``; it ignores the
    correlations between parameters).

    ``results_edep`` is ``run(...)["energy_dependence"]["result"]`` (the first row, the joint
    hypothesis, is left out).
    """
    if isinstance(parameters, str):
        parameters = [parameters]
    chi2_value, df = [], []
    for parameter in parameters:
        if parameter not in results_edep or f"{parameter}_err" not in results_edep:
            raise KeyError(
                f"weighted_chi2_parameter: no {parameter!r} (and {parameter}_err) in the results; "
                f"they hold {[k for k in results_edep if k not in ('Hypothesis', 'Emin', 'Emax')]}"
            )
        values = u.Quantity(results_edep[parameter][1:])
        errors = u.Quantity(results_edep[f"{parameter}_err"][1:]).to(values.unit)
        weights = 1 / errors**2
        avg = np.average(values, weights=weights)
        chi2_value.append(float(np.sum((values - avg) ** 2 / errors**2).to_value(u.one)))
        df.append(len(values) - 1)
    return {
        "parameter": list(parameters),
        "chi2": chi2_value,
        "df": df,
        "significance": [ts_to_sigma(c, d) for c, d in zip(chi2_value, df, strict=True)],
    }


class EnergyDependentMorphologyEstimator:
    """Test a source's morphology for an energy dependence (Gammapy's
    ``EnergyDependentMorphologyEstimator``).

    Parameters
    ----------
    energy_edges : Quantity or list of str
        Energy edges of the bands (each band is the dataset's reconstructed-energy bins in it).
    source : str or int
        The source model, by name or index in the models (default 0).
    fit_options : dict, optional
        Keyword arguments of :func:`jaxgamma.fit` (Gammapy's ``fit``).

    Examples
    --------
    >>> estimator = EnergyDependentMorphologyEstimator(energy_edges=[0.3, 1, 3, 100] * u.TeV, source="src")
    >>> results = estimator.run(dataset, models)
    >>> results["energy_dependence"]["delta_ts"], results["src_above_bkg"]["significance"]
    >>> weighted_chi2_parameter(results["energy_dependence"]["result"], ["sigma"])
    """

    tag = "EnergyDependentMorphologyEstimator"

    def __init__(self, energy_edges: Any, source: str | int = 0, fit_options: dict[str, Any] | None = None):
        edges = u.Quantity(energy_edges if not isinstance(energy_edges, list | tuple) else [u.Quantity(e) for e in energy_edges])
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges.value) > 0):
            raise ValueError(
                f"EnergyDependentMorphologyEstimator: energy_edges must be two or more increasing energies, got {edges}"
            )
        self.energy_edges = edges.to("TeV")
        self.source = source
        self.fit_options = dict(fit_options or {})

    @property
    def num_energy_bands(self) -> int:
        return len(self.energy_edges) - 1

    # -- the bands -------------------------------------------------------------------------------------
    def _source_name(self, models: Models) -> str:
        if isinstance(self.source, int):
            try:
                return str(models[self.source].name)
            except IndexError:
                raise ValueError(
                    f"EnergyDependentMorphologyEstimator: no model at index {self.source}; models: {models.names}"
                ) from None
        if self.source not in models.names:
            raise ValueError(f"EnergyDependentMorphologyEstimator: no model named {self.source!r}; models: {models.names}")
        return str(self.source)

    def _slices(self, datasets: Any, models: Any) -> tuple[list[tuple[Any, Models]], str, list[str]]:
        """``[(band dataset, its models)]``, the source name and its free spatial parameters."""
        from .points import _as_datasets

        datasets, models = _as_datasets(datasets), _as_models(models)
        if len(datasets) != 1:
            raise ValueError(
                "EnergyDependentMorphologyEstimator: give one map dataset (stack the observations "
                f"first); got {len(datasets)} (Gammapy's band names would collide)"
            )
        dataset = datasets[0]
        if not hasattr(dataset, "slice_by_energy") or not hasattr(dataset, "geom"):
            raise TypeError(f"EnergyDependentMorphologyEstimator: needs a map dataset, got {type(dataset).__name__}")
        name = self._source_name(models)
        source = models[name]
        if getattr(source, "spatial_model", None) is None:
            raise ValueError(f"EnergyDependentMorphologyEstimator: the source {name!r} has no spatial model")
        spatial = [n.split(".", 1)[1] for n, p in iter_parameters(Models([source])) if n.startswith(f"{name}.spatial.") and not p.frozen]
        if not spatial:
            raise ValueError(f"EnergyDependentMorphologyEstimator: the source {name!r} has no free spatial parameter")
        # the other models that applied to the dataset apply to every band (its own FoV background
        # is replaced by one per band)
        others = [
            m for m in models
            if m.name != name and not isinstance(m, FoVBackgroundModel) and m.applies_to(dataset.name)
        ]  # fmt: skip
        slices = []
        for i, (low, high) in enumerate(zip(self.energy_edges[:-1], self.energy_edges[1:], strict=True)):
            band = f"{name}_{i}"
            sliced = dataset.slice_by_energy(low, high, name=band)
            band_models = [
                source.replace(name=f"{band}-model", datasets_names=[band]),
                *(m.replace(datasets_names=[band]) if m.datasets_names is not None else m for m in others),
                FoVBackgroundModel(dataset_name=band),
            ]
            slices.append((sliced, Models(band_models)))
        return slices, name, spatial

    def _fit(self, datasets: Any, models: Models) -> Any:
        from ..fit import fit

        return fit(datasets, models, **self.fit_options)

    # -- the two tests ------------------------------------------------------------------------------------
    def estimate_energy_dependence(self, datasets: Any, models: Any) -> dict[str, Any]:
        """The fits per band (H1) and the joint fit with the spatial parameters linked across the
        bands (H0).

        Returns
        -------
        dict
            ``delta_ts`` (H0 minus the sum of the H1 statistics), ``df`` (free parameters of the
            band fits minus those of the joint fit) and ``result``: ``Hypothesis`` (``["H0", "H1",
            ...]``), ``Emin``, ``Emax`` and each free spatial parameter with its error (the joint
            value first, then one per band), as Gammapy's.
        """
        return self._energy_dependence(*self._band_fits(datasets, models))

    def _band_fits(self, datasets: Any, models: Any) -> tuple[list[tuple[Any, Models]], str, list[str], list[Any]]:
        slices, name, spatial = self._slices(datasets, models)
        return slices, name, spatial, [self._fit(d, m) for d, m in slices]

    def _energy_dependence(
        self, slices: list[tuple[Any, Models]], name: str, spatial: list[str], results: list[Any]
    ) -> dict[str, Any]:
        from ..datasets import Datasets

        df_bands = sum(len(r.parameter_names) for r in results)
        # the joint hypothesis starts from the band fits; other models are shared by the bands
        joint_models: list[Any] = []
        for result in results:
            joint_models += [m for m in result.models if m.name not in {j.name for j in joint_models}]
        joint = Models(joint_models)
        for parameter in spatial:
            joint = joint.link(*(f"{name}_{i}-model.{parameter}" for i in range(len(slices))))
        result_joint = self._fit(Datasets([d for d, _ in slices]), joint)
        delta_ts = result_joint.total_stat - float(np.sum([r.total_stat for r in results]))
        df = df_bands - len(result_joint.parameter_names)

        out: dict[str, Any] = {
            "Hypothesis": ["H0"] + ["H1"] * self.num_energy_bands,
            "Emin": np.append(self.energy_edges[0], self.energy_edges[:-1]),
            "Emax": np.append(self.energy_edges[-1], self.energy_edges[1:]),
        }
        for parameter in spatial:
            unit = u.Unit(dict(iter_parameters(joint))[f"{name}_0-model.{parameter}"].unit or "")
            key = parameter.split(".")[-1]
            values = [result_joint.value(f"{name}_0-model.{parameter}")]
            errors = [result_joint.error(f"{name}_0-model.{parameter}")]
            for i, r in enumerate(results):
                values.append(r.value(f"{name}_{i}-model.{parameter}"))
                errors.append(r.error(f"{name}_{i}-model.{parameter}"))
            out[key] = np.array(values) * unit
            out[f"{key}_err"] = np.array(errors) * unit
        return {"delta_ts": delta_ts, "df": df, "result": out, "fit_results": results, "fit_result_joint": result_joint}

    def estimate_source_significance(self, datasets: Any, models: Any) -> dict[str, Any]:
        """Per band: the TS of the source (the band's fit against the fit without the source,
        every other free parameter refitted), its degrees of freedom (the source's free
        parameters) and significance."""
        slices, name, _, results = self._band_fits(datasets, models)
        return self._significance(slices, name, results)

    def _significance(self, slices: list[tuple[Any, Models]], name: str, results: list[Any]) -> dict[str, Any]:
        delta_ts, dfs = [], []
        for i, ((dataset, band_models), result) in enumerate(zip(slices, results, strict=True)):
            source = f"{name}_{i}-model"
            without = Models([m for m in result.models if m.name != source])
            if len(ParameterVector.from_tree(without).names):
                stat_null = self._fit(dataset, without).total_stat
            else:
                from ..datasets import Datasets

                stat_null = float(Datasets([dataset]).stat_sum(without))
            delta_ts.append(stat_null - result.total_stat)
            dfs.append(len(ParameterVector.from_tree(Models([band_models[source]])).names))
        return {
            "Emin": self.energy_edges[:-1],
            "Emax": self.energy_edges[1:],
            "delta_ts": delta_ts,
            "df": dfs,
            "significance": [float(ts_to_sigma(t, d)) for t, d in zip(delta_ts, dfs, strict=True)],
        }

    def run(self, datasets: Any, models: Any) -> dict[str, Any]:
        """Both tests: ``{"energy_dependence": estimate_energy_dependence(...), "src_above_bkg":
        estimate_source_significance(...)}`` (Gammapy's keys; the band fits are also returned,
        under ``energy_dependence["fit_results"]`` and ``["fit_result_joint"]``)."""
        slices, name, spatial, results = self._band_fits(datasets, models)
        return {
            "energy_dependence": self._energy_dependence(slices, name, spatial, results),
            "src_above_bkg": self._significance(slices, name, results),
        }
