"""`geodesic_batch`: the fused block-wise Runge–Kutta loop against exact great circles, against
the single-orbit solver, its save points, direction, padding, failures and bad inputs."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from infograv import geodesic as GD, geometry as G, symbolic


def great_circles(rng, b, cart):
    """`b` unit-speed starts on the unit sphere, away from the poles, and the exact solution."""
    x0 = np.stack([rng.uniform(0.9, 2.2, b), rng.uniform(-np.pi, np.pi, b)], 1)
    u = rng.normal(size=(b, 2))
    # unit speed: θ̇² + sin²θ φ̇² = 1
    u /= np.sqrt(u[:, 0] ** 2 + np.sin(x0[:, 0]) ** 2 * u[:, 1] ** 2)[:, None]
    X0 = np.asarray(cart(jnp.asarray(x0)))
    T0 = np.asarray(jax.vmap(lambda x, v: jax.jvp(cart, (x,), (v,))[1])(x0, u))

    def exact(t):  # X(t) = X0 cos t + T0 sin t
        return X0 * np.cos(t) + T0 * np.sin(t)

    return jnp.asarray(x0), jnp.asarray(u), exact


@pytest.mark.parametrize(
    "solver, tol, err",
    [(None, 1e-11, 1e-9), (diffrax.Dopri5(), 1e-10, 1e-8), (diffrax.Tsit5(), 1e-10, 1e-8),
     (diffrax.Bosh3(), 1e-9, 1e-7)],
)
def test_great_circles_with_each_tableau(sphere, rng, solver, tol, err, cart):
    # short arcs (t = 1) so that no orbit nears a pole, where the chart is singular
    x0, v0, exact = great_circles(rng, 37, cart)
    ts = jnp.array([0.0, 0.25, 0.25, 0.6, 1.0])  # t0 itself and a repeated point included
    sol = GD.geodesic_batch(sphere, x0, v0, 1.0, ts=ts, solver=solver, rtol=tol, atol=tol,
                            block_size=8)
    assert sol.xs.shape == (5, 37, 2) and sol.vs.shape == (5, 37, 2)
    assert sol.result == diffrax.RESULTS.successful
    np.testing.assert_array_equal(sol.xs[0], x0)
    for k, t in enumerate(np.asarray(ts)):
        np.testing.assert_allclose(cart(sol.xs[k]), exact(t), atol=err)
    # unit speed is conserved
    speed = jax.vmap(jax.vmap(sphere.inner))(sol.xs, sol.vs, sol.vs)
    np.testing.assert_allclose(speed, 1.0, atol=10 * err)
    # five blocks of 8 (the last padded), each with its own step count
    assert sol.block_steps.shape == (5,) and int(sol.num_steps) == int(sol.block_steps.max())


@pytest.mark.parametrize("solver, order", [(None, 8), (diffrax.Tsit5(), 5)])
def test_observed_order_with_constant_steps(sphere, rng, solver, order, cart):
    # a wrong tableau coefficient that the embedded error estimate cannot see still lowers
    # the order: the slope of log(error) against log(h) shows it
    # (steps that divide the span, so no step is shortened; errors from 1e-6 to 1e-12, above
    # rounding. Tsit5 shows about one order more than 5 on this problem.)
    x0, v0, exact = great_circles(rng, 8, cart)
    hs = np.array([0.15, 0.1, 0.075])
    errs = []
    for h in hs:
        sol = GD.geodesic_batch(sphere, x0, v0, 1.5, solver=solver, adaptive=False, dt0=float(h))
        errs.append(float(jnp.max(jnp.abs(cart(sol.xs[-1]) - exact(1.5)))))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert order - 0.5 < slope < order + 1.5, (errs, slope)


def test_blocks_do_not_change_the_answer(sphere, rng, cart):
    x0, v0, _ = great_circles(rng, 23, cart)
    one = GD.geodesic_batch(sphere, x0, v0, 1.2, rtol=1e-12, atol=1e-12, block_size=None)
    many = GD.geodesic_batch(sphere, x0, v0, 1.2, rtol=1e-12, atol=1e-12, block_size=4)
    assert one.block_steps.shape == (1,) and many.block_steps.shape == (6,)
    # two 1e-12 solutions of the same problem with different step sequences
    np.testing.assert_allclose(one.xs, many.xs, atol=1e-10)


def test_backwards_returns_to_the_start(sphere, rng, cart):
    x0, v0, _ = great_circles(rng, 6, cart)
    fwd = GD.geodesic_batch(sphere, x0, v0, 1.0, rtol=1e-12, atol=1e-12)
    back = GD.geodesic_batch(sphere, fwd.xs[-1], fwd.vs[-1], 0.0, t0=1.0, rtol=1e-12,
                             atol=1e-12)
    np.testing.assert_allclose(back.xs[-1], x0, atol=1e-10)
    np.testing.assert_allclose(back.vs[-1], v0, atol=1e-10)


def test_schwarzschild_batch_matches_single_orbits():
    schw = G.CompiledMetric.from_symbolic(symbolic.schwarzschild(), params={sp.Symbol("M"): 1.0})
    r0 = np.array([7.0, 9.0, 13.0])
    L = np.sqrt(r0) / np.sqrt(1 - 3 / r0) * 1.05
    f = 1 - 2 / r0
    phidot = L / r0**2
    x0 = jnp.asarray(np.stack([0 * r0, r0, np.full(3, np.pi / 2), 0 * r0], 1))
    v0 = jnp.asarray(np.stack([np.sqrt((1 + r0**2 * phidot**2) / f), 0 * r0, 0 * r0, phidot], 1))
    batch = GD.geodesic_batch(schw, x0, v0, 300.0, rtol=1e-11, atol=1e-11, block_size=2)
    single = jax.vmap(lambda x, v: GD.geodesic(schw, x, v, 300.0, rtol=1e-11, atol=1e-11))(x0, v0)
    np.testing.assert_allclose(batch.xs[-1], single.xs[:, -1], rtol=1e-7, atol=1e-7)
    # E, L conserved to the tolerance
    E = jax.vmap(lambda x, v: GD.energy(schw, x, v))
    np.testing.assert_allclose(E(batch.xs[-1], batch.vs[-1]), E(x0, v0), rtol=1e-9)


def test_jit_and_forward_mode(sphere, rng, cart):
    x0, v0, _ = great_circles(rng, 4, cart)
    run = jax.jit(lambda x, v: GD.geodesic_batch(sphere, x, v, 0.7, rtol=1e-10, atol=1e-10).xs[-1])
    np.testing.assert_allclose(run(x0, v0), GD.geodesic_batch(sphere, x0, v0, 0.7, rtol=1e-10,
                                                              atol=1e-10).xs[-1])
    # a Jacobi field by forward mode against a central finite difference
    dv = jnp.zeros_like(v0).at[:, 1].set(1.0)
    _, tangent = jax.jvp(lambda v: run(x0, v), (v0,), (dv,))
    h = 1e-6
    fd = (run(x0, v0 + h * dv) - run(x0, v0 - h * dv)) / (2 * h)
    np.testing.assert_allclose(tangent, fd, atol=1e-6)


def test_failures_are_reported(sphere):
    schw = G.CompiledMetric.from_symbolic(symbolic.schwarzschild(), params={sp.Symbol("M"): 1.0})
    # radial infall: in Schwarzschild coordinates ṫ → ∞ at the horizon r = 2M, so the steps
    # shrink to nothing before τ = 50
    x0 = jnp.array([[0.0, 6.0, np.pi / 2, 0.0]])
    v0 = jnp.array([[1.0 / np.sqrt(1 - 2 / 6), 0.0, 0.0, 0.0]])
    sol = GD.geodesic_batch(schw, x0, v0, 50.0, throw=False)
    assert sol.result != diffrax.RESULTS.successful
    with pytest.raises(Exception, match="geodesic_batch"):
        GD.geodesic_batch(schw, x0, v0, 50.0)
    # too few steps for the span
    x = jnp.array([[1.0, 0.2]])
    v = jnp.array([[0.3, 1.0]])
    sol = GD.geodesic_batch(sphere, x, v, 5.0, max_steps=3, throw=False)
    assert sol.result == diffrax.RESULTS.max_steps_reached
    # exactly the budget is enough: four constant steps of 0.25
    sol = GD.geodesic_batch(sphere, x, v, 1.0, adaptive=False, dt0=0.25, max_steps=4)
    assert sol.result == diffrax.RESULTS.successful and int(sol.num_steps) == 4
    sol = GD.geodesic_batch(sphere, x, v, 1.0, adaptive=False, dt0=0.25, max_steps=3,
                            throw=False)
    assert sol.result == diffrax.RESULTS.max_steps_reached and int(sol.num_steps) == 3
    with pytest.raises(Exception, match="max_steps=3"):
        GD.geodesic_batch(sphere, x, v, 5.0, max_steps=3)


def test_bad_inputs(sphere):
    x = jnp.array([[1.0, 0.2]])
    v = jnp.array([[0.3, 1.0]])
    with pytest.raises(ValueError, match="x0, v0: expected equal shapes"):
        GD.geodesic_batch(sphere, x[0], v[0], 1.0)
    with pytest.raises(ValueError, match="x0, v0: the batch is empty"):
        GD.geodesic_batch(sphere, x[:0], v[:0], 1.0)
    with pytest.raises(ValueError, match="block_size"):
        GD.geodesic_batch(sphere, x, v, 1.0, block_size=0)
    with pytest.raises(ValueError, match="solver: expected an explicit embedded"):
        GD.geodesic_batch(sphere, x, v, 1.0, solver=diffrax.Kvaerno5())
    with pytest.raises(ValueError, match="solver: expected an explicit embedded"):
        GD.geodesic_batch(sphere, x, v, 1.0, solver=diffrax.Euler())
    with pytest.raises(ValueError, match="ts: save points"):
        GD.geodesic_batch(sphere, x, v, 1.0, ts=jnp.array([0.5, 0.2]))
    with pytest.raises(ValueError, match="ts: save points"):
        GD.geodesic_batch(sphere, x, v, 1.0, ts=jnp.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="rtol, atol"):
        GD.geodesic_batch(sphere, x, v, 1.0, rtol=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        GD.geodesic_batch(sphere, x, v, 1.0, max_steps=0)
    with pytest.raises(ValueError, match="dt0: constant steps"):
        GD.geodesic_batch(sphere, x, v, 1.0, adaptive=False)
