"""Spectral models: Gammapy 2.1's numbers (stored and live), jit/vmap/grad, retracing, units.

The cases (two parameter sets per model) are defined in ``tests/data/make_spectral_reference.py``,
which stores Gammapy's outputs in ``tests/data/spectral_reference.json``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import operator
from pathlib import Path

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgamma
from jaxgamma import Parameter, ParameterVector
from jaxgamma.io import read_models, write_models
from jaxgamma.models import Models, SkyModel
from jaxgamma.models import spectral as S
from jaxgamma.models import spectral_compound as SC
from jaxgamma.models import spectral_ebl as SE
from jaxgamma.parameters import iter_parameters

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "spectral_reference.json").read_text())
CASES = {case["id"]: case for case in REFERENCE["cases"]}
CASE_IDS = list(CASES)

ENERGY = np.array(REFERENCE["energy"])
BINS = {name: (np.array(b["energy_min"]), np.array(b["energy_max"])) for name, b in REFERENCE["bins"].items()}
GRIDS = {name: S.integration_grid(emin, emax) for name, (emin, emax) in BINS.items()}

RTOL = 1e-10
DNDE_UNIT = "cm-2 s-1 TeV-1"
ATOL_FLOOR = 1e-290  # denormals: XLA on CPU flushes them to zero, numpy does not


def _load_maker():
    spec = importlib.util.spec_from_file_location(
        "make_spectral_reference", DATA / "make_spectral_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _load_maker()

MODEL_CLASSES = sorted(
    {
        obj
        for module in (S, SC, SE)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, S.SpectralModel) and obj is not S.SpectralModel
    },
    key=lambda cls: cls.__name__,
)
PARAMETRIC_CLASSES = [cls for cls in MODEL_CLASSES if cls.default_parameters()]
#: built from more than their parameters (a wrapped model, a table)
TABLE_OR_WRAPPER_CLASSES = (SC.ScaleSpectralModel, SE.EBLAbsorptionNormSpectralModel)


# -- helpers -------------------------------------------------------------------------------------------
def build(spec: dict) -> S.SpectralModel:
    """The jaxgamma model for a case spec."""
    kind = spec["type"]
    if kind == "CompoundSpectralModel":
        return SC.CompoundSpectralModel(build(spec["model1"]), build(spec["model2"]), spec["operator"])
    if kind == "ScaleSpectralModel":
        return SC.ScaleSpectralModel(build(spec["model"]), norm=spec["norm"])
    if kind == "TemplateSpectralModel":
        return S.TemplateSpectralModel(spec["energy"], u.Quantity(spec["values"], spec["unit"]))
    if kind == "EBLAbsorptionNormSpectralModel":
        return SE.EBLAbsorptionNormSpectralModel(spec["energy"], spec["param"], spec["values"], **spec["parameters"])
    if kind == "PiecewiseNormSpectralModel":
        return S.PiecewiseNormSpectralModel(spec["energy"], spec["norms"], interp=spec["interp"])
    return getattr(S, kind)(**spec["parameters"])


def outputs_eager(model: S.SpectralModel) -> dict[str, np.ndarray]:
    """dN/dE, bin integrals and energy fluxes through the public (concrete-energy) interface."""
    out = {"dnde": model.dnde(jnp.asarray(ENERGY))}
    for name, (emin, emax) in BINS.items():
        out[f"integral_{name}"] = model.integral_array(emin, emax)
    out["energy_flux_log"] = model.energy_flux_array(*BINS["log"])
    return {k: np.asarray(v) for k, v in out.items()}


TRACEABLE_KEYS = ("dnde", "integral_log", "integral_wide")


def outputs_traceable(model: S.SpectralModel, energy: jax.Array) -> tuple[jax.Array, ...]:
    """The same numbers from precomputed grids: what a jitted likelihood evaluates (the energy flux,
    computed by the same code on E dN/dE, is left out to keep compilations short)."""
    return (model.dnde(energy), model.integral_on_grid(GRIDS["log"]), model.integral_on_grid(GRIDS["wide"]))


def assert_close(actual, expected, rtol=RTOL, atol=0.0, what=""):
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), rtol=rtol, atol=max(atol, ATOL_FLOOR), err_msg=what
    )


def unfreeze_all(model):
    return jax.tree_util.tree_map(
        lambda p: p.replace(frozen=False) if isinstance(p, Parameter) else p,
        model,
        is_leaf=lambda x: isinstance(x, Parameter),
    )


def perturbed(model, factor=1.03):
    """The same model (same structure) with every array leaf scaled: another parameter set."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x) * factor, model)


# -- the reference cases ---------------------------------------------------------------------------------
def test_cases_cover_every_model_twice():
    counts: dict[str, int] = {}
    for case in CASES.values():
        counts[case["spec"]["type"]] = counts.get(case["spec"]["type"], 0) + 1
    for cls in MODEL_CLASSES:
        assert counts.get(cls.__name__, 0) >= 2, f"{cls.__name__} needs two reference cases"


def test_stored_reference_is_in_sync_with_its_script():
    assert [c["id"] for c in MAKER.CASES] == CASE_IDS
    for case in MAKER.CASES:
        assert CASES[case["id"]]["spec"] == case["spec"]
    assert np.array_equal(ENERGY, MAKER.ENERGY)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_matches_stored_gammapy_reference(case_id):
    case = CASES[case_id]
    model = build(case["spec"])
    for key, value in outputs_eager(model).items():
        assert_close(value, case[key], atol=case.get("atol", 0.0), what=f"{case_id} {key}")


