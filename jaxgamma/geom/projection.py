"""World -> pixel for FITS celestial WCS in pure ``jax.numpy``, and the ICRS <-> Galactic rotation.

The numpy geometry (:class:`~jaxgamma.geom.WcsGeom`) uses astropy for everything that is computed
once. This module is what runs inside a traced likelihood: the pixel position of a point source
whose position is a fit parameter, or the pixel coordinates at which a template map is
interpolated, for traced sky coordinates.

The transform follows the FITS WCS papers (Greisen & Calabretta 2002, Calabretta & Greisen 2002)
and wcslib, which astropy wraps:

1. celestial (lon, lat) -> native spherical (phi, theta): a fixed rotation set by CRVAL, LONPOLE
   and LATPOLE through the Euler angles of wcslib's ``celset`` (computed once in numpy,
   :func:`celestial_euler`). Here it is one 3x3 matrix applied to unit vectors, which is smooth
   everywhere, across lon = 0/360 and at the poles alike;
2. (phi, theta) -> intermediate world coordinates (x, y) in deg, for the projection code;
3. (x, y) -> pixel: the inverse of the CDELT x PC (or CD) matrix, plus CRPIX.

Projections: AZP-free zenithal TAN, SIN (orthographic, no PV), ARC, ZEA, STG; cylindrical CAR,
MER, CEA (PV2_1 = lambda); pseudo-cylindrical SFL (GLS); AIT. Points outside a projection's domain
(the far hemisphere for TAN and SIN, theta = -90 for STG, the poles for MER) give NaN, as
``astropy.wcs.WCS.wcs_world2pix`` does. Pixels are 0-based (numpy convention, ``origin=0``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ICRS_TO_GALACTIC",
    "SUPPORTED_PROJECTIONS",
    "ArrayProjection",
    "WcsProjection",
    "celestial_euler",
    "frame_rotation",
    "lonlat_to_unit",
    "transform_frame",
    "unit_to_lonlat",
]

_R2D = 180.0 / math.pi
_D2R = math.pi / 180.0

# (phi_0, theta_0): native coordinates of the fiducial point, by projection family
_ZENITHAL = ("TAN", "SIN", "ARC", "ZEA", "STG")
_CYLINDRICAL = ("CAR", "MER", "CEA", "SFL", "GLS", "AIT")
SUPPORTED_PROJECTIONS = _ZENITHAL + _CYLINDRICAL

# Rotation matrix taking ICRS unit vectors to Galactic unit vectors: astropy 8.0's ICRS -> FK5(J2000)
# -> Galactic chain, which is a fixed rotation (the test suite checks it against astropy to 1e-15).
ICRS_TO_GALACTIC = np.array(
    [
        [-0.05487565771259163, -0.8734370519556158, -0.4838350736167154],
        [0.4941094371927268, -0.4448297212232952, 0.7469821839866676],
        [-0.8676661375596576, -0.19807633727300053, 0.4559838136873017],
    ]
)

_FRAMES = ("icrs", "galactic")


def frame_rotation(frame_from: str, frame_to: str) -> np.ndarray:
    """3x3 rotation taking unit vectors in ``frame_from`` to ``frame_to`` (icrs or galactic)."""
    for frame in (frame_from, frame_to):
        if frame not in _FRAMES:
            raise ValueError(f"frame must be one of {_FRAMES}, not {frame!r}")
    if frame_from == frame_to:
        return np.eye(3)
    return ICRS_TO_GALACTIC if frame_from == "icrs" else ICRS_TO_GALACTIC.T


def lonlat_to_unit(lon: Any, lat: Any) -> jnp.ndarray:
    """Unit vectors, shape ``(..., 3)``, of (lon, lat) in deg."""
    lon = jnp.asarray(lon) * _D2R
    lat = jnp.asarray(lat) * _D2R
    clat = jnp.cos(lat)
    return jnp.stack([clat * jnp.cos(lon), clat * jnp.sin(lon), jnp.sin(lat)], axis=-1)


def _safe_hypot(a: Any, b: Any) -> Any:
    # hypot with a finite derivative at (0, 0) (the derivative there is taken as 0)
    sq = a * a + b * b
    ok = sq > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)


def unit_to_lonlat(vec: Any) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(lon in [0, 360), lat) in deg of vectors ``(..., 3)``."""
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    lon = jnp.arctan2(y, x) * _R2D
    lon = jnp.where(lon < 0, lon + 360.0, lon)
    lat = jnp.arctan2(z, _safe_hypot(x, y)) * _R2D
    return lon, lat


