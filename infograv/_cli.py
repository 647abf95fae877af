"""The `infograv` command line.

    infograv paper --out DIR          everything for a paper: derivations, figures, tables
    infograv derive NAME|--file F     the tensors of a metric (Markdown, LaTeX, JSON)
    infograv validate --out DIR       the empirical study on the real language model
    infograv fetch NAME|all           download a real model into the cache
    infograv list                     metrics, kernels, paper sections, artifacts
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _kv(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param: expected KEY=VALUE, got {item!r}.")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _cmd_derive(args: argparse.Namespace) -> int:
    from ._derive import QUANTITIES, derive, metric_from_cli
    from ._paper import Progress
    from ._parse import load_metric_toml
    from .symbolic import Metric

    if (args.name is None) == (args.file is None):
        raise ValueError("derive: give a predefined metric NAME or --file FILE.toml (one of them).")
    if args.file is not None:
        spec = load_metric_toml(args.file)
        metric = Metric(spec["components"], spec["coords"])
        stem = args.stem or Path(args.file).stem
    else:
        metric = metric_from_cli(args.name, _kv(args.param))
        stem = args.stem or args.name.replace("-", "_")
    quantities = args.quantity or list(QUANTITIES)
    simplify = None if args.simplify <= 0 else args.simplify
    prog = Progress(quiet=args.quiet)
    paths = derive(metric, args.out, name=stem, quantities=quantities,
                   formats=args.format or ["md", "tex", "json"], simplify=simplify,
                   progress=prog)
    for p in paths:
        print(p)
    return 0


def _cmd_paper(args: argparse.Namespace) -> int:
    from ._paper import Progress, make_paper

    manifest = make_paper(args.out, only=args.only, skip=args.skip,
                          progress=Progress(quiet=args.quiet))
    skipped = [s for s in manifest["sections"] if s["status"] == "skipped"]
    print(f"wrote {Path(args.out).resolve()} ({len(manifest['sections'])} sections"
          + (f", {len(skipped)} skipped: see index.md" if skipped else "") + ")")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from ._io import atomic_dir
    from ._paper import Progress
    from .experiments._validation import run_validation

    prog = Progress(quiet=args.quiet)
    with atomic_dir(args.out) as tmp:
        run_validation(tmp, prog, quick=args.quick)
    print(Path(args.out).resolve())
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from . import lm

    names = sorted(lm.ARTIFACTS) if args.name == "all" else [args.name]
    for name in names:
        path = lm.fetch(name, cache_dir=args.cache_dir, progress=not args.quiet)
        print(f"{name}: {path}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ._paper import SECTIONS
    from .symbolic import PREDEFINED
    from .symbolic.kernels import KERNEL_NAMES

    print("metrics (infograv derive NAME):", ", ".join(sorted(PREDEFINED)))
    print("kernels:", ", ".join(KERNEL_NAMES))
    print("paper sections:", ", ".join(s.name for s in SECTIONS))
    try:
        from . import lm

        print("artifacts (infograv fetch NAME):", ", ".join(sorted(lm.ARTIFACTS)))
    except ImportError:  # the real-model extras are not installed
        print("artifacts: install infograv[lm] to use the real models")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `infograv` command."""
    p = argparse.ArgumentParser(
        prog="infograv",
        description="The information-gravity model of token selection: derivations, "
        "simulations, figures and tests against a real language model.",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"infograv {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("derive", help="tensors of a predefined or user metric")
    d.add_argument("name", nargs="?", help="predefined metric (see `infograv list`)")
    d.add_argument("--file", type=Path, help="a metric in TOML (see docs: quickstart)")
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="parameter of a predefined metric, e.g. D=6 or phi='-exp(-x1^2)'")
    d.add_argument("--out", type=Path, default=Path("derived"), help="output folder")
    d.add_argument("--stem", help="output file name stem")
    d.add_argument("--quantity", action="append", help="only these quantities (repeatable)")
    d.add_argument("--format", action="append", choices=["md", "tex", "json"])
    d.add_argument("--simplify", type=float, default=1.0,
                   help="seconds per component for the simplification used in printing "
                   "(0: print unsimplified)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_derive)

    pp = sub.add_parser("paper", help="everything for a paper, into one folder")
    pp.add_argument("--out", type=Path, default=Path("infograv-paper"), help="output folder")
    pp.add_argument("--only", action="append", help="only this section (repeatable)")
    pp.add_argument("--skip", action="append", help="leave out this section (repeatable)")
    pp.add_argument("--quiet", action="store_true")
    pp.set_defaults(func=_cmd_paper)

    v = sub.add_parser("validate", help="the empirical study on the real language model")
    v.add_argument("--out", type=Path, default=Path("infograv-validation"))
    v.add_argument("--quick", action="store_true", help="a small subset (minutes)")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=_cmd_validate)

    f = sub.add_parser("fetch", help="download a real model into the cache")
    f.add_argument("name", help="artifact name, or 'all'")
    f.add_argument("--cache-dir", type=Path, default=None)
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=_cmd_fetch)

    ls = sub.add_parser("list", help="what can be derived, plotted and fetched")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with a message)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command line computes in float64, the configuration the test suite checks; library
    # users choose for themselves (every function follows the dtype of its inputs).
    import jax

    jax.config.update("jax_enable_x64", True)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"infograv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was left in place", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
