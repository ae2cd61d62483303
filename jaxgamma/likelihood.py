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
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .datasets.batch import batch_plans
from .datasets.core import Dataset, DatasetPlan, Datasets, _as_models
from .parameters import ParameterVector

__all__ = [
    "joint_stat",
    "joint_stat_plans",
    "make_stat_function",
    "plan_datasets",
    "plans_need_update",
]


def _to_device(plan: Any) -> Any:
    # numpy leaves become device arrays once, so that calls do not copy them again
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, plan)


def _as_datasets(datasets: Any) -> list[Dataset]:
    if isinstance(datasets, (Datasets, Dataset)):
        return list(Datasets(datasets))
    return list(datasets)


def plan_datasets(datasets: Datasets | Iterable[Dataset] | Dataset, models: Any) -> tuple[DatasetPlan, ...]:
    """The evaluation plans of ``datasets`` for ``models``, their arrays on the default device.

    Each dataset sees only the models that apply to it (``datasets_names``).
    """
    models = _as_models(models)
    return tuple(_to_device(d.plan(models)) for d in _as_datasets(datasets))


def _joint_stat_impl(plans: tuple[DatasetPlan, ...], models: Any) -> Any:
    total = jnp.asarray(0.0)
    for plan in plans:
        total = total + plan.stat_sum(models)
    return total


@eqx.filter_jit
def joint_stat_plans(plans: tuple[DatasetPlan, ...], models: Any) -> jax.Array:
    """``sum(plan.stat_sum(models) for plan in plans)``, compiled once per plan and model structure
    (plans and models are arguments: new values never retrace)."""
    return _joint_stat_impl(plans, models)


def joint_stat(datasets: Any, models: Any) -> jax.Array:
    """The joint fit statistic ``-2 ln L`` of ``datasets`` for ``models``.

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
    return _joint_stat_impl(plans, vector.unflatten(x, models))


def _stat_of_vector(
    x: jax.Array, plans: tuple[DatasetPlan, ...], models: Any, vector: ParameterVector
) -> jax.Array:
    # a plain (hashable) function: the static part of the jax.tree_util.Partial returned to users
    return _stat_of_vector_jit(x, plans, models, vector)


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
    models = _as_models(models)
    vector = ParameterVector.from_tree(models)
    if plans is None:
        plans = plan_datasets(datasets, models)
    plans = tuple(plans)
    if batch:
        plans = batch_plans(plans, models)
    fun = jax.tree_util.Partial(_stat_of_vector, plans=plans, models=models, vector=vector)
    return fun, np.asarray(vector.flatten(models)), vector.names


def plans_need_update(plans: Iterable[DatasetPlan], models: Any) -> bool:
    """Whether any plan should be rebuilt for ``models`` (see ``MapDatasetPlan.needs_update``)."""
    models = _as_models(models)
    return any(bool(getattr(plan, "needs_update", lambda m: False)(models)) for plan in plans)
