"""The GADF IRF base class (numpy float64; feeds the data reduction, never traced).

Gammapy evaluates an IRF with ``ScaledRegularGridInterpolator`` (``scipy``'s
``RegularGridInterpolator`` on the axis centres, in the axis interpolation scales, with the data
in a values scale): linear extrapolation, values clipped at zero, then the fill value (0) outside
the axis edges and where the result is not finite. This module reproduces that in numpy, without
scipy:

- scipy's interval search, linear extrapolation and NaN handling; grid dimensions whose
  coordinates span few output elements (an energy axis along its own dimension) are interpolated
  one at a time in the small table first (several times faster on map-maker grids), the others
  jointly with scipy's hypercube term order (scipy's bits for scattered points, a few ulps
  otherwise: ~1e-12 relative or better after the log scale);
- the values scale applied in the stored precision (a float32 table is log-scaled in float32, as
  Gammapy does), the axis centres and edges as Gammapy's ``MapAxis`` computes them;
- ``trapz_loglog`` (the log-log trapezoid of ``gammapy.utils.integrate``), ``cumsum``/``integral``,
  ``pad`` and ``interp_missing_data`` (vectorised, bit-identical; Gammapy loops in Python).

Coordinates are plain floats in fixed units (energies TeV, angles deg, migra dimensionless) or
astropy Quantities; results are numpy arrays in the class's ``output_unit``.

``to_table``/``to_table_hdu``/``write`` write an IRF back as a GADF DL3 table in Gammapy's layout
(``IRF.to_table(format="gadf-dl3")``), the data in their stored precision and the axes as their
nodes, so that reading a written IRF gives it back to the bit.
"""

from __future__ import annotations

import itertools
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..geom import MapAxis
from ..units import parse_unit, unit_str
from ._core import axis_center, axis_edges, pix_to_coord

__all__ = ["IRF", "IRFAxes", "trapz_loglog"]

log = logging.getLogger(__name__)

FOV_ALIGNMENTS = ("RADEC", "ALTAZ", "REVERSE_LON_RADEC")

# fixed units of the coordinates by axis name (what ``evaluate`` takes as plain floats)
COORD_UNITS = {
    "energy": "TeV",
    "energy_true": "TeV",
    "offset": "deg",
    "rad": "deg",
    "fov_lon": "deg",
    "fov_lat": "deg",
    "migra": "",
}

# GADF DL3 axis columns (Gammapy's IRF_DL3_AXES_SPECIFICATION, in its order)
DL3_AXES = {
    "THETA": ("offset", "lin"),
    "ENERG": ("energy_true", "log"),
    "ETRUE": ("energy_true", "log"),
    "RAD": ("rad", "lin"),
    "DETX": ("fov_lon", "lin"),
    "DETY": ("fov_lat", "lin"),
    "MIGRA": ("migra", "lin"),
}

# table structure keywords that astropy's ``Table.read`` leaves out of ``meta``
_STRUCTURE_KEYS = ("XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP")
_COLUMN_KEYS = ("TTYPE", "TFORM", "TUNIT", "TDIM", "TNULL", "TSCAL", "TZERO", "TDISP", "TDMIN", "TDMAX")

# the keywords that open every GADF HDU header (events, GTI, IRFs, index tables)
GADF_KEYWORDS = {
    "HDUCLASS": "GADF",
    "HDUDOC": "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats",
    "HDUVERS": "0.2",
}
# the header keywords of every GADF DL3 IRF HDU Gammapy writes (its ``COMMON_IRF_HEADERS``, in order)
GADF_IRF_KEYWORDS = {**GADF_KEYWORDS, "HDUCLAS1": "RESPONSE"}
# checksums of the file an IRF was read from: stale once the table is written again
_STALE_KEYS = ("CHECKSUM", "DATASUM")


# -- scales -----------------------------------------------------------------------------------------
def _tiny(values: np.ndarray) -> float:
    """``LogScale._tiny_for``: the smallest normal number of the values' float type."""
    dtype = np.asarray(values).dtype
    if not np.issubdtype(dtype, np.floating):
        return float(np.finfo(np.float32).tiny)
    return float(np.finfo(dtype).tiny)


def scale_values(values: np.ndarray, scale: str) -> np.ndarray:
    """Gammapy's interpolation scale (``LogScale`` clips at the ``tiny`` of the values' dtype)."""
    if scale == "log":
        return np.log(np.clip(values, np.asarray(_tiny(values), dtype=values.dtype), np.inf))
    if scale == "sqrt":
        sign = np.sign(values)
        return sign * np.sqrt(sign * values)
    return values


def inverse_scale_values(values: np.ndarray, scale: str) -> np.ndarray:
    if scale == "log":
        out = np.exp(values)
        tiny = _tiny(out)
        return np.where(np.abs(out) - tiny <= tiny, 0, out)
    if scale == "sqrt":
        return np.power(values, 2)
    return values


# -- scipy's RegularGridInterpolator, on broadcastable coordinates ---------------------------------
def _find_indices(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's ``find_indices``: ``grid[i] <= x < grid[i + 1]``, ``i`` clipped to ``[0, n - 2]``."""
    n = len(grid)
    if n == 1:
        # scipy: index -1 (the only node, by wraparound) and distance 0
        return np.full(x.shape, -1, dtype=np.intp), np.zeros(x.shape)
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, n - 2)
    with np.errstate(invalid="ignore"):
        norm = (x - grid[i]) / (grid[i + 1] - grid[i])
    return i, norm


