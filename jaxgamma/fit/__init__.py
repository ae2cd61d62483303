"""Fitting: the compiled minimiser and covariance, fit results, profile likelihood.

``jaxgamma.fit.fit(datasets, models)`` runs the optimizer loop and the covariance as one
jit-compiled program (see :mod:`jaxgamma.fit.optimize`); :mod:`jaxgamma.fit.confidence` gives
profile-likelihood intervals, statistic profiles and surfaces, and contours.

The module itself is callable (``jaxgamma.fit(datasets, models)`` is ``jaxgamma.fit.fit``), so that
``import jaxgamma as jg; jg.fit(...)`` and ``jg.fit.confidence(...)`` both work.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .confidence import confidence, stat_contour, stat_profile, stat_surface
from .covariance import correlation
from .nested import NestedModelSelection, select_nested_models
from .optimize import fit, fit_batch, minimize
from .result import BatchFitResult, FitResult

__all__ = [
    "BatchFitResult",
    "FitResult",
    "NestedModelSelection",
    "confidence",
    "correlation",
    "fit",
    "fit_batch",
    "minimize",
    "select_nested_models",
    "stat_contour",
    "stat_profile",
    "stat_surface",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> FitResult:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
