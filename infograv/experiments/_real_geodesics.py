"""Do real token trajectories follow geodesics, and of which geometry?

The test of `docs/geometry/real.md`, on SmolLM2's observed trajectories (generation: the final
hidden state at each generated step; depth: the logit-lens-normed residual stream of the last
position through the layers), for four metrics on hidden-state space: the model's own output
(Fisher–Rao) metric, the Jacobi metric of an information-gravity potential around the query
position, the density-conformal metric of the token cloud, and the Euclidean null.

Measures, per trajectory `x_0 … x_{L−1}` and metric (held-out prompts, bootstrap over
trajectories):

- **geodesicity**: `Σ_k d(x_k, x_{k+1}) / d(x_0, x_{L−1})` (each `d` a log-map length; 1 for
  points in order on one geodesic), and the mean distance of `x_1 … x_{L−2}` from the geodesic
  `x_0 → x_{L−1}`, over `d(x_0, x_{L−1})`;
- **prediction**: the geodesic continuation `exp_{x_k}(−log_{x_k}(x_{k−1}))` (the geodesic
  through `x_{k−1}`, `x_k` continued by the same parameter step) against linear extrapolation
  `2x_k − x_{k−1}`: the log ratio of their Euclidean errors to `x_{k+1}`;
- **capture**: the geodesic launched from the prompt's state `x_0` with the velocity that
  reaches `x_1` at parameter 1, continued to parameter `L − 1`: does the token the model would
  emit there (the head's argmax) belong to the tokens it generated?

Every log map is checked by shooting: the exp map of its velocity must land near its end point
(`RealGeodesicSettings.shoot_tol`); measures that rest on a failed log map are left out and
counted. The decision rule (stated in the docs before the numbers) is in `RULE`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import warnings
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .. import geometry as geo
from ..geodesic import exp_map, geodesic
from ..geodesic._bvp import path_energy, segment_quads
from ..geometry._dense import cholesky, solve_lower
from ._stats import bootstrap_ci, mean

__all__ = ["METRICS", "RULE", "PAPER_SETTINGS", "RealGeodesicSettings", "load_fit",
           "trajectory_measures", "real_geodesic_study", "summarise", "run", "paper_section"]

METRICS = ("output", "gravity", "density", "euclidean")

RULE = (
    "For each metric and measure the estimate is the mean over held-out trajectories with a "
    "95% percentile-bootstrap interval over trajectories. Geodesicity: a metric makes real "
    "trajectories more geodesic than the straight line when the interval of the mean paired "
    "difference of log length ratios (metric minus Euclidean) lies below 0, less geodesic when "
    "it lies above 0, otherwise no difference is shown; the most geodesic metric is the one with "
    "the lowest mean log length ratio. Prediction: geodesic continuation predicts the next "
    "state better than linear extrapolation when the interval of the mean log error ratio "
    "(geodesic over linear) lies below 0, worse when above, otherwise no difference. Capture: a "
    "metric captures when the interval of the paired difference of capture rates (metric minus "
    "straight line) lies above 0. Output-metric results count only if they are stable in the "
    "ridge: the geodesicity estimate at lambda and at lambda/10 differ by less than the "
    "interval's half-width. Only log maps that pass their check count: the shooting check (the "
    "exp map of the log map's velocity lands within shoot_tol of the end point, measured in the "
    "metric at the end point relative to the log map's length) or, for the output metric's "
    "lengths, the refinement check (the length with twice the segments agrees within shoot_tol "
    "and is at least (1 - shoot_tol) times the Fisher-Rao lower bound); continuations and "
    "launches need the shooting check in every metric. A trajectory with a "
    "failed log map is left out of that metric's geodesicity, a failed continuation or launch "
    "out of its prediction or capture; the numbers left out are reported. A measure with fewer "
    "than two trajectories left is not estimable."
)


@dataclasses.dataclass(frozen=True)
class RealGeodesicSettings:
    """Settings of the real-geodesic study.

    Attributes:
        n_prompts: held-out prompts (each gives a generation and a depth trajectory).
        n_new: generated tokens per prompt (`L` states).
        depth_stride: keep every `depth_stride`-th layer of the depth trajectory (and the last).
        vocab: the output metric's vocabulary: the `vocab` tokens most probable at any state
            of the trajectory (its `Γ` error against the full vocabulary is measured and
            reported); they are also the gravity metric's sources.
        ridge: `λ` of the output metric.
        ridge_check: the second `λ` of the stability check (`None` to skip).
        kernel: the information-gravity kernel's name (radial profile of `d = 3`); with a
            fit, the name of the fitted family to load.
        kernel_params: the stand-in's parameters (used only without a fit); `epsilon`
            defaults to the median distance from the query to the trajectory's top tokens.
        fit: a folder written by `infograv validate --out DIR` (or its `fits/` folder, or one
            fit's JSON file) whose fitted `kernel` the gravity metric uses; `None`: the
            stand-in.
        kde_tokens: tokens of the cloud in the density metric's KDE (a seeded subsample).
        n_steps: path segments of a log map.
        max_steps: L-BFGS steps of a discrete geodesic.
        exp_steps: Runge–Kutta steps of an exp map.
        output_n_steps: `n_steps` of the output metric's log maps (`None`: `n_steps`). Its
            metric varies by orders of magnitude between real states, and a coarse discrete
            path "tunnels": its length falls below the rigorous lower bound
            `2 arccos Σ_i √(P_i(a) P_i(b))` (see `trajectory_measures`).
        output_max_steps: `max_steps` of the output metric (`None`: `max_steps`).
        output_exp_steps: `exp_steps` of the output metric (`None`: `exp_steps`); used only
            when `output_exp_rtol` is `None`.
        output_exp_rtol: the output metric's exp maps are adaptive (Tsit5, PID step control at
            this relative and absolute tolerance) instead of `exp_steps` fixed RK4 steps: along
            its geodesics the coordinate speed changes by orders of magnitude (a peaked
            distribution hardly sees most directions), and fixed steps blow up. `None`: RK4.
        output_zoom: segments of the two nested log maps that resolve the output metric's
            start velocities (`0`: the plain second-order difference of the path): its
            geodesics turn sharply near their ends, so the velocity is taken from the discrete
            geodesic from `x₀` to the first node of the path, and again from `x₀` to the first
            node of that one (resolution `K · output_zoom²` at the start).
        precond_rank: tokens in the output metric's CG preconditioner.
        cg_rtol: relative residual of the output metric's CG solves.
        shoot_tol: a log map counts as converged when the exp map of its velocity lands within
            `shoot_tol` of its end point `x₁`, relative (the shooting residual; see
            `shoot_norm`).
        shoot_norm: how the shooting residual `e − x₁` is measured: `"metric"`, its length in
            the metric at `x₁` over the log map's length (coordinate-free: a miss along
            directions the metric hardly sees, e.g. the output metric's near-null ones, counts
            as little as they do); `"euclidean"`, `|e − x₁| / |x₁ − x₀|`. Both are recorded.
        truncation_checks: trajectories whose `Γ` truncation error is measured (at their first
            state, `v = x₁ − x₀`; each check forms the full-vocabulary metric densely).
        n_boot: bootstrap resamples.
        seed: seed of the prompt choice, the subsample and the bootstrap.
        kinds: trajectory kinds, `"generation"` and/or `"depth"`.

    Raises:
        ValueError: an unknown kind, `vocab < 2`, `n_prompts < 1`, `shoot_tol ≤ 0`.
    """

    n_prompts: int = 12
    n_new: int = 8
    depth_stride: int = 5
    vocab: int = 4096
    ridge: float = 1e-5
    ridge_check: float | None = 1e-6
    kernel: str = "plummer"
    kernel_params: tuple[tuple[str, float], ...] = (("G", 1.0),)
    fit: str | None = None
    kde_tokens: int = 4096
    n_steps: int = 8
    max_steps: int = 200
    exp_steps: int = 16
    output_n_steps: int | None = None
    output_max_steps: int | None = None
    output_exp_steps: int | None = None
    output_exp_rtol: float | None = None
    output_zoom: int = 0
    precond_rank: int = 256
    cg_rtol: float = 1e-8
    shoot_tol: float = 0.05
    shoot_norm: str = "metric"
    truncation_checks: int = 4
    n_boot: int = 2000
    seed: int = 0
    kinds: tuple[str, ...] = ("generation", "depth")

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in ("generation", "depth")]
        if bad or not self.kinds:
            raise ValueError(f"kinds: expected 'generation' and/or 'depth', got {self.kinds!r}.")
        if self.vocab < 2:
            raise ValueError(f"vocab: expected an int ≥ 2, got {self.vocab!r}.")
        if self.n_prompts < 1:
            raise ValueError(f"n_prompts: expected an int ≥ 1, got {self.n_prompts!r}.")
        if not self.shoot_tol > 0:
            raise ValueError(f"shoot_tol: expected > 0, got {self.shoot_tol!r}.")
        if self.output_zoom < 0 or self.output_zoom == 1:
            raise ValueError(f"output_zoom: expected 0 or an int ≥ 2, got {self.output_zoom!r}.")
        if self.output_exp_rtol is not None and not self.output_exp_rtol > 0:
            raise ValueError(f"output_exp_rtol: expected > 0 or None, got "
                             f"{self.output_exp_rtol!r}.")
        if self.shoot_norm not in ("metric", "euclidean"):
            raise ValueError(f"shoot_norm: expected 'metric' or 'euclidean', got "
                             f"{self.shoot_norm!r}.")

    def for_metric(self, name: str) -> RealGeodesicSettings:
        """The settings a metric's log and exp maps use: for `"output"` the `output_*` values
        where they are set, for every other metric these settings unchanged."""
        if name != "output":
            return self
        return dataclasses.replace(
            self, n_steps=self.output_n_steps or self.n_steps,
            max_steps=self.output_max_steps or self.max_steps,
            exp_steps=self.output_exp_steps or self.exp_steps)


def load_fit(fit: Any, kernel: str = "plummer") -> Any:
    """The fitted potential of the validation study, as a `PotentialFit`.

    Arguments:
        fit: a `PotentialFit` (returned as it is); a folder written by
            `infograv validate --out DIR`, its `fits/` folder, or a `fits/<map>/` folder (the
            file `<kernel>.json` is read, the affine query map preferred over the scalar one);
            or one fit's JSON file.
        kernel: the fitted family's name.

    Returns:
        An `infograv.model._fit.PotentialFit` (`.potential`, `.a`, `.b`, `.unit`).

    Raises:
        ValueError: no such fit at the path, or `fit` of another type.

    Example:
        >>> import json, pathlib, tempfile
        >>> from infograv.experiments._real_geodesics import load_fit
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "fits" / "scalar"
        >>> folder.mkdir(parents=True)
        >>> _ = (folder / "plummer.json").write_text(json.dumps({
        ...     "name": "plummer", "kernel": "plummer", "d": 3,
        ...     "params": {"G": 2.0, "epsilon": 0.5}, "query_map": "scalar", "a": 1.5,
        ...     "b": None, "c": None, "unit": 10.0, "train_kl": 0.1, "grad_norm": 0.0,
        ...     "converged": True, "steps": 3}))
        >>> f = load_fit(folder.parent.parent)
        >>> (f.a, f.unit, round(float(f.potential.params["epsilon"]), 3))
        (1.5, 10.0, 0.5)
    """
    import json

    from ..model import PotentialFit

    if isinstance(fit, PotentialFit):
        return fit
    if not isinstance(fit, (str, pathlib.Path)):
        raise ValueError(f"fit: expected a PotentialFit or a path, got {type(fit).__name__}.")
    path = pathlib.Path(fit)
    candidates = [path] if path.is_file() else [
        base / qm / f"{kernel}.json" for base in (path / "fits", path)
        for qm in ("affine", "scalar")] + [path / f"{kernel}.json"]
    for c in candidates:
        if c.is_file():
            try:
                return PotentialFit.from_dict(json.loads(c.read_text()))
            except (KeyError, TypeError, json.JSONDecodeError) as exc:
                raise ValueError(f"fit: {c} is not a saved potential fit ({exc}).") from exc
    raise ValueError(f"fit: no fitted {kernel!r} potential at {path} (expected "
                     f"fits/<map>/{kernel}.json, as written by `infograv validate --out DIR`).")


# --------------------------------------------------------------------------------------------
# Metrics around one trajectory
# --------------------------------------------------------------------------------------------


def _build_metrics(
    potential: Any, fit: Any, base: geo.OutputMetric, points: np.ndarray,
    settings: RealGeodesicSettings, cloud: np.ndarray, ridge: float,
) -> tuple[dict[str, Any], np.ndarray]:
    from ..model import SemanticSpace

    x = jnp.asarray(points)
    # a fixed number of tokens (one compiled program for every trajectory): those most probable
    # at any state of the trajectory
    best = np.max(np.asarray(jax.vmap(base.log_prob)(x)), axis=0)
    ids = np.sort(np.argsort(-best)[: settings.vocab])
    # CG preconditioned by the most probable tokens (256: about 12 iterations at a real state,
    # 38 with 64); 100 iterations at most bound the cost where a far launch leaves the
    # preconditioner poor
    out = base.restrict(ids)._copy(ridge=ridge, precond_rank=min(settings.precond_rank, len(ids)),
                                   cg_max_steps=100, cg_rtol=settings.cg_rtol)
    emb = np.asarray(base.head)
    # the stand-in's query map x_q = a h puts hidden states on the scale of the token cloud
    a = float(np.median(np.linalg.norm(emb[ids], axis=1)) / np.median(np.linalg.norm(points, 1)))
    if fit is not None:
        # the fitted model: x_q = a h / ℓ + b, tokens e_i / ℓ, the fitted kernel (units of ℓ)
        shift = 0.0 if fit.b is None else jnp.asarray(fit.b)
        gravity = geo.information_gravity_metric(fit.potential, jnp.asarray(emb[ids] / fit.unit),
                                                 x, scale=fit.a / fit.unit, shift=shift)
    else:
        values = dict(potential.fn.params)
        if "epsilon" in values and "epsilon" not in dict(settings.kernel_params):
            r = np.linalg.norm(a * points[:, None, :] - emb[ids][None], axis=-1)
            values["epsilon"] = jnp.asarray(float(np.median(r)))
        # new values of the same compiled potential (no recompilation per trajectory)
        pot = eqx.tree_at(lambda p: p.fn.params, potential, values)
        gravity = geo.information_gravity_metric(pot, jnp.asarray(emb[ids]), x, scale=a)
    space = SemanticSpace(jnp.asarray(cloud / a))
    density = geo.density_metric(space, x[0])
    return {"output": out, "gravity": gravity, "density": density}, ids


def _discrete_length(metric: Any, path: Any) -> Any:
    """`Σ_k |Δ_k|` over the terms of `path_energy` (`geodesic._bvp.segment_quads`)."""
    return jnp.sum(jnp.sqrt(segment_quads(metric, path)))


class _WhitenedEnergy(eqx.Module):
    def __call__(self, u: Any, args: Any) -> Any:
        metric, a, b, straight, low = args
        inner = straight + solve_lower(low, u.T, transpose=True).T
        return path_energy(metric, jnp.concatenate([a[None], inner, b[None]]))


class _Geodesics(eqx.Module):
    length: Any
    velocity: Any
    path: Any
    gradient: Any


def _whitening(metric: Any, x: Any) -> Any:
    """The matrix whose Cholesky factor whitens a discrete geodesic's coordinates: the metric
    at `x`, or for the output metric its preconditioner matrix
    (`OutputMetric.approximate_metric`: `O(k d²)` work instead of `O(N d²)`, which at the full
    vocabulary is most of a log map's time)."""
    if isinstance(metric, geo.OutputMetric):
        return metric.approximate_metric(x)
    return metric.metric(x)


@eqx.filter_jit
def _logmaps(metric: Any, a: Any, b: Any, n_steps: int, max_steps: int, init: Any = None
             ) -> _Geodesics:
    """Discrete geodesics `a → b` (batched): the discrete path energy `geodesic.path_energy`
    (the midpoint rule, or for the output metric the chords of its isometric embedding)
    minimised by L-BFGS over the interior points, in coordinates whitened by the Cholesky
    factor of `_whitening` at the chord's midpoint (the metric, or for the output metric its
    preconditioner's matrix), so that the badly conditioned output metric does not stall the
    optimiser; `max_steps` L-BFGS steps at most; from the straight line, or from the paths
    `init` `(B, n_steps + 1, d)`."""

    def one(p: Any, q: Any, start: Any) -> Any:
        low = cholesky(_whitening(metric, 0.5 * (p + q)))
        frac = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=p.dtype)[1:-1, None]
        straight = p[None, :] + frac * (q - p)[None, :] if start is None else start[1:-1]
        args = (metric, p, q, straight, low)
        sol: Any = optx.minimise(_WhitenedEnergy(), optx.LBFGS(rtol=1e-9, atol=1e-9),
                            jnp.zeros_like(straight), args=args, max_steps=max_steps,
                            throw=False)
        grad = jax.grad(_WhitenedEnergy())(sol.value, args)
        inner = straight + solve_lower(low, sol.value.T, transpose=True).T
        path = jnp.concatenate([p[None], inner, q[None]])
        length = _discrete_length(metric, path)
        vel = 0.5 * n_steps * (-3.0 * path[0] + 4.0 * path[1] - path[2])
        return length, vel, path, jnp.max(jnp.abs(grad))

    if init is None:
        length, vel, path, grad = jax.vmap(lambda p, q: one(p, q, None))(a, b)
    else:
        length, vel, path, grad = jax.vmap(one)(a, b, init)
    return _Geodesics(length, vel, path, grad)


