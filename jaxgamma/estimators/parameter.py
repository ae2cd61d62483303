"""One model parameter: best fit, error, TS against a null value, profile-likelihood interval,
upper limit, statistic profile and sensitivity (Gammapy 2.1's ``ParameterEstimator``).

Every step is a tool jaxgamma already has: the best fit and its covariance error are
:func:`jaxgamma.fit`, the TS the (profiled) statistic with the parameter held at ``null_value``,
the asymmetric errors and the upper limit :func:`jaxgamma.confidence`, the profile
:func:`jaxgamma.stat_profile`. The sensitivity is Gammapy's ``ParameterSensitivityEstimator``: the
value whose Asimov datasets (counts = the prediction at that value, every other parameter at its
best fit) give a TS of ``n_sigma_sensitivity^2`` against the null value (Wald's approximation,
``ts_to_sigma(ts, ts_asimov=ts) = sqrt(ts)``); the Asimov TS of the whole search grid is one
vmapped evaluation.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from ..datasets.core import OnOffPlanMixin, _as_models
from ..parameters import ParameterVector, iter_parameters, map_parameters, resolve_parameter_name
from ..stats import cash, masked_sum, wstat
from .core import parse_selection_optional

__all__ = ["ParameterEstimator", "ParameterSensitivityEstimator", "parameter_matching_significance"]

_SELECTION_OPTIONAL = ("errn-errp", "ul", "scan", "sensitivity")


def _resolve(models: Any, name: str, owner: str = "ParameterEstimator") -> str:
    """The full name of parameter ``name`` (a full name or a unique suffix such as ``"index"``)."""
    return resolve_parameter_name(models, name, owner)


def _asimov_ts_plan(plan: Any, models: Any, null_models: Any) -> Any:
    """Gammapy's ``ts_known_bkg`` on the Asimov dataset of one plan: the statistic with counts =
    the prediction of ``models``, at ``null_models`` minus at ``models``."""
    if isinstance(plan, OnOffPlanMixin):
        if plan.empty:  # type: ignore[attr-defined]
            return jnp.asarray(0.0)
        counts = jnp.nan_to_num(plan.npred(models), nan=0.0, posinf=0.0, neginf=0.0)
        off, alpha = plan.counts_off, plan.alpha  # type: ignore[attr-defined]
        null = wstat(counts, off, alpha, plan.npred_signal(null_models))  # type: ignore[attr-defined]
        alt = wstat(counts, off, alpha, plan.npred_signal(models))  # type: ignore[attr-defined]
    else:
        counts = jnp.nan_to_num(plan.npred(models), nan=0.0, posinf=0.0, neginf=0.0)
        null = cash(counts, plan.npred(null_models))
        alt = cash(counts, counts)
    return masked_sum(null - alt, plan.mask)  # type: ignore[attr-defined]


@eqx.filter_jit
def _asimov_ts(plans: tuple[Any, ...], models: Any, vector: ParameterVector, values: Any, null: Any) -> Any:
    """The Asimov TS at each of ``values`` (the one free parameter of ``models``), vmapped."""
    null_models = vector.unflatten(jnp.reshape(null, (1,)), models)

    def one(value: Any) -> Any:
        alt = vector.unflatten(jnp.reshape(value, (1,)), models)
        return sum((_asimov_ts_plan(p, alt, null_models) for p in plans), jnp.asarray(0.0))

    return jax.vmap(one)(values)


def scale_grid(lo: Any, hi: Any, n: int, interp: str) -> np.ndarray:
    """``n`` points from ``lo`` to ``hi`` (numbers or arrays: the points along a new last axis)
    evenly spaced in Gammapy's interpolation scale (``log`` clips at the smallest positive float and
    maps it back to 0, as Gammapy's ``LogScale``)."""
    if interp == "log":
        tiny = np.finfo(np.float64).tiny
        grid = np.exp(np.linspace(np.log(np.maximum(lo, tiny)), np.log(np.maximum(hi, tiny)), n, axis=-1))
        return np.where(np.abs(grid) - tiny <= tiny, 0.0, grid)
    return np.linspace(lo, hi, n, axis=-1)


