"""The geometry paper section writes its figures and numbers, and the numbers make sense."""

import json

import numpy as np

from infograv.experiments import _geometry


def test_paper_section_writes_figures_and_data(tmp_path):
    messages = []
    _geometry.paper_section(tmp_path, messages.append)
    for stem in _geometry.FIGURE_STEMS:
        for ext in ("pdf", "png", "csv", "json"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 100, (stem, ext)
        data = json.loads((tmp_path / f"{stem}.json").read_text())
        assert "settings" in data and "summary" in data
    assert len(messages) >= 5

    bundle = json.loads((tmp_path / "geometry_bundle.json").read_text())
    # rays above the query bend down, rays below bend up (attraction), symmetric in y
    assert bundle["summary"]["toward_well"]
    defl = np.asarray(bundle["deflection_rad"])
    np.testing.assert_allclose(defl, -defl[::-1], atol=1e-6)

    horizon = json.loads((tmp_path / "geometry_horizon.json").read_text())["summary"]
    # capture exactly below the critical impact parameter 3√3/2 r_s
    assert horizon["largest_captured_b"] < horizon["b_critical"] < horizon["smallest_escaping_b"]

    curv = json.loads((tmp_path / "geometry_curvature.json").read_text())["summary"]
    assert curv["autodiff_check_max_abs_diff"] < 1e-10  # closed form = autodiff
    assert curv["R_max"] > 0 > curv["R_min"]

    dist = json.loads((tmp_path / "geometry_distance.json").read_text())["summary"]
    assert dist["all_converged"]
    # zero mass: flat space, geodesic = Euclidean distance (RK4 on a straight line: exact)
    np.testing.assert_allclose(dist["ratio_at_zero_mass"], 1.0, rtol=1e-9)
    assert min(dist["ratio_at_max_mass"]) > 1.0

    lang = json.loads((tmp_path / "geometry_langevin.json").read_text())["summary"]
    # χ² test of the Langevin histogram against the Boltzmann marginal, at the 0.1% level
    assert lang["chi2_pvalue"] > 1e-3
