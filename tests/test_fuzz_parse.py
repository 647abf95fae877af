"""Fuzz harness for the expression parser and TOML metric files (hypothesis, derandomized).

Every input, random or adversarial, must end within a time budget (a SIGALRM timer turns a
hang into a failure after `TIME_BUDGET_S`) and a memory budget (the peak of Python allocations,
measured with `tracemalloc`, below `MEMORY_BUDGET_MB`), and must either give an expression
within the parser's size bounds or raise `ExpressionError`/`ValueError` with a one-line message
of bounded length — never another exception (RecursionError, MemoryError, OverflowError, …).
The default run takes seconds (modest `max_examples`, derandomized in tests/conftest.py).
"""

import contextlib
import signal
import string
import tracemalloc

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings, strategies as st

from infograv import _parse
from infograv._parse import ExpressionError, load_metric_toml, parse_expression

# A hang guard, not a speed check: the slowest legal parse here (hundreds of distinct sin terms)
# takes seconds on a loaded 2-core machine, and a hang never ends.
TIME_BUDGET_S = 30.0
MEMORY_BUDGET_MB = 64.0  # a hostile power would need gigabytes; legal parses need < 5 MB
MAX_MESSAGE = 400

r, th, M = sp.symbols("r theta M")


class Budget(Exception):
    """The time budget ran out."""


@contextlib.contextmanager
def budget():
    def alarm(signum, frame):
        raise Budget(f"over {TIME_BUDGET_S} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_BUDGET_S)
    tracemalloc.start()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak / 2**20 < MEMORY_BUDGET_MB, f"peak {peak / 2**20:.0f} MB"


def _within_bounds(expr):
    assert isinstance(expr, sp.Expr)
    for i, node in enumerate(sp.preorder_traversal(expr)):
        assert i <= _parse.MAX_NODES
        if isinstance(node, sp.Rational):
            assert _parse._bits(node) <= _parse.MAX_BITS
        if isinstance(node, sp.Pow) and node.exp.is_Number:
            assert abs(node.exp) <= _parse.MAX_EXPONENT


def _check_message(exc):
    msg = str(exc)
    assert msg and "\n" not in msg and len(msg) <= MAX_MESSAGE, msg[:500]
    assert "Attribute(" not in msg and "Call(" not in msg and "ast." not in msg


def check_parse(text, symbols=(r, th, M)):
    """The harness's law for one input; returns the expression or None (refused)."""
    with budget():
        try:
            expr = parse_expression(text, list(symbols))
        except ExpressionError as exc:
            _check_message(exc)
            return None
    _within_bounds(expr)
    return expr


# --- random expressions from a grammar that mixes legal and illegal pieces --------------------

names = st.sampled_from(["r", "theta", "M", "x", "__class__", "pi", "E", "ﬁ", "rr", "sin"])
numbers = st.one_of(
    st.integers(-10**15, 10**15).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "0.5", "1e308", "1e-320", "10**12", "64", "65", "0x10", "1_000",
                     "1j", "nan", "inf", "True", "None", "'s'", "b'x'", "..."]),
)
functions = st.sampled_from(["sin", "exp", "log", "sqrt", "besselk", "erf", "Abs", "eval",
                             "__import__", "getattr", "r.evalf", "(lambda: 1)", "sin(r).func"])
binops = st.sampled_from(["+", "-", "*", "/", "**", "^", "//", "%", "@", "<", "==", " and ",
                          "|", "<<"])


