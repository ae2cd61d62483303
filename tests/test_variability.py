"""Variability estimators (jaxgamma.variability and the light-curve wrappers) against Gammapy 2.1,
closed forms and simulated light curves with known variability."""

from __future__ import annotations

import warnings

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.table import Table

from jaxgamma import stats
from jaxgamma.estimators import (
    LightCurve,
    compute_lightcurve_discrete_correlation,
    compute_lightcurve_doublingtime,
    compute_lightcurve_fpp,
    compute_lightcurve_fvar,
)
from jaxgamma.variability import (
    compute_chisq,
    compute_flux_doubling,
    compute_fpp,
    compute_fvar,
    discrete_correlation,
    structure_function,
)


def _series(seed=1, n=30, shape=(4,)):
    rng = np.random.default_rng(seed)
    flux = rng.normal(10, 2, (n, *shape))
    err = np.abs(rng.normal(1, 0.2, (n, *shape)))
    time = np.cumsum(rng.uniform(0.5, 2, n)) * u.d
    return flux, err, time


def _lightcurve_table(n=12, scale="tt", seed=3):
    rng = np.random.default_rng(seed)
    start = 55000 + np.cumsum(rng.uniform(0.5, 2, n))
    flux = rng.normal([1e-11, 1e-12], [2e-12, 3e-13], (n, 2))
    table = Table()
    table["time_min"] = start
    table["time_max"] = start + 0.3
    table["e_min"] = [[1.0, 10.0]] * n * u.TeV
    table["e_max"] = [[10.0, 100.0]] * n * u.TeV
    table["flux"] = flux * u.Unit("cm-2 s-1")
    table["flux_err"] = 0.1 * np.abs(flux) * u.Unit("cm-2 s-1")
    table.meta.update({"MJDREFI": 0, "MJDREFF": 0.0, "TIMESYS": scale, "TIMEUNIT": "d", "SED_TYPE": "flux"})
    return table


