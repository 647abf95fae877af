"""Atomic output: nothing is left half-written.

Every file infograv writes goes to a temporary name in the same folder and is renamed into
place once complete (`os.replace` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "atomic_dir", "replace_dir", "write_text", "write_json", "write_csv"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (d / "a.txt").read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Move the finished folder `new` to `target`, replacing an old `target` by two renames."""
    new, target = Path(new), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary folder next to `path`; it replaces `path` only on success.

    An exception inside the block removes the temporary folder and leaves `path` as it was.
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        yield work
        replace_dir(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` atomically (UTF-8) and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return _jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented JSON atomically; arrays become lists, non-finite floats strings."""
    return write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def write_dataset_json(path: str | os.PathLike[str], data: Mapping[str, Any], **extra: Any) -> Path:
    """Write an experiment's `settings` and `summary` (plus `extra` entries) as JSON atomically."""
    return write_json(path, {"settings": data["settings"], "summary": data["summary"], **extra})


def write_csv(
    path: str | os.PathLike[str], columns: Mapping[str, Sequence[Any] | np.ndarray]
) -> Path:
    """Write equal-length `columns` (`{name: values}`) as a CSV file atomically.

    Raises:
        ValueError: the columns have different lengths, or there are none.
    """
    if not columns:
        raise ValueError("columns: need at least one column.")
    cols = {k: np.asarray(v).reshape(-1) for k, v in columns.items()}
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"columns: all columns must have the same length, got {lengths}.")
    n = next(iter(lengths.values()))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(list(cols))
            for i in range(n):
                w.writerow([_jsonable(cols[k][i]) for k in cols])
    return Path(path)