@pytest.mark.gammapy
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_matches_gammapy_live(case_id):
    pytest.importorskip("gammapy")
    case = CASES[case_id]
    expected = MAKER.evaluate_gammapy(case["spec"])
    model = build(case["spec"])
    for key, value in outputs_eager(model).items():
        assert_close(value, expected[key], atol=case.get("atol", 0.0), what=f"{case_id} {key}")


@pytest.mark.gammapy
@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_parameters_and_tags_match_gammapy(cls):
    gm = pytest.importorskip("gammapy.modeling.models")
    gcls = getattr(gm, cls.__name__)
    # Gammapy's MeyerCrabSpectralModel has no tag (it cannot be written); ours is its class name
    assert cls.tag == tuple(getattr(gcls, "tag", (cls.__name__,)))
    ours = cls.default_parameters()
    theirs = list(gcls.default_parameters)
    assert [p.name for p in ours] == [p.name for p in theirs]
    for p, q in zip(ours, theirs, strict=True):
        assert u.Unit(p.unit or "") == q.unit, p.name
        assert p.value == q.value, p.name
        assert (p.frozen, p.interp, p.scale_method) == (q.frozen, q.interp, q._scale_method), p.name
        assert (math.isinf(p.min), math.isinf(p.max)) == (np.isnan(q.min), np.isnan(q.max)), p.name


@pytest.mark.gammapy
def test_trapz_loglog_matches_gammapy():
    integrate = pytest.importorskip("gammapy.utils.integrate")
    x = np.geomspace(0.1, 10.0, 9)
    rng = np.random.default_rng(1)
    ys = [
        rng.uniform(0.5, 2.0, size=x.size),
        np.array([1.0, 1.0, 0.5, 0.0, 0.0, 2.0, 1.0, 1e-300, 1.0]),
        x**-1.0,  # slope 1: the logarithmic case
        -(x**-2.5),
    ]
    for y in ys:
        with np.errstate(all="ignore"):
            expected = integrate.trapz_loglog(y, x)
        assert_close(S.trapz_loglog(jnp.asarray(y), jnp.asarray(x)), expected, rtol=1e-12)


def test_trapz_loglog_derivatives_are_scale_free():
    """The log-log integral is homogeneous in the flux, and so are its derivatives: a log-parabola
    with a flux ~1e-160 (Gammapy's TS null amplitude 1e-150 in cm-2 s-1 TeV-1 at tens of TeV; its
    square underflows) has the Hessian of the amplitude-1 model times the amplitude, finite, in the
    shape parameters."""
    edges = np.geomspace(1.0, 100.0, 6)
    grid = jnp.asarray(S.integration_grid(edges[:-1], edges[1:]))

    def total(shape, amplitude):
        model = S.LogParabolaSpectralModel(amplitude=amplitude, alpha=shape[0], beta=shape[1])
        return jnp.sum(model.integral_on_grid(grid))

    shape = jnp.array([2.3, 0.1])
    for fn in (jax.grad, jax.hessian):
        ref = fn(total)(shape, 1.0)
        tiny = fn(total)(shape, 1e-155)
        assert np.all(np.isfinite(tiny))
        np.testing.assert_allclose(np.asarray(tiny) / 1e-155, ref, rtol=1e-12)
    eps = 1e-5  # and the Hessian is the finite difference of the gradient
    fd = [(jax.grad(total)(shape + eps * e, 1e-155) - jax.grad(total)(shape - eps * e, 1e-155)) / (2 * eps) for e in jnp.eye(2)]
    np.testing.assert_allclose(np.asarray(jax.hessian(total)(shape, 1e-155)), np.array(fd), rtol=1e-6)


def test_integration_grid_is_gammapys():
    emin, emax = BINS["wide"]
    grid = S.integration_grid(emin, emax)
    assert grid.shape == (emin.size, int(100 * np.log10(300 / 0.01)))
    assert np.array_equal(grid[:, 0], emin) and np.array_equal(grid[:, -1], emax)
    assert S.integration_grid(1.0, 1.01).shape == (2,)


# -- jit, vmap, grad, retracing --------------------------------------------------------------------------
# Parametrized by model type: each test takes the type's two reference parameter sets (and the same
# models with every value scaled), grouped by pytree structure, so one compilation serves a group.
TYPES: dict[str, list[str]] = {}
for _id, _case in CASES.items():
    TYPES.setdefault(_case["spec"]["type"], []).append(_id)


def structure_groups(type_name: str, extra=perturbed) -> list[tuple[list[S.SpectralModel], float]]:
    """The type's models (both parameter sets, and ``extra`` of each) grouped by pytree structure."""
    groups: dict = {}
    for case_id in TYPES[type_name]:
        model = build(CASES[case_id]["spec"])
        atol = CASES[case_id].get("atol", 0.0)
        for m in (model, extra(model)):
            models, group_atol = groups.get(jax.tree_util.tree_structure(m), ([], 0.0))
            groups[jax.tree_util.tree_structure(m)] = ([*models, m], max(group_atol, atol))
    return list(groups.values())


