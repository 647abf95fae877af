r"""One forward pass for decoder-only transformers (llama, Qwen2, Mistral, Gemma 3, GPT-2), in JAX.

The architectures differ only in a few switches of `DecoderConfig`; they share every layer
(norms, rotary embedding, grouped-query attention with causal, padding and sliding-window
masks, the key/value cache). One block, for the residual stream $x \in \mathbb{R}^{L \times d}$:

$$
\begin{aligned}
a &= N_a(x), \quad
o = W_o\,\mathrm{Attn}\big(R(\hat q), R(\hat k), v\big) + b_o, \quad
x \leftarrow x + P_a(o), \\
f &= N_f(x), \quad
x \leftarrow x + P_f\big(W_{\mathrm{down}}\,\phi(f) + b_{\mathrm{down}}\big),
\end{aligned}
$$

with $q = W_q a + b_q$ (likewise $k, v$), $\hat q = N_q(q)$ per head when the model has q/k
norms (Gemma 3), otherwise $\hat q = q$; $P_a, P_f$ the post-attention / post-feed-forward norms
of Gemma 3 (identity elsewhere); the feed-forward $\phi(f) = \mathrm{silu}(W_g f) \odot W_u f$
(llama family), $\mathrm{gelu_{tanh}}(W_g f) \odot W_u f$ (Gemma 3) or
$\mathrm{gelu_{tanh}}(W_u f + b_u)$ (GPT-2). $N$ is RMSNorm $x / \sqrt{\overline{x^2} +
\epsilon} \odot w$ (llama, Gemma 3; Gemma's stored $1 + w$ convention is resolved when the
weights are loaded) or LayerNorm with bias (GPT-2). Attention is causal over positions,
grouped (query head $j$ reads key/value head $\lfloor j / (H / H_{kv}) \rfloor$), scaled by
`attn_scale` ($1/\sqrt{h}$ by default), and on a *local* layer (Gemma 3) limited to keys
at most `sliding_window - 1` positions back. $R$ is the rotary embedding: on adjacent pairs
$(2i, 2i + 1)$ for llama GGUF files (whose q/k rows the conversion permuted), on the two halves
$(i, i + h/2)$ otherwise, by the angle $t\, b^{-2i/h}$ at position $t$ (base $b$ = `rope_base`,
or `rope_base_local` on local layers); GPT-2 adds learned position vectors instead. The input
is the token embedding times `embed_scale` ($\sqrt d$ for Gemma 3); after the last block
$h = N_{\mathrm{out}}(x)$ and the logits are $z = W h$ with $W$ the tied embedding or a separate
unembedding.

Padding: every query row $(b, s)$ has a position `positions[b, s]`; a key slot $t$ is visible
when `key_valid[b, t]`, its position is at most the query's and (local layers) within the
window. Right padding needs no key mask (pads come later than every real token); left padding
(different prompts generated together) masks the leading pads. Masked scores are set to the
dtype's lowest finite value, not $-\infty$, so rows made only of pads stay finite.

The blocks are a Python tuple and the forward pass is unrolled over them: with the layers
stacked and run by `lax.scan`, XLA materialises a copy of every layer's weight slice before its
matrix products (a `dynamic-slice` fusion in the compiled module), which doubled the cost of a
decode step.

References: H. Touvron et al., arXiv:2302.13971 (LLaMA); J. Su et al., arXiv:2104.09864
(RoPE); J. Ainslie et al., arXiv:2305.13245 (GQA); Gemma Team, arXiv:2503.19786 (Gemma 3);
A. Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2, 2019).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

__all__ = [
    "ARCHITECTURES",
    "Block",
    "DecoderConfig",
    "DecoderWeights",
    "Norm",
    "apply_rope",
    "decode_step",
    "decoder_forward",
    "output_logits",
    "rms_norm",
    "rope_angles",
]

#: Supported architecture names (GGUF `general.architecture` / Hugging Face `model_type`).
ARCHITECTURES: tuple[str, ...] = ("llama", "mistral", "qwen2", "gemma3", "gpt2")

_NORMS = ("rms", "layer")
_POSITIONS = ("rope_adjacent", "rope_half", "learned")
_FFNS = ("swiglu", "geglu", "gelu_mlp")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Hyperparameters of a decoder-only causal language model.

    Attributes:
        arch: the architecture name (one of `ARCHITECTURES`).
        n_layers: number of blocks.
        d_model: residual width `d`.
        n_heads: query heads.
        n_kv_heads: key/value heads (`n_heads % n_kv_heads == 0`).
        d_ff: feed-forward hidden width.
        vocab_size: `V`.
        context_length: the longest sequence the model was trained for.
        norm_eps: epsilon of every norm.
        rope_base: RoPE base `b` (global layers); pair `i` turns at `b^{-2i/h}`.
        head_dim: per-head width `h`; `0` means `d_model // n_heads`.
        norm: `"rms"` (RMSNorm) or `"layer"` (LayerNorm with bias).
        position: `"rope_adjacent"`, `"rope_half"` or `"learned"` (absolute position vectors).
        rope_base_local: RoPE base of the local (sliding-window) layers; `None`: `rope_base`.
        sliding_window: the window of local layers (a key at most `sliding_window - 1`
            positions back is seen); `None` when no layer is local.
        local_layers: per layer, whether it is local; empty means all global.
        ffn: `"swiglu"`, `"geglu"` (GELU-tanh gated) or `"gelu_mlp"` (GPT-2).
        qk_norm: RMSNorm of each query and key head before RoPE.
        sandwich_norm: norms after attention and after the feed-forward (Gemma 3).
        embed_scale: factor on the token embedding at the input (`sqrt(d)` for Gemma 3).
        attn_scale: factor on the attention scores; `None` means `1/sqrt(head_dim)`.
        bos_id, eos_id, pad_id: special token ids.
        stop_ids: ids that end a generation (end-of-text, end-of-turn).
        add_bos: whether the tokenizer puts `bos_id` before every text.

    Raises:
        ValueError: a non-positive size, indivisible heads, an odd head size with RoPE, an
            unknown switch, or `local_layers` of the wrong length.

    Example:
        >>> c = DecoderConfig(arch="gemma3", n_layers=6, d_model=640, n_heads=4, n_kv_heads=1,
        ...                   d_ff=2048, vocab_size=100, context_length=1024, norm_eps=1e-6,
        ...                   head_dim=256, sliding_window=512,
        ...                   local_layers=tuple((i + 1) % 6 != 0 for i in range(6)))
        >>> c.head_size, [c.is_local(i) for i in range(6)], round(c.scale, 4)
        (256, [True, True, True, True, True, False], 0.0625)
    """

    arch: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    context_length: int
    norm_eps: float
    rope_base: float = 10000.0
    head_dim: int = 0
    norm: str = "rms"
    position: str = "rope_adjacent"
    rope_base_local: float | None = None
    sliding_window: int | None = None
    local_layers: tuple[bool, ...] = ()
    ffn: str = "swiglu"
    qk_norm: bool = False
    sandwich_norm: bool = False
    embed_scale: float = 1.0
    attn_scale: float | None = None
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 2
    stop_ids: tuple[int, ...] = (0, 2)
    add_bos: bool = False

    def __post_init__(self) -> None:
        for f in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                  "context_length"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f}: must be a positive int, got {v!r}.")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch: {self.arch!r} is not supported; supported: {ARCHITECTURES}.")
        for name, value, valid in (("norm", self.norm, _NORMS),
                                   ("position", self.position, _POSITIONS),
                                   ("ffn", self.ffn, _FFNS)):
            if value not in valid:
                raise ValueError(f"{name}: must be one of {valid}, got {value!r}.")
        if self.head_dim == 0 and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}."
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads: n_heads={self.n_heads} is not a multiple of "
                f"n_kv_heads={self.n_kv_heads}."
            )
        if self.position != "learned" and self.head_size % 2:
            raise ValueError(f"head_dim: RoPE needs an even head size, got {self.head_size}.")
        if not self.rope_base > 0 or not self.norm_eps > 0:
            raise ValueError("rope_base and norm_eps: must be positive.")
        if self.local_layers and len(self.local_layers) != self.n_layers:
            raise ValueError(
                f"local_layers: needs one entry per layer ({self.n_layers}), got "
                f"{len(self.local_layers)}."
            )
        if any(self.local_layers) and not (self.sliding_window and self.sliding_window > 0):
            raise ValueError("sliding_window: local layers need a positive window.")

    @property
    def head_size(self) -> int:
        """Per-head width `h` (`head_dim`, or `d_model // n_heads` when that is 0)."""
        return self.head_dim or self.d_model // self.n_heads

    def is_local(self, layer: int) -> bool:
        """Whether block `layer` attends within the sliding window only."""
        return bool(self.local_layers) and self.local_layers[layer]

    @property
    def scale(self) -> float:
        """The factor on attention scores (`attn_scale` or `1/sqrt(h)`)."""
        return self.attn_scale if self.attn_scale is not None else 1.0 / math.sqrt(self.head_size)


