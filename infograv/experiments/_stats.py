"""Statistics of the empirical study: rank correlation, the paired percentile bootstrap, and
verdicts on a claim from its confidence interval."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["spearman", "bootstrap_ci", "Verdict", "verdict"]


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as in Spearman's coefficient)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        if j > i:
            ranks[order[i:j + 1]] = 0.5 * (i + j)
        i = j + 1
    return ranks


def spearman(x: Any, y: Any) -> float:
    r"""Spearman's rank correlation $\rho_s$ of two equal-length samples (ties get mean ranks).

    Returns `nan` when either sample is constant.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 25, 40])
        1.0
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x, y: need two 1-D samples of equal length, got {x.shape}, {y.shape}.")
    rx, ry = _ranks(x) - (len(x) - 1) / 2, _ranks(y) - (len(y) - 1) / 2
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else float("nan")


def bootstrap_ci(
    statistic: Callable[..., float],
    *samples: Any,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    r"""Percentile bootstrap confidence interval of a statistic of paired samples.

    The samples are resampled *together* (the same indices for each), `n_boot` times, and the
    interval is the $(1\pm\text{level})/2$ quantiles of the resampled statistic. Resamples where
    the statistic is not finite (e.g. a constant resample for a correlation) are dropped.

    Arguments:
        statistic: `f(*samples) -> float`, e.g. `np.mean` or
            [`spearman`][infograv.experiments.spearman].
        *samples: equal-length 1-D arrays (shape `(n,)`).
        n_boot: number of resamples.
        level: confidence level in (0, 1).
        seed: seed of the resampling.

    Returns:
        `(estimate, low, high)`: the statistic on the data and the interval.

    Raises:
        ValueError: no samples, unequal lengths, fewer than 2 observations, or a bad `level`.

    Example:
        >>> import numpy as np
        >>> est, lo, hi = bootstrap_ci(np.mean, np.arange(100.0), seed=1)
        >>> lo < est < hi
        True

    Reference: B. Efron and R. Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13.
    """
    if not samples:
        raise ValueError("samples: need at least one sample.")
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"samples: must have equal lengths, got {[len(a) for a in arrays]}.")
    if n < 2:
        raise ValueError(f"samples: need at least 2 observations, got {n}.")
    if not 0 < level < 1:
        raise ValueError(f"level: must lie in (0, 1), got {level}.")
    est = float(statistic(*arrays))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    with np.errstate(all="ignore"):
        stats = np.array([float(statistic(*(a[i] for a in arrays))) for i in idx])
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return est, float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return est, float(lo), float(hi)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim.

    Attributes:
        claim: what the paper predicts, in words.
        measure: the statistic measured.
        estimate, low, high: its value and confidence interval.
        predicted: `"positive"` or `"negative"` (the sign the paper predicts, relative to `null`).
        null: the value that means "no effect".
        outcome: `"holds"`, `"fails"` or `"inconclusive"`.
        detail: the effect size in words.
    """

    claim: str
    measure: str
    estimate: float
    low: float
    high: float
    predicted: str
    null: float
    outcome: str
    detail: str


def verdict(
    claim: str,
    measure: str,
    ci: tuple[float, float, float],
    predicted: str,
    *,
    null: float = 0.0,
) -> Verdict:
    r"""Decide whether a claim holds from a confidence interval.

    *holds*: the whole interval lies on the predicted side of `null`; *fails*: the whole interval
    lies on the other side; *inconclusive*: it contains `null` (or is not finite).

    Arguments:
        claim: the paper's claim, in words.
        measure: the name of the statistic.
        ci: `(estimate, low, high)` as returned by
            [`bootstrap_ci`][infograv.experiments.bootstrap_ci].
        predicted: `"positive"` (estimate > null predicted) or `"negative"`.
        null: the no-effect value.

    Raises:
        ValueError: `predicted` is neither `"positive"` nor `"negative"`, or `low > high`.

    Example:
        >>> v = verdict("entropy falls", "Spearman", (-0.3, -0.45, -0.12), "negative")
        >>> v.outcome
        'holds'
    """
    if predicted not in ("positive", "negative"):
        raise ValueError(f"predicted: expected 'positive' or 'negative', got {predicted!r}.")
    est, lo, hi = (float(v) for v in ci)
    if np.isfinite(lo) and np.isfinite(hi) and lo > hi:
        raise ValueError(f"ci: low ({lo}) is above high ({hi}).")
    sign = 1.0 if predicted == "positive" else -1.0
    if not (np.isfinite(lo) and np.isfinite(hi)):
        outcome = "inconclusive"
    elif sign * (lo - null) > 0 and sign * (hi - null) > 0:
        outcome = "holds"
    elif sign * (lo - null) < 0 and sign * (hi - null) < 0:
        outcome = "fails"
    else:
        outcome = "inconclusive"
    detail = (f"{measure} = {est:+.3g} [{lo:+.3g}, {hi:+.3g}]; predicted {predicted} "
              f"(null {null:g})")
    return Verdict(claim, measure, est, lo, hi, predicted, null, outcome, detail)
