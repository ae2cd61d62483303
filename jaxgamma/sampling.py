"""Posterior sampling: the joint likelihood as a log density over unconstrained parameters, and
NUTS through blackjax.

The statistic is ``-2 ln L``, so the log posterior of the free parameters ``x`` (physical values,
canonical units) is ``-stat(x) / 2 + log prior(x)``. Samplers move in the unconstrained space ``u``
of the fit (:class:`jaxgamma.parameters.BoundTransform`: scaled values, bounds by softplus or
sigmoid), where the density picks up ``log |dx/du|``. The statistic includes the parameters'
priors (:mod:`jaxgamma.models.prior`, Gammapy's ``Parameter.prior``); a parameter without one is
flat in ``x`` inside its bounds (the posterior is then the likelihood, as a Gammapy user reading
the fit errors has in mind).

:func:`log_density` is a pure JAX function usable with any sampler; :func:`sample` runs NUTS
(``blackjax``, an optional dependency: ``pip install "jaxgamma[sampling]"``) with Stan's window
adaptation, several chains in one ``vmap``, started from the best fit and with its mass matrix
seeded by the exact Hessian there.

:class:`Sampler` is Gammapy's ``gammapy.modeling.Sampler``: ``Sampler(backend, sampler_opts,
run_opts).run(datasets, models)`` returns a :class:`SamplerResult` whose models hold the posterior
means and standard deviations. Its backends are Gammapy's ``"ultranest"`` (nested sampling,
which needs a prior on every free parameter and gives the evidence; the likelihood is evaluated
in vmapped batches) and ``"nuts"`` (:func:`sample`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from .fit.confidence import _padded, _stat_program
from .fit.optimize import saturation_limits
from .fit.result import FitResult
from .likelihood import clean_models, make_stat_function
from .parameters import BoundTransform, ParameterVector, scale10

__all__ = ["LogDensity", "NestedProblem", "SampleResult", "Sampler", "SamplerResult", "auto_batch_size", "log_density", "sample"]

log = logging.getLogger(__name__)


class LogDensity(eqx.Module):
    """``log p(u)``: the log posterior of the unconstrained free-parameter vector ``u`` (up to a
    constant).

    A pytree (the datasets' arrays are leaves): pass it as an argument to jitted code rather than
    closing over it. ``to_physical(u)`` maps samples (any leading shape) to parameter values.
    """

    stat: jax.tree_util.Partial
    transform: BoundTransform
    log_prior: Callable[[jax.Array], jax.Array] | None = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)
    units: tuple[str, ...] = eqx.field(static=True)

    def __call__(self, u: jax.Array) -> jax.Array:
        x = self.transform.to_value(u)
        value = -0.5 * self.stat(x) + self.transform.log_abs_det_jacobian(u)
        if self.log_prior is not None:
            value = value + self.log_prior(x)
        return value

    def to_physical(self, u: Any) -> jax.Array:
        """Unconstrained vector(s), shape ``(..., n)`` -> physical values."""
        return self.transform.to_value(jnp.asarray(u))

    def to_unconstrained(self, x: Any) -> jax.Array:
        """Physical values, shape ``(..., n)`` (strictly inside their bounds) -> unconstrained."""
        return self.transform.to_unconstrained(jnp.asarray(x))


def log_density(
    datasets: Any,
    models: Any,
    log_prior: Callable[[jax.Array], jax.Array] | None = None,
    batch_datasets: bool = True,
) -> tuple[LogDensity, np.ndarray]:
    """The log posterior of the free parameters of ``models`` given ``datasets``.

    Parameters
    ----------
    datasets : Datasets, dataset or list
        As :func:`jaxgamma.fit` takes them.
    models : Models, SkyModel or FitResult
        The free parameters span the space; their current values are the start (a FitResult:
        its best-fit models).
    log_prior : callable, optional
        ``log_prior(x)`` of the physical free-parameter vector (order: ``density.names``), pure
        JAX, added to the parameters' own priors (which the statistic already holds). Default:
        nothing more (parameters without a prior are flat inside their bounds).
    batch_datasets : bool
        As in :func:`jaxgamma.fit`.

    Returns
    -------
    density : LogDensity
        ``density(u)`` is ``-stat(x(u)) / 2 + log |dx/du| + log_prior(x(u))``.
    u0 : numpy array
        The unconstrained vector of the current values (moved half a posterior width inside a
        bound the values sit on).

    The unconstrained coordinates are the parameters divided by the power of ten of their
    posterior width (or of their value, when larger) and mapped through their bounds.
    """
    fit_result = models if isinstance(models, FitResult) else None
    if fit_result is not None:
        models = fit_result.models
    if models is None:
        raise ValueError("log_density: the fit result has no models (the fit failed before any step)")
    clean = clean_models(models)
    vector = ParameterVector.from_tree(clean)
    if not vector.names:
        raise ValueError("log_density: the models have no free parameters")
    if log_prior is not None and not callable(log_prior):
        raise TypeError(f"log_density: log_prior must be a callable of the parameter vector, got {log_prior!r}")
    fun, x0, names = make_stat_function(datasets, clean, batch=batch_datasets)
    # the unit of each unconstrained coordinate: the power of ten of the posterior width or of the
    # value, whichever is larger (the value alone fails at a bound, where it may be ~0)
    width = _widths(fun, x0, getattr(fit_result, "errors", None))
    scales = np.array([scale10(max(abs(v), w)) for v, w in zip(x0, width, strict=True)])
    mins, maxs = np.array(vector.mins, dtype=float), np.array(vector.maxs, dtype=float)
    transform = BoundTransform.create(scales, mins, maxs)
    # a start on a bound (the best fit of a flux compatible with 0, say) moves half a width inside
    start = np.where(np.isfinite(mins), np.maximum(x0, mins + 0.5 * width), x0)
    start = np.where(np.isfinite(maxs), np.minimum(start, maxs - 0.5 * width), start)
    start = np.where((start > mins) | ~np.isfinite(mins), start, x0)
    u_lo, u_hi = saturation_limits(transform)
    u0 = np.clip(np.asarray(transform.to_unconstrained(np.asarray(start, dtype=np.float64))), u_lo, u_hi)
    density = LogDensity(fun, transform, log_prior, names, vector.units)
    return density, u0


def _call(fun: Any, x: jax.Array) -> jax.Array:
    return fun(x)


_stat_derivatives = jax.jit(lambda f, x: (jax.grad(_call, argnums=1)(f, x), jax.hessian(_call, argnums=1)(f, x)))


def _widths(fun: Any, x0: np.ndarray, errors: Any) -> np.ndarray:
    """Posterior widths at ``x0``: the fit's errors when they are all finite and positive, else
    ``sqrt(diag(2 H^-1))`` of the exact Hessian of the statistic (its diagonal alone when it is
    not positive definite), ``2 / |gradient|`` where the curvature is 0 (an exponential tail
    from a bound); 0 where nothing is known."""
    if errors is not None:
        errors = np.asarray(errors, dtype=float)
        if errors.shape == x0.shape and np.all(np.isfinite(errors) & (errors > 0)):
            return errors
    gradient, hessian = (np.asarray(a) for a in _stat_derivatives(fun, jnp.asarray(x0)))
    try:
        np.linalg.cholesky(hessian)
        variance = np.diag(2.0 * np.linalg.inv(hessian))
    except np.linalg.LinAlgError:
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = 2.0 / np.diag(hessian)
    width = np.where(np.isfinite(variance) & (variance > 0), np.sqrt(np.abs(variance)), 0.0)
    # a flat direction with a slope (no counts: -ln L = K x on x >= 0): the e-folding length 2 / |g|
    with np.errstate(divide="ignore"):
        slope = np.where(np.abs(gradient) > 0, 2.0 / np.abs(gradient), 0.0)
    return np.where(width > 0, width, slope)


@dataclass(frozen=True)
class SampleResult:
    """Posterior samples from :func:`sample`.

    Attributes
    ----------
    names, units : tuple of str
        The free parameters (as in :attr:`jaxgamma.FitResult.parameter_names`), canonical units.
    samples : numpy array, shape (n_chains, n_samples, n_parameters)
        Physical parameter values.
    log_density : numpy array, shape (n_chains, n_samples)
        ``log p(u)`` of each sample (unconstrained space, up to a constant).
    divergent : numpy array of bool, shape (n_chains, n_samples)
    acceptance_rate : numpy array, shape (n_chains, n_samples)
    step_size : numpy array, shape (n_chains,)
        The step sizes found by the warm-up.
    num_integration_steps : numpy array, shape (n_chains, n_samples)
        Leapfrog steps (gradient evaluations) of each draw.
    """

    names: tuple[str, ...]
    units: tuple[str, ...]
    samples: np.ndarray
    log_density: np.ndarray
    divergent: np.ndarray
    acceptance_rate: np.ndarray
    step_size: np.ndarray
    num_integration_steps: np.ndarray | None = None

    @property
    def flat(self) -> np.ndarray:
        """All chains together, shape (n_chains * n_samples, n_parameters)."""
        return self.samples.reshape(-1, self.samples.shape[-1])

    @property
    def mean(self) -> np.ndarray:
        return self.flat.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.flat.std(axis=0, ddof=1)

    @property
    def covariance(self) -> np.ndarray:
        """The sample covariance of the parameters (compare with the fit's)."""
        return np.atleast_2d(np.cov(self.flat, rowvar=False))

    @property
    def r_hat(self) -> np.ndarray:
        """Split-chain Gelman-Rubin R-hat per parameter (close to 1 when the chains agree)."""
        return split_r_hat(self.samples)

    @property
    def n_divergent(self) -> int:
        return int(self.divergent.sum())

    def samples_of(self, name: str) -> np.ndarray:
        """The flat samples of one parameter (a full name or a unique suffix such as ``"index"``)."""
        return self.flat[:, _index(self.names, name)]

    def to_table(self) -> Table:
        """One row per parameter: mean, std, 16/50/84 % quantiles, R-hat, unit."""
        return _posterior_table(self.names, self.flat, self.units, r_hat=self.r_hat)

    def __str__(self) -> str:
        chains, draws, _ = self.samples.shape
        lines = [
            "SampleResult",
            "",
            f"\tchains           : {chains}",
            f"\tsamples per chain: {draws}",
            f"\tdivergences      : {self.n_divergent}",
            f"\tacceptance rate  : {float(self.acceptance_rate.mean()):.3f}",
            f"\tmax r_hat        : {float(np.max(self.r_hat)):.4f}",
            "",
        ]
        return "\n".join(lines).expandtabs(tabsize=2) + "\n" + "\n".join(self.to_table().pformat(max_lines=-1, max_width=-1))


def _posterior_table(names: tuple[str, ...], flat: np.ndarray, units: tuple[str, ...], **extra: Any) -> Table:
    """One row per parameter of the samples ``flat`` (n, d): mean, std, 16/50/84 % quantiles,
    ``extra`` columns, unit."""
    q16, q50, q84 = np.percentile(flat, [15.865525393145708, 50.0, 84.13447460685429], axis=0)
    columns = {"name": list(names), "mean": flat.mean(axis=0), "std": flat.std(axis=0, ddof=1)}
    return Table({**columns, "q16": q16, "median": q50, "q84": q84, **extra, "unit": list(units)})


def _index(names: tuple[str, ...], name: str) -> int:
    if name in names:
        return names.index(name)
    matches = [i for i, n in enumerate(names) if n.endswith("." + name)]
    if len(matches) != 1:
        raise ValueError(f"{name!r} matches {len(matches)} of the free parameters {list(names)}; give the full name")
    return matches[0]


def split_r_hat(samples: Any) -> np.ndarray:
    """Split-chain R-hat (Gelman et al., BDA3 eq. 11.4) of ``samples`` (chains, draws, n)."""
    samples = np.asarray(samples, dtype=np.float64)
    draws = samples.shape[1]
    half = draws // 2
    if half < 2:
        raise ValueError(f"split_r_hat needs at least 4 draws per chain, got {draws}")
    split = np.concatenate([samples[:, :half], samples[:, draws - half :]], axis=0)
    n = half
    chain_means = split.mean(axis=1)
    within = split.var(axis=1, ddof=1).mean(axis=0)
    between = n * chain_means.var(axis=0, ddof=1)
    var_plus = (n - 1) / n * within + between / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(var_plus / within)


def sample(
    datasets: Any,
    models: Any,
    num_samples: int = 1000,
    num_warmup: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    log_prior: Callable[[jax.Array], jax.Array] | None = None,
    target_acceptance_rate: float = 0.8,
    batch_datasets: bool = True,
) -> SampleResult:
    """Sample the posterior of the free parameters with NUTS (blackjax).

    Start from a fit: pass its :class:`jaxgamma.FitResult` (or its best-fit models). The chains
    start from the best fit spread by the inverse exact Hessian of ``-log p`` in the unconstrained
    space (the Laplace approximation, Jacobian included), which also seeds the (dense) inverse
    mass matrix; where that Hessian is not positive definite (a start on a bound, or not at an
    optimum) the identity is used instead. Stan's window adaptation then tunes the step size and
    the mass matrix for ``num_warmup`` steps. All chains run in one compiled, ``vmap``-ped
    program. Divergent transitions are reported in the log (and in the result).

    Parameters
    ----------
    datasets : Datasets, dataset or list
    models : FitResult, Models or SkyModel
    num_samples, num_warmup, num_chains : int
        Draws kept per chain, warm-up steps per chain, chains.
    seed : int
        Seed of the random keys.
    log_prior : callable, optional
        As in :func:`log_density` (default: flat inside the bounds).
    target_acceptance_rate : float
        Of the step-size adaptation (raise it, e.g. to 0.9, if there are divergences).
    batch_datasets : bool
        As in :func:`jaxgamma.fit`.
    """
    try:
        import blackjax
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            'jaxgamma.sampling.sample needs blackjax: pip install "jaxgamma[sampling]" '
            "(log_density works with any sampler without it)"
        ) from exc
    for label, value, low in (("num_samples", num_samples, 4), ("num_warmup", num_warmup, 1), ("num_chains", num_chains, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"sample: {label} must be an integer >= {low}, got {value!r}")
    if not 0.0 < target_acceptance_rate < 1.0:
        raise ValueError(f"sample: target_acceptance_rate must be in (0, 1), got {target_acceptance_rate}")

    density, u0 = log_density(datasets, models, log_prior=log_prior, batch_datasets=batch_datasets)
    inverse_mass, spread, ok = (np.asarray(a) for a in _laplace(density, jnp.asarray(u0)))
    if not bool(ok):
        log.warning(
            "sample: the Hessian of -log p at the start is not positive definite (a start on a bound or "
            "not at an optimum): the chains start near it with an identity mass matrix"
        )
    out = _run_chains(
        density,
        jnp.asarray(u0),
        jnp.asarray(inverse_mass),
        jnp.asarray(spread),
        jax.random.PRNGKey(seed),
        int(num_samples),
        int(num_warmup),
        int(num_chains),
        float(target_acceptance_rate),
        blackjax,
    )
    positions, logdens, divergent, acceptance, n_steps, step_size = (np.asarray(a) for a in out)
    if divergent.any():
        log.warning(
            f"sample: {int(divergent.sum())} divergent transitions of {divergent.size}: the posterior may be "
            "biased there; raise target_acceptance_rate (e.g. 0.95) or check the parameter bounds"
        )
    return SampleResult(
        names=density.names,
        units=density.units,
        samples=np.asarray(density.to_physical(positions)),
        log_density=logdens,
        divergent=divergent,
        acceptance_rate=acceptance,
        step_size=step_size,
        num_integration_steps=n_steps,
    )


@eqx.filter_jit
def _laplace(density: LogDensity, u0: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The inverse Hessian of ``-log p`` at ``u0`` and its Cholesky factor (identity and 1e-2 x
    identity when the Hessian is not positive definite), and whether it is."""
    hessian = jax.hessian(lambda u: -density(u))(u0)
    ok = jnp.all(jnp.isfinite(jnp.linalg.cholesky(hessian)))
    inverse = jnp.where(ok, jnp.linalg.inv(hessian), jnp.eye(u0.size))
    spread = jnp.where(ok, jnp.linalg.cholesky(inverse), jnp.eye(u0.size) * 1e-2)
    return inverse, spread, ok


@eqx.filter_jit
def _run_chains(
    density: LogDensity,
    u0: jax.Array,
    inverse_mass: jax.Array,
    spread: jax.Array,
    key: jax.Array,
    num_samples: int,
    num_warmup: int,
    num_chains: int,
    target_acceptance_rate: float,
    blackjax: Any,
) -> tuple[jax.Array, ...]:
    key_init, key_chains = jax.random.split(key)
    starts = u0 + jax.random.normal(key_init, (num_chains, u0.size)) @ spread.T

    def one_chain(start: jax.Array, chain_key: jax.Array) -> tuple[jax.Array, ...]:
        warm_key, draw_key = jax.random.split(chain_key)
        warmup = blackjax.window_adaptation(
            blackjax.nuts,
            density,
            is_mass_matrix_diagonal=False,
            initial_inverse_mass_matrix=inverse_mass,
            target_acceptance_rate=target_acceptance_rate,
            adaptation_info_fn=blackjax.adaptation.base.get_filter_adapt_info_fn(),
        )
        (state, parameters), _ = warmup.run(warm_key, start, num_steps=num_warmup)
        kernel = blackjax.nuts(density, **parameters).step

        def step(state: Any, step_key: jax.Array) -> tuple[Any, tuple[jax.Array, ...]]:
            state, info = kernel(step_key, state)
            return state, (
                state.position,
                state.logdensity,
                info.is_divergent,
                info.acceptance_rate,
                info.num_integration_steps,
            )

        _, draws = jax.lax.scan(step, state, jax.random.split(draw_key, num_samples))
        return (*draws, parameters["step_size"])

    return jax.vmap(one_chain)(starts, jax.random.split(key_chains, num_chains))


# -- Gammapy's Sampler -----------------------------------------------------------------------------
_BACKENDS = ("ultranest", "nuts")
# Gammapy's defaults of the options it reads for UltraNest; "vectorized" and "batch_size" are ours
_ULTRANEST_DEFAULTS: dict[str, Any] = {
    "live_points": 400,
    "frac_remain": 0.5,
    "log_dir": None,
    "resume": "subfolder",
    "step_sampler": False,
    "nsteps": 10,
    "vectorized": True,
    "batch_size": None,
}
# the automatic batch size keeps (points per call) x (data bins) below this: ~130 MB per float64
# array of a batched evaluation
_BATCH_BINS = 2**24
_NUTS_OPTIONS = ("num_samples", "num_warmup", "num_chains", "seed", "target_acceptance_rate", "log_prior")
# NUTS draws pass when every split R-hat is below this (Vehtari et al. 2021) and none diverged
R_HAT_MAX = 1.01


@dataclass
class SamplerResult:
    """What :meth:`Sampler.run` returns (Gammapy's ``SamplerResult``).

    Attributes
    ----------
    nfev : int
        Likelihood evaluations (UltraNest's ``ncall``; NUTS: leapfrog steps of the kept draws, each
        one gradient evaluation).
    success : bool
        UltraNest: its insertion-order test says converged (as Gammapy). NUTS: no divergent
        transition and every split R-hat below ``R_HAT_MAX``.
    models : Models
        The models with every free parameter set to its posterior mean and its error to the
        posterior standard deviation (no covariance), as Gammapy's.
    samples : numpy array, shape (n_samples, n_parameters)
        Equally weighted posterior samples, columns in ``parameter_names`` order, physical values.
    sampler_results : dict or SampleResult
        UltraNest's result dictionary (``logz``, ``logzerr``, ``posterior``, ``ncall``, ...) or the
        :class:`SampleResult` of :func:`sample`.
    parameter_names, units : tuple of str
        The free parameters sampled and their units.
    backend, message : str
    """

    nfev: int = 0
    success: bool = False
    models: Any = None
    samples: np.ndarray | None = None
    sampler_results: Any = None
    parameter_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    backend: str = ""
    message: str = ""

    @classmethod
    def from_ultranest(cls, ultranest_result: dict[str, Any], **kwargs: Any) -> SamplerResult:
        """Gammapy's reading of an UltraNest result dictionary."""
        return cls(
            nfev=int(ultranest_result["ncall"]),
            success=bool(ultranest_result["insertion_order_MWW_test"]["converged"]),
            samples=np.asarray(ultranest_result["samples"], dtype=np.float64),
            sampler_results=ultranest_result,
            **kwargs,
        )

    @property
    def log_evidence(self) -> tuple[float, float] | None:
        """``(ln Z, its error)`` of a nested-sampling run (UltraNest's ``logz``, ``logzerr``), else
        None. The likelihood is ``exp(-stat / 2)`` without the statistic's data-only constants."""
        if isinstance(self.sampler_results, dict) and "logz" in self.sampler_results:
            return float(self.sampler_results["logz"]), float(self.sampler_results["logzerr"])
        return None

    def to_table(self) -> Table:
        """One row per free parameter: posterior mean, standard deviation and 16/50/84 %
        quantiles of ``samples``, unit."""
        return _posterior_table(self.parameter_names, np.asarray(self.samples, dtype=np.float64), self.units)

    def __str__(self) -> str:
        lines = [
            "SamplerResult",
            "",
            f"\tbackend    : {self.backend}",
            f"\tsuccess    : {self.success}",
            f"\tmessage    : {self.message}",
            f"\tnfev       : {self.nfev}",
            f"\tsamples    : {0 if self.samples is None else len(self.samples)}",
        ]
        evidence = self.log_evidence
        if evidence is not None:
            lines.append(f"\tln Z       : {evidence[0]:.4f} +- {evidence[1]:.4f}")
        text = "\n".join(lines).expandtabs(tabsize=2)
        if self.samples is not None and len(self.parameter_names):
            text += "\n\n" + "\n".join(self.to_table().pformat(max_lines=-1, max_width=-1))
        return text


class Sampler:
    """Posterior sampling with Gammapy's interface (``gammapy.modeling.Sampler``).

    Parameters
    ----------
    backend : {"ultranest", "nuts"}
        ``"ultranest"`` (Gammapy's, the default): UltraNest's reactive nested sampling
        (``pip install ultranest``); every free parameter needs a prior, which maps the unit cube
        to the parameter (:meth:`~jaxgamma.models.prior.Prior.inverse_cdf`), and the likelihood is
        the statistic without the prior terms, ``exp(-stat / 2)`` (Gammapy's
        ``_stat_sum_likelihood``). It also gives the evidence. ``"nuts"``: :func:`sample`
        (blackjax), whose posterior holds the priors where set and is flat inside the bounds
        elsewhere.
    sampler_opts : dict, optional
        UltraNest: Gammapy's ``live_points`` (400), ``frac_remain`` (0.5), ``log_dir`` (None),
        ``resume`` ("subfolder"), ``step_sampler`` (False), ``nsteps`` (10), and jaxgamma's
        ``vectorized`` (True: UltraNest proposes batches of points and the likelihood of a batch
        is one vmapped call) and ``batch_size`` (a power of two: the most points per compiled
        call; default: 1024, less for big map datasets so that a call holds at most ~1.7e7 data
        bins, e.g. 8 points of the stacked CTA-1DC dataset). NUTS: the keywords of :func:`sample`
        (``num_samples``, ``num_warmup``, ``num_chains``, ``seed``, ``target_acceptance_rate``,
        ``log_prior``).
    run_opts : dict, optional
        UltraNest: passed to ``ReactiveNestedSampler.run`` (e.g. ``min_ess``, ``dlogz``,
        ``show_status``, ``viz_callback``). NUTS: none.

    UltraNest draws its random numbers from numpy's global generator: ``np.random.seed`` makes a
    run reproducible. The datasets are planned at the models' current values (a source's PSF and
    energy-dispersion cutouts, as in a fit): start from the best fit; a warning says when the
    posterior mean has moved a source far enough for those to need re-taking.
    """

    def __init__(self, backend: str = "ultranest", sampler_opts: dict[str, Any] | None = None, run_opts: dict[str, Any] | None = None):
        if backend not in _BACKENDS:
            raise ValueError(f"Sampler: backend {backend!r} is not supported; choose one of {list(_BACKENDS)}")
        self.backend = backend
        self.sampler_opts = dict(sampler_opts or {})
        self.run_opts = dict(run_opts or {})
        if backend == "ultranest":
            unknown = sorted(set(self.sampler_opts) - set(_ULTRANEST_DEFAULTS))
            if unknown:
                raise ValueError(
                    f"Sampler: unknown sampler_opts {unknown} for the ultranest backend; known: "
                    f"{list(_ULTRANEST_DEFAULTS)} (UltraNest's run options go in run_opts)"
                )
            for key, value in _ULTRANEST_DEFAULTS.items():
                self.sampler_opts.setdefault(key, value)
            size = self.sampler_opts["batch_size"]
            if size is not None and not (isinstance(size, int) and size >= 2 and size & (size - 1) == 0):
                raise ValueError(f"Sampler: sampler_opts['batch_size'] must be a power of two >= 2, got {size!r}")
        else:
            unknown = sorted(set(self.sampler_opts) - set(_NUTS_OPTIONS))
            if unknown:
                raise ValueError(f"Sampler: unknown sampler_opts {unknown} for the nuts backend; known: {list(_NUTS_OPTIONS)}")
            if self.run_opts:
                raise ValueError(f"Sampler: the nuts backend takes no run_opts, got {sorted(self.run_opts)}")
        self._sampler: Any = None

    def __repr__(self) -> str:
        return f"Sampler(backend={self.backend!r}, sampler_opts={self.sampler_opts!r}, run_opts={self.run_opts!r})"

    def run(self, datasets: Any, models: Any) -> SamplerResult:
        """Sample the posterior of the free parameters of ``models`` (Models, a model, or a
        FitResult: its best-fit models) given ``datasets``."""
        fit_result = models if isinstance(models, FitResult) else None
        if fit_result is not None:
            models = fit_result.models
        if models is None:
            raise ValueError("Sampler.run: the fit result has no models (the fit failed before any step)")
        if self.backend == "nuts":
            return self._run_nuts(datasets, fit_result if fit_result is not None else models)
        return self._run_ultranest(datasets, models)

    def _run_nuts(self, datasets: Any, models: Any) -> SamplerResult:
        draws = sample(datasets, models, **self.sampler_opts)
        clean = clean_models(models.models if isinstance(models, FitResult) else models)
        vector = ParameterVector.from_tree(clean)
        r_hat = draws.r_hat
        problems = []
        if draws.n_divergent:
            problems.append(f"{draws.n_divergent} divergent transitions")
        slow = [n for n, r in zip(draws.names, r_hat, strict=True) if not r < R_HAT_MAX]
        if slow:
            problems.append(f"split R-hat >= {R_HAT_MAX} for {slow}")
        steps = draws.num_integration_steps
        return SamplerResult(
            nfev=int(steps.sum()) if steps is not None else 0,
            success=not problems,
            models=_posterior_models(clean, vector, draws.mean, draws.std),
            samples=draws.flat,
            sampler_results=draws,
            parameter_names=draws.names,
            units=draws.units,
            backend="nuts",
            message="; ".join(problems) if problems else "chains agree (split R-hat) and no divergences",
        )

    def _run_ultranest(self, datasets: Any, models: Any) -> SamplerResult:
        try:
            import ultranest
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                'Sampler(backend="ultranest") needs UltraNest: pip install ultranest (or use backend="nuts")'
            ) from exc
        from .likelihood import plans_need_update

        opts = self.sampler_opts
        problem = NestedProblem(datasets, models, batch_size=opts["batch_size"])
        vector = problem.vector
        self._sampler = ultranest.ReactiveNestedSampler(
            list(vector.names),
            problem.loglike,
            transform=problem.transform,
            log_dir=opts["log_dir"],
            resume=opts["resume"],
            vectorized=bool(opts["vectorized"]),
        )
        if opts["step_sampler"]:
            from ultranest.stepsampler import SliceSampler, generate_mixture_random_direction

            self._sampler.stepsampler = SliceSampler(
                nsteps=opts["nsteps"], generate_direction=generate_mixture_random_direction
            )
        result = self._sampler.run(
            min_num_live_points=opts["live_points"], frac_remain=opts["frac_remain"], **self.run_opts
        )
        self._sampler.print_results()
        posterior = result["posterior"]
        best = _posterior_models(problem.models, vector, posterior["mean"], posterior["stdev"])
        if plans_need_update(problem.plans, best):
            log.warning(
                "Sampler.run: the posterior mean moved a source far enough from the start that its PSF / "
                "energy-dispersion cutouts should be re-taken; sample again from the posterior models"
            )
        converged = bool(result["insertion_order_MWW_test"]["converged"])
        return SamplerResult.from_ultranest(
            result,
            models=best,
            parameter_names=vector.names,
            units=vector.units,
            backend="ultranest",
            message="converged (insertion order test)" if converged else "insertion order test failed",
        )


class NestedProblem:
    """What a nested sampler needs (Gammapy's ``SamplerLikelihood`` and prior transform), for
    UltraNest or any other: ``loglike(x)``, the log-likelihood ``-stat / 2`` without the prior
    terms (Gammapy's ``_stat_sum_likelihood``), and ``transform(cube)``, each free parameter's
    prior inverse CDF. Both take one point ``(d,)`` or a batch ``(n, d)``, columns in ``names``
    order.

    Parameters
    ----------
    datasets, models
        As :func:`jaxgamma.fit` takes them; every free parameter needs a prior.
    batch_size : int, optional
        The most points per compiled call of the likelihood (a power of two; default:
        :func:`auto_batch_size`).
    """

    def __init__(self, datasets: Any, models: Any, batch_size: int | None = None):
        from .likelihood import plan_datasets
        from .models.sky import Models
        from .parameters import iter_parameters, map_parameters

        clean = clean_models(models)
        vector = ParameterVector.from_tree(clean)
        if not vector.names:
            raise ValueError("Sampler.run: the models have no free parameters")
        by_name = dict(iter_parameters(clean))
        self.priors = tuple(by_name[n].prior for n in vector.names)
        missing = [n for n, p in zip(vector.names, self.priors, strict=True) if p is None]
        if missing:
            raise ValueError(
                f"Sampler.run: some parameters have no prior set: {missing}. The ultranest backend needs a "
                "prior on every free parameter (Parameter(prior=...), Models.set_prior)"
            )
        # the likelihood alone: the priors enter through the transform
        bare = map_parameters(lambda _, p: p if p.prior is None else p.replace(prior=None), clean)
        bare = Models(bare.models, covariance=None, penalties=())
        self.plans = plan_datasets(datasets, bare, device=False)
        fun, _, _ = make_stat_function(datasets, bare, plans=self.plans)
        self.models = clean
        self.vector = vector
        self.names = vector.names
        self.batch_size = auto_batch_size(datasets) if batch_size is None else int(batch_size)
        self._stat = _BatchStat(fun, len(vector.names), self.batch_size)

    def loglike(self, x: Any) -> Any:
        return -0.5 * self._stat(x)

    def transform(self, cube: Any) -> np.ndarray:
        cube = np.asarray(cube, dtype=np.float64)
        out = np.empty_like(cube)
        for i, prior in enumerate(self.priors):
            out[..., i] = prior.inverse_cdf(cube[..., i])
        return out


def auto_batch_size(datasets: Any, largest: int = 1024) -> int:
    """The largest power of two up to ``largest`` points whose batched likelihood holds at most
    ``2**24`` data bins (the datasets' counts), so that a vmapped call stays within ~130 MB per
    array: 1024 for spectra and flux points, 8 for the stacked CTA-1DC map dataset."""
    from .likelihood import _as_datasets

    bins = 0
    for dataset in _as_datasets(datasets):
        counts = getattr(dataset, "counts", None)
        bins += int(np.size(counts)) if counts is not None else 1
    size = largest
    while size > 2 and size * bins > _BATCH_BINS:
        size //= 2
    return size


class _BatchStat:
    """The statistic at many points, ``(n, d) -> (n,)`` (or ``(d,) -> scalar``): vmapped over
    padded batches (2, 16, then powers of two up to ``max_batch``), so that a run compiles a few
    programs however UltraNest sizes its batches."""

    def __init__(self, fun: Any, n_params: int, max_batch: int):
        self.fun = fun
        self.n_params = n_params
        self.max_batch = max_batch

    def __call__(self, x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        xs = x.reshape(-1, self.n_params)
        out = np.empty(len(xs))
        for start in range(0, len(xs), self.max_batch):
            chunk = xs[start : start + self.max_batch]
            size = min(_padded(len(chunk)), self.max_batch)
            padded = np.concatenate([chunk, np.broadcast_to(chunk[-1], (size - len(chunk), self.n_params))])
            out[start : start + len(chunk)] = np.asarray(_stat_program(self.fun, jnp.asarray(padded)))[: len(chunk)]
        return float(out[0]) if single else out


def _posterior_models(clean: Any, vector: ParameterVector, mean: Any, std: Any) -> Any:
    """``clean`` with each free value at its posterior mean and its error the posterior standard
    deviation (Gammapy's ``_update_models_from_posterior``)."""
    from .parameters import map_parameters

    models = vector.unflatten(cast(Any, np.asarray(mean, dtype=np.float64)), clean)
    error_of = dict(zip(vector.names, np.asarray(std, dtype=np.float64), strict=True))
    return map_parameters(
        lambda name, p: p.replace(error=float(error_of[name])) if name in error_of else p, models
    )
