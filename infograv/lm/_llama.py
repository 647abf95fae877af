r"""The llama-architecture forward pass in JAX, with the weights as arguments.

One block, for the residual stream $x \in \mathbb{R}^{L \times d}$:

$$
\begin{aligned}
a &= \mathrm{RMSNorm}(x; w_a), \quad
\mathrm{RMSNorm}(x; w) = \frac{x}{\sqrt{\overline{x^2} + \epsilon}} \odot w, \\
x &\leftarrow x + W_o\,\mathrm{Attn}\big(R(W_q a), R(W_k a), W_v a\big), \\
f &= \mathrm{RMSNorm}(x; w_f), \quad
x &\leftarrow x + W_{\mathrm{down}}\big(\mathrm{silu}(W_{\mathrm{gate}} f)
      \odot W_{\mathrm{up}} f\big),
\end{aligned}
$$

with causal grouped-query attention (query head $j$ reads key/value head
$\lfloor j / (H / H_{kv}) \rfloor$), scale $1/\sqrt{h}$, and the rotary embedding $R$ acting on
ADJACENT pairs $(2i, 2i+1)$ of each head at position $t$ by the angle $t\, b^{-2i/h}$ (the GGUF
conversion permuted $W_q, W_k$ for this convention). After the last block, $h = \mathrm{RMSNorm}(x;
w_{\mathrm{out}})$ and the logits are $z = h E^\top$ with the tied embedding $E$.

Inputs are padded on the right to fixed length buckets: with a causal mask a real position never
sees a pad that follows it, so padding changes nothing at real positions, and every prompt length
up to a bucket reuses one compiled function. The layers are stacked and run with `lax.scan`, so
the compile time does not grow with depth.

Reference: H. Touvron et al., "LLaMA: Open and Efficient Foundation Language Models",
arXiv:2302.13971 (2023); J. Su et al., "RoFormer", arXiv:2104.09864 (2021); J. Ainslie et al.,
"GQA", arXiv:2305.13245 (2023).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from ._gguf import LlamaConfig

__all__ = [
    "LlamaLayers",
    "LlamaWeights",
    "llama_forward",
    "llama_decode_step",
    "rope_angles",
    "apply_rope",
    "rms_norm",
    "weights_from_tensors",
]


class LlamaLayers(eqx.Module):
    """The weights of all blocks, stacked on a leading layer axis (`(out, in)` matrices)."""

    attn_norm: Float[Array, "layers d"]
    wq: Float[Array, "layers hq d"]
    wk: Float[Array, "layers hkv d"]
    wv: Float[Array, "layers hkv d"]
    wo: Float[Array, "layers d hq"]
    ffn_norm: Float[Array, "layers d"]
    w_gate: Float[Array, "layers f d"]
    w_up: Float[Array, "layers f d"]
    w_down: Float[Array, "layers d f"]


class LlamaWeights(eqx.Module):
    """All weights of a llama-architecture model, as a pytree of arrays.

    Attributes:
        config: the hyperparameters (static).
        embedding: the tied token embedding `E`, shape `(V, d)`; logits are `h @ E.T`.
        layers: the stacked block weights.
        final_norm: the RMSNorm weight applied after the last block, shape `(d,)`.

    Raises:
        ValueError: at construction, when a shape disagrees with `config`.
    """

    config: LlamaConfig = eqx.field(static=True)
    embedding: Float[Array, "V d"]
    layers: LlamaLayers
    final_norm: Float[Array, " d"]

    def __check_init__(self) -> None:
        c = self.config
        hq, hkv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
        want = {
            "embedding": (c.vocab_size, c.d_model),
            "final_norm": (c.d_model,),
            "layers.attn_norm": (c.n_layers, c.d_model),
            "layers.wq": (c.n_layers, hq, c.d_model),
            "layers.wk": (c.n_layers, hkv, c.d_model),
            "layers.wv": (c.n_layers, hkv, c.d_model),
            "layers.wo": (c.n_layers, c.d_model, hq),
            "layers.ffn_norm": (c.n_layers, c.d_model),
            "layers.w_gate": (c.n_layers, c.d_ff, c.d_model),
            "layers.w_up": (c.n_layers, c.d_ff, c.d_model),
            "layers.w_down": (c.n_layers, c.d_model, c.d_ff),
        }
        for name, shape in want.items():
            obj: Any = self
            for part in name.split("."):
                obj = getattr(obj, part)
            if tuple(obj.shape) != shape:
                raise ValueError(
                    f"{name}: expected shape {shape} from the config, got {obj.shape}."
                )


def weights_from_tensors(
    config: LlamaConfig, tensors: dict[str, np.ndarray], dtype: DTypeLike = jnp.float32
) -> LlamaWeights:
    """Assemble `LlamaWeights` from GGUF-named float arrays (see `read_gguf`).

    Raises:
        ValueError: a tensor is missing, or the file has a separate `output.weight` (only tied
            input/output embeddings are supported).
    """
    if "output.weight" in tensors:
        raise ValueError(
            "tensors: the file has a separate output.weight; only tied embeddings are supported."
        )

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"tensors: the GGUF file has no tensor {name!r}.")
        return tensors[name]

    def stack(suffix: str) -> jax.Array:
        return jnp.asarray(
            np.stack([get(f"blk.{i}.{suffix}") for i in range(config.n_layers)]), dtype=dtype
        )

    layers = LlamaLayers(
        attn_norm=stack("attn_norm.weight"),
        wq=stack("attn_q.weight"),
        wk=stack("attn_k.weight"),
        wv=stack("attn_v.weight"),
        wo=stack("attn_output.weight"),
        ffn_norm=stack("ffn_norm.weight"),
        w_gate=stack("ffn_gate.weight"),
        w_up=stack("ffn_up.weight"),
        w_down=stack("ffn_down.weight"),
    )
    return LlamaWeights(
        config=config,
        embedding=jnp.asarray(get("token_embd.weight"), dtype=dtype),
        layers=layers,
        final_norm=jnp.asarray(get("output_norm.weight"), dtype=dtype),
    )


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
    return x * jax.lax.rsqrt(ms + eps) * jnp.reshape(w, (1,) * (x.ndim - 1) + (-1,))


def rope_angles(
    positions: Int[Array, " S"], head_dim: int, base: float, dtype: DTypeLike
) -> tuple[Float[Array, "S half"], Float[Array, "S half"]]:
    r"""$\cos$ and $\sin$ of $t\, b^{-2i/h}$ for positions $t$ and pairs $i < h/2$.

    Returns:
        `(cos, sin)`, each `(S, h/2)`, in `dtype`; use with `apply_rope`.
    """
    i = jnp.arange(head_dim // 2, dtype=dtype)
    inv_freq = jnp.power(jnp.asarray(base, dtype=dtype), -2.0 * i / head_dim)
    ang = positions.astype(dtype)[:, None] * inv_freq[None, :]
    return jnp.cos(ang), jnp.sin(ang)


def apply_rope(
    x: Float[Array, "B S heads h"], cos: Float[Array, "S half"], sin: Float[Array, "S half"]
) -> Float[Array, "B S heads h"]:
    r"""Rotate ADJACENT pairs: $(x_{2i}, x_{2i+1}) \mapsto
    (x_{2i}\cos - x_{2i+1}\sin,\; x_{2i}\sin + x_{2i+1}\cos)$.

    Args:
        x: `(B, S, heads, h)` queries or keys.
        cos, sin: `(S, h/2)` from `rope_angles` for the positions of the `S` rows.

    Example:
        >>> import jax.numpy as jnp
        >>> c, s = rope_angles(jnp.arange(2, dtype=jnp.int32), 4, 1e4, jnp.float32)
        >>> x = jnp.zeros((1, 2, 1, 4)).at[..., 0].set(1.0)
        >>> apply_rope(x, c, s)[0, 1, 0].round(4).tolist()  # position 1: angle 1 rad in (0, 1)
        [0.5403000116348267, 0.8414999842643738, 0.0, 0.0]
    """
    b, s, n, h = x.shape
    xp = x.reshape(b, s, n, h // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    c = cos[None, :, None, :]
    sn = sin[None, :, None, :]
    out = jnp.stack([x0 * c - x1 * sn, x0 * sn + x1 * c], axis=-1)
    return out.reshape(b, s, n, h)


def _block(
    config: LlamaConfig,
    x: jax.Array,
    lw: LlamaLayers,
    cos: jax.Array,
    sin: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    start: jax.Array,
    mask: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One block on `S` new positions; keys/values are written into the caches at `start`."""
    c = config
    b, s, _ = x.shape
    h, nq, nkv = c.head_dim, c.n_heads, c.n_kv_heads
    g = nq // nkv
    a = rms_norm(x, lw.attn_norm, c.norm_eps)
    q = jnp.einsum("bsd,od->bso", a, lw.wq).reshape(b, s, nq, h)
    k = jnp.einsum("bsd,od->bso", a, lw.wk).reshape(b, s, nkv, h)
    v = jnp.einsum("bsd,od->bso", a, lw.wv).reshape(b, s, nkv, h)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    zero = jnp.zeros((), dtype=jnp.int32)
    idx = (zero, start.astype(jnp.int32), zero, zero)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), idx)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), idx)
    qg = q.reshape(b, s, nkv, g, h)
    scores = jnp.einsum("bskgh,btkh->bkgst", qg, k_cache) / float(np.sqrt(h))
    scores = jnp.where(mask[None, None, None, :, :], scores, -jnp.inf)
    p = jax.nn.softmax(scores, axis=-1)
    o = jnp.einsum("bkgst,btkh->bskgh", p, v_cache).reshape(b, s, nq * h)
    x = x + jnp.einsum("bso,do->bsd", o, lw.wo)
    f = rms_norm(x, lw.ffn_norm, c.norm_eps)
    gate = jnp.einsum("bsd,fd->bsf", f, lw.w_gate)
    up = jnp.einsum("bsd,fd->bsf", f, lw.w_up)
    x = x + jnp.einsum("bsf,df->bsd", jax.nn.silu(gate) * up, lw.w_down)
    return x, k_cache, v_cache


