"""Observations (``Observation``, ``Observations``) and fixed pointings (``FixedPointingInfo``), as
Gammapy 2.1's ``gammapy.data``.

An :class:`Observation` from a :class:`~jaxgamma.data.DataStore` holds the locations of its HDUs
and reads them on first access through the store's shared cache: the events and GTI (one file in
GADF), the EVENTS header (pointing, dead-time, observatory location) and the IRFs, built by
:func:`jaxgamma.irf.load_irf_hdu`. Times, durations and the pointing follow Gammapy's definitions:

- ``observation_time_duration`` = ``gti.time_sum`` [s] (the header ``ONTIME``, then the index, when
  there is no GTI);
- ``observation_dead_time_fraction`` = ``1 - DEADC`` of the EVENTS header (then of the index; then
  ``1 - LIVETIME / ONTIME``; else 0);
- ``observation_live_time_duration`` = ``ontime x (1 - dead-time fraction)`` [s];
- ``pointing_radec``: the fixed ``RA_PNT``/``DEC_PNT`` of the EVENTS header (then of the index).
"""

from __future__ import annotations

import collections.abc
import copy
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, Angle, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time

from ..irf._irf_base import make_path
from .events import EventList
from .gti import GTI, _header_meta
from .store import HDULocation, _FileCache

__all__ = ["FixedPointingInfo", "Observation", "Observations"]

log = logging.getLogger(__name__)

_HDU_NAMES = ("events", "gti", "aeff", "edisp", "psf", "bkg", "rad_max")
_IRF_NAMES = ("aeff", "edisp", "psf", "bkg", "rad_max")
# HDUCLAS2 of a GADF IRF HDU -> Observation attribute (for Observation.read)
_HDUCLAS2_TO_IRF = {"EFF_AREA": "aeff", "EDISP": "edisp", "RPSF": "psf", "BKG": "bkg", "RAD_MAX": "rad_max"}


def _is_location(value: Any) -> bool:
    return isinstance(value, HDULocation)


def _build_events(hdu: Any, where: str) -> EventList:
    return EventList.from_table_hdu(hdu, where=where)


def _build_gti(hdu: Any, where: str) -> GTI:
    return GTI.from_table_hdu(hdu, where=where)


def _build_header(hdu: Any, where: str) -> dict[str, Any]:
    return _header_meta(hdu.header)


def _irf_builder(hdu_class: str | None) -> Any:
    def build(hdu: Any, where: str) -> Any:
        from ..irf import load_irf_hdu  # imported here: jaxgamma.irf imports the geometry stack

        # the index's HDU_CLASS picks the class, as in Gammapy (else the header's HDUCLAS2/4)
        return load_irf_hdu(hdu, where, hdu_class=hdu_class)

    return build


def earth_location_to_dict(location: EarthLocation) -> dict[str, float]:
    """The ``GEOLON``/``GEOLAT`` [deg] and ``ALTITUDE`` [m] header keywords of a location
    (Gammapy's ``earth_location_to_dict``)."""
    return {
        "GEOLON": float(location.lon.deg),
        "GEOLAT": float(location.lat.deg),
        "ALTITUDE": float(location.height.to_value("m")),
    }


