"""Gammapy-compatible models YAML: ``read_models`` / ``write_models`` and their dict-level forms.

The format is Gammapy 2.1's (``DatasetModels.write``)::

    components:
    -   name: Crab Nebula
        type: SkyModel
        datasets_names: [Fermi-LAT]          # optional
        apply_irf: {psf: false}              # only when not all True
        spectral:
            type: LogParabolaSpectralModel
            parameters:
            -   name: amplitude
                value: 3.5e-11
                unit: TeV-1 s-1 cm-2
                error: 1.0e-12               # name, value, unit, error, min, max, frozen, interp,
                                             # scale_method, scale_transform
        spatial: {type: PointSpatialModel, frame: icrs, parameters: [...]}
        temporal: {type: ExpDecayTemporalModel, parameters: [...], scale: utc}
    -   type: FoVBackgroundModel
        datasets_names: [Fermi-LAT]
        spectral: {type: PowerLawNormSpectralModel, parameters: [...]}
    covariance: models_covariance.dat         # optional, next to the YAML

Reading converts every value to the model's canonical unit; missing parameters take the class
defaults and the order follows the class declaration. Bad input raises ``ValueError`` naming the
file, the component, the model and the parameter. Writing is atomic (:mod:`jaxgamma.io._atomic`).

Model classes that need more than their parameters in the file plug in with two hooks, looked up on
the class::

    def _to_yaml_dict(self, context: YamlContext) -> dict              # the model's own dict
    @classmethod
    def _from_yaml_dict(cls, data: dict, context: YamlContext) -> Model

:class:`YamlContext` gives them the parameter (de)serialisation, nested models, file resolution and
error messages. Gammapy's compound, scale, template and constant models are handled here without
hooks, against their constructors (see ``_HANDLERS``).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import equinox as eqx
import jax
import numpy as np
import yaml
from astropy.io import fits
from astropy.table import Table

from ..models.core import ModelBase
from ..models.core import replace_static as _replace_static
from ..models.registry import get_model_class
from ..models.sky import Covariance, FoVBackgroundModel, Models, SkyModel, TemplateNPredModel
from ..models.spatial import SpatialModel
from ..models.spectral_ebl import EBL_DATA_BUILTIN
from ..models.temporal import TemporalModel
from ..parameters import Parameter, drop_lone_links, iter_parameters, sync_links
from ..units import parse_unit
from ._atomic import atomic_paths, check_writable

__all__ = [
    "ModelsFileNotFoundError",
    "YamlContext",
    "model_from_dict",
    "model_to_dict",
    "models_from_dict",
    "models_to_dict",
    "models_to_yaml",
    "read_covariance",
    "read_models",
    "write_covariance",
    "write_models",
]

log = logging.getLogger(__name__)

YAML_FORMAT = {"sort_keys": False, "indent": 4, "width": 80, "default_flow_style": False}
COVARIANCE_FORMAT = {"format": "ascii.fixed_width", "delimiter": "|"}

_PARAMETER_KEYS = (
    "name", "value", "unit", "error", "min", "max", "frozen", "interp", "scale_method", "scale_transform",
)  # fmt: skip
# accepted as Gammapy's Parameter accepts them, but neither stored nor written (Gammapy never writes
# them either)
_IGNORED_PARAMETER_KEYS = (
    "is_norm",
    "scale",
    "scan_min",
    "scan_max",
    "scan_n_values",
    "scan_n_sigma",
    "scan_values",
)
_DROPPABLE = ("min", "max", "error", "interp", "scale_method", "scale_transform")
_SKY_KEYS = ("name", "type", "datasets_names", "apply_irf", "spectral", "spatial", "temporal")
_BKG_KEYS = ("name", "type", "datasets_names", "spectral", "spatial")
_NPRED_TEMPLATE_KEYS = ("name", "type", "datasets_names", "spectral", "spatial", "filename")
_TOP_KEYS = ("components", "covariance", "metadata", "checksum")


class ModelsFileNotFoundError(FileNotFoundError, ValueError):
    """A models (or covariance, or template) file that does not exist: both a ``FileNotFoundError``
    and a ``ValueError``, so that bad input is a ``ValueError`` throughout."""


# -- context: where we are (for messages) and where relative files live --------------------------------
@dataclasses.dataclass(frozen=True)
class YamlContext:
    """What a model (de)serialiser needs: options, the folder files are relative to, and a location
    for error messages.

    Attributes
    ----------
    origin : str
        The file (or "models dict") being read or written, for messages.
    base : Path
        Folder against which relative file names are resolved on read.
    full_output : bool
        Write every parameter key, not only those that differ from the class default.
    location : tuple of str
        Where in the file we are, e.g. ``("model 'Crab Nebula'", "spectral model PowerLawSpectralModel")``.
    """

    origin: str = "models dict"
    base: Path = Path()
    full_output: bool = False
    location: tuple[str, ...] = ()

    def at(self, *parts: str) -> YamlContext:
        return dataclasses.replace(self, location=self.location + parts)

    def where(self) -> str:
        return ", ".join((self.origin, *self.location))

    def error(self, message: str) -> ValueError:
        """A ``ValueError`` whose message starts with the file and the location."""
        return ValueError(f"{self.where()}: {message}")

    # -- files --------------------------------------------------------------------------------------
    def resolve(self, filename: Any) -> Path:
        """A file name from the YAML as Gammapy resolves it: relative to the YAML's folder if it
        exists there, else as given (environment variables expanded)."""
        given = Path(os.path.expandvars(os.fspath(filename)))
        candidate = self.base / given
        return candidate if candidate.exists() else given

    # -- parameters and nested models ---------------------------------------------------------------
    def parameters_to_list(
        self, model: ModelBase, defaults: Mapping[str, Parameter] | None = None
    ) -> list[dict[str, Any]]:
        """The ``parameters`` list of ``model``'s own parameters (nested models excluded); keys
        equal to the defaults (``{field: Parameter}``, the class's by default) are left out."""
        defaults = dict(_default_parameters(type(model))) if defaults is None else defaults
        return [
            _parameter_to_dict(p, defaults.get(field), self.full_output, self.at(f"parameter {p.name!r}"))
            for field, p in _own_parameters(model)
        ]

    def parameters_from_list(
        self, items: Any, defaults: Sequence[tuple[str, Parameter]], keep_nan: bool = False
    ) -> dict[str, Parameter]:
        """``{field name: Parameter}`` for the ``(field, default)`` pairs, updated from ``items``.

        Missing parameters keep their default; with ``keep_nan`` a NaN value in the file also keeps
        the default value (Gammapy's rule for the template position).
        """
        return _parameters_from_list(items, defaults, self, keep_nan=keep_nan)

    def model_to_dict(self, model: ModelBase, label: str = "") -> dict[str, Any]:
        """The dict of a nested model (without the ``spectral:``/``spatial:`` wrapper)."""
        return _model_body_to_dict(model, self.at(label) if label else self)

    def model_from_dict(self, data: Any, kind: str, label: str = "") -> ModelBase:
        """A nested model of ``kind`` from its dict (without the wrapper)."""
        return _model_from_body(data, kind, self.at(label) if label else self)


# -- parameters -----------------------------------------------------------------------------------------
def _default_parameters(cls: type) -> list[tuple[str, Parameter]]:
    """``(field name, class default)`` of a model class's own parameters, in declaration order."""
    return [(f.name, f.default) for f in dataclasses.fields(cls) if isinstance(f.default, Parameter)]


def _own_parameters(model: ModelBase) -> list[tuple[str, Parameter]]:
    return list(model._own_parameters())


def _unit_to_file(unit: str) -> str:
    # Gammapy writes ``unit.to_string("fits")``: "TeV-1 s-1 cm-2" for cm-2 s-1 TeV-1
    parsed = parse_unit(unit)
    try:
        return parsed.to_string("fits")
    except (ValueError, u.UnitsError):
        return parsed.to_string()


def _nan_if_infinite(x: float) -> float:
    return float(x) if math.isfinite(x) else math.nan


def _scalar(value: Any, context: YamlContext) -> float:
    if isinstance(value, jax.core.Tracer):
        raise context.error("cannot write a traced value; write the models outside jit")
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 0:
        raise context.error(f"value has shape {array.shape}; the models YAML holds scalars")
    return float(array)


def _parameter_to_dict(
    p: Parameter, default: Parameter | None, full_output: bool, context: YamlContext
) -> dict[str, Any]:
    data = _parameter_dict(p, _scalar(p.value, context))
    if full_output or default is None:
        return _with_prior(data, p)
    init = _parameter_dict(default, _scalar(default.value, context))
    for key in _DROPPABLE:
        if data[key] == init[key] or (
            isinstance(data[key], float) and math.isnan(data[key]) and math.isnan(init[key])
        ):
            del data[key]
    if data["frozen"] == init["frozen"]:
        del data["frozen"]
    if init["unit"] == "":
        del data["unit"]
    return _with_prior(data, p)


def _with_prior(data: dict[str, Any], p: Parameter) -> dict[str, Any]:
    # Gammapy writes the link label and the prior last, after the droppable keys are removed
    if p.link is not None:
        data["link"] = p.link
    if p.prior is not None:
        data["prior"] = p.prior.to_dict()
    return data


def _parameter_dict(p: Parameter, value: float) -> dict[str, Any]:
    # the key order Gammapy writes
    return {
        "name": p.name,
        "value": value,
        "unit": _unit_to_file(p.unit),
        "error": float(p.error),
        "min": _nan_if_infinite(p.min),
        "max": _nan_if_infinite(p.max),
        "frozen": bool(p.frozen),
        "interp": p.interp,
        "scale_method": p.scale_method,
        "scale_transform": "lin",
    }


def _number(
    item: Mapping[str, Any], key: str, context: YamlContext, allow_none: bool = False
) -> float | None:
    value = item[key]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise context.error(f"{key} must be a number, got {value!r}")
    try:
        # YAML 1.1 reads "1e-12" (no dot) as a string; Python's float() takes it
        return float(value)
    except ValueError:
        raise context.error(f"{key} must be a number, got {value!r}") from None


def _parameters_from_list(
    items: Any, defaults: Sequence[tuple[str, Parameter]], context: YamlContext, keep_nan: bool = False
) -> dict[str, Parameter]:
    if items is None:
        items = []
    if not isinstance(items, list):
        raise context.error(f"'parameters' must be a list, got {items!r}")
    by_name = {default.name: (field, default) for field, default in defaults}
    given: dict[str, Mapping[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping) or "name" not in item:
            raise context.error(f"each parameter must be a mapping with a 'name', got {item!r}")
        name = item["name"]
        if name not in by_name:
            raise context.error(f"unknown parameter {name!r}; expected {list(by_name)}")
        if name in given:
            raise context.error(f"parameter {name!r} is given twice")
        given[name] = item
    out = {}
    for field, default in defaults:
        item = given.get(default.name)
        if item is None:
            log.warning(
                "%s: parameter %r not defined in the file; using its default %s %s",
                context.where(), default.name, default.value, default.unit,
            )  # fmt: skip
            out[field] = default
        else:
            out[field] = _parameter_from_dict(
                item, default, context.at(f"parameter {default.name!r}"), keep_nan
            )
    return out


def _parameter_from_dict(
    item: Mapping[str, Any], default: Parameter, context: YamlContext, keep_nan: bool
) -> Parameter:
    unknown = set(item) - set(_PARAMETER_KEYS) - set(_IGNORED_PARAMETER_KEYS) - {"link", "prior"}
    if unknown:
        raise context.error(f"unknown keys {sorted(unknown)}; expected {list(_PARAMETER_KEYS)}")
    link = item.get("link")
    if link is not None and (not isinstance(link, str) or not link):
        raise context.error(f"link must be a label (a non-empty string), got {link!r}")

    factor = 1.0
    if item.get("unit") is not None:
        unit_text = item["unit"]
        try:
            unit = parse_unit(str(unit_text))
        except ValueError as err:
            raise context.error(f"cannot read unit {unit_text!r}: {err}") from None
        target = parse_unit(default.unit)
        if unit != target:
            try:
                factor = unit.to(target)
            except u.UnitConversionError:
                raise context.error(
                    f"unit {unit_text!r} does not convert to {_unit_to_file(default.unit) or 'dimensionless'!r}"
                ) from None

    def converted(key: str, fallback: float) -> float:
        if key not in item:
            return fallback
        value = _number(item, key, context, allow_none=key in ("min", "max", "error"))
        if value is None:
            return math.nan if key != "error" else 0.0
        return value * factor if factor != 1.0 else value

    value = converted("value", float(np.asarray(default.value)))
    if keep_nan and math.isnan(value):
        value = float(np.asarray(default.value))
    low = converted("min", _nan_if_infinite(default.min))
    high = converted("max", _nan_if_infinite(default.max))
    error = converted("error", default.error)

    frozen = item.get("frozen", default.frozen)
    if not isinstance(frozen, bool):
        raise context.error(f"frozen must be true or false, got {frozen!r}")
    interp = item.get("interp", default.interp)
    if interp not in ("lin", "log"):
        raise context.error(f"interp {interp!r} is not supported (expected 'lin' or 'log')")
    scale_method = item.get("scale_method", default.scale_method)
    if scale_method not in ("scale10", "factor1"):
        raise context.error(
            f"scale_method {scale_method!r} is not supported (expected 'scale10' or 'factor1')"
        )
    scale_transform = item.get("scale_transform", "lin")
    if scale_transform != "lin":
        raise context.error(f"scale_transform {scale_transform!r} is not supported yet (only 'lin')")

    prior = None
    if item.get("prior") not in (None, ""):
        from ..models.prior import prior_from_dict

        try:
            prior = prior_from_dict(item["prior"], factor)
        except ValueError as err:
            raise context.error(f"prior: {err}") from None
        if prior.bounds is not None:  # Gammapy's min / max are the uniform prior's
            low, high = prior.bounds
    if not math.isnan(low) and not math.isnan(high) and low > high:
        raise context.error(f"min {low} > max {high}")
    if (not math.isnan(low) and value < low) or (not math.isnan(high) and value > high):
        raise context.error(
            f"value {value} outside its bounds [{low}, {high}] ({default.unit or 'dimensionless'})"
        )
    try:
        return Parameter(
            default.name,
            value,
            default.unit,
            min=low,
            max=high,
            frozen=frozen,
            interp=interp,
            scale_method=scale_method,
            error=error,
            prior=prior,
            link=link,
        )
    except ValueError as err:
        raise context.error(str(err)) from None


# -- single models ----------------------------------------------------------------------------------------
def _kind_of(model: Any) -> str:
    from ..models.spectral import SpectralModel

    if isinstance(model, SpectralModel):
        return "spectral"
    if isinstance(model, SpatialModel):
        return "spatial"
    if isinstance(model, TemporalModel):
        return "temporal"
    raise TypeError(f"not a spectral, spatial or temporal model: {type(model).__name__}")


def _with_parameters(model: Any, parameters: Mapping[str, Parameter]) -> Any:
    for field, p in parameters.items():

        def where(m: Any, f: str = field) -> Any:
            return getattr(m, f)

        model = eqx.tree_at(where, model, p)
    return model


def _construct(cls: type, context: YamlContext, *args: Any, **kwargs: Any) -> Any:
    try:
        return cls(*args, **kwargs)
    except (ValueError, TypeError) as err:
        raise context.error(f"cannot build {cls.__name__}: {err}") from None


def _generic_to_dict(model: ModelBase, context: YamlContext) -> dict[str, Any]:
    allowed = {"frame"} if isinstance(model, SpatialModel) else {"scale"} if isinstance(model, TemporalModel) else set()
    extra = [
        f.name
        for f in dataclasses.fields(model)
        if f.name not in allowed and not isinstance(getattr(model, f.name), Parameter)
    ]
    if extra:
        raise context.error(
            f"{type(model).__name__} holds {extra}, which the models YAML writer does not know how to "
            "write; give the class _to_yaml_dict/_from_yaml_dict hooks (see jaxgamma.io.models)"
        )
    data: dict[str, Any] = {"type": model.type_name}
    if isinstance(model, SpatialModel):
        data["frame"] = model.frame
    data["parameters"] = context.parameters_to_list(model)
    if isinstance(model, TemporalModel):
        data["scale"] = model.scale
    return data


def _generic_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> ModelBase:
    parameters = context.parameters_from_list(data.get("parameters"), _default_parameters(cls))
    kwargs: dict[str, Any] = dict(parameters)
    if issubclass(cls, SpatialModel) and "frame" in data:
        kwargs["frame"] = data["frame"]
    if issubclass(cls, TemporalModel) and "scale" in data:
        kwargs["scale"] = data["scale"]
    return _construct(cls, context, **kwargs)


# Gammapy models whose file entry is more than their parameters. Written against the agreed
# constructors: CompoundSpectralModel(model1, model2, operator: str), ScaleSpectralModel(model=...,
# norm=...), TemplateSpatialModel.read(filename, normalize=...) with a static ``filename``.
def _compound_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    operator = model.operator
    operator = operator if isinstance(operator, str) else operator.__name__
    return {
        "type": model.type_name,
        "model1": context.model_to_dict(model.model1, "model1"),
        "model2": context.model_to_dict(model.model2, "model2"),
        "operator": operator,
    }


def _compound_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> Any:
    for key in ("model1", "model2", "operator"):
        if key not in data:
            raise context.error(f"{cls.__name__} needs {key!r}")
    if not isinstance(data["operator"], str):
        raise context.error(f"operator must be a name such as 'add' or 'mul', got {data['operator']!r}")
    model1 = context.model_from_dict(data["model1"], "spectral", "model1")
    model2 = context.model_from_dict(data["model2"], "spectral", "model2")
    return _construct(cls, context, model1, model2, data["operator"])


def _scale_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    # Gammapy writes only the norm (and cannot read its own ScaleSpectralModel back); the wrapped
    # model is written under "model" so that the file is complete
    return {
        "type": model.type_name,
        "parameters": context.parameters_to_list(model),
        "model": context.model_to_dict(model.model, "model"),
    }


def _scale_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> Any:
    if "model" not in data:
        raise context.error(f"{cls.__name__} needs the wrapped spectral 'model'")
    inner = context.model_from_dict(data["model"], "spectral", "model")
    parameters = context.parameters_from_list(data.get("parameters"), _default_parameters(cls))
    return _construct(cls, context, model=inner, **parameters)


def _template_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    filename = getattr(model, "filename", None)
    if filename is None:
        raise context.error(
            f"{type(model).__name__} has no filename to write (write its map to a file first)"
        )
    data = {
        "type": model.type_name,
        "frame": model.frame,
        "parameters": context.parameters_to_list(model),
        "filename": os.fspath(filename),
        "normalize": bool(getattr(model, "normalize", True)),
    }
    unit = getattr(model, "unit", None)
    if unit is not None:
        data["unit"] = str(unit)
    return data


def _data_file(cls: Any, data: Mapping[str, Any], context: YamlContext, what: str) -> tuple[Any, Path]:
    """The ``filename`` of a model entry as written and its resolved path (which must exist)."""
    if "filename" not in data:
        raise context.error(f"{cls.__name__} needs a 'filename'")
    filename = data["filename"]
    path = context.resolve(filename)
    if not path.exists():
        raise ModelsFileNotFoundError(
            2, f"{context.where()}: {what} {str(filename)!r} not found (looked in {str(context.base)!r} "
            "and the current folder)", os.fspath(path),
        )  # fmt: skip
    return filename, path


def _normalize_flag(data: Mapping[str, Any], context: YamlContext) -> bool:
    normalize = data.get("normalize", True)
    if not isinstance(normalize, bool):
        raise context.error(f"normalize must be true or false, got {normalize!r}")
    return normalize


def _template_from_dict(cls: Any, data: Mapping[str, Any], context: YamlContext) -> Any:
    normalize = _normalize_flag(data, context)
    filename, path = _data_file(cls, data, context, "template file")
    try:
        model = cls.read(os.fspath(path), normalize=normalize)
    except (ValueError, TypeError, OSError) as err:
        raise context.error(f"cannot read template {str(path)!r}: {err}") from None
    if getattr(model, "filename", None) != filename:
        model = _replace_static(model, filename=filename)  # written back as given
    # the map's centre is the default position (Gammapy: NaN in the file also means the centre)
    parameters = context.parameters_from_list(data.get("parameters"), _own_parameters(model), keep_nan=True)
    return _with_parameters(model, parameters)


def _constant_to_dict(model: ModelBase, context: YamlContext) -> dict[str, Any]:
    # Gammapy writes no frame for the constant spatial models. It also drops the (frozen) ``value``
    # of ConstantSpatialModel, but reads it; it is written here so that nothing is lost.
    return {"type": model.type_name, "parameters": context.parameters_to_list(model)}


def _constant_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> ModelBase:
    parameters = context.parameters_from_list(data.get("parameters"), _default_parameters(cls))
    return _construct(cls, context, **parameters)


def _template_spectral_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": model.type_name,
        "parameters": context.parameters_to_list(model),
        "energy": {"data": np.asarray(model.energy, dtype=np.float64).tolist(), "unit": "TeV"},
        "values": {
            "data": np.asarray(model.data, dtype=np.float64).tolist(),
            "unit": _unit_to_file(model.values_unit),
        },
    }
    if model.interp_kwargs:
        # not written by Gammapy (which ignores the key and reads every template with its defaults)
        data["interp_kwargs"] = model.interp_kwargs
    return data


def _quantity_array(data: Mapping[str, Any], key: str, context: YamlContext) -> u.Quantity:
    entry = data.get(key)
    if not isinstance(entry, Mapping) or "data" not in entry:
        raise context.error(f"{key!r} must be a mapping with 'data' and 'unit', got {entry!r}")
    try:
        return u.Quantity(np.asarray(entry["data"], dtype=np.float64), parse_unit(entry.get("unit") or ""))
    except (TypeError, ValueError) as err:
        raise context.error(f"cannot read {key!r}: {err}") from None


def _template_spectral_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> Any:
    if data.get("parameters"):
        raise context.error(f"{cls.__name__} has no parameters, got {data['parameters']!r}")
    energy = _quantity_array(data, "energy", context)
    values = _quantity_array(data, "values", context)
    interp_kwargs = data.get("interp_kwargs")
    if interp_kwargs is not None and not isinstance(interp_kwargs, Mapping):
        raise context.error(f"interp_kwargs must be a mapping, got {interp_kwargs!r}")
    return _construct(cls, context, energy=energy, values=values, interp_kwargs=interp_kwargs)


def _piecewise_norm_defaults(n: int) -> dict[str, Parameter]:
    return {f"norm_{k}": Parameter(f"norm_{k}", 1.0) for k in range(n)}


def _piecewise_norm_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    defaults = _piecewise_norm_defaults(len(model.norm_parameters))
    return {
        "type": model.type_name,
        "parameters": context.parameters_to_list(model, defaults),
        "energy": {"data": np.asarray(model.energy, dtype=np.float64).tolist(), "unit": "TeV"},
        "interp": model.interp,
    }


def _node_norms_from_dict(data: Mapping[str, Any], n_nodes: int, context: YamlContext, node: str) -> list[Parameter]:
    """The norm_0, norm_1, ... parameters of a piecewise-norm model: one per node."""
    items = data.get("parameters")
    if not isinstance(items, list) or len(items) != n_nodes:
        raise context.error(f"one parameter per {node} expected ({n_nodes} nodes), got parameters {items!r}")
    defaults = list(_piecewise_norm_defaults(n_nodes).items())
    return list(context.parameters_from_list(items, defaults).values())


def _piecewise_norm_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> Any:
    energy = _quantity_array(data, "energy", context)
    norms = _node_norms_from_dict(data, energy.size, context, "energy node")
    return _construct(cls, context, energy=energy, norms=norms, interp=data.get("interp", "log"))


def _piecewise_norm_spatial_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    defaults = _piecewise_norm_defaults(len(model.norm_parameters))
    data = {
        "type": model.type_name,
        "frame": model.frame,
        "parameters": context.parameters_to_list(model, defaults),
        "lon": {"data": np.asarray(model.lon, dtype=np.float64).tolist(), "unit": "deg"},
        "lat": {"data": np.asarray(model.lat, dtype=np.float64).tolist(), "unit": "deg"},
    }
    if model.interp != "lin":
        data["interp"] = model.interp  # Gammapy writes no interp (and reads every model as "lin")
    return data


def _piecewise_norm_spatial_from_dict(cls: type, data: Mapping[str, Any], context: YamlContext) -> Any:
    lon, lat = _quantity_array(data, "lon", context), _quantity_array(data, "lat", context)
    norms = _node_norms_from_dict(data, lon.size, context, "node")
    kwargs = {"norms": norms, "interp": data.get("interp", "lin"), "frame": data.get("frame", "icrs")}
    return _construct(cls, context, (lon, lat), **kwargs)


def _ebl_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    data: dict[str, Any] = {"type": model.type_name, "parameters": context.parameters_to_list(model)}
    if model.filename is not None:
        data["filename"] = model.filename
    else:
        data["energy"] = {"data": np.asarray(model.energy, dtype=np.float64).tolist(), "unit": "TeV"}
        data["param"] = {"data": np.asarray(model.param, dtype=np.float64).tolist(), "unit": ""}
        data["values"] = {"data": np.asarray(model.data, dtype=np.float64).tolist(), "unit": ""}
    return data


def _ebl_from_dict(cls: Any, data: Mapping[str, Any], context: YamlContext) -> Any:
    parameters = context.parameters_from_list(data.get("parameters"), _default_parameters(cls))
    if "filename" in data:
        path = context.resolve(data["filename"])
        if not path.exists():
            # Gammapy's fallback: a built-in table named like the file
            builtin = [ref for ref, name in EBL_DATA_BUILTIN.items() if Path(name).stem in str(data["filename"])]
            if not builtin:
                raise context.error(f"EBL table file {data['filename']!r} not found (looked for {path})")
            path = Path(os.path.expandvars(EBL_DATA_BUILTIN[builtin[0]]))
        try:
            model = cls.read(path)
        except (OSError, ValueError) as err:
            raise context.error(str(err)) from None
        return _with_parameters(model, parameters)
    arrays = {key: _quantity_array(data, key, context) for key in ("energy", "param", "values")}
    model = _construct(cls, context, arrays["energy"], arrays["param"], arrays["values"])
    return _with_parameters(model, parameters)


_Writer = Callable[[Any, YamlContext], dict]
_Reader = Callable[[type, Mapping[str, Any], YamlContext], Any]


def _temporal_file_to_dict(model: Any, context: YamlContext, **extra: Any) -> dict[str, Any]:
    """Gammapy's entry of a temporal model read from a table: type, parameters, scale, filename,
    then ``extra``."""
    if model.filename is None:
        raise context.error(
            f"{type(model).__name__} has no filename to write (write its table first: "
            "model = model.write('table.fits'))"
        )
    return {
        "type": model.type_name,
        "parameters": context.parameters_to_list(model),
        "scale": model.scale,
        "filename": os.fspath(model.filename),
        **extra,
    }


def _light_curve_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    return _temporal_file_to_dict(model, context, format="table", unit="")


def _light_curve_from_dict(cls: Any, data: Mapping[str, Any], context: YamlContext) -> Any:
    fmt = data.get("format", "table")
    if fmt != "table":
        raise context.error(
            f"format {fmt!r} (an energy-dependent light-curve template) is not supported; only 'table'"
        )
    filename, path = _data_file(cls, data, context, "light-curve template")
    try:
        model = cls.read(os.fspath(path))
    except (ValueError, TypeError, OSError) as err:
        raise context.error(f"cannot read light-curve template {str(path)!r}: {err}") from None
    # as Gammapy: only the file is read (t_ref from its header, UTC); the YAML's parameters and
    # scale are not used
    return _replace_static(model, filename=os.fspath(filename))


def _phase_curve_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    return _temporal_file_to_dict(model, context, normalize=bool(model.normalize))


def _phase_curve_from_dict(cls: Any, data: Mapping[str, Any], context: YamlContext) -> Any:
    normalize = _normalize_flag(data, context)
    filename, path = _data_file(cls, data, context, "phase curve")
    parameters = context.parameters_from_list(data.get("parameters"), _default_parameters(cls))
    try:
        model = cls.read(os.fspath(path), normalize=normalize, **parameters)
    except (ValueError, TypeError, OSError) as err:
        raise context.error(f"cannot read phase curve {str(path)!r}: {err}") from None
    # as Gammapy, the scale is not read back (UTC)
    return _replace_static(model, filename=filename)


_HANDLERS: dict[str, tuple[_Writer, _Reader]] = {
    "LightCurveTemplateTemporalModel": (_light_curve_to_dict, _light_curve_from_dict),
    "TemplatePhaseCurveTemporalModel": (_phase_curve_to_dict, _phase_curve_from_dict),
    "CompoundSpectralModel": (_compound_to_dict, _compound_from_dict),
    "ScaleSpectralModel": (_scale_to_dict, _scale_from_dict),
    "TemplateSpatialModel": (_template_to_dict, _template_from_dict),
    "ConstantSpatialModel": (_constant_to_dict, _constant_from_dict),
    "ConstantFluxSpatialModel": (_constant_to_dict, _constant_from_dict),
    "TemplateSpectralModel": (_template_spectral_to_dict, _template_spectral_from_dict),
    "PiecewiseNormSpectralModel": (_piecewise_norm_to_dict, _piecewise_norm_from_dict),
    "PiecewiseNormSpatialModel": (_piecewise_norm_spatial_to_dict, _piecewise_norm_spatial_from_dict),
    "EBLAbsorptionNormSpectralModel": (_ebl_to_dict, _ebl_from_dict),
}


def _model_body_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    if not isinstance(model, ModelBase):
        raise context.error(f"expected a spectral, spatial or temporal model, got {type(model).__name__}")
    context = context.at(f"{_kind_of(model)} model {model.type_name}")
    hook = getattr(type(model), "_to_yaml_dict", None)
    if hook is not None:
        return hook(model, context)
    writer = _HANDLERS.get(model.type_name, (_generic_to_dict, None))[0]
    return writer(model, context)


def _model_from_body(data: Any, kind: str, context: YamlContext) -> ModelBase:
    if not isinstance(data, Mapping):
        raise context.error(f"the {kind} model must be a mapping, got {data!r}")
    if "type" not in data:
        raise context.error(f"the {kind} model has no 'type'")
    try:
        cls = get_model_class(data["type"], kind)
    except ValueError as err:
        raise context.error(str(err)) from None
    context = context.at(f"{kind} model {cls.tag[0]}")
    hook = getattr(cls, "_from_yaml_dict", None)
    if hook is not None:
        return hook(data, context)
    reader = _HANDLERS.get(cls.tag[0], (None, _generic_from_dict))[1]
    return reader(cls, data, context)


def model_to_dict(model: ModelBase, full_output: bool = False) -> dict[str, Any]:
    """A spectral, spatial or temporal model as Gammapy's ``model.to_dict()``: ``{"spectral": {...}}``."""
    return {_kind_of(model): _model_body_to_dict(model, YamlContext(full_output=full_output))}


def model_from_dict(data: Mapping[str, Any], kind: str | None = None, path: Any = None) -> ModelBase:
    """A spectral, spatial or temporal model from ``{"spectral": {...}}`` (or the inner dict and
    ``kind``)."""
    if kind is None:
        if not isinstance(data, Mapping) or len(data) != 1 or next(iter(data)) not in ("spectral", "spatial", "temporal"):
            raise ValueError(f"expected {{'spectral': ...}}, {{'spatial': ...}} or {{'temporal': ...}}, got {data!r}")
        kind, data = next(iter(data.items()))
    return _model_from_body(data, kind, YamlContext(base=_base(path)))


# -- components -------------------------------------------------------------------------------------------
def _component_to_dict(model: Any, context: YamlContext) -> dict[str, Any]:
    if isinstance(model, SkyModel):
        context = context.at(f"model {model.name!r}")
        data: dict[str, Any] = {"name": model.name, "type": "SkyModel"}
        if model.apply_irf != SkyModel._DEFAULT_APPLY_IRF:
            data["apply_irf"] = dict(model.apply_irf)
        if model.datasets_names is not None:
            data["datasets_names"] = list(model.datasets_names)
        data["spectral"] = _model_body_to_dict(model.spectral_model, context)
        if model.spatial_model is not None:
            data["spatial"] = _model_body_to_dict(model.spatial_model, context)
        if model.temporal_model is not None:
            data["temporal"] = _model_body_to_dict(model.temporal_model, context)
        return data
    if isinstance(model, FoVBackgroundModel):
        context = context.at(f"model {model.name!r}")
        data = {"type": "FoVBackgroundModel", "datasets_names": list(model.datasets_names)}
        data["spectral"] = _model_body_to_dict(model.spectral_model, context)
        if model.spatial_model is not None:
            data["spatial"] = _model_body_to_dict(model.spatial_model, context)
        return data
    if isinstance(model, TemplateNPredModel):
        context = context.at(f"model {model.name!r}")
        if model.filename is None:
            raise context.error("a TemplateNPredModel needs a filename to be written (its map's file)")
        data = {"name": model.name, "type": "TemplateNPredModel"}
        if model.spatial_model is not None:
            data["spatial"] = _model_body_to_dict(model.spatial_model, context)
        data["spectral"] = _model_body_to_dict(model.spectral_model, context)
        data["filename"] = model.filename
        if model.datasets_names is not None:
            data["datasets_names"] = list(model.datasets_names)
        return data
    raise context.error(
        f"cannot write a {type(model).__name__}: Models holds SkyModel, FoVBackgroundModel and "
        "TemplateNPredModel"
    )


def _plain(data: Any) -> Any:
    """A deep copy made of plain dicts and lists (yaml.safe_dump refuses tuples and numpy scalars)."""
    if isinstance(data, Mapping):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    if isinstance(data, np.generic):
        return data.item()
    return data


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], context: YamlContext, what: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise context.error(f"unknown keys {unknown} in a {what}; expected {list(allowed)}")


