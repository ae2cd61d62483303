"""DL3 data access (jaxgamma.data): DataStore, index tables, Observation, EventList, GTI, against
live Gammapy 2.1 on ``$GAMMAPY_DATA/cta-1dc/index/gps`` (obs 110380, 111140, 111159, 111630).

Figures (Gammapy 2.1): 106217 / 106386 / 105741 / 101430 events; one GTI of 1800 s each; live time
``1800 x 0.98000001907 = 1764.000034326`` s (Gammapy's ``ontime x (1 - (1 - DEADC))``, not the
header ``LIVETIME`` of 1764.0); event RA/DEC/ENERGY/TIME, galactic coordinates and offsets equal
bit for bit; 97978 events with ``MC_ID == 1`` in 110380 (Gammapy's docstring); the galactic cone
(0, 0) of 2 + 0.5 deg selects 110380, 111140, 111159.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.data import (
    GTI,
    DataStore,
    EventList,
    FixedPointingInfo,
    MissingRequiredHDU,
    Observation,
    Observations,
)

STORE = "cta-1dc/index/gps"
OBS_IDS = [110380, 111140, 111159, 111630]
N_EVENTS = {110380: 106217, 111140: 106386, 111159: 105741, 111630: 101430}
IRF_FILE = "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"
EVENTS_FILE = "cta-1dc/data/baseline/gps/gps_baseline_{}.fits"


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(data_dir: Path) -> DataStore:
    return DataStore.from_dir(data_dir / STORE)


@pytest.fixture(scope="module")
def gp_store(data_dir: Path):
    gammapy_data = pytest.importorskip("gammapy.data")
    return gammapy_data.DataStore.from_dir(data_dir / STORE)


def _copy_index(data_dir: Path, dest: Path, edit=None, obs_edit=None) -> Path:
    """The CTA-1DC index tables in ``dest`` with absolute FILE_DIR, after ``edit(hdu_table)``."""
    hdu = Table.read(data_dir / STORE / "hdu-index.fits.gz")
    src = (data_dir / STORE).resolve()
    hdu["FILE_DIR"] = [str((src / str(d).strip()).resolve()) for d in hdu["FILE_DIR"]]
    if edit is not None:
        hdu = edit(hdu)
    dest.mkdir(parents=True, exist_ok=True)
    hdu.write(dest / "hdu-index.fits.gz")
    obs = Table.read(data_dir / STORE / "obs-index.fits.gz")
    if obs_edit is not None:
        obs = obs_edit(obs)
    obs.write(dest / "obs-index.fits.gz")
    return dest


# -- the store and its index tables --------------------------------------------------------------------
def test_store_tables_equal_gammapy(store: DataStore, gp_store) -> None:
    assert store.obs_ids.tolist() == OBS_IDS == gp_store.obs_ids.tolist()
    assert store.obs_table.colnames == gp_store.obs_table.colnames
    for name in gp_store.obs_table.colnames:
        np.testing.assert_array_equal(np.asarray(store.obs_table[name]), np.asarray(gp_store.obs_table[name]))
    assert store.hdu_table.colnames == gp_store.hdu_table.colnames
    assert len(store.hdu_table) == len(gp_store.hdu_table) == 24
    assert Path(store.hdu_table.base_dir) == Path(gp_store.hdu_table.base_dir)
    for i in range(len(store.hdu_table)):
        ours, theirs = store.hdu_table.location_info(i), gp_store.hdu_table.location_info(i)
        assert ours.path() == theirs.path() and ours.path().is_file()
        assert (ours.hdu_class, ours.hdu_name) == (theirs.hdu_class, theirs.hdu_name)
    text = store.info(show=False)
    assert "OBS_ID: 110380 -- 111630" in text and "Number of observations: 4" in text
    assert "HDU_CLASS: ['aeff_2d', 'bkg_3d', 'edisp_2d', 'events', 'gti', 'psf_3gauss']" in text
    assert str(store) == text


@pytest.mark.parametrize("obs_id", OBS_IDS)
def test_observation_equals_gammapy(store: DataStore, gp_store, obs_id: int) -> None:
    ours, theirs = store.obs(obs_id), gp_store.obs(obs_id)
    ev, gev = ours.events, theirs.events
    assert len(ev) == len(gev.table) == N_EVENTS[obs_id]
    for name, values in (("ra", gev.table["RA"]), ("dec", gev.table["DEC"]), ("energy", gev.energy)):
        column = getattr(ev, name)
        assert column.dtype == np.float64 and column.flags.c_contiguous
        np.testing.assert_array_equal(
            column, u.Quantity(values).to_value("deg" if name != "energy" else "TeV")
        )
    np.testing.assert_array_equal((gev.time - ev.time_absolute).to_value("s"), 0.0)
    np.testing.assert_array_equal(ev.time, (gev.time - gev.time_ref).to_value("s"))
    # coordinates go through astropy from the stored float32 columns, as Gammapy's
    np.testing.assert_array_equal(ev.galactic.l.deg, gev.galactic.l.deg)
    np.testing.assert_array_equal(ev.galactic.b.deg, gev.galactic.b.deg)
    np.testing.assert_array_equal(ev.offset, gev.offset.deg)
    assert ev.meta == dict(gev.table.meta)
    assert int(ev.meta["OBS_ID"]) == obs_id and ev.time_ref == gev.time_ref  # a string in 111630

    # GTI, times and durations
    gti, ggti = ours.gti, theirs.gti
    assert len(gti) == len(ggti.table) == 1
    assert gti.time_sum == ggti.time_sum.to_value("s") == 1800.0 or np.isclose(
        gti.time_sum, 1800.0, rtol=1e-14
    )
    np.testing.assert_allclose(gti.time_sum, ggti.time_sum.to_value("s"), rtol=1e-14)
    np.testing.assert_array_equal((gti.time_start - ggti.time_start).to_value("s"), 0.0)
    np.testing.assert_array_equal((gti.time_stop - ggti.time_stop).to_value("s"), 0.0)
    for name in ("tstart", "tstop", "tmid"):
        assert abs((getattr(ours, name) - getattr(theirs, name)).to_value("s")) < 1e-6
    np.testing.assert_allclose(
        ours.observation_time_duration, theirs.observation_time_duration.to_value("s"), rtol=1e-14
    )
    np.testing.assert_allclose(
        ours.observation_live_time_duration, theirs.observation_live_time_duration.to_value("s"), rtol=1e-14
    )
    assert ours.observation_dead_time_fraction == theirs.observation_dead_time_fraction
    deadc = 0.98 if obs_id == 111630 else 0.98000001907  # the EVENTS header's, not the index's
    np.testing.assert_allclose(ours.observation_live_time_duration, 1800 * deadc, rtol=1e-14)

    # pointing and location
    assert ours.pointing_radec.ra.deg == theirs.pointing.fixed_icrs.ra.deg
    assert ours.pointing_radec.dec.deg == theirs.pointing.fixed_icrs.dec.deg
    assert ours.pointing_radec.frame.name == "icrs"
    p, gp = ours.get_pointing_icrs(ours.tmid), theirs.get_pointing_icrs(theirs.tmid)
    assert (p.ra.deg, p.dec.deg) == (gp.ra.deg, gp.dec.deg)
    assert ours.observatory_earth_location == theirs.observatory_earth_location
    assert ours.available_irfs == theirs.available_irfs == ["aeff", "edisp", "psf", "bkg"]
    assert ours.available_hdus == theirs.available_hdus
    assert f"obs id            : {obs_id}" in str(ours)


def test_event_selections_equal_gammapy(store: DataStore, gp_store) -> None:
    ev, gev = store.obs(110380).events, gp_store.obs(110380).events
    # Gammapy's docstring: 97978 events from the background model
    mask = np.asarray(ev.table["MC_ID"]) == 1
    assert len(ev.select_row_subset(mask)) == 97978
    assert len(ev.select_row_subset(np.nonzero(mask)[0])) == 97978
    assert len(ev.select_parameter("MC_ID", [1], is_range=False)) == 97978
    for band in ([1, 10] * u.TeV, [100, 300] * u.GeV, (0.1, 0.2)):
        gp_band = band if isinstance(band, u.Quantity) else u.Quantity(band, "TeV")
        assert len(ev.select_energy(band)) == len(gev.select_energy(gp_band).table)
    assert len(ev.select_energy([1, 10] * u.TeV)) == 4187
    for band in ([0.3, 0.9] * u.deg, [2.0, 2.5] * u.deg):
        assert len(ev.select_offset(band)) == len(gev.select_offset(band).table)
    assert len(ev.select_offset([0.3, 0.9] * u.deg)) == 12688  # Gammapy's docstring
    t0 = ev.time_ref + u.Quantity(ev.time[1000], "s")
    interval = Time([t0, t0 + 400 * u.s])
    for inverted in (False, True):
        sel, gsel = ev.select_time(interval, inverted=inverted), gev.select_time(interval, inverted=inverted)
        assert len(sel) == len(gsel.table)
        np.testing.assert_array_equal(sel.time, (gsel.time - gsel.time_ref).to_value("s"))
    center = SkyCoord(0, 0, unit="deg", frame="galactic")
    circle = ev.select_sky_circle(center, 0.5 * u.deg)
    assert 0 < len(circle) < len(ev)
    assert np.all(center.separation(circle.radec).deg < 0.5)
    sub = ev.select_energy([1, 10] * u.TeV)
    assert sub.meta["OBS_ID"] == 110380 and np.all((sub.energy >= 1) & (sub.energy < 10))
    assert "Number of events : 106217" in str(ev)
    with pytest.raises(ValueError, match="select_energy"):
        ev.select_energy([1, 10] * u.deg)


def test_observations_select_time_equals_gammapy(store: DataStore, gp_store) -> None:
    ours = store.get_observations()
    theirs = gp_store.get_observations()
    assert ours.ids == theirs.ids == [str(i) for i in OBS_IDS]
    start = ours[0].tstart + 10 * u.min
    intervals = [Time([start, start + 20 * u.min]), Time(["2021-03-02T11:00:00", "2021-03-03T12:10:00"])]
    sel, gsel = ours.select_time(intervals), theirs.select_time(intervals)
    assert sel.ids == gsel.ids == ["110380", "111140", "111159"]
    for o, g in zip(sel, gsel, strict=True):
        np.testing.assert_allclose(o.gti.time_sum, g.gti.time_sum.to_value("s"), rtol=1e-10)
        np.testing.assert_allclose(
            o.observation_live_time_duration, g.observation_live_time_duration.to_value("s"), rtol=1e-10
        )
        assert len(o.events) == len(g.events.table)
        assert abs((o.tstart - g.tstart).to_value("s")) < 1e-6
    # the unselected observation is untouched
    assert ours[0].gti.time_sum == 1800.0 and len(ours[0].events) == N_EVENTS[110380]
    assert (
        ours["111140"].obs_id == 111140 and len(ours[1:3]) == 2 and ours[[0, 2]].ids == ["110380", "111159"]
    )


def test_obs_table_selections_equal_gammapy(store: DataStore, gp_store) -> None:
    ot, got = store.obs_table, gp_store.obs_table
    cones = [
        {
            "type": "sky_circle",
            "frame": "galactic",
            "lon": "0 deg",
            "lat": "0 deg",
            "radius": "2 deg",
            "border": "0.5 deg",
        },
        {"type": "sky_circle", "frame": "icrs", "lon": 266 * u.deg, "lat": -29 * u.deg, "radius": 2 * u.deg},
        {
            "type": "sky_circle",
            "frame": "galactic",
            "lon": "0 deg",
            "lat": "0 deg",
            "radius": "2 deg",
            "inverted": True,
        },
    ]
    for cone in cones:
        assert (
            ot.select_observations(cone)["OBS_ID"].tolist()
            == got.select_observations(cone)["OBS_ID"].tolist()
        )
    assert ot.select_observations(cones[0])["OBS_ID"].tolist() == [110380, 111140, 111159]
    time_range = Time(["2021-01-21T11:00:00", "2021-03-02T12:10:00"])
    for partial in (False, True):
        ours = ot.select_time_range(time_range, partial_overlap=partial)["OBS_ID"].tolist()
        assert ours == got.select_time_range(time_range, partial_overlap=partial)["OBS_ID"].tolist()
    assert ot.select_time_range(time_range)["OBS_ID"].tolist() == [110380]
    par = {"type": "par_box", "variable": "RA_PNT", "value_range": [260, 268] * u.deg}
    assert ot.select_observations(par)["OBS_ID"].tolist() == got.select_observations(par)["OBS_ID"].tolist()
    assert ot.select_obs_id([111159, 110380])["OBS_ID"].tolist() == [111159, 110380]
    assert got.select_obs_id([111159, 110380])["OBS_ID"].tolist() == [111159, 110380]
    np.testing.assert_array_equal(ot.pointing_galactic.l.deg, got.pointing_galactic.l.deg)
    assert np.all((ot.time_start - got.time_start).to_value("s") == 0)

    # DataStore.select: Gammapy's Analysis._make_obs_table_selection
    cone = {"frame": "galactic", "lon": 0 * u.deg, "lat": 0 * u.deg, "radius": 2 * u.deg}
    expected = got.select_observations({"type": "sky_circle", "border": "0 deg", **cone})["OBS_ID"].tolist()
    assert store.select(cone=cone) == expected == [110380, 111140, 111159]
    assert store.select(obs_ids=[111630, 110380], cone=cone) == [110380]
    assert store.select(obs_ids=[111630, 110380]) == [111630, 110380]
    assert store.select() == OBS_IDS
    assert store.select(cone={"frame": "icrs", "lon": None, "lat": None, "radius": None}) == OBS_IDS
    assert store.select(time=("2021-01-21T12:10:00", "2021-03-02T12:00:00")) == [110380, 111140]
    with pytest.raises(ValueError, match=r"OBS_ID \[1\] not in the table"):
        store.select(obs_ids=[1, 110380])
    with pytest.raises(ValueError, match="radius"):
        store.select(cone={"frame": "icrs", "lon": "1 deg", "lat": "1 deg"})


def test_irfs_load_once_and_are_shared(data_dir: Path) -> None:
    from jaxgamma import irf

    store = DataStore.from_dir(data_dir / STORE)
    observations = store.get_observations([110380, 111140, 111159])
    expected = {
        "aeff": "EffectiveAreaTable2D",
        "edisp": "EnergyDispersion2D",
        "psf": "EnergyDependentMultiGaussPSF",
        "bkg": "Background3D",
    }
    for obs in observations:
        for name, cls_name in expected.items():
            assert type(getattr(obs, name)) is getattr(irf, cls_name)
        assert len(obs.events) == N_EVENTS[obs.obs_id] and obs.gti.time_sum == 1800.0
    # one read of the IRF file for the three observations, one per events file (EVENTS + GTI)
    assert store._cache.n_file_reads == 4
    assert observations[0].aeff is observations[2].aeff
    assert observations[0].rad_max is None


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_input(store: DataStore, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OBS_ID = 42 not in the HDU index table"):
        store.obs(42)
    with pytest.raises(ValueError, match="Missing obs_id: 42"):
        store.get_observations([110380, 42])
    assert store.get_observations([42, 110380], skip_missing=True).ids == ["110380"]
    with pytest.raises(ValueError, match="required_irf 'fuul'"):
        store.obs(110380, required_irf="fuul")
    with pytest.raises(ValueError, match=r"\['psff'\] are not valid HDU types"):
        store.obs(110380, required_irf=["aeff", "psff"])
    with pytest.raises(ValueError, match="is not a folder"):
        DataStore.from_dir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"hdu-index\.fits\.gz' does not exist"):
        DataStore.from_dir(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"observation index table .*missing\.fits' does not exist"):
        DataStore.from_dir(data_dir / STORE, obs_table_filename="missing.fits")

    # an index without a required column
    bad = _copy_index(
        data_dir, tmp_path / "nocol", edit=lambda t: t[[c for c in t.colnames if c != "HDU_NAME"]]
    )
    with pytest.raises(ValueError, match=r"hdu-index.fits.gz'.*columns \['HDU_NAME'\] are missing"):
        DataStore.from_dir(bad)


def test_missing_hdus_and_files(data_dir: Path, tmp_path: Path, gp_store) -> None:
    import gammapy.data

    def edit(t: Table) -> Table:
        drop = (t["OBS_ID"] == 111140) & (np.char.strip(t["HDU_TYPE"].astype(str)) == "bkg")
        t = t[~drop]
        # 111159: its events file does not exist; 111630: its bkg HDU name is wrong and its PSF
        # file does not exist
        rows = (t["OBS_ID"] == 111159) & (np.char.strip(t["HDU_TYPE"].astype(str)) == "events")
        t["FILE_NAME"] = t["FILE_NAME"].astype("U40")
        t["HDU_NAME"] = t["HDU_NAME"].astype("U40")
        t["FILE_NAME"][rows] = "nothere_111159.fits"
        rows = (t["OBS_ID"] == 111630) & (np.char.strip(t["HDU_TYPE"].astype(str)) == "bkg")
        t["HDU_NAME"][rows] = "BACKGROUNDX"
        rows = (t["OBS_ID"] == 111630) & (np.char.strip(t["HDU_TYPE"].astype(str)) == "psf")
        t["FILE_NAME"][rows] = "nothere_irf.fits"
        return t

    path = _copy_index(data_dir, tmp_path / "store", edit=edit)
    store = DataStore.from_dir(path)
    gp = gammapy.data.DataStore.from_dir(path)

    # a required HDU not in the index: ValueError from obs(), skipped by get_observations (as Gammapy)
    with pytest.raises(MissingRequiredHDU, match=r"Required HDUs \['bkg'\] not found in observation 111140"):
        store.obs(111140)
    assert isinstance(MissingRequiredHDU("x"), ValueError)
    for required, ids in (("full-enclosure", ["110380"]), ("point-like", ["110380", "111140"])):
        ours = store.get_observations([110380, 111140], required_irf=required)
        assert ours.ids == gp.get_observations([110380, 111140], required_irf=required).ids == ids
    assert store.get_observations([111140], required_irf=["aeff", "edisp", "psf"]).ids == ["111140"]
    assert store.get_observations([111140], required_irf="all-optional")[0].available_irfs == [
        "aeff",
        "edisp",
        "psf",
    ]
    assert store.get_observations([111140], required_irf="full").ids == []
    assert store.obs(111140, required_irf="point-like").bkg is None

    # a required file that does not exist: ValueError naming the observation, HDU and file
    with pytest.raises(
        ValueError,
        match=r"observation 111159: the events HDU 'EVENTS' \(class events\) is in file .*nothere_111159.fits",
    ) as err:
        store.obs(111159)
    # ... with the full expected path and the index table's file
    assert str(Path(store.hdu_table.base_dir)) in str(err.value)
    assert "hdu-index.fits" in str(err.value) and "<table>" not in str(err.value)
    # optional HDUs fail on access, naming the observation, the HDU and the file
    obs = store.obs(111630, required_irf=["aeff"])
    assert obs.aeff is not None and len(obs.events) == N_EVENTS[111630]
    with pytest.raises(ValueError, match=r"observation 111630: psf HDU .*nothere_irf.fits' does not exist"):
        obs.psf  # noqa: B018
    with pytest.raises(
        ValueError,
        match=r"observation 111630: bkg HDU 'BACKGROUNDX'.*HDUs present: \['PRIMARY', 'EFFECTIVE AREA'",
    ):
        obs.bkg  # noqa: B018


def test_single_gzip_file_store(data_dir: Path, tmp_path: Path) -> None:
    """HESS-style files: events, GTI and IRFs in one gzipped file, read (decompressed) once."""
    obs_id = 110380
    with fits.open(data_dir / EVENTS_FILE.format(obs_id)) as ev, fits.open(data_dir / IRF_FILE) as irf_file:
        hdus = fits.HDUList([fits.PrimaryHDU(), ev["EVENTS"].copy(), ev["GTI"].copy()])
        hdus += [h.copy() for h in irf_file[1:]]
        path = tmp_path / "data" / f"run_{obs_id}.fits.gz"
        path.parent.mkdir()
        hdus.writeto(path)

    def edit(t: Table) -> Table:
        t = t[t["OBS_ID"] == obs_id]
        t["FILE_DIR"] = "data"
        t["FILE_NAME"] = path.name
        return t

    index = tmp_path / "index"
    _copy_index(data_dir, index, edit=edit, obs_edit=lambda t: t[t["OBS_ID"] == obs_id])
    shutil.move(index / "hdu-index.fits.gz", tmp_path / "hdu-index.fits.gz")
    store = DataStore.from_dir(tmp_path, obs_table_filename=index / "obs-index.fits.gz")
    obs = store.obs(obs_id)
    assert obs.observation_live_time_duration == pytest.approx(1764.000034326, rel=1e-12)
    assert [type(getattr(obs, n)).__name__ for n in obs.available_irfs] == [
        "EffectiveAreaTable2D",
        "EnergyDispersion2D",
        "EnergyDependentMultiGaussPSF",
        "Background3D",
    ]
    assert len(obs.events) == N_EVENTS[obs_id]
    assert store._cache.n_file_reads == 1

    reference = DataStore.from_dir(data_dir / STORE).obs(obs_id)
    np.testing.assert_array_equal(obs.events.energy, reference.events.energy)
    np.testing.assert_array_equal(obs.aeff.data, reference.aeff.data)

    # Observation.read finds the IRFs by HDUCLAS2
    read = Observation.read(path)
    assert read.obs_id == obs_id and read.available_irfs == ["aeff", "edisp", "psf", "bkg"]
    np.testing.assert_array_equal(read.events.ra, reference.events.ra)
    assert type(read.psf).__name__ == "EnergyDependentMultiGaussPSF"
    assert read.gti.time_sum == 1800.0


def test_observation_pickles_and_in_memory(store: DataStore) -> None:
    obs = store.obs(110380)
    clone = pickle.loads(pickle.dumps(obs))
    assert len(clone.events) == N_EVENTS[110380] and clone.gti.time_sum == 1800.0

    # Observation.create, as Gammapy's (no events, in-memory IRFs)
    pointing = SkyCoord(83.63, 22.01, unit="deg")
    sim = Observation.create(pointing, livetime="2 h", deadtime_fraction=0.1, irfs={"aeff": obs.aeff})
    assert sim.observation_time_duration == 7200.0
    assert sim.observation_live_time_duration == pytest.approx(6480.0, rel=1e-14)
    assert sim.available_irfs == ["aeff"] and sim.aeff is obs.aeff and sim.events is None
    assert sim.pointing_radec.ra.deg == 83.63 and sim.tstart.isot == "2000-01-01T00:00:00.000"
    assert isinstance(sim.pointing, FixedPointingInfo) and sim.pointing.mode == "POINTING"
    observations = Observations([obs, sim])
    assert observations.ids == ["110380", "0"]
    with pytest.raises(TypeError):
        observations.append("110380")
    with pytest.raises(ValueError, match="give livetime or tstop"):
        Observation.create(pointing)
    # no pointing anywhere: an error naming the observation
    bare = Observation(obs_id=7, gti=GTI([0.0], [10.0]))
    with pytest.raises(ValueError, match="observation 7: no pointing"):
        bare.pointing_radec  # noqa: B018
    assert bare.observation_live_time_duration == 10.0


# -- EventList and GTI on their own --------------------------------------------------------------------
def test_eventlist_read_and_errors(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / EVENTS_FILE.format(110380)
    ev = EventList.read(path)
    assert len(ev) == N_EVENTS[110380] and ev.table["RA"].dtype == np.float32
    assert ev.energy.dtype == np.float64 and ev.time.dtype == np.float64
    assert ev.radec.frame.name == "icrs" and ev.galactic.frame.name == "galactic"
    assert ev.observation_live_time_duration == 1764.0
    assert ev.observation_dead_time_fraction == pytest.approx(1 - 0.98000001907, rel=1e-12)
    stacked = EventList.from_stack([ev, ev.select_row_subset(slice(0, 10))])
    assert len(stacked) == N_EVENTS[110380] + 10
    back = EventList.from_table_hdu(ev.select_row_subset(slice(0, 100)).to_table_hdu())
    for name in ("ra", "dec", "energy", "time"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ev, name)[:100])
    np.testing.assert_array_equal(back.table["MC_ID"], ev.table["MC_ID"][:100])
    assert back.time_ref == ev.time_ref

    # energies in GeV are converted to TeV
    with fits.open(path) as hdulist:
        events = hdulist["EVENTS"].copy()
    columns = []
    for col in events.columns:
        if col.name == "ENERGY":
            col = fits.Column("ENERGY", "E", unit="GeV", array=events.data["ENERGY"] * 1000)
        columns.append(col)
    converted = fits.BinTableHDU.from_columns(columns, header=events.header, name="EVENTS")
    np.testing.assert_allclose(EventList.from_table_hdu(converted).energy, ev.energy, rtol=1e-6)

    no_dec = fits.BinTableHDU.from_columns(
        [c for c in events.columns if c.name != "DEC"], header=events.header
    )
    fits.HDUList([fits.PrimaryHDU(), no_dec]).writeto(tmp_path / "nodec.fits")
    with pytest.raises(ValueError, match=r"nodec.fits: HDU 'EVENTS' has no column 'DEC'"):
        EventList.read(tmp_path / "nodec.fits")
    with pytest.raises(ValueError, match="HDU 'EVENTZ' is missing"):
        EventList.read(path, hdu="EVENTZ")
    bad_unit = fits.BinTableHDU.from_columns(
        [fits.Column("RA", "E", unit="m", array=np.zeros(2))], name="EVENTS"
    )
    with pytest.raises(ValueError, match="column 'RA': unit 'm' is not convertible to 'deg'"):
        EventList.from_table_hdu(bad_unit, where="x.fits")


def test_gti_equals_gammapy(data_dir: Path, tmp_path: Path) -> None:
    gammapy_data = pytest.importorskip("gammapy.data")
    path = data_dir / EVENTS_FILE.format(111630)
    gti, ggti = GTI.read(path), gammapy_data.GTI.read(path)
    assert gti.time_ref == ggti.time_ref and gti.timesys == "tt"
    np.testing.assert_array_equal((gti.time_start - ggti.time_start).to_value("s"), 0)
    np.testing.assert_array_equal(gti.met_stop, ggti.met_stop.to_value("s"))
    assert len(gti.table) == 1 and gti.time_intervals[0][0] == gti.time_start[0]
    assert "Number of GTIs: 1" in str(gti)

    # union and cropping, against Gammapy on random intervals
    rng = np.random.default_rng(1)
    start = np.round(rng.uniform(0, 1000, 40))
    stop = start + np.round(rng.uniform(0, 60, 40))
    start[5], stop[5] = stop[4], stop[4] + 10  # touching intervals
    ours = GTI.create(start * u.s, stop * u.s)
    theirs = gammapy_data.GTI.create(start * u.s, stop * u.s)
    for merge_equal in (True, False):
        a, b = ours.union(merge_equal=merge_equal), theirs.union(merge_equal=merge_equal)
        # Gammapy's Time arithmetic adds ~1e-12 s of noise to the round numbers
        np.testing.assert_allclose(a.met_start, b.met_start.to_value("s"), rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.met_stop, b.met_stop.to_value("s"), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(a.met_start, np.unique(a.met_start))
    with pytest.raises(ValueError, match="overlapping"):
        ours.union(overlap_ok=False)
    interval = ours.time_ref + [200, 600] * u.s
    a, b = ours.select_time(interval), theirs.select_time(interval)
    np.testing.assert_allclose(a.met_start, b.met_start.to_value("s"), atol=1e-6)
    np.testing.assert_allclose(a.met_stop, b.met_stop.to_value("s"), atol=1e-6)
    np.testing.assert_allclose(a.time_sum, b.time_sum.to_value("s"), rtol=1e-12)
    # inverted: the parts outside [200, 600) s
    inv = ours.select_time(interval, inverted=True)
    np.testing.assert_allclose(inv.union().time_sum + a.union().time_sum, ours.union().time_sum, rtol=1e-12)

    # write / read round trip and the HDU layout
    gti.write(tmp_path / "gti.fits")
    back = GTI.read(tmp_path / "gti.fits")
    np.testing.assert_array_equal(back.start, gti.start)
    np.testing.assert_array_equal(back.stop, gti.stop)
    assert (back.mjdrefi, back.mjdreff, back.timesys) == (gti.mjdrefi, gti.mjdreff, gti.timesys)
    assert gammapy_data.GTI.read(tmp_path / "gti.fits").time_sum.to_value("s") == pytest.approx(
        gti.time_sum, rel=1e-14
    )
    hdu = fits.BinTableHDU.from_columns([fits.Column("START", "D", array=[0.0])], name="GTI")
    with pytest.raises(ValueError, match="HDU 'GTI' has no column 'STOP'"):
        GTI.from_table_hdu(hdu, where="f.fits")
    hdu = fits.BinTableHDU.from_columns(
        [fits.Column("START", "D", array=[0.0]), fits.Column("STOP", "D", array=[1.0])], name="GTI"
    )
    with pytest.raises(ValueError, match="'MJDREFI'/'MJDREFF' are missing"):
        GTI.from_table_hdu(hdu, where="f.fits")
    hdu.header["MJDREF"] = 51910.5
    hdu.header["TIMEUNIT"] = "d"
    g = GTI.from_table_hdu(hdu)
    assert (g.mjdrefi, g.mjdreff, g.time_sum) == (51910.0, 0.5, 86400.0)


def test_gti_moved_and_reexported() -> None:
    from jaxgamma.data import gti as gti_module
    from jaxgamma.datasets import spectrum
    from jaxgamma.io import ogip

    assert (
        spectrum.GTI is GTI
        and ogip._read_gti is gti_module._read_gti
        and ogip._gti_hdu is gti_module._gti_hdu
    )
    # the stacking union the datasets use
    a = GTI([0.0, 100.0], [50.0, 250.0], mjdrefi=51910, mjdreff=0.5)
    b = GTI([43200.0], [43260.0], mjdrefi=51910, mjdreff=0.0)  # 0 .. 60 s in a's reference
    merged = a.stack_union([b])
    np.testing.assert_array_equal(merged.start, [0.0, 100.0])
    np.testing.assert_array_equal(merged.stop, [60.0, 250.0])


def test_gzip_index_and_uncompressed_default(data_dir: Path, tmp_path: Path) -> None:
    """``hdu-index.fits`` (uncompressed) is found when the .gz default is absent."""
    path = _copy_index(data_dir, tmp_path / "plain")
    for name in ("hdu-index", "obs-index"):
        gz = path / f"{name}.fits.gz"
        (path / f"{name}.fits").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = DataStore.from_dir(path)
    assert store.obs_ids.tolist() == OBS_IDS and len(store.obs_table) == 4
    assert len(store.obs(111630).events) == N_EVENTS[111630]
