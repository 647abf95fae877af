"""Token energies, the selection law and its thermodynamics; chunked and sharded."""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float, Int

from ._potential import Potential
from ._query import Query
from ._space import SemanticSpace, _lead, _sq_dist

__all__ = [
    "energies",
    "log_probs",
    "sample_tokens",
    "Thermodynamics",
    "thermodynamics",
    "streaming_thermodynamics",
    "chunked_log_probs",
    "sharded_thermodynamics",
    "kl_divergence",
    "selection_log_probs",
    "background_energies",
    "StreamingResult",
]


def _check_query(space: SemanticSpace, query: Query) -> None:
    if not isinstance(query, Query):
        raise TypeError(f"query: expected an infograv.model.Query, got {type(query).__name__}.")
    if query.dim != space.dim:
        raise ValueError(
            f"query: position has dimension {query.dim} but the semantic space has d = "
            f"{space.dim}."
        )


def _check_temperature(T: Any, dtype: Any) -> jax.Array:
    """`T > 0` (NaN refused); `T = inf` is allowed: the uniform limit (see `log_probs`)."""
    T = jnp.asarray(T, dtype)
    if isinstance(T, jax.core.Tracer):
        return eqx.error_if(T, jnp.any(~(T > 0)), "T: the temperature must be > 0.")
    if not np.all(np.asarray(T) > 0):
        raise ValueError(f"T: the temperature must be > 0 (and not NaN), got {np.asarray(T)}.")
    return T


def _check_energies(U: jax.Array) -> jax.Array:
    """Energies are finite or `+inf` (an excluded token); NaN, `-inf`, all-`+inf` are refused."""
    if not jnp.issubdtype(U.dtype, jnp.floating):
        U = U.astype(jnp.zeros(()).dtype)
    if U.ndim == 0 or U.shape[-1] == 0:
        raise ValueError(f"U: expected energies of shape (..., N) with N >= 1, got {U.shape}.")
    bad = jnp.isnan(U) | (U == -jnp.inf)
    none = jnp.all(U == jnp.inf, axis=-1)
    if isinstance(U, jax.core.Tracer):
        U = eqx.error_if(U, jnp.any(bad), "U: energies must not be NaN or -inf.")
        return eqx.error_if(U, jnp.any(none), "U: every energy of a row is +inf.")
    if bool(jnp.any(bad)):
        idx = tuple(int(i) for i in np.argwhere(np.asarray(bad))[0])
        raise ValueError(
            f"U: energies must be finite, or +inf for a token that can never be selected; "
            f"found {float(U[idx])} at index {idx}."
        )
    if bool(jnp.any(none)):
        idx = tuple(int(i) for i in np.argwhere(np.asarray(none))[0])
        where = f" of row {idx}" if idx else ""
        raise ValueError(f"U: every energy{where} is +inf; no token can be selected.")
    return U


def _scaled(U: jax.Array, T: jax.Array) -> jax.Array:
    """$z = -U/T$ with $z = -\\infty$ for $U = +\\infty$ (also at $T = \\infty$)."""
    excluded = U == jnp.inf
    return jnp.where(excluded, -jnp.inf, -jnp.where(excluded, 0.0, U) / T)


