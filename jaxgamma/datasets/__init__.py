"""Datasets: immutable arrays plus static geometry; no models inside."""

from .core import Dataset, DatasetPlan, Datasets
from .flux_points import FluxPoints, FluxPointsDataset
from .map import MapDataset, MapDatasetOnOff
from .simulate import (
    MapDatasetEventSampler,
    ObservationEventSampler,
    create_empty_map_dataset_from_irfs,
    create_map_dataset_from_observation,
)
from .spectrum import SpectrumDataset, SpectrumDatasetOnOff, stack_onoff
from .split import split_dataset

__all__ = [
    "Dataset",
    "DatasetPlan",
    "Datasets",
    "FluxPoints",
    "FluxPointsDataset",
    "MapDataset",
    "MapDatasetEventSampler",
    "MapDatasetOnOff",
    "ObservationEventSampler",
    "SpectrumDataset",
    "SpectrumDatasetOnOff",
    "create_empty_map_dataset_from_irfs",
    "create_map_dataset_from_observation",
    "split_dataset",
    "stack_onoff",
]