def _optional_model(data: Mapping[str, Any], kind: str, context: YamlContext) -> ModelBase | None:
    return None if data.get(kind) is None else _model_from_body(data[kind], kind, context)


def _datasets_names(data: Mapping[str, Any], context: YamlContext) -> list[str] | None:
    names = data.get("datasets_names")
    if names is None:
        return None
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, (str, int)) for n in names):
        raise context.error(f"'datasets_names' must be a list of names, got {data['datasets_names']!r}")
    return [str(n) for n in names]


def _named_component(
    data: Mapping[str, Any], index: int, context: YamlContext, kind: str, keys: Sequence[str]
) -> tuple[str, YamlContext]:
    """The name of a component that needs one and the context naming it, its keys checked."""
    if "name" not in data:
        raise context.at(f"component {index}").error(f"a {kind} needs a 'name'")
    name = str(data["name"])
    context = context.at(f"model {name!r}")
    _check_keys(data, keys, context, kind)
    return name, context


def _sky_model_from_dict(data: Mapping[str, Any], index: int, context: YamlContext) -> SkyModel:
    name, context = _named_component(data, index, context, "SkyModel", _SKY_KEYS)
    if "spectral" not in data:
        raise context.error("a SkyModel needs a 'spectral' model")
    spectral = _model_from_body(data["spectral"], "spectral", context)
    spatial = _optional_model(data, "spatial", context)
    temporal = _optional_model(data, "temporal", context)
    apply_irf = data.get("apply_irf")
    if apply_irf is not None and not isinstance(apply_irf, Mapping):
        raise context.error(f"'apply_irf' must be a mapping, got {apply_irf!r}")
    return _construct(
        SkyModel,
        context,
        spectral_model=spectral,
        spatial_model=spatial,
        temporal_model=temporal,
        name=name,
        datasets_names=_datasets_names(data, context),
        apply_irf=apply_irf,
    )


