"""Parameters as pytrees, the free/frozen partition, named flattening and bound transforms.

A :class:`Parameter` is an immutable ``equinox.Module`` whose only pytree leaf is its ``value``; name,
unit, bounds, frozen flag, interpolation scale, scale method and error are static metadata. Changing
a value therefore never retraces a jitted function; freezing or changing bounds may.

The free values of a whole model tree flatten to one vector with stable, readable names
(``"Crab Nebula.spectral.alpha"``) through :class:`ParameterVector`; :class:`BoundTransform` maps them
to an unconstrained space, scaled by Gammapy-style powers of ten.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .units import parse_unit, to_value, unit_str

__all__ = [
    "BoundTransform",
    "Parameter",
    "ParameterVector",
    "is_parameter",
    "iter_parameters",
    "scale10",
]


def _as_value(value: Any) -> Any:
    # Tracers and jax arrays stay as they are; anything concrete becomes a float64 numpy array, so
    # that building a model touches no device and ``eqx.filter_jit`` traces the value (a Python
    # float would be static and retrace on every change).
    if isinstance(value, jax.Array):
        return value
    return np.asarray(value, dtype=np.float64)


def _bound(value: Any, default: float) -> float:
    # Gammapy writes "no bound" as NaN. NaN never compares equal, which would make two otherwise
    # identical static metadata differ and retrace; infinities do not have that problem.
    if value is None:
        return default
    value = float(value)
    return default if math.isnan(value) else value


class Parameter(eqx.Module):
    """A model parameter: a traced ``value`` in the canonical ``unit`` plus static metadata.

    Parameters
    ----------
    name : str
        Name as in Gammapy (``"index"``, ``"amplitude"``, ``"lon_0"``).
    value : float, array, str or Quantity
        A string such as ``"2 TeV"`` or a Quantity is converted to ``unit``.
    unit : str
        Canonical unit of the value ("" for dimensionless).
    min, max : float
        Bounds in ``unit``; NaN or None means unbounded (stored as -inf / +inf).
    frozen : bool
        Frozen parameters are excluded from fits.
    interp : {"lin", "log"}
        Scale used for scans (Gammapy's ``interp``).
    scale_method : {"scale10", "factor1"}
        How the fit scales the parameter.
    error : float
        1-sigma error in ``unit`` (0 when unknown).
    prior : Prior, optional
        A prior (:mod:`jaxgamma.models.prior`, or Gammapy's dict form) in ``unit``: its
        ``-2 ln p(value)`` is added to the joint statistic. A ``UniformPrior`` or ``LogUniformPrior``
        sets ``min`` and ``max`` to its own (Gammapy's ``Parameter.min`` / ``max`` return them).
    """

    value: Any = eqx.field(converter=_as_value)
    name: str = eqx.field(static=True, default="")
    unit: str = eqx.field(static=True, default="")
    min: float = eqx.field(static=True, default=-math.inf)
    max: float = eqx.field(static=True, default=math.inf)
    frozen: bool = eqx.field(static=True, default=False)
    interp: str = eqx.field(static=True, default="lin")
    scale_method: str = eqx.field(static=True, default="scale10")
    error: float = eqx.field(static=True, default=0.0)
    prior: Any = eqx.field(static=True, default=None)

    def __init__(
        self,
        name: str,
        value: Any,
        unit: str | u.UnitBase = "",
        min: float | None = None,
        max: float | None = None,
        frozen: bool = False,
        interp: str = "lin",
        scale_method: str = "scale10",
        error: float = 0.0,
        prior: Any = None,
    ):
        self.name = str(name)
        self.unit = unit_str(unit)
        self.value = to_value(value, self.unit, what=f"parameter {name!r}")
        self.min = _bound(to_value(min, self.unit, what=f"parameter {name!r} min"), -math.inf)
        self.max = _bound(to_value(max, self.unit, what=f"parameter {name!r} max"), math.inf)
        self.frozen = bool(frozen)
        self.interp = str(interp)
        self.scale_method = str(scale_method)
        error = to_value(error, self.unit, what=f"parameter {name!r} error")
        self.error = 0.0 if error is None or not np.isfinite(error) else float(error)
        if prior is not None:
            from .models.prior import as_prior

            prior = as_prior(prior, what=f"parameter {name!r} prior")
            bounds = prior.bounds
            if bounds is not None:
                self.min, self.max = bounds
        self.prior = prior

    def __check_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"parameter {self.name!r}: min {self.min} > max {self.max}")
        if self.interp not in ("lin", "log"):
            raise ValueError(f"parameter {self.name!r}: interp must be 'lin' or 'log', not {self.interp!r}")
        if self.scale_method not in ("scale10", "factor1"):
            raise ValueError(
                f"parameter {self.name!r}: scale_method must be 'scale10' or 'factor1', "
                f"not {self.scale_method!r}"
            )
        if isinstance(self.value, np.ndarray) and self.value.ndim == 0:
            v = float(self.value)
            if not (self.min <= v <= self.max) and not math.isnan(v):
                raise ValueError(
                    f"parameter {self.name!r}: value {v} {self.unit} outside its bounds "
                    f"[{self.min}, {self.max}]"
                )

    # -- convenience ---------------------------------------------------------------------------
    @property
    def quantity(self) -> u.Quantity:
        """The value as an astropy Quantity (concrete values only)."""
        return u.Quantity(np.asarray(self.value), parse_unit(self.unit))

    def replace(self, **changes: Any) -> Parameter:
        """A copy with some fields changed (``value`` may be a Quantity or a string)."""
        fields = {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "min": self.min,
            "max": self.max,
            "frozen": self.frozen,
            "interp": self.interp,
            "scale_method": self.scale_method,
            "error": self.error,
            "prior": self.prior,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"parameter {self.name!r}: unknown fields {sorted(unknown)}")
        fields.update(changes)
        return Parameter(**fields)

    def with_value(self, value: Any) -> Parameter:
        """A copy with a new value; no validation, so it works on tracers (used inside jit)."""
        return _set_value(self, value)

    @property
    def is_bounded(self) -> bool:
        return math.isfinite(self.min) or math.isfinite(self.max)

    def __repr__(self) -> str:
        flags = " (frozen)" if self.frozen else ""
        if self.prior is not None:
            flags += f" prior={self.prior!r}"
        try:
            value = f"{float(np.asarray(self.value)):.6g}"
        except (TypeError, jax.errors.ConcretizationTypeError):
            value = repr(self.value)
        unit = f" {self.unit}" if self.unit else ""
        return f"Parameter({self.name}={value}{unit}{flags})"


def _set_value(parameter: Parameter, value: Any) -> Parameter:
    # Bypass __init__/__check_init__: values set here may be tracers or out of bounds mid-fit.
    return eqx.tree_at(lambda p: p.value, parameter, _as_value(value))


def is_parameter(x: Any) -> bool:
    return isinstance(x, Parameter)


# -- naming ------------------------------------------------------------------------------------
def _key_name(key: Any) -> str | int:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return key.idx
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    return str(key)


def _readable_path(tree: Any, path: Sequence[Any]) -> str:
    """A readable dotted name for the parameter reached from ``tree`` by ``path``.

    Objects that define ``_path_component(attr)`` choose how their children are named; objects with
    a ``name`` that are listed in a sequence are named by that name instead of their index.
    """
    parts: list[str] = []
    node = tree
    for key in path:
        k = _key_name(key)
        if isinstance(k, int):
            node = node[k]
            name = getattr(node, "name", None)
            parts.append(str(name) if isinstance(name, str) and name else str(k))
            continue
        component = getattr(type(node), "_path_component", None)
        label = component(k) if component is not None else k
        node = getattr(node, k)
        if isinstance(node, Parameter):
            parts.append(node.name or str(k))
            break
        if label:
            parts.append(str(label))
    return ".".join(parts)


def iter_parameters(tree: Any) -> Iterator[tuple[str, Parameter]]:
    """Yield ``(readable_name, parameter)`` for every Parameter in ``tree``, in flattening order."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_parameter)[0]
    for path, leaf in leaves:
        if isinstance(leaf, Parameter):
            yield _readable_path(tree, path), leaf


# -- free / frozen partition and the parameter vector -------------------------------------------
def free_spec(tree: Any) -> Any:
    """Boolean filter spec: True at the value of every free Parameter, False elsewhere."""
    return jax.tree_util.tree_map(
        lambda x: (not x.frozen) if isinstance(x, Parameter) else False, tree, is_leaf=is_parameter
    )


class ParameterVector(eqx.Module):
    """The free parameter values of a model tree as one flat vector, with readable names.

    Built once from a model tree (its structure is static); ``flatten`` and ``unflatten`` are pure
    and work under jit, grad and vmap.

    Examples
    --------
    >>> pv = ParameterVector.from_tree(models)
    >>> x = pv.flatten(models)            # shape (n_free,)
    >>> models2 = pv.unflatten(x, models)  # same structure, new free values
    """

    names: tuple[str, ...] = eqx.field(static=True)
    units: tuple[str, ...] = eqx.field(static=True)
    mins: tuple[float, ...] = eqx.field(static=True)
    maxs: tuple[float, ...] = eqx.field(static=True)
    scale_methods: tuple[str, ...] = eqx.field(static=True)

    @classmethod
    def from_tree(cls, tree: Any) -> ParameterVector:
        named = [(n, p) for n, p in iter_parameters(tree) if not p.frozen]
        names = tuple(n for n, _ in named)
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"free parameter names are not unique: {sorted(duplicates)}")
        return cls(
            names=names,
            units=tuple(p.unit for _, p in named),
            mins=tuple(p.min for _, p in named),
            maxs=tuple(p.max for _, p in named),
            scale_methods=tuple(p.scale_method for _, p in named),
        )

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"no free parameter named {name!r}; free parameters: {list(self.names)}") from None

    def flatten(self, tree: Any) -> jax.Array:
        free, _ = eqx.partition(tree, free_spec(tree))
        leaves = jax.tree_util.tree_leaves(free)
        if len(leaves) != len(self.names):
            raise ValueError(
                f"model tree has {len(leaves)} free parameters, this vector was built for {len(self.names)}"
            )
        if not leaves:
            return jnp.zeros((0,))
        return jnp.stack([jnp.asarray(v, dtype=float) for v in leaves])

    def values(self, tree: Any) -> np.ndarray:
        """The free values of a concrete ``tree`` as a numpy vector (:meth:`flatten` without
        device dispatch; not for traced trees)."""
        free, _ = eqx.partition(tree, free_spec(tree))
        leaves = jax.tree_util.tree_leaves(free)
        if len(leaves) != len(self.names):
            raise ValueError(
                f"model tree has {len(leaves)} free parameters, this vector was built for {len(self.names)}"
            )
        return np.array([np.asarray(v, dtype=np.float64) for v in leaves], dtype=np.float64).reshape(
            len(leaves)
        )

    def unflatten(self, x: jax.Array, tree: Any) -> Any:
        free, frozen = eqx.partition(tree, free_spec(tree))
        leaves, treedef = jax.tree_util.tree_flatten(free)
        if len(leaves) != len(self.names):
            raise ValueError(
                f"model tree has {len(leaves)} free parameters, this vector was built for {len(self.names)}"
            )
        new = jax.tree_util.tree_unflatten(treedef, [x[..., i] for i in range(len(leaves))])
        return eqx.combine(new, frozen)

    def scales(self, x: Any) -> np.ndarray:
        """Gammapy-style scales for concrete values ``x`` (``scale10`` or ``factor1``)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.ones_like(x)
        for i, method in enumerate(self.scale_methods):
            out[i] = scale10(x[i]) if method == "scale10" else (x[i] if x[i] != 0 else 1.0)
        return out

    def transform(self, x: Any) -> BoundTransform:
        """The bound transform for this vector, scaled at the concrete values ``x``."""
        return BoundTransform.create(self.scales(x), np.array(self.mins), np.array(self.maxs))


def scale10(value: float) -> float:
    """Gammapy's ``scale10``: the power of ten of ``|value|`` (1 for 0 or non-finite values)."""
    value = abs(float(value))
    if value == 0 or not math.isfinite(value):
        return 1.0
    return 10.0 ** math.floor(math.log10(value))


# -- bound transforms ----------------------------------------------------------------------------
_UNBOUNDED, _LOWER, _UPPER, _INTERVAL = 0, 1, 2, 3


class BoundTransform(eqx.Module):
    """Scaled, bounded <-> unconstrained map for a parameter vector, vectorised and differentiable.

    The factor is ``f = value / scale``; with factor bounds ``lo = min/scale``, ``hi = max/scale``:

    - unbounded: ``f = u``
    - lower bound: ``f = lo + softplus(u)``
    - upper bound: ``f = hi - softplus(-u)``
    - interval: ``f = lo + (hi - lo) * sigmoid(u)``

    ``scale``, ``lo`` and ``hi`` are arrays (leaves), so a new start point with other scales reuses
    a compiled program.
    """

    scale: Any
    lo: Any
    hi: Any
    kind: Any

    @classmethod
    def create(cls, scale: Any, min: Any, max: Any) -> BoundTransform:
        scale = np.asarray(scale, dtype=np.float64)
        min = np.asarray(min, dtype=np.float64)
        max = np.asarray(max, dtype=np.float64)
        has_lo, has_hi = np.isfinite(min), np.isfinite(max)
        kind = np.where(has_lo & has_hi, _INTERVAL, np.where(has_lo, _LOWER, np.where(has_hi, _UPPER, _UNBOUNDED)))
        lo = np.where(has_lo, min / scale, 0.0)
        hi = np.where(has_hi, max / scale, 0.0)
        # a negative scale (never produced by scale10) would swap the bounds
        return cls(scale=scale, lo=lo, hi=np.where(kind == _INTERVAL, np.maximum(hi, lo), hi), kind=kind.astype(np.int32))

    def to_value(self, u_: jax.Array) -> jax.Array:
        """Unconstrained vector -> physical values."""
        return self.scale * self._factor(u_)

    def _factor(self, u_: jax.Array) -> jax.Array:
        sp = jax.nn.softplus
        width = self.hi - self.lo
        return jnp.select(
            [self.kind == _LOWER, self.kind == _UPPER, self.kind == _INTERVAL],
            [self.lo + sp(u_), self.hi - sp(-u_), self.lo + width * jax.nn.sigmoid(u_)],
            u_,
        )

    def to_unconstrained(self, value: Any) -> Any:
        """Physical values -> unconstrained vector (values strictly inside their bounds).

        A numpy ``value`` on a transform with numpy fields (as :meth:`create` makes) is mapped in
        numpy and returns numpy: start points then cost no device dispatch (each eager jnp op
        compiles a small program the first time in a process, ~20 ms apiece).
        """
        host = isinstance(value, np.ndarray | float) and all(
            isinstance(a, np.ndarray) for a in (self.scale, self.lo, self.hi, self.kind)
        )
        xp: Any = np if host else jnp
        with np.errstate(divide="ignore", invalid="ignore"):
            f = xp.asarray(value, dtype=np.float64) / self.scale if host else value / self.scale
            width = xp.where(self.kind == _INTERVAL, self.hi - self.lo, 1.0)
            # softplus^-1(y) = y + log(-expm1(-y)); the placeholders avoid NaN in branches not taken
            d_lo = xp.where(self.kind == _LOWER, f - self.lo, 1.0)
            d_hi = xp.where(self.kind == _UPPER, self.hi - f, 1.0)
            p = xp.where(self.kind == _INTERVAL, (f - self.lo) / width, 0.5)
            return xp.select(
                [self.kind == _LOWER, self.kind == _UPPER, self.kind == _INTERVAL],
                [_softplus_inv(d_lo, xp), -_softplus_inv(d_hi, xp), xp.log(p) - xp.log1p(-p)],
                f,
            )

    def log_abs_det_jacobian(self, u_: jax.Array) -> jax.Array:
        """``sum log |d value / d u|``: the log-Jacobian of :meth:`to_value` (for samplers)."""
        width = self.hi - self.lo
        per = jnp.select(
            [self.kind == _LOWER, self.kind == _UPPER, self.kind == _INTERVAL],
            [
                jax.nn.log_sigmoid(u_),
                jax.nn.log_sigmoid(-u_),
                jnp.log(jnp.where(self.kind == _INTERVAL, width, 1.0)) + jax.nn.log_sigmoid(u_) + jax.nn.log_sigmoid(-u_),
            ],
            jnp.zeros_like(u_),
        )
        return jnp.sum(per + jnp.log(jnp.abs(self.scale)))


def _softplus_inv(y: Any, xp: Any = jnp) -> Any:
    return y + xp.log(-xp.expm1(-y))


def resolve_parameter_name(tree: Any, name: str, owner: str = "parameter") -> str:
    """The full name of parameter ``name`` in ``tree`` (a full name such as
    ``"crab.spectral.index"`` or a unique suffix such as ``"index"``); ``ValueError`` naming
    ``owner`` and the candidates otherwise."""
    names = [n for n, _ in iter_parameters(tree)]
    if name in names:
        return name
    matches = [n for n in names if n.endswith("." + name)]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)} ({matches})"
        raise ValueError(f"{owner}: {what} parameters match {name!r}; give a full name from {names}")
    return matches[0]


def map_parameters(fn: Callable[[str, Parameter], Parameter], tree: Any) -> Any:
    """Apply ``fn(readable_name, parameter)`` to every Parameter of ``tree``."""
    names = iter(n for n, _ in iter_parameters(tree))
    return jax.tree_util.tree_map(
        lambda p: fn(next(names), p) if isinstance(p, Parameter) else p, tree, is_leaf=is_parameter
    )
