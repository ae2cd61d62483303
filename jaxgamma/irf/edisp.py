"""Energy-dispersion maps and kernels at a sky position (numpy; computed once per position).

Two DL4 forms exist, as in Gammapy 2.1:

- :class:`EDispKernelMap`: the matrix ``K[E_true, E_reco]`` per pixel (axes ``energy``, then
  ``energy_true``). :meth:`EDispKernelMap.get_edisp_kernel` takes the nearest pixel (after
  snapping the position to the nearest pixel with a valid response) and does not renormalise:
  rows may sum to less than 1.
- :class:`EDispMap`: the migration pdf ``P(migra | E_true)`` per pixel (axes ``migra``, then
  ``energy_true``). :meth:`EDispMap.to_edisp_kernel_map` converts it to a kernel on a
  reconstructed-energy axis: at each true-bin centre, ``K = P(m_hi) - P(m_lo)`` with
  ``m = E_reco_edge / E_true`` and ``P`` the migra cumulative sum (padded with its edge values and
  interpolated linearly), clipped at 0 with entries below ``threshold = 1e-8`` set to 0.

:func:`read_edisp_map` returns whichever form a file holds (a kernel map when the first
non-spatial axis is ``energy``).
"""

from __future__ import annotations

import logging
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits

from ..geom import MapAxis, WcsGeom, find_map_hdus
from ..units import parse_unit
from ._core import (
    IRFMap,
    _find_indices,
    axis_center,
    axis_edges,
    check_position,
    coord_to_pix,
    nearest_index,
    pad_axis,
    position_pix,
    squash_first_axis,
)
from .psf import cutout_irf_map, normalize_irf_map, stack_irf_maps

__all__ = ["EDispKernel", "EDispKernelMap", "EDispMap", "read_edisp_map"]

log = logging.getLogger(__name__)

EDISP_THRESHOLD = 1e-8


def _unit_ratio(unit_num: str, unit_den: str) -> float:
    """Scale of ``unit_num / unit_den`` to dimensionless (1 for equal units)."""
    if parse_unit(unit_num) == parse_unit(unit_den):
        return 1.0
    return float((parse_unit(unit_num) / parse_unit(unit_den)).to(u.dimensionless_unscaled))


def overlap_fraction(energy_axis: MapAxis, energy_axis_true: MapAxis) -> np.ndarray:
    """Fraction of each true-energy bin inside each reconstructed-energy bin, ``(n_true, n_reco)``
    (Gammapy's ``get_overlap_fraction``)."""
    a = axis_edges(energy_axis)
    b = axis_edges(energy_axis_true)
    b_in_a = (
        b
        if energy_axis.unit == energy_axis_true.unit
        else _convert(b, energy_axis_true.unit, energy_axis.unit)
    )
    a_min, a_max = a[:-1], a[1:]
    xmin = np.fmin(a_max, b_in_a[1:][:, np.newaxis])
    xmax = np.fmax(a_min, b_in_a[:-1][:, np.newaxis])
    fraction = np.clip(xmin - xmax, 0, np.inf) / (b[1:] - b[:-1])[:, np.newaxis]
    scale = _unit_ratio(energy_axis.unit, energy_axis_true.unit)
    return fraction if scale == 1.0 else fraction * scale


def _convert(values: np.ndarray, unit_from: str, unit_to: str) -> np.ndarray:
    return (values * parse_unit(unit_from)).to_value(parse_unit(unit_to), equivalencies=u.spectral())


def _check_energy_axis(axis: Any, name: str, what: str) -> MapAxis:
    if not isinstance(axis, MapAxis):
        raise TypeError(f"{what}: expected a MapAxis named {name!r}, got {type(axis).__name__}")
    if axis.name != name:
        raise ValueError(f"{what}: the axis must be named {name!r}, got {axis.name!r}")
    return axis


