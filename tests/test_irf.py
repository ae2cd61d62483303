"""IRF maps: PSF kernels, containment radii and energy-dispersion kernels vs Gammapy 2.1.

Stored numbers (from jaxgamma, identical to Gammapy 2.1's on this machine) run without Gammapy;
the ``gammapy`` tests compare live. Observed deviation from Gammapy: none (bit-identical kernels,
containment radii and kernel matrices), except ``EDispMap.to_edisp_kernel_map`` on a full map
(<= 4e-16, Gammapy interpolates at world -> pixel round-trip coordinates).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.irf import EDispKernel, EDispKernelMap, EDispMap, PSFKernel, PSFMap, read_edisp_map

FERMI = "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"
CTA = "cta-1dc-gc-reduced/stacked.fits.gz"
CRAB = SkyCoord(83.63310241699219, 22.019899368286133, unit="deg", frame="icrs")
GC = SkyCoord(-0.05, -0.05, unit="deg", frame="galactic")
GC2 = SkyCoord(0.7, 0.3, unit="deg", frame="galactic")
OUTSIDE = SkyCoord(10.0, 10.0, unit="deg", frame="galactic")

# kernel tolerance of gammapy-reference.md section 9 (float32 kernel); observed: 0
KERNEL_ATOL = 4e-8


@functools.cache
def _read(path):
    with fits.open(path) as hdulist:
        return (
            path,
            PSFMap.from_hdulist(hdulist),
            WcsGeom.from_hdulist(hdulist, "EXPOSURE"),
            read_edisp_map(hdulist),
        )


@functools.cache
def _read_gammapy(path):
    from gammapy.datasets import MapDataset

    return MapDataset.read(path)


@pytest.fixture
def fermi(gammapy_data):
    return _read(gammapy_data / FERMI)


@pytest.fixture
def cta(gammapy_data):
    return _read(gammapy_data / CTA)


@pytest.fixture
def gp_datasets(gammapy_data):
    pytest.importorskip("gammapy")
    return {"fermi": _read_gammapy(gammapy_data / FERMI), "cta": _read_gammapy(gammapy_data / CTA)}


def _gp_axis(axis: MapAxis):
    from gammapy.maps import MapAxis as GAxis

    return GAxis(
        axis.nodes * u.Unit(axis.unit or ""), name=axis.name, interp=axis.interp, node_type=axis.node_type
    )


def _gp_geom(geom: WcsGeom):
    from gammapy.maps import WcsGeom as GGeom

    return GGeom(geom.wcs, geom.npix, axes=[_gp_axis(a) for a in geom.axes])


# -- reading -----------------------------------------------------------------------------------------
def test_read_fermi(fermi):
    _, psf, geom, edisp = fermi
    assert psf.psf_values.shape == (17, 300, 1, 2)
    assert psf.psf_values.dtype == np.float64 and psf.psf_values.dtype.isnative
    assert [a.name for a in psf.geom.axes] == ["rad", "energy_true"]
    assert psf.rad_axis.unit == "rad" and psf.energy_axis.unit == "GeV"
    assert u.Unit(psf.unit) == u.Unit("sr-1") and u.Unit(psf.exposure_unit) == u.Unit("cm2 s")
    assert psf.exposure.shape == (17, 1, 1, 2)
    assert not psf.has_single_spatial_bin
    assert psf.energy_name == "energy_true"
    assert isinstance(edisp, EDispKernelMap)
    assert edisp.edisp_values.shape == (5, 5, 20, 25)
    assert edisp.exposure.shape == (5, 1, 20, 25)
    assert geom.data_shape == (5, 40, 50)


def test_read_cta(cta):
    _, psf, _, edisp = cta
    assert psf.psf_values.shape == (14, 66, 40, 50)
    assert psf.psf_values.dtype == np.float32
    assert psf.rad_axis.node_type == "edges" and psf.rad_axis.unit == "deg"
    assert isinstance(edisp, EDispKernelMap)
    assert edisp.edisp_values.shape == (14, 10, 40, 50)


def test_missing_hdu():
    hdulist = fits.HDUList([fits.PrimaryHDU()])
    with pytest.raises(ValueError, match="no HDU 'PSF'"):
        PSFMap.from_hdulist(hdulist)
    with pytest.raises(ValueError, match="no HDU 'EDISP'"):
        read_edisp_map(hdulist)


# -- PSF kernel: stored numbers ---------------------------------------------------------------------
def test_psf_kernel_fermi_crab(fermi):
    _, psf, geom, _ = fermi
    kernel = psf.get_psf_kernel(CRAB, geom)
    assert isinstance(kernel, PSFKernel)
    assert kernel.data.shape == (5, 47, 47) and kernel.data.dtype == np.float64
    assert kernel.psf_width == pytest.approx(4.7)
    assert np.all(kernel.data.astype(np.float32) == kernel.data)  # Gammapy's float32 values
    centre = [
        0.37021133303642273,
        0.4859027862548828,
        0.4924556016921997,
        0.5084533095359802,
        0.5555432438850403,
    ]
    np.testing.assert_array_equal(kernel.data[:, 23, 23], centre)
    np.testing.assert_allclose(
        kernel.data[:, 25, 20],
        [
            0.00155839731451124,
            0.00149720709305257,
            0.00146079203113914,
            0.00124810251872987,
            0.00089026638306677,
        ],
        rtol=1e-7,
    )
    np.testing.assert_allclose(kernel.data.sum(axis=(1, 2)), 1, atol=3e-7)
    # the kernel is symmetric about its centre to float32 rounding
    np.testing.assert_allclose(kernel.data, kernel.data[:, ::-1, ::-1], atol=1e-7)
    assert psf.kernel_width_deg(geom, CRAB) == kernel.psf_width


def test_psf_kernel_cta(cta):
    _, psf, geom, _ = cta
    kernel = psf.get_psf_kernel(GC, geom)
    assert kernel.data.shape == (14, 37, 37)
    assert kernel.psf_width == pytest.approx(0.74)
    assert kernel.geom.npix == (37, 37) and kernel.geom.frame == "galactic"
    np.testing.assert_allclose(
        kernel.data[[0, 6, 13], 18, 18],
        [0.00708025228232145, 0.04554464295506477, 0.07546896487474442],
        rtol=1e-7,
    )
    np.testing.assert_allclose(
        kernel.data[[0, 6, 13], 20, 15],
        [0.00527973240241408, 0.00710924016311765, 0.00356980878859758],
        rtol=1e-7,
    )
    np.testing.assert_allclose(kernel.data.sum(axis=(1, 2)), 1, atol=2e-7)
    other = psf.get_psf_kernel(GC2, geom)
    np.testing.assert_allclose(
        other.data[[0, 13], 18, 18], [0.00707235280424356, 0.07492635399103165], rtol=1e-7
    )


def test_psf_kernel_snaps_to_valid_pixel(cta):
    _, psf, geom, _ = cta
    kernel = psf.get_psf_kernel(OUTSIDE, geom)
    snapped = psf._nearest_valid_position(OUTSIDE)
    assert snapped.separation(OUTSIDE).deg > 1
    np.testing.assert_array_equal(kernel.data, psf.get_psf_kernel(snapped, geom).data)


def test_psf_kernel_max_radius(cta):
    _, psf, geom, _ = cta
    kernel = psf.get_psf_kernel(GC, geom, max_radius=0.2 * u.deg)
    assert kernel.data.shape == (14, 21, 21)
    assert psf.get_psf_kernel(GC, geom, max_radius=0.2).data.shape == (14, 21, 21)


def test_psf_kernel_performance(cta):
    _, psf, geom, _ = cta
    psf.get_psf_kernel(GC, geom)
    start = time.perf_counter()
    psf.get_psf_kernel(GC2, geom)
    assert time.perf_counter() - start < 1.0


def test_psf_kernel_argument_errors(cta):
    _, psf, geom, _ = cta
    with pytest.raises(TypeError, match="position, geom"):
        psf.get_psf_kernel(geom, GC)
    with pytest.raises(TypeError, match="SkyCoord"):
        psf.get_psf_kernel((0.0, 0.0), geom)
    with pytest.raises(ValueError, match="energy_true"):
        psf.get_psf_kernel(GC, geom.to_image())


def test_containment_radius_stored(fermi, cta):
    _, psf, _, _ = fermi
    np.testing.assert_allclose(
        psf.containment_radius(0.68, [0.1, 1.0], CRAB), [0.0993444438053236, 0.08283333193573054], rtol=1e-12
    )
    # outside the PSF's energy range Gammapy's containment is 0: the first rad node
    assert psf.containment_radius(0.68, 10 * u.TeV, CRAB)[0] == 0
    _, psf, _, _ = cta
    np.testing.assert_allclose(
        psf.containment_radius(0.68, [0.1, 1.0, 10.0] * u.TeV, GC), [0.14075, 0.05375, 0.04325], rtol=1e-12
    )
    assert psf.containment_radius(0.68).shape == (14,)


# -- PSF vs Gammapy ------------------------------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.parametrize(
    "name, position",
    [("fermi", CRAB), ("cta", GC), ("cta", GC2), ("cta", OUTSIDE)],
    ids=["crab", "gc", "gc2", "outside"],
)
def test_psf_kernel_vs_gammapy(name, position, fermi, cta, gp_datasets):
    _, psf, geom, _ = {"fermi": fermi, "cta": cta}[name]
    dataset = gp_datasets[name]
    kernel = psf.get_psf_kernel(position, geom)
    expected = dataset.psf.get_psf_kernel(geom=dataset.exposure.geom, position=position, containment=0.999)
    assert kernel.data.shape == expected.psf_kernel_map.data.shape
    np.testing.assert_allclose(kernel.data, expected.psf_kernel_map.data, rtol=0, atol=KERNEL_ATOL)
    assert kernel.psf_width == pytest.approx(
        np.max(expected.psf_kernel_map.geom.width).to_value("deg"), rel=1e-12
    )
    assert kernel.geom.wcs.to_header() == expected.psf_kernel_map.geom.wcs.to_header()


@pytest.mark.gammapy
def test_psf_kernel_vs_gammapy_evaluator(fermi, gp_datasets):
    """The kernel Gammapy's MapEvaluator itself uses for a point source at the Crab."""
    from gammapy.modeling.models import PointSpatialModel, PowerLawSpectralModel, SkyModel

    _, psf, geom, _ = fermi
    dataset = gp_datasets["fermi"].copy()
    model = SkyModel(
        PowerLawSpectralModel(), PointSpatialModel(lon_0=CRAB.ra, lat_0=CRAB.dec, frame="icrs"), name="crab"
    )
    dataset.models = [model]
    dataset.npred()
    expected = dataset.evaluators["crab"].psf
    kernel = psf.get_psf_kernel(CRAB, geom)
    np.testing.assert_allclose(kernel.data, expected.psf_kernel_map.data, rtol=0, atol=KERNEL_ATOL)
    assert kernel.psf_width == pytest.approx(dataset.evaluators["crab"].psf_width.to_value("deg"))


