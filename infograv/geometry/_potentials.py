"""Scalar fields on the semantic space, compiled from SymPy.

A scalar field here is any callable `x ↦ float` on points of shape `(n,)`. Two concrete ones are
provided: [`ScalarField`][infograv.geometry.ScalarField] (a SymPy expression in the coordinates)
and [`RadialPotential`][infograv.geometry.RadialPotential] (a SymPy kernel `k(r)` superposed
over centres, `Φ(x) = Σ_k w_k k(|x − c_k|)`, which works in any dimension).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float

from .._compile import SymbolicFunction, to_jax
from .._custom_types import Point, Scalar

__all__ = ["ScalarField", "RadialPotential", "safe_norm", "gaussian_kernel", "gaussian_wells"]


def safe_norm(x: Float[Array, "*batch n"]) -> Float[Array, "*batch"]:
    """Euclidean norm along the last axis with a finite gradient (zero) at the origin.

    The double-`where` pattern: the square root never sees a zero, so `jax.grad` stays finite.
    """
    s = jnp.sum(x * x, axis=-1)
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


class ScalarField(eqx.Module):
    r"""A scalar field `f(x¹, …, xⁿ)` given as a SymPy expression, compiled with
    [`infograv.to_jax`][].

    Attributes:
        fn: the compiled expression (its `params` are differentiable leaves).
        dim: number of coordinates `n`.

    Example:
        >>> import sympy as sp, jax.numpy as jnp
        >>> from infograv.geometry import ScalarField
        >>> x, y = sp.symbols("x y")
        >>> f = ScalarField.from_sympy(x**2 + 3 * y, [x, y])
        >>> float(f(jnp.array([2.0, 1.0])))
        7.0
    """

    fn: SymbolicFunction
    dim: int = eqx.field(static=True)

    @classmethod
    def from_sympy(
        cls,
        expr: sp.Expr,
        coords: Sequence[sp.Symbol],
        params: Mapping[sp.Symbol, Any] | None = None,
    ) -> ScalarField:
        """Compile `expr` (a scalar in `coords`, parameters in `params`)."""
        fn = to_jax(expr, list(coords), params=params)
        if fn.shape != ():
            raise ValueError(
                f"expr: a scalar field needs a scalar expression, got shape {fn.shape}."
            )
        return cls(fn=fn, dim=len(coords))

    def __call__(self, x: Point) -> Scalar:
        if x.shape != (self.dim,):
            raise ValueError(f"x: expected shape ({self.dim},), got {x.shape}.")
        return self.fn(*[x[i] for i in range(self.dim)])


class RadialPotential(eqx.Module):
    r"""A superposition of radial kernels, `Φ(x) = Σ_k w_k\, k(|x − c_k|)`.

    The kernel `k(r)` is a SymPy expression in one symbol `r`, compiled with
    [`infograv.to_jax`][]; the distance uses [`safe_norm`][infograv.geometry.safe_norm], so
    gradients are finite at a centre (the kernel itself may still diverge there).

    Attributes:
        kernel: the compiled `k(r)`; its `params` (e.g. a width) are differentiable.
        centres: `(K, n)` well centres.
        weights: `(K,)` weights (masses × couplings).

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import gaussian_wells
        >>> phi = gaussian_wells(jnp.zeros((1, 2)), jnp.ones(1), width=1.0)
        >>> float(phi(jnp.zeros(2)))
        -1.0
    """

    kernel: SymbolicFunction
    centres: Float[Array, "K n"]
    weights: Float[Array, " K"]

    def __check_init__(self) -> None:
        if self.centres.ndim != 2:
            raise ValueError(f"centres: expected shape (K, n), got {self.centres.shape}.")
        if self.weights.shape != self.centres.shape[:1]:
            raise ValueError(
                f"weights: expected shape ({self.centres.shape[0]},) to match centres, got "
                f"{self.weights.shape}."
            )
        if self.kernel.shape != () or len(self.kernel.arg_names) != 1:
            raise ValueError("kernel: must be a compiled scalar expression of one symbol r.")

    @property
    def dim(self) -> int:
        return int(self.centres.shape[1])

    def __call__(self, x: Point) -> Scalar:
        r = safe_norm(x[None, :] - self.centres)
        return jnp.sum(self.weights * self.kernel(r))


_R = sp.Symbol("r", nonnegative=True)
_SIGMA = sp.Symbol("sigma", positive=True)


def gaussian_kernel() -> tuple[sp.Symbol, sp.Expr, sp.Symbol]:
    r"""The Gaussian well kernel of formalism §3, `k(r) = −exp(−r²/(2σ²))`.

    Returns:
        `(r, expr, sigma)`: the radial symbol, the expression and the width symbol.
    """
    return _R, -sp.exp(-(_R**2) / (2 * _SIGMA**2)), _SIGMA


def gaussian_wells(centres: Any, depths: Any, width: float = 1.0) -> RadialPotential:
    r"""`Φ(x) = −Σ_k A_k exp(−|x − c_k|²/(2σ²))`: Gaussian wells, compiled from SymPy.

    Arguments:
        centres: `(K, n)` well centres.
        depths: `(K,)` depths `A_k` (positive for wells).
        width: the common width `σ > 0` (a differentiable parameter, `kernel.params["sigma"]`).

    Raises:
        ValueError: `width ≤ 0` or mismatched shapes.
    """
    if not np.all(np.asarray(width) > 0):
        raise ValueError(f"width: must be > 0, got {width}.")
    r, expr, sigma = gaussian_kernel()
    kern = to_jax(expr, [r], params={sigma: float(width)})
    centres = jnp.asarray(centres)
    if not jnp.issubdtype(centres.dtype, jnp.floating):
        centres = centres.astype(float)
    depths = jnp.asarray(depths, dtype=centres.dtype)
    if centres.ndim != 2 or depths.shape != centres.shape[:1]:
        raise ValueError(
            f"centres, depths: expected shapes (K, n) and (K,), got {centres.shape} and "
            f"{depths.shape}."
        )
    return RadialPotential(kernel=kern, centres=centres, weights=depths)

