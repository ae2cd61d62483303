"""Spectrum (1D) reduction: RegionGeom, SpectrumDatasetMaker, the reflected-regions background,
the safe mask of spectra and Analysis ``datasets.type: 1d``.

- Geometry without data: region containment against the angular separation (the tangent-plane
  rule differs only within a thin band at the edge), the solid angle against the spherical cap,
  the reflected regions' offsets, radii, spacing and exclusion, the wobble regions.
- CTA-1DC (3 observations of the Galactic centre, an ON circle of 0.11 deg at (0, 0) galactic,
  an exclusion mask of two circles) against Gammapy 2.1's makers run live: counts and OFF counts
  event for event, the number and positions of the OFF regions, exposure (with and without
  containment correction), energy-dispersion matrix, background and the safe masks to round-off;
  the stacked spectrum; Analysis ``1d`` (joint and stacked) with the fit of a power law.
"""

from __future__ import annotations

import logging
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion, RectangleSkyRegion

import jaxgamma
from jaxgamma.data import DataStore
from jaxgamma.datasets import Datasets, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.geom import MapAxis, RegionGeom, WcsGeom
from jaxgamma.makers import (
    ReflectedRegionsBackgroundMaker,
    ReflectedRegionsFinder,
    SafeMaskMaker,
    SpectrumDatasetMaker,
    WobbleRegionsFinder,
)

OBS_IDS = [110380, 111140, 111159]
STORE = "cta-1dc/index/gps"
GC = SkyCoord(0, 0, unit="deg", frame="galactic")
ON_RADIUS = 0.11
EXCLUDED = [((0.0, 0.0), 0.3), ((0.7, -0.3), 0.25)]  # (galactic lon, lat), radius: deg

pytestmark = pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")


def on_region() -> CircleSkyRegion:
    return CircleSkyRegion(GC, ON_RADIUS * u.deg)


def energy_axes() -> tuple[MapAxis, MapAxis]:
    return (
        MapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 12),
        MapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 30, name="energy_true"),
    )


def exclusion_mask() -> tuple[WcsGeom, np.ndarray]:
    """True = usable: a 6 deg galactic map without the two circles of EXCLUDED."""
    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=6)
    lon, lat = geom.get_coord()
    coords = SkyCoord(lon, lat, unit="deg", frame="galactic")
    usable = np.ones(geom.data_shape, dtype=bool)
    for (l0, b0), radius in EXCLUDED:
        usable &= coords.separation(SkyCoord(l0, b0, unit="deg", frame="galactic")).deg >= radius
    return geom, usable


def reference(name: str = "ref") -> SpectrumDataset:
    energy, energy_true = energy_axes()
    return SpectrumDataset.create(RegionGeom.create(on_region(), axes=[energy]), energy_axis_true=energy_true, name=name)


# -- geometry (no data) -----------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [0.11, 0.5])
@pytest.mark.parametrize("center", [(0.0, 0.0, "galactic"), (83.63, 22.01, "icrs"), (10.0, 85.0, "icrs")])
def test_region_contains_is_separation_away_from_the_edge(center, radius):
    lon, lat, frame = center
    position = SkyCoord(lon, lat, unit="deg", frame=frame)
    geom = RegionGeom.create(CircleSkyRegion(position, radius * u.deg))
    rng = np.random.default_rng(1)
    n = 20000
    coords = position.directional_offset_by(
        rng.uniform(0, 360, n) * u.deg, rng.uniform(0, 2 * radius, n) * u.deg
    ).icrs
    inside = geom.contains(coords)
    separation = coords.separation(position).deg
    # the tangent-plane rule and the angular one differ by ~ r^3/3 (rad) at the edge
    band = 2 * np.radians(radius) ** 2 / 3 * radius + 1e-9
    clear = np.abs(separation - radius) > band
    assert np.all(inside[clear] == (separation[clear] < radius))
    assert 0.48 < inside.mean() < 0.52  # separations uniform in [0, 2 r]: half inside
    cap = 2 * np.pi * (1 - np.cos(np.radians(radius)))
    assert geom.solid_angle().to_value("sr") == pytest.approx(cap, rel=1e-4)


