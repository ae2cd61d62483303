"""Good time intervals (``GTI``), as Gammapy 2.1's ``gammapy.data.GTI``, and the FITS helpers the
DL3 readers of :mod:`jaxgamma.data` share.

A :class:`GTI` holds float64 numpy ``start`` / ``stop`` times in seconds since the reference MJD
``mjdrefi + mjdreff`` (time system ``timesys``), the GADF layout of a ``GTI`` HDU. Absolute times
(``time_start``, ``time_stop``, ``time_ref``) are astropy ``Time`` objects built as Gammapy builds
them (``time_ref + Quantity(start, "s")``), so they compare equal to Gammapy's.

It is an ``equinox.Module`` (immutable, a pytree with static reference fields) because datasets
hold it as a field; every method returns a new GTI.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import astropy.units as u
import equinox as eqx
import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from ..irf._irf_base import make_path

__all__ = ["GTI"]

#: Gammapy's default GTI reference time (``TIME_REF_DEFAULT``): 2000-01-01T00:00:00 TT = MJD 51544.
TIME_REF_DEFAULT_MJD = (51544.0, 0.0)


# -- FITS helpers shared by the DL3 readers --------------------------------------------------------
def _where(where: Any) -> str:
    return str(where) if where is not None else "<HDU>"


_STRUCTURAL = {
    "XTENSION",
    "BITPIX",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "PCOUNT",
    "GCOUNT",
    "TFIELDS",
    "THEAP",
    "EXTEND",
}
_COLUMN_KEYWORD = re.compile(
    r"^(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TDIM|TBCOL|TCTYP|TCUNI|TCRPX|TCRVL|TCDLT|TCROT|TRPOS|"
    r"TLMIN|TLMAX|TDMIN|TDMAX)\d+$"
)


def _header_meta(header: Any) -> dict[str, Any]:
    """A table header as a dict without the structural and column keywords (as astropy's
    ``Table.read`` meta), nor COMMENT / HISTORY cards."""
    return {
        key: header[key]
        for key in header
        if key not in ("COMMENT", "HISTORY", "") and key not in _STRUCTURAL and not _COLUMN_KEYWORD.match(key)
    }


def _frozen(array: Any, dtype: Any = np.float64) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def _parse_unit(unit: Any, what: str) -> u.UnitBase:
    """A FITS unit string (``TUNIT``/``TIMEUNIT``), parsed as FITS first and then as generic astropy
    units, without astropy's ``UnitsWarning`` for non-FITS strings such as ``1/s/MeV/sr``."""
    if isinstance(unit, u.UnitBase):
        return unit
    text = str(unit).strip()
    if text == "":
        return u.dimensionless_unscaled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        for fmt in ("fits", None):
            try:
                return u.Unit(text, format=fmt, parse_strict="raise")
            except ValueError:
                continue
    raise ValueError(f"{what}: unit {text!r} is not understood")


def _native(array: np.ndarray) -> np.ndarray:
    """A native-byte-order copy of a FITS column (FITS stores big-endian)."""
    array = np.asarray(array)
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    return np.array(array, copy=True)


def _table_hdu(hdu: Any, where: Any, name: str) -> fits.BinTableHDU:
    if not isinstance(hdu, fits.BinTableHDU):
        raise ValueError(f"{_where(where)}: HDU {name!r} is not a binary table (got {type(hdu).__name__})")
    return hdu


def _column_names(hdu: fits.BinTableHDU) -> list[str]:
    return [c.name for c in hdu.columns]


def _find_column(hdu: fits.BinTableHDU, name: str, where: Any) -> str:
    """The column's name as spelt in the file (FITS column names are case-insensitive)."""
    for col in hdu.columns:
        if col.name.upper() == name.upper():
            return col.name
    raise ValueError(
        f"{_where(where)}: HDU {hdu.name!r} has no column {name!r} (columns: {_column_names(hdu)})"
    )