def transform_frame(lon: Any, lat: Any, frame_from: str, frame_to: str) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Convert (lon, lat) in deg between icrs and galactic (jit- and grad-safe); lon in [0, 360)."""
    if frame_from == frame_to:
        return jnp.asarray(lon), jnp.asarray(lat)
    rot = jnp.asarray(frame_rotation(frame_from, frame_to))
    return unit_to_lonlat(jnp.einsum("ij,...j->...i", rot, lonlat_to_unit(lon, lat)))


# -- celestial rotation (numpy, once) -------------------------------------------------------------
def _sincosd(angle: float) -> tuple[float, float]:
    # sin and cos of an angle in deg, exact at multiples of 90 deg (as wcslib's sincosd)
    rem = math.fmod(angle, 360.0)
    if rem % 90.0 == 0.0:
        quadrant = round(rem / 90.0) % 4
        return ((0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0))[quadrant]
    return math.sin(angle * _D2R), math.cos(angle * _D2R)


def celestial_euler(
    crval: tuple[float, float], lonpole: float, latpole: float, phi0: float, theta0: float
) -> tuple[float, float, float]:
    """Euler angles ``(lon_p, lat_p, phi_p)`` of the native pole, as wcslib's ``celset``.

    ``lon_p, lat_p`` are the celestial coordinates of the native pole and ``phi_p`` the native
    longitude of the celestial pole (deg). ``lonpole`` may be NaN for the FITS default (0 or 180 deg
    plus ``phi0``); ``latpole`` picks between the two solutions when there are two (default 90).
    """
    tol = 1.0e-10
    lng0, lat0 = float(crval[0]), float(crval[1])
    phip = float(lonpole)
    latp = 90.0 if latpole is None or math.isnan(latpole) else float(latpole)

    if math.isnan(phip) or abs(phip) > 360.0:
        phip = (180.0 if lat0 < theta0 else 0.0) + phi0
        if phip < -180.0:
            phip += 360.0
        elif phip > 180.0:
            phip -= 360.0

    if theta0 == 90.0:
        # fiducial point at the native pole
        return lng0, lat0, phip

    slat0, clat0 = _sincosd(lat0)
    sthe0, cthe0 = _sincosd(theta0)
    latpreq = 0
    if phip == phi0:
        sphip, cphip = 0.0, 1.0
        u = theta0
        v = 90.0 - lat0
    else:
        sphip, cphip = _sincosd(phip - phi0)
        x = cthe0 * cphip
        y = sthe0
        z = math.sqrt(x * x + y * y)
        if z == 0.0:
            if slat0 != 0.0:
                raise ValueError("invalid celestial parameters: no solution for the native pole")
            latpreq = 2  # latp determined by LATPOLE alone
            latp = min(max(latp, -90.0), 90.0)
        else:
            slz = slat0 / z
            if abs(slz) > 1.0:
                if abs(slz) - 1.0 < tol:
                    slz = math.copysign(1.0, slz)
                else:
                    raise ValueError("invalid celestial parameters: |sin(lat0)/z| > 1")
            u = math.degrees(math.atan2(y, x))
            v = math.degrees(math.acos(slz))

    if latpreq == 0:
        latp1 = u + v
        if latp1 > 180.0:
            latp1 -= 360.0
        elif latp1 < -180.0:
            latp1 += 360.0
        latp2 = u - v
        if latp2 > 180.0:
            latp2 -= 360.0
        elif latp2 < -180.0:
            latp2 += 360.0
        if abs(latp - latp1) < abs(latp - latp2):
            latp = latp1 if abs(latp1) < 90.0 + tol else latp2
        else:
            latp = latp2 if abs(latp2) < 90.0 + tol else latp1
        if abs(latp) < 90.0 + tol:
            latp = min(max(latp, -90.0), 90.0)

    z = _sincosd(latp)[1] * clat0
    if abs(z) < tol:
        if abs(clat0) < tol:
            lngp = lng0  # celestial pole at the fiducial point
        elif latp > 0.0:
            lngp = lng0 + phip - phi0 - 180.0  # celestial north pole at the native pole
        else:
            lngp = lng0 - phip + phi0  # celestial south pole at the native pole
    else:
        x = (sthe0 - _sincosd(latp)[0] * slat0) / z
        y = sphip * cthe0 / clat0
        if x == 0.0 and y == 0.0:
            raise ValueError("invalid celestial parameters: native pole undefined")
        lngp = lng0 - math.degrees(math.atan2(y, x))

    # celestial longitude of the native pole with the sign of the fiducial point's
    if lng0 >= 0.0:
        if lngp < 0.0:
            lngp += 360.0
        elif lngp > 360.0:
            lngp -= 360.0
    else:
        if lngp > 0.0:
            lngp -= 360.0
        elif lngp < -360.0:
            lngp += 360.0
    return lngp, latp, phip


def native_rotation(lon_p: float, lat_p: float, phi_p: float) -> np.ndarray:
    """3x3 matrix taking celestial unit vectors to native ones (native phi = atan2(y, x))."""
    sa, ca = _sincosd(lon_p)
    st, ct = _sincosd(90.0 - lat_p)
    sp, cp = _sincosd(phi_p)
    rot_lon = np.array([[ca, sa, 0.0], [-sa, ca, 0.0], [0.0, 0.0, 1.0]])
    # wcslib sphs2x: x = sin(lat) sin(t) - cos(lat) cos(t) cos(dlon), y = -cos(lat) sin(dlon),
    # z = sin(lat) cos(t) + cos(lat) sin(t) cos(dlon); phi = phi_p + atan2(y, x)
    tilt = np.array([[-ct, 0.0, st], [0.0, -1.0, 0.0], [st, 0.0, ct]])
    rot_phi = np.array([[cp, -sp, 0.0], [sp, cp, 0.0], [0.0, 0.0, 1.0]])
    return rot_phi @ tilt @ rot_lon


def _as_tuple(a: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(a, dtype=np.float64))


@dataclasses.dataclass(frozen=True)
class WcsProjection:
    """A celestial FITS WCS reduced to constants, with a pure-jnp :meth:`world_to_pixel`.

    Immutable and hashable, so it can be a static field of an ``equinox.Module``: its few
    constants are then compiled in, and a new value of a traced position never retraces.

    Attributes
    ----------
    code : str
        Projection code ("CAR", "TAN", ...).
    frame : str
        Frame of the world coordinates ("icrs" or "galactic").
    rotation : tuple
        3x3 rotation, celestial unit vector -> native unit vector.
    crpix : tuple
        Reference pixel, 0-based (FITS CRPIX - 1).
    pix_matrix : tuple
        2x2 inverse of the CDELT x PC (or CD) matrix: intermediate (x, y) in deg -> pixel offsets.
    cea_lambda : float
        CEA's PV2_1 (1 otherwise).
    """

    code: str
    frame: str
    rotation: tuple
    crpix: tuple
    pix_matrix: tuple
    cea_lambda: float = 1.0

    def __post_init__(self) -> None:
        if self.code not in SUPPORTED_PROJECTIONS:
            raise NotImplementedError(
                f"WCS projection {self.code!r} is not supported in jax; supported: {SUPPORTED_PROJECTIONS}"
            )
        if self.frame not in _FRAMES:
            raise ValueError(f"frame must be one of {_FRAMES}, not {self.frame!r}")

    @classmethod
    def from_wcs(cls, wcs: Any) -> WcsProjection:
        """From a 2D celestial ``astropy.wcs.WCS`` (icrs or galactic)."""
        from astropy.wcs.utils import wcs_to_celestial_frame

        wcs = wcs.celestial
        wcs.wcs.set()
        prm = wcs.wcs
        code = prm.ctype[0][5:].strip() or "CAR"
        if code == "GLS":
            code = "SFL"
        frame = wcs_to_celestial_frame(wcs).name
        if frame not in _FRAMES:
            raise ValueError(f"WCS frame {frame!r} is not supported; use one of {_FRAMES}")
        if prm.lng != 0 or prm.lat != 1:
            raise NotImplementedError("WCS with latitude on the first axis is not supported")
        phi0, theta0 = (0.0, 90.0) if code in _ZENITHAL else (0.0, 0.0)
        cea_lambda = 1.0
        for axis, m, value in prm.get_pv():
            if axis == 2 and code == "CEA" and m == 1:
                cea_lambda = float(value)
            elif axis == 1 and m in (3, 4):
                continue  # LONPOLE / LATPOLE, already in prm.lonpole / prm.latpole
            elif (axis == 1 and m == 1 and value == phi0) or (axis == 1 and m == 2 and value == theta0):
                continue
            elif value != 0.0 or axis == 1:
                raise NotImplementedError(
                    f"WCS with PV{axis}_{m} = {value} (projection parameters / fiducial offset) is not supported"
                )
        phi0, theta0 = (0.0, 90.0) if code in _ZENITHAL else (0.0, 0.0)
        euler = celestial_euler(tuple(prm.crval), prm.lonpole, prm.latpole, phi0, theta0)
        matrix = np.asarray(prm.get_cdelt())[:, None] * np.asarray(prm.get_pc())
        return cls(
            code=code,
            frame=frame,
            rotation=_as_tuple(native_rotation(*euler)),
            crpix=(float(prm.crpix[0]) - 1.0, float(prm.crpix[1]) - 1.0),
            pix_matrix=_as_tuple(np.linalg.inv(matrix)),
            cea_lambda=cea_lambda,
        )

    # -- the traced part -----------------------------------------------------------------------
    def native(self, lon: Any, lat: Any, frame: str | None = None) -> jnp.ndarray:
        """Native unit vectors ``(..., 3)`` of (lon, lat) in deg given in ``frame``."""
        return _native(np.asarray(self.rotation), self.frame, lon, lat, frame)

    def intermediate(self, lon: Any, lat: Any, frame: str | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Intermediate world coordinates (x, y) in deg; NaN outside the projection's domain."""
        return _intermediate(self.code, self.cea_lambda, self.native(lon, lat, frame))

    def world_to_pixel(self, lon: Any, lat: Any, frame: str | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
        """0-based pixel (x, y) of (lon, lat) in deg given in ``frame`` (default: this frame).

        Pure ``jax.numpy``: works under ``jit``, ``grad`` and ``vmap`` with traced coordinates.
        """
        return _to_pixel(self.crpix, self.pix_matrix, *self.intermediate(lon, lat, frame))

    def as_arrays(self) -> ArrayProjection:
        """The same transform with its constants as array leaves (see :class:`ArrayProjection`)."""
        return ArrayProjection(
            rotation=np.asarray(self.rotation, dtype=np.float64),
            crpix=np.asarray(self.crpix, dtype=np.float64),
            pix_matrix=np.asarray(self.pix_matrix, dtype=np.float64),
            code=self.code,
            frame=self.frame,
            cea_lambda=self.cea_lambda,
        )


class ArrayProjection(eqx.Module):
    """:class:`WcsProjection` with its rotation, reference pixel and pixel matrix as array leaves.

    A pytree: projections of the same code and frame stack along a leading axis and ``vmap`` over
    it (datasets cut out of one sky, or pointed elsewhere, evaluated by one compiled program).
    """

    rotation: Any  # (3, 3)
    crpix: Any  # (2,)
    pix_matrix: Any  # (2, 2)
    code: str = eqx.field(static=True)
    frame: str = eqx.field(static=True)
    cea_lambda: float = eqx.field(static=True, default=1.0)

    def world_to_pixel(self, lon: Any, lat: Any, frame: str | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
        """0-based pixel (x, y) of (lon, lat) in deg given in ``frame`` (default: this frame)."""
        native = _native(jnp.asarray(self.rotation), self.frame, lon, lat, frame)
        x, y = _intermediate(self.code, self.cea_lambda, native)
        return _to_pixel(self.crpix, self.pix_matrix, x, y)


def _native(rotation: Any, own_frame: str, lon: Any, lat: Any, frame: str | None) -> jnp.ndarray:
    """Native unit vectors ``(..., 3)`` of (lon, lat) in deg given in ``frame``."""
    if frame is not None and frame != own_frame:
        rotation = rotation @ frame_rotation(frame, own_frame)
    return jnp.einsum("ij,...j->...i", jnp.asarray(rotation), lonlat_to_unit(lon, lat))


def _intermediate(code: str, cea_lambda: float, n: Any) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Intermediate world coordinates (x, y) in deg of native unit vectors ``n``; NaN outside the
    projection's domain."""
    nx, ny, nz = n[..., 0], n[..., 1], n[..., 2]
    rho = _safe_hypot(nx, ny)  # cos(theta)
    nan = jnp.nan
    if code in ("CAR", "MER", "CEA", "SFL", "AIT"):
        phi = jnp.arctan2(ny, nx)  # rad, (-pi, pi]
        theta = jnp.arctan2(nz, rho)
        if code == "CAR":
            return phi * _R2D, theta * _R2D
        if code == "SFL":
            return phi * _R2D * rho, theta * _R2D
        if code == "CEA":
            return phi * _R2D, _R2D * nz / cea_lambda
        if code == "MER":
            ok = jnp.abs(nz) < 1.0
            y = _R2D * jnp.arctanh(jnp.where(ok, nz, 0.0))
            return jnp.where(ok, phi * _R2D, nan), jnp.where(ok, y, nan)
        # AIT
        half = 0.5 * phi
        w = jnp.sqrt(2.0 / (1.0 + rho * jnp.cos(half))) * _R2D
        return 2.0 * w * rho * jnp.sin(half), w * nz
    if code == "TAN":
        ok = nz > 0
        s = jnp.where(ok, nz, 1.0)
        return jnp.where(ok, _R2D * ny / s, nan), jnp.where(ok, -_R2D * nx / s, nan)
    if code == "SIN":
        ok = nz >= 0
        return jnp.where(ok, _R2D * ny, nan), jnp.where(ok, -_R2D * nx, nan)
    if code == "STG":
        ok = nz > -1.0
        s = jnp.where(ok, 1.0 + nz, 1.0)
        return jnp.where(ok, 2.0 * _R2D * ny / s, nan), jnp.where(ok, -2.0 * _R2D * nx / s, nan)
    if code == "ZEA":
        ok = nz > -1.0
        f = _R2D * jnp.sqrt(2.0 / jnp.where(ok, 1.0 + nz, 1.0))
        # theta = -90 projects onto the circle r = 2 r0; its direction is undefined
        return jnp.where(ok, f * ny, nan), jnp.where(ok, -f * nx, nan)
    # ARC: r = 90 - theta (deg) along the direction of phi
    ok = rho > 0
    ratio = jnp.where(ok, jnp.arctan2(rho, nz) / jnp.where(ok, rho, 1.0), 1.0) * _R2D
    return ratio * ny, -ratio * nx


def _to_pixel(crpix: Any, m: Any, x: Any, y: Any) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Intermediate (x, y) in deg -> 0-based pixel (x, y)."""
    px = crpix[0] + m[0][0] * x + m[0][1] * y
    py = crpix[1] + m[1][0] * x + m[1][1] * y
    return px, py
