"""The llama forward pass, GGUF reader and sampler on a tiny synthetic GGUF written here.

No download: the file is a 2-layer llama with random weights (one tensor Q8_0, one Q4_1, the
rest F32) and a small byte-level BPE vocabulary. The reference forward pass below is plain NumPy
written independently of infograv (loops over heads, RoPE as complex multiplication, Q8_0 and
Q4_1 decoded from the raw block bytes), so agreement checks the JAX code, not a copy of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import equinox as eqx
import gguf
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from infograv import lm

N_LAYERS, D, HEADS, KV_HEADS, D_FF, CTX, BASE, EPS = 2, 32, 4, 2, 64, 64, 10000.0, 1e-5
HD = D // HEADS
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "i s", "Ġ is", "Ġ a", "a t"]


def _byte_alphabet() -> list[str]:
    # GPT-2's reversible byte -> printable character map (printable bytes map to themselves).
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _vocab() -> tuple[list[str], list[int]]:
    tokens = SPECIAL + _byte_alphabet()
    for m in MERGES:
        a, b = m.split(" ")
        tokens.append(a + b)
    types = [3] * len(SPECIAL) + [1] * (len(tokens) - len(SPECIAL))
    return tokens, types


def _dequant_q8_0(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    # block: float16 scale d, then 32 int8 q;  x = d * q
    blocks = raw.reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float64)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)
    return (d * q).reshape(shape)


def _dequant_q4_1(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    # block: float16 d, float16 m, 16 bytes; low nibbles are elements 0..15, high 16..31
    blocks = raw.reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float64)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float64)
    qs = blocks[:, 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64)
    return (d * q + m).reshape(shape)


def write_toy_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the toy model; return its weights as float64 (quantised ones as decoded here)."""
    rng = np.random.default_rng(seed)
    tokens, types = _vocab()
    v = len(tokens)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(N_LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(D)
    w.add_feed_forward_length(D_FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(BASE)
    w.add_layer_norm_rms_eps(EPS)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    ref: dict[str, np.ndarray] = {}

    def f32(name: str, shape: tuple[int, ...], scale: float, offset: float = 0.0) -> None:
        a = (offset + scale * rng.standard_normal(shape)).astype(np.float32)
        w.add_tensor(name, a)
        ref[name] = a.astype(np.float64)

    def quant(name: str, shape: tuple[int, int], qtype: gguf.GGMLQuantizationType) -> None:
        a = (0.3 * rng.standard_normal(shape)).astype(np.float32)
        raw = gguf.quants.quantize(a, qtype)
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        dec = _dequant_q8_0 if qtype == gguf.GGMLQuantizationType.Q8_0 else _dequant_q4_1
        ref[name] = dec(np.asarray(raw), shape)

    quant("token_embd.weight", (v, D), gguf.GGMLQuantizationType.Q8_0)
    for i in range(N_LAYERS):
        f32(f"blk.{i}.attn_norm.weight", (D,), 0.1, 1.0)
        f32(f"blk.{i}.attn_q.weight", (D, D), 0.4)
        f32(f"blk.{i}.attn_k.weight", (KV_HEADS * HD, D), 0.4)
        f32(f"blk.{i}.attn_v.weight", (KV_HEADS * HD, D), 0.3)
        f32(f"blk.{i}.attn_output.weight", (D, D), 0.2)
        f32(f"blk.{i}.ffn_norm.weight", (D,), 0.1, 1.0)
        f32(f"blk.{i}.ffn_gate.weight", (D_FF, D), 0.3)
        quant(f"blk.{i}.ffn_up.weight", (D_FF, D), gguf.GGMLQuantizationType.Q4_1)
        f32(f"blk.{i}.ffn_down.weight", (D, D_FF), 0.2)
    f32("output_norm.weight", (D,), 0.1, 1.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return ref


def numpy_forward(ref: dict[str, np.ndarray], ids: list[int]) -> dict[str, np.ndarray]:
    """Independent float64 reference: per-head loops, RoPE on adjacent pairs as complex numbers."""

    def rms(x: np.ndarray, wt: np.ndarray) -> np.ndarray:
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * wt

    def rope(x: np.ndarray) -> np.ndarray:  # x (L, HD); pair i -> complex x[2i] + 1j x[2i+1]
        z = x[:, 0::2] + 1j * x[:, 1::2]
        t = np.arange(x.shape[0])[:, None]
        theta = BASE ** (-np.arange(HD // 2) * 2.0 / HD)[None, :]
        z = z * np.exp(1j * t * theta)
        out = np.empty_like(x)
        out[:, 0::2], out[:, 1::2] = z.real, z.imag
        return out

    x = ref["token_embd.weight"][ids]
    n = len(ids)
    layers = [x.copy()]
    for i in range(N_LAYERS):
        p = f"blk.{i}."
        a = rms(x, ref[p + "attn_norm.weight"])
        q, k, v = a @ ref[p + "attn_q.weight"].T, a @ ref[p + "attn_k.weight"].T, a @ ref[
            p + "attn_v.weight"].T
        heads = []
        for h in range(HEADS):
            g = h // (HEADS // KV_HEADS)
            qh = rope(q[:, h * HD:(h + 1) * HD])
            kh = rope(k[:, g * HD:(g + 1) * HD])
            vh = v[:, g * HD:(g + 1) * HD]
            s = qh @ kh.T / math.sqrt(HD)
            s[np.triu_indices(n, 1)] = -np.inf
            s = np.exp(s - s.max(axis=1, keepdims=True))
            heads.append((s / s.sum(axis=1, keepdims=True)) @ vh)
        x = x + np.concatenate(heads, axis=1) @ ref[p + "attn_output.weight"].T
        f = rms(x, ref[p + "ffn_norm.weight"])
        gate, up = f @ ref[p + "ffn_gate.weight"].T, f @ ref[p + "ffn_up.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ ref[p + "ffn_down.weight"].T
        layers.append(x.copy())
    hidden = rms(x, ref["output_norm.weight"])
    logits = hidden @ ref["token_embd.weight"].T
    logp = logits - logits.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return {"hidden": hidden, "logp": logp, "layers": np.stack(layers[:-1] + [hidden])}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("toy") / "toy-llama.gguf"
    return path, write_toy_gguf(path)


@pytest.fixture(scope="module")
def model64(toy) -> lm.LanguageModel:
    return lm.load_language_model("smollm2", toy[0], dtype=jnp.float64, cache_weights=False)


@pytest.fixture(scope="module")
def model32(toy) -> lm.LanguageModel:
    return lm.load_language_model("smollm2", toy[0], dtype=jnp.float32, cache_weights=False)


FORWARD = jax.jit(lm.decoder_forward)
TEXTS = ["the cat is at the hat", "is a", "The capital of 12 cats is 345.", "x"]


def test_read_gguf_config_and_dequantisation(toy):
    path, ref = toy
    c = lm.read_gguf(path)
    assert (c.config.n_layers, c.config.d_model, c.config.n_heads, c.config.n_kv_heads) == (
        N_LAYERS, D, HEADS, KV_HEADS)
    assert c.config.d_ff == D_FF and c.config.context_length == CTX
    assert c.config.rope_base == BASE and c.config.vocab_size == len(_vocab()[0])
    assert 0 in c.config.stop_ids and 2 in c.config.stop_ids
    for name, want in ref.items():
        got = c.tensors[name]
        assert got.shape == want.shape, name
        # quantised tensors: the decode here is exact up to float32 rounding of d*q+m
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)


def test_tokenizer_bpe_digits_specials_roundtrip(model64):
    tok_strings, _ = _vocab()
    ids = model64.encode(" the cat")
    # merges Ġ+t -> Ġt, h+e -> he, Ġt+he -> Ġthe; "Ġcat": Ġ+c no merge, a+t -> at
    assert [tok_strings[i] for i in ids] == ["Ġthe", "Ġ", "c", "at"]
    # digits are split one by one, even after a space
    assert [model64.decode([i]) for i in model64.encode(" 12345")] == [" ", "1", "2", "3", "4",
                                                                          "5"]
    assert model64.encode("<|im_start|>is<|im_end|>") == [1, tok_strings.index("is"), 2]
    for t in TEXTS + ["héllo wörld ✓", "  two  spaces\n"]:
        assert model64.decode(model64.encode(t)) == t


@pytest.mark.parametrize("dtype,tol", [(jnp.float64, 1e-10), (jnp.float32, 2e-4)])
def test_forward_matches_numpy_reference(toy, model64, model32, dtype, tol):
    # float64: only summation order differs (1e-10); float32: ~1e-7 per op over 2 layers (2e-4)
    model = model64 if dtype == jnp.float64 else model32
    _, ref = toy
    logp, hidden = model.next_token_logprobs(TEXTS)
    assert logp.dtype == dtype and hidden.shape == (len(TEXTS), D)
    for b, t in enumerate(TEXTS):
        want = numpy_forward(ref, model.encode(t))
        np.testing.assert_allclose(np.asarray(hidden[b]), want["hidden"][-1], atol=tol, rtol=tol)
        np.testing.assert_allclose(np.asarray(logp[b]), want["logp"][-1], atol=tol, rtol=tol)


def test_hidden_states_and_sequence_logprobs_match_reference(toy, model64):
    _, ref = toy
    ids = model64.encode(TEXTS[2])
    want = numpy_forward(ref, ids)
    hs = model64.hidden_states(TEXTS[2])
    assert hs.shape == (N_LAYERS + 1, len(ids), D)
    np.testing.assert_allclose(np.asarray(hs), want["layers"], atol=1e-10)
    lp = model64.sequence_logprobs(TEXTS[2])
    np.testing.assert_allclose(
        np.asarray(lp), want["logp"][np.arange(len(ids) - 1), ids[1:]], atol=1e-10
    )
    lp0 = model64.sequence_logprobs(TEXTS[2], start_token=0)
    want0 = numpy_forward(ref, [0, *ids])
    np.testing.assert_allclose(np.asarray(lp0), want0["logp"][np.arange(len(ids)), ids], atol=1e-10)


def test_logits_are_hidden_dot_embedding(model64):
    logp, h = model64.next_token_logprobs(TEXTS)
    np.testing.assert_allclose(
        np.asarray(jax.nn.log_softmax(h @ model64.embedding.T, axis=-1)), np.asarray(logp),
        atol=1e-12,
    )
    np.testing.assert_allclose(np.asarray(jax.scipy.special.logsumexp(logp, axis=-1)), 0.0,
                               atol=1e-12)


def test_batch_equals_one_by_one_and_padding_invariance(model64):
    logp, h = model64.next_token_logprobs(TEXTS)
    for b, t in enumerate(TEXTS):
        lp1, h1 = model64.next_token_logprobs([t])
        # same math per row; only BLAS blocking may differ with the batch size
        np.testing.assert_allclose(np.asarray(lp1[0]), np.asarray(logp[b]), atol=1e-12)
        np.testing.assert_allclose(np.asarray(h1[0]), np.asarray(h[b]), atol=1e-12)
    # the same ids padded to two different buckets give the same states at real positions
    ids = model64.encode(TEXTS[0])
    tok = np.full((2, 64), 7, dtype=np.int32)
    tok[:, : len(ids)] = ids
    tok[1, len(ids):] = 11  # different pad content
    h64 = FORWARD(model64.weights, jnp.asarray(tok))["hidden"]
    h32 = FORWARD(model64.weights, jnp.asarray(tok[:1, :32]))["hidden"]
    n = len(ids)
    np.testing.assert_allclose(np.asarray(h64[0, :n]), np.asarray(h64[1, :n]), atol=1e-12)
    np.testing.assert_allclose(np.asarray(h64[0, :n]), np.asarray(h32[0, :n]), atol=1e-12)


def test_batches_larger_than_batch_size(toy):
    model = lm.load_language_model("smollm2", toy[0], dtype=jnp.float64, cache_weights=False,
                                   batch_size=2)
    texts = TEXTS + TEXTS[:1]
    logp, h = model.next_token_logprobs(texts)
    logp1, _ = model.next_token_logprobs(texts[:1])
    assert logp.shape == (5, model.vocab_size) and h.shape == (5, D)
    np.testing.assert_allclose(np.asarray(logp[4]), np.asarray(logp1[0]), atol=1e-12)


def test_rope_adjacent_pairs():
    # e_0 at position t rotates within the pair (0, 1) by t * base^0 = t radians
    x = jnp.zeros((1, 3, 1, HD), dtype=jnp.float64).at[..., 0].set(1.0)
    cos, sin = lm.rope_angles(jnp.arange(3, dtype=jnp.int32), HD, BASE, jnp.float64)
    y = np.asarray(lm.apply_rope(x, cos, sin))[0, :, 0]
    for t in range(3):
        want = np.zeros(HD)
        want[0], want[1] = math.cos(t), math.sin(t)
        np.testing.assert_allclose(y[t], want, atol=1e-15)
    # pair i = 1 (dims 2, 3) turns at base^(-2/HD)
    x = jnp.zeros((1, 3, 1, HD), dtype=jnp.float64).at[..., 2].set(1.0)
    y = np.asarray(lm.apply_rope(x, cos, sin))[0, 2, 0]
    ang = 2 * BASE ** (-2 / HD)
    np.testing.assert_allclose(y[2:4], [math.cos(ang), math.sin(ang)], atol=1e-15)
    np.testing.assert_allclose(np.delete(y, [2, 3]), 0.0, atol=1e-15)


@given(t=st.integers(0, 200), s=st.integers(0, 200), shift=st.integers(0, 300))
def test_rope_scores_depend_on_relative_position_only(t, s, shift):
    rng = np.random.default_rng(t * 1000 + s)
    q = jnp.asarray(rng.standard_normal((1, 1, 1, HD)))
    k = jnp.asarray(rng.standard_normal((1, 1, 1, HD)))

    def score(a: int, b: int) -> float:
        ca, sa = lm.rope_angles(jnp.asarray([a], dtype=jnp.int32), HD, BASE, jnp.float64)
        cb, sb = lm.rope_angles(jnp.asarray([b], dtype=jnp.int32), HD, BASE, jnp.float64)
        return float(jnp.sum(lm.apply_rope(q, ca, sa) * lm.apply_rope(k, cb, sb)))

    # <R_t q, R_s k> = <q, R_{s-t} k>; angles up to ~500 rad lose ~1e-13 relative precision
    assert score(t, s) == pytest.approx(score(t + shift, s + shift), abs=1e-10)
    # norms are preserved (a rotation)
    c, sn = lm.rope_angles(jnp.asarray([t], dtype=jnp.int32), HD, BASE, jnp.float64)
    assert float(jnp.linalg.norm(lm.apply_rope(q, c, sn))) == pytest.approx(
        float(jnp.linalg.norm(q)), rel=1e-12)


def test_rms_norm_law(rng):
    x = jnp.asarray(rng.standard_normal((3, 5, D)))
    y = lm.rms_norm(x, jnp.ones(D, dtype=jnp.float64), 0.0)
    np.testing.assert_allclose(np.mean(np.asarray(y) ** 2, axis=-1), 1.0, rtol=1e-12)
    # scale invariance: RMSNorm(c x) = RMSNorm(x) for eps = 0
    np.testing.assert_allclose(np.asarray(lm.rms_norm(3.7 * x, jnp.ones(D, jnp.float64), 0.0)),
                               np.asarray(y), rtol=1e-12)


def test_generation_greedy_consistent_with_full_forward(model64):
    g = model64.generate(TEXTS[0], 6, temperature=0, stop=False)
    assert len(g.token_ids) == 6 and g.hidden.shape == (6, D) and g.stop_reason == "length"
    ids = model64.encode(TEXTS[0])
    for k in range(6):
        prefix = ids + g.token_ids[:k]
        tok = np.full((1, 32), 2, dtype=np.int32)
        tok[0, : len(prefix)] = prefix
        h = FORWARD(model64.weights, jnp.asarray(tok))["hidden"][0, len(prefix) - 1]
        logp = np.asarray(jax.nn.log_softmax(h @ model64.embedding.T))
        # the cached decode step reproduces the full forward pass at each position
        np.testing.assert_allclose(g.hidden[k], np.asarray(h), atol=1e-10)
        assert g.token_ids[k] == int(np.argmax(logp))
        assert g.logprobs[k] == pytest.approx(float(logp[g.token_ids[k]]), abs=1e-10)
        p = np.exp(logp)
        assert g.entropies[k] == pytest.approx(float(-np.sum(p * logp)), abs=1e-10)


def test_sampling_seeded_deterministic_and_top_k_one_is_greedy(model64):
    # same shapes as the greedy test above (batch 1, 6 new tokens, bucket 32): few compilations
    a = model64.generate(TEXTS[1], 6, temperature=1.3, seed=5, stop=False)
    b = model64.generate(TEXTS[1], 6, temperature=1.3, seed=5, stop=False)
    assert a.token_ids == b.token_ids
    # NumPy scalars are accepted as settings (as produced by experiment grids)
    a_np = model64.generate(TEXTS[1], np.int64(6), temperature=np.float64(1.3), seed=np.int64(5),
                            stop=False)
    assert a_np.token_ids == a.token_ids
    c = model64.generate(TEXTS[1], 6, temperature=1.3, seed=6, stop=False)
    assert a.token_ids != c.token_ids
    greedy = model64.generate(TEXTS[1], 6, temperature=0, stop=False)
    k1 = model64.generate(TEXTS[1], 6, temperature=2.0, top_k=1, seed=3, stop=False)
    assert k1.token_ids == greedy.token_ids
    tiny_p = model64.generate(TEXTS[1], 6, temperature=1.0, top_p=1e-6, seed=3, stop=False)
    assert tiny_p.token_ids == greedy.token_ids


def test_sampling_frequencies_follow_tempered_softmax(model64):
    # first drawn token over many seeds in parallel: chi-square against softmax(logits / T)
    temperature = 1.5
    logp, _ = model64.next_token_logprobs([TEXTS[0]])
    p = np.asarray(jax.nn.softmax(logp[0] / temperature))
    gens = model64.sample(TEXTS[0], 1, num_samples=2048, temperature=temperature, seed=1,
                          stop=False)
    counts = np.bincount([g.token_ids[0] for g in gens], minlength=p.size)
    top = np.argsort(-p)[:8]
    expected = 2048 * p[top]
    chi2 = float(np.sum((counts[top] - expected) ** 2 / expected))
    # 7 degrees of freedom (8 cells, the rest pooled out): P(chi2 > 24.3) = 0.001
    assert chi2 < 24.3


@given(
    k=st.integers(1, 40), top_p=st.floats(0.05, 1.0), temperature=st.floats(0.2, 3.0),
    seed=st.integers(0, 1000),
)
def test_filter_logits_keeps_minimal_nucleus(k, top_p, temperature, seed):
    z = jnp.asarray(np.random.default_rng(seed).standard_normal((1, 40)) * 2.0)
    out = np.asarray(lm.filter_logits(z, temperature, k, top_p))[0]
    kept = np.isfinite(out)
    zs = np.asarray(z[0]) / temperature
    order = np.argsort(-zs)
    n = int(kept.sum())
    assert 1 <= n <= k
    assert set(np.flatnonzero(kept)) == set(order[:n])  # the most likely n tokens
    np.testing.assert_allclose(out[kept], zs[kept], rtol=1e-12)
    p = np.exp(zs - zs.max())
    p /= p.sum()
    if n < k:  # stopped by the nucleus: its mass reaches top_p, one fewer does not
        assert p[order[:n]].sum() >= top_p - 1e-12
        assert p[order[: n - 1]].sum() < top_p + 1e-12


def test_bucket_length():
    assert lm.bucket_length(1, 8192) == 32 and lm.bucket_length(33, 8192) == 64
    assert lm.bucket_length(40, 48) == 48
    with pytest.raises(ValueError, match="limit of 48"):
        lm.bucket_length(49, 48)


def test_errors(toy, model32):
    with pytest.raises(ValueError, match="empty"):
        model32.next_token_logprobs([""])
    with pytest.raises(ValueError, match="prompts: need at least one"):
        model32.next_token_logprobs([])
    too_long = "1" * (CTX + 1)
    with pytest.raises(ValueError, match=f"context limit of {CTX}"):
        model32.next_token_logprobs([too_long])
    with pytest.raises(ValueError, match="context limit"):
        model32.generate("1" * (CTX - 2), 5)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, "):
        model32.next_token_logprobs_ids([[1, model32.vocab_size]])
    with pytest.raises(ValueError, match="token_ids\\[1\\]: empty"):
        model32.next_token_logprobs_ids([[1], []])
    with pytest.raises(ValueError, match="top_p"):
        model32.generate("is", 2, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        model32.generate("is", 2, temperature=-1.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model32.generate("is", 0)
    with pytest.raises(ValueError, match=r"neither a built-in language model \['smollm2', "
                                         r"'gemma3-270m'\].*Supported architectures"):
        lm.load_language_model("gpt5")
    with pytest.raises(ValueError, match="valid names"):
        lm.locate("nope")


def test_truncated_gguf_is_a_clear_error(toy, tmp_path):
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(toy[0].read_bytes()[:5000])
    with pytest.raises(ValueError, match="could not be read as a GGUF"):
        lm.load_language_model("smollm2", bad, cache_weights=False)


def test_weights_shape_check(model32):
    w = model32.weights
    with pytest.raises(ValueError, match="embedding"):
        lm.DecoderWeights(config=w.config, embedding=w.embedding[:-1], blocks=w.blocks,
                          final_norm=w.final_norm)


def test_gradient_through_the_model_is_finite(model64):
    # the study fits kernels through the hidden state; gradients w.r.t. weights must flow,
    # including through the masked (-inf) attention entries
    ids = jnp.asarray(np.asarray([model64.encode(TEXTS[0]) + [2] * 26], dtype=np.int32))

    @jax.jit
    def grad(emb):
        def loss(e):
            w = eqx.tree_at(lambda m: m.embedding, model64.weights, e)
            return jnp.sum(lm.decoder_forward(w, ids)["hidden"][0, 3])

        return jax.grad(loss)(emb)

    g = np.asarray(grad(model64.weights.embedding))
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
    # causality: token ids after position 3 receive no gradient through their embedding rows
    later = set(ids[0, 4:].tolist()) - set(ids[0, :4].tolist())
    assert all(np.abs(g[i]).max() == 0 for i in later)


def test_sequence_logprobs_many_equals_one_by_one(toy, model64):
    many = model64.sequence_logprobs_many(TEXTS[:3] + ["is " * 20], start_token=0)
    for text, lp in zip(TEXTS[:3] + ["is " * 20], many, strict=True):
        ids = [0, *model64.encode(text)]
        want = numpy_forward(toy[1], ids)["logp"][np.arange(len(ids) - 1), ids[1:]]
        np.testing.assert_allclose(lp, want, atol=1e-10)
    bits = model64.surprisal_bits_many(TEXTS[:3])
    np.testing.assert_allclose(bits, [-m.sum() / math.log(2) for m in many[:3]], rtol=1e-12)
    with pytest.raises(ValueError, match=r"texts\[1\]: need at least two tokens"):
        model64.sequence_logprobs_many(["is a", "x"])


def test_surprisal_and_semantic_space(model64):
    lp = np.asarray(model64.sequence_logprobs(TEXTS[0], start_token=0))
    assert model64.surprisal_bits(TEXTS[0]) == pytest.approx(-lp.sum() / math.log(2), rel=1e-12)
    assert model64.surprisal_bits(TEXTS[0]) > 0
    space = model64.semantic_space()
    assert space.n_tokens == model64.vocab_size and space.dim == D
    np.testing.assert_array_equal(np.asarray(space.embedding), np.asarray(model64.embedding))


def test_dequantised_weight_cache(toy, tmp_path, monkeypatch):
    # pretend the toy file is the pinned artifact, so its weights are cached as .npz
    import dataclasses
    import hashlib

    from infograv.data import _artifacts

    path = toy[0]
    spec = _artifacts.ARTIFACTS["smollm2"]
    f = dataclasses.replace(spec.files[spec.primary],
                            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                            size=path.stat().st_size)
    monkeypatch.setitem(_artifacts.ARTIFACTS, "smollm2",
                        dataclasses.replace(spec, files={spec.primary: f}))
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path))
    first = lm.load_language_model("smollm2", path, dtype=jnp.float64)
    (npz,) = (tmp_path / "smollm2").glob("dequantised-*.npz")
    second = lm.load_language_model("smollm2", path, dtype=jnp.float64)  # from the .npz
    npz.write_bytes(npz.read_bytes()[:100])  # damaged cache: rebuilt, not an error
    third = lm.load_language_model("smollm2", path, dtype=jnp.float64)
    assert npz.stat().st_size > 100
    for m in (second, third):
        for a, b in zip(jax.tree_util.tree_leaves(first.weights),
                        jax.tree_util.tree_leaves(m.weights), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_output_head_final_norm_and_generation_states(toy, model64):
    _, ref = toy
    w, b = model64.output_head()
    assert b is None and w.shape == (model64.vocab_size, D)
    ids = model64.encode(TEXTS[0])
    x = np.asarray(model64.hidden_states(TEXTS[0])[-2])  # a residual-stream state (L, d)
    assert x.shape == (len(ids), D)
    # final_norm is RMSNorm with the output_norm weight, on any leading shape
    y = np.asarray(model64.final_norm(jnp.asarray(x[None])))[0]
    rms = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * ref["output_norm.weight"]
    np.testing.assert_allclose(y, rms, atol=1e-12)
    with pytest.raises(ValueError, match="h: the last axis"):
        model64.final_norm(jnp.zeros((2, D + 1)))
    gen_ids, h = model64.generation_states(TEXTS[0], 6)
    g = model64.generate(TEXTS[0], 6, temperature=0, stop=False)
    assert gen_ids.tolist() == g.token_ids and h.shape == (6, D)
    np.testing.assert_allclose(h, g.hidden, atol=0)
    np.testing.assert_array_equal(np.argmax(h @ np.asarray(w).T, axis=-1), gen_ids)
