"""The compiled minimiser: damped Newton on the exact Hessian, L-BFGS or any optax transformation.

Everything here is a pure JAX function of

- ``fun``: the statistic (``-2 ln L``) of the physical free-parameter vector, normally the
  ``jax.tree_util.Partial`` of :func:`jaxgamma.likelihood.make_stat_function`, passed as an
  *argument* so that its arrays are never compiled in as constants;
- ``transform``: a :class:`jaxgamma.parameters.BoundTransform` (Gammapy's scale10 factors and the
  bounds as smooth maps to an unconstrained space ``u``), also an argument;
- ``u0``, an optional mask of parameters held fixed at given physical values (profiles), the EDM
  target and the iteration limit, all traced.

The whole loop is one ``jax.lax.while_loop``: :func:`run_program` compiles the optimisation and the
covariance into one program per (statistic structure, optimizer) and reuses it for new start values,
new data of the same shapes and new scales.

Newton (the default)
    Levenberg-Marquardt-damped Newton steps in ``u``, Jacobi-scaled so that the damping is
    dimensionless: ``p = -V diag(1 / (|w| + mu)) V^T g`` with ``H = V diag(w) V^T``. Taking ``|w|``
    makes every step a descent step even where the Hessian is indefinite (saddle-free Newton); the
    damping ``mu`` follows the gain ratio (Nielsen's rule): a step that does not decrease the
    statistic, or lands on a non-finite value, is rejected and retried with more damping.
Convergence
    As Minuit: ``EDM = 0.5 g^T H^-1 g < 0.002 * tol`` (``errordef = 1`` for ``-2 ln L``) with a
    positive semi-definite Hessian (a singular one is reported by the covariance step), followed by
    one undamped Newton step, so that the returned point is usually far closer to the minimum than
    the EDM target asks (Newton converges quadratically).
Covariance
    ``2 H^-1`` with ``H`` the Hessian w.r.t. the physical values (computed w.r.t. the factors and
    scaled), taken from the last evaluation of the loop: no separate Hessian program.
L-BFGS / optax
    Iterated in ``u`` until their own stopping rule, then the Newton loop above (``polish``).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..datasets.core import _as_models
from ..likelihood import clean_models, value_grad_hessian
from ..parameters import BoundTransform, ParameterVector, map_parameters, scale10
from .covariance import Eigen, covariance_from_eigen, expand_covariance, scaled_eigen
from .result import BatchFitResult, FitResult, bound_names

__all__ = [
    "CONVERGED",
    "MAX_ITER",
    "NONFINITE",
    "NONFINITE_START",
    "NO_DECREASE",
    "OPTIMIZERS",
    "RUNNING",
    "STATUS_MESSAGES",
    "FitContext",
    "edm_target",
    "fit",
    "fit_batch",
    "minimize",
    "run_program",
    "saturation_limits",
]

# -- status codes (a small results enum, as optimistix's) ----------------------------------------
RUNNING, CONVERGED, MAX_ITER, NONFINITE, NONFINITE_START, NO_DECREASE = 0, 1, 2, 3, 4, 5

STATUS_MESSAGES = {
    RUNNING: "Optimization did not finish.",
    CONVERGED: "Optimization terminated successfully.",
    MAX_ITER: "Iteration limit reached before the estimated distance to minimum (EDM) fell below its target.",
    NONFINITE: "Non-finite statistic: every step tried from the last point gave a non-finite value.",
    NONFINITE_START: "Non-finite statistic at the start values.",
    NO_DECREASE: "Could not decrease the statistic any further before the EDM fell below its target.",
}

OPTIMIZERS = ("newton", "lbfgs", "optax")

# Bounded coordinates saturate far out in u (sigmoid/softplus of +-25 is 1e-11 from the bound):
# steps are clipped there so that a parameter never jumps onto its bound with a zero gradient.
U_SATURATION = 25.0
# Damping: start, and the level at which a rejected step is given up.
_MU_START = 1e-3
_MU_GIVE_UP = 1e12
_EPS = float(np.finfo(np.float64).eps)

# Number of times each compiled program was traced (read by the no-retrace tests).
TRACES: collections.Counter[str] = collections.Counter()


def edm_target(tol: float) -> float:
    """Minuit's EDM threshold for ``tol`` with ``errordef = 1``: ``0.002 * tol``."""
    return 0.002 * float(tol)


def saturation_limits(transform: BoundTransform) -> tuple[np.ndarray, np.ndarray]:
    """``(u_min, u_max)``: where the bounded coordinates of ``transform`` are clipped."""
    kind = np.asarray(transform.kind)
    lower_side = (kind == 1) | (kind == 3)  # lower bound or interval: saturates as u -> -inf
    upper_side = (kind == 2) | (kind == 3)
    return (
        np.where(lower_side, -U_SATURATION, -np.inf),
        np.where(upper_side, U_SATURATION, np.inf),
    )


# -- objective -----------------------------------------------------------------------------------
def _objective(fun: Any, transform: BoundTransform, fixed_mask: jax.Array, fixed_values: jax.Array):
    """The statistic as a function of ``u``, with the masked parameters held at ``fixed_values``
    (used by the first-order optimizers; Newton applies the chain rule by hand)."""

    def objective(u: jax.Array) -> jax.Array:
        x = jnp.where(fixed_mask, fixed_values, transform.scale * factor_derivatives(transform, u)[0])
        return fun(x)

    return objective