class ParameterEstimator:
    """Estimate one model parameter from a group of datasets (Gammapy's ``ParameterEstimator``).

    Parameters
    ----------
    n_sigma : float
        Width of the error (``<name>_err`` is ``n_sigma`` times the covariance error) and of the
        asymmetric interval (default 1).
    n_sigma_ul : float
        Confidence level of the upper limit in sigma (default 2).
    n_sigma_sensitivity : float
        The significance of the sensitivity (default 5).
    null_value : float
        The parameter's value under the null hypothesis of the TS (default 1e-150, as Gammapy).
    selection_optional : list of str or "all", optional
        Any of "errn-errp", "ul", "scan", "sensitivity".
    reoptimize : bool
        True (default): the other free parameters are fitted with the parameter and re-optimised
        in the TS, the intervals and the profile. False: they stay at their values (they are frozen
        for the whole estimation, as Gammapy does).
    scan_values : array, optional
        The values of the statistic profile. Default: Gammapy's ``Parameter.scan_values``,
        ``scan_n_values`` points over ``value -+ scan_n_sigma x error`` (the error, else
        ``|value|``), evenly spaced in the parameter's ``interp`` scale. Gammapy keeps these
        settings on the parameter; jaxgamma's parameters are immutable, so they are the
        estimator's.
    scan_n_values : int
        Number of profile values (default 11).
    scan_n_sigma : float
        Half-width of the default profile range in errors (default 2).
    fit_options : dict, optional
        Keyword arguments of :func:`jaxgamma.fit` (``optimizer``, ``tol``, ``max_iter``, ...).

    Examples
    --------
    >>> estimator = ParameterEstimator(selection_optional="all")
    >>> result = estimator.run(datasets, models, "amplitude")
    >>> result["amplitude"], result["amplitude_err"], result["ts"], result["amplitude_ul"]
    """

    tag = "ParameterEstimator"

    def __init__(
        self,
        n_sigma: float = 1,
        n_sigma_ul: float = 2,
        n_sigma_sensitivity: float = 5,
        null_value: float = 1e-150,
        selection_optional: Any = None,
        reoptimize: bool = True,
        scan_values: Any = None,
        scan_n_values: int = 11,
        scan_n_sigma: float = 2,
        fit_options: dict[str, Any] | None = None,
    ):
        for label, value in (
            ("n_sigma", n_sigma),
            ("n_sigma_ul", n_sigma_ul),
            ("n_sigma_sensitivity", n_sigma_sensitivity),
            ("scan_n_sigma", scan_n_sigma),
        ):
            if not (np.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"{self.tag}: {label} must be a positive number, got {value!r}")
        self.n_sigma = float(n_sigma)
        self.n_sigma_ul = float(n_sigma_ul)
        self.n_sigma_sensitivity = float(n_sigma_sensitivity)
        self.null_value = float(null_value)
        if not np.isfinite(self.null_value):
            raise ValueError(f"{self.tag}: null_value must be finite, got {null_value!r}")
        self.selection_optional = parse_selection_optional(selection_optional, _SELECTION_OPTIONAL, self.tag)
        self.reoptimize = bool(reoptimize)
        if scan_values is not None:
            scan_values = np.atleast_1d(np.asarray(scan_values, dtype=np.float64))
            if scan_values.ndim != 1 or scan_values.size < 1 or not np.all(np.isfinite(scan_values)):
                raise ValueError(f"{self.tag}: scan_values must be a 1D array of finite values")
        self.scan_values = scan_values
        if int(scan_n_values) < 2:
            raise ValueError(f"{self.tag}: scan_n_values must be >= 2, got {scan_n_values!r}")
        self.scan_n_values = int(scan_n_values)
        self.scan_n_sigma = float(scan_n_sigma)
        self.fit_options = dict(fit_options or {})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_sigma={self.n_sigma}, n_sigma_ul={self.n_sigma_ul}, "
            f"null_value={self.null_value}, selection_optional={self.selection_optional}, "
            f"reoptimize={self.reoptimize})"
        )

    # -- run ------------------------------------------------------------------------------------------
    def run(self, datasets: Any, models: Any, parameter: str) -> dict[str, Any]:
        """Estimate ``parameter`` (a full name such as ``"crab.spectral.amplitude"`` or a unique
        suffix such as ``"amplitude"``) of ``models`` from ``datasets``.

        The parameter is estimated even when it is frozen in ``models`` (it is thawed here).

        Returns
        -------
        dict
            Gammapy's keys, ``<name>`` being the parameter's short name: ``<name>`` (best fit),
            ``stat``, ``success``, ``<name>_err``, ``ts``, ``npred`` (per dataset, summed over its
            mask, at the best fit), ``stat_null``; with the options ``<name>_errp`` /
            ``<name>_errn``, ``<name>_ul``, ``<name>_scan`` / ``stat_scan``,
            ``<name>_sensitivity`` (the sensitivity's value minus ``null_value``); then
            ``counts`` (per dataset, summed over its mask) and ``datasets`` (their names).
            Without any bin in the datasets' masks the values are NaN and ``success`` False.
        """
        from ..fit import fit
        from .points import _as_datasets

        datasets = _as_datasets(datasets)
        models = _as_models(models)
        full = _resolve(models, parameter)
        short = full.rsplit(".", 1)[-1]

        def status(name: str, p: Any) -> Any:
            if name == full:
                return p.replace(frozen=False)
            return p if self.reoptimize else p.replace(frozen=True)

        models = map_parameters(status, models)
        masks = [self._mask(d) for d in datasets]
        contributes = any(bool(m.any()) for m in masks)
        out: dict[str, Any] = {}
        if not contributes:
            value = float(next(np.asarray(p.value) for n, p in iter_parameters(models) if n == full))
            out = {short: math.nan, "stat": 0.0, "success": False, f"{short}_err": math.nan}
            out.update({"ts": math.nan, "npred": np.full(len(datasets), np.nan), "stat_null": math.nan})
            if "errn-errp" in self.selection_optional:
                out.update({f"{short}_errp": math.nan, f"{short}_errn": math.nan})
            if "ul" in self.selection_optional:
                out[f"{short}_ul"] = math.nan
            if "scan" in self.selection_optional:
                values = self.scan_values if self.scan_values is not None else np.array([value])
                out.update({f"{short}_scan": values, "stat_scan": values * np.nan})
            if "sensitivity" in self.selection_optional:
                out[f"{short}_sensitivity"] = math.nan
            out.update(self._counts(datasets, masks))
            return out

        result = fit(datasets, models, **self.fit_options)
        best = result.models
        value = result.value(full)
        error = result.error(full)
        out[short] = value
        out["stat"] = result.total_stat
        out["success"] = result.success
        out[f"{short}_err"] = error * self.n_sigma
        out.update(self._ts(datasets, result, full, masks))
        if "errn-errp" in self.selection_optional:
            out.update(self._interval(datasets, result, full, short))
        if "ul" in self.selection_optional:
            out[f"{short}_ul"] = self._ul(datasets, result, full)
        if "scan" in self.selection_optional:
            out.update(self._scan(datasets, result, full, short))
        if "sensitivity" in self.selection_optional:
            out[f"{short}_sensitivity"] = self._sensitivity(datasets, best, full, error)
        out.update(self._counts(datasets, masks))
        return out

    # -- steps ----------------------------------------------------------------------------------------
    @staticmethod
    def _mask(dataset: Any) -> np.ndarray:
        mask = getattr(dataset, "mask", None)
        if mask is not None:
            return np.asarray(mask, dtype=bool)
        counts = getattr(dataset, "counts", None)
        return np.ones(np.shape(counts) if counts is not None else (1,), dtype=bool)

    @staticmethod
    def _counts(datasets: Any, masks: list[np.ndarray]) -> dict[str, Any]:
        """Gammapy's ``estimate_counts``: the counts of each dataset summed over its mask (NaN for
        datasets without counts: flux points)."""
        counts = []
        for d, mask in zip(datasets, masks, strict=True):
            c = getattr(d, "counts", None)
            counts.append(math.nan if c is None else float(np.asarray(c, dtype=np.float64)[mask].sum()))
        values = np.array(counts)
        if np.all(np.isfinite(values)):
            values = values.astype(int)
        return {"counts": values, "datasets": list(datasets.names)}

    def _ts(self, datasets: Any, result: Any, full: str, masks: list[np.ndarray]) -> dict[str, Any]:
        """Gammapy's ``estimate_ts``: the statistic with the parameter at ``null_value`` (the
        others re-optimised, from the best fit, or at the best fit) minus the best statistic, and
        the predicted counts per dataset at the best fit."""
        from ..fit.confidence import _Profiler

        npred = []
        for d, mask in zip(datasets, masks, strict=True):
            if getattr(d, "counts", None) is None:  # flux points: no counts (Gammapy: none either)
                npred.append(math.nan)
            else:
                npred.append(float(np.asarray(d.npred(result.models), dtype=np.float64)[mask].sum()))
        prof = _Profiler(datasets, result)
        i = prof.index(full)
        stat, _ = prof.stat([i], np.array([[self.null_value]]), self.reoptimize)
        stat_null = float(stat[0])
        return {"ts": stat_null - result.total_stat, "npred": np.array(npred), "stat_null": stat_null}

    def _interval(self, datasets: Any, result: Any, full: str, short: str) -> dict[str, float]:
        from ..fit import confidence

        res = confidence(datasets, result, full, sigma=self.n_sigma, reoptimize=self.reoptimize)
        return {f"{short}_errp": res["errp"], f"{short}_errn": res["errn"]}

    def _ul(self, datasets: Any, result: Any, full: str) -> float:
        from ..fit import confidence

        res = confidence(datasets, result, full, sigma=self.n_sigma_ul, reoptimize=self.reoptimize)
        return float(res["errp"] + result.value(full))

    def _scan(self, datasets: Any, result: Any, full: str, short: str) -> dict[str, np.ndarray]:
        from ..fit import stat_profile

        values = self.scan_values
        if values is None:
            value, error = result.value(full), result.error(full)
            step = error if error > 0 else abs(value)
            interp = next(p.interp for n, p in iter_parameters(result.models) if n == full)
            lo, hi = value - self.scan_n_sigma * step, value + self.scan_n_sigma * step
            values = scale_grid(lo, hi, self.scan_n_values, interp)
        profile = stat_profile(datasets, result, full, values=values, reoptimize=self.reoptimize)
        return {f"{short}_scan": np.asarray(values), "stat_scan": np.asarray(profile["stat_scan"])}

    def _sensitivity(self, datasets: Any, best: Any, full: str, error: float) -> float:
        """Gammapy's ``ParameterSensitivityEstimator`` at the best fit (see
        :func:`parameter_matching_significance`), solved to full precision (Gammapy: brentq to
        1 %); minus ``null_value``."""
        root = parameter_matching_significance(
            datasets, best, full, self.null_value, self.n_sigma_sensitivity, error, self.scan_n_sigma, owner=self.tag
        )
        return float(root - self.null_value)


