"""The MiniLM sentence encoder (all-MiniLM-L6-v2) in JAX."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from ..data._artifacts import locate
from ._bert import (
    BertConfig,
    BertWeights,
    bert_forward,
    bert_weights_from_tensors,
    mean_pool_normalize,
)
from ._language_model import _batch_bucket, bucket_length

__all__ = ["SentenceEncoder", "load_sentence_encoder"]


@eqx.filter_jit
def _embed(weights: BertWeights, tokens: Any, mask: Any) -> Any:
    return mean_pool_normalize(bert_forward(weights, tokens, mask), mask)


class SentenceEncoder:
    """A sentence encoder: WordPiece tokenizer, BERT weights, mean pooling, normalisation.

    Made by `load_sentence_encoder`. Inputs are padded on the right to a length bucket and
    batches to a power of two, so new sentences do not recompile.

    Semantic space (formalism §8): `token_embeddings` is the MiniLM token cloud `(V, d)`; a query
    is placed at `embed([text])[0]`, a unit vector in the same `d = 384` dimensions.

    Attributes:
        name: `"minilm"` or the folder name.
        path: the folder with `model.safetensors`, `tokenizer.json`, `config.json`.
        config: the `BertConfig`.
        weights: the `BertWeights`.
        tokenizer: a `tokenizers.Tokenizer` (lower-casing WordPiece, `[CLS] … [SEP]`).

    Example:
        ```python
        from infograv import lm
        enc = lm.load_sentence_encoder("minilm")
        v = enc.embed(["A cat sits on the mat.", "A dog lies on the rug."])
        float(v[0] @ v[1])   # cosine similarity
        ```
    """

    def __init__(
        self, name: str, path: Path, config: BertConfig, weights: BertWeights, tokenizer: Any,
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}.")
        self.name = name
        self.path = path
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def __repr__(self) -> str:
        c = self.config
        return f"SentenceEncoder({self.name!r}, layers={c.n_layers}, d={c.d_model})"

    @property
    def token_embeddings(self) -> Float[Array, "V d"]:
        """The token (word-piece) embedding matrix `(V, d)`, before position and LayerNorm."""
        return self.weights.word

    @property
    def dim(self) -> int:
        """`d`."""
        return self.config.d_model

    def encode(self, text: str) -> list[int]:
        """Token ids with `[CLS]` and `[SEP]`, truncated to `config.max_seq_length`."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}.")
        return list(self.tokenizer.encode(text).ids)

    def token_strings(self, ids: Sequence[int] | None = None) -> list[str]:
        """The word-piece string of each id (all `V` when `ids` is `None`)."""
        ids = range(self.config.vocab_size) if ids is None else ids
        return [self.tokenizer.id_to_token(int(i)) for i in ids]

    def semantic_space(self, masses: Any = None, **kwargs: Any) -> Any:
        """The token-embedding cloud as an `infograv.model.SemanticSpace` (formalism §8).

        `masses` and `kwargs` (bandwidth, labels, angular, …) are passed on to `SemanticSpace`;
        queries are placed with `embed`.
        """
        from ..model import SemanticSpace

        return SemanticSpace(self.token_embeddings, masses, **kwargs)

    def embed(self, sentences: Sequence[str]) -> Float[Array, "B d"]:
        """Unit-norm sentence embeddings.

        Args:
            sentences: `B` non-empty texts (a single `str` is one sentence). Texts longer than
                `config.max_seq_length` tokens are truncated, as sentence-transformers does.

        Returns:
            `(B, d)` unit vectors (dtype of the weights).

        Raises:
            ValueError: no sentences, or an empty / whitespace-only sentence.
        """
        if isinstance(sentences, str):
            sentences = [sentences]
        if len(sentences) == 0:
            raise ValueError("sentences: need at least one sentence.")
        ids = []
        for i, s in enumerate(sentences):
            if not isinstance(s, str):
                raise TypeError(f"sentences[{i}]: expected a str, got {type(s).__name__}.")
            if not s.strip():
                raise ValueError(f"sentences[{i}]: empty; give some text.")
            ids.append(self.encode(s))
        out = []
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            t = bucket_length(max(len(r) for r in chunk), self.config.max_seq_length)
            nb = _batch_bucket(len(chunk))
            tok = np.zeros((nb, t), dtype=np.int32)
            mask = np.zeros((nb, t), dtype=bool)
            for i, r in enumerate(chunk):
                tok[i, : len(r)] = r
                mask[i, : len(r)] = True
            mask[len(chunk):, 0] = True  # padding rows: one token, discarded
            out.append(_embed(self.weights, jnp.asarray(tok), jnp.asarray(mask))[: len(chunk)])
        return jnp.concatenate(out, axis=0)


def _read_config(folder: Path) -> BertConfig:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    sb = folder / "sentence_bert_config.json"
    max_seq = None
    if sb.is_file():
        max_seq = json.loads(sb.read_text(encoding="utf-8")).get("max_seq_length")
    pos = int(cfg["max_position_embeddings"])
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(
            f"config.json: hidden_act {cfg['hidden_act']!r}; only 'gelu' is supported."
        )
    return BertConfig(
        n_layers=int(cfg["num_hidden_layers"]),
        d_model=int(cfg["hidden_size"]),
        n_heads=int(cfg["num_attention_heads"]),
        d_ff=int(cfg["intermediate_size"]),
        vocab_size=int(cfg["vocab_size"]),
        max_positions=pos,
        max_seq_length=int(max_seq) if max_seq else pos,
        norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
    )


def load_sentence_encoder(
    name: str = "minilm",
    path: str | os.PathLike[str] | None = None,
    *,
    dtype: DTypeLike = jnp.float32,
    batch_size: int = 32,
) -> SentenceEncoder:
    """Load the all-MiniLM-L6-v2 sentence encoder (or any BERT folder of the same layout).

    The folder is found with `locate(name, path)` (checksums verified, see `locate`) and must
    hold `model.safetensors` (Hugging Face `BertModel` names), `tokenizer.json` and
    `config.json` (and optionally `sentence_bert_config.json` for `max_seq_length`).

    Args:
        name: `"minilm"`.
        path: an explicit folder.
        dtype: float dtype of weights and computation.
        batch_size: the most sentences per compiled call.

    Returns:
        A `SentenceEncoder`.

    Raises:
        ValueError: unknown `name` (valid names listed) or a malformed folder.
        ArtifactNotFoundError: not on this machine (the message gives `infograv fetch minilm`).
        ChecksumError: corrupt or truncated files.

    Example:
        ```python
        from infograv import lm
        enc = lm.load_sentence_encoder("minilm")
        enc.embed(["hello world"]).shape   # (1, 384)
        ```
    """
    if name != "minilm":
        raise ValueError(
            f"name: {name!r} is not a sentence encoder; valid names are ['minilm'] "
            "(the language model 'smollm2' is loaded with load_language_model)."
        )
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = locate(name, path)
    config = _read_config(folder)
    try:
        tensors = load_file(str(folder / "model.safetensors"))
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the fix
        raise ValueError(
            f"path: {folder / 'model.safetensors'} could not be read ({exc}). If it is the "
            "MiniLM artifact it is corrupt: fetch it again with `infograv fetch minilm`."
        ) from exc
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype: must be a float dtype, got {dtype}.")
    weights = bert_weights_from_tensors(config, tensors, dtype=dtype)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=config.max_seq_length)
    label = name if path is None else Path(folder).name
    return SentenceEncoder(label, Path(folder), config, weights, tok, batch_size)
