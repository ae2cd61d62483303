"""OGIP spectra (PHA, BKG, ARF, RMF), read and written as Gammapy 2.1 does.

Reading follows ``gammapy.datasets.io.OGIPDatasetReader``:

- PHA ``SPECTRUM``: ``COUNTS`` -> counts, ``BACKSCAL`` -> acceptance, ``QUALITY == 0`` -> mask_safe;
  header ``EXPOSURE`` -> livetime [s], ``OBS_ID`` -> dataset name, ``ANCRFILE`` / ``BACKFILE`` /
  ``RESPFILE`` name the other files (relative names are taken relative to the PHA's folder).
- PHA ``EBOUNDS``: ``E_MIN``, ``E_MAX`` -> reconstructed energy edges; optional ``GTI``.
- BKG ``SPECTRUM``: ``COUNTS`` -> counts_off, ``BACKSCAL`` -> acceptance_off.
- ARF ``SPECRESP``: ``ENERG_LO``, ``ENERG_HI`` -> true energy edges; exposure = ``SPECRESP x EXPOSURE``.
- RMF ``MATRIX``: for each row ``i`` and group ``k``,
  ``K[i, F_CHAN[k] : F_CHAN[k] + N_CHAN[k]] = MATRIX[...]``; ``F_CHAN`` is a 0-based index (TLMIN is
  ignored, as in Gammapy); ``DETCHANS`` gives the number of reconstructed bins.

Writing follows ``OGIPDatasetWriter``: ``<name>.fits`` (PHA), ``<name>_bkg.fits``, ``<name>_arf.fits``,
``<name>_rmf.fits``, energies in TeV, through :func:`jaxgamma.io._atomic.atomic_paths` (all files or
none). Where Gammapy would lose precision the writer keeps it: non-integer counts are written as
floats, a response matrix that float32 cannot hold exactly is written as float64, and the effective
area is chosen so that ``SPECRESP x EXPOSURE`` gives back the dataset's exposure bit for bit whenever
such a float exists.

All energies returned are float64 TeV, areas cm2, times s. Bad input raises ``ValueError`` naming the
file and the HDU, column or header keyword.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits

from ..data.gti import _gti_hdu, _read_gti
from ._atomic import atomic_paths

log = logging.getLogger(__name__)

__all__ = [
    "detect_format",
    "ogip_filenames",
    "read_arf",
    "read_gadf_spectrum",
    "read_ogip",
    "read_pha",
    "read_rmf",
    "write_ogip",
]

ENERGY = "TeV"
AREA = "cm2"


# -- reading helpers -------------------------------------------------------------------------------
def _path(path: Any) -> Path:
    return Path(os.path.expandvars(os.fspath(path)))


@contextlib.contextmanager
def _open(path: Path, what: str) -> Iterator[fits.HDUList]:
    """Open a FITS file, turning every failure into a ValueError that names the file."""
    if not path.exists():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} file {str(path)!r} is a folder, not a FITS file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns on truncated or odd files before raising
            hdulist = fits.open(path, memmap=False)
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"{what} file {str(path)!r} is not a readable FITS file: {err}") from None
    try:
        yield hdulist
    finally:
        hdulist.close()


def _hdu(hdulist: fits.HDUList, name: str, path: Path) -> fits.BinTableHDU:
    if name not in hdulist:
        present = [h.name for h in hdulist]
        raise ValueError(f"{str(path)!r}: HDU {name!r} is missing (HDUs present: {present})")
    hdu = hdulist[name]
    if not isinstance(hdu, fits.BinTableHDU):
        raise ValueError(f"{str(path)!r}: HDU {name!r} is not a binary table")
    return hdu


def _column(hdu: fits.BinTableHDU, name: str, path: Path, header_fallback: bool = False) -> np.ndarray:
    """A table column as a native-endian array; OGIP allows a constant column to be given as a header
    keyword instead, which ``header_fallback`` accepts."""
    names = [c.name.upper() for c in hdu.columns]
    if name.upper() in names:
        try:
            data = np.asarray(hdu.data[name])
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{str(path)!r}: HDU {hdu.name!r}: cannot read column {name!r}: {err}") from None
        return data.astype(data.dtype.newbyteorder("=")) if data.dtype.byteorder not in ("=", "|") else data
    if header_fallback and name in hdu.header:
        return np.full(len(hdu.data) if hdu.data is not None else 0, hdu.header[name])
    raise ValueError(f"{str(path)!r}: HDU {hdu.name!r} has no column {name!r} (columns: {names})")


def _unit(hdu: fits.BinTableHDU, name: str, path: Path, default: str | None = None) -> u.UnitBase:
    col = hdu.columns[name]
    unit = col.unit or default
    if not unit:
        raise ValueError(f"{str(path)!r}: HDU {hdu.name!r}: column {name!r} has no unit (TUNIT)")
    try:
        return u.Unit(unit, format="fits") if unit != "" else u.dimensionless_unscaled
    except ValueError:
        try:
            return u.Unit(unit)
        except ValueError as err:
            raise ValueError(f"{str(path)!r}: HDU {hdu.name!r}: column {name!r}: bad unit {unit!r}") from err


def _quantity(hdu: fits.BinTableHDU, name: str, path: Path, unit: str) -> u.Quantity:
    """A column as a float64 Quantity in its file unit, checked to convert to ``unit``."""
    data = _column(hdu, name, path).astype(np.float64)
    col_unit = _unit(hdu, name, path)
    if not col_unit.is_equivalent(unit):
        raise ValueError(
            f"{str(path)!r}: HDU {hdu.name!r}: column {name!r} is in {col_unit}, not convertible to {unit}"
        )
    return u.Quantity(data, col_unit)


def _values(quantity: u.Quantity, unit: str) -> np.ndarray:
    return np.asarray(quantity.to_value(unit), dtype=np.float64)


def _keyword(header: fits.Header, key: str, path: Path, hdu: str) -> Any:
    if key not in header:
        raise ValueError(f"{str(path)!r}: HDU {hdu!r}: header keyword {key!r} is missing")
    return header[key]


def _edges(lo: u.Quantity, hi: u.Quantity, path: Path, hdu: str) -> u.Quantity:
    """As Gammapy: edges = E_MIN followed by the last E_MAX, in the file unit."""
    if lo.size == 0:
        raise ValueError(f"{str(path)!r}: HDU {hdu!r} has no rows")
    edges = u.Quantity(np.append(lo.value, hi.to_value(lo.unit)[-1]), lo.unit)
    v = edges.value
    if not np.all(np.isfinite(v)) or np.any(np.diff(v) <= 0) or v[0] <= 0:
        raise ValueError(f"{str(path)!r}: HDU {hdu!r}: energy bounds are not positive and increasing")
    return edges


def _is_set(value: Any) -> bool:
    return value is not None and str(value).strip().lower() not in ("", "none")


def _resolve(name: str, pha_path: Path) -> Path:
    """A file named in the PHA header: relative to the PHA's folder (Gammapy looks in the current
    folder first; here the current folder is only a fallback)."""
    path = _path(name)
    if path.is_absolute():
        return path
    beside = pha_path.parent / path
    if beside.exists() or not path.exists():
        return beside
    return path


# -- readers ---------------------------------------------------------------------------------------
def region_hdu(geom: Any, name: str) -> fits.BinTableHDU:
    """The ON region of a spectrum as Gammapy writes it (``<MAP>_REGION`` of its dataset files,
    ``REGION`` of an OGIP PHA file): one
    row per circle (SHAPE, X, Y, R in pixels of the region's WCS, ROTANG) with that WCS in the
    header; other shapes (rectangles, annuli, ellipses) in the ``regions`` package's FITS region
    table, as Gammapy writes them."""
    from astropy.table import Table

    from ..geom.region import _is_circle, _regions_module, circles_to_pixel

    if all(_is_circle(r) for r in geom.regions):
        x, y, r = circles_to_pixel(geom.regions, geom.wcs)
        table = Table()
        table["SHAPE"] = np.array(["circle"] * x.size)
        table["X"] = u.Quantity(x, "pix")
        table["Y"] = u.Quantity(y, "pix")
        table["R"] = u.Quantity(r, "pix")
        table["ROTANG"] = u.Quantity(np.zeros(x.size), "deg")
    else:
        regions = _regions_module()
        table = regions.Regions([r.to_pixel(geom.wcs) for r in geom.regions]).serialize(format="fits")
    hdu = fits.BinTableHDU(table, name=name)
    hdu.header.update(geom.wcs.to_header())
    shape = getattr(geom.wcs, "array_shape", None)
    if shape is not None:
        hdu.header["WCSSHAPE"] = f"({shape[1]},{shape[0]})"
    return hdu


def read_region_hdu(hdulist: fits.HDUList, name: str) -> Any:
    """The RegionGeom of a ``<MAP>_REGION`` table written by Gammapy or :func:`region_hdu`, or None
    (no such HDU, or shapes a RegionGeom does not hold)."""
    from astropy.table import QTable
    from astropy.wcs import WCS, FITSFixedWarning

    from ..geom.region import _GEOM_SHAPES, RegionGeom, _regions_module, pixel_circles_to_sky

    if name not in hdulist:
        return None
    hdu = hdulist[name]
    shapes = [str(s).strip().lower() for s in hdu.data["SHAPE"]]
    if not shapes:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdu.header)
    if all(s == "circle" for s in shapes):
        circles = pixel_circles_to_sky(hdu.data["X"], hdu.data["Y"], hdu.data["R"], wcs)
        return RegionGeom(circles, wcs=wcs)
    try:
        sky = [r.to_sky(wcs) for r in _regions_module().Regions.parse(QTable.read(hdu), format="fits")]
    except Exception as err:  # a table the regions package cannot read: the region is not kept
        log.debug(f"HDU {name!r}: region shapes {shapes} could not be read ({err}); the region is not kept")
        return None
    if any(type(r).__name__ not in _GEOM_SHAPES for r in sky):
        log.debug(f"HDU {name!r}: region shapes {shapes} are not supported; the region is not kept")
        return None
    return RegionGeom(sky, wcs=wcs)


def read_pha(path: Any, what: str = "PHA") -> dict[str, Any]:
    """Read a PHA (or BKG) file: counts, acceptance (BACKSCAL), mask_safe, energy edges, header, GTI."""
    path = _path(path)
    with _open(path, what) as hdulist:
        spectrum = _hdu(hdulist, "SPECTRUM", path)
        counts = _column(spectrum, "COUNTS", path).astype(np.float64)
        backscal = _column(spectrum, "BACKSCAL", path, header_fallback=True).astype(np.float64)
        quality = _column(spectrum, "QUALITY", path, header_fallback=True)
        ebounds = _hdu(hdulist, "EBOUNDS", path)
        edges = _edges(
            _quantity(ebounds, "E_MIN", path, ENERGY),
            _quantity(ebounds, "E_MAX", path, ENERGY),
            path,
            "EBOUNDS",
        )
        if counts.ndim != 1 or counts.size != edges.size - 1:
            raise ValueError(
                f"{str(path)!r}: HDU 'SPECTRUM' has {counts.size} channels but 'EBOUNDS' {edges.size - 1}"
            )
        gti = _read_gti(hdulist["GTI"], path) if "GTI" in hdulist else None
        header = dict(spectrum.header)
        region = read_region_hdu(hdulist, "REGION")
    return {
        "counts": counts,
        "acceptance": backscal,
        "mask_safe": ~quality.astype(bool),
        "energy_edges": edges,  # Quantity in the file unit
        "header": header,
        "gti": gti,
        "region": region,
    }


def read_arf(path: Any) -> dict[str, np.ndarray]:
    """Read an ARF: true energy edges [TeV] and effective area [cm2]."""
    path = _path(path)
    with _open(path, "ARF") as hdulist:
        hdu = _hdu(hdulist, "SPECRESP", path)
        lo = _quantity(hdu, "ENERG_LO", path, ENERGY)
        hi = _quantity(hdu, "ENERG_HI", path, ENERGY)
        aeff = _values(_quantity(hdu, "SPECRESP", path, AREA), AREA)
    edges = _values(_edges(lo, hi, path, "SPECRESP"), ENERGY)
    return {"energy_true_edges": edges, "aeff": aeff}


def read_rmf(path: Any) -> dict[str, np.ndarray]:
    """Read an RMF: the matrix ``K[E_true, E_reco]`` (float64) and both energy edges [TeV]."""
    path = _path(path)
    with _open(path, "RMF") as hdulist:
        hdu = _hdu(hdulist, "MATRIX", path)
        detchans = int(_keyword(hdu.header, "DETCHANS", path, "MATRIX"))
        n_grp = _column(hdu, "N_GRP", path)
        f_chan = _column(hdu, "F_CHAN", path)
        n_chan = _column(hdu, "N_CHAN", path)
        values = _column(hdu, "MATRIX", path)
        lo = _quantity(hdu, "ENERG_LO", path, ENERGY)
        hi = _quantity(hdu, "ENERG_HI", path, ENERGY)
        ebounds = _hdu(hdulist, "EBOUNDS", path)
        edges = _edges(
            _quantity(ebounds, "E_MIN", path, ENERGY),
            _quantity(ebounds, "E_MAX", path, ENERGY),
            path,
            "EBOUNDS",
        )
        matrix = np.zeros((len(n_grp), detchans), dtype=np.float64)
        for i in range(len(n_grp)):
            starts = np.atleast_1d(f_chan[i]).astype(np.int64)
            widths = np.atleast_1d(n_chan[i]).astype(np.int64)
            row = np.atleast_1d(values[i]).astype(np.float64)
            m_start = 0
            for k in range(int(n_grp[i])):
                if k >= starts.size or k >= widths.size:
                    raise ValueError(
                        f"{str(path)!r}: HDU 'MATRIX' row {i}: N_GRP={int(n_grp[i])} but F_CHAN/N_CHAN "
                        f"have {min(starts.size, widths.size)} entries"
                    )
                chan_min, width = int(starts[k]), int(widths[k])
                if chan_min < 0 or chan_min + width > detchans or m_start + width > row.size:
                    raise ValueError(
                        f"{str(path)!r}: HDU 'MATRIX' row {i} group {k}: channels {chan_min}..{chan_min + width} "
                        f"outside DETCHANS={detchans} or MATRIX entries ({row.size})"
                    )
                matrix[i, chan_min : chan_min + width] = row[m_start : m_start + width]
                m_start += width
    if edges.size - 1 != detchans:
        raise ValueError(f"{str(path)!r}: DETCHANS={detchans} but 'EBOUNDS' has {edges.size - 1} bins")
    return {
        "matrix": matrix,
        "energy_true_edges": _values(_edges(lo, hi, path, "MATRIX"), ENERGY),
        "energy_edges": _values(edges, ENERGY),
    }


def read_ogip(path: Any, name: str | None = None) -> dict[str, Any]:
    """Read an OGIP PHA file and the BKG, ARF and RMF files its header names.

    Returns the keyword arguments of :class:`jaxgamma.datasets.SpectrumDatasetOnOff`: ``name``,
    ``counts``, ``counts_off``, ``acceptance``, ``acceptance_off``, ``exposure`` [cm2 s],
    ``edisp``, ``energy_edges`` and ``energy_true_edges`` [TeV] (and ``energy_edges_native``,
    ``energy_unit``: the reco edges as in the file), ``livetime`` [s], ``mask_safe``,
    ``gti`` (dict or None) and ``meta`` (selected PHA header keywords).
    """
    path = _path(path)
    pha = read_pha(path, "PHA")
    header = pha["header"]
    if name is None:
        if "OBS_ID" not in header:
            raise ValueError(
                f"{str(path)!r}: HDU 'SPECTRUM': header keyword 'OBS_ID' is missing (pass name=...)"
            )
        name = str(header["OBS_ID"])
    livetime = float(_keyword(header, "EXPOSURE", path, "SPECTRUM"))
    if not _is_set(header.get("ANCRFILE")):
        raise ValueError(f"{str(path)!r}: HDU 'SPECTRUM': header keyword 'ANCRFILE' is missing or empty")

    arf_path = _resolve(str(header["ANCRFILE"]), path)
    arf = read_arf(arf_path)
    energy_true_edges = arf["energy_true_edges"]
    out: dict[str, Any] = {
        "name": name,
        "counts": pha["counts"],
        "acceptance": pha["acceptance"],
        "mask_safe": pha["mask_safe"],
        "energy_edges": _values(pha["energy_edges"], ENERGY),
        "energy_edges_native": pha["energy_edges"].value,
        "energy_unit": pha["energy_edges"].unit.to_string(),
        "energy_true_edges": energy_true_edges,
        "exposure": arf["aeff"] * livetime,
        "livetime": livetime,
        "gti": pha["gti"],
        "geom": pha["region"],
        "counts_off": None,
        "acceptance_off": None,
        "edisp": None,
        "meta": {k: header[k] for k in _META_KEYS if k in header},
    }

    if _is_set(header.get("BACKFILE")):
        bkg_path = _resolve(str(header["BACKFILE"]), path)
        bkg = read_pha(bkg_path, "BKG")
        if bkg["counts"].shape != pha["counts"].shape:
            raise ValueError(
                f"{str(bkg_path)!r}: HDU 'SPECTRUM' has {bkg['counts'].size} channels, the PHA file "
                f"{str(path)!r} has {pha['counts'].size}"
            )
        out["counts_off"] = bkg["counts"]
        out["acceptance_off"] = bkg["acceptance"]

    if _is_set(header.get("RESPFILE")):
        rmf_path = _resolve(str(header["RESPFILE"]), path)
        rmf = read_rmf(rmf_path)
        expected = (energy_true_edges.size - 1, pha["counts"].size)
        if rmf["matrix"].shape != expected:
            raise ValueError(
                f"{str(rmf_path)!r}: HDU 'MATRIX' has shape {rmf['matrix'].shape} (true x reco), the ARF "
                f"{str(arf_path)!r} and PHA {str(path)!r} need {expected}"
            )
        out["edisp"] = rmf["matrix"]
    return out


_META_KEYS = ("OBS_ID", "TELESCOP", "INSTRUME", "LO_THRES", "HI_THRES")


# -- Gammapy's own (GADF region map) serialisation of a spectrum dataset ---------------------------------
def detect_format(path: Any) -> str:
    """``"ogip"`` (a ``SPECTRUM`` HDU of class OGIP) or ``"gadf"`` (a ``COUNTS_BANDS`` HDU), as
    Gammapy's ``SpectrumDatasetOnOff.read`` decides."""
    path = _path(path)
    with _open(path, "spectrum dataset") as hdulist:
        if "SPECTRUM" in hdulist and "OGIP" in str(hdulist["SPECTRUM"].header.get("HDUCLASS", "")):
            return "ogip"
        if "COUNTS_BANDS" in hdulist:
            return "gadf"
    raise ValueError(
        f"{str(path)!r}: neither an OGIP PHA file (HDU 'SPECTRUM') nor a Gammapy dataset file "
        "(HDU 'COUNTS_BANDS')"
    )


def _region_map(hdulist: fits.HDUList, name: str, path: Path, unit: str | None = "") -> np.ndarray | None:
    """The ``DATA`` column of a region-map HDU (rows along the first numpy axis), or None if absent."""
    if name not in hdulist:
        return None
    hdu = _hdu(hdulist, name, path)
    data = _column(hdu, "DATA", path)
    if data.dtype == bool or unit is None:
        return data
    unit_str = hdu.columns["DATA"].unit
    col_unit = u.Unit(unit_str) if unit_str else u.dimensionless_unscaled
    try:
        return np.asarray(u.Quantity(data.astype(np.float64), col_unit).to_value(unit), dtype=np.float64)
    except u.UnitConversionError:
        raise ValueError(
            f"{str(path)!r}: HDU {name!r}: column 'DATA' is in {col_unit}, not {unit or 'counts'}"
        ) from None


def _band_edges(hdulist: fits.HDUList, name: str, prefix: str, path: Path) -> u.Quantity:
    hdu = _hdu(hdulist, name, path)
    lo = _quantity(hdu, f"{prefix}_MIN", path, ENERGY)
    hi = _quantity(hdu, f"{prefix}_MAX", path, ENERGY)
    return _edges(lo, hi, path, name)


def read_gadf_spectrum(path: Any, name: str | None = None) -> dict[str, Any]:
    """Read a spectrum dataset written by Gammapy in its own format (``dataset.write(...)``, a
    ``MapDataset`` with a region geometry): the keyword arguments of
    :class:`jaxgamma.datasets.SpectrumDatasetOnOff` (``counts_off`` etc. None when absent).

    Gammapy does not store the livetime in this format, so ``livetime`` is None.
    """
    path = _path(path)
    with _open(path, "dataset") as hdulist:
        if name is None:
            name = str(hdulist[0].header.get("NAME", path.stem))
        reco = _band_edges(hdulist, "COUNTS_BANDS", "E", path)
        n_reco = reco.size - 1
        if "EXPOSURE_BANDS" in hdulist:
            true = _values(_band_edges(hdulist, "EXPOSURE_BANDS", "ENERGY_TRUE", path), ENERGY)
        else:
            true = None
        out: dict[str, Any] = {
            "name": name,
            "energy_edges": _values(reco, ENERGY),
            "energy_edges_native": reco.value,
            "energy_unit": reco.unit.to_string(),
            "energy_true_edges": true,
            "counts": _region_map(hdulist, "COUNTS", path),
            "counts_off": _region_map(hdulist, "COUNTS_OFF", path),
            "acceptance": _region_map(hdulist, "ACCEPTANCE", path),
            "acceptance_off": _region_map(hdulist, "ACCEPTANCE_OFF", path),
            "exposure": _region_map(hdulist, "EXPOSURE", path, AREA + " s"),
            "livetime": None,
            "meta": {},
        }
        for key in ("counts", "counts_off", "acceptance", "acceptance_off", "exposure"):
            if out[key] is not None:
                out[key] = out[key].reshape(-1)
        for key in ("MASK_SAFE", "MASK_FIT"):
            mask = _region_map(hdulist, key, path, unit=None)
            out[key.lower()] = None if mask is None else np.asarray(mask, dtype=bool).reshape(n_reco)
        edisp = _region_map(hdulist, "EDISP", path)
        if edisp is not None:
            if true is None:
                raise ValueError(
                    f"{str(path)!r}: HDU 'EDISP' needs the true energies of HDU 'EXPOSURE_BANDS'"
                )
            axes = str(hdulist["EDISP"].header.get("AXCOLS1", ""))
            if not axes.startswith("E_MIN"):
                raise ValueError(
                    f"{str(path)!r}: HDU 'EDISP' is not an energy dispersion kernel (AXCOLS1={axes!r})"
                )
            edisp = edisp.reshape(true.size - 1, n_reco)
        out["edisp"] = edisp
        edisp_exposure = _region_map(hdulist, "EDISP_EXPOSURE", path, AREA + " s") if edisp is not None else None
        out["edisp_exposure"] = None if edisp_exposure is None else edisp_exposure.reshape(-1)
        out["gti"] = _read_gti(hdulist["GTI"], path) if "GTI" in hdulist else None
        out["geom"] = read_region_hdu(hdulist, "COUNTS_REGION")
    return out


# -- writing ---------------------------------------------------------------------------------------
def ogip_filenames(path: Any) -> dict[str, str]:
    """Gammapy's companion names: ``x.fits`` -> ``x_bkg.fits``, ``x_arf.fits``, ``x_rmf.fits``."""
    path = _path(path)
    suffix = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    return {
        "respfile": f"{stem}_rmf{suffix}",
        "backfile": f"{stem}_bkg{suffix}",
        "ancrfile": f"{stem}_arf{suffix}",
    }


def _ebounds_hdu(edges: np.ndarray, unit: str = ENERGY) -> fits.BinTableHDU:
    n = edges.size - 1
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("CHANNEL", "I", array=np.arange(n, dtype=np.int16)),
            fits.Column("E_MIN", "D", unit=unit, array=edges[:-1]),
            fits.Column("E_MAX", "D", unit=unit, array=edges[1:]),
        ],
        name="EBOUNDS",
    )
    h = hdu.header
    h["TELESCOP"] = ("DUMMY", "Mission/satellite name")
    h["INSTRUME"] = ("DUMMY", "Instrument/detector")
    h["FILTER"] = ("None", "Filter information")
    h["CHANTYPE"] = ("PHA", "Type of channels (PHA, PI etc)")
    h["DETCHANS"] = (n, "Total number of detector PHA channels")
    h["HDUCLASS"] = ("OGIP", "Organisation devising file format")
    h["HDUCLAS1"] = ("RESPONSE", "File relates to response of instrument")
    h["HDUCLAS2"] = ("EBOUNDS", "This is an EBOUNDS extension")
    h["HDUVERS"] = ("1.2.0", "Version of file format")
    return hdu


