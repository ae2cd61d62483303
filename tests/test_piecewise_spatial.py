"""PiecewiseNormSpatialModel (Gammapy 2.1's): a dimensionless spatial correction with a free norm at
each of fixed sky nodes, interpolated by scipy's Clough-Tocher scheme.

Known truth: the jnp interpolant equals a tightly converged scipy ``CloughTocher2DInterpolator``
(values, NaN outside the hull, node gradients) to round-off; constant norms give exactly that
constant; the interpolant is linear in the norms and its gradient agrees with finite differences; a
fit of simulated background counts recovers the true norms (pulls). Gammapy's own test cases
(values at the footprint, longitude wrapping across 0). Against Gammapy: values (linear and log)
within its gradient solver's tolerance, the same NaN pixels, the models YAML both ways, and the
statistic and fit of a dataset whose FoV background has the correction.
"""

from __future__ import annotations

import warnings
import weakref

import astropy.units as u
import jax
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import jaxgamma as jg
from jaxgamma.datasets import MapDataset
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.models import (
    FoVBackgroundModel,
    Models,
    PiecewiseNormSpatialModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
    TemplateNPredModel,
)
from jaxgamma.models._clough_tocher import clough_tocher, clough_tocher_plan


def _scipy_interpolant(points, values):
    from scipy.interpolate import CloughTocher2DInterpolator

    return CloughTocher2DInterpolator(points, values, tol=1e-15, maxiter=1_000_000)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clough_tocher_equals_converged_scipy(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1.0, 1.0, size=(12 + 10 * seed, 2)) * [2.0, 0.5]  # anisotropic, many shapes
    values = rng.normal(size=len(points))
    plan = clough_tocher_plan(points)
    query = rng.uniform(-1.2, 1.2, size=(3000, 2)) * [2.0, 0.5]
    query = np.concatenate([query, points])  # the nodes themselves (on the hull too)
    reference = _scipy_interpolant(points, values)
    expected = reference(query)
    ours = np.asarray(clough_tocher(values, query[:, 0], query[:, 1], plan))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    assert np.isfinite(expected).sum() > 1000
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours[-len(points) :], values, atol=1e-12)
    # the node gradients: the exact minimiser scipy's Gauss-Seidel converges to
    np.testing.assert_allclose(np.einsum("iak,k->ia", plan.gradient, values), reference.grad[:, 0, :], atol=1e-10)


def test_interpolant_is_linear_and_differentiable():
    rng = np.random.default_rng(3)
    points = rng.uniform(0.0, 1.0, size=(15, 2))
    plan = clough_tocher_plan(points)
    x, y = rng.uniform(0.2, 0.8, size=(2, 50))
    a, b = rng.normal(size=(2, 15))
    f = jax.jit(lambda v: clough_tocher(v, x, y, plan))
    np.testing.assert_allclose(f(2.0 * a - 3.0 * b), 2.0 * f(a) - 3.0 * f(b), atol=1e-12)
    np.testing.assert_allclose(f(np.full(15, 1.7)), 1.7, atol=1e-13)  # zero gradients: the constant
    jac = jax.jacfwd(f)(a)
    step = 1e-6
    numeric = np.stack([(f(a + step * e) - f(a - step * e)) / (2 * step) for e in np.eye(15)], axis=1)
    np.testing.assert_allclose(jac, numeric, atol=1e-8)


def _footprint_coords(lon: float, lat: float):
    geom = WcsGeom.create(skydir=(lon, lat), npix=(2, 2), binsz=0.3, frame="galactic")
    return geom, geom.footprint


