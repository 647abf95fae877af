"""Boundary-value geodesics (the log map): shooting with optimistix, and discrete path-energy
minimisation."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Float, Int

from .._custom_types import Point, Scalar, Vector
from ..geometry import AbstractMetric
from ..geometry._dense import DenseLeastSquares, slogdet
from ._checks import check_point, check_solved, check_value, is_traced

__all__ = ["RESULTS", "LogMapSolution", "log_map", "exp_map", "path_energy"]


class RESULTS(optx.RESULTS):  # pyright: ignore
    """Result codes of [`log_map`][infograv.geodesic.log_map] (extends `optimistix.RESULTS`)."""

    endpoint_mismatch = (
        "The geodesic found does not reach x1 to the requested tolerance: try "
        "method='hybrid' (path-energy minimisation, then shooting), more n_steps, or an init "
        "closer to the answer; x1 may also be beyond a conjugate point or outside the chart."
    )


class LogMapSolution(eqx.Module):
    """The result of [`log_map`][infograv.geodesic.log_map].

    Attributes:
        velocity: the initial velocity `log_{x0}(x1)`, `(n,)`: the geodesic with
            `x(0) = x0`, `ẋ(0) = velocity` reaches `x1` at parameter 1.
        path: the geodesic at `n_steps + 1` equally spaced parameters, `(n_steps + 1, n)`.
        length: `∫₀¹ |g(ẋ, ẋ)|^{1/2}`.
        energy: `½ ∫₀¹ g(ẋ, ẋ)` (`½ length²` for a geodesic).
        residual: `max |x(1) − x1|` (shooting, hybrid) or the largest component of the
            path-energy gradient (energy).
        residual_tol: the largest `residual` accepted as success (the `residual_tol`
            argument, or its default).
        result: a [`RESULTS`][infograv.geodesic.RESULTS] code; messages say what to change.
        num_steps: nonlinear-solver iterations.
    """

    velocity: Float[Array, " n"]
    path: Float[Array, "K n"]
    length: Float[Array, ""]
    energy: Float[Array, ""]
    residual: Float[Array, ""]
    residual_tol: Float[Array, ""]
    result: RESULTS
    num_steps: Int[Array, ""]


def _rk4_path(metric: AbstractMetric, x0: Point, v0: Vector, n_steps: int):
    h = 1.0 / n_steps

    def f(y):
        x, v = y
        return v, -metric.acceleration(x, v)

    def step(y, _):
        k1 = f(y)
        k2 = f(jax.tree.map(lambda a, b: a + 0.5 * h * b, y, k1))
        k3 = f(jax.tree.map(lambda a, b: a + 0.5 * h * b, y, k2))
        k4 = f(jax.tree.map(lambda a, b: a + h * b, y, k3))
        y = jax.tree.map(
            lambda a, b1, b2, b3, b4: a + h / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4
        )
        return y, y

    _, (xs, vs) = jax.lax.scan(step, (x0, v0), None, length=n_steps)
    return jnp.concatenate([x0[None], xs]), jnp.concatenate([v0[None], vs])


def exp_map(metric: AbstractMetric, x0: Any, v0: Any, *, n_steps: int = 64) -> Float[Array, " n"]:
    """`exp_{x0}(v0)`: the geodesic from `x0` with velocity `v0` at parameter 1.

    Fixed-step classical Runge–Kutta (order 4) with `n_steps` steps: differentiable in both
    forward and reverse mode, which is what shooting needs.
    """
    x0 = check_point(metric, x0, "x0")
    v0 = check_point(metric, v0, "v0").astype(x0.dtype)
    return _rk4_path(metric, x0, v0, n_steps)[0][-1]


def path_energy(metric: AbstractMetric, path: Float[Array, "K n"]) -> Scalar:
    r"""Discrete path energy `½ K Σ_k |Δ_k|²` of `p_0 … p_K` (`K` segments): `½ ∫₀¹ g(ẋ, ẋ)` to
    second order in `1/K`.

    `|Δ_k|²` is the midpoint rule `Δ_kᵀ g(m_k) Δ_k`, `Δ_k = p_{k+1} − p_k`, `m_k` the
    midpoints; or, for a metric with an isometric embedding `F`
    ([`AbstractMetric.isometric_embedding`][infograv.geometry.AbstractMetric.isometric_embedding]:
    `PullbackMetric`, `FisherMetric`, `OutputMetric`), the squared chord
    `|F(p_{k+1}) − F(p_k)|²`. A chord is never shorter than the distance between the images, so
    a discrete path cannot "tunnel" through a region where the metric is tiny at the midpoints,
    as the midpoint rule can for the Fisher metric of peaked distributions
    (`docs/geometry/real.md`). `log_map(method="energy")` minimises this.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import ConformalMetric
        >>> from infograv.geodesic import path_energy
        >>> flat = ConformalMetric(lambda x: 0.0 * x[0], dim=2)
        >>> path = jnp.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
        >>> float(path_energy(flat, path))
        2.0
    """
    return 0.5 * (path.shape[0] - 1) * jnp.sum(segment_quads(metric, path))


def segment_quads(metric: AbstractMetric, path: Float[Array, "K n"]) -> jax.Array:
    """The squared segment lengths `|Δ_k|²` of a discrete path (the terms of `path_energy`):
    chords of the metric's isometric embedding where it has one, else the midpoint rule."""
    embed = metric.isometric_embedding()
    if embed is not None:
        f = jax.vmap(embed)(path)
        d = f[1:] - f[:-1]
        return jnp.sum(d * d, axis=1)
    return midpoint_quads(metric, path)


