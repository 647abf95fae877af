"""Per-prompt model outputs cached on disk, so that a rerun with other kernels or statistics does
not run the language model again.

Contract (used by the empirical study, usable by anyone):
[`cached_distributions`][infograv.experiments._dist_cache.cached_distributions]`(model, texts,
settings=..., compute=...)` returns exactly what `compute(texts)` returns (arrays whose first axis
is the prompt), computing only the prompts that are not cached yet. An entry is keyed by the
SHA-256 of the model's file(s), the prompt text and the settings; it lives under
`infograv.data.cache_dir() / "distributions"` unless `cache_dir` is given.

Storage, per prompt, one `.npz` file (no pickle) holding the prompt's row of each array, a JSON
header (format version, model hash, settings, text, dtypes and shapes) and the SHA-256 of the
stored bytes. A row is stored as float32 when that is exact (the value round-trips, which is the
case for outputs a model computes in float32 and returns as float64); otherwise in its own
dtype. So a hit returns bit-for-bit the arrays a miss returned, and the cache is lossless. For a
vocabulary of 49,152 tokens (SmolLM2) a prompt takes about 200 kB; for 262,144 (Gemma 3), about
1 MB. Writes are atomic (a temporary file renamed into place), so an interrupted run leaves either
a complete entry or none. An entry that cannot be read, whose header does not match its key, or
whose bytes do not match their checksum is treated as missing: recomputed and overwritten, never
trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cached_distributions", "model_sha256", "distribution_cache_dir", "entry_path",
           "FORMAT_VERSION"]

FORMAT_VERSION = 1
"""Bumped whenever the entry layout changes (old entries are then simply not found)."""

def distribution_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: `cache_dir`, or `infograv.data.cache_dir()/distributions` by default.

    Example:
        >>> distribution_cache_dir("/tmp/x").as_posix()
        '/tmp/x'
    """
    if cache_dir is not None:
        return Path(cache_dir)
    from ..data import cache_dir as _root

    return Path(_root()) / "distributions"


def _file_sha(path: Path) -> str:
    from ..data import file_sha256  # memoised on (path, size, modification time)

    return file_sha256(path)


def model_sha256(model: Any) -> str:
    """The SHA-256 that identifies a model's weights and tokenizer.

    Arguments:
        model: an object with a `.path` (a loaded `infograv.lm.LanguageModel`), a path to the
            model file (GGUF) or folder (Hugging Face: every file in it, by relative name), or
            a string `"sha256:<64 hex digits>"` for a model identified otherwise.

    Returns:
        64 hexadecimal digits. Hashes are remembered per (path, size, modification time), so a
        large file is read once per process.

    Raises:
        TypeError: `model` is none of the above.
        ValueError: the path does not exist, or a malformed `"sha256:"` string.

    Example:
        >>> model_sha256("sha256:" + "ab" * 32) == "ab" * 32
        True
    """
    if isinstance(model, str) and model.startswith("sha256:"):
        digest = model[len("sha256:"):].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"model: {model!r} is not 'sha256:' followed by 64 hex digits.")
        return digest
    path = getattr(model, "path", model)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"model: expected a loaded language model (with .path), a model file or folder, or "
            f"'sha256:<hex>', got {type(model).__name__}."
        )
    path = Path(path)
    if path.is_file():
        return _file_sha(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(path).parts)):
            h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
            h.update(_file_sha(f).encode("ascii") + b"\n")
        return h.hexdigest()
    raise ValueError(f"model: {str(path)!r} does not exist; cannot identify the model.")


def _settings_json(settings: Any) -> str:
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings: expected a dict of JSON values, got {type(settings).__name__}.")
    try:
        return json.dumps(settings, sort_keys=True, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"settings: must hold JSON values only (str, numbers, bools, None, "
                        f"lists, dicts): {exc}.") from None


