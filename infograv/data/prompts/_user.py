"""A user's own prompts: JSONL, CSV or plain text, read into a `PromptSet`.

The data layout (documented in `docs/model/your_prompts.md`): each prompt has a `text` (the
only required field; the model continues it), an optional `category` (statistics are reported
per category when present), an optional expected `answer`, and an optional `split` (`"train"`
or `"test"`; when missing, a deterministic split by the SHA-256 of the text). Every other field
is kept, unchanged, in the prompt's `metadata`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["PromptItem", "PromptSet", "PromptFileError", "load_prompts", "builtin_prompts",
           "hash_split", "FORMATS", "PROMPT_SPLITS"]

FORMATS = ("jsonl", "csv", "txt")
"""The accepted file formats."""

PROMPT_SPLITS = ("train", "test")
"""The split names of a `PromptSet`."""

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "txt"}
_FIELDS = ("text", "category", "answer", "split")
MAX_FILE_BYTES = 200_000_000
MAX_TEXT_CHARS = 100_000


class PromptFileError(ValueError):
    """A prompt file that cannot be read; the message names the file, the line and the field."""


@dataclasses.dataclass(frozen=True)
class PromptItem:
    """One prompt.

    Attributes:
        text: the prompt; the model continues it.
        category: its category, or `None`.
        answer: the expected completion, or `None`.
        split: `"train"` or `"test"`.
        metadata: every other field of the record (JSON values; strings for CSV), plus
            `"line"` (1-based line in the file) for prompts read from a file.
    """

    text: str
    category: str | None
    answer: str | None
    split: str
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """An ordered set of prompts with categories, answers and a train/test split.

    Build one with [`load_prompts`][infograv.data.load_prompts] (a file) or
    [`builtin_prompts`][infograv.data.builtin_prompts] (the shipped set).

    Attributes:
        items: the prompts, in file order.
        source: the file it was read from, or `"built-in"`.

    Example:
        >>> from infograv.data import builtin_prompts
        >>> ps = builtin_prompts()
        >>> len(ps), len(ps.train()) + len(ps.test()) == len(ps)
        (310, True)
        >>> ps.categories[0], ps.split[0]
        ('factual', 'train')
    """

    items: tuple[PromptItem, ...]
    source: str = "prompts"

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[PromptItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> PromptItem:
        return self.items[i]

    @property
    def texts(self) -> list[str]:
        """The prompt texts."""
        return [p.text for p in self.items]

    @property
    def categories(self) -> list[str | None]:
        """The categories (`None` where a prompt has none)."""
        return [p.category for p in self.items]

    @property
    def answers(self) -> list[str | None]:
        """The expected answers (`None` where a prompt has none)."""
        return [p.answer for p in self.items]

    @property
    def split(self) -> list[str]:
        """The split of each prompt, `"train"` or `"test"`."""
        return [p.split for p in self.items]

    @property
    def has_categories(self) -> bool:
        """Whether every prompt has a category (else only pooled statistics are meaningful)."""
        return bool(self.items) and all(p.category is not None for p in self.items)

    @property
    def category_names(self) -> tuple[str, ...]:
        """The distinct categories, in order of first appearance."""
        return tuple(dict.fromkeys(p.category for p in self.items if p.category is not None))

    def train(self) -> PromptSet:
        """The prompts of the `"train"` split."""
        return PromptSet(tuple(p for p in self.items if p.split == "train"), self.source)

    def test(self) -> PromptSet:
        """The prompts of the `"test"` split."""
        return PromptSet(tuple(p for p in self.items if p.split == "test"), self.source)

    def sha256(self) -> str:
        """A fingerprint of the texts, categories, answers and splits (for records)."""
        h = hashlib.sha256()
        for p in self.items:
            h.update(json.dumps([p.text, p.category, p.answer, p.split]).encode("utf-8"))
            h.update(b"\n")
        return h.hexdigest()

    def info(self) -> dict[str, Any]:
        """Source, size, fingerprint and counts per split and category (recorded with results)."""
        counts: dict[str, dict[str, int]] = {}
        for p in self.items:
            c = counts.setdefault(p.category or "(none)", {s: 0 for s in PROMPT_SPLITS})
            c[p.split] += 1
        return {"source": self.source, "n_prompts": len(self), "sha256": self.sha256(),
                "has_categories": self.has_categories, "counts": counts}


def hash_split(text: str, train_fraction: float = 0.7) -> str:
    """The split of a prompt without one: `"train"` when `u < train_fraction`, else `"test"`.

    `u` is the first 8 bytes of the SHA-256 of the UTF-8 text, read as an unsigned integer
    and divided by 2^64: deterministic, independent of the order and number of prompts.

    Example:
        >>> import hashlib
        >>> t = "The capital of France is"
        >>> u = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big") / 2**64
        >>> hash_split(t) == ("train" if u < 0.7 else "test")
        True
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: must lie in (0, 1), got {train_fraction!r}.")
    u = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64
    return "train" if u < train_fraction else "test"


