r"""The empirical study: does information gravity describe a real language model?

The paper (Vyshnyvetska, arXiv:2504.20951) reports no experiments. This module tests its model
on a real language model (SmolLM2-135M-Instruct by default, any model `infograv.lm` loads, on
the built-in prompt set or a user's prompts; docs/model/formalism.md §8–10): it fits each
potential kernel to the real next-token distributions and measures each of the paper's claims.

Every function returns a plain dictionary (a *dataset*): its numbers, the settings that made
them, and nothing that needs this module to read.
[`run_validation`][infograv.experiments.run_validation] runs the whole study and writes
figures, CSV/JSON tables and a plain-language `verdicts.md`.

Choices made here (the paper leaves them open; each is recorded in the outputs):

- **Semantic space**: the tied embedding matrix $E$ (rows $x_i$); real logits $z_i = h\cdot x_i$
  with $h$ the final hidden state after the final norm.
- **Kernel fit**: [`infograv.model._fit.fit_potential`][] — the selection law at $T = 1$ with unit
  token masses, $U_i = \Phi_\theta(|x_i - x_q|) + c\cdot x_i$, $x_q = a h + b$ (`"affine"` map,
  the same for every family) or $x_q = a h$ (`"scalar"`), the exact KL over the whole
  vocabulary, L-BFGS to a stated convergence rule, several starts including each family's known
  limit (harmonic for Gaussian and Plummer, Newton for Plummer and Yukawa). Newton, Plummer and
  Yukawa are fitted with the radial profile of dimension `kernel_dim` and, side by side, of each
  of `kernel_dims`.
- **Uncertainty**: percentile bootstrap over held-out prompts given the fit, and a two-stage
  bootstrap that also refits on `n_refits` bootstrap resamples of the training prompts; kernel
  comparisons are paired differences on the same held-out prompts.
- **Densities** (voids): the Gaussian kernel density of the unit-normalised token cloud
  ([`SemanticSpace`][infograv.model.SemanticSpace] with `angular=True`, bandwidth the median
  angle from a token to its `density_k`-th nearest) at the final hidden state's direction (the
  logit geometry), and — independent of the logits — the same density at the prompt's own input
  tokens (leave-one-out, averaged over the prompt).
- **Masses**: `lm_surprisal` is
  [`LanguageModel.surprisal_bits`][infograv.lm.LanguageModel.surprisal_bits] (every token of
  the prompt scored, conditioned on the document start); the word-frequency mass is
  [`infograv.model.surprisal_mass`][] (its floor for unknown words).
- **Verdicts**: each claim is *diagnostic* (its outcome differs between information gravity and
  a plain softmax over $h\cdot x_i$) or a *consistency check* (any softmax sampler passes it). A
  claim holds when its Holm-adjusted two-sided bootstrap p-value (over the whole verdict family)
  is below `alpha` and the estimate lies on the predicted side; it fails when the adjusted
  p-value is below `alpha` on the other side; otherwise it is inconclusive. A claim with fewer
  than `min_prompts` observations is reported as not estimable (inconclusive), with the number
  needed.
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
from ..geometry._metrics import fisher_from_energies
from ..model import Potential, SemanticSpace, surprisal_mass, thermodynamics
from ..model._fit import FIT_QUERY_MAPS, PotentialFit, potential_name
from ._kernel_fit import FAMILIES, compare_families, dot_baseline, family_potential
from ._stats import (
    Verdict,
    apply_holm,
    bootstrap,
    bootstrap_ci,
    holm,
    mean,
    p_value,
    percentile_interval,
    spearman,
    verdict,
    within_between,
)
from ._stream import Rows, chunk_rows, next_token_summaries, normalised, stream_distributions
from ._validation_figures import write_figures

__all__ = [
    "ValidationSettings",
    "Verdict",
    "family_potential",
    "bootstrap_ci",
    "spearman",
    "holm",
    "verdict",
    "dot_baseline",
    "extract_distributions",
    "fit_study",
    "correlation_claim",
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
        families: built-in kernel families to fit (names of `infograv.symbolic.kernels`).
        kernel_dim: dimension of the radial profile of Newton, Plummer and Yukawa.
        kernel_dims: further dimensions fitted side by side for Newton, Plummer and Yukawa
            (Yukawa only in odd dimensions: in even `d` its Green's function is a Bessel K of
            integer order, evaluated by quadrature at 256 times the memory of the others).
        query_maps: `"affine"` and/or `"scalar"` (see `infograv.model.fit_potential`); the
            first is the primary one (verdicts, refits, dimension sweep).
        max_steps: L-BFGS step limit of a fit.
        ktol: the bound clause of the convergence rule: a fit whose mean training KL is at most
            `ktol` nats is within `ktol` of the global optimum (KL >= 0) and stops there.
        margin: a kernel describes the distributions better than the harmonic one only when its
            held-out KL is lower by more than `margin` nats (ten times `ktol`: differences
            below it are not resolved by the fits); the null of those rows is `-margin`.
        n_refits, refit_steps: refits on bootstrap resamples of the training prompts, and
            their step limit (warm-started at the full fit).
        max_train, max_heldout: at most this many prompts of each split (None: all).
        max_fit_prompts: the kernels are fitted on at most this many training prompts (a
            seeded subsample; None: all). The fit has a handful of parameters, so a few hundred
            prompts pin them down; the held-out evaluation always uses every held-out prompt,
            read chunk by chunk, so the study's memory does not grow with the prompt count.
        figure_prompts: at most this many held-out prompts in the potential and residual
            figures.
        n_boot, level, alpha: bootstrap resamples, interval level, test level (Holm).
        min_prompts: fewest observations for which a correlation claim is estimated.
        density_k, neighbourhood_k: the density bandwidth rank and the neighbourhood size
            (voids).
        temperatures, n_temperature_prompts, n_samples, max_new_tokens: the temperature study.
        n_trajectories, trajectory_steps: the observed-trajectory study.
        max_mass_prompts, max_pairs: at most this many prompts for the information-mass
            study and perturbation pairs for the sensitivity study (None: all).
        seed: seeds every random choice.
    """

    families: tuple[str, ...] = FAMILIES
    kernel_dim: int = 3
    kernel_dims: tuple[int, ...] = (8, 32, 576)
    query_maps: tuple[str, ...] = ("scalar",)
    max_steps: int = 300
    ktol: float = 1e-6
    margin: float = 1e-5
    n_refits: int = 6
    refit_steps: int = 40
    max_train: int | None = None
    max_heldout: int | None = None
    max_fit_prompts: int | None = 256
    figure_prompts: int = 200
    n_boot: int = 2000
    level: float = 0.95
    alpha: float = 0.05
    min_prompts: int = 10
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
        if bad:
            raise ValueError(f"families: unknown {bad}; choose from {FAMILIES}.")
        bad = [q for q in self.query_maps if q not in FIT_QUERY_MAPS]
        if bad or not self.query_maps:
            raise ValueError(f"query_maps: expected some of {FIT_QUERY_MAPS}, got "
                             f"{self.query_maps!r}.")
        if self.kernel_dim < 1 or any(d < 1 for d in self.kernel_dims):
            raise ValueError("kernel_dim, kernel_dims: dimensions must be >= 1.")
        if not self.ktol >= 0 or not self.margin >= 0:
            raise ValueError(f"ktol, margin: must be >= 0, got {self.ktol!r}, {self.margin!r}.")
        if self.max_steps < 1 or self.refit_steps < 1 or self.n_refits < 0:
            raise ValueError("max_steps, refit_steps: must be >= 1; n_refits: >= 0.")
        if self.max_fit_prompts is not None and self.max_fit_prompts < 2:
            raise ValueError(f"max_fit_prompts: need at least 2 (or None), got "
                             f"{self.max_fit_prompts!r}.")
        if self.figure_prompts < 1:
            raise ValueError(f"figure_prompts: must be >= 1, got {self.figure_prompts!r}.")
        if self.n_boot < 10:
            raise ValueError(f"n_boot: need at least 10 resamples, got {self.n_boot}.")
        if not 0 < self.level < 1 or not 0 < self.alpha < 1:
            raise ValueError(f"level, alpha: must lie in (0, 1), got {self.level}, {self.alpha}.")
        if self.min_prompts < 3:
            raise ValueError(f"min_prompts: must be >= 3, got {self.min_prompts}.")
        if any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures: must all be > 0, got {self.temperatures}.")

    @classmethod
    def quick(cls) -> ValidationSettings:
        """A small subset that runs in under a minute (used by `infograv paper`)."""
        return cls(
            families=("plummer", "gaussian", "harmonic"), kernel_dims=(),
            query_maps=("scalar",), max_steps=200, n_refits=0, max_train=48,
            max_heldout=40, n_boot=500, temperatures=(0.3, 1.0, 1.5), n_temperature_prompts=3,
            n_samples=4, max_new_tokens=6, n_trajectories=1, trajectory_steps=8,
            max_mass_prompts=32, max_pairs=24,
        )


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Prompt:
    id: str
    text: str
    category: str | None
    answer: str | None
    split: str  # "train" or "test"


