"""Spectral models built from other spectral models: arithmetic combinations and a scaled model."""

from __future__ import annotations

import operator as _operator
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from ..parameters import Parameter
from ..units import parse_unit, unit_str
from .core import par
from .spectral import SpectralModel

__all__ = ["OPERATORS", "CompoundSpectralModel", "ScaleSpectralModel"]

#: Operators a compound model may combine its components with, by the name Gammapy writes in YAML
#: (``operator.__name__``).
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "add": _operator.add,
    "sub": _operator.sub,
    "mul": _operator.mul,
    "truediv": _operator.truediv,
}


def _operator_name(op: Any) -> str:
    name = op if isinstance(op, str) else getattr(op, "__name__", None)
    if name not in OPERATORS:
        raise ValueError(
            f"CompoundSpectralModel: unsupported operator {op!r}; supported: {sorted(OPERATORS)}"
        )
    return name


class CompoundSpectralModel(SpectralModel):
    """``operator(model1(E), model2(E))``, as Gammapy's ``CompoundSpectralModel``.

    Its parameters are ``model1``'s followed by ``model2``'s (named ``model1.index``, ...). Its
    integral is numerical on the combined dN/dE (Gammapy's scheme), even when both components have
    analytic integrals, because that is what Gammapy computes.

    Parameters
    ----------
    model1, model2 : SpectralModel
    operator : {"add", "sub", "mul", "truediv"} or the corresponding function of :mod:`operator`
    """

    tag = ("CompoundSpectralModel", "compound")
    model1: SpectralModel
    model2: SpectralModel
    operator: str = eqx.field(static=True)

    def __init__(self, model1: SpectralModel, model2: SpectralModel, operator: Any):
        for label, model in (("model1", model1), ("model2", model2)):
            if not isinstance(model, SpectralModel):
                raise TypeError(
                    f"CompoundSpectralModel: {label} must be a SpectralModel, got {type(model).__name__}"
                )
        name = _operator_name(operator)
        unit1, unit2 = parse_unit(model1.dnde_unit), parse_unit(model2.dnde_unit)
        if name in ("add", "sub") and unit1 != unit2:
            raise ValueError(
                f"CompoundSpectralModel: cannot {name} a model in {unit1.to_string()!r} and one in "
                f"{unit2.to_string()!r}"
            )
        self.model1 = model1
        self.model2 = model2
        self.operator = name

    @property
    def dnde_unit(self) -> str:  # type: ignore[override]
        unit1, unit2 = parse_unit(self.model1.dnde_unit), parse_unit(self.model2.dnde_unit)
        if self.operator == "mul":
            return unit_str(unit1 * unit2)
        if self.operator == "truediv":
            return unit_str(unit1 / unit2)
        return unit_str(unit1)

    @staticmethod
    def evaluate(energy, *args):  # pragma: no cover - use dnde
        raise TypeError("CompoundSpectralModel has no static evaluate; use model.dnde(energy)")

    def dnde(self, energy: jax.Array) -> jax.Array:
        return OPERATORS[self.operator](self.model1.dnde(energy), self.model2.dnde(energy))

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}\n"
            f"    Component 1 : {self.model1}\n"
            f"    Component 2 : {self.model2}\n"
            f"    Operator : {self.operator}\n"
        )


class ScaleSpectralModel(SpectralModel):
    """``norm * model(E)``, as Gammapy's ``ScaleSpectralModel``.

    In Gammapy the wrapped model's parameters are not parameters of the scale model, so only
    ``norm`` is fitted; here the wrapped model is stored with all its parameters frozen to the same
    effect. The integral is ``norm`` times the wrapped model's integral (analytic when that is).
    """

    tag = ("ScaleSpectralModel", "scale")
    norm: Parameter = par("norm", 1.0, interp="log")
    model: SpectralModel = eqx.field(default=None)

    def __init__(self, model: SpectralModel, norm: Any = 1.0):
        if not isinstance(model, SpectralModel):
            raise TypeError(f"ScaleSpectralModel: model must be a SpectralModel, got {type(model).__name__}")
        self._init_fields({"model": _freeze_all(model), "norm": norm})

    @property
    def dnde_unit(self) -> str:  # type: ignore[override]
        return self.model.dnde_unit

    @property
    def has_analytic_integral(self) -> bool:
        return self.model.has_analytic_integral

    @staticmethod
    def evaluate(energy, norm):  # pragma: no cover - use dnde
        raise TypeError("ScaleSpectralModel has no static evaluate; use model.dnde(energy)")

    def dnde(self, energy: jax.Array) -> jax.Array:
        return self.norm.value * self.model.dnde(energy)

    def integral_array(self, energy_min: Any, energy_max: Any) -> jax.Array:
        return self.norm.value * self.model.integral_array(energy_min, energy_max)

    def integral_on_grid(self, energy_grid: Any) -> jax.Array:
        return self.norm.value * self.model.integral_on_grid(energy_grid)


def _freeze_all(model: SpectralModel) -> SpectralModel:
    return jax.tree_util.tree_map(
        lambda p: p.replace(frozen=True) if isinstance(p, Parameter) else p,
        model,
        is_leaf=lambda x: isinstance(x, Parameter),
    )
