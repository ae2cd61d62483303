"""Gammapy's Sampler interface: nested sampling (UltraNest) and NUTS against analytic posteriors and
evidences, the prior transforms and the likelihood against Gammapy's, and a whole run taking
Gammapy's Sampler's path on a H.E.S.S. spectrum (benchmarks/bench_sampler.py compares the vectorised
runs)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from scipy import stats

from jaxgamma.datasets import Datasets, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.models import (
    GaussianPrior,
    GeneralizedGaussianPrior,
    LogUniformPrior,
    Models,
    PowerLawSpectralModel,
    SkyModel,
    UniformPrior,
)
from jaxgamma.sampling import NestedProblem, Sampler, SamplerResult, _BatchStat, auto_batch_size

needs_ultranest = pytest.mark.skipif(
    importlib.util.find_spec("ultranest") is None, reason="UltraNest (the sampling extra) is not installed"
)
needs_blackjax = pytest.mark.skipif(
    importlib.util.find_spec("blackjax") is None, reason="blackjax (the sampling extra) is not installed"
)
QUIET = {"show_status": False, "viz_callback": False}

PRIORS = [
    (GaussianPrior(mu=2.3, sigma=0.1), stats.norm(2.3, 0.1)),
    (GeneralizedGaussianPrior(mu=1.0, sigma=0.2, eta=1.0), stats.gennorm(1.0, 1.0, 0.2 * math.sqrt(2))),
    (GeneralizedGaussianPrior(mu=0.0, sigma=1.0, eta=0.25, weight=3.0), stats.gennorm(4.0, 0.0, math.sqrt(2))),
    (UniformPrior(min=-2.0, max=5.0), stats.uniform(-2.0, 7.0)),
    (LogUniformPrior(min=1e-13, max=1e-10), stats.loguniform(1e-13, 1e-10)),
]  # fmt: skip
QUANTILES = np.array([0.0, 1e-9, 0.02, 0.1587, 0.5, 0.77, 0.999, 1.0])


@pytest.mark.parametrize(("prior", "rv"), PRIORS)
def test_inverse_cdf_is_the_quantile_function(prior, rv):
    values = prior.inverse_cdf(QUANTILES)
    np.testing.assert_allclose(values[1:-1], rv.ppf(QUANTILES[1:-1]), rtol=1e-13)
    # the density integrates to the quantile: cdf(ppf(q)) = q, and the weight does not enter
    np.testing.assert_allclose(rv.cdf(values[1:-1]), QUANTILES[1:-1], rtol=1e-9, atol=1e-15)
    assert np.all(np.diff(values) > 0)
    assert prior.inverse_cdf(0.5).shape == ()


def test_inverse_cdf_known_values():
    np.testing.assert_allclose(UniformPrior(min=1.0, max=5.0).inverse_cdf([0.0, 0.25, 1.0]), [1.0, 2.0, 5.0])
    np.testing.assert_allclose(LogUniformPrior(min=1e-12, max=1e-10).inverse_cdf([0.0, 0.5, 1.0]), [1e-12, 1e-11, 1e-10], rtol=1e-13)
    # one sigma above the mean of a Gaussian
    assert GaussianPrior(mu=2.0, sigma=0.5).inverse_cdf(stats.norm.cdf(1.0)) == pytest.approx(2.5, rel=1e-14)
    # eta = 0.5 is the Gaussian
    gg = GeneralizedGaussianPrior(mu=2.0, sigma=0.5, eta=0.5)
    assert gg.inverse_cdf(0.3) == pytest.approx(GaussianPrior(mu=2.0, sigma=0.5).inverse_cdf(0.3), rel=1e-12)


@pytest.mark.gammapy
@pytest.mark.parametrize(("prior", "rv"), PRIORS)
def test_inverse_cdf_equals_gammapys(prior, rv):
    from gammapy.modeling.models import Model

    theirs = Model.from_dict({"prior": prior.to_dict()})
    np.testing.assert_allclose(prior.inverse_cdf(QUANTILES), theirs._inverse_cdf(QUANTILES), rtol=1e-15)


def _one_bin(n: float, name: str, prior) -> tuple[SpectrumDataset, SkyModel, float]:
    """One Poisson bin, npred = K a, with a prior on the amplitude a."""
    dataset = SpectrumDataset(
        counts=np.array([n]), exposure=np.array([1e12]), energy_edges=np.array([1.0, 10.0]), name=name
    )
    spectral = PowerLawSpectralModel(index=2.0, amplitude=1e-12, reference=1.0).freeze("index", "reference")
    model = SkyModel(spectral_model=spectral.with_parameters(amplitude={"prior": prior}), name=f"src-{name}", datasets_names=[name])
    k = float(dataset.npred(model).sum()) / 1e-12
    return dataset, model, k


def _two_sources():
    """Two independent bins: a flat prior (posterior Gamma(n + 1, K)) and a log-uniform one
    (posterior Gamma(n, K)). Cash's likelihood exp(-stat / 2) = mu^n e^-mu gives the evidences
    Gamma(n + 1) / (K (max - min)) and Gamma(n) / ln(max / min) (both truncations negligible)."""
    (d1, m1, k1), (d2, m2, k2) = _one_bin(7.0, "a", UniformPrior(0.0, 5e-11)), _one_bin(30.0, "b", LogUniformPrior(1e-13, 1e-10))
    mean = np.array([8.0 / k1, 30.0 / k2])
    std = np.array([math.sqrt(8.0) / k1, math.sqrt(30.0) / k2])
    log_z = math.lgamma(8.0) - math.log(k1 * 5e-11) + math.lgamma(30.0) - math.log(math.log(1e3))
    return Datasets([d1, d2]), Models([m1, m2]), mean, std, log_z


@needs_ultranest
def test_nested_sampling_finds_the_analytic_posterior_and_evidence():
    datasets, models, mean, std, log_z = _two_sources()
    np.random.seed(4)  # noqa: NPY002  (UltraNest draws from the global generator)
    result = Sampler(sampler_opts={"live_points": 300, "frac_remain": 0.01}, run_opts=QUIET).run(datasets, models)
    assert isinstance(result, SamplerResult) and result.backend == "ultranest"
    assert result.success and result.nfev > 1000
    assert result.parameter_names == ("src-a.spectral.amplitude", "src-b.spectral.amplitude")
    assert result.samples.shape[1] == 2 and len(result.samples) > 500
    got_z, z_err = result.log_evidence
    assert 0.0 < z_err < 0.3
    assert abs(got_z - log_z) < 3 * z_err
    # posterior moments: the Monte-Carlo error of ~1000 effective samples is ~3 % of sigma
    np.testing.assert_allclose(result.samples.mean(axis=0), mean, atol=0.15 * std.min())
    np.testing.assert_allclose(result.samples.std(axis=0), std, rtol=0.1)
    # the models carry the posterior means and standard deviations (Gammapy's), no covariance
    posterior = result.sampler_results["posterior"]
    for k, name in enumerate(("src-a", "src-b")):
        amplitude = result.models[name].spectral_model.amplitude
        assert float(amplitude.value) == posterior["mean"][k]
        assert amplitude.error == posterior["stdev"][k]
    assert result.models.covariance is None
    # the input models are not changed
    assert float(models["src-a"].spectral_model.amplitude.value) == 1e-12
    text = str(result)
    assert "ln Z" in text and "src-b.spectral.amplitude" in text
    assert list(result.to_table()["name"]) == list(result.parameter_names)


@needs_ultranest
def test_nested_sampling_without_vectorizing_agrees():
    """UltraNest calling the likelihood one point at a time (Gammapy's way) gives the same
    posterior."""
    datasets, models, mean, std, log_z = _two_sources()
    np.random.seed(5)  # noqa: NPY002  (UltraNest draws from the global generator)
    opts = {"live_points": 200, "vectorized": False}
    result = Sampler(sampler_opts=opts, run_opts=QUIET).run(datasets, models)
    np.testing.assert_allclose(result.samples.mean(axis=0), mean, atol=0.2 * std.min())
    got_z, z_err = result.log_evidence
    assert abs(got_z - log_z) < 3 * z_err


@needs_blackjax
def test_nuts_backend_finds_the_analytic_posterior():
    datasets, models, mean, std, _ = _two_sources()
    opts = {"num_samples": 1500, "num_warmup": 300, "num_chains": 4, "seed": 2}
    result = Sampler(backend="nuts", sampler_opts=opts).run(datasets, models)
    assert result.success, result.message
    assert result.samples.shape == (6000, 2)
    assert result.nfev == int(result.sampler_results.num_integration_steps.sum()) > 6000
    np.testing.assert_allclose(result.samples.mean(axis=0), mean, rtol=0.04)
    np.testing.assert_allclose(result.samples.std(axis=0), std, rtol=0.06)
    assert result.log_evidence is None
    amplitude = result.models["src-b"].spectral_model.amplitude
    assert float(amplitude.value) == pytest.approx(result.samples[:, 1].mean(), rel=1e-12)
    assert amplitude.error == pytest.approx(result.samples[:, 1].std(ddof=1), rel=1e-12)


def test_batched_statistic_equals_one_point_at_a_time():
    import jaxgamma as jg

    datasets, models, *_ = _two_sources()
    fun, x0, _ = jg.make_stat_function(datasets, models)
    batch = _BatchStat(fun, 2, max_batch=16)
    rng = np.random.default_rng(0)
    points = x0 * rng.uniform(0.5, 40.0, size=(37, 2))  # 37 points: chunks of 16, 16, 5 (padded)
    expected = np.array([float(fun(p)) for p in points])
    np.testing.assert_allclose(batch(points), expected, rtol=1e-13)
    assert batch(points[3]) == pytest.approx(expected[3], rel=1e-13)
    # the prior terms are not in the nested sampler's likelihood
    problem = NestedProblem(datasets, models, batch_size=16)
    with_priors = np.array([float(fun(p)) for p in points[:5]])
    assert np.all(np.isfinite(problem.loglike(points[:5])))
    prior_terms = np.array([float(UniformPrior(0.0, 5e-11)(p[0]) + LogUniformPrior(1e-13, 1e-10)(p[1])) for p in points[:5]])
    np.testing.assert_allclose(-2 * problem.loglike(points[:5]), with_priors - prior_terms, rtol=1e-12)
    cube = rng.uniform(size=(4, 2))
    np.testing.assert_allclose(problem.transform(cube)[:, 1], LogUniformPrior(1e-13, 1e-10).inverse_cdf(cube[:, 1]))


def test_batch_size_follows_the_data_size():
    datasets, models, *_ = _two_sources()
    assert auto_batch_size(datasets) == 1024 and NestedProblem(datasets, models).batch_size == 1024
    edges = np.geomspace(1.0, 100.0, 70_001)
    big = SpectrumDataset(counts=np.ones(70_000), exposure=np.full(70_000, 1e12), energy_edges=edges, name="big")
    # 2**24 bins per call at most: 239 points of 70000 bins -> 128
    assert auto_batch_size([big]) == 128 and auto_batch_size([big], largest=64) == 64
    assert NestedProblem(datasets, models, batch_size=4).batch_size == 4


def test_sampler_refuses_bad_input():
    datasets, models, *_ = _two_sources()
    with pytest.raises(ValueError, match="backend 'emcee' is not supported"):
        Sampler(backend="emcee")
    with pytest.raises(ValueError, match=r"unknown sampler_opts \['live_point'\]"):
        Sampler(sampler_opts={"live_point": 100})
    with pytest.raises(ValueError, match="power of two"):
        Sampler(sampler_opts={"batch_size": 100})
    with pytest.raises(ValueError, match=r"unknown sampler_opts \['live_points'\] for the nuts backend"):
        Sampler(backend="nuts", sampler_opts={"live_points": 100})
    with pytest.raises(ValueError, match="takes no run_opts"):
        Sampler(backend="nuts", run_opts={"min_ess": 10})
    no_prior = Models([models["src-a"], _one_bin(30.0, "b", None)[1]])
    with pytest.raises(ValueError, match=r"no prior set: \['src-b.spectral.amplitude'\]"):
        NestedProblem(datasets, no_prior)
    frozen = Models([SkyModel(spectral_model=models["src-a"].spectral_model.freeze(), name="src-a")])
    with pytest.raises(ValueError, match="no free parameters"):
        NestedProblem(datasets, frozen)
    assert "backend='ultranest'" in repr(Sampler())


HESS_START = {"index": 2.5, "amplitude": "3e-11 cm-2 s-1 TeV-1"}


def _hess(gammapy_data):
    path = gammapy_data / "joint-crab" / "spectra" / "hess" / "pha_obs23523.fits"
    models = Models([SkyModel(spectral_model=PowerLawSpectralModel(**HESS_START), name="crab")]).set_prior(
        ["index", "amplitude"], [UniformPrior(min=1.0, max=5.0), LogUniformPrior(min=1e-12, max=1e-10)]
    )
    return path, Datasets([SpectrumDatasetOnOff.read(path)]), models


def _gammapy_hess(path):
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrum
    from gammapy.modeling.models import LogUniformPrior as GLogUniform
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel
    from gammapy.modeling.models import UniformPrior as GUniform

    model = GSkyModel(spectral_model=GPowerLaw(**HESS_START), name="crab")
    model.spectral_model.index.prior = GUniform(min=1.0, max=5.0)
    model.spectral_model.amplitude.prior = GLogUniform(min=1e-12, max=1e-10)
    dataset = GSpectrum.read(path)
    dataset.models = [model]
    return GDatasets([dataset])


@pytest.mark.gammapy
def test_nested_likelihood_and_transform_equal_gammapys(gammapy_data):
    """H.E.S.S. run 23523 (WStat): the prior transform and the likelihood at points drawn from the
    prior equal Gammapy's SamplerLikelihood and prior inverse CDFs."""
    from gammapy.modeling.sampler import SamplerLikelihood

    path, datasets, models = _hess(gammapy_data)
    g_datasets = _gammapy_hess(path)
    problem = NestedProblem(datasets, models)
    parameters = g_datasets.models.parameters.free_unique_parameters
    like = SamplerLikelihood(function=g_datasets._stat_sum_likelihood, parameters=parameters)
    cube = np.random.default_rng(7).uniform(size=(25, 2))
    points = problem.transform(cube)
    expected_points = np.array([[p.prior._inverse_cdf(q) for p, q in zip(parameters, row, strict=True)] for row in cube])
    np.testing.assert_allclose(points, expected_points, rtol=1e-15)
    expected = np.array([like.fcn(list(p)) for p in points])
    np.testing.assert_allclose(problem.loglike(points), expected, rtol=1e-10)


@needs_ultranest
@pytest.mark.gammapy
def test_one_point_at_a_time_takes_gammapys_path(gammapy_data):
    """UltraNest called one point at a time (as Gammapy calls it) from the same seed makes the same
    decisions when the likelihoods agree: the same number of calls and the same evidence and
    posterior to round-off."""
    from gammapy.modeling import Sampler as GSampler

    path, datasets, models = _hess(gammapy_data)
    opts = {"live_points": 50, "frac_remain": 0.9}
    np.random.seed(3)  # noqa: NPY002  (UltraNest draws from the global generator)
    ours = Sampler(sampler_opts={**opts, "vectorized": False}, run_opts=QUIET).run(datasets, models)
    np.random.seed(3)  # noqa: NPY002  (UltraNest draws from the global generator)
    theirs = GSampler(sampler_opts=dict(opts), run_opts=dict(QUIET)).run(_gammapy_hess(path))
    assert ours.nfev == theirs.nfev
    assert ours.log_evidence[0] == pytest.approx(theirs.sampler_results["logz"], abs=1e-8)
    np.testing.assert_allclose(ours.samples, theirs.samples, rtol=1e-8)
