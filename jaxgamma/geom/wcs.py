"""WCS map geometry (numpy): pixel <-> sky coordinates, solid angles, cutouts, FITS headers.

:class:`WcsGeom` mirrors ``gammapy.maps.WcsGeom`` for regular geometries (one pixel grid for all
non-spatial bins): the same constructors (:meth:`WcsGeom.create`, :meth:`WcsGeom.from_header`), the
same pixel conventions (0-based pixel centres at integers, numpy data order ``(..., lat, lon)``) and
the same per-pixel solid angles and cutouts, so that arrays computed here line up with Gammapy's.
Everything here is computed once, in numpy and astropy, outside the traced likelihood; the traced
world -> pixel transform is :meth:`WcsGeom.projection` (:mod:`jaxgamma.geom.projection`).

A geometry is immutable and hashable (by its WCS keywords, shape and axes), so it can be static
metadata of a dataset or a model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.coordinates import Angle, Longitude, SkyCoord
from astropy.io import fits
from astropy.nddata.utils import overlap_slices
from astropy.wcs import WCS
from astropy.wcs.utils import celestial_frame_to_wcs, proj_plane_pixel_scales, wcs_to_celestial_frame

from .axes import MapAxis, axes_from_table_hdu, axes_to_header
from .projection import WcsProjection

__all__ = ["WcsGeom", "find_map_hdus", "separation_rad", "solid_angle_from_corners"]

_FRAMES = ("icrs", "galactic")
_D2R = np.pi / 180.0


def _check_width(width: Any) -> tuple[float, float]:
    """Width(s) in deg as ``(lon, lat)``: a number, string, Quantity or a pair of them."""
    if isinstance(width, tuple):
        return float(Angle(width[0], "deg").deg), float(Angle(width[1], "deg").deg)
    angle = Angle(width, "deg").deg
    if np.isscalar(angle) or np.ndim(angle) == 0:
        return float(angle), float(angle)
    lon, lat = np.ravel(angle)[:2]
    return float(lon), float(lat)


def _pair(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, tuple | list | np.ndarray):
        if len(value) != 2:
            raise ValueError(f"WcsGeom: {what} must be a scalar or a (lon, lat) pair, got {value!r}")
        return value[0], value[1]
    return value, value


def _round_up_to_odd(x: Any) -> np.ndarray:
    return (np.ceil(x) // 2 * 2 + 1).astype(int)


def _wrap360(lon_deg: np.ndarray) -> np.ndarray:
    # as astropy's Longitude (SkyCoord stores lon wrapped to [0, 360))
    return np.asarray(Longitude(lon_deg, unit="deg").deg)


def separation_rad(lon1, lat1, lon2, lat2):
    """astropy's ``angular_separation`` (Vincenty's formula) in numpy: inputs in deg, result in rad."""
    dlon = (lon2 - lon1) * _D2R
    lat1, lat2 = lat1 * _D2R, lat2 * _D2R
    sdlon, cdlon = np.sin(dlon), np.cos(dlon)
    slat1, slat2 = np.sin(lat1), np.sin(lat2)
    clat1, clat2 = np.cos(lat1), np.cos(lat2)
    num1 = clat2 * sdlon
    num2 = clat1 * slat2 - slat1 * clat2 * cdlon
    denominator = slat1 * slat2 + clat1 * clat2 * cdlon
    return np.arctan2(np.hypot(num1, num2), denominator)


def _position_angle(lon1, lat1, lon2, lat2):
    """astropy's ``position_angle`` (east of north, wrapped to [0, 2 pi)), inputs in deg, rad out."""
    deltalon = (lon2 - lon1) * _D2R
    lat1, lat2 = lat1 * _D2R, lat2 * _D2R
    colat = np.cos(lat2)
    x = np.sin(lat2) * np.cos(lat1) - colat * np.sin(lat1) * np.cos(deltalon)
    y = np.sin(deltalon) * colat
    pa = np.arctan2(y, x)
    two_pi = 360.0 * _D2R
    return np.where(pa < 0, pa - np.floor(pa / two_pi) * two_pi, pa)