def _counts_column(counts: np.ndarray) -> fits.Column:
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64))
    if np.all(counts == np.round(counts)) and np.all(np.abs(counts) < 2**31):
        return fits.Column("COUNTS", "J", array=counts.astype(np.int32))
    # Gammapy truncates to int32; a float column keeps e.g. Asimov counts exactly
    return fits.Column("COUNTS", "D", array=counts)


def _spectrum_hdulist(
    counts: np.ndarray,
    acceptance: np.ndarray,
    mask_safe: np.ndarray | None,
    edges: tuple[np.ndarray, str],
    meta: dict[str, Any],
    is_bkg: bool,
) -> fits.HDUList:
    n = edges[0].size - 1
    mask = np.ones(n, dtype=bool) if mask_safe is None else np.asarray(mask_safe, dtype=bool)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("CHANNEL", "I", array=np.arange(n, dtype=np.int16)),
            _counts_column(counts),
            fits.Column("QUALITY", "I", array=(~mask).astype(np.int16)),
            fits.Column("BACKSCAL", "D", array=np.nan_to_num(np.asarray(acceptance, dtype=np.float64))),
        ],
        name="SPECTRUM",
    )
    h = table.header
    for key, value in (
        ("TELESCOP", "unknown"),
        ("INSTRUME", "unknown"),
        ("FILTER", "None"),
        ("EXPOSURE", meta["EXPOSURE"]),
        ("CORRFILE", ""),
        ("CORRSCAL", ""),
        ("ANCRFILE", meta["ANCRFILE"]),
        ("HDUCLASS", "OGIP"),
        ("HDUCLAS1", "SPECTRUM"),
        ("HDUVERS", "1.2.1"),
        ("POISSERR", True),
        ("CHANTYPE", "PHA"),
        ("DETCHANS", n),
        ("GROUPING", 0),
        ("AREASCAL", 1),
        ("HDUCLAS2", "BKG" if is_bkg else "TOTAL"),
        ("HDUCLAS3", "COUNT"),
        ("HDUCLAS4", "TYPE:1"),
        ("OBS_ID", meta["OBS_ID"]),
    ):
        h[key] = value
    for key in ("BACKFILE", "RESPFILE"):
        if key in meta:
            h[key] = meta[key]
    for key in ("LO_THRES", "HI_THRES"):
        if key in meta:
            h[key] = meta[key]
    return fits.HDUList([fits.PrimaryHDU(), table, _ebounds_hdu(*edges)])


