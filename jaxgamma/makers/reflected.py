"""Reflected-regions background (Gammapy 2.1's ``ReflectedRegionsFinder``,
``WobbleRegionsFinder`` and ``ReflectedRegionsBackgroundMaker``).

The OFF regions are copies of the ON region rotated about the pointing position. As Gammapy does,
the search runs in the pixel space of a tangent-plane reference map centred on the pointing
(0.01 deg pixels, 4 times the ON-region offset + 0.3 deg wide, in the ON region's frame): the
first rotation is the ON region's angular size (seen from the pointing, over the pixels whose
centres it contains) plus ``min_distance_input``; a candidate containing an excluded pixel is
moved on by ``angle_increment``, an accepted one by the angular size (plus ``min_distance``),
until the rotation would overlap the ON region again. The OFF counts are the events inside any
OFF region (in that reference map's pixel space), ``acceptance = 1`` and ``acceptance_off`` the
number of OFF regions.

Point-like IRFs (a RAD_MAX cut, :class:`~jaxgamma.irf.RadMax2D`): the ON region is a point
(``PointSkyRegion``) whose size is the cut, or a circle whose radius is a fixed cut. For a point,
``WobbleRegionsFinder`` places point OFF positions (``ReflectedRegionsFinder`` refuses points, as
Gammapy's); they are all dropped when any two of the ON and OFF positions lie closer than twice the
cut in the dataset's energy range, and the OFF counts are the events within the cut of each OFF
position, summed (Gammapy's ``make_counts_off_rad_max``).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord

from ..datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from ..geom import WcsGeom
from ..geom.region import RegionGeom, _regions_module, parse_circle_regions, pixel_circles_to_sky
from .background import _exclusion_on
from .map import _pointing_icrs
from .spectrum import make_region_counts

__all__ = ["ReflectedRegionsBackgroundMaker", "ReflectedRegionsFinder", "WobbleRegionsFinder"]

log = logging.getLogger(__name__)

FULL_CIRCLE = 2 * np.pi


def _angle_rad(value: Any, what: str) -> float:
    try:
        return float(Angle(value, "rad").rad) if not isinstance(value, str) else float(Angle(value).rad)
    except (ValueError, TypeError, u.UnitsError) as err:
        raise ValueError(f"{what}: {value!r} is not an angle ({err})") from None


def _one_circle(region: Any, what: str) -> Any:
    circles = parse_circle_regions(region, what)
    if len(circles) != 1:
        raise ValueError(f"{what}: expected one circular region, got a union of {len(circles)}")
    return circles[0]


def _is_point(region: Any) -> bool:
    return type(region).__name__ == "PointSkyRegion"


def _to_sky(pixel_circles: list[Any], wcs: Any) -> list[Any]:
    """``[c.to_sky(wcs) for c in pixel_circles]``, computed for all circles at once."""
    return pixel_circles_to_sky(
        [c.center.x for c in pixel_circles],
        [c.center.y for c in pixel_circles],
        [c.radius for c in pixel_circles],
        wcs,
    )


class _RegionsFinder:
    """The reference map and pixel helpers shared by the finders."""

    def __init__(self, binsz: Any = "0.01 deg"):
        self.binsz = Angle(binsz, "deg") if not isinstance(binsz, str) else Angle(binsz)
        if self.binsz.deg <= 0:
            raise ValueError(f"{type(self).__name__}: binsz must be positive, got {binsz!r}")

    def _reference_geom(self, region: Any, center: SkyCoord) -> WcsGeom:
        """Gammapy's ``_create_reference_geometry``: TAN at ``center``, 4 x offset + 0.3 deg wide."""
        frame = region.center.frame.name
        offset = float(region.center.separation(center).deg)
        if offset >= 45:  # the map's corners would lie beyond the TAN projection's 90 deg
            raise ValueError(
                f"{type(self).__name__}: the region is {offset:.1f} deg from the center {center}; the reference map "
                "(TAN, 4 x offset + 0.3 deg wide) needs an offset below 45 deg (is the observation pointed elsewhere?)"
            )
        width = 4 * offset + 0.3
        return WcsGeom.create(skydir=center, binsz=self.binsz.deg, width=width, frame=frame, proj="TAN")

    @staticmethod
    def _excluded_pixels(reference: WcsGeom, exclusion_mask: Any) -> Any:
        """Pixel coordinates of the excluded pixels of the reference map (the exclusion mask at the
        nearest pixel, usable outside it, as Gammapy's ``interp_to_geom(fill_value=True)``)."""
        regions = _regions_module()
        if exclusion_mask is None:
            return regions.PixCoord(np.zeros(0), np.zeros(0))
        usable = _exclusion_on(exclusion_mask, reference, fill=True)[0]
        iy, ix = np.nonzero(~usable)
        return regions.PixCoord(ix.astype(float), iy.astype(float))

    @staticmethod
    def _pixel_grid(reference: WcsGeom) -> Any:
        regions = _regions_module()
        nx, ny = reference.npix
        y, x = np.mgrid[0:ny, 0:nx]
        return regions.PixCoord(x.astype(float), y.astype(float))


