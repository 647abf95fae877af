"""Geodesics against general relativity's closed forms (Schwarzschild, Tangherlini)."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

from infograv import geodesic as GD, geometry as G, symbolic

M = 1.0


@pytest.fixture(scope="module")
def schw():
    return G.CompiledMetric.from_symbolic(symbolic.schwarzschild(), params={sp.Symbol("M"): M})


def circular(r):
    """Exact circular equatorial timelike orbit: E = f/√(1−3M/r), L = √(Mr)/√(1−3M/r)."""
    f = 1 - 2 * M / r
    E = f / np.sqrt(1 - 3 * M / r)
    L = np.sqrt(M * r) / np.sqrt(1 - 3 * M / r)
    return np.array([0.0, r, np.pi / 2, 0.0]), np.array([E / f, 0.0, 0.0, L / r**2])


def test_isco_is_circular_and_marginally_stable(schw):
    # exact circular orbits at r = 6M (ISCO) and at 5.5M, 6.5M, 9M, each kicked by ṙ = 1e-5
    # (u renormalised to g(u, u) = −1); stable orbits then oscillate with amplitude
    # ṙ/ω_r ≈ 4e-4 M, unstable ones (r < 6M) run away as e^{λτ}, λ ≈ 0.035/M at 5.5M
    radii = np.array([6.0, 5.5, 6.5, 9.0])
    x0 = np.stack([circular(r)[0] for r in radii])
    v0 = np.stack([circular(r)[1] for r in radii])
    v0[1:, 1] = 1e-5
    f = 1 - 2 * M / radii
    v0[:, 0] = np.sqrt((1 + v0[:, 1] ** 2 / f + radii**2 * v0[:, 3] ** 2) / f)
    ts = jnp.linspace(0.0, 1500.0, 301)
    run = jax.vmap(
        lambda x, v: GD.geodesic(schw, x, v, 1500.0, ts=ts, rtol=1e-11, atol=1e-11,
                                 events=[GD.HorizonCrossing(2.05, radial_index=1)], throw=False)
    )
    sol = run(jnp.asarray(x0), jnp.asarray(v0))
    r = np.asarray(sol.xs[..., 1])
    # r = 6M exactly circular: |Δr| stays at the integrator's 1e-11 tolerance level, over
    # ~16 orbits (1e-8 allows for the marginal, secular growth of round-off at the ISCO)
    assert np.nanmax(np.abs(r[0] - 6.0)) < 1e-8
    # inside the ISCO a 1e-4 push grows to a plunge (reaches the horizon event)
    assert bool(sol.event_mask[0][1])
    # outside it the orbit oscillates with an amplitude of the push (stable)
    for i in (2, 3):
        assert np.max(np.abs(r[i] - radii[i]) / radii[i]) < 1e-3
        assert not bool(sol.event_mask[0][i])
    # g(u, u) = −1 along the circular ISCO orbit to 1e-10 relative at rtol 1e-11
    nrm = jax.vmap(lambda x, v: GD.norm(schw, x, v))(sol.xs[0], sol.vs[0])
    assert float(jnp.max(jnp.abs(nrm + 1.0))) < 1e-10


def test_photon_sphere_at_3M(schw):
    # null circular orbit at r = 3M: f ṫ² = r² φ̇²; pushed in/out it falls/escapes (unstable)
    def null_circ(r):
        return jnp.array([0.0, r, jnp.pi / 2, 0.0]), jnp.array(
            [1.0 / jnp.sqrt(1 - 2 * M / r) * r, 0.0, 0.0, 1.0]
        )

    radii = jnp.array([3.0, 3.0 * (1 - 1e-6), 3.0 * (1 + 1e-6)])
    x0, v0 = jax.vmap(null_circ)(radii)
    ts = jnp.linspace(0.0, 30.0, 61)
    sol = jax.vmap(
        lambda x, v: GD.geodesic(schw, x, v, 30.0, ts=ts, kind="null", rtol=1e-12, atol=1e-12,
                                 events=[GD.HorizonCrossing(2.2, radial_index=1),
                                         GD.LeavesDomain(6.0, radial_index=1)],
                                 throw=False)
    )(x0, v0)
    # λ = 30 is ~5 revolutions (φ̇ = 1); the instability e-folds once per φ = 2π/... ≈ 1 rad,
    # so round-off (1e-16) stays below 1e-6 of r on the exact orbit over φ = 5 rad
    r0 = np.asarray(sol.xs[0, :11, 1])
    assert np.max(np.abs(r0 - 3.0)) < 1e-6
    assert bool(sol.event_mask[0][1])  # pushed in: falls towards the horizon
    assert bool(sol.event_mask[1][2])  # pushed out: escapes


def _bound_orbit(p, e):
    r1, r2 = p / (1 + e), p / (1 - e)
    f1, f2 = 1 - 2 * M / r1, 1 - 2 * M / r2
    # E² = f (1 + L²/r²) at both turning points: linear in L²
    L2 = (f2 - f1) / (f1 / r1**2 - f2 / r2**2)
    E = np.sqrt(f1 * (1 + L2 / r1**2))
    return r1, E, np.sqrt(L2)


def test_perihelion_shift(schw):
    # weak field p = a(1 − e²) = 1000M, e = 0.3; 1PN shift 6πM/p; the 2PN term
    # (3π/2)(18 + e²)(M/p)² is 0.46% of it, so the 1% tolerance tests the 1PN law.
    p, e = 1000.0, 0.3
    r1, E, L = _bound_orbit(p, e)
    x0 = jnp.array([0.0, r1, np.pi / 2, 0.0])
    v0 = jnp.array([E / (1 - 2 * M / r1), 0.0, 0.0, L / r1**2])
    a = p / (1 - e**2)
    period = 2 * np.pi * a**1.5
    sol = GD.geodesic(schw, x0, v0, 1.2 * period, kind="timelike", dense=True, rtol=1e-11,
                      atol=1e-11)
    rdot = lambda tau: float(sol.evaluate(tau)[1][1])  # noqa: E731
    tau_p = scipy.optimize.brentq(rdot, 0.9 * period, 1.1 * period, xtol=1e-9)
    shift = float(sol.evaluate(tau_p)[0][3]) - 2 * np.pi
    assert shift == pytest.approx(6 * np.pi * M / p, rel=1e-2)
    # and it is really there: the 1PN prediction is 0.019 rad; Newton would give 0
    assert shift > 0.9 * 6 * np.pi * M / p


def test_light_deflection():
    # Tangherlini D = 4 (Schwarzschild, r_s = 2M) in its Cartesian chart; a ray from
    # x = −R with impact parameter b; deflection vs 4M/b. The next order (15π/4)(M/b)² is
    # 0.3% of 4M/b at b = 1000M; R = 1e6 M leaves ~1e-6 of the angle unaccumulated.
    m = G.TangherliniMetric(4, r_s=2 * M)
    R, b = 1e6, 1000.0
    x0 = jnp.array([0.0, -R, b, 0.0])
    w = jnp.array([1.0, 0.0, 0.0])
    spatial = m.metric_vp(x0, jnp.concatenate([jnp.zeros(1), w]))[1:] @ w
    v0 = jnp.concatenate([jnp.sqrt(spatial / m.lapse(x0))[None], w])
    sol = GD.geodesic(m, x0, v0, 3 * R, kind="null", rtol=1e-12, atol=1e-12,
                      events=[GD.LeavesDomain(1.00001 * R, spatial_start=1)])
    assert bool(sol.event_mask[0])
    wf = sol.vs[-1, 1:]
    angle = float(jnp.arccos(wf @ w / jnp.linalg.norm(wf)))
    assert angle == pytest.approx(4 * M / b, rel=1e-2)


def test_radial_plunge_crosses_horizon_at_closed_form_proper_time():
    # Painlevé–Gullstrand chart (regular at r = 2M), from rest at r0:
    # r = r0 (1 + cos η)/2, τ = √(r0³/8M) (η + sin η)  (MTW eq. 31.10)
    T, r, th, ph, Ms = sp.symbols("T r theta phi M")
    f = 1 - 2 * Ms / r
    beta = sp.sqrt(2 * Ms / r)
    gpg = sp.Matrix([[-f, beta, 0, 0], [beta, 1, 0, 0], [0, 0, r**2, 0],
                     [0, 0, 0, r**2 * sp.sin(th) ** 2]])
    pg = G.CompiledMetric.from_symbolic(symbolic.Metric(gpg, [T, r, th, ph]), params={Ms: M})
    r0 = jnp.array([6.0, 10.0, 20.0])
    x0 = jax.vmap(lambda a: jnp.array([0.0, a, np.pi / 2, 0.0]))(r0)
    v0 = jax.vmap(lambda a: jnp.array([1.0 / jnp.sqrt(1 - 2 * M / a), 0.0, 0.0, 0.0]))(r0)
    sol = jax.vmap(
        lambda x, v: GD.geodesic(pg, x, v, 1e3, kind="timelike", rtol=1e-11, atol=1e-11,
                                 events=[GD.HorizonCrossing(2 * M, radial_index=1)])
    )(x0, v0)
    eta = np.arccos(2 * 2 * M / np.asarray(r0) - 1)
    tau = np.sqrt(np.asarray(r0) ** 3 / (8 * M)) * (eta + np.sin(eta))
    # the event time is root-found to 1e-12 on an interpolant of a 1e-11 solution
    np.testing.assert_allclose(np.asarray(sol.ts[:, -1]), tau, rtol=1e-8)
    assert np.all(np.asarray(sol.event_mask[0]))
    # and the geodesic goes on through the horizon smoothly in this chart
    inside = GD.geodesic(pg, x0[1], v0[1], float(tau[1]) + 1.0, kind="timelike")
    assert 0.0 < float(inside.xs[-1, 1]) < 2 * M


@pytest.mark.parametrize("D, stable", [(4, True), (5, False), (6, False)])
def test_tangherlini_circular_orbit_stability(D, stable):
    # circular orbits: L² = f' r³/(2f − r f'); D = 4 is stable at r = 5 r_s (ISCO at 3 r_s),
    # D ≥ 5 has no stable circular orbit: a 1e-4 push grows to order one
    rs = 1.0
    r = 5.0
    f = 1 - (rs / r) ** (D - 3)
    fp = (D - 3) * rs ** (D - 3) / r ** (D - 2)
    L = np.sqrt(fp * r**3 / (2 * f - r * fp))
    m = G.TangherliniMetric(D, r_s=rs)
    xs = np.zeros(D - 1)
    xs[0] = r * (1 + 1e-4)
    ws = np.zeros(D - 1)
    ws[1] = L / r
    x0 = jnp.asarray(np.concatenate([[0.0], xs]))
    spatial = float(ws @ np.asarray(m.metric_vp(x0, jnp.asarray(np.concatenate([[0.0], ws]))))[1:])
    tdot = np.sqrt((1 + spatial) / float(m.lapse(x0)))
    v0 = jnp.asarray(np.concatenate([[tdot], ws]))
    period = 2 * np.pi * r / (L / r)
    sol = GD.geodesic(m, x0, v0, 8 * period, kind="timelike", ts=jnp.linspace(0, 8 * period, 400),
                      rtol=1e-10, atol=1e-10, throw=False,
                      events=[GD.HorizonCrossing(1.05 * rs),
                              GD.LeavesDomain(2 * r, spatial_start=1)])
    radius = np.linalg.norm(np.asarray(sol.xs[:, 1:]), axis=1)
    dev = np.nanmax(np.where(np.isfinite(radius), np.abs(radius / r - 1), 0.0))
    if stable:
        assert dev < 1e-3 and not bool(sol.event_occurred)
    else:
        assert bool(sol.event_occurred) or dev > 0.1


def test_convergence_order_and_long_time_norm_conservation(schw):
    # an eccentric orbit (p = 20M, e = 0.5): constant-step Tsit5 (order 5); the error at
    # τ = 200 against a 1e-13 adaptive Dopri8 reference falls with slope ≈ 5 in log h.
    r1, E, L = _bound_orbit(20.0, 0.5)
    x0 = jnp.array([0.0, r1, np.pi / 2, 0.0])
    v0 = jnp.array([E / (1 - 2 * M / r1), 0.0, 0.0, L / r1**2])
    ref = GD.geodesic(schw, x0, v0, 200.0, rtol=1e-13, atol=1e-13)
    errs = []
    hs = [8.0, 4.0, 2.0]
    for h in hs:
        s = GD.geodesic(schw, x0, v0, 200.0, solver=diffrax.Tsit5(), adaptive=False, dt0=h)
        errs.append(float(jnp.max(jnp.abs(s.xs[-1, 1:] - ref.xs[-1, 1:]))))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert 4.5 < slope < 5.6
    # long run at tight tolerance: g(u, u) = −1 to 1e-9 relative after 1e4 proper time
    long = GD.geodesic(schw, x0, v0, 1e4, rtol=1e-12, atol=1e-12, kind="timelike")
    assert abs(float(GD.norm(schw, long.xs[-1], long.vs[-1])) + 1.0) < 1e-9
    # and energy and angular momentum (Killing charges of ∂_t, ∂_φ) to 1e-9 relative
    e_end = float(GD.energy(schw, long.xs[-1], long.vs[-1]))
    l_end = float(GD.momentum(schw, long.xs[-1], long.vs[-1], 3))
    assert e_end == pytest.approx(E, rel=1e-9)
    assert l_end == pytest.approx(L, rel=1e-9)


def test_batch_matches_vmap(schw):
    radii = np.linspace(7.0, 12.0, 5)
    x0 = jnp.asarray(np.stack([circular(r)[0] for r in radii]))
    v0 = jnp.asarray(np.stack([circular(r)[1] * np.array([1, 0, 0, 1.02]) for r in radii]))
    v0 = v0.at[:, 1].set(0.01)
    batch = GD.geodesic_batch(schw, x0, v0, 100.0, rtol=1e-11, atol=1e-11)
    single = jax.vmap(lambda x, v: GD.geodesic(schw, x, v, 100.0, rtol=1e-11, atol=1e-11))(x0, v0)
    # two 1e-11 solutions of the same problem
    np.testing.assert_allclose(batch.xs[-1], single.xs[:, -1], rtol=1e-8, atol=1e-8)
