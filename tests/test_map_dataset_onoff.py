"""MapDatasetOnOff (WStat on maps) and the stacking of map datasets, against Gammapy 2.1.

Reference setups (numbers measured live against Gammapy 2.1 in the tests marked ``gammapy``):

- the Fermi-LAT 3FHL dataset turned on-off with ``acceptance = 1``, a seeded random
  ``acceptance_off`` in [3, 8] and OFF counts ``Poisson(background x acceptance_off)``, with the
  shipped Crab model: WStat 1929.8337824 (Gammapy) vs 1929.8332021 (jaxgamma), 3.0e-7 relative.
  Gammapy's WStat evaluated on jaxgamma's ``npred_signal`` gives jaxgamma's value to 1e-15: the
  whole difference is Gammapy's float32 FFT convolution noise in ``npred_signal`` (3e-5 counts at
  most, on a 243-count peak).
- a 2 x 2 deg cutout of ``cta-1dc-gc-reduced/stacked.fits.gz`` (made by Gammapy), on-off with rows of
  ``acceptance_off = 0``, a point source and a Gaussian: 46477.725070 vs 46477.725075 (1.2e-10).
- stacking two such cutouts with different safe masks (a circle, an energy threshold): counts,
  masks, PSF and energy-dispersion maps equal Gammapy's exactly, exposure and background to its
  float32 storage (5e-8), and the statistic of the stacked dataset to 1.6e-9.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.io import fits

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets import Datasets
from jaxgamma.datasets.map import (
    MapDataset,
    MapDatasetOnOff,
    MapDatasetOnOffPlan,
    stack_map_datasets,
    stack_map_datasets_onoff,
)
from jaxgamma.io.models import read_models
from jaxgamma.likelihood import make_stat_function
from jaxgamma.models import FoVBackgroundModel, Models, PowerLawNormSpectralModel, SkyModel
from jaxgamma.models import spatial as sp
from jaxgamma.models.spectral import ExpCutoffPowerLawSpectralModel, PowerLawSpectralModel

FERMI_FILE = "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"
FERMI_MODELS = "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"
CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"
ONOFF_HDUS = [
    "PRIMARY",
    "COUNTS",
    "COUNTS_BANDS",
    "EXPOSURE",
    "EXPOSURE_BANDS",
    "EDISP",
    "EDISP_BANDS",
    "EDISP_EXPOSURE",
    "EDISP_EXPOSURE_BANDS",
    "PSF",
    "PSF_BANDS",
    "PSF_EXPOSURE",
    "PSF_EXPOSURE_BANDS",
    "MASK_SAFE",
    "MASK_SAFE_BANDS",
    "GTI",
    "COUNTS_OFF",
    "COUNTS_OFF_BANDS",
    "ACCEPTANCE",
    "ACCEPTANCE_BANDS",
    "ACCEPTANCE_OFF",
    "ACCEPTANCE_OFF_BANDS",
]


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


@pytest.fixture(scope="module")
def fermi(data_dir: Path) -> MapDataset:
    return MapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")


@pytest.fixture(scope="module")
def crab(data_dir: Path) -> Models:
    """The shipped Crab model without the FoV background model (it does not apply on-off)."""
    models = read_models(data_dir / FERMI_MODELS)
    return Models([m for m in models if isinstance(m, SkyModel)])


def synthetic_off(dataset: MapDataset, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    acceptance_off = rng.uniform(3, 8, size=dataset.data_shape)
    counts_off = rng.poisson(dataset.background * acceptance_off).astype(float)
    return acceptance_off, counts_off


@pytest.fixture(scope="module")
def fermi_onoff(fermi: MapDataset) -> MapDatasetOnOff:
    acceptance_off, counts_off = synthetic_off(fermi)
    return MapDatasetOnOff.from_map_dataset(
        fermi, acceptance=1.0, acceptance_off=acceptance_off, counts_off=counts_off, name="Fermi-LAT"
    )


@pytest.fixture(scope="module")
def cta_cutout(gp, cta_plain: Path, tmp_path_factory) -> Path:
    """A 2 x 2 deg cutout of the CTA stacked dataset, made and written by Gammapy."""
    from astropy.coordinates import SkyCoord
    from gammapy.datasets import MapDataset as GMapDataset

    folder = tmp_path_factory.mktemp("cta")
    dataset = GMapDataset.read(cta_plain)
    cutout = dataset.cutout(SkyCoord(0, 0, unit="deg", frame="galactic"), width=2 * u.deg, name="cut")
    path = folder / "cutout.fits"
    cutout.write(path)
    return path


def cta_models() -> Models:
    point = SkyModel(
        ExpCutoffPowerLawSpectralModel(index=2.3, amplitude="2.8e-12 cm-2 s-1 TeV-1", lambda_="0.02 TeV-1"),
        sp.PointSpatialModel(lon_0=-0.05, lat_0=-0.05, frame="galactic"),
        name="pt",
    )
    gauss = SkyModel(
        PowerLawSpectralModel(index=2.5, amplitude="1e-12 cm-2 s-1 TeV-1"),
        sp.GaussianSpatialModel(lon_0=0.4, lat_0=0.1, sigma=0.2, frame="galactic"),
        name="g",
    )
    return Models([point, gauss])


def gammapy_cta_models():
    from gammapy.modeling import models as gm

    return [
        gm.SkyModel(
            gm.ExpCutoffPowerLawSpectralModel(
                index=2.3, amplitude="2.8e-12 cm-2 s-1 TeV-1", lambda_="0.02 TeV-1"
            ),
            gm.PointSpatialModel(lon_0="-0.05 deg", lat_0="-0.05 deg", frame="galactic"),
            name="pt",
        ),
        gm.SkyModel(
            gm.PowerLawSpectralModel(index=2.5, amplitude="1e-12 cm-2 s-1 TeV-1"),
            gm.GaussianSpatialModel(lon_0="0.4 deg", lat_0="0.1 deg", sigma="0.2 deg", frame="galactic"),
            name="g",
        ),
    ]


def cta_off(dataset: MapDataset) -> tuple[np.ndarray, np.ndarray]:
    """A seeded OFF map with two rows of acceptance_off = 0 (alpha = 0 there) and one bin with
    both acceptances 0."""
    rng = np.random.RandomState(3)
    image = rng.uniform(4, 6, size=dataset.geom.data_shape_image)
    acceptance_off = np.broadcast_to(image, dataset.data_shape).copy()
    acceptance_off[:, :2, :] = 0.0
    counts_off = rng.poisson(dataset.background * acceptance_off).astype(float)
    return acceptance_off, counts_off


def both_cta_onoff(path: Path) -> tuple[MapDatasetOnOff, object]:
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.datasets import MapDatasetOnOff as GMapDatasetOnOff
    from gammapy.maps import Map

    ours = MapDataset.read(path)
    acceptance_off, counts_off = cta_off(ours)
    acceptance = np.ones(ours.data_shape)
    acceptance[3, 50, 50] = 0.0
    acceptance_off[3, 50, 50] = 0.0
    on = MapDatasetOnOff.from_map_dataset(
        ours, acceptance=acceptance, acceptance_off=acceptance_off, counts_off=counts_off, name="on"
    )
    g = GMapDataset.read(path)
    geom = g.counts.geom
    g_on = GMapDatasetOnOff.from_map_dataset(
        g,
        acceptance=Map.from_geom(geom, data=acceptance),
        acceptance_off=Map.from_geom(geom, data=acceptance_off),
        counts_off=Map.from_geom(geom, data=counts_off),
        name="on",
    )
    return on, g_on


# -- construction --------------------------------------------------------------------------------------
def test_construction_and_derived_maps(fermi: MapDataset):
    shape = fermi.data_shape
    acceptance_off = np.full(shape, 4.0)
    acceptance_off[0, 0, 0] = 0.0
    on = MapDatasetOnOff(
        geom=fermi.geom, counts=fermi.counts, counts_off=np.ones(shape), acceptance=2.0,
        acceptance_off=acceptance_off, exposure=fermi.exposure, energy_axis_true=fermi.energy_axis_true,
        name="x",
    )  # fmt: skip
    assert on.tag == "MapDatasetOnOff" and on.stat_type == "wstat"
    assert on.acceptance.shape == shape and np.all(on.acceptance == 2.0)
    assert on.alpha[0, 1, 1] == 0.5
    assert on.alpha[0, 0, 0] == np.finfo(float).max  # Gammapy's nan_to_num(2 / 0)
    np.testing.assert_array_equal(on.background, on.alpha * on.counts_off)
    assert not isinstance(on, MapDataset)
    with pytest.raises(ValueError, match="counts_off has shape"):
        MapDatasetOnOff(geom=fermi.geom, counts_off=np.ones((2, 2)))
    with pytest.raises(TypeError):
        MapDatasetOnOff(geom=fermi.geom, background=np.ones(shape))
    # the acceptances are dimensionless
    with pytest.raises(ValueError, match="acceptance"):
        MapDatasetOnOff(geom=fermi.geom, acceptance=1 * u.m)
    # replace() keeps it an on-off dataset
    again = on.replace(counts_off=np.zeros(shape))
    assert isinstance(again, MapDatasetOnOff) and again.counts_off.sum() == 0


def test_missing_off_counts(fermi: MapDataset, crab: Models):
    on = MapDatasetOnOff(geom=fermi.geom, counts=fermi.counts, exposure=fermi.exposure, name="x")
    with pytest.raises(ValueError, match="no OFF counts"):
        on.stat_sum(crab)
    # nothing safe and no OFF counts: statistic 0, as Gammapy
    empty = on.replace(mask_safe=np.zeros(fermi.data_shape, bool))
    assert empty.stat_sum(crab) == 0.0


def test_from_and_to_map_dataset(fermi: MapDataset, data_dir: Path):
    models = read_models(data_dir / FERMI_MODELS)
    on = MapDatasetOnOff.from_map_dataset(fermi, acceptance=1.0, acceptance_off=5.0, models=models)
    # without OFF counts they are npred_background / alpha, the background model folded in
    norm = models["Fermi-LAT-bkg"].spectral_model
    expected = fermi.npred_background(Models([models["Fermi-LAT-bkg"]])) * 5.0
    np.testing.assert_allclose(on.counts_off, expected, rtol=1e-14)
    assert norm is not None
    back = on.to_map_dataset(name="cash")
    assert isinstance(back, MapDataset) and back.name == "cash"
    np.testing.assert_allclose(back.background, on.alpha * on.counts_off, rtol=1e-15)


# -- statistic -----------------------------------------------------------------------------------------
def test_reduced_statistic_equals_brute_force(fermi_onoff: MapDatasetOnOff, crab: Models):
    gauss = SkyModel(
        PowerLawSpectralModel(index=2.2, amplitude="1e-11 cm-2 s-1 TeV-1"),
        sp.GaussianSpatialModel(lon_0=83.0, lat_0=22.5, sigma=0.3, frame="icrs"),
        name="extended",
    )
    for models in (crab, Models([*crab, gauss])):
        plan = fermi_onoff.plan(models)
        assert isinstance(plan, MapDatasetOnOffPlan) and plan.reduced
        if models is crab:  # the Fermi PSF is wide: one point source leaves a few pixels out
            assert plan.active_pixels.size < np.prod(fermi_onoff.geom.data_shape_image)
        reduced = float(plan.stat_sum(models))
        brute = float(plan.stat_sum_brute_force(models))
        full = float(fermi_onoff.plan(models, reduce=False).stat_sum(models))
        assert reduced == pytest.approx(brute, rel=1e-13)
        assert full == pytest.approx(brute, rel=1e-13)
    # a global model makes every pixel active
    constant = SkyModel(PowerLawSpectralModel(), sp.ConstantSpatialModel(), name="iso")
    assert not fermi_onoff.plan(Models([constant])).reduced


def test_jit_grad_and_no_retrace(fermi_onoff: MapDatasetOnOff, crab: Models):
    fun, x0, names = make_stat_function([fermi_onoff], crab)
    assert set(names) == {
        "Crab Nebula.spectral.amplitude",
        "Crab Nebula.spectral.alpha",
        "Crab Nebula.spectral.beta",
    }
    value = float(fun(x0))
    assert value == pytest.approx(fermi_onoff.stat_sum(crab), rel=1e-12)
    grad = jax.jit(lambda f, x: jax.grad(f)(x))(fun, jnp.asarray(x0))
    assert np.all(np.isfinite(np.asarray(grad)))
    for i in range(len(x0)):
        h = 1e-6 * abs(x0[i])
        step = np.zeros_like(x0)
        step[i] = h
        fd = (float(fun(x0 + step)) - float(fun(x0 - step))) / (2 * h)
        assert float(grad[i]) == pytest.approx(fd, rel=1e-4, abs=1e-6 / abs(x0[i]))

    traces = []

    @eqx.filter_jit
    def stat(plan, models):
        traces.append(1)
        return plan.stat_sum(models)

    plan = fermi_onoff.plan(crab)
    sky = crab["Crab Nebula"]
    crab2 = crab.replace("Crab Nebula", sky.replace(spectral_model=sky.spectral_model.with_values(alpha=1.7)))
    first, second = float(stat(plan, crab)), float(stat(plan, crab2))
    assert len(traces) == 1 and first != second
    assert second == pytest.approx(fermi_onoff.stat_sum(crab2), rel=1e-12)


def test_needs_update(fermi_onoff: MapDatasetOnOff, crab: Models):
    plan = fermi_onoff.plan(crab)
    assert not plan.needs_update(crab)
    spatial = crab["Crab Nebula"].spatial_model.with_values(lon_0=85.0)
    moved = crab.replace("Crab Nebula", crab["Crab Nebula"].replace(spatial_model=spatial))
    assert plan.needs_update(moved)
    extra = SkyModel(PowerLawSpectralModel(), sp.PointSpatialModel(lon_0=83, lat_0=22), name="b")
    assert plan.needs_update(Models([*crab, extra]))


def test_fake_is_seeded(fermi_onoff: MapDatasetOnOff, crab: Models):
    a = fermi_onoff.fake(crab, seed=7)
    b = fermi_onoff.fake(crab, seed=7)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.counts_off, b.counts_off)
    assert not np.array_equal(a.counts, fermi_onoff.fake(crab, seed=8).counts)
    # Gammapy's draw order: signal, ON background, OFF counts, from one RandomState
    background = fermi_onoff.npred_background(crab)
    rng = np.random.RandomState(7)
    signal = rng.poisson(np.clip(fermi_onoff.npred_signal(crab), 0, None)).astype(float)
    on = signal + rng.poisson(background)
    with np.errstate(divide="ignore", invalid="ignore"):
        off = rng.poisson(np.nan_to_num(background / fermi_onoff.alpha, posinf=0.0))
    np.testing.assert_array_equal(a.counts, on)
    np.testing.assert_array_equal(a.counts_off, off)
    with pytest.raises(ValueError, match="npred_background has shape"):
        fermi_onoff.fake(crab, npred_background=np.ones(3))


@pytest.mark.gammapy
def test_fermi_onoff_vs_gammapy(
    gp, fermi: MapDataset, fermi_onoff: MapDatasetOnOff, crab: Models, data_dir: Path
):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.datasets import MapDatasetOnOff as GMapDatasetOnOff
    from gammapy.maps import Map
    from gammapy.modeling.models import Models as GModels
    from gammapy.stats import wstat as g_wstat

    g = GMapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    acceptance_off, counts_off = synthetic_off(fermi)
    geom = g.counts.geom
    g_on = GMapDatasetOnOff.from_map_dataset(
        g,
        acceptance=1,
        acceptance_off=Map.from_geom(geom, data=acceptance_off),
        counts_off=Map.from_geom(geom, data=counts_off),
        name="Fermi-LAT",
    )
    g_on.models = [GModels.read(data_dir / FERMI_MODELS)["Crab Nebula"]]
    reference = g_on.stat_sum()
    assert fermi_onoff.stat_sum(crab) == pytest.approx(reference, rel=1e-6)  # 3.0e-7: Gammapy's FFT
    # Gammapy's WStat of our predicted signal is our statistic
    signal = fermi_onoff.npred_signal(crab)
    with np.errstate(all="ignore"):
        stat = np.nan_to_num(
            g_wstat(n_on=g_on.counts.data, n_off=g_on.counts_off.data, alpha=g_on.alpha.data, mu_sig=signal)
        )
    assert stat[g_on.mask.data].sum() == pytest.approx(fermi_onoff.stat_sum(crab), rel=1e-13)
    np.testing.assert_allclose(signal, g_on.npred_signal().data, rtol=0, atol=5e-5)
    np.testing.assert_allclose(fermi_onoff.npred_background(crab), g_on.npred_background().data, atol=5e-5)
    np.testing.assert_allclose(fermi_onoff.npred_off(crab), g_on.npred_off().data, atol=5e-4)
    np.testing.assert_allclose(fermi_onoff.npred(crab), g_on.npred().data, atol=5e-5)

    info, g_info = fermi_onoff.info_dict(crab), g_on.info_dict()
    for key in ("name", "counts", "n_bins", "n_fit_bins", "stat_type", "counts_off"):
        assert info[key] == g_info[key], key
    for key in ("excess", "sqrt_ts", "background", "acceptance", "acceptance_off", "alpha"):
        assert info[key] == pytest.approx(float(g_info[key]), rel=1e-12), key
    for key in ("npred", "npred_background", "npred_signal", "stat_sum"):
        assert info[key] == pytest.approx(float(g_info[key]), rel=1e-6), key
    assert info["exposure_min"] == pytest.approx(g_info["exposure_min"].to_value("cm2 s"), rel=1e-12)
    text = fermi_onoff.summary(crab)
    assert text.startswith("MapDatasetOnOff\n---------------")
    assert "Fit statistic type              : wstat" in text
    assert "Total counts_off                : 1553" in text
    assert f"Acceptance off                  : {np.sum(acceptance_off[g_on.mask_safe.data]):.0f}" in text


@pytest.mark.gammapy
def test_cta_onoff_vs_gammapy(gp, cta_cutout: Path):
    on, g_on = both_cta_onoff(cta_cutout)
    models = cta_models()
    g_on.models = gammapy_cta_models()
    with np.errstate(all="ignore"):  # Gammapy overflows where acceptance_off = 0
        reference = g_on.stat_sum()
        g_signal = g_on.npred_signal().data
        g_background = g_on.npred_background().data
    plan = on.plan(models)
    assert plan.reduced
    assert on.stat_sum(models) == pytest.approx(reference, rel=1e-8)  # 1.2e-10
    assert float(plan.stat_sum_brute_force(models)) == pytest.approx(reference, rel=1e-8)
    np.testing.assert_allclose(on.npred_signal(models), g_signal, rtol=0, atol=2e-5)
    np.testing.assert_allclose(on.npred_background(models), g_background, rtol=0, atol=2e-5)
    # rows of acceptance_off = 0 contribute nothing, as in Gammapy
    assert np.all(on.stat_array(models)[:, :2, :] == 0)


# -- I/O -----------------------------------------------------------------------------------------------
def test_write_read_round_trip(fermi_onoff: MapDatasetOnOff, crab: Models, tmp_path: Path):
    dataset = fermi_onoff.replace(mask_fit=fermi_onoff.energy_mask(energy_min="20 GeV"))
    path = tmp_path / "onoff.fits"
    dataset.write(path)
    with fits.open(path) as hdulist:
        assert [h.name for h in hdulist] == [*ONOFF_HDUS[:15], "MASK_FIT", "MASK_FIT_BANDS", *ONOFF_HDUS[15:]]
    back = MapDatasetOnOff.read(path)
    assert isinstance(back, MapDatasetOnOff) and back.name == "Fermi-LAT"
    for field in (
        "counts",
        "counts_off",
        "acceptance",
        "acceptance_off",
        "exposure",
        "mask_safe",
        "mask_fit",
    ):
        np.testing.assert_array_equal(getattr(back, field), getattr(dataset, field))
    assert back.stat_sum(crab) == dataset.stat_sum(crab)
    # a Cash reader sees the counts and no background
    cash = MapDataset.read(path)
    assert cash.background is None and np.array_equal(cash.counts, dataset.counts)
    with pytest.raises(FileExistsError):
        dataset.write(path)


@pytest.mark.gammapy
def test_gammapy_reads_what_we_write_and_we_read_gammapy(gp, cta_cutout: Path, tmp_path: Path):
    from gammapy.datasets import MapDatasetOnOff as GMapDatasetOnOff

    on, g_on = both_cta_onoff(cta_cutout)
    models = cta_models()
    path = tmp_path / "ours.fits"
    on.write(path)
    g_back = GMapDatasetOnOff.read(path)
    g_back.models = gammapy_cta_models()
    g_on.models = gammapy_cta_models()
    with np.errstate(all="ignore"):
        assert g_back.stat_sum() == pytest.approx(g_on.stat_sum(), rel=1e-14)
    np.testing.assert_array_equal(g_back.counts_off.data, on.counts_off)
    np.testing.assert_array_equal(g_back.acceptance_off.data, on.acceptance_off)

    gp_path = tmp_path / "gammapy.fits"
    g_on.write(gp_path)
    with fits.open(gp_path) as hdulist, fits.open(path) as ours:
        assert [h.name for h in ours] == [h.name for h in hdulist]
    back = MapDatasetOnOff.read(gp_path)
    assert back.name == "on"
    for field in ("counts", "counts_off", "acceptance", "acceptance_off", "mask_safe"):
        np.testing.assert_array_equal(getattr(back, field), getattr(on, field))
    assert back.stat_sum(models) == on.stat_sum(models)


# -- stacking ------------------------------------------------------------------------------------------
def _masks(dataset: MapDataset) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = dataset.geom.get_coord()
    circle = ((lon + 180) % 360 - 180 - 0.3) ** 2 + lat**2 < 0.7**2
    return dataset.mask_safe & circle[None], dataset.mask_safe & dataset.energy_mask(energy_min=0.3 * u.TeV)


def _compare_stacked(ours: MapDataset | MapDatasetOnOff, theirs) -> None:
    np.testing.assert_array_equal(ours.counts, theirs.counts.data)
    np.testing.assert_array_equal(ours.mask_safe, theirs.mask_safe.data)
    # Gammapy stacks into float32 maps
    exposure = theirs.exposure.quantity.to_value("cm2 s")
    np.testing.assert_allclose(ours.exposure, exposure, rtol=0, atol=1e-7 * exposure.max())
    np.testing.assert_allclose(ours.psf.data, theirs.psf.psf_map.data, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        ours.psf.exposure, theirs.psf.exposure_map.quantity.to_value(ours.psf.exposure_unit), rtol=1e-6
    )
    np.testing.assert_allclose(ours.edisp.data, theirs.edisp.edisp_map.data, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        ours.edisp.exposure, theirs.edisp.exposure_map.quantity.to_value(ours.edisp.exposure_unit), rtol=1e-6
    )
    assert ours.gti.time_sum == pytest.approx(theirs.gti.time_sum.to_value("s"), rel=1e-12)


@pytest.mark.gammapy
def test_stack_map_datasets_vs_gammapy(gp, cta_cutout: Path):
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling import models as gm

    base = MapDataset.read(cta_cutout)
    mask_a, mask_b = _masks(base)
    a = base.replace(mask_safe=mask_a, name="A")
    b = base.replace(mask_safe=mask_b, name="B", counts=base.counts[:, ::-1, :].copy())
    g_a = GMapDataset.read(cta_cutout, name="A")
    g_a.mask_safe.data = mask_a
    g_b = GMapDataset.read(cta_cutout, name="B")
    g_b.mask_safe.data = mask_b
    g_b.counts.data = b.counts.astype(g_b.counts.data.dtype)
    g_a.models = [
        gm.FoVBackgroundModel(
            dataset_name="A", spectral_model=gm.PowerLawNormSpectralModel(norm=1.1, tilt=0.1)
        )
    ]
    g_b.models = [
        gm.FoVBackgroundModel(dataset_name="B", spectral_model=gm.PowerLawNormSpectralModel(norm=0.9))
    ]
    backgrounds = Models(
        [
            FoVBackgroundModel(
                dataset_name="A", spectral_model=PowerLawNormSpectralModel(norm=1.1, tilt=0.1)
            ),
            FoVBackgroundModel(dataset_name="B", spectral_model=PowerLawNormSpectralModel(norm=0.9)),
        ]
    )
    g_stacked = GDatasets([g_a, g_b]).stack_reduce(name="S")
    stacked = Datasets([a, b]).stack_reduce(name="S", models=backgrounds)
    assert isinstance(stacked, MapDataset) and stacked.name == "S"
    _compare_stacked(stacked, g_stacked)
    np.testing.assert_allclose(stacked.background, g_stacked.background.data, rtol=0, atol=2e-7)
    # the IRF weights on the IRF grid are partly False here: the interpolation of the masks matters
    from jaxgamma.datasets.map import _irf_weights

    weights, _ = _irf_weights(a, a.edisp, "edisp")
    np.testing.assert_array_equal(weights, g_a.mask_safe_edisp.data)
    assert 0 < weights.sum() < weights.size
    weights, _ = _irf_weights(a, a.psf, "psf")
    np.testing.assert_array_equal(weights, g_a.mask_safe_psf.data)
    np.testing.assert_array_equal(_irf_weights(b, b.edisp, "edisp")[0], g_b.mask_safe_edisp.data)

    source = SkyModel(
        PowerLawSpectralModel(index=2.3, amplitude="3e-12 cm-2 s-1 TeV-1"),
        sp.GaussianSpatialModel(lon_0=0.1, lat_0=-0.05, sigma=0.1, frame="galactic"),
        name="src",
    )
    models = Models(
        [source, FoVBackgroundModel(dataset_name="S", spectral_model=PowerLawNormSpectralModel(norm=1.05))]
    )
    g_stacked.models = [
        gm.SkyModel(
            gm.PowerLawSpectralModel(index=2.3, amplitude="3e-12 cm-2 s-1 TeV-1"),
            gm.GaussianSpatialModel(lon_0="0.1 deg", lat_0="-0.05 deg", sigma="0.1 deg", frame="galactic"),
            name="src",
        ),
        gm.FoVBackgroundModel(dataset_name="S", spectral_model=gm.PowerLawNormSpectralModel(norm=1.05)),
    ]
    assert stacked.stat_sum(models) == pytest.approx(g_stacked.stat_sum(), rel=1e-8)  # 1.6e-9
    # without the background models the stored backgrounds are stacked as they are
    plain = stack_map_datasets([a, b])
    np.testing.assert_allclose(plain.background, (a.background * mask_a + b.background * mask_b), rtol=1e-15)


@pytest.mark.gammapy
def test_stack_onoff_vs_gammapy(gp, cta_cutout: Path):
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.maps import Map

    on, g_on = both_cta_onoff(cta_cutout)
    mask_a, mask_b = _masks(on)
    a = on.replace(mask_safe=mask_a, name="A")
    rng = np.random.RandomState(5)
    acceptance_off_b = np.where(on.acceptance_off > 0, on.acceptance_off * 1.5, 0.0)
    counts_off_b = rng.poisson(on.counts_off * 1.5).astype(float)
    b = on.replace(mask_safe=mask_b, name="B", acceptance_off=acceptance_off_b, counts_off=counts_off_b)
    g_a = g_on.copy(name="A")
    g_a.mask_safe.data = mask_a
    g_b = g_on.copy(name="B")
    g_b.mask_safe.data = mask_b
    g_b.acceptance_off = Map.from_geom(g_on.counts.geom, data=acceptance_off_b)
    g_b.counts_off = Map.from_geom(g_on.counts.geom, data=counts_off_b)
    with np.errstate(all="ignore"):
        g_stacked = GDatasets([g_a, g_b]).stack_reduce(name="S")
    stacked = Datasets([a, b]).stack_reduce(name="S")
    assert isinstance(stacked, MapDatasetOnOff)
    _compare_stacked(stacked, g_stacked)
    np.testing.assert_array_equal(stacked.counts_off, g_stacked.counts_off.data)
    np.testing.assert_allclose(stacked.acceptance, g_stacked.acceptance.data, rtol=1e-7)
    finite = np.isfinite(g_stacked.acceptance_off.data)
    np.testing.assert_allclose(
        stacked.acceptance_off[finite], g_stacked.acceptance_off.data[finite], rtol=5e-7
    )
    np.testing.assert_allclose(stacked.alpha, g_stacked.alpha.data, rtol=5e-7)  # float32 in Gammapy
    models = cta_models()
    g_stacked.models = gammapy_cta_models()
    with np.errstate(all="ignore"):
        reference = g_stacked.stat_sum()
    assert stacked.stat_sum(models) == pytest.approx(reference, rel=1e-6)


def test_stack_errors(fermi: MapDataset, fermi_onoff: MapDatasetOnOff):
    with pytest.raises(ValueError, match="of one type"):
        Datasets([fermi, fermi_onoff.replace(name="other")]).stack_reduce()
    with pytest.raises(TypeError, match="stacking MapDatasetOnOff"):
        stack_map_datasets_onoff([fermi_onoff, fermi])
    with pytest.raises(ValueError, match="empty"):
        stack_map_datasets([])
    from jaxgamma.geom import WcsGeom

    other_geom = WcsGeom.create(npix=(10, 10), binsz=0.1, axes=[fermi.geom.axes[0]], frame="galactic")
    small = MapDataset(geom=other_geom, counts=np.zeros(other_geom.data_shape), name="small")
    with pytest.raises(ValueError, match="geometries differ"):
        stack_map_datasets([fermi, small])
    incomplete = fermi_onoff.replace(counts_off=None, name="incomplete")
    with pytest.raises(ValueError, match="incomplete"):
        stack_map_datasets_onoff([fermi_onoff, incomplete])


def test_stack_simple_sums(fermi: MapDataset, fermi_onoff: MapDatasetOnOff):
    """Counts, backgrounds and OFF counts are safe-mask-weighted sums; alpha the OFF-weighted mean."""
    half = fermi.mask_safe.copy()
    half[:, :, :25] = False
    a = fermi.replace(name="a")
    b = fermi.replace(name="b", mask_safe=half)
    stacked = stack_map_datasets([a, b], name="s")
    np.testing.assert_array_equal(stacked.counts, fermi.counts * fermi.mask_safe + fermi.counts * half)
    np.testing.assert_array_equal(stacked.mask_safe, fermi.mask_safe | half)
    image = np.any(fermi.mask_safe, axis=0) * 1.0 + np.any(half, axis=0)
    np.testing.assert_allclose(stacked.exposure, fermi.exposure * image[None], rtol=1e-15)
    # the Fermi PSF map has two all-sky pixels whose centres lie outside the counts map: Gammapy's
    # nearest-pixel safe mask is False there, so no PSF survives the stacking
    assert stacked.psf.exposure.sum() == 0

    on_a = fermi_onoff.replace(name="a")
    on_b = fermi_onoff.replace(name="b", acceptance_off=fermi_onoff.acceptance_off * 2, mask_safe=half)
    on = stack_map_datasets_onoff([on_a, on_b])
    m_a, m_b = fermi_onoff.mask_safe, half
    n_off = fermi_onoff.counts_off * m_a + fermi_onoff.counts_off * m_b
    np.testing.assert_array_equal(on.counts_off, n_off)
    weighted = on_a.alpha * on_a.counts_off * m_a + on_b.alpha * on_b.counts_off * m_b
    positive = n_off > 0
    np.testing.assert_allclose(
        on.alpha[positive], (weighted / np.where(positive, n_off, 1))[positive], rtol=1e-13
    )