class Norm(eqx.Module):
    """An RMSNorm (`b is None`) or LayerNorm weight `w` `(d,)` and bias `b` `(d,)`."""

    w: Float[Array, " d"]
    b: Float[Array, " d"] | None = None


class Block(eqx.Module):
    """The weights of one block (absent parts are `None`).

    Matrices are stored `(in, out)`, so a projection is `x @ W`: XLA's CPU matrix product is
    up to 1.8× faster in this layout for the few rows of a batched decode step than with the
    PyTorch `(out, in)` layout of the files, which the loaders transpose once.
    """

    attn_norm: Norm
    wq: Float[Array, "d hq"]
    wk: Float[Array, "d hkv"]
    wv: Float[Array, "d hkv"]
    wo: Float[Array, "hq d"]
    ffn_norm: Norm
    w_up: Float[Array, "d f"]
    w_down: Float[Array, "f d"]
    w_gate: Float[Array, "d f"] | None = None
    bq: Float[Array, " hq"] | None = None
    bk: Float[Array, " hkv"] | None = None
    bv: Float[Array, " hkv"] | None = None
    bo: Float[Array, " d"] | None = None
    b_up: Float[Array, " f"] | None = None
    b_down: Float[Array, " d"] | None = None
    q_norm: Float[Array, " h"] | None = None
    k_norm: Float[Array, " h"] | None = None
    post_attn_norm: Norm | None = None
    post_ffn_norm: Norm | None = None


