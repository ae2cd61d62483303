"""MapDataset: FITS I/O, npred chain, Cash statistic, sufficient statistics, gradients, against Gammapy 2.1.

Reference numbers (Gammapy 2.1):

- ``fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits`` read with ``name="Fermi-LAT"`` and the
  shipped ``Fermi-LAT-3FHL_models.yaml``: ``stat_sum = -12756.57415532529``, total
  ``npred = 2977.7871536748385``. jaxgamma gives -12756.574057715607 (7.7e-9 relative) and
  2977.7869197134 (7.9e-8): Gammapy convolves the PSF in float32 by FFT, whose round-off
  (2.7e-8 of the PSF-convolved spatial map) is the whole difference.
- ``cta-1dc-gc-reduced/stacked.fits.gz`` with ``mask_fit = energy_mask(energy_min=0.3 TeV)``, a
  point source at (l, b) = (-0.05, -0.05) deg with ECPL(index 2.3, amplitude 2.8e-12 cm-2 s-1 TeV-1,
  reference 1 TeV, lambda 0.02 TeV-1) and a FoV background norm of 1.3:
  ``stat_sum = 180488.9500708148`` (jaxgamma 180488.9501610, 5.0e-10), ``npred = 141153.0374894847``.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets.map import BACKGROUND_MIN_REDUCED, MapDataset, MapDatasetPlan
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.io.models import read_models
from jaxgamma.likelihood import make_stat_function
from jaxgamma.models import (
    FoVBackgroundModel,
    Models,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
)
from jaxgamma.models import spatial as sp
from jaxgamma.models.spectral import ExpCutoffPowerLawSpectralModel

FERMI_FILE = "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"
FERMI_MODELS = "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"
CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"
FERMI_STAT = -12756.57415532529
FERMI_NPRED = 2977.7871536748385
CTA_STAT = 180488.9500708148
CTA_NPRED = 141153.0374894847


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fermi(data_dir: Path) -> MapDataset:
    return MapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")


@pytest.fixture(scope="module")
def fermi_models(data_dir: Path) -> Models:
    return read_models(data_dir / FERMI_MODELS)


@pytest.fixture(scope="module")
def cta(data_dir: Path) -> MapDataset:
    dataset = MapDataset.read(data_dir / CTA_FILE)
    return dataset.replace(mask_fit=dataset.energy_mask(energy_min=0.3 * u.TeV))


def cta_source(lon: float = -0.05, lat: float = -0.05) -> SkyModel:
    spectral = ExpCutoffPowerLawSpectralModel(
        index=2.3, amplitude="2.8e-12 cm-2 s-1 TeV-1", reference="1 TeV", lambda_="0.02 TeV-1"
    )
    return SkyModel(spectral, sp.PointSpatialModel(lon_0=lon, lat_0=lat, frame="galactic"), name="gc")


@pytest.fixture(scope="module")
def cta_models() -> Models:
    background = FoVBackgroundModel(
        dataset_name="stacked", spectral_model=PowerLawNormSpectralModel(norm=1.3)
    )
    return Models([cta_source(), background])


@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


def with_background_norm(models: Models, dataset_name: str, **values: float) -> Models:
    bkg = models[f"{dataset_name}-bkg"]
    spectral = bkg.spectral_model.with_values(**values)
    new = FoVBackgroundModel(
        dataset_name=dataset_name, spectral_model=spectral, spatial_model=bkg.spatial_model
    )
    return models.replace(bkg.name, new)


def unfreeze_position(models: Models, name: str) -> Models:
    sky = models[name]
    return models.replace(name, sky.replace(spatial_model=sky.spatial_model.unfreeze("lon_0", "lat_0")))


# -- reference numbers -----------------------------------------------------------------------------------
def test_fermi_reference(fermi: MapDataset, fermi_models: Models):
    stat = fermi.stat_sum(fermi_models)
    npred = fermi.npred(fermi_models)
    assert stat == pytest.approx(FERMI_STAT, rel=1e-7)
    assert npred.sum() == pytest.approx(FERMI_NPRED, rel=1e-7)
    assert npred.shape == fermi.data_shape
    plan = fermi.plan(fermi_models)
    assert plan.positions["Crab Nebula"] == pytest.approx((83.63310241699219, 22.019899368286133))
    (ev,) = plan.evaluators
    assert ev.kind == "point" and ev.psf_stage == "true"
    assert ev.psf_width == pytest.approx(4.7)
    assert ev.shape == (40, 49)  # Gammapy's exposure cutout: 4.9 deg, odd, trimmed to the map


@pytest.mark.slow
def test_cta_reference(cta: MapDataset, cta_models: Models):
    plan = cta.plan(cta_models)
    stat = float(jax.jit(lambda p, m: p.stat_sum(m))(plan, cta_models))
    assert stat == pytest.approx(CTA_STAT, rel=1e-6)
    assert stat == pytest.approx(CTA_STAT, rel=1e-8)  # measured: 5.0e-10
    npred = np.asarray(jax.jit(lambda p, m: p.npred(m))(plan, cta_models))
    assert npred.sum() == pytest.approx(CTA_NPRED, rel=1e-8)
    # the statistic touches the cutout pixels only: 47 x 47 of 500 x 400
    assert plan.reduced and plan.active_pixels.size == 47 * 47
    brute = float(jax.jit(lambda p, m: p.stat_sum_brute_force(m))(plan, cta_models))
    assert stat == pytest.approx(brute, rel=1e-12)


# -- sufficient statistics ---------------------------------------------------------------------------------
def synthetic_dataset(seed: int = 0, background: bool = True, nan_bin: bool = False) -> MapDataset:
    """A small map dataset without IRFs, whose background has zero, negative and tiny bins (and a
    NaN bin, with ``nan_bin``)."""
    rng = np.random.default_rng(seed)
    energy = MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 4, name="energy")
    energy_true = MapAxis.from_energy_bounds("0.08 TeV", "12 TeV", 5, name="energy_true")
    geom = WcsGeom.create(npix=(60, 50), binsz=0.05, frame="galactic", skydir=(10.0, 1.0), axes=[energy])
    shape = geom.data_shape
    bkg = rng.uniform(0.5, 3.0, size=shape)
    bkg[0, :3, :] = 0.0
    bkg[1, 4, :5] = -0.2
    bkg[2, 10, 10:20] = 1e-30
    if nan_bin:
        bkg[3, 45, 50] = np.nan
    counts = rng.poisson(np.clip(np.nan_to_num(bkg), 0, None) + 0.3).astype(float)
    exposure = np.full((energy_true.nbin, *geom.data_shape_image), 1e10) * rng.uniform(
        0.8, 1.2, size=(1, 50, 60)
    )
    mask_safe = np.ones(shape, dtype=bool)
    mask_safe[:, :, :2] = False
    return MapDataset(
        geom=geom,
        counts=counts,
        background=bkg if background else None,
        exposure=exposure,
        energy_axis_true=energy_true,
        mask_safe=mask_safe,
        name="synthetic",
    )


def synthetic_models(with_background: bool = True) -> Models:
    models = [
        SkyModel(
            PowerLawSpectralModel(index=2.4, amplitude="3e-11 cm-2 s-1 TeV-1"),
            sp.PointSpatialModel(lon_0=10.21, lat_0=0.93, frame="galactic"),
            name="point",
        ),
        SkyModel(
            PowerLawSpectralModel(index=2.1, amplitude="2e-11 cm-2 s-1 TeV-1"),
            sp.GaussianSpatialModel(lon_0=9.43, lat_0=1.52, sigma=0.08, frame="galactic"),
            name="gauss",
        ),
    ]
    if with_background:
        models.append(
            FoVBackgroundModel(
                dataset_name="synthetic", spectral_model=PowerLawNormSpectralModel(norm=1.1, tilt=0.1)
            )
        )
    return Models(models)


def test_sufficient_statistics_equal_brute_force():
    dataset = synthetic_dataset(nan_bin=True)
    models = synthetic_models()
    plan = dataset.plan(models)
    assert plan.reduced
    assert 0 < plan.active_pixels.size < 50 * 60
    # the zero, negative, tiny and NaN-free low backgrounds outside the cutouts stay explicit
    assert plan.explicit_counts.size > 0
    assert np.all(~(plan.explicit_background >= BACKGROUND_MIN_REDUCED))
    full = dataset.plan(models, reduce=False)
    assert not full.reduced and full.active_pixels.size == 50 * 60
    stat = jax.jit(lambda p, m: p.stat_sum(m))
    brute = jax.jit(lambda p, m: p.stat_sum_brute_force(m))
    for norm in (1.1, 0.7, 2.5):
        m = with_background_norm(models, "synthetic", norm=norm)
        reduced, reference = float(stat(plan, m)), float(brute(plan, m))
        assert np.isnan(reduced) == np.isnan(reference)
    # NaN background bins make the statistic NaN, as in Gammapy; drop them from the mask
    mask_fit = np.isfinite(dataset.background)
    dataset = dataset.replace(mask_fit=mask_fit)
    plan, full = dataset.plan(models), dataset.plan(models, reduce=False)
    for norm in (1.1, 0.7, 2.5):
        m = with_background_norm(models, "synthetic", norm=norm)
        reduced = float(stat(plan, m))
        assert np.isfinite(reduced)
        assert reduced == pytest.approx(float(brute(plan, m)), rel=1e-12)
        assert reduced == pytest.approx(float(stat(full, m)), rel=1e-12)
    # gradients agree too
    grad = jax.jit(lambda f, x: jax.grad(f)(x))
    fun, x0, _ = make_stat_function([dataset], m, plans=(plan,))
    fun_full, _, _ = make_stat_function([dataset], m, plans=(full,))
    np.testing.assert_allclose(grad(fun, x0), grad(fun_full, x0), rtol=1e-9)


def test_no_reduction_without_background_or_with_spatial_norm():
    dataset = synthetic_dataset(background=False)
    plan = dataset.plan(synthetic_models(with_background=False))
    assert not plan.reduced
    dataset = synthetic_dataset()
    spatial_norm = sp.ConstantSpatialModel(value=1.0)
    models = synthetic_models(with_background=False) + FoVBackgroundModel(
        dataset_name="synthetic",
        spectral_model=PowerLawNormSpectralModel(norm=1.2),
        spatial_model=spatial_norm,
    )
    plan = dataset.plan(models)
    assert not plan.reduced
    reference = dataset.plan(synthetic_models())
    same = with_background_norm(synthetic_models(), "synthetic", norm=1.2, tilt=0.0)
    stat = jax.jit(lambda p, m: p.stat_sum(m))
    assert float(stat(plan, models)) == pytest.approx(float(stat(reference, same)), rel=1e-12)


def test_jit_equals_eager_and_no_retrace():
    dataset = synthetic_dataset()
    models = synthetic_models()
    plan = dataset.plan(models)
    with jax.disable_jit():
        eager = float(plan.stat_sum(models))
    traced = eqx.filter_jit(eqx.debug.assert_max_traces(lambda p, m: p.stat_sum(m), max_traces=1))
    assert float(traced(plan, models)) == pytest.approx(eager, rel=1e-13)
    for index in (2.0, 2.6):
        changed = models.replace(
            "point",
            models["point"].replace(spectral_model=models["point"].spectral_model.with_values(index=index)),
        )
        moved = changed["gauss"].spatial_model.with_values(lon_0=9.44, sigma=0.09)
        changed = changed.replace("gauss", changed["gauss"].replace(spatial_model=moved))
        traced(plan, changed)


# -- gradients ---------------------------------------------------------------------------------------------
def _check_gradient(fun, x0: np.ndarray, names: tuple[str, ...], steps: dict[str, float], rtol: float = 1e-4):
    value_and_grad = jax.jit(lambda f, x: jax.value_and_grad(f)(x))
    _, grad = value_and_grad(fun, jnp.asarray(x0))
    grad = np.asarray(grad)
    for i, name in enumerate(names):
        h = next((v for k, v in steps.items() if name.endswith(k)), 1e-5 * abs(x0[i]) or 1e-6)
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        fd = (float(fun(jnp.asarray(xp))) - float(fun(jnp.asarray(xm)))) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=rtol, abs=1e-6 * abs(fd) + 1e-9), name


def _pixel_fraction(dataset: MapDataset, plan: MapDatasetPlan, name: str) -> tuple[float, float]:
    lon, lat = plan.positions[name]
    frame = next(e.frame for e in plan.evaluators if e.model_name == name)
    x, y = dataset.geom.world_to_pix(lon, lat, frame=frame)
    return float(x % 1), float(y % 1)


def test_fermi_gradients(fermi: MapDataset, fermi_models: Models):
    models = unfreeze_position(fermi_models, "Crab Nebula")
    fun, x0, names = make_stat_function([fermi], models)
    assert names[-3:] == (
        "Crab Nebula.spatial.lon_0",
        "Crab Nebula.spatial.lat_0",
        "Fermi-LAT-bkg.spectral.norm",
    )
    # the bilinear weights have kinks at pixel centres: the position must be well inside a pixel
    fx, fy = _pixel_fraction(fermi, fermi.plan(models), "Crab Nebula")
    assert 0.05 < fx < 0.95 and 0.05 < fy < 0.95
    _check_gradient(fun, x0, names, {"lon_0": 1e-4, "lat_0": 1e-4})


@pytest.mark.slow
def test_cta_gradients(cta: MapDataset):
    # (-0.05, -0.05) is exactly a pixel centre (a kink of the bilinear weights): move off it
    background = FoVBackgroundModel(
        dataset_name="stacked", spectral_model=PowerLawNormSpectralModel(norm=1.3)
    )
    models = unfreeze_position(Models([cta_source(-0.0537, -0.0461), background]), "gc")
    fun, x0, names = make_stat_function([cta], models)
    fx, fy = _pixel_fraction(cta, cta.plan(models), "gc")
    assert 0.05 < fx < 0.95 and 0.05 < fy < 0.95
    assert len(names) == 6
    _check_gradient(fun, x0, names, {"lon_0": 2e-4, "lat_0": 2e-4})


def test_extended_gradients():
    dataset = synthetic_dataset()
    models = synthetic_models()
    gauss = models["gauss"]
    models = models.replace(
        "gauss", gauss.replace(spatial_model=gauss.spatial_model.unfreeze("lon_0", "lat_0"))
    )
    fun, x0, names = make_stat_function([dataset], models)
    assert "gauss.spatial.sigma" in names
    _check_gradient(fun, x0, names, {"lon_0": 1e-4, "lat_0": 1e-4, "sigma": 1e-5})


# -- live comparisons with Gammapy ----------------------------------------------------------------------------
POSITION = {"lon_0": 184.4, "lat_0": -5.9, "frame": "galactic"}
FERMI_SPATIAL = {
    "point": ("PointSpatialModel", {}),
    "gauss": ("GaussianSpatialModel", {"sigma": 0.15}),  # oversampled x3
    "gauss_elongated": ("GaussianSpatialModel", {"sigma": 0.3, "e": 0.6, "phi": 30.0}),  # x2
    "disk": ("DiskSpatialModel", {"r_0": 0.4}),  # x3, inner cutout
    "shell": ("ShellSpatialModel", {"radius": 0.3, "width": 0.2}),
    "constant": ("ConstantSpatialModel", {"value": 1.0}),  # global mode
    "constant_flux": ("ConstantFluxSpatialModel", {}),
    "none": (None, {}),
}


def _both_models(gp, kind: str, params: dict, position: dict | None):
    from gammapy.modeling import models as gm

    units = {
        "sigma": "deg",
        "r_0": "deg",
        "phi": "deg",
        "radius": "deg",
        "width": "deg",
        "lon_0": "deg",
        "lat_0": "deg",
        "value": "sr-1",
    }
    spectral = PowerLawSpectralModel(index=2.2, amplitude="1e-11 cm-2 s-1 TeV-1")
    g_spectral = gm.PowerLawSpectralModel(index=2.2, amplitude="1e-11 cm-2 s-1 TeV-1")
    if kind is None:
        return SkyModel(spectral, name="m"), gm.SkyModel(g_spectral, name="m")
    kwargs = dict(params)
    if kind not in ("ConstantSpatialModel", "ConstantFluxSpatialModel") and position is not None:
        kwargs.update(position)
    ours = getattr(sp, kind)(**kwargs)
    g_kwargs = {k: (f"{v} {units[k]}" if k in units else v) for k, v in kwargs.items()}
    theirs = getattr(gm, kind)(**g_kwargs)
    return SkyModel(spectral, ours, name="m"), gm.SkyModel(g_spectral, theirs, name="m")


def _compare_npred(dataset: MapDataset, g_dataset, ours: SkyModel, theirs, rtol_max: float = 1e-6):
    g_dataset.models = [theirs]
    reference = g_dataset.npred_signal().data
    npred = dataset.npred_signal(Models([ours]))
    assert npred.shape == reference.shape
    np.testing.assert_allclose(npred, reference, rtol=0, atol=rtol_max * reference.max())
    assert npred.sum() == pytest.approx(reference.sum(), rel=3e-7)


@pytest.mark.gammapy
@pytest.mark.parametrize("label", list(FERMI_SPATIAL))
def test_fermi_npred_per_model_vs_gammapy(gp, fermi: MapDataset, data_dir: Path, label: str):
    from gammapy.datasets import MapDataset as GMapDataset

    g_dataset = GMapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    kind, params = FERMI_SPATIAL[label]
    ours, theirs = _both_models(gp, kind, params, POSITION)
    _compare_npred(fermi, g_dataset, ours, theirs)
    if kind in ("GaussianSpatialModel", "DiskSpatialModel"):
        (ev,) = fermi.plan(Models([ours])).evaluators
        assert ev.factor > 1 and ev.inner_slices is not None


@pytest.mark.gammapy
def test_fermi_template_vs_gammapy(gp, fermi: MapDataset, data_dir: Path):
    """The energy-dependent Fermi diffuse template (local mode over the whole map)."""
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling import models as gm

    from jaxgamma.models.spatial_template import TemplateSpatialModel

    path = data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_iem.fits"
    ours = SkyModel(
        PowerLawNormSpectralModel(norm=1.1), TemplateSpatialModel.read(path, normalize=False), name="m"
    )
    theirs = gm.SkyModel(
        gm.PowerLawNormSpectralModel(norm=1.1), gm.TemplateSpatialModel.read(path, normalize=False), name="m"
    )
    g_dataset = GMapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    _compare_npred(fermi, g_dataset, ours, theirs)


@pytest.mark.gammapy
@pytest.mark.slow
def test_cta_npred_vs_gammapy(gp, cta: MapDataset, cta_plain: Path):
    from gammapy.datasets import MapDataset as GMapDataset

    g_dataset = GMapDataset.read(cta_plain)
    cases = [
        ("GaussianSpatialModel", {"sigma": 0.05}, {"lon_0": 0.2, "lat_0": 0.1, "frame": "galactic"}),  # x2
        ("DiskSpatialModel", {"r_0": 0.1}, {"lon_0": 0.2, "lat_0": 0.1, "frame": "galactic"}),  # x3
        ("PointSpatialModel", {}, {"lon_0": 0.3, "lat_0": 3.97, "frame": "galactic"}),  # trimmed at the edge
        ("PointSpatialModel", {}, {"lon_0": 266.3, "lat_0": -28.9, "frame": "icrs"}),  # other frame
        ("GaussianSpatialModel", {"sigma": 0.1}, {"lon_0": -0.4, "lat_0": -3.9, "frame": "galactic"}),
    ]
    for kind, params, position in cases:
        ours, theirs = _both_models(gp, kind, params, position)
        _compare_npred(cta, g_dataset, ours, theirs)


@pytest.mark.gammapy
def test_info_dict_vs_gammapy(gp, fermi: MapDataset, fermi_models: Models, data_dir: Path):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling.models import Models as GModels

    g_dataset = GMapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    g_dataset.models = GModels.read(data_dir / FERMI_MODELS)
    reference = g_dataset.info_dict()
    info = fermi.info_dict(fermi_models)
    for key in ("counts", "n_bins", "n_fit_bins", "stat_type"):
        assert info[key] == reference[key], key
    for key in ("excess", "sqrt_ts", "background", "npred", "npred_background", "npred_signal", "stat_sum"):
        assert info[key] == pytest.approx(float(reference[key]), rel=1e-6), key
    assert info["exposure_min"] == pytest.approx(reference["exposure_min"].to_value("cm2 s"), rel=1e-12)
    assert info["exposure_max"] == pytest.approx(reference["exposure_max"].to_value("cm2 s"), rel=1e-12)
    text = fermi.summary(fermi_models)
    assert "Fit statistic value (-2 log(L)) : -12756.57" in text
    assert "Predicted background counts     : 357.52" in text
    assert "Number of fit bins              : 8280" in text
    assert str(fermi).startswith("MapDataset\n----------")


@pytest.mark.gammapy
def test_energy_mask_vs_gammapy(gp, cta: MapDataset, cta_plain: Path):
    from gammapy.datasets import MapDataset as GMapDataset

    geom = GMapDataset.read(cta_plain).counts.geom
    for emin, emax in ((0.3 * u.TeV, None), (None, "3 TeV"), ("251.18864315095797 GeV", 10.0)):
        expected = geom.energy_mask(
            energy_min=None if emin is None else u.Quantity(emin),
            energy_max=None if emax is None else u.Quantity(emax, "TeV"),
        ).data
        np.testing.assert_array_equal(cta.energy_mask(emin, emax), expected)


# -- I/O -------------------------------------------------------------------------------------------------------
def test_write_read_round_trip(fermi: MapDataset, fermi_models: Models, tmp_path: Path):
    path = tmp_path / "fermi.fits"
    fermi.write(path)
    back = MapDataset.read(path)
    assert back.name == "Fermi-LAT"
    assert back.geom == fermi.geom and back.energy_axis_true == fermi.energy_axis_true
    for field in ("counts", "exposure", "background", "mask_safe"):
        np.testing.assert_array_equal(getattr(back, field), getattr(fermi, field))
        assert getattr(back, field).dtype == getattr(fermi, field).dtype
    assert back.mask_fit is None
    np.testing.assert_array_equal(back.psf.data, fermi.psf.data)
    np.testing.assert_array_equal(back.edisp.data, fermi.edisp.data)
    assert back.gti.start.size == 0
    assert back.stat_sum(fermi_models) == fermi.stat_sum(fermi_models)


@pytest.mark.slow
def test_round_trip_cta_gzip(cta: MapDataset, cta_models: Models, tmp_path: Path):
    """GTI, META_TABLE, MASK_FIT and gzip compression."""
    path = tmp_path / "stacked.fits.gz"
    cta.write(path)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    back = MapDataset.read(path)
    for field in ("counts", "exposure", "background", "mask_safe", "mask_fit"):
        np.testing.assert_array_equal(getattr(back, field), getattr(cta, field))
    np.testing.assert_array_equal(back.gti.start, cta.gti.start)
    assert (back.gti.mjdrefi, back.gti.timesys) == (51544.0, "utc")
    assert list(back.meta_table["OBS_ID"][0]) == [110380, 111140, 111159]
    assert back.meta_dict["CREATOR"] == "Gammapy 2.1"
    stat = jax.jit(lambda p, m: p.stat_sum(m))
    assert float(stat(back.plan(cta_models), cta_models)) == float(stat(cta.plan(cta_models), cta_models))


@pytest.mark.gammapy
def test_gammapy_reads_what_we_write(
    gp, fermi: MapDataset, fermi_models: Models, data_dir: Path, tmp_path: Path
):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling.models import Models as GModels

    mask_fit = fermi.energy_mask(energy_min="20 GeV")
    dataset = fermi.replace(mask_fit=mask_fit)
    path = tmp_path / "ours.fits"
    dataset.write(path)
    g_dataset = GMapDataset.read(path)
    assert g_dataset.name == "Fermi-LAT"
    np.testing.assert_array_equal(g_dataset.mask_fit.data, mask_fit)
    np.testing.assert_array_equal(g_dataset.exposure.quantity.to_value("cm2 s"), fermi.exposure)
    g_dataset.models = GModels.read(data_dir / FERMI_MODELS)
    original = GMapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    original.mask_fit = original.counts.geom.energy_mask(energy_min=20 * u.GeV)
    original.models = GModels.read(data_dir / FERMI_MODELS)
    assert g_dataset.stat_sum() == pytest.approx(original.stat_sum(), rel=1e-12)
    # 1.8e-7 relative (3.7e-4 absolute): exactly the first-order effect of Gammapy's float32 FFT
    # noise in its npred map (up to 5.8e-6 counts in faint pixels), the whole difference
    assert dataset.stat_sum(fermi_models) == pytest.approx(original.stat_sum(), rel=1e-6)


def test_overwrite_refused(fermi: MapDataset, tmp_path: Path):
    path = tmp_path / "fermi.fits"
    fermi.write(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        fermi.write(path)
    assert path.read_bytes() == before
    fermi.replace(counts=np.zeros(fermi.data_shape)).write(path, overwrite=True)
    assert MapDataset.read(path).counts.sum() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["fermi.fits"]  # no temporary left behind


def _hdulist(data_dir: Path) -> fits.HDUList:
    with fits.open(data_dir / FERMI_FILE) as hdulist:
        return fits.HDUList([h.copy() for h in hdulist])


def test_bad_inputs(data_dir: Path, tmp_path: Path):
    text = tmp_path / "not_fits.fits"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"not_fits\.fits"):
        MapDataset.read(text)
    with pytest.raises(FileNotFoundError):
        MapDataset.read(tmp_path / "missing.fits")

    hdulist = fits.HDUList([fits.PrimaryHDU()])
    with pytest.raises(ValueError, match="no COUNTS"):
        MapDataset.from_hdulist(hdulist, path="empty.fits")

    hdulist = _hdulist(data_dir)
    del hdulist["COUNTS_BANDS"]
    with pytest.raises(ValueError, match=r"x.fits.*'COUNTS'.*COUNTS_BANDS"):
        MapDataset.from_hdulist(hdulist, path="x.fits")

    hdulist = _hdulist(data_dir)
    hdulist["EXPOSURE"].header["BUNIT"] = "TeV"
    with pytest.raises(ValueError, match=r"'EXPOSURE'.*'TeV'"):
        MapDataset.from_hdulist(hdulist, path="x.fits")

    hdulist = _hdulist(data_dir)
    hdulist["BACKGROUND"].data = hdulist["BACKGROUND"].data[:, :-1]
    with pytest.raises(ValueError, match=r"'BACKGROUND'.*shape"):
        MapDataset.from_hdulist(hdulist, path="x.fits")

    hdulist = _hdulist(data_dir)
    columns = [c for c in hdulist["MASK_SAFE_BANDS"].columns if c.name != "E_MAX"]
    hdulist["MASK_SAFE_BANDS"] = fits.BinTableHDU.from_columns(
        columns, header=hdulist["MASK_SAFE_BANDS"].header, name="MASK_SAFE_BANDS"
    )
    with pytest.raises(ValueError, match=r"'MASK_SAFE'"):
        MapDataset.from_hdulist(hdulist, path="x.fits")

    hdulist = _hdulist(data_dir)
    with pytest.raises(ValueError, match="PSF"):
        del hdulist["PSF_BANDS"]
        MapDataset.from_hdulist(hdulist, path="x.fits")

    dataset = MapDataset.from_hdulist(_hdulist(data_dir))
    with pytest.raises(ValueError, match="shape"):
        dataset.replace(counts=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="boolean"):
        dataset.replace(mask_fit=np.ones(dataset.data_shape))
    with pytest.raises(ValueError, match=r"exposure.*convert"):
        dataset.replace(exposure=np.ones(dataset.exposure.shape) * u.TeV)
    with pytest.raises(TypeError, match="unknown fields"):
        dataset.replace(foo=1)


# -- other behaviour --------------------------------------------------------------------------------------------
def test_fake_is_seeded_poisson(fermi: MapDataset, fermi_models: Models):
    faked = fermi.fake(fermi_models, seed=42)
    expected = np.random.RandomState(42).poisson(fermi.npred(fermi_models))
    np.testing.assert_array_equal(faked.counts, expected)
    np.testing.assert_array_equal(fermi.fake(fermi_models, seed=42).counts, faked.counts)
    assert faked.name == fermi.name
    np.testing.assert_array_equal(faked.exposure, fermi.exposure)


def test_needs_update(fermi: MapDataset, fermi_models: Models):
    plan = fermi.plan(fermi_models)
    assert not plan.needs_update(fermi_models)
    crab = fermi_models["Crab Nebula"]

    def moved(dlon: float) -> Models:
        spatial = crab.spatial_model.with_values(lon_0=83.63310241699219 + dlon)
        return fermi_models.replace("Crab Nebula", crab.replace(spatial_model=spatial))

    assert not plan.needs_update(moved(0.05))  # within r_eval + 0.1 deg (a point: 0.1 deg)
    assert plan.needs_update(moved(0.2))
    spectral = crab.spectral_model.with_values(alpha=2.0)
    assert not plan.needs_update(fermi_models.replace("Crab Nebula", crab.replace(spectral_model=spectral)))
    assert plan.needs_update(Models([fermi_models["Fermi-LAT-bkg"]]))  # a source removed
    assert plan.needs_update(Models([crab]))  # the background model removed
    other = Models([crab.replace(datasets_names=["other"]), fermi_models["Fermi-LAT-bkg"]])
    assert plan.needs_update(other)
    # a global model never moves
    constant = SkyModel(PowerLawSpectralModel(), sp.ConstantSpatialModel(), name="iso")
    plan = fermi.plan(Models([constant]))
    assert plan.positions == {"iso": None}
    assert not plan.needs_update(Models([constant]))


def test_model_outside_does_not_contribute(fermi: MapDataset):
    far = SkyModel(PowerLawSpectralModel(), sp.PointSpatialModel(lon_0=30.0, lat_0=40.0), name="far")
    plan = fermi.plan(Models([far]))
    assert plan.evaluators == () and plan.skipped_model_names == ("far",)
    assert not plan.needs_update(Models([far]))  # as Gammapy: a model that does not contribute is not updated
    assert fermi.npred_signal(Models([far])).sum() == 0


def test_apply_irf_flags(fermi: MapDataset):
    position = SkyCoord(184.4, -5.9, unit="deg", frame="galactic")
    base = SkyModel(
        PowerLawSpectralModel(index=2.2, amplitude="1e-11 cm-2 s-1 TeV-1"),
        sp.PointSpatialModel(lon_0=position.l.deg, lat_0=position.b.deg, frame="galactic"),
        name="p",
    )
    full = fermi.npred_signal(Models([base]))
    no_psf = fermi.npred_signal(Models([base.replace(apply_irf={"psf": False})]))
    no_edisp = fermi.npred_signal(Models([base.replace(apply_irf={"edisp": False})]))
    # without PSF the flux sits on the four pixels around the position
    assert np.count_nonzero(no_psf.sum(axis=0)) == 4
    assert no_psf.sum() == pytest.approx(full.sum(), rel=2e-3)
    # the Fermi edisp kernel is diagonal: no change
    np.testing.assert_allclose(no_edisp, full, rtol=1e-12, atol=0)