class FixedPointingInfo:
    """Fixed pointing of an observation: an ICRS position (``OBS_MODE = POINTING``, the default) or
    an alt-az one (``DRIFT``), as Gammapy's ``FixedPointingInfo``."""

    def __init__(self, fixed_icrs: SkyCoord | None = None, fixed_altaz: SkyCoord | None = None):
        if (fixed_icrs is None) == (fixed_altaz is None):
            raise ValueError("FixedPointingInfo: give exactly one of fixed_icrs and fixed_altaz")
        if fixed_icrs is not None:
            fixed_icrs = SkyCoord(fixed_icrs).icrs
            if not (np.isfinite(fixed_icrs.ra.deg) and np.isfinite(fixed_icrs.dec.deg)):
                raise ValueError(f"FixedPointingInfo: the ICRS pointing is not finite: {fixed_icrs}")
        self._fixed_icrs: Any = fixed_icrs
        self._fixed_altaz: Any = fixed_altaz

    @property
    def mode(self) -> str:
        """``"POINTING"`` or ``"DRIFT"``."""
        return "POINTING" if self._fixed_icrs is not None else "DRIFT"

    @property
    def fixed_icrs(self) -> SkyCoord | None:
        return self._fixed_icrs

    @property
    def fixed_altaz(self) -> SkyCoord | None:
        return self._fixed_altaz

    @classmethod
    def from_fits_header(cls, header: Any, where: Any = "header") -> FixedPointingInfo:
        """From ``OBS_MODE`` and ``RA_PNT``/``DEC_PNT`` (or ``ALT_PNT``/``AZ_PNT`` for DRIFT)."""
        mode = str(header.get("OBS_MODE", "POINTING")).strip().upper()
        if mode == "DRIFT":
            if "ALT_PNT" not in header or "AZ_PNT" not in header:
                raise ValueError(
                    f"{where}: keywords 'ALT_PNT' and 'AZ_PNT' are required for OBS_MODE = DRIFT"
                )
            return cls(
                fixed_altaz=AltAz(alt=float(header["ALT_PNT"]) * u.deg, az=float(header["AZ_PNT"]) * u.deg)
            )
        if "RA_PNT" not in header or "DEC_PNT" not in header:
            raise ValueError(f"{where}: keywords 'RA_PNT' / 'DEC_PNT' are required for a pointed observation")
        return cls(
            fixed_icrs=SkyCoord(float(header["RA_PNT"]), float(header["DEC_PNT"]), unit="deg", frame="icrs")
        )

    def to_fits_header(self) -> dict[str, Any]:
        """``OBS_MODE`` and the pointing keywords [deg]."""
        if self.mode == "POINTING":
            return {
                "OBS_MODE": "POINTING",
                "RA_PNT": self._fixed_icrs.ra.deg,
                "DEC_PNT": self._fixed_icrs.dec.deg,
            }
        return {"OBS_MODE": "DRIFT", "AZ_PNT": self._fixed_altaz.az.deg, "ALT_PNT": self._fixed_altaz.alt.deg}

    def get_icrs(self, obstime: Time | None = None, location: EarthLocation | None = None) -> SkyCoord:
        """The ICRS pointing (at ``obstime``: needed, with ``location``, in DRIFT mode)."""
        if self.mode == "POINTING":
            return SkyCoord(self._fixed_icrs.data, location=location, obstime=obstime)
        if obstime is None or location is None:
            raise ValueError("FixedPointingInfo.get_icrs() in DRIFT mode requires both obstime and location")
        return self.get_altaz(obstime, location).icrs

    def get_altaz(self, obstime: Time | None = None, location: EarthLocation | None = None) -> SkyCoord:
        """The alt-az pointing at ``obstime`` from ``location``."""
        if obstime is None or location is None:
            raise ValueError("FixedPointingInfo.get_altaz() requires both obstime and location")
        frame = AltAz(location=location, obstime=obstime)
        if self.mode == "POINTING":
            return self._fixed_icrs.transform_to(frame)
        return SkyCoord(alt=self._fixed_altaz.alt, az=self._fixed_altaz.az, frame=frame)

    def __str__(self) -> str:
        coord = self._fixed_icrs if self.mode == "POINTING" else self._fixed_altaz
        return f"FixedPointingInfo:\n\nmode:        {self.mode}\ncoordinates: {coord}\n"


