"""Every derivation in theory/ runs, every claim in it holds, and docs/theory/ is up to date."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "theory"))

import _doc  # noqa: E402

SCRIPTS = _doc.scripts(ROOT / "theory")


def test_there_are_derivations():
    names = {p.stem for p in SCRIPTS}
    assert {"selection_thermodynamics", "spacetime", "conformal", "field_equations"} <= names


# Running every script, and checking that docs/theory/ is current, is done once, through the
# main job, in tests/test_cli.py::test_paper_main_job_end_to_end.


def test_a_false_claim_fails():
    d = _doc.Doc(title="t")
    with pytest.raises(_doc.DerivationError, match="claim failed"):
        d.check("1 = 2", False)


def test_scripts_run_from_an_installed_copy():
    # In a wheel the scripts live in infograv/_theory/, beside _doc.py but not beside a
    # `theory` package: they must import `_doc` directly (with the installed fallback) and must
    # not reach into the source tree through sys.path.
    import ast

    for script in SCRIPTS:
        tree = ast.parse(script.read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "_doc" in imported and "infograv._theory._doc" in imported, script.name
        assert not any(m and m.startswith("theory") for m in imported), script.name
        assert "sys.path" not in script.read_text(encoding="utf-8"), script.name