def test_region_geom_parsing_equality_and_errors():
    a = RegionGeom.create("galactic;circle(0, 0, 0.11)")
    b = RegionGeom.create(on_region())
    assert a == b and hash(a) == hash(b)
    assert a.center_skydir.separation(GC).deg < 1e-12
    assert RegionGeom.create(on_region(), axes=[energy_axes()[0]]).data_shape == (12, 1, 1)
    assert "CircleSkyRegion" in repr(a) and "galactic" in repr(a)
    union = RegionGeom.from_regions([on_region(), CircleSkyRegion(GC.directional_offset_by(0 * u.deg, 1 * u.deg), 0.1 * u.deg)])
    assert len(union.regions) == 2
    assert len(RegionGeom.create(on_region() | union.regions[1]).regions) == 2
    rectangle = RectangleSkyRegion(GC, 1 * u.deg, 0.5 * u.deg, angle=30 * u.deg)
    box = RegionGeom.create(rectangle)  # other shapes with a centre (flux profiles)
    assert box == RegionGeom.create(RectangleSkyRegion(GC, 1 * u.deg, 0.5 * u.deg, angle=30 * u.deg)) != b
    assert "RectangleSkyRegion" in repr(box) and box != RegionGeom.create(RectangleSkyRegion(GC, 1 * u.deg, 0.5 * u.deg))
    assert len(RegionGeom.from_regions([on_region(), rectangle]).regions) == 2
    from regions import PointSkyRegion

    point = RegionGeom.create(PointSkyRegion(GC))  # a point-like ON region: 1 x 1 pixel WCS, no area
    assert point.is_all_point_sky_regions and not b.is_all_point_sky_regions
    assert point.wcs.array_shape == (1, 1) and point.solid_angle().value == 0.0
    assert np.all(point.contains(SkyCoord([0, 3], [0, 1], unit="deg", frame="galactic")))
    with pytest.raises(ValueError, match=r"points.*cannot be combined"):
        RegionGeom.from_regions([on_region(), PointSkyRegion(GC)])
    with pytest.raises(ValueError, match="DS9"):
        RegionGeom.create("galactic;circle(0, 0")
    with pytest.raises(TypeError, match="geom must be a RegionGeom"):
        SpectrumDataset(energy_edges=[1, 2], geom=WcsGeom.create(npix=3))


@pytest.mark.parametrize("offset, radius", [(0.5, 0.11), (1.2, 0.3), (2.0, 0.11)])
def test_reflected_regions_geometry(offset, radius):
    pointing = SkyCoord(266.4, -28.9, unit="deg", frame="icrs")
    target = pointing.directional_offset_by(30 * u.deg, offset * u.deg).galactic
    on = CircleSkyRegion(target, radius * u.deg)
    finder = ReflectedRegionsFinder(min_distance_input="0.1 rad")
    regions, _ = finder.run(on, pointing)
    assert len(regions) >= 1
    centers = SkyCoord([r.center for r in regions])
    # rotations about the tangent point keep the offset; the radius changes with the tangent-plane
    # scale along north at the new centre (radial 1/cos^2, tangential 1/cos: by < offset^2)
    np.testing.assert_allclose(centers.separation(pointing).deg, offset, rtol=0, atol=1e-9)
    np.testing.assert_allclose([r.radius.deg for r in regions], radius, rtol=np.radians(offset) ** 2)
    binsz = finder.binsz.deg
    # consecutive regions are one angular size apart, none closer to the ON region than that
    angles = pointing.position_angle(centers).rad - pointing.position_angle(target).rad
    angles = np.mod(angles, 2 * np.pi)
    steps = np.diff(angles)
    size = 2 * np.arcsin(radius / offset)  # the angular size of the circle seen from the pointing
    np.testing.assert_allclose(steps, steps[0], atol=1e-9)
    assert steps[0] == pytest.approx(size, abs=2 * binsz / offset)
    assert angles[0] == pytest.approx(steps[0] + 0.1, abs=1e-9)
    assert angles[-1] < 2 * np.pi - steps[0] - 0.1
    assert 2 * np.pi - angles[-1] < 2 * steps[0] + 0.1  # no room was left for another one
    for r in regions:
        assert r.center.separation(target).deg > 2 * radius - 2 * binsz


def test_reflected_regions_avoid_excluded_pixels():
    pointing = SkyCoord(0.5, 0.0, unit="deg", frame="galactic").icrs
    mask_geom, usable = exclusion_mask()
    finder = ReflectedRegionsFinder()
    free, _ = finder.run(on_region(), pointing)
    regions, _ = finder.run(on_region(), pointing, exclusion_mask=(mask_geom, usable))
    assert 0 < len(regions) < len(free)
    lon, lat = mask_geom.get_coord()
    excluded = SkyCoord(lon[~usable], lat[~usable], unit="deg", frame="galactic")
    for r in regions:
        # no excluded pixel centre of the mask (to the reference map's 0.01 deg) in an OFF region
        assert np.min(excluded.separation(r.center).deg) > ON_RADIUS - 0.015
    # everything excluded: no OFF region
    none, _ = finder.run(on_region(), pointing, exclusion_mask=(mask_geom, np.zeros_like(usable)))
    assert none == []


