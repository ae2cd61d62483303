"""GADF DL3 IRFs (jaxgamma.irf.gadf) against live Gammapy 2.1.

The CTA 1DC IRF file gives aeff_2d, edisp_2d, psf_3gauss and bkg_3d; PSF tables, King PSFs and 2D
backgrounds are written with Gammapy to tmp_path and read back by both. Coordinate grids cover the
axis interiors, the exact nodes and edges, and points outside the axes (fill values, extrapolation).
"""

from __future__ import annotations

import logging
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from jaxgamma.geom import MapAxis
from jaxgamma.irf import (
    IRF_REGISTRY,
    PSF3D,
    Background2D,
    Background3D,
    EffectiveAreaTable2D,
    EnergyDependentMultiGaussPSF,
    EnergyDispersion2D,
    PSFKing,
    load_irf_hdu,
)
from jaxgamma.irf._core import axis_center, axis_edges
from jaxgamma.irf._irf_base import interpolate_grid, trapz_loglog

RTOL = 1e-11

CTA_IRF = "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"


# -- helpers ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp():
    gammapy_irf = pytest.importorskip("gammapy.irf")
    return gammapy_irf


@pytest.fixture
def irf_file(gammapy_data):
    return gammapy_data / CTA_IRF


def _read_gammapy(cls, path, hdu):
    with warnings.catch_warnings():
        # the CTA 1DC background unit '1/s/MeV/sr' is not a FITS unit: astropy warns in Gammapy's reader
        warnings.simplefilter("ignore", u.UnitsWarning)
        return cls.read(path, hdu=hdu)


def _value(x, unit):
    return x.to_value(unit) if isinstance(x, u.Quantity) else np.asarray(x)


def assert_matches(ours, theirs, rtol=RTOL):
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(ours == 0, theirs == 0)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=0)


def energy_grid(axis_edges_tev):
    """0.01-300 TeV plus the axis edges and centres (exact nodes)."""
    edges = np.asarray(axis_edges_tev)
    centers = np.sqrt(edges[1:] * edges[:-1])
    return np.unique(np.concatenate([np.geomspace(0.01, 300, 37), edges, centers]))


OFFSETS = np.concatenate([np.linspace(0, 6, 25), [-0.5, 6.5, 8.0, np.nan]])


# -- effective area ----------------------------------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.data
@pytest.mark.parametrize("method", [None, "linear", "nearest"])
def test_aeff_matches_gammapy(gp, irf_file, method):
    theirs = _read_gammapy(gp.EffectiveAreaTable2D, irf_file, "EFFECTIVE AREA")
    ours = EffectiveAreaTable2D.read(irf_file, hdu="EFFECTIVE AREA")
    assert ours.axes.names == ["energy_true", "offset"]
    assert ours.unit == "m2" and ours.data.dtype == np.float64
    np.testing.assert_array_equal(ours.data, theirs.data)
    energy = energy_grid(theirs.axes["energy_true"].edges.to_value("TeV"))
    offsets = np.concatenate([OFFSETS, theirs.axes["offset"].center.to_value("deg")])
    expected = theirs.evaluate(energy_true=energy[:, None] * u.TeV, offset=offsets * u.deg, method=method)
    got = ours.evaluate(energy_true=energy[:, None], offset=offsets, method=method)
    assert_matches(got, _value(expected, "m2"))
    # default coordinates: the axis centres
    assert_matches(ours.evaluate(offset=0.5), _value(theirs.evaluate(offset=0.5 * u.deg), "m2"))
    # Quantities are accepted and converted
    assert_matches(
        ours.evaluate(energy_true=1e3 * u.GeV, offset=0.5 * u.deg), ours.evaluate(energy_true=1.0, offset=0.5)
    )
    assert ours.low_threshold is None and ours.high_threshold is None


