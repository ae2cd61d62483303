"""Data reduction (jaxgamma.makers, MapDataset.create/cutout/stack) against Gammapy 2.1.

- The stacked reduction of ``cta-1dc-gc-reduced/config_stack.yaml`` (3 CTA-1DC observations,
  a 10 x 8 deg Galactic map at 0.02 deg, 10 reconstructed and 14 true energy bins, IRF maps at 0.2
  deg, safe mask "aeff-default" + "offset-max", cutouts 7 deg wide) is compared with the shipped
  ``stacked.fits.gz``, Gammapy 2.1's own output of exactly that reduction: counts bin by bin
  (121241), background (total 108043.5625, float32) and exposure bins to Gammapy's float32
  rounding, the safe mask (1411180 bins), the PSF and energy-dispersion maps, and the fit of a point
  source with a FoV background.
- With ``stack_datasets=False`` the three datasets hold 47736, 47867 and 47518 counts (Gammapy's).
- The other options run live against Gammapy's makers on one observation and a small geometry
  (skipped without ``gammapy``): migration maps, background oversampling, an AltAz-aligned
  background, the safe-mask methods (DL4 and DL3), the FoV background maker (scale and fit,
  exclusion mask, minimum counts), and the dataset cutouts.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import jaxgamma
from jaxgamma.data import DataStore
from jaxgamma.datasets import MapDataset
from jaxgamma.datasets.map import RAD_AXIS_DEFAULT
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.irf import EDispKernelMap, EDispMap, PSFMap
from jaxgamma.makers import (
    DatasetsMaker,
    FoVBackgroundMaker,
    MapDatasetMaker,
    ProgressBar,
    SafeMaskMaker,
    fov_coordinates,
    make_map_background_irf,
)
from jaxgamma.models import FoVBackgroundModel, Models, PowerLawNormSpectralModel, SkyModel
from jaxgamma.models import spatial as sp
from jaxgamma.models.spectral import ExpCutoffPowerLawSpectralModel

OBS_IDS = [110380, 111140, 111159]
STORE = "cta-1dc/index/gps"
SHIPPED = "cta-1dc-gc-reduced/stacked.fits.gz"
JOINT_COUNTS = [47736, 47867, 47518]

pytestmark = pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def observations(data_dir: Path):
    store = DataStore.from_dir(data_dir / STORE)
    return store.get_observations(OBS_IDS, required_irf=["aeff", "edisp", "psf", "bkg"])


def config_geom() -> WcsGeom:
    energy = MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 10)
    return WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=(10, 8), axes=[energy])


def config_reference() -> MapDataset:
    energy_true = MapAxis.from_energy_bounds("0.08 TeV", "12 TeV", 14, name="energy_true")
    return MapDataset.create(config_geom(), energy_axis_true=energy_true, binsz_irf=0.2, name="stacked")


def config_makers() -> list:
    return [MapDatasetMaker(), SafeMaskMaker(methods=["aeff-default", "offset-max"])]


@pytest.fixture(scope="module")
def stacked(observations) -> MapDataset:
    datasets = DatasetsMaker(config_makers(), cutout_width="7 deg").run(config_reference(), observations)
    assert len(datasets) == 1
    return datasets[0]


@pytest.fixture(scope="module")
def shipped(data_dir: Path) -> MapDataset:
    return MapDataset.read(data_dir / SHIPPED)


@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


def rel_dev(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(a / b - 1)
    r[(a == 0) & (b == 0)] = 0
    return float(np.max(r))


# -- the acceptance reduction ---------------------------------------------------------------------
def test_stacked_counts_and_masks(stacked: MapDataset, shipped: MapDataset):
    assert stacked.name == "stacked"
    assert stacked.geom.data_shape == shipped.geom.data_shape == (10, 400, 500)
    assert stacked.counts.sum() == 121241
    np.testing.assert_array_equal(stacked.counts, shipped.counts)
    assert stacked.mask_safe.sum() == 1411180
    np.testing.assert_array_equal(stacked.mask_safe, shipped.mask_safe)
    assert list(stacked.meta_table["OBS_ID"][0]) == OBS_IDS
    assert len(stacked.gti.start) == 3
    np.testing.assert_allclose(stacked.gti.start, shipped.gti.start, rtol=0, atol=1e-3)  # UTC reference
    # the livetimes of the three observations add up, as in Gammapy's exposure meta (read back)
    assert shipped.livetime == pytest.approx(5292.0001029780005, rel=1e-12)
    assert stacked.livetime == pytest.approx(shipped.livetime, rel=1e-12)
    assert stacked.info_dict()["livetime"] == pytest.approx(shipped.livetime, rel=1e-12)


def test_livetime_round_trip_and_gammapy_reads_it(stacked: MapDataset, tmp_path: Path, gp):
    path = tmp_path / "stacked.fits"
    stacked.cutout((0.0, 0.0), width=1.0, name="small").write(path)
    back = MapDataset.read(path)
    assert back.livetime == stacked.livetime
    from gammapy.datasets import MapDataset as GammapyMapDataset

    assert GammapyMapDataset.read(path).exposure.meta["livetime"].to_value("s") == pytest.approx(
        stacked.livetime, rel=1e-15
    )
    with pytest.raises(ValueError, match="livetime"):
        back.replace(livetime=-1.0)


def test_stacked_background_and_exposure(stacked: MapDataset, shipped: MapDataset):
    assert stacked.background.sum() == pytest.approx(108043.5625, rel=1e-5)
    assert rel_dev(stacked.background, shipped.background) < 1e-4
    exposure = stacked.exposure / 1e4  # m2 s
    assert exposure[exposure > 0].min() == pytest.approx(6.2838924e7, rel=1e-5)
    assert exposure.max() == pytest.approx(1.9024216e10, rel=1e-5)
    assert rel_dev(stacked.exposure, shipped.exposure) < 1e-5


def test_stacked_irf_maps(stacked: MapDataset, shipped: MapDataset):
    for kind in ("psf", "edisp"):
        ours, ref = getattr(stacked, kind), getattr(shipped, kind)
        assert type(ours) is type(ref)
        assert ours.data.shape == ref.data.shape
        factor = (1 * u.Unit(ours.unit)).to_value(u.Unit(ref.unit)) if ours.unit else 1.0
        assert np.max(np.abs(ours.data * factor - ref.data)) < 1e-5 * np.max(np.abs(ref.data))
        factor = (1 * u.Unit(ours.exposure_unit)).to_value(u.Unit(ref.exposure_unit))
        assert rel_dev(ours.exposure * factor, ref.exposure) < 1e-5
    assert stacked.psf.data.shape == (14, 66, 40, 50)
    assert stacked.edisp.data.shape == (14, 10, 40, 50)


def test_stacked_fit_as_shipped(stacked: MapDataset, shipped: MapDataset):
    """The same fit (point source with an exponential cutoff, FoV background) on both datasets."""
    spectral = ExpCutoffPowerLawSpectralModel(
        index=2.3, amplitude="2.8e-12 cm-2 s-1 TeV-1", reference="1 TeV", lambda_="0.02 TeV-1"
    )
    spatial = sp.PointSpatialModel(lon_0=-0.05, lat_0=-0.05, frame="galactic").unfreeze("lon_0", "lat_0")
    models = Models(
        [
            SkyModel(spectral, spatial, name="gc"),
            FoVBackgroundModel(dataset_name="stacked", spectral_model=PowerLawNormSpectralModel(norm=1.3)),
        ]
    )
    results = []
    for dataset in (stacked, shipped):
        dataset = dataset.replace(mask_fit=dataset.energy_mask(energy_min=0.3 * u.TeV))
        result = jaxgamma.fit(dataset, models)
        assert result.success
        results.append(result)
    ours, ref = results
    assert ours.total_stat == pytest.approx(ref.total_stat, rel=1e-8)
    for p, q in zip(ours.models.parameters, ref.models.parameters, strict=True):
        if not p.frozen:
            assert float(p.value) == pytest.approx(float(q.value), rel=1e-5, abs=1e-9), p.name
            assert p.error == pytest.approx(q.error, rel=1e-4), p.name


def test_joint_datasets(observations, stacked: MapDataset):
    datasets = DatasetsMaker(config_makers(), cutout_width="7 deg", stack_datasets=False).run(
        config_reference(), observations
    )
    assert [int(d.counts.sum()) for d in datasets] == JOINT_COUNTS
    assert [int(d.meta_table["OBS_ID"][0]) for d in datasets] == OBS_IDS
    assert all(d.geom.data_shape == (10, 310, 350) for d in datasets)
    # stacked again into the reference: the stacked reduction
    again = config_reference().stack(list(datasets))
    np.testing.assert_array_equal(again.counts, stacked.counts)
    np.testing.assert_allclose(again.background, stacked.background, rtol=1e-12)
    np.testing.assert_allclose(again.psf.data, stacked.psf.data, rtol=1e-10, atol=1e-12)


# -- create, cutout, stack -------------------------------------------------------------------------
def test_create_defaults():
    geom = config_geom()
    empty = MapDataset.create(geom, name="e")
    assert empty.energy_axis_true.name == "energy_true"
    assert empty.energy_axis_true.nbin == 10
    assert empty.psf.geom.axes[0] == RAD_AXIS_DEFAULT
    assert RAD_AXIS_DEFAULT.nbin == 66 and RAD_AXIS_DEFAULT.edges[-1] == pytest.approx(0.66)
    assert empty.psf.data.shape == (10, 66, 40, 50)
    assert isinstance(empty.edisp, EDispKernelMap)
    assert not empty.mask_safe.any()
    assert empty.counts.sum() == 0 and empty.background.sum() == 0
    assert len(empty.gti.start) == 0
    assert (empty.gti.mjdrefi, empty.gti.mjdreff, empty.gti.timesys) == (51544.0, 0.0, "utc")
    migra = MapAxis.from_bounds(0.2, 5, 48, name="migra")
    with_migra = MapDataset.create(geom, migra_axis=migra, binsz_irf="0.5 deg")
    assert isinstance(with_migra.edisp, EDispMap)
    assert with_migra.edisp.data.shape == (10, 48, 16, 20)
    with pytest.raises(ValueError, match="energy_true"):
        MapDataset.create(geom, energy_axis_true=MapAxis.from_energy_bounds(1, 10, 2, unit="TeV"))


def test_create_matches_gammapy(gp):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import WcsGeom as GWcsGeom

    energy = GMapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 10)
    energy_true = GMapAxis.from_energy_bounds("0.08 TeV", "12 TeV", 14, name="energy_true")
    g = GMapDataset.create(
        GWcsGeom.create(skydir=(0, 0), frame="galactic", binsz=0.02, width=(10, 8), axes=[energy]),
        energy_axis_true=energy_true,
        binsz_irf=0.2,
    )
    ours = config_reference()
    assert ours.psf.geom.wcs.wcs.compare(g.psf.psf_map.geom.wcs.wcs, tolerance=1e-12)
    assert ours.psf.geom.npix == tuple(int(n) for n in np.ravel(g.psf.psf_map.geom.npix))
    np.testing.assert_allclose(ours.edisp.data, g.edisp.edisp_map.data, rtol=1e-7)
    assert ours.edisp.exposure.shape == g.edisp.exposure_map.data.shape


def random_dataset(seed: int = 0) -> MapDataset:
    """A small dataset with random maps and IRF maps (with exposure), on a 3 x 2 deg geometry."""
    rng = np.random.default_rng(seed)
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    geom = WcsGeom.create(skydir=(10.0, 1.0), frame="galactic", binsz=0.1, width=(3, 2), axes=[energy])
    empty = MapDataset.create(geom, binsz_irf=0.5, name="r")
    psf = empty.psf
    psf = PSFMap(
        rng.uniform(0, 1, psf.data.shape),
        psf.geom,
        exposure=rng.uniform(1, 2, psf.exposure.shape),
        exposure_geom=psf.exposure_geom,
        exposure_unit="m2 s",
    )
    edisp = EDispKernelMap(
        rng.uniform(0, 1, empty.edisp.data.shape),
        empty.edisp.geom,
        exposure=rng.uniform(1, 2, empty.edisp.exposure.shape),
        exposure_geom=empty.edisp.exposure_geom,
    )
    mask = rng.uniform(size=geom.data_shape) > 0.2
    return empty.replace(
        counts=rng.poisson(3, geom.data_shape).astype(float),
        background=rng.uniform(1, 3, geom.data_shape),
        exposure=rng.uniform(1e9, 2e9, empty.exposure.shape),
        mask_safe=mask,
        psf=psf,
        edisp=edisp,
    )


def test_cutout_and_stack_back():
    dataset = random_dataset()
    position = SkyCoord(10.3, 1.2, unit="deg", frame="galactic")
    cut = dataset.cutout(position, width=1.0, mode="trim", name="c")
    assert cut.name == "c"
    assert cut.geom.data_shape == (3, 10, 10)
    slices = cut.geom.cutout_slices(dataset.geom)["parent-slices"]
    np.testing.assert_array_equal(cut.counts, dataset.counts[(..., *slices)])
    np.testing.assert_array_equal(cut.mask_safe, dataset.mask_safe[(..., *slices)])
    assert cut.psf.geom.npix == (3, 3)  # at least 3 IRF pixels a side
    partial = dataset.cutout(SkyCoord(11.4, 1.0, unit="deg", frame="galactic"), width=1.0, mode="partial")
    assert partial.geom.data_shape == (3, 10, 10)
    assert not partial.mask_safe[..., :, :2].any()  # outside the parent (longitude grows leftwards)
    assert partial.mask_safe[..., :, 2:].any()
    # stacking the cutout into an empty copy of the parent places it where it came from
    empty = MapDataset.create(dataset.geom, binsz_irf=0.5, name="parent")
    back = empty.stack(cut)
    assert back.name == "parent"
    expected = np.zeros(dataset.data_shape)
    expected[(..., *slices)] = cut.counts * cut.mask_safe
    np.testing.assert_array_equal(back.counts, expected)
    np.testing.assert_array_equal(back.mask_safe[(..., *slices)], cut.mask_safe)
    assert back.mask_safe.sum() == cut.mask_safe.sum()
    with pytest.raises(ValueError, match="geometries differ"):
        other = WcsGeom.create(
            skydir=(10.01, 1.0), frame="galactic", binsz=0.1, width=1, axes=dataset.geom.axes
        )
        empty.stack(MapDataset.create(other, binsz_irf=0.5))


def test_cutout_and_stack_match_gammapy(gp):
    """Cutouts (trim and partial) and their stacking into the parent, IRF maps included."""
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.irf import EDispKernelMap as GEDispKernelMap
    from gammapy.irf import PSFMap as GPSFMap
    from gammapy.maps import Map
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import WcsGeom as GWcsGeom

    dataset = random_dataset(1)
    energy = GMapAxis.from_energy_bounds("1 TeV", "10 TeV", 3)
    ggeom = GWcsGeom.create(skydir=(10.0, 1.0), frame="galactic", binsz=0.1, width=(3, 2), axes=[energy])
    g = GMapDataset.create(ggeom, binsz_irf=0.5, name="g")
    g.counts.data = dataset.counts.copy()
    g.background.data = dataset.background.copy()
    g.exposure.quantity = dataset.exposure * u.Unit("cm2 s")
    g.mask_safe = Map.from_geom(ggeom, data=dataset.mask_safe.copy(), dtype=bool)
    psf_map = Map.from_geom(g.psf.psf_map.geom, data=dataset.psf.data.copy(), unit="sr-1")
    psf_exposure = Map.from_geom(g.psf.exposure_map.geom, data=dataset.psf.exposure.copy(), unit="m2 s")
    g.psf = GPSFMap(psf_map, psf_exposure)
    edisp_map = Map.from_geom(g.edisp.edisp_map.geom, data=dataset.edisp.data.copy())
    edisp_exposure = Map.from_geom(g.edisp.exposure_map.geom, data=dataset.edisp.exposure.copy(), unit="m2 s")
    g.edisp = GEDispKernelMap(edisp_map, edisp_exposure)

    g.gti = None  # Gammapy cannot stack empty GTIs
    g_parent = GMapDataset.create(ggeom, binsz_irf=0.5, name="p")
    g_parent.gti = None
    parent = MapDataset.create(dataset.geom, binsz_irf=0.5, name="p")
    cuts = []
    for (lon, lat), mode in [((10.3, 1.2), "trim"), ((9.0, 0.4), "partial"), ((10.5, 1.0), "trim")]:
        position = SkyCoord(lon, lat, unit="deg", frame="galactic")
        gc = g.cutout(position, width=1.2 * u.deg, mode=mode)
        c = dataset.cutout(position, width=1.2, mode=mode)
        assert c.geom.data_shape == gc.counts.data.shape
        np.testing.assert_array_equal(c.counts, gc.counts.data)
        np.testing.assert_array_equal(c.mask_safe, gc.mask_safe.data)
        np.testing.assert_allclose(c.psf.data, gc.psf.psf_map.data)
        np.testing.assert_allclose(c.edisp.exposure, gc.edisp.exposure_map.data)
        g_parent.stack(gc)
        cuts.append(c)
    stacked = parent.stack(cuts)
    np.testing.assert_allclose(stacked.counts, g_parent.counts.data)
    np.testing.assert_allclose(stacked.background, g_parent.background.data, rtol=1e-6)
    np.testing.assert_allclose(stacked.exposure, g_parent.exposure.quantity.to_value("cm2 s"), rtol=1e-6)
    np.testing.assert_array_equal(stacked.mask_safe, g_parent.mask_safe.data)
    np.testing.assert_allclose(stacked.psf.data, g_parent.psf.psf_map.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stacked.psf.exposure, g_parent.psf.exposure_map.data, rtol=1e-6)
    np.testing.assert_allclose(stacked.edisp.data, g_parent.edisp.edisp_map.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stacked.edisp.exposure, g_parent.edisp.exposure_map.data, rtol=1e-6)


# -- one observation against Gammapy's makers ------------------------------------------------------
SMALL_CENTER = (359.6, -1.0)


@pytest.fixture(scope="module")
def gp_observation(gp, data_dir: Path):
    from gammapy.data import DataStore as GDataStore

    return GDataStore.from_dir(data_dir / STORE).obs(OBS_IDS[0])


def small_geoms(gp_module: bool):
    if gp_module:
        from gammapy.maps import MapAxis as A
        from gammapy.maps import WcsGeom as G
    else:
        A, G = MapAxis, WcsGeom
    energy = A.from_energy_bounds("0.1 TeV", "10 TeV", 6)
    energy_true = A.from_energy_bounds("0.08 TeV", "12 TeV", 8, name="energy_true")
    geom = G.create(skydir=SMALL_CENTER, frame="galactic", binsz=0.05, width=(4, 3), axes=[energy])
    return geom, energy_true


def small_reference(migra: bool = False) -> MapDataset:
    geom, energy_true = small_geoms(False)
    migra_axis = MapAxis.from_bounds(0.2, 5, 48, name="migra") if migra else None
    return MapDataset.create(
        geom, energy_axis_true=energy_true, migra_axis=migra_axis, binsz_irf=0.5, name="one"
    )


def gp_small_reference(migra: bool = False):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.maps import MapAxis as GMapAxis

    geom, energy_true = small_geoms(True)
    migra_axis = GMapAxis.from_bounds(0.2, 5, 48, name="migra", node_type="edges") if migra else None
    return GMapDataset.create(
        geom, energy_axis_true=energy_true, migra_axis=migra_axis, binsz_irf=0.5, name="one"
    )


@pytest.fixture(scope="module")
def one_pair(gp, gp_observation, observations):
    """Our and Gammapy's datasets of observation 110380 (migration map, oversampled background)."""
    from gammapy.makers import MapDatasetMaker as GMaker

    g = GMaker(background_oversampling=2).run(gp_small_reference(migra=True), gp_observation)
    ours = MapDatasetMaker(background_oversampling=2).run(small_reference(migra=True), observations[0])
    return ours, g


