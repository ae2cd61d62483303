"""DL3 simulation: datasets made from an observation's IRFs (against Gammapy 2.1), the
``ObservationEventSampler``, ``Observation.copy``/``write`` and ``DataStore.from_events_files``
(against Gammapy), and the closed loop: events simulated from the CTA-1DC IRFs, written as DL3,
read back through a data store, reduced and fitted recover the simulated source."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

import jaxgamma as jg
from jaxgamma.data import DataStore, Observation
from jaxgamma.data.events import EventList
from jaxgamma.datasets import (
    Datasets,
    MapDataset,
    ObservationEventSampler,
    create_empty_map_dataset_from_irfs,
    create_map_dataset_from_observation,
)
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.makers import MapDatasetMaker, SafeMaskMaker
from jaxgamma.makers.map import make_counts
from jaxgamma.models import FoVBackgroundModel, Models, PointSpatialModel, PowerLawSpectralModel, SkyModel

STORE = "cta-1dc/index/gps"
OBS_ID = 110380
EVENTS = "cta-1dc/data/baseline/gps/gps_baseline_{}.fits"
TRUTH = {"index": 2.4, "amplitude": 2e-11}


@pytest.fixture(scope="module")
def observation(data_dir: Path) -> Observation:
    return DataStore.from_dir(data_dir / STORE).obs(OBS_ID)


def _axes() -> tuple[MapAxis, MapAxis]:
    energy = MapAxis.from_energy_bounds("0.3 TeV", "30 TeV", nbin=4, per_decade=True)
    energy_true = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=8, per_decade=True, name="energy_true")
    return energy, energy_true


def _kwargs() -> dict:
    energy, energy_true = _axes()
    return dict(spatial_width="3 deg", spatial_bin_size="0.04 deg", energy_axis=energy, energy_axis_true=energy_true)


def _position(observation: Observation):
    return observation.pointing_radec.directional_offset_by(45 * u.deg, 0.7 * u.deg)


def _source(observation: Observation, index: float, amplitude: float, shift: float = 0.0) -> SkyModel:
    position = _position(observation)
    spatial = PointSpatialModel(
        lon_0=f"{position.ra.deg + shift} deg", lat_0=f"{position.dec.deg - shift} deg", frame="icrs"
    )
    spectral = PowerLawSpectralModel(index=index, amplitude=f"{amplitude} cm-2 s-1 TeV-1")
    return SkyModel(spectral_model=spectral, spatial_model=spatial, name="src")


@pytest.fixture(scope="module")
def simulated(observation: Observation) -> Observation:
    sampler = ObservationEventSampler(random_state=1, dataset_kwargs=_kwargs())
    return sampler.run(observation, [_source(observation, **TRUTH)])


# -- the dataset of an observation ---------------------------------------------------------------------
def _gammapy_observation(data_dir: Path):
    gammapy_data = pytest.importorskip("gammapy.data")
    return gammapy_data.DataStore.from_dir(data_dir / STORE).obs(OBS_ID)


def test_default_geometry_follows_the_irfs_as_gammapy(observation: Observation, data_dir: Path):
    """Width from the PSF offsets, pixel from its 68 % radius, energy bins per decade from the
    resolution: Gammapy's rules (its helpers; building its 12 deg dataset takes 30 s), to the bin."""
    gammapy_map = pytest.importorskip("gammapy.datasets.map")
    ours = create_empty_map_dataset_from_irfs(observation)
    theirs = _gammapy_observation(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        width = gammapy_map._default_width(theirs).to_value("deg")
        binsz = gammapy_map._default_binsz(theirs).to_value("deg")
        energy, energy_true = gammapy_map._default_energy_axis(theirs, position=theirs.pointing.fixed_icrs)
    assert ours.geom.wcs.wcs.cdelt[1] == pytest.approx(binsz, rel=1e-12)
    assert ours.geom.npix == (round(width / binsz),) * 2
    np.testing.assert_allclose(ours.geom.axes[0].edges_in("TeV"), energy.edges.to_value("TeV"), rtol=1e-12)
    np.testing.assert_allclose(ours.energy_axis_true.edges_in("TeV"), energy_true.edges.to_value("TeV"), rtol=1e-12)
    assert ours.geom.center_skydir.separation(observation.pointing_radec).deg < 1e-6
    assert ours.name == f"obs_{OBS_ID}"
    # the CTA-1DC South IRFs: a 12 deg map (offsets up to 6 deg), 84 reconstructed bins
    assert ours.geom.axes[0].nbin == 84 and width == pytest.approx(12.0)


def test_dataset_from_observation_equals_gammapy(observation: Observation, data_dir: Path):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.maps import MapAxis as GammapyAxis

    ours = create_map_dataset_from_observation(observation, **_kwargs())
    gkw = dict(
        spatial_width=3 * u.deg,
        spatial_bin_size=0.04 * u.deg,
        energy_axis=GammapyAxis.from_energy_bounds(0.3 * u.TeV, 30 * u.TeV, nbin=4, per_decade=True),
        energy_axis_true=GammapyAxis.from_energy_bounds(
            0.1 * u.TeV, 100 * u.TeV, nbin=8, per_decade=True, name="energy_true"
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = gammapy_datasets.create_map_dataset_from_observation(_gammapy_observation(data_dir), **gkw)
    assert np.asarray(ours.counts).sum() == 0
    exposure = np.asarray(ours.exposure) * 1e-4  # cm2 s -> m2 s
    np.testing.assert_allclose(exposure, theirs.exposure.data, rtol=1e-9, atol=1e-12 * theirs.exposure.data.max())
    np.testing.assert_allclose(np.asarray(ours.background), theirs.background.data, rtol=1e-9, atol=1e-15)
    psf = theirs.psf.psf_map.data
    np.testing.assert_allclose(np.asarray(ours.psf.data), psf, rtol=1e-9, atol=1e-12 * psf.max())
    np.testing.assert_allclose(np.asarray(ours.edisp.data), theirs.edisp.edisp_map.data, rtol=1e-9, atol=1e-10)
    assert ours.gti.time_sum == pytest.approx(theirs.gti.time_sum.to_value("s"))


def test_default_geometry_needs_a_gadf_psf(observation: Observation):
    no_psf = observation.copy(psf=None)
    with pytest.raises(ValueError, match=r"no GADF PSF.*spatial_bin_size"):
        create_empty_map_dataset_from_irfs(no_psf)
    dataset = create_empty_map_dataset_from_irfs(no_psf, **_kwargs())
    assert dataset.geom.npix == (75, 75)
    with pytest.raises(ValueError, match="spatial_width must be an angle"):
        create_empty_map_dataset_from_irfs(observation, **{**_kwargs(), "spatial_width": "3 TeV"})


# -- the sampler ------------------------------------------------------------------------------------
def test_observation_sampler_events_follow_the_prediction(observation: Observation, simulated: Observation):
    """Per component and reconstructed-energy bin, the events match the dataset's prediction; the
    copy keeps the observation's id, pointing, GTI and dead time."""
    dataset = create_map_dataset_from_observation(observation, **_kwargs())
    models = Models([_source(observation, **TRUTH)])
    events = simulated.events
    mc_id = np.asarray(events.table["MC_ID"])
    for component, expected in ((1, dataset.npred_signal(models)), (0, dataset.npred_background(models))):
        counts = make_counts(dataset.geom, EventList(events.table[mc_id == component])).sum(axis=(1, 2))
        expected = expected.sum(axis=(1, 2))
        z = (counts - expected) / np.sqrt(expected)
        assert np.all(np.abs(z) < 4.5), (component, z)
        assert expected.sum() > 500
    assert simulated.obs_id == OBS_ID and events.meta["OBS_ID"] == OBS_ID
    assert simulated.pointing_radec.separation(observation.pointing_radec).deg < 1e-9
    assert simulated.gti.time_sum == pytest.approx(observation.gti.time_sum)
    assert simulated.observation_live_time_duration == pytest.approx(observation.observation_live_time_duration)
    assert events.meta["TELESCOP"] == observation.meta["TELESCOP"]
    assert events.meta["MMN00001"] == "src" and events.meta["MMN00000"] == f"obs_{OBS_ID}-bkg"
    # the source's IRFs are the observation's own (same objects, not re-read)
    assert simulated.aeff is observation.aeff and simulated.psf is observation.psf


def test_background_model_scales_the_background(observation: Observation):
    """A FoV background model named for the dataset scales the background events (norm 0: none)."""
    sampler = ObservationEventSampler(random_state=3, dataset_kwargs=_kwargs())
    background = FoVBackgroundModel(dataset_name="sim", spectral_model=jg.models.PowerLawNormSpectralModel(norm=0.0))
    sim = sampler.run(observation, [_source(observation, **TRUTH), background], dataset_name="sim")
    assert np.all(np.asarray(sim.events.table["MC_ID"]) == 1)
    only_background = ObservationEventSampler(random_state=3, dataset_kwargs=_kwargs()).run(observation)
    assert len(only_background.events.table) > 1000
    assert np.all(np.asarray(only_background.events.table["MC_ID"]) == 0)


# -- copy, write, read ------------------------------------------------------------------------------------
def test_observation_copy(observation: Observation, simulated: Observation):
    copy = observation.copy(obs_id=7)
    assert copy.obs_id == 7 and len(copy.events.table) == len(observation.events.table)
    in_memory = observation.copy(in_memory=True)
    assert in_memory.aeff is observation.aeff and in_memory.events is observation.events
    t0 = observation.tstart
    selected = observation.select_time((t0, t0 + 600 * u.s)).copy()
    assert selected.gti.time_sum == pytest.approx(600.0)
    assert len(selected.events.table) < len(observation.events.table)
    assert simulated.events is not observation.events
    with pytest.raises(TypeError, match=r"unknown arguments.*'irf'"):
        observation.copy(irf=None)


def test_written_observation_is_read_back_by_jaxgamma_and_gammapy(simulated: Observation, tmp_path: Path):
    path = tmp_path / "sim.fits"
    simulated.write(path)
    back = Observation.read(path)
    assert back.obs_id == OBS_ID
    assert back.available_hdus == ["events", "gti", "aeff", "edisp", "psf", "bkg"]
    for column in ("TIME", "RA", "DEC", "ENERGY", "MC_ID"):
        np.testing.assert_array_equal(back.events.table[column], simulated.events.table[column])
    np.testing.assert_array_equal(back.aeff.data, simulated.aeff.data)
    np.testing.assert_array_equal(back.bkg.data, simulated.bkg.data)
    assert back.pointing_radec.separation(simulated.pointing_radec).deg < 1e-9
    assert back.observation_live_time_duration == pytest.approx(simulated.observation_live_time_duration, rel=1e-9)
    assert back.observatory_earth_location is not None
    # an existing file is kept unless overwrite
    before = path.read_bytes()
    with pytest.raises((OSError, ValueError), match=r"sim.fits"):
        simulated.write(path)
    assert path.read_bytes() == before
    gammapy_data = pytest.importorskip("gammapy.data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = gammapy_data.Observation.read(path)
        np.testing.assert_array_equal(theirs.events.energy.to_value("TeV"), back.events.table["ENERGY"])
        np.testing.assert_array_equal(theirs.aeff.data, simulated.aeff.data)
        assert theirs.observation_live_time_duration.to_value("s") == pytest.approx(
            simulated.observation_live_time_duration, rel=1e-9
        )


def test_from_events_files_as_gammapy(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The index tables made from the CTA-1DC event headers (IRFs through $CALDB) name the same HDUs
    as Gammapy's, and the observations read from them equal those of the shipped index."""
    monkeypatch.setenv("CALDB", str(data_dir / "cta-1dc/caldb"))
    paths = [data_dir / EVENTS.format(i) for i in (110380, 111140)]
    store = DataStore.from_events_files(paths)
    columns = ["OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_NAME", "HDU_NAME"]
    ours = sorted(tuple(str(row[c]).strip() for c in columns) for row in store.hdu_table)
    assert len(ours) == 12 and ("110380", "psf", "psf_3gauss", "irf_file.fits", "POINT SPREAD FUNCTION") in ours
    obs = store.obs(110380)
    shipped = DataStore.from_dir(data_dir / STORE).obs(110380)
    assert len(obs.events.table) == len(shipped.events.table)
    np.testing.assert_array_equal(obs.aeff.data, shipped.aeff.data)
    assert obs.observation_live_time_duration == pytest.approx(shipped.observation_live_time_duration)
    index = DataStore.from_dir(data_dir / STORE).obs_table.select_obs_id([110380, 111140])
    for name in ("RA_PNT", "DEC_PNT", "LIVETIME"):
        np.testing.assert_allclose(store.obs_table[name], index[name], rtol=1e-6)
    assert abs((store.obs_table.time_start[0] - shipped.tstart).to_value("s")) < 1e-6
    gammapy_data = pytest.importorskip("gammapy.data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = gammapy_data.DataStore.from_events_files(paths)
    assert ours == sorted(tuple(str(row[c]).strip() for c in columns) for row in theirs.hdu_table)
    for name in ("OBS_ID", "ONTIME", "LIVETIME", "DEADC", "RA_PNT", "DEC_PNT", "GLON_PNT", "GLAT_PNT", "EVENT_COUNT"):
        np.testing.assert_allclose(
            np.asarray(store.obs_table[name], dtype=float), np.asarray(theirs.obs_table[name], dtype=float), rtol=1e-6
        )
    # without $CALDB the IRF file cannot be found: a clear error
    monkeypatch.delenv("CALDB")
    with pytest.raises(ValueError, match=r"CALDB='1dc'.*CALDB environment variable"):
        DataStore.from_events_files(paths)


def test_from_events_files_bad_input(data_dir: Path, tmp_path: Path, simulated: Observation):
    with pytest.raises(TypeError, match="list of paths"):
        DataStore.from_events_files(str(data_dir / EVENTS.format(110380)))
    with pytest.raises(ValueError, match=r"missing.fits.*does not exist"):
        DataStore.from_events_files([tmp_path / "missing.fits"])
    path = tmp_path / "sim.fits"
    simulated.write(path)
    with pytest.raises(ValueError, match="2 IRF files for 1 event files"):
        DataStore.from_events_files([path], irfs_paths=[path, path])
    with fits.open(path) as hdulist:
        del hdulist["EVENTS"].header["LIVETIME"]
        hdulist.writeto(tmp_path / "nolive.fits")
    with pytest.raises(ValueError, match=r"nolive.fits.*\['LIVETIME'\] are missing"):
        DataStore.from_events_files([tmp_path / "nolive.fits"])


# -- the closed loop --------------------------------------------------------------------------------------
def test_simulated_dl3_reduced_and_fitted_recovers_the_source(observation: Observation, tmp_path: Path):
    """Events simulated from the CTA-1DC IRFs, written as DL3, found through a data store made from
    the event files, binned by MapDatasetMaker and fitted (point source + FoV background) give the
    simulated parameters back within 4 sigma (the reduction and the simulation are independent code
    paths: counts binning, exposure, background, PSF and energy dispersion must agree)."""
    paths = []
    for seed in (5, 6):
        sim = ObservationEventSampler(random_state=seed, dataset_kwargs=_kwargs()).run(
            observation, [_source(observation, **TRUTH)]
        )
        sim = sim.copy(obs_id=seed)
        paths.append(tmp_path / f"sim_{seed}.fits")
        sim.write(paths[-1])
    store = DataStore.from_events_files(paths)
    energy, energy_true = _axes()
    geom = WcsGeom.create(skydir=observation.pointing_radec, width="3 deg", binsz=0.04, frame="icrs", axes=[energy])
    maker, safe = MapDatasetMaker(), SafeMaskMaker(methods=["offset-max"], offset_max="1.4 deg")
    reduced = [
        safe.run(maker.run(MapDataset.create(geom, energy_axis_true=energy_true, name=f"obs{obs.obs_id}"), obs), obs)
        for obs in store.get_observations()
    ]
    for dataset, path in zip(reduced, paths, strict=True):  # every simulated event is binned
        assert np.asarray(dataset.counts).sum() == len(EventList.read(path).table) > 3000
    stacked = Datasets(reduced).stack_reduce(name="sim")
    start = _source(observation, index=2.0, amplitude=1e-11, shift=0.05)
    result = jg.fit(Datasets([stacked]), Models([start, FoVBackgroundModel(dataset_name="sim")]))
    assert result.success, result.message
    table = result.parameters_table()
    position = _position(observation)
    truth = {"index": 2.4, "amplitude": 2e-11, "lon_0": position.ra.deg, "lat_0": position.dec.deg, "norm": 1.0}
    for name, value in truth.items():
        row = table[table["name"] == name][0]
        assert abs(row["value"] - value) < 4 * row["error"], (name, row["value"], row["error"], value)
    assert table[table["name"] == "index"][0]["error"] < 0.05


def test_simulation_of_a_created_observation(data_dir: Path, tmp_path: Path):
    """Gammapy's simulation recipe: IRFs from a CALDB file, ``Observation.create``, the sampler, the
    DL3 file: the location comes from the IRF's TELESCOP (CTA: CTAO South) so that Gammapy's
    ``Observation.read`` (which requires it) reads the file; background-only events follow the
    prediction."""
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

    from jaxgamma.data import observatory_locations
    from jaxgamma.irf import load_irf_dict_from_file

    irfs = load_irf_dict_from_file(data_dir / "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits")
    pointing = SkyCoord(83.63, 22.01, unit="deg")
    obs = Observation.create(pointing=pointing, obs_id=3, tstart=Time("2021-11-20T03:00:00"), livetime="0.5 h", irfs=irfs)
    sampler = ObservationEventSampler(random_state=2, dataset_kwargs=_kwargs())
    sim = sampler.run(obs)
    dataset = create_map_dataset_from_observation(obs, **_kwargs())
    expected = dataset.npred_background(Models([])).sum()
    assert abs(len(sim.events.table) - expected) < 4.5 * np.sqrt(expected)
    meta = sim.events.meta
    south = observatory_locations["ctao_south"]
    assert meta["TELESCOP"] == "CTA" and meta["GEOLON"] == pytest.approx(south.lon.deg)
    assert 0 < meta["ALT_PNT"] < 90  # the Crab seen from Chile
    path = tmp_path / "created.fits"
    sim.write(path)
    assert Observation.read(path).observation_time_duration == pytest.approx(1800.0)
    gammapy_data = pytest.importorskip("gammapy.data")
    for name, location in observatory_locations.items():
        assert location == gammapy_data.observatory_locations[name], name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = gammapy_data.Observation.read(path)
        assert len(theirs.events.table) == len(sim.events.table)
        assert theirs.observatory_earth_location.lon.deg == pytest.approx(south.lon.deg)