def _hash_split(text: str, train_fraction: float = 0.7) -> str:
    """A deterministic split from the SHA-256 of the text."""
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return "train" if h / 2**64 < train_fraction else "test"


def _prompt_records(prompts: Any) -> tuple[list[_Prompt], str]:
    """The study's prompts from `None` (built-in set), a file path, a prompt set or texts."""
    if prompts is None:
        from ..data.prompts import load_prompts as builtin

        recs = [_Prompt(p.id, p.text, p.category, p.answer or None,
                        "train" if p.split == "train" else "test")
                for split in ("train", "heldout") for p in builtin(split)]
        return recs, "built-in prompt set"
    source = "prompts"
    if isinstance(prompts, (str, Path)):
        from .. import data

        loader = getattr(data, "load_prompts", None)
        if loader is None:
            raise ValueError("prompts: loading prompt files needs infograv.data.load_prompts.")
        source = str(prompts)
        prompts = loader(prompts)
    texts = getattr(prompts, "texts", None)
    if texts is not None:
        cats = list(getattr(prompts, "categories", None) or [None] * len(texts))
        splits = list(getattr(prompts, "split", None) or getattr(prompts, "splits", None)
                      or [None] * len(texts))
        answers = list(getattr(prompts, "answers", None) or [None] * len(texts))
        items = list(zip(texts, cats, splits, answers, strict=True))
    else:
        items = [(t, None, None, None) for t in prompts]
    recs = []
    for i, (t, c, s, a) in enumerate(items):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"prompts[{i}]: need a non-empty text, got {t!r}.")
        split = "train" if s == "train" else "test" if s in ("test", "heldout") else \
            _hash_split(t)
        recs.append(_Prompt(f"p{i:05d}", t, c or None, a or None, split))
    return recs, source


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


