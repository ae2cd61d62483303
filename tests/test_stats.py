"""Fit statistics against Gammapy's formulas (live when installed), special cases and gradients."""

from __future__ import annotations

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgamma import stats
from jaxgamma.stats import TimmerKonig_lightcurve_simulator


def _cases():
    rng = np.random.default_rng(1)
    n_on = np.concatenate([rng.poisson(5.0, 200), [0, 0, 3, 0, 7, 2]]).astype(float)
    n_off = np.concatenate([rng.poisson(8.0, 200), [0, 4, 0, 0, 0, 9]]).astype(float)
    alpha = np.concatenate([rng.uniform(0.05, 1.0, 200), [0.2, 0.1, 0.3, 0.0, 0.5, 0.0]])
    mu = np.concatenate([rng.uniform(0.0, 6.0, 200), [0.0, 1.0, 2.0, 1.0, 0.0, 3.0]])
    return n_on, n_off, alpha, mu


def test_cash_special_cases():
    np.testing.assert_allclose(stats.cash(0.0, 0.0), 2e-25)
    np.testing.assert_allclose(stats.cash(3.0, 0.0), 2 * (1e-25 - 3 * np.log(1e-25)), rtol=1e-15)
    np.testing.assert_allclose(stats.cash(3.0, 0.0), 345.39, rtol=1e-4)
    np.testing.assert_allclose(stats.cash(4.0, 2.5), 2 * (2.5 - 4 * np.log(2.5)), rtol=1e-15)


def test_wstat_closed_forms():
    # n_on = 0: mu_bkg = n_off / (1 + alpha)
    np.testing.assert_allclose(stats.wstat_mu_bkg(0.0, 6.0, 0.2, 1.5), 6.0 / 1.2, rtol=1e-14)
    # n_off = 0: mu_bkg = max(0, n_on/(1+a) - mu/a)
    np.testing.assert_allclose(stats.wstat_mu_bkg(5.0, 0.0, 0.5, 1.0), max(0, 5 / 1.5 - 1 / 0.5), atol=1e-14)
    np.testing.assert_allclose(stats.wstat_mu_bkg(5.0, 0.0, 0.5, 3.0), 0.0, atol=1e-14)
    # n_on = n_off = 0: W = 2 mu
    np.testing.assert_allclose(stats.wstat(0.0, 0.0, 0.3, 1.7), 3.4, rtol=1e-14)
    # alpha = 0 contributes 0, and so does alpha = DBL_MAX (acceptance_off = 0 in Gammapy)
    assert float(stats.wstat(4.0, 3.0, 0.0, 1.0)) == 0.0
    assert float(stats.wstat(1.0, 0.0, np.finfo(float).max, 0.01)) == 0.0


def test_wstat_li_ma():
    # with mu_sig = 0 the TS against the best signal is Li & Ma eq. 17
    n_on, n_off, a = 25.0, 60.0, 0.2
    ts = stats.wstat(n_on, n_off, a, 0.0) - stats.wstat(n_on, n_off, a, n_on - a * n_off)
    lima = 2 * (
        n_on * np.log((1 + a) * n_on / (a * (n_on + n_off))) + n_off * np.log((1 + a) * n_off / (n_on + n_off))
    )
    np.testing.assert_allclose(ts, lima, rtol=1e-12)


@pytest.mark.gammapy
def test_against_gammapy():
    gstats = pytest.importorskip("gammapy.stats")
    n_on, n_off, alpha, mu = _cases()
    np.testing.assert_allclose(stats.cash(n_on, mu), gstats.cash(n_on, mu), rtol=1e-14)
    with np.errstate(all="ignore"):
        expected = np.nan_to_num(gstats.wstat(n_on, n_off, alpha, mu))
    np.testing.assert_allclose(stats.wstat(n_on, n_off, alpha, mu), expected, rtol=1e-13, atol=1e-12)


def test_cstat_is_cash_plus_the_saturated_terms():
    n_on, _, _, mu = _cases()
    mu = mu + 0.1
    # C = Cash + 2 (n ln n - n): 0 at mu = n, the model-independent terms added
    saturated = 2 * np.where(n_on > 0, n_on * np.log(np.where(n_on > 0, n_on, 1.0)) - n_on, 0.0)
    np.testing.assert_allclose(stats.cstat(n_on, mu), stats.cash(n_on, mu) + saturated, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.cstat([3.0, 7.5], [3.0, 7.5]), [0.0, 0.0], atol=1e-14)
    with pytest.raises(ValueError, match="truncation_value must be positive"):
        stats.cstat(1.0, 1.0, truncation_value=0.0)
    assert stats.get_wstat_mu_bkg is stats.wstat_mu_bkg and stats.get_wstat_gof_terms is stats.wstat_gof_terms


@pytest.mark.gammapy
def test_cstat_against_gammapy():
    gstats = pytest.importorskip("gammapy.stats")
    n_on, _, _, mu = _cases()
    mu = np.concatenate([mu, [-1.0, 1e-30, 2.0]])
    n_on = np.concatenate([n_on, [2.0, 0.0, 1e-30]])
    np.testing.assert_allclose(stats.cstat(n_on, mu), gstats.cstat(n_on, mu), rtol=1e-14, atol=1e-12)


def test_gradients_are_finite_and_match_finite_differences():
    n_on, n_off, alpha, mu = _cases()
    mu = mu + 0.1  # away from the truncation kink

    def total(scale):
        return jnp.sum(stats.wstat(n_on, n_off, alpha, mu * scale)) + jnp.sum(stats.cash(n_on, mu * scale))

    g = jax.grad(total)(1.0)
    h = 1e-6
    fd = (total(1.0 + h) - total(1.0 - h)) / (2 * h)
    assert np.isfinite(g)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # special cases alone: gradient finite
    for args in [(0.0, 0.0, 0.3), (0.0, 4.0, 0.3), (3.0, 0.0, 0.3), (3.0, 2.0, 0.0)]:
        grad = jax.grad(lambda m, a=args: stats.wstat(a[0], a[1], a[2], m))(0.0 + 1.0)
        assert np.isfinite(grad)


