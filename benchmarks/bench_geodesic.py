"""Benchmark: a batch of Schwarzschild timelike orbits, side by side.

    .venv/bin/python benchmarks/bench_geodesic.py [--n 10000] [--subset 20] [--einsteinpy 1]
    .venv/bin/python benchmarks/bench_geodesic.py --roofline [--n 10000]

Orbits: equatorial, M = 1, periapsis r0 uniform in [6, 20], φ̇ = (1 + u) × circular with u
uniform in [0, 0.1] (bound, eccentric), integrated to proper time τ = 1000. Compile time is
reported apart from run time (the run is the second call).

Two formulations of the same orbits:

  equatorial  the induced metric diag(−f, 1/f, r²) on (t, r, φ) of the totally geodesic plane
              θ = π/2: six equations per orbit, no trigonometry. This is the system that the
              SciPy and hand-written diffrax right-hand sides below integrate.
  full 4-D    symbolic.schwarzschild() in (t, r, θ, φ): eight equations, and sin θ, cos θ in
              every evaluation of Γ(v, v).

Methods:

  infograv.geodesic_batch   SymPy-compiled Christoffels, Dopri8 tableau in one fused loop per
                            block of 256 orbits (block_size=None: one block)
  infograv.geodesic + vmap  the same metric, diffrax Dopri8, each orbit its own adaptive loop
  diffrax hand RHS + vmap   equatorial right-hand side written by hand, Tsit5, vmap
  scipy stacked             solve_ivp DOP853 on the whole batch as one vectorised system
  scipy loop                solve_ivp DOP853 per orbit (a subset; per-orbit time extrapolated)
  einsteinpy                Timelike geodesic integrator (a few orbits; extrapolated)

Accuracy: end state (r, φ) on a subset against infograv.geodesic (full 4-D, diffrax Dopri8) at
rtol = 1e-13; drift of E = −p_t, L = p_φ and g(u, u) + 1 over the run, the largest over the batch.
Arithmetic floor: floating-point operations per orbit ÷ the measured float64 matmul rate of this
machine, counting (a) the right-hand side only (XLA cost analysis of one Γ(v, v)) and (b) also
the Runge–Kutta stage combinations and the error norm of each step.

--roofline: where the time of geodesic_batch goes, in CPU time (valid on a shared machine): the
work per orbit-step (multiply–adds, divisions, bytes through the cache), one core's matmul rate,
division rate and L2 bandwidth, and the CPU time per block-step against block size, split by a
straight-line fit into a fixed cost per step and a cost per orbit.
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
from infograv.geodesic._batch import _tableau  # noqa: E402

M = 1.0
TAU = 1000.0
EQ = [0, 1, 3]  # (t, r, φ) of (t, r, θ, φ)


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


def equatorial_metric() -> geo.CompiledMetric:
    t, r, ph, m = sp.symbols("t r phi M")
    f = 1 - 2 * m / r
    return geo.CompiledMetric.from_symbolic(symbolic.Metric(sp.diag(-f, 1 / f, r**2), [t, r, ph]),
                                            params={m: M})


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


def np_rhs_stacked_4d(t, y):
    # y = (t, r, θ, φ, ṫ, ṙ, θ̇, φ̇), the full Schwarzschild geodesic equations
    n = y.size // 8
    _, r, th, _, td, rd, thd, pd = y.reshape(8, n)
    f = 1 - 2 * M / r
    s, c = np.sin(th), np.cos(th)
    return np.concatenate([
        td, rd, thd, pd,
        -2 * M / (r * r * f) * rd * td,
        -M * f / (r * r) * td * td + M / (r * r * f) * rd * rd
        + r * f * (thd * thd + s * s * pd * pd),
        -2.0 / r * rd * thd + s * c * pd * pd,
        -2.0 / r * rd * pd - 2.0 * c / s * thd * pd,
    ])


def conserved(r, td, rd, pd):
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


def step_flops(n_state: int) -> tuple[int, int]:
    """(RHS evaluations, combination flops per orbit) of one Dopri8 step of `geodesic_batch`."""
    tab = _tableau(None)
    comb = 2 * (np.count_nonzero(tab.a) + np.count_nonzero(tab.b) + np.count_nonzero(tab.e))
    comb += 8  # y + h·Σ, err scale (abs, max, fma), square and sum
    evals = tab.a.shape[0] - (1 if tab.fsal else 0)
    return evals, comb * n_state


# -- roofline: where the time of geodesic_batch goes ---------------------------------------------


def cpu_seconds(fn, *args, repeat: int = 5) -> float:
    """Least CPU time (all threads of this process) of `fn(*args)` over `repeat` runs, after a
    first call that compiles. CPU time, not wall time: on a machine shared with other jobs it
    counts the time this work actually ran, not the time it waited for a core."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        jax.block_until_ready(fn(*args))
        best = min(best, time.process_time() - t0)
    return best


