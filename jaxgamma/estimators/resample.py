"""Rebinning flux points and light curves by summing their likelihood profiles (Gammapy 2.1's
``FluxPoints.resample_axis``, ``squash_fluxpoints`` and ``get_rebinned_axis`` with
``get_edges_fixed_bins`` / ``get_edges_min_ts``).

The points of a new bin are the old bins it covers: their ``stat_scan`` profiles (on one norm
grid) are summed, the sum is interpolated quadratically in the norm (scipy's ``interp1d``) and
minimised with scipy's L-BFGS-B from the middle of the grid, within the grid; the norm is the
minimum, ``norm_err`` the square root of L-BFGS-B's inverse-Hessian estimate, ``stat`` the
interpolated profile there, ``stat_null`` and ``ts`` the sums, ``n_dof`` the number of old bins
and, with upper limits, ``norm_ul`` where the profile rises ``n_sigma_ul^2`` above its bounded
minimum (brentq). This is Gammapy's recipe, run through the same scipy calls so that the numbers
are Gammapy's; it is a numpy/scipy step outside any fit. Two of Gammapy's limits are kept: only
likelihood flux points are rebinned (a file in another SED type does not keep the reference of
its profiles' norms), and ``norm_err`` is L-BFGS-B's inverse-Hessian estimate, which is exactly 1
when the minimiser stops at its first step (the summed ``stat_scan`` kept on the result is the
reliable measure then). Light curves are rebinned per energy bin and may have gaps between their
intervals (Gammapy's time slicing fails on those).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.time import Time

__all__ = ["get_edges_fixed_bins", "get_edges_min_ts", "get_rebinned_axis", "squash_profiles"]


def _ul_from_profile(value_scan: np.ndarray, stat_scan: np.ndarray, delta_ts: float) -> float:
    """Gammapy's ``stat_profile_ul_scipy`` (sqrt scale: quadratic interpolation), NaN on failure."""
    from scipy.interpolate import interp1d
    from scipy.optimize import minimize_scalar, root_scalar

    if np.allclose(stat_scan, stat_scan[0]):
        return np.nan
    valid = np.isfinite(stat_scan) & np.isfinite(value_scan)
    if not np.any(valid):
        return np.nan
    x, y = value_scan[valid], stat_scan[valid]
    interp = interp1d(x, y, kind="quadratic")
    best = minimize_scalar(interp, bounds=(x[0], x[-1]), method="bounded")
    if not best.success:
        return np.nan

    def f(value: float) -> float:
        return float(interp(np.asarray([value])).item()) - best.fun - delta_ts

    try:
        root = root_scalar(f, method="brentq", bracket=[float(np.asarray(best.x).item()), float(x[-1])])
    except (RuntimeError, ValueError):
        return np.nan
    return float(root.root) if root.converged else np.nan


def squash_profiles(
    norm_scan: Any, stat_scans: Any, stat_nulls: Any = None, n_sigma_ul: float | None = None
) -> dict[str, Any]:
    """One flux point from the likelihood profiles of several bins (Gammapy's ``squash_fluxpoints``).

    Parameters
    ----------
    norm_scan : array (n_norm,)
        The norm grid shared by the profiles.
    stat_scans : array (n_bins, n_norm)
        The profiles of the bins to combine.
    stat_nulls : array (n_bins,), optional
        Their statistic at norm 0 (gives ``stat_null`` and ``ts``).
    n_sigma_ul : float, optional
        With a value, ``norm_ul`` at ``n_sigma_ul^2`` above the minimum (Gammapy's default 2).

    Returns
    -------
    dict
        ``norm``, ``norm_err``, ``stat``, ``stat_scan`` (the summed profile), ``n_dof``, ``success``,
        and ``stat_null`` / ``ts`` / ``norm_ul`` when asked for.
    """
    from scipy.interpolate import interp1d
    from scipy.optimize import minimize

    value_scan = np.asarray(norm_scan, dtype=np.float64)
    scans = np.atleast_2d(np.asarray(stat_scans, dtype=np.float64))
    if scans.shape[-1] != value_scan.size:
        raise ValueError(f"squash_profiles: profiles of {scans.shape[-1]} values for a norm grid of {value_scan.size}")
    stat_scan = np.sum(scans, axis=0)
    f = interp1d(value_scan, stat_scan, kind="quadratic")
    result = minimize(
        f, x0=value_scan[int(len(value_scan) / 2)], bounds=[(value_scan[0], value_scan[-1])], method="L-BFGS-B"
    )
    norm = float(np.asarray(result.x).item())
    out: dict[str, Any] = {
        "norm": norm,
        "norm_err": float(np.sqrt(np.asarray(result.hess_inv.todense()).item())),
        "stat": float(np.asarray(f(result.x)).item()),
        "stat_scan": stat_scan,
        "n_dof": float(scans.shape[0]),
        "success": bool(result.success),
    }
    if n_sigma_ul is not None:
        out["norm_ul"] = _ul_from_profile(value_scan, stat_scan, float(n_sigma_ul) ** 2)
    if stat_nulls is not None:
        out["stat_null"] = float(np.sum(np.asarray(stat_nulls, dtype=np.float64)))
        out["ts"] = out["stat_null"] - out["stat"]
    return out


