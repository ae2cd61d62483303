"""FluxProfileEstimator and FluxProfile: closed Cash cases on a synthetic map, Gammapy's profile
regions (rectangles along a line, concentric annuli) and their pixel masks, Gammapy 2.1's profiles
on the stacked CTA-1DC dataset (with and without models), and Gammapy's profile table format both
ways."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from jaxgamma.datasets import MapDataset, SpectrumDataset
from jaxgamma.estimators import FluxProfile, FluxProfileEstimator
from jaxgamma.geom import (
    MapAxis,
    RegionGeom,
    WcsGeom,
    make_concentric_annulus_sky_regions,
    make_orthogonal_rectangle_sky_regions,
)
from jaxgamma.models import PowerLawSpectralModel

CENTER = SkyCoord(0, 0, unit="deg", frame="galactic")


def _line_regions(wcs, nbin=5, height=1.0):
    start, end = SkyCoord("-1d", "0d", frame="galactic"), SkyCoord("1d", "0d", frame="galactic")
    return make_orthogonal_rectangle_sky_regions(start, end, wcs, height * u.deg, nbin)


@pytest.fixture(scope="module")
def toy() -> MapDataset:
    """One energy bin, 0.05 deg pixels over 4 x 4 deg: a constant background of 2 counts per pixel,
    exposure 1e10 cm2 s, and counts with an excess falling off from the centre."""
    geom = WcsGeom.create(skydir=CENTER, binsz=0.05, width=(4.0, 4.0), frame="galactic", axes=[MapAxis.from_energy_bounds(1.0, 10.0, 1, unit="TeV")])
    rng = np.random.default_rng(7)
    r = geom.to_image().separation(0.0, 0.0)
    counts = rng.poisson(2.0 + 6.0 * np.exp(-0.5 * (r / 0.4) ** 2))[np.newaxis].astype(float)
    return MapDataset(
        geom=geom,
        counts=counts,
        background=np.full(counts.shape, 2.0),
        exposure=np.full(counts.shape, 1e10),
        energy_axis_true=MapAxis.from_energy_bounds(1.0, 10.0, 1, unit="TeV", name="energy_true"),
        name="toy",
    )


def test_profile_closed_cash(toy: MapDataset):
    """One energy bin: in each region the norm of the reference power law is (N - B) / S (N counts,
    B background summed over the region's pixels, S the reference flux times the mean exposure) and
    the TS is 2 (N ln(N / B) - (N - B)); the axis nodes are the annuli's mean radii."""
    regions = make_concentric_annulus_sky_regions(CENTER, 1.5 * u.deg, nbin=5)
    profile = FluxProfileEstimator(regions, energy_edges=[1, 10] * u.TeV).run(toy)
    reference = PowerLawSpectralModel()  # Gammapy's default: index 2, amplitude 1e-12
    s_flux = float(np.asarray(reference.integral_array(1.0, 10.0)))
    geom = toy.geom.to_image()
    for i, region in enumerate(regions):
        inside = geom.region_mask([region])
        n, b = toy.counts[0][inside].sum(), 2.0 * inside.sum()
        norm = (n - b) / (s_flux * 1e10)
        np.testing.assert_allclose(profile.norm[i, 0], norm, rtol=1e-6)
        np.testing.assert_allclose(profile.ts[i, 0], 2 * (n * np.log(n / b) - (n - b)), rtol=1e-6)
        np.testing.assert_allclose(profile.counts[i, 0], [n])
    np.testing.assert_allclose(profile.projected_distance.to_value("deg"), [0.1875, 0.5625, 0.9375, 1.3125], atol=1e-5)
    np.testing.assert_allclose(profile.x_min.to_value("deg")[1:], profile.x_max.to_value("deg")[:-1])
    assert profile.norm.shape == (4, 1) and profile.flux.shape == (4, 1)


def test_profile_with_models_takes_them_as_background(toy: MapDataset):
    """A model given to run() is part of each region's background: with the toy's own excess as a
    point-like model of flux F, the fitted norm drops by F / reference flux where the whole excess
    falls (a region around the centre)."""
    from jaxgamma.models import Models, PointSpatialModel, SkyModel

    regions = [
        *make_concentric_annulus_sky_regions(CENTER, 0.5 * u.deg, nbin=2),
        *make_concentric_annulus_sky_regions(CENTER, 1.5 * u.deg, radius_min=1.0 * u.deg, nbin=2),
    ]
    estimator = FluxProfileEstimator(regions, energy_edges=[1, 10] * u.TeV)
    plain = estimator.run(toy)
    source = SkyModel(PowerLawSpectralModel(index=2.0, amplitude="3e-13 cm-2 s-1 TeV-1"), PointSpatialModel(lon_0=0.0, lat_0=0.0, frame="galactic"), name="src")
    with_source = estimator.run(toy, Models([source]))
    np.testing.assert_allclose(plain.norm[0, 0] - with_source.norm[0, 0], 0.3, rtol=1e-6)  # all of it in the disk
    np.testing.assert_allclose(plain.norm[1, 0], with_source.norm[1, 0], rtol=1e-9)  # none of it in the annulus


def test_regions_and_masks_match_gammapy(toy: MapDataset):
    """Gammapy's region helpers and RegionGeom on rectangles and annuli: the same regions, the same
    pixel masks on a map, RegionGeom WCS shape and solid angle."""
    pytest.importorskip("gammapy")
    from gammapy.maps import RegionGeom as GRegionGeom
    from gammapy.maps import WcsGeom as GWcsGeom
    from gammapy.utils.regions import make_concentric_annulus_sky_regions as g_annuli
    from gammapy.utils.regions import make_orthogonal_rectangle_sky_regions as g_rectangles

    wcs = toy.geom.wcs
    start, end = SkyCoord("-1d", "0.3d", frame="galactic"), SkyCoord("1d", "-0.2d", frame="galactic")
    ours = [*make_orthogonal_rectangle_sky_regions(start, end, wcs, 0.7 * u.deg, 7), *make_concentric_annulus_sky_regions(CENTER, 1.5 * u.deg, nbin=4)]
    theirs = [*g_rectangles(start, end, wcs, 0.7 * u.deg, 7), *g_annuli(CENTER, 1.5 * u.deg, nbin=4)]
    gimage = GWcsGeom(wcs=wcs, npix=toy.geom.to_image().npix)
    image = toy.geom.to_image()
    for a, b in zip(ours, theirs, strict=True):
        assert type(a) is type(b)
        assert a.center.separation(b.center).deg < 1e-12
        for p in a._params[1:]:
            np.testing.assert_allclose(u.Quantity(getattr(a, p)).to_value("deg"), u.Quantity(getattr(b, p)).to_value("deg"), rtol=1e-12)
        mask = image.region_mask([a])
        assert mask.sum() > 0
        np.testing.assert_array_equal(mask, gimage.region_mask([b]).data)
        geom, gref = RegionGeom(a), GRegionGeom(b)
        assert geom.wcs.array_shape == tuple(int(n) for n in gref.wcs.array_shape)
        np.testing.assert_allclose(geom.solid_angle().to_value("sr"), gref.solid_angle().to_value("sr"), rtol=1e-10)


def test_region_hdu_round_trip_of_other_shapes(toy: MapDataset, tmp_path):
    """A spectrum in a rectangle keeps its region through the REGION table (the regions package's
    FITS format, as Gammapy writes it), and Gammapy reads the table to the same region."""
    from jaxgamma.io.ogip import read_region_hdu, region_hdu

    for region in (_line_regions(toy.geom.wcs)[1], make_concentric_annulus_sky_regions(CENTER, 1.0 * u.deg, nbin=3)[1]):
        spectrum = toy.to_spectrum_dataset(region)
        hdulist = fits.HDUList([fits.PrimaryHDU(), region_hdu(spectrum.geom, "REGION")])
        back = read_region_hdu(hdulist, "REGION")
        assert back == spectrum.geom and type(back.region) is type(region)
        # as Gammapy's RegionGeom.from_hdulist reads it: the regions package's FITS table, the WCS
        # from the table header through WcsGeom.from_header
        gmaps = pytest.importorskip("gammapy.maps")
        from astropy.table import QTable
        from regions import Regions

        path = tmp_path / "region.fits"
        hdulist.writeto(path, overwrite=True)
        table = QTable.read(path, hdu="REGION")
        gwcs = gmaps.WcsGeom.from_header(table.meta).wcs
        gregion = Regions.parse(table, format="fits")[0].to_sky(gwcs)
        assert type(gregion) is type(region)
        assert gregion.center.separation(region.center).deg < 1e-9


CASES = {
    "rectangles": dict(shape="rect", energy_edges=[0.3, 1.0, 10.0], selection_optional=["errn-errp", "ul"]),
    "annuli-all": dict(shape="annulus", energy_edges=[0.3, 10.0], selection_optional="all"),
    "rectangles-models": dict(shape="rect", energy_edges=[0.3, 10.0], selection_optional=["ul"], models=True),
}


@pytest.mark.gammapy
@pytest.mark.parametrize("case", list(CASES))
def test_profile_matches_gammapy(cta_plain, cta_gc_models, case, tmp_path):
    """Gammapy's FluxProfileEstimator on the stacked CTA-1DC dataset: 5 rectangles 1 deg tall along
    l = -1..1 deg, or 4 annuli to 1 deg around the Galactic Centre, optionally with the GC source and
    the FoV background norm as background: every column of the profile table."""
    gd = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import FluxProfileEstimator as GFluxProfileEstimator
    from gammapy.modeling.models import Models as GModels

    from jaxgamma.io.models import write_models

    options = dict(CASES[case])
    shape, use_models = options.pop("shape"), options.pop("models", False)
    options["energy_edges"] = options["energy_edges"] * u.TeV
    dataset = MapDataset.read(cta_plain, name="stacked")
    gdataset = gd.MapDataset.read(cta_plain, name="stacked")
    models = None
    if use_models:
        models = cta_gc_models
        write_models(tmp_path / "models.yaml", models)
        gdataset.models = GModels.read(tmp_path / "models.yaml")
    if shape == "rect":
        regions = _line_regions(dataset.geom.wcs)
    else:
        regions = make_concentric_annulus_sky_regions(CENTER, 1.0 * u.deg, nbin=5)
    ours = FluxProfileEstimator(regions, **options).run(dataset, models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GFluxProfileEstimator(regions, **options).run(gdataset)
        ref = theirs.to_table(sed_type="likelihood", format="profile")  # (its index-2 eflux warns)
    mine = ours.to_table(sed_type="likelihood")
    assert mine.colnames == ref.colnames
    err = np.asarray(ref["norm_err"], float)
    for column in ref.colnames:
        a, b = np.asarray(mine[column]), np.asarray(ref[column])
        if column in ("x_min", "x_max", "x_ref", "e_ref", "e_min", "e_max", "ref_dnde", "ref_flux", "ref_eflux", "norm_scan"):
            np.testing.assert_allclose(a, b, rtol=1e-9, err_msg=column)
        elif column in ("counts", "is_ul", "success"):
            np.testing.assert_array_equal(a, b, err_msg=column)
        elif column in ("norm", "npred_excess"):  # Minuit's tolerance: within 0.01 of the error
            relative_err = np.abs(err / np.asarray(ref["norm"], float))
            scale = err if column == "norm" else relative_err[..., np.newaxis] * b  # (npred_excess per dataset)
            assert np.all(np.abs(a - b) < 0.01 * np.abs(scale)), column
        elif column == "npred":
            np.testing.assert_allclose(a, b, rtol=1e-3, err_msg=column)
        elif column in ("norm_err",):  # exact Hessian vs Minuit's HESSE
            np.testing.assert_allclose(a, b, rtol=2e-3, err_msg=column)
        elif column == "norm_sensitivity":  # Gammapy's root search stops at 1 %
            np.testing.assert_allclose(a, b, rtol=1e-2, err_msg=column)
        elif column in ("stat", "stat_null", "stat_scan", "ts", "sqrt_ts", "norm_ul", "norm_errn", "norm_errp"):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=column)
        else:
            raise AssertionError(f"column {column} not compared")
    # our norm is at least as good: the two statistics differ by rounding (Gammapy's float32 maps:
    # a constant ~3e-10 relative offset), within that ours is not above Gammapy's minimum
    stat = np.asarray(ref["stat"], float)
    assert np.all(np.asarray(mine["stat"]) <= stat + 1e-9 * np.abs(stat))


@pytest.mark.gammapy
def test_profile_table_format_both_ways(toy: MapDataset, tmp_path):
    """Our profile file read by Gammapy (FluxPoints.read, format "profile") and Gammapy's read by us:
    the same distances and quantities; ECSV and FITS; no file replaced without overwrite."""
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GFluxPoints

    regions = _line_regions(toy.geom.wcs, nbin=4)
    profile = FluxProfileEstimator(regions, energy_edges=[1, 10] * u.TeV, selection_optional=["ul"]).run(toy)
    for suffix in (".fits", ".ecsv"):
        path = tmp_path / f"profile{suffix}"
        profile.write(path, sed_type="dnde")
        with pytest.raises(FileExistsError):
            profile.write(path, sed_type="dnde")
        theirs = GFluxPoints.read(path, format="profile")
        np.testing.assert_allclose(theirs.geom.axes["projected-distance"].center.to_value("deg"), profile.x_ref.to_value("deg"), rtol=1e-12)
        np.testing.assert_allclose(theirs.dnde.data.squeeze(), profile.dnde[:, 0], rtol=1e-12)
        back = FluxProfile.read(path)
        np.testing.assert_allclose(back.dnde_ul, profile.dnde_ul, rtol=1e-12)
        np.testing.assert_allclose(back.projected_distance.to_value("deg"), profile.x_ref.to_value("deg"), rtol=1e-12)
        gpath = tmp_path / f"gammapy{suffix}"
        theirs.write(gpath, sed_type="flux", format="profile")
        ours = FluxProfile.read(gpath)
        np.testing.assert_allclose(ours.flux[:, 0], theirs.flux.data.squeeze(), rtol=1e-12)
        np.testing.assert_allclose(ours.x_min.to_value("deg"), theirs.to_table(format="profile")["x_min"].to("deg").value, rtol=1e-12)


def test_bad_input(toy: MapDataset):
    regions = _line_regions(toy.geom.wcs)
    with pytest.raises(ValueError, match="at least two regions"):
        FluxProfileEstimator(regions[:1])
    with pytest.raises(ValueError, match="reoptimize=True is not available"):
        FluxProfileEstimator(regions, reoptimize=True)
    from regions import PointSkyRegion

    with pytest.raises(TypeError, match=r"regions\[1\] must be one region with a centre, not a union"):
        FluxProfileEstimator([regions[0], regions[1] | regions[2]])
    with pytest.raises(TypeError, match=r"regions\[1\].*PointSkyRegion"):
        FluxProfileEstimator([regions[0], PointSkyRegion(CENTER)])
    spectrum = SpectrumDataset(counts=np.array([3.0]), background=np.array([1.0]), exposure=np.array([1e10]), energy_edges=np.array([1.0, 10.0]), name="spec")
    with pytest.raises(TypeError, match="'spec' is a SpectrumDataset; a profile needs map datasets"):
        FluxProfileEstimator(regions).run(spectrum)
    far = make_concentric_annulus_sky_regions(CENTER, 3.0 * u.deg, nbin=3)  # beyond the 4 x 4 deg map
    with pytest.raises(ValueError, match="fully contained"):
        FluxProfileEstimator(far, energy_edges=[1, 10] * u.TeV).run(toy)
    with pytest.raises(ValueError, match=r"FluxProfile\.read: only format='profile' is supported"):
        FluxProfile.read("profile.fits", format="lightcurve")
    with pytest.raises(ValueError, match="strictly monotonic"):
        FluxProfile([0.0, 0.0], [FluxProfileEstimator(regions, energy_edges=[1, 10] * u.TeV).run(toy).points[0]] * 2)
