"""Potentials compiled from the SymPy kernels, with the parameters as differentiable leaves."""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import sympy as sp
from jaxtyping import Array, Float

from .._compile import SymbolicFunction, to_jax
from ..symbolic import kernels as _k

__all__ = ["Potential", "KERNEL_NAMES"]

KERNEL_NAMES = _k.KERNEL_NAMES

_DEFAULTS = {"G": 1.0, "epsilon": 0.1, "mu": 1.0, "sigma": 1.0, "k": 1.0}


_R2 = sp.Symbol("r2", positive=True)


def _fractional_in(expr: sp.Expr, s: sp.Symbol) -> bool:
    """Whether `expr` contains `s` raised to a non-integer power (i.e. is not smooth at s=0)."""
    return any(p.base == s and not p.exp.is_integer for p in expr.atoms(sp.Pow))


@functools.lru_cache(maxsize=64)
def _compiled(name: str, d: int) -> tuple[sp.Expr, sp.Symbol, tuple[str, ...], bool]:
    kern = _k.kernel(name, d)
    expr = kern.elementary()
    if _k.M not in expr.free_symbols:
        # per-unit-mass kernels (harmonic): a source of mass M has the field M * Phi
        expr = _k.M * expr
    params = tuple(s.name for s in sorted(expr.free_symbols - {_k.r, _k.M}, key=lambda s: s.name))
    singular = bool(sp.limit(kern.potential.subs({s: 1 for s in kern.params}), _k.r, 0,
                             "+").is_infinite)
    # The same expression as a function of r2 = r^2 (exact substitution r = sqrt(r2)): no square
    # root per token for kernels that depend on r^2 only (Plummer, Gaussian, harmonic).
    expr_s = expr.subs(_k.r, sp.sqrt(_R2))
    if singular or not _fractional_in(expr_s, _R2):
        return expr_s, _R2, params, singular
    return expr, _k.r, params, singular