def _background_model_from_dict(
    data: Mapping[str, Any], index: int, context: YamlContext
) -> FoVBackgroundModel:
    names = _datasets_names(data, context.at(f"component {index}"))
    if names is None or len(names) != 1:
        raise context.at(f"component {index}").error(
            f"a FoVBackgroundModel needs exactly one dataset in 'datasets_names', got {names!r}"
        )
    dataset_name = names[0]
    context = context.at(f"model {dataset_name + '-bkg'!r}")
    _check_keys(data, _BKG_KEYS, context, "FoVBackgroundModel")
    if "name" in data and data["name"] != f"{dataset_name}-bkg":
        raise context.error(f"a FoVBackgroundModel is named '<dataset>-bkg', not {data['name']!r}")
    return _construct(
        FoVBackgroundModel,
        context,
        dataset_name=dataset_name,
        spectral_model=_optional_model(data, "spectral", context),
        spatial_model=_optional_model(data, "spatial", context),
    )


def _npred_template_from_dict(data: Mapping[str, Any], index: int, context: YamlContext) -> TemplateNPredModel:
    name, context = _named_component(data, index, context, "TemplateNPredModel", _NPRED_TEMPLATE_KEYS)
    filename, path = _data_file(TemplateNPredModel, data, context, "template map")
    try:
        model = TemplateNPredModel.read(
            os.fspath(path),
            name=name,
            filename=filename,
            datasets_names=_datasets_names(data, context),
            spectral_model=_optional_model(data, "spectral", context),
            spatial_model=_optional_model(data, "spatial", context),
        )
    except (ValueError, TypeError, OSError) as err:
        raise context.error(f"cannot read template map {str(path)!r}: {err}") from None
    return model


