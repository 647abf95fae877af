"""Reading a llama-architecture GGUF file: hyperparameters, dequantised weights, tokenizer.

The `gguf` package (pure Python) parses the file and dequantises every tensor (Q4_1, Q8_0, F16,
F32, …) to float32. GGUF stores a matrix with `ne = [in, out]`, which NumPy sees as
`(out, in)`: the PyTorch `nn.Linear` layout, `y = W x`. The q/k projections were permuted by the
GGUF conversion so that rotary embeddings act on adjacent pairs `(2i, 2i+1)` (llama.cpp's
"normal" RoPE mode); the forward pass in `_llama.py` uses that convention.

The tokenizer is rebuilt with the `tokenizers` package from the vocabulary and merges stored
in the file: byte-level BPE, the pre-tokenizer that splits every digit on its own and then
applies the GPT-2 split pattern (llama.cpp's `smollm` pre-tokenizer), and the control tokens
(`token_type == 3`) as special tokens, so that `<|im_start|>` in a text maps to its id.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LlamaConfig", "GGUFContents", "read_gguf", "build_bpe_tokenizer"]

_CONTROL = 3


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a llama-architecture causal language model.

    Attributes:
        n_layers: number of transformer blocks.
        d_model: residual width `d`.
        n_heads: query heads.
        n_kv_heads: key/value heads (grouped-query attention; `n_heads % n_kv_heads == 0`).
        d_ff: SwiGLU hidden width.
        vocab_size: `V`.
        context_length: the longest sequence the model was trained for.
        rope_base: RoPE frequency base `b`; pair `i` rotates at `b^{-2i/h}`.
        norm_eps: RMSNorm epsilon.
        bos_id, eos_id, pad_id: special token ids from the file.
        stop_ids: ids that end a generation (end-of-text and end-of-turn).
    """

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    context_length: int
    rope_base: float
    norm_eps: float
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 2
    stop_ids: tuple[int, ...] = (0, 2)

    def __post_init__(self) -> None:
        for f in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                  "context_length"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f}: must be a positive int, got {v!r}.")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}."
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads: n_heads={self.n_heads} is not a multiple of "
                f"n_kv_heads={self.n_kv_heads}."
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim: RoPE needs an even head dimension, got {self.head_dim}.")
        if not self.rope_base > 0 or not self.norm_eps > 0:
            raise ValueError("rope_base and norm_eps: must be positive.")

    @property
    def head_dim(self) -> int:
        """Per-head width `h = d_model / n_heads`."""
        return self.d_model // self.n_heads


@dataclasses.dataclass(frozen=True)
class GGUFContents:
    """What `read_gguf` returns: the config, float32 weights (name → array), tokenizer data."""

    config: LlamaConfig
    tensors: dict[str, np.ndarray]
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    metadata: dict[str, Any]


def _field(reader: Any, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def _metadata(reader: Any) -> dict[str, Any]:
    out = {}
    for k, f in reader.fields.items():
        if k.startswith("tokenizer.ggml.") and k != "tokenizer.ggml.model":
            continue
        try:
            out[k] = f.contents()
        except Exception:  # a field type the installed gguf cannot render; not needed
            continue
    return out


def read_gguf(path: str | os.PathLike[str], *, tensors: bool = True) -> GGUFContents:
    """Read a llama-architecture GGUF file and dequantise its tensors to float32.

    Args:
        path: the `.gguf` file.
        tensors: dequantise the weights (set `False` to read only the metadata and tokenizer).

    Returns:
        A `GGUFContents` with the config, the float32 tensors in `(out, in)` layout keyed by
        their GGUF names (`token_embd.weight`, `blk.{i}.attn_q.weight`, …), the token strings,
        token types and merges.

    Raises:
        ValueError: not a GGUF file, truncated, or not the `llama` architecture; the message
            names the file.
    """
    import gguf

    p = Path(path)
    try:
        reader = gguf.GGUFReader(p)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name and the fix
        raise ValueError(
            f"path: {p} could not be read as a GGUF file ({type(exc).__name__}: {exc}). If it is "
            "the SmolLM2 artifact it is corrupt or truncated: fetch it again with "
            "`infograv fetch smollm2`."
        ) from exc
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"path: {p} holds architecture {arch!r}; only 'llama' is supported.")
    n_heads = int(_field(reader, "llama.attention.head_count"))
    tokens = list(_field(reader, "tokenizer.ggml.tokens"))
    eos = int(_field(reader, "tokenizer.ggml.eos_token_id", 2))
    stop = tuple(sorted({eos, *(i for i, t in enumerate(tokens) if t == "<|endoftext|>")}))
    config = LlamaConfig(
        n_layers=int(_field(reader, "llama.block_count")),
        d_model=int(_field(reader, "llama.embedding_length")),
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv", n_heads)),
        d_ff=int(_field(reader, "llama.feed_forward_length")),
        vocab_size=len(tokens),
        context_length=int(_field(reader, "llama.context_length")),
        rope_base=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        bos_id=int(_field(reader, "tokenizer.ggml.bos_token_id", 1)),
        eos_id=eos,
        pad_id=int(_field(reader, "tokenizer.ggml.padding_token_id", eos)),
        stop_ids=stop,
    )
    arrays: dict[str, np.ndarray] = {}
    if tensors:
        for t in reader.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(n) for n in reversed(t.shape.tolist()))
            arrays[t.name] = np.ascontiguousarray(a.reshape(shape), dtype=np.float32)
    return GGUFContents(
        config=config,
        tensors=arrays,
        tokens=tokens,
        token_types=[int(x) for x in _field(reader, "tokenizer.ggml.token_type", [])],
        merges=list(_field(reader, "tokenizer.ggml.merges", [])),
        metadata=_metadata(reader),
    )


def build_bpe_tokenizer(tokens: list[str], merges: list[str], token_types: list[int]) -> Any:
    """Rebuild the byte-level BPE tokenizer stored in a GGUF file with `tokenizers`.

    Pre-tokenisation: every digit is split off on its own, then the GPT-2 pattern
    (`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`) on
    the byte-level alphabet; no prefix space, no BOS added (the file says
    `add_bos_token = false`). Control tokens (`token_type == 3`) are special tokens.

    Args:
        tokens: the vocabulary, id → token string (byte-level alphabet, `Ġ` for a space).
        merges: the BPE merges as `"a b"` strings, in priority order.
        token_types: id → GGUF token type (1 normal, 3 control).

    Returns:
        A `tokenizers.Tokenizer` whose ids are the model's token ids.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

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
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    special = [t for t, ty in zip(tokens, token_types, strict=False) if ty == _CONTROL]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return tok
