"""Spatial template: a sky map (2D, or 3D with an ``energy_true`` axis) interpolated in pixel space.

:class:`TemplateSpatialModel` reproduces Gammapy 2.1's ``TemplateSpatialModel`` with a ``WcsNDMap``
template:

- with ``normalize=True`` (default) every energy plane is divided by its spatial sum and by the
  per-pixel solid angle, so that it integrates to 1 (unit sr^-1);
- the value at (lon, lat[, energy]) is ``exp`` of the (bi/tri)linear interpolation of
  ``ln(max(T, tiny))`` at the continuous pixel coordinates of the point (``interp_by_coord`` with
  ``values_scale="log"``): NaN/inf map values count as 0, the interpolation extrapolates linearly up
  to half a pixel beyond the outer pixel centres, points whose nearest pixel
  (``floor(pix + 0.5)``) is outside the map give 0, and the result is clipped at 0;
- ``lon_0``/``lat_0`` are frozen at the map centre; freed, they shift the evaluation point by
  ``(lon_0 - lon_c, lat_0 - lat_c)`` in deg (a planar shift, valid close to the map centre);
- ``evaluation_radius`` is half the largest map width; no oversampling (bin size None).

The map is held as float64 arrays (pytree leaves, so under ``jit`` they are arguments, never
compiled-in constants); the world -> pixel transform is the pure-jnp
:class:`~jaxgamma.geom.WcsProjection`, so the model evaluates at traced positions.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from typing import Any

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits

from ..geom import WcsGeom, WcsProjection, find_map_hdus
from ..parameters import Parameter
from ..units import ENERGY, parse_unit, unit_str
from .core import par
from .spatial import SpatialModel, _lonlat_in_frame

__all__ = ["TemplateSpatialModel", "read_wcs_map"]

log = logging.getLogger(__name__)

_TINY64 = float(np.finfo(np.float64).tiny)
# Units the template values are converted to (the first one the file's unit converts into)
_CANONICAL_UNITS = ("sr-1", "cm-2 s-1 TeV-1 sr-1", "cm-2 s-1 sr-1")


def read_wcs_map(
    filename: str | os.PathLike, hdu: str | int | None = None, hdu_bands: str | None = None
) -> tuple[np.ndarray, WcsGeom, str]:
    """``(data, geom, unit)`` of a WCS map FITS file (GADF or Fermi-LAT formats), as Gammapy reads it.

    ``data`` is the array as stored (dtype and byte order untouched); ``unit`` is ``BUNIT`` (for
    Fermi "fgst-template" files without one: cm-2 s-1 MeV-1 sr-1, as Gammapy assumes).
    """
    with fits.open(os.path.expandvars(os.fspath(filename)), memmap=False) as hdulist:
        image, bands, format = find_map_hdus(hdulist, hdu, hdu_bands)
        geom = WcsGeom.from_header(image.header, bands, format=format)
        data = np.asarray(image.data)
        unit = image.header.get("BUNIT", "")
        try:
            unit = unit_str(_standardise_unit(unit))
        except ValueError:
            unit = ""
        if unit == "" and format == "fgst-template" and "GTI" not in hdulist:
            unit = unit_str("cm-2 s-1 MeV-1 sr-1")
    if data.shape != geom.data_shape:
        raise ValueError(
            f"{filename}: data shape {data.shape} does not match the geometry's {geom.data_shape}"
        )
    return data, geom, unit


def _standardise_unit(unit: str) -> u.UnitBase:
    # Gammapy drops "ph" and "ct" from units
    parsed = u.Unit(unit)
    bases, powers = [], []
    for base, power in zip(parsed.bases, parsed.powers, strict=True):
        if base not in (u.ph, u.ct):
            bases.append(base)
            powers.append(power)
    return u.CompositeUnit(parsed.scale, bases, powers)


def _canonical_unit(unit: str) -> tuple[str, float]:
    """(canonical unit, factor from ``unit``) for template values."""
    parsed = parse_unit(unit)
    for target in _CANONICAL_UNITS:
        try:
            return target, float(parsed.to(parse_unit(target)))
        except u.UnitConversionError:
            continue
    return unit_str(parsed), 1.0


def _validate_template(data: np.ndarray, ndim_axes: int) -> None:
    """Gammapy's checks of a template map (logged, not raised)."""
    with np.errstate(invalid="ignore"):
        if np.any(data < 0):
            log.warning("Map has negative values. Check and fix this!")
        if np.all(data == 0.0):
            log.warning("Map values are all zeros. Check and fix this!")
        if np.any(np.isnan(data)):
            log.warning("Map has NaN values. Check and fix this!")
        if ndim_axes and np.any(data.sum(axis=(-2, -1)) == 0):
            log.warning("Map values are all zeros in at least one non-spatial slice. Check and fix this!")


