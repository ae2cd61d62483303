"""Gammapy's map-dataset manipulations: slices in energy, regrouped energy axes, images, spatial
and energy downsampling, padding and spectra extracted in a region.

Each function takes a :class:`~jaxgamma.datasets.MapDataset` or
:class:`~jaxgamma.datasets.MapDatasetOnOff` and returns a new dataset (datasets are immutable);
the methods of the same names on the classes call them. The arithmetic is Gammapy 2.1's
(``MapDataset.slice_by_idx``, ``resample_energy_axis``, ``downsample``, ``pad``,
``to_spectrum_dataset`` and their ``MapDatasetOnOff`` versions):

- counts, background and OFF counts are summed over the merged bins after multiplying by the
  safe mask (masked bins do not enter); masks are ORed; the exposure is averaged over merged
  pixels and kept when energy bins merge (it lives on the true-energy axis);
- an energy-dispersion kernel map regroups its reconstructed-energy axis with the same weights on
  its own grid (Gammapy's ``mask_safe_edisp``); PSF maps are only sliced;
- the ON/OFF acceptance follows Gammapy: averaged over merged pixels, summed over the safe merged
  energy bins, and ``acceptance_off = acceptance * counts_off / sum(alpha counts_off)`` so that the
  merged alpha weights the OFF counts.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np

from ..geom import MapAxis
from ..geom.axes import check_energy_slices, energy_bin_slice, positive_factor
from ..geom.resample import downsample_data, pad_data, resample_axis_data
from .core import _make_name


def _what(dataset: Any, method: str) -> str:
    return f"{type(dataset).__name__} {dataset.name!r}.{method}"


def _summed_fields(dataset: Any) -> tuple[str, ...]:
    """The count-like maps, summed under the safe mask when bins merge."""
    return ("counts", "counts_off") if dataset.stat_type == "wstat" else ("counts", "background")


def _rebuild(dataset: Any, name: str | None, **changes: Any) -> Any:
    """A dataset of the same class with ``changes`` applied to its fields."""
    kwargs: dict[str, Any] = {
        "geom": dataset.geom,
        "energy_axis_true": dataset.energy_axis_true,
        "gti": dataset.gti,
        "meta_table": dataset.meta_table,
        "meta": dataset.meta,
        "livetime": dataset.livetime,
        "psf": dataset.psf,
        "edisp": dataset.edisp,
    }
    for field in ("counts", "exposure", "mask_safe", "mask_fit", *dataset._cutout_maps):
        kwargs[field] = getattr(dataset, field)
    kwargs.update(changes)
    kwargs["name"] = _make_name() if name is None else str(name)
    return type(dataset)(**kwargs)


def _edisp_weights(dataset: Any) -> Any:
    """Gammapy's ``mask_safe_edisp`` of an edisp kernel map (None without a safe mask)."""
    from .map import _irf_weights

    weights = _irf_weights(dataset, dataset.edisp, "edisp")
    return None if weights is None else weights[0]


def _is_kernel_map(edisp: Any) -> bool:
    from ..irf import EDispKernelMap

    return isinstance(edisp, EDispKernelMap)


# -- slices ---------------------------------------------------------------------------------------------
def slice_by_idx(dataset: Any, slices: dict[str, Any], name: str | None = None) -> Any:
    check_energy_slices(slices, _what(dataset, "slice_by_idx"))
    changes: dict[str, Any] = {}
    if "energy" in slices:
        s = slices["energy"]
        changes["geom"] = dataset.geom.replace_axes([dataset.geom.axes[0].slice(s)])
        for field in (*_summed_fields(dataset), "mask_safe", "mask_fit", *dataset._cutout_maps):
            value = getattr(dataset, field)
            changes[field] = None if value is None else value[s]
    if "energy_true" in slices:
        s = slices["energy_true"]
        changes["energy_axis_true"] = dataset.energy_axis_true.slice(s)
        changes["exposure"] = None if dataset.exposure is None else dataset.exposure[s]
    for field in ("psf", "edisp"):
        value = getattr(dataset, field)
        if value is not None:
            changes[field] = value.slice_by_idx(slices)
    return _rebuild(dataset, name, **changes)