def _conf_range(parameter: Any, value: float, error: float, scan_n_sigma: float, large_min: float) -> tuple[float, float]:
    """Gammapy's ``Parameter.conf_min`` / ``conf_max``: the bounds where finite, else
    ``value -+ int(scan_n_sigma) x step`` widened to at least ``-+1e5 x max(step, |value|)``
    (``step``: the error, else ``|value|``)."""
    step = error if error > 0 else abs(value)
    large = max(step, abs(value), large_min)
    lo = parameter.min if np.isfinite(parameter.min) else min(value - step * int(scan_n_sigma), -large * 1e5)
    hi = parameter.max if np.isfinite(parameter.max) else max(value + step * int(scan_n_sigma), large * 1e5)
    return float(lo), float(hi)


def parameter_matching_significance(
    datasets: Any,
    models: Any,
    full: str,
    null_value: float,
    n_sigma: float,
    error: float,
    scan_n_sigma: float = 2,
    large_min: float = 0.0,
    rtol: float | None = None,
    max_niter: int | None = None,
    owner: str = "ParameterSensitivityEstimator",
) -> float:
    """The first positive value of parameter ``full`` whose Asimov datasets (counts = the
    prediction of ``models`` with the parameter at that value, every other parameter as in
    ``models``) reach a significance ``sqrt(ts_asimov) = n_sigma`` against ``null_value``; NaN
    without one. Searched as Gammapy's ``find_roots``: the signs on 101 points over the
    parameter's confidence range (:func:`_conf_range`) evenly spaced in its ``interp`` scale (one
    vmapped evaluation), then brentq in each bracket to the relative precision ``rtol`` (default
    1e-12) within ``max_niter`` iterations."""
    from ..datasets.flux_points import FluxPointsDataset
    from ..likelihood import plan_datasets

    for d in datasets:
        if isinstance(d, FluxPointsDataset):
            raise TypeError(
                f"{owner}: the sensitivity needs Asimov datasets (counts = prediction); dataset "
                f"{d.name!r} is a FluxPointsDataset (Gammapy has no Asimov flux points either)"
            )
    only = map_parameters(lambda n, p: p.replace(frozen=n != full), models)
    vector = ParameterVector.from_tree(only)
    plans = plan_datasets(datasets, only)
    parameter = next(p for n, p in iter_parameters(only) if n == full)
    value = float(np.asarray(parameter.value))
    lo, hi = _conf_range(parameter, value, error, scan_n_sigma, large_min)
    null = jnp.asarray(null_value)

    def sigma(values: np.ndarray) -> np.ndarray:
        ts = np.asarray(_asimov_ts(plans, only, vector, jnp.asarray(values, dtype=float), null))
        return np.sqrt(np.clip(ts, 0.0, None)) - n_sigma

    grid = scale_grid(lo, hi, 101, parameter.interp)
    signs = np.sign(sigma(grid))
    for k in np.nonzero(signs[:-1] != signs[1:])[0]:
        a, b = grid[k], grid[k + 1]
        if not (np.isfinite(signs[k]) and np.isfinite(signs[k + 1])):
            continue
        # xtol far below the root: brentq's default (2e-12, absolute) would stop a flux amplitude
        # at its first iterate (Gammapy's does)
        options: dict[str, Any] = {"xtol": 1e-14 * max(abs(a), abs(b)), "rtol": 1e-12 if rtol is None else rtol}
        if max_niter is not None:
            options["maxiter"] = max_niter
        try:
            root = brentq(lambda x: float(sigma(np.array([x]))[0]), a, b, **options)
        except RuntimeError:  # not converged within max_niter: Gammapy's NaN
            continue
        if root > 0:
            return float(root)
    return math.nan


