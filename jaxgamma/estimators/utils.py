"""Helpers around the estimators, as Gammapy 2.1's ``gammapy.estimators.utils``.

- Peaks: :func:`find_peaks` (local maxima of an image above a threshold, at least ``min_distance``
  apart) and :func:`find_peaks_in_flux_map` (the same on the ``sqrt_ts`` map of a
  :class:`~jaxgamma.estimators.FluxMaps`, with every quantity at the peaks).
- Binning: :func:`resample_energy_edges` (energy groups of a spectrum that each meet conditions on
  their counts, excess, significance or predicted counts, for flux points).
- Light-curve variability: the fractional and point-to-point excess variance, the doubling /
  halving time and the discrete correlation of a :class:`~jaxgamma.estimators.LightCurve`, one value
  per energy bin (the array functions are in :mod:`jaxgamma.variability`). Times are the
  intervals' mid times (Gammapy's time-axis centres); durations come out in days.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import TimeDelta

from ..variability import compute_flux_doubling, compute_fpp, compute_fvar, discrete_correlation

__all__ = [
    "compute_lightcurve_discrete_correlation",
    "compute_lightcurve_doublingtime",
    "compute_lightcurve_fpp",
    "compute_lightcurve_fvar",
    "find_peaks",
    "find_peaks_in_flux_map",
    "resample_energy_edges",
]

_FLUX_QUANTITIES = ("dnde", "flux", "e2dnde", "eflux")


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
