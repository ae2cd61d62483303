"""Point-like IRFs (a RAD_MAX cut): ``RadMax2D``, ``EventList.select_rad_max``, point ON regions,
the 1D reduction with reflected (wobble) OFF positions, against Gammapy 2.1 and against a
simulation with known truth.

The point-like IRF files are made here from the CTA-1DC South_z20_50h IRFs: the effective area
times the PSF containment within the cut (an energy- and offset-dependent ``RAD_MAX`` HDU, or a
fixed cut in the effective area's ``RAD_MAX`` keyword), the energy dispersion as it is. The events
are the CTA-1DC Galactic-centre runs (real DL3 event lists), the ON position the Galactic centre.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from regions import CircleSkyRegion, PointSkyRegion

import jaxgamma as jg
from jaxgamma.data import DataStore, Observation
from jaxgamma.datasets import Datasets, ObservationEventSampler, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.geom import MapAxis, RegionGeom
from jaxgamma.irf import EffectiveAreaTable2D, EnergyDispersion2D, RadMax2D, load_irf_dict_from_file
from jaxgamma.makers import (
    ReflectedRegionsBackgroundMaker,
    ReflectedRegionsFinder,
    SafeMaskMaker,
    SpectrumDatasetMaker,
    WobbleRegionsFinder,
)
from jaxgamma.models import Models, PointSpatialModel, PowerLawSpectralModel, SkyModel

IRF = "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"
EVENTS = "cta-1dc/data/baseline/gps/gps_baseline_{}.fits"
OBS_IDS = (110380, 111140)
FIXED_CUT = 0.12  # deg
TARGET = SkyCoord(0, 0, unit="deg", frame="galactic").icrs


def cut(energy, offset):
    """The energy- and offset-dependent cut of the RAD_MAX HDU (deg)."""
    return np.clip(0.25 * (energy / 0.1) ** -0.25, 0.05, 0.3) * (1 + 0.05 * offset)


def pointlike_irfs(irfs: dict, fixed: float | None = None) -> dict:
    """Point-like IRFs from full-enclosure ones: aeff x PSF containment within the cut."""
    aeff, edisp, psf = irfs["aeff"], irfs["edisp"], irfs["psf"]
    energy_true = aeff.axes["energy_true"].center[:, None]
    offset = aeff.axes["offset"].center[None, :]
    radius = cut(energy_true, offset) if fixed is None else fixed
    containment = psf.containment(rad=radius, offset=offset, energy_true=energy_true)
    meta = {**aeff.meta, **({} if fixed is None else {"RAD_MAX": fixed})}
    out = {
        "aeff": EffectiveAreaTable2D(aeff.axes, aeff.data * containment, aeff.unit, meta=meta, is_pointlike=True),
        "edisp": EnergyDispersion2D(edisp.axes, edisp.data, edisp.unit, meta=edisp.meta, is_pointlike=True),
    }
    if fixed is None:
        energy = MapAxis.from_energy_bounds(0.01, 300, 12, unit="TeV", name="energy")
        values = cut(energy.center[:, None], aeff.axes["offset"].center[None, :])
        out["rad_max"] = RadMax2D([energy, aeff.axes["offset"]], values, is_pointlike=True)
    return out


@pytest.fixture(scope="module")
def full_irfs(data_dir: Path) -> dict:
    return load_irf_dict_from_file(data_dir / IRF)


@pytest.fixture(scope="module")
def irf_files(full_irfs: dict, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pointlike")
    files = {}
    for kind, fixed in (("table", None), ("fixed", FIXED_CUT)):
        irfs = pointlike_irfs(full_irfs, fixed)
        files[kind] = folder / f"irf_{kind}.fits"
        fits.HDUList([fits.PrimaryHDU(), *[irf.to_table_hdu() for irf in irfs.values()]]).writeto(files[kind])
    return files


@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


def axes() -> tuple[MapAxis, MapAxis]:
    energy = MapAxis.from_energy_bounds(0.1, 40, 12, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.05, 100, 20, unit="TeV", name="energy_true")
    return energy, energy_true


def reduce(observation: Observation, region, n_off: int = 3, name: str = "a") -> SpectrumDatasetOnOff:
    energy, energy_true = axes()
    empty = SpectrumDataset.create(RegionGeom.create(region, axes=[energy]), energy_axis_true=energy_true, name=name)
    dataset = SpectrumDatasetMaker(selection=["counts", "exposure", "edisp"]).run(empty, observation)
    finder = WobbleRegionsFinder(n_off_regions=n_off)
    onoff = ReflectedRegionsBackgroundMaker(region_finder=finder).run(dataset, observation)
    return SafeMaskMaker(methods=["aeff-max"], aeff_percent=10).run(onoff, observation)


def gammapy_reduce(gp, event_file: Path, irf_file: Path, region, n_off: int = 3):
    from gammapy.data import Observation as GObservation
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.makers import ReflectedRegionsBackgroundMaker as GReflected
    from gammapy.makers import SafeMaskMaker as GSafe
    from gammapy.makers import SpectrumDatasetMaker as GMaker
    from gammapy.makers import WobbleRegionsFinder as GWobble
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import RegionGeom as GRegionGeom

    energy = GMapAxis.from_energy_bounds(0.1, 40, 12, unit="TeV", name="energy")
    energy_true = GMapAxis.from_energy_bounds(0.05, 100, 20, unit="TeV", name="energy_true")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observation = GObservation.read(event_file, irf_file=irf_file)
        empty = GSpectrumDataset.create(GRegionGeom.create(region, axes=[energy]), energy_axis_true=energy_true)
        dataset = GMaker(selection=["counts", "exposure", "edisp"]).run(empty, observation)
        onoff = GReflected(region_finder=GWobble(n_off_regions=n_off)).run(dataset, observation)
        return GSafe(methods=["aeff-max"], aeff_percent=10).run(onoff, observation), observation


# -- RadMax2D -------------------------------------------------------------------------------------
def test_rad_max_table_round_trip_and_evaluation(full_irfs: dict, tmp_path: Path):
    rad_max = pointlike_irfs(full_irfs)["rad_max"]
    energy, offset = rad_max.axes["energy"], rad_max.axes["offset"]
    # at the nodes the table itself, between them linear in log energy, outside 0 (Gammapy's fill)
    np.testing.assert_allclose(rad_max.evaluate(energy=energy.center[:, None], offset=offset.center), rad_max.data, rtol=1e-12)
    e_mid = np.sqrt(energy.center[3] * energy.center[4])
    expected = 0.5 * (rad_max.data[3, 2] + rad_max.data[4, 2])
    assert rad_max.evaluate(energy=e_mid, offset=offset.center[2]) == pytest.approx(expected, rel=1e-12)
    assert rad_max.evaluate(energy=1e4, offset=1.0) == 0.0
    nearest = rad_max.evaluate(method="nearest", energy=energy.center[5] * 1.01, offset=offset.center[1] + 0.1)
    assert nearest == rad_max.data[5, 1]
    assert not rad_max.is_fixed_rad_max and rad_max.is_pointlike
    path = tmp_path / "rad_max.fits"
    rad_max.write(path)
    header = fits.getheader(path, "RAD_MAX")
    assert (header["HDUCLAS2"], header["HDUCLAS3"], header["HDUCLAS4"]) == ("RAD_MAX", "POINT-LIKE", "RAD_MAX_2D")
    back = RadMax2D.read(path)
    np.testing.assert_array_equal(back.data, rad_max.data)
    assert back.axes["energy"] == energy and back.axes["offset"] == offset and back.is_pointlike
    ax = back.plot_rad_max_vs_energy()
    assert len(ax.lines) == offset.nbin and ax.get_ylabel() == "Rad max. [deg]"


def test_fixed_rad_max_from_the_effective_area(full_irfs: dict):
    aeff = pointlike_irfs(full_irfs, FIXED_CUT)["aeff"]
    rad_max = RadMax2D.from_irf(aeff)
    assert rad_max.is_fixed_rad_max and rad_max.axes.shape == (1, 1)
    energy_true = aeff.axes["energy_true"]
    assert rad_max.axes["energy"].edges[[0, -1]] == pytest.approx(energy_true.edges[[0, -1]])
    # nearest without bounds: the cut everywhere, also beyond the IRF's ranges
    np.testing.assert_array_equal(rad_max.evaluate(energy=[1e-4, 1.0, 1e4], offset=[0.0, 3.0, 20.0]), FIXED_CUT)
    with pytest.raises(ValueError, match="point-like"):
        RadMax2D.from_irf(full_irfs["aeff"])
    no_keyword = EffectiveAreaTable2D(aeff.axes, aeff.data, aeff.unit, is_pointlike=True)
    with pytest.raises(ValueError, match="no RAD_MAX keyword"):
        RadMax2D.from_irf(no_keyword)
    with pytest.raises(ValueError, match="must be a float"):
        RadMax2D.from_irf(EffectiveAreaTable2D(aeff.axes, aeff.data, aeff.unit, meta={"RAD_MAX": "0.1"}, is_pointlike=True))
    with pytest.raises(ValueError, match="method"):
        RadMax2D(rad_max.axes, 0.1, method="cubic")


def test_load_irf_dict_and_observation_rad_max(irf_files: dict, data_dir: Path):
    table = load_irf_dict_from_file(irf_files["table"])
    assert sorted(table) == ["aeff", "edisp", "rad_max"]
    assert table["aeff"].is_pointlike and table["edisp"].is_pointlike and not table["rad_max"].is_fixed_rad_max
    fixed = load_irf_dict_from_file(irf_files["fixed"])  # no RAD_MAX HDU: the keyword's cut
    assert fixed["rad_max"].is_fixed_rad_max and fixed["rad_max"].data[0, 0] == FIXED_CUT
    events = data_dir / EVENTS.format(OBS_IDS[0])
    obs = Observation.read(events, irf_files["table"])
    np.testing.assert_array_equal(obs.rad_max.data, table["rad_max"].data)
    obs_fixed = Observation.read(events, irf_files["fixed"])
    assert obs_fixed.rad_max.is_fixed_rad_max and "rad_max" not in obs_fixed.available_irfs
    assert Observation.read(events, data_dir / IRF).rad_max is None  # full-enclosure IRFs: no cut
    # a data store made from the event files lists the RAD_MAX HDU
    store = DataStore.from_events_files([events], irfs_paths=irf_files["table"])
    assert "rad_max" in list(store.hdu_table["HDU_TYPE"])
    assert store.obs(OBS_IDS[0], required_irf="point-like").rad_max.axes.shape == (12, 6)


@pytest.mark.gammapy
def test_gammapy_reads_the_rad_max_table_and_agrees(irf_files: dict, gp):
    from gammapy.irf import RadMax2D as GRadMax2D
    from gammapy.irf import load_irf_dict_from_file as gload

    ours = load_irf_dict_from_file(irf_files["table"])["rad_max"]
    theirs = GRadMax2D.read(irf_files["table"], hdu="RAD_MAX")
    energy = np.geomspace(0.005, 500, 37)[:, None]
    offset = np.linspace(0, 7, 15)[None, :]
    for method in (None, "nearest"):
        expected = theirs.evaluate(method=method, energy=energy * u.TeV, offset=offset * u.deg).to_value("deg")
        np.testing.assert_allclose(ours.evaluate(method=method, energy=energy, offset=offset), expected, rtol=1e-12, atol=0)
    fixed = gload(irf_files["fixed"])["rad_max"]
    assert fixed.is_fixed_rad_max
    np.testing.assert_allclose(fixed.quantity.to_value("deg"), load_irf_dict_from_file(irf_files["fixed"])["rad_max"].data)


@pytest.mark.gammapy
def test_select_rad_max_matches_gammapy(irf_files: dict, data_dir: Path, gp):
    from gammapy.data import EventList as GEventList
    from gammapy.irf import RadMax2D as GRadMax2D

    path = data_dir / EVENTS.format(OBS_IDS[0])
    obs = Observation.read(path, irf_files["table"])
    selected = obs.events.select_rad_max(obs.rad_max, position=TARGET)
    gevents = GEventList.read(path)
    gselected = gevents.select_rad_max(GRadMax2D.read(irf_files["table"], hdu="RAD_MAX"), position=TARGET)
    assert len(selected.table) == len(gselected.table) > 400
    np.testing.assert_array_equal(selected.table["EVENT_ID"], gselected.table["EVENT_ID"])
    # known truth: every selected event lies within the cut at its energy (nearest table bin)
    offset = TARGET.separation(obs.pointing_radec).deg
    energy_axis, offset_axis = obs.rad_max.axes["energy"], obs.rad_max.axes["offset"]
    i = np.clip(np.searchsorted(energy_axis.edges, selected.energy) - 1, 0, energy_axis.nbin - 1)
    j = int(np.argmin(np.abs(offset_axis.center - offset)))
    assert np.all(TARGET.separation(selected.radec).deg <= obs.rad_max.data[i, j] + 1e-12)


# -- the 1D reduction against Gammapy -----------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.parametrize(("kind", "shape"), [("table", "point"), ("fixed", "circle"), ("fixed", "point")])
def test_pointlike_reduction_matches_gammapy(irf_files: dict, data_dir: Path, gp, kind: str, shape: str):
    """Counts within the cut, wobble OFF counts, acceptances, exposure, energy dispersion, safe mask
    and the WStat of a power law: as Gammapy's, for two runs (offsets 1.3 and 2.0 deg)."""
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel

    region = PointSkyRegion(TARGET) if shape == "point" else CircleSkyRegion(TARGET, FIXED_CUT * u.deg)
    model = SkyModel(spectral_model=PowerLawSpectralModel(index=2.3, amplitude="2e-12 cm-2 s-1 TeV-1"), name="src")
    for obs_id in OBS_IDS:
        path = data_dir / EVENTS.format(obs_id)
        ours = reduce(Observation.read(path, irf_files[kind]), region)
        theirs, _ = gammapy_reduce(gp, path, irf_files[kind], region)
        assert np.array_equal(ours.counts, theirs.counts.data.ravel()) and ours.counts.sum() > 200
        assert np.array_equal(ours.counts_off, theirs.counts_off.data.ravel()) and ours.counts_off.sum() > 150
        assert np.array_equal(ours.acceptance_off, theirs.acceptance_off.data.ravel().astype(float))
        assert np.all(ours.acceptance_off == 3.0)
        np.testing.assert_allclose(ours.exposure, theirs.exposure.quantity.to_value("cm2 s").ravel(), rtol=1e-12)
        np.testing.assert_allclose(ours.edisp, theirs.edisp.get_edisp_kernel().data, atol=1e-12)
        assert np.array_equal(ours.mask_safe, theirs.mask_safe.data.ravel())
        gmodel = GSkyModel(spectral_model=GPowerLaw(index=2.3, amplitude="2e-12 cm-2 s-1 TeV-1"), name="src")
        theirs.models = [gmodel]
        assert float(ours.stat_sum(Models([model]))) == pytest.approx(float(theirs.stat_sum()), rel=1e-9)