class Observation:
    """One observation: events, GTI, pointing and IRFs, loaded lazily.

    Parameters
    ----------
    obs_id : int, optional
        Observation id.
    gti, events, aeff, edisp, psf, bkg, rad_max : object or HDULocation, optional
        In-memory objects, or the :class:`~jaxgamma.data.HDULocation` to read them from on first
        access.
    pointing : FixedPointingInfo or SkyCoord, optional
        Pointing; default: from the EVENTS header, then the observation index row.
    location : EarthLocation, optional
        Observatory location; default: ``GEOLON``/``GEOLAT``/``GEOALT`` (or ``ALTITUDE``) [m] of the
        EVENTS header, as Gammapy.
    deadtime_fraction : float, optional
        Dead-time fraction; default: ``1 - DEADC`` of the EVENTS header (see the module doc).
    obs_info : dict, optional
        The observation index row (fallbacks for the header quantities).
    """

    def __init__(
        self,
        obs_id: int | None = None,
        gti: Any = None,
        aeff: Any = None,
        edisp: Any = None,
        psf: Any = None,
        bkg: Any = None,
        rad_max: Any = None,
        events: Any = None,
        pointing: Any = None,
        location: EarthLocation | None = None,
        deadtime_fraction: float | None = None,
        obs_info: dict[str, Any] | None = None,
        _cache: _FileCache | None = None,
    ):
        self.obs_id = None if obs_id is None else int(obs_id)
        self._hdus: dict[str, Any] = {
            "events": events,
            "gti": gti,
            "aeff": aeff,
            "edisp": edisp,
            "psf": psf,
            "bkg": bkg,
            "rad_max": rad_max,
        }
        if events is not None and not (_is_location(events) or isinstance(events, EventList)):
            raise TypeError(f"events must be an EventList or an HDULocation, got {type(events).__name__}")
        if gti is not None and not (_is_location(gti) or isinstance(gti, GTI)):
            raise TypeError(f"gti must be a GTI or an HDULocation, got {type(gti).__name__}")
        if isinstance(pointing, SkyCoord):
            pointing = FixedPointingInfo(fixed_icrs=pointing.icrs)
        if pointing is not None and not isinstance(pointing, FixedPointingInfo):
            raise TypeError(
                f"pointing must be a FixedPointingInfo or a SkyCoord, got {type(pointing).__name__}"
            )
        self._pointing = pointing
        self._location = location
        self._deadtime_fraction = None if deadtime_fraction is None else float(deadtime_fraction)
        self._obs_info = dict(obs_info or {})
        if _cache is None and any(_is_location(v) for v in self._hdus.values()):
            _cache = _FileCache()
        self._cache = _cache
        self._time_filter: tuple[Time, Time, bool] | None = None
        self._cached: dict[str, Any] = {}

    # -- loading ---------------------------------------------------------------------------------
    def _where(self, name: str, loc: HDULocation) -> str:
        return (
            f"observation {self.obs_id}: {name} HDU {loc.hdu_name!r} (class {loc.hdu_class}) "
            f"in {str(loc.path())!r}"
        )

    def _request(self, name: str) -> tuple[HDULocation, str, Any, str] | None:
        """``(location, kind, builder, where)`` to read ``name`` (events, gti, header or an IRF)."""
        value = self._hdus["events" if name == "header" else name]
        if not _is_location(value):
            return None
        where = self._where("events" if name == "header" else name, value)
        if name == "events":
            return value, "events", _build_events, where
        if name == "gti":
            return value, "gti", _build_gti, where
        if name == "header":
            return value, "header", _build_header, where
        return value, "irf", _irf_builder(value.hdu_class or None), where

    def _load(self, name: str) -> Any:
        request = self._request(name)
        if request is None:
            return self._header_in_memory() if name == "header" else self._hdus[name]
        siblings = [r for r in (self._request(n) for n in ("header", *_HDU_NAMES)) if r is not None]
        assert self._cache is not None  # set in __init__ whenever an HDU is a location
        return self._cache.load(*request, siblings=siblings)

    def _header_in_memory(self) -> dict[str, Any]:
        events = self._hdus["events"]
        return events.meta if isinstance(events, EventList) else {}

    @property
    def _header(self) -> dict[str, Any]:
        """The EVENTS header (cached), or {} when there are no events."""
        if "header" not in self._cached:
            self._cached["header"] = self._load("header")
        return self._cached["header"]

    @property
    def meta(self) -> dict[str, Any]:
        """The EVENTS header as a dict (empty when there are no events)."""
        return dict(self._header)

    @property
    def obs_info(self) -> dict[str, Any]:
        """The observation index row (a dict; empty outside a data store)."""
        return {k: v for k, v in self._obs_info.items() if not k.startswith("_")}

    def _info_value(self, key: str, unit: str | None = None) -> float | None:
        """A number of the observation index row (converted to ``unit``), or None."""
        if key not in self._obs_info:
            return None
        try:
            value = float(self._obs_info[key])
        except (TypeError, ValueError):
            return None
        col_unit = self._obs_info.get("_units", {}).get(key)
        if unit is not None and col_unit:
            value = u.Quantity(value, col_unit).to_value(unit)
        return value

    # -- HDUs ------------------------------------------------------------------------------------
    @property
    def available_hdus(self) -> list[str]:
        """The HDUs this observation has (in memory or in the index)."""
        return [name for name in _HDU_NAMES if self._hdus[name] is not None]

    @property
    def available_irfs(self) -> list[str]:
        """The IRFs this observation has, among aeff, edisp, psf, bkg, rad_max."""
        return [name for name in self.available_hdus if name in _IRF_NAMES]

    @property
    def events(self) -> EventList | None:
        """The event list (time-filtered when :meth:`select_time` made this observation)."""
        events = self._load("events")
        if events is not None and self._time_filter is not None:
            t0, t1, inverted = self._time_filter
            events = events.select_time((t0, t1), inverted=inverted)
        return events

    @property
    def gti(self) -> GTI | None:
        """The good time intervals (time-filtered when :meth:`select_time` made this observation)."""
        if "gti" not in self._cached:
            self._cached["gti"] = self._load("gti")
        gti = self._cached["gti"]
        if gti is not None and self._time_filter is not None:
            t0, t1, inverted = self._time_filter
            gti = gti.select_time((t0, t1), inverted=inverted)
        return gti

    @property
    def aeff(self) -> Any:
        """Effective area IRF (``jaxgamma.irf``), or None."""
        return self._load("aeff")

    @property
    def edisp(self) -> Any:
        """Energy dispersion IRF, or None."""
        return self._load("edisp")

    @property
    def psf(self) -> Any:
        """PSF IRF, or None."""
        return self._load("psf")

    @property
    def bkg(self) -> Any:
        """Background IRF, or None."""
        return self._load("bkg")

    @property
    def rad_max(self) -> Any:
        """The directional cut of point-like IRFs (:class:`~jaxgamma.irf.RadMax2D`): its own HDU, else
        the fixed cut (``RAD_MAX`` keyword) of a point-like effective area, else of a point-like
        energy dispersion, as Gammapy's ``Observation.rad_max``; None for full-enclosure IRFs."""
        rad_max = self._load("rad_max")
        if rad_max is not None:
            return rad_max
        if "rad_max" not in self._cached:
            from ..irf import RadMax2D

            derived = None
            for name in ("aeff", "edisp"):
                irf = self._load(name)
                if irf is not None and getattr(irf, "is_pointlike", False):
                    try:
                        derived = RadMax2D.from_irf(irf)
                    except ValueError as err:
                        raise ValueError(f"observation {self.obs_id}: {err}") from None
                    break
            self._cached["rad_max"] = derived
        return self._cached["rad_max"]

    # -- pointing and location -------------------------------------------------------------------
    @property
    def pointing(self) -> FixedPointingInfo:
        """The fixed pointing (EVENTS header, then the observation index row)."""
        if self._pointing is None:
            header = self._header
            mode = str(header.get("OBS_MODE", "POINTING")).strip().upper()
            if ("RA_PNT" in header and "DEC_PNT" in header) or mode == "DRIFT":
                where = f"observation {self.obs_id}: EVENTS header"
                self._pointing = FixedPointingInfo.from_fits_header(header, where=where)
            else:
                ra, dec = self._info_value("RA_PNT", "deg"), self._info_value("DEC_PNT", "deg")
                if ra is None or dec is None:
                    raise ValueError(
                        f"observation {self.obs_id}: no pointing: keywords 'RA_PNT'/'DEC_PNT' are neither in "
                        "the EVENTS header nor in the observation index"
                    )
                self._pointing = FixedPointingInfo(fixed_icrs=SkyCoord(ra, dec, unit="deg", frame="icrs"))
        return self._pointing

    @property
    def observatory_earth_location(self) -> EarthLocation | None:
        """Observatory location (``GEOLON``, ``GEOLAT``, ``GEOALT`` or ``ALTITUDE`` taken in m, as
        Gammapy's ``earth_location_from_dict``), or None."""
        if self._location is not None:
            return self._location
        for source in (self._header, self._obs_info.get("_meta", {}), self._obs_info):
            if "GEOLON" in source and "GEOLAT" in source:
                height = source.get("GEOALT", source.get("ALTITUDE"))
                if height is None:
                    continue
                self._location = EarthLocation(
                    lon=Angle(float(source["GEOLON"]), "deg"),
                    lat=Angle(float(source["GEOLAT"]), "deg"),
                    height=u.Quantity(float(height), "m"),
                )
                return self._location
        return None

    @property
    def pointing_radec(self) -> SkyCoord:
        """The fixed ICRS pointing (DRIFT mode: at :attr:`tmid`)."""
        pointing = self.pointing
        if pointing.mode == "POINTING":
            return pointing.fixed_icrs
        return pointing.get_icrs(self.tmid, self.observatory_earth_location)

    def get_pointing_icrs(self, time: Time | None = None) -> SkyCoord:
        """The ICRS pointing at ``time`` (with the observatory location attached), as Gammapy's."""
        return self.pointing.get_icrs(time, self.observatory_earth_location)

    def get_pointing_altaz(self, time: Time) -> SkyCoord:
        """The alt-az pointing at ``time``."""
        return self.pointing.get_altaz(time, self.observatory_earth_location)

    # -- times -----------------------------------------------------------------------------------
    def _header_time(self, key: str) -> Time | None:
        header = self._header
        if key in header and "MJDREFI" in header:
            from .gti import _mjdref, _time_ref, _timesys

            ref = _time_ref(*_mjdref(header, f"observation {self.obs_id}", "EVENTS"), _timesys(header))
            return ref + u.Quantity(float(header[key]), "s")
        value = self._info_value(key, "s")
        meta = self._obs_info.get("_meta", {})
        if value is not None and "MJDREFI" in meta:
            from .gti import _mjdref, _time_ref, _timesys

            ref = _time_ref(*_mjdref(meta, "observation index", "OBS_INDEX"), _timesys(meta))
            return ref + u.Quantity(value, "s")
        return None

    @property
    def tstart(self) -> Time:
        """Start time: the first GTI start (header ``TSTART`` without a GTI)."""
        gti = self.gti
        if gti is not None and len(gti):
            return gti.time_start[0]
        t = self._header_time("TSTART")
        if t is None:
            raise ValueError(f"observation {self.obs_id}: no GTI and no TSTART")
        return t

    @property
    def tstop(self) -> Time:
        """Stop time: the first GTI stop, as Gammapy (header ``TSTOP`` without a GTI)."""
        gti = self.gti
        if gti is not None and len(gti):
            return gti.time_stop[0]
        t = self._header_time("TSTOP")
        if t is None:
            raise ValueError(f"observation {self.obs_id}: no GTI and no TSTOP")
        return t

    @property
    def tmid(self) -> Time:
        """Midpoint of :attr:`tstart` and :attr:`tstop`."""
        tstart = self.tstart
        return tstart + 0.5 * (self.tstop - tstart)

    @property
    def observation_time_duration(self) -> float:
        """Observation (wall) time [s]: the GTI total (header ``ONTIME``, index ``ONTIME`` or
        ``TSTOP - TSTART`` when there is no GTI)."""
        gti = self.gti
        if gti is not None:
            return gti.time_sum
        header = self._header
        if "ONTIME" in header:
            return float(header["ONTIME"])
        ontime = self._info_value("ONTIME", "s")
        if ontime is not None:
            return ontime
        if "TSTART" in header and "TSTOP" in header:
            return float(header["TSTOP"]) - float(header["TSTART"])
        raise ValueError(f"observation {self.obs_id}: no GTI, ONTIME or TSTART/TSTOP to give its duration")

    @property
    def observation_dead_time_fraction(self) -> float:
        """Dead-time fraction: ``1 - DEADC`` (see the module doc for the fallbacks)."""
        if self._deadtime_fraction is not None:
            return self._deadtime_fraction
        header = self._header
        if "DEADC" in header:
            return 1 - float(header["DEADC"])
        deadc = self._info_value("DEADC")
        if deadc is not None:
            return 1 - deadc
        for source in (header, self._obs_info):
            if "LIVETIME" in source and "ONTIME" in source and float(source["ONTIME"]) > 0:
                return 1 - float(source["LIVETIME"]) / float(source["ONTIME"])
        return 0.0

    @property
    def observation_live_time_duration(self) -> float:
        """Live time [s]: ``observation_time_duration x (1 - dead-time fraction)``, as Gammapy."""
        return self.observation_time_duration * (1 - self.observation_dead_time_fraction)

    # -- selection and construction --------------------------------------------------------------
    def select_time(self, time_interval: Any, inverted: bool = False) -> Observation:
        """A new observation restricted to ``time_interval`` = ``[start, stop)`` (astropy Time
        pair): its events and GTI are cut (or, ``inverted``, the parts outside are kept). As in
        Gammapy, the new interval replaces an earlier one."""
        t0, t1 = Time(time_interval[0]), Time(time_interval[1])
        new = copy.copy(self)
        new._hdus = dict(self._hdus)
        new._cached = {k: v for k, v in self._cached.items()}
        new._time_filter = (t0, t1, bool(inverted))
        return new

    def copy(self, in_memory: bool = False, **kwargs: Any) -> Observation:
        """A copy, with any of ``events``, ``gti``, ``aeff``, ``edisp``, ``psf``, ``bkg``,
        ``rad_max``, ``pointing``, ``location``, ``deadtime_fraction`` or ``obs_id`` replaced (as
        Gammapy's ``Observation.copy``). With ``in_memory`` every HDU is read now, so the copy no
        longer refers to files."""
        allowed = {*_HDU_NAMES, "pointing", "location", "deadtime_fraction", "obs_id"}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"Observation.copy: unknown arguments {sorted(unknown)} (allowed: {sorted(allowed)})")
        hdus = {name: (getattr(self, name) if in_memory else self._hdus[name]) for name in _HDU_NAMES}
        if self._time_filter is not None:
            hdus["events"], hdus["gti"] = self.events, self.gti  # the time selection applied
        replaced_header = in_memory or "events" in kwargs
        pointing, deadtime = self._pointing, self._deadtime_fraction
        if replaced_header:  # keep what the old EVENTS header said
            pointing = self.pointing if self._hdus["events"] is not None or self._obs_info else pointing
            deadtime = self.observation_dead_time_fraction
        hdus.update({k: v for k, v in kwargs.items() if k in _HDU_NAMES})
        return type(self)(
            obs_id=kwargs.get("obs_id", self.obs_id),
            pointing=kwargs.get("pointing", pointing),
            location=kwargs.get("location", self.observatory_earth_location),
            deadtime_fraction=kwargs.get("deadtime_fraction", deadtime),
            obs_info=self._obs_info,
            _cache=self._cache if any(_is_location(v) for v in hdus.values()) else None,
            **hdus,
        )

    def write(self, path: Any, overwrite: bool = False, format: str = "gadf", include_irfs: bool = True) -> None:
        """Write the observation to one GADF FITS file (Gammapy's ``Observation.write``): an empty
        primary HDU, ``EVENTS`` (with the pointing keywords), ``GTI`` and, with ``include_irfs``,
        every IRF the observation has; atomically (no half-written file is left behind).
        ``DataStore.from_events_files`` or ``Observation.read`` read it back."""
        from ..io._atomic import atomic_paths, check_writable

        if format != "gadf":
            raise ValueError(f"Observation.write: only the 'gadf' format is supported, got {format!r}")
        hdus: list[Any] = [fits.PrimaryHDU()]
        events = self.events
        if events is not None:
            events_hdu = events.to_table_hdu()
            events_hdu.header.update(self.pointing.to_fits_header())
            if self.obs_id is not None:
                events_hdu.header["OBS_ID"] = self.obs_id
            location = self.observatory_earth_location
            if location is not None and "GEOLON" not in events_hdu.header:
                events_hdu.header.update(earth_location_to_dict(location))
            hdus.append(events_hdu)
        gti = self.gti
        if gti is not None:
            hdus.append(gti.to_table_hdu())
        if include_irfs:
            for name in self.available_irfs:
                irf = getattr(self, name)
                if irf is None:
                    continue
                if not hasattr(irf, "to_table_hdu"):
                    raise ValueError(
                        f"Observation.write: observation {self.obs_id}: the {name} IRF "
                        f"({type(irf).__name__}) cannot be written in GADF DL3 format; use include_irfs=False"
                    )
                hdus.append(irf.to_table_hdu())
        check_writable([path], overwrite)
        with atomic_paths(path, overwrite=overwrite) as (tmp,):
            fits.HDUList(hdus).writeto(tmp, overwrite=True)

    @classmethod
    def read(cls, event_file: Any, irf_file: Any = None) -> Observation:
        """An observation from an events file (EVENTS and GTI HDUs) and an IRF file (default: the
        events file), whose IRF HDUs are found by their ``HDUCLAS2`` (EFF_AREA, EDISP, RPSF, BKG,
        RAD_MAX)."""
        event_path = make_path(event_file)
        irf_path = make_path(irf_file) if irf_file is not None else event_path
        cache = _FileCache()
        kwargs: dict[str, Any] = {}
        for path in {event_path, irf_path}:
            if not path.is_file():
                raise ValueError(f"Observation.read: file {str(path)!r} does not exist")
        try:
            with fits.open(irf_path, memmap=False) as hdulist:
                for hdu in hdulist[1:]:
                    name = _HDUCLAS2_TO_IRF.get(str(hdu.header.get("HDUCLAS2", "")).strip().upper())
                    if name and name not in kwargs:
                        kwargs[name] = HDULocation(
                            hdu_class="",  # the IRF loader reads the class from HDUCLAS2/HDUCLAS4
                            file_dir=str(irf_path.parent),
                            file_name=irf_path.name,
                            hdu_name=hdu.name,
                            hdu_type=name,
                        )
        except OSError as err:
            raise ValueError(
                f"Observation.read: {str(irf_path)!r} is not a readable FITS file: {err}"
            ) from None
        for name, hdu_name in (("events", "EVENTS"), ("gti", "GTI")):
            kwargs[name] = HDULocation(
                hdu_class=name, file_dir=str(event_path.parent), file_name=event_path.name,
                hdu_name=hdu_name, hdu_type=name,
            )  # fmt: skip
        obs = cls(_cache=cache, **kwargs)
        header = obs._header
        if "OBS_ID" in header:
            obs.obs_id = int(header["OBS_ID"])
        return obs

    @classmethod
    def create(
        cls,
        pointing: Any,
        location: EarthLocation | None = None,
        obs_id: int = 0,
        livetime: Any = None,
        tstart: Any = None,
        tstop: Any = None,
        irfs: dict[str, Any] | None = None,
        deadtime_fraction: float = 0.0,
        reference_time: Time | None = None,
    ) -> Observation:
        """An in-memory observation (for simulations), as Gammapy's ``Observation.create``: give
        ``livetime`` or ``tstart``/``tstop`` (Time, or durations since ``reference_time``, default
        2000-01-01 00:00:00 UTC)."""
        if reference_time is None:
            reference_time = Time("2000-01-01 00:00:00")
        if tstart is None:
            tstart = u.Quantity(0.0, "s")  # the reference time, kept exact
        if tstop is None:
            if livetime is None:
                raise ValueError("Observation.create: give livetime or tstop")
            tstop = tstart + u.Quantity(livetime).to("s")
        gti = GTI.create(tstart, tstop, reference_time=reference_time)
        irfs = dict(irfs or {})
        unknown = set(irfs) - set(_IRF_NAMES)
        if unknown:
            raise ValueError(
                f"Observation.create: unknown IRFs {sorted(unknown)} (expected {list(_IRF_NAMES)})"
            )
        return cls(
            obs_id=obs_id,
            gti=gti,
            pointing=pointing,
            location=location,
            deadtime_fraction=deadtime_fraction,
            **irfs,
        )

    def __str__(self) -> str:
        pointing = self.get_pointing_icrs(self.tmid)
        return (
            f"{self.__class__.__name__}\n\n"
            f"\tobs id            : {self.obs_id} \n "
            f"\ttstart            : {self.tstart.mjd:.2f}\n"
            f"\ttstop             : {self.tstop.mjd:.2f}\n"
            f"\tduration          : {self.observation_time_duration:.2f} s\n"
            f"\tpointing (icrs)   : {pointing.ra.deg:.1f} deg, {pointing.dec.deg:.1f} deg\n\n"
            f"\tdeadtime fraction : {self.observation_dead_time_fraction:.1%}\n"
        )

    def __repr__(self) -> str:
        return f"Observation(obs_id={self.obs_id}, hdus={self.available_hdus})"