def test_wobble_regions(caplog):
    pointing = SkyCoord(0.5, 0.0, unit="deg", frame="galactic")
    regions, _ = WobbleRegionsFinder(n_off_regions=3).run(on_region(), pointing)
    angles = np.sort(np.mod(pointing.position_angle(SkyCoord([r.center for r in regions])).deg - 270, 360))
    np.testing.assert_allclose(angles, [90, 180, 270], atol=1e-6)
    with caplog.at_level(logging.WARNING):
        assert WobbleRegionsFinder(n_off_regions=20).run(on_region(), pointing)[0] == []
    assert "overlapping" in caplog.text


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="not a valid selection"):
        SpectrumDatasetMaker(selection=["psf"])
    with pytest.raises(ValueError, match="angle_increment"):
        ReflectedRegionsFinder(angle_increment="0 rad")
    with pytest.raises(ValueError, match="no kwargs"):
        ReflectedRegionsBackgroundMaker(region_finder=ReflectedRegionsFinder(), binsz="0.02 deg")
    with pytest.raises(ValueError, match="boolean"):
        ReflectedRegionsBackgroundMaker(exclusion_mask=(exclusion_mask()[0], np.ones((300, 300))))
    no_region = SpectrumDataset(counts=np.zeros(2), energy_edges=[1, 2, 3])
    with pytest.raises(ValueError, match="has no region"):
        SpectrumDatasetMaker().run(no_region, None)
    with pytest.raises(ValueError, match="no ON region"):
        ReflectedRegionsBackgroundMaker().run(no_region, None)
    with pytest.raises(TypeError, match="RegionGeom"):
        SpectrumDataset.create(WcsGeom.create(npix=3, axes=[energy_axes()[0]]))


# -- CTA-1DC against Gammapy ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def observations(data_dir: Path):
    return DataStore.from_dir(data_dir / STORE).get_observations(OBS_IDS)


@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


def gammapy_reference(gp):
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import RegionGeom as GRegionGeom

    energy = GMapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 12)
    energy_true = GMapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 30, name="energy_true")
    geom = GRegionGeom.create(on_region(), axes=[energy])
    return GSpectrumDataset.create(geom, energy_axis_true=energy_true)


def gammapy_mask(gp):
    from gammapy.maps import Map
    from gammapy.maps import WcsGeom as GWcsGeom

    _, usable = exclusion_mask()
    ggeom = GWcsGeom.create(skydir=GC, frame="galactic", binsz=0.02, width=6)
    return Map.from_geom(ggeom, data=usable)