def test_maker_one_observation(one_pair):
    ours, g = one_pair
    np.testing.assert_array_equal(ours.counts, g.counts.data)
    assert ours.counts.sum() > 1000
    assert rel_dev(ours.background, g.background.data) < 1e-9
    assert rel_dev(ours.exposure, g.exposure.quantity.to_value("cm2 s")) < 1e-12
    assert isinstance(ours.edisp, EDispMap)
    np.testing.assert_allclose(ours.edisp.data, g.edisp.edisp_map.data, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.edisp.exposure, g.edisp.exposure_map.data, rtol=1e-12)
    factor = (1 * u.Unit(ours.psf.unit)).to_value(g.psf.psf_map.unit)
    np.testing.assert_allclose(ours.psf.data * factor, g.psf.psf_map.data, rtol=1e-9, atol=1e-9)
    assert ours.mask_safe.all()
    assert ours.meta_table["OBS_ID"][0] == OBS_IDS[0]


def test_maker_selection(observations):
    maker = MapDatasetMaker(selection=["counts", "exposure"])
    dataset = maker.run(small_reference(), observations[0])
    assert dataset.background is None and dataset.psf is None and dataset.edisp is None
    assert dataset.exposure is not None
    with pytest.raises(ValueError, match="not a valid selection"):
        MapDatasetMaker(selection=["counts", "excess"])


