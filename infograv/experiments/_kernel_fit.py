"""The study's kernel comparison: which families are fitted, in what order, which limits they
contain, the held-out evaluation, refits on bootstrap resamples of the training prompts, and the
kernel dimension side by side. The fitting itself is [`infograv.model._fit.fit_potential`][]."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..model import Potential, Query, SemanticSpace, energies, log_probs
from ..model._fit import (
    _CHUNK_ELEMS,
    PotentialFit,
    fit_potential,
    kl_per_prompt,
    length_unit,
    potential_name,
    prepare_fit_data,
)
from ._stats import (
    bootstrap,
    bootstrap_ci,
    index_blocks,
    mean,
    p_value,
    pearson,
    percentile_interval,
)
from ._stream import Rows

__all__ = ["FAMILIES", "LIMITS", "family_potential", "evaluate_logprobs", "dot_baseline",
           "compare_families"]

FAMILIES = ("newton", "plummer", "yukawa", "gaussian", "harmonic")

#: The limits each built-in family contains: `{family: {contained: shape}}`, where `shape` sets
#: the shape parameter of the limit start (a multiple of the largest fitted distance for widths
#: that tend to infinity, of the smallest for one that tends to zero; `mu` times 1/largest).
LIMITS: dict[str, dict[str, dict[str, float]]] = {
    "gaussian": {"harmonic": {"sigma": 30.0}},
    "plummer": {"harmonic": {"epsilon": 30.0}, "newton": {"epsilon": 1e-3}},
    "yukawa": {"newton": {"mu": 1e-6}},  # below the clip at 1e-5: starts on it
}
#: fitted first, so that the families containing them can start at their fits
_ORDER = ("harmonic", "newton", "gaussian", "plummer", "yukawa")


def family_potential(name: str, d: int) -> Potential:
    """The built-in kernel `name` as a [`Potential`][infograv.model.Potential] of dimension `d`
    (Gaussian and harmonic do not depend on `d`; they are built with `d` anyway).

    Raises:
        ValueError: unknown `name`.

    Example:
        >>> float(family_potential("gaussian", 3)(0.0, 1.0))
        -1.0
    """
    if name not in FAMILIES:
        raise ValueError(f"name: unknown kernel family {name!r}; choose from {FAMILIES}.")
    return Potential(name, int(d))


def evaluate_logprobs(logq: np.ndarray, logp: np.ndarray) -> dict[str, np.ndarray]:
    """Per-prompt held-out quantities of a model `logq` against the real `logp` (both `(B, V)`):
    `kl` (nats), `top1` (1 when the most likely tokens agree), `entropy_model`,
    `entropy_real`."""
    p, q = np.exp(logp), np.exp(logq)
    return {
        "kl": np.sum(np.where(p > 0, p * (logp - logq), 0.0), axis=1),
        "top1": (np.argmax(logp, axis=1) == np.argmax(logq, axis=1)).astype(np.float64),
        "entropy_model": -np.sum(np.where(q > 0, q * logq, 0.0), axis=1),
        "entropy_real": -np.sum(np.where(p > 0, p * logp, 0.0), axis=1),
    }


def dot_baseline(hidden: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    r"""Log-probabilities of the harmonic kernel the dot product implies, without any fit.

    $U_i = \tfrac12 |x_i - h|^2$ ($k = 1$, $x_q = h$, $M = T = 1$) through
    [`energies`][infograv.model.energies]. It equals the real softmax of $h\cdot x_i$ except for
    the token term $\tfrac12|x_i|^2$.
    """
    space = SemanticSpace(jnp.asarray(embedding, jnp.float64))
    pot = Potential("harmonic", space.dim, k=1.0)
    out = []
    for i in range(0, len(hidden), 32):
        h = jnp.asarray(hidden[i:i + 32], jnp.float64)
        u = energies(space, Query(h, jnp.ones(h.shape[:1], h.dtype)), pot)
        out.append(np.asarray(log_probs(u, 1.0)))
    return np.concatenate(out, axis=0)


def _rows(data: Any) -> Rows:
    return data if isinstance(data, Rows) else Rows(data[0], data[1])


def _evaluate(logq_of: Callable[[np.ndarray], np.ndarray], rows: Rows) -> dict[str, np.ndarray]:
    """`evaluate_logprobs` of the model `logq_of(hidden)` over `rows`, chunk by chunk."""
    parts = []
    for lp, h, n in rows.chunks():
        ev = evaluate_logprobs(logq_of(h), lp)
        parts.append({k: v[:n] for k, v in ev.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class _HeldOutData:
    """The held-out prompts as `FitData` for `kl_per_prompt`: prepared once when they fit in
    `_CHUNK_ELEMS` (prompt, token) pairs, else chunk by chunk at each use (memory flat)."""

    def __init__(self, rows: Rows, embedding: np.ndarray, unit: float, shared: Any) -> None:
        self.rows, self.embedding, self.unit, self.shared = rows, embedding, unit, shared
        self._whole = None
        if len(rows) * rows.vocab <= _CHUNK_ELEMS:
            lp, h = rows.take(np.arange(len(rows)))
            self._whole = prepare_fit_data(h, lp, embedding, unit, shared=shared)

    def kl(self, fit: PotentialFit) -> np.ndarray:
        if self._whole is not None:
            return kl_per_prompt(fit, self._whole)
        out = []
        for lp, h, n in self.rows.chunks():
            d = prepare_fit_data(h, lp, self.embedding, self.unit, shared=self.shared)
            out.append(kl_per_prompt(fit, d)[:n])
        return np.concatenate(out)


def _mean_ci(values: np.ndarray, refit_values: np.ndarray | None, n_boot: int, level: float,
             seed: int, null: float = 0.0) -> dict[str, Any]:
    """Mean over held-out prompts: interval given the fit, and with the fit's own variation;
    p-values of `null`.

    With refits `(R, n)`, replicate `j` uses refit `j mod R` and a resample of the held-out
    prompts (a two-stage bootstrap: training prompts, then held-out prompts)."""
    est, stats = bootstrap(mean, values, n_boot=n_boot, seed=seed)  # one set of resamples
    lo, hi = percentile_interval(stats, level)
    out: dict[str, Any] = {"mean": est, "ci_given_fit": [lo, hi], "ci": [lo, hi],
                           "p_given_fit": p_value(stats, null), "null": null}
    if refit_values is not None and len(refit_values):
        n = values.shape[0]
        parts, done = [], 0
        for idx in index_blocks(n, n_boot, seed + 7):
            r = (done + np.arange(len(idx))) % len(refit_values)
            parts.append(np.mean(refit_values[r[:, None], idx], axis=1))
            done += len(idx)
        reps = np.concatenate(parts)
        reps = reps[np.isfinite(reps)]
        out["ci"] = percentile_interval(reps, level)
        out["p"] = p_value(reps, null)
        out["refits"] = int(len(refit_values))
        out["refit_sd_of_mean"] = float(np.std(np.mean(refit_values, axis=1)))
    else:
        out["p"] = out["p_given_fit"]
    return out


def _order(names: Sequence[str]) -> list[str]:
    built = [n for n in _ORDER if n in names]
    return built + [n for n in names if n not in built]


def compare_families(
    data: Mapping[str, Any],
    embedding: np.ndarray,
    potentials: Mapping[str, Potential],
    *,
    query_maps: Sequence[str] = ("affine",),
    n_refits: int = 0,
    refit_steps: int = 60,
    max_steps: int = 300,
    ktol: float = 1e-6,
    margin: float = 1e-5,
    kernel_dims: Sequence[int] = (),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    progress: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Fit every family on the training prompts and compare them on the held-out prompts.

    Arguments:
        data: `{"train": (logp, hidden), "heldout": (logp, hidden)}`; either entry may also
            be a [`Rows`][infograv.experiments._stream.Rows] read from a `DistributionStore`
            (the held-out one chunk by chunk: memory flat in the number of prompts).
        embedding: `(V, d)`.
        potentials: `{name: Potential}` (built-in names get their limit starts, `LIMITS`).
        query_maps: the maps to fit; the first is the primary one (refits, dimension sweep).
        n_refits: refits on bootstrap resamples of the training prompts (primary map).
        refit_steps: L-BFGS step limit of a refit (warm-started at the full fit).
        max_steps: L-BFGS step limit of a fit.
        ktol: the bound clause of the convergence rule (see `fit_potential`).
        margin: the kernel comparison's margin (nats): the paired difference against the
            harmonic kernel is tested against the null `-margin` (better by more than
            `margin`, the resolution of the fits).
        kernel_dims: extra dimensions for Newton, Plummer and Yukawa (primary map).

    Returns:
        `{"unit", "maps": {map: {name: {...}}}, "fits": {map: {name: PotentialFit}},
        "per_prompt": {name: {...}}, "paired": {name: {...}}, "dims": {...},
        "baseline_dot": {...}}`.
    """
    train = _rows(data["train"])
    lp_tr, h_tr = train.take(np.arange(len(train)))
    held = _rows(data["heldout"])
    unit = length_unit(h_tr, lp_tr, embedding)
    dtr = prepare_fit_data(h_tr, lp_tr, embedding, unit)
    del lp_tr, train  # the fit reads `dtr` only (a store's rows are not held twice)
    dte = _HeldOutData(held, embedding, unit, dtr)
    kw: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed}
    names = _order(list(potentials))
    primary = query_maps[0]
    maps: dict[str, dict[str, Any]] = {}
    fits: dict[str, dict[str, PotentialFit]] = {}
    per_prompt: dict[str, dict[str, np.ndarray]] = {}
    for qm in query_maps:
        maps[qm], fits[qm] = {}, {}
        for name in names:
            t0 = time.perf_counter()
            pot = potentials[name]
            limits = [(fits[qm][ref], shape) for ref, shape in LIMITS.get(name, {}).items()
                      if ref in fits[qm] and getattr(pot, "kernel", None) == name]
            fit = fit_potential(pot, dtr, unit=unit, query_map=qm, name=name,
                                limit_starts=limits, max_steps=max_steps, ktol=ktol)
            ev = _evaluate(lambda h: fit.log_probs(h, embedding), held)  # noqa: B023
            fits[qm][name] = fit
            contained = [ref for ref in LIMITS.get(name, {}) if ref in potentials
                         and getattr(pot, "kernel", None) == name]
            maps[qm][name] = {
                "params": fit.params, "a": fit.a, "train_kl": fit.train_kl,
                "heldout_kl": _mean_ci(ev["kl"], None, n_boot, level, seed),
                "top1_agreement": bootstrap_ci(mean, ev["top1"], **kw),
                "entropy_corr": bootstrap_ci(pearson, ev["entropy_model"], ev["entropy_real"],
                                             **kw),
                "converged": fit.converged, "starts": len(fit.starts), "steps": fit.steps,
                "rule": fit.rule,
                "evaluations": int(sum(r.get("evaluations", 0) for r in fit.starts)),
                "grad_norm": fit.grad_norm,
                "limit_of": ("harmonic" if "harmonic" in contained else
                             (contained[0] if contained else None)),
                "contains": contained, "d": None if pot.d is None else int(pot.d),
                "seconds": time.perf_counter() - t0,
            }
            if qm == primary:
                per_prompt[name] = ev
            progress(f"fitted {name} ({qm} map): held-out KL {np.mean(ev['kl']):.3g}, "
                     f"{len(fit.starts)} start(s), converged {fit.converged}")
    # refits on bootstrap resamples of the training prompts (primary map)
    refit_kl: dict[str, np.ndarray] = {}
    if n_refits > 0:
        rng = np.random.default_rng(seed + 11)
        B = h_tr.shape[0]
        weights = [np.bincount(rng.integers(0, B, B), minlength=B).astype(np.float64)
                   for _ in range(n_refits)]
        for name in names:
            rows = []
            for w in weights:
                rf = fit_potential(potentials[name], dtr, unit=unit, query_map=primary,
                                   name=name, warm_start=fits[primary][name], weights=w,
                                   max_steps=refit_steps, ktol=ktol)
                rows.append(dte.kl(rf))
            refit_kl[name] = np.stack(rows)
            progress(f"refitted {name} on {n_refits} bootstrap resamples")
        for name in names:
            maps[primary][name]["heldout_kl"] = _mean_ci(per_prompt[name]["kl"],
                                                        refit_kl[name], n_boot, level, seed)
    paired = {}
    if "harmonic" in per_prompt:
        for name in names:
            if name == "harmonic":
                continue
            diff = per_prompt[name]["kl"] - per_prompt["harmonic"]["kl"]
            rd = (refit_kl[name] - refit_kl["harmonic"]) if refit_kl else None
            paired[name] = _mean_ci(diff, rd, n_boot, level, seed, null=-margin)
    dims: dict[str, Any] = {}
    for d in kernel_dims:
        dfits: dict[str, PotentialFit] = {}
        for name in ("newton", "plummer", "yukawa"):
            if name not in potentials or (name == "yukawa" and d % 2 == 0):
                # in even d the Yukawa Green's function is a Bessel K of integer order, which
                # JAX evaluates by a 256-node quadrature: 256 (B, V) arrays per evaluation
                continue
            pot = family_potential(name, d)
            limits = [(fits[primary]["harmonic"], LIMITS["plummer"]["harmonic"])
                      ] if name == "plummer" and "harmonic" in fits[primary] else []
            if name in ("plummer", "yukawa") and "newton" in dfits:
                limits.append((dfits["newton"], LIMITS[name]["newton"]))
            fit = fit_potential(pot, dtr, unit=unit, query_map=primary, name=name,
                                limit_starts=limits, max_steps=max_steps, ktol=ktol)
            dfits[name] = fit
            kl = dte.kl(fit)
            dims.setdefault(name, {})[str(d)] = {
                "params": fit.params, "train_kl": fit.train_kl, "converged": fit.converged,
                "heldout_kl": _mean_ci(kl, None, n_boot, level, seed)}
            progress(f"fitted {name} in d = {d}: held-out KL {np.mean(kl):.3g}")
    for name in ("newton", "plummer", "yukawa"):
        if name in maps[primary]:
            d0 = str(maps[primary][name]["d"])
            dims.setdefault(name, {})[d0] = {
                k: maps[primary][name][k] for k in ("params", "train_kl", "converged",
                                                     "heldout_kl")}
    base = _evaluate(lambda h: dot_baseline(h, embedding), held)
    per_prompt["dot"] = base
    return {
        "unit": unit, "primary_map": primary, "maps": maps, "fits": fits,
        "per_prompt": per_prompt, "paired": paired, "dims": dims,
        "refit_kl": refit_kl,
        "baseline_dot": {"heldout_kl": _mean_ci(base["kl"], None, n_boot, level, seed),
                         "top1_agreement": bootstrap_ci(mean, base["top1"], **kw)},
        "names": [potential_name(potentials[n]) for n in names],
    }
