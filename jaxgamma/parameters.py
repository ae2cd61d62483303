"""Parameters as pytrees, the free/frozen partition, named flattening and bound transforms.

A :class:`Parameter` is an immutable ``equinox.Module`` whose only pytree leaf is its ``value``; name,
unit, bounds, frozen flag, interpolation scale, scale method and error are static metadata. Changing
a value therefore never retraces a jitted function; freezing or changing bounds may.

The free values of a whole model tree flatten to one vector with stable, readable names
(``"Crab Nebula.spectral.alpha"``) through :class:`ParameterVector`; :class:`BoundTransform` maps them
to an unconstrained space, scaled by Gammapy-style powers of ten.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    "link_parameters",
    "scale10",
    "unlink_parameters",
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
    link : str, optional
        A label (Gammapy writes ``"index@a1B2c3D4"``): the parameters of one model tree that carry
        the same label are one parameter (Gammapy's linked parameters, one shared object there).
        They must agree in value, unit, bounds, frozen flag and prior; a fit varies them together.
        Made by :meth:`jaxgamma.models.Models.link` (or :func:`link_parameters`).
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
    link: str | None = eqx.field(static=True, default=None)

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
        link: str | None = None,
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
        if link is not None and (not isinstance(link, str) or not link):
            raise ValueError(f"parameter {name!r}: link must be a non-empty string or None, got {link!r}")
        self.link = link

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
            "link": self.link,
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
        if self.link is not None:
            flags += f" link={self.link!r}"
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
    # every free parameter of the tree in flattening order (linked copies included): its name and
    # its entry in the vector (linked copies share the entry of their group's first occurrence)
    leaf_names: tuple[str, ...] = eqx.field(static=True)
    leaf_index: tuple[int, ...] = eqx.field(static=True)

    @classmethod
    def from_tree(cls, tree: Any) -> ParameterVector:
        named = list(iter_parameters(tree))
        check_links(named)
        names: list[str] = []
        params: list[Parameter] = []
        entry: dict[str, int] = {}  # link label -> vector entry
        leaf_names: list[str] = []
        leaf_index: list[int] = []
        for n, p in named:
            if p.frozen:
                continue
            if p.link is not None and p.link in entry:
                k = entry[p.link]
            else:
                k = len(names)
                names.append(n)
                params.append(p)
                if p.link is not None:
                    entry[p.link] = k
            leaf_names.append(n)
            leaf_index.append(k)
        duplicates = {n for n in leaf_names if leaf_names.count(n) > 1}
        if duplicates:
            raise ValueError(f"free parameter names are not unique: {sorted(duplicates)}")
        return cls(
            names=tuple(names),
            units=tuple(p.unit for p in params),
            mins=tuple(p.min for p in params),
            maxs=tuple(p.max for p in params),
            scale_methods=tuple(p.scale_method for p in params),
            leaf_names=tuple(leaf_names),
            leaf_index=tuple(leaf_index),
        )

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The vector entry of the free parameter ``name`` (a linked copy: its group's entry)."""
        if name in self.names:
            return self.names.index(name)
        if name in self.leaf_names:
            return self.leaf_index[self.leaf_names.index(name)]
        raise ValueError(f"no free parameter named {name!r}; free parameters: {list(self.names)}")

    def _free_leaves(self, tree: Any) -> tuple[list[Any], Any, Any]:
        free, frozen = eqx.partition(tree, free_spec(tree))
        leaves, treedef = jax.tree_util.tree_flatten(free)
        if len(leaves) != len(self.leaf_index):
            raise ValueError(
                f"model tree has {len(leaves)} free parameters, this vector was built for "
                f"{len(self.leaf_index)}"
            )
        return leaves, treedef, frozen

    def _first_leaves(self, leaves: list[Any]) -> list[Any]:
        # the first occurrence of each entry (linked copies hold the same value)
        seen: set[int] = set()
        out = []
        for k, leaf in zip(self.leaf_index, leaves, strict=True):
            if k not in seen:
                seen.add(k)
                out.append(leaf)
        return out

    def flatten(self, tree: Any) -> jax.Array:
        leaves = self._first_leaves(self._free_leaves(tree)[0])
        if not leaves:
            return jnp.zeros((0,))
        return jnp.stack([jnp.asarray(v, dtype=float) for v in leaves])

    def values(self, tree: Any) -> np.ndarray:
        """The free values of a concrete ``tree`` as a numpy vector (:meth:`flatten` without
        device dispatch; not for traced trees)."""
        leaves = self._first_leaves(self._free_leaves(tree)[0])
        return np.array([np.asarray(v, dtype=np.float64) for v in leaves], dtype=np.float64).reshape(
            len(leaves)
        )

    def unflatten(self, x: jax.Array, tree: Any) -> Any:
        """``tree`` with its free values set from ``x`` (every linked copy to its group's entry)."""
        _, treedef, frozen = self._free_leaves(tree)
        new = jax.tree_util.tree_unflatten(treedef, [x[..., k] for k in self.leaf_index])
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


