"""Speed of the empirical study: per-stage wall times of a real run, and the statistics kernels.

    python benchmarks/bench_validation.py            # quick settings on SmolLM2 + statistics
    python benchmarks/bench_validation.py --full     # the full default study (minutes)
    python benchmarks/bench_validation.py --stats    # statistics only (no model needed)

Prints the machine's load average beside every timing (the machine may be shared). The
statistics rows compare, in one run, the vectorised bootstrap Spearman of
`infograv.experiments` with a per-resample loop over a pure-Python tie-ranking (the previous
implementation's algorithm, re-typed here as the reference), at n = 310, 3,000 and 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _loop_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        if j > i:
            ranks[order[i:j + 1]] = 0.5 * (i + j)
        i = j + 1
    return ranks


def _loop_spearman_boot(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    out = np.empty(n_boot)
    for k, i in enumerate(idx):
        rx, ry = _loop_ranks(x[i]), _loop_ranks(y[i])
        out[k] = np.corrcoef(rx, ry)[0, 1]
    return out


def bench_statistics(n_boot: int = 2000) -> None:
    from infograv.experiments import bootstrap, spearman

    print(f"\nbootstrap Spearman, {n_boot} resamples ({_load()})")
    print("| n | vectorised (s) | per-resample loop (s) | ratio |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (310, 3000, 10000):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        t0 = time.perf_counter()
        _, stats = bootstrap(spearman, x, y, n_boot=n_boot, seed=1)
        tv = time.perf_counter() - t0
        if n <= 3000:
            t0 = time.perf_counter()
            ref = _loop_spearman_boot(x, y, n_boot, 1)
            tl = time.perf_counter() - t0
            # same resampling indices: the same numbers
            assert np.allclose(np.sort(stats), np.sort(ref), atol=1e-12)
            print(f"| {n} | {tv:.2f} | {tl:.2f} | {tl / tv:.0f}x |")
        else:
            print(f"| {n} | {tv:.2f} | (not run) | |")


def bench_study(full: bool) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from infograv.experiments import ValidationSettings, run_validation

    settings = ValidationSettings() if full else ValidationSettings.quick()
    print(f"\n{'full default' if full else 'quick'} study on SmolLM2 ({_load()} at start)")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run_validation(d, settings=settings)
        wall = time.perf_counter() - t0
        timings = json.load(open(os.path.join(d, "run.json")))["timings_s"]
    print("| stage | wall (s) |")
    print("|---|---|")
    for k, v in timings.items():
        print(f"| {k} | {v:.1f} |")
    print(f"total {wall:.1f} s wall ({_load()} at end)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the full default study")
    ap.add_argument("--stats", action="store_true", help="statistics only")
    args = ap.parse_args()
    bench_statistics()
    if not args.stats:
        bench_study(args.full)


if __name__ == "__main__":
    main()
