"""`infograv paper`: everything the package produces for a paper, into one folder.

The folder is built under a temporary name beside the target and swapped in only when every
section has finished, so a second run replaces the old results cleanly and an interrupted run
leaves the old results untouched. Only a folder infograv wrote (it carries a manifest) is ever
replaced; see `infograv._io`.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import MANIFEST, atomic_dir, write_json, write_text

__all__ = ["SECTIONS", "Section", "make_paper", "Progress"]


class Progress:
    """Prints numbered, timed progress lines to a stream (stderr by default)."""

    def __init__(self, stream=None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.prefix = ""

    def __call__(self, message: str) -> None:
        if not self.quiet:
            dt = time.perf_counter() - self.t0
            print(f"[{dt:7.1f}s] {self.prefix}{message}", file=self.stream, flush=True)


@dataclass(frozen=True)
class Section:
    """One part of the paper output: a folder name, a title and the function that fills it."""

    name: str
    title: str
    target: str  # "module:function", called as function(out: Path, progress) -> None
    needs_artifacts: bool = False
    default: bool = True  # part of a plain `infograv paper`; otherwise only by `--only NAME`

    def load(self) -> Callable[[Path, Callable[[str], None]], None]:
        mod_name, fn_name = self.target.split(":")
        return getattr(importlib.import_module(mod_name), fn_name)


SECTIONS: tuple[Section, ...] = (
    Section("derivations", "Derivations (theory/, executed and checked)",
            "infograv._derive:paper_section"),
    Section("phenomena", "The paper's phenomena on toy semantic spaces",
            "infograv.experiments._phenomena:paper_section"),
    Section("geometry", "Curved semantic space: geodesics, horizons, curvature, Langevin",
            "infograv.experiments._geometry:paper_section"),
    Section("validation", "Empirical test on a real language model (SmolLM2-135M)",
            "infograv.experiments._validation:paper_section", needs_artifacts=True),
    Section("real_geodesics", "Token trajectories and geodesics on the real model's manifolds",
            "infograv.experiments._real_geodesics:paper_section", needs_artifacts=True,
            default=True),  # about 2.5 minutes on 2 cores; uses the validation section's fit
)


def _prefixed(prog: Callable[[str], None], name: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        prog(f"  {name}: {message}")

    return say


_OPTIONAL = {"gguf", "tokenizers", "safetensors", "wordfreq"}


def _skip_reason(exc: BaseException) -> str | None:
    """Why a section may be skipped (a missing real model or optional package), else None."""
    from .data._artifacts import ArtifactNotFoundError

    if isinstance(exc, ArtifactNotFoundError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in _OPTIONAL:
        return (f"the optional package {exc.name!r} is not installed; "
                "run `pip install 'infograv[lm]'` and then this command again.")
    return None


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("infograv", "jax", "jaxlib", "sympy", "numpy", "equinox", "diffrax",
                "optimistix", "lineax", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def make_paper(
    out: str | os.PathLike[str],
    *,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    sections: tuple[Section, ...] | None = None,
) -> dict:
    """Produce every section of the paper output into the folder `out`.

    Each section writes into `out/<section>/`; `out/index.md` lists what was made, with the
    package versions and the seconds each section took, and `out/manifest.json` holds the same as
    data. A section whose real-model artifacts are missing is recorded as skipped with the command
    that fetches them; any other failure aborts the run and leaves an existing `out` untouched.

    Arguments:
        out: the output folder (created; replaced atomically if it exists and infograv wrote
            it — an existing file, or a folder holding anything else, is refused before any
            work, see `infograv._io.check_output_dir`).
        only: run only these sections (by name); without it, every section whose `default`
            is true (all of the built-in sections).
        skip: leave these sections out.
        progress: a callable taking a message (default: timed lines on stderr).
        sections: the section list (default `SECTIONS`).

    Returns:
        The manifest (also written to `out/manifest.json`).

    Raises:
        ValueError: an unknown section name in `only`/`skip`.
        infograv._io.OutputConflictError: `out` exists and infograv did not write it.
    """
    sections = SECTIONS if sections is None else sections
    names = [s.name for s in sections]
    for arg, val in (("only", only), ("skip", skip)):
        for n in val or []:
            if n not in names:
                raise ValueError(f"{arg}: unknown section {n!r}; sections are: {', '.join(names)}.")
    chosen = [s for s in sections if (s.name in only if only else s.default)
              and s.name not in (skip or [])]
    prog = progress if progress is not None else Progress()
    target = Path(os.path.abspath(out))
    manifest: dict = {"sections": [], "versions": _versions(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with atomic_dir(out, command="paper") as work:
        for i, sec in enumerate(chosen, 1):
            prog(f"[{i}/{len(chosen)}] {sec.title}")
            folder = work / sec.name
            folder.mkdir()
            t0 = time.perf_counter()
            entry: dict[str, Any] = {"name": sec.name, "title": sec.title}
            try:
                sec.load()(folder, _prefixed(prog, sec.name))
                entry["status"] = "done"
            except Exception as exc:  # only a missing artifact or optional package is tolerated
                reason = _skip_reason(exc)
                if reason is None:
                    raise
                entry["status"] = "skipped"
                entry["reason"] = reason
                prog(f"  {sec.name}: skipped: {reason}")
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            entry["files"] = sorted(p.relative_to(work).as_posix() for p in folder.rglob("*")
                                    if p.is_file() and p.name != MANIFEST)
            manifest["sections"].append(entry)
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(work / "manifest.json", manifest)
        write_text(work / "index.md", _index(manifest, work))
    prog(f"done: {target}")
    return manifest


def _number(x: Any) -> str:
    """A key number for the report: 4 significant digits, integers and strings as they are."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _scalars(summary: Any, prefix: str = "", limit: int = 12) -> list[tuple[str, str]]:
    """The scalar entries of a JSON summary (one level of nesting flattened), at most `limit`."""
    out: list[tuple[str, str]] = []
    if not isinstance(summary, dict):
        return out
    for k, v in summary.items():
        if len(out) >= limit:
            break
        if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 60):
            out.append((prefix + str(k), _number(v)))
        elif isinstance(v, dict) and not prefix:
            out.extend(_scalars(v, f"{k}.", limit - len(out)))
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _caption(stem: str, data: Any, section: str = "", captions: Any = None) -> str:
    """A figure's caption: the section's `captions.json` entry, its JSON's `caption` (or
    `title`), else its file name in words (without the section's prefix)."""
    if isinstance(captions, dict) and isinstance(captions.get(stem), str):
        return captions[stem]
    if isinstance(data, dict):
        for key in ("caption", "title"):
            if isinstance(data.get(key), str):
                return data[key]
    words = stem.removeprefix(section + "_").replace("_", " ").strip()
    return words[:1].upper() + words[1:] + "."