def midpoint_quads(metric: AbstractMetric, path: Float[Array, "K n"]) -> jax.Array:
    """The midpoint rule's squared segment lengths `Δ_kᵀ g(m_k) Δ_k`, any metric."""
    delta = path[1:] - path[:-1]
    return jax.vmap(metric.inner)(0.5 * (path[1:] + path[:-1]), delta, delta)


def _length(metric: AbstractMetric, xs: Any, vs: Any) -> tuple[Scalar, Scalar]:
    q = jax.vmap(metric.inner)(xs, vs, vs)
    w = jnp.ones(q.shape[0], q.dtype).at[0].set(0.5).at[-1].set(0.5) / (q.shape[0] - 1)
    return jnp.sum(w * jnp.sqrt(jnp.abs(q))), 0.5 * jnp.sum(w * q)


def log_map(
    metric: AbstractMetric,
    x0: Any,
    x1: Any,
    *,
    method: str = "shooting",
    n_steps: int = 64,
    init: Any = None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    max_steps: int = 100,
    residual_tol: float | None = None,
    throw: bool = True,
) -> LogMapSolution:
    r"""The geodesic between two points: the log map `v = log_{x0}(x1)`.

    Methods:
      - `"shooting"`: solve `exp_{x0}(v) = x1` for `v` with `optimistix.LevenbergMarquardt`
        (a damped Newton method through a fixed-step RK4 integration; the damping keeps it from
        diverging when the straight line is a poor start). For `n ≤ 32` the Jacobian is
        materialised by forward-mode autodiff and the step solved by a Householder QR
        (plain XLA operations, no LAPACK call: safe under `vmap`); above, the step is
        solved matrix-free by conjugate gradients on the normal equations (JVPs and VJPs
        only). Starts from `init` or the straight line `x1 − x0`.
      - `"energy"`: minimise the discrete path energy over the `n_steps − 1` interior points
        with `optimistix.LBFGS`, starting from the straight line; robust when shooting
        starts too far away; the velocity is the second-order one-sided difference at `x0`.
      - `"hybrid"`: `"energy"` for a starting guess, then `"shooting"` to polish it.

    Gradients with respect to `x0`, `x1` and the metric's parameters flow through the
    implicit function theorem (optimistix' implicit adjoint). `vmap` over pairs works.

    Arguments:
        metric: any [`AbstractMetric`][infograv.geometry.AbstractMetric].
        x0: start point, `(n,)`.
        x1: end point, `(n,)`.
        method: see above.
        n_steps: integration steps (shooting) or path segments (energy).
        init: optional initial velocity for shooting.
        rtol: relative tolerance of the nonlinear solver.
        atol: absolute tolerance of the nonlinear solver.
        max_steps: iteration budget (the energy method uses `50 × max_steps`).
        residual_tol: the largest `residual` reported as success; a larger one gives
            `RESULTS.endpoint_mismatch`. Default, shooting and hybrid:
            `atol + rtol · max|x1 − x0|`, the tolerance asked for: the geodesic found ends
            within it of `x1` (Levenberg–Marquardt converges quadratically, so the residual
            is usually near rounding). Default, energy: `1000 · K · (atol + rtol ·
            max(max|x1 − x0|, 1))` on the path-energy gradient, `K = n_steps`: L-BFGS stops
            on the size of its steps, not on the gradient, and a gradient of size `ε`
            moves the interior points by about `K ε / π²`, so the energy method's acceptance
            is looser than `rtol`/`atol`: set `residual_tol` to tighten it.
        throw: raise on failure; otherwise check `result` (a failure is never only a NaN).

    Returns:
        A [`LogMapSolution`][infograv.geodesic.LogMapSolution].

    Raises:
        ValueError: endpoints of the wrong shape, an unknown `method`, or an endpoint where
            the metric is singular or not finite (e.g. on a horizon or at a point mass).
        equinox.EquinoxRuntimeError: with `throw=True`, when the solve fails (outside `jit`
            its text is the reason itself; under `jit` equinox raises it inside its report).

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import ConformalMetric
        >>> from infograv.geodesic import log_map
        >>> flat = ConformalMetric(lambda x: 0.0 * x[0], dim=3)
        >>> round(float(log_map(flat, jnp.zeros(3), jnp.array([1.0, 2.0, 2.0])).length), 5)
        3.0
    """
    if method not in ("shooting", "energy", "hybrid"):
        raise ValueError(f"method: expected 'shooting', 'energy' or 'hybrid', got {method!r}.")
    if not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps: expected an int ≥ 2, got {n_steps!r}.")
    if residual_tol is not None and not float(residual_tol) > 0:
        raise ValueError(f"residual_tol: expected a positive float or None, got {residual_tol!r}.")
    x0 = check_point(metric, x0, "x0")
    x1 = check_point(metric, x1, "x1").astype(x0.dtype)
    x0, x1 = _check_endpoints(metric, x0, x1)

    v_init = x1 - x0 if init is None else check_point(metric, init, "init").astype(x0.dtype)
    tol = None if residual_tol is None else float(residual_tol)
    eager = not is_traced(metric, x0, x1, v_init)
    sol = _solve(metric, x0, x1, v_init, method, n_steps, rtol, atol, max_steps, tol,
                 throw and not eager)
    if throw and eager:
        # outside jit: raise here, with the reason as the error's text
        failed = sol.result != RESULTS.successful
        msg = f"log_map: {RESULTS[sol.result]}" if bool(failed) else ""  # type: ignore[misc]
        check_solved(failed, msg + f" (residual {float(sol.residual):.3g}, accepted up to "
                     f"{float(sol.residual_tol):.3g})", None)
    return sol


