"""Observed trajectories of real models, as paths of points in one space.

- [`generation_trajectory`][infograv.lm.generation_trajectory]: the final hidden state (after
  the final norm, where the head reads it) at each generated step, greedy or sampled.
- [`depth_trajectory`][infograv.lm.depth_trajectory]: the residual stream of the last position
  through the layers, each layer passed through the final norm (the "logit lens"), so that
  every layer is a point of the space the head reads: the raw residual norm grows about 250-fold
  through SmolLM2's 30 layers, the normed one is fixed by the norm.
- [`encoder_layer_trajectory`][infograv.lm.encoder_layer_trajectory]: the per-layer path of a
  sentence's mean-pooled, unit-normalised embedding through a sentence encoder (MiniLM), the
  same pooling and normalisation as the encoder's output, so that every layer is a point of the
  unit sphere the sentence embedding lives on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._bert import BertWeights, bert_forward, mean_pool_normalize

__all__ = [
    "ObservedTrajectory",
    "generation_trajectory",
    "depth_trajectory",
    "encoder_layer_trajectory",
]


@dataclass(frozen=True)
class ObservedTrajectory:
    """A real model's path: `points[k]` is the state at step `k`.

    Attributes:
        kind: `"generation"`, `"depth"` or `"encoder_layers"`.
        points: `(K, d)` float64 states.
        token_ids: for a generation, the token drawn from each state (`(K,)`), else `None`.
        meta: prompt, settings, normalisation.
    """

    kind: str
    points: np.ndarray
    token_ids: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.points.shape[0])


def _check_count(n: Any, name: str, low: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < low:
        raise ValueError(f"{name}: expected an int ≥ {low}, got {n!r}.")
    return int(n)


def generation_trajectory(
    model: Any, prompt: str, n_new: int, *, temperature: float = 0.0, seed: int = 0
) -> ObservedTrajectory:
    """The final hidden state at each of `n_new` generation steps of a causal model.

    Row `k` is the state (after the final norm) from which token `k` was drawn; row 0 is the
    prompt's last position. Greedy at `temperature == 0`, else sampled with `seed`.

    Arguments:
        model: a [`LanguageModel`][infograv.lm.LanguageModel].
        prompt: the prompt text.
        n_new: number of generated tokens (`≥ 2`).
        temperature: `0` (greedy) or the sampling temperature.
        seed: the sampling seed.

    Raises:
        ValueError: `n_new < 2`; the model's own errors for a bad prompt or temperature.

    Example:
        ```python
        traj = generation_trajectory(model, "The capital of France is", 8)
        traj.points.shape   # (8, 576)
        ```
    """
    n_new = _check_count(n_new, "n_new", 2)
    if hasattr(model, "generation_states"):
        ids, hidden = model.generation_states(prompt, n_new, temperature=temperature, seed=seed)
    else:
        g = model.sample(prompt, n_new, temperature=temperature, seed=seed, stop=False)[0]
        ids, hidden = g.token_ids, g.hidden
    return ObservedTrajectory(
        kind="generation",
        points=np.asarray(hidden, dtype=np.float64),
        token_ids=np.asarray(ids, dtype=np.int64),
        meta={"prompt": prompt, "temperature": float(temperature), "seed": int(seed),
              "state": "after the final norm"},
    )


def depth_trajectory(model: Any, prompt: str) -> ObservedTrajectory:
    """The residual stream of the prompt's last position through the layers, logit-lens normed.

    Entry `ℓ` is `final_norm(x_ℓ)` for the embedding (`ℓ = 0`) and the block outputs
    (`1 ≤ ℓ < n_layers`), and the model's own final state (already normed) for `ℓ = n_layers`:
    `n_layers + 1` points in the space the head reads.

    Arguments:
        model: a [`LanguageModel`][infograv.lm.LanguageModel] (with `hidden_states`, and
            `final_norm` or llama weights).

    Example:
        ```python
        traj = depth_trajectory(model, "The capital of France is")
        traj.points.shape   # (31, 576)
        ```
    """
    hs = np.asarray(model.hidden_states(prompt))[:, -1, :]
    if hasattr(model, "final_norm"):
        normed = np.asarray(model.final_norm(jnp.asarray(hs[:-1])))
    else:
        from ._llama import rms_norm

        w = model.weights.final_norm
        normed = np.asarray(rms_norm(jnp.asarray(hs[:-1], w.dtype), w, model.config.norm_eps))
    pts = np.concatenate([normed, hs[-1:]], axis=0).astype(np.float64)
    return ObservedTrajectory(
        kind="depth", points=pts,
        meta={"prompt": prompt, "normalisation": "final norm (logit lens) at every layer",
              "raw_norms": np.linalg.norm(hs, axis=1).tolist()},
    )


def _layer_states(weights: BertWeights, tokens: Any, mask: Any, k: int) -> Any:
    sub = eqx.tree_at(lambda w: w.layers, weights,
                      jax.tree.map(lambda a: a[:k], weights.layers))
    return mean_pool_normalize(bert_forward(sub, tokens, mask), mask)


def encoder_layer_trajectory(encoder: Any, sentence: str) -> ObservedTrajectory:
    """The per-layer path of a sentence's pooled embedding through a sentence encoder.

    Entry `ℓ` is the mean-pooled, unit-normalised state after `ℓ` blocks (`ℓ = 0`: the
    embedding layer's output); the last entry equals `encoder.embed([sentence])[0]`.

    Arguments:
        encoder: a [`SentenceEncoder`][infograv.lm.SentenceEncoder].
        sentence: a non-empty text.

    Raises:
        ValueError: an empty sentence.

    Example:
        ```python
        traj = encoder_layer_trajectory(enc, "A cat sits on the mat.")
        traj.points.shape   # (7, 384) for MiniLM-L6
        ```
    """
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError("sentence: expected a non-empty text.")
    ids = encoder.encode(sentence)[: encoder.config.max_seq_length]
    tokens = jnp.asarray(np.asarray(ids, dtype=np.int32)[None, :])
    mask = jnp.ones(tokens.shape, dtype=bool)
    n_layers = int(encoder.weights.layers.wq.shape[0])
    pts = [np.asarray(_layer_states(encoder.weights, tokens, mask, k))[0]
           for k in range(n_layers + 1)]
    return ObservedTrajectory(
        kind="encoder_layers", points=np.asarray(pts, dtype=np.float64),
        meta={"sentence": sentence, "normalisation": "mean pool, unit norm at every layer"},
    )