def _table(rows: list[tuple[str, str]], head: tuple[str, str] = ("quantity", "value")) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines.extend(f"| `{k}` | {v} |" for k, v in rows)
    return lines + [""]


def _verdict_table(verdicts: Any) -> list[str]:
    """The verdicts of the empirical study (validation's `verdicts.json`) as a table."""
    if not isinstance(verdicts, list) or not verdicts:
        return []
    lines = ["| claim | measure | estimate [95% CI] | Holm p | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        if not isinstance(v, dict):
            continue
        ci = v.get("ci") or [None, None]
        est = v.get("estimate")
        span = (f"{_number(est)} [{_number(ci[0])}, {_number(ci[1])}]" if est is not None
                else "n/a")
        lines.append(f"| {v.get('claim', '')} | {v.get('measure', '')} | {span} | "
                     f"{_number(v.get('p_holm'))} | **{v.get('verdict', '')}** |")
    return lines + [""]


def _section_report(sec: dict, folder: Path) -> list[str]:
    """Figures with captions and key numbers, the verdict table, links to the data files."""
    base = folder / sec["name"]
    files = [Path(f) for f in sec["files"]]
    lines: list[str] = []
    # figures in the order the section wrote them
    figures = sorted((f for f in files if f.suffix == ".png"),
                     key=lambda f: ((folder / f).stat().st_mtime_ns, f.name))
    captions = _read_json(base / "captions.json")
    shown: set[Path] = {Path(sec["name"]) / "captions.json"}
    for n, fig in enumerate(figures, 1):
        data_file = fig.with_suffix(".json")
        data = _read_json(folder / data_file) if data_file in files else None
        caption = _caption(fig.stem, data, sec["name"], captions)
        lines.append(f"![{caption}]({fig.as_posix()})")
        lines.append("")
        lines.append(f"*Figure {sec['name']}.{n}: {caption}*"
                     + (f" Data: [`{data_file.name}`]({data_file.as_posix()})." if data else ""))
        lines.append("")
        if isinstance(data, dict):
            shown.add(data_file)
            rows = _scalars(data.get("summary"))
            if rows:
                lines.extend(_table(rows))
    verdicts = base / "verdicts.json"
    if verdicts.exists():
        lines.append("**Verdicts** (from [`verdicts.json`](" + sec["name"] + "/verdicts.json)):")
        lines.append("")
        lines.extend(_verdict_table(_read_json(verdicts)))
        shown.add(Path(sec["name"]) / "verdicts.json")
    for f in files:  # key numbers of the other summaries (e.g. phenomena_summary.json)
        if f.suffix != ".json" or f in shown:
            continue
        data = _read_json(folder / f)
        if isinstance(data, dict) and isinstance(data.get("summary"), dict):
            rows = _scalars(data["summary"])
            if rows:
                lines.append(f"Key numbers of [`{f.name}`]({f.as_posix()}):")
                lines.append("")
                lines.extend(_table(rows))
    documents = [f for f in files if f.suffix == ".md" and f.parent == Path(sec["name"])]
    if documents:
        lines.append("Documents: " + ", ".join(f"[`{f.name}`]({f.as_posix()})"
                                               for f in documents) + ".")
        lines.append("")
    kinds: dict[str, list[Path]] = {}
    for f in files:
        if f.suffix in (".csv", ".json", ".tex", ".pdf", ".npz") or f not in documents + figures:
            kinds.setdefault(f.suffix.lstrip(".") or "other", []).append(f)
    if kinds:
        lines.append("<details><summary>Data files</summary>")
        lines.append("")
        for kind in sorted(kinds):
            lines.append(f"- {kind}: " + ", ".join(f"[`{f.relative_to(sec['name']).as_posix()}`]"
                                                   f"({f.as_posix()})" for f in kinds[kind]))
        lines.append("")
        lines.append("</details>")
        lines.append("")
    return lines


def _index(manifest: dict, folder: Path | None = None) -> str:
    """`index.md`: the report of a paper folder, section by section.

    For each section: its figures inline, in the order written, with captions (a section may
    give them as `captions.json`, `{figure stem: caption}`, or as the `caption` of the figure's
    JSON file of the same name; else the file name in words) and the key numbers of that JSON's
    `summary`; the verdict table when the section wrote `verdicts.json`; the key numbers of its
    other summaries; links to its documents and data files. Then the package versions.
    """
    lines = ["# infograv paper output", ""]
    done = [s for s in manifest["sections"] if s["status"] != "skipped"]
    lines.append(f"Made {manifest['started']} – {manifest['finished']}: "
                 f"{len(done)} of {len(manifest['sections'])} sections, in float64.")
    lines.append("")
    lines.append("| section | status | seconds | files |")
    lines.append("|---|---|---|---|")
    for sec in manifest["sections"]:
        lines.append(f"| [{sec['title']}](#{sec['name']}) | {sec['status']} | {sec['seconds']} | "
                     f"{len(sec['files'])} |")
    lines.append("")
    for sec in manifest["sections"]:
        lines.append(f'<a id="{sec["name"]}"></a>')
        lines.append("")
        lines.append(f"## {sec['title']} (`{sec['name']}/`)")
        lines.append("")
        if sec["status"] == "skipped":
            lines.append(f"**Skipped:** {sec['reason']}")
            lines.append("")
        elif folder is not None:
            lines.extend(_section_report(sec, folder))
        else:
            lines.extend(f"- [`{f}`]({f})" for f in sec["files"])
            lines.append("")
    lines.append("## Versions")
    lines.append("")
    lines.append("```json")
    lines.append(json.dumps(manifest["versions"], indent=2))
    lines.append("```")
    return "\n".join(lines) + "\n"
