"""Flux points (Gammapy's ``gadf-sed`` tables) and the flux-point dataset with its likelihood plan.

:class:`FluxPoints` is a numpy/astropy container, never traced: it reads and writes Gammapy's flux
point tables (FITS or ECSV) in any SED type (``dnde``, ``e2dnde``, ``flux``, ``eflux``,
``likelihood``) and converts between them with Gammapy's rules: every quantity is ``norm x ref``,
where ``ref`` is a reference spectrum (by default a power law of index 2, 1e-12 cm-2 s-1 TeV-1 at
1 TeV; for ``likelihood`` tables the tabulated ``ref_dnde``) evaluated at the energy-axis centres.

:class:`FluxPointsDataset` holds flux points and masks. Its :meth:`~FluxPointsDataset.plan` returns a
:class:`FluxPointsPlan` whose ``stat_sum(models)`` is a pure jnp function of the model parameters:
``flux_pred = sum of spectral_model.dnde(E_ref)`` over the sky models that apply to the dataset, and
the ``chi2`` or ``distrib`` statistic of Gammapy 2.1.

Canonical units of the arrays: energies in TeV, ``dnde`` in cm-2 s-1 TeV-1, ``e2dnde`` and ``eflux``
in TeV cm-2 s-1, ``flux`` in cm-2 s-1; tables are written in Gammapy's units (erg for the energy
fluxes).
"""

from __future__ import annotations

import math
import os
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from astropy.io import fits
from astropy.table import Table

from .. import stats
from ..irf._irf_base import trapz_loglog
from ..units import DNDE, ENERGY, FLUX, parse_unit
from .core import Dataset, DatasetPlan, _as_models, time_intervals

__all__ = [
    "SED_TYPES",
    "FluxPoints",
    "FluxPointsDataset",
    "FluxPointsFileNotFoundError",
    "FluxPointsPlan",
]

SED_TYPES = ("dnde", "e2dnde", "flux", "eflux", "likelihood")
"""The SED types of Gammapy's flux point tables."""

STAT_TYPES = ("chi2", "distrib")

# Quantities per SED type, in Gammapy's order (REQUIRED_MAPS + OPTIONAL_QUANTITIES; the norm errors
# come as errn, errp, the others as errp, errn).
_SUFFIXES = ("", "_err", "_errp", "_errn", "_ul", "_sensitivity")
_SUFFIXES_NORM = ("", "_err", "_errn", "_errp", "_ul", "_sensitivity")
# Per-point quantities common to all SED types, in Gammapy's order (OPTIONAL_QUANTITIES_COMMON).
_COMMON = (
    "ts",
    "sqrt_ts",
    "npred",
    "npred_excess",
    "stat",
    "stat_null",
    "stat_scan",
    "dnde_scan_values",
    "niter",
    "is_ul",
    "counts",
    "success",
    "n_dof",
)
_SED_PREFIX = {"dnde": "dnde", "e2dnde": "e2dnde", "flux": "flux", "eflux": "eflux", "likelihood": "norm"}
# Canonical unit of each SED type's values, and the unit Gammapy writes them in (DEFAULT_UNIT).
_CANONICAL_UNIT = {
    "dnde": DNDE,
    "e2dnde": "TeV cm-2 s-1",
    "flux": FLUX,
    "eflux": "TeV cm-2 s-1",
    "likelihood": "",
}
_TABLE_UNIT = {
    "dnde": "cm-2 s-1 TeV-1",
    "e2dnde": "erg cm-2 s-1",
    "flux": "cm-2 s-1",
    "eflux": "erg cm-2 s-1",
    "likelihood": "",
}
# Columns that decide the SED type when the table does not say (Gammapy's REQUIRED_COLUMNS order).
_REQUIRED_COLUMNS = {
    "dnde": ("e_ref", "dnde"),
    "e2dnde": ("e_ref", "e2dnde"),
    "flux": ("e_min", "e_max", "flux"),
    "eflux": ("e_min", "e_max", "eflux"),
    "likelihood": ("e_min", "e_max", "e_ref", "ref_dnde", "ref_flux", "ref_eflux", "norm"),
}
_QUANTITY_NAMES = frozenset(p + s for p in _SED_PREFIX.values() for s in _SUFFIXES) | frozenset(_COMMON)
_TINY = float(np.finfo(np.float64).tiny)


class FluxPointsFileNotFoundError(FileNotFoundError, ValueError):
    """A flux point file that does not exist (both a ``FileNotFoundError`` and a ``ValueError``)."""


# -- small numpy helpers ----------------------------------------------------------------------------
def _readonly(array: Any, dtype: Any = None) -> np.ndarray:
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


def _standardise_unit(unit: Any) -> u.UnitBase:
    """Gammapy's ``standardise_unit``: drop ``ph`` and ``ct`` from a unit."""
    unit = u.Unit(unit)
    bases, powers = [], []
    for base, power in zip(unit.bases, unit.powers, strict=True):
        if str(base) not in {"ph", "ct"}:
            bases.append(base)
            powers.append(power)
    return u.CompositeUnit(scale=unit.scale, bases=bases, powers=powers)


def _log_centers(edges: np.ndarray) -> np.ndarray:
    """Centres of a log energy axis, with the arithmetic of Gammapy's ``MapAxis.center``."""
    log_edges = np.log(np.clip(edges, _TINY, np.inf))
    return np.exp(0.5 * log_edges[:-1] + 0.5 * log_edges[1:])


def _loglog_interp(x: np.ndarray, nodes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Gammapy's default ``TemplateSpectralModel`` interpolation (linear in log-log, extrapolated,
    clipped at 0), with scipy's ``RegularGridInterpolator`` arithmetic."""
    scaled = np.log(np.clip(values, _TINY, np.inf))
    if nodes.size == 1:
        result = np.full(np.shape(x), scaled[0])
    else:
        grid = np.log(np.clip(nodes, _TINY, np.inf))
        xs = np.log(np.clip(x, _TINY, np.inf))
        i = np.clip(np.searchsorted(grid, xs) - 1, 0, grid.size - 2)
        y = (xs - grid[i]) / (grid[i + 1] - grid[i])
        result = scaled[i] * (1 - y) + scaled[i + 1] * y
    result = np.exp(result)
    result = np.where(np.abs(result) - _TINY <= _TINY, 0.0, result)
    return np.clip(result, 0.0, np.inf)


def _numeric_integral(dnde: Any, energy_min: np.ndarray, energy_max: np.ndarray, power: int) -> np.ndarray:
    """Gammapy's ``integrate_spectrum`` of ``E**power dnde(E)`` (log-log trapezoid, 100 per decade)."""
    num = int(np.maximum(np.max(100 * np.log10(energy_max / energy_min)), 2))
    energy = np.geomspace(energy_min, energy_max, num=num, axis=-1)
    values = np.asarray(dnde(energy)) * energy**power
    return trapz_loglog(values, energy, axis=-1).sum(axis=-1)


