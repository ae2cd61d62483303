"""Parameter priors (Gammapy's GaussianPrior, GeneralizedGaussianPrior, UniformPrior, LogUniformPrior).

The prior terms are checked against scipy's densities and Gammapy's priors; in a fit they must
combine with a quadratic likelihood exactly as two Gaussians do, and a fit with priors must land
where Gammapy's does. Files: Gammapy's YAML form both ways.
"""

from __future__ import annotations

import math

import astropy.units as u
import jax
import numpy as np
import pytest
import yaml
from astropy.table import Table
from scipy import stats

import jaxgamma as jg
from jaxgamma.datasets import Datasets, FluxPointsDataset, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.datasets.flux_points import FluxPoints
from jaxgamma.models import (
    GaussianPrior,
    GeneralizedGaussianPrior,
    LogUniformPrior,
    Models,
    PowerLawSpectralModel,
    SkyModel,
    UniformPrior,
)
from jaxgamma.parameters import Parameter

PRIORS = [
    (GaussianPrior(mu=2.3, sigma=0.1), stats.norm(2.3, 0.1), [1.9, 2.3, 2.45]),
    (GaussianPrior(mu=-1.0, sigma=3.0, weight=0.5), stats.norm(-1.0, 3.0), [-7.0, 0.0, 4.0]),
    (GeneralizedGaussianPrior(mu=1.0, sigma=0.2, eta=1.0), stats.gennorm(1.0, 1.0, 0.2 * math.sqrt(2)), [0.5, 1.1, 1.7]),
    (GeneralizedGaussianPrior(mu=0.0, sigma=1.0, eta=0.25), stats.gennorm(4.0, 0.0, math.sqrt(2)), [-1.5, 0.3, 2.0]),
    (UniformPrior(min=-2.0, max=5.0), stats.uniform(-2.0, 7.0), [-3.0, -2.0, 1.0, 5.0, 5.5]),
    (LogUniformPrior(min=1e-13, max=1e-10, weight=2.0), stats.loguniform(1e-13, 1e-10), [1e-14, 1e-13, 3e-12, 1e-10, 2e-10]),
]  # fmt: skip


@pytest.mark.parametrize(("prior", "rv", "values"), PRIORS)
def test_prior_is_weight_times_minus_two_log_density(prior, rv, values):
    expected = -2.0 * prior.weight * rv.logpdf(values)
    got = np.asarray(prior(np.asarray(values)))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # a Parameter gives its value's term; the gradient inside the support is exact
    inside = [v for v, e in zip(values, expected, strict=True) if np.isfinite(e)]
    x = inside[len(inside) // 2] * 1.01 + 1e-3 * abs(inside[len(inside) // 2])
    assert float(prior(Parameter("p", x))) == pytest.approx(float(prior(x)), rel=1e-14)
    h = 1e-6 * max(abs(x), 1e-12)
    numeric = (float(prior(x + h)) - float(prior(x - h))) / (2 * h)
    assert float(jax.grad(prior)(x)) == pytest.approx(numeric, rel=1e-5, abs=1e-7 / h * 1e-6)


@pytest.mark.gammapy
@pytest.mark.parametrize(("prior", "rv", "values"), PRIORS)
def test_prior_terms_equal_gammapys(prior, rv, values):
    from gammapy.modeling import Parameter as GParameter
    from gammapy.modeling.models import Model

    theirs = Model.from_dict({"prior": prior.to_dict()})
    assert type(theirs).__name__ == type(prior).__name__ and theirs.weight == prior.weight
    for v in values:
        expected = theirs(GParameter("p", v))
        got = float(prior(v))
        assert got == pytest.approx(expected, rel=1e-12) or (np.isinf(got) and np.isinf(expected))


def test_bad_priors_are_refused():
    with pytest.raises(ValueError, match="GaussianPrior: sigma must be > 0"):
        GaussianPrior(mu=0.0, sigma=0.0)
    with pytest.raises(ValueError, match="UniformPrior: max must be > min"):
        UniformPrior(min=2.0, max=1.0)
    with pytest.raises(ValueError, match="LogUniformPrior: need 0 < min < max"):
        LogUniformPrior(min=0.0, max=1.0)
    with pytest.raises(ValueError, match="GeneralizedGaussianPrior: sigma and eta must be > 0"):
        GeneralizedGaussianPrior(eta=0.0)
    with pytest.raises(ValueError, match="GaussianPrior: mu must be finite"):
        GaussianPrior(mu=np.nan)
    with pytest.raises(TypeError, match="parameter 'index' prior must be a Prior"):
        Parameter("index", 2.0, prior="GaussianPrior")
    with pytest.raises(ValueError, match="unknown prior type 'CauchyPrior'"):
        Parameter("index", 2.0, prior={"type": "CauchyPrior", "parameters": []})
    with pytest.raises(ValueError, match="outside its bounds"):
        Parameter("index", 7.0, prior=UniformPrior(min=1.0, max=5.0))
    models = Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="src")])
    with pytest.raises(ValueError, match=r"Models\.set_prior: no parameters match 'sigma'"):
        models.set_prior(["sigma"], [GaussianPrior()])
    with pytest.raises(ValueError, match="one prior per parameter"):
        models.set_prior(["index", "amplitude"], [GaussianPrior()])