@pytest.mark.parametrize("type_name", TYPES)
def test_jit_equals_eager_and_value_change_does_not_retrace(type_name):
    energy = jnp.asarray(ENERGY)
    for models, atol in structure_groups(type_name):
        assert len(models) >= 2
        fn = eqx.filter_jit(eqx.debug.assert_max_traces(outputs_traceable, max_traces=1))
        for m in models:
            eager = outputs_eager(m)
            for value, key in zip(fn(m, energy), TRACEABLE_KEYS, strict=True):
                assert_close(value, eager[key], atol=atol, what=key)


@eqx.filter_jit
def _outputs_vmap(stacked, energy):
    return jax.vmap(outputs_traceable, in_axes=(0, None))(stacked, energy)


@pytest.mark.parametrize("type_name", TYPES)
def test_vmap_over_parameter_sets(type_name):
    energy = jnp.asarray(ENERGY)
    for models, atol in structure_groups(type_name, extra=lambda m: perturbed(m, 0.9)):
        stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *models)
        batched = _outputs_vmap(stacked, energy)
        for i, m in enumerate(models):
            eager = outputs_eager(m)
            for value, key in zip(batched, TRACEABLE_KEYS, strict=True):
                assert_close(value[i], eager[key], atol=atol, what=key)


@eqx.filter_jit
def _outputs_jvp(x, tangent, pv, model, energy):
    # one compiled function gives both the values (for finite differences) and a directional
    # derivative (a column of the Jacobian)
    def fn(x):
        return jnp.concatenate(outputs_traceable(pv.unflatten(x, model), energy))

    return jax.jvp(fn, (x,), (tangent,))


def _jacobians(pv, model, energy, rel_step=1e-4):
    """Forward-mode and finite-difference Jacobians of all outputs w.r.t. the free values.

    Finite differences are central with one Richardson step (error O(h^4)).
    """
    x0 = np.asarray(pv.flatten(model))
    zero = np.zeros_like(x0)

    def values(x):
        return np.asarray(_outputs_jvp(x, zero, pv, model, energy)[0])

    ad, fd = [], []
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = 1.0
        ad.append(np.asarray(_outputs_jvp(x0, e, pv, model, energy)[1]))
        h = rel_step * (abs(float(x0[i])) or 1.0)

        def central(h, e=e):
            return (values(x0 + h * e) - values(x0 - h * e)) / (2 * h)

        fd.append((4 * central(h / 2) - central(h)) / 3)
    return np.stack(ad, axis=-1), np.stack(fd, axis=-1)


@pytest.mark.parametrize("type_name", [t for t in TYPES if t != "TemplateSpectralModel"])
def test_gradients_match_finite_differences(type_name):
    energy = jnp.asarray(ENERGY)
    for case_id in TYPES[type_name]:
        model = unfreeze_all(build(CASES[case_id]["spec"]))
        pv = ParameterVector.from_tree(model)
        jac, fd = _jacobians(pv, model, energy)
        assert np.all(np.isfinite(jac))
        scale = np.max(np.abs(fd), axis=0, keepdims=True)
        bad = np.abs(jac - fd) > 1e-5 * np.abs(fd) + 1e-8 * scale
        assert not bad.any(), (
            f"{case_id}: AD and FD differ for {[pv.names[i] for i in np.nonzero(bad.any(axis=0))[0]]}"
        )


# -- guarded special cases -------------------------------------------------------------------------------
def _grad_all(model, fn):
    model = unfreeze_all(model)
    pv = ParameterVector.from_tree(model)
    return jax.jit(jax.grad(lambda x: fn(pv.unflatten(x, model))))(pv.flatten(model))


def test_smooth_broken_power_law_equal_indices_is_a_power_law_without_nan():
    model = S.SmoothBrokenPowerLawSpectralModel(
        index1=2.4, index2=2.4, amplitude=3e-12, ebreak=2.0, reference=1.5
    )
    pl = S.PowerLawSpectralModel(index=2.4, amplitude=3e-12, reference=1.5)
    assert_close(model.dnde(jnp.asarray(ENERGY)), pl.dnde(jnp.asarray(ENERGY)), rtol=1e-15)
    for fn in (
        lambda m: jnp.sum(jnp.log(m.dnde(jnp.asarray(ENERGY)))),
        lambda m: jnp.sum(m.integral_on_grid(GRIDS["log"])),
    ):
        assert np.all(np.isfinite(_grad_all(model, fn)))


def test_4fgl_dr3_index_2_zero_is_finite():
    model = S.SuperExpCutoffPowerLaw4FGLDR3SpectralModel(index_2=0.0, expfactor=0.1)
    values = model.dnde(jnp.asarray(ENERGY))
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert np.all(np.isfinite(_grad_all(model, lambda m: jnp.sum(jnp.log(m.dnde(jnp.asarray(ENERGY)))))))


def test_zero_values_give_zero_contributions_and_finite_gradients():
    # exp(-(10 E)) underflows to 0 above ~75 TeV: Gammapy's rule gives those sub-intervals 0
    model = S.ExpCutoffPowerLawSpectralModel(lambda_=10.0)
    values = model.integral_on_grid(GRIDS["log"])
    assert np.all(np.isfinite(values)) and values[-1] == 0
    assert np.all(np.isfinite(_grad_all(model, lambda m: jnp.sum(m.integral_on_grid(GRIDS["log"])))))


