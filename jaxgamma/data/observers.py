"""Locations of gamma-ray observatories (Gammapy's ``observatory_locations``): a dict of
:class:`~astropy.coordinates.EarthLocation` by name (``ctao_south``/``cta_south``,
``ctao_north``/``cta_north``, ``hawc``, ``hegra``, ``hess``, ``magic``, ``milagro``, ``veritas``,
``whipple``, ``astri``, ``fact``), with Gammapy 2.1's coordinates."""

from __future__ import annotations

import astropy.units as u
from astropy.coordinates import EarthLocation

__all__ = ["observatory_locations"]

_CTAO_SOUTH = dict(lon="-70d18m58.84s", lat="-24d41m0.34s", height="2150m")
_CTAO_NORTH = dict(lon="-17d53m31.218s", lat="28d45m43.7904s", height="2147m")

observatory_locations: dict[str, EarthLocation] = {
    "ctao_south": EarthLocation(**_CTAO_SOUTH),
    "cta_south": EarthLocation(**_CTAO_SOUTH),
    "ctao_north": EarthLocation(**_CTAO_NORTH),
    "cta_north": EarthLocation(**_CTAO_NORTH),
    "hawc": EarthLocation(lon="-97d18m34s", lat="18d59m48s", height="4100m"),
    "hegra": EarthLocation(lon="28d45m42s", lat="17d53m27s", height="2200m"),
    "hess": EarthLocation(lon="16d30m00.8s", lat="-23d16m18.4s", height="1835m"),
    "magic": EarthLocation(lon="-17d53m24s", lat="28d45m43s", height="2200m"),
    "milagro": EarthLocation(lon="-106.67625d", lat="35.87835d", height="2530m"),
    "veritas": EarthLocation(lon="-110d57m07.77s", lat="31d40m30.21s", height="1268m"),
    "whipple": EarthLocation(lon="-110d52m42s", lat="31d40m52s", height="2606m"),
    "astri": EarthLocation(lon="-16d30m20.99s", lat="28d18m00.0s", height="2370m"),
    "fact": EarthLocation(lat=28.761647 * u.deg, lon=-17.891116 * u.deg, height=2200 * u.m),
}
