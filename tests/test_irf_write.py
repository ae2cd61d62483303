"""Writing GADF DL3 IRFs (``to_table``/``to_table_hdu``/``write``) and ``load_irf_dict_from_file``.

Every IRF class is written and read back (bit-identical data, same axes and keywords), and the
written files are read by Gammapy 2.1 and compared with what it reads from the originals. The CTA
1DC IRF file gives aeff_2d, edisp_2d, psf_3gauss and bkg_3d; bkg_2d is its background's ``to_2d``,
psf_table and psf_king (no such file in the data subset) are built in memory.
"""

from __future__ import annotations

import logging
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from jaxgamma.geom import MapAxis
from jaxgamma.irf import (
    PSF3D,
    Background3D,
    EffectiveAreaTable2D,
    EnergyDependentMultiGaussPSF,
    EnergyDispersion2D,
    PSFKing,
    load_irf_dict_from_file,
)
from jaxgamma.irf._core import axis_edges
from jaxgamma.units import parse_unit

CTA_IRF = "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"
CTA_HDUS = {
    "aeff_2d": (EffectiveAreaTable2D, "EFFECTIVE AREA"),
    "edisp_2d": (EnergyDispersion2D, "ENERGY DISPERSION"),
    "psf_3gauss": (EnergyDependentMultiGaussPSF, "POINT SPREAD FUNCTION"),
    "bkg_3d": (Background3D, "BACKGROUND"),
}
ALL_TAGS = [*CTA_HDUS, "bkg_2d", "psf_table", "psf_king"]
GAMMAPY_CLASS = {
    "aeff_2d": "EffectiveAreaTable2D",
    "edisp_2d": "EnergyDispersion2D",
    "psf_3gauss": "EnergyDependentMultiGaussPSF",
    "bkg_3d": "Background3D",
    "bkg_2d": "Background2D",
    "psf_table": "PSF3D",
    "psf_king": "PSFKing",
}
GADF_KEYWORDS = {
    "HDUCLASS": "GADF",
    "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
    "HDUVERS": "0.2",
    "HDUCLAS1": "RESPONSE",
}


