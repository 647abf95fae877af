"""Atomic output that never deletes what infograv did not write.

Every file infograv writes goes to a temporary name in the same folder and is renamed into
place once complete (`os.replace` is atomic on POSIX and Windows). Every folder infograv writes
carries a manifest, `.infograv-manifest.json`, listing the files it wrote. An existing output
folder is replaced (or added to) only when it is empty or holds such a manifest and nothing
besides the files listed there; an existing file, or a folder with anything else in it, is
refused with `OutputConflictError` naming the path, and nothing is touched. Files and folders
get the permissions the process umask gives (like `open` and `mkdir`), not the private modes of
`tempfile`.

Termination signals (SIGTERM, SIGHUP, SIGINT) become a `Terminated` exception through
`handle_termination`, so the clean-up code (the `finally` blocks below) runs; the steps that
must not be cut in two (creating a temporary folder or file, the two renames of a replacement,
removing a temporary) run in `critical()`, which defers a signal to its end.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST",
    "OutputConflictError",
    "Terminated",
    "atomic_path",
    "atomic_dir",
    "check_output_dir",
    "critical",
    "handle_termination",
    "read_manifest",
    "replace_dir",
    "update_dir",
    "write_text",
    "write_json",
    "write_csv",
]

#: The name of the manifest file in every folder infograv writes.
MANIFEST = ".infograv-manifest.json"
_FORMAT = "infograv-output/1"


class OutputConflictError(ValueError):
    """An output path exists and infograv did not write it (or holds files it did not write)."""


class Terminated(KeyboardInterrupt):
    """The process received a termination signal (SIGTERM, SIGHUP or SIGINT).

    A subclass of `KeyboardInterrupt`, so code that cleans up after Ctrl-C cleans up after
    `timeout` and batch schedulers too. `signum` is the signal number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


_state: dict[str, Any] = {"depth": 0, "pending": None}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state["depth"] > 0:  # inside a step that must not be cut in two: raise at its end
        _state["pending"] = signum
        return
    raise Terminated(signum)


def _unraisable(hook: Any) -> Any:
    """Wrap `sys.unraisablehook`: a `Terminated` raised where Python cannot propagate it (a
    garbage-collection callback, a `__del__`) is delivered again instead of being lost."""

    def on_unraisable(info: Any) -> None:
        if isinstance(info.exc_value, Terminated):
            # sent again from a helper thread a moment later, once the callback has returned
            # (a signal sent from here would be handled, and lost, inside this hook)
            import threading

            timer = threading.Timer(0.05, os.kill, (os.getpid(), info.exc_value.signum))
            timer.daemon = True
            timer.start()
            return
        hook(info)

    on_unraisable.previous = hook  # type: ignore[attr-defined]
    return on_unraisable


def handle_termination(previous: dict[int, Any] | None = None) -> dict[int, Any]:
    """Turn SIGTERM, SIGHUP and SIGINT into `Terminated`; return the handlers replaced.

    A signal the process was started with set to be ignored stays ignored (so `nohup infograv
    paper` survives the end of the session, and a background job of a shell ignores Ctrl-C as
    the shell intends). Called with the dictionary an earlier call returned, it puts those
    handlers back instead. Only the main thread can set signal handlers; elsewhere this does
    nothing.
    """
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    if previous is not None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = getattr(sys.unraisablehook, "previous", sys.unraisablehook)
        return {}
    _state.update(depth=0, pending=None)
    replaced: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            replaced[sig] = signal.signal(sig, _on_signal)
    sys.unraisablehook = _unraisable(sys.unraisablehook)
    return replaced


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Defer a termination signal (see `handle_termination`) to the end of the block."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"] is not None:
            pending: int = _state["pending"]
            _state["pending"] = None
            raise Terminated(pending)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_default(path: Path, *, folder: bool) -> None:
    """Give `path` the mode `open`/`mkdir` would have given it under the current umask."""
    mode = (0o777 if folder else 0o666) & ~_umask()
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def _mkdtemp_near(target: Path) -> Path:
    with critical():
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        _chmod_default(work, folder=True)
        _live.add(work)
    return work


_live: set[Path] = set()  # temporary folders of this process not yet renamed or removed