def slice_by_energy(dataset: Any, energy_min: Any = None, energy_max: Any = None, name: str | None = None) -> Any:
    what = _what(dataset, "slice_by_energy")
    return slice_by_idx(dataset, {"energy": energy_bin_slice(dataset.geom.axes[0], energy_min, energy_max, what)}, name)


# -- energy regrouping ----------------------------------------------------------------------------------
def resample_energy_axis(dataset: Any, energy_axis: MapAxis, name: str | None = None) -> Any:
    what = _what(dataset, "resample_energy_axis")
    if not isinstance(energy_axis, MapAxis):
        raise TypeError(f"{what}: energy_axis must be a MapAxis, got {type(energy_axis).__name__}")
    axis = dataset.geom.axes[0]
    if energy_axis.unit != axis.unit:
        energy_axis = energy_axis.to_unit(axis.unit)
    weights = dataset.mask_safe
    changes: dict[str, Any] = {"geom": dataset.geom.replace_axes([energy_axis])}

    def regroup(values: Any, w: Any = None, ufunc: Any = np.add) -> Any:
        if values is None:
            return None
        return resample_axis_data(values, axis, energy_axis, 0, w, ufunc, what=what)

    for field in _summed_fields(dataset):
        changes[field] = regroup(getattr(dataset, field), weights)
    for field in ("mask_safe", "mask_fit"):
        changes[field] = regroup(getattr(dataset, field), None, np.logical_or)
    if dataset.stat_type == "wstat":
        changes.update(_onoff_merged(dataset, changes["counts_off"], lambda v: regroup(v, weights)))
    if _is_kernel_map(dataset.edisp):
        changes["edisp"] = dataset.edisp.resample_energy_axis(energy_axis, weights=_edisp_weights(dataset))
    return _rebuild(dataset, name, **changes)


def _onoff_merged(dataset: Any, counts_off: Any, merge: Any, merge_acceptance: Any = None) -> dict[str, Any]:
    """The merged ON/OFF acceptances: ``acceptance`` merged (``merge_acceptance``, default
    ``merge``) and ``acceptance_off = acceptance * counts_off / merge(alpha * counts_off)``
    (Gammapy's ``MapDatasetOnOff.resample_energy_axis`` / ``downsample``)."""
    if dataset.acceptance is None:
        return {"acceptance": None, "acceptance_off": None}
    acceptance = (merge_acceptance or merge)(dataset.acceptance)
    if dataset.counts_off is None or dataset.acceptance_off is None:
        return {"acceptance": acceptance, "acceptance_off": None}
    norm = merge(dataset.background)
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance_off = acceptance * counts_off / norm
    return {"acceptance": acceptance, "acceptance_off": acceptance_off}


def to_image(dataset: Any, name: str | None = None) -> Any:
    return resample_energy_axis(dataset, dataset.geom.axes[0].squash(), name=name)


# -- downsampling and padding ---------------------------------------------------------------------------
def downsample(dataset: Any, factor: int, axis_name: str | None = None, name: str | None = None) -> Any:
    what = _what(dataset, "downsample")
    factor = positive_factor(factor, f"{what}: factor")
    if axis_name not in (None, "energy"):
        raise ValueError(f"{what}: axis_name must be None (spatial) or 'energy', got {axis_name!r}")
    weights = dataset.mask_safe
    changes: dict[str, Any] = {}
    if axis_name is None:
        try:
            changes["geom"] = dataset.geom.downsample(factor)
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        index = None
        if dataset.exposure is not None:
            changes["exposure"] = downsample_data(dataset.exposure, factor, None, None, preserve_counts=False)
    else:
        axis = dataset.geom.axes[0]
        try:
            changes["geom"] = dataset.geom.replace_axes([axis.downsample(factor)])
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        index = 0
        if _is_kernel_map(dataset.edisp):
            changes["edisp"] = dataset.edisp.downsample(factor, axis_name="energy", weights=_edisp_weights(dataset))

    def block_sum(values: Any) -> Any:
        return None if values is None else downsample_data(values, factor, index, weights)

    for field in _summed_fields(dataset):
        changes[field] = block_sum(getattr(dataset, field))
    for field in ("mask_safe", "mask_fit"):
        value = getattr(dataset, field)
        changes[field] = None if value is None else downsample_data(value, factor, index, None, False)
    if dataset.stat_type == "wstat":
        changes.update(
            _onoff_merged(
                dataset,
                changes["counts_off"],
                block_sum,
                lambda v: downsample_data(v, factor, index, None, preserve_counts=False),
            )
        )
    return _rebuild(dataset, name, **changes)