def test_gammapy_cases():
    """Gammapy's test_piecewise_spatial_model(_gc): nodes at the corner pixel centres."""
    for lon in range(-360, 360, 7):
        geom, coords = _footprint_coords(lon, 2.3)
        model = PiecewiseNormSpatialModel(coords, frame="galactic")
        center = geom.center_skydir
        assert model(center).unit == u.dimensionless_unscaled
        np.testing.assert_allclose(model(center).value, 1.0, rtol=1e-14)
        model = PiecewiseNormSpatialModel(coords, norms=np.arange(4), frame="galactic")
        assert not model.is_energy_dependent
        lons, lats = geom.get_coord()
        np.testing.assert_allclose(model(lons * u.deg, lats * u.deg).value, [[0, 3], [1, 2]], atol=1e-12)
    geom, coords = _footprint_coords(0.0, 0.0)
    model = PiecewiseNormSpatialModel(coords, norms=np.arange(4), frame="galactic")
    # Gammapy's case is outside the nodes' hull (lat 2.3 deg): NaN both ways
    assert np.isnan(model(-0.1 * u.deg, 2.3 * u.deg).value) and np.isnan(model(359.9 * u.deg, 2.3 * u.deg).value)
    inside = model(-0.1 * u.deg, 0.1 * u.deg).value
    assert np.isfinite(inside)
    np.testing.assert_allclose(model(359.9 * u.deg, 0.1 * u.deg).value, inside, rtol=1e-12)  # 359.9 - 360 rounds
    # nodes from lon 0.5 to 3.5 deg: Gammapy's wrapping splits them (NaN everywhere); ours keeps
    # them together, equal to the same nodes moved 10 deg away from lon 0
    lon, lat = np.array([0.5, 3.5, 0.5, 3.5, 2.0]), np.array([0.0, 0.0, 1.0, 1.0, 0.4])
    norms = [1.0, 2.0, 3.0, 4.0, 2.2]
    split = PiecewiseNormSpatialModel((lon, lat), norms=norms)
    moved = PiecewiseNormSpatialModel((lon + 10.0, lat), norms=norms)
    x, y = np.array([0.6, 2.0, 3.4, 1.2]), np.array([0.1, 0.5, 0.9, 0.7])
    np.testing.assert_allclose(split.evaluate_lonlat(x, y), moved.evaluate_lonlat(x + 10.0, y), rtol=1e-12)
    assert np.all(np.isfinite(split.evaluate_lonlat(x, y)))
    # a SkyCoord in another frame is taken to the model's
    np.testing.assert_allclose(model(SkyCoord(0.05, 0.1, unit="deg", frame="galactic").icrs).value, model(0.05 * u.deg, 0.1 * u.deg).value, rtol=1e-9)


def test_log_interpolation_and_parameters():
    _, coords = _footprint_coords(10.0, 0.0)
    norms = np.array([0.5, 2.0, 1.0, 4.0])
    model = PiecewiseNormSpatialModel(coords, norms=norms, interp="log", frame="galactic")
    lin = PiecewiseNormSpatialModel(coords, norms=np.log(norms), frame="galactic")
    lon, lat = np.array([9.95, 10.02, 10.1]), np.array([-0.05, 0.0, 0.12])
    np.testing.assert_allclose(model.evaluate_lonlat(lon, lat), np.exp(lin.evaluate_lonlat(lon, lat)), rtol=1e-13)
    assert model.parameter_names == ("norm_0", "norm_1", "norm_2", "norm_3")
    assert model.norm_2.value == 1.0
    changed = model.with_values(norm_2=3.0)
    np.testing.assert_allclose(changed.evaluate_lonlat(lon, lat), model.evaluate(lon, lat, norm_2=3.0), rtol=1e-14)
    assert not np.allclose(changed.evaluate_lonlat(lon, lat), model.evaluate_lonlat(lon, lat))


def test_bad_input():
    _, coords = _footprint_coords(0.0, 0.0)
    lon, lat = coords.l.deg, coords.b.deg
    with pytest.raises(ValueError, match="at least 4 nodes"):
        PiecewiseNormSpatialModel((lon[:3], lat[:3]))
    with pytest.raises(ValueError, match="3 norms for 4 nodes"):
        PiecewiseNormSpatialModel((lon, lat), norms=[1, 2, 3])
    with pytest.raises(ValueError, match=r"node 0 .* more than once"):
        PiecewiseNormSpatialModel((np.r_[lon, lon[0]], np.r_[lat, lat[0]]))
    with pytest.raises(ValueError, match="cannot be triangulated"):
        PiecewiseNormSpatialModel((np.arange(5.0), 2 * np.arange(5.0)))
    with pytest.raises(ValueError, match="interp must be"):
        PiecewiseNormSpatialModel((lon, lat), interp="sqrt")
    with pytest.raises(ValueError, match="energy dependent nodes"):
        PiecewiseNormSpatialModel({"lon": lon, "lat": lat, "energy": np.ones(4)})
    with pytest.raises(ValueError, match="4 node longitudes for 3 latitudes"):
        PiecewiseNormSpatialModel((lon, lat[:3]))
    with pytest.raises(ValueError, match="dimensionless correction"):
        SkyModel(PowerLawSpectralModel(), PiecewiseNormSpatialModel((lon, lat)), name="s")


def _background_dataset(seed: int, truth: np.ndarray, nodes: WcsGeom) -> MapDataset:
    energy = MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 2, name="energy")
    geom = WcsGeom.create(npix=(40, 30), binsz=0.05, frame="galactic", skydir=(10.0, 1.0), axes=[energy])
    lon, lat = nodes.get_coord()
    model = PiecewiseNormSpatialModel((lon.ravel(), lat.ravel()), norms=truth, frame="galactic")
    background = np.full(geom.data_shape, 30.0) * np.array([1.0, 0.5])[:, None, None]
    plon, plat = geom.to_image().get_coord()
    mean = background * np.asarray(model.evaluate_lonlat(plon, plat))
    counts = np.random.default_rng(seed).poisson(mean).astype(float)
    return MapDataset(geom=geom, counts=counts, background=background, name="d")


