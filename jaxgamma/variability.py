"""Variability estimators of flux series, as Gammapy 2.1's ``gammapy.stats.variability`` (also
importable from :mod:`jaxgamma.stats`, where Gammapy keeps them).

``compute_fvar`` (fractional excess variance, Vaughan et al. 2003), ``compute_fpp``
(point-to-point excess variance, Edelson et al. 2002, with the paper's factor 1/2 that Gammapy 2.1
drops), ``compute_chisq`` (chi-square test against
the mean) and ``compute_flux_doubling`` (minimum doubling / halving time between consecutive
points) take arrays with the series along ``axis``: numpy arrays give numpy results with Gammapy's
formulas, NaN-aware as Gammapy's; JAX arrays give JAX results, and these four can then be jitted
and vmapped (the variability of thousands of simulated light curves in one call, see
:func:`~jaxgamma.stats.TimmerKonig_lightcurve_simulator`). ``structure_function`` (Emmanoulopoulos
et al. 2010) and ``discrete_correlation`` (Edelson & Krolik 1988) group pairs of points by their
time lag, a data-dependent binning: numpy only.

Quantities are accepted where Gammapy takes them: the errors are converted to the unit of the
fluxes, times / coordinates keep their unit in the results.

The light-curve wrappers (``compute_lightcurve_fvar`` etc.) are in :mod:`jaxgamma.estimators.utils`.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "compute_chisq",
    "compute_flux_doubling",
    "compute_fpp",
    "compute_fvar",
    "discrete_correlation",
    "structure_function",
]


def _xp(*arrays: Any) -> Any:
    """jnp when any input is a JAX array (or a tracer), else numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _values(flux: Any, flux_err: Any, what: str) -> tuple[Any, Any]:
    """Plain arrays of the fluxes and their errors (errors converted to the fluxes' unit)."""
    if isinstance(flux, u.Quantity):
        try:
            err = u.Quantity(flux_err).to_value(flux.unit) if isinstance(flux_err, u.Quantity) else flux_err
        except u.UnitConversionError as exc:
            raise ValueError(f"{what}: flux_err unit {flux_err.unit} is not convertible to the flux unit {flux.unit}") from exc
        return np.asarray(flux.value, dtype=np.float64), np.asarray(err, dtype=np.float64)
    if isinstance(flux_err, u.Quantity):
        flux_err = flux_err.value
    if isinstance(flux, jax.Array) or isinstance(flux_err, jax.Array):
        return jnp.asarray(flux, dtype=float), jnp.asarray(flux_err, dtype=float)
    return np.asarray(flux, dtype=np.float64), np.asarray(flux_err, dtype=np.float64)


def _check_same_shape(flux: Any, flux_err: Any, what: str) -> None:
    if np.shape(flux) != np.shape(flux_err):
        raise ValueError(f"{what}: flux and flux_err must have the same shape, got {np.shape(flux)} and {np.shape(flux_err)}")


def _excess_variance(flux: Any, flux_err: Any, axis: int, what: str, squared_deviation: Any) -> tuple[Any, Any]:
    """Gammapy's excess variance and its error (Vaughan et al. 2003, eq. 11): the variance
    estimate ``squared_deviation(flux, mean, xp) / (n - 1)`` less the mean squared error, over the
    squared mean (NaN fluxes left out)."""
    _check_same_shape(flux, flux_err, what)
    flux, flux_err = _values(flux, flux_err, what)
    xp = _xp(flux, flux_err)
    flux_mean = xp.nanmean(flux, axis=axis)
    n_points = xp.sum(~xp.isnan(flux), axis=axis)
    s_square = xp.nansum(squared_deviation(flux, xp.expand_dims(flux_mean, axis), xp), axis=axis) / (n_points - 1)
    sig_square = xp.nansum(flux_err**2, axis=axis) / n_points
    value = xp.sqrt(xp.abs(s_square - sig_square)) / flux_mean
    err_a = xp.sqrt(2 / n_points) * sig_square / flux_mean**2
    err_b = xp.sqrt(sig_square / n_points) * (2 * value / flux_mean)
    return value, xp.sqrt(err_a**2 + err_b**2) / (2 * value)


def compute_fvar(flux: Any, flux_err: Any, axis: int = 0) -> tuple[Any, Any]:
    r"""The fractional excess variance :math:`F_{var} = \sqrt{(S^2 - \overline{\sigma^2}) / \bar{x}^2}`
    of the fluxes along ``axis`` and its error (Vaughan et al. 2003), as Gammapy's ``compute_fvar``:
    :math:`S^2` the sample variance (``n - 1``), :math:`\overline{\sigma^2}` the mean squared error,
    NaN fluxes left out (the absolute value of the difference is taken, as Gammapy).

    Returns
    -------
    fvar, fvar_err : arrays
        The shape of ``flux`` without ``axis``; JAX arrays for JAX input (jit- and vmap-able).
    """
    return _excess_variance(flux, flux_err, axis, "compute_fvar", lambda f, mean, xp: (f - mean) ** 2)