def test_fov_coordinates_vs_astropy():
    from astropy.coordinates import SkyOffsetFrame

    geom, _ = small_geoms(False)
    pointing = SkyCoord(267.68121338, -29.6075, unit="deg", frame="icrs")
    fov_lon, fov_lat = fov_coordinates(geom.to_image(), pointing)
    lon, lat = geom.to_image().get_coord()
    frame = SkyOffsetFrame(origin=pointing)
    c = SkyCoord(lon, lat, unit="deg", frame="galactic").transform_to(frame)
    np.testing.assert_allclose(fov_lon, -c.lon.wrap_at("180d").deg, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fov_lat, c.lat.deg, atol=1e-10, rtol=0)


def test_altaz_background_rotation(gp, gp_observation, observations):
    """An AltAz-aligned 3D background averaged over the FoV rotation, as Gammapy's."""
    from gammapy.irf import Background3D as GBackground3D
    from gammapy.makers.utils import make_map_background_irf as g_make

    bkg = observations[0].bkg
    ours_bkg = bkg._replace(fov_alignment="ALTAZ")
    g_bkg = gp_observation.bkg
    g_bkg = GBackground3D(axes=g_bkg.axes, data=g_bkg.data, unit=g_bkg.unit, fov_alignment="ALTAZ")
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import WcsGeom as GWcsGeom

    energy = GMapAxis.from_energy_bounds("0.5 TeV", "5 TeV", 2)
    ggeom = GWcsGeom.create(skydir=(359.9, -1.3), frame="galactic", binsz=0.2, width=(3, 2), axes=[energy])
    g = g_make(
        pointing=gp_observation.pointing,
        ontime=gp_observation.observation_time_duration,
        bkg=g_bkg,
        geom=ggeom,
        time_start=gp_observation.tstart,
        location=gp_observation.observatory_earth_location,
    )
    geom = WcsGeom.create(
        skydir=(359.9, -1.3),
        frame="galactic",
        binsz=0.2,
        width=(3, 2),
        axes=[MapAxis.from_energy_bounds("0.5 TeV", "5 TeV", 2)],
    )
    obs = observations[0]
    ours = make_map_background_irf(
        obs.pointing,
        obs.observation_time_duration,
        ours_bkg,
        geom,
        time_start=obs.tstart,
        location=obs.observatory_earth_location,
    )
    assert rel_dev(ours, g.data) < 1e-6


