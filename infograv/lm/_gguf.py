r"""Reading a GGUF file: hyperparameters, dequantised weights, tokenizer.

The `gguf` package (pure Python) parses the file and dequantises every tensor (Q4_K, Q5_0,
Q6_K, Q8_0, Q4_1, F16, F32, …) to float32. GGUF stores a matrix with `ne = [in, out]`, which
NumPy sees as `(out, in)`: the PyTorch `nn.Linear` layout, `y = W x`; `weights_from_gguf`
stores the projections transposed, `(in, out)` (see `Block`).

The architecture is read from `general.architecture`, never from the file name:

| GGUF architecture | family | rotary pairs | notes |
|---|---|---|---|
| `llama` (SmolLM2, Llama, Mistral) | llama | adjacent (the conversion permuted q/k) | |
| `qwen2` | llama | halves | q/k/v biases |
| `gemma3` | gemma3 | halves | see below |

Gemma 3 (`gemma3.*` keys): head size from `attention.key_length`; local (sliding-window)
layers except every sixth (`attention.sliding_window_pattern` when the file has it, else 6, the
pattern of every Gemma 3 model: layers 5, 11, 17, … are global); global RoPE base
`rope.freq_base`, local base `rope.freq_base_swa` or 10,000; embedding scaled by $\sqrt d$;
GELU-tanh gated feed-forward; q/k norms; post-attention and post-feed-forward norms; attention
scale $1/\sqrt{h}$ (`query_pre_attn_scalar = h`). Its RMSNorm weights are stored as $1 + w$
by the conversion (Gemma computes $x \cdot (1 + w)$), so they are used as they are.

Tokenizers are rebuilt with the `tokenizers` package: byte-level BPE from the stored merges
(`tokenizer.ggml.model = gpt2`) or SentencePiece-style BPE from the stored scores
(`tokenizer.ggml.model = llama`); see `build_bpe_tokenizer` and `build_spm_tokenizer`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._decoder import Block, DecoderConfig, DecoderWeights, Norm

__all__ = ["GGUFContents", "build_bpe_tokenizer", "build_spm_tokenizer", "config_from_gguf",
           "read_gguf", "weights_from_gguf"]

_CONTROL = 3
_USER_DEFINED = 4
_LISTS = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
          "tokenizer.ggml.merges"}


@dataclasses.dataclass(frozen=True)
class GGUFContents:
    """What `read_gguf` returns: the config, float32 weights (name → array), tokenizer data."""

    config: DecoderConfig
    tensors: dict[str, np.ndarray]
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    metadata: dict[str, Any]
    scores: list[float] = dataclasses.field(default_factory=list)
    tokenizer_model: str = "gpt2"
    pre_tokenizer: str = "default"


_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1",
            10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Reads GGUF's little-endian header fields from a memory map."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> np.ndarray:
        if self.pos + n > self.buf.size:
            raise ValueError("the file ends inside its header (truncated)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def scalar(self, code: str) -> Any:
        dt = np.dtype(code)
        return self.take(dt.itemsize).view(dt)[0].item()

    def string(self) -> str:
        n = self.scalar("<u8")
        return bytes(self.take(n)).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.scalar("<u4"), self.scalar("<u8")
            if etype == _STRING:
                return [self.string() for _ in range(count)]
            if etype not in _SCALARS:
                raise ValueError(f"unknown array element type {etype}")
            dt = np.dtype(_SCALARS[etype])
            return self.take(dt.itemsize * count).view(dt).tolist()
        if vtype not in _SCALARS:
            raise ValueError(f"unknown value type {vtype}")
        v = self.scalar(_SCALARS[vtype])
        return bool(v) if vtype == 7 else v


def _read_header(
    path: Path,
) -> tuple[dict[str, Any], list[tuple[str, list[int], int, int]], int, np.ndarray]:
    """Metadata, tensor infos `(name, dims, type, offset)`, the data start and the memory map.

    A direct reader of the GGUF header (magic `GGUF`, version, tensor and key counts, the
    key/value pairs, the tensor infos, padding to `general.alignment`): the `gguf` package's
    reader builds one array per vocabulary entry, which took 24 s for Gemma's 262,144 tokens.
    """
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    c = _Cursor(buf)
    if bytes(c.take(4)) != b"GGUF":
        raise ValueError("no GGUF magic number at the start")
    version = c.scalar("<u4")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported (2 or 3)")
    n_tensors, n_kv = c.scalar("<u8"), c.scalar("<u8")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.scalar("<u4"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        dims = [c.scalar("<u8") for _ in range(c.scalar("<u4"))]
        infos.append((name, dims, c.scalar("<u4"), c.scalar("<u8")))
    align = int(meta.get("general.alignment", 32))
    start = -(-c.pos // align) * align
    return meta, infos, start, buf


GGUF_ARCHITECTURES: tuple[str, ...] = ("llama", "qwen2", "gemma3")


def config_from_gguf(meta: dict[str, Any], tokens: list[str], where: str) -> DecoderConfig:
    """The `DecoderConfig` of a GGUF file from its metadata (see the module docstring).

    Raises:
        ValueError: an unsupported architecture (the supported ones are listed) or a missing
            key; the message names `where` (the file).
    """
    arch = meta.get("general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise ValueError(
            f"path: {where} holds architecture {arch!r}; supported GGUF architectures are "
            f"{list(GGUF_ARCHITECTURES)} (and Hugging Face folders of llama, mistral, qwen2, "
            "gemma3_text and gpt2 models)."
        )

    def get(key: str, default: Any = None) -> Any:
        v = meta.get(f"{arch}.{key}", default)
        if v is None:
            raise ValueError(f"path: {where} lacks the metadata key {arch}.{key}.")
        return v

    n_heads = int(get("attention.head_count"))
    n_layers = int(get("block_count"))
    d = int(get("embedding_length"))
    eos = int(meta.get("tokenizer.ggml.eos_token_id", 2))
    ends = {"<|endoftext|>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>"}
    stop = tuple(sorted({eos, *(i for i, t in enumerate(tokens) if t in ends)}))
    tok_model = meta.get("tokenizer.ggml.model", "gpt2")
    add_bos = meta.get("tokenizer.ggml.add_bos_token")
    kw: dict[str, Any] = {}
    if arch == "gemma3":
        pattern = int(meta.get(f"{arch}.attention.sliding_window_pattern", 6))
        kw = dict(
            head_dim=int(get("attention.key_length")),
            position="rope_half",
            rope_base_local=float(meta.get(f"{arch}.rope.freq_base_swa", 10000.0)),
            sliding_window=int(get("attention.sliding_window")),
            local_layers=tuple((i + 1) % pattern != 0 for i in range(n_layers)),
            ffn="geglu",
            qk_norm=True,
            sandwich_norm=True,
            embed_scale=float(np.sqrt(np.float32(d))),
        )
    elif arch == "qwen2":
        kw = dict(position="rope_half")
    return DecoderConfig(
        arch=arch,
        n_layers=n_layers,
        d_model=d,
        n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        d_ff=int(get("feed_forward_length")),
        vocab_size=len(tokens),
        context_length=int(get("context_length")),
        norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        rope_base=float(get("rope.freq_base", 10000.0)),
        bos_id=int(meta.get("tokenizer.ggml.bos_token_id", 1)),
        eos_id=eos,
        pad_id=int(meta.get("tokenizer.ggml.padding_token_id", eos)),
        stop_ids=stop,
        add_bos=bool(tok_model == "llama" if add_bos is None else add_bos),
        **kw,
    )


def read_gguf(path: str | os.PathLike[str], *, tensors: bool = True) -> GGUFContents:
    """Read a GGUF file of a supported architecture and dequantise its tensors to float32.

    Args:
        path: the `.gguf` file.
        tensors: dequantise the weights (set `False` to read only the metadata and tokenizer).

    Returns:
        A `GGUFContents` with the config, the float32 tensors in `(out, in)` layout keyed by
        their GGUF names (`token_embd.weight`, `blk.{i}.attn_q.weight`, …), the token strings,
        types, scores and merges.

    Raises:
        ValueError: not a GGUF file, truncated, or an unsupported architecture (the supported
            ones are listed); the message names the file.
    """
    import gguf

    p = Path(path)
    try:
        meta, infos, start, buf = _read_header(p)
        arrays: dict[str, np.ndarray] = {}
        if tensors:
            for name, dims, qtype, offset in infos:
                q = gguf.GGMLQuantizationType(qtype)
                block, size = gguf.GGML_QUANT_SIZES[q]
                n = int(np.prod(dims))
                nbytes = n // block * size
                if start + offset + nbytes > buf.size:
                    raise ValueError(f"tensor {name} lies past the end of the file")
                raw = np.asarray(buf[start + offset:start + offset + nbytes])
                rows = n // dims[0]
                a = gguf.quants.dequantize(raw.reshape(rows, -1), q)
                shape = tuple(int(d) for d in reversed(dims))
                arrays[name] = np.ascontiguousarray(a.reshape(shape), dtype=np.float32)
    except (ValueError, OSError, KeyError, IndexError, NotImplementedError) as exc:
        raise ValueError(
            f"path: {p} could not be read as a GGUF file ({type(exc).__name__}: {exc}). If it is "
            "a fetched artifact it is corrupt or truncated: fetch it again with "
            "`infograv fetch NAME`."
        ) from exc
    tokens = [str(t) for t in meta.get("tokenizer.ggml.tokens", [])]
    config = config_from_gguf(meta, tokens, str(p))
    return GGUFContents(
        config=config,
        tensors=arrays,
        tokens=tokens,
        token_types=[int(x) for x in meta.get("tokenizer.ggml.token_type", [])],
        merges=[str(m) for m in meta.get("tokenizer.ggml.merges", [])],
        metadata={k: v for k, v in meta.items() if k not in _LISTS},
        scores=[float(x) for x in meta.get("tokenizer.ggml.scores", [])],
        tokenizer_model=str(meta.get("tokenizer.ggml.model", "gpt2")),
        pre_tokenizer=str(meta.get("tokenizer.ggml.pre", "default")),
    )


def weights_from_gguf(
    config: DecoderConfig, tensors: dict[str, np.ndarray], dtype: Any
) -> DecoderWeights:
    """Assemble `DecoderWeights` from GGUF-named float arrays (see `read_gguf`).

    Raises:
        ValueError: a tensor the architecture needs is missing (named).
    """
    import jax.numpy as jnp

    def get(name: str, *, t: bool = False) -> Any:
        if name not in tensors:
            raise ValueError(f"tensors: the GGUF file has no tensor {name!r}.")
        a = tensors[name]
        return jnp.asarray(a.T if t else a, dtype=dtype)

    def opt(name: str) -> Any:
        return jnp.asarray(tensors[name], dtype=dtype) if name in tensors else None

    gemma = config.arch == "gemma3"
    blocks = []
    for i in range(config.n_layers):
        p = f"blk.{i}."
        blocks.append(Block(
            attn_norm=Norm(get(p + "attn_norm.weight")),
            wq=get(p + "attn_q.weight", t=True), wk=get(p + "attn_k.weight", t=True),
            wv=get(p + "attn_v.weight", t=True), wo=get(p + "attn_output.weight", t=True),
            bq=opt(p + "attn_q.bias"), bk=opt(p + "attn_k.bias"), bv=opt(p + "attn_v.bias"),
            ffn_norm=Norm(get(p + "ffn_norm.weight")),
            w_gate=get(p + "ffn_gate.weight", t=True), w_up=get(p + "ffn_up.weight", t=True),
            w_down=get(p + "ffn_down.weight", t=True),
            q_norm=get(p + "attn_q_norm.weight") if gemma else None,
            k_norm=get(p + "attn_k_norm.weight") if gemma else None,
            post_attn_norm=Norm(get(p + "post_attention_norm.weight")) if gemma else None,
            post_ffn_norm=Norm(get(p + "post_ffw_norm.weight")) if gemma else None,
        ))
    return DecoderWeights(
        config=config,
        embedding=get("token_embd.weight"),
        blocks=tuple(blocks),
        final_norm=Norm(get("output_norm.weight")),
        unembedding=opt("output.weight"),
    )


_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_bpe_tokenizer(
    tokens: list[str], merges: list[str], token_types: list[int], *, pre: str = "smollm"
) -> Any:
    """Rebuild the byte-level BPE tokenizer stored in a GGUF file with `tokenizers`.

    Pre-tokenisation: every digit is split off on its own, then the GPT-2 pattern
    (`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`) on
    the byte-level alphabet (`pre`, llama.cpp's `tokenizer.ggml.pre`: `"smollm"`, `"default"`
    and anything not listed here); `"gpt-2"`: the GPT-2 pattern alone; `"qwen2"`: Qwen2's
    pattern (single digits, letters with one leading non-letter); no prefix space, no BOS
    added (the file says
    `add_bos_token = false`). Control tokens (`token_type == 3`) are special tokens.

    Args:
        tokens: the vocabulary, id → token string (byte-level alphabet, `Ġ` for a space).
        merges: the BPE merges as `"a b"` strings, in priority order.
        token_types: id → GGUF token type (1 normal, 3 control).

    Returns:
        A `tokenizers.Tokenizer` whose ids are the model's token ids.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ValueError("tokens: the vocabulary has duplicate entries.")
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise ValueError(f"merges: {m!r} is not of the form 'a b'.")
        pairs.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
    if pre == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    elif pre == "gpt-2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    tok.decoder = decoders.ByteLevel()
    special = [t for t, ty in zip(tokens, token_types, strict=False) if ty == _CONTROL]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return tok


