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

The decision rule (stated in the docs before the numbers) is in `RULE`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .. import geometry as geo
from ..geodesic import exp_map, path_energy
from ._stats import bootstrap_ci, mean

__all__ = ["METRICS", "RULE", "RealGeodesicSettings", "trajectory_measures",
           "real_geodesic_study", "summarise", "paper_section"]

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
    "interval's half-width."
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
        kernel: the information-gravity kernel's name (radial profile of `d = 3`).
        kernel_params: its parameters; `epsilon` defaults to the median distance from the
            query to the trajectory's top tokens.
        kde_tokens: tokens of the cloud in the density metric's KDE (a seeded subsample).
        n_steps: path segments of a log map.
        max_steps: L-BFGS steps of a discrete geodesic (its remaining path-energy gradient is
            reported).
        exp_steps: Runge–Kutta steps of an exp map.
        n_boot: bootstrap resamples.
        seed: seed of the subsample and the bootstrap.
        kinds: trajectory kinds, `"generation"` and/or `"depth"`.
    """

    n_prompts: int = 12
    n_new: int = 8
    depth_stride: int = 5
    vocab: int = 512
    ridge: float = 1e-5
    ridge_check: float | None = 1e-6
    kernel: str = "plummer"
    kernel_params: tuple[tuple[str, float], ...] = (("G", 1.0),)
    kde_tokens: int = 4096
    n_steps: int = 8
    max_steps: int = 200
    exp_steps: int = 16
    n_boot: int = 2000
    seed: int = 0
    kinds: tuple[str, ...] = ("generation", "depth")


# --------------------------------------------------------------------------------------------
# Metrics around one trajectory
# --------------------------------------------------------------------------------------------


def _build_metrics(
    potential: Any, base: geo.OutputMetric, points: np.ndarray, settings: RealGeodesicSettings,
    cloud: np.ndarray, ridge: float,
) -> tuple[dict[str, Any], np.ndarray]:
    from ..model import SemanticSpace

    x = jnp.asarray(points)
    # a fixed number of tokens (one compiled program for every trajectory): those most probable
    # at any state of the trajectory
    best = np.max(np.asarray(jax.vmap(base.log_prob)(x)), axis=0)
    ids = np.sort(np.argsort(-best)[: settings.vocab])
    # CG preconditioned by the 64 most probable tokens; 100 iterations at most bound the cost
    # where a far launch leaves the preconditioner poor
    out = base.restrict(ids)._copy(ridge=ridge, precond_rank=min(64, len(ids)), cg_max_steps=100)
    emb = np.asarray(base.head)
    # the query map x_q = a h puts hidden states on the scale of the token cloud
    a = float(np.median(np.linalg.norm(emb[ids], axis=1)) / np.median(np.linalg.norm(points, 1)))
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


class _WhitenedEnergy(eqx.Module):
    def __call__(self, u: Any, args: Any) -> Any:
        metric, a, b, straight, upper = args
        inner = straight + jax.scipy.linalg.solve_triangular(upper, u.T, lower=False).T
        return path_energy(metric, jnp.concatenate([a[None], inner, b[None]]))


class _Geodesics(eqx.Module):
    length: Any
    velocity: Any
    path: Any
    gradient: Any


@eqx.filter_jit
def _logmaps(metric: Any, a: Any, b: Any, n_steps: int, max_steps: int) -> _Geodesics:
    """Discrete geodesics `a → b` (batched): the path energy (`geodesic.path_energy`) minimised
    by L-BFGS over the interior points, in coordinates whitened by the Cholesky factor of the
    metric at the chord's midpoint (so that the badly conditioned output metric does not stall
    the optimiser); `max_steps` L-BFGS steps at most."""

    def one(p: Any, q: Any) -> Any:
        upper = jnp.linalg.cholesky(metric.metric(0.5 * (p + q))).T
        frac = jnp.linspace(0.0, 1.0, n_steps + 1, dtype=p.dtype)[1:-1, None]
        straight = p[None, :] + frac * (q - p)[None, :]
        args = (metric, p, q, straight, upper)
        sol: Any = optx.minimise(_WhitenedEnergy(), optx.LBFGS(rtol=1e-9, atol=1e-9),
                            jnp.zeros_like(straight), args=args, max_steps=max_steps,
                            throw=False)
        grad = jax.grad(_WhitenedEnergy())(sol.value, args)
        inner = straight + jax.scipy.linalg.solve_triangular(upper, sol.value.T, lower=False).T
        path = jnp.concatenate([p[None], inner, q[None]])
        delta = path[1:] - path[:-1]
        mid = 0.5 * (path[1:] + path[:-1])
        length = jnp.sum(jnp.sqrt(jax.vmap(metric.inner)(mid, delta, delta)))
        vel = 0.5 * n_steps * (-3.0 * path[0] + 4.0 * path[1] - path[2])
        return length, vel, path, jnp.max(jnp.abs(grad))

    length, vel, path, grad = jax.vmap(one)(a, b)
    return _Geodesics(length, vel, path, grad)


@eqx.filter_jit
def _expmaps(metric: Any, x: Any, v: Any, n_steps: int) -> Any:
    return jax.vmap(lambda p, w: exp_map(metric, p, w, n_steps=n_steps))(x, v)


def _deviation(metric: Any, path: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance from each point to the polyline `path`, in the metric at the point."""
    a, b = path[:-1], path[1:]
    out = []
    for p in pts:
        ab = b - a
        t = np.clip(np.sum((p - a) * ab, 1) / np.maximum(np.sum(ab * ab, 1), 1e-300), 0, 1)
        near = a + t[:, None] * ab
        j = int(np.argmin(np.linalg.norm(p - near, axis=1)))
        delta = jnp.asarray(p - near[j])
        out.append(float(jnp.sqrt(metric.inner(jnp.asarray(p), delta, delta))))
    return np.asarray(out)


