"""Benchmark: a batch of Schwarzschild timelike orbits, side by side.

    .venv/bin/python benchmarks/bench_geodesic.py [--n 10000] [--subset 20] [--einsteinpy 2]

Orbits: equatorial, M = 1, periapsis r0 uniform in [6, 20], φ̇ = (1 + u) × circular with u
uniform in [0, 0.1] (bound, eccentric), integrated to proper time τ = 1000 at rtol = atol = 1e-8.
Methods (compile time reported apart from run time):

  infograv.geodesic_batch   compiled SymPy Christoffels, Dopri8, step control shared by the batch
  infograv.geodesic + vmap  the same metric, Dopri8, each orbit its own adaptive loop
  diffrax hand RHS + vmap   equatorial right-hand side written by hand, Tsit5, vmap
  scipy stacked             solve_ivp DOP853 on the whole batch as one vectorised system
  scipy loop                solve_ivp DOP853 per orbit (a subset; per-orbit time extrapolated)
  einsteinpy                Timelike geodesic integrator (a few orbits; extrapolated)

Accuracy: end state (r, φ) on a subset against infograv at rtol = 1e-13 (Dopri8); drift of
E = −p_t, L = p_φ and g(u, u) + 1 over the run. Arithmetic floor: floating-point operations
of one right-hand-side evaluation (XLA cost analysis) × evaluations per orbit ÷ the measured
float64 matmul rate of this machine.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.integrate  # noqa: E402
import sympy as sp  # noqa: E402

from infograv import geodesic as gd, geometry as geo, symbolic  # noqa: E402

M = 1.0
TAU = 1000.0


def initial(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    r0 = rng.uniform(6.0, 20.0, n)
    boost = 1.0 + rng.uniform(0.0, 0.1, n)
    L = np.sqrt(M * r0) / np.sqrt(1 - 3 * M / r0) * boost
    f = 1 - 2 * M / r0
    phidot = L / r0**2
    tdot = np.sqrt((1 + r0**2 * phidot**2) / f)
    x0 = np.stack([np.zeros(n), r0, np.full(n, np.pi / 2), np.zeros(n)], 1)
    v0 = np.stack([tdot, np.zeros(n), np.zeros(n), phidot], 1)
    return x0, v0


def hand_rhs(t, y, args):
    # y = (t, r, φ, ṫ, ṙ, φ̇), equatorial Schwarzschild
    _, r, _, td, rd, pd = y
    f = 1 - 2 * M / r
    return jnp.stack([
        td, rd, pd,
        -2 * M / (r * r * f) * rd * td,
        -M * f / (r * r) * td * td + M / (r * r * f) * rd * rd + r * f * pd * pd,
        -2.0 / r * rd * pd,
    ])


def np_rhs_stacked(t, y):
    n = y.size // 6
    _, r, _, td, rd, pd = y.reshape(6, n)
    f = 1 - 2 * M / r
    return np.concatenate([
        td, rd, pd,
        -2 * M / (r * r * f) * rd * td,
        -M * f / (r * r) * td * td + M / (r * r * f) * rd * rd + r * f * pd * pd,
        -2.0 / r * rd * pd,
    ])


def conserved(t_, r, ph, td, rd, pd):
    f = 1 - 2 * M / r
    E = f * td
    L = r * r * pd
    norm = -f * td**2 + rd**2 / f + r * r * pd**2
    return E, L, norm


def drift(E0, L0, E, L, norm):
    return (float(np.max(np.abs(E / E0 - 1))), float(np.max(np.abs(L / L0 - 1))),
            float(np.max(np.abs(norm + 1))))


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t0


def flop_rate() -> float:
    a = np.random.default_rng(0).normal(size=(1500, 1500))
    a @ a
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    return 3 * 2 * 1500**3 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--subset", type=int, default=20)
    ap.add_argument("--einsteinpy", type=int, default=2)
    args = ap.parse_args()
    n = args.n
    x0, v0 = initial(n)
    E0, L0, _ = conserved(0, x0[:, 1], 0, v0[:, 0], v0[:, 1], v0[:, 3])
    schw = geo.CompiledMetric.from_symbolic(symbolic.schwarzschild(), params={sp.Symbol("M"): M})
    sub = np.arange(min(args.subset, n))
    rows = []

    # reference on the subset
    ref_fn = eqx.filter_jit(lambda x, v: jax.vmap(
        lambda a, b: gd.geodesic(schw, a, b, TAU, rtol=1e-13, atol=1e-13, max_steps=10**6))(x, v))
    ref = ref_fn(jnp.asarray(x0[sub]), jnp.asarray(v0[sub]))
    ref_end = np.asarray(ref.xs[:, -1])

    def end_err(r, ph):
        return float(max(np.max(np.abs(r - ref_end[:, 1])), np.max(np.abs(ph - ref_end[:, 3]))))

    # 1. infograv.geodesic_batch
    batch = eqx.filter_jit(lambda x, v: gd.geodesic_batch(schw, x, v, TAU, rtol=1e-8, atol=1e-8))
    xs, vs = jnp.asarray(x0), jnp.asarray(v0)
    _, t_first = timed(batch, xs, vs)
    sol, t_run = timed(batch, xs, vs)
    xe, ve = np.asarray(sol.xs[-1]), np.asarray(sol.vs[-1])
    E, L, nrm = conserved(0, xe[:, 1], 0, ve[:, 0], ve[:, 1], ve[:, 3])
    steps = int(sol.num_steps)
    rows.append(("infograv.geodesic_batch (Dopri8, shared control)", n, t_first - t_run, t_run,
                 t_run / n, *drift(E0, L0, E, L, nrm), end_err(xe[sub, 1], xe[sub, 3])))

    # 2. infograv.geodesic under vmap
    single = eqx.filter_jit(lambda x, v: jax.vmap(
        lambda a, b: gd.geodesic(schw, a, b, TAU, rtol=1e-8, atol=1e-8))(x, v))
    _, t_first = timed(single, xs, vs)
    sol2, t_run = timed(single, xs, vs)
    xe, ve = np.asarray(sol2.xs[:, -1]), np.asarray(sol2.vs[:, -1])
    E, L, nrm = conserved(0, xe[:, 1], 0, ve[:, 0], ve[:, 1], ve[:, 3])
    rows.append(("infograv.geodesic + vmap (Dopri8)", n, t_first - t_run, t_run, t_run / n,
                 *drift(E0, L0, E, L, nrm), end_err(xe[sub, 1], xe[sub, 3])))

    # 3. hand-written diffrax RHS under vmap, Tsit5 (at the common rtol, and tighter for
    #    equal accuracy)
    y0 = np.stack([x0[:, 0], x0[:, 1], x0[:, 3], v0[:, 0], v0[:, 1], v0[:, 3]], 1)
    for tol in (1e-8, 1e-10):
        @eqx.filter_jit
        def hand(y0, tol=tol):
            def one(y):
                return diffrax.diffeqsolve(
                    diffrax.ODETerm(hand_rhs), diffrax.Tsit5(), 0.0, TAU, None, y,
                    stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                    max_steps=10**6).ys[-1]
            return jax.vmap(one)(y0)

        _, t_first = timed(hand, jnp.asarray(y0))
        ye, t_run = timed(hand, jnp.asarray(y0))
        ye = np.asarray(ye)
        E, L, nrm = conserved(*ye.T)
        rows.append((f"diffrax hand RHS + vmap (Tsit5, rtol {tol:.0e})", n, t_first - t_run,
                     t_run, t_run / n, *drift(E0, L0, E, L, nrm),
                     end_err(ye[sub, 1], ye[sub, 2])))

    # 4. scipy stacked (at the common rtol, and tighter for an equal-accuracy comparison)
    for tol in (1e-8, 1e-10):
        t0 = time.perf_counter()
        s = scipy.integrate.solve_ivp(np_rhs_stacked, (0, TAU), y0.T.ravel(), method="DOP853",
                                      rtol=tol, atol=tol)
        t_run = time.perf_counter() - t0
        ye = s.y[:, -1].reshape(6, n).T
        E, L, nrm = conserved(*ye.T)
        rows.append((f"scipy solve_ivp DOP853, stacked (rtol {tol:.0e})", n, 0.0, t_run,
                     t_run / n, *drift(E0, L0, E, L, nrm), end_err(ye[sub, 1], ye[sub, 2])))

    # 5. scipy loop (subset)
    t0 = time.perf_counter()
    ends = []
    for i in sub:
        s = scipy.integrate.solve_ivp(np_rhs_stacked, (0, TAU), y0[i], method="DOP853",
                                      rtol=1e-8, atol=1e-8)
        ends.append(s.y[:, -1])
    t_run = time.perf_counter() - t0
    ye = np.array(ends)
    E, L, nrm = conserved(*ye.T)
    rows.append((f"scipy solve_ivp DOP853, loop ({len(sub)} orbits, extrapolated)", n, 0.0,
                 t_run / len(sub) * n, t_run / len(sub), *drift(E0[sub], L0[sub], E, L, nrm),
                 end_err(ye[:, 1], ye[:, 2])))

    # 6. einsteinpy (a few orbits)
    try:
        import warnings

        from einsteinpy.geodesic import Timelike

        k = min(args.einsteinpy, n)
        t0 = time.perf_counter()
        ends = []
        for i in range(k):
            g = Timelike(metric="Schwarzschild", metric_params=(),
                         position=[x0[i, 1], np.pi / 2, 0.0],
                         momentum=[0.0, 0.0, L0[i]], return_cartesian=False,
                         steps=int(TAU / 0.5), delta=0.5, omega=1.0, suppress_warnings=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, traj = g.trajectory
            ends.append(traj[-1])
        t_run = time.perf_counter() - t0
        ends = np.array(ends)
        # einsteinpy's state: (t, r, θ, φ, p_t, p_r, p_θ, p_φ), M = 1 in its units
        e_d = float(np.max(np.abs(-ends[:, 4] / E0[:k] - 1)))
        l_d = float(np.max(np.abs(ends[:, 7] / L0[:k] - 1)))
        # its step count is fixed (delta = 0.5), so it stops at τ = 1000 like the others
        err = float(np.max(np.abs(ends[:, 1] - ref_end[:k, 1])))
        rows.append((f"einsteinpy Timelike ({k} orbits, extrapolated)", n, 0.0,
                     t_run / k * n, t_run / k, e_d, l_d, float("nan"), err))
    except Exception as exc:  # pragma: no cover - optional package
        print("einsteinpy: not run:", exc)

    # arithmetic floor
    acc = jax.jit(lambda x, v: schw.acceleration(x, v)).lower(xs[0], vs[0]).compile()
    ca = acc.cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    flops_rhs = float(ca.get("flops", float("nan")))
    rate = flop_rate()
    evals = 12 * steps  # Dopri8: 12 new stages per step (FSAL)
    floor = flops_rhs * evals / rate

    print(f"\n{n} orbits, τ = {TAU}, rtol = atol = 1e-8; shared-control steps: {steps}")
    print(f"float64 matmul rate: {rate / 1e9:.1f} GFLOP/s; one Γ(v,v) evaluation: "
          f"{flops_rhs:.0f} flop (XLA); floor per orbit {floor:.2e} s\n")
    hdr = ("method", "compile s", "run s (all)", "s/orbit", "E drift", "L drift", "|g(u,u)+1|",
           "end err")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for name, _, comp, run, per, ed, ld, nd, ee in rows:
        print(f"| {name} | {comp:.1f} | {run:.2f} | {per:.2e} | {ed:.1e} | {ld:.1e} | {nd:.1e} "
              f"| {ee:.1e} |")
    best = rows[0][3]
    print("\nratios (run time / infograv.geodesic_batch):")
    for name, _, _, run, *_ in rows[1:]:
        print(f"  {name}: {run / best:.1f}x")
    print(f"infograv.geodesic_batch vs floor: {rows[0][4] / floor:.1f}x above")


if __name__ == "__main__":
    main()
