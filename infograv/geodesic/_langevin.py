"""Overdamped Langevin dynamics, the continuous twin of the selection law (formalism §9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from .._custom_types import Key, Point, Scalar
from ._checks import check_value

__all__ = ["LangevinSolution", "langevin"]


class LangevinSolution(eqx.Module):
    """The result of [`langevin`][infograv.geodesic.langevin].

    Attributes:
        ts: saved times, `(S,)`.
        xs: positions, `(S, n)`.
        result: a `diffrax.RESULTS` code.
    """

    ts: Float[Array, " S"]
    xs: Float[Array, "S n"]
    result: diffrax.RESULTS


def _drift(t: Any, x: Point, args: Any) -> Point:
    u, _ = args
    return -jax.grad(u)(x)


def _diffusion(t: Any, x: Point, args: Any) -> lx.DiagonalLinearOperator:
    _, temp = args
    scale = jnp.broadcast_to(jnp.sqrt(2.0 * temp), x.shape).astype(x.dtype)
    return lx.DiagonalLinearOperator(scale)


def langevin(
    potential: Callable[[Point], Scalar],
    x0: Any,
    temperature: Any,
    t1: float,
    *,
    key: Key,
    dt: float = 1e-3,
    ts: Any = None,
    solver: diffrax.AbstractSolver | None = None,
    throw: bool = True,
) -> LangevinSolution:
    r"""Integrate `dx = −∇U(x) dt + \sqrt{2T}\, dW` (Itô; additive noise).

    Its stationary density is `exp(−U/T)/Z`, the continuous version of the selection law
    `P_i ∝ exp(−U_i/T)`. Fixed step `dt` with `diffrax.Euler` (Euler–Maruyama) by default, on
    a Brownian path of independent increments (`diffrax.UnsafeBrownianPath`, valid with a
    constant step; forward-mode differentiable); the bias of the stationary density is
    `O(dt)`. `vmap` over `key` (and
    `x0`) for an ensemble.

    Arguments:
        potential: `U`, a function `(n,) → ()`.
        x0: initial point, `(n,)`.
        temperature: `T > 0`.
        t1: final time.
        key: a JAX PRNG key.
        dt: the step.
        ts: optional `(S,)` times to save at (multiples of `dt`); default the final state.
        solver: a diffrax SDE solver (default `diffrax.Euler()`).
        throw: raise if the solve fails.

    Returns:
        A [`LangevinSolution`][infograv.geodesic.LangevinSolution].

    Raises:
        ValueError: `temperature ≤ 0`, `dt ≤ 0`, or `x0` not a vector (at run time through
            `eqx.error_if` when `temperature` is traced).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infograv.geodesic import langevin
        >>> sol = langevin(lambda x: 0.5 * x @ x, jnp.zeros(2), 1.0, 1.0, key=jax.random.key(0))
        >>> sol.xs.shape
        (1, 2)
    """
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(float)
    if x0.ndim != 1:
        raise ValueError(f"x0: expected a vector of shape (n,), got {x0.shape}.")
    if not dt > 0:
        raise ValueError(f"dt: must be > 0, got {dt}.")
    temperature = jnp.asarray(temperature, x0.dtype)
    temperature = check_value(
        ~(temperature > 0), "temperature: T must be > 0 for Langevin dynamics.", temperature
    )
    dtype = x0.dtype
    n = x0.shape[0]

    bm = diffrax.UnsafeBrownianPath(shape=jax.ShapeDtypeStruct((n,), dtype), key=key)
    terms: diffrax.MultiTerm = diffrax.MultiTerm(
        diffrax.ODETerm(_drift), diffrax.ControlTerm(_diffusion, bm)
    )
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=jnp.asarray(ts, dtype))
    n_steps = int(round(float(t1) / dt)) + 1
    sol = diffrax.diffeqsolve(
        terms,
        solver if solver is not None else diffrax.Euler(),
        jnp.asarray(0.0, dtype),
        jnp.asarray(t1, dtype),
        jnp.asarray(dt, dtype),
        x0,
        args=(potential, temperature),
        saveat=saveat,
        stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=n_steps + 1,
        adjoint=diffrax.ForwardMode(),
        throw=throw,
    )
    return LangevinSolution(ts=sol.ts, xs=sol.ys, result=sol.result)