def rel_dev(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(a / b - 1)
    r[(a == 0) & (b == 0)] = 0
    return float(np.max(r))


SAFE = {"methods": ["aeff-max", "edisp-bias", "offset-max"], "aeff_percent": 10, "bias_percent": 10}


@pytest.fixture(scope="module")
def reduced(observations, gp, data_dir):
    """jaxgamma's and Gammapy's reductions of the three observations, for each option set."""
    import gammapy.data as gp_data
    import gammapy.makers as gmk

    out = {}
    for containment, excluded in [(False, True), (True, True), (False, False)]:
        maker = SpectrumDatasetMaker(containment_correction=containment)
        gmaker = gmk.SpectrumDatasetMaker(containment_correction=containment)
        kwargs = {"exclusion_mask": exclusion_mask()} if excluded else {}
        gkwargs = {"exclusion_mask": gammapy_mask(gp)} if excluded else {}
        bkg, gbkg = ReflectedRegionsBackgroundMaker(**kwargs), gmk.ReflectedRegionsBackgroundMaker(**gkwargs)
        safe, gsafe = SafeMaskMaker(**SAFE), gmk.SafeMaskMaker(**SAFE)
        gobservations = gp_data.DataStore.from_dir(data_dir / STORE).get_observations(OBS_IDS)
        rows = []
        for obs, gobs in zip(observations, gobservations, strict=True):
            spectrum = maker.run(reference(str(obs.obs_id)), obs)
            gspectrum = gmaker.run(gammapy_reference(gp), gobs)
            onoff, gonoff = bkg.run(spectrum, obs), gbkg.run(gspectrum.copy(), gobs)
            regions, _ = bkg.region_finder.run(on_region(), obs.get_pointing_icrs(obs.tmid), bkg.exclusion_mask)
            gregions, _ = gbkg.region_finder.run(on_region(), gobs.get_pointing_icrs(gobs.tmid), gbkg.exclusion_mask)
            rows.append(
                (spectrum, gspectrum, onoff, gonoff, safe.run(onoff, obs), gsafe.run(gonoff.copy(), gobs), regions, gregions)
            )
        out[(containment, excluded)] = rows
    return out


@pytest.mark.gammapy
@pytest.mark.parametrize("options", [(False, True), (True, True), (False, False)])
def test_reduction_matches_gammapy(reduced, options):
    for spectrum, gspectrum, onoff, gonoff, safe, gsafe, regions, gregions in reduced[options]:
        assert np.array_equal(spectrum.counts, gspectrum.counts.data.ravel())
        assert spectrum.counts.sum() > 150
        assert rel_dev(spectrum.exposure, gspectrum.exposure.quantity.to_value("cm2 s").ravel()) < 1e-12
        np.testing.assert_allclose(spectrum.edisp, gspectrum.edisp.get_edisp_kernel().pdf_matrix, rtol=0, atol=1e-12)
        assert rel_dev(spectrum.background, gspectrum.background.data.ravel()) < 1e-12
        assert spectrum.livetime == pytest.approx(gspectrum.exposure.meta["livetime"].to_value("s"), rel=1e-12)
        # the OFF regions and counts, event for event
        assert len(regions) == len(gregions) > 25
        for r, g in zip(regions, gregions, strict=True):
            assert r.center.separation(g.center).deg < 1e-9
            assert r.radius.deg == pytest.approx(g.radius.deg, rel=1e-9)
        assert np.array_equal(onoff.counts_off, gonoff.counts_off.data.ravel())
        np.testing.assert_array_equal(onoff.acceptance_off, gonoff.acceptance_off.data.ravel())
        np.testing.assert_array_equal(onoff.acceptance, gonoff.acceptance.data.ravel())
        # the safe mask on the ON/OFF spectrum
        assert np.array_equal(safe.mask_safe, gsafe.mask_safe.data.ravel())
        assert 0 < safe.mask_safe.sum() < safe.n_bins


@pytest.mark.gammapy
def test_rectangle_on_region_matches_gammapy(observations, gp, data_dir):
    """A rotated rectangle ON region (RegionGeom beyond circles): counts event for event and the
    exposure (pixel-weighted over the region) as Gammapy's SpectrumDatasetMaker; the containment
    correction refused with a clear error, as it needs a circle."""
    import gammapy.makers as gmk
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import RegionGeom as GRegionGeom

    rectangle = RectangleSkyRegion(GC, 0.6 * u.deg, 0.3 * u.deg, angle=30 * u.deg)
    energy, energy_true = energy_axes()
    empty = SpectrumDataset.create(RegionGeom.create(rectangle, axes=[energy]), energy_axis_true=energy_true)
    gempty = GSpectrumDataset.create(
        GRegionGeom.create(rectangle, axes=[GMapAxis.from_energy_bounds("0.1 TeV", "40 TeV", 12)]),
        energy_axis_true=GMapAxis.from_energy_bounds("0.05 TeV", "100 TeV", 30, name="energy_true"),
    )
    import gammapy.data as gp_data

    selection = ["counts", "exposure"]
    gstore = gp_data.DataStore.from_dir(data_dir / STORE)
    for obs in observations[:2]:
        ours = SpectrumDatasetMaker(selection=selection).run(empty, obs)
        theirs = gmk.SpectrumDatasetMaker(selection=selection).run(gempty, gstore.obs(obs.obs_id))
        np.testing.assert_array_equal(ours.counts, theirs.counts.data.ravel())
        assert ours.counts.sum() > 0
        np.testing.assert_allclose(ours.exposure, theirs.exposure.quantity.to_value("cm2 s").ravel(), rtol=1e-6)
        with pytest.raises(TypeError, match="needs one circular region"):
            SpectrumDatasetMaker(selection=selection, containment_correction=True).run(empty, obs)


@pytest.mark.gammapy
def test_containment_correction_is_the_psf_fraction(reduced, observations):
    plain, corrected = reduced[(False, True)], reduced[(True, True)]
    for obs, row, row_cc in zip(observations, plain, corrected, strict=True):
        ratio = row_cc[0].exposure / row[0].exposure
        offset = on_region().center.separation(obs.get_pointing_icrs(obs.tmid)).deg
        energy = energy_axes()[1].center_in("TeV")
        expected = obs.psf.containment(rad=ON_RADIUS, offset=offset, energy_true=energy)
        np.testing.assert_allclose(ratio, np.ravel(expected), rtol=1e-12)
        assert 0.3 < np.max(ratio) < 1.0


@pytest.mark.gammapy
@pytest.mark.parametrize("options", [(False, True), (True, True)])
def test_stacked_spectrum_matches_gammapy(reduced, gp, options):
    rows = reduced[options]
    stacked = Datasets([row[4] for row in rows]).stack_reduce(name="stacked")
    from gammapy.datasets import Datasets as GDatasets

    gstacked = GDatasets([row[5] for row in rows]).stack_reduce(name="stacked")
    assert np.array_equal(stacked.counts, gstacked.counts.data.ravel())
    assert np.array_equal(stacked.counts_off, gstacked.counts_off.data.ravel())
    assert np.array_equal(stacked.mask_safe, gstacked.mask_safe.data.ravel())
    # Gammapy stores the stacked acceptances and exposure in float32
    assert rel_dev(stacked.acceptance_off, gstacked.acceptance_off.data.ravel()) < 1e-6
    assert rel_dev(stacked.exposure, gstacked.exposure.quantity.to_value("cm2 s").ravel()) < 1e-6
    # the matrices weighted by the exposure without containment correction (Gammapy's edisp
    # exposure map), to Gammapy's float32
    np.testing.assert_allclose(stacked.edisp, gstacked.edisp.get_edisp_kernel().pdf_matrix, rtol=0, atol=1e-6)
    edisp_exposure = gstacked.edisp.exposure_map.quantity.to_value("cm2 s").ravel()
    assert rel_dev(stacked.edisp_exposure, edisp_exposure) < 1e-6
    if options[0]:
        assert np.all(stacked.edisp_exposure[stacked.exposure > 0] > stacked.exposure[stacked.exposure > 0])


@pytest.mark.gammapy
def test_reduced_spectrum_written_and_read(reduced, gp, tmp_path):
    spectrum = reduced[(False, True)][0][4]
    path = tmp_path / "pha_obs110380.fits"
    spectrum.write(path, format="ogip")
    back = SpectrumDatasetOnOff.read(path)
    for key in ("counts", "counts_off", "acceptance_off", "mask_safe"):
        np.testing.assert_array_equal(getattr(back, key), getattr(spectrum, key))
    np.testing.assert_allclose(back.exposure, spectrum.exposure, rtol=1e-6)
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff

    gback = GSpectrumDatasetOnOff.read(path, format="ogip")
    assert np.array_equal(gback.counts.data.ravel(), spectrum.counts)
    assert np.array_equal(gback.counts_off.data.ravel(), spectrum.counts_off)
    # the ON region in the PHA file's REGION extension, both ways
    assert back.geom == spectrum.geom == RegionGeom.create(on_region())
    gregion = gback.counts.geom.region
    assert gregion.center.separation(GC).deg < 1e-9 and gregion.radius.deg == pytest.approx(ON_RADIUS, rel=1e-9)
    gammapy_path = tmp_path / "gammapy" / "pha_obs110380.fits"
    gammapy_path.parent.mkdir()
    reduced[(False, True)][0][5].write(gammapy_path, format="ogip")
    assert SpectrumDatasetOnOff.read(gammapy_path).geom == spectrum.geom


@pytest.mark.gammapy
def test_no_off_region(observations, caplog):
    geom, usable = exclusion_mask()
    maker = ReflectedRegionsBackgroundMaker(exclusion_mask=(geom, np.zeros_like(usable)))
    obs = observations[0]
    with caplog.at_level(logging.WARNING):
        onoff = maker.run(SpectrumDatasetMaker().run(reference(), obs), obs)
    assert onoff.counts_off is None and not np.any(onoff.mask_safe)
    assert "No OFF region" in caplog.text


# -- Analysis 1d ------------------------------------------------------------------------------------
def analysis_config(data_dir: Path, exclusion: Path, stack: bool) -> dict:
    return {
        "observations": {"datastore": str(data_dir / STORE), "obs_ids": OBS_IDS},
        "datasets": {
            "type": "1d",
            "stack": stack,
            "geom": {
                "axes": {
                    "energy": {"min": "0.1 TeV", "max": "40 TeV", "nbins": 12},
                    "energy_true": {"min": "0.05 TeV", "max": "100 TeV", "nbins": 30},
                }
            },
            "on_region": {"frame": "galactic", "lon": "0 deg", "lat": "0 deg", "radius": f"{ON_RADIUS} deg"},
            "containment_correction": True,
            "background": {"method": "reflected", "exclusion": str(exclusion)},
            "safe_mask": {"methods": ["aeff-max", "edisp-bias"], "parameters": {"aeff_percent": 10, "bias_percent": 10}},
        },
        "fit": {"fit_range": {"min": "0.2 TeV", "max": "40 TeV"}},
    }


MODEL = """
components:
- name: source
  type: SkyModel
  spectral:
    type: PowerLawSpectralModel
    parameters:
    - {name: index, value: 2.5}
    - {name: amplitude, value: 1.0e-12, unit: cm-2 s-1 TeV-1}
    - {name: reference, value: 1.0, unit: TeV, frozen: true}
"""


@pytest.mark.gammapy
@pytest.mark.slow
@pytest.mark.parametrize("stack", [False, True])
def test_analysis_1d_matches_gammapy(data_dir, gp, tmp_path, stack):
    from gammapy.analysis import Analysis as GAnalysis
    from gammapy.analysis import AnalysisConfig as GAnalysisConfig

    exclusion = tmp_path / "exclusion.fits"
    gammapy_mask(gp).write(exclusion)
    settings = analysis_config(data_dir, exclusion, stack)
    ours, theirs = jaxgamma.Analysis(settings), GAnalysis(GAnalysisConfig(**settings))
    for a in (ours, theirs):
        a.get_observations()
        a.get_datasets()
    assert len(ours.datasets) == len(theirs.datasets) == (1 if stack else 3)
    for d, g in zip(ours.datasets, theirs.datasets, strict=True):
        assert isinstance(d, SpectrumDatasetOnOff)
        assert np.array_equal(d.counts, g.counts.data.ravel())
        assert np.array_equal(d.counts_off, g.counts_off.data.ravel())
        assert np.array_equal(d.mask_safe, g.mask_safe.data.ravel())
        assert rel_dev(d.acceptance_off, g.acceptance_off.data.ravel()) <= (1e-6 if stack else 0.0)
        assert rel_dev(d.exposure, g.exposure.quantity.to_value("cm2 s").ravel()) <= (1e-6 if stack else 1e-12)
    assert [d.name for d in ours.datasets] == (["stacked"] if stack else [str(i) for i in OBS_IDS])
    for a in (ours, theirs):
        a.set_models(MODEL)
        a.run_fit()
    assert ours.fit_result.success
    model, gmodel = ours.models["source"].spectral_model, theirs.models["source"].spectral_model
    for name in ("index", "amplitude"):
        p, g = getattr(model, name), getattr(gmodel, name)
        assert abs(p.value - g.value) < 0.01 * g.error
        assert p.error == pytest.approx(g.error, rel=0.01)
    assert ours.fit_result.total_stat <= theirs.fit_result.total_stat + 1e-6


def test_analysis_1d_config_errors(data_dir, tmp_path):
    settings = analysis_config(data_dir, tmp_path / "none.fits", stack=False)
    settings["datasets"]["background"] = {"method": "reflected"}
    settings["datasets"]["on_region"]["radius"] = None
    analysis = jaxgamma.Analysis(settings)
    analysis.get_observations()
    with pytest.raises(jaxgamma.analysis.ConfigError, match="on_region"):
        analysis.get_datasets()
    settings = analysis_config(data_dir, tmp_path / "none.fits", stack=False)
    settings["datasets"]["background"] = {"method": "reflected"}
    settings["datasets"]["type"] = "3d"
    settings["datasets"]["geom"]["wcs"] = {
        "skydir": {"frame": "galactic", "lon": "0 deg", "lat": "0 deg"},
        "binsize": "0.1 deg",
        "width": {"width": "1 deg", "height": "1 deg"},
    }
    analysis = jaxgamma.Analysis(settings)
    analysis.get_observations()
    with pytest.raises(jaxgamma.analysis.ConfigError, match=r"'reflected' needs datasets\.type '1d'"):
        analysis.get_datasets()


@pytest.mark.gammapy
@pytest.mark.parametrize(
    "kwargs",
    [
        {"skydir": (0.0, 0.0), "frame": "galactic", "binsz": 0.02, "width": 6},
        {"skydir": (266.4, -28.9), "frame": "icrs", "binsz": 0.05, "width": (4, 3), "proj": "TAN"},
    ],
)
def test_region_mask_matches_gammapy(gp, kwargs):
    from gammapy.maps import WcsGeom as GWcsGeom

    circles = [CircleSkyRegion(SkyCoord(lon, lat, unit="deg", frame="galactic"), r * u.deg) for (lon, lat), r in EXCLUDED]
    circles.append(CircleSkyRegion(SkyCoord(266.5, -29.1, unit="deg"), 0.2 * u.deg))  # mixed frames
    geom = WcsGeom.create(**kwargs)
    gkwargs = dict(kwargs, skydir=SkyCoord(*kwargs["skydir"], unit="deg", frame=kwargs["frame"]))
    expected = GWcsGeom.create(**gkwargs).region_mask(circles).data
    mask = geom.region_mask(circles)
    assert np.array_equal(mask, expected) and mask.sum() > 100
    assert np.array_equal(geom.region_mask(circles, inside=False), ~expected)


def test_write_mask_round_trip(tmp_path):
    from jaxgamma.makers.background import read_mask, write_mask

    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.05, width=(3, 2))
    mask = geom.region_mask("galactic;circle(0.5, 0.2, 0.3)", inside=False)
    assert 0 < (~mask).sum() < mask.size
    path = tmp_path / "exclusion.fits"
    write_mask(path, geom, mask)
    back_geom, back = read_mask(path)
    assert back_geom == geom and np.array_equal(back, mask)
    with pytest.raises(FileExistsError):
        write_mask(path, geom, mask)
    with pytest.raises(ValueError, match="boolean array of the image shape"):
        write_mask(tmp_path / "bad.fits", geom, mask.astype(int))
    assert not (tmp_path / "bad.fits").exists()
    # the mask drives the reflected regions as the same mask in memory
    pointing = SkyCoord(1.0, 0.0, unit="deg", frame="galactic")
    on = CircleSkyRegion(SkyCoord(0.5, 0.0, unit="deg", frame="galactic"), 0.1 * u.deg)
    from_file, _ = ReflectedRegionsFinder().run(on, pointing, exclusion_mask=read_mask(path))
    in_memory, _ = ReflectedRegionsFinder().run(on, pointing, exclusion_mask=(geom, mask))
    free, _ = ReflectedRegionsFinder().run(on, pointing)
    assert [r.center.l.deg for r in from_file] == [r.center.l.deg for r in in_memory]
    assert len(from_file) < len(free)


