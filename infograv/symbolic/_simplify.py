r"""Opt-in, time-boxed simplification for printing.

SymPy's `simplify` can run for minutes on a single curvature component and cannot be
interrupted safely from Python without signals (main thread only, Unix only) or helper threads
and processes (which would outlive a timeout). We use a signal-free, thread-free *budget*
instead: cheap simplifiers are tried in order of cost, the smallest result (by
`count_ops`) is kept, and no new step starts once the per-component budget is spent.

The steps, cheapest first, each applied to the best result so far: `together`,
`factor_terms`, `cancel`, `factor`, `simplify` and `trigsimp` (when trigonometric functions
occur). Each step is tried only on expressions below a size for which it is known to be quick
(`count_ops` ≤ 2000 for `cancel`, 1000 for `factor`, 300 for `simplify`, 60 for `trigsimp`,
whose run time is the least predictable).

A step that has started runs to its end, so the budget can be exceeded by the duration of one
step; the size limits keep that overshoot small, and components larger than `max_ops`
(default 4000) are returned as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sympy as sp

__all__ = ["simplified"]


# (name, function, largest expression it is tried on, in `count_ops`)
_STEPS: list[tuple[str, Callable[[sp.Expr], sp.Expr], int]] = [
    ("together", sp.together, 10**9),
    ("factor_terms", sp.factor_terms, 10**9),
    ("cancel", sp.cancel, 2000),
    ("factor", sp.factor, 1000),
    ("simplify", sp.simplify, 300),
    ("trigsimp", sp.trigsimp, 60),
]


def _steps(expr: sp.Expr) -> list[tuple[str, Callable[[sp.Expr], sp.Expr], int]]:
    steps = list(_STEPS)
    if not expr.has(sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh):
        steps = [st for st in steps if st[0] != "trigsimp"]
    return steps


def _simplify_one(expr: Any, timeout: float | int, max_ops: int) -> Any:
    expr = sp.sympify(expr)
    if not isinstance(expr, sp.Expr) or expr.is_Atom:
        return expr
    start = time.perf_counter()
    best, best_ops = expr, sp.count_ops(expr)
    if best_ops > max_ops:
        return expr
    for _, step, limit in _steps(expr):
        if time.perf_counter() - start >= timeout:
            break
        if best_ops > limit:
            continue
        try:
            cand = step(best)
        except (sp.PolynomialError, ValueError, TypeError, NotImplementedError):
            continue
        ops = sp.count_ops(cand)
        if ops <= best_ops:
            best, best_ops = cand, ops
        if best.is_Atom:
            break
    return best


def simplified(obj: Any, timeout: float | int = 2.0, *, max_ops: int = 4000) -> Any:
    r"""Simplify an expression, Matrix or Array within a per-component time budget.

    For every component, simplifiers are tried in order of cost (`together`, `factor_terms`,
    `cancel`, `factor`, `simplify`, `trigsimp`, each only below a size for which it is quick);
    the smallest result is kept and no new step starts after `timeout` seconds. If nothing
    helps or there is no time, the component is returned unchanged, so the result always equals
    the input mathematically. No signal, thread or process is used: a running step is not
    interrupted, so one component can overshoot the budget by the length of one step (large
    components, with more than `max_ops` operations, are returned unchanged for that reason).

    Arguments:
        obj: a SymPy `Expr`, `Matrix` or N-dim `Array`.
        timeout: budget in seconds for each component (≥ 0).
        max_ops: components with more operations (`sympy.count_ops`) are left as they are.

    Returns:
        An object of the same kind and shape as `obj`.

    Raises:
        ValueError: `timeout` is negative.

    Example:
        >>> import sympy as sp
        >>> x = sp.Symbol("x")
        >>> simplified(sp.sin(x)**2 + sp.cos(x)**2 + x)
        x + 1
    """
    if timeout < 0:
        raise ValueError(f"timeout: must be ≥ 0 seconds, got {timeout}.")
    memo: dict[Any, Any] = {}

    def one(e: Any) -> Any:
        # equal components (e.g. Γ^a_bc and Γ^a_cb) are simplified once
        if e not in memo:
            memo[e] = _simplify_one(e, timeout, max_ops)
        return memo[e]

    if isinstance(obj, sp.MatrixBase):
        out = obj.applyfunc(one)
        return sp.ImmutableDenseMatrix(out) if isinstance(obj, sp.ImmutableDenseMatrix) else out
    if isinstance(obj, sp.NDimArray):
        flat = [one(e) for e in sp.flatten(obj.tolist())] if obj.shape else [one(obj[()])]
        return sp.ImmutableDenseNDimArray(flat, obj.shape)
    return one(obj)