def _aeff_for_exposure(exposure: np.ndarray, livetime: float) -> np.ndarray:
    """``exposure / livetime``, nudged by an ulp or two where that makes ``aeff * livetime`` give back
    ``exposure`` exactly (so that write -> read is lossless)."""
    aeff = exposure / livetime
    best = aeff.copy()
    ok = aeff * livetime == exposure
    for steps in (1, -1, 2, -2):
        direction = np.inf if steps > 0 else -np.inf
        cand = aeff
        for _ in range(abs(steps)):
            cand = np.nextafter(cand, direction)
        hit = ~ok & (cand * livetime == exposure)
        best = np.where(hit, cand, best)
        ok |= hit
    return best


def _arf_hdulist(energy_true_edges: np.ndarray, aeff: np.ndarray) -> fits.HDUList:
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "D", unit=ENERGY, array=energy_true_edges[:-1]),
            fits.Column("ENERG_HI", "D", unit=ENERGY, array=energy_true_edges[1:]),
            fits.Column("SPECRESP", "D", unit=AREA, array=aeff),
        ],
        name="SPECRESP",
    )
    for key, value in (
        ("TELESCOP", "unknown"),
        ("INSTRUME", "unknown"),
        ("FILTER", "None"),
        ("HDUCLASS", "OGIP"),
        ("HDUCLAS1", "RESPONSE"),
        ("HDUCLAS2", "SPECRESP"),
        ("HDUVERS", "1.1.0"),
    ):
        hdu.header[key] = value
    return fits.HDUList([fits.PrimaryHDU(), hdu])


