"""`infograv derive`: tensors of a metric as Markdown, LaTeX and JSON; the derivations document."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sympy as sp

from ._io import _jsonable, check_output_dir, update_dir, write_text
from ._parse import ExpressionError, parse_expression
from .symbolic import PREDEFINED, Metric, predefined
from .symbolic._latex import components_markdown, independent_components

__all__ = ["QUANTITIES", "derive", "metric_from_cli", "paper_section", "theory_dir"]

#: Quantities written by `derive`, in order. Weyl only for n ≥ 3.
QUANTITIES = ("metric", "inverse", "christoffel", "riemann", "ricci", "ricci_scalar",
              "einstein", "weyl", "kretschmann")

_INT_PARAMS = {"n", "d", "D"}
#: The largest dimension `infograv derive` accepts for a predefined metric: the tensors have
#: n^4 components, each simplified for up to `--simplify` seconds (n = 8: a few minutes).
DERIVE_MAX_DIM = 8
_STR_PARAMS = {"model"}


def metric_from_cli(name: str, params: Mapping[str, str] | None = None) -> Metric:
    """Build a predefined metric from command-line `key=value` strings.

    Integer parameters (`n`, `d`, `D`) must be integers; `model` is a plain string; every other
    value is an expression read by the restricted parser (`infograv._parse`), which may use the
    metric's coordinates and its default symbols (e.g. `phi="-exp(-(x1^2+x2^2)/2)"`).

    Raises:
        ValueError: unknown metric name, a non-integer dimension, or a bad expression.
    """
    params = dict(params or {})
    if name not in PREDEFINED:
        raise ValueError(
            f"metric: unknown name {name!r}; valid names are {', '.join(sorted(PREDEFINED))}, "
            "or pass --file FILE.toml for a metric of your own."
        )
    kwargs: dict[str, Any] = {}
    for k, v in list(params.items()):
        if k in _INT_PARAMS:
            if not v.strip().lstrip("+-").isdigit() or len(v) > 6:
                raise ValueError(f"--param {k}: expected an integer from 1 to {DERIVE_MAX_DIM}, "
                                 f"got {v[:20]!r}.")
            kwargs[k] = int(v)
            if not 1 <= kwargs[k] <= DERIVE_MAX_DIM:
                raise ValueError(f"--param {k}: expected an integer from 1 to {DERIVE_MAX_DIM} "
                                 f"(the tensors have {k}^4 components), got {kwargs[k]}.")
            params.pop(k)
        elif k in _STR_PARAMS:
            kwargs[k] = v
            params.pop(k)
    try:
        base = predefined(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--param {_param_hint(exc, kwargs)}{exc}") from None
    if not params:
        return base
    table: dict[str, sp.Symbol] = {s.name: s for s in base.coords}
    for s in base.components.free_symbols:
        if isinstance(s, sp.Symbol):
            table.setdefault(s.name, s)
    for k, v in params.items():
        try:
            kwargs[k] = parse_expression(v, table)
        except ExpressionError as exc:
            raise ExpressionError(f"--param {k}: {exc}") from None
    try:
        return predefined(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--param {_param_hint(exc, kwargs)}{exc}") from None


def _param_hint(exc: Exception, kwargs: Mapping[str, Any]) -> str:
    """`KEY: ` when the message starts with one of the given parameters, else `: `."""
    text = str(exc)
    for k in kwargs:
        if text.startswith(f"{k}:"):
            return ""
    return "(see `infograv list` and the metric's docs): "


def derive(
    metric: Metric,
    out: str | os.PathLike[str],
    *,
    name: str = "metric",
    quantities: Sequence[str] = QUANTITIES,
    formats: Sequence[str] = ("md", "tex", "json"),
    simplify: float | None = 1.0,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Compute the tensors of `metric` and write them into the folder `out`.

    Writes `<name>.md` (Markdown with display equations), `<name>.tex` (the same equations as a
    LaTeX fragment) and `<name>.json` (every independent nonzero component as a SymPy string,
    with the index convention), each atomically.

    Arguments:
        metric: the metric.
        out: output folder. Created (with an infograv manifest) only once everything is
            computed; an existing folder is added to only if it is empty or infograv wrote it
            (see `infograv._io.check_output_dir`), otherwise nothing is written.
        name: file stem.
        quantities: which of `QUANTITIES` to write.
        formats: any of `"md"`, `"tex"`, `"json"`.
        simplify: per-component time budget (seconds) of the opt-in simplification
            ([`simplified`][infograv.symbolic.simplified]) applied before writing, or `None` to
            write the unsimplified expressions. Components that simplify to zero are dropped
            from all three files.
        progress: a callable taking a message.

    Returns:
        The paths written.

    Raises:
        ValueError: an unknown quantity or format.
        infograv._io.OutputConflictError: `out` is a file, or a folder infograv did not write
            (checked before computing and again before writing).
    """
    bad = [q for q in quantities if q not in QUANTITIES]
    if bad:
        raise ValueError(f"quantities: unknown {bad}; choose from {', '.join(QUANTITIES)}.")
    badf = [f for f in formats if f not in ("md", "tex", "json")]
    if badf:
        raise ValueError(f"formats: unknown {badf}; choose from md, tex, json.")
    say = progress or (lambda m: None)
    out = Path(out)
    check_output_dir(out)
    coords = ", ".join(sp.latex(c) for c in metric.coords)
    md = [f"# {name}", "",
          f"Coordinates $({coords})$, dimension {metric.dim}. Conventions: "
          r"$\Gamma^a{}_{bc}$ = `christoffel()[a, b, c]`, "
          r"$R^a{}_{bcd} = \partial_c\Gamma^a{}_{db} - \partial_d\Gamma^a{}_{cb} + "
          r"\Gamma^a{}_{ce}\Gamma^e{}_{db} - \Gamma^a{}_{de}\Gamma^e{}_{cb}$, "
          r"$R_{bd} = R^a{}_{bad}$, $R = g^{bd}R_{bd}$, $G_{ab} = R_{ab} - \frac12 R g_{ab}$.",
          ""]
    data: dict[str, Any] = {
        "name": name,
        "coords": [str(c) for c in metric.coords],
        "conventions": {
            "christoffel": "[a,b,c] = Gamma^a_{bc}",
            "riemann": "[a,b,c,d] = R^a_{bcd}",
            "ricci": "[b,d] = R^a_{bad}",
            "weyl": "[a,b,c,d] = C_{abcd}",
        },
        "simplify_budget_s": simplify,
        "timings_s": {},
    }
    for q in quantities:
        if q == "weyl" and metric.dim < 3:
            continue
        t0 = time.perf_counter()
        say(f"{name}: {q}")
        head, comps = independent_components(metric, q, simplify=simplify)
        md.append(components_markdown(metric, q, head, comps) + "\n")
        data[q] = {",".join(str(i) for i in idx): str(e) for idx, e in comps.items()}
        data["timings_s"][q] = round(time.perf_counter() - t0, 3)
    text = "\n".join(md)
    files: dict[str, str] = {}
    if "md" in formats:
        files[f"{name}.md"] = text
    if "tex" in formats:
        eqs = [line.strip("$") for line in text.splitlines()
               if line.startswith("$$") and line.endswith("$$")]
        tex = "\n".join(f"\\begin{{equation*}}\n{e}\n\\end{{equation*}}" for e in eqs)
        files[f"{name}.tex"] = f"% {name}: generated by infograv\n{tex}\n"
    if "json" in formats:
        files[f"{name}.json"] = json.dumps(_jsonable(data), indent=2) + "\n"
    return update_dir(out, files, command=f"derive {name}")


