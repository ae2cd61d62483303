"""Map datasets of one structure stacked and evaluated by one vmap (jaxgamma.datasets.batch).

The batched statistic must equal the sum of the per-dataset statistics (value, gradient, Hessian)
for cutouts of one sky with different reference pixels, active-pixel counts, explicit bins, PSF
kernel sizes and FoV background models; plans that cannot be stacked stay as they are.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import jaxgamma as jg
from jaxgamma.datasets import Datasets, MapDataset
from jaxgamma.datasets.batch import BatchedMapDatasetPlan, _normalized_evaluator, batch_plans
from jaxgamma.datasets.map import MapDatasetPlan
from jaxgamma.demo import _aeff, _psf_map
from jaxgamma.fit import fit_batch
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.irf import EDispKernelMap
from jaxgamma.likelihood import (
    _local_structure,
    dense_value_grad_hessian,
    make_stat_function,
    plan_datasets,
    value_grad_hessian,
)
from jaxgamma.models import (
    ConstantSpatialModel,
    FoVBackgroundModel,
    GaussianSpatialModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
)
from jaxgamma.parameters import ParameterVector

CENTRE = (83.6, 22.0)


def _parent(
    psf_sigma: float, name: str, centre: tuple[float, float] = CENTRE, width: tuple[float, float] = (4.0, 3.0)
) -> MapDataset:
    energy = MapAxis.from_energy_bounds(0.3, 30, 5, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.2, 50, 8, unit="TeV", name="energy_true")
    geom = WcsGeom.create(
        skydir=SkyCoord(*centre, unit="deg"), binsz=0.05, width=width, frame="icrs", axes=[energy]
    )
    ny, nx = geom.data_shape[1:]
    exposure = np.broadcast_to(
        (_aeff(energy_true.center) * 3600.0)[:, None, None], (energy_true.nbin, ny, nx)
    )
    background = np.broadcast_to((0.3 * (energy.center / 0.3) ** -1.5)[:, None, None], (energy.nbin, ny, nx))
    return MapDataset(
        geom=geom,
        energy_axis_true=energy_true,
        counts=np.zeros(geom.data_shape),
        exposure=exposure.copy(),
        background=background,
        psf=_psf_map(energy_true, sigma_deg=psf_sigma),
        edisp=EDispKernelMap.from_diagonal_response(energy, energy_true),
        name=name,
    )


def _models(names: list[str], extra_source: bool = True, point_lon: float = 83.63) -> Models:
    point = SkyModel(
        PowerLawSpectralModel(index=2.4, amplitude=3e-11, reference=1.0),
        PointSpatialModel(lon_0=point_lon, lat_0=22.01, frame="icrs"),
        name="point",
    )
    models = [point]
    if extra_source:
        models.append(
            SkyModel(
                PowerLawSpectralModel(index=2.8, amplitude=1e-11, reference=1.0),
                GaussianSpatialModel(lon_0=83.3, lat_0=21.85, sigma=0.06, frame="icrs"),
                name="extended",
            )
        )
    background = [
        FoVBackgroundModel(dataset_name=n, spectral_model=PowerLawNormSpectralModel(norm=1.0 + 0.05 * i))
        for i, n in enumerate(names)
    ]
    return Models(models + background)


def _observations(
    psf_sigmas: tuple[float, ...] = (0.08, 0.08, 0.08, 0.08), extra_source: bool = True
) -> tuple[Datasets, Models]:
    """Cutouts around different 'pointings' of a sky, faked from the models, with their own safe
    masks: same shapes, different reference pixels, active/explicit sizes (and PSF kernels). The
    fourth has its own geometry centred on its pointing (another projection)."""
    centres = [(83.5, 21.9), (83.45, 21.95), (83.6, 21.95), (83.4, 21.85)][: len(psf_sigmas)]
    names = [f"obs-{i}" for i in range(len(centres))]
    truth = _models(names, extra_source)
    datasets = []
    for i, (centre, sigma, name) in enumerate(zip(centres, psf_sigmas, names, strict=True)):
        if i < 3:
            cut = _parent(sigma, name).cutout(centre, (3.0, 2.4), name=name)
        else:
            cut = _parent(sigma, name, centre=centre, width=(3.0, 2.4))
        mask = np.ones(cut.data_shape, bool)
        mask[0, : 3 + i, :] = False  # different safe masks
        background = np.array(cut.background)
        background[:, -2 - i :, :5] = 1e-30  # a low-background corner: explicit bins, more each time
        datasets.append(cut.replace(mask_safe=mask, background=background).fake(truth, seed=i))
    return Datasets(datasets), truth


@pytest.fixture(scope="module")
def observations() -> tuple[Datasets, Models]:
    return _observations()


def test_plans_are_grouped(observations):
    datasets, models = observations
    plans = plan_datasets(datasets, models)
    assert {p.shape for p in plans} == {plans[0].shape}
    assert len({p.explicit_counts.shape[0] for p in plans}) > 1  # padding needed
    assert all(p.reduced and p.active_pixels.shape[0] < np.prod(p.shape[1:]) for p in plans)
    projections = {ev.projection for p in plans for ev in p.evaluators if ev.kind == "point"}
    assert len(projections) == 2  # the cutouts' source cutouts coincide; the fourth is elsewhere
    batched = batch_plans(plans, models)
    assert len(batched) == 1 and isinstance(batched[0], BatchedMapDatasetPlan)
    assert batched[0].names == tuple(datasets.names)
    assert batched[0].background_model_names == tuple(f"{n}-bkg" for n in datasets.names)


def test_point_kernel_padding_keeps_the_prediction(observations):
    """A point-source kernel zero-padded to a larger size (same centre) predicts the same counts,
    which lets kernels of different sizes stack when the cutouts agree."""
    datasets, models = observations
    ev = datasets[0].plan(models).evaluators[0]
    assert ev.kind == "point" and ev.psf_stage == "true"
    ky, kx = ev.kernel_shape
    padded = _normalized_evaluator(ev, (ky + 4, kx + 2))
    assert padded.psf.shape[1:] == (ev.psf.shape[1] + 4, ev.psf.shape[2] + 2)
    projection = ev.projection.as_arrays()
    for lon in (83.63, 83.0, 82.2, 85.0):  # inside, near and beyond the cutout's edges
        m = _models(list(datasets.names), point_lon=lon)
        np.testing.assert_allclose(
            np.asarray(padded.npred(m, projection)), np.asarray(ev.npred(m)), rtol=1e-14, atol=1e-300
        )


def test_different_cutouts_split_the_group():
    """Datasets whose PSFs give source cutouts of different shapes are batched separately."""
    datasets, models = _observations(psf_sigmas=(0.08, 0.1, 0.08), extra_source=False)
    plans = plan_datasets(datasets, models)
    batched = batch_plans(plans, models)
    assert [type(p).__name__ for p in batched] == ["BatchedMapDatasetPlan", "MapDatasetPlan"]
    assert batched[0].names == ("obs-0", "obs-2") and batched[1].name == "obs-1"
    _assert_batched_equals_unbatched(datasets, models, hessian=False)


def test_batched_statistic_equals_the_sum(observations):
    # (the Hessian: test_structured_hessian_equals_the_dense_one, with a cheaper model)
    _assert_batched_equals_unbatched(*observations, hessian=False)


def _assert_batched_equals_unbatched(datasets: Datasets, models: Models, hessian: bool = True) -> None:
    plans = plan_datasets(datasets, models)
    results = {}
    for batch in (False, True):
        fun, x0, names = make_stat_function(datasets, models, plans=plans, batch=batch)
        x = jnp.asarray(x0) * (1 + 1e-3 * np.sin(np.arange(x0.size)))  # off the truth (by ~1.5 px)
        if hessian:  # a Hessian-vector product: forward over reverse, as the fit's Hessian
            v = jnp.cos(jnp.arange(x.size))
            value, grad, hess = jax.jit(lambda f, x, v: (f(x), *jax.jvp(jax.grad(f), (x,), (v,))))(fun, x, v)
        else:
            (value, grad), hess = jax.jit(lambda f, x: jax.value_and_grad(f)(x))(fun, x), np.zeros(())
        results[batch] = (float(value), np.asarray(grad), np.asarray(hess))
    assert len(names) == x0.size > 0
    assert not np.allclose(results[False][1], 0.0)
    (v0, g0, h0), (v1, g1, h1) = results[False], results[True]
    assert v1 == pytest.approx(v0, rel=1e-13)
    np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-9 * np.abs(g0).max())
    np.testing.assert_allclose(h1, h0, rtol=1e-9, atol=1e-9 * np.abs(h0).max())


def test_point_source_off_and_across_the_cutout_edges():
    """The one-window PSF shift: a point source moving across a cutout's edge (some of its four
    pixels off the cutout) gives the same statistic batched and one by one."""
    datasets, models = _observations()
    plans = plan_datasets(datasets, models)
    fun0, x0, names = make_stat_function(datasets, models, plans=plans, batch=False)
    fun1, _, _ = make_stat_function(datasets, models, plans=plans, batch=True)
    i = names.index("point.spatial.lon_0")
    values = jax.jit(jax.vmap(lambda f, x: f(x), in_axes=(None, 0)))
    xs = np.repeat(x0[None, :], 41, axis=0)
    xs[:, i] = np.linspace(82.0, 85.2, 41)  # through every cutout and out of it
    np.testing.assert_allclose(np.asarray(values(fun1, xs)), np.asarray(values(fun0, xs)), rtol=1e-12)


def test_unbatchable_plans_stay():
    datasets, models = _observations()
    # a different shape: its own plan
    small = datasets[0].cutout(datasets[0].geom.center_skydir, 1.0, name="small")
    # a background model with a spatial part: not batched
    spatial_bkg = datasets[1].replace(name="spatial")
    all_models = Models(
        [
            *list(models),
            FoVBackgroundModel(dataset_name="small"),
            FoVBackgroundModel(dataset_name="spatial", spatial_model=ConstantSpatialModel(frame="icrs")),
        ]
    )
    plans = plan_datasets(Datasets([*datasets, small, spatial_bkg]), all_models)
    batched = batch_plans(plans, all_models)
    kinds = [type(p).__name__ for p in batched]
    assert kinds == ["BatchedMapDatasetPlan", "MapDatasetPlan", "MapDatasetPlan"]
    assert [p.name for p in batched[1:]] == ["small", "spatial"]
    assert all(isinstance(p, MapDatasetPlan) for p in plans)
    # a single plan of its structure is not wrapped
    assert batch_plans(plans[:1], all_models) == plans[:1]


def test_no_retrace_for_new_values(observations):
    datasets, models = observations
    fun, x0, _ = make_stat_function(datasets, models)
    traces = []

    @jax.jit
    def value(f, x):
        traces.append(1)
        return f(x)

    a = float(value(fun, jnp.asarray(x0)))
    b = float(value(fun, jnp.asarray(x0) * 1.001))
    fun2, _, _ = make_stat_function(datasets, models)  # rebuilt plans, same structure
    value(fun2, jnp.asarray(x0))
    assert len(traces) == 1 and a != b


def _assert_structured_equals_dense(fun, x):
    """The structured value, gradient and Hessian equal the dense ones; returns the dense ones."""
    structured = jax.jit(value_grad_hessian)(fun, x)
    dense = jax.jit(dense_value_grad_hessian)(fun, x)
    assert float(structured[0]) == pytest.approx(float(dense[0]), rel=1e-13)
    for a, b in zip(structured[1:], dense[1:], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12 * np.abs(b).max())
    return dense


def _with_free_tilts(models: Models) -> Models:
    """The models with the background models' spectral tilts free."""
    return Models(
        [
            m.__class__(dataset_name=m.datasets_names[0], spectral_model=m.spectral_model.unfreeze("tilt"))
            if isinstance(m, FoVBackgroundModel)
            else m
            for m in models
        ]
    )


