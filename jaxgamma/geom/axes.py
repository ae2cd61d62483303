"""Non-spatial map axes (energy, energy_true, ...), with Gammapy's ``MapAxis`` semantics.

An axis is a sorted array of nodes that are either the bin edges (``node_type="edges"``) or the bin
centres (``node_type="center"``), an interpolation scale (``"lin"``, ``"log"``, ``"sqrt"``) that maps
coordinates to pixels, a unit and a name. Pixel ``i`` is the centre of bin ``i``; bin edges sit at
half-integer pixels. For a log axis the centre of a bin is therefore its geometric (log) centre.

Axes are immutable and hashable: they can be static metadata of a dataset or a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import jax.numpy as jnp
import numpy as np
from astropy.io import fits

from ..units import parse_unit, unit_str

__all__ = ["MapAxis", "axes_from_table_hdu", "axes_to_header", "axes_to_table_hdu", "snapped_edge_indices"]

_INTERPS = ("lin", "log", "sqrt")
_NODE_TYPES = ("edges", "center")
_TINY64 = float(np.finfo(np.float64).tiny)


def _scale(values: Any, interp: str, xp: Any = np) -> Any:
    """Gammapy's interpolation scale (``LogScale`` clips at the smallest normal float)."""
    if interp == "log":
        return xp.log(xp.clip(values, _TINY64, None))
    if interp == "sqrt":
        return xp.sqrt(values)
    return values


def _inverse_scale(values: Any, interp: str) -> Any:
    if interp == "log":
        out = np.exp(values)
        return np.where(np.abs(out) - _TINY64 <= _TINY64, 0.0, out)
    if interp == "sqrt":
        return values**2
    return values


def _interp_linear(x: Any, y: Any, x_new: Any, xp: Any = np) -> Any:
    """``scipy.interpolate.interp1d(x, y, fill_value="extrapolate")`` for ascending ``x``."""
    n = len(x)
    idx = xp.clip(xp.searchsorted(x, x_new, side="left"), 1, n - 1)
    lo = idx - 1
    x_lo, x_hi = x[lo], x[idx]
    y_lo, y_hi = y[lo], y[idx]
    return (y_hi - y_lo) / (x_hi - x_lo) * (x_new - x_lo) + y_lo


