r"""The BERT encoder and sentence pooling of all-MiniLM-L6-v2 in JAX, weights as arguments.

Embeddings $x_t = E_{w_t} + P_t + T_0$, then LayerNorm. Each of the layers (post-norm):

$$
\begin{aligned}
x &\leftarrow \mathrm{LN}\big(x + W_o\,\mathrm{Attn}(W_q x + b_q, W_k x + b_k, W_v x + b_v)
      + b_o\big),\\
x &\leftarrow \mathrm{LN}\big(x + W_2\,\mathrm{gelu}(W_1 x + b_1) + b_2\big),
\end{aligned}
$$

with bidirectional attention over the real tokens (padding keys masked), scale $1/\sqrt{h}$ and
the exact (erf) GELU. The sentence embedding is the mean of the last layer over the real tokens,
divided by its Euclidean norm (sentence-transformers' `Pooling(mean)` then `Normalize`).

Reference: J. Devlin et al., "BERT", arXiv:1810.04805 (2019); N. Reimers and I. Gurevych,
"Sentence-BERT", arXiv:1908.10084 (2019); W. Wang et al., "MiniLM", arXiv:2002.10957 (2020).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, Int

__all__ = ["BertConfig", "BertLayers", "BertWeights", "bert_forward", "bert_weights_from_tensors",
           "mean_pool_normalize"]


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Hyperparameters of a BERT encoder (from the model's `config.json`).

    Attributes:
        n_layers, d_model, n_heads, d_ff: depth, width, heads, feed-forward width.
        vocab_size: rows of the token embedding.
        max_positions: rows of the position embedding (the longest input).
        max_seq_length: the sentence encoder truncates inputs to this many tokens
            (`sentence_bert_config.json`; 256 for all-MiniLM-L6-v2).
        norm_eps: LayerNorm epsilon.
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    vocab_size: int
    max_positions: int
    max_seq_length: int
    norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for f in ("n_layers", "d_model", "n_heads", "d_ff", "vocab_size", "max_positions",
                  "max_seq_length"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f}: must be a positive int, got {v!r}.")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: {self.n_heads} does not divide d_model={self.d_model}.")
        if self.max_seq_length > self.max_positions:
            raise ValueError(
                f"max_seq_length: {self.max_seq_length} exceeds max_positions={self.max_positions}."
            )

    @property
    def head_dim(self) -> int:
        """`d_model / n_heads`."""
        return self.d_model // self.n_heads


class BertLayers(eqx.Module):
    """Weights of all layers, stacked on a leading layer axis; matrices are `(out, in)`."""

    wq: Float[Array, "layers d d"]
    bq: Float[Array, "layers d"]
    wk: Float[Array, "layers d d"]
    bk: Float[Array, "layers d"]
    wv: Float[Array, "layers d d"]
    bv: Float[Array, "layers d"]
    wo: Float[Array, "layers d d"]
    bo: Float[Array, "layers d"]
    ln1_w: Float[Array, "layers d"]
    ln1_b: Float[Array, "layers d"]
    w1: Float[Array, "layers f d"]
    b1: Float[Array, "layers f"]
    w2: Float[Array, "layers d f"]
    b2: Float[Array, "layers d"]
    ln2_w: Float[Array, "layers d"]
    ln2_b: Float[Array, "layers d"]


class BertWeights(eqx.Module):
    """All weights of a BERT encoder as a pytree.

    Attributes:
        config: hyperparameters (static).
        word: token embeddings `(V, d)`: the MiniLM token-embedding cloud.
        position: absolute position embeddings `(max_positions, d)`.
        token_type: segment embeddings `(2, d)` (segment 0 is used).
        ln_w, ln_b: the embedding LayerNorm.
        layers: the stacked layer weights.
    """

    config: BertConfig = eqx.field(static=True)
    word: Float[Array, "V d"]
    position: Float[Array, "P d"]
    token_type: Float[Array, "S d"]
    ln_w: Float[Array, " d"]
    ln_b: Float[Array, " d"]
    layers: BertLayers

    def __check_init__(self) -> None:
        c = self.config
        if self.word.shape != (c.vocab_size, c.d_model):
            raise ValueError(
                f"word: expected shape {(c.vocab_size, c.d_model)}, got {self.word.shape}."
            )
        if self.position.shape != (c.max_positions, c.d_model):
            raise ValueError(
                f"position: expected {(c.max_positions, c.d_model)}, got {self.position.shape}."
            )
        if self.layers.wq.shape != (c.n_layers, c.d_model, c.d_model):
            raise ValueError(f"layers.wq: expected {(c.n_layers, c.d_model, c.d_model)}.")
        if self.layers.w1.shape != (c.n_layers, c.d_ff, c.d_model):
            raise ValueError(f"layers.w1: expected {(c.n_layers, c.d_ff, c.d_model)}.")


def bert_weights_from_tensors(
    config: BertConfig, t: dict[str, np.ndarray], dtype: DTypeLike = jnp.float32
) -> BertWeights:
    """Assemble `BertWeights` from Hugging Face `BertModel` tensor names (safetensors).

    Raises:
        ValueError: a tensor is missing (its name is given).
    """
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in t else ""

    def get(name: str) -> np.ndarray:
        key = prefix + name
        if key not in t:
            raise ValueError(f"tensors: the safetensors file has no tensor {key!r}.")
        return t[key]

    def stack(suffix: str) -> jax.Array:
        arr = np.stack([get(f"encoder.layer.{i}.{suffix}") for i in range(config.n_layers)])
        return jnp.asarray(arr, dtype=dtype)

    a = "attention."
    layers = BertLayers(
        wq=stack(a + "self.query.weight"), bq=stack(a + "self.query.bias"),
        wk=stack(a + "self.key.weight"), bk=stack(a + "self.key.bias"),
        wv=stack(a + "self.value.weight"), bv=stack(a + "self.value.bias"),
        wo=stack(a + "output.dense.weight"), bo=stack(a + "output.dense.bias"),
        ln1_w=stack(a + "output.LayerNorm.weight"), ln1_b=stack(a + "output.LayerNorm.bias"),
        w1=stack("intermediate.dense.weight"), b1=stack("intermediate.dense.bias"),
        w2=stack("output.dense.weight"), b2=stack("output.dense.bias"),
        ln2_w=stack("output.LayerNorm.weight"), ln2_b=stack("output.LayerNorm.bias"),
    )
    e = "embeddings."
    return BertWeights(
        config=config,
        word=jnp.asarray(get(e + "word_embeddings.weight"), dtype=dtype),
        position=jnp.asarray(get(e + "position_embeddings.weight"), dtype=dtype),
        token_type=jnp.asarray(get(e + "token_type_embeddings.weight"), dtype=dtype),
        ln_w=jnp.asarray(get(e + "LayerNorm.weight"), dtype=dtype),
        ln_b=jnp.asarray(get(e + "LayerNorm.bias"), dtype=dtype),
        layers=layers,
    )


def _row(v: jax.Array, ndim: int) -> jax.Array:
    return jnp.reshape(v, (1,) * (ndim - 1) + (-1,))


def _layer_norm(x: jax.Array, w: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * _row(w, x.ndim) + _row(b, x.ndim)


def _dense(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.einsum("bti,oi->bto", x, w) + _row(b, 3)


def bert_forward(
    weights: BertWeights, tokens: Int[Array, "B T"], mask: Bool[Array, "B T"]
) -> Float[Array, "B T d"]:
    """The last layer's token states for right-padded `tokens` (`mask` marks real tokens).

    Padding keys are excluded from attention, so the states at real positions do not depend on
    the padding. Weights are an argument: `jax.jit(bert_forward)` compiles once per shape.
    """
    c = weights.config
    b, t = tokens.shape
    nh, hd = c.n_heads, c.head_dim
    x = (
        jnp.take(weights.word, tokens, axis=0)
        + weights.position[None, :t, :]
        + weights.token_type[None, 0:1, :]
    )
    x = _layer_norm(x, weights.ln_w, weights.ln_b, c.norm_eps)
    keymask = mask[:, None, None, :]

    def step(x, lw):
        q = _dense(x, lw.wq, lw.bq).reshape(b, t, nh, hd)
        k = _dense(x, lw.wk, lw.bk).reshape(b, t, nh, hd)
        v = _dense(x, lw.wv, lw.bv).reshape(b, t, nh, hd)
        s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / float(np.sqrt(hd))
        s = jnp.where(keymask, s, -jnp.inf)
        p = jax.nn.softmax(s, axis=-1)
        o = jnp.einsum("bhqk,bkhd->bqhd", p, v).reshape(b, t, c.d_model)
        x = _layer_norm(x + _dense(o, lw.wo, lw.bo), lw.ln1_w, lw.ln1_b, c.norm_eps)
        f = jax.nn.gelu(_dense(x, lw.w1, lw.b1), approximate=False)
        x = _layer_norm(x + _dense(f, lw.w2, lw.b2), lw.ln2_w, lw.ln2_b, c.norm_eps)
        return x, None

    x, _ = jax.lax.scan(step, x, weights.layers)
    return x


def mean_pool_normalize(
    states: Float[Array, "B T d"], mask: Bool[Array, "B T"]
) -> Float[Array, "B d"]:
    r"""Mean over real tokens, then $v / \max(\lVert v \rVert, 10^{-12})$ (unit vectors).

    Example:
        >>> import jax.numpy as jnp
        >>> states = jnp.array([[[3.0, 0.0], [0.0, 4.0], [9.0, 9.0]]])
        >>> mask = jnp.array([[True, True, False]])   # the third token is padding
        >>> mean_pool_normalize(states, mask).tolist()   # mean (1.5, 2), norm 2.5
        [[0.6000000238418579, 0.800000011920929]]
    """
    m = mask.astype(states.dtype)[:, :, None]
    mean = jnp.sum(states * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)
    norm = jnp.linalg.norm(mean, axis=-1, keepdims=True)
    return mean / jnp.maximum(norm, 1e-12)
