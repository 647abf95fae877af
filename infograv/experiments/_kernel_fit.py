"""Fitting the selection law's potential kernels to a real model's next-token distributions:
the kernel families, the loss (exact over the vocabulary, or top-K plus a remainder bucket),
Adam in JAX, and held-out evaluation. The study's choices are set out in `_validation.py`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._compile import SymbolicFunction, to_jax
from ._stats import bootstrap_ci

__all__ = [
    "FAMILIES", "QUERY_MAPS", "LOSSES", "KernelFamily", "kernel_family", "adam_minimise",
    "fit_kernel", "evaluate_fit", "dot_baseline",
]

FAMILIES = ("newton", "plummer", "yukawa", "gaussian", "harmonic")
QUERY_MAPS = ("scalar", "scalar_bias", "diagonal")
LOSSES = ("full", "topk")


# --------------------------------------------------------------------------------------------
# Kernel families and fitting
# --------------------------------------------------------------------------------------------


class KernelFamily(eqx.Module):
    r"""One kernel family $\Phi_\theta(r)$ compiled from `infograv.symbolic.kernels`.

    The information mass is fixed to $M = 1$ (only $GM/T$ is identifiable); every other
    parameter (`G`, `epsilon`, `mu`, `sigma` or `k`) is positive and fitted as a logarithm.

    Attributes:
        name: the kernel's name.
        d: the dimension of its radial profile.
        phi: the compiled potential, a function of `r` with parameters as leaves.
        param_names: the fitted parameter names.
    """

    name: str = eqx.field(static=True)
    d: int = eqx.field(static=True)
    phi: SymbolicFunction
    param_names: tuple[str, ...] = eqx.field(static=True)

    def potential(self, r: jax.Array, log_params: Mapping[str, jax.Array]) -> jax.Array:
        """$\\Phi(r)$ with the parameters `exp(log_params)` (M fixed to 1)."""
        values = dict(self.phi.params)
        for n in self.param_names:
            values[n] = jnp.exp(log_params[n]).astype(r.dtype)
        if "M" in values:
            values["M"] = jnp.ones((), r.dtype)
        phi = eqx.tree_at(lambda f: f.params, self.phi, values)
        return phi(r)


def kernel_family(name: str, d: int = 3) -> KernelFamily:
    """Compile the kernel `name` of `infograv.symbolic.kernels` in dimension `d` for fitting.

    Arguments:
        name: `"newton"`, `"plummer"`, `"yukawa"`, `"gaussian"` or `"harmonic"`.
        d: the dimension of the radial profile (ignored by Gaussian and harmonic).

    Raises:
        ValueError: unknown `name`.

    Example:
        >>> import jax.numpy as jnp
        >>> fam = kernel_family("gaussian")
        >>> float(fam.potential(jnp.array(0.0), {"G": jnp.array(0.0), "sigma": jnp.array(0.0)}))
        -1.0
    """
    from ..symbolic import kernels as K

    if name not in FAMILIES:
        raise ValueError(f"name: unknown kernel family {name!r}; choose from {FAMILIES}.")
    ker = K.kernel(name, int(d))
    expr = ker.elementary()
    params = {s: 1.0 for s in ker.params}
    phi = to_jax(expr, [ker.r], params=params)
    names = tuple(s.name for s in ker.params if s.name != "M")
    return KernelFamily(name=name, d=int(d), phi=phi, param_names=names)


def _safe_norm_from_sq(r2: jax.Array) -> jax.Array:
    """sqrt with a finite gradient at 0 (double-where)."""
    pos = r2 > 0
    safe = jnp.where(pos, r2, jnp.ones_like(r2))
    return jnp.where(pos, jnp.sqrt(safe), jnp.zeros_like(r2))


def _query(theta: Mapping[str, jax.Array], h: jax.Array) -> jax.Array:
    """x_q = a * h (+ b): `a` scalar or diagonal, `b` optional; broadcast explicitly."""
    q = jnp.broadcast_to(theta["a"], h.shape) * h
    if "b" in theta:
        q = q + jnp.broadcast_to(theta["b"], h.shape)
    return q


def _energies(family: KernelFamily, theta: Mapping[str, Any], h: jax.Array, x: jax.Array,
              x_sq: jax.Array) -> jax.Array:
    """Energies `(B, n)` of tokens `x` `(B, n, d)` or `(n, d)` for hidden states `h` `(B, d)`."""
    q = _query(theta, h)
    if x.ndim == 3:
        cross = jnp.einsum("bd,bnd->bn", q, x)
    else:
        cross = q @ x.T
        x_sq = x_sq[None, :]
    r2 = jnp.maximum(jnp.sum(q * q, axis=-1, keepdims=True) + x_sq - 2 * cross, 0.0)
    return family.potential(_safe_norm_from_sq(r2), theta["log"])


def adam_minimise(
    loss: Callable[[Any], jax.Array],
    params: Any,
    *,
    steps: int,
    learning_rate: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    batches: Any = None,
) -> tuple[Any, jax.Array]:
    r"""Minimise `loss(params)` with Adam (full batch, fixed number of steps, under `jit`).

    $m \leftarrow \beta_1 m + (1-\beta_1) g$, $v \leftarrow \beta_2 v + (1-\beta_2) g^2$,
    $\theta \leftarrow \theta - \eta\,\hat m/(\sqrt{\hat v} + \epsilon)$ with bias-corrected
    $\hat m, \hat v$.

    Arguments:
        loss: a scalar function of a pytree of arrays.
        params: the initial pytree.
        steps: number of steps.
        learning_rate: $\eta$.
        batches: optional integer array `(steps, batch)`; step `i` then minimises
            `loss(params, batches[i])` (minibatch Adam).

    Returns:
        `(params, losses)`: the final parameters and the loss before each step, shape `(steps,)`.

    Example:
        >>> import jax.numpy as jnp
        >>> p, losses = adam_minimise(lambda x: jnp.sum((x - 3.0) ** 2), jnp.zeros(2),
        ...                           steps=500, learning_rate=0.1)
        >>> bool(jnp.allclose(p, 3.0, atol=1e-2))
        True

    Reference: D. P. Kingma and J. Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """
    value_and_grad = jax.value_and_grad(loss)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype

    def step(carry: Any, xs: Any) -> tuple[Any, jax.Array]:
        p, m, v = carry
        i, batch = xs
        val, g = value_and_grad(p) if batch is None else value_and_grad(p, batch)
        m = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        c1 = 1 - jnp.power(jnp.asarray(b1, dtype), i + 1)
        c2 = 1 - jnp.power(jnp.asarray(b2, dtype), i + 1)
        p = jax.tree_util.tree_map(
            lambda p_, m_, v_: p_ - learning_rate * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps),
            p, m, v)
        return (p, m, v), val

    @jax.jit
    def run(p0: Any) -> tuple[Any, jax.Array]:
        xs = (jnp.arange(steps, dtype=dtype), None if batches is None else jnp.asarray(batches))
        (p, _, _), losses = jax.lax.scan(step, (p0, zeros, zeros), xs)
        return p, losses

    return run(params)


def _training_sets(logp: np.ndarray, top_k: int, n_rest: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k indices, sampled remainder indices, real top-k probabilities and remainder mass."""
    B, V = logp.shape
    top_k, n_rest = min(top_k, V - 1), min(n_rest, V - top_k)
    top = np.argsort(-logp, axis=1)[:, :top_k]
    rng = np.random.default_rng(seed)
    rest = np.empty((B, n_rest), dtype=np.int64)
    for b in range(B):
        mask = np.ones(V, bool)
        mask[top[b]] = False
        rest[b] = rng.choice(np.flatnonzero(mask), n_rest, replace=False)
    p_top = np.exp(np.take_along_axis(logp, top, axis=1))
    p_rest = np.clip(1.0 - p_top.sum(axis=1), 1e-12, None)
    return top, rest, p_top, p_rest


