"""The `infograv` command line: derive, paper (end to end, atomic replacement), bad input."""

import json
from pathlib import Path

import pytest
import sympy as sp

from infograv import _paper
from infograv._cli import main


def test_derive_predefined_writes_all_formats(tmp_path, capsys):
    assert main(["derive", "sphere", "--param", "n=2", "--out", str(tmp_path), "--quiet"]) == 0
    data = json.loads((tmp_path / "sphere.json").read_text())
    # unit-free sphere of radius a: R = n(n-1)/a^2 = 2/a^2
    a = sp.Symbol("a")
    assert sp.simplify(sp.sympify(data["ricci_scalar"][""]) - 2 / a**2) == 0
    md = (tmp_path / "sphere.md").read_text()
    assert r"\Gamma^{\theta}{}_{\phi \phi}" in md
    assert (tmp_path / "sphere.tex").read_text().count(r"\begin{equation*}") >= 5


def test_derive_user_metric_from_toml(tmp_path):
    f = tmp_path / "polar.toml"
    f.write_text('coords = ["r", "theta"]\ndiagonal = ["1", "r^2"]\n')
    out = tmp_path / "out"
    assert main(["derive", "--file", str(f), "--out", str(out), "--quiet",
                 "--quantity", "christoffel", "--quantity", "ricci_scalar"]) == 0
    data = json.loads((out / "polar.json").read_text())
    # flat plane in polar coordinates: Γ^r_θθ = -r, Γ^θ_rθ = 1/r, R = 0
    assert data["christoffel"]["0,1,1"] == "-r"
    assert data["christoffel"]["1,0,1"] == "1/r"
    assert data["ricci_scalar"] == {}


@pytest.mark.parametrize(
    "argv, match",
    [
        (["derive", "nope"], "unknown name 'nope'"),
        (["derive", "tangherlini", "--param", "D=five"], "expected an integer"),
        (["derive", "tangherlini", "--param", "D=3"], "D"),
        (["derive", "conformal", "--param", "phi=__import__('os')"], "unknown function"),
        (["derive"], "one of them"),
        (["paper", "--only", "nothing"], "argument --only: invalid choice: 'nothing'"),
    ],
)
def test_bad_input_exits_2_with_message(argv, match, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path / "o")] if argv[0] != "derive" or len(argv) > 1
                        else [])) == 2
    err = capsys.readouterr().err
    assert match in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()



def test_paper_replaces_cleanly_and_failures_leave_old_output(tmp_path, monkeypatch):
    calls = []

    def good(out, progress):
        progress("writing")
        (out / f"file{len(calls)}.txt").write_text("x")
        calls.append(1)

    def bad(out, progress):
        (out / "partial.txt").write_text("half")
        raise RuntimeError("boom")

    sec = _paper.Section("s", "S", "unused:unused")
    monkeypatch.setattr(_paper.Section, "load", lambda self: good if self.name == "s" else bad)
    target = tmp_path / "paper"
    _paper.make_paper(target, sections=(sec,), progress=lambda m: None)
    assert (target / "s" / "file0.txt").exists()
    _paper.make_paper(target, sections=(sec,), progress=lambda m: None)
    assert not (target / "s" / "file0.txt").exists(), "old results must be replaced"
    assert (target / "s" / "file1.txt").exists()
    with pytest.raises(RuntimeError, match="boom"):
        _paper.make_paper(target, sections=(sec, _paper.Section("t", "T", "u:u")),
                          progress=lambda m: None)
    assert (target / "s" / "file1.txt").exists(), "a failed run must leave the old output"
    assert not (target / "t").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["paper"], "no temporary folders left"


