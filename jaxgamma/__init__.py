"""jaxgamma: a JAX-based differentiable likelihood engine for gamma-ray astronomy.

Importing jaxgamma enables float64 in JAX (see ``jaxgamma._config``).
"""

from ._config import configure as _configure

_configure()

from . import fit, models  # noqa: E402
from .fit import FitResult, confidence, select_nested_models, stat_contour, stat_profile, stat_surface  # noqa: E402
from .io.datasets import read_datasets, write_datasets  # noqa: E402
from .io.models import read_models, write_models  # noqa: E402
from .likelihood import joint_stat, make_stat_function, plan_datasets  # noqa: E402
from .models import Models  # noqa: E402
from .parameters import Parameter, ParameterVector  # noqa: E402

__version__ = "0.1.0"

_LAZY = {"Analysis": "analysis", "AnalysisConfig": "analysis", "Sampler": "sampling", "SamplerResult": "sampling"}


def __getattr__(name: str) -> object:
    # the analysis layer (and the data reduction it pulls in) is imported on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "FitResult",
    "Models",
    "Parameter",
    "ParameterVector",
    "Sampler",
    "SamplerResult",
    "__version__",
    "confidence",
    "fit",
    "joint_stat",
    "make_stat_function",
    "models",
    "plan_datasets",
    "read_datasets",
    "read_models",
    "select_nested_models",
    "stat_contour",
    "stat_profile",
    "stat_surface",
    "write_datasets",
    "write_models",
]