class _ReferenceSpectrum:
    """The reference spectrum that converts norms to fluxes, evaluated in numpy (TeV, canonical
    units). ``kind`` is "powerlaw" (Gammapy's analytic formulas), "template" (tabulated ``ref_dnde``
    of a likelihood table) or "model" (any jaxgamma spectral model, evaluated eagerly)."""

    def __init__(self, kind: str, model: Any = None, nodes: Any = None, values: Any = None):
        self.kind = kind
        self.model = model
        self.nodes = _readonly(np.zeros(0) if nodes is None else nodes, np.float64)
        self.values = _readonly(np.zeros(0) if values is None else values, np.float64)
        if kind == "powerlaw":
            v = model.values()
            self._pl = tuple(np.float64(np.asarray(v[k])) for k in ("index", "amplitude", "reference"))

    @classmethod
    def default(cls) -> _ReferenceSpectrum:
        from ..models import PowerLawSpectralModel

        # the class defaults are Gammapy's reference: index 2, 1e-12 cm-2 s-1 TeV-1 at 1 TeV
        return cls("powerlaw", PowerLawSpectralModel())

    @classmethod
    def from_model(cls, model: Any) -> _ReferenceSpectrum:
        from ..models import PowerLawSpectralModel, SkyModel, SpectralModel

        if isinstance(model, SkyModel):
            model = model.spectral_model
        if not isinstance(model, SpectralModel):
            raise TypeError(f"reference_model must be a SpectralModel, got {type(model).__name__}")
        if type(model) is PowerLawSpectralModel:
            return cls("powerlaw", model)
        return cls("model", model)

    def dnde(self, energy: np.ndarray) -> np.ndarray:
        if self.kind == "powerlaw":
            index, amplitude, reference = self._pl
            return amplitude * np.power(energy / reference, -index)
        if self.kind == "template":
            return _loglog_interp(np.asarray(energy), self.nodes, self.values)
        return np.asarray(self.model.dnde(jnp.asarray(energy)), dtype=np.float64)

    def integral(self, energy_min: np.ndarray, energy_max: np.ndarray) -> np.ndarray:
        if self.kind == "powerlaw":
            index, amplitude, reference = self._pl
            val = -1 * index + 1
            with np.errstate(divide="ignore", invalid="ignore"):
                prefactor = amplitude * reference / val
                out = prefactor * (
                    np.power(energy_max / reference, val) - np.power(energy_min / reference, val)
                )
            if np.isclose(val, 0):
                out = amplitude * reference * np.log(energy_max / energy_min)
            return out
        if self.kind == "model":
            return np.asarray(self.model.integral_array(energy_min, energy_max), dtype=np.float64)
        return _numeric_integral(self.dnde, energy_min, energy_max, power=0)

    def energy_flux(self, energy_min: np.ndarray, energy_max: np.ndarray) -> np.ndarray:
        if self.kind == "powerlaw":
            index, amplitude, reference = self._pl
            val = -1 * index + 2
            with np.errstate(divide="ignore", invalid="ignore"):
                prefactor = amplitude * reference**2 / val
                out = prefactor * ((energy_max / reference) ** val - (energy_min / reference) ** val)
            if np.isclose(val, 0):
                out = amplitude * reference**2 * np.log(energy_max / energy_min)
            return out
        if self.kind == "model" and hasattr(self.model, "energy_flux_array"):
            return np.asarray(self.model.energy_flux_array(energy_min, energy_max), dtype=np.float64)
        return _numeric_integral(self.dnde, energy_min, energy_max, power=1)

    @property
    def spectral_model(self) -> Any:
        if self.model is not None:
            return self.model
        from ..models.spectral import TemplateSpectralModel

        return TemplateSpectralModel(energy=self.nodes, values=u.Quantity(self.values, DNDE))


# -- reading ----------------------------------------------------------------------------------------
def _as_path(path: Any) -> Path:
    return Path(os.path.expandvars(os.fspath(path))).expanduser()


def _sniff(path: Path) -> str:
    if not path.exists():
        raise FluxPointsFileNotFoundError(2, "flux point file not found", str(path))
    if path.is_dir():
        raise ValueError(f"{str(path)!r}: is a folder, not a flux point file")
    with open(path, "rb") as f:
        head = f.read(80)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"\x1f\x8b"):  # gzip: only FITS is read compressed
        return "fits"
    if head.lstrip().startswith(b"# %ECSV"):
        return "ecsv"
    raise ValueError(f"{str(path)!r}: not a FITS or ECSV file (cannot read flux points from it)")


def _read_table(
    path: Any, hdu_names: tuple[str, ...] = ("FLUXPOINTS", "TABLE")
) -> tuple[Table, Table | None]:
    """The flux point table of a FITS or ECSV file (and its GTI table, if any).

    FITS: the first HDU named in ``hdu_names``, else the first binary table.
    """
    path = _as_path(path)
    kind = _sniff(path)
    with warnings.catch_warnings():
        # unrecognised units are reported by the column readers, naming the column
        warnings.simplefilter("ignore", u.UnitsWarning)
        if kind == "ecsv":
            try:
                return Table.read(path, format="ascii.ecsv"), None
            except Exception as err:
                raise ValueError(f"{str(path)!r}: cannot read the ECSV table: {err}") from err
        try:
            # our own file object: astropy leaves its handle open when the file is corrupt
            with open(path, "rb") as handle, fits.open(handle, memmap=False) as hdulist:
                tables = [h for h in hdulist if isinstance(h, fits.BinTableHDU)]
                chosen = next((h for name in hdu_names for h in tables if h.name == name), None)
                if chosen is None and tables:
                    chosen = tables[0]
                table = None if chosen is None else Table.read(chosen)
                gti = Table.read(hdulist["GTI"]) if "GTI" in hdulist else None
        except Exception as err:
            raise ValueError(f"{str(path)!r}: cannot read the FITS file: {err}") from err
    if table is None:
        raise ValueError(f"{str(path)!r}: no binary table HDU with flux points")
    return table, gti


def _column(table: Table, name: str, unit: str | None, where: str) -> np.ndarray:
    """Column ``name`` as a float64 array in ``unit`` (masked entries become NaN); ``unit=None``
    keeps the raw values (bool, int)."""
    col = table[name]
    data = np.ma.getdata(col)
    mask = np.ma.getmaskarray(col)
    if unit is None:
        return np.where(mask, np.zeros((), data.dtype), data) if mask.any() else np.asarray(data)
    data = data.astype(np.float64)
    if mask.any():
        data = np.where(mask, np.nan, data)
    target = u.Unit(unit) if unit else u.dimensionless_unscaled
    col_unit = col.unit
    if col_unit is None or str(col_unit) == "":
        if target == u.dimensionless_unscaled:
            return np.ascontiguousarray(data, dtype=np.float64)
        raise ValueError(f"{where}: column {name!r} has no unit (expected one convertible to {target})")
    if isinstance(col_unit, u.UnrecognizedUnit):
        raise ValueError(f"{where}: column {name!r} has an unrecognised unit {str(col_unit)!r}")
    try:
        factor_unit = _standardise_unit(col_unit)
        values = u.Quantity(data, factor_unit, copy=False).to_value(target)
    except (u.UnitsError, ValueError) as err:
        raise ValueError(
            f"{where}: column {name!r} has unit {str(col_unit)!r}, not convertible to {target.to_string()!r}"
        ) from err
    return np.ascontiguousarray(values, dtype=np.float64)


def _guess_sed_type(colnames: list[str]) -> str | None:
    for sed_type, required in _REQUIRED_COLUMNS.items():
        if set(required).issubset(colnames):
            return sed_type
    return None


def _n_sigma_from_conf(conf: float) -> float:
    from jax.scipy.special import ndtri

    return float(np.round(-float(ndtri(0.5 * (1 - conf))), 1))


