"""The semantic space: token positions, token masses, and the background density."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = [
    "SemanticSpace",
    "unigram_masses",
    "toy_clusters",
    "toy_rings",
    "toy_uniform",
]


def _concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _float_array(x: Any, name: str) -> jax.Array:
    try:
        arr = jnp.asarray(x)
    except TypeError as e:
        raise TypeError(f"{name}: expected an array of floats, got {type(x).__name__}.") from e
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        if jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_:
            arr = arr.astype(jnp.zeros(()).dtype)
        else:
            raise TypeError(f"{name}: expected real floats, got dtype {arr.dtype}.")
    return arr


def _all_finite(a: jax.Array, rows: int = 65536) -> bool:
    """Finite check in row blocks, so a huge embedding needs no full-size temporary."""
    return all(bool(jnp.all(jnp.isfinite(a[i:i + rows]))) for i in range(0, a.shape[0], rows))


def unigram_masses(probabilities: Any, alpha: float = 1.0) -> Float[Array, " N"]:
    r"""Token masses from unigram frequencies: $m_i \propto p_i^\alpha$, normalised to mean 1.

    formalism §1 ("option: from unigram frequency"). $\alpha = 0$ gives equal masses, $\alpha = 1$
    masses proportional to frequency, $\alpha < 0$ gives rare tokens more mass.

    Arguments:
        probabilities: `(N,)` non-negative frequencies or counts (need not sum to 1).
        alpha: the exponent.

    Returns:
        `(N,)` masses with mean 1.

    Raises:
        ValueError: `probabilities` is empty, has NaN, negative, or (for `alpha < 0`) zero entries.

    Example:
        >>> unigram_masses([1.0, 3.0], alpha=1.0).tolist()
        [0.5, 1.5]
    """
    p = _float_array(probabilities, "probabilities")
    if p.ndim != 1 or p.shape[0] == 0:
        raise ValueError(f"probabilities: expected a non-empty (N,) array, got shape {p.shape}.")
    if _concrete(p):
        pn = np.asarray(p)
        if not np.all(np.isfinite(pn)) or np.any(pn < 0):
            raise ValueError("probabilities: entries must be finite and >= 0.")
        if alpha < 0 and np.any(pn == 0):
            raise ValueError("probabilities: zero entries with alpha < 0 give infinite masses.")
    w = p**alpha
    return w / jnp.mean(w)


class SemanticSpace(eqx.Module):
    r"""A vocabulary of $N$ tokens at points $x_i \in \mathbb{R}^d$ with masses $m_i > 0$.

    The background semantic density is the Gaussian kernel density estimate (formalism §1)

    $$\rho_{\rm sem}(x) = \sum_i m_i\, (2\pi h_i^2)^{-d/2} \exp\!\big(-D(x, x_i)^2/2h_i^2\big),$$

    with $D$ the Euclidean distance, or the angular distance $\arccos(\hat x\cdot\hat x_i)$ for
    unit-normalised embeddings (then the normalisation is that of the tangent-plane Gaussian in
    $d-1$ dimensions, accurate for $h \ll 1$). Bandwidths:

    - `"scott"` (default): one $h = \bar s\, N^{-1/(d+4)}$ (Scott's rule), $\bar s$ the mean
      per-coordinate standard deviation;
    - `"knn"`: adaptive, $h_i$ = distance from $x_i$ to its `knn`-th nearest neighbour;
    - a positive number: that fixed $h$.

    Arguments:
        embedding: `(N, d)` token positions (finite).
        masses: `(N,)` token masses, finite and $\ge 0$ (default: all 1). See
            [`unigram_masses`][infograv.model.unigram_masses] for frequency-based masses.
        labels: optional `(N,)` integer ground-truth cluster labels (toy spaces have them).
        bandwidth: `"scott"`, `"knn"`, or a positive float.
        knn: the neighbour rank for `bandwidth="knn"`.
        angular: use the angular distance in the density (embeddings are normalised for it).

    Raises:
        ValueError: empty vocabulary, wrong shapes, NaN/inf entries, negative masses, a bad
            bandwidth, a zero row with `angular=True` (named by its index); each message names
            the argument.

    Example:
        >>> import jax.numpy as jnp
        >>> space = SemanticSpace(jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        >>> space.n_tokens, space.dim
        (3, 2)
        >>> bool(space.density(jnp.zeros(2)) > space.density(jnp.array([5.0, 5.0])))
        True
    """

    embedding: Float[Array, "N d"]
    masses: Float[Array, " N"]
    bandwidths: Float[Array, " N"]
    labels: Int[Array, " N"] | None
    angular: bool = eqx.field(static=True)

    def __init__(
        self,
        embedding: Any,
        masses: Any = None,
        *,
        labels: Any = None,
        bandwidth: str | float = "scott",
        knn: int = 10,
        angular: bool = False,
    ):
        emb = _float_array(embedding, "embedding")
        if emb.ndim != 2:
            raise ValueError(
                f"embedding: expected a 2-D array of shape (N, d), got shape {emb.shape}."
            )
        n, d = emb.shape
        if n == 0:
            raise ValueError("embedding: the vocabulary is empty (N = 0); need at least 1 token.")
        if d == 0:
            raise ValueError("embedding: the dimension d is 0; need d >= 1.")
        if _concrete(emb) and not _all_finite(emb):
            raise ValueError("embedding: contains NaN or inf entries.")
        if angular:
            norms = jnp.linalg.norm(emb, axis=1, keepdims=True)
            if _concrete(norms) and not bool(jnp.all(norms > 0)):
                row = int(np.argmin(np.asarray(norms[:, 0]) > 0))
                raise ValueError(
                    f"embedding: row {row} is the zero vector, which has no direction; "
                    "angular=True needs every token's vector to be nonzero (drop the row, or "
                    "use angular=False)."
                )
            emb = emb / norms
        if masses is None:
            m = jnp.ones((n,), emb.dtype)
        else:
            m = _float_array(masses, "masses").astype(emb.dtype)
            if m.shape != (n,):
                raise ValueError(
                    f"masses: expected shape ({n},) to match embedding, got {m.shape}."
                )
            if _concrete(m):
                if not np.all(np.isfinite(np.asarray(m))):
                    raise ValueError("masses: contains NaN or inf entries.")
                if np.any(np.asarray(m) < 0):
                    raise ValueError("masses: token masses must be >= 0.")
        if labels is not None:
            lab = jnp.asarray(labels)
            if lab.shape != (n,) or not jnp.issubdtype(lab.dtype, jnp.integer):
                raise ValueError(f"labels: expected integer labels of shape ({n},).")
            labels = lab
        self.embedding = emb
        self.masses = m
        self.labels = labels
        self.angular = bool(angular)
        self.bandwidths = _bandwidths(emb, bandwidth, knn, angular)

    @property
    def n_tokens(self) -> int:
        """The vocabulary size $N$."""
        return int(self.embedding.shape[0])

    @property
    def dim(self) -> int:
        """The dimension $d$."""
        return int(self.embedding.shape[1])

    def distances(self, x: Any) -> Float[Array, "*batch N"]:
        r"""Distances $D(x, x_i)$ from points `x` (`(..., d)`) to every token.

        Raises:
            ValueError: with `angular=True`, a zero point `x` (it has no direction).
        """
        x = jnp.asarray(x, self.embedding.dtype)
        if self.angular:
            nx = jnp.linalg.norm(x, axis=-1, keepdims=True)
            if _concrete(nx) and not bool(jnp.all(nx > 0)):
                raise ValueError("x: a zero vector has no direction; the angular distance "
                                 "needs nonzero points.")
            xn = x / nx
            c = jnp.clip(xn @ self.embedding.T, -1.0, 1.0)
            return jnp.arccos(c)
        r2 = _sq_dist(x, self.embedding)
        return jnp.sqrt(jnp.maximum(r2, 0.0))

    def log_density(self, x: Any) -> Float[Array, "*batch"]:
        r"""$\log\rho_{\rm sem}(x)$ at points `x` of shape `(..., d)` (log-sum-exp; any $d$)."""
        x = jnp.asarray(x, self.embedding.dtype)
        if x.shape[-1] != self.dim:
            raise ValueError(f"x: last axis must be d = {self.dim}, got shape {x.shape}.")
        dist = self.distances(x)
        h = self.bandwidths
        k = self.dim - 1 if self.angular else self.dim
        h = _lead(h, dist.ndim)
        logk = -0.5 * (dist / h) ** 2 - 0.5 * k * jnp.log(2 * jnp.pi * h**2)
        return jax.scipy.special.logsumexp(logk, b=_lead(self.masses, dist.ndim), axis=-1)

    def density(self, x: Any) -> Float[Array, "*batch"]:
        r"""$\rho_{\rm sem}(x)$ at points `x` of shape `(..., d)`."""
        return jnp.exp(self.log_density(x))


def _sq_dist(x: jax.Array, y: jax.Array) -> jax.Array:
    """Squared distances `(..., N)` from `x` `(..., d)` to the rows of `y` `(N, d)` (matmul)."""
    x2 = jnp.sum(x * x, axis=-1)[..., None]
    y2 = _lead(jnp.sum(y * y, axis=-1), x.ndim)
    # -2 is folded into the small (..., d) operand, so the (..., N) pass after the matmul is a
    # single fused add-add-max.
    return jnp.maximum((x2 + y2) + (-2.0 * x) @ y.T, 0.0)


def _lead(v: jax.Array, ndim: int) -> jax.Array:
    """Prepend singleton axes to `v` until it has `ndim` axes (explicit rank promotion)."""
    return jnp.reshape(v, (1,) * (ndim - v.ndim) + v.shape)


def _bandwidths(emb: jax.Array, bandwidth: str | float, knn: int, angular: bool) -> jax.Array:
    n, d = emb.shape
    if isinstance(bandwidth, str):
        if bandwidth == "scott":
            s = jnp.mean(jnp.std(emb, axis=0)) if n > 1 else jnp.asarray(1.0, emb.dtype)
            s = jnp.where(s > 0, s, 1.0)
            h = s * n ** (-1.0 / (d + 4))
            return jnp.full((n,), h, emb.dtype)
        if bandwidth == "knn":
            if not isinstance(knn, int) or knn < 1 or knn >= n:
                raise ValueError(f"knn: need an integer 1 <= knn < N = {n}, got {knn!r}.")
            if angular:
                dist = jnp.arccos(jnp.clip(emb @ emb.T, -1.0, 1.0))
            else:
                dist = jnp.sqrt(_sq_dist(emb, emb))
            kth = jnp.sort(dist, axis=1)[:, knn]  # column 0 is the point itself
            return jnp.maximum(kth, 1e-12)
        raise ValueError(
            f"bandwidth: expected 'scott', 'knn' or a positive number, got {bandwidth!r}."
        )
    h = float(bandwidth)
    if not np.isfinite(h) or h <= 0:
        raise ValueError(f"bandwidth: a fixed bandwidth must be positive, got {bandwidth!r}.")
    return jnp.full((n,), h, emb.dtype)


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed: expected an integer seed, got {seed!r}.")
    return np.random.default_rng(int(seed))


def toy_clusters(
    seed: int,
    *,
    n_clusters: int = 4,
    n_per_cluster: int = 50,
    d: int = 2,
    spread: float = 0.35,
    box: float = 6.0,
    min_separation: float | None = None,
    **space_kwargs: Any,
) -> SemanticSpace:
    r"""Gaussian clusters with empty voids between them (formalism §1 toy space).

    Cluster centres are drawn uniformly in $[-\text{box}/2, \text{box}/2]^d$ with pairwise
    distance at least `min_separation` (default $6\times$`spread`), so low-density voids lie
    between clusters; each token is centre $+\ \mathcal N(0, \text{spread}^2 I)$. Labels are the
    cluster indices.

    Arguments:
        seed: integer seed (the generator is NumPy's PCG64).
        n_clusters: number of clusters.
        n_per_cluster: tokens per cluster.
        d: dimension.
        spread: standard deviation of each cluster.
        box: side of the cube the centres are drawn in.
        min_separation: the least distance between centres.
        **space_kwargs: passed to [`SemanticSpace`][infograv.model.SemanticSpace].

    Example:
        >>> s = toy_clusters(0, n_clusters=3, n_per_cluster=10)
        >>> s.embedding.shape, sorted(set(s.labels.tolist()))
        ((30, 2), [0, 1, 2])
    """
    rng = _rng(seed)
    sep = 6.0 * spread if min_separation is None else float(min_separation)
    centres: list[np.ndarray] = []
    for _ in range(10000):
        c = rng.uniform(-box / 2, box / 2, size=d)
        if all(np.linalg.norm(c - o) >= sep for o in centres):
            centres.append(c)
        if len(centres) == n_clusters:
            break
    else:
        raise ValueError(
            f"min_separation: could not place {n_clusters} centres {sep} apart in a box of side "
            f"{box}; lower min_separation or n_clusters, or raise box."
        )
    cen = np.stack(centres)
    pts = cen[:, None, :] + spread * rng.standard_normal((n_clusters, n_per_cluster, d))
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    return SemanticSpace(jnp.asarray(pts.reshape(-1, d)), labels=jnp.asarray(labels),
                         **space_kwargs)


def toy_rings(
    seed: int,
    *,
    n_rings: int = 2,
    n_per_ring: int = 80,
    d: int = 2,
    radii: tuple[float, ...] | None = None,
    noise: float = 0.05,
    **space_kwargs: Any,
) -> SemanticSpace:
    r"""Concentric noisy rings in the first two coordinates (others $\mathcal N(0,\text{noise}^2)$).

    Labels are ring indices. Radii default to $1, 2, \dots$.

    Example:
        >>> toy_rings(0, n_rings=2, n_per_ring=5).embedding.shape
        (10, 2)
    """
    if d < 2:
        raise ValueError(f"d: rings need d >= 2, got {d}.")
    rng = _rng(seed)
    radii = tuple(float(i + 1) for i in range(n_rings)) if radii is None else tuple(radii)
    if len(radii) != n_rings:
        raise ValueError(f"radii: expected {n_rings} radii, got {len(radii)}.")
    pts, labels = [], []
    for j, rad in enumerate(radii):
        th = rng.uniform(0, 2 * np.pi, n_per_ring)
        p = noise * rng.standard_normal((n_per_ring, d))
        p[:, 0] += rad * np.cos(th)
        p[:, 1] += rad * np.sin(th)
        pts.append(p)
        labels.append(np.full(n_per_ring, j))
    return SemanticSpace(jnp.asarray(np.concatenate(pts)),
                         labels=jnp.asarray(np.concatenate(labels)), **space_kwargs)


def toy_uniform(seed: int, *, n: int = 200, d: int = 2, box: float = 4.0,
                **space_kwargs: Any) -> SemanticSpace:
    r"""Tokens uniform in the cube $[-\text{box}/2, \text{box}/2]^d$ (no labels).

    Example:
        >>> toy_uniform(0, n=7, d=3).embedding.shape
        (7, 3)
    """
    rng = _rng(seed)
    return SemanticSpace(jnp.asarray(rng.uniform(-box / 2, box / 2, (n, d))), **space_kwargs)