def solid_angle_from_corners(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Per-pixel solid angle (sr) from the pixel-corner grid ``(ny + 1, nx + 1)`` in deg.

    Gammapy's ``WcsGeom._solid_angle``: each pixel is split into two planar triangles whose sides
    are great-circle distances and whose angles are differences of position angles; the area is
    ``|1/2 a b sin(C) + 1/2 c d sin(D)|``.
    """
    lon = _wrap360(lon)
    corners = {
        "ll": (lon[:-1, :-1], lat[:-1, :-1]),
        "lr": (lon[1:, :-1], lat[1:, :-1]),
        "ul": (lon[:-1, 1:], lat[:-1, 1:]),
        "ur": (lon[1:, 1:], lat[1:, 1:]),
    }
    ll, lr, ul, ur = corners["ll"], corners["lr"], corners["ul"], corners["ur"]
    low = separation_rad(*ll, *lr)
    left = separation_rad(*ll, *ul)
    up = separation_rad(*ul, *ur)
    right = separation_rad(*lr, *ur)
    angle_low_right = _position_angle(*lr, *ur) - _position_angle(*lr, *ll)
    angle_up_left = _position_angle(*ul, *ur) - _position_angle(*ll, *ul)
    area_low_right = 0.5 * low * right * np.sin(angle_low_right)
    area_up_left = 0.5 * up * left * np.sin(angle_up_left)
    return np.abs(area_low_right + area_up_left)


def _pixel_pair(value: Any, what: str) -> tuple[int, int]:
    """``(x, y)`` non-negative pixel counts from one integer or a pair."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in pair):
        raise ValueError(f"{what} must be a non-negative integer or a pair (x, y) of them, got {value!r}")
    return int(pair[0]), int(pair[1])


class WcsGeom:
    """Regular WCS geometry: a 2D celestial WCS, its pixel shape and non-spatial axes.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        2D celestial WCS (icrs or galactic). It is copied.
    npix : (int, int)
        Number of pixels in lon and lat.
    axes : sequence of MapAxis, optional
        Non-spatial axes, innermost first (numpy data shape is ``axes[::-1] + (ny, nx)``).
    """

    def __init__(self, wcs: WCS, npix: tuple[int, int], axes: Sequence[MapAxis] | None = None):
        wcs = wcs.deepcopy()
        if wcs.naxis != 2 or not wcs.has_celestial:
            raise ValueError("WcsGeom: the WCS must be 2D and celestial")
        wcs.wcs.set()
        frame = wcs_to_celestial_frame(wcs).name
        if frame not in _FRAMES:
            raise ValueError(f"WcsGeom: frame {frame!r} is not supported; use one of {_FRAMES}")
        nx, ny = (int(n) for n in np.ravel(npix)[:2])
        wcs.array_shape = (ny, nx)
        self._wcs = wcs
        self._npix = (nx, ny)
        self._frame = frame
        self._axes = tuple(axes or ())
        names = [a.name for a in self._axes]
        if len(set(names)) != len(names):
            raise ValueError(f"WcsGeom: axis names must be unique, got {names}")
        prm = wcs.wcs
        self._key = (
            tuple(prm.ctype),
            tuple(float(v) for v in prm.crval),
            tuple(float(v) for v in prm.crpix),
            tuple(float(v) for v in prm.get_cdelt()),
            tuple(float(v) for v in np.ravel(prm.get_pc())),
            float(prm.lonpole),
            float(prm.latpole),
            tuple((int(i), int(m), float(v)) for i, m, v in prm.get_pv()),
            self._npix,
            self._axes,
        )

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        npix: Any = None,
        binsz: Any = 0.5,
        proj: str = "CAR",
        frame: str = "icrs",
        refpix: tuple[float, float] | None = None,
        axes: Sequence[MapAxis] | None = None,
        skydir: Any = None,
        width: Any = None,
    ) -> WcsGeom:
        """Geometry from a centre, a pixel size and a width or a number of pixels, as Gammapy's.

        Parameters
        ----------
        npix : int or (int, int), optional
            Number of pixels in (lon, lat); takes precedence over ``width``.
        binsz : float, str, Quantity or a (lon, lat) pair
            Pixel size in deg.
        proj : str
            Projection code ("CAR", "TAN", ...).
        frame : {"icrs", "galactic"}
        refpix : (float, float), optional
            FITS reference pixel (1-based); default the map centre, ``((nx + 1) / 2, (ny + 1) / 2)``.
        axes : sequence of MapAxis, optional
        skydir : SkyCoord or (lon, lat) in deg in ``frame``, optional
            Reference sky position (CRVAL); default (0, 0). A SkyCoord is converted to ``frame``.
        width : float, str, Quantity or a (lon, lat) pair, optional
            Map width in deg; ``npix = rint(width / binsz)``. All-sky when neither npix nor width.
        """
        if frame not in _FRAMES:
            raise ValueError(f"WcsGeom.create: frame must be one of {_FRAMES}, not {frame!r}")
        if skydir is None:
            crval = (0.0, 0.0)
        elif isinstance(skydir, SkyCoord):
            # as Gammapy: the position is converted to ``frame``
            skydir = skydir.transform_to(frame)
            crval = (float(skydir.data.lon.deg), float(skydir.data.lat.deg))
        elif isinstance(skydir, tuple):
            crval = (float(skydir[0]), float(skydir[1]))
        else:
            raise ValueError(f"WcsGeom.create: invalid type for skydir: {type(skydir).__name__}")

        binsz = tuple(float(Angle(b, "deg").deg) for b in _pair(binsz, "binsz"))
        if npix is None and width is None:
            width = (360.0, 180.0)
        if npix is None:
            w = _check_width(width)
            npix = (int(np.rint(w[0] / binsz[0])), int(np.rint(w[1] / binsz[1])))
        else:
            npix = tuple(int(n) for n in _pair(npix, "npix"))
        if refpix is None:
            refpix = ((npix[0] + 1) / 2.0, (npix[1] + 1) / 2.0)

        celestial = SkyCoord(np.nan, np.nan, frame=frame, unit="deg").frame
        wcs = celestial_frame_to_wcs(celestial, projection=proj)
        wcs.wcs.crpix = refpix
        wcs.wcs.crval = crval
        wcs.wcs.cdelt = (-binsz[0], binsz[1])
        wcs.array_shape = npix[1], npix[0]
        wcs.wcs.datfix()
        return cls(wcs, npix, axes=axes)

    @classmethod
    def from_header(
        cls,
        header: fits.Header,
        hdu_bands: fits.BinTableHDU | None = None,
        format: str = "gadf",
        axes: Sequence[MapAxis] | None = None,
    ) -> WcsGeom:
        """Geometry of a FITS image header, with the axes of its bands table (or ``axes``).

        The number of pixels is taken from ``WCSSHAPE`` if present, otherwise ``NAXIS1/2``.
        """
        wcs = WCS(header, naxis=2).sub(2)
        if axes is None:
            axes = axes_from_table_hdu(hdu_bands, format=format)
        if hdu_bands is not None and "NPIX" in hdu_bands.columns.names:
            raise NotImplementedError(
                "WcsGeom: irregular geometries (a different npix per plane) are not supported"
            )
        if "WCSSHAPE" in header:
            shape = [int(v) for v in header["WCSSHAPE"].strip("() ").split(",") if v.strip()]
            npix = (shape[0], shape[1])
        else:
            npix = (header["NAXIS1"], header["NAXIS2"])
        return cls(wcs, npix, axes=axes)

    @classmethod
    def from_hdulist(
        cls, hdulist: fits.HDUList, hdu: str | int | None = None, hdu_bands: str | None = None
    ) -> WcsGeom:
        """Geometry of a map HDU in an open FITS file (bands table found as Gammapy finds it)."""
        image, bands, format = find_map_hdus(hdulist, hdu, hdu_bands)
        return cls.from_header(image.header, bands, format=format)

    # -- basic properties ----------------------------------------------------------------------------
    @property
    def wcs(self) -> WCS:
        """The celestial WCS (do not modify it)."""
        return self._wcs

    @property
    def npix(self) -> tuple[int, int]:
        """Number of pixels (lon, lat)."""
        return self._npix

    @property
    def axes(self) -> tuple[MapAxis, ...]:
        return self._axes

    @property
    def axes_names(self) -> list[str]:
        return ["lon", "lat"] + [a.name for a in self._axes]

    def axis(self, name: str) -> MapAxis:
        for axis in self._axes:
            if axis.name == name:
                return axis
        raise ValueError(f"WcsGeom has no axis {name!r}; axes: {[a.name for a in self._axes]}")

    @property
    def frame(self) -> str:
        return self._frame

    @property
    def footprint(self) -> SkyCoord:
        """The centres of the four corner pixels (Gammapy's ``footprint``: astropy's
        ``calc_footprint``), in the map's frame."""
        corners = self._wcs.calc_footprint(axes=self._npix)
        return SkyCoord(corners, unit="deg", frame=self._frame)

    @property
    def projection(self) -> str:
        """Projection code, e.g. "CAR"."""
        return self._wcs.wcs.ctype[0][5:]

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape of a numpy array on this geometry: ``(axis_n, ..., axis_1, ny, nx)``."""
        return (*(a.nbin for a in reversed(self._axes)), self._npix[1], self._npix[0])

    @property
    def data_shape_image(self) -> tuple[int, int]:
        return (self._npix[1], self._npix[0])

    @property
    def is_image(self) -> bool:
        return not self._axes

    @property
    def cdelt(self) -> tuple[float, float]:
        """``|CDELT|`` (deg), as Gammapy's ``_cdelt`` (1 when the header has a CD matrix)."""
        cdelt = self._wcs.wcs.cdelt
        return (float(abs(cdelt[0])), float(abs(cdelt[1])))

    @property
    def width(self) -> tuple[float, float]:
        """Map width (lon, lat) in deg: ``|CDELT| * npix``."""
        return (self.cdelt[0] * self._npix[0], self.cdelt[1] * self._npix[1])

    @property
    def pixel_scales(self) -> tuple[float, float]:
        """Pixel sizes (deg) along each axis at the reference pixel (``proj_plane_pixel_scales``)."""
        scales = proj_plane_pixel_scales(self._wcs)
        return (float(scales[0]), float(scales[1]))

    @property
    def is_allsky(self) -> bool:
        return bool(np.isclose(self.width[0], 360.0) and np.isclose(self.width[1], 180.0))

    @property
    def center_pix(self) -> tuple[float, float]:
        """0-based pixel coordinates of the map centre."""
        return ((self._npix[0] - 1.0) / 2.0, (self._npix[1] - 1.0) / 2.0)

    @property
    def center_skydir(self) -> SkyCoord:
        return SkyCoord.from_pixel(*self.center_pix, self._wcs)

    @property
    def center_lonlat(self) -> tuple[float, float]:
        """Map centre (lon in [0, 360), lat) in deg in the geometry frame."""
        c = self.center_skydir
        return float(c.data.lon.deg), float(c.data.lat.deg)

    # -- derived geometries ------------------------------------------------------------------------
    def to_image(self) -> WcsGeom:
        return self if not self._axes else WcsGeom(self._wcs, self._npix)

    def to_cube(self, axes: Sequence[MapAxis]) -> WcsGeom:
        return WcsGeom(self._wcs, self._npix, axes=self._axes + tuple(axes))

    def replace_axes(self, axes: Sequence[MapAxis]) -> WcsGeom:
        return WcsGeom(self._wcs, self._npix, axes=axes)

    def upsample(self, factor: int) -> WcsGeom:
        """Each pixel split into ``factor x factor`` (Gammapy's ``upsample``)."""
        return self._resample(1.0 / factor, (self._npix[0] * factor, self._npix[1] * factor))

    def downsample(self, factor: int) -> WcsGeom:
        """``factor x factor`` pixels merged into one (npix must divide)."""
        if self._npix[0] % factor or self._npix[1] % factor:
            raise ValueError(
                f"WcsGeom.downsample: npix {self._npix} not divisible by {factor}; pad the map first "
                "(as Gammapy requires)"
            )
        return self._resample(float(factor), (self._npix[0] // factor, self._npix[1] // factor))

    def pad(self, pad_width: int | tuple[int, int]) -> WcsGeom:
        """``pad_width`` pixels (one value, or ``(x, y)``) added on each side (Gammapy's spatial
        ``pad``): the reference pixel moves with the data, the pixel size is kept."""
        px, py = _pixel_pair(pad_width, "WcsGeom.pad: pad_width")
        return self._shifted((px, py))

    def crop(self, crop_width: int | tuple[int, int]) -> WcsGeom:
        """``crop_width`` pixels (one value, or ``(x, y)``) removed on each side (Gammapy's ``crop``)."""
        cx, cy = _pixel_pair(crop_width, "WcsGeom.crop: crop_width")
        if 2 * cx >= self._npix[0] or 2 * cy >= self._npix[1]:
            raise ValueError(f"WcsGeom.crop: crop_width {(cx, cy)} leaves no pixel of npix {self._npix}")
        return self._shifted((-cx, -cy))

    def _shifted(self, width: tuple[int, int]) -> WcsGeom:
        wcs = self._wcs.deepcopy()
        wcs.wcs.crpix += np.array(width, dtype=float)
        npix = (self._npix[0] + 2 * width[0], self._npix[1] + 2 * width[1])
        return WcsGeom(wcs, npix, axes=self._axes)

    def _resample(self, factor: float, npix: tuple[int, int]) -> WcsGeom:
        wcs = self._wcs.deepcopy()
        wcs.wcs.cdelt *= factor
        wcs.wcs.crpix = (wcs.wcs.crpix - 0.5) / factor + 0.5
        return WcsGeom(wcs, npix, axes=self._axes)

    # -- coordinates --------------------------------------------------------------------------------
    def pix_to_world(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in deg of 0-based pixel coordinates (NaN outside the projection)."""
        lon, lat = self._wcs.wcs_pix2world(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 0)
        return np.asarray(lon), np.asarray(lat)

    def world_to_pix(self, lon: Any, lat: Any, frame: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel coordinates of (lon, lat) in deg, given in ``frame`` (default: the geometry's)."""
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        if frame is not None and frame != self._frame:
            c = SkyCoord(lon, lat, unit="deg", frame=frame).transform_to(self._frame)
            lon, lat = c.data.lon.deg, c.data.lat.deg
        x, y = self._wcs.wcs_world2pix(lon, lat, 0)
        return np.asarray(x), np.asarray(y)

    def get_pix(self, mode: str = "center") -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinate grids (x, y), shape ``(ny, nx)``; ``mode="edges"``: the corners, ``(ny+1, nx+1)``."""
        nx, ny = self._npix
        if mode == "center":
            px, py = np.arange(nx, dtype=float), np.arange(ny, dtype=float)
        elif mode == "edges":
            px, py = np.arange(-0.5, nx, dtype=float), np.arange(-0.5, ny, dtype=float)
        else:
            raise ValueError(f"WcsGeom.get_pix: mode must be 'center' or 'edges', not {mode!r}")
        y, x = np.meshgrid(py, px, indexing="ij")
        return x, y

    def get_coord(self, mode: str = "center", frame: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) grids in deg of pixel centres (or corners, ``mode="edges"``), image shape.

        In the geometry frame the values are those of ``wcs_pix2world``; in another ``frame``
        they are converted with astropy (lon in [0, 360)).
        """
        lon, lat = self.pix_to_world(*self.get_pix(mode))
        if frame is not None and frame != self._frame:
            c = SkyCoord(lon, lat, unit="deg", frame=self._frame).transform_to(frame)
            lon, lat = c.data.lon.deg, c.data.lat.deg
        return lon, lat

    def region_mask(self, regions: Any, inside: bool = True) -> np.ndarray:
        """Image mask of the pixels whose centres lie in any of the circular sky ``regions``
        (``regions.CircleSkyRegion`` objects or DS9 strings), decided in this geometry's pixel
        space as Gammapy's ``WcsGeom.region_mask``; ``inside=False`` inverts it. An exclusion
        mask (True = usable) is ``geom.region_mask(excluded, inside=False)``."""
        from regions import PixCoord

        from .region import RegionGeom

        x, y = self.get_pix()
        mask = RegionGeom.from_regions(regions, wcs=self.wcs).contains_pix(PixCoord(x, y))
        return mask if inside else ~mask

    def solid_angle(self) -> np.ndarray:
        """Per-pixel solid angle (sr), shape ``(ny, nx)``, computed as Gammapy's (see
        :func:`solid_angle_from_corners`). Read-only and cached."""
        return self._solid_angle

    @functools.cached_property
    def _solid_angle(self) -> np.ndarray:
        value = solid_angle_from_corners(*self.get_coord(mode="edges"))
        value.setflags(write=False)
        return value

    def separation(self, lon: float, lat: float, frame: str | None = None) -> np.ndarray:
        """Angular distance (deg) of every pixel centre from (lon, lat), image shape."""
        center = SkyCoord(lon, lat, unit="deg", frame=frame or self._frame)
        lon_c, lat_c = self.get_coord()
        return center.separation(SkyCoord(lon_c, lat_c, unit="deg", frame=self._frame)).deg

    def projection_jax(self) -> WcsProjection:
        """The jax-traceable world -> pixel transform of this geometry."""
        return self._projection

    @functools.cached_property
    def _projection(self) -> WcsProjection:
        return WcsProjection.from_wcs(self._wcs)

    # -- cutouts -------------------------------------------------------------------------------------
    def cutout(
        self, position: Any, width: Any, mode: str = "trim", odd_npix: bool = False, min_npix: int = 1
    ) -> WcsGeom:
        """Cutout geometry around ``position``, as Gammapy's ``WcsGeom.cutout``.

        Parameters
        ----------
        position : SkyCoord or (lon, lat) in deg in the geometry frame
            Centre of the cutout.
        width : float, str, Quantity or a (lon, lat) pair
            Cutout width in deg.
        mode : {"trim", "partial", "strict"}
            As ``astropy.nddata.Cutout2D``: "trim" keeps only the overlap with this geometry,
            "partial" keeps the full requested shape (pixels outside are outside the parent),
            "strict" raises unless the cutout lies fully inside.
        odd_npix : bool
            Round the number of pixels up to an odd number (``ceil(n) // 2 * 2 + 1``).
        min_npix : int
            Minimum number of pixels per side.

        Notes
        -----
        With ``n = max(width / pixel_scales, min_npix)`` (per axis, rounded up to odd when asked),
        the shape is ``int(np.round(n))`` (half to even). The position's pixel ``p`` (0-based) sets
        the first parent index ``ceil(p - shape / 2)``; the overlap with the parent gives the
        slices (:meth:`cutout_slices`), and CRPIX is shifted by the cutout's origin.
        """
        return self._cutout(position, width, mode, odd_npix, min_npix)[0]

    def cutout_info(
        self, position: Any, width: Any, mode: str = "trim", odd_npix: bool = False, min_npix: int = 1
    ) -> tuple[WcsGeom, tuple[slice, slice], tuple[slice, slice]]:
        """``(cutout geometry, parent slices, cutout slices)``; slices are ``(lat, lon)`` in numpy order.

        ``parent_data[..., *parent_slices]`` is the overlap, stored at
        ``cutout_data[..., *cutout_slices]``. Same slices as ``cutout.cutout_slices(self, mode)``.
        """
        return self._cutout(position, width, mode, odd_npix, min_npix)

    def _cutout(self, position, width, mode, odd_npix, min_npix):
        if mode not in ("trim", "partial", "strict"):
            raise ValueError(f"WcsGeom.cutout: mode must be 'trim', 'partial' or 'strict', not {mode!r}")
        if isinstance(position, SkyCoord):
            px, py = (float(v) for v in position.to_pixel(self._wcs, origin=0, mode="all"))
        else:
            px, py = (float(v) for v in self.world_to_pix(position[0], position[1]))
        width_npix = np.clip(np.array(_check_width(width)) / np.array(self.pixel_scales), min_npix, None)
        if odd_npix:
            width_npix = _round_up_to_odd(width_npix)
        shape = (int(np.round(width_npix[1])), int(np.round(width_npix[0])))
        slices_parent, slices_cutout = overlap_slices(self.data_shape_image, shape, (py, px), mode=mode)
        out_shape = shape if mode != "trim" else tuple(s.stop - s.start for s in slices_parent)
        origin = (
            slices_parent[1].start - slices_cutout[1].start,
            slices_parent[0].start - slices_cutout[0].start,
        )
        wcs = self._wcs.deepcopy()
        wcs.wcs.crpix -= origin
        geom = WcsGeom(wcs, (out_shape[1], out_shape[0]), axes=self._axes)
        return geom, slices_parent, slices_cutout

    def cutout_slices(self, parent: WcsGeom, mode: str = "partial") -> dict[str, tuple[slice, slice]]:
        """Slices of this (cutout) geometry in ``parent``, as Gammapy's ``WcsGeom.cutout_slices``.

        Returns ``{"parent-slices": (lat, lon) slices, "cutout-slices": (lat, lon) slices}``.
        """
        px, py = parent.world_to_pix(*self.center_lonlat, frame=self._frame)
        slices = overlap_slices(
            parent.data_shape_image, self.data_shape_image, (float(py), float(px)), mode=mode
        )
        return {"parent-slices": slices[0], "cutout-slices": slices[1]}

    # -- FITS ---------------------------------------------------------------------------------------
    def to_header(self) -> fits.Header:
        """WCS keywords, ``AXCOLSn``/``INTERPn`` of the axes and ``WCSSHAPE``, as Gammapy writes them."""
        header = self._wcs.to_header()
        header.update(axes_to_header(self._axes))
        shape = ",".join(str(n) for n in (*self._npix, *(a.nbin for a in self._axes)))
        header["WCSSHAPE"] = f"({shape})"
        return header

    # -- dunder -------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, WcsGeom) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        lon, lat = self.center_lonlat
        return (
            f"WcsGeom(npix={self._npix}, proj={self.projection!r}, frame={self._frame!r}, "
            f"center=({lon:.4f}, {lat:.4f}) deg, binsz={self.pixel_scales[0]:.4g} deg, "
            f"axes={[a.name for a in self._axes]})"
        )


def find_map_hdus(
    hdulist: fits.HDUList, hdu: str | int | None = None, hdu_bands: str | None = None
) -> tuple[Any, fits.BinTableHDU | None, str]:
    """``(image HDU, bands HDU or None, format)`` of a WCS map file, found as Gammapy finds them.

    The image is ``hdu`` or the first HDU with data; the bands table is ``hdu_bands``, the
    ``BANDSHDU`` header key, or for a cube ``EBOUNDS`` / ``ENERGIES``. The format is
    "fgst-template" for ``ENERGIES``, "fgst-ccube" for ``EBOUNDS`` and "gadf" otherwise.
    """
    if hdu is None:
        image = next((h for h in hdulist if h.data is not None), None)
        if image is None:
            raise ValueError("FITS file has no HDU with data")
    else:
        image = hdulist[hdu]
    if "CTYPE1" not in image.header or isinstance(image, fits.BinTableHDU):
        raise ValueError(f"HDU {image.name!r} is not a WCS image (HEALPix and region maps are not supported)")
    if hdu_bands is None:
        if "BANDSHDU" in image.header:
            hdu_bands = image.header["BANDSHDU"]
        elif image.header.get("NAXIS", None) == 3:
            hdu_bands = next((n for n in ("EBOUNDS", "ENERGIES") if n in hdulist), None)
    bands = None if hdu_bands is None else hdulist[hdu_bands]
    if bands is None:
        format = "gadf"
    elif bands.name == "ENERGIES":
        format = "fgst-template"
    elif bands.name == "EBOUNDS":
        format = "fgst-ccube"
    else:
        format = "gadf"
    return image, bands, format
