"""Region geometry of a spectrum (Gammapy's ``RegionGeom``): circles, and rectangles, ellipses and
circle annuli (the regions of a flux profile).

A spectrum is the events and IRFs of one sky region. As Gammapy does, containment is decided in
the pixel space of a tangent-plane WCS centred on the region (0.1 deg pixels): an event is in a
circle when its pixel distance from the circle's centre is below the radius in pixels (the
``regions`` package's ``CircleSkyRegion.contains(skycoord, wcs)``, which this module uses so that
counts agree event for event). A geometry built from several regions (the OFF regions of a
reflected-regions background) is their union, projected with the WCS it is given. Circles are
tested in a vectorised way; the other shapes with the ``regions`` package's own ``contains``, in
the same pixel space, as Gammapy.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area

from .axes import MapAxis

__all__ = [
    "RegionGeom",
    "make_concentric_annulus_sky_regions",
    "make_orthogonal_rectangle_sky_regions",
    "parse_circle_regions",
    "parse_sky_regions",
]

# the sky-region shapes a RegionGeom holds (each with a centre)
_SHAPES = ("CircleSkyRegion", "RectangleSkyRegion", "EllipseSkyRegion", "CircleAnnulusSkyRegion")
# a RegionGeom also holds points (the ON / OFF positions of a point-like analysis, sized by RAD_MAX)
_GEOM_SHAPES = (*_SHAPES, "PointSkyRegion")


def _regions_module() -> Any:
    try:
        import regions
    except ImportError as err:  # pragma: no cover - a dependency
        raise ImportError("jaxgamma's region geometry needs the 'regions' package (pip install regions)") from err
    return regions


def parse_circle_regions(value: Any, what: str = "region") -> tuple[Any, ...]:
    """Circle sky regions from a ``regions.CircleSkyRegion``, a union of them
    (``CompoundSkyRegion`` with ``|``), a DS9 string (``"galactic;circle(0, 0, 0.11)"``) or a list
    of these. Other shapes are refused with a clear error."""
    return parse_sky_regions(value, what, shapes=("CircleSkyRegion",))


def parse_sky_regions(value: Any, what: str = "region", shapes: Sequence[str] = _SHAPES) -> tuple[Any, ...]:
    """Sky regions (circles, rectangles, ellipses, circle annuli; or only ``shapes``) from a region,
    a union of them (``CompoundSkyRegion`` with ``|``), a DS9 string or a list of these."""
    regions = _regions_module()
    if isinstance(value, str):
        try:
            value = list(regions.Regions.parse(value, format="ds9"))
        except Exception as err:
            raise ValueError(f"{what}: cannot parse the DS9 region string {value!r}: {err}") from None
    items = list(value) if isinstance(value, (list, tuple, regions.Regions)) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, regions.CompoundSkyRegion):
            if item.operator is not np.logical_or and getattr(item.operator, "__name__", "") != "or_":
                raise ValueError(f"{what}: only unions of circles are supported, got operator {item.operator}")
            out.extend(parse_sky_regions([item.region1, item.region2], what, shapes))
        elif type(item).__name__ in shapes:
            out.append(item)
        else:
            names = " or ".join(shapes)
            raise TypeError(f"{what}: expected a {names} (or a union of them), got {type(item).__name__}")
    if not out:
        raise ValueError(f"{what}: no region given")
    return tuple(out)


def _rounded(value: float) -> float:
    """Angles compared to 1e-9 deg: a region read back from a file (pixel -> sky) is the same."""
    return round(float(value), 9) + 0.0


def _is_circle(region: Any) -> bool:
    return type(region).__name__ == "CircleSkyRegion"


def _is_point(region: Any) -> bool:
    return type(region).__name__ == "PointSkyRegion"


def _region_key(region: Any) -> tuple[Any, ...]:
    center = region.center
    key = (
        center.frame.name,
        _rounded(center.spherical.lon.wrap_at("360d").deg % 360.0),
        _rounded(center.spherical.lat.deg),
    )
    if _is_circle(region):
        return (*key, _rounded(region.radius.to_value(u.deg)))
    sizes = tuple(_rounded(u.Quantity(getattr(region, p)).to_value(u.deg)) for p in region._params if p != "center")
    return (type(region).__name__, *key, *sizes)


_SCALE_OFFSET = 1.0  # arcsec: the step of the ``regions`` package's pixel-scale estimate


def _pixel_scale(skycoord: SkyCoord, wcs: WCS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel position and scale (arcsec per pixel) at each coordinate, vectorised: the
    ``regions`` package's ``pixel_scale_angle_at_skycoord`` (a 1 arcsec step to the north)."""
    x, y = wcs.world_to_pixel(skycoord)
    north = skycoord.directional_offset_by(0.0, _SCALE_OFFSET * u.arcsec)
    x_north, y_north = wcs.world_to_pixel(north)
    scale = _SCALE_OFFSET / np.hypot(x_north - x, y_north - y)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(scale, dtype=float)