@pytest.mark.gammapy
def test_aeff_in_memory_and_thresholds(gp, tmp_path):
    from gammapy.maps import MapAxis as GMapAxis

    energy = GMapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=12, name="energy_true")
    offset = GMapAxis.from_bounds(0, 4, nbin=5, unit="deg", name="offset")
    rng = np.random.default_rng(3)
    data = rng.uniform(1e4, 1e6, (12, 5))
    data[:2] = 0
    theirs = gp.EffectiveAreaTable2D(axes=[energy, offset], data=data, unit="cm2")
    theirs.meta.update({"LO_THRES": 0.3, "HI_THRES": 50.0})
    path = tmp_path / "aeff.fits"
    theirs.write(path)
    ours = EffectiveAreaTable2D.read(path)
    assert ours.low_threshold == 0.3 and ours.high_threshold == 50.0
    assert ours.unit == "cm2" and ours.output_unit == "m2"
    memory = EffectiveAreaTable2D(axes=ours.axes, data=data, unit="cm2")
    e = energy_grid(energy.edges.to_value("TeV"))
    expected = _value(theirs.evaluate(energy_true=e[:, None] * u.TeV, offset=OFFSETS * u.deg), "m2")
    assert_matches(memory.evaluate(energy_true=e[:, None], offset=OFFSETS), expected)
    assert_matches(ours.evaluate(energy_true=e[:, None], offset=OFFSETS), expected)


# -- energy dispersion ----------------------------------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.data
def test_edisp_matches_gammapy(gp, irf_file):
    theirs = _read_gammapy(gp.EnergyDispersion2D, irf_file, "ENERGY DISPERSION")
    ours = EnergyDispersion2D.read(irf_file)
    assert ours.axes.names == ["energy_true", "migra", "offset"]
    energy = np.geomspace(0.01, 300, 23)
    migra = np.concatenate([np.linspace(0.1, 5, 40), [0.0, 0.05, 5.5, 8.0]])
    offsets = np.array([-1.0, 0.0, 0.3, 1.7, 2.5, 5.9, 6.0, 7.0])
    expected = theirs.evaluate(
        energy_true=energy[:, None, None] * u.TeV, migra=migra[:, None], offset=offsets * u.deg
    )
    got = ours.evaluate(energy_true=energy[:, None, None], migra=migra[:, None], offset=offsets)
    assert_matches(got, _value(expected, ""))
    # the bounds rule: out only where energy_true and migra both are, or offset is
    inside = ours.evaluate(energy_true=500.0, migra=1.0, offset=1.0)
    assert inside == _value(theirs.evaluate(energy_true=500 * u.TeV, migra=1.0, offset=1 * u.deg), "")


@pytest.mark.gammapy
@pytest.mark.data
@pytest.mark.parametrize("offset", [0.0, 2.3])
def test_edisp_kernel_matches_gammapy(gp, irf_file, offset):
    from gammapy.maps import MapAxis as GMapAxis

    theirs = _read_gammapy(gp.EnergyDispersion2D, irf_file, "ENERGY DISPERSION")
    ours = EnergyDispersion2D.read(irf_file)
    true_axis = GMapAxis.from_energy_bounds("0.1 TeV", "50 TeV", nbin=12, name="energy_true")
    reco_axis = GMapAxis.from_energy_bounds("0.2 TeV", "30 TeV", nbin=7, name="energy")
    expected = theirs.to_edisp_kernel(offset * u.deg, energy_axis_true=true_axis, energy_axis=reco_axis)
    got = ours.to_edisp_kernel(
        offset,
        energy_axis_true=MapAxis.from_edges(
            true_axis.edges.value, interp="log", name="energy_true", unit="TeV"
        ),
        energy_axis=reco_axis.edges,
    )
    np.testing.assert_allclose(got.pdf_matrix, expected.pdf_matrix, rtol=0, atol=1e-13)
    assert got.pdf_matrix.sum() > 1


@pytest.mark.gammapy
def test_edisp_single_offset_bin(gp):
    from gammapy.maps import MapAxis as GMapAxis

    axes = [
        GMapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=20, name="energy_true"),
        GMapAxis.from_bounds(0.2, 5, nbin=30, name="migra"),
        GMapAxis.from_bounds(0, 2, nbin=1, unit="deg", name="offset"),
    ]
    theirs = gp.EnergyDispersion2D.from_gauss(*axes, bias=0.05, sigma=0.2)
    ours = EnergyDispersion2D(
        axes=[MapAxis.from_edges(a.edges.value, interp=a.interp, name=a.name, unit=a.unit) for a in axes],
        data=theirs.data,
    )
    energy, migra = np.geomspace(0.05, 200, 30)[:, None, None], np.linspace(0, 6, 40)[:, None]
    for offset in (1.0, 3.0):  # the length-1 axis is dropped from the interpolation, not from the bounds
        expected = theirs.evaluate(energy_true=energy * u.TeV, migra=migra, offset=offset * u.deg)
        assert_matches(ours.evaluate(energy_true=energy, migra=migra, offset=offset), _value(expected, ""))
    # Gammapy cannot broadcast an offset array here; ours can
    assert ours.evaluate(energy_true=1.0, migra=1.0, offset=[0.5, 1.0, 3.0]).shape == (3,)