# -- FluxPoints -------------------------------------------------------------------------------------
class FluxPoints:
    """Flux points along one energy axis, as Gammapy's ``FluxPoints`` in the ``gadf-sed`` format.

    Read them with :meth:`read` or :meth:`from_table`; every quantity of every SED type is then
    available as a read-only numpy array in canonical units, e.g. ``fp.dnde``, ``fp.dnde_errn``,
    ``fp.e2dnde_ul``, ``fp.flux``, ``fp.norm``, ``fp.ts``, ``fp.is_ul`` (an ``AttributeError`` when
    the table lacks it). Values in the SED type the points were read in are kept exactly; the other
    types are ``norm x ref`` with the reference spectrum.

    The energy axis is ``E_ref = sqrt(e_min e_max)`` (computed as Gammapy does) when the table has
    ``e_min``/``e_max`` columns, whose edges are then ``e_min`` followed by the last ``e_max`` (as in
    Gammapy); otherwise the ``e_ref`` column.
    """

    def __init__(
        self,
        sed_type: str,
        values: Mapping[str, Any],
        energy_ref: Any,
        energy_edges: Any = None,
        reference: _ReferenceSpectrum | None = None,
        common: Mapping[str, Any] | None = None,
        norm_scan: Any = None,
        meta: Mapping[str, Any] | None = None,
        gti: Table | None = None,
        filename: str | None = None,
    ):
        if sed_type not in SED_TYPES:
            raise ValueError(f"unknown SED type {sed_type!r}; expected one of {list(SED_TYPES)}")
        self._sed_type = sed_type
        self._energy_ref = _readonly(energy_ref, np.float64)
        self._energy_edges = None if energy_edges is None else _readonly(energy_edges, np.float64)
        n = self._energy_ref.shape[0]
        if "" not in values:
            raise ValueError(f"SED type {sed_type!r} needs the {_SED_PREFIX[sed_type]!r} values")
        self._values = {k: _readonly(v, np.float64) for k, v in values.items()}
        self._common = {k: _readonly(v) for k, v in (common or {}).items()}
        for k, v in list(self._values.items()) + list(self._common.items()):
            if v.shape[:1] != (n,):
                raise ValueError(f"flux points: {k or sed_type!r} has shape {v.shape}, expected ({n}, ...)")
        if "is_ul" in self._common:
            self._common["is_ul"] = _readonly(self._common["is_ul"], bool)
        if "success" in self._common:
            self._common["success"] = _readonly(self._common["success"], bool)
        self._reference = reference if reference is not None else _ReferenceSpectrum.default()
        self._norm_scan = None if norm_scan is None else _readonly(norm_scan, np.float64)
        self.meta = dict(meta or {})
        self.meta.setdefault("SED_TYPE", sed_type)
        self.gti = gti
        self.filename = filename
        self._refs: dict[str, np.ndarray] = {}  # reference fluxes, computed when first needed

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def read(
        cls, path: Any, sed_type: str | None = None, format: str = "gadf-sed", reference_model: Any = None
    ) -> FluxPoints:
        """Read flux points from a Gammapy ``gadf-sed`` FITS (HDU ``FLUXPOINTS`` or the first table)
        or ECSV file.

        Parameters
        ----------
        path : str or Path
        sed_type : {"dnde", "e2dnde", "flux", "eflux", "likelihood"}, optional
            Default: the ``SED_TYPE`` header keyword, else guessed from the columns.
        format : {"gadf-sed"}
        reference_model : SpectralModel, optional
            Reference spectrum for the conversions between SED types (default: Gammapy's power law
            of index 2; for likelihood tables the tabulated ``ref_dnde``).
        """
        table, gti = _read_table(path)
        return cls.from_table(
            table,
            sed_type=sed_type,
            format=format,
            reference_model=reference_model,
            filename=str(path),
            gti=gti,
        )

    @classmethod
    def from_table(
        cls,
        table: Table,
        sed_type: str | None = None,
        format: str = "gadf-sed",
        reference_model: Any = None,
        filename: str | None = None,
        gti: Table | None = None,
    ) -> FluxPoints:
        """Flux points from an astropy Table in the ``gadf-sed`` format (see :meth:`read`)."""
        where = repr(filename) if filename else "flux point table"
        if format != "gadf-sed":
            raise ValueError(f"{where}: only format='gadf-sed' is supported, got {format!r}")
        names = list(table.colnames)
        if sed_type is None:
            sed_type = table.meta.get("SED_TYPE")
            if sed_type is None:
                sed_type = _guess_sed_type(names)
            if sed_type is None:
                raise ValueError(
                    f"{where}: no SED_TYPE keyword and the columns {names} match no SED type; "
                    f"pass sed_type= (one of {list(SED_TYPES)})"
                )
        if sed_type not in SED_TYPES:
            raise ValueError(f"{where}: unknown SED_TYPE {sed_type!r}; expected one of {list(SED_TYPES)}")
        if len(table) == 0:
            raise ValueError(f"{where}: the flux point table has no rows")

        # energy axis
        if "e_min" in names and "e_max" in names:
            e_min = _column(table, "e_min", ENERGY, where)
            e_max = _column(table, "e_max", ENERGY, where)
            edges = np.append(e_min, e_max[-1])
            _check_energies(edges, where, "e_min/e_max")
            if e_min.size > 1 and not np.allclose(e_max[:-1], e_min[1:], rtol=1e-6, atol=0):
                warnings.warn(
                    f"{where}: the flux point bins are not contiguous; as Gammapy does, the bin edges "
                    "are e_min followed by the last e_max (e_max of the other bins is not used)",
                    stacklevel=3,
                )
            energy_ref = _log_centers(edges)
        elif "e_ref" in names:
            edges = None
            energy_ref = _column(table, "e_ref", ENERGY, where)
            _check_energies(energy_ref, where, "e_ref")
            energy_ref = np.exp(np.log(energy_ref))  # Gammapy's axis centre of a node axis
        else:
            raise ValueError(
                f"{where}: no energy columns: a flux point table needs 'e_ref' or 'e_min' and 'e_max' "
                f"(columns: {names})"
            )
        if sed_type in ("flux", "eflux", "likelihood") and edges is None:
            raise ValueError(
                f"{where}: SED type {sed_type!r} needs columns 'e_min' and 'e_max' (columns: {names})"
            )

        # reference spectrum
        if reference_model is not None:
            reference = _ReferenceSpectrum.from_model(reference_model)
        elif sed_type == "likelihood":
            for col in ("e_ref", "ref_dnde"):
                if col not in names:
                    raise ValueError(
                        f"{where}: a likelihood table needs column {col!r} for its reference spectrum "
                        f"(or pass reference_model=); columns: {names}"
                    )
            nodes = _column(table, "e_ref", ENERGY, where)
            _check_energies(nodes, where, "e_ref")
            reference = _ReferenceSpectrum(
                "template", nodes=nodes, values=_column(table, "ref_dnde", DNDE, where)
            )
        else:
            reference = _ReferenceSpectrum.default()

        prefix = _SED_PREFIX[sed_type]
        if prefix not in names:
            raise ValueError(f"{where}: SED type {sed_type!r} needs column {prefix!r} (columns: {names})")
        unit = _CANONICAL_UNIT[sed_type]
        values = {s: _column(table, prefix + s, unit, where) for s in _SUFFIXES if prefix + s in names}
        common: dict[str, np.ndarray] = {}
        for name in _COMMON:
            if name not in names:
                continue
            if name in ("is_ul", "success"):
                common[name] = _column(table, name, None, where).astype(bool)
            elif name == "niter":
                common[name] = _column(table, name, None, where)
            elif name == "dnde_scan_values":
                common[name] = _column(table, name, DNDE, where)
            else:
                common[name] = _column(table, name, "", where)
        norm_scan = None
        if "stat_scan" in common:
            if "norm_scan" not in names:
                raise ValueError(f"{where}: column 'stat_scan' needs column 'norm_scan' (columns: {names})")
            norm_scan = np.atleast_1d(_column(table, "norm_scan", "", where)[0])
        meta = {k: v for k, v in table.meta.items() if k not in ("EXTNAME",)}
        meta["SED_TYPE"] = sed_type
        if "UL_CONF" in meta:
            meta["n_sigma_ul"] = _n_sigma_from_conf(float(meta["UL_CONF"]))
        return cls(
            sed_type,
            values,
            energy_ref=energy_ref,
            energy_edges=edges,
            reference=reference,
            common=common,
            norm_scan=norm_scan,
            meta=meta,
            gti=gti,
            filename=filename,
        )

    # -- axis ----------------------------------------------------------------------------------------
    @property
    def sed_type_init(self) -> str:
        """The SED type the points were read in (the default for :meth:`to_table`)."""
        return self._sed_type

    def __len__(self) -> int:
        return self._energy_ref.shape[0]

    @property
    def n_points(self) -> int:
        return len(self)

    @property
    def energy_ref(self) -> np.ndarray:
        """Reference energies (TeV): the log centres of the bins, or the ``e_ref`` nodes."""
        return self._energy_ref

    @property
    def energy_edges(self) -> np.ndarray | None:
        """Bin edges (TeV), ``None`` for flux points given at ``e_ref`` only."""
        return self._energy_edges

    @property
    def energy_min(self) -> np.ndarray | None:
        return None if self._energy_edges is None else self._energy_edges[:-1]

    @property
    def energy_max(self) -> np.ndarray | None:
        return None if self._energy_edges is None else self._energy_edges[1:]

    @property
    def _plot_edges(self) -> np.ndarray | None:
        """The bin edges, or for points at ``e_ref`` only the edges Gammapy's energy axis
        interpolates between its nodes (``MapAxis.from_nodes(interp="log")``: log midpoints, the
        outer half-steps mirrored); None for a single node."""
        if self._energy_edges is not None:
            return self._energy_edges
        if self._energy_ref.size < 2:
            return None
        log_nodes = np.log(self._energy_ref)
        half = 0.5 * np.diff(log_nodes)
        inner = log_nodes[:-1] + half
        return np.exp(np.concatenate([[log_nodes[0] - half[0]], inner, [log_nodes[-1] + half[-1]]]))

    @property
    def is_convertible_to_flux_sed_type(self) -> bool:
        return self._energy_edges is not None

    # -- reference ---------------------------------------------------------------------------------
    @property
    def reference_model(self) -> Any:
        """The reference spectral model of the SED-type conversions."""
        return self._reference.spectral_model

    def _ref(self, sed_type: str) -> np.ndarray:
        """The reference values of ``sed_type`` (1 for likelihood, whose values are norms)."""
        if sed_type == "likelihood":
            return _readonly(np.ones(len(self)))
        edges = self._energy_edges
        if sed_type in ("flux", "eflux") and edges is None:
            raise ValueError(
                f"flux points without energy bins (e_min/e_max): cannot convert to SED type {sed_type!r}"
            )
        if sed_type not in self._refs:
            ref = self._reference
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if sed_type == "dnde":
                    value = ref.dnde(self._energy_ref)
                elif sed_type == "e2dnde":
                    value = self._ref("dnde") * self._energy_ref**2
                elif sed_type == "flux":
                    value = ref.integral(edges[:-1], edges[1:])  # type: ignore[index]
                else:
                    value = ref.energy_flux(edges[:-1], edges[1:])  # type: ignore[index]
            self._refs[sed_type] = _readonly(value, np.float64)
        return self._refs[sed_type]

    @property
    def dnde_ref(self) -> np.ndarray:
        return self._ref("dnde")

    @property
    def e2dnde_ref(self) -> np.ndarray:
        return self._ref("e2dnde")

    @property
    def flux_ref(self) -> np.ndarray:
        return self._ref("flux")

    @property
    def eflux_ref(self) -> np.ndarray:
        return self._ref("eflux")

    # -- quantities ----------------------------------------------------------------------------------
    @property
    def available_quantities(self) -> list[str]:
        """Gammapy's names of the stored quantities (norm-type names, then the common ones)."""
        return ["norm" + s for s in _SUFFIXES if s in self._values] + list(self._common)

    @property
    def has_ul(self) -> bool:
        return "_ul" in self._values

    @property
    def has_any_ts(self) -> bool:
        return "ts" in self._common or "sqrt_ts" in self._common

    @property
    def has_stat_profiles(self) -> bool:
        return "stat_scan" in self._common

    @property
    def norm_scan(self) -> np.ndarray | None:
        """The norm values of the likelihood profiles ``stat_scan``."""
        return self._norm_scan

    @property
    def sqrt_ts_threshold_ul(self) -> float:
        return float(self.meta.get("sqrt_ts_threshold_ul", 2))

    @property
    def n_sigma_ul(self) -> float | None:
        return self.meta.get("n_sigma_ul")

    def _sed_values(self, suffix: str, sed_type: str) -> np.ndarray:
        if suffix not in self._values:
            raise AttributeError(
                f"Quantity {_SED_PREFIX[sed_type] + suffix!r} is not defined on these flux points "
                f"(available: {self.available_quantities})"
            )
        raw = self._values[suffix]
        if sed_type == self._sed_type:
            out = raw
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                norm = raw if self._sed_type == "likelihood" else raw / self._ref(self._sed_type)
                out = norm if sed_type == "likelihood" else norm * self._ref(sed_type)
        if suffix in ("", "_err") and "success" in self._common:
            out = np.where(self._common["success"], out, np.nan)
        return _readonly(out)

    def get(self, name: str) -> np.ndarray:
        """Any quantity by Gammapy's name (``"dnde_errn"``, ``"flux_ul"``, ``"norm"``, ``"ts"``, ...),
        in canonical units; ``AttributeError`` when it is not available."""
        if name == "is_ul":
            return self.is_ul
        if name == "sqrt_ts":
            return self.sqrt_ts
        if name in self._common:
            return self._common[name]
        for sed_type, prefix in _SED_PREFIX.items():
            for suffix in _SUFFIXES:
                if name == prefix + suffix:
                    return self._sed_values(suffix, sed_type)
        raise AttributeError(f"Quantity {name!r} is not defined on these flux points")

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: the derived quantities (fp.dnde_errn, fp.flux_ul, ...)
        if name in _QUANTITY_NAMES:
            return self.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def is_ul(self) -> np.ndarray:
        """Whether each point is an upper limit (Gammapy's rules when there is no ``is_ul`` column:
        ``sqrt_ts < 2`` with TS and ULs, ``isfinite(norm_ul)`` with ULs, else ``isnan(norm)``)."""
        if "is_ul" in self._common:
            return self._common["is_ul"]
        if self.has_any_ts and self.has_ul:
            with np.errstate(invalid="ignore"):
                return _readonly(self.sqrt_ts < self.sqrt_ts_threshold_ul)
        if self.has_ul:
            return _readonly(np.isfinite(self._values["_ul"]))
        return _readonly(np.isnan(self._sed_values("", self._sed_type)))

    @property
    def sqrt_ts(self) -> np.ndarray:
        if "sqrt_ts" in self._common:
            return self._common["sqrt_ts"]
        if "ts" not in self._common:
            raise AttributeError("Quantity 'sqrt_ts' is not defined on these flux points (no 'ts')")
        with np.errstate(invalid="ignore", divide="ignore"):
            ts = np.clip(self._common["ts"], 0, None)
            norm = self._sed_values("", self._sed_type)
            return _readonly(np.where(norm > 0, np.sqrt(ts), -np.sqrt(ts)))

    def _has(self, name: str) -> bool:
        try:
            self.get(name)
        except (AttributeError, ValueError):
            return False
        return True

    # -- output --------------------------------------------------------------------------------------
    def to_table(self, sed_type: str | None = None, format: str = "gadf-sed") -> Table:
        """The flux points as a Gammapy ``gadf-sed`` table in ``sed_type`` (default: the type they
        were read in), with Gammapy's columns, order and units."""
        sed_type = self._sed_type if sed_type is None else sed_type
        if sed_type not in SED_TYPES:
            raise ValueError(f"unknown SED type {sed_type!r}; expected one of {list(SED_TYPES)}")
        if format != "gadf-sed":
            raise ValueError(f"only format='gadf-sed' is supported, got {format!r}")
        table = Table()
        table["e_ref"] = u.Quantity(self._energy_ref, ENERGY)
        if self._energy_edges is not None:
            table["e_min"] = u.Quantity(self.energy_min, ENERGY)
            table["e_max"] = u.Quantity(self.energy_max, ENERGY)
        table.meta["SED_TYPE"] = sed_type
        if self.n_sigma_ul:
            table.meta["UL_CONF"] = float(np.round(1 - math.erfc(self.n_sigma_ul / math.sqrt(2)), 7))
        if sed_type == "likelihood":
            table["ref_dnde"] = u.Quantity(self.dnde_ref, DNDE)
            table["ref_flux"] = u.Quantity(self.flux_ref, FLUX)
            table["ref_eflux"] = u.Quantity(self.eflux_ref, _CANONICAL_UNIT["eflux"]).to(_TABLE_UNIT["eflux"])
        prefix = _SED_PREFIX[sed_type]
        for suffix in _SUFFIXES_NORM if sed_type == "likelihood" else _SUFFIXES:
            if suffix in self._values:
                values = u.Quantity(self._sed_values(suffix, sed_type), _CANONICAL_UNIT[sed_type])
                table[prefix + suffix] = (
                    values.to(_TABLE_UNIT[sed_type]) if sed_type != "likelihood" else values
                )
        for name in _COMMON:
            if self._has(name):
                values = self.get(name)
                table[name] = u.Quantity(values, DNDE) if name == "dnde_scan_values" else values
        if self.has_stat_profiles:
            table["norm_scan"] = np.tile(np.asarray(self._norm_scan), (len(self), 1))
        if self.has_ul:
            table["is_ul"] = self.is_ul
        elif "is_ul" in table.colnames:
            table.remove_column("is_ul")
        return table

    def write(
        self, path: Any, sed_type: str | None = None, format: str = "gadf-sed", overwrite: bool = False
    ) -> None:
        """Write a Gammapy flux point file: FITS (``.fits``, HDU ``FLUXPOINTS``) or ECSV
        (``.ecsv``); atomic, and refusing to replace a file unless ``overwrite=True``."""
        table = self.to_table(sed_type=sed_type, format=format)
        extra = [fits.BinTableHDU(self.gti, name="GTI")] if self.gti is not None else []
        _write_table(path, table, overwrite=overwrite, hdu_name="FLUXPOINTS", extra_hdus=extra)

    # -- plotting ------------------------------------------------------------------------------------
    def plot(self, ax: Any = None, sed_type: str | None = None, energy_power: int = 0, **kwargs: Any) -> Any:
        """Plot the flux points (Gammapy's ``FluxPoints.plot``): ``sed_type`` (default the type they
        were read in; "dnde" for likelihood points) in Gammapy's default units times
        ``E_ref^energy_power`` (TeV), errors ``*_errn`` / ``*_errp`` (or the symmetric ``*_err``),
        energy bins as x errors (for points at ``e_ref`` only, the bins Gammapy interpolates between
        the nodes), upper limits at the UL value with a downward arrow of half its length. Keyword
        arguments go to ``ax.errorbar`` (defaults: marker "o", markersize 4, no line). Returns the
        axes."""
        import matplotlib.pyplot as plt

        if sed_type is None:
            sed_type = "dnde" if self._sed_type == "likelihood" else self._sed_type
        if sed_type not in _TABLE_UNIT or sed_type == "likelihood":
            raise ValueError(f"FluxPoints.plot: sed_type must be one of dnde, e2dnde, flux, eflux; got {sed_type!r}")
        ax = plt.gca() if ax is None else ax
        y_unit = parse_unit(_TABLE_UNIT[sed_type]) * u.TeV**energy_power
        scale = (1.0 * parse_unit(_CANONICAL_UNIT[sed_type]) * u.TeV**energy_power).to_value(y_unit)
        scale = scale * self._energy_ref**energy_power
        flux = np.array(self.get(sed_type), dtype=np.float64)
        errn = errp = None
        if "norm_err" in self.available_quantities:
            errn = np.array(self.get(sed_type + "_err"), dtype=np.float64)
            errp = errn.copy()
        if "norm_errp" in self.available_quantities:
            errn = np.array(self.get(sed_type + "_errn"), dtype=np.float64)
            errp = np.array(self.get(sed_type + "_errp"), dtype=np.float64)
        is_ul = np.asarray(self.is_ul, dtype=bool)
        if self.has_ul and errn is not None and errp is not None and is_ul.any():
            flux_ul = np.asarray(self.get(sed_type + "_ul"), dtype=np.float64)
            errn[is_ul] = np.clip(0.5 * flux_ul[is_ul], 0, np.inf)
            errp[is_ul] = 0.0
            flux[is_ul] = flux_ul[is_ul]
            kwargs.setdefault("uplims", is_ul)
        if errn is not None and errp is not None:
            kwargs.setdefault("yerr", (np.clip(errn * scale, 0, np.inf), np.clip(errp * scale, 0, np.inf)))
        kwargs.setdefault("marker", "o")
        kwargs.setdefault("markersize", 4)
        kwargs.setdefault("ls", "None")
        edges = self._plot_edges
        if edges is not None:
            kwargs.setdefault("xerr", (self._energy_ref - edges[:-1], edges[1:] - self._energy_ref))
        ax.errorbar(x=self._energy_ref, y=flux * scale, **kwargs)
        ax.set_xscale("log")
        ax.set_xlabel("Energy [$\\mathrm{TeV}$]")  # Gammapy's label
        # Gammapy's axis bounds: the outer edges, or the outer nodes of points at e_ref only
        bounds = self._energy_edges if self._energy_edges is not None else self._energy_ref
        if bounds[0] != bounds[-1]:
            ax.set_xlim(bounds[0], bounds[-1])
        quantity = f"e{energy_power} * {sed_type}" if energy_power > 0 else sed_type
        ax.set_ylabel(f"{quantity} [{y_unit.to_string('latex_inline')}]")
        ax.set_yscale("log", nonpositive="clip")
        return ax

    # -- rebinning ------------------------------------------------------------------------------------
    def _squashed(self, scans: list[np.ndarray], nulls: list[np.ndarray] | None, energy_edges: np.ndarray) -> FluxPoints:
        """New flux points on ``energy_edges``, point ``i`` from the likelihood profiles ``scans[i]``
        ``(n_combined, n_norm)`` on this object's norm grid (and their null statistics
        ``nulls[i]``), likelihood points with this object's reference spectrum: the squash step of
        Gammapy's ``resample_axis`` (:func:`jaxgamma.estimators.resample.squash_profiles`)."""
        from ..estimators.resample import squash_profiles

        if not self.has_stat_profiles or self._norm_scan is None:
            raise ValueError("Stat profiles not present, rebinning is not possible")
        if self._sed_type != "likelihood":
            raise ValueError(
                f"rebinning needs likelihood flux points (norm profiles and their reference spectrum); these "
                f"were read as {self._sed_type!r}, whose file does not keep the profiles' reference (write them "
                "with sed_type='likelihood')"
            )
        n_sigma = float(self.meta.get("n_sigma_ul", 2)) if self.has_ul else None
        rows = [
            squash_profiles(self._norm_scan, scan, None if nulls is None else nulls[i], n_sigma)
            for i, scan in enumerate(scans)
        ]
        values = {"": np.array([r["norm"] for r in rows]), "_err": np.array([r["norm_err"] for r in rows])}
        if n_sigma is not None:
            values["_ul"] = np.array([r["norm_ul"] for r in rows])
        names = ("ts", "n_dof", "stat", "stat_null", "stat_scan", "success")
        common = {name: np.array([r[name] for r in rows]) for name in names if name in rows[0]}
        return FluxPoints(
            "likelihood",
            values,
            energy_ref=_log_centers(energy_edges),
            energy_edges=energy_edges,
            reference=self._reference,
            common=common,
            norm_scan=self._norm_scan,
            meta=self.meta,
            gti=self.gti,
        )

    def resample_axis(self, axis_new: Any) -> FluxPoints:
        """Flux points on coarser energy bins by summing the likelihood profiles of the bins each
        new bin covers (Gammapy's ``FluxPoints.resample_axis``; see
        :mod:`jaxgamma.estimators.resample`): norm, errors, upper limit, stat, TS, ``n_dof`` and the
        summed ``stat_scan`` per new bin; other quantities (counts, npred ...) are not kept.

        Parameters
        ----------
        axis_new : MapAxis or array
            The new energy bins (a MapAxis, or edges as a Quantity or in TeV), each starting and
            ending on edges of these points' bins, e.g. from
            :func:`~jaxgamma.estimators.get_rebinned_axis`.
        """
        from ..estimators.resample import group_indices

        if self._energy_edges is None:
            raise ValueError("resample_axis: flux points given at e_ref only have no energy bins to combine")
        if not self.has_stat_profiles:
            raise ValueError("Stat profiles not present, rebinning is not possible")
        if hasattr(axis_new, "edges_in"):
            edges = np.asarray(axis_new.edges_in("TeV"), dtype=np.float64)
        else:
            edges = np.asarray(u.Quantity(axis_new, "TeV").to_value("TeV"), dtype=np.float64)
        groups = group_indices(self._energy_edges[:-1], self._energy_edges[1:], edges[:-1], edges[1:], "energy")
        scans = np.asarray(self._common["stat_scan"], dtype=np.float64)
        nulls = self._common.get("stat_null")
        return self._squashed([scans[g] for g in groups], None if nulls is None else [nulls[g] for g in groups], edges)

    def __repr__(self) -> str:
        emin = self._energy_edges[0] if self._energy_edges is not None else self._energy_ref[0]
        emax = self._energy_edges[-1] if self._energy_edges is not None else self._energy_ref[-1]
        return (
            f"FluxPoints(n_points={len(self)}, sed_type_init={self._sed_type!r}, "
            f"energy={emin:.4g}..{emax:.4g} TeV, quantities={self.available_quantities})"
        )


