"""A query: a position in semantic space and an information mass; the mass models."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["Query", "MASS_MODELS", "surprisal_mass", "specificity_mass"]

MASS_MODELS = ("explicit", "surprisal", "lm_surprisal", "specificity")


class Query(eqx.Module):
    r"""A query $q$: position $x_q \in \mathbb{R}^d$ and information mass $M(q) \ge 0$.

    formalism §2. `mass_model` records where the mass came from (`"explicit"`, `"surprisal"`,
    `"lm_surprisal"`, `"specificity"`) so experiments can write it into their outputs. Both
    fields are differentiable leaves. Batches of queries are `jax.vmap` over a `Query` whose
    `position` is `(B, d)` and `mass` is `(B,)` (build it with `Query(positions, masses)`; the
    checks accept a leading batch axis).

    Arguments:
        position: `(d,)` or `(B, d)` query position(s), finite.
        mass: information mass(es), finite and $\ge 0$; scalar or `(B,)`.
        mass_model: the mass model's name.

    Raises:
        ValueError: NaN/inf position, negative or NaN mass, unknown `mass_model`, mismatched
            batch shapes.

    Example:
        >>> q = Query([0.0, 1.0], 2.5)
        >>> q.position.shape, float(q.mass), q.mass_model
        ((2,), 2.5, 'explicit')
    """

    position: Float[Array, "*batch d"]
    mass: Float[Array, "*batch"]
    mass_model: str = eqx.field(static=True)

    def __init__(self, position: Any, mass: Any = 1.0, mass_model: str = "explicit"):
        pos = jnp.asarray(position)
        if not jnp.issubdtype(pos.dtype, jnp.floating):
            pos = pos.astype(jnp.zeros(()).dtype)
        if pos.ndim not in (1, 2) or pos.shape[-1] == 0:
            raise ValueError(f"position: expected shape (d,) or (B, d), got {pos.shape}.")
        m = jnp.asarray(mass, pos.dtype)
        if m.shape != pos.shape[:-1]:
            if m.ndim == 0:
                m = jnp.broadcast_to(m, pos.shape[:-1])
            else:
                raise ValueError(f"mass: expected shape {pos.shape[:-1]}, got {m.shape}.")
        if not isinstance(pos, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(pos))):
            raise ValueError("position: contains NaN or inf entries.")
        if not isinstance(m, jax.core.Tracer):
            if not np.all(np.isfinite(np.asarray(m))):
                raise ValueError("mass: information mass is NaN or inf; it must be finite.")
            if np.any(np.asarray(m) < 0):
                raise ValueError("mass: information mass must be >= 0.")
        if mass_model not in MASS_MODELS:
            raise ValueError(
                f"mass_model: unknown {mass_model!r}; valid are {', '.join(MASS_MODELS)}."
            )
        self.position = pos
        self.mass = m
        self.mass_model = mass_model

    @property
    def dim(self) -> int:
        """The dimension $d$."""
        return int(self.position.shape[-1])


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def surprisal_mass(
    text: str,
    *,
    table: Mapping[str, float] | None = None,
    lang: str = "en",
    floor: float = 1e-8,
) -> float:
    r"""Surprisal mass $M = \sum_w -\log_2 p(w)$ of a text, in bits (formalism §2).

    Word probabilities come from `table` if given (a mapping word → probability), otherwise from
    the `wordfreq` package (Speer et al., *wordfreq*, Zenodo 10.5281/zenodo.7199437; its
    frequency lists ship inside the package and work offline; install `wordfreq`). Words absent
    from the table get probability `floor`.

    Arguments:
        text: the query text.
        table: optional word-probability table; words are lower-cased.
        lang: language code for `wordfreq`.
        floor: probability of an unknown word.

    Returns:
        The mass in bits (a float $\ge 0$).

    Raises:
        ValueError: `floor` not in (0, 1]; table entries outside (0, 1].
        ImportError: no `table` and `wordfreq` is not installed.

    Example:
        >>> surprisal_mass("the cat", table={"the": 0.5, "cat": 0.125})
        4.0
    """
    if not 0 < floor <= 1:
        raise ValueError(f"floor: must be in (0, 1], got {floor!r}.")
    if table is not None:
        words = _words(text)

        def prob(w: str) -> float:
            p = float(table.get(w, 0.0))
            if p < 0 or p > 1:
                raise ValueError(f"table: probability of {w!r} is {p}, not in [0, 1].")
            return p
    else:
        try:
            import wordfreq
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "surprisal_mass needs the `wordfreq` package (pip install wordfreq) or an "
                "explicit `table`."
            ) from e
        words = wordfreq.tokenize(text, lang)

        def prob(w: str) -> float:
            return float(wordfreq.word_frequency(w, lang))

    return float(sum(-math.log2(max(prob(w), floor)) for w in words))


def specificity_mass(log_probs: Any) -> Float[Array, "*batch"]:
    r"""Specificity mass $M = \log_2|V| - H(P(\cdot|q))$ in bits, from a distribution's log-probs.

    **Circular if used to predict entropy**: $M$ is computed from the very entropy it would
    predict, so any "mass predicts entropy" result with this model is true by construction. Use it
    only to describe queries, never as evidence for the model (formalism §2).

    Arguments:
        log_probs: `(..., V)` natural-log probabilities over a vocabulary of size $V$.

    Returns:
        `(...)` masses in bits, in $[0, \log_2 V]$.

    Example:
        >>> import jax.numpy as jnp
        >>> float(specificity_mass(jnp.log(jnp.array([1.0, 0.0, 0.0, 0.0]))))
        2.0
    """
    lp = jnp.asarray(log_probs)
    p = jnp.exp(lp)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.where(p > 0, lp, 0.0), 0.0), axis=-1)
    v = lp.shape[-1]
    return (math.log(v) - h) / math.log(2.0)