def theory_dir() -> Path:
    """The folder of the derivation scripts: inside the installed package, or the source tree."""
    here = Path(__file__).resolve().parent
    for cand in (here / "_theory", here.parent / "theory"):
        if (cand / "_doc.py").exists():
            return cand
    raise FileNotFoundError(
        "the derivation scripts (theory/) are not installed with this copy of infograv; "
        "reinstall from the source tree (pip install .)."
    )


#: The metrics whose tensors `infograv paper` writes (name, CLI name, parameters).
PAPER_METRICS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("schwarzschild", "schwarzschild", {}),
    ("tangherlini_D5", "tangherlini", {"D": "5"}),
    ("weak_field_d2", "weak-field", {"d": "2"}),
    ("conformal_d2", "conformal", {"d": "2"}),
    ("sphere_S2", "sphere", {"n": "2"}),
)


def _demote(markdown: str) -> str:
    """Push every Markdown heading one level down (a derivation becomes a section)."""
    return "\n".join("#" + line if line.startswith("#") else line
                     for line in markdown.splitlines())


def paper_section(out: Path, progress: Callable[[str], None]) -> None:
    """Run every derivation in `theory/` and write the tensors of the model's metrics.

    Writes `derivations.md` (all derivations, in order), one `<script>.md` per derivation, and
    `tensors/<metric>.{md,tex,json}` for the metrics of `PAPER_METRICS`.
    """
    folder = theory_dir()
    sys.path.insert(0, str(folder))
    try:
        import _doc  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    parts = []
    total = 0
    for script in _doc.scripts(folder):
        progress(f"deriving {script.stem}")
        doc, secs = _doc.build(script)
        total += len(doc.checks)
        write_text(out / f"{script.stem}.md", doc.markdown())
        parts.append(doc.markdown())
        progress(f"{script.stem}: {len(doc.checks)} claims hold ({secs:.1f} s)")
    head = (f"# Derivations\n\nEvery claim below was derived and checked by `theory/` when this "
            f"file was made: {total} claims in {len(parts)} derivations.\n\n")
    write_text(out / "derivations.md", head + "\n\n".join(_demote(p) for p in parts))
    for stem, name, params in PAPER_METRICS:
        progress(f"tensors of {stem}")
        derive(metric_from_cli(name, params), out / "tensors", name=stem, simplify=1.0)