@pytest.mark.gammapy
def test_info_dict_matches_gammapy(reduced):
    keys = ("counts", "counts_off", "background", "excess", "sqrt_ts", "alpha", "acceptance_off", "npred", "stat_sum")
    for row in reduced[(False, True)]:
        for ours, theirs in ((row[4], row[5]), (row[0], row[1])):
            info, ginfo = ours.info_dict(), theirs.info_dict()
            for key in keys:
                if key not in ginfo:
                    continue
                expected = float(np.asarray(getattr(ginfo[key], "value", ginfo[key])))
                assert float(info[key]) == pytest.approx(expected, rel=1e-6, nan_ok=True), key
            # no models: the ON/OFF statistic of the background alone; none for a Cash spectrum
            assert np.isfinite(info["stat_sum"]) == (ours.stat_type == "wstat")


@pytest.mark.gammapy
def test_region_and_edisp_exposure_written_and_read(reduced, tmp_path):
    """The gadf dataset file keeps the ON region (COUNTS_REGION, as Gammapy writes it) and the edisp
    exposure; Gammapy reads our region, we read Gammapy's."""
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff

    from jaxgamma.io.datasets import read_datasets, write_datasets

    row = reduced[(True, True)][0]
    ours, theirs = row[4], row[5]
    write_datasets(tmp_path / "datasets.yaml", [ours])
    back = read_datasets(tmp_path / "datasets.yaml")[0][0]
    assert back.geom == ours.geom == RegionGeom.create(on_region())
    np.testing.assert_allclose(back.edisp_exposure, ours.edisp_exposure, rtol=1e-12)
    assert np.all(back.edisp_exposure > back.exposure)  # containment-corrected exposure is smaller
    path = next(tmp_path.glob("*.fits"))
    gregion = GSpectrumDatasetOnOff.read(path).counts.geom.region
    assert gregion.center.separation(GC).deg < 1e-9 and gregion.radius.deg == pytest.approx(ON_RADIUS, rel=1e-9)
    theirs.write(tmp_path / "gammapy.fits")
    assert SpectrumDatasetOnOff.read(tmp_path / "gammapy.fits").geom == ours.geom


