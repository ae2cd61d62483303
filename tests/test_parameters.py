"""Parameters: construction, units, bounds, the free vector, transforms and retracing."""

from __future__ import annotations

import math

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compiles

from jaxgamma import Parameter, ParameterVector
from jaxgamma.models import (
    FoVBackgroundModel,
    LogParabolaSpectralModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)
from jaxgamma.parameters import BoundTransform, free_spec, scale10


def crab_models() -> Models:
    crab = SkyModel(
        spectral_model=LogParabolaSpectralModel(amplitude=3.5e-11, reference=1.0, alpha=2.5, beta=0.1),
        spatial_model=PointSpatialModel(lon_0=83.63, lat_0=22.01),
        name="Crab Nebula",
    )
    return Models([crab, FoVBackgroundModel(dataset_name="Fermi-LAT")])


def test_value_is_the_only_leaf():
    p = Parameter("index", 2.0, min=0, max=5, frozen=True, interp="log")
    leaves = jax.tree_util.tree_leaves(p)
    assert len(leaves) == 1
    assert leaves[0].dtype == np.float64
    assert (p.min, p.max, p.frozen, p.interp) == (0.0, 5.0, True, "log")


def test_constructor_converts_units():
    p = Parameter("reference", "2000 GeV", unit="TeV")
    assert float(p.value) == pytest.approx(2.0, rel=1e-15)
    q = Parameter("lon_0", 1.0 * u.rad, unit="deg")
    assert float(q.value) == pytest.approx(180 / math.pi)
    pl = PowerLawSpectralModel(amplitude=1e-9 * u.Unit("cm-2 s-1 GeV-1"), reference="500 GeV")
    assert float(pl.amplitude.value) == pytest.approx(1e-6)
    assert float(pl.reference.value) == pytest.approx(0.5)
    assert pl.reference.quantity.unit == u.TeV


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"value": "2 m"}, "does not convert"),
        ({"value": 3.0, "min": 5.0, "max": 1.0}, "min 5.0 > max 1.0"),
        ({"value": 7.0, "min": 0.0, "max": 5.0}, "outside its bounds"),
        ({"value": "not a number"}, "cannot read"),
        ({"value": 1.0, "interp": "sqrt"}, "interp"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        Parameter("index", unit="TeV" if "m" in str(kwargs.get("value")) else "", **kwargs)
    assert "'index'" in str(info.value)


def test_model_bad_unit_names_model_and_parameter():
    with pytest.raises(ValueError, match=r"PowerLawSpectralModel.*'reference'.*does not convert"):
        PowerLawSpectralModel(reference="1 m")
    with pytest.raises(TypeError, match="unknown parameter"):
        PowerLawSpectralModel(indx=2)


def test_nan_bounds_mean_unbounded():
    p = Parameter("x", 1.0, min=float("nan"), max=None)
    assert p.min == -math.inf and p.max == math.inf
    # equal metadata compares equal (NaN would not), so structures match
    assert jax.tree_util.tree_structure(p) == jax.tree_util.tree_structure(Parameter("x", 2.0, min=float("nan")))


def test_free_vector_names_and_round_trip():
    models = crab_models()
    pv = ParameterVector.from_tree(models)
    assert pv.names == (
        "Crab Nebula.spectral.amplitude",
        "Crab Nebula.spectral.alpha",
        "Crab Nebula.spectral.beta",
        "Crab Nebula.spatial.lon_0",
        "Crab Nebula.spatial.lat_0",
        "Fermi-LAT-bkg.spectral.norm",
    )
    x = pv.flatten(models)
    np.testing.assert_array_equal(x, [3.5e-11, 2.5, 0.1, 83.63, 22.01, 1.0])
    y = x * 1.01
    back = pv.unflatten(y, models)
    np.testing.assert_array_equal(pv.flatten(back), y)
    # frozen values untouched
    assert float(back["Crab Nebula"].spectral_model.reference.value) == 1.0
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(models)


def test_free_frozen_partition():
    models = crab_models()
    free, frozen = eqx.partition(models, free_spec(models))
    assert len(jax.tree_util.tree_leaves(free)) == 6
    # reference (crab), tilt and reference (bkg)
    assert len(jax.tree_util.tree_leaves(frozen)) == 3
    frozen_models = Models(
        [models["Crab Nebula"].replace(spectral_model=models["Crab Nebula"].spectral_model.freeze("alpha")), models[1]]
    )
    assert "Crab Nebula.spectral.alpha" not in ParameterVector.from_tree(frozen_models).names


def test_value_change_does_not_retrace():
    models = crab_models()
    pv = ParameterVector.from_tree(models)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def total(m):
        lp = m["Crab Nebula"].spectral_model
        return lp.dnde(jnp.array([1.0, 3.0])).sum() * m[1].spectral_model.norm.value

    a = total(models)
    b = total(pv.unflatten(pv.flatten(models) * 1.1, models))
    c = total(Models([models[0].replace(spectral_model=models[0].spectral_model.with_values(alpha=3.0)), models[1]]))
    assert a != b and a != c


def test_freezing_changes_structure():
    pl = PowerLawSpectralModel()
    assert jax.tree_util.tree_structure(pl) != jax.tree_util.tree_structure(pl.freeze("index"))


@pytest.mark.parametrize(
    ("lo", "hi", "value"),
    [
        (-np.inf, np.inf, -3.7e-11),
        (0.0, np.inf, 1.3),
        (-np.inf, 90.0, 22.0),
        (-90.0, 90.0, -89.5),
        (1e-14, 1e-9, 3e-12),
    ],
)
def test_bound_transform_round_trip_and_log_jacobian(lo, hi, value):
    t = BoundTransform.create([scale10(value)], [lo], [hi])
    x = jnp.array([value])
    u_ = t.to_unconstrained(x)
    assert jnp.all(jnp.isfinite(u_))
    np.testing.assert_allclose(t.to_value(u_), x, rtol=1e-12)
    # log|J| against autodiff of the forward map
    jac = jax.jacfwd(t.to_value)(u_)
    np.testing.assert_allclose(t.log_abs_det_jacobian(u_), np.log(abs(np.linalg.det(jac))), rtol=1e-10)
    # values stay inside the bounds for any unconstrained input
    for v in (-50.0, -1.0, 0.0, 1.0, 50.0):
        out = float(t.to_value(jnp.array([v]))[0])
        assert lo <= out <= hi
    g = jax.grad(lambda z: t.to_value(z).sum())(u_)
    assert jnp.all(jnp.isfinite(g))


def test_bound_transform_vectorised_mixed_kinds():
    models = crab_models()
    pv = ParameterVector.from_tree(models)
    x = pv.flatten(models)
    t = pv.transform(x)
    np.testing.assert_allclose(t.scale, [1e-11, 1, 0.1, 10, 10, 1])
    np.testing.assert_allclose(t.to_value(t.to_unconstrained(x)), x, rtol=1e-12)
    # same structure, other start values: same compiled function
    f = jax.jit(eqx.debug.assert_max_traces(lambda t, z: t.to_value(z).sum(), max_traces=1))
    f(t, t.to_unconstrained(x))
    t2 = pv.transform(np.asarray(x) * 3)
    f(t2, t2.to_unconstrained(x * 3))


def test_bound_transform_host_path_matches_device_path_without_compiling():
    # one parameter of each kind, one value exactly on its bound (-> -inf, as the jnp path)
    t = BoundTransform.create(
        [1e-11, 1.0, 0.1, 10.0, 1.0], [-np.inf, 0.0, -np.inf, -90.0, 0.0], [np.inf, np.inf, 3.0, 90.0, 1.0]
    )
    # a length no other test uses, so that any eager jnp op would have to compile here
    x = np.array([3.7e-11, 1.3, 0.25, -89.5, 0.0])
    u_host, n_compiles = count_compiles(lambda: t.to_unconstrained(x))
    assert isinstance(u_host, np.ndarray) and n_compiles == 0
    np.testing.assert_allclose(u_host, np.asarray(t.to_unconstrained(jnp.asarray(x))), rtol=1e-14)
    assert u_host[-1] == -np.inf
    np.testing.assert_allclose(
        np.asarray(t.to_value(jnp.asarray([*u_host[:-1].tolist(), 0.0])))[:-1], x[:-1], rtol=1e-12
    )
    # under jit (traced fields) the jnp path is taken
    u_jit = jax.jit(lambda t, v: t.to_unconstrained(v))(t, x)
    np.testing.assert_allclose(np.asarray(u_jit), u_host, rtol=1e-14)


def test_values_equals_flatten():
    models = crab_models()
    pv = ParameterVector.from_tree(models)
    values, n_compiles = count_compiles(lambda: pv.values(models))
    assert isinstance(values, np.ndarray) and values.dtype == np.float64 and n_compiles == 0
    np.testing.assert_array_equal(values, np.asarray(pv.flatten(models)))
    with pytest.raises(ValueError, match="free parameters"):
        ParameterVector.from_tree(models["Crab Nebula"]).values(models)


def test_scale10():
    assert scale10(3.5e-11) == pytest.approx(1e-11)
    assert scale10(83.6) == 10.0
    assert scale10(-0.05) == pytest.approx(0.01)
    assert scale10(0.0) == 1.0


def test_vmap_over_parameter_sets():
    models = crab_models()
    pv = ParameterVector.from_tree(models)
    xs = pv.flatten(models)[None, :] * jnp.linspace(0.9, 1.1, 5)[:, None]

    def f(x):
        m = pv.unflatten(x, models)
        return m["Crab Nebula"].spectral_model.dnde(2.0)

    out = jax.vmap(f)(xs)
    expected = [f(x) for x in xs]
    np.testing.assert_allclose(out, expected, rtol=1e-14)


def test_parameters_table():
    table = crab_models().parameters_table()
    assert list(table["name"][:4]) == ["amplitude", "reference", "alpha", "beta"]
    assert table["model"][0] == "Crab Nebula"
    assert np.isnan(table["min"][0]) and table["min"][5] == -90
