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
        ("__import__('os').system('true')", "only calls of the allowed functions by name"),
        ("().__class__", "not allowed"),
        ("r.evalf()", "only calls of the allowed functions by name"),
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
        ("1" * 20, "may not exceed"),
        # sizes of intermediate values, not only of each exponent
        ("((((10**12)**64)**64)**64)**64", "bits"),
        ("(r**64)**64", "combined"),
        ("(2**60)**60", "bits"),
        ("-" * 3999 + "r", "nested deeper"),
        ("(" * 1900 + "r" + ")" * 1900, "nested deeper|too many nested parentheses"),
        ("r" + "+r" * 2500, "at most 4000|characters"),
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


def test_a_flat_sum_or_product_of_many_terms_is_one_level():
    xs = sp.symbols("x0:60")
    text = " + ".join(f"x{i}" for i in range(60))
    assert parse_expression(text, xs) == sum(xs)
    assert parse_expression(" * ".join(f"x{i}" for i in range(60)), xs) == sp.Mul(*xs)
    assert parse_expression(" - ".join(["r"] * 300), [r]) == -298 * r


@pytest.mark.parametrize(
    "text, construct",
    [
        ("r.evalf()", "'r.evalf'"),
        ("sin(r).func(r)", "'sin(r).func'"),
        ("r[0]", "subscripts"),
        ("r if r else 1", "if-expressions"),
        ("r < 1", "comparisons"),
        ("r @ r", "MatMult"),
    ],
)
def test_messages_name_the_construct_not_an_ast_dump(text, construct):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, [r])
    msg = str(info.value)
    assert construct in msg
    assert "Attribute(" not in msg and "Call(" not in msg and "\n" not in msg


def test_messages_do_not_repeat_a_long_expression():
    text = "r + " * 900 + "q"
    with pytest.raises(ExpressionError, match="unknown name 'q'") as info:
        parse_expression(text, [r])
    assert len(str(info.value)) < 300


def test_names_are_nfkc_normalised_like_python_reads_them(tmp_path):
    f = tmp_path / "lig.toml"
    f.write_text('coords = ["\ufb01", "y"]\ndiagonal = ["1", "\ufb01^2"]\n', encoding="utf-8")
    m = load_metric_toml(f)
    fi = m["coords"][0]
    assert fi.name == "fi"
    assert m["components"][1, 1] == fi**2
    g = tmp_path / "clash.toml"
    g.write_text('coords = ["\ufb01", "fi"]\ndiagonal = ["1", "1"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="distinct"):
        load_metric_toml(g)


@pytest.mark.parametrize(
    "entry, problem",
    [("0/0", "not a number"), ("1/0", "infinite"), ("log(-1)", "complex"),
     ("sqrt(-4)", "complex"), ("x/(1-1)", "infinite")],
)
def test_non_finite_or_complex_components_are_refused_naming_the_entry(tmp_path, entry, problem):
    f = tmp_path / "m.toml"
    f.write_text(f'coords = ["x", "y"]\nmetric = [["1", "0"], ["0", "{entry}"]]\n')
    with pytest.raises(ValueError, match=rf"m.toml: metric\[1\]\[1\] = .* {problem}"):
        load_metric_toml(f)


def test_unreadable_files_are_named(tmp_path):
    b = tmp_path / "blob.toml"
    b.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match=r"blob.toml.*not UTF-8.*binary"):
        load_metric_toml(b)
    with pytest.raises(ValueError, match=r"is a folder"):
        load_metric_toml(tmp_path)
    big = tmp_path / "many.toml"
    big.write_text("coords = [" + ", ".join(f'"x{i}"' for i in range(40)) + "]\n"
                   "diagonal = [" + ", ".join(["1"] * 40) + "]\n")
    with pytest.raises(ValueError, match="at most 16"):
        load_metric_toml(big)
