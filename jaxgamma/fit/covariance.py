"""Covariance from the exact Hessian: ``C = 2 H^-1`` for the statistic ``-2 ln L``.

``H`` is the Hessian with respect to the *physical* free values (canonical units), computed in
Gammapy's factor space (``value = scale * factor``) for conditioning and mapped back with
``C = D C_factor D``, ``D = diag(scale)`` (Gammapy's ``Covariance.from_factor_matrix``). It is not
taken through the bound transform: a bounded parameter's error is that of the physical value.

The stored covariance (:class:`jaxgamma.models.sky.Covariance`) covers every parameter of the
models, frozen ones as zero rows and columns, as Gammapy's ``models.covariance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..models.sky import Covariance
from ..parameters import canonical_names, iter_parameters

__all__ = [
    "Eigen",
    "correlation",
    "covariance_from_eigen",
    "expand_covariance",
    "factor_covariance",
    "hessian_physical",
    "scaled_eigen",
]

# the smallest eigenvalue of the correlation-scaled Hessian (its eigenvalues lie in (0, n] when it is
# positive definite) below which the covariance is declared not positive definite
PD_THRESHOLD = 1e-11


def hessian_physical(fun: Any, x: jax.Array, scale: jax.Array, free: jax.Array) -> jax.Array:
    """Hessian of ``fun`` w.r.t. the factors ``x / scale`` of the free entries (pure JAX)."""
    from ..likelihood import value_grad_hessian

    scale = jnp.asarray(scale)
    _, _, h = value_grad_hessian(fun, jnp.asarray(x))
    both = free[:, None] & free[None, :]
    return jnp.where(both, h * (scale[:, None] * scale[None, :]), 0.0)


class Eigen(NamedTuple):
    """Eigen-decomposition of a Jacobi-scaled Hessian ``H / (d d^T)``."""

    d: jax.Array  # the scaling, ~sqrt(|diag H|)
    w: jax.Array  # eigenvalues
    v: jax.Array  # eigenvectors (columns)
    gv: jax.Array  # V^T (g / d)


def scaled_eigen(g: jax.Array, h: jax.Array, free: jax.Array) -> Eigen:
    """:class:`Eigen` of ``h`` restricted to the ``free`` coordinates (the others get identity rows
    and columns and a zero gradient). The scaling makes the eigenvalues dimensionless: those of a
    positive definite matrix lie in ``(0, n]``."""
    n = g.shape[0]
    both = free[:, None] & free[None, :]
    h = jnp.where(both, h, jnp.eye(n))
    g = jnp.where(free, g, 0.0)
    d = jnp.sqrt(jnp.abs(jnp.diag(h)))
    floor = jnp.maximum(1e-8 * jnp.max(d), 1e-150)
    d = jnp.where(free, jnp.where(d > floor, d, floor), 1.0)
    w, v = jnp.linalg.eigh(h / (d[:, None] * d[None, :]))
    return Eigen(d=d, w=w, v=v, gv=v.T @ (g / d))


def covariance_from_eigen(
    e: Eigen, scale: jax.Array, free: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(2 H^-1 in physical units, positive_definite, smallest eigenvalue)`` from the
    :func:`scaled_eigen` of the Hessian ``H`` w.r.t. the factors ``value / scale``.

    The entries of fixed parameters are zero; the whole matrix is NaN when ``H`` is not positive
    definite or not finite (as Gammapy's after a failed Hesse).
    """
    finite = jnp.all(jnp.isfinite(e.w)) & jnp.all(jnp.isfinite(e.v))
    min_eig = jnp.where(finite, jnp.min(e.w), jnp.nan)
    ok = finite & (min_eig > PD_THRESHOLD)
    inv_scaled = (e.v / jnp.where(ok, e.w, 1.0)) @ e.v.T
    scale = jnp.asarray(scale)
    cov = 2.0 * inv_scaled / (e.d[:, None] * e.d[None, :]) * (scale[:, None] * scale[None, :])
    cov = jnp.where(free[:, None] & free[None, :], cov, 0.0)
    return jnp.where(ok, cov, jnp.nan), ok, min_eig


def factor_covariance(
    fun: Any, x: jax.Array, scale: jax.Array, free: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(covariance, positive_definite, min_eigenvalue)`` of ``fun`` at ``x`` in physical units
    (standalone; the fit computes the same inside its loop)."""
    h = hessian_physical(fun, x, scale, free)
    return covariance_from_eigen(scaled_eigen(jnp.zeros_like(x), h, free), scale, free)


def correlation(covariance: Any) -> np.ndarray:
    """The correlation matrix of a covariance (NaN where a variance is zero or NaN)."""
    cov = np.asarray(covariance, dtype=np.float64)
    sigma = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sigma, sigma)
    diagonal = np.diag_indices_from(corr)
    corr[diagonal] = np.where(np.isfinite(corr[diagonal]), 1.0, corr[diagonal])
    return np.clip(corr, -1.0, 1.0)


def expand_covariance(models: Any, free_names: Sequence[str], covariance: Any) -> Covariance:
    """The covariance of the free parameters expanded to all parameters of ``models`` (frozen rows
    and columns zero), as Gammapy stores it on ``models.covariance``.

    The copies of a linked parameter (``free_names`` holds its first) are one variable: each gets
    the group's rows and columns (correlation 1 between copies), so that the sub-covariance of any
    model holds its correlations. Gammapy fills only the first copy's and leaves the others their
    variance alone.
    """
    named = list(iter_parameters(models))
    names = [name for name, _ in named]
    first = canonical_names(named)
    position = {name: i for i, name in enumerate(free_names)}
    rows = np.array([position.get(first[n], -1) for n in names], dtype=int)
    cov = np.asarray(covariance, dtype=np.float64)
    full = np.zeros((len(names), len(names)))
    free = np.flatnonzero(rows >= 0)
    full[np.ix_(free, free)] = cov[np.ix_(rows[free], rows[free])]
    return Covariance(names, full)
