"""Flux points stacked along one more axis (Gammapy's ``FluxPoints`` with a time or a
projected-distance axis): the shared part of :class:`~jaxgamma.estimators.LightCurve` and
:class:`~jaxgamma.estimators.FluxProfile`.

The points of each bin share one energy binning; every quantity is an array with the stacking axis
first. Gammapy's ``lightcurve`` and ``profile`` table formats are one row per bin: the bin's own
columns, then the ``gadf-sed`` columns of that bin's points as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table, vstack

from ..datasets.flux_points import _QUANTITY_NAMES, FluxPoints, _read_table, _write_table


class _StackedFluxPoints:
    """Flux points per bin of an axis other than energy (base of the light curve and the profile)."""

    _bins = "bins"  # what one entry is, for messages ("intervals", "regions")
    _format = ""  # Gammapy's table format ("lightcurve", "profile")

    def __init__(self, points: Sequence[FluxPoints], meta: dict | None = None):
        points = tuple(points)
        name = type(self).__name__
        if not points:
            raise ValueError(f"{name}: no flux points given")
        first = points[0]
        for p in points[1:]:
            same = len(p) == len(first) and np.allclose(p.energy_ref, first.energy_ref, rtol=1e-10)
            if not same:
                raise ValueError(f"{name}: the flux points of all {self._bins} must share one energy binning")
        self.points = points
        self.meta = dict(first.meta if meta is None else meta)

    def __len__(self) -> int:
        return len(self.points)

    # -- energy axis (shared by all bins) -------------------------------------------------------------
    @property
    def energy_ref(self) -> np.ndarray:
        return self.points[0].energy_ref

    @property
    def energy_edges(self) -> np.ndarray | None:
        return self.points[0].energy_edges

    @property
    def energy_min(self) -> np.ndarray | None:
        return self.points[0].energy_min

    @property
    def energy_max(self) -> np.ndarray | None:
        return self.points[0].energy_max

    @property
    def sed_type_init(self) -> str:
        return self.points[0].sed_type_init

    @property
    def available_quantities(self) -> list[str]:
        return self.points[0].available_quantities

    @property
    def reference_model(self) -> Any:
        return self.points[0].reference_model

    # -- quantities -----------------------------------------------------------------------------------
    def get(self, name: str) -> np.ndarray:
        """A quantity by Gammapy's name, stacked over the bins (the stacking axis first)."""
        return np.stack([p.get(name) for p in self.points])

    def __getattr__(self, name: str) -> Any:
        if name in _QUANTITY_NAMES or name in ("is_ul", "sqrt_ts"):
            return self.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- tables ---------------------------------------------------------------------------------------
    def _rows_table(self, leading: dict[str, Any], sed_type: str | None) -> Table:
        """One row per bin: the ``leading`` columns (one value per bin each), then the bin's
        ``gadf-sed`` columns as arrays."""
        rows = []
        for i, points in enumerate(self.points):
            table = points.to_table(sed_type=sed_type)
            flat = Table()
            for column, values in leading.items():
                flat[column] = values[i : i + 1]
            for column in table.columns:
                flat[column] = table[column][np.newaxis]
            flat.meta.update(table.meta)
            rows.append(flat)
        return vstack(rows, metadata_conflicts="silent")

    @staticmethod
    def _points_from_rows(table: Table, skip: Sequence[str], reference_model: Any, skip_meta: Sequence[str] = ()) -> list[FluxPoints]:
        """The flux points of each row of a ``lightcurve`` / ``profile`` table."""
        points = []
        for i in range(len(table)):
            sub = Table()
            for column in table.colnames:
                if column in skip:
                    continue
                sub[column] = u.Quantity(table[column][i], table[column].unit) if table[column].unit else table[column][i]
            sub.meta.update({k: v for k, v in table.meta.items() if k not in skip_meta})
            points.append(FluxPoints.from_table(sub, reference_model=reference_model))
        return points

    @classmethod
    def read(cls, path: Any, format: str = "", reference_model: Any = None) -> Any:
        """Read the class's table format (``lightcurve`` / ``profile``; FITS or ECSV) written by
        Gammapy or by :meth:`write`."""
        if format and format != cls._format:
            raise ValueError(f"{cls.__name__}.read: only format={cls._format!r} is supported, got {format!r}")
        table, _ = _read_table(path)
        return cls.from_table(table, reference_model=reference_model, where=repr(str(path)))

    @classmethod
    def from_table(cls, table: Table, reference_model: Any = None, where: str = "table") -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, path: Any, sed_type: str | None = None, format: str = "", overwrite: bool = False) -> None:
        """Write Gammapy's table format (``lightcurve`` / ``profile``; ``format`` as :meth:`to_table`,
        default its own): FITS (``.fits``, HDU ``FLUXPOINTS``) or ECSV (``.ecsv``); atomic, refusing
        to replace a file unless ``overwrite=True``."""
        table = self.to_table(sed_type=sed_type, format=format) if format else self.to_table(sed_type=sed_type)
        _write_table(path, table, overwrite=overwrite, hdu_name="FLUXPOINTS")

    def to_table(self, sed_type: str | None = None, format: str = "") -> Table:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- plot -----------------------------------------------------------------------------------------
    def _plot_series(self, ax: Any, x: np.ndarray, xerr: Any, sed_type: str, energy_index: int | None, **kwargs: Any) -> Any:
        """Points with their errors (``errn``/``errp`` when available) against ``x``, upper limits
        as arrows, one series per energy bin (or only ``energy_index``)."""
        value = self.get(sed_type)
        try:
            yerr = np.stack([self.get(f"{sed_type}_errn"), self.get(f"{sed_type}_errp")])
        except AttributeError:
            err = self.get(f"{sed_type}_err")
            yerr = np.stack([err, err])
        has_ul = self.points[0].has_ul
        is_ul = self.is_ul if has_ul else np.zeros(value.shape, bool)
        ul = self.get(f"{sed_type}_ul") if has_ul else np.full(value.shape, np.nan)
        indices = range(value.shape[1]) if energy_index is None else [energy_index]
        user_label = kwargs.pop("label", None)
        lo, hi = self.energy_min, self.energy_max
        for j in indices:
            label = user_label
            if label is None and lo is not None and hi is not None:
                label = f"{lo[j]:.3g} - {hi[j]:.3g} TeV"
            y = np.where(is_ul[:, j], ul[:, j], value[:, j])
            err = np.where(is_ul[:, j], 0.0, yerr[:, :, j])
            err = np.where(is_ul[:, j], 0.5 * y, err)  # the arrow length of an upper limit
            ax.errorbar(x, y, xerr=xerr, yerr=err, uplims=is_ul[:, j], linestyle="", marker="o", label=label, **kwargs)
        unit = {"flux": "cm-2 s-1", "eflux": "TeV cm-2 s-1", "dnde": "cm-2 s-1 TeV-1", "e2dnde": "TeV cm-2 s-1"}
        ax.set_ylabel(f"{sed_type} [{unit.get(sed_type, '')}]".replace(" []", ""))
        ax.set_yscale("log" if sed_type != "likelihood" else "linear")
        return ax