# -- helpers ---------------------------------------------------------------------------------------------
def _quiet(fn, *args, **kwargs):
    """Call a reader with the CTA 1DC background unit warnings silenced ('1/s/MeV/sr' is not a
    FITS unit: astropy warns in Gammapy's reader, jaxgamma logs it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        return fn(*args, **kwargs)


def _psf_table() -> PSF3D:
    energy = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=7, name="energy_true")
    offset = MapAxis.from_edges([0.0, 1.0, 2.5, 4.0], name="offset", unit="deg")
    rad = MapAxis.from_edges(np.linspace(0, 0.5, 11), name="rad", unit="deg")
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 1e4, (7, 3, 10)).astype(np.float32)
    data[0, 0, :3] = 0
    meta = {"TELESCOP": "TEST", "CHECKSUM": "stale", "DATASUM": "0"}
    return PSF3D(axes=[energy, offset, rad], data=data, unit="sr-1", meta=meta)


def _psf_king() -> PSFKing:
    energy = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=8, name="energy_true")
    offset = MapAxis.from_nodes([0.0, 1.0, 2.0, 3.0, 4.0], name="offset", unit="deg")  # a centre axis
    rng = np.random.default_rng(2)
    data = {
        "gamma": rng.uniform(1.5, 4, (8, 5)).astype(np.float32),
        "sigma": rng.uniform(0.02, 0.2, (8, 5)).astype(np.float32),
    }
    return PSFKing(
        axes=[energy, offset], data=data, unit={"gamma": "", "sigma": "deg"}, meta={"ORIGIN": "test"}
    )


@pytest.fixture(scope="module")
def irf_file(data_dir):
    return data_dir / CTA_IRF


@pytest.fixture(scope="module")
def originals(irf_file):
    """The IRFs by tag, as read by jaxgamma (the in-memory ones built here)."""
    out = {tag: _quiet(cls.read, irf_file, hdu=hdu) for tag, (cls, hdu) in CTA_HDUS.items()}
    out["bkg_2d"] = (
        out["bkg_3d"].to_2d()._replace(meta={"TELESCOP": "CTA", "FOVALIGN": "ALTAZ"}, fov_alignment="ALTAZ")
    )
    out["psf_table"] = _psf_table()
    out["psf_king"] = _psf_king()
    return out


@pytest.fixture(scope="module")
def written(originals, tmp_path_factory):
    """Each IRF written to its own file, by tag."""
    folder = tmp_path_factory.mktemp("irf_write")
    paths = {}
    for tag, irf in originals.items():
        paths[tag] = folder / f"{tag}.fits"
        irf.write(paths[tag])
    return paths


def _data(irf) -> dict[str, np.ndarray]:
    """The stored values by parameter (``_raw`` keeps the stored dtype of a table IRF)."""
    if isinstance(irf.data, dict):
        return {name: values.astype(np.float32) for name, values in irf.data.items()}
    return {"data": irf._raw}


def _units(irf) -> dict[str, u.UnitBase]:
    if isinstance(irf.unit, dict):
        return {name: parse_unit(unit) for name, unit in irf.unit.items()}
    return {"data": parse_unit(irf.unit)}


def assert_same_irf(ours, ref):
    assert type(ours) is type(ref)
    assert ours.axes.names == ref.axes.names
    for a, b in zip(ours.axes, ref.axes, strict=True):
        np.testing.assert_array_equal(a.nodes, b.nodes)
        assert (a.node_type, a.interp, parse_unit(a.unit)) == (b.node_type, b.interp, parse_unit(b.unit))
        np.testing.assert_array_equal(axis_edges(a), axis_edges(b))
    got, expected = _data(ours), _data(ref)
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        assert got[name].dtype.newbyteorder("=") == values.dtype.newbyteorder("="), name  # FITS: big-endian
        np.testing.assert_array_equal(got[name], values)  # NaN in the same places, else equal
    assert _units(ours) == _units(ref)
    assert ours.fov_alignment == ref.fov_alignment
    assert ours.is_pointlike == ref.is_pointlike


# -- round trips through jaxgamma --------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize("tag", ALL_TAGS)
def test_round_trip(tag, originals, written):
    irf = originals[tag]
    back = type(irf).read(written[tag])
    assert_same_irf(back, irf)
    with fits.open(written[tag]) as hdulist:
        assert len(hdulist) == 2 and isinstance(hdulist[0], fits.PrimaryHDU)
        header = hdulist[1].header
    assert header["EXTNAME"] == irf.hdu_name
    for key, value in GADF_KEYWORDS.items():
        assert header[key] == value
    assert header["HDUCLAS4"] == tag.upper()
    assert header["HDUCLAS3"] == "FULL-ENCLOSURE"
    assert "CHECKSUM" not in header and "DATASUM" not in header  # stale checksums are dropped
    # the IRF's own keywords are kept (HDUCLASS etc. replaced by the GADF ones)
    for key, value in irf.meta.items():
        if key not in (*GADF_KEYWORDS, "HDUCLAS2", "HDUCLAS3", "HDUCLAS4", "EXTNAME", "CHECKSUM", "DATASUM"):
            assert back.meta[key] == value, key


@pytest.mark.data
@pytest.mark.parametrize("tag", ALL_TAGS)
def test_rewrite_is_stable(tag, originals, written, tmp_path):
    """Writing what was read gives the same keywords and data, and from then on the same bytes
    (only the comment astropy gives a new EXTNAME card can differ from the first file)."""
    cls = type(originals[tag])
    first, second, third = written[tag], tmp_path / "second.fits", tmp_path / "third.fits"
    cls.read(first).write(second)
    cls.read(second).write(third)
    assert third.read_bytes() == second.read_bytes()
    with fits.open(first) as hdus1, fits.open(second) as hdus2:
        assert list(hdus1[1].header.items()) == list(hdus2[1].header.items())
        assert hdus1[1].data.tobytes() == hdus2[1].data.tobytes()


@pytest.mark.data
def test_table_layout(originals):
    aeff = originals["aeff_2d"]
    table = aeff.to_table()
    assert isinstance(table, Table)
    assert table.colnames == ["ENERG_LO", "ENERG_HI", "THETA_LO", "THETA_HI", "EFFAREA"]
    assert len(table) == 1
    assert table["EFFAREA"].shape == (1, 6, 42)  # transposed, with a leading row dimension
    assert table["EFFAREA"].dtype == np.dtype(">f4")  # the stored precision
    np.testing.assert_array_equal(table["EFFAREA"][0].T, aeff._raw)
    np.testing.assert_array_equal(table["ENERG_LO"][0], aeff.axes["energy_true"].nodes[:-1])
    np.testing.assert_array_equal(table["ENERG_HI"][0], aeff.axes["energy_true"].nodes[1:])
    assert table["EFFAREA"].unit == u.m**2 and table["THETA_LO"].unit == u.deg
    assert table.meta["HDUCLAS2"] == "EFF_AREA" and table.meta["EXTNAME"] == "EFFECTIVE AREA"
    bkg = originals["bkg_3d"].to_table()
    # background: reconstructed energy in ENERG_LO/HI, the column BKG (the file has BGD), FOVALIGN
    assert bkg.colnames == ["ENERG_LO", "ENERG_HI", "DETX_LO", "DETX_HI", "DETY_LO", "DETY_HI", "BKG"]
    assert bkg["BKG"].unit == u.Unit("s-1 MeV-1 sr-1") and bkg.meta["FOVALIGN"] == "RADEC"
    edisp = originals["edisp_2d"].to_table()
    assert edisp.colnames[:4] == ["ENERG_LO", "ENERG_HI", "MIGRA_LO", "MIGRA_HI"]
    assert edisp["MATRIX"].shape == (1, 6, 300, 500)
    psf = originals["psf_3gauss"].to_table()
    assert psf.colnames[4:] == ["SIGMA_1", "SIGMA_2", "SIGMA_3", "SCALE", "AMPL_2", "AMPL_3"]
    assert psf["SIGMA_1"].unit == u.deg and psf["SCALE"].dtype == np.float32
    king = originals["psf_king"].to_table()
    assert king.colnames == ["ENERG_LO", "ENERG_HI", "THETA_LO", "THETA_HI", "GAMMA", "SIGMA"]
    # a centre axis: its nodes in both columns
    np.testing.assert_array_equal(king["THETA_LO"][0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(king["THETA_HI"][0], [0, 1, 2, 3, 4])
    assert originals["psf_table"].to_table_hdu().name == "PSF_2D_TABLE"
    assert originals["psf_3gauss"].to_table_hdu().name == "PSF_2D_GAUSS"
    with pytest.raises(ValueError, match="gadf-dl3"):
        aeff.to_table(format="ogip")
    with pytest.raises(ValueError, match="gadf-dl3"):
        originals["psf_king"].to_table_hdu(format="gadf")


@pytest.mark.data
def test_pointlike_thresholds_and_alignment(originals, tmp_path):
    aeff = originals["aeff_2d"]
    meta = {**aeff.meta, "LO_THRES": 0.05, "HI_THRES": 80.0}
    pointlike = EffectiveAreaTable2D(axes=aeff.axes, data=aeff._raw, unit="cm2", meta=meta, is_pointlike=True)
    pointlike.write(tmp_path / "aeff.fits")
    back = EffectiveAreaTable2D.read(tmp_path / "aeff.fits")
    assert_same_irf(back, pointlike)
    assert back.is_pointlike and back.meta["HDUCLAS3"] == "POINT-LIKE"
    assert (back.low_threshold, back.high_threshold) == (0.05, 80.0)
    assert back.unit == "cm2"
    bkg = originals["bkg_3d"]._replace(fov_alignment="ALTAZ")
    bkg.write(tmp_path / "bkg.fits")
    back = Background3D.read(tmp_path / "bkg.fits")
    assert back.fov_alignment == "ALTAZ" and back.meta["FOVALIGN"] == "ALTAZ"
    # FOVALIGN is written for a 2D background only where its keywords have it
    plain = originals["bkg_3d"].to_2d()
    assert "FOVALIGN" not in plain.to_table().meta
    assert originals["bkg_2d"].to_table().meta["FOVALIGN"] == "ALTAZ"


# -- atomic writing ----------------------------------------------------------------------------------------------
@pytest.mark.data
def test_write_refuses_existing_file(originals, tmp_path):
    path = tmp_path / "irf.fits"
    path.write_bytes(b"old content")
    with pytest.raises(FileExistsError, match=r"irf\.fits"):
        originals["aeff_2d"].write(path)
    assert path.read_bytes() == b"old content"
    with pytest.raises(FileExistsError, match=r"irf\.fits"):
        originals["psf_king"].write(path)
    assert path.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["irf.fits"]
    originals["psf_king"].write(path, overwrite=True)
    assert PSFKing.read(path).axes.names == ["energy_true", "offset"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["irf.fits"]


@pytest.mark.data
def test_write_failure_leaves_nothing(originals, tmp_path, monkeypatch):
    def broken_writeto(self, name, *args, **kwargs):
        with open(name, "wb") as handle:
            handle.write(b"SIMPLE  =  half")
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", broken_writeto)
    target = tmp_path / "sub" / "aeff.fits"
    with pytest.raises(OSError, match="disk full"):
        originals["aeff_2d"].write(target)
    assert list(tmp_path.iterdir()) == []  # no temporary file, no folder created for it
    existing = tmp_path / "bkg.fits"
    existing.write_bytes(b"previous")
    with pytest.raises(OSError, match="disk full"):
        originals["bkg_3d"].write(existing, overwrite=True)
    assert existing.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bkg.fits"]


# -- load_irf_dict_from_file ------------------------------------------------------------------------------------------
@pytest.mark.data
def test_load_irf_dict_cta(irf_file, originals):
    irfs = _quiet(load_irf_dict_from_file, irf_file)
    assert list(irfs) == ["aeff", "psf", "edisp", "bkg"]  # in the order of the HDUs
    for key, tag in [("aeff", "aeff_2d"), ("psf", "psf_3gauss"), ("edisp", "edisp_2d"), ("bkg", "bkg_3d")]:
        assert_same_irf(irfs[key], originals[tag])


@pytest.fixture(scope="module")
def combined(originals, tmp_path_factory):
    """One file with the four CTA 1DC IRFs as jaxgamma writes them."""
    path = tmp_path_factory.mktemp("combined") / "irfs.fits"
    hdus = [fits.PrimaryHDU()] + [originals[tag].to_table_hdu() for tag in CTA_HDUS]
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.mark.data
def test_load_irf_dict_written(combined, originals):
    irfs = load_irf_dict_from_file(combined)
    assert list(irfs) == ["aeff", "edisp", "psf", "bkg"]
    for key, tag in [("aeff", "aeff_2d"), ("psf", "psf_3gauss"), ("edisp", "edisp_2d"), ("bkg", "bkg_3d")]:
        assert_same_irf(irfs[key], originals[tag])


def _assert_error_names(path, match):
    with pytest.raises(ValueError, match=match) as info:
        load_irf_dict_from_file(path)
    assert str(path) in str(info.value)


def test_load_irf_dict_errors(tmp_path):
    _assert_error_names(tmp_path / "missing.fits", "does not exist")
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file\n" * 10)
    _assert_error_names(text, "not a readable FITS file")
    empty = tmp_path / "no_irf.fits"
    gti = fits.BinTableHDU(Table({"START": [0.0], "STOP": [1.0]}), name="GTI")
    fits.HDUList([fits.PrimaryHDU(), gti]).writeto(empty)
    _assert_error_names(empty, "no IRF HDU")
    _assert_error_names(tmp_path, "does not exist")  # a folder


@pytest.mark.data
def test_load_irf_dict_duplicates_unknown_and_pointlike(originals, tmp_path, caplog):
    aeff_hdu = originals["aeff_2d"].to_table_hdu()
    second = originals["aeff_2d"]._replace(data=originals["aeff_2d"]._raw * 2).to_table_hdu()
    second.name = "EFFECTIVE AREA 2"
    unknown = originals["bkg_2d"].to_table_hdu()
    unknown.header["HDUCLAS4"] = "BKG_7D"
    path = tmp_path / "irfs.fits"
    fits.HDUList([fits.PrimaryHDU(), unknown, aeff_hdu, second]).writeto(path)
    with caplog.at_level(logging.WARNING, logger="jaxgamma.irf.gadf"):
        irfs = load_irf_dict_from_file(path)
    assert list(irfs) == ["aeff"]
    np.testing.assert_array_equal(irfs["aeff"]._raw, originals["aeff_2d"]._raw)  # the first one
    assert "unknown class" in caplog.text and "BKG_7D" in caplog.text
    assert "more than one HDU of aeff type found" in caplog.text
    # point-like without a RAD_MAX HDU: the cut comes from the RAD_MAX keyword, which this one lacks
    pointlike = tmp_path / "pointlike.fits"
    originals["aeff_2d"]._replace(is_pointlike=True).write(pointlike)
    _assert_error_names(pointlike, "RAD_MAX keyword")


# -- Gammapy reads what jaxgamma writes ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy.irf")


def _gammapy_arrays(irf) -> dict[str, np.ndarray]:
    if isinstance(irf.data, np.ndarray) and irf.data.dtype.names:
        return {name: irf.data[name] for name in irf.data.dtype.names}
    return {"data": irf.data}


def _gammapy_units(irf) -> dict[str, u.UnitBase]:
    if isinstance(irf.unit, dict):
        return {name: u.Unit(unit) for name, unit in irf.unit.items()}
    return {"data": u.Unit(irf.unit)}


@pytest.mark.gammapy
@pytest.mark.data
@pytest.mark.parametrize("tag", ALL_TAGS)
def test_gammapy_reads_written(gp, tag, originals, written, irf_file):
    cls = getattr(gp, GAMMAPY_CLASS[tag])
    hdu = originals[tag].hdu_name
    theirs = _quiet(cls.read, written[tag], hdu=hdu)
    assert theirs.axes.names == originals[tag].axes.names
    if tag in CTA_HDUS:
        # the same as Gammapy reads from the original file: data to the bit, axes edges too
        ref = _quiet(cls.read, irf_file, hdu=CTA_HDUS[tag][1])
        for name, values in _gammapy_arrays(ref).items():
            got = _gammapy_arrays(theirs)[name]
            assert got.dtype == values.dtype
            np.testing.assert_array_equal(got, values)
        for a, b in zip(theirs.axes, ref.axes, strict=True):
            np.testing.assert_array_equal(a.edges, b.edges)
            assert a.unit == b.unit and a.node_type == b.node_type
        assert _gammapy_units(theirs) == _gammapy_units(ref)
    # and as jaxgamma has it: the data to the bit, Gammapy's axis edges are ours
    for name, values in _data(originals[tag]).items():
        np.testing.assert_array_equal(_gammapy_arrays(theirs)[name], values)
    for a, b in zip(theirs.axes, originals[tag].axes, strict=True):
        np.testing.assert_array_equal(a.edges.to_value(parse_unit(b.unit)), axis_edges(b))
    assert _gammapy_units(theirs) == _units(originals[tag])
    if not isinstance(originals[tag].data, dict):
        assert theirs.fov_alignment.value == originals[tag].fov_alignment
        assert theirs.is_pointlike == originals[tag].is_pointlike


@pytest.mark.gammapy
@pytest.mark.data
@pytest.mark.parametrize("tag", ALL_TAGS)
def test_hdu_as_gammapy_writes_it(gp, tag, originals, written):
    """Column names, order, formats, units, dimensions and header keywords are Gammapy's; the axis
    values are the nodes (Gammapy recomputes its edges: the same to the last bit or so)."""
    theirs = _quiet(getattr(gp, GAMMAPY_CLASS[tag]).read, written[tag], hdu=originals[tag].hdu_name)
    expected = theirs.to_table_hdu()
    ours = originals[tag].to_table_hdu()
    assert ours.name == expected.name
    for col, ref in zip(ours.columns, expected.columns, strict=True):
        assert (col.name, col.format, col.unit, col.dim) == (ref.name, ref.format, ref.unit, ref.dim)
        if col.name.endswith(("_LO", "_HI")):
            np.testing.assert_allclose(ours.data[col.name], expected.data[ref.name], rtol=1e-15, atol=0)
        else:
            np.testing.assert_array_equal(ours.data[col.name], expected.data[ref.name])
    if isinstance(originals[tag].data, dict):
        # Gammapy 2.1 writes a parametric PSF without keywords; ours has the GADF ones
        assert set(expected.header) - set(ours.header) == set()
        assert ours.header["HDUCLAS2"] == "RPSF" and ours.header["HDUCLAS4"] == tag.upper()
    else:
        assert list(ours.header.items()) == list(expected.header.items())


@pytest.mark.gammapy
@pytest.mark.data
def test_gammapy_load_irf_dict(gp, combined, irf_file):
    theirs = _quiet(gp.load_irf_dict_from_file, combined)
    ref = _quiet(gp.load_irf_dict_from_file, irf_file)
    assert set(theirs) == set(ref) == {"aeff", "edisp", "psf", "bkg"}
    for key in ref:
        assert type(theirs[key]) is type(ref[key])
        for name, values in _gammapy_arrays(ref[key]).items():
            np.testing.assert_array_equal(_gammapy_arrays(theirs[key])[name], values)
        for a, b in zip(theirs[key].axes, ref[key].axes, strict=True):
            np.testing.assert_array_equal(a.edges, b.edges)
    ours = _quiet(load_irf_dict_from_file, irf_file)
    assert list(ours) == list(ref)
    for key in ref:
        assert type(ours[key]).__name__ == type(ref[key]).__name__
        for name, values in _gammapy_arrays(ref[key]).items():
            np.testing.assert_array_equal(_data(ours[key])[name], values)


@pytest.mark.gammapy
@pytest.mark.data
def test_gammapy_load_irf_dict_duplicates_and_unknown(gp, originals, tmp_path, caplog):
    aeff_hdu = originals["aeff_2d"].to_table_hdu()
    second = originals["aeff_2d"]._replace(data=originals["aeff_2d"]._raw * 2).to_table_hdu()
    second.name = "EFFECTIVE AREA 2"
    unknown = originals["psf_king"].to_table_hdu()
    unknown.header["HDUCLAS4"] = "PSF_MOFFAT"
    path = tmp_path / "irfs.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), unknown, aeff_hdu, second, originals["psf_table"].to_table_hdu()]
    ).writeto(path)
    theirs = gp.load_irf_dict_from_file(path)
    ours = load_irf_dict_from_file(path)
    assert list(ours) == list(theirs) == ["aeff", "psf"]
    np.testing.assert_array_equal(ours["aeff"]._raw, theirs["aeff"].data)
    np.testing.assert_array_equal(ours["psf"]._raw, theirs["psf"].data)
    assert type(theirs["psf"]).__name__ == type(ours["psf"]).__name__ == "PSF3D"