def test_offset_background(gp, gp_observation, observations):
    """A 2D (offset) background, filled and padded as the maker does, as Gammapy's."""
    from gammapy.makers.utils import make_map_background_irf as g_make
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import WcsGeom as GWcsGeom

    g_bkg = gp_observation.bkg.to_2d()
    g_bkg.interp_missing_data("energy")
    g_bkg = g_bkg.pad(1, mode="edge", axis_name="offset")
    bkg = observations[0].bkg.to_2d().interp_missing_data("energy").pad(1, mode="edge", axis_name="offset")
    energy = GMapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 5)
    ggeom = GWcsGeom.create(skydir=(359.5, -1.0), frame="galactic", binsz=0.1, width=(8, 6), axes=[energy])
    g = g_make(
        pointing=gp_observation.pointing,
        ontime=1800.0 * u.s,
        bkg=g_bkg,
        geom=ggeom,
        time_start=gp_observation.tstart,
    )
    geom = WcsGeom.create(
        skydir=(359.5, -1.0),
        frame="galactic",
        binsz=0.1,
        width=(8, 6),
        axes=[MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 5)],
    )
    ours = make_map_background_irf(observations[0].pointing, 1800.0, bkg, geom)
    assert rel_dev(ours, g.data) < 1e-10
    assert ours.sum() > 0


