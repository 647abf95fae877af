r"""The empirical study: does information gravity describe a real language model?

The paper (Vyshnyvetska, arXiv:2504.20951) reports no experiments. This module tests its model on
SmolLM2-135M-Instruct (model.md §8–10): it fits each potential kernel to the real next-token
distributions, and measures each of the paper's claims with bootstrap confidence intervals.

Every function returns a plain dictionary (a *dataset*): its numbers, the settings that made
them, and nothing that needs this module to read.
[`run_validation`][infograv.experiments.run_validation] runs the whole study and writes
figures, CSV/JSON tables and a plain-language `verdicts.md`.

Choices made here (the paper leaves them open):

- **Semantic space**: the tied embedding matrix $E$ (rows $x_i$); real logits $z_i = h\cdot x_i$
  with $h$ the final hidden state after the final norm.
- **Query position**: $x_q(\theta) = a \odot h + b$, a learned *diagonal* affine map of $h$
  ($2d$ parameters). A full affine map ($d^2 + d = 332\,352$ parameters) would be fitted from
  a few hundred prompts, i.e. memorised; the diagonal map keeps the fit honest.
  `query_map="scalar"` ($x_q = a h + b$ with scalar $a$) is also offered.
- **Kernel**: $U_i = m_i\,\Phi_\theta(|x_i - x_q|)$ with $m_i = 1$ and
  $P_i \propto e^{-U_i/T}$, $T = 1$ (the strength $G$ absorbs $M/T$: only $GM/T$ is
  identifiable). $\Phi_\theta$ is compiled from `infograv.symbolic.kernels` with
  [`infograv.to_jax`][]. Newton, Plummer and Yukawa depend on the dimension; in $d = 576$ the
  Newtonian $r^{-574}$ makes selection a winner-take-all of the nearest token, so the fit uses the
  radial profile of dimension `kernel_dim` (default 3); Gaussian and harmonic do not depend on it.
  Positive parameters are fitted as logarithms.
- **Loss**: mean over training prompts of $\mathrm{KL}(P_\text{real}\,\|\,P_\theta)$ on the top-$K$
  real tokens plus one *remainder* bucket. The model's remainder mass is estimated from a fixed
  uniform sample of `n_rest` other tokens per prompt, scaled by (number of other tokens)/`n_rest`
  (an unbiased estimate of the remainder's partition sum). Held-out metrics use the full vocabulary.
- **Optimiser**: Adam, written here in JAX (`adam_minimise`), full batch, fixed steps.
- **Baselines**: the harmonic kernel *fitted* like the others, and the harmonic kernel the dot
  product implies without any fit ($x_q = h$, $k = 1$): $h\cdot x_i = -\tfrac12|h - x_i|^2 +
  \tfrac12|h|^2 + \tfrac12|x_i|^2$, which differs from the real logits by the token term
  $\tfrac12|x_i|^2$ (a radial kernel cannot represent it).
- **Density** (voids): Gaussian kernel density of the unit-normalised token cloud at
  $h/|h|$ in angular distance, bandwidth = median angular distance of a token to its
  `density_k`-th nearest token (rule of thumb); **neighbourhood** $C(q)$: the
  `neighbourhood_k` tokens nearest to $h$ in angle.
- **Confidence intervals**: percentile bootstrap over prompts (or pairs), `n_boot` resamples,
  fixed seed, 95 %.
- **Verdict**: a claim *holds* when its 95 % CI lies entirely on the side the paper predicts,
  *fails* when it lies entirely on the other side, and is *inconclusive* when it contains the null.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import inspect
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._io import write_csv, write_json, write_text
from ._kernel_fit import (
    FAMILIES,
    LOSSES,
    QUERY_MAPS,
    KernelFamily,
    _energies,
    _entropy_rows,
    _kl_rows,
    _model_logprobs,
    _query,
    adam_minimise,
    dot_baseline,
    evaluate_fit,
    fit_kernel,
    kernel_family,
)
from ._stats import Verdict, bootstrap_ci, spearman, verdict
from ._validation_figures import write_figures

__all__ = [
    "ValidationSettings",
    "KernelFamily",
    "Verdict",
    "kernel_family",
    "bootstrap_ci",
    "spearman",
    "verdict",
    "adam_minimise",
    "fit_kernel",
    "evaluate_fit",
    "dot_baseline",
    "extract_distributions",
    "fit_study",
    "voids_study",
    "sensitivity_study",
    "temperature_study",
    "mass_study",
    "trajectory_study",
    "verdict_table",
    "run_validation",
    "paper_section",
]



# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ValidationSettings:
    """Every setting of the study; written next to every result.

    Attributes:
        families: kernel families to fit (names of `infograv.symbolic.kernels`).
        kernel_dim: dimension of the radial profile for Newton, Plummer and Yukawa.
        query_map: `"scalar_bias"` ($x_q = a h + b$, scalar $a$; default), `"scalar"`
            ($x_q = a h$) or `"diagonal"` ($x_q = a\\odot h + b$).
        top_k: real tokens kept exactly in the training loss; the rest form one bucket.
        n_rest: tokens sampled per prompt to estimate the model's remainder mass.
        loss: `"full"` (exact KL over the vocabulary) or `"topk"` (top-k + remainder bucket).
        batch_prompts: prompts per Adam step with the full loss (`None`: all).
        steps, learning_rate: Adam settings.
        max_train, max_heldout: at most this many prompts of each split (None: all).
        n_boot, level: bootstrap resamples and confidence level.
        density_k, neighbourhood_k: see the module docstring (voids).
        temperatures, n_temperature_prompts, n_samples, max_new_tokens: the temperature study.
        n_trajectories, trajectory_steps: the observed-trajectory study.
        max_mass_prompts, max_pairs: at most this many prompts for the information-mass
            study and perturbation pairs for the sensitivity study (None: all).
        seed: seeds every random choice.
    """

    families: tuple[str, ...] = FAMILIES
    kernel_dim: int = 3
    query_map: str = "scalar_bias"
    loss: str = "full"
    batch_prompts: int | None = 32
    top_k: int = 32
    n_rest: int = 256
    steps: int = 600
    learning_rate: float = 0.03
    max_train: int | None = None
    max_heldout: int | None = None
    n_boot: int = 2000
    level: float = 0.95
    density_k: int = 10
    neighbourhood_k: int = 64
    temperatures: tuple[float, ...] = (0.3, 0.7, 1.0, 1.5)
    n_temperature_prompts: int = 16
    n_samples: int = 6
    max_new_tokens: int = 10
    n_trajectories: int = 3
    trajectory_steps: int = 16
    max_mass_prompts: int | None = None
    max_pairs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [f for f in self.families if f not in FAMILIES]
        if bad or not self.families:
            raise ValueError(f"families: unknown {bad}; choose from {FAMILIES} (at least one).")
        if self.query_map not in QUERY_MAPS:
            raise ValueError(f"query_map: expected one of {QUERY_MAPS}, got {self.query_map!r}.")
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {self.loss!r}.")
        if self.kernel_dim < 1:
            raise ValueError(f"kernel_dim: must be >= 1, got {self.kernel_dim}.")
        if self.top_k < 1 or self.n_rest < 1 or self.steps < 1:
            raise ValueError("top_k, n_rest, steps: must each be >= 1.")
        if not 0 < self.level < 1:
            raise ValueError(f"level: must lie in (0, 1), got {self.level}.")
        if any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures: must all be > 0, got {self.temperatures}.")

    @classmethod
    def quick(cls) -> ValidationSettings:
        """A small subset that runs in about a minute (used by `infograv paper`)."""
        return cls(
            families=("plummer", "gaussian", "harmonic"),
            steps=100, max_train=48, max_heldout=40, n_boot=500,
            temperatures=(0.3, 1.0, 1.5), n_temperature_prompts=3, n_samples=4,
            max_new_tokens=6, n_trajectories=1, trajectory_steps=8, max_mass_prompts=32,
            max_pairs=24,
        )


# --------------------------------------------------------------------------------------------
# Talking to the language model
# --------------------------------------------------------------------------------------------


def extract_distributions(model: Any, texts: Sequence[str], *, batch: int = 16
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Real next-token log-probabilities `(B, V)` and final hidden states `(B, d)` of `texts`."""
    lps, hs = [], []
    for i in range(0, len(texts), batch):
        lp, h = model.next_token_logprobs(list(texts[i:i + batch]))
        lps.append(np.asarray(lp, dtype=np.float64))
        hs.append(np.asarray(h, dtype=np.float64))
    return np.concatenate(lps, axis=0), np.concatenate(hs, axis=0)


