"""The phenomena paper section: files written, and the numbers behind the figures."""

import json

import numpy as np
import pytest

from infograv.experiments._phenomena import FIGURE_STEMS, paper_section


def test_paper_section_writes_figures_and_numbers(tmp_path):
    messages = []
    paper_section(tmp_path, messages.append)
    assert messages[-1] == "phenomena: done" and len(messages) == 7
    for stem in FIGURE_STEMS:
        for ext in ("pdf", "png", "json"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 0, (stem, ext)
        assert list(tmp_path.glob(f"{stem}*.csv")), stem
    s = json.loads((tmp_path / "phenomena_summary.json").read_text())
    # every experiment records its settings
    assert all("seed" in v["settings"] for v in s.values())
    # exact identity dH/dT = Var(U)/T^3: autodiff to round-off, central difference to O(h^2)
    t = s["phenomena_temperature"]["summary"]
    assert t["max_rel_err_autodiff_vs_exact"] < 1e-8 and t["max_rel_err_numeric_vs_exact"] < 1e-4
    assert t["entropy_monotone"]
    # mass-temperature collapse is exact without background, broken with it
    c = s["phenomena_collapse"]["summary"]
    assert c["max_spread_no_background"] < 1e-10 and c["max_spread_background"] > 0.05
    # hallucination proxy falls as the query's density rises, at every temperature
    v = s["phenomena_voids"]["summary"]["spearman_logrho_vs_outside"]
    assert all(r < -0.5 for r in v.values())
    # the top cluster flips between the two cluster centres (near the middle by near-symmetry)
    f = s["phenomena_sensitivity"]["summary"]
    assert 0.2 < f["flip_t"] < 0.8 and f["flip_clusters"][0] != f["flip_clusters"][1]
    # the query's well captures its own cluster
    assert s["phenomena_potential_well"]["summary"]["probability_in_query_cluster"] > 0.9
    # CSV columns match the JSON settings
    head = (tmp_path / "phenomena_collapse.csv").read_text().splitlines()[0].split(",")
    assert len(head) == 1 + 2 * len(s["phenomena_collapse"]["settings"]["masses"])
    rows = np.loadtxt(tmp_path / "phenomena_temperature.csv", delimiter=",", skiprows=1)
    assert rows.shape == (s["phenomena_temperature"]["settings"]["n_temperatures"], 7)


def test_spearman_matches_scipy():
    # Reference: scipy.stats.spearmanr (average ranks for ties).
    from scipy.stats import spearmanr

    from infograv.experiments._phenomena import _spearman

    r = np.random.default_rng(1)
    a = np.round(r.normal(size=80), 1)  # rounding makes ties
    b = a + r.normal(size=80)
    assert _spearman(a, b) == pytest.approx(spearmanr(a, b)[0], rel=1e-12)
