"""The real-geodesic study's measures (`infograv.experiments._real_geodesics`) on trajectories
whose answers are known: points on one geodesic are perfectly geodesic in their metric and
continued exactly, straight lines are geodesic in the flat metric."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infograv.experiments._real_geodesics import (
    METRICS,
    RealGeodesicSettings,
    load_fit,
    summarise,
    trajectory_measures,
)
from infograv.geodesic import geodesic
from infograv.geometry import ConformalMetric, FunctionMetric

SETTINGS = RealGeodesicSettings(n_steps=12, max_steps=300, exp_steps=32, n_boot=200)


def _well(x):
    return -0.6 * jnp.exp(-jnp.sum((x - jnp.array([0.3, -0.2, 0.1])) ** 2))


def test_points_on_a_geodesic_are_geodesic_and_continued_exactly():
    metric = ConformalMetric(_well, dim=3)
    x0, v0 = jnp.array([-1.0, 0.4, 0.0]), jnp.array([0.5, -0.2, 0.1])
    ts = np.arange(6) * 0.6
    pts = np.asarray(geodesic(metric, x0, v0, float(ts[-1]), ts=ts, rtol=1e-11,
                              atol=1e-11).xs)
    r = trajectory_measures(metric, pts, SETTINGS)
    assert r["converged"] and r["logmaps_converged"] == len(pts) + 1
    assert np.all(r["shoot_miss"] < 1e-2)
    assert abs(r["ratio"] - 1.0) < 1e-3
    assert r["deviation"] < 1e-2
    # the geodesic continuation beats linear extrapolation on a curved geodesic
    assert np.all(r["log_err_ratio"] < np.log(0.2))
    np.testing.assert_allclose(r["launch_end"], pts[-1], atol=2e-3)
    flat = trajectory_measures(None, pts, SETTINGS)
    assert flat["ratio"] > r["ratio"]


def test_a_straight_line_is_geodesic_in_the_flat_metric():
    pts = np.linspace(0.0, 1.0, 5)[:, None] * np.array([[1.0, 2.0, -1.0]]) + 0.3
    r = trajectory_measures(None, pts, SETTINGS)
    assert abs(r["ratio"] - 1.0) < 1e-12 and r["deviation"] < 1e-12
    np.testing.assert_allclose(r["err_lin"], 0.0, atol=1e-12)


def test_summary_verdicts_follow_the_rule():
    rng = np.random.default_rng(0)
    recs = []
    for _ in range(12):
        rec = {"kind": "generation", "prompt": "p"}
        for m in METRICS:
            better = m == "output"
            rec[m] = {"ratio": 1.05 if better else 1.5 + 0.1 * rng.random(),
                      "deviation": 0.1, "residual": 0.0, "converged": True,
                      "shoot_miss": np.zeros(5), "logmaps_converged": 5,
                      "log_err_ratio": np.full(3, -1.0 if better else 0.01 * rng.normal()),
                      "pred_converged": np.ones(3, bool), "launch_converged": True,
                      "capture": float(better or rng.random() < 0.2)}
        rec["euclidean"]["capture"] = 0.0
        recs.append(rec)
    s = summarise({"records": recs, "truncation_error": 0.0}, SETTINGS)["generation"]
    assert s["most_geodesic"] == "output"
    assert s["output"]["geodesicity_verdict"] == "more geodesic than the straight line"
    assert s["output"]["prediction_verdict"] == "predicts better than linear extrapolation"
    assert s["output"]["capture_verdict"] == "captures"
    assert s["density"]["prediction_verdict"] == "no difference from linear extrapolation"
    # an unconverged trajectory (a length ratio below 1 would come from one) is dropped, counted
    recs[0]["output"].update(ratio=0.3, converged=False, logmaps_converged=3)
    s = summarise({"records": recs, "truncation_error": [0.01]}, SETTINGS)["generation"]
    assert s["output"]["n_used"] == 11 and s["output"]["n_dropped"] == 1
    assert s["output"]["logmaps_converged"] == [58, 60]
    assert s["output"]["min_length_ratio"] > 1.0


def test_an_unconverged_log_map_is_flagged_by_its_shooting_residual():
    metric = ConformalMetric(_well, dim=3)
    x0, v0 = jnp.array([-1.0, 0.4, 0.0]), jnp.array([0.5, -0.2, 0.1])
    ts = np.arange(4) * 0.9
    pts = np.array(geodesic(metric, x0, v0, float(ts[-1]), ts=ts).xs)
    pts[1] += np.array([0.0, 0.4, 0.0])  # a detour: its segments bend
    good = trajectory_measures(metric, pts, SETTINGS)
    assert good["converged"]
    # one L-BFGS step leaves the discrete paths straight: the shooting check catches it
    bad = trajectory_measures(metric, pts, RealGeodesicSettings(n_steps=12, max_steps=1,
                                                                exp_steps=32, shoot_tol=1e-3))
    assert not bad["converged"] and bad["logmaps_converged"] < len(pts) + 1


def test_load_fit_reads_a_validation_folder_and_names_bad_input(tmp_path):
    import json

    folder = tmp_path / "fits" / "affine"
    folder.mkdir(parents=True)
    data = {"name": "plummer", "kernel": "plummer", "d": 3, "params": {"G": 2.0, "epsilon": 0.5},
            "query_map": "affine", "a": 1.5, "b": [0.1, 0.2], "c": None, "unit": 10.0,
            "train_kl": 0.1, "grad_norm": 0.0, "converged": True, "steps": 3}
    (folder / "plummer.json").write_text(json.dumps(data))
    fit = load_fit(tmp_path)
    assert fit.a == 1.5 and fit.unit == 10.0 and fit.b.tolist() == [0.1, 0.2]
    assert load_fit(fit) is fit
    assert load_fit(folder / "plummer.json").a == 1.5
    with pytest.raises(ValueError, match="fit: no fitted 'gaussian'"):
        load_fit(tmp_path, "gaussian")
    with pytest.raises(ValueError, match="fit: expected a PotentialFit"):
        load_fit(3.0)
    with pytest.raises(ValueError, match="kinds"):
        RealGeodesicSettings(kinds=("sideways",))


def test_figures_leave_out_what_failed_the_check(tmp_path):
    from infograv.experiments._real_geodesics import FIGURE_STEMS, _figures

    pts = np.linspace(0.0, 1.0, 5)[:, None] * np.array([[1.0, 2.0, -1.0]])
    pts[2] += 0.3
    recs = []
    for kind in ("generation", "depth"):
        for i in range(3):
            rec = {"kind": kind, "prompt": f"prompt {i}", "_points": pts}
            for m in METRICS:
                r = trajectory_measures(None, pts + 0.01 * i, SETTINGS)
                r["capture"] = 1.0
                rec[m] = r
            rec["output"].update(converged=False, pred_converged=np.zeros(3, bool))
            recs.append(rec)
    study = {"records": recs, "truncation_error": [0.05]}
    summary = summarise(study, SETTINGS)
    assert summary["generation"]["output"]["n_used"] == 0
    assert "not estimable" in summary["generation"]["output"]["geodesicity_verdict"]
    _figures(study, summary, tmp_path)
    for stem in FIGURE_STEMS:
        assert (tmp_path / f"{stem}.png").stat().st_size > 0


def test_output_log_maps_respect_the_fisher_rao_bound_that_the_midpoint_rule_breaks():
    # tokens A, B, C: from a state peaked on A to one peaked on B. Every path between them is at
    # least the simplex distance 2 arccos Σ √(P(a) P(b)) ≈ π long. The midpoint rule
    # (`path_energy`) lets a discrete path "tunnel" through states peaked on C, where the metric
    # at the segments' midpoints is tiny, and come out far shorter; the chords of the isometric
    # embedding (the study's discrete energy for the output metric) cannot.
    from infograv.experiments._real_geodesics import _fisher_rao_bound
    from infograv.geodesic import log_map
    from infograv.geometry import OutputMetric

    metric = OutputMetric(jnp.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]]), ridge=1e-6)
    pts = np.array([[0.6, 0.0], [-0.6, 0.0], [-0.6, 0.3]])
    bound = _fisher_rao_bound(metric, jnp.asarray(pts[:1]), jnp.asarray(pts[1:2]))[0]
    pa, pb = (np.exp(np.asarray(metric.log_prob(jnp.asarray(p)))) for p in pts[:2])
    assert abs(bound - 2 * np.arccos(np.sum(np.sqrt(pa * pb)))) < 1e-12 and bound > 3.0
    # the same metric without its embedding (a dense FunctionMetric): the midpoint rule
    hidden = FunctionMetric(metric.metric, dim=2)
    path = log_map(hidden, jnp.asarray(pts[0]), jnp.asarray(pts[1]), method="energy",
                   n_steps=16, max_steps=40, throw=False).path
    delta, mid = path[1:] - path[:-1], 0.5 * (path[1:] + path[:-1])
    assert float(jnp.sum(jnp.sqrt(jax.vmap(metric.inner)(mid, delta, delta)))) < 0.1 * bound
    # the geodesic library's own energy method uses the chords for this metric (its
    # isometric_embedding), and its length respects the bound
    sol = log_map(metric, jnp.asarray(pts[0]), jnp.asarray(pts[1]), method="energy",
                  n_steps=16, max_steps=40, throw=False)
    chords = jnp.linalg.norm(jnp.diff(jax.vmap(metric.embedding)(sol.path), axis=0), axis=1)
    assert float(jnp.sum(chords)) >= (1 - 1e-3) * bound
    r = trajectory_measures(metric, pts, RealGeodesicSettings(
        n_steps=16, max_steps=500, exp_steps=64, shoot_tol=0.05), predict=False)
    assert np.all(r["lengths"] >= (1 - 1e-3) * r["fr_bound"])
    # a record below the bound is counted in the summary
    low = dict(r, lengths=0.5 * r["fr_bound"], converged=False, pred_converged=np.zeros(1, bool),
               launch_converged=False)
    recs = [{"kind": "generation", "prompt": "p", **{m: dict(low) for m in METRICS}}
            for _ in range(2)]
    s = summarise({"records": recs, "truncation_error": [0.0]}, SETTINGS)["generation"]
    assert s["output"]["below_fr_bound"] == [2 * len(r["lengths"]), 2 * len(r["lengths"])]


def test_the_output_metric_has_its_own_resolution():
    s = RealGeodesicSettings(n_steps=6, exp_steps=8, output_n_steps=32, output_exp_steps=64)
    assert (s.for_metric("output").n_steps, s.for_metric("output").exp_steps) == (32, 64)
    assert s.for_metric("output").max_steps == s.max_steps
    assert s.for_metric("density") is s


def test_output_metric_velocities_shoot_when_resolved_at_the_start_and_integrated_adaptively():
    # three tokens; the states run from peaked on A to peaked on B and on towards C. The
    # geodesics between peaked distributions turn sharply near their ends, where the metric
    # hardly sees most directions: the second-order difference of a 16-segment path gives a
    # start velocity whose exp map misses by far (and fixed RK4 steps blow up); resolving the
    # start by two nested discrete geodesics (`output_zoom`) and integrating adaptively
    # (`output_exp_rtol`) lands every exp map on its end point.
    from infograv.geometry import OutputMetric

    metric = OutputMetric(jnp.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]]), ridge=1e-6)
    pts = np.array([[0.6, 0.0], [-0.6, 0.0], [-0.6, 0.3], [-0.2, 0.5]])
    base = dict(n_steps=16, max_steps=500, exp_steps=64, shoot_tol=0.05)
    plain = trajectory_measures(metric, pts, RealGeodesicSettings(**base))
    resolved = trajectory_measures(metric, pts, RealGeodesicSettings(
        **base, output_zoom=16, output_exp_rtol=1e-6))
    assert plain["shots_converged"] <= 2 and np.max(plain["shoot_miss"]) > 1.0
    assert resolved["shots_converged"] == len(pts) + 1
    assert np.max(resolved["shoot_miss"]) < 0.01
    assert resolved["launch_converged"] and np.all(resolved["pred_converged"])
    # the lengths are those of the same refined discrete geodesics, whatever the velocities
    np.testing.assert_allclose(resolved["lengths"], plain["lengths"], rtol=1e-12)
    with pytest.raises(ValueError, match="output_zoom: expected 0 or an int ≥ 2"):
        RealGeodesicSettings(output_zoom=1)
    with pytest.raises(ValueError, match="output_exp_rtol: expected > 0"):
        RealGeodesicSettings(output_exp_rtol=0.0)


def test_path_energy_uses_the_chords_of_an_isometric_embedding():
    # PullbackMetric (the unit sphere): the chords of a path along the equator, against the
    # midpoint rule; both converge to the arc at second order, the chords from below
    from infograv.geodesic import path_energy
    from infograv.geodesic._bvp import midpoint_quads, segment_quads
    from infograv.geometry import FunctionMetric, PullbackMetric

    def sphere(p):
        s, c = jnp.sin(p[0]), jnp.cos(p[0])
        return jnp.stack([s * jnp.cos(p[1]), s * jnp.sin(p[1]), c])

    metric = PullbackMetric(sphere, dim=2)
    path = jnp.stack([jnp.full(5, jnp.pi / 2), jnp.linspace(0.0, 1.0, 5)], axis=1)
    chord = 2 * np.sin(0.125)
    np.testing.assert_allclose(np.asarray(segment_quads(metric, path)), chord**2, rtol=1e-12)
    np.testing.assert_allclose(float(path_energy(metric, path)), 0.5 * 4 * 4 * chord**2,
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(midpoint_quads(metric, path)), 0.25**2, rtol=1e-12)
    # a metric without an embedding keeps the midpoint rule
    dense = FunctionMetric(metric.metric, dim=2)
    assert dense.isometric_embedding() is None
    np.testing.assert_allclose(np.asarray(segment_quads(dense, path)), 0.25**2, rtol=1e-12)
