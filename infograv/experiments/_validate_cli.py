"""The `infograv validate` subcommand: its options and what runs them."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["add_validate_arguments", "run_validate_command", "EXAMPLE"]

EXAMPLE = """example:
  infograv validate --quick --out study
  infograv validate --prompts my_prompts.jsonl --model smollm2 --kernel logwell.toml \\
      --families harmonic,plummer --quick --out my_study"""


def _families(text: str) -> tuple[str, ...]:
    from ._kernel_fit import FAMILIES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown kernel famil{'ies' if len(bad) > 1 else 'y'} {', '.join(bad) or '(none)'}; "
            f"choose from {', '.join(FAMILIES)} (comma-separated)")
    return names


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _two_or_more(text: str) -> int:
    v = _positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, got {v}")
    return v


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `infograv validate` to `parser` (and its example to the help)."""
    from ._kernel_fit import FAMILIES

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLE
    parser.add_argument("--out", type=Path, default=Path("infograv-validation"), metavar="DIR",
                        help="output folder: new, empty, or one infograv wrote, which is "
                             "replaced (default: %(default)s)")
    parser.add_argument("--prompts", type=Path, default=None, metavar="FILE",
                        help="prompt file: JSONL or CSV with a 'text' field (optional "
                             "'category', 'answer', 'split'), or plain text with one prompt a "
                             "line (default: the built-in prompt set)")
    parser.add_argument("--model", default="smollm2", metavar="NAME|PATH",
                        help="language model: a built-in name, a GGUF file or a Hugging Face "
                             "model folder (default: %(default)s)")
    parser.add_argument("--kernel", action="append", type=Path, default=[], metavar="FILE.toml",
                        help="a user potential in a TOML file (name, potential, [params]); "
                             "repeatable; fitted beside the built-in families")
    parser.add_argument("--families", type=_families, default=None, metavar="LIST",
                        help="comma-separated built-in kernel families, from "
                             f"{', '.join(FAMILIES)} (default: all; with --quick: "
                             "plummer,gaussian,harmonic)")
    parser.add_argument("--quick", action="store_true",
                        help="the quick settings: fewer prompts, families and resamples "
                             "(under a minute on an idle machine)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the model's next-token distributions instead of "
                             "reading them from the on-disk cache")
    parser.add_argument("--seed", type=_int, default=0,
                        help="seed of every random choice (default: %(default)s)")
    parser.add_argument("--bootstrap", type=_positive_int, default=None, metavar="N",
                        help="bootstrap resamples (default: 2000; 500 with --quick)")
    parser.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                        help="L-BFGS step limit of each fit (default: 300; 200 with --quick)")
    parser.add_argument("--fit-prompts", type=_two_or_more, default=None, metavar="N",
                        help="fit the kernels on at most N training prompts, a seeded subsample "
                             "(default: 256; the held-out evaluation always uses every "
                             "held-out prompt)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _settings(args: argparse.Namespace) -> Any:
    from ._validation import ValidationSettings

    s = ValidationSettings.quick() if args.quick else ValidationSettings()
    changes: dict[str, Any] = {"seed": int(args.seed)}
    if args.families is not None:
        changes["families"] = tuple(args.families)
    if args.bootstrap is not None:
        changes["n_boot"] = max(10, int(args.bootstrap))
    if args.steps is not None:
        changes["max_steps"] = int(args.steps)
    if args.fit_prompts is not None:
        changes["max_fit_prompts"] = int(args.fit_prompts)
    return dataclasses.replace(s, **changes)


def run_validate_command(args: argparse.Namespace) -> int:
    """Run `infograv validate` with parsed `args`; returns the exit status (0).

    Raises:
        infograv.lm.ArtifactNotFoundError: the model file is absent.
        ValueError: a bad prompt or kernel file, or too few prompts.
    """
    from .._io import atomic_dir
    from ._validation import run_validation

    settings = _settings(args)
    kernels: list[Any] | None = None
    if args.kernel:
        from ..model import Potential

        from_toml = getattr(Potential, "from_toml", None)
        if from_toml is None:
            raise ValueError("--kernel: this installation cannot read kernel files "
                             "(Potential.from_toml is missing).")
        kernels = list(settings.families) + [from_toml(p) for p in args.kernel]

    from .._paper import Progress

    progress = Progress(quiet=bool(args.quiet))
    with atomic_dir(args.out, command="validate") as tmp:
        run_validation(tmp, settings=settings, prompts=args.prompts, model=args.model,
                       kernels=kernels, cache=not args.no_cache, progress=progress)
    print(Path(args.out).resolve())
    return 0
