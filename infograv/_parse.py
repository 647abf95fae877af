"""A restricted expression parser: text → SymPy, without executing anything.

User files (a metric in TOML for `infograv derive`) hold expressions as strings. They are never
passed to `eval` or `sympify`. Instead the text is parsed by Python's `ast` module in expression
mode and the tree is walked node by node; only the nodes below are accepted, and each is turned
into the SymPy object it denotes:

- numbers (integers up to 10**12, finite decimals), made exact (`0.5` → `1/2`);
- names declared by the caller (coordinates, parameters) and the constants `pi`, `E`;
- `+ - * / **` (and `^` as a synonym of `**`), unary `+`/`-`, parentheses;
- calls of whitelisted functions (`sin`, `exp`, `sqrt`, …) with positional arguments only.

Anything else — attribute access, subscripts, comprehensions, lambdas, keywords, strings, unknown
names or functions — raises `ExpressionError` naming what was found and what is allowed. Sizes
are bounded (text length, tree depth, numeric exponents) so that a hostile string cannot make
the parser or SymPy run for long.
"""

from __future__ import annotations

import ast
import math
import tomllib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy as sp

__all__ = ["ExpressionError", "parse_expression", "load_metric_toml", "FUNCTIONS"]

MAX_LENGTH = 4000
MAX_DEPTH = 60
MAX_EXPONENT = 64
MAX_INTEGER = 10**12

FUNCTIONS: dict[str, Any] = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "cot": sp.cot, "sec": sp.sec, "csc": sp.csc,
    "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
    "asinh": sp.asinh, "acosh": sp.acosh, "atanh": sp.atanh,
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs,
    "erf": sp.erf, "besselk": sp.besselk,
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class ExpressionError(ValueError):
    """An expression string is not in the accepted language."""


def _number(value: Any, text: str) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"{text!r}: only numbers, names and operators are allowed, "
                              f"found the literal {value!r}.")
    if isinstance(value, int):
        if abs(value) > MAX_INTEGER:
            raise ExpressionError(f"{text!r}: integer {value} exceeds {MAX_INTEGER}.")
        return sp.Integer(value)
    if not math.isfinite(value):
        raise ExpressionError(f"{text!r}: non-finite number {value!r}.")
    frac = Fraction(repr(value))
    return sp.Rational(frac.numerator, frac.denominator)


def _power(base: sp.Expr, exponent: sp.Expr, text: str) -> sp.Expr:
    if exponent.is_number:
        try:
            too_big = bool(abs(sp.N(exponent, 15)) > MAX_EXPONENT)
        except TypeError:  # complex exponents
            too_big = True
        if too_big:
            raise ExpressionError(
                f"{text!r}: numeric exponents must lie in [-{MAX_EXPONENT}, {MAX_EXPONENT}]."
            )
    return base**exponent