def _generate(model: Any, prompt: str, n: int, **kw: Any) -> tuple[list[int], np.ndarray]:
    """Generated token ids and the per-step final hidden states `(n, d)` (no early stop)."""
    if "stop" in inspect.signature(model.generate).parameters:
        kw["stop"] = False
    out = model.generate(prompt, n, **kw)
    if isinstance(out, tuple):
        ids, hidden = out[0], out[-1]
    else:
        ids = getattr(out, "ids", None)
        if ids is None:
            ids = getattr(out, "token_ids")
        hidden = getattr(out, "hidden", None)
        if hidden is None:
            hidden = getattr(out, "hidden_states")
    return [int(t) for t in np.asarray(ids).reshape(-1)], np.asarray(hidden, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# The studies
# --------------------------------------------------------------------------------------------


def _subset(items: list[Any], n: int | None, seed: int) -> list[Any]:
    if n is None or n >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), n, replace=False))
    return [items[int(i)] for i in keep]


def fit_study(
    data: Mapping[str, Any], embedding: np.ndarray, settings: ValidationSettings,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Fit every family on the training prompts; evaluate on the held-out prompts.

    Arguments:
        data: `{"train": (logp, hidden), "heldout": (logp, hidden)}` (arrays `(B, V)`, `(B, d)`).
        embedding: `(V, d)`.
        settings: the study's settings.

    Returns:
        `{"families": {name: {...metrics, params, final_loss}}, "baseline_dot": {...},
        "paired": {name: CI of mean KL difference to the fitted harmonic}, "fits": {...}}`.
    """
    lp_tr, h_tr = data["train"]
    lp_te, h_te = data["heldout"]
    dtype = jnp.asarray(h_tr[:1]).dtype
    emb = jnp.asarray(embedding, dtype)
    emb_sq = jnp.sum(emb * emb, axis=-1)
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    fams, fits, per_prompt = {}, {}, {}
    for name in settings.families:
        t0 = time.perf_counter()
        fam = kernel_family(name, settings.kernel_dim)
        fit = fit_kernel(fam, h_tr, lp_tr, embedding, top_k=settings.top_k,
                         n_rest=settings.n_rest, steps=settings.steps,
                         learning_rate=settings.learning_rate, query_map=settings.query_map,
                         loss=settings.loss, batch_prompts=settings.batch_prompts,
                         seed=settings.seed)
        logq = _model_logprobs(fam, fit["theta"], h_te, emb, emb_sq)
        ev = evaluate_fit(logq, lp_te, **kw)
        fits[name] = (fam, fit)
        per_prompt[name] = ev
        fams[name] = {
            "d": fam.d if name in ("newton", "plummer", "yukawa") else None,
            "params": fit["params"], "train_loss": fit["final_loss"],
            "median_top_distance": fit.get("median_top_distance"),
            "mean_kl": ev["mean_kl"], "top1_agreement": ev["top1_agreement"],
            "entropy_corr": ev["entropy_corr"], "seconds": time.perf_counter() - t0,
        }
        progress(f"fitted {name}: held-out KL {ev['mean_kl'][0]:.3f}, "
                 f"top-1 {ev['top1_agreement'][0]:.2f}")
    base = evaluate_fit(dot_baseline(h_te, embedding), lp_te, **kw)
    paired = {}
    ref = per_prompt.get("harmonic")
    for name, ev in per_prompt.items():
        if ref is not None and name != "harmonic":
            paired[name] = bootstrap_ci(np.mean, ev["kl"] - ref["kl"], **kw)
        paired.setdefault(f"{name}_vs_dot", bootstrap_ci(np.mean, ev["kl"] - base["kl"], **kw))
    return {
        "families": fams,
        "baseline_dot": {k: base[k] for k in ("mean_kl", "top1_agreement", "entropy_corr")},
        "paired_kl_difference": paired,
        "per_prompt": {n: {k: ev[k] for k in ("kl", "top1", "entropy_model", "entropy_real")}
                       for n, ev in per_prompt.items()} | {"dot": {"kl": base["kl"],
                                                                   "top1": base["top1"]}},
        "fits": fits,
    }


def _angular_density(hidden: np.ndarray, embedding: np.ndarray, settings: ValidationSettings
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Log KDE density at each h and the k nearest tokens (by angle); and the bandwidth."""
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    rng = np.random.default_rng(settings.seed)
    sample = rng.choice(len(unit), min(400, len(unit)), replace=False)
    cos = np.clip(unit[sample] @ unit.T, -1.0, 1.0)
    kk = min(settings.density_k, len(unit) - 1)
    # k-th nearest other token (index kk because the token itself is at angle 0)
    nn = np.sort(np.arccos(cos), axis=1)[:, kk]
    bw = float(np.median(nn))
    hu = hidden / np.linalg.norm(hidden, axis=1, keepdims=True)
    ang = np.arccos(np.clip(hu @ unit.T, -1.0, 1.0))            # (B, V)
    z = -0.5 * (ang / bw) ** 2
    zmax = z.max(axis=1, keepdims=True)
    log_rho = (zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))) - math.log(len(unit))
    nb = np.argsort(ang, axis=1)[:, :settings.neighbourhood_k]
    return log_rho, nb, bw


