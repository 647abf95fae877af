"""The figures of the empirical study (`val_*.pdf/png`), drawn from its results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_figures"]


def write_figures(out: Path, results: Mapping[str, Any]) -> None:
    """Draw the study's figures into `out` (`val_fit`, `val_voids`, … as PDF and PNG)."""
    import matplotlib.pyplot as plt

    from ..plot import paper_style, save_figure

    with paper_style():
        fit = results["fit"]
        names = list(fit["families"]) + ["dot"]
        kl = [fit["families"][n]["mean_kl"] for n in fit["families"]] + [
            fit["baseline_dot"]["mean_kl"]]
        t1 = [fit["families"][n]["top1_agreement"] for n in fit["families"]] + [
            fit["baseline_dot"]["top1_agreement"]]
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.4))
        xs = np.arange(len(names))
        for ax, vals, lab in ((axes[0], kl, "held-out mean KL (nats)"),
                              (axes[1], t1, "held-out top-1 agreement")):
            est = np.array([c[0] for c in vals])
            err = np.array([[c[0] - c[1] for c in vals], [c[2] - c[0] for c in vals]])
            ax.bar(xs, est, color=["C0"] * (len(names) - 1) + ["0.6"])
            ax.errorbar(xs, est, yerr=err, fmt="none", ecolor="k", capsize=2)
            ax.set_xticks(xs, [n if n != "dot" else "harmonic\n(dot, unfitted)" for n in names],
                          rotation=30, ha="right")
            ax.set_ylabel(lab)
        axes[1].set_ylim(0, 1)
        fig.suptitle("Kernel fits to SmolLM2 next-token distributions (95 % CI)")
        save_figure(fig, out / "val_fit")

        v = results["voids"]
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.6))
        cats = np.asarray(v["category"])
        for c in sorted(set(cats)):
            mk = cats == c
            axes[0].scatter(v["log_density"][mk], v["entropy"][mk], s=6, label=c)
            axes[1].scatter(v["log_density"][mk], v["outside_mass"][mk], s=6, label=c)
        for ax, key, lab in ((axes[0], "spearman_density_entropy", "next-token entropy (nats)"),
                             (axes[1], "spearman_density_outside", "mass outside neighbourhood")):
            c = v[key]
            ax.set_xlabel("log density of token cloud at h")
            ax.set_ylabel(lab)
            ax.set_title(f"Spearman {c[0]:+.2f} [{c[1]:+.2f}, {c[2]:+.2f}]")
        axes[0].legend(markerscale=2, frameon=False)
        save_figure(fig, out / "val_voids")

        s = results["sensitivity"]
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
        c = s["spearman_real_vs_pred"]
        ax.set_title(f"Spearman {c[0]:+.2f} [{c[1]:+.2f}, {c[2]:+.2f}]")
        ax.legend(frameon=False, fontsize=6)
        save_figure(fig, out / "val_sensitivity")

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
        panels = [("lm_surprisal", "lm_surprisal mass (bits)", "spearman_lm_surprisal_entropy")]
        if m.get("wordfreq_available"):
            panels.append(("wordfreq_surprisal", "word-frequency mass (bits)",
                           "spearman_wordfreq_entropy"))
        fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.6),
                                 squeeze=False)
        cats = np.asarray(m["category"])
        for ax, (key, lab, ck) in zip(axes[0], panels, strict=True):
            for c in sorted(set(cats)):
                mk = cats == c
                ax.scatter(m[key][mk], m["entropy"][mk], s=6, label=c)
            c = m[ck]
            ax.set_xlabel(lab)
            ax.set_ylabel("next-token entropy (nats)")
            ax.set_title(f"Spearman {c[0]:+.2f} [{c[1]:+.2f}, {c[2]:+.2f}]")
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
