"""Light curves: Gammapy 2.1's ``LightCurveEstimator`` and its result.

For each time interval the datasets whose GTI lies inside it (Gammapy's ``select_time``, to
``atol``) are selected and :class:`~jaxgamma.estimators.FluxPointsEstimator` runs on them: the
source's ``norm`` in each energy group, the other parameters fixed. Intervals that no dataset falls
in are dropped, as in Gammapy. Without ``time_intervals`` the intervals are the datasets' own
(``Datasets.gti``).

The result, :class:`LightCurve`, holds the flux points of each interval and gives every quantity
as an array of shape ``(n_time, n_energy, ...)``; it writes and reads Gammapy's ``lightcurve``
table format (one row per interval, ``time_min`` / ``time_max`` in MJD, the ``gadf-sed`` columns
of that interval's points as arrays), so Gammapy's ``FluxPoints.read(..., format="lightcurve")``
reads our files and we read Gammapy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.time import Time

from ..datasets.flux_points import FluxPoints
from ._stacked import _StackedFluxPoints
from .points import FluxPointsEstimator, _as_datasets

__all__ = ["LightCurve", "LightCurveEstimator"]

_PER_DATASET = ("counts", "npred", "npred_excess")
_TIME_COLUMNS = ("time_min", "time_max")


class LightCurve(_StackedFluxPoints):
    """Flux points per time interval (Gammapy's light-curve ``FluxPoints``, axes energy x time).

    Parameters
    ----------
    time_min, time_max : astropy Time
        The intervals, one per entry of ``points``.
    points : sequence of FluxPoints
        The flux points of each interval, on one energy binning.

    Every quantity of the flux points (``lc.flux``, ``lc.norm_errn``, ``lc.ts``, ``lc.is_ul``, ...)
    is an array with the time first: ``(n_time, n_energy)`` (``counts``: ``(n_time, n_energy,
    n_datasets)``).
    """

    _bins = "intervals"
    _format = "lightcurve"

    def __init__(self, time_min: Any, time_max: Any, points: Sequence[FluxPoints], meta: dict | None = None):
        points = tuple(points)
        time_min, time_max = Time(time_min), Time(time_max)
        if time_min.ndim == 0:
            time_min, time_max = time_min.reshape(1), time_max.reshape(1)
        if not points:
            raise ValueError("LightCurve: no flux points given")
        if not (len(time_min) == len(time_max) == len(points)):
            raise ValueError(
                f"LightCurve: {len(time_min)} start and {len(time_max)} stop times for {len(points)} sets of flux points"
            )
        if np.any((time_max - time_min).to_value("s") <= 0):
            raise ValueError("LightCurve: every interval must have time_max > time_min")
        super().__init__(points, meta)
        self.time_min, self.time_max = time_min, time_max

    # -- axes -----------------------------------------------------------------------------------------
    @property
    def n_time(self) -> int:
        return len(self.points)

    @property
    def time_mid(self) -> Time:
        return self.time_min + 0.5 * (self.time_max - self.time_min)

    @property
    def time_delta(self) -> u.Quantity:
        return (self.time_max - self.time_min).to("d")

    # -- rebinning ------------------------------------------------------------------------------------
    def resample_axis(self, axis_new: Any) -> LightCurve:
        """The light curve on coarser time intervals by summing the likelihood profiles of the
        intervals each new one covers, per energy bin (Gammapy's ``FluxPoints.resample_axis`` along
        its time axis; see :mod:`jaxgamma.estimators.resample`).

        Parameters
        ----------
        axis_new : tuple of Time
            ``(time_min, time_max)`` of the new intervals, each starting and ending on interval
            bounds of this light curve (e.g. from ``get_rebinned_axis(lc, axis_name="time", ...)``).
        """
        from .resample import group_indices

        first = self.points[0]
        if not first.has_stat_profiles:
            raise ValueError("Stat profiles not present, rebinning is not possible")
        try:
            time_min, time_max = (Time(t) for t in axis_new)
        except (TypeError, ValueError) as err:
            raise TypeError(f"LightCurve.resample_axis: expected a (time_min, time_max) pair of Time, got {axis_new!r}") from err
        time_min, time_max = time_min.reshape(-1), time_max.reshape(-1)
        t0 = self.time_min[0]
        old_lo, old_hi, new_lo, new_hi = ((t - t0).to_value("s") for t in (self.time_min, self.time_max, time_min, time_max))
        groups = group_indices(old_lo, old_hi, new_lo, new_hi, "time")
        edges = first.energy_edges
        if edges is None:
            raise ValueError("LightCurve.resample_axis: the flux points have no energy bins")
        points = []
        for g in groups:
            members = [self.points[i] for i in g]
            scans = [np.stack([np.asarray(p.stat_scan)[j] for p in members]) for j in range(len(first))]
            nulls = None
            if "stat_null" in first.available_quantities:
                nulls = [np.array([np.asarray(p.stat_null)[j] for p in members]) for j in range(len(first))]
            points.append(first._squashed(scans, nulls, edges))
        return LightCurve(time_min, time_max, points, meta=self.meta)

    # -- tables and files -----------------------------------------------------------------------------
    def to_table(self, sed_type: str | None = None, format: str = "lightcurve") -> Table:
        """Gammapy's ``lightcurve`` table: per interval ``time_min``, ``time_max`` (MJD, reference
        MJD 0 in the intervals' time scale) and that interval's ``gadf-sed`` columns as arrays; or,
        for one energy bin, ``format="binned-time-series"``: ``time_bin_start`` (Time),
        ``time_bin_size`` (TimeDelta) and the quantities, as Gammapy (for astropy's
        ``BinnedTimeSeries``)."""
        if format == "binned-time-series":
            return self._binned_time_series(self.sed_type_init if sed_type is None else sed_type)
        if format != "lightcurve":
            raise ValueError(
                f"LightCurve.to_table: format must be 'lightcurve' or 'binned-time-series', got {format!r}"
            )
        out = self._rows_table({"time_min": self.time_min.mjd, "time_max": self.time_max.mjd}, sed_type)
        out.meta.update({"MJDREFI": 0, "MJDREFF": 0.0, "TIMESYS": self.time_min.scale, "TIMEUNIT": "d"})
        return out

    def _binned_time_series(self, sed_type: str) -> Table:
        if len(self.energy_ref) != 1:
            raise ValueError(
                f"LightCurve.to_table: format 'binned-time-series' supports one energy bin only, got {len(self.energy_ref)}"
            )
        sed = self.to_table(sed_type=sed_type)
        prefix = "norm" if sed_type == "likelihood" else sed_type
        suffixes = (
            ("", "_err", "_errn", "_errp", "_ul", "_sensitivity")
            if sed_type == "likelihood"
            else ("", "_err", "_errp", "_errn", "_ul", "_sensitivity")
        )
        order = [prefix + suffix for suffix in suffixes]
        order += ["ts", "sqrt_ts", "npred", "npred_excess", "stat", "stat_null", "is_ul", "counts", "success"]
        skip = {"time_min", "time_max", "e_ref", "e_min", "e_max", "ref_dnde", "ref_flux", "ref_eflux", "norm_scan"}
        names = [n for n in order if n in sed.colnames]
        names += [n for n in sed.colnames if n not in names and n not in skip]
        table = Table()
        table["time_bin_start"] = self.time_min
        table["time_bin_size"] = self.time_max - self.time_min
        for name in names:
            column = sed[name]
            values = np.asarray(column)[:, 0]  # the one energy bin
            # Gammapy squeezes every axis of length 1 (a per-dataset column of one dataset); the
            # time axis is kept whatever its length
            values = values.reshape((values.shape[0], *[n for n in values.shape[1:] if n != 1]))
            table[name] = u.Quantity(values, column.unit) if column.unit is not None and values.dtype.kind == "f" else values
        return table

    @classmethod
    def from_table(cls, table: Table, reference_model: Any = None, where: str = "table") -> LightCurve:
        for column in _TIME_COLUMNS:
            if column not in table.colnames:
                raise ValueError(f"{where}: a lightcurve table needs a {column!r} column (MJD)")
        unit = str(table.meta.get("TIMEUNIT", "d")).strip()
        if unit != "d":
            raise ValueError(f"{where}: TIMEUNIT {unit!r} is not supported (Gammapy writes 'd')")
        scale = str(table.meta.get("TIMESYS", "tt")).lower()
        mjdref = float(table.meta.get("MJDREFI", 0)) + float(table.meta.get("MJDREFF", 0.0))
        start = Time(mjdref + np.asarray(table["time_min"], dtype=np.float64), format="mjd", scale=scale)
        stop = Time(mjdref + np.asarray(table["time_max"], dtype=np.float64), format="mjd", scale=scale)
        points = cls._points_from_rows(
            table, _TIME_COLUMNS, reference_model, skip_meta=("MJDREFI", "MJDREFF", "TIMESYS", "TIMEUNIT")
        )
        return cls(start, stop, points)

    # -- plot -----------------------------------------------------------------------------------------
    def plot(self, ax: Any = None, sed_type: str = "flux", energy_index: int | None = None, **kwargs: Any) -> Any:
        """The light curve against time (MJD): points with their errors (``errn``/``errp`` when
        available) and horizontal bars for the intervals; upper limits as arrows. One series per
        energy bin (or only ``energy_index``)."""
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        x = self.time_mid.mjd
        xerr = 0.5 * (self.time_max.mjd - self.time_min.mjd)
        self._plot_series(ax, x, xerr, sed_type, energy_index, **kwargs)
        ax.set_xlabel(f"Time [MJD, {self.time_min.scale.upper()}]")
        return ax

    def __repr__(self) -> str:
        return (
            f"LightCurve(n_time={self.n_time}, {self.time_min[0].isot} .. {self.time_max[-1].isot} "
            f"({self.time_min.scale}), n_energy={len(self.energy_ref)}, quantities={self.available_quantities})"
        )


class LightCurveEstimator(FluxPointsEstimator):
    """Flux points of one source per time interval (Gammapy's ``LightCurveEstimator``).

    Parameters
    ----------
    time_intervals : list of (Time, Time), optional
        The intervals (default: one per dataset, from its GTI). They must not overlap.
    atol : Quantity or str
        Tolerance of the time comparisons (Gammapy's default 1e-6 s).
    source, energy_edges, n_sigma, n_sigma_ul, selection_optional, norm, reoptimize
        As :class:`FluxPointsEstimator`.
    stack_over_time_interval : bool
        Stack the datasets of each interval into one (named "stacked"; their FoV background
        models folded into its background) before the estimate, as Gammapy; default False (a
        joint estimate over the datasets of the interval).
    """

    tag = "LightCurveEstimator"

    def __init__(
        self,
        time_intervals: Any = None,
        atol: Any = "1e-6 s",
        stack_over_time_interval: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if stack_over_time_interval and self.reoptimize:
            raise ValueError(
                "LightCurveEstimator: stack_over_time_interval=True needs reoptimize=False (as Gammapy): the "
                "stacked background has no free parameters"
            )
        self.stack_over_time_interval = bool(stack_over_time_interval)
        self.atol = u.Quantity(atol)
        if not self.atol.unit.is_equivalent("s") or not self.atol.value >= 0:
            raise ValueError(f"LightCurveEstimator: atol must be a non-negative time, got {atol!r}")
        if time_intervals is not None:
            intervals = [(Time(t0), Time(t1)) for t0, t1 in time_intervals]
            if not intervals:
                raise ValueError("LightCurveEstimator: time_intervals is empty")
            for t0, t1 in intervals:
                if not t1 > t0:
                    raise ValueError(f"LightCurveEstimator: time interval {t0.isot} - {t1.isot} does not have stop > start")
            time_intervals = intervals
        self.time_intervals = time_intervals

    def run(self, datasets: Any, models: Any) -> LightCurve:  # type: ignore[override]
        """The light curve of the source in ``models`` from ``datasets`` (each with a GTI)."""
        from ..data.gti import GTI

        datasets = _as_datasets(datasets)
        if self.time_intervals is None:
            gti = datasets.gti
            if gti is None:
                raise ValueError("LightCurveEstimator: the datasets have no GTI; give time_intervals")
        else:
            gti = GTI.from_time_intervals(self.time_intervals)
        try:
            gti = gti.union(overlap_ok=False, merge_equal=False)
        except ValueError as exc:
            raise ValueError(f"LightCurveEstimator: the time intervals overlap ({exc})") from None
        names = datasets.names
        starts, stops, rows = [], [], []
        for t_min, t_max in gti.time_intervals:
            selected = datasets.select_time(t_min, t_max, atol=self.atol)
            if len(selected) == 0:
                continue  # Gammapy drops intervals without datasets
            if self.stack_over_time_interval:
                selected, interval_models = _stacked(selected, models, datasets.names)
                names = selected.names
            else:
                interval_models = models
            points = super().run(selected, interval_models)
            rows.append(_expand_datasets(points, selected.names, names))
            starts.append(t_min)
            stops.append(t_max)
        if not rows:
            raise ValueError("LightCurveEstimator: no dataset lies within any of the time intervals")
        return LightCurve(Time(starts), Time(stops), rows)


def _stacked(selected: Any, models: Any, all_names: list[str]) -> tuple[Any, Any]:
    """Gammapy's ``stack_over_time_interval``: the datasets of the interval stacked into one named
    "stacked" (the FoV background models folded into its background and dropped), the other models
    reassigned from any dataset of the light curve to it."""
    from ..datasets import Datasets
    from ..models import FoVBackgroundModel, Models, SkyModel

    models = models if isinstance(models, Models) else Models(models)
    stacked = selected.stack_reduce(name="stacked", models=models)
    kept = []
    for model in models:
        if isinstance(model, FoVBackgroundModel):
            continue
        names = getattr(model, "datasets_names", None)
        if isinstance(model, SkyModel) and names is not None and any(n in all_names for n in names):
            model = model.replace(datasets_names=[*names, "stacked"])
        kept.append(model)
    return Datasets([stacked]), Models(kept)


def _expand_datasets(points: FluxPoints, selected: list[str], names: list[str]) -> FluxPoints:
    """The per-dataset columns over all datasets of the light curve, NaN for those not in this
    interval (Gammapy's ``expand_map``)."""
    table = points.to_table(sed_type="likelihood")
    index = [names.index(n) for n in selected]
    for column in _PER_DATASET:
        if column in table.colnames:
            values = np.asarray(table[column], dtype=np.float64)
            full = np.full((*values.shape[:-1], len(names)), np.nan)
            full[..., index] = values
            table[column] = full
    table.meta["datasets"] = list(names)
    return FluxPoints.from_table(table, sed_type="likelihood", reference_model=points.reference_model)
