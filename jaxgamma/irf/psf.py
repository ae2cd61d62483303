"""PSF maps and PSF kernels at a sky position (numpy; computed once per source position).

:class:`PSFMap` holds Gammapy's DL4 PSF map: the PSF in sr^-1 on a coarse WCS grid with a ``rad``
(offset from the source) axis and a true-energy axis, plus the exposure map that weighted it.
:meth:`PSFMap.get_psf_kernel` reproduces Gammapy 2.1's ``PSFMap.get_psf_kernel``:

1. the position is snapped to the nearest pixel with a valid PSF if its own pixel has none;
2. ``radii[j]``, the ``containment`` radius at PSF-map energy node ``j`` (cumulative sum over
   ``rad`` of ``2 pi r dr PSF``, interpolated on a rad axis upsampled 20 times, argmin of the
   distance to the fraction); ``max_radius = max(radii)`` unless given;
3. the kernel geometry is the target geometry's ``to_odd_npix(max_radius)``: a square WCS with the
   same projection and pixel size, centred on the target geometry's centre;
4. kernel plane ``i`` (true-energy bin ``i`` of the target geometry, paired with ``radii[i]`` as
   Gammapy pairs them) is computed on ``to_odd_npix(radii[i])`` upsampled by
   ``f_i = min(ceil(precision_factor / (2 r68(E_i) / pix)), 4)``: the PSF interpolated (linearly
   in pixel space, as ``Map.interp_by_coord``) at the separation of each sub-pixel centre from the
   kernel centre, clipped at 0, summed back over the ``f_i x f_i`` blocks, rounded to float32;
5. each plane is normalised to sum 1 in float32 (planes without support stay 0).

The kernel values are Gammapy's float32 values exactly; :attr:`PSFKernel.data` holds them cast
to float64.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.nddata import block_reduce

from ..geom import MapAxis, WcsGeom
from ..units import parse_unit, unit_str
from ._core import (
    IRFMap,
    _energy_axis_name,
    axis_center,
    axis_coord_to_idx,
    axis_edges,
    check_position,
    convert,
    coord_to_pix,
    pad_axis,
    position_pix,
    rgi_linear,
    scale_points,
    squash_first_axis,
    upsample_axis,
)

__all__ = ["PSF_MAX_OVERSAMPLING", "PSFKernel", "PSFMap"]

PSF_MAX_OVERSAMPLING = 4
"""Largest sub-pixel factor of the kernel computation (Gammapy's ``PSF_MAX_OVERSAMPLING``)."""

_CONTAINMENT_UPSAMPLING = 20


class PSFKernel:
    """A PSF convolution kernel: one normalised image per energy bin.

    Parameters
    ----------
    data : numpy array, shape ``(n_energy, ny, nx)``
        Kernel values; each plane sums to 1 (or is all 0). Gammapy's float32 values cast to
        float64 when the kernel comes from :meth:`PSFMap.get_psf_kernel`.
    geom : WcsGeom
        Kernel geometry (odd ``npix``, centred on the kernel centre) with the energy axis.
    """

    def __init__(self, data: Any, geom: WcsGeom):
        data = np.asarray(data, dtype=np.float64)
        if data.shape != geom.data_shape:
            raise ValueError(
                f"PSFKernel: data shape {data.shape} does not match the geometry {geom.data_shape}"
            )
        data.setflags(write=False)
        self._data = data
        self._geom = geom

    @property
    def data(self) -> np.ndarray:
        """Kernel values, float64, shape ``(n_energy, ny, nx)`` (read-only)."""
        return self._data

    @property
    def geom(self) -> WcsGeom:
        return self._geom

    @property
    def width(self) -> tuple[float, float]:
        """Kernel map width (lon, lat) in deg."""
        return self._geom.width

    @property
    def psf_width(self) -> float:
        """``max(kernel map width)`` in deg: Gammapy's ``MapEvaluator.psf_width``, which widens the
        exposure cutouts and the ``contributes`` test."""
        return float(max(self._geom.width))

    def __repr__(self) -> str:
        return f"PSFKernel(shape={self._data.shape}, width={self.psf_width:.4g} deg)"


class PSFMap(IRFMap):
    """PSF map: ``psf_values[energy, rad, lat, lon]`` in sr^-1, with its exposure map.

    Parameters
    ----------
    psf_values : numpy array
        PSF values, shape ``geom.data_shape`` = ``(n_energy, n_rad, ny, nx)``.
    geom : WcsGeom
        Geometry with the axes ``rad`` and then ``energy_true`` (or ``energy`` for a PSF in
        reconstructed energy, Gammapy's ``RecoPSFMap``).
    exposure : numpy array, optional
        Exposure map, shape ``exposure_geom.data_shape`` (``rad`` squashed to one bin).
    exposure_geom : WcsGeom, optional
    unit : str
        Unit of the PSF values (sr-1).
    exposure_unit : str
    """

    tag = "psf_map"
    hdu_name = "PSF"
    required_axes = ("rad",)

    def __init__(
        self,
        psf_values: Any,
        geom: WcsGeom,
        exposure: Any = None,
        exposure_geom: WcsGeom | None = None,
        unit: str | u.UnitBase = "sr-1",
        exposure_unit: str | u.UnitBase = "cm2 s",
    ):
        super().__init__(psf_values, geom, unit, exposure, exposure_geom, exposure_unit)
        names = [a.name for a in geom.axes]
        if len(names) != 2 or names[1] not in ("energy_true", "energy"):
            raise ValueError(
                f"PSFMap: the axes must be ['rad', 'energy_true'] (or ['rad', 'energy']), got {names}"
            )
        if not parse_unit(self._unit).is_equivalent("sr-1"):
            raise ValueError(f"PSFMap: the PSF unit must be a solid angle^-1, got {self._unit!r}")
        self._energy_name = names[1]
        self._cumsum_cache: np.ndarray | None = None
        # kernels already built, by (position, geometry, options): a refit from the same start
        # re-plans its datasets and would otherwise rebuild the same kernel (the map is immutable)
        self._kernel_cache: dict[Any, PSFKernel] = {}

    # -- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_hdulist(
        cls,
        hdulist: fits.HDUList,
        hdu: str = "PSF",
        hdu_bands: str | None = None,
        exposure_hdu: str | None = "PSF_EXPOSURE",
    ) -> PSFMap:
        """Read a GADF PSF map and its exposure map (if that HDU exists) from an open FITS file."""
        parts = cls._read_parts(hdulist, hdu, hdu_bands, exposure_hdu)
        psf_map = cls(
            parts["data"],
            parts["geom"],
            exposure=parts.get("exposure"),
            exposure_geom=parts.get("exposure_geom"),
            unit=parts["unit"] or "sr-1",
            exposure_unit=parts.get("exposure_unit", "cm2 s"),
        )
        psf_map._native_f8 = False
        return psf_map

    @classmethod
    def read(cls, filename: Any, hdu: str = "PSF", exposure_hdu: str | None = "PSF_EXPOSURE") -> PSFMap:
        with fits.open(filename, memmap=False) as hdulist:
            return cls.from_hdulist(hdulist, hdu=hdu, exposure_hdu=exposure_hdu)

    @classmethod
    def from_geom(cls, geom: WcsGeom) -> PSFMap:
        """Zero PSF map (float32, as Gammapy's) on ``geom`` with a zero exposure map in m2 s."""
        return cls(
            np.zeros(geom.data_shape, dtype=np.float32),
            geom,
            exposure=np.zeros(squash_first_axis(geom).data_shape, dtype=np.float32),
            exposure_unit="m2 s",
        )

    # -- properties ----------------------------------------------------------------------------------
    @property
    def psf_values(self) -> np.ndarray:
        """PSF values in :attr:`unit`, shape ``(n_energy, n_rad, ny, nx)`` (the file's precision)."""
        return self._data

    @property
    def energy_name(self) -> str:
        """``"energy_true"``, or ``"energy"`` for a PSF in reconstructed energy."""
        return self._energy_name

    @property
    def energy_axis(self) -> MapAxis:
        return self._geom.axis(self._energy_name)

    @property
    def rad_axis(self) -> MapAxis:
        return self._geom.axis("rad")

    def _position(self, position: SkyCoord | None) -> SkyCoord:
        if position is None:
            return self._geom.center_skydir
        return check_position(position, "PSFMap")

    def _energies(self, energy: Any) -> np.ndarray:
        """Energies in the PSF energy-axis unit (Quantity, or floats in TeV)."""
        if isinstance(energy, u.Quantity):
            return np.atleast_1d(
                energy.to_value(parse_unit(self.energy_axis.unit), equivalencies=u.spectral())
            )
        return np.atleast_1d(convert(energy, "TeV", self.energy_axis.unit or "TeV"))

    # -- containment ---------------------------------------------------------------------------------
    @property
    def _rad_cumsum(self) -> np.ndarray:
        """Gammapy's ``IRF.cumsum("rad")``: cumulative sum of ``2 pi r dr PSF`` over rad."""
        if self._cumsum_cache is None:
            rad = self.rad_axis
            shape = (1, -1, 1, 1)
            values = self._data * np.diff(axis_edges(rad)).reshape(shape)
            values = 2 * np.pi * axis_center(rad).reshape(shape) * values
            self._cumsum_cache = values.cumsum(axis=1)
        return self._cumsum_cache

    def _containment_unit_factor(self) -> float:
        unit = parse_unit(self._unit) * parse_unit(self.rad_axis.unit) * parse_unit(self.rad_axis.unit)
        return float(unit.to(u.dimensionless_unscaled))

    def _containment_radius_native(
        self, fraction: float, energy: np.ndarray, position: SkyCoord
    ) -> np.ndarray:
        """Containment radii in the rad-axis unit at energies in the energy-axis unit (Gammapy's
        ``PSF.containment_radius`` on the map's ``IRFLikePSF``)."""
        energy_axis, rad_axis = self.energy_axis, self.rad_axis
        nx, ny = self._geom.npix
        x, y = position_pix(self._geom, position)
        energy = np.asarray(energy, dtype=np.float64)
        rad_cum_axis = MapAxis.from_nodes(axis_edges(rad_axis)[1:], name="rad", interp=rad_axis.interp)
        lat_axis = MapAxis.from_edges(np.arange(ny + 1) - 0.5, name="lat_idx")
        lon_axis = MapAxis.from_edges(np.arange(nx + 1) - 0.5, name="lon_idx")
        rad = axis_center(upsample_axis(rad_axis, _CONTAINMENT_UPSAMPLING))
        rad = rad.reshape((-1,) + (1,) * energy.ndim)
        grids = [
            scale_points(axis_center(energy_axis), energy_axis.interp),
            scale_points(axis_center(rad_cum_axis), rad_cum_axis.interp),
            axis_center(lat_axis),
            axis_center(lon_axis),
        ]
        xi = [scale_points(energy, energy_axis.interp), scale_points(rad, rad_axis.interp), y, x]
        values = rgi_linear(grids, self._rad_cumsum, xi, fast_path=True)
        values = np.clip(values, 0, np.inf)
        invalid = np.broadcast_arrays(
            axis_coord_to_idx(energy_axis, energy).reshape(energy.shape) == -1,
            axis_coord_to_idx(rad_cum_axis, rad).reshape(rad.shape) == -1,
            axis_coord_to_idx(lat_axis, y)[0] == -1,
            axis_coord_to_idx(lon_axis, x)[0] == -1,
        )
        mask = np.any(invalid, axis=0)
        values[mask] = 0.0
        values[~np.isfinite(values)] = 0.0
        factor = self._containment_unit_factor()
        containment = values if factor == 1.0 else values * factor
        idx = np.argmin(np.abs(containment - fraction), axis=0)
        return rad[idx].reshape(energy.shape)

    def containment_radius(
        self, fraction: float, energy_true: Any = None, position: SkyCoord | None = None
    ) -> np.ndarray:
        """Radius (deg) containing ``fraction`` of the PSF, as Gammapy's ``PSFMap.containment_radius``.

        Parameters
        ----------
        fraction : float
            Containment fraction (0 to 1).
        energy_true : Quantity or float array (TeV), optional
            True energies; default the PSF map's energy nodes.
        position : SkyCoord, optional
            Sky position; default the map centre. Not snapped to a valid pixel (as Gammapy).
        """
        if energy_true is None:
            energy = axis_center(self.energy_axis)
        else:
            energy = self._energies(energy_true)
        radius = self._containment_radius_native(float(fraction), energy, self._position(position))
        return convert(radius, self.rad_axis.unit or "deg", "deg")

    def containment(self, rad: Any, energy_true: Any, position: SkyCoord | None = None) -> np.ndarray:
        """PSF containment within ``rad`` (deg or Quantity) at ``energy_true`` (TeV or Quantity).

        Gammapy's ``PSFMap.containment`` (``Map.integral`` over rad: cumulative sum padded at its
        edges and interpolated linearly in pixel space). Arguments broadcast together.
        """
        position = self._position(position)
        rad_axis, energy_axis = self.rad_axis, self.energy_axis
        if isinstance(rad, u.Quantity):
            rad = rad.to_value(parse_unit(rad_axis.unit))
        else:
            rad = convert(rad, "deg", rad_axis.unit or "deg")
        if isinstance(energy_true, u.Quantity):
            energy = energy_true.to_value(parse_unit(energy_axis.unit), equivalencies=u.spectral())
        else:
            energy = convert(energy_true, "TeV", energy_axis.unit or "TeV")
        shape = (1, -1, 1, 1)
        edges = axis_edges(rad_axis)
        values = self._data * np.diff(edges).reshape(shape)
        values = 2 * np.pi * axis_center(rad_axis).reshape(shape) * values
        cumsum = np.insert(values.cumsum(axis=1), 0, 0, axis=1)
        cumsum = np.pad(cumsum, [(0, 0), (1, 1), (0, 0), (0, 0)], mode="edge")
        rad_pad = pad_axis(MapAxis.from_nodes(edges, name="rad", interp=rad_axis.interp), 1)
        x, y = position_pix(self._geom, position)
        xi = [x, y, coord_to_pix(rad_pad, rad), coord_to_pix(energy_axis, energy)]
        grids = [np.arange(n, dtype=float) for n in cumsum.shape[::-1]]
        values = rgi_linear(grids, cumsum.T, xi, fast_path=True)
        factor = self._containment_unit_factor()
        return values if factor == 1.0 else values * factor

    # -- kernels -----------------------------------------------------------------------------------
    def _upsampling_factors(self, geom: WcsGeom, position: SkyCoord, precision_factor: float) -> list[int]:
        """Gammapy's ``_psf_upsampling_factor``: one factor per energy bin of ``geom``."""
        axis = geom.axis(self._energy_name)
        energy = convert(axis_center(axis), axis.unit or "TeV", self.energy_axis.unit or "TeV")
        r68 = self._containment_radius_native(0.68, energy, position)
        pix = max(geom.pixel_scales) * u.deg
        factors = []
        for radius in r68:
            base = (2 * (radius * parse_unit(self.rad_axis.unit)) / pix).to_value("")
            factor = (
                PSF_MAX_OVERSAMPLING
                if base == 0
                else min(int(np.ceil(precision_factor / base)), PSF_MAX_OVERSAMPLING)
            )
            factors.append(factor)
        return factors

    def _kernel_radii(
        self, position: SkyCoord, containment: float, max_radius: Any
    ) -> tuple[u.Quantity, u.Quantity]:
        radii = self._containment_radius_native(containment, axis_center(self.energy_axis), position)
        radii = u.Quantity(radii, parse_unit(self.rad_axis.unit))
        if max_radius is None:
            return radii, np.max(radii)
        max_radius = (
            Angle(max_radius, "deg") if not isinstance(max_radius, u.Quantity) else u.Quantity(max_radius)
        )
        radii[radii > max_radius] = max_radius
        return radii, max_radius

    def _check_geom(self, geom: Any, position: Any) -> WcsGeom:
        if isinstance(geom, SkyCoord) and isinstance(position, WcsGeom):
            raise TypeError("PSFMap.get_psf_kernel: the arguments are (position, geom), in this order")
        if not isinstance(geom, WcsGeom):
            raise TypeError(f"PSFMap: geom must be a WcsGeom, got {type(geom).__name__}")
        _energy_axis_name(geom, [self._energy_name])
        return geom

    def get_psf_kernel(
        self,
        position: SkyCoord | None,
        geom: WcsGeom,
        containment: float = 0.999,
        max_radius: Any = None,
        precision_factor: float = 12,
    ) -> PSFKernel:
        """PSF kernel at ``position`` for maps on ``geom``, as Gammapy's ``PSFMap.get_psf_kernel``.

        Parameters
        ----------
        position : SkyCoord or None
            Source position (None: the PSF map centre); snapped to the nearest valid PSF pixel.
        geom : WcsGeom
            Target geometry with the PSF's energy axis (the dataset's exposure geometry, or the
            counts geometry for a PSF in reconstructed energy). Only its projection, pixel size,
            centre and energy axis matter: the kernel is centred on the geometry centre.
        containment : float
            Containment fraction that sets the kernel radius per energy.
        max_radius : Quantity, str or float (deg), optional
            Upper limit of the kernel radius; default the largest containment radius.
        precision_factor : float
            Sub-pixel factor is ``min(ceil(precision_factor / (2 r68 / pixel size)), 4)``.

        Returns
        -------
        PSFKernel
        """
        geom = self._check_geom(geom, position)
        position = self._nearest_valid_position(self._position(position))
        sph = position.spherical
        key = (
            float(sph.lon.deg),
            float(sph.lat.deg),
            position.frame.name,
            geom,
            float(containment),
            None if max_radius is None else str(max_radius),
            float(precision_factor),
        )
        cached = self._kernel_cache.get(key)
        if cached is not None:
            return cached
        kernel = self._build_kernel(position, geom, containment, max_radius, precision_factor)
        if len(self._kernel_cache) >= _KERNEL_CACHE_SIZE:
            self._kernel_cache.pop(next(iter(self._kernel_cache)))
        self._kernel_cache[key] = kernel
        return kernel

    def _build_kernel(
        self, position: SkyCoord, geom: WcsGeom, containment: float, max_radius: Any, precision_factor: float
    ) -> PSFKernel:
        radii, max_radius = self._kernel_radii(position, containment, max_radius)
        factors = self._upsampling_factors(geom, position, precision_factor)
        kernel_geom = _to_odd_npix(geom, max_radius)
        center = kernel_geom.center_skydir
        n_planes = kernel_geom.data_shape[0]
        kernel = np.zeros(kernel_geom.data_shape, dtype=np.float32)

        energy_axis, rad_axis = self.energy_axis, self.rad_axis
        target_axis = geom.axis(self._energy_name)
        energy = convert(axis_center(target_axis), target_axis.unit or "TeV", energy_axis.unit or "TeV")
        x, y = position_pix(self._geom, position)
        values = self._data
        if np.any(np.isfinite(values)):
            values = np.where(np.isfinite(values), values, values.dtype.type(0))
        values_t = values.T
        grids = [np.arange(n, dtype=float) for n in values.shape[::-1]]
        fast_path = self._native_f8 and values.dtype == np.float64
        e_pix = coord_to_pix(energy_axis, energy)
        ny_k, nx_k = kernel.shape[-2:]
        kernel_image = kernel_geom.to_image()
        binsz = max(kernel_image.pixel_scales)
        cache: dict[tuple[int, int], np.ndarray] = {}
        for idx in range(min(n_planes, len(radii))):
            factor = factors[idx]
            key = (_odd_npix(radii[idx], binsz), factor)
            if key not in cache:
                cut = _to_odd_npix(kernel_image, radii[idx])
                lon, lat = cut.upsample(factor).get_coord()
                separation = SkyCoord(lon, lat, unit="deg", frame=cut.frame).separation(center)
                cache[key] = coord_to_pix(rad_axis, separation.to_value(parse_unit(rad_axis.unit)))
            rad_pix = cache[key]
            data = rgi_linear(grids, values_t, [x, y, rad_pix, e_pix[idx]], fast_path=fast_path)
            data = np.clip(data, 0, np.inf)[np.newaxis]
            if factor > 1:
                data = block_reduce(data, (1, factor, factor), func=np.nansum)
            ny_c, nx_c = data.shape[-2:]
            oy, ox = (ny_k - ny_c) // 2, (nx_k - nx_c) // 2
            kernel[idx, oy : oy + ny_c, ox : ox + nx_c] = data[0].astype(np.float32)

        with np.errstate(divide="ignore", invalid="ignore"):
            kernel = np.nan_to_num(kernel / kernel.sum(axis=(1, 2), keepdims=True))
        return PSFKernel(kernel, kernel_geom)

    def kernel_width_deg(
        self,
        geom: WcsGeom,
        position: SkyCoord | None = None,
        containment: float = 0.999,
        max_radius: Any = None,
    ) -> float:
        """Width (deg) of the kernel :meth:`get_psf_kernel` would return: Gammapy's ``psf_width``
        (``max(kernel map width)``), without computing the kernel."""
        geom = self._check_geom(geom, position)
        position = self._nearest_valid_position(self._position(position))
        _, max_radius = self._kernel_radii(position, containment, max_radius)
        return float(max(_to_odd_npix(geom.to_image(), max_radius).width))

    # -- map operations ------------------------------------------------------------------------------
    def cutout(self, position: Any, width: Any, mode: str = "trim", min_npix: int = 3) -> PSFMap:
        """The map and its exposure map cut out around ``position`` (Gammapy's ``IRFMap.cutout``)."""
        return cutout_irf_map(self, position, width, mode=mode, min_npix=min_npix)

    def stack(self, other: Any, weights: Any = None) -> PSFMap:
        """A new map: ``other`` (one map or a list, on this grid or cutouts of it) stacked into this
        one, weighted by exposure (Gammapy's ``IRFMap.stack``; see :func:`stack_irf_maps`)."""
        others = [other] if isinstance(other, PSFMap) else list(other)
        if weights is not None and isinstance(other, PSFMap):
            weights = [weights]
        return stack_irf_maps(self, others, weights)

    def normalize(self) -> PSFMap:
        """The PSF normalised so that ``sum 2 pi r dr PSF = 1`` in every pixel and energy bin, in
        ``rad-unit^-2`` (Gammapy's ``PSFMap.normalize``)."""
        return normalize_irf_map(self, "rad")

    def __repr__(self) -> str:
        return (
            f"PSFMap(shape={self._data.shape}, energy={self._energy_name!r}, "
            f"exposure={'yes' if self._exposure is not None else 'no'})"
        )


