"""joint_stat, plan_datasets, make_stat_function: one compiled program over heterogeneous datasets.

Reference: Gammapy 2.1's ``Datasets([fermi, hess_23523]).stat_sum()`` with the Crab LogParabola of
``Fermi-LAT-3FHL_models.yaml`` (and the Fermi FoV background) is the sum of the per-dataset values,
-12756.57415532529 + 50.73082559187958 (see test_map_dataset.py and test_spectrum_dataset.py).
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_map_dataset import synthetic_dataset, synthetic_models

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets.core import Datasets
from jaxgamma.datasets.map import MapDataset
from jaxgamma.datasets.spectrum import SpectrumDatasetOnOff
from jaxgamma.io.models import read_models
from jaxgamma.likelihood import (
    joint_stat,
    joint_stat_plans,
    make_stat_function,
    plan_datasets,
    plans_need_update,
)
from jaxgamma.models import Models

FERMI_STAT = -12756.57415532529
HESS_23523_STAT = 50.73082559187958


@pytest.fixture(scope="module")
def crab_datasets(data_dir: Path) -> Datasets:
    fermi = MapDataset.read(
        data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_data_Fermi-LAT.fits", name="Fermi-LAT"
    )
    hess = SpectrumDatasetOnOff.read(data_dir / "joint-crab" / "spectra" / "hess" / "pha_obs23523.fits")
    return Datasets([fermi, hess])


@pytest.fixture(scope="module")
def crab_models(data_dir: Path) -> Models:
    return read_models(data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_models.yaml")


def test_joint_stat_is_the_sum(crab_datasets: Datasets, crab_models: Models):
    total = float(joint_stat(crab_datasets, crab_models))
    parts = [d.stat_sum(crab_models) for d in crab_datasets]
    assert total == pytest.approx(sum(parts), rel=1e-13)
    assert parts[1] == pytest.approx(HESS_23523_STAT, rel=1e-10)
    assert total == pytest.approx(FERMI_STAT + HESS_23523_STAT, rel=1e-7)
    # a model restricted to one dataset
    crab = crab_models["Crab Nebula"].replace(datasets_names=["Fermi-LAT"])
    restricted = crab_models.replace("Crab Nebula", crab)
    hess_alone = crab_datasets[1].stat_sum(Models([]))
    assert float(joint_stat(crab_datasets, restricted)) == pytest.approx(parts[0] + hess_alone, rel=1e-13)


def test_plans_are_device_arrays_and_reusable(crab_datasets: Datasets, crab_models: Models):
    plans = plan_datasets(crab_datasets, crab_models)
    assert len(plans) == 2
    leaves = jax.tree_util.tree_leaves(plans)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    assert float(joint_stat(plans, crab_models)) == float(joint_stat_plans(plans, crab_models))
    assert float(joint_stat(list(plans), crab_models)) == pytest.approx(
        float(joint_stat(crab_datasets, crab_models)), rel=1e-14
    )
    assert not plans_need_update(plans, crab_models)


def test_to_device_moves_numpy_leaves_without_compiling():
    from conftest import count_compiles

    from jaxgamma.likelihood import _to_device

    # shapes no other test uses: an eager copy program per shape would compile here
    tree = {
        "a": np.arange(7 * 13, dtype=np.float64).reshape(7, 13),
        "b": (np.ones(11, bool), None, 3.5),
        "c": "name",
    }
    out, n_compiles = count_compiles(lambda: _to_device(tree))
    assert n_compiles == 0
    assert isinstance(out["a"], jax.Array) and isinstance(out["b"][0], jax.Array)
    np.testing.assert_array_equal(np.asarray(out["a"]), tree["a"])
    assert out["a"].dtype == np.float64 and out["b"][0].dtype == bool
    assert out["b"][1] is None and out["b"][2] == 3.5 and out["c"] == "name"


def test_make_stat_function(crab_datasets: Datasets, crab_models: Models):
    fun, x0, names = make_stat_function(crab_datasets, crab_models)
    assert names == crab_models.parameter_vector().names
    assert names == (
        "Crab Nebula.spectral.amplitude",
        "Crab Nebula.spectral.alpha",
        "Crab Nebula.spectral.beta",
        "Fermi-LAT-bkg.spectral.norm",
    )
    np.testing.assert_array_equal(
        x0, [0.018182745349064267, 1.652368617859867, 0.03921700077803329, 1.3004625872247901]
    )
    reference = float(joint_stat(crab_datasets, crab_models))
    assert float(fun(x0)) == reference
    # the function is a pytree: an argument of jitted code, under plain jax.jit and eqx.filter_jit
    assert float(jax.jit(lambda f, x: f(x))(fun, x0)) == reference
    assert float(eqx.filter_jit(lambda f, x: f(x))(fun, x0)) == reference
    # a new value of a free parameter is a new point of the same function
    x1 = x0.copy()
    x1[1] = 1.7
    changed = crab_models.replace(
        "Crab Nebula",
        crab_models["Crab Nebula"].replace(
            spectral_model=crab_models["Crab Nebula"].spectral_model.with_values(alpha=1.7)
        ),
    )
    assert float(fun(x1)) == pytest.approx(float(joint_stat(crab_datasets, changed)), rel=1e-14)


def test_gradient_and_no_retrace():
    dataset = synthetic_dataset()
    models = synthetic_models()
    fun, x0, names = make_stat_function([dataset], models)
    traced = jax.jit(eqx.debug.assert_max_traces(lambda f, x: jax.value_and_grad(f)(x), max_traces=1))
    value, grad = traced(fun, jnp.asarray(x0))
    for i, name in enumerate(names):
        h = 1e-5 * abs(x0[i])
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        fd = (float(fun(xp)) - float(fun(xm))) / (2 * h)
        assert float(grad[i]) == pytest.approx(fd, rel=1e-4), name
    # other values, and a function rebuilt for models with other values: no new trace
    traced(fun, jnp.asarray(x0) * 1.01)
    moved = models.replace(
        "point", models["point"].replace(spectral_model=models["point"].spectral_model.with_values(index=2.0))
    )
    fun2, x2, _ = make_stat_function([dataset], moved, plans=plan_datasets([dataset], models))
    value2, _ = traced(fun2, jnp.asarray(x2))
    assert float(value2) != float(value)


def test_plans_need_update(crab_datasets: Datasets, crab_models: Models):
    plans = plan_datasets(crab_datasets, crab_models)
    crab = crab_models["Crab Nebula"]
    spatial = crab.spatial_model.with_values(lat_0=22.3)
    moved = crab_models.replace("Crab Nebula", crab.replace(spatial_model=spatial))
    assert plans_need_update(plans, moved)
    spatial = crab.spatial_model.with_values(lat_0=22.05)
    assert not plans_need_update(
        plans, crab_models.replace("Crab Nebula", crab.replace(spatial_model=spatial))
    )