def _raw_distributions(model: Any, texts: Sequence[str], cache: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
    """`extract_distributions`, through the on-disk cache (keyed by the model file's SHA-256,
    the text and the settings) when the model has a file; rows as the model returned them."""
    from ._dist_cache import cached_distributions, model_sha256

    try:
        sha = model_sha256(model)
    except (TypeError, ValueError):
        return extract_distributions(model, texts)
    lp, h = cached_distributions(f"sha256:{sha}", list(texts),
                                 settings={"kind": "next_token_logprobs_and_hidden"},
                                 compute=lambda ts: extract_distributions(model, ts),
                                 enabled=cache)
    return np.asarray(lp, np.float64), np.asarray(h, np.float64)


def _distributions(model: Any, texts: Sequence[str], cache: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`_raw_distributions` with the rows renormalised in float64 (`normalised`)."""
    lp, h = _raw_distributions(model, texts, cache)
    return normalised(lp), h


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


def _potentials(settings: ValidationSettings, kernels: Sequence[Any] | None
                ) -> dict[str, Potential]:
    """`{name: Potential}`: the built-in families of `settings` (or the names in `kernels`) and
    any `Potential` objects in `kernels`, named by their `name`."""
    out: dict[str, Potential] = {}
    items = list(settings.families) if kernels is None else list(kernels)
    for k in items:
        if isinstance(k, str):
            out[k] = family_potential(k, settings.kernel_dim)
        elif isinstance(k, Potential):
            out[potential_name(k)] = k
        else:
            raise ValueError(f"kernels: expected family names or Potential objects, got {k!r}.")
    if not out:
        raise ValueError("kernels: need at least one kernel family.")
    return out


def fit_study(
    data: Mapping[str, Any], embedding: np.ndarray, settings: ValidationSettings,
    progress: Callable[[str], None] = lambda s: None, kernels: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Fit every family on the training prompts; evaluate on the held-out prompts.

    Arguments:
        data: `{"train": (logp, hidden), "heldout": (logp, hidden)}` (arrays `(B, V)`, `(B, d)`).
        embedding: `(V, d)`.
        settings: the study's settings.
        kernels: family names and/or `Potential` objects (default: `settings.families`).

    Returns:
        See [`compare_families`][infograv.experiments._kernel_fit.compare_families].
    """
    return compare_families(
        data, embedding, _potentials(settings, kernels), query_maps=settings.query_maps,
        n_refits=settings.n_refits, refit_steps=settings.refit_steps,
        max_steps=settings.max_steps, ktol=settings.ktol, margin=settings.margin,
        kernel_dims=settings.kernel_dims,
        n_boot=settings.n_boot,
        level=settings.level, seed=settings.seed, progress=progress)


def correlation_claim(x: Any, y: Any, categories: Any,
                      settings: ValidationSettings) -> dict[str, Any]:
    r"""Spearman correlation of `x` and `y` over prompts: pooled, and with categories also the
    within- and between-category parts (stratified bootstrap) and each category's own value.

    Returns `{"n", "estimate", "ci", "p", ...}` with `p` the two-sided bootstrap p-value of
    $\rho_s = 0$; `estimable` is false (and the numbers `nan`) below `settings.min_prompts`.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    cats = None if categories is None else np.asarray(categories, dtype=object)[ok]
    n = int(len(x))
    out: dict[str, Any] = {"n": n, "n_needed": settings.min_prompts,
                           "estimable": n >= settings.min_prompts}
    nan3 = (float("nan"),) * 3
    if not out["estimable"]:
        return out | {"estimate": float("nan"), "ci": [float("nan")] * 2, "p": float("nan"),
                      "ci3": nan3}
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "seed": settings.seed}
    est, stats = bootstrap(spearman, x, y, **kw)
    ci = percentile_interval(stats, settings.level)
    out |= {"estimate": est, "ci": ci, "p": p_value(stats), "ci3": (est, *ci)}
    if cats is not None and len(set(cats)) > 1 and all(c is not None for c in cats):
        idx = np.random.default_rng(settings.seed + 3)
        w, b = within_between(x, y, cats)
        reps = []
        for _ in range(min(settings.n_boot, 400)):
            j = np.concatenate([np.flatnonzero(cats == c)[idx.integers(
                0, np.sum(cats == c), np.sum(cats == c))] for c in np.unique(cats)])
            reps.append(within_between(x[j], y[j], cats[j]))
        r = np.asarray(reps)

        def q(v: np.ndarray) -> list[float]:
            return percentile_interval(v[np.isfinite(v)], settings.level)

        out["within"] = {"estimate": w, "ci": q(r[:, 0]), "p": p_value(r[:, 0][np.isfinite(
            r[:, 0])])}
        out["between"] = {"estimate": b, "ci": q(r[:, 1])}
        out["by_category"] = {}
        for c in sorted(set(cats)):
            m = cats == c
            if m.sum() >= settings.min_prompts:
                e, lo, hi = bootstrap_ci(spearman, x[m], y[m], n_boot=settings.n_boot,
                                         level=settings.level, seed=settings.seed)
                out["by_category"][str(c)] = {"n": int(m.sum()), "estimate": e, "ci": [lo, hi]}
            else:
                out["by_category"][str(c)] = {"n": int(m.sum()), "estimate": float("nan"),
                                              "ci": [float("nan")] * 2,
                                              "note": f"not estimable: {settings.min_prompts} "
                                                      "needed"}
    return out


def _angular_space(embedding: np.ndarray, settings: ValidationSettings
                   ) -> tuple[SemanticSpace, float]:
    """The unit-normalised token cloud with the rule-of-thumb angular bandwidth."""
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    rng = np.random.default_rng(settings.seed)
    sample = rng.choice(len(unit), min(400, len(unit)), replace=False)
    ang = np.arccos(np.clip(unit[sample] @ unit.T, -1.0, 1.0))
    kk = min(settings.density_k, len(unit) - 1)
    bw = float(np.median(np.partition(ang, kk, axis=1)[:, kk]))
    return SemanticSpace(jnp.asarray(embedding), bandwidth=bw, angular=True), bw


def _log_density(space: SemanticSpace, points: np.ndarray, chunk: int = 64) -> np.ndarray:
    return np.concatenate([np.asarray(space.log_density(jnp.asarray(points[i:i + chunk])))
                           for i in range(0, len(points), chunk)]) if len(points) else \
        np.zeros(0)


def voids_study(logp: np.ndarray | None, hidden: np.ndarray, embedding: np.ndarray,
                categories: Any, settings: ValidationSettings,
                token_ids: Any = None,
                correct: Any = None, *,
                summaries: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Claim 2 (voids): uncertainty rises where the token cloud is sparse.

    Densities: at the direction of the final hidden state (the logit geometry) and, independent
    of the logits, at the prompt's own input tokens (leave-one-out, mean over the prompt's
    tokens; needs `token_ids`). Outcomes: next-token entropy, the mass outside the
    `neighbourhood_k` tokens nearest to $h$ (by angle), and — not tied to entropy — whether the
    model's top token answers the prompt correctly (`correct`, `None` where a prompt has no
    answer). The paper predicts entropy and outside mass fall, and correctness rises, with
    density.

    `logp` `(B, V)` may be `None` when `summaries` (the `entropy` and `outside_mass` of
    [`next_token_summaries`][infograv.experiments._stream.next_token_summaries], computed while
    the distributions were streamed) are given instead.
    """
    space, bw = _angular_space(embedding, settings)
    log_rho = _log_density(space, hidden)
    if summaries is None:
        if logp is None:
            raise ValueError("logp, summaries: give the log-probabilities or their summaries.")
        unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
        summaries = next_token_summaries(logp, hidden, unit,
                                         min(settings.neighbourhood_k, len(unit) - 1))
    ent, outside = summaries["entropy"], summaries["outside_mass"]
    out: dict[str, Any] = {
        "log_density": log_rho, "entropy": ent, "outside_mass": outside, "bandwidth_rad": bw,
        "category": None if categories is None else list(categories),
        "density_entropy": correlation_claim(log_rho, ent, categories, settings),
        "density_outside": correlation_claim(log_rho, outside, categories, settings),
    }
    if token_ids is not None:
        k = space.dim - 1
        log_self = -0.5 * k * math.log(2 * math.pi * bw**2)
        uniq = np.unique(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in token_ids]))
        lr = _log_density(space, embedding[uniq])
        loo = dict(zip(uniq.tolist(), lr + np.log1p(-np.exp(np.minimum(log_self - lr, 0.0))
                                                    + 1e-300)))
        ir = np.asarray([np.mean([loo[int(t)] for t in ids]) for ids in token_ids])
        out["input_log_density"] = ir
        out["input_density_entropy"] = correlation_claim(ir, ent, categories, settings)
        if correct is not None:
            c = np.asarray([np.nan if v is None else float(v) for v in correct])
            out["correct"] = c
            has = np.isfinite(c)
            out["input_density_correct"] = correlation_claim(
                ir[has], c[has], None, settings)
    return out