# -- safe masks ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel_pair(gp, gp_observation, observations):
    """Our and Gammapy's datasets of observation 110380 with an edisp kernel map."""
    from gammapy.makers import MapDatasetMaker as GMaker

    g = GMaker().run(gp_small_reference(), gp_observation)
    ours = MapDatasetMaker().run(small_reference(), observations[0])
    return ours, g


@pytest.mark.parametrize(
    "kwargs",
    [
        {"methods": ["aeff-max"], "aeff_percent": 20},
        {"methods": ["aeff-max"], "irfs": "DL3", "fixed_offset": "1 deg"},
        {"methods": ["edisp-bias"], "bias_percent": 5},
        {"methods": ["edisp-bias"], "position": SkyCoord(359.5, -1.2, unit="deg", frame="galactic")},
        {"methods": ["edisp-bias"], "irfs": "DL3", "fixed_offset": "1 deg", "bias_percent": 1},
        {"methods": ["bkg-peak"]},
        {"methods": ["bkg-peak"], "irfs": "DL3"},
        {"methods": ["offset-max", "aeff-default"], "offset_max": "1.5 deg"},
    ],
)
def test_safe_mask_methods(kernel_pair, gp_observation, observations, kwargs):
    from gammapy.makers import SafeMaskMaker as GSafeMaskMaker

    ours, g = kernel_pair
    expected = GSafeMaskMaker(**kwargs).run(g.copy(), gp_observation).mask_safe.data
    got = SafeMaskMaker(**kwargs).run(ours, observations[0]).mask_safe
    np.testing.assert_array_equal(got, expected)
    assert 0 < got.sum() < got.size or kwargs["methods"] == ["bkg-peak"]


