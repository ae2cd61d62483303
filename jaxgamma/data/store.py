"""DL3 data stores (``DataStore``), their index tables (``HDUIndexTable``, ``ObservationTable``)
and HDU locations (``HDULocation``), as Gammapy 2.1's ``gammapy.data``.

A data store is a folder with two GADF index tables: the HDU index (``hdu-index.fits.gz``: where
the events, GTI and IRF HDUs of each observation are, ``FILE_DIR`` relative to the store's base
folder) and the observation index (``obs-index.fits.gz``: one row per observation with its
pointing, times, dead-time...). :meth:`DataStore.obs` returns an :class:`~jaxgamma.data.Observation`
whose events, GTI and IRFs are read lazily, on first access.

Reading is shared: the observations of one store read their FITS files through one cache that
keeps the last few files open (the events and GTI of an observation are in one file) and keeps the
IRF objects built from an HDU (``(file, HDU)`` key), so observations sharing a calibration file read
and parse each IRF once.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.table import MaskedColumn, Table, unique
from astropy.time import Time

from ..irf._irf_base import GADF_KEYWORDS, make_path
from ..irf.gadf import HDU_CLASSES, HDU_TYPES
from .gti import _mjdref, _time_ref, _timesys

if TYPE_CHECKING:
    from .observation import Observation, Observations

__all__ = [
    "ALL_HDUS",
    "ALL_IRFS",
    "REQUIRED_IRFS",
    "DataStore",
    "HDUIndexTable",
    "HDULocation",
    "MissingRequiredHDU",
    "ObservationTable",
]

log = logging.getLogger(__name__)

ALL_IRFS = ["aeff", "edisp", "psf", "bkg", "rad_max"]
ALL_HDUS = ["events", "gti", *ALL_IRFS]
#: Gammapy's ``required_irf`` short forms (``"full"`` is accepted for ``"full-enclosure"``).
REQUIRED_IRFS: dict[str, set[str]] = {
    "full-enclosure": {"aeff", "edisp", "psf", "bkg"},
    "full": {"aeff", "edisp", "psf", "bkg"},
    "point-like": {"aeff", "edisp"},
    "all-optional": set(),
}
_INDEX_COLUMNS = ["OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME"]


class MissingRequiredHDU(ValueError):
    """A required HDU of an observation is not in the HDU index table (Gammapy's
    ``MissingRequiredHDU``; a ``ValueError`` here). ``get_observations`` skips such observations."""


def _read_table(path: Path, what: str, hdu: Any = None) -> Table:
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            kwargs = {} if hdu is None else {"hdu": hdu}
            return Table.read(path, format="fits", **kwargs)
    except (OSError, ValueError, TypeError, KeyError, IndexError) as err:
        raise ValueError(f"{what} file {str(path)!r} is not a readable FITS table: {err}") from None


def _strings(column: Any) -> np.ndarray:
    """A string column as stripped ``str`` numpy (FITS strings are bytes)."""
    arr = np.asarray(column)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "ascii", errors="replace")
    return np.char.strip(arr.astype(str))


# -- HDU locations and the shared file cache -------------------------------------------------------
class HDULocation:
    """Where one HDU is: a row of the HDU index table.

    Parameters
    ----------
    hdu_class : str
        HDU class (``events``, ``gti``, ``aeff_2d``, ``psf_3gauss``...).
    base_dir, file_dir, file_name : str
        The file is ``base_dir / file_dir / file_name`` when that exists, else ``file_dir /
        file_name`` (Gammapy's rule); environment variables are expanded.
    hdu_name : str
        The HDU's ``EXTNAME``.
    hdu_type : str, optional
        HDU type (``events``, ``gti``, ``aeff``...).
    """

    def __init__(
        self,
        hdu_class: str,
        base_dir: Any = ".",
        file_dir: str | None = None,
        file_name: str | None = None,
        hdu_name: str | None = None,
        hdu_type: str | None = None,
    ):
        self.hdu_class = hdu_class
        self.base_dir = str(base_dir)
        self.file_dir = file_dir or ""
        self.file_name = file_name or ""
        self.hdu_name = hdu_name
        self.hdu_type = hdu_type

    def path(self, abs_path: bool = True) -> Path:
        """The file's path: ``base_dir / file_dir / file_name`` if it exists, else ``file_dir /
        file_name`` (as Gammapy's ``HDULocation.path``)."""
        path = make_path(self.base_dir) / make_path(self.file_dir) / make_path(self.file_name)
        if abs_path and path.exists():
            return path
        return make_path(self.file_dir) / make_path(self.file_name)

    def expected_path(self) -> Path:
        """Where the index says the file is: ``base_dir / file_dir / file_name`` (for messages)."""
        return make_path(self.base_dir) / make_path(self.file_dir) / make_path(self.file_name)

    def exists(self) -> bool:
        return self.path().is_file()

    def info(self) -> str:
        return (
            f"HDU_CLASS = {self.hdu_class}\nBASE_DIR = {self.base_dir}\nFILE_DIR = {self.file_dir}\n"
            f"FILE_NAME = {self.file_name}\nHDU_NAME = {self.hdu_name}\n"
        )

    def __repr__(self) -> str:
        return (
            f"HDULocation(hdu_type={self.hdu_type!r}, hdu_class={self.hdu_class!r}, "
            f"path={str(self.path())!r}, hdu_name={self.hdu_name!r})"
        )


class _FileCache:
    """The reading cache a data store's observations share. A FITS file is opened once per request
    and closed at once; every HDU of that file the observation will need (its events, GTI, EVENTS
    header and IRFs in the same file: ``siblings``) is built in that one read, so a gzipped
    file is decompressed once. Built objects are kept by ``(file, HDU, kind)``: IRFs, GTIs and
    headers (the last ``max_objects``) and event lists (the last ``max_events``), so observations
    sharing an IRF file parse each IRF once. Thread-safe; pickles empty."""

    def __init__(self, max_objects: int = 64, max_events: int = 4):
        self.max_objects = max_objects
        self.max_events = max_events
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.RLock()
        self._objects: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._events: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self.n_file_reads = 0  # files opened (for tests and benchmarks)

    def __getstate__(self) -> dict[str, Any]:
        return {"max_objects": self.max_objects, "max_events": self.max_events}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    def clear(self) -> None:
        """Forget the cached objects."""
        with self._lock:
            self._objects.clear()
            self._events.clear()

    @staticmethod
    def _key(location: HDULocation, kind: str) -> tuple[str, str, str]:
        return (str(location.path()), str(location.hdu_name).upper(), kind)

    def _store(self, kind: str) -> tuple[OrderedDict[tuple[str, str, str], Any], int]:
        if kind == "events":
            return self._events, self.max_events
        return self._objects, self.max_objects

    def _put(self, key: tuple[str, str, str], obj: Any) -> None:
        store, limit = self._store(key[2])
        store[key] = obj
        store.move_to_end(key)
        while len(store) > limit:
            store.popitem(last=False)

    def load(
        self,
        location: HDULocation,
        kind: str,
        builder: Callable[[Any, str], Any],
        where: str,
        siblings: Sequence[tuple[HDULocation, str, Callable[[Any, str], Any], str]] = (),
    ) -> Any:
        """The object ``builder(hdu, where)`` of the HDU at ``location``, cached by (file, HDU,
        kind). When the file has to be read, the ``siblings`` requests in the same file that are
        not cached yet are built too (their errors are left for their own request)."""
        key = self._key(location, kind)
        with self._lock:
            store, _ = self._store(kind)
            if key in store:
                store.move_to_end(key)
                return store[key]
            path = Path(key[0])
            if not path.is_file():
                raise ValueError(f"{where}: file {key[0]!r} does not exist")
            try:
                hdulist = fits.open(path, memmap=False)
            except (OSError, ValueError, TypeError) as err:
                raise ValueError(f"{where}: file {key[0]!r} is not a readable FITS file: {err}") from None
            self.n_file_reads += 1
            with hdulist:
                obj = self._build(hdulist, location, builder, where)
                self._put(key, obj)
                for loc, sib_kind, sib_builder, sib_where in siblings:
                    sib_key = self._key(loc, sib_kind)
                    if sib_key[0] != key[0] or sib_key == key or sib_key in self._store(sib_kind)[0]:
                        continue
                    try:
                        sib_obj = self._build(hdulist, loc, sib_builder, sib_where)
                    except (ValueError, KeyError, TypeError, IndexError, OSError):
                        continue
                    self._put(sib_key, sib_obj)
            return obj

    @staticmethod
    def _build(
        hdulist: fits.HDUList, location: HDULocation, builder: Callable[[Any, str], Any], where: str
    ) -> Any:
        hdu_name = str(location.hdu_name)
        try:
            hdu = hdulist[hdu_name]
        except (KeyError, IndexError):
            present = [h.name for h in hdulist]
            raise ValueError(
                f"{where}: HDU {hdu_name!r} is not in file {str(location.path())!r} (HDUs present: {present})"
            ) from None
        return builder(hdu, where)


# -- index tables ----------------------------------------------------------------------------------
class HDUIndexTable(Table):
    """HDU index table (GADF ``HDU_INDEX``): ``OBS_ID``, ``HDU_TYPE``, ``HDU_CLASS``, ``FILE_DIR``,
    ``FILE_NAME``, ``HDU_NAME``; ``meta["BASE_DIR"]`` is the folder ``FILE_DIR`` is relative to."""

    VALID_HDU_TYPE = list(HDU_TYPES)
    VALID_HDU_CLASS = list(HDU_CLASSES)

    @classmethod
    def read(cls, filename: Any, hdu: Any = None) -> HDUIndexTable:
        """Read an HDU index table; ``BASE_DIR`` is set to the file's folder."""
        path = make_path(filename)
        table = cls(_read_table(path, "HDU index table", hdu), copy=False)
        missing = [c for c in _INDEX_COLUMNS if c not in table.colnames]
        if missing:
            raise ValueError(
                f"HDU index table {str(path)!r}: columns {missing} are missing (columns: {table.colnames})"
            )
        for name in table.colnames:
            if isinstance(table[name], MaskedColumn):
                table[name] = table[name].filled("" if table[name].dtype.kind in "SU" else 0)
        table.meta["BASE_DIR"] = path.parent.as_posix()
        table.meta["_FILE"] = str(path)
        return table

    @property
    def base_dir(self) -> Path:
        """Base folder of the ``FILE_DIR`` entries."""
        return make_path(self.meta.get("BASE_DIR", ""))

    @property
    def _obs_id(self) -> np.ndarray:
        return np.asarray(self["OBS_ID"]).astype(np.int64)

    @property
    def obs_id_unique(self) -> np.ndarray:
        return np.unique(self._obs_id)

    @property
    def hdu_type_unique(self) -> list[str]:
        return sorted(set(_strings(self["HDU_TYPE"]).tolist()))

    @property
    def hdu_class_unique(self) -> list[str]:
        return sorted(set(_strings(self["HDU_CLASS"]).tolist()))

    def row_idx(self, obs_id: int, hdu_type: str | None = None, hdu_class: str | None = None) -> list[int]:
        """Row indices of ``obs_id`` (and the HDU type / class when given)."""
        selection = self._obs_id == int(obs_id)
        if hdu_class:
            selection &= _strings(self["HDU_CLASS"]) == hdu_class
        if hdu_type:
            selection &= _strings(self["HDU_TYPE"]) == hdu_type
        return [int(i) for i in np.nonzero(selection)[0]]

    def location_info(self, idx: int) -> HDULocation:
        """The :class:`HDULocation` of row ``idx``."""
        row = self[idx]
        return HDULocation(
            hdu_class=str(row["HDU_CLASS"]).strip(),
            base_dir=self.base_dir.as_posix(),
            file_dir=str(row["FILE_DIR"]).strip(),
            file_name=str(row["FILE_NAME"]).strip(),
            hdu_name=str(row["HDU_NAME"]).strip(),
            hdu_type=str(row["HDU_TYPE"]).strip(),
        )

    def hdu_location(
        self,
        obs_id: int,
        hdu_type: str | None = None,
        hdu_class: str | None = None,
        warn_missing: bool = True,
    ) -> HDULocation | None:
        """The location of an observation's HDU (the first row when several match), or None."""
        if hdu_type is None and hdu_class is None:
            raise ValueError("hdu_location: give hdu_type or hdu_class")
        if hdu_type and hdu_type not in self.VALID_HDU_TYPE:
            raise ValueError(f"Invalid hdu_type: {hdu_type!r}. Valid values are: {self.VALID_HDU_TYPE}")
        if hdu_class and hdu_class not in self.VALID_HDU_CLASS:
            raise ValueError(f"Invalid hdu_class: {hdu_class!r}. Valid values are: {self.VALID_HDU_CLASS}")
        idx = self.row_idx(obs_id, hdu_type=hdu_type, hdu_class=hdu_class)
        if not idx:
            if warn_missing:
                log.warning(
                    f"No HDU found matching: OBS_ID = {obs_id}, HDU_TYPE = {hdu_type}, HDU_CLASS = {hdu_class}"
                )
            return None
        if len(idx) > 1:
            log.warning(
                f"Found multiple HDU matching: OBS_ID = {obs_id}, HDU_TYPE = {hdu_type}, "
                f"HDU_CLASS = {hdu_class}. Returning the first entry."
            )
        return self.location_info(idx[0])

    def summary(self) -> str:
        """Summary report as a string."""
        obs_id = self.obs_id_unique
        span = f"{obs_id[0]} -- {obs_id[-1]}" if obs_id.size else "none"
        return (
            "HDU index table:\n"
            f"BASE_DIR: {self.base_dir}\n"
            f"Rows: {len(self)}\n"
            f"OBS_ID: {span}\n"
            f"HDU_TYPE: {self.hdu_type_unique}\n"
            f"HDU_CLASS: {self.hdu_class_unique}\n"
        )


class ObservationTable(Table):
    """Observation index table (GADF ``OBS_INDEX``), with Gammapy's selections."""

    @classmethod
    def read(cls, filename: Any, hdu: Any = None) -> ObservationTable:
        path = make_path(filename)
        table = cls(_read_table(path, "observation index table", hdu), copy=False)
        if "OBS_ID" not in table.colnames:
            raise ValueError(
                f"observation index table {str(path)!r}: column 'OBS_ID' is missing (columns: {table.colnames})"
            )
        table.meta["_FILE"] = str(path)
        return table

    def _where(self) -> str:
        return f"observation index table {self.meta.get('_FILE', '<table>')!r}"

    def _column_deg(self, name: str) -> np.ndarray:
        if name not in self.colnames:
            raise ValueError(f"{self._where()}: column {name!r} is missing (columns: {self.colnames})")
        col = self[name]
        unit = getattr(col, "unit", None) or "deg"
        return u.Quantity(np.asarray(col, dtype=np.float64), unit).to_value("deg")

    @property
    def pointing_radec(self) -> SkyCoord:
        """Pointing positions (ICRS) from ``RA_PNT``, ``DEC_PNT``."""
        return SkyCoord(self._column_deg("RA_PNT"), self._column_deg("DEC_PNT"), unit="deg", frame="icrs")

    @property
    def pointing_galactic(self) -> SkyCoord:
        """Pointing positions from ``GLON_PNT``, ``GLAT_PNT``."""
        return SkyCoord(
            self._column_deg("GLON_PNT"), self._column_deg("GLAT_PNT"), unit="deg", frame="galactic"
        )

    @property
    def time_ref(self) -> Time:
        """Reference time of ``TSTART``/``TSTOP`` (header ``MJDREFI``/``MJDREFF``, ``TIMESYS``)."""
        return _time_ref(*_mjdref(self.meta, self._where(), "OBS_INDEX"), _timesys(self.meta))

    def _seconds(self, name: str) -> np.ndarray:
        if name not in self.colnames:
            raise ValueError(f"{self._where()}: column {name!r} is missing (columns: {self.colnames})")
        col = self[name]
        unit = getattr(col, "unit", None) or self.meta.get("TIMEUNIT", "s")
        return u.Quantity(np.asarray(col, dtype=np.float64), unit).to_value("s")

    @property
    def time_start(self) -> Time:
        """Observation start times (``time_ref + TSTART``)."""
        return self.time_ref + u.Quantity(self._seconds("TSTART"), "s")

    @property
    def time_stop(self) -> Time:
        """Observation stop times (``time_ref + TSTOP``)."""
        return self.time_ref + u.Quantity(self._seconds("TSTOP"), "s")

    def select_obs_id(self, obs_id: Any) -> ObservationTable:
        """The rows of ``obs_id`` (an id or a list, in that order); an id not in the table raises."""
        ids = np.atleast_1d(np.asarray(obs_id)).astype(np.int64)
        table_ids = np.asarray(self["OBS_ID"]).astype(np.int64)
        rows = []
        missing = []
        for i in ids:
            hit = np.nonzero(table_ids == i)[0]
            if hit.size == 0:
                missing.append(int(i))
            rows.extend(hit.tolist())
        if missing:
            raise ValueError(f"{self._where()}: OBS_ID {missing} not in the table")
        return self[np.asarray(rows, dtype=int)]

    def summary(self) -> str:
        obs_name = self.meta.get("OBSERVATORY_NAME", self.meta.get("OBSERVER", "N/A"))
        return f"Observation table:\nObservatory name: {obs_name!r}\nNumber of observations: {len(self)}\n"

    def select_range(
        self, selection_variable: str, value_range: Any, inverted: bool = False
    ) -> ObservationTable:
        """Rows with ``min <= column < max`` (``min == max``: equality), as Gammapy's."""
        if selection_variable not in self.colnames:
            raise ValueError(f"{self._where()}: column {selection_variable!r} is missing")
        value_range = u.Quantity(value_range)
        value = u.Quantity(self[selection_variable])
        mask = (value_range[0] <= value) & (value < value_range[1])
        if np.allclose(value_range[0].value, value_range[1].value):
            mask = value_range[0] == value
        if inverted:
            mask = np.invert(mask)
        return self[mask]

    def select_time_range(
        self, time_range: Any, partial_overlap: bool = False, inverted: bool = False
    ) -> ObservationTable:
        """Rows whose ``[TSTART, TSTOP]`` lies inside ``time_range`` (astropy Time pair), or overlaps
        it with ``partial_overlap``, as Gammapy's."""
        t0, t1 = Time(time_range[0]), Time(time_range[1])
        tstart, tstop = self.time_start, self.time_stop
        if not partial_overlap:
            mask = (t0 <= tstart) & (t1 >= tstop)
        else:
            mask = (t0 <= tstop) & (t1 >= tstart)
        if inverted:
            mask = np.invert(mask)
        return self[np.asarray(mask)]

    def select_sky_circle(self, center: SkyCoord, radius: Any, inverted: bool = False) -> ObservationTable:
        """Rows whose pointing is closer than ``radius`` to ``center``."""
        mask = np.asarray(center.separation(self.pointing_radec) < Angle(radius, "deg"))
        if inverted:
            mask = np.invert(mask)
        return self[mask]

    def select_observations(self, selections: Any = None) -> ObservationTable:
        """Apply selection dicts (``type`` = ``sky_circle`` with frame, lon, lat, radius, border;
        ``time_box`` with time_range; ``par_box`` with variable, value_range), as Gammapy's."""
        if selections is None:
            return self
        if isinstance(selections, dict):
            selections = [selections]
        table = self
        for selection in selections:
            table = table._apply_simple_selection(selection)
        return table

    def _apply_simple_selection(self, selection: dict[str, Any]) -> ObservationTable:
        selection = dict(selection)
        kind = selection.pop("type", None)
        if kind == "sky_circle":
            try:
                lon = Angle(selection.pop("lon"), "deg")
                lat = Angle(selection.pop("lat"), "deg")
                radius = Angle(selection.pop("radius"), "deg") + Angle(selection.pop("border", 0), "deg")
                frame = selection.pop("frame")
            except KeyError as err:
                raise ValueError(f"sky_circle selection: field {err.args[0]!r} is missing") from None
            return self.select_sky_circle(SkyCoord(lon, lat, frame=frame), radius, **selection)
        if kind == "time_box":
            return self.select_time_range(selection.pop("time_range"), **selection)
        if kind == "par_box":
            return self.select_range(selection.pop("variable"), **selection)
        raise ValueError(f"Invalid selection type: {kind!r} (expected sky_circle, time_box or par_box)")


# -- the data store --------------------------------------------------------------------------------
def _required_hdus(required_irf: Any) -> set[str]:
    if isinstance(required_irf, str):
        if required_irf not in REQUIRED_IRFS:
            raise ValueError(
                f"required_irf {required_irf!r} is not one of {sorted(REQUIRED_IRFS)} or a list among {ALL_IRFS}"
            )
        return set(REQUIRED_IRFS[required_irf])
    required = {str(r) for r in required_irf}
    unknown = required.difference(ALL_IRFS)
    if unknown:
        raise ValueError(f"required_irf: {sorted(unknown)} are not valid HDU types. Choose from: {ALL_IRFS}")
    return required


_TIME_KEYWORDS = ("MJDREFI", "MJDREFF", "TIMEUNIT", "TIMESYS", "TIMEREF")
_OBS_UNITS = {
    "TSTART": "s", "TSTOP": "s", "ONTIME": "s", "LIVETIME": "s",
    "RA_PNT": "deg", "DEC_PNT": "deg", "ALT_PNT": "deg", "AZ_PNT": "deg", "ZEN_PNT": "deg",
    "GLON_PNT": "deg", "GLAT_PNT": "deg",
}  # fmt: skip
_NOT_AVAILABLE = "NOT AVAILABLE"


def _gadf_index_meta(kind: str) -> dict[str, str]:
    return {**GADF_KEYWORDS, "HDUCLAS1": "INDEX", "HDUCLAS2": kind}


def _caldb_irf_file(telescop: str, caldb: str, irf: str, where: str) -> Path:
    """The IRF file of a CALDB entry (Gammapy's ``CalDBIRF``: the first file of its folder)."""
    folder = make_path(f"$CALDB/data/{telescop.lower()}/{caldb}/bcf/{irf}")
    if "$CALDB" in str(folder) or not folder.is_dir():
        raise ValueError(
            f"{where}: the IRFs are named by CALDB={caldb!r} IRF={irf!r}, but {str(folder)!r} is not a folder "
            "(set the CALDB environment variable, or give irfs_paths)"
        )
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise ValueError(f"{where}: the CALDB folder {str(folder)!r} has no IRF file")
    return files[0]


def _events_info(events_path: Path, irf_path: Path | None) -> dict[str, Any]:
    """The observation index row of an event file (Gammapy's ``DataStoreMaker.read_events_info``)."""
    where = f"event file {str(events_path)!r}"
    if not events_path.is_file():
        raise ValueError(f"DataStore.from_events_files: {where} does not exist")
    try:
        with fits.open(events_path, memmap=False) as hdulist:
            if "EVENTS" not in hdulist:
                raise ValueError(f"DataStore.from_events_files: {where} has no EVENTS HDU")
            header = hdulist["EVENTS"].header.copy()
    except OSError as err:
        raise ValueError(f"DataStore.from_events_files: {where} is not a readable FITS file: {err}") from None
    mode = str(header.get("OBS_MODE", "POINTING")).strip().upper()
    pointing = ("ALT_PNT", "AZ_PNT") if mode == "DRIFT" else ("RA_PNT", "DEC_PNT")
    required = ("OBS_ID", "TSTART", "TSTOP", "ONTIME", "LIVETIME", "DEADC", *pointing)
    missing = [k for k in required if k not in header]
    if missing:
        raise ValueError(f"DataStore.from_events_files: {where}: EVENTS header keywords {missing} are missing")
    info: dict[str, Any] = {"OBS_ID": int(header["OBS_ID"])}
    for key in ("TSTART", "TSTOP", "ONTIME", "LIVETIME", "DEADC"):
        info[key] = float(header[key])
    info["TELESCOP"] = str(header.get("TELESCOP", _NOT_AVAILABLE))
    if mode == "DRIFT":
        info["ALT_PNT"], info["AZ_PNT"] = float(header["ALT_PNT"]), float(header["AZ_PNT"])
        info["ZEN_PNT"] = 90.0 - info["ALT_PNT"]
    else:
        info["RA_PNT"], info["DEC_PNT"] = float(header["RA_PNT"]), float(header["DEC_PNT"])
        galactic = SkyCoord(info["RA_PNT"], info["DEC_PNT"], unit="deg", frame="icrs").galactic
        info["GLON_PNT"], info["GLAT_PNT"] = float(galactic.l.deg), float(galactic.b.deg)
    dash = all(k in header for k in ("DATE-OBS", "TIME-OBS", "DATE-END", "TIME-END"))
    for key in ("DATE-OBS", "TIME-OBS", "DATE-END", "TIME-END"):
        info[key] = str(header.get(key if dash else key.replace("-", "_"), _NOT_AVAILABLE))
    info["N_TELS"] = int(header.get("N_TELS", -1))
    info["OBJECT"] = str(header.get("OBJECT", _NOT_AVAILABLE))
    info["EVENTS_FILENAME"] = str(events_path)
    info["EVENT_COUNT"] = int(header["NAXIS2"])
    info["CALDB"] = str(header.get("CALDB", _NOT_AVAILABLE))
    info["IRF"] = str(header.get("IRF", _NOT_AVAILABLE))
    if irf_path is None:
        if info["CALDB"] != _NOT_AVAILABLE and info["IRF"] != _NOT_AVAILABLE:
            irf_path = _caldb_irf_file(info["TELESCOP"], info["CALDB"], info["IRF"], where)
        else:
            irf_path = events_path
    info["IRF_FILENAME"] = str(irf_path)
    for key in _TIME_KEYWORDS:
        info[key] = header.get(key)
    return info


def _hdu_rows(info: dict[str, Any], events_path: Path) -> list[dict[str, Any]]:
    """HDU index rows of one observation: its events and GTI, and the IRF HDUs of its IRF file."""
    from ..irf.gadf import hdu_type_and_class

    obs_id = info["OBS_ID"]
    rows = [
        dict(OBS_ID=obs_id, HDU_TYPE=kind, HDU_CLASS=kind, FILE_DIR=events_path.parent.as_posix(),
             FILE_NAME=events_path.name, HDU_NAME=kind.upper())
        for kind in ("events", "gti")
    ]  # fmt: skip
    irf_path = Path(info["IRF_FILENAME"])
    where = f"IRF file {str(irf_path)!r}"
    if not irf_path.is_file():
        raise ValueError(f"DataStore.from_events_files: {where} (observation {obs_id}) does not exist")
    try:
        with fits.open(irf_path, memmap=False) as hdulist:
            headers = [(hdu.name, hdu.header.copy()) for hdu in hdulist[1:]]
    except OSError as err:
        raise ValueError(f"DataStore.from_events_files: {where} is not a readable FITS file: {err}") from None
    for name, header in headers:
        if str(header.get("HDUCLAS1", "")).strip().upper() != "RESPONSE":
            continue
        hdu_type, hdu_class = hdu_type_and_class(header, f"{where}, HDU {name!r}")
        rows.append(
            dict(OBS_ID=obs_id, HDU_TYPE=hdu_type, HDU_CLASS=hdu_class, FILE_DIR=irf_path.parent.as_posix(),
                 FILE_NAME=irf_path.name, HDU_NAME=name)
        )  # fmt: skip
    return rows


class DataStore:
    """IACT DL3 data store: an HDU index table and an observation index table.

    Parameters
    ----------
    hdu_table : HDUIndexTable
        HDU index table.
    obs_table : ObservationTable, optional
        Observation index table (its duplicate ``OBS_ID`` rows are dropped and it is sorted by
        ``OBS_ID``, as Gammapy's).
    """

    DEFAULT_HDU_TABLE = "hdu-index.fits.gz"
    DEFAULT_OBS_TABLE = "obs-index.fits.gz"

    def __init__(self, hdu_table: HDUIndexTable | None = None, obs_table: ObservationTable | None = None):
        if hdu_table is None:
            raise ValueError("DataStore: an HDU index table is required")
        if not isinstance(hdu_table, HDUIndexTable):
            hdu_table = HDUIndexTable(hdu_table, copy=False)
        self.hdu_table: HDUIndexTable = hdu_table
        if obs_table is not None:
            if not isinstance(obs_table, ObservationTable):
                obs_table = ObservationTable(obs_table, copy=False)
            meta = dict(obs_table.meta)
            obs_table = ObservationTable(unique(obs_table, keys="OBS_ID"), copy=False)
            obs_table.meta.update(meta)
        self.obs_table = obs_table
        self._cache = _FileCache()
        self._index: dict[int, dict[str, list[int]]] | None = None

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_dir(
        cls, base_dir: Any, hdu_table_filename: Any = None, obs_table_filename: Any = None
    ) -> DataStore:
        """Data store of a folder with its index tables (Gammapy's ``DataStore.from_dir``).

        Parameters
        ----------
        base_dir : str or Path
            Base folder of the store (``FILE_DIR`` entries are relative to it).
        hdu_table_filename, obs_table_filename : str or Path, optional
            Index files, relative to ``base_dir`` (when they exist there) or absolute / relative to
            the working folder. Default ``hdu-index.fits.gz`` and ``obs-index.fits.gz`` (or the
            uncompressed ``.fits`` when only that exists). Without an observation index the store
            has ``obs_table = None``.
        """
        base_dir = make_path(base_dir)
        if not base_dir.is_dir():
            raise ValueError(f"DataStore.from_dir: {str(base_dir)!r} is not a folder")

        def _resolve(filename: Any, default: str) -> Path:
            if filename:
                path = make_path(filename)
                return base_dir / path if (base_dir / path).exists() else path
            path = base_dir / default
            if not path.exists() and (base_dir / default.removesuffix(".gz")).exists():
                return base_dir / default.removesuffix(".gz")
            return path

        hdu_path = _resolve(hdu_table_filename, cls.DEFAULT_HDU_TABLE)
        if not hdu_path.is_file():
            raise ValueError(f"DataStore.from_dir: HDU index table {str(hdu_path)!r} does not exist")
        hdu_table = HDUIndexTable.read(hdu_path)
        hdu_table.meta["BASE_DIR"] = str(base_dir)

        obs_path = _resolve(obs_table_filename, cls.DEFAULT_OBS_TABLE)
        if obs_table_filename and not obs_path.is_file():
            raise ValueError(f"DataStore.from_dir: observation index table {str(obs_path)!r} does not exist")
        if obs_path.is_file():
            obs_table = ObservationTable.read(obs_path)
        else:
            log.info("Cannot find default obs-index table.")
            obs_table = None
        return cls(hdu_table=hdu_table, obs_table=obs_table)

    @classmethod
    def from_events_files(cls, events_paths: Any, irfs_paths: Any = None) -> DataStore:
        """Data store of event files, its index tables made from their EVENTS headers (Gammapy's
        ``DataStore.from_events_files``).

        Parameters
        ----------
        events_paths : list of str or Path
            Event files (EVENTS and GTI HDUs). The EVENTS header must have ``OBS_ID``, ``TSTART``,
            ``TSTOP``, ``ONTIME``, ``LIVETIME``, ``DEADC`` and ``RA_PNT``/``DEC_PNT`` (or
            ``ALT_PNT``/``AZ_PNT`` with ``OBS_MODE = DRIFT``), and the same time reference
            (``MJDREFI``, ``MJDREFF``, ``TIMEUNIT``, ``TIMESYS``, ``TIMEREF``) in every file.
        irfs_paths : str, Path or list of them, optional
            The IRF file (one for all, or one per event file). By default the file that the
            ``TELESCOP``/``CALDB``/``IRF`` keywords name under ``$CALDB``
            (``$CALDB/data/<telescop>/<caldb>/bcf/<irf>/``) when the header has them, else the
            event file itself.

        The IRF rows of the HDU index are the IRF HDUs found in the IRF file (by ``HDUCLAS2`` /
        ``HDUCLAS4``); Gammapy lists a fixed set (``aeff_2d``, ``edisp_2d``, ``psf_3gauss``,
        ``bkg_3d``) whatever the file holds.
        """
        if isinstance(events_paths, (str, Path)):
            raise TypeError("DataStore.from_events_files: need a list of paths, not a single string or Path")
        events = [make_path(p) for p in events_paths]
        if not events:
            raise ValueError("DataStore.from_events_files: no event file given")
        if irfs_paths is None or isinstance(irfs_paths, (str, Path)):
            irfs: list[Path | None] = [None if irfs_paths is None else make_path(irfs_paths)] * len(events)
        else:
            irfs = [make_path(p) for p in irfs_paths]
            if len(irfs) != len(events):
                raise ValueError(
                    f"DataStore.from_events_files: {len(irfs)} IRF files for {len(events)} event files "
                    "(give one for all, or one per event file)"
                )
        hdu_rows: list[dict[str, Any]] = []
        obs_rows: list[dict[str, Any]] = []
        for events_path, irf_path in zip(events, irfs, strict=True):
            info = _events_info(events_path, irf_path)
            obs_rows.append(info)
            hdu_rows.extend(_hdu_rows(info, events_path))
        time_info = [tuple(str(row[k]) for k in _TIME_KEYWORDS) for row in obs_rows]
        if len(set(time_info)) > 1:
            raise ValueError(
                "DataStore.from_events_files: the time reference of the EVENTS headers differs between "
                f"files ({dict(zip(map(str, events), time_info, strict=True))}; keywords {list(_TIME_KEYWORDS)})"
            )
        hdu_table = HDUIndexTable(rows=[[r[c] for c in _INDEX_COLUMNS] for r in hdu_rows], names=_INDEX_COLUMNS)
        hdu_table.meta.update(_gadf_index_meta("HDU"))
        hdu_table.meta["BASE_DIR"] = ""
        names = list(obs_rows[0])
        obs_table = ObservationTable(rows=[[r[k] for k in names] for r in obs_rows], names=names)
        for name, unit in _OBS_UNITS.items():
            if name in obs_table.colnames:
                obs_table[name].unit = unit
        obs_table.meta.update({k: obs_rows[0][k] for k in _TIME_KEYWORDS if obs_rows[0][k] is not None})
        obs_table.meta.update(_gadf_index_meta("OBS"))
        return cls(hdu_table=hdu_table, obs_table=obs_table)

    @classmethod
    def from_file(cls, filename: Any, hdu_hdu: Any = "HDU_INDEX", hdu_obs: Any = "OBS_INDEX") -> DataStore:
        """Data store of one FITS file holding both index tables."""
        path = make_path(filename)
        hdu_table = HDUIndexTable.read(path, hdu=hdu_hdu)
        obs_table = ObservationTable.read(path, hdu=hdu_obs) if hdu_obs else None
        return cls(hdu_table=hdu_table, obs_table=obs_table)

    # -- summary ---------------------------------------------------------------------------------
    @property
    def obs_ids(self) -> np.ndarray:
        """The sorted unique ``OBS_ID`` of the HDU index table."""
        return np.unique(np.asarray(self.hdu_table["OBS_ID"]).astype(np.int64))

    def info(self, show: bool = True) -> str | None:
        """Print (or return, with ``show=False``) a summary of the index tables."""
        s = "Data store:\n" + self.hdu_table.summary() + "\n\n"
        s += self.obs_table.summary() if self.obs_table is not None else "No observation index table."
        if show:
            print(s)
            return None
        return s

    def __str__(self) -> str:
        return str(self.info(show=False))

    def clear_cache(self) -> None:
        """Forget the IRFs, GTIs, headers and event lists read so far (they are read again when
        needed)."""
        self._cache.clear()

    # -- observations ----------------------------------------------------------------------------
    def _where_index(self) -> str:
        return f"HDU index table {self.hdu_table.meta.get('_FILE', '<table>')!r}"

    def _rows(self, obs_id: int) -> dict[str, list[int]]:
        if self._index is None:
            ids = np.asarray(self.hdu_table["OBS_ID"]).astype(np.int64)
            types = _strings(self.hdu_table["HDU_TYPE"])
            index: dict[int, dict[str, list[int]]] = {}
            for row, (i, t) in enumerate(zip(ids.tolist(), types.tolist(), strict=True)):
                index.setdefault(i, {}).setdefault(t, []).append(row)
            self._index = index
        return self._index.get(int(obs_id), {})

    def _obs_info(self, obs_id: int) -> dict[str, Any]:
        """The observation index row of ``obs_id`` as a dict (with units in ``_units``), or {}."""
        t = self.obs_table
        if t is None:
            return {}
        rows = np.nonzero(np.asarray(t["OBS_ID"]).astype(np.int64) == int(obs_id))[0]
        if rows.size == 0:
            return {}
        row = t[int(rows[0])]
        info: dict[str, Any] = {}
        units: dict[str, str] = {}
        for name in t.colnames:
            value = row[name]
            info[name] = value.item() if isinstance(value, np.generic) else value
            if getattr(t[name], "unit", None) is not None:
                units[name] = str(t[name].unit)
        info["_units"] = units
        info["_meta"] = {k: v for k, v in t.meta.items() if not k.startswith("_")}
        return info

    def obs(
        self, obs_id: int, required_irf: Any = "full-enclosure", require_events: bool = True
    ) -> Observation:
        """The :class:`~jaxgamma.data.Observation` ``obs_id`` (its HDUs are read on first access).

        Parameters
        ----------
        obs_id : int
            Observation id.
        required_irf : str or list of str
            ``"full-enclosure"`` (or ``"full"``: aeff, edisp, psf, bkg), ``"point-like"`` (aeff,
            edisp), ``"all-optional"`` (none), or a list among aeff, edisp, psf, bkg, rad_max.
        require_events : bool
            Whether the events and GTI HDUs are required too.

        Raises
        ------
        ValueError
            ``obs_id`` is not in the HDU index table, a required HDU file does not exist, or
            ``required_irf`` is invalid; :class:`MissingRequiredHDU` (a ValueError) when a required
            HDU is not in the index.
        """
        try:
            obs_id = int(obs_id)
        except (TypeError, ValueError):
            raise ValueError(f"obs_id must be an integer, got {obs_id!r}") from None
        rows = self._rows(obs_id)
        if not rows:
            raise ValueError(f"OBS_ID = {obs_id} not in the {self._where_index()}")
        required = _required_hdus(required_irf)
        if require_events:
            required |= {"events", "gti"}

        locations: dict[str, Any] = {}
        missing = []
        for hdu_type in ALL_HDUS:
            idx = rows.get(hdu_type, [])
            if len(idx) > 1:
                log.warning(
                    f"Found multiple HDU matching: OBS_ID = {obs_id}, HDU_TYPE = {hdu_type}. "
                    "Returning the first entry."
                )
            if idx:
                locations[hdu_type] = self.hdu_table.location_info(idx[0])
            elif hdu_type in required:
                missing.append(hdu_type)
        if missing:
            raise MissingRequiredHDU(
                f"Required HDUs {missing} not found in observation {obs_id} ({self._where_index()})"
            )
        for hdu_type in sorted(required):
            loc = locations[hdu_type]
            if not loc.exists():
                raise ValueError(
                    f"observation {obs_id}: the {hdu_type} HDU {loc.hdu_name!r} (class {loc.hdu_class}) "
                    f"is in file {str(loc.expected_path())!r}, which does not exist ({self._where_index()})"
                )
        from .observation import Observation

        return Observation(
            obs_id=obs_id,
            obs_info=self._obs_info(obs_id),
            _cache=self._cache,
            **locations,
        )

    def get_observations(
        self,
        obs_id: Iterable[int] | None = None,
        skip_missing: bool = False,
        required_irf: Any = "full-enclosure",
        require_events: bool = True,
        selection: Any = None,
    ) -> Observations:
        """The :class:`~jaxgamma.data.Observations` of ``obs_id`` (default: all, by OBS_ID), as
        Gammapy's: ids not in the store raise a ValueError (or are skipped with ``skip_missing``),
        and observations lacking a required HDU in the index are skipped with a log warning.
        ``selection`` is an optional boolean mask over :attr:`obs_ids`."""
        all_ids = self.obs_ids
        if selection is None:
            obs_id_selection = all_ids.tolist()
        else:
            obs_id_selection = sorted(set(np.asarray(all_ids)[np.asarray(selection)].tolist()))
        if obs_id is None:
            ids = obs_id_selection
        else:
            obs_id = [
                int(i) for i in np.atleast_1d(np.asarray(list(obs_id) if not np.isscalar(obs_id) else obs_id))
            ]
            known = set(all_ids.tolist())
            for i in obs_id:
                if i not in known:
                    if skip_missing:
                        log.warning(f"Skipping missing obs_id: {i!r}")
                    else:
                        raise ValueError(f"Missing obs_id: {i!r} (not in the {self._where_index()})")
            keep = set(obs_id_selection)
            ids = [i for i in obs_id if i in keep]
            if len(set(obs_id)) != len(obs_id):
                log.warning(f"List of obs_id is not unique: {obs_id}")
        observations = []
        for i in ids:
            try:
                observations.append(self.obs(i, required_irf, require_events))
            except MissingRequiredHDU as err:
                log.warning(f"Skipping run with missing HDUs; {err}")
        log.info(f"Observations selected: {len(observations)} out of {len(ids)}.")
        from .observation import Observations

        return Observations(observations)

    def select(
        self, obs_ids: Sequence[int] | None = None, cone: dict[str, Any] | None = None, time: Any = None
    ) -> list[int]:
        """Observation ids of the observation index selected as Gammapy's ``Analysis`` does.

        Parameters
        ----------
        obs_ids : list of int, optional
            Keep these ids, in this order (``ObservationTable.select_obs_id``); an id not in the
            table raises a ValueError. None or empty: all rows (sorted by OBS_ID).
        cone : dict, optional
            ``{"frame", "lon", "lat", "radius"}`` (angles as Quantity, Angle, "1 deg" strings or deg;
            optional ``"border"``, default 0): keep pointings closer than radius + border to the
            centre (``select_observations(dict(type="sky_circle", ...))``). None, or a dict whose
            ``lon`` is None: no cone selection (Analysis' default ``obs_cone``).
        time : (start, stop), optional
            astropy Time (or ISO strings): keep observations whose ``[TSTART, TSTOP]`` overlaps the
            interval (``select_time_range(..., partial_overlap=True)``). Gammapy's ``Analysis``
            does not cut the index on time: it crops the observations, ``Observations.select_time``
            (after :meth:`get_observations`); do that for identical results.

        Returns
        -------
        list of int
            The selected ids. Pass them to :meth:`get_observations` (``skip_missing=True`` as the
            Analysis does).
        """
        if self.obs_table is None:
            if cone or time is not None:
                raise ValueError("DataStore.select: the store has no observation index table")
            ids = self.obs_ids.tolist()
            if obs_ids:
                known = set(ids)
                missing = [int(i) for i in obs_ids if int(i) not in known]
                if missing:
                    raise ValueError(f"DataStore.select: OBS_ID {missing} not in the {self._where_index()}")
                return [int(i) for i in obs_ids]
            return ids
        table = self.obs_table
        if obs_ids is not None and len(obs_ids):
            table = table.select_obs_id(list(obs_ids))
        if cone and cone.get("lon") is not None:
            missing_fields = [k for k in ("frame", "lon", "lat", "radius") if cone.get(k) is None]
            if missing_fields:
                raise ValueError(f"DataStore.select: cone fields {missing_fields} are missing")
            table = table.select_observations({"type": "sky_circle", "border": "0 deg", **cone})
        if time is not None:
            if len(time) != 2:
                raise ValueError(f"DataStore.select: time must be (start, stop), got {time!r}")
            table = table.select_time_range((Time(time[0]), Time(time[1])), partial_overlap=True)
        return [int(i) for i in np.asarray(table["OBS_ID"]).astype(np.int64)]
