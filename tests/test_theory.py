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
