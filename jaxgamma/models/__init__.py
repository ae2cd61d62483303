"""Spectral, spatial and sky models, with Gammapy's names."""

from .core import ModelBase
from .sky import Covariance, FoVBackgroundModel, Models, SkyModel
from .spatial import PointSpatialModel, SpatialModel
from .spectral import (
    LogParabolaSpectralModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SpectralModel,
)

__all__ = [
    "Covariance",
    "FoVBackgroundModel",
    "LogParabolaSpectralModel",
    "ModelBase",
    "Models",
    "PointSpatialModel",
    "PowerLawNormSpectralModel",
    "PowerLawSpectralModel",
    "SkyModel",
    "SpatialModel",
    "SpectralModel",
]
