"""Shared machinery of the IRF maps (numpy, precomputed once; never traced).

Gammapy computes IRF kernels through ``Map.interp_by_coord`` (``scipy``'s
``RegularGridInterpolator`` on pixel grids), ``MapAxis`` coordinate transforms (``scipy``'s
``interp1d``) and ``astropy`` unit conversions. The helpers here mirror those operations
arithmetic step by arithmetic step, so that the kernels agree with Gammapy's bit for bit (or to the
last float32 place): the same interval search, the same order of the hypercube terms, the same
2D fast path, the same unit-conversion factors.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits

from ..geom import MapAxis, WcsGeom, axes_to_table_hdu, find_map_hdus
from ..units import parse_unit, unit_str

__all__: list[str] = []

log = logging.getLogger(__name__)

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


# -- axes, as Gammapy computes them ---------------------------------------------------------------
# Gammapy's ``MapAxis`` transforms coordinates with ``scipy.interpolate.interp1d(kind=1)``, which
# scipy evaluates as a degree-1 B-spline (de Boor), not with the slope formula of ``kind="linear"``;
# the two differ in the last bit. The helpers below use the B-spline arithmetic so that pixel
# coordinates, centres and edges are Gammapy's to the bit.
def _interp1d_k1(x: np.ndarray, y: np.ndarray, x_new: Any) -> np.ndarray:
    """``interp1d(x, y, kind=1, fill_value="extrapolate")(x_new)`` for ascending ``x``."""
    x_new = np.asarray(x_new, dtype=np.float64)
    if len(x) == 1:
        return np.zeros_like(x_new) + y[0]
    i = np.clip(np.searchsorted(x, x_new, side="right") - 1, 0, len(x) - 2)
    x_lo, x_hi = x[i], x[i + 1]
    w = 1.0 / (x_hi - x_lo)
    return y[i] * (w * (x_hi - x_new)) + y[i + 1] * (w * (x_new - x_lo))


def _inverse_scale(values: np.ndarray, interp: str) -> np.ndarray:
    if interp == "log":
        out = np.exp(values)
        return np.where(np.abs(out) - _FLOAT32_TINY <= _FLOAT32_TINY, 0, out)
    if interp == "sqrt":
        return values**2
    return values


def _offset(axis: MapAxis) -> float:
    return -0.5 if axis.node_type == "edges" else 0.0


def coord_to_pix(axis: MapAxis, coord: Any) -> np.ndarray:
    """Gammapy's ``MapAxis.coord_to_pix`` (coordinates in the axis unit)."""
    x = scale_points(np.asarray(axis.nodes, dtype=np.float64), axis.interp)
    y = np.arange(len(x), dtype=float)
    if len(x) > 1 and x[0] > x[-1]:
        x, y = x[::-1], y[::-1]
    return _interp1d_k1(x, y, scale_points(np.asarray(coord, dtype=np.float64), axis.interp)) + _offset(axis)


def pix_to_coord(axis: MapAxis, pix: Any) -> np.ndarray:
    """Gammapy's ``MapAxis.pix_to_coord`` (result in the axis unit)."""
    x = scale_points(np.asarray(axis.nodes, dtype=np.float64), axis.interp)
    y = np.arange(len(x), dtype=float)
    pix = np.asarray(pix, dtype=np.float64) - _offset(axis)
    return _inverse_scale(_interp1d_k1(y, x, pix), axis.interp)


def axis_center(axis: MapAxis) -> np.ndarray:
    """Bin centres as Gammapy's ``MapAxis.center`` (``pix_to_coord(arange(nbin))``)."""
    return pix_to_coord(axis, np.arange(axis.nbin, dtype=float))


def axis_edges(axis: MapAxis) -> np.ndarray:
    """Bin edges as Gammapy's ``MapAxis.edges`` (``pix_to_coord(arange(nbin + 1) - 0.5)``)."""
    return pix_to_coord(axis, np.arange(axis.nbin + 1, dtype=float) - 0.5)


def upsample_axis(axis: MapAxis, factor: int) -> MapAxis:
    """Gammapy's ``MapAxis.upsample``."""
    if axis.node_type == "edges":
        pix = coord_to_pix(axis, axis_edges(axis))
        nbin = int(axis.nbin * factor) + 1
        nodes = pix_to_coord(axis, np.linspace(pix.min(), pix.max(), nbin))
        return MapAxis.from_edges(nodes, name=axis.name, interp=axis.interp, unit=axis.unit)
    pix = coord_to_pix(axis, axis_center(axis))
    nbin = int((axis.nbin - 1) * factor) + 1
    nodes = pix_to_coord(axis, np.linspace(pix.min(), pix.max(), nbin))
    return MapAxis.from_nodes(nodes, name=axis.name, interp=axis.interp, unit=axis.unit)