def build_spm_tokenizer(
    tokens: list[str], scores: list[float], token_types: list[int], *, unk_id: int = 3
) -> Any:
    """Rebuild a SentencePiece-style BPE tokenizer (`tokenizer.ggml.model = llama`).

    SentencePiece BPE merges, at each step, the adjacent pair whose union is the vocabulary
    piece of highest score. The same result comes from an ordinary BPE whose merge list holds,
    for every normal piece, each split of it into two vocabulary pieces, ranked by the score of
    the piece (highest first; ties by the ids of the halves). Spaces become `▁` (U+2581; no
    space is prepended: `add_space_prefix` is false for Gemma), characters outside the
    vocabulary fall back to their UTF-8 bytes (`<0xNN>` pieces), control pieces
    (`token_type == 3`, e.g. `<bos>`, `<start_of_turn>`) and user-defined pieces
    (`token_type == 4`, e.g. runs of newlines) are matched whole in the raw text first.

    Args:
        tokens: the vocabulary, id → piece.
        scores: id → score (log-probability-like; larger merges first).
        token_types: id → GGUF token type (1 normal, 3 control, 4 user-defined, 6 byte).
        unk_id: the id of the unknown piece.

    Returns:
        A `tokenizers.Tokenizer` whose ids are the model's token ids.

    Raises:
        ValueError: the three lists differ in length, or the vocabulary has duplicates.

    Example:
        >>> toks = ["<unk>", "<bos>", "\u2581", "a", "b", "\u2581a", "ab", "\u2581ab"]
        >>> tok = build_spm_tokenizer(toks, [0, 0, -9, -9, -9, -1, -2, -3],
        ...                           [2, 3, 1, 1, 1, 1, 1, 1], unk_id=0)
        >>> tok.encode(" ab").tokens  # "▁a" outranks "ab"; "▁ab" then forms
        ['\u2581ab']
        >>> tok.encode("ab a").tokens
        ['ab', '\u2581a']
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    if not len(tokens) == len(scores) == len(token_types):
        raise ValueError("tokens, scores, token_types: must have the same length.")
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ValueError("tokens: the vocabulary has duplicate entries.")
    ranked = []
    for piece, i in vocab.items():
        if token_types[i] != 1 or len(piece) < 2:
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            li, ri = vocab.get(left), vocab.get(right)
            if li is not None and ri is not None:
                ranked.append((-scores[i], li, ri, left, right))
    ranked.sort(key=lambda r: r[:3])
    merges = [(r[3], r[4]) for r in ranked]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=tokens[unk_id],
                               byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    special = [AddedToken(t, special=True, normalized=False)
               for t, ty in zip(tokens, token_types, strict=True) if ty == _CONTROL]
    user = [AddedToken(t, special=False, normalized=False)
            for t, ty in zip(tokens, token_types, strict=True) if ty == _USER_DEFINED]
    tok.add_special_tokens(special)
    tok.add_tokens(user)
    return tok