# -- PSFs ------------------------------------------------------------------------------------------------------
RADS = np.concatenate([np.linspace(0, 1, 21), [-0.1, 1.5]])


@pytest.mark.gammapy
@pytest.mark.data
def test_psf_3gauss_matches_gammapy(gp, irf_file):
    theirs = _read_gammapy(gp.EnergyDependentMultiGaussPSF, irf_file, "POINT SPREAD FUNCTION")
    ours = EnergyDependentMultiGaussPSF.read(irf_file, hdu="POINT SPREAD FUNCTION")
    energy = np.geomspace(0.01, 300, 17)
    e, o, r = energy[:, None], OFFSETS, RADS[:, None, None]
    expected = theirs.evaluate(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg)
    assert_matches(ours.evaluate(rad=r, energy_true=e, offset=o), _value(expected, "sr-1"), rtol=1e-10)
    expected = theirs.containment(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg)
    assert_matches(ours.containment(rad=r, energy_true=e, offset=o), _value(expected, ""), rtol=1e-10)
    expected = theirs.containment_radius(
        [0.68, 0.95], energy_true=e[..., None] * u.TeV, offset=o[:-1, None] * u.deg
    )
    got = ours.containment_radius([0.68, 0.95], energy_true=e[..., None], offset=o[:-1, None])
    assert_matches(got, _value(expected, "deg"))
    for name, values in ours.data.items():
        np.testing.assert_array_equal(values, theirs.data[name])
    scalar = theirs.evaluate(rad=0.1 * u.deg, energy_true=1 * u.TeV, offset=0.5 * u.deg)
    assert_matches(ours.evaluate(rad=0.1, energy_true=1.0, offset=0.5), _value(scalar, "sr-1"), rtol=1e-10)


@pytest.fixture
def psf_table_file(gp, irf_file, tmp_path):
    psf = _read_gammapy(gp.EnergyDependentMultiGaussPSF, irf_file, "POINT SPREAD FUNCTION")
    path = tmp_path / "psf_table.fits"
    psf.to_psf3d(rad=np.linspace(0, 0.8, 41) * u.deg).write(path)
    return path


@pytest.mark.gammapy
@pytest.mark.data
def test_psf_table_matches_gammapy(gp, psf_table_file):
    theirs = gp.PSF3D.read(psf_table_file, hdu="PSF_2D_TABLE")
    ours = PSF3D.read(psf_table_file)
    assert ours.axes.names == ["energy_true", "offset", "rad"]
    energy = np.geomspace(0.01, 300, 17)
    e, o, r = energy[:, None], OFFSETS, RADS[:, None, None]
    expected = theirs.evaluate(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg)
    assert_matches(ours.evaluate(rad=r, energy_true=e, offset=o), _value(expected, "sr-1"))
    expected = theirs.containment(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg)
    assert_matches(ours.containment(rad=r, energy_true=e, offset=o), _value(expected, ""))
    expected = theirs.containment_radius(0.68, energy_true=e * u.TeV, offset=o[:-1] * u.deg)
    assert_matches(ours.containment_radius(0.68, energy_true=e, offset=o[:-1]), _value(expected, "deg"))
    nearest = theirs.evaluate(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg, method="nearest")
    assert_matches(ours.evaluate(rad=r, energy_true=e, offset=o, method="nearest"), _value(nearest, "sr-1"))


