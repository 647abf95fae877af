"""The `infograv` command line.

    infograv paper --out DIR          everything for a paper: derivations, figures, tables
    infograv derive NAME|--file F     the tensors of a metric (Markdown, LaTeX, JSON)
    infograv validate --out DIR       the empirical study on the real language model
    infograv fetch NAME|all           download a real model into the cache
    infograv list                     metrics, kernels, paper sections, artifacts

The contract: a mistake in the input ends the command with one line on stderr that names the
argument and what is valid, exit status 2; a failure of the environment (a folder that cannot be
written, no network, out of memory) with one line and exit status 1; a termination signal
(SIGINT, SIGTERM, SIGHUP) with one line and exit status 128 + the signal number. No traceback is
shown unless `--debug` is given. Nothing is deleted that infograv did not write, and an
interrupted or failed command leaves no temporary file and the earlier results in place.

Precision: the command line computes in float64 (`jax_enable_x64`), so that its numbers are
the ones the test suite checks; the Python library follows JAX's default (float32) unless the
caller enables float64 — results from a notebook can differ from the command line's in the
last digits of float32 unless `jax.config.update("jax_enable_x64", True)` is run first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]

EXIT_INPUT = 2
EXIT_FAILURE = 1
_MAX_MESSAGE = 600


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the argument (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {_one_line(message)} (see `{self.prog} --help`)",
              file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _kv(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param: expected KEY=VALUE, got {item!r}.")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _check_input_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist; give a metric file (TOML).")
    if path.is_dir():
        raise IsADirectoryError(f"{what}: {path} is a folder; give a metric file (TOML).")


def _cmd_derive(args: argparse.Namespace) -> int:
    from ._derive import QUANTITIES, derive, metric_from_cli
    from ._io import check_output_dir
    from ._paper import Progress
    from ._parse import load_metric_toml
    from .symbolic import Metric

    if (args.name is None) == (args.file is None):
        raise ValueError("derive: give a predefined metric NAME or --file FILE.toml (one of them); "
                         "`infograv list` shows the names.")
    check_output_dir(args.out)  # before any work
    if args.file is not None:
        _check_input_file(args.file, "--file")
        spec = load_metric_toml(args.file)
        try:
            metric = Metric(spec["components"], spec["coords"])
        except ValueError as exc:
            raise ValueError(f"--file {args.file}: {exc}") from None
        stem = args.stem or Path(args.file).stem
    else:
        metric = metric_from_cli(args.name, _kv(args.param))
        stem = args.stem or args.name.replace("-", "_")
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise ValueError(f"--stem: {stem!r} is not a plain file name; give e.g. --stem sphere.")
    quantities = args.quantity or list(QUANTITIES)
    if args.simplify < 0:
        raise ValueError(f"--simplify: need seconds >= 0, got {args.simplify}.")
    simplify = None if args.simplify == 0 else args.simplify
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


def _validate_cli() -> Any:
    """The study's own `validate` wiring, when that module exists (imported lazily)."""
    name = "infograv.experiments._validate_cli"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _cmd_validate(args: argparse.Namespace) -> int:
    from ._io import atomic_dir, check_output_dir

    check_output_dir(args.out)  # before loading any model
    mod = _validate_cli()
    if mod is not None:
        return int(mod.run_validate_command(args))
    import inspect

    from ._paper import Progress
    from .experiments import _validation

    run: Any = _validation.run_validation
    options: dict[str, Any] = {"progress": Progress(quiet=args.quiet)}
    if "quick" in inspect.signature(run).parameters:
        options["quick"] = args.quick
    with atomic_dir(args.out, command="validate") as tmp:
        run(tmp, **options)
    print(Path(args.out).resolve())
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from . import lm

    if args.cache_dir is not None and args.cache_dir.exists() and not args.cache_dir.is_dir():
        raise NotADirectoryError(f"--cache-dir: {args.cache_dir} is a file; give a folder for the "
                                 "cache (default ~/.cache/infograv or $INFOGRAV_CACHE).")
    # `all`: the artifacts fetched by default (some, e.g. a model under its own terms, only
    # on request by name)
    names = (sorted(n for n, spec in lm.ARTIFACTS.items() if getattr(spec, "in_all", True))
             if args.name == "all" else [args.name])
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
    print("paper sections (infograv paper --only NAME):", ", ".join(s.name for s in SECTIONS))
    try:
        from . import lm

        print("artifacts (infograv fetch NAME):", ", ".join(sorted(lm.ARTIFACTS)))
    except ImportError:  # the real-model extras are not installed
        print("artifacts: install infograv[lm] to use the real models")
    return 0