def _per_iteration(body, x, iters: int = 4000) -> float:
    """CPU seconds per iteration of `x ← body(x)` in a compiled `fori_loop`."""
    run = jax.jit(lambda x: jax.lax.fori_loop(0, iters, lambda i, y: body(y), x))
    return cpu_seconds(run, x) / iters


def xla_rates() -> dict[str, float]:
    """Rates of XLA's generated element-wise code on this CPU, in CPU time, data in cache:
    divisions per second (a chain of divisions over a block in L1) and the bytes per second of a
    read–write stream through L2 (the 14 stages of a block of 256 orbits)."""
    x = jnp.full((6, 512), 0.5)  # 24 KiB: in L1

    def div(y):
        for _ in range(8):
            y = 1.0 / (y + 1.5)
        return y

    ks = jnp.full((14, 6, 256), 0.5)  # 168 KiB: in L2
    return {
        "div_per_s": 8 * x.size / _per_iteration(div, x),  # the 8 adds ride along
        "stream_bytes": 2 * ks.nbytes / _per_iteration(lambda y: y * 0.999 + 0.001, ks),
    }


def traffic_and_ops(n_state: int, rhs_flops: float, rhs_divs: int) -> dict[str, float]:
    """Per orbit and Dopri8 step of geodesic_batch: multiply–add flops, divisions, and the bytes
    that the stage combinations and right-hand sides move if each reads its inputs once."""
    tab = _tableau(None)
    evals, comb = step_flops(n_state)
    s = tab.a.shape[0]
    arrays = sum(np.count_nonzero(tab.a[i]) + 2 for i in range(1, s))  # Σ a_ij k_j + y → input
    arrays += 2 * evals  # each right-hand side reads its input and writes its stage
    arrays += (np.count_nonzero(tab.b) + 2) + (np.count_nonzero(tab.e) + 1) + 3  # y1, err, norm
    divs = rhs_divs * evals + n_state  # err / scale in the error norm
    return {"flops": rhs_flops * evals + comb - divs, "divs": divs,
            "bytes": 8.0 * n_state * arrays}


