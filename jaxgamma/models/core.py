"""The base of every model: parameters declared as dataclass fields with Gammapy's defaults.

A concrete model declares its parameters as fields whose default is a :class:`Parameter` holding
the Gammapy default value, canonical unit, bounds and flags, in Gammapy's declaration order::

    class PowerLawSpectralModel(SpectralModel):
        tag = ("PowerLawSpectralModel", "pl")
        index: Parameter = par("index", 2.0)
        amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
        reference: Parameter = par("reference", 1.0, "TeV", frozen=True)

``PowerLawSpectralModel(index=2.5, amplitude="1e-11 cm-2 s-1 TeV-1")`` then accepts floats (taken in
the canonical unit), strings, Quantities or Parameters for each of them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax
import numpy as np

from ..parameters import Parameter, _set_value, iter_parameters
from ..units import parse_unit

__all__ = ["ModelBase", "NormNodesMixin", "par", "replace_static"]


def par(
    name: str,
    value: float,
    unit: str = "",
    *,
    min: float = math.nan,
    max: float = math.nan,
    frozen: bool = False,
    interp: str = "lin",
    scale_method: str = "scale10",
) -> Any:
    """Declare a parameter field with its Gammapy default (a dataclass field default)."""
    return eqx.field(
        default=Parameter(
            name, value, unit, min=min, max=max, frozen=frozen, interp=interp, scale_method=scale_method
        )
    )


def replace_static(model: Any, **fields: Any) -> Any:
    """A copy of an (immutable) module with static fields changed (file names), bypassing its
    constructor."""
    new = copy.copy(model)
    for name, value in fields.items():
        object.__setattr__(new, name, value)
    return new


def _parameter_from_input(default: Parameter, value: Any, owner: str) -> Parameter:
    """Build the parameter for one constructor argument, in the default's canonical unit."""
    what = f"{owner}: parameter {default.name!r}"
    if isinstance(value, Parameter):
        if parse_unit(value.unit) == parse_unit(default.unit) or not value.unit:
            return value.replace(name=default.name, unit=default.unit)
        try:
            factor = (1.0 * parse_unit(value.unit)).to_value(parse_unit(default.unit))
        except u.UnitConversionError as err:
            raise ValueError(f"{what}: unit {value.unit!r} does not convert to {default.unit!r}") from err
        return value.replace(
            name=default.name,
            unit=default.unit,
            value=np.asarray(value.value) * factor,
            min=value.min * factor,
            max=value.max * factor,
            error=value.error * factor,
            prior=None if value.prior is None else value.prior.scaled(factor),
        )
    try:
        return default.replace(value=value)
    except ValueError as err:
        raise ValueError(f"{owner}: {err}") from None


if TYPE_CHECKING:

    class _TypedModule:
        """What type checkers see of a model's base: not a dataclass (an equinox module is one for
        them, whose synthesised constructor would only take the ``Parameter`` each field holds),
        with a constructor that takes any value per parameter (a float, a Quantity, a string or a
        Parameter, converted by ``ModelBase``)."""

        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

        def __init__(self, **kwargs: Any) -> None: ...

else:
    _TypedModule = eqx.Module


class ModelBase(_TypedModule):
    """Abstract base of spectral, spatial and temporal models.

    Subclasses set ``tag`` (the Gammapy type name first, then its aliases) and declare parameters
    with :func:`par`. The inherited constructor takes every parameter by keyword.
    """

    tag: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any):
        self._init_fields(kwargs)

    def _init_fields(self, kwargs: dict[str, Any]) -> None:
        owner = type(self).__name__
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(kwargs) - set(fields)
        if unknown:
            raise TypeError(f"{owner}: unknown parameter(s) {sorted(unknown)}; expected {sorted(fields)}")
        for name, field in fields.items():
            default = field.default
            if isinstance(default, Parameter):
                value = _parameter_from_input(default, kwargs[name], owner) if name in kwargs else default
            elif name in kwargs:
                value = kwargs[name]
            elif default is not dataclasses.MISSING:
                value = default
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                raise TypeError(f"{owner}: missing required argument {name!r}")
            object.__setattr__(self, name, value)

    # -- parameters ------------------------------------------------------------------------------
    @classmethod
    def default_parameters(cls) -> tuple[Parameter, ...]:
        """The class defaults, in declaration order."""
        return tuple(f.default for f in dataclasses.fields(cls) if isinstance(f.default, Parameter))

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """This model's parameters (nested models included), in declaration order."""
        return tuple(p for _, p in iter_parameters(self))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Parameter):
                yield f.name, value

    def values(self) -> dict[str, Any]:
        """``{field name: value}`` of this model's own parameters (canonical units)."""
        return {name: p.value for name, p in self._own_parameters()}

    def with_values(self, **values: Any) -> ModelBase:
        """A new model with some parameter values changed (floats in canonical units, strings,
        Quantities or traced arrays). Never retraces a jitted function."""
        model = self
        for name, value in values.items():
            p = self._get_parameter(name)
            if not isinstance(value, jax.Array):
                value = p.replace(value=value).value
            model = eqx.tree_at(self._where(name), model, _set_value(p, value))
        return model

    def with_parameters(self, **changes: dict[str, Any]) -> ModelBase:
        """A new model with parameter metadata changed, e.g. ``with_parameters(index={"frozen": True})``."""
        model = self
        for name, fields in changes.items():
            p = self._get_parameter(name)
            model = eqx.tree_at(self._where(name), model, p.replace(**fields))
        return model

    def freeze(self, *names: str) -> ModelBase:
        """A new model with the named parameters (all when none are named) frozen."""
        names = names or tuple(n for n, _ in self._own_parameters())
        return self.with_parameters(**{n: {"frozen": True} for n in names})

    def unfreeze(self, *names: str) -> ModelBase:
        names = names or tuple(n for n, _ in self._own_parameters())
        return self.with_parameters(**{n: {"frozen": False} for n in names})

    def _where(self, name: str) -> Any:
        """The ``eqx.tree_at`` accessor of the parameter ``name`` (a field by default)."""
        return lambda model: getattr(model, name)

    def _get_parameter(self, name: str) -> Parameter:
        p = getattr(self, name, None)
        if not isinstance(p, Parameter):
            raise ValueError(
                f"{type(self).__name__} has no parameter {name!r}; parameters: {list(self.values())}"
            )
        return p

    @property
    def type_name(self) -> str:
        return self.tag[0] if self.tag else type(self).__name__

    def __str__(self) -> str:
        lines = [f"{type(self).__name__}", ""]
        lines += [_format_parameter(p) for p in self.parameters]
        return "\n".join(lines)


