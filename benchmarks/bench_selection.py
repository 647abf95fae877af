"""Benchmark: the selection distribution over a vocabulary against a plain matmul and NumPy.

B queries x N tokens x d dims (default 1024 x 50,000 x 384, float32). Reports, in one run on one
machine:

- `jnp.matmul` of the same shapes (B x d) @ (d x N): the achievable rate, 2 B N d FLOP;
- `infograv.model.selection_log_probs` (Gaussian kernel; per block of queries one matmul for the
  distances, then the compiled potential and a log-sum-exp): its rate counted with the same
  2 B N d FLOP, and its ratio to the matmul rate (target >= 0.5); also the unblocked
  `log_probs(energies(...))`;
- the streaming (chunked) thermodynamics, same FLOP count;
- a straightforward NumPy implementation (a loop over queries: distances, potential, stable
  softmax), timed on a subset of queries and scaled linearly to B (each query is independent).

Compile time is measured apart (the first call); run times are the median of `--repeat` calls.
Run: `python benchmarks/bench_selection.py [--B 1024 --N 50000 --d 384 --repeat 5]`. The same
script runs unchanged on a GPU (JAX picks the default backend).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from infograv.model import (
    Potential,
    Query,
    SemanticSpace,
    energies,
    log_probs,
    selection_log_probs,
    streaming_thermodynamics,
)


def _time(fn, repeat: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        runs.append(time.perf_counter() - t0)
    med = statistics.median(runs)
    return max(first - med, 0.0), med


def numpy_selection(E: np.ndarray, X: np.ndarray, M: np.ndarray, T: float, sigma: float):
    """Straightforward NumPy: for each query, distances, Gaussian-well energies, stable softmax."""
    out = np.empty((X.shape[0], E.shape[0]), E.dtype)
    for b in range(X.shape[0]):
        r2 = np.sum((E - X[b]) ** 2, axis=1)
        U = -M[b] * np.exp(-r2 / (2 * sigma**2))
        z = -U / T
        z -= z.max()
        out[b] = z - np.log(np.exp(z).sum())
    return out


def memory(N: int, d: int, B: int, chunk: int) -> None:
    """Peak resident memory of streaming thermodynamics for an N x d float32 vocabulary."""
    import resource

    # build the embedding in place, 50k rows at a time (donated buffer: no second full copy)
    upd = jax.jit(lambda E, c, i: jax.lax.dynamic_update_slice_in_dim(E, c, i, 0),
                  donate_argnums=0)
    E = jnp.zeros((N, d), jnp.float32)
    rng = np.random.default_rng(0)
    rows = 50_000
    for i in range(0, N, rows):
        n = min(rows, N - i)
        E = upd(E, jnp.asarray(rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d)), i)
    E.block_until_ready()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    space = SemanticSpace(E, bandwidth=1.0)
    X = jax.random.normal(jax.random.key(1), (B, d), jnp.float32) / np.sqrt(d)
    q = Query(X, jnp.ones(B, jnp.float32))
    phi = Potential("gaussian", d)
    t0 = time.perf_counter()
    res = streaming_thermodynamics(space, q, phi, 0.05, chunk_size=chunk)
    jax.block_until_ready(res)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    ent = float(res.thermo.entropy[0])
    print(f"# memory: N={N} d={d} B={B} chunk={chunk} float32; embedding {N * d * 4 / 2**30:.2f} "
          f"GiB; peak RSS after making it {base:.2f} GiB; peak RSS overall {peak:.2f} GiB; "
          f"streaming run {dt:.1f} s (incl. compile); entropy[0] = {ent:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--B", type=int, default=1024)
    ap.add_argument("--N", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--numpy-queries", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--memory", action="store_true",
                    help="only measure peak memory of the streaming path at N=1e6 (or --N)")
    args = ap.parse_args()
    if args.memory:
        memory(args.N if args.N != 50_000 else 1_000_000, args.d, min(args.B, 64), args.chunk)
        return
    B, N, d = args.B, args.N, args.d
    rng = np.random.default_rng(0)
    E = (rng.standard_normal((N, d)) / np.sqrt(d)).astype(np.float32)
    X = (rng.standard_normal((B, d)) / np.sqrt(d)).astype(np.float32)
    Mq = np.ones(B, np.float32)
    T, sigma = 0.05, 1.0
    space = SemanticSpace(jnp.asarray(E))
    q = Query(jnp.asarray(X), jnp.asarray(Mq))
    phi = Potential("gaussian", d, sigma=sigma)
    flop = 2.0 * B * N * d

    Ej, Xj = jnp.asarray(E), jnp.asarray(X)
    mm = jax.jit(lambda a, b: jnp.matmul(a, b.T))
    c_mm, t_mm = _time(lambda: mm(Xj, Ej), args.repeat)

    plain = jax.jit(lambda s, qq, p: log_probs(energies(s, qq, p), T))
    c_pl, t_pl = _time(lambda: plain(space, q, phi), args.repeat)
    sel = jax.jit(lambda s, qq, p: selection_log_probs(s, qq, p, T, query_block=args.block))
    c_sel, t_sel = _time(lambda: sel(space, q, phi), args.repeat)

    stream = jax.jit(lambda s, qq, p: streaming_thermodynamics(s, qq, p, T,
                                                               chunk_size=args.chunk).thermo.log_z)
    c_st, t_st = _time(lambda: stream(space, q, phi), args.repeat)

    nq = min(args.numpy_queries, B)
    t0 = time.perf_counter()
    ref = numpy_selection(E, X[:nq], Mq[:nq], T, sigma)
    t_np = (time.perf_counter() - t0) * B / nq
    got = np.asarray(sel(space, q, phi))[:nq]
    err = float(np.max(np.abs(got - ref)))

    dev = jax.devices()[0]
    print(f"# bench_selection  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# machine: {platform.processor() or platform.machine()}, {dev.platform} "
          f"({dev.device_kind}), jax {jax.__version__}, devices={len(jax.devices())}")
    print(f"# shapes: B={B} N={N} d={d} float32; FLOP counted as 2BNd = {flop:.3g}")
    print("| computation | compile (s) | run (s) | GFLOP/s | vs matmul |")
    print("|---|---|---|---|---|")
    for name, c, t in (("jnp.matmul (B,d)@(d,N)", c_mm, t_mm),
                       (f"selection_log_probs (full B x N, query block {args.block})", c_sel,
                        t_sel),
                       ("log_probs(energies(...)) unblocked (full B x N)", c_pl, t_pl),
                       (f"streaming_thermodynamics (chunk {args.chunk})", c_st, t_st)):
        print(f"| {name} | {c:.2f} | {t:.4f} | {flop / t / 1e9:.1f} | {t_mm / t:.2f} |")
    print(f"| NumPy loop (timed on {nq} queries, scaled to {B}) | - | {t_np:.2f} | "
          f"{flop / t_np / 1e9:.2f} | {t_mm / t_np:.3f} |")
    print(f"\nspeed-up of selection_log_probs over NumPy: {t_np / t_sel:.1f}x; "
          f"max |log P difference| on the subset: {err:.2e}")


if __name__ == "__main__":
    main()