@eqx.filter_jit
def _solve(metric, x0, x1, v_init, method, n_steps, rtol, atol, max_steps, tol, throw):
    if method == "shooting":
        return _shoot(metric, x0, x1, v_init, n_steps, rtol, atol, max_steps, tol, throw)
    esol = _energy(metric, x0, x1, n_steps, rtol, atol, max_steps, tol if method == "energy"
                   else None, throw and method == "energy")
    if method == "energy":
        return esol
    return _shoot(metric, x0, x1, esol.velocity, n_steps, rtol, atol, max_steps, tol, throw)


def _check_endpoints(metric: AbstractMetric, x0: Point, x1: Point) -> tuple[Point, Point]:
    for name, x in (("x0", x0), ("x1", x1)):
        g = metric.metric(x)
        # det itself under/overflows at large n; LU in plain XLA operations: a LAPACK call here
        # can deadlock XLA's CPU thread pool when log maps are vmapped (geometry._dense)
        sign, logdet = slogdet(g)
        det_ok = jnp.all(jnp.isfinite(g)) & (sign != 0) & jnp.isfinite(logdet)
        if not is_traced(det_ok):
            det_ok = bool(det_ok)
        msg = (f"{name}: the metric is singular or not finite at this endpoint (on a horizon, "
               "at a point mass or outside the chart); move the endpoint.")
        if name == "x0":
            x0 = check_value(~jnp.asarray(det_ok), msg, x0)
        else:
            x1 = check_value(~jnp.asarray(det_ok), msg, x1)
    return x0, x1