def test_structured_hessian_equals_the_dense_one():
    """Per-dataset Hessian blocks (shared + own background parameters, one vmap) add up to the
    dense Hessian; with a second free background parameter and an unbatched dataset beside."""
    datasets, models = _observations(extra_source=False)
    models = _with_free_tilts(models)
    other = datasets[0].cutout(datasets[0].geom.center_skydir, 1.0, name="other")
    datasets = Datasets([*datasets, other])
    models = Models([*models, FoVBackgroundModel(dataset_name="other")])
    fun, x0, names = make_stat_function(datasets, models)
    groups, shared = _local_structure(fun)
    assert [g.local_index.shape for g in groups] == [(4, 2)]
    assert "other-bkg.spectral.norm" in [names[i] for i in shared]
    x = jnp.asarray(x0) * (1 + 0.01 * np.cos(np.arange(x0.size)))
    dense = _assert_structured_equals_dense(fun, x)
    assert not np.allclose(np.asarray(dense[2])[np.ix_(groups[0].local_index[:, 0], shared)], 0.0)


def test_structured_hessian_with_linked_background_parameters():
    """One spectral tilt linked across the datasets' background models (one entry of the vector,
    in every dataset's block): the structured Hessian equals the dense one. A background norm linked
    to a source's parameter is no dataset's own: the dense Hessian is used."""
    datasets, models = _observations(extra_source=False)
    models = _with_free_tilts(models)
    tilts = [f"obs-{k}-bkg.spectral.tilt" for k in range(4)]
    linked = models.link(*tilts)
    fun, x0, names = make_stat_function(datasets, linked)
    assert len(names) == len(ParameterVector.from_tree(models).names) - 3
    groups, _ = _local_structure(fun)
    assert [g.local_index.shape for g in groups] == [(4, 2)]
    column = groups[0].local_vector.names.index("tilt")
    assert set(groups[0].local_index[:, column]) == {names.index(tilts[0])}  # every dataset's tilt: one entry
    assert len(set(groups[0].local_index[:, 1 - column])) == 4
    x = jnp.asarray(x0) * (1 + 0.01 * np.cos(np.arange(x0.size)))
    dense = _assert_structured_equals_dense(fun, x)
    assert np.asarray(dense[2])[names.index(tilts[0]), names.index(tilts[0])] > 0

    odd = models.link("point.spectral.index", *tilts)  # the tilts are the source's index
    fun, x0, _ = make_stat_function(datasets, odd)
    assert [type(p).__name__ for p in fun.keywords["plans"]] == ["BatchedMapDatasetPlan"]
    assert _local_structure(fun) is None
    structured = value_grad_hessian(fun, x0)
    dense = dense_value_grad_hessian(fun, jnp.asarray(x0))
    np.testing.assert_allclose(np.asarray(structured[2]), np.asarray(dense[2]), rtol=1e-12)