def pad_axis(axis: MapAxis, pad: int) -> MapAxis:
    """Gammapy's ``MapAxis.pad`` with the same width on both sides."""
    if axis.node_type == "edges":
        nodes = pix_to_coord(axis, np.arange(-pad, axis.nbin + pad + 1) - 0.5)
        return MapAxis.from_edges(nodes, name=axis.name, interp=axis.interp, unit=axis.unit)
    nodes = pix_to_coord(axis, np.arange(-pad, axis.nbin + pad))
    return MapAxis.from_nodes(nodes, name=axis.name, interp=axis.interp, unit=axis.unit)


def axis_coord_to_idx(axis: MapAxis, coord: Any) -> np.ndarray:
    """Gammapy's ``MapAxis.coord_to_idx(coord, clip=False)``: -1 outside the edges."""
    coord = np.array(coord, dtype=np.float64, ndmin=1)
    edges = axis_edges(axis)
    idx = np.digitize(coord, edges) - 1
    with np.errstate(invalid="ignore"):
        idx[coord > edges[-1]] = -1
    return idx


def convert(values: Any, unit_from: str, unit_to: str) -> np.ndarray:
    """``Quantity(values, unit_from).to_value(unit_to)`` (astropy's factor, as Gammapy applies it)."""
    values = np.asarray(values, dtype=np.float64)
    if parse_unit(unit_from) == parse_unit(unit_to):
        return values
    return (values * parse_unit(unit_from)).to_value(parse_unit(unit_to), equivalencies=u.spectral())


def scale_points(values: np.ndarray, interp: str) -> np.ndarray:
    """Gammapy's interpolation scales (``LogScale`` clips at the float32 ``tiny``)."""
    if interp == "log":
        return np.log(np.clip(values, _FLOAT32_TINY, np.inf))
    if interp == "sqrt":
        return np.sqrt(values)
    return values


# -- scipy's RegularGridInterpolator, mirrored ----------------------------------------------------
def _find_indices(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's ``find_indices``: ``grid[i] <= x < grid[i + 1]``, clipped to ``[0, n - 2]``."""
    n = len(grid)
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, n - 2)
    i = np.where(x == grid[-1], n - 2, i)
    norm = (x - grid[i]) / (grid[i + 1] - grid[i])
    return i, norm


def _prepare(grids: Sequence[np.ndarray], values: np.ndarray, xi: Sequence[Any]):
    include = [len(g) > 1 for g in grids]
    if any(include):
        values = np.squeeze(values)
        grids = [g for g, keep in zip(grids, include, strict=True) if keep]
        xi = [x for x, keep in zip(xi, include, strict=True) if keep]
    xi = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in xi])
    shape = xi[0].shape
    found = [
        _find_indices(np.asarray(g, dtype=np.float64), x.ravel()) for g, x in zip(grids, xi, strict=True)
    ]
    return values, found, shape


def rgi_linear(
    grids: Sequence[np.ndarray], values: np.ndarray, xi: Sequence[Any], fast_path: bool = False
) -> np.ndarray:
    """``RegularGridInterpolator(grids, values, bounds_error=False, fill_value=None)(xi)``.

    Linear interpolation with linear extrapolation; grid dimensions of length 1 are dropped, as
    Gammapy's ``ScaledRegularGridInterpolator`` does. ``fast_path`` tells whether scipy would use
    its Cython 2D kernel (2D, native float64, writeable values), whose terms are multiplied in a
    different order than the generic N-d path.
    """
    values, found, shape = _prepare(grids, values, xi)
    indices = [f[0] for f in found]
    norms = [f[1] for f in found]
    if fast_path and values.ndim == 2 and values.dtype == np.float64:
        (i0, y0), (i1, y1) = found
        out = (
            values[i0, i1] * (1 - y0) * (1 - y1)
            + values[i0, i1 + 1] * (1 - y0) * y1
            + values[i0 + 1, i1] * y0 * (1 - y1)
            + values[i0 + 1, i1 + 1] * y0 * y1
        )
        return out.reshape(shape)
    shifted = [1 - y for y in norms]
    lower = zip(indices, shifted, strict=True)
    upper = zip([i + 1 for i in indices], norms, strict=True)
    value = np.array([0.0])
    for corner in itertools.product(*zip(lower, upper, strict=True)):
        edge_indices, weights = zip(*corner, strict=True)
        weight = np.array([1.0])
        for w in weights:
            weight = weight * w
        value = value + np.asarray(values[edge_indices]) * weight
    return value.reshape(shape)