class EDispKernel:
    """Energy-dispersion matrix ``pdf_matrix[E_true, E_reco]`` at one position.

    Parameters
    ----------
    energy_axis_true : MapAxis
        True-energy axis (``energy_true``).
    energy_axis : MapAxis
        Reconstructed-energy axis (``energy``).
    data : array, shape ``(n_true, n_reco)``
        Probability of a true-energy bin to land in each reconstructed bin.
    """

    def __init__(self, energy_axis_true: MapAxis, energy_axis: MapAxis, data: Any):
        _check_energy_axis(energy_axis_true, "energy_true", "EDispKernel")
        _check_energy_axis(energy_axis, "energy", "EDispKernel")
        data = np.array(data, dtype=np.float64)
        if data.shape != (energy_axis_true.nbin, energy_axis.nbin):
            raise ValueError(
                f"EDispKernel: data shape {data.shape} does not match the axes "
                f"({energy_axis_true.nbin}, {energy_axis.nbin})"
            )
        data.setflags(write=False)
        self._energy_axis_true = energy_axis_true
        self._energy_axis = energy_axis
        self._data = data

    @property
    def energy_axis_true(self) -> MapAxis:
        return self._energy_axis_true

    @property
    def energy_axis(self) -> MapAxis:
        return self._energy_axis

    @property
    def pdf_matrix(self) -> np.ndarray:
        """The matrix ``(n_true, n_reco)``, float64 (read-only)."""
        return self._data

    @property
    def data(self) -> np.ndarray:
        return self._data

    @classmethod
    def from_diagonal_response(
        cls, energy_axis_true: MapAxis, energy_axis: MapAxis | None = None
    ) -> EDispKernel:
        """Perfect resolution: the overlap fraction of each true bin with each reconstructed bin
        (Gammapy's ``EDispKernel.from_diagonal_response``); diagonal when the binnings agree."""
        _check_energy_axis(energy_axis_true, "energy_true", "EDispKernel.from_diagonal_response")
        if energy_axis is None:
            energy_axis = MapAxis(
                energy_axis_true.nodes,
                interp=energy_axis_true.interp,
                name="energy",
                node_type=energy_axis_true.node_type,
                unit=energy_axis_true.unit,
            )
        return cls(energy_axis_true, energy_axis, overlap_fraction(energy_axis, energy_axis_true))

    def __repr__(self) -> str:
        return f"EDispKernel(n_true={self._data.shape[0]}, n_reco={self._data.shape[1]})"


class _EDispBase(IRFMap):
    hdu_name = "EDISP"

    @classmethod
    def from_hdulist(
        cls,
        hdulist: fits.HDUList,
        hdu: str = "EDISP",
        hdu_bands: str | None = None,
        exposure_hdu: str | None = "EDISP_EXPOSURE",
    ):
        """Read the map and its exposure map (if that HDU exists) from an open FITS file."""
        parts = cls._read_parts(hdulist, hdu, hdu_bands, exposure_hdu)
        edisp = cls(
            parts["data"],
            parts["geom"],
            exposure=parts.get("exposure"),
            exposure_geom=parts.get("exposure_geom"),
            unit=parts["unit"],
            exposure_unit=parts.get("exposure_unit", "m2 s"),
        )
        edisp._native_f8 = False
        return edisp

    @classmethod
    def read(cls, filename: Any, hdu: str = "EDISP", exposure_hdu: str | None = "EDISP_EXPOSURE"):
        with fits.open(filename, memmap=False) as hdulist:
            return cls.from_hdulist(hdulist, hdu=hdu, exposure_hdu=exposure_hdu)

    @property
    def edisp_values(self) -> np.ndarray:
        """Map values, shape ``(n_true, n_second_axis, ny, nx)`` (the file's precision)."""
        return self._data

    @property
    def energy_axis_true(self) -> MapAxis:
        return self._geom.axis("energy_true")

    def _position(self, position: Any) -> SkyCoord:
        if isinstance(position, MapAxis):
            raise TypeError(
                f"{type(self).__name__}.get_edisp_kernel: the arguments are (position, energy_axis); "
                "pass energy_axis by keyword"
            )
        if position is None:
            return self._geom.center_skydir
        return check_position(position, type(self).__name__)

    def _pixel_values(self, position: SkyCoord) -> np.ndarray:
        """Values at the nearest pixel (scipy's nearest-neighbour rule on the pixel grid, as
        ``Map.to_region_nd_map``; non-finite values become 0)."""
        x, y = position_pix(self._geom, position)
        nx, ny = self._geom.npix
        values = self._data[..., nearest_index(ny, y), nearest_index(nx, x)]
        if np.any(np.isfinite(self._data)):
            values = np.where(np.isfinite(values), values, values.dtype.type(0))
        return values

    # -- map operations ------------------------------------------------------------------------------
    def cutout(self, position: Any, width: Any, mode: str = "trim", min_npix: int = 3) -> Any:
        """The map and its exposure map cut out around ``position`` (Gammapy's ``IRFMap.cutout``)."""
        return cutout_irf_map(self, position, width, mode=mode, min_npix=min_npix)

    def stack(self, other: Any, weights: Any = None) -> Any:
        """A new map: ``other`` (one map or a list, on this grid or cutouts of it) stacked into this
        one, weighted by exposure (Gammapy's ``IRFMap.stack``; see :func:`jaxgamma.irf.psf.stack_irf_maps`)."""
        single = isinstance(other, _EDispBase)
        others = [other] if single else list(other)
        if weights is not None and single:
            weights = [weights]
        return stack_irf_maps(self, others, weights)


