"""Benchmark: building `Potential(name, d)` at any dimension, and compiling its first call.

    .venv/bin/python benchmarks/bench_kernels.py [--tree DIR ...] [--dims 3,8,16,31,32]

Each measurement runs in a fresh interpreter (so no SymPy or compilation cache carries over), with
JAX initialised before the clock starts: "build" is the time of `Potential(name, d)` (SymPy
expression, preparation, `to_jax`), "first call" the time of the first evaluation on 1,000 radii
(XLA compilation included), "second build" a second `Potential(name, d)` in the same process
(the caches). `--tree` runs the same measurement against other source trees (e.g. an older
commit unpacked with `git archive REV | tar -x -C DIR`), side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
jnp.zeros(()).block_until_ready()          # JAX initialised outside the clock
from infograv.model import Potential
name, d = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter(); phi = Potential(name, d); t1 = time.perf_counter()
r = jnp.linspace(0.1, 3.0, 1000)
phi(r, 1.0).block_until_ready(); t2 = time.perf_counter()
Potential(name, d); t3 = time.perf_counter()
print(json.dumps({"build": t1 - t0, "first_call": t2 - t1, "second_build": t3 - t2}))
"""


def measure(tree: Path, name: str, d: int, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu")
    try:
        # run inside the tree: `python -c` puts the working folder first on sys.path
        out = subprocess.run([sys.executable, "-c", CHILD, name, str(d)], env=env, cwd=tree,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", action="append", default=[], help="other source trees to time")
    ap.add_argument("--dims", default="3,8,16,31,32")
    ap.add_argument("--kernels", default="yukawa,newton,plummer,gaussian")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    trees = [ROOT] + [Path(t).resolve() for t in args.tree]
    dims = [int(x) for x in args.dims.split(",")]
    print(f"{'tree':<28} {'kernel':<9} {'d':>3} {'build s':>9} {'first call s':>13} "
          f"{'2nd build s':>12}")
    for name in args.kernels.split(","):
        for d in dims:
            for tree in trees:
                m = measure(tree, name, d, args.timeout)
                label = "this tree" if tree == ROOT else str(tree)[-28:]
                if "error" in m:
                    print(f"{label:<28} {name:<9} {d:>3} {m['error']}")
                else:
                    print(f"{label:<28} {name:<9} {d:>3} {m['build']:>9.3f} "
                          f"{m['first_call']:>13.3f} {m['second_build']:>12.4f}", flush=True)


if __name__ == "__main__":
    main()
