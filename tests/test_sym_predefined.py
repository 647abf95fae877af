"""Predefined metrics against known answers from the literature, and the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import infograv
from infograv import symbolic as S

t, r, th, ph, M, a, c, E, rs = sp.symbols("t r theta phi M a c E r_s")


def _f(v):
    """A 40-digit SymPy Float of `v`, so 30-digit evaluation is not limited by its inputs."""
    return sp.Float(repr(float(v)), 40)


def _at(expr, sub):
    return float(sp.sympify(expr).xreplace({k: _f(v) for k, v in sub.items()}).evalf(30))


def _random_point(g, rng, ranges):
    out = {}
    for s in list(g.coords) + list(g.parameters):
        lo, hi = ranges.get(s.name, (0.3, 1.2))
        out[s] = rng.uniform(lo, hi)
    return out


# --------------------------------------------------------------------- constant curvature
@pytest.mark.parametrize("n", [2, 3, 4])
def test_sphere_scalar_curvature(n, rng):
    g = S.sphere(n)
    R = g.ricci_scalar()
    # exact for n = 2, 3 (cheap enough to simplify), numerical for n = 4
    if n <= 3:
        assert sp.simplify(R - n * (n - 1) / a**2) == 0
    for _ in range(3):
        p = _random_point(g, rng, {"a": (0.5, 2.0)})
        # 30-digit evaluation; 1e-20 relative is far above its round-off
        assert _at(R, p) == pytest.approx(n * (n - 1) / p[a] ** 2, rel=1e-20)


@pytest.mark.parametrize("model", ["halfspace", "ball"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_hyperbolic_scalar_curvature(n, model, rng):
    g = S.hyperbolic(n, model=model)
    R = g.ricci_scalar()
    for _ in range(3):
        p = _random_point(g, rng, {"y": (0.2, 3.0)})
        if model == "ball":
            p = {k: v / (2 * np.sqrt(n)) for k, v in p.items()}  # |x| < 1/2
        assert _at(R, p) == pytest.approx(-n * (n - 1), rel=1e-20)


def test_sphere_laplacian_eigenfunction():
    # on S^3 of radius a, cos θ1 is a degree-1 harmonic: Δ = −l(l + n − 1)/a² = −3/a²
    g = S.sphere(3)
    th1 = g.coords[0]
    assert sp.simplify(g.laplace_beltrami(sp.cos(th1)) + 3 * sp.cos(th1) / a**2) == 0


# ------------------------------------------------------------------------ black holes
def test_schwarzschild_kretschmann_closed_form():
    g = S.schwarzschild()
    assert g.coords == (t, r, th, ph) and g.parameters == (M,)
    # K = 48 M²/r⁶ (e.g. Wald 1984, §6.4): a rational function, so `cancel` decides equality
    assert sp.cancel(g.kretschmann() - 48 * M**2 / r**6) == 0


def _max_abs(arr, sub):
    return max(abs(_at(e, sub)) for e in sp.flatten(arr.tolist()))


@pytest.mark.parametrize(
    ("name", "factory", "ranges"),
    [
        ("schwarzschild", S.schwarzschild, {"M": (0.5, 1.0), "r": (3.0, 6.0)}),
        ("kerr", S.kerr, {"M": (0.5, 1.0), "a": (0.1, 0.45), "r": (3.0, 6.0)}),
        ("tangherlini4", lambda: S.tangherlini(4), {"r_s": (0.5, 1.0), "r": (1.5, 3.0)}),
        ("tangherlini5", lambda: S.tangherlini(5), {"r_s": (0.5, 1.0), "r": (1.5, 3.0)}),
        ("tangherlini6", lambda: S.tangherlini(6), {"r_s": (0.5, 1.0), "r": (1.5, 3.0)}),
    ],
)
def test_vacuum_solutions_are_ricci_flat(name, factory, ranges, rng):
    g = factory()
    Ric = g.ricci()
    for _ in range(2):
        p = _random_point(g, rng, ranges)
        scale = _max_abs(g.riemann(), p)
        assert scale > 1e-3  # curved, so Ricci = 0 is not trivial
        # 30-digit evaluation of unsimplified sums that cancel: residual ~1e-28 · scale
        assert _max_abs(Ric, p) < 1e-20 * scale
        assert abs(_at(g.ricci_scalar(), p)) < 1e-20 * scale


def test_kerr_kretschmann_closed_form(rng):
    # R. C. Henry, ApJ 535, 350 (2000): K = 48 M² (r² − χ²)(Σ² − 16 r² χ²)/Σ⁶, χ = a cos θ
    g = S.kerr()
    chi2 = a**2 * sp.cos(th) ** 2
    sig = r**2 + chi2
    ref = 48 * M**2 * (r**2 - chi2) * (sig**2 - 16 * r**2 * chi2) / sig**6
    K = g.kretschmann()
    for _ in range(2):
        p = _random_point(g, rng, {"M": (0.5, 1.0), "a": (0.1, 0.9), "r": (2.5, 5.0)})
        assert _at(K, p) == pytest.approx(_at(ref, p), rel=1e-18)


def test_kerr_reduces_to_schwarzschild():
    diff = S.kerr(a=0).components - S.schwarzschild().components
    assert sp.simplify(diff) == sp.zeros(4, 4)


def test_tangherlini_four_is_schwarzschild():
    g4 = S.tangherlini(4)
    sub = g4.components.subs(rs, 2 * M)
    assert sp.simplify(sub - S.schwarzschild().components) == sp.zeros(4, 4)


@pytest.mark.parametrize("D", [5, 6])
def test_tangherlini_kretschmann(D, rng):
    # For ds² = −f dt² + dr²/f + r² dΩ²_{D−2} the orthonormal-frame curvatures give
    # K = f''² + 2(D−2) f'²/r² + 2(D−2)(D−3)(1−f)²/r⁴; with f = 1 − μ/r^{D−3} (k = D − 3)
    # this is k(k+1)²(k+2) μ²/r^{2(D−1)} = (D−1)(D−2)²(D−3) μ²/r^{2(D−1)}, which is 48M²/r⁶
    # at D = 4, μ = 2M (worked by hand, independent of the code)
    g = S.tangherlini(D)
    mu = rs ** (D - 3)
    ref = (D - 1) * (D - 2) ** 2 * (D - 3) * mu**2 / r ** (2 * (D - 1))
    p = _random_point(g, rng, {"r_s": (0.5, 1.0), "r": (1.5, 3.0)})
    assert _at(g.kretschmann(), p) == pytest.approx(_at(ref, p), rel=1e-18)
    assert g.dim == D


# --------------------------------------------------------------- the model's metrics
def test_weak_field_newtonian_limit():
    g = S.weak_field(3)
    tau, *xs = g.coords
    Phi = sp.Function("Phi")(*xs)
    G = g.christoffel()
    for i, x in enumerate(xs, start=1):
        # slow motion: ẍ^i ≈ −Γ^i_ττ (dτ/dτ)² with Γ^i_ττ = ∂_iΦ / (1 − 2Φ/c²) → ∂_iΦ
        exact = sp.diff(Phi, x) / (1 - 2 * Phi / c**2)
        assert sp.simplify(G[i, 0, 0] - exact) == 0
        assert sp.limit(G[i, 0, 0].subs(Phi, sp.Symbol("P")), c, sp.oo) == sp.diff(
            Phi, x
        ).subs(Phi, sp.Symbol("P"))


@pytest.mark.parametrize("d", [2, 3, 4])
def test_conformal_scalar_curvature_closed_form(d, rng):
    xs = sp.symbols(f"x1:{d + 1}")
    phi = -sp.exp(-sum((x - 0.3) ** 2 for x in xs)) / 2 + xs[0] * xs[-1] / 5
    g = S.conformally_flat(d, phi)
    grad2 = sum(sp.diff(phi, x) ** 2 for x in xs)
    lap = sum(sp.diff(phi, x, 2) for x in xs)
    # Wald (1984), eq. (D.9) with Ω = e^φ on flat space
    ref = -sp.exp(-2 * phi) * (2 * (d - 1) * lap + (d - 2) * (d - 1) * grad2)
    for _ in range(2):
        p = {x: rng.uniform(-1, 1) for x in xs}
        assert _at(g.ricci_scalar(), p) == pytest.approx(_at(ref, p), rel=1e-18, abs=1e-25)


def test_default_fields_are_undefined_functions():
    assert S.conformally_flat(2).components[0, 0].atoms(sp.core.function.AppliedUndef)
    U = sp.Function("U")(*sp.symbols("x1 x2"))
    assert S.jacobi(2).components[0, 0] == 2 * (E - U)
    # Jacobi geodesics in 1D: constant metric speed ⇒ the Maupertuis energy is E
    g = S.jacobi(1, U=sp.Symbol("x1") ** 2 / 2)
    assert g.components[0, 0] == 2 * E - sp.Symbol("x1") ** 2


# ------------------------------------------------------------------------------ registry
def test_registry_names_and_errors():
    assert set(S.PREDEFINED) == {
        "schwarzschild", "kerr", "tangherlini", "sphere", "hyperbolic", "euclidean",
        "weak-field", "conformal", "jacobi",
    }
    for name, ctor in S.PREDEFINED.items():
        g = S.predefined(name)
        assert isinstance(g, S.Metric), name
        assert ctor.__doc__ and "References" in ctor.__doc__, name
    assert S.predefined("tangherlini", D=6).dim == 6
    with pytest.raises(ValueError, match="name: unknown metric 'ads'"):
        S.predefined("ads")
    with pytest.raises(TypeError):
        S.predefined("sphere", radius=2)
    with pytest.raises(ValueError, match="n: must be ≥ 1"):
        S.sphere(0)
    with pytest.raises(TypeError):
        S.sphere(2.5)  # (the annotation `n: int` or the explicit check, whichever runs first)
    with pytest.raises(ValueError, match="D: must be ≥ 4"):
        S.tangherlini(3)
    with pytest.raises(ValueError, match="model"):
        S.hyperbolic(2, model="klein")


# ----------------------------------------------------------------- compiled with to_jax
def test_compiled_schwarzschild_christoffels(rng):
    g = S.schwarzschild()
    G = g.christoffel()
    f = infograv.to_jax(G, [t, r, th, ph], params={M: 1.0})
    pts = np.column_stack([rng.uniform(0, 1, 6), rng.uniform(3, 8, 6),
                           rng.uniform(0.3, 2.8, 6), rng.uniform(0, 6, 6)])
    got = np.asarray(jax.jit(jax.vmap(lambda p: f(*p)))(jnp.asarray(pts)))
    assert got.shape == (6, 4, 4, 4)
    for k in range(6):
        sub = dict(zip((t, r, th, ph), pts[k])) | {M: 1.0}
        ref = np.array([[[_at(G[i, j, m], sub) for m in range(4)] for j in range(4)]
                        for i in range(4)])
        # float64 evaluation of O(1) rational/trig expressions: 1e-12 relative
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-14)
    # float32 inputs give float32 output within single-precision round-off
    g32 = np.asarray(f(*[jnp.float32(v) for v in pts[0]]))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, got[0], rtol=1e-5, atol=1e-6)


def test_compiled_christoffel_gradient_matches_finite_differences():
    g = S.schwarzschild()
    f = infograv.to_jax(g.christoffel()[1, 0, 0], [r], params={M: 1.0})  # Γ^r_tt
    # Γ^r_tt = M (r − 2M)/r³, ∂/∂M = (r − 4M)/r³ = 1/125 at r = 5, M = 1
    grad = jax.grad(lambda m, x: m(x))(f, 5.0).params["M"]
    assert float(grad) == pytest.approx(1 / 125, rel=1e-12)
    h = 1e-6
    fp = infograv.to_jax(g.christoffel()[1, 0, 0], [r], params={M: 1.0 + h})(5.0)
    fm = infograv.to_jax(g.christoffel()[1, 0, 0], [r], params={M: 1.0 - h})(5.0)
    # central difference: error O(h²) ≈ 1e-12 plus round-off 1e-16/h ≈ 1e-10
    assert float(grad) == pytest.approx(float((fp - fm) / (2 * h)), rel=1e-8)
