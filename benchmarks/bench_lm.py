"""SmolLM2-135M on CPU: infograv's JAX forward pass and generation against HF transformers.

Not a test. Both sides run the SAME float32 weights: transformers' `LlamaForCausalLM` is built
from SmolLM2's configuration and given infograv's dequantised tensors (q/k rows permuted back
from the GGUF's adjacent-pair rotary layout to the half-split layout transformers uses), in
float32 torch on the CPU. Every row checks that both sides agree (largest log-probability
difference at the last position for prefill; identical greedy ids for generation) and prints
the ratio infograv ÷ transformers in throughput (> 1: infograv is faster).

Rows:
- prefill `B × T` (1×32, 1×128, 8×128, 1×512): one forward pass over `B` prompts of `T` random
  tokens and the next-token log-probabilities at the last position (infograv: what
  `next_token_logprobs` runs; transformers: `model(ids, logits_to_keep=1)` and a log-softmax);
- greedy generation of 64 new tokens, batch 1 and 8 (the same prompt `B` times; infograv:
  `model.sample(..., num_samples=B, temperature=0)`; transformers: `generate(do_sample=False)`
  with the key/value cache);
- greedy generation of 64 new tokens for 8 DIFFERENT prompts, left-padded with attention masks
  (infograv: `model.sample_many`; transformers: `generate` with an attention mask); the ids are
  also checked against each prompt generated alone;
- time to first result: a fresh Python process that loads the cached model and prints the most
  likely next token of one prompt (infograv: `load_language_model("smollm2")`; transformers:
  `from_pretrained(folder, gguf_file=...)`, its own GGUF reader and tokenizer).

Timing: each row runs the two sides alternately (`--repeats` times after one warm-up call each)
and reports medians; infograv's compile time is the warm-up call minus the median, reported
separately. `--threads N` sets XLA's CPU thread pool (one thread: Eigen's pool off) and
`torch.set_num_threads(N)` before anything runs.

    .venv/bin/pip install torch==2.13.0 transformers accelerate     # the bench extra
    .venv/bin/python benchmarks/bench_lm.py --threads 1 --out bench1.json
    .venv/bin/python benchmarks/bench_lm.py --threads 2 --out bench2.json
    .venv/bin/python benchmarks/bench_lm.py --dtype bfloat16      # reduced precision, accuracy cost

Needs the artifact (`infograv fetch smollm2`). Results for this machine: docs/lm/benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time


def _threads_from_argv(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


# thread limits must be set before NumPy, JAX and torch are imported
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
from infograv.lm._language_model import _last_hidden  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "Once upon a time, there was a little",
    "The opposite of hot is",
    "def fibonacci(n):\n    return",
    "In 1969, three astronauts flew to the Moon and",
    "The best way to learn a new language is",
    "Photosynthesis is the process by which plants",
]

_FIRST_INFOGRAV = """
from infograv import lm
m = lm.load_language_model("smollm2")
logp, _ = m.next_token_logprobs(["The capital of France is"])
print(repr(m.decode([int(logp[0].argmax())])))
"""

_FIRST_TRANSFORMERS = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads({threads})
folder, name = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
ids = tok("The capital of France is", return_tensors="pt")
with torch.no_grad():
    z = model(**ids).logits[0, -1]
print(repr(tok.decode([int(z.argmax())])))
"""