def _remove_temp(work: Path) -> None:
    with critical():
        shutil.rmtree(work, ignore_errors=True)
        _live.discard(work)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    The file gets the mode the umask gives (as `open` would), not `tempfile`'s 0600.

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
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; a file was to be written there.")
    with critical():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        _chmod_default(tmp_path, folder=False)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        with critical():
            if tmp_path.exists():
                tmp_path.unlink()


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of an infograv output folder, or `None` if `folder` has none (or a bad one)."""
    f = Path(folder) / MANIFEST
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return None
    if not isinstance(data.get("files"), list):
        return None
    return data


def _files_under(folder: Path) -> list[str]:
    rels = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    return sorted(r for r in rels if r != MANIFEST)


def _foreign(folder: Path, manifest: dict[str, Any] | None) -> list[str]:
    """Entries of `folder` that its manifest does not list (files, links, empty folders)."""
    listed = set(manifest["files"]) if manifest else set()
    dirs = {q.as_posix() for f in listed for q in Path(f).parents if q != Path(".")}
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if rel == MANIFEST:
            continue
        if p.is_dir() and not p.is_symlink():
            if rel not in dirs:
                out.append(rel + "/")
        elif rel not in listed:
            out.append(rel)
    # a foreign folder's contents are reported through the folder itself
    return [r for r in out if not any(r != o and r.startswith(o) for o in out if o.endswith("/"))]


def check_output_dir(path: str | os.PathLike[str], *, what: str = "--out") -> Path | None:
    """Check that infograv may write the folder `path`; return its manifest's folder or None.

    Allowed: `path` does not exist; it is an empty folder; it is a folder with an infograv
    manifest and no file the manifest does not list.

    Raises:
        OutputConflictError: `path` is a file (or a link, or something else), or a folder holding
            anything infograv did not write; the message names the path and the entries.
    """
    p = Path(path)
    if p.is_symlink():
        raise OutputConflictError(
            f"{what}: {p} is a symbolic link; infograv replaces an output folder by renaming, "
            "which would replace the link, not write through it: give the folder's own path."
        )
    if p.exists() and not p.is_dir():
        raise OutputConflictError(
            f"{what}: {p} exists and is not a folder; infograv writes a folder there and never "
            "deletes a file it did not write: give a new folder name or remove the file yourself."
        )
    if not p.exists():
        return None
    try:
        manifest = read_manifest(p)
        foreign = _foreign(p, manifest)
    except PermissionError as exc:
        raise PermissionError(f"{what}: cannot read the folder {p} ({exc.strerror}).") from None
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        why = ("it holds files infograv did not write" if manifest else
               "it is not a folder infograv wrote (no " + MANIFEST + ")")
        raise OutputConflictError(
            f"{what}: {p} already exists and {why}: {shown}. infograv never deletes what it did "
            "not write: give a new or empty folder, or a folder infograv wrote before."
        )
    return p


def _manifest_data(folder: Path, command: str | None, files: Sequence[str]) -> dict[str, Any]:
    from . import __version__

    return {"format": _FORMAT, "written_by": f"infograv {__version__}",
            "command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": sorted(set(files))}


def _write_manifest(folder: Path, command: str | None, files: Sequence[str]) -> None:
    write_json(folder / MANIFEST, _manifest_data(folder, command, files))


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str], *,
                what: str = "--out", command: str | None = None) -> None:
    """Move the finished folder `new` to `target`, replacing an old `target` by two renames.

    `new` gets a manifest listing its files (unless it has one). An existing `target` is replaced
    only if `check_output_dir` allows it; the two renames run in `critical()`, so a signal
    cannot leave `target` missing.

    Raises:
        OutputConflictError: `target` exists and infograv did not write it.
    """
    new, target = Path(new), Path(target)
    if read_manifest(new) is None:
        _write_manifest(new, command, _files_under(new))
    check_output_dir(target, what=what)
    old = None
    with critical():
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        try:
            os.replace(new, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)
            raise
        _live.discard(new)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, what: str = "--out",
               command: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder next to `path`; it replaces `path` only on success.

    `path` is checked first (`check_output_dir`), before any work: an existing file or a folder
    infograv did not write is refused at once. An exception inside the block removes the
    temporary folder and leaves `path` as it was.

    Raises:
        OutputConflictError: `path` exists and infograv did not write it.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> with atomic_dir(d) as tmp:
        ...     _ = (tmp / "a.txt").write_text("hello")
        >>> sorted(p.name for p in d.iterdir())
        ['.infograv-manifest.json', 'a.txt']
    """
    check_output_dir(path, what=what)  # the message names the path as the user gave it
    target = Path(os.path.abspath(path))
    created = [p for p in target.parents if not p.exists()]  # deepest first
    target.parent.mkdir(parents=True, exist_ok=True)
    work = _mkdtemp_near(target)
    ok = False
    try:
        yield work
        replace_dir(work, target, what=what, command=command)
        ok = True
    finally:
        if work.exists():
            _remove_temp(work)
        if not ok:  # a failed run leaves no folder it created on the way
            with critical():
                for p in created:
                    try:
                        p.rmdir()
                    except OSError:
                        break


def update_dir(path: str | os.PathLike[str], files: Mapping[str, str], *, what: str = "--out",
               command: str | None = None) -> list[Path]:
    """Write the text `files` (`{relative name: text}`) into the folder `path`, adding to it.

    A new folder is built under a temporary name and renamed into place, manifest included. An
    existing folder (checked by `check_output_dir`) gets each file atomically, after its manifest
    has been extended with the new names, so the folder stays recognisable at every moment.

    Returns:
        The paths written.

    Raises:
        OutputConflictError: `path` exists and infograv did not write it.
    """
    target = Path(os.path.abspath(path))
    if check_output_dir(target, what=what) is None:
        with atomic_dir(target, what=what, command=command) as tmp:
            for name, text in files.items():
                write_text(tmp / name, text)
        return [Path(path) / name for name in files]
    manifest = read_manifest(target)
    old = list(manifest["files"]) if manifest else []
    _write_manifest(target, command, old + list(files))
    return [write_text(Path(path) / name, text) for name, text in files.items()]


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
