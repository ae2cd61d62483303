"""Estimators: quantities derived from datasets and models (Gammapy's ``gammapy.estimators``)."""

from .core import FluxMaps
from .excess import ExcessMapEstimator
from .points import FluxPointsEstimator

__all__ = ["ExcessMapEstimator", "FluxMaps", "FluxPointsEstimator"]