def _fov_models(nodes: WcsGeom, norms=None) -> Models:
    lon, lat = nodes.get_coord()
    spatial = PiecewiseNormSpatialModel((lon.ravel(), lat.ravel()), norms=norms, frame="galactic")
    return Models([FoVBackgroundModel(dataset_name="d", spectral_model=PowerLawNormSpectralModel().freeze(), spatial_model=spatial)])


NODES = WcsGeom.create(npix=(3, 2), binsz=1.6, frame="galactic", skydir=(10.0, 1.0))
TRUTH = np.array([1.0, 1.25, 0.85, 1.1, 0.8, 1.2])


def test_fit_recovers_simulated_norms():
    pulls = []
    for seed in range(12):
        dataset = _background_dataset(seed, TRUTH, NODES)
        result = jg.fit([dataset], _fov_models(NODES))
        assert result.success, result.message
        for k, truth in enumerate(TRUTH):
            name = f"d-bkg.spatial.norm_{k}"
            pulls.append((result.value(name) - truth) / result.error(name))
    pulls = np.asarray(pulls)  # 72 pulls: mean 0 +- 0.12, std 1 +- 0.09 at 1 sigma
    assert abs(pulls.mean()) < 0.4 and 0.7 < pulls.std() < 1.3, (pulls.mean(), pulls.std())


def test_template_and_fov_background_evaluate():
    dataset = _background_dataset(0, TRUTH, NODES)
    lon, lat = dataset.geom.to_image().get_coord()
    expected = dataset.background * np.asarray(_fov_models(NODES, TRUTH)[0].spatial_model.evaluate_lonlat(lon, lat))
    np.testing.assert_allclose(dataset.npred_background(_fov_models(NODES, TRUTH)), expected, rtol=1e-13)
    spatial = _fov_models(NODES, 2 * TRUTH)[0].spatial_model
    template = TemplateNPredModel(dataset.background, dataset.geom, spatial_model=spatial)
    np.testing.assert_allclose(template.evaluate(), 2 * expected, rtol=1e-13)


