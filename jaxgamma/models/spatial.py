"""Spatial models: surface brightness in sr^-1 of sky coordinates (deg) in the model's frame.

Every model has a pure static ``evaluate(lon, lat, **parameters)`` on arrays in degrees, in the
model's ``frame`` ("icrs" or "galactic"); ``__call__`` accepts Quantities or SkyCoords (converted to
the model frame) and returns a Quantity. Each model knows its ``evaluation_radius`` and
``evaluation_bin_size_min`` (deg) as Gammapy does; they decide cutouts and oversampling.
"""

from __future__ import annotations

from typing import Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.coordinates import SkyCoord

from ..parameters import Parameter
from .core import ModelBase, par

__all__ = [
    "SpatialModel",
    "PointSpatialModel",
    "angular_separation",
    "position_angle",
    "FRAMES",
]

FRAMES = ("icrs", "galactic")
_DEG = np.pi / 180.0


def angular_separation(lon1, lat1, lon2, lat2):
    """Great-circle distance (deg) between points given in deg (Vincenty, as astropy)."""
    lon1, lat1, lon2, lat2 = (jnp.asarray(a) * _DEG for a in (lon1, lat1, lon2, lat2))
    sdlon = jnp.sin(lon2 - lon1)
    cdlon = jnp.cos(lon2 - lon1)
    slat1, slat2 = jnp.sin(lat1), jnp.sin(lat2)
    clat1, clat2 = jnp.cos(lat1), jnp.cos(lat2)
    num1 = clat2 * sdlon
    num2 = clat1 * slat2 - slat1 * clat2 * cdlon
    denominator = slat1 * slat2 + clat1 * clat2 * cdlon
    # hypot has an infinite derivative at 0 (a point on the centre); keep it finite there
    sq = num1**2 + num2**2
    safe = sq > 0
    norm = jnp.where(safe, jnp.sqrt(jnp.where(safe, sq, 1.0)), 0.0)
    return jnp.arctan2(norm, denominator) / _DEG


def position_angle(lon1, lat1, lon2, lat2):
    """Position angle (deg, east of north) of point 2 seen from point 1 (as astropy)."""
    lon1, lat1, lon2, lat2 = (jnp.asarray(a) * _DEG for a in (lon1, lat1, lon2, lat2))
    deltalon = lon2 - lon1
    colat = jnp.cos(lat2)
    x = jnp.sin(lat2) * jnp.cos(lat1) - colat * jnp.sin(lat1) * jnp.cos(deltalon)
    y = jnp.sin(deltalon) * colat
    return jnp.arctan2(y, x) / _DEG


def _lonlat_in_frame(lon: Any, lat: Any, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Quantities or a SkyCoord -> float arrays in deg in ``frame``."""
    if isinstance(lon, SkyCoord):
        coord = lon.transform_to(frame)
        sph = coord.spherical
        return sph.lon.to_value("deg"), sph.lat.to_value("deg")
    return u.Quantity(lon, "deg").to_value("deg"), u.Quantity(lat, "deg").to_value("deg")


class SpatialModel(ModelBase):
    """Abstract spatial model in sr^-1.

    Subclasses define ``evaluate(lon, lat, **parameters)`` and the properties
    ``evaluation_radius`` and ``evaluation_bin_size_min`` (deg; None where Gammapy has None).
    """

    frame: str = eqx.field(static=True, default="icrs")
    is_energy_dependent: ClassVar[bool] = False

    def __check_init__(self) -> None:
        if self.frame not in FRAMES:
            raise ValueError(f"{type(self).__name__}: frame must be one of {FRAMES}, not {self.frame!r}")

    @staticmethod
    def evaluate(lon, lat, **parameters):  # pragma: no cover - abstract
        raise NotImplementedError

    def evaluate_lonlat(self, lon: jax.Array, lat: jax.Array) -> jax.Array:
        """sr^-1 at ``lon``, ``lat`` (deg, model frame): the pure array interface."""
        return self.evaluate(lon, lat, **self.values())

    def __call__(self, lon: Any, lat: Any = None) -> u.Quantity | jax.Array:
        """Evaluate at Quantities / a SkyCoord (Quantity out) or at arrays in deg (array out)."""
        if isinstance(lon, (SkyCoord, u.Quantity)):
            lon_deg, lat_deg = _lonlat_in_frame(lon, lat, self.frame)
            return u.Quantity(np.asarray(self.evaluate_lonlat(jnp.asarray(lon_deg), jnp.asarray(lat_deg))), "sr-1")
        return self.evaluate_lonlat(lon, lat)

    @property
    def position_lonlat(self) -> tuple[Any, Any]:
        """``(lon_0, lat_0)`` in deg in the model frame (traced values)."""
        return self.lon_0.value, self.lat_0.value  # type: ignore[attr-defined]

    @property
    def position(self) -> SkyCoord:
        lon, lat = self.position_lonlat
        return SkyCoord(float(lon), float(lat), unit="deg", frame=self.frame)

    @property
    def evaluation_radius(self) -> Any:
        return None

    @property
    def evaluation_bin_size_min(self) -> Any:
        return None


class PointSpatialModel(SpatialModel):
    """Point source at ``(lon_0, lat_0)``.

    It has no surface brightness to evaluate: on a map it is spread bilinearly over the four
    nearest pixels (see the datasets). ``evaluate`` is a Kronecker delta per unit solid angle only
    in that sense and returns 0 away from the position.
    """

    tag = ("PointSpatialModel", "point")
    lon_0: Parameter = par("lon_0", 0.0, "deg")
    lat_0: Parameter = par("lat_0", 0.0, "deg", min=-90.0, max=90.0)

    @staticmethod
    def evaluate(lon, lat, lon_0, lat_0):
        return jnp.zeros(jnp.broadcast_shapes(jnp.shape(lon), jnp.shape(lat)))

    @property
    def evaluation_radius(self) -> Any:
        return 0.0

    @property
    def evaluation_bin_size_min(self) -> Any:
        return 0.0

    @staticmethod
    def grid_weights(x, y, x0, y0):
        """Gammapy's bilinear weights of a point at pixel ``(x0, y0)`` on pixel centres ``x, y``."""
        dx = jnp.maximum(0.0, 1.0 - jnp.abs(x - x0))
        dy = jnp.maximum(0.0, 1.0 - jnp.abs(y - y0))
        return dx * dy