def interpolate_grid(
    grids: Sequence[np.ndarray],
    values: np.ndarray,
    coords: Sequence[np.ndarray],
    method: str = "linear",
    fast_2d: bool = False,
) -> np.ndarray:
    """``RegularGridInterpolator(grids, values, bounds_error=False, fill_value=None)(coords)``.

    ``coords`` are broadcastable arrays, one per grid; linear extrapolation outside the grid, NaN
    where a coordinate is NaN. Grid dimensions whose coordinates span few output elements (an
    energy axis along its own dimension, say) are interpolated first, one at a time, in the small
    table; the others jointly over the hypercube corners, with scipy's term order (its Cython 2D
    order with ``fast_2d``). The multilinear result is the same; when every dimension is done
    jointly (scattered points) the arithmetic is scipy's to the bit, otherwise within a few ulps.
    """
    if method not in ("linear", "nearest"):
        raise ValueError(f"interpolation method must be 'linear' or 'nearest', not {method!r}")
    coords = [np.asarray(c, dtype=np.float64) for c in coords]
    ndim = max([c.ndim for c in coords] + [0])
    coords = [c.reshape((1,) * (ndim - c.ndim) + c.shape) for c in coords]
    shape = np.broadcast_shapes(*[c.shape for c in coords])
    size = int(np.prod(shape))
    found = [_find_indices(np.asarray(g, dtype=np.float64), c) for g, c in zip(grids, coords, strict=True)]
    if method == "nearest":
        found = [(np.where(norm <= 0.5, i, i + 1), norm) for i, norm in found]
    table = np.asarray(values, dtype=np.float64)
    sizes = table.shape
    n = len(sizes)
    batch: tuple[int, ...] = (1,) * ndim
    cur = table.reshape(batch + sizes)
    d = 0
    # one dimension at a time while the partly interpolated table stays smaller than the output
    while d < n:
        new_batch = np.broadcast_shapes(batch, coords[d].shape)
        if int(np.prod(new_batch)) * int(np.prod(sizes[d + 1 :])) > size:
            break
        i, norm = found[d]
        expand = coords[d].shape + (1,) * (n - d)
        if method == "nearest":
            cur = np.take_along_axis(cur, i.reshape(expand), axis=ndim)
        else:
            w = norm.reshape(expand)
            lo = np.take_along_axis(cur, i.reshape(expand), axis=ndim)
            hi = np.take_along_axis(cur, (i + 1).reshape(expand), axis=ndim)
            cur = lo * (1 - w) + hi * w
        cur = cur.reshape(new_batch + sizes[d + 1 :])
        batch = new_batch
        d += 1
    if d < n:
        # the remaining dimensions jointly, gathering from the flattened remaining table
        rest = sizes[d:]
        strides = [int(np.prod(rest[k + 1 :])) for k in range(len(rest))]
        flat = cur.reshape((*batch, int(np.prod(rest))))

        def gather(index: np.ndarray) -> np.ndarray:
            return np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]

        parts = found[d:]
        if method == "nearest":
            index = sum(i * st for (i, _), st in zip(parts, strides, strict=True))
            cur = gather(np.asarray(index))
        elif fast_2d and len(parts) == 2 and d == 0:
            (i0, y0), (i1, y1) = parts
            base = i0 * strides[0] + i1
            cur = (
                gather(base) * (1 - y0) * (1 - y1)
                + gather(base + 1) * (1 - y0) * y1
                + gather(base + strides[0]) * y0 * (1 - y1)
                + gather(base + strides[0] + 1) * y0 * y1
            )
        else:
            base = sum(i * st for (i, _), st in zip(parts, strides, strict=True))
            lower = [(0, 1 - norm) for _, norm in parts]
            upper = [(st, norm) for (_, norm), st in zip(parts, strides, strict=True)]
            total: Any = None
            for corner in itertools.product(*zip(lower, upper, strict=True)):
                offset = sum(c[0] for c in corner)
                weight = corner[0][1]
                for c in corner[1:]:
                    weight = weight * c[1]
                term = gather(np.asarray(base + offset)) * weight
                total = term if total is None else total + term
            cur = total
    result = np.broadcast_to(cur, shape).astype(np.float64, copy=True)
    nans = np.zeros(shape, dtype=bool)
    for coord in coords:
        nans |= np.isnan(coord)
    result[nans] = np.nan
    return result


# -- Gammapy's trapz_loglog --------------------------------------------------------------------------
def trapz_loglog(y: Any, x: Any, axis: int = -1) -> np.ndarray:
    """Log-log trapezoid of ``y(x)``, one value per interval (``gammapy.utils.integrate``).

    Each interval is integrated as the power law through its end points (the analytic
    ``PowerLawSpectralModel.evaluate_integral``); a NaN slope counts as infinite (integral 0).
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    y = np.moveaxis(np.asarray(y, dtype=np.float64), axis, 0)
    x_min, x_max = x[:-1], x[1:]
    y_min, y_max = y[:-1], y[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        index = -scale_values(y_min / y_max, "log") / scale_values(x_min / x_max, "log")
    index = np.array(index, dtype=np.float64, ndmin=1) if np.ndim(index) == 0 else index
    index[np.isnan(index)] = np.inf
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        val = -1 * index + 1
        prefactor = y_min * x_min / val
        upper = np.power(x_max / x_min, val)
        lower = np.power(x_min / x_min, val)
        integral = prefactor * (upper - lower)
        mask = np.isclose(val, 0)
        if mask.any():
            integral = np.array(np.broadcast_to(integral, mask.shape))
            integral[mask] = np.broadcast_to(y_min * x_min * np.log(x_max / x_min), mask.shape)[mask]
    return np.moveaxis(integral, 0, axis)


# -- units and FITS --------------------------------------------------------------------------------
def parse_fits_unit(unit: str | None) -> u.UnitBase | None:
    """A table column unit as astropy's FITS reader parses it; None when it is not a FITS unit."""
    if unit is None or str(unit).strip() == "":
        return u.dimensionless_unscaled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        parsed = u.Unit(str(unit).strip(), format="fits", parse_strict="silent")
    if isinstance(parsed, u.UnrecognizedUnit):
        return None
    return parsed