class EDispKernelMap(_EDispBase):
    """Energy-dispersion kernel map: ``edisp_values[E_true, E_reco, lat, lon]``.

    Parameters
    ----------
    data : numpy array, shape ``(n_true, n_reco, ny, nx)``
    geom : WcsGeom
        Geometry with the axes ``energy`` then ``energy_true``.
    exposure : numpy array, optional
        Exposure map on ``exposure_geom`` (``energy`` squashed to one bin).
    exposure_geom : WcsGeom, optional
    unit : str
        Unit of the kernel values ('').
    exposure_unit : str
    """

    tag = "edisp_kernel_map"
    required_axes = ("energy", "energy_true")

    def __init__(
        self,
        data: Any,
        geom: WcsGeom,
        exposure: Any = None,
        exposure_geom: WcsGeom | None = None,
        unit: str | u.UnitBase = "",
        exposure_unit: str | u.UnitBase = "m2 s",
    ):
        super().__init__(data, geom, unit, exposure, exposure_geom, exposure_unit)
        if len(geom.axes) != 2:
            raise ValueError(
                f"EDispKernelMap: the axes must be ['energy', 'energy_true'], got {geom.axes_names[2:]}"
            )

    @property
    def energy_axis(self) -> MapAxis:
        return self._geom.axis("energy")

    @classmethod
    def from_geom(cls, geom: WcsGeom) -> EDispKernelMap:
        """Diagonal response (overlap fractions, float32 as Gammapy's) in every pixel of ``geom``,
        with a zero exposure map in m2 s."""
        energy_axis = geom.axis("energy")
        energy_axis_true = geom.axis("energy_true")
        data = np.zeros(geom.data_shape, dtype=np.float32)
        data += overlap_fraction(energy_axis, energy_axis_true)[:, :, np.newaxis, np.newaxis].astype(
            np.float32
        )
        exposure_geom = squash_first_axis(geom)
        return cls(
            data,
            geom,
            exposure=np.zeros(exposure_geom.data_shape, dtype=np.float32),
            exposure_geom=exposure_geom,
        )

    @classmethod
    def from_diagonal_response(
        cls, energy_axis: MapAxis, energy_axis_true: MapAxis, geom: WcsGeom | None = None
    ) -> EDispKernelMap:
        """Diagonal response on ``geom``'s pixels (default an all-sky 2 x 1 pixel CAR grid)."""
        _check_energy_axis(energy_axis, "energy", "EDispKernelMap.from_diagonal_response")
        _check_energy_axis(energy_axis_true, "energy_true", "EDispKernelMap.from_diagonal_response")
        if geom is None:
            geom = WcsGeom.create(npix=(2, 1), proj="CAR", binsz=180, axes=[energy_axis, energy_axis_true])
        else:
            geom = geom.replace_axes([energy_axis, energy_axis_true])
        return cls.from_geom(geom)

    def resample_energy_axis(self, energy_axis: MapAxis, weights: Any = None) -> EDispKernelMap:
        """The reconstructed-energy bins grouped onto ``energy_axis`` (whose edges must be some of
        the map's), summed after multiplying by ``weights`` (Gammapy's ``resample_energy_axis``;
        the true-energy axis and the exposure map are kept)."""
        from ..geom.resample import resample_axis_data

        data = resample_axis_data(
            self._data,
            self.energy_axis,
            energy_axis,
            self._data_axis(self._geom, "energy"),
            weights,
            what="EDispKernelMap.resample_energy_axis",
        )
        geom = self._geom.replace_axes([energy_axis.to_unit(self.energy_axis.unit), self.energy_axis_true])
        return self._new_like(data, geom)

    def get_edisp_kernel(
        self, position: SkyCoord | None = None, energy_axis: MapAxis | None = None
    ) -> EDispKernel:
        """Kernel at the nearest valid pixel of ``position`` (default the map centre).

        ``energy_axis``, if given, must equal the map's reconstructed-energy axis (a check only).
        """
        if energy_axis is not None and not energy_axis.is_allclose(self.energy_axis):
            raise ValueError(
                f"EDispKernelMap.get_edisp_kernel: energy_axis {energy_axis!r} differs from the map's "
                f"{self.energy_axis!r}"
            )
        position = self._nearest_valid_position(self._position(position))
        return EDispKernel(self.energy_axis_true, self.energy_axis, self._pixel_values(position))

    def __repr__(self) -> str:
        return f"EDispKernelMap(shape={self._data.shape})"