def _column_float64(
    hdu: fits.BinTableHDU, name: str, where: Any, unit: str | None = None, default_unit: str | None = None
) -> np.ndarray:
    """A numeric column as float64 numpy; with ``unit``, converted from the column's ``TUNIT`` (or
    ``default_unit`` when it has none, else taken as already in ``unit``)."""
    col_name = _find_column(hdu, name, where)
    what = f"{_where(where)}: HDU {hdu.name!r}: column {col_name!r}"
    try:
        data = np.asarray(hdu.data[col_name], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: not a numeric column ({err})") from None
    if unit is None:
        return data
    col_unit = hdu.columns[col_name].unit or default_unit or unit
    parsed = _parse_unit(col_unit, what)
    if parsed == u.Unit(unit):
        return data
    try:
        scale = parsed.to(unit)
    except u.UnitConversionError:
        raise ValueError(f"{what}: unit {col_unit!r} is not convertible to {unit!r}") from None
    return data * scale


def _mjdref(header: Any, where: Any, hdu_name: str) -> tuple[float, float]:
    """``(MJDREFI, MJDREFF)`` of a header (or a split ``MJDREF``)."""
    if "MJDREFI" in header and "MJDREFF" in header:
        try:
            return float(header["MJDREFI"]), float(header["MJDREFF"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{_where(where)}: HDU {hdu_name!r}: header keywords 'MJDREFI'/'MJDREFF' are not numbers"
            ) from None
    if "MJDREF" in header:
        mjdref = float(header["MJDREF"])
        i = float(np.floor(mjdref))
        return i, mjdref - i
    raise ValueError(f"{_where(where)}: HDU {hdu_name!r}: header keywords 'MJDREFI'/'MJDREFF' are missing")


def _timesys(header: Any) -> str:
    return str(header.get("TIMESYS", "tt")).strip().lower()


def _time_ref(mjdrefi: float, mjdreff: float, timesys: str) -> Time:
    """Gammapy's ``time_ref_from_dict``: ``Time(MJDREFI, MJDREFF, format="mjd", scale=TIMESYS)``."""
    try:
        return Time(mjdrefi, mjdreff, format="mjd", scale=timesys)
    except ValueError:
        raise ValueError(f"time system (TIMESYS) {timesys!r} is not an astropy time scale") from None


def _split_mjd(time: Time) -> tuple[float, float]:
    """``(MJDREFI, MJDREFF)`` of an astropy Time, keeping its two-double precision."""
    jd1, jd2 = float(time.jd1) - 2400000.5, float(time.jd2)
    i = np.floor(jd1) + np.floor(jd2)
    f = (jd1 - np.floor(jd1)) + (jd2 - np.floor(jd2))
    i, f = i + np.floor(f), f - np.floor(f)
    return float(i), float(f)


def _as_met(times: Any, time_ref: Time, what: str) -> np.ndarray:
    """Times in s since ``time_ref``: astropy ``Time`` objects are converted, ``Quantity`` taken as
    durations since the reference and plain numbers as seconds since it."""
    if isinstance(times, Time):
        return np.asarray((times - time_ref).to_value("s"), dtype=np.float64)
    if isinstance(times, (list, tuple)) and any(isinstance(t, Time) for t in times):
        if not all(isinstance(t, Time) for t in times):
            raise ValueError(f"{what}: mixes astropy Time objects and other values")
        return np.array([float((t - time_ref).to_value("s")) for t in times], dtype=np.float64)
    if isinstance(times, u.Quantity):
        try:
            return np.asarray(times.to_value("s"), dtype=np.float64)
        except u.UnitConversionError:
            raise ValueError(f"{what}: {times.unit} is not a time unit") from None
    try:
        return np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what}: expected astropy Time, a time Quantity or seconds, got {times!r}"
        ) from None


def _time_interval(time_interval: Any, time_ref: Time) -> tuple[float, float]:
    """A ``[start, stop)`` interval (astropy Time pair, Quantity or seconds) in s since ``time_ref``."""
    met = np.atleast_1d(_as_met(time_interval, time_ref, "time_interval"))
    if met.shape != (2,):
        raise ValueError(f"time_interval: expected a start and a stop time, got {time_interval!r}")
    return float(met[0]), float(met[1])


