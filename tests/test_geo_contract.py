"""The geodesic solution contract: unreached values are never finite-looking, event times
survive `ts=`, one convention for event arguments, tolerances mean what they say, metrics work
under plain `jax.jit`, and errors lead with their message."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from infograv import geodesic as GD, geometry as G, symbolic


@pytest.fixture(scope="module")
def flat2():
    return G.ConformalMetric(lambda x: 0.0 * x[0], dim=2)


# -- unreached values ---------------------------------------------------------------------------


def test_unreached_save_points_are_inf_in_both_solvers(flat2):
    # constant steps of 0.1 with a budget of 3 steps reach t = 0.3 at most: the save points
    # from t = 1 on are never reached, so neither solver may report a finite state there
    ts = jnp.array([0.0, 0.2, 1.0, 5.0])
    x0 = jnp.zeros((3, 2))
    v0 = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    batch = GD.geodesic_batch(flat2, x0, v0, 5.0, ts=ts, adaptive=False, dt0=0.1, max_steps=3,
                              throw=False)
    assert bool(batch.result == diffrax.RESULTS.max_steps_reached)
    xs, vs = np.asarray(batch.xs), np.asarray(batch.vs)
    # reached: the straight line x = v t (exact for any Runge–Kutta method on a flat metric)
    np.testing.assert_allclose(xs[1], 0.2 * np.asarray(v0), atol=1e-15)
    assert np.all(np.isposinf(xs[2:])) and np.all(np.isposinf(vs[2:]))
    single = GD.geodesic(flat2, x0[2], v0[2], 5.0, ts=ts, adaptive=False, dt0=0.1, max_steps=3,
                         throw=False)
    assert np.all(np.isposinf(np.asarray(single.xs[2:])))
    assert np.all(np.isposinf(np.asarray(single.ts[2:])))
    # where the solve stopped is still reported, and it is the last accepted step
    assert float(single.t_end) == pytest.approx(0.3, abs=1e-14)
    np.testing.assert_allclose(single.x_end, 0.3 * v0[2], atol=1e-14)


# -- event times with ts= -----------------------------------------------------------------------


def test_event_time_survives_save_points(flat2):
    # |x(t)| = 2t leaves the disc of radius 3.8 at t = 1.9 exactly
    ts = jnp.linspace(0.0, 10.0, 11)
    sol = GD.geodesic(flat2, jnp.zeros(2), jnp.array([0.0, 2.0]), 10.0, ts=ts,
                      events=[GD.LeavesDomain(3.8)])
    assert bool(sol.event_occurred) and bool(sol.event_mask[0])
    assert float(sol.t_end) == pytest.approx(1.9, rel=1e-10)
    np.testing.assert_allclose(sol.x_end, [0.0, 3.8], rtol=1e-10)
    np.testing.assert_allclose(sol.v_end, [0.0, 2.0], rtol=1e-10)
    # the requested points before the event are kept; the rest are inf, never the event state
    np.testing.assert_array_equal(sol.ts[:2], ts[:2])
    np.testing.assert_allclose(sol.xs[:2], [[0.0, 0.0], [0.0, 2.0]], atol=1e-12)
    assert np.all(np.isposinf(np.asarray(sol.ts[2:])))
    assert np.all(np.isposinf(np.asarray(sol.xs[2:])))
    # without ts the only saved point is the event (the documented (1,) form)
    bare = GD.geodesic(flat2, jnp.zeros(2), jnp.array([0.0, 2.0]), 10.0,
                       events=[GD.LeavesDomain(3.8)])
    assert float(bare.ts[-1]) == float(bare.t_end) == pytest.approx(1.9, rel=1e-10)


# -- one convention for event arguments ---------------------------------------------------------


def _circular(rc, r_s):
    # Schwarzschild circular orbit (M = r_s/2) in Tangherlini's Cartesian-like chart:
    # dφ/dt = √(M/r³), dt/dτ = 1/√(1 − 3M/r) (Carroll, Spacetime and Geometry, §5.4)
    m = 0.5 * r_s
    tdot = 1.0 / np.sqrt(1.0 - 3.0 * m / rc)
    phidot = np.sqrt(m / rc**3) * tdot
    return jnp.array([0.0, rc, 0.0, 0.0]), jnp.array([tdot, 0.0, rc * phidot, 0.0]), tdot


def test_events_share_the_spatial_convention():
    fields = ("radial_index", "spatial_start", "center")
    for f in fields:
        assert (GD.LeavesDomain.__dataclass_fields__[f].default
                == GD.HorizonCrossing.__dataclass_fields__[f].default)
    assert GD.NearToken.__dataclass_fields__["spatial_start"].default is None


def test_leaves_domain_does_not_count_time_on_a_spacetime():
    # a circular orbit at r_c = 8 r_s never leaves |x| < 3 r_c and never nears the horizon,
    # although t grows far past 3 r_c; the old default (all coordinates) fired at t ≈ 23
    rc = 8.0
    bh = G.TangherliniMetric(4, r_s=1.0)
    x0, v0, tdot = _circular(rc, 1.0)
    tau = 120.0
    events = [GD.LeavesDomain(3 * rc), GD.HorizonCrossing(1.01)]
    # Tsit5 (7 stages) compiles in half the time of the default Dopri8; rtol 1e-10 still gives
    # the 1e-8 asserted below over this arc
    fast = {"solver": diffrax.Tsit5(), "rtol": 1e-10, "atol": 1e-10}
    sol = GD.geodesic(bh, x0, v0, tau, events=events, **fast)
    assert bool(sol.result == diffrax.RESULTS.successful)
    assert float(sol.t_end) == tau
    # still on the circle; t advanced by ṫ τ (a closed form, to the solver's tolerance)
    assert float(jnp.linalg.norm(sol.x_end[1:])) == pytest.approx(rc, rel=1e-7)
    assert float(sol.x_end[0]) == pytest.approx(tdot * tau, rel=1e-8)
    # the same under vmap, where the convention is settled from a traced start
    many = jax.vmap(lambda x, v: GD.geodesic(bh, x, v, tau, events=events, throw=False,
                                             **fast))(
        jnp.stack([x0, x0]), jnp.stack([v0, v0]))
    assert not bool(jnp.any(many.event_mask[0])) and not bool(jnp.any(many.event_mask[1]))
    # an explicit spatial_start=0 counts t: |(t, x)| = 3 r_c when t² = 9 r_c² − r_c²
    alltime = GD.geodesic(bh, x0, v0, tau, events=[GD.LeavesDomain(3 * rc, spatial_start=0)],
                          **fast)
    assert bool(alltime.event_occurred)
    assert float(alltime.t_end) == pytest.approx(np.sqrt(8.0) * rc / tdot, rel=1e-8)


def test_event_convention_errors():
    with pytest.raises(ValueError, match="spatial_start"):
        GD.LeavesDomain(1.0).value(jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError, match="spatial_start"):
        GD.HorizonCrossing(1.0, spatial_start=-1)
    with pytest.raises(ValueError, match="center: 5 coordinates for a 4-dimensional"):
        GD.LeavesDomain(1.0, center=jnp.zeros(5)).for_metric(G.TangherliniMetric(4),
                                                             jnp.zeros(4))
    # a centre fixes the convention by its shape: the last m coordinates
    ev = GD.LeavesDomain(2.0, center=jnp.array([1.0, 0.0]))
    assert float(ev.value(jnp.array([100.0, 1.0, 1.0]), jnp.zeros(3))) == pytest.approx(0.5)


# -- tolerances mean what they say --------------------------------------------------------------


def test_log_map_accepts_exactly_the_requested_tolerance(sphere):
    a, b = jnp.array([1.0, 0.2]), jnp.array([1.3, 1.5])
    rtol, atol = 1e-9, 1e-11
    sol = GD.log_map(sphere, a, b, rtol=rtol, atol=atol)
    asked = atol + rtol * float(jnp.max(jnp.abs(b - a)))
    assert float(sol.residual_tol) == pytest.approx(asked, rel=1e-15)
    assert float(sol.residual) <= asked
    # the residual is what it says: the RK4 geodesic with this velocity ends that close to b
    end = GD.exp_map(sphere, a, sol.velocity)
    assert float(jnp.max(jnp.abs(end - b))) == pytest.approx(float(sol.residual), abs=1e-15)
    # an unreachable acceptance is a result code, and an error whose text leads with it
    strict = GD.log_map(sphere, a, b, residual_tol=1e-300, throw=False)
    assert strict.result == GD.RESULTS.endpoint_mismatch
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        GD.log_map(sphere, a, b, residual_tol=1e-300)
    assert str(info.value).startswith("log_map: The geodesic found does not reach x1")
    with pytest.raises(ValueError, match="residual_tol"):
        GD.log_map(sphere, a, b, residual_tol=-1.0)


# -- metrics under plain jax.jit ----------------------------------------------------------------


def _metrics():
    th, ph, M = sp.symbols("theta phi M")
    r, expr, s = G.gaussian_kernel()
    import infograv

    k = infograv.to_jax(expr, [r], params={s: 0.7})
    wells = G.RadialPotential(kernel=k, centres=jnp.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0]]),
                              weights=jnp.array([0.4, 0.3]))
    # N − 1 ≥ d tokens in general position, so that the Fisher metric is non-degenerate
    tokens = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.3, -0.4, 1.0],
                        [-0.8, 0.2, -0.6]])
    return {
        "tangherlini": G.TangherliniMetric(5, r_s=1.3),
        "weak field": G.WeakFieldMetric(wells, d=3, c=2.0),
        "jacobi": G.JacobiMetric(wells, energy=2.0, dim=3),
        "conformal (array-holding potential)": G.ConformalMetric(wells, dim=3),
        "fisher": G.FisherMetric(k, tokens, jnp.array([1.0, 0.5, 2.0, 1.5, 0.7]), 0.8),
        "compiled": G.CompiledMetric.from_symbolic(
            symbolic.schwarzschild(), params={sp.Symbol("M"): 1.0}),
    }


@pytest.mark.parametrize("name", list(_metrics()))
def test_acceleration_under_plain_jit(name, rng):
    metric = _metrics()[name]
    n = metric.dim
    x = jnp.asarray(rng.normal(size=n) * 0.3)
    if name in ("tangherlini", "compiled"):
        x = x.at[1].add(4.0)  # outside the horizon
    v = jnp.asarray(rng.normal(size=n))
    eager = metric.acceleration(x, v)
    np.testing.assert_allclose(jax.jit(metric.acceleration)(x, v), eager, rtol=1e-13, atol=1e-15)
    # the metric itself as a static argument (hashable) and as a traced argument
    static = jax.jit(lambda m, x, v: m.acceleration(x, v), static_argnums=0)
    np.testing.assert_allclose(static(metric, x, v), eager, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(jax.jit(lambda m, x, v: m.acceleration(x, v))(metric, x, v), eager,
                               rtol=1e-13, atol=1e-15)


def test_jit_cache_tells_metrics_with_equal_shapes_apart():
    # equal structure, different values: equal hashes, unequal metrics, separate compiles
    a, b = G.TangherliniMetric(4, r_s=1.0), G.TangherliniMetric(4, r_s=2.0)
    assert hash(a) == hash(G.TangherliniMetric(4, r_s=1.0)) == hash(b)
    assert a == G.TangherliniMetric(4, r_s=1.0) and not a == b
    x, v = jnp.array([0.0, 6.0, 0.0, 0.0]), jnp.array([1.0, 0.0, 0.2, 0.0])
    # on the x axis with ṫ = 1, ẏ = 0.2: ẍ = r̈ − r φ̇², r̈ = −Γ^r_tt − Γ^r_φφ φ̇² with
    # Γ^r_tt = f r_s / 2r², Γ^r_φφ = −r f, φ̇ = ẏ/r; so Γ(v, v)^x = f r_s/2r² + r_s ẏ²/r²
    fa, fb = 1 - 1.0 / 6.0, 1 - 2.0 / 6.0
    ra, rb = jax.jit(a.acceleration)(x, v), jax.jit(b.acceleration)(x, v)
    assert float(ra[1]) != float(rb[1])
    np.testing.assert_allclose(ra, a.acceleration(x, v), rtol=1e-14)
    np.testing.assert_allclose(rb, b.acceleration(x, v), rtol=1e-14)
    assert float(ra[1]) == pytest.approx(fa * 1.0 / 72 + 1.0 * 0.04 / 36, rel=1e-12)
    assert float(rb[1]) == pytest.approx(fb * 2.0 / 72 + 2.0 * 0.04 / 36, rel=1e-12)


# -- errors lead with their message -------------------------------------------------------------


def test_solver_errors_lead_with_their_message(flat2):
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        GD.geodesic(flat2, jnp.zeros(2), jnp.ones(2), 100.0, max_steps=2)
    assert str(info.value).startswith("geodesic: The maximum number of solver steps")
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        GD.geodesic_batch(flat2, jnp.zeros((3, 2)), jnp.ones((3, 2)), 100.0, adaptive=False,
                          dt0=0.1, max_steps=2)
    assert str(info.value).startswith("geodesic_batch: a block used all max_steps=2 steps")
    # under jit the same class is raised at run time (equinox wraps the text in its report)
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps=2"):
        eqx.filter_jit(lambda x: GD.geodesic_batch(
            flat2, x, jnp.ones((3, 2)), 100.0, adaptive=False, dt0=0.1, max_steps=2).xs
        )(jnp.zeros((3, 2)))
