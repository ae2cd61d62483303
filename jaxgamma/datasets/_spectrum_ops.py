"""Gammapy's energy manipulations of spectrum datasets: ``slice_by_idx``, ``slice_by_energy``,
``resample_energy_axis`` and ``to_image`` of :class:`~jaxgamma.datasets.SpectrumDataset` and
:class:`~jaxgamma.datasets.SpectrumDatasetOnOff` (Gammapy's spectrum datasets inherit them from its
map datasets; the arithmetic is that of :mod:`jaxgamma.datasets._map_ops` on one pixel):

- counts, background and OFF counts are summed over the merged bins inside the safe mask, masks
  ORed, the energy-dispersion matrix regrouped over reconstructed energy with the same weights
  (Gammapy's ``mask_safe_edisp`` of a region dataset is its safe mask); exposure kept;
- ``acceptance`` is summed over the safe merged bins and ``acceptance_off = acceptance *
  counts_off / sum(alpha counts_off)``, so that the merged alpha weights the OFF counts.

The merged edges are the dataset's own (also in the unit they were read in), so energy masks
keep comparing exactly as Gammapy's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..geom import MapAxis
from ..geom.axes import check_energy_slices, energy_bin_slice
from ..geom.resample import axis_group_indices, resample_axis_data
from .core import _make_name


def _what(dataset: Any, method: str) -> str:
    return f"{type(dataset).__name__} {dataset.name!r}.{method}"


def _rebuild(dataset: Any, name: str | None, **changes: Any) -> Any:
    kwargs: dict[str, Any] = {
        field: getattr(dataset, field)
        for field in (
            "counts",
            "exposure",
            "edisp",
            "edisp_exposure",
            "energy_edges",
            "energy_true_edges",
            "energy_edges_native",
            "energy_unit",
            "mask_safe",
            "mask_fit",
            "livetime",
            "gti",
            "meta",
            "geom",
        )
    }
    extra = ("counts_off", "acceptance", "acceptance_off") if dataset.stat_type == "wstat" else ("background",)
    for field in extra:
        kwargs[field] = getattr(dataset, field)
    if kwargs["energy_edges_native"] is None:
        kwargs.pop("energy_unit")
    kwargs.update(changes)
    kwargs["meta"] = dict(kwargs["meta"])
    kwargs["name"] = _make_name() if name is None else str(name)
    return type(dataset)(**kwargs)


def _summed(dataset: Any) -> tuple[str, ...]:
    return ("counts", "counts_off") if dataset.stat_type == "wstat" else ("counts", "background")


def slice_by_idx(dataset: Any, slices: dict[str, Any], name: str | None = None) -> Any:
    check_energy_slices(slices, _what(dataset, "slice_by_idx"))
    changes: dict[str, Any] = {}
    edisp = dataset.edisp
    if "energy" in slices:
        axis = dataset.energy_axis.slice(slices["energy"])  # checks the slice
        start, stop, _ = slices["energy"].indices(dataset.n_bins)
        changes["energy_edges"] = axis.edges
        if dataset.energy_edges_native is not None:
            changes["energy_edges_native"] = dataset.energy_edges_native[start : stop + 1]
        for field in (*_summed(dataset), "mask_safe", "mask_fit"):
            value = getattr(dataset, field)
            changes[field] = None if value is None else value[start:stop]
        if dataset.stat_type == "wstat":
            for field in ("acceptance", "acceptance_off"):
                value = getattr(dataset, field)
                changes[field] = None if value is None else value[start:stop]
        if edisp is not None:
            edisp = edisp[:, start:stop]
    if "energy_true" in slices:
        axis = dataset.energy_axis_true.slice(slices["energy_true"])
        start, stop, _ = slices["energy_true"].indices(dataset.energy_true_edges.size - 1)
        changes["energy_true_edges"] = axis.edges
        for field in ("exposure", "edisp_exposure"):
            value = getattr(dataset, field)
            changes[field] = None if value is None else value[start:stop]
        if edisp is not None:
            edisp = edisp[start:stop]
    changes["edisp"] = edisp
    return _rebuild(dataset, name, **changes)


def slice_by_energy(dataset: Any, energy_min: Any = None, energy_max: Any = None, name: str | None = None) -> Any:
    what = _what(dataset, "slice_by_energy")
    return slice_by_idx(dataset, {"energy": energy_bin_slice(dataset.energy_axis, energy_min, energy_max, what)}, name)


def resample_energy_axis(dataset: Any, energy_axis: MapAxis, name: str | None = None) -> Any:
    what = _what(dataset, "resample_energy_axis")
    if not isinstance(energy_axis, MapAxis):
        raise TypeError(f"{what}: energy_axis must be a MapAxis, got {type(energy_axis).__name__}")
    axis = dataset.energy_axis
    idx = axis_group_indices(axis, energy_axis.to_unit("TeV") if energy_axis.unit != "TeV" else energy_axis, what)
    new_axis = MapAxis.from_edges(axis.edges[idx], name="energy", unit="TeV", interp="log")
    weights = dataset.mask_safe

    def regroup(values: Any, w: Any = None, ufunc: Any = np.add, axis_index: int = 0) -> Any:
        if values is None:
            return None
        return resample_axis_data(values, axis, new_axis, axis_index, w, ufunc, what=what)

    changes: dict[str, Any] = {"energy_edges": new_axis.edges}
    if dataset.energy_edges_native is not None:
        changes["energy_edges_native"] = dataset.energy_edges_native[idx]
    for field in _summed(dataset):
        changes[field] = regroup(getattr(dataset, field), weights)
    for field in ("mask_safe", "mask_fit"):
        changes[field] = regroup(getattr(dataset, field), None, np.logical_or)
    if dataset.edisp is not None:
        w = None if weights is None else weights[np.newaxis, :]
        changes["edisp"] = regroup(dataset.edisp, w, axis_index=1)
    if dataset.stat_type == "wstat":
        acceptance = acceptance_off = None
        if dataset.acceptance is not None:
            acceptance = regroup(dataset.acceptance, weights)
            if dataset.counts_off is not None and dataset.acceptance_off is not None:
                norm = regroup(dataset.background, weights)
                with np.errstate(invalid="ignore", divide="ignore"):
                    acceptance_off = acceptance * changes["counts_off"] / norm
        changes["acceptance"], changes["acceptance_off"] = acceptance, acceptance_off
    return _rebuild(dataset, name, **changes)


def to_image(dataset: Any, name: str | None = None) -> Any:
    return resample_energy_axis(dataset, dataset.energy_axis.squash(), name=name)