class MapAxis:
    """A non-spatial map axis, as ``gammapy.maps.MapAxis``.

    Parameters
    ----------
    nodes : array or Quantity
        Sorted, unique node values: the bin edges or the bin centres (see ``node_type``).
    interp : {"lin", "log", "sqrt"}
        Scale in which coordinates are interpolated to pixels.
    name : str
        Axis name, e.g. "energy" (reconstructed) or "energy_true".
    node_type : {"edges", "center"}
    unit : str
        Unit of the nodes (taken from ``nodes`` if it is a Quantity).
    """

    __slots__ = ("_interp", "_key", "_name", "_node_type", "_nodes", "_unit")

    def __init__(
        self,
        nodes: Any,
        interp: str = "lin",
        name: str = "",
        node_type: str = "edges",
        unit: str | u.UnitBase = "",
    ):
        if isinstance(nodes, u.Quantity):
            unit = nodes.unit
            nodes = nodes.value
        nodes = np.array(nodes, dtype=np.float64, ndmin=1)
        if not isinstance(name, str):
            raise TypeError(f"MapAxis: name must be a string, got {type(name).__name__}")
        if interp not in _INTERPS:
            raise ValueError(f"MapAxis {name!r}: interp must be one of {_INTERPS}, not {interp!r}")
        if node_type not in _NODE_TYPES:
            raise ValueError(f"MapAxis {name!r}: node_type must be one of {_NODE_TYPES}, not {node_type!r}")
        if nodes.ndim != 1 or len(np.unique(nodes)) != len(nodes):
            raise ValueError(f"MapAxis {name!r}: node values must be a 1D array of unique values")
        if not (np.all(np.diff(nodes) > 0) or np.all(np.diff(nodes) < 0)):
            raise ValueError(f"MapAxis {name!r}: node values must be sorted")
        if interp != "lin" and np.any(nodes < 0):
            raise ValueError(f"MapAxis {name!r}: interp {interp!r} needs positive node values")
        if node_type == "edges" and len(nodes) < 2:
            raise ValueError(f"MapAxis {name!r}: edges need at least two values")
        nodes.setflags(write=False)
        self._nodes = nodes
        self._interp = interp
        self._name = name
        self._node_type = node_type
        self._unit = unit_str(unit)
        self._key = (tuple(nodes.tolist()), interp, name, node_type, self._unit)

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def from_edges(cls, edges: Any, **kwargs: Any) -> MapAxis:
        """Axis whose bins have the given edges."""
        return cls(edges, node_type="edges", **kwargs)

    @classmethod
    def from_nodes(cls, nodes: Any, **kwargs: Any) -> MapAxis:
        """Axis whose bin centres are the given nodes."""
        return cls(nodes, node_type="center", **kwargs)

    @classmethod
    def from_bounds(
        cls,
        lo_bnd: float,
        hi_bnd: float,
        nbin: int,
        interp: str = "lin",
        node_type: str = "edges",
        **kwargs: Any,
    ) -> MapAxis:
        """``nbin`` bins between two bounds (edges), or ``nbin`` centres from ``lo`` to ``hi``."""
        nbin = int(nbin)
        nnode = nbin + 1 if node_type == "edges" else nbin
        if interp == "lin":
            nodes = np.linspace(lo_bnd, hi_bnd, nnode)
        elif interp == "log":
            nodes = np.geomspace(lo_bnd, hi_bnd, nnode)
        elif interp == "sqrt":
            nodes = np.linspace(lo_bnd**0.5, hi_bnd**0.5, nnode) ** 2.0
        else:
            raise ValueError(f"MapAxis: invalid interp {interp!r}")
        return cls(nodes, interp=interp, node_type=node_type, **kwargs)

    @classmethod
    def from_energy_bounds(
        cls,
        energy_min: Any,
        energy_max: Any,
        nbin: int,
        unit: str | u.UnitBase | None = None,
        per_decade: bool = False,
        name: str | None = None,
        node_type: str = "edges",
        strict_bounds: bool = True,
    ) -> MapAxis:
        """Log-spaced energy axis, as Gammapy's ``MapAxis.from_energy_bounds``.

        ``energy_min``/``energy_max`` are Quantities, strings such as ``"1 TeV"`` or floats in
        ``unit``. With ``per_decade`` the number of bins is ``ceil(nbin * decades)``
        (``strict_bounds``) or ``floor`` with ``energy_max`` lowered to keep ``nbin`` per decade.
        """
        energy_min = u.Quantity(energy_min, unit)
        energy_max = u.Quantity(energy_max, unit)
        if unit is None:
            unit = energy_max.unit
            energy_min = energy_min.to(unit)
        else:
            unit = parse_unit(unit)
            energy_min, energy_max = energy_min.to(unit), energy_max.to(unit)
        if not energy_max.unit.is_equivalent("TeV"):
            raise ValueError(f"MapAxis.from_energy_bounds: {energy_max.unit} is not an energy unit")
        if per_decade:
            decades = np.log10((energy_max / energy_min).to_value(""))
            if strict_bounds:
                nbin = np.ceil(decades * nbin)
            else:
                per = nbin
                nbin = np.floor(decades * per)
                if decades % (1 / per) != 0:
                    energy_max = energy_min * 10 ** (nbin / per)
        name = "energy" if name is None else name
        _check_energy_name(name)
        return cls.from_bounds(
            energy_min.value,
            energy_max.value,
            nbin=nbin,
            unit=unit,
            interp="log",
            name=name,
            node_type=node_type,
        )

    @classmethod
    def from_energy_edges(
        cls,
        energy_edges: Any,
        unit: str | u.UnitBase | None = None,
        name: str | None = None,
        interp: str = "log",
    ) -> MapAxis:
        """Energy axis from its bin edges (Quantity, or floats in ``unit``)."""
        energy_edges = u.Quantity(energy_edges, unit)
        if not energy_edges.unit.is_equivalent("TeV"):
            raise ValueError(f"MapAxis.from_energy_edges: {energy_edges.unit} is not an energy unit")
        name = "energy" if name is None else name
        _check_energy_name(name)
        return cls.from_edges(energy_edges, interp=interp, name=name)

    # -- properties ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def unit(self) -> str:
        """Unit of the node values ('' for dimensionless)."""
        return self._unit

    @property
    def interp(self) -> str:
        return self._interp

    @property
    def node_type(self) -> str:
        return self._node_type

    @property
    def nodes(self) -> np.ndarray:
        """The node values (edges or centres, see ``node_type``), in ``unit``."""
        return self._nodes

    @property
    def nbin(self) -> int:
        return len(self._nodes) - 1 if self._node_type == "edges" else len(self._nodes)

    @property
    def is_energy_axis(self) -> bool:
        return self._name in ("energy", "energy_true")

    @property
    def _pix_offset(self) -> float:
        return -0.5 if self._node_type == "edges" else 0.0

    @property
    def edges(self) -> np.ndarray:
        """Bin edges in ``unit`` (the nodes for an edges axis; interpolated for a centre axis)."""
        if self._node_type == "edges":
            return self._nodes.copy()
        return self.pix_to_coord(np.arange(self.nbin + 1, dtype=float) - 0.5)

    @property
    def edges_min(self) -> np.ndarray:
        return self.edges[:-1]

    @property
    def edges_max(self) -> np.ndarray:
        return self.edges[1:]

    @property
    def center(self) -> np.ndarray:
        """Bin centres in ``unit``: the log centre ``sqrt(lo * hi)`` on a log axis."""
        if self._node_type == "center":
            return self._nodes.copy()
        return self.pix_to_coord(np.arange(self.nbin, dtype=float))

    @property
    def bin_width(self) -> np.ndarray:
        return np.diff(self.edges)

    @property
    def bounds(self) -> tuple[float, float]:
        edges = self.edges
        return float(edges[0]), float(edges[-1])

    def edges_in(self, unit: str | u.UnitBase) -> np.ndarray:
        """Bin edges converted to ``unit``."""
        return self._convert(self.edges, unit)

    def center_in(self, unit: str | u.UnitBase) -> np.ndarray:
        """Bin centres converted to ``unit``."""
        return self._convert(self.center, unit)

    def _convert(self, values: np.ndarray, unit: str | u.UnitBase) -> np.ndarray:
        return (values * parse_unit(self._unit)).to_value(parse_unit(unit), equivalencies=u.spectral())

    def to_unit(self, unit: str | u.UnitBase) -> MapAxis:
        """The same axis with its nodes converted to ``unit``."""
        return MapAxis(
            self._convert(self._nodes, unit),
            interp=self._interp,
            name=self._name,
            node_type=self._node_type,
            unit=unit,
        )

    def slice(self, idx: slice) -> MapAxis:
        """The bins ``idx`` (a ``slice`` with step 1) of this axis (Gammapy's ``MapAxis.slice``)."""
        if not isinstance(idx, slice):
            raise TypeError(f"MapAxis {self._name!r}.slice: expected a slice, got {type(idx).__name__}")
        start, stop, step = idx.indices(self.nbin)
        if step != 1 or stop <= start:
            raise ValueError(
                f"MapAxis {self._name!r}.slice: {idx} selects no contiguous bins of the {self.nbin} bins"
            )
        nodes = self._nodes[start : stop + 1] if self._node_type == "edges" else self._nodes[start:stop]
        return MapAxis(nodes, interp=self._interp, name=self._name, node_type=self._node_type, unit=self._unit)

    def squash(self) -> MapAxis:
        """One bin spanning the axis (Gammapy's ``MapAxis.squash``)."""
        lo, hi = self.edges[0], self.edges[-1]
        return MapAxis.from_bounds(lo, hi, 1, interp=self._interp, name=self._name, unit=self._unit)

    def downsample(self, factor: int) -> MapAxis:
        """Every ``factor``-th edge (Gammapy's ``MapAxis.downsample``, ``strict=True``): ``nbin``
        must be divisible by ``factor``."""
        factor = positive_factor(factor, f"MapAxis {self._name!r}.downsample: factor")
        if self._node_type != "edges":
            raise ValueError(f"MapAxis {self._name!r}.downsample: only axes of node type 'edges' are supported")
        if self.nbin % factor:
            raise ValueError(f"Number of {self._name} bins ({self.nbin}) is not divisible by {factor}")
        return MapAxis(self._nodes[::factor], interp=self._interp, name=self._name, unit=self._unit)

    # -- coordinates <-> pixels ---------------------------------------------------------------------
    def _scaled_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        x = _scale(self._nodes, self._interp)
        y = np.arange(len(self._nodes), dtype=float)
        if x[0] > x[-1]:
            x, y = x[::-1], y[::-1]
        return x, y

    def coord_to_pix(self, coord: Any) -> np.ndarray:
        """Pixel coordinates of axis values (in ``unit``); linear extrapolation outside."""
        coord = np.asarray(coord, dtype=np.float64)
        if len(self._nodes) == 1:
            return np.zeros_like(coord) + self._pix_offset
        x, y = self._scaled_nodes()
        return _interp_linear(x, y, _scale(coord, self._interp)) + self._pix_offset

    def coord_to_pix_jax(self, coord: Any) -> jnp.ndarray:
        """:meth:`coord_to_pix` in ``jax.numpy`` (for traced coordinates, jit-safe)."""
        coord = jnp.asarray(coord)
        if len(self._nodes) == 1:
            return jnp.zeros_like(coord) + self._pix_offset
        x, y = self._scaled_nodes()
        return (
            _interp_linear(jnp.asarray(x), jnp.asarray(y), _scale(coord, self._interp, jnp), jnp)
            + self._pix_offset
        )

    def pix_to_coord(self, pix: Any) -> np.ndarray:
        """Axis values (in ``unit``) at pixel coordinates; linear extrapolation outside."""
        pix = np.asarray(pix, dtype=np.float64) - self._pix_offset
        if len(self._nodes) == 1:
            return np.zeros_like(pix) + self._nodes[0]
        x = _scale(self._nodes, self._interp)
        y = np.arange(len(self._nodes), dtype=float)
        return _inverse_scale(_interp_linear(y, x, pix), self._interp)

    def pix_to_idx(self, pix: Any, clip: bool = False) -> np.ndarray:
        """Bin index of pixel coordinates (``floor(pix + 0.5)``); -1 outside unless ``clip``."""
        pix = np.asarray(pix, dtype=np.float64)
        finite = np.isfinite(pix)
        idx = np.floor(np.where(finite, pix, 0.0) + 0.5).astype(int)
        if clip:
            idx = np.clip(idx, 0, self.nbin - 1)
        else:
            idx = np.where((idx < 0) | (idx >= self.nbin), -1, idx)
        return np.where(finite, idx, -1)

    def coord_to_idx(self, coord: Any, clip: bool = False) -> np.ndarray:
        """Bin index of axis values (``digitize`` on the edges); -1 outside unless ``clip``."""
        coord = np.array(coord, dtype=np.float64, ndmin=1)
        edges = self.edges
        idx = np.digitize(coord, edges) - 1
        if clip:
            idx = np.clip(idx, 0, self.nbin - 1)
        else:
            with np.errstate(invalid="ignore"):
                idx[coord > edges[-1]] = -1
        idx[~np.isfinite(coord)] = -1
        return idx

    # -- FITS -----------------------------------------------------------------------------------------
    def to_header(self, idx: int = 1) -> fits.Header:
        """``AXCOLSn`` / ``INTERPn`` keys of the GADF bands table (``n = idx``)."""
        header = fits.Header()
        name = self._name.upper()
        if self._name == "energy":
            header[f"AXCOLS{idx}"] = "E_MIN,E_MAX" if self._node_type == "edges" else "ENERGY"
        else:
            header[f"AXCOLS{idx}"] = f"{name}_MIN,{name}_MAX" if self._node_type == "edges" else name
        header[f"INTERP{idx}"] = self._interp
        return header

    @classmethod
    def from_table_hdu(cls, hdu: fits.BinTableHDU, format: str = "gadf", idx: int = 0) -> MapAxis:
        """Read axis ``idx`` (0-based) of a bands / EBOUNDS / ENERGIES table.

        Formats as Gammapy: "gadf" (``AXCOLSn``, ``INTERPn`` header keys), "ogip" and "fgst-ccube"
        (``E_MIN``/``E_MAX`` edges, name "energy"), "ogip-arf" (``ENERG_LO``/``ENERG_HI``,
        "energy_true"), "fgst-template" (``ENERGY`` nodes in MeV, "energy_true").
        """
        data, header = hdu.data, hdu.header

        def column(name: str) -> u.Quantity:
            col = hdu.columns[name]
            unit = parse_unit(col.unit) if col.unit else u.dimensionless_unscaled
            return u.Quantity(np.asarray(data[name], dtype=np.float64), unit)

        if format in ("ogip", "fgst-ccube"):
            emin, emax = column("E_MIN"), column("E_MAX")
            return cls.from_edges(
                np.append(emin.value, emax.value[-1]) * emin.unit, name="energy", interp="log"
            )
        if format == "ogip-arf":
            emin, emax = column("ENERG_LO"), column("ENERG_HI")
            return cls.from_edges(
                np.append(emin.value, emax.value[-1]) * emin.unit, name="energy_true", interp="log"
            )
        if format == "fgst-template":
            tag = next(n for n in hdu.columns.names if n in ("Energy", "ENERGY", "energy"))
            return cls.from_nodes(
                np.asarray(data[tag], dtype=np.float64), name="energy_true", unit="MeV", interp="log"
            )
        if format != "gadf":
            raise ValueError(f"MapAxis: unsupported bands table format {format!r}")
        axcols = header.get(f"AXCOLS{idx + 1}")
        if axcols is None:
            raise ValueError(f"bands table {hdu.name!r} has no AXCOLS{idx + 1} key")
        colnames = axcols.split(",")
        node_type = "edges" if len(colnames) == 2 else "center"
        if colnames[0] == "E_MIN":
            name = "energy"
        else:
            name = colnames[0].replace("_MIN", "").lower()
            if name == "theta":
                name = "rad"
        interp = header.get(f"INTERP{idx + 1}", "lin")
        nodes: Any
        if node_type == "center":
            nodes = np.unique(column(colnames[0]))
        else:
            edges_min: Any = np.unique(column(colnames[0]))
            edges_max: Any = np.unique(column(colnames[1]))
            nodes = np.append(edges_min.value, edges_max.to_value(edges_min.unit)[-1]) * edges_min.unit
        return cls(nodes, node_type=node_type, interp=interp, name=name)

    def is_allclose(self, other: MapAxis, rtol: float = 1e-6, atol: float = 1e-6) -> bool:
        """Same name, node type, interp and unit, and nodes equal within tolerances (Gammapy's test)."""
        return (
            isinstance(other, MapAxis)
            and self._key[1:] == other._key[1:]
            and self._nodes.shape == other._nodes.shape
            and bool(np.allclose(self._nodes, other._nodes, rtol=rtol, atol=atol))
        )

    # -- dunder ---------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, MapAxis) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        lo, hi = self.bounds
        unit = f" {self._unit}" if self._unit else ""
        return (
            f"MapAxis(name={self._name!r}, nbin={self.nbin}, node_type={self._node_type!r}, "
            f"interp={self._interp!r}, bounds=({lo:.6g}, {hi:.6g}){unit})"
        )