def test_structured_hessian_includes_the_priors(observations):
    """Priors on the datasets' own background norms (one per dataset, a Gaussian each) and on a
    shared parameter: the per-dataset blocks plus the prior terms equal the dense Hessian, whose
    diagonal gains 2 / sigma**2 at each prior."""
    from jaxgamma.models import GaussianPrior

    datasets, models = observations
    sigmas = {"obs-0-bkg": 0.05, "obs-1-bkg": 0.08, "obs-2-bkg": 0.05, "obs-3-bkg": 0.1}
    names = [f"{n}.spectral.norm" for n in sigmas] + ["point.spectral.index"]
    priors = [GaussianPrior(mu=1.0, sigma=s) for s in sigmas.values()] + [GaussianPrior(mu=2.2, sigma=0.2)]
    with_priors = models.set_prior(names, priors)
    fun, x0, order = make_stat_function(datasets, with_priors)
    plain, _, _ = make_stat_function(datasets, models)
    assert _local_structure(fun) is not None
    x = jnp.asarray(x0) * (1 + 0.01 * np.cos(np.arange(x0.size)))
    dense = _assert_structured_equals_dense(fun, x)
    without = dense_value_grad_hessian(plain, x)
    expected = np.zeros(len(order))
    for name, prior in zip(names, priors, strict=True):
        expected[order.index(name)] = 2.0 / prior.sigma**2
    # two separately compiled Hessians: entries without a prior agree to rounding of their own size
    # (an amplitude's diagonal is ~1e25 in canonical units), those with one differ by 2 / sigma**2
    scale = np.abs(np.diag(np.asarray(without[2])))
    added = np.diag(np.asarray(dense[2]) - np.asarray(without[2]))
    assert np.all(np.abs(added - expected) <= 1e-9 * expected + 1e-12 * scale + 1e-6), (added, expected)
    prior_sum = sum(float(p(x[order.index(n)])) for n, p in zip(names, priors, strict=True))
    assert float(dense[0]) == pytest.approx(float(without[0]) + prior_sum, rel=1e-12)


