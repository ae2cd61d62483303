"""Many datasets of one structure evaluated by one ``vmap``-ped program.

A joint fit of N observations sums N dataset statistics. Traced one by one, the compiled program
holds N copies of the same graph and its compile time grows with N. Datasets reduced with the same
geometry and models (one dataset per observation of a DL3 analysis, cut out of one sky) differ only
in their arrays, in where their cutouts sit (the projection's reference pixel) and in the name of
their FoV background model. :func:`batch_plans` stacks such plans along a leading axis:

- the static bookkeeping that differs (dataset and background-model names, cutout slices in the
  parent map, the position the IRFs were taken at) is dropped from the stacked copy: the statistic
  does not use it, and the original plans keep it for re-planning;
- each point-source evaluator's projection becomes an :class:`~jaxgamma.geom.ArrayProjection`
  (array leaves, stacked);
- the per-dataset background spectral models are stacked at evaluation time (same structure);
- the active-pixel lists and the explicit low-background bins, whose lengths differ, are padded
  (masked bins contribute exactly 0).

:class:`BatchedMapDatasetPlan` then evaluates ``sum_i stat_i`` with one ``vmap`` of
:meth:`MapDatasetPlan.stat_sum_with`, so compile time does not grow with the number of datasets.
ON/OFF map datasets (:class:`MapDatasetOnOffPlan`, WStat: no background model, no explicit bins)
are batched the same way.
Only the statistic is batched (``stat_sum``): ``npred`` and the maps stay with the original plans.

Spectra (ON/OFF or Cash) and flux points carry nothing per dataset in their static metadata: plans
of one type and identical array shapes (runs reduced with the same energy axes) are simply stacked
into a :class:`StackedPlans`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .core import DatasetPlan
from .map import MapDatasetOnOffPlan, MapDatasetPlan, MapEvaluatorPlan

__all__ = ["BatchedMapDatasetPlan", "StackedPlans", "batch_plans", "statistic_only"]

# MapDatasetPlan fields whose length differs between datasets, and their padding value
_ACTIVE_FIELDS = {"active_pixels": 0, "counts_active": 0.0, "background_active": 0.0, "mask_active": False}
_ONOFF_ACTIVE_FIELDS = {
    "active_pixels": 0,
    "counts_active": 0.0,
    "counts_off_active": 0.0,
    "alpha_active": 0.0,
    "mask_active": False,
}
_EXPLICIT_FIELDS = {
    "explicit_energy": 0,
    "explicit_pixel": 0,
    "explicit_counts": 0.0,
    "explicit_background": 0.0,
}
# full maps: not used by the statistic, not copied into the stack
_MAP_FIELDS = ("counts", "background", "mask")
_ONOFF_MAP_FIELDS = ("counts", "counts_off", "alpha", "mask")


class BatchedMapDatasetPlan(DatasetPlan):
    """Several :class:`MapDatasetPlan` (or :class:`MapDatasetOnOffPlan`) of one structure, stacked
    along a leading axis; see the module docs. Built by :func:`batch_plans`."""

    plan: Any  # a MapDatasetPlan or MapDatasetOnOffPlan, every array leaf with a leading dataset axis
    projections: tuple[Any, ...]  # per evaluator: stacked ArrayProjection (point sources) or None
    explicit_valid: Any  # (N, K) bool: the explicit bins that exist (the rest is padding)
    names: tuple[str, ...] = eqx.field(static=True)
    background_model_names: tuple[str, ...] | None = eqx.field(static=True)

    def _background_spectral(self, models: Any) -> Any:
        if self.background_model_names is None:
            return None
        spectral = [models[name].spectral_model for name in self.background_model_names]
        return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *spectral)

    def stat_sum(self, models: Any) -> Any:
        """The summed statistic of the datasets: one ``vmap`` over the stacked plans."""

        def one(plan: Any, projections: Any, spectral: Any, valid: Any) -> Any:
            return plan.stat_sum_with(models, spectral, projections, valid)

        per_dataset = jax.vmap(one)(
            self.plan, self.projections, self._background_spectral(models), self.explicit_valid
        )
        return jnp.sum(per_dataset)


def _point_kernel(ev: MapEvaluatorPlan) -> bool:
    # a point source convolved in true energy: ``psf`` is the kernel zero-padded by the cutout size,
    # which can be padded further to a larger kernel (same centre) without changing the result
    return ev.kind == "point" and ev.psf_stage == "true" and ev.psf is not None


def _normalized_evaluator(
    ev: MapEvaluatorPlan, kernel_shape: tuple[int, int] | None = None
) -> MapEvaluatorPlan:
    # bookkeeping for re-planning and the full-map npred: not used by the statistic
    fields: dict[str, Any] = dict(
        parent_slices=((0, 0), (0, 0)),
        projection=None,
        irf_position=None,
        evaluation_radius=None,
        spatial_values=(),
        psf_width=0.0,
    )
    if kernel_shape is not None and _point_kernel(ev) and kernel_shape != ev.kernel_shape:
        dy, dx = ((k - j) // 2 for k, j in zip(kernel_shape, ev.kernel_shape, strict=True))
        xp = np if isinstance(ev.psf, np.ndarray) else jnp
        fields.update(psf=xp.pad(ev.psf, [(0, 0), (dy, dy), (dx, dx)]), kernel_shape=kernel_shape)
    return dataclasses.replace(ev, **fields)


def _fields(plan: Any) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """(active-pixel fields, explicit-bin fields, full-map fields) of a Cash or WStat map plan."""
    if type(plan) is MapDatasetPlan:
        return _ACTIVE_FIELDS, _EXPLICIT_FIELDS, _MAP_FIELDS
    return _ONOFF_ACTIVE_FIELDS, {}, _ONOFF_MAP_FIELDS


def _normalized(plan: Any, kernel_shapes: Sequence[tuple[int, int] | None] | None = None) -> Any:
    if kernel_shapes is None:
        kernel_shapes = (None,) * len(plan.evaluators)
    fields: dict[str, Any] = {field: np.zeros((0,)) for field in _fields(plan)[2]}
    if type(plan) is MapDatasetPlan:
        fields["background_model_name"] = None if plan.background_model_name is None else ""
    return dataclasses.replace(
        plan,
        evaluators=tuple(
            _normalized_evaluator(ev, k) for ev, k in zip(plan.evaluators, kernel_shapes, strict=True)
        ),
        name="",
        **fields,
    )


def statistic_only(plan: DatasetPlan) -> DatasetPlan:
    """``plan`` without the full maps that only ``npred`` and ``stat_array`` use (map datasets):
    what a fit's statistic needs, and no more on the device."""
    if type(plan) not in (MapDatasetPlan, MapDatasetOnOffPlan):
        return plan
    empty: dict[str, Any] = {field: np.zeros((0,)) for field in _fields(plan)[2]}
    return dataclasses.replace(plan, **empty)