def pad(dataset: Any, pad_width: Any, mode: str = "constant", name: str | None = None) -> Any:
    from ..geom.wcs import _pixel_pair

    what = _what(dataset, "pad")
    if dataset.stat_type == "wstat":
        raise NotImplementedError(f"{what}: padding is not implemented for MapDatasetOnOff (as in Gammapy)")
    try:
        width = _pixel_pair(pad_width, "pad_width")
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    changes: dict[str, Any] = {"geom": dataset.geom.pad(width)}
    for field in ("counts", "exposure", "background", "mask_safe", "mask_fit"):
        value = getattr(dataset, field)
        if value is not None:
            try:
                changes[field] = pad_data(value, width, mode, False if value.dtype == bool else 0)
            except ValueError as err:
                raise ValueError(f"{what}: {err}") from None
    return _rebuild(dataset, name, **changes)


# -- spectra in a region --------------------------------------------------------------------------------
def _region_pixels(dataset: Any, region: Any, what: str) -> np.ndarray:
    """The image mask of ``region`` (pixel centres inside), after Gammapy's checks: the region lies
    inside the map, and the mask is uniform over it in every energy bin."""
    image = dataset.geom.to_image()
    if not hasattr(region, "center"):
        raise TypeError(f"{what}: on_region must be a sky region with a centre (e.g. CircleSkyRegion), got {region!r}")
    border = image.pad(1).region_mask([region])
    if border[0].any() or border[-1].any() or border[:, 0].any() or border[:, -1].any():
        raise ValueError(f"{what}: the region must be fully contained inside the counts geometry, got {region}")
    inside = border[1:-1, 1:-1]
    if not inside.any():
        raise ValueError(f"{what}: no pixel centre lies inside {region}")
    mask = dataset.mask
    if mask is not None:
        values = mask[:, inside]
        uniform = np.all(values, axis=1) | ~np.any(values, axis=1)
        if not np.all(uniform):
            raise ValueError(
                f"{what}: the mask must be spatially uniform within the region for each energy bin "
                f"(not in bins {np.flatnonzero(~uniform).tolist()})"
            )
    return inside


def _region_sum(values: np.ndarray, inside: np.ndarray, weights: Any) -> np.ndarray:
    selected = values[:, inside]
    if weights is not None:
        selected = np.where(weights[:, inside], selected, 0.0)
    return selected.sum(axis=1)


def _region_mean(values: np.ndarray, inside: np.ndarray, weights: Any = None) -> np.ndarray:
    selected = np.asarray(values[:, inside], dtype=np.float64)
    if weights is None:
        return selected.mean(axis=1)
    w = weights[:, inside]
    n = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w, selected, 0.0).sum(axis=1) / n  # NaN where no pixel is safe (np.mean of nothing)