def _run_blocks(
    weights: LlamaWeights,
    x: jax.Array,
    positions: jax.Array,
    k_caches: jax.Array,
    v_caches: jax.Array,
    start: jax.Array,
    mask: jax.Array,
    collect: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
    c = weights.config
    cos, sin = rope_angles(positions, c.head_dim, c.rope_base, x.dtype)

    def step(carry, xs):
        lw, kc, vc = xs
        y, kc, vc = _block(c, carry, lw, cos, sin, kc, vc, start, mask)
        return y, (kc, vc, carry if collect else None)

    x, (k_caches, v_caches, inputs) = jax.lax.scan(step, x, (weights.layers, k_caches, v_caches))
    return x, k_caches, v_caches, inputs


def _empty_caches(weights: LlamaWeights, b: int, t: int) -> tuple[jax.Array, jax.Array]:
    c = weights.config
    shape = (c.n_layers, b, t, c.n_kv_heads, c.head_dim)
    z = jnp.zeros(shape, dtype=weights.embedding.dtype)
    return z, z


def llama_forward(
    weights: LlamaWeights,
    tokens: Int[Array, "B T"],
    *,
    collect_layers: bool = False,
    return_cache: bool = False,
) -> dict[str, jax.Array]:
    """Run the model on right-padded token ids (all sequences start at position 0).

    Args:
        weights: the model weights (a pytree; pass them as an argument to `jit`).
        tokens: `(B, T)` int ids, each row a sequence padded on the right to `T`.
        collect_layers: also return the residual stream entering every block.
        return_cache: also return the keys/values of all positions (for decoding).

    Returns:
        A dict with `"hidden"`: `(B, T, d)` final hidden states after the final norm; with
        `collect_layers`, `"layers"`: `(n_layers, B, T, d)` inputs of each block (entry 0 is the
        token embedding); with `return_cache`, `"k"`, `"v"`: `(n_layers, B, T, n_kv, h)`.

    Example:
        ```python
        out = jax.jit(llama_forward)(model.weights, jnp.zeros((1, 32), jnp.int32))
        logits = out["hidden"] @ model.weights.embedding.T
        ```
    """
    b, t = tokens.shape
    x = jnp.take(weights.embedding, tokens, axis=0)
    positions = jnp.arange(t, dtype=jnp.int32)
    mask = positions[:, None] >= positions[None, :]
    kc, vc = _empty_caches(weights, b, t)
    x, kc, vc, inputs = _run_blocks(
        weights, x, positions, kc, vc, jnp.zeros((), jnp.int32), mask, collect_layers
    )
    out = {"hidden": rms_norm(x, weights.final_norm, weights.config.norm_eps)}
    if collect_layers and inputs is not None:
        out["layers"] = inputs
    if return_cache:
        out["k"], out["v"] = kc, vc
    return out


def llama_decode_step(
    weights: LlamaWeights,
    token: Int[Array, " B"],
    position: Int[Array, ""],
    k_caches: Float[Array, "layers B T kv h"],
    v_caches: Float[Array, "layers B T kv h"],
) -> tuple[Float[Array, "B d"], jax.Array, jax.Array]:
    """Feed one token per row at `position`, attending to cached keys at positions `<= position`.

    Returns:
        The final hidden state after the final norm `(B, d)`, and the updated caches.
    """
    t = k_caches.shape[2]
    x = jnp.take(weights.embedding, token, axis=0)[:, None, :]
    pos = jnp.reshape(position.astype(jnp.int32), (1,))
    mask = (jnp.arange(t, dtype=jnp.int32) <= pos[0])[None, :]
    x, kc, vc, _ = _run_blocks(weights, x, pos, k_caches, v_caches, pos[0], mask, False)
    h = rms_norm(x[:, 0, :], weights.final_norm, weights.config.norm_eps)
    return h, kc, vc