def _key(model_sha: str, settings_json: str, text: str) -> str:
    blob = json.dumps([FORMAT_VERSION, model_sha, settings_json, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def entry_path(root: Path, model_sha: str, key: str) -> Path:
    """Where an entry lives: `root/<model hash, 16 digits>/<key[:2]>/<key>.npz`."""
    return root / model_sha[:16] / key[:2] / f"{key}.npz"


def _storage(row: np.ndarray) -> np.ndarray:
    """float32 when the row round-trips through it exactly, else the row unchanged."""
    if row.dtype == np.float64:
        narrow = row.astype(np.float32)
        if np.array_equal(narrow.astype(np.float64), row, equal_nan=True):
            return narrow
    return row


def _digest(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _write(path: Path, header: dict[str, Any], rows: Sequence[np.ndarray], single: bool
           ) -> None:
    from .._io import atomic_path

    stored = [_storage(r) for r in rows]
    head = dict(header, dtypes=[str(r.dtype) for r in rows], shapes=[list(r.shape) for r in rows],
                digest=_digest(stored), single=single)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"a{i}": s for i, s in enumerate(stored)}
    arrays["header"] = np.frombuffer(json.dumps(head).encode("utf-8"), np.uint8)
    np.savez(buf, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _read(path: Path, header: dict[str, Any]) -> tuple[list[np.ndarray], bool] | None:
    """`(rows, single)` of a valid entry; `None` when absent, unreadable or not matching its key.

    `single` records whether `compute` returned one array (not a tuple).
    """
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
            head = json.loads(bytes(z["header"]).decode("utf-8"))
            if any(head.get(k) != v for k, v in header.items()):
                return None
            stored = [z[f"a{i}"] for i in range(len(head["dtypes"]))]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            json.JSONDecodeError, TypeError):
        return None
    if head.get("digest") != _digest(stored):
        return None
    try:
        rows = [s.astype(np.dtype(dt)) for s, dt in zip(stored, head["dtypes"], strict=True)]
    except (TypeError, ValueError):
        return None
    if [list(r.shape) for r in rows] != head.get("shapes"):
        return None
    return rows, bool(head.get("single", False))


def _as_arrays(out: Any, n: int) -> tuple[list[np.ndarray], bool]:
    single = not isinstance(out, (tuple, list))
    arrays = [np.asarray(a) for a in ([out] if single else out)]
    for i, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[0] != n:
            raise ValueError(
                f"compute: output {i} has shape {a.shape}; every output must have the prompts "
                f"on its first axis ({n} rows for {n} texts)."
            )
    return arrays, single


def cached_distributions(
    model: Any,
    texts: Sequence[str],
    *,
    settings: Mapping[str, Any],
    compute: Callable[[list[str]], Any],
    cache_dir: str | os.PathLike[str] | None = None,
    enabled: bool = True,
    stats: dict[str, int] | None = None,
) -> Any:
    """`compute(texts)`, with each prompt's rows cached on disk.

    Arguments:
        model: identifies the weights: a loaded language model (its `.path` is hashed), a
            model file or folder, or `"sha256:<hex>"` (see
            [`model_sha256`][infograv.experiments._dist_cache.model_sha256]).
        texts: the prompts (order kept; repeats allowed).
        settings: everything else the outputs depend on (e.g. `{"kind": "next_token",
            "temperature": 1.0}`), as JSON values; entries for other settings are not reused.
        compute: `compute(list_of_texts)` returns an array, or a tuple/list of arrays, whose
            first axis is the prompt (`len(list_of_texts)` rows). It is called once, with the
            prompts not found in the cache (in their order), or not at all.
        cache_dir: the cache folder (default `infograv.data.cache_dir()/distributions`).
        enabled: `False` calls `compute(texts)` and touches no file (`--no-cache`).
        stats: optional dict that receives the counts `hits`, `misses` and `corrupt` (entries
            found but rejected and recomputed).

    Returns:
        The same structure `compute` returns (one array, or a tuple of arrays), as NumPy arrays
        of shape `(len(texts), ...)` and `compute`'s dtypes, identical whether rows came from
        the cache or from `compute`. A cache folder that cannot be written gives a
        `RuntimeWarning` and the results (uncached).

    Raises:
        TypeError: bad `model` or `settings` (named).
        ValueError: `compute` returned arrays without one row per prompt, or rows whose shapes
            differ between cached and fresh prompts (the message says which).

    Example:
        >>> import numpy as np, tempfile
        >>> calls = []
        >>> def compute(ts):
        ...     calls.append(list(ts))
        ...     return np.array([[len(t), 1.0] for t in ts]), np.zeros((len(ts), 3))
        >>> d = tempfile.mkdtemp()
        >>> kw = dict(settings={"kind": "demo"}, compute=compute, cache_dir=d)
        >>> lp, h = cached_distributions("sha256:" + "0" * 64, ["a", "bb"], **kw)
        >>> lp2, _ = cached_distributions("sha256:" + "0" * 64, ["bb", "ccc"], **kw)
        >>> calls, lp2[:, 0].tolist()
        ([['a', 'bb'], ['ccc']], [2.0, 3.0])
    """
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}]: expected a string, got {type(t).__name__}.")
    settings_json = _settings_json(settings)
    counts = {"hits": 0, "misses": 0, "corrupt": 0}
    if not enabled or not texts:
        counts["misses"] = len(texts)
        if stats is not None:
            stats.update(counts)
        return compute(texts)
    sha = model_sha256(model)
    root = distribution_cache_dir(cache_dir)
    rows: dict[str, list[np.ndarray]] = {}
    missing: list[str] = []
    single = False
    for t in dict.fromkeys(texts):
        key = _key(sha, settings_json, t)
        path = entry_path(root, sha, key)
        header = {"v": FORMAT_VERSION, "model": sha, "settings": settings_json, "text": t}
        got = _read(path, header)
        if got is None:
            if path.exists():
                counts["corrupt"] += 1
            missing.append(t)
        else:
            rows[t], single = got
            counts["hits"] += 1
    if missing:
        fresh, single = _as_arrays(compute(missing), len(missing))
        writable = True
        for j, t in enumerate(missing):
            r = [a[j] for a in fresh]
            rows[t] = r
            header = {"v": FORMAT_VERSION, "model": sha, "settings": settings_json, "text": t}
            if writable:
                try:
                    _write(entry_path(root, sha, _key(sha, settings_json, t)), header, r, single)
                except OSError as exc:
                    writable = False  # the results stand; only the cache is lost
                    warnings.warn(f"distribution cache: cannot write under {root} "
                                  f"({exc.strerror or exc}); continuing without caching.",
                                  RuntimeWarning, stacklevel=2)
        counts["misses"] = len(missing)
    n_out = len(rows[texts[0]])
    if stats is not None:
        stats.update(counts)
    out = []
    for i in range(n_out):
        parts = [rows[t][i] for t in texts]
        shapes = {p.shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"compute: output {i} has rows of different shapes {sorted(shapes)} "
                             "between cached and fresh prompts; clear the cache folder "
                             f"{root} or change the settings.")
        out.append(np.stack(parts))
    return out[0] if single else tuple(out)