@pytest.mark.gammapy
@pytest.mark.parametrize("proj, binsz, nbin", [("TAN", 0.05, 14), ("CAR", 0.01, 20), ("AIT", 0.1, 20)])
def test_psf_kernel_other_geometries_vs_gammapy(proj, binsz, nbin, cta, gp_datasets):
    from gammapy.maps import WcsGeom as GGeom

    _, psf, _, _ = cta
    axis = MapAxis.from_energy_bounds("0.05 TeV", "200 TeV", nbin=nbin, name="energy_true")
    geom = WcsGeom.create(skydir=(0.3, 0.2), binsz=binsz, width=(4, 3), frame="icrs", proj=proj, axes=[axis])
    gp_geom = GGeom.create(
        skydir=(0.3, 0.2), binsz=binsz, width=(4, 3), frame="icrs", proj=proj, axes=[_gp_axis(axis)]
    )
    position = SkyCoord(266.5, -29, unit="deg")
    kernel = psf.get_psf_kernel(position, geom)
    expected = gp_datasets["cta"].psf.get_psf_kernel(geom=gp_geom, position=position).psf_kernel_map.data
    assert kernel.data.shape == expected.shape
    np.testing.assert_allclose(kernel.data, expected, rtol=0, atol=KERNEL_ATOL)
    assert psf.kernel_width_deg(geom, position) == kernel.psf_width