def column_unit(hdu: fits.BinTableHDU, name: str, where: str) -> u.UnitBase:
    """The unit of a column: FITS syntax, else astropy's generic syntax, else a ValueError."""
    raw = hdu.columns[name].unit
    parsed = parse_fits_unit(raw)
    if parsed is not None:
        return parsed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        try:
            return u.Unit(str(raw).strip())
        except ValueError as err:
            raise ValueError(f"{where}: column {name!r} has an unreadable unit {raw!r}") from err


def header_meta(header: fits.Header) -> dict[str, Any]:
    """The header keywords as ``Table.read`` keeps them in ``table.meta``."""
    meta: dict[str, Any] = {}
    for key, value in header.items():
        if not key or key in ("COMMENT", "HISTORY", ""):
            continue
        if key.startswith(_STRUCTURE_KEYS) and (
            key in _STRUCTURE_KEYS or key[5:].isdigit() or key == "NAXIS"
        ):
            continue
        if key.startswith(_COLUMN_KEYS) and key.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ").isdigit():
            continue
        meta[key] = value
    return meta


def make_path(path: Any) -> Path:
    """A path with environment variables and ``~`` expanded: the one path helper of the data and
    IRF readers."""
    return Path(os.path.expanduser(os.path.expandvars(os.fspath(path))))


def open_hdu(path: Any, hdu: str | int, what: str) -> tuple[fits.HDUList, Any, str]:
    """Open a FITS file and find an HDU; a ValueError naming the file when it is missing."""
    filename = str(make_path(path))
    try:
        hdulist = fits.open(filename, memmap=False)
    except OSError as err:
        raise ValueError(f"{what}: cannot read FITS file {filename!r}: {err}") from err
    try:
        table_hdu = hdulist[hdu]
    except (KeyError, IndexError) as err:
        names = [h.name for h in hdulist]
        hdulist.close()
        raise ValueError(f"{what}: file {filename!r} has no HDU {hdu!r} (HDUs: {names})") from err
    return hdulist, table_hdu, f"{filename} [HDU {table_hdu.name or hdu!r}]"


def read_dl3_axes(hdu: fits.BinTableHDU, where: str, hduclas2: str) -> dict[str, MapAxis]:
    """The axes of a GADF DL3 IRF table (``MapAxes.from_table(format="gadf-dl3")``), by name."""
    names = set(hdu.columns.names)
    axes: dict[str, MapAxis] = {}
    for prefix, (name, interp) in DL3_AXES.items():
        lo_name, hi_name = f"{prefix}_LO", f"{prefix}_HI"
        if lo_name not in names or hi_name not in names:
            continue
        if hduclas2 in ("BKG", "RAD_MAX") and prefix == "ENERG":
            name = "energy"
        if name in axes:
            continue
        unit = column_unit(hdu, lo_name, where)
        unit_hi = column_unit(hdu, hi_name, where)
        lo = np.array(hdu.data[lo_name][0], dtype=np.float64, ndmin=1)
        hi = np.array(hdu.data[hi_name][0], dtype=np.float64, ndmin=1)
        if lo.shape != hi.shape or lo.ndim != 1:
            raise ValueError(
                f"{where}: columns {lo_name!r} and {hi_name!r} must be 1D arrays of the same length, "
                f"got shapes {lo.shape} and {hi.shape}"
            )
        if unit_hi != unit:
            hi = (hi * unit_hi).to_value(unit)
        expected = COORD_UNITS[name]
        if not unit.is_equivalent(parse_unit(expected)):
            raise ValueError(
                f"{where}: column {lo_name!r} has unit {unit.to_string()!r}, expected a unit "
                f"convertible to {expected or 'dimensionless'!r}"
            )
        try:
            if np.allclose(hi, lo):
                axis = MapAxis.from_nodes(hi, interp=interp, name=name, unit=unit)
            else:
                axis = MapAxis.from_edges(np.append(lo, hi[-1]), interp=interp, name=name, unit=unit)
        except ValueError as err:
            raise ValueError(f"{where}: invalid {prefix}_LO/{prefix}_HI axis: {err}") from err
        axes[name] = axis
    return axes


def pick_axes(axes: dict[str, MapAxis], required: Sequence[str], where: str) -> tuple[MapAxis, ...]:
    missing = [name for name in required if name not in axes]
    if missing:
        columns = {
            name: [f"{p}_LO/{p}_HI" for p, (n, _) in DL3_AXES.items() if n == name] for name in missing
        }
        if "energy" in columns:
            columns["energy"] = ["ENERG_LO/ENERG_HI"]
        raise ValueError(
            f"{where}: missing axis {missing} (expected columns {columns}); found axes {list(axes)}"
        )
    return tuple(axes[name] for name in required)


def table_column(hdu: fits.BinTableHDU, names: Sequence[str], where: str) -> str:
    for name in names:
        if name in hdu.columns.names:
            return name
    raise ValueError(
        f"{where}: missing data column {' or '.join(repr(n) for n in names)}; columns: {hdu.columns.names}"
    )


def column_values(hdu: fits.BinTableHDU, name: str, where: str) -> np.ndarray:
    """The first row of a (multi-dimensional) column, transposed to the axes order (copied)."""
    if hdu.data is None or len(hdu.data) < 1:
        raise ValueError(f"{where}: the table has no rows")
    values = np.array(hdu.data[name][0])
    if values.dtype.kind not in "fiu":
        raise ValueError(f"{where}: column {name!r} is not numeric (dtype {values.dtype})")
    if values.dtype.kind in "iu":
        values = values.astype(np.float64)
    return np.array(values.T)


