"""Dense factorisations without LAPACK (`infograv.geometry._dense`) against NumPy, and the
programs of the geometry and geodesic functions that use them: under `vmap` they must contain no
LAPACK call (jaxlib's CPU LAPACK kernels can deadlock XLA's thread pool when two run at once)."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from infograv.geodesic import log_map
from infograv.geometry import (
    FunctionMetric,
    PullbackMetric,
    christoffel_autodiff,
    general_acceleration,
)
from infograv.geometry._dense import (
    DenseLeastSquares,
    lstsq,
    lu_factor,
    lu_solve,
    qr_factor,
    slogdet,
    solve,
)


def _lowered(fn, *args):
    return jax.jit(fn).lower(*args).as_text().lower()


@pytest.mark.parametrize("n", [1, 3, 17, 40])
def test_lu_solve_and_slogdet_match_numpy(rng, n):
    # general (non-symmetric), symmetric indefinite (a pseudo-Riemannian metric) and SPD;
    # n = 17 and 40 run the rolled loop, n ≤ 16 the unrolled one
    x = rng.normal(size=(n, n))
    for a in (x, x + x.T, x @ x.T + np.eye(n)):
        lu, perm, _ = lu_factor(jnp.asarray(a))
        low = np.tril(np.asarray(lu), -1) + np.eye(n)
        np.testing.assert_allclose(low @ np.triu(np.asarray(lu)), a[np.asarray(perm)],
                                   rtol=1e-10, atol=1e-10)
        b = rng.normal(size=(n, 2))
        np.testing.assert_allclose(np.asarray(lu_solve(lu_factor(jnp.asarray(a)), jnp.asarray(b))),
                                   np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            np.asarray(lu_solve(lu_factor(jnp.asarray(a)), jnp.asarray(b[:, 0]), transpose=True)),
            np.linalg.solve(a.T, b[:, 0]), rtol=1e-8, atol=1e-10)
        sign, logdet = slogdet(jnp.asarray(a))
        ref_sign, ref_logdet = np.linalg.slogdet(a)
        assert float(sign) == ref_sign
        np.testing.assert_allclose(float(logdet), ref_logdet, rtol=1e-10, atol=1e-10)


def test_singular_matrix_gives_zero_sign_and_minus_infinity():
    a = jnp.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    sign, logdet = slogdet(a)
    assert float(sign) == 0.0 and float(logdet) == -np.inf
    sign, logdet = slogdet(jnp.zeros((2, 2)))
    assert float(sign) == 0.0 and float(logdet) == -np.inf
    assert not np.isfinite(float(slogdet(jnp.full((2, 2), np.nan))[1]))


def test_solve_derivatives_are_implicit_and_match_numpy(rng):
    x = rng.normal(size=(5, 5))
    a = jnp.asarray(x @ x.T + np.eye(5))
    b = jnp.asarray(rng.normal(size=5))
    da = jnp.asarray(rng.normal(size=(5, 5)))
    da = da + da.T
    db = jnp.asarray(rng.normal(size=5))
    for sym in (True, False):
        val, tan = jax.jvp(lambda m, r: solve(m, r, symmetric=sym), (a, b), (da, db))
        ref, ref_tan = jax.jvp(jnp.linalg.solve, (a, b), (da, db))
        np.testing.assert_allclose(np.asarray(val), np.asarray(ref), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(tan), np.asarray(ref_tan), rtol=1e-9)
        grad = jax.grad(lambda m: jnp.sum(solve(m, b, symmetric=sym) ** 2))(a)
        ref_grad = jax.grad(lambda m: jnp.sum(jnp.linalg.solve(m, b) ** 2))(a)
        np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-8)
    # a non-symmetric matrix needs the transposed solve in reverse mode
    y = jnp.asarray(rng.normal(size=(4, 4)) + 4 * np.eye(4))
    grad = jax.grad(lambda m: jnp.sum(solve(m, b[:4]) ** 2))(y)
    ref_grad = jax.grad(lambda m: jnp.sum(jnp.linalg.solve(m, b[:4]) ** 2))(y)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-8)
    with pytest.raises(ValueError, match="b: expected shape"):
        solve(a, jnp.ones(3))
    with pytest.raises(ValueError, match="a: expected a square"):
        slogdet(jnp.ones((2, 3)))


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5), (40, 17)])
def test_householder_least_squares_match_numpy(rng, shape):
    # tall: least squares; wide: least norm; square: the solve; 17 columns run the rolled loop
    m, n = shape
    a = rng.normal(size=shape)
    b = rng.normal(size=(m, 2))
    np.testing.assert_allclose(np.asarray(lstsq(jnp.asarray(a), jnp.asarray(b))),
                               np.linalg.lstsq(a, b, rcond=None)[0], rtol=1e-9, atol=1e-12)
    if m >= n:
        r, u = qr_factor(jnp.asarray(a))
        # R matches NumPy's up to the signs of its rows; the reflectors are unit or zero
        np.testing.assert_allclose(np.abs(np.asarray(r)), np.abs(np.linalg.qr(a)[1]),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(u), axis=1), 1.0, rtol=1e-12)
    # the lineax solver: values and reverse-mode derivatives as lineax's LAPACK-backed QR
    op = lx.MatrixLinearOperator(jnp.asarray(a))
    vec = jnp.asarray(b[:, 0])
    got = lx.linear_solve(op, vec, DenseLeastSquares()).value
    ref = lx.linear_solve(op, vec, lx.QR()).value
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-9, atol=1e-12)
    grad = jax.grad(lambda y: jnp.sum(lx.linear_solve(op, y, DenseLeastSquares()).value ** 3))
    ref_grad = jax.grad(lambda y: jnp.sum(lx.linear_solve(op, y, lx.QR()).value ** 3))
    np.testing.assert_allclose(np.asarray(grad(vec)), np.asarray(ref_grad(vec)), rtol=1e-8,
                               atol=1e-12)
    with pytest.raises(ValueError, match="a: expected a \\(m, n\\) matrix with m ≥ n"):
        qr_factor(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="b: expected shape"):
        lstsq(jnp.asarray(a), jnp.ones(m + 1))


def _sphere(p):
    s, c = jnp.sin(p[0]), jnp.cos(p[0])
    return jnp.stack([s * jnp.cos(p[1]), s * jnp.sin(p[1]), c])


def test_vmapped_shooting_log_map_and_pullback_call_no_lapack(rng):
    # the Levenberg–Marquardt step below 33 dimensions and PullbackMetric's least-squares Γ
    # were lineax QR (LAPACK geqrf/ormqr); both are now Householder loops in plain XLA
    n = 4
    metric = FunctionMetric(_warped, dim=n)
    xs = jnp.asarray(0.3 * rng.normal(size=(2, n)))
    vs = jnp.asarray(rng.normal(size=(2, n)))
    sphere = PullbackMetric(_sphere, dim=2)
    pts = jnp.array([[1.0, 0.2], [0.7, -0.4]])
    vel = jnp.array([[0.3, 1.0], [-0.5, 0.2]])
    progs = {
        "shooting": _lowered(jax.vmap(lambda a, b: log_map(metric, a, b, n_steps=16,
                                                           throw=False).velocity),
                             xs, xs + 0.1 * vs),
        "pullback": _lowered(jax.vmap(sphere.acceleration), pts, vel),
        "shooting gradient": _lowered(jax.vmap(jax.grad(
            lambda a, b: log_map(metric, a, b, n_steps=16, throw=False).length, argnums=1)),
            xs, xs + 0.1 * vs),
    }
    for name, text in progs.items():
        assert "lapack" not in text, name
    # the round sphere's Christoffel symbols: Γ^θ_φφ = −sin θ cos θ, Γ^φ_θφ = cot θ
    acc = np.asarray(jax.vmap(sphere.acceleration)(pts, vel))
    th, v = np.asarray(pts)[:, 0], np.asarray(vel)
    ref = np.stack([-np.sin(th) * np.cos(th) * v[:, 1] ** 2,
                    2.0 * np.cos(th) / np.sin(th) * v[:, 0] * v[:, 1]], axis=1)
    np.testing.assert_allclose(acc, ref, rtol=1e-10, atol=1e-12)
    # shooting and the energy method agree on the geodesic, and the shooting derivative with
    # respect to the end point is the unit velocity there (∂ length / ∂ x1 = g v(1) / |v|)
    sol = jax.vmap(lambda a, b: log_map(metric, a, b, n_steps=32, throw=False))(
        xs, xs + 0.1 * vs)
    en = jax.vmap(lambda a, b: log_map(metric, a, b, method="energy", n_steps=32,
                                       throw=False))(xs, xs + 0.1 * vs)
    assert np.all(np.asarray(sol.result._value) == 0)
    np.testing.assert_allclose(np.asarray(sol.length), np.asarray(en.length), rtol=1e-5)
    grad = np.asarray(jax.vmap(jax.grad(
        lambda a, b: log_map(metric, a, b, n_steps=32, throw=False).length, argnums=1))(
        xs, xs + 0.1 * vs))
    x1 = xs + 0.1 * vs
    v1 = np.asarray(sol.path[:, -1] - sol.path[:, -2]) * 32
    g1 = np.asarray(jax.vmap(_warped)(x1))
    ref = np.einsum("nab,nb->na", g1, v1) / np.asarray(sol.length)[:, None]
    np.testing.assert_allclose(grad, ref, rtol=2e-2)


def _warped(x):
    # a non-conformal metric with position-dependent off-diagonal terms, so every
    # factorisation is exercised (dense FunctionMetric: inverse_vp is a dense solve)
    n = x.shape[0]
    u = jnp.sin(x)[:, None] * jnp.cos(x)[None, :]
    return (1.0 + 0.3 * jnp.sum(x * x)) * jnp.eye(n) + 0.1 * (u + u.T)


def test_vmapped_geometry_and_log_map_programs_call_no_lapack(rng):
    n = 6
    metric = FunctionMetric(_warped, dim=n)
    xs = jnp.asarray(0.3 * rng.normal(size=(2, n)))
    vs = jnp.asarray(rng.normal(size=(2, n)))
    progs = {
        "christoffel_autodiff": _lowered(jax.vmap(lambda x: christoffel_autodiff(_warped, x)), xs),
        "general_acceleration": _lowered(
            jax.vmap(lambda x, v: general_acceleration(metric, x, v)), xs, vs),
        "ricci_scalar": _lowered(jax.vmap(metric.ricci_scalar), xs),
        "log_map": _lowered(jax.vmap(lambda a, b: log_map(metric, a, b, method="energy",
                                                          n_steps=4, throw=False).length),
                            xs, xs + 0.1 * vs),
    }
    for name, text in progs.items():
        assert "lapack" not in text, name
    # and the values are those of the LAPACK-backed references
    g = np.asarray(jax.vmap(_warped)(xs))
    dg = np.asarray(jax.vmap(jax.jacfwd(_warped))(xs))
    low = np.transpose(dg, (0, 1, 3, 2)) + dg - np.transpose(dg, (0, 3, 1, 2))
    ref = 0.5 * np.einsum("nad,ndbc->nabc", np.linalg.inv(g), low)
    got = np.asarray(jax.vmap(lambda x: christoffel_autodiff(_warped, x))(xs))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    acc = np.asarray(jax.vmap(lambda x, v: general_acceleration(metric, x, v))(xs, vs))
    np.testing.assert_allclose(acc, np.einsum("nabc,nb,nc->na", ref, np.asarray(vs),
                                              np.asarray(vs)), rtol=1e-9, atol=1e-12)
    sol = jax.vmap(lambda a, b: log_map(metric, a, b, method="energy", n_steps=4,
                                        throw=False))(xs, xs + 0.1 * vs)
    assert np.all(np.isfinite(np.asarray(sol.length)))


def test_log_map_endpoint_check_still_rejects_a_singular_metric():
    metric = FunctionMetric(lambda x: jnp.diag(jnp.stack([x[0], 1.0 + 0.0 * x[0]])), dim=2)
    with pytest.raises(ValueError, match="x0: the metric is singular"):
        log_map(metric, jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0]))