def positive_factor(factor: Any, what: str) -> int:
    """``factor`` as an int >= 1 (a resampling factor), or a ValueError naming ``what``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"{what} must be a positive integer, got {factor!r}")
    return int(factor)


def _check_energy_name(name: str) -> None:
    if name not in ("energy", "energy_true"):
        raise ValueError(f"an energy axis is named 'energy' or 'energy_true', not {name!r}")


# -- bands tables (GADF) -------------------------------------------------------------------------------
def axes_to_header(axes: Sequence[MapAxis]) -> fits.Header:
    """``AXCOLSn``/``INTERPn`` keys for a sequence of axes (n from 1)."""
    header = fits.Header()
    for idx, axis in enumerate(axes, start=1):
        header.update(axis.to_header(idx))
    return header


def snapped_edge_indices(axis: MapAxis, values: Any) -> np.ndarray:
    """The indices (0 .. nbin) of the edges of ``axis`` that ``values`` snap to, sorted and unique,
    as Gammapy's ``MapAxis.group_table``: rounding in pixel coordinates, clipped to the axis."""
    pix = np.clip(axis.coord_to_pix(np.asarray(values, dtype=np.float64)), -0.5, axis.nbin - 0.5)
    return np.unique(np.round(pix + 0.5).astype(int))