def _extend(children):
    return st.one_of(
        st.tuples(children, binops, children).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(children, binops, children).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
        st.tuples(st.sampled_from(["-", "+", "~", "not "]), children).map("".join),
        st.tuples(functions, st.lists(children, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        children.map(lambda c: f"{c}[0]"),
        children.map(lambda c: f"{c}.real"),
        st.tuples(children, st.integers(1, 8)).map(lambda t: f"(({t[0]})**64)" * t[1]),
    )


expressions = st.recursive(st.one_of(names, numbers), _extend, max_leaves=25)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=expressions)
def test_grammar_fuzz(text):
    check_parse(text)


@settings(max_examples=200)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text(text):
    check_parse(text)


@settings(max_examples=100)
@given(text=st.text(alphabet=string.printable, max_size=300))
def test_printable_noise(text):
    check_parse(text)


# --- adversarial cases, each named ----------------------------------------------------------

ADVERSARIAL = {
    "tower of powers": "((((10**12)**64)**64)**64)**64",
    "right-nested power": "2**64**64",
    "huge exponent": "r**(10**12)",
    "combined exponents": "(r**64)**64",
    "rational tower": "((1/3)**64)**64",
    "decimal tower": "((0.1**64)**64)**64",
    "power of a sum": "(r + 1)**64 * (r + 2)**64",
    "product of many big numbers": "*".join(["999999999999"] * 200),
    "long flat sum": "+".join(["r"] * 1300),
    "long flat sum of distinct": "+".join(f"sin({i}*r)" for i in range(150)),
    "deep unary minus": "-" * 3990 + "r",
    "deep parentheses": "(" * 99 + "r" + ")" * 99,
    "deep calls": "sin(" * 70 + "r" + ")" * 70,
    "deep power chain": "r" + "**1" * 1000,
    "too long": "r+" * 2100 + "r",
    "attribute escape": "().__class__.__bases__[0].__subclasses__()",
    "import": "__import__('os').system('true')",
    "lambda": "(lambda: 1)()",
    "f-string": "f'{r}'",
    "walrus": "(x := 1)",
    "complex literal": "1j",
    "nan literal": "float('nan')",
    "exp overflow": "exp(exp(exp(exp(1000))))",
    "besselk nesting": "besselk(besselk(64, r), besselk(64, r))",
    "NUL": "r\x00+1",
    "ligature name": "\ufb01 + r",
    "fullwidth digits": "１２３ + r",
    "bidi override": "r\u202e+1",
    "newline in expression": "r\n+1",
    "comment": "r # + 1",
}


@pytest.mark.parametrize("text", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_adversarial(text):
    check_parse(text)


def test_bounds_hold_where_they_must():
    assert check_parse("((((10**12)**64)**64)**64)**64") is None
    assert check_parse("r**(10**12)") is None
    assert check_parse("+".join(["r"] * 1300)) == 1300 * r
    assert check_parse("(r + 1)**64") == (r + 1) ** 64


# --- TOML metric files ------------------------------------------------------------------------

toml_names = st.sampled_from(["x", "y", "t", "r", "ﬁ", "fi", "__x", "1x", "class", "sin",
                              "x y", "", "ŷ"])
toml_values = st.one_of(expressions, st.integers(-10**20, 10**20), st.floats(),
                        st.booleans(), st.just([]))


def _toml_value(v):
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v).replace("inf", "inf").replace("nan", "nan")
    return repr(v)


@st.composite
def metric_files(draw):
    coords = draw(st.lists(toml_names, min_size=0, max_size=4))
    lines = []
    if draw(st.booleans()):
        lines.append("coords = [" + ", ".join(_toml_value(c) for c in coords) + "]")
    if draw(st.booleans()):
        lines.append("params = [" + ", ".join(_toml_value(c) for c in
                                             draw(st.lists(toml_names, max_size=2))) + "]")
    n = draw(st.integers(0, 4))
    if draw(st.booleans()):
        lines.append("diagonal = [" + ", ".join(_toml_value(draw(toml_values))
                                               for _ in range(n)) + "]")
    else:
        rows = [[_toml_value(draw(toml_values)) for _ in range(n)] for _ in range(n)]
        lines.append("metric = [" + ", ".join("[" + ", ".join(row) + "]" for row in rows) + "]")
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["extra = 1", "name = 3", 'name = "m"', "[table]",
                                           "coords = 1", "= broken"])))
    return "\n".join(lines) + "\n"


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.function_scoped_fixture])
@given(body=metric_files())
def test_metric_file_fuzz(body, tmp_path):
    from infograv.symbolic import Metric

    f = tmp_path / "m.toml"
    f.write_text(body, encoding="utf-8")
    with budget():
        try:
            spec = load_metric_toml(f)
        except ValueError as exc:  # ExpressionError is a ValueError
            _check_message(exc)
            return
        for e in spec["components"]:
            _within_bounds(e)
        try:
            Metric(spec["components"], spec["coords"])
        except ValueError as exc:
            _check_message(exc)


@pytest.mark.parametrize("body", [
    b"\x00\x01\x02binary",
    "coords = [" + "[" * 5000 + "]" * 5000 + "]",
    'coords = ["x"]\ndiagonal = ["' + "(" * 500 + "x" + ")" * 500 + '"]',
    'coords = ["x"]\ndiagonal = ["1/0"]',
    'coords = ["x"]\ndiagonal = ["0/0"]',
    'coords = ["x"]\ndiagonal = ["log(-1)"]',
    "coords = [" + ", ".join(f'"x{i}"' for i in range(200)) + "]\ndiagonal = []",
    'coords = ["x"]\ndiagonal = ["' + "x+" * 3000 + 'x"]',
], ids=["binary", "deep TOML", "deep expression", "zoo", "nan", "complex", "200 coords",
        "too long"])
def test_adversarial_metric_files(body, tmp_path):
    f = tmp_path / "m.toml"
    if isinstance(body, bytes):
        f.write_bytes(body)
    else:
        f.write_text(body, encoding="utf-8")
    with budget(), pytest.raises(ValueError) as info:
        load_metric_toml(f)
    _check_message(info.value)


@pytest.mark.parametrize("text, value", [
    ("2**60 * 2**10 * r", 2.0**70 * 3.0),            # beyond int64
    ("1307674368 * 1000 * r", 1307674368000.0 * 3.0),  # 15!, beyond int32
    ("r / 10**12", 3e-12),
])
def test_parsed_large_constants_compile(text, value):
    """A constant the parser accepts compiles and evaluates (no integer overflow in JAX)."""
    from infograv import to_jax

    f = to_jax(check_parse(text, [r]), [r])
    assert float(f(3.0)) == pytest.approx(value, rel=1e-15)
