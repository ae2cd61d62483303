"""TemplateSpatialModel: 2D and 3D templates vs Gammapy 2.1, jit/grad behaviour, reading."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from jaxgamma.geom import MapAxis, WcsGeom, axes_to_table_hdu
from jaxgamma.models.spatial_template import TemplateSpatialModel

gammapy = pytest.mark.gammapy

# (geometry, with energy axis?) of the templates written by the tests
TEMPLATES = {
    "car-galactic-2d": (
        dict(skydir=(184.55, -5.78), binsz=0.1, npix=(24, 17), proj="CAR", frame="galactic"),
        False,
    ),
    "tan-icrs-2d": (dict(skydir=(83.63, 22.01), binsz=0.05, npix=(21, 26), proj="TAN", frame="icrs"), False),
    "car-galactic-3d": (
        dict(skydir=(0.3, -0.2), binsz=0.2, npix=(15, 12), proj="CAR", frame="galactic"),
        True,
    ),
    "tan-icrs-3d": (dict(skydir=(266.4, -28.94), binsz=0.1, npix=(14, 19), proj="TAN", frame="icrs"), True),
}


def template_data(shape, seed, dtype, nan=False):
    """Positive structure with zeros, a negative pixel and optionally a NaN (as real templates have)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape[-2:]
    y, x = np.mgrid[:ny, :nx]
    blob = np.exp(-((x - nx / 3) ** 2 + (y - ny / 2) ** 2) / 8.0)
    data = np.broadcast_to(blob, shape) * rng.uniform(0.5, 2.0, shape) * 1e-3
    data = np.array(data, dtype=dtype)
    data[..., 0, 0] = 0.0
    if nan:
        data[..., 2, 3] = np.nan
    data[..., -1, -2] = -1e-5
    data[..., ny // 2, :3] = 0.0
    return data


def write_template(path, name, dtype=np.float32, unit="cm-2 s-1 MeV-1 sr-1", nan=False):
    """A GADF map file, written with astropy only."""
    kwargs, energy = TEMPLATES[name]
    axes = [MapAxis.from_energy_bounds(0.05, 50, 5, unit="TeV", name="energy_true")] if energy else []
    geom = WcsGeom.create(axes=axes, **kwargs)
    data = template_data(geom.data_shape, seed=len(name), dtype=dtype, nan=nan)
    header = geom.to_header()
    if unit:
        header["BUNIT"] = unit
    hdus = [fits.PrimaryHDU(data=data, header=header)]
    if axes:
        hdus[0].header["BANDSHDU"] = "BANDS"
        hdus.append(axes_to_table_hdu(axes))
    filename = path / f"{name}.fits"
    fits.HDUList(hdus).writeto(filename)
    return filename, geom, data


def sample_coords(geom, n=3000, seed=1):
    """Points over the map and half a map beyond it (inside, on the border, outside)."""
    rng = np.random.default_rng(seed)
    nx, ny = geom.npix
    x = rng.uniform(-3, nx + 2, n)
    y = rng.uniform(-3, ny + 2, n)
    # on pixel centres, and just inside / outside the half-pixel boundary of the map
    eps = 1e-7
    border_x = [-0.5 + eps, -0.5 - eps, nx - 0.5 - eps, nx - 0.5 + eps, 0.0, nx - 1.0, 3.0, 4.0]
    border_y = [1.0, 2.0, 1.0, 2.0, -0.5 + eps, ny - 0.5 - eps, -0.5 - eps, ny - 0.5 + eps]
    xs = np.concatenate([x, np.arange(nx), border_x])
    ys = np.concatenate([y, np.full(nx, (ny - 1) / 2), border_y])
    return geom.pix_to_world(xs, ys)


def energies(n, seed=2):
    rng = np.random.default_rng(seed)
    return np.exp(rng.uniform(np.log(0.02), np.log(120.0), n))  # TeV, beyond the axis on both sides


def gammapy_values(ref, lon, lat, energy=None, **shift):
    params = {"lon_0": ref.lon_0.quantity, "lat_0": ref.lat_0.quantity}
    params.update({k: v * u.deg for k, v in shift.items()})
    if energy is not None:
        energy = energy * u.TeV
    # Gammapy extrapolates the log values beyond the map before filling with 0: overflows there
    with np.errstate(over="ignore"):
        return ref.evaluate(lon * u.deg, lat * u.deg, energy=energy, **params)


def assert_close_to(values, reference, rtol=1e-8):
    values, reference = np.asarray(values), np.asarray(reference)
    np.testing.assert_array_equal(values == 0, reference == 0)
    nz = reference != 0
    assert nz.sum() > 0.3 * reference.size
    assert np.max(np.abs(values[nz] / reference[nz] - 1)) < rtol


# -- vs Gammapy ------------------------------------------------------------------------------------
@gammapy
@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_template_vs_gammapy(tmp_path, name, normalize, dtype):
    gp_models = pytest.importorskip("gammapy.modeling.models")
    # a NaN pixel is read as 0 when interpolating; normalised, it makes the whole plane NaN (-> 0)
    filename, geom, _ = write_template(tmp_path, name, dtype=dtype, nan=not normalize)
    ref = gp_models.TemplateSpatialModel.read(filename, normalize=normalize)
    model = TemplateSpatialModel.read(filename, normalize=normalize)

    assert model.frame == ref.frame
    assert model.is_energy_dependent == ref.is_energy_dependent
    assert model.evaluation_radius == pytest.approx(ref.evaluation_radius.to_value("deg"), rel=1e-15)
    assert model.evaluation_bin_size_min is None
    assert model.lon_0.frozen and model.lat_0.frozen
    assert model.lon_0.value == ref.lon_0.value and model.lat_0.value == ref.lat_0.value
    assert model.filename == str(filename)
    assert u.Unit(model.unit).is_equivalent(ref.map.unit)
    factor = (1 * ref.map.unit).to_value(model.unit)

    lon, lat = sample_coords(geom)
    energy = energies(lon.size) if model.is_energy_dependent else None
    expected = gammapy_values(ref, lon, lat, energy).value * factor
    assert_close_to(model.evaluate_lonlat(lon, lat, energy), expected)
    # freed position: Gammapy's planar shift of the evaluation point
    shift = {"lon_0": ref.lon_0.value + 0.13, "lat_0": ref.lat_0.value - 0.07}
    expected = gammapy_values(ref, lon, lat, energy, **shift).value * factor
    moved = model.with_values(**shift).unfreeze("lon_0", "lat_0")
    assert_close_to(moved.evaluate_lonlat(lon, lat, energy), expected)
    # the Quantity / SkyCoord interface, coordinates converted to the model frame
    other = "icrs" if model.frame == "galactic" else "galactic"
    coord = SkyCoord(lon, lat, unit="deg", frame=model.frame).transform_to(other)
    out = model(coord, energy=None if energy is None else energy * u.TeV)
    assert out.unit == u.Unit(model.unit)
    with np.errstate(over="ignore"):
        call = ref(
            coord.transform_to(ref.frame).data.lon,
            coord.transform_to(ref.frame).data.lat,
            *([] if energy is None else [energy * u.TeV]),
        )
    assert_close_to(out.value, call.to_value(model.unit))


@gammapy
def test_template_evaluate_geom_vs_gammapy(tmp_path):
    """On another geometry, in another frame (what a dataset does), cube energies at the bin centres."""
    gp_maps = pytest.importorskip("gammapy.maps")
    gp_models = pytest.importorskip("gammapy.modeling.models")
    filename, _, _ = write_template(tmp_path, "car-galactic-3d")
    ref = gp_models.TemplateSpatialModel.read(filename)
    model = TemplateSpatialModel.read(filename)
    kwargs = dict(skydir=(266.6, -28.9), binsz=0.07, npix=(50, 40), proj="TAN", frame="icrs")
    ref_axis = gp_maps.MapAxis.from_energy_bounds(0.03, 80, 7, unit="TeV", name="energy_true")
    ref_geom = gp_maps.WcsGeom.create(axes=[ref_axis], **kwargs)
    geom = WcsGeom.create(
        axes=[MapAxis.from_energy_bounds(0.03, 80, 7, unit="TeV", name="energy_true")], **kwargs
    )
    with np.errstate(over="ignore"):
        expected = ref.evaluate_geom(ref_geom).to_value("sr-1")
    lon, lat = geom.get_coord(frame=model.frame)
    energy = geom.axis("energy_true").center[:, None, None]
    values = eqx.filter_jit(model.evaluate_lonlat)(lon, lat, energy)
    assert values.shape == expected.shape
    assert_close_to(values, expected)


@gammapy
@pytest.mark.data
@pytest.mark.parametrize("normalize", [True, False])
def test_fermi_iem_vs_gammapy(gammapy_data, normalize):
    gp_models = pytest.importorskip("gammapy.modeling.models")
    filename = gammapy_data / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_iem.fits"
    ref = gp_models.TemplateSpatialModel.read(filename, normalize=normalize)
    model = TemplateSpatialModel.read(filename, normalize=normalize)
    assert model.is_energy_dependent and model.frame == "galactic"
    assert model.unit == ("sr-1" if normalize else "cm-2 s-1 TeV-1 sr-1")
    assert model.map_center == (ref.map_center.data.lon.deg, ref.map_center.data.lat.deg)
    factor = (1 * ref.map.unit).to_value(model.unit)
    lon, lat = sample_coords(model.geom, n=4000)
    energy = np.exp(np.random.default_rng(5).uniform(np.log(4e-5), np.log(0.7), lon.size))  # TeV
    expected = gammapy_values(ref, lon, lat, energy).value * factor
    assert_close_to(model.evaluate_lonlat(lon, lat, energy), expected)


# -- behaviour without Gammapy -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tan-icrs-2d", "car-galactic-3d"])
def test_normalisation_and_pixel_centres(tmp_path, name):
    filename, geom, data = write_template(tmp_path, name, dtype=np.float64)
    model = TemplateSpatialModel.read(filename)
    assert model.unit == "sr-1" and model.data.dtype == np.float64 and model.data.dtype.isnative
    integral = np.nansum(model.data * geom.solid_angle(), axis=(-2, -1))
    np.testing.assert_allclose(integral, 1.0, rtol=1e-12)
    # at pixel centres the template returns the (normalised) pixel values; NaN / negative -> 0
    x, y = geom.get_pix()
    lon, lat = geom.pix_to_world(x, y)
    expected = np.where(np.isfinite(model.data) & (model.data > 0), model.data, 0.0)
    if model.is_energy_dependent:
        energy = model.energy_axis.center[:, None, None]
        values = model.evaluate_lonlat(lon, lat, energy)
    else:
        values = model.evaluate_lonlat(lon, lat)
    # (pixel -> sky -> pixel round trips to ~1e-12 pixel; the log slope between pixels is large)
    np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-9, atol=0)
    raw = TemplateSpatialModel.read(filename, normalize=False)
    assert raw.unit == "cm-2 s-1 TeV-1 sr-1"
    np.testing.assert_allclose(raw.data, data * 1e6, rtol=1e-15)


