"""Density field, voids, and the hallucination proxy (formalism §7)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._space import SemanticSpace, _sq_dist

__all__ = [
    "grid",
    "VoidResult",
    "find_voids",
    "NEIGHBOURHOODS",
    "neighbourhood",
    "Hallucination",
    "hallucination",
]

NEIGHBOURHOODS = ("cluster", "knn", "radius")


def grid(lo: Any, hi: Any, n: int) -> Float[Array, "*grid d"]:
    r"""A regular grid of points in the box $[lo, hi]$: shape `(n, …, n, d)`.

    Example:
        >>> grid([0.0, 0.0], [1.0, 2.0], 3)[2, 1].tolist()
        [1.0, 1.0]
    """
    lo = jnp.atleast_1d(jnp.asarray(lo, jnp.zeros(()).dtype))
    hi = jnp.atleast_1d(jnp.asarray(hi, lo.dtype))
    axes = [jnp.linspace(lo[i], hi[i], n) for i in range(lo.shape[0])]
    return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)


class VoidResult(eqx.Module):
    r"""Voids of the background density $\rho_{\rm sem}$.

    Attributes:
        threshold: the density level: the `percentile`-th percentile of $\rho_{\rm sem}$ at the
            token sites.
        points: the `(P, d)` probe points (grid or random, see `find_voids`).
        log_density: `(P,)` $\log\rho_{\rm sem}$ at the probes.
        in_void: `(P,)` whether the probe lies below the threshold.
        centres: `(K, d)` centres of the largest empty balls (non-overlapping, largest first).
        radii: `(K,)` their radii (distance to the nearest token).
    """

    threshold: Float[Array, ""]
    points: Float[Array, "P d"]
    log_density: Float[Array, " P"]
    in_void: Bool[Array, " P"]
    centres: Float[Array, "K d"]
    radii: Float[Array, " K"]


def find_voids(
    space: SemanticSpace,
    *,
    percentile: float = 10.0,
    n_balls: int = 5,
    resolution: int = 60,
    n_probes: int = 20000,
    seed: int = 0,
    margin: float = 0.0,
) -> VoidResult:
    r"""Find low-density voids and the largest empty balls of a token cloud (formalism §7).

    Probes: a regular `resolution`$^d$ grid over the bounding box of the tokens (enlarged by
    `margin`) for $d \le 3$; `n_probes` uniform random points in that box (seeded) for higher
    $d$. A probe is in a void when $\rho_{\rm sem} <$ the `percentile`-th percentile of
    $\rho_{\rm sem}$ over the token sites. Empty balls: each probe's radius is its distance to
    the nearest token; the `n_balls` largest non-overlapping balls are picked greedily (a ball is
    skipped if its centre lies inside an already picked ball). Only probes inside the bounding box
    are used, so the balls are voids *between* tokens, not the outside.

    Arguments:
        space: the semantic space.
        percentile: in $(0, 100)$.
        n_balls: how many empty balls to return.
        resolution: grid points per axis ($d \le 3$).
        n_probes: random probes ($d > 3$).
        seed: seed for random probes.
        margin: enlarge the box by this much on every side.

    Raises:
        ValueError: `percentile` outside $(0, 100)$, `n_balls` < 1.

    Example:
        >>> from infograv.model import toy_clusters
        >>> v = find_voids(toy_clusters(0), n_balls=2, resolution=30)
        >>> v.centres.shape, bool(v.radii[0] >= v.radii[1])
        ((2, 2), True)
    """
    if not 0 < percentile < 100:
        raise ValueError(f"percentile: must be in (0, 100), got {percentile!r}.")
    if not isinstance(n_balls, int) or n_balls < 1:
        raise ValueError(f"n_balls: need a positive integer, got {n_balls!r}.")
    emb = space.embedding
    lo = jnp.min(emb, axis=0) - margin
    hi = jnp.max(emb, axis=0) + margin
    d = space.dim
    if d <= 3:
        pts = grid(lo, hi, resolution).reshape(-1, d).astype(emb.dtype)
    else:
        rng = np.random.default_rng(seed)
        u = jnp.asarray(rng.uniform(size=(n_probes, d)), emb.dtype)
        pts = lo + u * (hi - lo)
    logrho = jax.lax.map(space.log_density, pts, batch_size=2048)
    site = jax.lax.map(space.log_density, emb, batch_size=2048)
    thr = jnp.percentile(site, percentile)
    r_near = jnp.sqrt(jax.lax.map(lambda p: jnp.min(_sq_dist(p, emb)), pts, batch_size=2048))
    order = np.argsort(-np.asarray(r_near))
    pts_np = np.asarray(pts)
    rn = np.asarray(r_near)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for i in order:
        c = pts_np[i]
        if all(np.linalg.norm(c - cc) > rr for cc, rr in zip(centres, radii)):
            centres.append(c)
            radii.append(rn[i])
        if len(centres) == n_balls:
            break
    return VoidResult(
        threshold=jnp.exp(thr),
        points=pts,
        log_density=logrho,
        in_void=logrho < thr,
        centres=jnp.asarray(np.stack(centres), emb.dtype),
        radii=jnp.asarray(np.asarray(radii), emb.dtype),
    )


def neighbourhood(
    space: SemanticSpace,
    position: Any,
    rule: str = "knn",
    *,
    k: int = 10,
    radius: float | None = None,
    label: int | None = None,
) -> Bool[Array, " N"]:
    r"""The query's semantic neighbourhood $C(q)$ as a boolean mask over the tokens (formalism §7).

    Rules:
    - `"cluster"`: the tokens whose ground-truth label equals `label` (default: the label of the
      token nearest to `position`); needs `space.labels`.
    - `"knn"`: the `k` tokens nearest to `position`.
    - `"radius"`: tokens with $|x_i - x_q| < r^*$ = `radius`.

    Raises:
        ValueError: unknown `rule`; `cluster` without labels; `radius` missing or non-positive;
            `k` outside $[1, N]$; `position` of the wrong dimension.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import SemanticSpace
        >>> s = SemanticSpace(jnp.array([[0.0], [1.0], [5.0]]))
        >>> neighbourhood(s, jnp.array([0.2]), "radius", radius=1.5).tolist()
        [True, True, False]
    """
    x = jnp.asarray(position, space.embedding.dtype)
    if x.shape != (space.dim,):
        raise ValueError(f"position: expected shape ({space.dim},), got {x.shape}.")
    r2 = _sq_dist(x, space.embedding)
    if rule == "knn":
        if not isinstance(k, int) or not 1 <= k <= space.n_tokens:
            raise ValueError(f"k: need an integer in [1, N = {space.n_tokens}], got {k!r}.")
        kth = jnp.sort(r2)[k - 1]
        return r2 <= kth
    if rule == "radius":
        if radius is None or not float(radius) > 0:
            raise ValueError(f"radius: the 'radius' rule needs radius > 0, got {radius!r}.")
        return r2 < float(radius) ** 2
    if rule == "cluster":
        if space.labels is None:
            raise ValueError("rule: 'cluster' needs a space with labels (space.labels is None).")
        lab = space.labels[jnp.argmin(r2)] if label is None else label
        return space.labels == lab
    raise ValueError(f"rule: unknown neighbourhood rule {rule!r}; valid are "
                     f"{', '.join(NEIGHBOURHOODS)}.")


class Hallucination(eqx.Module):
    """The hallucination proxy: probability and sample rate outside $C(q)$.

    Attributes:
        outside_probability: $\\sum_{i\\notin C(q)} P_i$.
        sample_rate: fraction of `n_samples` draws outside $C(q)$ (NaN if `n_samples = 0`).
    """

    outside_probability: Float[Array, "*batch"]
    sample_rate: Float[Array, "*batch"]


def hallucination(
    logp: Any,
    inside: Any,
    *,
    key: Any = None,
    n_samples: int = 0,
) -> Hallucination:
    r"""Probability and sample rate of tokens outside the neighbourhood $C(q)$ (formalism §7).

    Arguments:
        logp: `(..., N)` log-probabilities of the selection law.
        inside: `(..., N)` or `(N,)` boolean mask of $C(q)$
            ([`neighbourhood`][infograv.model.neighbourhood]).
        key: PRNG key for sampling (required if `n_samples > 0`).
        n_samples: number of tokens to draw.

    Example:
        >>> import jax.numpy as jnp
        >>> h = hallucination(jnp.log(jnp.array([0.7, 0.2, 0.1])), jnp.array([True, False, True]))
        >>> round(float(h.outside_probability), 6)
        0.2
    """
    logp = jnp.asarray(logp)
    inside = jnp.broadcast_to(jnp.asarray(inside, bool), logp.shape)
    p = jnp.exp(logp)
    out_p = jnp.sum(jnp.where(inside, 0.0, p), axis=-1)
    if n_samples:
        if key is None:
            raise ValueError("key: sampling (n_samples > 0) needs a PRNG key.")
        draws = jax.random.categorical(key, logp, axis=-1, shape=(n_samples,) + logp.shape[:-1])
        tiled = jnp.broadcast_to(inside, (n_samples,) + inside.shape)
        ins = jnp.take_along_axis(tiled, draws[..., None], axis=-1)[..., 0]
        rate = jnp.mean((~ins).astype(p.dtype), axis=0)
    else:
        rate = jnp.full(out_p.shape, jnp.nan, p.dtype)
    return Hallucination(outside_probability=out_p, sample_rate=rate)
