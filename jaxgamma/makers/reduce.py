"""Data reduction of many observations (Gammapy 2.1's ``DatasetsMaker``).

For each observation the reference dataset is cut out around the pointing (width
``cutout_width``, by default twice the ``offset_max`` of the :class:`~jaxgamma.makers.SafeMaskMaker`
among the makers), the makers run in order, and the result is either stacked into the reference
dataset (:meth:`~jaxgamma.datasets.MapDataset.stack`, Gammapy's rules) or kept, one dataset per
observation, in observation order. A progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np
from astropy.coordinates import Angle
from astropy.nddata.utils import NoOverlapError

from ..datasets import Datasets
from ..datasets.map import MapDataset, MapDatasetOnOff
from .background import FoVBackgroundMaker
from .map import MapDatasetMaker
from .safe import SafeMaskMaker

__all__ = ["DatasetsMaker", "ProgressBar"]

log = logging.getLogger(__name__)

_STACK_CHUNK = 8
"""Datasets held in memory before they are stacked into the reference."""


class ProgressBar:
    """A minimal progress bar on a stream (default stderr), drawn only when the stream is a
    terminal (or ``enabled=True``): ``desc: 2/3 |#######-------| 1.2 s [label]``."""

    def __init__(
        self, total: int, desc: str = "", stream: Any = None, enabled: bool | None = None, width: int = 30
    ):
        self.total = int(total)
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self.width = int(width)
        self.count = 0
        self._start = time.perf_counter()

    def _draw(self, label: str = "") -> None:
        if not self.enabled:
            return
        frac = self.count / self.total if self.total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._start
        text = f"\r{self.desc}: {self.count}/{self.total} |{bar}| {elapsed:.1f} s"
        if label:
            text += f" [{label}]"
        self.stream.write(text)
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        self._draw()
        return self

    def update(self, n: int = 1, label: str = "") -> None:
        self.count += n
        self._draw(label)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class DatasetsMaker:
    """Run makers on many observations, as Gammapy's ``DatasetsMaker``.

    Parameters
    ----------
    makers : list
        Makers with a ``run(dataset, observation)`` method, run in order (typically
        :class:`~jaxgamma.makers.MapDatasetMaker`, :class:`~jaxgamma.makers.SafeMaskMaker`,
        :class:`~jaxgamma.makers.FoVBackgroundMaker`).
    stack_datasets : bool
        Stack into the reference dataset (one dataset out) or keep one per observation.
    n_jobs : int, optional
        Accepted for Gammapy compatibility; observations are reduced one after the other.
    cutout_mode : {"trim", "partial", "strict"}
        Mode of the cutout of the reference around each observation.
    cutout_width : float, str, Angle or (lon, lat) pair, optional
        Width (deg) of the cutouts; default twice the SafeMaskMaker's ``offset_max``, no cutout
        without one.
    progress : bool, optional
        Show the progress bar (default: when stderr is a terminal).

    After :meth:`run`, :attr:`background_models` lists the FoV background models fitted by a
    :class:`~jaxgamma.makers.FoVBackgroundMaker` (one per reduced observation, relative to the
    unscaled background; the returned datasets have them folded in).
    """

    tag = "DatasetsMaker"

    def __init__(
        self,
        makers: Any,
        stack_datasets: bool = True,
        n_jobs: int | None = None,
        cutout_mode: str = "trim",
        cutout_width: Any = None,
        progress: bool | None = None,
    ):
        self.makers = list(makers)
        for maker in self.makers:
            if not callable(getattr(maker, "run", None)):
                raise TypeError(f"DatasetsMaker: {maker!r} has no run(dataset, observation) method")
        if cutout_mode not in ("trim", "partial", "strict"):
            raise ValueError(
                f"DatasetsMaker: cutout_mode must be 'trim', 'partial' or 'strict', not {cutout_mode!r}"
            )
        self.cutout_mode = cutout_mode
        self.stack_datasets = bool(stack_datasets)
        self.n_jobs = n_jobs
        self.progress = progress
        if cutout_width is not None:
            cutout_width = Angle(cutout_width, "deg")
        elif self.offset_max is not None:
            cutout_width = 2 * self.offset_max
        self.cutout_width = cutout_width
        self.background_models: list[Any] = []

    def __repr__(self) -> str:
        return f"DatasetsMaker(makers={self.makers!r}, stack_datasets={self.stack_datasets})"

    @property
    def safe_mask_maker(self) -> SafeMaskMaker | None:
        return next((m for m in self.makers if isinstance(m, SafeMaskMaker)), None)

    @property
    def offset_max(self) -> Angle | None:
        maker = self.safe_mask_maker
        return None if maker is None else maker.offset_max

    def _cutout_width_deg(self) -> Any:
        width = self.cutout_width
        return float(width.deg) if np.ndim(width.deg) == 0 else tuple(float(w) for w in width.deg)

    def make_dataset(
        self, dataset: MapDataset, observation: Any, apply_cutout: bool = True
    ) -> MapDataset | None:
        """The reduced dataset of one observation (None when it lies outside the reference)."""
        from .map import _pointing_icrs

        if apply_cutout and self.cutout_width is not None:
            position = _pointing_icrs(observation).galactic
            try:
                dataset_obs = dataset.cutout(position, self._cutout_width_deg(), mode=self.cutout_mode)
            except NoOverlapError:
                log.warning(
                    f"{observation.obs_id} discarded because it is outside the FOV of the reference geom."
                )
                return None
        else:
            dataset_obs = dataset
        log.info(f"Computing dataset for observation {observation.obs_id}")
        for maker in self.makers:
            log.info(f"Running {maker.tag}")
            if isinstance(maker, FoVBackgroundMaker):
                dataset_obs, model = maker.run_with_model(dataset_obs)
                self.background_models.append(model)
            else:
                dataset_obs = maker.run(dataset_obs, observation)
        return dataset_obs

    def run(self, dataset: MapDataset, observations: Any, datasets: Any = None) -> Datasets:
        """Reduce the observations.

        Parameters
        ----------
        dataset : MapDataset
            Reference dataset (e.g. :meth:`MapDataset.create`): the geometry, and the dataset
            stacked into.
        observations : sequence of Observation
        datasets : sequence of MapDataset, optional
            One base dataset per observation (then no cutout is made).

        Returns
        -------
        Datasets
            ``[stacked]`` (named as the reference), or the observations' datasets in their order.
        """
        if not isinstance(dataset, MapDataset):
            raise TypeError(
                f"DatasetsMaker.run: invalid reference dataset {type(dataset).__name__} (a MapDataset is needed)"
            )
        observations = list(observations)
        apply_cutout = datasets is None
        if datasets is None:
            datasets = [dataset] * len(observations)
        else:
            datasets = list(datasets)
            if len(datasets) != len(observations):
                raise ValueError(
                    f"DatasetsMaker.run: {len(datasets)} base datasets for {len(observations)} observations"
                )
        self.background_models = []
        for maker in self.makers:
            if isinstance(maker, MapDatasetMaker):
                maker.reference_geom = dataset.geom.to_image()  # one object: its solid angles are cached
        stacked = dataset
        pending: list[MapDataset] = []
        reduced: list[MapDataset] = []
        with ProgressBar(len(observations), desc="Data reduction", enabled=self.progress) as bar:
            for base, observation in zip(datasets, observations, strict=True):
                result = self.make_dataset(base, observation, apply_cutout=apply_cutout)
                if result is not None:
                    if self.stack_datasets:
                        if isinstance(result, MapDatasetOnOff) and type(stacked) is MapDataset:
                            # as Gammapy's DatasetsMaker: background alpha * counts_off
                            result = result.to_map_dataset(name=result.name)
                        pending.append(result)
                        if len(pending) >= _STACK_CHUNK:
                            stacked, pending = stacked.stack(pending), []
                    else:
                        reduced.append(result)
                bar.update(1, label=str(observation.obs_id))
        if self.stack_datasets:
            if pending:
                stacked = stacked.stack(pending)
            return Datasets([stacked])
        return Datasets(reduced)
