"""`infograv.symbolic.Metric`: conventions, known answers on small metrics, errors, LaTeX,
geodesic equations, Laplace–Beltrami, opt-in simplification, compilation with `to_jax`."""

import numpy as np
import pytest
import sympy as sp

import infograv
from infograv.symbolic import GeodesicEquations, Metric, simplified, velocity_symbol

th, ph, r, x, y, z, a = sp.symbols("theta phi r x y z a")


def _sphere2(radius=1):
    return Metric(sp.diag(radius**2, radius**2 * sp.sin(th) ** 2), [th, ph])


def _f(v):
    """A 40-digit SymPy Float of `v`, so 30-digit evaluation is not limited by its inputs."""
    return sp.Float(repr(float(v)), 40)


def _num(expr, sub):
    return complex(sp.sympify(expr).xreplace(sub).evalf(30))


# ------------------------------------------------------------------ conventions (the contract)
def test_two_sphere_conventions():
    g = _sphere2()
    G = g.christoffel()
    # textbook values for the round 2-sphere: Γ^θ_φφ = −sinθ cosθ, Γ^φ_θφ = cotθ
    assert sp.simplify(G[0, 1, 1] + sp.sin(th) * sp.cos(th)) == 0
    assert sp.simplify(G[1, 0, 1] - sp.cot(th)) == 0
    assert G[1, 0, 1] == G[1, 1, 0]
    Rm = g.riemann()
    # R^θ_φθφ = sin²θ with R^a_bcd = ∂_c Γ^a_db − …  (so that R_bd = R^a_bad = g_bd)
    assert sp.simplify(Rm[0, 1, 0, 1] - sp.sin(th) ** 2) == 0
    assert sp.simplify(Rm[0, 1, 1, 0] + sp.sin(th) ** 2) == 0
    Ric = g.ricci()
    assert sp.simplify(Ric[0, 0] - 1) == 0
    assert sp.simplify(Ric[1, 1] - sp.sin(th) ** 2) == 0
    assert sp.simplify(g.ricci_scalar()) == 2
    # unit S^n: R_abcd = g_ac g_bd − g_ad g_bc, so K = 2 n (n − 1) = 4
    assert sp.simplify(g.kretschmann()) == 4
    for i in range(2):
        for j in range(2):
            assert sp.simplify(g.einstein()[i, j]) == 0  # G_ab ≡ 0 in two dimensions


def test_radius_scaling_and_shapes():
    g = _sphere2(a)
    assert g.christoffel().shape == (2, 2, 2)
    assert g.riemann().shape == (2, 2, 2, 2)
    assert g.ricci().shape == (2, 2)
    assert g.einstein().shape == (2, 2)
    assert g.riemann_lowered().shape == (2, 2, 2, 2)
    assert g.christoffel_first_kind().shape == (2, 2, 2)
    assert sp.simplify(g.ricci_scalar() - 2 / a**2) == 0
    assert g.dim == 2 and g.coords == (th, ph)
    assert g.parameters == (a,)
    assert isinstance(g.components, sp.ImmutableDenseMatrix)
    with pytest.raises(TypeError):
        g.components[0, 0] = 5


def test_accepts_array_and_nested_list():
    m1 = Metric(sp.Array([[1, 0], [0, r**2]]), [r, th])
    m2 = Metric([[1, 0], [0, r**2]], (r, th))
    assert m1 == m2 and hash(m1) == hash(m2)
    assert Metric(sp.Matrix([[x**2]]), x).dim == 1
    with pytest.raises(ValueError, match="2-index"):
        Metric(sp.Array([1, 2]), [x])


def test_results_are_cached():
    g = _sphere2()
    assert g.riemann() is g.riemann()
    assert g.christoffel() is g.christoffel()
    assert g.ricci_scalar() is g.ricci_scalar()


def test_flat_polar_coordinates_have_zero_curvature():
    g = Metric(sp.diag(1, r**2), [r, th])
    assert g.christoffel()[0, 1, 1] == -r
    assert g.christoffel()[1, 0, 1] == 1 / r
    assert all(e == 0 for e in sp.flatten(g.riemann()))  # structurally, no simplify needed


