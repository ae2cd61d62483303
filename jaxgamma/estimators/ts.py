"""Test-statistic maps: Gammapy 2.1's ``TSMapEstimator``.

At every pixel of a map dataset a source of the kernel model's shape (a point source with a power
law of index 2 by default, seen through the dataset's PSF and energy dispersion) is added to the
predicted counts with a free amplitude ``norm``; the 1D Cash fit of that amplitude over the kernel's
footprint gives the TS (the statistic without minus with the source), the norm, its error, and
optionally asymmetric errors and upper limits (Stewart 2009, appendix A, as Gammapy).

How it follows Gammapy:

- The kernel is the predicted counts of the kernel model placed at the map centre (on a square odd
  geometry of ``kernel_width`` when given, cut out as the model evaluator cuts a point source:
  PSF width + 0.2 deg), with a constant exposure equal to the dataset's at the nearest pixel with
  exposure, normalised to 1 in each reconstructed-energy bin.
- The per-pixel fit uses the masked counts and predicted counts (``npred`` of the models: the
  background) and the reconstructed-energy exposure of the kernel spectrum; with
  ``sum_over_energy_groups`` (the default) each energy group is summed first and the kernel is the
  mask-weighted mean of its energy bins. Bins with no counts, no background and no model are left
  out; outside the map everything is zero (Gammapy pads the maps with zeros).
- The norm is the root of the statistic's derivative in Stewart's bracket, never below the value
  where a predicted count reaches zero; ``norm_err`` is ``n_sigma`` over the square root of half
  the second derivative; errn / errp / UL are where the statistic rises by ``n_sigma**2`` /
  ``n_sigma_ul**2`` within 100 errors of the best fit (NaN when it does not).

What differs: Gammapy stops its root finders at ``rtol`` (1 % by default); jaxgamma solves every
root to ~1e-10 relative with a safeguarded Newton iteration (so the norms agree with Gammapy's
within Gammapy's tolerance, and the TS is never below it), and ``niter`` counts those iterations.
All pixels are solved together: one jit-compiled program gathers the kernel footprints of a chunk of
pixels and runs the vectorised root finder on them (no Python loop over pixels).
"""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, NamedTuple

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
from astropy.coordinates import SkyCoord

from ..datasets.map import MapDataset, MapDatasetOnOff
from ..geom import WcsGeom
from ..geom.axes import snapped_edge_indices
from .core import FluxMaps, parse_energy_edges, parse_positive_angle, parse_selection_optional, reference_sed
from .excess import _energy_groups, reco_exposure

__all__ = ["TSMapEstimator"]

log = logging.getLogger(__name__)

_SELECTION_OPTIONAL = ("errn-errp", "ul", "stat_scan", "sensitivity")
TRUNCATION_VALUE = 1e-25  # Gammapy's Cash truncation of the predicted counts
_CUTOUT_MARGIN = 0.1  # deg, Gammapy's MapEvaluator CUTOUT_MARGIN
_CHUNK_ELEMENTS = 2**18  # positions x footprint bins gathered at once (small chunks stay in cache)


