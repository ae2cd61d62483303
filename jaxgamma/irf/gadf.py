"""GADF DL3 instrument response functions read from FITS, evaluated as Gammapy 2.1 does.

Effective area (``aeff_2d``), energy dispersion (``edisp_2d``), PSF tables (``psf_table``),
triple-Gauss and King PSFs (``psf_3gauss``, ``psf_king``) and background rates (``bkg_3d``,
``bkg_2d``); :func:`load_irf_hdu` picks the class from the HDU header (or an HDU index class),
:func:`load_irf_dict_from_file` reads all the IRFs of a file. ``to_table``/``to_table_hdu``/``write``
write them back in Gammapy's GADF DL3 layout.
numpy float64; coordinates in TeV / deg (or Quantities); see :mod:`jaxgamma.irf._irf_base` for the
interpolation rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import astropy.units as u
import numpy as np
from astropy.io import fits

from ..geom import MapAxis
from ..units import parse_unit, unit_str
from ._core import axis_center, axis_coord_to_idx, axis_edges, upsample_axis
from ._irf_base import (
    IRF,
    IRFAxes,
    _DL3Writer,
    _fov_alignment,
    _unit_factor,
    column_unit,
    column_values,
    coord_in_fixed_unit,
    coord_to_axis_unit,
    interpolate_grid,
    make_path,
    open_hdu,
    parse_fits_unit,
    read_irf_table,
    scale_values,
    table_column,
)

__all__ = [
    "IRF_REGISTRY",
    "PSF3D",
    "Background2D",
    "Background3D",
    "EffectiveAreaTable2D",
    "EnergyDependentMultiGaussPSF",
    "EnergyDispersion2D",
    "PSFKing",
    "RadMax2D",
    "load_irf_dict_from_file",
    "load_irf_hdu",
]

log = logging.getLogger(__name__)

BKG_UNIT = "s-1 MeV-1 sr-1"
# Gammapy's ``RAD_AXIS_DEFAULT`` (used for the containment radius of parametric PSFs)
RAD_AXIS_DEFAULT = MapAxis.from_bounds(0.0, 0.66, nbin=66, node_type="edges", name="rad", unit="deg")
_DEG2_TO_SR = float((u.deg**-2).to(u.sr**-1))


# -- effective area and energy dispersion -------------------------------------------------------------
class EffectiveAreaTable2D(IRF):
    """Effective area versus true energy and offset (``aeff_2d``); ``evaluate`` -> m2."""

    tag = "aeff_2d"
    required_axes = ("energy_true", "offset")
    output_unit_default = "m2"
    hdu_name = "EFFECTIVE AREA"
    hduclas2 = "EFF_AREA"
    column_names = ("EFFAREA",)

    @property
    def low_threshold(self) -> float | None:
        """Default lower safe energy (TeV) from the ``LO_THRES`` keyword, or None."""
        return _threshold(self._meta.get("LO_THRES"))

    @property
    def high_threshold(self) -> float | None:
        """Default upper safe energy (TeV) from the ``HI_THRES`` keyword, or None."""
        return _threshold(self._meta.get("HI_THRES"))


def _threshold(value: Any) -> float | None:
    # Gammapy tests the keyword for truth: a missing or zero threshold means none
    return float(value) if value else None


class EnergyDispersion2D(IRF):
    """Energy dispersion: pdf in migra (E_reco / E_true) versus true energy and offset (``edisp_2d``)."""

    tag = "edisp_2d"
    required_axes = ("energy_true", "migra", "offset")
    output_unit_default = ""
    hdu_name = "ENERGY DISPERSION"
    hduclas2 = "EDISP"
    column_names = ("MATRIX",)

    def _mask_out_bounds(self, invalid: list[np.ndarray]) -> np.ndarray:
        # out of bounds only where both energy_true and migra are outside, or offset is
        return (invalid[0] & invalid[1]) | invalid[2]

    def to_edisp_kernel(
        self,
        offset: Any,
        energy_axis_true: Any = None,
        energy_axis: Any = None,
        threshold: float = 1e-8,
    ) -> Any:
        """The energy-dispersion kernel at one offset (deg), as Gammapy's ``to_edisp_kernel``.

        The pdf is evaluated at the true-energy and migra centres (the IRF's own migra axis),
        normalised along migra and integrated into reconstructed-energy bins (``EDispMap``
        arithmetic). ``energy_axis_true`` / ``energy_axis`` (MapAxis or edges as a Quantity) default
        to the IRF's true-energy axis.
        """
        from ..geom import WcsGeom
        from .edisp import EDispMap

        true_axis = _energy_axis(energy_axis_true, "energy_true", self._axes["energy_true"])
        reco_axis = _energy_axis(energy_axis, "energy", self._axes["energy_true"])
        migra_axis = self._axes["migra"]
        energy = axis_center(true_axis) * _unit_factor(true_axis.unit, "TeV")
        offset = np.asarray(coord_in_fixed_unit(offset, "offset"), dtype=np.float64)
        if offset.ndim != 0:
            raise ValueError(
                f"EnergyDispersion2D.to_edisp_kernel: offset must be a scalar, got shape {offset.shape}"
            )
        data = self.evaluate(
            energy_true=energy[:, None], migra=axis_center(migra_axis)[None, :], offset=offset
        )
        geom = WcsGeom.create(npix=(1, 1), binsz=1.0, axes=[migra_axis, true_axis])
        edisp_map = EDispMap(data[:, :, None, None], geom).normalize()
        return edisp_map.to_edisp_kernel_map(reco_axis, threshold=threshold).get_edisp_kernel()


def _energy_axis(axis: Any, name: str, default: MapAxis) -> MapAxis:
    if axis is None:
        return MapAxis(
            default.nodes, interp=default.interp, name=name, node_type=default.node_type, unit=default.unit
        )
    if isinstance(axis, u.Quantity):
        return MapAxis.from_energy_edges(axis, name=name)
    if not isinstance(axis, MapAxis) or axis.name != name:
        raise ValueError(
            f"EnergyDispersion2D.to_edisp_kernel: expected a MapAxis named {name!r}, got {axis!r}"
        )
    return axis


# -- PSFs ---------------------------------------------------------------------------------------------
class _PSFMixin:
    """Containment and containment radius (Gammapy's ``PSF``)."""

    hduclas2: ClassVar[str] = "RPSF"

    def containment(self, rad: Any, **coords: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _rad_axis(self) -> MapAxis:
        return RAD_AXIS_DEFAULT

    def containment_radius(self, fraction: Any, factor: int = 20, **coords: Any) -> np.ndarray:
        """Radius (deg) containing ``fraction`` of the PSF: the nearest of the centres of the rad
        axis upsampled ``factor`` times (Gammapy's ``PSF.containment_radius``)."""
        fraction = np.asarray(fraction, dtype=np.float64)
        values = [coord_in_fixed_unit(v, k) for k, v in coords.items()]
        output = np.broadcast(*values, fraction)
        rad = axis_center(upsample_axis(self._rad_axis(), factor))
        rad = np.expand_dims(rad, axis=tuple(range(output.ndim))).T
        containment = self.containment(rad=rad, **coords)
        idx = np.argmin(np.abs(containment - fraction), axis=0)
        return rad[idx].reshape(output.shape)


class PSF3D(_PSFMixin, IRF):
    """Tabulated PSF versus true energy, offset and rad (``psf_table``); ``evaluate`` -> sr-1."""

    tag = "psf_table"
    required_axes = ("energy_true", "offset", "rad")
    output_unit_default = "sr-1"
    hdu_name = "PSF_2D_TABLE"
    column_names = ("RPSF",)

    def _rad_axis(self) -> MapAxis:
        return self._axes["rad"]

    def containment(self, rad: Any, **coords: Any) -> np.ndarray:
        """Fraction of the PSF within ``rad`` (deg): the interpolated cumulative sum."""
        return self.integral("rad", rad=rad, **coords)


class _ParametricPSF(_PSFMixin, _DL3Writer):
    """A PSF given by parameters tabulated versus true energy and offset (Gammapy's ``ParametricPSF``).

    The parameters are stored in float32, as Gammapy does, and interpolated linearly (with linear
    extrapolation, clipped at zero) in the axis scales.
    """

    tag: ClassVar[str] = ""
    required_axes: ClassVar[tuple[str, ...]] = ("energy_true", "offset")
    required_parameters: ClassVar[tuple[str, ...]] = ()
    column_spec: ClassVar[dict[str, str]] = {}
    hdu_name: ClassVar[str] = ""
    output_unit = "sr-1"

    def __init__(
        self,
        axes: Sequence[MapAxis],
        data: dict[str, Any],
        unit: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ):
        axes = IRFAxes(axes)
        if axes.names != list(self.required_axes):
            raise ValueError(
                f"{type(self).__name__}: axes must be {list(self.required_axes)} (in this order), got {axes.names}"
            )
        unit = dict(unit or {})
        if isinstance(data, np.ndarray) and data.dtype.names:
            data = {name: data[name] for name in data.dtype.names}
        missing = [name for name in self.required_parameters if name not in data]
        if missing:
            raise ValueError(f"{type(self).__name__}: missing parameters {missing}")
        params: dict[str, np.ndarray] = {}
        units: dict[str, str] = {}
        for name in self.required_parameters:
            values = data[name]
            if isinstance(values, u.Quantity):
                unit.setdefault(name, values.unit)
                values = values.value
            values = np.asarray(values, dtype=np.float32)
            if values.shape != axes.shape:
                raise ValueError(
                    f"{type(self).__name__}: parameter {name!r} has shape {values.shape}, expected {axes.shape}"
                )
            params[name] = values.astype(np.float64)
            params[name].setflags(write=False)
            units[name] = unit_str(unit.get(name, ""))
            if name.startswith("sigma") and not parse_unit(units[name]).is_equivalent(u.deg):
                raise ValueError(
                    f"{type(self).__name__}: parameter {name!r} must have an angle unit, got {units[name]!r}"
                )
        self._axes = axes
        self._params = params
        self._units = units
        self._meta = dict(meta or {})

    @property
    def axes(self) -> IRFAxes:
        return self._axes

    @property
    def data(self) -> dict[str, np.ndarray]:
        """The parameters (float64 arrays of float32 values, read-only), by name."""
        return dict(self._params)

    @property
    def unit(self) -> dict[str, str]:
        """Units of the parameters, by name."""
        return dict(self._units)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    @property
    def has_offset_axis(self) -> bool:
        return True

    @property
    def fov_alignment(self) -> str:
        return "RADEC"

    @property
    def is_pointlike(self) -> bool:
        return self._meta.get("HDUCLAS3") == "POINT-LIKE"

    def evaluate_parameters(self, energy_true: Any, offset: Any) -> dict[str, np.ndarray]:
        """The parameters at true energies (TeV) and offsets (deg); sigmas in deg."""
        include = [axis.nbin > 1 for axis in self._axes]
        coords = [coord_to_axis_unit(energy_true, self._axes[0]), coord_to_axis_unit(offset, self._axes[1])]
        method = "linear"
        if not any(include):
            raise ValueError(f"{type(self).__name__}: interpolating scalar values requires method='nearest'")
        points = [
            scale_values(axis_center(a), a.interp)
            for a, keep in zip(self._axes, include, strict=True)
            if keep
        ]
        scaled = [
            scale_values(c, a.interp) for c, a, keep in zip(coords, self._axes, include, strict=True) if keep
        ]
        shape = np.broadcast_shapes(*[c.shape for c in coords])
        pars = {}
        for name in self.required_parameters:
            values = np.squeeze(self._params[name])
            out = np.broadcast_to(interpolate_grid(points, values, scaled, method=method), shape)
            out = np.clip(out, 0, np.inf)
            if name.startswith("sigma"):
                factor = _unit_factor(self._units[name], "deg")
                if factor != 1.0:
                    out = out * factor
            pars[name] = out
        return pars

    def _parameters(self, coords: dict[str, Any]) -> dict[str, np.ndarray]:
        names = self._axes.names
        if set(coords) != set(names):
            raise ValueError(
                f"{type(self).__name__}: give the coordinates {names} (and rad), got {sorted(coords)}"
            )
        return self.evaluate_parameters(**coords)

    def evaluate(self, rad: Any, **coords: Any) -> np.ndarray:
        """PSF (sr-1) at ``rad`` (deg) for ``energy_true`` (TeV) and ``offset`` (deg), broadcast."""
        pars = self._parameters(coords)
        return self.evaluate_direct(coord_in_fixed_unit(rad, "rad"), **pars) * _DEG2_TO_SR

    def containment(self, rad: Any, **coords: Any) -> np.ndarray:
        """Fraction of the PSF within ``rad`` (deg), at ``energy_true`` (TeV) and ``offset`` (deg)."""
        pars = self._parameters(coords)
        return self.evaluate_containment(coord_in_fixed_unit(rad, "rad"), **pars)

    @staticmethod
    def evaluate_direct(rad: np.ndarray, **pars: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def evaluate_containment(rad: np.ndarray, **pars: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def from_table_hdu(cls, hdu: fits.BinTableHDU, where: str | None = None) -> _ParametricPSF:
        """Read a GADF parametric PSF table (Gammapy's ``ParametricPSF.from_table``)."""
        where, meta, axes = read_irf_table(hdu, where, cls.required_axes)
        shape = tuple(a.nbin for a in axes)
        if hdu.data is None or len(hdu.data) < 1:
            raise ValueError(f"{where}: the table has no rows")
        data: dict[str, np.ndarray] = {}
        units: dict[str, u.UnitBase] = {}
        for name in cls.required_parameters:
            column = table_column(hdu, (cls.column_spec[name],), where)
            values = np.array(hdu.data[column][0], dtype=np.float64).T
            if values.size != int(np.prod(shape)):
                raise ValueError(
                    f"{where}: column {column!r} has {values.size} values (shape {values.shape}), "
                    f"expected shape {shape} from the axes {[a.name for a in axes]}"
                )
            if "sigma" in name:
                values[values == 0] = 1.0
            data[name] = values.reshape(shape)
            units[name] = column_unit(hdu, column, where)
            if "sigma" in name and not units[name].is_equivalent(u.deg):
                raise ValueError(
                    f"{where}: column {column!r} has unit {units[name].to_string()!r}, expected an angle unit"
                )
        return cls(axes=axes, data=data, unit=units, meta=meta)

    @classmethod
    def read(cls, filename: Any, hdu: str | int | None = None) -> _ParametricPSF:
        hdu = cls.hdu_name if hdu is None else hdu
        hdulist, table_hdu, where = open_hdu(filename, hdu, cls.__name__)
        with hdulist:
            return cls.from_table_hdu(table_hdu, where=where)

    def _data_columns(self) -> dict[str, u.Quantity]:
        """One float32 column per parameter (``column_spec``, in the order of
        ``required_parameters``) in its unit. Unlike Gammapy 2.1, which writes no header keywords
        for a parametric PSF, the table's ``meta`` has the GADF ones, as for the other IRFs, so
        that the HDU is found as an IRF (``load_irf_dict_from_file``)."""
        return {
            self.column_spec[name]: u.Quantity(
                self._params[name].astype(np.float32).T[np.newaxis], parse_unit(self._units[name]), copy=False
            )
            for name in self.required_parameters
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(axes={self._axes.names}, shape={self._axes.shape})"


class EnergyDependentMultiGaussPSF(_ParametricPSF):
    """Triple-Gauss PSF versus true energy and offset (``psf_3gauss``); ``evaluate`` -> sr-1."""

    tag = "psf_3gauss"
    required_parameters = ("sigma_1", "sigma_2", "sigma_3", "scale", "ampl_2", "ampl_3")
    column_spec = {
        "sigma_1": "SIGMA_1",
        "sigma_2": "SIGMA_2",
        "sigma_3": "SIGMA_3",
        "scale": "SCALE",
        "ampl_2": "AMPL_2",
        "ampl_3": "AMPL_3",
    }
    hdu_name = "PSF_2D_GAUSS"

    @staticmethod
    def _norms(**pars: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Gaussian widths and normalised norms (Gammapy's ``MultiGauss2D.normalize``)."""
        sigmas = [pars["sigma_1"], pars["sigma_2"], pars["sigma_3"]]
        scale = pars["scale"]
        amplitudes = [np.ones(scale.shape), pars["ampl_2"], pars["ampl_3"]]
        norms = [2 * scale * a * s**2 for a, s in zip(amplitudes, sigmas, strict=True)]
        integral = np.nansum(np.stack(norms), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            norms = [np.nan_to_num(n / integral) for n in norms]
        return sigmas, norms

    @classmethod
    def evaluate_direct(cls, rad: np.ndarray, **pars: np.ndarray) -> np.ndarray:
        """Sum of three normalised 2D Gaussians, deg-2."""
        sigmas, norms = cls._norms(**pars)
        theta2 = rad * rad
        total: Any = None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for sigma, norm in zip(sigmas, norms, strict=True):
                # per-(energy, offset) factors first: the rad-sized arrays see one product, one
                # exp and one product per Gaussian (Gammapy's terms, regrouped: ~1 ulp)
                sigma2 = sigma * sigma
                amplitude = norm * (1 / (2 * np.pi * sigma2))
                term = np.asarray(np.exp(theta2 * (-0.5 / sigma2)))
                np.multiply(term, amplitude, out=term)
                total = term if total is None else np.add(total, term, out=total)
        return total

    @classmethod
    def evaluate_containment(cls, rad: np.ndarray, **pars: np.ndarray) -> np.ndarray:
        sigmas, norms = cls._norms(**pars)
        total: Any = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for sigma, norm in zip(sigmas, norms, strict=True):
                term = norm * (1 - np.exp(-0.5 * rad**2 / (sigma * sigma)))
                total = term if total is None else total + term
        return total


class PSFKing(_ParametricPSF):
    """King-profile PSF versus true energy and offset (``psf_king``); ``evaluate`` -> sr-1."""

    tag = "psf_king"
    required_parameters = ("gamma", "sigma")
    column_spec = {"sigma": "SIGMA", "gamma": "GAMMA"}
    hdu_name = "PSF_2D_KING"

    @staticmethod
    def evaluate_direct(rad: np.ndarray, **pars: np.ndarray) -> np.ndarray:
        """King profile, deg-2."""
        gamma, sigma = pars["gamma"], pars["sigma"]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            term1 = 1 / (2 * np.pi * sigma**2)
            term2 = 1 - 1 / gamma
            term3 = (1 + rad**2 / (2 * gamma * sigma**2)) ** (-gamma)
            return term1 * term2 * term3

    @staticmethod
    def evaluate_containment(rad: np.ndarray, **pars: np.ndarray) -> np.ndarray:
        gamma, sigma = pars["gamma"], pars["sigma"]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            powterm = 1 - gamma
            term = (1 + rad**2 / (2 * gamma * sigma**2)) ** powterm
            return 1 - term


# -- background ------------------------------------------------------------------------------------------
class _BackgroundIRF(IRF):
    """Background rate (Gammapy's ``BackgroundIRF``): interpolated in log, 0 outside the axes."""

    output_unit_default = BKG_UNIT
    hdu_name = "BACKGROUND"
    hduclas2 = "BKG"
    column_names = ("BKG", "BGD")
    values_scale = "log"

    @classmethod
    def from_table_hdu(cls, hdu: fits.BinTableHDU, where: str | None = None) -> IRF:
        where, meta, axes = read_irf_table(hdu, where, cls.required_axes, hduclas2_default="BKG")
        column = table_column(hdu, cls.column_names, where)
        data = column_values(hdu, column, where)
        parsed = parse_fits_unit(hdu.columns[column].unit)
        if parsed is None or parsed == u.dimensionless_unscaled:
            log.warning("Invalid unit found in background table! Assuming (s-1 MeV-1 sr-1)")
            unit = parse_unit(BKG_UNIT)
        else:
            unit = parsed
            if not unit.is_equivalent(parse_unit(BKG_UNIT)):
                raise ValueError(
                    f"{where}: column {column!r} has unit {unit.to_string()!r}, expected a unit "
                    f"convertible to {BKG_UNIT!r}"
                )
        shape = tuple(a.nbin for a in axes)
        if shape == shape[::-1]:
            log.error("Ambiguous axes order in Background fits files!")
        if data.shape != shape:
            log.debug("Transposing background table on read")
            data = data.transpose()
        if data.shape != shape:
            raise ValueError(
                f"{where}: column {column!r} has shape {data.T.shape} (transposed), expected {shape} "
                f"from the axes {[a.name for a in axes]}"
            )
        return cls(
            axes=axes,
            data=data,
            unit=unit,
            meta=meta,
            fov_alignment=_fov_alignment(meta, where),
            is_pointlike=meta.get("HDUCLAS3") == "POINT-LIKE",
        )


class Background3D(_BackgroundIRF):
    """Background rate versus reco energy and FoV coordinates (``bkg_3d``); -> s-1 MeV-1 sr-1."""

    tag = "bkg_3d"
    required_axes = ("energy", "fov_lon", "fov_lat")

    @classmethod
    def _mandatory_keywords(cls) -> dict[str, str]:
        # Gammapy always writes FOVALIGN for a 3D background (the IRF's own alignment)
        return {**super()._mandatory_keywords(), "FOVALIGN": "RADEC"}

    def to_2d(self) -> Background2D:
        """The values at fov_lat = 0 and fov_lon >= 0 versus offset (Gammapy's ``to_2d``)."""
        idx_lon = int(axis_coord_to_idx(self._axes["fov_lon"], 0.0)[0])
        idx_lat = int(axis_coord_to_idx(self._axes["fov_lat"], 0.0)[0])
        data = self._raw[:, idx_lon:, idx_lat].copy()
        offset = axis_edges(self._axes["fov_lon"])[idx_lon:]
        offset_axis = MapAxis.from_edges(offset, name="offset", unit=self._axes["fov_lon"].unit)
        return Background2D(axes=[self._axes["energy"], offset_axis], data=data, unit=self._unit)


class Background2D(_BackgroundIRF):
    """Background rate versus reco energy and offset (``bkg_2d``); -> s-1 MeV-1 sr-1."""

    tag = "bkg_2d"
    required_axes = ("energy", "offset")


# -- point-like directional cut ---------------------------------------------------------------------------
class RadMax2D(IRF):
    """The directional cut of point-like IRFs: the ON-region radius versus reconstructed energy and
    offset (``rad_max_2d``, Gammapy's ``RadMax2D``); ``evaluate`` -> deg.

    Not an IRF component itself: point-like effective areas and energy dispersions hold only the
    events within this radius of the source, so ON (and OFF) counts must be taken within it
    (:meth:`EventList.select_rad_max <jaxgamma.data.EventList.select_rad_max>`). Read from its own
    ``RAD_MAX`` HDU, or made from the ``RAD_MAX`` keyword of a point-like IRF with a fixed cut
    (:meth:`from_irf`).

    Parameters
    ----------
    axes : sequence of MapAxis
        ``energy`` (reconstructed) and ``offset``.
    data : array or float
        The cut, shape ``(n_energy, n_offset)``.
    unit : str
        Default "deg".
    method : {None, "linear", "nearest"}
        Default interpolation of :meth:`evaluate` (None: linear).
    fill_value : float or None
        Value outside the axes (default 0, Gammapy's; None extrapolates).
    """

    tag = "rad_max_2d"
    required_axes = ("energy", "offset")
    output_unit_default = "deg"
    hdu_name = "RAD_MAX"
    hduclas2 = "RAD_MAX"
    column_names = ("RAD_MAX",)

    def __init__(
        self,
        axes: Sequence[MapAxis],
        data: Any = 0,
        unit: str | u.UnitBase = "deg",
        meta: dict[str, Any] | None = None,
        fov_alignment: str = "RADEC",
        is_pointlike: bool = False,
        method: str | None = None,
        fill_value: float | None = 0.0,
    ):
        super().__init__(axes, data, unit, meta, fov_alignment, is_pointlike)
        if method not in (None, "linear", "nearest"):
            raise ValueError(f"RadMax2D: method must be None, 'linear' or 'nearest', got {method!r}")
        self._default_method = method
        self._fill = None if fill_value is None else float(fill_value)

    def _replace(self, **kwargs: Any) -> IRF:
        kwargs.setdefault("method", self._default_method)
        kwargs.setdefault("fill_value", self._fill)
        return super()._replace(**kwargs)

    @classmethod
    def from_irf(cls, irf: Any) -> RadMax2D:
        """The fixed cut of a point-like effective area or energy dispersion, from its ``RAD_MAX``
        keyword (Gammapy's ``RadMax2D.from_irf``): one bin spanning the IRF's true-energy range
        (taken as reconstructed energy) and offset range, evaluated by nearest value without bounds."""
        name = type(irf).__name__
        if not getattr(irf, "is_pointlike", False):
            raise ValueError(f"RadMax2D.from_irf requires a point-like IRF (HDUCLAS3 = 'POINT-LIKE'), got a full-enclosure {name}")
        meta = irf.meta
        if "RAD_MAX" not in meta:
            raise ValueError(
                f"RadMax2D.from_irf: the point-like {name} has no RAD_MAX keyword (a fixed cut) and no "
                "RAD_MAX HDU was given"
            )
        value = meta["RAD_MAX"]
        if not isinstance(value, float):
            raise ValueError(f"RadMax2D.from_irf: RAD_MAX of the {name} must be a float (deg), got {value!r}")
        energy = irf.axes["energy_true"]
        energy_axis = MapAxis.from_bounds(
            energy.edges[0], energy.edges[-1], 1, interp=energy.interp, name="energy", unit=energy.unit
        )
        return cls(
            axes=[energy_axis, irf.axes["offset"].squash()],
            data=value,
            unit="deg",
            method="nearest",
            fill_value=None,
        )

    @property
    def is_fixed_rad_max(self) -> bool:
        """Whether the cut is one value (both axes a single bin)."""
        return all(axis.nbin == 1 for axis in self._axes)

    def plot_rad_max_vs_energy(self, ax: Any = None, **kwargs: Any) -> Any:
        """The cut versus energy, one line per offset bin centre (Gammapy's ``plot_rad_max_vs_energy``)."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter

        ax = plt.gca() if ax is None else ax
        energy_axis = self._axes["energy"]
        energy = axis_center(energy_axis)
        for value in axis_center(self._axes["offset"]):
            rad_max = self.evaluate(energy=energy, offset=value)
            line_kwargs = {"label": f"Offset {value:.2f} deg", **kwargs}
            ax.plot(energy, rad_max, **line_kwargs)
        ax.set_xscale("log")
        ax.set_xlabel(f"Energy [{energy_axis.unit}]")
        ax.set_ylim(0, None)
        ax.legend(loc="best")
        ax.set_ylabel("Rad max. [deg]")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        return ax


# -- dispatch ---------------------------------------------------------------------------------------------
IRF_REGISTRY: dict[str, Any] = {
    "aeff_2d": EffectiveAreaTable2D,
    "edisp_2d": EnergyDispersion2D,
    "psf_table": PSF3D,
    "psf_3gauss": EnergyDependentMultiGaussPSF,
    "psf_king": PSFKing,
    "bkg_3d": Background3D,
    "bkg_2d": Background2D,
    "rad_max_2d": RadMax2D,
}

# the GADF HDU types and classes of an HDU index table (Gammapy's HDUIndexTable.VALID_HDU_*)
HDU_TYPES = ("events", "gti", "aeff", "edisp", "psf", "bkg", "rad_max", "pointing")
HDU_CLASSES = (
    "events",
    "gti",
    "aeff_2d",
    "edisp_2d",
    "psf_table",
    "psf_3gauss",
    "psf_king",
    "bkg_2d",
    "bkg_3d",
    "rad_max_2d",
    "pointing",
)


class _UnknownHDUClass(ValueError):
    """An HDU whose ``HDUCLAS2``/``HDUCLAS4`` name no known HDU type or class (Gammapy's
    ``UnknownHDUClass``)."""


def hdu_type_and_class(header: fits.Header, where: str) -> tuple[str, str]:
    """The HDU type (aeff, edisp, psf, bkg, rad_max ...) and IRF class of an HDU from
    ``HDUCLAS2``/``HDUCLAS4`` (Gammapy's ``_get_hdu_type_and_class``, including its workaround
    for the CTA 1DC names such as ``HDUCLAS4 = '2D'``); a ValueError when they are unknown."""
    clas2 = str(header.get("HDUCLAS2", "")).strip()
    clas4 = str(header.get("HDUCLAS4", "")).strip()
    hdu_type = {"rpsf": "psf", "eff_area": "aeff"}.get(clas2.lower(), clas2.lower())
    hdu_class = clas4.lower()
    if hdu_type not in HDU_TYPES:
        raise _UnknownHDUClass(f"{where}: unknown IRF HDU type (HDUCLAS2={clas2!r}, HDUCLAS4={clas4!r})")
    if hdu_class not in HDU_CLASSES:
        hdu_class = f"{hdu_type}_{hdu_class}"
    if hdu_class not in HDU_CLASSES:
        raise _UnknownHDUClass(f"{where}: unknown IRF HDU class (HDUCLAS2={clas2!r}, HDUCLAS4={clas4!r})")
    return hdu_type, hdu_class


def hdu_class_from_header(header: fits.Header, where: str) -> str:
    """The IRF class of an HDU from ``HDUCLAS2``/``HDUCLAS4`` (see :func:`hdu_type_and_class`)."""
    return hdu_type_and_class(header, where)[1]


def load_irf_hdu(hdu: Any, where: str, hdu_class: str | None = None) -> Any:
    """Read an IRF table HDU as the class its header (or the given ``hdu_class``) names.

    Parameters
    ----------
    hdu : BinTableHDU
        The IRF table.
    where : str
        File and HDU, for the error messages.
    hdu_class : str, optional
        An HDU index ``HDU_CLASS`` (aeff_2d, edisp_2d, psf_table, psf_3gauss, psf_king, bkg_3d,
        bkg_2d); by default taken from ``HDUCLAS2``/``HDUCLAS4``.
    """
    if not isinstance(hdu, fits.BinTableHDU):
        raise ValueError(f"{where}: expected a binary table HDU, got {type(hdu).__name__}")
    if hdu_class is None:
        hdu_class = hdu_class_from_header(hdu.header, where)
    cls = IRF_REGISTRY.get(str(hdu_class).lower())
    if cls is None:
        raise ValueError(f"{where}: unsupported IRF class {hdu_class!r}; supported: {sorted(IRF_REGISTRY)}")
    return cls.from_table_hdu(hdu, where=where)


def load_irf_dict_from_file(filename: Any) -> dict[str, Any]:
    """Read all the IRFs of a FITS file into a dictionary (Gammapy's ``load_irf_dict_from_file``).

    Each HDU with ``HDUCLAS1 = 'RESPONSE'`` is read with the class its ``HDUCLAS2``/``HDUCLAS4``
    name (:func:`load_irf_hdu`) under the key of its ``HDUCLAS2``: EFF_AREA -> "aeff",
    EDISP -> "edisp", RPSF -> "psf", BKG -> "bkg", RAD_MAX -> "rad_max". A file of point-like IRFs
    (``HDUCLAS3 = 'POINT-LIKE'``) without a RAD_MAX HDU gets the fixed cut of its effective area's
    ``RAD_MAX`` keyword (:meth:`RadMax2D.from_irf`), as in Gammapy. The first HDU of a type is kept
    (a warning is logged for the others), HDUs of an unknown type or class are skipped with a
    warning, and other HDUs (EVENTS, GTI ...) are ignored.

    Parameters
    ----------
    filename : str or Path
        FITS file (environment variables and ``~`` expanded).

    Returns
    -------
    irf_dict : dict
        The IRFs by type: ``EffectiveAreaTable2D``, ``EnergyDispersion2D``, ``PSF3D``,
        ``EnergyDependentMultiGaussPSF``, ``PSFKing``, ``Background3D``, ``Background2D`` or
        ``RadMax2D``.

    Raises
    ------
    ValueError
        Naming the file, if it does not exist, is not a FITS file, has no IRF HDU that can be
        read, has an IRF HDU that cannot be read, or has point-like IRFs without a cut (neither a
        RAD_MAX HDU nor a ``RAD_MAX`` keyword).
    """
    path = make_path(filename)
    name = str(path)
    what = "load_irf_dict_from_file"
    if not path.is_file():
        raise ValueError(f"{what}: file {name!r} does not exist")
    irfs: dict[str, Any] = {}
    is_pointlike = False
    try:
        with fits.open(name, memmap=False) as hdulist:
            for hdu in hdulist:
                if str(hdu.header.get("HDUCLAS1", "")).strip().lower() != "response":
                    continue  # not an IRF
                is_pointlike |= hdu.header.get("HDUCLAS3") == "POINT-LIKE"
                where = f"{name} [HDU {hdu.name!r}]"
                try:
                    hdu_type, hdu_class = hdu_type_and_class(hdu.header, where)
                except _UnknownHDUClass as err:
                    log.warning("File has unknown class %s", err)
                    continue
                if hdu_type in irfs:
                    log.warning(f"more than one HDU of {hdu_type} type found")
                    log.warning(f"loaded the {irfs[hdu_type].meta.get('EXTNAME')} HDU in the dictionary")
                    continue
                irfs[hdu_type] = load_irf_hdu(hdu, where, hdu_class)
    except OSError as err:
        raise ValueError(f"{what}: {name!r} is not a readable FITS file: {err}") from None
    if not irfs:
        raise ValueError(
            f"{what}: file {name!r} has no IRF HDU that jaxgamma can read (HDUCLAS1 = 'RESPONSE' with "
            f"HDUCLAS2 EFF_AREA, EDISP, RPSF, BKG or RAD_MAX)"
        )
    if is_pointlike and "rad_max" not in irfs:
        source = irfs.get("aeff") or irfs.get("edisp")
        if source is None:
            raise ValueError(
                f"{what}: {name!r} has point-like IRFs but neither a RAD_MAX HDU nor a point-like "
                "effective area or energy dispersion to take the fixed cut (RAD_MAX keyword) from"
            )
        try:
            irfs["rad_max"] = RadMax2D.from_irf(source)
        except ValueError as err:
            raise ValueError(f"{what}: {name!r}: {err}") from None
    return irfs