def sensitivity_study(
    lp_a: np.ndarray, h_a: np.ndarray, lp_b: np.ndarray, h_b: np.ndarray,
    embedding: np.ndarray, fit: PotentialFit, settings: ValidationSettings,
    kinds: Any = None,
) -> dict[str, Any]:
    r"""Claim 3 (sensitivity): real KL under prompt perturbation vs the Fisher prediction.

    For each pair, $\delta = x_q(h_b) - x_q(h_a)$ in the fitted model's query space and the
    prediction is $\tfrac12\delta^\top g_F\delta = \tfrac12\mathrm{Var}_{Q_a}(\delta\cdot\nabla
    U)$ (docs/model/formalism.md §6, $T = 1$): the shared Fisher covariance
    (`infograv.geometry` `fisher_from_energies`) of the directional derivative of the fitted
    energies (a forward-mode derivative through [`energies`][infograv.model.energies]).
    Reported beside it: the fitted model's own exact KL and the same Fisher form of the real
    final layer, $\tfrac12\mathrm{Var}_{P_a}(\delta h\cdot x_i)$.
    """
    space = SemanticSpace(jnp.asarray(embedding / fit.unit))
    qa, qb = fit.query_positions(h_a), fit.query_positions(h_b)

    def u_of(q: jax.Array) -> jax.Array:
        return _energies_at(fit, q, space)

    pred, model_kl = [], []
    for i in range(0, len(qa), 16):
        a_, b_ = jnp.asarray(qa[i:i + 16]), jnp.asarray(qb[i:i + 16])
        ua, s = jax.jvp(u_of, (a_,), (b_ - a_,))
        ub = u_of(b_)
        la, lb = jax.nn.log_softmax(-ua, axis=-1), jax.nn.log_softmax(-ub, axis=-1)
        pa = jnp.exp(la)
        g = jax.vmap(lambda sv, p: fisher_from_energies(sv[:, None], p, 1.0)[0, 0])(s, pa)
        pred.append(np.asarray(0.5 * g))
        model_kl.append(np.asarray(jnp.sum(pa * (la - lb), axis=-1)))
    pred_arr, model_kl_arr = np.concatenate(pred), np.concatenate(model_kl)
    real_kl = np.sum(np.exp(lp_a) * (lp_a - lp_b), axis=1)
    s_dot = jnp.asarray((h_b - h_a) @ np.asarray(embedding).T)
    pa_real = jnp.asarray(np.exp(lp_a))
    dot_pred = np.asarray(0.5 * jax.vmap(
        lambda sv, p: fisher_from_energies(sv[:, None], p, 1.0)[0, 0])(s_dot, pa_real))
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    tiny = 1e-12

    def log_ratio(a: np.ndarray, b: np.ndarray) -> Any:
        return np.median(np.log10((a + tiny) / (b + tiny)), axis=-1)

    return {
        "real_kl": real_kl, "fisher_pred": pred_arr, "model_kl": model_kl_arr,
        "dot_fisher_pred": dot_pred, "kind": list(kinds) if kinds is not None else None,
        "family": fit.name,
        "real_vs_pred": correlation_claim(real_kl, pred_arr, kinds, settings),
        "spearman_real_vs_dot_pred": bootstrap_ci(spearman, real_kl, dot_pred, **kw),
        "median_log10_pred_over_real": bootstrap_ci(log_ratio, pred_arr, real_kl, **kw),
        "median_log10_dot_pred_over_real": bootstrap_ci(log_ratio, dot_pred, real_kl, **kw),
        "median_log10_pred_over_model_kl": bootstrap_ci(log_ratio, pred_arr, model_kl_arr,
                                                        **kw),
    }


def _energies_at(fit: PotentialFit, q: jax.Array, space: SemanticSpace) -> jax.Array:
    """The fitted energies `(B, V)` at query positions `q` `(B, d)` (units of the fit)."""
    from ..model import Query, energies

    bg = None if fit.c is None else space.embedding @ jnp.asarray(fit.c, q.dtype)
    return energies(space, Query(q, jnp.ones(q.shape[:1], q.dtype)), fit.potential,
                    background=bg)


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
    k = settings.n_samples
    for j, t in enumerate(temps):
        if hasattr(model, "sample_many"):
            # every prompt's samples in one batch (one row per sample, each its own draws)
            gens = model.sample_many([p for p in prompts for _ in range(k)],
                                     settings.max_new_tokens, temperature=float(t),
                                     seed=settings.seed + 1000 * j, stop=False)
            ids = [[int(x) for x in g.token_ids] for g in gens]
            groups = [ids[i * k:(i + 1) * k] for i in range(len(prompts))]
        else:
            groups = [_samples(model, p, settings.max_new_tokens, k, float(t),
                               settings.seed + 1000 * j) for p in prompts]
        for i, seqs in enumerate(groups):
            div[i, j] = _distinct(seqs, 2)
            d1[i, j] = _distinct(seqs, 1)
    per_prompt = np.array([spearman(temps, row) for row in div])
    per_prompt = np.where(np.isfinite(per_prompt), per_prompt, 0.0)
    kw: dict[str, Any] = {"n_boot": settings.n_boot, "level": settings.level, "seed": settings.seed}
    est, stats = bootstrap(mean, per_prompt, n_boot=settings.n_boot, seed=settings.seed)
    out = {
        "temperatures": temps, "distinct2": div, "distinct1": d1, "prompts": list(prompts),
        "per_prompt_spearman": per_prompt,
        "mean_spearman_T_diversity": bootstrap_ci(mean, per_prompt, **kw),
        "claim": {"n": len(prompts), "n_needed": settings.min_prompts,
                  "estimable": len(prompts) >= settings.min_prompts,
                  "estimate": est, "p": p_value(stats),
                  "ci": percentile_interval(stats, settings.level)},
        "distinct2_by_T": [bootstrap_ci(mean, div[:, j], **kw) for j in range(len(temps))],
    }
    if first_logp is not None:
        # the selection law's entropy with U = -log p at temperature t (one definition)
        ent = np.stack([np.asarray(thermodynamics(-first_logp, t).entropy) for t in temps],
                       axis=1)
        out["first_token_entropy"] = ent
    return out