# -- GTI HDU reading and writing -------------------------------------------------------------------
def _read_gti(hdu: Any, path: Any) -> dict[str, Any]:
    """The keyword arguments of :class:`GTI` from a GADF ``GTI`` table HDU (``START``, ``STOP``,
    ``TIMEUNIT`` default s, ``MJDREFI``/``MJDREFF`` or ``MJDREF``, ``TIMESYS`` default TT)."""
    name = getattr(hdu, "name", "GTI") or "GTI"
    hdu = _table_hdu(hdu, path, name)
    header = hdu.header
    what = f"{_where(path)}: HDU {name!r}"
    unit = _parse_unit(header.get("TIMEUNIT", "s"), f"{what}: header keyword 'TIMEUNIT'")
    if not unit.is_equivalent(u.s):
        raise ValueError(f"{what}: header keyword 'TIMEUNIT' = {unit} is not a time unit")
    # Gammapy ignores the columns' own TUNIT and uses TIMEUNIT
    factor = unit.to(u.s)
    start = _column_float64(hdu, "START", path)
    stop = _column_float64(hdu, "STOP", path)
    if factor != 1.0:
        start, stop = start * factor, stop * factor
    mjdrefi, mjdreff = _mjdref(header, path, name)
    return {
        "start": start,
        "stop": stop,
        "mjdrefi": mjdrefi,
        "mjdreff": mjdreff,
        "timesys": _timesys(header),
    }


def _gti_hdu(gti: GTI) -> fits.BinTableHDU:
    """The GADF ``GTI`` table HDU of a GTI (seconds, MJDREFI/MJDREFF, TIMESYS)."""
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", unit="s", array=np.asarray(gti.start, dtype=np.float64)),
            fits.Column("STOP", "D", unit="s", array=np.asarray(gti.stop, dtype=np.float64)),
        ],
        name="GTI",
    )
    hdu.header["MJDREFI"] = int(gti.mjdrefi)
    hdu.header["MJDREFF"] = float(gti.mjdreff)
    hdu.header["TIMESYS"] = gti.timesys
    hdu.header["TIMEUNIT"] = "s"
    return hdu