class ReflectedRegionsFinder(_RegionsFinder):
    """OFF regions reflected about the pointing (Gammapy's ``ReflectedRegionsFinder``).

    Parameters
    ----------
    angle_increment : angle
        Rotation step when a candidate overlaps an excluded pixel. Default "0.1 rad".
    min_distance : angle
        Extra rotation between consecutive OFF regions. Default "0 rad".
    min_distance_input : angle
        Extra rotation between the ON region and the first OFF region. Default "0.1 rad".
    max_region_number : int
        At most this many regions. Default 10000.
    binsz : angle
        Pixel size of the reference map. Default "0.01 deg".
    """

    def __init__(
        self,
        angle_increment: Any = "0.1 rad",
        min_distance: Any = "0 rad",
        min_distance_input: Any = "0.1 rad",
        max_region_number: int = 10000,
        binsz: Any = "0.01 deg",
    ):
        super().__init__(binsz=binsz)
        self.angle_increment = _angle_rad(angle_increment, "ReflectedRegionsFinder: angle_increment")
        if self.angle_increment <= 0:
            raise ValueError("ReflectedRegionsFinder: angle_increment is too small (must be > 0)")
        self.min_distance = _angle_rad(min_distance, "ReflectedRegionsFinder: min_distance")
        self.min_distance_input = _angle_rad(min_distance_input, "ReflectedRegionsFinder: min_distance_input")
        self.max_region_number = int(max_region_number)

    def __repr__(self) -> str:
        return (
            f"ReflectedRegionsFinder(angle_increment={self.angle_increment} rad, min_distance="
            f"{self.min_distance} rad, min_distance_input={self.min_distance_input} rad, "
            f"max_region_number={self.max_region_number}, binsz={self.binsz.deg} deg)"
        )

    @staticmethod
    def _region_angular_size(region_pix: Any, grid: Any, center_pix: Any) -> float:
        """Largest angle (rad) the pixels whose centres are in the region span, seen from the
        centre (angles wrapped to [-2 pi, 0) when the span crosses +-pi, as Gammapy)."""
        inside = np.asarray(region_pix.contains(grid), dtype=bool)
        px, py = grid.x[inside], grid.y[inside]
        if px.size == 0:
            raise ValueError(
                "ReflectedRegionsFinder: the ON region contains no pixel centre of the reference map; "
                "use a smaller binsz"
            )
        angles = np.arctan2(center_pix.x - px, center_pix.y - py)
        size = float(np.max(angles) - np.min(angles))
        if size > np.pi:
            wrapped = np.mod(angles, 2 * np.pi) - 2 * np.pi
            size = float(np.max(wrapped) - np.min(wrapped))
        return size

    def run(self, region: Any, center: SkyCoord, exclusion_mask: Any = None) -> tuple[list[Any], Any]:
        """The reflected regions (``regions.CircleSkyRegion``) of ``region`` about ``center`` and
        the WCS they were found in; no region contains an excluded pixel of ``exclusion_mask``."""
        regions = _regions_module()
        if _is_point(region):
            raise TypeError("ReflectedRegionsFinder does not work with PointSkyRegion. Use WobbleRegionsFinder instead.")
        region = _one_circle(region, "ReflectedRegionsFinder.run")
        reference = self._reference_geom(region, center)
        wcs = reference.wcs
        center_pix = regions.PixCoord.from_sky(center, wcs)
        region_pix = region.to_pixel(wcs)
        if np.hypot(region_pix.center.x - center_pix.x, region_pix.center.y - center_pix.y) <= region_pix.radius:
            log.warning("ReflectedRegionsFinder: the rotation centre lies inside the ON region; no OFF region")
            return [], wcs
        excluded = self._excluded_pixels(reference, exclusion_mask)
        angle_min = self._region_angular_size(region_pix, self._pixel_grid(reference), center_pix)
        angle_min += self.min_distance
        angle_max = FULL_CIRCLE - angle_min - self.min_distance_input
        found: list[Any] = []
        angle = angle_min + self.min_distance_input
        while angle < angle_max:
            test = region_pix.rotate(center_pix, Angle(angle, "rad"))
            if not np.any(test.contains(excluded)):
                found.append(test)
                if len(found) >= self.max_region_number:
                    break
                angle += angle_min
            else:
                angle += self.angle_increment
        return _to_sky(found, wcs), wcs