# -- axes container -----------------------------------------------------------------------------------
class IRFAxes(tuple):
    """The axes of an IRF: a tuple of ``MapAxis``, also indexable by name (as Gammapy's ``MapAxes``)."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for axis in self:
                if axis.name == key:
                    return axis
            raise KeyError(f"no axis {key!r}; axes: {self.names}")
        return tuple.__getitem__(self, key)

    @property
    def names(self) -> list[str]:
        return [axis.name for axis in self]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.nbin for axis in self)

    def index(self, key: Any, *args: Any) -> int:  # type: ignore[override]
        if isinstance(key, str):
            names = self.names
            if key not in names:
                raise ValueError(f"no axis {key!r}; axes: {names}")
            return names.index(key)
        return tuple.index(self, key, *args)


def _pad_axis(axis: MapAxis, pad_low: int, pad_high: int) -> MapAxis:
    """Gammapy's ``MapAxis.pad``."""
    if axis.node_type == "edges":
        nodes = pix_to_coord(axis, np.arange(-pad_low, axis.nbin + pad_high + 1) - 0.5)
        return MapAxis.from_edges(nodes, name=axis.name, interp=axis.interp, unit=axis.unit)
    nodes = pix_to_coord(axis, np.arange(-pad_low, axis.nbin + pad_high))
    return MapAxis.from_nodes(nodes, name=axis.name, interp=axis.interp, unit=axis.unit)


def _unit_factor(unit_from: str | u.UnitBase, unit_to: str | u.UnitBase) -> float:
    ufrom, uto = parse_unit(unit_from), parse_unit(unit_to)
    if ufrom == uto:
        return 1.0
    return float(ufrom.to(uto))


# -- GADF DL3 writing ------------------------------------------------------------------------------------
def _check_dl3_format(format: str, what: str) -> None:
    if format != "gadf-dl3":
        raise ValueError(f'{what}: only the "gadf-dl3" format is supported, got {format!r}')


def dl3_axes_table(axes: Sequence[MapAxis]) -> Table:
    """The ``<PREFIX>_LO``/``<PREFIX>_HI`` axis columns of a GADF DL3 IRF table, one row
    (Gammapy's ``MapAxes.to_table(format="gadf-dl3")``).

    The prefix is the first of ``DL3_AXES`` with the axis name (``ENERG`` for ``energy`` too);
    an edges axis gives its lower and upper edges, a centre axis its nodes in both columns. The
    values are the axis nodes themselves (float64, in the axis unit), so that reading the table
    gives the same axis to the bit (Gammapy writes ``MapAxis.edges``, recomputed from the nodes,
    which can differ from them in the last bit on log axes).
    """
    table = Table()
    for axis in axes:
        if axis.name == "energy":
            prefix = "ENERG"
        else:
            prefixes = [p for p, (name, _) in DL3_AXES.items() if name == axis.name]
            if not prefixes:
                raise ValueError(
                    f"axis {axis.name!r} has no GADF DL3 column; valid axis names: "
                    f"{sorted({'energy', *(name for name, _ in DL3_AXES.values())})}"
                )
            prefix = prefixes[0]
        nodes = np.asarray(axis.nodes, dtype=np.float64)
        if axis.node_type == "edges":
            lo, hi = nodes[:-1], nodes[1:]
        else:
            lo, hi = nodes, nodes
        unit = parse_unit(axis.unit)
        table[f"{prefix}_LO"] = u.Quantity(lo[np.newaxis], unit)
        table[f"{prefix}_HI"] = u.Quantity(hi[np.newaxis], unit)
    return table


def dl3_table_meta(
    meta: dict[str, Any],
    mandatory: dict[str, str],
    is_pointlike: bool,
    fov_alignment: str,
) -> dict[str, Any]:
    """The header keywords of a written IRF table, as Gammapy's ``IRF.to_table``: the IRF's own
    keywords (less stale checksums), updated with the ``mandatory`` ones (keywords already there
    keep their place, new ones follow in order), ``FOVALIGN`` where present and ``HDUCLAS3``."""
    out = {key: value for key, value in meta.items() if key not in _STALE_KEYS}
    out.update(mandatory)
    if "FOVALIGN" in out:
        out["FOVALIGN"] = fov_alignment
    out["HDUCLAS3"] = "POINT-LIKE" if is_pointlike else "FULL-ENCLOSURE"
    return out


