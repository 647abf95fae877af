"""Sphere, weak field, Jacobi, log map, events, Langevin and the errors of bad inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import sympy as sp

from infograv import geodesic as GD, geometry as G, symbolic


def wells2():
    c = jnp.array([[0.0, 0.0], [1.5, 0.5]])
    return G.gaussian_wells(c, jnp.array([1.0, 0.6]), width=0.7)


# -- sphere ----------------------------------------------------------------------------------


def test_sphere_geodesics_are_great_circles(sphere, rng, cart):
    x0 = jnp.array([1.1, 0.3])
    v0 = jnp.asarray(rng.normal(size=2))
    ts = jnp.linspace(0.0, 2.5, 26)
    sol = GD.geodesic(sphere, x0, v0, 2.5, ts=ts, kind="spacelike", normalize=True, rtol=1e-11,
                      atol=1e-11)
    X = cart(sol.xs)
    # the plane of the great circle: through the origin, spanned by X(0) and X'(0)
    tangent = jax.jvp(cart, (x0,), (sol.vs[0],))[1]
    normal = jnp.cross(X[0], tangent)
    # a 1e-11 solution, mapped through sin/cos: 1e-9 absolute
    assert float(jnp.max(jnp.abs(X @ normal))) < 1e-9
    # unit speed: the angle travelled equals the parameter
    angles = jnp.arccos(jnp.clip(X @ X[0], -1.0, 1.0))
    np.testing.assert_allclose(angles, ts, atol=1e-8)


def test_sphere_log_map_is_the_great_circle_arc(sphere, cart):
    a = jnp.array([1.0, 0.2])
    pairs = jnp.array([[1.3, 1.5], [0.6, -0.8], [2.0, 0.9]])
    sols = jax.vmap(lambda b: GD.log_map(sphere, a, b))(pairs)
    arc = jnp.arccos(cart(pairs) @ cart(a))
    # RK4 with 64 steps on an O(1) arc: error ~ (1/64)⁴ ≈ 6e-8 of curvature terms → 1e-8
    np.testing.assert_allclose(sols.length, arc, rtol=1e-8)
    np.testing.assert_allclose(sols.path[:, -1], pairs, atol=1e-9)
    # |log| = distance; energy = ½ distance² for a geodesic
    np.testing.assert_allclose(sols.energy, 0.5 * arc**2, rtol=1e-7)
    # energy minimisation finds the same arc to its O(1/K²) discretisation error
    e = GD.log_map(sphere, a, pairs[0], method="energy", n_steps=32)
    assert float(e.length) == pytest.approx(float(arc[0]), rel=1e-3)


def test_log_map_gradient_with_respect_to_endpoint(sphere, cart):
    # ∂/∂x1 (½ d²) = g(x1) ẋ(1), here against the closed-form great-circle distance
    a = jnp.array([1.0, 0.2])
    b = jnp.array([1.3, 1.5])

    def half_d2(x1):
        return GD.log_map(sphere, a, x1).energy

    exact = jax.grad(lambda x1: 0.5 * jnp.arccos(cart(x1) @ cart(a)) ** 2)(b)
    # implicit differentiation through the Newton solve; RK4 error 1e-8
    np.testing.assert_allclose(jax.grad(half_d2)(b), exact, rtol=1e-6, atol=1e-8)


def test_log_map_gradient_with_respect_to_metric_parameter():
    # conformal metric e^{2φ}δ with φ a Gaussian well of width σ: d length / dσ vs
    # central finite differences of step 1e-5 (error ~1e-10 relative)
    a, b = jnp.array([-1.0, -0.3]), jnp.array([1.2, 0.4])

    def length(sigma):
        r, expr, s = G.gaussian_kernel()
        import infograv

        k = infograv.to_jax(expr, [r], params={s: sigma})
        phi = G.RadialPotential(kernel=k, centres=jnp.zeros((1, 2)), weights=jnp.array([0.5]))
        return GD.log_map(G.ConformalMetric(phi, dim=2), a, b, n_steps=16).length

    g = jax.grad(length)(0.8)
    fd = (length(0.8 + 1e-5) - length(0.8 - 1e-5)) / 2e-5  # the second call reuses the compile
    assert float(g) == pytest.approx(float(fd), rel=1e-5)
    assert abs(float(g)) > 1e-3


def test_log_map_failure_is_a_result_code_not_a_nan(sphere):
    a, b = jnp.array([1.0, 0.2]), jnp.array([1.3, 1.5])
    bad = GD.log_map(sphere, a, b, max_steps=1, throw=False)
    assert bad.result != GD.RESULTS.successful
    with pytest.raises(eqx.EquinoxRuntimeError, match="steps|reach"):
        GD.log_map(sphere, a, b, max_steps=1, throw=True)


def test_log_map_higher_dimension_conformal(rng):
    # d = 64 (d = 384 is in benchmarks/bench_logmap.py): shooting converges and agrees with
    # path-energy minimisation
    d = 64
    phi = G.gaussian_wells(jnp.asarray(rng.normal(size=(4, d)) * 0.05), jnp.ones(4), width=1.0)
    m = G.ConformalMetric(phi, dim=d)
    a = jnp.asarray(rng.normal(size=d) * 0.1)
    b = jnp.asarray(rng.normal(size=d) * 0.1)
    s = GD.log_map(m, a, b, n_steps=16)
    e = GD.log_map(m, a, b, method="energy", n_steps=16)
    assert s.result == GD.RESULTS.successful
    # midpoint path energy with 16 segments vs RK4: O(1/16²) relative
    assert float(e.length) == pytest.approx(float(s.length), rel=5e-3)
    # a curved metric: the geodesic is not the straight line
    assert float(s.length) != pytest.approx(float(jnp.linalg.norm(b - a)), rel=1e-2)


# -- weak field and Jacobi against Newton (scipy DOP853 as the reference) --------------------


def _newton(pot, x0, v0, t_end, t_eval):
    grad = jax.jit(jax.grad(pot))

    def rhs(t, y):
        return np.concatenate([y[2:], -np.asarray(grad(jnp.asarray(y[:2])))])

    return scipy.integrate.solve_ivp(rhs, (0.0, t_end), np.concatenate([x0, v0]), method="DOP853",
                                     rtol=1e-12, atol=1e-12, dense_output=True, t_eval=t_eval)


def test_weak_field_slow_geodesics_follow_newton():
    pot = wells2()
    x0, w0 = np.array([1.0, -1.0]), np.array([0.2, 0.5])
    ref = _newton(pot, x0, w0, 6.0, None)
    errs = []
    for c in (100.0, 1000.0):
        m = G.WeakFieldMetric(pot, d=2, c=c)
        y0 = jnp.concatenate([jnp.zeros(1), jnp.asarray(x0)])
        u0 = jnp.concatenate([jnp.ones(1), jnp.asarray(w0)])
        sol = GD.geodesic(m, y0, u0, 6.0, ts=jnp.linspace(0.5, 6.0, 12), rtol=1e-11, atol=1e-11)
        # compare at equal coordinate time τ = x⁰
        tau = np.asarray(sol.xs[:, 0])
        newton = ref.sol(np.clip(tau, 0.0, 6.0))[:2].T
        errs.append(np.max(np.abs(np.asarray(sol.xs[:, 1:]) - newton)))
    # corrections are O(Φ/c², w²/c²): ~1e-4 at c = 100 and 1e-6 at c = 1000, times O(1) growth
    assert errs[1] < 1e-4
    assert errs[0] / errs[1] > 30  # and they fall like 1/c²


def test_jacobi_geodesics_are_newtonian_trajectories():
    pot = wells2()
    # enough kinetic energy that E − U ≥ 0.5 everywhere (no turning point: t(s) stays smooth)
    x0, v0 = np.array([1.0, -1.0]), np.array([0.8, 1.2])
    E = float(pot(jnp.asarray(x0))) + 0.5 * v0 @ v0
    m = G.JacobiMetric(pot, E, dim=2)
    # dx/ds = ẋ / (2(E − U)); t(s) = ∫ ds / (2(E − U))
    u0 = jnp.asarray(v0) / (2 * (E - pot(jnp.asarray(x0))))
    s_grid = np.linspace(0.0, 4.0, 2001)
    sol = GD.geodesic(m, jnp.asarray(x0), u0, 4.0, ts=jnp.asarray(s_grid), rtol=1e-12, atol=1e-12)
    xs = np.asarray(sol.xs)
    rate = 1.0 / (2.0 * (E - np.asarray(jax.vmap(pot)(sol.xs))))
    t_of_s = scipy.integrate.cumulative_simpson(rate, x=s_grid, initial=0.0)
    ref = _newton(pot, x0, v0, float(t_of_s[-1]) + 1e-9, None)
    newton = ref.sol(t_of_s)[:2].T
    # Simpson's rule on 2000 intervals (1e-12) and two 1e-12 solutions: 1e-8
    np.testing.assert_allclose(xs, newton, atol=1e-8)
    assert float(t_of_s[-1]) > 1.0  # a nontrivial stretch of trajectory


# -- events ----------------------------------------------------------------------------------


def test_near_token_and_leaves_domain_events():
    flat = G.ConformalMetric(lambda x: 0.0 * x[0], dim=2)
    tokens = jnp.array([[3.0, 0.0], [0.0, 5.0]])
    ev = GD.NearToken(tokens, 0.5)
    # dtmax: on a flat metric one step would jump over the token's whole neighbourhood
    sol = GD.geodesic(flat, jnp.zeros(2), jnp.array([1.0, 0.0]), 10.0, events=[ev], dtmax=0.5)
    # a straight line at unit speed reaches |x − (3, 0)| = 0.5 at t = 2.5
    assert float(sol.ts[-1]) == pytest.approx(2.5, rel=1e-10)
    assert int(GD.nearest_token(ev, sol.xs[-1])) == 0
    out = GD.geodesic(flat, jnp.zeros(2), jnp.array([0.0, -2.0]), 10.0,
                      events=[ev, GD.LeavesDomain(4.0)])
    assert not bool(out.event_mask[0]) and bool(out.event_mask[1])
    assert float(out.ts[-1]) == pytest.approx(2.0, rel=1e-10)


def test_information_horizon_captures_inside_and_not_outside():
    # Tangherlini D = 4: a ray aimed at b < 3√3/2 r_s is captured, b > it escapes
    m = G.TangherliniMetric(4, r_s=1.0)
    bcrit = 3 * np.sqrt(3) / 2

    def shoot(b):
        x0 = jnp.array([0.0, -50.0, b, 0.0])
        w = jnp.array([1.0, 0.0, 0.0])
        sp_ = m.metric_vp(x0, jnp.concatenate([jnp.zeros(1), w]))[1:] @ w
        v0 = jnp.concatenate([jnp.sqrt(sp_ / m.lapse(x0))[None], w])
        return GD.geodesic(m, x0, v0, 500.0, kind="null", throw=False,
                           events=[GD.HorizonCrossing(1.01),
                                   GD.LeavesDomain(60.0, spatial_start=1)])

    sols = jax.vmap(shoot)(jnp.array([0.9 * bcrit, 1.1 * bcrit]))
    assert bool(sols.event_mask[0][0]) and not bool(sols.event_mask[0][1])
    assert bool(sols.event_mask[1][1])


# -- Langevin --------------------------------------------------------------------------------


def test_langevin_stationary_histogram_is_boltzmann():
    # double well U = (x² − 1)², T = 0.5; 4000 independent particles from uniform[−1.5, 1.5]
    # run to t = 12 (≥ 3 Kramers relaxation times); Euler–Maruyama dt = 2e-3 (density bias
    # O(dt) ≈ 1%, below the 4000-sample resolution). Pearson χ² test on 16 equiprobable-ish
    # bins: the histogram must not be rejected at the 0.1% level; a wrong temperature is.
    def U(x):
        return (x[0] ** 2 - 1.0) ** 2

    T = 0.5
    keys = jax.random.split(jax.random.key(7), 4000)
    x0 = jax.random.uniform(jax.random.key(8), (4000, 1), minval=-1.5, maxval=1.5)
    run = jax.vmap(lambda k, x: GD.langevin(U, x, T, 12.0, key=k, dt=2e-3).xs[-1, 0])
    xs = np.asarray(run(keys, x0))
    edges = np.linspace(-2.0, 2.0, 17)

    def expected(temp):
        def w(x):
            return np.exp(-((x * x - 1) ** 2) / temp)

        z = scipy.integrate.quad(w, -np.inf, np.inf)[0]
        inner = np.array([scipy.integrate.quad(w, lo, hi)[0]
                          for lo, hi in zip(edges[:-1], edges[1:])]) / z
        return np.concatenate([[0.5 * (1 - inner.sum())], inner, [0.5 * (1 - inner.sum())]])

    counts = np.concatenate([[np.sum(xs < -2)], np.histogram(xs, edges)[0], [np.sum(xs >= 2)]])
    p = expected(T)
    keep = p * len(xs) >= 5  # χ² needs ≥ 5 expected per bin
    obs, exp = counts[keep], p[keep] * len(xs)
    exp = exp * obs.sum() / exp.sum()
    assert scipy.stats.chisquare(obs, exp).pvalue > 1e-3
    wrong = expected(0.8)[keep] * len(xs)
    wrong = wrong * obs.sum() / wrong.sum()
    assert scipy.stats.chisquare(obs, wrong).pvalue < 1e-6


# -- bad inputs ------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(sphere):
    schw = G.TangherliniMetric(4, r_s=2.0)
    x = jnp.array([0.0, 10.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="x0: expected shape \\(4,\\)"):
        GD.geodesic(schw, jnp.zeros(3), jnp.ones(4), 1.0)
    with pytest.raises(ValueError, match="v0: expected shape"):
        GD.geodesic(schw, x, jnp.ones(3), 1.0)
    # a null vector is not a timelike velocity
    w = jnp.array([1.0, 0.0, 0.0])
    null = jnp.concatenate([jnp.sqrt(schw.metric_vp(x, jnp.concatenate([jnp.zeros(1), w]))[1:]
                                     @ w / schw.lapse(x))[None], w])
    with pytest.raises(ValueError, match="timelike needs g\\(v0, v0\\) < 0"):
        GD.geodesic(schw, x, null, 1.0, kind="timelike")
    with pytest.raises(ValueError, match="zero"):
        GD.geodesic(schw, x, jnp.zeros(4), 1.0, kind="timelike")
    with pytest.raises(ValueError, match="kind"):
        GD.geodesic(schw, x, null, 1.0, kind="lightlike")
    # under jit the same check fires at run time
    with pytest.raises(eqx.EquinoxRuntimeError, match="timelike"):
        eqx.filter_jit(lambda v: GD.geodesic(schw, x, v, 1.0, kind="timelike").xs)(null)
    # Langevin temperature
    with pytest.raises(ValueError, match="temperature"):
        GD.langevin(lambda y: y @ y, jnp.zeros(2), 0.0, 1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="temperature"):
        GD.langevin(lambda y: y @ y, jnp.zeros(2), -1.0, 1.0, key=jax.random.key(0))
    # log map endpoints on a singularity (the horizon r = r_s: g_rr = 1/f is infinite)
    with pytest.raises(ValueError, match="x1: the metric is singular"):
        GD.log_map(schw, x, jnp.array([0.0, 2.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="method"):
        GD.log_map(sphere, jnp.array([1.0, 0.0]), jnp.array([1.2, 0.1]), method="newton")
    with pytest.raises(ValueError, match="x1: expected shape"):
        GD.log_map(sphere, jnp.array([1.0, 0.0]), jnp.array([1.2, 0.1, 0.0]))
    with pytest.raises(ValueError, match="x0, v0"):
        GD.geodesic_batch(sphere, jnp.zeros((3, 2)), jnp.zeros((2, 2)), 1.0)


def test_float32_geodesic(sphere):
    x0 = jnp.array([1.0, 0.2], dtype=jnp.float32)
    v0 = jnp.array([0.3, 1.0], dtype=jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        s32 = GD.geodesic(sphere, x0, v0, 2.0, rtol=1e-6, atol=1e-6)
    s64 = GD.geodesic(sphere, x0.astype(jnp.float64), v0.astype(jnp.float64), 2.0)
    assert s32.xs.dtype == jnp.float32
    # float32 solve at rtol 1e-6
    np.testing.assert_allclose(s32.xs[-1], s64.xs[-1], atol=1e-4)


def test_symbolic_parameters_differentiate_through_geodesics():
    # d r(τ)/dM for a radial infall from rest at r0 = 10, vs finite differences
    Ms = sp.Symbol("M")
    x0 = jnp.array([0.0, 10.0, jnp.pi / 2, 0.0])

    def r_end(mass):
        m = G.CompiledMetric.from_symbolic(symbolic.schwarzschild(), params={Ms: mass})
        v0 = jnp.array([1.0 / jnp.sqrt(1 - 2 * mass / 10.0), 0.0, 0.0, 0.0])
        return GD.geodesic(m, x0, v0, 5.0, rtol=1e-10, atol=1e-10).xs[-1, 1]

    g = jax.grad(r_end)(1.0)
    fd = (r_end(1.0 + 1e-5) - r_end(1.0 - 1e-5)) / 2e-5
    # Newtonian estimate: r ≈ r0 − M τ²/(2 r0²) ⇒ dr/dM ≈ −0.125
    # central differences of a 1e-10 solution with step 1e-5: 1e-5 relative
    assert float(g) == pytest.approx(float(fd), rel=1e-5)
    assert -0.2 < float(g) < -0.1
