"""Dense factorisations without LAPACK (`infograv.geometry._dense`) against NumPy, and the
programs of the geometry and geodesic functions that use them: under `vmap` they must contain no
LAPACK call (jaxlib's CPU LAPACK kernels can deadlock XLA's thread pool when two run at once)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infograv.geodesic import log_map
from infograv.geometry import FunctionMetric, christoffel_autodiff, general_acceleration
from infograv.geometry._dense import lu_factor, lu_solve, slogdet, solve


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