def _finish(metric, xs, vs, residual, result, steps, tol, throw) -> LogMapSolution:
    ok = jnp.isfinite(residual) & (residual <= tol) & jnp.all(jnp.isfinite(vs[0]))
    result = RESULTS.promote(result)
    result = RESULTS.where(
        (result == RESULTS.successful) & ~ok, RESULTS.endpoint_mismatch, result
    )
    length, energy = _length(metric, xs, vs)
    velocity = vs[0]
    if throw:
        velocity = result.error_if(velocity, result != RESULTS.successful)
    return LogMapSolution(
        velocity=velocity, path=xs, length=length, energy=energy, residual=residual,
        residual_tol=jnp.asarray(tol, residual.dtype), result=result, num_steps=steps,
    )


class _ShootingResidual(eqx.Module):
    # a module (not a closure) so that jit caches hit across calls with equal settings
    n_steps: int = eqx.field(static=True)

    def __call__(self, v: Vector, args: Any) -> Vector:
        m, a, b = args
        return _rk4_path(m, a, v, self.n_steps)[0][-1] - b


class _PathEnergy(eqx.Module):
    def __call__(self, interior: Any, args: Any) -> Scalar:
        m, a, b = args
        return path_energy(m, jnp.concatenate([a[None], interior, b[None]]))


_DENSE_MAX_DIM = 32


def _step_solver(n: int) -> lx.AbstractLinearSolver:
    # small n: a dense Householder QR of the materialised Jacobian (plain XLA, no LAPACK call:
    # safe when log maps are vmapped, see geometry._dense); large n: matrix-free conjugate
    # gradients on the normal equations (one JVP and one VJP per iteration, no n × n matrix)
    if n <= _DENSE_MAX_DIM:
        return DenseLeastSquares()
    return lx.Normal(lx.CG(rtol=1e-12, atol=1e-12, max_steps=10 * n))


def _shoot(metric, x0, x1, v_init, n_steps, rtol, atol, max_steps, tol, throw) -> LogMapSolution:
    sol: optx.Solution = optx.least_squares(
        _ShootingResidual(n_steps),
        optx.LevenbergMarquardt(rtol=rtol, atol=atol, linear_solver=_step_solver(x0.shape[0])),
        v_init,
        args=(metric, x0, x1),
        max_steps=max_steps,
        throw=False,
        # derivatives by the implicit function theorem, solved without LAPACK as well
        adjoint=optx.ImplicitAdjoint(linear_solver=DenseLeastSquares()),
    )
    v = sol.value
    xs, vs = _rk4_path(metric, x0, v, n_steps)
    res = jnp.max(jnp.abs(xs[-1] - x1))
    if tol is None:
        tol = atol + rtol * jnp.max(jnp.abs(x1 - x0))
    return _finish(metric, xs, vs, res, sol.result, sol.stats["num_steps"], tol, throw)


def _energy(metric, x0, x1, n_steps, rtol, atol, max_steps, tol, throw) -> LogMapSolution:
    frac = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=x0.dtype)[1:-1, None]
    interior0 = x0[None, :] + frac * (x1 - x0)[None, :]

    objective = _PathEnergy()
    sol: optx.Solution = optx.minimise(
        objective,
        optx.LBFGS(rtol=rtol, atol=atol),
        interior0,
        args=(metric, x0, x1),
        max_steps=50 * max_steps,
        throw=False,
    )
    xs = jnp.concatenate([x0[None], sol.value, x1[None]])
    # velocities by second-order differences (one-sided at the ends)
    k = float(n_steps)
    inner = 0.5 * k * (xs[2:] - xs[:-2])
    first = 0.5 * k * (-3.0 * xs[0] + 4.0 * xs[1] - xs[2])
    last = 0.5 * k * (3.0 * xs[-1] - 4.0 * xs[-2] + xs[-3])
    vs = jnp.concatenate([first[None], inner, last[None]])
    grad = jax.grad(objective)(sol.value, (metric, x0, x1))
    res = jnp.max(jnp.abs(grad))
    if tol is None:
        tol = 1e3 * (atol + rtol * jnp.maximum(jnp.max(jnp.abs(x1 - x0)), 1.0)) * k
    return _finish(metric, xs, vs, res, sol.result, sol.stats["num_steps"], tol, throw)
