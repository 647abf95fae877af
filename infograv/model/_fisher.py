"""Query sensitivity: the Fisher metric over query positions, its curvature, saddles and flips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..geometry import FunctionMetric
from ..geometry._metrics import fisher_from_energies
from ._potential import Potential
from ._query import Query
from ._selection import _check_query, energies, log_probs
from ._space import SemanticSpace

__all__ = [
    "fisher_metric",
    "fisher_eigenvalues",
    "scalar_curvature",
    "semantic_curvature",
    "SaddleResult",
    "find_saddle",
    "FlipResult",
    "find_flip",
]


def _energy_fn(space, query, potential, context, background) -> Callable[[jax.Array], jax.Array]:
    mass = query.mass

    def U(x: jax.Array) -> jax.Array:
        q = Query(x, mass, query.mass_model)
        return energies(space, q, potential, context=context, background=background)

    return U


def fisher_metric(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    *,
    context: tuple[Any, Any] | None = None,
    background: Any = None,
) -> Float[Array, "d d"]:
    r"""Fisher information metric of the selection law over the query position (formalism §6).

    $$g_F(x_q)_{ab} = \sum_i P_i\,\partial_a\log P_i\,\partial_b\log P_i
      = \mathrm{Cov}_P(\partial_a U, \partial_b U)/T^2,$$

    with $\partial_a = \partial/\partial x_q^a$ computed by forward-mode autodiff of the energies.
    $\mathrm{KL}(P(\cdot|x_q)\,\|\,P(\cdot|x_q+\delta)) = \tfrac12\delta^\top g_F\delta
    + O(|\delta|^3)$.

    Arguments:
        space: the semantic space.
        query: one query, `position` of shape `(d,)`.
        potential: the potential.
        context: optional extra sources, as in [`energies`][infograv.model.energies].
        background: optional `(N,)` per-token energies.
        T: temperature $> 0$.

    Returns:
        The symmetric positive semi-definite `(d, d)` matrix $g_F$.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import SemanticSpace, Query, Potential
        >>> s = SemanticSpace(jnp.array([[-1.0, 0.0], [1.0, 0.0]]))
        >>> g = fisher_metric(s, Query(jnp.zeros(2)), Potential("harmonic", 2), 1.0)
        >>> g.round(6).tolist()   # P = (1/2, 1/2), dU = (1, 0) and (-1, 0): Var = 1
        [[1.0, 0.0], [0.0, 0.0]]
    """
    _check_query(space, query)
    if query.position.ndim != 1:
        raise ValueError("query: fisher_metric takes one query position of shape (d,); use "
                         "jax.vmap for a batch.")
    U_of = _energy_fn(space, query, potential, context, background)
    x = query.position
    U = U_of(x)
    return fisher_from_energies(jax.jacfwd(U_of)(x), jnp.exp(log_probs(U, T)), T)


def fisher_eigenvalues(g: Any) -> Float[Array, "*batch d"]:
    r"""Eigenvalues of a (batch of) Fisher metric(s), ascending: the sensitivity spectrum."""
    return jnp.linalg.eigvalsh(jnp.asarray(g))


def scalar_curvature(metric_fn: Callable[[jax.Array], jax.Array], x: Any) -> Float[Array, ""]:
    r"""Scalar curvature $R$ of a Riemannian metric field $g(x)$ at `x`, by autodiff.

    $\Gamma^a_{bc} = \tfrac12 g^{ad}(\partial_b g_{dc} + \partial_c g_{db} - \partial_d g_{bc})$,
    $R^a{}_{bcd} = \partial_c\Gamma^a_{db} - \partial_d\Gamma^a_{cb} + \Gamma^a_{ce}\Gamma^e_{db}
    - \Gamma^a_{de}\Gamma^e_{cb}$, $R_{bd} = R^a{}_{bad}$, $R = g^{bd}R_{bd}$ (so the round sphere
    of radius $a$ in 2-D has $R = 2/a^2$). Cost $O(d^4)$ plus nested `jacfwd`: meant for $d \le 4$.

    Arguments:
        metric_fn: `x (d,) -> g (d, d)`, differentiable twice.
        x: the point `(d,)`.

    Example:
        >>> import jax.numpy as jnp
        >>> sphere = lambda x: jnp.diag(jnp.stack([jnp.ones_like(x[0]), jnp.sin(x[0]) ** 2]))
        >>> round(float(scalar_curvature(sphere, jnp.array([1.0, 0.3]))), 8)
        2.0
    """
    return _scalar_curvature(metric_fn, jnp.asarray(x))


@eqx.filter_jit
def _scalar_curvature(metric_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    return FunctionMetric(metric_fn, dim=x.shape[0]).ricci_scalar(x)


def semantic_curvature(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    *,
    context: tuple[Any, Any] | None = None,
    background: Any = None,
) -> Float[Array, ""]:
    r"""The "semantic curvature": scalar curvature of the Fisher metric at the query position.

    formalism §6. Uses [`scalar_curvature`][infograv.model.scalar_curvature] on
    $x \mapsto g_F(x)$ ([`fisher_metric`][infograv.model.fisher_metric]); needs $g_F$
    non-degenerate (at least $d+1$ tokens in general position, $d$ small).
    """

    def g(x: jax.Array) -> jax.Array:
        return fisher_metric(space, Query(x, query.mass, query.mass_model), potential, T,
                             context=context, background=background)

    return scalar_curvature(g, query.position)


class SaddleResult(eqx.Module):
    """A stationary point of a scalar field found by Newton's method on its gradient.

    Attributes:
        position: the point `(d,)`.
        value: the field there.
        gradient_norm: $|\\nabla f|$ there (small when converged).
        hessian_eigenvalues: ascending `(d,)`.
        index: number of negative Hessian eigenvalues (1 for a saddle between two wells in 2-D).
    """

    position: Float[Array, " d"]
    value: Float[Array, ""]
    gradient_norm: Float[Array, ""]
    hessian_eigenvalues: Float[Array, " d"]
    index: int = eqx.field(static=True)


def find_saddle(
    fn: Callable[[jax.Array], jax.Array],
    x0: Any,
    *,
    steps: int = 50,
    tol: float = 1e-9,
    throw: bool = True,
) -> SaddleResult:
    r"""Find a stationary point of the scalar field `fn` near `x0` (Newton on $\nabla f = 0$).

    Newton's method converges to the nearest stationary point of any index, so starting between
    two wells (e.g. the midpoint of two sources) finds the saddle separating them.

    Arguments:
        fn: `x (d,) -> scalar`, e.g. `lambda x: potential.field(x, sources, masses)`.
        x0: starting point `(d,)`.
        steps: Newton iterations.
        tol: convergence threshold on $|\nabla f|$.
        throw: raise `RuntimeError` if not converged (else return the last iterate).

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import Potential
        >>> phi = Potential("plummer", 2, epsilon=0.3)
        >>> src, m = jnp.array([[-1.0, 0.0], [1.0, 0.0]]), jnp.ones(2)
        >>> s = find_saddle(lambda x: phi.field(x, src, m), jnp.array([0.1, 0.0]))
        >>> s.position.round(4).tolist(), s.index
        ([0.0, 0.0], 1)
    """
    x = jnp.asarray(x0)
    grad = jax.grad(fn)
    hess = jax.hessian(fn)

    @jax.jit
    def newton(x):
        return x - jnp.linalg.solve(hess(x), grad(x))

    for _ in range(steps):
        x = newton(x)
        if float(jnp.linalg.norm(grad(x))) < tol:
            break
    gn = jnp.linalg.norm(grad(x))
    if throw and not float(gn) < tol:
        raise RuntimeError(
            f"find_saddle: no stationary point within {steps} Newton steps "
            f"(|grad| = {float(gn):.3g}); start closer (x0), raise steps, or pass throw=False."
        )
    ev = jnp.linalg.eigvalsh(hess(x))
    return SaddleResult(position=x, value=fn(x), gradient_norm=gn, hessian_eigenvalues=ev,
                        index=int(jnp.sum(ev < 0)))


class FlipResult(eqx.Module):
    """Where the top token changes along a segment of query positions.

    Attributes:
        t: the fraction along the segment $a \\to b$ where the top token flips.
        position: $a + t(b - a)$.
        token_before, token_after: top-1 token index just before and after the flip.
    """

    t: float = eqx.field(static=True)
    position: Float[Array, " d"]
    token_before: int = eqx.field(static=True)
    token_after: int = eqx.field(static=True)


def find_flip(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    target: Any,
    *,
    context: tuple[Any, Any] | None = None,
    background: Any = None,
    groups: Any = None,
    tol: float = 1e-10,
) -> FlipResult:
    r"""Find where, moving the query from `query.position` to `target`, the top token flips.

    The top token is $\arg\min_i U_i$ (independent of $T$). Bisection on the segment finds the
    first change to within `tol` (in the fraction $t$); near it an arbitrarily small query shift
    flips the most probable token (formalism §6). With `groups` (an `(N,)` integer array such as
    `space.labels`), the flip is where the *group* of the top token changes (e.g. the cluster),
    and `token_before`/`token_after` are the group ids.

    Raises:
        ValueError: both ends have the same top token (no flip to find), or `target` has the
            wrong shape.
    """
    _check_query(space, query)
    a = query.position
    b = jnp.asarray(target, a.dtype)
    if b.shape != a.shape:
        raise ValueError(f"target: expected shape {a.shape}, got {b.shape}.")

    def top(t: float) -> int:
        q = Query(a + t * (b - a), query.mass, query.mass_model)
        i = int(jnp.argmin(energies(space, q, potential, context=context,
                                    background=background)))
        return i if groups is None else int(groups[i])

    lo, hi = 0.0, 1.0
    t_lo, t_hi = top(lo), top(hi)
    if t_lo == t_hi:
        raise ValueError("target: the top token is the same at both ends; no flip to find.")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        tm = top(mid)
        if tm == t_lo:
            lo = mid
        else:
            hi, t_hi = mid, tm
    t = 0.5 * (lo + hi)
    return FlipResult(t=t, position=a + t * (b - a), token_before=t_lo, token_after=t_hi)
