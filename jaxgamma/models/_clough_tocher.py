"""Clough-Tocher interpolation of scattered 2-d data in jnp, as scipy's ``CloughTocher2DInterpolator``.

scipy (what Gammapy's ``griddata(..., method="cubic")`` runs) triangulates the nodes (Delaunay,
Qhull), estimates a gradient at each node by minimising the curvature of the interpolant along the
triangulation's edges (Nielson 1983, Renka & Cline 1984), and evaluates on each triangle a cubic
Bernstein-Bezier patch split at the centroid, C1 across the edges. Everything but the values is
geometry: the triangulation, the patches' edge vectors and cross-edge directions, and the
gradients, which are a *linear* function of the values (the minimum of a quadratic form). This
module computes that geometry once with numpy and scipy (:func:`clough_tocher_plan`) and evaluates
the interpolant as a pure jnp function of the values and the query points
(:func:`clough_tocher`), so it can be jitted, vmapped and differentiated in the values.

scipy solves the gradients' linear system by Gauss-Seidel iterations stopped at a relative change
of 1e-6; the plan solves it directly, so values differ from scipy's by that tolerance (from a
tightly converged scipy, by round-off). Points outside the triangulation's convex hull are NaN
(scipy's fill value); a point within scipy's tolerance ``100 eps`` of the hull, in barycentric
units, counts as inside.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CloughTocherPlan", "clough_tocher", "clough_tocher_plan"]

# scipy's _find_simplex tolerance on barycentric coordinates (its eps_broad serves degenerate
# triangles only, which a Delaunay triangulation of distinct, not collinear nodes does not have)
_EPS = 100 * float(np.finfo(np.float64).eps)


class CloughTocherPlan(NamedTuple):
    """The geometry of a Clough-Tocher interpolant (numpy arrays; ``T`` triangles, ``N`` nodes).

    ``simplices`` (T, 3) node indices; ``transform`` (T, 3, 2) Qhull's barycentric transform (the
    inverse matrix, then the offset); ``edges`` (T, 3, 2) the edge vectors ``e12, e23, e31``;
    ``cross`` (T, 3) scipy's ``g``, the direction across each edge, from the neighbours' centroids;
    ``gradient`` (N, 2, N) the linear map from the node values to the estimated gradients.
    """

    simplices: Any
    transform: Any
    edges: Any
    cross: Any
    gradient: Any


def _delaunay(points: np.ndarray) -> Any:
    from scipy.spatial import Delaunay  # a dependency of jax

    return Delaunay(points)


def _cross_directions(tri: Any) -> np.ndarray:
    """scipy's ``g[k]``: the direction ``V_4' - V_4`` (neighbour's centroid minus own) across edge k
    in the triangle's barycentric terms; -1/2 (towards the centroid) on the hull."""
    points = tri.points
    centroids = points[tri.simplices].mean(axis=1)
    n = len(tri.simplices)
    g = np.full((n, 3), -0.5)
    for t in range(n):
        for k in range(3):
            neighbour = tri.neighbors[t, k]
            if neighbour == -1:
                continue
            T = tri.transform[t]
            c01 = T[:2] @ (centroids[neighbour] - T[2])
            c = np.array([c01[0], c01[1], 1.0 - c01.sum()])
            i, j = [(2, 1), (0, 2), (1, 0)][k]
            g[t, k] = (2 * c[i] + c[j] - 1) / (2 - 3 * c[i] - 3 * c[j])
    return g


def _gradient_operator(tri: Any) -> np.ndarray:
    """The exact minimiser of scipy's edge-curvature functional, as a linear map of the values.

    At each node ``i`` scipy's Gauss-Seidel step solves ``Q_i y_i = -s_i`` with, over the edges
    ``e = x_j - x_i`` of length ``L``, ``Q_i = sum 4 e e^T / L^3`` and
    ``s_i = sum [6 (f_i - f_j) + 2 e.y_j] e / L^3``; its fixed point is the linear system
    ``Q_i y_i + sum_j (2 e e^T / L^3) y_j = -6 sum_j (f_i - f_j) e / L^3``, solved here for every
    unit vector of values at once.
    """
    points = tri.points
    n = len(points)
    indptr, indices = tri.vertex_neighbor_vertices
    A = np.zeros((n, 2, n, 2))
    B = np.zeros((n, 2, n))
    for i in range(n):
        for j in indices[indptr[i] : indptr[i + 1]]:
            e = points[j] - points[i]
            L3 = np.hypot(e[0], e[1]) ** 3
            outer = np.outer(e, e) / L3
            A[i, :, i, :] += 4 * outer
            A[i, :, j, :] += 2 * outer
            B[i, :, i] -= 6 * e / L3
            B[i, :, j] += 6 * e / L3
    solution = np.linalg.solve(A.reshape(2 * n, 2 * n), B.reshape(2 * n, n))
    return solution.reshape(n, 2, n)


def clough_tocher_plan(points: Any) -> CloughTocherPlan:
    """The interpolant's geometry for nodes ``points`` (N, 2), N >= 3 not all on a line."""
    points = np.asarray(points, dtype=np.float64)
    tri = _delaunay(points)
    if len(tri.coplanar):
        raise ValueError(f"nodes {sorted(set(tri.coplanar[:, 0].tolist()))} are in no triangle (coincident or degenerate nodes)")
    p = tri.points[tri.simplices]  # (T, 3, 2)
    edges = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 1], p[:, 0] - p[:, 2]], axis=1)
    return CloughTocherPlan(
        simplices=np.asarray(tri.simplices, dtype=np.int32),
        transform=np.asarray(tri.transform, dtype=np.float64),
        edges=edges,
        cross=_cross_directions(tri),
        gradient=_gradient_operator(tri),
    )