def test_uniform_priors_set_the_bounds_and_parameters_table():
    models = Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="src")])
    models = models.set_prior(["index", "src.spectral.amplitude"], [UniformPrior(min=1.0, max=4.0), LogUniformPrior()])
    index, amplitude = models["src"].spectral_model.index, models["src"].spectral_model.amplitude
    assert (index.min, index.max) == (1.0, 4.0)
    assert (amplitude.min, amplitude.max) == (1e-14, 1e-10)
    table = models.parameters_table()
    assert list(table["prior"]) == ["UniformPrior", "LogUniformPrior", ""]
    expected = 2 * math.log(3.0) + 2 * math.log(1e-12 * math.log(1e4))
    assert models.prior_stat_sum() == pytest.approx(expected, rel=1e-12)
    # removing a prior keeps the parameter; the prior term goes
    assert models.set_prior(["index", "amplitude"], [None, None]).prior_stat_sum() == 0.0


def _linear_flux_points() -> tuple[FluxPointsDataset, SkyModel]:
    """chi2 flux points of a power law with a frozen index: the statistic is exactly quadratic in
    the amplitude."""
    edges = np.geomspace(1.0, 20.0, 6)
    e_ref = np.sqrt(edges[:-1] * edges[1:])
    rng = np.random.default_rng(4)
    dnde = 2e-12 * e_ref**-2.5 * (1 + 0.08 * rng.normal(size=e_ref.size))
    t = Table()
    t["e_ref"], t["e_min"], t["e_max"] = e_ref * u.TeV, edges[:-1] * u.TeV, edges[1:] * u.TeV
    t["dnde"] = dnde * u.Unit("cm-2 s-1 TeV-1")
    t["dnde_err"] = 0.1 * dnde * u.Unit("cm-2 s-1 TeV-1")
    t.meta["SED_TYPE"] = "dnde"
    spectral = PowerLawSpectralModel(index=2.5, amplitude=1e-12, reference=1.0).freeze("index")
    return FluxPointsDataset(FluxPoints.from_table(t), name="points"), SkyModel(spectral_model=spectral, name="src")


