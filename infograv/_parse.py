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
import keyword
import math
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import sympy as sp

from .symbolic._metric import entry_problem

__all__ = ["ExpressionError", "parse_expression", "load_metric_toml", "normalise_name", "read_toml",
           "FUNCTIONS"]

MAX_LENGTH = 4000
MAX_DEPTH = 60
MAX_EXPONENT = 64
MAX_INTEGER = 10**12
MAX_BITS = 1024
MAX_NODES = 20000
MAX_DIM = 16
MAX_FILE_BYTES = 1_000_000

FUNCTIONS: dict[str, Any] = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "cot": sp.cot, "sec": sp.sec, "csc": sp.csc,
    "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
    "asinh": sp.asinh, "acosh": sp.acosh, "atanh": sp.atanh,
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs,
    "erf": sp.erf, "besselk": sp.besselk,
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_GROUP = {ast.Add: "sum", ast.Sub: "sum", ast.Mult: "product", ast.Div: "product"}
_NODE_NAMES = {
    "Attribute": "attribute access (a.b)", "Subscript": "subscripts (a[i])",
    "Compare": "comparisons (<, ==, …)", "BoolOp": "and/or", "Lambda": "lambda",
    "ListComp": "comprehensions", "GeneratorExp": "comprehensions", "SetComp": "comprehensions",
    "DictComp": "comprehensions", "List": "lists", "Tuple": "tuples", "Dict": "dicts",
    "Set": "sets", "IfExp": "if-expressions", "Starred": "starred arguments",
    "NamedExpr": "assignment (:=)", "JoinedStr": "f-strings", "Await": "await",
    "Yield": "yield", "YieldFrom": "yield", "Slice": "slices",
}


class ExpressionError(ValueError):
    """An expression string is not in the accepted language."""


def normalise_name(name: str) -> str:
    """A name as Python's parser reads it (Unicode NFKC: the ligature `ﬁ` becomes `fi`).

    Example:
        >>> normalise_name("\ufb01")
        'fi'
    """
    return unicodedata.normalize("NFKC", name)


def _snippet(text: str, node: ast.AST | None = None, limit: int = 40) -> str:
    """`at column C: 'source of node'` (shortened), or a shortened `text`."""
    seg = None
    col = getattr(node, "col_offset", None)
    if node is not None:
        seg = ast.get_source_segment(text, node)
    seg = seg if seg is not None else text
    seg = " ".join(seg.split())
    if len(seg) > limit:
        seg = seg[: limit - 1] + "…"
    return f"{seg!r}" + (f" (column {col + 1})" if col is not None else "")


def _number(value: Any, where: Where) -> sp.Expr:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = type(value).__name__
        raise ExpressionError(f"{_w(where)}: only numbers, names and operators are allowed, "
                              f"found a {kind} literal.")
    if isinstance(value, int):
        if abs(value) > MAX_INTEGER:
            raise ExpressionError(f"{_w(where)}: integer literals may not exceed {MAX_INTEGER} "
                                  "(10**12); write larger numbers as products or powers.")
        return sp.Integer(value)
    if not math.isfinite(value):
        raise ExpressionError(f"{_w(where)}: non-finite number {value!r}.")
    frac = Fraction(repr(value))
    if max(abs(frac.numerator), frac.denominator).bit_length() > MAX_BITS:
        raise ExpressionError(f"{_w(where)}: the number {value!r} needs more than {MAX_BITS} bits "
                              "as an exact fraction.")
    return sp.Rational(frac.numerator, frac.denominator)


Where = str | Callable[[], str]


def _w(where: Where) -> str:
    """The location text of a message, computed only when a message is made."""
    return where() if callable(where) else where


def _bits(x: sp.Expr) -> int:
    """Bits of an exact number (numerator and denominator), 0 for anything else."""
    if isinstance(x, sp.Integer):
        return int(x).bit_length()
    if isinstance(x, sp.Rational):
        return int(x.p).bit_length() + int(x.q).bit_length()
    return 0


