"""3D map datasets (``MapDataset``, Cash statistic) and their evaluation plans, as Gammapy 2.1's.

A :class:`MapDataset` holds, on a WCS geometry with a reconstructed-energy axis ``energy`` (numpy order
``(energy, lat, lon)``), float64 numpy arrays: counts, background, the safe and fit masks, and on the
same image geometry with a true-energy axis ``energy_true`` the exposure in cm2 s; plus the PSF and
energy-dispersion IRF maps (:mod:`jaxgamma.irf`), the GTI and metadata. It holds no model.

:meth:`MapDataset.plan` precomputes in numpy everything that does not depend on a parameter, one
:class:`MapEvaluatorPlan` per sky model (Gammapy's ``MapEvaluator``): the cutout around the source,
the true-energy integration grid, the exposure cutout, the PSF kernel and the energy-dispersion
matrix at the source position, the (oversampled) evaluation grid and the pixel solid angles. The
returned :class:`MapDatasetPlan` evaluates, in pure JAX,

``npred = clip(sum_models edisp . (exposure x spectral integral x PSF * spatial integral)
+ background x norm(E_reco), 0)``

and the Cash statistic. Bins outside every source cutout depend only on the background model: the
plan reduces them to per-energy sufficient statistics (number of bins, sum of background, sum of
counts and sum of ``counts x ln(background)``), so that a statistic evaluation touches only the
cutout bins and a few scalars per energy bin (:attr:`MapDatasetPlan.reduced`).

:class:`MapDatasetOnOff` replaces the background by OFF counts and acceptances (``alpha =
acceptance / acceptance_off``) and the Cash statistic by WStat, with the same signal evaluators
(:class:`MapDatasetOnOffPlan`). Outside every cutout the signal is 0, so WStat there is a constant,
summed once at planning time.

:func:`stack_map_datasets` and :func:`stack_map_datasets_onoff` (``Datasets.stack_reduce``) follow
Gammapy's stacking rules (``gammapy-reference.md`` sections 2 and 7), IRF maps included.

The numerics follow ``gammapy-reference.md`` section 1. Gammapy stores the PSF-convolved spatial
integral, the oversampled integral and the convolution in float32; here everything is float64 (the
PSF kernel is rounded to float32 first, as Gammapy's), so values agree with Gammapy's to its float32
rounding (about 1e-7 relative).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import weakref
from pathlib import Path
from typing import Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from scipy.fft import next_fast_len

from .. import irf
from ..data.gti import GTI, _as_gti
from ..geom import MapAxis, WcsGeom, axes_to_table_hdu
from ..geom.projection import WcsProjection
from ..geom.wcs import separation_rad
from ..models.sky import FoVBackgroundModel, SkyModel, TemplateNPredModel
from ..models.spatial import PointSpatialModel
from ..models.spectral import integration_grid
from ..stats import cash, masked_sum, wstat
from ..units import ENERGY, parse_unit
from .core import (
    Dataset,
    DatasetPlan,
    OnOffPlanMixin,
    _as_models,
    _livetime_seconds,
    _make_name,
    _meta_tuple,
    _random_state,
    add_time_info,
    summary_count_rows,
    summary_row,
    time_intervals,
)

__all__ = [
    "BACKGROUND_MIN_REDUCED",
    "BINSZ_IRF_DEFAULT",
    "CUTOUT_MARGIN",
    "MIGRA_AXIS_DEFAULT",
    "RAD_AXIS_DEFAULT",
    "MapDataset",
    "MapDatasetOnOff",
    "MapDatasetOnOffPlan",
    "MapDatasetPlan",
    "MapEvaluatorPlan",
    "create_map_dataset_geoms",
    "stack_map_datasets",
    "stack_map_datasets_onoff",
]

log = logging.getLogger(__name__)

EXPOSURE_UNIT = "cm2 s"
RAD_AXIS_DEFAULT = MapAxis.from_bounds(0, 0.66, nbin=66, node_type="edges", name="rad", unit="deg")
"""Gammapy's default PSF-map ``rad`` axis: 0 to 0.66 deg in 66 bins."""
MIGRA_AXIS_DEFAULT = MapAxis.from_bounds(0.2, 5, nbin=48, node_type="edges", name="migra")
"""Gammapy's default energy-migration axis of an :class:`~jaxgamma.irf.EDispMap`."""
BINSZ_IRF_DEFAULT = 0.2
"""Gammapy's default IRF-map pixel size (deg)."""
CUTOUT_MARGIN = 0.1
"""Gammapy's ``CUTOUT_MARGIN`` (deg) around a model's evaluation radius."""
MAX_OVERSAMPLING = 200
"""Gammapy's largest oversampling factor of the spatial integral."""
BACKGROUND_MIN_REDUCED = 1e-10
"""Bins outside every cutout whose background is below this (or not finite) stay explicit in the
statistic; the others are reduced to sufficient statistics, which is exact as long as
``background x norm > 1e-25`` (Gammapy's Cash truncation) in every reduced bin, i.e. for a
background normalisation above 1e-15 (at a norm of 0 Gammapy's truncated value is finite, the
reduced one infinite)."""

_PRIMARY_STRUCTURAL = ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "NAME", "COMMENT", "HISTORY", "")


# -- small helpers -------------------------------------------------------------------------------------
def _frozen(array: Any, dtype: Any) -> np.ndarray:
    # a read-only array owning its data (another dataset's field) is shared, not copied
    if (
        isinstance(array, np.ndarray)
        and array.dtype == dtype
        and not array.flags.writeable
        and array.flags.owndata
    ):
        return array
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def _where(path: Any, hdu: str | None = None) -> str:
    where = "MapDataset" if path is None else f"file {str(path)!r}"
    return where if hdu is None else f"{where}, HDU {hdu!r}"


def _to_float64(value: Any, unit: str, what: str) -> np.ndarray:
    if isinstance(value, (u.Quantity, str)):
        try:
            value = u.Quantity(value).to_value(parse_unit(unit))
        except u.UnitConversionError as err:
            raise ValueError(f"{what}: {err}") from None
    return np.asarray(value, dtype=np.float64)


def _read_livetime(header: Any, path: Any) -> float | None:
    """The livetime Gammapy stores in the EXPOSURE header's ``META`` (JSON, e.g.
    ``{"livetime": "5292.0 s"}``); None when absent."""
    text = header.get("META")
    if not text:
        return None
    try:
        value = json.loads(text).get("livetime")
        return None if value is None else _livetime_seconds(value, _where(path, "EXPOSURE"))
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{_where(path, 'EXPOSURE')}: META is not a JSON object: {err}") from None


def _slices_tuple(slices: tuple[slice, slice]) -> tuple[tuple[int, int], tuple[int, int]]:
    return tuple((int(s.start), int(s.stop)) for s in slices)  # type: ignore[return-value]


def _as_slices(bounds: tuple[tuple[int, int], tuple[int, int]]) -> tuple[slice, slice]:
    return tuple(slice(a, b) for a, b in bounds)  # type: ignore[return-value]


def _spatial_values(model: SkyModel) -> tuple[float, ...]:
    if model.spatial_model is None:
        return ()
    return tuple(float(np.asarray(p.value)) for p in model.spatial_model.parameters)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(np.asarray(value))


# -- PSF convolution ------------------------------------------------------------------------------------
def _fft_convolve_same(
    image: Any, kernel_fft: Any, kernel_shape: tuple[int, int], fft_shape: tuple[int, int]
) -> Any:
    """``scipy.signal.convolve(image, kernel, mode="same")`` over the last two axes, by FFT, with the
    kernel's FFT (on ``fft_shape``) precomputed. ``image`` broadcasts against the kernel planes."""
    ny, nx = image.shape[-2:]
    ky, kx = kernel_shape
    full = jnp.fft.irfft2(jnp.fft.rfft2(image, s=fft_shape) * kernel_fft, s=fft_shape)
    cy, cx = (ky - 1) // 2, (kx - 1) // 2
    return full[..., cy : cy + ny, cx : cx + nx]


