"""Field-of-view background normalisation (Gammapy 2.1's ``FoVBackgroundMaker``).

jaxgamma datasets hold no models. Where Gammapy attaches a ``FoVBackgroundModel`` to the dataset
and scales (or fits) its norm, :class:`FoVBackgroundMaker` here

- :meth:`~FoVBackgroundMaker.make_background_model` returns that fitted
  :class:`~jaxgamma.models.FoVBackgroundModel` (norm, and tilt if free, with errors), relative to
  the dataset's background as given: attach it to the unscaled dataset for a joint fit, as
  Gammapy's joint datasets carry it;
- :meth:`~FoVBackgroundMaker.run` returns the dataset with its background multiplied by the fitted
  model (``npred_background``), which is what Gammapy's stacking folds in; when the requirements
  fail, the safe mask is all False and the background is left unscaled.

The normalisation uses the bins of ``mask_safe & mask_fit & exclusion`` where the prediction is
not NaN: ``norm = (sum counts - sum npred_other) / sum background`` with error
``sqrt(sum counts - sum npred_other) / sum background`` ("scale"), or a Cash fit of the background
model with the sky models frozen ("fit").
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..models import FoVBackgroundModel, Models, SkyModel, TemplateNPredModel, get_model_class
from ..units import ENERGY

__all__ = ["FoVBackgroundMaker", "read_mask", "write_mask"]

log = logging.getLogger(__name__)


def _freeze(model: Any) -> Any:
    """``model`` with every parameter frozen."""
    import jax

    from ..parameters import Parameter

    def leaf(x: Any) -> bool:
        return isinstance(x, Parameter)

    return jax.tree_util.tree_map(lambda p: p.replace(frozen=True) if leaf(p) else p, model, is_leaf=leaf)


def _create_model(model: Any, kind: str) -> Any:
    if model is None or not isinstance(model, str):
        return model
    return get_model_class(model, kind)()


def read_mask(path: Any, hdu: str | None = None) -> tuple[Any, np.ndarray]:
    """``(geometry, boolean data)`` of a WCS mask map FITS file (e.g. an exclusion mask written by
    Gammapy's ``Map.write``): the first image HDU (or ``hdu``), values cast to bool."""
    from astropy.io import fits

    from ..geom import WcsGeom, find_map_hdus

    path = os.path.expandvars(os.fspath(path))
    try:
        hdulist = fits.open(path, memmap=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"exclusion mask file {path!r}: not a readable FITS file ({err})") from None
    with hdulist:
        try:
            image, bands, format = find_map_hdus(hdulist, hdu)
            geom = WcsGeom.from_header(image.header, bands, format=format)
        except (KeyError, ValueError) as err:
            raise ValueError(f"exclusion mask file {path!r}: {err}") from None
        data = np.asarray(image.data)
    if data.shape != geom.data_shape:
        raise ValueError(
            f"exclusion mask file {path!r}, HDU {image.name!r}: data shape {data.shape} does not match "
            f"its geometry {geom.data_shape}"
        )
    return geom, data.astype(bool)


def write_mask(path: Any, geom: Any, data: Any, overwrite: bool = False) -> None:
    """Write a boolean image mask on ``geom`` (e.g. an exclusion mask, True = usable) as a WCS
    image FITS file that :func:`read_mask`, ``datasets.background.exclusion`` and Gammapy's
    ``Map.read`` read; written atomically (no partial file), refused if it exists unless
    ``overwrite``."""
    from astropy.io import fits

    from ..io._atomic import atomic_paths

    data = np.asarray(data)
    if data.dtype != bool or data.shape != geom.data_shape_image:
        raise ValueError(
            f"write_mask {os.fspath(path)!r}: expected a boolean array of the image shape "
            f"{geom.data_shape_image}, got {data.dtype} {data.shape}"
        )
    with atomic_paths(os.path.expandvars(os.fspath(path)), overwrite=overwrite) as (tmp,):
        fits.PrimaryHDU(data.astype(np.uint8), header=geom.to_image().to_header()).writeto(tmp, overwrite=True)


def _exclusion_on(mask: Any, geom: Any, fill: bool = False) -> np.ndarray:
    """An exclusion mask (True = usable) on ``geom``'s image: a boolean array of that image shape
    (or of the full data shape), or a map with ``geom`` and ``data`` (jaxgamma's ``(geom,
    data)`` pair, or any object with those attributes, e.g. a Gammapy ``WcsNDMap``) taken at the
    nearest pixel of each pixel centre, ``fill`` outside it (Gammapy's ``interp_to_geom``)."""
    from ..geom import WcsGeom

    if isinstance(mask, tuple) and len(mask) == 2:
        mask_geom, data = mask
    elif hasattr(mask, "geom") and hasattr(mask, "data"):
        mask_geom, data = mask.geom, mask.data
    else:
        data = np.asarray(mask)
        if data.dtype != bool:
            raise ValueError(
                f"FoVBackgroundMaker: the exclusion mask must be boolean, got dtype {data.dtype}"
            )
        if data.shape[-2:] != geom.data_shape_image:
            raise ValueError(
                f"FoVBackgroundMaker: the exclusion mask has shape {data.shape}, the dataset image "
                f"{geom.data_shape_image}"
            )
        return data if data.ndim == 3 else data[None]
    data = np.asarray(data).astype(bool)
    if data.ndim > 2:
        data = np.any(data.reshape(-1, *data.shape[-2:]), axis=0)
    if not isinstance(mask_geom, WcsGeom):
        nx, ny = (int(n) for n in np.ravel(mask_geom.npix)[:2])
        mask_geom = WcsGeom(mask_geom.wcs, (nx, ny))
    mask_image = mask_geom.to_image()
    image = geom.to_image()
    if mask_image == image:
        return data[None]
    lon, lat = image.get_coord()
    x, y = mask_image.world_to_pix(lon, lat, frame=image.frame)
    ny, nx = data.shape
    with np.errstate(invalid="ignore"):
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
    inside = np.isfinite(ix) & np.isfinite(iy) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    out = np.full(image.data_shape_image, bool(fill))
    out[inside] = data[iy[inside].astype(int), ix[inside].astype(int)]
    return out[None]


class FoVBackgroundMaker:
    """Normalise a dataset's background template on the field of view, as Gammapy's
    ``FoVBackgroundMaker`` (see the module doc for how the result is returned).

    Parameters
    ----------
    method : {"scale", "fit"}
    exclusion_mask : bool array (image or cube shape of the datasets), a map, or a FITS file, optional
        True where the counts may be used. A map (``(geom, data)``, or an object with ``geom`` and
        ``data``, or a file read with :func:`read_mask`) is projected to each dataset, nearest
        pixel, False outside it.
    spectral_model : SpectralModel or str
        Norm spectral model of the background model (default "pl-norm").
    spatial_model : SpatialModel or str, optional
    min_counts : float
        The normalisation fails unless more counts (or residual counts with sky models) than this
        are in the mask.
    min_npred_background : float
        The same for the predicted background.
    fit : dict, optional
        Keyword arguments of :func:`jaxgamma.fit.fit` for ``method="fit"``.
    """

    tag = "FoVBackgroundMaker"
    available_methods = ("fit", "scale")

    def __init__(
        self,
        method: str = "scale",
        exclusion_mask: Any = None,
        spectral_model: Any = "pl-norm",
        spatial_model: Any = None,
        min_counts: float = 0,
        min_npred_background: float = 0,
        fit: dict[str, Any] | None = None,
    ):
        if method not in self.available_methods:
            raise ValueError(
                f"Not a valid method for FoVBackgroundMaker: {method}. Choose from {list(self.available_methods)}"
            )
        self.method = method
        if isinstance(exclusion_mask, (str, os.PathLike)):
            exclusion_mask = read_mask(exclusion_mask)
        self.exclusion_mask = exclusion_mask
        spectral_model = _create_model(spectral_model, "spectral")
        if not getattr(spectral_model, "is_norm_spectral_model", False):
            raise ValueError("FoVBackgroundMaker: the spectral model must be a norm spectral model")
        self.default_spectral_model = spectral_model
        self.default_spatial_model = _create_model(spatial_model, "spatial")
        self.min_counts = float(min_counts)
        self.min_npred_background = float(min_npred_background)
        self.fit = dict(fit or {})

    def __repr__(self) -> str:
        return f"FoVBackgroundMaker(method={self.method!r})"

    # -- pieces ------------------------------------------------------------------------------------
    def make_default_fov_background_model(self, dataset: Any) -> FoVBackgroundModel:
        """A fresh background model for ``dataset`` (``<name>-bkg``) with the default models."""
        return FoVBackgroundModel(
            dataset_name=dataset.name,
            spectral_model=self.default_spectral_model,
            spatial_model=self.default_spatial_model,
        )

    def make_exclusion_mask(self, dataset: Any) -> np.ndarray:
        """The exclusion mask on the dataset's geometry (all True without one), shape ``(1|E, ny, nx)``."""
        if self.exclusion_mask is None:
            return np.ones((1, *dataset.geom.data_shape_image), dtype=bool)
        return _exclusion_on(self.exclusion_mask, dataset.geom)

    @staticmethod
    def _sky_models(models: Any) -> list[Any]:
        if models is None:
            return []
        return [m for m in Models(models) if isinstance(m, (SkyModel, TemplateNPredModel))]

    @staticmethod
    def _npred_background(dataset: Any, model: FoVBackgroundModel | None) -> np.ndarray:
        """``dataset``'s background times ``model`` (spectral norm at the reco-bin centres; the
        dataset's own evaluation when the model has a spatial part). Evaluated directly, not through
        a dataset plan: plans are compiled per dataset name, and every cutout has a new one."""
        if model is None or model.spatial_model is not None:
            return np.asarray(dataset.npred_background(None if model is None else Models([model])))
        energy = np.asarray(dataset.geom.axes[0].center_in(ENERGY), dtype=np.float64)
        norm = np.asarray(model.spectral_model.dnde(jnp.asarray(energy)), dtype=np.float64)
        return np.asarray(dataset.background) * norm[:, None, None]

    def _totals(self, dataset: Any, mask: np.ndarray, models: Models) -> dict[str, float]:
        """Sums of counts, npred and npred_background over ``mask`` where npred is not NaN."""
        backgrounds = [m for m in models if isinstance(m, FoVBackgroundModel)]
        background = self._npred_background(dataset, backgrounds[0] if backgrounds else None)
        has_sky = any(isinstance(m, (SkyModel, TemplateNPredModel)) for m in models)
        npred = np.asarray(dataset.npred(models)) if has_sky else background
        mask = mask & ~np.isnan(npred)
        counts = np.zeros(dataset.data_shape) if dataset.counts is None else np.asarray(dataset.counts)
        return {
            "counts": float(counts[mask].sum()),
            "npred": float(npred[mask].sum()),
            "bkg": float(background[mask].sum()),
        }

    def _verify_requirements(self, total: dict[str, float], name: str) -> bool:
        not_bkg = total["npred"] - total["bkg"]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (total["counts"] - not_bkg) / total["bkg"] if total["bkg"] != 0 else np.nan
        if not np.isfinite(value):
            log.warning(
                f"FoVBackgroundMaker failed. Non-finite normalisation value for {name}. Setting mask to False."
            )
            return False
        if total["bkg"] <= self.min_npred_background:
            log.warning(
                f"FoVBackgroundMaker failed. Only {int(total['bkg'])} background counts outside exclusion "
                f"mask for {name}. Setting mask to False."
            )
            return False
        if total["counts"] <= self.min_counts:
            log.warning(
                f"FoVBackgroundMaker failed. Only {int(total['counts'])} counts outside exclusion mask for "
                f"{name}. Setting mask to False."
            )
            return False
        if total["counts"] - not_bkg <= 0:
            log.warning(
                f"FoVBackgroundMaker failed. Negative residuals counts for {name}. Setting mask to False."
            )
            return False
        return True

    def _normalise(
        self, dataset: Any, models: Any = None, background_model: FoVBackgroundModel | None = None
    ) -> tuple[FoVBackgroundModel, bool]:
        """The fitted background model and whether the normalisation succeeded."""
        if background_model is None:
            background_model = self.make_default_fov_background_model(dataset)
        sky = self._sky_models(models)
        all_models = Models([*sky, background_model])
        mask = self.make_exclusion_mask(dataset)
        if dataset.mask_fit is not None:
            mask = mask & dataset.mask_fit
        if dataset.mask_safe is not None:
            mask = mask & dataset.mask_safe
        mask = np.broadcast_to(mask, dataset.data_shape)
        total = self._totals(dataset, mask, all_models)
        if not self._verify_requirements(total, dataset.name):
            return background_model, False
        if self.method == "fit":
            return self._fit(dataset, sky, background_model)
        not_bkg = total["npred"] - total["bkg"]
        value = (total["counts"] - not_bkg) / total["bkg"]
        error = np.sqrt(total["counts"] - not_bkg) / total["bkg"]
        spectral: Any = background_model.spectral_model
        spectral = spectral.with_values(norm=value).with_parameters(norm={"error": float(error)})
        return FoVBackgroundModel(
            dataset_name=dataset.name, spectral_model=spectral, spatial_model=background_model.spatial_model
        ), True

    def _fit(
        self, dataset: Any, sky: list[Any], background_model: FoVBackgroundModel
    ) -> tuple[FoVBackgroundModel, bool]:
        """Cash fit of the background model (sky models frozen) on the dataset with its fit mask
        ANDed with the exclusion mask, as Gammapy's ``make_background_fit``."""
        from ..fit import fit

        exclusion = self.make_exclusion_mask(dataset)
        mask_fit = exclusion if dataset.mask_fit is None else (exclusion & dataset.mask_fit)
        fitted = dataset.replace(mask_fit=np.broadcast_to(mask_fit, dataset.data_shape).copy())
        frozen = [_freeze(m) for m in sky]
        result = fit(fitted, Models([*frozen, background_model]), **self.fit)
        model = background_model if result.models is None else result.models[background_model.name]
        if not result.success:
            log.warning(
                f"FoVBackgroundMaker failed. Fit did not converge for {dataset.name}. Setting mask to False."
            )
        return model, bool(result.success)

    # -- public ------------------------------------------------------------------------------------
    def make_background_model(
        self, dataset: Any, models: Any = None, background_model: FoVBackgroundModel | None = None
    ) -> FoVBackgroundModel:
        """The fitted :class:`~jaxgamma.models.FoVBackgroundModel` of ``dataset`` (relative to its
        background as given); ``models`` are sky models (frozen) and ``background_model`` a start
        model (default: :meth:`make_default_fov_background_model`). On failure the start model is
        returned (and :meth:`run` would mask the dataset)."""
        return self._normalise(dataset, models, background_model)[0]

    def run(
        self,
        dataset: Any,
        observation: Any = None,
        models: Any = None,
        background_model: FoVBackgroundModel | None = None,
    ) -> Any:
        """A new dataset with its background multiplied by the fitted background model, or with
        ``mask_safe`` all False when the requirements are not met (or the fit fails)."""
        return self.run_with_model(dataset, models=models, background_model=background_model)[0]

    def run_with_model(
        self, dataset: Any, models: Any = None, background_model: FoVBackgroundModel | None = None
    ) -> tuple[Any, FoVBackgroundModel]:
        """``(scaled dataset, fitted model)``: :meth:`run` and :meth:`make_background_model` in one
        pass."""
        if dataset.background is None:
            raise ValueError(f"FoVBackgroundMaker: dataset {dataset.name!r} has no background map")
        model, ok = self._normalise(dataset, models, background_model)
        if not ok:
            return dataset.replace(mask_safe=np.zeros(dataset.data_shape, dtype=bool)), model
        return dataset.replace(background=self._npred_background(dataset, model)), model