def _wordfreq_mass(texts: Sequence[str]) -> np.ndarray | None:
    """Word-frequency surprisal of each text ([`infograv.model.surprisal_mass`][]); `None`
    without the `wordfreq` package."""
    try:
        return np.asarray([surprisal_mass(t) for t in texts])
    except ImportError:
        return None


def mass_study(model: Any, texts: Sequence[str], logp: np.ndarray | None,
               settings: ValidationSettings, categories: Any = None, *,
               entropy: np.ndarray | None = None) -> dict[str, Any]:
    """Claim 1 (information mass): heavier queries make deeper wells, so lower entropy.

    Masses: `lm_surprisal`, $M = \\sum_k -\\log_2 P(t_k\\mid t_{<k})$ over every token of the
    prompt conditioned on the document start — exactly
    [`LanguageModel.surprisal_bits`][infograv.lm.LanguageModel.surprisal_bits], computed batched
    by `surprisal_bits_many` — and word-frequency surprisal
    ([`infograv.model.surprisal_mass`][], when `wordfreq` is installed). Statistic: Spearman
    correlation of mass with next-token entropy, predicted negative; also per token (prompt
    length is a confounder) and within categories. `logp` `(B, V)` may be `None` when the
    next-token `entropy` `(B,)` is given.
    """
    m_lm = np.asarray(model.surprisal_bits_many(list(texts)), dtype=np.float64)
    n_tok = np.asarray([len(model.encode(t)) for t in texts], dtype=np.float64)
    if entropy is None:
        if logp is None:
            raise ValueError("logp, entropy: give the log-probabilities or the entropies.")
        entropy = np.asarray(thermodynamics(-np.asarray(logp), 1.0).entropy)
    ent = np.asarray(entropy, np.float64)
    out: dict[str, Any] = {
        "entropy": ent, "lm_surprisal": m_lm, "n_tokens": n_tok,
        "category": None if categories is None else list(categories),
        "lm_entropy": correlation_claim(m_lm, ent, categories, settings),
        "lm_per_token_entropy": correlation_claim(m_lm / np.maximum(n_tok, 1), ent, categories,
                                                  settings),
        "wordfreq_available": False,
    }
    wf = _wordfreq_mass(texts)
    if wf is not None:
        out["wordfreq_surprisal"] = wf
        out["wordfreq_available"] = True
        out["wordfreq_entropy"] = correlation_claim(wf, ent, categories, settings)
    return out


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _pca2(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean_ = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean_, full_matrices=False)
    return mean_, vt[:2]


def trajectory_study(model: Any, prompts: Sequence[str], fit: PotentialFit,
                     embedding: np.ndarray, settings: ValidationSettings) -> dict[str, Any]:
    """Observed token trajectories against the fitted model's predicted ones.

    Observed: greedy generation; the final hidden state at each step and the chosen tokens'
    embeddings. Predicted (teacher-forced): the fitted model's $T\\to0$ choice
    $\\arg\\min_i U_i$ at each observed hidden state. Predicted (free run, `drift` rule of
    docs/model/formalism.md §9): start at $x_q(h_0)$, pick $\\arg\\min_i U_i$, move the query
    centre to the running mean of the query and the chosen tokens (unit masses). All vectors are
    shown as unit directions projected onto the first two principal components of the observed
    hidden-state and token directions.
    """
    space = SemanticSpace(jnp.asarray(embedding / fit.unit))
    emb_u = embedding / fit.unit

    def argmin(q: np.ndarray) -> np.ndarray:
        return np.asarray(jnp.argmin(_energies_at(fit, jnp.asarray(q), space), axis=-1))

    runs = []
    for p in prompts:
        ids, hid = _generate(model, p, settings.trajectory_steps, temperature=0.0,
                             seed=settings.seed)
        n = min(len(ids), hid.shape[0])
        ids, hid = ids[:n], hid[:n]
        forced = [int(t) for t in argmin(fit.query_positions(hid))]
        x = fit.query_positions(hid[:1])[0]
        free = []
        for k in range(n):
            t = int(argmin(x[None, :])[0])
            free.append(t)
            x = x + (emb_u[t] - x) / (k + 2)
        pts = _unit(np.concatenate([hid, np.asarray(embedding)[ids]], axis=0))
        centre, comps = _pca2(pts)

        def proj(a: np.ndarray, centre: np.ndarray = centre, comps: np.ndarray = comps
                 ) -> np.ndarray:
            return (_unit(np.asarray(a)) - centre) @ comps.T

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
    return {"runs": runs, "family": fit.name}


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


def _from_claim(claim: str, measure: str, c: Mapping[str, Any], predicted: str,
                diagnostic: bool, settings: ValidationSettings) -> Verdict:
    est = float(c.get("estimate", float("nan")))
    lo, hi = (float(v) for v in c.get("ci", [float("nan")] * 2))
    return verdict(claim, measure, (est, lo, hi), predicted, p=float(c.get("p", float("nan"))),
                   null=float(c.get("null", 0.0)),
                   diagnostic=diagnostic, n=int(c.get("n", 0)),
                   n_needed=int(c.get("n_needed", 0)), alpha=settings.alpha)