def _check_size(expr: sp.Expr, where: Where) -> sp.Expr:
    """Bound every intermediate value: node count, exact-number bits, numeric exponents."""
    for i, node in enumerate(sp.preorder_traversal(expr)):
        if i > MAX_NODES:
            raise ExpressionError(f"{_w(where)}: the expression grows beyond {MAX_NODES} terms.")
        if isinstance(node, sp.Rational) and _bits(node) > MAX_BITS:
            raise ExpressionError(f"{_w(where)}: an exact number with more than {MAX_BITS} bits "
                                  "(beyond float64's range).")
        if isinstance(node, sp.Pow) and node.exp.is_Number and abs(node.exp) > MAX_EXPONENT:
            raise ExpressionError(f"{_w(where)}: makes the power {_short(node)} with exponent "
                                  f"{node.exp}; exponents (also combined, as in (x^a)^b) "
                                  f"must lie in [-{MAX_EXPONENT}, {MAX_EXPONENT}].")
    return expr


def _short(e: Any, limit: int = 40) -> str:
    text = str(e)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _power(base: sp.Expr, exponent: sp.Expr, where: Where) -> sp.Expr:
    if exponent.is_number:
        try:
            size = abs(float(sp.N(exponent, 15)))
        except TypeError:  # complex exponents
            size = math.inf
        if not size <= MAX_EXPONENT:
            raise ExpressionError(
                f"{_w(where)}: numeric exponents must lie in [-{MAX_EXPONENT}, {MAX_EXPONENT}]."
            )
        # an exact number raised to a power: estimate the result's size before computing it
        if base.is_Rational and _bits(base) * size > MAX_BITS:
            raise ExpressionError(
                f"{_w(where)}: the power would be an exact number of about "
                f"{int(_bits(base) * size)} bits; intermediate numbers are limited to "
                f"{MAX_BITS} bits."
            )
    return base**exponent