def _process_template(data: np.ndarray, geom: WcsGeom, unit: str, normalize: bool) -> tuple[np.ndarray, str]:
    """Gammapy's ``_process_template_map`` with the arithmetic (and float32 sums) it does."""
    if not normalize:
        if not unit:
            log.warning("Missing spatial template unit, assuming sr^-1")
        return data, unit or "sr-1"
    # the spatial sums are in the map's own dtype, as Gammapy's map_.data.sum(...)
    data_sum = data.sum(axis=(-2, -1), keepdims=True)
    out = np.divide(data.astype(float), data_sum, out=np.zeros_like(data, dtype=float), where=data_sum != 0)
    out /= geom.solid_angle()
    return out, "sr-1"


def _log_values(data: np.ndarray) -> np.ndarray:
    """``ScaledRegularGridInterpolator``'s log-scaled values (NaN/inf -> 0 first), as float64.

    The log is taken in the map's own float dtype, as Gammapy's ``LogScale`` does (float32 maps
    give float32-rounded logs).
    """
    values = np.array(data, copy=True)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    if np.any(np.isfinite(values)):
        values[~np.isfinite(values)] = 0.0
    tiny = np.finfo(values.dtype).tiny
    with np.errstate(invalid="ignore"):
        logs = np.log(np.clip(values, tiny, np.inf))
    return np.ascontiguousarray(logs, dtype=np.float64)


