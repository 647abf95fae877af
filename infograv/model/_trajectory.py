"""Token trajectories: autoregressive sampling with a context rule (formalism §9)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._potential import Potential
from ._query import Query
from ._selection import _check_query, _check_temperature, energies, log_probs
from ._space import SemanticSpace

__all__ = ["CONTEXT_RULES", "Trajectory", "generate"]

CONTEXT_RULES = ("fixed", "accrete", "drift")


class Trajectory(eqx.Module):
    """A generated token sequence and the path it traces in semantic space.

    Attributes:
        tokens: `(L,)` token indices.
        positions: `(L, d)` the tokens' positions (the trajectory).
        centres: `(L, d)` the query centre used to draw each token.
        log_probs: `(L,)` log-probability of each drawn token when it was drawn.
        entropies: `(L,)` entropy (nats) of the distribution each token was drawn from.
    """

    tokens: Int[Array, " L"]
    positions: Float[Array, "L d"]
    centres: Float[Array, "L d"]
    log_probs: Float[Array, " L"]
    entropies: Float[Array, " L"]


def generate(
    key: Any,
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    n_steps: int,
    *,
    rule: str = "fixed",
    accrete_mass: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    background: Any = None,
) -> Trajectory:
    r"""Autoregressive token generation $t_{k+1} \sim P(\cdot\,|\,\text{context}_k, T)$.

    Context rules (formalism §9):

    - `"fixed"`: the query's field alone at every step (i.i.d. draws).
    - `"accrete"`: each generated token becomes a new source of mass
      `accrete_mass` $\times m_t$ at its position; the field is the superposition of the query
      and all generated tokens.
    - `"drift"`: the query (mass $M$) moves to the mass-weighted mean of its initial position and
      the generated tokens' positions (weights $M$ and `accrete_mass` $\times m_t$).

    Seeded by `key`; the same key gives the same trajectory. Runs as one `lax.scan`.

    Arguments:
        key: a JAX PRNG key.
        space: the semantic space.
        query: the query, `position` of shape `(d,)`.
        potential: the potential.
        T: temperature $> 0$.
        n_steps: number of tokens to generate.
        rule: `"fixed"`, `"accrete"` or `"drift"`.
        accrete_mass: mass factor of generated tokens as sources / weights.
        top_k: optional truncation, as in [`log_probs`][infograv.model.log_probs].
        top_p: optional truncation, as in [`log_probs`][infograv.model.log_probs].
        background: optional `(N,)` per-token energies.

    Raises:
        ValueError: unknown `rule`, `n_steps` < 1, `accrete_mass` < 0, bad query.

    Example:
        >>> import jax
        >>> from infograv.model import toy_clusters, Query, Potential
        >>> s = toy_clusters(0)
        >>> tr = generate(jax.random.key(0), s, Query(s.embedding[0], 2.0), Potential("plummer", 2),
        ...               0.3, 5, rule="accrete")
        >>> tr.tokens.shape, tr.positions.shape
        ((5,), (5, 2))
    """
    _check_query(space, query)
    if query.position.ndim != 1:
        raise ValueError("query: generate takes one query position of shape (d,).")
    if rule not in CONTEXT_RULES:
        raise ValueError(f"rule: unknown context rule {rule!r}; valid are "
                         f"{', '.join(CONTEXT_RULES)}.")
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps: need a positive integer, got {n_steps!r}.")
    if not accrete_mass >= 0:
        raise ValueError(f"accrete_mass: must be >= 0, got {accrete_mass!r}.")
    dtype = space.embedding.dtype
    T = _check_temperature(T, dtype)
    x0 = query.position.astype(dtype)
    M = query.mass.astype(dtype)
    d = space.dim
    a = jnp.asarray(accrete_mass, dtype)

    def step(carry, k):
        src, msrc, wsum, xsum = carry
        if rule == "drift":
            pos = wsum > 0
            centre = jnp.where(pos, xsum / jnp.where(pos, wsum, 1.0), x0)
        else:
            centre = x0
        q = Query(centre, M, query.mass_model)
        ctx = (src, msrc) if rule == "accrete" else None
        U = energies(space, q, potential, context=ctx, background=background)
        lp = log_probs(U, T, top_k=top_k, top_p=top_p)
        tok = jax.random.categorical(jax.random.fold_in(key, k), lp)
        xt = space.embedding[tok]
        mt = a * space.masses[tok]
        src = src.at[k].set(xt)
        msrc = msrc.at[k].set(mt)
        p = jnp.exp(lp)
        ent = -jnp.sum(jnp.where(p > 0, p * jnp.where(p > 0, lp, 0.0), 0.0))
        carry = (src, msrc, wsum + mt, xsum + mt * xt)
        return carry, (tok, xt, centre, lp[tok], ent)

    init = (jnp.zeros((n_steps, d), dtype), jnp.zeros((n_steps,), dtype), M, M * x0)
    _, (toks, pos, cen, lps, ents) = jax.lax.scan(step, init, jnp.arange(n_steps))
    return Trajectory(tokens=toks, positions=pos, centres=cen, log_probs=lps, entropies=ents)
