"""Geometry (numpy, precomputed): energy axes, WCS maps, solid angles, cutouts, and the
jax-traceable world -> pixel projection."""

from .axes import MapAxis, axes_from_table_hdu, axes_to_header, axes_to_table_hdu
from .projection import (
    ICRS_TO_GALACTIC,
    SUPPORTED_PROJECTIONS,
    ArrayProjection,
    WcsProjection,
    celestial_euler,
    frame_rotation,
    transform_frame,
)
from .region import RegionGeom, make_concentric_annulus_sky_regions, make_orthogonal_rectangle_sky_regions
from .wcs import WcsGeom, find_map_hdus, solid_angle_from_corners

__all__ = [
    "ICRS_TO_GALACTIC",
    "SUPPORTED_PROJECTIONS",
    "ArrayProjection",
    "MapAxis",
    "RegionGeom",
    "WcsGeom",
    "WcsProjection",
    "axes_from_table_hdu",
    "axes_to_header",
    "axes_to_table_hdu",
    "celestial_euler",
    "find_map_hdus",
    "frame_rotation",
    "make_concentric_annulus_sky_regions",
    "make_orthogonal_rectangle_sky_regions",
    "solid_angle_from_corners",
    "transform_frame",
]
