"""Reference outputs of Gemma 3 270M from Hugging Face transformers on CPU torch.

The independent reference the JAX model of `infograv.lm` (`load_language_model("gemma3-270m")`)
is checked against. transformers reads the same GGUF file with its own code (dequantisation
with the `gguf` package, its own tokenizer conversion, the Gemma norm weights stored as
`1 + w` turned back into `w`) and runs `Gemma3ForCausalLM` in float32 with its own
configuration defaults for what the file does not state (the local/global layer pattern, the
local RoPE base, `query_pre_attn_scalar`); the script prints that configuration.

Recorded per prompt: the token ids transformers feeds the model (with its BOS), the 20 most
likely next tokens with their natural-log probabilities (log-softmax in float64 of the float32
logits), and 16 greedy new ids. Output: `tests/data/gemma3_reference.json`, checked by
`tests/test_lm_gemma3.py` (skipped when the model is not cached). This script does not import
infograv, except with `--compare`:

    .venv/bin/pip install torch==2.13.0 transformers        # the `bench` extra
    infograv fetch gemma3-270m
    .venv/bin/python benchmarks/reference_gemma3_torch.py                 # writes the JSON
    .venv/bin/python benchmarks/reference_gemma3_torch.py --compare       # JAX vs reference

`--gguf FILE` uses another copy of the file (default: infograv's cache,
`$INFOGRAV_CACHE` or `~/.cache/infograv`, under `gemma3-270m/`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests" / "data" / "gemma3_reference.json"
FILE = "gemma-3-270m-q4_k_m.gguf"
N_GREEDY = 16
PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "Once upon a time, there was a little",
    "In 1969, 3 astronauts flew 384400 km to the Moon; naïve café résumé",
    "def fibonacci(n):\n    return",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "Every morning the baker opens the small shop on the corner of the street.  She sells fresh "
    "bread,\n\nwarm rolls and a few kinds of cake.",
    # longer than the 512-token sliding window: local and global layers differ here
    "Count with me: " + ", ".join(str(i) for i in range(1, 260)) + ", and then",
]


def _default_gguf() -> Path:
    root = Path(os.environ.get("INFOGRAV_CACHE") or Path.home() / ".cache" / "infograv")
    return root.expanduser() / "gemma3-270m" / FILE


def reference(path: Path, out: Path) -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    model.eval()
    cfg = model.config
    shown = {k: getattr(cfg, k, None) for k in (
        "model_type", "num_hidden_layers", "hidden_size", "head_dim", "num_attention_heads",
        "num_key_value_heads", "intermediate_size", "sliding_window", "layer_types",
        "rope_theta", "rope_local_base_freq", "rope_parameters", "query_pre_attn_scalar",
        "hidden_activation", "rms_norm_eps", "final_logit_softcapping",
        "attn_logit_softcapping", "tie_word_embeddings")}
    print(json.dumps(shown, indent=1, default=str))
    items = []
    for text in PROMPTS:
        ids = tok(text)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0, -1].double()
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=N_GREEDY,
                                 do_sample=False, top_p=None, top_k=None)
        lp = torch.log_softmax(logits, -1).numpy()
        top = np.argsort(-lp)[:20]
        items.append({"text": text, "token_ids": [int(i) for i in ids],
                      "top_ids": [int(i) for i in top],
                      "top_logp": [float(lp[i]) for i in top],
                      "greedy_ids": [int(i) for i in gen[0, len(ids):]]})
        print(f"{len(ids):4d} tokens  {text[:40]!r:44s} -> {tok.decode(items[-1]['greedy_ids'])!r}")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    data = {
        "description": "Gemma 3 270M (GGUF Q4_K_M) through transformers' GGUF loader and "
                       "Gemma3ForCausalLM on CPU torch, float32 "
                       "(benchmarks/reference_gemma3_torch.py)",
        "gguf_sha256": sha,
        "config": {k: v for k, v in shown.items() if isinstance(v, (int, float, str, list))},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": sys.version.split()[0]},
        "n_greedy": N_GREEDY,
        "items": items,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp_out, out)
    print(f"wrote {out}: {len(items)} prompts, versions {data['versions']}")


def compare(path: Path, out: Path) -> None:
    import numpy as np

    from infograv import lm

    ref = json.loads(out.read_text(encoding="utf-8"))
    model = lm.load_language_model("gemma3-270m", path)
    print(f"{'prompt':40s} {'ids':>4s} {'max|dlogp| top20':>17s} {'top1':>5s} {'greedy':>7s}")
    for it in ref["items"]:
        ids = model.encode(it["text"])
        logp, _ = model.next_token_logprobs_ids([ids])
        got = np.asarray(logp[0], dtype=np.float64)[it["top_ids"]]
        diff = np.abs(got - np.asarray(it["top_logp"])).max()
        g = model.sample(it["text"], ref["n_greedy"], temperature=0, stop=False)[0]
        same = sum(a == b for a, b in zip(g.token_ids, it["greedy_ids"], strict=True))
        print(f"{it['text'][:40]!r:40s} {ids == it['token_ids']!s:>4s} {diff:17.2e} "
              f"{int(np.argmax(np.asarray(logp[0]))) == it['top_ids'][0]!s:>5s} "
              f"{same:3d}/{len(it['greedy_ids'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", type=Path, default=None, help="the GGUF file (default: the cache)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"the JSON (default: {OUT})")
    ap.add_argument("--compare", action="store_true", help="compare infograv's JAX model")
    args = ap.parse_args()
    path = args.gguf or _default_gguf()
    if not path.is_file():
        sys.exit(f"{path} not found: run `infograv fetch gemma3-270m` or give --gguf FILE")
    (compare if args.compare else reference)(path, args.out)


if __name__ == "__main__":
    main()
