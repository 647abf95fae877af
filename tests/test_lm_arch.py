"""Every supported architecture on a tiny synthetic model written here, against NumPy.

No download. Each model has random weights and a small vocabulary; it is written in the format a
user would bring (a GGUF file with the architecture's metadata, or a Hugging Face folder with
`config.json`, safetensors and `tokenizer.json`) and loaded with `lm.load_language_model(PATH)`.
The reference forward pass `np_forward` below is float64 NumPy written independently of
infograv: loops over heads, rotary embeddings as complex multiplication (adjacent or half
pairs), explicit causal / sliding-window masks, the tanh GELU written out. The SentencePiece
tokenizer is checked against `spm_encode`, a direct implementation of SentencePiece BPE
(merge the adjacent pair whose union has the highest score, leftmost first; unknown
characters as UTF-8 bytes).

Architectures: Gemma 3 (GGUF, with a local layer, a global layer, a 4-token window and the two
RoPE bases; and the same weights as a Hugging Face folder, whose norms are stored as `w` and
used as `1 + w`), Qwen2 (GGUF, q/k/v biases, half-pair RoPE), llama and Qwen2 as Hugging Face
folders (untied head, bfloat16 safetensors with an index), GPT-2 (Hugging Face, LayerNorm,
learned positions, Conv1D layout). Llama GGUF files are covered by `test_lm_llama.py`.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import gguf
import jax.numpy as jnp
import numpy as np
import pytest

from infograv import lm

D, HEADS, KV, HD, FF, CTX, EPS = 32, 2, 1, 8, 48, 64, 1e-6  # quantised rows: D % 32 == 0
TEXTS = ["the cat is at the hat", "a  cat\n\nis", "zé 12 ✓", "x"]

# -- a tiny SentencePiece-style vocabulary -------------------------------------------------------
CONTROL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
USER = ["\n\n"]
CHARS = list("abcdefghijklmnopqrstuvwxyz\n.,") + ["\u2581"]
PIECES = ["\u2581t", "he", "\u2581the", "at", "\u2581c", "\u2581cat", "is", "\u2581is", "\u2581a",
          "ha", "\u2581h", "\u2581hat", "th"]


def spm_vocab() -> tuple[list[str], list[float], list[int]]:
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    tokens = CONTROL + USER + bytes_ + CHARS + PIECES
    types = [3] * len(CONTROL) + [4] * len(USER) + [6] * 256 + [1] * (len(CHARS) + len(PIECES))
    # pieces: earlier = higher score; characters score below every piece
    scores = [0.0] * (len(CONTROL) + len(USER) + 256) + [-100.0 - i for i in range(len(CHARS))]
    scores += [-1.0 - i for i in range(len(PIECES))]
    return tokens, scores, types


def spm_encode(text: str, bos: int | None = 2) -> list[int]:
    """SentencePiece BPE by its definition (see the module docstring)."""
    tokens, scores, types = spm_vocab()
    vocab = {t: i for i, t in enumerate(tokens)}
    whole = [t for t, ty in zip(tokens, types, strict=True) if ty in (3, 4)]
    out: list[int] = [] if bos is None else [bos]
    i, seg = 0, ""

    def flush(s: str) -> None:
        syms = list(s.replace(" ", "\u2581"))
        while True:
            best, at = None, -1
            for k in range(len(syms) - 1):
                u = syms[k] + syms[k + 1]
                sc = scores[vocab[u]] if u in vocab and types[vocab[u]] == 1 else None
                if sc is not None and (best is None or sc > best):
                    best, at = sc, k
            if best is None:
                break
            syms[at:at + 2] = [syms[at] + syms[at + 1]]
        for sym in syms:
            if sym in vocab:
                out.append(vocab[sym])
            else:
                out.extend(vocab[f"<0x{b:02X}>"] for b in sym.encode("utf-8"))

    while i < len(text):
        hit = next((w for w in sorted(whole, key=len, reverse=True) if text.startswith(w, i)),
                   None)
        if hit is None:
            seg += text[i]
            i += 1
            continue
        flush(seg)
        seg = ""
        out.append(vocab[hit])
        i += len(hit)
    flush(seg)
    return out


# -- the independent NumPy forward pass ----------------------------------------------------------
def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def np_forward(a: dict[str, Any], w: dict[str, Any], ids: list[int]) -> dict[str, np.ndarray]:
    """Final hidden states `(L, d)` and next-token log-probabilities `(L, V)`.

    `a`: the architecture (norm, rope, bases, window, local layers, ffn, qk_norm, sandwich,
    embed_scale, scale); `w`: float64 weights, `(out, in)` matrices.
    """
    n = len(ids)

    def norm(x: np.ndarray, p: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
        if p[1] is None:
            return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + a["eps"]) * p[0]
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + a["eps"]) * p[0] + p[1]

    def rope(x: np.ndarray, base: float) -> np.ndarray:  # x (n, hd)
        h = x.shape[1]
        if a["rope"] == "adjacent":
            z = x[:, 0::2] + 1j * x[:, 1::2]
        else:
            z = x[:, : h // 2] + 1j * x[:, h // 2:]
        theta = base ** (-np.arange(h // 2) * 2.0 / h)
        z = z * np.exp(1j * np.arange(n)[:, None] * theta[None, :])
        out = np.empty_like(x)
        if a["rope"] == "adjacent":
            out[:, 0::2], out[:, 1::2] = z.real, z.imag
        else:
            out[:, : h // 2], out[:, h // 2:] = z.real, z.imag
        return out

    def lin(x: np.ndarray, m: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return x @ m.T + (0.0 if b is None else b)

    x = w["embedding"][ids] * a.get("embed_scale", 1.0)
    if w.get("pos") is not None:
        x = x + w["pos"][:n]
    hd, nh, nkv = a["hd"], a["heads"], a["kv"]
    for li, L in enumerate(w["layers"]):
        local = a.get("local", [False] * len(w["layers"]))[li]
        base = a.get("base_local", a.get("base")) if local else a.get("base")
        h = norm(x, L["attn_norm"])
        q, k, v = lin(h, L["q"], L.get("bq")), lin(h, L["k"], L.get("bk")), lin(h, L["v"],
                                                                              L.get("bv"))
        heads = []
        for j in range(nh):
            g = j // (nh // nkv)
            qh, kh, vh = q[:, j * hd:(j + 1) * hd], k[:, g * hd:(g + 1) * hd], v[:, g * hd:(g + 1)
                                                                                  * hd]
            if a.get("qk_norm"):
                qh, kh = norm(qh, (L["q_norm"], None)), norm(kh, (L["k_norm"], None))
            if a["rope"] is not None:
                qh, kh = rope(qh, base), rope(kh, base)
            s = qh @ kh.T * a["scale"]
            for r in range(n):
                for c in range(n):
                    if c > r or (local and r - c >= a["window"]):
                        s[r, c] = -np.inf
            s = np.exp(s - s.max(axis=1, keepdims=True))
            heads.append((s / s.sum(axis=1, keepdims=True)) @ vh)
        o = lin(np.concatenate(heads, axis=1), L["o"], L.get("bo"))
        if a.get("sandwich"):
            o = norm(o, L["post_attn"])
        x = x + o
        f = norm(x, L["ffn_norm"])
        if a["ffn"] == "mlp":
            hid = gelu_tanh(lin(f, L["up"], L.get("b_up")))
        else:
            gate, up = f @ L["gate"].T, f @ L["up"].T
            act = gate / (1 + np.exp(-gate)) if a["ffn"] == "silu" else gelu_tanh(gate)
            hid = act * up
        y = lin(hid, L["down"], L.get("b_down"))
        if a.get("sandwich"):
            y = norm(y, L["post_ffn"])
        x = x + y
    hidden = norm(x, w["final_norm"])
    logits = hidden @ w.get("head", w["embedding"]).T
    logp = logits - logits.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return {"hidden": hidden, "logp": logp}


def random_weights(rng: np.random.Generator, v: int, n_layers: int, arch: dict[str, Any],
                   *, biases: bool = False, head: bool = False) -> dict[str, Any]:
    def m(*shape: int, s: float = 0.3) -> np.ndarray:
        return (s * rng.standard_normal(shape)).astype(np.float32).astype(np.float64)

    def nw(size: int) -> tuple[np.ndarray, np.ndarray | None]:
        w = (1.0 + 0.1 * rng.standard_normal(size)).astype(np.float32).astype(np.float64)
        return (w, m(size, s=0.1) if arch["norm"] == "layer" else None)

    hq, hkv = arch["heads"] * arch["hd"], arch["kv"] * arch["hd"]
    layers = []
    for _ in range(n_layers):
        L: dict[str, Any] = {"attn_norm": nw(D), "q": m(hq, D), "k": m(hkv, D), "v": m(hkv, D),
                             "o": m(D, hq, s=0.2), "ffn_norm": nw(D), "up": m(FF, D),
                             "down": m(D, FF, s=0.2)}
        if arch["ffn"] != "mlp":
            L["gate"] = m(FF, D)
        if biases:
            L.update(bq=m(hq, s=0.2), bk=m(hkv, s=0.2), bv=m(hkv, s=0.2))
        if arch["ffn"] == "mlp":
            L.update(bo=m(D, s=0.1), b_up=m(FF, s=0.1), b_down=m(D, s=0.1))
        if arch.get("qk_norm"):
            L.update(q_norm=nw(arch["hd"])[0], k_norm=nw(arch["hd"])[0])
        if arch.get("sandwich"):
            L.update(post_attn=nw(D), post_ffn=nw(D))
        layers.append(L)
    w: dict[str, Any] = {"embedding": m(v, D, s=0.5), "layers": layers, "final_norm": nw(D)}
    if head:
        w["head"] = m(v, D, s=0.5)
    if arch["rope"] is None:
        w["pos"] = m(CTX, D, s=0.2)
    return w


# -- writers -------------------------------------------------------------------------------------
GEMMA = dict(norm="rms", rope="half", base=1e6, base_local=1e4, window=4, local=[True, False],
             ffn="gelu", qk_norm=True, sandwich=True, embed_scale=float(np.sqrt(np.float32(D))),
             scale=1 / math.sqrt(HD), heads=HEADS, kv=KV, hd=HD, eps=EPS)


def _dequant_q8_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    blocks = raw.reshape(-1, 34)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float64)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)
    return (d * q).reshape(shape)


def _dequant_q5_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # block: float16 d, 4 bytes of high bits, 16 bytes of low nibbles; x = d * (q - 16)
    blocks = raw.reshape(-1, 22)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float64)
    qh = blocks[:, 2:6].copy().view("<u4")[:, 0]
    qs = blocks[:, 6:]
    lo = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int64)
    hi = (qh[:, None] >> np.arange(32)[None, :]) & 1
    return (d * (lo + 16 * hi - 16)).reshape(shape)


def write_gguf(path: Path, arch_name: str, a: dict[str, Any], w: dict[str, Any],
               tokens: list[str], types: list[int], *, scores: list[float] | None = None,
               merges: list[str] | None = None, pattern: int | None = None) -> dict[str, Any]:
    """Write `w` as a GGUF of `arch_name`; quantise two matrices and return the weights as the
    file stores them (the quantised ones decoded here, independently of infograv)."""
    g = gguf.GGUFWriter(path, arch_name)
    n_layers = len(w["layers"])
    g.add_block_count(n_layers)
    g.add_context_length(CTX)
    g.add_embedding_length(D)
    g.add_feed_forward_length(FF)
    g.add_head_count(a["heads"])
    g.add_head_count_kv(a["kv"])
    g.add_rope_freq_base(a["base"])
    g.add_layer_norm_rms_eps(EPS)
    if arch_name == "gemma3":
        g.add_key_length(a["hd"])
        g.add_value_length(a["hd"])
        g.add_sliding_window(a["window"])
        if pattern is not None:
            g.add_sliding_window_pattern(pattern)
    if scores is not None:
        g.add_tokenizer_model("llama")
        g.add_token_scores(scores)
        g.add_add_bos_token(True)
        g.add_bos_token_id(2)
        g.add_eos_token_id(1)
        g.add_unk_token_id(3)
        g.add_pad_token_id(0)
    else:
        g.add_tokenizer_model("gpt2")
        g.add_tokenizer_pre("qwen2")
        g.add_token_merges(merges or [])
        g.add_bos_token_id(0)
        g.add_eos_token_id(0)
    g.add_token_list(tokens)
    g.add_token_types(types)
    stored = {k: v for k, v in w.items()}
    stored["layers"] = [dict(L) for L in w["layers"]]

    def put(name: str, arr: np.ndarray, quant: gguf.GGMLQuantizationType | None = None) -> Any:
        a32 = np.asarray(arr, dtype=np.float32)
        if quant is None:
            g.add_tensor(name, a32)
            return arr
        raw = gguf.quants.quantize(a32, quant)
        g.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=quant)
        dec = _dequant_q8_0 if quant == gguf.GGMLQuantizationType.Q8_0 else _dequant_q5_0
        return dec(np.asarray(raw), arr.shape)

    stored["embedding"] = put("token_embd.weight", w["embedding"], gguf.GGMLQuantizationType.Q8_0)
    names = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate",
             "up": "ffn_up", "down": "ffn_down", "q_norm": "attn_q_norm",
             "k_norm": "attn_k_norm", "bq": "attn_q", "bk": "attn_k", "bv": "attn_v"}
    for i, L in enumerate(w["layers"]):
        p = f"blk.{i}."
        for key, nm in names.items():
            if key in L:
                suffix = ".bias" if key.startswith("b") else ".weight"
                q5 = gguf.GGMLQuantizationType.Q5_0 if key == "up" and i == 0 else None
                stored["layers"][i][key] = put(p + nm + suffix, L[key], q5)
        put(p + "attn_norm.weight", L["attn_norm"][0])
        put(p + "ffn_norm.weight", L["ffn_norm"][0])
        if "post_attn" in L:
            put(p + "post_attention_norm.weight", L["post_attn"][0])
            put(p + "post_ffw_norm.weight", L["post_ffn"][0])
    put("output_norm.weight", w["final_norm"][0])
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()
    return stored


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: set[str]) -> None:
    """The safetensors format by hand (8-byte header length, JSON header, raw data), so that
    bfloat16 (the top 16 bits of float32) can be written too."""
    header: dict[str, Any] = {}
    blobs, off = [], 0
    for name, arr in tensors.items():
        a32 = np.ascontiguousarray(arr, dtype=np.float32)
        if name in bf16:
            blob = (a32.view(np.uint32) >> 16).astype("<u2").tobytes()
            dt = "BF16"
        else:
            blob, dt = a32.astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dt, "shape": list(a32.shape), "data_offsets": [off,
                                                                                  off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16_round(a: np.ndarray) -> np.ndarray:
    return ((np.asarray(a, dtype=np.float32).view(np.uint32) >> 16) << 16).view(
        np.float32).astype(np.float64)


def byte_level_tokenizer(path: Path, bos: str | None) -> list[str]:
    """A byte-level BPE `tokenizer.json` over the 256 byte symbols and a few merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    alphabet.sort()
    specials = ["<|endoftext|>", "<s>"]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "s"), ("a", "t")]
    vocab_list = specials + alphabet + [a + b for a, b in merges]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab_list)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A",
                                                           special_tokens=[(bos, 1)])
    tok.save(str(path))
    return vocab_list