@pytest.mark.gammapy
@pytest.mark.parametrize("radius", [0.11, 0.5])
def test_irfs_averaged_over_the_region_match_gammapy(observations, gp, data_dir, radius):
    """``use_region_center=False``: exposure and background averaged over the region's pixels
    (weights: the fraction of each 0.1 deg pixel inside), edisp and its exposure at the centre."""
    import gammapy.makers as gmk
    from gammapy.data import DataStore as GDataStore
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.maps import RegionGeom as GRegionGeom

    region = CircleSkyRegion(SkyCoord(0.3, -0.2, unit="deg", frame="galactic"), radius * u.deg)
    energy, energy_true = energy_axes()
    geom = RegionGeom.create(region, axes=[energy])
    image, mask, weights = geom.get_wcs_coord_and_weights()
    # the weights cover the circle: their sum is its area in pixels (to the 10 x 10 sampling)
    pixel_area = float(np.mean(image.solid_angle()[mask]))
    assert np.sum(weights) * pixel_area == pytest.approx(geom.solid_angle().to_value("sr"), rel=0.02)
    reference_1d = SpectrumDataset.create(geom, energy_axis_true=energy_true)
    axes = gammapy_reference(gp).counts.geom.axes["energy"], gammapy_reference(gp).exposure.geom.axes[0]
    greference = GSpectrumDataset.create(GRegionGeom.create(region, axes=[axes[0]]), energy_axis_true=axes[1])
    obs = observations[1]
    gobs = GDataStore.from_dir(data_dir / STORE).obs(obs.obs_id)
    ours = SpectrumDatasetMaker(use_region_center=False, containment_correction=True).run(reference_1d, obs)
    theirs = gmk.SpectrumDatasetMaker(use_region_center=False, containment_correction=True).run(greference, gobs)
    centre = SpectrumDatasetMaker(containment_correction=True).run(reference_1d, obs)
    assert rel_dev(ours.exposure, theirs.exposure.quantity.to_value("cm2 s").ravel()) < 1e-12
    assert rel_dev(ours.background, theirs.background.data.ravel()) < 1e-12
    np.testing.assert_allclose(ours.edisp, theirs.edisp.get_edisp_kernel().pdf_matrix, rtol=0, atol=1e-12)
    assert rel_dev(ours.edisp_exposure, theirs.edisp.exposure_map.quantity.to_value("cm2 s").ravel()) < 1e-12
    assert np.array_equal(ours.counts, centre.counts)
    assert rel_dev(ours.background, centre.background) > 1e-3  # the average is not the centre value