@pytest.mark.gammapy
def test_psf_single_spatial_bin_vs_gammapy(cta, gp_datasets):
    """A one-pixel PSF map in float64 (scipy's 2D interpolation path)."""
    from gammapy.irf import PSFMap as GPSFMap
    from gammapy.maps import Map

    _, psf, geom, _ = cta
    data = psf.psf_values[:, :, 20:21, 25:26].astype(np.float64)
    single = WcsGeom.create(skydir=(0, 0), binsz=0.2, npix=(1, 1), frame="galactic", axes=psf.geom.axes)
    ours = PSFMap(data, single)
    theirs = GPSFMap(Map.from_geom(_gp_geom(single), data=data, unit="sr-1"))
    assert ours.has_single_spatial_bin and theirs.has_single_spatial_bin
    kernel = ours.get_psf_kernel(GC, geom)
    expected = theirs.get_psf_kernel(geom=gp_datasets["cta"].exposure.geom, position=GC).psf_kernel_map.data
    np.testing.assert_allclose(kernel.data, expected, rtol=0, atol=KERNEL_ATOL)
    energy = gp_datasets["cta"].exposure.geom.axes["energy_true"].center
    np.testing.assert_allclose(
        ours.containment_radius(0.68, energy, GC),
        theirs.containment_radius(0.68, energy, GC).to_value("deg"),
        rtol=1e-12,
    )


