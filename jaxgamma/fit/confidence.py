"""Profile likelihood: confidence intervals, statistic profiles and surfaces, contours.

Every re-optimisation is the compiled minimiser of :mod:`jaxgamma.fit.optimize` with some
parameters held fixed (a mask, so one program serves every parameter), ``vmap``-ped over the points
evaluated together, warm-started at the best fit. Without re-optimisation the statistic is
evaluated, also ``vmap``-ped, with the other parameters at their best-fit values. Batches are padded
to 2, 16 or a power of two, so a handful of programs cover any number of points.

Intervals and contours solve ``profile(t) - stat_best = sigma^2`` along rays from the best fit with
a few vectorised root-finding rounds in Python, each one compiled call (never a loop over optimizer
iterations): the unknown is the distance ``t`` along the ray, the function
``sqrt(profile(t) - stat_best) - sigma``, which is linear in ``t`` for a Gaussian likelihood, so
regula falsi (Illinois variant), started from the covariance's estimate, converges in a few rounds.

Contours
    Gammapy's ``stat_contour`` calls Minuit's ``mncontour`` with ``cl = chi2(2).cdf(sigma^2)``, which
    Minuit turns back into ``Delta stat = chi2(2).ppf(cl) = sigma^2``: the contour where the statistic,
    minimised over the other free parameters, is ``sigma^2`` above its minimum. :func:`stat_contour`
    computes the same curve, on ``n_points`` rays spaced evenly in angle in the plane whitened by the
    2x2 covariance (so the points are evenly spread for an elliptical contour). For a 68 % *joint*
    region of two parameters pass ``sigma = sqrt(chi2(2).ppf(0.68)) = 1.515``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..parameters import ParameterVector, iter_parameters
from .optimize import (
    CONVERGED,
    TRACES,
    FitContext,
    clean_models,
    edm_target,
    minimize_core,
    saturation_limits,
)
from .result import FitResult

__all__ = ["confidence", "stat_contour", "stat_profile", "stat_surface"]

# Inner fits solve to this tolerance (EDM < 0.002 * tol, then one undamped Newton step): the profiled
# statistic is then exact to far better than the 1e-4 the root finding asks for.
_INNER_TOL = 1e-3


# -- compiled programs -----------------------------------------------------------------------------
@eqx.filter_jit
def _profile_program(
    fun: Any,
    transform: Any,
    u0: jax.Array,
    fixed_mask: jax.Array,
    fixed_values: jax.Array,  # (B, n)
    target: jax.Array,
    max_iter: jax.Array,
    u_lo: jax.Array,
    u_hi: jax.Array,
) -> Any:
    TRACES["profile"] += 1

    def one(values: jax.Array) -> Any:
        out = minimize_core(
            fun, transform, u0, fixed_mask, values, target, max_iter, u_lo, u_hi, covariance=False
        )
        return out.total_stat, out.status, out.n_fev

    return jax.vmap(one)(fixed_values)


@eqx.filter_jit
def _stat_program(fun: Any, xs: jax.Array) -> jax.Array:
    TRACES["stat"] += 1
    return jax.vmap(fun)(xs)


def _padded(n: int) -> int:
    """Batch size for ``n`` points: 2, 16, then powers of two (few programs, at most 8x padding for
    the small batches that are cheap anyway)."""
    if n <= 2:
        return 2
    if n <= 16:
        return 16
    return 1 << math.ceil(math.log2(n))


class _Profiler:
    """Evaluates the (profiled) statistic at points where some parameters take given values."""

    def __init__(self, datasets: Any, result: FitResult, max_iter: int = 100):
        if not isinstance(result, FitResult):
            raise TypeError(f"expected a FitResult, got {type(result).__name__}")
        ctx = result._context
        if ctx is None or (datasets is not None and datasets is not ctx.datasets):
            ctx = _rebuild_context(datasets, result)
        self.result = result
        self.ctx: FitContext = ctx
        self.names = tuple(ctx.names)
        self.x_best = np.asarray(ctx.transform.to_value(jnp.asarray(ctx.u)))
        self.max_iter = int(max_iter)
        self.u_lo, self.u_hi = saturation_limits(ctx.transform)
        # (two rows: the batch size of the interval searches, so no extra program)
        self.stat_best = float(
            _stat_program(ctx.fun, jnp.asarray(np.repeat(self.x_best[None, :], 2, axis=0)))[0]
        )
        self.nfev = 0

    def index(self, name: str) -> int:
        return self.result._index(name)

    def full_name(self, name: str) -> str:
        return self.names[self.index(name)]

    def stat(
        self, fixed: Sequence[int], values: np.ndarray, reoptimize: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The statistic with parameters ``fixed`` at ``values`` (shape ``(m, len(fixed))``), the
        others re-optimised or at the best fit; returns ``(stat, ok)``."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, len(fixed))
        m = values.shape[0]
        n = len(self.names)
        xs = np.repeat(self.x_best[None, :], _padded(m), axis=0)
        xs[:m, list(fixed)] = values
        xs[m:, list(fixed)] = values[-1] if m else 0.0
        mask = np.zeros(n, bool)
        mask[list(fixed)] = True
        if not reoptimize or mask.all():
            stat = np.asarray(_stat_program(self.ctx.fun, jnp.asarray(xs)))[:m]
            self.nfev += m
            return stat, np.isfinite(stat)
        stat, status, n_fev = _profile_program(
            self.ctx.fun,
            self.ctx.transform,
            jnp.asarray(np.clip(self.ctx.u, self.u_lo, self.u_hi)),
            jnp.asarray(mask),
            jnp.asarray(xs),
            jnp.asarray(edm_target(_INNER_TOL)),
            jnp.asarray(self.max_iter, jnp.int32),
            jnp.asarray(self.u_lo),
            jnp.asarray(self.u_hi),
        )
        stat, status, n_fev = np.asarray(stat)[:m], np.asarray(status)[:m], np.asarray(n_fev)[:m]
        self.nfev += int(n_fev.sum())
        return stat, (status == CONVERGED) & np.isfinite(stat)

    def bounds(self, i: int) -> tuple[float, float]:
        lo = self.result.mins[i] if self.result.mins else -math.inf
        hi = self.result.maxs[i] if self.result.maxs else math.inf
        return lo, hi

    def step(self, i: int) -> float:
        """Gammapy's scan step: the error, else ``|value|``, else 1."""
        errors = self.result.errors
        err = float(errors[i]) if i < len(errors) else math.nan
        if np.isfinite(err) and err > 0:
            return err
        value = abs(float(self.x_best[i]))
        return value if value > 0 else 1.0