def energies(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    *,
    context: tuple[Any, Any] | None = None,
    background: Any = None,
) -> Float[Array, "*batch N"]:
    r"""Token energies $U_i = m_i\,\Phi(x_i) + b_i$ in the field of the query (formalism §4).

    $\Phi$ is the query's field $\Phi(|x_i - x_q|; M)$ plus, with `context`, the superposed
    fields of extra sources (query parts, context tokens). The distances come from one matrix
    product, $|x-y|^2 = |x|^2 + |y|^2 - 2x\cdot y$ (clamped at 0), so a batch of $B$ queries costs
    one $B\times N\times d$ matmul.

    Arguments:
        space: the [`SemanticSpace`][infograv.model.SemanticSpace] (`N` tokens in `d` dims).
        query: a [`Query`][infograv.model.Query] with `position` `(d,)` or `(B, d)`.
        potential: the [`Potential`][infograv.model.Potential] of one source.
        context: optional `(positions (S, d), masses (S,))` of additional sources (shared by all
            queries of a batch).
        background: optional `(N,)` per-token energies $b_i$ added as is (not scaled by $M$),
            e.g. [`background_energies`][infograv.model.background_energies].

    Returns:
        `(N,)` or `(B, N)` energies.

    Raises:
        ValueError: the query's dimension differs from the space's; bad `background` shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import SemanticSpace, Query, Potential
        >>> space = SemanticSpace(jnp.array([[0.0, 0.0], [3.0, 4.0]]))
        >>> U = energies(space, Query(jnp.zeros(2), 2.0), Potential("harmonic", 2))
        >>> U.tolist()   # M * k r^2 / 2 with M = 2
        [0.0, 25.0]
    """
    _check_query(space, query)
    if background is not None:
        b = jnp.asarray(background)
        if b.shape != (space.n_tokens,):
            raise ValueError(f"background: expected shape ({space.n_tokens},), got {b.shape}.")
    return _energies_core(space, query.position, query.mass, potential, context, background)


@eqx.filter_jit
def _energies_core(space, position, qmass, potential, context, background):
    x = position.astype(space.embedding.dtype)
    r2 = _sq_dist(x, space.embedding)
    mass = qmass.astype(r2.dtype)[..., None]
    U = _lead(space.masses, r2.ndim) * potential.from_sq_distance(
        r2, jnp.broadcast_to(mass, r2.shape))
    if context is not None:
        src, msrc = context
        U = U + _lead(space.masses * potential.field(space.embedding, src, msrc), U.ndim)
    if background is not None:
        U = U + _lead(jnp.asarray(background, U.dtype), U.ndim)
    return U


def log_probs(
    U: Any,
    T: Any,
    *,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Array, "*batch N"]:
    r"""The selection law $\log P_i = -U_i/T - \log\sum_j e^{-U_j/T}$ (formalism §4).

    Optional truncation as real samplers do it: `top_k` keeps the $k$ lowest-energy tokens;
    `top_p` keeps the smallest set of most probable tokens whose probability reaches $p$ (the
    token that crosses $p$ is kept). Removed tokens get $\log P = -\infty$; the rest renormalise.

    Extreme inputs (formalism §4): $T$ from the smallest positive float to
    $+\infty$ is accepted; $T = +\infty$ is the uniform limit $P_i = 1/N$. An energy $U_i = +\infty$
    is a token that can never be selected ($\log P_i = -\infty$, as with `top_k`). The result is
    always $\le 0$ and never NaN.

    Arguments:
        U: `(..., N)` energies: finite, or `+inf` for an excluded token.
        T: temperature $> 0$ (`inf` allowed): a scalar, or an array broadcast jointly with
            `U.shape[:-1]` (so `U[:, None, :]` with `T` of shape `(K,)` gives a queries ×
            temperatures grid).
        top_k: optional $1 \le k \le N$.
        top_p: optional $0 < p \le 1$.

    Returns:
        `(..., N)` log-probabilities.

    Raises:
        ValueError: `T` ≤ 0 or NaN; an energy that is NaN or `-inf`, or a row whose energies are
            all `+inf` (each an `eqx.error_if` runtime error under `jit`); bad `top_k`, `top_p`.

    Example:
        >>> import jax.numpy as jnp
        >>> lp = log_probs(jnp.array([0.0, 1.0, 2.0]), 1.0, top_k=2)
        >>> tuple(round(float(v), 4) for v in jnp.exp(lp))
        (0.7311, 0.2689, 0.0)
    """
    U = _check_energies(jnp.asarray(U))
    T = _check_temperature(T, U.dtype)
    n = U.shape[-1]
    if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= n):
        raise ValueError(f"top_k: need an integer in [1, N = {n}], got {top_k!r}.")
    if top_p is not None and not 0 < float(top_p) <= 1:
        raise ValueError(f"top_p: need 0 < top_p <= 1, got {top_p!r}.")
    return _log_probs_core(U, T, top_k, None if top_p is None else float(top_p))


