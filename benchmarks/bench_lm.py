"""SmolLM2-135M forward throughput: infograv's JAX forward pass against a plain NumPy forward.

Not a test. Compile time and run time are measured separately; run time is the median of
`--repeats` calls after the first (compiling) call, with `block_until_ready`. The NumPy forward
below is a straightforward float32 implementation of the same network (the reference a reader
would write first), checked to agree with JAX before timing.

    .venv/bin/python benchmarks/bench_lm.py                    # table to stdout
    .venv/bin/python benchmarks/bench_lm.py --out bench.json   # and the numbers as JSON

`--threads N` (default 1) limits both sides to the same number of threads: OpenBLAS for NumPy,
XLA's CPU thread pool for JAX. On a shared machine one thread gives the steadiest numbers;
OpenBLAS with more threads than free cores slows down by large factors.

Needs the artifact (`infograv fetch smollm2`). Results for this machine: docs/lm/benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def _threads_from_argv(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


# thread limits must be set before NumPy and JAX are imported
_THREADS = _threads_from_argv(sys.argv)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_THREADS)
if _THREADS == 1:
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
        "intra_op_parallelism_threads=1"
    ).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from infograv import lm  # noqa: E402
from infograv._io import write_json  # noqa: E402


def numpy_forward(w: dict[str, np.ndarray], cfg: lm.LlamaConfig, ids: np.ndarray) -> np.ndarray:
    """Final hidden states `(B, T, d)` of a llama model, float32 NumPy, full causal attention.

    Written as one would for speed in NumPy: 2-D matrix products against weights transposed
    once to `(in, out)` (see `numpy_weights`), batched `matmul` for attention.
    """
    b, t = ids.shape
    hd, nq, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    x = w["embedding"][ids].reshape(b * t, cfg.d_model)
    inv = cfg.rope_base ** (-np.arange(hd // 2, dtype=np.float32) * 2 / hd)
    ang = np.arange(t, dtype=np.float32)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[None, None, :, :], np.sin(ang)[None, None, :, :]

    def rms(v, g):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + cfg.norm_eps) * g

    def heads(v, n):  # (B*T, n*hd) -> (B, n, T, hd)
        return v.reshape(b, t, n, hd).transpose(0, 2, 1, 3)

    def rope(v):
        v0, v1 = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2] = v0 * cos - v1 * sin
        out[..., 1::2] = v0 * sin + v1 * cos
        return out

    causal = np.triu(np.full((t, t), -np.inf, dtype=np.float32), 1)
    rep = nq // nkv
    scale = np.float32(1 / np.sqrt(hd))
    for i in range(cfg.n_layers):
        a = rms(x, w["attn_norm"][i])
        q = rope(heads(a @ w["wq"][i], nq))
        k = np.repeat(rope(heads(a @ w["wk"][i], nkv)), rep, axis=1)
        v = np.repeat(heads(a @ w["wv"][i], nkv), rep, axis=1)
        s = (q @ k.transpose(0, 1, 3, 2)) * scale + causal
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(0, 2, 1, 3).reshape(b * t, nq * hd)
        x = x + o @ w["wo"][i]
        f = rms(x, w["ffn_norm"][i])
        g = f @ w["w_gate"][i]
        x = x + ((g / (1 + np.exp(-g))) * (f @ w["w_up"][i])) @ w["w_down"][i]
    return rms(x, w["final_norm"]).reshape(b, t, cfg.d_model)


def numpy_weights(weights: lm.LlamaWeights) -> dict[str, np.ndarray]:
    """The weights as NumPy float32, matrices transposed once to `(in, out)`, contiguous."""
    out = {"embedding": np.asarray(weights.embedding), "final_norm": np.asarray(weights.final_norm)}
    for f in ("attn_norm", "ffn_norm"):
        out[f] = np.asarray(getattr(weights.layers, f))
    for f in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"):
        out[f] = np.ascontiguousarray(np.asarray(getattr(weights.layers, f)).transpose(0, 2, 1))
    return out


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
    ap.add_argument("--threads", type=int, default=1, help="threads for NumPy and JAX")
    args = ap.parse_args()

    model = lm.load_language_model("smollm2")
    cfg, W = model.config, model.weights
    npw = numpy_weights(W)
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
