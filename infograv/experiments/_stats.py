"""Statistics of the empirical study: rank correlation, the (stratified) percentile bootstrap
with its two-sided p-value, Holm's correction, and verdicts on a claim.

Every statistic here is vectorised over leading axes: `spearman(x, y)` with `x`, `y` of shape
`(..., n)` returns shape `(...)`, so a bootstrap evaluates all resamples in one call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["spearman", "mean", "pearson", "ranks", "bootstrap_ci", "bootstrap",
           "percentile_interval", "p_value",
           "holm", "Verdict", "verdict", "apply_holm", "within_between"]


# --------------------------------------------------------------------------------------------
# Statistics (vectorised over leading axes)
# --------------------------------------------------------------------------------------------


def ranks(x: Any) -> np.ndarray:
    """Ranks `0 … n-1` along the last axis, ties given their mean rank (vectorised).

    Example:
        >>> ranks([3.0, 1.0, 3.0, 2.0]).tolist()
        [2.5, 0.0, 2.5, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, axis=-1, kind="stable")
    sx = np.take_along_axis(x, order, axis=-1)
    n = x.shape[-1]
    pos = np.broadcast_to(np.arange(n, dtype=np.float64), x.shape)
    # start index of each tie run (cumulative max of run starts), end index (reverse)
    new = np.ones(x.shape, bool)
    new[..., 1:] = sx[..., 1:] != sx[..., :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0.0), axis=-1)
    last = np.ones(x.shape, bool)
    last[..., :-1] = new[..., 1:]
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, n), axis=-1), axis=-1),
                  axis=-1)
    out = np.empty_like(x)
    np.put_along_axis(out, order, 0.5 * (start + end), axis=-1)
    return out


def pearson(x: Any, y: Any) -> np.ndarray | float:
    """Pearson's correlation along the last axis (`nan` where either sample is constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim < 1:
        raise ValueError(f"x, y: need samples of equal shape, got {x.shape}, {y.shape}.")
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt(np.sum(xc * xc, axis=-1) * np.sum(yc * yc, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, np.sum(xc * yc, axis=-1) / np.where(den > 0, den, 1.0), np.nan)
    return float(r) if r.ndim == 0 else r


def spearman(x: Any, y: Any) -> np.ndarray | float:
    r"""Spearman's rank correlation $\rho_s$ along the last axis (ties get mean ranks).

    The one rank correlation of the package (the phenomena experiments use it too). Returns
    `nan` where either sample is constant; a float for 1-D input.

    Raises:
        ValueError: samples of unequal shape.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 25, 40])
        1.0
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim < 1:
        raise ValueError(f"x, y: need two samples of equal shape, got {x.shape}, {y.shape}.")
    return pearson(ranks(x), ranks(y))


def mean(x: Any) -> np.ndarray | float:
    """The mean along the last axis (a vectorised statistic for `bootstrap_ci`)."""
    r = np.mean(np.asarray(x, dtype=np.float64), axis=-1)
    return float(r) if np.ndim(r) == 0 else r


def within_between(x: Any, y: Any, groups: Any) -> tuple[float, float]:
    r"""Within- and between-group parts of a rank correlation.

    With ranks $r_x, r_y$ over all observations: *within* is the Pearson correlation of the
    ranks after subtracting each group's mean rank (the association that remains with the group
    held fixed); *between* is the size-weighted correlation of the groups' mean ranks.

    Example:
        >>> w, b = within_between([1, 2, 3, 4], [2, 1, 4, 3], ["a", "a", "b", "b"])
        >>> round(w, 6), round(b, 6)
        (-1.0, 1.0)
    """
    rx, ry = ranks(x), ranks(y)
    g = np.asarray(groups)
    mx, my = np.zeros_like(rx), np.zeros_like(ry)
    for c in np.unique(g):
        m = g == c
        mx[m], my[m] = rx[m].mean(), ry[m].mean()
    return float(pearson(rx - mx, ry - my)), float(pearson(mx, my))


# --------------------------------------------------------------------------------------------
# The bootstrap
# --------------------------------------------------------------------------------------------