def circles_to_pixel(circles: Sequence[Any], wcs: WCS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres ``x, y`` and radii (pixels) of sky circles in ``wcs``, as each circle's
    ``to_pixel(wcs)`` computes them, for all circles at once."""
    x, y, scale = (np.zeros(len(circles)) for _ in range(3))
    frames = [c.center.frame.name for c in circles]
    for frame in dict.fromkeys(frames):
        # "north" is the circle's own frame's: circles are grouped by frame
        idx = [i for i, f in enumerate(frames) if f == frame]
        centers = SkyCoord([circles[i].center for i in idx]) if len(idx) > 1 else circles[idx[0]].center.reshape((1,))
        x[idx], y[idx], scale[idx] = _pixel_scale(centers, wcs)
    radii = np.array([c.radius.to_value(u.arcsec) for c in circles]) / scale
    return x, y, radii


def pixel_circles_to_sky(x: Any, y: Any, radius: Any, wcs: WCS) -> list[Any]:
    """Sky circles of pixel circles (centres ``x, y``, radii in pixels) in ``wcs``, as each
    ``CirclePixelRegion.to_sky(wcs)`` computes them, for all circles at once."""
    regions = _regions_module()
    x, y, radius = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, y, radius))
    if x.size == 0:
        return []
    centers = wcs.pixel_to_world(x, y)
    _, _, scale = _pixel_scale(centers, wcs)
    radii = radius * scale
    return [regions.CircleSkyRegion(centers[i], Angle(radii[i], "arcsec")) for i in range(x.size)]


def _tan_wcs(center: SkyCoord, binsz: float, npix: Any) -> WCS:
    """Gammapy's ``WcsGeom.create(skydir=center, binsz, proj="TAN")`` WCS with ``npix`` pixels
    (None: all-sky, Gammapy's default)."""
    from .wcs import WcsGeom

    geom = WcsGeom.create(skydir=center, binsz=binsz, npix=npix, proj="TAN", frame=center.frame.name)
    return geom.wcs


class RegionGeom:
    """Geometry of a spectrum: a sky region (one "pixel") and non-spatial axes, as Gammapy's.

    Parameters
    ----------
    region : sky region, union of them, DS9 string or list
        The region(s): circles, rectangles, ellipses, circle annuli, or points (``PointSkyRegion``:
        the ON / OFF positions of a point-like analysis, whose size is the IRFs' RAD_MAX cut);
        several are combined with a union (points with points only).
    axes : sequence of MapAxis, optional
        Non-spatial axes (the reconstructed ``energy`` axis of a spectrum).
    wcs : astropy.wcs.WCS, optional
        The projection used for containment; by default a TAN projection centred on the region
        with ``binsz_wcs`` pixels, as Gammapy builds it.
    binsz_wcs : str or Quantity
        Default "0.1 deg".
    """

    is_region = True

    def __init__(
        self,
        region: Any,
        axes: Sequence[MapAxis] | None = None,
        wcs: WCS | None = None,
        binsz_wcs: Any = "0.1 deg",
    ):
        self._regions = parse_sky_regions(region, "RegionGeom", shapes=_GEOM_SHAPES)
        points = [_is_point(r) for r in self._regions]
        if any(points) and not all(points):
            raise ValueError("RegionGeom: points (PointSkyRegion) cannot be combined with regions that have an area")
        self._axes = tuple(axes or ())
        for axis in self._axes:
            if not isinstance(axis, MapAxis):
                raise TypeError(f"RegionGeom: axes must be MapAxis objects, got {type(axis).__name__}")
        self._binsz_wcs = float(Angle(binsz_wcs, "deg").deg)
        if wcs is None:
            # as Gammapy: the bounding box of the region's pixels in an all-sky TAN projection at
            # the centre gives the size of the final WCS
            # (each region's pixel bounding box, as the regions package gives it: circles vectorised)
            center = self.center_skydir
            allsky = _tan_wcs(center, self._binsz_wcs, None)
            circles = [r for r in self._regions if _is_circle(r)]
            boxes = [
                (b.ixmin, b.ixmax, b.iymin, b.iymax)
                for b in (r.to_pixel(allsky).bounding_box for r in self._regions if not _is_circle(r))
            ]
            if circles:
                x, y, r = circles_to_pixel(circles, allsky)
                boxes.append((np.floor(x - r + 0.5).min(), np.ceil(x + r + 0.5).max(), np.floor(y - r + 0.5).min(), np.ceil(y + r + 0.5).max()))
            box = np.array(boxes, dtype=float)
            # a point's box is one pixel wide (Gammapy's single-point WCS is 1 x 1)
            nx = max(int(box[:, 1].max() - box[:, 0].min()), 1)
            ny = max(int(box[:, 3].max() - box[:, 2].min()), 1)
            wcs = _tan_wcs(center, self._binsz_wcs, (nx, ny))
        self._wcs = wcs
        self._pixel_circles: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._pixel_others: list[Any] | None = None

    @classmethod
    def create(cls, region: Any, **kwargs: Any) -> RegionGeom:
        """As Gammapy's ``RegionGeom.create(region, axes=..., binsz_wcs=...)``."""
        return cls(region, **kwargs)

    @classmethod
    def from_regions(cls, regions: Any, **kwargs: Any) -> RegionGeom:
        """The union of several regions (Gammapy's ``RegionGeom.from_regions``)."""
        return cls(regions, **kwargs)

    # -- properties ------------------------------------------------------------------------------
    @property
    def regions(self) -> tuple[Any, ...]:
        """The regions (``regions`` sky-region objects) whose union this geometry is."""
        return self._regions

    @property
    def region(self) -> Any:
        """The region: one region, or the union of the regions (``CompoundSkyRegion``)."""
        region = self._regions[0]
        for other in self._regions[1:]:
            region = region | other
        return region

    @property
    def axes(self) -> tuple[MapAxis, ...]:
        return self._axes

    @property
    def axes_names(self) -> list[str]:
        return ["lon", "lat", *[a.name for a in self._axes]]

    def axis(self, name: str) -> MapAxis:
        for a in self._axes:
            if a.name == name:
                return a
        raise KeyError(f"RegionGeom: no axis {name!r} (axes: {[a.name for a in self._axes]})")

    @property
    def wcs(self) -> WCS:
        return self._wcs

    @property
    def binsz_wcs(self) -> Angle:
        return Angle(self._binsz_wcs, "deg")

    @property
    def frame(self) -> str:
        return str(self._regions[0].center.frame.name)

    @property
    def data_shape(self) -> tuple[int, ...]:
        """``(n_axis..., 1, 1)``, as Gammapy's."""
        return (*[a.nbin for a in reversed(self._axes)], 1, 1)

    @property
    def center_skydir(self) -> SkyCoord:
        """The centre: the circle's centre, or for several circles the normalised mean of their
        centres' unit vectors (Gammapy takes the centre of their bounding box; it only names the
        union here, no number depends on it)."""
        if len(self._regions) == 1:
            return self._regions[0].center
        centers = SkyCoord([r.center for r in self._regions])
        vec = centers.cartesian.xyz.value.mean(axis=1)
        lon = np.degrees(np.arctan2(vec[1], vec[0]))
        lat = np.degrees(np.arctan2(vec[2], np.hypot(vec[0], vec[1])))
        return SkyCoord(lon % 360, lat, unit="deg", frame=centers.frame.name)

    @property
    def is_all_point_sky_regions(self) -> bool:
        """Whether the regions are points (a point-like analysis, Gammapy's ``PointSkyRegion``)."""
        return _is_point(self._regions[0])

    # -- geometry --------------------------------------------------------------------------------
    def separation(self, position: SkyCoord) -> Angle:
        """Angular distance between the region centre and ``position``."""
        return self.center_skydir.separation(position)

    def contains(self, skycoord: SkyCoord) -> np.ndarray:
        """Whether each coordinate is inside the region (Gammapy's ``RegionGeom.contains``: in the
        pixel space of :attr:`wcs`)."""
        regions = _regions_module()
        pix = regions.PixCoord.from_sky(skycoord, self._wcs)
        return self.contains_pix(pix)

    def contains_pix(self, pix: Any) -> np.ndarray:
        """Whether each pixel coordinate (a ``regions.PixCoord`` in :attr:`wcs`) is inside: for a
        circle, its pixel distance from the centre below the radius (``CirclePixelRegion.contains``);
        for the other shapes, their pixel region's ``contains``; points contain everything, as in
        Gammapy (their extent is the RAD_MAX cut, applied to the events)."""
        if self.is_all_point_sky_regions:
            return np.ones(np.shape(pix.x), dtype=bool)
        if self._pixel_circles is None:
            self._pixel_circles = circles_to_pixel([r for r in self._regions if _is_circle(r)], self._wcs)
            self._pixel_others = [r.to_pixel(self._wcs) for r in self._regions if not _is_circle(r)]
        cx, cy, radius = self._pixel_circles
        px, py = np.asarray(pix.x, dtype=float), np.asarray(pix.y, dtype=float)
        shape = px.shape
        px, py = px.ravel(), py.ravel()
        inside = np.zeros(px.size, dtype=bool)
        if self._pixel_others:
            regions = _regions_module()
            points = regions.PixCoord(px, py)
            for region in self._pixel_others:
                inside |= np.asarray(region.contains(points), dtype=bool)
        if cx.size == 1:
            inside |= np.hypot(px - cx[0], py - cy[0]) < radius[0]
            return inside.reshape(shape)
        # many circles (OFF regions): test only the points in each circle's x slab
        order = np.argsort(px, kind="stable")
        xs = px[order]
        for i in range(cx.size):
            lo, hi = np.searchsorted(xs, [cx[i] - radius[i] - 1.0, cx[i] + radius[i] + 1.0])
            idx = order[lo:hi]
            inside[idx] |= np.hypot(px[idx] - cx[i], py[idx] - cy[i]) < radius[i]
        return inside.reshape(shape)

    def solid_angle(self) -> u.Quantity:
        """Solid angle of the region (sr): the pixel-space area of the region times the pixel area
        (Gammapy's ``RegionGeom.solid_angle``; a union needs Gammapy's pixel counting and is refused)."""
        if self.is_all_point_sky_regions:
            return u.Quantity(0.0, u.sr)  # Gammapy's: a point has no area
        if len(self._regions) != 1:
            raise NotImplementedError("RegionGeom.solid_angle: the solid angle of a union of regions")
        area = self._regions[0].to_pixel(self._wcs).area
        return (area * proj_plane_pixel_area(self._wcs) * u.deg**2).to(u.sr)

    def to_wcs_geom(self) -> Any:
        """The pixels of :attr:`wcs` that hold the region (Gammapy's ``to_wcs_geom``), with the axes."""
        from .wcs import WcsGeom

        ny, nx = self._wcs.array_shape
        return WcsGeom(self._wcs, (int(nx), int(ny)), axes=self._axes)

    def get_wcs_coord_and_weights(self, factor: int = 10) -> tuple[Any, np.ndarray, np.ndarray]:
        """The image of :meth:`to_wcs_geom`, the mask of its pixels that overlap the region and
        their weights: the fraction of each pixel inside, counted on ``factor x factor``
        sub-pixel centres (Gammapy's ``get_wcs_coord_and_weights`` / ``region_weights``)."""
        image = self.to_wcs_geom().to_image()
        fine = image.upsample(int(factor))
        inside = fine.region_mask(list(self._regions)).astype(float)
        ny, nx = image.data_shape_image
        weights = inside.reshape(ny, factor, nx, factor).mean(axis=(1, 3))
        mask = weights > 0
        return image, mask, weights[mask]

    def to_image(self) -> RegionGeom:
        return RegionGeom(list(self._regions), wcs=self._wcs, binsz_wcs=self.binsz_wcs)

    def to_cube(self, axes: Sequence[MapAxis]) -> RegionGeom:
        return RegionGeom(list(self._regions), axes=[*self._axes, *axes], wcs=self._wcs, binsz_wcs=self.binsz_wcs)

    # -- identity and printing -------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        axes = tuple((a.name, tuple(np.asarray(a.edges, dtype=float).tolist())) for a in self._axes)
        wcs = (
            tuple(self._wcs.wcs.ctype),
            tuple(_rounded(v) for v in self._wcs.wcs.crval),
            tuple(_rounded(v) for v in self._wcs.wcs.cdelt),
            tuple(_rounded(v) for v in self._wcs.wcs.crpix),
        )
        return (tuple(_region_key(r) for r in self._regions), axes, wcs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegionGeom) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        kind = type(self._regions[0]).__name__ if len(self._regions) == 1 else "CompoundSkyRegion"
        center = self.center_skydir.spherical
        shape = (1, 1, *[a.nbin for a in self._axes])
        return (
            "RegionGeom\n\n"
            f"\tregion     : {kind}\n"
            f"\taxes       : {self.axes_names}\n"
            f"\tshape      : {shape}\n"
            f"\tndim       : {len(shape)}\n"
            f"\tframe      : {self.frame}\n"
            f"\tcenter     : {center.lon.deg:.1f} deg, {center.lat.deg:.1f} deg\n"
        )


# -- flux-profile regions (Gammapy's gammapy.utils.regions) ------------------------------------------
def make_orthogonal_rectangle_sky_regions(start_pos: SkyCoord, end_pos: SkyCoord, wcs: WCS, height: Any, nbin: int = 1) -> list[Any]:
    """``nbin`` rectangles along the line from ``start_pos`` to ``end_pos``, each ``height`` tall
    across it, as Gammapy's: centres equally spaced in the pixel space of ``wcs``, width the angular
    length of the line over ``nbin``, rotated by the line's position angle minus 90 deg."""
    regions = _regions_module()
    nbin = int(nbin)
    if nbin < 1:
        raise ValueError(f"make_orthogonal_rectangle_sky_regions: nbin must be >= 1, got {nbin}")
    pix_start = np.array(start_pos.to_pixel(wcs), dtype=float)
    pix_stop = np.array(end_pos.to_pixel(wcs), dtype=float)
    points = np.linspace(start=pix_start, stop=pix_stop, num=nbin + 1).T
    centers = 0.5 * (points[:, :-1] + points[:, 1:])
    coords = SkyCoord.from_pixel(centers[0], centers[1], wcs)
    width = start_pos.separation(end_pos).to("rad") / nbin
    angle = end_pos.position_angle(start_pos) - 90 * u.deg
    return [regions.RectangleSkyRegion(center=c, width=width, height=u.Quantity(height), angle=angle) for c in coords]


def make_concentric_annulus_sky_regions(center: SkyCoord, radius_max: Any, radius_min: Any = 1e-5 * u.deg, nbin: int = 11) -> list[Any]:
    """Circle annuli around ``center`` with radii ``linspace(radius_min, radius_max, nbin)`` (so
    ``nbin - 1`` annuli), as Gammapy's."""
    regions = _regions_module()
    if int(nbin) < 2:
        raise ValueError(f"make_concentric_annulus_sky_regions: nbin (the number of radii) must be >= 2, got {nbin}")
    edges = np.linspace(u.Quantity(radius_min), u.Quantity(radius_max), int(nbin))
    return [
        regions.CircleAnnulusSkyRegion(center=center, inner_radius=r_in, outer_radius=r_out)
        for r_in, r_out in itertools.pairwise(edges)
    ]