def compute_fpp(flux: Any, flux_err: Any, axis: int = 0) -> tuple[Any, Any]:
    r"""The point-to-point excess variance :math:`F_{pp}` of the fluxes along ``axis`` and its error
    (Edelson et al. 2002, eq. 3), Gammapy's ``compute_fpp`` with the paper's factor 1/2: as
    :func:`compute_fvar` with the variance replaced by half the mean squared difference of
    consecutive points, :math:`\sum (x_{i+1} - x_i)^2 / (2 (n - 1))` (differences next to a NaN
    left out), so that for white noise :math:`F_{pp}` and :math:`F_{var}` agree, as Gammapy's
    documentation says.

    Gammapy 2.1 drops the 1/2: its :math:`F_{pp}^2` is :math:`(2 s^2 + \overline{\sigma^2}) / \bar{x}^2`
    for white noise of intrinsic variance :math:`s^2`, not :math:`s^2 / \bar{x}^2` (on simulated
    white noise with :math:`s / \bar{x} = 0.1` and errors half of :math:`s`, Gammapy's mean
    :math:`F_{pp}` is 0.15, ours and both libraries' :math:`F_{var}` 0.10).

    Returns
    -------
    fpp, fpp_err : arrays
        The shape of ``flux`` without ``axis``; JAX arrays for JAX input (jit- and vmap-able).
    """
    return _excess_variance(flux, flux_err, axis, "compute_fpp", lambda f, mean, xp: xp.diff(f, axis=axis) ** 2 / 2)


def compute_chisq(flux: Any) -> tuple[Any, Any]:
    r"""The chi-square test of constancy, as Gammapy's ``compute_chisq`` (``scipy.stats.chisquare``
    of the fluxes against their mean): :math:`\chi^2 = \sum_i (x_i - \bar{x})^2 / \bar{x}` along the
    first axis, with ``n - 1`` degrees of freedom for the p-value. The mean is taken over all the
    fluxes, as Gammapy's (for a 2-d array Gammapy's scipy call refuses the mismatched sums; ours
    computes each column against that mean).

    Returns
    -------
    chi2, pval : float or arrays
        One value per column for a multi-dimensional ``flux``; JAX arrays for JAX input.
    """
    if isinstance(flux, u.Quantity):
        flux = flux.value
    xp = _xp(flux)
    flux = xp.asarray(flux, dtype=float)
    expected = xp.mean(flux)
    chi2 = xp.sum((flux - expected) ** 2 / expected, axis=0)
    dof = flux.shape[0] - 1
    if xp is jnp:
        return chi2, jax.scipy.stats.chi2.sf(chi2, dof)
    from scipy import stats

    return chi2, stats.chi2.sf(chi2, dof)