@pytest.mark.gammapy
def test_against_gammapy(tmp_path, monkeypatch):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.maps import MapCoord
    from gammapy.maps import WcsGeom as GWcsGeom
    from gammapy.modeling import Fit
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import PiecewiseNormSpatialModel as GPiecewise

    rng = np.random.default_rng(5)
    for lon0, interp in [(0.0, "lin"), (180.0, "log"), (359.9, "lin"), (-100.0, "log"), (33.0, "lin")]:
        ggeom = GWcsGeom.create(skydir=(lon0, 2.3), npix=(7, 5), binsz=0.3, frame="galactic")
        gcoords = MapCoord.create(ggeom.footprint)
        gcoords["lon"] *= u.deg
        gcoords["lat"] *= u.deg
        ours_footprint = WcsGeom.create(skydir=(lon0, 2.3), npix=(7, 5), binsz=0.3, frame="galactic").footprint
        assert ours_footprint.frame.name == ggeom.footprint.frame.name
        assert np.max(ours_footprint.separation(ggeom.footprint).deg) < 1e-12
        norms = rng.uniform(0.5, 2.0, 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = GPiecewise(gcoords, norms=norms, interp=interp, frame="galactic")
            lon, lat = ggeom.get_coord()
            expected = theirs(lon, lat).value
        ours = PiecewiseNormSpatialModel(gcoords, norms=norms, interp=interp, frame="galactic")
        values = ours(lon, lat).value
        np.testing.assert_array_equal(np.isnan(values), np.isnan(expected), err_msg=str(lon0))
        assert np.isfinite(values).sum() >= 25
        # scipy's gradients stop at a relative change of 1e-6; ours are the exact solution
        np.testing.assert_allclose(values, expected, rtol=1e-6, equal_nan=True, err_msg=str(lon0))

    # a 6-node grid on a dataset: YAML both ways, statistic and fit
    monkeypatch.chdir(tmp_path)
    dataset = _background_dataset(7, TRUTH, NODES)
    start = _fov_models(NODES, norms=np.ones(6) * 1.05)
    dataset.write("d.fits")
    start.write("models.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gdataset = GMapDataset.read("d.fits", name="d")
        gmodels = GModels.read("models.yaml")
        gdataset.models = gmodels
        np.testing.assert_allclose(gdataset.stat_sum(), dataset.stat_sum(start), rtol=1e-9)
        gmodels.write("gammapy.yaml")
        result = Fit().run([gdataset])
        spatial = gdataset.models["d-bkg"].spatial_model
    back = Models.read("gammapy.yaml")["d-bkg"].spatial_model
    np.testing.assert_allclose(np.asarray(back.lon), np.asarray(start[0].spatial_model.lon), atol=1e-12)
    np.testing.assert_allclose(np.asarray(back.norms), 1.05)
    ours = jg.fit([dataset], start)
    assert result.success and ours.success
    assert ours.total_stat <= result.total_stat + 1e-3
    for k, p in enumerate(spatial.parameters):
        name = f"d-bkg.spatial.norm_{k}"
        assert abs(ours.value(name) - p.value) < 0.02 * ours.error(name), name
        assert ours.error(name) == pytest.approx(p.error, rel=0.02), name


@pytest.mark.parametrize("interp", ["lin", "log"])
def test_prepared_weights_equal_the_interpolant(interp, monkeypatch):
    """The plan's weight matrix (the interpolant is linear in the node values) gives the
    interpolant at the pixels, NaN outside the hull included, and the same statistic, gradient
    and Hessian as evaluating the interpolant each time (the fallback above the size limit)."""

    from jaxgamma.datasets import map as map_module
    from jaxgamma.models import spatial as spatial_module

    dataset = _background_dataset(0, TRUTH, NODES)
    lon, lat = dataset.geom.to_image().get_coord()
    # nodes that do not cover the map: some pixels are outside the hull
    small = WcsGeom.create(npix=(3, 2), binsz=0.5, frame="galactic", skydir=(10.0, 1.0))
    for nodes in (NODES, small):
        nl, nb = nodes.get_coord()
        model = PiecewiseNormSpatialModel((nl.ravel(), nb.ravel()), norms=TRUTH, frame="galactic", interp=interp)
        key, prepared = model.prepare_pixels(lon, lat)
        assert key == model.prepared_key() and prepared["weights"].shape == (lon.size, 6)
        direct = np.asarray(model.evaluate_lonlat(lon, lat))
        via_weights = np.asarray(model.evaluate_prepared(prepared))
        np.testing.assert_array_equal(np.isnan(via_weights), np.isnan(direct))
        np.testing.assert_allclose(via_weights, direct, rtol=1e-13, equal_nan=True)
        if nodes is small:
            assert np.isnan(direct).any() and not np.isnan(direct).all()
    nl, nb = NODES.get_coord()
    spatial = PiecewiseNormSpatialModel((nl.ravel(), nb.ravel()), norms=TRUTH * 1.05, frame="galactic", interp=interp)
    models = Models([FoVBackgroundModel(dataset_name="d", spectral_model=PowerLawNormSpectralModel(), spatial_model=spatial)])
    plan = dataset.plan(models)
    assert plan.background_prepared is not None
    # prepared once per geometry and model structure: a refit's re-plan reuses it
    assert dataset.plan(models).background_prepared["weights"] is plan.background_prepared["weights"]
    monkeypatch.setattr(spatial_module, "PREPARED_MAX_ENTRIES", 0)
    monkeypatch.setattr(map_module, "_PREPARED_BACKGROUND", weakref.WeakKeyDictionary())
    fallback = dataset.plan(models)
    assert fallback.background_prepared is None and fallback.background_prepared_key is None
    vector = jg.ParameterVector.from_tree(models)

    def stat(p, x):
        return p.stat_sum(vector.unflatten(x, models))

    x0 = vector.flatten(models)
    for f in (stat, jax.grad(stat, argnums=1), jax.hessian(stat, argnums=1)):
        np.testing.assert_allclose(f(plan, x0), f(fallback, x0), rtol=1e-11, atol=1e-9)


def test_plan_is_rebuilt_when_the_background_nodes_change():
    dataset = _background_dataset(0, TRUTH, NODES)
    models = _fov_models(NODES, TRUTH)
    plan = dataset.plan(models)
    assert not plan.needs_update(_fov_models(NODES, 1.1 * TRUTH))  # other norms: the same weights
    moved = WcsGeom.create(npix=(3, 2), binsz=1.6, frame="galactic", skydir=(10.2, 1.0))
    assert plan.needs_update(_fov_models(moved, TRUTH))  # other nodes: other weights
    flat = Models([FoVBackgroundModel(dataset_name="d", spectral_model=PowerLawNormSpectralModel())])
    assert plan.needs_update(flat)  # the spatial correction removed
    assert dataset.plan(flat).needs_update(models)