def test_negative_values_have_gammapys_integral_and_right_gradients():
    # a difference of models can be negative; both ends negative is a power law of negative values
    def integral(const):
        model = S.ConstantSpectralModel(const=const) - S.PowerLawSpectralModel(index=2.0, amplitude=1e-12)
        return model.integral_on_grid(GRIDS["log"])

    const = jnp.asarray(1e-11)
    grad = jax.jacfwd(integral)(const)
    h = 1e-16
    assert_close(grad, (integral(const + h) - integral(const - h)) / (2 * h), rtol=1e-6)
    assert float(integral(const)[0]) < 0 < float(integral(const)[-1])


@pytest.mark.parametrize(
    ("model", "method", "name", "at"),
    [
        (S.PowerLawSpectralModel(reference=2.0), "integral_on_grid", "index", 1.0),
        (S.PowerLawSpectralModel(reference=2.0), "energy_flux_on_grid", "index", 2.0),
        (S.PowerLawNormSpectralModel(reference=2.0), "integral_on_grid", "tilt", 1.0),
        (S.PowerLaw2SpectralModel(), "integral_on_grid", "index", 1.0),
        (S.PowerLaw2SpectralModel(), "dnde", "index", 1.0),
    ],
)
def test_logarithmic_case_has_the_right_gradient(model, method, name, at):
    grid = jnp.asarray(GRIDS["log"]) if method != "dnde" else jnp.asarray(ENERGY)

    def fn(value):
        return getattr(model.with_values(**{name: value}), method)(grid)

    value = fn(jnp.asarray(at))
    assert np.all(np.isfinite(value))
    grad = jax.jacfwd(fn)(jnp.asarray(at))
    h = 1e-4
    fd = (fn(jnp.asarray(at + h)) - fn(jnp.asarray(at - h))) / (2 * h)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8 * float(jnp.max(jnp.abs(fd))))


def test_power_law_2_at_index_1_is_the_limit():
    model = S.PowerLaw2SpectralModel(index=1.0, amplitude=2e-12, emin=0.1, emax=100.0)
    near = S.PowerLaw2SpectralModel(index=1.0 + 1e-6, amplitude=2e-12, emin=0.1, emax=100.0)
    assert_close(model.dnde(jnp.asarray(ENERGY)), near.dnde(jnp.asarray(ENERGY)), rtol=1e-5)
    assert_close(model.integral(0.1, 100.0), 2e-12, rtol=1e-14)


# -- construction and units ------------------------------------------------------------------------------
def _other_unit_quantity(parameter: Parameter) -> u.Quantity:
    return u.Quantity(parameter.value, parameter.unit or "").si


@pytest.mark.parametrize(
    "cls", [c for c in PARAMETRIC_CLASSES if c not in TABLE_OR_WRAPPER_CLASSES], ids=lambda c: c.__name__
)
def test_constructor_accepts_floats_strings_and_quantities(cls):
    defaults = cls.default_parameters()
    floats = cls(**{p.name: float(p.value) for p in defaults})
    strings = cls(**{p.name: f"{float(p.value)!r} {p.unit}".strip() for p in defaults})
    quantities = cls(**{p.name: _other_unit_quantity(p) for p in defaults})
    for model in (floats, strings, quantities):
        for p, q in zip(model.parameters, defaults, strict=True):
            assert p.unit == q.unit and p.frozen == q.frozen
            np.testing.assert_allclose(float(p.value), float(q.value), rtol=1e-13)


@pytest.mark.parametrize(
    "cls", [c for c in PARAMETRIC_CLASSES if c not in TABLE_OR_WRAPPER_CLASSES], ids=lambda c: c.__name__
)
def test_unconvertible_unit_raises_naming_the_parameter(cls):
    for p in cls.default_parameters():
        wrong = "1 m" if p.unit else "1 TeV"
        with pytest.raises(ValueError, match=repr(p.name)):
            cls(**{p.name: wrong})


@pytest.mark.parametrize("type_name", TYPES)
def test_quantity_in_quantity_out(type_name):
    model = build(CASES[TYPES[type_name][0]]["spec"])
    unit = u.Unit(model.dnde_unit or "")
    dnde = model([1.0, 30.0] * u.TeV)
    assert isinstance(dnde, u.Quantity) and dnde.unit == unit
    assert_close(dnde.value, model.dnde(jnp.asarray([1.0, 30.0])), rtol=1e-15)
    assert_close(model(1000 * u.GeV).value, model("1 TeV").value, rtol=1e-14)
    assert isinstance(model(jnp.asarray(1.0)), jax.Array)
    flux = model.integral(1 * u.TeV, 10 * u.TeV)
    assert flux.unit == unit * u.TeV
    assert_close(flux.value, model.integral_array(1.0, 10.0), rtol=1e-15)
    eflux = model.energy_flux("1 TeV", "10 TeV")
    assert eflux.unit == unit * u.TeV**2


def test_log_parabola_from_log10():
    model = S.LogParabolaSpectralModel.from_log10(
        amplitude="1e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.0, beta=0.3
    )
    assert float(model.beta.value) == pytest.approx(0.3 / math.log(10), rel=1e-15)
    norm = S.LogParabolaNormSpectralModel.from_log10(norm=1.0, reference=1.0, alpha=0.1, beta=u.Quantity(0.2))
    assert float(norm.beta.value) == pytest.approx(0.2 / math.log(10), rel=1e-15)


