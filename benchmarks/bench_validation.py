"""Speed of the empirical study: per-stage wall times of a real run, and the statistics kernels.

    python benchmarks/bench_validation.py            # quick settings on SmolLM2 + statistics
    python benchmarks/bench_validation.py --full     # the full default study (minutes)
    python benchmarks/bench_validation.py --stats    # statistics only (no model needed)
    python benchmarks/bench_validation.py --scale 300 3000 10000   # the study's scaling curve

`--scale` runs the whole study (`run_validation`, the quick settings with every prompt kept:
no cap on the training, held-out and mass prompts; the fit on its default subsample of 256
training prompts) on N synthetic prompts, each N in a fresh process, and prints prompts per
second and the process's peak resident memory beside the memory the dense (prompts x
vocabulary) float64 rows alone would take. The distribution cache is off, so every prompt goes
through the model.

Prints the machine's load average beside every timing (the machine may be shared). The
statistics rows compare, in one run, the vectorised bootstrap Spearman of
`infograv.experiments` with a per-resample loop over a pure-Python tie-ranking (the previous
implementation's algorithm, re-typed here as the reference), at n = 310, 3,000 and 10,000.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
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


_NOUNS = ("river", "engine", "garden", "letter", "market", "planet", "teacher", "window",
          "mountain", "theory", "kitchen", "violin", "harbour", "forest", "ladder", "signal")
_ADJS = ("quiet", "ancient", "bright", "broken", "distant", "famous", "hidden", "narrow",
         "modern", "silver", "strange", "gentle")
_FRAMES = ("The {a} {n} near the {m} was", "Everyone knew that the {a} {n} would",
           "In the story, a {a} {n} and a {m}", "My favourite thing about the {n} is",
           "Scientists studying the {a} {m} found that", "Q: Where is the {a} {n}? A:",
           "She opened the {n} and saw a {a}", "The history of the {m} begins with")


def synthetic_prompts(n: int, seed: int = 0) -> list[str]:
    """n distinct short English prompts from a seeded grammar (for the scaling curve)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        f = _FRAMES[rng.integers(len(_FRAMES))]
        t = f.format(a=_ADJS[rng.integers(len(_ADJS))], n=_NOUNS[rng.integers(len(_NOUNS))],
                     m=_NOUNS[rng.integers(len(_NOUNS))])
        t = f"{t} {len(out)}" if t in seen else t
        seen.add(t)
        out.append(t)
    return out


def _one_scale(n: int) -> None:
    """Child process: the study on n synthetic prompts; prints one JSON line."""
    import resource

    import jax

    jax.config.update("jax_enable_x64", True)
    from infograv.experiments import ValidationSettings, run_validation

    settings = dataclasses.replace(ValidationSettings.quick(), max_train=None, max_heldout=None,
                                   max_mass_prompts=None)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_validation(d, settings=settings, prompts=synthetic_prompts(n), cache=False)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"n": n, "wall_s": wall, "peak_bytes": peak,
                      "n_train": res["info"]["n_train"], "n_heldout": res["info"]["n_heldout"],
                      "n_fit": res["fit"].get("n_fit_prompts"), "vocab": 49152,
                      "timings_s": res["timings_s"]}))


def bench_scale(sizes: list[int]) -> None:
    print(f"\nthe study on N synthetic prompts, each in a fresh process ({_load()} at start)")
    print("| N | train / held-out / fitted | wall (s) | prompts/s | peak memory (GB) | "
          "dense float64 rows alone (GB) | dense ÷ peak |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        dense = n * r["vocab"] * 8 / 1e9
        peak = r["peak_bytes"] / 1e9
        print(f"| {n} | {r['n_train']} / {r['n_heldout']} / {r['n_fit']} | {r['wall_s']:.0f} | "
              f"{n / r['wall_s']:.1f} | {peak:.2f} | {dense:.2f} | {dense / peak:.2f} |",
              flush=True)
        print("  stages (s): " + ", ".join(f"{k} {v:.0f}" for k, v in r["timings_s"].items())
              + f" ({_load()})", flush=True)
    print(f"({_load()} at end)")
    print("\nper-stage wall times (s)")
    stages = [k for k in rows[0]["timings_s"] if not k.startswith("total")]
    print("| N | " + " | ".join(stages) + " |")
    print("|---|" + "---|" * len(stages))
    for r in rows:
        print(f"| {r['n']} | " + " | ".join(f"{r['timings_s'][k]:.0f}" for k in stages) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the full default study")
    ap.add_argument("--stats", action="store_true", help="statistics only")
    ap.add_argument("--scale", type=int, nargs="+", metavar="N",
                    help="the study on N synthetic prompts (e.g. 300 3000 10000)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        _one_scale(args.one)
        return
    if args.scale:
        bench_scale(args.scale)
        return
    bench_statistics()
    if not args.stats:
        bench_study(args.full)


if __name__ == "__main__":
    main()
