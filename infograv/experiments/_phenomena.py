"""The paper's phenomena on toy semantic spaces: experiments that return datasets, and figures.

Each `*_experiment` function returns a plain dict: `settings` (every parameter used, so the run
can be repeated), array data, and `summary` numbers. `paper_section(out, progress)` runs all six
with their defaults and writes figures (PDF + PNG), CSV and JSON into `out`.

Physics: formalism §3–4, 6, 7, 9; Vyshnyvetska, arXiv:2504.20951.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import model as m
from .._io import write_csv, write_dataset_json, write_json
from ._stats import spearman

__all__ = [
    "potential_well_experiment",
    "temperature_experiment",
    "collapse_experiment",
    "voids_experiment",
    "sensitivity_experiment",
    "trajectory_experiment",
    "paper_section",
    "FIGURE_STEMS",
]

#: File stems of the six figures (`<stem>.pdf`, `<stem>.png`) that `paper_section` writes.
FIGURE_STEMS = (
    "phenomena_potential_well",
    "phenomena_temperature",
    "phenomena_collapse",
    "phenomena_voids",
    "phenomena_sensitivity",
    "phenomena_trajectories",
)


def _np(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: np.asarray(a) if hasattr(a, "shape") else a, tree)


_spearman = spearman  # the one rank correlation of the package (experiments._stats)


def potential_well_experiment(
    *, seed: int = 0, kernel: str = "plummer", mass: float = 3.0, epsilon: float = 0.3,
    T: float = 0.5, resolution: int = 90, query_cluster: int = 0,
) -> dict:
    r"""The potential well of one query over a 2-D token cloud (formalism §3).

    The query sits at the centre of cluster `query_cluster`; $\Phi(x)$ is evaluated on a grid and
    the selection law gives each token its probability at temperature `T`.
    """
    space = m.toy_clusters(seed, n_clusters=4, n_per_cluster=40, spread=0.35)
    phi = m.Potential(kernel, 2, epsilon=epsilon)
    xq = jnp.mean(space.embedding[space.labels == query_cluster], axis=0)
    lo = jnp.min(space.embedding, axis=0) - 0.5
    hi = jnp.max(space.embedding, axis=0) + 0.5
    pts = m.grid(lo, hi, resolution)
    field = phi.field(pts, xq[None, :], jnp.array([mass]))
    q = m.Query(xq, mass)
    lp = m.log_probs(m.energies(space, q, phi), T)
    return _np({
        "settings": dict(seed=seed, kernel=kernel, mass=mass, epsilon=epsilon, G=1.0, T=T,
                         resolution=resolution, query_cluster=query_cluster,
                         space="toy_clusters(n_clusters=4, n_per_cluster=40, spread=0.35)"),
        "grid": pts, "phi": field, "tokens": space.embedding, "labels": space.labels,
        "query": xq, "probability": jnp.exp(lp),
        "summary": {"well_depth": float(jnp.min(field)),
                    "probability_in_query_cluster": float(jnp.sum(jnp.where(
                        space.labels == query_cluster, jnp.exp(lp), 0.0)))},
    })


def temperature_experiment(
    *, seed: int = 1, mass: float = 1.0, epsilon: float = 0.2, n_temperatures: int = 40,
    t_min: float = 0.01, t_max: float = 10.0, n_samples: int = 200,
) -> dict:
    r"""Entropy, top-1 probability and distinct sampled tokens against $T$ (formalism §4).

    Also the exact $dH/dT = \mathrm{Var}(U)/T^3$ next to autodiff and a central finite difference
    of $H(T)$ (step $10^{-4}T$).
    """
    space = m.toy_clusters(seed, n_clusters=4, n_per_cluster=40, spread=0.35)
    phi = m.Potential("plummer", 2, epsilon=epsilon)
    xq = space.embedding[0] + 0.1
    U = m.energies(space, m.Query(xq, mass), phi)
    Ts = jnp.geomspace(t_min, t_max, n_temperatures)
    UB = jnp.broadcast_to(U, Ts.shape + U.shape)
    th = m.thermodynamics(UB, Ts)
    lp = m.log_probs(UB, Ts)
    top1 = jnp.max(jnp.exp(lp), axis=-1)
    draws = m.sample_tokens(jax.random.key(seed), lp, n_samples)  # (S, K)
    distinct = np.array([len(np.unique(np.asarray(draws[:, j]))) for j in range(len(Ts))])
    exact = th.variance / Ts**3
    auto = jax.vmap(jax.grad(lambda t: m.thermodynamics(U, t).entropy))(Ts)
    h = 1e-4 * Ts
    h_up = m.thermodynamics(UB, Ts + h).entropy
    numeric = (h_up - m.thermodynamics(UB, Ts - h).entropy) / (2 * h)
    return _np({
        "settings": dict(seed=seed, kernel="plummer", mass=mass, epsilon=epsilon, G=1.0,
                         t_min=t_min, t_max=t_max, n_temperatures=n_temperatures,
                         n_samples=n_samples, fd_step="1e-4 T (central)",
                         space="toy_clusters(n_clusters=4, n_per_cluster=40, spread=0.35)"),
        "T": Ts, "entropy": th.entropy, "top1": top1, "distinct": distinct,
        "dHdT_exact": exact, "dHdT_autodiff": auto, "dHdT_numeric": numeric,
        "summary": {
            "max_rel_err_numeric_vs_exact": float(jnp.max(jnp.abs(numeric - exact)
                                                          / jnp.maximum(exact, 1e-300))),
            "max_rel_err_autodiff_vs_exact": float(jnp.max(jnp.abs(auto - exact)
                                                           / jnp.maximum(exact, 1e-300))),
            "entropy_monotone": bool(jnp.all(jnp.diff(th.entropy) >= -1e-12)),
            "log_N": float(np.log(space.n_tokens)),
        },
    })


def collapse_experiment(
    *, seed: int = 2, masses: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0), kernel: str = "plummer",
    epsilon: float = 0.2, coupling: float = 0.02, n_ratios: int = 50,
) -> dict:
    r"""Mass–temperature collapse: $H$ against $T/(GM)$ for several $M$; and its break.

    Without background, $U \propto GM$, so the curves coincide exactly (formalism §4). With the
    background of the cloud's own field
    ([`background_energies`][infograv.model.background_energies], coupling `coupling`) they
    separate; the break is the largest spread of $H$ across masses at
    equal $T/(GM)$.
    """
    space = m.toy_clusters(seed, n_clusters=4, n_per_cluster=40, spread=0.35)
    phi = m.Potential(kernel, 2, epsilon=epsilon)
    xq = space.embedding[5] + 0.15
    bg = m.background_energies(space, m.Potential("plummer", 2, epsilon=0.3), coupling=coupling)
    ratios = jnp.geomspace(0.01, 10.0, n_ratios)
    rows0, rows1 = [], []
    for M in masses:
        U0 = m.energies(space, m.Query(xq, M), phi)
        U1 = U0 + bg
        T = ratios * M  # G = 1
        rows0.append(m.thermodynamics(jnp.broadcast_to(U0, T.shape + U0.shape), T).entropy)
        rows1.append(m.thermodynamics(jnp.broadcast_to(U1, T.shape + U1.shape), T).entropy)
    H0 = jnp.stack(rows0)
    H1 = jnp.stack(rows1)
    return _np({
        "settings": dict(seed=seed, masses=list(masses), kernel=kernel, epsilon=epsilon, G=1.0,
                         background="background_energies(plummer, epsilon=0.3)",
                         coupling=coupling, ratio_range=[0.01, 10.0], n_ratios=n_ratios),
        "ratio": ratios, "entropy_no_background": H0, "entropy_background": H1,
        "summary": {
            "max_spread_no_background": float(jnp.max(jnp.ptp(H0, axis=0))),
            "max_spread_background": float(jnp.max(jnp.ptp(H1, axis=0))),
        },
    })


def voids_experiment(
    *, seed: int = 3, temperatures: tuple[float, ...] = (0.1, 0.3, 1.0), mass: float = 1.0,
    epsilon: float = 0.1, n_queries: int = 400, knn: int = 10, percentile: float = 10.0,
    resolution: int = 70,
) -> dict:
    r"""Voids of $\rho_{\rm sem}$ and the hallucination rate against query density (formalism §7).

    Queries are drawn uniformly over the cloud's bounding box; for each, the probability of
    tokens outside its `knn` nearest neighbours at each temperature, against $\log\rho_{\rm
    sem}(x_q)$. Spearman's rank correlation summarises the trend.
    """
    space = m.toy_clusters(seed, n_clusters=5, n_per_cluster=40, spread=0.3)
    phi = m.Potential("plummer", 2, epsilon=epsilon)
    v = m.find_voids(space, percentile=percentile, n_balls=4, resolution=resolution)
    rng = np.random.default_rng(seed)
    lo = np.asarray(jnp.min(space.embedding, axis=0))
    hi = np.asarray(jnp.max(space.embedding, axis=0))
    xs = jnp.asarray(lo + rng.uniform(size=(n_queries, 2)) * (hi - lo))
    logrho = space.log_density(xs)
    U = m.energies(space, m.Query(xs, jnp.full((n_queries,), mass)), phi)
    inside = jax.vmap(lambda x: m.neighbourhood(space, x, "knn", k=knn))(xs)
    out_p, ent, rho_corr = [], [], []
    for T in temperatures:
        lp = m.log_probs(U, T)
        h = m.hallucination(lp, inside)
        out_p.append(h.outside_probability)
        ent.append(m.thermodynamics(U, T).entropy)
        rho_corr.append(_spearman(np.asarray(logrho), np.asarray(h.outside_probability)))
    return _np({
        "settings": dict(seed=seed, temperatures=list(temperatures), mass=mass, epsilon=epsilon,
                         kernel="plummer", n_queries=n_queries, neighbourhood=f"knn(k={knn})",
                         percentile=percentile, resolution=resolution, bandwidth="scott",
                         space="toy_clusters(n_clusters=5, n_per_cluster=40, spread=0.3)"),
        "grid": v.points, "log_density": v.log_density, "in_void": v.in_void,
        "void_threshold": v.threshold, "ball_centres": v.centres, "ball_radii": v.radii,
        "tokens": space.embedding, "queries": xs, "query_log_density": logrho,
        "outside_probability": jnp.stack(out_p), "entropy": jnp.stack(ent),
        "summary": {"spearman_logrho_vs_outside": dict(zip(map(str, temperatures), rho_corr))},
    })


def sensitivity_experiment(
    *, seed: int = 4, mass: float = 1.0, epsilon: float = 0.25, T: float = 0.3,
    n_grid: int = 11, temperatures: tuple[float, ...] = (0.05, 0.2, 0.5), n_path: int = 101,
) -> dict:
    r"""Fisher-metric ellipses over query space, and the bifurcation across a saddle (formalism §6).

    Two clusters; $g_F$ on an `n_grid`$^2$ grid of query positions. Along the segment joining the
    two cluster centres the top token flips at the point found by
    [`find_flip`][infograv.model.find_flip]; the probability of each cluster and $\mathrm{tr}\,g_F$
    along the path show the bifurcation.
    """
    space = m.toy_clusters(seed, n_clusters=2, n_per_cluster=30, spread=0.3, box=4.0,
                           min_separation=2.5)
    phi = m.Potential("plummer", 2, epsilon=epsilon)
    lo = jnp.min(space.embedding, axis=0) - 0.3
    hi = jnp.max(space.embedding, axis=0) + 0.3
    pts = m.grid(lo, hi, n_grid).reshape(-1, 2)
    g = jax.vmap(lambda x: m.fisher_metric(space, m.Query(x, mass), phi, T))(pts)
    ca = jnp.mean(space.embedding[space.labels == 0], axis=0)
    cb = jnp.mean(space.embedding[space.labels == 1], axis=0)
    flip = m.find_flip(space, m.Query(ca, mass), phi, cb, groups=space.labels)
    ts = jnp.linspace(0.0, 1.0, n_path)
    path = ca[None, :] + ts[:, None] * (cb - ca)[None, :]
    U = m.energies(space, m.Query(path, jnp.full((n_path,), mass)), phi)
    in_a = space.labels == 0
    pa, trace = [], []
    for Tk in temperatures:
        p = jnp.exp(m.log_probs(U, Tk))
        pa.append(jnp.sum(jnp.where(in_a, p, 0.0), axis=-1))
        gk = jax.vmap(lambda x, Tk=Tk: m.fisher_metric(space, m.Query(x, mass), phi, Tk))(path)
        trace.append(jnp.trace(gk, axis1=-2, axis2=-1))
    saddle = m.find_saddle(lambda x: phi.field(x, jnp.stack([ca, cb]), jnp.array([1.0, 1.0])),
                           0.5 * (ca + cb), throw=False)
    return _np({
        "settings": dict(seed=seed, mass=mass, epsilon=epsilon, kernel="plummer", T=T,
                         n_grid=n_grid, temperatures=list(temperatures), n_path=n_path,
                         space="toy_clusters(n_clusters=2, n_per_cluster=30, spread=0.3, "
                               "box=4, min_separation=2.5)"),
        "points": pts, "fisher": g, "eigenvalues": jnp.linalg.eigvalsh(g),
        "tokens": space.embedding, "labels": space.labels, "centre_a": ca, "centre_b": cb,
        "path_t": ts, "prob_cluster_a": jnp.stack(pa), "fisher_trace_path": jnp.stack(trace),
        "flip_t": flip.t, "flip_position": flip.position,
        "saddle_position_two_centres": saddle.position, "saddle_index": saddle.index,
        "summary": {"flip_t": flip.t, "flip_clusters": [flip.token_before, flip.token_after],
                    "max_fisher_trace_t": [float(ts[int(jnp.argmax(tr))]) for tr in trace]},
    })


def trajectory_experiment(
    *, seed: int = 5, mass: float = 2.0, epsilon: float = 0.2, T: float = 0.3,
    n_steps: int = 40, accrete_mass: float = 0.3,
) -> dict:
    r"""Token trajectories under the context rules `fixed`, `accrete`, `drift` (formalism §9).

    One key for all three, so differences come from the rule alone.
    """
    space = m.toy_clusters(seed, n_clusters=4, n_per_cluster=40, spread=0.35)
    phi = m.Potential("plummer", 2, epsilon=epsilon)
    lo = jnp.min(space.embedding, axis=0)
    hi = jnp.max(space.embedding, axis=0)
    xq = 0.5 * (lo + hi)
    key = jax.random.key(seed)
    runs = {}
    for rule in m.CONTEXT_RULES:
        tr = m.generate(key, space, m.Query(xq, mass), phi, T, n_steps, rule=rule,
                        accrete_mass=accrete_mass)
        labels = np.asarray(space.labels)[np.asarray(tr.tokens)]
        runs[rule] = {"tokens": tr.tokens, "positions": tr.positions, "centres": tr.centres,
                      "entropy": tr.entropies, "clusters_visited": int(len(np.unique(labels))),
                      "distinct_tokens": int(len(np.unique(np.asarray(tr.tokens))))}
    return _np({
        "settings": dict(seed=seed, mass=mass, epsilon=epsilon, kernel="plummer", T=T,
                         n_steps=n_steps, accrete_mass=accrete_mass, query=np.asarray(xq),
                         space="toy_clusters(n_clusters=4, n_per_cluster=40, spread=0.35)"),
        "tokens": space.embedding, "labels": space.labels, "query": xq, "runs": runs,
        "summary": {r: {"clusters_visited": runs[r]["clusters_visited"],
                        "distinct_tokens": runs[r]["distinct_tokens"],
                        "mean_entropy": float(np.mean(np.asarray(runs[r]["entropy"])))}
                    for r in runs},
    })


# ---------------------------------------------------------------------------------- figures

def _fig_potential_well(data: dict, out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    g, phi = data["grid"], data["phi"]
    with paper_style():
        fig = plt.figure(figsize=(7.4, 3.3))
        ax = fig.add_subplot(1, 2, 1, projection="3d")
        ax.set_box_aspect(None, zoom=0.85)
        ax.plot_surface(g[..., 0], g[..., 1], phi, cmap="viridis", linewidth=0,
                        antialiased=True, rcount=60, ccount=60)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_zlabel(r"$\Phi$", labelpad=1)
        ax.set_title("potential well of the query")
        ax.view_init(elev=28, azim=-60)
        ax2 = fig.add_subplot(1, 2, 2)
        cs = ax2.contourf(g[..., 0], g[..., 1], phi, levels=20, cmap="viridis")
        ax2.contour(g[..., 0], g[..., 1], phi, levels=20, colors="k", linewidths=0.3)
        p = data["probability"]
        ax2.scatter(data["tokens"][:, 0], data["tokens"][:, 1], s=4 + 200 * p / p.max(),
                    c="white", edgecolors="k", linewidths=0.4, label="tokens (size ∝ P)")
        ax2.plot(*data["query"], marker="*", color="red", ms=10, ls="", label="query")
        ax2.set_aspect("equal")
        ax2.set_xlabel("$x_1$")
        ax2.set_ylabel("$x_2$")
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=6,
                   frameon=False)
        fig.colorbar(cs, ax=ax2, label=r"$\Phi$")
        s = data["settings"]
        ax2.set_title(f"{s['kernel']}, M={s['mass']}, ε={s['epsilon']}, T={s['T']}")
        save_figure(fig, out / FIGURE_STEMS[0])
    write_csv(out / f"{FIGURE_STEMS[0]}_grid.csv", {
        "x1": g[..., 0].ravel(), "x2": g[..., 1].ravel(), "phi": phi.ravel()})
    write_csv(out / f"{FIGURE_STEMS[0]}_tokens.csv", {
        "x1": data["tokens"][:, 0], "x2": data["tokens"][:, 1], "cluster": data["labels"],
        "probability": data["probability"]})
    write_dataset_json(out / f"{FIGURE_STEMS[0]}.json", data, query=data["query"])


def _fig_temperature(data: dict, out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    T = data["T"]
    with paper_style():
        fig, axs = plt.subplots(1, 3, figsize=(7.4, 2.4))
        axs[0].semilogx(T, data["entropy"], label="$H$ (nats)")
        axs[0].axhline(data["summary"]["log_N"], color="grey", ls=":", lw=0.8, label=r"$\ln N$")
        tw = axs[0].twinx()
        tw.semilogx(T, data["top1"], ls="--", color="C1", label="top-1 probability")
        tw.set_ylabel("top-1 probability", color="C1")
        tw.spines["right"].set_visible(True)
        axs[0].set_xlabel("$T$")
        axs[0].set_ylabel("$H$ (nats)")
        h1, l1 = axs[0].get_legend_handles_labels()
        h2, l2 = tw.get_legend_handles_labels()
        axs[0].legend(h1 + h2, l1 + l2, fontsize=6, loc="center left")
        axs[0].set_title("entropy and top-1")
        axs[1].semilogx(T, data["distinct"], marker=".", ms=3)
        axs[1].set_xlabel("$T$")
        axs[1].set_ylabel(f"distinct tokens in {data['settings']['n_samples']} draws")
        axs[1].set_title("sample diversity")
        axs[2].loglog(T, data["dHdT_exact"], label=r"exact $\mathrm{Var}(U)/T^3$", lw=2.2,
                      color="0.7")
        axs[2].loglog(T, data["dHdT_numeric"], ls="--", label="finite difference")
        axs[2].loglog(T, data["dHdT_autodiff"], ls=":", label="autodiff")
        axs[2].set_xlabel("$T$")
        axs[2].set_ylabel("$dH/dT$")
        axs[2].legend(fontsize=6)
        axs[2].set_title("exact identity")
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[1])
    write_csv(out / f"{FIGURE_STEMS[1]}.csv", {k: data[k] for k in (
        "T", "entropy", "top1", "distinct", "dHdT_exact", "dHdT_autodiff", "dHdT_numeric")})
    write_dataset_json(out / f"{FIGURE_STEMS[1]}.json", data)


def _fig_collapse(data: dict, out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    r = data["ratio"]
    masses = data["settings"]["masses"]
    with paper_style():
        fig, axs = plt.subplots(1, 2, figsize=(6.2, 2.4), sharey=True)
        for i, M in enumerate(masses):
            axs[0].semilogx(r, data["entropy_no_background"][i], lw=1.0 + 0.6 * (len(masses) - i),
                            alpha=0.8, label=f"M={M}")
            axs[1].semilogx(r, data["entropy_background"][i], label=f"M={M}")
        axs[0].set_title("single query: curves coincide")
        axs[1].set_title(f"with background (λ={data['settings']['coupling']}): break")
        for ax in axs:
            ax.set_xlabel(r"$T/(GM)$")
        axs[0].set_ylabel("$H$ (nats)")
        axs[0].legend(fontsize=6)
        s = data["summary"]
        axs[1].text(0.03, 0.95, f"max spread {s['max_spread_background']:.3f} nats",
                    transform=axs[1].transAxes, va="top", fontsize=7)
        axs[0].text(0.03, 0.95, f"max spread {s['max_spread_no_background']:.1e} nats",
                    transform=axs[0].transAxes, va="top", fontsize=7)
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[2])
    cols = {"T_over_GM": r}
    for i, M in enumerate(masses):
        cols[f"H_M{M}_no_background"] = data["entropy_no_background"][i]
        cols[f"H_M{M}_background"] = data["entropy_background"][i]
    write_csv(out / f"{FIGURE_STEMS[2]}.csv", cols)
    write_dataset_json(out / f"{FIGURE_STEMS[2]}.json", data)


def _fig_voids(data: dict, out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    from ..plot import paper_style, save_figure

    pts, ld = data["grid"], data["log_density"]
    n = int(round(np.sqrt(len(ld))))
    X, Y = pts[:, 0].reshape(n, n), pts[:, 1].reshape(n, n)
    with paper_style():
        fig, axs = plt.subplots(1, 2, figsize=(7.0, 3.0))
        ax = axs[0]
        cs = ax.contourf(X, Y, ld.reshape(n, n), levels=20, cmap="magma")
        ax.contour(X, Y, ld.reshape(n, n), levels=[np.log(data["void_threshold"])],
                   colors="cyan", linewidths=0.8)
        ax.scatter(data["tokens"][:, 0], data["tokens"][:, 1], s=2, c="white")
        for c, rad in zip(data["ball_centres"], data["ball_radii"]):
            ax.add_patch(Circle(c, rad, fill=False, ec="lime", lw=1.0))
        ax.set_aspect("equal")
        ax.set_xlim(X.min(), X.max())
        ax.set_ylim(Y.min(), Y.max())
        ax.set_title("density; voids outside the cyan level; empty balls", fontsize=8)
        fig.colorbar(cs, ax=ax, label=r"$\log\rho_{\rm sem}$")
        ax = axs[1]
        x = data["query_log_density"]
        order = np.argsort(x)
        bins = np.array_split(order, 12)
        for i, T in enumerate(data["settings"]["temperatures"]):
            y = data["outside_probability"][i]
            ax.scatter(x, y, s=2, alpha=0.25, color=f"C{i}")
            ax.plot([x[b].mean() for b in bins], [y[b].mean() for b in bins], color=f"C{i}",
                    marker="o", ms=3, label=f"T={T}")
        ax.set_xlabel(r"$\log\rho_{\rm sem}(x_q)$")
        ax.set_ylabel(f"P(outside {data['settings']['neighbourhood']})")
        ax.set_title("hallucination proxy vs query density")
        ax.legend(fontsize=6)
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[3])
    cols = {"x1": data["queries"][:, 0], "x2": data["queries"][:, 1],
            "log_density": data["query_log_density"]}
    for i, T in enumerate(data["settings"]["temperatures"]):
        cols[f"outside_T{T}"] = data["outside_probability"][i]
        cols[f"entropy_T{T}"] = data["entropy"][i]
    write_csv(out / f"{FIGURE_STEMS[3]}.csv", cols)
    write_dataset_json(out / f"{FIGURE_STEMS[3]}.json", data,
                       void_threshold_density=data["void_threshold"],
                       ball_centres=data["ball_centres"], ball_radii=data["ball_radii"],
                       void_fraction_of_grid=float(np.mean(data["in_void"])))


def _fig_sensitivity(data: dict, out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    from ..plot import paper_style, save_figure

    pts, g, ev = data["points"], data["fisher"], data["eigenvalues"]
    n = data["settings"]["n_grid"]
    step = (pts[:, 0].max() - pts[:, 0].min()) / (n - 1)
    smax = np.sqrt(ev.max())
    with paper_style():
        fig, axs = plt.subplots(1, 2, figsize=(7.0, 3.0))
        ax = axs[0]
        ax.scatter(data["tokens"][:, 0], data["tokens"][:, 1], s=3, c=data["labels"],
                   cmap="coolwarm", zorder=1)
        for x, gi in zip(pts, g):
            w, V = np.linalg.eigh(gi)
            w = np.sqrt(np.maximum(w, 0)) / smax * 0.48 * step
            ang = np.degrees(np.arctan2(V[1, 1], V[0, 1]))
            ax.add_patch(Ellipse(x, 2 * w[1], 2 * w[0], angle=ang, fc="C2", alpha=0.5, ec="k",
                                 lw=0.3, zorder=2))
        ax.plot(*np.stack([data["centre_a"], data["centre_b"]]).T, "k--", lw=0.6)
        ax.plot(*data["flip_position"], marker="x", color="k", ms=7)
        ax.set_aspect("equal")
        ax.set_title(f"Fisher ellipses (axes ∝ √eigenvalues), T={data['settings']['T']}")
        ax = axs[1]
        ts = data["path_t"]
        ax2 = ax.twinx()
        for i, T in enumerate(data["settings"]["temperatures"]):
            ax.plot(ts, data["prob_cluster_a"][i], color=f"C{i}", label=f"T={T}")
            ax2.semilogy(ts, data["fisher_trace_path"][i], color=f"C{i}", ls=":", lw=0.9)
        ax.axvline(data["flip_t"], color="k", lw=0.6, ls="--")
        ax.set_xlabel("position along the path (cluster A → B)")
        ax.set_ylabel("P(token in cluster A)  (solid)")
        ax2.set_ylabel(r"tr $g_F$  (dotted)")
        ax2.spines["right"].set_visible(True)
        ax.legend(fontsize=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
                  frameon=False)
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[4])
    write_csv(out / f"{FIGURE_STEMS[4]}_grid.csv", {
        "x1": pts[:, 0], "x2": pts[:, 1], "g11": g[:, 0, 0], "g12": g[:, 0, 1],
        "g22": g[:, 1, 1], "lambda_min": ev[:, 0], "lambda_max": ev[:, 1]})
    cols = {"t": data["path_t"]}
    for i, T in enumerate(data["settings"]["temperatures"]):
        cols[f"P_cluster_a_T{T}"] = data["prob_cluster_a"][i]
        cols[f"trace_gF_T{T}"] = data["fisher_trace_path"][i]
    write_csv(out / f"{FIGURE_STEMS[4]}_path.csv", cols)
    write_dataset_json(out / f"{FIGURE_STEMS[4]}.json", data,
                       flip_position=data["flip_position"],
                       saddle_position_two_centres=data["saddle_position_two_centres"],
                       saddle_index=data["saddle_index"])


def _fig_trajectories(data: dict, out: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    with paper_style():
        fig, axs = plt.subplots(1, 3, figsize=(7.0, 2.5), sharex=True, sharey=True)
        for ax, (rule, run) in zip(axs, data["runs"].items()):
            ax.scatter(data["tokens"][:, 0], data["tokens"][:, 1], s=2, c="0.7")
            pos = run["positions"]
            ax.plot(pos[:, 0], pos[:, 1], "-", color="C0", lw=0.5, alpha=0.6)
            ax.scatter(pos[:, 0], pos[:, 1], s=6, c=np.arange(len(pos)), cmap="viridis",
                       zorder=3)
            if rule == "drift":
                ax.plot(run["centres"][:, 0], run["centres"][:, 1], color="red", lw=1.0,
                        label="query centre")
                ax.legend(fontsize=6, loc="lower right")
            ax.plot(*data["query"], marker="*", color="red", ms=8)
            ax.set_title(f"{rule}: {run['distinct_tokens']} distinct tokens, "
                         f"clusters: {run['clusters_visited']}", fontsize=8)
            ax.set_aspect("equal")
        fig.tight_layout()
        save_figure(fig, out / FIGURE_STEMS[5])
    cols: dict[str, Any] = {"step": np.arange(data["settings"]["n_steps"])}
    for rule, run in data["runs"].items():
        cols[f"{rule}_token"] = run["tokens"]
        cols[f"{rule}_x1"] = run["positions"][:, 0]
        cols[f"{rule}_x2"] = run["positions"][:, 1]
        cols[f"{rule}_centre_x1"] = run["centres"][:, 0]
        cols[f"{rule}_centre_x2"] = run["centres"][:, 1]
        cols[f"{rule}_entropy"] = run["entropy"]
    write_csv(out / f"{FIGURE_STEMS[5]}.csv", cols)
    write_dataset_json(out / f"{FIGURE_STEMS[5]}.json", data)


def paper_section(out: pathlib.Path, progress: Callable[[str], None]) -> None:
    """Run the six phenomena experiments on their defaults; write figures, CSV and JSON to `out`.

    Files: `<stem>.pdf`, `<stem>.png`, `<stem>*.csv`, `<stem>.json` for each stem in
    `FIGURE_STEMS`, and `phenomena_summary.json` with every experiment's summary.
    """
    out = pathlib.Path(out)
    steps: list[tuple[str, Callable[[], dict[str, Any]], Callable[[dict[str, Any], pathlib.Path],
                                                                   None]]] = [
        ("potential well", potential_well_experiment, _fig_potential_well),
        ("entropy, top-1 and diversity against T", temperature_experiment, _fig_temperature),
        ("mass-temperature collapse and its break", collapse_experiment, _fig_collapse),
        ("voids and hallucination rate", voids_experiment, _fig_voids),
        ("Fisher sensitivity and bifurcation", sensitivity_experiment, _fig_sensitivity),
        ("trajectories under three context rules", trajectory_experiment, _fig_trajectories),
    ]
    summary = {}
    for i, (title, run, fig) in enumerate(steps, 1):
        progress(f"phenomena {i}/{len(steps)}: {title}")
        data = run()
        fig(data, out)
        summary[FIGURE_STEMS[i - 1]] = {"settings": data["settings"], "summary": data["summary"]}
    write_json(out / "phenomena_summary.json", summary)
    progress("phenomena: done")