def test_christoffel_first_kind_lowers_second_kind(rng):
    g = Metric([[1 + x**2, x * y], [x * y, 2 + y**2]], [x, y])
    G1, G2 = g.christoffel_first_kind(), g.christoffel()
    sub = {s: _f(rng.uniform(0.2, 1)) for s in (x, y)}
    for i in range(2):
        for j in range(2):
            for k in range(2):
                lowered = sum(g.components[i, m] * G2[m, j, k] for m in range(2))
                # 30-digit evaluation; 1e-20 is far above its round-off
                assert abs(_num(lowered - G1[i, j, k], sub)) < 1e-20


def test_inverse_of_non_diagonal_metric(rng):
    comps = [[-1 + x, 0, y], [0, 2, 0], [y, 0, 3 + x**2]]
    g = Metric(comps, [x, y, z])
    prod = g.components * g.inverse()
    sub = {s: _f(rng.uniform(0.1, 0.5)) for s in (x, y)}
    num = np.array(prod.xreplace(sub).evalf(30).tolist(), dtype=float)
    np.testing.assert_allclose(num, np.eye(3), atol=1e-14)  # round-off of 30-digit evaluation
    assert sp.simplify(g.det() - sp.Matrix(comps).det()) == 0


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("components", "coords", "match"),
    [
        ([[1, 0, 0], [0, 1, 0]], [x, y], "not square"),
        (sp.Matrix([[1, 0, 0], [0, 1, 0]]), [x, y], "not square"),
        ([[1, x], [0, 1]], [x, y], "not symmetric"),
        ([[1, 1], [1, 1]], [x, y], "degenerate"),
        ([[x, x], [x, x]], [x, y], "degenerate"),
        ([[sp.sin(x) ** 2 + sp.cos(x) ** 2, 1], [1, 1]], [x, y], "degenerate"),
        ([[0, 0], [0, 1]], [x, y], "degenerate"),
        (sp.eye(2), [x, x], "distinct"),
        (sp.eye(2), [x, sp.Symbol("x")], "distinct"),
        (sp.eye(2), [x, 2], "Symbol"),
        (sp.eye(2), [x, sp.Function("f")(x)], "Symbol"),
        (sp.eye(2), [x, y, z], "length mismatch"),
        (sp.eye(3), [x, y], "length mismatch"),
    ],
)
def test_invalid_input_raises(components, coords, match):
    with pytest.raises(ValueError, match=match) as info:
        Metric(components, coords)
    assert "components" in str(info.value) or "coords" in str(info.value)


def test_invalid_types_raise_typeerror():
    with pytest.raises(TypeError, match="components"):
        Metric("diag(1,1)", [x, y])
    with pytest.raises(TypeError, match="coords"):
        Metric(sp.eye(1), 3)


def test_tiny_but_regular_metric_is_accepted():
    # the degeneracy test is relative: a metric of scale 1e-30 is still invertible
    g = Metric(sp.Float("1e-30", 40) * sp.Matrix([[1 + x**2, x], [x, 2]]), [x, y])
    assert g.dim == 2


def test_equal_in_value_but_not_form_is_accepted():
    g = Metric([[1, sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1], [0, 1]], [x, y])
    assert g.components[1, 0] == g.components[0, 1]


def test_weyl_needs_three_dimensions():
    with pytest.raises(ValueError, match="n ≥ 3"):
        _sphere2().weyl()


def test_weyl_of_conformally_flat_3d_vanishes_and_is_traceless(rng):
    phi = sp.exp(-(x**2) - y**2 / 2) * z
    g = Metric(sp.exp(2 * phi) * sp.eye(3), [x, y, z])
    C = g.weyl()
    sub = {s: _f(rng.uniform(-1, 1)) for s in (x, y, z)}
    vals = [abs(_num(e, sub)) for e in sp.flatten(C)]
    # conformally flat ⇒ C = 0; 30-digit evaluation of O(1) terms, 1e-20 tolerance
    assert max(vals) < 1e-20


