r"""Opt-in, time-boxed simplification for printing.

SymPy's `simplify` can run for minutes on a single curvature component and cannot be
interrupted safely from Python without signals (main thread only, Unix only) or helper threads
and processes (which would outlive a timeout). We use a signal-free, thread-free *budget*
instead: cheap simplifiers are tried in order of cost, the smallest result (by
`count_ops`) is kept, and no new step starts once the per-component budget is spent.

The steps, cheapest first: `cancel` (rational functions only), `together`, `factor_terms`,
`trigsimp` (when trigonometric functions occur), `factor`, and finally `simplify`.

A step that has started runs to its end, so the budget can be exceeded by the duration of one
step. To keep that overshoot small, a step is skipped when the component is large
(`count_ops` above `max_ops`, default 4000): huge components are returned as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sympy as sp

__all__ = ["simplified"]


def _steps(expr: sp.Expr) -> list[tuple[str, Callable[[sp.Expr], sp.Expr]]]:
    steps: list[tuple[str, Callable[[sp.Expr], sp.Expr]]] = []
    if expr.is_rational_function():
        steps.append(("cancel", sp.cancel))
    steps.append(("together", sp.together))
    steps.append(("factor_terms", sp.factor_terms))
    if expr.has(sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh):
        steps.append(("trigsimp", sp.trigsimp))
    steps.append(("factor", sp.factor))
    steps.append(("simplify", sp.simplify))
    return steps


def _simplify_one(expr: Any, timeout: float | int, max_ops: int) -> Any:
    expr = sp.sympify(expr)
    if not isinstance(expr, sp.Expr) or expr.is_Atom:
        return expr
    start = time.perf_counter()
    best, best_ops = expr, sp.count_ops(expr)
    if best_ops > max_ops:
        return expr
    for _, step in _steps(expr):
        if time.perf_counter() - start >= timeout:
            break
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

    For every component, cheap simplifiers are tried in order of cost (`cancel` for rational
    functions, `together`, `factor_terms`, `trigsimp`, `factor`, `simplify`); the smallest
    result is kept and no new step starts after `timeout` seconds. If nothing helps or there is
    no time, the component is returned unchanged, so the result always equals the input
    mathematically. No signal, thread or process is used: a running step is not interrupted, so
    one component can overshoot the budget by the length of one step (large components, with
    more than `max_ops` operations, are returned unchanged for that reason).

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
    if isinstance(obj, sp.MatrixBase):
        out = obj.applyfunc(lambda e: _simplify_one(e, timeout, max_ops))
        return sp.ImmutableDenseMatrix(out) if isinstance(obj, sp.ImmutableDenseMatrix) else out
    if isinstance(obj, sp.NDimArray):
        flat = [_simplify_one(e, timeout, max_ops) for e in sp.flatten(obj.tolist())] \
            if obj.shape else [_simplify_one(obj[()], timeout, max_ops)]
        return sp.ImmutableDenseNDimArray(flat, obj.shape)
    return _simplify_one(obj, timeout, max_ops)