def _patch(b: jax.Array, f: jax.Array, df: jax.Array, edges: jax.Array, g: jax.Array) -> jax.Array:
    """scipy's ``_clough_tocher_2d_single`` on arrays of points: barycentric ``b`` (P, 3), values
    ``f`` (P, 3), gradients ``df`` (P, 3, 2), edge vectors (P, 3, 2), cross directions ``g`` (P, 3)."""
    e12, e23, e31 = edges[:, 0], edges[:, 1], edges[:, 2]

    def dot(grad, e):
        return grad[:, 0] * e[:, 0] + grad[:, 1] * e[:, 1]

    f1, f2, f3 = f[:, 0], f[:, 1], f[:, 2]
    df12, df21 = dot(df[:, 0], e12), -dot(df[:, 1], e12)
    df23, df32 = dot(df[:, 1], e23), -dot(df[:, 2], e23)
    df31, df13 = dot(df[:, 2], e31), -dot(df[:, 0], e31)

    c3000, c0300, c0030 = f1, f2, f3
    c2100 = (df12 + 3 * c3000) / 3
    c2010 = (df13 + 3 * c3000) / 3
    c1200 = (df21 + 3 * c0300) / 3
    c0210 = (df23 + 3 * c0300) / 3
    c1020 = (df31 + 3 * c0030) / 3
    c0120 = (df32 + 3 * c0030) / 3
    c2001 = (c2100 + c2010 + c3000) / 3
    c0201 = (c1200 + c0300 + c0210) / 3
    c0021 = (c1020 + c0120 + c0030) / 3
    c0111 = (g[:, 0] * (-c0300 + 3 * c0210 - 3 * c0120 + c0030) + (-c0300 + 2 * c0210 - c0120 + c0021 + c0201)) / 2
    c1011 = (g[:, 1] * (-c0030 + 3 * c1020 - 3 * c2010 + c3000) + (-c0030 + 2 * c1020 - c2010 + c2001 + c0021)) / 2
    c1101 = (g[:, 2] * (-c3000 + 3 * c2100 - 3 * c1200 + c0300) + (-c3000 + 2 * c2100 - c1200 + c2001 + c0201)) / 2
    c1002 = (c1101 + c1011 + c2001) / 3
    c0102 = (c1101 + c0111 + c0201) / 3
    c0012 = (c1011 + c0111 + c0021) / 3
    c0003 = (c1002 + c0102 + c0012) / 3

    # extended barycentric coordinates: the sub-triangle towards the centroid
    minval = jnp.min(b, axis=1)
    b1, b2, b3 = b[:, 0] - minval, b[:, 1] - minval, b[:, 2] - minval
    b4 = 3 * minval
    return (
        b1**3 * c3000 + 3 * b1**2 * b2 * c2100 + 3 * b1**2 * b3 * c2010 + 3 * b1**2 * b4 * c2001
        + 3 * b1 * b2**2 * c1200 + 6 * b1 * b2 * b4 * c1101 + 3 * b1 * b3**2 * c1020
        + 6 * b1 * b3 * b4 * c1011 + 3 * b1 * b4**2 * c1002 + b2**3 * c0300 + 3 * b2**2 * b3 * c0210
        + 3 * b2**2 * b4 * c0201 + 3 * b2 * b3**2 * c0120 + 6 * b2 * b3 * b4 * c0111
        + 3 * b2 * b4**2 * c0102 + b3**3 * c0030 + 3 * b3**2 * b4 * c0021 + 3 * b3 * b4**2 * c0012
        + b4**3 * c0003
    )  # fmt: skip