def resolve_parameter_name(tree: Any, name: str, owner: str = "parameter", canonical: bool = True) -> str:
    """The full name of parameter ``name`` in ``tree`` (a full name such as
    ``"crab.spectral.index"`` or a unique suffix such as ``"index"``); ``ValueError`` naming
    ``owner`` and the candidates otherwise. A linked copy resolves to the first occurrence of its
    group (the name a fit reports it under) unless ``canonical`` is False."""
    named = list(iter_parameters(tree))
    names = [n for n, _ in named]
    if name in names:
        found = name
    else:
        matches = [n for n in names if n.endswith("." + name)]
        if len(matches) != 1:
            # the copies of one linked parameter are one parameter
            firsts = {canonical_names(named)[m] for m in matches}
            if not matches or len(firsts) != 1 or not canonical:
                what = "no" if not matches else f"{len(matches)} ({matches})"
                raise ValueError(f"{owner}: {what} parameters match {name!r}; give a full name from {names}")
            matches = sorted(firsts)
        found = matches[0]
    return canonical_names(named)[found] if canonical else found


def map_parameters(fn: Callable[[str, Parameter], Parameter], tree: Any) -> Any:
    """Apply ``fn(readable_name, parameter)`` to every Parameter of ``tree``.

    Linked parameters stay one parameter: ``fn`` is called for the first occurrence of each link
    group (with its name) and every other copy takes the result (keeping its own ``name``).
    """
    named = list(iter_parameters(tree))
    mapped: dict[str, Parameter] = {}
    results: list[Parameter] = []
    for name, p in named:
        if p.link is None:
            results.append(fn(name, p))
        elif p.link not in mapped:
            mapped[p.link] = fn(name, p)
            results.append(mapped[p.link])
        else:
            results.append(_copy_of(mapped[p.link], p))
    return _with_parameters(tree, results)


def _with_parameters(tree: Any, parameters: Sequence[Parameter]) -> Any:
    """``tree`` with its Parameters replaced, in flattening order, by ``parameters``."""
    it = iter(parameters)
    return jax.tree_util.tree_map(lambda x: next(it) if isinstance(x, Parameter) else x, tree, is_leaf=is_parameter)


# -- linked parameters ------------------------------------------------------------------------------------
# what the copies of one linked parameter must share (value checked apart: it may be traced)
_LINKED_FIELDS = ("unit", "min", "max", "frozen", "prior", "interp", "scale_method")


def _copy_of(source: Parameter, p: Parameter) -> Parameter:
    """``source`` in the place of its linked copy ``p``: under ``p``'s name (no validation: the
    value may be a tracer)."""
    if source.name == p.name:
        return source
    out = copy.copy(source)
    object.__setattr__(out, "name", p.name)
    return out


def _concrete(value: Any) -> np.ndarray | None:
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value, dtype=np.float64)


def same_parameter(a: Parameter | None, b: Parameter | None) -> bool:
    """Whether two concrete parameters are equal in value and every setting."""
    if a is None or b is None:
        return a is b
    fields = ("name", "error", "link", *_LINKED_FIELDS)
    if any(getattr(a, f) != getattr(b, f) for f in fields):
        return False
    va, vb = _concrete(a.value), _concrete(b.value)
    return va is not None and vb is not None and np.array_equal(va, vb, equal_nan=True)


def canonical_names(tree_or_named: Any) -> dict[str, str]:
    """``{name: name of the first occurrence of its link group}`` for every parameter of a tree
    (or of an ``iter_parameters`` list); an unlinked parameter maps to itself."""
    named = tree_or_named if isinstance(tree_or_named, list) else list(iter_parameters(tree_or_named))
    first: dict[str, str] = {}
    out = {}
    for n, p in named:
        out[n] = n if p.link is None else first.setdefault(p.link, n)
    return out


def link_groups(tree: Any) -> dict[str, list[str]]:
    """``{label: [names of its copies, in flattening order]}`` for the labels that two or more
    parameters of ``tree`` share."""
    groups: dict[str, list[str]] = {}
    for n, p in iter_parameters(tree):
        if p.link is not None:
            groups.setdefault(p.link, []).append(n)
    return {label: names for label, names in groups.items() if len(names) > 1}