class Potential(eqx.Module):
    r"""The field $\Phi(r; M)$ of one source of information mass $M$, compiled from SymPy.

    The expression is
    [`infograv.symbolic.kernels.kernel(name, d)`][infograv.symbolic.kernels.kernel] compiled
    with [`infograv.to_jax`][infograv.to_jax]; `G`, `epsilon`, `mu`, `sigma`, `k` (those the
    kernel uses) are differentiable leaves in `fn.params`, and the source mass $M$ is an
    argument (so queries and context tokens of different masses share one compiled function).
    Superposition (model.md §3) is the sum over sources, [`field`][infograv.model.Potential.field].

    The harmonic kernel $\tfrac12 k r^2$ has no $M$; a source of mass $M$ is given the field
    $M\cdot\tfrac12 k r^2$ (so $M = k = 1$ is the dot-product softmax, see `docs/model/choices.md`).

    Kernels that depend on $r^2$ only (Plummer, Gaussian, harmonic) are compiled as functions of
    $r^2$ (the exact substitution $r = \sqrt{r^2}$ done in SymPy), so no square root is taken per
    token and the gradient at $r = 0$ is finite (zero by symmetry); other smooth kernels use the
    double-`where` square root. Singular kernels (Newton and Yukawa for $d \ge 2$) are evaluated
    at $\max(r, r_{\min})$, a clamp applied to $r^2$; the gradient is then finite (zero inside
    $r_{\min}$).

    Arguments:
        kernel: `"newton"`, `"plummer"`, `"yukawa"`, `"gaussian"` or `"harmonic"`.
        d: the dimension of the semantic space.
        r_min: the clamp radius for singular kernels.
        **params: kernel parameters `G`, `epsilon`, `mu`, `sigma`, `k` (defaults 1, 0.1, 1, 1,
            1; only those the kernel uses are kept).

    Raises:
        ValueError: unknown `kernel` (listing the valid names), `d` < 1, non-positive parameters.

    Example:
        >>> import jax
        >>> phi = Potential("plummer", 3, G=1.0, epsilon=0.5)
        >>> round(float(phi(0.0, 2.0)), 6)   # -G M / eps
        -4.0
        >>> g = jax.grad(lambda p: p(1.0, 1.0))(phi)
        >>> round(float(g.fn.params["epsilon"]), 6)   # d/d eps of -1/sqrt(1 + eps^2)
        0.357771

    Reference: model.md §3; Vyshnyvetska, arXiv:2504.20951.
    """

    fn: SymbolicFunction
    kernel: str = eqx.field(static=True)
    d: int = eqx.field(static=True)
    singular: bool = eqx.field(static=True)
    r_min: float = eqx.field(static=True)

    def __init__(self, kernel: str = "plummer", d: int = 2, *, r_min: float = 1e-6,
                 **params: Any):
        if not isinstance(kernel, str) or kernel not in KERNEL_NAMES:
            raise ValueError(
                f"kernel: unknown kernel {kernel!r}; valid names are {', '.join(KERNEL_NAMES)}."
            )
        expr, arg, names, singular = _compiled(kernel, int(d) if isinstance(d, int) else d)
        unknown = sorted(set(params) - set(_DEFAULTS))
        if unknown:
            raise TypeError(
                f"params: unknown parameter(s) {', '.join(unknown)}; valid are "
                f"{', '.join(_DEFAULTS)}."
            )
        values = {}
        for n in names:
            v = params.get(n, _DEFAULTS[n])
            if not isinstance(v, jax.core.Tracer) and not float(v) > 0:
                raise ValueError(f"{n}: kernel parameters must be positive, got {v!r}.")
            values[n] = v
        symbols = {s.name: s for s in expr.free_symbols}
        self.fn = to_jax(expr, [arg, _k.M], params={symbols[n]: values[n] for n in names})
        self.kernel = kernel
        self.d = int(d)
        self.singular = singular
        if not r_min > 0:
            raise ValueError(f"r_min: must be positive, got {r_min!r}.")
        self.r_min = float(r_min)

    def __call__(self, r: Any, mass: Any) -> Float[Array, "*batch"]:
        r"""$\Phi(r; M)$, broadcasting `r` and `mass`."""
        r = jnp.asarray(r)
        if not jnp.issubdtype(r.dtype, jnp.floating):
            r = r.astype(jnp.zeros(()).dtype)
        return self.from_sq_distance(r * r, mass)

    def from_sq_distance(self, r2: Any, mass: Any) -> Float[Array, "*batch"]:
        r"""$\Phi(\sqrt{r^2}; M)$ from squared distances, with finite gradients at $r = 0$."""
        r2 = jnp.asarray(r2)
        mass = jnp.asarray(mass, r2.dtype)
        if self.singular:
            floor = jnp.asarray(self.r_min**2, r2.dtype)
            rad = jnp.where(r2 > floor, r2, floor)  # the compiled argument is r^2
        elif self.fn.arg_names[0] == _R2.name:
            rad = r2  # smooth in r^2: no square root, finite gradient at 0
        else:
            pos = r2 > 0
            rad = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)
        if self.kernel == "yukawa" and self.d % 2 == 0:
            # infograv.besselk broadcasts a scalar order against array arguments implicitly;
            # allow that rank promotion locally (the result's shape is that of `rad`).
            with jax.numpy_rank_promotion("allow"):
                return self.fn(rad, mass)
        return self.fn(rad, mass)

    def field(self, x: Any, sources: Any, masses: Any) -> Float[Array, "*batch"]:
        r"""Superposed potential $\Phi(x) = \sum_s \Phi(|x - x_s|; M_s)$ at points `x` `(..., d)`.

        Arguments:
            x: `(..., d)` evaluation points.
            sources: `(S, d)` source positions.
            masses: `(S,)` source masses.
        """
        x = jnp.asarray(x)
        sources = jnp.asarray(sources, x.dtype)
        masses = jnp.asarray(masses, x.dtype)
        if sources.ndim != 2 or sources.shape[1] != x.shape[-1]:
            raise ValueError(
                f"sources: expected shape (S, {x.shape[-1]}), got {sources.shape}."
            )
        if masses.shape != sources.shape[:1]:
            raise ValueError(f"masses: expected shape ({sources.shape[0]},), got {masses.shape}.")
        diff = x[..., None, :] - jnp.reshape(sources, (1,) * (x.ndim - 1) + sources.shape)
        r2 = jnp.sum(diff * diff, axis=-1)
        return jnp.sum(self.from_sq_distance(r2, jnp.broadcast_to(masses, r2.shape)), axis=-1)

    @property
    def params(self) -> dict[str, jax.Array]:
        """The kernel parameters, `{name: value}`."""
        return dict(self.fn.params)