def test_paper_main_job_end_to_end(tmp_path, capsys):
    out = tmp_path / "paper"
    assert main(["paper", "--out", str(out), "--only", "derivations", "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["sections"]] == ["derivations"]
    doc = (out / "derivations" / "derivations.md").read_text()
    assert "claims in" in doc and "Checked" in doc
    tens = json.loads((out / "derivations" / "tensors" / "schwarzschild.json").read_text())
    assert tens["ricci"] == {}, "Schwarzschild is Ricci-flat"
    assert (out / "index.md").read_text().startswith("# infograv paper output")
    # every derivation ran, its claims held, and the committed docs/theory/ pages are current
    root = Path(__file__).resolve().parents[1]
    scripts = sorted(p.stem for p in (root / "theory").glob("*.py") if not p.name.startswith("_"))
    assert scripts
    for stem in scripts:
        made = (out / "derivations" / f"{stem}.md").read_text(encoding="utf-8")
        assert "**Checked:**" in made
        page = root / "docs" / "theory" / f"{stem}.md"
        assert page.read_text(encoding="utf-8") == made, (
            f"{page} is stale: run `python theory/{stem}.py`"
        )


def test_only_missing_models_or_optional_packages_are_skipped():
    from infograv.lm import ArtifactNotFoundError

    assert "infograv[lm]" in _paper._skip_reason(ModuleNotFoundError("x", name="gguf"))
    assert _paper._skip_reason(ArtifactNotFoundError("run `infograv fetch smollm2`"))
    assert _paper._skip_reason(ModuleNotFoundError("x", name="numpy")) is None
    assert _paper._skip_reason(RuntimeError("boom")) is None


def test_fetch_and_validate_errors_name_the_fix(tmp_path, monkeypatch, capsys):
    assert main(["fetch", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "argument NAME: invalid choice: 'nope'" in err and "'smollm2'" in err
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("INFOGRAV_SMOLLM2", raising=False)
    out = tmp_path / "val"
    assert main(["validate", "--quick", "--quiet", "--out", str(out)]) == 2
    assert "infograv fetch smollm2" in capsys.readouterr().err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".val")], "temporary left"


# --- never delete what infograv did not write -------------------------------------------------

WRITERS = [
    ["paper", "--only", "derivations", "--quiet"],
    ["derive", "sphere", "--param", "n=2", "--quiet", "--quantity", "ricci_scalar"],
    ["validate", "--quick", "--quiet"],
]


@pytest.mark.parametrize("argv", WRITERS, ids=lambda a: a[0])
def test_a_folder_infograv_did_not_write_is_refused_untouched(argv, tmp_path, capsys):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    assert main([*argv, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "precious.txt" in err and err.count("\n") == 1
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]
    assert (target / "precious.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"], "no temporary left"


@pytest.mark.parametrize("argv", WRITERS, ids=lambda a: a[0])
def test_an_existing_file_at_out_is_refused_untouched(argv, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep")
    assert main([*argv, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "not a folder" in err
    assert target.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_infograv_replaces_its_own_folder_but_not_files_added_to_it(tmp_path, capsys):
    from infograv._io import MANIFEST

    out = tmp_path / "d"
    argv = ["derive", "sphere", "--param", "n=2", "--quiet", "--quantity", "ricci_scalar",
            "--out", str(out)]
    assert main(argv) == 0
    assert (out / MANIFEST).exists()
    assert main(argv + ["--stem", "again"]) == 0, "an infograv folder is added to"
    assert {"sphere.json", "again.json"} <= {p.name for p in out.iterdir()}
    (out / "mine.txt").write_text("keep")
    assert main(argv) == 2
    assert "mine.txt" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep"


def test_outputs_respect_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        out = tmp_path / "d"
        assert main(["derive", "sphere", "--param", "n=2", "--quiet", "--quantity",
                     "ricci_scalar", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "sphere.json").stat().st_mode & 0o777 == 0o644


def test_derive_creates_nothing_when_it_fails(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text('coords = ["x", "y"]\ndiagonal = ["1", "0/0"]\n')
    out = tmp_path / "out"
    assert main(["derive", "--file", str(f), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()


def test_index_is_a_report_with_figures_numbers_verdicts_and_working_links(tmp_path,
                                                                            monkeypatch):
    import re

    def section(out, progress):
        (out / "well.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (out / "well.json").write_text(json.dumps(
            {"caption": "The potential well of one query.",
             "settings": {"T": 1.0}, "summary": {"depth": -1.234567, "n_tokens": 300,
                                                 "fit": {"slope": 0.5}}}))
        (out / "verdicts.json").write_text(json.dumps([
            {"claim": "voids raise entropy", "measure": "Spearman rho", "estimate": 0.31,
             "ci": [0.12, 0.48], "p_holm": 0.004, "verdict": "holds"}]))
        (out / "table.csv").write_text("a,b\n1,2\n")

    monkeypatch.setattr(_paper.Section, "load", lambda self: section)
    out = tmp_path / "paper"
    _paper.make_paper(out, sections=(_paper.Section("s", "Study S", "u:u"),),
                      progress=lambda m: None)
    index = (out / "index.md").read_text()
    assert "![The potential well of one query.](s/well.png)" in index
    assert "*Figure s.1: The potential well of one query.*" in index
    assert "| `depth` | -1.235 |" in index and "| `fit.slope` | 0.5 |" in index
    assert "| voids raise entropy | Spearman rho | 0.31 [0.12, 0.48] | 0.004 | **holds** |" in index
    links = re.findall(r"\]\(([^)#]+)\)", index)
    assert "s/table.csv" in links
    for link in links:
        assert (out / link).is_file(), link
