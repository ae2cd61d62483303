"""Parameter priors, as Gammapy's ``gammapy.modeling.models.prior``.

A prior is set on a :class:`~jaxgamma.parameters.Parameter` (``Parameter(..., prior=GaussianPrior(mu=2.3,
sigma=0.1))``, ``model.with_parameters(index={"prior": ...})`` or :meth:`Models.set_prior`). As in
Gammapy, the statistic of every fit, profile, interval and posterior is then

    ``stat = sum over datasets of -2 ln L  +  sum over parameters with a prior of weight x (-2 ln p(value))``

(Gammapy's ``Datasets.stat_sum``; a single dataset's ``stat_sum`` has no prior term, as Gammapy's),
so fitted values, exact-Hessian covariances, confidence intervals and NUTS posteriors all include
the priors. :class:`UniformPrior` and :class:`LogUniformPrior` also bound the parameter to
``[min, max]``, as Gammapy's ``Parameter.min`` / ``max`` return the prior's.

The prior's numbers are in the parameter's canonical unit (Gammapy's are in the parameter's own
unit; a models file whose parameter unit differs from jaxgamma's canonical one has them converted
on reading, which changes the prior term by the constant ``2 weight ln(factor)`` and nothing else).
Priors are immutable and hashable: they are static metadata of the parameter, so changing one
recompiles a fit (changing a parameter value never does).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
import scipy.stats

__all__ = [
    "GaussianPrior",
    "GeneralizedGaussianPrior",
    "LogUniformPrior",
    "Prior",
    "UniformPrior",
    "prior_from_dict",
]

_LN_2PI = math.log(2.0 * math.pi)

log = logging.getLogger(__name__)


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    return number


@dataclasses.dataclass(frozen=True)
class Prior:
    """Base of the priors: ``prior(value)`` is ``weight x (-2 ln p(value))`` (Gammapy's ``Prior.__call__``).

    Subclasses declare their parameters as float fields (in Gammapy's order) and implement
    ``_stat(value)``, the unweighted ``-2 ln p``.
    """

    tag: ClassVar[tuple[str, ...]] = ()
    weight: float = dataclasses.field(default=1.0, kw_only=True)

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _finite(getattr(self, f.name), f"{owner}: {f.name}"))
        self._check()

    def _check(self) -> None:
        """Raise ``ValueError`` for parameters that give no proper density."""

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self) if f.name != "weight")

    @property
    def parameters(self) -> dict[str, float]:
        """``{name: value}`` of the prior's own parameters (the weight excluded)."""
        return {name: getattr(self, name) for name in self.parameter_names}

    def _stat(self, value: Any) -> Any:
        raise NotImplementedError

    def __call__(self, value: Any) -> Any:
        """``weight x (-2 ln p(value))`` of a number, an array (traced or not) or a Parameter
        (its value); ``inf`` outside the support. Differentiable inside it."""
        from ..parameters import Parameter

        if isinstance(value, Parameter):
            value = value.value
        return self.weight * self._stat(jnp.asarray(value, dtype=float))

    def inverse_cdf(self, q: Any) -> np.ndarray:
        """The value at cumulative probability ``q`` in [0, 1] (numpy; Gammapy's
        ``Prior._inverse_cdf``, scipy's ``ppf`` of the same distribution): maps the unit cube to the
        prior, as nested samplers need. The weight does not enter."""
        rv = self.__dict__.get("_rv")
        if rv is None:  # a frozen scipy variable costs ~0.6 ms to build: keep it (not a field)
            rv = self.__dict__["_rv"] = self._random_variable()
        return np.asarray(rv.ppf(np.asarray(q, dtype=np.float64)), dtype=np.float64)

    def _random_variable(self) -> Any:
        """The distribution as a frozen ``scipy.stats`` variable (Gammapy's ``_random_variable``)."""
        raise NotImplementedError

    def scaled(self, factor: float) -> Prior:
        """The same prior for the parameter expressed in a unit ``factor`` times smaller (its values
        multiplied by ``factor``): location and scale parameters are multiplied by ``factor``."""
        if factor == 1.0:
            return self
        return dataclasses.replace(self, **{n: getattr(self, n) * factor for n in self._scaled_names})

    _scaled_names: ClassVar[tuple[str, ...]] = ()

    # -- Gammapy's YAML form ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Gammapy's form, as written under a parameter's ``prior`` key."""
        parameters = [{"name": name, "value": value, "unit": ""} for name, value in self.parameters.items()]
        weight: float | int = int(self.weight) if self.weight == int(self.weight) else self.weight
        return {"type": self.tag[0], "parameters": parameters, "weight": weight}

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:.6g}" for k, v in self.parameters.items())
        weight = "" if self.weight == 1.0 else f", weight={self.weight:.6g}"
        return f"{type(self).__name__}({values}{weight})"

    @property
    def bounds(self) -> tuple[float, float] | None:
        """``(min, max)`` the prior imposes on the parameter (uniform priors), else None."""
        return None


@dataclasses.dataclass(frozen=True, repr=False)
class GaussianPrior(Prior):
    """Gaussian prior: ``-2 ln p = ((x - mu) / sigma)**2 + 2 ln sigma + ln(2 pi)``."""

    tag: ClassVar[tuple[str, ...]] = ("GaussianPrior",)
    _scaled_names: ClassVar[tuple[str, ...]] = ("mu", "sigma")
    mu: float = 0.0
    sigma: float = 1.0

    def _check(self) -> None:
        if self.sigma <= 0:
            raise ValueError(f"GaussianPrior: sigma must be > 0, got {self.sigma}")

    def _stat(self, value: Any) -> Any:
        return ((value - self.mu) / self.sigma) ** 2 + 2.0 * math.log(self.sigma) + _LN_2PI

    def _random_variable(self) -> Any:
        return scipy.stats.norm(self.mu, self.sigma)


@dataclasses.dataclass(frozen=True, repr=False)
class GeneralizedGaussianPrior(Prior):
    """Generalised Gaussian prior (scipy's ``gennorm`` with ``beta = 1 / eta`` and scale
    ``sigma sqrt(2)``, as Gammapy): ``eta = 0.5`` is the Gaussian, ``eta = 1`` a Laplace."""

    tag: ClassVar[tuple[str, ...]] = ("GeneralizedGaussianPrior",)
    _scaled_names: ClassVar[tuple[str, ...]] = ("mu", "sigma")
    mu: float = 0.0
    sigma: float = 1.0
    eta: float = 0.5

    def _check(self) -> None:
        if self.sigma <= 0 or self.eta <= 0:
            raise ValueError(
                f"GeneralizedGaussianPrior: sigma and eta must be > 0, got sigma={self.sigma}, eta={self.eta}"
            )

    def _stat(self, value: Any) -> Any:
        beta = 1.0 / self.eta
        scale = self.sigma * math.sqrt(2.0)
        log_norm = math.log(beta) - math.log(2.0 * scale) - math.lgamma(1.0 / beta)
        return -2.0 * (log_norm - jnp.abs((value - self.mu) / scale) ** beta)

    def _random_variable(self) -> Any:
        return scipy.stats.gennorm(beta=1.0 / self.eta, loc=self.mu, scale=self.sigma * math.sqrt(2.0))


@dataclasses.dataclass(frozen=True, repr=False)
class UniformPrior(Prior):
    """Uniform prior on ``[min, max]``: ``-2 ln p = 2 ln(max - min)`` inside, ``inf`` outside. It
    bounds the parameter to ``[min, max]``."""

    tag: ClassVar[tuple[str, ...]] = ("UniformPrior",)
    _scaled_names: ClassVar[tuple[str, ...]] = ("min", "max")
    min: float = 0.0
    max: float = 1.0

    def _check(self) -> None:
        if not self.max > self.min:
            raise ValueError(f"UniformPrior: max must be > min, got min={self.min}, max={self.max}")

    def _stat(self, value: Any) -> Any:
        inside = (value >= self.min) & (value <= self.max)
        return jnp.where(inside, 2.0 * math.log(self.max - self.min), jnp.inf)

    def _random_variable(self) -> Any:
        return scipy.stats.uniform(self.min, self.max - self.min)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.min, self.max


@dataclasses.dataclass(frozen=True, repr=False)
class LogUniformPrior(Prior):
    """Log-uniform prior on ``[min, max]`` (uniform in ``ln x``): ``-2 ln p = 2 ln(x ln(max / min))``
    inside, ``inf`` outside. It bounds the parameter to ``[min, max]``; ``min`` must be > 0."""

    tag: ClassVar[tuple[str, ...]] = ("LogUniformPrior",)
    _scaled_names: ClassVar[tuple[str, ...]] = ("min", "max")
    min: float = 1e-14
    max: float = 1e-10

    def _check(self) -> None:
        if not (0 < self.min < self.max):
            raise ValueError(f"LogUniformPrior: need 0 < min < max, got min={self.min}, max={self.max}")

    def _stat(self, value: Any) -> Any:
        inside = (value >= self.min) & (value <= self.max)
        safe = jnp.where(inside, value, self.min)
        log_width = math.log(math.log(self.max) - math.log(self.min))
        return jnp.where(inside, 2.0 * (jnp.log(safe) + log_width), jnp.inf)

    def _random_variable(self) -> Any:
        return scipy.stats.loguniform(self.min, self.max)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.min, self.max


PRIORS: dict[str, type[Prior]] = {
    cls.tag[0]: cls for cls in (GaussianPrior, GeneralizedGaussianPrior, UniformPrior, LogUniformPrior)
}


def prior_from_dict(data: Mapping[str, Any], factor: float = 1.0) -> Prior:
    """A prior from Gammapy's dict (``{"type": ..., "parameters": [{"name", "value", "unit"}], "weight": ...}``),
    its values multiplied by ``factor`` (the parameter's file unit to its canonical unit).

    Prior parameters missing from the list take their defaults (Gammapy warns and does the same).
    Raises ``ValueError`` naming what is wrong.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"prior must be a mapping with 'type', 'parameters' and 'weight', got {data!r}")
    if "prior" in data and len(data) == 1:
        data = data["prior"]
    kind = data.get("type")
    cls = PRIORS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown prior type {kind!r}; expected one of {sorted(PRIORS)}")
    unknown = set(data) - {"type", "parameters", "weight"}
    if unknown:
        raise ValueError(f"{kind}: unknown keys {sorted(unknown)}; expected type, parameters, weight")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "weight"]
    values: dict[str, Any] = {}
    items = data.get("parameters") or []
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{kind}: parameters must be a list, got {items!r}")
    for item in items:
        if not isinstance(item, Mapping) or "name" not in item:
            raise ValueError(f"{kind}: each parameter needs a name and a value, got {item!r}")
        if item["name"] not in names:
            raise ValueError(f"{kind}: unknown parameter {item['name']!r}; expected {names}")
        values[item["name"]] = item.get("value")
    for f in dataclasses.fields(cls):
        if f.name != "weight" and f.name not in values:
            log.warning("%s: prior parameter %r not given; using its default %s", kind, f.name, f.default)
    weight = data.get("weight", 1.0)
    try:
        prior = cls(**values, weight=weight)
    except (TypeError, ValueError) as err:
        raise ValueError(str(err)) from None
    return prior.scaled(factor)


def as_prior(value: Any, what: str = "prior") -> Prior | None:
    """``value`` as a Prior: a Prior, Gammapy's dict form, or None."""
    if value is None or isinstance(value, Prior):
        return value
    if isinstance(value, Mapping):
        try:
            return prior_from_dict(value)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
    raise TypeError(f"{what} must be a Prior (GaussianPrior, UniformPrior, ...) or None, got {value!r}")


def prior_stat_sum(tree: Any) -> Any:
    """``sum weight x (-2 ln p(value))`` over the parameters of ``tree`` that have a prior, frozen
    ones included (Gammapy's ``Parameters.prior_stat_sum``); 0 when none has one. A linked
    parameter is one parameter: its prior counts once (Gammapy adds it once per copy)."""
    from ..parameters import iter_parameters

    total = jnp.asarray(0.0)
    seen: set[str] = set()
    for _, p in iter_parameters(tree):
        if p.prior is not None and (p.link is None or p.link not in seen):
            total = total + p.prior(p.value)
        if p.link is not None:
            seen.add(p.link)
    return total


def has_priors(tree: Any) -> bool:
    """Whether any parameter of ``tree`` has a prior (static: no tracing)."""
    from ..parameters import iter_parameters

    return any(p.prior is not None for _, p in iter_parameters(tree))

