"""Benchmark: the boundary-value geodesic (log map) on `e^{2φ} δ`, φ a sum of Gaussian wells.

    .venv/bin/python benchmarks/bench_logmap.py [--dims 2 16 384] [--geomstats-max-dim 2]

φ(x) = Σ_k A_k exp(−|x − c_k|²/2σ²) with 3 wells near the origin (A = 0.8, 0.6, 0.5,
σ = 1, centres and endpoints drawn with a fixed seed). For each dimension d:

  infograv shooting   log_map(method="shooting"), Levenberg–Marquardt on RK4 (64 steps)
  infograv hybrid     log_map(method="hybrid"): path-energy minimisation, then shooting
  infograv energy     log_map(method="energy"), 64 segments (a discretisation, O(1/K²))
  scipy solve_bvp     collocation on (x, v) with the closed-form Γ(v, v) in NumPy, tol 1e-8
  geomstats LogODE    geomstats' LogODESolver (scipy solve_bvp with its autograd
                      Christoffels), where it runs in reasonable time

Time (run, compile apart) and the length of the geodesic found, plus its error against the
infograv shooting result with 512 RK4 steps (reference).
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
    ap.add_argument("--geomstats-max-dim", type=int, default=2)
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
                import geomstats.backend as gs
                from geomstats.geometry.euclidean import Euclidean
                from geomstats.geometry.riemannian_metric import RiemannianMetric
                from geomstats.numerics.geodesic import LogODESolver

                class Conformal(RiemannianMetric):
                    def metric_matrix(self, base_point=None):
                        diff = base_point[..., None, :] - gs.array(centres)
                        phi = gs.sum(gs.array(AMPS) * gs.exp(-gs.sum(diff**2, -1) / 2.0), -1)
                        return gs.exp(2 * phi)[..., None, None] * gs.eye(d)

                space = Euclidean(dim=d, equip=False)
                space.equip_with_metric(Conformal)
                space.metric.log_solver = LogODESolver(space, n_nodes=20)
                t0 = time.perf_counter()
                logv = space.metric.log(gs.array(b), gs.array(a))
                t_run = time.perf_counter() - t0
                path = space.metric.geodesic(initial_point=gs.array(a),
                                             initial_tangent_vec=logv)(np.linspace(0, 1, 201))
                L = length_np(np.asarray(path), centres)
                rows.append((d, "geomstats LogODESolver", 0.0, t_run, L,
                             abs(L - L_ref) / L_ref, True))
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