def factor_derivatives(transform: BoundTransform, u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(factor, d factor / du, d2 factor / du2)`` of the bound transform, elementwise, in closed form
    (the same map as :meth:`BoundTransform.to_value` divided by the scale).

    Differentiating the transform's ``select`` over four branches twice by autodiff puts every
    branch's softplus and sigmoid, their first and their second derivatives into the compiled program
    (seconds of XLA compile time on CPU); the closed forms need one sigmoid and one softplus.
    """
    kind = transform.kind
    s = jax.nn.sigmoid(u)
    s1 = s * (1.0 - s)
    width = transform.hi - transform.lo
    sp = jax.nn.softplus(u)
    # softplus(-u) = softplus(u) - u
    factor = jnp.select(
        [kind == 1, kind == 2, kind == 3],
        [transform.lo + sp, transform.hi - (sp - u), transform.lo + width * s],
        u,
    )
    d1 = jnp.select([kind == 1, kind == 2, kind == 3], [s, 1.0 - s, width * s1], jnp.ones_like(u))
    d2 = jnp.select(
        [kind == 1, kind == 2, kind == 3], [s1, -s1, width * s1 * (1.0 - 2.0 * s)], jnp.zeros_like(u)
    )
    return factor, d1, d2


def _finite(*xs: jax.Array) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in xs]))


def _edm_and_pd(e: Eigen) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``0.5 g^T H^-1 g`` (with ``|H|`` where it is indefinite), whether the free block of the
    Hessian is positive definite, and whether it is at least positive semi-definite (to rounding)."""
    wmax = jnp.maximum(jnp.max(jnp.abs(e.w)), 1e-300)
    finite = jnp.all(jnp.isfinite(e.w))
    pd = jnp.all(e.w > 1e-13 * wmax) & finite
    psd = jnp.all(e.w > -1e-8 * wmax) & finite
    edm = 0.5 * jnp.sum(e.gv**2 / jnp.maximum(jnp.abs(e.w), 1e-13 * wmax))
    return edm, pd, psd


# -- Newton ----------------------------------------------------------------------------------------
# The loop is a small state machine with ONE evaluation of (value, gradient, Hessian) per iteration:
# trial steps, then one undamped "polish" step after convergence. The derivatives are taken with
# respect to the factors (value / scale) and carried to u by the chain rule in closed form, so the
# factor Hessian at the best point, which the covariance needs, comes with the last evaluation.
# Every evaluation site of the Hessian is a full copy of the likelihood's forward-over-reverse graph
# in the compiled program: one site instead of four makes the first (compiling) fit several times
# faster.
STEP, POLISH, DONE = 0, 1, 2


class NewtonState(NamedTuple):
    u: jax.Array  # accepted point (f = +inf before the first evaluation)
    f: jax.Array
    g: jax.Array  # gradient and Hessian in u
    h: jax.Array
    h_factor: jax.Array  # Hessian in factors (for the covariance)
    eig: Eigen  # of the accepted point's Hessian in u
    edm: jax.Array
    pd: jax.Array
    psd: jax.Array
    u_trial: jax.Array  # the point evaluated next
    predicted: jax.Array  # the quadratic model's decrease for the trial step
    phase: jax.Array
    status: jax.Array
    mu: jax.Array
    nu: jax.Array
    n_iter: jax.Array
    n_eval: jax.Array


def _trial(
    u: jax.Array,
    g: jax.Array,
    h: jax.Array,
    e: Eigen,
    mu: jax.Array,
    undamped: jax.Array,
    free: jax.Array,
    u_lo: jax.Array,
    u_hi: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The next trial point from ``u`` and its predicted decrease: damped saddle-free Newton, or the
    plain Newton step when ``undamped``."""
    denominator = jnp.where(undamped, jnp.where(e.w > 0, e.w, 1.0), jnp.abs(e.w) + mu)
    p = jnp.where(free, -(e.v @ (e.gv / denominator)) / e.d, 0.0)
    u_new = jnp.clip(u + p, u_lo, u_hi)
    p = u_new - u
    g = jnp.where(free, g, 0.0)
    h = jnp.where(free[:, None] & free[None, :], h, 0.0)
    return u_new, -(g @ p + 0.5 * p @ h @ p)


def newton(
    fun: Any,
    transform: BoundTransform,
    u0: jax.Array,
    fixed_mask: jax.Array,
    fixed_values: jax.Array,
    target: Any,
    max_iter: Any,
    u_lo: jax.Array,
    u_hi: jax.Array,
    *,
    polish: bool = True,
) -> NewtonState:
    """Damped Newton from ``u0`` to ``EDM < target`` (at most ``max_iter`` trial steps), then one
    undamped step more (if ``polish``)."""
    free = ~fixed_mask
    n = u0.shape[0]
    scale = jnp.asarray(transform.scale)

    def evaluate(u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        factor, d1, d2 = factor_derivatives(transform, u)
        # derivatives in x = scale * factor (structured when datasets are batched), then by the
        # chain rule in the factors (0 for the held parameters) and in u
        x = jnp.where(fixed_mask, fixed_values, scale * factor)
        value, g_x, h_x = value_grad_hessian(fun, x)
        g_factor = jnp.where(fixed_mask, 0.0, scale * g_x)
        held = fixed_mask[:, None] | fixed_mask[None, :]
        h_factor = jnp.where(held, 0.0, h_x * (scale[:, None] * scale[None, :]))
        g = g_factor * d1
        h = h_factor * (d1[:, None] * d1[None, :]) + jnp.diag(g_factor * d2)
        return value, g, h, h_factor

    eye = jnp.eye(n)
    false = jnp.asarray(False)
    state = NewtonState(
        u=u0,
        f=jnp.asarray(jnp.inf),
        g=jnp.zeros(n),
        h=eye,
        h_factor=eye,
        eig=scaled_eigen(jnp.zeros(n), eye, free),
        edm=jnp.asarray(jnp.inf),
        pd=false,
        psd=false,
        u_trial=u0,
        predicted=jnp.asarray(jnp.inf),
        phase=jnp.asarray(STEP, jnp.int32),
        status=jnp.asarray(RUNNING, jnp.int32),
        mu=jnp.asarray(_MU_START),
        nu=jnp.asarray(2.0),
        n_iter=jnp.asarray(0, jnp.int32),
        n_eval=jnp.asarray(0, jnp.int32),
    )

    def cond(s: NewtonState) -> jax.Array:
        return s.phase != DONE

    def body(s: NewtonState) -> NewtonState:
        in_step, in_polish = s.phase == STEP, s.phase == POLISH
        ft, gt, ht, hft = evaluate(s.u_trial)
        et = scaled_eigen(gt, ht, free)
        edm_t, pd_t, psd_t = _edm_and_pd(et)
        finite = _finite(ft, gt, ht)

        # -- accept or reject the trial point
        first = ~jnp.isfinite(s.f)
        actual = s.f - ft
        rho = actual / jnp.where(s.predicted > 0, s.predicted, 1.0)
        # a predicted decrease at rounding level cannot be verified: the point is as good as it gets
        at_precision = ~first & (s.predicted <= 8 * _EPS * jnp.maximum(1.0, jnp.abs(s.f))) & (actual >= 0)
        accept_step = in_step & finite & (first | ((s.predicted > 0) & (rho > 1e-4)) | at_precision)
        accept = accept_step | (in_polish & finite & (ft <= s.f) & psd_t)

        def pick(new: Any, old: Any) -> Any:
            return jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), new, old)

        u, f, g, h, h_factor, eig, edm, pd, psd = pick(
            (s.u_trial, ft, gt, ht, hft, et, edm_t, pd_t, psd_t),
            (s.u, s.f, s.g, s.h, s.h_factor, s.eig, s.edm, s.pd, s.psd),
        )
        mu_accepted = jnp.where(
            first, s.mu, jnp.maximum(s.mu * jnp.maximum(1 / 3, 1 - (2 * rho - 1) ** 3), 1e-12)
        )
        mu = jnp.where(in_step, jnp.where(accept, mu_accepted, s.mu * s.nu), s.mu)
        nu = jnp.where(in_step, jnp.where(accept, 2.0, 2 * s.nu), s.nu)
        n_iter = s.n_iter + (in_step & ~first)

        # -- status (step phase only)
        converged = psd & (edm < target)
        give_up = ~accept & (mu > _MU_GIVE_UP)
        stuck = accept & at_precision & ~converged & (s.mu < 1.0)
        step_status = jnp.select(
            [first & ~finite, converged, give_up, stuck, n_iter >= max_iter],
            [NONFINITE_START, CONVERGED, jnp.where(finite, NO_DECREASE, NONFINITE), NO_DECREASE, MAX_ITER],
            RUNNING,
        )
        status = jnp.where(in_step, step_status, s.status).astype(jnp.int32)

        # -- next phase and trial point
        next_phase = jnp.select(
            [in_step & (status == RUNNING), in_step & (status == CONVERGED) & pd & polish],
            [STEP, POLISH],
            DONE,
        ).astype(jnp.int32)
        u_trial, predicted = _trial(u, g, h, eig, mu, next_phase == POLISH, free, u_lo, u_hi)
        return NewtonState(
            u=u,
            f=f,
            g=g,
            h=h,
            h_factor=h_factor,
            eig=eig,
            edm=edm,
            pd=pd,
            psd=psd,
            u_trial=u_trial,
            predicted=predicted,
            phase=next_phase,
            status=status,
            mu=mu,
            nu=nu,
            n_iter=n_iter,
            n_eval=s.n_eval + 1,
        )

    return jax.lax.while_loop(cond, body, state)


# -- first-order optimizers (L-BFGS, any optax transformation) ---------------------------------------
class _FirstOrderState(NamedTuple):
    u: jax.Array
    f: jax.Array
    g: jax.Array
    opt_state: Any
    quiet: jax.Array  # consecutive iterations with a tiny decrease
    edm_est: jax.Array
    status: jax.Array
    n_iter: jax.Array
    n_fev: jax.Array


def _first_order(
    objective: Any,
    u0: jax.Array,
    free: jax.Array,
    u_lo: jax.Array,
    u_hi: jax.Array,
    target: Any,
    max_iter: Any,
    optimizer: optax.GradientTransformationExtraArgs,
    lbfgs: bool,
) -> _FirstOrderState:
    """Iterate ``optimizer`` in ``u``. L-BFGS stops when ``0.5 |g . step|`` (its EDM estimate) is
    below a tenth of the target; other transformations when the statistic has decreased by less
    than a hundredth of the target for 10 iterations in a row."""

    def masked(g: jax.Array) -> jax.Array:
        return jnp.where(free, g, 0.0)

    f0, g0 = jax.value_and_grad(objective)(u0)
    state = _FirstOrderState(
        u=u0,
        f=f0,
        g=masked(g0),
        opt_state=optimizer.init(u0),
        quiet=jnp.asarray(0, jnp.int32),
        edm_est=jnp.asarray(jnp.inf),
        status=jnp.where(_finite(f0, g0), RUNNING, NONFINITE_START).astype(jnp.int32),
        n_iter=jnp.asarray(0, jnp.int32),
        n_fev=jnp.asarray(1, jnp.int32),
    )

    def cond(s: _FirstOrderState) -> jax.Array:
        return (s.status == RUNNING) & (s.n_iter < max_iter)

    def body(s: _FirstOrderState) -> _FirstOrderState:
        f, g = s.f, s.g
        updates, opt_state = optimizer.update(g, s.opt_state, s.u, value=f, grad=g, value_fn=objective)
        u_new = jnp.clip(s.u + masked(updates), u_lo, u_hi)
        f_new, g_new = jax.value_and_grad(objective)(u_new)
        finite = _finite(f_new, g_new)
        edm_est = 0.5 * jnp.abs(g @ (u_new - s.u))
        decrease = f - f_new
        quiet = jnp.where(decrease < 0.01 * target, s.quiet + 1, 0)
        done = (edm_est < 0.1 * target) if lbfgs else (quiet >= 10)
        status = jnp.where(~finite, NONFINITE, jnp.where(done, CONVERGED, RUNNING)).astype(jnp.int32)
        keep = finite
        return _FirstOrderState(
            u=jnp.where(keep, u_new, s.u),
            f=jnp.where(keep, f_new, s.f),
            g=jnp.where(keep, masked(g_new), s.g),
            opt_state=opt_state,
            quiet=quiet,
            edm_est=edm_est,
            status=status,
            n_iter=s.n_iter + 1,
            # optax's linesearch evaluates the statistic internally; the count here is a lower bound
            n_fev=s.n_fev + 1,
        )

    state = jax.lax.while_loop(cond, body, state)
    return state._replace(status=jnp.where(state.status == RUNNING, MAX_ITER, state.status).astype(jnp.int32))


# -- the program -------------------------------------------------------------------------------------
class ProgramOutput(NamedTuple):
    """What :func:`run_program` returns (arrays; batched along a leading axis under ``vmap``)."""

    u: Any  # best point, unconstrained
    x: Any  # best point, physical values (fixed ones at their fixed values)
    total_stat: Any
    edm: Any
    status: Any
    pd_u: Any  # Hessian in u positive definite at the end
    n_iter: Any
    n_fev: Any
    n_grad: Any
    n_hess: Any
    covariance: Any  # physical units (NaN when not computed or not positive definite)
    cov_ok: Any
    min_eigenvalue: Any  # of the correlation-scaled physical Hessian


def minimize_core(
    fun: Any,
    transform: BoundTransform,
    u0: jax.Array,
    fixed_mask: jax.Array,
    fixed_values: jax.Array,
    target: Any,
    max_iter: Any,
    u_lo: jax.Array,
    u_hi: jax.Array,
    *,
    optimizer: str = "newton",
    optax_optimizer: Any = None,
    covariance: bool = True,
    polish: bool = True,
) -> ProgramOutput:
    """Minimise ``fun`` from ``u0`` and (optionally) take the covariance at the optimum. Pure, jittable
    and vmappable; see the module docstring."""
    free = ~fixed_mask
    n_first_order = jnp.asarray(0, jnp.int32)
    fev_first_order = jnp.asarray(0, jnp.int32)
    u_start = u0
    first_status = None
    newton_iter = max_iter
    if optimizer != "newton":
        objective = _objective(fun, transform, fixed_mask, fixed_values)
        is_lbfgs = optimizer == "lbfgs" and optax_optimizer is None
        opt = optax.with_extra_args_support(optax.lbfgs() if is_lbfgs else optax_optimizer)
        fo = _first_order(objective, u0, free, u_lo, u_hi, target, max_iter, opt, lbfgs=is_lbfgs)
        u_start, n_first_order, fev_first_order, first_status = fo.u, fo.n_iter, fo.n_fev, fo.status
        if not polish:
            newton_iter = 0
    state = newton(
        fun,
        transform,
        u_start,
        fixed_mask,
        fixed_values,
        target,
        newton_iter,
        u_lo,
        u_hi,
        polish=polish or optimizer == "newton",
    )
    status = state.status
    if first_status is not None:
        # without a polish, the first-order phase's own verdict stands (unless the end point is bad)
        if not polish:
            status = jnp.where(status == NONFINITE_START, NONFINITE, first_status)
        status = jnp.where(first_status == NONFINITE_START, NONFINITE_START, status)
    x = jnp.where(fixed_mask, fixed_values, transform.scale * factor_derivatives(transform, state.u)[0])
    n = x.shape[0]
    if covariance:
        cov, cov_ok, min_eig = covariance_from_eigen(
            scaled_eigen(jnp.zeros(n), state.h_factor, free), transform.scale, free
        )
        # no covariance at a point that was never evaluated
        cov_ok = cov_ok & jnp.isfinite(state.f)
        cov = jnp.where(cov_ok, cov, jnp.nan)
    else:
        cov, cov_ok, min_eig = jnp.full((n, n), jnp.nan), jnp.asarray(False), jnp.asarray(jnp.nan)
    return ProgramOutput(
        u=state.u,
        x=x,
        total_stat=jnp.where(jnp.isfinite(state.f), state.f, jnp.nan),
        edm=state.edm,
        status=status,
        pd_u=state.pd,
        n_iter=state.n_iter + n_first_order,
        n_fev=state.n_eval + fev_first_order,
        n_grad=state.n_eval + fev_first_order,
        n_hess=state.n_eval,
        covariance=cov,
        cov_ok=cov_ok,
        min_eigenvalue=min_eig,
    )


@eqx.filter_jit
def _program(
    fun: Any,
    transform: BoundTransform,
    u0: jax.Array,
    fixed_mask: jax.Array,
    fixed_values: jax.Array,
    target: jax.Array,
    max_iter: jax.Array,
    u_lo: jax.Array,
    u_hi: jax.Array,
    optimizer: str,
    optax_optimizer: Any,
    covariance: bool,
    polish: bool,
) -> ProgramOutput:
    TRACES["fit"] += 1
    return minimize_core(
        fun,
        transform,
        u0,
        fixed_mask,
        fixed_values,
        target,
        max_iter,
        u_lo,
        u_hi,
        optimizer=optimizer,
        optax_optimizer=optax_optimizer,
        covariance=covariance,
        polish=polish,
    )


def run_program(
    fun: Any,
    transform: BoundTransform,
    u0: Any,
    *,
    fixed_mask: Any = None,
    fixed_values: Any = None,
    tol: float = 0.1,
    max_iter: int = 200,
    optimizer: str = "newton",
    optax_optimizer: Any = None,
    covariance: bool = True,
    polish: bool = True,
) -> ProgramOutput:
    """Run the compiled minimiser (compiled once per structure of ``fun`` and options) and return
    numpy arrays."""
    u0 = np.asarray(u0, dtype=np.float64)
    n = u0.shape[0]
    fixed_mask = np.zeros(n, bool) if fixed_mask is None else np.asarray(fixed_mask, bool)
    fixed_values = np.zeros(n) if fixed_values is None else np.asarray(fixed_values, np.float64)
    u_lo, u_hi = saturation_limits(transform)
    # numpy arguments (traced as arrays by filter_jit): they cross to the device with the call,
    # without the per-shape copy programs that jnp.asarray compiles
    program: Any = _program
    out = program(
        fun,
        transform,
        np.clip(u0, u_lo, u_hi),
        fixed_mask,
        fixed_values,
        np.asarray(edm_target(tol), np.float64),
        np.asarray(max_iter, np.int32),
        u_lo,
        u_hi,
        optimizer,
        optax_optimizer,
        covariance,
        polish,
    )
    return ProgramOutput(*(np.asarray(a) for a in out))


def check_optimizer(optimizer: str, optax_optimizer: Any) -> str:
    """Validate the optimizer options before tracing; returns the normalised name."""
    if optax_optimizer is not None:
        if not isinstance(
            optax_optimizer, optax.GradientTransformation | optax.GradientTransformationExtraArgs
        ):
            raise TypeError(
                f"optax_optimizer must be an optax GradientTransformation, got {type(optax_optimizer).__name__}"
            )
        return "optax"
    optimizer = str(optimizer).lower()
    if optimizer not in ("newton", "lbfgs"):
        raise ValueError(
            f"optimizer must be 'newton' or 'lbfgs' (or pass optax_optimizer), got {optimizer!r}"
        )
    return optimizer


# -- drivers -------------------------------------------------------------------------------------------
# The at-bound rule: a bounded coordinate this far out in u is within ~3e-4 of its bound in factor
# units (softplus(-8), sigmoid(-8)), i.e. pressed against it.
_AT_BOUND_U = 8.0


def _at_bound(transform: BoundTransform, u: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kind = np.asarray(transform.kind)
    at_min = free & ((kind == 1) | (kind == 3)) & (u < -_AT_BOUND_U)
    at_max = free & ((kind == 2) | (kind == 3)) & (u > _AT_BOUND_U)
    return at_min, at_max


def _optimize_message(
    out: ProgramOutput, max_iter: int, target: float, at_bound: list[str]
) -> tuple[bool, str]:
    status = int(out.status)
    message = STATUS_MESSAGES[status]
    if status == MAX_ITER:
        message += f" (max_iter={max_iter}, EDM={float(out.edm):.3g}, target {target:.3g})"
    elif status == NO_DECREASE:
        message += f" (EDM={float(out.edm):.3g}, target {target:.3g})"
    if at_bound:
        message += " Parameters at a bound: " + ", ".join(at_bound) + "."
    return status == CONVERGED, message


def _covariance_message(out: ProgramOutput, covariance: bool, names: Sequence[str]) -> tuple[bool, str]:
    if not covariance:
        return True, "Covariance not computed (covariance=False)."
    if bool(out.cov_ok):
        return True, "Hesse terminated successfully."
    min_eig = float(out.min_eigenvalue)
    if not np.isfinite(min_eig):
        return False, "Hessian not finite at the best fit: no covariance."
    return (
        False,
        f"Hessian not positive definite at the best fit (smallest eigenvalue of the correlation-scaled "
        f"Hessian {min_eig:.3g}): no covariance; the free parameters {list(names)} are degenerate or "
        "not constrained.",
    )


def _result(
    out: ProgramOutput,
    *,
    names: Sequence[str],
    transform: BoundTransform,
    tol: float,
    max_iter: int,
    optimizer: str,
    covariance: bool,
    models: Any = None,
    n_replans: int = 0,
    units: Sequence[str] = (),
    mins: Sequence[float] = (),
    maxs: Sequence[float] = (),
    context: Any = None,
) -> FitResult:
    free = np.ones(len(names), bool)
    at_min, at_max = _at_bound(transform, np.asarray(out.u), free)
    bounded = bound_names(names, at_min, at_max)
    target = edm_target(tol)
    opt_ok, opt_message = _optimize_message(out, max_iter, target, bounded)
    cov_ok, cov_message = _covariance_message(out, covariance, names)
    cov = np.asarray(out.covariance, dtype=np.float64)
    return FitResult(
        models=models,
        parameter_names=tuple(names),
        parameters=np.asarray(out.x, dtype=np.float64),
        covariance=cov,
        total_stat=float(out.total_stat),
        optimize_success=opt_ok,
        optimize_message=opt_message,
        covariance_success=cov_ok,
        covariance_message=cov_message,
        n_iter=int(out.n_iter),
        n_eval=int(out.n_fev),
        n_grad=int(out.n_grad),
        n_hess=int(out.n_hess),
        edm=float(out.edm),
        edm_target=target,
        optimizer=optimizer,
        n_replans=n_replans,
        at_bound=tuple(n for n, lo, hi in zip(names, at_min, at_max, strict=True) if lo or hi),
        units=tuple(units),
        mins=tuple(mins),
        maxs=tuple(maxs),
        _context=context,
    )


def _check_common(tol: float, max_iter: int) -> None:
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter!r}")


def minimize(
    fun: Any,
    x0: Any,
    *,
    names: Sequence[str] | None = None,
    mins: Any = None,
    maxs: Any = None,
    scales: Any = None,
    optimizer: str = "newton",
    optax_optimizer: Any = None,
    tol: float = 0.1,
    max_iter: int = 200,
    covariance: bool = True,
    polish: bool = True,
) -> FitResult:
    """Minimise a statistic ``fun(x)`` (``-2 ln L`` of a parameter vector) with the compiled fit.

    The lower-level twin of :func:`fit`, for a plain function of a vector (analytic problems,
    custom likelihoods). ``fun`` should be a ``jax.tree_util.Partial`` (or an ``equinox.Module``)
    holding its arrays, so that they are arguments of the compiled program; a plain function works
    and is compiled with its closed-over arrays as constants.

    Parameters
    ----------
    x0 : array (n,)
        Start values; also define the scale10 factors unless ``scales`` is given.
    names : sequence of str, optional
        Parameter names (``"x0", "x1", ...`` by default).
    mins, maxs : array (n,), optional
        Bounds (``-inf``/``inf`` or NaN for none).
    optimizer, optax_optimizer, tol, max_iter, covariance, polish :
        As :func:`fit`.
    """
    _check_common(tol, max_iter)
    method = check_optimizer(optimizer, optax_optimizer)
    x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    if x0.ndim != 1 or x0.size == 0:
        raise ValueError(f"x0 must be a non-empty 1D vector, got shape {x0.shape}")
    n = x0.size
    names = tuple(f"x{i}" for i in range(n)) if names is None else tuple(str(s) for s in names)
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} parameters")

    def bounds(b: Any, default: float) -> np.ndarray:
        b = (
            np.full(n, default)
            if b is None
            else np.broadcast_to(np.asarray(b, dtype=np.float64), (n,)).copy()
        )
        b[np.isnan(b)] = default
        return b

    lo, hi = bounds(mins, -np.inf), bounds(maxs, np.inf)
    bad = [names[i] for i in range(n) if not (lo[i] <= x0[i] <= hi[i])]
    if bad:
        raise ValueError(f"start values outside their bounds for {bad}")
    if scales is None:
        scales = np.array([scale10(v) for v in x0])
    transform = BoundTransform.create(np.asarray(scales, dtype=np.float64), lo, hi)
    u0 = np.asarray(transform.to_unconstrained(np.asarray(x0, dtype=np.float64)))
    out = run_program(
        fun,
        transform,
        u0,
        tol=tol,
        max_iter=max_iter,
        optimizer=method,
        optax_optimizer=optax_optimizer,
        covariance=covariance,
        polish=polish,
    )
    context = FitContext(
        fun=fun, transform=transform, u=np.asarray(out.u), datasets=None, models=None, names=names
    )
    return _result(
        out,
        names=names,
        transform=transform,
        tol=tol,
        max_iter=max_iter,
        optimizer=method,
        covariance=covariance,
        mins=tuple(lo),
        maxs=tuple(hi),
        context=context,
    )


class FitContext(NamedTuple):
    """What the profile-likelihood functions reuse from a fit."""

    fun: Any
    transform: BoundTransform
    u: np.ndarray
    datasets: Any
    models: Any  # the models the statistic function was built for (errors stripped)
    names: tuple[str, ...]


def fit(
    datasets: Any,
    models: Any,
    *,
    optimizer: str = "newton",
    tol: float = 0.1,
    max_iter: int = 200,
    optax_optimizer: Any = None,
    covariance: bool = True,
    max_replans: int = 3,
    polish: bool = True,
    pixel_restarts: bool = True,
    batch_datasets: bool = True,
) -> FitResult:
    """Fit ``models`` to ``datasets``: minimise the joint ``-2 ln L`` and take the covariance, in one
    compiled program.

    Parameters
    ----------
    datasets : Datasets, Dataset or list of them
    models : Models (or a model, or a list of models)
        The start values; free parameters are scaled by Gammapy's scale10 at these values.
    optimizer : {"newton", "lbfgs"}
        Damped Newton on the exact Hessian (default; up to a few hundred free parameters) or optax's
        L-BFGS with a zoom linesearch (many free parameters), followed by a Newton polish.
    tol : float
        Minuit's tolerance: converged when ``EDM < 0.002 * tol`` (Gammapy's default 0.1).
    max_iter : int
        Maximum number of optimizer iterations (trial steps).
    optax_optimizer : optax.GradientTransformation, optional
        Any optax transformation, iterated in the scaled unconstrained space instead of Newton or
        L-BFGS (then polished with Newton unless ``polish=False``).
    covariance : bool
        Compute the covariance ``2 H^-1`` (physical Hessian) at the best fit.
    max_replans : int
        How many times the dataset plans may be rebuilt when a source moved far enough to need it
        (:func:`jaxgamma.likelihood.plans_need_update`); the fit then continues from its best point.
    polish : bool
        Finish first-order optimizers with Newton iterations to the EDM target.
    pixel_restarts : bool
        A point source is spread bilinearly over four pixels (as in Gammapy), so the statistic is
        smooth inside each cell between pixel centres and has kinks on their lines: a Newton fit
        converges to the minimum of the cell it lands in. With this option (default) the fit is
        restarted from the four cells around the nearest pixel centre of every point source with
        a free position, on every map dataset, and the best optimum is kept.
    batch_datasets : bool
        Evaluate map datasets of one structure (one per observation, say) with one ``vmap``
        (:func:`jaxgamma.datasets.batch.batch_plans`): the compiled program, and its compile
        time, then do not grow with their number. The statistic is the same either way.

    Returns
    -------
    FitResult
    """
    from ..likelihood import make_stat_function, plan_datasets, plans_need_update

    _check_common(tol, max_iter)
    method = check_optimizer(optimizer, optax_optimizer)
    models = _as_models(models)
    clean = clean_models(models)
    vector = ParameterVector.from_tree(clean)
    names = vector.names
    if not names:
        raise ValueError("fit: the models have no free parameters")
    plans = plan_datasets(datasets, clean, device=False)  # make_stat_function moves what it needs
    fun, x0, _ = make_stat_function(datasets, clean, plans=plans, batch=batch_datasets)
    transform = vector.transform(x0)
    u0 = np.asarray(transform.to_unconstrained(np.asarray(x0, dtype=np.float64)))
    n_replans = 0
    program_options = {
        "tol": tol,
        "max_iter": max_iter,
        "optimizer": method,
        "optax_optimizer": optax_optimizer,
        "covariance": covariance,
        "polish": polish,
    }
    while True:
        out = run_program(fun, transform, u0, **program_options)
        if pixel_restarts and np.all(np.isfinite(out.x)):
            out = _best_of_pixel_cells(out, datasets, clean, vector, transform, fun, program_options)
        best = vector.unflatten(cast(Any, np.asarray(out.x)), clean)
        if n_replans >= max_replans or not np.all(np.isfinite(out.x)) or not plans_need_update(plans, best):
            break
        # a source moved far enough that its cutout / IRFs must be re-taken: plan again and go on
        plans = plan_datasets(datasets, best, device=False)
        fun, _, _ = make_stat_function(datasets, best, plans=plans, batch=batch_datasets)
        clean = best
        u0 = np.asarray(out.u)
        n_replans += 1

    errors = np.sqrt(np.diag(out.covariance)) if bool(out.cov_ok) else np.full(len(names), np.nan)
    error_of = dict(zip(names, errors, strict=True))
    best = map_parameters(
        lambda name, p: (
            p.replace(error=float(error_of[name])) if name in error_of and np.isfinite(error_of[name]) else p
        ),
        best,
    )
    if covariance and bool(out.cov_ok):
        best = best.with_covariance(expand_covariance(best, names, out.covariance))
    context = FitContext(
        fun=fun, transform=transform, u=np.asarray(out.u), datasets=datasets, models=clean, names=names
    )
    return _result(
        out,
        names=names,
        transform=transform,
        tol=tol,
        max_iter=max_iter,
        optimizer=method,
        covariance=covariance,
        models=best,
        n_replans=n_replans,
        units=vector.units,
        mins=vector.mins,
        maxs=vector.maxs,
        context=context,
    )


def _pixel_cell_starts(
    datasets: Any, models: Any, vector: ParameterVector, x: np.ndarray
) -> list[np.ndarray]:
    """Start vectors in the four pixel cells around the nearest pixel centre of each point source
    with a free position, on each map dataset, except the cell ``x`` already lies in."""
    from ..likelihood import _as_datasets
    from ..models.spatial import PointSpatialModel

    starts: list[np.ndarray] = []
    for dataset in _as_datasets(datasets):
        geom = getattr(dataset, "geom", None)
        if geom is None or not hasattr(geom, "world_to_pix"):
            continue
        for model in models:
            spatial = getattr(model, "spatial_model", None)
            if not isinstance(spatial, PointSpatialModel) or not model.applies_to(dataset.name):
                continue
            names = (f"{model.name}.spatial.lon_0", f"{model.name}.spatial.lat_0")
            if not all(n in vector.names for n in names):
                continue
            i_lon, i_lat = vector.index(names[0]), vector.index(names[1])
            px, py = geom.world_to_pix(x[i_lon], x[i_lat], frame=spatial.frame)
            if not (np.isfinite(px) and np.isfinite(py)):
                continue
            node = np.round([float(px), float(py)])
            here = (np.sign(float(px) - node[0]), np.sign(float(py) - node[1]))
            for dx in (-0.25, 0.25):
                for dy in (-0.25, 0.25):
                    if (np.sign(dx), np.sign(dy)) == here:
                        continue
                    lon, lat = geom.pix_to_world(node[0] + dx, node[1] + dy)
                    if spatial.frame != geom.frame:
                        from astropy.coordinates import SkyCoord

                        c = SkyCoord(float(lon), float(lat), unit="deg", frame=geom.frame).transform_to(
                            spatial.frame
                        )
                        lon, lat = c.spherical.lon.deg, c.spherical.lat.deg
                    start = np.array(x, dtype=float)
                    # keep the longitude on the same branch as the current value
                    start[i_lon] = float(lon) + 360.0 * np.round((x[i_lon] - float(lon)) / 360.0)
                    start[i_lat] = float(lat)
                    # datasets cut out of one reference geometry share their pixel grid: one start per cell
                    if not any(np.allclose(start, other, rtol=0.0, atol=1e-9) for other in starts):
                        starts.append(start)
    return starts


def _best_of_pixel_cells(
    out: ProgramOutput,
    datasets: Any,
    models: Any,
    vector: ParameterVector,
    transform: BoundTransform,
    fun: Any,
    program_options: dict[str, Any],
    max_rounds: int = 4,
) -> ProgramOutput:
    """Refit from the neighbouring pixel cells of every free point source and keep the lowest
    optimum, repeating around the new best (at most ``max_rounds`` times) while it improves.

    Each restart runs the same compiled program (same structure): no recompilation.
    """
    best = out
    for _ in range(max_rounds):
        improved = False
        for start in _pixel_cell_starts(datasets, models, vector, np.asarray(best.x)):
            u_start = np.asarray(transform.to_unconstrained(np.asarray(start, dtype=np.float64)))
            if not np.all(np.isfinite(u_start)):
                continue
            trial = run_program(fun, transform, u_start, **program_options)
            if np.isfinite(trial.total_stat) and float(trial.total_stat) < float(best.total_stat) - 1e-9:
                best, improved = trial, True
        if not improved:
            break
    return best


# -- many datasets of one structure at once ---------------------------------------------------------
@eqx.filter_jit
def _batch_program(
    batched: Any,
    shared: Any,
    transform: BoundTransform,
    u0: jax.Array,
    target: jax.Array,
    max_iter: jax.Array,
    u_lo: jax.Array,
    u_hi: jax.Array,
    optimizer: str,
    optax_optimizer: Any,
    covariance: bool,
    polish: bool,
) -> ProgramOutput:
    TRACES["fit_batch"] += 1
    n = u0.shape[0]
    mask, values = jnp.zeros(n, bool), jnp.zeros(n)

    def one(b: Any) -> ProgramOutput:
        return minimize_core(
            eqx.combine(b, shared),
            transform,
            u0,
            mask,
            values,
            target,
            max_iter,
            u_lo,
            u_hi,
            optimizer=optimizer,
            optax_optimizer=optax_optimizer,
            covariance=covariance,
            polish=polish,
        )

    return jax.vmap(one)(batched)


def batch_functions(funs: Sequence[Any]) -> tuple[Any, Any]:
    """Split statistic functions of one structure into ``(batched, shared)`` pytrees: leaves that
    differ between them are stacked along a new leading axis, equal ones are kept once (``None``
    marks the other part; ``equinox.combine`` joins them)."""
    flat = [jax.tree_util.tree_flatten(f) for f in funs]
    treedef: Any = flat[0][1]
    for i, (_, t) in enumerate(flat):
        if t != treedef:
            raise ValueError(
                f"fit_batch: datasets {i} have another structure than datasets 0 (models or shapes differ)"
            )
    batched: list[Any] = []
    shared: list[Any] = []
    for k, first in enumerate(flat[0][0]):
        first_np = np.asarray(first)
        column = [np.asarray(leaves[k]) for leaves, _ in flat]
        if any(c.shape != first_np.shape or c.dtype != first_np.dtype for c in column):
            raise ValueError(
                "fit_batch: the datasets' arrays differ in shape; they cannot be fitted as one batch"
            )
        if all(np.array_equal(c, first_np) for c in column[1:]):
            batched.append(None)
            shared.append(jnp.asarray(first_np))
        else:
            batched.append(jnp.asarray(np.stack(column)))
            shared.append(None)
    return jax.tree_util.tree_unflatten(treedef, batched), jax.tree_util.tree_unflatten(treedef, shared)


def fit_batch(
    datasets_list: Sequence[Any],
    models: Any,
    *,
    optimizer: str = "newton",
    tol: float = 0.1,
    max_iter: int = 200,
    optax_optimizer: Any = None,
    covariance: bool = True,
    polish: bool = True,
    batch_datasets: bool = True,
) -> BatchFitResult:
    """Fit the same ``models`` (same start values) to many datasets of one structure at once: the
    compiled fit is ``vmap``-ped over the arrays that differ between them (typically the counts).

    Each entry of ``datasets_list`` is what :func:`fit` takes (a Datasets, a dataset or a list).
    Re-planning is not done here (plans are built once, at the start values). ``batch_datasets``
    is as in :func:`fit`: map datasets of one structure within an entry are evaluated by one
    ``vmap`` (False evaluates them one by one).
    """
    from ..likelihood import _as_datasets, make_stat_function

    _check_common(tol, max_iter)
    method = check_optimizer(optimizer, optax_optimizer)
    if len(datasets_list) == 0:
        raise ValueError("fit_batch needs at least one datasets entry")
    clean = clean_models(models)
    vector = ParameterVector.from_tree(clean)
    if not vector.names:
        raise ValueError("fit_batch: the models have no free parameters")
    funs, x0 = [], None
    for datasets in datasets_list:
        plans = tuple(d.plan(clean) for d in _as_datasets(datasets))  # numpy leaves, stacked below
        fun, x0, _ = make_stat_function(datasets, clean, plans=plans, batch=batch_datasets)
        funs.append(fun)
    batched, shared = batch_functions(funs)
    transform = vector.transform(x0)
    u_lo, u_hi = saturation_limits(transform)
    u0 = np.clip(np.asarray(transform.to_unconstrained(np.asarray(x0, dtype=np.float64))), u_lo, u_hi)
    out = _batch_program(
        batched,
        shared,
        transform,
        jnp.asarray(u0),
        jnp.asarray(edm_target(tol)),
        jnp.asarray(max_iter, jnp.int32),
        jnp.asarray(u_lo),
        jnp.asarray(u_hi),
        method,
        optax_optimizer,
        covariance,
        polish,
    )
    out = ProgramOutput(*(np.asarray(a) for a in out))
    return BatchFitResult(
        parameter_names=vector.names,
        parameters=out.x,
        covariance=out.covariance,
        total_stat=out.total_stat,
        status=out.status,
        covariance_success=out.cov_ok,
        edm=out.edm,
        n_iter=out.n_iter,
        n_eval=out.n_fev,
    )