# ------------------------------------------------------------------ geodesics and Δ_g
def test_geodesic_equations_of_sphere():
    g = _sphere2()
    eqs = g.geodesic_equations()
    assert isinstance(eqs, GeodesicEquations)
    thd, phd = eqs.velocities
    assert (thd, phd) == (velocity_symbol(th), velocity_symbol(ph))
    assert sp.latex(thd) == r"\dot{\theta}"
    assert sp.simplify(eqs.accelerations[0] - sp.sin(th) * sp.cos(th) * phd**2) == 0
    assert sp.simplify(eqs.accelerations[1] + 2 * sp.cot(th) * thd * phd) == 0
    odes = eqs.odes()
    lam = eqs.parameter
    assert odes[0].lhs == sp.Derivative(sp.Function("theta")(lam), (lam, 2))


def test_velocity_symbol_for_subscripted_names():
    x1 = sp.Symbol("x_1")
    assert sp.latex(velocity_symbol(x1)) == r"\dot{x_{1}}"


def test_lagrangian_equations_agree_with_christoffel_form(rng):
    # a dense metric with no symmetry, so every Christoffel term contributes
    g = Metric([[2 + x**2, x * y, 0], [x * y, 1 + y**2, z], [0, z, 3 + x * z]], [x, y, z])
    geo = g.geodesic_equations()
    lag = g.lagrangian_equations()
    assert lag.velocities == geo.velocities
    sub = {s: _f(rng.uniform(0.1, 0.6)) for s in (x, y, z, *geo.velocities)}
    for i in range(3):
        assert abs(_num(geo.accelerations[i] - lag.accelerations[i], sub)) < 1e-20


def test_lagrangian_with_potential_is_newton_in_flat_space():
    g = Metric(sp.eye(2), [x, y])
    V = x**2 * y + sp.cos(y)
    eqs = g.lagrangian_equations(V)
    assert sp.simplify(eqs.accelerations[0] + sp.diff(V, x)) == 0
    assert sp.simplify(eqs.accelerations[1] + sp.diff(V, y)) == 0


def test_laplace_beltrami_matches_sqrt_det_formula():
    g = _sphere2(a)
    f = sp.cos(th) ** 2 * sp.sin(ph) + sp.sin(th) * sp.cos(2 * ph)
    gi = g.inverse()
    sq = a**2 * sp.sin(th)  # √det g on 0 < θ < π
    ref = sum(
        sp.diff(sq * gi[i, j] * sp.diff(f, g.coords[j]), g.coords[i])
        for i in range(2) for j in range(2)
    ) / sq
    assert sp.simplify(g.laplace_beltrami(f) - ref) == 0
    # Y_1^0 = cos θ is an eigenfunction with eigenvalue −l(l+1)/a² = −2/a²
    assert sp.simplify(g.laplace_beltrami(sp.cos(th)) + 2 * sp.cos(th) / a**2) == 0


def test_subs_gives_concrete_metric():
    f = sp.Function("f")(x)
    g = Metric(sp.diag(sp.exp(2 * f), sp.exp(2 * f)), [x, y])
    h = g.subs({f: x**2})
    assert h.components[0, 0] == sp.exp(2 * x**2)
    assert isinstance(h, Metric) and h != g


# ------------------------------------------------------------------------------- LaTeX
def test_latex_names_components_and_parses():
    g = _sphere2()
    md = g.latex("christoffel")
    assert r"\Gamma^{\theta}{}_{\phi \phi}" in md
    assert r"\Gamma^{\phi}{}_{\theta \phi}" in md
    assert r"\Gamma^{\phi}{}_{\phi \theta}" not in md  # only b ≤ c
    blocks = [ln.strip("$") for ln in md.splitlines() if ln.startswith("$$")]
    assert len(blocks) == 2
    _assert_mathtext_parses(blocks)
    assert "All components are zero" in Metric(sp.eye(2), [x, y]).latex("riemann")
    for q in ("metric", "inverse", "riemann", "riemann_lowered", "ricci", "einstein",
              "ricci_scalar", "kretschmann", "christoffel_first_kind"):
        assert g.latex(q).startswith("**")
    with pytest.raises(ValueError, match="quantity"):
        g.latex("torsion")


def _assert_mathtext_parses(blocks):
    """Each equation parses with matplotlib's TeX-subset parser (raises ValueError if not)."""
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    for b in blocks:
        parser.parse(f"${b}$")