def _edisp_at(dataset: Any, center: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The edisp matrix ``(n_true, n_reco)`` and its exposure at the pixel nearest ``center``
    (Gammapy's ``IRFMap.to_region_nd_map`` of the region centre)."""
    from ..irf import EDispKernel, EDispKernelMap, EDispMap

    edisp = dataset.edisp
    if edisp is None:
        return None, None
    if isinstance(edisp, EDispKernel):
        return np.asarray(edisp.pdf_matrix, dtype=np.float64), None
    values = edisp._pixel_values(center)
    if isinstance(edisp, EDispKernelMap):
        matrix = values
    elif isinstance(edisp, EDispMap):
        from ..irf.edisp import EDISP_THRESHOLD

        matrix = edisp._kernel_values(values, dataset.geom.axes[0], EDISP_THRESHOLD)
    else:  # pragma: no cover - the dataset checks its edisp type
        raise TypeError(f"unsupported energy dispersion {type(edisp).__name__}")
    exposure = None
    if edisp.exposure is not None and edisp.exposure_geom is not None:
        from ..irf._core import nearest_index, position_pix

        x, y = position_pix(edisp.exposure_geom, center)
        nx, ny = edisp.exposure_geom.npix
        exposure = np.ravel(edisp.exposure[..., nearest_index(ny, y), nearest_index(nx, x)]).astype(np.float64)
        exposure = exposure * float(u.Unit(edisp.exposure_unit).to("cm2 s"))
    return np.asarray(matrix, dtype=np.float64), exposure


def to_spectrum_dataset(
    dataset: Any,
    on_region: Any,
    containment_correction: bool = False,
    name: str | None = None,
    models: Any = None,
    background_map: Any = None,
) -> Any:
    """``background_map``: a Cash dataset's map to sum as the spectrum's background instead of its
    background prediction (the flux profile's whole prediction, computed once for all regions)."""
    from ..geom.region import RegionGeom
    from .spectrum import SpectrumDataset, SpectrumDatasetOnOff

    what = _what(dataset, "to_spectrum_dataset")
    inside = _region_pixels(dataset, on_region, what)
    safe = dataset.mask_safe
    center = on_region.center
    axis, axis_true = dataset.geom.axes[0], dataset.energy_axis_true
    exposure = None if dataset.exposure is None else _region_mean(dataset.exposure, inside)
    if containment_correction:
        from regions import CircleSkyRegion

        from ..irf import PSFMap

        if not isinstance(on_region, CircleSkyRegion):
            raise TypeError(f"{what}: containment correction is only supported for a CircleSkyRegion")
        if not isinstance(dataset.psf, PSFMap):
            raise ValueError(f"{what}: no PSFMap set, containment correction impossible")
        containment = dataset.psf.containment(
            rad=on_region.radius, energy_true=axis_true.center * u.Unit(axis_true.unit), position=center
        )
        if exposure is not None:
            exposure = exposure * np.ravel(containment)
    edisp, edisp_exposure = _edisp_at(dataset, center)
    if edisp_exposure is not None and edisp_exposure.shape != (axis_true.nbin,):
        edisp_exposure = None
    kwargs: dict[str, Any] = {
        "counts": None if dataset.counts is None else _region_sum(dataset.counts, inside, safe),
        "exposure": exposure,
        "edisp": edisp,
        "edisp_exposure": edisp_exposure,
        "energy_edges": axis.edges * u.Unit(axis.unit or "TeV"),
        "energy_true_edges": axis_true.edges * u.Unit(axis_true.unit or "TeV"),
        "mask_safe": None if safe is None else np.any(safe[:, inside], axis=1),
        "mask_fit": None if dataset.mask_fit is None else np.any(dataset.mask_fit[:, inside], axis=1),
        "livetime": dataset.livetime,
        "gti": dataset.gti,
        "meta": dict(dataset.meta),
        "name": _make_name() if name is None else str(name),
        "geom": RegionGeom.from_regions([on_region]),
    }
    if dataset.stat_type != "wstat":
        background = None
        if background_map is not None:
            background = _region_sum(np.asarray(background_map, dtype=np.float64), inside, safe)
        elif dataset.background is not None:
            from .map import _background_only

            npred_background = dataset.npred_background(_background_only(models, dataset))
            background = _region_sum(np.asarray(npred_background, dtype=np.float64), inside, safe)
        return SpectrumDataset(background=background, **kwargs)
    spectrum = SpectrumDataset(**kwargs)
    counts_off = acceptance = acceptance_off = None
    if dataset.counts_off is not None:
        counts_off = _region_sum(dataset.counts_off, inside, safe)
    if dataset.acceptance is not None:
        acceptance = _region_mean(dataset.acceptance, inside, safe)
        if counts_off is not None and dataset.acceptance_off is not None:
            norm = _region_sum(dataset.background, inside, safe)
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptance_off = np.nan_to_num(acceptance * counts_off / norm)
    return SpectrumDatasetOnOff.from_spectrum_dataset(
        spectrum, acceptance=acceptance, acceptance_off=acceptance_off, counts_off=counts_off, name=spectrum.name
    )