@pytest.mark.gammapy
def test_psf_king_matches_gammapy(gp, tmp_path):
    from gammapy.maps import MapAxis as GMapAxis

    energy = GMapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=8, name="energy_true")
    offset = GMapAxis.from_bounds(0, 5, nbin=5, unit="deg", name="offset")
    rng = np.random.default_rng(0)
    data = np.empty((8, 5), dtype=[("gamma", "f4"), ("sigma", "f4")])
    data["gamma"] = rng.uniform(1.5, 4, (8, 5))
    data["sigma"] = rng.uniform(0.02, 0.2, (8, 5))
    data["sigma"][0, 0] = 0  # read as 1 by both
    psf = gp.PSFKing(axes=[energy, offset], data=data, unit={"gamma": u.Unit(""), "sigma": u.deg})
    path = tmp_path / "king.fits"
    psf.write(path)
    theirs = gp.PSFKing.read(path, hdu="PSF_2D_KING")
    ours = PSFKing.read(path)
    assert ours.data["sigma"][0, 0] == 1.0
    e, o, r = np.geomspace(0.01, 300, 17)[:, None], OFFSETS, RADS[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):  # Gammapy's King formula at NaN offsets
        expected = theirs.evaluate(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg)
        expected_containment = theirs.containment(rad=r * u.deg, energy_true=e * u.TeV, offset=o * u.deg)
        expected_radius = theirs.containment_radius(0.8, energy_true=e * u.TeV, offset=o[:-1] * u.deg)
    assert_matches(ours.evaluate(rad=r, energy_true=e, offset=o), _value(expected, "sr-1"))
    assert_matches(ours.containment(rad=r, energy_true=e, offset=o), _value(expected_containment, ""))
    got = ours.containment_radius(0.8, energy_true=e, offset=o[:-1])
    assert_matches(got, _value(expected_radius, "deg"))


# -- background ----------------------------------------------------------------------------------------------
@pytest.fixture
def bkg3d_pair(gp, irf_file):
    return _read_gammapy(gp.Background3D, irf_file, "BACKGROUND"), Background3D.read(irf_file)


FOV = np.concatenate([np.linspace(-7, 7, 29), [-6.0, 6.0, np.nan]])


@pytest.mark.gammapy
@pytest.mark.data
def test_bkg3d_matches_gammapy(bkg3d_pair, caplog):
    theirs, ours = bkg3d_pair
    assert ours.unit == "1 / (MeV s sr)" and ours.fov_alignment == "RADEC"
    energy = energy_grid(theirs.axes["energy"].edges.to_value("TeV"))
    e, lon, lat = energy[:, None, None], FOV[:, None], FOV
    expected = theirs.evaluate(energy=e * u.TeV, fov_lon=lon * u.deg, fov_lat=lat * u.deg)
    assert_matches(ours.evaluate(energy=e, fov_lon=lon, fov_lat=lat), _value(expected, "s-1 MeV-1 sr-1"))
    # integration over reco-energy bins on a sky-like grid, as the map maker does
    lon2, lat2 = np.meshgrid(np.linspace(-4, 4, 41), np.linspace(-4, 4, 41))
    edges = np.geomspace(0.01, 300, 15)[:, None, None]
    kwargs = dict(axis_name="energy", energy=edges, fov_lon=lon2, fov_lat=lat2)
    expected = theirs.integrate_log_log(
        **{**kwargs, "energy": edges * u.TeV, "fov_lon": lon2 * u.deg, "fov_lat": lat2 * u.deg}
    )
    got = ours.integrate_log_log(**kwargs)
    assert ours.integrated_unit("energy") == "1 / (s sr)"
    assert_matches(got, _value(expected, "s-1 sr-1"), rtol=1e-10)


@pytest.mark.gammapy
@pytest.mark.data
def test_bkg3d_missing_data_to_2d_and_integral(bkg3d_pair):
    theirs, ours = bkg3d_pair
    # CTA 1DC has zeros only outside the valid range: add holes inside (float32, as in the file)
    holes = theirs.data.copy()
    holes[5:7, 10, 12] = 0
    holes[8, 3, 4] = np.nan
    holes[0, 20, 20] = 0
    theirs.data = holes
    ours = Background3D(axes=ours.axes, data=holes, unit=ours.unit)
    original = ours.data.copy()
    filled = ours.interp_missing_data(axis_name="energy")
    theirs.interp_missing_data(axis_name="energy")  # in place in Gammapy
    np.testing.assert_array_equal(ours.data, original)  # ours returns a new IRF
    assert (~np.isfinite(original) | (original == 0)).sum() == (filled.data == 0).sum() + 3
    np.testing.assert_array_equal(filled.data, theirs.data)
    e = np.geomspace(0.01, 300, 31)[:, None, None]
    expected = theirs.evaluate(energy=e * u.TeV, fov_lon=FOV[:, None] * u.deg, fov_lat=FOV * u.deg)
    got = filled.evaluate(energy=e, fov_lon=FOV[:, None], fov_lat=FOV)
    assert_matches(got, _value(expected, "s-1 MeV-1 sr-1"))
    # to_2d and the offset integral used by the bkg-peak safe mask
    theirs_2d, ours_2d = theirs.to_2d(), filled.to_2d()
    np.testing.assert_array_equal(ours_2d.data, theirs_2d.data)
    np.testing.assert_array_equal(axis_edges(ours_2d.axes["offset"]), theirs_2d.axes["offset"].edges.value)
    bound = theirs_2d.axes["offset"].bounds[1]
    expected = theirs_2d.integral(axis_name="offset", offset=bound)
    got = ours_2d.integral(axis_name="offset", offset=bound.value)
    assert ours_2d.integrated_unit("offset") == "1 / (MeV s)"
    assert_matches(np.ravel(got), np.ravel(_value(expected, "s-1 MeV-1")))