# -- compound, scale and template models ----------------------------------------------------------------
def test_compound_operators_and_names():
    pl = S.PowerLawSpectralModel(index=2.5)
    ecpl = S.ExpCutoffPowerLawSpectralModel()
    e = jnp.asarray(ENERGY)
    for combined, expected in [
        (pl + ecpl, pl.dnde(e) + ecpl.dnde(e)),
        (pl - ecpl, pl.dnde(e) - ecpl.dnde(e)),
        (pl * S.PowerLawNormSpectralModel(tilt=0.1), pl.dnde(e) * e**-0.1),
        (pl + 1e-13, pl.dnde(e) + 1e-13),
        (1e-13 + pl, pl.dnde(e) + 1e-13),
        (1e-11 - pl, 1e-11 - pl.dnde(e)),
        (SC.CompoundSpectralModel(pl, ecpl, operator.truediv), pl.dnde(e) / ecpl.dnde(e)),
    ]:
        assert_close(combined.dnde(e), expected, rtol=1e-15)
    names = ParameterVector.from_tree(pl + ecpl).names
    assert names == ("model1.index", "model1.amplitude", "model2.index", "model2.amplitude", "model2.lambda_")
    assert u.Unit((pl * S.PowerLawNormSpectralModel()).dnde_unit) == u.Unit(pl.dnde_unit)
    with pytest.raises(ValueError, match="cannot add"):
        pl + S.PowerLawNormSpectralModel()
    with pytest.raises(ValueError, match="unsupported operator"):
        SC.CompoundSpectralModel(pl, ecpl, "pow")
    with pytest.raises(TypeError, match="Multiplication invalid"):
        pl * 2.0


def test_scale_model_fits_only_its_norm():
    pl = S.PowerLawSpectralModel(index=2.2)
    scaled = SC.ScaleSpectralModel(pl, norm=2.0)
    assert ParameterVector.from_tree(scaled).names == ("norm",)
    assert scaled.has_analytic_integral
    assert not SC.ScaleSpectralModel(S.LogParabolaSpectralModel()).has_analytic_integral
    assert_close(scaled.integral_array(1.0, 10.0), 2 * pl.integral_array(1.0, 10.0), rtol=1e-15)


