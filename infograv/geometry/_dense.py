r"""Dense factorisations in plain XLA operations: no LAPACK call, so safe under `vmap` on a CPU.

On the CPU, jaxlib's LAPACK kernels (Cholesky, LU, triangular solves, determinants, inverses)
split a batch (a `vmap`) over XLA's intra-op thread pool and block a pool thread until the
pieces finish. When a program runs as many such kernels at once as the pool has threads (2 on a
2-core machine), every pool thread waits for work queued behind it and the program never
finishes (`docs/geometry/real.md`, "The stall of the paper section"). Log and exp maps `vmap`
over pairs, so the factorisations they need are written here as loops of matrix–vector
products and rank-one updates, which never wait on the pool:

- `cholesky`, `solve_lower`, `cho_solve`: symmetric positive definite matrices;
- `lu_factor`, `lu_solve`, `solve`, `slogdet`: any square matrix (a pseudo-Riemannian
  metric too), by Gaussian elimination with partial pivoting, the algorithm of LAPACK's `getrf`;
- `qr_factor`, `lstsq`: least squares (tall) and least norm (wide) with a full-rank matrix, by
  Householder reflections (LAPACK's `geqrf` algorithm), and `DenseLeastSquares`, the same as a
  `lineax` solver (the steps of the shooting log map and the pullback metric's `Γ`).

`solve` differentiates implicitly (`jax.lax.custom_linear_solve`): its derivatives are solves
with the same factor, never derivatives of the elimination loop. Loops over `n ≤ 16` columns
are unrolled, so the small metrics of the toy geometries pay no loop overhead.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import lineax as lx
from jax.flatten_util import ravel_pytree

__all__ = ["cholesky", "solve_lower", "cho_solve", "lu_factor", "lu_solve", "solve", "slogdet",
           "qr_factor", "lstsq", "DenseLeastSquares"]

_UNROLL_MAX = 16


def _loop(n: int, body: Any, init: Any) -> Any:
    return jax.lax.fori_loop(0, n, body, init, unroll=bool(n <= _UNROLL_MAX))


def _square(a: Any, name: str = "a") -> Any:
    a = jnp.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {a.shape}.")
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(float)
    return a


def cholesky(a: Any) -> Any:
    r"""The lower Cholesky factor `L`, `L Lᵀ = A`, of a symmetric positive definite matrix.

    Column by column (Cholesky–Crout): `c = A[:, j] − L L[j, :]ᵀ`, `L[j, j] = √c_j`,
    `L[i, j] = c_i / L[j, j]` for `i > j`: `n` matrix–vector products, `O(n³)` work, in plain
    XLA operations (no LAPACK call, so it is safe under `vmap` on any number of CPU threads; see
    the module note). Only the lower triangle of `A` is read.

    Arguments:
        a: `(n, n)` symmetric positive definite.

    Returns:
        `(n, n)` lower triangular `L`; NaN where `A` is not positive definite (as LAPACK).

    Raises:
        ValueError: `a` not square.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import cholesky
        >>> cholesky(jnp.array([[4.0, 2.0], [2.0, 5.0]])).tolist()
        [[2.0, 0.0], [1.0, 2.0]]
    """
    return _cholesky(_square(a))


@jax.jit
def _cholesky(a: Any) -> Any:
    # jitted (here and below): called outside `jit`, a loop would be traced and compiled anew
    # at every call
    n = a.shape[0]
    idx = jnp.arange(n)

    def column(j: Any, low: Any) -> Any:
        c = a[:, j] - low @ low[j]  # columns ≥ j of `low` are still zero
        d = jnp.sqrt(c[j])
        return low.at[:, j].set(jnp.where(idx > j, c / d, jnp.where(idx == j, d, 0.0)))

    return _loop(n, column, jnp.zeros_like(a))


@functools.partial(jax.jit, static_argnames="reverse")
def _substitute(mat: Any, diag: Any, b: Any, reverse: bool) -> Any:
    # solve a triangular system row by row; `mat` may hold anything in the other triangle:
    # the unsolved entries of x are still zero, so the full row product is the partial sum
    n = mat.shape[0]

    def step(k: Any, x: Any) -> Any:
        j = n - 1 - k if reverse else k
        return x.at[j].set((b[j] - mat[j] @ x) / diag[j])

    return _loop(n, step, jnp.zeros(b.shape, jnp.result_type(mat, b)))


def _check_rhs(n: int, b: Any, what: str) -> Any:
    b = jnp.asarray(b)
    if b.shape[:1] != (n,) or b.ndim > 2:
        raise ValueError(f"b: expected shape ({n},) or ({n}, m) to match {what}, got {b.shape}.")
    return b


def solve_lower(low: Any, b: Any, *, transpose: bool = False) -> Any:
    r"""Solve `L x = b` (or `Lᵀ x = b` with `transpose=True`) by substitution, `L` lower
    triangular; `b` is `(n,)` or `(n, m)`. `O(n² m)` work in plain XLA operations (no LAPACK
    call, see the module note).

    Raises:
        ValueError: shapes that do not match.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import solve_lower
        >>> low = jnp.array([[2.0, 0.0], [1.0, 2.0]])
        >>> solve_lower(low, jnp.array([2.0, 5.0])).tolist()
        [1.0, 2.0]
        >>> solve_lower(low, jnp.array([4.0, 4.0]), transpose=True).tolist()
        [1.0, 2.0]
    """
    low = jnp.asarray(low)
    n = low.shape[0]
    if low.shape != (n, n):
        raise ValueError(f"low: expected a square matrix, got shape {low.shape}.")
    b = _check_rhs(n, b, "low")
    mat = low.T if transpose else low
    return _substitute(mat, jnp.diagonal(low), b, reverse=transpose)


def cho_solve(low: Any, b: Any) -> Any:
    """Solve `L Lᵀ x = b` given the factor `L` of [`cholesky`][infograv.geometry._dense.cholesky].

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import cho_solve, cholesky
        >>> a = jnp.array([[4.0, 2.0], [2.0, 5.0]])
        >>> [round(float(x), 5) for x in cho_solve(cholesky(a), a @ jnp.array([1.0, -1.0]))]
        [1.0, -1.0]
    """
    return solve_lower(low, solve_lower(low, b), transpose=True)


def lu_factor(a: Any) -> tuple[Any, Any, Any]:
    r"""`P A = L U` by Gaussian elimination with partial pivoting (LAPACK's `getrf`), in plain
    XLA operations (no LAPACK call, see the module note).

    Step `j` swaps the row of the largest `|A_ij|`, `i ≥ j`, into row `j`, stores the
    multipliers `L_ij = A_ij / A_jj` (`i > j`) and subtracts their rank-one update from the rows
    below: `n` steps of `O(n²)` work. A zero pivot (a singular matrix) leaves its column of
    multipliers zero and a zero on the diagonal of `U`, as LAPACK does.

    Arguments:
        a: `(n, n)`.

    Returns:
        `(lu, perm, sign)`: `lu` `(n, n)` holds `U` on and above the diagonal and the unit
        lower triangular `L` below it; `perm` `(n,)` the row order, `(P A)[i] = A[perm[i]]`;
        `sign` `±1`, the sign of the permutation.

    Raises:
        ValueError: `a` not square.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import lu_factor
        >>> lu, perm, sign = lu_factor(jnp.array([[1.0, 2.0], [4.0, 4.0]]))
        >>> lu.tolist(), perm.tolist(), float(sign)
        ([[4.0, 4.0], [0.25, 1.0]], [1, 0], -1.0)
    """
    return _lu(_square(a))


@jax.jit
def _lu(a: Any) -> tuple[Any, Any, Any]:
    n = a.shape[0]
    idx = jnp.arange(n)

    def step(j: Any, state: Any) -> Any:
        lu, perm, sign = state
        p = jnp.argmax(jnp.where(idx >= j, jnp.abs(lu[:, j]), -1.0))
        # swap rows j and p by selects (cheaper than a scatter at a traced row)
        row_j, row_p = lu[j], lu[p]
        lu = jnp.where((idx == p)[:, None], row_j[None, :], lu).at[j].set(row_p)
        perm_j, perm_p = perm[j], perm[p]
        perm = jnp.where(idx == p, perm_j, perm).at[j].set(perm_p)
        sign = jnp.where(p != j, -sign, sign)
        pivot = lu[j, j]
        safe = jnp.where(pivot != 0, pivot, 1.0)
        mult = jnp.where((idx > j) & (pivot != 0), lu[:, j] / safe, 0.0)
        lu = lu - jnp.outer(mult, jnp.where(idx > j, lu[j], 0.0))
        return lu.at[:, j].set(jnp.where(idx > j, mult, lu[:, j])), perm, sign

    init = (a, idx, jnp.ones((), a.dtype))
    return _loop(n, step, init)


def lu_solve(factor: tuple[Any, Any, Any], b: Any, *, transpose: bool = False) -> Any:
    r"""Solve `A x = b` (or `Aᵀ x = b` with `transpose=True`) given `lu_factor(A)`; `b` is
    `(n,)` or `(n, m)`. Two substitutions, `O(n² m)`, no LAPACK call.

    Raises:
        ValueError: shapes that do not match.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import lu_factor, lu_solve
        >>> a = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        >>> [round(float(x), 5) for x in lu_solve(lu_factor(a), jnp.array([5.0, 11.0]))]
        [1.0, 2.0]
        >>> [round(float(x), 5) for x in lu_solve(lu_factor(a), a.T @ jnp.array([1.0, 2.0]),
        ...                                       transpose=True)]
        [1.0, 2.0]
    """
    lu, perm, _ = factor
    n = lu.shape[0]
    b = _check_rhs(n, b, "the factor")
    ones = jnp.ones((n,), lu.dtype)
    if not transpose:
        # L U x = P b: forward with the unit lower triangle, back with the upper one
        y = _substitute(lu, ones, b[perm], reverse=False)
        return _substitute(lu, jnp.diagonal(lu), y, reverse=True)
    # Aᵀ = Uᵀ Lᵀ P: Uᵀ y = b forward, Lᵀ z = y back, x[perm] = z
    y = _substitute(lu.T, jnp.diagonal(lu), b, reverse=False)
    z = _substitute(lu.T, ones, y, reverse=True)
    return jnp.zeros_like(z).at[perm].set(z)


def solve(a: Any, b: Any, *, symmetric: bool = False) -> Any:
    r"""`x = A⁻¹ b` for a square `A` and `b` of shape `(n,)` or `(n, m)`, by
    [`lu_factor`][infograv.geometry._dense.lu_factor] (no LAPACK call, see the module note).

    Derivatives are implicit (`jax.lax.custom_linear_solve`): `dx = A⁻¹(db − dA x)`, solved
    with the same factor; nothing is differentiated through the elimination. `symmetric=True`
    (a metric) reuses the solve for the transpose.

    Raises:
        ValueError: `a` not square, or `b` of the wrong shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import solve
        >>> g = jnp.array([[2.0, 1.0], [1.0, 3.0]])
        >>> [round(float(x), 5) for x in solve(g, jnp.array([3.0, 4.0]), symmetric=True)]
        [1.0, 1.0]
    """
    a = _square(a)
    b = _check_rhs(a.shape[0], b, "a")
    if b.dtype != a.dtype:
        dtype = jnp.promote_types(a.dtype, b.dtype)
        a, b = a.astype(dtype), b.astype(dtype)
    factor = lu_factor(jax.lax.stop_gradient(a))

    def matvec(x: Any) -> Any:
        return a @ x

    def forward(_: Any, r: Any) -> Any:
        return lu_solve(factor, r)

    def backward(_: Any, r: Any) -> Any:
        return lu_solve(factor, r, transpose=True)

    return jax.lax.custom_linear_solve(matvec, b, forward, None if symmetric else backward,
                                       symmetric=symmetric)


def slogdet(a: Any) -> tuple[Any, Any]:
    r"""Sign and `log|det A|` of a square matrix, `det A = sign · exp(logabsdet)`, from the
    diagonal of [`lu_factor`][infograv.geometry._dense.lu_factor]:
    `det A = sign(P) Π_j U_jj` (no LAPACK call, see the module note). A singular matrix gives
    sign `0` and `−∞`, as `jnp.linalg.slogdet`.

    Raises:
        ValueError: `a` not square.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import slogdet
        >>> sign, logdet = slogdet(jnp.array([[0.0, 2.0], [3.0, 1.0]]))
        >>> float(sign), round(float(jnp.exp(logdet)), 5)
        (-1.0, 6.0)
    """
    lu, _, sign = lu_factor(a)
    diag = jnp.diagonal(lu)
    sign = sign * jnp.prod(jnp.sign(diag))
    return sign, jnp.sum(jnp.log(jnp.abs(diag)))


def qr_factor(a: Any) -> tuple[Any, Any]:
    r"""`A = Q R` of a tall `(m, n)` matrix, `m ≥ n`, by Householder reflections (LAPACK's
    `geqrf` algorithm) in plain XLA operations (no LAPACK call, see the module note).

    Step `j` reflects rows `j … m−1` by `H_j = I − 2 u_j u_jᵀ`, `|u_j| = 1`, chosen to zero
    column `j` below the diagonal (the sign that avoids cancellation): `n` rank-one updates of
    `O(m n)` work. `Q = H_0 H_1 ⋯ H_{n−1}` is kept as its reflectors.

    Arguments:
        a: `(m, n)`, `m ≥ n`.

    Returns:
        `(r, u)`: `r` `(n, n)` upper triangular (`R`), `u` `(n, m)` the unit reflectors `u_j`
        (zero where column `j` needs no reflection).

    Raises:
        ValueError: `a` not two-dimensional or wider than tall.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import qr_factor
        >>> r, u = qr_factor(jnp.array([[3.0, 1.0], [4.0, 2.0], [0.0, 2.0]]))
        >>> [[round(abs(float(x)), 4) for x in row] for row in r]
        [[5.0, 2.2], [0.0, 2.0396]]
    """
    a = jnp.asarray(a)
    if a.ndim != 2 or a.shape[0] < a.shape[1]:
        raise ValueError(f"a: expected a (m, n) matrix with m ≥ n, got shape {a.shape}.")
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(float)
    return _qr(a)


@jax.jit
def _qr(a: Any) -> tuple[Any, Any]:
    m, n = a.shape
    rows = jnp.arange(m)

    def step(j: Any, state: Any) -> Any:
        mat, refl = state
        x = jnp.where(rows >= j, mat[:, j], 0.0)
        norm = jnp.sqrt(jnp.sum(x * x))
        top = mat[j, j]
        alpha = -jnp.where(top >= 0, 1.0, -1.0) * norm
        u = x - jnp.where(rows == j, alpha, 0.0)
        un = jnp.sqrt(jnp.sum(u * u))
        u = jnp.where(un > 0, u / jnp.where(un > 0, un, 1.0), 0.0)
        mat = mat - 2.0 * jnp.outer(u, u @ mat)
        return mat, refl.at[j].set(u)

    mat, refl = _loop(n, step, (a, jnp.zeros((n, m), a.dtype)))
    return jnp.triu(mat[:n]), refl


def _apply_q(refl: Any, b: Any, transpose: bool) -> Any:
    # Qᵀ b = H_{n−1} ⋯ H_0 b; Q b = H_0 ⋯ H_{n−1} b
    n = refl.shape[0]

    def step(k: Any, y: Any) -> Any:
        u = refl[k if transpose else n - 1 - k]
        # y − 2 u (uᵀ y), for a vector or the columns of a matrix
        return y - 2.0 * jnp.tensordot(u, u @ y, axes=0)

    return _loop(n, step, b)


def lstsq(a: Any, b: Any) -> Any:
    r"""The least-squares solution `argmin_x |A x − b|` of a tall full-rank `A` `(m, n)`,
    `m ≥ n`, or the least-norm solution of `A x = b` of a wide full-rank one, by
    [`qr_factor`][infograv.geometry._dense.qr_factor] (no LAPACK call, see the module note).

    Tall: `x = R⁻¹ (Qᵀ b)[:n]`. Wide: with `Aᵀ = Q R`, `x = Q (R⁻ᵀ b)`. `b` is `(m,)` or
    `(m, k)`. Not differentiated implicitly: use it inside a solver, or for values.

    Raises:
        ValueError: `a` not two-dimensional, or `b` of the wrong shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry._dense import lstsq
        >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> [round(float(x), 5) for x in lstsq(a, jnp.array([1.0, 1.0, 3.0]))]
        [1.33333, 1.33333]
        >>> [round(float(x), 5) for x in lstsq(jnp.array([[1.0, 1.0]]), jnp.array([2.0]))]
        [1.0, 1.0]
    """
    a = jnp.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"a: expected a (m, n) matrix, got shape {a.shape}.")
    b = _check_rhs(a.shape[0], b, "a")
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(float)
    b = b.astype(a.dtype)
    if a.shape[0] >= a.shape[1]:
        r, refl = _qr(a)
        return _tall_solve(r, refl, b)
    r, refl = _qr(a.T)
    return _wide_solve(r, refl, b)


@jax.jit
def _tall_solve(r: Any, refl: Any, b: Any) -> Any:
    n = r.shape[0]
    return _substitute(r, jnp.diagonal(r), _apply_q(refl, b, transpose=True)[:n], reverse=True)


@jax.jit
def _wide_solve(r: Any, refl: Any, b: Any) -> Any:
    # A = Rᵀ Qᵀ (Q thin, m' = a.shape[1] rows): x = Q_thin R⁻ᵀ b
    y = _substitute(r.T, jnp.diagonal(r), b, reverse=False)
    m = refl.shape[1]
    pad = jnp.zeros((m - y.shape[0],) + y.shape[1:], y.dtype)
    return _apply_q(refl, jnp.concatenate([y, pad]), transpose=False)


def _unravel(structure: Any) -> Any:
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), structure)
    return ravel_pytree(zeros)[1]


class DenseLeastSquares(lx.AbstractLinearSolver):  # type: ignore[type-arg]
    r"""A `lineax` solver: least squares (tall operators) or least norm (wide ones) by
    Householder QR in plain XLA operations, [`lstsq`][infograv.geometry._dense.lstsq].

    What `lineax.QR` computes, without its LAPACK calls (`geqrf`, `ormqr`, triangular solves),
    so that it is safe inside `vmap`-ped solvers on a CPU (see the module note). The operator
    is materialised (`as_matrix`); full column (tall) or row (wide) rank is assumed. Used for
    the Levenberg–Marquardt steps of the shooting `log_map` at `n ≤ 32` and for
    `PullbackMetric`'s `Γ`.

    Example:
        >>> import jax.numpy as jnp, lineax as lx
        >>> from infograv.geometry._dense import DenseLeastSquares
        >>> op = lx.MatrixLinearOperator(jnp.array([[2.0, 0.0], [0.0, 4.0], [0.0, 0.0]]))
        >>> lx.linear_solve(op, jnp.array([2.0, 4.0, 1.0]), DenseLeastSquares()).value.tolist()
        [1.0, 1.0]
    """

    def init(self, operator: Any, options: Any) -> Any:
        del options
        return operator.as_matrix(), _unravel(operator.in_structure()), \
            _unravel(operator.out_structure())

    def compute(self, state: Any, vector: Any, options: Any) -> Any:
        del options
        matrix, unravel_in, _ = state
        flat, _ = ravel_pytree(vector)
        return unravel_in(lstsq(matrix, flat.astype(matrix.dtype))), lx.RESULTS.successful, {}

    def transpose(self, state: Any, options: Any) -> Any:
        matrix, unravel_in, unravel_out = state
        return (matrix.T, unravel_out, unravel_in), options

    def conj(self, state: Any, options: Any) -> Any:
        matrix, unravel_in, unravel_out = state
        return (matrix.conj(), unravel_in, unravel_out), options

    def assume_full_rank(self) -> bool:
        return True