class WobbleRegionsFinder(_RegionsFinder):
    """``n_off_regions`` OFF regions at equal rotations about the pointing, those containing an
    excluded pixel dropped, none at all if two overlap (Gammapy's ``WobbleRegionsFinder``). A point
    (``PointSkyRegion``, point-like IRFs) gives OFF points, those within one reference-map pixel of
    an excluded pixel dropped; their overlap depends on the RAD_MAX cut and is checked by
    :class:`ReflectedRegionsBackgroundMaker`."""

    def __init__(self, n_off_regions: int, binsz: Any = "0.01 deg"):
        super().__init__(binsz=binsz)
        if int(n_off_regions) < 1:
            raise ValueError(f"WobbleRegionsFinder: n_off_regions must be >= 1, got {n_off_regions}")
        self.n_off_regions = int(n_off_regions)

    def __repr__(self) -> str:
        return f"WobbleRegionsFinder(n_off_regions={self.n_off_regions}, binsz={self.binsz.deg} deg)"

    def run(self, region: Any, center: SkyCoord, exclusion_mask: Any = None) -> tuple[list[Any], Any]:
        regions = _regions_module()
        is_point = _is_point(region)
        if not is_point:
            region = _one_circle(region, "WobbleRegionsFinder.run")
        reference = self._reference_geom(region, center)
        wcs = reference.wcs
        center_pix = regions.PixCoord.from_sky(center, wcs)
        region_pix = region.to_pixel(wcs)
        excluded = self._excluded_pixels(reference, exclusion_mask)
        n_positions = self.n_off_regions + 1
        increment = FULL_CIRCLE / n_positions
        kept = []
        for i in range(1, n_positions):
            test = region_pix.rotate(center_pix, Angle(i * increment, "rad"))
            if exclusion_mask is not None:
                # a point is excluded within one pixel of an excluded pixel, a circle containing one
                near = np.hypot(excluded.x - test.center.x, excluded.y - test.center.y) < 1
                if np.any(near if is_point else test.contains(excluded)):
                    continue
            kept.append(test)
        if is_point:  # their overlap depends on the RAD_MAX cut: checked by the background maker
            return [r.to_sky(wcs) for r in kept], wcs
        grid = self._pixel_grid(reference)
        masks = [np.asarray(r.contains(grid), dtype=bool) for r in kept]
        for a in range(len(masks)):
            for b in range(a + 1, len(masks)):
                if np.any(masks[a] & masks[b]):
                    log.warning("Found overlapping off regions, returning no regions")
                    return [], wcs
        return _to_sky(kept, wcs), wcs