def _refined(path: Any) -> Any:
    """Paths `(B, K + 1, d)` with the midpoint of every segment inserted: `(B, 2K + 1, d)`."""
    mid = 0.5 * (path[:, 1:] + path[:, :-1])
    both = jnp.stack([path[:, :-1], mid], axis=2).reshape(path.shape[0], -1, path.shape[2])
    return jnp.concatenate([both, path[:, -1:]], axis=1)


@eqx.filter_jit
def _expmaps(metric: Any, x: Any, v: Any, n_steps: int) -> Any:
    return jax.vmap(lambda p, w: exp_map(metric, p, w, n_steps=n_steps))(x, v)


@eqx.filter_jit
def _expmaps_adaptive(metric: Any, x: Any, v: Any, rtol: float) -> Any:
    """`exp_x(v)` (batched) by adaptive Tsit5 (`geodesic.geodesic`, PID control at `rtol` =
    `atol`, 4,096 steps at most); NaN where the solve failed."""

    def one(p: Any, w: Any) -> Any:
        sol = geodesic(metric, p, w, 1.0, solver=diffrax.Tsit5(), rtol=rtol, atol=rtol,
                       max_steps=4096, throw=False)
        ok = sol.result == diffrax.RESULTS.successful
        return jnp.where(ok, sol.x_end, jnp.nan)

    return jax.vmap(one)(x, v)


