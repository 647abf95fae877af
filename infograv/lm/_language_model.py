"""Causal language models in JAX: SmolLM2-135M, Gemma 3 270M, or a user's GGUF / Hugging Face model.

Supported architectures (read from the file, never from its name): the llama family (llama,
SmolLM, Mistral with the llama layout, Qwen2), Gemma 3 and GPT-2; see `infograv.lm._decoder`
for the one forward pass they share.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._io import atomic_path
from ..data._artifacts import ARTIFACTS, cache_dir, file_sha256, locate
from ._decoder import (
    ARCHITECTURES,
    DecoderConfig,
    DecoderWeights,
    decode_step,
    decoder_forward,
    final_norm,
    output_logits,
    pad_caches,
)
from ._gguf import (
    GGUFContents,
    build_bpe_tokenizer,
    build_spm_tokenizer,
    read_gguf,
    weights_from_gguf,
)

__all__ = [
    "BUCKETS",
    "LANGUAGE_MODELS",
    "Generation",
    "LanguageModel",
    "bucket_length",
    "filter_logits",
    "load_language_model",
]

#: Sequence lengths inputs are padded to; one compiled function per bucket.
BUCKETS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

#: Built-in language model names (artifacts fetched with `infograv fetch NAME`).
LANGUAGE_MODELS: tuple[str, ...] = ("smollm2", "gemma3-270m")


def bucket_length(n: int, limit: int) -> int:
    """The smallest bucket in `BUCKETS` that holds `n` tokens, capped at `limit`.

    Raises:
        ValueError: `n > limit`.

    Example:
        >>> bucket_length(5, 8192), bucket_length(33, 8192), bucket_length(40, 48)
        (32, 64, 48)
    """
    if n > limit:
        raise ValueError(f"n: {n} tokens exceed the limit of {limit}.")
    for b in BUCKETS:
        if b >= n:
            return min(b, limit)
    return limit


def _as_int(x: Any) -> Any:
    return int(x) if isinstance(x, (int, np.integer)) and not isinstance(x, bool) else x


def _batch_bucket(n: int) -> int:
    b = 1
    while b < n:
        b *= 2
    return b


@dataclasses.dataclass(frozen=True)
class Generation:
    """One sampled continuation.

    Attributes:
        prompt_ids: the prompt's token ids.
        token_ids: the generated ids (the stop token, if any, excluded).
        text: the decoded generated text.
        hidden: `(n, d)` final hidden states after the final norm; row `k` is the query
            position from which `token_ids[k]` was drawn (row 0 is the prompt's last position).
        logprobs: `(n,)` natural-log probability of each drawn token under the untruncated
            model at temperature 1.
        entropies: `(n,)` entropy (nats) of the untruncated next-token distribution at each step.
        stop_reason: `"stop_token"` (end-of-text / end-of-turn drawn) or `"length"`.
        settings: temperature, top_k, top_p, seed, max_new_tokens.
    """

    prompt_ids: list[int]
    token_ids: list[int]
    text: str
    hidden: np.ndarray
    logprobs: np.ndarray
    entropies: np.ndarray
    stop_reason: str
    settings: dict[str, Any]


def filter_logits(
    logits: Float[Array, "B V"],
    temperature: Float[Array, ""] | float | int,
    top_k: Int[Array, ""] | int,
    top_p: Float[Array, ""] | float | int,
) -> Float[Array, "B V"]:
    r"""Temperature, top-k and top-p (nucleus) truncation, as samplers apply them.

    $z \mapsto z / T$; then every token outside the `top_k` largest and outside the smallest
    set of largest tokens whose probability (at temperature $T$) reaches `top_p` gets $-\infty$.
    The most likely token is always kept. Ties at the threshold are all kept. All three settings
    may be traced values (no recompilation when they change); `top_k >= V` and `top_p >= 1`
    disable the truncation.

    Returns:
        The filtered, tempered logits; sample with `jax.random.categorical`.

    Example:
        >>> import jax.numpy as jnp
        >>> z = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
        >>> jnp.isfinite(filter_logits(z, 1.0, 4, 0.7)).tolist()  # 0.5 + 0.3 >= 0.7
        [[True, True, False, False]]
        >>> jnp.isfinite(filter_logits(z, 1.0, 1, 1.0)).tolist()  # top-1
        [[True, False, False, False]]
    """
    z = logits / temperature
    v = z.shape[-1]
    zs = -jnp.sort(-z, axis=-1)  # descending
    ps = jax.nn.softmax(zs, axis=-1)
    before = jnp.cumsum(ps, axis=-1) - ps
    rank = jnp.arange(v, dtype=jnp.int32)[None, :]
    keep = (before < top_p) & (rank < jnp.asarray(top_k, dtype=jnp.int32))
    keep = keep.at[:, 0].set(True)
    thresh = jnp.min(jnp.where(keep, zs, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(z >= thresh, z, -jnp.inf)


@eqx.filter_jit
def _last_hidden(
    weights: DecoderWeights, tokens: jax.Array, lengths: jax.Array
) -> tuple[jax.Array, jax.Array]:
    h = decoder_forward(weights, tokens)["hidden"]
    idx = (lengths - 1).astype(jnp.int32)
    last = jnp.take_along_axis(h, idx[:, None, None], axis=1)[:, 0, :]
    return jax.nn.log_softmax(output_logits(weights, last), axis=-1), last


#: With several devices (one process), the prompts of a forward batch are split over them by
#: [`infograv.parallel.data_parallel`][] (each prompt's forward pass whole on one device).
_SHARD = True


def _last_hidden_batch(model: LanguageModel, tokens: jax.Array, lengths: jax.Array
                       ) -> tuple[jax.Array, jax.Array]:
    """`_last_hidden`, data-parallel over the prompts when there are several devices (the
    weights are replicated once per model and mesh, then reused)."""
    from ..parallel._data import batch_mesh, data_parallel, splits_locally

    if not (_SHARD and splits_locally()):
        return _last_hidden(model.weights, tokens, lengths)
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = batch_mesh()
    key = (id(model.weights), *(int(d.id) for d in mesh.devices.flat))
    cached = model._replicated
    if cached is None or cached[0] != key:
        repl = NamedSharding(mesh, PartitionSpec())
        placed = jax.tree_util.tree_map(
            lambda x: jax.device_put(x, repl) if eqx.is_array(x) else x, model.weights)
        cached = (key, placed)
        model._replicated = cached
    return data_parallel(_last_hidden, batch_argnums=(1, 2), mesh=mesh)(cached[1], tokens,
                                                                         lengths)


@eqx.filter_jit
def _head_norm(weights: DecoderWeights, h: jax.Array) -> jax.Array:
    return final_norm(weights, h)


@eqx.filter_jit
def _all_layers(weights: DecoderWeights, tokens: jax.Array) -> jax.Array:
    out = decoder_forward(weights, tokens, collect_layers=True)
    return jnp.concatenate([out["layers"][:, 0], out["hidden"][None, 0]], axis=0)


@eqx.filter_jit
def _token_logprobs(weights: DecoderWeights, tokens: jax.Array) -> jax.Array:
    h = decoder_forward(weights, tokens)["hidden"][:, :-1]
    logits = output_logits(weights, h)
    target = jnp.take_along_axis(logits, tokens[:, 1:, None], axis=-1)[..., 0]
    return target - jax.scipy.special.logsumexp(logits, axis=-1)


def _pick(
    weights: DecoderWeights,
    h: jax.Array,
    key: jax.Array,
    temperature: jax.Array,
    top_k: jax.Array,
    top_p: jax.Array,
    greedy: bool,
    truncate: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    logits = output_logits(weights, h)
    logp = jax.nn.log_softmax(logits, axis=-1)
    ent = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    if greedy:
        tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    elif truncate:
        z = filter_logits(logits, temperature, top_k, top_p)
        tok = jax.random.categorical(key, z, axis=-1).astype(jnp.int32)
    else:  # no top-k / top-p: skip the sort over the vocabulary
        tok = jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)
    lp = jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0]
    return tok, lp, ent


@eqx.filter_jit
def _generate_core(
    weights: DecoderWeights,
    tokens: jax.Array,
    n_pad: jax.Array,
    key: jax.Array,
    temperature: jax.Array,
    top_k: jax.Array,
    top_p: jax.Array,
    n_new: int,
    greedy: bool,
    truncate: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Prefill left-padded prompts `(B, T)`, then draw `n_new` tokens with the cache."""
    t = tokens.shape[1]
    out = decoder_forward(weights, tokens, n_pad, return_cache=True)
    h0 = out["hidden"][:, -1]
    keys = jax.random.split(key, n_new)
    tok0, lp0, ent0 = _pick(weights, h0, keys[0], temperature, top_k, top_p, greedy, truncate)

    def step(carry, k):
        tok, slot, caches = carry
        h, caches = decode_step(weights, tok, slot, n_pad, caches)
        nxt, lp, ent = _pick(weights, h, k, temperature, top_k, top_p, greedy, truncate)
        return (nxt, slot + 1, caches), (nxt, h, lp, ent)

    carry = (tok0, jnp.asarray(t, dtype=jnp.int32), pad_caches(out["cache"], n_new - 1))
    _, (toks, hs, lps, ents) = jax.lax.scan(step, carry, keys[1:])
    toks = jnp.concatenate([tok0[None], toks], axis=0).T
    hs = jnp.concatenate([h0[None], hs], axis=0).transpose(1, 0, 2)
    lps = jnp.concatenate([lp0[None], lps], axis=0).T
    ents = jnp.concatenate([ent0[None], ents], axis=0).T
    return toks, hs, lps, ents


class LanguageModel:
    """A causal language model: tokenizer, weights and jitted JAX forward passes.

    Made by `load_language_model`. The weights are a pytree (`model.weights`) passed as an
    argument to every compiled function; prompts are padded to a length bucket (`BUCKETS`) and
    batches to a power of two, so calls with new prompts do not recompile.

    Real semantic space (formalism §8): `embedding` is the output matrix $W$
    `(V, d)` (the tied token embedding for SmolLM2 and Gemma 3), the query position is the final
    hidden state $h$ after the final norm, and the real logits are $z_i = h \\cdot w_i$.

    Attributes:
        name: the artifact name (`"smollm2"`, `"gemma3-270m"`) or the file / folder stem.
        path: the GGUF file or the Hugging Face folder.
        config: the `DecoderConfig`.
        weights: the `DecoderWeights`.
        tokenizer: a `tokenizers.Tokenizer` with the model's ids.

    Example:
        ```python
        from infograv import lm
        model = lm.load_language_model("smollm2")
        logp, h = model.next_token_logprobs(["The capital of France is"])
        model.decode([int(logp[0].argmax())])   # ' Paris'
        ```
    """

    def __init__(
        self,
        name: str,
        path: Path,
        config: DecoderConfig,
        weights: DecoderWeights,
        tokenizer: Any,
        batch_size: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}.")
        self.name = name
        self.path = path
        self.config = config
        self.weights = weights
        self._replicated: tuple[tuple[int, ...], Any] | None = None  # weights on every device
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LanguageModel({self.name!r}, layers={c.n_layers}, d={c.d_model}, "
            f"vocab={c.vocab_size}, dtype={self.weights.embedding.dtype})"
        )

    # -- tokenizer ---------------------------------------------------------------------------
    @property
    def embedding(self) -> Float[Array, "V d"]:
        """The output matrix `W`, shape `(V, d)` (the tied embedding when the model ties them):
        the real semantic space."""
        return self.weights.head

    @property
    def document_start(self) -> int | None:
        """The id that starts a document when the tokenizer adds none: `<|endoftext|>` for
        SmolLM2-style vocabularies, else `bos_id`; `None` when `encode` already adds BOS."""
        if self.config.add_bos:
            return None
        vocab = self.tokenizer.get_vocab()
        return int(vocab.get("<|endoftext|>", self.config.bos_id))

    @property
    def vocab_size(self) -> int:
        """`V`."""
        return self.config.vocab_size

    @property
    def context_length(self) -> int:
        """The longest sequence (prompt plus generated tokens) accepted."""
        return self.config.context_length

    def encode(self, text: str) -> list[int]:
        """The token ids the model sees for `text`.

        BOS is put first exactly when the tokenizer's own metadata says so
        (`tokenizer.ggml.add_bos_token` in a GGUF, the post-processor of a `tokenizer.json`):
        Gemma 3 adds `<bos>`, SmolLM2 adds nothing. Control tokens written in the text
        (`<|im_start|>`, `<start_of_turn>`) map to their ids.
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}.")
        ids = list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return [self.config.bos_id, *ids] if self.config.add_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token `ids` (special tokens are kept)."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_strings(self, ids: Sequence[int] | None = None) -> list[str]:
        """The decoded text of each single token (all `V` when `ids` is `None`)."""
        ids = range(self.vocab_size) if ids is None else ids
        return [self.tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]

    def chat_prompt(self, message: str, *, system: str = _SYSTEM) -> str:
        """`message` wrapped in the model's chat template, ready for the assistant's answer.

        SmolLM2 (the template stored in its GGUF): a system turn (by default the template's own
        system text), the user turn, then `<|im_start|>assistant\\n`. Gemma: the user turn
        `<start_of_turn>user\\n…<end_of_turn>\\n` (the system text, if given, first in it) and
        `<start_of_turn>model\\n`.
        """
        if "<start_of_turn>" in self.tokenizer.get_vocab():
            head = "" if system == _SYSTEM else f"{system}\n\n"
            return f"<start_of_turn>user\n{head}{message}<end_of_turn>\n<start_of_turn>model\n"
        return (
            f"<|im_start|>system\n{system}<|im_end|>\n"
            f"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
        )

    def _ids(self, prompt: str, *, reserve: int = 0, what: str = "prompt") -> list[int]:
        if not isinstance(prompt, str):
            raise TypeError(f"{what}: expected a str, got {type(prompt).__name__}.")
        ids = self.encode(prompt)
        if not ids:
            raise ValueError(f"{what}: empty; give at least one token of text.")
        limit = self.context_length - reserve
        if len(ids) > limit:
            extra = f" minus {reserve} new tokens" if reserve else ""
            raise ValueError(
                f"{what}: {len(ids)} tokens exceed the context limit of {limit} tokens "
                f"({self.context_length}{extra}); shorten it."
            )
        return ids

    def _pad(self, rows: list[list[int]], t: int) -> np.ndarray:
        out = np.full((len(rows), t), self.config.pad_id, dtype=np.int32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    # -- forward passes ------------------------------------------------------------------------
    def next_token_logprobs(
        self, prompts: Sequence[str]
    ) -> tuple[Float[Array, "B V"], Float[Array, "B d"]]:
        """Next-token log-probabilities (natural log) and final hidden states for each prompt.

        Args:
            prompts: `B` non-empty texts, each at most `context_length` tokens (a single
                `str` is taken as one prompt).

        Returns:
            `logp` `(B, V)` with `logsumexp(logp[b]) == 0`, and `hidden` `(B, d)`: the final
            hidden state at each prompt's last token after the final norm, so that
            `logp = log_softmax(hidden @ embedding.T)`.

        Raises:
            ValueError: no prompts, an empty prompt, or one longer than the context.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise ValueError("prompts: need at least one prompt.")
        ids = [self._ids(p, what=f"prompts[{i}]") for i, p in enumerate(prompts)]
        return self.next_token_logprobs_ids(ids)

    def next_token_logprobs_ids(
        self, token_ids: Sequence[Sequence[int]]
    ) -> tuple[Float[Array, "B V"], Float[Array, "B d"]]:
        """`next_token_logprobs` for prompts given as token ids (no re-tokenisation).

        Raises:
            ValueError: no prompts, an empty one, one longer than the context, or an id
                outside `[0, V)`.
        """
        if len(token_ids) == 0:
            raise ValueError("token_ids: need at least one prompt.")
        ids = []
        for i, r in enumerate(token_ids):
            r = [int(x) for x in r]
            if not r:
                raise ValueError(f"token_ids[{i}]: empty; give at least one token.")
            if len(r) > self.context_length:
                raise ValueError(
                    f"token_ids[{i}]: {len(r)} tokens exceed the context limit of "
                    f"{self.context_length} tokens; shorten it."
                )
            if min(r) < 0 or max(r) >= self.vocab_size:
                raise ValueError(f"token_ids[{i}]: ids must lie in [0, {self.vocab_size}).")
            ids.append(r)
        logps, hs = [], []
        for s in range(0, len(ids), self.batch_size):
            chunk = ids[s : s + self.batch_size]
            t = bucket_length(max(len(r) for r in chunk), self.context_length)
            nb = _batch_bucket(len(chunk))
            rows = chunk + [[self.config.pad_id]] * (nb - len(chunk))
            lengths = np.asarray([len(r) for r in rows], dtype=np.int32)
            lp, h = _last_hidden_batch(
                self, jnp.asarray(self._pad(rows, t)), jnp.asarray(lengths)
            )
            logps.append(lp[: len(chunk)])
            hs.append(h[: len(chunk)])
        return jnp.concatenate(logps, axis=0), jnp.concatenate(hs, axis=0)

    def hidden_states(self, prompt: str) -> Float[Array, "layers_plus_one L d"]:
        """Hidden states at every layer for each token of `prompt`.

        Returns:
            `(n_layers + 1, L, d)`: entry 0 is the token embedding, entry `i` the output of
            block `i` (`1 <= i < n_layers`), and entry `n_layers` the output of the last block
            after the final norm (the convention of Hugging Face `output_hidden_states`).
        """
        ids = self._ids(prompt)
        t = bucket_length(len(ids), self.context_length)
        out = _all_layers(self.weights, jnp.asarray(self._pad([ids], t)))
        return out[:, : len(ids), :]

    def sequence_logprobs(
        self, text: str, *, start_token: int | None = None
    ) -> Float[Array, " n"]:
        r"""Log-probability (natural log) of each token of `text` given its prefix.

        Entry `k - 1` is $\log P(t_k \mid t_{<k})$ for the tokens $t_0 \dots t_{n-1}$ of `text`,
        so the result has `n - 1` entries (the first token has no prefix). With `start_token`
        (e.g. `0`, `<|endoftext|>`, the document separator SmolLM2 was trained with) that token
        is prepended and all `n` tokens are scored (for a model whose `encode` puts BOS first,
        such as Gemma 3, the first of the `n` tokens is BOS and every text token is scored
        already). Perplexity is `exp(-mean(result))`.

        Raises:
            ValueError: empty text, fewer than two tokens to score, or longer than the context.
        """
        return jnp.asarray(self.sequence_logprobs_many([text], start_token=start_token)[0])

    def sequence_logprobs_many(
        self, texts: Sequence[str], *, start_token: int | None = None
    ) -> list[np.ndarray]:
        """`sequence_logprobs` for many texts, batched (one array per text, as NumPy).

        Texts are grouped so that one call scores at most ~1024 positions (the `(B, T, V)`
        logits stay below ~200 MB in float32).
        """
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise ValueError("texts: need at least one text.")
        rows = []
        for i, text in enumerate(texts):
            what = "text" if len(texts) == 1 else f"texts[{i}]"
            ids = self._ids(text, what=what)
            if start_token is not None:
                if not 0 <= int(start_token) < self.vocab_size:
                    raise ValueError(f"start_token: must be in [0, {self.vocab_size}).")
                ids = [int(start_token), *ids]
                if len(ids) > self.context_length:
                    raise ValueError(
                        f"{what}: exceeds the context limit of {self.context_length} tokens."
                    )
            if len(ids) < 2:
                raise ValueError(f"{what}: need at least two tokens (or a start_token) to score.")
            rows.append(ids)
        order = sorted(range(len(rows)), key=lambda k: len(rows[k]))
        out: list[np.ndarray] = [np.empty(0)] * len(rows)
        s = 0
        while s < len(order):
            t = bucket_length(len(rows[order[s]]), self.context_length)
            cap = max(1, min(self.batch_size, 1024 // t))
            group: list[int] = []
            while s < len(order) and len(group) < cap and len(rows[order[s]]) <= t:
                group.append(order[s])
                s += 1
            nb = _batch_bucket(len(group))
            batch = [rows[k] for k in group] + [[self.config.pad_id]] * (nb - len(group))
            lp = np.asarray(_token_logprobs(self.weights, jnp.asarray(self._pad(batch, t))))
            for r, k in enumerate(group):
                out[k] = lp[r, : len(rows[k]) - 1]
        return out

    def surprisal_bits(
        self, text: str, *, start_token: int | None | str = "document"
    ) -> float:
        r"""Total information of `text` under the model, in bits (the `lm_surprisal` mass).

        $M = \sum_k -\log_2 P(t_k \mid t_{<k})$ over all tokens of `text`, each conditioned on
        the start of a document and its prefix (formalism §2). The default
        `start_token="document"` uses `document_start`: id 0 (`<|endoftext|>`, the document
        separator) for SmolLM2, nothing for models whose `encode` already puts BOS first
        (Gemma 3). An int prepends that id; `None` leaves the first token unscored. For many
        texts use `surprisal_bits_many` (batched).
        """
        return float(self.surprisal_bits_many([text], start_token=start_token)[0])

    def surprisal_bits_many(
        self, texts: Sequence[str], *, start_token: int | None | str = "document"
    ) -> np.ndarray:
        """`surprisal_bits` of each text, batched; a float64 array `(len(texts),)`."""
        if isinstance(start_token, str):
            if start_token != "document":
                raise ValueError(
                    f"start_token: must be an id, None or 'document', got {start_token!r}."
                )
            start_token = self.document_start
        lps = self.sequence_logprobs_many(texts, start_token=start_token)
        return np.asarray([-np.sum(lp, dtype=np.float64) / np.log(2.0) for lp in lps])

    def semantic_space(self, masses: Any = None, **kwargs: Any) -> Any:
        """The tied embedding as an `infograv.model.SemanticSpace` (formalism §8).

        Token positions are the rows of `embedding`; `masses` and `kwargs` (bandwidth, labels,
        angular, …) are passed on to `SemanticSpace`. The query position that goes with it is the
        `hidden` returned by `next_token_logprobs`.
        """
        from ..model import SemanticSpace

        return SemanticSpace(self.embedding, masses, **kwargs)

    # -- the output head (the real semantic space) ---------------------------------------------
    def final_norm(self, h: Float[Array, "*batch d"]) -> Float[Array, "*batch d"]:
        r"""The head's input transform: the final norm applied to residual-stream states.

        For the llama family $\mathrm{RMSNorm}(h; w_{\mathrm{out}})$; the logits of a residual
        state $x$ are `final_norm(x) @ W.T (+ b)` with `(W, b) = output_head()`. Entry
        `n_layers` of `hidden_states` and the `hidden` of `next_token_logprobs` are already
        normed.

        Args:
            h: `(..., d)` residual-stream states (any leading shape).

        Returns:
            `(..., d)`, the same dtype as the weights; differentiable and jit-compatible.

        Raises:
            ValueError: the last axis is not `d`.

        Example:
            ```python
            hs = model.hidden_states("The capital of France is")   # (n_layers + 1, L, d)
            z = model.final_norm(hs[-2]) @ model.output_head()[0].T
            ```
        """
        h = jnp.asarray(h)
        if h.ndim < 1 or h.shape[-1] != self.config.d_model:
            raise ValueError(
                f"h: the last axis must have length d = {self.config.d_model}, got shape "
                f"{h.shape}."
            )
        return _head_norm(self.weights, h.astype(self.weights.embedding.dtype))

    def output_head(self) -> tuple[Float[Array, "V d"], Float[Array, " V"] | None]:
        r"""The unembedding: `(W, b)` with logits $z = W h + b$ for a normed state $h$.

        Returns:
            `W` `(V, d)` (the tied embedding for SmolLM2 and Gemma 3) and the bias `(V,)` or
            `None`; none of the supported architectures has an output bias.

        Example:
            ```python
            W, b = model.output_head()
            logits = model.next_token_logprobs(["Hi"])[1] @ W.T   # b is None here
            ```
        """
        return self.weights.head, None

    def output_metric(self, temperature: float = 1.0) -> Any:
        """The Fisher metric of the next-token distribution on the hidden state.

        Returns `infograv.geometry._real.OutputMetric.from_language_model(self,
        temperature=temperature)` (imported on first use; see that class for the equation).

        Raises:
            ValueError: from `OutputMetric` for a bad `temperature`.
        """
        from ..geometry._real import OutputMetric

        return OutputMetric.from_language_model(self, temperature=temperature)

    def generation_states(
        self,
        prompt: str,
        n_new: int | np.integer,
        *,
        temperature: float | int | np.floating | np.integer = 0.0,
        seed: int | np.integer = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The generated ids and the final hidden state at each generation step.

        Runs `sample(prompt, n_new, temperature=temperature, seed=seed, stop=False)` (greedy at
        `temperature == 0`) and returns its ids and states: row `k` of `hidden` is the query
        position (after the final norm) from which `ids[k]` was drawn, so that
        `ids[k] == argmax(hidden[k] @ W.T)` when greedy.

        Returns:
            `ids` int `(n_new,)` and `hidden` `(n_new, d)`, as NumPy arrays.

        Raises:
            ValueError: as `sample` (bad `n_new`, temperature, or a prompt too long for
                `n_new` more tokens).

        Example:
            ```python
            ids, h = model.generation_states("The capital of France is", 8)
            h.shape   # (8, 576)
            ```
        """
        g = self.sample(prompt, n_new, temperature=temperature, seed=seed, stop=False)[0]
        return np.asarray(g.token_ids, dtype=np.int64), np.asarray(g.hidden)

    def sample(
        self,
        prompt: str,
        max_new_tokens: int | np.integer,
        *,
        num_samples: int | np.integer = 1,
        temperature: float | int | np.floating | np.integer = 1.0,
        top_k: int | np.integer | None = None,
        top_p: float | int | np.floating | None = None,
        seed: int | np.integer = 0,
        stop: bool = True,
    ) -> list[Generation]:
        """Draw `num_samples` continuations of `prompt` in parallel (one compiled loop).

        Sampling: `temperature == 0` is greedy (argmax); otherwise logits are divided by the
        temperature, truncated by `top_k` / `top_p` (`filter_logits`), and a token is drawn with
        `jax.random.categorical` from `jax.random.key(seed)`: the same seed gives the same
        tokens. Keys and values are cached, so each new token costs one position.

        Args:
            prompt: non-empty text; with the new tokens it must fit the context.
            max_new_tokens: number of tokens to draw (>= 1).
            num_samples: continuations drawn in parallel.
            temperature: `>= 0`.
            top_k: keep the `k` most likely tokens (`None`: all).
            top_p: keep the smallest most-likely set with probability `>= top_p` (`None`: 1).
            seed: the random seed.
            stop: cut each continuation at the first stop token (`<|endoftext|>`,
                `<|im_end|>`); otherwise return all `max_new_tokens`.

        Returns:
            A list of `num_samples` `Generation`s.

        Raises:
            ValueError: a bad setting (named), empty or too long prompt.
        """
        max_new_tokens, num_samples = self._check_settings(
            max_new_tokens, num_samples, temperature, top_k, top_p
        )
        ids = self._ids(prompt, reserve=max_new_tokens)
        return self._draw([ids] * num_samples, max_new_tokens, temperature, top_k, top_p,
                          seed, stop)

    def sample_many(
        self,
        prompts: Sequence[str],
        max_new_tokens: int | np.integer,
        *,
        temperature: float | int | np.floating | np.integer = 1.0,
        top_k: int | np.integer | None = None,
        top_p: float | int | np.floating | None = None,
        seed: int | np.integer = 0,
        stop: bool = True,
    ) -> list[Generation]:
        """One continuation of each of several DIFFERENT prompts, drawn together in one batch.

        The prompts are padded on the left to a common length bucket; each row's positions
        start at 0 at its first real token and its pads are masked out of attention, so a
        greedy batch gives the same ids (and, up to rounding, the same states) as the prompts
        one at a time. Sampled tokens depend on the seed and on the batch (each row draws its
        own random numbers from the step's key). Arguments as in `sample`.

        Returns:
            A list with one `Generation` per prompt, in order.

        Raises:
            ValueError: no prompts, or as `sample`.

        Example:
            ```python
            gens = model.sample_many(["The capital of France is", "2 + 2 ="], 5, temperature=0)
            [g.text for g in gens]
            ```
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise ValueError("prompts: need at least one prompt.")
        max_new_tokens = self._check_settings(max_new_tokens, 1, temperature, top_k, top_p)[0]
        rows = [self._ids(p, reserve=max_new_tokens, what=f"prompts[{i}]")
                for i, p in enumerate(prompts)]
        return self._draw(rows, max_new_tokens, temperature, top_k, top_p, seed, stop)

    def _check_settings(
        self, max_new_tokens: Any, num_samples: Any, temperature: Any, top_k: Any, top_p: Any
    ) -> tuple[int, int]:
        max_new_tokens, num_samples = _as_int(max_new_tokens), _as_int(num_samples)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be an int >= 1, got {max_new_tokens!r}.")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples: must be an int >= 1, got {num_samples!r}.")
        if not float(temperature) >= 0:
            raise ValueError(f"temperature: must be >= 0, got {temperature}.")
        top_k = None if top_k is None else _as_int(top_k)
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k: must be None or an int >= 1, got {top_k!r}.")
        if top_p is not None and not 0 < float(top_p) <= 1:
            raise ValueError(f"top_p: must be None or in (0, 1], got {top_p}.")
        return max_new_tokens, num_samples

    def _draw(
        self,
        rows: list[list[int]],
        max_new_tokens: int,
        temperature: Any,
        top_k: Any,
        top_p: Any,
        seed: Any,
        stop: bool,
    ) -> list[Generation]:
        top_k = None if top_k is None else _as_int(top_k)
        top_p = None if top_p is None else float(top_p)
        temperature, seed = float(temperature), _as_int(seed)
        n = len(rows)
        t = bucket_length(max(len(r) for r in rows), self.context_length)
        nb = _batch_bucket(n)
        rows_b = rows + [rows[-1]] * (nb - n)
        tokens = np.full((nb, t), self.config.pad_id, dtype=np.int32)
        n_pad = np.asarray([t - len(r) for r in rows_b], dtype=np.int32)
        for i, r in enumerate(rows_b):
            tokens[i, t - len(r):] = r
        dt = self.weights.embedding.dtype
        greedy = temperature == 0
        toks, hs, lps, ents = _generate_core(
            self.weights,
            jnp.asarray(tokens),
            jnp.asarray(n_pad),
            jax.random.key(seed),
            jnp.asarray(1.0 if greedy else temperature, dtype=dt),
            jnp.asarray(self.vocab_size if top_k is None else min(top_k, self.vocab_size),
                        dtype=jnp.int32),
            jnp.asarray(1.0 if top_p is None else top_p, dtype=dt),
            max_new_tokens,
            greedy,
            top_k is not None or top_p is not None,
        )
        toks_np, hs_np, lps_np, ents_np = (np.asarray(a) for a in (toks, hs, lps, ents))
        settings = {"temperature": float(temperature), "top_k": top_k, "top_p": top_p,
                    "seed": int(seed), "max_new_tokens": max_new_tokens}
        out = []
        stops = set(self.config.stop_ids)
        for b in range(n):
            row = [int(x) for x in toks_np[b]]
            k, reason = len(row), "length"
            if stop:
                for j, x in enumerate(row):
                    if x in stops:
                        k, reason = j, "stop_token"
                        break
            out.append(
                Generation(
                    prompt_ids=rows[b], token_ids=row[:k], text=self.decode(row[:k]),
                    hidden=hs_np[b, :k], logprobs=lps_np[b, :k], entropies=ents_np[b, :k],
                    stop_reason=reason, settings=settings,
                )
            )
        return out

    def generate(
        self,
        prompt: str,
        max_new_tokens: int | np.integer,
        *,
        temperature: float | int | np.floating | np.integer = 1.0,
        top_k: int | np.integer | None = None,
        top_p: float | int | np.floating | None = None,
        seed: int | np.integer = 0,
        stop: bool = True,
    ) -> Generation:
        """One continuation of `prompt`; see `sample` for the arguments.

        Example:
            ```python
            g = model.generate("The capital of France is", 5, temperature=0)
            g.text, g.hidden.shape   # (' Paris. …', (n, 576))
            ```
        """
        return self.sample(
            prompt, max_new_tokens, num_samples=1, temperature=temperature, top_k=top_k,
            top_p=top_p, seed=seed, stop=stop,
        )[0]


def _tensors_cached(
    name: str, path: Path, contents_reader: Any, cache: Path | None
) -> GGUFContents:
    """Dequantised tensors, from an `.npz` in the cache when the file is the pinned artifact."""
    spec = ARTIFACTS[name]
    pinned_file = spec.files[spec.primary]  # type: ignore[index]
    if cache is None or path.stat().st_size != pinned_file.size:
        return contents_reader(path, tensors=True)
    if file_sha256(path) != pinned_file.sha256:
        return contents_reader(path, tensors=True)
    npz = cache / name / f"dequantised-{pinned_file.sha256[:16]}.npz"
    meta = contents_reader(path, tensors=False)
    if npz.is_file():
        try:
            with open(npz, "rb") as fh, np.load(fh) as z:
                tensors = {k: z[k] for k in z.files}
            return dataclasses.replace(meta, tensors=tensors)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            npz.unlink(missing_ok=True)  # damaged cache: rebuild it below
    full = contents_reader(path, tensors=True)
    try:
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as out:
                np.savez(out, **full.tensors)
            os.chmod(tmp, 0o644)
    except OSError:
        pass  # a read-only cache only costs speed
    return full


def _gguf_tokenizer(contents: GGUFContents) -> Any:
    if contents.tokenizer_model == "llama":
        unk = int(contents.metadata.get("tokenizer.ggml.unknown_token_id", 0))
        return build_spm_tokenizer(contents.tokens, contents.scores, contents.token_types,
                                   unk_id=unk)
    if contents.tokenizer_model == "gpt2":
        return build_bpe_tokenizer(contents.tokens, contents.merges, contents.token_types,
                                   pre=contents.pre_tokenizer)
    raise ValueError(
        f"tokenizer: GGUF tokenizer model {contents.tokenizer_model!r} is not supported "
        "(supported: 'gpt2' byte-level BPE, 'llama' SentencePiece-style)."
    )


def _load_hf(folder: Path, dtype: Any) -> tuple[DecoderConfig, DecoderWeights, Any]:
    from ._hf import config_from_hf, read_hf_folder, read_hf_tensors, weights_from_hf

    cfg, tok = read_hf_folder(folder)
    config = config_from_hf(cfg, tok.get_vocab_size(), str(folder))
    with_special = tok.encode("a", add_special_tokens=True).ids
    plain = tok.encode("a", add_special_tokens=False).ids
    add_bos = len(with_special) > len(plain) and with_special[1:] == plain
    ends = [i for t in ("<|endoftext|>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>")
            if (i := tok.token_to_id(t)) is not None]
    config = dataclasses.replace(
        config, add_bos=add_bos, bos_id=with_special[0] if add_bos else config.bos_id,
        stop_ids=tuple(sorted({*config.stop_ids, *ends})),
    )
    weights = weights_from_hf(config, read_hf_tensors(folder), dtype)
    return config, weights, tok


def load_language_model(
    name: str | os.PathLike[str] = "smollm2",
    path: str | os.PathLike[str] | None = None,
    *,
    dtype: Any = jnp.float32,
    batch_size: int = 16,
    cache_weights: bool = True,
) -> LanguageModel:
    """Load a causal language model into JAX: a built-in name, a GGUF file or a HF folder.

    `name` is one of `LANGUAGE_MODELS` (`"smollm2"`, `"gemma3-270m"`: the file is found with
    `locate(name, path)` and its checksum verified), or a path: a `.gguf` file, or a Hugging
    Face model folder (`config.json`, `*.safetensors` with or without an index,
    `tokenizer.json`). The architecture is read from the file's metadata (`LanguageModel`
    lists the supported ones); GGUF weights are dequantised with the `gguf` package, the
    tokenizer is rebuilt with `tokenizers`. For a pinned artifact the dequantised float32
    weights are kept as an `.npz` in the cache folder and reused (`cache_weights=False`
    disables this).

    Args:
        name: a built-in name or a path (see above).
        path: with a built-in `name`, an explicit GGUF file to use instead of the artifact
            (any model of a supported architecture, e.g. a test model).
        dtype: the float dtype of the weights and the computation (`float32`; `float64` for
            reference checks; `bfloat16` trades accuracy for speed).
        batch_size: the most prompts run in one call of the compiled forward pass.
        cache_weights: reuse / write the dequantised-weights cache.

    Returns:
        A `LanguageModel`.

    Raises:
        ValueError: an unknown name that is not an existing path (the valid names are
            listed), an unsupported architecture (the supported ones are listed), or an
            unreadable file.
        ArtifactNotFoundError: a built-in model is not on this machine (the message gives
            `infograv fetch NAME`).
        ChecksumError: the artifact is corrupt or truncated.

    Example:
        ```python
        from infograv import lm
        model = lm.load_language_model("gemma3-270m")
        model.generate("The capital of France is", 3, temperature=0).text
        ```
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype: must be a float dtype, got {dtype}.")
    key = os.fspath(name)
    if key in LANGUAGE_MODELS:
        file = locate(key, path)
        cache = cache_dir() if cache_weights else None
        contents = _tensors_cached(key, Path(file), read_gguf, cache)
        label = key if path is None else Path(file).stem
    else:
        given = Path(key).expanduser()
        if path is not None or not given.exists():
            raise ValueError(
                f"name: {key!r} is neither a built-in language model {list(LANGUAGE_MODELS)} nor "
                f"an existing GGUF file or Hugging Face folder (the sentence encoder 'minilm' is "
                f"loaded with load_sentence_encoder). Supported architectures: "
                f"{list(ARCHITECTURES)}."
            )
        if given.is_dir():
            config, weights, tok = _load_hf(given, dtype)
            return LanguageModel(given.name, given, config, weights, tok, batch_size)
        file, label = given, given.stem
        contents = read_gguf(file)
    weights = weights_from_gguf(contents.config, contents.tensors, dtype)
    tok = _gguf_tokenizer(contents)
    return LanguageModel(label, Path(file), contents.config, weights, tok, batch_size)