def _check_rad_max_region(rad_max: Any, geom: RegionGeom, rtol: float = 1e-3) -> None:
    """A point-like analysis needs a point ON region, or a circle whose radius is the fixed cut
    (Gammapy's ``is_rad_max_compatible_region_geom``, with its errors)."""
    if geom.is_all_point_sky_regions:
        return
    region = geom.regions[0]
    if len(geom.regions) == 1 and type(region).__name__ == "CircleSkyRegion" and rad_max.is_fixed_rad_max:
        radius = float(region.radius.to_value(u.deg))
        cut = float(rad_max.data.ravel()[0] * u.Unit(rad_max.unit).to(u.deg))
        if not np.isclose(radius, cut, rtol=rtol, atol=0):
            raise ValueError(
                "CircleSkyRegion radius must be equal to RADMAX for point-like IRFs with fixed RADMAX. "
                f"Expected {cut} deg got {radius} deg."
            )
        return
    raise ValueError(
        "Must use `PointSkyRegion` or `CircleSkyRegion` with rad max equivalent radius in point-like "
        f"analysis, got {type(geom.region).__name__} instead"
        + (" (the RAD_MAX cut depends on energy or offset: use a PointSkyRegion)" if not rad_max.is_fixed_rad_max else "")
    )


def _points_overlap(points: list[Any], rad_max: Any, offset: float, energy_bounds: tuple[float, float]) -> bool:
    """Whether two of the ``points`` lie closer than twice the cut at ``offset`` in any cut energy
    bin touching ``energy_bounds`` (Gammapy's ``are_regions_overlapping_rad_max``)."""
    centers = SkyCoord([p.center for p in points])
    sep = centers[:, None].separation(centers[None, :]).deg
    pairs = sep[np.triu_indices(len(points), k=1)]
    cut = np.asarray(rad_max.evaluate(offset=offset), dtype=float)
    energy = rad_max.axes["energy"]
    e_min, e_max = energy_bounds
    edges = energy.edges_in("TeV")
    in_range = (edges[1:] >= e_min) & (edges[:-1] <= e_max)
    cut = cut.reshape(energy.nbin, -1)[in_range]
    return bool(np.any(pairs[np.newaxis, :] < 2 * cut.reshape(-1, 1)))