class EDispMap(_EDispBase):
    """Energy-dispersion map: migration pdf ``edisp_values[E_true, migra, lat, lon]``.

    Parameters
    ----------
    data : numpy array, shape ``(n_true, n_migra, ny, nx)``
    geom : WcsGeom
        Geometry with the axes ``migra`` then ``energy_true``.
    exposure, exposure_geom, unit, exposure_unit
        As :class:`EDispKernelMap`.
    """

    tag = "edisp_map"
    required_axes = ("migra", "energy_true")

    def __init__(
        self,
        data: Any,
        geom: WcsGeom,
        exposure: Any = None,
        exposure_geom: WcsGeom | None = None,
        unit: str | u.UnitBase = "",
        exposure_unit: str | u.UnitBase = "m2 s",
    ):
        super().__init__(data, geom, unit, exposure, exposure_geom, exposure_unit)
        if len(geom.axes) != 2:
            raise ValueError(
                f"EDispMap: the axes must be ['migra', 'energy_true'], got {geom.axes_names[2:]}"
            )

    @property
    def migra_axis(self) -> MapAxis:
        return self._geom.axis("migra")

    @classmethod
    def from_geom(cls, geom: WcsGeom) -> EDispMap:
        """Diagonal migration pdf (migra = 1 shared linearly between the two nearest bins, as
        Gammapy's ``EDispMap.from_geom``) with a zero exposure map in m2 s."""
        migra_axis = geom.axis("migra")
        migra_0 = coord_to_pix(migra_axis, 1.0)
        migra = np.arange(migra_axis.nbin, dtype=float)
        distance = np.abs(migra - migra_0)
        pdf = np.where(distance < 1, 1 - distance, 0) / np.diff(axis_edges(migra_axis))
        data = np.broadcast_to(pdf[np.newaxis, :, np.newaxis, np.newaxis], geom.data_shape).astype(np.float64)
        exposure_geom = squash_first_axis(geom)
        return cls(
            data,
            geom,
            exposure=np.zeros(exposure_geom.data_shape, dtype=np.float32),
            exposure_geom=exposure_geom,
        )

    @classmethod
    def from_diagonal_response(cls, energy_axis_true: MapAxis, migra_axis: MapAxis | None = None) -> EDispMap:
        """All-sky (2 x 1 pixels) diagonal EDispMap; default migra edges ``1 -/+ 1e-5`` in 3 bins."""
        if migra_axis is None:
            migra_axis = MapAxis.from_bounds(1 - 1e-5, 1 + 1e-5, nbin=3, name="migra", node_type="edges")
        geom = WcsGeom.create(npix=(2, 1), proj="CAR", binsz=180, axes=[migra_axis, energy_axis_true])
        return cls.from_geom(geom)

    def normalize(self) -> EDispMap:
        """The migration pdf normalised to ``sum dmigra P = 1`` in every pixel and true-energy bin
        (Gammapy's ``EDispMap.normalize``)."""
        return normalize_irf_map(self, "migra")

    def _kernel_values(self, data: np.ndarray, energy_axis: MapAxis, threshold: float) -> np.ndarray:
        """Gammapy's ``to_edisp_kernel_map`` arithmetic on migration pdfs ``data[E_true, migra, ...]``;
        returns ``K[E_true, E_reco, ...]``."""
        migra_axis, true_axis = self.migra_axis, self.energy_axis_true
        shape = (1, -1) + (1,) * (data.ndim - 2)
        cumsum = data * np.diff(axis_edges(migra_axis)).reshape(shape)
        cumsum = np.insert(cumsum.cumsum(axis=1), 0, 0, axis=1)
        pad = [(0, 0), (1, 1)] + [(0, 0)] * (data.ndim - 2)
        cumsum = np.pad(cumsum, pad, mode="edge")
        migra_pad = pad_axis(
            MapAxis.from_nodes(axis_edges(migra_axis), name="migra", interp=migra_axis.interp), 1
        )

        energy_edges = axis_edges(energy_axis)
        energy_true = axis_center(true_axis)
        migra = energy_edges[np.newaxis, :] / energy_true[:, np.newaxis]
        scale = _unit_ratio(energy_axis.unit, true_axis.unit)
        if scale != 1.0:
            migra = migra * scale
        pix_migra = coord_to_pix(migra_pad, migra)
        pix_true = np.broadcast_to(coord_to_pix(true_axis, energy_true)[:, np.newaxis], pix_migra.shape)
        values = _interp_migra_true(np.moveaxis(cumsum, 0, 1), pix_migra, pix_true)
        values = np.diff(values, axis=1)
        values = np.clip(values, 0, np.inf)
        values[values < threshold] = 0
        return values

    def to_edisp_kernel_map(self, energy_axis: MapAxis, threshold: float = EDISP_THRESHOLD) -> EDispKernelMap:
        """Kernel map on the reconstructed-energy axis ``energy_axis`` (every pixel).

        Pixels are taken at their centres exactly; Gammapy interpolates at world -> pixel round-trip
        coordinates, which can differ from the centre by ~1e-12 pixel (differences ~1e-12 relative).
        """
        _check_energy_axis(energy_axis, "energy", "EDispMap.to_edisp_kernel_map")
        data = self._data
        if np.any(np.isfinite(data)):
            data = np.where(np.isfinite(data), data, data.dtype.type(0))
        kernel = self._kernel_values(data, energy_axis, threshold)
        geom = self._geom.replace_axes([energy_axis, self.energy_axis_true])
        exposure_geom = squash_first_axis(geom) if self._exposure is not None else None
        return EDispKernelMap(
            kernel,
            geom,
            exposure=self._exposure,
            exposure_geom=exposure_geom,
            exposure_unit=self._exposure_unit,
        )

    def get_edisp_kernel(
        self, position: SkyCoord | None = None, energy_axis: MapAxis | None = None
    ) -> EDispKernel:
        """Kernel on ``energy_axis`` (required) at the nearest pixel of ``position`` (default the map
        centre; not snapped to a valid pixel, as Gammapy)."""
        position = self._position(position)
        if energy_axis is None:
            raise ValueError(
                "EDispMap.get_edisp_kernel: energy_axis (the reconstructed-energy axis) is required"
            )
        _check_energy_axis(energy_axis, "energy", "EDispMap.get_edisp_kernel")
        values = self._pixel_values(position)
        return EDispKernel(
            self.energy_axis_true, energy_axis, self._kernel_values(values, energy_axis, EDISP_THRESHOLD)
        )

    def __repr__(self) -> str:
        return f"EDispMap(shape={self._data.shape})"


