"""The joint likelihood: one compiled function of the dataset plans and the models.

A fit needs the statistic ``sum_datasets stat_sum`` as a function of the free parameters. Each
dataset precomputes in numpy what does not depend on a parameter (:meth:`Dataset.plan`); this
module turns the plans into device arrays once (:func:`plan_datasets`) and evaluates the sum with a
single ``eqx.filter_jit``-compiled function whose arguments are the plans and the models
(:func:`joint_stat_plans`): the plans' arrays are arguments of the compiled program, never
constants baked into it, and changing a parameter value never retraces.

:func:`make_stat_function` gives the fit engine a function of the free-parameter vector, as a
pytree (``jax.tree_util.Partial``) that can itself be passed as an argument to jitted code.

A plan is valid for the model structure and the source positions it was built for;
``plan.needs_update(models)`` (map datasets) says when a source moved far enough that Gammapy would
re-take its IRFs and cutout (:func:`plans_need_update`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .datasets.batch import BatchedMapDatasetPlan, batch_plans, statistic_only
from .datasets.core import Dataset, DatasetPlan, Datasets, _as_models
from .models.prior import has_priors, prior_stat_sum
from .models.sky import Models
from .parameters import ParameterVector, map_parameters
from .stats import penalty_stat_sum

__all__ = [
    "dense_value_grad_hessian",
    "joint_stat",
    "joint_stat_plans",
    "make_stat_function",
    "plan_datasets",
    "plans_need_update",
    "value_grad_hessian",
]


def _to_device(plan: Any) -> Any:
    # numpy leaves become device arrays once, so that calls do not copy them again; device_put
    # (one call for the tree) compiles nothing, where jnp.asarray compiles a copy program per shape
    leaves, treedef = jax.tree_util.tree_flatten(plan)
    host = [i for i, x in enumerate(leaves) if isinstance(x, np.ndarray)]
    for i, x in zip(host, jax.device_put([leaves[i] for i in host]), strict=True):
        leaves[i] = x
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _as_datasets(datasets: Any) -> list[Dataset]:
    if isinstance(datasets, (Datasets, Dataset)):
        return list(Datasets(datasets))
    return list(datasets)


def plan_datasets(
    datasets: Datasets | Iterable[Dataset] | Dataset, models: Any, device: bool = True
) -> tuple[DatasetPlan, ...]:
    """The evaluation plans of ``datasets`` for ``models``, their arrays on the default device
    (numpy arrays on the host with ``device=False``).

    Each dataset sees only the models that apply to it (``datasets_names``).
    """
    models = _as_models(models)
    plans = (d.plan(models) for d in _as_datasets(datasets))
    return tuple(_to_device(p) if device else p for p in plans)


def _joint_stat_impl(plans: tuple[DatasetPlan, ...], models: Any) -> Any:
    total = jnp.asarray(0.0)
    for plan in plans:
        total = total + plan.stat_sum(models)
    return total


def _regularization(models: Any) -> Any:
    # the parameters' priors and the models' penalties (Gammapy's Datasets.stat_sum adds both)
    return prior_stat_sum(models) + penalty_stat_sum(models)


def _total_stat(plans: tuple[DatasetPlan, ...], models: Any) -> Any:
    # Gammapy's Datasets.stat_sum: the likelihood terms plus the priors and penalties
    return _joint_stat_impl(plans, models) + _regularization(models)


@eqx.filter_jit
def joint_stat_plans(plans: tuple[DatasetPlan, ...], models: Any) -> jax.Array:
    """``sum(plan.stat_sum(models) for plan in plans)`` plus the parameters' prior terms, compiled
    once per plan and model structure (plans and models are arguments: new values never retrace)."""
    return _total_stat(plans, models)


def joint_stat(datasets: Any, models: Any) -> jax.Array:
    """The joint fit statistic ``-2 ln L`` of ``datasets`` for ``models``, with the prior terms
    ``-2 ln p`` of parameters that have a prior (Gammapy's ``Datasets.stat_sum``).

    ``datasets`` is a :class:`Datasets` (or a dataset, or a list of them), planned here, or a
    sequence of plans from :func:`plan_datasets` (reused: the fast path in a loop).
    """
    models = _as_models(models)
    items = datasets if isinstance(datasets, (tuple, list)) else None
    if items is not None and items and all(isinstance(p, DatasetPlan) for p in items):
        plans = tuple(items)
    else:
        plans = plan_datasets(datasets, models)
    return joint_stat_plans(plans, models)


@eqx.filter_jit
def _stat_of_vector_jit(
    x: jax.Array, plans: tuple[DatasetPlan, ...], models: Any, vector: ParameterVector
) -> jax.Array:
    return _total_stat(plans, vector.unflatten(x, models))


def _stat_of_vector(
    x: jax.Array, plans: tuple[DatasetPlan, ...], models: Any, vector: ParameterVector
) -> jax.Array:
    # a plain (hashable) function: the static part of the jax.tree_util.Partial returned to users
    return _stat_of_vector_jit(x, plans, models, vector)


def clean_models(models: Any) -> Models:
    """The models with errors and covariance removed: static metadata that would otherwise make
    every fit from a previous result a new program structure (a retrace), and keep the background
    models of batched datasets from stacking."""
    models = _as_models(models)
    stripped = map_parameters(lambda _, p: p if p.error == 0 else p.replace(error=0.0), models)
    return Models(stripped.models, covariance=None, penalties=models.penalties)


def make_stat_function(
    datasets: Any, models: Any, plans: tuple[DatasetPlan, ...] | None = None, batch: bool = True
) -> tuple[jax.tree_util.Partial, np.ndarray, tuple[str, ...]]:
    """The joint statistic as a function of the free-parameter vector.

    With ``batch`` (default), map datasets of one structure (e.g. one per observation of a DL3
    analysis) are stacked and evaluated by one ``vmap`` (:func:`jaxgamma.datasets.batch.batch_plans`),
    so the compiled program does not grow with their number.

    Returns
    -------
    fun : jax.tree_util.Partial
        ``fun(x)`` is the joint statistic with the free parameters (physical values, canonical
        units) set to ``x``; the frozen ones keep their values. It is a pytree whose leaves are the
        plans' arrays and the parameter values: pass it as an *argument* to jitted code
        (``jax.jit(lambda f, x: jax.grad(f)(x))(fun, x)``) rather than closing over it, so that its
        arrays are not compiled in as constants. Called directly, it runs one compiled program.
    x0 : numpy array
        The current free values.
    names : tuple of str
        ``"<model>.<component>.<parameter>"`` of each entry of ``x``.
    """
    models = clean_models(models)
    vector = ParameterVector.from_tree(models)
    if plans is None:
        plans = plan_datasets(datasets, models, device=False)
    plans = tuple(plans)
    if batch:
        plans = batch_plans(plans, models)
    # the statistic needs no full maps: they are not copied to the device (with host plans, the
    # batching above pads and stacks in numpy, and each array crosses to the device once)
    plans = tuple(_to_device(statistic_only(p)) for p in plans)
    fun = jax.tree_util.Partial(_stat_of_vector, plans=plans, models=models, vector=vector)
    return fun, vector.values(models), vector.names


def plans_need_update(plans: Iterable[DatasetPlan], models: Any) -> bool:
    """Whether any plan should be rebuilt for ``models`` (see ``MapDatasetPlan.needs_update``)."""
    models = _as_models(models)
    return any(bool(getattr(plan, "needs_update", lambda m: False)(models)) for plan in plans)


# -- value, gradient and Hessian ------------------------------------------------------------------------
def dense_value_grad_hessian(fun: Any, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Value, gradient and (symmetrised) Hessian of ``fun`` at ``x`` in one forward-over-reverse pass."""

    def grad_with_aux(v: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        value, grad = jax.value_and_grad(fun)(v)
        return grad, (value, grad)

    hessian, (value, grad) = jax.jacfwd(grad_with_aux, has_aux=True)(x)
    return value, grad, 0.5 * (hessian + hessian.T)


class _LocalGroup(NamedTuple):
    position: int  # of the batched plan in the plans
    local_index: np.ndarray  # (N, L): vector positions of each dataset's own background parameters
    local_vector: ParameterVector  # the free parameters of one background spectral model


def _local_structure(fun: Any) -> tuple[tuple[_LocalGroup, ...], np.ndarray] | None:
    """For a statistic from :func:`make_stat_function` with batched map datasets whose background
    models have free parameters: those groups and the positions of the other ("shared") free
    parameters. None when there is no such structure to exploit."""
    if not isinstance(fun, jax.tree_util.Partial) or fun.func is not _stat_of_vector:
        return None
    plans, models, vector = fun.keywords["plans"], fun.keywords["models"], fun.keywords["vector"]
    groups = []
    for k, plan in enumerate(plans):
        if not isinstance(plan, BatchedMapDatasetPlan) or plan.background_model_names is None:
            continue
        local_vector = ParameterVector.from_tree(models[plan.background_model_names[0]].spectral_model)
        if not local_vector.names:
            continue
        rows = [
            [vector.index(f"{name}.spectral.{p}") for p in local_vector.names]
            for name in plan.background_model_names
        ]
        groups.append(_LocalGroup(k, np.asarray(rows, dtype=np.int32), local_vector))
    if not groups:
        return None
    # a dataset's own background parameters must reach no other plan (datasets given as a plain
    # list may repeat a name): otherwise the dense Hessian
    used = [n for p in plans for n in (getattr(p, "background_model_names", None) or ())]
    used += [p.background_model_name for p in plans if getattr(p, "background_model_name", None)]
    if len(used) != len(set(used)):
        return None
    local = np.concatenate([g.local_index.ravel() for g in groups])
    # a background parameter linked to one outside these background models (a source's, say) is
    # not "own": its other copies would be held fixed in the blocks
    batched_models = {n for g in groups for n in plans[g.position].background_model_names}
    for name, k in zip(vector.leaf_names, vector.leaf_index, strict=True):
        if k in local and name.split(".")[0] not in batched_models:
            return None
    shared = np.setdiff1d(np.arange(len(vector.names)), local).astype(np.int32)
    return tuple(groups), shared


def value_grad_hessian(fun: Any, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Value, gradient and Hessian of the statistic ``fun`` (from :func:`make_stat_function`) at
    the free-parameter vector ``x``.

    With batched map datasets (one per observation, say), each dataset's statistic depends on the
    shared parameters (the sources) and on its own background model only: the Hessian is then the
    sum of per-dataset blocks of size (shared + own), computed with one ``vmap`` over the datasets.
    Its cost grows as ``N x (S + L)`` instead of ``N x (S + N L)`` for ``N`` datasets, ``S`` shared
    and ``L`` own parameters. Otherwise (or for any other function) the dense forward-over-reverse
    Hessian. Both give the same numbers (to rounding).
    """
    x = jnp.asarray(x)
    structure = _local_structure(fun)
    if structure is None:
        return dense_value_grad_hessian(fun, x)
    groups, shared = structure
    plans, models, vector = fun.keywords["plans"], fun.keywords["models"], fun.keywords["vector"]
    n, n_shared = x.shape[0], shared.shape[0]
    grouped = {g.position for g in groups}
    others = tuple(p for k, p in enumerate(plans) if k not in grouped)

    def with_shared(xs: jax.Array) -> Any:
        return vector.unflatten(x.at[shared].set(xs), models)

    def others_stat(xs: jax.Array) -> jax.Array:
        return _joint_stat_impl(others, with_shared(xs))

    value, g_shared, h_shared = dense_value_grad_hessian(others_stat, x[shared])
    grad = jnp.zeros(n).at[shared].add(g_shared)
    hess = jnp.zeros((n, n)).at[shared[:, None], shared[None, :]].add(h_shared)
    if has_priors(models) or bool(getattr(models, "penalties", ())):
        # the prior terms of every parameter (a background norm's included) and the penalties
        v_p, g_p, h_p = dense_value_grad_hessian(lambda v: _regularization(vector.unflatten(v, models)), x)
        value, grad, hess = value + v_p, grad + g_p, hess + h_p
    current = vector.unflatten(x, models)
    for group in groups:
        batched = plans[group.position]
        spectral = batched._background_spectral(current)
        n_data = group.local_index.shape[0]
        y = jnp.concatenate([jnp.broadcast_to(x[shared], (n_data, n_shared)), x[group.local_index]], axis=1)

        def one(y_i: jax.Array, plan: Any, projections: Any, spectral_i: Any, valid: Any, group=group) -> Any:
            def stat(v: jax.Array) -> jax.Array:
                own = group.local_vector.unflatten(v[n_shared:], spectral_i)
                return plan.stat_sum_with(with_shared(v[:n_shared]), own, projections, valid)

            return dense_value_grad_hessian(stat, y_i)

        v_i, g_i, h_i = jax.vmap(one)(y, batched.plan, batched.projections, spectral, batched.explicit_valid)
        index = np.concatenate([np.broadcast_to(shared, (n_data, n_shared)), group.local_index], axis=1)
        value = value + jnp.sum(v_i)
        grad = grad.at[index].add(g_i)
        hess = hess.at[index[:, :, None], index[:, None, :]].add(h_i)
    return value, grad, 0.5 * (hess + hess.T)