def _zoomed_velocity(metric: Any, a: Any, path: Any, zoom: int, max_steps: int) -> Any:
    """The start velocity of the discrete geodesics `path` `(B, K + 1, d)` from `a`, resolved
    by two nested discrete geodesics of `zoom` segments each: from `a` to the path's first node
    (the geodesic's first `1/K` of parameter), then from `a` to that one's first node; the
    velocity is the inner one's second-order difference times `K · zoom` (a geodesic from `a`
    to its point at parameter `s` has velocity `s v`). With `K = 16` and `zoom = 16` the start
    is resolved as by a path of 4,096 segments, where the output metric's geodesics turn."""
    k = path.shape[1] - 1
    first = _logmaps(metric, a, path[:, 1], zoom, max_steps)
    second = _logmaps(metric, a, first.path[:, 1], zoom, max_steps)
    return second.velocity * (k * zoom)


@eqx.filter_jit
def _bhattacharyya(metric: Any, a: Any, b: Any) -> Any:
    """`Σ_i √(P_i(a) P_i(b))`, from the log-probabilities (no underflow of the product)."""
    la, lb = jax.vmap(metric.log_prob)(a), jax.vmap(metric.log_prob)(b)
    return jnp.sum(jnp.exp(0.5 * (la + lb)), axis=1)


