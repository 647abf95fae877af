"""`infograv.to_jax`: agreement with SymPy, transformations, broadcasting, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import sympy as sp

import infograv

x, y, z, G, M = sp.symbols("x y z G M")

EXPRS = [
    sp.sin(x) * sp.exp(-y**2) + sp.sqrt(x**2 + y**2 + z**2),
    sp.log(1 + x**2) / (2 + sp.cos(y * z)) + sp.Rational(1, 3) * x**3,
    sp.Matrix([[x * y, sp.tanh(z)], [sp.atan(x) + y, sp.erf(y / 3)]]),
    sp.Array([[[x, 0], [1, y * z]], [[sp.pi, x**y], [z, sp.cosh(x)]]]),
]


def _abs_args(vals):
    # x**y needs x > 0 to be real
    return [abs(v) + 0.1 for v in vals]


@pytest.mark.parametrize("expr", EXPRS, ids=["scalar", "scalar2", "matrix", "array"])
def test_matches_sympy_evalf(expr, rng):
    f = infograv.to_jax(expr, [x, y, z])
    for _ in range(5):
        vals = _abs_args(rng.normal(size=3))
        sub = dict(zip((x, y, z), vals))
        if isinstance(expr, sp.MatrixBase):
            ref = np.array(expr.subs(sub).evalf(30).tolist(), dtype=float)
        elif isinstance(expr, sp.NDimArray):
            ref = np.array(expr.subs(sub).applyfunc(lambda e: e.evalf(30)).tolist(), dtype=float)
        else:
            ref = float(expr.subs(sub).evalf(30))
        got = np.asarray(f(*vals))
        assert got.shape == np.shape(ref)
        # 1e-12 relative in float64: a few ulps of rounding through CSE'd arithmetic.
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)


def test_constant_and_zero_entries_broadcast():
    f = infograv.to_jax(sp.Matrix([[0, 1], [x, 2 * x]]), [x])
    out = f(jnp.arange(3.0))
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[:, 0, 0], 0.0)
    np.testing.assert_array_equal(out[:, 0, 1], 1.0)
    np.testing.assert_array_equal(out[:, 1, 1], 2 * np.arange(3.0))


def test_jit_vmap_grad_against_finite_differences(rng):
    expr = sp.exp(-x**2 / 2) * sp.sin(3 * y) + x * y**2
    f = infograv.to_jax(expr, [x, y])
    gx = jax.jit(jax.grad(f, argnums=0))
    pts = rng.normal(size=(4, 2))
    for px, py in pts:
        h = 1e-6
        fd = (f(px + h, py) - f(px - h, py)) / (2 * h)
        # central differences: truncation O(h^2) ~ 1e-12, rounding ~ eps/h ~ 1e-10.
        np.testing.assert_allclose(gx(px, py), fd, rtol=1e-7, atol=1e-9)
    batched = jax.vmap(f)(jnp.asarray(pts[:, 0]), jnp.asarray(pts[:, 1]))
    np.testing.assert_allclose(batched, f(pts[:, 0], pts[:, 1]), rtol=1e-15)


def test_float32_follows_inputs():
    f = infograv.to_jax(sp.Matrix([x**2, 1]), [x])
    out = f(jnp.float32(1.5))
    assert out.dtype == jnp.float32
    assert out.shape == (2, 1)  # a SymPy column Matrix
    np.testing.assert_allclose(out[:, 0], [2.25, 1.0], rtol=1e-6)


def test_params_are_differentiable_leaves():
    f = infograv.to_jax(-G * M / x, [x], params={G: 2.0, M: 3.0})
    assert f(2.0) == pytest.approx(-3.0)
    grads = eqx.filter_grad(lambda m: m(2.0))(f)
    assert grads.params["G"] == pytest.approx(-1.5)
    assert grads.params["M"] == pytest.approx(-1.0)


def test_lift_floats_makes_constants_trainable():
    f = infograv.to_jax(sp.Float(0.25) * x**2, [x], lift_floats=True)
    assert list(f.params) == ["_c0"]
    g = eqx.filter_grad(lambda m: m(2.0))(f)
    assert g.params["_c0"] == pytest.approx(4.0)


def test_cache_returns_same_code():
    infograv.clear_cache()
    a = infograv.to_jax(sp.sin(x) + y, [x, y])
    b = infograv.to_jax(sp.sin(x) + y, [x, y])
    assert a._fn is b._fn


def test_besselk_matches_scipy(rng):
    nu = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    xs = np.exp(rng.uniform(np.log(1e-2), np.log(50.0), size=6))
    got = infograv.besselk(jnp.asarray(nu), jnp.asarray(xs))
    # trapezoid on a double-exponentially decaying integrand: near machine precision.
    np.testing.assert_allclose(got, scipy.special.kv(nu, xs), rtol=1e-11)
    # a scalar order with an array argument (no rank promotion needed)
    np.testing.assert_allclose(infograv.besselk(1.0, jnp.asarray(xs)), scipy.special.kv(1, xs),
                               rtol=1e-11)
    f = infograv.to_jax(sp.besselk(1, x), [x])
    np.testing.assert_allclose(f(jnp.asarray(xs)), scipy.special.kv(1, xs), rtol=1e-11)
    np.testing.assert_allclose(f(0.7), scipy.special.kv(1, 0.7), rtol=1e-11)


def test_float64_sin_cos_tan_within_two_ulp(rng):
    import mpmath

    from infograv import _special

    # the reduction constants: π/2 split into three 30-bit heads and a remainder
    with mpmath.workprec(256):
        rest = mpmath.pi / 2
        for part in _special._P[:3]:
            mant, exp = mpmath.frexp(rest)
            assert part == float(mpmath.ldexp(mpmath.floor(mpmath.ldexp(mant, 30)), exp - 30))
            rest -= mpmath.mpf(part)
        assert _special._P[3] == float(rest)
    half_pi = np.pi / 2
    xs = np.concatenate([
        rng.uniform(-4, 4, 300),
        rng.uniform(-1e3, 1e3, 300),
        10.0 ** rng.uniform(3, 12.5, 300) * rng.choice([-1, 1], 300),
        # next to multiples of π/2, where the reduction cancels most digits
        np.arange(1, 200) * half_pi,
        np.nextafter(np.arange(1, 200) * half_pi, np.inf),
        [0.0, -0.0, 1e-300, 5e-324, np.pi, -np.pi],
    ])
    mpmath.mp.prec = 160
    for name, ours, ref in [("sin", _special.sin, mpmath.sin), ("cos", _special.cos, mpmath.cos),
                            ("tan", _special.tan, mpmath.tan)]:
        got = np.asarray(ours(jnp.asarray(xs)))
        exact = np.array([float(ref(mpmath.mpf(float(v)))) for v in xs])
        ulps = np.abs(got - exact) / np.spacing(np.abs(exact))
        tol = 4.0 if name == "tan" else 2.0  # a quotient of two 2-ulp values
        assert np.max(ulps) <= tol, (name, xs[np.argmax(ulps)], np.max(ulps))
    # outside the reduction's range and for non-finite input: NaN, never a wrong number
    bad = jnp.array([2.0**43 * np.pi, -1e300, np.inf, -np.inf, np.nan])
    assert np.all(np.isnan(_special.sin(bad))) and np.all(np.isnan(_special.cos(bad)))
    # float32 goes to jax.numpy; derivatives are the exact ones
    x32 = jnp.asarray(xs[:50], dtype=jnp.float32)
    np.testing.assert_array_equal(_special.sin(x32), jnp.sin(x32))
    d = jax.vmap(jax.grad(_special.sin))(jnp.asarray(xs[:50]))
    np.testing.assert_allclose(d, np.cos(xs[:50]), rtol=1e-15, atol=1e-16)
    d = jax.vmap(jax.grad(_special.cos))(jnp.asarray(xs[:50]))
    np.testing.assert_allclose(d, -np.sin(xs[:50]), rtol=1e-15, atol=1e-16)
    # and to_jax uses them for float64
    f = infograv.to_jax(sp.sin(x) * sp.cos(x) + sp.cot(x), [x])
    np.testing.assert_allclose(f(jnp.asarray(xs[:50])),
                               np.sin(xs[:50]) * np.cos(xs[:50]) + 1 / np.tan(xs[:50]),
                               rtol=1e-13)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: infograv.to_jax(x + y, [x]), "free symbols y"),
        (lambda: infograv.to_jax(x, [x, x]), "distinct"),
        (lambda: infograv.to_jax(x, ["x"]), "Symbol"),
        (lambda: infograv.to_jax(sp.Function("phi")(x), [x]), "undefined functions"),
        (lambda: infograv.to_jax(x * G, [x, G], params={G: 1.0}), "also listed"),
        (lambda: infograv.to_jax(sp.Eq(x, 1), [x]), "relation"),
    ],
)
def test_bad_input_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_plain_jax_jit_of_the_compiled_function():
    # `jax.jit(f)` must accept a compiled function like any Python function.
    f = infograv.to_jax(G * sp.sin(x), [x], params={G: 2.0})
    np.testing.assert_allclose(jax.jit(f)(0.5), 2 * np.sin(0.5), rtol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(jnp.array([0.5, 1.0])),
                               2 * np.sin([0.5, 1.0]), rtol=1e-15)
    # under eqx.filter_jit the parameters stay differentiable leaves
    g = eqx.filter_jit(eqx.filter_grad(lambda m, v: m(v)))(f, 0.5)
    np.testing.assert_allclose(g.params["G"], np.sin(0.5), rtol=1e-15)
