"""Reading and writing Gammapy-compatible files."""

from .models import models_from_dict, models_to_dict, read_models, write_models

__all__ = ["models_from_dict", "models_to_dict", "read_models", "write_models"]
