"""Benchmark: the boundary-value geodesic (log map) on `e^{2φ} δ`, φ a sum of Gaussian wells.

    .venv/bin/python benchmarks/bench_logmap.py [--dims 2 16 384] [--geomstats-max-dim 16]
        [--geomstats-tight-max-dim 2]

φ(x) = Σ_k A_k exp(−|x − c_k|²/2σ²) with 3 wells near the origin (A = 0.8, 0.6, 0.5,
σ = 1, centres and endpoints drawn with a fixed seed). For each dimension d:

  infograv shooting   log_map(method="shooting"), Levenberg–Marquardt on RK4 (64 steps)
  infograv hybrid     log_map(method="hybrid"): path-energy minimisation, then shooting
  infograv energy     log_map(method="energy"), 64 segments (a discretisation, O(1/K²))
  scipy solve_bvp     collocation on (x, v) with the closed-form Γ(v, v) in NumPy, tol 1e-8
  geomstats LogODE    geomstats' LogODESolver (scipy solve_bvp, 20 initial nodes, Christoffels
                      by geomstats' autograd backend, use_jac=False: its faster setting), at its
                      default tolerance (1e-3) up to --geomstats-max-dim and at tol 1e-8 (equal
                      accuracy) up to --geomstats-tight-max-dim

Time (run, compile apart) and the length of the geodesic found, plus its error against the
infograv shooting result with 512 RK4 steps (reference). geomstats' answer is its initial
velocity; the length is that of the geodesic it starts, integrated by SciPy at rtol 1e-12, and
"converged" means that geodesic ends within 1e-6 of the target point.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("GEOMSTATS_BACKEND", "autograd")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.integrate  # noqa: E402

from infograv import geodesic as gd, geometry as geo  # noqa: E402

AMPS = np.array([0.8, 0.6, 0.5])
SIGMA = 1.0


def problem(d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 0.6 / np.sqrt(d)
    a = rng.normal(size=d) / np.sqrt(d) - 0.5 * np.eye(d)[0]
    b = rng.normal(size=d) / np.sqrt(d) + 0.5 * np.eye(d)[0]
    return centres, a, b


def phi_np(x, centres):
    diff = x[None, :] - centres
    return float(np.sum(AMPS * np.exp(-np.sum(diff**2, 1) / (2 * SIGMA**2))))


def grad_phi_np(x, centres):
    # x: (d, m) columns
    diff = x[None, :, :] - centres[:, :, None]  # (K, d, m)
    w = AMPS[:, None] * np.exp(-np.sum(diff**2, 1) / (2 * SIGMA**2))  # (K, m)
    return -np.sum(w[:, None, :] * diff, 0) / SIGMA**2


def length_np(path, centres):
    # ∫ e^{φ} |ẋ| by the midpoint rule on a fine polyline
    mids = 0.5 * (path[1:] + path[:-1])
    seg = np.linalg.norm(path[1:] - path[:-1], axis=1)
    return float(sum(np.exp(phi_np(m, centres)) * s for m, s in zip(mids, seg)))


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 16, 384])
    ap.add_argument("--geomstats-max-dim", type=int, default=16)
    ap.add_argument("--geomstats-tight-max-dim", type=int, default=2,
                    help="largest d at which geomstats also runs at tol 1e-8 (slow)")
    ap.add_argument("--scipy-max-dim", type=int, default=16)
    args = ap.parse_args()
    rows = []
    for d in args.dims:
        centres, a, b = problem(d)
        wells = geo.gaussian_wells(jnp.asarray(centres), -jnp.asarray(AMPS), width=SIGMA)
        metric = geo.ConformalMetric(wells, dim=d)  # φ = Σ A exp(...) (wells has −A)
        a_j, b_j = jnp.asarray(a), jnp.asarray(b)
        ref = gd.log_map(metric, a_j, b_j, method="hybrid", n_steps=512)
        L_ref = float(ref.length)
        for name, kw in (("infograv shooting", dict(method="shooting", n_steps=64)),
                         ("infograv hybrid", dict(method="hybrid", n_steps=64)),
                         ("infograv energy", dict(method="energy", n_steps=64))):
            fn = eqx.filter_jit(lambda x, y, kw=kw: gd.log_map(metric, x, y, **kw))
            _, t_first = timed(fn, a_j, b_j)
            sol, t_run = timed(fn, a_j, b_j)
            ok = bool(sol.result == gd.RESULTS.successful)
            rows.append((d, name, t_first - t_run, t_run, float(sol.length),
                         abs(float(sol.length) - L_ref) / L_ref, ok))

        if d <= args.scipy_max_dim:
            def rhs(t, y):
                x, v = y[:d], y[d:]
                g = grad_phi_np(x, centres)
                acc = 2 * v * np.sum(g * v, 0) - np.sum(v * v, 0) * g
                return np.vstack([v, -acc])

            def bc(ya, yb):
                return np.concatenate([ya[:d] - a, yb[:d] - b])

            tt = np.linspace(0, 1, 20)
            y0 = np.vstack([a[:, None] + (b - a)[:, None] * tt, np.repeat((b - a)[:, None], 20, 1)])
            t0 = time.perf_counter()
            s = scipy.integrate.solve_bvp(rhs, bc, tt, y0, tol=1e-8, max_nodes=100000)
            t_run = time.perf_counter() - t0
            fine = s.sol(np.linspace(0, 1, 4001))[:d].T
            L = length_np(fine, centres)
            rows.append((d, "scipy solve_bvp", 0.0, t_run, L, abs(L - L_ref) / L_ref,
                         bool(s.success)))

        if d <= args.geomstats_max_dim:
            try:
                if not hasattr(np, "trapz"):
                    # geomstats 2.8 and autograd 1.9 still import `numpy.trapz`, which NumPy 2.4
                    # removed; the function lives on as `numpy.trapezoid`
                    np.trapz = np.trapezoid
                import geomstats.backend as gs
                from geomstats.geometry.euclidean import Euclidean
                from geomstats.geometry.riemannian_metric import RiemannianMetric
                from geomstats.numerics.bvp import ScipySolveBVP
                from geomstats.numerics.geodesic import LogODESolver

                def ivp(t, y):
                    x, v = y[:d, None], y[d:, None]
                    g = grad_phi_np(x, centres)
                    acc = 2 * v * np.sum(g * v, 0) - np.sum(v * v, 0) * g
                    return np.concatenate([y[d:], -acc[:, 0]])

                class Conformal(RiemannianMetric):
                    def metric_matrix(self, base_point=None):
                        diff = base_point[..., None, :] - gs.array(centres)
                        phi = gs.sum(gs.array(AMPS) * gs.exp(-gs.sum(diff**2, -1) / 2.0), -1)
                        return gs.exp(2 * phi)[..., None, None] * gs.eye(d)

                space = Euclidean(dim=d, equip=False)
                space.equip_with_metric(Conformal)
                configs = [("defaults", None)]
                if d <= args.geomstats_tight_max_dim:
                    configs.append(("tol 1e-8", ScipySolveBVP(tol=1e-8, max_nodes=100000)))
                for label, integrator in configs:
                    space.metric.log_solver = LogODESolver(space, n_nodes=20,
                                                           integrator=integrator,
                                                           use_jac=False)
                    t0 = time.perf_counter()
                    logv = space.metric.log(gs.array(b), gs.array(a))
                    t_run = time.perf_counter() - t0
                    # the geodesic of geomstats' initial velocity, integrated tightly by SciPy:
                    # its length, and how far its end lands from b
                    shot = scipy.integrate.solve_ivp(
                        ivp, (0, 1), np.concatenate([a, np.asarray(logv)]), method="DOP853",
                        rtol=1e-12, atol=1e-12, dense_output=True)
                    path = shot.sol(np.linspace(0, 1, 4001))[:d].T
                    miss = float(np.linalg.norm(path[-1] - b))
                    print(f"geomstats ({label}) at d={d}: {t_run:.2f} s, |x(1) − b| = {miss:.1e}",
                          flush=True)
                    L = length_np(path, centres)
                    rows.append((d, f"geomstats LogODESolver ({label})", 0.0, t_run, L,
                                 abs(L - L_ref) / L_ref, miss < 1e-6))
            except Exception as exc:  # pragma: no cover
                print(f"geomstats at d={d}: not run: {exc!r}")

    print("| d | method | compile s | run s | length | rel. error vs reference | converged |")
    print("|---|---|---|---|---|---|---|")
    for d, name, comp, run, L, err, ok in rows:
        print(f"| {d} | {name} | {comp:.1f} | {run:.4f} | {L:.10f} | {err:.1e} | {ok} |")
    for d in args.dims:
        ours = [r for r in rows if r[0] == d and r[1] == "infograv shooting"][0][3]
        for r in rows:
            if r[0] == d and not r[1].startswith("infograv"):
                print(f"d = {d}: {r[1]} / infograv shooting = {r[3] / ours:.0f}x")


if __name__ == "__main__":
    main()