def _rebuild_context(datasets: Any, result: FitResult) -> FitContext:
    from ..likelihood import make_stat_function

    if result.models is None:
        raise ValueError("this result has no models to rebuild the statistic from; pass the result of fit()")
    if datasets is None:
        raise ValueError("datasets are needed to evaluate the statistic")
    clean = clean_models(result.models)
    vector = ParameterVector.from_tree(clean)
    fun, x, names = make_stat_function(datasets, clean)
    if tuple(names) != tuple(result.parameter_names):
        raise ValueError(
            f"the result's free parameters {result.parameter_names} differ from the models' {names}"
        )
    transform = vector.transform(x)
    u = np.asarray(transform.to_unconstrained(np.asarray(x, dtype=np.float64)))
    return FitContext(fun=fun, transform=transform, u=u, datasets=datasets, models=clean, names=tuple(names))


# -- root finding along rays --------------------------------------------------------------------------
def _solve_rays(
    delta: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    t0: np.ndarray,
    t_max: np.ndarray,
    sigma: float,
    max_steps: int = 30,
    tol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve ``sqrt(delta(t)) = sigma`` for ``t > 0`` on independent rays (``delta(0) = 0``, increasing).

    ``delta(rays, t)`` returns ``(profile(t) - stat_best, ok)`` for the rays ``rays`` (indices) at
    distances ``t``, all in one evaluation. Returns ``(t, solved,
    at_limit)``: ``at_limit`` where ``t_max`` is reached with ``delta < sigma^2``.
    """
    t0 = np.asarray(t0, dtype=np.float64)
    k = t0.size
    lo_t, lo_g = np.zeros(k), np.full(k, -float(sigma))
    hi_t, hi_g = np.full(k, np.nan), np.full(k, np.nan)
    kept = np.zeros(k, int)  # Illinois: which end was kept last time (-1 lo, +1 hi)
    t = np.minimum(t0, t_max)
    result = np.full(k, np.nan)
    solved = np.zeros(k, bool)
    at_limit = np.zeros(k, bool)
    active = np.ones(k, bool)
    for _ in range(max_steps):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        d, ok = delta(idx, t[idx])
        g = np.where(np.isfinite(d) & ok, np.sqrt(np.maximum(d, 0.0)) - sigma, np.inf)
        for j, gi, ti in zip(idx, g, t[idx], strict=True):
            if abs(gi) < tol:
                result[j], solved[j], active[j] = ti, True, False
                continue
            if gi < 0:
                if ti >= t_max[j]:
                    result[j], at_limit[j], active[j] = ti, True, False
                    continue
                lo_t[j], lo_g[j] = ti, gi
                if kept[j] == 1:
                    hi_g[j] = hi_g[j] / 2 if np.isfinite(hi_g[j]) else hi_g[j]
                kept[j] = 1
            else:
                hi_t[j], hi_g[j] = ti, gi
                if kept[j] == -1:
                    lo_g[j] /= 2
                kept[j] = -1
            if np.isnan(hi_t[j]):
                # no upper end yet: extrapolate as if the profile were quadratic, at most x4
                grow = sigma / (lo_g[j] + sigma) if lo_g[j] + sigma > 0 else 4.0
                t[j] = min(lo_t[j] * min(max(grow, 1.05), 4.0), t_max[j])
            elif np.isfinite(hi_g[j]):
                t_new = lo_t[j] - lo_g[j] * (hi_t[j] - lo_t[j]) / (hi_g[j] - lo_g[j])
                width = hi_t[j] - lo_t[j]
                t[j] = min(max(t_new, lo_t[j] + 1e-3 * width), hi_t[j] - 1e-3 * width)
            else:
                t[j] = 0.5 * (lo_t[j] + hi_t[j])  # the upper end is non-finite: bisect
            if not np.isnan(hi_t[j]) and hi_t[j] - lo_t[j] <= 1e-10 * max(hi_t[j], 1e-300):
                result[j], active[j] = t[j], False
    return result, solved, at_limit


# -- public functions --------------------------------------------------------------------------------
def confidence(
    datasets: Any,
    result: FitResult,
    parameter_name: str,
    sigma: float = 1.0,
    reoptimize: bool = True,
    max_steps: int = 30,
) -> dict[str, Any]:
    """Asymmetric profile-likelihood interval of one parameter: where the statistic, minimised over
    the other free parameters (``reoptimize=True``) or with them at the best fit, is ``sigma^2``
    above its minimum (Gammapy's ``Fit.confidence``; MINOS's definition).

    Parameters
    ----------
    datasets : Datasets or None
        The fitted datasets (None: those of ``result``).
    result : FitResult
        The fit.
    parameter_name : str
        Full name (``"crab.spectral.index"``) or a unique suffix (``"index"``).
    sigma : float
        Interval half-width in sigma (the level is ``sigma^2``).
    reoptimize : bool
        Re-optimise the other free parameters at each trial value (the profile likelihood).
    max_steps : int
        Root-finding rounds (each one compiled, vmapped call for both ends).

    Returns
    -------
    dict
        ``errp``, ``errn`` (positive distances to the upper and lower ends, physical units; NaN when
        not found), ``success``, ``message``, ``nfev`` (statistic evaluations, inner fits included).
    """
    _check_sigma(sigma)
    prof = _Profiler(datasets, result)
    i = prof.index(parameter_name)
    best = float(prof.x_best[i])
    lo, hi = prof.bounds(i)
    signs = np.array([1.0, -1.0])

    def delta(rays: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stat, ok = prof.stat([i], best + signs[rays] * t, reoptimize)
        return stat - prof.stat_best, ok

    t0 = np.full(2, prof.step(i) * sigma)
    t, solved, at_limit = _solve_rays(delta, t0, np.array([hi - best, best - lo]), sigma, max_steps)
    problems = []
    for label, ok, limit in (("upper", solved[0], at_limit[0]), ("lower", solved[1], at_limit[1])):
        if limit:
            problems.append(f"the {label} end is beyond the parameter's bound")
        elif not ok:
            problems.append(f"the {label} end was not found")
    success = not problems
    message = (
        "Confidence terminated successfully." if success else f"{prof.names[i]}: " + "; ".join(problems) + "."
    )
    errp = float(t[0]) if solved[0] else math.nan
    errn = float(t[1]) if solved[1] else math.nan
    return {"errp": errp, "errn": errn, "success": success, "message": message, "nfev": prof.nfev}


def _check_sigma(sigma: float) -> None:
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")


def _interp(result: FitResult, full_name: str) -> str:
    if result.models is None:
        return "lin"
    for name, p in iter_parameters(result.models):
        if name == full_name:
            return p.interp
    return "lin"


def _scan_values(prof: _Profiler, i: int, n_values: int, n_sigma: float) -> np.ndarray:
    """Gammapy's default ``scan_values``: ``n_values`` points over ``value -+ n_sigma * step``, evenly
    spaced in the parameter's ``interp`` scale."""
    value = float(prof.x_best[i])
    step = prof.step(i)
    lo, hi = value - n_sigma * step, value + n_sigma * step
    if _interp(prof.result, prof.names[i]) == "log" and lo > 0:
        return np.geomspace(lo, hi, n_values)
    return np.linspace(lo, hi, n_values)


def stat_profile(
    datasets: Any,
    result: FitResult,
    parameter_name: str,
    values: Any = None,
    n_values: int = 11,
    n_sigma: float = 2,
    reoptimize: bool = False,
) -> dict[str, np.ndarray]:
    """The statistic as a function of one parameter (Gammapy's ``Fit.stat_profile``), vmapped over
    the values, with the other free parameters at the best fit or re-optimised at each value.

    Returns
    -------
    dict
        ``"<name>_scan"`` (the values), ``"stat_scan"`` and, with ``reoptimize``, ``"success"`` per
        value (the inner fit converged).
    """
    prof = _Profiler(datasets, result)
    i = prof.index(parameter_name)
    if values is None:
        values = _scan_values(prof, i, int(n_values), float(n_sigma))
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    stat, ok = prof.stat([i], values[:, None], reoptimize)
    out = {f"{prof.names[i]}_scan": values, "stat_scan": stat}
    if reoptimize:
        out["success"] = ok
    return out


def stat_surface(
    datasets: Any,
    result: FitResult,
    x_name: str,
    y_name: str,
    x_values: Any,
    y_values: Any,
    reoptimize: bool = False,
) -> dict[str, np.ndarray]:
    """The statistic on the grid ``x_values x y_values`` of two parameters (Gammapy's
    ``Fit.stat_surface``), vmapped over the grid; ``stat_scan`` has shape ``(nx, ny)``."""
    prof = _Profiler(datasets, result)
    i, j = prof.index(x_name), prof.index(y_name)
    if i == j:
        raise ValueError(f"stat_surface needs two different parameters, got {x_name!r} twice")
    xv = np.atleast_1d(np.asarray(x_values, dtype=np.float64))
    yv = np.atleast_1d(np.asarray(y_values, dtype=np.float64))
    gx, gy = np.meshgrid(xv, yv, indexing="ij")
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    stat, ok = prof.stat([i, j], points, reoptimize)
    out = {
        f"{prof.names[i]}_scan": xv,
        f"{prof.names[j]}_scan": yv,
        "stat_scan": stat.reshape(xv.size, yv.size),
    }
    if reoptimize:
        out["success"] = ok.reshape(xv.size, yv.size)
    return out


def stat_contour(
    datasets: Any,
    result: FitResult,
    x_name: str,
    y_name: str,
    sigma: float = 1.0,
    n_points: int = 16,
    reoptimize: bool = True,
    max_steps: int = 30,
) -> dict[str, Any]:
    """Points of the contour where the statistic, minimised over the other free parameters, is
    ``sigma^2`` above its minimum (Gammapy's ``Fit.stat_contour`` / Minuit's ``mncontour``; see the
    module docstring for the level).

    The points lie on ``n_points`` rays from the best fit, evenly spaced in angle in the plane
    whitened by the two parameters' covariance, counter-clockwise from the +x direction.

    Returns
    -------
    dict
        ``"<x_name>"`` and ``"<y_name>"`` (arrays of the points' coordinates, full names as keys),
        ``success``, ``message``, ``nfev`` and ``"points_success"`` per point (False where a ray left
        the parameters' bounds before reaching the level).
    """
    _check_sigma(sigma)
    prof = _Profiler(datasets, result)
    i, j = prof.index(x_name), prof.index(y_name)
    if i == j:
        raise ValueError(f"stat_contour needs two different parameters, got {x_name!r} twice")
    n_points = int(n_points)
    if n_points < 3:
        raise ValueError(f"n_points must be at least 3, got {n_points}")
    cov = np.asarray(result.covariance)[np.ix_([i, j], [i, j])]
    if not np.all(np.isfinite(cov)):
        cov = np.diag([prof.step(i) ** 2, prof.step(j) ** 2])
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        chol = np.diag(np.sqrt(np.abs(np.diag(cov))))
    angle = 2 * np.pi * np.arange(n_points) / n_points
    directions = chol @ np.stack([np.cos(angle), np.sin(angle)])  # (2, n): a unit-sigma ellipse
    best = prof.x_best[[i, j]]
    # how far each ray may go before leaving a bound
    t_max = np.full(n_points, np.inf)
    for axis, k in enumerate((i, j)):
        lo, hi = prof.bounds(k)
        d = directions[axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_max = np.minimum(
                t_max, np.where(d > 0, (hi - best[axis]) / d, np.where(d < 0, (lo - best[axis]) / d, np.inf))
            )

    def delta(rays: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points = best[:, None] + directions[:, rays] * t[None, :]
        stat, ok = prof.stat([i, j], points.T, reoptimize)
        return stat - prof.stat_best, ok

    t, solved, _ = _solve_rays(delta, np.full(n_points, float(sigma)), t_max, sigma, max_steps)
    t = np.where(np.isfinite(t), t, np.minimum(t_max, sigma))
    points = best[:, None] + directions * t[None, :]
    success = bool(solved.all())
    message = (
        "Contour terminated successfully."
        if success
        else f"{int((~solved).sum())} of {n_points} contour points not found (a bound, or no crossing)."
    )
    return {
        prof.names[i]: points[0],
        prof.names[j]: points[1],
        "success": success,
        "message": message,
        "nfev": prof.nfev,
        "points_success": solved,
    }