def test_structured_hessian_includes_the_penalties(observations):
    """A smoothness penalty tying the datasets' own background norms to each other: the per-dataset
    blocks plus the penalty's dense terms equal the dense Hessian, which gains 2 lambda Q, cross-dataset
    entries included."""
    from jaxgamma.stats import GaussianPriorPenalty

    datasets, models = observations
    names = [f"obs-{k}-bkg.spectral.norm" for k in range(4)]
    penalty = GaussianPriorPenalty.SmoothnessPenalty(names, mean=np.ones(4), lambda_=40.0)
    fun, x0, order = make_stat_function(datasets, models.set_penalties(penalty))
    plain, _, _ = make_stat_function(datasets, models)
    assert _local_structure(fun) is not None
    x = jnp.asarray(x0) * (1 + 0.01 * np.cos(np.arange(x0.size)))
    dense = _assert_structured_equals_dense(fun, x)
    without = dense_value_grad_hessian(plain, x)
    index = [order.index(n) for n in names]
    added = np.asarray(dense[2]) - np.asarray(without[2])
    np.testing.assert_allclose(added[np.ix_(index, index)], 2 * 40.0 * penalty.precision, rtol=1e-9, atol=1e-6)
    outside = np.ones(added.shape, dtype=bool)
    outside[np.ix_(index, index)] = False
    np.testing.assert_allclose(added[outside], 0.0, atol=1e-9 * np.abs(np.asarray(without[2])).max())
    assert float(dense[0]) == pytest.approx(float(without[0]) + float(penalty(x[np.array(index)])), rel=1e-12)