def nearest_index(n: int, x: float) -> int:
    """The index scipy's nearest-neighbour ``RegularGridInterpolator`` picks on ``arange(n)``."""
    if n == 1:
        return 0
    i, norm = _find_indices(np.arange(n, dtype=float), np.array([x], dtype=float))
    return int(np.where(norm <= 0.5, i, i + 1)[0])


# -- positions -------------------------------------------------------------------------------------
def position_pix(geom: WcsGeom, position: SkyCoord) -> tuple[float, float]:
    """0-based pixel coordinates of ``position`` in ``geom`` (Gammapy's ``coord_to_pix``)."""
    c = position.transform_to(geom.frame)
    x, y = geom.wcs.wcs_world2pix(c.data.lon.deg, c.data.lat.deg, 0)
    return float(x), float(y)


def check_position(position: Any, what: str) -> SkyCoord:
    if not isinstance(position, SkyCoord):
        raise TypeError(f"{what}: position must be a SkyCoord, got {type(position).__name__}")
    if not position.isscalar:
        raise ValueError(f"{what}: position must be a single sky coordinate")
    return position


def _energy_axis_name(geom: WcsGeom, names: Sequence[str]) -> str:
    for name in names:
        if name in [a.name for a in geom.axes]:
            return name
    raise ValueError(f"geometry has none of the axes {list(names)}; axes: {[a.name for a in geom.axes]}")


# -- the IRF map base ------------------------------------------------------------------------------
def _read_only(array: np.ndarray) -> np.ndarray:
    """``array`` if it is already read-only, else a read-only copy: IRF maps are immutable and may
    share their arrays (e.g. one exposure map between the PSF and the energy-dispersion map)."""
    if array.flags.writeable:
        array = array.copy()
        array.setflags(write=False)
    return array


