"""SmolLM2-135M forward throughput: infograv's JAX forward pass against a plain NumPy forward.

Not a test. Compile time and run time are measured separately; run time is the median of
`--repeats` calls after the first (compiling) call, with `block_until_ready`. The NumPy forward
below is a straightforward float32 implementation of the same network (the reference a reader
would write first), checked to agree with JAX before timing.

    .venv/bin/python benchmarks/bench_lm.py                    # table to stdout
    .venv/bin/python benchmarks/bench_lm.py --out bench.json   # and the numbers as JSON

Needs the artifact (`infograv fetch smollm2`). Results for this machine: docs/lm/benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from infograv import lm
from infograv._io import write_json


def numpy_forward(w: dict[str, np.ndarray], cfg: lm.LlamaConfig, ids: np.ndarray) -> np.ndarray:
    """Final hidden states `(B, T, d)` of a llama model, float32 NumPy, full causal attention."""
    b, t = ids.shape
    hd, nq, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    x = w["embedding"][ids]
    inv = cfg.rope_base ** (-np.arange(hd // 2, dtype=np.float32) * 2 / hd)
    ang = np.arange(t, dtype=np.float32)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]

    def rms(v, g):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + cfg.norm_eps) * g

    def rope(v):
        v0, v1 = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2] = v0 * cos - v1 * sin
        out[..., 1::2] = v0 * sin + v1 * cos
        return out

    causal = np.triu(np.full((t, t), -np.inf, dtype=np.float32), 1)
    for i in range(cfg.n_layers):
        a = rms(x, w["attn_norm"][i])
        q = rope((a @ w["wq"][i].T).reshape(b, t, nq, hd))
        k = rope((a @ w["wk"][i].T).reshape(b, t, nkv, hd))
        v = (a @ w["wv"][i].T).reshape(b, t, nkv, hd)
        rep = nq // nkv
        k, v = np.repeat(k, rep, axis=2), np.repeat(v, rep, axis=2)
        s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.float32(np.sqrt(hd)) + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("bhqk,bkhd->bqhd", s, v).reshape(b, t, nq * hd)
        x = x + o @ w["wo"][i].T
        f = rms(x, w["ffn_norm"][i])
        g = f @ w["w_gate"][i].T
        x = x + ((g / (1 + np.exp(-g))) * (f @ w["w_up"][i].T)) @ w["w_down"][i].T
    return rms(x, w["final_norm"])


def _time(fn, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return first, statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="1x32,1x128,4x128,1x512",
                    help="comma-separated BATCHxLENGTH")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--numpy-repeats", type=int, default=1)
    ap.add_argument("--samples", type=int, default=8, help="parallel samples in the last run")
    ap.add_argument("--new-tokens", type=int, default=32, help="generation benchmark length")
    ap.add_argument("--out", help="write the numbers as JSON here")
    args = ap.parse_args()

    model = lm.load_language_model("smollm2")
    cfg, W = model.config, model.weights
    npw = {"embedding": np.asarray(W.embedding), "final_norm": np.asarray(W.final_norm)}
    for f in ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down"):
        npw[f] = np.asarray(getattr(W.layers, f))
    fwd = jax.jit(lm.llama_forward)
    rng = np.random.default_rng(0)
    rows = []
    for shape in args.shapes.split(","):
        b, t = (int(s) for s in shape.split("x"))
        ids = rng.integers(0, cfg.vocab_size, size=(b, t)).astype(np.int32)
        jids = jnp.asarray(ids)
        # first call (trace + compile + run) before anything else touches this shape
        first, run = _time(lambda jids=jids: fwd(W, jids)["hidden"].block_until_ready(),
                           args.repeats)
        got = np.asarray(fwd(W, jids)["hidden"])
        _, np_run = _time(lambda ids=ids: numpy_forward(npw, cfg, ids), args.numpy_repeats)
        err = float(np.abs(got - numpy_forward(npw, cfg, ids)).max())
        rows.append({
            "batch": b, "length": t, "jax_compile_s": first - run, "jax_run_s": run,
            "jax_tokens_per_s": b * t / run, "numpy_run_s": np_run,
            "numpy_tokens_per_s": b * t / np_run, "speedup": np_run / run,
            "max_abs_diff_hidden": err,
        })
        r = rows[-1]
        print(f"B={b:3d} T={t:4d}  JAX compile {r['jax_compile_s']:6.2f} s  run "
              f"{run * 1e3:8.1f} ms ({r['jax_tokens_per_s']:8.0f} tok/s)  NumPy "
              f"{np_run * 1e3:8.1f} ms ({r['numpy_tokens_per_s']:8.0f} tok/s)  "
              f"x{r['speedup']:.2f}  max|dh| {err:.1e}", flush=True)

    n = args.new_tokens
    prompt = "The capital of France is"
    t0 = time.perf_counter()
    model.generate(prompt, n, temperature=0, stop=False)
    gen_first = time.perf_counter() - t0
    _, gen_run = _time(lambda: model.generate(prompt, n, temperature=0, stop=False),
                       args.repeats)
    k = args.samples
    _, par_run = _time(
        lambda: model.sample(prompt, n, num_samples=k, temperature=1.0, seed=0, stop=False), 1
    )
    gen = {"new_tokens": n, "first_call_s": gen_first, "run_s": gen_run,
           "tokens_per_s": n / gen_run, "parallel_samples": k, "parallel_run_s": par_run,
           "parallel_tokens_per_s": n * k / par_run}
    print(f"generate {n} tokens (KV cache, greedy): first call {gen_first:.2f} s, then "
          f"{gen_run:.3f} s ({n / gen_run:.0f} tok/s); {k} samples in parallel: "
          f"{par_run:.3f} s ({n * k / par_run:.0f} tok/s)")
    if args.out:
        write_json(args.out, {
            "forward": rows, "generate": gen,
            "settings": vars(args),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "jax": jax.__version__, "numpy": np.__version__,
                        "device": str(jax.devices()[0])},
        })


if __name__ == "__main__":
    main()
