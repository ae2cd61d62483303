"""Helpers around the estimators, as Gammapy 2.1's ``gammapy.estimators.utils``.

- Peaks: :func:`find_peaks` (local maxima of an image above a threshold, at least ``min_distance``
  apart) and :func:`find_peaks_in_flux_map` (the same on the ``sqrt_ts`` map of a
  :class:`~jaxgamma.estimators.FluxMaps`, with every quantity at the peaks).
- Combining maps of several datasets: :func:`combine_significance_maps` (the TS summed over
  datasets and energy bins, one degree of freedom per valid bin) and :func:`combine_flux_maps`
  (inverse-variance weighted fluxes, or summed likelihood profiles: exact ones of the TS maps'
  "stat_scan", or approximated from the errors), and their ``get_combined_*`` forms that run an
  estimator on each dataset first; the profile tools :func:`interpolate_profile_map`,
  :func:`approximate_profile_map` and :func:`get_flux_map_from_profile`.
- Binning: :func:`resample_energy_edges` (energy groups of a spectrum that each meet conditions on
  their counts, excess, significance or predicted counts, for flux points).
- :func:`estimate_exposure_reco_energy`: the exposure in reconstructed energy for an assumed
  spectrum (what turns excess counts into fluxes).
- Light-curve variability: the fractional and point-to-point excess variance, the doubling /
  halving time and the discrete correlation of a :class:`~jaxgamma.estimators.LightCurve`, one value
  per energy bin (the array functions are in :mod:`jaxgamma.variability`). Times are the
  intervals' mid times (Gammapy's time-axis centres); durations come out in days.
"""

from __future__ import annotations

import itertools
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import TimeDelta

from ..variability import compute_flux_doubling, compute_fpp, compute_fvar, discrete_correlation

__all__ = [
    "approximate_profile_map",
    "combine_flux_maps",
    "combine_significance_maps",
    "compute_lightcurve_discrete_correlation",
    "compute_lightcurve_doublingtime",
    "compute_lightcurve_fpp",
    "compute_lightcurve_fvar",
    "estimate_exposure_reco_energy",
    "find_peaks",
    "find_peaks_in_flux_map",
    "get_combined_flux_maps",
    "get_combined_significance_maps",
    "get_flux_map_from_profile",
    "interpolate_profile_map",
    "resample_energy_edges",
]

_FLUX_QUANTITIES = ("dnde", "flux", "e2dnde", "eflux")


def estimate_exposure_reco_energy(dataset: Any, spectral_model: Any = None, normalize: bool = True) -> np.ndarray:
    """The exposure in reconstructed energy for an assumed spectrum (Gammapy's
    ``estimate_exposure_reco_energy``).

    The predicted counts of ``spectral_model`` with a spatially constant flux (the spectrum's
    integral over each true-energy bin in every pixel) times the exposure, folded with the energy
    dispersion (a map dataset's kernel at the map centre, as Gammapy's); with ``normalize``
    divided by the spectrum's integral over each reconstructed-energy bin, so that excess counts
    divided by it are fluxes.

    Parameters
    ----------
    dataset : MapDataset, MapDatasetOnOff, SpectrumDataset or SpectrumDatasetOnOff
        With an exposure.
    spectral_model : SpectralModel, optional
        The assumed spectrum; default a power law of index 2 (``PowerLawSpectralModel()``).
    normalize : bool
        Divide by the integral flux per reconstructed-energy bin (default True); False gives the
        predicted counts of the spectrum.

    Returns
    -------
    exposure : numpy.ndarray
        ``(n_energy, ny, nx)`` for a map dataset, ``(n_energy,)`` for a spectrum: cm2 s with
        ``normalize``, else counts.
    """
    from ..datasets.spectrum import _AbstractSpectrumDataset
    from ..models import PowerLawSpectralModel
    from .excess import reco_exposure

    model = PowerLawSpectralModel() if spectral_model is None else spectral_model
    what = "estimate_exposure_reco_energy"
    if getattr(dataset, "exposure", None) is None:
        raise ValueError(f"{what}: dataset {getattr(dataset, 'name', '')!r} has no exposure")
    if isinstance(dataset, _AbstractSpectrumDataset):
        edges_true = np.asarray(dataset.energy_true_edges, dtype=np.float64)
        flux = np.asarray(model.integral_array(edges_true[:-1], edges_true[1:]), dtype=np.float64)
        npred_true = flux * np.asarray(dataset.exposure, dtype=np.float64)
        edges = np.asarray(dataset.energy_edges, dtype=np.float64)
        npred = npred_true if dataset.edisp is None else npred_true @ np.asarray(dataset.edisp, dtype=np.float64)
        if npred.shape != (edges.size - 1,):
            raise ValueError(
                f"{what}: dataset {dataset.name!r} has no energy dispersion and its true and reconstructed energy "
                "axes differ: the reco exposure is not defined"
            )
    else:
        npred = reco_exposure(dataset, model, what)
        edges = np.asarray(dataset.geom.axis("energy").edges_in("TeV"), dtype=np.float64)
    if not normalize:
        return npred
    reference = np.asarray(model.integral_array(edges[:-1], edges[1:]), dtype=np.float64)
    return npred / reference.reshape((-1,) + (1,) * (npred.ndim - 1))


# -- combining maps --------------------------------------------------------------------------------