class ReflectedRegionsBackgroundMaker:
    """ON/OFF spectrum with OFF counts from reflected regions (Gammapy's
    ``ReflectedRegionsBackgroundMaker``).

    Parameters
    ----------
    region_finder : ReflectedRegionsFinder or WobbleRegionsFinder, optional
        By default a :class:`ReflectedRegionsFinder` made with ``**kwargs``.
    exclusion_mask : optional
        Where OFF regions may lie (True = usable): a ``(WcsGeom, bool array)`` pair (as
        :func:`~jaxgamma.makers.background.read_mask` returns), or a map object with ``geom`` and
        ``data`` (e.g. Gammapy's ``WcsNDMap``); extra axes are collapsed (any usable).
    """

    tag = "ReflectedRegionsBackgroundMaker"

    def __init__(self, region_finder: Any = None, exclusion_mask: Any = None, **kwargs: Any):
        if exclusion_mask is not None:
            data = exclusion_mask[1] if isinstance(exclusion_mask, tuple) else getattr(exclusion_mask, "data", None)
            if data is None:
                raise TypeError(
                    "ReflectedRegionsBackgroundMaker: exclusion_mask must be a (WcsGeom, bool array) pair or a "
                    f"map with geom and data, got {type(exclusion_mask).__name__}"
                )
            if np.asarray(data).dtype != bool:
                raise ValueError("ReflectedRegionsBackgroundMaker: exclusion mask must contain boolean values")
        self.exclusion_mask = exclusion_mask
        if region_finder is None:
            self.region_finder = ReflectedRegionsFinder(**kwargs)
        else:
            if kwargs:
                raise ValueError("ReflectedRegionsBackgroundMaker: no kwargs can be given with a region_finder")
            self.region_finder = region_finder

    def __repr__(self) -> str:
        return f"ReflectedRegionsBackgroundMaker(region_finder={self.region_finder!r})"

    def make_counts_off(self, dataset: SpectrumDataset, observation: Any) -> tuple[np.ndarray | None, float]:
        """OFF counts per reconstructed-energy bin and the number of OFF regions (``None, 0`` when
        none is found)."""
        geom = dataset.geom
        if geom is None:
            raise ValueError(
                f"ReflectedRegionsBackgroundMaker: dataset {dataset.name!r} has no ON region (geom); "
                "reduce it with SpectrumDatasetMaker"
            )
        rad_max = observation.rad_max
        is_point = geom.is_all_point_sky_regions
        if rad_max is not None:
            _check_rad_max_region(rad_max, geom)
        elif is_point:
            raise ValueError(
                f"ReflectedRegionsBackgroundMaker: dataset {dataset.name!r} has a point ON region (PointSkyRegion) "
                f"but observation {observation.obs_id} has no RAD_MAX cut (point-like IRFs) to size it"
            )
        regions_off, wcs = self.region_finder.run(
            region=geom.region, center=_pointing_icrs(observation), exclusion_mask=self.exclusion_mask
        )
        events = observation.events
        if is_point and regions_off:
            offset = float(geom.region.center.separation(events.pointing_radec).deg)
            bounds = (float(dataset.energy_axis.edges_in("TeV")[0]), float(dataset.energy_axis.edges_in("TeV")[-1]))
            if _points_overlap([geom.region, *regions_off], rad_max, offset, bounds):
                log.warning("Found overlapping on/off regions, choose less off regions")
                regions_off = []
        if not regions_off:
            log.warning(
                "ReflectedRegionsBackgroundMaker failed. No OFF region found outside exclusion mask "
                f"for dataset '{dataset.name}'."
            )
            return None, 0.0
        if is_point:
            counts_off = np.sum(
                [
                    make_region_counts(geom, events.select_rad_max(rad_max, position=point.center), dataset.energy_axis)
                    for point in regions_off
                ],
                axis=0,
            )
        else:
            geom_off = RegionGeom.from_regions(regions_off, wcs=wcs)
            counts_off = make_region_counts(geom_off, events, dataset.energy_axis)
        return counts_off, float(len(regions_off))

    def run(self, dataset: SpectrumDataset, observation: Any) -> SpectrumDatasetOnOff:
        """The ON/OFF spectrum of ``dataset`` with this observation's reflected-region OFF counts;
        without OFF region, no OFF counts and an all-False safe mask (with a warning), as Gammapy
        does for a spectrum without background. (For one with a background Gammapy derives OFF
        counts 0 with ``acceptance_off = 0`` and keeps its safe mask, so that the dataset, with an
        infinite alpha, enters a stack; it is masked out here.)"""
        if not isinstance(dataset, SpectrumDataset):
            raise TypeError(
                f"ReflectedRegionsBackgroundMaker.run: expected a SpectrumDataset, got {type(dataset).__name__}"
            )
        counts_off, n_off = self.make_counts_off(dataset, observation)
        if counts_off is None and dataset.background is not None:
            # no OFF region: no OFF counts (Gammapy derives zeros from the background with
            # alpha = 1/0 and keeps the dataset; here it is masked out, see run's docstring)
            dataset = cast(SpectrumDataset, dataset.replace(background=None))
        onoff = SpectrumDatasetOnOff.from_spectrum_dataset(
            dataset,
            acceptance=1.0,
            acceptance_off=n_off,
            counts_off=counts_off,
            name=dataset.name,
        )
        if counts_off is None:
            log.warning(f"ReflectedRegionsBackgroundMaker failed. Setting {onoff.name} mask to False.")
            onoff = cast(SpectrumDatasetOnOff, onoff.replace(mask_safe=np.zeros(onoff.n_bins, dtype=bool)))
        return onoff