class Observations(collections.abc.MutableSequence):
    """A list of :class:`Observation` with Gammapy's access by position or by id (``"110380"``)."""

    def __init__(self, observations: Iterable[Observation] | None = None):
        self._observations: list[Observation] = []
        for obs in observations or []:
            self.append(obs)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (list, np.ndarray)) and all(isinstance(x, str) for x in item):
            return self.__class__([self._observations[self.index(x)] for x in item])
        if isinstance(item, slice):
            return self.__class__(self._observations[item])
        if isinstance(item, (list, np.ndarray)):
            arr = np.asarray(item)
            idx = np.nonzero(arr)[0] if arr.dtype == bool else arr.astype(int)
            return self.__class__([self._observations[int(i)] for i in idx])
        return self._observations[self.index(item)]

    def __delitem__(self, key: Any) -> None:
        del self._observations[self.index(key)]

    def __setitem__(self, key: Any, obs: Any) -> None:
        if not isinstance(obs, Observation):
            raise TypeError(f"Invalid type: {type(obs)!r}")
        self._observations[self.index(key)] = obs

    def insert(self, idx: int, obs: Any) -> None:
        if not isinstance(obs, Observation):
            raise TypeError(f"Invalid type: {type(obs)!r}")
        self._observations.insert(idx, obs)

    def __len__(self) -> int:
        return len(self._observations)

    def __str__(self) -> str:
        s = f"{self.__class__.__name__}\nNumber of observations: {len(self)}\n"
        for obs in self:
            s += str(obs)
        return s

    def index(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, (int, np.integer, slice)):
            return key if isinstance(key, slice) else int(key)
        if isinstance(key, str):
            try:
                return self.ids.index(key)
            except ValueError:
                raise ValueError(f"Observations: no observation with id {key!r} (ids: {self.ids})") from None
        if isinstance(key, Observation):
            return self._observations.index(key)
        raise TypeError(f"Invalid type: {type(key)!r}")

    @property
    def ids(self) -> list[str]:
        """Observation ids (as strings, as Gammapy)."""
        return [str(obs.obs_id) for obs in self]

    def select_time(self, time_intervals: Any, inverted: bool = False) -> Observations:
        """The observations overlapping each interval (``tstart <= stop`` and ``tstop > start``),
        restricted to it with :meth:`Observation.select_time`, as Gammapy's."""
        if isinstance(time_intervals, Time):
            time_intervals = [time_intervals]
        new = []
        for interval in time_intervals:
            t0, t1 = Time(interval[0]), Time(interval[1])
            for obs in self:
                if not inverted:
                    if (obs.tstart <= t1) & (obs.tstop > t0):
                        new.append(obs.select_time((t0, t1)))
                elif (obs.tstart > t1) | (obs.tstop < t0):
                    new.append(obs.select_time((t0, t1), inverted))
        return self.__class__(new)

    def group_by_label(self, labels: Sequence[Any]) -> dict[str, Observations]:
        """Split into groups by label: ``{"group_<label>": Observations}``."""
        groups = {}
        for label in np.unique(labels):
            groups[f"group_{label}"] = self.__class__([o for k, o in enumerate(self) if labels[k] == label])
        return groups

    @classmethod
    def from_stack(cls, observations_list: Iterable[Iterable[Observation]]) -> Observations:
        return cls([obs for observations in observations_list for obs in observations])
