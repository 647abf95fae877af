"""The figures of the empirical study (`val_*.pdf/png`), drawn from its results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_figures"]


def write_figures(out: Path, results: Mapping[str, Any], embedding: np.ndarray | None = None,
                  heldout: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Draw the study's figures into `out` (`val_fit`, `val_loss`, `val_potential`,
    `val_residuals`, `val_dims`, `val_voids`, … as PDF and PNG).

    `embedding` and `heldout` (`(logp, hidden)`) are needed for the fitted potentials over the
    distance histogram and the residuals by token rank."""
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    model = results.get("info", {}).get("model", "the language model")
    with paper_style():
        fit = results["fit"]
        primary = fit["primary_map"]
        fams = fit["maps"][primary]
        names = list(fams) + ["dot"]
        kl = [(fams[n]["heldout_kl"]["mean"], *fams[n]["heldout_kl"]["ci"]) for n in fams] + [
            (fit["baseline_dot"]["heldout_kl"]["mean"], *fit["baseline_dot"]["heldout_kl"]["ci"])]
        t1 = [fams[n]["top1_agreement"] for n in fams] + [fit["baseline_dot"]["top1_agreement"]]
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.4))
        xs = np.arange(len(names))
        for ax, vals, lab in ((axes[0], kl, "held-out mean KL (nats)"),
                              (axes[1], t1, "held-out top-1 agreement")):
            est = np.array([c[0] for c in vals])
            err = np.array([[c[0] - c[1] for c in vals], [c[2] - c[0] for c in vals]])
            ax.bar(xs, est, color=["C0"] * (len(names) - 1) + ["0.6"])
            ax.errorbar(xs, est, yerr=np.maximum(err, 0), fmt="none", ecolor="k", capsize=2)
            ax.set_xticks(xs, [n if n != "dot" else "harmonic\n(dot, unfitted)" for n in names],
                          rotation=30, ha="right")
            ax.set_ylabel(lab)
        axes[0].set_yscale("log")
        axes[1].set_ylim(0, 1)
        fig.suptitle(f"Kernel fits to {model} next-token distributions (95 % CI, {primary} map)")
        save_figure(fig, out / "val_fit")

        fig, axes = plt.subplots(1, len(fams), figsize=(2.3 * len(fams), 2.3), squeeze=False)
        for ax, (name, f) in zip(axes[0], fit["fits"][primary].items(), strict=True):
            for st in f.starts:
                ls = np.asarray(st["losses"], dtype=np.float64)
                if len(ls):
                    # the clause of the convergence rule that stopped the start (older
                    # saved fits carry only `converged`)
                    rule = st.get("rule", "converged" if st["converged"] else "not conv.")
                    ax.plot(np.arange(1, len(ls) + 1), ls, lw=1, marker="o", ms=2,
                            label=f"{st['label']} ({rule})")
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_title(name)
            ax.set_xlabel("L-BFGS step")
            ax.legend(frameon=False, fontsize=6)
        axes[0][0].set_ylabel("training mean KL (nats)")
        save_figure(fig, out / "val_loss")

        if embedding is not None and heldout is not None:
            _potential_and_residuals(out, fit, embedding, heldout, plt, save_figure)
        dims = fit.get("dims", {})
        if any(len(v) > 1 for v in dims.values()):
            fig, ax = plt.subplots(figsize=(3.4, 2.6))
            for name, per_d in dims.items():
                ds = sorted(per_d, key=int)
                est = np.array([per_d[d]["heldout_kl"]["mean"] for d in ds])
                lo = np.array([per_d[d]["heldout_kl"]["ci"][0] for d in ds])
                hi = np.array([per_d[d]["heldout_kl"]["ci"][1] for d in ds])
                ax.errorbar([int(d) for d in ds], est, yerr=[np.maximum(est - lo, 0),
                                                              np.maximum(hi - est, 0)],
                            marker="o", capsize=2, label=name)
            if "harmonic" in fams:
                ax.axhline(fams["harmonic"]["heldout_kl"]["mean"], color="k", ls=":",
                           label="harmonic")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("kernel dimension d")
            ax.set_ylabel("held-out mean KL (nats)")
            ax.legend(frameon=False, fontsize=7)
            save_figure(fig, out / "val_dims")

        v = results["voids"]
        panels = [("log_density", "density_entropy", "log density of token cloud at h"),
                  ("input_log_density", "input_density_entropy",
                   "log density at the input tokens")]
        panels = [pn for pn in panels if pn[0] in v]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.6), squeeze=False)
        cats = np.asarray(v["category"] if v["category"] is not None else [""] * len(v["entropy"]),
                          dtype=object)
        for ax, (key, ck, lab) in zip(axes[0], panels, strict=True):
            for c in sorted(set(cats)):
                mk = cats == c
                ax.scatter(v[key][mk], v["entropy"][mk], s=6, label=c or "all")
            ax.set_xlabel(lab)
            ax.set_ylabel("next-token entropy (nats)")
            ax.set_title(_corr_title(v[ck]))
        axes[0][0].legend(markerscale=2, frameon=False, fontsize=7)
        save_figure(fig, out / "val_voids")

        s = results.get("sensitivity")
        if s is not None:
            _sensitivity_figure(out, s, plt, save_figure)
        _rest(out, results, plt, save_figure)