def test_spectra_of_one_structure_are_stacked():
    """ON/OFF spectra of runs reduced alike (and flux points) stack into one vmapped plan; the
    statistic, gradient and Hessian are those of the datasets one by one."""
    from jaxgamma.datasets.batch import StackedPlans
    from jaxgamma.demo import make_demo_datasets, true_models

    _, onoff, flux_points = make_demo_datasets(seed=3)
    source = true_models()["Crab (simulated)"]
    runs = [
        onoff.fake(Models([source]), seed=10 + i, npred_background=np.asarray(onoff.counts_off) * 0.2)
        for i in range(4)
    ]
    runs = [r.replace(name=f"run-{i}") for i, r in enumerate(runs)]
    datasets = Datasets([*runs, flux_points])
    models = Models([source])
    plans = plan_datasets(datasets, models)
    batched = batch_plans(plans, models)
    assert [type(p).__name__ for p in batched] == ["StackedPlans", "FluxPointsPlan"]
    assert isinstance(batched[0], StackedPlans) and batched[0].size == 4
    _assert_batched_equals_unbatched(datasets, models)


def test_fit_is_the_same_batched_or_not():
    """End to end: the compiled fit (Newton on the block-structured Hessian, covariance) finds the
    same optimum, errors and statistic as the fit of the datasets traced one by one."""
    datasets, truth = _observations(extra_source=False)
    point = truth["point"]
    point = eqx.tree_at(lambda m: m.spectral_model, point, point.spectral_model.with_values(index=2.2))
    start = Models([point, *(m for m in truth if m.name != "point")])
    results = [jg.fit(datasets, start, batch_datasets=b, pixel_restarts=False) for b in (True, False)]
    (a, b) = (r.parameters_table() for r in results)
    assert all(r.success for r in results)
    assert results[0].total_stat == pytest.approx(results[1].total_stat, rel=1e-12, abs=1e-8)
    np.testing.assert_allclose(np.asarray(a["value"]), np.asarray(b["value"]), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(np.asarray(a["error"]), np.asarray(b["error"]), rtol=1e-6)
    assert np.all(np.asarray(a["error"])[~np.asarray(a["frozen"])] > 0)


def test_onoff_maps_of_one_structure_are_batched():
    """MapDatasetOnOff plans (WStat, background profiled) batch the same way."""
    from jaxgamma.datasets import MapDatasetOnOff

    datasets, models = _observations(extra_source=False)
    onoff = []
    for i, d in enumerate(datasets):
        o = MapDatasetOnOff.from_map_dataset(
            d, acceptance=np.ones(d.data_shape), acceptance_off=np.full(d.data_shape, 4.0), name=f"on-{i}"
        )
        onoff.append(
            o.fake(Models([models["point"]]), seed=20 + i, npred_background=np.asarray(d.background))
        )
    onoff = Datasets(onoff)
    source = Models([models["point"]])
    plans = plan_datasets(onoff, source)
    batched = batch_plans(plans, source)
    assert [type(p).__name__ for p in batched] == ["BatchedMapDatasetPlan"]
    assert batched[0].background_model_names is None
    _assert_batched_equals_unbatched(onoff, source)


def test_structured_hessian_guards():
    """value_grad_hessian takes numpy input; a background model reaching a plan outside its group
    (a plain list repeating a dataset name) falls back to the dense Hessian; models carrying
    errors from an earlier result still batch."""
    from jaxgamma.parameters import map_parameters

    datasets, models = _observations(extra_source=False)
    other = datasets[0].cutout(datasets[0].geom.center_skydir, 1.0, name="obs-0")  # another shape, same name
    fun, x0, _ = make_stat_function([*datasets, other], models)
    assert _local_structure(fun) is None
    structured = value_grad_hessian(fun, x0)  # numpy x0
    dense = dense_value_grad_hessian(fun, jnp.asarray(x0))
    np.testing.assert_allclose(np.asarray(structured[2]), np.asarray(dense[2]), rtol=1e-12)

    with_errors = map_parameters(lambda name, p: p.replace(error=0.1 * (1 + len(name))), models)
    fun, _, _ = make_stat_function(datasets, with_errors)
    assert [type(p).__name__ for p in fun.keywords["plans"]] == ["BatchedMapDatasetPlan"]


def test_fit_batch_with_batched_datasets():
    """fit_batch vmaps the compiled fit over entries whose map datasets are themselves batched:
    the same optima and errors as with the datasets traced one by one, and as fit on each entry."""
    datasets, truth = _observations(psf_sigmas=(0.08, 0.08), extra_source=False)
    refaked = Datasets([d.fake(truth, seed=10 + i) for i, d in enumerate(datasets)])
    entries = [datasets, refaked]
    results = [fit_batch(entries, truth, batch_datasets=b) for b in (True, False)]
    assert all(np.all(r.success) for r in results)
    np.testing.assert_allclose(results[0].parameters, results[1].parameters, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(results[0].covariance, results[1].covariance, rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(results[0].total_stat, results[1].total_stat, rtol=1e-12)
    single = jg.fit(refaked, truth, pixel_restarts=False)
    np.testing.assert_allclose(results[0].total_stat[1], single.total_stat, rtol=1e-10)
    assert not np.allclose(results[0].parameters[0], results[0].parameters[1])