@pytest.fixture
def bkg2d_file(gp, tmp_path):
    from gammapy.maps import MapAxis as GMapAxis

    energy = GMapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=10, name="energy")
    offset = GMapAxis.from_bounds(0, 5, nbin=6, unit="deg", name="offset")
    data = np.exp(-np.arange(10)[:, None] * 0.8 - np.arange(6) * 0.3) * 1e-3
    data[3, 2] = 0
    data[0, 0] = 0
    data[9, 5] = np.nan
    path = tmp_path / "bkg2d.fits"
    gp.Background2D(axes=[energy, offset], data=data, unit="s-1 MeV-1 sr-1").write(path)
    return path


@pytest.mark.gammapy
def test_bkg2d_matches_gammapy(gp, bkg2d_file):
    theirs = gp.Background2D.read(bkg2d_file)
    ours = Background2D.read(bkg2d_file)
    e = energy_grid(theirs.axes["energy"].edges.to_value("TeV"))[:, None]
    for their, our in [
        (theirs, ours),
        (theirs.pad(1, mode="edge", axis_name="offset"), ours.pad(1, mode="edge", axis_name="offset")),
    ]:
        expected = their.evaluate(energy=e * u.TeV, offset=OFFSETS * u.deg)
        assert_matches(our.evaluate(energy=e, offset=OFFSETS), _value(expected, "s-1 MeV-1 sr-1"))
        expected = their.integrate_log_log(axis_name="energy", energy=e * u.TeV, offset=OFFSETS * u.deg)
        got = our.integrate_log_log(axis_name="energy", energy=e, offset=OFFSETS)
        assert_matches(got, _value(expected, "s-1 sr-1"))
    padded = ours.pad((1, 2), axis_name="offset")
    assert padded.axes["offset"].nbin == 9 and np.all(padded.data[:, 0] == 0)
    filled = ours.interp_missing_data("energy")
    theirs.interp_missing_data("energy")
    np.testing.assert_array_equal(filled.data, theirs.data)


# -- dispatch and bad input ----------------------------------------------------------------------------------
@pytest.mark.data
def test_load_irf_hdu_dispatch(irf_file):
    expected = {
        "EFFECTIVE AREA": EffectiveAreaTable2D,
        "ENERGY DISPERSION": EnergyDispersion2D,
        "POINT SPREAD FUNCTION": EnergyDependentMultiGaussPSF,
        "BACKGROUND": Background3D,
    }
    with fits.open(irf_file) as hdulist:
        for name, cls in expected.items():
            irf = load_irf_hdu(hdulist[name], where=f"{irf_file} [{name}]")
            assert type(irf) is cls
            assert irf.meta["EXTNAME"] == name
        # an HDU-index class overrides the header
        assert type(load_irf_hdu(hdulist["BACKGROUND"], "x", hdu_class="bkg_3d")) is Background3D
    assert set(IRF_REGISTRY) == {
        "aeff_2d",
        "edisp_2d",
        "psf_table",
        "psf_3gauss",
        "psf_king",
        "bkg_3d",
        "bkg_2d",
        "rad_max_2d",
    }


@pytest.mark.gammapy
def test_load_irf_hdu_gammapy_written(gp, bkg2d_file):
    with fits.open(bkg2d_file) as hdulist:
        assert hdulist["BACKGROUND"].header["HDUCLAS4"] == "BKG_2D"
        assert type(load_irf_hdu(hdulist["BACKGROUND"], "bkg2d")) is Background2D