def test_safe_mask_errors(kernel_pair):
    ours, _ = kernel_pair
    with pytest.raises(ValueError, match="not a valid method"):
        SafeMaskMaker(methods=["aeff-minimum"])
    with pytest.raises(ValueError, match="mutually exclusive"):
        SafeMaskMaker(position=SkyCoord(0, 0, unit="deg"), fixed_offset=1)
    with pytest.raises(ValueError, match="requires an observation"):
        SafeMaskMaker(methods=["offset-max"]).run(ours)


# -- FoV background --------------------------------------------------------------------------------
def exclusion_arrays(geom) -> np.ndarray:
    lon, lat = geom.to_image().get_coord()
    c = SkyCoord(lon, lat, unit="deg", frame="galactic")
    return c.separation(SkyCoord(359.9, -1.1, unit="deg", frame="galactic")).deg > 0.5


@pytest.mark.parametrize("method", ["scale", "fit"])
def test_fov_background_maker(kernel_pair, gp_observation, observations, method):
    from gammapy.makers import FoVBackgroundMaker as GFoVBackgroundMaker
    from gammapy.makers import SafeMaskMaker as GSafeMaskMaker
    from gammapy.maps import Map

    ours, g = kernel_pair
    g = GSafeMaskMaker(methods=["offset-max"], offset_max="1.6 deg").run(g.copy(name="one"), gp_observation)
    ours = SafeMaskMaker(methods=["offset-max"], offset_max="1.6 deg").run(ours, observations[0])
    exclusion = exclusion_arrays(ours.geom)
    g_exclusion = Map.from_geom(g.counts.geom.to_image(), data=exclusion)
    g = GFoVBackgroundMaker(method=method, exclusion_mask=g_exclusion).run(g)
    g_norm = g.models["one-bkg"].spectral_model.norm

    maker = FoVBackgroundMaker(method=method, exclusion_mask=exclusion)
    scaled, model = maker.run_with_model(ours)
    assert isinstance(model, FoVBackgroundModel) and model.name == "one-bkg"
    norm = model.spectral_model.norm
    assert float(norm.value) == pytest.approx(g_norm.value, rel=1e-9 if method == "scale" else 1e-5)
    assert norm.error == pytest.approx(g_norm.error, rel=1e-9 if method == "scale" else 1e-4)
    np.testing.assert_allclose(scaled.background, g.npred_background().data, rtol=1e-4)
    np.testing.assert_array_equal(scaled.mask_safe, g.mask_safe.data)
    assert ours.mask_fit is None and scaled.mask_fit is None  # the exclusion is not kept
    again = maker.make_background_model(ours)
    assert float(again.spectral_model.norm.value) == pytest.approx(float(norm.value), rel=1e-9)