def _projections(plan: MapDatasetPlan) -> tuple[Any, ...]:
    return tuple(
        ev.projection.as_arrays() if ev.kind == "point" and ev.projection is not None else None
        for ev in plan.evaluators
    )


def _shape_key(tree: Any) -> tuple[Any, ...]:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return (treedef, tuple((np.shape(x), np.dtype(getattr(x, "dtype", type(x))).str) for x in leaves))


def _group_key(plan: Any, models: Any) -> tuple[Any, ...]:
    """Plans with equal keys can be stacked (after padding the variable-length fields)."""
    active, explicit, _ = _fields(plan)
    variable: dict[str, Any] = {
        f: np.zeros((*np.shape(getattr(plan, f))[:-1], 0)) for f in {**active, **explicit}
    }
    # point-source kernels of different sizes are padded to the largest (same parity: same centre)
    normalized = _normalized(plan)
    evaluators = tuple(
        dataclasses.replace(
            ev,
            psf=np.zeros(np.shape(cast(Any, ev.psf))[:1]),
            kernel_shape=(ev.kernel_shape[0] % 2, ev.kernel_shape[1] % 2),
        )
        if _point_kernel(ev)
        else ev
        for ev in normalized.evaluators
    )
    fixed = dataclasses.replace(normalized, evaluators=evaluators, **variable)
    spectral = None
    if getattr(plan, "background_model_name", None) is not None:
        spectral = models[plan.background_model_name].spectral_model
    return (type(plan), _shape_key(fixed), _shape_key(_projections(plan)), _shape_key(spectral))


def _batchable(plan: Any) -> bool:
    if type(plan) not in (MapDatasetPlan, MapDatasetOnOffPlan):
        return False
    if any(ev.kind == "npred_template" for ev in plan.evaluators):
        return False  # a template's map is per dataset (a model leaf), not a plan field to stack
    return type(plan) is MapDatasetOnOffPlan or plan.background_lon is None


