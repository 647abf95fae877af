"""One figure style for every figure infograv makes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

from .._io import atomic_path

__all__ = ["paper_style", "save_figure"]

_RC: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "lines.linewidth": 1.3,
    "image.cmap": "viridis",
    "pdf.fonttype": 42,
    "savefig.bbox": "tight",
}


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Context manager: matplotlib settings for a single-column paper figure.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> with paper_style():
        ...     fig, ax = plt.subplots(figsize=(3.4, 2.4))
        >>> plt.close(fig)
    """
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        yield


def save_figure(fig: matplotlib.figure.Figure, stem: str | os.PathLike[str]) -> list[Path]:
    """Save `fig` as `stem.pdf` (vector) and `stem.png` (200 dpi), each atomically, and close it.

    Returns:
        The two paths written.
    """
    import matplotlib.pyplot as plt

    stem = Path(stem)
    out = []
    for ext in ("pdf", "png"):
        target = stem.with_suffix(f".{ext}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext)
        out.append(target)
    plt.close(fig)
    return out