def test_units_and_errors(tmp_path):
    filename, geom, data = write_template(tmp_path, "car-galactic-2d", dtype=np.float64, unit="")
    assert TemplateSpatialModel.read(filename, normalize=False).unit == "sr-1"
    model = TemplateSpatialModel(data * u.Unit("deg-2"), geom, normalize=False)
    assert model.unit == "sr-1"
    np.testing.assert_allclose(model.data, data * (180 / np.pi) ** 2, rtol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        TemplateSpatialModel(data[:-1], geom)
    axis = MapAxis.from_energy_bounds(1, 10, 2, unit="TeV", name="energy")
    with pytest.raises(ValueError, match="energy_true"):
        TemplateSpatialModel(np.ones((2, *data.shape)), geom.to_cube([axis]))
    axis = MapAxis.from_energy_bounds(1000, 10000, 2, unit="GeV", name="energy_true")
    cube = TemplateSpatialModel(np.ones((2, *data.shape)), geom.to_cube([axis]))
    assert cube.energy_axis.unit == "TeV"
    with pytest.raises(ValueError, match="energy"):
        cube.evaluate_lonlat(184.5, -5.7)


@gammapy
def test_nan_pixel_vs_gammapy(tmp_path):
    """A NaN pixel: 0 when not normalised; normalised, Gammapy's sums make the plane NaN, i.e. 0."""
    gp_models = pytest.importorskip("gammapy.modeling.models")
    filename, geom, _ = write_template(tmp_path, "car-galactic-2d", nan=True)
    lon, lat = sample_coords(geom, n=200)
    for normalize in (True, False):
        ref = gp_models.TemplateSpatialModel.read(filename, normalize=normalize)
        values = np.asarray(
            TemplateSpatialModel.read(filename, normalize=normalize).evaluate_lonlat(lon, lat)
        )
        expected = gammapy_values(ref, lon, lat).value * (1 * ref.map.unit).to_value(
            "cm-2 s-1 TeV-1 sr-1" if not normalize else "sr-1"
        )
        if normalize:
            assert np.all(values == 0) and np.all(expected == 0)
        else:
            assert_close_to(values, expected)


def test_position_defaults_and_overrides(tmp_path):
    filename, geom, _ = write_template(tmp_path, "tan-icrs-2d")
    model = TemplateSpatialModel.read(filename)
    assert model.position.separation(geom.center_skydir).deg < 1e-12
    moved = TemplateSpatialModel.read(filename, lon_0=83.5, lat_0="22.1 deg")
    assert float(moved.lon_0.value) == 83.5 and float(moved.lat_0.value) == pytest.approx(22.1)
    assert moved.lon_0.frozen
    # moving the model moves the template
    lon, lat = geom.get_coord()
    v0 = np.asarray(model.evaluate_lonlat(lon, lat))
    shifted = model.with_values(lon_0=float(model.lon_0.value) + 0.1)
    v1 = np.asarray(shifted.evaluate_lonlat(lon + 0.1, lat))
    np.testing.assert_allclose(v1, v0, rtol=1e-9, atol=1e-12 * v0.max())


# -- jit, retracing, gradients ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_3d(tmp_path_factory):
    filename, _, _ = write_template(tmp_path_factory.mktemp("tpl"), "tan-icrs-3d")
    return TemplateSpatialModel.read(filename).unfreeze("lon_0", "lat_0")


def test_jit_equals_eager_and_no_retrace(model_3d):
    lon, lat = sample_coords(model_3d.geom, n=500)
    energy = energies(lon.size)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def f(model, lon, lat, energy):
        return model.evaluate_lonlat(lon, lat, energy)

    eager = np.asarray(model_3d.evaluate_lonlat(lon, lat, energy))
    # XLA fuses differently from op-by-op dispatch: agreement to rounding amplified by the log slopes
    np.testing.assert_allclose(np.asarray(f(model_3d, lon, lat, energy)), eager, rtol=1e-10, atol=0)
    moved = model_3d.with_values(
        lon_0=float(model_3d.lon_0.value) + 0.05, lat_0=float(model_3d.lat_0.value) - 0.02
    )
    jitted = np.asarray(f(moved, lon, lat, energy))
    np.testing.assert_allclose(
        jitted, np.asarray(moved.evaluate_lonlat(lon, lat, energy)), rtol=1e-10, atol=0
    )
    assert not np.allclose(jitted, eager)


def test_gradient_wrt_position(model_3d):
    lon0, lat0 = (float(v) for v in model_3d.position_lonlat)
    points = jnp.asarray(
        [[lon0 + 0.113, lat0 - 0.047], [lon0 - 0.21, lat0 + 0.33], [lon0 + 0.402, lat0 + 0.018]]
    )
    energy = jnp.asarray([0.7, 3.1, 12.0])

    @jax.jit
    def total(position):
        model = model_3d.with_values(lon_0=position[0], lat_0=position[1])
        return jnp.sum(jnp.log(model.evaluate_lonlat(points[:, 0], points[:, 1], energy)))

    p = jnp.asarray([lon0 + 0.01, lat0 - 0.015])
    grad = np.asarray(jax.jit(jax.grad(total))(p))
    h = 1e-6
    fd = [(float(total(p + h * e)) - float(total(p - h * e))) / (2 * h) for e in np.eye(2)]
    assert np.all(np.isfinite(grad)) and np.all(np.abs(grad) > 0)
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
    # outside the map the value is 0 and the gradient is 0, not NaN
    far = jax.grad(
        lambda q: model_3d.with_values(lon_0=q[0], lat_0=q[1]).evaluate_lonlat(lon0 + 30, lat0, 1.0)
    )(p)
    np.testing.assert_array_equal(np.asarray(far), 0.0)


def test_vmap_over_positions(model_3d):
    lon0, lat0 = (float(v) for v in model_3d.position_lonlat)
    offsets = jnp.linspace(-0.2, 0.2, 5)

    def value(d):
        return model_3d.with_values(lon_0=lon0 + d).evaluate_lonlat(lon0 + 0.1, lat0, 2.0)

    np.testing.assert_allclose(
        np.asarray(jax.vmap(value)(offsets)), np.array([float(value(d)) for d in offsets]), rtol=1e-10
    )