class DecoderWeights(eqx.Module):
    """All weights of a decoder model, as a pytree of arrays.

    Attributes:
        config: the hyperparameters (static).
        embedding: the token embedding `(V, d)`.
        blocks: one `Block` per layer.
        final_norm: the norm after the last block.
        unembedding: a separate output matrix `(V, d)`, or `None` when tied to `embedding`.
        positions: learned position vectors `(context_length, d)` (GPT-2), else `None`.

    Raises:
        ValueError: at construction, when a shape disagrees with `config`.
    """

    config: DecoderConfig = eqx.field(static=True)
    embedding: Float[Array, "V d"]
    blocks: tuple[Block, ...]
    final_norm: Norm
    unembedding: Float[Array, "V d"] | None = None
    positions: Float[Array, "ctx d"] | None = None

    def __check_init__(self) -> None:
        c = self.config
        hq, hkv = c.n_heads * c.head_size, c.n_kv_heads * c.head_size
        d, f = c.d_model, c.d_ff
        if tuple(self.embedding.shape) != (c.vocab_size, d):
            raise ValueError(
                f"embedding: expected shape {(c.vocab_size, d)} from the config, got "
                f"{self.embedding.shape}."
            )
        if self.unembedding is not None and tuple(self.unembedding.shape) != (c.vocab_size, d):
            raise ValueError(f"unembedding: expected shape {(c.vocab_size, d)}.")
        if len(self.blocks) != c.n_layers:
            raise ValueError(f"blocks: expected {c.n_layers}, got {len(self.blocks)}.")
        want = {"wq": (d, hq), "wk": (d, hkv), "wv": (d, hkv), "wo": (hq, d), "w_up": (d, f),
                "w_down": (f, d), "w_gate": (d, f), "bq": (hq,), "bk": (hkv,), "bv": (hkv,),
                "bo": (d,), "b_up": (f,), "b_down": (d,), "q_norm": (c.head_size,),
                "k_norm": (c.head_size,)}
        for i, blk in enumerate(self.blocks):
            for name, shape in want.items():
                a = getattr(blk, name)
                if a is not None and tuple(a.shape) != shape:
                    raise ValueError(
                        f"blocks[{i}].{name}: expected shape {shape} from the config, got "
                        f"{a.shape}."
                    )
            if (blk.w_gate is None) != (c.ffn == "gelu_mlp"):
                raise ValueError(f"blocks[{i}].w_gate: must be given exactly when ffn is gated.")

    @property
    def head(self) -> Float[Array, "V d"]:
        """The output matrix `W` (the unembedding, or the tied embedding)."""
        return self.embedding if self.unembedding is None else self.unembedding