def _init_theta(family: KernelFamily, h: np.ndarray, emb: np.ndarray, top: np.ndarray,
                query_map: str, dtype: Any) -> dict[str, Any]:
    d = h.shape[1]
    # length scale: median distance from h to its top tokens (x_q = h at the start)
    diff = h[:, None, :] - emb[top[:, :8]]
    scale = float(np.median(np.sqrt(np.sum(diff * diff, axis=-1))))
    log = {}
    for n in family.param_names:
        if n in ("epsilon", "sigma"):
            log[n] = math.log(scale)
        elif n == "mu":
            log[n] = -math.log(scale)
        elif n == "k":
            log[n] = -2 * math.log(scale) + math.log(4.0)
        else:  # G: energy differences of order a few units at distance `scale`
            log[n] = math.log(4.0) + (math.log(scale) if family.name in ("newton", "plummer",
                                                                          "yukawa") else 0.0)
    theta: dict[str, Any] = {
        "a": jnp.ones((d,) if query_map == "diagonal" else (), dtype),
        "log": {n: jnp.asarray(v, dtype) for n, v in log.items()},
    }
    if query_map != "scalar":
        theta["b"] = jnp.zeros((d,), dtype)
    return theta


def fit_kernel(
    family: KernelFamily,
    hidden: Any,
    logp: Any,
    embedding: Any,
    *,
    top_k: int = 32,
    n_rest: int = 256,
    steps: int = 600,
    learning_rate: float = 0.03,
    query_map: str = "scalar_bias",
    loss: str = "full",
    batch_prompts: int | None = 32,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Fit one kernel family to real next-token distributions by minimising KL.

    Loss: the mean over prompts of $\mathrm{KL}(P\,\|\,Q_\theta)$ with
    $Q_\theta \propto e^{-U_i(\theta)}$, $U_i = \Phi_\theta(|x_i - x_q(\theta)|)$ and
    $x_q = a h + b$ (`query_map`). With `loss="full"` the KL is exact over the whole vocabulary:
    for the scalar maps $|x_q - x_i|^2 = a^2|h|^2 + 2a\,h\cdot b + |b|^2 - 2a\,h\cdot x_i
    - 2\,b\cdot x_i + |x_i|^2$ needs only the fixed products $h\cdot x_i$ (computed once) and
    $E b$, so a step costs $O(BV + Vd)$. With `loss="topk"` the KL is taken on the real
    top-`top_k` tokens plus one remainder bucket whose model mass is estimated from `n_rest`
    uniformly sampled other tokens (for the diagonal map, whose exact loss costs $O(BVd)$).
    With `loss="full"` each Adam step uses a random minibatch of `batch_prompts` prompts
    (seeded; `None`: all prompts every step); the reported `final_loss` is on all prompts.
    Before Adam, the strength (`G`, or `k` for the harmonic kernel) is set to the best of 25
    factors $e^{-12} \dots e^{12}$ of its initial value (loss on up to 64 prompts).

    Arguments:
        family: from [`kernel_family`][infograv.experiments.kernel_family].
        hidden: final hidden states, shape `(B, d)`.
        logp: real next-token log-probabilities, shape `(B, V)`.
        embedding: the token positions, shape `(V, d)`.
        top_k, n_rest, steps, learning_rate, query_map, seed: see
            [`ValidationSettings`][infograv.experiments.ValidationSettings].

    Returns:
        A dict: `theta` (the fitted pytree), `params` (kernel parameters, natural scale),
        `losses` (per step), `family`, `settings`.

    Raises:
        ValueError: shapes do not match, or `query_map` is invalid.
    """
    h = np.asarray(hidden)
    lp = np.asarray(logp)
    emb = np.asarray(embedding)
    if h.ndim != 2 or lp.ndim != 2 or emb.ndim != 2:
        raise ValueError("hidden, logp, embedding: must be 2-D arrays (B, d), (B, V), (V, d).")
    if h.shape[0] != lp.shape[0] or lp.shape[1] != emb.shape[0] or h.shape[1] != emb.shape[1]:
        raise ValueError(
            f"hidden {h.shape}, logp {lp.shape}, embedding {emb.shape}: need (B, d), (B, V), "
            "(V, d) with matching B, V, d."
        )
    if query_map not in QUERY_MAPS:
        raise ValueError(f"query_map: expected one of {QUERY_MAPS}, got {query_map!r}.")
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}.")
    dtype = jnp.asarray(h[:1]).dtype
    V = emb.shape[0]
    top, rest, p_top, p_rest = _training_sets(lp, top_k, n_rest, seed)
    theta0 = _init_theta(family, h, emb, top, query_map, dtype)
    if loss == "full":
        loss_fn = _full_loss(family, h, lp, emb, dtype)
        B = h.shape[0]
        batches = None
        if batch_prompts is not None and batch_prompts < B:
            rng = np.random.default_rng(seed)
            batches = np.stack([rng.choice(B, batch_prompts, replace=False)
                                for _ in range(steps)]).astype(np.int32)
        all_rows = jnp.arange(B)
        theta0 = _scan_strength(loss_fn, theta0, jnp.arange(min(B, 64)))
        objective: Callable[..., jax.Array] = (
            loss_fn if batches is not None else (lambda th: loss_fn(th, all_rows))
        )
        theta, losses = adam_minimise(objective, theta0, steps=steps,
                                      learning_rate=learning_rate, batches=batches)
        return {
            "family": family.name, "d": family.d, "theta": theta,
            "params": {n: float(jnp.exp(v)) for n, v in theta["log"].items()},
            "median_top_distance": _median_top_distance(theta, h, emb, top),
            "losses": np.asarray(losses),
            "final_loss": float(jax.jit(loss_fn)(theta, all_rows)),
            "settings": {"loss": loss, "steps": steps, "learning_rate": learning_rate,
                         "query_map": query_map, "batch_prompts": batch_prompts,
                         "seed": seed},
        }
    n_other = V - top.shape[1]
    idx = np.concatenate([top, rest], axis=1)
    x = jnp.asarray(emb[idx], dtype)                         # (B, k + s, d)
    x_sq = jnp.sum(x * x, axis=-1)
    hj = jnp.asarray(h, dtype)
    log_w = jnp.asarray(math.log(n_other / rest.shape[1]), dtype)
    k = top.shape[1]
    pt = jnp.asarray(p_top, dtype)
    pr = jnp.asarray(p_rest, dtype)
    entropy_part = jnp.sum(pt * jnp.log(pt), axis=1) + pr * jnp.log(pr)

    def bucket_loss(theta: Any) -> jax.Array:
        logits = -_energies(family, theta, hj, x, x_sq)
        lt, lr = logits[:, :k], logits[:, k:] + log_w
        log_rest = jax.nn.logsumexp(lr, axis=1)
        log_z = jnp.logaddexp(jax.nn.logsumexp(lt, axis=1), log_rest)
        cross = jnp.sum(pt * (lt - log_z[:, None]), axis=1) + pr * (log_rest - log_z)
        return jnp.mean(entropy_part - cross)

    theta, losses = adam_minimise(bucket_loss, theta0, steps=steps, learning_rate=learning_rate)
    return {
        "family": family.name,
        "d": family.d,
        "theta": theta,
        "params": {n: float(jnp.exp(v)) for n, v in theta["log"].items()},
        "losses": np.asarray(losses),
        "final_loss": float(bucket_loss(theta)),
        "settings": {"loss": loss, "top_k": int(k), "n_rest": int(rest.shape[1]),
                     "steps": steps, "learning_rate": learning_rate, "query_map": query_map,
                     "seed": seed},
    }


def _median_top_distance(theta: Any, h: np.ndarray, emb: np.ndarray, top: np.ndarray) -> float:
    """Median distance |x_q - x_i| from the fitted query to each prompt's 8 most likely tokens.

    Compared with a fitted length (Plummer's epsilon, the Gaussian sigma, 1/mu for Yukawa) it says
    whether the kernel is used in its gravity-like core or in its wide, harmonic-like limit.
    """
    q = np.asarray(_query(theta, jnp.asarray(h, jnp.asarray(h[:1]).dtype)), dtype=np.float64)
    diff = q[:, None, :] - emb[top[:, :8]]
    return float(np.median(np.sqrt(np.sum(diff * diff, axis=-1))))


def _scan_strength(loss_fn: Callable[[Any, jax.Array], jax.Array], theta: dict[str, Any],
                   rows: jax.Array) -> dict[str, Any]:
    """Start Adam from the best strength (`G` or `k`) on a grid of 25 factors e^-12 … e^12."""
    name = "G" if "G" in theta["log"] else "k"
    if name not in theta["log"]:
        return theta
    f = jax.jit(loss_fn)
    best, best_val = theta, float("inf")
    for shift in np.linspace(-12.0, 12.0, 25):
        log = dict(theta["log"])
        log[name] = theta["log"][name] + float(shift)
        cand = {**theta, "log": log}
        val = float(f(cand, rows))
        if np.isfinite(val) and val < best_val:
            best, best_val = cand, val
    return best


def _full_loss(family: KernelFamily, h: np.ndarray, lp: np.ndarray, emb: np.ndarray,
               dtype: Any) -> Callable[[Any, jax.Array], jax.Array]:
    """Exact mean KL over the whole vocabulary (see `fit_kernel`)."""
    hj = jnp.asarray(h, dtype)
    ej = jnp.asarray(emb, dtype)
    e_sq = jnp.sum(ej * ej, axis=-1)[None, :]
    h_sq = jnp.sum(hj * hj, axis=-1)[:, None]
    cross = jnp.asarray(h @ emb.T, dtype)                  # (B, V), fixed
    p = jnp.asarray(np.exp(lp), dtype)
    neg_entropy = jnp.asarray(np.sum(np.exp(lp) * lp, axis=1), dtype)

    def loss(theta: Any, rows: jax.Array) -> jax.Array:
        a = theta["a"]
        hr = hj[rows]
        if a.ndim == 0:
            q_sq = a * a * h_sq[rows]
            qe = a * cross[rows]
            if "b" in theta:
                b = theta["b"]
                q_sq = q_sq + 2 * a * (hr @ b)[:, None] + jnp.sum(b * b)
                qe = qe + (ej @ b)[None, :]
        else:
            q = _query(theta, hr)
            q_sq = jnp.sum(q * q, axis=-1)[:, None]
            qe = q @ ej.T
        r = _safe_norm_from_sq(jnp.maximum(q_sq - 2 * qe + e_sq, 0.0))
        logq = jax.nn.log_softmax(-family.potential(r, theta["log"]), axis=-1)
        return jnp.mean(neg_entropy[rows] - jnp.sum(p[rows] * logq, axis=-1))

    return loss


def _model_logprobs(family: KernelFamily, theta: Any, hidden: np.ndarray, emb: jax.Array,
                    emb_sq: jax.Array, chunk: int = 32) -> np.ndarray:
    """Full-vocabulary log-probabilities `(B, V)` of a fitted family, in chunks of prompts."""
    out = []

    @jax.jit
    def f(hc: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(-_energies(family, theta, hc, emb, emb_sq), axis=-1)

    for i in range(0, hidden.shape[0], chunk):
        out.append(np.asarray(f(jnp.asarray(hidden[i:i + chunk], emb.dtype))))
    return np.concatenate(out, axis=0)


def _kl_rows(logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    p = np.exp(logp)
    return np.sum(p * (logp - logq), axis=1)


def _entropy_rows(logp: np.ndarray) -> np.ndarray:
    return -np.sum(np.exp(logp) * logp, axis=1)


def evaluate_fit(
    logq: np.ndarray,
    logp: np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out metrics of a model distribution `logq` against the real `logp` (both `(B, V)`).

    Returns per-prompt arrays (`kl`, `top1`, `entropy_model`, `entropy_real`) and, each with a
    bootstrap CI `(estimate, low, high)`: `mean_kl`, `top1_agreement`, `entropy_corr` (Pearson
    correlation of model and real entropies over prompts).
    """
    kl = _kl_rows(logp, logq)
    top1 = (np.argmax(logp, axis=1) == np.argmax(logq, axis=1)).astype(np.float64)
    hq, hp = _entropy_rows(logq), _entropy_rows(logp)

    def pearson(a: np.ndarray, b: np.ndarray) -> float:
        if np.std(a) == 0 or np.std(b) == 0:
            return float("nan")
        return float(np.corrcoef(a, b)[0, 1])

    kw: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed}
    return {
        "kl": kl, "top1": top1, "entropy_model": hq, "entropy_real": hp,
        "mean_kl": bootstrap_ci(np.mean, kl, **kw),
        "top1_agreement": bootstrap_ci(np.mean, top1, **kw),
        "entropy_corr": bootstrap_ci(pearson, hq, hp, **kw),
    }


def dot_baseline(hidden: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    r"""Log-probabilities of the harmonic kernel the dot product implies, without any fit.

    $U_i = \tfrac12 |x_i - h|^2$ ($k = 1$, $x_q = h$, $T = 1$), compiled from the symbolic
    harmonic kernel. It equals the real softmax of $h\cdot x_i$ except for the token term
    $\tfrac12|x_i|^2$.
    """
    fam = kernel_family("harmonic")
    d = hidden.shape[1]
    dtype = jnp.asarray(hidden[:1]).dtype
    theta = {"a": jnp.ones((d,), dtype), "b": jnp.zeros((d,), dtype),
             "log": {"k": jnp.zeros((), dtype)}}
    emb = jnp.asarray(embedding, dtype)
    return _model_logprobs(fam, theta, hidden, emb, jnp.sum(emb * emb, axis=-1))