def trajectory_measures(
    metric: Any, points: np.ndarray, settings: RealGeodesicSettings
) -> dict[str, Any]:
    """Geodesicity, prediction and capture inputs of one trajectory in one metric.

    `metric=None` is the Euclidean metric in closed form (straight lines).

    Returns:
        `{"ratio", "deviation", "log_err_ratio" (L−2,), "err_geo", "err_lin", "launch_end",
        "path" (geodesic x_0 → x_{L−1}), "converged"}`.
    """
    x = np.asarray(points, dtype=np.float64)
    n = len(x)
    lin = 2 * x[1:-1] - x[:-2]
    err_lin = np.linalg.norm(lin - x[2:], axis=1)
    if metric is None:
        seg = np.linalg.norm(np.diff(x, axis=0), axis=1)
        end = float(np.linalg.norm(x[-1] - x[0]))
        path = np.linspace(0.0, 1.0, settings.n_steps + 1)[:, None] * (x[-1] - x[0]) + x[0]
        u = (x[-1] - x[0]) / max(end, 1e-300)
        rel = x[1:-1] - x[0]
        dev = np.linalg.norm(rel - (rel @ u)[:, None] * u[None, :], axis=1)
        return {"ratio": float(seg.sum() / end), "deviation": float(dev.mean() / end),
                "log_err_ratio": np.zeros(n - 2), "err_geo": err_lin, "err_lin": err_lin,
                "launch_end": x[0] + (n - 1) * (x[1] - x[0]), "path": path, "residual": 0.0}
    xj = jnp.asarray(x)
    # backward consecutive pairs x_k → x_{k−1} (k = 1 … L−1), then x_0 → x_{L−1}, x_0 → x_1
    a = jnp.concatenate([xj[1:], xj[:1], xj[:1]])
    b = jnp.concatenate([xj[:-1], xj[-1:], xj[1:2]])
    sols = _logmaps(metric, a, b, settings.n_steps, settings.max_steps)
    lengths = np.asarray(sols.length)
    seg, end = lengths[: n - 1], float(lengths[n - 1])
    path = np.asarray(sols.path[n - 1])
    dev = _deviation(metric, path, x[1:-1])
    vel = sols.velocity
    # continuations exp_{x_k}(−log_{x_k} x_{k−1}), k = 1 … L−2, and the launch from x_0 with the
    # velocity that reaches x_1 at parameter 1, continued to parameter L − 1 (one batch)
    starts = jnp.concatenate([xj[1:-1], xj[:1]])
    vels = jnp.concatenate([-vel[: n - 2], (n - 1) * vel[n:]])
    ends = np.asarray(_expmaps(metric, starts, vels, settings.exp_steps))
    pred, launch = ends[: n - 2], ends[n - 2]
    err_geo = np.linalg.norm(pred - x[2:], axis=1)
    return {"ratio": float(seg.sum() / end), "deviation": float(dev.mean() / end),
            "log_err_ratio": np.log(err_geo / err_lin), "err_geo": err_geo, "err_lin": err_lin,
            "launch_end": launch, "path": path,
            "residual": float(np.max(np.asarray(sols.gradient)))}


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
) -> dict[str, Any]:
    """Run the three measures on each prompt's trajectories in each metric.

    Returns:
        `{"records": [...one per trajectory...], "truncation_error": float,
        "settings": {...}, "seconds": float}`; each record holds, per metric, the output of
        [`trajectory_measures`][infograv.experiments._real_geodesics.trajectory_measures] plus
        the capture outcome.
    """
    from ..model import Potential

    s = settings or RealGeodesicSettings()
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    kernel_params: dict[str, Any] = dict(s.kernel_params)
    potential = Potential(s.kernel, 3, **kernel_params)
    base = geo.OutputMetric.from_language_model(model, ridge=s.ridge)
    emb = np.asarray(base.head)
    rng = np.random.default_rng(s.seed)
    cloud = emb[rng.choice(emb.shape[0], size=min(s.kde_tokens, emb.shape[0]), replace=False)]
    records = []
    trunc = float("nan")
    for i, traj in enumerate(_trajectories(model, prompts, s)):
        say(f"real geodesics: trajectory {i + 1} ({traj.kind})")
        metrics, ids = _build_metrics(potential, base, traj.points, s, cloud, s.ridge)
        if i == 0:
            v = jnp.asarray(traj.points[1] - traj.points[0])
            trunc = float(base.truncation_error(ids, jnp.asarray(traj.points[0]), v))
        rec: dict[str, Any] = {"kind": traj.kind, "prompt": traj.meta["prompt"],
                               "n_tokens_output": int(len(ids))}
        generated = set() if traj.token_ids is None else set(int(t) for t in traj.token_ids[1:])
        for name in METRICS:
            m = None if name == "euclidean" else metrics[name]
            r = trajectory_measures(m, traj.points, s)
            if traj.token_ids is not None:
                top = int(np.argmax(np.asarray(base.logits(jnp.asarray(r["launch_end"])))))
                r["capture"] = float(top in generated)
            rec[name] = r
        if s.ridge_check is not None:
            chk = metrics["output"]._copy(ridge=s.ridge_check)
            rec["output_ridge_check"] = trajectory_measures(chk, traj.points, s)["ratio"]
        records.append(rec)
    return {"records": records, "truncation_error": trunc, "settings": dataclasses.asdict(s),
            "seconds": time.perf_counter() - t0}


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
    """Estimates, intervals and plain verdicts per trajectory kind and metric (rule: `RULE`)."""
    s = settings or RealGeodesicSettings()
    out: dict[str, Any] = {"rule": RULE, "truncation_error": study["truncation_error"]}
    for kind in sorted({r["kind"] for r in study["records"]}):
        recs = [r for r in study["records"] if r["kind"] == kind]
        if len(recs) < 2:
            continue
        k: dict[str, Any] = {"n": len(recs)}
        logr = {m: np.log([r[m]["ratio"] for r in recs]) for m in METRICS}
        for m in METRICS:
            e: dict[str, Any] = {
                "length_ratio": _ci(np.exp(logr[m]), s),
                "deviation": _ci([r[m]["deviation"] for r in recs], s),
            }
            if m != "euclidean":
                diff = _ci(logr[m] - logr["euclidean"], s)
                e["log_ratio_vs_euclidean"] = diff
                e["geodesicity_verdict"] = _word(
                    diff, "more geodesic than the straight line",
                    "less geodesic than the straight line", "no difference from the straight line")
                pred = _ci([np.mean(r[m]["log_err_ratio"]) for r in recs], s)
                e["log_error_ratio"] = pred
                e["prediction_verdict"] = _word(
                    pred, "predicts better than linear extrapolation",
                    "predicts worse than linear extrapolation",
                    "no difference from linear extrapolation")
                e["max_energy_gradient"] = float(np.max([r[m]["residual"] for r in recs]))
                if "capture" in recs[0][m]:
                    cap = _ci([r[m]["capture"] - r["euclidean"]["capture"] for r in recs], s)
                    e["capture_vs_line"] = cap
                    e["capture_verdict"] = _word(cap, "captures less than the straight line",
                                                 "captures", "no capture beyond the straight line")
            if "capture" in recs[0][m]:
                e["capture_rate"] = _ci([r[m]["capture"] for r in recs], s)
            k[m] = e
        k["most_geodesic"] = min(METRICS, key=lambda m: float(np.mean(logr[m])))
        if "output_ridge_check" in recs[0]:
            chk = np.log([r["output_ridge_check"] for r in recs])
            half = 0.5 * (k["output"]["length_ratio"]["high"] - k["output"]["length_ratio"]["low"])
            shift = abs(float(np.mean(np.exp(chk))) - k["output"]["length_ratio"]["mean"])
            k["ridge_stability"] = {"ratio_at_ridge_check": float(np.mean(np.exp(chk))),
                                    "shift": shift, "half_width": half,
                                    "stable": bool(shift < half)}
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
                ax.plot(p[:, 0], p[:, 1], color=_COLORS[m], lw=1.2, label=f"geodesic: {m}")
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
                e = ks[m]["length_ratio"]
                err = [[e["mean"] - e["low"]], [e["high"] - e["mean"]]]
                ax.errorbar([j], [e["mean"]], yerr=err, fmt="o", color=_COLORS[m], capsize=3)
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
            ax.set_xticks(range(len(METRICS)), METRICS)
            ax.set_yscale("log")
            ax.set(title=f"{kind} (n = {ks['n']})")
        axes[0][0].set_ylabel("Σ d(x_k, x_k+1) / d(x_0, x_L−1)")
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[1])

        fig, ax = plt.subplots(figsize=(3.4, 2.8))
        gen = [r for r in recs if r["kind"] == "generation"]
        if gen:
            for m in METRICS:
                err = np.mean([r[m]["err_geo"] for r in gen], axis=0)
                ax.plot(np.arange(2, len(err) + 2), err, "o-", color=_COLORS[m], ms=3,
                        label="linear" if m == "euclidean" else f"geodesic: {m}")
            ax.set_yscale("log")
            ax.set_xticks(np.arange(2, len(err) + 2))
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
            "settings": study["settings"], "seconds": study["seconds"]}