def rms_norm(
    x: Float[Array, "*batch d"], w: Float[Array, " d"], eps: float
) -> Float[Array, "*batch d"]:
    r"""$x / \sqrt{\mathrm{mean}(x^2) + \epsilon} \odot w$ over the last axis.

    Example:
        >>> import jax.numpy as jnp
        >>> y = rms_norm(jnp.array([[3.0, 4.0]]), jnp.ones(2), 0.0)
        >>> bool(jnp.allclose(jnp.mean(y**2), 1.0)), bool(jnp.allclose(y[0, 1] / y[0, 0], 4 / 3))
        (True, True)
    """
    ms = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(ms + eps) * _row(w, x.ndim)


def _row(v: jax.Array, ndim: int) -> jax.Array:
    """`v` `(n,)` shaped `(1, …, 1, n)` to broadcast against an `ndim`-array explicitly."""
    return jnp.reshape(v, (1,) * (ndim - 1) + (-1,))


def _norm(x: jax.Array, n: Norm, eps: float) -> jax.Array:
    if n.b is None:
        return rms_norm(x, n.w, eps)
    mu = jnp.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = jnp.mean(jnp.square(xc), axis=-1, keepdims=True)
    return xc * jax.lax.rsqrt(var + eps) * _row(n.w, x.ndim) + _row(n.b, x.ndim)


