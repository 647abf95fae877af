"""Benchmark: float64 sin and cos, as compiled by `infograv.to_jax`, against XLA's and NumPy's.

    .venv/bin/python benchmarks/bench_trig.py [--n 10000] [--repeat 1000]

For an array of n float64 angles uniform in [−10, 10]: sin and cos together (the pair a metric in
spherical coordinates needs) by NumPy, by `jax.numpy` under `jit` (XLA's own), and by the
vectorised kernel `to_jax` prints (`infograv._special`), under `jit`. Compile time apart; run time
per call (mean over `--repeat` calls); ratios; and the largest difference from NumPy in ulp.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from infograv import _special  # noqa: E402


def per_call(fn, x, repeat: int) -> float:
    jax.block_until_ready(fn(x))
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn(x)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args()
    x = np.random.default_rng(0).uniform(-10, 10, args.n)
    xj = jnp.asarray(x)
    ref = (np.sin(x), np.cos(x))
    rows = [("NumPy np.sin, np.cos", 0.0, per_call(lambda a: (np.sin(a), np.cos(a)), x,
                                                   args.repeat), 0.0)]
    for name, f in (("XLA jnp.sin, jnp.cos (jit)", lambda a: (jnp.sin(a), jnp.cos(a))),
                    ("infograv kernel (jit)", lambda a: (_special.sin(a), _special.cos(a)))):
        jf = jax.jit(f)
        t0 = time.perf_counter()
        jax.block_until_ready(jf(xj))
        first = time.perf_counter() - t0
        run = per_call(jf, xj, args.repeat)
        s, c = (np.asarray(v) for v in jf(xj))
        ulp = max(np.max(np.abs(s - ref[0]) / np.spacing(np.abs(ref[0]))),
                  np.max(np.abs(c - ref[1]) / np.spacing(np.abs(ref[1]))))
        rows.append((name, first - run, run, float(ulp)))
    print(f"sin and cos of {args.n} float64 angles in [-10, 10]\n")
    print("| method | compile s | run µs / call | ns / element | max ulp from NumPy |")
    print("|---|---|---|---|---|")
    for name, comp, run, ulp in rows:
        print(f"| {name} | {comp:.2f} | {run * 1e6:.1f} | {run / args.n * 1e9:.2f} | {ulp:.0f} |")
    ours = rows[-1][2]
    print("\nratios (run time / infograv kernel):")
    for name, _, run, _ in rows[:-1]:
        print(f"  {name}: {run / ours:.1f}x")


if __name__ == "__main__":
    main()