def roofline(n: int) -> None:
    """Time per block-step of geodesic_batch against block size, and the floor of XLA's own
    element-wise rates for the same work, on the equatorial Schwarzschild orbits."""
    x0, v0 = initial(n)
    eq = equatorial_metric()
    xq, vq = jnp.asarray(x0[:, EQ]), jnp.asarray(v0[:, EQ])
    lowered = jax.jit(eq.acceleration).lower(xq[0], vq[0])
    divs = lowered.as_text().count("stablehlo.divide")
    ca = lowered.compile().cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    work = traffic_and_ops(6, float(ca.get("flops", float("nan"))), divs)
    rates = xla_rates()
    a = np.random.default_rng(0).normal(size=(1500, 1500))
    # the float64 matmul rate per core (CPU time of all threads): near the multiply–add peak
    per_core = 2 * 1500**3 / cpu_seconds(lambda m: m @ m, a, repeat=3)
    print(f"\nroofline: {n} equatorial orbits, tau = {TAU}, rtol 1e-8")
    print(f"per orbit and step: {work['flops']:.0f} multiply-add flop, {work['divs']:.0f} "
          f"divisions, {work['bytes'] / 1e3:.1f} kB moved through cache")
    print(f"one core: {per_core / 1e9:.1f} GFLOP/s float64 matmul, {rates['div_per_s'] / 1e9:.2f} "
          f"G divisions/s, {rates['stream_bytes'] / 1e9:.0f} GB/s through L2 (CPU time)")
    compute = work["flops"] / per_core + work["divs"] / rates["div_per_s"]
    memory = work["bytes"] / rates["stream_bytes"]
    print(f"floors per orbit-step: compute {compute * 1e9:.1f} ns (multiply-adds at the matmul "
          f"rate, divisions at the measured rate), memory {memory * 1e9:.1f} ns")
    rows = []
    for bs in sorted({min(b, n) for b in (16, 32, 64, 128, 256, 512, 1024)}):
        fn = eqx.filter_jit(lambda x, v, bs=bs: gd.geodesic_batch(
            eq, x, v, TAU, rtol=1e-8, atol=1e-8, block_size=bs))
        sol, _ = timed(fn, xq, vq)
        best = cpu_seconds(fn, xq, vq, repeat=3)
        steps = int(np.sum(sol.block_steps) + np.sum(sol.block_rejected))
        rows.append((bs, best, steps, best / steps))
    b_arr = np.array([r[0] for r in rows], float)
    t_arr = np.array([r[3] for r in rows])
    if len(rows) < 2:
        raise SystemExit("--roofline: needs --n of at least 32 (two block sizes)")
    small = b_arr <= max(64, b_arr[1])  # at least two points
    slope, icpt = np.polyfit(b_arr[small], t_arr[small], 1)
    print(f"fit on blocks <= 64 (in L1): {icpt * 1e6:.2f} us per step fixed + "
          f"{slope * 1e9:.1f} ns per orbit-step")
    print("| block | CPU s | block-steps | us / block-step | ns / orbit-step | fixed share | "
          "x compute floor | x roofline |")
    print("|---|---|---|---|---|---|---|---|")
    for bs, run, steps, per in rows:
        orb = per / bs
        roof = max(compute, memory) + icpt / bs
        print(f"| {bs} | {run:.3f} | {steps} | {per * 1e6:.1f} | {orb * 1e9:.1f} | "
              f"{icpt / per:.0%} | {orb / compute:.1f} | {orb / roof:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--subset", type=int, default=20)
    ap.add_argument("--einsteinpy", type=int, default=1)
    ap.add_argument("--roofline", action="store_true",
                    help="only the roofline: time per step against block size, XLA's rates")
    args = ap.parse_args()
    n = args.n
    if args.roofline:
        roofline(n)
        return
    x0, v0 = initial(n)
    E0, L0, _ = conserved(x0[:, 1], v0[:, 0], v0[:, 1], v0[:, 3])
    full = geo.CompiledMetric.from_symbolic(symbolic.schwarzschild(), params={sp.Symbol("M"): M})
    eq = equatorial_metric()
    sub = np.arange(min(args.subset, n))
    rows = []

    # reference on the subset
    ref_fn = eqx.filter_jit(lambda x, v: jax.vmap(
        lambda a, b: gd.geodesic(full, a, b, TAU, rtol=1e-13, atol=1e-13, max_steps=10**6))(x, v))
    ref = ref_fn(jnp.asarray(x0[sub]), jnp.asarray(v0[sub]))
    ref_end = np.asarray(ref.xs[:, -1])

    def end_err(r, ph):
        return float(max(np.max(np.abs(r - ref_end[:, 1])), np.max(np.abs(ph - ref_end[:, 3]))))

    def record(name, comp, run, r, td, rd, pd, ph, E0=E0, L0=L0, sub=sub):
        E, L, nrm = conserved(r, td, rd, pd)
        rows.append((name, comp, run, run / n, *drift(E0, L0, E, L, nrm),
                     end_err(r[sub], ph[sub])))

    xf, vf = jnp.asarray(x0), jnp.asarray(v0)
    xq, vq = jnp.asarray(x0[:, EQ]), jnp.asarray(v0[:, EQ])
    steps = {}

    # 1. infograv.geodesic_batch: equatorial (the competitors' system) and full 4-D
    for label, metric, xs, vs, r_i, p_i, tol, bs in [
        ("equatorial", eq, xq, vq, 1, 2, 1e-8, 256),
        ("equatorial", eq, xq, vq, 1, 2, 1e-10, 256),
        ("equatorial", eq, xq, vq, 1, 2, 1e-8, None),
        ("full 4-D", full, xf, vf, 1, 3, 1e-8, 256),
        ("full 4-D", full, xf, vf, 1, 3, 1e-8, None),
    ]:
        batch = eqx.filter_jit(lambda x, v, m=metric, tol=tol, bs=bs: gd.geodesic_batch(
            m, x, v, TAU, rtol=tol, atol=tol, block_size=bs))
        _, t_first = timed(batch, xs, vs)
        sol, t_run = timed(batch, xs, vs)
        xe, ve = np.asarray(sol.xs[-1]), np.asarray(sol.vs[-1])
        bname = "1 block" if bs is None else f"blocks of {bs}"
        name = f"infograv.geodesic_batch, {label} (Dopri8, {bname}, rtol {tol:.0e})"
        steps[name] = (float(np.mean(sol.block_steps)), int(np.sum(sol.block_rejected)),
                       sol.block_steps.shape[0])
        record(name, t_first - t_run, t_run, xe[:, r_i], ve[:, 0], ve[:, r_i], ve[:, p_i],
               xe[:, p_i])

    # 2. infograv.geodesic under vmap (each orbit its own diffrax loop)
    for label, metric, xs, vs, r_i, p_i in [("equatorial", eq, xq, vq, 1, 2),
                                            ("full 4-D", full, xf, vf, 1, 3)]:
        single = eqx.filter_jit(lambda x, v, m=metric: jax.vmap(
            lambda a, b: gd.geodesic(m, a, b, TAU, rtol=1e-8, atol=1e-8))(x, v))
        _, t_first = timed(single, xs, vs)
        sol2, t_run = timed(single, xs, vs)
        xe, ve = np.asarray(sol2.xs[:, -1]), np.asarray(sol2.vs[:, -1])
        record(f"infograv.geodesic + vmap, {label} (diffrax Dopri8, rtol 1e-08)",
               t_first - t_run, t_run, xe[:, r_i], ve[:, 0], ve[:, r_i], ve[:, p_i], xe[:, p_i])

    # 3. hand-written diffrax RHS under vmap, Tsit5
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
        record(f"diffrax hand RHS + vmap, equatorial (Tsit5, rtol {tol:.0e})", t_first - t_run,
               t_run, ye[:, 1], ye[:, 3], ye[:, 4], ye[:, 5], ye[:, 2])

    # 4. scipy stacked: equatorial at two tolerances, and the full 4-D system
    for tol in (1e-8, 1e-10):
        t0 = time.perf_counter()
        s = scipy.integrate.solve_ivp(np_rhs_stacked, (0, TAU), y0.T.ravel(), method="DOP853",
                                      rtol=tol, atol=tol)
        t_run = time.perf_counter() - t0
        ye = s.y[:, -1].reshape(6, n).T
        record(f"scipy solve_ivp DOP853 stacked, equatorial (rtol {tol:.0e})", 0.0, t_run,
               ye[:, 1], ye[:, 3], ye[:, 4], ye[:, 5], ye[:, 2])
    y4 = np.concatenate([x0, v0], 1)
    t0 = time.perf_counter()
    s = scipy.integrate.solve_ivp(np_rhs_stacked_4d, (0, TAU), y4.T.ravel(), method="DOP853",
                                  rtol=1e-8, atol=1e-8)
    t_run = time.perf_counter() - t0
    ye = s.y[:, -1].reshape(8, n).T
    record("scipy solve_ivp DOP853 stacked, full 4-D (rtol 1e-08)", 0.0, t_run, ye[:, 1],
           ye[:, 4], ye[:, 5], ye[:, 7], ye[:, 3])

    # 5. scipy loop (subset)
    t0 = time.perf_counter()
    ends = []
    for i in sub:
        s = scipy.integrate.solve_ivp(np_rhs_stacked, (0, TAU), y0[i], method="DOP853",
                                      rtol=1e-8, atol=1e-8)
        ends.append(s.y[:, -1])
    t_run = time.perf_counter() - t0
    ye = np.array(ends)
    E, L, nrm = conserved(ye[:, 1], ye[:, 3], ye[:, 4], ye[:, 5])
    rows.append((f"scipy solve_ivp DOP853 loop, equatorial ({len(sub)} orbits, extrapolated)",
                 0.0, t_run / len(sub) * n, t_run / len(sub), *drift(E0[sub], L0[sub], E, L, nrm),
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
        rows.append((f"einsteinpy Timelike, full 4-D ({k} orbits, extrapolated)", 0.0,
                     t_run / k * n, t_run / k, e_d, l_d, float("nan"), err))
    except Exception as exc:  # pragma: no cover - optional package
        print("einsteinpy: not run:", exc)

    # arithmetic floor of the equatorial geodesic_batch row
    acc = jax.jit(lambda x, v: eq.acceleration(x, v)).lower(xq[0], vq[0]).compile()
    ca = acc.cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    flops_rhs = float(ca.get("flops", float("nan")))
    rate = flop_rate()
    evals, comb = step_flops(6)
    first = rows[0][0]
    mean_steps, rejected, blocks = steps[first]
    floor_rhs = flops_rhs * evals * mean_steps / rate
    floor_all = (flops_rhs * evals + comb) * mean_steps / rate

    print(f"\n{n} orbits, τ = {TAU}")
    for name, (ms, rj, nb) in steps.items():
        print(f"  {name}: {ms:.1f} accepted steps per block on average, {rj} rejected in all, "
              f"{nb} blocks")
    print(f"float64 matmul rate: {rate / 1e9:.1f} GFLOP/s; one equatorial Γ(v,v): "
          f"{flops_rhs:.0f} flop (XLA); {evals} evaluations and {comb} flop of stage "
          f"combinations per orbit and step")
    print(f"floor per orbit (first row): {floor_rhs:.2e} s (right-hand side only), "
          f"{floor_all:.2e} s (with the Runge–Kutta arithmetic)\n")
    hdr = ("method", "compile s", "run s (all)", "s/orbit", "E drift", "L drift", "|g(u,u)+1|",
           "end err")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for name, comp, run, per, ed, ld, nd, ee in rows:
        print(f"| {name} | {comp:.1f} | {run:.3g} | {per:.2e} | {ed:.1e} | {ld:.1e} | {nd:.1e} "
              f"| {ee:.1e} |")
    best = rows[0][2]
    print(f"\nratios (run time / {first}):")
    for name, _, run, *_ in rows[1:]:
        print(f"  {name}: {run / best:.2f}x")
    print(f"{first}: {rows[0][3] / floor_rhs:.0f}x above the right-hand-side floor, "
          f"{rows[0][3] / floor_all:.0f}x above the floor with the Runge–Kutta arithmetic")


if __name__ == "__main__":
    main()