@pytest.mark.gammapy
def test_overlapping_wobble_positions_give_no_off_counts_as_gammapy(irf_files: dict, data_dir: Path, gp, caplog):
    """Twenty OFF positions 0.39 deg apart at 1.3 deg offset, where the cut reaches 0.22 deg in the
    cut's bins touching 0.1-40 TeV: the ON and OFF circles overlap, so no OFF position is kept and
    the spectrum is masked out (twelve, 0.62 deg apart, do not overlap)."""
    path = data_dir / EVENTS.format(OBS_IDS[0])
    with caplog.at_level(logging.WARNING, logger="jaxgamma.makers.reflected"):
        ours = reduce(Observation.read(path, irf_files["table"]), PointSkyRegion(TARGET), n_off=20)
    assert "overlapping on/off regions" in caplog.text
    theirs, _ = gammapy_reduce(gp, path, irf_files["table"], PointSkyRegion(TARGET), n_off=20)
    assert not np.any(ours.mask_safe) and not np.any(theirs.mask_safe.data)
    assert ours.counts_off is None and theirs.counts_off is None
    kept = reduce(Observation.read(path, irf_files["table"]), PointSkyRegion(TARGET), n_off=12)
    assert np.all(kept.acceptance_off == 12) and kept.counts_off.sum() > 0


