"""Posterior sampling: the log density against the statistic, and NUTS against analytic
posteriors (one Poisson bin: a flat prior gives a Gamma posterior, a Gamma prior a Gamma posterior)."""

from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgamma as jg
from jaxgamma.datasets import SpectrumDataset
from jaxgamma.models import PowerLawSpectralModel, SkyModel
from jaxgamma.sampling import log_density, split_r_hat

EXPOSURE = 1e12  # cm2 s: npred = K * amplitude with K = 9e11 TeV cm2 s over 1-10 TeV (index 2)


def _one_bin(n: float) -> tuple[SpectrumDataset, SkyModel, float]:
    dataset = SpectrumDataset(
        counts=np.array([n]), exposure=np.array([EXPOSURE]), energy_edges=np.array([1.0, 10.0]), name="one-bin"
    )
    spectral = PowerLawSpectralModel(index=2.0, amplitude=1e-12, reference=1.0).freeze("index", "reference")
    model = SkyModel(spectral_model=spectral.with_parameters(amplitude={"min": 0.0}), name="src")
    k = float(dataset.npred(model).sum()) / 1e-12
    return dataset, model, k


def test_log_density_is_half_the_statistic_plus_the_jacobian():
    dataset, model, _ = _one_bin(7.0)
    spectral = PowerLawSpectralModel(index=2.3, amplitude=3e-12, reference=1.0).with_parameters(
        index={"min": 1.0, "max": 4.0}
    )
    model = SkyModel(spectral_model=spectral.freeze("reference"), name="src")
    density, u0 = log_density(dataset, model)
    fun, x0, names = jg.make_stat_function(dataset, model)
    assert density.names == names
    np.testing.assert_allclose(density.to_physical(u0), x0, rtol=1e-12)
    u = jnp.asarray(u0) + jnp.array([0.3, -0.2])
    x = density.to_physical(u)
    jac = jax.jacfwd(density.to_physical)(u)
    expected = -0.5 * fun(x) + np.log(abs(np.linalg.det(np.asarray(jac))))
    np.testing.assert_allclose(density(u), expected, rtol=1e-12)
    # the gradient is exact: compare with central differences
    grad = np.asarray(jax.grad(density)(u))
    h = 1e-6
    numeric = [(density(u.at[i].add(h)) - density(u.at[i].add(-h))) / (2 * h) for i in range(2)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)
    np.testing.assert_allclose(density.to_unconstrained(x), u, rtol=1e-10)


def test_log_density_rejects_bad_input():
    dataset, model, _ = _one_bin(3.0)
    with pytest.raises(ValueError, match="no free parameters"):
        frozen = SkyModel(spectral_model=model.spectral_model.freeze(), name="src")
        log_density(dataset, frozen)
    with pytest.raises(TypeError, match="log_prior must be a callable"):
        log_density(dataset, model, log_prior=1.0)  # type: ignore[arg-type]


def test_split_r_hat():
    rng = np.random.default_rng(1)
    same = rng.normal(size=(4, 500, 2))
    assert np.all(np.abs(split_r_hat(same) - 1) < 0.02)
    shifted = same + np.array([0.0, 0.0, 0.0, 3.0])[:, None, None]
    assert np.all(split_r_hat(shifted) > 1.3)
    with pytest.raises(ValueError, match="at least 4 draws"):
        split_r_hat(same[:, :3])


needs_blackjax = pytest.mark.skipif(
    importlib.util.find_spec("blackjax") is None, reason="blackjax (the sampling extra) is not installed"
)


@needs_blackjax
def test_flat_prior_poisson_posterior_is_gamma():
    """n counts, npred = K a, flat prior on a >= 0: the posterior is Gamma(n + 1, rate K). With
    n = 2 most of the mass lies where the softplus bound transform bends, so a wrong Jacobian
    would show."""
    from jaxgamma.sampling import sample

    n = 2.0
    dataset, model, k = _one_bin(n)
    result = jg.fit(dataset, model)
    draws = sample(dataset, result, num_samples=2000, num_warmup=300, num_chains=4, seed=3)
    a = draws.samples_of("amplitude")
    assert draws.samples.shape == (4, 2000, 1)
    assert draws.n_divergent == 0
    assert np.all(draws.r_hat < 1.01)
    assert a.min() > 0
    np.testing.assert_allclose(a.mean(), (n + 1) / k, rtol=0.03)
    np.testing.assert_allclose(a.std(), np.sqrt(n + 1) / k, rtol=0.04)
    # the mode of Gamma(3) is 2/K = the maximum-likelihood value; the median is 2.674/K
    np.testing.assert_allclose(np.median(a), 2.67406031 / k, rtol=0.03)
    assert "src.spectral.amplitude" in str(draws)
    table = draws.to_table()
    assert list(table["name"]) == ["src.spectral.amplitude"] and table["r_hat"][0] < 1.01


