"""Background from off-pulse phases (Gammapy 2.1's ``PhaseBackgroundMaker``), for pulsars.

The events carry a rotational phase (column ``PHASE`` in [0, 1)). The ON counts are the events of
the ON phase intervals, the OFF counts those of the OFF intervals, both binned on the dataset's
geometry (a map or a spectrum region); the acceptances are the summed interval widths, so that
``alpha = width_on / width_off`` scales the OFF counts to the background under the pulse. The result
is a :class:`~jaxgamma.datasets.MapDatasetOnOff` or :class:`~jaxgamma.datasets.SpectrumDatasetOnOff`
(WStat), keeping the dataset's exposure, IRFs and masks.

Example::

    maker = PhaseBackgroundMaker(on_phase=[(0.5, 0.6)], off_phase=[(0.7, 1.0)])
    onoff = maker.run(dataset, observation)   # observation.events has a PHASE column
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..data.events import EventList
from ..datasets.map import MapDataset, MapDatasetOnOff
from ..datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from .map import make_counts
from .spectrum import make_region_counts

__all__ = ["PhaseBackgroundMaker"]

log = logging.getLogger(__name__)


def _check_intervals(intervals: Any, what: str) -> list[tuple[float, float]]:
    """Phase intervals as a list of ``(start, stop)``: one interval wrapping over phase 1 (start
    beyond stop modulo 1) is split into ``(start % 1, 1)`` and ``(0, stop % 1)`` (the second dropped
    when empty), as Gammapy's ``_check_intervals``."""
    if isinstance(intervals, tuple):
        intervals = [intervals]
    out: list[tuple[float, float]] = []
    split: list[tuple[float, float]] = []
    try:
        pairs = [(float(a), float(b)) for a, b in intervals]
    except (TypeError, ValueError):
        raise ValueError(f"PhaseBackgroundMaker: {what} must be a (start, stop) tuple or a list of them, got {intervals!r}") from None
    if not pairs:
        raise ValueError(f"PhaseBackgroundMaker: {what} holds no interval")
    for start, stop in pairs:
        if not (np.isfinite(start) and np.isfinite(stop)):
            raise ValueError(f"PhaseBackgroundMaker: {what} interval {(start, stop)} is not finite")
        if start % 1 > stop % 1:
            split.append((start % 1, 1.0))
            if stop % 1 != 0:
                split.append((0.0, stop % 1))
        else:
            out.append((start, stop))
    return out + split  # Gammapy appends the split intervals


class PhaseBackgroundMaker:
    """Background estimation with ON and OFF phases (Gammapy's ``PhaseBackgroundMaker``).

    Parameters
    ----------
    on_phase, off_phase : tuple or list of tuples
        Phase intervals ``(start, stop)``; an event is in one when ``start <= phase < stop``
        (Gammapy's ``EventList.select_parameter``). An interval wrapping over 1 (``(0.9, 1.1)``)
        is split in two.
    phase_column_name : str
        The events' phase column (default ``"PHASE"``).
    """

    tag = "PhaseBackgroundMaker"

    def __init__(self, on_phase: Any, off_phase: Any, phase_column_name: str = "PHASE"):
        self.on_phase = _check_intervals(on_phase, "on_phase")
        self.off_phase = _check_intervals(off_phase, "off_phase")
        self.phase_column_name = str(phase_column_name)

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}\nOn phase interval : {self.on_phase}\n"
            f"Off phase interval : {self.off_phase}\nPhase column name : {self.phase_column_name}"
        )

    # -- the parts -----------------------------------------------------------------------------------
    def _events(self, observation: Any, phases: list[tuple[float, float]]) -> EventList:
        events = getattr(observation, "events", None)
        what = f"PhaseBackgroundMaker, observation {getattr(observation, 'obs_id', '')}".rstrip()
        if events is None:
            raise ValueError(f"{what}: no event list")
        if self.phase_column_name not in events.table.colnames:
            raise ValueError(
                f"{what}: the events have no phase column {self.phase_column_name!r} (columns: "
                f"{events.table.colnames}); set phase_column_name"
            )
        return EventList.from_stack(
            [events.select_parameter(self.phase_column_name, interval, is_range=True) for interval in phases]
        )

    def _make_counts(self, dataset: Any, observation: Any, phases: list[tuple[float, float]]) -> np.ndarray:
        events = self._events(observation, phases)
        if isinstance(dataset, SpectrumDataset):
            if dataset.geom is None:
                raise ValueError(
                    f"PhaseBackgroundMaker: spectrum {dataset.name!r} has no ON region (geom); reduce it "
                    "with SpectrumDatasetMaker"
                )
            return make_region_counts(dataset.geom, events, dataset.energy_axis)
        return make_counts(dataset.geom, events)

    def make_counts(self, dataset: Any, observation: Any) -> np.ndarray:
        """ON counts: the events of the ON phases binned on the dataset's geometry."""
        return self._make_counts(dataset, observation, self.on_phase)

    def make_counts_off(self, dataset: Any, observation: Any) -> np.ndarray:
        """OFF counts: the events of the OFF phases binned on the dataset's geometry."""
        return self._make_counts(dataset, observation, self.off_phase)

    def run(self, dataset: Any, observation: Any) -> Any:
        """The ON/OFF dataset: ON and OFF counts from the phases, acceptances the summed interval
        widths (uniform over the bins; for a spectrum, as Gammapy's, ``acceptance_off`` is 0 in the
        bins without OFF counts, whose WStat term is then 0), exposure, IRFs and masks of
        ``dataset`` (a
        :class:`~jaxgamma.datasets.MapDataset` gives a :class:`~jaxgamma.datasets.MapDatasetOnOff`,
        a :class:`~jaxgamma.datasets.SpectrumDataset` a
        :class:`~jaxgamma.datasets.SpectrumDatasetOnOff`)."""
        if not isinstance(dataset, (MapDataset, SpectrumDataset)):
            raise TypeError(
                f"PhaseBackgroundMaker.run: expected a MapDataset or SpectrumDataset, got {type(dataset).__name__}"
            )
        counts_off = self.make_counts_off(dataset, observation)
        counts = self.make_counts(dataset, observation)
        width_on = float(np.sum([b - a for a, b in self.on_phase]))
        width_off = float(np.sum([b - a for a, b in self.off_phase]))
        if isinstance(dataset, SpectrumDataset):
            # Gammapy goes through MapDatasetOnOff.to_spectrum_dataset, which sets
            # acceptance_off = acceptance x counts_off / (alpha x counts_off), NaN (no OFF counts) to 0
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptance_off = np.nan_to_num(width_on * counts_off / (width_on / width_off * counts_off))
            onoff: Any = SpectrumDatasetOnOff.from_spectrum_dataset(
                dataset, acceptance=width_on, acceptance_off=acceptance_off, counts_off=counts_off, name=dataset.name
            )
        else:
            shape = dataset.data_shape
            onoff = MapDatasetOnOff.from_map_dataset(
                dataset,
                acceptance=np.full(shape, width_on),
                acceptance_off=np.full(shape, width_off),
                counts_off=counts_off,
                name=dataset.name,
            )
        return onoff.replace(counts=counts)
