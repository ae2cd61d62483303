"""Fit-statistic penalties (Gammapy's GaussianPriorPenalty, Models.set_penalties).

The penalty terms are checked against their formula and Gammapy's ``stat_sum``; in a fit an L2
penalty must combine with a quadratic likelihood as two Gaussians do, the penalties must survive
every rebuild of the models a fit does, and a regularized unfolding (a power law times a
piecewise norm with a smoothness penalty on the norms) must land where Gammapy's does.
"""

from __future__ import annotations

import logging
import operator

import jax
import numpy as np
import pytest
from test_priors import _linear_flux_points

import jaxgamma as jg
from jaxgamma.datasets import Datasets, SpectrumDatasetOnOff
from jaxgamma.fit.optimize import TRACES
from jaxgamma.likelihood import clean_models
from jaxgamma.models import (
    CompoundSpectralModel,
    GaussianPrior,
    Models,
    PiecewiseNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
)
from jaxgamma.stats import GaussianPriorPenalty

NODES = [0.7, 2.0, 6.0, 20.0]


def _unfolding_models(norms: list[float] | None = None) -> Models:
    """A fixed power law times a piecewise norm at four nodes (the norms free)."""
    power_law = PowerLawSpectralModel(index=2.6, amplitude="3e-11 cm-2 s-1 TeV-1").freeze("index", "amplitude")
    spectral = CompoundSpectralModel(power_law, PiecewiseNormSpectralModel(energy=NODES, norms=norms), operator.mul)
    return Models([SkyModel(spectral_model=spectral, name="crab")])