def _quiet(function, *args):
    """A Gammapy call without its numpy warnings (empty bins, NaN weights)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args)


def _gammapy_fpp_to_edelson(fpp, flux, err):
    """Gammapy's F_pp (no factor 1/2) turned into Edelson's: recover its squared-difference term."""
    mean = np.nanmean(flux, axis=0)
    n = np.sum(~np.isnan(flux), axis=0)
    sig2 = np.nansum(err**2, axis=0) / n
    s2_gammapy = fpp**2 * mean**2 + sig2  # its s2 exceeds sig2 in these series
    value = np.sqrt(np.abs(s2_gammapy / 2 - sig2)) / mean
    err_a = np.sqrt(2 / n) * sig2 / mean**2
    err_b = np.sqrt(sig2 / n) * (2 * value / mean)
    return value, np.sqrt(err_a**2 + err_b**2) / (2 * value)


@pytest.mark.gammapy
def test_array_functions_match_gammapy():
    variability = pytest.importorskip("gammapy.stats.variability")
    flux, err, time = _series()
    flux[3, 1] = np.nan
    err[5, 2] = np.nan
    expected = variability.compute_fvar(flux, err)
    for got in (compute_fvar(flux, err), compute_fvar(jnp.asarray(flux), jnp.asarray(err))):
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-13)
    # F_pp: Gammapy's with the paper's 1/2 restored
    expected = _gammapy_fpp_to_edelson(variability.compute_fpp(flux, err)[0], flux, err)
    for got in (compute_fpp(flux, err), compute_fpp(jnp.asarray(flux), jnp.asarray(err))):
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(np.asarray(g), e, rtol=1e-10)
    # chi2 of one series
    for got in (compute_chisq(flux[:, 0]), compute_chisq(jnp.asarray(flux[:, 0]))):
        np.testing.assert_allclose(np.asarray(got), variability.compute_chisq(flux[:, 0]), rtol=1e-12)
    # doubling / halving
    theirs = variability.compute_flux_doubling(flux, err, time)
    for got in (compute_flux_doubling(flux, err, time), compute_flux_doubling(jnp.asarray(flux), jnp.asarray(err), time)):
        for key, value in theirs.items():
            assert got[key].unit == u.d
            np.testing.assert_allclose(got[key].value, value.to_value("d"), rtol=1e-13, err_msg=key)
    # structure function (lags from irregular and from regular times, NaN errors)
    for t in (time, np.arange(30.0) * u.d):
        sf, lags = structure_function(flux, err, t)
        sf_gp, lags_gp = _quiet(variability.structure_function, flux, err, t)
        np.testing.assert_array_equal(lags.to_value("d"), lags_gp.to_value("d"))
        np.testing.assert_array_equal(np.isnan(sf), np.isnan(sf_gp))
        np.testing.assert_allclose(sf[~np.isnan(sf)], sf_gp[~np.isnan(sf_gp)], rtol=1e-12)
    # discrete correlation of two series of different lengths
    rng = np.random.default_rng(4)
    time2 = np.cumsum(rng.uniform(0.5, 2, 25)) * u.d
    flux2, err2 = rng.normal(5, 1, (25, 4)), np.abs(rng.normal(0.3, 0.1, (25, 4)))
    expected = _quiet(variability.discrete_correlation, flux, err, flux2, err2, time, time2, 3 * u.d)
    got = discrete_correlation(flux, err, flux2, err2, time, time2, 3 * u.d)
    np.testing.assert_array_equal(got[0].to_value("d"), expected[0].to_value("d"))
    for g, e in zip(got[1:], expected[1:], strict=True):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
        np.testing.assert_array_equal(np.signbit(g), np.signbit(e))  # empty bins: -0 as Gammapy's
        np.testing.assert_allclose(g[~np.isnan(g)], e[~np.isnan(e)], rtol=1e-12, atol=1e-15)


@pytest.mark.gammapy
def test_lightcurve_wrappers_match_gammapy():
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints
    from gammapy.estimators import utils as gutils

    table = _lightcurve_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = FluxPoints.from_table(table, format="lightcurve")
    ours = LightCurve.from_table(table)

    got, expected = compute_lightcurve_fvar(ours), gutils.compute_lightcurve_fvar(theirs)
    assert got.colnames == expected.colnames
    for column in got.colnames:
        np.testing.assert_allclose(u.Quantity(got[column]).value, np.ravel(u.Quantity(expected[column]).value), rtol=1e-12)

    got = compute_lightcurve_fpp(ours)
    expected = gutils.compute_lightcurve_fpp(theirs)
    assert got.colnames == expected.colnames and got.meta == {"quantity": "flux"}
    flux, err = ours.flux, ours.flux_err
    edelson = _gammapy_fpp_to_edelson(np.ravel(expected["fpp"]), flux, err)
    np.testing.assert_allclose(got["fpp"], edelson[0], rtol=1e-10)
    np.testing.assert_allclose(got["fpp_err"], edelson[1], rtol=1e-10)

    got = compute_lightcurve_doublingtime(ours)
    expected = gutils.compute_lightcurve_doublingtime(theirs)
    assert got.colnames == expected.colnames
    for column in ("doublingtime", "doubling_err", "halvingtime", "halving_err"):
        np.testing.assert_allclose(got[column].quantity.to_value("s"), np.ravel(expected[column].quantity.to_value("s")), rtol=1e-9)
    for column in ("doubling_coord", "halving_coord"):  # TT: no leap seconds in Gammapy's time axis
        np.testing.assert_allclose((got[column] - expected[column].ravel()).to_value("s"), 0, atol=1e-6)

    for second in (None, LightCurve.from_table(_lightcurve_table(n=9, seed=5))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = None if second is None else FluxPoints.from_table(_lightcurve_table(n=9, seed=5), format="lightcurve")
            expected = gutils.compute_lightcurve_discrete_correlation(theirs, other)
        got = compute_lightcurve_discrete_correlation(ours, second)
        np.testing.assert_allclose(got["bins"].to_value("s"), expected["bins"].to_value("s"), rtol=1e-12, atol=1e-6)
        for key in ("discrete_correlation", "discrete_correlation_err"):
            g, e = got[key], expected[key]
            np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
            np.testing.assert_allclose(g[~np.isnan(g)], e[~np.isnan(e)], rtol=1e-10, atol=1e-14)


def test_excess_variances_recover_known_variability():
    """Simulated light curves (vmapped over keys): white noise of intrinsic rms s around m with
    Gaussian errors sigma; E[fvar^2] = s^2 / m^2 (Vaughan et al. 2003) and, with the factor 1/2,
    E[fpp^2] too (Edelson et al. 2002)."""
    m, s, sigma, n, n_curves = 10.0, 1.0, 0.5, 300, 400

    @jax.jit
    @jax.vmap
    def variances(key):
        k1, k2 = jax.random.split(key)
        flux = m + s * jax.random.normal(k1, (n,)) + sigma * jax.random.normal(k2, (n,))
        err = jnp.full(n, sigma)
        return compute_fvar(flux, err)[0], compute_fpp(flux, err)[0]

    fvar, fpp = variances(jax.random.split(jax.random.key(0), n_curves))
    for value in (fvar, fpp):
        squared = np.asarray(value) ** 2 * m**2 / s**2
        assert abs(squared.mean() - 1) < 3 * squared.std() / np.sqrt(n_curves)
    # red noise (a random walk) is more variable on long time scales: fvar > fpp
    walk = m + np.cumsum(np.random.default_rng(1).normal(0, 0.1, n))
    assert compute_fvar(walk, np.full(n, 0.01))[0] > 2 * compute_fpp(walk, np.full(n, 0.01))[0]


def test_doubling_closed_form_and_edge_cases():
    # an exponential rise doubling every 2 d, then a fall halving every 0.5 d
    t = np.array([0.0, 2.0, 4.0, 4.5, 5.0])
    flux = np.array([1.0, 2.0, 4.0, 2.0, 1.0])
    err = 0.1 * flux
    result = compute_flux_doubling(flux, err, t * u.d)
    assert result["doubling"].to_value("d") == pytest.approx(2.0)
    assert result["halving"].to_value("d") == pytest.approx(0.5)
    assert result["doubling_coord"].to_value("d") == 0.0 and result["halving_coord"].to_value("d") == 4.0
    # err: dt ln2 / ln(r)^2 * sqrt((e1/f1)^2 + (e0/f0)^2), relative errors 0.1
    assert result["doubling_err"].to_value("d") == pytest.approx(2 * np.log(2) / np.log(2) ** 2 * np.sqrt(2) * 0.1)
    # a monotonic rise has no halving: NaN (Gammapy reports the first pair's doubling)
    rise = compute_flux_doubling(flux[:3], err[:3], t[:3])
    assert np.isnan(rise["halving"]) and np.isnan(rise["halving_err"]) and rise["doubling"] == pytest.approx(2.0)
    # along another axis, jitted
    stacked = jnp.asarray([flux, [1.0, 2.0, 4.0, 8.0, 16.0]])  # the second doubles every 0.5 d at the end
    jitted = jax.jit(lambda f: compute_flux_doubling(f, 0.1 * f, jnp.asarray(t), axis=1))(stacked)
    np.testing.assert_allclose(np.asarray(jitted["doubling"]), [2.0, 0.5], rtol=1e-12)


def test_structure_function_and_dcf_closed_forms():
    # SF of a linear trend with equal weights: (a tau)^2
    t = np.arange(10.0)
    flux = 5.0 + 0.5 * t
    sf, lags = structure_function(flux, flux, t)  # weights (f_i/f_i)(f_j/f_j) = 1
    np.testing.assert_allclose(sf, (0.5 * lags) ** 2, rtol=1e-12)
    # the autocorrelation of a noiseless series at lag 0 is var / var = 1 (ddof 0 as Gammapy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    centers, dcf, err = discrete_correlation(x, np.zeros(50), x, np.zeros(50), t := np.arange(50.0), t, 0.5)
    zero = np.argmin(np.abs(centers - 0.25))
    assert centers[zero] == 0.25 and dcf[zero] == pytest.approx(1.0)
    assert dcf.shape == err.shape == centers.shape


def test_errors_name_the_argument():
    flux, err, time = _series()
    with pytest.raises(ValueError, match="same shape"):
        compute_fvar(flux, err[:, :2])
    with pytest.raises(ValueError, match="not convertible"):
        compute_fvar(flux * u.Unit("cm-2 s-1"), err * u.s)
    with pytest.raises(ValueError, match="coords must have shape"):
        compute_flux_doubling(flux, err, time[:5])
    with pytest.raises(ValueError, match="time must have shape"):
        structure_function(flux, err, time[:5])
    with pytest.raises(ValueError, match="tau must be a Quantity"):
        discrete_correlation(flux, err, flux, err, time, time, 3.0)
    lc = LightCurve.from_table(_lightcurve_table())
    with pytest.raises(ValueError, match="flux_quantity must be one of"):
        compute_lightcurve_fvar(lc, flux_quantity="norm")
    with pytest.raises(TypeError, match="expected a LightCurve"):
        compute_lightcurve_fpp(Table())
    with pytest.raises(ValueError, match="tau must be a time Quantity"):
        compute_lightcurve_discrete_correlation(lc, tau=3 * u.m)


def test_stats_reexports_gammapy_names():
    for name in ("compute_fvar", "compute_fpp", "compute_chisq", "compute_flux_doubling", "structure_function", "discrete_correlation"):
        assert getattr(stats, name) is globals()[name]
