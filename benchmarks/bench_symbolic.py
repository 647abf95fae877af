"""Benchmark of `infograv.symbolic` against einsteinpy and sympy.diffgeom (not a test).

Part 1, symbolic: Christoffel symbols + Riemann + Ricci + scalar curvature for Schwarzschild,
Kerr, Tangherlini D = 5, 6 and the conformally flat metric e^{2φ} δ with φ a sum of two Gaussian
wells in n = 3, 4. Every package runs each case in its own fresh Python process (so SymPy's
cache starts empty for all) with a time limit; the time measured is the computation only, not
the imports. The results are verified numerically against each other at random points (all
Christoffel, Riemann and Ricci components and the scalar). The opt-in simplification
(`infograv.symbolic.simplified`) is timed separately.

Part 2, compiled: Christoffel symbols at 1e5 points with `infograv.to_jax` + `jax.jit`, with
`sympy.lambdify(modules="numpy")`, and with a Christoffel function written by hand in JAX;
compile time apart from run time (median of repeated runs).

Usage:
    python benchmarks/bench_symbolic.py                 # everything (einsteinpy is slow)
    python benchmarks/bench_symbolic.py --timeout 60 --cases schwarzschild kerr
    python benchmarks/bench_symbolic.py --skip-foreign  # infograv only
    python benchmarks/bench_symbolic.py --markdown out.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
CASES = ["schwarzschild", "kerr", "tangherlini5", "tangherlini6", "conformal3", "conformal4"]
PACKAGES = ["infograv", "einsteinpy", "diffgeom"]
PARAMS = {"M": 0.7, "a": 0.4, "r_s": 0.8}


# ------------------------------------------------------------------------------ the cases
def case_metric(name: str):
    """`(components, coords)` of a case, as plain SymPy objects (shared by all packages)."""
    import sympy as sp

    from infograv import symbolic as S

    if name == "schwarzschild":
        g = S.schwarzschild()
    elif name == "kerr":
        g = S.kerr()
    elif name.startswith("tangherlini"):
        g = S.tangherlini(int(name[-1]))
    elif name.startswith("conformal"):
        n = int(name[-1])
        xs = sp.symbols(f"x1:{n + 1}")
        half = sp.Rational(1, 2)
        w1 = sp.exp(-((xs[0] - half) ** 2 + sum(x**2 for x in xs[1:])) / 2)
        w2 = sp.exp(-((xs[0] + half) ** 2 + sum(x**2 for x in xs[1:])) / 2)
        g = S.conformally_flat(n, phi=-w1 - half * w2)
    else:
        raise ValueError(f"case: unknown {name!r}; choose from {CASES}")
    return sp.Matrix(g.components), list(g.coords)


def case_points(name: str, coords, k: int = 3):
    """`k` reproducible random points inside the domain of the case."""
    import numpy as np

    rng = np.random.default_rng(12345)
    pts = []
    for _ in range(k):
        p = {}
        for c in coords:
            if c.name == "r":
                p[c.name] = rng.uniform(3.0, 6.0)
            elif c.name.startswith("theta"):
                p[c.name] = rng.uniform(0.4, 2.6)
            elif c.name in ("t", "phi"):
                p[c.name] = rng.uniform(0.0, 3.0)
            else:
                p[c.name] = rng.uniform(-1.0, 1.0)
        pts.append(p)
    return pts


def evaluate(coords, arrays, points):
    """Numerical values (lists) of SymPy arrays at the points; parameters from PARAMS."""
    import numpy as np
    import sympy as sp

    params = sorted(
        {s for a in arrays for s in sp.sympify(a).free_symbols} - set(coords),
        key=lambda s: s.name,
    )
    flat = [e for a in arrays for e in sp.flatten(a)]
    f = sp.lambdify(list(coords) + params, flat, modules="numpy", cse=True)
    out = []
    for p in points:
        vals = [p[c.name] for c in coords] + [PARAMS[s.name] for s in params]
        out.append(np.asarray(f(*vals), dtype=float).tolist())
    return out


# ------------------------------------------------------------------------------ workers
def work_infograv(name: str) -> dict:
    import sympy as sp

    from infograv.symbolic import Metric, simplified

    comps, coords = case_metric(name)
    t0 = time.perf_counter()
    g = Metric(comps, coords)
    G, R, Ric, s = g.christoffel(), g.riemann(), g.ricci(), g.ricci_scalar()
    elapsed = time.perf_counter() - t0
    signal.alarm(0)  # the limit covers the timed computation, not the checks below
    t1 = time.perf_counter()
    simplified(G, timeout=1.0)
    simplified(s, timeout=5.0)
    t_simp = time.perf_counter() - t1
    vals = evaluate(coords, [G, R, Ric, sp.Array([s])], case_points(name, coords))
    return {"time": elapsed, "simplify_time": t_simp, "values": vals}


def work_einsteinpy(name: str) -> dict:
    import sympy as sp
    from einsteinpy.symbolic import (
        ChristoffelSymbols,
        MetricTensor,
        RicciScalar,
        RicciTensor,
        RiemannCurvatureTensor,
    )

    comps, coords = case_metric(name)
    t0 = time.perf_counter()
    m = MetricTensor(comps.tolist(), coords)
    ch = ChristoffelSymbols.from_metric(m)
    rm = RiemannCurvatureTensor.from_christoffels(ch)
    ric = RicciTensor.from_riemann(rm)
    R = RicciScalar.from_riccitensor(ric)
    elapsed = time.perf_counter() - t0
    signal.alarm(0)  # the limit covers the timed computation, not the checks below
    arrays = [ch.tensor(), rm.tensor(), ric.tensor(), sp.Array([R.expr])]
    return {"time": elapsed, "values": evaluate(coords, arrays, case_points(name, coords))}


def work_diffgeom(name: str) -> dict:
    import sympy as sp
    from sympy.diffgeom import (
        CoordSystem,
        Manifold,
        Patch,
        TensorProduct,
        metric_to_Christoffel_2nd,
        metric_to_Ricci_components,
        metric_to_Riemann_components,
    )

    comps, coords = case_metric(name)
    n = len(coords)
    man = Manifold("M", n)
    patch = Patch("P", man)
    cs = CoordSystem("C", patch, coords)
    fields = cs.coord_functions()
    to_field = dict(zip(coords, fields))
    back = dict(zip(fields, coords))
    dx = cs.base_oneforms()
    t0 = time.perf_counter()
    gf = comps.xreplace(to_field)
    metric = sum(
        (gf[i, j] * TensorProduct(dx[i], dx[j]) for i in range(n) for j in range(n)
         if gf[i, j] != 0),
        sp.S.Zero,
    )
    ch = metric_to_Christoffel_2nd(metric)
    rm = metric_to_Riemann_components(metric)
    ric = metric_to_Ricci_components(metric)
    ginv = gf.inv()
    s = sum(ginv[i, j] * ric[i, j] for i in range(n) for j in range(n))
    elapsed = time.perf_counter() - t0
    signal.alarm(0)  # the limit covers the timed computation, not the checks below
    arrays = [a.xreplace(back) if hasattr(a, "xreplace") else a for a in (ch, rm, ric)]
    arrays.append(sp.Array([sp.sympify(s).xreplace(back)]))
    return {"time": elapsed, "values": evaluate(coords, arrays, case_points(name, coords))}


WORKERS = {"infograv": work_infograv, "einsteinpy": work_einsteinpy, "diffgeom": work_diffgeom}


def run_worker(package: str, case: str, timeout: float) -> dict:
    """Run one package on one case in a fresh process; `{"time": None}` on timeout/failure."""
    cmd = [sys.executable, str(HERE), "--worker", package, case]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout + 120, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"time": None, "status": f"> {timeout:.0f} s"}
    if proc.returncode == -signal.SIGALRM:  # the worker's own wall-clock limit
        return {"time": None, "status": f"> {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["?"]
        return {"time": None, "status": f"failed: {tail[0][:80]}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["time"] > timeout:
        return {"time": None, "status": f"> {timeout:.0f} s"}
    res["status"] = "ok"
    return res


def _worker_main(package: str, case: str, timeout: float) -> None:
    # a hard wall-clock limit inside the worker (imports and setup get 30 s extra); SIGALRM
    # ends the process, which the parent reports as "> timeout"
    signal.alarm(int(timeout) + 30)
    res = WORKERS[package](case)
    print(json.dumps(res))


def max_rel_diff(a, b) -> float:
    import numpy as np

    worst = 0.0
    for pa, pb in zip(a, b):
        pa, pb = np.asarray(pa), np.asarray(pb)
        scale = max(1.0, float(np.max(np.abs(pa))))
        worst = max(worst, float(np.max(np.abs(pa - pb))) / scale)
    return worst


# ------------------------------------------------------------------------ compiled part
def bench_compiled(npts: int, repeats: int = 21) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import sympy as sp

    from infograv import symbolic as S

    jax.config.update("jax_enable_x64", True)
    rows = []

    def timed_jax(fa, fb, args):
        """First-call and median steady times of two jitted functions, run alternately so
        that load from other processes affects both alike."""
        firsts, outs = [], []
        for fn in (fa, fb):
            t0 = time.perf_counter()
            outs.append(np.asarray(jax.block_until_ready(fn(*args))))
            firsts.append(time.perf_counter() - t0)
        runs: list[list[float]] = [[], []]
        for _ in range(repeats):
            for i, fn in enumerate((fa, fb)):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*args))
                runs[i].append(time.perf_counter() - t0)
        ra, rb = statistics.median(runs[0]), statistics.median(runs[1])
        return firsts[0], ra, outs[0], firsts[1], rb, outs[1]

    def timed_numpy(fn, args, shape):
        runs = []
        out = None
        for _ in range(max(3, repeats // 2)):
            t0 = time.perf_counter()
            raw = fn(*args)
            out = np.stack([np.broadcast_to(np.asarray(e, dtype=float), args[0].shape)
                            for e in raw], axis=-1).reshape(args[0].shape + shape)
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs), out

    rng = np.random.default_rng(0)

    # --- Schwarzschild: Γ by hand (closed form, e.g. Carroll 2004 eq. 5.53)
    g = S.schwarzschild()
    t, r, th, ph = g.coords
    M = sp.Symbol("M")
    pts = [rng.uniform(0, 1, npts), rng.uniform(3, 8, npts), rng.uniform(0.3, 2.8, npts),
           rng.uniform(0, 6, npts)]

    def hand_schw(t_, r_, th_, ph_, m=0.7):
        z = jnp.zeros_like(r_)
        f = 1 - 2 * m / r_
        s, c = jnp.sin(th_), jnp.cos(th_)
        G = [[[z] * 4 for _ in range(4)] for _ in range(4)]
        G[0][0][1] = G[0][1][0] = m / (r_**2 * f)
        G[1][0][0] = m * f / r_**2
        G[1][1][1] = -m / (r_**2 * f)
        G[1][2][2] = -r_ * f
        G[1][3][3] = -r_ * f * s**2
        G[2][1][2] = G[2][2][1] = 1 / r_
        G[2][3][3] = -s * c
        G[3][1][3] = G[3][3][1] = 1 / r_
        G[3][2][3] = G[3][3][2] = c / s
        return jnp.stack([jnp.stack([jnp.stack(row, -1) for row in blk], -2) for blk in G], -3)

    rows.append(_compare_compiled("schwarzschild", g.christoffel(), [t, r, th, ph], {M: 0.7},
                                  pts, hand_schw, timed_jax, timed_numpy))

    # --- conformal e^{2φ}δ in n = 4, two Gaussian wells: Γ^i_jk = δ_ij ∂_kφ + δ_ik ∂_jφ
    #     − δ_jk ∂_iφ with ∂φ written by hand
    comps, coords = case_metric("conformal4")
    gc = S.Metric(comps, coords)
    ptsc = [rng.uniform(-1, 1, npts) for _ in range(4)]

    def hand_conf(*xs):
        x = jnp.stack(xs, -1)
        c1 = jnp.array([0.5, 0.0, 0.0, 0.0])
        c2 = jnp.array([-0.5, 0.0, 0.0, 0.0])
        w1 = jnp.exp(-0.5 * jnp.sum((x - c1) ** 2, -1))
        w2 = jnp.exp(-0.5 * jnp.sum((x - c2) ** 2, -1))
        dphi = w1[..., None] * (x - c1) + 0.5 * w2[..., None] * (x - c2)  # ∇φ
        eye = jnp.eye(4, dtype=x.dtype)
        return (eye[:, :, None] * dphi[..., None, None, :]
                + eye[:, None, :] * dphi[..., None, :, None]
                - eye[None, :, :] * dphi[..., :, None, None])

    rows.append(_compare_compiled("conformal4", gc.christoffel(), list(coords), {}, ptsc,
                                  hand_conf, timed_jax, timed_numpy))
    return rows


def _compare_compiled(name, G, coords, params, pts, hand, timed_jax, timed_numpy):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import sympy as sp

    import infograv

    n = len(coords)
    t0 = time.perf_counter()
    f = infograv.to_jax(G, coords, params=params)
    t_trace = time.perf_counter() - t0
    jf = jax.jit(lambda *xs: f(*xs))
    jh = jax.jit(hand)
    args = [jnp.asarray(p) for p in pts]
    first_ig, run_ig, out_ig, first_h, run_h, out_h = timed_jax(jf, jh, args)

    Gs = G.subs(params) if params else G
    t0 = time.perf_counter()
    fl = sp.lambdify(coords, list(sp.flatten(Gs)), modules="numpy")
    t_lamb = time.perf_counter() - t0
    run_l, out_l = timed_numpy(fl, [np.asarray(p) for p in pts], (n, n, n))
    err_h = float(np.max(np.abs(out_ig - out_h)) / max(1.0, np.max(np.abs(out_h))))
    err_l = float(np.max(np.abs(out_ig - out_l)) / max(1.0, np.max(np.abs(out_l))))
    return {
        "case": name, "points": len(pts[0]),
        "infograv_build_s": t_trace, "infograv_compile_s": first_ig - run_ig,
        "infograv_run_s": run_ig,
        "hand_compile_s": first_h - run_h, "hand_run_s": run_h,
        "lambdify_build_s": t_lamb, "lambdify_run_s": run_l,
        "err_vs_hand": err_h, "err_vs_lambdify": err_l,
    }


# ------------------------------------------------------------------------------- report
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt_t(x):
    if x is None:
        return "—"
    return f"{x:.3g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("PACKAGE", "CASE"), help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per case per package")
    ap.add_argument("--skip-foreign", action="store_true", help="run infograv only")
    ap.add_argument("--skip-compiled", action="store_true")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    ns = ap.parse_args(argv)
    if ns.worker:
        _worker_main(ns.worker[0], ns.worker[1], ns.timeout)
        return 0

    packages = ["infograv"] if ns.skip_foreign else PACKAGES
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    out(f"Machine: {platform.machine()}, {_cpu_model()}, {platform.platform()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs visible, "
        f"load average {os.getloadavg()[0]:.1f} at start")
    versions = {}
    for mod in ("sympy", "jax", "einsteinpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - an optional package may be missing
            versions[mod] = "absent"
    out("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out(f"Per-case limit: {ns.timeout:.0f} s per package. Times in seconds (computation only).")
    out()
    out("| case | infograv | einsteinpy | ratio | sympy.diffgeom | ratio | max rel. diff. "
        "(einsteinpy, diffgeom) | opt-in simplify |")
    out("|---|---|---|---|---|---|---|---|")
    for case in ns.cases:
        res = {p: run_worker(p, case, ns.timeout) for p in packages}
        ig = res["infograv"]
        cells = [case, fmt_t(ig["time"]) if ig["time"] is not None else ig["status"]]
        diffs = []
        for p in ("einsteinpy", "diffgeom"):
            if p not in res:
                cells += ["—", "—"]
                continue
            rp = res[p]
            if rp["time"] is None:
                cells += [rp["status"], f"> {ns.timeout / ig['time']:.0f}×"
                          if ig["time"] and rp["status"].startswith(">") else "—"]
                diffs.append("—")
            else:
                ratio = f"{rp['time'] / ig['time']:.0f}×" if ig["time"] else "—"
                cells += [fmt_t(rp["time"]), ratio]
                diffs.append(f"{max_rel_diff(ig['values'], rp['values']):.1e}"
                             if "values" in ig else "—")
        cells.append(", ".join(diffs) if diffs else "—")
        cells.append(fmt_t(ig.get("simplify_time")))
        out("| " + " | ".join(cells) + " |")
    out()
    if not ns.skip_compiled:
        out(f"Compiled Christoffel symbols at {ns.points} points (float64, CPU): build = "
            "SymPy → code, compile = first call − steady call, run = median steady call.")
        out()
        out("| case | to_jax build | to_jax compile | to_jax run | hand JAX compile | "
            "hand JAX run | run ratio to_jax/hand | lambdify build | lambdify run | "
            "max rel. diff. (hand, lambdify) |")
        out("|---|---|---|---|---|---|---|---|---|---|")
        for row in bench_compiled(ns.points):
            out(f"| {row['case']} | {fmt_t(row['infograv_build_s'])} | "
                f"{fmt_t(row['infograv_compile_s'])} | {fmt_t(row['infograv_run_s'])} | "
                f"{fmt_t(row['hand_compile_s'])} | {fmt_t(row['hand_run_s'])} | "
                f"{row['infograv_run_s'] / row['hand_run_s']:.2f} | "
                f"{fmt_t(row['lambdify_build_s'])} | {fmt_t(row['lambdify_run_s'])} | "
                f"{row['err_vs_hand']:.1e}, {row['err_vs_lambdify']:.1e} |")
    if ns.markdown:
        ns.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