def verdict_table(results: Mapping[str, Any], settings: ValidationSettings | None = None
                  ) -> list[Verdict]:
    """The study's verdict family, Holm-corrected as a whole (see the module docstring).

    Diagnostic claims: each gravity-like kernel against the harmonic one (paired held-out KL
    difference, refits included when there are any), the voids claims (density at $h$ and, as
    independent measures, at the input tokens; entropy and answer correctness), and the two
    information-mass claims. Consistency checks: the Fisher prediction of sensitivity and the
    effect of temperature on diversity (true of any softmax).
    """
    s = settings or ValidationSettings()
    out: list[Verdict] = []
    fit = results.get("fit")
    if fit is not None:
        for name, c in fit["paired"].items():
            n = len(fit["per_prompt"][name]["kl"])
            out.append(_from_claim(
                f"a gravity-like kernel ({name}) describes next-token distributions better "
                f"than the harmonic kernel (the dot-product form), both fitted, by more than "
                f"{s.margin:g} nats",
                f"held-out mean KL({name}) - KL(harmonic), nats",
                c | {"estimate": c["mean"], "n": n, "n_needed": 2}, "negative", True, s))
    v = results.get("voids")
    if v is not None:
        out.append(_from_claim("entropy rises in low-density regions (voids)",
                               "Spearman(log density at h, entropy)", v["density_entropy"],
                               "negative", True, s))
        if "input_density_entropy" in v:
            out.append(_from_claim(
                "entropy rises in low-density regions (voids), density independent of the "
                "logits", "Spearman(log density at the input tokens, entropy)",
                v["input_density_entropy"], "negative", True, s))
        if "input_density_correct" in v:
            out.append(_from_claim(
                "answers are less often correct in low-density regions (voids)",
                "Spearman(log density at the input tokens, top-1 answer correct)",
                v["input_density_correct"], "positive", True, s))
    sn = results.get("sensitivity")
    if sn is not None:
        out.append(_from_claim(
            "the Fisher curvature of the fitted field predicts the real sensitivity to prompt "
            "perturbation", "Spearman(real KL, 1/2 d'g_F d)", sn["real_vs_pred"], "positive",
            False, s))
    t = results.get("temperature")
    if t is not None:
        out.append(_from_claim("sampling temperature raises output diversity",
                               "mean per-prompt Spearman(T, distinct-2)", t["claim"],
                               "positive", False, s))
    m = results.get("mass")
    if m is not None:
        out.append(_from_claim("more information mass deepens the well (lower entropy)",
                               "Spearman(lm_surprisal mass, entropy)", m["lm_entropy"],
                               "negative", True, s))
        if m.get("wordfreq_available"):
            out.append(_from_claim("more information mass deepens the well (lower entropy)",
                                   "Spearman(word-frequency mass, entropy)",
                                   m["wordfreq_entropy"], "negative", True, s))
    return apply_holm(out, s.alpha)


def _verdicts_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """The output contract of `verdicts.json` (plus explanatory keys)."""
    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    return [{"claim": v.claim, "measure": v.measure, "estimate": num(v.estimate),
             "ci": [num(v.low), num(v.high)], "diagnostic": bool(v.diagnostic),
             "p_holm": num(v.p_holm), "verdict": v.outcome, "p": num(v.p),
             "predicted": v.predicted, "null": v.null, "n": v.n, "n_needed": v.n_needed,
             "estimable": v.estimable, "detail": v.detail} for v in verdicts]


def _fmt(e: float, ci: Sequence[float], f: str = "+.3g") -> str:
    if not np.isfinite(e):
        return "n/a"
    return f"{e:{f}} [{ci[0]:{f}}, {ci[1]:{f}}]"


def _verdicts_markdown(verdicts: Sequence[Verdict], header: str, notes: Sequence[str]) -> str:
    lines = [header, "", *notes, "",
             "| claim | kind | measure | estimate [95 % CI] | predicted | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        kind = "diagnostic" if v.diagnostic else "consistency check"
        est = _fmt(v.estimate, (v.low, v.high)) if v.estimable else v.detail
        ph = f"{v.p_holm:.2g}" if np.isfinite(v.p_holm) else "n/a"
        lines.append(f"| {v.claim} | {kind} | {v.measure} | {est} | {v.predicted} | {ph} | "
                     f"**{v.outcome}** |")
    n = {k: sum(v.outcome == k for v in verdicts) for k in ("holds", "fails", "inconclusive")}
    lines += ["", f"{n['holds']} hold, {n['fails']} fail, {n['inconclusive']} inconclusive.",
              "", "Rule: a claim holds when its Holm-adjusted two-sided bootstrap p-value (over "
              "the whole table) is below alpha and the estimate lies on the predicted side, "
              "fails when it is below alpha on the other side, and is inconclusive otherwise. "
              "Intervals are unadjusted 95 % percentile intervals.", ""]
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


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, PotentialFit):
        return obj.to_dict()
    if isinstance(obj, Verdict):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _model_label(model: Any, name: str | None) -> str:
    for attr in ("name", "model_name", "label"):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    return name or type(model).__name__