@pytest.mark.gammapy
@pytest.mark.data
def test_meta_as_table_read(irf_file):
    from astropy.table import Table

    with fits.open(irf_file) as hdulist:
        table = Table.read(hdulist["EFFECTIVE AREA"])
    assert EffectiveAreaTable2D.read(irf_file).meta == dict(table.meta)


@pytest.mark.data
def test_cta_background_unit_is_accepted_without_warning(irf_file, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.WARNING, logger="jaxgamma.irf.gadf"):
            bkg = Background3D.read(irf_file)
    assert "Invalid unit found in background table" in caplog.text
    assert bkg.unit == "1 / (MeV s sr)"


def _aeff_hdu(energy_bins=42, data_shape=(6, 42), unit="m2", with_data=True, header=None):
    lo = np.geomspace(0.01, 100, energy_bins + 1)
    cols = [
        fits.Column("ENERG_LO", f"{energy_bins}E", unit="TeV", array=lo[None, :-1]),
        fits.Column("ENERG_HI", f"{energy_bins}E", unit="TeV", array=lo[None, 1:]),
        fits.Column("THETA_LO", "6E", unit="deg", array=np.arange(6.0)[None]),
        fits.Column("THETA_HI", "6E", unit="deg", array=np.arange(1.0, 7.0)[None]),
    ]
    if with_data:
        n = int(np.prod(data_shape))
        dim = "(" + ",".join(str(s) for s in data_shape[::-1]) + ")"
        cols.append(fits.Column("EFFAREA", f"{n}E", unit=unit, dim=dim, array=np.ones((1, *data_shape))))
    hdu = fits.BinTableHDU.from_columns(cols, name="EFFECTIVE AREA")
    hdu.header.update(header or {"HDUCLAS1": "RESPONSE", "HDUCLAS2": "EFF_AREA", "HDUCLAS4": "AEFF_2D"})
    return hdu


def test_good_table_hdu_reads():
    aeff = load_irf_hdu(_aeff_hdu(), "good.fits [EFFECTIVE AREA]")
    assert isinstance(aeff, EffectiveAreaTable2D) and aeff.axes.shape == (42, 6)
    np.testing.assert_allclose(aeff.evaluate(energy_true=1.0, offset=2.5), 1.0)


@pytest.mark.parametrize(
    ("hdu", "match"),
    [
        (_aeff_hdu(header={"HDUCLAS2": "FOO", "HDUCLAS4": "BAR"}), r"bad\.fits \[X\].*HDUCLAS2='FOO'"),
        (
            _aeff_hdu(header={"HDUCLAS2": "RAD_MAX", "HDUCLAS4": "RAD_MAX_2D"}),
            r"bad\.fits \[X\].*missing data column 'RAD_MAX'",
        ),
        (_aeff_hdu(with_data=False), r"bad\.fits \[X\].*missing data column 'EFFAREA'"),
        (
            _aeff_hdu(data_shape=(6, 41)),
            r"bad\.fits \[X\].*'EFFAREA' has shape \(41, 6\).*expected \(42, 6\)",
        ),
        (_aeff_hdu(unit="TeV"), r"bad\.fits \[X\].*'EFFAREA' has unit 'TeV'.*m2"),
    ],
)
def test_bad_table_hdu(hdu, match):
    with pytest.raises(ValueError, match=match):
        load_irf_hdu(hdu, "bad.fits [X]")


def test_missing_axis_and_hdu(tmp_path):
    hdu = _aeff_hdu()
    cols = [c for c in hdu.columns if not c.name.startswith("THETA")]
    broken = fits.BinTableHDU.from_columns(cols, name="EFFECTIVE AREA")
    with pytest.raises(ValueError, match=r"f\.fits.*missing axis \['offset'\].*THETA_LO/THETA_HI"):
        EffectiveAreaTable2D.from_table_hdu(broken, where="f.fits [EFFECTIVE AREA]")
    path = tmp_path / "aeff.fits"
    fits.HDUList([fits.PrimaryHDU(), _aeff_hdu()]).writeto(path)
    with pytest.raises(ValueError, match=r"aeff\.fits.*no HDU 'BACKGROUND'"):
        Background3D.read(path)
    aeff = EffectiveAreaTable2D.read(path)
    with pytest.raises(ValueError, match="not a valid coordinate axis"):
        aeff.evaluate(energy=1.0)
    with pytest.raises(ValueError, match="must be 'linear' or 'nearest'"):
        aeff.evaluate(energy_true=1.0, offset=0.0, method="cubic")