def compute_flux_doubling(flux: Any, flux_err: Any, coords: Any, axis: int = 0) -> dict[str, Any]:
    r"""The minimum characteristic flux doubling and halving "times" along ``axis``, as Gammapy's
    ``compute_flux_doubling``: between consecutive points
    :math:`\Delta t / \log_2(f_{i+1} / f_i)`, the smallest positive value (doubling) and the
    negative value of smallest magnitude (halving, given as its absolute value), with errors from
    the relative flux errors and the coordinate of the first point of the pair.

    ``coords`` (a Quantity or an array, shape ``(n,)``) are the coordinates of the points along
    ``axis``. Where no pair rises (falls), the doubling (halving) and its error are NaN and its
    coordinate is the first one (Gammapy reports the first pair's value, whatever its sign).

    Returns
    -------
    dict
        ``doubling``, ``doubling_err``, ``doubling_coord``, ``halving``, ``halving_err``,
        ``halving_coord``: the shape of ``flux`` without ``axis``, in the unit of ``coords``.
        JAX arrays for JAX input (jit- and vmap-able).
    """
    _check_same_shape(flux, flux_err, "compute_flux_doubling")
    flux, flux_err = _values(flux, flux_err, "compute_flux_doubling")
    unit = coords.unit if isinstance(coords, u.Quantity) else None
    coords = coords.value if unit is not None else coords
    xp = _xp(flux, flux_err, coords)
    coords = xp.asarray(coords, dtype=float)
    if xp.ndim(flux) == 0 or coords.shape != (xp.shape(flux)[axis],):
        raise ValueError(
            f"compute_flux_doubling: coords must have shape ({np.shape(flux)[axis] if np.ndim(flux) else 0},) "
            f"(the points along axis {axis}), got {coords.shape}"
        )
    flux = xp.moveaxis(flux, axis, -1)
    flux_err = xp.moveaxis(flux_err, axis, -1)
    step = xp.diff(coords)
    lo, hi = flux[..., :-1], flux[..., 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = xp.log(hi / lo)
        times = step / (log_ratio / np.log(2.0))
        err_hi = step * np.log(2.0) / (hi * log_ratio**2)
        err_lo = step * np.log(2.0) / (lo * log_ratio**2)
        times_err = xp.sqrt((flux_err[..., 1:] * err_hi) ** 2 + (flux_err[..., :-1] * err_lo) ** 2)
    finite = xp.isfinite(times)
    rising = finite & (times > 0)
    falling = finite & (times < 0)
    i_rise = xp.argmin(xp.where(rising, times, np.inf), axis=-1)
    i_fall = xp.argmax(xp.where(falling, times, -np.inf), axis=-1)

    def pick(values: Any, index: Any, valid: Any) -> Any:
        chosen = xp.take_along_axis(values, index[..., None], axis=-1)[..., 0]
        return xp.where(xp.any(valid, axis=-1), chosen, np.nan)

    doubling = pick(times, i_rise, rising)
    halving = xp.abs(pick(times, i_fall, falling))
    out = {
        "doubling": doubling,
        "doubling_err": pick(times_err, i_rise, rising),
        "doubling_coord": coords[i_rise],
        "halving": halving,
        "halving_err": pick(times_err, i_fall, falling),
        "halving_coord": coords[i_fall],
    }
    if unit is not None:
        out = {key: u.Quantity(np.asarray(value), unit) for key, value in out.items()}
    return out


def structure_function(flux: Any, flux_err: Any, time: Any, tdelta_precision: int = 5) -> tuple[Any, Any]:
    r"""The discrete structure function of a variable source (Emmanoulopoulos et al. 2010), as
    Gammapy's ``structure_function``: for each distinct positive time lag :math:`\tau` (lags rounded
    to ``tdelta_precision`` decimals, in the unit of ``time``), the weighted mean of
    :math:`(f_j - f_i)^2` over the pairs at that lag, weights :math:`(f_i / \sigma_i)(f_j / \sigma_j)`
    (NaN terms count as 0, as Gammapy's).

    ``flux`` / ``flux_err``: the series along the first axis (further axes are kept); ``time``:
    shape ``(n,)``.

    Returns
    -------
    sf : array, shape (n_lags, ...)
        A Quantity in the flux unit squared when ``flux`` is a Quantity.
    distances : array or Quantity, shape (n_lags,)
        The lags, increasing.
    """
    _check_same_shape(flux, flux_err, "structure_function")
    flux_unit = flux.unit if isinstance(flux, u.Quantity) else None
    flux, flux_err = _values(flux, flux_err, "structure_function")
    flux, flux_err = np.asarray(flux), np.asarray(flux_err)
    time_unit = time.unit if isinstance(time, u.Quantity) else None
    time = np.asarray(time.value if time_unit is not None else time, dtype=np.float64)
    if flux.ndim == 0 or time.shape != (flux.shape[0],):
        raise ValueError(f"structure_function: time must have shape ({np.shape(flux)[0] if flux.ndim else 0},), got {time.shape}")
    lags = (time[np.newaxis, :] - time[:, np.newaxis]).round(decimals=tdelta_precision)
    first, second = np.nonzero(lags > 0)
    distances, which = np.unique(lags[first, second], return_inverse=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        f = np.nan_to_num((flux[second] - flux[first]) ** 2)
        w = np.nan_to_num((flux[second] / flux_err[second]) * (flux[first] / flux_err[first]))
        factor = np.zeros(distances.shape + flux.shape[1:])
        norm = np.zeros_like(factor)
        np.add.at(factor, which, f * w)
        np.add.at(norm, which, w)
        sf = factor / norm
    return (
        sf if flux_unit is None else u.Quantity(sf, flux_unit**2),
        distances if time_unit is None else u.Quantity(distances, time_unit),
    )


def _unit_and_value(x: Any, unit: Any, what: str) -> np.ndarray:
    if isinstance(x, u.Quantity):
        if unit is None:
            raise ValueError(f"discrete_correlation: {what} is a Quantity but time1 is not")
        return np.asarray(x.to_value(unit), dtype=np.float64)
    if unit is not None:
        raise ValueError(f"discrete_correlation: {what} must be a Quantity (time1 is one, in {unit})")
    return np.asarray(x, dtype=np.float64)


def discrete_correlation(
    flux1: Any, flux_err1: Any, flux2: Any, flux_err2: Any, time1: Any, time2: Any, tau: Any, axis: int = 0
) -> tuple[Any, np.ndarray, np.ndarray]:
    r"""The discrete correlation function of two flux series (Edelson & Krolik 1988), as Gammapy's
    ``discrete_correlation``: the unbinned correlations
    :math:`(a_i - \bar a)(b_j - \bar b) / \sqrt{(s_a^2 - \bar\sigma_a^2)(s_b^2 - \bar\sigma_b^2)}`
    (Gammapy's: standard deviations with ``ddof=0`` and the mean error squared) averaged in lag bins
    of width ``tau`` (lag ``time1[i] - time2[j]``; the bins start at ``floor(min lag / tau)``, NaNs
    left out) with the error :math:`\sqrt{\sum (\mathrm{dcf} - u_{ij})^2} / (n - 1)`.

    Returns
    -------
    bincenters : array or Quantity
        In the unit of ``time1``.
    discrete_correlation, discrete_correlation_err : arrays, shape (n_bins, ...)
        NaN in empty bins and for errors of one pair (Gammapy's numpy arithmetic, without its
        warnings; an empty bin's error is -0, as Gammapy's).
    """
    flux1, flux_err1 = _values(flux1, flux_err1, "discrete_correlation")
    flux2, flux_err2 = _values(flux2, flux_err2, "discrete_correlation")
    flux1, flux2 = np.moveaxis(np.asarray(flux1), axis, 0), np.moveaxis(np.asarray(flux2), axis, 0)
    flux_err1, flux_err2 = np.moveaxis(np.asarray(flux_err1), axis, 0), np.moveaxis(np.asarray(flux_err2), axis, 0)
    if np.squeeze(flux1).shape[1:] != np.squeeze(flux2).shape[1:]:
        raise ValueError("flux1 and flux2 must have the same squeezed shape, apart from the chosen axis.")
    unit = time1.unit if isinstance(time1, u.Quantity) else None
    t1 = _unit_and_value(time1, unit, "time1")
    t2 = _unit_and_value(time2, unit, "time2")
    step = float(_unit_and_value(tau, unit, "tau"))
    if t1.shape != flux1.shape[:1] or t2.shape != flux2.shape[:1]:
        raise ValueError(
            f"discrete_correlation: time1 / time2 must have shapes {flux1.shape[:1]} / {flux2.shape[:1]} "
            f"(the points along axis {axis}), got {t1.shape} / {t2.shape}"
        )
    if not step > 0:
        raise ValueError(f"discrete_correlation: tau must be > 0, got {tau}")
    with np.errstate(divide="ignore", invalid="ignore"):
        udcf1 = (flux1 - np.nanmean(flux1, axis=0)) / np.sqrt(np.nanstd(flux1, axis=0) ** 2 - np.nanmean(flux_err1, axis=0) ** 2)
        udcf2 = (flux2 - np.nanmean(flux2, axis=0)) / np.sqrt(np.nanstd(flux2, axis=0) ** 2 - np.nanmean(flux_err2, axis=0) ** 2)
    udcf = udcf1[:, np.newaxis] * udcf2[np.newaxis, :]
    udcf = udcf.reshape((udcf.shape[0] * udcf.shape[1], -1))
    lags = (t1[:, np.newaxis] - t2[np.newaxis, :]).ravel()

    max_factor = np.floor(np.max(lags) / step) + 1
    min_factor = np.floor(np.min(lags) / step)
    bins = np.linspace(min_factor, max_factor, int(np.abs(max_factor) + np.abs(min_factor) + 1)) * step
    bin_index = np.digitize(lags, bins)

    # per-bin sums over the pairs (memory of the pairs, not bins x pairs): bin k holds index k + 1
    n_bins = len(bins) - 1
    inside = (bin_index >= 1) & (bin_index <= n_bins)
    which, udcf = bin_index[inside] - 1, udcf[inside]
    valid = ~np.isnan(udcf)
    filled = np.where(valid, udcf, 0.0)
    sums, n_valid = np.zeros((n_bins, udcf.shape[1])), np.zeros((n_bins, udcf.shape[1]))
    np.add.at(sums, which, filled)
    np.add.at(n_valid, which, valid)
    n_pairs = np.bincount(which, minlength=n_bins)[:, np.newaxis]
    with np.errstate(divide="ignore", invalid="ignore"):
        dcf = sums / n_valid
        squares = np.zeros_like(sums)
        np.add.at(squares, which, np.where(valid, (dcf[which] - filled) ** 2, 0.0))
        dcf_err = np.sqrt(squares) / (n_pairs - 1)
    shape = (len(bins) - 1, *udcf1.shape[1:])
    centers = 0.5 * (bins[1:] + bins[:-1])
    return (centers if unit is None else u.Quantity(centers, unit)), dcf.reshape(shape), dcf_err.reshape(shape)
