"""Gemma 3 270M, the real model, against transformers' outputs recorded in tests/data/.

Needs the artifact (`infograv fetch gemma3-270m`, about 250 MB, Gemma Terms of Use) and skips
with the reason when it is absent. The reference (`benchmarks/reference_gemma3_torch.py`):
Hugging Face transformers reads the same GGUF with its own code and runs `Gemma3ForCausalLM` in
float32 torch; recorded are the ids it feeds the model, the 20 most likely next tokens with
their log-probabilities and 16 greedy new ids, for eight prompts, one of them (1,194 tokens)
longer than the 512-token sliding window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infograv import lm

pytestmark = pytest.mark.artifact

REF = json.loads((Path(__file__).parent / "data" / "gemma3_reference.json").read_text())


@pytest.fixture(scope="module")
def model() -> lm.LanguageModel:
    try:
        lm.locate("gemma3-270m")
    except lm.ArtifactNotFoundError as e:
        pytest.skip(f"Gemma 3 270M artifact absent: {e}")
    return lm.load_language_model("gemma3-270m")


def test_config_read_from_metadata(model):
    c = model.config
    assert REF["gguf_sha256"] == lm.ARTIFACTS["gemma3-270m"].files[
        "gemma-3-270m-q4_k_m.gguf"].sha256
    assert (c.arch, c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_size, c.d_ff) == (
        "gemma3", 18, 640, 4, 1, 256, 2048)
    assert c.vocab_size == 262144 and c.sliding_window == 512 and c.add_bos and c.bos_id == 2
    assert [i for i, local in enumerate(c.local_layers) if not local] == [5, 11, 17]
    assert REF["config"]["layer_types"] == [
        "sliding_attention" if x else "full_attention" for x in c.local_layers]
    assert (c.rope_base, c.rope_base_local) == (1e6, 1e4)


def test_token_ids_match_transformers(model):
    for it in REF["items"]:
        assert model.encode(it["text"]) == it["token_ids"], it["text"][:40]
    for text in (REF["items"][3]["text"], "naïve café, 東京, emoji 🙂\n\ttabs  two"):
        assert model.decode(model.encode(text)[1:]) == text


def test_next_token_logprobs_match_transformers(model):
    # the short prompts in one batch; float32 through 18 layers in two implementations:
    # measured max |d log p| <= 2.1e-5 over the top 20
    items = [it for it in REF["items"] if len(it["token_ids"]) <= 64]
    logp, _ = model.next_token_logprobs_ids([it["token_ids"] for it in items])
    for row, it in zip(np.asarray(logp, dtype=np.float64), items, strict=True):
        assert int(np.argmax(row)) == it["top_ids"][0], it["text"][:40]
        np.testing.assert_allclose(row[it["top_ids"]], it["top_logp"], atol=2e-4)


def test_beyond_the_sliding_window(model):
    # 1,194 tokens: the local layers see 512 of them, the global ones all
    (it,) = [it for it in REF["items"] if len(it["token_ids"]) > 512]
    logp, _ = model.next_token_logprobs_ids([it["token_ids"]])
    row = np.asarray(logp[0], dtype=np.float64)
    assert int(np.argmax(row)) == it["top_ids"][0]
    # measured max |d log p| 4.8e-5 over the top 20
    np.testing.assert_allclose(row[it["top_ids"]], it["top_logp"], atol=3e-4)


def test_greedy_generation_matches_transformers(model):
    items = [it for it in REF["items"] if len(it["token_ids"]) <= 64]
    gens = model.sample_many([it["text"] for it in items], REF["n_greedy"], temperature=0,
                             stop=False)
    for g, it in zip(gens, items, strict=True):
        assert g.prompt_ids == it["token_ids"]
        assert g.token_ids == it["greedy_ids"], it["text"][:40]
