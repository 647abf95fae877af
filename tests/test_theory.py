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


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_derivation_holds_and_docs_are_current(script):
    doc, _ = _doc.build(script)
    assert doc.checks, f"{script.name} checks no claim"
    page = ROOT / "docs" / "theory" / f"{script.stem}.md"
    assert page.exists(), f"run `python theory/{script.name}` to write {page}"
    assert page.read_text(encoding="utf-8") == doc.markdown(), (
        f"{page} is stale: run `python theory/{script.name}`"
    )


def test_a_false_claim_fails():
    d = _doc.Doc(title="t")
    with pytest.raises(_doc.DerivationError, match="claim failed"):
        d.check("1 = 2", False)