def _kernel_fft(kernel: np.ndarray, image_shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    ky, kx = kernel.shape[-2:]
    fft_shape = (
        next_fast_len(image_shape[0] + ky - 1, real=True),
        next_fast_len(image_shape[1] + kx - 1, real=True),
    )
    return np.fft.rfft2(kernel, s=fft_shape), fft_shape


# -- evaluator plan -----------------------------------------------------------------------------------
class MapEvaluatorPlan(eqx.Module):
    """Everything one sky model needs on one map dataset (Gammapy's ``MapEvaluator``), precomputed.

    ``npred(models)`` returns the predicted counts of the model on its cutout, shape
    ``(n_energy, ny, nx)``, to be added into the dataset map at :attr:`parent_slices`.

    ``kind`` says how the spatial integral is computed:

    - ``"point"``: Gammapy's bilinear weights at the traced position (through the cutout's
      :class:`~jaxgamma.geom.WcsProjection`); with a true-energy PSF the convolution of the four
      weighted pixels is the sum of four shifted kernels (``psf`` holds the kernel zero-padded by the
      cutout size), exact and cheap;
    - ``"dense"``: the model evaluated at precomputed pixel (or sub-pixel) centres ``lon``, ``lat``
      (deg, model frame), block-summed by ``factor`` into the inner cutout ``inner_slices``, times
      the pixel solid angle; the PSF (``psf`` holds the kernel's FFT) is applied by FFT;
    - ``"one_per_pixel"``: Gammapy's ``ConstantFluxSpatialModel`` (1 per pixel);
    - ``"none"``: no spatial model: spectral integral x exposure over the whole map (as Gammapy);
    - ``"npred_template"``: a :class:`~jaxgamma.models.TemplateNPredModel`: its map (the part
      ``template_slices`` on the dataset) times its spectral model at ``energy_reco_center`` (and
      its spatial model at ``lon``, ``lat``); no IRF.
    """

    energy_grid: np.ndarray  # (Et, num) Gammapy integration points per true-energy bin, TeV
    exposure: np.ndarray | None  # (Et, ny, nx) cm2 s, or None when apply_irf["exposure"] is False
    edisp: np.ndarray  # (Et, Er)
    psf: np.ndarray | None  # point: padded kernel (Ep, ky + 2 ny, kx + 2 nx); dense: kernel FFT
    lon: np.ndarray | None  # dense: evaluation points, deg, model frame
    lat: np.ndarray | None
    solid_angle: np.ndarray | None  # (ny, nx) sr
    energy_true_center: np.ndarray | None  # (Et, 1, 1) TeV, energy-dependent spatial models
    active_index: np.ndarray  # (ny * nx,) positions of the cutout pixels in the plan's active list

    model_name: str = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    mode: str = eqx.field(static=True)  # "local" (cutout) or "global" (whole map)
    shape: tuple[int, int] = eqx.field(static=True)  # cutout image shape (ny, nx)
    parent_slices: tuple[tuple[int, int], tuple[int, int]] = eqx.field(static=True)
    inner_slices: tuple[tuple[int, int], tuple[int, int]] | None = eqx.field(static=True)
    factor: int = eqx.field(static=True)
    psf_stage: str = eqx.field(static=True)  # "none", "true" (before exposure), "reco" (after edisp)
    kernel_shape: tuple[int, int] = eqx.field(static=True)
    fft_shape: tuple[int, int] = eqx.field(static=True)
    projection: WcsProjection | None = eqx.field(static=True)
    frame: str | None = eqx.field(static=True)
    # what the plan was built for (see MapDatasetPlan.needs_update)
    irf_position: tuple[float, float] | None = eqx.field(static=True)  # deg, model frame
    evaluation_radius: float | None = eqx.field(static=True)
    spatial_values: tuple[float, ...] = eqx.field(static=True)
    psf_width: float = eqx.field(static=True)
    # the cutout's pixels are the first ny * nx of the active list, in order (active_index is
    # arange): the signal is then added with a slice instead of a scatter (cheaper, mostly batched)
    active_leading: bool = eqx.field(static=True, default=False)
    # (2, n_gti) MJD start / stop in the temporal model's scale, when the model has a temporal
    # model and the dataset a GTI (Gammapy's temporal norm); None otherwise
    time_intervals: np.ndarray | None = None
    # npred templates: the reco-energy bin centres (E, 1, 1) TeV and the part of the template map
    # on the dataset (numpy (y, x) bounds)
    energy_reco_center: np.ndarray | None = None
    template_slices: tuple[tuple[int, int], tuple[int, int]] | None = eqx.field(static=True, default=None)

    # -- spatial integral ----------------------------------------------------------------------------
    def _point_pixel(self, spatial: Any, projection: Any = None) -> tuple[Any, Any]:
        """Pixel coordinates of the (traced) point-source position on the cutout, through
        ``projection`` (an :class:`~jaxgamma.geom.ArrayProjection` of a batched plan) or the plan's
        own."""
        projection = self.projection if projection is None else projection
        assert projection is not None
        lon_0, lat_0 = spatial.position_lonlat
        return projection.world_to_pixel(lon_0, lat_0, self.frame)

    def _point_psf_convolved(self, spatial: Any, projection: Any = None) -> Any:
        assert self.psf is not None
        x0, y0 = self._point_pixel(spatial, projection)
        ny, nx = self.shape
        ky, kx = self.kernel_shape
        cy, cx = (ky - 1) // 2, (kx - 1) // 2
        ix = jnp.floor(x0)
        iy = jnp.floor(y0)
        fx, fy = x0 - ix, y0 - iy
        ix, iy = ix.astype(jnp.int32), iy.astype(jnp.int32)
        n_planes = self.psf.shape[0]
        # The image of a unit pixel at (py, px) is the kernel centred there (mode "same"): the
        # window of the padded kernel starting at (cy + ny - py, cx + nx - px). The four pixels
        # around the point are read from one (ny + 1, nx + 1) window (one dynamic slice, which
        # stays cheap when vmapped over datasets); pixels off the cutout get weight 0, and
        # clipping to -1 .. n - 1 keeps the window inside the padded kernel.
        iy_c, ix_c = jnp.clip(iy, -1, ny - 1), jnp.clip(ix, -1, nx - 1)
        window = jax.lax.dynamic_slice(
            self.psf, (jnp.int32(0), cy + ny - 1 - iy_c, cx + nx - 1 - ix_c), (n_planes, ny + 1, nx + 1)
        )
        out = jnp.zeros((n_planes, ny, nx))
        for dy, wy in ((0, 1.0 - fy), (1, fy)):
            for dx, wx in ((0, 1.0 - fx), (1, fx)):
                px, py = ix + dx, iy + dy
                inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
                weight = jnp.where(inside, wx * wy, 0.0)
                out = out + weight * window[:, 1 - dy : 1 - dy + ny, 1 - dx : 1 - dx + nx]
        return out

    def _point_weights(self, spatial: Any, projection: Any = None) -> Any:
        x0, y0 = self._point_pixel(spatial, projection)
        ny, nx = self.shape
        x = jnp.arange(nx, dtype=float)[None, :]
        y = jnp.arange(ny, dtype=float)[:, None]
        return PointSpatialModel.grid_weights(x, y, x0, y0)

    def _dense_integral(self, spatial: Any) -> Any:
        if self.energy_true_center is not None:
            values = spatial.evaluate_lonlat(self.lon, self.lat, self.energy_true_center)
        else:
            values = spatial.evaluate_lonlat(self.lon, self.lat)
        f = self.factor
        if f > 1:
            ny_in, nx_in = values.shape[-2] // f, values.shape[-1] // f
            values = (values / f**2).reshape((*values.shape[:-2], ny_in, f, nx_in, f)).sum(axis=(-3, -1))
        if self.inner_slices is not None:
            (y0, y1), (x0, x1) = self.inner_slices
            ny, nx = self.shape
            pad = [(0, 0)] * (values.ndim - 2) + [(y0, ny - y1), (x0, nx - x1)]
            values = jnp.pad(values, pad)
        return values * self.solid_angle

    def spatial_integral(self, models: Any, projection: Any = None) -> Any:
        """The spatial factor on the cutout, PSF-convolved when the PSF is applied in true energy:
        shape ``(ny, nx)`` or ``(Et, ny, nx)``. ``projection`` replaces the plan's own (point
        sources; see :class:`~jaxgamma.datasets.batch.BatchedMapDatasetPlan`)."""
        spatial = models[self.model_name].spatial_model
        if self.kind == "point":
            if self.psf_stage == "true":
                return self._point_psf_convolved(spatial, projection)
            return self._point_weights(spatial, projection)
        if self.kind == "one_per_pixel":
            values = jnp.ones(self.shape)
        else:
            values = self._dense_integral(spatial)
        if self.psf_stage == "true":
            return _fft_convolve_same(values, self.psf, self.kernel_shape, self.fft_shape)
        return values

    # -- the chain -------------------------------------------------------------------------------------
    def _flux(self, model: Any) -> Any:
        """The model's integral flux per true-energy bin, ``(n_energy_true, 1, 1)``, times its
        temporal norm over the GTI when it has one."""
        flux = model.spectral_model.integral_on_grid(self.energy_grid)[:, None, None]
        if self.time_intervals is not None:
            flux = flux * model.temporal_model.time_average(self.time_intervals[0], self.time_intervals[1])
        return flux

    def npred_true(self, models: Any) -> Any:
        """Expected counts in true energy on the cutout, ``(n_energy_true, ny, nx)``: flux x spatial
        integral (no PSF) x exposure (x the temporal norm), before PSF and energy dispersion (what an
        event sampler draws true coordinates from)."""
        model = models[self.model_name]
        if self.kind == "npred_template":
            raise ValueError(f"TemplateNPredModel {self.model_name!r} predicts counts in reconstructed energy only")
        flux = self._flux(model)
        spatial = model.spatial_model
        if self.kind == "point":
            flux = flux * self._point_weights(spatial)
        elif self.kind == "one_per_pixel":
            flux = flux * jnp.ones(self.shape)
        elif self.kind == "dense":
            flux = flux * self._dense_integral(spatial)
        if self.exposure is not None:
            return flux * self.exposure
        return jnp.broadcast_to(flux, flux.shape[:1] + self.shape)

    def npred(self, models: Any, projection: Any = None) -> Any:
        """Predicted counts of this model on its cutout, ``(n_energy, ny, nx)``."""
        if self.kind == "npred_template":
            model = models[self.model_name]
            assert self.template_slices is not None
            (y0, y1), (x0, x1) = self.template_slices
            return model.evaluate_on(self.energy_reco_center, self.lon, self.lat, model.data[:, y0:y1, x0:x1])
        flux = self._flux(models[self.model_name])
        if self.kind != "none":
            flux = flux * self.spatial_integral(models, projection)
        if self.exposure is not None:
            npred = flux * self.exposure
        else:
            npred = jnp.broadcast_to(flux, flux.shape[:1] + self.shape)
        npred = jnp.einsum("tyx,tr->ryx", npred, self.edisp)
        if self.psf_stage == "reco":
            npred = _fft_convolve_same(npred, self.psf, self.kernel_shape, self.fft_shape)
        return npred

    # -- bookkeeping ------------------------------------------------------------------------------------
    def needs_update(self, model: SkyModel) -> bool:
        """Gammapy's ``MapEvaluator.needs_update`` for the current ``model``: a spatial parameter
        changed and the model moved more than ``evaluation_radius + 0.1 deg`` from where its IRFs
        and cutout were taken."""
        if self.mode == "global" or self.irf_position is None or model.spatial_model is None:
            return False
        if _spatial_values(model) == self.spatial_values:
            return False
        lon, lat = (float(np.asarray(v)) for v in model.spatial_model.position_lonlat)
        separation = float(np.degrees(separation_rad(lon, lat, *self.irf_position)))  # numpy: no dispatch
        radius = _float_or_none(model.spatial_model.evaluation_radius)
        return separation > (0.0 if radius is None else radius) + CUTOUT_MARGIN


# a background spatial model's data prepared for a geometry's pixels, by geometry (value-equal
# geometries have the same pixels) and then by the model's prepared key and frame: a refit re-plans
# its datasets and would otherwise prepare the same data again
_PREPARED_BACKGROUND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PREPARED_PER_GEOM = 4


def _prepared_background(geom: Any, spatial: Any, lon: np.ndarray, lat: np.ndarray) -> Any:
    """``spatial.prepare_pixels(lon, lat)`` (lon, lat: ``geom``'s pixel centres in the model's
    frame), cached for the last few models prepared on ``geom``."""
    key = spatial.prepared_key()
    if key is None:
        return None
    cache = _PREPARED_BACKGROUND.setdefault(geom, {})
    entry = (key, spatial.frame)
    if entry not in cache:
        if len(cache) >= _PREPARED_PER_GEOM:
            cache.pop(next(iter(cache)))
        cache[entry] = spatial.prepare_pixels(lon, lat)
    return cache[entry]


def _prepared_key(background: Any) -> Any:
    """The key of the data a plan prepares for this FoV background model's spatial part."""
    spatial = getattr(background, "spatial_model", None)
    return None if spatial is None else spatial.prepared_key()


# -- helpers shared by the Cash and WStat map plans ------------------------------------------------------
def _npred_signal(
    evaluators: tuple[MapEvaluatorPlan, ...],
    shape: tuple[int, int, int],
    models: Any,
    model_names: tuple[str, ...] | None = None,
) -> Any:
    """The evaluators' predicted counts added into a full map (the models named, or all)."""
    total = jnp.zeros(shape)
    for ev in evaluators:
        if model_names is not None and ev.model_name not in model_names:
            continue
        (y0, y1), (x0, x1) = ev.parent_slices
        total = total.at[:, y0:y1, x0:x1].add(ev.npred(models))
    return total


def _signal_active(
    evaluators: tuple[MapEvaluatorPlan, ...],
    n_energy: int,
    n_active: int,
    models: Any,
    projections: tuple[Any, ...] | None = None,
) -> Any:
    """The evaluators' predicted counts on the active pixels, shape ``(E, n_active)``
    (``projections``: one per evaluator, replacing theirs)."""
    signal = jnp.zeros((n_energy, n_active))
    if projections is None:
        projections = (None,) * len(evaluators)
    for ev, projection in zip(evaluators, projections, strict=True):
        npred = ev.npred(models, projection).reshape(n_energy, -1)
        if ev.active_leading:
            signal = signal.at[:, : npred.shape[1]].add(npred)
        else:
            signal = signal.at[:, ev.active_index].add(npred)
    return signal


def _is_signal_model(model: Any) -> bool:
    """A model that adds predicted counts through an evaluator (a sky model or an npred template)."""
    return isinstance(model, (SkyModel, TemplateNPredModel))


def _positions(evaluators: tuple[MapEvaluatorPlan, ...]) -> dict[str, tuple[float, float] | None]:
    return {ev.model_name: ev.irf_position for ev in evaluators}


def _evaluators_need_update(plan: Any, models: Any) -> bool:
    """The sky models applying to the plan's dataset changed, or one moved too far (see
    :meth:`MapDatasetPlan.needs_update`)."""
    names = tuple(m.name for m in models if _is_signal_model(m) and m.applies_to(plan.name))
    if names != plan.sky_model_names:
        return True
    return any(ev.needs_update(models[ev.model_name]) for ev in plan.evaluators)


# -- dataset plan ---------------------------------------------------------------------------------------
class MapDatasetPlan(DatasetPlan):
    """The evaluation plan of a :class:`MapDataset` for one model structure (see the module docs).

    The statistic is evaluated on the *active* pixels (the union of all model cutouts; every pixel
    when a model is global, the background model has a spatial part, or ``reduce=False``) plus,
    for the other bins, per reconstructed-energy sufficient statistics of the background-only
    prediction ``mu = B x S(E)``:

    ``sum_bins 2 (mu - n ln mu) = 2 [S(E) sum B - (sum n) ln S(E) - sum n ln B]``

    Bins with ``B`` below :data:`BACKGROUND_MIN_REDUCED` (or not finite) stay explicit.
    """

    evaluators: tuple[MapEvaluatorPlan, ...]
    # full maps (npred, stat_array, the brute-force statistic)
    counts: np.ndarray  # (E, ny, nx)
    background: np.ndarray  # (E, ny, nx); zeros without background
    mask: np.ndarray  # (E, ny, nx) bool: the bins summed in the statistic
    # active pixels
    active_pixels: np.ndarray  # (n_act,) flat indices into (ny * nx)
    counts_active: np.ndarray  # (E, n_act)
    background_active: np.ndarray  # (E, n_act)
    mask_active: np.ndarray  # (E, n_act) bool
    # sufficient statistics of the other (masked) bins, per energy
    reduced_n_bins: np.ndarray  # (E,)
    reduced_background: np.ndarray  # (E,) sum B
    reduced_counts: np.ndarray  # (E,) sum n
    reduced_counts_log_background: np.ndarray  # (E,) sum n ln B over n > 0
    explicit_energy: np.ndarray  # (K,) energy index of explicit low-background bins
    explicit_pixel: np.ndarray  # (K,) flat pixel index
    explicit_counts: np.ndarray  # (K,)
    explicit_background: np.ndarray  # (K,)
    # background model
    energy_center: np.ndarray  # (E,) TeV, reco log centres
    background_lon: np.ndarray | None  # (ny, nx) pixel centres in the background spatial model frame
    background_lat: np.ndarray | None
    # the background spatial model's data prepared for these pixels (SpatialModel.prepare_pixels)
    background_prepared: Any


    name: str = eqx.field(static=True)
    shape: tuple[int, int, int] = eqx.field(static=True)
    background_model_name: str | None = eqx.field(static=True)
    sky_model_names: tuple[str, ...] = eqx.field(static=True)  # every SkyModel applying to the dataset
    skipped_model_names: tuple[str, ...] = eqx.field(static=True)  # not contributing (Gammapy's rule)
    reduced: bool = eqx.field(static=True)  # False when every pixel is active
    background_prepared_key: Any = eqx.field(static=True, default=None)  # what background_prepared was made for

    # -- background -----------------------------------------------------------------------------------
    def _background_norm(self, models: Any, spectral: Any = None) -> Any:
        """``S(E)`` at the reco-bin log centres, shape (E,); ones without a background model.
        ``spectral`` replaces the background model's spectral part (batched plans)."""
        if self.background_model_name is None:
            return jnp.ones(self.shape[0])
        if spectral is None:
            spectral = models[self.background_model_name].spectral_model
        return spectral.dnde(self.energy_center)

    def _background_spatial(self, models: Any) -> Any:
        spatial = models[self.background_model_name].spatial_model
        if self.background_prepared is not None:
            return spatial.evaluate_prepared(self.background_prepared)
        if getattr(spatial, "is_energy_dependent", False):
            return spatial.evaluate_lonlat(
                self.background_lon, self.background_lat, self.energy_center[:, None, None]
            )
        return spatial.evaluate_lonlat(self.background_lon, self.background_lat)

    def npred_background(self, models: Any) -> Any:
        """``B x S(E)`` (x the spatial norm, if any), full map."""
        norm = self._background_norm(models)[:, None, None]
        value = self.background * norm
        if self.background_lon is not None:
            value = value * self._background_spatial(models)
        return value

    # -- signal ---------------------------------------------------------------------------------------
    def npred_signal(self, models: Any, model_names: tuple[str, ...] | None = None) -> Any:
        """Predicted signal counts, full map (the models named, or all)."""
        return _npred_signal(self.evaluators, self.shape, models, model_names)

    def npred(self, models: Any) -> Any:
        """Total predicted counts, full map, negative values set to 0 (as Gammapy)."""
        npred = self.npred_signal(models) + self.npred_background(models)
        return jnp.where(npred < 0, 0.0, npred)

    # -- statistic ------------------------------------------------------------------------------------
    def stat_array(self, models: Any) -> Any:
        """Cash per bin on the full map (masked bins included)."""
        return cash(self.counts, self.npred(models))

    def stat_sum_brute_force(self, models: Any) -> Any:
        """The statistic summed over every masked bin of the full map (no reduction)."""
        return masked_sum(self.stat_array(models), self.mask)

    def stat_sum(self, models: Any) -> Any:
        """Cash statistic over ``mask_safe & mask_fit``: active bins explicitly, the others through
        their sufficient statistics."""
        return self.stat_sum_with(models)

    def stat_sum_with(
        self,
        models: Any,
        background_spectral: Any = None,
        projections: tuple[Any, ...] | None = None,
        explicit_valid: Any = None,
    ) -> Any:
        """:meth:`stat_sum` with the background spectral model, the evaluators' projections and a
        mask of the explicit low-background bins given (one dataset of a
        :class:`~jaxgamma.datasets.batch.BatchedMapDatasetPlan`, whose names and projections are
        not static)."""
        signal = _signal_active(
            self.evaluators, self.shape[0], self.active_pixels.shape[0], models, projections
        )
        norm = self._background_norm(models, background_spectral)
        background = self.background_active * norm[:, None]
        if self.background_lon is not None:
            spatial = self._background_spatial(models).reshape(-1, self.shape[1] * self.shape[2])
            background = background * spatial[:, self.active_pixels]
        mu = signal + background
        mu = jnp.where(mu < 0, 0.0, mu)
        total = masked_sum(cash(self.counts_active, mu), self.mask_active)
        if not self.reduced:
            return total
        # reduced bins: mu = B S > 1e-25 in every one of them (see BACKGROUND_MIN_REDUCED)
        positive = norm > 0
        log_norm = jnp.log(jnp.where(positive, norm, 1.0))
        log_term = jnp.where(
            self.reduced_counts > 0, self.reduced_counts * jnp.where(positive, log_norm, -jnp.inf), 0.0
        )
        reduced = 2.0 * (norm * self.reduced_background - log_term - self.reduced_counts_log_background)
        total = total + jnp.sum(jnp.where(self.reduced_n_bins > 0, reduced, 0.0))
        mu_explicit = self.explicit_background * norm[self.explicit_energy]
        mu_explicit = jnp.where(mu_explicit < 0, 0.0, mu_explicit)
        return total + masked_sum(cash(self.explicit_counts, mu_explicit), explicit_valid)

    # -- bookkeeping ----------------------------------------------------------------------------------
    @property
    def positions(self) -> dict[str, tuple[float, float] | None]:
        """``{model name: (lon, lat) in deg, model frame}`` of the IRF lookups and cutouts the plan
        was built for (None for global models)."""
        return _positions(self.evaluators)

    def needs_update(self, models: Any) -> bool:
        """Whether this plan should be rebuilt for ``models`` (concrete values): the model structure
        differs (a sky model or the background model added or removed), or a model moved more than
        ``evaluation_radius + 0.1 deg`` from where its IRFs and cutout were taken (Gammapy's rule,
        checked only when a spatial parameter changed). Models that did not contribute at planning
        time never trigger an update, as in Gammapy."""
        models = _as_models(models)
        background = f"{self.name}-bkg"
        has_background = background in models.names and isinstance(models[background], FoVBackgroundModel)
        if has_background != (self.background_model_name is not None):
            return True
        if has_background and _prepared_key(models[background]) != self.background_prepared_key:
            return True  # the background's spatial model is not the one its data was prepared for
        return _evaluators_need_update(self, models)


class MapDatasetOnOffPlan(OnOffPlanMixin, DatasetPlan):
    """The evaluation plan of a :class:`MapDatasetOnOff`: WStat, the background profiled out per bin.

    The predicted signal comes from the same evaluators as :class:`MapDatasetPlan`. Outside every
    model cutout the signal is 0, so there WStat depends on no parameter: those masked bins are
    summed once, in numpy, into :attr:`outside_stat`, and an evaluation touches only the cutout
    (*active*) pixels. Every pixel is active when a model is global or ``reduce=False``.
    """

    evaluators: tuple[MapEvaluatorPlan, ...]
    # full maps (npred, stat_array, the brute-force statistic)
    counts: np.ndarray  # (E, ny, nx)
    counts_off: np.ndarray  # (E, ny, nx)
    alpha: np.ndarray  # (E, ny, nx), 0 where acceptance_off is 0 (WStat then contributes 0)
    mask: np.ndarray  # (E, ny, nx) bool: the bins summed in the statistic
    # active pixels
    active_pixels: np.ndarray  # (n_act,) flat indices into (ny * nx)
    counts_active: np.ndarray  # (E, n_act)
    counts_off_active: np.ndarray
    alpha_active: np.ndarray
    mask_active: np.ndarray  # (E, n_act) bool
    outside_stat: np.ndarray  # () WStat with no signal, summed over the other masked bins

    name: str = eqx.field(static=True)
    shape: tuple[int, int, int] = eqx.field(static=True)
    sky_model_names: tuple[str, ...] = eqx.field(static=True)
    skipped_model_names: tuple[str, ...] = eqx.field(static=True)
    reduced: bool = eqx.field(static=True)  # False when every pixel is active
    empty: bool = eqx.field(static=True)  # no OFF counts and no safe bin: statistic 0 (Gammapy)

    def npred_signal(self, models: Any, model_names: tuple[str, ...] | None = None) -> Any:
        """Predicted signal counts, full map (the models named, or all)."""
        return _npred_signal(self.evaluators, self.shape, models, model_names)

    def stat_sum_brute_force(self, models: Any) -> Any:
        """The statistic summed over every masked bin of the full map (no reduction)."""
        if self.empty:
            return jnp.asarray(0.0)
        return masked_sum(self.stat_array(models), self.mask)

    def stat_sum(self, models: Any) -> Any:
        """WStat over ``mask_safe & mask_fit``: the active bins explicitly, plus the constant of the
        others."""
        return self.stat_sum_with(models)

    def stat_sum_with(
        self,
        models: Any,
        background_spectral: Any = None,
        projections: tuple[Any, ...] | None = None,
        explicit_valid: Any = None,
    ) -> Any:
        """:meth:`stat_sum` with the evaluators' projections given (one dataset of a
        :class:`~jaxgamma.datasets.batch.BatchedMapDatasetPlan`; the background is profiled, so
        ``background_spectral`` and ``explicit_valid`` do not apply)."""
        if self.empty:
            return jnp.asarray(0.0)
        signal = _signal_active(
            self.evaluators, self.shape[0], self.active_pixels.shape[0], models, projections
        )
        stat = wstat(self.counts_active, self.counts_off_active, self.alpha_active, signal)
        return masked_sum(stat, self.mask_active) + self.outside_stat

    @property
    def positions(self) -> dict[str, tuple[float, float] | None]:
        """As :attr:`MapDatasetPlan.positions`."""
        return _positions(self.evaluators)

    def needs_update(self, models: Any) -> bool:
        """As :meth:`MapDatasetPlan.needs_update` (background models do not apply here)."""
        return _evaluators_need_update(self, _as_models(models))


@eqx.filter_jit
def _evaluate(plan: Any, models: Any, method: str | tuple[str, ...], *args: Any) -> Any:
    """``plan.<method>(models, *args)`` (a tuple of them for several methods), compiled once per
    plan structure: the eager conveniences run one program, not one dispatch per operation."""
    if isinstance(method, tuple):
        return tuple(getattr(plan, m)(models, *args) for m in method)
    return getattr(plan, method)(models, *args)


# -- FITS helpers ---------------------------------------------------------------------------------------
def _read_map(hdulist: fits.HDUList, hdu: str, path: Any) -> tuple[np.ndarray, WcsGeom, str]:
    """``(data, geom, BUNIT)`` of a GADF map HDU and its bands table."""
    where = _where(path, hdu)
    image = hdulist[hdu]
    if not isinstance(image, (fits.ImageHDU, fits.PrimaryHDU, fits.CompImageHDU)) or image.data is None:
        raise ValueError(f"{where}: not an image HDU with data")
    bands = image.header.get("BANDSHDU")
    if bands is not None and bands not in hdulist:
        raise ValueError(f"{where}: its bands table HDU {bands!r} (BANDSHDU) is missing")
    try:
        geom = WcsGeom.from_hdulist(hdulist, hdu=hdu)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: cannot read the map geometry: {err}") from None
    data = np.asarray(image.data)
    if data.shape != geom.data_shape:
        raise ValueError(f"{where}: data shape {data.shape} does not match its geometry {geom.data_shape}")
    return data, geom, str(image.header.get("BUNIT", "")).strip()


_RESIDUAL_METHODS = ("diff", "diff/model", "diff/sqrt(model)")


def _residuals(data: np.ndarray, model: np.ndarray, method: str) -> np.ndarray:
    """Gammapy's ``Dataset._compute_residuals``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "diff":
            return data - model
        if method == "diff/model":
            return (data - model) / model
        return (data - model) / np.sqrt(model)


def _width_in_pixels(width: Any, geom: WcsGeom) -> float:
    """A smoothing width in pixels: an angle over the mean pixel scale, or a plain number of pixels."""
    if isinstance(width, (str, u.Quantity)):
        return float(u.Quantity(width, "deg").to_value("deg") / np.mean(geom.pixel_scales))
    return float(width)


def _compact(data: np.ndarray) -> np.ndarray:
    """``data`` as float32 when that is exact (maps read from float32 files, counts), else float64."""
    single = data.astype(np.float32)
    return single if np.array_equal(single, data, equal_nan=True) else data


def _map_hdus(name: str, data: np.ndarray, geom: WcsGeom, unit: str) -> list[Any]:
    header = geom.to_header()
    header["BANDSHDU"] = f"{name}_BANDS"
    header["META"] = "{}"
    header["BUNIT"] = unit
    image = fits.ImageHDU(data, header=header, name=name)
    return [image, axes_to_table_hdu(geom.axes, hdu_bands=f"{name}_BANDS")]


def _rename_axis(axis: MapAxis, name: str) -> MapAxis:
    return MapAxis(axis.nodes, interp=axis.interp, name=name, node_type=axis.node_type, unit=axis.unit)


def _energy_edges_tev(axis: MapAxis) -> np.ndarray:
    return np.asarray(axis.edges_in(ENERGY), dtype=np.float64)


def _irf_hdus(irf: Any) -> list[Any]:
    return [h for h in irf.to_hdulist() if not isinstance(h, fits.PrimaryHDU)]


def create_map_dataset_geoms(
    geom: WcsGeom,
    energy_axis_true: MapAxis | None = None,
    migra_axis: MapAxis | None = None,
    rad_axis: MapAxis | None = None,
    binsz_irf: Any = None,
    reco_psf: bool = False,
) -> dict[str, WcsGeom]:
    """The geometries of a map dataset, as Gammapy's ``create_map_dataset_geoms``: ``geom``
    (counts), ``geom_exposure`` (image x ``energy_axis_true``), and on the IRF grid (the image
    re-binned to ``binsz_irf`` deg, default 0.2, same centre, width and projection)
    ``geom_psf`` (``rad`` x true or, with ``reco_psf``, reconstructed energy) and ``geom_edisp``
    (``migra`` x true energy, or reconstructed x true energy without ``migra_axis``)."""
    if not isinstance(geom, WcsGeom) or [a.name for a in geom.axes] != ["energy"]:
        raise ValueError(
            f"create_map_dataset_geoms: geom must be a WcsGeom with one 'energy' axis, got {geom!r}"
        )
    energy_axis = geom.axes[0]
    if energy_axis_true is None:
        energy_axis_true = _rename_axis(energy_axis, "energy_true")
    elif not isinstance(energy_axis_true, MapAxis) or energy_axis_true.name != "energy_true":
        raise ValueError("create_map_dataset_geoms: energy_axis_true must be a MapAxis named 'energy_true'")
    rad_axis = RAD_AXIS_DEFAULT if rad_axis is None else rad_axis
    if rad_axis.name != "rad":
        raise ValueError(f"create_map_dataset_geoms: rad_axis must be named 'rad', got {rad_axis.name!r}")
    if migra_axis is not None and migra_axis.name != "migra":
        raise ValueError(
            f"create_map_dataset_geoms: migra_axis must be named 'migra', got {migra_axis.name!r}"
        )
    binsz = BINSZ_IRF_DEFAULT if binsz_irf is None else u.Quantity(binsz_irf, "deg").to_value("deg")
    image = geom.to_image()
    geom_irf = WcsGeom.create(
        skydir=image.center_skydir,
        binsz=binsz,
        width=image.width,
        proj=image.projection,
        frame=image.frame,
    )
    psf_energy = energy_axis if reco_psf else energy_axis_true
    second = [migra_axis, energy_axis_true] if migra_axis is not None else [energy_axis, energy_axis_true]
    return {
        "geom": geom,
        "geom_exposure": image.to_cube([energy_axis_true]),
        "geom_psf": geom_irf.to_cube([rad_axis, psf_energy]),
        "geom_edisp": geom_irf.to_cube(second),
    }


# -- the dataset ----------------------------------------------------------------------------------------
class _AbstractMapDataset(Dataset):
    """What :class:`MapDataset` and :class:`MapDatasetOnOff` share: the counts geometry, counts,
    exposure, IRF maps, masks, GTI and metadata, the evaluator planning of the sky models, the FITS
    reading and writing. Concrete classes add their maps, ``plan`` and summaries."""

    _count_hdus: ClassVar[tuple[str, ...]] = ()  # the dimensionless maps of the file format
    _cutout_maps: ClassVar[tuple[str, ...]] = ()  # the class's own maps on the counts geometry

    counts: np.ndarray | None
    exposure: np.ndarray | None
    mask_safe: np.ndarray | None
    mask_fit: np.ndarray | None
    psf: Any
    edisp: Any
    gti: GTI | None
    meta_table: Any
    geom: WcsGeom = eqx.field(static=True, default=None)
    energy_axis_true: MapAxis = eqx.field(static=True, default=None)
    name: str = eqx.field(static=True, default="")
    meta: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())
    livetime: float | None = eqx.field(static=True, default=None)

    def _init_common(
        self,
        *,
        geom: WcsGeom,
        counts: Any = None,
        exposure: Any = None,
        mask_safe: Any = None,
        mask_fit: Any = None,
        psf: Any = None,
        edisp: Any = None,
        gti: Any = None,
        meta_table: Any = None,
        energy_axis_true: MapAxis | None = None,
        name: str | None = None,
        meta: Any = None,
        livetime: Any = None,
    ) -> None:
        """Validate and set the shared fields (called by the concrete ``__init__``)."""
        self.name = _make_name() if name is None else str(name)
        what = f"{type(self).__name__} {self.name!r}"
        if not isinstance(geom, WcsGeom):
            raise TypeError(f"{what}: geom must be a WcsGeom, got {type(geom).__name__}")
        if [a.name for a in geom.axes] != ["energy"]:
            raise ValueError(
                f"{what}: the geometry must have exactly one axis named 'energy', got {geom.axes_names}"
            )
        self.geom = geom
        if energy_axis_true is None:
            energy_axis_true = _rename_axis(geom.axes[0], "energy_true")
        if not isinstance(energy_axis_true, MapAxis) or energy_axis_true.name != "energy_true":
            raise ValueError(f"{what}: energy_axis_true must be a MapAxis named 'energy_true'")
        self.energy_axis_true = energy_axis_true
        shape = geom.data_shape
        shape_true = (energy_axis_true.nbin, *geom.data_shape_image)

        def array(value: Any, field: str, unit: str, expected: tuple[int, ...]) -> np.ndarray | None:
            if value is None:
                return None
            out = _to_float64(value, unit, f"{what}: {field}")
            if out.shape != expected:
                raise ValueError(f"{what}: {field} has shape {out.shape}, expected {expected}")
            return _frozen(out, np.float64)

        def mask(value: Any, field: str) -> np.ndarray | None:
            if value is None:
                return None
            out = np.asarray(value)
            if out.dtype != bool:
                raise ValueError(f"{what}: {field} must be a boolean array, got dtype {out.dtype}")
            if out.shape != shape:
                raise ValueError(f"{what}: {field} has shape {out.shape}, expected {shape}")
            return _frozen(out, bool)

        self.counts = array(counts, "counts", "", shape)
        self.exposure = array(exposure, "exposure", EXPOSURE_UNIT, shape_true)
        self.mask_safe = mask(mask_safe, "mask_safe")
        self.mask_fit = mask(mask_fit, "mask_fit")
        self.psf = psf
        self.edisp = edisp
        self.gti = _as_gti(gti)
        self.meta_table = meta_table
        self.meta = _meta_tuple(meta)
        self.livetime = _livetime_seconds(livetime, what)

    def _add_exposure_time_bins(self, info: dict[str, Any]) -> None:
        """The exposure range (over pixels with exposure inside the safe image), livetime, ontime,
        rates, bin counts and statistic type of :meth:`info_dict`."""
        exposure_min = exposure_max = np.nan
        if self.exposure is not None:
            sel = self.exposure > 0
            if self.mask_safe is not None:
                sel = sel & np.any(self.mask_safe, axis=0)[None]
            values = self.exposure[sel] if np.any(sel) else self.exposure
            exposure_min, exposure_max = float(np.min(values)), float(np.max(values))
        info["exposure_min"] = exposure_min
        info["exposure_max"] = exposure_max
        add_time_info(info, self.livetime, self.gti)
        info["n_bins"] = int(self.counts.size) if self.counts is not None else 0
        info["n_fit_bins"] = int(np.sum(self.mask)) if self.mask is not None else 0
        info["stat_type"] = self.stat_type

    def _map_array(self, value: Any, field: str, scalar_ok: bool = False) -> np.ndarray | None:
        """A dimensionless float64 map of the counts shape (a scalar fills it when ``scalar_ok``)."""
        if value is None:
            return None
        what = f"{type(self).__name__} {self.name!r}"
        out = _to_float64(value, "", f"{what}: {field}")
        if scalar_ok and out.ndim == 0:
            out = np.full(self.data_shape, float(out))
        if out.shape != self.data_shape:
            raise ValueError(f"{what}: {field} has shape {out.shape}, expected {self.data_shape}")
        return _frozen(out, np.float64)

    # -- geometry and masks ---------------------------------------------------------------------------
    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.geom.data_shape

    @property
    def geom_exposure(self) -> WcsGeom:
        """The exposure geometry: the image geometry with the true-energy axis."""
        return self.geom.replace_axes([self.energy_axis_true])

    @property
    def meta_dict(self) -> dict[str, Any]:
        return dict(self.meta)

    @property
    def mask(self) -> np.ndarray | None:
        """``mask_safe & mask_fit`` (whichever exists; None when neither does)."""
        if self.mask_safe is not None and self.mask_fit is not None:
            return self.mask_safe & self.mask_fit
        return self.mask_fit if self.mask_fit is not None else self.mask_safe

    @property
    def mask_image(self) -> np.ndarray:
        """The mask ORed over energy (all True without masks), shape ``(ny, nx)``."""
        mask = self.mask
        if mask is None:
            return np.ones(self.geom.data_shape_image, dtype=bool)
        return np.any(mask, axis=0)

    @property
    def mask_safe_image(self) -> np.ndarray | None:
        return None if self.mask_safe is None else np.any(self.mask_safe, axis=0)

    @property
    def excess(self) -> np.ndarray | None:
        """``counts - background`` (the background of :class:`MapDatasetOnOff` is
        ``alpha * counts_off``)."""
        background = getattr(self, "background", None)
        if self.counts is None or background is None:
            return None
        return self.counts - background

    def energy_mask(self, energy_min: Any = None, energy_max: Any = None) -> np.ndarray:
        """Bins fully inside ``[energy_min, energy_max]`` (Quantities, strings or TeV), broadcast to
        the data shape, as Gammapy's ``geom.energy_mask``: ``(E_lo >= energy_min) & (E_hi <= energy_max)``.

        The edges are compared in the axis unit, as Gammapy's axis returns them (``exp`` of the
        interpolated log-edges, which can move an edge by an ulp)."""
        axis = self.geom.axis("energy")
        edges = axis.pix_to_coord(np.arange(axis.nbin + 1, dtype=float) - 0.5)
        unit = parse_unit(axis.unit or ENERGY)

        def bound(value: Any, what: str, default: float) -> float:
            if value is None:
                return default
            if not isinstance(value, (u.Quantity, str)):
                value = u.Quantity(float(value), ENERGY)
            try:
                return float(u.Quantity(value).to_value(unit))
            except (u.UnitConversionError, TypeError, ValueError) as err:
                raise ValueError(f"{what}: {value!r} is not an energy: {err}") from None

        emin = bound(energy_min, "energy_min", edges[0])
        emax = bound(energy_max, "energy_max", edges[-1])
        mask = (edges[:-1] >= emin) & (edges[1:] <= emax)
        return np.broadcast_to(mask[:, None, None], self.data_shape).copy()

    # -- IRFs at a position ---------------------------------------------------------------------------
    def _psf_energy_name(self) -> str:
        return getattr(self.psf, "energy_name", "energy_true")

    def _psf_kernel(self, position: SkyCoord | None, cache: dict) -> np.ndarray | None:
        """The PSF kernel (float32-rounded, as Gammapy convolves with it), ``(n_energy, ky, kx)``."""
        if self.psf is None:
            return None
        geom = self.geom_exposure if self._psf_energy_name() == "energy_true" else self.geom
        if getattr(self.psf, "has_single_spatial_bin", False):
            key: Any = "single"
            position = geom.center_skydir
        else:
            key = (
                None
                if position is None
                else (position.frame.name, float(position.data.lon.deg), float(position.data.lat.deg))
            )
        if key not in cache:
            kernel = self.psf.get_psf_kernel(position=position, geom=geom)
            data = np.asarray(getattr(kernel, "data", kernel), dtype=np.float32).astype(np.float64)
            if data.ndim != 3 or data.shape[0] != geom.axes[0].nbin:
                raise ValueError(
                    f"MapDataset {self.name!r}: the PSF kernel has shape {data.shape}, expected "
                    f"({geom.axes[0].nbin}, ny, nx)"
                )
            cache[key] = data
        return cache[key]

    def _psf_width(self, kernel: np.ndarray | None) -> float:
        """Gammapy's ``psf_width``: the largest width (deg) of the kernel map."""
        if kernel is None:
            return 0.0
        cdelt = self.geom.cdelt
        return float(max(kernel.shape[-1] * cdelt[0], kernel.shape[-2] * cdelt[1]))

    def _edisp_matrix(self, position: SkyCoord | None, use_edisp: bool) -> np.ndarray:
        energy_axis = self.geom.axes[0]
        if self.edisp is None or not use_edisp:
            kernel = irf.EDispKernel.from_diagonal_response(self.energy_axis_true, energy_axis)
        else:
            kernel = self.edisp.get_edisp_kernel(position=position, energy_axis=energy_axis)
        matrix = np.asarray(kernel.pdf_matrix, dtype=np.float64)
        expected = (self.energy_axis_true.nbin, energy_axis.nbin)
        if matrix.shape != expected:
            raise ValueError(
                f"MapDataset {self.name!r}: the edisp matrix has shape {matrix.shape}, expected {expected}"
            )
        return matrix

    # -- planning -------------------------------------------------------------------------------------
    def _sky_models(self, models: Any) -> list[Any]:
        """The models that predict signal counts on this dataset: sky models and npred templates."""
        return [m for m in _as_models(models) if _is_signal_model(m) and m.applies_to(self.name)]

    def _background_model(self, models: Any) -> FoVBackgroundModel | None:
        models = _as_models(models)
        name = f"{self.name}-bkg"
        if name in models.names and isinstance(models[name], FoVBackgroundModel):
            return models[name]
        return None

    def _plan_npred_template(self, model: TemplateNPredModel) -> dict[str, Any] | None:
        """The evaluator fields of an npred template (None when its map does not overlap the
        dataset): the map must be on the dataset's energy axis and pixel grid (or a cutout of it),
        as Gammapy's ``Map.stack`` needs."""
        from ..irf.psf import placement

        what = f"MapDataset {self.name!r}, TemplateNPredModel {model.name!r}"
        if not model.geom.axes[0].is_allclose(self.geom.axes[0]):
            raise ValueError(f"{what}: the template's energy axis differs from the dataset's (reconstructed) one")
        image = self.geom.to_image()
        try:
            where = placement(model.geom.to_image(), image, what)
        except ValueError:
            raise ValueError(
                f"{what}: the template's map is not on the dataset's pixel grid (same geometry or a "
                "cutout of it)"
            ) from None
        ny, nx = image.data_shape_image
        if where is None:
            parent = inner = ((0, ny), (0, nx))
        else:
            parent = _slices_tuple(where[0][1:])
            inner = _slices_tuple(where[1][1:])
        shape = (parent[0][1] - parent[0][0], parent[1][1] - parent[1][0])
        if min(shape) <= 0:
            return None
        lon = lat = None
        if model.spatial_model is not None:
            lon_all, lat_all = image.get_coord(frame=model.spatial_model.frame)
            lon = np.asarray(lon_all[_as_slices(parent)], dtype=np.float64)
            lat = np.asarray(lat_all[_as_slices(parent)], dtype=np.float64)
        return {
            "energy_grid": np.zeros((0, 1)),
            "exposure": None,
            "edisp": np.zeros((0, 0)),
            "psf": None,
            "lon": lon,
            "lat": lat,
            "solid_angle": None,
            "energy_true_center": None,
            "model_name": model.name,
            "kind": "npred_template",
            "mode": "local",
            "shape": shape,
            "parent_slices": parent,
            "inner_slices": None,
            "factor": 1,
            "psf_stage": "none",
            "kernel_shape": (0, 0),
            "fft_shape": (0, 0),
            "projection": None,
            "frame": None,
            "irf_position": None,
            "evaluation_radius": None,
            "spatial_values": (),
            "psf_width": 0.0,
            "time_intervals": None,
            "energy_reco_center": np.asarray(self.geom.axes[0].center_in(ENERGY), dtype=np.float64)[:, None, None],
            "template_slices": inner,
        }

    def _plan_evaluator(
        self, model: SkyModel, mask_image: np.ndarray, psf_cache: dict
    ) -> dict[str, Any] | None:
        """The fields of one model's evaluator (without ``active_index``), or None if it does not
        contribute (Gammapy's ``contributes`` rule)."""
        what = f"MapDataset {self.name!r}, model {model.name!r}"
        flags = dict(model.apply_irf)
        spatial = model.spatial_model
        radius = None if spatial is None else _float_or_none(spatial.evaluation_radius)
        mode = "global" if spatial is None or radius is None else "local"
        position = None if spatial is None else spatial.position
        if flags["exposure"] and self.exposure is None:
            raise ValueError(f"{what}: the dataset has no exposure, cannot predict counts")

        edisp = self._edisp_matrix(position, flags["edisp"])
        kernel = self._psf_kernel(position, psf_cache) if spatial is not None else None
        psf_width = self._psf_width(kernel)
        psf_stage = "none"
        if kernel is not None and flags["psf"]:
            psf_stage = "true" if self._psf_energy_name() == "energy_true" else "reco"

        image = self.geom.to_image()
        if mode == "local":
            assert spatial is not None and radius is not None
            try:
                _, mask_slices, _ = image.cutout_info(position, 2 * radius + CUTOUT_MARGIN + psf_width)
                contributes = bool(np.any(mask_image[mask_slices]))
            except ValueError:  # astropy's NoOverlapError is a ValueError
                contributes = False
            if not contributes:
                return None
            if psf_width > 0:
                try:
                    _, inside, _ = image.cutout_info(position, 2 * radius + CUTOUT_MARGIN)
                    direct = bool(np.any(mask_image[inside]))
                except ValueError:
                    direct = False
                if not direct:
                    log.warning(
                        f"{what}: the model is outside the target geometry but contributes inside through "
                        "the PSF; this contribution cannot be estimated precisely (extend the dataset "
                        "geometry or the masked margin of mask_fit)"
                    )
            cutout = image.cutout(position, psf_width + 2 * (radius + CUTOUT_MARGIN), odd_npix=True)
            parent = cutout.cutout_slices(image, mode="trim")["parent-slices"]
        else:
            cutout = image
            parent = (slice(0, image.data_shape_image[0]), slice(0, image.data_shape_image[1]))
        shape = cutout.data_shape_image
        edges_true = _energy_edges_tev(self.energy_axis_true)

        fields: dict[str, Any] = {
            "energy_grid": integration_grid(edges_true[:-1], edges_true[1:]),
            "exposure": None
            if self.exposure is None or not flags["exposure"]
            else np.ascontiguousarray(self.exposure[(Ellipsis, *parent)]),
            "edisp": edisp,
            "psf": None,
            "lon": None,
            "lat": None,
            "solid_angle": None,
            "energy_true_center": None,
            "model_name": model.name,
            "mode": mode,
            "shape": shape,
            "parent_slices": _slices_tuple(parent),
            "inner_slices": None,
            "factor": 1,
            "psf_stage": psf_stage,
            "kernel_shape": (0, 0) if kernel is None else tuple(kernel.shape[-2:]),
            "fft_shape": (0, 0),
            "projection": None,
            "frame": None if spatial is None else spatial.frame,
            "irf_position": None
            if mode == "global" or spatial is None
            else tuple(float(np.asarray(v)) for v in spatial.position_lonlat),
            "evaluation_radius": radius,
            "spatial_values": _spatial_values(model),
            "psf_width": psf_width,
            "time_intervals": time_intervals(model, self.gti),
        }
        if spatial is None:
            fields["kind"] = "none"
            fields["psf_stage"] = "none"
            return fields

        if isinstance(spatial, PointSpatialModel):
            fields["kind"] = "point"
            fields["projection"] = cutout.projection_jax()
            if kernel is not None and psf_stage == "true":
                ny, nx = shape
                fields["psf"] = np.pad(kernel, ((0, 0), (ny, ny), (nx, nx)))
                return fields
        elif getattr(spatial, "integrates_to_one_per_pixel", False):
            fields["kind"] = "one_per_pixel"
        else:
            fields["kind"] = "dense"
            fields.update(self._dense_grid(spatial, cutout, radius))
        if kernel is not None and psf_stage != "none":
            fields["psf"], fields["fft_shape"] = _kernel_fft(kernel, shape)
        return fields

    def _dense_grid(self, spatial: Any, cutout: WcsGeom, radius: float | None) -> dict[str, Any]:
        """Gammapy's ``SpatialModel.integrate_geom`` grid: the evaluation points (sub-pixel centres of
        the inner cutout when oversampling), the factor and the solid angles."""
        pix_scale = float(np.max(cutout.pixel_scales))
        factor = None
        inner = cutout
        inner_slices = None
        if radius is not None:
            try:
                inner, _, _ = cutout.cutout_info(spatial.position, 2 * max(radius, pix_scale))
                inner_slices = _slices_tuple(inner.cutout_slices(cutout, mode="partial")["parent-slices"])
            except ValueError:
                factor = 1
        if factor is None:
            bin_size = _float_or_none(spatial.evaluation_bin_size_min)
            if bin_size is None:
                factor = 1
            elif bin_size > 0:
                factor = int(min(int(np.ceil(pix_scale / bin_size)), MAX_OVERSAMPLING))
            else:
                factor = MAX_OVERSAMPLING
        if factor > 1:
            grid = inner.upsample(factor)
        else:
            grid, inner_slices = cutout, None
        lon, lat = grid.get_coord(frame=spatial.frame)
        out = {
            "lon": np.asarray(lon, dtype=np.float64),
            "lat": np.asarray(lat, dtype=np.float64),
            "solid_angle": np.asarray(cutout.solid_angle(), dtype=np.float64),
            "factor": factor,
            "inner_slices": inner_slices,
        }
        if getattr(spatial, "is_energy_dependent", False):
            center = self.energy_axis_true.center_in(ENERGY)
            out["energy_true_center"] = np.asarray(center, dtype=np.float64)[:, None, None]
        return out

    def _plan_signal(self, models: Any, all_active: bool) -> dict[str, Any]:
        """The evaluator plans of the sky models and the active pixels (the union of their cutouts;
        every pixel when ``all_active`` or a model is global), shared by the Cash and WStat plans."""
        shape = self.data_shape
        ny, nx = shape[1:]
        sky = self._sky_models(models)
        mask = self.mask
        mask = np.ones(shape, dtype=bool) if mask is None else mask
        mask_image = np.any(mask, axis=0)

        psf_cache: dict = {}
        evaluator_fields = []
        skipped = []
        for model in sky:
            if isinstance(model, TemplateNPredModel):
                fields = self._plan_npred_template(model)
            else:
                fields = self._plan_evaluator(model, mask_image, psf_cache)
            if fields is None:
                skipped.append(model.name)
            else:
                evaluator_fields.append(fields)

        all_active = all_active or any(f["mode"] == "global" for f in evaluator_fields)
        active = np.zeros((ny, nx), dtype=bool)
        if all_active:
            active[:] = True
        for f in evaluator_fields:
            active[_as_slices(f["parent_slices"])] = True
        active_pixels = np.flatnonzero(active)
        lookup = np.full(ny * nx, -1, dtype=np.int64)
        lookup[active_pixels] = np.arange(active_pixels.size)
        pixel_index = np.arange(ny * nx).reshape(ny, nx)
        evaluators = []
        for f in evaluator_fields:
            f["active_index"] = lookup[pixel_index[_as_slices(f["parent_slices"])].ravel()]
            f["active_leading"] = bool(np.array_equal(f["active_index"], np.arange(f["active_index"].size)))
            evaluators.append(MapEvaluatorPlan(**f))
        return {
            "sky": sky,
            "skipped": tuple(skipped),
            "evaluators": tuple(evaluators),
            "mask": mask,
            "active": active,
            "active_pixels": active_pixels,
            "all_active": all_active,
        }

    # -- eager conveniences ---------------------------------------------------------------------------
    def _eval(self, models: Any, method: str, *args: Any) -> np.ndarray:
        models = _as_models(() if models is None else models)
        return np.asarray(_evaluate(self.plan(models), models, method, *args))

    def npred(self, models: Any = None) -> np.ndarray:
        """Total predicted counts ``(E, ny, nx)`` (signal + background, negative values set to 0)."""
        return self._eval(models, "npred")

    def npred_signal(self, models: Any = None, model_names: Any = None) -> np.ndarray:
        """Predicted signal counts of all sky models (or of the ones named)."""
        if isinstance(model_names, str):
            model_names = (model_names,)
        names = None if model_names is None else tuple(model_names)
        return self._eval(models, "npred_signal", names)

    def npred_background(self, models: Any = None) -> np.ndarray:
        """Predicted background counts (the background x the FoV background model)."""
        return self._eval(models, "npred_background")

    def stat_array(self, models: Any = None) -> np.ndarray:
        return self._eval(models, "stat_array")

    def stat_sum(self, models: Any = None) -> float:
        """The Cash statistic over ``mask_safe & mask_fit``."""
        if self.counts is None:
            raise ValueError(f"MapDataset {self.name!r}: no counts, no statistic")
        return float(self._eval(models, "stat_sum"))

    def residuals(self, models: Any = None, method: str = "diff", **kwargs: Any) -> np.ndarray:
        """Residual map ``(E, ny, nx)`` of ``counts`` against ``npred(models)``, as Gammapy's
        ``MapDataset.residuals``: ``method`` "diff", "diff/model" or "diff/sqrt(model)"; both maps
        masked with ``mask`` (NaN outside). With smoothing options (``width``, default "0.1 deg";
        ``kernel`` "gauss", "disk" or "box"; ``mode``, default "constant") the masked maps are smoothed
        and divided by the smoothed mask first."""
        from ..geom.smooth import smooth_images

        if method not in _RESIDUAL_METHODS:
            raise ValueError(f"residuals: invalid method {method!r}; choose from {list(_RESIDUAL_METHODS)}")
        if self.counts is None:
            raise ValueError(f"{type(self).__name__} {self.name!r}: no counts, no residuals")
        counts = np.asarray(self.counts, dtype=np.float64)
        npred = np.asarray(self.npred(models), dtype=np.float64)
        mask = self.mask
        if mask is not None:
            counts, npred = counts * mask, npred * mask
        if kwargs:
            unknown = sorted(set(kwargs) - {"width", "kernel", "mode"})
            if unknown:
                raise ValueError(f"residuals: unknown smoothing options {unknown} (width, kernel, mode)")
            width = _width_in_pixels(kwargs.get("width", "0.1 deg"), self.geom)
            options = {"kernel": kwargs.get("kernel", "gauss"), "mode": kwargs.get("mode", "constant")}
            with np.errstate(invalid="ignore", divide="ignore"):
                npred = smooth_images(npred, width, **options)
                counts = smooth_images(counts, width, **options)
                if mask is not None:
                    smoothed_mask = smooth_images(mask.astype(np.float64), width, **options)
                    npred, counts = npred / smoothed_mask, counts / smoothed_mask
        residuals = _residuals(counts, npred, method)
        if mask is not None:
            residuals[~mask] = np.nan
        return residuals

    # -- plots (Gammapy's names; models are an argument: Models, a model list or a FitResult) --------
    def plot_residuals_spatial(
        self, models: Any = None, ax: Any = None, method: str = "diff", smooth_kernel: str = "gauss",
        smooth_radius: Any = "0.1 deg", **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Gammapy's ``plot_residuals_spatial``: counts and ``npred(models)`` masked, summed over
        energy, smoothed (``smooth_kernel`` "gauss", "disk" or "box", ``smooth_radius`` an angle or a number
        of pixels) and compared with ``method``, on the sky (``cmap="coolwarm"``, -5 to 5, colour
        bar). Returns the axes (a WCSAxes unless given)."""
        from ..plotting import plot_residuals_spatial
        from ._plots import plot_models

        models = plot_models(models)
        return plot_residuals_spatial(self, models, ax, method, smooth_kernel, smooth_radius, **kwargs)

    def plot_residuals_spectral(
        self, models: Any = None, ax: Any = None, method: str = "diff", region: Any = None,
        kwargs_fit: dict[str, Any] | None = None, kwargs_safe: dict[str, Any] | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Gammapy's ``plot_residuals_spectral``: the masked counts and ``npred(models)`` summed in
        ``region`` (``(center, radius)`` or a boolean image; default the whole map), ``method``
        "diff" or "diff/sqrt(model)", error bars from the counts statistic (Cash or WStat), a line
        at 0 and the masks. Returns the axes."""
        from ..plotting import plot_residuals_spectral
        from ._plots import plot_models

        models = plot_models(models)
        return plot_residuals_spectral(self, models, ax, method, region, kwargs_fit, kwargs_safe, **kwargs)

    def plot_residuals(
        self, models: Any = None, ax_spatial: Any = None, ax_spectral: Any = None,
        kwargs_spatial: dict[str, Any] | None = None, kwargs_spectral: dict[str, Any] | None = None,
    ) -> tuple[Any, Any]:  # fmt: skip
        """Gammapy's ``plot_residuals``: :meth:`plot_residuals_spatial` beside
        :meth:`plot_residuals_spectral` (a 12 x 4 inch figure unless both axes are given), the
        spectral ``region`` (in ``kwargs_spectral``) outlined on the map. Returns both axes."""
        from ._plots import draw_region, two_axes

        image_wcs = {"projection": self.geom.to_image().wcs}
        ax_spatial, ax_spectral = two_axes(ax_spatial, ax_spectral, (12, 4), (1, 2, 1), (1, 2, 2), image_wcs)
        kwargs_spatial = kwargs_spatial or {}
        kwargs_spectral = kwargs_spectral or {}
        self.plot_residuals_spatial(models, ax_spatial, **kwargs_spatial)
        self.plot_residuals_spectral(models, ax_spectral, **kwargs_spectral)
        if kwargs_spectral.get("region") is not None:
            draw_region(ax_spatial, self.geom, kwargs_spectral["region"])
        return ax_spatial, ax_spectral

    def peek(self, models: Any = None, figsize: tuple[float, float] = (13, 7)) -> np.ndarray:
        """Gammapy's ``peek``: the exposure map (middle true-energy bin), the counts and the
        ``npred(models)`` maps summed over energy with the masks, and at the map centre the
        exposure against true energy, the 68 % / 95 % PSF containment radii and the
        energy-dispersion matrix. Returns the 2 x 3 axes."""
        from ._plots import peek_map_dataset, plot_models

        if self.counts is None:
            raise ValueError(f"{type(self).__name__} {self.name!r}: no counts, nothing to peek at")
        return peek_map_dataset(self, plot_models(models), figsize)

    # -- summaries ------------------------------------------------------------------------------------
    def summary(self, models: Any = None) -> str:
        """Gammapy's dataset summary; with ``models``, the predicted counts, statistic and models."""
        info = self.info_dict(models)
        title = type(self).__name__

        row = summary_row
        lines = [title, "-" * len(title), "", row("Name", f"{info['name']} "), ""]
        lines += summary_count_rows(info, EXPOSURE_UNIT)
        selected = [] if models is None else [m for m in _as_models(models) if m.applies_to(self.name)]
        pars = [p for m in selected for p in m.parameters]
        lines += [
            row("Number of models", f"{len(selected)} "),
            row("Number of parameters", f"{len(pars)}"),
            row("Number of free parameters", f"{sum(not p.frozen for p in pars)}"),
            "",
        ]
        for i, m in enumerate(selected):
            lines += [f"  Component {i}: " + str(m).replace("\n", "\n  "), ""]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.summary()

    # -- I/O ------------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Any, name: str | None = None) -> Any:
        """Read a GADF map dataset FITS file, as Gammapy's ``MapDataset.read`` (an on-off file,
        with ``COUNTS_OFF``, ``ACCEPTANCE`` and ``ACCEPTANCE_OFF``, for :class:`MapDatasetOnOff`).

        ``name`` defaults to the primary header's ``NAME``.
        """
        path = Path(os.path.expandvars(os.fspath(path)))
        if not path.is_file():
            raise FileNotFoundError(f"{cls.__name__}.read: no such file {str(path)!r}")
        try:
            raw = path.read_bytes()
            # astropy decompresses a gzipped file again for every HDU it reads: once is 10x faster
            source: Any = io.BytesIO(gzip.decompress(raw)) if raw[:2] == b"\x1f\x8b" else io.BytesIO(raw)
            hdulist = fits.open(source, memmap=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"{_where(path)}: not a readable FITS file ({err})") from None
        with hdulist:
            return cls.from_hdulist(hdulist, name=name, path=path)

    @classmethod
    def from_hdulist(cls, hdulist: fits.HDUList, name: str | None = None, path: Any = None) -> Any:
        """Build a dataset from an open GADF FITS file (``path`` only names it in errors)."""
        primary = hdulist[0].header
        if name is None:
            name = primary.get("NAME")
        meta = {k: primary[k] for k in primary if k not in _PRIMARY_STRUCTURAL}

        maps: dict[str, tuple[np.ndarray, WcsGeom, str]] = {}
        for hdu in (*cls._count_hdus, "EXPOSURE", "MASK_SAFE", "MASK_FIT"):
            if hdu in hdulist:
                maps[hdu] = _read_map(hdulist, hdu, path)
        candidates = (*cls._count_hdus, "MASK_SAFE", "MASK_FIT")
        reference = next((h for h in candidates if h in maps), None)
        if reference is None:
            raise ValueError(
                f"{_where(path)}: no {', '.join(candidates[:-1])} or {candidates[-1]} HDU: not a {cls.tag}"
            )
        geom = maps[reference][1]
        if [a.name for a in geom.axes] != ["energy"]:
            raise ValueError(f"{_where(path, reference)}: expected one 'energy' axis, got {geom.axes_names}")
        image = geom.to_image()

        def checked(hdu: str, axis_name: str = "energy") -> tuple[np.ndarray, WcsGeom, str]:
            data, g, unit = maps[hdu]
            if g.to_image() != image:
                raise ValueError(f"{_where(path, hdu)}: its image geometry differs from {reference}'s")
            if len(g.axes) != 1 or (
                g.axes[0].name != axis_name
                and not (axis_name == "energy_true" and g.axes[0].name == "energy")
            ):
                raise ValueError(f"{_where(path, hdu)}: expected one {axis_name!r} axis, got {g.axes_names}")
            if (
                axis_name == "energy"
                and g.axes[0] != geom.axes[0]
                and not g.axes[0].is_allclose(geom.axes[0])
            ):
                raise ValueError(f"{_where(path, hdu)}: its energy axis differs from {reference}'s")
            return data, g, unit

        def dimensionless(hdu: str) -> np.ndarray:
            data, _, unit = checked(hdu)
            if unit and parse_unit(unit) not in (u.dimensionless_unscaled, u.ct, u.count):
                raise ValueError(f"{_where(path, hdu)}: unit {unit!r} is not counts (dimensionless)")
            return np.asarray(data, dtype=np.float64)

        kwargs: dict[str, Any] = {"geom": geom, "name": name, "meta": meta}
        for hdu in cls._count_hdus:
            if hdu in maps:
                kwargs[hdu.lower()] = dimensionless(hdu)
        for hdu in ("MASK_SAFE", "MASK_FIT"):
            if hdu in maps:
                kwargs[hdu.lower()] = np.asarray(checked(hdu)[0]).astype(bool)
        if "EXPOSURE" in maps:
            data, g, unit = checked("EXPOSURE", "energy_true")
            try:
                factor = (1.0 * parse_unit(unit)).to_value(parse_unit(EXPOSURE_UNIT))
            except (u.UnitConversionError, ValueError) as err:
                raise ValueError(
                    f"{_where(path, 'EXPOSURE')}: unit {unit!r} (BUNIT) does not convert to {EXPOSURE_UNIT!r}: {err}"
                ) from None
            kwargs["exposure"] = np.asarray(data, dtype=np.float64) * factor
            kwargs["livetime"] = _read_livetime(hdulist["EXPOSURE"].header, path)
            axis = g.axes[0]
            kwargs["energy_axis_true"] = (
                axis if axis.name == "energy_true" else _rename_axis(axis, "energy_true")
            )
        if "PSF" in hdulist or "EDISP" in hdulist:
            from .. import irf

            try:
                if "PSF" in hdulist:
                    kwargs["psf"] = irf.PSFMap.from_hdulist(hdulist, hdu="PSF", exposure_hdu="PSF_EXPOSURE")
                if "EDISP" in hdulist:
                    kwargs["edisp"] = irf.read_edisp_map(hdulist)
            except (KeyError, ValueError) as err:
                raise ValueError(f"{_where(path)}: cannot read the IRF maps: {err}") from None
        if "GTI" in hdulist:
            from ..data.gti import _read_gti

            kwargs["gti"] = GTI(
                **_read_gti(hdulist["GTI"], Path(path) if path is not None else Path("<hdulist>"))
            )
        if "META_TABLE" in hdulist:
            kwargs["meta_table"] = Table.read(hdulist["META_TABLE"])
        try:
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{_where(path)}: {err}") from None

    def to_hdulist(self) -> fits.HDUList:
        """The dataset as Gammapy writes it (GADF): one image HDU and bands table per map, the IRF
        maps, the masks (as 8-bit integers), GTI and META_TABLE. Exposure is in cm2 s; maps are
        float32 where that is exact (e.g. read from a float32 file), float64 otherwise."""
        primary = fits.PrimaryHDU()
        primary.header["NAME"] = self.name
        for key, value in self.meta:
            if key not in _PRIMARY_STRUCTURAL:
                primary.header[key] = value
        hdus: list[Any] = [primary]
        if self.counts is not None:
            hdus += _map_hdus("COUNTS", _compact(self.counts), self.geom, "")
        if self.exposure is not None:
            exposure_hdus = _map_hdus("EXPOSURE", _compact(self.exposure), self.geom_exposure, EXPOSURE_UNIT)
            if self.livetime is not None:  # Gammapy keeps it in the exposure map's meta
                exposure_hdus[0].header["META"] = json.dumps({"livetime": f"{self.livetime!r} s"})
            hdus += exposure_hdus
        background = getattr(self, "background", None) if "BACKGROUND" in self._count_hdus else None
        if background is not None:
            hdus += _map_hdus("BACKGROUND", _compact(background), self.geom, "")
        if self.edisp is not None:
            hdus += _irf_hdus(self.edisp)
        if self.psf is not None:
            hdus += _irf_hdus(self.psf)
        if self.mask_safe is not None:
            hdus += _map_hdus("MASK_SAFE", np.asarray(self.mask_safe).astype(np.uint8), self.geom, "")
        if self.mask_fit is not None:
            hdus += _map_hdus("MASK_FIT", np.asarray(self.mask_fit).astype(np.uint8), self.geom, "")
        if self.gti is not None:
            from ..data.gti import _gti_hdu

            hdus.append(_gti_hdu(self.gti))
        if self.meta_table is not None:
            hdus.append(fits.table_to_hdu(Table(self.meta_table)))
            hdus[-1].name = "META_TABLE"
        return fits.HDUList(hdus)

    def write(self, path: Any, overwrite: bool = False) -> None:
        """Write the dataset (see :meth:`to_hdulist`) atomically; refuses to replace an existing file
        unless ``overwrite``."""
        from ..io._atomic import atomic_paths

        hdulist = self.to_hdulist()
        buffer = io.BytesIO()
        hdulist.writeto(buffer)
        data = buffer.getvalue()
        if Path(os.fspath(path)).suffix == ".gz":
            # one call: astropy's own gzip writing is about 40x slower
            data = gzip.compress(data, compresslevel=6)
        with atomic_paths(path, overwrite=overwrite) as (tmp,):
            tmp.write_bytes(data)

    # -- cutouts -------------------------------------------------------------------------------------
    def cutout(self, position: Any, width: Any, mode: str = "trim", name: str | None = None) -> Any:
        """A new dataset cut out around ``position``, as Gammapy's ``MapDataset.cutout``.

        Parameters
        ----------
        position : SkyCoord or (lon, lat) in deg in the geometry frame
            Centre of the cutout.
        width : float, str, Quantity or a (lon, lat) pair
            Width in deg.
        mode : {"trim", "partial", "strict"}
            As ``astropy.nddata.Cutout2D`` (see :meth:`jaxgamma.geom.WcsGeom.cutout`): "partial"
            keeps the requested shape, filling the outside with 0 (False for masks).
        name : str, optional
            A random name when not given (as Gammapy).

        The maps are sliced (no copy of more than the cutout), the IRF maps cut out on their own
        grid with at least 3 pixels a side; the GTI and meta table are kept.
        """
        from ..irf.psf import cutout_array

        geom, sp, sc = self.geom.cutout_info(position, width, mode=mode)
        kwargs: dict[str, Any] = {
            "geom": geom,
            "energy_axis_true": self.energy_axis_true,
            "gti": self.gti,
            "meta_table": self.meta_table,
            "name": _make_name() if name is None else name,
            "meta": self.meta,
            "livetime": self.livetime,
        }
        for field in ("counts", "exposure", "mask_safe", "mask_fit", *self._cutout_maps):
            value = getattr(self, field)
            kwargs[field] = None if value is None else cutout_array(value, geom, sp, sc)
        for field in ("psf", "edisp"):
            value = getattr(self, field)
            kwargs[field] = None if value is None else value.cutout(position, width, mode=mode)
        return type(self)(**kwargs)

    # -- Gammapy's manipulations (jaxgamma.datasets._map_ops) -----------------------------------------
    def slice_by_idx(self, slices: dict[str, slice], name: str | None = None) -> Any:
        """The dataset restricted to energy bins, as Gammapy's ``slice_by_idx``: ``slices`` maps
        ``"energy"`` (counts, background, masks, the edisp kernel's reconstructed axis) and/or
        ``"energy_true"`` (exposure, PSF, the edisp's true axis) to a ``slice``. Integer indices
        (which drop the axis in Gammapy) are refused: a map dataset keeps its energy axes."""
        from ._map_ops import slice_by_idx

        return slice_by_idx(self, slices, name=name)

    def slice_by_energy(self, energy_min: Any = None, energy_max: Any = None, name: str | None = None) -> Any:
        """The reconstructed-energy bins between ``energy_min`` and ``energy_max`` (Quantity or
        string; default the axis bounds), snapped to the bin edges as Gammapy's ``slice_by_energy``."""
        from ._map_ops import slice_by_energy

        return slice_by_energy(self, energy_min, energy_max, name=name)

    def resample_energy_axis(self, energy_axis: MapAxis, name: str | None = None) -> Any:
        """The reconstructed-energy bins grouped onto ``energy_axis`` (its edges must be some of the
        dataset's), as Gammapy's ``resample_energy_axis``: counts and background summed over the
        safe bins, masks ORed, the edisp kernel map regrouped with the safe mask on its grid; the
        exposure and PSF are kept."""
        from ._map_ops import resample_energy_axis

        return resample_energy_axis(self, energy_axis, name=name)

    def to_image(self, name: str | None = None) -> Any:
        """One reconstructed-energy bin: :meth:`resample_energy_axis` onto the squashed axis
        (Gammapy's ``to_image``)."""
        from ._map_ops import to_image

        return to_image(self, name=name)

    def downsample(self, factor: int, axis_name: str | None = None, name: str | None = None) -> Any:
        """Gammapy's ``downsample``: ``factor x factor`` pixels merged (``axis_name`` None; npix must
        be divisible, :meth:`pad` first) or ``factor`` reconstructed-energy bins (``"energy"``).
        Counts and background are summed over the safe bins, the exposure averaged, masks ORed;
        the IRF maps are kept, except the edisp kernel's reconstructed axis when energy bins merge."""
        from ._map_ops import downsample

        return downsample(self, factor, axis_name=axis_name, name=name)

    def pad(self, pad_width: Any, mode: str = "constant", name: str | None = None) -> Any:
        """The maps padded by ``pad_width`` pixels (one value or ``(x, y)``) on each side, with
        ``numpy.pad``'s ``mode`` (zeros and False for "constant"), as Gammapy's ``pad``; the IRF
        maps are kept. Not available for :class:`MapDatasetOnOff` (nor in Gammapy)."""
        from ._map_ops import pad

        return pad(self, pad_width, mode=mode, name=name)

    def to_spectrum_dataset(
        self, on_region: Any, containment_correction: bool = False, name: str | None = None, models: Any = None
    ) -> Any:
        """The spectrum in ``on_region`` (a sky region with a centre, fully inside the map, where the
        mask is uniform per energy bin), as Gammapy's ``to_spectrum_dataset``: counts (and the
        background, or the OFF counts) summed over the safe pixels inside, the exposure averaged,
        the energy dispersion of the pixel nearest the region centre, masks ORed. With
        ``containment_correction`` (a ``CircleSkyRegion`` and a PSF map) the exposure is multiplied
        by the PSF containment in the radius at the centre.

        Datasets hold no models: ``models`` supplies the FoV background model whose norm Gammapy's
        ``npred_background()`` applies to the background. Returns a
        :class:`~jaxgamma.datasets.SpectrumDataset` (a :class:`~jaxgamma.datasets.SpectrumDatasetOnOff`
        from a :class:`MapDatasetOnOff`, with the acceptance averaged over the safe pixels and
        ``acceptance_off`` keeping the summed background)."""
        from ._map_ops import to_spectrum_dataset

        return to_spectrum_dataset(self, on_region, containment_correction, name=name, models=models)


class MapDataset(_AbstractMapDataset):
    """A 3D map dataset with a known background: Cash statistic, as Gammapy's ``MapDataset``.

    Parameters
    ----------
    geom : WcsGeom
        Counts geometry: a WCS image with one reconstructed-energy axis named ``energy``.
    counts, background : array ``(E, ny, nx)``, optional
    exposure : array or Quantity ``(Et, ny, nx)``, optional
        Exposure in cm2 s (a Quantity is converted), on the same image geometry with the true-energy
        axis ``energy_axis_true``.
    energy_axis_true : MapAxis, optional
        The exposure's true-energy axis (named ``energy_true``); default the reconstructed axis.
    psf : jaxgamma.irf.PSFMap, optional
    edisp : jaxgamma.irf.EDispKernelMap or EDispMap, optional
    mask_safe, mask_fit : bool array ``(E, ny, nx)``, optional
    gti : GTI, optional
    meta_table : astropy Table, optional
    name : str, optional
        A random name when not given.
    meta : dict, optional
        Primary-header metadata (``CREATOR``, ...), written back.
    """

    tag: ClassVar[str] = "MapDataset"
    stat_type: ClassVar[str] = "cash"
    _count_hdus: ClassVar[tuple[str, ...]] = ("COUNTS", "BACKGROUND")
    _cutout_maps: ClassVar[tuple[str, ...]] = ("background",)

    background: np.ndarray | None = None

    def __init__(
        self,
        *,
        geom: WcsGeom,
        counts: Any = None,
        exposure: Any = None,
        background: Any = None,
        mask_safe: Any = None,
        mask_fit: Any = None,
        psf: Any = None,
        edisp: Any = None,
        gti: Any = None,
        meta_table: Any = None,
        energy_axis_true: MapAxis | None = None,
        name: str | None = None,
        meta: Any = None,
        livetime: Any = None,
    ):
        self._init_common(
            geom=geom,
            counts=counts,
            exposure=exposure,
            mask_safe=mask_safe,
            mask_fit=mask_fit,
            psf=psf,
            edisp=edisp,
            gti=gti,
            meta_table=meta_table,
            energy_axis_true=energy_axis_true,
            name=name,
            meta=meta,
            livetime=livetime,
        )
        self.background = self._map_array(background, "background")

    def plan(self, models: Any, reduce: bool = True) -> MapDatasetPlan:
        """Precompute (numpy) what the statistic of ``models`` needs; see :class:`MapDatasetPlan`.

        ``reduce=False`` keeps every bin explicit (no sufficient statistics).
        """
        models = _as_models(models)
        shape = self.data_shape
        n_energy, ny, nx = shape
        background_model = self._background_model(models)

        counts = np.zeros(shape) if self.counts is None else np.asarray(self.counts)
        background = np.zeros(shape) if self.background is None else np.asarray(self.background)

        background_lon = background_lat = None
        background_prepared = background_prepared_key = None
        if background_model is not None and background_model.spatial_model is not None:
            lon, lat = self.geom.get_coord(frame=background_model.spatial_model.frame)
            background_lon, background_lat = (
                np.asarray(lon, dtype=np.float64),
                np.asarray(lat, dtype=np.float64),
            )
            prepared = _prepared_background(self.geom, background_model.spatial_model, background_lon, background_lat)
            if prepared is not None:
                background_prepared_key, background_prepared = prepared
        signal = self._plan_signal(
            models, all_active=not reduce or self.background is None or background_lon is not None
        )
        mask, active, active_pixels, all_active = (
            signal["mask"],
            signal["active"],
            signal["active_pixels"],
            signal["all_active"],
        )
        sky, skipped, evaluators = signal["sky"], signal["skipped"], signal["evaluators"]

        flat = (n_energy, ny * nx)
        counts_flat = counts.reshape(flat)
        background_flat = background.reshape(flat)
        mask_flat = mask.reshape(flat)

        # the other masked bins: sufficient statistics, or explicit where the background is tiny
        other = mask_flat & ~active.ravel()[None, :]
        with np.errstate(invalid="ignore"):
            large = np.isfinite(background_flat) & (background_flat >= BACKGROUND_MIN_REDUCED)
        reduced_bins = other & large
        explicit = other & ~large
        # sum n ln B over the reduced bins with counts (the log only where it is needed)
        log_energy, log_pixel = np.nonzero(reduced_bins & (counts_flat > 0))
        n_log_b = np.bincount(
            log_energy,
            weights=counts_flat[log_energy, log_pixel] * np.log(background_flat[log_energy, log_pixel]),
            minlength=n_energy,
        )
        explicit_energy, explicit_pixel = np.nonzero(explicit)

        norm_names = tuple(m.name for m in sky)
        return MapDatasetPlan(
            evaluators=tuple(evaluators),
            counts=counts,
            background=background,
            mask=mask,
            active_pixels=active_pixels,
            counts_active=np.ascontiguousarray(counts_flat[:, active_pixels]),
            background_active=np.ascontiguousarray(background_flat[:, active_pixels]),
            mask_active=np.ascontiguousarray(mask_flat[:, active_pixels]),
            reduced_n_bins=reduced_bins.sum(axis=1).astype(np.float64),
            reduced_background=np.where(reduced_bins, background_flat, 0.0).sum(axis=1),
            reduced_counts=np.where(reduced_bins, counts_flat, 0.0).sum(axis=1),
            reduced_counts_log_background=n_log_b.astype(np.float64),
            explicit_energy=explicit_energy.astype(np.int64),
            explicit_pixel=explicit_pixel.astype(np.int64),
            explicit_counts=counts_flat[explicit],
            explicit_background=background_flat[explicit],
            energy_center=np.asarray(self.geom.axes[0].center_in(ENERGY), dtype=np.float64),
            background_lon=background_lon,
            background_lat=background_lat,
            background_prepared=background_prepared,
            background_prepared_key=background_prepared_key,
            name=self.name,
            shape=(n_energy, ny, nx),
            background_model_name=None if background_model is None else background_model.name,
            sky_model_names=norm_names,
            skipped_model_names=tuple(skipped),
            reduced=not all_active,
        )

    def fake(self, models: Any, seed: Any = None) -> MapDataset:
        """A copy whose counts are a Poisson realisation of ``npred(models)``, drawn from
        ``numpy.random.RandomState(seed)`` as Gammapy's ``fake``."""
        npred = np.nan_to_num(self.npred(models), nan=0.0, posinf=0.0, neginf=0.0)
        counts = _random_state(seed).poisson(npred).astype(np.float64)
        return self.replace(counts=counts)  # type: ignore[return-value]

    def info_dict(self, models: Any = None, in_safe_data_range: bool = True) -> dict[str, Any]:
        """Summary numbers as Gammapy's ``MapDataset.info_dict`` (exposure in cm2 s, times in s).

        Sums are over ``mask_safe`` (``in_safe_data_range``); the excess and its significance use the
        predicted background (with the FoV background model of ``models``), as Gammapy's."""
        given = models is not None
        models = _as_models(() if models is None else models)
        plan = self.plan(models)
        npred_map, background_map, signal_map, stat_sum = (
            np.asarray(v)
            for v in _evaluate(plan, models, ("npred", "npred_background", "npred_signal", "stat_sum"))
        )
        info: dict[str, Any] = {"name": self.name}
        mask = (
            self.mask_safe
            if (self.mask_safe is not None and in_safe_data_range)
            else np.ones(self.data_shape, bool)
        )
        background = excess = sqrt_ts = np.nan
        counts = 0.0 if self.counts is None else float(np.sum(self.counts[mask]))
        if self.counts is not None and self.background is not None:
            mu_bkg = float(np.sum(background_map[mask]))
            background = float(np.sum(self.background[mask]))
            excess = counts - mu_bkg
            ts = float(cash(counts, mu_bkg) - cash(counts, counts))
            sqrt_ts = float(np.sign(excess) * np.sqrt(max(ts, 0.0)))
        info["counts"] = int(counts)
        info["excess"] = float(excess)
        info["sqrt_ts"] = sqrt_ts
        info["background"] = float(background)
        has_models = len(models) > 0
        info["npred"] = (
            float(np.sum(npred_map[mask])) if (has_models or self.background is not None) else np.nan
        )
        info["npred_background"] = (
            float(np.sum(background_map[mask])) if self.background is not None else np.nan
        )
        info["npred_signal"] = float(np.sum(signal_map[mask])) if self._sky_models(models) else np.nan

        self._add_exposure_time_bins(info)
        info["stat_sum"] = float(stat_sum) if (self.counts is not None and given) else np.nan
        return info

    def to_masked(self, name: str | None = None, models: Any = None) -> MapDataset:
        """The dataset with its safe mask applied, as Gammapy's ``to_masked`` (stacked onto an
        empty dataset): counts and background 0 outside the safe mask, the exposure 0 in pixels
        without a safe bin, the IRF maps weighted by the safe mask, NaNs set to 0. ``models``
        supplies the FoV background model folded into the background, as Gammapy's stacking."""
        return stack_map_datasets([self], name=name, models=models)

    @classmethod
    def stack_datasets(cls, datasets: Any, name: str | None = None, models: Any = None) -> MapDataset:
        """Stack map datasets as Gammapy's ``Datasets.stack_reduce`` (see :func:`stack_map_datasets`)."""
        return stack_map_datasets(datasets, name=name, models=models)

    def stack(self, other: Any, models: Any = None) -> MapDataset:
        """A new dataset: ``other`` (one dataset or a sequence) stacked into this one, as Gammapy's
        in-place ``MapDataset.stack`` repeated.

        The others may lie on this geometry or on cutouts of it (e.g. from :meth:`cutout`); their
        maps are added where they overlap. This dataset enters unmasked, each other masked by its
        safe mask: ``counts += m counts_i``, ``background += m npred_background_i`` (FoV background
        models in ``models`` folded in), ``exposure += any_E(m) exposure_i``; PSF and energy
        dispersion maps become exposure-weighted means on this dataset's IRF grid; masks are
        ORed, GTIs merged and meta tables concatenated. The name is kept.
        """
        others: list[Any] = [other] if isinstance(other, Dataset) else list(other)
        # ON/OFF datasets (e.g. ring backgrounds per observation) stack their WStat background
        # without signal, as Gammapy's MapDataset.stack (npred_background of the other)
        _check_map_stackable([self, *[o for o in others if not isinstance(o, MapDatasetOnOff)]], MapDataset)
        return _stack_cash(self, others, self.name, models, masked_reference=False)

    @classmethod
    def create(
        cls,
        geom: WcsGeom,
        energy_axis_true: MapAxis | None = None,
        migra_axis: MapAxis | None = None,
        rad_axis: MapAxis | None = None,
        binsz_irf: Any = None,
        reference_time: Any = "2000-01-01",
        name: str | None = None,
        meta_table: Any = None,
        reco_psf: bool = False,
        **kwargs: Any,
    ) -> MapDataset:
        """An empty dataset, as Gammapy's ``MapDataset.create``: zero counts, background and exposure,
        a zero PSF map (``rad`` axis ``RAD_AXIS_DEFAULT`` unless given) and a diagonal energy
        dispersion (an :class:`~jaxgamma.irf.EDispKernelMap`, or an :class:`~jaxgamma.irf.EDispMap`
        when ``migra_axis`` is given) on the IRF grid of pixel size ``binsz_irf`` (deg, default
        0.2), with zero exposure maps; an empty GTI with ``reference_time``; ``mask_safe`` all
        False.

        Parameters
        ----------
        geom : WcsGeom
            Counts geometry with one ``energy`` axis.
        energy_axis_true : MapAxis, optional
            True-energy axis (named ``energy_true``); default the reconstructed axis renamed.
        migra_axis, rad_axis : MapAxis, optional
        binsz_irf : float, str or Quantity, optional
        reference_time : astropy Time or str
        name : str, optional
            Random when not given.
        meta_table : astropy Table, optional
        reco_psf : bool
            PSF map in reconstructed energy.
        **kwargs
            Other dataset fields (e.g. ``mask_fit``, ``meta``).
        """
        from astropy.time import Time

        geoms = create_map_dataset_geoms(
            geom,
            energy_axis_true=energy_axis_true,
            migra_axis=migra_axis,
            rad_axis=rad_axis,
            binsz_irf=binsz_irf,
            reco_psf=reco_psf,
        )
        zeros = np.zeros(geom.data_shape)
        edisp_geom = geoms["geom_edisp"]
        edisp = (
            irf.EDispMap.from_geom(edisp_geom)
            if "migra" in [a.name for a in edisp_geom.axes]
            else irf.EDispKernelMap.from_geom(edisp_geom)
        )
        time = Time(reference_time)
        mjd_int = float(np.floor(time.mjd))
        kwargs.setdefault(
            "gti",
            GTI(
                np.zeros(0),
                np.zeros(0),
                mjdrefi=mjd_int,
                mjdreff=float(time.mjd - mjd_int),
                timesys=time.scale,
            ),
        )
        return cls(
            geom=geom,
            counts=zeros,
            background=zeros,
            exposure=np.zeros(geoms["geom_exposure"].data_shape),
            energy_axis_true=geoms["geom_exposure"].axes[0],
            psf=irf.PSFMap.from_geom(geoms["geom_psf"]),
            edisp=edisp,
            mask_safe=np.zeros(geom.data_shape, dtype=bool),
            meta_table=meta_table,
            name=name,
            **kwargs,
        )


# -- the on-off dataset -----------------------------------------------------------------------------------
class MapDatasetOnOff(_AbstractMapDataset):
    """A 3D map dataset with ON and OFF counts: WStat statistic (background profiled out per bin), as
    Gammapy's ``MapDatasetOnOff``.

    Parameters
    ----------
    geom, counts, exposure, energy_axis_true, psf, edisp, mask_safe, mask_fit, gti, meta_table, name, meta
        As :class:`MapDataset` (there is no ``background``: it is ``alpha * counts_off``).
    counts_off : array ``(E, ny, nx)``, optional
        OFF counts (e.g. ring-convolved).
    acceptance, acceptance_off : array ``(E, ny, nx)`` or scalar, optional
        ON and OFF acceptances; ``alpha = nan_to_num(acceptance / acceptance_off)``. A scalar fills
        the map, as Gammapy's ``from_map_dataset``.

    The predicted signal is that of :class:`MapDataset` (same evaluators, cutouts, PSF and energy
    dispersion); FoV background models do not apply.
    """

    tag: ClassVar[str] = "MapDatasetOnOff"
    stat_type: ClassVar[str] = "wstat"
    _count_hdus: ClassVar[tuple[str, ...]] = ("COUNTS", "COUNTS_OFF", "ACCEPTANCE", "ACCEPTANCE_OFF")
    _cutout_maps: ClassVar[tuple[str, ...]] = ("counts_off", "acceptance", "acceptance_off")

    counts_off: np.ndarray | None = None
    acceptance: np.ndarray | None = None
    acceptance_off: np.ndarray | None = None

    def __init__(
        self,
        *,
        geom: WcsGeom,
        counts: Any = None,
        counts_off: Any = None,
        acceptance: Any = None,
        acceptance_off: Any = None,
        exposure: Any = None,
        mask_safe: Any = None,
        mask_fit: Any = None,
        psf: Any = None,
        edisp: Any = None,
        gti: Any = None,
        meta_table: Any = None,
        energy_axis_true: MapAxis | None = None,
        name: str | None = None,
        meta: Any = None,
        livetime: Any = None,
    ):
        self._init_common(
            geom=geom,
            counts=counts,
            exposure=exposure,
            mask_safe=mask_safe,
            mask_fit=mask_fit,
            psf=psf,
            edisp=edisp,
            gti=gti,
            meta_table=meta_table,
            energy_axis_true=energy_axis_true,
            name=name,
            meta=meta,
            livetime=livetime,
        )
        self.counts_off = self._map_array(counts_off, "counts_off")
        self.acceptance = self._map_array(acceptance, "acceptance", scalar_ok=True)
        self.acceptance_off = self._map_array(acceptance_off, "acceptance_off", scalar_ok=True)

    # -- derived maps ---------------------------------------------------------------------------------
    @property
    def alpha(self) -> np.ndarray:
        """``acceptance / acceptance_off``, non-finite values set to 0 (as Gammapy)."""
        if self.acceptance is None or self.acceptance_off is None:
            raise ValueError(f"MapDatasetOnOff {self.name!r}: alpha needs acceptance and acceptance_off")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num(self.acceptance / self.acceptance_off)

    @property
    def background(self) -> np.ndarray | None:
        """``alpha * counts_off`` (None without OFF counts), as Gammapy."""
        if self.counts_off is None:
            return None
        return self.alpha * self.counts_off

    # -- planning -------------------------------------------------------------------------------------
    def plan(self, models: Any, reduce: bool = True) -> MapDatasetOnOffPlan:
        """Precompute (numpy) what the WStat statistic of ``models`` needs; see
        :class:`MapDatasetOnOffPlan`. ``reduce=False`` keeps every bin explicit."""
        models = _as_models(models)
        what = f"MapDatasetOnOff {self.name!r}"
        shape = self.data_shape
        n_energy, ny, nx = shape
        mask_safe_any = self.mask_safe is None or bool(np.any(self.mask_safe))
        empty = self.counts_off is None and not mask_safe_any
        if not empty:
            if self.counts is None:
                raise ValueError(f"{what}: no counts, no statistic")
            if self.counts_off is None:
                raise ValueError(f"{what}: no OFF counts (counts_off is None)")
        if self.acceptance is None or self.acceptance_off is None:
            if not empty:
                raise ValueError(f"{what}: the statistic needs acceptance and acceptance_off")
            alpha = np.zeros(shape)
        else:
            # Gammapy's alpha is nan_to_num(acceptance / acceptance_off): the largest float where
            # acceptance_off is 0, which makes its WStat overflow to NaN, counted as 0. Setting
            # alpha to 0 there gives the same 0 (and 0 background) without overflows.
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = self.acceptance / self.acceptance_off
            alpha = np.where(np.isfinite(ratio), ratio, 0.0)
        counts = np.zeros(shape) if self.counts is None else np.asarray(self.counts)
        counts_off = np.zeros(shape) if self.counts_off is None else np.asarray(self.counts_off)

        signal = self._plan_signal(models, all_active=not reduce)
        mask, active, active_pixels = signal["mask"], signal["active"], signal["active_pixels"]
        flat = (n_energy, ny * nx)
        counts_flat = counts.reshape(flat)
        counts_off_flat = counts_off.reshape(flat)
        alpha_flat = alpha.reshape(flat)
        mask_flat = mask.reshape(flat)
        outside = mask_flat & ~active.ravel()[None, :]
        outside_stat = np.asarray(
            wstat(counts_flat[outside], counts_off_flat[outside], alpha_flat[outside], 0.0)
        ).sum()
        return MapDatasetOnOffPlan(
            evaluators=signal["evaluators"],
            counts=counts,
            counts_off=counts_off,
            alpha=alpha,
            mask=mask,
            active_pixels=active_pixels,
            counts_active=np.ascontiguousarray(counts_flat[:, active_pixels]),
            counts_off_active=np.ascontiguousarray(counts_off_flat[:, active_pixels]),
            alpha_active=np.ascontiguousarray(alpha_flat[:, active_pixels]),
            mask_active=np.ascontiguousarray(mask_flat[:, active_pixels]),
            outside_stat=np.asarray(outside_stat, dtype=np.float64),
            name=self.name,
            shape=(n_energy, ny, nx),
            sky_model_names=tuple(m.name for m in signal["sky"]),
            skipped_model_names=signal["skipped"],
            reduced=not signal["all_active"],
            empty=empty,
        )

    def npred_off(self, models: Any = None) -> np.ndarray:
        """Predicted OFF counts ``mu_bkg`` (0 where alpha is 0)."""
        return self._eval(models, "npred_off")

    def stat_sum(self, models: Any = None) -> float:
        """The WStat statistic over ``mask_safe & mask_fit`` (0 without OFF counts and safe bins)."""
        return float(self._eval(models, "stat_sum"))

    def fake(self, models: Any, seed: Any = None, npred_background: Any = None) -> MapDatasetOnOff:
        """A copy with Poisson realisations of the ON and OFF counts, as Gammapy's ``fake``:
        ``counts ~ Poisson(npred_signal) + Poisson(npred_background)`` and
        ``counts_off ~ Poisson(npred_background / alpha)``, drawn in that order from
        ``numpy.random.RandomState(seed)``. ``npred_background`` (ON-region background counts per
        bin) defaults to the profile-likelihood background ``alpha * mu_bkg`` for ``models``."""
        models = _as_models(models)
        signal, background = (
            np.asarray(v) for v in _evaluate(self.plan(models), models, "signal_and_background")
        )
        if npred_background is None:
            npred_background = background
        npred_background = np.asarray(npred_background, dtype=np.float64)
        if npred_background.shape != self.data_shape:
            raise ValueError(
                f"MapDatasetOnOff {self.name!r}: npred_background has shape {npred_background.shape}, "
                f"expected {self.data_shape}"
            )
        rng = _random_state(seed)
        # the PSF convolution (FFT) leaves round-off negatives, on which Gammapy's fake fails
        signal = np.clip(np.nan_to_num(signal, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
        on = rng.poisson(signal).astype(np.float64)
        on += rng.poisson(npred_background).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            npred_off = npred_background / self.alpha
        off = rng.poisson(np.nan_to_num(npred_off, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.float64)
        return self.replace(counts=on, counts_off=off)  # type: ignore[return-value]

    # -- conversions ----------------------------------------------------------------------------------
    @classmethod
    def from_map_dataset(
        cls,
        dataset: MapDataset,
        acceptance: Any,
        acceptance_off: Any,
        counts_off: Any = None,
        name: str | None = None,
        models: Any = None,
    ) -> MapDatasetOnOff:
        """An on-off dataset from a Cash map dataset, as Gammapy's ``from_map_dataset``.

        Without ``counts_off``, they are ``npred_background / alpha`` (the background with the
        dataset's FoV background model from ``models``, if any), as Gammapy."""
        if not isinstance(dataset, MapDataset):
            raise TypeError(f"from_map_dataset: expected a MapDataset, got {type(dataset).__name__}")
        if counts_off is None and dataset.background is not None:
            background = dataset.npred_background(_background_only(models, dataset))
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha = np.asarray(acceptance, dtype=float) / np.asarray(acceptance_off, dtype=float)
                counts_off = background / alpha
        return cls(
            geom=dataset.geom,
            counts=dataset.counts,
            counts_off=counts_off,
            acceptance=acceptance,
            acceptance_off=acceptance_off,
            exposure=dataset.exposure,
            energy_axis_true=dataset.energy_axis_true,
            psf=dataset.psf,
            edisp=dataset.edisp,
            mask_safe=dataset.mask_safe,
            mask_fit=dataset.mask_fit,
            gti=dataset.gti,
            meta_table=dataset.meta_table,
            livetime=dataset.livetime,
            name=name,
        )

    def to_map_dataset(self, name: str | None = None) -> MapDataset:
        """The Cash dataset with background ``alpha * counts_off``, as Gammapy's ``to_map_dataset``."""
        return MapDataset(
            geom=self.geom,
            counts=self.counts,
            background=self.background,
            exposure=self.exposure,
            energy_axis_true=self.energy_axis_true,
            psf=self.psf,
            edisp=self.edisp,
            mask_safe=self.mask_safe,
            mask_fit=self.mask_fit,
            gti=self.gti,
            meta_table=self.meta_table,
            livetime=self.livetime,
            name=name,
        )

    # -- summaries ------------------------------------------------------------------------------------
    def info_dict(self, models: Any = None, in_safe_data_range: bool = True) -> dict[str, Any]:
        """Summary numbers as Gammapy's ``MapDatasetOnOff.info_dict`` (exposure in cm2 s, times in
        s): the excess and its significance from the summed WStat counts statistic, ``counts_off``,
        ``acceptance``, ``acceptance_off`` and ``alpha`` summed over ``mask_safe``."""
        models = _as_models(() if models is None else models)
        mask = (
            self.mask_safe
            if (self.mask_safe is not None and in_safe_data_range)
            else np.ones(self.data_shape, bool)
        )
        has_off = self.counts is not None and self.counts_off is not None
        plan = self.plan(models) if has_off else None
        info: dict[str, Any] = {"name": self.name}
        counts = 0.0 if self.counts is None else float(np.sum(self.counts[mask]))
        background = excess = sqrt_ts = alpha_sum = np.nan
        n_off = 0.0
        if self.counts_off is not None and self.counts is not None:
            n_off = float(np.sum(self.counts_off[mask]))
            background = float(np.sum((self.alpha * self.counts_off)[mask]))
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha_sum = background / n_off if n_off != 0 else np.nan
            excess = counts - alpha_sum * n_off if n_off != 0 else np.nan
            if np.isfinite(alpha_sum):
                stat_null = float(wstat(counts, n_off, alpha_sum, 0.0))
                stat_max = float(wstat(counts, n_off, alpha_sum, excess))
                sqrt_ts = float(np.sign(excess) * np.sqrt(max(stat_null - stat_max, 0.0)))
        info["counts"] = int(counts)
        info["excess"] = float(excess)
        info["sqrt_ts"] = sqrt_ts
        info["background"] = float(background)
        npred = npred_background = npred_signal = np.nan
        stat_sum = np.nan
        if plan is not None:
            npred_map, background_map, signal_map, stat = (
                np.asarray(v)
                for v in _evaluate(plan, models, ("npred", "npred_background", "npred_signal", "stat_sum"))
            )
            npred = float(np.sum(npred_map[mask]))
            npred_background = float(np.sum(background_map[mask]))
            if self._sky_models(models):
                npred_signal = float(np.sum(signal_map[mask]))
            stat_sum = float(stat)
        info["npred"] = npred
        info["npred_background"] = npred_background
        info["npred_signal"] = npred_signal
        self._add_exposure_time_bins(info)
        info["stat_sum"] = stat_sum
        info["counts_off"] = int(n_off)
        acceptance = 1.0 if self.acceptance is None else float(np.sum(self.acceptance[mask]))
        info["acceptance"] = acceptance
        acceptance_off = alpha = np.nan
        if self.acceptance_off is not None:
            alpha = alpha_sum
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptance_off = acceptance / alpha
        info["acceptance_off"] = float(acceptance_off)
        info["alpha"] = float(alpha)
        return info

    def summary(self, models: Any = None) -> str:
        """Gammapy's summary of an on-off map dataset (that of :class:`MapDataset` plus the OFF
        counts and acceptances)."""
        mask = self.mask_safe if self.mask_safe is not None else slice(None)

        def total(a: np.ndarray | None) -> float:
            return np.nan if a is None else float(np.sum(a[mask]))

        lines = [
            f"  {'Total counts_off':32}: {total(self.counts_off):.0f} ",
            f"  {'Acceptance':32}: {total(self.acceptance):.0f} ",
            f"  {'Acceptance off':32}: {total(self.acceptance_off):.0f} ",
        ]
        return super().summary(models) + "\n".join(lines) + "\n"

    # -- I/O ------------------------------------------------------------------------------------------
    def to_hdulist(self) -> fits.HDUList:
        """The dataset as Gammapy writes it: :meth:`MapDataset.to_hdulist` without a background,
        followed by ``COUNTS_OFF``, ``ACCEPTANCE`` and ``ACCEPTANCE_OFF`` (each with its bands
        table)."""
        hdulist = super().to_hdulist()
        for hdu, data in (
            ("COUNTS_OFF", self.counts_off),
            ("ACCEPTANCE", self.acceptance),
            ("ACCEPTANCE_OFF", self.acceptance_off),
        ):
            if data is not None:
                hdulist.extend(_map_hdus(hdu, _compact(data), self.geom, ""))
        return hdulist

    # -- stacking -------------------------------------------------------------------------------------
    def to_masked(self, name: str | None = None) -> MapDatasetOnOff:
        """The dataset with its safe mask applied, as Gammapy's ``to_masked`` (stacked onto an
        empty dataset: see :func:`stack_map_datasets_onoff`)."""
        return stack_map_datasets_onoff([self], name=name)

    @classmethod
    def stack_datasets(cls, datasets: Any, name: str | None = None, models: Any = None) -> MapDatasetOnOff:
        """Stack on-off map datasets as Gammapy's ``Datasets.stack_reduce`` (see
        :func:`stack_map_datasets_onoff`); ``models`` is not used."""
        return stack_map_datasets_onoff(datasets, name=name)


def _background_only(models: Any, dataset: MapDataset) -> Any:
    """The FoV background model of ``dataset`` in ``models`` (as a Models, possibly empty)."""
    from ..models import Models

    if models is None:
        return Models([])
    model = dataset._background_model(models)
    return Models([] if model is None else [model])


# -- stacking -------------------------------------------------------------------------------------------
def _mask_or_ones(dataset: Any) -> np.ndarray:
    return np.ones(dataset.data_shape, dtype=bool) if dataset.mask_safe is None else dataset.mask_safe


def _check_map_stackable(datasets: list[Any], cls: type) -> None:
    datasets = list(datasets)
    if not datasets:
        raise ValueError("cannot stack an empty list of datasets")
    for d in datasets:
        if type(d) is not cls:
            raise TypeError(f"stacking {cls.__name__}: got {type(d).__name__} {getattr(d, 'name', '')!r}")


def _placements(reference: Any, others: list[Any]) -> list[Any]:
    """Where each of ``others`` goes in ``reference``'s maps (None: same geometry); a ValueError
    unless each is on the reference's geometry or a cutout of its pixel grid with the same axes."""
    from ..irf.psf import placement

    out = []
    for d in others:
        what = f"cannot stack {d.name!r} on {reference.name!r}"
        if not d.geom.axes[0].is_allclose(reference.geom.axes[0]):
            raise ValueError(f"{what}: their energy axes differ")
        if (
            reference.exposure is not None
            and d.exposure is not None
            and not d.energy_axis_true.is_allclose(reference.energy_axis_true)
        ):
            raise ValueError(f"{what}: their true energy axes differ")
        try:
            out.append(placement(d.geom, reference.geom, what))
        except ValueError:
            raise ValueError(
                f"{what}: their geometries differ (only datasets on the same geometry, or cutouts "
                "of it, can be stacked)"
            ) from None
    return out


def _irf_mask_nearest(mask_image: np.ndarray, geom: WcsGeom, irf_image: WcsGeom) -> np.ndarray:
    """The image mask at the IRF pixel centres, nearest pixel, False outside (Gammapy's
    ``Map.interp_to_geom`` of a mask: ``get_by_coord``)."""
    lon, lat = irf_image.get_coord()
    x, y = geom.world_to_pix(lon, lat, frame=irf_image.frame)
    ny, nx = mask_image.shape
    with np.errstate(invalid="ignore"):
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
    inside = np.isfinite(ix) & np.isfinite(iy) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    out = np.zeros(irf_image.data_shape_image, dtype=bool)
    out[inside] = mask_image[iy[inside].astype(int), ix[inside].astype(int)]
    return out


def _irf_mask_linear(mask: np.ndarray, geom: WcsGeom, irf_image: WcsGeom, axis: Any) -> np.ndarray:
    """Gammapy's linear interpolation (with extrapolation) of a boolean mask ``(n, ny, nx)`` at the
    IRF pixel centres (and, with ``axis``, at its bin centres), cast to bool: True where the
    interpolated value is not 0. Returns ``(n, ny_irf, nx_irf)``."""
    from scipy.interpolate import RegularGridInterpolator

    lon, lat = irf_image.get_coord()
    x, y = geom.world_to_pix(lon, lat, frame=irf_image.frame)
    n, ny, nx = mask.shape
    e = np.zeros(n) if axis is None else axis.coord_to_pix(axis.center)
    shape_out = (n, *irf_image.data_shape_image)
    points = [
        np.broadcast_to(x[None], shape_out),
        np.broadcast_to(y[None], shape_out),
        np.broadcast_to(np.asarray(e, dtype=float)[:, None, None], shape_out),
    ]
    grids = [np.arange(nx, dtype=float), np.arange(ny, dtype=float), np.arange(n, dtype=float)]
    values = np.asarray(mask, dtype=float).T  # (nx, ny, n), as Gammapy's data.T
    keep = [len(g) > 1 for g in grids]  # Gammapy ignores dimensions of length 1
    if not any(keep):
        return np.broadcast_to(mask.reshape(n, 1, 1), shape_out).copy()
    interpolator = RegularGridInterpolator(
        [g for g, k in zip(grids, keep, strict=True) if k],
        np.squeeze(values),
        method="linear",
        bounds_error=False,
        fill_value=None,
    )
    coords = np.stack([p.ravel() for p, k in zip(points, keep, strict=True) if k], axis=-1)
    return (interpolator(coords) != 0).reshape(shape_out)


def _irf_weights(dataset: Any, irf_map: Any, kind: str) -> tuple[Any, Any] | None:
    """The weights of ``dataset``'s IRF map (data, exposure) in Gammapy's ``IRFMap.stack``:
    ``mask_safe_psf`` / ``mask_safe_edisp`` on the IRF grid (None without a safe mask)."""
    if dataset.mask_safe is None:
        return None
    image = dataset.geom.to_image()
    irf_image = irf_map.geom.to_image()
    if kind == "psf":
        w = _irf_mask_nearest(np.any(dataset.mask_safe, axis=0), image, irf_image)[None, None]
        return w, w
    if isinstance(irf_map, irf.EDispKernelMap):
        axis = dataset.geom.axes[0]
        if irf_map.energy_axis.nbin != axis.nbin:
            raise ValueError(
                f"MapDataset {dataset.name!r}: the edisp kernel map's energy axis has "
                f"{irf_map.energy_axis.nbin} bins, the counts {axis.nbin}"
            )
        w = _irf_mask_linear(dataset.mask_safe, image, irf_image, axis)[None]  # (1, E, y, x)
        return w, np.any(w, axis=1, keepdims=True)
    image_mask = np.any(dataset.mask_safe, axis=0)[None]
    w = _irf_mask_linear(image_mask, image, irf_image, None)[None]  # (1, 1, y, x)
    return w, w


def _stack_irf_maps(reference: Any, others: list[Any], kind: str, masked_reference: bool) -> Any:
    """Gammapy's ``IRFMap.stack`` of the datasets' ``kind`` maps into the reference's: the
    exposure-weighted mean ``sum_i D_i X_i W_i / sum_i X_i W'_i`` (0 where the weights vanish),
    ``W`` the safe masks on the IRF grid; the stacked exposure map is ``sum_i X_i W'_i``."""
    from ..irf.psf import stack_irf_maps

    first = getattr(reference, kind)
    items = [d for d in others if getattr(d, kind) is not None]
    for d in items:
        irf_map = getattr(d, kind)
        if irf_map.exposure is None:
            raise ValueError(
                f"stacking the {kind} of {d.name!r}: it has no exposure map (Gammapy's IRFMap.stack needs one)"
            )
    try:
        return stack_irf_maps(
            first,
            [getattr(d, kind) for d in items],
            weights=[_irf_weights(d, getattr(d, kind), kind) for d in items],
            reference_weights=_irf_weights(reference, first, kind) if masked_reference else None,
        )
    except ValueError as err:
        raise ValueError(f"stacking the {kind} maps on {reference.name!r}: {err}") from None


def _stack_meta_tables(tables: list[Any]) -> Any:
    """Gammapy's ``hstack_columns``: one row whose cells concatenate the first rows' cells."""
    tables = [t for t in tables if t is not None]
    if not tables:
        return None
    stacked = Table(tables[0], copy=True)
    for other in tables[1:]:
        out = Table()
        for column in stacked.colnames:
            data = np.hstack([np.ravel(stacked[column].data[0]), np.ravel(other[column].data[0])])
            out[column] = data[np.newaxis, :]
        stacked = out
    return stacked


def _release(*arrays: Any) -> None:
    """Make new arrays read-only, so that the dataset built from them shares rather than copies
    them (:func:`_frozen`)."""
    for a in arrays:
        if isinstance(a, np.ndarray) and a.flags.owndata:
            a.setflags(write=False)


def _or_zeros(dataset: Any, values: Any) -> Any:
    return np.zeros(dataset.data_shape) if values is None else values


def _clean(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def _stacked_map(
    reference: Any,
    others: list[Any],
    where: list[Any],
    field: str,
    masked_reference: bool,
    image_mask: bool = False,
    values: Any = None,
) -> np.ndarray | None:
    """``reference.field`` (masked by its safe mask when ``masked_reference``) plus the others'
    masked values placed into the reference's grid; None when the reference has no such map."""
    from ..irf.psf import add_into

    get = values or (lambda d: getattr(d, field))
    ref_values = get(reference)
    if ref_values is None:
        return None

    def mask(d: Any) -> np.ndarray:
        m = _mask_or_ones(d)
        return np.any(m, axis=0)[None] if image_mask else m

    if masked_reference:
        total = _clean(np.asarray(ref_values, dtype=np.float64)) * mask(reference)
    else:
        total = np.array(ref_values, dtype=np.float64, copy=True)
    for d, w in zip(others, where, strict=True):
        v = get(d)
        if v is not None:
            add_into(total, _clean(np.asarray(v, dtype=np.float64)) * mask(d), w)
    return total


def _stack_maps_common(
    reference: Any, others: list[Any], name: str | None, masked_reference: bool
) -> dict[str, Any]:
    """Counts, exposure, IRF maps, masks, GTI and meta table of ``others`` stacked into
    ``reference`` as Gammapy's ``MapDataset.stack`` (onto ``reference.to_masked()`` when
    ``masked_reference``); float64 here, float32 in Gammapy. The placements of ``others`` in
    ``reference`` (:func:`_placements`) come under the private key ``"_where"``, for the callers
    to pop and reuse."""
    from ..irf.psf import add_into

    where = _placements(reference, others)
    counts = _stacked_map(
        reference, others, where, "counts", masked_reference, values=lambda d: _or_zeros(d, d.counts)
    )
    exposure = _stacked_map(reference, others, where, "exposure", masked_reference, image_mask=True)
    psf = _stack_irf_maps(reference, others, "psf", masked_reference) if reference.psf is not None else None
    edisp = (
        _stack_irf_maps(reference, others, "edisp", masked_reference) if reference.edisp is not None else None
    )
    mask_safe = _mask_or_ones(reference).copy()
    for d, w in zip(others, where, strict=True):
        add_into(mask_safe, _mask_or_ones(d), w)
    mask_fit = None if reference.mask_fit is None else reference.mask_fit.copy()
    for d, w in zip(others, where, strict=True):
        if d.mask_fit is not None:
            if mask_fit is None:
                mask_fit = np.zeros(reference.data_shape, dtype=bool)
            add_into(mask_fit, d.mask_fit, w)
    gtis = [d.gti for d in (reference, *others) if d.gti is not None]
    gti = gtis[0].stack_union(gtis[1:]) if gtis else None
    # livetimes add up over the datasets with any safe bin (Gammapy's exposure.meta["livetime"])
    # (the reference's own is kept unless it is stacked as a masked copy, like the others)
    livetimes = [
        d.livetime
        for d in (reference, *others)
        if d.livetime is not None and ((d is reference and not masked_reference) or np.any(_mask_or_ones(d)))
    ]
    _release(counts, exposure, mask_safe, mask_fit)
    return {
        "geom": reference.geom,
        "energy_axis_true": reference.energy_axis_true,
        "counts": counts,
        "exposure": exposure,
        "psf": psf,
        "edisp": edisp,
        "mask_safe": mask_safe,
        "mask_fit": mask_fit,
        "gti": gti,
        "meta_table": _stack_meta_tables([d.meta_table for d in (reference, *others)]),
        "name": name,
        "livetime": float(sum(livetimes)) if livetimes else None,
        "_where": where,
    }


def _npred_background(dataset: MapDataset, models: Any) -> np.ndarray | None:
    """``dataset``'s background with its FoV background model in ``models`` folded in (for an
    ON/OFF dataset: its WStat background without signal)."""
    if isinstance(dataset, MapDatasetOnOff):
        from ..models import Models

        return None if dataset.counts_off is None else dataset.npred_background(Models([]))
    if dataset.background is None:
        return None
    background_models = _background_only(models, dataset)
    if len(background_models) == 0:
        return dataset.background
    return dataset.npred_background(background_models)


def _stack_cash(
    reference: MapDataset, others: list[MapDataset], name: str | None, models: Any, masked_reference: bool
) -> MapDataset:
    common = _stack_maps_common(reference, others, name, masked_reference)
    where = common.pop("_where")
    background = _stacked_map(
        reference,
        others,
        where,
        "background",
        masked_reference,
        values=lambda d: _or_zeros(d, _npred_background(d, models)),
    )
    _release(background)
    return MapDataset(background=background, meta=None if masked_reference else reference.meta, **common)


def stack_map_datasets(datasets: Any, name: str | None = None, models: Any = None) -> MapDataset:
    """Stack Cash map datasets as Gammapy's ``Datasets.stack_reduce``: onto
    ``datasets[0].to_masked()``, the others on the same geometry or cutouts of it.

    With ``m_i`` the safe masks (all True when None): ``counts = sum_i m_i counts_i``,
    ``background = sum_i m_i npred_background_i`` (each dataset's FoV background model in
    ``models`` folded in, as Gammapy), ``exposure = sum_i any_E(m_i) exposure_i``; PSF and energy
    dispersion maps are exposure-weighted means on their own grid, weighted by the safe masks
    there (Gammapy's ``mask_safe_psf`` and ``mask_safe_edisp``); ``mask_safe`` and ``mask_fit``
    are ORed, the GTIs merged and the meta tables concatenated. Gammapy stores the stacked maps in
    float32, so its numbers differ from these at the 1e-7 level.
    """
    datasets = list(datasets)
    _check_map_stackable(datasets, MapDataset)
    return _stack_cash(datasets[0], datasets[1:], name, models, masked_reference=True)


def stack_map_datasets_onoff(datasets: Any, name: str | None = None) -> MapDatasetOnOff:
    """Stack on-off map datasets as Gammapy's ``Datasets.stack_reduce`` (``MapDatasetOnOff.stack``),
    onto ``datasets[0].to_masked()``, the others on the same geometry or cutouts of it.

    As :func:`stack_map_datasets` for counts, exposure, IRFs and masks; with ``m_i`` the safe
    masks, ``n_off = sum_i m_i n_off_i``, ``acceptance = sum_i m_i acceptance_i`` and
    ``acceptance_off = acceptance * n_off / sum_i m_i alpha_i n_off_i``, so that the stacked alpha
    is the OFF-weighted mean of the alphas; where the stacked ``n_off`` is 0,
    ``acceptance_off = acceptance / mean_alpha`` with ``mean_alpha = sum(m alpha n_off) / sum(m n_off)``
    over all bins.
    """
    datasets = list(datasets)
    _check_map_stackable(datasets, MapDatasetOnOff)
    for d in datasets:
        incomplete = d.counts_off is None or d.acceptance is None or d.acceptance_off is None
        if incomplete and (d.mask_safe is None or np.any(d.mask_safe)):
            raise ValueError(
                f"cannot stack incomplete MapDatasetOnOff {d.name!r} (no OFF counts or acceptances)"
            )
    reference, others = datasets[0], datasets[1:]
    common = _stack_maps_common(reference, others, name, masked_reference=True)
    where = common.pop("_where")

    def total(get: Any) -> np.ndarray:
        out = _stacked_map(reference, others, where, "", True, values=get)
        assert out is not None  # the values are never None
        return out

    total_acceptance = total(lambda d: _or_zeros(d, d.acceptance))
    total_off = total(lambda d: _or_zeros(d, d.counts_off))
    total_alpha = total(
        lambda d: _or_zeros(d, None if d.counts_off is None else _clean(d.alpha * d.counts_off))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        acceptance_off = total_acceptance * total_off / total_alpha
        average_alpha = total_alpha.sum() / total_off.sum()
        is_zero = total_off == 0
        acceptance_off[is_zero] = total_acceptance[is_zero] / average_alpha
    return MapDatasetOnOff(
        counts_off=total_off, acceptance=total_acceptance, acceptance_off=acceptance_off, **common
    )
