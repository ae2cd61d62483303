"""Event lists (``EventList``), as Gammapy 2.1's ``gammapy.data.EventList``, read from a GADF
``EVENTS`` HDU.

The columns the reduction uses are float64 numpy in fixed units: ``RA``, ``DEC`` [deg] (ICRS),
``ENERGY`` [TeV] and ``TIME`` [s since the header's ``MJDREFI + MJDREFF``]; FITS columns are
big-endian float32 in most DL3 files and are converted once, on reading. Other columns are kept in
native byte order. Selections return new event lists (boolean masks, no loop over events).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.time import Time

from ..irf._irf_base import make_path
from .gti import (
    _column_float64,
    _find_column,
    _header_meta,
    _mjdref,
    _native,
    _parse_unit,
    _table_hdu,
    _time_interval,
    _time_ref,
    _timesys,
)

__all__ = ["EventList"]

#: The columns every event list has, and their units.
REQUIRED_COLUMNS = {"RA": "deg", "DEC": "deg", "ENERGY": "TeV", "TIME": "s"}
_SKIPPED = {"GLON", "GLAT"}  # recomputed from RA/DEC, as Gammapy drops them


def _band(values: Any, unit: str, what: str) -> tuple[float, float]:
    """A ``(min, max)`` band from a Quantity (converted to ``unit``) or plain numbers (in ``unit``)."""
    if isinstance(values, u.Quantity):
        try:
            arr = np.asarray(values.to_value(unit), dtype=np.float64)
        except u.UnitConversionError:
            raise ValueError(f"{what}: {values.unit} is not convertible to {unit}") from None
    elif isinstance(values, (list, tuple)) and any(isinstance(v, u.Quantity) for v in values):
        arr = np.array([u.Quantity(v, unit).to_value(unit) for v in values], dtype=np.float64)
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: expected a (min, max) pair in {unit}, got {values!r}") from None
    arr = np.ravel(arr)
    if arr.size != 2:
        raise ValueError(f"{what}: expected a (min, max) pair, got {values!r}")
    return float(arr[0]), float(arr[1])


def _column_in_unit(hdu: fits.BinTableHDU, name: str, unit: str, where: Any) -> np.ndarray:
    """A coordinate column in ``unit``, in the file's floating dtype (native byte order) when no
    conversion is needed: Gammapy keeps float32 RA/DEC/ENERGY, and its sky transforms and
    binning of float32 coordinates are what the reduction reproduces."""
    col_name = _find_column(hdu, name, where)
    raw = np.asarray(hdu.data[col_name])
    col_unit = hdu.columns[col_name].unit
    if raw.dtype.kind == "f" and (not col_unit or _parse_unit(col_unit, str(where)) == u.Unit(unit)):
        return _native(raw)
    return _column_float64(hdu, name, where, unit=unit)


class EventList:
    """Event list: an astropy ``Table`` with ``RA``, ``DEC`` [deg], ``ENERGY`` [TeV] columns (in the
    file's floating dtype, as Gammapy keeps them) and a float64 ``TIME`` [s since the reference
    time], with the header as ``meta``. :attr:`ra`, :attr:`dec`, :attr:`energy` and :attr:`time` are
    float64 numpy; :attr:`radec` is built from the columns as stored, so astropy transforms of it
    (``galactic``, offsets) give Gammapy's numbers bit for bit.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Event table; its ``meta`` is the EVENTS header (``MJDREFI``/``MJDREFF`` give the time
        reference, ``RA_PNT``/``DEC_PNT`` the pointing).
    """

    def __init__(self, table: Table):
        if not isinstance(table, Table):
            raise TypeError(f"EventList expects an astropy Table, got {type(table).__name__}")
        missing = [name for name in REQUIRED_COLUMNS if name not in table.colnames]
        if missing:
            raise ValueError(f"EventList: columns {missing} are missing (columns: {table.colnames})")
        self.table = table
        self._float64: dict[str, np.ndarray] = {}

    def _column64(self, name: str) -> np.ndarray:
        if name not in self._float64:
            out = np.array(self.table[name], dtype=np.float64)
            out.setflags(write=False)
            self._float64[name] = out
        return self._float64[name]

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def from_table_hdu(cls, hdu: Any, where: Any = None) -> EventList:
        """Event list from a GADF ``EVENTS`` table HDU; ``where`` names the file in error messages."""
        name = getattr(hdu, "name", "EVENTS") or "EVENTS"
        hdu = _table_hdu(hdu, where, name)
        header = hdu.header
        meta = _header_meta(header)
        columns: dict[str, Any] = {}
        for key, unit in REQUIRED_COLUMNS.items():
            if key != "TIME":
                columns[key] = _column_in_unit(hdu, key, unit, where)
        # the event times are in TIMEUNIT (default s) since MJDREF; the TIME column's TUNIT, when
        # there is one, wins, as for any column
        time_unit = header.get("TIMEUNIT", "s")
        columns["TIME"] = _column_float64(hdu, "TIME", where, unit="s", default_unit=time_unit)
        if "MJDREFI" not in meta or "MJDREFF" not in meta:
            mjdrefi, mjdreff = _mjdref(header, where, name)
            meta["MJDREFI"], meta["MJDREFF"] = mjdrefi, mjdreff
        taken = {c.upper() for c in REQUIRED_COLUMNS} | _SKIPPED
        for col in hdu.columns:
            if col.name.upper() in taken:
                continue
            columns[col.name] = _native(hdu.data[col.name])
        table = Table(columns, meta=meta, copy=False)
        for key, unit in REQUIRED_COLUMNS.items():
            table[key].unit = unit
        for col in hdu.columns:
            if col.name in table.colnames and col.name.upper() not in taken and col.unit:
                table[col.name].unit = _unit_or_none(col.unit)
        return cls(table)

    @classmethod
    def read(cls, filename: Any, hdu: str = "EVENTS") -> EventList:
        """Read the ``hdu`` HDU of a FITS event file."""
        path = make_path(filename)
        if not path.is_file():
            raise ValueError(f"event file {str(path)!r} does not exist")
        try:
            hdulist = fits.open(path, memmap=False)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"event file {str(path)!r} is not a readable FITS file: {err}") from None
        with hdulist:
            if hdu not in hdulist:
                present = [h.name for h in hdulist]
                raise ValueError(f"{str(path)!r}: HDU {hdu!r} is missing (HDUs present: {present})")
            return cls.from_table_hdu(hdulist[hdu], where=str(path))

    def to_table_hdu(self) -> fits.BinTableHDU:
        """The GADF ``EVENTS`` table HDU (times in s since the reference time)."""
        table = self.table.copy(copy_data=False)
        meta = {k: v for k, v in table.meta.items() if len(k) <= 8}
        table.meta = meta
        return fits.BinTableHDU(table, name="EVENTS")

    def write(self, filename: Any, gti: Any = None, overwrite: bool = False) -> None:
        """Write a GADF event file (Gammapy's ``EventList.write``): an empty primary HDU, ``EVENTS``
        and, when given, the ``GTI`` HDU; atomically (no half-written file is left behind)."""
        from ..io._atomic import atomic_paths, check_writable

        hdus = [fits.PrimaryHDU(), self.to_table_hdu()]
        if gti is not None:
            hdus.append(gti.to_table_hdu())
        check_writable([filename], overwrite)
        with atomic_paths(filename, overwrite=overwrite) as (tmp,):
            fits.HDUList(hdus).writeto(tmp, overwrite=True)

    @classmethod
    def from_stack(cls, event_lists: Sequence[EventList]) -> EventList:
        """Concatenate event lists (the meta of the first one is kept)."""
        event_lists = list(event_lists)
        if not event_lists:
            raise ValueError("EventList.from_stack: no event list given")
        table = vstack([e.table for e in event_lists], metadata_conflicts="silent")
        table.meta = dict(event_lists[0].table.meta)
        return cls(table)

    # -- columns ---------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """The EVENTS header (a dict)."""
        return self.table.meta

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ra(self) -> np.ndarray:
        """Right ascension [deg], float64."""
        return self._column64("RA")

    @property
    def dec(self) -> np.ndarray:
        """Declination [deg], float64."""
        return self._column64("DEC")

    @property
    def energy(self) -> np.ndarray:
        """Reconstructed energy [TeV], float64."""
        return self._column64("ENERGY")

    @property
    def time(self) -> np.ndarray:
        """Event times [s since :attr:`time_ref`], float64."""
        return self._column64("TIME")

    @property
    def time_ref(self) -> Time:
        """Reference time of ``TIME`` (``MJDREFI + MJDREFF``, scale ``TIMESYS``)."""
        meta = self.table.meta
        mjdrefi, mjdreff = _mjdref(meta, meta.get("OBS_ID", "events"), "EVENTS")
        return _time_ref(mjdrefi, mjdreff, _timesys(meta))

    @property
    def time_absolute(self) -> Time:
        """Event times as astropy ``Time`` (Gammapy's ``EventList.time``)."""
        return self.time_ref + u.Quantity(self.time, "s")

    @property
    def radec(self) -> SkyCoord:
        """Event directions (ICRS), from the columns as stored (float32 in most DL3 files), as
        Gammapy's ``EventList.radec``."""
        ra = u.Quantity(np.asarray(self.table["RA"]), "deg", copy=False)
        dec = u.Quantity(np.asarray(self.table["DEC"]), "deg", copy=False)
        return SkyCoord(ra, dec, frame="icrs")

    @property
    def galactic(self) -> SkyCoord:
        """Event directions in Galactic coordinates (computed from RA/DEC by astropy)."""
        return self.radec.galactic

    @property
    def galactic_median(self) -> SkyCoord:
        """Median Galactic position."""
        galactic = self.galactic
        return SkyCoord(
            np.median(galactic.l.wrap_at("180d").deg), np.median(galactic.b.deg), unit="deg", frame="galactic"
        )

    # -- header quantities -----------------------------------------------------------------------
    @property
    def is_pointed_observation(self) -> bool:
        """Whether the header has a fixed ``RA_PNT``/``DEC_PNT`` pointing."""
        return "RA_PNT" in self.table.meta and "DEC_PNT" in self.table.meta

    @property
    def pointing_radec(self) -> SkyCoord:
        """Pointing position of the header (``RA_PNT``, ``DEC_PNT``), ICRS."""
        if not self.is_pointed_observation:
            raise ValueError("EventList: header keywords 'RA_PNT'/'DEC_PNT' are missing")
        return SkyCoord(float(self.meta["RA_PNT"]), float(self.meta["DEC_PNT"]), unit="deg", frame="icrs")

    @property
    def offset(self) -> np.ndarray:
        """Event offsets from the pointing position [deg], float64."""
        return np.asarray(self.pointing_radec.separation(self.radec).deg, dtype=np.float64)

    def _header_float(self, key: str) -> float:
        if key not in self.meta:
            raise ValueError(f"EventList: header keyword {key!r} is missing")
        return float(self.meta[key])

    @property
    def observation_time_start(self) -> Time:
        """``time_ref + TSTART``."""
        return self.time_ref + u.Quantity(self._header_float("TSTART"), "s")

    @property
    def observation_time_stop(self) -> Time:
        """``time_ref + TSTOP``."""
        return self.time_ref + u.Quantity(self._header_float("TSTOP"), "s")

    @property
    def observation_time_duration(self) -> float:
        """``TSTOP - TSTART`` [s] (Gammapy's ``EventList.observation_time_duration``)."""
        return self._header_float("TSTOP") - self._header_float("TSTART")

    @property
    def observation_live_time_duration(self) -> float:
        """Header ``LIVETIME`` [s]."""
        return self._header_float("LIVETIME")

    @property
    def observation_dead_time_fraction(self) -> float:
        """``1 - DEADC`` of the header."""
        return 1.0 - self._header_float("DEADC")

    # -- selections ------------------------------------------------------------------------------
    def select_row_subset(self, row_specifier: Any) -> EventList:
        """The events ``table[row_specifier]`` (boolean mask, index array or slice)."""
        return self.__class__(self.table[row_specifier])

    def select_energy(self, energy_range: Any) -> EventList:
        """Events with ``energy_min <= energy < energy_max`` (Quantity, or numbers in TeV)."""
        e_min, e_max = _band(energy_range, "TeV", "select_energy energy_range")
        energy = self.energy
        return self.select_row_subset((e_min <= energy) & (energy < e_max))

    def select_time(self, time_interval: Any, inverted: bool = False) -> EventList:
        """Events with ``start <= time < stop`` (astropy Time pair, or s since :attr:`time_ref`)."""
        t0, t1 = _time_interval(time_interval, self.time_ref)
        time = self.time
        mask = (t0 <= time) & (time < t1)
        return self.select_row_subset(~mask if inverted else mask)

    def select_offset(self, offset_band: Any) -> EventList:
        """Events with ``offset_min <= offset < offset_max`` from the pointing (Angle, or deg)."""
        o_min, o_max = _band(offset_band, "deg", "select_offset offset_band")
        offset = self.offset
        return self.select_row_subset((o_min <= offset) & (offset < o_max))

    def select_sky_circle(self, center: SkyCoord, radius: Any) -> EventList:
        """Events within ``radius`` (Angle, or deg) of ``center`` (strictly closer)."""
        radius_deg = float(u.Quantity(radius, "deg").to_value("deg"))
        sep = np.asarray(SkyCoord(center).separation(self.radec).deg)
        return self.select_row_subset(sep < radius_deg)

    def select_rad_max(self, rad_max: Any, position: SkyCoord | None = None) -> EventList:
        """Events within the point-like cut of ``position`` (default the pointing): their separation
        at most ``rad_max`` (a :class:`~jaxgamma.irf.RadMax2D`) at their reconstructed energy and the
        position's offset, by nearest value (Gammapy's ``EventList.select_rad_max``)."""
        pointing = self.pointing_radec
        position = pointing if position is None else SkyCoord(position)
        offset = float(position.separation(pointing).deg)
        separation = np.asarray(position.separation(self.radec).deg)
        cut = rad_max.evaluate(method="nearest", energy=self.energy, offset=offset)
        return self.select_row_subset(separation <= cut)

    def select_region(self, regions: Any) -> EventList:
        """Events inside a circle sky region (an object with ``center`` and ``radius``, e.g. a
        ``regions.CircleSkyRegion``); other region shapes are not supported."""
        regions = regions if isinstance(regions, (list, tuple)) else [regions]
        mask = np.zeros(len(self), dtype=bool)
        for region in regions:
            if not (hasattr(region, "center") and hasattr(region, "radius")):
                raise ValueError(
                    f"EventList.select_region: only circle sky regions are supported, got {type(region).__name__}"
                )
            radius_deg = float(u.Quantity(region.radius, "deg").to_value("deg"))
            mask |= np.asarray(SkyCoord(region.center).separation(self.radec).deg) < radius_deg
        return self.select_row_subset(mask)

    def select_parameter(self, parameter: str, values: Any, is_range: bool = True) -> EventList:
        """Events with ``values[0] <= column < values[1]`` (``is_range``), or whose column equals one
        of ``values``."""
        if parameter not in self.table.colnames:
            raise ValueError(f"EventList.select_parameter: no column {parameter!r} ({self.table.colnames})")
        col = np.asarray(self.table[parameter])
        if is_range:
            lo, hi = values[0], values[1]
            return self.select_row_subset((lo <= col) & (col < hi))
        mask = np.isin(col, np.asarray(values))
        return self.select_row_subset(mask)

    # -- summary ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        meta = self.meta
        info = "EventList\n---------\n\n"
        info += f"  Instrument       : {meta.get('INSTRUME')}\n"
        info += f"  Telescope        : {meta.get('TELESCOP')}\n"
        info += f"  Obs. ID          : {meta.get('OBS_ID', '')}\n\n"
        info += f"  Number of events : {len(self)}\n"
        if "TSTART" in meta and "TSTOP" in meta:
            duration = self.observation_time_duration
            if duration > 0:
                info += f"  Event rate       : {len(self) / duration:.3f} 1 / s\n\n"
            info += f"  Time start       : {self.observation_time_start}\n"
            info += f"  Time stop        : {self.observation_time_stop}\n\n"
        if len(self):
            energy = self.energy
            info += f"  Min. energy      : {np.min(energy):.2e} TeV\n"
            info += f"  Max. energy      : {np.max(energy):.2e} TeV\n"
            info += f"  Median energy    : {np.median(energy):.2e} TeV\n\n"
            if self.is_pointed_observation:
                info += f"  Max. offset      : {np.max(self.offset):.1f} deg\n"
        return info

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_events={len(self)}, obs_id={self.meta.get('OBS_ID')!r})"


def _unit_or_none(unit: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        try:
            return u.Unit(unit, parse_strict="silent")
        except ValueError:
            return None