@pytest.mark.gammapy
def test_point_region_spectrum_files_round_trip_and_gammapy_reads_them(irf_files: dict, data_dir: Path, gp, tmp_path):
    from gammapy.datasets import SpectrumDatasetOnOff as GOnOff

    onoff = reduce(Observation.read(data_dir / EVENTS.format(OBS_IDS[0]), irf_files["table"]), PointSkyRegion(TARGET))
    for fmt, name in (("ogip", "pha_a.fits"), ("gadf", "a.fits")):
        path = tmp_path / name
        onoff.write(path, format=fmt)
        back = SpectrumDatasetOnOff.read(path, format=fmt)
        assert back.geom.is_all_point_sky_regions
        assert back.geom.region.center.separation(TARGET).deg < 1e-9
        assert np.array_equal(back.counts, onoff.counts) and np.array_equal(back.counts_off, onoff.counts_off)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = GOnOff.read(path, format=fmt)
        assert type(theirs.counts.geom.region).__name__ == "PointSkyRegion"
        assert np.array_equal(theirs.counts_off.data.ravel(), onoff.counts_off)


@pytest.mark.gammapy
@pytest.mark.slow
def test_analysis_1d_with_a_fixed_cut_matches_gammapy(irf_files: dict, data_dir: Path, gp, tmp_path: Path):
    """Gammapy's Analysis 1D on point-like data: a circle ON region of the fixed cut's radius,
    no containment correction, reflected regions; the datasets as Gammapy's, the fit within 1 %
    of its errors."""
    from gammapy.analysis import Analysis as GAnalysis
    from gammapy.analysis import AnalysisConfig as GAnalysisConfig

    store = DataStore.from_events_files([data_dir / EVENTS.format(i) for i in OBS_IDS], irfs_paths=irf_files["fixed"])
    store.hdu_table.write(tmp_path / "hdu-index.fits.gz")
    store.obs_table.write(tmp_path / "obs-index.fits.gz")
    settings = {
        "observations": {"datastore": str(tmp_path), "obs_ids": list(OBS_IDS), "required_irf": ["aeff", "edisp"]},
        "datasets": {
            "type": "1d",
            "stack": False,
            "geom": {
                "axes": {
                    "energy": {"min": "0.1 TeV", "max": "40 TeV", "nbins": 12},
                    "energy_true": {"min": "0.05 TeV", "max": "100 TeV", "nbins": 20},
                }
            },
            "on_region": {"frame": "galactic", "lon": "0 deg", "lat": "0 deg", "radius": f"{FIXED_CUT} deg"},
            "containment_correction": False,
            "background": {"method": "reflected"},
            "safe_mask": {"methods": ["aeff-max"], "parameters": {"aeff_percent": 10}},
        },
    }
    ours, theirs = jg.Analysis(settings), GAnalysis(GAnalysisConfig(**settings))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for analysis in (ours, theirs):
            analysis.get_observations()
            analysis.get_datasets()
    assert len(ours.datasets) == len(theirs.datasets) == 2
    for d, g in zip(ours.datasets, theirs.datasets, strict=True):
        assert np.array_equal(d.counts, g.counts.data.ravel())
        assert np.array_equal(d.counts_off, g.counts_off.data.ravel())
        assert np.array_equal(d.acceptance_off, g.acceptance_off.data.ravel().astype(float))
        np.testing.assert_allclose(d.exposure, g.exposure.quantity.to_value("cm2 s").ravel(), rtol=1e-12)
    model = """
components:
- name: src
  type: SkyModel
  spectral:
    type: PowerLawSpectralModel
    parameters:
    - {name: index, value: 2.5}
    - {name: amplitude, value: 1.0e-12, unit: cm-2 s-1 TeV-1}
    - {name: reference, value: 1.0, unit: TeV, frozen: true}
"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for analysis in (ours, theirs):
            analysis.set_models(model)
            analysis.run_fit()
    assert ours.fit_result.success
    mine, gmodel = ours.models["src"].spectral_model, theirs.models["src"].spectral_model
    for name in ("index", "amplitude"):
        p, g = getattr(mine, name), getattr(gmodel, name)
        assert abs(p.value - g.value) < 0.01 * g.error, name
    # the containment correction is refused for point-like IRFs, as in Gammapy
    settings["datasets"]["containment_correction"] = True
    analysis = jg.Analysis(settings)
    analysis.get_observations()
    with pytest.raises(ValueError, match="containment correction for point-like"):
        analysis.get_datasets()


def test_wobble_points_and_exclusion():
    """Point OFF positions: equal rotations of the ON point about the pointing (same offset, 90 deg
    apart for three); an exclusion circle on the second drops it and keeps the others."""
    from jaxgamma.geom import WcsGeom

    pointing = TARGET.directional_offset_by(30 * u.deg, 1.3 * u.deg)
    points, _ = WobbleRegionsFinder(n_off_regions=3).run(PointSkyRegion(TARGET), pointing)
    assert len(points) == 3 and all(type(p).__name__ == "PointSkyRegion" for p in points)
    for k, point in enumerate(points):
        assert point.center.separation(pointing).deg == pytest.approx(1.3, abs=1e-3)
        angle = point.center.separation(TARGET).deg
        assert angle == pytest.approx(2 * 1.3 * np.sin(np.radians(90 * (k + 1)) / 2), rel=2e-3)
    geom = WcsGeom.create(skydir=pointing, width=5, binsz=0.02, frame="icrs")
    usable = geom.region_mask(CircleSkyRegion(points[1].center, 0.2 * u.deg), inside=False)
    kept, _ = WobbleRegionsFinder(n_off_regions=3).run(PointSkyRegion(TARGET), pointing, exclusion_mask=(geom, usable))
    assert len(kept) == 2
    for point, expected in zip(kept, (points[0], points[2]), strict=True):
        assert point.center.separation(expected.center).deg < 1e-9


# -- errors ---------------------------------------------------------------------------------------
def test_pointlike_errors(irf_files: dict, data_dir: Path):
    path = data_dir / EVENTS.format(OBS_IDS[0])
    table, fixed = Observation.read(path, irf_files["table"]), Observation.read(path, irf_files["fixed"])
    full = Observation.read(path, data_dir / IRF)
    energy, energy_true = axes()

    def empty(region):
        return SpectrumDataset.create(RegionGeom.create(region, axes=[energy]), energy_axis_true=energy_true, name="e")

    point, circle = PointSkyRegion(TARGET), CircleSkyRegion(TARGET, FIXED_CUT * u.deg)
    with pytest.raises(ValueError, match="containment correction for point-like"):
        SpectrumDatasetMaker(containment_correction=True, selection=["exposure"]).run(empty(circle), fixed)
    with pytest.raises(ValueError, match=r"point ON region.*RAD_MAX cut"):
        SpectrumDatasetMaker(selection=["counts"]).run(empty(point), full)
    with pytest.raises(ValueError, match="point-like IRFs have none"):
        SpectrumDatasetMaker(selection=["background"]).run(empty(point), table)
    with pytest.raises(TypeError, match="Use WobbleRegionsFinder"):
        ReflectedRegionsFinder().run(point, table.pointing_radec)
    made = SpectrumDatasetMaker(selection=["counts", "exposure", "edisp"]).run(empty(circle), table)
    with pytest.raises(ValueError, match=r"CircleSkyRegion.*energy or offset: use a PointSkyRegion"):
        ReflectedRegionsBackgroundMaker(region_finder=WobbleRegionsFinder(3)).run(made, table)
    wrong = SpectrumDatasetMaker(selection=["counts"]).run(empty(CircleSkyRegion(TARGET, 0.2 * u.deg)), fixed)
    with pytest.raises(ValueError, match=r"radius must be equal to RADMAX.*Expected 0\.12 deg got 0\.2 deg"):
        ReflectedRegionsBackgroundMaker(region_finder=WobbleRegionsFinder(3)).run(wrong, fixed)
    made_point = SpectrumDatasetMaker(selection=["counts"]).run(empty(point), table)
    with pytest.raises(ValueError, match="no RAD_MAX cut"):
        ReflectedRegionsBackgroundMaker(region_finder=WobbleRegionsFinder(3)).run(made_point, full)
    with pytest.raises(ValueError, match="cannot be combined"):
        RegionGeom.from_regions([point, circle])


# -- known truth ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_simulated_point_source_is_recovered_through_point_like_irfs(full_irfs: dict, data_dir: Path):
    """Events of a power law simulated with the full-enclosure IRFs (PSF, energy dispersion,
    background), reduced with the point-like IRFs of a fixed 0.2 deg cut (the effective area times
    the PSF containment) and wobble OFF positions, fitted with WStat: the simulated index and
    amplitude come back within 3.5 sigma; a point and a circle of the cut's radius give the same
    counts."""
    store = DataStore.from_dir(data_dir / "cta-1dc/index/gps")
    observation = store.obs(OBS_IDS[0])
    position = observation.pointing_radec.directional_offset_by(45 * u.deg, 0.7 * u.deg)
    truth = {"index": 2.4, "amplitude": 3e-11}
    spectral = PowerLawSpectralModel(index=truth["index"], amplitude=f"{truth['amplitude']} cm-2 s-1 TeV-1")
    source = SkyModel(
        spectral_model=spectral,
        spatial_model=PointSpatialModel(lon_0=f"{position.ra.deg} deg", lat_0=f"{position.dec.deg} deg", frame="icrs"),
        name="src",
    )
    energy_sim = MapAxis.from_energy_bounds("0.3 TeV", "30 TeV", nbin=4, per_decade=True)
    energy_true_sim = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=8, per_decade=True, name="energy_true")
    kwargs = dict(spatial_width="3 deg", spatial_bin_size="0.01 deg", energy_axis=energy_sim, energy_axis_true=energy_true_sim)
    simulated = ObservationEventSampler(random_state=7, dataset_kwargs=kwargs).run(observation, [source])
    cut_deg = 0.2
    irfs = pointlike_irfs(full_irfs, cut_deg)
    pointlike = simulated.copy(in_memory=True, aeff=irfs["aeff"], edisp=irfs["edisp"], psf=None, bkg=None)
    assert pointlike.rad_max.is_fixed_rad_max
    energy = MapAxis.from_energy_bounds(0.3, 30, 8, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.1, 100, 24, unit="TeV", name="energy_true")
    spectra = []
    for region in (PointSkyRegion(position), CircleSkyRegion(position, cut_deg * u.deg)):
        empty = SpectrumDataset.create(RegionGeom.create(region, axes=[energy]), energy_axis_true=energy_true, name="sim")
        dataset = SpectrumDatasetMaker(selection=["counts", "exposure", "edisp"]).run(empty, pointlike)
        spectra.append(ReflectedRegionsBackgroundMaker(region_finder=WobbleRegionsFinder(3)).run(dataset, pointlike))
    point, circle = spectra
    assert np.abs(point.counts - circle.counts).sum() <= 2 and point.counts.sum() > 1000
    start = SkyModel(spectral_model=PowerLawSpectralModel(index=2.0, amplitude="1e-11 cm-2 s-1 TeV-1"), name="src")
    result = jg.fit(Datasets([point]), Models([start]))
    assert result.success, result.message
    table = result.parameters_table()
    for name, value in truth.items():
        row = table[table["name"] == name][0]
        assert abs(row["value"] - value) < 3.5 * row["error"], (name, row["value"], row["error"], value)
    assert table[table["name"] == "index"][0]["error"] < 0.1