def _merge_intervals(
    start: np.ndarray, stop: np.ndarray, overlap_ok: bool = True, merge_equal: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals, vectorised: sorted by start, a new group begins where a start lies after
    every earlier stop (``merge_equal`` merges touching intervals, as Gammapy's ``union``)."""
    if start.size == 0:
        return start.copy(), stop.copy()
    order = np.argsort(start, kind="stable")
    start, stop = start[order], stop[order]
    running = np.maximum.accumulate(stop)[:-1]
    new = start[1:] > running if merge_equal else start[1:] >= running
    if not overlap_ok and not np.all(new):
        raise ValueError("GTI.union: overlapping time intervals (overlap_ok=False)")
    first = np.concatenate([[0], np.nonzero(new)[0] + 1])
    last = np.concatenate([first[1:], [start.size]]) - 1
    return start[first], np.maximum.accumulate(stop)[last]


class GTI(eqx.Module):
    """Good time intervals: ``start``, ``stop`` in s since the reference MJD ``mjdrefi + mjdreff``
    (time system ``timesys``), as Gammapy's ``GTI``.

    Parameters
    ----------
    start, stop : array-like
        Interval bounds in s since the reference time.
    mjdrefi, mjdreff : float
        Integer and fractional parts of the reference MJD.
    timesys : str
        Time system (astropy scale name, e.g. ``"tt"``).
    """

    start: np.ndarray
    stop: np.ndarray
    mjdrefi: float = eqx.field(static=True)
    mjdreff: float = eqx.field(static=True)
    timesys: str = eqx.field(static=True)

    def __init__(
        self,
        start: Any,
        stop: Any,
        mjdrefi: float = 51910.0,
        mjdreff: float = 7.428703703703703e-4,
        timesys: str = "tt",
    ):
        self.start = _frozen(np.atleast_1d(start), np.float64)
        self.stop = _frozen(np.atleast_1d(stop), np.float64)
        if self.start.shape != self.stop.shape or self.start.ndim != 1:
            raise ValueError(
                f"GTI: start and stop must be 1D of the same length, got {self.start.shape}, "
                f"{self.stop.shape}"
            )
        self.mjdrefi = float(mjdrefi)
        self.mjdreff = float(mjdreff)
        self.timesys = str(timesys).lower()

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GTI | None:
        return None if data is None else cls(**data)

    @classmethod
    def create(cls, start: Any, stop: Any, reference_time: Any = None) -> GTI:
        """GTI from start and stop times (astropy ``Time``, or durations since ``reference_time``
        as Quantity or seconds), as Gammapy's ``GTI.create``. The default reference time is
        Gammapy's, 2000-01-01T00:00:00 TT."""
        if reference_time is None:
            time_ref = _time_ref(*TIME_REF_DEFAULT_MJD, "tt")
        else:
            time_ref = Time(reference_time)
        mjdrefi, mjdreff = _split_mjd(time_ref)
        ref = _time_ref(mjdrefi, mjdreff, time_ref.scale)
        return cls(
            np.atleast_1d(_as_met(start, ref, "GTI.create start")),
            np.atleast_1d(_as_met(stop, ref, "GTI.create stop")),
            mjdrefi,
            mjdreff,
            time_ref.scale,
        )

    @classmethod
    def from_time_intervals(cls, time_intervals: Iterable[Sequence[Time]], reference_time: Any = None) -> GTI:
        """GTI from a list of ``(start, stop)`` astropy Time pairs."""
        intervals = list(time_intervals)
        return cls.create(
            Time([t[0] for t in intervals]), Time([t[1] for t in intervals]), reference_time=reference_time
        )

    @classmethod
    def from_table_hdu(cls, table_hdu: Any, format: str = "gadf", where: Any = None) -> GTI:
        """GTI from a GADF ``GTI`` table HDU; ``where`` names the source in error messages."""
        if format != "gadf":
            raise ValueError(f'GTI.from_table_hdu: only the "gadf" format is supported, got {format!r}')
        return cls(**_read_gti(table_hdu, where))

    @classmethod
    def read(cls, filename: Any, hdu: str = "GTI", format: str = "gadf") -> GTI:
        """Read the GTI HDU ``hdu`` of a FITS file."""
        path = make_path(filename)
        if not path.is_file():
            raise ValueError(f"GTI file {str(path)!r} does not exist")
        try:
            hdulist = fits.open(path, memmap=False)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"GTI file {str(path)!r} is not a readable FITS file: {err}") from None
        with hdulist:
            if hdu not in hdulist:
                present = [h.name for h in hdulist]
                raise ValueError(f"{str(path)!r}: HDU {hdu!r} is missing (HDUs present: {present})")
            return cls.from_table_hdu(hdulist[hdu], format=format, where=str(path))

    # -- output ----------------------------------------------------------------------------------
    def to_table_hdu(self, format: str = "gadf") -> fits.BinTableHDU:
        """The GADF ``GTI`` table HDU."""
        if format != "gadf":
            raise ValueError(f'GTI.to_table_hdu: only the "gadf" format is supported, got {format!r}')
        return _gti_hdu(self)

    def write(self, filename: Any, overwrite: bool = False) -> None:
        """Write a FITS file with a primary HDU and the ``GTI`` HDU."""
        from ..io._atomic import atomic_paths

        with atomic_paths(filename, overwrite=overwrite) as (tmp,):
            fits.HDUList([fits.PrimaryHDU(), self.to_table_hdu()]).writeto(tmp, overwrite=True)

    # -- times -----------------------------------------------------------------------------------
    @property
    def time_ref(self) -> Time:
        """Reference time (astropy ``Time``, MJD format, scale ``timesys``)."""
        return _time_ref(self.mjdrefi, self.mjdreff, self.timesys)

    @property
    def time_start(self) -> Time:
        """Interval start times (astropy ``Time``)."""
        return self.time_ref + u.Quantity(self.start, "s")

    @property
    def time_stop(self) -> Time:
        """Interval stop times (astropy ``Time``)."""
        return self.time_ref + u.Quantity(self.stop, "s")

    @property
    def met_start(self) -> np.ndarray:
        """Start times in s since the reference time."""
        return self.start

    @property
    def met_stop(self) -> np.ndarray:
        """Stop times in s since the reference time."""
        return self.stop

    @property
    def time_delta(self) -> np.ndarray:
        """Interval durations in s."""
        return self.stop - self.start

    @property
    def time_sum(self) -> float:
        """Total duration in s."""
        return float(np.sum(self.stop - self.start))

    @property
    def time_intervals(self) -> list[tuple[Time, Time]]:
        """The ``(start, stop)`` astropy Time pairs."""
        start, stop = self.time_start, self.time_stop
        return [(start[i], stop[i]) for i in range(len(self.start))]

    @property
    def table(self) -> Table:
        """The intervals as an astropy Table with ``START``/``STOP`` Time columns (Gammapy's layout)."""
        return Table({"START": self.time_start, "STOP": self.time_stop})

    def __len__(self) -> int:
        return int(self.start.size)

    def __str__(self) -> str:
        if self.start.size == 0:
            return "GTI info:\n- Number of GTIs: 0\n"
        start, stop = self.time_start, self.time_stop
        return (
            "GTI info:\n"
            f"- Number of GTIs: {self.start.size}\n"
            f"- Duration: {self.time_sum} s\n"
            f"- Start: {self.start[0]} s MET\n"
            f"- Start: {start[0].fits} (time standard: {self.timesys.upper()})\n"
            f"- Stop: {self.stop[-1]} s MET\n"
            f"- Stop: {stop[-1].fits} (time standard: {self.timesys.upper()})\n"
        )

    # -- selections ------------------------------------------------------------------------------
    def _replace(self, start: np.ndarray, stop: np.ndarray) -> GTI:
        return GTI(start, stop, self.mjdrefi, self.mjdreff, self.timesys)

    def _shifted_to(self, other: GTI) -> tuple[np.ndarray, np.ndarray]:
        """This GTI's intervals in ``other``'s reference (s)."""
        if self.timesys == other.timesys:
            shift = ((self.mjdrefi - other.mjdrefi) + (self.mjdreff - other.mjdreff)) * 86400.0
        else:  # e.g. a UTC reference (MapDataset.create) and TT observations: astropy converts scales
            shift = float((self.time_ref - other.time_ref).to_value("s"))
        return self.start + shift, self.stop + shift

    def select_time(self, time_interval: Any, inverted: bool = False) -> GTI:
        """The intervals cropped to ``time_interval`` = ``[start, stop)`` (astropy Time pair, or
        Quantity / seconds since the reference time), as Gammapy's ``select_time``.

        With ``inverted=True`` the parts of the intervals outside ``time_interval`` are kept
        (Gammapy's inverted branch stretches non-overlapping intervals up to the cut; here they are
        kept as they are and overlapping ones are cut at the interval's bounds).
        """
        t0, t1 = _time_interval(time_interval, self.time_ref)
        overlap = (self.start <= t1) & (self.stop > t0)
        if not inverted:
            start = np.clip(self.start[overlap], t0, t1)
            stop = np.clip(self.stop[overlap], t0, t1)
            return self._replace(start, stop)
        before_start = np.minimum(self.start, t0)
        before_stop = np.minimum(self.stop, t0)
        after_start = np.maximum(self.start, t1)
        after_stop = np.maximum(self.stop, t1)
        keep_before = before_stop > before_start
        keep_after = after_stop > after_start
        start = np.concatenate([before_start[keep_before], after_start[keep_after]])
        stop = np.concatenate([before_stop[keep_before], after_stop[keep_after]])
        order = np.argsort(start, kind="stable")
        return self._replace(start[order], stop[order])

    def union(self, overlap_ok: bool = True, merge_equal: bool = True) -> GTI:
        """Merge overlapping intervals (and touching ones with ``merge_equal``), sorted by start."""
        start, stop = _merge_intervals(self.start, self.stop, overlap_ok, merge_equal)
        return self._replace(start, stop)

    @classmethod
    def from_stack(cls, gtis: Sequence[GTI]) -> GTI:
        """Concatenate GTIs (in the first one's reference time), without merging."""
        gtis = list(gtis)
        if not gtis:
            raise ValueError("GTI.from_stack: no GTI given")
        first = gtis[0]
        starts, stops = [first.start], [first.stop]
        for g in gtis[1:]:
            s, e = g._shifted_to(first)
            starts.append(s)
            stops.append(e)
        return first._replace(np.concatenate(starts), np.concatenate(stops))

    def stack_union(self, others: Iterable[GTI]) -> GTI:
        """The union of this and ``others`` (merging overlapping or touching intervals), in this
        GTI's reference, as Gammapy's ``stack`` followed by ``union``."""
        return GTI.from_stack([self, *others]).union()


def _as_gti(value: Any) -> GTI | None:
    if value is None or isinstance(value, GTI):
        return value
    if isinstance(value, dict):
        return GTI.from_dict(value)
    raise TypeError(f"gti must be a GTI, a dict or None, got {type(value).__name__}")