def parse_expression(
    text: str | int | float, symbols: Mapping[str, sp.Symbol] | Sequence[sp.Symbol]
) -> sp.Expr:
    """Parse `text` into a SymPy expression, allowing only `symbols`, numbers and safe functions.

    Arguments:
        text: the expression, e.g. `"-(1 - 2*M/r)"` or `"r^2*sin(theta)^2"`.
        symbols: the names that may appear, as `{name: Symbol}` or a sequence of Symbols.

    Returns:
        The SymPy expression (exact rationals for decimal literals).

    Raises:
        ExpressionError: a syntax error, a disallowed construct, an unknown name or function, or a
            size bound exceeded; the message names the culprit and what is allowed.

    Example:
        >>> import sympy as sp
        >>> r, M = sp.symbols("r M")
        >>> parse_expression("1 - 2*M/r", [r, M])
        -2*M/r + 1
        >>> try:
        ...     parse_expression("__import__('os')", [r])
        ... except ExpressionError as e:
        ...     print("rejected")
        rejected
    """
    if not isinstance(text, str):
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return _number(text, repr(text))
        raise ExpressionError(f"expected an expression string or a number, got {text!r}.")
    if isinstance(symbols, Mapping):
        names = dict(symbols)
    else:
        names = {s.name: s for s in symbols}
    clash = set(names) & (set(FUNCTIONS) | set(CONSTANTS))
    if clash:
        raise ExpressionError(f"symbol names {sorted(clash)} clash with built-in names.")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters.")
    try:
        # '^' means power (as in most papers); Python would read it as xor with lower precedence.
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{text!r}: not a valid expression ({exc.msg}).") from None

    def walk(node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"{text!r}: nested deeper than {MAX_DEPTH} levels.")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            return _number(node.value, text)
        if isinstance(node, ast.Name):
            if node.id in names:
                return names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            allowed = ", ".join(sorted(names)) or "none"
            raise ExpressionError(
                f"{text!r}: unknown name {node.id!r}; declared names: {allowed}; constants: pi, E."
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            val = walk(node.operand, depth + 1)
            return -val if isinstance(node.op, ast.USub) else val
        if isinstance(node, ast.BinOp) and (type(node.op) in _BINOPS or
                                            isinstance(node.op, ast.Pow)):
            a = walk(node.left, depth + 1)
            b = walk(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):  # bounded, see _power
                return _power(a, b, text)
            return _BINOPS[type(node.op)](a, b)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                fname = node.func.id if isinstance(node.func, ast.Name) else ast.dump(node.func)
                raise ExpressionError(
                    f"{text!r}: unknown function {fname!r}; allowed: "
                    f"{', '.join(sorted(FUNCTIONS, key=str.lower))}."
                )
            if node.keywords:
                raise ExpressionError(f"{text!r}: keyword arguments are not allowed.")
            args = [walk(a, depth + 1) for a in node.args]
            try:
                return FUNCTIONS[node.func.id](*args)
            except TypeError as exc:
                raise ExpressionError(f"{text!r}: {node.func.id}: {exc}.") from None
        raise ExpressionError(
            f"{text!r}: {type(node).__name__} is not allowed; use numbers, declared names, "
            "+ - * / ** ^, parentheses and the allowed functions."
        )

    return walk(tree, 0)


def load_metric_toml(path: str | Path) -> dict[str, Any]:
    """Read a user metric from a TOML file, parsing every expression with `parse_expression`.

    The file declares the coordinates, optional parameters, and either the full metric matrix
    or its diagonal:

    ```toml
    name = "Schwarzschild"            # optional
    coords = ["t", "r", "theta", "phi"]
    params = ["M"]                    # optional: symbols kept symbolic (all positive)
    diagonal = ["-(1 - 2*M/r)", "1/(1 - 2*M/r)", "r^2", "r^2*sin(theta)^2"]
    # or: metric = [["...", "0", ...], ...]  (n rows of n entries, strings or numbers)
    ```

    Returns:
        `{"name", "coords" (Symbols), "params" (Symbols), "components" (sympy Matrix)}`.

    Raises:
        ValueError: a missing or malformed key (named), both or neither of `metric`/`diagonal`,
            a wrong number of entries; `ExpressionError` for a bad expression (with its position).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"metric file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"metric file {str(path)!r} is not valid TOML: {exc}.") from None
    known = {"name", "coords", "params", "metric", "diagonal"}
    extra = set(data) - known
    if extra:
        raise ValueError(f"{path.name}: unknown keys {sorted(extra)}; allowed: {sorted(known)}.")
    coords = data.get("coords")
    if not isinstance(coords, list) or not coords or not all(isinstance(c, str) for c in coords):
        raise ValueError(f"{path.name}: 'coords' must be a non-empty list of names, e.g. "
                         '["t", "r", "theta", "phi"].')
    params = data.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ValueError(f"{path.name}: 'params' must be a list of names.")
    for nm in coords + params:
        if not nm.isidentifier() or nm.startswith("_"):
            raise ValueError(f"{path.name}: {nm!r} is not a valid symbol name.")
    if len(set(coords + params)) != len(coords + params):
        raise ValueError(f"{path.name}: coordinate and parameter names must be distinct.")
    csyms = [sp.Symbol(c, real=True) for c in coords]
    psyms = [sp.Symbol(p, positive=True) for p in params]
    table = {s.name: s for s in csyms + psyms}
    n = len(coords)
    has_m, has_d = "metric" in data, "diagonal" in data
    if has_m == has_d:
        raise ValueError(f"{path.name}: give exactly one of 'metric' (n×n) or 'diagonal' (n).")
    if has_d:
        diag = data["diagonal"]
        if not isinstance(diag, list) or len(diag) != n:
            raise ValueError(f"{path.name}: 'diagonal' must have {n} entries (one per coordinate).")
        comps = sp.diag(*[parse_expression(e, table) for e in diag])
    else:
        rows = data["metric"]
        if not isinstance(rows, list) or len(rows) != n or any(
            not isinstance(r, list) or len(r) != n for r in rows
        ):
            raise ValueError(f"{path.name}: 'metric' must be {n} rows of {n} entries.")
        comps = sp.Matrix([[parse_expression(e, table) for e in row] for row in rows])
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise ValueError(f"{path.name}: 'name' must be a string.")
    return {"name": name, "coords": csyms, "params": psyms, "components": comps}