# -- building blocks -----------------------------------------------------------------------------------------
def test_irf_is_immutable_and_axes_by_name():
    energy = MapAxis.from_energy_bounds(0.1, 10, 4, unit="TeV", name="energy")
    offset = MapAxis.from_bounds(0, 2, 2, unit="deg", name="offset")
    bkg = Background2D(axes=[energy, offset], data=np.ones((4, 2)), unit="s-1 MeV-1 sr-1")
    assert bkg.axes["offset"] is offset and bkg.axes.index("offset") == 1
    with pytest.raises(ValueError):
        bkg.data[0, 0] = 2.0
    with pytest.raises(ValueError, match="data shape"):
        Background2D(axes=[energy, offset], data=np.ones((2, 4)))
    with pytest.raises(ValueError, match="axes must be"):
        Background2D(axes=[offset, energy], data=np.ones((2, 4)))


def test_interpolate_grid_matches_numpy_interp_and_analytic():
    rng = np.random.default_rng(5)
    grid = np.sort(rng.uniform(0, 10, 12))
    values = rng.normal(size=12)
    x = np.linspace(-2, 12, 101)
    inside = (x >= grid[0]) & (x <= grid[-1])
    got = interpolate_grid([grid], values, [x])
    np.testing.assert_allclose(got[inside], np.interp(x[inside], grid, values), rtol=1e-13)
    # a multilinear function is reproduced exactly, including the extrapolation
    g0, g1, g2 = np.linspace(0, 1, 5), np.linspace(-1, 2, 7), np.geomspace(1, 5, 4)
    table = 1 + 2 * g0[:, None, None] - 3 * g1[:, None] + 0.5 * g2 + g0[:, None, None] * g1[:, None] * g2
    x0, x1, x2 = rng.uniform(-0.5, 1.5, (9, 1, 1)), rng.uniform(-2, 3, (1, 8, 1)), rng.uniform(0, 6, 7)
    expected = 1 + 2 * x0 - 3 * x1 + 0.5 * x2 + x0 * x1 * x2
    np.testing.assert_allclose(interpolate_grid([g0, g1, g2], table, [x0, x1, x2]), expected, rtol=1e-12)
    # scattered points (all dimensions interpolated jointly)
    p0, p1, p2 = rng.uniform(-0.5, 1.5, 50), rng.uniform(-2, 3, 50), rng.uniform(0, 6, 50)
    expected = 1 + 2 * p0 - 3 * p1 + 0.5 * p2 + p0 * p1 * p2
    np.testing.assert_allclose(interpolate_grid([g0, g1, g2], table, [p0, p1, p2]), expected, rtol=1e-12)
    nearest = interpolate_grid([g0, g1, g2], table, [p0, p1, p2], method="nearest")
    i0, i1, i2 = (np.abs(p[:, None] - g).argmin(axis=1) for p, g in ((p0, g0), (p1, g1), (p2, g2)))
    np.testing.assert_array_equal(nearest, table[i0, i1, i2])


def test_trapz_loglog_power_law_is_exact():
    energy = np.geomspace(0.1, 100, 9)
    for index in (1.0, 2.0, 2.7):
        flux = 3e-12 * energy**-index
        got = trapz_loglog(flux, energy)
        lo, hi = energy[:-1], energy[1:]
        expected = (
            3e-12 * np.log(hi / lo)
            if index == 1.0
            else 3e-12 * (hi ** (1 - index) - lo ** (1 - index)) / (1 - index)
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    # zeros integrate to 0, not NaN
    assert np.all(trapz_loglog(np.zeros(5), np.geomspace(1, 10, 5)) == 0)


@pytest.mark.gammapy
def test_axis_centres_are_gammapys(gp):
    from gammapy.maps import MapAxis as GMapAxis

    axis = GMapAxis.from_energy_bounds("0.03 TeV", "200 TeV", nbin=17, name="energy_true")
    ours = MapAxis.from_edges(axis.edges.value, interp="log", name="energy_true", unit="TeV")
    np.testing.assert_array_equal(axis_center(ours), axis.center.value)