def _indices(n: int, n_boot: int, seed: int | np.random.Generator, strata: Any) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    s = np.asarray(strata)
    if s.shape != (n,):
        raise ValueError(f"strata: need one label per observation ({n}), got {s.shape}.")
    parts = []
    for c in np.unique(s):
        members = np.flatnonzero(s == c)
        parts.append(members[rng.integers(0, len(members), size=(n_boot, len(members)))])
    return np.concatenate(parts, axis=1)


#: resampled observations held at once (resamples x observations); above it the resamples are
#: drawn and evaluated in blocks of rows, so memory stays flat in the number of observations
_BOOT_BLOCK = 1 << 22


def index_blocks(n: int, n_boot: int, seed: int, strata: Any = None) -> Iterator[np.ndarray]:
    """Bootstrap indices `(R_b, n)` in blocks whose rows add up to `n_boot`.

    While `n_boot * n <= _BOOT_BLOCK` this is one block, exactly `_indices(n, n_boot, seed,
    strata)`; above it the blocks come from one generator seeded with `seed`, each at most
    `_BOOT_BLOCK // n` resamples (the same distribution, another stream of draws).

    Example:
        >>> [b.shape for b in index_blocks(5, 4, seed=0)]
        [(4, 5)]
    """
    if n_boot * n <= _BOOT_BLOCK:
        yield _indices(n, n_boot, seed, strata)
        return
    rows = max(1, _BOOT_BLOCK // max(1, n))
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(rows, n_boot - done)
        yield _indices(n, b, rng, strata)
        done += b


def bootstrap(
    statistic: Callable[..., Any],
    *samples: Any,
    n_boot: int = 2000,
    seed: int = 0,
    strata: Any = None,
) -> tuple[float, np.ndarray]:
    """The statistic on the data and on `n_boot` paired resamples (vectorised; in blocks of
    resamples when `n_boot * n` is large, see `index_blocks`).

    `statistic` reduces the last axis (e.g. [`mean`][infograv.experiments.mean],
    [`spearman`][infograv.experiments.spearman]). With `strata`, each stratum is resampled
    within itself (its size kept). Non-finite resampled values are dropped.
    """
    if not samples:
        raise ValueError("samples: need at least one sample.")
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"samples: must have equal lengths, got {[len(a) for a in arrays]}.")
    if n < 2:
        raise ValueError(f"samples: need at least 2 observations, got {n}.")
    est = float(statistic(*arrays))
    parts = []
    for idx in index_blocks(n, n_boot, seed, strata):
        with np.errstate(all="ignore"):
            if statistic is spearman and len(arrays) == 2:
                part = _spearman_resamples(arrays[0], arrays[1], idx)
            else:
                part = np.asarray(statistic(*(a[idx] for a in arrays)),
                                  dtype=np.float64).reshape(-1)
        parts.append(part)
    stats = np.concatenate(parts)
    return est, stats[np.isfinite(stats)]


