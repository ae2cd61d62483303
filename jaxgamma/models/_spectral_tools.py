"""What Gammapy 2.1's ``SpectralModel`` offers besides evaluation: errors of fluxes from the
parameters' covariance, the spectral index, the pivot energy, the inverse, and the plots.

Errors follow Gammapy: parameter samples from the multivariate normal of the covariance
(``n_samples`` per parameter, numpy's ``RandomState(random_state)``; drawn in correlation space,
see :func:`sample_parameters`, where Gammapy's draws lose a correlated amplitude's variance), the
quantity evaluated for every sample (here ``jax.vmap``-ed), and the median with the 16th / 84th
percentile distances as ``(value, errn, errp)``. Samples may also be given (e.g. a NUTS posterior).
Integrated fluxes of samples use Gammapy's log-log trapezoid on its integration grid (as Gammapy's
``integral_error`` does even for models with an analytic integral).

jaxgamma models hold no covariance: give it as the fit's ``result.covariance_of("crab")`` (a
:class:`~jaxgamma.models.sky.Covariance`; its names are matched to the spectral model's parameters
by their trailing components) or as a matrix over the model's parameters in their order.
"""

from __future__ import annotations

import logging
from typing import Any

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np

from ..parameters import ParameterVector, iter_parameters, map_parameters
from ..units import ENERGY, as_float_array, parse_unit

log = logging.getLogger(__name__)

# Gammapy's DEFAULT_UNIT of each SED type (gammapy.estimators.map.core)
PLOT_UNITS = {
    "dnde": "cm-2 s-1 TeV-1",
    "e2dnde": "erg cm-2 s-1",
    "flux": "cm-2 s-1",
    "eflux": "erg cm-2 s-1",
    "norm": "",
}


def _energy_tev(energy: Any, what: str = "energy") -> np.ndarray:
    """Energies in TeV from a Quantity, a string, numbers (TeV) or a list of any of these."""
    if isinstance(energy, (list, tuple)):
        return np.array([as_float_array(e, ENERGY, what=what) for e in energy], dtype=np.float64)
    return as_float_array(energy, ENERGY, what=what)


def match_covariance_names(cov_names: Any, names: Any, owner: str) -> list[int | None]:
    """The index in ``cov_names`` of each of ``names`` (equal, or ending with ``"." + name``, as
    ``"crab.spectral.alpha"`` for ``"alpha"``); None where absent, an error where ambiguous."""
    cov_names = list(cov_names)
    index: list[int | None] = []
    for name in names:
        matches = [k for k, c in enumerate(cov_names) if c == name or c.endswith("." + name)]
        if len(matches) > 1:
            raise ValueError(f"{owner}: the covariance has {len(matches)} entries for parameter {name!r}: {cov_names}")
        index.append(matches[0] if matches else None)
    return index


def _all_free(model: Any) -> tuple[Any, ParameterVector]:
    """The model with every parameter free and the vector over all of them (the model's order)."""
    free = map_parameters(lambda _, p: p if not p.frozen else p.replace(frozen=False), model)
    return free, ParameterVector.from_tree(free)


def model_covariance(model: Any, covariance: Any, owner: str) -> np.ndarray:
    """The covariance over all of ``model``'s parameters (its order; zero rows for parameters the
    covariance does not hold), from a Covariance with names or a matrix."""
    names = [n for n, _ in iter_parameters(model)]
    n = len(names)
    if covariance is None:
        raise ValueError(
            f"{owner}: give the covariance of the model's parameters (e.g. result.covariance_of('crab')); "
            "jaxgamma models do not carry one"
        )
    if hasattr(covariance, "names") and hasattr(covariance, "matrix"):
        cov_names = list(covariance.names)
        matrix = np.asarray(covariance.matrix, dtype=np.float64)
        index = match_covariance_names(cov_names, names, owner)
        out = np.zeros((n, n))
        held = [k for k, i in enumerate(index) if i is not None]
        if not held:
            raise ValueError(f"{owner}: the covariance holds none of the model's parameters {names}: {cov_names}")
        rows = [int(i) for i in index if i is not None]
        out[np.ix_(held, held)] = matrix[np.ix_(rows, rows)]
        return out
    matrix = np.asarray(covariance, dtype=np.float64)
    if matrix.shape != (n, n):
        raise ValueError(f"{owner}: a covariance matrix of shape {matrix.shape} for the model's {n} parameters {names}")
    return matrix