def _models_and_covariance(models: Any) -> tuple[Any, Any]:
    """(Models, their covariance or None) from Models, a model list or a FitResult."""
    from ..fit.result import FitResult

    if isinstance(models, FitResult):
        models = models.models
    models = _as_models(models)
    return models, models.covariance


def _check_energies(energy: np.ndarray, where: str, what: str) -> None:
    if not np.all(np.isfinite(energy)) or not np.all(energy > 0):
        raise ValueError(f"{where}: energy columns {what} must be finite and positive")
    if energy.size > 1 and not np.all(np.diff(energy) > 0):
        raise ValueError(f"{where}: energy columns {what} must be strictly increasing (sorted flux points)")


def _write_table(
    path: Any, table: Table, overwrite: bool, hdu_name: str | None, extra_hdus: Any = ()
) -> None:
    path = _as_path(path)
    if ".fits" in path.suffixes:
        kind = "fits"
    elif path.suffix == ".ecsv":
        kind = "ecsv"
    else:
        raise ValueError(f"{str(path)!r}: unsupported file name suffix; use '.fits' or '.ecsv'")
    from ..io._atomic import atomic_paths

    with atomic_paths(path, overwrite=overwrite) as (tmp,):
        _write_to(tmp, table, kind, hdu_name, extra_hdus)