@pytest.mark.gammapy
@pytest.mark.parametrize(
    "name, position", [("fermi", CRAB), ("cta", GC), ("cta", GC2)], ids=["crab", "gc", "gc2"]
)
def test_containment_vs_gammapy(name, position, fermi, cta, gp_datasets):
    _, psf, _, _ = {"fermi": fermi, "cta": cta}[name]
    gp_psf = gp_datasets[name].psf
    energy = gp_datasets[name].exposure.geom.axes["energy_true"].center
    for fraction in (0.68, 0.95, 0.999):
        np.testing.assert_allclose(
            psf.containment_radius(fraction, energy, position),
            gp_psf.containment_radius(fraction, energy, position).to_value("deg"),
            rtol=1e-12,
            atol=1e-15,
        )
    rad = np.array([0.01, 0.05, 0.1, 0.3, 1.0])[:, np.newaxis]
    np.testing.assert_allclose(
        psf.containment(rad, energy.to_value("TeV")[np.newaxis], position),
        gp_psf.containment(rad * u.deg, energy[np.newaxis], position).to_value(""),
        rtol=1e-12,
        atol=1e-15,
    )


# -- EDisp ---------------------------------------------------------------------------------------------
def test_edisp_kernel_stored(fermi, cta):
    _, _, _, edisp = fermi
    np.testing.assert_array_equal(edisp.get_edisp_kernel(CRAB).pdf_matrix, np.eye(5))
    _, _, _, edisp = cta
    matrix = edisp.get_edisp_kernel(GC, energy_axis=edisp.energy_axis).pdf_matrix
    assert matrix.shape == (14, 10)
    assert matrix.sum() == pytest.approx(12.984289730575142, rel=1e-12)
    np.testing.assert_allclose(
        matrix.sum(axis=1)[[0, 1, 13]],
        [0.47740614268695936, 0.9783657317057077, 0.5287035154178739],
        rtol=1e-7,
    )
    assert matrix[2, 2] == pytest.approx(0.014965636655688286, rel=1e-7)
    outside = edisp.get_edisp_kernel(OUTSIDE).pdf_matrix
    assert outside.sum() == pytest.approx(13.055552698645329, rel=1e-12)


def test_edisp_kernel_errors(cta):
    _, _, _, edisp = cta
    other = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3)
    with pytest.raises(ValueError, match="differs"):
        edisp.get_edisp_kernel(GC, energy_axis=other)
    with pytest.raises(TypeError, match="position, energy_axis"):
        edisp.get_edisp_kernel(edisp.energy_axis)


@pytest.mark.gammapy
@pytest.mark.parametrize(
    "name, position",
    [("fermi", CRAB), ("fermi", SkyCoord(0, 0, unit="deg")), ("cta", GC), ("cta", GC2), ("cta", OUTSIDE)],
    ids=["crab", "fermi-outside", "gc", "gc2", "cta-outside"],
)
def test_edisp_kernel_vs_gammapy(name, position, fermi, cta, gp_datasets):
    _, _, _, edisp = {"fermi": fermi, "cta": cta}[name]
    expected = gp_datasets[name].edisp.get_edisp_kernel(position=position).pdf_matrix
    np.testing.assert_array_equal(edisp.get_edisp_kernel(position).pdf_matrix, expected)


