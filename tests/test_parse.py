"""The restricted expression parser: it never executes code and rejects all outside its grammar."""

import pytest
import sympy as sp

from infograv._parse import ExpressionError, load_metric_toml, parse_expression

r, th, M = sp.symbols("r theta M")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 - 2*M/r", 1 - 2 * M / r),
        ("r^2*sin(theta)^2", r**2 * sp.sin(th) ** 2),
        ("r**2 * exp(-r/2)", r**2 * sp.exp(-r / 2)),
        ("0.25*pi", sp.pi / 4),
        ("-(+r)", -r),
        ("sqrt(r) + log(E)", sp.sqrt(r) + 1),
        (3, sp.Integer(3)),
    ],
)
def test_accepts_the_grammar(text, expected):
    assert sp.simplify(parse_expression(text, [r, th, M]) - expected) == 0


@pytest.mark.parametrize(
    "text, match",
    [
        ("__import__('os').system('true')", "not allowed|unknown function"),
        ("().__class__", "not allowed"),
        ("r.evalf()", "unknown function|not allowed"),
        ("[r for r in ()]", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("eval('1')", "unknown function 'eval'"),
        ("sin(r, key=1)", "keyword"),
        ("'text'", "literal"),
        ("9**9**9", "exponents"),
        ("r ** 1000", "exponents"),
        ("r +", "not a valid expression"),
        ("r < 1", "not allowed"),
        ("sin(" * 80 + "r" + ")" * 80, "nested deeper"),
        ("1" * 20, "exceeds"),
    ],
)
def test_rejects_everything_else(text, match):
    with pytest.raises(ExpressionError, match=match):
        parse_expression(text, [r, th, M])


def test_metric_toml_diagonal_and_full(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        'coords = ["t", "r", "theta", "phi"]\nparams = ["M"]\n'
        'diagonal = ["-(1 - 2*M/r)", "1/(1 - 2*M/r)", "r^2", "r^2*sin(theta)^2"]\n'
    )
    m = load_metric_toml(f)
    assert [c.name for c in m["coords"]] == ["t", "r", "theta", "phi"]
    assert m["components"].shape == (4, 4)
    assert m["components"][0, 1] == 0
    g = tmp_path / "full.toml"
    g.write_text('coords = ["x", "y"]\nmetric = [["1", "x"], ["x", 2]]\n')
    assert load_metric_toml(g)["components"][0, 1].name == "x"


@pytest.mark.parametrize(
    "body, match",
    [
        ('coords = ["x"]\n', "exactly one of"),
        ('coords = ["x", "y"]\ndiagonal = ["1"]\n', "2 entries"),
        ('coords = "x"\ndiagonal = ["1"]\n', "coords"),
        ('coords = ["x"]\ndiagonal = ["1"]\nextra = 1\n', "unknown keys"),
        ('coords = ["x", "x"]\ndiagonal = ["1", "1"]\n', "distinct"),
        ('coords = ["__x"]\ndiagonal = ["1"]\n', "valid symbol"),
        ("coords = [", "not valid TOML"),
    ],
)
def test_metric_toml_errors(tmp_path, body, match):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ValueError, match=match):
        load_metric_toml(f)