_KERNEL_CACHE_SIZE = 64


def _odd_npix(radius: u.Quantity, binsz: float) -> int:
    """Odd number of pixels of size ``binsz`` (deg) covering ``2 * radius`` (``round_up_to_odd``)."""
    width_npix = (2 * u.Quantity(radius) / (binsz * u.deg)).to_value("")
    return int(np.ceil(width_npix) // 2 * 2 + 1)


def _to_odd_npix(geom: WcsGeom, max_radius: u.Quantity) -> WcsGeom:
    """Gammapy's ``WcsGeom.to_odd_npix``: a square geometry centred on ``geom``'s centre with the
    same projection and pixel size and an odd number of pixels covering ``2 * max_radius``."""
    binsz = max(geom.pixel_scales)
    return WcsGeom.create(
        skydir=geom.center_skydir,
        binsz=binsz,
        npix=_odd_npix(max_radius, binsz),
        proj=geom.projection,
        frame=geom.frame,
        axes=geom.axes,
    )


# -- operations shared by the IRF maps (cutout, placement, stacking, normalisation) ---------------
def _is_aligned(geom: WcsGeom, other: WcsGeom, tolerance: float = 1e-6) -> bool:
    """Gammapy's ``WcsGeom.is_aligned``: equal non-spatial axes and WCS equal up to integer CRPIX
    shifts (``wcs.compare(cmp=WCSCOMPARE_TILING, tolerance=1e-6)``)."""
    if any(a != b for a, b in zip(geom.axes, other.axes, strict=False)):
        return False
    return bool(geom.wcs.wcs.compare(other.wcs.wcs, cmp=2, tolerance=tolerance))


def placement(geom: WcsGeom, parent: WcsGeom, what: str = "map") -> tuple[tuple, tuple] | None:
    """Where a map on ``geom`` goes in a map on ``parent``: None when the image geometries are
    equal, otherwise ``(parent_slices, cutout_slices)`` in numpy (lat, lon) order, as Gammapy's
    ``Map.stack`` finds them (``geom.cutout_slices(parent)``, mode "partial"); a ValueError when
    ``geom`` is not a cutout of ``parent``'s pixel grid."""
    if geom.to_image() == parent.to_image():
        return None
    if not _is_aligned(geom.to_image(), parent.to_image()):
        raise ValueError(
            f"{what}: can only stack maps on the same geometry or cutouts of it; {geom!r} is not "
            f"aligned with {parent!r}"
        )
    slices = geom.cutout_slices(parent)
    return (Ellipsis, *slices["parent-slices"]), (Ellipsis, *slices["cutout-slices"])


def add_into(total: np.ndarray, values: np.ndarray, where: tuple[tuple, tuple] | None) -> None:
    """``total[parent region] += values[cutout region]`` (``where`` from :func:`placement`)."""
    if where is None:
        total += values
    else:
        total[where[0]] += values[where[1]]


def cutout_array(data: np.ndarray, geom: WcsGeom, slices_parent: tuple, slices_cutout: tuple) -> np.ndarray:
    """The values of ``data`` on the cutout geometry ``geom`` (0, or False, outside the parent)."""
    out = np.zeros(data.shape[:-2] + geom.data_shape_image, dtype=data.dtype)
    out[(Ellipsis, *slices_cutout)] = data[(Ellipsis, *slices_parent)]
    return out


def cutout_irf_map(irf_map: IRFMap, position: Any, width: Any, mode: str = "trim", min_npix: int = 3) -> Any:
    """Gammapy's ``IRFMap.cutout``: the IRF map and its exposure map cut out around ``position``
    (at least ``min_npix`` pixels a side, so that interpolation inside stays possible)."""
    geom, sp, sc = irf_map.geom.cutout_info(position, width, mode=mode, min_npix=min_npix)
    data = cutout_array(irf_map.data, geom, sp, sc)
    exposure = exposure_geom = None
    if irf_map.exposure is not None and irf_map.exposure_geom is not None:
        exposure_geom = WcsGeom(geom.wcs, geom.npix, axes=irf_map.exposure_geom.axes)
        exposure = cutout_array(irf_map.exposure, exposure_geom, sp, sc)
    return irf_map._new_like(data, geom, exposure=exposure, exposure_geom=exposure_geom)


def _unit_factor(unit_from: str, unit_to: str, what: str) -> float:
    try:
        return float((1.0 * parse_unit(unit_from or "")).to_value(parse_unit(unit_to or "")))
    except u.UnitConversionError as err:
        raise ValueError(f"{what}: {err}") from None


def _weight_pair(w: Any, irf_map: IRFMap) -> tuple[Any, Any]:
    """``(W, W')`` from a weight entry: None, an array (``W' = W`` ORed over a reconstructed
    ``energy`` axis, as Gammapy's ``IRFMap.stack``), or an explicit pair."""
    if w is None:
        return None, None
    if isinstance(w, tuple):
        return w
    w = np.asarray(w)
    names = [a.name for a in irf_map.geom.axes]
    if "energy" in names and w.ndim == irf_map.data.ndim:
        return w, np.any(w != 0, axis=w.ndim - 3 - names.index("energy"), keepdims=True)
    return w, w


def stack_irf_maps(
    reference: IRFMap,
    others: Any,
    weights: Any = None,
    reference_weights: Any = None,
    include_reference: bool = True,
) -> Any:
    """Gammapy's ``IRFMap.stack``, folded over ``others``, returning a new map on ``reference``'s
    geometry: the exposure-weighted mean ``sum_i D_i X_i W_i / sum_i X_i W'_i`` (0 where the
    summed exposure vanishes) and the summed exposure ``sum_i X_i W'_i``.

    ``others`` may be cutouts of the reference's pixel grid. ``weights`` (one per other, or None):
    None, an array broadcasting against the map's data (``W``; ``W'`` is ``W`` ORed over a
    reconstructed ``energy`` axis when the map has one), or a pair ``(W, W')``. The reference enters unweighted (Gammapy's in-place
    ``stack``), with ``reference_weights`` when given (``to_masked``), or not at all when
    ``include_reference`` is False. Non-finite products are set to 0, as ``nan_to_num``.
    """
    others = list(others)
    weights = [None] * len(others) if weights is None else list(weights)
    if len(weights) != len(others):
        raise ValueError("stack_irf_maps: one weight (or None) per map is needed")
    name = type(reference).__name__
    numerator = np.zeros(reference.data.shape)
    if reference.exposure is None or reference.exposure_geom is None:
        raise ValueError(
            f"{name}.stack: the reference map has no exposure map (Gammapy's IRFMap.stack needs one)"
        )
    exposure = np.zeros(reference.exposure.shape)
    items = list(zip(others, weights, strict=True))
    if include_reference:
        items.insert(0, (reference, reference_weights))
    for irf_map, w in items:
        what = f"{name}.stack"
        if type(irf_map) is not type(reference):
            raise TypeError(f"{what}: cannot stack a {type(irf_map).__name__}")
        if irf_map.exposure is None:
            raise ValueError(f"{what}: a map has no exposure map (Gammapy's IRFMap.stack needs one)")
        if tuple(irf_map.geom.axes) != tuple(reference.geom.axes):
            raise ValueError(
                f"{what}: the non-spatial axes differ ({irf_map.geom.axes_names} vs the reference's)"
            )
        where = placement(irf_map.geom, reference.geom, what)
        x = np.asarray(irf_map.exposure, dtype=np.float64) * _unit_factor(
            irf_map.exposure_unit, reference.exposure_unit, what
        )
        data = np.asarray(irf_map.data, dtype=np.float64) * _unit_factor(irf_map.unit, reference.unit, what)
        term = np.nan_to_num(data * x, nan=0.0, posinf=0.0, neginf=0.0)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        w_data, w_exposure = _weight_pair(w, irf_map)
        if w_data is not None:
            term = term * w_data
        if w_exposure is not None:
            x = x * w_exposure
        add_into(numerator, term, where)
        add_into(exposure, x, where)
    with np.errstate(invalid="ignore", divide="ignore"):
        data = np.nan_to_num(numerator / exposure, nan=0.0, posinf=0.0, neginf=0.0)
    return reference._new_like(data, reference.geom, exposure=exposure)


def normalize_irf_map(irf_map: IRFMap, axis_name: str) -> Any:
    """Gammapy's ``Map.normalize(axis_name)``: the values divided by the maximum of their cumulative
    integral along the axis (``sum dx`` values, with ``2 pi r dr`` for ``rad``); 0 where that is
    0. The unit becomes ``unit / (unit x axis unit [x axis unit for rad])``, e.g. ``deg-2`` for a
    PSF, as Gammapy's."""
    axis = irf_map.geom.axis(axis_name)
    names = [a.name for a in irf_map.geom.axes]
    index = irf_map.data.ndim - 3 - names.index(axis_name)
    shape = [1] * irf_map.data.ndim
    shape[index] = -1
    values = np.asarray(irf_map.data, dtype=np.float64) * np.diff(axis_edges(axis)).reshape(shape)
    unit = parse_unit(axis.unit or "")
    if axis_name == "rad":
        values = 2 * np.pi * axis_center(axis).reshape(shape) * values
        unit = unit * unit
    # Gammapy's cumsum starts with an inserted 0
    total = np.maximum(np.max(np.cumsum(values, axis=index), axis=index, keepdims=True), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        normed = np.nan_to_num(irf_map.data / total)
    return irf_map._new_like(normed, irf_map.geom, unit=unit_str(1 / unit))