def test_template_validation_and_options():
    energy = [1.0, 2.0, 4.0] * u.TeV
    values = [4.0, 2.0, 1.0] * u.Unit("cm-2 s-1 GeV-1")
    model = S.TemplateSpectralModel(energy.to("GeV"), values)
    assert u.Unit(model.dnde_unit) == u.Unit("cm-2 s-1 TeV-1")
    # log-log extrapolation beyond the last node
    assert_close(model.dnde(jnp.asarray([2.0, 8.0])), [2000.0, 500.0], rtol=1e-14)
    lin = S.TemplateSpectralModel(energy, [4.0, 2.0, 1.0], interp_kwargs={"values_scale": "lin"})
    assert lin.dnde_unit == "" and not lin.is_norm_spectral_model  # Gammapy: "Norm" in the class name
    assert_close(lin.dnde(jnp.asarray(math.sqrt(2.0))), 3.0, rtol=1e-14)
    single = S.TemplateSpectralModel([1.0], [3.0])
    assert_close(single.dnde(jnp.asarray([0.1, 10.0])), [3.0, 3.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        S.TemplateSpectralModel([1.0, 1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        S.TemplateSpectralModel([1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="method='linear'"):
        S.TemplateSpectralModel([1.0, 2.0], [1.0, 1.0], interp_kwargs={"method": "nearest"})
    with pytest.raises(ValueError, match="values_scale"):
        S.TemplateSpectralModel([1.0, 2.0], [1.0, 1.0], interp_kwargs={"values_scale": "cubic"})
    with pytest.raises(ValueError, match=r"unsupported interp_kwargs \['order'\]"):
        S.TemplateSpectralModel([1.0, 2.0], [1.0, 1.0], interp_kwargs={"order": 3})
    with pytest.raises(ValueError, match="fill_value must be None or a number"):
        S.TemplateSpectralModel([1.0, 2.0], [1.0, 1.0], interp_kwargs={"fill_value": "zero"})
    with pytest.raises(ValueError, match="points_scale"):
        S.TemplateSpectralModel([1.0, 2.0], [1.0, 1.0], interp_kwargs={"points_scale": ("sqrt",)})
    with pytest.raises(ValueError, match="energy"):
        S.TemplateSpectralModel([1.0, 2.0] * u.m, [1.0, 1.0])


TEMPLATE_INTERP_OPTIONS = [
    {},
    {"values_scale": "lin"},
    {"values_scale": "sqrt"},
    {"points_scale": ("lin",)},
    {"extrapolate": False},
    {"extrapolate": False, "fill_value": -30.0},
    {"extrapolate": False, "fill_value": None},
    {"fill_value": None, "extrapolate": True},
    {"values_scale": "lin", "points_scale": ("lin",), "extrapolate": False, "fill_value": 2e-13},
]


def test_template_interp_options_known_values():
    energy = [1.0, 2.0, 4.0]
    # beyond the nodes: NaN without extrapolation, the fill value back-transformed (log: exp)
    model = S.TemplateSpectralModel(energy, [4.0, 2.0, 1.0], interp_kwargs={"extrapolate": False})
    assert np.isnan(np.asarray(model.dnde(jnp.asarray([0.5, 8.0])))).all()
    assert_close(model.dnde(jnp.asarray([1.0, 4.0])), [4.0, 1.0], rtol=1e-14)
    filled = S.TemplateSpectralModel(energy, [4.0, 2.0, 1.0], interp_kwargs={"extrapolate": False, "fill_value": 0.0})
    assert_close(filled.dnde(jnp.asarray([0.5, 8.0])), [1.0, 1.0], rtol=1e-14)
    # lin points: the midpoint in E, not in ln E; sqrt values: squared interpolation of the roots
    lin_points = S.TemplateSpectralModel(energy, [4.0, 2.0, 1.0], interp_kwargs={"points_scale": ("lin",)})
    assert_close(lin_points.dnde(jnp.asarray(3.0)), math.sqrt(2.0), rtol=1e-14)
    sqrt_values = S.TemplateSpectralModel(energy, [4.0, 2.0, 1.0], interp_kwargs={"values_scale": "sqrt"})
    assert_close(sqrt_values.dnde(jnp.asarray(math.sqrt(2.0))), ((2.0 + math.sqrt(2.0)) / 2) ** 2, rtol=1e-14)


@pytest.mark.gammapy
@pytest.mark.parametrize("options", TEMPLATE_INTERP_OPTIONS, ids=str)
def test_template_interp_options_match_gammapy(options):
    gm = pytest.importorskip("gammapy.modeling.models")
    energy = u.Quantity([0.1, 1.0, 10.0, 100.0], "TeV")
    values = u.Quantity([1e-10, 3e-12, 2e-14, 1e-16], "cm-2 s-1 TeV-1")
    x = np.geomspace(0.01, 1000.0, 41)
    ours = np.asarray(S.TemplateSpectralModel(energy, values, interp_kwargs=dict(options)).dnde(x))
    theirs = gm.TemplateSpectralModel(energy, values, interp_kwargs=dict(options))(x * u.TeV).to_value(
        "cm-2 s-1 TeV-1"
    )
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=0)


@pytest.mark.parametrize("options", TEMPLATE_INTERP_OPTIONS, ids=str)
def test_template_interp_options_round_trip(options, tmp_path):
    model = S.TemplateSpectralModel([0.1, 1.0, 10.0], [3.0, 2.0, 0.5], interp_kwargs=dict(options))
    write_models(tmp_path / "m.yaml", Models([SkyModel(model, name="s")]))
    back = read_models(tmp_path / "m.yaml")["s"].spectral_model
    assert (back.values_scale, back.points_scale, back.fill) == (model.values_scale, model.points_scale, model.fill)
    x = jnp.geomspace(0.01, 100.0, 9)
    np.testing.assert_array_equal(np.asarray(back.dnde(x)), np.asarray(model.dnde(x)))


def test_numerical_integral_needs_concrete_energies_under_jit():
    model = S.LogParabolaSpectralModel()
    with pytest.raises(TypeError, match="concrete energies"):
        eqx.filter_jit(lambda m, a, b: m.integral_array(a, b))(model, jnp.asarray(1.0), jnp.asarray(10.0))
    analytic = S.PowerLawSpectralModel()
    jitted = eqx.filter_jit(lambda m, a, b: m.integral_array(a, b))(
        analytic, jnp.asarray(1.0), jnp.asarray(10.0)
    )
    assert_close(jitted, analytic.integral_array(1.0, 10.0), rtol=1e-15)


# -- piecewise norm --------------------------------------------------------------------------------------
def test_piecewise_norm_parameters_and_validation():
    energy = [0.3, 1.0, 3.0] * u.TeV
    model = S.PiecewiseNormSpectralModel(energy.to("GeV"), [1.2, 0.8, 1.1])
    assert model.parameter_names == ("norm_0", "norm_1", "norm_2") and model.is_norm_spectral_model
    assert model.norm_1.value == 0.8 and model.dnde_unit == ""
    np.testing.assert_array_equal(model.energy, [0.3, 1.0, 3.0])
    # interpolation in log-log between nodes, constant beyond them
    assert_close(model.dnde(jnp.asarray([0.1, math.sqrt(0.3), 1.0, 5.0])), [1.2, math.sqrt(1.2 * 0.8), 0.8, 1.1])
    changed = model.with_values(norm_2=2.0).freeze("norm_0")
    np.testing.assert_array_equal(changed.norms, [1.2, 0.8, 2.0])
    assert [p.frozen for p in changed.parameters] == [True, False, False]
    assert [name for name, _ in iter_parameters(changed)] == ["norm_0", "norm_1", "norm_2"]
    default = S.PiecewiseNormSpectralModel(energy)
    np.testing.assert_array_equal(default.norms, [1.0, 1.0, 1.0])
    given = S.PiecewiseNormSpectralModel(energy, [Parameter("a", 2.0, frozen=True), 1.0, 1.0])
    assert given.parameters[0].name == "norm_0" and given.parameters[0].frozen
    with pytest.raises(ValueError, match="2 norms for 3 energy nodes"):
        S.PiecewiseNormSpectralModel(energy, [1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        S.PiecewiseNormSpectralModel([1.0], [1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        S.PiecewiseNormSpectralModel([1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="interp must be 'log' or 'lin'"):
        S.PiecewiseNormSpectralModel(energy, interp="sqrt")
    with pytest.raises(ValueError, match="has no parameter 'norm_5'"):
        model.with_values(norm_5=1.0)
    with pytest.raises(AttributeError, match="norm_5"):
        _ = model.norm_5


@pytest.mark.gammapy
def test_piecewise_norm_read_from_gammapy_evaluates_as_gammapy(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    from jaxgamma.io import read_models

    for interp in ("log", "lin"):
        theirs = gm.PiecewiseNormSpectralModel([0.5, 2.0, 8.0] * u.TeV, [0.9, 1.4, 0.6], interp=interp)
        gm.Models([gm.FoVBackgroundModel(dataset_name="d", spectral_model=theirs)]).write(
            tmp_path / f"{interp}.yaml", overwrite=True
        )
        ours = read_models(tmp_path / f"{interp}.yaml")["d-bkg"].spectral_model
        assert ours.interp == interp
        energy = np.geomspace(0.1, 30.0, 25)
        assert_close(ours.dnde(jnp.asarray(energy)), theirs(energy * u.TeV).value, rtol=1e-14)


@pytest.mark.gammapy
def test_piecewise_norm_background_fit_matches_gammapy(cta_plain):
    """The FoV background's spectral shape fitted with four norm nodes on a 3 deg cutout of the
    CTA-1DC GC dataset."""
    pytest.importorskip("gammapy")
    from astropy.coordinates import SkyCoord
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling import Fit
    from gammapy.modeling import models as gm

    from jaxgamma.datasets import MapDataset
    from jaxgamma.models import FoVBackgroundModel, Models

    energy, start = [0.3, 1.0, 3.0, 10.0] * u.TeV, [1.1, 1.3, 0.9, 1.2]
    position = SkyCoord(1.0, 0.5, unit="deg", frame="galactic")
    theirs = GMapDataset.read(cta_plain).cutout(position, 3 * u.deg, name="cut")
    theirs.models = [gm.FoVBackgroundModel(dataset_name="cut", spectral_model=gm.PiecewiseNormSpectralModel(energy, start, interp="lin"))]
    gresult = Fit().run(theirs)
    assert gresult.success
    ours = MapDataset.read(cta_plain).cutout(position, 3 * u.deg, name="cut")
    models = Models([FoVBackgroundModel("cut", S.PiecewiseNormSpectralModel(energy, start, interp="lin"))])
    result = jaxgamma.fit([ours], models)
    assert result.success and result.total_stat <= gresult.total_stat + 1e-3
    fitted = list(iter_parameters(result.models))
    assert [name for name, _ in fitted] == [f"cut-bkg.spectral.norm_{k}" for k in range(4)]
    for (_, p), g in zip(fitted, theirs.models.parameters, strict=True):
        assert abs(float(p.value) - g.value) < 0.02 * g.error, g.name
        assert p.error == pytest.approx(g.error, rel=0.02), g.name
    assert float(np.ptp([float(p.value) for _, p in fitted])) > 1.0  # the background's shape is corrected


# -- EBL absorption --------------------------------------------------------------------------------------
def write_xspec_table(path: Path, redshift: np.ndarray, edges_kev: np.ndarray, data: np.ndarray) -> None:
    """An XSPEC table model as Gammapy's EBL files are laid out, float32 columns, with the first
    two redshifts repeated at the end (Gammapy: "the table contains duplicated values")."""
    from astropy.io import fits

    z = np.concatenate([redshift, redshift[:2]])
    rows = np.concatenate([data, data[:2]])
    hdus = [
        fits.PrimaryHDU(),
        fits.BinTableHDU.from_columns(
            [fits.Column("NAME", "12A", array=["z"]), fits.Column("VALUE", f"{z.size}E", array=[z.astype(np.float32)])],
            name="PARAMETERS",
        ),
        fits.BinTableHDU.from_columns(
            [fits.Column("ENERG_LO", "E", array=edges_kev[:-1]), fits.Column("ENERG_HI", "E", array=edges_kev[1:])],
            name="ENERGIES",
        ),
        fits.BinTableHDU.from_columns(
            [fits.Column("PARAMVAL", "E", array=z), fits.Column("INTPSPEC", f"{data.shape[1]}E", array=rows.astype(np.float32))],
            name="SPECTRA",
        ),
    ]
    fits.HDUList(hdus).writeto(path)


@pytest.fixture
def ebl_file(tmp_path) -> Path:
    redshift = np.linspace(0.0, 1.0, 21)
    edges = np.geomspace(1e6, 1e11, 61)  # keV: 1 GeV - 100 TeV
    centres = np.sqrt(edges[:-1] * edges[1:]) / 1e9
    path = tmp_path / "ebl.fits"
    write_xspec_table(path, redshift, edges, np.exp(-3.0 * np.outer(redshift, (centres / 0.2) ** 1.3)))
    return path


def test_ebl_read_and_interpolation(ebl_file):
    model = SE.EBLAbsorptionNormSpectralModel.read(ebl_file, redshift=0.3)
    assert model.param.size == 21 and model.data.shape == (21, 60) and model.filename == str(ebl_file)
    assert model.parameter_names == ("redshift", "alpha_norm") and all(p.frozen for p in model.parameters)
    # at a table node: the tabulated value; between redshift nodes: log-linear
    k = 30
    assert_close(model.table(model.energy[k], model.param[6]), model.data[6, k], rtol=1e-12)
    between = model.table(model.energy[k], (model.param[6] + model.param[7]) / 2)
    assert_close(between, math.sqrt(model.data[6, k] * model.data[7, k]), rtol=1e-12)
    # alpha_norm scales the optical depth
    scaled = model.with_values(alpha_norm=2.0)
    assert_close(scaled.dnde(jnp.asarray(1.0)), model.dnde(jnp.asarray(1.0)) ** 2, rtol=1e-12)
    # gradient in the redshift (a fit with it free) is finite and negative (more absorption)
    grad = jax.grad(lambda z: model.with_values(redshift=z).dnde(jnp.asarray(2.0)))(0.31)
    assert np.isfinite(grad) and grad < 0
    with pytest.raises(ValueError, match="'redshift'"):
        SE.EBLAbsorptionNormSpectralModel.read(ebl_file, redshift="1 m")
    with pytest.raises(FileNotFoundError, match="no such file"):
        SE.EBLAbsorptionNormSpectralModel.read(ebl_file.with_name("missing.fits"))
    with pytest.raises(ValueError, match="unknown reference 'nowhere'"):
        SE.EBLAbsorptionNormSpectralModel.read_builtin("nowhere")
    with pytest.raises(ValueError, match=r"shape \(len\(param\), len\(energy\)\) = \(2, 3\)"):
        SE.EBLAbsorptionNormSpectralModel([1.0, 2.0, 3.0], [0.0, 0.1], np.ones((3, 2)))
    with pytest.raises(ValueError, match="unsupported interp_kwargs"):
        SE.EBLAbsorptionNormSpectralModel.read(ebl_file, interp_kwargs={"bounds_error": True})


@pytest.mark.gammapy
def test_ebl_file_matches_gammapy(ebl_file, tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    from jaxgamma.io import read_models, write_models
    from jaxgamma.models import Models, PowerLawSpectralModel, SkyModel

    energy = np.geomspace(5e-4, 300.0, 50)  # beyond the table on both sides: extrapolated
    for redshift, alpha_norm in ((0.1, 1.0), (0.337, 1.3), (1.2, 0.8)):
        theirs = gm.EBLAbsorptionNormSpectralModel.read(ebl_file, redshift=redshift, alpha_norm=alpha_norm)
        ours = SE.EBLAbsorptionNormSpectralModel.read(ebl_file, redshift=redshift, alpha_norm=alpha_norm)
        # Gammapy interpolates the float32 table in float32: ~3e-7 of the largest value
        assert_close(ours.dnde(jnp.asarray(energy)), theirs(energy * u.TeV).value, rtol=0, atol=1e-6)
        # (the float32 rounding grows to ~1e-6 relative where the table is extrapolated, z = 1.2)
        assert_close(ours.integral(0.1 * u.TeV, 10 * u.TeV).value, theirs.integral(0.1 * u.TeV, 10 * u.TeV).value, rtol=3e-6)
    # the models YAML names the file, both ways
    source = SkyModel(spectral_model=PowerLawSpectralModel() * ours, name="blazar")
    write_models(tmp_path / "ours.yaml", Models([source]))
    read_back = gm.Models.read(tmp_path / "ours.yaml")["blazar"].spectral_model.model2
    assert read_back.redshift.value == 1.2 and Path(read_back.filename).name == "ebl.fits"
    assert_close(read_back(energy * u.TeV).value, theirs(energy * u.TeV).value, rtol=0, atol=0)
    gm.Models([gm.SkyModel(spectral_model=gm.PowerLawSpectralModel() * theirs, name="blazar")]).write(tmp_path / "theirs.yaml")
    again = read_models(tmp_path / "theirs.yaml")["blazar"].spectral_model.model2
    assert eqx.tree_equal(again, ours) is True


# -- Crab references --------------------------------------------------------------------------------------
def test_meyer_crab_is_the_published_polynomial():
    # log10(E^2 dN/dE / erg cm-2 s-1) at 1 TeV is the polynomial's constant term; norm scales it
    model = jaxgamma.models.create_crab_spectral_model()
    e2dnde = model(1 * u.TeV) * (1 * u.TeV) ** 2
    assert_close(e2dnde.to_value("erg cm-2 s-1"), 10**-10.2708, rtol=1e-13)
    half = model.with_values(norm=0.5)
    assert_close(half(3 * u.TeV).value, 0.5 * model(3 * u.TeV).value, rtol=1e-14)


def test_crab_reference_names_are_checked():
    with pytest.raises(ValueError, match=r"unknown reference 'hess'.*'hess_pl'"):
        jaxgamma.models.create_crab_spectral_model("hess")


@pytest.mark.gammapy
@pytest.mark.parametrize("reference", S.CRAB_REFERENCES)
def test_crab_references_match_gammapy(reference):
    gm = pytest.importorskip("gammapy.modeling.models")
    ours = jaxgamma.models.create_crab_spectral_model(reference)
    theirs = gm.create_crab_spectral_model(reference)
    assert type(ours).__name__ == type(theirs).__name__
    assert [p.name for p in ours.parameters] == list(theirs.parameters.names)
    for p in ours.parameters:
        q = theirs.parameters[p.name]
        assert_close(np.asarray(p.value), q.quantity.to_value(p.unit or ""), rtol=1e-15, what=p.name)
        assert p.frozen == q.frozen, p.name
    assert_close(ours(ENERGY * u.TeV).to_value(DNDE_UNIT), theirs(ENERGY * u.TeV).to_value(DNDE_UNIT))
    emin, emax = BINS["log"]
    assert_close(
        ours.integral(emin * u.TeV, emax * u.TeV).to_value("cm-2 s-1"),
        theirs.integral(emin * u.TeV, emax * u.TeV).to_value("cm-2 s-1"),
    )
