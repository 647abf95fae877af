"""A derivation document: Markdown prose, LaTeX equations and checked claims.

Every script in `theory/` defines ``TITLE`` and ``run(doc: Doc) -> None``. ``run`` derives with
`infograv.symbolic`, calls ``doc.check`` on every claim (which raises if the claim is false), and
records equations with ``doc.eq``. Run as a script, it writes ``docs/theory/<script>.md``;
``infograv paper`` runs every script into its output folder.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import sympy as sp

HERE = Path(__file__).resolve().parent


class DerivationError(AssertionError):
    """A claim in a derivation did not hold."""


@dataclass
class Doc:
    """Collects the Markdown of one derivation."""

    title: str
    parts: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def text(self, markdown: str) -> None:
        """Add a paragraph of Markdown."""
        self.parts.append(markdown.strip() + "\n")

    def heading(self, title: str) -> None:
        """Add a second-level heading."""
        self.parts.append(f"## {title}\n")

    def eq(self, lhs: Any, rhs: Any = None, *, label: str | None = None) -> None:
        """Add a display equation `lhs = rhs` (SymPy objects or LaTeX strings)."""
        def tex(v: Any) -> str:
            return v if isinstance(v, str) else sp.latex(v)

        body = tex(lhs) if rhs is None else f"{tex(lhs)} = {tex(rhs)}"
        tag = f" \\tag{{{label}}}" if label else ""
        self.parts.append(f"$$\n{body}{tag}\n$$\n")

    def check(self, claim: str, ok: Any) -> None:
        """Record `claim`; raise `DerivationError` unless `ok` holds (SymPy `true` or `0`)."""
        if isinstance(ok, sp.Basic):
            ok = bool(ok == sp.true) or bool(ok == 0)
        if not bool(ok):
            raise DerivationError(f"{self.title}: claim failed: {claim}")
        self.checks.append(claim)
        self.parts.append(f"- **Checked:** {claim}\n")

    def markdown(self) -> str:
        """The whole document."""
        head = f"# {self.title}\n\n"
        foot = (
            f"\n---\n*{len(self.checks)} claims checked by `theory/` when this page was "
            "generated.*\n"
        )
        return head + "\n".join(self.parts) + foot


def scripts(folder: Path = HERE) -> list[Path]:
    """The derivation scripts, in name order (files not starting with ``_``)."""
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def load(path: Path) -> ModuleType:
    """Import a derivation script by path."""
    name = f"infograv_theory_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load derivation script {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def build(path: Path) -> tuple[Doc, float]:
    """Run one script and return its document and the seconds it took."""
    mod = load(path)
    doc = Doc(title=mod.TITLE)
    t0 = time.perf_counter()
    mod.run(doc)
    return doc, time.perf_counter() - t0


def main(path: str) -> None:
    """Entry point of ``python theory/<script>.py``: write ``docs/theory/<script>.md``."""
    sys.path.insert(0, str(HERE.parent))
    from infograv._io import write_text

    script = Path(path).resolve()
    doc, secs = build(script)
    out = HERE.parent / "docs" / "theory" / f"{script.stem}.md"
    write_text(out, doc.markdown())
    print(f"{script.name}: {len(doc.checks)} claims checked in {secs:.1f} s -> {out}")