def _gaussian_edisp_map(energy_axis_true: MapAxis) -> EDispMap:
    """A migration pdf with a bias and a resolution varying over a 4 x 3 pixel grid."""
    migra = MapAxis.from_edges(np.linspace(0.2, 3.0, 57), name="migra")
    geom = WcsGeom.create(
        skydir=(0.0, 0.0), binsz=0.5, npix=(4, 3), frame="galactic", axes=[migra, energy_axis_true]
    )
    m = migra.center[np.newaxis, :, np.newaxis, np.newaxis]
    e = np.log10(energy_axis_true.center)[:, np.newaxis, np.newaxis, np.newaxis]
    y, x = np.mgrid[0:3, 0:4]
    sigma = 0.1 + 0.05 * np.abs(e) + 0.01 * x
    bias = 1.0 + 0.02 * e - 0.01 * y
    pdf = np.exp(-0.5 * ((m - bias) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    return EDispMap(pdf, geom, exposure=np.ones((energy_axis_true.nbin, 1, 3, 4)), exposure_unit="m2 s")


def test_edisp_map_kernel():
    energy_true = MapAxis.from_energy_bounds("0.1 TeV", "50 TeV", nbin=12, name="energy_true")
    energy = MapAxis.from_energy_bounds("0.2 TeV", "20 TeV", nbin=8)
    edisp = _gaussian_edisp_map(energy_true)
    position = SkyCoord(0.3, 0.2, unit="deg", frame="galactic")
    kernel = edisp.get_edisp_kernel(position, energy_axis=energy)
    assert kernel.pdf_matrix.shape == (12, 8)
    assert np.all(kernel.pdf_matrix >= 0)
    # a true bin well inside the reconstructed range keeps nearly all its probability
    assert kernel.pdf_matrix[6].sum() == pytest.approx(1, abs=1e-3)
    kernel_map = edisp.to_edisp_kernel_map(energy)
    assert isinstance(kernel_map, EDispKernelMap)
    np.testing.assert_allclose(
        kernel_map.get_edisp_kernel(position).pdf_matrix, kernel.pdf_matrix, rtol=1e-12, atol=1e-15
    )
    assert kernel_map.exposure.shape == (12, 1, 3, 4)
    with pytest.raises(ValueError, match="energy_axis"):
        edisp.get_edisp_kernel(position)


@pytest.mark.gammapy
def test_edisp_map_vs_gammapy():
    pytest.importorskip("gammapy")
    from gammapy.irf import EDispMap as GEDispMap
    from gammapy.maps import Map

    energy_true = MapAxis.from_energy_bounds("0.1 TeV", "50 TeV", nbin=12, name="energy_true")
    energy = MapAxis.from_energy_bounds("0.2 TeV", "20 TeV", nbin=8)
    edisp = _gaussian_edisp_map(energy_true)
    theirs = GEDispMap(Map.from_geom(_gp_geom(edisp.geom), data=edisp.edisp_values, unit=""))
    for position in (
        SkyCoord(0.3, 0.2, unit="deg", frame="galactic"),
        SkyCoord(-0.6, -0.4, unit="deg", frame="galactic"),
    ):
        np.testing.assert_array_equal(
            edisp.get_edisp_kernel(position, energy_axis=energy).pdf_matrix,
            theirs.get_edisp_kernel(energy_axis=_gp_axis(energy), position=position).pdf_matrix,
        )
    np.testing.assert_allclose(
        edisp.to_edisp_kernel_map(energy).edisp_values,
        theirs.to_edisp_kernel_map(_gp_axis(energy)).edisp_map.data,
        rtol=0,
        atol=1e-15,
    )


# -- diagonal responses -------------------------------------------------------------------------------
TRUE_EDGES = [0.5, 1, 2, 4, 6]
RECO_EDGES = [0.7, 2, 3, 6.5]


def test_diagonal_response_stored():
    energy_true = MapAxis.from_energy_edges(TRUE_EDGES * u.TeV, name="energy_true")
    energy = MapAxis.from_energy_edges(RECO_EDGES * u.TeV)
    matrix = EDispKernel.from_diagonal_response(energy_true, energy).pdf_matrix
    expected = [[0.6, 0, 0], [1, 0, 0], [0, 0.5, 0.5], [0, 0, 1]]
    np.testing.assert_allclose(matrix, expected, rtol=1e-14)
    np.testing.assert_array_equal(EDispKernel.from_diagonal_response(energy_true).pdf_matrix, np.eye(4))
    in_gev = MapAxis.from_energy_edges(np.array(RECO_EDGES) * 1e3 * u.GeV)
    np.testing.assert_allclose(
        EDispKernel.from_diagonal_response(energy_true, in_gev).pdf_matrix, expected, rtol=1e-14, atol=1e-15
    )
    kernel_map = EDispKernelMap.from_diagonal_response(energy, energy_true)
    assert kernel_map.edisp_values.dtype == np.float32 and kernel_map.geom.npix == (2, 1)
    np.testing.assert_allclose(kernel_map.get_edisp_kernel().pdf_matrix, expected, rtol=1e-7)
    edisp_map = EDispMap.from_diagonal_response(energy_true)
    # the migration pdf is a narrow peak at 1: each true-bin centre lands in one reconstructed bin
    centre_bins = [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    np.testing.assert_allclose(
        edisp_map.get_edisp_kernel(energy_axis=energy).pdf_matrix, centre_bins, atol=1e-12
    )


@pytest.mark.gammapy
def test_diagonal_response_vs_gammapy():
    pytest.importorskip("gammapy")
    import gammapy.irf as girf

    energy_true = MapAxis.from_energy_edges(TRUE_EDGES * u.TeV, name="energy_true")
    gp_true = _gp_axis(energy_true)
    for energy in (
        MapAxis.from_energy_edges(RECO_EDGES * u.TeV),
        MapAxis.from_energy_edges(np.array(RECO_EDGES) * 1e3 * u.GeV),
        MapAxis.from_energy_bounds("0.3 TeV", "10 TeV", nbin=7),
    ):
        gp_energy = _gp_axis(energy)
        np.testing.assert_array_equal(
            EDispKernel.from_diagonal_response(energy_true, energy).pdf_matrix,
            girf.EDispKernel.from_diagonal_response(gp_true, gp_energy).pdf_matrix,
        )
        np.testing.assert_array_equal(
            EDispKernelMap.from_diagonal_response(energy, energy_true).edisp_values,
            girf.EDispKernelMap.from_diagonal_response(gp_energy, gp_true).edisp_map.data,
        )
        np.testing.assert_array_equal(
            EDispMap.from_diagonal_response(energy_true).get_edisp_kernel(energy_axis=energy).pdf_matrix,
            girf.EDispMap.from_diagonal_response(gp_true).get_edisp_kernel(energy_axis=gp_energy).pdf_matrix,
        )
    np.testing.assert_array_equal(
        EDispKernel.from_diagonal_response(energy_true).pdf_matrix,
        girf.EDispKernel.from_diagonal_response(gp_true).pdf_matrix,
    )


# -- FITS round trip ------------------------------------------------------------------------------------
def _assert_same_map(a, b):
    assert type(a) is type(b)
    assert a.geom == b.geom
    assert a.unit == b.unit
    assert a.data.dtype == b.data.dtype
    np.testing.assert_array_equal(a.data, b.data)
    assert a.exposure_geom == b.exposure_geom
    assert a.exposure_unit == b.exposure_unit
    np.testing.assert_array_equal(a.exposure, b.exposure)


@pytest.mark.parametrize("which", ["fermi", "cta"])
def test_round_trip(which, fermi, cta, tmp_path):
    _, psf, geom, edisp = {"fermi": fermi, "cta": cta}[which]
    hdulist = psf.to_hdulist()
    assert [h.name for h in hdulist] == ["PRIMARY", "PSF", "PSF_BANDS", "PSF_EXPOSURE", "PSF_EXPOSURE_BANDS"]
    hdulist += edisp.to_hdulist()[1:]
    hdulist.writeto(tmp_path / "irf.fits")
    with fits.open(tmp_path / "irf.fits") as read:
        psf2 = PSFMap.from_hdulist(read)
        edisp2 = read_edisp_map(read)
        assert read["PSF"].header["BUNIT"] == "sr-1"
        assert read["EDISP"].header["BANDSHDU"] == "EDISP_BANDS"
    _assert_same_map(psf, psf2)
    _assert_same_map(edisp, edisp2)
    position = CRAB if which == "fermi" else GC
    np.testing.assert_array_equal(
        psf.get_psf_kernel(position, geom).data, psf2.get_psf_kernel(position, geom).data
    )


def test_round_trip_edisp_map(tmp_path):
    energy_true = MapAxis.from_energy_bounds("0.1 TeV", "50 TeV", nbin=12, name="energy_true")
    edisp = _gaussian_edisp_map(energy_true)
    edisp.to_hdulist().writeto(tmp_path / "edisp.fits")
    with fits.open(tmp_path / "edisp.fits") as read:
        edisp2 = read_edisp_map(read)
    _assert_same_map(edisp, edisp2)


@pytest.mark.gammapy
def test_gammapy_reads_our_files(cta, gp_datasets, tmp_path):
    pytest.importorskip("gammapy")
    from gammapy.irf import EDispKernelMap as GEDispKernelMap
    from gammapy.irf import PSFMap as GPSFMap

    _, psf, geom, edisp = cta
    psf.to_hdulist().writeto(tmp_path / "psf.fits")
    edisp.to_hdulist().writeto(tmp_path / "edisp.fits")
    gp_psf = GPSFMap.read(tmp_path / "psf.fits", format="gadf")
    gp_edisp = GEDispKernelMap.read(tmp_path / "edisp.fits")
    np.testing.assert_array_equal(gp_psf.psf_map.data, psf.psf_values)
    np.testing.assert_array_equal(gp_psf.exposure_map.data, psf.exposure)
    np.testing.assert_array_equal(gp_edisp.edisp_map.data, edisp.edisp_values)
    kernel = gp_psf.get_psf_kernel(geom=gp_datasets["cta"].exposure.geom, position=GC).psf_kernel_map.data
    np.testing.assert_array_equal(kernel, psf.get_psf_kernel(GC, geom).data)


def test_from_geom():
    rad = MapAxis.from_edges(np.linspace(0, 1, 11), name="rad", unit="deg")
    energy_true = MapAxis.from_energy_bounds("1 TeV", "10 TeV", nbin=3, name="energy_true")
    geom = WcsGeom.create(npix=(3, 2), binsz=1.0, axes=[rad, energy_true])
    psf = PSFMap.from_geom(geom)
    assert psf.psf_values.shape == (3, 10, 2, 3) and psf.exposure.shape == (3, 1, 2, 3)
    assert u.Unit(psf.exposure_unit) == u.Unit("m2 s")
    with pytest.raises(ValueError, match="axes"):
        PSFMap(np.zeros((3, 2, 3)), geom.replace_axes([energy_true]))
    with pytest.raises(ValueError, match="shape"):
        PSFMap(np.zeros((3, 10, 2, 2)), geom)


def test_psf_kernel_is_cached_per_position(gammapy_data):
    from astropy.coordinates import SkyCoord
    from astropy.io import fits

    from jaxgamma.geom import WcsGeom
    from jaxgamma.irf.psf import PSFMap

    path = gammapy_data / "cta-1dc-gc-reduced/stacked.fits.gz"
    with fits.open(path) as hdulist:
        psf = PSFMap.from_hdulist(hdulist)
        geom = WcsGeom.from_hdulist(hdulist, hdu="EXPOSURE")
    here = SkyCoord(-0.05, -0.05, unit="deg", frame="galactic")
    first = psf.get_psf_kernel(here, geom)
    assert psf.get_psf_kernel(SkyCoord(-0.05, -0.05, unit="deg", frame="galactic"), geom) is first
    other = psf.get_psf_kernel(SkyCoord(0.7, 0.3, unit="deg", frame="galactic"), geom)
    assert other is not first
    # the cached kernel is what a fresh build gives, and it cannot be modified in place
    with fits.open(path) as hdulist:
        fresh = PSFMap.from_hdulist(hdulist).get_psf_kernel(here, geom)
    np.testing.assert_array_equal(first.data, fresh.data)
    assert not first.data.flags.writeable