def _round_up_to_odd(x: float) -> int:
    return int(np.ceil(x) // 2 * 2 + 1)


# -- the kernel -------------------------------------------------------------------------------------
def _nearest_valid_exposure_pixel(exposure: np.ndarray, geom: WcsGeom, position: SkyCoord) -> tuple[int, int]:
    """Gammapy's ``get_nearest_valid_exposure_position``: the pixel nearest to ``position`` (first in
    numpy order on ties) where the exposure is positive in some energy bin."""
    valid = np.any(exposure > 0, axis=0)
    if not np.any(valid):
        raise ValueError("TSMapEstimator: no valid exposure; impossible to compute the kernel of the TS map")
    lon, lat = geom.get_coord()
    coords = SkyCoord(lon, lat, unit="deg", frame=geom.frame)
    separation = np.asarray(coords.separation(position).deg, dtype=np.float64)
    separation[~valid] = np.inf
    iy, ix = np.unravel_index(int(np.argmin(separation)), separation.shape)
    return int(iy), int(ix)


def _kernel_model_at(kernel_model: Any, position: SkyCoord) -> Any:
    spatial = kernel_model.spatial_model
    sky = position.transform_to(spatial.frame)
    spatial = spatial.with_values(lon_0=float(sky.data.lon.deg), lat_0=float(sky.data.lat.deg))
    return kernel_model.replace(spatial_model=spatial, name="ts-kernel", datasets_names=None)


def estimate_kernel(dataset: MapDataset, kernel_model: Any, kernel_width: float | None = None) -> tuple[np.ndarray, WcsGeom]:
    """The TS-map kernel of ``dataset``, ``(n_energy_reco, ky, kx)`` normalised to 1 per energy bin,
    and its image geometry (Gammapy's ``TSMapEstimator.estimate_kernel``).

    ``kernel_width`` (deg): the kernel lives on a square odd geometry of that width centred on the
    map centre; without it, on the dataset's own geometry. The predicted counts are then cut out as
    Gammapy's model evaluator does (PSF width + 2 x (evaluation radius + 0.1 deg), odd, trimmed).
    """
    from ..models import Models

    image = dataset.geom.to_image()
    if kernel_width is not None:
        binsz = float(max(image.pixel_scales))
        npix = _round_up_to_odd(kernel_width / binsz)
        image = WcsGeom.create(
            skydir=image.center_skydir, binsz=binsz, npix=npix, proj=image.projection, frame=image.frame
        )
    center = image.center_skydir
    exposure = np.asarray(dataset.exposure, dtype=np.float64)
    iy, ix = _nearest_valid_exposure_pixel(exposure, dataset.geom.to_image(), center)
    exposure_kernel = np.broadcast_to(exposure[:, iy, ix][:, None, None], (exposure.shape[0], *image.data_shape_image))
    kernel_dataset = MapDataset(
        geom=image.to_cube([dataset.geom.axis("energy")]),
        exposure=np.array(exposure_kernel, dtype=np.float32).astype(np.float64),  # Gammapy's float32 map
        energy_axis_true=dataset.energy_axis_true,
        psf=dataset.psf,
        edisp=dataset.edisp,
        name="ts-kernel-dataset",
    )
    model = _kernel_model_at(kernel_model, center)
    npred = np.asarray(kernel_dataset.npred_signal(Models([model])), dtype=np.float64)
    spatial = model.spatial_model
    radius = spatial.evaluation_radius
    if radius is not None:
        # the evaluator's cutout (local evaluation of the model), trimmed to the kernel geometry; as
        # Gammapy, only where the model "contributes" through the dataset's mask (else: the whole geometry)
        psf_width = kernel_dataset._psf_width(kernel_dataset._psf_kernel(spatial.position, {})) if dataset.psf is not None else 0.0
        radius_deg = float(u.Quantity(radius, "deg").to_value("deg"))
        try:
            _, inside, _ = dataset.geom.to_image().cutout_info(spatial.position, 2 * radius_deg + _CUTOUT_MARGIN + psf_width)
            contributes = bool(np.any(np.asarray(dataset.mask_image, dtype=bool)[inside]))
        except ValueError:  # no overlap
            contributes = False
        if contributes:
            width = psf_width + 2 * (radius_deg + _CUTOUT_MARGIN)
            cutout, parent, _ = image.cutout_info(spatial.position, width, mode="trim", odd_npix=True)
            npred = npred[(Ellipsis, *parent)]
            image = cutout
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = npred / npred.sum(axis=(1, 2))[:, None, None]
    kernel[~np.isfinite(kernel)] = 0.0
    return kernel, image


# -- the per-pixel fit (traced) ---------------------------------------------------------------------
class _Bins(NamedTuple):
    """Counts, background and model of the footprint bins of each position, ``(P, N)``; ``valid``
    drops Gammapy's empty bins (no counts, no background, no model)."""

    n: Any
    b: Any
    m: Any
    valid: Any


def _cash_sum(n: Any, mu: Any, valid: Any) -> Any:
    """Gammapy's ``cash_sum_compiled``: 2 sum(mu - n log mu), mu truncated at 1e-25."""
    small = mu <= TRUNCATION_VALUE
    mu_t = jnp.where(small, TRUNCATION_VALUE, mu)
    term = mu_t - jnp.where(n > 0, n * jnp.log(mu_t), 0.0)
    return 2.0 * jnp.sum(jnp.where(valid, term, 0.0), axis=-1)


def _stat(bins: _Bins, norm: Any) -> Any:
    return _cash_sum(bins.n, bins.b + norm[:, None] * bins.m, bins.valid)


def _stat_and_derivative(bins: _Bins, norm: Any) -> tuple[Any, Any]:
    """The Cash sum and its derivative in norm (zero where the prediction is truncated)."""
    mu = bins.b + norm[:, None] * bins.m
    small = mu <= TRUNCATION_VALUE
    safe = jnp.where(small, 1.0, mu)
    d = jnp.where(small, 0.0, bins.m * (1.0 - bins.n / safe))
    return _stat(bins, norm), 2.0 * jnp.sum(jnp.where(bins.valid, d, 0.0), axis=-1)


def _root_derivative(bins: _Bins, x: Any) -> tuple[Any, Any]:
    """Gammapy's ``f_cash_root`` (half the statistic's derivative, x2) and its derivative."""
    use = bins.valid & (bins.m > 0)
    counted = use & (bins.n > 0)
    mu = bins.b + x[:, None] * bins.m
    safe = jnp.where(counted, mu, 1.0)
    f = jnp.where(counted, bins.m * (1.0 - bins.n / safe), jnp.where(use, bins.m, 0.0))
    df = jnp.where(counted, bins.n * bins.m**2 / safe**2, 0.0)
    return 2.0 * jnp.sum(f, axis=-1), 2.0 * jnp.sum(df, axis=-1)


def _second_derivative(bins: _Bins, norm: Any) -> Any:
    """Gammapy's ``stat_2nd_derivative``: sum m^2 n / (b + norm m)^2 where the denominator is not 0."""
    bottom = (bins.b + norm[:, None] * bins.m) ** 2
    use = bins.valid & (bottom != 0)
    return jnp.sum(jnp.where(use, bins.m**2 * bins.n / jnp.where(use, bottom, 1.0), 0.0), axis=-1)


def _norm_bounds(bins: _Bins) -> tuple[Any, Any, Any]:
    """Gammapy's ``norm_bounds_compiled``: Stewart's bracket of the root and the lowest norm where no
    prediction is negative."""
    n, b, m, valid = bins
    mpos = valid & (m > 0)
    cpos = valid & (n > 0)
    s_counts = jnp.sum(jnp.where(cpos, n, 0.0), axis=-1)
    s_model = jnp.sum(jnp.where(mpos, m, 0.0), axis=-1)
    sn = jnp.where(mpos, b / jnp.where(mpos, m, 1.0), jnp.inf)
    sn_counted = jnp.where(cpos, sn, jnp.inf)
    idx = jnp.argmin(sn_counted, axis=-1)
    sn_min_raw = jnp.take_along_axis(sn_counted, idx[:, None], axis=-1)[:, 0]
    found = sn_min_raw < 1e14
    sn_min = jnp.where(found, sn_min_raw, 1e14)
    c_min = jnp.where(found, jnp.take_along_axis(n, idx[:, None], axis=-1)[:, 0], 1.0)
    sn_total = jnp.minimum(jnp.min(sn, axis=-1), 1e14)
    return c_min / s_model - sn_min, s_counts / s_model - sn_min, -sn_total


def _find_root(
    fun: Any, a: Any, b: Any, fa: Any, fb: Any, active: Any, max_iter: int, start: Any = None
) -> tuple[Any, Any, Any]:
    """Vectorised bracketed root finder for ``fun`` in ``[a, b]`` where ``fa``, ``fb`` have opposite
    signs (or one is 0), from ``start`` (default the middle; outside the bracket: the middle).

    Each step is Newton's where it stays strictly inside the bracket, else the Illinois false
    position (regula falsi halving the value kept twice in a row), else a bisection; the bracket
    shrinks with every evaluation. Returns the roots, the iterations and whether each converged
    (to 1e-10 relative, or 1e-12 of the bracket); NaN where not ``active`` or not bracketed."""
    bracketed = active & jnp.isfinite(fa) & jnp.isfinite(fb) & (fa * fb <= 0)
    at_a = bracketed & (fa == 0)
    at_b = bracketed & (fb == 0) & ~at_a
    neg = fa < 0  # orient: fun(lo) < 0 < fun(hi)
    lo, hi = jnp.where(neg, a, b), jnp.where(neg, b, a)
    flo, fhi = jnp.where(neg, fa, fb), jnp.where(neg, fb, fa)
    x = 0.5 * (lo + hi)
    if start is not None:
        x = jnp.where((start - a) * (start - b) < 0, start, x)
    tol = 1e-12 * jnp.abs(b - a)
    g, dg = fun(x)
    lo, flo = jnp.where(g < 0, x, lo), jnp.where(g < 0, g, flo)
    hi, fhi = jnp.where(g < 0, hi, x), jnp.where(g < 0, fhi, g)
    done = ~bracketed | at_a | at_b | (g == 0)
    side = jnp.zeros(x.shape, dtype=jnp.int32)  # which end moved last: -1 lo, +1 hi

    def inside(y: Any, lo: Any, hi: Any) -> Any:
        return jnp.isfinite(y) & ((y - lo) * (y - hi) < 0)

    def cond(state):
        return (state[0] < max_iter) & ~jnp.all(state[1])

    def body(state):
        it, done, x, g, dg, lo, hi, flo, fhi, side, niter = state
        newton = x - g / jnp.where(dg == 0, jnp.nan, dg)
        falsi = lo - flo * (hi - lo) / (fhi - flo)
        x_new = jnp.where(
            inside(newton, lo, hi), newton, jnp.where(inside(falsi, lo, hi), falsi, 0.5 * (lo + hi))
        )
        g_new, dg_new = fun(x_new)
        moves_lo = g_new < 0
        # Illinois: the end kept twice in a row has its value halved
        fhi_kept = jnp.where(moves_lo & (side == -1), 0.5 * fhi, fhi)
        flo_kept = jnp.where(~moves_lo & (side == 1), 0.5 * flo, flo)
        lo_new = jnp.where(moves_lo, x_new, lo)
        hi_new = jnp.where(moves_lo, hi, x_new)
        flo_new = jnp.where(moves_lo, g_new, flo_kept)
        fhi_new = jnp.where(moves_lo, fhi_kept, g_new)
        step = jnp.abs(x_new - x)
        width = jnp.abs(hi_new - lo_new)
        scale = tol + 1e-10 * jnp.abs(x_new)
        converged = (g_new == 0) | (jnp.minimum(step, width) <= scale)
        keep = done

        def pick(old: Any, new: Any) -> Any:
            return jnp.where(keep, old, new)

        return (
            it + 1,
            done | converged,
            pick(x, x_new),
            pick(g, g_new),
            pick(dg, dg_new),
            pick(lo, lo_new),
            pick(hi, hi_new),
            pick(flo, flo_new),
            pick(fhi, fhi_new),
            pick(side, jnp.where(moves_lo, -1, 1)),
            niter + jnp.where(keep, 0, 1),
        )

    niter0 = jnp.zeros(x.shape, dtype=jnp.int32)  # steps after the first evaluation (at most max_iter)
    state = (0, done, x, g, dg, lo, hi, flo, fhi, side, niter0)
    _, done, x, *_, niter = jax.lax.while_loop(cond, body, state)
    root = jnp.where(at_a, a, jnp.where(at_b, b, x))
    root = jnp.where(bracketed, root, jnp.nan)
    return root, niter, bracketed & done


class _Options(NamedTuple):
    n_sigma: float
    n_sigma_ul: float
    threshold: float | None
    errn_errp: bool
    ul: bool
    n_sigma_sensitivity: float | None = None
    max_niter: int = 100


def _fit_positions(bins: _Bins, norm_guess: Any, options: _Options) -> dict[str, Any]:
    """Gammapy's ``BrentqFluxEstimator.run`` for a batch of positions."""
    n_sigma = options.n_sigma
    counts_sum = jnp.sum(jnp.where(bins.valid, bins.n, 0.0), axis=-1)
    model_sum = jnp.sum(jnp.where(bins.valid, bins.m, 0.0), axis=-1)
    b_min, b_max, norm_min_total = _norm_bounds(bins)
    trivial = (counts_sum <= 0) | (model_sum <= 0)
    fit = ~trivial

    def root_fun(x):
        return _root_derivative(bins, x)

    f_min, _ = root_fun(jnp.where(fit, b_min, 0.0))
    f_max, _ = root_fun(jnp.where(fit, b_max, 0.0))
    root, niter, converged = _find_root(root_fun, b_min, b_max, f_min, f_max, fit, options.max_niter)
    bracket_failed = fit & jnp.isnan(root)
    norm = jnp.where(fit & ~bracket_failed, jnp.maximum(root, norm_min_total), norm_min_total)
    niter = jnp.where(trivial, 0, jnp.where(bracket_failed, options.max_niter, niter))
    success = trivial | (fit & ~bracket_failed & converged)

    stat_null = _stat(bins, jnp.zeros_like(norm))
    if options.threshold is not None:
        guess_stat = _stat(bins, norm_guess)
        use_guess = ~(stat_null - guess_stat > options.threshold)
        norm = jnp.where(use_guess, norm_guess, norm)
        niter = jnp.where(use_guess, 0, niter)
        success = jnp.where(use_guess, True, success)
    f2 = _second_derivative(bins, norm)
    norm_err = jnp.sqrt(1.0 / f2) * n_sigma
    stat = _stat(bins, norm)
    out = {
        "norm": norm,
        "norm_err": norm_err,
        "niter": niter,
        "ts": stat_null - stat,
        "stat": stat,
        "stat_null": stat_null,
        "success": success,
    }

    def confidence(sigma: float, positive: bool) -> Any:
        # Gammapy's _confidence: brentq of stat_best + sigma^2 - stat(x) over 100 errors
        def fun(x):
            s, ds = _stat_and_derivative(bins, x)
            return stat + sigma**2 - s, -ds

        far = norm + (1e2 if positive else -1e2) * norm_err
        ok = jnp.isfinite(far) & jnp.isfinite(norm)
        far = jnp.where(ok, far, 0.0)
        near = jnp.where(ok, norm, 0.0)
        f_far, _ = fun(far)
        f_near = jnp.full_like(f_far, sigma**2)  # at the best fit: stat + sigma^2 - stat
        a, bb = (near, far) if positive else (far, near)
        fa, fb = (f_near, f_far) if positive else (f_far, f_near)
        # from the parabolic estimate: a few Newton steps instead of bisections of 100 errors
        start = norm + (sigma if positive else -sigma) * norm_err / n_sigma
        root, _, _ = _find_root(fun, a, bb, fa, fb, ok, options.max_niter, start)
        return (root - norm) * (1.0 if positive else -1.0)

    if options.errn_errp:
        out["norm_errn"] = confidence(n_sigma, positive=False)
        out["norm_errp"] = confidence(n_sigma, positive=True)
    if options.ul:
        out["norm_ul"] = norm + confidence(options.n_sigma_ul, positive=True)
    if options.n_sigma_sensitivity is not None:
        out["norm_sensitivity"] = _sensitivity(bins, norm, options.n_sigma_sensitivity, options.max_niter)
    npred = jnp.sum(jnp.where(bins.valid, bins.b + norm[:, None] * bins.m, 0.0), axis=-1)
    out["npred"] = npred
    out["npred_excess"] = npred - jnp.sum(jnp.where(bins.valid, bins.b, 0.0), axis=-1)
    return out


def _sensitivity(bins: _Bins, norm: Any, n_sigma: float, max_iter: int) -> Any:
    """Gammapy's ``estimate_sensitivity``: the norm whose Asimov dataset (counts = prediction)
    has a significance of ``n_sigma`` (Wald: sqrt of the Asimov TS, which is what Gammapy's
    ``ts_to_sigma(ts, ts_asimov=ts)`` returns), searched between norm / 1000 and norm x 1000."""

    def sigma_minus(x: Any) -> Any:
        mu = bins.b + x[:, None] * bins.m
        ts = _cash_sum(mu, bins.b, bins.valid) - _cash_sum(mu, mu, bins.valid)
        return jnp.sqrt(jnp.maximum(ts, 0.0)) - n_sigma

    def fun(x: Any) -> tuple[Any, Any]:
        return jax.jvp(sigma_minus, (x,), (jnp.ones_like(x),))

    a, b = norm / 1000.0, norm * 1000.0
    ok = jnp.isfinite(a) & jnp.isfinite(b)
    a, b = jnp.where(ok, a, 0.0), jnp.where(ok, b, 0.0)
    root, _, _ = _find_root(fun, a, b, sigma_minus(a), sigma_minus(b), ok, max_iter)
    return root


class _Inputs(NamedTuple):
    """One dataset's maps for one energy group (arrays, traced).

    ``counts``, ``background``, ``exposure``: ``(L, ny, nx)``. Summed over the group (L = 1): the
    kernel of a pixel's footprint bin at ``q`` is the mask-weighted mean of the group's kernels
    with the weights of ``q``; the distinct weight vectors are few (masks), so ``kernel`` holds
    one mean kernel per distinct vector ``(U, ky, kx)`` and ``labels`` ``(ny, nx)`` says which.
    Not summed: ``kernel`` ``(L, ky, kx)``, one per plane, and ``labels`` None."""

    counts: Any
    background: Any
    exposure: Any
    kernel: Any
    labels: Any


def _weighted_kernels(kernel: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gammapy's sum-over-energy kernel, ``sum_e kernel[e] w[e, q] / sum_e w[e, q]`` (0 where no
    weight), as a table of the distinct weight vectors and the label image of ``q``."""
    w = mask.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = w / w.sum(axis=0, keepdims=True)
    weights[~np.isfinite(weights)] = 0.0
    table, labels = np.unique(weights.reshape(weights.shape[0], -1).T, axis=0, return_inverse=True)
    kernels = np.einsum("ue,eyx->uyx", table, kernel)
    return kernels, labels.reshape(weights.shape[1:]).astype(np.int32)


def _gather(image: Any, yy: Any, xx: Any) -> Any:
    """``image[..., yy, xx]`` with zeros outside the image (Gammapy pads with zeros)."""
    ny, nx = image.shape[-2:]
    inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    values = image[..., jnp.clip(yy, 0, ny - 1), jnp.clip(xx, 0, nx - 1)]
    return jnp.where(inside, values, 0.0)


def _footprint(inputs: _Inputs, py: Any, px: Any) -> _Bins:
    """The footprint bins of one dataset at positions ``(py, px)``: ``(P, L * ky * kx)``."""
    ky, kx = inputs.kernel.shape[-2:]
    dy, dx = np.meshgrid(np.arange(ky) - ky // 2, np.arange(kx) - kx // 2, indexing="ij")
    yy = py[:, None] + dy.ravel()[None, :]
    xx = px[:, None] + dx.ravel()[None, :]
    counts = _gather(inputs.counts, yy, xx)  # (L, P, D)
    background = _gather(inputs.background, yy, xx)
    exposure = _gather(inputs.exposure, yy, xx)
    table = inputs.kernel.reshape(inputs.kernel.shape[0], ky * kx)
    if inputs.labels is not None:
        ny, nx = inputs.labels.shape
        labels = inputs.labels[jnp.clip(yy, 0, ny - 1), jnp.clip(xx, 0, nx - 1)]  # outside: no exposure
        kernel = table[labels, jnp.arange(ky * kx)[None, :]][None]  # (1, P, D)
    else:
        kernel = table[:, None, :]  # (L, 1, D)
    model = kernel * exposure
    valid = ~((counts == 0) & (background == 0) & (model == 0))

    def flat(a: Any) -> Any:
        return jnp.moveaxis(a, 0, 1).reshape(a.shape[1], -1)

    return _Bins(flat(counts), flat(background), flat(model), flat(valid))


@functools.partial(jax.jit, static_argnames=("options", "chunk"))
def _ts_program(inputs: tuple[_Inputs, ...], positions: Any, norm_guess: Any, options: _Options, chunk: int) -> dict[str, Any]:
    """All positions, ``chunk`` at a time (``positions``: ``(n_chunks * chunk, 2)``)."""

    def one_chunk(args):
        pos, guess = args
        parts = [_footprint(i, pos[:, 0], pos[:, 1]) for i in inputs]
        bins = _Bins(*(jnp.concatenate([getattr(p, f) for p in parts], axis=-1) for f in _Bins._fields))
        return _fit_positions(bins, guess, options)

    pos = positions.reshape(-1, chunk, 2)
    guess = norm_guess.reshape(-1, chunk)
    out = jax.lax.map(one_chunk, (pos, guess))
    return {k: v.reshape(-1) for k, v in out.items()}


# -- likelihood profiles ("stat_scan") --------------------------------------------------------------
_N_SPARSE = 109  # Gammapy's number of profile norms per pixel
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def sparse_norms(norm: float, norm_err: float, scan_values: np.ndarray) -> np.ndarray:
    """The 109 norms at which a pixel's profile is computed (Gammapy's ``_get_norm_scan_values``):
    steps of 0.1 and 1 error around the best fit, the norm's and unit multiples up to 10, and the
    ends of the scan values; error 0.1 and norm 1 where they are not finite or zero.

    Where these coincide (fewer than 109 distinct values) Gammapy adds ``20 rand - 10`` from
    NumPy's global random state, so its profiles change from run to run; here the additions are
    the fixed sequence ``20 frac(k phi) - 10`` (phi the golden ratio), so the maps are
    reproducible. Gammapy fails where more than 109 are distinct; here the farthest from the best
    fit (other than the scan's ends) are dropped."""
    if not np.isfinite(norm_err) or norm_err == 0:
        norm_err = 0.1
    if not np.isfinite(norm) or norm == 0:
        norm = 1.0
    ends = np.linspace(scan_values[0], scan_values[-1], 2)
    values = np.unique(
        np.concatenate(
            (
                norm + np.linspace(-2.5, 2.5, 51) * norm_err,
                norm + np.linspace(-10, 10, 21) * norm_err,
                np.abs(norm) * np.linspace(-10, 10, 21),
                np.linspace(-10, 10, 21),
                ends,
            )
        )
    )
    k = 1
    while values.size < _N_SPARSE:
        extra = 20.0 * np.mod(np.arange(k, k + _N_SPARSE - values.size) * _GOLDEN, 1.0) - 10.0
        k += extra.size
        values = np.unique(np.concatenate((values, extra)))
    if values.size > _N_SPARSE:
        inner = values[~np.isin(values, ends)]
        keep = np.sort(np.argsort(np.abs(inner - norm), kind="stable")[: _N_SPARSE - (values.size - inner.size)])
        values = np.unique(np.concatenate((inner[keep], values[np.isin(values, ends)])))
    return values


def _interp_rows(grid: Any, xp: Any, fp: Any) -> Any:
    """``np.interp(grid, xp[p], fp[p])`` for every row ``p`` of sorted ``xp`` ``(P, S)`` spanning the
    sorted ``grid`` ``(K,)``: each row's segment index of the grid points comes from a scatter of
    the S nodes into the grid and a cumulative sum (2-3x faster than a vmapped jnp.interp, whose
    binary search runs per grid point)."""
    rows = jnp.arange(xp.shape[0])[:, None]
    first = jax.vmap(lambda x: jnp.searchsorted(grid, x, side="left"))(xp)  # the first grid point >= each node
    marks = jnp.zeros((xp.shape[0], grid.size + 1), dtype=jnp.int32).at[rows, first].add(1)
    segment = jnp.clip(jnp.cumsum(marks, axis=1)[:, :-1] - 1, 0, xp.shape[1] - 2)
    x0, x1 = jnp.take_along_axis(xp, segment, axis=1), jnp.take_along_axis(xp, segment + 1, axis=1)
    y0, y1 = jnp.take_along_axis(fp, segment, axis=1), jnp.take_along_axis(fp, segment + 1, axis=1)
    return y0 + (grid[None, :] - x0) / (x1 - x0) * (y1 - y0)


_interp_rows_jit = jax.jit(_interp_rows)


def interp_rows(grid: np.ndarray, xp: np.ndarray, fp: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``np.interp(grid, xp[p], fp[p])`` for every row of ``xp``, ``fp`` ``(P, S)`` (sorted rows
    spanning ``grid``), compiled, ``chunk`` rows at a time (one program for every call)."""
    n = xp.shape[0]
    pad = -(-n // chunk) * chunk - n
    xp = np.concatenate([xp, np.repeat(xp[:1], pad, axis=0)])
    fp = np.concatenate([fp, np.repeat(fp[:1], pad, axis=0)])
    parts = [np.asarray(_interp_rows_jit(grid, xp[i : i + chunk], fp[i : i + chunk])) for i in range(0, n + pad, chunk)]
    return np.concatenate(parts)[:n]


def _profile(bins: _Bins, sparse: Any, grid: Any, n_sigma: float, n_sigma_ul: float) -> dict[str, Any]:
    """Gammapy's ``BrentqFluxEstimator.estimate_scan`` for a batch of positions: the statistic
    (minus the null's) at the ``sparse`` norms ``(P, S)``, its linear interpolation onto those and
    the ``grid`` norms ``(K,)``, and the norm, TS, errors and UL read off the grid (the grid point
    of lowest statistic; those where the rise is nearest ``n_sigma**2`` below / above it, and
    ``n_sigma_ul**2`` above it; NaN where no grid point lies above)."""
    stat_null = _stat(bins, jnp.zeros(sparse.shape[0]))
    stats = jax.lax.map(lambda column: _stat(bins, column), sparse.T).T
    local = stats - stat_null[:, None]
    # Gammapy evaluates on the sorted union of both sets of norms and takes the first of equal
    # values; each set is sorted, so the union's pick is the better of the two sets' picks, the
    # smaller norm on a tie
    on_grid = _interp_rows(grid, sparse, local)
    values = (sparse, jnp.broadcast_to(grid, on_grid.shape))
    stat = (local, on_grid)

    def first_min(keys: tuple[Any, Any]) -> tuple[Any, Any]:
        """The smallest key over both sets and the norm it is at (NaN where every key is inf)."""
        picks = []
        for key, value in zip(keys, values, strict=True):
            i = jnp.argmin(key, axis=1)[:, None]
            picks.append((jnp.take_along_axis(key, i, axis=1)[:, 0], jnp.take_along_axis(value, i, axis=1)[:, 0]))
        (k0, v0), (k1, v1) = picks
        take_grid = (k1 < k0) | ((k1 == k0) & (v1 < v0))
        key, value = jnp.where(take_grid, k1, k0), jnp.where(take_grid, v1, v0)
        return key, jnp.where(jnp.isfinite(key), value, jnp.nan)

    stat_min, norm = first_min(stat)

    def nearest(level: float, above: bool) -> Any:
        keys = []
        for st, value in zip(stat, values, strict=True):
            side = value > norm[:, None] if above else value <= norm[:, None]
            keys.append(jnp.where(side, jnp.abs(st - stat_min[:, None] - level), jnp.inf))
        return first_min((keys[0], keys[1]))[1]

    errn = norm - nearest(n_sigma**2, above=False)
    errp = nearest(n_sigma**2, above=True) - norm
    return {
        "ts": -stat_min,
        "norm": norm,
        "norm_err": 0.5 * (errn + errp),
        "norm_errn": errn,
        "norm_errp": errp,
        "norm_ul": nearest(n_sigma_ul**2, above=True),
        "stat_scan": local,
    }


@functools.partial(jax.jit, static_argnames=("n_sigma", "n_sigma_ul", "chunk"))
def _scan_program(
    inputs: tuple[_Inputs, ...], positions: Any, sparse: Any, grid: Any, n_sigma: float, n_sigma_ul: float, chunk: int
) -> dict[str, Any]:
    """The profiles of all positions, ``chunk`` at a time, with the statistic and predicted counts
    at the profile's norm (Gammapy recomputes them there)."""

    def one_chunk(args):
        pos, sp = args
        parts = [_footprint(i, pos[:, 0], pos[:, 1]) for i in inputs]
        bins = _Bins(*(jnp.concatenate([getattr(p, f) for p in parts], axis=-1) for f in _Bins._fields))
        out = _profile(bins, sp, grid, n_sigma, n_sigma_ul)
        out["stat"] = _stat(bins, out["norm"])
        npred = jnp.sum(jnp.where(bins.valid, bins.b + out["norm"][:, None] * bins.m, 0.0), axis=-1)
        out["npred"] = npred
        out["npred_excess"] = npred - jnp.sum(jnp.where(bins.valid, bins.b, 0.0), axis=-1)
        return out

    pos = positions.reshape(-1, chunk, 2)
    sp = sparse.reshape(-1, chunk, sparse.shape[-1])
    out = jax.lax.map(one_chunk, (pos, sp))
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in out.items()}


def _scan_values_of(norm: Any) -> np.ndarray:
    """The grid norms of the profiles: Gammapy's default (:func:`~jaxgamma.estimators.core.default_scan_values`)
    or ``scan_values`` of a dict (Gammapy's norm parameter as a dict) or of a Gammapy ``Parameter``."""
    from .core import default_scan_values

    if norm is None:
        return default_scan_values()
    if isinstance(norm, dict):
        allowed = {"name", "value", "unit", "interp", "frozen", "scan_min", "scan_max", "scan_n_values", "scan_n_sigma", "scan_values"}
        unknown = sorted(set(norm) - allowed)
        if unknown:
            raise TypeError(f"TSMapEstimator: invalid key(s) {unknown} for norm; Gammapy's are {sorted(allowed)}")
        if norm.get("name", "norm") != "norm":
            raise ValueError("TSMapEstimator: norm.name is not 'norm'")
        values = norm.get("scan_values")
        if values is None:
            return default_scan_values()
    elif hasattr(norm, "scan_values"):
        if getattr(norm, "name", "norm") != "norm":
            raise ValueError("TSMapEstimator: norm.name is not 'norm'")
        values = norm.scan_values
    else:
        raise TypeError(f"TSMapEstimator: norm must be None, a dict or a Parameter with scan_values, got {type(norm).__name__}")
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise ValueError("TSMapEstimator: norm scan_values must be at least 2 finite, increasing values")
    return values


# -- the estimator ----------------------------------------------------------------------------------
class TSMapEstimator:
    """Test-statistic, flux, error and upper-limit maps of a source of the kernel model's shape at
    every pixel (Gammapy's ``TSMapEstimator``).

    The TS accounts for every model given to :meth:`run` (their predicted counts are the
    background): to get the TS of one source, give all the other models.

    Parameters
    ----------
    kernel_model : SkyModel, optional
        Source kernel model; default a point source with a power law of index 2.
    kernel_width : str, float (deg) or Angle, optional
        Width of the kernel geometry (the kernel is truncated there). Default: the kernel is the
        model evaluator's cutout (PSF width + 0.2 deg for a point source), within the map.
    downsampling_factor : int, optional
        As Gammapy: the datasets are padded (the result stays on their grid) and downsampled by
        this factor before the estimation, the maps upsampled back (order-1 spline, order 0 for
        ``niter`` and ``success``) and cropped. Gammapy pads both axes by the latitude padding,
        so a non-square map may not divide by the factor: the error says so, as Gammapy's.
    n_sigma, n_sigma_ul : float
        Confidence levels of the errors and of the upper limits.
    n_sigma_sensitivity : float
        Significance of the "sensitivity" map: the norm whose Asimov dataset reaches it.
    threshold : float, optional
        Where the TS of the initial flux estimate (Gammapy's correlated-excess guess) is not above
        it, the fit is skipped and the estimate kept (``niter`` 0).
    rtol : float
        Gammapy's root-finding tolerance; jaxgamma solves to ~1e-10 relative (kept for the summary).
    selection_optional : list of str or "all", optional
        Any of "errn-errp", "ul", "stat_scan", "sensitivity". "stat_scan" computes each pixel's
        likelihood profile (Gammapy's): the statistic at 109 norms around the best fit
        (:func:`sparse_norms`), kept as the ``stat_scan`` and ``dnde_scan_values`` maps, and
        interpolated linearly onto those and the ``norm`` scan values; ``ts``, ``norm``,
        ``norm_err`` (the mean of errn and errp), ``norm_errn``, ``norm_errp`` and ``norm_ul`` are
        then read off that grid, and ``stat`` and the predicted counts recomputed at that norm.
    energy_edges : Quantity or array (TeV), optional
        Energy groups (snapped to the dataset's edges); default one group over the whole range.
    sum_over_energy_groups : bool
        Sum each group's energy bins before the fit (default) or fit the norm on all of them.
    norm : dict or Gammapy Parameter, optional
        The grid of the "stat_scan" profiles: its ``scan_values``; default Gammapy's, 14401 norms
        from -100 to 100 at 1 % relative spacing (:func:`~jaxgamma.estimators.core.default_scan_values`).
    max_niter : int
        Iteration limit of each root search (a fit whose bracket fails reports it as ``niter``).
    """

    tag = "TSMapEstimator"

    def __init__(
        self,
        kernel_model: Any = None,
        kernel_width: Any = None,
        downsampling_factor: int | None = None,
        n_sigma: float = 1,
        n_sigma_ul: float = 2,
        n_sigma_sensitivity: float = 5,
        threshold: float | None = None,
        rtol: float = 0.01,
        selection_optional: Any = None,
        energy_edges: Any = None,
        sum_over_energy_groups: bool = True,
        n_jobs: Any = None,
        parallel_backend: Any = None,
        norm: Any = None,
        max_niter: int = 100,
    ):
        from ..models import PointSpatialModel, PowerLawSpectralModel, SkyModel

        if kernel_model is None:
            kernel_model = SkyModel(
                spectral_model=PowerLawSpectralModel(),  # type: ignore[call-arg]
                spatial_model=PointSpatialModel(),  # type: ignore[call-arg]
                name="ts-kernel",
            )
        if not isinstance(kernel_model, SkyModel) or kernel_model.spatial_model is None:
            raise TypeError(
                "TSMapEstimator: kernel_model must be a SkyModel with a spatial model, got "
                f"{type(kernel_model).__name__}"
            )
        self.kernel_model = kernel_model
        self.kernel_width = kernel_width
        from ..geom.axes import positive_factor

        self.downsampling_factor = (
            None if downsampling_factor is None else positive_factor(downsampling_factor, "TSMapEstimator: downsampling_factor")
        )
        for label, value in (("n_sigma", n_sigma), ("n_sigma_ul", n_sigma_ul), ("n_sigma_sensitivity", n_sigma_sensitivity)):
            if not float(value) > 0:
                raise ValueError(f"TSMapEstimator: {label} must be > 0, got {value}")
        self.n_sigma = float(n_sigma)
        self.n_sigma_ul = float(n_sigma_ul)
        self.n_sigma_sensitivity = float(n_sigma_sensitivity)
        self.threshold = None if threshold is None else float(threshold)
        if not float(rtol) > 0:
            raise ValueError(f"TSMapEstimator: rtol must be > 0, got {rtol}")
        self.rtol = float(rtol)
        self.selection_optional = selection_optional
        self.energy_edges = energy_edges
        self.sum_over_energy_groups = bool(sum_over_energy_groups)
        if n_jobs not in (None, 1) or parallel_backend is not None:
            raise TypeError(
                "TSMapEstimator: n_jobs and parallel_backend are Gammapy's multiprocessing options; jaxgamma "
                "solves all pixels in one compiled program (leave them unset)"
            )
        self.scan_values = _scan_values_of(norm)
        if int(max_niter) < 1:
            raise ValueError(f"TSMapEstimator: max_niter must be >= 1, got {max_niter}")
        self.max_niter = int(max_niter)

    # -- options ------------------------------------------------------------------------------------
    @property
    def kernel_width(self) -> float | None:
        """In deg, or None."""
        return self._kernel_width

    @kernel_width.setter
    def kernel_width(self, value: Any) -> None:
        if value is None:
            self._kernel_width = None
            return
        self._kernel_width = parse_positive_angle(value, self.tag, "kernel_width")

    @property
    def selection_optional(self) -> list[str]:
        return list(self._selection_optional)

    @selection_optional.setter
    def selection_optional(self, value: Any) -> None:
        self._selection_optional = parse_selection_optional(value, _SELECTION_OPTIONAL, self.tag)

    @property
    def energy_edges(self) -> np.ndarray | None:
        return self._energy_edges

    @energy_edges.setter
    def energy_edges(self, value: Any) -> None:
        self._energy_edges = parse_energy_edges(value, self.tag)

    @property
    def selection_all(self) -> list[str]:
        """The quantities computed, in Gammapy's order."""
        names = ["ts", "norm", "niter", "norm_err", "npred", "npred_excess", "stat", "stat_null", "success"]
        if "stat_scan" in self.selection_optional:
            names += ["dnde_scan_values", "stat_scan", "norm_errp", "norm_errn", "norm_ul"]
        else:
            if "errn-errp" in self.selection_optional:
                names += ["norm_errp", "norm_errn"]
            if "ul" in self.selection_optional:
                names += ["norm_ul"]
        if "sensitivity" in self.selection_optional:
            names += ["norm_sensitivity"]
        return names

    def __str__(self) -> str:
        lines = [self.tag, "-" * len(self.tag), ""]
        options = {
            "kernel_model": self.kernel_model.name,
            "kernel_width": None if self.kernel_width is None else f"{self.kernel_width} deg",
            "downsampling_factor": self.downsampling_factor,
            "n_sigma": self.n_sigma,
            "n_sigma_ul": self.n_sigma_ul,
            "n_sigma_sensitivity": self.n_sigma_sensitivity,
            "threshold": self.threshold,
            "rtol": self.rtol,
            "selection_optional": self.selection_optional,
            "energy_edges": None if self.energy_edges is None else f"{self.energy_edges.tolist()} TeV",
            "sum_over_energy_groups": self.sum_over_energy_groups,
            "max_niter": self.max_niter,
        }
        lines += [f"\t{key:30}: {value}" for key, value in options.items()]
        return "\n".join(lines).expandtabs(tabsize=2) + "\n"

    # -- pieces -------------------------------------------------------------------------------------
    def estimate_kernel(self, dataset: MapDataset, kernel_width: float | None = None) -> np.ndarray:
        """The kernel of ``dataset``, ``(n_energy, ky, kx)``, normalised per energy bin (Gammapy's
        ``estimate_kernel``). ``kernel_width`` (deg) overrides the estimator's."""
        width = self.kernel_width if kernel_width is None else kernel_width
        return estimate_kernel(dataset, self.kernel_model, width)[0]

    def _kernel_width_default(self, datasets: list[MapDataset]) -> float:
        """Gammapy's ``run`` without ``kernel_width``: the largest width of the kernels computed on
        each dataset's own geometry."""
        widths = []
        for d in datasets:
            _, geom = estimate_kernel(d, self.kernel_model, None)
            widths.append(max(geom.width))
        return float(max(widths))

    def _pad_width(self, datasets: list[MapDataset]) -> tuple[int, int]:
        """Gammapy's ``estimate_pad_width`` with downsampling, the largest over the datasets: the
        kernel's half size added to the map, rounded up to the next multiple of 8 beyond (Gammapy's
        ``shape_2N``), half the difference on each side; Gammapy takes the latitude value for both
        axes (its ``symmetric_crop_pad_width(...)[0]``), and so does this."""
        widths = []
        for d in datasets:
            kernel = self.estimate_kernel(d)
            ny, nx = d.geom.data_shape_image
            ky, kx = (np.array(kernel.shape[-2:]) // 2).tolist()
            shape = np.array([ny + 2 * ky, nx + 2 * kx])
            new_shape = shape + (8 - np.mod(shape, 8))
            ydiff = int(new_shape[0] - ny)
            if ydiff % 2 or (int(new_shape[1]) - nx) % 2:
                raise ValueError(
                    "TSMapEstimator.run: for symmetric crop / pad width, difference to new shape must be even in all "
                    f"axes (map {ny} x {nx}, padded to {new_shape.tolist()}; Gammapy's condition)"
                )
            widths.append((ydiff // 2, ydiff // 2))
        return tuple(np.max(np.array(widths), axis=0).tolist())  # type: ignore[return-value]

    @staticmethod
    def _mask_default(dataset: MapDataset, npred: np.ndarray) -> np.ndarray:
        if dataset.mask_fit is not None:
            mask = np.asarray(dataset.mask, dtype=bool)
        elif dataset.mask_safe is not None:
            mask = np.asarray(dataset.mask_safe, dtype=bool)
        else:
            mask = np.ones(dataset.geom.data_shape, dtype=bool)
        return mask & np.isfinite(npred)

    def _norm_guess(
        self, dataset: MapDataset, npred: np.ndarray, exposure_norm: np.ndarray, kernel: np.ndarray, group: slice
    ) -> np.ndarray:
        """Gammapy's ``estimate_flux_default`` divided by the reference flux: the excess over the
        normalised reco exposure, correlated with the kernel over its sum of squares, masked and
        summed over the group's bins."""
        from scipy.signal import fftconvolve

        counts = np.asarray(dataset.counts, dtype=np.float64)[group]
        with np.errstate(invalid="ignore", divide="ignore"):
            flux = np.nan_to_num((counts - npred[group]) / exposure_norm[group])
        k = kernel[group] / np.sum(kernel[group] ** 2)
        flux = np.stack([fftconvolve(f, kk, mode="same") for f, kk in zip(flux, k, strict=True)])
        if dataset.mask is not None:
            flux = flux * np.asarray(dataset.mask, dtype=np.float64)[group]
        flux = flux.sum(axis=0)
        edges = dataset.geom.axis("energy").edges
        flux_ref = float(np.asarray(self.kernel_model.spectral_model.integral_array(edges[group][0], edges[group.stop])))
        return flux / flux_ref

    # -- run ----------------------------------------------------------------------------------------
    def run(self, datasets: Any, models: Any = None) -> FluxMaps:
        """TS, norm, error (and optionally errn/errp, UL) maps.

        Parameters
        ----------
        datasets : MapDataset, list or Datasets
            Cash map datasets on one spatial geometry.
        models : Models, optional
            The models whose predicted counts are the background of every dataset (FoV background
            models included); default the datasets' background maps alone.
        """
        from .points import _as_datasets

        datasets = list(_as_datasets(datasets))
        if not datasets:
            raise ValueError("TSMapEstimator.run: no dataset given")
        image_ref = datasets[0].geom.to_image()
        for d in datasets:
            if isinstance(d, MapDatasetOnOff) or not isinstance(d, MapDataset):
                raise TypeError(
                    f"TSMapEstimator.run: dataset {d.name!r} is a {type(d).__name__}; TS maps need Cash map "
                    "datasets (MapDataset)"
                )
            if d.counts is None or d.exposure is None:
                missing = "counts" if d.counts is None else "exposure"
                raise ValueError(f"TSMapEstimator.run: dataset {d.name!r} has no {missing}")
            if d.geom.to_image() != image_ref:
                raise TypeError(
                    f"TSMapEstimator.run: the datasets' spatial geometries must match ({d.name!r} differs from "
                    f"{datasets[0].name!r})"
                )
        width = self.kernel_width if self.kernel_width is not None else self._kernel_width_default(datasets)
        factor = self.downsampling_factor or 1
        pad_width = (0, 0)
        if factor > 1:
            image_out = image_ref
            pad_width = self._pad_width(datasets)
            try:
                datasets = [d.pad(pad_width, name=d.name).downsample(factor, name=d.name) for d in datasets]
            except ValueError as err:
                raise ValueError(f"TSMapEstimator.run: downsampling_factor={factor}: {err}") from None
            image_ref = datasets[0].geom.to_image()
        axis_in = datasets[0].geom.axis("energy")
        if self.energy_edges is None:
            edges = np.array([axis_in.edges[0], axis_in.edges[-1]])
        else:
            edges = self.energy_edges
        axis, _ = _energy_groups(axis_in, edges, owner="TSMapEstimator")
        # as Gammapy's slice_by_energy: each requested (min, max) pair snaps to each dataset's own axis
        # (the first dataset's groups name the result's bins; a dataset without bins there is left out)
        groups: list[list[slice | None]] = []
        for pair in itertools.pairwise(edges):
            slices: list[slice | None] = []
            for d in datasets:
                idx = snapped_edge_indices(d.geom.axis("energy"), np.asarray(pair))
                slices.append(slice(int(idx[0]), int(idx[-1])) if idx[-1] > idx[0] else None)
            if slices[0] is not None:
                groups.append(slices)
        if len(groups) != axis.nbin:
            raise ValueError(
                f"TSMapEstimator: energy_edges {np.asarray(edges).tolist()} TeV give {len(groups)} groups on the "
                f"first dataset's axis but snap to {axis.nbin} bins (edges {axis.edges.tolist()} TeV)"
            )

        prepared = []
        for d in datasets:
            npred = np.asarray(d.npred(models), dtype=np.float64)
            mask = self._mask_default(d, npred)
            exposure_npred = reco_exposure(d, self.kernel_model.spectral_model, "TSMapEstimator")
            e = d.geom.axis("energy").edges
            ref_flux = np.asarray(self.kernel_model.spectral_model.integral_array(e[:-1], e[1:]), dtype=np.float64)
            kernel = self.estimate_kernel(d, width)
            prepared.append((d, npred, mask, exposure_npred, ref_flux, kernel))

        ny, nx = image_ref.data_shape_image
        results: dict[str, list[np.ndarray]] = {name: [] for name in self.selection_all}
        options = _Options(
            self.n_sigma,
            self.n_sigma_ul,
            self.threshold,
            "errn-errp" in self.selection_optional,
            "ul" in self.selection_optional,
            self.n_sigma_sensitivity if "sensitivity" in self.selection_optional else None,
            self.max_niter,
        )
        for group_slices in groups:
            inputs = []
            mask_2d = np.zeros((ny, nx), dtype=bool)
            guesses = []
            for group, (d, npred, mask, exposure_npred, ref_flux, kernel) in zip(group_slices, prepared, strict=True):
                if group is None:
                    continue
                m = mask[group]
                counts = np.asarray(d.counts, dtype=np.float64)[group] * m
                background = np.where(m, npred[group], 0.0)
                exposure = exposure_npred[group] * m
                kernel_g = kernel[group]
                labels = None
                if self.sum_over_energy_groups:
                    kernel_g, labels = _weighted_kernels(kernel_g, m)
                    counts, background, exposure = (a.sum(axis=0, keepdims=True) for a in (counts, background, exposure))
                mask_2d |= m.any(axis=0) & (background.sum(axis=0) > 0)
                inputs.append(_Inputs(counts, background, exposure, kernel_g, labels))
                if self.threshold is not None:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        exposure_norm = exposure_npred / ref_flux[:, None, None]
                    guesses.append(self._norm_guess(d, npred, exposure_norm, kernel, group))
            if not np.any(mask_2d):
                raise ValueError(
                    "TSMapEstimator.run: no valid positions: check that the datasets' background is defined "
                    "and not only zeros, and that the masks are not all False"
                )
            iy, ix = np.nonzero(mask_2d)
            if guesses:
                stack = np.stack([g[iy, ix] for g in guesses])
                finite = np.isfinite(stack)
                with np.errstate(invalid="ignore"):
                    guess = np.where(
                        finite.any(axis=0), np.nansum(np.where(finite, stack, 0.0), axis=0) / finite.sum(axis=0), 1.0
                    )
            else:
                guess = np.zeros(iy.size)
            values = self._solve(inputs, iy, ix, guess, options)
            if "stat_scan" in self.selection_optional:
                values.update(self._scan(inputs, iy, ix, values))
            for name in self.selection_all:
                if name in ("stat_scan", "dnde_scan_values"):
                    image = np.full((values[name].shape[1], ny, nx), np.nan)
                    image[:, iy, ix] = values[name].T
                else:
                    image = np.full((ny, nx), np.nan)
                    image[iy, ix] = values[name]
                results[name].append(image)

        maps = {name: np.stack(images) for name, images in results.items()}
        if factor > 1:
            from ..geom.resample import upsample_data

            px, py = pad_width
            crop = (Ellipsis, slice(py, py + image_out.npix[1]), slice(px, px + image_out.npix[0]))
            maps = {
                name: upsample_data(m, factor, order=0 if name in ("niter", "success") else 1)[crop]
                for name, m in maps.items()
            }
            image_ref = image_out
        geom = image_ref.to_cube([axis])
        # as Gammapy: its NaN (not estimated) casts to True
        maps["success"] = np.where(np.isnan(maps["success"]), 1.0, maps["success"])
        meta = {"n_sigma": self.n_sigma, "n_sigma_ul": self.n_sigma_ul, "sqrt_ts_threshold_ul": 2, "sed_type_init": "likelihood"}
        if "dnde_scan_values" in maps:  # norms -> dnde of the kernel spectrum at each bin's centre
            maps["dnde_scan_values"] = maps["dnde_scan_values"] * reference_sed(geom, self.kernel_model)[:, None]
        return FluxMaps(maps, geom, self.kernel_model.spectral_model, meta=meta)

    @staticmethod
    def _solve(inputs: list[_Inputs], iy: np.ndarray, ix: np.ndarray, guess: np.ndarray, options: _Options) -> dict[str, np.ndarray]:
        footprint = _footprint_size(inputs)
        chunk = int(max(1, min(iy.size, _CHUNK_ELEMENTS // max(footprint, 1))))
        positions, (guess_padded,) = _chunked(iy, ix, chunk, guess)
        out = _ts_program(_on_device(inputs), positions, guess_padded, options, chunk)
        return {k: np.asarray(v)[: iy.size].astype(np.float64) for k, v in out.items()}

    def _scan(self, inputs: list[_Inputs], iy: np.ndarray, ix: np.ndarray, fit: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The "stat_scan" profiles of the fitted positions and what Gammapy reads off them."""
        sparse = np.stack([sparse_norms(a, b, self.scan_values) for a, b in zip(fit["norm"], fit["norm_err"], strict=True)])
        width = max(_footprint_size(inputs), sparse.shape[1] + self.scan_values.size)
        chunk = int(max(1, min(iy.size, 4 * _CHUNK_ELEMENTS // width)))
        positions, (sparse_padded,) = _chunked(iy, ix, chunk, sparse)
        out = _scan_program(
            _on_device(inputs), positions, sparse_padded, self.scan_values, self.n_sigma, self.n_sigma_ul, chunk
        )
        result = {k: np.asarray(v)[: iy.size].astype(np.float64) for k, v in out.items()}
        result["dnde_scan_values"] = sparse  # norms here; run scales them to dnde
        return result


def _footprint_size(inputs: list[_Inputs]) -> int:
    """Footprint bins per position over the datasets (energy planes x kernel pixels)."""
    return sum(i.counts.shape[0] * i.kernel.shape[-2] * i.kernel.shape[-1] for i in inputs)


def _chunked(iy: np.ndarray, ix: np.ndarray, chunk: int, *per_position: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Positions ``(n_chunks * chunk, 2)`` and per-position arrays padded to whole chunks with
    repeats of the first position (the padding's results are dropped)."""
    n = iy.size
    pad = -(-n // chunk) * chunk - n
    positions = np.stack([iy, ix], axis=1).astype(np.int32)
    padded = [np.concatenate([a, np.repeat(a[:1], pad, axis=0)]) for a in (positions, *per_position)]
    return padded[0], padded[1:]


def _on_device(inputs: list[_Inputs]) -> tuple[_Inputs, ...]:
    """The datasets' arrays as float64 for the compiled programs (labels stay int32)."""
    return tuple(i._replace(**{f: np.asarray(getattr(i, f), dtype=np.float64) for f in _Inputs._fields[:4]}) for i in inputs)