def sample_parameters(model: Any, covariance: Any, n_samples: int, random_state: Any = 42) -> np.ndarray:
    """``(n_samples, n_parameters)`` draws of all the model's parameters from the multivariate
    normal of the covariance, as Gammapy's ``sample_parameters_from_covariance(free_only=False)``
    but drawn in correlation space: ``value + sigma x z`` with ``z ~ N(0, R)``, ``R`` the
    correlation matrix of the parameters of non-zero variance (the others stay at their value).

    Gammapy draws from the covariance itself (numpy's SVD-based ``multivariate_normal``), whose
    variances span ~20 decades in canonical units (an amplitude's ~1e-24 next to an index's
    ~1e-3): the SVD then loses the amplitude's own variance, and the samples of a correlated
    amplitude come out with too small a spread (e.g. 2.6e-12 for sigma 4e-12 at correlation 0.5).
    """
    owner = f"{type(model).__name__}.sample_parameters_from_covariance"
    matrix = model_covariance(model, covariance, owner)
    values = np.array([float(np.asarray(p.value)) for _, p in iter_parameters(model)])
    variance = np.diag(matrix)
    if np.any(variance < 0) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"{owner}: the covariance must be finite with non-negative variances, got {variance.tolist()}")
    rng = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
    out = np.tile(values, (int(n_samples), 1))
    active = variance > 0
    if np.any(active):
        sigma = np.sqrt(variance[active])
        correlation = matrix[np.ix_(active, active)] / np.outer(sigma, sigma)
        out[:, active] += rng.multivariate_normal(np.zeros(sigma.size), correlation, int(n_samples)) * sigma
    return out


def _samples(model: Any, covariance: Any, n_samples: int, random_state: Any, samples: Any) -> np.ndarray:
    n_par = len(list(iter_parameters(model)))
    if samples is None:
        return sample_parameters(model, covariance, n_par * n_samples, random_state)
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[1] != n_par:
        raise ValueError(f"samples must have shape (n, {n_par}) (one column per parameter), got {samples.shape}")
    return samples


def median_errors(values: np.ndarray, n_sigma: float = 1.0) -> np.ndarray:
    """Gammapy's ``_get_errors``: ``[median, median - q(cdf(-n)), q(cdf(n)) - median]`` over the
    last axis, non-finite samples ignored."""
    from scipy.stats import norm

    values = np.where(np.isfinite(values), values, np.nan)
    median = np.nanpercentile(values, 50, axis=-1)
    errn = median - np.nanpercentile(values, 100 * norm.cdf(-n_sigma), axis=-1)
    errp = np.nanpercentile(values, 100 * norm.cdf(n_sigma), axis=-1) - median
    return np.array([np.atleast_1d(median), np.atleast_1d(errn), np.atleast_1d(errp)]).squeeze()


def propagate(model: Any, fn: Any, covariance: Any, n_samples: int, random_state: Any, samples: Any) -> np.ndarray:
    """``median_errors`` of ``fn(model_of_sample)`` over the samples (vmapped)."""
    free, vector = _all_free(model)
    x = jnp.asarray(_samples(model, covariance, n_samples, random_state, samples))
    values = jax.jit(jax.vmap(lambda xi: fn(vector.unflatten(xi, free))))(x)
    return median_errors(np.moveaxis(np.asarray(values), 0, -1))


def log_slope(model: Any, energy: Any) -> Any:
    """``-d ln dnde / d ln E`` at ``energy`` (TeV), exact (forward-mode derivative)."""
    energy = jnp.asarray(energy, dtype=jnp.float64)
    log_e = jnp.log(energy)
    value, tangent = jax.jvp(lambda le: jnp.log(model.dnde(jnp.exp(le))), (log_e,), (jnp.ones_like(log_e),))
    del value
    return -tangent


def spectral_index(model: Any, energy: Any, epsilon: float | None = None) -> Any:
    energy = _energy_tev(energy)
    if epsilon is None:
        return np.asarray(log_slope(model, energy))
    f1 = np.asarray(model.dnde(jnp.asarray(energy)))
    f2 = np.asarray(model.dnde(jnp.asarray(energy * (1 + epsilon))))
    return np.log(f1 / f2) / np.log(1 + epsilon)


