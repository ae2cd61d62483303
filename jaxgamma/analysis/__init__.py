"""High-level, config-driven analysis (Gammapy's ``gammapy.analysis``): :class:`AnalysisConfig` and
:class:`Analysis`."""

from .config import AnalysisConfig, ConfigError, ConfigKeyError
from .core import Analysis

__all__ = ["Analysis", "AnalysisConfig", "ConfigError", "ConfigKeyError"]
