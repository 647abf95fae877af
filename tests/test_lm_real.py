"""SmolLM2-135M-Instruct, the real model: known completions, perplexity, batching, sampling.

Every test here needs the artifact (`infograv fetch smollm2`) and skips with the reason when it
is absent. One model is loaded for the module and the prompts share one length bucket, so the
whole file compiles a handful of functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from infograv import lm

pytestmark = pytest.mark.artifact

PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "Once upon a time, there was a little",
    "The opposite of hot is",
]
# A plain English passage written for this test (not a quotation, so not memorised).
PASSAGE = (
    "Every morning the baker opens the small shop on the corner of the street. She sells fresh "
    "bread, warm rolls and a few kinds of cake. Most of her customers live nearby and come in "
    "before work. In the afternoon the shop is quiet, and she uses the time to clean the ovens "
    "and to plan the orders for the next day."
)


@pytest.fixture(scope="module")
def model() -> lm.LanguageModel:
    try:
        lm.locate("smollm2")
    except lm.ArtifactNotFoundError as e:
        pytest.skip(f"SmolLM2 artifact absent: {e}")
    return lm.load_language_model("smollm2")


def test_shapes_and_facts(model):
    c = model.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.vocab_size) == (30, 576, 9, 3,
                                                                               49152)
    assert c.rope_base == 1e5 and c.context_length == 8192
    assert model.embedding.shape == (49152, 576) and model.embedding.dtype == np.float32


def test_tokenizer_properties(model):
    assert [model.decode([i]) for i in model.encode("year 2025")] == ["year", " ", "2", "0",
                                                                       "2", "5"]
    assert model.encode("<|im_start|>user<|im_end|>")[0] == 1
    assert model.encode("<|im_start|>user<|im_end|>")[-1] == 2
    assert len(model.encode(" Paris")) == 1
    for t in PROMPTS + [PASSAGE, "naïve café, 東京, emoji 🙂\n\ttabs"]:
        assert model.decode(model.encode(t)) == t


def test_paris(model):
    logp, h = model.next_token_logprobs(["The capital of France is"])
    paris = model.encode(" Paris")[0]
    assert int(np.argmax(logp[0])) == paris
    # formalism §8 records p ~ 0.77 for this prompt without the chat template; Q4_1 weights
    # dequantised exactly, float32 arithmetic: well within 0.02
    assert float(np.exp(logp[0, paris])) == pytest.approx(0.77, abs=0.02)
    np.testing.assert_allclose(
        np.asarray(jax.nn.log_softmax(h @ model.embedding.T)), np.asarray(logp), atol=1e-4,
        rtol=1e-5,
    )  # float32 logits reach ~30 in magnitude: ~1e-6 relative rounding


def test_perplexity_of_plain_english(model):
    lp = np.asarray(model.sequence_logprobs(PASSAGE))
    ppl = float(np.exp(-lp.mean()))
    # measured 23.0 (docs/lm/index.md). The bound 40 separates it from a subtly wrong model:
    # RoPE on half-split instead of adjacent pairs gives 80 on this passage while " Paris" stays
    # on top; grosser bugs give hundreds or more (uniform would be 49152)
    assert 3.0 < ppl < 40.0, ppl
    assert lp.shape == (len(model.encode(PASSAGE)) - 1,)


def test_batch_equals_one_by_one(model):
    logp, h = model.next_token_logprobs(PROMPTS)
    for i, p in enumerate(PROMPTS):
        lp1, h1 = model.next_token_logprobs([p])
        # float32 through 30 layers: batch size changes only the BLAS blocking
        np.testing.assert_allclose(np.asarray(lp1[0]), np.asarray(logp[i]), atol=1e-4)
        np.testing.assert_allclose(np.asarray(h1[0]), np.asarray(h[i]), atol=1e-4)


def test_hidden_states_last_layer_is_final_hidden(model):
    hs = model.hidden_states(PROMPTS[1])
    n = len(model.encode(PROMPTS[1]))
    assert hs.shape == (31, n, 576)
    _, h = model.next_token_logprobs([PROMPTS[1]])
    np.testing.assert_allclose(np.asarray(hs[-1, -1]), np.asarray(h[0]), atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(hs[0]), np.asarray(model.embedding[np.asarray(model.encode(PROMPTS[1]))]),
        atol=0,
    )


def test_generation_deterministic_and_cache_consistent(model):
    a = model.sample(PROMPTS[2], 8, num_samples=2, temperature=0.8, top_p=0.9, seed=3,
                     stop=False)
    b = model.sample(PROMPTS[2], 8, num_samples=2, temperature=0.8, top_p=0.9, seed=3,
                     stop=False)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    g = model.generate("The capital of France is", 8, temperature=0, stop=False)
    assert g.token_ids[0] == model.encode(" Paris")[0]
    ids = g.prompt_ids + g.token_ids[:4]
    lp, h = model.next_token_logprobs_ids([ids])
    assert int(np.argmax(lp[0])) == g.token_ids[4]
    # the key/value-cached step against the full forward pass, float32
    np.testing.assert_allclose(g.hidden[4], np.asarray(h[0]), atol=2e-3)


def test_matches_transformers_gguf_reference(model):
    # Recorded by benchmarks/reference_minilm_torch.py --model smollm2: Hugging Face transformers
    # reads the same GGUF with its own code (dequantisation, tokenizer conversion, q/k
    # un-permuted to half-split RoPE) and runs LlamaForCausalLM in float32 torch.
    ref = json.loads((Path(__file__).parent / "data" / "smollm2_reference.json").read_text())
    items = ref["items"]
    for it in items:
        assert model.encode(it["text"]) == it["token_ids"], it["text"]
    logp, _ = model.next_token_logprobs_ids([it["token_ids"] for it in items])
    for row, it in zip(np.asarray(logp, dtype=np.float64), items, strict=True):
        assert int(np.argmax(row)) == it["top_ids"][0]
        # float32 through 30 layers in two implementations: measured <= 2.4e-5
        np.testing.assert_allclose(row[it["top_ids"]], it["top_logp"], atol=1e-4)