def _err(path: Path, line: int | None, msg: str) -> PromptFileError:
    where = f"{path}" if line is None else f"{path}, line {line}"
    return PromptFileError(f"{where}: {msg}")


def _optional_str(value: Any, field: str, path: Path, line: int, *, numbers: bool) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value):
        return str(value)
    kind = "a string, a number or null" if numbers else "a string or null"
    raise _err(path, line, f"field '{field}' must be {kind}, got {value!r}.")


def _item(rec: Mapping[str, Any], path: Path, line: int, train_fraction: float) -> PromptItem:
    if "text" not in rec:
        raise _err(path, line, "field 'text' is missing (it is the only required field; "
                               f"known fields: {', '.join(_FIELDS)}).")
    text = rec["text"]
    if not isinstance(text, str) or not text.strip():
        raise _err(path, line, f"field 'text' must be a non-empty string, got {text!r}.")
    if len(text) > MAX_TEXT_CHARS:
        raise _err(path, line, f"field 'text' has {len(text)} characters; at most "
                               f"{MAX_TEXT_CHARS}.")
    category = _optional_str(rec.get("category"), "category", path, line, numbers=False)
    answer = _optional_str(rec.get("answer"), "answer", path, line, numbers=True)
    split = _optional_str(rec.get("split"), "split", path, line, numbers=False)
    if split is None:
        split = hash_split(text, train_fraction)
    elif split not in PROMPT_SPLITS:
        raise _err(path, line, f"field 'split' must be 'train', 'test' or empty (then a hash "
                               f"of the text decides), got {split!r}.")
    meta = {k: v for k, v in rec.items() if k not in _FIELDS}
    meta["line"] = line
    return PromptItem(text, category, answer, split, meta)


def _read_jsonl(text: str, path: Path, tf: float) -> list[PromptItem]:
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _err(path, n, f"not valid JSON ({exc.msg} at column {exc.colno}); each line "
                                'must be one object such as {"text": "..."}.') from None
        except RecursionError:
            raise _err(path, n, "not valid JSON (nested too deeply).") from None
        if not isinstance(rec, dict):
            raise _err(path, n, f"expected a JSON object such as {{\"text\": \"...\"}}, got "
                                f"{type(rec).__name__}.")
        out.append(_item(rec, path, n, tf))
    return out


def _read_csv(text: str, path: Path, tf: float) -> list[PromptItem]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise _err(path, 1, f"not valid CSV ({exc}).") from None
    names = [h.strip() for h in header]
    if "text" not in names:
        raise _err(path, 1, f"the header has no 'text' column (found: {', '.join(names)}); "
                            f"known columns: {', '.join(_FIELDS)}.")
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise _err(path, 1, f"repeated column(s) {', '.join(dup)} in the header.")
    out = []
    try:
        for row in reader:
            n = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(names):
                raise _err(path, n, f"{len(row)} fields, but the header has {len(names)} "
                                    f"({', '.join(names)}).")
            out.append(_item(dict(zip(names, row, strict=True)), path, n, tf))
    except csv.Error as exc:
        raise _err(path, reader.line_num, f"not valid CSV ({exc}).") from None
    return out


def _read_txt(text: str, path: Path, tf: float) -> list[PromptItem]:
    return [_item({"text": raw}, path, n, tf)
            for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "txt": _read_txt}


