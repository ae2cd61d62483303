"""Binned maps of one IACT observation (Gammapy 2.1's ``MapDatasetMaker`` and ``makers/utils.py``).

Everything is numpy float64, vectorised over events and pixels; astropy only at the boundaries
(the event ICRS -> Galactic transform, the alt-az frames of a rotating background). The maps follow
Gammapy's formulas:

- **counts**: the events histogrammed into (energy, lat, lon) bins, each coordinate rounded to
  the nearest pixel centre as ``Map.fill_events`` does (the sky position through astropy's
  ``SkyCoord(RA, DEC).transform_to(frame)`` in the precision of the event file, then
  ``wcs_world2pix``; the energy through the axis' log-scale pixel coordinate);
- **exposure**: ``A_eff(E_true, offset) x livetime`` in m2 s at the pixel centres, the offset
  measured from the pointing (stored in cm2 s by :class:`~jaxgamma.datasets.MapDataset`);
- **background**: the background rate integrated over each reconstructed-energy bin with the
  log-log trapezoid (``integrate_log_log``), times the pixel solid angle and the **ontime**;
  3D backgrounds are evaluated at the FoV coordinates of the pixels in the pointing's FoV frame
  (``sky_to_fov``: ``fov_lon`` reversed), AltAz-aligned ones averaged over the field rotation in
  steps of ``fov_rotation_step``;
- **psf**: the PSF IRF at the IRF-grid pixels, normalised along ``rad`` (``sum 2 pi r dr PSF = 1``,
  deg-2), with an exposure map;
- **edisp**: the migration pdf on the IRF's own migra axis, normalised along migra, then turned
  into a kernel on the reconstructed-energy axis (:meth:`~jaxgamma.irf.EDispMap.to_edisp_kernel_map`,
  threshold 1e-8), with an exposure map.

Linear interpolation is separable: along ``offset`` (linear scale, linear values) the IRF
projection is the interpolation, per pixel, between its values at the offset nodes. The energy
dispersion uses this (its kernel is linear in the pdf up to the normalisation), which turns a
(E_true x migra x pixels) evaluation into one per offset node.
"""

from __future__ import annotations

import logging
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.coordinates.matrix_utilities import rotation_matrix
from astropy.table import Table
from astropy.time import Time

from ..datasets.map import EXPOSURE_UNIT, MapDataset
from ..geom import MapAxis, WcsGeom
from ..geom.projection import frame_rotation
from ..geom.wcs import separation_rad
from ..irf import EDispKernelMap, EDispMap, PSFMap
from ..irf._core import _interp1d_k1, axis_center, axis_edges, scale_points, squash_first_axis, upsample_axis
from ..units import parse_unit

__all__ = [
    "MapDatasetMaker",
    "fov_coordinates",
    "make_counts",
    "make_edisp_kernel_map",
    "make_edisp_map",
    "make_map_background_irf",
    "make_map_exposure_true_energy",
    "make_psf_map",
    "pixel_offsets",
]

log = logging.getLogger(__name__)

_FLOAT32_TINY = np.float32(np.finfo(np.float32).tiny)
MINIMUM_TIME_STEP = 1.0
"""Shortest time step (s) of the FoV-rotation averaging (Gammapy's ``MINIMUM_TIME_STEP``)."""
EARTH_ANGULAR_VELOCITY = 360.0 / 86400.0
"""deg/s, as Gammapy's ``EARTH_ANGULAR_VELOCITY`` (360 deg per day)."""


# -- coordinates ---------------------------------------------------------------------------------
def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.deg2rad(lon), np.deg2rad(lat)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)])