def parse_expression(
    text: str | int | float, symbols: Mapping[str, sp.Symbol] | Sequence[sp.Symbol]
) -> sp.Expr:
    """Parse `text` into a SymPy expression, allowing only `symbols`, numbers and safe functions.

    Bounds (each refused with `ExpressionError`): text length `MAX_LENGTH`, nesting depth
    `MAX_DEPTH` (parentheses, calls, powers and unary signs; a flat sum or product of any length
    counts as one level), integer literals up to `MAX_INTEGER`, numeric exponents in
    [-`MAX_EXPONENT`, `MAX_EXPONENT`] (also combined ones), every exact number in every
    intermediate result up to `MAX_BITS` bits, and every intermediate expression up to
    `MAX_NODES` nodes. Names are read as Python reads them, NFKC-normalised.

    Arguments:
        text: the expression, e.g. `"-(1 - 2*M/r)"` or `"r^2*sin(theta)^2"`.
        symbols: the names that may appear, as `{name: Symbol}` or a sequence of Symbols.

    Returns:
        The SymPy expression (exact rationals for decimal literals).

    Raises:
        ExpressionError: a syntax error, a disallowed construct, an unknown name or function, or a
            size bound exceeded; the message names the construct (with its column) and what is
            allowed.

    Example:
        >>> import sympy as sp

from .symbolic._metric import entry_problem
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
        raise ExpressionError(
            f"expected an expression string or a number, got a {type(text).__name__}.")
    if isinstance(symbols, Mapping):
        names = {normalise_name(k): v for k, v in symbols.items()}
    else:
        names = {normalise_name(s.name): s for s in symbols}
    clash = set(names) & (set(FUNCTIONS) | set(CONSTANTS))
    if clash:
        raise ExpressionError(f"symbol names {sorted(clash)} clash with built-in names.")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression of {len(text)} characters; at most {MAX_LENGTH}.")
    if "\x00" in text:
        raise ExpressionError("expression contains a NUL character.")
    # '^' means power (as in most papers); Python would read it as xor with lower precedence.
    source = text.strip().replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"not a valid expression{col} ({exc.msg}).") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels.") from None

    def walk(node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels (parentheses, calls, "
                                  f"powers, signs) near {_snippet(source, node)}.")
        if isinstance(node, ast.Expression):
            return walk(node.body, depth)
        if isinstance(node, ast.Constant):
            return _number(node.value, lambda: _snippet(source, node))
        if isinstance(node, ast.Name):
            if node.id in names:
                return names[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            allowed = ", ".join(sorted(names)) or "none"
            raise ExpressionError(
                f"unknown name {_short(node.id)!r}; declared names: {_short(allowed, 200)}; "
                "constants: pi, E."
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            val = walk(node.operand, depth + 1)
            return -val if isinstance(node.op, ast.USub) else val
        if isinstance(node, ast.BinOp) and type(node.op) in _GROUP:
            # a flat chain a + b - c + … (or a * b / c …) is one level, however long
            group = _GROUP[type(node.op)]
            chain: list[tuple[type[ast.operator], ast.AST]] = []
            left: ast.AST = node
            while (isinstance(left, ast.BinOp) and type(left.op) in _GROUP
                   and _GROUP[type(left.op)] == group):
                chain.append((type(left.op), left.right))
                left = left.left
            parts = [walk(left, depth + 1)]
            for op, right in reversed(chain):
                value = walk(right, depth + 1)
                parts.append(-value if op is ast.Sub else 1 / value if op is ast.Div else value)
            # one n-ary Add/Mul: linear in the number of terms (pairwise it is quadratic)
            acc = sp.Add(*parts) if group == "sum" else sp.Mul(*parts)
            return _check_size(acc, lambda: _snippet(source, node))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            a = walk(node.left, depth + 1)
            b = walk(node.right, depth + 1)
            return _check_size(_power(a, b, lambda: _snippet(source, node)),
                               lambda: _snippet(source, node))
        if isinstance(node, ast.BinOp):
            raise ExpressionError(f"the operator {type(node.op).__name__} at "
                                  f"{_snippet(source, node)} is not allowed; use + - * / ** ^.")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ExpressionError(
                    f"only calls of the allowed functions by name, found a call of "
                    f"{_snippet(source, node.func)}; allowed: "
                    f"{', '.join(sorted(FUNCTIONS, key=str.lower))}.")
            if node.func.id not in FUNCTIONS:
                raise ExpressionError(
                    f"unknown function {_short(node.func.id)!r}; allowed: "
                    f"{', '.join(sorted(FUNCTIONS, key=str.lower))}."
                )
            if node.keywords:
                raise ExpressionError("keyword arguments are not allowed, in "
                                      f"{_snippet(source, node)}.")
            args = [walk(a, depth + 1) for a in node.args]
            try:
                value = FUNCTIONS[node.func.id](*args)
            except TypeError:
                raise ExpressionError(f"{node.func.id}: wrong number of arguments "
                                      f"({len(args)}) in {_snippet(source, node)}.") from None
            return _check_size(value, lambda: _snippet(source, node))
        kind = _NODE_NAMES.get(type(node).__name__, type(node).__name__)
        raise ExpressionError(
            f"{kind} not allowed, found {_snippet(source, node)}; use numbers, declared names, "
            "+ - * / ** ^, parentheses and the allowed functions."
        )

    try:
        return walk(tree, 0)
    except (RecursionError, MemoryError):
        raise ExpressionError("the expression is too large or too deeply nested to "
                              "process.") from None


def read_toml(path: str | Path, what: str = "file") -> dict[str, Any]:
    """Read a small TOML file of user input, with errors that name the file.

    Arguments:
        path: the file.
        what: how messages call it, e.g. `"metric file"` or `"kernel file"`.

    Returns:
        The parsed TOML table.

    Raises:
        ValueError: the file is missing, a folder, not a regular file (a device or a pipe,
            which could block or never end), unreadable, larger than `MAX_FILE_BYTES`,
            not UTF-8 (a binary file), not valid TOML, or nested too deeply; the message names
            the file.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "k.toml"
        >>> _ = f.write_text('name = "mine"')
        >>> read_toml(f, "kernel file")
        {'name': 'mine'}
    """
    path = Path(path)
    where = f"{what} {str(path)!r}"
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ValueError(f"{where} is not a regular file (a device, pipe or socket); give "
                             "a TOML file.")
        with path.open("rb") as fh:  # at most one byte beyond the cap, whatever the file
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{where} does not exist.") from None
    except IsADirectoryError:
        raise ValueError(f"{where} is a folder; give a TOML file.") from None
    except PermissionError:
        raise ValueError(f"{where} cannot be read (permission denied).") from None
    except OSError as exc:
        raise ValueError(f"{where} cannot be read ({exc.strerror or exc}).") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"{where} is larger than {MAX_FILE_BYTES} bytes, the limit.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text (byte {exc.start}); is it a binary "
                         "file? Give a TOML file.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where} is not valid TOML: {exc}.") from None
    except RecursionError:
        raise ValueError(f"{where} is not valid TOML: nested too deeply.") from None


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

    Names are NFKC-normalised (as Python's parser reads them), so `ﬁ` declares `fi`. At most
    `MAX_DIM` coordinates; a file of at most `MAX_FILE_BYTES` bytes.

    Raises:
        ValueError: an unreadable, binary or non-TOML file (named); a missing or malformed key
            (named), both or neither of `metric`/`diagonal`, a wrong number of entries, a
            component that is not finite or not real (`0/0`, `1/0`, `log(-1)`; the entry is
            named); `ExpressionError` for a bad expression (with the entry and column).
    """
    path = Path(path)
    data = read_toml(path, "metric file")
    known = {"name", "coords", "params", "metric", "diagonal"}
    extra = set(data) - known
    if extra:
        raise ValueError(f"{path.name}: unknown keys {sorted(extra)[:5]}; allowed: "
                         f"{sorted(known)}.")
    coords = data.get("coords")
    if not isinstance(coords, list) or not coords or not all(isinstance(c, str) for c in coords):
        raise ValueError(f"{path.name}: 'coords' must be a non-empty list of names, e.g. "
                         '["t", "r", "theta", "phi"].')
    if len(coords) > MAX_DIM:
        raise ValueError(f"{path.name}: 'coords' has {len(coords)} names; at most {MAX_DIM} "
                         "(the curvature tensors have n^4 components).")
    params = data.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ValueError(f"{path.name}: 'params' must be a list of names.")
    if len(params) > 64:
        raise ValueError(f"{path.name}: 'params' has {len(params)} names; at most 64.")
    coords = [normalise_name(c) for c in coords]
    params = [normalise_name(p) for p in params]
    for key, group in (("coords", coords), ("params", params)):
        for nm in group:
            if not nm.isidentifier() or nm.startswith("_") or keyword.iskeyword(nm):
                raise ValueError(f"{path.name}: {key}: {_short(nm)!r} is not a valid symbol name "
                                 "(letters, digits and _, not starting with _ or a digit).")
            if nm in FUNCTIONS or nm in CONSTANTS:
                raise ValueError(f"{path.name}: {key}: {nm!r} is the name of a built-in "
                                 "function or constant; choose another name.")
    if len(set(coords + params)) != len(coords + params):
        raise ValueError(f"{path.name}: coordinate and parameter names must be distinct "
                         "(after Unicode NFKC normalisation, as Python reads names).")
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
        entries = {(i, i): (f"diagonal[{i}]", e) for i, e in enumerate(diag)}
    else:
        rows = data["metric"]
        if not isinstance(rows, list) or len(rows) != n or any(
            not isinstance(r, list) or len(r) != n for r in rows
        ):
            raise ValueError(f"{path.name}: 'metric' must be {n} rows of {n} entries.")
        entries = {(i, j): (f"metric[{i}][{j}]", e)
                   for i, row in enumerate(rows) for j, e in enumerate(row)}
    comps = sp.zeros(n, n)
    for (i, j), (key, text) in entries.items():
        try:
            value = parse_expression(text, table)
        except ExpressionError as exc:
            raise ExpressionError(f"{path.name}: {key}: {exc}") from None
        problem = entry_problem(value)
        if problem:
            raise ValueError(f"{path.name}: {key} = {_short(value)} {problem}; a metric "
                             "component must be a finite real expression.")
        comps[i, j] = value
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise ValueError(f"{path.name}: 'name' must be a string.")
    return {"name": name, "coords": csyms, "params": psyms, "components": comps}