def test_fov_background_exclusion_file(kernel_pair, tmp_path):
    """An exclusion mask map on a larger geometry (a FITS file written by Gammapy) is projected."""
    from gammapy.maps import Map
    from gammapy.maps import WcsGeom as GWcsGeom

    ours, _ = kernel_pair
    big = GWcsGeom.create(skydir=SMALL_CENTER, frame="galactic", binsz=0.05, width=(6, 5))
    lon, lat = big.get_coord()
    centre = SkyCoord(359.9, -1.1, unit="deg", frame="galactic")
    data = SkyCoord(lon, lat, frame="galactic").separation(centre).deg > 0.5
    Map.from_geom(big, data=data.astype(np.uint8)).write(tmp_path / "exclusion.fits")
    from_file = FoVBackgroundMaker(exclusion_mask=str(tmp_path / "exclusion.fits")).make_background_model(
        ours
    )
    direct = FoVBackgroundMaker(exclusion_mask=exclusion_arrays(ours.geom)).make_background_model(ours)
    assert float(from_file.spectral_model.norm.value) == pytest.approx(
        float(direct.spectral_model.norm.value), rel=1e-12
    )
    plain = FoVBackgroundMaker().make_background_model(ours)
    assert float(plain.spectral_model.norm.value) != pytest.approx(
        float(direct.spectral_model.norm.value), rel=1e-6
    )