def npred_template_maps(models: Models, overwrite_templates: bool, where: Any) -> list[tuple[Path, fits.HDUList]]:
    """``(path, HDU list)`` of the template npred maps to write with ``models``: each
    :class:`~jaxgamma.models.TemplateNPredModel`'s ``filename`` (as given: relative to the current
    folder, where Gammapy writes it) that does not exist yet, or every one with
    ``overwrite_templates``; an existing one is otherwise kept, with a logged warning (Gammapy's)."""
    maps = []
    for m in models:
        if not isinstance(m, TemplateNPredModel):
            continue
        if m.filename is None:
            raise ValueError(f"{where}: TemplateNPredModel {m.name!r} needs a filename to be written")
        map_path = Path(os.path.expandvars(m.filename))
        if map_path.exists() and not overwrite_templates:
            log.warning("%s: template file %s already exists and overwrite_templates is False", where, map_path)
            continue
        maps.append((map_path, npred_template_hdulist(m)))
    return maps


def npred_template_hdulist(model: TemplateNPredModel) -> fits.HDUList:
    """The map of a :class:`~jaxgamma.models.TemplateNPredModel` as Gammapy's ``Map.write`` writes
    it: a primary image and its ``PRIMARY_BANDS`` table."""
    from ..irf._core import map_to_hdus

    image, bands = map_to_hdus(model.data, model.geom, "", "PRIMARY")
    header = image.header.copy()
    for key in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME"):
        header.remove(key, ignore_missing=True)
    return fits.HDUList([fits.PrimaryHDU(np.asarray(model.data), header=header), bands])