def run(out: pathlib.Path, settings: RealGeodesicSettings, model: Any = None,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study on SmolLM2's held-out prompts and write figures and JSON into `out`."""
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
    prompts = [held[i] for i in sorted(rng.choice(len(held), settings.n_prompts, replace=False))]
    study = real_geodesic_study(model, prompts, settings, say)
    summary = summarise(study, settings)
    trajs = _trajectories(model, prompts[:1], settings)
    for r in study["records"]:
        for t in trajs:
            if t.kind == r["kind"] and t.meta["prompt"] == r["prompt"]:
                r["_points"] = t.points
    _figures(study, summary, out)
    write_json(out / "real_geodesics.json", {"summary": summary, "study": _jsonable(study)})
    return summary


def paper_section(out: pathlib.Path, progress: Callable[[str], None]) -> None:
    """The paper's real-manifold section: 3 held-out prompts, 5 generated states, depth every
    15th layer, 256 output tokens, short discrete geodesics (kept small for runtime: about
    two minutes on 2 cores; 2 prompts took 86 s on a loaded machine). `docs/geometry/real.md`
    states the settings of its reported run."""
    settings = RealGeodesicSettings(n_prompts=3, n_new=5, depth_stride=15, vocab=256,
                                    max_steps=20, n_steps=4, exp_steps=8, kde_tokens=1024,
                                    n_boot=1000, ridge_check=None)
    run(pathlib.Path(out), settings, progress=progress)
