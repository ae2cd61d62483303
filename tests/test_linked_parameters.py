"""Linked parameters (Gammapy's one Parameter object shared by several models): one entry of the
fit vector however many copies, changes that reach every copy, the covariance of the copies, the
``link`` key of the models YAML both ways, and a fit against Gammapy 2.1 on two H.E.S.S. runs with
their own amplitudes and one spectral shape."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import jaxgamma as jg
from jaxgamma.datasets import Datasets, SpectrumDatasetOnOff
from jaxgamma.models import GaussianPrior, LogParabolaSpectralModel, Models, SkyModel
from jaxgamma.parameters import Parameter, ParameterVector, map_parameters, resolve_parameter_name

RUNS = ("23523", "23526")


def _lp(alpha: float = 2.3, beta: float = 0.1) -> LogParabolaSpectralModel:
    return LogParabolaSpectralModel(amplitude="3e-11 cm-2 s-1 TeV-1", reference="1 TeV", alpha=alpha, beta=beta)


def _per_run(alpha_b: float = 2.3) -> Models:
    """A log-parabola per H.E.S.S. run (models "a" and "b")."""
    return Models(
        [
            SkyModel(spectral_model=_lp(), name="a", datasets_names=[RUNS[0]]),
            SkyModel(spectral_model=_lp(alpha=alpha_b), name="b", datasets_names=[RUNS[1]]),
        ]
    )


def _shape_linked() -> Models:
    return _per_run().link("a.spectral.alpha", "b.spectral.alpha").link("a.spectral.beta", "b.spectral.beta")


@pytest.fixture(scope="module")
def hess(data_dir):
    folder = data_dir / "joint-crab" / "spectra" / "hess"
    return Datasets([SpectrumDatasetOnOff.read(folder / f"pha_obs{run}.fits") for run in RUNS])


# -- the parameter vector ----------------------------------------------------------------------------
def test_vector_has_one_entry_per_group():
    models = _per_run().link("a.spectral.alpha", "b.spectral.alpha")
    pv = ParameterVector.from_tree(models)
    assert pv.names == (
        "a.spectral.amplitude", "a.spectral.alpha", "a.spectral.beta", "b.spectral.amplitude", "b.spectral.beta",
    )  # fmt: skip
    assert pv.index("b.spectral.alpha") == pv.index("a.spectral.alpha") == 1
    x = np.array([1e-11, 2.0, 0.2, 2e-11, 0.3])
    new = pv.unflatten(jnp.asarray(x), models)
    assert float(new["a"].spectral_model.alpha.value) == float(new["b"].spectral_model.alpha.value) == 2.0
    np.testing.assert_array_equal(np.asarray(pv.flatten(new)), x)
    np.testing.assert_array_equal(pv.values(new), x)

    def f(v):
        m = pv.unflatten(v, models)
        return 3.0 * m["a"].spectral_model.alpha.value + m["b"].spectral_model.alpha.value ** 2

    # the derivative in the shared entry is the sum over the copies: 3 + 2 x 2
    assert float(jax.grad(f)(jnp.asarray(x))[1]) == pytest.approx(7.0)


def test_link_takes_the_first_parameter():
    models = _per_run(alpha_b=2.6).link("b.spectral.alpha", "a.spectral.alpha")
    a, b = models["a"].spectral_model.alpha, models["b"].spectral_model.alpha
    assert float(a.value) == float(b.value) == 2.6 and a.link == b.link == "alpha@" + a.link.split("@")[1]
    # reproducible labels; groups, the parameters table and the printout
    assert _per_run().link("b.spectral.alpha", "a.spectral.alpha").linked_parameters == models.linked_parameters
    assert models.linked_parameters == {a.link: ["a.spectral.alpha", "b.spectral.alpha"]}
    table = models.parameters_table()
    assert table.colnames[-2:] == ["link", "prior"]
    assert list(table["link"]) == ["", "", a.link, "", "", "", a.link, ""]
    assert a.link in str(models["b"])
    # a unique suffix that names copies of one parameter resolves to the first
    assert resolve_parameter_name(models, "alpha") == "a.spectral.alpha"
    assert resolve_parameter_name(models, "b.spectral.alpha") == "a.spectral.alpha"
    with pytest.raises(ValueError, match=r"2 .*parameters match 'beta'"):
        resolve_parameter_name(models, "beta")
    # three copies: linking to a linked parameter brings its group along
    three = Models([*models, SkyModel(spectral_model=_lp(alpha=3.0), name="c")]).link("c.spectral.alpha", "b.spectral.alpha")
    assert sorted(three.linked_parameters.values()) == [["a.spectral.alpha", "b.spectral.alpha", "c.spectral.alpha"]]
    assert {float(three[n].spectral_model.alpha.value) for n in "abc"} == {3.0}


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda m: m.link("a.spectral.alpha"), "two or more"),
        (lambda m: m.link("a.spectral.alpha", "b.spectral.amplitude"), "units differ"),
        (lambda m: m.link("a.spectral.alpha", "nothing"), "no parameters match 'nothing'"),
        (
            lambda m: m.link("a.spectral.beta", "b.spectral.beta", label="x").link(
                "a.spectral.alpha", "b.spectral.alpha", label="x"
            ),
            "label 'x' is already used",
        ),
        (lambda m: Parameter("index", 2.0, link=""), "link must be a non-empty string"),
    ],
)
def test_bad_links_are_refused(action, match):
    with pytest.raises(ValueError, match=match):
        action(_per_run())


def test_copies_that_disagree_are_refused():
    """Copies made by hand (one label, two values or frozen flags) name both parameters."""
    shared = Parameter("alpha", 2.3, link="alpha@hand")
    a = SkyModel(spectral_model=LogParabolaSpectralModel(alpha=shared), name="a")
    b = SkyModel(spectral_model=LogParabolaSpectralModel(alpha=shared.replace(value=2.5)), name="b")
    with pytest.raises(ValueError, match=r"'a.spectral.alpha' and 'b.spectral.alpha' .*value 2.3 vs 2.5"):
        Models([a, b])
    c = SkyModel(spectral_model=LogParabolaSpectralModel(alpha=shared.replace(frozen=True)), name="c")
    with pytest.raises(ValueError, match="frozen False vs True"):
        Models([a, c])
    # the same Parameter passed to two models links them (Gammapy's idiom of sharing the object)
    assert Models([a, b.replace(spectral_model=LogParabolaSpectralModel(alpha=shared))]).linked_parameters == {
        "alpha@hand": ["a.spectral.alpha", "b.spectral.alpha"]
    }


def test_changes_reach_every_copy():
    models = _shape_linked()
    b = models["b"]
    frozen = models.replace("b", b.replace(spectral_model=b.spectral_model.freeze("alpha")))
    assert frozen["a"].spectral_model.alpha.frozen and frozen["b"].spectral_model.alpha.frozen
    assert ParameterVector.from_tree(frozen).names == ("a.spectral.amplitude", "a.spectral.beta", "b.spectral.amplitude")
    moved = models.replace("b", b.replace(spectral_model=b.spectral_model.with_values(alpha=2.7)))
    assert float(moved["a"].spectral_model.alpha.value) == 2.7
    assert float(moved["a"].spectral_model.beta.value) == 0.1  # the other group is untouched
    # by name, through the first copy or any other
    prior = GaussianPrior(mu=2.0, sigma=0.1)
    with_prior = models.set_prior(["b.spectral.alpha"], [prior])
    assert with_prior["a"].spectral_model.alpha.prior == prior
    # one parameter, one prior term (Gammapy adds it once per copy)
    assert with_prior.prior_stat_sum() == pytest.approx(float(prior(2.3)))
    unfrozen = map_parameters(lambda n, p: p.replace(frozen=n != "a.spectral.beta"), models)
    assert not unfrozen["b"].spectral_model.beta.frozen and unfrozen["b"].spectral_model.alpha.frozen
    # unlinking one copy leaves the other alone, and the label goes with a group of one
    apart = models.unlink("b.spectral.alpha")
    assert list(apart.linked_parameters.values()) == [["a.spectral.beta", "b.spectral.beta"]]
    assert apart["a"].spectral_model.alpha.link is None and float(apart["b"].spectral_model.alpha.value) == 2.3


# -- fits ------------------------------------------------------------------------------------------
def test_all_linked_equals_one_shared_model(hess):
    """Two models with every parameter linked, one per run, are the one model of both runs."""
    shared = jg.fit(hess, Models([SkyModel(spectral_model=_lp(), name="crab")]))
    models = _per_run()
    for name in ("amplitude", "alpha", "beta"):
        models = models.link(f"a.spectral.{name}", f"b.spectral.{name}")
    linked = jg.fit(hess, models)
    assert linked.success and shared.success
    assert linked.parameter_names == ("a.spectral.amplitude", "a.spectral.alpha", "a.spectral.beta")
    assert linked.total_stat == pytest.approx(shared.total_stat, rel=1e-10)
    np.testing.assert_allclose(linked.parameters, shared.parameters, rtol=1e-6)
    np.testing.assert_allclose(linked.covariance, shared.covariance, rtol=1e-5)
    # every copy carries the value and error; each model's sub-covariance is the shared one
    table = linked.parameters_table()
    np.testing.assert_array_equal(table["error"][:4], table["error"][4:])
    np.testing.assert_allclose(linked.covariance_of("b").matrix, shared.covariance_of("crab").matrix, rtol=1e-5)
    assert linked.error("b.spectral.alpha") == linked.error("a.spectral.alpha")


@pytest.mark.gammapy
def test_fit_against_gammapy(hess, data_dir):
    """Per-run amplitudes with one spectral shape (alpha and beta linked) against Gammapy's
    ``model_b.spectral_model.alpha = model_a.spectral_model.alpha``: values within 0.02 sigma,
    errors within 2 %, the same statistic; the YAML of each library read by the other."""
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GOnOff
    from gammapy.modeling import Fit
    from gammapy.modeling.models import LogParabolaSpectralModel as GLP
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import SkyModel as GSkyModel

    folder = data_dir / "joint-crab" / "spectra" / "hess"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets = GDatasets([GOnOff.read(folder / f"pha_obs{run}.fits") for run in RUNS])
        g = [
            GSkyModel(GLP(amplitude="3e-11 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.3, beta=0.1), name=n, datasets_names=[r])
            for n, r in zip("ab", RUNS, strict=True)
        ]
        g[1].spectral_model.alpha = g[0].spectral_model.alpha
        g[1].spectral_model.beta = g[0].spectral_model.beta
        datasets.models = GModels(g)
        reference = Fit().run(datasets)
    assert reference.success
    ours = jg.fit(hess, _shape_linked())
    assert ours.success
    assert ours.total_stat <= reference.total_stat + 1e-3
    for name in ("a.spectral.amplitude", "a.spectral.alpha", "a.spectral.beta", "b.spectral.amplitude"):
        model, _, par = name.split(".")
        gp = datasets.models[model].spectral_model.parameters[par]
        assert abs(ours.value(name) - gp.value) < 0.02 * gp.error, name
        assert ours.error(name) == pytest.approx(gp.error, rel=0.02), name
    g_table = datasets.models.to_parameters_table()
    ours_table = ours.models.parameters_table()
    assert [bool(x) for x in g_table["link"]] == [bool(x) for x in ours_table["link"]]


@pytest.mark.gammapy
def test_yaml_both_ways(tmp_path, hess):
    from gammapy.modeling.models import LogParabolaSpectralModel as GLP
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import SkyModel as GSkyModel

    result = jg.fit(hess, _shape_linked())
    path = tmp_path / "linked.yaml"
    result.models.write(path)
    parameters = yaml.safe_load(path.read_text())["components"][1]["spectral"]["parameters"]
    label = result.models["a"].spectral_model.alpha.link
    assert {p["name"]: p.get("link") for p in parameters} == {
        "amplitude": None, "reference": None, "alpha": label, "beta": result.models["a"].spectral_model.beta.link,
    }  # fmt: skip
    back = Models.read(path)
    assert back.linked_parameters == result.models.linked_parameters
    assert jg.fit(hess, back).total_stat == pytest.approx(result.total_stat, abs=1e-6)
    # the copies' covariance rows are the group's (correlation 1 between copies)
    cov = back.covariance
    i, j = cov.names.index("a.spectral.alpha"), cov.names.index("b.spectral.alpha")
    np.testing.assert_allclose(cov.matrix[j], cov.matrix[i], rtol=1e-12)
    assert cov.matrix[cov.names.index("b.spectral.amplitude"), j] != 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GModels.read(path)
        assert g["a"].spectral_model.alpha is g["b"].spectral_model.alpha
        assert g["a"].spectral_model.beta is g["b"].spectral_model.beta
        assert g["a"].spectral_model.amplitude is not g["b"].spectral_model.amplitude
        # Gammapy's file, with the copies edited apart: its first occurrence wins, in both readers
        own = [GSkyModel(GLP(alpha=2.0 + k), name=n) for k, n in enumerate("ab")]
        own[1].spectral_model.alpha = own[0].spectral_model.alpha
        GModels(own).write(tmp_path / "gammapy.yaml")
        data = yaml.safe_load((tmp_path / "gammapy.yaml").read_text())
        data["components"][1]["spectral"]["parameters"][2]["value"] = 9.0
        (tmp_path / "edited.yaml").write_text(yaml.safe_dump(data))
        g_edited = GModels.read(tmp_path / "edited.yaml")
    ours = Models.read(tmp_path / "edited.yaml")
    assert len(ours.linked_parameters) == 1
    for name in "ab":
        assert float(ours[name].spectral_model.alpha.value) == g_edited[name].spectral_model.alpha.value == 2.0