def voids_study(logp: np.ndarray, hidden: np.ndarray, embedding: np.ndarray,
                categories: Sequence[str], settings: ValidationSettings) -> dict[str, Any]:
    """Claim 2 (voids): entropy and outside-neighbourhood mass against local token density.

    The paper predicts that both fall as the density of the token cloud around the query rises
    (Spearman correlation negative).
    """
    log_rho, nb, bw = _angular_density(hidden, embedding, settings)
    ent = _entropy_rows(logp)
    inside = np.take_along_axis(np.exp(logp), nb, axis=1).sum(axis=1)
    outside = 1.0 - inside
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    by_cat = {}
    cats = np.asarray(categories)
    for c in sorted(set(categories)):
        m = cats == c
        if m.sum() >= 2:
            by_cat[c] = {"entropy": bootstrap_ci(np.mean, ent[m], **kw),
                         "log_density": bootstrap_ci(np.mean, log_rho[m], **kw),
                         "outside_mass": bootstrap_ci(np.mean, outside[m], **kw)}
            if m.sum() >= 4:
                by_cat[c]["spearman_density_entropy"] = bootstrap_ci(
                    spearman, log_rho[m], ent[m], **kw)
    return {
        "log_density": log_rho, "entropy": ent, "outside_mass": outside,
        "category": list(categories), "bandwidth_rad": bw,
        "spearman_density_entropy": bootstrap_ci(spearman, log_rho, ent, **kw),
        "spearman_density_outside": bootstrap_ci(spearman, log_rho, outside, **kw),
        "by_category": by_cat,
    }