def _lonlat(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = vectors
    return np.rad2deg(np.arctan2(y, x)), np.rad2deg(np.arctan2(z, np.hypot(x, y)))


def _as_icrs(pointing: Any) -> tuple[float, float]:
    if not isinstance(pointing, SkyCoord):
        raise TypeError(f"the pointing must be a SkyCoord, got {type(pointing).__name__}")
    c = pointing.icrs
    return float(c.ra.deg), float(c.dec.deg)


def _fov_matrix(lon_deg: float, lat_deg: float) -> np.ndarray:
    """astropy's rotation into a FoV frame centred on (lon, lat) with the longitude reversed
    (Gammapy's ``icrs_to_fov_icrs``: ``reflect_lon @ R_y(-lat) @ R_z(lon)``)."""
    reflect = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
    return reflect @ rotation_matrix(-lat_deg * u.deg, "y") @ rotation_matrix(lon_deg * u.deg, "z")


def fov_coordinates(geom: WcsGeom, pointing: SkyCoord) -> tuple[np.ndarray, np.ndarray]:
    """``(fov_lon, fov_lat)`` (deg, image shape) of ``geom``'s pixel centres in the ICRS-aligned
    FoV frame of ``pointing`` (Gammapy's ``FoVICRSFrame``; ``fov_lon`` is reversed, i.e. it grows
    towards decreasing RA), computed with the same rotations as astropy (to ~1e-12 deg)."""
    lon, lat = geom.get_coord()
    vectors = _unit_vectors(lon, lat)
    matrix = _fov_matrix(*_as_icrs(pointing)) @ frame_rotation(geom.frame, "icrs")
    return _lonlat(np.einsum("ij,j...->i...", matrix, vectors))


def pixel_offsets(geom: WcsGeom, pointing: SkyCoord) -> np.ndarray:
    """Angular distance (deg, image shape) of ``geom``'s pixel centres from ``pointing``, as
    astropy's ``SkyCoord.separation`` computes it from the pixels (Vincenty's formula in the
    geometry's frame)."""
    lon, lat = geom.get_coord()
    c = pointing.transform_to(geom.frame)
    return np.rad2deg(separation_rad(lon, lat, float(c.data.lon.deg), float(c.data.lat.deg)))


def _broadcast_axis(values: np.ndarray, position: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[position] = -1
    return np.asarray(values, dtype=np.float64).reshape(shape)


# -- counts --------------------------------------------------------------------------------------
def _event_precision(events: Any, column: str, values: np.ndarray, unit: str = "deg") -> np.ndarray:
    """An event column in the precision Gammapy computes with: the stored float32 column when the
    event list keeps one in ``unit`` (DL3 files store RA, DEC and ENERGY as float32; converting to
    float64 first moves galactic positions by up to 2e-5 deg and changes bin assignments), else
    ``values`` in float64."""
    table = getattr(events, "table", None)
    if table is not None and column in getattr(table, "colnames", ()):
        stored = table[column]
        col_unit = getattr(stored, "unit", None)
        data = np.asarray(stored)
        if data.dtype == np.float32 and (col_unit is None or parse_unit(str(col_unit)) == parse_unit(unit)):
            return data.astype(np.float32)
    return np.asarray(values, dtype=np.float64)


def _energy_pixel_index(axis: MapAxis, energy: np.ndarray) -> np.ndarray:
    """Gammapy's ``geom.coord_to_idx`` along an energy axis: the pixel coordinate through the
    axis' scale (in the values' precision, as ``LogScale``), rounded with ``floor(p + 0.5)``;
    -1 outside."""
    nodes = scale_points(np.asarray(axis.nodes, dtype=np.float64), axis.interp)
    if axis.interp == "log":
        if energy.dtype == np.float32:
            scaled = np.log(np.clip(energy, _FLOAT32_TINY, np.float32(np.inf)))
        else:
            scaled = np.log(np.clip(energy, np.finfo(np.float64).tiny, np.inf))
    else:
        scaled = scale_points(energy.astype(np.float64), axis.interp)
    y = np.arange(len(nodes), dtype=float)
    if len(nodes) > 1 and nodes[0] > nodes[-1]:
        nodes, y = nodes[::-1], y[::-1]
    pix = _interp1d_k1(nodes, y, scaled.astype(np.float64)) + (-0.5 if axis.node_type == "edges" else 0.0)
    with np.errstate(invalid="ignore"):
        idx = np.floor(pix + 0.5)
        bad = ~np.isfinite(idx) | (idx < 0) | (idx >= axis.nbin)
    return np.where(bad, -1, np.nan_to_num(idx, nan=-1)).astype(np.int64)


def event_skycoord(events: Any) -> SkyCoord:
    """The events' ICRS positions in the precision Gammapy computes with (float32 columns)."""
    ra = _event_precision(events, "RA", events.ra)
    dec = _event_precision(events, "DEC", events.dec)
    return SkyCoord(ra, dec, unit="deg", frame="icrs")


def event_energy_index(events: Any, axis: MapAxis) -> np.ndarray:
    """Each event's bin on the energy ``axis`` (-1 outside), as Gammapy's ``coord_to_idx``."""
    axis_unit = axis.unit or "TeV"
    energy = np.asarray(events.energy, dtype=np.float64)
    if parse_unit(axis_unit) != u.TeV:
        energy = (energy * u.TeV).to_value(parse_unit(axis_unit))
    return _energy_pixel_index(axis, _event_precision(events, "ENERGY", energy, unit=axis_unit))


def make_counts(geom: WcsGeom, events: Any) -> np.ndarray:
    """Counts cube ``(energy, lat, lon)`` of an event list on ``geom`` (Gammapy's
    ``Map.fill_events``): events outside the geometry are dropped."""
    if len(geom.axes) != 1:
        raise ValueError(
            f"make_counts: the geometry must have exactly one energy axis, got {geom.axes_names}"
        )
    sky = event_skycoord(events)
    if geom.frame != "icrs":
        sky = sky.transform_to(geom.frame)
    x, y = geom.wcs.wcs_world2pix(sky.data.lon.deg, sky.data.lat.deg, 0)
    nx, ny = geom.npix
    with np.errstate(invalid="ignore"):
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
        valid = np.isfinite(ix) & np.isfinite(iy) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ie = event_energy_index(events, geom.axes[0])
    valid &= ie >= 0
    flat = np.ravel_multi_index(
        (ie[valid], iy[valid].astype(np.int64), ix[valid].astype(np.int64)), geom.data_shape
    )
    return (
        np.bincount(flat, minlength=int(np.prod(geom.data_shape))).reshape(geom.data_shape).astype(np.float64)
    )


# -- exposure, PSF and energy dispersion ---------------------------------------------------------
def make_map_exposure_true_energy(
    pointing: SkyCoord, livetime: float, aeff: Any, geom: WcsGeom, offsets: np.ndarray | None = None
) -> np.ndarray:
    """Exposure ``A_eff(E_true, offset) x livetime`` (m2 s) on ``geom`` (axes: one true-energy
    axis), shape ``geom.data_shape`` (Gammapy's ``make_map_exposure_true_energy``)."""
    axis = geom.axes[0]
    if offsets is None:
        offsets = pixel_offsets(geom, pointing)
    energy = _broadcast_axis(axis_center(axis), 0, 3)
    if axis.unit and parse_unit(axis.unit) != u.TeV:
        energy = (energy * parse_unit(axis.unit)).to_value(u.TeV)
    values = np.asarray(aeff.evaluate(energy_true=energy, offset=offsets[None]), dtype=np.float64)
    factor = (1.0 * parse_unit(getattr(aeff, "output_unit", "m2") or "m2")).to_value(u.m**2)
    return values * (factor * float(livetime))


def make_psf_map(
    psf: Any,
    pointing: SkyCoord,
    geom: WcsGeom,
    exposure: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
) -> PSFMap:
    """PSF map on ``geom`` (axes ``rad``, ``energy_true``): the PSF IRF at the pixel offsets from
    ``pointing``, normalised along ``rad`` (deg-2), with ``exposure`` (m2 s, ``rad`` squashed) as
    its exposure map (Gammapy's ``make_psf_map``)."""
    rad_axis, energy_axis = geom.axis("rad"), geom.axes[1]
    if offsets is None:
        offsets = pixel_offsets(geom, pointing)
    rad = (axis_center(rad_axis) * parse_unit(rad_axis.unit or "deg")).to_value(u.deg)
    energy = (axis_center(energy_axis) * parse_unit(energy_axis.unit or "TeV")).to_value(u.TeV)
    values = psf.evaluate(
        rad=_broadcast_axis(rad, 1, 4), energy_true=_broadcast_axis(energy, 0, 4), offset=offsets[None, None]
    )
    psf_map = PSFMap(
        np.asarray(values, dtype=np.float64),
        geom,
        exposure=exposure,
        exposure_geom=None if exposure is None else squash_first_axis(geom),
        unit="sr-1",
        exposure_unit="m2 s",
    )
    return psf_map.normalize()


def _offset_weights(grid: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's interval search on the offset nodes: lower node index and weight of the upper one
    (linear extrapolation beyond the first and last nodes)."""
    n = len(grid)
    if n == 1:
        return np.zeros(offsets.shape, dtype=np.int64), np.zeros(offsets.shape)
    i = np.clip(np.searchsorted(grid, offsets, side="right") - 1, 0, n - 2)
    return i, (offsets - grid[i]) / (grid[i + 1] - grid[i])


def _edisp_separable(edisp: Any, energy: np.ndarray) -> bool:
    """Whether the migration pdf at the true energies ``energy`` (TeV) is, pixel by pixel, the
    linear blend of its values at the offset nodes: linear values on a linear offset axis, and
    no extrapolation in true energy (whose negative values Gammapy clips only after blending)."""
    axes: Any = getattr(edisp, "axes", None)
    try:
        offset_axis, energy_axis = axes["offset"], axes["energy_true"]
    except (KeyError, TypeError, ValueError, IndexError):
        return False
    nodes = (axis_center(energy_axis) * parse_unit(energy_axis.unit or "TeV")).to_value(u.TeV)
    return (
        getattr(edisp, "values_scale", "lin") == "lin"
        and offset_axis.interp == "lin"
        and [a.name for a in axes] == ["energy_true", "migra", "offset"]
        and bool(np.all((energy >= nodes.min()) & (energy <= nodes.max())))
    )


def _edisp_pdf(edisp: Any, energy: np.ndarray, migra: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The migration pdf ``(E_true, migra, ny, nx)`` at the pixel offsets (Gammapy's
    ``project_irf_on_geom``), dimensionless."""
    values = edisp.evaluate(
        energy_true=_broadcast_axis(energy, 0, 4),
        migra=_broadcast_axis(migra, 1, 4),
        offset=offsets[None, None],
    )
    return np.asarray(values, dtype=np.float64)


def make_edisp_map(
    edisp: Any,
    pointing: SkyCoord,
    geom: WcsGeom,
    exposure: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
) -> EDispMap:
    """Energy-dispersion map on ``geom`` (axes ``migra``, ``energy_true``): the migration pdf at
    the pixel offsets, normalised along migra, with ``exposure`` (m2 s) as its exposure map
    (Gammapy's ``make_edisp_map``)."""
    migra_axis, energy_axis = geom.axis("migra"), geom.axis("energy_true")
    if offsets is None:
        offsets = pixel_offsets(geom, pointing)
    energy = (axis_center(energy_axis) * parse_unit(energy_axis.unit or "TeV")).to_value(u.TeV)
    values = _edisp_pdf(edisp, energy, axis_center(migra_axis), offsets)
    edisp_map = EDispMap(
        values,
        geom,
        exposure=exposure,
        exposure_geom=None if exposure is None else squash_first_axis(geom),
        exposure_unit="m2 s",
    )
    return edisp_map.normalize()


def make_edisp_kernel_map(
    edisp: Any,
    pointing: SkyCoord,
    geom: WcsGeom,
    exposure: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    threshold: float = 1e-8,
) -> EDispKernelMap:
    """Energy-dispersion kernel map on ``geom`` (axes ``energy``, ``energy_true``), as Gammapy's
    ``make_edisp_kernel_map``: the :func:`make_edisp_map` on the IRF's own migra axis, converted
    with :meth:`~jaxgamma.irf.EDispMap.to_edisp_kernel_map`.

    When the pdf is linear in offset between nodes (:func:`_edisp_separable`), the kernel of each
    pixel is the same blend of the node kernels, divided by the same blend of the node
    normalisations; clipping and the threshold are applied after. Pixels extrapolated beyond the
    first or last offset node (where Gammapy clips negative pdf values) are computed directly.
    """
    energy_axis, energy_axis_true = geom.axis("energy"), geom.axis("energy_true")
    migra_axis = edisp.axes["migra"]
    if offsets is None:
        offsets = pixel_offsets(geom, pointing)
    image = geom.to_image()
    migra_geom = image.to_cube([migra_axis, energy_axis_true])
    exposure_geom = squash_first_axis(geom) if exposure is not None else None
    energy = (axis_center(energy_axis_true) * parse_unit(energy_axis_true.unit or "TeV")).to_value(u.TeV)
    if not _edisp_separable(edisp, energy):
        edisp_map = make_edisp_map(edisp, pointing, migra_geom, offsets=offsets)
        kernel = edisp_map.to_edisp_kernel_map(energy_axis, threshold=threshold)
        return EDispKernelMap(kernel.data, geom, exposure=exposure, exposure_geom=exposure_geom)

    migra = axis_center(migra_axis)
    offset_axis = edisp.axes["offset"]
    nodes = (axis_center(offset_axis) * parse_unit(offset_axis.unit or "deg")).to_value(u.deg)
    edges = (axis_edges(offset_axis) * parse_unit(offset_axis.unit or "deg")).to_value(u.deg)
    # the pdf at the offset nodes, (E_true, migra, 1, n_nodes): a one-row "image" of the nodes
    node_pdf = _edisp_pdf(edisp, energy, migra, nodes[None, :])
    node_geom = WcsGeom.create(npix=(len(nodes), 1), binsz=1.0).to_cube([migra_axis, energy_axis_true])
    node_map = EDispMap(node_pdf, node_geom)
    # kernels of the unnormalised node pdfs and their migra integrals
    raw_kernels = node_map._kernel_values(node_pdf, energy_axis, threshold=-np.inf)  # (Et, E, 1, n)
    widths = np.diff(axis_edges(migra_axis)).reshape(1, -1, 1, 1)
    totals = np.maximum(np.max(np.cumsum(node_pdf * widths, axis=1), axis=1), 0.0)  # (Et, 1, n)

    i, w = _offset_weights(nodes, offsets)  # image shape
    inside = (w >= 0) & (w <= 1) & (offsets >= edges[0]) & (offsets <= edges[-1])
    kernel = (1 - w) * raw_kernels[:, :, 0, i] + w * raw_kernels[:, :, 0, np.minimum(i + 1, len(nodes) - 1)]
    norm = (1 - w) * totals[:, 0, i] + w * totals[:, 0, np.minimum(i + 1, len(nodes) - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.nan_to_num(kernel / norm[:, None])
    kernel = np.clip(kernel, 0, np.inf)
    kernel[kernel < threshold] = 0
    if not np.all(inside):
        # extrapolated or out-of-range pixels: Gammapy's clipping and fill values, directly
        iy, ix = np.nonzero(~inside)
        pdf = _edisp_pdf(edisp, energy, migra, offsets[iy, ix][None, :])
        strip_geom = WcsGeom.create(npix=(len(iy), 1), binsz=1.0).to_cube([migra_axis, energy_axis_true])
        strip = EDispMap(pdf, strip_geom).normalize()
        kernel[:, :, iy, ix] = strip.to_edisp_kernel_map(energy_axis, threshold=threshold).data[:, :, 0, :]
    return EDispKernelMap(kernel, geom, exposure=exposure, exposure_geom=exposure_geom)


# -- background ----------------------------------------------------------------------------------
def _rotation_times(time_start: Time, time_stop: Time, step_deg: float, pointing: Any, location: Any) -> Time:
    """Gammapy's ``_compute_rotation_time_steps``: times at which the FoV has rotated by about
    ``step_deg`` in alt-az, from the rotation rate at each time (at least 1 s apart)."""
    times = [time_start]
    time = time_start
    while time < time_stop:
        altaz = pointing.get_altaz(time, location)
        denom = EARTH_ANGULAR_VELOCITY * np.cos(location.lat.rad) * np.abs(np.cos(altaz.az.rad))
        with np.errstate(divide="ignore"):
            step = float(step_deg * np.cos(altaz.alt.rad) / denom)
        step = max(step, MINIMUM_TIME_STEP)
        time = min(time + step * u.s, time_stop)
        times.append(time)
    return Time(times)


def _solid_angle(image: WcsGeom, parent: WcsGeom | None) -> np.ndarray:
    """Pixel solid angles of ``image``, sliced from ``parent``'s when ``image`` is a cutout lying
    inside it (the same corner arithmetic: CRPIX differs by whole pixels)."""
    if parent is not None:
        from ..irf.psf import placement

        parent = parent.to_image()
        try:
            where = placement(image, parent)
        except ValueError:
            where = None
        else:
            if where is None:
                return parent.solid_angle()
            parent_slices, cutout_slices = where
            ny, nx = image.data_shape_image
            full = cutout_slices[1:] == (slice(0, ny), slice(0, nx))
            if full:
                return parent.solid_angle()[parent_slices]
    return image.solid_angle()


def _integrate_background(
    bkg: Any, energy_edges: np.ndarray, coords: dict[str, np.ndarray], solid_angle: np.ndarray
) -> np.ndarray:
    """``bkg.integrate_log_log`` over the energy edges at the spatial coordinates (broadcast
    against a leading energy dimension) times the solid angle: s-1 per pixel and bin."""
    ndim = 1 + max(np.ndim(v) for v in coords.values())
    edges = _broadcast_axis(energy_edges, 0, ndim)
    values = bkg.integrate_log_log(
        axis_name="energy", energy=edges, **{k: v[None] for k, v in coords.items()}
    )
    return np.asarray(values, dtype=np.float64) * solid_angle


def make_map_background_irf(
    pointing: Any,
    ontime: float,
    bkg: Any,
    geom: WcsGeom,
    time_start: Time | None = None,
    fov_rotation_step: float = 1.0,
    oversampling: int | None = None,
    location: Any = None,
    parent_geom: WcsGeom | None = None,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Predicted background counts ``(energy, lat, lon)`` on ``geom`` (Gammapy's
    ``make_map_background_irf``): the rate integrated over each energy bin (log-log trapezoid)
    times the pixel solid angle and ``ontime`` (s).

    ``pointing``: a FixedPointingInfo (needed for an AltAz-aligned 3D background, which is
    averaged over the FoV rotation between ``time_start`` and ``time_start + ontime`` in steps of
    ``fov_rotation_step`` deg) or an ICRS SkyCoord. ``oversampling`` splits each energy bin in as
    many log-spaced sub-bins, summed back. ``parent_geom``: a geometry ``geom`` may be a cutout of,
    whose (cached) pixel solid angles are then sliced instead of computed again. ``offsets``: the
    pixel offsets (deg, image shape) of ``geom`` from the ICRS pointing, if already computed (used
    by a 2D offset background only).
    """
    axis = geom.axes[0]
    if oversampling is not None:
        axis = upsample_axis(axis, int(oversampling))
    edges = (axis_edges(axis) * parse_unit(axis.unit or "TeV")).to_value(u.TeV)
    image = geom.to_image()
    solid_angle = _solid_angle(image, parent_geom)
    icrs = pointing.fixed_icrs if hasattr(pointing, "fixed_icrs") else pointing
    if bkg.has_offset_axis:
        if offsets is None:
            offsets = pixel_offsets(image, icrs)
        coords = {"offset": offsets}
        values = _integrate_background(bkg, edges, coords, solid_angle)
    elif bkg.fov_alignment == "ALTAZ":
        if not hasattr(pointing, "get_altaz"):
            raise TypeError(
                "make_map_background_irf: an AltAz-aligned background needs the observation's "
                "FixedPointingInfo, not a SkyCoord"
            )
        if location is None or time_start is None:
            raise ValueError(
                "make_map_background_irf: an AltAz-aligned background needs the observatory "
                "location and the observation start time"
            )
        values = _background_altaz(
            bkg, edges, image, solid_angle, pointing, float(ontime), time_start, fov_rotation_step, location
        )
    else:
        if icrs is None:
            raise NotImplementedError("Drift pointing mode is not supported for background calculation.")
        fov_lon, fov_lat = fov_coordinates(image, icrs)
        if bkg.fov_alignment == "REVERSE_LON_RADEC":
            fov_lon = -fov_lon
        values = _integrate_background(bkg, edges, {"fov_lon": fov_lon, "fov_lat": fov_lat}, solid_angle)
    values = values * float(ontime)
    if oversampling is not None:
        factor = int(oversampling)
        values = values.reshape(geom.axes[0].nbin, factor, *values.shape[1:]).sum(axis=1)
    # integrate_log_log returns s-1 sr-1 (rate x energy): x sr x s is dimensionless
    return values


def _background_altaz(
    bkg: Any,
    edges: np.ndarray,
    image: WcsGeom,
    solid_angle: np.ndarray,
    pointing: Any,
    ontime: float,
    time_start: Time,
    step: float,
    location: Any,
) -> np.ndarray:
    """The AltAz-aligned background averaged over the field rotation (Gammapy's time-averaged
    ``integrate_project_irf_on_geom``): the pixels' alt-az FoV coordinates at each rotation time
    (astropy, with erfa's astrometry interpolated over 1000 s, as Gammapy), the integrated rate
    at each, averaged with the trapezoid rule over time."""
    from astropy.coordinates import AltAz
    from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom

    times = _rotation_times(time_start, time_start + ontime * u.s, step, pointing, location)
    origin = pointing.get_altaz(times, location)
    lon, lat = image.get_coord()
    sky = SkyCoord(lon[..., None], lat[..., None], unit="deg", frame=image.frame)
    with erfa_astrom.set(ErfaAstromInterpolator(1000 * u.s)):
        altaz = sky.transform_to(AltAz(obstime=times, location=location))
    vectors = _unit_vectors(altaz.az.deg, altaz.alt.deg)  # (3, ny, nx, T)
    fov_lon = np.empty(vectors.shape[1:])
    fov_lat = np.empty(vectors.shape[1:])
    for k in range(len(times)):  # a few rotation steps: one 3x3 rotation each
        matrix = _fov_matrix(float(origin.az.deg[k]), float(origin.alt.deg[k]))
        fov_lon[..., k], fov_lat[..., k] = _lonlat(np.einsum("ij,j...->i...", matrix, vectors[..., k]))
    coords = {"fov_lon": np.moveaxis(fov_lon, -1, 0), "fov_lat": np.moveaxis(fov_lat, -1, 0)}
    values = _integrate_background(bkg, edges, coords, solid_angle)  # (E, T, ny, nx)
    delta = (times - times[0]).to_value("s")
    from scipy.integrate import trapezoid

    return trapezoid(values, delta.reshape(1, -1, 1, 1), axis=1) / (delta[-1] - delta[0])


# -- the maker -----------------------------------------------------------------------------------
def _pointing_icrs(observation: Any) -> SkyCoord:
    """The ICRS pointing at mid-observation (Gammapy's ``get_pointing_icrs(tmid)``; the fixed
    position without a time for a pointed observation)."""
    pointing = getattr(observation, "pointing", None)
    if pointing is not None and getattr(pointing, "mode", None) == "POINTING":
        return pointing.fixed_icrs
    return observation.get_pointing_icrs(observation.tmid)


class MapDatasetMaker:
    """Binned maps of one IACT observation, as Gammapy's ``MapDatasetMaker``.

    Parameters
    ----------
    selection : list of str, optional
        Maps to make, among "counts", "exposure", "background", "psf", "edisp" (default all).
    background_oversampling : int, optional
        Sub-bins per energy bin for the background integration.
    background_interp_missing_data : bool
        Fill missing (zero) values of the background IRF along energy first (needed for CTA IRFs).
    background_pad_offset : bool
        Pad a 2D (offset) background by one edge bin in offset, so that offsets beyond the last
        node take the edge value.
    fov_rotation_step : float, str or Quantity
        Rotation (deg) between the time steps of an AltAz-aligned background's averaging.

    Repeated work across observations is cached: the prepared background IRF (missing data
    filled, padded) per IRF object, so observations sharing one IRF file prepare it once; and when
    :attr:`reference_geom` is set (:class:`~jaxgamma.makers.DatasetsMaker` sets it to its reference
    geometry) the pixel solid angles of cutouts of it are sliced from its own, computed once.
    """

    tag = "MapDatasetMaker"
    available_selection = ("counts", "exposure", "background", "psf", "edisp")

    def __init__(
        self,
        selection: Any = None,
        background_oversampling: int | None = None,
        background_interp_missing_data: bool = True,
        background_pad_offset: bool = True,
        fov_rotation_step: Any = 1.0,
    ):
        selection = list(self.available_selection) if selection is None else list(selection)
        unknown = set(selection) - set(self.available_selection)
        if unknown:
            raise ValueError(
                f"MapDatasetMaker: {sorted(unknown)} is not a valid selection; choose from "
                f"{list(self.available_selection)}"
            )
        self.selection = set(selection)
        if background_oversampling is not None and int(background_oversampling) < 1:
            raise ValueError(
                f"MapDatasetMaker: background_oversampling must be >= 1, got {background_oversampling}"
            )
        self.background_oversampling = (
            None if background_oversampling is None else int(background_oversampling)
        )
        self.background_interp_missing_data = bool(background_interp_missing_data)
        self.background_pad_offset = bool(background_pad_offset)
        self.fov_rotation_step = float(u.Quantity(fov_rotation_step, "deg").to_value("deg"))
        self._bkg_cache: dict[int, tuple[Any, Any]] = {}
        # a geometry the datasets may be cutouts of (set by DatasetsMaker): solid angles are sliced
        self.reference_geom: WcsGeom | None = None

    def __repr__(self) -> str:
        return f"MapDatasetMaker(selection={sorted(self.selection)})"

    # -- the maps ----------------------------------------------------------------------------------
    @staticmethod
    def make_counts(geom: WcsGeom, observation: Any) -> np.ndarray:
        """Counts cube on ``geom`` (see :func:`make_counts`)."""
        return make_counts(geom, observation.events)

    @staticmethod
    def make_exposure(geom: WcsGeom, observation: Any, offsets: np.ndarray | None = None) -> np.ndarray:
        """Exposure (m2 s) on ``geom`` (one true-energy axis) with the observation's live time."""
        return make_map_exposure_true_energy(
            _pointing_icrs(observation),
            observation.observation_live_time_duration,
            observation.aeff,
            geom,
            offsets,
        )

    make_exposure_irf = make_exposure

    def _prepared_background(self, bkg: Any) -> Any:
        key = id(bkg)
        cached = self._bkg_cache.get(key)
        if cached is not None and cached[0] is bkg:
            return cached[1]
        prepared = bkg
        if self.background_interp_missing_data:
            prepared = prepared.interp_missing_data(axis_name="energy")
        if self.background_pad_offset and prepared.has_offset_axis:
            prepared = prepared.pad(1, mode="edge", axis_name="offset")
        self._bkg_cache[key] = (bkg, prepared)
        return prepared

    def make_background(self, geom: WcsGeom, observation: Any, offsets: np.ndarray | None = None) -> np.ndarray:
        """Predicted background counts on ``geom`` (see :func:`make_map_background_irf`);
        ``offsets``: its pixel offsets from the observation's fixed ICRS pointing, if computed."""
        bkg = observation.bkg
        if bkg is None:
            raise ValueError(f"observation {observation.obs_id}: no background IRF (bkg)")
        return make_map_background_irf(
            pointing=observation.pointing,
            ontime=observation.observation_time_duration,
            bkg=self._prepared_background(bkg),
            geom=geom,
            time_start=observation.tstart if bkg.fov_alignment == "ALTAZ" else None,
            fov_rotation_step=self.fov_rotation_step,
            oversampling=self.background_oversampling,
            location=observation.observatory_earth_location,
            parent_geom=self.reference_geom,
            offsets=offsets,
        )

    def _irf_grid(
        self,
        geom: WcsGeom,
        observation: Any,
        pointing: SkyCoord | None = None,
        offsets: np.ndarray | None = None,
    ) -> tuple[SkyCoord, np.ndarray, np.ndarray]:
        """Pointing, pixel offsets and exposure ``(E_true, ny, nx)`` (m2 s) of an IRF-map grid
        (its second axis is the energy axis); ``pointing`` (the observation's ICRS pointing) and
        ``offsets`` (``geom``'s pixel offsets from it) are computed when not given."""
        if pointing is None:
            pointing = _pointing_icrs(observation)
        if offsets is None:
            offsets = pixel_offsets(geom, pointing)
        exposure = self.make_exposure(geom.replace_axes([geom.axes[1]]), observation, offsets)
        return pointing, offsets, exposure

    def make_psf(
        self, geom: WcsGeom, observation: Any, grid: tuple[SkyCoord, np.ndarray, np.ndarray] | None = None
    ) -> PSFMap:
        """PSF map on ``geom`` (axes ``rad``, ``energy_true``) with its exposure map; ``grid``:
        the :meth:`_irf_grid` of ``geom``, if already computed."""
        pointing, offsets, exposure = self._irf_grid(geom, observation) if grid is None else grid
        return make_psf_map(observation.psf, pointing, geom, exposure=exposure[:, None], offsets=offsets)

    def make_edisp(
        self, geom: WcsGeom, observation: Any, grid: tuple[SkyCoord, np.ndarray, np.ndarray] | None = None
    ) -> EDispMap:
        """Migration map on ``geom`` (axes ``migra``, ``energy_true``) with its exposure map;
        ``grid``: the :meth:`_irf_grid` of ``geom``, if already computed."""
        pointing, offsets, exposure = self._irf_grid(geom, observation) if grid is None else grid
        return make_edisp_map(observation.edisp, pointing, geom, exposure=exposure[:, None], offsets=offsets)

    def make_edisp_kernel(
        self, geom: WcsGeom, observation: Any, grid: tuple[SkyCoord, np.ndarray, np.ndarray] | None = None
    ) -> EDispKernelMap:
        """Kernel map on ``geom`` (axes ``energy``, ``energy_true``) with its exposure map;
        ``grid``: the :meth:`_irf_grid` of ``geom``, if already computed."""
        pointing, offsets, exposure = self._irf_grid(geom, observation) if grid is None else grid
        return make_edisp_kernel_map(
            observation.edisp, pointing, geom, exposure=exposure[:, None], offsets=offsets
        )

    @staticmethod
    def make_meta_table(observation: Any) -> Table:
        """One row: TELESCOP, OBS_ID and the pointing keywords (Gammapy's ``make_meta_table``)."""
        aeff = observation.aeff
        row: dict[str, Any] = {
            "TELESCOP": (aeff.meta.get("TELESCOP", "Unknown") if aeff is not None else "Unknown"),
            "OBS_ID": observation.obs_id,
        }
        row.update(observation.pointing.to_fits_header())
        table = Table([row])
        for key in ("ALT_PNT", "AZ_PNT", "RA_PNT", "DEC_PNT"):
            if key in table.colnames:
                table[key].unit = u.deg
        return table

    # -- run ---------------------------------------------------------------------------------------
    def run(self, dataset: MapDataset, observation: Any) -> MapDataset:
        """A new dataset on ``dataset``'s geometries with the selected maps of ``observation``, a
        safe mask all True, the observation's GTI and meta table (the other fields of
        ``dataset`` are not carried over, as Gammapy)."""
        if not isinstance(dataset, MapDataset):
            raise TypeError(f"MapDatasetMaker.run: expected a MapDataset, got {type(dataset).__name__}")
        return self._run(dataset, observation)

    def _run(self, dataset: MapDataset, observation: Any) -> MapDataset:
        """The maps of :meth:`run`. The ICRS pointing and the pixel offsets from it are computed
        once for the counts image (shared by the exposure and a 2D offset background) and once
        for the IRF image (shared by the PSF and energy-dispersion maps and their exposure)."""
        geom = dataset.geom
        image = geom.to_image()
        pointing = _pointing_icrs(observation) if self.selection - {"counts"} else None
        offsets_by_image: dict[WcsGeom, np.ndarray] = {}

        def offsets_of(grid: WcsGeom) -> np.ndarray:
            key = grid.to_image()
            if key not in offsets_by_image:
                offsets_by_image[key] = pixel_offsets(key, pointing)
            return offsets_by_image[key]

        kwargs: dict[str, Any] = {
            "geom": geom,
            "gti": observation.gti,
            "meta_table": self.make_meta_table(observation),
            "mask_safe": np.ones(geom.data_shape, dtype=bool),
            "energy_axis_true": dataset.energy_axis_true,
            "name": dataset.name,
        }
        kwargs["counts"] = (
            self.make_counts(geom, observation) if "counts" in self.selection else np.zeros(geom.data_shape)
        )
        if "exposure" in self.selection:
            geom_exposure = dataset.geom_exposure
            exposure = self.make_exposure(geom_exposure, observation, offsets_of(geom_exposure))
            kwargs["exposure"] = exposure * (1.0 * u.Unit("m2 s")).to_value(parse_unit(EXPOSURE_UNIT))
            kwargs["livetime"] = float(observation.observation_live_time_duration)
        if "background" in self.selection:
            bkg, pointing_info = observation.bkg, observation.pointing
            bkg_icrs = pointing_info.fixed_icrs if hasattr(pointing_info, "fixed_icrs") else pointing_info
            # a 2D background takes the offsets from the fixed ICRS pointing: share them only when
            # that is the pointing of the exposure (a pointed observation)
            shared = bkg is not None and bkg.has_offset_axis and bkg_icrs is pointing
            kwargs["background"] = self.make_background(
                geom, observation, offsets_of(image) if shared else None
            )
        irf_grids: dict[tuple[WcsGeom, Any], tuple[SkyCoord, np.ndarray, np.ndarray]] = {}

        def irf_grid(irf_geom: WcsGeom) -> tuple[SkyCoord, np.ndarray, np.ndarray]:
            key = (irf_geom.to_image(), irf_geom.axes[1])
            if key not in irf_grids:
                irf_grids[key] = self._irf_grid(irf_geom, observation, pointing, offsets_of(irf_geom))
            return irf_grids[key]

        if "psf" in self.selection:
            if dataset.psf is None:
                raise ValueError(
                    f"MapDatasetMaker.run: dataset {dataset.name!r} has no PSF map to take the geometry of"
                )
            kwargs["psf"] = self.make_psf(dataset.psf.geom, observation, irf_grid(dataset.psf.geom))
        if "edisp" in self.selection:
            if dataset.edisp is None:
                raise ValueError(
                    f"MapDatasetMaker.run: dataset {dataset.name!r} has no energy-dispersion map to take the geometry of"
                )
            edisp_geom = dataset.edisp.geom
            if edisp_geom.axes[0].name == "migra":
                kwargs["edisp"] = self.make_edisp(edisp_geom, observation, irf_grid(edisp_geom))
            else:
                kwargs["edisp"] = self.make_edisp_kernel(edisp_geom, observation, irf_grid(edisp_geom))
        for key in ("counts", "exposure", "background", "mask_safe"):
            if isinstance(kwargs.get(key), np.ndarray) and kwargs[key].flags.owndata:
                kwargs[key].setflags(write=False)  # our own new arrays: the dataset need not copy them
        return MapDataset(**kwargs)
