"""Array operations of Gammapy's maps on plain numpy data laid out as ``(axes reversed..., y, x)``:
downsampling in blocks, regrouping an axis onto coarser edges, padding the spatial dimensions.

They carry Gammapy's rules (``WcsNDMap.downsample``, ``Map.resample_axis``, ``WcsNDMap.pad``) so
that datasets and IRF maps built from them hold Gammapy's numbers; the geometries are built by the
callers (:meth:`WcsGeom.downsample`, :meth:`MapAxis.downsample`, :meth:`WcsGeom.pad`).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .axes import MapAxis

__all__ = ["axis_group_indices", "downsample_data", "pad_data", "resample_axis_data", "upsample_data"]


def _broadcast_weights(data: np.ndarray, weights: Any) -> np.ndarray:
    if weights is None:
        return np.ones(data.shape)
    return np.broadcast_to(np.asarray(weights), data.shape)


def downsample_data(
    data: np.ndarray,
    factor: int,
    axis_index: int | None = None,
    weights: Any = None,
    preserve_counts: bool = True,
) -> np.ndarray:
    """Gammapy's ``WcsNDMap.downsample`` on an array: blocks of ``factor`` (``factor x factor``
    pixels when ``axis_index`` is None, else ``factor`` bins of the data axis ``axis_index``)
    summed, NaN ignored, after multiplying by ``weights``; with ``preserve_counts=False`` divided by
    the summed weights (0 where they vanish), a weighted mean. The result keeps ``data``'s dtype (a
    boolean mask becomes True where any weighted pixel of its block is True).

    The shape must be divisible by ``factor`` along the reduced dimensions (the geometry checks
    that first, with the message Gammapy gives)."""
    data = np.asarray(data)
    w = _broadcast_weights(data, weights)
    axes = (data.ndim - 2, data.ndim - 1) if axis_index is None else (axis_index % data.ndim,)
    shape: list[int] = []
    sum_axes = []
    for dim, n in enumerate(data.shape):
        if dim in axes:
            if n % factor:
                raise ValueError(f"downsample: dimension {dim} of length {n} is not divisible by {factor}")
            shape += [n // factor, factor]
            sum_axes.append(len(shape) - 1)
        else:
            shape.append(n)
    product = np.asarray(data, dtype=np.float64) * w
    out = np.nansum(product.reshape(shape), axis=tuple(sum_axes))
    if not preserve_counts:
        weight_sum = np.nansum(np.asarray(w, dtype=np.float64).reshape(shape), axis=tuple(sum_axes))
        out = np.divide(out, weight_sum, out=np.zeros_like(out), where=weight_sum != 0)
    return out.astype(data.dtype)


def axis_group_indices(axis: MapAxis, new_axis: MapAxis, what: str) -> np.ndarray:
    """The indices of ``axis``'s edges that are ``new_axis``'s edges (Gammapy's ``resample_axis``
    groups the bins between them); each new edge must equal one of the old edges (within 1e-6
    relative) or a ValueError names both axes."""
    if new_axis.name != axis.name:
        raise ValueError(f"{what}: the new axis is named {new_axis.name!r}, expected {axis.name!r}")
    old = axis.edges
    new = new_axis.to_unit(axis.unit).edges if new_axis.unit != axis.unit else new_axis.edges
    idx = np.searchsorted(old, new)
    idx = np.clip(idx, 0, old.size - 1)
    nearer = np.clip(idx - 1, 0, old.size - 1)
    idx = np.where(np.abs(old[nearer] - new) < np.abs(old[idx] - new), nearer, idx)
    if not np.allclose(old[idx], new, rtol=1e-6, atol=0) or np.any(np.diff(idx) <= 0):
        raise ValueError(
            f"{what}: the edges of the new {axis.name!r} axis {np.asarray(new).tolist()} {axis.unit} must be "
            f"a subset of the current edges {old.tolist()} {axis.unit}"
        )
    return idx


def resample_axis_data(
    data: np.ndarray,
    axis: MapAxis,
    new_axis: MapAxis,
    axis_index: int,
    weights: Any = None,
    ufunc: Any = np.add,
    what: str = "resample_axis",
) -> np.ndarray:
    """Gammapy's ``Map.resample_axis`` on an array: the bins of ``axis`` (data dimension
    ``axis_index``) between consecutive edges of ``new_axis`` reduced with ``ufunc`` (sum by
    default, ``np.logical_or`` for masks) after multiplying by ``weights``; bins outside the new
    axis are dropped. The result keeps ``data``'s dtype."""
    data = np.asarray(data)
    idx = axis_group_indices(axis, new_axis, what)
    dim = axis_index % data.ndim
    values = data if weights is None else data * _broadcast_weights(data, weights)
    taken = np.moveaxis(values, dim, 0)
    out = np.stack([ufunc.reduce(taken[lo:hi], axis=0) for lo, hi in itertools.pairwise(idx)])
    return np.moveaxis(out, 0, dim).astype(data.dtype)


def pad_data(data: np.ndarray, pad_width: tuple[int, int], mode: str = "constant", cval: Any = 0) -> np.ndarray:
    """Gammapy's ``WcsNDMap.pad`` (regular geometry) on an array: ``pad_width = (x, y)`` pixels on
    each side of the two spatial dimensions with ``numpy.pad`` (``cval`` for ``mode="constant"``)."""
    data = np.asarray(data)
    px, py = pad_width
    widths = [(0, 0)] * (data.ndim - 2) + [(py, py), (px, px)]
    kwargs: dict[str, Any] = {"constant_values": cval} if mode == "constant" else {}
    try:
        return np.pad(data, widths, mode=mode, **kwargs)  # type: ignore[call-overload]
    except ValueError as err:
        raise ValueError(f"pad: invalid mode {mode!r} ({err})") from None


def upsample_data(data: np.ndarray, factor: int, order: int = 0) -> np.ndarray:
    """Gammapy's ``WcsNDMap.upsample`` with ``preserve_counts=False`` on an array ``(..., y, x)``:
    each pixel split into ``factor x factor``, values interpolated with a spline of ``order``
    (``scipy.ndimage.map_coordinates``, edges held, ``mode="nearest"``) at the sub-pixel centres,
    on the whole array at once as Gammapy does (so NaNs spread to the neighbours an order-1 spline
    touches). The result keeps ``data``'s dtype."""
    from scipy import ndimage

    data = np.asarray(data)
    transposed = data.T  # (x, y, ...), as Gammapy's data.T
    out_shape = (transposed.shape[0] * factor, transposed.shape[1] * factor, *transposed.shape[2:])
    idx = list(np.meshgrid(*[np.arange(n, dtype=float) for n in out_shape], indexing="ij"))
    idx[0] = (idx[0] - 0.5 * (factor - 1)) / factor
    idx[1] = (idx[1] - 0.5 * (factor - 1)) / factor
    values = ndimage.map_coordinates(transposed, idx, order=order, mode="nearest")
    return values.T.astype(data.dtype)