def load_prompts(path: str | Path, *, format: str | None = None,
                 train_fraction: float = 0.7) -> PromptSet:
    """Read a user's prompts from a JSONL, CSV or plain-text file.

    - **JSONL** (`.jsonl`, `.ndjson`): one JSON object a line,
      `{"text": ..., "category": ..., "answer": ..., "split": ...}`; only `text` is required;
      blank lines are skipped; other fields are kept in `metadata`.
    - **CSV** (`.csv`): a header row naming the columns (`text` required, the same optional
      columns; extra columns kept in `metadata` as strings); an empty cell is a missing value.
    - **Plain text** (`.txt`): one prompt a line (the line as written, without its line end);
      blank lines are skipped.

    The file is UTF-8 (a byte-order mark is allowed). `split` is `"train"` or `"test"`; when it
    is missing, [`hash_split`][infograv.data.hash_split] decides from the text, so
    the split does not depend on the order of the file. Texts must be distinct (a repeated
    prompt would count twice and could sit in both splits).

    Arguments:
        path: the file.
        format: `"jsonl"`, `"csv"` or `"txt"`; by default from the file's suffix.
        train_fraction: the share of prompts without a `split` that go to `"train"`.

    Returns:
        A [`PromptSet`][infograv.data.PromptSet].

    Raises:
        PromptFileError: (a `ValueError`) a missing, unreadable, binary or empty file, an
            unknown suffix, or a bad record: the message names the file, the line and the field.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "mine.jsonl"
        >>> _ = f.write_text('{"text": "The sky is", "category": "open", "source": "me"}\\n'
        ...                  '{"text": "2 + 2 =", "answer": 4, "split": "test"}\\n')
        >>> ps = load_prompts(f)
        >>> ps.texts, ps.split[1], ps[1].answer, ps[0].metadata["source"]
        (['The sky is', '2 + 2 ='], 'test', '4', 'me')
    """
    path = Path(path)
    if format is None:
        format = _SUFFIXES.get(path.suffix.lower())
        if format is None:
            raise _err(path, None, f"unknown suffix {path.suffix!r}; use "
                                   f"{', '.join(sorted(_SUFFIXES))} or pass format= one of "
                                   f"{', '.join(FORMATS)}.")
    elif format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)} or None, got "
                         f"{format!r}.")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: must lie in (0, 1), got {train_fraction!r}.")
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise _err(path, None, "is a folder; give a prompt file.")
        if size > MAX_FILE_BYTES:
            raise _err(path, None, f"has {size} bytes; a prompt file may have at most "
                                   f"{MAX_FILE_BYTES}.")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _err(path, None, "does not exist.") from None
    except PermissionError:
        raise _err(path, None, "cannot be read (permission denied).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise _err(path, line, f"not UTF-8 text (byte {exc.start}); is it a binary file? "
                               "Save the prompts as UTF-8.") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise _err(path, line, "contains a NUL character; is it a binary file?")
    items = _READERS[format](text, path, train_fraction)
    if not items:
        raise _err(path, None, "holds no prompts.")
    seen: dict[str, int] = {}
    for it in items:
        first = seen.setdefault(it.text, it.metadata["line"])
        if first != it.metadata["line"]:
            raise _err(path, it.metadata["line"], f"field 'text' repeats the prompt of line "
                                                  f"{first}; texts must be distinct.")
    return PromptSet(tuple(items), str(path))


def builtin_prompts() -> PromptSet:
    """The validation prompt set shipped with infograv, as a [`PromptSet`][infograv.data.PromptSet].

    The stored `"heldout"` split is the `"test"` split here; each prompt's `id` and `source`
    are in its `metadata`. See [`infograv.data.prompts.load_prompts`][] for the set itself.

    Example:
        >>> ps = builtin_prompts()
        >>> ps.category_names
        ('factual', 'open', 'invented', 'nonsense')
        >>> ps[0].metadata["id"]
        'factual-000'
    """
    from ._load import load_prompts as _builtin

    items = tuple(
        PromptItem(p.text, p.category, p.answer or None,
                   "train" if p.split == "train" else "test",
                   {"id": p.id, "source": p.source})
        for p in _builtin()
    )
    return PromptSet(items, "built-in")