def _corr_title(c: Mapping[str, Any]) -> str:
    if not c.get("estimable", False):
        return f"not estimable (n = {c.get('n', 0)})"
    return f"Spearman {c['estimate']:+.2f} [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]"


def _sensitivity_figure(out: Path, s: Mapping[str, Any], plt: Any, save_figure: Any) -> None:
    if True:
        fig, ax = plt.subplots(figsize=(3.4, 3.0))
        tiny = 1e-8
        kinds = np.asarray(s["kind"]) if s["kind"] is not None else None
        for kind, mark in (("substitution", "o"), ("paraphrase", "^")):
            mk = kinds == kind if kinds is not None else np.ones(len(s["real_kl"]), bool)
            ax.scatter(s["real_kl"][mk] + tiny, s["fisher_pred"][mk] + tiny, s=8, marker=mark,
                       label=f"{kind}: fitted {s['family']}")
            ax.scatter(s["real_kl"][mk] + tiny, s["dot_fisher_pred"][mk] + tiny, s=8,
                       marker=mark, facecolors="none", edgecolors="0.5",
                       label=f"{kind}: real last layer")
        lo = min(np.min(s["real_kl"]), np.min(s["fisher_pred"])) + tiny
        hi = max(np.max(s["real_kl"]), np.max(s["fisher_pred"]),
                 np.max(s["dot_fisher_pred"])) + tiny
        ax.plot([lo, hi], [lo, hi], "k:", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("real KL(P_a || P_b) (nats)")
        ax.set_ylabel(r"Fisher prediction $\frac{1}{2}\delta^T g_F \delta$")
        ax.set_title(_corr_title(s["real_vs_pred"]))
        ax.legend(frameon=False, fontsize=6)
        save_figure(fig, out / "val_sensitivity")



def _rest(out: Path, results: Mapping[str, Any], plt: Any, save_figure: Any) -> None:
    if True:
        t = results["temperature"]
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.4))
        temps = t["temperatures"]
        ci = np.array(t["distinct2_by_T"])
        axes[0].errorbar(temps, ci[:, 0], yerr=[ci[:, 0] - ci[:, 1], ci[:, 2] - ci[:, 0]],
                         marker="o", capsize=2)
        axes[0].set_xlabel("temperature T")
        axes[0].set_ylabel("distinct-2 of samples")
        if "first_token_entropy" in t:
            ent = t["first_token_entropy"]
            axes[1].plot(temps, ent.T, color="0.7", lw=0.6)
            axes[1].plot(temps, ent.mean(axis=0), "k-o", lw=1.5, label="mean")
            axes[1].set_xlabel("temperature T")
            axes[1].set_ylabel("first-token entropy (nats)")
            axes[1].legend(frameon=False)
        save_figure(fig, out / "val_temperature")

        m = results["mass"]
        panels = [("lm_surprisal", "lm_surprisal mass (bits)", "lm_entropy")]
        if m.get("wordfreq_available"):
            panels.append(("wordfreq_surprisal", "word-frequency mass (bits)",
                           "wordfreq_entropy"))
        fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.6),
                                 squeeze=False)
        cats = np.asarray(m["category"] if m["category"] is not None else
                          [""] * len(m["entropy"]), dtype=object)
        for ax, (key, lab, ck) in zip(axes[0], panels, strict=True):
            for c in sorted(set(cats)):
                mk = cats == c
                ax.scatter(m[key][mk], m["entropy"][mk], s=6, label=c or "all")
            ax.set_xlabel(lab)
            ax.set_ylabel("next-token entropy (nats)")
            ax.set_title(_corr_title(m[ck]))
        axes[0][0].legend(markerscale=2, frameon=False)
        save_figure(fig, out / "val_mass")

        runs = results["trajectories"]["runs"]
        fig, axes = plt.subplots(1, len(runs), figsize=(3.4 * len(runs), 3.0), squeeze=False)
        for ax, run in zip(axes[0], runs, strict=True):
            hd = run["hidden_2d"]
            ax.plot(hd[:, 0], hd[:, 1], "-o", ms=3, color="C0", label="observed hidden states")
            tk = run["tokens_2d"]
            ax.scatter(tk[:, 0], tk[:, 1], s=14, marker="s", color="C1",
                       label="generated tokens")
            fr = run["free_2d"]
            ax.plot(fr[:, 0], fr[:, 1], "--x", ms=4, color="C2",
                    label="predicted (drift, fitted kernel)")
            fo = run["forced_2d"]
            ax.scatter(fo[:, 0], fo[:, 1], s=14, marker="+", color="C3",
                       label="predicted (teacher-forced)")
            ax.annotate("start", hd[0], fontsize=7)
            title = run["prompt"] if len(run["prompt"]) < 40 else run["prompt"][:37] + "..."
            ax.set_title(f"{title}\nagreement: forced {run['forced_agreement']:.2f}, "
                         f"free {run['free_agreement']:.2f}", fontsize=7)
            ax.set_xlabel("PC 1 of unit directions")
            ax.set_ylabel("PC 2 of unit directions")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=4, frameon=False, fontsize=7,
                   bbox_to_anchor=(0.5, 0.0))
        save_figure(fig, out / "val_trajectory")