def write_hf(folder: Path, model_type: str, a: dict[str, Any], w: dict[str, Any],
             v: int, *, shards: bool = False, bos: str | None = None,
             tokenizer: bool = True) -> dict[str, Any]:
    """Write `w` as a Hugging Face folder; return the weights as stored (bf16 where used)."""
    folder.mkdir()
    n_layers = len(w["layers"])
    t: dict[str, np.ndarray] = {}
    stored = {k: val for k, val in w.items()}
    stored["layers"] = [dict(L) for L in w["layers"]]
    bf16: set[str] = set()
    if model_type == "gpt2":
        cfg = {"model_type": "gpt2", "n_embd": D, "n_layer": n_layers, "n_head": a["heads"],
               "n_positions": CTX, "n_inner": FF, "vocab_size": v, "layer_norm_epsilon": EPS,
               "activation_function": "gelu_new", "bos_token_id": 0, "eos_token_id": 0}
        t["wte.weight"], t["wpe.weight"] = w["embedding"], w["pos"]
        for i, L in enumerate(w["layers"]):
            p = f"h.{i}."
            t[p + "ln_1.weight"], t[p + "ln_1.bias"] = L["attn_norm"]
            t[p + "ln_2.weight"], t[p + "ln_2.bias"] = L["ffn_norm"]
            t[p + "attn.c_attn.weight"] = np.concatenate([L["q"], L["k"], L["v"]]).T
            t[p + "attn.c_attn.bias"] = np.concatenate([L["bq"], L["bk"], L["bv"]])
            t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = L["o"].T, L["bo"]
            t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = L["up"].T, L["b_up"]
            t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = L["down"].T, L["b_down"]
        t["ln_f.weight"], t["ln_f.bias"] = w["final_norm"]
    else:
        gemma = model_type == "gemma3_text"
        cfg = {"model_type": model_type, "hidden_size": D, "num_hidden_layers": n_layers,
               "num_attention_heads": a["heads"], "num_key_value_heads": a["kv"],
               "head_dim": a["hd"], "intermediate_size": FF, "vocab_size": v,
               "max_position_embeddings": CTX, "rms_norm_eps": EPS, "rope_theta": a["base"],
               "tie_word_embeddings": "head" not in w, "bos_token_id": 1, "eos_token_id": 0}
        if gemma:
            cfg.update(rope_local_base_freq=a["base_local"], sliding_window=a["window"],
                       layer_types=["sliding_attention" if x else "full_attention"
                                    for x in a["local"]],
                       query_pre_attn_scalar=a["hd"], hidden_activation="gelu_pytorch_tanh",
                       bos_token_id=2, eos_token_id=1, pad_token_id=0)
        one = 1.0 if gemma else 0.0  # Hugging Face Gemma stores w and computes x (1 + w)
        pre = "model."
        t[pre + "embed_tokens.weight"] = w["embedding"]
        for i, L in enumerate(w["layers"]):
            p = f"{pre}layers.{i}."
            for key, nm in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
                t[p + f"self_attn.{nm}.weight"] = L[key]
            for key, nm in (("bq", "q_proj"), ("bk", "k_proj"), ("bv", "v_proj")):
                if key in L:
                    t[p + f"self_attn.{nm}.bias"] = L[key]
            for key, nm in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                t[p + f"mlp.{nm}.weight"] = L[key]
            t[p + "input_layernorm.weight"] = L["attn_norm"][0] - one
            if gemma:
                t[p + "self_attn.q_norm.weight"] = L["q_norm"] - 1.0
                t[p + "self_attn.k_norm.weight"] = L["k_norm"] - 1.0
                t[p + "post_attention_layernorm.weight"] = L["post_attn"][0] - 1.0
                t[p + "pre_feedforward_layernorm.weight"] = L["ffn_norm"][0] - 1.0
                t[p + "post_feedforward_layernorm.weight"] = L["post_ffn"][0] - 1.0
            else:
                t[p + "post_attention_layernorm.weight"] = L["ffn_norm"][0]
        t[pre + "norm.weight"] = w["final_norm"][0] - one
        if "head" in w:
            t["lm_head.weight"] = w["head"]
        if shards:  # bfloat16 matrices: the reference uses the rounded values
            bf16 = {k for k in t if k.endswith("proj.weight")}
            for i, L in enumerate(stored["layers"]):
                for key in ("q", "k", "v", "o", "gate", "up", "down"):
                    L[key] = bf16_round(L[key])
    (folder / "config.json").write_text(json.dumps(cfg))
    if shards:
        names = sorted(t)
        half = len(names) // 2
        parts = {"model-00001-of-00002.safetensors": names[:half],
                 "model-00002-of-00002.safetensors": names[half:]}
        for fname, keys in parts.items():
            write_safetensors(folder / fname, {k: t[k] for k in keys}, bf16)
        index = {"weight_map": {k: f for f, keys in parts.items() for k in keys}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        write_safetensors(folder / "model.safetensors", t, bf16)
    if tokenizer:
        byte_level_tokenizer(folder / "tokenizer.json", bos)
    return stored


def _check(model: lm.LanguageModel, a: dict[str, Any], w: dict[str, Any], tol: float) -> None:
    logp, hidden = model.next_token_logprobs(TEXTS)
    for b, text in enumerate(TEXTS):
        want = np_forward(a, w, model.encode(text))
        np.testing.assert_allclose(np.asarray(hidden[b]), want["hidden"][-1], atol=tol, rtol=tol)
        np.testing.assert_allclose(np.asarray(logp[b]), want["logp"][-1], atol=tol, rtol=tol)
    # the whole sequence (every position) through sequence_logprobs
    ids = model.encode(TEXTS[0])
    want = np_forward(a, w, ids)["logp"]
    got = np.asarray(model.sequence_logprobs(TEXTS[0]))
    np.testing.assert_allclose(got, want[np.arange(len(ids) - 1), ids[1:]], atol=tol)


# -- Gemma 3 -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> tuple[lm.LanguageModel, dict[str, Any]]:
    tokens, scores, types = spm_vocab()
    w = random_weights(np.random.default_rng(1), len(tokens), 2, GEMMA)
    path = tmp_path_factory.mktemp("gemma") / "tiny-gemma3.gguf"
    stored = write_gguf(path, "gemma3", GEMMA, w, tokens, types, scores=scores, pattern=2)
    return lm.load_language_model(path, dtype=jnp.float64), stored


def test_gemma3_config_from_metadata(gemma):
    c = gemma[0].config
    assert c.arch == "gemma3" and c.head_size == HD and c.n_kv_heads == KV
    assert c.local_layers == (True, False) and c.sliding_window == 4
    assert c.rope_base == 1e6 and c.rope_base_local == 1e4
    assert c.embed_scale == pytest.approx(math.sqrt(D)) and c.add_bos and c.bos_id == 2


def test_gemma3_tokenizer_is_sentencepiece_bpe(gemma):
    model = gemma[0]
    tokens, _, _ = spm_vocab()
    for text in TEXTS + ["<start_of_turn>the hat<end_of_turn>", "  ", "thethe", "日本"]:
        ids = model.encode(text)
        assert ids == spm_encode(text), text
        assert model.decode(ids[1:]) == text
    assert [tokens[i] for i in model.encode(" the cat")] == ["<bos>", "\u2581the", "\u2581cat"]


def test_gemma3_forward_matches_numpy(gemma):
    # float64 throughout; prompts up to 10 tokens exceed the 4-token window of layer 0
    _check(gemma[0], GEMMA, gemma[1], 1e-10)


def test_gemma3_window_and_rope_bases_matter(gemma):
    # the reference with a global first layer, or one RoPE base, disagrees: the test can fail
    model, w = gemma
    ids = model.encode(TEXTS[0])
    logp, _ = model.next_token_logprobs([TEXTS[0]])
    for change in ({"local": [False, False]}, {"base_local": 1e6}, {"embed_scale": 1.0}):
        other = np_forward({**GEMMA, **change}, w, ids)["logp"][-1]
        assert np.abs(np.asarray(logp[0]) - other).max() > 1e-4, change


def test_gemma3_hf_folder_same_model(gemma, tmp_path):
    tokens, scores, types = spm_vocab()
    w = random_weights(np.random.default_rng(1), len(tokens), 2, GEMMA)
    stored = write_hf(tmp_path / "gemma-hf", "gemma3_text", GEMMA, w, len(tokens),
                      tokenizer=False)
    gemma[0].tokenizer.save(str(tmp_path / "gemma-hf" / "tokenizer.json"))
    model = lm.load_language_model(tmp_path / "gemma-hf", dtype=jnp.float64)
    assert model.config.local_layers == (True, False)
    # no BOS from this tokenizer.json (it has no post-processor): ids are the text's pieces
    assert not model.config.add_bos
    ids = gemma[0].encode(TEXTS[0])
    logp, _ = model.next_token_logprobs_ids([ids])
    want = np_forward(GEMMA, stored, ids)
    np.testing.assert_allclose(np.asarray(logp[0]), want["logp"][-1], atol=1e-10)


def test_gemma3_batched_generation_of_different_prompts(gemma):
    model = gemma[0]
    prompts = [TEXTS[0], TEXTS[3], TEXTS[1]]
    many = model.sample_many(prompts, 5, temperature=0, stop=False)
    for p, g in zip(prompts, many, strict=True):
        one = model.generate(p, 5, temperature=0, stop=False)
        assert g.token_ids == one.token_ids
        np.testing.assert_allclose(g.hidden, one.hidden, atol=1e-10)
        # and the cached decode reproduces the full forward pass at the last step
        ids = model.encode(p) + g.token_ids[:4]
        want = np_forward(GEMMA, gemma[1], ids)
        np.testing.assert_allclose(g.hidden[4], want["hidden"][-1], atol=1e-10)


# -- Qwen2 (GGUF) --------------------------------------------------------------------------------
QWEN = dict(norm="rms", rope="half", base=1e4, ffn="silu", scale=1 / math.sqrt(D // HEADS),
            heads=HEADS, kv=KV, hd=D // HEADS, eps=EPS)


def test_qwen2_gguf_biases_and_half_rope(tmp_path):
    vocab = byte_level_tokenizer(tmp_path / "tok.json", None)
    merges = ["Ġ t", "h e", "Ġt he", "i s", "a t"]
    w = random_weights(np.random.default_rng(2), len(vocab), 2, QWEN, biases=True)
    path = tmp_path / "tiny-qwen2.gguf"
    stored = write_gguf(path, "qwen2", QWEN, w, vocab, [3, 3] + [1] * (len(vocab) - 2),
                        merges=merges)
    model = lm.load_language_model(path, dtype=jnp.float64)
    assert model.config.arch == "qwen2" and model.config.position == "rope_half"
    assert model.weights.blocks[0].bq is not None and not model.config.add_bos
    _check(model, QWEN, stored, 1e-10)


# -- Hugging Face folders: llama, qwen2, gpt2 ----------------------------------------------------
LLAMA_HF = dict(QWEN)
GPT2 = dict(norm="layer", rope=None, ffn="mlp", scale=1 / math.sqrt(D // HEADS), heads=HEADS,
            kv=HEADS, hd=D // HEADS, eps=EPS)


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral"])
def test_hf_llama_family(tmp_path, model_type):
    vocab_n = 2 + 256 + 5
    biases = model_type == "qwen2"
    w = random_weights(np.random.default_rng(3), vocab_n, 2, LLAMA_HF, biases=biases,
                       head=True)
    stored = write_hf(tmp_path / model_type, model_type, LLAMA_HF, w, vocab_n, shards=True,
                      bos="<s>")
    a = dict(LLAMA_HF)
    if model_type == "mistral":  # Mistral's sliding window, on every layer
        cfg_path = tmp_path / model_type / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg_path.write_text(json.dumps({**cfg, "sliding_window": 3}))
        a.update(local=[True, True], window=3)
    model = lm.load_language_model(tmp_path / model_type, dtype=jnp.float64)
    assert model.config.arch == model_type and model.weights.unembedding is not None
    assert model.config.add_bos and model.encode("is")[0] == 1  # from the post-processor
    np.testing.assert_array_equal(np.asarray(model.output_head()[0]), stored["head"])
    _check(model, a, stored, 1e-10)


def test_hf_gpt2(tmp_path):
    vocab_n = 2 + 256 + 5
    w = random_weights(np.random.default_rng(4), vocab_n, 2, GPT2, biases=True)
    stored = write_hf(tmp_path / "gpt2", "gpt2", GPT2, w, vocab_n)
    model = lm.load_language_model(tmp_path / "gpt2", dtype=jnp.float64)
    assert model.config.position == "learned" and model.config.norm == "layer"
    _check(model, GPT2, stored, 1e-10)
    # final_norm is the LayerNorm of the head
    x = np.random.default_rng(0).standard_normal((3, D))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    want = (x - mu) / np.sqrt(var + EPS) * stored["final_norm"][0] + stored["final_norm"][1]
    np.testing.assert_allclose(np.asarray(model.final_norm(jnp.asarray(x))), want, atol=1e-12)


def test_unsupported_architectures_are_clear_errors(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    byte_level_tokenizer(folder / "tokenizer.json", None)
    with pytest.raises(ValueError, match=r"model_type 'bert'.*supported.*'llama'.*'gpt2'"):
        lm.load_language_model(folder)
    g = gguf.GGUFWriter(tmp_path / "mamba.gguf", "mamba")
    g.add_token_list(["a", "b"])
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()
    with pytest.raises(ValueError, match=r"architecture 'mamba'.*'llama', 'qwen2', 'gemma3'"):
        lm.load_language_model(tmp_path / "mamba.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        lm.load_language_model(tmp_path / "empty")
