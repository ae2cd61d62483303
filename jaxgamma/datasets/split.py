"""Splitting a map dataset into analysis regions (Gammapy's ``gammapy.datasets.utils.split_dataset``).

A large field is cut into square regions of ``width``, each a dataset of ``width + 2 margin`` whose
``mask_fit`` keeps the central region only: the fit regions tile the parent without overlap, and the
margins carry the predicted counts of sources just outside. The datasets, all of one shape but at
the field's edges, then suit jaxgamma's batched joint fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord

from ..units import to_value
from .core import Datasets

__all__ = ["split_dataset"]


def _region_mask(cut_geom: Any, origin: tuple[int, int], il: int, ib: int, pixel_width: np.ndarray, last_lon: bool, last_lat: bool) -> np.ndarray:
    """Gammapy's mask of one region: the pixels within half a region width of its centre pixel
    ``(il, ib)`` (the upper edge included for the last region along an axis), in the parent's
    integer pixel indices (Gammapy's, from float pixel coordinates, can overlap by a row or miss
    one); ``origin`` is the cutout's first parent pixel (row, column)."""
    ny, nx = cut_geom.data_shape_image
    ilgrid, ibgrid = np.meshgrid(origin[1] + np.arange(nx), origin[0] + np.arange(ny))
    # Gammapy pairs the longitude index with pixel_width[1] and the latitude one with [0]
    half_l, half_b = pixel_width[1] / 2.0, pixel_width[0] / 2.0
    mask = (ilgrid >= il - half_l) & (ibgrid >= ib - half_b)
    mask &= (ilgrid <= il + half_l) if last_lon else (ilgrid < il + half_l)
    mask &= (ibgrid <= ib + half_b) if last_lat else (ibgrid < ib + half_b)
    return mask


def _centres(n: int, step: int) -> list[int]:
    """Gammapy's region centres along an axis of ``n`` pixels, every ``step`` from pixel 0; and one
    more where the last region (which reaches ``step / 2`` beyond its centre) stops short of the
    map's edge: Gammapy's leave those pixels out of every region."""
    centres = list(range(0, n, step))
    if centres[-1] + step / 2.0 < n - 1:
        centres.append(centres[-1] + step)
    return centres