def _barycentric(transform: jax.Array, x: jax.Array) -> jax.Array:
    """Barycentric coordinates (..., 3) of points ``x`` (..., 2) in triangles ``transform`` (..., 3, 2)."""
    d = x - transform[..., 2, :]
    c0 = transform[..., 0, 0] * d[..., 0] + transform[..., 0, 1] * d[..., 1]
    c1 = transform[..., 1, 0] * d[..., 0] + transform[..., 1, 1] * d[..., 1]
    return jnp.stack([c0, c1, 1.0 - c0 - c1], axis=-1)


def clough_tocher(values: Any, x: Any, y: Any, plan: CloughTocherPlan) -> jax.Array:
    """The interpolant of node ``values`` (N,) at points ``(x, y)`` (any shape, broadcast), NaN
    outside the nodes' convex hull; differentiable in ``values``."""
    values = jnp.asarray(values)
    x, y = jnp.broadcast_arrays(jnp.asarray(x, dtype=values.dtype), jnp.asarray(y, dtype=values.dtype))
    shape = x.shape
    xy = jnp.stack([x.ravel(), y.ravel()], axis=-1)  # (P, 2)
    transform = jnp.asarray(plan.transform)
    # the triangle where the point is farthest inside (any containing one: the interpolant is C1)
    depth = jnp.min(_barycentric(transform[None], xy[:, None, :]), axis=-1)  # (P, T)
    best = jnp.argmax(depth, axis=1)
    inside = jnp.max(depth, axis=1) >= -_EPS
    b = _barycentric(transform[best], xy)
    vertices = jnp.asarray(plan.simplices)[best]  # (P, 3)
    gradients = jnp.einsum("iak,k->ia", jnp.asarray(plan.gradient), values)  # (N, 2)
    w = _patch(b, values[vertices], gradients[vertices], jnp.asarray(plan.edges)[best], jnp.asarray(plan.cross)[best])
    return jnp.where(inside, w, jnp.nan).reshape(shape)


@jax.jit
def clough_tocher_weights(x: Any, y: Any, plan: CloughTocherPlan) -> tuple[jax.Array, jax.Array]:
    """The interpolant at points ``(x, y)`` (1-d) as a matrix: ``weights`` (P, N) with
    ``clough_tocher(values, x, y) = weights @ values`` where ``inside`` (P,) is True (NaN
    elsewhere; those rows are 0). The interpolant is linear in the values: the weights are its
    forward-mode Jacobian (one compiled call per points and nodes shape)."""
    n_nodes = plan.gradient.shape[-1]
    inside = jnp.isfinite(clough_tocher(jnp.ones(n_nodes), x, y, plan))
    weights = jax.jacfwd(lambda v: clough_tocher(v, x, y, plan))(jnp.zeros(n_nodes))
    return weights, inside