def _potential_and_residuals(out: Path, fit: Mapping[str, Any], embedding: np.ndarray,
                             heldout: tuple[np.ndarray, np.ndarray], plt: Any,
                             save_figure: Any) -> None:
    """The fitted Phi(r) over the histogram of distances from x_q to each held-out prompt's 32
    most likely tokens, and the mean log(Q/P) by the real rank of a token."""
    import jax.numpy as jnp

    lp, h = heldout
    fits = fit["fits"][fit["primary_map"]]
    top = np.argsort(-lp, axis=1)[:, :32]
    fig, axes = plt.subplots(1, len(fits), figsize=(2.6 * len(fits), 2.6), squeeze=False)
    fig.subplots_adjust(wspace=0.55)
    for j, (ax, (name, f)) in enumerate(zip(axes[0], fits.items(), strict=True)):
        q = f.query_positions(h)
        r = np.sqrt(np.sum((q[:, None, :] - embedding[top] / f.unit) ** 2, axis=-1)).reshape(-1)
        ax.hist(r, bins=25, color="0.8", density=True)
        ax.set_xlabel(f"r (units of {f.unit:.3g})")
        tw = ax.twinx()
        grid = np.linspace(max(r.min() * 0.8, 1e-6), r.max() * 1.2, 200)
        phi = np.asarray(f.potential.from_sq_distance(jnp.asarray(grid**2), 1.0))
        tw.plot(grid, phi - np.median(phi), color="C0")
        if j == len(fits) - 1:
            tw.set_ylabel(r"$\Phi(r) - $ median (nats)")
        tw.tick_params(labelsize=6)
        ax.set_title(name)
        ax.set_yticks([])
    save_figure(fig, out / "val_potential")

    ranks = np.argsort(np.argsort(-lp, axis=1), axis=1)
    edges = np.unique(np.round(np.logspace(0, np.log10(lp.shape[1]), 30)).astype(int)) - 1
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    for name, f in fits.items():
        lq = f.log_probs(h, embedding)
        res = lq - lp
        centres, means = [], []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            m = (ranks >= lo) & (ranks < hi)
            if m.any():
                centres.append(0.5 * (lo + hi) + 1)
                means.append(float(np.mean(res[m])))
        ax.plot(centres, means, marker=".", label=name)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("rank of the token in the real distribution")
    ax.set_ylabel(r"mean $\log Q_i - \log P_i$ (held-out)")
    ax.legend(frameon=False, fontsize=7)
    save_figure(fig, out / "val_residuals")