def check_links(tree_or_named: Any, owner: str = "models") -> None:
    """``ValueError`` when the copies of a linked parameter disagree (value, unit, bounds, frozen
    flag, prior, interp or scale method), naming them."""
    named = tree_or_named if isinstance(tree_or_named, list) else list(iter_parameters(tree_or_named))
    first: dict[str, tuple[str, Parameter]] = {}
    for n, p in named:
        if p.link is None:
            continue
        if p.link not in first:
            first[p.link] = (n, p)
            continue
        n0, p0 = first[p.link]
        problems = [f"{f} {getattr(p0, f)!r} vs {getattr(p, f)!r}" for f in _LINKED_FIELDS if getattr(p0, f) != getattr(p, f)]
        v0, v = _concrete(p0.value), _concrete(p.value)
        if v0 is not None and v is not None and not np.array_equal(v0, v, equal_nan=True):
            problems.insert(0, f"value {v0} vs {v}")
        if problems:
            raise ValueError(
                f"{owner}: the linked parameters {n0!r} and {n!r} (link {p.link!r}) differ: "
                + "; ".join(problems)
                + ". Change a linked parameter through Models (replace, link, set_prior), which "
                "keeps its copies equal"
            )


def link_parameters(tree: Any, names: Sequence[str], label: str | None = None, owner: str = "link") -> Any:
    """``tree`` with the parameters ``names`` (full names or unique suffixes; two or more) linked:
    one parameter from then on (Gammapy: ``model_b.spectral_model.index = model_a.spectral_model.index``).

    Every copy takes the first named parameter's value, bounds, frozen flag, error, prior, interp and
    scale method, keeping its own name. Parameters already linked to others bring their groups
    along. ``label`` defaults to ``"<name>@<8 characters>"`` (Gammapy's form), derived from the
    first parameter's full name, so that linking is reproducible.
    """
    names = [names] if isinstance(names, str) else list(names)
    if len(names) < 2:
        raise ValueError(f"{owner}: give two or more parameters to link, got {names}")
    resolved = [resolve_parameter_name(tree, n, owner, canonical=False) for n in names]
    named = list(iter_parameters(tree))
    by_name = dict(named)
    source = by_name[resolved[0]]
    for n in resolved[1:]:
        if parse_unit(by_name[n].unit) != parse_unit(source.unit):
            raise ValueError(
                f"{owner}: cannot link {n!r} ({by_name[n].unit or 'dimensionless'}) to {resolved[0]!r} "
                f"({source.unit or 'dimensionless'}): their units differ"
            )
    labels = {by_name[n].link for n in resolved} - {None}
    if label is None:
        digest = hashlib.sha1(resolved[0].encode()).hexdigest()[:8]
        label = f"{source.name}@{digest}"
    members = set(resolved) | {n for n, p in named if p.link is not None and p.link in labels}
    clash = [n for n, p in named if p.link == label and n not in members]
    if clash:
        raise ValueError(f"{owner}: the label {label!r} is already used by {clash}")
    linked = source.replace(link=label)
    return _with_parameters(tree, [_copy_of(linked, p) if n in members else p for n, p in named])


def unlink_parameters(tree: Any, names: Sequence[str], owner: str = "unlink") -> Any:
    """``tree`` with the parameters ``names`` taken out of their link groups (each keeps its current
    value and settings); a group left with one member loses its label too."""
    names = [names] if isinstance(names, str) else list(names)
    resolved = {resolve_parameter_name(tree, n, owner, canonical=False) for n in names}
    named = list(iter_parameters(tree))
    remaining: dict[str, int] = {}
    for n, p in named:
        if p.link is not None and n not in resolved:
            remaining[p.link] = remaining.get(p.link, 0) + 1
    return _with_parameters(
        tree,
        [
            p if p.link is None or (n not in resolved and remaining.get(p.link, 0) > 1) else p.replace(link=None)
            for n, p in named
        ],
    )


def drop_lone_links(tree: Any) -> Any:
    """``tree`` with the link labels that only one parameter carries removed."""
    groups = link_groups(tree)
    parameters = [p for _, p in iter_parameters(tree)]
    if all(p.link is None or p.link in groups for p in parameters):
        return tree
    return _with_parameters(tree, [p if p.link is None or p.link in groups else p.replace(link=None) for p in parameters])


def sync_links(tree: Any, preferred: Iterable[str] = ()) -> Any:
    """``tree`` with every copy of a linked parameter made equal to one of them: the first listed
    in ``preferred`` (full names) when a group has one, else its first occurrence (Gammapy's rule
    when it reads linked parameters from a file). Each copy keeps its own name."""
    named = list(iter_parameters(tree))
    preferred = set(preferred)
    chosen: dict[str, Parameter] = {}
    for n, p in named:  # the first preferred copy of each group
        if p.link is not None and n in preferred:
            chosen.setdefault(p.link, p)
    for _, p in named:  # else its first copy
        if p.link is not None:
            chosen.setdefault(p.link, p)
    return _with_parameters(tree, [p if p.link is None else _copy_of(chosen[p.link], p) for _, p in named])