# -- the new axis ----------------------------------------------------------------------------------
def _axis_bins(fluxpoint: Any, axis_name: str) -> tuple[Any, Any, np.ndarray | None]:
    """``(edges_min, edges_max, ts)`` of the axis to rebin: energies (TeV) of flux points, or the
    intervals (Time) of a light curve; the TS per bin of a one-dimensional set of points."""
    from .lightcurve import LightCurve

    if axis_name == "time":
        if not isinstance(fluxpoint, LightCurve):
            raise ValueError(f"axis_name 'time' needs a LightCurve, got {type(fluxpoint).__name__}")
        ts = fluxpoint.ts if "ts" in fluxpoint.available_quantities else None
        if ts is not None and np.ndim(ts) > 1 and np.shape(ts)[1] != 1:
            raise ValueError(
                "Rebinning is supported only for unidimensional flux points: this light curve has "
                f"{np.shape(ts)[1]} energy bins (use one energy bin)"
            )
        return fluxpoint.time_min, fluxpoint.time_max, None if ts is None else np.asarray(ts).reshape(-1)
    if axis_name != "energy":
        raise ValueError(f"axis_name must be 'energy' or 'time', got {axis_name!r}")
    if isinstance(fluxpoint, LightCurve):
        raise ValueError("rebinning a light curve in energy is not supported (Gammapy's needs one-dimensional points)")
    edges = fluxpoint.energy_edges
    if edges is None:
        raise ValueError("flux points given at e_ref only have no energy bins to combine")
    ts = fluxpoint.ts if "ts" in fluxpoint.available_quantities else None
    return edges[:-1], edges[1:], None if ts is None else np.asarray(ts).reshape(-1)


def get_edges_fixed_bins(fluxpoint: Any, group_size: int, axis_name: str = "energy") -> tuple[Any, Any]:
    """Edges of groups of ``group_size`` adjacent bins (the last group may be smaller), Gammapy's
    ``get_edges_fixed_bins``: ``(edges_min, edges_max)`` in TeV, or Time for ``axis_name="time"``."""
    if not isinstance(group_size, (int, np.integer)) or isinstance(group_size, bool):
        raise ValueError("Only integer number of bins can be combined")
    lo, hi, _ = _axis_bins(fluxpoint, axis_name)
    nbin = len(lo)
    idx = np.arange(0, nbin, group_size)
    if idx[-1] < nbin:
        idx = np.append(idx, nbin)
    return lo[idx[:-1]], hi[idx[1:] - 1]


def get_edges_min_ts(fluxpoint: Any, ts_threshold: float, axis_name: str = "energy") -> tuple[Any, Any]:
    """Edges of groups of adjacent bins whose summed TS reaches ``ts_threshold`` (the last group
    takes what is left), Gammapy's ``get_edges_min_ts``."""
    lo, hi, ts = _axis_bins(fluxpoint, axis_name)
    if ts is None:
        raise ValueError("get_edges_min_ts: the flux points have no TS ('ts' quantity)")
    nbin = len(lo)
    starts, stops = [], []
    i = 0
    while i < nbin:
        start, total = i, ts[i]
        while total < ts_threshold and i < nbin - 1:
            i += 1
            total = total + ts[i]
        starts.append(start)
        stops.append(i)
        i += 1
    return lo[np.array(starts)], hi[np.array(stops)]


def get_rebinned_axis(fluxpoint: Any, axis_name: str = "energy", method: str | None = None, **kwargs: Any) -> Any:
    """The new axis for :meth:`FluxPoints.resample_axis <jaxgamma.datasets.FluxPoints.resample_axis>`
    (Gammapy's ``get_rebinned_axis``): ``method`` "fixed-bins" (``group_size=``) or "min-ts"
    (``ts_threshold=``). Energy: a MapAxis named "energy" (log); time: the ``(time_min, time_max)``
    pair of Time arrays that :meth:`LightCurve.resample_axis` takes."""
    methods: dict[str, Any] = {"fixed-bins": get_edges_fixed_bins, "min-ts": get_edges_min_ts}
    if method not in methods:
        raise ValueError(f"Incorrect option {method!r}. Choose from {list(methods)}")
    edges_min, edges_max = methods[method](fluxpoint, axis_name=axis_name, **kwargs)
    if axis_name == "time":
        return Time(edges_min), Time(edges_max)
    from ..geom import MapAxis

    return MapAxis.from_edges(np.append(edges_min, edges_max[-1]), name="energy", unit="TeV", interp="log")


def group_indices(old_lo: np.ndarray, old_hi: np.ndarray, new_lo: np.ndarray, new_hi: np.ndarray, what: str) -> list[np.ndarray]:
    """For each new bin, the old bins inside it; new edges must be old edges (1e-6 relative)."""
    groups = []
    for k, (a, b) in enumerate(zip(new_lo, new_hi, strict=True)):
        inside = np.nonzero((old_lo >= a * (1 - 1e-6) - 1e-12) & (old_hi <= b * (1 + 1e-6) + 1e-12))[0]
        if inside.size == 0 or not (np.isclose(old_lo[inside[0]], a, rtol=1e-6) and np.isclose(old_hi[inside[-1]], b, rtol=1e-6)):
            raise ValueError(
                f"resample_axis: new {what} bin {k} [{a:g}, {b:g}] does not start and end on edges of the old bins "
                "(combine whole bins, e.g. with get_rebinned_axis)"
            )
        groups.append(inside)
    return groups