def test_latex_of_curved_spaces_parses():
    g = Metric(sp.diag(-(1 - 2 / r), 1 / (1 - 2 / r), r**2, r**2 * sp.sin(th) ** 2),
               [sp.Symbol("t"), r, th, ph])
    for q in ("christoffel", "riemann", "ricci_scalar"):
        md = g.latex(q)
        blocks = [ln.strip("$") for ln in md.splitlines() if ln.startswith("$$")]
        assert blocks, q
        _assert_mathtext_parses(blocks)
    with pytest.raises(ValueError):
        _assert_mathtext_parses([r"\frac{1}{"])  # the check can fail


def test_latex_with_simplification_is_shorter():
    g = _sphere2(a)
    raw = g.latex("ricci_scalar")
    nice = g.latex("ricci_scalar", simplify=5.0)
    assert r"R = \frac{2}{a^{2}}" in nice
    assert len(nice) <= len(raw)


# ------------------------------------------------------------------------ simplified()
def test_simplified_identities_and_shapes():
    e = sp.sin(x) ** 2 + sp.cos(x) ** 2 + (x**2 - 1) / (x - 1)
    assert simplified(e) == x + 2
    M = sp.Matrix([[e, 0], [0, (x**2 - y**2) / (x - y)]])
    out = simplified(M)
    assert out.shape == (2, 2) and out[1, 1] == x + y
    A = sp.Array([e, 1])
    assert simplified(A).shape == (2,)
    with pytest.raises(ValueError, match="timeout"):
        simplified(e, timeout=-1.0)


def test_simplified_leaves_no_threads_behind():
    import threading

    before = threading.active_count()
    simplified(_sphere2(a).riemann(), timeout=0.5)
    assert threading.active_count() == before


def test_simplified_respects_zero_budget_and_returns_equal_value():
    e = (x + 1) ** 3 - x**3 - 3 * x**2 - 3 * x
    out = simplified(e, timeout=0.0)
    assert out == e  # no step may start with no budget
    # large expressions are returned unchanged rather than risk a long step
    big = sum(sp.sin(x + k) ** 2 for k in range(200))
    assert simplified(big, timeout=10.0, max_ops=100) == big


# --------------------------------------------------------------------- compile to JAX
def test_compiled_christoffels_match_sympy(rng):
    g = Metric([[1 + x**2, x * y, 0], [x * y, 2 + sp.sin(y), 0], [0, 0, sp.exp(x * z)]],
               [x, y, z])
    G = g.christoffel()
    f = infograv.to_jax(G, [x, y, z])
    for _ in range(4):
        pt = rng.uniform(-0.8, 0.8, size=3)
        got = np.asarray(f(*pt))
        sub = dict(zip((x, y, z), map(_f, pt)))
        ref = np.array(G.xreplace(sub).applyfunc(lambda e: e.evalf(30)).tolist(), dtype=float)
        # float64 evaluation of O(1) rational/trig expressions: 1e-12 relative
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_laplace_beltrami_lorentzian_is_the_wave_operator():
    t = sp.Symbol("t")
    u = sp.Function("u")(t, x)
    g = Metric(sp.diag(-1, 1), [t, x])
    assert sp.simplify(g.laplace_beltrami(u) - (-sp.diff(u, t, 2) + sp.diff(u, x, 2))) == 0


def test_lagrangian_with_potential_on_curved_space(rng):
    # ẍ^a = −Γ^a_bc ẋ^b ẋ^c − g^{ab} ∂_b V: the force term raised with the inverse metric
    g = _sphere2(2)
    V = sp.cos(th) + sp.sin(ph) * sp.sin(th)
    lag = g.lagrangian_equations(V)
    geo = g.geodesic_equations()
    gi = g.inverse()
    sub = {s: _f(rng.uniform(0.3, 1.2)) for s in (th, ph, *geo.velocities)}
    for i in range(2):
        ref = geo.accelerations[i] - sum(gi[i, j] * sp.diff(V, g.coords[j]) for j in range(2))
        assert abs(_num(lag.accelerations[i] - ref, sub)) < 1e-20