@pytest.mark.gammapy
@pytest.mark.parametrize("obs_index", [0, 1])
def test_bkg_peak_on_spectra_matches_gammapy(observations, gp, data_dir, obs_index):
    """The safe range starts at the peak bin of the background (also when that bin is the first
    and its edge is one of Gammapy's log-interpolated edges, 0.029999999999999995 for 0.03)."""
    import gammapy.makers as gmk
    from gammapy.data import DataStore as GDataStore
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import RegionGeom as GRegionGeom

    energy = MapAxis.from_energy_bounds("0.03 TeV", "100 TeV", 40)
    genergy = GMapAxis.from_energy_bounds("0.03 TeV", "100 TeV", 40)
    obs = observations[obs_index]
    gobs = GDataStore.from_dir(data_dir / STORE).obs(obs.obs_id)
    ours = SpectrumDatasetMaker().run(SpectrumDataset.create(RegionGeom.create(on_region(), axes=[energy])), obs)
    theirs = gmk.SpectrumDatasetMaker().run(GSpectrumDataset.create(GRegionGeom.create(on_region(), axes=[genergy])), gobs)
    for dataset, gdataset in ((ours, theirs), (ReflectedRegionsBackgroundMaker().run(ours, obs), None)):
        mask = SafeMaskMaker(methods=["bkg-peak"]).run(dataset, obs).mask_safe
        if gdataset is not None:
            expected = gmk.SafeMaskMaker(methods=["bkg-peak"]).run(gdataset, gobs).mask_safe.data.ravel()
            assert np.array_equal(mask, expected)
        if gdataset is None:  # ON/OFF: the WStat background without signal
            background = dataset.alpha * (dataset.counts + dataset.counts_off) / (1 + dataset.alpha)
        else:
            background = dataset.background
        assert np.array_equal(mask, np.arange(dataset.n_bins) >= np.argmax(background))