def _rmf_hdulist(
    matrix: np.ndarray, energy_true_edges: np.ndarray, energy_edges: tuple[np.ndarray, str]
) -> fits.HDUList:
    n_rows, n_chan_total = matrix.shape
    n_grp = np.zeros(n_rows, dtype=np.int16)
    f_chan = np.empty(n_rows, dtype=object)
    n_chan = np.empty(n_rows, dtype=object)
    values = np.empty(n_rows, dtype=object)
    exact32 = np.array_equal(matrix.astype(np.float32).astype(np.float64), matrix)
    value_dtype = np.float32 if exact32 else np.float64
    for i, row in enumerate(matrix):
        # groups of consecutive non-zero channels, as Gammapy's EDispKernel.to_table
        pos = np.nonzero(row)[0]
        groups = np.split(pos, np.nonzero(np.diff(pos) != 1)[0] + 1)
        n_grp[i] = len(groups)
        f_chan[i] = np.array([g[0] if g.size else 0 for g in groups], dtype=np.int16)
        n_chan[i] = np.array([g.size for g in groups], dtype=np.int16)
        values[i] = row[pos].astype(value_dtype)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERG_LO", "D", unit=ENERGY, array=energy_true_edges[:-1]),
            fits.Column("ENERG_HI", "D", unit=ENERGY, array=energy_true_edges[1:]),
            fits.Column("N_GRP", "I", array=n_grp),
            fits.Column("F_CHAN", "PI()", array=f_chan),
            fits.Column("N_CHAN", "PI()", array=n_chan),
            fits.Column("MATRIX", "PE()" if exact32 else "PD()", array=values),
        ],
        name="MATRIX",
    )
    h = hdu.header
    for key, value in (
        ("CHANTYPE", "PHA"),
        ("HDUCLASS", "OGIP"),
        ("HDUCLAS1", "RESPONSE"),
        ("HDUCLAS2", "RSP_MATRIX"),
        ("DETCHANS", n_chan_total),
        ("NUMGRP", int(n_grp.sum())),
        ("NUMELT", int(sum(int(np.sum(c)) for c in n_chan))),
        ("TLMIN4", 0),
    ):
        h[key] = value
    return fits.HDUList([fits.PrimaryHDU(), hdu, _ebounds_hdu(*energy_edges)])