class EmptyEnergyRangeError(ValueError):
    """An energy range that selects no bin of a dataset's axis (``Datasets.slice_by_energy`` leaves
    such datasets out)."""


def energy_bin_slice(axis: MapAxis, energy_min: Any, energy_max: Any, what: str) -> slice:
    """The bins of ``axis`` between ``energy_min`` and ``energy_max`` (Quantity, string or TeV;
    None = the axis bound) as Gammapy's ``slice_by_energy`` selects them: each bound snapped to
    the nearest edge (``group_table``); a ValueError names the range when no bin is left."""
    lo, hi = axis.bounds
    unit = axis.unit or "TeV"

    def value(v: Any, default: float, label: str) -> float:
        if v is None:
            return default
        if not isinstance(v, (u.Quantity, str)):
            v = u.Quantity(float(v), "TeV")
        try:
            return float(u.Quantity(v).to_value(unit))
        except (TypeError, ValueError, u.UnitsError) as err:
            raise ValueError(f"{what}: {label} must be an energy, got {v!r} ({err})") from None

    bounds = [value(energy_min, lo, "energy_min"), value(energy_max, hi, "energy_max")]
    idx = snapped_edge_indices(axis, bounds)
    if idx.size < 2:
        raise EmptyEnergyRangeError(
            f"{what}: the range {bounds} {unit} selects no bin of the energy axis ({lo:g} to {hi:g} {unit})"
        )
    return slice(int(idx[0]), int(idx[-1]))