def test_chi2_asymmetric_matches_formula():
    dnde = jnp.array([1.0, 2.0, jnp.nan, 3.0])
    errn = jnp.array([0.1, 0.2, jnp.nan, jnp.nan])
    errp = jnp.array([0.2, 0.3, jnp.nan, jnp.nan])
    err = jnp.array([0.15, 0.25, jnp.nan, 0.4])
    ul = jnp.array([jnp.nan, jnp.nan, 5.0, jnp.nan])
    is_ul = jnp.array([False, False, True, False])
    model = jnp.array([1.1, 1.9, 4.0, 3.2])
    out = stats.chi2_asymmetric(dnde, model, errn, errp, err, ul, is_ul)
    from scipy.special import erfc

    expected = [(0.1 / 0.2) ** 2, (0.1 / 0.2) ** 2, 2 * np.log(erfc((5 - 4) / 5) / erfc(1)), (0.2 / 0.4) ** 2]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


# -- Timmer & Koenig light curves ----------------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.parametrize(
    ("npoints", "nchunks", "options"),
    [
        (20, 10, {}),
        (21, 10, {"mean": 5.0, "std": 2.0}),
        (8, 1, {"power_spectrum_params": {"index": 1.2}}),
        (21, 3, {"mean": 40 * u.Unit("h-1"), "std": 3 * u.Unit("h-1")}),
        (22, 3, {"mean": 40.0, "std": 3.0, "poisson": True}),
    ],
)
def test_timmer_koenig_is_gammapys_with_the_same_seed(npoints, nchunks, options):
    gstats = pytest.importorskip("gammapy.stats")

    def power_law(frequency, index=2.0):
        return frequency**-index

    ours, times = TimmerKonig_lightcurve_simulator(power_law, npoints, 1 * u.h, nchunks=nchunks, random_state=7, **options)
    theirs, their_times = gstats.TimmerKonig_lightcurve_simulator(
        power_law, npoints, 1 * u.h, nchunks=nchunks, random_state=7, **options
    )
    assert getattr(ours, "unit", None) == getattr(theirs, "unit", None)
    np.testing.assert_array_equal(ours, theirs)
    assert times.unit == their_times.unit
    np.testing.assert_array_equal(times.value, their_times.value)


@pytest.mark.parametrize("index", [0.0, 1.0, 1.5])
def test_timmer_koenig_jax_keys_draw_the_power_spectrum(index):
    """Known truth: the mean periodogram of 2000 series drawn with JAX keys (vmapped) has the input
    power law's slope; each series has exactly the requested mean and standard deviation."""
    simulate = jax.jit(
        jax.vmap(lambda key: TimmerKonig_lightcurve_simulator(lambda f: f**-index, 128, 1 * u.s, random_state=key, mean=3.0, std=0.5)[0])
    )
    series = np.asarray(simulate(jax.random.split(jax.random.key(1), 2000)))
    np.testing.assert_allclose(series.mean(axis=1), 3.0, atol=1e-12)
    np.testing.assert_allclose(series.std(axis=1), 0.5, rtol=1e-12)
    power = np.mean(np.abs(np.fft.rfft(series, axis=1)) ** 2, axis=0)
    frequency = np.fft.rfftfreq(128, 1.0)
    fit = (frequency > 0.02) & (frequency < 0.25)
    slope = np.polyfit(np.log(frequency[fit]), np.log(power[fit]), 1)[0]
    assert abs(slope + index) < 0.05


def test_timmer_koenig_options_and_errors():
    spectrum = lambda f: f**-2.0  # noqa: E731
    a, _ = TimmerKonig_lightcurve_simulator(spectrum, 16, 1 * u.d, random_state=np.random.RandomState(2))
    b, _ = TimmerKonig_lightcurve_simulator(spectrum, 16, 1 * u.d, random_state=2)
    np.testing.assert_array_equal(a, b)
    counts, _ = TimmerKonig_lightcurve_simulator(spectrum, 16, 2 * u.d, random_state=2, mean=10.0, std=1.0, poisson=True)
    np.testing.assert_array_equal(counts * 2, np.round(counts * 2))  # counts per 2 d / 2 d
    keyed, _ = TimmerKonig_lightcurve_simulator(spectrum, 16, 1 * u.d, random_state=jax.random.PRNGKey(0))
    assert isinstance(keyed, jax.Array) and keyed.shape == (16,)
    rate, _ = TimmerKonig_lightcurve_simulator(spectrum, 16, 1 * u.d, random_state=2, mean=10 / u.d, std=1 / u.d, poisson=True)
    assert rate.unit == u.Unit("1 / d")  # (Gammapy's Quantity mean fails with poisson)
    np.testing.assert_array_equal(rate.value, np.round(rate.value))
    with pytest.warns(UserWarning, match="target mean is too low"):
        TimmerKonig_lightcurve_simulator(spectrum, 16, 1 * u.s, random_state=1, mean=0.5, poisson=True)
    with pytest.raises(ValueError, match="power spectrum must be a callable"):
        TimmerKonig_lightcurve_simulator([1, 2], 16, 1 * u.s)
    with pytest.raises(TypeError, match="npoints and nchunks must be integers"):
        TimmerKonig_lightcurve_simulator(spectrum, 16.0, 1 * u.s)
    with pytest.raises(ValueError, match="random_state must be"):
        TimmerKonig_lightcurve_simulator(spectrum, 16, 1 * u.s, random_state="fixed")