@pytest.mark.gammapy
def test_on_off_from_a_spectrum_without_off_counts(reduced, gp):
    """Without OFF counts they are the background / alpha, as Gammapy's from_spectrum_dataset."""
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff

    spectrum, gspectrum = reduced[(False, True)][0][:2]
    assert spectrum.background is not None
    onoff = SpectrumDatasetOnOff.from_spectrum_dataset(spectrum, acceptance=1, acceptance_off=5)
    gonoff = GSpectrumDatasetOnOff.from_spectrum_dataset(dataset=gspectrum.copy(), acceptance=1, acceptance_off=5)
    np.testing.assert_allclose(onoff.counts_off, 5 * spectrum.background, rtol=1e-12)
    assert rel_dev(onoff.counts_off, gonoff.counts_off.data.ravel()) < 1e-12
    np.testing.assert_allclose(onoff.background, spectrum.background, rtol=1e-12)


@pytest.mark.gammapy
def test_gadf_is_the_default_file_format(reduced, gp, tmp_path):
    """``write(path)`` writes Gammapy 2.1's default (gadf) file for ON/OFF and Cash spectra; both
    read back whole (livetime included), and Gammapy reads them."""
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff

    row = reduced[(True, True)][0]
    for dataset, cls, gcls in ((row[4], SpectrumDatasetOnOff, GSpectrumDatasetOnOff), (row[0], SpectrumDataset, GSpectrumDataset)):
        folder = tmp_path / cls.__name__
        folder.mkdir()
        path = folder / "dataset.fits"
        dataset.write(path)
        assert [p.name for p in folder.iterdir()] == ["dataset.fits"]  # one file
        back = cls.read(path)
        keys = ["counts", "exposure", "edisp", "edisp_exposure", "mask_safe", "livetime"]
        keys += ["counts_off", "acceptance", "acceptance_off"] if cls is SpectrumDatasetOnOff else ["background"]
        for key in keys:
            np.testing.assert_allclose(np.asarray(getattr(back, key), dtype=float), np.asarray(getattr(dataset, key), dtype=float), rtol=1e-7, err_msg=key)
        assert back.geom == dataset.geom and back.name == dataset.name
        g = gcls.read(path)
        assert np.array_equal(g.counts.data.ravel(), dataset.counts)
        with pytest.raises(FileExistsError):
            dataset.write(path)
    with pytest.raises(ValueError, match="unsupported format 'ogip'"):
        row[0].write(tmp_path / "x.fits", format="ogip")