def _pad(x: Any, length: int, value: Any) -> Any:
    # numpy stays numpy (plans built for fit_batch), device arrays stay on the device
    xp = np if isinstance(x, np.ndarray) else jnp
    width = [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])]
    return xp.pad(x, width, constant_values=value)


def _stack(leaves: Sequence[Any]) -> Any:
    if all(isinstance(x, np.ndarray) for x in leaves):
        return np.stack(leaves)
    return jnp.stack([jnp.asarray(x) for x in leaves])


def _batch(plans: Sequence[Any]) -> BatchedMapDatasetPlan:
    active, explicit, _ = _fields(plans[0])
    n_active = max(p.active_pixels.shape[0] for p in plans)
    n_explicit = max(p.explicit_counts.shape[0] for p in plans) if explicit else 0
    kernel_shapes: list[tuple[int, int] | None] = [
        (
            max(p.evaluators[i].kernel_shape[0] for p in plans),
            max(p.evaluators[i].kernel_shape[1] for p in plans),
        )
        for i in range(len(plans[0].evaluators))
    ]
    padded = []
    for p in plans:
        fields: dict[str, Any] = {f: _pad(getattr(p, f), n_active, v) for f, v in active.items()}
        fields.update({f: _pad(getattr(p, f), n_explicit, v) for f, v in explicit.items()})
        padded.append(dataclasses.replace(_normalized(p, kernel_shapes), **fields))
    n_real = [p.explicit_counts.shape[0] if explicit else 0 for p in plans]
    valid = np.stack([np.arange(n_explicit) < n for n in n_real])
    with_background = getattr(plans[0], "background_model_name", None) is not None
    return BatchedMapDatasetPlan(
        plan=jax.tree_util.tree_map(lambda *x: _stack(x), *padded),
        projections=jax.tree_util.tree_map(lambda *x: _stack(x), *(_projections(p) for p in plans)),
        explicit_valid=valid,
        names=tuple(p.name for p in plans),
        background_model_names=tuple(str(p.background_model_name) for p in plans)
        if with_background
        else None,
    )


class StackedPlans(DatasetPlan):
    """Plans of one type and structure with nothing per-dataset in their static metadata (ON/OFF
    and Cash spectra of runs reduced alike, flux points of one binning), stacked along a leading
    axis: ``stat_sum`` is one ``vmap``. Built by :func:`batch_plans`."""

    plans: Any  # a DatasetPlan whose array leaves have a leading dataset axis
    size: int = eqx.field(static=True)

    def stat_sum(self, models: Any) -> Any:
        return jnp.sum(jax.vmap(lambda plan: plan.stat_sum(models))(self.plans))


def _stackable(plan: Any) -> bool:
    # spectra and flux points: their static fields are the model names and flags, shared by runs
    from .flux_points import FluxPointsPlan
    from .spectrum import SpectrumOnOffPlan, SpectrumPlan

    return type(plan) in (SpectrumPlan, SpectrumOnOffPlan, FluxPointsPlan)


def batch_plans(plans: Sequence[DatasetPlan], models: Any, min_size: int = 2) -> tuple[DatasetPlan, ...]:
    """``plans`` with every group of at least ``min_size`` plans of one structure replaced by one
    batched plan (at the position of the group's first plan): map-dataset plans by a
    :class:`BatchedMapDatasetPlan`, spectrum and flux-point plans of identical structure by a
    :class:`StackedPlans`.

    The sum of the statistics is unchanged (up to the order of the floating-point additions).
    ``models`` is the model structure the plans were built for (the background spectral models of
    a map group must share it).
    """
    groups: dict[Any, list[int]] = {}
    for i, plan in enumerate(plans):
        if _batchable(plan):
            groups.setdefault(("map", _group_key(plan, models)), []).append(i)  # type: ignore[arg-type]
        elif _stackable(plan):
            groups.setdefault(("stacked", type(plan), _shape_key(plan)), []).append(i)
    first: dict[int, tuple[str, list[int]]] = {}
    batched: set[int] = set()
    for key, members in groups.items():
        if len(members) >= min_size:
            first[members[0]] = (key[0], members)
            batched.update(members)
    out: list[DatasetPlan] = []
    for i, plan in enumerate(plans):
        if i in first:
            kind, members = first[i]
            group = [plans[j] for j in members]
            if kind == "map":
                out.append(_batch(group))  # type: ignore[arg-type]
            else:
                out.append(StackedPlans(jax.tree_util.tree_map(lambda *x: _stack(x), *group), len(group)))
        elif i not in batched:
            out.append(plan)
    return tuple(out)