def _interp_migra_true(values: np.ndarray, pix_migra: np.ndarray, pix_true: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values[migra, E_true, ...]`` at pixel coordinates, as scipy's 2D
    fast path evaluates it (Gammapy's ``Map.integral`` on a one-position map); trailing dimensions
    (pixels) are carried along."""
    i0, y0 = _find_indices(np.arange(values.shape[0], dtype=float), pix_migra.ravel())
    if values.shape[1] == 1:
        # scipy drops a length-1 dimension; a duplicated column with weight 0 gives the same sums
        values = np.concatenate([values, values], axis=1)
        i1, y1 = np.zeros_like(i0), np.zeros_like(y0)
    else:
        i1, y1 = _find_indices(np.arange(values.shape[1], dtype=float), pix_true.ravel())
    extra = (slice(None),) + (np.newaxis,) * (values.ndim - 2)
    y0, y1 = y0[extra], y1[extra]
    out = (
        values[i0, i1] * (1 - y0) * (1 - y1)
        + values[i0, i1 + 1] * (1 - y0) * y1
        + values[i0 + 1, i1] * y0 * (1 - y1)
        + values[i0 + 1, i1 + 1] * y0 * y1
    )
    return out.reshape(pix_migra.shape + values.shape[2:])


def read_edisp_map(
    hdulist: fits.HDUList,
    hdu: str = "EDISP",
    hdu_bands: str | None = None,
    exposure_hdu: str | None = "EDISP_EXPOSURE",
) -> EDispKernelMap | EDispMap:
    """The energy-dispersion map of a FITS file: an :class:`EDispKernelMap` when its first
    non-spatial axis is ``energy`` (Gammapy's rule), an :class:`EDispMap` otherwise."""
    if hdu not in hdulist:
        raise ValueError(f"read_edisp_map: the FITS file has no HDU {hdu!r}")
    image, bands, format = find_map_hdus(hdulist, hdu, hdu_bands)
    geom = WcsGeom.from_header(image.header, bands, format=format)
    first = geom.axes[0].name if geom.axes else None
    cls = EDispKernelMap if first == "energy" else EDispMap
    return cls.from_hdulist(hdulist, hdu=hdu, hdu_bands=hdu_bands, exposure_hdu=exposure_hdu)
