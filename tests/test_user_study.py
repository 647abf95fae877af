"""The contract of issue 10 through the study: a prompt file and a kernel file (its minimal
form), with a built-in family beside the user's, give fit_summary.json and verdicts.json with the
user kernel as a family named by its `name`."""

import json

from test_val_study import FakeLM

from infograv.experiments import ValidationSettings, run_validation
from infograv.model import Potential


def test_user_kernel_and_prompt_file_through_the_study(tmp_path):
    prompts = tmp_path / "mine.jsonl"
    prompts.write_text("\n".join(json.dumps({"text": f"The number {i} is followed by"})
                                 for i in range(30)) + "\n")
    kernel = tmp_path / "logwell.toml"
    kernel.write_text('name = "logwell"\npotential = "G*M*log(1 + r**2/s**2)"\n'
                      "[params]\nG = 1.0\ns = 3.0\n")
    settings = ValidationSettings(
        families=("harmonic",), kernel_dims=(), query_maps=("scalar",), max_steps=10,
        n_refits=0, n_boot=50, min_prompts=25, temperatures=(0.5, 1.5),
        n_temperature_prompts=2, n_samples=2, max_new_tokens=3, n_trajectories=1,
        trajectory_steps=3)
    out = tmp_path / "out"
    run_validation(out, settings=settings, prompts=prompts, model=FakeLM(),
                   kernels=["harmonic", Potential.from_toml(kernel)])
    fit = json.loads((out / "fit_summary.json").read_text())
    assert set(fit["families"]) == {"harmonic", "logwell"}
    assert set(fit["families"]["logwell"]["params"]) == {"G", "s"}
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert verdicts and all(v["verdict"] in {"holds", "fails", "inconclusive"} for v in verdicts)
