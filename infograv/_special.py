"""Special functions that `jax.scipy.special` lacks, written for `jit` and `grad`."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["besselk", "sin", "cos", "tan"]


def besselk(nu: Any, x: Any, *, n_nodes: int = 256) -> Any:
    r"""Modified Bessel function of the second kind, $K_\nu(x)$, for real $\nu$ and $x > 0$.

    Uses the integral representation (DLMF 10.32.9)

    $$K_\nu(x) = \int_0^\infty e^{-x\cosh t}\cosh(\nu t)\,dt,$$

    evaluated by the trapezoidal rule on $[0, t_\max]$ with $\cosh t_\max = 1 + (60 + |\nu|
    t_\max)/x$-style cut-off; the integrand decays double-exponentially, so the rule converges
    exponentially fast (relative error below 1e-12 in float64 for $|\nu| \le 10$,
    $10^{-3} \le x \le 100$). Differentiable in `x` and `nu`.

    Arguments:
        nu: order, any shape broadcastable with `x`.
        x: argument, `x > 0` (non-positive `x` gives `inf`/`nan`, as `scipy.special.kv`).
        n_nodes: quadrature nodes.

    Returns:
        An array of the broadcast shape of `nu` and `x`.

    Example:
        >>> round(float(besselk(0.5, 1.0)), 6)  # sqrt(pi/2) e^-1 = 0.4610685...
        0.461069
    """
    nu = jnp.asarray(nu)
    x = jnp.asarray(x)
    dtype = jnp.result_type(nu.dtype, x.dtype) if jnp.issubdtype(nu.dtype, jnp.inexact) else x.dtype
    if not jnp.issubdtype(dtype, jnp.inexact):
        dtype = jnp.zeros(()).dtype
    nu, x = jnp.broadcast_arrays(nu.astype(dtype), x.astype(dtype))
    anu = jnp.abs(nu)
    safe_x = jnp.where(x > 0, x, 1.0)
    # exp(-x cosh t + nu t) is negligible once x cosh t - nu t > ~ 50.
    t_max = jnp.arccosh(1.0 + (60.0 + 2.0 * anu * anu) / safe_x) + 2.0
    s = jnp.linspace(0.0, 1.0, n_nodes, dtype=dtype)
    t = s[(None,) * jnp.ndim(t_max) + (slice(None),)] * t_max[..., None]
    f = jnp.exp(-safe_x[..., None] * jnp.cosh(t)) * jnp.cosh(anu[..., None] * t)
    h = t_max / (n_nodes - 1)
    val = h * (jnp.sum(f, axis=-1) - 0.5 * (f[..., 0] + f[..., -1]))
    return jnp.where(x > 0, val, jnp.where(x == 0, jnp.inf, jnp.nan))


# -- sin, cos, tan in float64 ------------------------------------------------------------------
# XLA's float64 sin and cos on CPU are scalar library calls (8–11 ns each here); these are the same
# functions as a branch-free polynomial that XLA vectorises (4–6× faster for sin and cos
# together), accurate to 2 ulp. Float32 and other inputs go to jax.numpy unchanged.


# π/2 = P1 + P2 + P3 + P4 to about 143 bits; P1, P2, P3 carry 30 significant bits each (the hex
# mantissas end in zeros), so that k·P1, k·P2, k·P3 are exact for integers |k| < 2²³ (Cody and
# Waite's reduction). tests/test_compile.py re-derives them from π at 256 bits.
_P = (
    float.fromhex("0x1.921fb54000000p+0"),
    float.fromhex("0x1.10b4611800000p-30"),
    float.fromhex("0x1.313198a000000p-61"),
    float.fromhex("0x1.701b839a25205p-92"),
)
# |k| < 2⁴³ keeps every partial product exact with k split into 2²¹-multiples and a remainder
_TRIG_LIMIT = 2.0**42 * math.pi
# Taylor coefficients; on |r| ≤ π/4 the first omitted terms are below 2⁻⁶⁰ of the result
_SIN_C = tuple((-1) ** i / math.factorial(2 * i + 1) for i in range(1, 10))
_COS_C = tuple((-1) ** i / math.factorial(2 * i) for i in range(1, 11))


def _horner(z: Any, coefs: tuple[float, ...]) -> Any:
    acc = coefs[-1] * jnp.ones_like(z)
    for c in coefs[-2::-1]:
        acc = acc * z + c
    return acc


def _sincos64(x: Any) -> tuple[Any, Any]:
    """(sin x, cos x) for float64 `x`; NaN where |x| ≥ 2⁴²π or x is not finite."""
    k = jnp.round(x * (2.0 / math.pi))
    k_hi = jnp.round(k * 2.0**-21) * 2.0**21
    k_lo = k - k_hi
    r = x
    for p in _P[:3]:  # each subtraction is exact (Sterbenz) until the last part
        r = r - k_hi * p
        r = r - k_lo * p
    r = r - k * _P[3]
    z = r * r
    s = r + r * z * _horner(z, _SIN_C)
    c = 1.0 + z * _horner(z, _COS_C)
    q = k - 4.0 * jnp.floor(k * 0.25)  # quadrant 0, 1, 2, 3
    sin = jnp.where(q == 0, s, jnp.where(q == 1, c, jnp.where(q == 2, -s, -c)))
    cos = jnp.where(q == 0, c, jnp.where(q == 1, -s, jnp.where(q == 2, -c, s)))
    ok = jnp.abs(x) < _TRIG_LIMIT
    return jnp.where(ok, sin, jnp.nan), jnp.where(ok, cos, jnp.nan)


def _is_f64(x: Any) -> bool:
    return x.dtype == jnp.float64


@jax.custom_jvp
def _sin64(x: Any) -> Any:
    return _sincos64(x)[0]


@_sin64.defjvp
def _sin64_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    s, c = _sincos64(x)
    return s, c * t


@jax.custom_jvp
def _cos64(x: Any) -> Any:
    return _sincos64(x)[1]


@_cos64.defjvp
def _cos64_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    s, c = _sincos64(x)
    return c, -s * t


def sin(x: Any) -> Any:
    r"""$\sin x$; for float64, a vectorised Cody–Waite reduction and polynomial (≤ 2 ulp).

    Float64 arguments with $|x| \ge 2^{42}\pi \approx 1.4\times10^{13}$ (where one ulp of
    $x$ is already a thousandth of a radian) give NaN, as do infinities. Other dtypes call
    `jax.numpy.sin`. Differentiable (`d sin = cos dx`).

    Example:
        >>> round(float(sin(0.5)), 6)
        0.479426
    """
    x = jnp.asarray(x)
    return _sin64(x) if _is_f64(x) else jnp.sin(x)


def cos(x: Any) -> Any:
    r"""$\cos x$; float64 as `sin` above, other dtypes `jax.numpy.cos`.

    Example:
        >>> round(float(cos(0.5)), 6)
        0.877583
    """
    x = jnp.asarray(x)
    return _cos64(x) if _is_f64(x) else jnp.cos(x)


def tan(x: Any) -> Any:
    r"""$\tan x = \sin x/\cos x$ with the float64 kernel of `sin` above.

    Example:
        >>> round(float(tan(0.5)), 6)
        0.546302
    """
    x = jnp.asarray(x)
    return _sin64(x) / _cos64(x) if _is_f64(x) else jnp.tan(x)