class ParameterSensitivityEstimator:
    """The sensitivity to one model parameter (Gammapy 2.1's ``ParameterSensitivityEstimator``):
    how far from ``null_value`` the parameter must be for half of the measurements to exceed
    ``n_sigma`` (the Asimov datasets' TS against the null value follows a non-central chi2, Wald /
    Cowan et al. 2011, whose median significance is ``sqrt(ts_asimov)``).

    Parameters
    ----------
    parameter : str
        The parameter, a full name (``"crab.spectral.amplitude"``) or a unique suffix.
    null_value : float
        Its value under the null hypothesis.
    n_sigma : float
        The required significance (default 5).
    n_free_parameters : int, optional
        Kept for Gammapy's signature (its Asimov TS does not use it).
    rtol, max_niter : float, int
        Relative precision (default 0.01) and iteration limit (default 100) of the root search, as
        Gammapy (whose brentq also keeps its default absolute tolerance, 2e-12: a flux amplitude
        stops at its first iterate there; ours is within ``rtol``).
    scan_n_sigma : float
        Sets the search range when the parameter has no bounds (Gammapy's ``Parameter.scan_n_sigma``,
        default 2; see ``conf_min`` / ``conf_max``).

    Examples
    --------
    >>> result = jaxgamma.fit(datasets, models)
    >>> ParameterSensitivityEstimator("amplitude", 0.0).run(datasets, result.models)
    """

    tag = "ParameterSensitivityEstimator"

    def __init__(
        self,
        parameter: str,
        null_value: float,
        n_sigma: float = 5,
        n_free_parameters: int | None = None,
        rtol: float = 0.01,
        max_niter: int = 100,
        scan_n_sigma: float = 2,
    ):
        if not isinstance(parameter, str):
            raise TypeError(
                f"{self.tag}: parameter must be a parameter name (jaxgamma's parameters are immutable "
                f"values), got {type(parameter).__name__}"
            )
        self.parameter = parameter
        self.null_value = float(null_value)
        for label, number in (("null_value", self.null_value), ("n_sigma", n_sigma), ("rtol", rtol)):
            if not np.isfinite(float(number)):
                raise ValueError(f"{self.tag}: {label} must be finite, got {number!r}")
        if float(n_sigma) <= 0 or float(rtol) <= 0 or int(max_niter) < 1:
            raise ValueError(f"{self.tag}: n_sigma and rtol must be positive and max_niter >= 1")
        self.n_sigma = float(n_sigma)
        self.n_free_parameters = n_free_parameters
        self.rtol = float(rtol)
        self.max_niter = int(max_niter)
        self.scan_n_sigma = float(scan_n_sigma)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(parameter={self.parameter!r}, null_value={self.null_value}, "
            f"n_sigma={self.n_sigma})"
        )

    def parameter_matching_significance(self, datasets: Any, models: Any) -> float:
        """The parameter value whose Asimov significance is ``n_sigma`` (NaN without one)."""
        from .points import _as_datasets

        datasets, models = _as_datasets(datasets), _as_models(models)
        full = _resolve(models, self.parameter, owner=self.tag)
        parameter = next(p for n, p in iter_parameters(models) if n == full)
        error = float(parameter.error or 0.0)
        return parameter_matching_significance(
            datasets, models, full, self.null_value, self.n_sigma, error, self.scan_n_sigma,
            rtol=self.rtol, max_niter=self.max_niter, owner=self.tag,
        )

    def run(self, datasets: Any, models: Any) -> float:
        """The sensitivity: the value matching ``n_sigma`` minus ``null_value``. Every other
        parameter stays at its value in ``models`` (usually a best fit); the parameter's error in
        ``models`` sets the search range where it has no bounds."""
        return self.parameter_matching_significance(datasets, models) - self.null_value