def check_energy_slices(slices: Any, what: str) -> None:
    """A ``slice_by_idx`` argument of a dataset: a dict from "energy" / "energy_true" to slices
    (integer indices, which drop the axis in Gammapy, are refused: datasets keep their axes)."""
    if not isinstance(slices, dict):
        raise TypeError(f"{what}: slices must be a dict of axis names and slices, got {type(slices).__name__}")
    for key, value in slices.items():
        if key not in ("energy", "energy_true"):
            raise ValueError(f"{what}: unknown axis {key!r}; the axes are ['energy', 'energy_true']")
        if not isinstance(value, slice):
            raise ValueError(
                f"{what}: integer indexing is not supported (a dataset keeps its energy axes), got "
                f"{{{key!r}: {value!r}}}; use slice({value}, {value} + 1)"
            )


def axes_to_table_hdu(axes: Sequence[MapAxis], hdu_bands: str = "BANDS") -> fits.BinTableHDU:
    """GADF bands table: ``CHANNEL`` and, per axis, centre / min / max columns (first axis fastest)."""
    axes = list(axes)
    cols = [fits.Column("CHANNEL", "K", array=np.arange(int(np.prod([a.nbin for a in axes]))))]
    centers = np.meshgrid(*[a.center for a in axes])
    mins = np.meshgrid(*[a.edges_min for a in axes])
    maxs = np.meshgrid(*[a.edges_max for a in axes])
    for i, axis in enumerate(axes):
        name = axis.name.upper()
        names = ["ENERGY", "E_MIN", "E_MAX"] if name == "ENERGY" else [name, f"{name}_MIN", f"{name}_MAX"]
        for colname, values in zip(names, (centers, mins, maxs), strict=True):
            cols.append(fits.Column(colname, "D", unit=axis.unit or None, array=np.ravel(values[i])))
    return fits.BinTableHDU.from_columns(cols, header=axes_to_header(axes), name=hdu_bands)


def axes_from_table_hdu(hdu: fits.BinTableHDU | None, format: str = "gadf") -> tuple[MapAxis, ...]:
    """All axes described by a bands table (none when ``hdu`` is None)."""
    if hdu is None:
        return ()
    if format in ("fgst-ccube", "fgst-template", "ogip", "ogip-arf"):
        return (MapAxis.from_table_hdu(hdu, format=format),)
    axes = []
    for idx in range(5):
        if f"AXCOLS{idx + 1}" not in hdu.header:
            break
        axes.append(MapAxis.from_table_hdu(hdu, format=format, idx=idx))
    return tuple(axes)