def write_ogip(dataset: Any, path: Any, overwrite: bool = False) -> list[Path]:
    """Write a spectrum dataset as OGIP files, with Gammapy's names and layout.

    ``dataset`` needs ``name``, ``counts``, ``acceptance``, ``mask_safe``, ``exposure`` [cm2 s],
    ``livetime`` [s], ``energy_edges``, ``energy_true_edges`` [TeV], and optionally ``counts_off``,
    ``acceptance_off``, ``edisp`` and ``gti``. Either all files are written or none (see
    :func:`~jaxgamma.io._atomic.atomic_paths`).

    Returns the paths written (PHA first).

    Raises
    ------
    FileExistsError
        If a target exists and ``overwrite`` is False (nothing is written).
    ValueError
        If the dataset has no livetime or no counts.
    """
    path = _path(path)
    name = dataset.name
    if dataset.livetime is None or not np.isfinite(dataset.livetime) or dataset.livetime <= 0:
        raise ValueError(f"dataset {name!r}: writing OGIP needs a positive livetime, got {dataset.livetime}")
    if dataset.counts is None:
        raise ValueError(f"dataset {name!r}: writing OGIP needs counts")
    names = ogip_filenames(path)
    counts_off = getattr(dataset, "counts_off", None)
    acceptance = getattr(dataset, "acceptance", None)
    if acceptance is None:
        acceptance = np.ones_like(dataset.counts)
    edisp = dataset.edisp
    meta: dict[str, Any] = {
        "EXPOSURE": float(dataset.livetime),
        "OBS_ID": name,
        "ANCRFILE": names["ancrfile"],
    }
    if counts_off is not None:
        meta["BACKFILE"] = names["backfile"]
    if edisp is not None:
        meta["RESPFILE"] = names["respfile"]
    extra = dict(getattr(dataset, "meta", {}) or {})
    for key in ("LO_THRES", "HI_THRES"):
        if key in extra:
            meta[key] = extra[key]

    # reconstructed edges in the unit they were read in (as Gammapy writes its axis), so that a read
    # after the write gives the same edges and the same energy_mask
    native = getattr(dataset, "energy_edges_native", None)
    if native is not None:
        edges = (np.asarray(native, dtype=np.float64), str(dataset.energy_unit))
    else:
        edges = (np.asarray(dataset.energy_edges, dtype=np.float64), ENERGY)
    pha = _spectrum_hdulist(dataset.counts, acceptance, dataset.mask_safe, edges, meta, False)
    if getattr(dataset, "geom", None) is not None:
        pha.append(region_hdu(dataset.geom, "REGION"))  # the ON region, as Gammapy's PHA file
    if getattr(dataset, "gti", None) is not None:
        pha.append(_gti_hdu(dataset.gti))
    outputs: list[tuple[Path, fits.HDUList]] = [(path, pha)]
    aeff = _aeff_for_exposure(np.asarray(dataset.exposure, dtype=np.float64), float(dataset.livetime))
    outputs.append((path.parent / names["ancrfile"], _arf_hdulist(dataset.energy_true_edges, aeff)))
    if counts_off is not None:
        acceptance_off = dataset.acceptance_off
        bkg = _spectrum_hdulist(counts_off, acceptance_off, dataset.mask_safe, edges, meta, True)
        outputs.append((path.parent / names["backfile"], bkg))
    if edisp is not None:
        rmf = _rmf_hdulist(np.asarray(edisp, dtype=np.float64), dataset.energy_true_edges, edges)
        outputs.append((path.parent / names["respfile"], rmf))

    targets = [p for p, _ in outputs]
    with atomic_paths(*targets, overwrite=overwrite) as temporaries:
        for tmp, (_, hdulist) in zip(temporaries, outputs, strict=True):
            hdulist.writeto(tmp, overwrite=True)
    return targets
