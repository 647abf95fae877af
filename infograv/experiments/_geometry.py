"""The geometry of the model: geodesics, horizons, curvature, distances and Langevin dynamics.

Each `*_experiment` function returns a plain dict: `settings` (every parameter used), array
data, and `summary` numbers. `paper_section(out, progress)` runs all five with their defaults
and writes figures (PDF + PNG), CSV and JSON into `out`.

Choices (formalism §5): the Riemannian view of the semantic plane is the conformal metric
`g = e^{−2Φ/c²} δ` (`φ = −Φ/c²`; `(1 − 2Φ/c²) δ` is the alternative, equal to first order);
query wells are Gaussian wells `Φ = −Σ_k M_k exp(−|x − x_k|²/2σ²)` compiled from SymPy; the
information horizon is that of Schwarzschild–Tangherlini in `D = 4` (the equatorial plane is
the 2-D semantic plane).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import geodesic as gd, geometry as geo
from .._io import write_csv, write_dataset_json

__all__ = [
    "bundle_experiment",
    "horizon_experiment",
    "curvature_experiment",
    "distance_experiment",
    "langevin_experiment",
    "paper_section",
    "FIGURE_STEMS",
]

#: File stems of the five figures that `paper_section` writes.
FIGURE_STEMS = (
    "geometry_bundle",
    "geometry_horizon",
    "geometry_curvature",
    "geometry_distance",
    "geometry_langevin",
)


def _optical(centres: Any, masses: Any, width: float, c: float) -> geo.ConformalMetric:
    # φ = −Φ/c² with Φ = −Σ M_k exp(...): φ = +Σ (M_k/c²) exp(...)
    pot = geo.gaussian_wells(jnp.asarray(centres), jnp.asarray(masses) / c**2, width=width)
    return geo.ConformalMetric(eqx.Partial(_neg, pot), dim=2)


def _neg(pot: Any, x: Any) -> Any:
    return -pot(x)


def bundle_experiment(
    *, mass: float = 0.5, width: float = 0.8, c: float = 1.0, n_rays: int = 21,
    half_height: float = 2.0, start: float = -3.0, n_save: int = 121,
) -> dict:
    r"""A bundle of parallel geodesics bending around a query's well (`e^{−2Φ/c²} δ` in 2-D).

    Rays start at `x = start`, heights `y ∈ [−half_height, half_height]`, direction `+x`, unit
    speed, and run until they leave the disc of radius `√(start² + half_height²) + 0.5`.
    `summary` gives the deflection angle of each ray and the ray of largest deflection.
    """
    metric = _optical([[0.0, 0.0]], [mass], width, c)
    heights = np.linspace(-half_height, half_height, n_rays)
    t1 = 3.0 * abs(start)
    ts = jnp.linspace(0.0, t1, n_save)
    x0 = jnp.stack([jnp.full(n_rays, start), jnp.asarray(heights)], axis=1)
    v0 = jnp.tile(jnp.array([1.0, 0.0]), (n_rays, 1))
    v0 = jax.vmap(lambda x, v: v / jnp.sqrt(metric.inner(x, v, v)))(x0, v0)
    dom = gd.LeavesDomain(float(np.hypot(start, half_height)) + 0.5)

    @eqx.filter_jit
    def run(x0, v0):
        return jax.vmap(lambda x, v: gd.geodesic(metric, x, v, t1, ts=ts, events=[dom],
                                                 rtol=1e-9, atol=1e-9, throw=False))(x0, v0)

    sol = run(x0, v0)
    xs = np.asarray(sol.xs)
    vend = np.asarray(sol.vs[:, -1])
    last = np.array([xs[i][np.isfinite(xs[i, :, 0])][-1] for i in range(n_rays)])
    vlast = np.array([np.asarray(sol.vs[i])[np.isfinite(xs[i, :, 0])][-1] for i in range(n_rays)])
    del vend
    deflection = np.arctan2(vlast[:, 1], vlast[:, 0])
    grid = np.linspace(-3.5, 3.5, 141)
    gx, gy = np.meshgrid(grid, grid)
    pts = jnp.stack([jnp.asarray(gx.ravel()), jnp.asarray(gy.ravel())], axis=1)
    phi_field = -np.asarray(jax.vmap(metric.phi)(pts)).reshape(gx.shape) * c**2
    return {
        "settings": {"mass": mass, "width": width, "c": c, "n_rays": n_rays,
                     "half_height": half_height, "start": start, "n_save": n_save,
                     "metric": "exp(-2 Phi / c^2) delta", "rtol": 1e-9},
        "heights": heights, "paths": xs, "end": last, "deflection": deflection,
        "grid": grid, "potential": phi_field,
        "summary": {"max_deflection_rad": float(np.max(np.abs(deflection))),
                    "height_of_max": float(heights[np.argmax(np.abs(deflection))]),
                    "toward_well": bool(np.all(deflection[heights > 0.05] < 0))},
    }


def horizon_experiment(*, r_s: float = 1.0, n_rays: int = 16, start: float = -12.0) -> dict:
    r"""Capture by an information horizon: null rays at impact parameters `b` around the
    critical `b_c = 3√3/2 · r_s` of Schwarzschild–Tangherlini in `D = 4` (equatorial plane).

    A ray is captured when it reaches `1.01 r_s` (a horizon-crossing event) and escapes when it
    leaves the disc of radius `|start| + 1`. `summary` gives the smallest escaping and the
    largest captured `b` against `b_c`.
    """
    metric = geo.TangherliniMetric(4, r_s=r_s)
    b_c = 1.5 * np.sqrt(3.0) * r_s
    bs = np.linspace(0.5 * b_c, 1.5 * b_c, n_rays)
    t1 = 6.0 * abs(start)
    ts = jnp.linspace(0.0, t1, 400)
    events = [gd.HorizonCrossing(1.01 * r_s), gd.LeavesDomain(abs(start) + 1.0, spatial_start=1)]

    def init(b):
        x0 = jnp.array([0.0, start, b, 0.0])
        w = jnp.array([1.0, 0.0, 0.0])
        spatial = metric.metric_vp(x0, jnp.concatenate([jnp.zeros(1), w]))[1:] @ w
        return x0, jnp.concatenate([jnp.sqrt(spatial / metric.lapse(x0))[None], w])

    @eqx.filter_jit
    def run(bs):
        x0, v0 = jax.vmap(init)(bs)
        return jax.vmap(lambda x, v: gd.geodesic(metric, x, v, t1, ts=ts, kind="null",
                                                 events=events, rtol=1e-10, atol=1e-10,
                                                 throw=False))(x0, v0)

    sol = run(jnp.asarray(bs))
    captured = np.asarray(sol.event_mask[0])
    return {
        "settings": {"r_s": r_s, "n_rays": n_rays, "start": start, "D": 4,
                     "capture_radius": 1.01 * r_s, "rtol": 1e-10},
        "b": bs, "b_critical": b_c, "captured": captured, "paths": np.asarray(sol.xs[..., 1:3]),
        "summary": {"b_critical": float(b_c),
                    "largest_captured_b": float(bs[captured].max()) if captured.any() else None,
                    "smallest_escaping_b": float(bs[~captured].min()) if (~captured).any()
                    else None},
    }


def curvature_experiment(
    *, queries: Any = ((-1.2, -0.6), (1.0, 0.9), (0.6, -1.3)), masses: Any = (1.0, 0.7, 0.5),
    width: float = 0.7, c: float = 1.0, resolution: int = 121, extent: float = 3.0,
) -> dict:
    r"""The scalar curvature `R(x)` of `e^{−2Φ/c²} δ` around several queries (closed form
    `R = −e^{−2φ} 2(n−1)Δφ` at `n = 2`, checked against autodiff in the tests)."""
    metric = _optical(queries, masses, width, c)
    grid = np.linspace(-extent, extent, resolution)
    gx, gy = np.meshgrid(grid, grid)
    pts = jnp.stack([jnp.asarray(gx.ravel()), jnp.asarray(gy.ravel())], axis=1)
    scal = np.asarray(eqx.filter_jit(lambda p: jax.vmap(metric.ricci_scalar_closed_form)(p))(pts))
    check = np.asarray([metric.ricci_scalar(pts[i]) for i in (0, len(pts) // 2)])
    return {
        "settings": {"queries": np.asarray(queries), "masses": np.asarray(masses),
                     "width": width, "c": c, "resolution": resolution, "extent": extent},
        "grid": grid, "R": scal.reshape(gx.shape),
        "summary": {"R_min": float(scal.min()), "R_max": float(scal.max()),
                    "autodiff_check_max_abs_diff": float(np.max(np.abs(
                        check - scal[[0, len(pts) // 2]])))},
    }


def distance_experiment(
    *, masses: Any = (0.0, 0.5, 1.0, 2.0, 3.0), width: float = 0.8, c: float = 1.0,
    pairs: Any = (((-1.5, 0.4), (1.5, 0.4)), ((-1.2, -0.8), (1.0, 1.2)),
                  ((-2.0, 1.5), (2.0, 1.5))),
    n_steps: int = 48,
) -> dict:
    r"""Geodesic (log map) vs Euclidean distance between token pairs as the query mass grows.

    The query sits at the origin; the metric is `e^{−2Φ/c²} δ`; the geodesic distance is the
    length of the log-map geodesic (`method="hybrid"`: path-energy minimisation, then shooting).
    A pair exactly symmetric about the query would start the minimisation on the saddle
    path through the well; the default pairs avoid that.
    """
    pairs = np.asarray(pairs, dtype=float)

    @eqx.filter_jit
    def dist(mass, a, b):
        metric = _optical(jnp.zeros((1, 2)), mass[None], width, c)
        sol = gd.log_map(metric, a, b, method="hybrid", n_steps=n_steps, throw=False)
        return sol.length, sol.result == gd.RESULTS.successful, sol.path

    lengths = np.zeros((len(masses), len(pairs)))
    ok = np.zeros_like(lengths, dtype=bool)
    paths = {}
    for i, mass in enumerate(masses):
        for j, (a, b) in enumerate(pairs):
            L, good, path = dist(jnp.asarray(mass, float), jnp.asarray(a), jnp.asarray(b))
            lengths[i, j], ok[i, j] = float(L), bool(good)
            paths[(i, j)] = np.asarray(path)
    eucl = np.linalg.norm(pairs[:, 1] - pairs[:, 0], axis=1)
    return {
        "settings": {"masses": np.asarray(masses), "width": width, "c": c, "pairs": pairs,
                     "n_steps": n_steps, "method": "hybrid"},
        "masses": np.asarray(masses), "geodesic": lengths, "euclidean": eucl, "ok": ok,
        "paths": paths,
        "summary": {"all_converged": bool(ok.all()),
                    "ratio_at_max_mass": (lengths[-1] / eucl).tolist(),
                    "ratio_at_zero_mass": (lengths[0] / eucl).tolist()},
    }


def langevin_experiment(
    *, T: float = 0.4, masses: Any = (1.0, 0.6), centres: Any = ((-0.8, 0.0), (1.0, 0.3)),
    width: float = 0.6, confine: float = 0.5, n_particles: int = 2000, t1: float = 12.0,
    dt: float = 5e-3, seed: int = 0, bins: int = 30,
) -> dict:
    r"""Overdamped Langevin `dx = −∇U dt + √(2T) dW` in a 2-D landscape of two query wells
    (plus a weak confinement `½ k|x|²`), against the Boltzmann density `e^{−U/T}/Z`.

    Compares the histogram of the x-coordinate of `n_particles` independent runs at `t1` with
    the marginal of `e^{−U/T}/Z` on a grid; `summary` gives Pearson's χ² p-value.
    """
    import scipy.stats

    wells = geo.gaussian_wells(jnp.asarray(centres), jnp.asarray(masses), width=width)

    def U(x):
        return wells(x) + 0.5 * confine * x @ x

    keys = jax.random.split(jax.random.key(seed), n_particles)
    x0 = jax.random.normal(jax.random.key(seed + 1), (n_particles, 2))
    run = eqx.filter_jit(
        lambda ks, xs: jax.vmap(lambda k, x: gd.langevin(U, x, T, t1, key=k, dt=dt).xs[-1])(ks, xs)
    )
    xs = np.asarray(run(keys, x0))
    lim = 8.0
    grid = np.linspace(-lim, lim, 801)
    gx, gy = np.meshgrid(grid, grid)
    pts = jnp.stack([jnp.asarray(gx.ravel()), jnp.asarray(gy.ravel())], axis=1)
    u = np.asarray(jax.vmap(U)(pts)).reshape(gx.shape)
    dens = np.exp(-(u - u.min()) / T)
    dx = grid[1] - grid[0]
    dens /= dens.sum() * dx * dx
    marginal = dens.sum(axis=0) * dx
    edges = np.linspace(-3.0, 3.0, bins + 1)
    counts, _ = np.histogram(xs[:, 0], edges)
    cdf = np.concatenate([[0.0], np.cumsum(marginal) * dx])
    cgrid = np.concatenate([[grid[0] - dx / 2], grid + dx / 2])
    probs = np.diff(np.interp(edges, cgrid, cdf))
    inside = counts.sum()
    expected = probs / probs.sum() * inside
    keep = expected >= 5
    p = float(scipy.stats.chisquare(counts[keep], expected[keep] * counts[keep].sum()
                                    / expected[keep].sum()).pvalue)
    return {
        "settings": {"T": T, "masses": np.asarray(masses), "centres": np.asarray(centres),
                     "width": width, "confine": confine, "n_particles": n_particles, "t1": t1,
                     "dt": dt, "seed": seed, "bins": bins, "solver": "Euler-Maruyama"},
        "samples": xs, "edges": edges, "counts": counts, "expected": expected,
        "grid": grid, "marginal": marginal,
        "summary": {"chi2_pvalue": p, "bins_used": int(keep.sum()),
                    "fraction_in_range": float(inside / n_particles)},
    }


def paper_section(out: pathlib.Path, progress: Callable[[str], None]) -> None:
    """Write the five geometry figures with their CSV/JSON data into `out`."""
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    out = pathlib.Path(out)
    progress("geometry: geodesic bundle around a query well")
    d = bundle_experiment()
    with paper_style():
        fig, ax = plt.subplots(figsize=(3.4, 3.0))
        g = d["grid"]
        cs = ax.contourf(g, g, d["potential"], levels=20, cmap="Blues_r")
        fig.colorbar(cs, ax=ax, label=r"$\Phi$")
        for p in d["paths"]:
            p = p[np.isfinite(p[:, 0])]
            ax.plot(p[:, 0], p[:, 1], color="k", lw=0.7)
        ax.plot([0], [0], "r*", ms=8, label="query")
        ax.set(xlabel="$x^1$", ylabel="$x^2$", aspect="equal", xlim=(-3.5, 4.2), ylim=(-3.5, 3.5),
               title=r"Geodesics of $e^{-2\Phi/c^2}\delta$")
        ax.legend(loc="upper right")
        save_figure(fig, out / FIGURE_STEMS[0])
    rays = d["paths"]
    write_csv(out / f"{FIGURE_STEMS[0]}.csv", {
        "ray": np.repeat(np.arange(rays.shape[0]), rays.shape[1]),
        "x1": rays[..., 0].ravel(), "x2": rays[..., 1].ravel()})
    write_dataset_json(out / f"{FIGURE_STEMS[0]}.json", d, heights=d["heights"],
                       deflection_rad=d["deflection"])

    progress("geometry: capture by an information horizon")
    d = horizon_experiment()
    with paper_style():
        fig, ax = plt.subplots(figsize=(3.4, 3.0))
        for b, cap, p in zip(d["b"], d["captured"], d["paths"]):
            p = p[np.isfinite(p[:, 0])]
            ax.plot(p[:, 0], p[:, 1], color="C3" if cap else "C0", lw=0.7)
        t = np.linspace(0, 2 * np.pi, 200)
        rs = d["settings"]["r_s"]
        ax.fill(rs * np.cos(t), rs * np.sin(t), color="k")
        ax.plot(1.5 * rs * np.cos(t), 1.5 * rs * np.sin(t), "k:", lw=0.7)
        ax.plot([], [], color="C3", label="captured")
        ax.plot([], [], color="C0", label="escapes")
        ax.set(xlabel="$x^1$", ylabel="$x^2$", aspect="equal", xlim=(-12, 12), ylim=(-8, 12),
               title=rf"Information horizon, $b_c = {d['b_critical']:.2f}\,r_s$")
        ax.legend(loc="lower right")
        save_figure(fig, out / FIGURE_STEMS[1])
    write_csv(out / f"{FIGURE_STEMS[1]}.csv", {"b": d["b"], "captured": d["captured"]})
    write_dataset_json(out / f"{FIGURE_STEMS[1]}.json", d)

    progress("geometry: scalar-curvature map around several queries")
    d = curvature_experiment()
    with paper_style():
        fig, ax = plt.subplots(figsize=(3.4, 3.0))
        g = d["grid"]
        lim = float(np.max(np.abs(d["R"])))
        im = ax.pcolormesh(g, g, d["R"], cmap="RdBu_r", vmin=-lim, vmax=lim, shading="auto")
        fig.colorbar(im, ax=ax, label="scalar curvature $R$")
        q = np.asarray(d["settings"]["queries"])
        ax.plot(q[:, 0], q[:, 1], "k*", ms=7, label="queries")
        ax.set(xlabel="$x^1$", ylabel="$x^2$", aspect="equal", title="Semantic curvature")
        ax.legend(loc="upper left")
        save_figure(fig, out / FIGURE_STEMS[2])
    gx, gy = np.meshgrid(d["grid"], d["grid"])
    write_csv(out / f"{FIGURE_STEMS[2]}.csv", {"x1": gx.ravel(), "x2": gy.ravel(),
                                               "R": d["R"].ravel()})
    write_dataset_json(out / f"{FIGURE_STEMS[2]}.json", d)

    progress("geometry: geodesic vs Euclidean distance as query mass grows")
    d = distance_experiment()
    with paper_style():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(6.8, 2.8))
        for j in range(len(d["euclidean"])):
            a1.plot(d["masses"], d["geodesic"][:, j] / d["euclidean"][j], "o-", ms=3,
                    label=f"pair {j + 1}")
        a1.set(xlabel="query mass $M$", ylabel="geodesic / Euclidean distance")
        a1.legend()
        for i in (0, len(d["masses"]) // 2, len(d["masses"]) - 1):
            for j in range(len(d["euclidean"])):
                p = d["paths"][(i, j)]
                a2.plot(p[:, 0], p[:, 1], color=plt.cm.viridis(i / (len(d["masses"]) - 1)),
                        lw=0.8)
        a2.plot([0], [0], "r*", ms=8)
        a2.set(xlabel="$x^1$", ylabel="$x^2$", aspect="equal",
               title="log-map geodesics (colour: mass)")
        save_figure(fig, out / FIGURE_STEMS[3])
    write_csv(out / f"{FIGURE_STEMS[3]}.csv", {
        "mass": np.repeat(d["masses"], len(d["euclidean"])),
        "pair": np.tile(np.arange(len(d["euclidean"])), len(d["masses"])),
        "geodesic": d["geodesic"].ravel(),
        "euclidean": np.tile(d["euclidean"], len(d["masses"])),
        "converged": d["ok"].ravel()})
    write_dataset_json(out / f"{FIGURE_STEMS[3]}.json", d)

    progress("geometry: Langevin histogram vs Boltzmann density")
    d = langevin_experiment()
    with paper_style():
        fig, ax = plt.subplots(figsize=(3.4, 2.6))
        width = np.diff(d["edges"])
        n = d["counts"].sum()
        ax.bar(d["edges"][:-1], d["counts"] / (n * width) * d["summary"]["fraction_in_range"],
               width=width, align="edge", alpha=0.5, label="Langevin")
        ax.plot(d["grid"], d["marginal"], "k", label=r"$e^{-U/T}/Z$ marginal")
        ax.set(xlim=(-3, 3), xlabel="$x^1$", ylabel="density",
               title=f"T = {d['settings']['T']}, p = {d['summary']['chi2_pvalue']:.2f}")
        ax.legend()
        save_figure(fig, out / FIGURE_STEMS[4])
    write_csv(out / f"{FIGURE_STEMS[4]}.csv", {
        "bin_left": d["edges"][:-1], "bin_right": d["edges"][1:], "count": d["counts"],
        "expected": d["expected"]})
    write_dataset_json(out / f"{FIGURE_STEMS[4]}.json", d)
    progress("geometry: done")