class _DL3Writer:
    """``to_table_hdu`` and ``write`` of the GADF DL3 IRFs, on top of their ``to_table``.

    A class sets ``tag`` (its HDU class; ``HDUCLAS4`` is its upper case), ``hduclas2`` and
    ``hdu_name`` (the extension name written).
    """

    tag: ClassVar[str] = ""
    hduclas2: ClassVar[str] = ""
    hdu_name: ClassVar[str] = ""
    _meta: dict[str, Any]

    @property
    def axes(self) -> IRFAxes:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def is_pointlike(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def fov_alignment(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _data_columns(self) -> dict[str, u.Quantity]:  # pragma: no cover - overridden
        """The data column(s) of the table, by name: one row, transposed."""
        raise NotImplementedError

    @classmethod
    def _mandatory_keywords(cls) -> dict[str, str]:
        """Gammapy's ``IRF_DL3_HDU_SPECIFICATION[tag]["mandatory_keywords"]``."""
        if not (cls.tag and cls.hduclas2 and cls.hdu_name):
            raise ValueError(f"{cls.__name__}: no GADF DL3 HDU specification (tag, HDUCLAS2, EXTNAME)")
        return {
            **GADF_IRF_KEYWORDS,
            "HDUCLAS2": cls.hduclas2,
            "HDUCLAS3": "FULL-ENCLOSURE",  # as Gammapy: keeps the HDUCLASn in order
            "HDUCLAS4": cls.tag.upper(),
        }

    def to_table(self, format: str = "gadf-dl3") -> Table:
        """The IRF as a GADF DL3 table (Gammapy's ``to_table``).

        Parameters
        ----------
        format : {"gadf-dl3"}
            Format specification.

        Returns
        -------
        table : `~astropy.table.Table`
            One row: the axis columns (see :func:`dl3_axes_table`), then the data column(s) in the
            stored precision, transposed (the first axis varies fastest in FITS). ``meta``: the
            IRF's keywords updated with the GADF ones (``HDUCLASS``, ``HDUDOC``, ``HDUVERS``,
            ``HDUCLAS1`` to ``HDUCLAS4``; ``HDUCLAS3`` is ``POINT-LIKE`` for a point-like IRF;
            ``FOVALIGN`` where present or required).
        """
        _check_dl3_format(format, f"{type(self).__name__}.to_table")
        table = dl3_axes_table(self.axes)
        table.meta = dl3_table_meta(self._meta, self._mandatory_keywords(), self.is_pointlike, self.fov_alignment)
        for name, values in self._data_columns().items():
            table[name] = values
        return table

    def to_table_hdu(self, format: str = "gadf-dl3") -> fits.BinTableHDU:
        """The IRF as a GADF DL3 binary table HDU named ``hdu_name`` (Gammapy's ``to_table_hdu``).

        Parameters
        ----------
        format : {"gadf-dl3"}
            Format specification.

        Returns
        -------
        hdu : `~astropy.io.fits.BinTableHDU`
            One row: the axis columns, then the data column(s), transposed.
        """
        return fits.BinTableHDU(self.to_table(format=format), name=self.hdu_name)

    def write(self, filename: Any, overwrite: bool = False) -> None:
        """Write a FITS file: an empty primary HDU and the IRF table HDU (Gammapy's ``write``).

        The file is written atomically: to a temporary file in the same folder, moved onto
        ``filename`` once complete (nothing is left behind on an error).

        Parameters
        ----------
        filename : str or Path
            Output file (environment variables and ``~`` expanded).
        overwrite : bool
            Replace an existing file.

        Raises
        ------
        FileExistsError
            If the file exists and ``overwrite`` is False (the file is left as it is).
        """
        from ..io._atomic import atomic_paths

        hdulist = fits.HDUList([fits.PrimaryHDU(), self.to_table_hdu()])
        with atomic_paths(make_path(filename), overwrite=overwrite) as (tmp,):
            hdulist.writeto(tmp, overwrite=True)


# -- the IRF base --------------------------------------------------------------------------------------
class IRF(_DL3Writer):
    """A GADF DL3 IRF on a regular grid of axes (Gammapy's ``IRF``), immutable.

    Parameters
    ----------
    axes : sequence of MapAxis
        The axes, named and ordered as ``required_axes``.
    data : array or float
        Values, shape ``(axis.nbin for axis in axes)``; the stored precision is kept (a float32
        table is interpolated as Gammapy does, with its values scale applied in float32).
    unit : str
        Unit of ``data``.
    meta : dict, optional
        Header keywords.
    fov_alignment : {"RADEC", "ALTAZ", "REVERSE_LON_RADEC"}
    is_pointlike : bool
    """

    tag: ClassVar[str] = ""
    required_axes: ClassVar[tuple[str, ...]] = ()
    output_unit_default: ClassVar[str] = ""
    hdu_name: ClassVar[str] = ""
    hduclas2: ClassVar[str] = ""
    column_names: ClassVar[tuple[str, ...]] = ()
    values_scale: ClassVar[str] = "lin"
    fill_value: ClassVar[float | None] = 0.0

    def __init__(
        self,
        axes: Sequence[MapAxis],
        data: Any = 0,
        unit: str | u.UnitBase = "",
        meta: dict[str, Any] | None = None,
        fov_alignment: str = "RADEC",
        is_pointlike: bool = False,
    ):
        axes = IRFAxes(axes)
        if [a.name for a in axes] != list(self.required_axes):
            raise ValueError(
                f"{type(self).__name__}: axes must be {list(self.required_axes)} (in this order), got {axes.names}"
            )
        if isinstance(data, u.Quantity):
            unit = data.unit
            data = data.value
        if np.isscalar(data):
            data = np.full(axes.shape, data, dtype=np.float64)
        raw = np.array(data)
        if raw.dtype.kind in "biu":
            raw = raw.astype(np.float64)
        if raw.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: data must be a float array, got dtype {raw.dtype}")
        if raw.shape != axes.shape:
            raise ValueError(
                f"{type(self).__name__}: data shape {raw.shape} does not match the axes shape {axes.shape}"
            )
        if fov_alignment not in FOV_ALIGNMENTS:
            raise ValueError(
                f"{type(self).__name__}: fov_alignment must be one of {FOV_ALIGNMENTS}, not {fov_alignment!r}"
            )
        self._axes = axes
        self._raw = raw
        self._unit = unit_str(unit)
        self._meta = dict(meta or {})
        self._fov_alignment = str(fov_alignment)
        self._is_pointlike = bool(is_pointlike)
        parsed = parse_unit(self._unit)
        default = parse_unit(self.output_unit_default)
        self._output_unit = self.output_unit_default if parsed.is_equivalent(default) else self._unit
        self._output_factor = _unit_factor(self._unit, self._output_unit)
        self._cache: dict[str, Any] = {}
        # interpolation defaults (Gammapy's ``interp_kwargs``): the class's unless a subclass sets them
        self._default_method: str | None = None
        self._fill: float | None = self.fill_value

    # -- properties ----------------------------------------------------------------------------------
    @property
    def axes(self) -> IRFAxes:
        return self._axes

    @property
    def data(self) -> np.ndarray:
        """The values (float64, read-only), in ``unit``."""
        out = self._raw.astype(np.float64, copy=False).view()
        out.setflags(write=False)
        return out

    @property
    def quantity(self) -> u.Quantity:
        return u.Quantity(self.data, parse_unit(self._unit))

    @property
    def unit(self) -> str:
        return self._unit

    @property
    def output_unit(self) -> str:
        """Unit of the values ``evaluate`` returns."""
        return self._output_unit

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    @property
    def fov_alignment(self) -> str:
        return self._fov_alignment

    @property
    def is_pointlike(self) -> bool:
        return self._is_pointlike

    @property
    def has_offset_axis(self) -> bool:
        return "offset" in self.required_axes

    def _replace(self, **kwargs: Any) -> IRF:
        parts: dict[str, Any] = dict(
            axes=self._axes,
            data=self._raw,
            unit=self._unit,
            meta=self._meta,
            fov_alignment=self._fov_alignment,
            is_pointlike=self._is_pointlike,
        )
        parts.update(kwargs)
        return type(self)(**parts)

    # -- interpolation ----------------------------------------------------------------------------------
    def _grid(self) -> tuple[list[np.ndarray], np.ndarray, list[bool], bool]:
        """Scaled grid points, scaled values (squeezed as Gammapy), included dimensions, fast path."""
        if "grid" not in self._cache:
            include = [axis.nbin > 1 for axis in self._axes]
            points = [scale_values(axis_center(a), a.interp) for a in self._axes]
            values = scale_values(self._raw, self.values_scale)
            if any(include):
                values = np.squeeze(values)
                points = [p for p, keep in zip(points, include, strict=True) if keep]
            fast = (
                len(points) == 2
                and values.ndim == 2
                and values.dtype == np.float64
                and values.flags.writeable
            )
            self._cache["grid"] = (points, values, include, fast)
        return self._cache["grid"]

    def _coords(self, coords: dict[str, Any]) -> list[np.ndarray]:
        """Coordinates in the axis units, the axis centres where not given (Gammapy's defaults)."""
        names = self._axes.names
        invalid = set(coords).difference(names)
        if invalid:
            raise ValueError(
                f"{type(self).__name__}: not a valid coordinate axis {invalid}; choose from {names}"
            )
        out = []
        ndim = len(self._axes)
        for idx, axis in enumerate(self._axes):
            value = coords.get(axis.name)
            if value is None:
                shape = [1] * ndim
                shape[idx] = -1
                out.append(axis_center(axis).reshape(shape))
                continue
            out.append(coord_to_axis_unit(value, axis))
        return out

    def _interpolate(self, coords: list[np.ndarray], method: str | None) -> np.ndarray:
        points, values, include, fast = self._grid()
        method = method or self._default_method or "linear"
        if not any(include):
            if method != "nearest":
                raise ValueError(
                    f"{type(self).__name__}: interpolating scalar values requires method='nearest'"
                )
            include = [True] * len(self._axes)
            points = [scale_values(axis_center(a), a.interp) for a in self._axes]
        scaled = [
            scale_values(c, a.interp) for c, a, keep in zip(coords, self._axes, include, strict=True) if keep
        ]
        shape = np.broadcast_shapes(*[np.shape(c) for c in coords])
        out = interpolate_grid(points, values, scaled, method=method, fast_2d=fast and method == "linear")
        out = np.broadcast_to(out, shape)
        out = inverse_scale_values(out, self.values_scale)
        return np.clip(out, 0, np.inf)

    def _out_of_bounds(self, coords: list[np.ndarray]) -> np.ndarray:
        invalid = []
        for axis, coord in zip(self._axes, coords, strict=True):
            edges = axis_edges(axis)
            with np.errstate(invalid="ignore"):
                invalid.append(~((coord >= edges[0]) & (coord <= edges[-1])))
        return self._mask_out_bounds(invalid)

    def _mask_out_bounds(self, invalid: list[np.ndarray]) -> np.ndarray:
        mask = invalid[0]
        for item in invalid[1:]:
            mask = mask | item
        return mask

    def _evaluate_native(self, method: str | None = None, **coords: Any) -> np.ndarray:
        """Values in ``unit`` (Gammapy's ``IRF.evaluate``)."""
        full = self._coords(coords)
        data = np.array(self._interpolate(full, method), dtype=np.float64)
        if self._fill is not None:
            mask = np.broadcast_to(self._out_of_bounds(full), data.shape)
            data[mask] = self._fill
            data[~np.isfinite(data)] = self._fill
        return data

    def evaluate(self, method: str | None = None, **coords: Any) -> np.ndarray:
        """Interpolate the IRF (Gammapy's rules), in ``output_unit``.

        Parameters
        ----------
        method : {None, "linear", "nearest"}
            Interpolation method (None: the IRF's default, linear unless it says otherwise).
        **coords : float, array or Quantity
            Coordinates by axis name (energies TeV, angles deg, migra dimensionless), broadcast
            together; an axis not given takes its bin centres along its own dimension.
        """
        data = self._evaluate_native(method=method, **coords)
        if self._output_factor != 1.0:
            data = data * self._output_factor
        return data

    # -- integrals -----------------------------------------------------------------------------------------
    def integrate_log_log(self, axis_name: str, method: str = "linear", **coords: Any) -> np.ndarray:
        """Log-log trapezoid integral along ``axis_name`` between consecutive coordinate values.

        ``coords[axis_name]`` are the integration nodes (e.g. energy edges, TeV, along their own
        dimension); the result has one element less along it, in ``output_unit`` times the axis
        unit cancelling (a background rate in s-1 MeV-1 sr-1 integrates to s-1 sr-1).
        """
        if axis_name not in self._axes.names:
            raise ValueError(f"{type(self).__name__}: no axis {axis_name!r}; axes: {self._axes.names}")
        if coords.get(axis_name) is None:
            raise ValueError(f"{type(self).__name__}.integrate_log_log: give the {axis_name!r} nodes")
        axis = self._axes.index(axis_name)
        data = self._evaluate_native(method=method, **coords)
        values = coord_in_fixed_unit(coords[axis_name], axis_name)
        values = np.broadcast_to(values, np.broadcast_shapes(np.shape(values), (1,) * data.ndim))
        result = trapz_loglog(data, values, axis=axis)
        factor = _unit_factor(
            parse_unit(self._unit) * parse_unit(COORD_UNITS.get(axis_name, "")),
            self._integrated_unit(axis_name),
        )
        return result * factor if factor != 1.0 else result

    def _integrated_unit(self, axis_name: str) -> u.UnitBase:
        """``output_unit`` integrated along an axis: an energy integral cancels a per-energy unit
        (s-1 MeV-1 sr-1 -> s-1 sr-1), an angular one (rad, offset: with ``2 pi r``) a per-solid-
        angle unit (sr-1 -> dimensionless); otherwise the axis unit multiplies."""
        out = parse_unit(self._output_unit)
        fixed = parse_unit(COORD_UNITS.get(axis_name, ""))
        if axis_name in ("rad", "offset"):
            cancel, extra = "solid angle", fixed * fixed
        elif fixed.physical_type == "energy":
            cancel, extra = "energy", fixed
        else:
            return out * fixed
        bases = list(zip(out.bases, out.powers, strict=True))
        for i, (base, power) in enumerate(bases):
            if power == -1 and base.physical_type == cancel:
                rest = [b**p for j, (b, p) in enumerate(bases) if j != i]
                unit: u.UnitBase = u.dimensionless_unscaled
                for item in rest:
                    unit = unit * item
                return unit
        return out * extra

    def cumsum(self, axis_name: str) -> IRF:
        """Cumulative sum along an axis (Gammapy's ``IRF.cumsum``; with ``2 pi r`` for rad/offset).

        The result is an IRF of the same class on the axis whose nodes are the upper bin edges.
        """
        idx = self._axes.index(axis_name)
        axis = self._axes[idx]
        shape = [1] * len(self._axes)
        shape[idx] = -1
        width = np.diff(axis_edges(axis)).reshape(shape)
        values = self._raw * width
        unit = parse_unit(self._unit) * parse_unit(axis.unit)
        if axis_name in ("rad", "offset"):
            values = 2 * np.pi * axis_center(axis).reshape(shape) * values
            unit = unit * parse_unit(axis.unit)
        data = values.cumsum(axis=idx)
        shifted = MapAxis.from_nodes(axis_edges(axis)[1:], name=axis.name, interp=axis.interp, unit=axis.unit)
        axes = list(self._axes)
        axes[idx] = shifted
        return type(self)(axes=axes, data=data, unit=unit)

    def _integral_native(self, axis_name: str, **coords: Any) -> tuple[np.ndarray, u.UnitBase]:
        cumsum = self.cumsum(axis_name)
        return cumsum._evaluate_native(**coords), parse_unit(cumsum.unit)

    def integral(self, axis_name: str, **coords: Any) -> np.ndarray:
        """Integral along an axis up to the given coordinate (Gammapy's ``IRF.integral``: the
        interpolated cumulative sum, with ``2 pi r`` for rad/offset).

        Units: see ``integrated_unit`` (a PSF3D integrated in rad is its containment fraction; a
        Background2D integrated in offset is in s-1 MeV-1).
        """
        data, unit = self._integral_native(axis_name, **coords)
        factor = _unit_factor(unit, self._integrated_unit(axis_name))
        return data * factor if factor != 1.0 else data

    def integrated_unit(self, axis_name: str) -> str:
        """Unit of ``integral`` and ``integrate_log_log`` along ``axis_name``."""
        return unit_str(self._integrated_unit(axis_name))

    # -- new IRFs -----------------------------------------------------------------------------------------
    def pad(self, pad_width: int | tuple[int, int], axis_name: str, **kwargs: Any) -> IRF:
        """Pad along an axis (Gammapy's ``IRF.pad``; ``kwargs`` go to ``numpy.pad``, mode "constant")."""
        if isinstance(pad_width, tuple | list):
            pad_low, pad_high = int(pad_width[0]), int(pad_width[1])
        else:
            pad_low = pad_high = int(pad_width)
        idx = self._axes.index(axis_name)
        widths = [(0, 0)] * self._raw.ndim
        widths[idx] = (pad_low, pad_high)
        kwargs.setdefault("mode", "constant")
        axes = list(self._axes)
        axes[idx] = _pad_axis(axes[idx], pad_low, pad_high)
        data = np.pad(self._raw, pad_width=widths, **kwargs)
        return type(self)(axes=axes, data=data, unit=self._unit, meta=dict(self._meta))

    def interp_missing_data(self, axis_name: str) -> IRF:
        """Fill zero or non-finite values between valid ones along an axis (a new IRF).

        As Gammapy's ``IRF.interp_missing_data`` (which works in place): linear interpolation in
        the bin index, in the values scale, from the nearest valid neighbours on both sides;
        values before the first or after the last valid one are left as they are.
        """
        idx = self._axes.index(axis_name)
        data = np.moveaxis(self._raw.copy(), idx, -1)
        lines = data.reshape(-1, data.shape[-1])
        mask = ~np.isfinite(lines) | (lines == 0.0)
        if not mask.any():
            return self._replace()
        n = lines.shape[-1]
        pos = np.arange(n)
        prev = np.maximum.accumulate(np.where(~mask, pos, -1), axis=-1)
        nxt = np.minimum.accumulate(np.where(~mask, pos, n)[:, ::-1], axis=-1)[:, ::-1]
        fill = mask & (prev >= 0) & (nxt < n)
        rows, cols = np.nonzero(fill)
        p, q = prev[rows, cols], nxt[rows, cols]
        scaled = scale_values(lines, self.values_scale).astype(np.float64)
        fp, fq = scaled[rows, p], scaled[rows, q]
        slope = (fq - fp) / (q - p).astype(np.float64)
        value = slope * (cols - p).astype(np.float64) + fp
        lines = lines.copy()
        lines[rows, cols] = inverse_scale_values(value, self.values_scale)
        data = np.moveaxis(lines.reshape(data.shape), -1, idx)
        return self._replace(data=data)

    # -- I/O ------------------------------------------------------------------------------------------------
    @classmethod
    def _data_unit(cls, hdu: fits.BinTableHDU, column: str, where: str) -> u.UnitBase:
        unit = column_unit(hdu, column, where)
        default = parse_unit(cls.output_unit_default)
        if not unit.is_equivalent(default):
            raise ValueError(
                f"{where}: column {column!r} has unit {unit.to_string()!r}, expected a unit "
                f"convertible to {default.to_string() or 'dimensionless'!r}"
            )
        return unit

    @classmethod
    def from_table_hdu(cls, hdu: fits.BinTableHDU, where: str | None = None) -> IRF:
        """Read a GADF DL3 IRF table HDU (Gammapy's ``IRF.from_table(format="gadf-dl3")``)."""
        where, meta, axes = read_irf_table(hdu, where, cls.required_axes)
        column = table_column(hdu, cls.column_names, where)
        data = column_values(hdu, column, where)
        unit = cls._data_unit(hdu, column, where)
        shape = tuple(a.nbin for a in axes)
        if data.shape != shape:
            raise ValueError(
                f"{where}: column {column!r} has shape {data.shape} (transposed), expected {shape} "
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

    @classmethod
    def read(cls, filename: Any, hdu: str | int | None = None) -> IRF:
        """Read from a FITS file (``hdu`` defaults to the GADF extension name of the class)."""
        hdu = cls.hdu_name if hdu is None else hdu
        hdulist, table_hdu, where = open_hdu(filename, hdu, cls.__name__)
        with hdulist:
            return cls.from_table_hdu(table_hdu, where=where)

    def _data_columns(self) -> dict[str, u.Quantity]:
        """The first of ``column_names``, in ``unit``."""
        return {self.column_names[0]: u.Quantity(self._raw.T[np.newaxis], parse_unit(self._unit), copy=True)}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(axes={self._axes.names}, shape={self._axes.shape}, unit={self._unit!r})"
        )


def _check_table(hdu: Any, where: str) -> None:
    if not isinstance(hdu, fits.BinTableHDU):
        raise ValueError(f"{where}: expected a binary table HDU, got {type(hdu).__name__}")


def read_irf_table(
    hdu: Any, where: str | None, required_axes: Sequence[str], hduclas2_default: str | None = None
) -> tuple[str, dict[str, Any], tuple[MapAxis, ...]]:
    """``(where, meta, axes)`` of a GADF DL3 IRF table HDU: checked to be a binary table, its
    header meta, and its ``required_axes`` in order (``hduclas2_default`` fills a missing
    ``HDUCLAS2``, with a warning, as Gammapy's background reader)."""
    where = where or f"HDU {hdu.name!r}"
    _check_table(hdu, where)
    meta = header_meta(hdu.header)
    if hduclas2_default is not None and "HDUCLAS2" not in meta:
        log.warning(f"Missing 'HDUCLAS2' keyword assuming {hduclas2_default!r}")
        meta["HDUCLAS2"] = hduclas2_default
    axes = pick_axes(read_dl3_axes(hdu, where, str(meta.get("HDUCLAS2", ""))), required_axes, where)
    return where, meta, axes


def _fov_alignment(meta: dict[str, Any], where: str) -> str:
    value = str(meta.get("FOVALIGN", "RADEC")).strip().upper()
    if value not in FOV_ALIGNMENTS:
        raise ValueError(f"{where}: FOVALIGN must be one of {FOV_ALIGNMENTS}, got {value!r}")
    return value


def coord_in_fixed_unit(value: Any, name: str) -> np.ndarray:
    """A coordinate as a float64 array in the fixed unit of its axis name (Quantities converted)."""
    unit = COORD_UNITS.get(name, "")
    if isinstance(value, str):
        value = u.Quantity(value)
    if isinstance(value, u.Quantity):
        try:
            return np.asarray(value.to_value(parse_unit(unit)), dtype=np.float64)
        except u.UnitConversionError as err:
            raise ValueError(f"coordinate {name!r}: unit {value.unit} does not convert to {unit!r}") from err
    return np.asarray(value, dtype=np.float64)


def coord_to_axis_unit(value: Any, axis: MapAxis) -> np.ndarray:
    """A coordinate (fixed unit, or Quantity) converted to the axis unit."""
    if isinstance(value, str):
        value = u.Quantity(value)
    if isinstance(value, u.Quantity):
        try:
            return np.asarray(value.to_value(parse_unit(axis.unit)), dtype=np.float64)
        except u.UnitConversionError as err:
            raise ValueError(
                f"coordinate {axis.name!r}: unit {value.unit} does not convert to {axis.unit!r}"
            ) from err
    values = np.asarray(value, dtype=np.float64)
    fixed = COORD_UNITS.get(axis.name, axis.unit)
    factor = _unit_factor(fixed, axis.unit)
    return values * factor if factor != 1.0 else values