def hf_model(model: lm.LanguageModel, torch_dtype):  # noqa: ANN001, ANN201
    """transformers' LlamaForCausalLM with infograv's weights (same float32 values)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.config
    cfg = LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff,
        num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads, max_position_embeddings=c.context_length,
        rms_norm_eps=c.norm_eps, rope_theta=c.rope_base, tie_word_embeddings=True,
        bos_token_id=c.bos_id, eos_token_id=c.eos_id, pad_token_id=c.pad_id,
        attention_bias=False, mlp_bias=False,
    )
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": c.rope_base}
    hf = LlamaForCausalLM(cfg).eval()
    w = model.weights
    h = c.head_size

    def unpermute(m: np.ndarray, heads: int) -> np.ndarray:
        # GGUF rows of a head: pairs (2i, 2i+1) adjacent; transformers: (i, i + h/2)
        return m.reshape(heads, h // 2, 2, -1).swapaxes(1, 2).reshape(heads * h, -1)

    sd = {"model.embed_tokens.weight": np.asarray(w.embedding),
          "model.norm.weight": np.asarray(w.final_norm.w),
          "lm_head.weight": np.asarray(w.embedding)}
    for i, b in enumerate(w.blocks):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = np.asarray(b.attn_norm.w)
        sd[p + "post_attention_layernorm.weight"] = np.asarray(b.ffn_norm.w)
        # infograv keeps (in, out) matrices; transformers (out, in)
        sd[p + "self_attn.q_proj.weight"] = unpermute(np.asarray(b.wq).T, c.n_heads)
        sd[p + "self_attn.k_proj.weight"] = unpermute(np.asarray(b.wk).T, c.n_kv_heads)
        sd[p + "self_attn.v_proj.weight"] = np.asarray(b.wv).T
        sd[p + "self_attn.o_proj.weight"] = np.asarray(b.wo).T
        sd[p + "mlp.gate_proj.weight"] = np.asarray(b.w_gate).T
        sd[p + "mlp.up_proj.weight"] = np.asarray(b.w_up).T
        sd[p + "mlp.down_proj.weight"] = np.asarray(b.w_down).T
    missing, unexpected = hf.load_state_dict(
        {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}, strict=False
    )
    if unexpected or [m for m in missing if "rotary" not in m]:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    # no stop token: both sides produce all new tokens (`min_new_tokens` would instead
    # suppress the end-of-text logit, changing the greedy choice)
    hf.generation_config.eos_token_id = None
    return hf.to(torch_dtype)


def _interleaved(fa, fb, repeats: int) -> tuple[float, float, float, float]:  # noqa: ANN001
    """Warm-up call of each, then `repeats` alternating calls; (first_a, med_a, first_b, med_b)."""
    t0 = time.perf_counter()
    fa()
    first_a = time.perf_counter() - t0
    t0 = time.perf_counter()
    fb()
    first_b = time.perf_counter() - t0
    ra, rb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fa()
        ra.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fb()
        rb.append(time.perf_counter() - t0)
    return first_a, statistics.median(ra), first_b, statistics.median(rb)


def _divergence(model: lm.LanguageModel, prompts: list[list[int]], a: list[list[int]],
                b: list[list[int]]) -> str:
    """Where two greedy runs first differ, and by how much infograv's log-probabilities of
    the two chosen tokens differ there (a near tie that float32 rounding can flip)."""
    notes = []
    for p, x, y in zip(prompts, a, b, strict=True):
        k = next((i for i, (u, v) in enumerate(zip(x, y, strict=True)) if u != v), None)
        if k is None:
            continue
        logp, _ = model.next_token_logprobs_ids([p + x[:k]])
        gap = float(logp[0, x[k]] - logp[0, y[k]])
        notes.append(f"step {k}: gap {gap:.1e}")
    return "; ".join(notes)


def _first_result(threads: int, gguf: str) -> tuple[float, float, str, str]:
    env = dict(os.environ)
    t0 = time.perf_counter()
    a = subprocess.run([sys.executable, "-c", _FIRST_INFOGRAV], capture_output=True, text=True,
                       env=env, check=True)
    t_inf = time.perf_counter() - t0
    folder, name = os.path.split(gguf)
    t0 = time.perf_counter()
    b = subprocess.run(
        [sys.executable, "-c", _FIRST_TRANSFORMERS.format(threads=threads), folder, name],
        capture_output=True, text=True, env=env, check=True,
    )
    t_hf = time.perf_counter() - t0
    return t_inf, t_hf, a.stdout.strip(), b.stdout.strip()


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="1x32,1x128,8x128,1x512",
                    help="prefill rows, comma-separated BATCHxLENGTH")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per side and row")
    ap.add_argument("--new-tokens", type=int, default=64, help="generation length")
    ap.add_argument("--threads", type=int, default=1, help="threads for JAX and torch")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="infograv's weights and arithmetic (transformers stays float32)")
    ap.add_argument("--skip-first", action="store_true", help="skip the fresh-process row")
    ap.add_argument("--out", help="write the numbers as JSON here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = lm.load_language_model("smollm2", dtype=getattr(jnp, args.dtype))
    ref32 = model if args.dtype == "float32" else lm.load_language_model("smollm2")
    hf = hf_model(ref32, torch.float32)
    cfg, W = model.config, model.weights
    rng = np.random.default_rng(0)
    rows: list[dict] = []

    def report(row: dict) -> None:
        rows.append(row)
        print(f"{row['work']:34s} infograv {row['infograv_s'] * 1e3:9.1f} ms   transformers "
              f"{row['transformers_s'] * 1e3:9.1f} ms   ratio {row['ratio']:5.2f}x   compile "
              f"{row['compile_s']:5.1f} s   {row['check']}", flush=True)

    print(f"threads {args.threads}, dtype {args.dtype}, repeats {args.repeats}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    for shape in args.shapes.split(","):
        b, t = (int(s) for s in shape.split("x"))
        ids = rng.integers(3, cfg.vocab_size, size=(b, t)).astype(np.int32)
        jids, lengths = jnp.asarray(ids), jnp.full((b,), t, dtype=jnp.int32)
        tids = torch.from_numpy(ids.astype(np.int64))

        def run_jax(jids=jids, lengths=lengths):  # noqa: ANN001, ANN202
            return _last_hidden(W, jids, lengths)[0].block_until_ready()

        def run_hf(tids=tids):  # noqa: ANN001, ANN202
            with torch.no_grad():
                return torch.log_softmax(hf(tids, logits_to_keep=1).logits[:, -1].double(), -1)

        fj, mj, _, mh = _interleaved(run_jax, run_hf, args.repeats)
        diff = float(np.abs(np.asarray(run_jax(), dtype=np.float64) - run_hf().numpy()).max())
        report({"work": f"prefill {b}x{t} ({b * t / mj:.0f} tok/s)", "infograv_s": mj,
                "transformers_s": mh, "ratio": mh / mj, "compile_s": fj - mj,
                "check": f"max|dlogp| {diff:.1e}", "tokens_per_s": b * t / mj})

    n = args.new_tokens
    prompt = PROMPTS[0]
    pids = model.encode(prompt)
    for b in (1, 8):
        out: dict = {}

        def gen_jax(b=b, out=out):  # noqa: ANN001, ANN202
            gs = model.sample(prompt, n, num_samples=b, temperature=0, stop=False)
            out["jax"] = [g.token_ids for g in gs]

        def gen_hf(b=b, out=out):  # noqa: ANN001, ANN202
            x = torch.tensor([pids] * b)
            with torch.no_grad():
                y = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n,
                                do_sample=False, top_p=None, top_k=None,
                                pad_token_id=cfg.pad_id)
            out["hf"] = y[:, len(pids):].tolist()

        fj, mj, _, mh = _interleaved(gen_jax, gen_hf, args.repeats)
        same = out["jax"] == out["hf"]
        why = "" if same else " (" + _divergence(model, [pids], out["jax"][:1],
                                                  out["hf"][:1]) + ")"
        report({"work": f"greedy {n} new, batch {b} ({n * b / mj:.0f} tok/s)",
                "infograv_s": mj, "transformers_s": mh, "ratio": mh / mj,
                "compile_s": fj - mj, "check": f"identical ids {same}{why}",
                "tokens_per_s": n * b / mj})

    rows_ids = [model.encode(p) for p in PROMPTS]
    width = max(len(r) for r in rows_ids)
    out2: dict = {}

    def many_jax() -> None:
        out2["jax"] = [g.token_ids for g in
                       model.sample_many(PROMPTS, n, temperature=0, stop=False)]

    def many_hf() -> None:
        x = torch.tensor([[cfg.pad_id] * (width - len(r)) + r for r in rows_ids])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows_ids])
        with torch.no_grad():
            y = hf.generate(x, attention_mask=mask, max_new_tokens=n,
                            do_sample=False, top_p=None, top_k=None, pad_token_id=cfg.pad_id)
        out2["hf"] = y[:, width:].tolist()

    fj, mj, _, mh = _interleaved(many_jax, many_hf, args.repeats)
    alone = [model.generate(p, n, temperature=0, stop=False).token_ids for p in PROMPTS]
    agree = sum(a == b for a, b in zip(out2["jax"], out2["hf"], strict=True))
    why = _divergence(model, rows_ids, out2["jax"], out2["hf"])
    report({"work": f"greedy {n} new, 8 different prompts", "infograv_s": mj,
            "transformers_s": mh, "ratio": mh / mj, "compile_s": fj - mj,
            "check": f"= one at a time {out2['jax'] == alone}; = transformers {agree}/8 {why}",
            "tokens_per_s": 8 * n / mj})

    if not args.skip_first:
        t_inf, t_hf, a, b2 = _first_result(args.threads, str(model.path))
        rows.append({"work": "time to first result (fresh process)", "infograv_s": t_inf,
                     "transformers_s": t_hf, "ratio": t_hf / t_inf, "compile_s": 0.0,
                     "check": f"{a} / {b2}"})
        print(f"{'time to first result':34s} infograv {t_inf:9.1f} s    transformers "
              f"{t_hf:9.1f} s    ratio {t_hf / t_inf:5.2f}x   {a} / {b2}", flush=True)

    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.out:
        import transformers

        write_json(args.out, {
            "rows": rows, "settings": vars(args),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "jax": jax.__version__, "numpy": np.__version__,
                        "torch": torch.__version__, "transformers": transformers.__version__,
                        "load_average": os.getloadavg()},
        })


if __name__ == "__main__":
    main()
