"""Low-level helpers for building tensors without simplification.

Tensors are built as nested Python lists of SymPy expressions and frozen into
`sympy.ImmutableDenseNDimArray` at the end. Only arithmetic and differentiation are used; the
one normalisation applied to every component is SymPy's automatic collection of like terms
(which is what makes `a - a` literally `0`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

import sympy as sp

ZERO = sp.S.Zero


def is_zero(expr: sp.Expr) -> bool:
    """`True` if `expr` is *structurally* zero (literally the number 0)."""
    return expr is ZERO or expr == 0


def nested(shape: Sequence[int], fill: Any = ZERO) -> Any:
    """A nested list of `shape` filled with `fill`."""
    if len(shape) == 1:
        return [fill] * shape[0]
    return [nested(shape[1:], fill) for _ in range(shape[0])]


def freeze(data: Any, shape: Sequence[int]) -> sp.ImmutableDenseNDimArray:
    """A nested list → an immutable SymPy array of `shape`."""
    flat = list(_flatten(data, len(shape)))
    return sp.ImmutableDenseNDimArray(flat, tuple(shape))


def _flatten(data: Any, depth: int) -> Iterable[Any]:
    if depth == 0:
        yield data
        return
    for item in data:
        yield from _flatten(item, depth - 1)


def dot(terms: Iterable[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    """`Σ a·b` over pairs, skipping pairs with a structural zero; one `Add` at the end."""
    parts = [a * b for a, b in terms if not (is_zero(a) or is_zero(b))]
    if not parts:
        return ZERO
    return sp.Add(*parts)


def block_structure(m: sp.MatrixBase) -> list[list[int]]:
    """Index groups of the block-diagonal structure of a symmetric matrix (connected
    components of the graph of nonzero off-diagonal entries)."""
    n = m.rows
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(n), 2):
        if not is_zero(m[i, j]):
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def block_inverse(m: sp.MatrixBase) -> tuple[sp.ImmutableDenseMatrix, sp.Expr]:
    """Inverse and determinant of a symmetric matrix, exploiting block-diagonal structure.

    1×1 blocks are inverted directly; larger blocks by the adjugate (cofactors over the
    Berkowitz determinant), with each entry put over a common denominator (`together`), which is
    cheap and keeps the entries compact.
    """
    n = m.rows
    inv = sp.zeros(n, n)
    det = sp.S.One
    for grp in block_structure(m):
        if len(grp) == 1:
            i = grp[0]
            inv[i, i] = 1 / m[i, i]
            det = det * m[i, i]
            continue
        blk = m.extract(grp, grp)
        bdet = blk.det(method="berkowitz")
        adj = blk.adjugate(method="berkowitz")
        for p, i in enumerate(grp):
            for q, j in enumerate(grp):
                if q < p:
                    inv[i, j] = inv[j, i]
                    continue
                inv[i, j] = adj[p, q] / bdet if not is_zero(adj[p, q]) else ZERO
        det = det * bdet
    return sp.ImmutableDenseMatrix(inv), det


def random_numeric_check(
    expr: sp.Expr, symbols: Sequence[sp.Symbol], *, trials: int = 3, seed: int = 0
) -> list[complex]:
    """Values of `expr` at `trials` random points in (0.2, 1.3) for every free symbol and
    every undefined function application (used only to detect identically vanishing
    determinants and asymmetries that are not structurally visible)."""
    rng = random.Random(seed)
    out: list[complex] = []
    funcs = sorted(expr.atoms(sp.core.function.AppliedUndef), key=sp.default_sort_key)
    derivs = sorted(expr.atoms(sp.Derivative), key=sp.default_sort_key)
    syms = sorted(expr.free_symbols | set(symbols), key=sp.default_sort_key)
    for _ in range(trials):
        sub: dict[Any, Any] = {d: _rand(rng) for d in derivs}
        sub.update({f: _rand(rng) for f in funcs})
        e = expr.xreplace(sub)
        e = e.xreplace({s: _rand(rng) for s in syms})
        try:
            out.append(complex(e.evalf(30)))
        except TypeError:
            pass
    return out


def _rand(rng: random.Random) -> sp.Float:
    # 40 significant digits, so that 30-digit evaluation is not limited by the inputs
    return sp.Float(f"{rng.uniform(0.2, 1.3):.17f}", 40)
