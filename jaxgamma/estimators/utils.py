"""Light-curve variability, as Gammapy 2.1's ``gammapy.estimators.utils``: the fractional and
point-to-point excess variance, the doubling / halving time and the discrete correlation of a
:class:`~jaxgamma.estimators.LightCurve`, one value per energy bin (the array functions are in
:mod:`jaxgamma.variability`).

Times are the intervals' mid times (Gammapy's time-axis centres); durations come out in days.
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
]

_FLUX_QUANTITIES = ("dnde", "flux", "e2dnde", "eflux")


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
