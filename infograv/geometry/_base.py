"""The abstract metric and curvature by automatic differentiation.

Conventions (shared with [`infograv.symbolic.Metric`][]): `christoffel(x)[a, b, c] = Γ^a_{bc}`,
`riemann(x)[a, b, c, d] = R^a_{bcd} = ∂_c Γ^a_{db} − ∂_d Γ^a_{cb} + Γ^a_{ce} Γ^e_{db}
− Γ^a_{de} Γ^e_{cb}`, `R_{bd} = R^a_{bad}`, `R = g^{bd} R_{bd}` (the unit 2-sphere has `R = +2`).
The geodesic equation is `ẍ^a + Γ^a_{bc} ẋ^b ẋ^c = 0`; `acceleration(x, v)` returns
`Γ^a_{bc} v^b v^c` (so `ẍ = −acceleration(x, ẋ)`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import Christoffels, MetricMatrix, Point, Riemann, Scalar, Vector
from ._dense import solve

__all__ = [
    "AbstractMetric",
    "christoffel_autodiff",
    "general_acceleration",
]


def _dense_solve(g: Float[Array, "n n"], w: Float[Array, " n"]) -> Float[Array, " n"]:
    # LU with partial pivoting in plain XLA operations (no LAPACK call: safe under `vmap` on a
    # CPU, see `_dense`), implicit derivatives; a metric is symmetric
    return solve(g, w, symmetric=True)


class AbstractMetric(eqx.Module):
    r"""A (pseudo-)Riemannian metric on an `n`-dimensional coordinate patch.

    Concrete metrics implement `metric(x)` (the `n × n` matrix `g_ab(x)`), `metric_vp(x, w)`
    (`g(x) w`), `inverse_vp(x, w)` (`g(x)^{-1} w`) and `acceleration(x, v)`
    (`Γ^a_{bc}(x) v^b v^c`). Structured metrics do the last three in `O(n)` work, so that
    geodesics stay cheap in hundreds of dimensions; curvature (`christoffel`, `riemann`,
    `ricci`, `ricci_scalar`, `einstein`) is computed by automatic differentiation of `metric`
    and builds `n × n × n (× n)` arrays, so it is meant for small `n`.

    Attributes:
        dim: the dimension `n` of the manifold (number of coordinates).
    """

    dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def metric(self, x: Point) -> MetricMatrix:
        """The metric components `g_ab(x)`, shape `(n, n)`."""

    @abc.abstractmethod
    def metric_vp(self, x: Point, w: Vector) -> Vector:
        """The metric applied to a vector, `g_ab(x) w^b`, shape `(n,)`."""

    @abc.abstractmethod
    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        """The inverse metric applied to a covector, `g^{ab}(x) w_b`, shape `(n,)`."""

    @abc.abstractmethod
    def acceleration(self, x: Point, v: Vector) -> Vector:
        """The geodesic acceleration `Γ^a_{bc}(x) v^b v^c`, shape `(n,)`."""

    def __hash__(self) -> int:
        # Equinox hashes a module by its fields, which fails on array fields ("unhashable
        # type"), and a bound method `metric.acceleration` is hashed through its module, so
        # `jax.jit(metric.acceleration)` failed for every metric holding arrays. Hash the
        # structure and each array leaf's shape and dtype instead: equal metrics (equinox's
        # `__eq__`, `tree_equal`) still hash equally, and equality decides between the rest.
        leaves, treedef = jax.tree_util.tree_flatten(self)
        key: list[Any] = []
        for leaf in leaves:
            if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
                key.append(("array", tuple(leaf.shape), str(leaf.dtype)))
            else:
                try:
                    hash(leaf)
                except TypeError:
                    key.append(("object", type(leaf)))
                else:
                    key.append(leaf)
        return hash((treedef, tuple(key)))

    def isometric_embedding(self) -> Callable[[Point], Any] | None:
        r"""A map `F: ℝⁿ → ℝᴹ` with `g(x) = ∂F(x)ᵀ ∂F(x)` exactly, or `None` (the default).

        Metrics that are a pull-back of the Euclidean metric return it
        ([`PullbackMetric`][infograv.geometry.PullbackMetric] its map,
        [`FisherMetric`][infograv.geometry.FisherMetric] and
        [`OutputMetric`][infograv.geometry.OutputMetric] the square roots of the probabilities).
        [`geodesic.path_energy`][infograv.geodesic.path_energy] then measures a discrete path
        by the chords `|F(p_{k+1}) − F(p_k)|`, which are never shorter than the distance
        between the images, instead of the midpoint rule, which can step over a region where
        the metric changes by orders of magnitude.

        Returns:
            `F`, `(n,) → (M,)`, or `None`.

        Example:
            >>> import jax.numpy as jnp
            >>> from infograv.geometry import ConformalMetric, PullbackMetric
            >>> ConformalMetric(lambda x: 0.0 * x[0], dim=2).isometric_embedding() is None
            True
            >>> f = PullbackMetric(lambda p: jnp.stack([p[0], p[1], p[0] * p[1]]), dim=2)
            >>> f.isometric_embedding()(jnp.array([2.0, 3.0])).tolist()
            [2.0, 3.0, 6.0]
        """
        return None

    # -- derived quantities (not overridden) ---------------------------------------------------
    def inner(self, x: Point, u: Vector, w: Vector) -> Scalar:
        """`g(u, w) = u^a g_ab(x) w^b` at `x`."""
        return jnp.dot(u, self.metric_vp(x, w))

    def christoffel(self, x: Point) -> Christoffels:
        """Christoffel symbols `Γ^a_{bc}` at `x` by autodiff, shape `(n, n, n)`."""
        return christoffel_autodiff(self.metric, x)

    def riemann(self, x: Point) -> Riemann:
        """Riemann tensor `R^a_{bcd}` at `x` by autodiff, shape `(n, n, n, n)`."""
        gam = self.christoffel(x)
        dgam = jax.jacfwd(self.christoffel)(x)  # [a, b, c, e] = ∂_e Γ^a_{bc}
        t1 = jnp.einsum("adbc->abcd", dgam)  # ∂_c Γ^a_{db}
        t2 = jnp.einsum("acbd->abcd", dgam)  # ∂_d Γ^a_{cb}
        t3 = jnp.einsum("ace,edb->abcd", gam, gam)
        t4 = jnp.einsum("ade,ecb->abcd", gam, gam)
        return t1 - t2 + t3 - t4

    def ricci(self, x: Point) -> MetricMatrix:
        """Ricci tensor `R_{bd} = R^a_{bad}` at `x`, shape `(n, n)`."""
        return jnp.einsum("abad->bd", self.riemann(x))

    def ricci_scalar(self, x: Point) -> Scalar:
        """Scalar curvature `R = g^{bd} R_{bd}` at `x`."""
        return jnp.trace(solve(self.metric(x), self.ricci(x), symmetric=True))

    def einstein(self, x: Point) -> MetricMatrix:
        """Einstein tensor `G_{ab} = R_{ab} − ½ R g_{ab}` at `x`, shape `(n, n)`."""
        return self.ricci(x) - 0.5 * self.ricci_scalar(x) * self.metric(x)


def christoffel_autodiff(metric_fn: Callable[[Point], MetricMatrix], x: Point) -> Christoffels:
    r"""Christoffel symbols of a metric function by forward-mode autodiff.

    $$\Gamma^a_{bc} = \tfrac12 g^{ad}(\partial_b g_{dc} + \partial_c g_{db} - \partial_d g_{bc})$$

    Arguments:
        metric_fn: `x ↦ g(x)`, a function returning an `(n, n)` array.
        x: the point, shape `(n,)`.

    Returns:
        `Γ[a, b, c] = Γ^a_{bc}`, shape `(n, n, n)`. Builds `n³` numbers: for small `n` only.
        The contraction with `g^{ad}` is a solve with the LU factor of `g` in plain XLA
        operations (no LAPACK call, so it is safe under `vmap` on a CPU).

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import christoffel_autodiff
        >>> polar = lambda x: jnp.diag(jnp.array([1.0, x[0] ** 2]))  # dr² + r² dθ²
        >>> gam = christoffel_autodiff(polar, jnp.array([2.0, 0.0]))
        >>> float(gam[0, 1, 1]), float(gam[1, 0, 1])  # Γ^r_θθ = −r, Γ^θ_rθ = 1/r
        (-2.0, 0.5)
    """
    g = metric_fn(x)
    dg = jax.jacfwd(metric_fn)(x)  # [i, j, k] = ∂_k g_ij
    low = jnp.transpose(dg, (0, 2, 1)) + dg - jnp.transpose(dg, (2, 0, 1))  # [d, b, c]
    n = g.shape[0]
    return 0.5 * solve(g, low.reshape(n, n * n), symmetric=True).reshape(low.shape)


def general_acceleration(metric: AbstractMetric, x: Point, v: Vector) -> Vector:
    r"""Matrix-free geodesic acceleration `Γ^a_{bc} v^b v^c` of any metric.

    With `g(x) v` as the only primitive,

    $$g_{ab}\,\Gamma^b_{cd} v^c v^d
      = (\partial_v g)_{ab} v^b - \tfrac12 \partial_a (v^c g_{cd} v^d),$$

    a forward-mode JVP of `x ↦ g(x) v` in the direction `v` and a reverse-mode gradient of
    `x ↦ vᵀ g(x) v`, followed by `inverse_vp`. The cost is a few evaluations of `metric_vp`:
    no `n × n × n` array is formed, so it is `O(n)` for a structured metric.

    Arguments:
        metric: any [`AbstractMetric`][infograv.geometry.AbstractMetric].
        x: point, shape `(n,)`.
        v: velocity, shape `(n,)`.

    Returns:
        `Γ^a_{bc}(x) v^b v^c`, shape `(n,)`.
    """
    _, dgv = jax.jvp(lambda y: metric.metric_vp(y, v), (x,), (v,))
    half_grad = 0.5 * jax.grad(lambda y: jnp.dot(v, metric.metric_vp(y, v)))(x)
    return metric.inverse_vp(x, dgv - half_grad)
