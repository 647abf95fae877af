"""Benchmark: the log map in SmolLM2's output (Fisher–Rao) metric at d = 576.

    .venv/bin/python benchmarks/bench_real_geodesic.py [--pairs 4] [--k 512] [--ridge 1e-5]
        [--full-logmap] [--no-scipy] [--quick]

Pairs: each prompt's final hidden state `h` (after the final norm) and `h + δ`, `δ` a random
direction scaled to metric length 0.1 (`δᵀgδ = 0.01`), so that every solver converges.

  infograv top-K       `log_map(method="shooting", n_steps=8)` on `OutputMetric` restricted to
                       the union of the top-K tokens, `Γ(v, v)` in three passes over the head
                       plus a preconditioned CG solve; `vmap` over the pairs
  infograv full V      (--full-logmap) the same with the full vocabulary (49,152 × 576)
  autodiff dense       the same log map on `FunctionMetric(metric)`: the dense `g(h)` and
                       `Γ` by autodiff of it (`general_acceleration`), top-K vocabulary
  scipy solve_bvp      collocation on `(x, v)` with infograv's `Γ` (top-K), tol 1e-6

First, one `Γ(v, v)` at the full vocabulary by each route (the `O(N d)` first-kind vector, the
CG and Cholesky solves, autodiff of the dense metric), with the errors against Cholesky.
Compile time (first call) is separate from run time (best of two further calls). The table
prints each time per pair and its ratio to infograv at the same vocabulary. Lengths are printed
so that the answers can be compared.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.integrate  # noqa: E402

from infograv import geodesic as gd, geometry as geo  # noqa: E402

PROMPTS = ["The capital of France is", "Once upon a time there was",
           "The best way to cook rice is", "In 1969, the first man on the moon",
           "My favourite colour is", "Water boils at", "The cat sat on the",
           "To be or not to be,"]


def _pairs(model, metric, n, rng):
    _, hid = model.next_token_logprobs(PROMPTS[:n])
    x0 = jnp.asarray(hid, jnp.float64)
    d = rng.normal(size=x0.shape)
    x1 = []
    for i in range(n):
        q = float(metric.inner(x0[i], jnp.asarray(d[i]), jnp.asarray(d[i])))
        x1.append(x0[i] + jnp.asarray(d[i]) * 0.1 / np.sqrt(q))
    return x0, jnp.stack(x1)


def _time(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return compile_s, best, out


def _batched(metric):
    @eqx.filter_jit
    def run(a, b):
        sol = jax.vmap(lambda p, q: gd.log_map(metric, p, q, n_steps=8, rtol=1e-8, atol=1e-8,
                                               throw=False))(a, b)
        return sol.length

    return run


def _scipy(metric, a, b):
    acc = jax.jit(jax.vmap(metric.acceleration, in_axes=(1, 1), out_axes=1))
    d = a.shape[0]

    def fun(_t, y):
        return np.vstack([y[d:], -np.asarray(acc(jnp.asarray(y[:d]), jnp.asarray(y[d:])))])

    def bc(ya, yb):
        return np.concatenate([ya[:d] - np.asarray(a), yb[:d] - np.asarray(b)])

    t = np.linspace(0, 1, 5)
    y0 = np.vstack([np.asarray(a)[:, None] + t[None] * np.asarray(b - a)[:, None],
                    np.repeat(np.asarray(b - a)[:, None], len(t), 1)])
    t0 = time.perf_counter()
    sol = scipy.integrate.solve_bvp(fun, bc, t, y0, tol=1e-6, max_nodes=200)
    dt = time.perf_counter() - t0
    v = jnp.asarray(sol.sol(0.0)[d:])
    return dt, float(jnp.sqrt(metric.inner(a, v, v))), sol.status


def main() -> None:
    """Run the benchmark and print the tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--ridge", type=float, default=1e-5)
    ap.add_argument("--full-logmap", action="store_true",
                    help="also time the log map at the full vocabulary (minutes on 2 cores)")
    ap.add_argument("--no-scipy", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="the Γ table at the top-K vocabulary, no SciPy (checks the script)")
    args = ap.parse_args()
    from infograv.lm import load_language_model

    model = load_language_model("smollm2")
    full = geo.OutputMetric.from_language_model(model, ridge=args.ridge, precond_rank=128)
    rng = np.random.default_rng(0)
    a, b = _pairs(model, full, args.pairs, rng)
    ids = full.top_tokens(jnp.concatenate([a, b]), args.k // 2)
    part = full.restrict(ids)
    rows = []
    c, r, ln = _time(_batched(part), a, b)
    rows.append(("infograv top-K", len(ids), c, r, np.asarray(ln), r))
    base = r
    if args.full_logmap:
        c, r, ln = _time(_batched(full), a, b)
        rows.append(("infograv full V", full.head.shape[0], c, r, np.asarray(ln), r))
    dense = geo.FunctionMetric(lambda x: part.metric(x), dim=part.dim)
    c, r, ln = _time(_batched(dense), a, b)
    rows.append(("autodiff dense", len(ids), c, r, np.asarray(ln), base))
    if not (args.no_scipy or args.quick):
        dt, ln0, status = _scipy(part, a[0], b[0])
        rows.append(("scipy solve_bvp", len(ids), 0.0, dt * args.pairs,
                     np.asarray([ln0] + [np.nan] * (args.pairs - 1)), base))
    gmetric = part if args.quick else full
    print(f"one Γ(v, v) at vocabulary {gmetric.head.shape[0]} × 576, compile apart, best of 2:")
    x, v = a[0], b[0] - a[0]
    chol = gmetric._copy(solver="cholesky")
    dense_full = geo.FunctionMetric(lambda y: chol.metric(y), dim=full.dim)
    gam = {}
    for name, fn in (("first kind (3 passes)", lambda y, w: gmetric.first_kind(y, w)),
                     ("Γ, CG (default)", lambda y, w: gmetric.acceleration(y, w)),
                     ("Γ, Cholesky", lambda y, w: chol.acceleration(y, w)),
                     ("Γ, autodiff dense",
                      lambda y, w: geo.general_acceleration(dense_full, y, w))):
        c, r, out = _time(jax.jit(fn), x, v)
        gam[name] = out
        print(f"  {name:24s} compile {c:7.2f} s  run {r:7.3f} s")
    ref = gam["Γ, Cholesky"]
    for name in ("Γ, CG (default)", "Γ, autodiff dense"):
        e = gam[name] - ref
        err = float(jnp.sqrt(chol.inner(x, e, e) / chol.inner(x, ref, ref)))
        print(f"  {name}: error in the metric's norm {err:.1e}")
    print(f"log map, SmolLM2 output metric, d = 576, ridge {args.ridge}, {args.pairs} pairs")
    print(f"{'method':18s} {'vocab':>6s} {'compile s':>10s} {'run s/pair':>11s} {'ratio':>7s}"
          "  lengths")
    for name, v, c, r, ln, ref in rows:
        print(f"{name:18s} {v:6d} {c:10.2f} {r / args.pairs:11.3f} {r / ref:7.2f}  "
              f"{np.array2string(ln, precision=6)}")


if __name__ == "__main__":
    main()