def sensitivity_study(
    lp_a: np.ndarray, h_a: np.ndarray, lp_b: np.ndarray, h_b: np.ndarray,
    embedding: np.ndarray, family: KernelFamily, theta: Any, settings: ValidationSettings,
    kinds: Sequence[str] | None = None,
) -> dict[str, Any]:
    r"""Claim 3 (sensitivity): real KL under prompt perturbation vs the Fisher prediction.

    For each pair, $\delta = x_q(h_b) - x_q(h_a)$ in the fitted model's query space and the
    prediction is
    $\tfrac12\delta^\top g_F\delta = \tfrac12\mathrm{Var}_{Q_a}(\delta\cdot\nabla_{x_q}U)$
    (model.md §6, $T = 1$), with $\delta\cdot\nabla U$ by a forward-mode derivative of the compiled
    energies. Reported beside it: the fitted model's own exact KL (how well the quadratic form
    describes the fitted model at this $|\delta|$) and the Fisher prediction of the real final
    layer, $\tfrac12\mathrm{Var}_{P_a}(\delta h\cdot x_i)$.
    """
    dtype = jnp.asarray(h_a[:1]).dtype
    emb = jnp.asarray(embedding, dtype)
    emb_sq = jnp.sum(emb * emb, axis=-1)

    @jax.jit
    def one(ha: jax.Array, hb: jax.Array) -> tuple[jax.Array, jax.Array]:
        def energies(q: jax.Array) -> jax.Array:
            th = {"a": jnp.ones_like(q), "b": jnp.zeros_like(q), "log": theta["log"]}
            return _energies(family, th, q[None, :], emb, emb_sq)[0]

        qa, qb = _query(theta, ha), _query(theta, hb)
        ua, s = jax.jvp(energies, (qa,), (qb - qa,))
        ub = energies(qb)
        la, lb = jax.nn.log_softmax(-ua), jax.nn.log_softmax(-ub)
        pa = jnp.exp(la)
        mean = jnp.sum(pa * s)
        pred = 0.5 * jnp.sum(pa * (s - mean) ** 2)
        return pred, jnp.sum(pa * (la - lb))

    pred, model_kl = [], []
    for i in range(len(h_a)):
        p, k = one(jnp.asarray(h_a[i], dtype), jnp.asarray(h_b[i], dtype))
        pred.append(float(p))
        model_kl.append(float(k))
    pred_arr, model_kl_arr = np.asarray(pred), np.asarray(model_kl)
    real_kl = _kl_rows(lp_a, lp_b)
    s_dot = (h_b - h_a) @ np.asarray(embedding).T
    pa = np.exp(lp_a)
    mu = np.sum(pa * s_dot, axis=1, keepdims=True)
    dot_pred = 0.5 * np.sum(pa * (s_dot - mu) ** 2, axis=1)
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    tiny = 1e-12

    def log_ratio(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.median(np.log10((a + tiny) / (b + tiny))))

    return {
        "real_kl": real_kl, "fisher_pred": pred_arr, "model_kl": model_kl_arr,
        "dot_fisher_pred": dot_pred, "kind": list(kinds) if kinds is not None else None,
        "family": family.name,
        "spearman_real_vs_pred": bootstrap_ci(spearman, real_kl, pred_arr, **kw),
        "median_log10_pred_over_real": bootstrap_ci(log_ratio, pred_arr, real_kl, **kw),
        "spearman_real_vs_dot_pred": bootstrap_ci(spearman, real_kl, dot_pred, **kw),
        "median_log10_dot_pred_over_real": bootstrap_ci(log_ratio, dot_pred, real_kl, **kw),
        "median_log10_pred_over_model_kl": bootstrap_ci(log_ratio, pred_arr, model_kl_arr,
                                                        **kw),
    }


def _samples(model: Any, prompt: str, n_new: int, n_samples: int, temperature: float,
             seed: int) -> list[list[int]]:
    """`n_samples` continuations (token ids), in parallel when the model offers `sample`."""
    if hasattr(model, "sample"):
        gens = model.sample(prompt, n_new, num_samples=n_samples, temperature=temperature,
                            seed=seed, stop=False)
        return [[int(t) for t in g.token_ids] for g in gens]
    return [_generate(model, prompt, n_new, temperature=temperature, seed=seed + s)[0]
            for s in range(n_samples)]