def _format_parameter(p: Parameter) -> str:
    try:
        value = float(np.asarray(p.value))
    except TypeError:
        return f"  {p.name:<28s}: {p.value!r}"
    frozen = " (frozen)" if p.frozen else "         "
    err = f"+/- {p.error:9.2e}" if p.error else " " * 13
    name = p.link or p.name  # Gammapy prints a linked parameter under its label
    return f"  {name:<18s}{frozen}: {value:10.3e} {err} {p.unit}"


class NormNodesMixin:
    """Parameters ``norm_0``, ``norm_1``, ...: one dimensionless norm per node, held in the
    ``norm_parameters`` tuple a model declares (Gammapy's piecewise-norm models). Mixed in before
    the model's base class."""

    norm_parameters: tuple[Parameter, ...]

    @staticmethod
    def norm_parameters_from(norms: Any, n_nodes: int, owner: str, nodes: str = "nodes") -> tuple[Parameter, ...]:
        """The norm parameters from initial values (default 1) or Parameters, one per node."""
        if norms is None:
            norms = np.ones(n_nodes)
        if isinstance(norms, u.Quantity):
            norms = norms.to_value(u.dimensionless_unscaled)
        norms = list(norms) if not isinstance(norms, np.ndarray) else list(np.atleast_1d(norms))
        if len(norms) != n_nodes:
            raise ValueError(f"{owner}: {len(norms)} norms for {n_nodes} {nodes} (one per node)")
        parameters = []
        for k, norm in enumerate(norms):
            if isinstance(norm, Parameter):
                if norm.unit and parse_unit(norm.unit) != u.dimensionless_unscaled:
                    raise ValueError(f"{owner}: norm parameter {k} has unit {norm.unit!r}; norms are dimensionless")
                parameters.append(norm.replace(name=f"norm_{k}", unit=""))
            else:
                parameters.append(Parameter(f"norm_{k}", 1.0).replace(value=norm))
        return tuple(parameters)

    @staticmethod
    def _path_component(attr: str) -> str:
        return "" if attr == "norm_parameters" else attr  # "norm_0", not "norm_parameters.norm_0"

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for p in self.norm_parameters:
            yield p.name, p

    def _index(self, name: str) -> int:
        for k, p in enumerate(self.norm_parameters):
            if p.name == name:
                return k
        raise ValueError(f"{type(self).__name__} has no parameter {name!r}; parameters: {[p.name for p in self.norm_parameters]}")

    def _where(self, name: str) -> Any:
        k = self._index(name)
        return lambda model: model.norm_parameters[k]

    def _get_parameter(self, name: str) -> Parameter:
        return self.norm_parameters[self._index(name)]

    def __getattr__(self, name: str) -> Any:
        # Gammapy's parameter attributes (model.norm_0); only called when normal lookup fails
        if name.startswith("norm_"):
            for p in self.__dict__.get("norm_parameters", ()):
                if p.name == name:
                    return p
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def norms(self) -> jax.Array:
        """The norm values as one array (Gammapy's ``norms``, without the dimensionless unit)."""
        import jax.numpy as jnp

        return jnp.stack([jnp.asarray(p.value) for p in self.norm_parameters])
