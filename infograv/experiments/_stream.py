r"""The study's next-token distributions, streamed: memory flat in the number of prompts.

A full next-token distribution is one row of `V` log-probabilities (49,152 for SmolLM2, 262,144
for Gemma 3): about 0.4–2 MB a prompt in float64, tens of GB at $10^4$ prompts. The study needs
the full rows only where a fitted model is compared with them (the fit and the held-out KL);
everything else reads per-prompt summaries. So
[`stream_distributions`][infograv.experiments._stream.stream_distributions] runs the language
model over chunks of prompts and keeps

- in memory, per prompt: the final hidden state $h$ `(d,)`, the next-token entropy
  $H = -\sum_i p_i\log p_i$ (through [`infograv.model.thermodynamics`][]), the most likely
  token, and the mass outside the `neighbourhood_k` tokens nearest to $h$ by angle
  ([`next_token_summaries`][infograv.experiments._stream.next_token_summaries]);
- on disk, in a scratch file, the raw rows exactly as the model returned them (float32 for a
  float32 forward pass, so nothing is rounded), read back chunk by chunk and renormalised in
  float64 on every read (the same numbers as holding them in memory).

The scratch file is plain reads and writes, never memory-mapped, so it is not part of the
process's resident memory; it is deleted when the store is closed.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..model import thermodynamics
from ..model._fit import _BLOCK_ELEMS, normalised

__all__ = ["DistributionStore", "Rows", "stream_distributions", "next_token_summaries",
           "normalised", "chunk_rows"]

def chunk_rows(n: int, width: int, budget: int | None = None) -> int:
    """Prompts per chunk: at most `budget // width` (default budget 2**22 elements), split
    evenly so that the last chunk is not much smaller than the others (fewer shapes to
    compile).

    Example:
        >>> chunk_rows(93, 49152), chunk_rows(10, 49152)
        (47, 10)
    """
    if n <= 0:
        return 1
    cap = max(1, (_BLOCK_ELEMS if budget is None else int(budget)) // max(1, width))
    return math.ceil(n / math.ceil(n / cap))


def next_token_summaries(logp: np.ndarray, hidden: np.ndarray, unit_embedding: np.ndarray,
                         neighbourhood_k: int) -> dict[str, np.ndarray]:
    r"""Per-prompt summaries of next-token distributions (the voids and mass claims read these).

    With $p = \exp(\text{logp})$ (rows renormalised here):

    - `entropy` `(B,)`: $H = -\sum_i p_i \log p_i$ in nats
      ([`thermodynamics`][infograv.model.thermodynamics] of the energies $-\log p$ at $T = 1$);
    - `outside_mass` `(B,)`: $1 - \sum_{i \in N_k(h)} p_i$, $N_k(h)$ the `neighbourhood_k`
      tokens whose unit embeddings have the largest cosine with $h$;
    - `top1` `(B,)` int: the most likely token.

    Arguments:
        logp: `(B, V)` log-probabilities.
        hidden: `(B, d)` final hidden states.
        unit_embedding: `(V, d)` token embeddings scaled to unit length.
        neighbourhood_k: size of the neighbourhood, `1 <= k < V`.

    Raises:
        ValueError: shapes that do not match, or `neighbourhood_k` out of range.

    Example:
        >>> import numpy as np
        >>> e = np.eye(3)
        >>> s = next_token_summaries(np.log([[0.5, 0.3, 0.2]]), np.array([[1.0, 0, 0]]), e, 1)
        >>> round(float(s["outside_mass"].sum()), 6), int(s["top1"].sum())
        (0.5, 0)
    """
    lp = normalised(logp)
    h = np.asarray(hidden, np.float64)
    unit = np.asarray(unit_embedding)
    if lp.ndim != 2 or h.ndim != 2 or unit.ndim != 2 or lp.shape[0] != h.shape[0] \
            or lp.shape[1] != unit.shape[0] or h.shape[1] != unit.shape[1]:
        raise ValueError(f"logp {lp.shape}, hidden {h.shape}, unit_embedding {unit.shape}: "
                         "need (B, V), (B, d), (V, d).")
    V = unit.shape[0]
    if not 1 <= int(neighbourhood_k) < V:
        raise ValueError(f"neighbourhood_k: need 1 <= k < {V}, got {neighbourhood_k!r}.")
    k = int(neighbourhood_k)
    ent = np.asarray(thermodynamics(-jnp.asarray(lp), 1.0).entropy, np.float64)
    hu = h / np.linalg.norm(h, axis=1, keepdims=True)
    nb = np.argpartition(-(hu @ unit.T), k, axis=1)[:, :k]
    outside = 1.0 - np.take_along_axis(np.exp(lp), nb, axis=1).sum(axis=1)
    return {"entropy": ent.reshape(-1), "outside_mass": outside,
            "top1": np.argmax(lp, axis=1).astype(np.int64)}


class DistributionStore:
    """Next-token distributions of `n` prompts: summaries in memory, full rows in a scratch
    file (see the module's docstring). Build one with
    [`stream_distributions`][infograv.experiments._stream.stream_distributions].

    Attributes:
        n, vocab: prompts and vocabulary size.
        hidden: `(n, d)` float64 final hidden states.
        entropy, outside_mass: `(n,)` float64; `top1`: `(n,)` int64 (see
            [`next_token_summaries`][infograv.experiments._stream.next_token_summaries]).
        path: the scratch file (`None` once closed).

    Use it as a context manager, or call `close()`, to delete the scratch file.
    """

    def __init__(self, n: int, vocab: int, dim: int, directory: str | os.PathLike[str] | None
                 = None) -> None:
        self.n, self.vocab = int(n), int(vocab)
        self.hidden = np.zeros((self.n, int(dim)), np.float64)
        self.entropy = np.zeros(self.n, np.float64)
        self.outside_mass = np.zeros(self.n, np.float64)
        self.top1 = np.zeros(self.n, np.int64)
        self._dir: str | None = tempfile.mkdtemp(prefix="infograv-rows-", dir=directory)
        self.path: Path | None = Path(self._dir) / "rows.bin"
        self.path.touch()
        self._dtype: np.dtype[Any] | None = None
        self._written = 0

    # writing ---------------------------------------------------------------------------------
    def _append(self, lp: np.ndarray) -> None:
        if self.path is None:
            raise ValueError("store: closed.")
        if self._dtype is None:
            narrow = lp.astype(np.float32)
            exact = lp.dtype == np.float32 or np.array_equal(narrow.astype(lp.dtype), lp)
            self._dtype = np.dtype(np.float32 if exact else np.float64)
        with self.path.open("ab") as f:
            f.write(np.ascontiguousarray(lp, dtype=self._dtype).tobytes())
        self._written += lp.shape[0]

    # reading ---------------------------------------------------------------------------------
    def _read(self, start: int, stop: int) -> np.ndarray:
        if self.path is None or self._dtype is None:
            raise ValueError("store: closed or empty.")
        item = self._dtype.itemsize * self.vocab
        with self.path.open("rb") as f:
            f.seek(start * item)
            raw = f.read((stop - start) * item)
        return np.frombuffer(raw, self._dtype).reshape(stop - start, self.vocab)

    def rows(self, idx: Any) -> np.ndarray:
        """Renormalised float64 log-probabilities `(len(idx), V)` of prompts `idx` (read from
        the scratch file; contiguous runs in one read).

        Raises:
            IndexError: an index outside `[0, n)`.
        """
        idx = np.asarray(idx, np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self._written):
            raise IndexError(f"idx: prompts must lie in [0, {self._written}).")
        out = np.empty((idx.size, self.vocab), np.float64)
        i = 0
        while i < idx.size:
            j = i + 1
            while j < idx.size and idx[j] == idx[j - 1] + 1:
                j += 1
            out[i:j] = self._read(int(idx[i]), int(idx[i]) + (j - i))
            i = j
        return normalised(out)

    def close(self) -> None:
        """Delete the scratch file (the summaries stay)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir, self.path = None, None

    def __enter__(self) -> DistributionStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def stream_distributions(
    compute: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
    texts: Sequence[str],
    embedding: np.ndarray,
    *,
    neighbourhood_k: int = 64,
    chunk: int = 256,
    directory: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DistributionStore:
    """Run `compute` over chunks of `texts` into a
    [`DistributionStore`][infograv.experiments._stream.DistributionStore].

    Arguments:
        compute: `compute(texts)` returns raw log-probabilities `(B, V)` and hidden states
            `(B, d)` (the study passes the language model through its on-disk cache).
        texts: the prompts.
        embedding: `(V, d)` token embeddings (for the outside mass).
        neighbourhood_k: see `next_token_summaries`.
        chunk: prompts per call of `compute` (memory grows with it, not with `len(texts)`).
        directory: where the scratch file goes (default: the system's temporary folder).
        progress: called with a message after each chunk.

    Raises:
        ValueError: `chunk < 1`, no texts, or `compute` returned arrays of the wrong shape.

    Example:
        >>> import numpy as np
        >>> emb = np.eye(4)
        >>> def compute(ts):
        ...     lp = np.log(np.full((len(ts), 4), 0.25, np.float32))
        ...     return lp, np.ones((len(ts), 4), np.float32)
        >>> with stream_distributions(compute, ["a", "b", "c"], emb, neighbourhood_k=2,
        ...                           chunk=2) as s:
        ...     print(s.n, s.rows([2]).shape, round(float(s.entropy[0]), 4))
        3 (1, 4) 1.3863
    """
    if int(chunk) < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk!r}.")
    texts = list(texts)
    if not texts:
        raise ValueError("texts: need at least one prompt.")
    emb = np.asarray(embedding, np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    store: DistributionStore | None = None
    try:
        for i in range(0, len(texts), int(chunk)):
            part = texts[i:i + int(chunk)]
            lp, h = compute(part)
            lp, h = np.asarray(lp), np.asarray(h)
            if lp.shape != (len(part), emb.shape[0]) or h.shape != (len(part), emb.shape[1]):
                raise ValueError(f"compute: returned {lp.shape} and {h.shape}; need "
                                 f"({len(part)}, {emb.shape[0]}) and ({len(part)}, "
                                 f"{emb.shape[1]}).")
            if store is None:
                store = DistributionStore(len(texts), emb.shape[0], emb.shape[1], directory)
            store._append(lp)
            s = next_token_summaries(lp, h, unit, neighbourhood_k)
            sl = slice(i, i + len(part))
            store.hidden[sl] = h
            store.entropy[sl], store.outside_mass[sl] = s["entropy"], s["outside_mass"]
            store.top1[sl] = s["top1"]
            if progress is not None:
                progress(f"distributions: {min(i + len(part), len(texts))} of {len(texts)}")
    except BaseException:
        if store is not None:
            store.close()
        raise
    assert store is not None
    return store


class Rows:
    """The (log-probabilities, hidden states) of a set of prompts, held in memory or read from a
    [`DistributionStore`][infograv.experiments._stream.DistributionStore] chunk by chunk.

    Arguments:
        source: a `DistributionStore`, or log-probabilities `(B, V)`.
        hidden: `(B, d)` hidden states (only with arrays).
        idx: the prompts of the store (only with a store; default all).

    Example:
        >>> import numpy as np
        >>> r = Rows(np.log(np.full((3, 2), 0.5)), np.zeros((3, 2)))
        >>> shapes = tuple((lp.shape, n) for lp, h, n in r.chunks(2))
        >>> shapes
        (((2, 2), 2), ((2, 2), 1))
    """

    def __init__(self, source: Any, hidden: Any = None, idx: Any = None) -> None:
        if isinstance(source, DistributionStore):
            self._store: DistributionStore | None = source
            self.idx = np.arange(source.n) if idx is None else np.asarray(idx, np.int64)
            self.hidden = source.hidden[self.idx]
            self._lp: np.ndarray | None = None
            self.vocab = source.vocab
        else:
            if hidden is None:
                raise ValueError("hidden: needed with in-memory log-probabilities.")
            self._store = None
            self._lp = np.asarray(source, np.float64)  # used as given (the caller normalises)
            self.hidden = np.asarray(hidden, np.float64)
            self.idx = np.arange(len(self._lp))
            self.vocab = self._lp.shape[1]
            if self.hidden.shape[0] != self._lp.shape[0]:
                raise ValueError(f"hidden {self.hidden.shape}, logp {self._lp.shape}: need the "
                                 "same number of prompts.")

    def __len__(self) -> int:
        return len(self.hidden)

    def take(self, pos: Any) -> tuple[np.ndarray, np.ndarray]:
        """`(logp, hidden)` of the prompts at positions `pos` of this set, in memory."""
        pos = np.asarray(pos, np.int64).reshape(-1)
        if self._store is None:
            assert self._lp is not None
            return self._lp[pos], self.hidden[pos]
        return self._store.rows(self.idx[pos]), self.hidden[pos]

    def chunks(self, size: int | None = None, *, pad: bool = True
               ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """Yield `(logp, hidden, n_valid)` over consecutive chunks of `size` prompts (default
        `chunk_rows`); with `pad`, the last chunk is padded to `size` by repeating its last
        prompt (one shape to compile) and only its first `n_valid` rows are real."""
        n = len(self)
        size = chunk_rows(n, self.vocab) if size is None else int(size)
        for i in range(0, n, size):
            pos = np.arange(i, min(n, i + size))
            valid = len(pos)
            if pad and valid < size and n > size:
                pos = np.concatenate([pos, np.full(size - valid, pos[-1])])
            lp, h = self.take(pos)
            yield lp, h, valid