class IRFMap:
    """An IRF on a WCS grid with non-spatial axes, plus its exposure map (Gammapy's ``IRFMap``).

    Parameters
    ----------
    data : numpy array
        Values, shape ``geom.data_shape`` (reversed axes, then lat, lon).
    geom : WcsGeom
        Geometry of ``data`` with the IRF's axes.
    unit : str
        Unit of ``data``.
    exposure : numpy array, optional
        Exposure map, shape ``exposure_geom.data_shape``.
    exposure_geom : WcsGeom, optional
        Geometry of ``exposure``; by default ``geom`` with the first axis squashed to one bin.
    exposure_unit : str
        Unit of ``exposure``.
    """

    tag = "irf_map"
    hdu_name = "IRF"
    required_axes: tuple[str, ...] = ()

    def __init__(
        self,
        data: Any,
        geom: WcsGeom,
        unit: str | u.UnitBase = "",
        exposure: Any = None,
        exposure_geom: WcsGeom | None = None,
        exposure_unit: str | u.UnitBase = "m2 s",
    ):
        if not isinstance(geom, WcsGeom):
            raise TypeError(f"{type(self).__name__}: geom must be a WcsGeom, got {type(geom).__name__}")
        data = _native(np.asarray(data))
        if data.shape != geom.data_shape:
            raise ValueError(
                f"{type(self).__name__}: data shape {data.shape} does not match the geometry {geom.data_shape}"
            )
        names = [a.name for a in geom.axes]
        if names[: len(self.required_axes)] != list(self.required_axes):
            raise ValueError(
                f"{type(self).__name__}: the axes must be {list(self.required_axes)} (in this order), got {names}"
            )
        self._data = _read_only(data)
        self._geom = geom
        self._unit = unit_str(unit)
        if exposure is not None:
            exposure = _native(np.asarray(exposure))
            if exposure_geom is None:
                exposure_geom = squash_first_axis(geom)
            if exposure.shape != exposure_geom.data_shape:
                raise ValueError(
                    f"{type(self).__name__}: exposure shape {exposure.shape} does not match its geometry "
                    f"{exposure_geom.data_shape}"
                )
        else:
            exposure_geom = None
        self._exposure = None if exposure is None else _read_only(exposure)
        self._exposure_geom = exposure_geom
        self._exposure_unit = unit_str(exposure_unit)
        # scipy's 2D fast path needs native float64 values; FITS data is big-endian
        self._native_f8 = True

    # -- properties ---------------------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        return self._data

    @property
    def geom(self) -> WcsGeom:
        return self._geom

    @property
    def unit(self) -> str:
        return self._unit

    @property
    def exposure(self) -> np.ndarray | None:
        """Exposure map (``exposure_unit``), or None."""
        return self._exposure

    @property
    def exposure_geom(self) -> WcsGeom | None:
        return self._exposure_geom

    @property
    def exposure_unit(self) -> str:
        return self._exposure_unit

    @property
    def has_single_spatial_bin(self) -> bool:
        return self._geom.data_shape_image == (1, 1)

    @property
    def mask_safe_image(self) -> np.ndarray:
        """Pixels where any IRF value is positive (Gammapy's ``mask_safe_image``), image shape."""
        ndim = self._data.ndim
        return np.any(self._data > 0, axis=tuple(range(ndim - 2)))

    # -- map operations (Gammapy's IRFMap.slice_by_idx / downsample) ---------------------------------
    def _new_like(self, data: np.ndarray, geom: WcsGeom, **changes: Any) -> Any:
        """A map of this class on ``geom`` with ``data``; unit and exposure map kept unless changed."""
        kwargs: dict[str, Any] = {
            "exposure": self._exposure,
            "exposure_geom": self._exposure_geom,
            "unit": self._unit,
            "exposure_unit": self._exposure_unit,
        }
        kwargs.update(changes)
        return type(self)(data, geom, **kwargs)

    def _data_axis(self, geom: WcsGeom, name: str) -> int:
        names = [a.name for a in geom.axes]
        if name not in names:
            raise ValueError(f"{type(self).__name__}: no axis {name!r} (axes {names})")
        return len(names) - 1 - names.index(name)

    def slice_by_idx(self, slices: dict[str, slice]) -> Any:
        """The map restricted to the bins ``slices[name]`` of its non-spatial axes (Gammapy's
        ``IRFMap.slice_by_idx``); axes not named are kept, names the map lacks are ignored. The
        exposure map is sliced along the axes it has unsquashed (``energy_true``)."""
        what = f"{type(self).__name__}.slice_by_idx"
        for key, value in slices.items():
            if not isinstance(value, slice):
                raise ValueError(f"{what}: integer indexing is not supported, got {{{key!r}: {value!r}}}")

        def sliced(data: np.ndarray, geom: WcsGeom, squashed: str | None) -> tuple[np.ndarray, WcsGeom]:
            axes = list(geom.axes)
            index: list[Any] = [slice(None)] * data.ndim
            for i, axis in enumerate(axes):
                if axis.name in slices and axis.name != squashed:
                    axes[i] = axis.slice(slices[axis.name])
                    index[len(axes) - 1 - i] = slices[axis.name]
            return data[tuple(index)], geom.replace_axes(axes)

        data, geom = sliced(self._data, self._geom, None)
        exposure, exposure_geom = self._exposure, self._exposure_geom
        if exposure is not None and exposure_geom is not None:
            exposure, exposure_geom = sliced(exposure, exposure_geom, self._geom.axes[0].name)
        return self._new_like(data, geom, exposure=exposure, exposure_geom=exposure_geom)

    def downsample(self, factor: int, axis_name: str | None = None, weights: Any = None) -> Any:
        """Gammapy's ``IRFMap.downsample``: spatially (``axis_name`` None) the ``weights``-weighted
        mean of ``factor x factor`` pixels, and the mean exposure; along a non-spatial axis the
        weighted sum of ``factor`` bins, the exposure summed along ``energy_true`` and otherwise kept."""
        from ..geom.resample import downsample_data

        exposure, exposure_geom = self._exposure, self._exposure_geom
        if axis_name is None:
            geom = self._geom.downsample(factor)
            data = downsample_data(self._data, factor, None, weights, preserve_counts=False)
            if exposure is not None and exposure_geom is not None:
                exposure = downsample_data(exposure, factor, None, None, preserve_counts=False)
                exposure_geom = exposure_geom.downsample(factor)
        else:
            axes = [a.downsample(factor) if a.name == axis_name else a for a in self._geom.axes]
            data = downsample_data(self._data, factor, self._data_axis(self._geom, axis_name), weights)
            geom = self._geom.replace_axes(axes)
            if exposure is not None and exposure_geom is not None and axis_name == "energy_true":
                exposure = downsample_data(exposure, factor, self._data_axis(exposure_geom, axis_name), None)
                exposure_geom = exposure_geom.replace_axes(
                    [a.downsample(factor) if a.name == axis_name else a for a in exposure_geom.axes]
                )
        return self._new_like(data, geom, exposure=exposure, exposure_geom=exposure_geom)

    def _nearest_valid_position(self, position: SkyCoord) -> SkyCoord:
        """``position`` if its pixel has a valid IRF, otherwise the nearest valid pixel centre."""
        mask = self.mask_safe_image
        x, y = position_pix(self._geom, position)
        nx, ny = self._geom.npix
        valid = False
        if np.isfinite(x) and np.isfinite(y):
            ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
            if 0 <= ix < nx and 0 <= iy < ny:
                valid = bool(mask[iy, ix])
        if valid or not mask.any():
            return position
        log.warning(
            f"Position {position} is outside the valid IRF map range; using the nearest valid IRF pixel"
        )
        lon, lat = self._geom.get_coord()
        coords = SkyCoord(lon, lat, unit="deg", frame=self._geom.frame)
        separation = coords.separation(position).deg
        separation[~mask] = np.inf
        idx = np.argmin(separation)
        return coords.flatten()[idx]

    # -- I/O ---------------------------------------------------------------------------------------
    @classmethod
    def _read_parts(
        cls, hdulist: fits.HDUList, hdu: str, hdu_bands: str | None, exposure_hdu: str | None
    ) -> dict[str, Any]:
        if hdu not in hdulist:
            raise ValueError(f"{cls.__name__}: the FITS file has no HDU {hdu!r}")
        data, geom, unit = read_map_hdu(hdulist, hdu, hdu_bands)
        parts: dict[str, Any] = {"data": data, "geom": geom, "unit": unit}
        if exposure_hdu is not None and exposure_hdu in hdulist:
            exposure, exposure_geom, exposure_unit = read_map_hdu(hdulist, exposure_hdu, None)
            parts.update(exposure=exposure, exposure_geom=exposure_geom, exposure_unit=exposure_unit)
        return parts

    def to_hdulist(self, hdu: str | None = None) -> fits.HDUList:
        """GADF HDUs as Gammapy writes them: primary, ``<HDU>``, ``<HDU>_BANDS``, ``<HDU>_EXPOSURE``,
        ``<HDU>_EXPOSURE_BANDS``."""
        hdu = (hdu or self.hdu_name).upper()
        hdus: list[Any] = [fits.PrimaryHDU()]
        hdus += map_to_hdus(self._data, self._geom, self._unit, hdu)
        if self._exposure is not None and self._exposure_geom is not None:
            hdus += map_to_hdus(self._exposure, self._exposure_geom, self._exposure_unit, f"{hdu}_EXPOSURE")
        return fits.HDUList(hdus)