def test_fov_background_requirements(kernel_pair):
    ours, _ = kernel_pair
    failed = FoVBackgroundMaker(min_counts=1e9).run(ours)
    assert not failed.mask_safe.any()
    np.testing.assert_array_equal(failed.background, ours.background)
    with pytest.raises(ValueError, match="norm spectral model"):
        FoVBackgroundMaker(spectral_model="pl")
    with pytest.raises(ValueError, match="Not a valid method"):
        FoVBackgroundMaker(method="ring")


def test_datasets_maker_with_fov_background(observations):
    makers = [
        MapDatasetMaker(),
        SafeMaskMaker(methods=["offset-max"], offset_max="1.5 deg"),
        FoVBackgroundMaker(),
    ]
    maker = DatasetsMaker(makers, stack_datasets=False)
    assert maker.cutout_width.deg == pytest.approx(3.0)
    datasets = maker.run(small_reference(), observations[:2])
    assert len(datasets) == 2 == len(maker.background_models)
    for d, model in zip(datasets, maker.background_models, strict=True):
        assert model.dataset_name == d.name
        assert 0.5 < float(model.spectral_model.norm.value) < 2


# -- the progress bar ------------------------------------------------------------------------------
def test_progress_bar_quiet_unless_terminal():
    stream = io.StringIO()
    with ProgressBar(3, desc="Data reduction", stream=stream) as bar:
        bar.update(1, label="1")
    assert stream.getvalue() == ""
    with ProgressBar(2, desc="Data reduction", stream=stream, enabled=True) as bar:
        bar.update(1, label="obs 7")
        bar.update(1)
    text = stream.getvalue()
    assert "Data reduction: 2/2" in text and "obs 7" in text and text.endswith("\n")


def test_datasets_maker_outside_reference(observations, caplog):
    geom = WcsGeom.create(skydir=(120.0, 40.0), frame="galactic", binsz=0.1, width=2, axes=config_geom().axes)
    reference = MapDataset.create(geom, name="far")
    maker = DatasetsMaker(config_makers(), cutout_width="7 deg")
    with caplog.at_level(logging.WARNING):
        out = maker.run(reference, observations[:1])
    assert "discarded" in caplog.text
    assert out[0].counts.sum() == 0


def test_irf_maps_are_read_only(stacked: MapDataset):
    """The PSF and energy-dispersion maps of a reduced dataset are immutable: writing into their
    values or exposure (one array may serve both maps) fails instead of changing both."""
    for irf_map in (stacked.psf, stacked.edisp):
        for array in (irf_map.data, irf_map.exposure):
            with pytest.raises(ValueError, match="read-only"):
                array[(0,) * array.ndim] = 0.0
