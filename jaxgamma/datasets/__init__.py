"""Datasets: immutable arrays plus static geometry; no models inside."""

from .core import Dataset, DatasetPlan, Datasets
from .spectrum import SpectrumDataset, SpectrumDatasetOnOff, stack_onoff

__all__ = ["Dataset", "DatasetPlan", "Datasets", "SpectrumDataset", "SpectrumDatasetOnOff", "stack_onoff"]