def run_validation(
    out: Path | str,
    *,
    settings: ValidationSettings | None = None,
    prompts: Any = None,
    model: Any = "smollm2",
    kernels: Sequence[Any] | None = None,
    cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole empirical study and write its figures and tables into `out`.

    Steps: load the language model, read the real next-token distributions of the prompts, fit
    every kernel family on the training prompts and evaluate it on the held-out ones (with
    refits on bootstrap resamples and the kernel dimension side by side), measure the voids,
    sensitivity, temperature and information-mass claims and the observed trajectories, and
    write `verdicts.md` saying plainly which claims hold.

    Output contract: `fit_summary.json` is `{"families": {NAME: {"params", "train_kl",
    "heldout_kl": {"mean", "ci"}, "converged", "starts", "limit_of"}}, ...}` for the primary
    query map (more keys beside these); `verdicts.json` is a list of `{"claim", "measure",
    "estimate", "ci", "diagnostic", "p_holm", "verdict"}` (plus explanatory keys), `verdict` one
    of `holds`, `fails`, `inconclusive`. Also written: `fits/<map>/<NAME>.json` (every fitted
    parameter and loss curve; reload with `infograv.model.PotentialFit.from_dict`),
    `heldout_per_prompt.csv`, `voids.csv`, `sensitivity.csv`, `temperature.csv`, `mass.csv`,
    `trajectories.json`, `results.json`, `verdicts.md`, `run.json` (settings, versions, model
    file SHA-256, prompt source, per-stage timings) and the `val_*` figures.

    Arguments:
        out: an existing or new folder.
        settings: the study's settings (default: the full defaults of
            [`ValidationSettings`][infograv.experiments.ValidationSettings]).
        prompts: `None` (the built-in prompt set), a prompt file (JSONL, CSV or TXT, read by
            `infograv.data.load_prompts`), a prompt set, or a list of texts.
        model: a model name or path for `infograv.lm.load_language_model`, or a loaded model.
        kernels: built-in family names and/or `infograv.model.Potential` objects (default:
            `settings.families`).
        cache: reuse per-prompt distributions cached on disk when the cache is available.
        progress: called with a message at each step.

    Returns:
        The results dictionary (also written as `results.json`).

    Raises:
        infograv.lm.ArtifactNotFoundError: the model file is absent (run `infograv fetch NAME`).
        ValueError: too few prompts in a split, or a bad argument.
    """
    say = progress or (lambda s: None)
    out = Path(out)
    settings = settings or ValidationSettings()
    records, source = _prompt_records(prompts)
    timings: dict[str, float] = {}
    t_start, cpu_start = time.perf_counter(), time.process_time()
    stamp = [time.perf_counter()]

    def tick(name: str) -> None:
        now = time.perf_counter()
        timings[name] = now - stamp[0]
        stamp[0] = now

    model_name = model if isinstance(model, str) else None
    if isinstance(model, str):
        from .. import lm

        say(f"loading the language model ({model})")
        model = lm.load_language_model(model)
    label = _model_label(model, model_name)
    tick("load_model")
    embedding = np.asarray(model.embedding, dtype=np.float64)
    builtin = prompts is None
    train = _subset([p for p in records if p.split == "train"], settings.max_train,
                    settings.seed)
    held = _subset([p for p in records if p.split == "test"], settings.max_heldout,
                   settings.seed + 1)
    if len(train) < 2 or len(held) < 2:
        raise ValueError(f"prompts: need at least 2 training and 2 held-out prompts, got "
                         f"{len(train)} and {len(held)} ({source}).")
    has_cats = all(p.category is not None for p in records)
    say(f"next-token distributions of {len(train)} training and {len(held)} held-out prompts")
    prompts_all = train + held
    V = embedding.shape[0]
    store = stream_distributions(
        lambda ts: _raw_distributions(model, ts, cache), [p.text for p in prompts_all],
        embedding, neighbourhood_k=min(settings.neighbourhood_k, V - 1),
        chunk=chunk_rows(len(prompts_all), V))
    with store:
        results = _run_stages(out, model, label, source, store, train, held, prompts_all,
                              embedding, settings, kernels, cache, builtin, records, has_cats,
                              say, tick)
    verdicts = results["verdicts"]
    best = results["info"]["best_family"]
    timings["total_wall_s"] = time.perf_counter() - t_start
    timings["total_cpu_s"] = time.process_time() - cpu_start
    write_json(out / "run.json", {
        "settings": dataclasses.asdict(settings), "versions": _versions(),
        "model": label, "model_file": _model_file_info(model), "prompts": source,
        "prompt_set": _prompt_set_info() if builtin else {"n": len(records)},
        "best_family": best, "timings_s": timings,
    })
    results["timings_s"] = timings
    for v in verdicts:
        say(f"{v.outcome.upper():>12}: {v.claim} ({v.detail})")
    return results


def _run_stages(out: Path, model: Any, label: str, source: str, store: Any,
                train: list[_Prompt], held: list[_Prompt],
                prompts_all: list[_Prompt], embedding: np.ndarray, settings: ValidationSettings,
                kernels: Sequence[Any] | None, cache: bool, builtin: bool,
                records: list[_Prompt], has_cats: bool, say: Callable[[str], None],
                tick: Callable[[str], None]) -> dict[str, Any]:
    """The stages of `run_validation` after the distributions are streamed into `store`
    (prompts in the order `train + held`)."""
    tick("distributions")
    results: dict[str, Any] = {}
    n_tr = len(train)
    fit_idx = np.asarray(_subset(list(range(n_tr)), settings.max_fit_prompts,
                                 settings.seed + 3), np.int64)
    heldout = Rows(store, idx=np.arange(n_tr, len(prompts_all)))
    say("fitting kernel families" + (f" on {len(fit_idx)} of {n_tr} training prompts"
                                     if len(fit_idx) < n_tr else ""))
    fit = fit_study({"train": Rows(store, idx=fit_idx), "heldout": heldout}, embedding,
                    settings, say, kernels)
    fit["n_fit_prompts"] = int(len(fit_idx))
    results["fit"] = fit
    tick("fit")

    cats = [p.category for p in prompts_all] if has_cats else None
    correct: list[float | None] = [None] * len(prompts_all)
    if any(p.answer for p in prompts_all):
        from ..data.prompts import answer_matches

        for i, p in enumerate(prompts_all):
            if p.answer:
                correct[i] = float(answer_matches(model.decode([int(store.top1[i])]),
                                                  p.answer))
    say("voids: entropy, outside mass and answer correctness against local density")
    results["voids"] = voids_study(None, store.hidden, embedding, cats, settings,
                                   [model.encode(p.text) for p in prompts_all], correct,
                                   summaries={"entropy": store.entropy,
                                              "outside_mass": store.outside_mass})
    tick("voids")

    primary = fit["primary_map"]
    best = min(fit["maps"][primary], key=lambda n: fit["maps"][primary][n]["heldout_kl"]["mean"])
    best_fit = fit["fits"][primary][best]
    pairs: list[Any] = []
    if builtin:
        from ..data.prompts import load_perturbations

        say(f"sensitivity: perturbation pairs against the Fisher metric of {best}")
        pairs = _subset(load_perturbations(), settings.max_pairs, settings.seed)
        lp_a, h_a = _distributions(model, [q.text_a for q in pairs], cache)
        lp_b, h_b = _distributions(model, [q.text_b for q in pairs], cache)
        results["sensitivity"] = sensitivity_study(lp_a, h_a, lp_b, h_b, embedding, best_fit,
                                                   settings, [q.kind for q in pairs])
    tick("sensitivity")

    say("temperature: diversity of sampled continuations")
    pool = [p for p in records if p.category == "open"] if builtin else records
    open_prompts = _subset(pool, settings.n_temperature_prompts, settings.seed)
    lp_open, _ = _distributions(model, [p.text for p in open_prompts], cache)
    results["temperature"] = temperature_study(model, [p.text for p in open_prompts], settings,
                                               lp_open)
    tick("temperature")

    say("information mass: entropy against surprisal mass")
    keep = _subset(list(range(len(prompts_all))), settings.max_mass_prompts, settings.seed)
    mass_prompts = [prompts_all[i] for i in keep]
    results["mass"] = mass_study(model, [p.text for p in mass_prompts], None, settings,
                                 [p.category for p in mass_prompts] if has_cats else None,
                                 entropy=store.entropy[np.asarray(keep, np.int64)])
    results["mass"]["id"] = [p.id for p in mass_prompts]
    tick("mass")

    say("observed token trajectories")
    traj = [p.text for p in _subset(pool, settings.n_trajectories, settings.seed + 2)]
    results["trajectories"] = trajectory_study(model, traj, best_fit, embedding, settings)
    tick("trajectories")

    verdicts = verdict_table(results, settings)
    results["verdicts"] = verdicts
    say("writing tables and figures")
    info = {"model": label, "source": source, "n_train": len(train), "n_heldout": len(held),
            "categories": has_cats, "best_family": best}
    results["info"] = info
    _write_outputs(out, results, settings, train, held, pairs, prompts_all)
    figs = _subset(list(range(len(heldout))), settings.figure_prompts, settings.seed + 4)
    write_figures(out, results, embedding, heldout.take(figs))
    tick("outputs")
    return results


def _prompt_set_info() -> dict[str, Any]:
    from ..data.prompts import prompt_set_info

    return dict(prompt_set_info())


def _write_outputs(out: Path, results: Mapping[str, Any], settings: ValidationSettings,
                   train: Sequence[_Prompt], held: Sequence[_Prompt], pairs: Sequence[Any],
                   prompts_all: Sequence[_Prompt]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fit = results["fit"]
    info = results["info"]
    primary = fit["primary_map"]
    fams = {}
    for name, f in fit["maps"][primary].items():
        fams[name] = {"params": f["params"], "train_kl": f["train_kl"],
                      "heldout_kl": {k: f["heldout_kl"][k] for k in
                                     ("mean", "ci", "ci_given_fit") if k in f["heldout_kl"]}
                      | {"refits": f["heldout_kl"].get("refits", 0)},
                      "converged": f["converged"], "starts": f["starts"],
                      "limit_of": f["limit_of"], "contains": f["contains"], "d": f["d"],
                      "a": f["a"], "steps": f["steps"], "grad_norm": f["grad_norm"],
                      "rule": f.get("rule"), "evaluations": f.get("evaluations"),
                      "seconds": f.get("seconds"),
                      "top1_agreement": f["top1_agreement"], "entropy_corr": f["entropy_corr"]}
    summary = {
        "families": fams, "model": info["model"], "prompts": info["source"],
        "query_map": primary, "length_unit": fit["unit"],
        "params_note": "kernel parameters are in units of length_unit (distances divided by it)",
        "n_train": len(train), "n_heldout": len(held),
        "query_maps": {qm: {n: {"heldout_kl": m["heldout_kl"], "train_kl": m["train_kl"],
                                "params": m["params"], "converged": m["converged"]}
                            for n, m in maps.items()} for qm, maps in fit["maps"].items()},
        "paired_kl_difference_vs_harmonic": fit["paired"],
        "kernel_dimension": fit["dims"],
        "baseline_dot_harmonic": fit["baseline_dot"],
        "settings": dataclasses.asdict(settings),
    }
    write_json(out / "fit_summary.json", _jsonable(summary))
    for qm, fs in fit["fits"].items():
        for name, f in fs.items():
            write_json(out / "fits" / qm / f"{name}.json", f.to_dict())
    cols: dict[str, Any] = {"id": [p.id for p in held],
                            "category": [p.category or "" for p in held]}
    for name, pp in fit["per_prompt"].items():
        cols[f"kl_{name}"] = pp["kl"]
        cols[f"top1_{name}"] = pp["top1"]
    cols["entropy_real"] = next(iter(fit["per_prompt"].values()))["entropy_real"]
    write_csv(out / "heldout_per_prompt.csv", cols)
    v = results["voids"]
    vcols = {"id": [p.id for p in prompts_all], "category": [p.category or "" for p in prompts_all],
             "log_density_h": v["log_density"], "entropy": v["entropy"],
             "outside_mass": v["outside_mass"]}
    if "input_log_density" in v:
        vcols["log_density_input"] = v["input_log_density"]
    write_csv(out / "voids.csv", vcols)
    s = results.get("sensitivity")
    if s is not None:
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
    mcols = {"id": m["id"], "category": [c or "" for c in (m["category"] or [""] * len(m["id"]))],
             "entropy": m["entropy"], "lm_surprisal_bits": m["lm_surprisal"],
             "n_tokens": m["n_tokens"]}
    if m.get("wordfreq_available"):
        mcols["wordfreq_surprisal_bits"] = m["wordfreq_surprisal"]
    write_csv(out / "mass.csv", mcols)
    write_json(out / "trajectories.json", _jsonable(results["trajectories"]))
    write_json(out / "verdicts.json", _verdicts_json(results["verdicts"]))
    run_kind = (f"{len(train)} training and {len(held)} held-out prompts ({info['source']}), "
                f"{len(fit['maps'][primary])} kernel families, {primary} query map")
    notes = [f"Model: {info['model']}. Run: {run_kind}."]
    if not info["categories"]:
        notes.append("The prompts carry no categories: pooled statistics only.")
    header = f"# Verdicts: information gravity on {info['model']}"
    extra = []
    if info["categories"]:
        extra = ["## Pooled, within and between categories", "",
                 "Within: rank correlation with each category's mean rank removed; between: "
                 "correlation of the category mean ranks (stratified bootstrap, 95 %).", "",
                 "| measure | pooled | within | between | " + " | ".join(
                     sorted({p.category or "" for p in prompts_all})) + " |",
                 "|---|---|---|---|" + "---|" * len({p.category for p in prompts_all})]
        entries = [("Spearman(log density at h, entropy)", v["density_entropy"]),
                   ("Spearman(log density at input tokens, entropy)",
                    v.get("input_density_entropy")),
                   ("Spearman(lm_surprisal, entropy)", m["lm_entropy"]),
                   ("Spearman(word-frequency mass, entropy)", m.get("wordfreq_entropy"))]
        for lab, c in entries:
            if not c or not c.get("estimable"):
                continue
            w, b = c.get("within", {}), c.get("between", {})
            bc = c.get("by_category", {})
            cells = [_fmt(c["estimate"], c["ci"], "+.2f"),
                     _fmt(w.get("estimate", np.nan), w.get("ci", [np.nan] * 2), "+.2f"),
                     _fmt(b.get("estimate", np.nan), b.get("ci", [np.nan] * 2), "+.2f")]
            cells += [_fmt(bc.get(k, {}).get("estimate", np.nan),
                           bc.get(k, {}).get("ci", [np.nan] * 2), "+.2f")
                      for k in sorted({p.category or "" for p in prompts_all})]
            extra.append(f"| {lab} | " + " | ".join(cells) + " |")
    write_text(out / "verdicts.md", _verdicts_markdown(results["verdicts"], header, notes)
               + "\n".join(extra) + "\n")
    write_json(out / "results.json", _jsonable(
        {k: val for k, val in results.items() if k not in ("trajectories", "fit")}
        | {"fit": {k: val for k, val in fit.items() if k not in ("fits",)}}))


def paper_section(out: Path, progress: Callable[[str], None]) -> None:
    """The validation figures and tables for `infograv paper` (the quick settings).

    Raises:
        infograv.lm.ArtifactNotFoundError: the SmolLM2 model file is absent; run
            `infograv fetch smollm2`.
    """
    run_validation(out, settings=ValidationSettings.quick(), progress=progress)