def _write_to(tmp: Path, table: Table, kind: str, hdu_name: str | None, extra_hdus: Any) -> None:
    if kind == "fits":
        hdu = fits.BinTableHDU(table, name=hdu_name) if hdu_name else fits.BinTableHDU(table)
        fits.HDUList([fits.PrimaryHDU(), hdu, *extra_hdus]).writeto(tmp, overwrite=True)
    else:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


# -- the dataset ------------------------------------------------------------------------------------
def _make_name() -> str:
    return uuid.uuid4().hex[:8]


def _as_mask(mask: Any, n: int, what: str, name: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.size != n or (mask.ndim > 1 and mask.shape[0] != n):
        raise ValueError(f"FluxPointsDataset {name!r}: {what} has shape {mask.shape}, expected ({n},)")
    if mask.dtype != bool:
        if not np.all(np.isin(mask, (0, 1))):
            raise ValueError(f"FluxPointsDataset {name!r}: {what} must be boolean")
        mask = mask.astype(bool)
    return _readonly(mask.reshape(n), bool)


def _is_template_spatial(model: Any) -> bool:
    return model is not None and "Template" in type(model).__name__


class FluxPointsPlan(DatasetPlan):
    """The arrays a flux-point statistic needs (leaves) and the names of the sky models it sums.

    ``npred(models)`` is Gammapy's ``flux_pred``: the sum of ``spectral_model.dnde(energy)`` of the
    planned models (cm-2 s-1 TeV-1), each times its temporal model averaged over the flux points'
    GTI when both exist. Arrays where ``mask`` is False are replaced by harmless values,
    so that neither the statistic nor its gradient ever sees a NaN from a masked point.
    """

    energy: np.ndarray
    dnde: np.ndarray
    sigma: np.ndarray | None
    errn: np.ndarray | None
    errp: np.ndarray | None
    dnde_ul: np.ndarray | None
    is_ul: np.ndarray | None
    mask: np.ndarray
    # per model: (2, n_gti) MJD start / stop of the flux points' GTI for its temporal norm, or None
    time_intervals: tuple[np.ndarray | None, ...]
    model_names: tuple[str, ...] = eqx.field(static=True)
    stat_type: str = eqx.field(static=True)

    def npred(self, models: Any) -> Any:
        flux = jnp.zeros(self.energy.shape)
        for name, times in zip(self.model_names, self.time_intervals, strict=True):
            dnde = models[name].spectral_model.dnde(jnp.asarray(self.energy))
            if times is not None:
                dnde = dnde * models[name].temporal_model.time_average(times[0], times[1])
            flux = flux + dnde
        return flux

    flux_pred = npred

    def stat_array(self, models: Any) -> Any:
        """Statistic per flux point (masked points included, as Gammapy's ``stat_array``)."""
        model = self.npred(models)
        if self.stat_type == "chi2":
            return stats.chi2(self.dnde, model, self.sigma)
        return stats.chi2_asymmetric(self.dnde, model, self.errn, self.errp, None, self.dnde_ul, self.is_ul)

    def stat_sum(self, models: Any) -> Any:
        return stats.masked_sum(self.stat_array(models), self.mask)


class FluxPointsDataset(Dataset):
    """Flux points with masks, fitted with Gammapy's ``chi2`` or ``distrib`` statistic.

    Parameters
    ----------
    data : FluxPoints
    name : str, optional
        A random name when not given, as in Gammapy.
    mask_fit, mask_safe : bool arrays of shape (n_points,), optional
        ``mask_safe`` defaults to all True; the statistic uses ``mask_safe & mask_valid & mask_fit``.
    stat_type : {"chi2", "distrib"}
        ``chi2``: ``((dnde - flux_pred) / dnde_err)^2`` (mean of ``dnde_errn``/``dnde_errp`` when
        there is no ``dnde_err``), upper limits ignored (``mask_valid = ~is_ul & isfinite(dnde)``).
        ``distrib``: asymmetric Gaussian errors and upper limits through ``erfc``
        (``mask_valid = (is_ul & isfinite(dnde_ul)) | isfinite(dnde)``).
    """

    tag: ClassVar[str] = "FluxPointsDataset"
    data: FluxPoints = eqx.field(static=True, default=None)
    name: str = eqx.field(static=True, default="")
    mask_fit: np.ndarray | None = None
    mask_safe: np.ndarray = eqx.field(default=None)
    stat_type: str = eqx.field(static=True, default="chi2")  # type: ignore[misc]

    def __init__(
        self,
        data: FluxPoints,
        name: str | None = None,
        mask_fit: Any = None,
        mask_safe: Any = None,
        stat_type: str = "chi2",
    ):
        if not isinstance(data, FluxPoints):
            raise TypeError(f"FluxPointsDataset: data must be FluxPoints, got {type(data).__name__}")
        name = _make_name() if name is None else str(name)
        if stat_type == "profile":
            raise NotImplementedError(
                f"FluxPointsDataset {name!r}: stat_type 'profile' is not implemented; use 'chi2' or 'distrib'"
            )
        if stat_type not in STAT_TYPES:
            raise ValueError(
                f"FluxPointsDataset {name!r}: invalid stat_type {stat_type!r}; possible options are {list(STAT_TYPES)}"
            )
        n = len(data)
        self.data = data
        self.name = name
        self.stat_type = stat_type
        self.mask_fit = _as_mask(mask_fit, n, "mask_fit", name)
        mask_safe = _as_mask(mask_safe, n, "mask_safe", name)
        self.mask_safe = _readonly(np.ones(n, bool)) if mask_safe is None else mask_safe

    # -- masks ---------------------------------------------------------------------------------------
    def _optional(self, name: str) -> np.ndarray | None:
        try:
            return np.asarray(self.data.get(name), dtype=np.float64)
        except AttributeError:
            return None

    @property
    def mask_valid(self) -> np.ndarray:
        """The points the statistic can use (depends on ``stat_type``, as in Gammapy)."""
        is_ul = np.asarray(self.data.is_ul, bool)
        dnde = np.asarray(self.data.dnde)
        if self.stat_type == "chi2":
            return _readonly(~is_ul & np.isfinite(dnde))
        ul = self._optional("dnde_ul")
        ul_ok = np.zeros_like(is_ul) if ul is None else (is_ul & np.isfinite(ul))
        return _readonly(ul_ok | np.isfinite(dnde))

    @property
    def mask(self) -> np.ndarray:
        """``mask_safe & mask_valid & mask_fit``: the points that enter the statistic."""
        mask = self.mask_safe & self.mask_valid
        if self.mask_fit is not None:
            mask = mask & self.mask_fit
        return _readonly(mask)

    # -- the plan ------------------------------------------------------------------------------------
    def _model_names(self, models: Any) -> tuple[str, ...]:
        from ..models import SkyModel
        from ..units import unit_str

        names = []
        for model in models:
            if not isinstance(model, SkyModel) or not model.applies_to(self.name):
                continue
            if _is_template_spatial(model.spatial_model):
                raise NotImplementedError(
                    f"FluxPointsDataset {self.name!r}: model {model.name!r} has a template spatial model "
                    f"({type(model.spatial_model).__name__}); Gammapy converts it to a template spectral "
                    "model, which is not implemented here"
                )
            spectral_unit = unit_str(getattr(model.spectral_model, "dnde_unit", DNDE))
            if spectral_unit != unit_str(DNDE):
                raise ValueError(
                    f"FluxPointsDataset {self.name!r}: model {model.name!r} has a spectral model in "
                    f"{spectral_unit!r}, not a differential flux in {DNDE!r}"
                )
            names.append(model.name)
        return tuple(names)

    def plan(self, models: Any) -> FluxPointsPlan:
        """The numpy arrays of the statistic and the models it sums (see :class:`FluxPointsPlan`)."""
        return self._plan(models, sanitize=True)

    def _plan(self, models: Any, sanitize: bool) -> FluxPointsPlan:
        # sanitize=False keeps the masked points as they are (NaN included), for stat_array only
        models = _as_models(models)
        mask = np.asarray(self.mask)
        keep = mask if sanitize else np.ones_like(mask)
        dnde = np.asarray(self.data.dnde, dtype=np.float64)
        err = self._optional("dnde_err")
        errn = self._optional("dnde_errn")
        errp = self._optional("dnde_errp")
        asymmetric = errn is not None and errp is not None
        if err is None and not asymmetric:
            raise ValueError(
                f"FluxPointsDataset {self.name!r}: stat_type {self.stat_type!r} needs dnde_err or dnde_errn "
                f"and dnde_errp (available: {self.data.available_quantities})"
            )
        nan = np.full_like(dnde, np.nan)
        data = np.where(keep, dnde, 0.0)
        sigma = errn_s = errp_s = ul_s = is_ul_s = None
        if self.stat_type == "chi2":
            sigma = err if err is not None else (np.asarray(errn) + np.asarray(errp)) / 2
            sigma = np.where(keep, sigma, 1.0)
        else:
            fallback = nan if err is None else err
            if asymmetric:  # Gammapy: dnde_err replaces a NaN asymmetric error
                errn_s = np.where(np.isnan(np.asarray(errn)), fallback, np.asarray(errn))
                errp_s = np.where(np.isnan(np.asarray(errp)), fallback, np.asarray(errp))
            else:
                errn_s = errp_s = fallback
            ul = self._optional("dnde_ul")
            # an infinite UL contributes 0 in Gammapy (inf / inf); NaN gives the same without NaN gradients
            ul_s = nan if ul is None else np.where(np.isfinite(ul), ul, np.nan)
            # masked points: a measured point with unit errors, never an upper limit
            errn_s = np.where(keep, errn_s, 1.0)
            errp_s = np.where(keep, errp_s, 1.0)
            ul_s = np.where(keep, ul_s, np.nan)
            is_ul_s = keep & np.asarray(self.data.is_ul, bool)
        names = self._model_names(models)
        return FluxPointsPlan(
            energy=np.asarray(self.data.energy_ref, dtype=np.float64),
            dnde=data,
            sigma=sigma,
            errn=errn_s,
            errp=errp_s,
            dnde_ul=ul_s,
            is_ul=is_ul_s,
            mask=mask,
            time_intervals=tuple(time_intervals(models[name], self._gti()) for name in names),
            model_names=names,
            stat_type=self.stat_type,
        )

    def _gti(self) -> Any:
        """The flux points' GTI table as a :class:`~jaxgamma.data.GTI` (its header gives the
        reference time), or None."""
        table = self.data.gti
        if table is None:
            return None
        from ..data.gti import GTI

        return GTI.from_table_hdu(
            fits.table_to_hdu(Table(table, copy=False)), where=f"FluxPointsDataset {self.name!r}: GTI"
        )

    def flux_pred(self, models: Any) -> np.ndarray:
        """Predicted dN/dE at the reference energies (cm-2 s-1 TeV-1), eager."""
        return self.npred(models)

    def stat_array(self, models: Any) -> np.ndarray:
        """Statistic per flux point, masked points included (NaN where Gammapy's is), eager."""
        models = _as_models(models)
        return np.asarray(self._plan(models, sanitize=False).stat_array(models))

    def residuals(self, models: Any, method: str = "diff") -> np.ndarray:
        """``dnde - flux_pred`` (``"diff"``) or that divided by ``flux_pred`` (``"diff/model"``);
        NaN at upper limits, as in Gammapy."""
        model = self.flux_pred(models)
        dnde = np.asarray(self.data.dnde)
        if method == "diff":
            res = dnde - model
        elif method == "diff/model":
            with np.errstate(divide="ignore", invalid="ignore"):
                res = (dnde - model) / model
        else:
            raise ValueError(f'Invalid method {method!r}, choose between "diff" and "diff/model"')
        return np.where(np.asarray(self.data.is_ul), np.nan, res)

    # -- plotting ------------------------------------------------------------------------------------
    def _energy_bounds(self) -> np.ndarray:
        edges = self.data.energy_edges
        if edges is not None:
            return np.array([edges.min(), edges.max()])
        return np.array([self.data.energy_ref.min(), self.data.energy_ref.max()])

    def plot_spectrum(
        self, models: Any, ax: Any = None, kwargs_fp: dict[str, Any] | None = None,
        kwargs_model: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        """Gammapy's ``FluxPointsDataset.plot_spectrum``: the flux points (``FluxPoints.plot``, default
        e2dnde), each sky model that applies to this dataset (``SpectralModel.plot``, label "Best
        fit model") and its error band (``plot_error``) when ``models`` carries a covariance (a fit
        result's ``result.models`` does; a FitResult is taken too). Returns the axes."""
        from ..models.sky import SkyModel

        models, covariance = _models_and_covariance(models)
        kwargs_fp = dict(kwargs_fp or {})
        kwargs_model = dict(kwargs_model or {})
        kwargs_fp.setdefault("sed_type", "e2dnde")
        ax = self.data.plot(ax=ax, **kwargs_fp)
        kwargs_model.setdefault("label", "Best fit model")
        kwargs_model.setdefault("zorder", 10)
        kwargs_model.setdefault("sed_type", "e2dnde")
        kwargs_model.setdefault("energy_bounds", self._energy_bounds())
        applying = [m for m in models if isinstance(m, SkyModel) and m.applies_to(self.name)]
        for model in applying:
            model.spectral_model.plot(ax=ax, **kwargs_model)
        if applying:
            kwargs_model["color"] = ax.lines[-1].get_color()
        kwargs_model.pop("label")
        for model in applying:
            names = [] if covariance is None else [n for n in covariance.names if n.split(".")[0] == model.name]
            if names:
                model.spectral_model.plot_error(covariance=covariance.get_subcovariance(names), ax=ax, **kwargs_model)
        return ax

    def plot_residuals(self, models: Any, ax: Any = None, method: str = "diff", **kwargs: Any) -> Any:
        """Gammapy's ``FluxPointsDataset.plot_residuals``: :meth:`residuals` with the points' dN/dE
        errors (divided by the prediction for ``"diff/model"``), energy bins as x errors, a line at
        0 and symmetric y limits. Keyword arguments go to ``ax.errorbar``. Returns the axes."""
        import matplotlib.pyplot as plt

        from ._plots import RESIDUALS_LABELS

        if method not in ("diff", "diff/model"):
            raise ValueError(f'Invalid method {method!r}, choose between "diff" and "diff/model"')
        models, _ = _models_and_covariance(models)
        ax = plt.gca() if ax is None else ax
        fp = self.data
        residuals = self.residuals(models, method)
        if "norm_errp" in fp.available_quantities:
            errn, errp = np.asarray(fp.dnde_errn, dtype=np.float64), np.asarray(fp.dnde_errp, dtype=np.float64)
        elif "norm_err" in fp.available_quantities:
            errn = errp = np.asarray(fp.dnde_err, dtype=np.float64)
        else:
            raise ValueError(f"FluxPointsDataset {self.name!r}: the flux points have no errors to plot")
        if method == "diff/model":
            prediction = np.asarray(self.flux_pred(models), dtype=np.float64)
            errn, errp = errn / prediction, errp / prediction
        xerr = None
        edges = fp._plot_edges
        if edges is not None:
            xerr = (fp.energy_ref - edges[:-1], edges[1:] - fp.energy_ref)
        kwargs.setdefault("color", kwargs.pop("c", "black"))
        kwargs.setdefault("marker", "+")
        kwargs.setdefault("linestyle", kwargs.pop("ls", "none"))
        ax.errorbar(fp.energy_ref, residuals, xerr=xerr, yerr=(errn, errp), **kwargs)
        ax.axhline(0, color=kwargs["color"], lw=0.5)
        ax.set_xlabel("Energy [$\\mathrm{TeV}$]")  # Gammapy's label
        ax.set_xscale("log")
        ax.set_ylabel(f"Residuals\n {RESIDUALS_LABELS[method]}")
        ymax = max(abs(np.nanmin(residuals - errn)), np.nanmax(residuals + errp))
        ax.set_ylim(-1.05 * ymax, 1.05 * ymax)
        return ax

    def plot_fit(
        self, models: Any, ax_spectrum: Any = None, ax_residuals: Any = None,
        kwargs_spectrum: dict[str, Any] | None = None, kwargs_residuals: dict[str, Any] | None = None,
    ) -> tuple[Any, Any]:  # fmt: skip
        """Gammapy's ``FluxPointsDataset.plot_fit``: :meth:`plot_spectrum` above :meth:`plot_residuals`
        (``"diff/model"`` by default) on a 7-row grid (5 + 2). Returns both axes."""
        import matplotlib.pyplot as plt
        from matplotlib.gridspec import GridSpec

        fig = plt.figure(figsize=(9, 7))
        grid = GridSpec(7, 1)
        if ax_spectrum is None:
            ax_spectrum = fig.add_subplot(grid[:5, :])
            if ax_residuals is None:
                plt.setp(ax_spectrum.get_xticklabels(), visible=False)
        if ax_residuals is None:
            ax_residuals = fig.add_subplot(grid[5:, :], sharex=ax_spectrum)
        kwargs_residuals = dict(kwargs_residuals or {})
        kwargs_residuals.setdefault("method", "diff/model")
        self.plot_spectrum(models, ax=ax_spectrum, **(kwargs_spectrum or {}))
        self.plot_residuals(models, ax=ax_residuals, **kwargs_residuals)
        return ax_spectrum, ax_residuals

    # -- I/O -----------------------------------------------------------------------------------------
    @classmethod
    def read(
        cls, path: Any, name: str | None = None, stat_type: str = "chi2", reference_model: Any = None
    ) -> FluxPointsDataset:
        """Read a flux-point dataset file (flux point table plus optional ``mask_fit`` and
        ``mask_safe`` columns, as Gammapy writes it) or a plain flux point file."""
        table, gti = _read_table(path, hdu_names=("TABLE", "FLUXPOINTS"))
        masks = {}
        for col in ("mask_fit", "mask_safe"):
            if col in table.colnames:
                masks[col] = np.asarray(np.ma.getdata(table[col])).reshape(len(table)).astype(bool)
                table.remove_column(col)
        data = FluxPoints.from_table(table, reference_model=reference_model, filename=str(path), gti=gti)
        return cls(data=data, name=name, stat_type=stat_type, **masks)

    def write(self, path: Any, overwrite: bool = False, sed_type: str | None = None) -> None:
        """Write the dataset as Gammapy does: a primary HDU and one binary table (the flux point
        table in ``sed_type``, default the type it was read in, plus ``mask_fit`` and ``mask_safe``
        columns of shape (n, 1, 1)); ``.ecsv`` writes the same table as ECSV. Atomic; refuses to
        replace a file unless ``overwrite=True``.

        ``mask_safe`` is written as given (Gammapy writes ``mask_safe & mask_valid``) and
        ``mask_fit`` as all True when there is none; either way Gammapy reads the same statistic.
        """
        table = self.data.to_table(sed_type=sed_type)
        n = len(self.data)
        mask_fit = np.ones(n, bool) if self.mask_fit is None else np.asarray(self.mask_fit)
        table["mask_fit"] = mask_fit.reshape(n, 1, 1)
        table["mask_safe"] = np.asarray(self.mask_safe).reshape(n, 1, 1)
        _write_table(path, table, overwrite=overwrite, hdu_name=None)

    # -- summaries -----------------------------------------------------------------------------------
    def info_dict(self, models: Any = None) -> dict[str, Any]:
        """Name, type, statistic type, number of points and of fitted points (and the statistic,
        when ``models`` are given)."""
        info = {
            "name": self.name,
            "type": self.tag,
            "stat_type": self.stat_type,
            "n_points": len(self.data),
            "n_fit_bins": int(np.sum(self.mask)),
        }
        if models is not None:
            info["stat_sum"] = self.stat_sum(models)
        return info

    def summary(self, models: Any = None) -> str:
        """Gammapy's ``str(dataset)``, with the models that apply to this dataset when given."""
        out = f"{type(self).__name__}\n" + "-" * len(type(self).__name__) + "\n\n"
        out += "\t{:32}: {} \n\n".format("Name", self.name)
        out += "\t{:32}: {} \n".format("Number of total flux points", len(self.data))
        out += "\t{:32}: {} \n\n".format("Number of fit bins", int(np.sum(self.mask)))
        out += "\t{:32}: {}\n".format("Fit statistic type", self.stat_type)
        selected = None if models is None else _as_models(models).select(self.name)
        stat = self.stat_sum(selected) if selected is not None else np.nan
        out += "\t{:32}: {:.2f}\n\n".format("Fit statistic value (-2 log(L))", stat)
        out += "\t{:32}: {} \n".format("Number of models", 0 if selected is None else len(selected))
        if selected is not None:
            parameters = selected.parameters
            out += "\t{:32}: {}\n".format("Number of parameters", len(parameters))
            out += "\t{:32}: {}\n\n".format(
                "Number of free parameters", sum(not p.frozen for p in parameters)
            )
            out += "\t" + "\n\t".join(str(selected).split("\n")[2:])
        return out.expandtabs(tabsize=2)

    def __str__(self) -> str:
        return self.summary()