def _native(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder in ("=", "|"):
        return array
    return array.astype(array.dtype.newbyteorder("="))


def squash_first_axis(geom: WcsGeom) -> WcsGeom:
    """The geometry with its first non-spatial axis reduced to one bin (Gammapy's ``squash``)."""
    first, *rest = geom.axes
    edges = axis_edges(first)
    squashed = MapAxis.from_bounds(
        edges[0], edges[-1], 1, interp=first.interp, name=first.name, unit=first.unit
    )
    return geom.replace_axes([squashed, *rest])


def read_map_hdu(hdulist: fits.HDUList, hdu: str, hdu_bands: str | None) -> tuple[np.ndarray, WcsGeom, str]:
    """``(data, geometry, unit)`` of a GADF WCS map HDU; the data keep their precision and become
    native-endian."""
    image, bands, format = find_map_hdus(hdulist, hdu, hdu_bands)
    geom = WcsGeom.from_header(image.header, bands, format=format)
    data = image.data
    if data is None:
        raise ValueError(f"HDU {hdu!r} has no data")
    data = np.asarray(data)
    if data.shape != geom.data_shape:
        raise ValueError(
            f"HDU {hdu!r}: data shape {data.shape} does not match its geometry {geom.data_shape}"
        )
    if data.dtype.kind in "iub":
        data = data.astype(np.float64)
    unit = image.header.get("BUNIT", "") or ""
    try:
        unit = unit_str(unit)
    except ValueError as err:
        raise ValueError(f"HDU {hdu!r}: cannot parse BUNIT {unit!r}") from err
    return _native(data), geom, unit


def map_to_hdus(data: np.ndarray, geom: WcsGeom, unit: str, name: str) -> list[Any]:
    """Image HDU and bands table of a map, as Gammapy's ``WcsNDMap.to_hdulist(hdu=name)``."""
    header = geom.to_header()
    bands = f"{name}_BANDS"
    if geom.axes:
        header["BANDSHDU"] = bands
    image = fits.ImageHDU(np.asarray(data), header=header, name=name)
    image.header["META"] = json.dumps({})
    image.header["BUNIT"] = parse_unit(unit).to_string("fits") if unit else ""
    hdus: list[Any] = [image]
    if geom.axes:
        hdus.append(axes_to_table_hdu(geom.axes, hdu_bands=bands))
    return hdus
