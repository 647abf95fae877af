"""infograv.geometry: compiled vs SymPy, structured Γ(v,v) vs autodiff, curvature laws."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from infograv import geometry as G, symbolic

t, r, th, ph, M = sp.symbols("t r theta phi M", positive=True)


def schwarzschild_symbolic():
    f = 1 - 2 * M / r
    return symbolic.Metric(sp.diag(-f, 1 / f, r**2, r**2 * sp.sin(th) ** 2), [t, r, th, ph])


def conformal_symbolic(n):
    xs = sp.symbols(f"x1:{n + 1}")
    phi = -sp.exp(-sum(x**2 for x in xs) / 2) - sp.Rational(1, 2) * sp.exp(
        -((xs[0] - 1) ** 2 + sum(x**2 for x in xs[1:])) / 2
    )
    return symbolic.Metric(sp.exp(2 * phi) * sp.eye(n), list(xs)), phi, xs


def two_wells(n):
    c = jnp.zeros((2, n)).at[1, 0].set(1.0)
    return G.gaussian_wells(c, jnp.array([1.0, 0.5]), width=1.0)


# -- compiled metric against SymPy ----------------------------------------------------------


def test_compiled_schwarzschild_matches_sympy(rng):
    sym = schwarzschild_symbolic()
    m = G.CompiledMetric.from_symbolic(sym, params={M: 1.3})
    gam_sym = sym.christoffel()
    for _ in range(3):
        p = np.array([rng.normal(), rng.uniform(3, 10), rng.uniform(0.3, 2.8), rng.normal()])
        sub = {t: p[0], r: p[1], th: p[2], ph: p[3], M: 1.3}
        g_ref = np.array(sym.components.subs(sub).evalf(30).tolist(), dtype=float)
        gam_ref = np.array(gam_sym.subs(sub).applyfunc(lambda e: e.evalf(30)).tolist(), float)
        # float64 evaluation of a few arithmetic operations: 1e-13 relative
        np.testing.assert_allclose(m.metric(jnp.asarray(p)), g_ref, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(m.christoffel(jnp.asarray(p)), gam_ref, rtol=1e-12, atol=1e-14)
        # the autodiff Christoffels of the compiled g agree with the SymPy ones
        np.testing.assert_allclose(
            G.christoffel_autodiff(m.metric, jnp.asarray(p)), gam_ref, rtol=1e-12, atol=1e-14
        )
        # the geodesic acceleration compiled with the velocity contracted in SymPy
        v = rng.normal(size=4)
        np.testing.assert_allclose(m.acceleration(jnp.asarray(p), jnp.asarray(v)),
                                   np.einsum("abc,b,c->a", gam_ref, v, v), rtol=1e-12, atol=1e-13)


def test_compiled_metric_parameters_are_differentiable():
    m = G.CompiledMetric.from_symbolic(schwarzschild_symbolic(), params={M: 1.0})
    x = jnp.array([0.0, 7.0, 1.0, 0.0])
    # d g_tt / dM = 2/r
    grad = jax.grad(lambda mm: mm.metric(x)[0, 0])(m)
    assert float(grad.g.params["M"]) == pytest.approx(2.0 / 7.0, rel=1e-14)


def test_compiled_metric_needs_parameter_values():
    with pytest.raises(ValueError, match="free symbols"):
        G.CompiledMetric.from_symbolic(schwarzschild_symbolic())
    with pytest.raises(TypeError, match="metric"):
        G.CompiledMetric.from_symbolic(sp.eye(2))


@pytest.mark.parametrize("n", [2, 3])
def test_autodiff_curvature_matches_symbolic(n, rng):
    sym, _, xs = conformal_symbolic(n)
    riem = G.CompiledMetric.from_symbolic(sym)  # compiled Γ, autodiff Riemann
    riem_sym = infograv_to_jax(sym.riemann(), xs)
    scal_sym = infograv_to_jax(sym.ricci_scalar(), xs)
    fm = G.FunctionMetric(riem.metric, dim=n)  # pure autodiff path
    for _ in range(2):
        p = rng.normal(size=n)
        ref = np.asarray(riem_sym(*p))
        # both paths are float64 evaluations of the same smooth function: 1e-10 absolute
        np.testing.assert_allclose(fm.riemann(jnp.asarray(p)), ref, atol=1e-10)
        np.testing.assert_allclose(riem.riemann(jnp.asarray(p)), ref, atol=1e-10)
        np.testing.assert_allclose(fm.ricci_scalar(jnp.asarray(p)), scal_sym(*p), atol=1e-10)


def infograv_to_jax(expr, xs):
    import infograv

    return infograv.to_jax(expr, list(xs))


# -- structured metrics: Γ(v, v) against the autodiff Christoffels -----------------------------


def _metrics_small():
    def sphere_embed(p):
        a, b = p[0], p[1]
        return jnp.stack([jnp.sin(a) * jnp.cos(b), jnp.sin(a) * jnp.sin(b), jnp.cos(a)])

    _, k, _ = G.gaussian_kernel()
    tokens = jnp.array([[0.0, 0.0], [1.0, 0.5], [-0.7, 1.1], [0.3, -1.2]])
    fisher = G.FisherMetric(
        lambda rr: -jnp.exp(-(rr**2) / 2.0), tokens, jnp.array([1.0, 1.0, 2.0, 0.5]), 0.7
    )
    return {
        "conformal3": (G.ConformalMetric(two_wells(3), dim=3), 3),
        "jacobi2": (G.JacobiMetric(two_wells(2), 0.5, dim=2), 2),
        "weakfield3": (G.WeakFieldMetric(two_wells(2), d=2, c=3.0), 3),
        "tangherlini5": (G.TangherliniMetric(5, r_s=1.0), 5),
        "pullback_sphere": (G.PullbackMetric(sphere_embed, dim=2), 2),
        "fisher2": (fisher, 2),
    }


METRICS = _metrics_small()


def _point(name, n, rng):
    p = rng.normal(size=n) * 0.5
    if name.startswith("tangherlini"):
        p[1:] = p[1:] / np.linalg.norm(p[1:]) * 3.0
    if name.startswith("pullback"):
        p[0] = 1.0
    return jnp.asarray(p)


@pytest.mark.parametrize("name", list(METRICS))
def test_structured_acceleration_matches_autodiff_christoffel(name, rng):
    m, n = METRICS[name]
    x = _point(name, n, rng)
    gam = m.christoffel(x)
    for _ in range(2):
        v = jnp.asarray(rng.normal(size=n))
        ref = jnp.einsum("abc,b,c->a", gam, v, v)
        # different orders of float64 operations on O(1) numbers: 1e-11 absolute
        np.testing.assert_allclose(m.acceleration(x, v), ref, rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(G.general_acceleration(m, x, v), ref, rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(m.metric_vp(x, v), m.metric(x) @ v, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(
            m.metric(x) @ m.inverse_vp(x, v), v, rtol=1e-10, atol=1e-11
        )


@pytest.mark.parametrize("name", ["conformal3", "jacobi2", "tangherlini5", "fisher2"])
def test_identity_laws(name, rng):
    m, n = METRICS[name]
    x = _point(name, n, rng)
    # exact identities evaluated in float64 on O(1) curvature: 1e-9 absolute
    assert float(G.christoffel_symmetry_residual(m, x)) < 1e-12
    assert float(G.metric_compatibility_residual(m, x)) < 1e-10
    assert float(G.riemann_symmetry_residual(m, x)) < 1e-9
    assert float(G.first_bianchi_residual(m, x)) < 1e-9
    if name == "conformal3":  # n⁵ numbers from third derivatives: small n only
        assert float(G.second_bianchi_residual(m, x)) < 1e-8


def test_residuals_detect_a_wrong_connection():
    # a metric whose Christoffels are deliberately wrong must fail metric compatibility
    class Wrong(G.AbstractMetric):
        dim: int = eqx.field(static=True, default=2)

        def metric(self, x):
            return jnp.diag(jnp.stack([1.0, x[0] ** 2]))

        def metric_vp(self, x, w):
            return self.metric(x) @ w

        def inverse_vp(self, x, w):
            return jnp.linalg.solve(self.metric(x), w)

        def acceleration(self, x, v):
            return jnp.zeros(2)

        def christoffel(self, x):
            return jnp.zeros((2, 2, 2))

    assert float(G.metric_compatibility_residual(Wrong(), jnp.array([2.0, 0.0]))) > 1.0


@pytest.mark.parametrize("D", [5])
def test_tangherlini_is_ricci_flat(D, rng):
    m = G.TangherliniMetric(D, r_s=1.5)
    x = jnp.asarray(np.concatenate([[0.3], rng.normal(size=D - 1)]))
    x = x.at[1:].set(x[1:] / jnp.linalg.norm(x[1:]) * 4.0)
    # Ricci of O(r_s/r²) components vanishing to round-off: 1e-12
    assert float(G.vacuum_residual(m, x)) < 1e-12
    # while the Riemann tensor is not zero (it is a curved spacetime)
    assert float(jnp.max(jnp.abs(m.riemann(x)))) > 1e-3


def test_tangherlini_matches_schwarzschild_radial_geodesic_acceleration():
    # radial infall from rest at r: d²r/dτ² = −M/r² in both charts (r_s = 2M)
    m = G.TangherliniMetric(4, r_s=2.0)
    r0 = 7.0
    x = jnp.array([0.0, r0, 0.0, 0.0])
    v = jnp.array([1.0 / jnp.sqrt(1 - 2.0 / r0), 0.0, 0.0, 0.0])
    assert float(-m.acceleration(x, v)[1]) == pytest.approx(-1.0 / r0**2, rel=1e-13)


# -- conformal metric at high dimension and closed-form curvature ------------------------------


def test_conformal_d384_closed_form_equals_general_autodiff_path(rng):
    d = 384
    centres = jnp.asarray(rng.normal(size=(3, d)) * 0.05)
    phi = G.gaussian_wells(centres, jnp.array([1.0, 0.7, 0.4]), width=0.3)
    m = G.ConformalMetric(phi, dim=d)
    general = G.FunctionMetric(m.metric, dim=d)  # dense g, JVP/VJP + LU solve
    for _ in range(3):
        x = jnp.asarray(rng.normal(size=d) * 0.02)
        v = jnp.asarray(rng.normal(size=d))
        closed = m.acceleration(x, v)
        assert float(jnp.linalg.norm(closed)) > 1.0  # a nontrivial test
        # a 384×384 LU solve with condition number 1 and O(d) sums: 1e-11 relative
        np.testing.assert_allclose(G.general_acceleration(general, x, v), closed, rtol=1e-11,
                                   atol=1e-11 * float(jnp.max(jnp.abs(closed))))


@pytest.mark.parametrize("n", [3])
def test_conformal_scalar_curvature_closed_form(n, rng):
    # stereographic sphere: R = n(n − 1) exactly
    sphere = G.ConformalMetric(lambda x: jnp.log(2.0 / (1.0 + x @ x)), dim=n)
    x = jnp.asarray(rng.normal(size=n) * 0.5)
    assert float(sphere.ricci_scalar_closed_form(x)) == pytest.approx(n * (n - 1), rel=1e-12)
    assert float(sphere.ricci_scalar(x)) == pytest.approx(n * (n - 1), rel=1e-10)
    wells = G.ConformalMetric(two_wells(n), dim=n)
    np.testing.assert_allclose(
        wells.ricci_scalar_closed_form(x), wells.ricci_scalar(x), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("c, px, py", [(30.0, 0.0, 0.0), (100.0, 0.7, -0.4), (300.0, -1.5, 1.2)])
def test_weak_field_slow_limit_is_newton(c, px, py):
    # Γ^i(v,v) with v = (1, w), |w| ≪ c and |Φ| ≪ c²: −ẍ = ∇Φ (1 + O(Φ/c²)) + O(|w|²|∇Φ|/c²);
    # here |Φ| ≤ 1.5 (relative correction ≤ 6/c²) and |w|² = 5e-6, |∇Φ| < 1 (absolute 1e-8)
    pot = two_wells(2)
    m = G.WeakFieldMetric(pot, d=2, c=c)
    x = jnp.array([0.0, px, py])
    w = jnp.array([1e-3, -2e-3])
    acc = m.acceleration(x, jnp.concatenate([jnp.ones(1), w]))[1:]
    grad = jax.grad(pot)(x[1:])
    np.testing.assert_allclose(acc, grad, rtol=6.0 / c**2, atol=1e-8)
    # the correction is really there, and of the predicted order Φ/c²
    assert float(jnp.max(jnp.abs(acc - grad))) < 10.0 / c**2


def test_fisher_is_pullback_and_predicts_kl(rng):
    m, _ = METRICS["fisher2"]
    q = jnp.array([0.2, 0.1])
    pull = G.PullbackMetric(m._sqrt_embedding, dim=2)
    np.testing.assert_allclose(m.metric(q), pull.metric(q), rtol=1e-10, atol=1e-12)
    # KL(P(q) ‖ P(q + δ)) = ½ δᵀ g δ + O(|δ|³): the ratio tends to 1 linearly in |δ|
    direction = jnp.asarray(rng.normal(size=2))
    ratios = []
    for eps in (1e-2, 1e-3):
        delta = eps * direction
        lp, lq = m.log_prob(q), m.log_prob(q + delta)
        kl = jnp.sum(jnp.exp(lp) * (lp - lq))
        ratios.append(float(kl / (0.5 * delta @ m.metric(q) @ delta)))
    assert abs(ratios[1] - 1.0) < 1e-2
    assert abs(ratios[1] - 1.0) < abs(ratios[0] - 1.0) + 1e-6


def test_safe_norm_gradient_finite_at_centre():
    pot = two_wells(3)
    g = jax.grad(pot)(jnp.zeros(3))
    assert bool(jnp.all(jnp.isfinite(g)))
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda x: G.safe_norm(x))(jnp.zeros(3)))))


def test_float32_structured_metric():
    m = G.ConformalMetric(two_wells(2), dim=2)
    x = jnp.array([0.1, 0.2], dtype=jnp.float32)
    v = jnp.array([1.0, 0.5], dtype=jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        acc = m.acceleration(x, v)
    acc64 = m.acceleration(x.astype(jnp.float64), v.astype(jnp.float64))
    assert acc.dtype == jnp.float32
    # float32 round-off on O(1) numbers
    np.testing.assert_allclose(acc, acc64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: G.TangherliniMetric(3), "D"),
        (lambda: G.TangherliniMetric(5, r_s=-1.0), "r_s"),
        (lambda: G.FisherMetric(lambda r: r, jnp.zeros((3, 2)), jnp.ones(3), 0.0), "temperature"),
        (lambda: G.FisherMetric(lambda r: r, jnp.zeros((3, 2)), jnp.ones(2), 1.0), "masses"),
        (lambda: G.FisherMetric(lambda r: r, jnp.zeros(3), jnp.ones(3), 1.0), "tokens"),
        (lambda: G.gaussian_wells(jnp.zeros((1, 2)), jnp.ones(1), width=0.0), "width"),
        (lambda: G.gaussian_wells(jnp.zeros((2, 2)), jnp.ones(3)), "depths"),
        (lambda: G.ConformalMetric(lambda x: x[0], dim=0), "dim"),
        (lambda: G.WeakFieldMetric(lambda x: x[0], d=2, c=0.0), "c"),
    ],
)
def test_invalid_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_fisher_metric_agrees_with_the_model_module():
    # the same selection law built from infograv.model's compiled Plummer kernel
    from infograv import model

    tokens = jnp.array([[0.0, 0.0], [1.0, 0.5], [-0.7, 1.1], [0.3, -1.2], [1.4, -0.6]])
    masses = jnp.array([1.0, 1.0, 2.0, 0.5, 1.5])
    pot = model.Potential("plummer", 2, epsilon=0.4)
    q, qmass, T = jnp.array([0.2, 0.1]), 1.7, 0.6
    ref = model.fisher_metric(model.SemanticSpace(tokens, masses), model.Query(q, qmass), pot, T)
    mine = G.FisherMetric(lambda r: pot(r, qmass), tokens, masses, T)
    # two float64 evaluations of the same covariance: 1e-12
    np.testing.assert_allclose(mine.metric(q), ref, rtol=1e-10, atol=1e-12)


_CONF3 = G.ConformalMetric(two_wells(3), dim=3)
_GENERAL3 = G.FunctionMetric(_CONF3.metric, dim=3)
_compare = eqx.filter_jit(
    lambda x, v: (_CONF3.acceleration(x, v), G.general_acceleration(_GENERAL3, x, v))
)


@settings(max_examples=15)
@given(
    st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
    st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
)
def test_conformal_closed_form_law_property(x, v):
    # the O(n) closed form and the matrix-free general path agree at any point and velocity
    closed, general = _compare(jnp.asarray(x), jnp.asarray(v))
    scale = 1.0 + float(jnp.max(jnp.abs(closed)))
    # an LU solve of a well-conditioned 3 × 3 system: 1e-12 relative to the scale
    np.testing.assert_allclose(general, closed, atol=1e-12 * scale)