def _joint(U: jax.Array, T: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Broadcast energies `(..., N)` and temperatures jointly (NumPy rules, made explicit)."""
    batch = jnp.broadcast_shapes(U.shape[:-1], T.shape)
    return jnp.broadcast_to(U, batch + U.shape[-1:]), jnp.broadcast_to(T, batch)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _log_probs_core(U, T, top_k, top_p):
    U, Tb = _joint(U, T)
    Tb = Tb[..., None]
    z = _scaled(U, Tb)
    if top_k is not None:
        kth = jax.lax.top_k(z, top_k)[0][..., -1:]
        z = jnp.where(z >= kth, z, -jnp.inf)
    lp = jax.nn.log_softmax(z, axis=-1)  # shifted by the maximum: exact where z ties
    if top_p is not None:
        order = jnp.argsort(-lp, axis=-1)
        sorted_lp = jnp.take_along_axis(lp, order, axis=-1)
        cum = jnp.cumsum(jnp.exp(sorted_lp), axis=-1)
        keep_sorted = (cum - jnp.exp(sorted_lp)) < top_p  # mass before this token < p
        keep = jnp.zeros_like(keep_sorted)
        keep = jnp.put_along_axis(keep, order, keep_sorted, axis=-1, inplace=False)
        z = jnp.where(keep, lp, -jnp.inf)
        lp = jax.nn.log_softmax(z, axis=-1)
    return jnp.minimum(lp, 0.0)  # log P <= 0 also where rounding would give +1 ulp


def selection_log_probs(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    *,
    query_block: int = 128,
    top_k: int | None = None,
    top_p: float | None = None,
    context: tuple[Any, Any] | None = None,
    background: Any = None,
) -> Float[Array, "*batch N"]:
    r"""The selection distribution $\log P$ for a batch of queries, computed in query blocks.

    Equal to `log_probs(energies(space, query, potential, ...), T)`, but the batch is processed
    `query_block` queries at a time (`lax.map`), so each block's $\text{block}\times N$ energies
    stay in cache between the matmul, the potential and the log-sum-exp; on a CPU this is about
    1.5× faster than the unblocked form for $B = 1024$, $N = 50{,}000$, $d = 384$
    (see `docs/model/benchmark.md`).

    Arguments:
        space: the semantic space.
        query: a single query `(d,)` or a batch `(B, d)`.
        potential: the potential.
        T: temperature(s) $> 0$, scalar or `(B,)`.
        query_block: queries per block.
        top_k: optional truncation (see [`log_probs`][infograv.model.log_probs]).
        top_p: optional truncation.
        context: optional extra sources.
        background: optional `(N,)` per-token energies.

    Returns:
        `(N,)` or `(B, N)` log-probabilities.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import toy_uniform, Query, Potential, energies, log_probs
        >>> s, phi = toy_uniform(0, n=50, d=3), Potential("gaussian", 3)
        >>> q = Query(jnp.zeros((5, 3)), jnp.ones(5))
        >>> lp = selection_log_probs(s, q, phi, 0.5, query_block=2)
        >>> bool(jnp.allclose(lp, log_probs(energies(s, q, phi), 0.5), atol=1e-6))
        True
    """
    _check_query(space, query)
    if query.position.ndim == 1:
        return log_probs(energies(space, query, potential, context=context,
                                  background=background), T, top_k=top_k, top_p=top_p)
    if not isinstance(query_block, int) or query_block < 1:
        raise ValueError(f"query_block: need a positive integer, got {query_block!r}.")
    dtype = space.embedding.dtype
    B = query.position.shape[0]
    T = jnp.broadcast_to(_check_temperature(T, dtype), (B,))
    if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= space.n_tokens):
        raise ValueError(f"top_k: need an integer in [1, N = {space.n_tokens}], got {top_k!r}.")
    if top_p is not None and not 0 < float(top_p) <= 1:
        raise ValueError(f"top_p: need 0 < top_p <= 1, got {top_p!r}.")
    if background is not None and jnp.shape(background) != (space.n_tokens,):
        raise ValueError(f"background: expected shape ({space.n_tokens},), got "
                         f"{jnp.shape(background)}.")
    return _blocked(space, query.position.astype(dtype), query.mass.astype(dtype), T, potential,
                    min(query_block, B), top_k, None if top_p is None else float(top_p),
                    context, background)


@eqx.filter_jit
def _blocked(space, x, mass, T, potential, block, top_k, top_p, context, background):
    B = x.shape[0]
    pad = (-B) % block
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    mp = jnp.pad(mass, (0, pad))
    tp = jnp.pad(T, (0, pad), constant_values=1.0)

    def one(args):
        xb, mb, tb = args
        U = _energies_core(space, xb, mb, potential, context, background)
        return _log_probs_core(U, tb, top_k, top_p)

    out = jax.lax.map(one, (xp.reshape(-1, block, x.shape[1]), mp.reshape(-1, block),
                            tp.reshape(-1, block)))
    return out.reshape(B + pad, -1)[:B]


def sample_tokens(key: Any, logp: Any, n: int) -> Int[Array, "*dims"]:
    r"""Draw `n` tokens from $P$ (`logp` `(..., N)`); returns `(n, ...)` token indices.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> sample_tokens(jax.random.key(0), jnp.log(jnp.array([0.0, 1.0])), 3).tolist()
        [1, 1, 1]
    """
    logp = jnp.asarray(logp)
    return jax.random.categorical(key, logp, axis=-1, shape=(n,) + logp.shape[:-1])


class Thermodynamics(eqx.Module):
    r"""The selection law's thermodynamics at temperature $T$ (formalism §4).

    Attributes:
        log_z: $\ln Z$, $Z = \sum_i e^{-U_i/T}$.
        free_energy: $F = -T\ln Z$.
        mean_energy: $\langle U\rangle$.
        variance: $\mathrm{Var}(U)$.
        entropy: $H = -\sum_i P_i\log P_i = (\langle U\rangle - F)/T$ (nats), computed as the
            first form from the log-probabilities, which keeps full precision at any $T$.
        heat_capacity: $C = \mathrm{Var}(U)/T^2$.

    At $T = +\infty$ (the uniform limit): $\ln Z = \ln N$, $H = \ln N$, $C = 0$ and
    $F = -\infty$ (as $F = -T\ln N$); with $T$ so large that $T\ln Z$ overflows, $F = -\infty$
    likewise. Every other attribute is finite.
    """

    log_z: Float[Array, "*batch"]
    free_energy: Float[Array, "*batch"]
    mean_energy: Float[Array, "*batch"]
    variance: Float[Array, "*batch"]
    entropy: Float[Array, "*batch"]
    heat_capacity: Float[Array, "*batch"]


def _thermo_from(log_z: jax.Array, mean: jax.Array, var: jax.Array, T: jax.Array,
                 entropy: jax.Array) -> Thermodynamics:
    return Thermodynamics(
        log_z=log_z,
        free_energy=jnp.where(log_z == 0, 0.0, -T * log_z),  # N = 1 at T = inf: F = 0
        mean_energy=mean,
        variance=var,
        entropy=jnp.maximum(entropy, 0.0),
        heat_capacity=var / T**2,
    )


def thermodynamics(U: Any, T: Any) -> Thermodynamics:
    r"""$Z, F, \langle U\rangle, H, C$ of the selection law for energies `U` `(..., N)`.

    Exact identities (tested by autodiff): $dF/dT = -H$, $dH/dT = \mathrm{Var}(U)/T^3$.
    `T` broadcasts jointly with `U.shape[:-1]`, as in [`log_probs`][infograv.model.log_probs].
    The entropy is $-\sum_i P_i \log P_i$ from the log-softmax, so $0 \le H \le \ln N$ holds at
    every $T$ from $10^{-12}$ to $+\infty$ (the uniform limit); energies follow the rules of
    [`log_probs`][infograv.model.log_probs] (`+inf` excludes a token; NaN, `-inf` raise).

    Raises:
        ValueError: as [`log_probs`][infograv.model.log_probs] (bad `T` or energies).

    Example:
        >>> import jax.numpy as jnp
        >>> th = thermodynamics(jnp.zeros(4), 1.0)   # uniform over 4 tokens
        >>> round(float(th.entropy), 6), round(float(th.heat_capacity), 6)
        (1.386294, 0.0)
    """
    U = _check_energies(jnp.asarray(U))
    return _thermo_core(U, _check_temperature(T, U.dtype))


@jax.jit
def _thermo_core(U, T):
    U, Tb = _joint(U, T)
    z = _scaled(U, Tb[..., None])
    log_z = logsumexp(z, axis=-1)
    lp = jax.nn.log_softmax(z, axis=-1)
    p = jnp.exp(lp)
    live = p > 0  # double where: no 0 * inf, and finite gradients through the masked branch
    Us = jnp.where(live, U, 0.0)
    mean = jnp.sum(jnp.where(live, p * Us, 0.0), axis=-1)
    var = jnp.sum(jnp.where(live, p * (Us - mean[..., None]) ** 2, 0.0), axis=-1)
    entropy = -jnp.sum(jnp.where(live, p * jnp.where(live, lp, 0.0), 0.0), axis=-1)
    return _thermo_from(log_z, mean, var, Tb, entropy)


def kl_divergence(logp: Any, logq: Any) -> Float[Array, "*batch"]:
    r"""$\mathrm{KL}(P\|Q) = \sum_i P_i(\log P_i - \log Q_i)$ over the last axis (0 log 0 = 0)."""
    logp = jnp.asarray(logp)
    logq = jnp.asarray(logq)
    p = jnp.exp(logp)
    terms = jnp.where(p > 0, p * (jnp.where(p > 0, logp, 0.0) - logq), 0.0)
    return jnp.sum(terms, axis=-1)


class StreamingResult(eqx.Module):
    """Thermodynamics from a chunked pass, plus the most probable token of each query."""

    thermo: Thermodynamics
    top1: Int[Array, "*batch"]
    top1_log_prob: Float[Array, "*batch"]


def _chunks(space: SemanticSpace, chunk_size: int, background: Any):
    """Chunk accessor over the vocabulary without copying the embedding.

    Chunk `c` starts at `min(c * chunk, N - chunk)`; in the last chunk the tokens already seen
    (index < c * chunk) are masked out, so each token counts once.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: need a positive integer, got {chunk_size!r}.")
    n, d = space.embedding.shape
    chunk = min(chunk_size, n)
    n_chunks = -(-n // chunk)
    dtype = space.embedding.dtype
    b = jnp.zeros((n,), dtype) if background is None else jnp.asarray(background, dtype)
    if b.shape != (n,):
        raise ValueError(f"background: expected shape ({n},), got {b.shape}.")

    def get(c):
        start = jnp.minimum(c * chunk, n - chunk)
        idx = start + jnp.arange(chunk)
        e_c = jax.lax.dynamic_slice_in_dim(space.embedding, start, chunk, axis=0)
        m_c = jax.lax.dynamic_slice_in_dim(space.masses, start, chunk)
        b_c = jax.lax.dynamic_slice_in_dim(b, start, chunk)
        return e_c, m_c, idx >= c * chunk, b_c, idx, start

    return get, n_chunks, chunk


def _chunk_energy(x, mass, emb_c, m_c, b_c, potential):
    r2 = _sq_dist(x, emb_c)
    mb = jnp.broadcast_to(mass[..., None], r2.shape)
    return _lead(m_c, r2.ndim) * potential.from_sq_distance(r2, mb) + _lead(b_c, r2.ndim)


def streaming_thermodynamics(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    *,
    chunk_size: int = 65536,
    background: Any = None,
) -> StreamingResult:
    r"""Thermodynamics of the selection law over a large vocabulary, one chunk at a time.

    The vocabulary is cut into chunks of `chunk_size` tokens; each chunk's energies are a
    $B \times$ `chunk_size` $\times d$ matmul, and the log-sum-exp, mean and variance are merged
    across chunks with a streaming (running-maximum) log-sum-exp and Chan's pairwise update, so
    memory is $O(B\cdot\text{chunk\_size})$ beyond the embedding itself. $N = 10^6$, $d = 384$
    in float32 runs in under 2 GiB (see `docs/model/benchmark.md`).

    Arguments:
        space: the semantic space.
        query: the query or batch of queries (single-source: no `context`).
        potential: the potential, as in [`energies`][infograv.model.energies].
        T: temperature(s) $> 0$, scalar or broadcastable to the query batch shape.
        chunk_size: tokens per chunk.
        background: optional `(N,)` per-token energies.

    Returns:
        A `StreamingResult`: `thermo` (as [`thermodynamics`][infograv.model.thermodynamics]),
        `top1` (index of the most probable token) and `top1_log_prob`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import SemanticSpace, Query, Potential, energies, thermodynamics
        >>> space = SemanticSpace(jnp.arange(10.0).reshape(5, 2))
        >>> q, phi = Query(jnp.zeros(2)), Potential("gaussian", 2)
        >>> s = streaming_thermodynamics(space, q, phi, 0.5, chunk_size=2)
        >>> th = thermodynamics(energies(space, q, phi), 0.5)
        >>> bool(jnp.allclose(s.thermo.entropy, th.entropy)), int(s.top1)
        (True, 0)
    """
    _check_query(space, query)
    dtype = space.embedding.dtype
    return _stream(space, query.position.astype(dtype), query.mass.astype(dtype),
                   _check_temperature(T, dtype), potential, chunk_size, background)


@eqx.filter_jit
def _stream(space, x, mass, T, potential, chunk_size, background) -> StreamingResult:
    dtype = space.embedding.dtype
    batch = x.shape[:-1]
    T = jnp.broadcast_to(T, batch)
    get, n_chunks, _ = _chunks(space, chunk_size, background)

    def step(carry, c):
        a, w, mean, m2, ent, best_u, best_i = carry
        e_c, m_c, v_c, b_c, i_c, _ = get(c)
        U = _chunk_energy(x, mass, e_c, m_c, b_c, potential)
        v_c = jnp.broadcast_to(v_c, U.shape) & (U < jnp.inf)
        z = jnp.where(v_c, _scaled(jnp.where(v_c, U, 0.0), T[..., None]), -jnp.inf)
        Uz = jnp.where(v_c, U, 0.0)
        a_c = jnp.max(z, axis=-1)
        a_cs = jnp.where(jnp.isfinite(a_c), a_c, 0.0)
        d_c = jnp.where(v_c, z - a_cs[..., None], 0.0)
        e = jnp.where(v_c, jnp.exp(d_c), 0.0)
        w_c = jnp.sum(e, axis=-1)
        w_cs = jnp.where(w_c > 0, w_c, 1.0)
        mean_c = jnp.sum(e * Uz, axis=-1) / w_cs
        m2_c = jnp.sum(e * (Uz - mean_c[..., None]) ** 2, axis=-1)
        s_c = jnp.sum(e * d_c, axis=-1)  # sum of e_i (z_i - a_c), each term in [-1/e, 0]
        a_new = jnp.maximum(a, a_c)
        a_ns = jnp.where(jnp.isfinite(a_new), a_new, 0.0)
        # rescale both parts to the new running maximum (a part with w = 0 contributes 0)
        g1 = jnp.where(w > 0, jnp.exp(jnp.where(w > 0, a, a_ns) - a_ns), 0.0)
        g2 = jnp.where(w_c > 0, jnp.exp(a_cs - a_ns), 0.0)
        w1, w2 = w * g1, w_c * g2
        wt = w1 + w2
        wts = jnp.where(wt > 0, wt, 1.0)
        delta = mean_c - mean
        mean_new = mean + delta * w2 / wts
        m2_new = m2 * g1 + m2_c * g2 + delta**2 * w1 * w2 / wts
        sh1 = jnp.where(w > 0, jnp.where(w > 0, a, a_ns) - a_ns, 0.0)
        ent_new = (ent + w * sh1) * g1 + (s_c + w_c * (a_cs - a_ns)) * g2
        Umask = jnp.where(v_c, U, jnp.inf)
        j = jnp.argmin(Umask, axis=-1)
        u_c = jnp.take_along_axis(Umask, j[..., None], axis=-1)[..., 0]
        better = u_c < best_u
        best_u = jnp.where(better, u_c, best_u)
        best_i = jnp.where(better, i_c[j], best_i)
        return (a_new, wt, mean_new, m2_new, ent_new, best_u, best_i), None

    init = (
        jnp.full(batch, -jnp.inf, dtype),
        jnp.zeros(batch, dtype),
        jnp.zeros(batch, dtype),
        jnp.zeros(batch, dtype),
        jnp.zeros(batch, dtype),
        jnp.full(batch, jnp.inf, dtype),
        jnp.zeros(batch, jnp.arange(1).dtype),
    )
    # w = 0 and a = -inf at the start: the first chunk's statistics are taken as they are.
    (a, w, mean, m2, ent, best_u, best_i), _ = jax.lax.scan(step, init, jnp.arange(n_chunks))
    log_z = a + jnp.log(w)
    # H = log w - (1/w) sum_i e_i (z_i - a), with e_i = exp(z_i - a): no cancellation at low T
    thermo = _thermo_from(log_z, mean, m2 / w, T, jnp.log(w) - ent / w)
    top1_lp = jnp.minimum(_scaled(best_u, T) - log_z, 0.0)
    return StreamingResult(thermo=thermo, top1=best_i, top1_log_prob=top1_lp)


def chunked_log_probs(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    *,
    chunk_size: int = 65536,
    background: Any = None,
) -> Float[Array, "*batch N"]:
    r"""$\log P$ over the whole vocabulary, computed in two chunked passes (log Z, then log P).

    Same result as `log_probs(energies(...), T)` with memory $O(B\cdot N)$ for the output only
    (no $B\times N\times d$ intermediate beyond one chunk).
    """
    res = streaming_thermodynamics(space, query, potential, T, chunk_size=chunk_size,
                                   background=background)
    dtype = space.embedding.dtype
    T = jnp.broadcast_to(jnp.asarray(T, dtype), query.position.shape[:-1])
    return _chunked_lp(space, query.position.astype(dtype), query.mass.astype(dtype), T,
                       potential, chunk_size, background, res.thermo.log_z)


@eqx.filter_jit
def _chunked_lp(space, x, mass, T, potential, chunk_size, background, log_z):
    get, n_chunks, _ = _chunks(space, chunk_size, background)
    out = jnp.zeros(x.shape[:-1] + (space.n_tokens,), x.dtype)

    def body(c, out):
        e_c, m_c, _, b_c, _, start = get(c)
        U = _chunk_energy(x, mass, e_c, m_c, b_c, potential)
        lp = jnp.minimum(_scaled(U, T[..., None]) - log_z[..., None], 0.0)
        return jax.lax.dynamic_update_slice_in_dim(out, lp, start, axis=out.ndim - 1)

    return jax.lax.fori_loop(0, n_chunks, body, out)


def sharded_thermodynamics(
    space: SemanticSpace,
    query: Query,
    potential: Potential,
    T: Any,
    *,
    devices: Any = None,
    chunk_size: int = 65536,
    background: Any = None,
) -> StreamingResult:
    r"""[`streaming_thermodynamics`][infograv.model.streaming_thermodynamics] for a batch of
    queries sharded across devices with `jax.sharding`.

    The query batch (`position` `(B, d)`, `mass` `(B,)`, and `T` broadcast to `(B,)`) is split
    along a one-axis mesh named `"batch"`; the vocabulary is replicated. The batch is padded to a
    multiple of the device count and the padding removed from the result, so the numbers equal
    the one-device computation.

    Several hosts: call `jax.distributed.initialize(coordinator_address, num_processes,
    process_id)` on every host before anything else; `jax.devices()` then lists the devices of
    all hosts and the same call shards across them (each host must hold the same `space`).
    On one CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=4` simulates four devices.

    Arguments:
        space: the semantic space (replicated on every device).
        query: a batch of queries, `position` of shape `(B, d)`.
        potential: the potential.
        T: temperature(s), scalar or `(B,)`.
        devices: the devices to use (default `jax.devices()`).
        chunk_size: tokens per chunk.
        background: optional `(N,)` per-token energies.
    """
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    _check_query(space, query)
    if query.position.ndim != 2:
        raise ValueError("query: sharding needs a batch of queries, position of shape (B, d).")
    devs = list(jax.devices() if devices is None else devices)
    nd = len(devs)
    B = query.position.shape[0]
    dtype = space.embedding.dtype
    Tb = jnp.broadcast_to(_check_temperature(T, dtype), (B,))
    pad = (-B) % nd
    pos = jnp.pad(query.position.astype(dtype), ((0, pad), (0, 0)))
    mass = jnp.pad(query.mass.astype(dtype), (0, pad))
    Tp = jnp.pad(Tb, (0, pad), constant_values=1.0)
    mesh = Mesh(np.array(devs), ("batch",))
    shard = NamedSharding(mesh, P("batch"))
    repl = NamedSharding(mesh, P())
    pos = jax.device_put(pos, NamedSharding(mesh, P("batch", None)))
    mass = jax.device_put(mass, shard)
    Tp = jax.device_put(Tp, shard)
    space_r = jax.device_put(space, repl)
    bg = None if background is None else jax.device_put(jnp.asarray(background, dtype), repl)

    @eqx.filter_jit
    def run(space_r, pos, mass, Tp, bg):
        return _stream(space_r, pos, mass, Tp, potential, chunk_size, bg)

    out = run(space_r, pos, mass, Tp, bg)
    return jax.tree_util.tree_map(lambda a: a[:B], out)


def background_energies(
    space: SemanticSpace,
    potential: Potential,
    *,
    coupling: float = 1.0,
    chunk_size: int = 4096,
) -> Float[Array, " N"]:
    r"""Energy of each token in the field of all the other tokens (the cloud's own field).

    $b_i = \lambda\, m_i \sum_{j\ne i} \Phi(|x_i - x_j|; m_j)$, the superposed Green's-function
    potential of the token cloud (formalism §3), with coupling $\lambda$ = `coupling`. Added to the
    query's energies through `background=`, it is the background term that breaks the
    mass–temperature scaling (formalism §4). Computed in row chunks of `chunk_size` tokens.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import SemanticSpace, Potential
        >>> s = SemanticSpace(jnp.array([[0.0, 0.0], [3.0, 4.0]]))
        >>> background_energies(s, Potential("harmonic", 2)).tolist()   # k r^2 / 2
        [12.5, 12.5]
    """
    n = space.n_tokens
    idx = jnp.arange(n)

    def rows(i0):
        rid = i0 + jnp.arange(chunk_size)
        safe = jnp.minimum(rid, n - 1)
        x = space.embedding[safe]
        r2 = _sq_dist(x, space.embedding)
        phi = potential.from_sq_distance(r2, jnp.broadcast_to(space.masses, r2.shape))
        phi = jnp.where(safe[:, None] == idx[None, :], 0.0, phi)
        return space.masses[safe] * jnp.sum(phi, axis=-1)

    starts = jnp.arange(0, n, chunk_size)
    out = jax.lax.map(rows, starts).reshape(-1)[:n]
    return coupling * out