def linear_relative_error(model: Any, energy: np.ndarray, covariance: Any) -> np.ndarray:
    """``sqrt(J C J^T) / dnde`` with the exact Jacobian (first-order propagation)."""
    free, vector = _all_free(model)
    matrix = model_covariance(model, covariance, f"{type(model).__name__}.pivot_energy")
    x0 = vector.flatten(free)

    def log_dnde(x: jax.Array) -> jax.Array:
        return jnp.log(vector.unflatten(x, free).dnde(jnp.asarray(energy)))

    jac = np.asarray(jax.jacfwd(log_dnde)(x0))
    return np.sqrt(np.clip(np.einsum("ei,ij,ej->e", jac, matrix, jac), 0.0, None))


def pivot_energy(model: Any, covariance: Any) -> u.Quantity:
    """The energy of smallest relative flux error within ``reference x e^(+-3)`` (Gammapy's search
    range and minimiser), the error propagated to first order with the exact Jacobian."""
    from scipy.optimize import minimize_scalar

    reference = getattr(model, "reference", None)
    if reference is None:
        raise ValueError(f"{type(model).__name__}.pivot_energy: the model has no reference energy parameter")
    center = float(np.log(float(np.asarray(reference.value))))
    bounds = (center - 3.0, center + 3.0)
    grid = np.linspace(bounds[0], bounds[1], 100)
    if np.std(linear_relative_error(model, np.exp(grid), covariance)) < 1e-5:
        log.warning("The relative error on the flux does not depend on energy. No pivot energy found.")
        return np.nan * u.TeV

    def relative(x: float) -> float:
        return float(linear_relative_error(model, np.exp(np.atleast_1d(x)), covariance)[0])

    result = minimize_scalar(relative, bounds=bounds)
    if not result.success:
        log.warning("No minima found in the relative error on the flux. Pivot energy computation failed.")
        return np.nan * u.TeV
    return float(np.exp(result.x)) * u.TeV


def inverse(model: Any, value: Any, energy_min: Any = 0.1, energy_max: Any = 100.0, nbin: int = 100) -> u.Quantity:
    """Energies where ``dnde`` equals ``value``: Gammapy's ``find_roots`` (sign changes on ``nbin``
    log-spaced bins between the bounds, then Brent's method in each); NaN when there is none."""
    from scipy.optimize import brentq

    unit = parse_unit(model.dnde_unit)
    target = u.Quantity(value, unit).to_value(unit) if isinstance(value, (u.Quantity, str)) else float(value)
    lo, hi = float(_energy_tev(energy_min, "energy_min")), float(_energy_tev(energy_max, "energy_max"))
    if not 0 < lo < hi:
        raise ValueError(f"{type(model).__name__}.inverse: needs 0 < energy_min < energy_max, got {lo} and {hi} TeV")

    def f(e: float) -> float:
        return 1e12 * (float(model.dnde(jnp.asarray(e))) - target)  # Gammapy's scaling

    x = np.geomspace(lo, hi, nbin + 1)
    signs = np.sign([f(e) for e in x])
    changes = np.nonzero(signs[:-1] != signs[1:])[0]
    roots = []
    for k in changes:
        try:
            roots.append(brentq(f, x[k], x[k + 1]))
        except (RuntimeError, ValueError):
            roots.append(np.nan)
    return u.Quantity(roots if roots else [np.nan], u.TeV)