def _fisher_rao_bound(metric: Any, a: Any, b: Any) -> np.ndarray | None:
    """For the output metric: `2 arccos Σ_i √(P_i(a) P_i(b))`, the Fisher–Rao distance on the
    probability simplex between the two next-token distributions. The metric is the pullback
    of that distance's metric (`δᵀ g δ = Σ_i dP_i²/P_i`, plus the ridge), so every path from
    `a` to `b` is at least this long; `None` for the other metrics."""
    if not isinstance(metric, geo.OutputMetric):
        return None
    bc = np.asarray(_bhattacharyya(metric, a, b))
    return 2.0 * np.arccos(np.clip(bc, 0.0, 1.0))


@eqx.filter_jit
def _norms(metric: Any, x: Any, d: Any) -> Any:
    return jnp.sqrt(jax.vmap(metric.inner)(x, d, d))


def _deviation(metric: Any, path: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance from each point to the polyline `path`, in the metric at the point."""
    a, b = path[:-1], path[1:]
    delta = []
    for p in pts:
        ab = b - a
        t = np.clip(np.sum((p - a) * ab, 1) / np.maximum(np.sum(ab * ab, 1), 1e-300), 0, 1)
        near = a + t[:, None] * ab
        j = int(np.argmin(np.linalg.norm(p - near, axis=1)))
        delta.append(p - near[j])
    return np.asarray(_norms(metric, jnp.asarray(pts), jnp.asarray(np.asarray(delta))))


def trajectory_measures(
    metric: Any, points: np.ndarray, settings: RealGeodesicSettings, *, predict: bool = True
) -> dict[str, Any]:
    r"""Geodesicity, prediction and capture inputs of one trajectory in one metric.

    For the points `x_0 … x_{L−1}`: the discrete geodesics (log maps) of the consecutive pairs
    and of `x_0 → x_{L−1}`, their lengths, the length ratio
    `Σ_k d(x_k, x_{k+1}) / d(x_0, x_{L−1})` and the deviation of the intermediate points;
    then the exp maps of the continuations `exp_{x_k}(−log_{x_k} x_{k−1})` and of the launch
    from `x_0`. **Every log map is checked by shooting**: the exp map of its velocity
    `v = log_a(b)` must land within `settings.shoot_tol` of `b` (relative, in the norm of
    `settings.shoot_norm`: by default the metric at `b` over the log map's length); a discrete
    path that is not a geodesic (an unconverged minimisation, or too few segments for the
    metric's variation) fails it. The output metric's lengths are checked otherwise (its
    geodesics turn so sharply near their ends that a velocity taken from a discrete path of a
    few dozen segments rarely passes the shooting check, while their lengths converge;
    `settings.output_zoom` and `output_exp_rtol` resolve the start and integrate adaptively,
    which made 12 of 44 pass on real trajectories): each log map is
    solved again with twice the segments from the path found, the finer length is used, and it
    counts when the two agree within `shoot_tol` and it is at least `(1 − shoot_tol)` times the
    Fisher–Rao distance `2 arccos Σ_i √(P_i(a) P_i(b))` between the two next-token
    distributions on the simplex, a rigorous lower bound (the metric is that distance's
    pullback). The ratio counts (`converged`) only when every log map it uses passed its check;
    a continuation or a launch, which use the velocity, only when its log map passed the
    shooting check (in every metric).

    `metric=None` is the Euclidean metric in closed form (straight lines, always converged).

    Arguments:
        metric: an `AbstractMetric` on the points' space, or `None`.
        points: `(L, d)`, `L ≥ 3`.
        settings: the study's settings (`n_steps`, `max_steps`, `exp_steps`, `shoot_tol`).
        predict: also compute the continuations and the launch (otherwise only the log maps,
            their shooting check and the ratio).

    Returns:
        `{"ratio", "deviation", "converged", "shoot_miss" (L + 1,), "lengths" (L + 1,),
        "fr_bound" (L + 1,), "logmaps_converged", "residual", "path" (the geodesic
        x_0 → x_{L−1}), and with `predict`: "log_err_ratio" (L − 2,), "err_geo", "err_lin",
        "pred_converged" (L − 2,), "launch_end", "launch_converged"}`. `shoot_miss` is the
        relative shooting residual, `lengths` the lengths, `fr_bound` the Fisher–Rao lower
        bounds and `refinement` the relative change of length with twice the segments (both
        NaN but for the output metric) of the log maps `x_k → x_{k−1}` (k = 1 … L − 1),
        `x_0 → x_{L−1}`, `x_0 → x_1`; `logmaps_converged` counts those that passed their check,
        `shots_converged` those that passed the shooting check. With `predict=False` the output
        metric's exp maps are skipped (its shooting residuals are then NaN).

    Raises:
        ValueError: fewer than 3 points.

    Example:
        >>> import numpy as np
        >>> from infograv.experiments._real_geodesics import (RealGeodesicSettings,
        ...     trajectory_measures)
        >>> pts = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
        >>> r = trajectory_measures(None, pts, RealGeodesicSettings())
        >>> round(r["ratio"], 4), r["converged"]
        (1.4142, True)
    """
    x = np.asarray(points, dtype=np.float64)
    n = len(x)
    if x.ndim != 2 or n < 3:
        raise ValueError(f"points: expected shape (L, d) with L ≥ 3, got {x.shape}.")
    lin = 2 * x[1:-1] - x[:-2]
    err_lin = np.linalg.norm(lin - x[2:], axis=1)
    if metric is None:
        seg = np.linalg.norm(np.diff(x, axis=0), axis=1)
        end = float(np.linalg.norm(x[-1] - x[0]))
        path = np.linspace(0.0, 1.0, settings.n_steps + 1)[:, None] * (x[-1] - x[0]) + x[0]
        u = (x[-1] - x[0]) / max(end, 1e-300)
        rel = x[1:-1] - x[0]
        dev = np.linalg.norm(rel - (rel @ u)[:, None] * u[None, :], axis=1)
        out: dict[str, Any] = {
            "ratio": float(seg.sum() / end), "deviation": float(dev.mean() / end),
            "converged": True, "shoot_miss": np.zeros(n + 1), "logmaps_converged": n + 1,
            "shoot_miss_euclidean": np.zeros(n + 1), "shoot_miss_metric": np.zeros(n + 1),
            "shots_converged": n + 1, "refinement": np.full(n + 1, np.nan),
            "lengths": np.r_[seg, end, seg[0]], "fr_bound": np.full(n + 1, np.nan),
            "residual": 0.0, "path": path}
        if predict:
            out.update({"log_err_ratio": np.zeros(n - 2), "err_geo": err_lin,
                        "err_lin": err_lin, "pred_converged": np.ones(n - 2, bool),
                        "launch_end": x[0] + (n - 1) * (x[1] - x[0]), "launch_converged": True})
        return out
    xj = jnp.asarray(x)
    # backward consecutive pairs x_k → x_{k−1} (k = 1 … L−1), then x_0 → x_{L−1}, x_0 → x_1
    a = jnp.concatenate([xj[1:], xj[:1], xj[:1]])
    b = jnp.concatenate([xj[:-1], xj[-1:], xj[1:2]])
    sols = _logmaps(metric, a, b, settings.n_steps, settings.max_steps)
    lengths = np.asarray(sols.length)
    vel = sols.velocity
    bound = _fisher_rao_bound(metric, a, b)
    refine = None
    if bound is not None:
        # the output metric's lengths: checked by refinement (twice the segments, from the
        # path found) and against the Fisher–Rao lower bound
        fine = _logmaps(metric, a, b, 2 * settings.n_steps, settings.max_steps,
                        init=_refined(sols.path))
        coarse, lengths = lengths, np.asarray(fine.length)
        refine = np.abs(lengths - coarse) / lengths
        sols = fine
        if settings.output_zoom:
            vel = _zoomed_velocity(metric, a, sols.path, settings.output_zoom,
                                   settings.max_steps)
        else:
            vel = sols.velocity
    seg, end = lengths[: n - 1], float(lengths[n - 1])
    path = np.asarray(sols.path[n - 1])
    # one batch of exp maps: the shooting check of every log map, then the continuations
    # exp_{x_k}(−log_{x_k} x_{k−1}), k = 1 … L−2, and the launch from x_0 with the velocity
    # that reaches x_1 at parameter 1, continued to parameter L − 1
    starts, vels = [a], [vel]
    if predict:
        starts += [xj[1:-1], xj[:1]]
        vels += [-vel[: n - 2], (n - 1) * vel[n:]]
    an, bn = np.asarray(a), np.asarray(b)
    if refine is None or predict:
        if bound is not None and settings.output_exp_rtol is not None:
            ends = np.asarray(_expmaps_adaptive(metric, jnp.concatenate(starts),
                                                jnp.concatenate(vels), settings.output_exp_rtol))
        else:
            ends = np.asarray(_expmaps(metric, jnp.concatenate(starts), jnp.concatenate(vels),
                                       settings.exp_steps))
        euclid = np.linalg.norm(ends[: n + 1] - bn, axis=1) / np.linalg.norm(bn - an, axis=1)
        in_metric = np.asarray(_norms(metric, b, jnp.asarray(ends[: n + 1]) - b)) / lengths
    else:  # the output metric's ridge check needs its lengths only
        euclid = in_metric = np.full(n + 1, np.nan)
    miss = in_metric if settings.shoot_norm == "metric" else euclid
    shot = np.isfinite(miss) & (miss <= settings.shoot_tol) & np.isfinite(lengths)
    if refine is None or bound is None:
        ok = shot
    else:
        # a length below the rigorous lower bound proves the discrete path is no geodesic
        ok = ((refine <= settings.shoot_tol) & np.isfinite(lengths)
              & (lengths >= (1.0 - settings.shoot_tol) * bound))
    dev = _deviation(metric, path, x[1:-1])
    out = {"ratio": float(seg.sum() / end), "deviation": float(dev.mean() / end),
           "converged": bool(np.all(ok[:n])), "shoot_miss": miss,
           "shoot_miss_euclidean": euclid, "shoot_miss_metric": in_metric,
           "shots_converged": int(shot.sum()),
           "refinement": np.full(n + 1, np.nan) if refine is None else refine,
           "fr_bound": np.full(n + 1, np.nan) if bound is None else bound,
           "lengths": lengths,
           "logmaps_converged": int(ok.sum()), "residual": float(np.max(np.asarray(sols.gradient))),
           "path": path}
    if predict:
        pred, launch = ends[n + 1: 2 * n - 1], ends[2 * n - 1]
        err_geo = np.linalg.norm(pred - x[2:], axis=1)
        out.update({"log_err_ratio": np.log(err_geo / err_lin), "err_geo": err_geo,
                    "err_lin": err_lin, "pred_converged": shot[: n - 2].copy(),
                    "launch_end": launch, "launch_converged": bool(shot[n])})
    return out


# --------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------


def _trajectories(model: Any, prompts: list[str], settings: RealGeodesicSettings) -> list[Any]:
    from ..lm._trajectories import depth_trajectory, generation_trajectory

    out = []
    for p in prompts:
        if "generation" in settings.kinds:
            out.append(generation_trajectory(model, p, settings.n_new))
        if "depth" in settings.kinds:
            t = depth_trajectory(model, p)
            keep = sorted(set(range(0, len(t), settings.depth_stride)) | {len(t) - 1})
            out.append(dataclasses.replace(t, points=t.points[keep]))
    return out


def real_geodesic_study(
    model: Any,
    prompts: list[str],
    settings: RealGeodesicSettings | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    fit: Any = None,
) -> dict[str, Any]:
    """Run the three measures on each prompt's trajectories in each metric.

    Arguments:
        model: a loaded `LanguageModel` (SmolLM2).
        prompts: the held-out prompts.
        settings: the study's settings (default `RealGeodesicSettings()`).
        progress: a callable taking a message.
        fit: the fitted potential of the gravity metric (anything
            [`load_fit`][infograv.experiments._real_geodesics.load_fit] takes); default
            `settings.fit`; when both are `None`, the documented stand-in.

    Returns:
        `{"records": [...one per trajectory...], "truncation_error": [...], "fit": {...} or
        None, "settings": {...}, "seconds": float}`; each record holds, per metric, the output
        of [`trajectory_measures`][infograv.experiments._real_geodesics.trajectory_measures]
        plus the capture outcome.

    Raises:
        ValueError: no prompts, or a `fit` that cannot be loaded.
    """
    from ..model import Potential

    s = settings or RealGeodesicSettings()
    if not prompts:
        raise ValueError("prompts: expected at least one prompt.")
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    fit_src = fit if fit is not None else s.fit
    pfit = None if fit_src is None else load_fit(fit_src, s.kernel)
    kernel_params: dict[str, Any] = dict(s.kernel_params)
    potential = Potential(s.kernel, 3, **kernel_params)
    base = geo.OutputMetric.from_language_model(model, ridge=s.ridge)
    emb = np.asarray(base.head)
    rng = np.random.default_rng(s.seed)
    cloud = emb[rng.choice(emb.shape[0], size=min(s.kde_tokens, emb.shape[0]), replace=False)]
    records = []
    trunc: list[float] = []
    for i, traj in enumerate(_trajectories(model, prompts, s)):
        say(f"real geodesics: trajectory {i + 1} ({traj.kind})")
        metrics, ids = _build_metrics(potential, pfit, base, traj.points, s, cloud, s.ridge)
        if i < s.truncation_checks:
            v = jnp.asarray(traj.points[1] - traj.points[0])
            trunc.append(float(base.truncation_error(ids, jnp.asarray(traj.points[0]), v)))
        rec: dict[str, Any] = {"kind": traj.kind, "prompt": traj.meta["prompt"],
                               "n_tokens_output": int(len(ids)), "_points": traj.points}
        generated = set() if traj.token_ids is None else set(int(t) for t in traj.token_ids[1:])
        for name in METRICS:
            m = None if name == "euclidean" else metrics[name]
            r = trajectory_measures(m, traj.points, s.for_metric(name))
            if traj.token_ids is not None:
                top = int(np.argmax(np.asarray(base.logits(jnp.asarray(r["launch_end"])))))
                r["capture"] = float(top in generated)
            rec[name] = r
        if s.ridge_check is not None:
            chk = metrics["output"]._copy(ridge=s.ridge_check)
            c = trajectory_measures(chk, traj.points, s.for_metric("output"), predict=False)
            rec["output_ridge_check"] = {"ratio": c["ratio"], "converged": c["converged"]}
        records.append(rec)
    fit_info = None if pfit is None else {
        "name": pfit.name, "query_map": pfit.query_map, "a": float(pfit.a),
        "unit": float(pfit.unit), "params": {k: float(v) for k, v in pfit.params.items()},
        "converged": bool(pfit.converged)}
    return {"records": records, "truncation_error": trunc, "fit": fit_info,
            "settings": dataclasses.asdict(s), "seconds": time.perf_counter() - t0}


def _ci(x: Any, s: RealGeodesicSettings) -> dict[str, float]:
    est, lo, hi = bootstrap_ci(mean, np.asarray(x, dtype=np.float64), n_boot=s.n_boot,
                               seed=s.seed)
    return {"mean": est, "low": lo, "high": hi}


def _word(ci: dict[str, float], below: str, above: str, none: str) -> str:
    if not (np.isfinite(ci["low"]) and np.isfinite(ci["high"])):
        return "not estimable"
    if ci["high"] < 0:
        return below
    if ci["low"] > 0:
        return above
    return none


def summarise(study: dict[str, Any], settings: RealGeodesicSettings | None = None
              ) -> dict[str, Any]:
    """Estimates, intervals and plain verdicts per trajectory kind and metric (rule: `RULE`).

    A metric's geodesicity uses only the trajectories whose log maps all passed the shooting
    check (`converged`), paired with the Euclidean values of the same trajectories; its
    prediction only the continuations whose log map passed; its capture only launches whose log
    map passed. The counts used and dropped are reported (`n_used`, `n_dropped`,
    `logmaps_converged` as `[passed, total]`).
    """
    s = settings or RealGeodesicSettings()
    trunc = np.atleast_1d(np.asarray(study["truncation_error"], dtype=np.float64))
    out: dict[str, Any] = {"rule": RULE, "truncation_error": {
        "values": trunc.tolist(), "max": float(np.max(trunc)) if trunc.size else float("nan"),
        "median": float(np.median(trunc)) if trunc.size else float("nan")},
        "fit": study.get("fit")}
    for kind in sorted({r["kind"] for r in study["records"]}):
        recs = [r for r in study["records"] if r["kind"] == kind]
        k: dict[str, Any] = {"n": len(recs)}
        for m in METRICS:
            used = [r for r in recs if r[m].get("converged", True)]
            total = sum(len(r[m].get("shoot_miss", [])) for r in recs)
            passed = sum(int(r[m].get("logmaps_converged", len(r[m].get("shoot_miss", []))))
                         for r in recs)
            shots = sum(int(r[m].get("shots_converged", 0)) for r in recs)
            e: dict[str, Any] = {"n_used": len(used), "n_dropped": len(recs) - len(used),
                                 "logmaps_converged": [passed, total],
                                 "shots_converged": [shots, total]}
            bounds = [(np.asarray(r[m]["lengths"]), np.asarray(r[m]["fr_bound"])) for r in recs
                      if "fr_bound" in r[m]]
            if bounds and np.all(np.isfinite(np.concatenate([b for _, b in bounds]))):
                # log maps shorter than the Fisher–Rao lower bound: provably not geodesics
                e["below_fr_bound"] = [int(sum(np.sum(ln < (1.0 - s.shoot_tol) * b)
                                               for ln, b in bounds)), total]
            if len(used) >= 2:
                logr = np.log([r[m]["ratio"] for r in used])
                e["length_ratio"] = _ci(np.exp(logr), s)
                e["deviation"] = _ci([r[m]["deviation"] for r in used], s)
                e["min_length_ratio"] = float(np.min(np.exp(logr)))
                if m != "euclidean":
                    diff = _ci(logr - np.log([r["euclidean"]["ratio"] for r in used]), s)
                    e["log_ratio_vs_euclidean"] = diff
                    e["geodesicity_verdict"] = _word(
                        diff, "more geodesic than the straight line",
                        "less geodesic than the straight line",
                        "no difference from the straight line")
            else:
                e["geodesicity_verdict"] = "not estimable (fewer than 2 converged trajectories)"
            if m != "euclidean":
                per = [float(np.mean(np.asarray(r[m]["log_err_ratio"])[
                    np.asarray(r[m]["pred_converged"], bool)])) for r in recs
                    if np.any(r[m]["pred_converged"])]
                e["n_prediction"] = len(per)
                if len(per) >= 2:
                    pred = _ci(per, s)
                    e["log_error_ratio"] = pred
                    e["prediction_verdict"] = _word(
                        pred, "predicts better than linear extrapolation",
                        "predicts worse than linear extrapolation",
                        "no difference from linear extrapolation")
                else:
                    e["prediction_verdict"] = "not estimable (fewer than 2 trajectories)"
                e["max_energy_gradient"] = float(np.max([r[m]["residual"] for r in recs]))
                cap = [r for r in recs if "capture" in r[m] and r[m]["launch_converged"]]
                if len(cap) >= 2:
                    diff = _ci([r[m]["capture"] - r["euclidean"]["capture"] for r in cap], s)
                    e["capture_vs_line"] = diff
                    e["capture_rate"] = _ci([r[m]["capture"] for r in cap], s)
                    e["capture_verdict"] = _word(diff, "captures less than the straight line",
                                                 "captures", "no capture beyond the straight line")
            elif "capture" in recs[0][m] and len(recs) >= 2:
                e["capture_rate"] = _ci([r[m]["capture"] for r in recs], s)
            k[m] = e
        ranked = [m for m in METRICS if "length_ratio" in k[m]]
        if ranked:
            k["most_geodesic"] = min(ranked, key=lambda m: float(np.mean(
                np.log([r[m]["ratio"] for r in recs if r[m].get("converged", True)]))))
        chk = [r for r in recs if "output_ridge_check" in r and r["output"]["converged"]
               and r["output_ridge_check"]["converged"]]
        if len(chk) >= 2 and "length_ratio" in k["output"]:
            at_check = float(np.mean([r["output_ridge_check"]["ratio"] for r in chk]))
            at_ridge = float(np.mean([r["output"]["ratio"] for r in chk]))
            half = 0.5 * (k["output"]["length_ratio"]["high"] - k["output"]["length_ratio"]["low"])
            k["ridge_stability"] = {"ratio_at_ridge": at_ridge, "ratio_at_ridge_check": at_check,
                                    "n": len(chk), "shift": abs(at_check - at_ridge),
                                    "half_width": half, "stable": bool(abs(at_check - at_ridge)
                                                                      < half)}
        out[kind] = k
    return out


# --------------------------------------------------------------------------------------------
# Figures and the paper section
# --------------------------------------------------------------------------------------------

FIGURE_STEMS = ("real_paths", "real_ratios", "real_prediction")
_COLORS = {"output": "C3", "gravity": "C2", "density": "C1", "euclidean": "0.4"}


def _figures(study: dict[str, Any], summary: dict[str, Any], out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    recs = study["records"]
    with paper_style():
        kinds = [k for k in ("generation", "depth") if any(r["kind"] == k for r in recs)]
        fig, axes = plt.subplots(1, len(kinds), figsize=(3.4 * len(kinds), 3.0), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            r = next(rr for rr in recs if rr["kind"] == kind)
            obs = np.asarray(r["_points"])
            allp = np.concatenate([obs] + [np.asarray(r[m]["path"]) for m in METRICS])
            c = allp.mean(0)
            _, _, vt = np.linalg.svd(allp - c, full_matrices=False)
            pc = vt[:2].T
            for m in METRICS:
                p = (np.asarray(r[m]["path"]) - c) @ pc
                bad = "" if r[m]["converged"] else " (failed its check)"
                ax.plot(p[:, 0], p[:, 1], color=_COLORS[m], lw=1.2, ls=":" if bad else "-",
                        label=f"geodesic: {m}{bad}")
            o = (obs - c) @ pc
            ax.plot(o[:, 0], o[:, 1], "k.-", lw=0.8, ms=4, label="observed")
            ax.set(xlabel="PC 1", ylabel="PC 2", title=f"{kind}: “{r['prompt'][:28]}…”")
        axes[0][0].legend(loc="best", fontsize=6)
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[0])

        fig, axes = plt.subplots(1, len(kinds), figsize=(3.4 * len(kinds), 2.8), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            ks = summary.get(kind)
            if ks is None:
                continue
            for j, m in enumerate(METRICS):
                if "length_ratio" not in ks[m]:
                    continue
                e = ks[m]["length_ratio"]
                err = [[e["mean"] - e["low"]], [e["high"] - e["mean"]]]
                ax.errorbar([j], [e["mean"]], yerr=err, fmt="o", color=_COLORS[m], capsize=3)
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
            ax.set_yscale("log")
            ax.set(title=f"{kind} ({ks['n']} trajectories; n = converged)")
            ax.set_xticks(range(len(METRICS)),
                          [f"{m}\nn={ks[m]['n_used']}" for m in METRICS], fontsize=7)
        axes[0][0].set_ylabel("Σ d(x_k, x_k+1) / d(x_0, x_L−1)")
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[1])

        fig, ax = plt.subplots(figsize=(3.4, 2.8))
        gen = [r for r in recs if r["kind"] == "generation"]
        if gen:
            for m in METRICS:
                # steps whose log map failed the shooting check are left out
                perr = np.asarray([np.where(r[m]["pred_converged"], r[m]["err_geo"], np.nan)
                                  for r in gen])
                if not np.any(np.isfinite(perr)):
                    continue
                with warnings.catch_warnings():  # a step with no converged continuation
                    warnings.simplefilter("ignore", RuntimeWarning)
                    perr = np.nanmean(perr, axis=0)
                ax.plot(np.arange(2, len(perr) + 2), perr, "o-", color=_COLORS[m], ms=3,
                        label="linear" if m == "euclidean" else f"geodesic: {m}")
            ax.set_yscale("log")
            ax.set_xticks(np.arange(2, len(gen[0]["euclidean"]["err_geo"]) + 2))
            ax.set(xlabel="predicted state k + 1", ylabel="mean |error| (hidden-state units)",
                   title="Next-state prediction (generation)")
            ax.legend(fontsize=6)
        save_figure(fig, out / FIGURE_STEMS[2])


def _jsonable(study: dict[str, Any]) -> dict[str, Any]:
    recs = []
    for r in study["records"]:
        rec = {k: v for k, v in r.items() if k not in METRICS and not k.startswith("_")}
        for m in METRICS:
            rec[m] = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                      for k, v in r[m].items() if k not in ("path", "launch_end")}
        recs.append(rec)
    return {"records": recs, "truncation_error": study["truncation_error"],
            "fit": study.get("fit"), "settings": study["settings"], "seconds": study["seconds"]}


def run(out: pathlib.Path, settings: RealGeodesicSettings, model: Any = None,
        progress: Callable[[str], None] | None = None, *, fit: Any = None) -> dict[str, Any]:
    """Run the study on SmolLM2's held-out prompts and write figures and JSON into `out`.

    Arguments:
        out: the output folder (created).
        settings: the study's settings.
        model: a loaded SmolLM2 (default: loaded here).
        progress: a callable taking a message.
        fit: the gravity metric's fitted potential (see
            [`load_fit`][infograv.experiments._real_geodesics.load_fit]); default
            `settings.fit`, then the stand-in.

    Returns:
        The summary (also written, with every record, to `out/real_geodesics.json`).
    """
    from .._io import write_json
    from ..data.prompts import load_prompts
    from ..lm import load_language_model

    say = progress or (lambda _m: None)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = load_language_model("smollm2")
    held = [p.text for p in load_prompts(split="heldout") if p.category in ("factual", "open")]
    rng = np.random.default_rng(settings.seed)
    n = min(settings.n_prompts, len(held))
    prompts = [held[i] for i in sorted(rng.choice(len(held), n, replace=False))]
    study = real_geodesic_study(model, prompts, settings, say, fit=fit)
    summary = summarise(study, settings)
    summary["seconds"] = study["seconds"]
    _figures(study, summary, out)
    write_json(out / "real_geodesics.json", {"summary": summary, "study": _jsonable(study)})
    return summary


PAPER_SETTINGS = RealGeodesicSettings(
    n_prompts=3, n_new=5, depth_stride=10, vocab=4096, max_steps=40, n_steps=6, exp_steps=8,
    output_n_steps=6, output_max_steps=100, kde_tokens=2048, n_boot=1000, ridge_check=None,
    truncation_checks=1)


def paper_section(out: pathlib.Path, progress: Callable[[str], None]) -> None:
    """The paper's real-manifold section, `PAPER_SETTINGS`: 3 held-out prompts (5 generated
    states; depth every 10th layer), the output metric on the top 4,096 tokens, shorter
    discrete geodesics than the study's defaults (kept small for runtime on 2 cores; every log
    map is still checked by shooting). The gravity metric uses the fit of the paper's
    `validation` section when that section ran in the same `infograv paper` run, else the
    documented stand-in. `docs/geometry/real.md` states the settings of its reported run."""
    out = pathlib.Path(out)
    sibling = out.parent / "validation"
    fit = None
    if sibling.is_dir():
        try:
            fit = load_fit(sibling, PAPER_SETTINGS.kernel)
        except ValueError:
            progress("real geodesics: no fitted potential in the validation section; stand-in")
    run(out, PAPER_SETTINGS, progress=progress, fit=fit)