def rope_angles(
    positions: Int[Array, "*pos"], head_dim: int, base: float, dtype: DTypeLike
) -> tuple[Float[Array, "*pos half"], Float[Array, "*pos half"]]:
    r"""$\cos$ and $\sin$ of $t\, b^{-2i/h}$ for positions $t$ (any shape) and pairs $i < h/2$.

    Returns:
        `(cos, sin)`, each `(*positions.shape, h/2)`, in `dtype`; use with `apply_rope`.
    """
    i = jnp.arange(head_dim // 2, dtype=dtype)
    inv_freq = jnp.power(jnp.asarray(base, dtype=dtype), -2.0 * i / head_dim)
    ang = positions.astype(dtype)[..., None] * _row(inv_freq, positions.ndim + 1)
    return jnp.cos(ang), jnp.sin(ang)


def apply_rope(
    x: Float[Array, "B S heads h"],
    cos: Float[Array, "*BS half"],
    sin: Float[Array, "*BS half"],
    *,
    halves: bool = False,
) -> Float[Array, "B S heads h"]:
    r"""Rotate pairs of each head by the angles of `rope_angles`.

    Pairs are ADJACENT $(x_{2i}, x_{2i+1})$, or with `halves=True` the two halves
    $(x_i, x_{i + h/2})$; each pair $(u, w) \mapsto (u\cos - w\sin,\; u\sin + w\cos)$.

    Args:
        x: `(B, S, heads, h)` queries or keys.
        cos: `(S, h/2)` (shared by the batch) or `(B, S, h/2)` (per row), the cosines.
        sin: the sines, shaped like `cos`.
        halves: the pairing (see above).

    Example:
        >>> import jax.numpy as jnp
        >>> c, s = rope_angles(jnp.arange(2, dtype=jnp.int32), 4, 1e4, jnp.float32)
        >>> x = jnp.zeros((1, 2, 1, 4)).at[..., 0].set(1.0)
        >>> apply_rope(x, c, s)[0, 1, 0].round(4).tolist()  # position 1: angle 1 rad in (0, 1)
        [0.5403000116348267, 0.8414999842643738, 0.0, 0.0]
        >>> apply_rope(x, c, s, halves=True)[0, 1, 0].round(4).tolist()  # in (0, 2)
        [0.5403000116348267, 0.0, 0.8414999842643738, 0.0]
    """
    b, s, n, h = x.shape
    if cos.ndim == 2:
        cos, sin = cos[None], sin[None]
    c = cos[:, :, None, :]
    sn = sin[:, :, None, :]
    if halves:
        x0, x1 = x[..., : h // 2], x[..., h // 2 :]
        return jnp.concatenate([x0 * c - x1 * sn, x0 * sn + x1 * c], axis=-1)
    xp = x.reshape(b, s, n, h // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    out = jnp.stack([x0 * c - x1 * sn, x0 * sn + x1 * c], axis=-1)
    return out.reshape(b, s, n, h)


def _linear(x: jax.Array, w: jax.Array, b: jax.Array | None) -> jax.Array:
    y = jnp.einsum("bsi,io->bso", x, w)
    return y if b is None else y + _row(b, y.ndim)


def _block(
    c: DecoderConfig,
    layer: int,
    x: jax.Array,
    blk: Block,
    rope: dict[bool, tuple[jax.Array, jax.Array]],
    k_cache: jax.Array,
    v_cache: jax.Array,
    start: jax.Array,
    masks: dict[bool, jax.Array],
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One block on `S` new rows; keys/values are written into the caches at slot `start`."""
    b, s, _ = x.shape
    h, nq, nkv = c.head_size, c.n_heads, c.n_kv_heads
    g = nq // nkv
    local = c.is_local(layer)
    a = _norm(x, blk.attn_norm, c.norm_eps)
    q = _linear(a, blk.wq, blk.bq).reshape(b, s, nq, h)
    k = _linear(a, blk.wk, blk.bk).reshape(b, s, nkv, h)
    v = _linear(a, blk.wv, blk.bv).reshape(b, s, nkv, h)
    if blk.q_norm is not None and blk.k_norm is not None:
        q = rms_norm(q, blk.q_norm, c.norm_eps)
        k = rms_norm(k, blk.k_norm, c.norm_eps)
    if c.position != "learned":
        cos, sin = rope[local]
        halves = c.position == "rope_half"
        q = apply_rope(q, cos, sin, halves=halves)
        k = apply_rope(k, cos, sin, halves=halves)
    zero = jnp.zeros((), dtype=jnp.int32)
    idx = (zero, start.astype(jnp.int32), zero, zero)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), idx)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), idx)
    qg = q.reshape(b, s, nkv, g, h)
    scores = jnp.einsum("bskgh,btkh->bkgst", qg, k_cache) * c.scale
    low = jnp.finfo(scores.dtype).min
    scores = jnp.where(masks[local][:, None, None, :, :], scores, low)
    p = jax.nn.softmax(scores, axis=-1)
    o = jnp.einsum("bkgst,btkh->bskgh", p, v_cache).reshape(b, s, nq * h)
    o = _linear(o, blk.wo, blk.bo)
    if blk.post_attn_norm is not None:
        o = _norm(o, blk.post_attn_norm, c.norm_eps)
    x = x + o
    f = _norm(x, blk.ffn_norm, c.norm_eps)
    up = _linear(f, blk.w_up, blk.b_up)
    if c.ffn == "gelu_mlp":
        hid = jax.nn.gelu(up, approximate=True)
    else:
        gate = _linear(f, blk.w_gate, None)  # type: ignore[arg-type]
        act = jax.nn.silu(gate) if c.ffn == "swiglu" else jax.nn.gelu(gate, approximate=True)
        hid = act * up
    y = _linear(hid, blk.w_down, blk.b_down)
    if blk.post_ffn_norm is not None:
        y = _norm(y, blk.post_ffn_norm, c.norm_eps)
    return x + y, k_cache, v_cache


def _masks(
    c: DecoderConfig,
    q_pos: jax.Array,
    k_pos: jax.Array,
    k_valid: jax.Array,
) -> dict[bool, jax.Array]:
    """`(B, S, T)` visibility for global (`False`) and local (`True`) layers."""
    causal = (k_pos[:, None, :] <= q_pos[:, :, None]) & k_valid[:, None, :]
    out = {False: causal}
    if any(c.local_layers):
        assert c.sliding_window is not None
        near = (q_pos[:, :, None] - k_pos[:, None, :]) < c.sliding_window
        out[True] = causal & near
    return out


def _run(
    weights: DecoderWeights,
    tokens: jax.Array,
    q_pos: jax.Array,
    caches: tuple[tuple[jax.Array, jax.Array], ...],
    start: jax.Array,
    k_pos: jax.Array,
    k_valid: jax.Array,
    collect: bool,
) -> tuple[jax.Array, tuple[tuple[jax.Array, jax.Array], ...], list[jax.Array]]:
    c = weights.config
    x = jnp.take(weights.embedding, tokens, axis=0)
    if c.embed_scale != 1.0:
        x = x * jnp.asarray(c.embed_scale, dtype=x.dtype)  # a scalar: no rank promotion
    if weights.positions is not None:
        x = x + jnp.take(weights.positions, q_pos, axis=0)
    rope: dict[bool, tuple[jax.Array, jax.Array]] = {}
    if c.position != "learned":
        rope[False] = rope_angles(q_pos, c.head_size, c.rope_base, x.dtype)
        if any(c.local_layers):
            base = c.rope_base if c.rope_base_local is None else c.rope_base_local
            rope[True] = rope_angles(q_pos, c.head_size, base, x.dtype)
    masks = _masks(c, q_pos, k_pos, k_valid)
    inputs = []
    new_caches = []
    for i, blk in enumerate(weights.blocks):
        if collect:
            inputs.append(x)
        kc, vc = caches[i]
        x, kc, vc = _block(c, i, x, blk, rope, kc, vc, start, masks)
        new_caches.append((kc, vc))
    return x, tuple(new_caches), inputs


def _empty_caches(
    weights: DecoderWeights, b: int, t: int
) -> tuple[tuple[jax.Array, jax.Array], ...]:
    c = weights.config
    z = jnp.zeros((b, t, c.n_kv_heads, c.head_size), dtype=weights.embedding.dtype)
    return tuple((z, z) for _ in range(c.n_layers))


def decoder_forward(
    weights: DecoderWeights,
    tokens: Int[Array, "B T"],
    n_pad: Int[Array, " B"] | None = None,
    *,
    collect_layers: bool = False,
    return_cache: bool = False,
) -> dict[str, Any]:
    """Run the model on padded token ids.

    Args:
        weights: the model weights (a pytree; pass them as an argument to `jit`).
        tokens: `(B, T)` int ids.
        n_pad: `None` for right padding (every row starts at position 0); otherwise `(B,)`
            the number of LEADING pads of each row (left padding): row `b`'s token at column
            `t >= n_pad[b]` has position `t - n_pad[b]` and the pads are invisible.
        collect_layers: also return the residual stream entering every block.
        return_cache: also return the keys/values of all columns (for decoding).

    Returns:
        A dict with `"hidden"`: `(B, T, d)` final hidden states after the final norm; with
        `collect_layers`, `"layers"`: `(n_layers, B, T, d)` inputs of each block (entry 0 is the
        scaled token embedding); with `return_cache`, `"cache"`: per layer `(k, v)`, each
        `(B, T, n_kv, h)`.

    Example:
        ```python
        out = jax.jit(decoder_forward)(model.weights, jnp.zeros((1, 32), jnp.int32))
        logits = output_logits(model.weights, out["hidden"])
        ```
    """
    b, t = tokens.shape
    cols = jnp.arange(t, dtype=jnp.int32)[None, :]
    if n_pad is None:
        pos = jnp.broadcast_to(cols, (b, t))
        valid = jnp.ones((b, t), dtype=bool)
    else:
        npd = n_pad.astype(jnp.int32)[:, None]
        pos = jnp.maximum(cols - npd, 0)
        valid = cols >= npd
    caches = _empty_caches(weights, b, t)
    x, caches, inputs = _run(
        weights, tokens, pos, caches, jnp.zeros((), jnp.int32), pos, valid, collect_layers
    )
    c = weights.config
    out: dict[str, Any] = {"hidden": _norm(x, weights.final_norm, c.norm_eps)}
    if collect_layers:
        out["layers"] = jnp.stack(inputs)
    if return_cache:
        out["cache"] = caches
    return out


def decode_step(
    weights: DecoderWeights,
    token: Int[Array, " B"],
    slot: Int[Array, ""],
    n_pad: Int[Array, " B"],
    caches: tuple[tuple[jax.Array, jax.Array], ...],
) -> tuple[Float[Array, "B d"], tuple[tuple[jax.Array, jax.Array], ...]]:
    """Feed one token per row into cache column `slot` (row `b` at position `slot - n_pad[b]`).

    Keys in columns `n_pad[b] <= t <= slot` are visible (plus the window on local layers).

    Returns:
        The final hidden state after the final norm `(B, d)`, and the updated caches.
    """
    t = caches[0][0].shape[1]
    b = token.shape[0]
    npd = n_pad.astype(jnp.int32)
    slot = slot.astype(jnp.int32)
    cols = jnp.arange(t, dtype=jnp.int32)[None, :]
    k_pos = cols - npd[:, None]
    k_valid = (cols >= npd[:, None]) & (cols <= slot)
    q_pos = jnp.reshape(slot - npd, (b, 1))
    x, caches, _ = _run(weights, token[:, None], q_pos, caches, slot, k_pos, k_valid, False)
    h = _norm(x[:, 0, :], weights.final_norm, weights.config.norm_eps)
    return h, caches


def final_norm(
    weights: DecoderWeights, h: Float[Array, "*batch d"]
) -> Float[Array, "*batch d"]:
    """The norm after the last block (the output head's input transform), on `(..., d)`."""
    return _norm(h, weights.final_norm, weights.config.norm_eps)


def output_logits(
    weights: DecoderWeights, h: Float[Array, "*batch d"]
) -> Float[Array, "*batch V"]:
    r"""Logits $z = W h$ of final (normed) hidden states `(..., d)` → `(..., V)`, with $W$ the
    output matrix (`weights.head`: the unembedding, or the tied embedding)."""
    return h @ weights.head.T


def pad_caches(
    caches: tuple[tuple[jax.Array, jax.Array], ...], extra: int
) -> tuple[tuple[jax.Array, jax.Array], ...]:
    """Append `extra` empty columns to every cache (room for the generated tokens)."""
    width = ((0, 0), (0, extra), (0, 0), (0, 0))
    return tuple((jnp.pad(k, width), jnp.pad(v, width)) for k, v in caches)