def _distinct(seqs: Sequence[Sequence[int]], n: int) -> float:
    grams = [tuple(s[i:i + n]) for s in seqs for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def temperature_study(model: Any, prompts: Sequence[str], settings: ValidationSettings,
                      first_logp: np.ndarray | None = None) -> dict[str, Any]:
    """Claim 3b (temperature): diversity of sampled continuations rises with T.

    For each prompt and temperature, `n_samples` continuations of `max_new_tokens` tokens
    (no early stop; a fixed seed per temperature). Diversity: distinct-2 (unique bigrams /
    bigrams over the pooled samples).
    Statistic: the per-prompt Spearman correlation of diversity with T, averaged over prompts
    (bootstrap over prompts). Also the entropy of the first-token distribution at each T
    (from `first_logp`), which the selection law predicts rises with T.
    """
    temps = np.asarray(settings.temperatures, dtype=np.float64)
    div = np.zeros((len(prompts), len(temps)))
    d1 = np.zeros_like(div)
    for i, p in enumerate(prompts):
        for j, t in enumerate(temps):
            seqs = _samples(model, p, settings.max_new_tokens, settings.n_samples, float(t),
                            settings.seed + 1000 * j)
            div[i, j] = _distinct(seqs, 2)
            d1[i, j] = _distinct(seqs, 1)
    per_prompt = np.array([spearman(temps, row) for row in div])
    per_prompt = np.where(np.isfinite(per_prompt), per_prompt, 0.0)
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    out = {
        "temperatures": temps, "distinct2": div, "distinct1": d1, "prompts": list(prompts),
        "per_prompt_spearman": per_prompt,
        "mean_spearman_T_diversity": bootstrap_ci(np.mean, per_prompt, **kw),
        "distinct2_by_T": [bootstrap_ci(np.mean, div[:, j], **kw) for j in range(len(temps))],
    }
    if first_logp is not None:
        ent = np.stack([_entropy_rows(_log_softmax_np(first_logp / t)) for t in temps], axis=1)
        out["first_token_entropy"] = ent
    return out


def _log_softmax_np(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _wordfreq_mass(texts: Sequence[str]) -> np.ndarray | None:
    try:
        from wordfreq import tokenize, word_frequency
    except ImportError:
        return None
    out = []
    for t in texts:
        bits = 0.0
        for w in tokenize(t, "en"):
            f = word_frequency(w, "en", minimum=1e-9)
            bits += -math.log2(f)
        out.append(bits)
    return np.asarray(out)


def mass_study(model: Any, texts: Sequence[str], logp: np.ndarray, settings: ValidationSettings,
               categories: Sequence[str] | None = None) -> dict[str, Any]:
    """Claim 1 (information mass): heavier queries make deeper wells, so lower entropy.

    Masses: `lm_surprisal` $M = \\sum_k -\\log_2 P(w_k\\mid w_{<k})$ from the real model, and
    word-frequency surprisal (if the optional `wordfreq` package is installed). Statistic:
    Spearman correlation of mass with next-token entropy, predicted negative. Prompt length is
    a confounder (mass grows with length); the per-token mass is reported too, and with
    `categories` the correlation within each prompt category (the categories differ in both
    mass and entropy, which can drive the pooled correlation).
    """
    m_lm, n_tok = [], []
    for t in texts:
        lp = np.asarray(model.sequence_logprobs(t), dtype=np.float64).reshape(-1)
        m_lm.append(float(-lp.sum() / math.log(2)))
        n_tok.append(len(lp))
    m_lm_arr, n_arr = np.asarray(m_lm), np.asarray(n_tok, dtype=np.float64)
    ent = _entropy_rows(logp)
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    out: dict[str, Any] = {
        "entropy": ent, "lm_surprisal": m_lm_arr, "n_tokens": n_arr,
        "spearman_lm_surprisal_entropy": bootstrap_ci(spearman, m_lm_arr, ent, **kw),
        "spearman_lm_surprisal_per_token_entropy": bootstrap_ci(
            spearman, m_lm_arr / np.maximum(n_arr, 1), ent, **kw),
        "wordfreq_available": False,
    }
    if categories is not None:
        cats = np.asarray(categories)
        out["by_category"] = {
            c: {"spearman_lm_surprisal_entropy": bootstrap_ci(
                spearman, m_lm_arr[cats == c], ent[cats == c], **kw)}
            for c in sorted(set(categories)) if (cats == c).sum() >= 4}
    wf = _wordfreq_mass(texts)
    if wf is not None:
        out["wordfreq_surprisal"] = wf
        out["wordfreq_available"] = True
        out["spearman_wordfreq_entropy"] = bootstrap_ci(spearman, wf, ent, **kw)
    return out


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _pca2(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    return mean, vt[:2]


def trajectory_study(model: Any, prompts: Sequence[str], family: KernelFamily, theta: Any,
                     embedding: np.ndarray, settings: ValidationSettings) -> dict[str, Any]:
    """Observed token trajectories against the fitted model's predicted ones.

    Observed: greedy generation; the final hidden state at each step and the chosen tokens'
    embeddings. Predicted (teacher-forced): the fitted model's $T\\to0$ choice
    $\\arg\\min_i U_i$ at each observed hidden state. Predicted (free run, `drift` rule of
    model.md §9): start at $x_q(h_0)$, pick $\\arg\\min_i U_i$, move the query centre to the
    running mean of the query and the chosen tokens (unit masses). Hidden states ($|h|\\approx
    45$) and token embeddings ($|x_i|\\approx 3$) differ in scale and the real logits are dot
    products, so the picture shows *directions*: all vectors are normalised to unit length and
    projected onto the first two principal components of the observed hidden-state and token
    directions.
    """
    dtype = jnp.asarray(embedding[:1]).dtype
    emb = jnp.asarray(embedding, dtype)
    emb_sq = jnp.sum(emb * emb, axis=-1)

    @jax.jit
    def argmin_q(q: jax.Array) -> jax.Array:
        th = {"a": jnp.ones_like(q), "b": jnp.zeros_like(q), "log": theta["log"]}
        return jnp.argmin(_energies(family, th, q[None, :], emb, emb_sq)[0])

    runs = []
    for p in prompts:
        ids, hid = _generate(model, p, settings.trajectory_steps, temperature=0.0,
                             seed=settings.seed)
        n = min(len(ids), hid.shape[0])
        ids, hid = ids[:n], hid[:n]
        q = np.asarray(_query(theta, jnp.asarray(hid, dtype)))
        forced = [int(argmin_q(jnp.asarray(qi, dtype))) for qi in q]
        x = q[0].copy()
        free = []
        for k in range(n):
            t = int(argmin_q(jnp.asarray(x, dtype)))
            free.append(t)
            x = x + (np.asarray(embedding[t]) - x) / (k + 2)
        pts = _unit(np.concatenate([hid, np.asarray(embedding)[ids]], axis=0))
        mean, comps = _pca2(pts)

        def proj(a: np.ndarray, mean: np.ndarray = mean, comps: np.ndarray = comps
                 ) -> np.ndarray:
            return (_unit(np.asarray(a)) - mean) @ comps.T

        runs.append({
            "prompt": p, "ids": ids, "text": [model.decode([t]) for t in ids],
            "forced_ids": forced, "free_ids": free,
            "forced_text": [model.decode([t]) for t in forced],
            "free_text": [model.decode([t]) for t in free],
            "forced_agreement": float(np.mean(np.asarray(forced) == np.asarray(ids))),
            "free_agreement": float(np.mean(np.asarray(free) == np.asarray(ids))),
            "hidden_2d": proj(hid), "tokens_2d": proj(np.asarray(embedding)[ids]),
            "forced_2d": proj(np.asarray(embedding)[forced]),
            "free_2d": proj(np.asarray(embedding)[free]),
        })
    return {"runs": runs, "family": family.name}


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


def verdict_table(results: Mapping[str, Any]) -> list[Verdict]:
    """Turn the study results into verdicts (see [`verdict`][infograv.experiments.verdict])."""
    out: list[Verdict] = []
    fit = results.get("fit")
    if fit is not None:
        for name, ci in fit["paired_kl_difference"].items():
            if name.endswith("_vs_dot"):
                continue
            out.append(verdict(
                f"a gravity-like kernel ({name}) describes next-token distributions better than "
                "the harmonic kernel (the dot-product form), both fitted",
                f"held-out mean KL({name}) - KL(harmonic), nats", ci, "negative"))
    v = results.get("voids")
    if v is not None:
        out.append(verdict("entropy rises in low-density regions (voids)",
                           "Spearman(log density, entropy)", v["spearman_density_entropy"],
                           "negative"))
        out.append(verdict("probability outside the query's neighbourhood rises in voids",
                           "Spearman(log density, outside mass)", v["spearman_density_outside"],
                           "negative"))
    s = results.get("sensitivity")
    if s is not None:
        out.append(verdict(
            "the Fisher curvature of the fitted field predicts the real sensitivity to prompt "
            "perturbation", "Spearman(real KL, 1/2 d'g_F d)", s["spearman_real_vs_pred"],
            "positive"))
    t = results.get("temperature")
    if t is not None:
        out.append(verdict("sampling temperature raises output diversity",
                           "mean per-prompt Spearman(T, distinct-2)",
                           t["mean_spearman_T_diversity"], "positive"))
    m = results.get("mass")
    if m is not None:
        out.append(verdict("more information mass deepens the well (lower entropy)",
                           "Spearman(lm_surprisal mass, entropy)",
                           m["spearman_lm_surprisal_entropy"], "negative"))
        if m.get("wordfreq_available"):
            out.append(verdict("more information mass deepens the well (lower entropy)",
                               "Spearman(word-frequency mass, entropy)",
                               m["spearman_wordfreq_entropy"], "negative"))
    return out


def _verdicts_markdown(verdicts: Sequence[Verdict], header: str) -> str:
    lines = [header, "", "| claim | measure | estimate [95 % CI] | predicted | verdict |",
             "|---|---|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.claim} | {v.measure} | {v.estimate:+.3g} [{v.low:+.3g}, "
                     f"{v.high:+.3g}] | {v.predicted} | **{v.outcome}** |")
    n = {k: sum(v.outcome == k for v in verdicts) for k in ("holds", "fails", "inconclusive")}
    lines += ["", f"{n['holds']} hold, {n['fails']} fail, {n['inconclusive']} inconclusive.",
              "", "A claim holds when its whole 95 % bootstrap interval lies on the side the paper "
              "predicts, fails when the whole interval lies on the other side, and is "
              "inconclusive otherwise.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Running the study
# --------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("infograv", "jax", "jaxlib", "equinox", "numpy", "sympy", "matplotlib", "gguf",
                "tokenizers", "wordfreq"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _model_file_info(model: Any) -> dict[str, Any]:
    for attr in ("path", "file", "model_path"):
        p = getattr(model, attr, None)
        if p is not None and Path(p).is_file():
            try:
                from ..data import file_sha256
                digest = file_sha256(p)
            except ImportError:
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                digest = h.hexdigest()
            return {"path": str(p), "sha256": digest}
    return {"path": None, "sha256": None, "note": "the model object exposes no file path"}


def _ci_dict(ci: Sequence[float]) -> dict[str, float]:
    return {"estimate": float(ci[0]), "low": float(ci[1]), "high": float(ci[2])}


def _jsonable_result(obj: Any) -> Any:
    if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(v, float) for v in obj):
        return _ci_dict(obj)
    if isinstance(obj, Mapping):
        return {k: _jsonable_result(v) for k, v in obj.items() if k != "fits"}
    if isinstance(obj, (list, tuple)):
        return [_jsonable_result(v) for v in obj]
    if isinstance(obj, Verdict):
        return dataclasses.asdict(obj)
    return obj


def run_validation(
    out: Path | str,
    progress: Callable[[str], None] = lambda s: None,
    *,
    quick: bool = False,
    settings: ValidationSettings | None = None,
    model: Any = None,
) -> dict[str, Any]:
    """Run the whole empirical study and write its figures and tables into `out`.

    Steps: load SmolLM2 (or use `model`), read the real next-token distributions of the prompt
    set, fit every kernel family on the training prompts and evaluate it on the held-out ones,
    then measure the voids, sensitivity, temperature and information-mass claims and the observed
    trajectories, and write `verdicts.md` saying plainly which claims hold.

    Files written: `val_fit.{pdf,png}`, `val_voids`, `val_sensitivity`, `val_temperature`,
    `val_mass`, `val_trajectory` figures; `fit_summary.json`, `heldout_per_prompt.csv`,
    `voids.csv`, `sensitivity.csv`, `temperature.csv`, `mass.csv`, `trajectories.json`,
    `results.json`, `verdicts.json`, `verdicts.md`, and `run.json` (settings, package versions,
    model file SHA-256, prompt-set info, timings).

    Arguments:
        out: an existing or new folder.
        progress: called with a message at each step.
        quick: use [`ValidationSettings.quick`][infograv.experiments.ValidationSettings] (about a
            minute) instead of the full defaults.
        settings: explicit settings (overrides `quick`).
        model: a language model with the `infograv.lm.LanguageModel` interface (default: load
            `"smollm2"`).

    Returns:
        The results dictionary (also written as `results.json`).

    Raises:
        infograv.lm.ArtifactNotFoundError: the model file is absent (run `infograv fetch smollm2`).
    """
    from ..data.prompts import load_perturbations, load_prompts, prompt_set_info

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings or (ValidationSettings.quick() if quick else ValidationSettings())
    timings: dict[str, float] = {}
    t_start, cpu_start = time.perf_counter(), time.process_time()

    def tick(name: str, t0: float) -> float:
        timings[name] = time.perf_counter() - t0
        return time.perf_counter()

    t0 = time.perf_counter()
    if model is None:
        from .. import lm

        progress("loading the language model (smollm2)")
        model = lm.load_language_model("smollm2")
    t0 = tick("load_model", t0)
    embedding = np.asarray(model.embedding, dtype=np.float64)

    train = _subset(load_prompts("train"), settings.max_train, settings.seed)
    held = _subset(load_prompts("heldout"), settings.max_heldout, settings.seed + 1)
    progress(f"next-token distributions of {len(train)} training and {len(held)} held-out "
             "prompts")
    lp_tr, h_tr = extract_distributions(model, [p.text for p in train])
    lp_te, h_te = extract_distributions(model, [p.text for p in held])
    t0 = tick("distributions", t0)
    results: dict[str, Any] = {}

    progress("fitting kernel families")
    fit = fit_study({"train": (lp_tr, h_tr), "heldout": (lp_te, h_te)}, embedding, settings,
                    progress)
    results["fit"] = fit
    # factual accuracy of the real model, a sanity check of the pipeline
    facts = [(i, p) for i, p in enumerate(held) if p.answer]
    if facts:
        from ..data.prompts import answer_matches

        ok = [answer_matches(model.decode([int(np.argmax(lp_te[i]))]), p.answer)
              for i, p in facts]
        results["factual_top1_accuracy"] = bootstrap_ci(
            np.mean, np.asarray(ok, np.float64), n_boot=settings.n_boot, seed=settings.seed)
    t0 = tick("fit", t0)

    progress("voids: entropy and outside mass against local density")
    lp_all, h_all = np.concatenate([lp_tr, lp_te]), np.concatenate([h_tr, h_te])
    prompts_all = train + held
    results["voids"] = voids_study(lp_all, h_all, embedding, [p.category for p in prompts_all],
                                   settings)
    t0 = tick("voids", t0)

    best = min(fit["families"], key=lambda n: fit["families"][n]["mean_kl"][0])
    fam, fitted = fit["fits"][best]
    progress(f"sensitivity: perturbation pairs against the Fisher metric of {best}")
    pairs = _subset(load_perturbations(), settings.max_pairs, settings.seed)
    lp_a, h_a = extract_distributions(model, [q.text_a for q in pairs])
    lp_b, h_b = extract_distributions(model, [q.text_b for q in pairs])
    results["sensitivity"] = sensitivity_study(lp_a, h_a, lp_b, h_b, embedding, fam,
                                               fitted["theta"], settings,
                                               [q.kind for q in pairs])
    t0 = tick("sensitivity", t0)

    progress("temperature: diversity of sampled continuations")
    open_prompts = _subset(load_prompts(category="open"), settings.n_temperature_prompts,
                           settings.seed)
    lp_open, _ = extract_distributions(model, [p.text for p in open_prompts])
    results["temperature"] = temperature_study(model, [p.text for p in open_prompts], settings,
                                               lp_open)
    t0 = tick("temperature", t0)

    progress("information mass: entropy against surprisal mass")
    keep = _subset(list(range(len(prompts_all))), settings.max_mass_prompts, settings.seed)
    mass_prompts = [prompts_all[i] for i in keep]
    results["mass"] = mass_study(model, [p.text for p in mass_prompts], lp_all[keep], settings,
                                 [p.category for p in mass_prompts])
    results["mass"]["category"] = [p.category for p in mass_prompts]
    results["mass"]["id"] = [p.id for p in mass_prompts]
    t0 = tick("mass", t0)

    progress("observed token trajectories")
    traj_prompts = [p.text for p in _subset(load_prompts(category="open"),
                                            settings.n_trajectories, settings.seed + 2)]
    results["trajectories"] = trajectory_study(model, traj_prompts, fam, fitted["theta"],
                                               embedding, settings)
    t0 = tick("trajectories", t0)

    verdicts = verdict_table(results)
    results["verdicts"] = verdicts
    progress("writing tables and figures")
    _write_outputs(out, results, settings, train, held, pairs, prompts_all)
    write_figures(out, results)
    timings["total_wall_s"] = time.perf_counter() - t_start
    timings["total_cpu_s"] = time.process_time() - cpu_start
    write_json(out / "run.json", {
        "settings": dataclasses.asdict(settings), "quick": quick, "versions": _versions(),
        "model_file": _model_file_info(model), "prompt_set": prompt_set_info(),
        "best_family": best, "timings_s": timings,
    })
    for v in verdicts:
        progress(f"{v.outcome.upper():>12}: {v.claim} ({v.detail})")
    return results


def _write_outputs(out: Path, results: Mapping[str, Any], settings: ValidationSettings,
                   train: Sequence[Any], held: Sequence[Any], pairs: Sequence[Any],
                   prompts_all: Sequence[Any]) -> None:
    fit = results["fit"]
    summary = {
        "settings": dataclasses.asdict(settings),
        "n_train": len(train), "n_heldout": len(held),
        "families": _jsonable_result(fit["families"]),
        "baseline_dot_harmonic": _jsonable_result(fit["baseline_dot"]),
        "paired_kl_difference": _jsonable_result(fit["paired_kl_difference"]),
    }
    if "factual_top1_accuracy" in results:
        summary["real_model_factual_top1_accuracy"] = _ci_dict(results["factual_top1_accuracy"])
    write_json(out / "fit_summary.json", summary)
    cols: dict[str, Any] = {"id": [p.id for p in held], "category": [p.category for p in held]}
    for name, pp in fit["per_prompt"].items():
        cols[f"kl_{name}"] = pp["kl"]
        cols[f"top1_{name}"] = pp["top1"]
    first = next(iter(fit["per_prompt"].values()))
    cols["entropy_real"] = first.get("entropy_real", np.full(len(held), np.nan))
    write_csv(out / "heldout_per_prompt.csv", cols)
    v = results["voids"]
    write_csv(out / "voids.csv", {"id": [p.id for p in prompts_all], "category": v["category"],
                                  "log_density": v["log_density"], "entropy": v["entropy"],
                                  "outside_mass": v["outside_mass"]})
    s = results["sensitivity"]
    write_csv(out / "sensitivity.csv", {
        "pair": [q.id for q in pairs], "kind": [q.kind for q in pairs],
        "real_kl": s["real_kl"], "fisher_pred": s["fisher_pred"], "model_kl": s["model_kl"],
        "dot_fisher_pred": s["dot_fisher_pred"]})
    t = results["temperature"]
    rows: dict[str, list[Any]] = {"prompt": [], "temperature": [], "distinct1": [],
                                  "distinct2": []}
    for i, p in enumerate(t["prompts"]):
        for j, temp in enumerate(t["temperatures"]):
            rows["prompt"].append(p)
            rows["temperature"].append(float(temp))
            rows["distinct1"].append(float(t["distinct1"][i, j]))
            rows["distinct2"].append(float(t["distinct2"][i, j]))
    write_csv(out / "temperature.csv", rows)
    m = results["mass"]
    mcols = {"id": m["id"], "category": m["category"],
             "entropy": m["entropy"], "lm_surprisal_bits": m["lm_surprisal"],
             "n_tokens": m["n_tokens"]}
    if m.get("wordfreq_available"):
        mcols["wordfreq_surprisal_bits"] = m["wordfreq_surprisal"]
    write_csv(out / "mass.csv", mcols)
    write_json(out / "trajectories.json", results["trajectories"])
    write_json(out / "verdicts.json", [dataclasses.asdict(v) for v in results["verdicts"]])
    header = ("# Verdicts: information gravity on SmolLM2-135M-Instruct"
              + (" (quick subset)" if settings.max_train else ""))
    extra = ["## Within each prompt category", "",
             "The categories differ in both density/mass and entropy; these correlations hold "
             "the category fixed.", "", "| category | Spearman(log density, entropy) | "
             "Spearman(lm_surprisal mass, entropy) |", "|---|---|---|"]
    vc, mc = results["voids"]["by_category"], results["mass"].get("by_category", {})

    def fmt(d: Mapping[str, Any], key: str) -> str:
        if key not in d:
            return "n/a"
        e, lo, hi = d[key]
        return f"{e:+.2f} [{lo:+.2f}, {hi:+.2f}]"

    for c in sorted(set(vc) | set(mc)):
        extra.append(f"| {c} | {fmt(vc.get(c, {}), 'spearman_density_entropy')} | "
                     f"{fmt(mc.get(c, {}), 'spearman_lm_surprisal_entropy')} |")
    write_text(out / "verdicts.md", _verdicts_markdown(results["verdicts"], header)
               + "\n".join(extra) + "\n")
    write_json(out / "results.json", _jsonable_result(
        {k: v for k, v in results.items() if k not in ("trajectories",)}))


def paper_section(out: Path, progress: Callable[[str], None]) -> None:
    """The validation figures and tables for `infograv paper` (the quick subset).

    Raises:
        infograv.lm.ArtifactNotFoundError: the SmolLM2 model file is absent; run
            `infograv fetch smollm2`.
    """
    run_validation(out, progress, quick=True)