def _penalties(n: int) -> list[tuple[str, dict, np.ndarray, np.ndarray]]:
    """(method, kwargs, mean, precision) of each construction, the precision written out."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=(n, n))
    covariance = a @ a.T + n * np.eye(n)
    mean = rng.normal(size=n)
    sigma = rng.uniform(0.5, 2.0, size=n)
    tridiag = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    return [
        ("precision", {"precision": tridiag + np.eye(n), "mean": mean, "lambda_": 0.7}, mean, tridiag + np.eye(n)),
        ("diagonal", {"sigma": sigma, "mean": mean, "lambda_": 2.0}, mean, np.diag(sigma**-2)),
        ("smoothness", {"mean": np.ones(n), "lambda_": 3.0}, np.ones(n), tridiag),
        ("L2", {"mean": 0.5, "lambda_": 1.5}, np.full(n, 0.5), np.eye(n)),
        ("covariance", {"covariance": covariance, "mean": mean}, mean, np.linalg.inv(covariance)),
    ]


def _make(names: list[str], method: str, kwargs: dict) -> GaussianPriorPenalty:
    if method == "covariance":
        return GaussianPriorPenalty(names, **kwargs)
    return GaussianPriorPenalty.from_method(names, method, **kwargs)


@pytest.mark.parametrize("case", range(5))
def test_penalty_is_lambda_times_the_quadratic_form(case):
    names = ["a", "b", "c", "d"]
    method, kwargs, mean, precision = _penalties(len(names))[case]
    penalty = _make(names, method, kwargs)
    lam = kwargs.get("lambda_", 1.0)
    x = np.array([0.3, -1.2, 2.0, 0.9])
    assert float(penalty(x)) == pytest.approx(lam * (x - mean) @ precision @ (x - mean), rel=1e-12)
    grad = np.asarray(jax.grad(penalty)(jax.numpy.asarray(x)))
    np.testing.assert_allclose(grad, lam * (precision + precision.T) @ (x - mean), rtol=1e-10)
    assert penalty == _make(names, method, kwargs) and hash(penalty) == hash(_make(names, method, kwargs))
    assert penalty != _make(names, method, {**kwargs, "lambda_": 9.0})


@pytest.mark.gammapy
@pytest.mark.parametrize("case", range(5))
def test_penalty_terms_equal_gammapys(case):
    import astropy.units as u
    from gammapy.modeling.models import PiecewiseNormSpectralModel as GPiecewise
    from gammapy.stats import GaussianPriorPenalty as GPenalty

    method, kwargs, _, _ = _penalties(len(NODES))[case]
    norms = [1.3, 0.8, 1.1, 0.4]
    g_norms = GPiecewise(energy=np.array(NODES) * u.TeV, norms=norms)
    if method == "covariance":
        theirs = GPenalty(g_norms.parameters, **kwargs)
    else:
        theirs = GPenalty.from_method(g_norms.parameters, method, **kwargs)
    # our Parameter objects name the norms as Gammapy's do: either works as the penalty's parameters
    ours = _unfolding_models(norms).set_penalties(_make(list(g_norms.parameters), method, kwargs))
    assert ours.penalties[0].parameters == tuple(f"crab.spectral.model2.norm_{k}" for k in range(4))
    assert ours.penalties[0].stat_sum(ours) == pytest.approx(theirs.stat_sum(), rel=1e-12)


def test_bad_penalties_are_refused():
    models = _unfolding_models()
    with pytest.raises(ValueError, match=r"mean \(one per parameter\)"):
        GaussianPriorPenalty(["a", "b"], mean=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="covariance matrix is singular"):
        GaussianPriorPenalty(["a", "b"], covariance=[[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="lambda_ must be >= 0"):
        GaussianPriorPenalty(["a"], lambda_=-1.0)
    with pytest.raises(ValueError, match="repeated"):
        GaussianPriorPenalty(["a", "a"])
    with pytest.raises(ValueError, match="at least two parameters"):
        GaussianPriorPenalty.SmoothnessPenalty(["a"])
    with pytest.raises(ValueError, match="sigma must be > 0"):
        GaussianPriorPenalty.from_diagonal(["a", "b"], sigma=[1.0, 0.0])
    with pytest.raises(ValueError, match="method must be one of"):
        GaussianPriorPenalty.from_method(["a"], "ridge")
    with pytest.raises(ValueError, match=r"no parameters match 'norm_9'"):
        models.set_penalties(GaussianPriorPenalty(["norm_0", "norm_9"]))
    two = models + Models([SkyModel(spectral_model=PiecewiseNormSpectralModel(energy=NODES), name="b")])
    with pytest.raises(ValueError, match=r"2 .* parameters match 'norm_1'"):
        two.set_penalties(GaussianPriorPenalty(["norm_1"]))
    assert two.set_penalties(GaussianPriorPenalty(["b.spectral.norm_1"])).penalties[0].parameters == ("b.spectral.norm_1",)
    with pytest.raises(TypeError, match="FitStatisticPenalty"):
        models.set_penalties([[1, 2]])  # Gammapy refuses this too


def test_penalties_are_kept_by_the_models_rebuilds(tmp_path, caplog):
    models = _unfolding_models()
    penalty = GaussianPriorPenalty.SmoothnessPenalty(["norm_0", "norm_1", "norm_2"], lambda_=2.0)
    with_penalty = models.set_penalties(penalty)
    kept = with_penalty.penalties
    assert kept[0].parameters == tuple(f"crab.spectral.model2.norm_{k}" for k in range(3))
    assert Models(with_penalty.models, penalties=penalty).penalties == kept  # Gammapy's constructor form
    assert Models(with_penalty).penalties == kept
    assert with_penalty.replace("crab", with_penalty["crab"]).penalties == kept
    assert with_penalty.with_covariance(None).penalties == kept
    assert clean_models(with_penalty).penalties == kept
    other = Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="other")])
    assert (with_penalty + other).penalties == kept
    assert with_penalty.select("any").penalties == ()  # a dataset's own models: joint terms are not its
    assert with_penalty.set_penalties(None).penalties == ()
    # a model renamed away from under a penalty is refused by name
    with pytest.raises(ValueError, match="norm_0"):
        Models([SkyModel(spectral_model=with_penalty["crab"].spectral_model, name="renamed")], penalties=kept)
    # the models YAML has no place for penalties (nor has Gammapy's): said, not silently dropped
    with caplog.at_level(logging.WARNING, logger="jaxgamma.io.models"):
        with_penalty.write(tmp_path / "models.yaml")
    assert "penalties are not written" in caplog.text
    assert Models.read(tmp_path / "models.yaml").penalties == ()


def test_diagonal_penalty_combines_with_a_quadratic_likelihood():
    """A penalty lambda (a - mu)**2 / s**2 is a Gaussian prior of sigma s / sqrt(lambda) up to a
    constant: the fit lands on the precision-weighted mean with the combined error, and the total
    statistic (and Datasets.stat_sum) holds the penalty term."""
    dataset, model = _linear_flux_points()
    free = jg.fit(dataset, model)
    a_l, s_l = free.parameters[0], free.errors[0]
    mu, s, lam = a_l * 1.3, s_l * 0.7, 2.0
    penalty = GaussianPriorPenalty.from_diagonal(["amplitude"], sigma=s, mean=mu, lambda_=lam)
    result = jg.fit(dataset, Models([model]).set_penalties(penalty))
    w_l, w_p = s_l**-2, lam / s**2
    assert result.parameters[0] == pytest.approx((a_l * w_l + mu * w_p) / (w_l + w_p), rel=1e-7)
    assert result.errors[0] == pytest.approx((w_l + w_p) ** -0.5, rel=1e-7)
    best = result.models
    assert best.penalties == Models([model]).set_penalties(penalty).penalties
    term = lam * (float(best.parameters[1].value) - mu) ** 2 / s**2
    assert result.total_stat == pytest.approx(dataset.stat_sum(best) + term, rel=1e-12)
    assert Datasets([dataset]).stat_sum(best) == pytest.approx(result.total_stat, rel=1e-12)
    assert float(jg.joint_stat(Datasets([dataset]), best)) == pytest.approx(result.total_stat, rel=1e-12)
    # an equal penalty built anew and other start values: the same compiled fit
    traces = TRACES["fit"]
    again = GaussianPriorPenalty.from_diagonal(["amplitude"], sigma=s, mean=mu, lambda_=lam)
    start = model.replace(spectral_model=model.spectral_model.with_values(amplitude=5e-13))
    assert jg.fit(dataset, Models([start]).set_penalties(again)).parameters[0] == pytest.approx(result.parameters[0], rel=1e-7)
    assert TRACES["fit"] == traces
    # the same as the equivalent Gaussian prior
    prior = GaussianPrior(mu=mu, sigma=s / np.sqrt(lam))
    with_prior = jg.fit(dataset, Models([model]).set_prior(["amplitude"], [prior]))
    assert with_prior.parameters[0] == pytest.approx(result.parameters[0], rel=1e-9)
    assert with_prior.errors[0] == pytest.approx(result.errors[0], rel=1e-7)


def test_penalties_enter_the_posterior():
    """log_density of penalized models is the unpenalized one minus half the penalty term."""
    from jaxgamma.sampling import log_density

    dataset, model = _linear_flux_points()
    penalty = GaussianPriorPenalty.from_diagonal(["amplitude"], sigma=2e-13, mean=1.5e-12)
    d_plain, u0 = log_density(dataset, Models([model]))
    d_pen, u1 = log_density(dataset, Models([model]).set_penalties(penalty))
    np.testing.assert_allclose(u0, u1)
    for shift in (-0.2, 0.0, 0.3):
        x = d_plain.to_physical(u0 + shift)
        assert float(d_pen(u0 + shift)) == pytest.approx(float(d_plain(u0 + shift)) - 0.5 * float(penalty(x)), rel=1e-12)


@pytest.mark.gammapy
def test_regularized_unfolding_lands_where_gammapys_does(gammapy_data):
    """H.E.S.S. run 23523 (WStat): a fixed power law times a four-node piecewise norm, the norms
    tied by Gammapy's smoothness penalty around 1."""
    import astropy.units as u
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrum
    from gammapy.modeling import Fit
    from gammapy.modeling.models import CompoundSpectralModel as GCompound
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import PiecewiseNormSpectralModel as GPiecewise
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel
    from gammapy.stats import GaussianPriorPenalty as GPenalty

    path = gammapy_data / "joint-crab" / "spectra" / "hess" / "pha_obs23523.fits"
    names = [f"norm_{k}" for k in range(len(NODES))]
    models = _unfolding_models()
    penalty = GaussianPriorPenalty.SmoothnessPenalty(names, mean=np.ones(len(NODES)), lambda_=3.0)
    datasets = Datasets([SpectrumDatasetOnOff.read(path)])
    ours = jg.fit(datasets, models.set_penalties(penalty))
    plain = jg.fit(datasets, models)

    g_power_law = GPowerLaw(index=2.6, amplitude="3e-11 cm-2 s-1 TeV-1")
    g_power_law.index.frozen = g_power_law.amplitude.frozen = True
    g_norms = GPiecewise(energy=np.array(NODES) * u.TeV)
    g_models = GModels([GSkyModel(spectral_model=GCompound(g_power_law, g_norms, operator.mul), name="crab")])
    g_models.set_penalties([GPenalty.SmoothnessPenalty(g_norms.parameters, mean=np.ones(len(NODES)), lambda_=3.0)])
    g_datasets = GDatasets([GSpectrum.read(path)])
    g_datasets.models = g_models
    theirs = Fit().run(g_datasets)
    assert ours.success and theirs.success
    for k, g in enumerate(g_norms.parameters):
        index = ours.parameter_names.index(f"crab.spectral.model2.norm_{k}")
        assert abs(ours.parameters[index] - g.value) < 0.01 * g.error, g.name
        assert ours.errors[index] == pytest.approx(g.error, rel=0.01), g.name
    assert ours.total_stat <= theirs.total_stat + 1e-4
    assert ours.total_stat == pytest.approx(g_datasets.stat_sum(), abs=1e-3)
    # the penalty matters: unpenalized, the last norm moves by more than its error
    last = ours.parameter_names.index("crab.spectral.model2.norm_3")
    assert abs(plain.parameters[last] - ours.parameters[last]) > ours.errors[last]
