"""Profile likelihood: confidence intervals, statistic profiles and surfaces, contours — analytic
checks, consistency with the covariance and with each other, and Gammapy 2.1's MINOS live."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from jaxgamma.datasets.core import Datasets
from jaxgamma.datasets.spectrum import SpectrumDatasetOnOff
from jaxgamma.fit import FitResult, confidence, fit, minimize, stat_contour, stat_profile, stat_surface
from jaxgamma.fit.optimize import TRACES
from jaxgamma.likelihood import joint_stat
from jaxgamma.models import LogParabolaSpectralModel, Models, SkyModel

RUNS = (23523, 23526, 23559, 23592)


# -- analytic ---------------------------------------------------------------------------------------------
COV = np.array([[4.0, 1.2], [1.2, 1.0]])


def _gaussian(x, inv_cov):
    d = x - jnp.array([1.0, -2.0])
    return d @ inv_cov @ d


@pytest.fixture(scope="module")
def gaussian() -> FitResult:
    fun = jax.tree_util.Partial(_gaussian, inv_cov=jnp.asarray(np.linalg.inv(COV)))
    return minimize(fun, [3.0, 0.0], names=["a", "b"], tol=1e-6)


def test_gaussian_intervals_are_the_covariance_errors(gaussian):
    for i, name in enumerate(["a", "b"]):
        for sigma in (1.0, 2.0):
            profiled = confidence(None, gaussian, name, sigma=sigma)
            assert profiled["success"], profiled["message"]
            np.testing.assert_allclose(
                [profiled["errp"], profiled["errn"]], sigma * np.sqrt(COV[i, i]), rtol=1e-5
            )
            assert profiled["nfev"] > 0
        # without re-optimisation: the conditional error sqrt(1 / inv_cov_ii)
        fixed = confidence(None, gaussian, name, reoptimize=False)
        np.testing.assert_allclose(fixed["errp"], np.sqrt(1 / np.linalg.inv(COV)[i, i]), rtol=1e-5)


def _poisson(x):
    return -2.0 * (5.0 * jnp.log(x[0]) - x[0])


def test_asymmetric_poisson_interval_matches_root_finding():
    result = minimize(_poisson, [3.0], tol=1e-6)
    interval = confidence(None, result, "x0")
    assert interval["success"]

    def excess(mu):
        return 2.0 * (mu - 5.0 - 5.0 * np.log(mu / 5.0)) - 1.0

    upper = brentq(excess, 5.0, 20.0, xtol=1e-12)
    lower = brentq(excess, 0.1, 5.0, xtol=1e-12)
    np.testing.assert_allclose(interval["errp"], upper - 5.0, rtol=1e-4)
    np.testing.assert_allclose(interval["errn"], 5.0 - lower, rtol=1e-4)
    assert interval["errp"] > interval["errn"]


def test_interval_beyond_a_bound_is_reported():
    result = minimize(_poisson, [6.0], mins=[4.5], tol=1e-6, names=["mu"])
    interval = confidence(None, result, "mu")
    assert not interval["success"]
    assert "lower end is beyond the parameter's bound" in interval["message"]
    assert np.isnan(interval["errn"]) and interval["errp"] > 0


def test_unknown_parameter_and_bad_sigma_raise(gaussian):
    with pytest.raises(KeyError, match="no unique free parameter"):
        confidence(None, gaussian, "c")
    with pytest.raises(ValueError, match="sigma"):
        confidence(None, gaussian, "a", sigma=0)


# -- H.E.S.S. -----------------------------------------------------------------------------------------------
def _pha(data_dir: Path, run: int) -> Path:
    return data_dir / "joint-crab" / "spectra" / "hess" / f"pha_obs{run}.fits"


@pytest.fixture(scope="module")
def hess(data_dir) -> Datasets:
    runs = Datasets([SpectrumDatasetOnOff.read(_pha(data_dir, r)) for r in RUNS])
    return Datasets([runs.stack_reduce(name="HESS")])


def _lp() -> Models:
    spectral = LogParabolaSpectralModel(
        amplitude="3e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.5, beta=0.1
    )
    return Models([SkyModel(spectral, name="crab")])


@pytest.fixture(scope="module")
def lp_fit(hess) -> FitResult:
    result = fit(hess, _lp())
    assert result.success, result.message
    return result


@pytest.fixture(scope="module")
def intervals(hess, lp_fit) -> dict[str, dict]:
    return {name: confidence(hess, lp_fit, name) for name in ("amplitude", "alpha", "beta")}


def test_profile_intervals_agree_with_covariance(lp_fit, intervals):
    for name, interval in intervals.items():
        assert interval["success"], interval["message"]
        mean = 0.5 * (interval["errp"] + interval["errn"])
        # a well-behaved parameter: the profile interval is the covariance error within 2 %
        if name in ("amplitude", "alpha"):
            assert mean == pytest.approx(lp_fit.error(name), rel=0.02)
        else:
            assert mean == pytest.approx(lp_fit.error(name), rel=0.05)


def test_profile_reaches_one_at_the_interval_ends(hess, lp_fit, intervals):
    best = lp_fit.value("alpha")
    values = [best + intervals["alpha"]["errp"], best - intervals["alpha"]["errn"], best]
    profile = stat_profile(hess, lp_fit, "alpha", values=values, reoptimize=True)
    assert profile["success"].all()
    np.testing.assert_allclose(profile["stat_scan"] - lp_fit.total_stat, [1.0, 1.0, 0.0], atol=2e-4)


def test_stat_profile_default_scan_and_direct_evaluation(hess, lp_fit):
    profile = stat_profile(hess, lp_fit, "alpha")
    values = profile["crab.spectral.alpha_scan"]
    assert values.shape == (11,)
    np.testing.assert_allclose(
        values[[0, 5, 10]], lp_fit.value("alpha") + np.array([-2, 0, 2]) * lp_fit.error("alpha")
    )
    # without re-optimisation: the statistic at the best fit with alpha replaced
    for k in (0, 7):
        models = lp_fit.models
        spectral = models["crab"].spectral_model
        changed = models.replace(
            "crab", models["crab"].replace(spectral_model=_with_value(spectral, "alpha", values[k]))
        )
        assert profile["stat_scan"][k] == pytest.approx(float(joint_stat(hess, changed)), rel=1e-10)
    assert profile["stat_scan"][5] == pytest.approx(lp_fit.total_stat, rel=1e-12)
    # the amplitude (interp "log") is scanned on a geometric grid
    amplitude = stat_profile(hess, lp_fit, "amplitude", n_values=5)["crab.spectral.amplitude_scan"]
    np.testing.assert_allclose(amplitude[1:] / amplitude[:-1], amplitude[1] / amplitude[0])
    # re-optimised, the profile lies below the conditional one and touches it at the best fit
    profiled = stat_profile(hess, lp_fit, "alpha", reoptimize=True)
    assert profiled["success"].all()
    assert np.all(profiled["stat_scan"] <= profile["stat_scan"] + 1e-9)
    assert profiled["stat_scan"][5] == pytest.approx(lp_fit.total_stat, abs=1e-8)


def _with_value(model, name, value):
    import equinox as eqx

    return eqx.tree_at(lambda m: getattr(m, name), model, getattr(model, name).with_value(value))


def test_stat_surface(hess, lp_fit):
    x = lp_fit.value("alpha") + np.array([-1.0, 0.0, 1.0]) * lp_fit.error("alpha")
    y = lp_fit.value("beta") + np.array([-1.0, 0.0, 1.0, 2.0]) * lp_fit.error("beta")
    surface = stat_surface(hess, lp_fit, "alpha", "beta", x, y)
    assert surface["stat_scan"].shape == (3, 4)
    np.testing.assert_allclose(surface["crab.spectral.alpha_scan"], x)
    np.testing.assert_allclose(surface["crab.spectral.beta_scan"], y)
    assert surface["stat_scan"][1, 1] == pytest.approx(lp_fit.total_stat, rel=1e-12)
    profiled = stat_surface(hess, lp_fit, "alpha", "beta", x, y, reoptimize=True)
    assert profiled["success"].all()
    assert np.all(profiled["stat_scan"] <= surface["stat_scan"] + 1e-9)
    assert profiled["stat_scan"][1, 1] == pytest.approx(lp_fit.total_stat, abs=1e-8)


def test_stat_contour_lies_on_the_level_and_spans_the_intervals(hess, lp_fit, intervals):
    contour = stat_contour(hess, lp_fit, "alpha", "beta")
    assert contour["success"], contour["message"]
    alpha, beta = contour["crab.spectral.alpha"], contour["crab.spectral.beta"]
    assert alpha.shape == beta.shape == (16,)
    # every point is sigma^2 = 1 above the minimum with the amplitude re-optimised
    for k in (0, 5, 13):
        point = stat_surface(hess, lp_fit, "alpha", "beta", [alpha[k]], [beta[k]], reoptimize=True)
        assert point["stat_scan"][0, 0] - lp_fit.total_stat == pytest.approx(1.0, abs=2e-4)
    # its extent along alpha is the profile interval of alpha (the contour is sampled: within 2 %)
    best = lp_fit.value("alpha")
    assert alpha.max() - best == pytest.approx(intervals["alpha"]["errp"], rel=0.02)
    assert best - alpha.min() == pytest.approx(intervals["alpha"]["errn"], rel=0.02)


def test_profile_programs_are_reused(hess, lp_fit):
    confidence(hess, lp_fit, "alpha")
    traces = dict(TRACES)
    confidence(hess, lp_fit, "beta")
    confidence(hess, lp_fit, "amplitude", sigma=2)
    assert dict(TRACES) == traces


# -- Gammapy live ------------------------------------------------------------------------------------------
@pytest.mark.gammapy
def test_confidence_against_gammapy_minos(data_dir, lp_fit, intervals):
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GOnOff
    from gammapy.modeling import Fit
    from gammapy.modeling.models import LogParabolaSpectralModel as GLP
    from gammapy.modeling.models import SkyModel as GSkyModel

    runs = GDatasets([GOnOff.read(_pha(data_dir, r)) for r in RUNS])
    datasets = GDatasets([runs.stack_reduce(name="HESS")])
    datasets.models = [
        GSkyModel(GLP(amplitude="3e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.5, beta=0.1), name="crab")
    ]
    fitter = Fit()
    fitter.run(datasets)
    for name in ("alpha", "beta"):
        theirs = fitter.confidence(datasets, name)
        assert theirs["success"]
        assert intervals[name]["errp"] == pytest.approx(float(theirs["errp"]), rel=0.02)
        assert intervals[name]["errn"] == pytest.approx(float(theirs["errn"]), rel=0.02)