def _count_ranks(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mid-ranks of each original observation inside resamples given by multiplicities
    `counts` `(R, n)`, without sorting each resample: the observations are ordered once by
    value; a group of equal values holding G copies starting at position s gets s + (G-1)/2."""
    order = np.argsort(x, kind="stable")
    sx = x[order]
    starts = np.flatnonzero(np.r_[True, sx[1:] != sx[:-1]])
    group = np.empty(len(x), dtype=np.int64)
    group[order] = np.cumsum(np.r_[True, sx[1:] != sx[:-1]]) - 1
    g_count = np.add.reduceat(counts[:, order], starts, axis=1)          # (R, groups)
    g_start = np.cumsum(g_count, axis=1) - g_count
    return (g_start + 0.5 * (g_count - 1))[:, group]


def _spearman_resamples(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Spearman's rho of every resample `idx` `(R, n)`, as a count-weighted Pearson
    correlation of mid-ranks (O(R n), the same numbers as ranking each resample)."""
    R, n = idx.shape
    m = len(x)
    flat = (np.arange(R)[:, None] * m + idx).reshape(-1)
    counts = np.bincount(flat, minlength=R * m).reshape(R, m).astype(np.float64)
    rx, ry = _count_ranks(x, counts), _count_ranks(y, counts)
    tot = counts.sum(axis=1, keepdims=True)
    mx = np.sum(counts * rx, axis=1, keepdims=True) / tot
    my = np.sum(counts * ry, axis=1, keepdims=True) / tot
    cov = np.sum(counts * (rx - mx) * (ry - my), axis=1)
    den = np.sqrt(np.sum(counts * (rx - mx) ** 2, axis=1) * np.sum(counts * (ry - my) ** 2,
                                                                     axis=1))
    return np.where(den > 0, cov / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_ci(
    statistic: Callable[..., Any],
    *samples: Any,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    strata: Any = None,
) -> tuple[float, float, float]:
    r"""Percentile bootstrap confidence interval of a statistic of paired samples.

    The samples are resampled *together* (the same indices for each), `n_boot` times, and the
    interval is the $(1\pm\text{level})/2$ quantiles of the resampled statistic.

    Arguments:
        statistic: vectorised over leading axes, reducing the last, e.g.
            [`mean`][infograv.experiments.mean] or [`spearman`][infograv.experiments.spearman].
        *samples: equal-length 1-D arrays (shape `(n,)`).
        n_boot: number of resamples.
        level: confidence level in (0, 1).
        seed: seed of the resampling.
        strata: optional labels `(n,)`: resample within each stratum (stratified bootstrap).

    Returns:
        `(estimate, low, high)`.

    Raises:
        ValueError: no samples, unequal lengths, fewer than 2 observations, or a bad `level`.

    Example:
        >>> import numpy as np
        >>> est, lo, hi = bootstrap_ci(mean, np.arange(100.0), seed=1)
        >>> lo < est < hi
        True

    Reference: B. Efron and R. Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13.
    """
    if not 0 < level < 1:
        raise ValueError(f"level: must lie in (0, 1), got {level}.")
    est, stats = bootstrap(statistic, *samples, n_boot=n_boot, seed=seed, strata=strata)
    lo, hi = percentile_interval(stats, level)
    return est, lo, hi


def percentile_interval(stats: Any, level: float = 0.95) -> list[float]:
    r"""The $(1\pm\text{level})/2$ quantiles of resampled statistics `(n_boot,)`: the percentile
    interval of [`bootstrap_ci`][infograv.experiments.bootstrap_ci], from resamples already
    drawn (e.g. by `bootstrap`, when the same resamples also
    give a p-value). `[nan, nan]` when there are none.

    Example:
        >>> [round(x, 9) for x in percentile_interval(np.arange(101.0), 0.9)]
        [5.0, 95.0]
    """
    stats = np.asarray(stats)
    if len(stats) == 0:
        return [float("nan"), float("nan")]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return [float(lo), float(hi)]


def p_value(stats: Any, null: float = 0.0) -> float:
    r"""Two-sided bootstrap p-value of `null`: $\min(1, 2\min(\#\{s \le 0\}+1, \#\{s \ge 0\}+1)
    /(n+1))$ for the resampled statistics $s$ − `null` (the percentile-interval test: the
    $1-\alpha$ interval excludes `null` exactly when $p < \alpha$, up to the +1 terms)."""
    s = np.asarray(stats, dtype=np.float64) - null
    n = len(s)
    if n == 0:
        return float("nan")
    lo, hi = float(np.sum(s <= 0)) + 1, float(np.sum(s >= 0)) + 1
    return float(min(1.0, 2 * min(lo, hi) / (n + 1)))


def holm(p: Sequence[float]) -> np.ndarray:
    r"""Holm's step-down adjusted p-values: with $p_{(1)} \le \dots \le p_{(m)}$,
    $\tilde p_{(j)} = \max_{i \le j} \min(1, (m - i + 1)\,p_{(i)})$; `nan` entries are left out
    of the family and stay `nan`.

    Reference: S. Holm, *A simple sequentially rejective multiple test procedure*, Scand. J.
    Statist. 6 (1979) 65–70.

    Example:
        >>> holm([0.01, 0.04, 0.03]).tolist()
        [0.03, 0.06, 0.06]
    """
    pv = np.asarray(p, dtype=np.float64)
    out = np.full(pv.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(pv))
    m = len(ok)
    order = ok[np.argsort(pv[ok], kind="stable")]
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * pv[i]))
        out[i] = running
    return out


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim.

    Attributes:
        claim: what the paper predicts, in words.
        measure: the statistic measured.
        estimate, low, high: its value and 95 % confidence interval.
        predicted: `"positive"` or `"negative"` (the sign predicted, relative to `null`).
        null: the value that means "no effect".
        diagnostic: whether the claim separates information gravity from a plain softmax
            (`False`: a consistency check that any softmax sampler passes).
        p: the two-sided bootstrap p-value of `null`.
        p_holm: `p` adjusted by Holm over the verdict family (set by `apply_holm`).
        outcome: `"holds"`, `"fails"` or `"inconclusive"`.
        n: the number of observations.
        n_needed: the minimum number of observations for the measure.
        detail: the effect in words.
    """

    claim: str
    measure: str
    estimate: float
    low: float
    high: float
    predicted: str
    null: float = 0.0
    diagnostic: bool = True
    p: float = float("nan")
    p_holm: float = float("nan")
    outcome: str = "inconclusive"
    n: int = 0
    n_needed: int = 0
    detail: str = ""

    @property
    def estimable(self) -> bool:
        """Whether there were enough observations to estimate the measure."""
        return self.n >= self.n_needed


def _decide(est: float, p_adj: float, predicted: str, null: float, alpha: float) -> str:
    if not (np.isfinite(p_adj) and np.isfinite(est)) or p_adj >= alpha or est == null:
        return "inconclusive"
    side = 1.0 if predicted == "positive" else -1.0
    return "holds" if side * (est - null) > 0 else "fails"


def verdict(
    claim: str,
    measure: str,
    ci: tuple[float, float, float],
    predicted: str,
    *,
    null: float = 0.0,
    p: float | None = None,
    diagnostic: bool = True,
    n: int = 0,
    n_needed: int = 0,
    alpha: float = 0.05,
) -> Verdict:
    r"""A claim's verdict from its estimate, interval and p-value (before any correction).

    *holds*: $p < \alpha$ and the estimate lies on the predicted side of `null`; *fails*:
    $p < \alpha$ on the other side; *inconclusive* otherwise, or when fewer than `n_needed`
    observations were available. Without `p`, the interval decides (it excludes `null`:
    $p$ is set to 0, else 1). [`apply_holm`][infograv.experiments.apply_holm] replaces the
    decision by the one at the Holm-adjusted p-value.

    Raises:
        ValueError: `predicted` is neither `"positive"` nor `"negative"`, or `low > high`.

    Example:
        >>> v = verdict("entropy falls", "Spearman", (-0.3, -0.45, -0.12), "negative", p=0.001)
        >>> v.outcome
        'holds'
    """
    if predicted not in ("positive", "negative"):
        raise ValueError(f"predicted: expected 'positive' or 'negative', got {predicted!r}.")
    est, lo, hi = (float(v) for v in ci)
    if np.isfinite(lo) and np.isfinite(hi) and lo > hi:
        raise ValueError(f"ci: low ({lo}) is above high ({hi}).")
    if p is None:
        excl = np.isfinite(lo) and np.isfinite(hi) and (lo > null or hi < null)
        p = 0.0 if excl else 1.0
    if n < n_needed:
        est, lo, hi, p = float("nan"), float("nan"), float("nan"), float("nan")
        detail = f"not estimable: {n} observations, {n_needed} needed"
    else:
        detail = (f"{measure} = {est:+.3g} [{lo:+.3g}, {hi:+.3g}]; predicted {predicted} "
                  f"(null {null:g})")
    outcome = _decide(est, float(p), predicted, null, alpha)
    return Verdict(claim, measure, est, lo, hi, predicted, null, diagnostic, float(p),
                   float(p), outcome, int(n), int(n_needed), detail)


def apply_holm(verdicts: Sequence[Verdict], alpha: float = 0.05) -> list[Verdict]:
    """The verdicts with Holm-adjusted p-values over the whole family, and outcomes decided at
    the adjusted values (see [`verdict`][infograv.experiments.verdict])."""
    adj = holm([v.p for v in verdicts])
    return [dataclasses.replace(v, p_holm=float(a),
                                outcome=_decide(v.estimate, float(a), v.predicted, v.null, alpha))
            for v, a in zip(verdicts, adj)]