def plot_energies(energy_bounds: Any, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gammapy's plot grid: ``n_points`` log bins between the bounds (or a given energy axis);
    returns (edges, centres) in TeV."""
    if hasattr(energy_bounds, "edges") and hasattr(energy_bounds, "center") and hasattr(energy_bounds, "unit"):
        edges = np.asarray(u.Quantity(energy_bounds.edges, energy_bounds.unit).to_value(u.TeV), dtype=np.float64)
    else:
        bounds = _energy_tev(energy_bounds, "energy_bounds")
        if bounds.shape != (2,) or not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"energy_bounds must be two increasing positive energies, got {energy_bounds!r}")
        edges = np.geomspace(bounds[0], bounds[1], int(n_points) + 1)
    return edges, np.sqrt(edges[:-1] * edges[1:])


def numeric_integral(model: Any, energy_min: Any, energy_max: Any, energy_flux: bool = False) -> Any:
    """Gammapy's ``integrate_spectrum`` (log-log trapezoid on its grid) whatever the model, as
    Gammapy's ``integral_error`` / ``energy_flux_error`` integrate every sample."""
    from .spectral import integration_grid, trapz_loglog

    grid = jnp.asarray(integration_grid(energy_min, energy_max))
    values = model.dnde(grid) * (grid if energy_flux else 1.0)
    return jnp.sum(trapz_loglog(values, grid, axis=-1), axis=-1)


def sed_values(model: Any, sed_type: str, edges: np.ndarray, centers: np.ndarray, numeric: bool = False) -> Any:
    """The SED of ``model`` per bin in canonical units (jnp; traceable in the parameters); integrals
    analytic where the model has them, unless ``numeric`` (Gammapy's error path)."""
    if sed_type in ("dnde", "norm"):
        return model.dnde(jnp.asarray(centers))
    if sed_type == "e2dnde":
        return jnp.asarray(centers) ** 2 * model.dnde(jnp.asarray(centers))
    if sed_type in ("flux", "eflux") and numeric:
        return numeric_integral(model, edges[:-1], edges[1:], energy_flux=sed_type == "eflux")
    from .spectral import integration_grid

    grid = jnp.asarray(integration_grid(edges[:-1], edges[1:]))
    if sed_type == "flux":
        return model.integral_on_grid(grid)
    if sed_type == "eflux":
        return model.energy_flux_on_grid(grid)
    raise ValueError(f"Not a valid SED type: {sed_type!r} (dnde, e2dnde, flux, eflux)")


def sed_unit(model: Any, sed_type: str) -> u.UnitBase:
    base = parse_unit(model.dnde_unit)
    return {"dnde": base, "norm": base, "e2dnde": base * u.TeV**2, "flux": base * u.TeV, "eflux": base * u.TeV**2}[sed_type]


def _plot_setup(model: Any, energy_bounds: Any, sed_type: str, energy_power: int, n_points: int) -> Any:
    if model.is_norm_spectral_model:
        sed_type = "norm"
    if sed_type not in PLOT_UNITS:
        raise ValueError(f"Not a valid SED type: {sed_type!r} (dnde, e2dnde, flux, eflux)")
    edges, centers = plot_energies(energy_bounds, n_points)
    y_unit = parse_unit(PLOT_UNITS[sed_type]) * u.TeV**energy_power
    factor = (1.0 * sed_unit(model, sed_type) * u.TeV**energy_power).to_value(y_unit) * centers**energy_power
    return sed_type, edges, centers, y_unit, factor


def _format_axes(ax: Any, sed_type: str, energy_power: int, y_unit: u.UnitBase) -> None:
    ax.set_xlabel("Energy [$\\mathrm{TeV}$]")  # Gammapy's label
    quantity = f"e{energy_power} * {sed_type}" if energy_power > 0 else sed_type
    ax.set_ylabel(f"{quantity} [{y_unit.to_string('latex_inline')}]")  # Gammapy's label, "[$\\mathrm{}$]" for none
    ax.set_xscale("log", nonpositive="clip")
    ax.set_yscale("log", nonpositive="clip")


def plot(model: Any, energy_bounds: Any, ax: Any, sed_type: str, energy_power: int, n_points: int, **kwargs: Any) -> Any:
    import matplotlib.pyplot as plt

    sed_type, edges, centers, y_unit, factor = _plot_setup(model, energy_bounds, sed_type, energy_power, n_points)
    ax = plt.gca() if ax is None else ax
    values = np.asarray(sed_values(model, sed_type, edges, centers)) * factor
    ax.plot(centers, values, **kwargs)
    _format_axes(ax, sed_type, energy_power, y_unit)
    return ax


def plot_error(
    model: Any,
    energy_bounds: Any,
    covariance: Any,
    ax: Any,
    sed_type: str,
    energy_power: int,
    n_points: int,
    n_samples: int,
    random_state: Any,
    samples: Any,
    **kwargs: Any,
) -> Any:
    import matplotlib.pyplot as plt

    if not list(iter_parameters(model)):
        raise NotImplementedError("plot_error is not defined for models without parameter.")
    sed_type, edges, centers, y_unit, factor = _plot_setup(model, energy_bounds, sed_type, energy_power, n_points)
    ax = plt.gca() if ax is None else ax
    for key, default in (("facecolor", "black"), ("alpha", 0.2), ("linewidth", 0)):
        kwargs.setdefault(key, default)
    median, errn, errp = propagate(
        model, lambda m: sed_values(m, sed_type, edges, centers, numeric=True), covariance, n_samples, random_state, samples
    )
    ax.fill_between(centers, (median - errn) * factor, (median + errp) * factor, **kwargs)
    _format_axes(ax, sed_type, energy_power, y_unit)
    return ax