def _check_flux_maps(maps: Any, what: str) -> list[Any]:
    from .core import FluxMaps

    maps = list(maps)
    if len(maps) < 2:
        raise ValueError("List of flux maps has less than two elements")
    for i, m in enumerate(maps):
        if not isinstance(m, FluxMaps):
            raise TypeError(f"{what}: element {i} is a {type(m).__name__}, expected FluxMaps")
        if m.geom.data_shape != maps[0].geom.data_shape or not np.allclose(
            m.energy_axis.edges, maps[0].energy_axis.edges, rtol=1e-10
        ):
            raise ValueError(f"{what}: the flux maps must share one geometry; element {i} differs from the first")
    return maps


def combine_significance_maps(maps: Any) -> dict[str, Any]:
    """The joint significance of several independent :class:`~jaxgamma.estimators.FluxMaps` (e.g.
    one excess or TS map per observation), as Gammapy's ``combine_significance_maps``: the TS summed
    over the maps and their energy bins follows a chi2 with one degree of freedom per bin of
    positive TS (Lancaster 1961); its significance carries the sign of the TS-weighted excess.

    Returns
    -------
    dict
        ``significance``, ``df``, ``ts``, ``npred_excess``: images ``(ny, nx)`` on ``geom`` (the
        maps' image geometry, an addition to Gammapy's keys), and ``estimator_results``: the maps.
    """
    from ..stats import ts_to_sigma

    maps = _check_flux_maps(maps, "combine_significance_maps")
    shape = maps[0].geom.data_shape_image
    ts_sum, ts_sign, excess, df = (np.zeros(shape) for _ in range(4))
    for result in maps:
        ts = np.asarray(result["ts"], dtype=np.float64)
        npred_excess = np.asarray(result["npred_excess"], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            df += np.sum(ts > 0, axis=0)  # one degree of freedom (the norm) per valid bin
        ts_sum += np.nansum(ts, axis=0)
        ts_sign += np.nansum(ts * np.sign(npred_excess), axis=0)
        excess += np.nansum(npred_excess, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        significance = np.where(df > 0, ts_to_sigma(ts_sum, np.maximum(df, 1)), np.nan) * np.sign(ts_sign)
    return {
        "significance": significance,
        "df": df,
        "ts": ts_sum,
        "npred_excess": excess,
        "geom": maps[0].geom.to_image(),
        "estimator_results": maps,
    }


def _run_each(estimator: Any, datasets: Any, models: Any, what: str) -> list[Any]:
    from .excess import ExcessMapEstimator
    from .ts import TSMapEstimator

    if not isinstance(estimator, (ExcessMapEstimator, TSMapEstimator)):
        raise TypeError(f"{what}: estimator should be an ExcessMapEstimator or a TSMapEstimator, got {type(estimator).__name__}")
    return [estimator.run(dataset, models) for dataset in datasets]


def get_combined_significance_maps(estimator: Any, datasets: Any, models: Any = None) -> dict[str, Any]:
    """:func:`combine_significance_maps` of ``estimator.run(dataset, models)`` for each dataset
    (an :class:`ExcessMapEstimator` or a :class:`TSMapEstimator`), as Gammapy's
    ``get_combined_significance_maps`` (``models``: jaxgamma's datasets do not hold them)."""
    return combine_significance_maps(_run_each(estimator, datasets, models, "get_combined_significance_maps"))


def combine_flux_maps(maps: Any, method: str = "gaussian_errors", reference_model: Any = None, dnde_scan_axis: Any = None) -> Any:
    """One :class:`~jaxgamma.estimators.FluxMaps` from several independent measurements of the same
    flux on one geometry, as Gammapy's ``combine_flux_maps``; metas merged.

    Methods:

    - ``"gaussian_errors"`` (default): ``dnde`` and ``dnde_err`` combined with inverse-variance
      weights (bins valid in one map only keep its values), ``ts = dnde^2 / dnde_err^2`` plus the
      summed departures of each map's TS from its Gaussian value.
    - ``"profile"``: each map's likelihood profile (a TS map's "stat_scan") interpolated onto one
      grid of dnde values (:func:`interpolate_profile_map`) and summed; the result is read off the
      summed profile (:func:`get_flux_map_from_profile`): exact where the maps carry profiles.
    - ``"distrib"``: the same with each profile approximated from the map's dnde, asymmetric errors
      (or ``dnde_err``) and TS (:func:`approximate_profile_map`): for maps without profiles.

    For the profile methods the result holds the summed profile (``stat_scan`` and
    ``dnde_scan_values``, ``n_energy x n_scan`` per pixel) and its ``ts``, ``norm``, ``norm_err``,
    ``norm_errn``, ``norm_errp`` and ``norm_ul`` (2 sigma) on the grid; pixels valid in no map are NaN
    (Gammapy reports the grid's first value there).

    Parameters
    ----------
    maps : list of FluxMaps
    method : {"gaussian_errors", "profile", "distrib"}
    reference_model : SpectralModel or SkyModel, optional
        The reference spectrum of the result (default: the first map's); the ``dnde`` values do not
        depend on it.
    dnde_scan_axis : MapAxis or array, optional
        The grid of the profile methods, dnde values (cm-2 s-1 TeV-1; a MapAxis in its own unit),
        one grid for every energy bin. Default: Gammapy's 14401 norms from -100 to 100 at 1 %
        relative spacing times the first map's reference dnde of each energy bin (Gammapy's default,
        which it can build for one energy bin only).
    """
    from .core import FluxMaps, reference_sed

    if method not in ("gaussian_errors", "distrib", "profile"):
        raise ValueError(
            f'Invalid method provided : {method}. Available methods are : "gaussian_errors", "distrib", "profile"'
        )
    maps = _check_flux_maps(maps, "combine_flux_maps")
    meta: dict[str, Any] = {}
    for m in maps:
        meta.update(m.meta)
    reference = maps[0].reference_model if reference_model is None else getattr(reference_model, "spectral_model", reference_model)
    if method in ("distrib", "profile"):
        grid = _dnde_grid(maps[0], dnde_scan_axis, "combine_flux_maps")
        total = None
        valid = np.zeros(maps[0].geom.data_shape, dtype=bool)
        for m in maps:
            profile = interpolate_profile_map(m, grid) if method == "profile" else approximate_profile_map(m, grid)
            stat = np.nan_to_num(np.asarray(profile["stat_scan"]), nan=0.0, posinf=np.inf, neginf=-np.inf)
            total = stat if total is None else total + stat
            valid |= np.isfinite(m["dnde"])
        assert total is not None
        total[np.broadcast_to(~valid[:, None], total.shape)] = np.nan
        summed = FluxMaps(
            {"stat_scan": total, "dnde_scan_values": profile["dnde_scan_values"]},
            maps[0].geom,
            reference,
            scan_axis=profile.scan_axis,
        )
        return get_flux_map_from_profile(summed, reference_model=reference, meta={**meta, "sed_type_init": "dnde"})
    with np.errstate(invalid="ignore", divide="ignore"):
        ts_diff = np.nansum([m["ts"] - (m["dnde"] / m["dnde_err"]) ** 2 for m in maps], axis=0)
        mean = np.array(maps[0]["dnde"], dtype=np.float64)
        sigma = np.array(maps[0]["dnde_err"], dtype=np.float64)
        for m in maps[1:]:
            mean_k, sigma_k = np.asarray(m["dnde"]), np.asarray(m["dnde_err"])
            valid = np.isfinite(mean) & np.isfinite(sigma) & (sigma != 0)
            valid_k = np.isfinite(mean_k) & np.isfinite(sigma_k) & (sigma_k != 0)
            both, only_k = valid & valid_k, ~valid & valid_k
            combined_mean = (mean * sigma_k**2 + mean_k * sigma**2) / (sigma**2 + sigma_k**2)
            combined_sigma = sigma * sigma_k / np.sqrt(sigma**2 + sigma_k**2)
            mean = np.where(both, combined_mean, np.where(only_k, mean_k, mean))
            sigma = np.where(both, combined_sigma, np.where(only_k, sigma_k, sigma))
        ts = mean * mean / sigma / sigma + ts_diff
        ts[~np.isfinite(ts)] = np.nan
        ref_dnde = reference_sed(maps[0].geom, reference)
        data = {"norm": mean / ref_dnde, "norm_err": sigma / ref_dnde, "ts": ts}
    return FluxMaps(data, maps[0].geom, reference, meta={**meta, "sed_type_init": "dnde"})


def _dnde_grid(flux_map: Any, dnde_scan_axis: Any, what: str) -> np.ndarray:
    """The dnde grid of the profile tools, ``(n_energy, K)`` in cm-2 s-1 TeV-1: the given axis (or
    values) for every energy bin, or Gammapy's default norms times each bin's reference dnde."""
    from ..geom import MapAxis
    from .core import default_scan_values, reference_sed

    n_e = flux_map.geom.data_shape[0]
    if dnde_scan_axis is None:
        ref = reference_sed(flux_map.geom, flux_map.reference_model).reshape(n_e, 1)
        return default_scan_values()[None, :] * ref
    if isinstance(dnde_scan_axis, np.ndarray) and dnde_scan_axis.ndim == 2 and dnde_scan_axis.shape[0] == n_e:
        values = np.asarray(dnde_scan_axis, dtype=np.float64)  # one grid per energy bin (internal)
    else:
        if isinstance(dnde_scan_axis, MapAxis):
            values = u.Quantity(dnde_scan_axis.center, dnde_scan_axis.unit or "cm-2 s-1 TeV-1").to_value("cm-2 s-1 TeV-1")
        elif isinstance(dnde_scan_axis, u.Quantity):
            values = dnde_scan_axis.to_value("cm-2 s-1 TeV-1")
        else:
            values = np.asarray(dnde_scan_axis, dtype=np.float64)
        values = np.broadcast_to(np.asarray(values, dtype=np.float64).ravel(), (n_e, np.size(values)))
    if values.shape[1] < 2 or not np.all(np.isfinite(values)) or np.any(np.diff(values, axis=1) <= 0):
        raise ValueError(f"{what}: dnde_scan_axis must hold at least 2 finite, increasing dnde values")
    return values


def _scan_maps(flux_map: Any, grid: np.ndarray, stat: np.ndarray) -> Any:
    """FluxMaps of a profile ``stat`` ``(n_energy, K, ny, nx)`` on the dnde ``grid`` ``(n_energy, K)``."""
    from ..geom import MapAxis
    from .core import FluxMaps

    n_e, ny, nx = flux_map.geom.data_shape
    dnde = np.broadcast_to(grid[:, :, None, None], (n_e, grid.shape[1], ny, nx))
    if np.all(grid == grid[:1]):  # one grid: Gammapy's dnde axis
        axis = MapAxis.from_nodes(grid[0], name="dnde", unit="cm-2 s-1 TeV-1", interp="lin")
    else:
        axis = None
    return FluxMaps(
        {"stat_scan": stat, "dnde_scan_values": dnde}, flux_map.geom, flux_map.reference_model,
        meta=dict(flux_map.meta), scan_axis=axis,
    )  # fmt: skip


def interpolate_profile_map(flux_map: Any, dnde_scan_axis: Any = None) -> Any:
    """A flux map's likelihood profiles (``stat_scan`` at ``dnde_scan_values``, e.g. a TS map's
    "stat_scan") interpolated linearly onto one dnde grid (Gammapy's ``interpolate_profile_map``).

    Returns a :class:`~jaxgamma.estimators.FluxMaps` holding ``stat_scan`` and ``dnde_scan_values``
    on the grid (NaN where ``dnde`` is NaN). The grid must lie within each profile's dnde range
    (Gammapy's spline refuses to extrapolate; a clear error here). ``dnde_scan_axis``: see
    :func:`combine_flux_maps`."""
    from .core import FluxMaps

    if not isinstance(flux_map, FluxMaps):
        raise TypeError(f"interpolate_profile_map: expected FluxMaps, got {type(flux_map).__name__}")
    if "stat_scan" not in flux_map.available_quantities or "dnde_scan_values" not in flux_map.available_quantities:
        raise ValueError(
            "interpolate_profile_map: the flux map has no likelihood profiles (stat_scan and dnde_scan_values); "
            "run TSMapEstimator with selection_optional=['stat_scan'], or use approximate_profile_map"
        )
    from .ts import interp_rows

    grid = _dnde_grid(flux_map, dnde_scan_axis, "interpolate_profile_map")
    n_e, ny, nx = flux_map.geom.data_shape
    out = np.full((n_e, grid.shape[1], ny, nx), np.nan)
    for e in range(n_e):
        iy, ix = np.nonzero(~np.isnan(flux_map["dnde"][e]))
        if iy.size == 0:
            continue
        x = flux_map["dnde_scan_values"][e][:, iy, ix].T  # (pixels, scan)
        y = flux_map["stat_scan"][e][:, iy, ix].T
        bad = ~(np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(y), axis=1) & np.all(np.diff(x, axis=1) >= 0, axis=1))
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"interpolate_profile_map: the profile of bin ({e}, {iy[i]}, {ix[i]}) has non-finite or unsorted dnde values"
            )
        outside = (grid[e, 0] < x[:, 0]) | (grid[e, -1] > x[:, -1])
        if np.any(outside):
            i = int(np.argmax(outside))
            raise ValueError(
                f"interpolate_profile_map: the dnde grid [{grid[e, 0]:.4g}, {grid[e, -1]:.4g}] leaves the profile of "
                f"bin ({e}, {iy[i]}, {ix[i]}), [{x[i, 0]:.4g}, {x[i, -1]:.4g}] cm-2 s-1 TeV-1 (no extrapolation, as Gammapy)"
            )
        out[e][:, iy, ix] = interp_rows(grid[e], x, y).T
    return _scan_maps(flux_map, grid, out)