def test_gaussian_prior_combines_with_a_quadratic_likelihood():
    """Likelihood N(a_L, s_L) times prior N(mu, s_P): the fit lands on the precision-weighted mean
    with error (1/s_L**2 + 1/s_P**2)**-0.5, and the total statistic includes the prior term."""
    dataset, model = _linear_flux_points()
    free = jg.fit(dataset, model)
    a_l, s_l = free.parameters[0], free.errors[0]
    mu, s_p = a_l * 1.3, s_l * 0.7
    prior = GaussianPrior(mu=mu, sigma=s_p)
    models = Models([model]).set_prior(["amplitude"], [prior])
    result = jg.fit(dataset, models)
    w_l, w_p = s_l**-2, s_p**-2
    assert result.parameters[0] == pytest.approx((a_l * w_l + mu * w_p) / (w_l + w_p), rel=1e-7)
    assert result.errors[0] == pytest.approx((w_l + w_p) ** -0.5, rel=1e-7)
    best = result.models
    assert result.total_stat == pytest.approx(dataset.stat_sum(best) + float(prior(best.parameters[1])), rel=1e-12)
    assert list(result.parameters_table()["prior"]) == ["", "GaussianPrior", ""]
    # Datasets.stat_sum and joint_stat include the prior terms, a single dataset's stat_sum does not
    assert Datasets([dataset]).stat_sum(best) == pytest.approx(result.total_stat, rel=1e-12)
    assert float(jg.joint_stat(Datasets([dataset]), best)) == pytest.approx(result.total_stat, rel=1e-12)
    assert abs(dataset.stat_sum(best) - result.total_stat) > 1.0
    # a uniform prior wider than the likelihood adds a constant: same fit
    flat = jg.fit(dataset, Models([model]).set_prior(["amplitude"], [UniformPrior(min=0.0, max=1e-11)]))
    assert flat.parameters[0] == pytest.approx(a_l, rel=1e-7)
    assert flat.total_stat == pytest.approx(free.total_stat + 2 * math.log(1e-11), rel=1e-9)


def test_models_file_holds_the_priors(tmp_path):
    models = Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="src")]).set_prior(
        ["index", "amplitude"], [GaussianPrior(mu=2.3, sigma=0.1, weight=0.5), LogUniformPrior(min=1e-13, max=1e-11)]
    )
    path = tmp_path / "models.yaml"
    models.write(path)
    data = yaml.safe_load(path.read_text())
    index = data["components"][0]["spectral"]["parameters"][0]
    assert index["prior"] == {
        "type": "GaussianPrior",
        "parameters": [{"name": "mu", "value": 2.3, "unit": ""}, {"name": "sigma", "value": 0.1, "unit": ""}],
        "weight": 0.5,
    }
    back = Models.read(path)
    assert back["src"].spectral_model.index.prior == models["src"].spectral_model.index.prior
    assert back["src"].spectral_model.amplitude.prior == LogUniformPrior(min=1e-13, max=1e-11)
    assert back.prior_stat_sum() == pytest.approx(models.prior_stat_sum(), rel=1e-14)


def test_models_file_prior_errors_and_units(tmp_path):
    def component(prior: dict, unit: str = "TeV-1 s-1 cm-2") -> dict:
        parameter = {"name": "amplitude", "value": 1e-12, "unit": unit, "prior": prior}
        return {"components": [{"name": "src", "type": "SkyModel", "spectral": {"type": "PowerLawSpectralModel", "parameters": [parameter]}}]}

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(component({"type": "GaussianPrior", "parameters": [{"name": "nu", "value": 1}]})))
    with pytest.raises(ValueError, match=r"bad.yaml.*parameter 'amplitude'.*prior: GaussianPrior: unknown parameter 'nu'"):
        Models.read(path)
    path.write_text(yaml.safe_dump(component({"type": "GaussianPrior", "parameters": [{"name": "sigma", "value": -1}]})))
    with pytest.raises(ValueError, match="prior: GaussianPrior: sigma must be > 0"):
        Models.read(path)
    # the prior's numbers are in the parameter's unit: converted with it
    prior = {"type": "GaussianPrior", "parameters": [{"name": "mu", "value": 2.0}, {"name": "sigma", "value": 0.5}], "weight": 1}
    path.write_text(yaml.safe_dump(component(prior, unit="GeV-1 s-1 cm-2")))
    read = Models.read(path)["src"].spectral_model.amplitude
    assert read.value == pytest.approx(1e-9, rel=1e-12)
    assert read.prior == GaussianPrior(mu=2000.0, sigma=500.0)