def _choices(kind: str) -> list[str]:
    """Valid values for the help text (imported lazily; the list command shows the same)."""
    if kind == "metrics":
        from .symbolic import PREDEFINED

        return sorted(PREDEFINED)
    if kind == "sections":
        from ._paper import SECTIONS

        return [s.name for s in SECTIONS]
    if kind == "quantities":
        from ._derive import QUANTITIES

        return list(QUANTITIES)
    from .data._artifacts import ARTIFACTS

    return sorted(ARTIFACTS)


def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `infograv` command."""
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="infograv",
        description="The information-gravity model of token selection: derivations, "
        "simulations, figures and tests against a real language model. The command line "
        "computes in float64; the Python library follows JAX's default precision.",
        epilog=_example("infograv paper --out my-paper"),
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"infograv {__version__}")
    p.add_argument("--debug", action="store_true", default=False,
                   help="show the full traceback of an error (default: one line)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

    def add(name: str, help: str, example: str) -> argparse.ArgumentParser:
        sp_ = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                             epilog=_example(example), formatter_class=fmt)
        sp_.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error (default: one line)")
        return sp_

    metrics = _choices("metrics")
    quantities = _choices("quantities")
    sections = _choices("sections")

    d = add("derive", "tensors of a predefined or user metric as Markdown, LaTeX and JSON",
            "infograv derive schwarzschild --out derived\n"
            "  infograv derive sphere --param n=3 --quantity ricci_scalar\n"
            "  infograv derive --file my_metric.toml --out derived")
    d.add_argument("name", nargs="?", metavar="NAME",
                   help=f"predefined metric, one of: {', '.join(metrics)}")
    d.add_argument("--file", type=Path, metavar="FILE.toml",
                   help="a metric of your own in TOML (coords, params, metric or diagonal)")
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="parameter of a predefined metric (repeatable), e.g. D=6, n=3 "
                   "or phi='-exp(-x1^2)'; dimensions are integers (bounded, see the docs)")
    d.add_argument("--out", type=Path, default=Path("derived"), metavar="DIR",
                   help="output folder: new, empty, or one infograv wrote (default: derived)")
    d.add_argument("--stem", metavar="NAME",
                   help="output file name stem (default: the metric's or the file's name)")
    d.add_argument("--quantity", action="append", choices=quantities, metavar="Q",
                   help=f"only this quantity (repeatable); one of: {', '.join(quantities)} "
                   "(default: all)")
    d.add_argument("--format", action="append", choices=["md", "tex", "json"],
                   help="only this format (repeatable; default: all three)")
    d.add_argument("--simplify", type=float, default=1.0, metavar="SECONDS",
                   help="seconds per component for the simplification used in printing "
                   "(0: print unsimplified; default: 1.0)")
    d.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    d.set_defaults(func=_cmd_derive)

    pp = add("paper", "everything for a paper, into one folder with a report (index.md)",
             "infograv paper --out my-paper --only derivations")
    pp.add_argument("--out", type=Path, default=Path("infograv-paper"), metavar="DIR",
                    help="output folder: new, empty, or one infograv wrote, which is replaced "
                    "(default: infograv-paper)")
    pp.add_argument("--only", action="append", choices=sections, metavar="SECTION",
                    help=f"only this section (repeatable); one of: {', '.join(sections)} "
                         "(real_geodesics uses the fit of validation when both run)")
    pp.add_argument("--skip", action="append", choices=sections, metavar="SECTION",
                    help="leave out this section (repeatable); same names as --only")
    pp.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    pp.set_defaults(func=_cmd_paper)

    v = add("validate", "the empirical study on the real language model",
            "infograv validate --quick --out my-validation")
    mod = _validate_cli()
    if mod is not None:
        mod.add_validate_arguments(v)
    else:
        v.add_argument("--out", type=Path, default=Path("infograv-validation"), metavar="DIR",
                       help="output folder: new, empty, or one infograv wrote, which is "
                       "replaced (default: infograv-validation)")
        v.add_argument("--quick", action="store_true",
                       help="a small subset of prompts and kernels (minutes)")
        v.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    v.set_defaults(func=_cmd_validate)

    artifacts = _choices("artifacts")
    f = add("fetch", "download a real model into the cache (needs the network)",
            "infograv fetch smollm2")
    f.add_argument("name", choices=[*artifacts, "all"], metavar="NAME",
                   help=f"artifact to download: {', '.join(artifacts)}, or all (the "
                   "artifacts fetched by default)")
    f.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="cache folder (default: $INFOGRAV_CACHE or ~/.cache/infograv)")
    f.add_argument("--quiet", action="store_true", help="no download progress on stderr")
    f.set_defaults(func=_cmd_fetch)

    ls = add("list", "what can be derived, plotted and fetched", "infograv list")
    ls.set_defaults(func=_cmd_list)
    return p


def _arg_for(args: argparse.Namespace, filename: Any) -> str:
    """The command-line argument a failing path belongs to (e.g. `--out`), or 'path'."""
    if not filename:
        return "path"
    failed = Path(os.path.abspath(str(filename)))
    for key, val in vars(args).items():
        if isinstance(val, Path):
            mine = Path(os.path.abspath(val))
            if failed == mine or mine in failed.parents or failed in mine.parents:
                return "--" + key.replace("_", "-")
    return "path"


def _message(exc: BaseException, args: argparse.Namespace) -> tuple[str, int]:
    """One line and an exit status for any error of a command."""
    from ._io import OutputConflictError

    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | OutputConflictError):
        if exc.filename is None:  # our own messages already name the argument
            return str(exc), EXIT_INPUT if isinstance(exc, IsADirectoryError |
                                                      NotADirectoryError) else EXIT_FAILURE
        what = _arg_for(args, exc.filename)
        hint = {
            PermissionError: "give a folder you may write to (or change its permissions)",
            IsADirectoryError: "a file was expected there, not a folder",
            NotADirectoryError: "a folder was expected there, not a file",
            FileExistsError: "give a path that does not exist yet",
        }.get(type(exc), "check the path")
        return f"{what}: {exc.filename}: {exc.strerror or exc}; {hint}.", EXIT_FAILURE
    if isinstance(exc, FileNotFoundError | ValueError | TypeError):
        return str(exc), EXIT_INPUT
    if isinstance(exc, RecursionError):
        return ("the input is nested too deeply to process; simplify the expression or file "
                "(run with --debug for the traceback)."), EXIT_INPUT
    if isinstance(exc, MemoryError):
        return ("out of memory; use smaller size parameters (e.g. a smaller --param n) or a "
                "machine with more memory."), EXIT_FAILURE
    if isinstance(exc, RuntimeError):
        return str(exc), EXIT_FAILURE
    return (f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            EXIT_FAILURE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring).

    Example:
        >>> main(["derive", "--format", "pdf"])   # one line on stderr, exit status 2
        2
    """
    import signal

    from ._io import Terminated, handle_termination

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    # The command line computes in float64 (see the module docstring for the library's default).
    import jax

    jax.config.update("jax_enable_x64", True)
    previous = handle_termination()
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        if args.debug:
            traceback.print_exc()
        print(f"infograv {args.command}: interrupted by {signal.Signals(signum).name}; no "
              "partial output was left in place and earlier results are unchanged.",
              file=sys.stderr)
        return 128 + int(signum)
    except Exception as exc:  # every error ends as one line (traceback with --debug)
        if args.debug:
            traceback.print_exc()
        text, status = _message(exc, args)
        print(f"infograv {args.command}: error: {_one_line(text)}", file=sys.stderr)
        return status
    finally:
        handle_termination(previous)


if __name__ == "__main__":
    sys.exit(main())