def _component_from_dict(data: Any, index: int, context: YamlContext) -> Any:
    if not isinstance(data, Mapping):
        raise context.at(f"component {index}").error(f"a component must be a mapping, got {data!r}")
    kind = data.get("type")
    if kind == "SkyModel":
        return _sky_model_from_dict(data, index, context)
    if kind == "FoVBackgroundModel":
        return _background_model_from_dict(data, index, context)
    if kind == "TemplateNPredModel":
        return _npred_template_from_dict(data, index, context)
    where = context.at(f"component {index}" + (f" ({data['name']!r})" if "name" in data else ""))
    raise where.error(
        f"unknown model type {kind!r}; known component types: ['SkyModel', 'FoVBackgroundModel', 'TemplateNPredModel']"
    )


# -- collections ------------------------------------------------------------------------------------------
def _base(path: Any) -> Path:
    return Path() if path is None else Path(os.path.expandvars(os.fspath(path)))


def models_to_dict(
    models: Any, full_output: bool = False, covariance_file: str | None = None
) -> dict[str, Any]:
    """``{"components": [...]}`` (and ``"covariance": covariance_file`` when given), as Gammapy's
    ``Models.to_dict``."""
    return _models_to_dict(Models(models), YamlContext(full_output=full_output), covariance_file)