@pytest.mark.gammapy
def test_models_files_are_exchanged_with_gammapy(tmp_path):
    from gammapy.modeling.models import Models as GModels

    models = Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="src")]).set_prior(
        ["index", "amplitude", "reference"],
        [GeneralizedGaussianPrior(mu=2.2, sigma=0.2, eta=1.0, weight=2.0), UniformPrior(min=1e-13, max=1e-11), GaussianPrior(mu=1.0, sigma=0.3)],
    )
    models.write(tmp_path / "ours.yaml")
    theirs = GModels.read(tmp_path / "ours.yaml")
    assert theirs.parameters.prior_stat_sum() == pytest.approx(models.prior_stat_sum(), rel=1e-12)
    amplitude = theirs["src"].spectral_model.amplitude
    assert (amplitude.min, amplitude.max) == (1e-13, 1e-11)
    theirs.write(tmp_path / "theirs.yaml")
    back = Models.read(tmp_path / "theirs.yaml")
    assert [p.prior for p in back.parameters] == [p.prior for p in models.parameters]


@pytest.mark.gammapy
def test_fit_with_priors_lands_where_gammapys_does(gammapy_data):
    """H.E.S.S. run 23523 (WStat) with a Gaussian prior on the index that pulls it away from the
    likelihood's best value and a log-uniform prior on the amplitude."""
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrum
    from gammapy.modeling import Fit
    from gammapy.modeling.models import GaussianPrior as GGaussian
    from gammapy.modeling.models import LogUniformPrior as GLogUniform
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel

    path = gammapy_data / "joint-crab" / "spectra" / "hess" / "pha_obs23523.fits"
    start = {"index": 2.3, "amplitude": "3e-11 cm-2 s-1 TeV-1"}
    model = SkyModel(spectral_model=PowerLawSpectralModel(**start), name="crab")
    models = Models([model]).set_prior(
        ["index", "amplitude"], [GaussianPrior(mu=2.9, sigma=0.03), LogUniformPrior(min=1e-12, max=1e-9)]
    )
    ours = jg.fit(Datasets([SpectrumDatasetOnOff.read(path)]), models)

    g_model = GSkyModel(spectral_model=GPowerLaw(**start), name="crab")
    g_model.spectral_model.index.prior = GGaussian(mu=2.9, sigma=0.03)
    g_model.spectral_model.amplitude.prior = GLogUniform(min=1e-12, max=1e-9)
    g_dataset = GSpectrum.read(path)
    g_dataset.models = [g_model]
    theirs = Fit().run(GDatasets([g_dataset]))
    assert ours.success and theirs.success
    spectral = ours.models["crab"].spectral_model
    for name in ("index", "amplitude"):
        g = getattr(g_model.spectral_model, name)
        value = float(getattr(spectral, name).value)
        assert abs(value - g.value) < 0.02 * g.error, name
        assert ours.errors[ours.parameter_names.index(f"crab.spectral.{name}")] == pytest.approx(g.error, rel=0.01)
    # the prior pulls: without it the index is ~2.6
    assert float(spectral.index.value) > 2.85
    assert ours.total_stat <= theirs.total_stat + 1e-3


def test_priors_enter_the_posterior():
    """log_density of a model with a prior is -(stat + prior term) / 2 + the Jacobian: the prior term
    appears exactly once."""
    from jaxgamma.sampling import log_density

    dataset = SpectrumDataset(
        counts=np.array([12.0]), exposure=np.array([1e12]), energy_edges=np.array([1.0, 10.0]), name="one-bin"
    )
    spectral = PowerLawSpectralModel(index=2.0, amplitude=1e-12, reference=1.0).freeze("index", "reference")
    plain = SkyModel(spectral_model=spectral.with_parameters(amplitude={"min": 0.0}), name="src")
    prior = GaussianPrior(mu=1.5e-12, sigma=2e-13)
    with_prior = Models([plain]).set_prior(["amplitude"], [prior])
    d_plain, u0 = log_density(dataset, plain)
    d_prior, u1 = log_density(dataset, with_prior)
    np.testing.assert_allclose(u0, u1)
    for shift in (-0.3, 0.0, 0.4):
        u_ = u0 + shift
        x = d_plain.to_physical(u_)[0]
        assert float(d_prior(u_)) == pytest.approx(float(d_plain(u_)) - 0.5 * float(prior(x)), rel=1e-12)