def split_dataset(dataset: Any, width: Any, margin: Any, models: Any = None, split_template_models: bool = True) -> Any:
    """Split a map dataset into non-overlapping analysis regions, as Gammapy's ``split_dataset``.

    Parameters
    ----------
    dataset : MapDataset
        The dataset to split.
    width : float, str or Quantity
        The side of each region (deg).
    margin : float, str or Quantity
        Added on each side of a region's cutout (deg), below ``width / 2``: sources outside a
        region that contribute inside it should lie within it. ``mask_fit`` is False there and
        unchanged (the parent's) in the region.
    models : Models, optional
        The models of ``dataset``; given, the split models are returned too (see below).
    split_template_models : bool
        Cut the sky models with a :class:`TemplateSpatialModel` to each region (one copy per
        dataset, applying to it alone, their spectral parameters linked: one set, as Gammapy's
        shared spectral model); otherwise keep them whole.

    Returns
    -------
    Datasets, or (Datasets, Models) when ``models`` is given
        The regions' datasets, named ``"<name>-<k>"`` in Gammapy's order (by longitude index, then
        latitude; Gammapy's get random names), with the parent's GTI, IRF maps and meta. With
        ``models``: the models for them. A ``FoVBackgroundModel`` of the parent becomes one copy per
        dataset (its own norm, starting from the parent's values; Gammapy's split datasets have no
        background model) and so does a ``TemplateNPredModel`` of the parent (cut to the region);
        other models are kept as they are.

    Notes
    -----
    The regions are Gammapy's: centred on the pixels 0, n, 2n, ... (n the width in pixels), each
    reaching n/2 pixels either side, so the first is half outside the map. Where the last one along
    an axis stops short of the map's edge (a 50 x 40 pixel map split every 20 pixels: Gammapy's
    regions end at row 30), Gammapy fits the remaining pixels in no dataset; jaxgamma adds a region
    there, so that every pixel of the parent is in exactly one region's ``mask_fit``.

    A region's cut template keeps the template's values (it is not renormalised): Gammapy builds its
    cutout with the template's ``normalize`` flag, so a template read with ``normalize=True`` is
    normalised again over each cutout there (its flux in each region then equals the whole map's).
    """
    from ..geom import WcsGeom

    if not isinstance(getattr(dataset, "geom", None), WcsGeom):
        raise TypeError(f"split_dataset: a map dataset with a WcsGeom is needed, got {type(dataset).__name__}")
    width_deg = float(to_value(width, "deg", what="split_dataset: width"))
    margin_deg = float(to_value(margin, "deg", what="split_dataset: margin"))
    if not width_deg > 0:
        raise ValueError(f"split_dataset: width must be positive, got {width_deg} deg")
    if not 0 <= margin_deg < width_deg / 2.0:
        raise ValueError(f"split_dataset: margin should be lower than width/2 ({width_deg / 2:.6g} deg), got {margin_deg:.6g} deg")
    geom = dataset.geom.to_image()
    pixel_width = np.ceil(width_deg / np.asarray(geom.pixel_scales, dtype=float)).astype(int)
    ny, nx = geom.data_shape_image
    ilon = _centres(nx, int(pixel_width[1]))
    ilat = _centres(ny, int(pixel_width[0]))
    parts: list[tuple[Any, SkyCoord]] = []
    for il in ilon:
        for ib in ilat:
            lon, lat = (float(v) for v in geom.pix_to_world(il, ib))
            position = SkyCoord(lon, lat, unit="deg", frame=geom.frame)
            cut = dataset.cutout(position, width_deg + 2 * margin_deg, name=f"{dataset.name}-{len(parts)}")
            _, parent_slices, cutout_slices = dataset.geom.cutout_info(position, width_deg + 2 * margin_deg)
            origin = (parent_slices[0].start - cutout_slices[0].start, parent_slices[1].start - cutout_slices[1].start)
            mask = _region_mask(cut.geom, origin, il, ib, pixel_width, il == ilon[-1], ib == ilat[-1])
            mask_fit = np.broadcast_to(mask, cut.geom.data_shape).copy()
            if cut.mask_fit is not None:
                mask_fit &= np.asarray(cut.mask_fit, dtype=bool)
            parts.append((cut.replace(mask_fit=mask_fit), position))
    datasets = Datasets([d for d, _ in parts])
    if models is None:
        return datasets
    return datasets, _split_models(models, dataset.name, parts, width_deg + 2 * margin_deg, split_template_models)


def _split_models(models: Any, parent: str, parts: list, cut_width: float, split_templates: bool) -> Any:
    from ..models import FoVBackgroundModel, Models, SkyModel, TemplateNPredModel
    from ..models.spatial_template import TemplateSpatialModel
    from ..parameters import iter_parameters

    models = models if isinstance(models, Models) else Models(models)
    out: list[Any] = []
    link_groups: list[list[str]] = []
    for model in models:
        if isinstance(model, FoVBackgroundModel):
            if model.dataset_name != parent:
                out.append(model)
                continue
            out.extend(FoVBackgroundModel(dataset_name=d.name, spectral_model=model.spectral_model, spatial_model=model.spatial_model) for d, _ in parts)
        elif isinstance(model, TemplateNPredModel) and model.applies_to(parent) and model.datasets_names is not None:
            for d, position in parts:
                out.append(model.cutout(position, cut_width, name=f"{model.name}-{d.name}").replace(datasets_names=(d.name,)))
        elif split_templates and isinstance(model, SkyModel) and isinstance(model.spatial_model, TemplateSpatialModel):
            names = []
            for d, position in parts:
                try:
                    spatial = model.spatial_model.cutout(position, cut_width)
                except ValueError:  # no overlap (astropy's NoOverlapError is a ValueError)
                    continue
                names.append(f"{model.name}-{d.name}")
                out.append(model.replace(spatial_model=spatial, name=names[-1], datasets_names=(d.name,)))
            link_groups.append(names)
        else:
            out.append(model)
    result = Models(out, penalties=models.penalties)
    for names in link_groups:
        if len(names) < 2:
            continue
        spectral = [path for path, _ in iter_parameters(result[names[0]]) if path.startswith("spectral.")]
        for path in spectral:
            result = result.link(*[f"{n}.{path}" for n in names])
    return result