def _native_float64(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(data, dtype=np.float64)


class TemplateSpatialModel(SpatialModel):
    """Spatial template from a WCS map, as Gammapy's ``TemplateSpatialModel``.

    Parameters
    ----------
    data : array
        Map values, numpy order ``(ny, nx)`` or ``(n_energy_true, ny, nx)``.
    geom : WcsGeom
        The map geometry; a 3D template has one axis named ``energy_true``.
    unit : str
        Unit of ``data`` ("" is taken as sr^-1). Ignored with ``normalize``.
    normalize : bool
        Normalise each energy plane to integrate to 1 over the map (result in sr^-1).
    filename : str, optional
        Where the map was read from (kept for model serialisation).
    lon_0, lat_0 : float, str, Quantity or Parameter, optional
        Model position (deg, map frame); default: the map centre, frozen.

    Notes
    -----
    The values are stored in a canonical unit: sr^-1, cm-2 s-1 TeV-1 sr-1 or cm-2 s-1 sr-1 (the
    first the map's unit converts into; other units are kept as they are), see ``unit``.
    """

    tag = ("TemplateSpatialModel", "template")
    lon_0: Parameter = par("lon_0", math.nan, "deg", frozen=True)
    lat_0: Parameter = par("lat_0", math.nan, "deg", min=-90.0, max=90.0, frozen=True)

    data: Any = None
    log_data: Any = None
    geom: WcsGeom = eqx.field(static=True, default=None)
    unit: str = eqx.field(static=True, default="sr-1")
    normalize: bool = eqx.field(static=True, default=True)
    filename: str | None = eqx.field(static=True, default=None)
    map_center: tuple[float, float] = eqx.field(static=True, default=(0.0, 0.0))
    _projection: WcsProjection = eqx.field(static=True, default=None)
    _scale: float = eqx.field(static=True, default=1.0)

    def __init__(
        self,
        data: Any,
        geom: WcsGeom,
        unit: str | u.UnitBase = "",
        normalize: bool = True,
        filename: str | os.PathLike | None = None,
        lon_0: Any = None,
        lat_0: Any = None,
    ):
        if not isinstance(geom, WcsGeom):
            raise TypeError(f"TemplateSpatialModel: geom must be a WcsGeom, got {type(geom).__name__}")
        if isinstance(data, u.Quantity):
            unit, data = data.unit, data.value
        data = np.asarray(data)
        if data.shape != geom.data_shape:
            raise ValueError(
                f"TemplateSpatialModel: data shape {data.shape} does not match the geometry's {geom.data_shape}"
            )
        names = [a.name for a in geom.axes]
        if names not in ([], ["energy_true"]):
            raise ValueError(
                f"TemplateSpatialModel: the map may only have an 'energy_true' axis besides lon/lat, got {names}"
            )
        if geom.axes:
            geom = geom.replace_axes([geom.axes[0].to_unit(ENERGY)])

        _validate_template(data, len(geom.axes))
        processed, native_unit = _process_template(data, geom, unit_str(unit), normalize)
        canonical, scale = _canonical_unit(native_unit)
        center = geom.center_lonlat

        def position(value: Any, default: float) -> Any:
            if value is None or (isinstance(value, Parameter) and np.all(np.isnan(np.asarray(value.value)))):
                return default
            return value

        self._init_fields(
            {
                "lon_0": position(lon_0, center[0]),
                "lat_0": position(lat_0, center[1]),
                "frame": geom.frame,
                "data": _native_float64(processed) * scale,
                "log_data": _log_values(processed),
                "geom": geom,
                "unit": canonical,
                "normalize": bool(normalize),
                "filename": None if filename is None else os.fspath(filename),
                "map_center": center,
                "_projection": geom.projection_jax(),
                "_scale": scale,
            }
        )

    @classmethod
    def read(
        cls,
        filename: str | os.PathLike,
        normalize: bool = True,
        hdu: str | int | None = None,
        hdu_bands: str | None = None,
        **kwargs: Any,
    ) -> TemplateSpatialModel:
        """Read a template from a WCS map FITS file (GADF or Fermi-LAT "fgst-template" formats).

        Environment variables in ``filename`` (``$GAMMAPY_DATA/...``) are expanded, as Gammapy does.
        """
        filename = os.path.expandvars(os.fspath(filename))
        data, geom, unit = read_wcs_map(filename, hdu=hdu, hdu_bands=hdu_bands)
        return cls(data, geom, unit=unit, normalize=normalize, filename=filename, **kwargs)

    def cutout(self, position: Any, width: Any, mode: str = "trim") -> TemplateSpatialModel:
        """The template cut out around ``position`` (a SkyCoord, or (lon, lat) in deg in the map's
        frame; ``width`` in deg, an angle or a (lon, lat) pair; ``mode`` as ``WcsGeom.cutout``), with
        the same values (not normalised again: Gammapy's ``cutout_template_models`` builds its
        cutout with the template's ``normalize`` flag, which renormalises a normalised template
        over the cutout), the same unit and the same offset of the position from the map centre.
        Raises ``ValueError`` (astropy's ``NoOverlapError``) when the cutout misses the map."""
        from ..irf.psf import cutout_array

        image = self.geom.to_image()
        geom, parent_slices, cutout_slices = image.cutout_info(position, width, mode=mode)
        data = cutout_array(np.asarray(self.data), geom, parent_slices, cutout_slices)
        center = geom.center_lonlat
        shift = [float(np.asarray(p.value)) - c for p, c in zip((self.lon_0, self.lat_0), self.map_center, strict=True)]
        return TemplateSpatialModel(
            data,
            geom.replace_axes(list(self.geom.axes)) if self.geom.axes else geom,
            unit=self.unit,
            normalize=False,
            lon_0=self.lon_0.replace(value=center[0] + shift[0]),
            lat_0=self.lat_0.replace(value=center[1] + shift[1]),
        )

    # -- properties --------------------------------------------------------------------------------
    @property
    def is_energy_dependent(self) -> bool:  # type: ignore[override]
        return bool(self.geom.axes)

    @property
    def energy_axis(self) -> Any:
        """The ``energy_true`` axis (in TeV) of a 3D template, None for a 2D one."""
        return self.geom.axes[0] if self.geom.axes else None

    @property
    def evaluation_radius(self) -> float:
        """Half the largest map width (deg)."""
        return float(max(self.geom.width)) / 2.0

    @property
    def evaluation_bin_size_min(self) -> None:
        return None

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(  # type: ignore[override]
        self, lon: Any, lat: Any, energy: Any = None, lon_0: Any = None, lat_0: Any = None
    ) -> jax.Array:
        """Template value at (lon, lat) in deg (model frame) and, for a 3D template, ``energy`` (TeV).

        Pure ``jax.numpy``: works under ``jit``/``grad``/``vmap`` with traced coordinates and
        positions. Values in ``unit``.
        """
        if self.is_energy_dependent and energy is None:
            raise ValueError("TemplateSpatialModel: this template depends on energy_true; pass energy (TeV)")
        arrays = [None if v is None else jnp.asarray(v) for v in (lon, lat, energy, lon_0, lat_0)]
        return _evaluate(
            self.log_data, self._projection, self.energy_axis, self.map_center, self._scale, *arrays
        )

    def evaluate_lonlat(self, lon: Any, lat: Any, energy: Any = None) -> jax.Array:
        """Value (``unit``) at lon, lat (deg, model frame) [and energy_true in TeV]: the array interface."""
        return self.evaluate(lon, lat, energy, **self.values())

    def __call__(self, lon: Any, lat: Any = None, energy: Any = None) -> u.Quantity | jax.Array:
        """Evaluate at Quantities / a SkyCoord (Quantity out) or at arrays in deg and TeV (array out)."""
        if isinstance(lon, (SkyCoord, u.Quantity)):
            lon_deg, lat_deg = _lonlat_in_frame(lon, lat, self.frame)
            if energy is not None:
                energy = u.Quantity(energy, ENERGY).to_value(ENERGY)
            values = self.evaluate_lonlat(jnp.asarray(lon_deg), jnp.asarray(lat_deg), energy)
            return u.Quantity(np.asarray(values), parse_unit(self.unit))
        return self.evaluate_lonlat(lon, lat, energy)

    def __str__(self) -> str:
        text = super().__str__()
        width = self.geom.width
        lines = [
            f"  map center : {self.map_center[0]:.4f}, {self.map_center[1]:.4f} deg ({self.frame})",
            f"  map width  : {width[0]:.4g} x {width[1]:.4g} deg",
            f"  unit       : {self.unit}",
            f"  normalize  : {self.normalize}",
            f"  filename   : {self.filename}",
        ]
        if self.is_energy_dependent:
            lo, hi = self.energy_axis.center[[0, -1]]
            lines.append(f"  energy_true: {lo:.4g} - {hi:.4g} TeV")
        return "\n".join([text, *lines])


@eqx.filter_jit
def _evaluate(log_data, projection, energy_axis, map_center, scale, lon, lat, energy, lon_0, lat_0):
    # one compiled program per template and input shape (inlined when called under an outer jit);
    # the projection, axis, centre and scale are static, the arrays and positions traced
    if lon_0 is not None:
        lon = lon - (lon_0 - map_center[0])
    if lat_0 is not None:
        lat = lat - (lat_0 - map_center[1])
    px, py = projection.world_to_pixel(lon, lat)
    pix = [px, py]
    if energy_axis is not None:
        pix.append(energy_axis.coord_to_pix_jax(energy))
    return _interp_log(jnp.asarray(log_data), list(jnp.broadcast_arrays(*pix)), scale)


def _interp_log(log_data: jax.Array, pix: list[jax.Array], scale: float) -> jax.Array:
    """Gammapy's ``interp_by_pix(values_scale="log", fill_value=0)`` then clip at 0, times ``scale``.

    ``pix`` are the (x, y[, energy]) pixel coordinates; ``log_data`` is in numpy order
    ``([energy,] y, x)``. Dimensions of length 1 are not interpolated (as Gammapy), but points
    outside them are still filled with 0.
    """
    shape = log_data.shape[::-1]  # (nx, ny[, ne])
    valid = jnp.ones(pix[0].shape, dtype=bool)
    lows: list[Any] = []
    weights: list[Any] = []
    for p, n in zip(pix, shape, strict=True):
        finite = jnp.isfinite(p)
        p_safe = jnp.where(finite, p, 0.0)
        idx = jnp.floor(p_safe + 0.5)
        valid = valid & finite & (idx >= 0) & (idx <= n - 1)
        if n == 1:
            lows.append(jnp.zeros(p.shape, dtype=int))
            weights.append(None)
            continue
        lo = jnp.clip(jnp.floor(p_safe), 0, n - 2)
        lows.append(lo.astype(int))
        weights.append(p_safe - lo)

    value = jnp.zeros(pix[0].shape)
    active = [i for i, w in enumerate(weights) if w is not None]
    for corner in itertools.product((0, 1), repeat=len(active)):
        index = list(lows)
        weight = jnp.ones(pix[0].shape)
        for i, c in zip(active, corner, strict=True):
            index[i] = lows[i] + c
            weight = weight * (weights[i] if c else 1.0 - weights[i])
        value = value + log_data[tuple(index[::-1])] * weight
    # points outside the map are filled with 0; keep their (extrapolated) log value finite so
    # that neither exp nor its gradient overflows there
    out = jnp.exp(jnp.where(valid, value, 0.0))
    out = jnp.where(jnp.abs(out) - _TINY64 <= _TINY64, 0.0, out)
    out = jnp.where(valid & jnp.isfinite(out), out, 0.0)
    return jnp.clip(out, 0.0, None) * scale