@needs_blackjax
def test_gamma_prior_gives_the_conjugate_posterior():
    """A Gamma(shape s, rate r) prior on a with n Poisson counts of mean K a: posterior
    Gamma(n + s, K + r). The prior here is informative (r = K) and shifts the posterior."""
    from jaxgamma.sampling import sample

    n, s = 20.0, 5.0
    dataset, model, k = _one_bin(n)
    r = k

    def log_prior(x: jax.Array) -> jax.Array:
        return (s - 1) * jnp.log(x[0]) - r * x[0]

    result = jg.fit(dataset, model)
    draws = sample(dataset, result, num_samples=2000, num_warmup=300, num_chains=4, seed=5, log_prior=log_prior)
    a = draws.samples_of("src.spectral.amplitude")
    np.testing.assert_allclose(a.mean(), (n + s) / (k + r), rtol=0.02)
    np.testing.assert_allclose(a.std(), np.sqrt(n + s) / (k + r), rtol=0.04)
    # without the prior the mean would be (n + 1) / K: far outside the tolerance
    assert abs(a.mean() - (n + 1) / k) > 0.3 * (n + 1) / k


@needs_blackjax
def test_log_uniform_prior_gives_the_scale_free_posterior():
    """A LogUniformPrior (density 1/a on [min, max]) with n Poisson counts of mean K a: posterior
    Gamma(n, rate K), truncated far out in its tails; a flat prior would give Gamma(n + 1, K)."""
    from jaxgamma.models import LogUniformPrior, Models
    from jaxgamma.sampling import sample

    n = 10.0
    dataset, model, k = _one_bin(n)
    models = Models([model]).set_prior(["amplitude"], [LogUniformPrior(min=1e-3 / k, max=1e3 / k)])
    result = jg.fit(dataset, models)
    # the mode of the posterior ((n - 1) / K) is the fit with the prior
    assert abs(result.parameters[0] - (n - 1) / k) < 0.01 * result.errors[0]
    draws = sample(dataset, result, num_samples=2000, num_warmup=300, num_chains=4, seed=7)
    a = draws.samples_of("amplitude")
    assert np.all(draws.r_hat < 1.01)
    np.testing.assert_allclose(a.mean(), n / k, rtol=0.025)
    np.testing.assert_allclose(a.std(), np.sqrt(n) / k, rtol=0.05)
    assert abs(a.mean() - (n + 1) / k) > 0.05 * n / k


@needs_blackjax
def test_sample_rejects_bad_settings():
    from jaxgamma.sampling import sample

    dataset, model, _ = _one_bin(3.0)
    with pytest.raises(ValueError, match="num_samples"):
        sample(dataset, model, num_samples=2)
    with pytest.raises(ValueError, match="num_chains"):
        sample(dataset, model, num_chains=0)
    with pytest.raises(ValueError, match="target_acceptance_rate"):
        sample(dataset, model, target_acceptance_rate=1.5)


@needs_blackjax
@pytest.mark.parametrize(("n", "b"), [(5.0, 8.0), (0.0, 0.0)])
def test_posterior_when_the_fit_sits_on_the_bound(n, b):
    """Fewer counts than background (or none): the best fit is on amplitude = 0. The posterior of
    the signal s = K a (flat prior, s >= 0) is prop. to (b + s)^n exp(-s); its mean and width come
    from a quadrature. The sampler's scale and start come from the posterior width, not from the
    best-fit value (~1e-16 here)."""
    from jaxgamma.sampling import sample

    dataset = SpectrumDataset(
        counts=np.array([n]), background=np.array([b]), exposure=np.array([EXPOSURE]), energy_edges=np.array([1.0, 10.0])
    )
    spectral = PowerLawSpectralModel(index=2.0, amplitude=1e-12, reference=1.0).freeze("index", "reference")
    model = SkyModel(spectral_model=spectral.with_parameters(amplitude={"min": 0.0}), name="src")
    k = float(dataset.npred_signal(model).sum()) / 1e-12
    result = jg.fit(dataset, model)
    assert float(result.parameters[0]) * k < 1e-3  # on the bound (a signal of ~1e-4 counts)
    draws = sample(dataset, result, num_samples=2000, num_warmup=300, num_chains=4, seed=11)
    signal = draws.samples_of("amplitude") * k
    s = np.linspace(0, 60, 600001)
    density = np.exp(n * np.log(b + s + 1e-300) - s) if n > 0 else np.exp(-s)
    mean = np.trapezoid(s * density, s) / np.trapezoid(density, s)
    std = np.sqrt(np.trapezoid((s - mean) ** 2 * density, s) / np.trapezoid(density, s))
    assert draws.n_divergent == 0
    assert np.all(draws.r_hat < 1.02)
    np.testing.assert_allclose(signal.mean(), mean, rtol=0.06)
    np.testing.assert_allclose(signal.std(), std, rtol=0.06)