def _models_to_dict(models: Models, context: YamlContext, covariance_file: str | None) -> dict[str, Any]:
    models = drop_lone_links(models)  # a label is written where two or more parameters share it
    data: dict[str, Any] = {"components": [_component_to_dict(m, context) for m in models]}
    if covariance_file is not None:
        data["covariance"] = covariance_file
    return data


def models_from_dict(data: Any, path: Any = None) -> Models:
    """A :class:`Models` from Gammapy's models dict.

    Parameters
    ----------
    data : dict
        ``{"components": [...], "covariance": file (optional)}``.
    path : str or Path, optional
        Folder against which relative file names (templates, covariance) are resolved first
        (Gammapy's ``path``); the current folder otherwise.
    """
    return _models_from_dict(data, YamlContext(base=_base(path)))


def _models_from_dict(data: Any, context: YamlContext) -> Models:
    if not isinstance(data, Mapping):
        raise context.error(f"expected a mapping with 'components', got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, context, "models file")
    if "components" not in data:
        raise context.error("no 'components'")
    components = data["components"] or []
    if not isinstance(components, list):
        raise context.error(f"'components' must be a list, got {components!r}")
    models = [_component_from_dict(c, i, context) for i, c in enumerate(components)]
    try:
        # linked parameters: every copy takes its label's first occurrence, as Gammapy's reader
        # (one shared object) does
        result = Models(sync_links(tuple(models)))
    except ValueError as err:
        raise context.error(str(err)) from None
    if data.get("covariance") is not None:
        filename = data["covariance"]
        path = context.resolve(filename)
        result = result.with_covariance(read_covariance(path, result))
    return result


def models_to_yaml(models: Any, full_output: bool = False, covariance_file: str | None = None) -> str:
    """The YAML text :func:`write_models` writes (with a ``metadata`` block as Gammapy's)."""
    return _dump(models_to_dict(models, full_output, covariance_file))


def _dump(data: dict[str, Any]) -> str:
    from .. import __version__

    metadata = {
        "creator": f"jaxgamma {__version__}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "origin": None,
    }
    return yaml.safe_dump(data, **YAML_FORMAT) + yaml.safe_dump({"metadata": metadata}, **YAML_FORMAT)


def read_models(path: Any) -> Models:
    """Read a Gammapy models YAML file (and its covariance file, if it names one).

    Raises
    ------
    ValueError
        For any bad input (malformed YAML, unknown model type or parameter, units that do not
        convert, bounds, a missing covariance or template file), naming the file, the model and the
        parameter. A missing models file raises :class:`ModelsFileNotFoundError`, which is both a
        ``FileNotFoundError`` and a ``ValueError``.
    """
    path = _base(path)
    origin = f"models file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelsFileNotFoundError(2, f"{origin}: no such file", os.fspath(path)) from None
    except (IsADirectoryError, UnicodeDecodeError) as err:
        raise ValueError(f"{origin}: cannot read it: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{origin}: malformed YAML: {err}") from None
    return _models_from_dict(data, YamlContext(origin=origin, base=path.parent))


def write_models(
    path: Any,
    models: Any,
    overwrite: bool = False,
    full_output: bool = False,
    overwrite_templates: bool = False,
) -> None:
    """Write models as Gammapy's models YAML, atomically.

    When ``models.covariance`` is set, the covariance is written next to the YAML as
    ``<stem>_covariance.dat`` (Gammapy's name and format) and named under ``covariance:``.

    The maps of :class:`~jaxgamma.models.TemplateNPredModel` components are written to their
    ``filename`` (as given: relative to the current folder, as Gammapy writes them) when that file
    does not exist yet, or always with ``overwrite_templates``; an existing one is otherwise left as
    it is, with a logged warning (Gammapy's behaviour).

    Raises
    ------
    FileExistsError
        If the YAML (or covariance) file exists and ``overwrite`` is False (an ``OSError``, as the
        ``IOError`` Gammapy raises). Nothing is written then, nor when any other error occurs.
    """
    models = Models(models)
    path = _base(path)
    if models.penalties:
        log.warning(
            "%s: the models' %d penalties are not written (Gammapy's models YAML has no place for them); "
            "set them again with Models.set_penalties after reading",
            path,
            len(models.penalties),
        )
    context = YamlContext(origin=f"models file {str(path)!r}", base=path.parent, full_output=full_output)
    write_cov = models.covariance is not None and len(models.parameters) > 0
    cov_path = path.with_name(path.stem + "_covariance.dat") if write_cov else None
    targets = [path] if cov_path is None else [path, cov_path]
    check_writable(targets, overwrite)
    # build everything before touching the disk
    text = _dump(_models_to_dict(models, context, None if cov_path is None else cov_path.name))
    table = None if cov_path is None else _covariance_table(models, context)
    maps = npred_template_maps(models, overwrite_templates, path)
    with atomic_paths(*targets, *(p for p, _ in maps), overwrite=True) as temporaries:
        temporaries[0].write_text(text, encoding="utf-8")
        if table is not None:
            table.write(temporaries[1], overwrite=True, **COVARIANCE_FORMAT)
        for tmp, (_, hdulist) in zip(temporaries[len(targets) :], maps, strict=True):
            hdulist.writeto(tmp, overwrite=True)


# -- covariance -------------------------------------------------------------------------------------------
def _parameter_names(models: Models) -> list[str]:
    return [name for name, _ in iter_parameters(models)]


def _covariance_table(models: Models, context: YamlContext) -> Table:
    names = _parameter_names(models)
    covariance = models.covariance
    if covariance is None:
        raise context.error("the models have no covariance")
    if list(covariance.names) != names:
        missing = [n for n in names if n not in covariance.names]
        if missing:
            raise context.error(f"the covariance does not cover the parameters {missing}")
        covariance = covariance.get_subcovariance(names)
    table = Table()
    table["Parameters"] = names
    for idx in range(len(names)):
        table[str(idx)] = covariance.matrix[idx]
    return table


def write_covariance(path: Any, models: Any, overwrite: bool = False) -> None:
    """Write ``models.covariance`` in Gammapy's covariance format (astropy ``ascii.fixed_width``,
    ``|`` delimited, a ``Parameters`` column of ``"<model>.<type>.<par>"`` then ``0..N-1``)."""
    models = Models(models)
    path = _base(path)
    table = _covariance_table(models, YamlContext(origin=f"covariance file {str(path)!r}"))
    with atomic_paths(path, overwrite=overwrite) as (tmp,):
        table.write(tmp, overwrite=True, **COVARIANCE_FORMAT)


def read_covariance(path: Any, models: Any) -> Covariance:
    """Read a Gammapy covariance file for ``models``.

    Like Gammapy, rows are matched to the models' parameters by position; the names in the file
    must agree (the parameter part of each name at least, since Gammapy names the parameters of
    nested models without their nesting). The returned covariance carries jaxgamma's names.
    """
    models = Models(models)
    path = _base(path)
    origin = f"covariance file {str(path)!r}"
    if not path.is_file():
        raise ModelsFileNotFoundError(2, f"{origin}: no such file", os.fspath(path))
    try:
        table = Table.read(path, **COVARIANCE_FORMAT)
    except Exception as err:  # astropy raises a variety of errors for malformed tables
        raise ValueError(f"{origin}: cannot read it as {COVARIANCE_FORMAT}: {err}") from None
    if "Parameters" not in table.colnames:
        raise ValueError(f"{origin}: no 'Parameters' column (columns: {table.colnames})")
    file_names = [str(n) for n in table["Parameters"]]
    n = len(file_names)
    expected = [str(i) for i in range(n)]
    columns = [c for c in table.colnames if c != "Parameters"]
    if columns != expected:
        raise ValueError(f"{origin}: expected columns 'Parameters', {expected}, got {table.colnames}")
    try:
        matrix = np.array([np.asarray(table[c], dtype=np.float64) for c in columns]).T.reshape(n, n)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{origin}: non-numeric covariance values: {err}") from None
    names = _parameter_names(models)
    if len(names) != n:
        raise ValueError(f"{origin}: {n} parameters in the file, the models have {len(names)}: {names}")
    for i, (file_name, name) in enumerate(zip(file_names, names, strict=True)):
        if file_name != name and file_name.rsplit(".", 1)[-1] != name.rsplit(".", 1)[-1]:
            raise ValueError(f"{origin}: row {i} is {file_name!r}, the models' parameter there is {name!r}")
    return Covariance(names, matrix)