def approximate_profile_map(flux_map: Any, dnde_scan_axis: Any = None, sqrt_ts_threshold_ul: Any = "ignore") -> Any:
    """Likelihood profiles approximated from a flux map's ``dnde``, errors and TS (Gammapy's
    ``approximate_profile_map``): ``((dnde - value) / error)^2``, with ``dnde_errp`` above the value and
    ``dnde_errn`` below (``dnde_err`` without them), both sides shifted to the same minimum, then
    shifted so that the minimum is ``-ts``.

    With ``sqrt_ts_threshold_ul`` a number (None: the map's meta value), bins below that
    significance with an upper limit get ``-2 log(erfc((x - ul) / ul) / erfc(-1))`` instead
    (Gammapy's complementary error function); ``"ignore"`` (default) keeps the Gaussian form.
    Returns a :class:`~jaxgamma.estimators.FluxMaps` of ``stat_scan`` and ``dnde_scan_values``
    (NaN where ``dnde`` is NaN); ``dnde_scan_axis``: see :func:`combine_flux_maps`."""
    from scipy import special

    from .core import FluxMaps

    if not isinstance(flux_map, FluxMaps):
        raise TypeError(f"approximate_profile_map: expected FluxMaps, got {type(flux_map).__name__}")
    for name in ("dnde", "ts"):
        if name not in flux_map:
            raise ValueError(f"approximate_profile_map: the flux map has no {name!r} (available: {flux_map.available_quantities})")
    asymmetric = "dnde_errp" in flux_map and "dnde_errn" in flux_map
    if not asymmetric and "dnde_err" not in flux_map:
        raise ValueError("approximate_profile_map: the flux map has neither dnde_errp / dnde_errn nor dnde_err")
    grid = _dnde_grid(flux_map, dnde_scan_axis, "approximate_profile_map")
    use_ul = sqrt_ts_threshold_ul != "ignore"
    if use_ul:
        threshold = flux_map.meta.get("sqrt_ts_threshold_ul", 2) if sqrt_ts_threshold_ul is None else float(sqrt_ts_threshold_ul)
        if "dnde_ul" not in flux_map:
            raise ValueError("approximate_profile_map: sqrt_ts_threshold_ul needs the flux map's dnde_ul")
        is_ul_map = (np.asarray(flux_map.sqrt_ts) < threshold) & ~np.isnan(flux_map["dnde_ul"])
    n_e, ny, nx = flux_map.geom.data_shape
    maps = {name: np.asarray(flux_map[name]) for name in ("dnde", "ts", "dnde_errp", "dnde_errn", "dnde_err", "dnde_ul") if name in flux_map}
    out = np.full((n_e, grid.shape[1], ny, nx), np.nan)
    invalid_value = 999  # Gammapy's: the other side's values are pushed up by this much
    for e, iy in itertools.product(range(n_e), range(ny)):  # one image row at a time: (K, nx) arrays
        dnde = maps["dnde"][e, iy][None, :]
        if np.all(np.isnan(dnde)):
            continue
        coord = grid[e][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            above = coord >= dnde
            if asymmetric:
                scale = np.where(above, maps["dnde_errp"][e, iy][None, :], maps["dnde_errn"][e, iy][None, :])
            else:
                scale = maps["dnde_err"][e, iy][None, :]
            stat = ((coord - dnde) / scale) ** 2
            min_above = np.min(stat + invalid_value * ~above, axis=0, keepdims=True)
            min_below = np.min(stat + invalid_value * above, axis=0, keepdims=True)
            stat = np.where(above & (min_above > min_below), stat + min_below - min_above, stat)
            stat = np.where(~above & (min_below >= min_above), stat + min_above - min_below, stat)
            if use_ul:
                ul = maps["dnde_ul"][e, iy][None, :]
                ul_stat = -2 * np.log((special.erfc((coord - ul) / ul) / 2) / (special.erfc(-ul / ul) / 2))
                stat = np.where(is_ul_map[e, iy][None, :], ul_stat, stat)
            stat = np.where(np.isnan(stat), np.inf, stat)
            stat = stat - maps["ts"][e, iy][None, :] - np.min(stat, axis=0, keepdims=True)
        out[e, :, iy, :] = np.where(np.isnan(dnde), np.nan, stat)
    return _scan_maps(flux_map, grid, out)


def get_flux_map_from_profile(
    flux_map: Any, n_sigma: float = 1, n_sigma_ul: float = 2, reference_model: Any = None, meta: Any = None
) -> Any:
    """The fluxes read off likelihood profiles (Gammapy's ``get_flux_map_from_profile``): at each
    bin the grid point of lowest ``stat_scan`` gives ``dnde`` and ``ts`` (minus that statistic),
    the points whose rise is nearest ``n_sigma**2`` below and above it ``dnde_errn`` and
    ``dnde_errp`` (``dnde_err`` their mean), the one nearest ``n_sigma_ul**2`` above it ``dnde_ul``.

    ``flux_map``: a :class:`~jaxgamma.estimators.FluxMaps` with ``stat_scan`` and ``dnde_scan_values``
    (a TS map's "stat_scan", or :func:`interpolate_profile_map` / :func:`approximate_profile_map`).
    Returns a FluxMaps with the profile and those quantities (as norms of ``reference_model``,
    default the map's); bins whose profile is NaN are NaN."""
    from .core import FluxMaps, reference_sed

    if not isinstance(flux_map, FluxMaps):
        raise TypeError(f"get_flux_map_from_profile: expected FluxMaps, got {type(flux_map).__name__}")
    if "stat_scan" not in flux_map.available_quantities or "dnde_scan_values" not in flux_map.available_quantities:
        raise ValueError("get_flux_map_from_profile: the flux map has no likelihood profiles (stat_scan and dnde_scan_values)")
    for label, value in (("n_sigma", n_sigma), ("n_sigma_ul", n_sigma_ul)):
        if not float(value) > 0:
            raise ValueError(f"get_flux_map_from_profile: {label} must be > 0, got {value}")
    stat = np.asarray(flux_map["stat_scan"])
    coord = np.asarray(flux_map["dnde_scan_values"])
    n_e, ny, nx = flux_map.geom.data_shape
    missing = np.all(np.isnan(stat), axis=1)
    stat_min, dnde, errn, errp, ul = (np.full((n_e, ny, nx), np.nan) for _ in range(5))
    invalid_value = 999  # Gammapy's penalty on the other side
    for e, iy in itertools.product(range(n_e), range(ny)):  # one image row at a time: (K, nx) arrays
        st, x = stat[e, :, iy, :], coord[e, :, iy, :]
        with np.errstate(invalid="ignore"):
            low = np.min(st, axis=0)
            best = np.take_along_axis(x, np.argmin(st, axis=0)[None, :], axis=0)[0]
            above = x > best[None, :]
            rise = st - low[None, :]

            def nearest(level: float, side: np.ndarray, rise=rise, x=x) -> np.ndarray:
                i = np.argmin(np.abs(rise + invalid_value * side - level), axis=0)[None, :]
                return np.take_along_axis(x, i, axis=0)[0]

            stat_min[e, iy], dnde[e, iy] = low, best
            errn[e, iy] = best - nearest(float(n_sigma) ** 2, above)
            errp[e, iy] = nearest(float(n_sigma) ** 2, ~above) - best
            ul[e, iy] = nearest(float(n_sigma_ul) ** 2, ~above)
    reference = flux_map.reference_model if reference_model is None else getattr(reference_model, "spectral_model", reference_model)
    ref = reference_sed(flux_map.geom, reference)
    values = {"ts": -stat_min, "norm": dnde / ref, "norm_err": 0.5 * (errn + errp) / ref, "norm_errn": errn / ref, "norm_errp": errp / ref, "norm_ul": ul / ref}
    data = {"stat_scan": stat, "dnde_scan_values": coord}
    data.update({k: np.where(missing, np.nan, v) for k, v in values.items()})
    out_meta = dict(flux_map.meta if meta is None else meta)
    out_meta.setdefault("n_sigma", n_sigma)
    out_meta.setdefault("n_sigma_ul", n_sigma_ul)
    return FluxMaps(data, flux_map.geom, reference, meta=out_meta, scan_axis=flux_map.scan_axis)


def get_combined_flux_maps(
    estimator: Any, datasets: Any, method: str = "gaussian_errors", reference_model: Any = None,
    dnde_scan_axis: Any = None, models: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """:func:`combine_flux_maps` of ``estimator.run(dataset, models)`` for each dataset, as Gammapy's
    ``get_combined_flux_maps``: ``{"flux_maps": combined, "estimator_results": [maps, ...]}``."""
    results = _run_each(estimator, datasets, models, "get_combined_flux_maps")
    combined = combine_flux_maps(results, method=method, reference_model=reference_model, dnde_scan_axis=dnde_scan_axis)
    return {"flux_maps": combined, "estimator_results": results}


# -- binning -----------------------------------------------------------------------------------------

_CONDITIONS = (
    "counts_min",
    "background_min",
    "excess_min",
    "sqrt_ts_min",
    "npred_min",
    "npred_background_min",
    "npred_signal_min",
)


def resample_energy_edges(dataset: Any, conditions: dict[str, float] | None = None, models: Any = None) -> u.Quantity:
    """Energy edges grouping a spectrum's bins so that each group meets ``conditions``, as Gammapy's
    ``resample_energy_edges``: from the top of the dataset's energy range (``mask_safe & mask_fit``)
    down, each group is the fewest bins whose :meth:`info_dict` (safe bins) has every
    ``<name>`` strictly above the value of ``<name>_min``.

    Parameters
    ----------
    dataset : SpectrumDataset or SpectrumDatasetOnOff
    conditions : dict
        Any of ``counts_min``, ``background_min``, ``excess_min``, ``sqrt_ts_min``, ``npred_min``,
        ``npred_background_min``, ``npred_signal_min`` (the ``npred`` ones need ``models``; in
        Gammapy 2.1 they fail with a KeyError).
    models : Models, optional
        For the predicted counts (Gammapy uses the dataset's models).

    Returns
    -------
    Quantity
        The edges (TeV), increasing, from the lowest to the highest energy of the range. Bins below
        the lowest group that meets the conditions are merged into it (Gammapy 2.1 loops forever
        there); ValueError when even the whole range does not meet them (Gammapy raises before
        trying the whole range).
    """
    from ..datasets import SpectrumDataset, SpectrumDatasetOnOff

    if not isinstance(dataset, (SpectrumDataset, SpectrumDatasetOnOff)):
        raise NotImplementedError(
            f"resample_energy_edges is supported for spectrum datasets only, got {type(dataset).__name__}"
        )
    conditions = dict(conditions or {})
    for key in conditions:
        if key not in _CONDITIONS:
            raise ValueError(f"Unrecognized option {key}. The available methods are: {list(_CONDITIONS)}.")
    if models is None and any(key.startswith("npred") for key in conditions):
        raise ValueError(f"resample_energy_edges: conditions {sorted(conditions)} on predicted counts need models")
    edges = dataset.energy_axis.edges
    mask = dataset.mask
    inside = np.ones(len(edges) - 1, bool) if mask is None else np.asarray(mask, bool)
    if not inside.any():
        raise ValueError(f"resample_energy_edges: dataset {dataset.name!r} has no bin in its safe / fit mask")
    first, last = np.flatnonzero(inside)[[0, -1]]
    energy_min_all, energy_max_all = edges[first], edges[last + 1]

    def meets(energy_min: float, energy_max: float) -> bool:
        sliced = dataset.slice_by_energy(energy_min=energy_min * u.TeV, energy_max=energy_max * u.TeV)
        with np.errstate(invalid="ignore", divide="ignore"):
            info = sliced.info_dict(models)
        return all(info[key.removesuffix("_min")] > value for key, value in conditions.items())

    candidates = edges[first : last + 1][::-1]  # the lower edges of the groups, from the top down
    result = [energy_max_all]
    while result[-1] > energy_min_all:
        for energy_min in candidates:
            if energy_min >= result[-1]:
                continue
            if meets(energy_min, result[-1]):
                result.append(energy_min)
                break
        else:  # the bins left at the bottom never meet the conditions
            if len(result) == 1:
                raise ValueError(f"resample_energy_edges: the given conditions {conditions} cannot be met.")
            result[-1] = energy_min_all
    return u.Quantity(result[::-1], "TeV")


# -- peaks -------------------------------------------------------------------------------------------


def _flat_image(image: Any, geom: Any, what: str) -> np.ndarray:
    """The 2-d image of an array on ``geom``'s pixels, non-spatial axes of length 1 dropped
    (Gammapy's "flat" maps)."""
    data = np.array(image, dtype=np.float64)  # a copy: non-finite pixels are replaced below
    ny, nx = geom.data_shape_image
    if data.ndim < 2 or data.shape[-2:] != (ny, nx) or any(n != 1 for n in data.shape[:-2]):
        raise ValueError(
            f"{what}: the image must have shape ({ny}, {nx}) (the geometry's pixels), with any further "
            f"leading axes of length 1; got {data.shape}"
        )
    return data.reshape(ny, nx)


def find_peaks(image: Any, geom: Any, threshold: Any, min_distance: Any = 1, unit: Any = "") -> Table:
    """Local maxima of an image above ``threshold``, as Gammapy's ``find_peaks``: pixels equal to
    the maximum of the ``(2 min_distance + 1)``-pixel square around them (zero beyond the image
    edges, as Gammapy's ``maximum_filter(mode="constant")``) and above the threshold; non-finite
    pixels count as the image's minimum; a constant image has no peaks.

    Parameters
    ----------
    image : array
        On ``geom``'s pixels, ``(ny, nx)`` (leading axes of length 1 are allowed: Gammapy's flat maps).
    geom : WcsGeom
    threshold : float or array
        A value, or one per pixel (shape ``(ny, nx)``).
    min_distance : int, str or Quantity
        In pixels, or an angle (divided by the mean pixel size and rounded, as Gammapy).
    unit : str or Unit
        The unit of the ``value`` column (Gammapy takes it from the map).

    Returns
    -------
    Table
        ``value``, ``x``, ``y`` (pixels, from 0), ``ra``, ``dec`` (ICRS, deg), one row per peak,
        highest first; an empty Table when there is none.
    """
    from astropy.coordinates import SkyCoord
    from scipy import ndimage

    data = _flat_image(image, geom, "find_peaks")
    if isinstance(min_distance, (str, u.Quantity)):
        try:
            distance = u.Quantity(min_distance).to_value("deg")
        except u.UnitConversionError as exc:
            raise ValueError(f"find_peaks: min_distance must be a number of pixels or an angle, got {min_distance!r}") from exc
        min_distance = float(np.round(np.mean(distance / np.asarray(geom.cdelt))))
    size = int(2 * min_distance + 1)
    if size < 1:
        raise ValueError(f"find_peaks: min_distance must be >= 0, got {min_distance!r}")
    threshold = np.asarray(threshold, dtype=np.float64)
    if threshold.ndim and threshold.shape != data.shape:
        raise ValueError(f"find_peaks: threshold must be a number or an array of shape {data.shape}, got {threshold.shape}")
    finite = np.isfinite(data)
    if not finite.any():
        return Table()
    data[~finite] = np.min(data[finite])
    if np.all(data == data.flat[0]):
        return Table()
    data_max = ndimage.maximum_filter(data, size=size, mode="constant")
    y, x = ((data == data_max) & (data > threshold)).nonzero()
    if len(x) == 0:
        return Table()
    coord = SkyCoord.from_pixel(x, y, wcs=geom.wcs).icrs
    table = Table()
    table["value"] = u.Quantity(data[y, x], unit)
    table["x"] = x
    table["y"] = y
    table["ra"] = coord.ra
    table["dec"] = coord.dec
    table["ra"].format = ".5f"
    table["dec"].format = ".5f"
    table["value"].format = ".5g"
    table.sort("value")  # then reversed: Gammapy's order of equal values too
    table.reverse()
    return table


_FIVE_DIGITS = ("npred", "npred_excess", "counts", "sqrt_ts", "norm", "ts", "norm_err", "stat", "stat_null")
_PEAK_UNITS = {"dnde": "cm-2 s-1 TeV-1", "e2dnde": "TeV cm-2 s-1", "flux": "cm-2 s-1", "eflux": "TeV cm-2 s-1"}


def find_peaks_in_flux_map(maps: Any, threshold: Any, min_distance: Any = 1) -> Table:
    """Peaks of the ``sqrt_ts`` map of a :class:`~jaxgamma.estimators.FluxMaps` with one energy bin,
    as Gammapy's ``find_peaks_in_flux_map``: :func:`find_peaks` on it, then every available
    quantity, ``flux`` and ``flux_err`` at each peak.

    Returns
    -------
    Table
        ``x``, ``y``, ``ra``, ``dec``, the quantities, ``flux``, ``flux_err`` (cm-2 s-1), one row per
        peak in Gammapy's order: lowest ``sqrt_ts`` first (its ``find_peaks`` table reversed once
        more); an empty Table when there is no peak.
    """
    from .core import FluxMaps

    if not isinstance(maps, FluxMaps):
        raise TypeError(f"find_peaks_in_flux_map expects FluxMaps input. Got {type(maps).__name__} instead.")
    if maps.geom.data_shape[0] != 1:
        raise ValueError(
            f"find_peaks_in_flux_map only supports flat maps, with an energy axis of length 1 (got {maps.geom.data_shape[0]} bins)"
        )
    table = find_peaks(maps["sqrt_ts"], maps.geom, threshold, min_distance)
    if len(table) == 0:
        return Table()
    x, y = np.array(table["x"]), np.array(table["y"])
    table.remove_column("value")
    for name in [*maps.available_quantities, "flux", "flux_err"]:
        values = np.asarray(maps[name])
        peaks = values.reshape(-1, *values.shape[-2:])[0, y, x]  # the first (only) plane, as Gammapy
        column = u.Quantity(peaks, _PEAK_UNITS.get(name.split("_")[0], "")) if name != "success" else peaks
        table[name] = column
        if name.startswith("flux"):
            table[name].format = ".3e"
        elif name.startswith(_FIVE_DIGITS):
            table[name].format = ".5f"
    table.reverse()
    return table


def _flux_and_error(lightcurve: Any, flux_quantity: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(n_time, n_energy)`` arrays of the quantity and its symmetric error."""
    from .lightcurve import LightCurve

    if not isinstance(lightcurve, LightCurve):
        raise TypeError(f"{what}: expected a LightCurve, got {type(lightcurve).__name__}")
    if flux_quantity not in _FLUX_QUANTITIES:
        raise ValueError(f"{what}: flux_quantity must be one of {_FLUX_QUANTITIES}, got {flux_quantity!r}")
    try:
        return lightcurve.get(flux_quantity), lightcurve.get(flux_quantity + "_err")
    except AttributeError as exc:
        raise ValueError(
            f"{what}: the light curve has no {flux_quantity!r} with a symmetric error {flux_quantity + '_err'!r} "
            f"(available: {lightcurve.available_quantities})"
        ) from exc


def _energy_columns(lightcurve: Any) -> list[u.Quantity]:
    """``min_energy`` / ``max_energy``: the bins, or for points at ``e_ref`` only the edges
    Gammapy's energy axis interpolates between the nodes."""
    edges = lightcurve.points[0]._plot_edges
    if edges is None:  # one node: Gammapy's axis has no width either
        edges = np.repeat(lightcurve.energy_ref, 2)
    return [u.Quantity(edges[:-1], "TeV"), u.Quantity(edges[1:], "TeV")]


def _time_coords(lightcurve: Any) -> u.Quantity:
    """The mid times in days from the first one."""
    return (lightcurve.time_mid - lightcurve.time_mid[0]).to("d")


def _variance_table(lightcurve: Any, flux_quantity: str, name: str, function: Any, meta: dict) -> Table:
    flux, flux_err = _flux_and_error(lightcurve, flux_quantity, f"compute_lightcurve_{name}")
    value, error = function(flux, flux_err, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        significance = value / error
    return Table(
        [*_energy_columns(lightcurve), value, error, significance],
        names=("min_energy", "max_energy", name, f"{name}_err", "significance"),
        meta=meta,
    )


def compute_lightcurve_fvar(lightcurve: Any, flux_quantity: str = "flux") -> Table:
    """The fractional excess variance of a light curve in each energy bin (Gammapy's
    ``compute_lightcurve_fvar``, :func:`~jaxgamma.variability.compute_fvar` over the intervals).

    ``flux_quantity``: ``"flux"`` (default), ``"dnde"``, ``"e2dnde"`` or ``"eflux"``, with its
    symmetric error ``<quantity>_err``.

    Returns
    -------
    Table
        ``min_energy``, ``max_energy``, ``fvar``, ``fvar_err``, ``significance`` (fvar / fvar_err),
        one row per energy bin; the light curve's meta.
    """
    return _variance_table(lightcurve, flux_quantity, "fvar", compute_fvar, dict(lightcurve.meta))


def compute_lightcurve_fpp(lightcurve: Any, flux_quantity: str = "flux") -> Table:
    """The point-to-point excess variance of a light curve in each energy bin (Gammapy's
    ``compute_lightcurve_fpp``, :func:`~jaxgamma.variability.compute_fpp` over the intervals).

    Returns
    -------
    Table
        ``min_energy``, ``max_energy``, ``fpp``, ``fpp_err``, ``significance``, one row per energy
        bin; meta ``{"quantity": flux_quantity}`` as Gammapy's.
    """
    return _variance_table(lightcurve, flux_quantity, "fpp", compute_fpp, {"quantity": flux_quantity})


def compute_lightcurve_doublingtime(lightcurve: Any, flux_quantity: str = "flux") -> Table:
    """The minimum characteristic doubling and halving times of a light curve in each energy bin
    (Gammapy's ``compute_lightcurve_doublingtime``, :func:`~jaxgamma.variability.compute_flux_doubling`
    over the intervals' mid times).

    Returns
    -------
    Table
        ``min_energy``, ``max_energy``, ``doublingtime``, ``doubling_err`` (days),
        ``doubling_coord`` (Time: the mid time of the first interval of the pair), ``halvingtime``,
        ``halving_err``, ``halving_coord``; NaN where no pair of intervals rises (falls).
    """
    flux, flux_err = _flux_and_error(lightcurve, flux_quantity, "compute_lightcurve_doublingtime")
    result = compute_flux_doubling(flux, flux_err, _time_coords(lightcurve), axis=0)
    start = lightcurve.time_mid[0]
    return Table(
        [
            *_energy_columns(lightcurve),
            result["doubling"],
            result["doubling_err"],
            start + TimeDelta(result["doubling_coord"]),
            result["halving"],
            result["halving_err"],
            start + TimeDelta(result["halving_coord"]),
        ],
        names=(
            "min_energy",
            "max_energy",
            "doublingtime",
            "doubling_err",
            "doubling_coord",
            "halvingtime",
            "halving_err",
            "halving_coord",
        ),
        meta={"flux_quantity": flux_quantity},
    )


def compute_lightcurve_discrete_correlation(
    lightcurve1: Any, lightcurve2: Any = None, flux_quantity: str = "flux", tau: Any = None
) -> dict[str, Any]:
    """The discrete correlation function of two light curves, or the autocorrelation of one
    (Gammapy's ``compute_lightcurve_discrete_correlation``, :func:`~jaxgamma.variability.discrete_correlation`
    over the intervals' mid times; NaN fluxes are left out).

    ``tau``: the lag bin width (a time Quantity); default twice the mean spacing of the first light
    curve's mid times, ``(t[-1] - t[0]) / (0.5 n)``, as Gammapy.

    Returns
    -------
    dict
        ``bins`` (lag bin centres, days), ``discrete_correlation`` and ``discrete_correlation_err``
        (shape ``(n_bins, n_energy)``).
    """
    what = "compute_lightcurve_discrete_correlation"
    flux1, err1 = _flux_and_error(lightcurve1, flux_quantity, what)
    coords1 = _time_coords(lightcurve1)
    if tau is None:
        if len(coords1) < 2:
            raise ValueError(f"{what}: the default tau needs at least two intervals; pass tau")
        tau = (coords1[-1] - coords1[0]) / (0.5 * len(coords1))
    else:
        tau = u.Quantity(tau)
        if not tau.unit.is_equivalent("d"):
            raise ValueError(f"{what}: tau must be a time Quantity, got {tau!r}")
    if lightcurve2 is None:
        flux2, err2, coords2 = flux1, err1, coords1
    else:
        flux2, err2 = _flux_and_error(lightcurve2, flux_quantity, what)
        coords2 = (lightcurve2.time_mid - lightcurve1.time_mid[0]).to("d")
    bins, dcf, dcf_err = discrete_correlation(flux1, err1, flux2, err2, coords1, coords2, tau, axis=0)
    return {"bins": bins, "discrete_correlation": dcf, "discrete_correlation_err": dcf_err}
