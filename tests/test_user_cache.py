"""The per-prompt distribution cache: hits, misses on other settings or model bytes, corrupted
entries recomputed, lossless storage, atomic files, and the disabled path."""

import hashlib

import numpy as np
import pytest

from infograv.experiments._dist_cache import (
    _key,
    _settings_json,
    cached_distributions,
    distribution_cache_dir,
    entry_path,
    model_sha256,
)

MODEL = "sha256:" + "1" * 64


class Counter:
    """A fake model forward: log-probs that depend on the text, and a hidden state."""

    def __init__(self, v=7, exact32=True):
        self.calls = []
        self.v = v
        self.exact32 = exact32

    def __call__(self, texts):
        self.calls.append(list(texts))
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        lp = np.stack([np.random.default_rng(s).normal(size=self.v) for s in seeds])
        if self.exact32:
            lp = lp.astype(np.float32).astype(np.float64)  # what a float32 model returns
        h = np.stack([np.full(3, len(t), dtype=np.float64) for t in texts])
        return lp, h


def _files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("exact32", [True, False])
def test_hit_returns_bit_identical_arrays_without_computing(exact32, tmp_path):
    comp = Counter(exact32=exact32)
    kw = dict(settings={"kind": "next_token", "T": 1.0}, compute=comp, cache_dir=tmp_path)
    stats = {}
    a = cached_distributions(MODEL, ["x", "yy", "x"], stats=stats, **kw)
    assert comp.calls == [["x", "yy"]]  # a repeated text is computed once
    assert stats == {"hits": 0, "misses": 2, "corrupt": 0}
    b = cached_distributions(MODEL, ["yy", "x"], stats=stats, **kw)
    assert comp.calls == [["x", "yy"]] and stats == {"hits": 2, "misses": 0, "corrupt": 0}
    assert isinstance(b, tuple) and len(b) == 2
    ref = comp(["yy", "x"])
    for got, want in zip(b, ref, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(a[0][0], a[0][2])
    # storage: float32 exactly when that is lossless, float64 otherwise
    files = _files(tmp_path)
    assert len(files) == 2 and all(p.suffix == ".npz" for p in files)  # no temporary files
    for f in files:
        with np.load(f) as z:
            assert z["a0"].dtype == (np.float32 if exact32 else np.float64)


def test_partial_hit_computes_only_the_new_prompts_in_order(tmp_path):
    comp = Counter()
    kw = dict(settings={"k": 1}, compute=comp, cache_dir=tmp_path)
    cached_distributions(MODEL, ["a", "b"], **kw)
    lp, h = cached_distributions(MODEL, ["c", "a", "d"], **kw)
    assert comp.calls[-1] == ["c", "d"]
    assert h[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert np.array_equal(lp, comp(["c", "a", "d"])[0])


def test_miss_on_other_settings_or_other_model_bytes(tmp_path):
    comp = Counter()
    m1, m2, m1copy = tmp_path / "m1.gguf", tmp_path / "m2.gguf", tmp_path / "copy.gguf"
    m1.write_bytes(b"weights one")
    m2.write_bytes(b"weights two")
    m1copy.write_bytes(b"weights one")
    root = tmp_path / "cache"
    cached_distributions(m1, ["p"], settings={"T": 1.0}, compute=comp, cache_dir=root)
    cached_distributions(m1, ["p"], settings={"T": 0.5}, compute=comp, cache_dir=root)
    cached_distributions(m2, ["p"], settings={"T": 1.0}, compute=comp, cache_dir=root)
    assert len(comp.calls) == 3
    # the same bytes at another path are the same model (the key is the content's hash)
    cached_distributions(m1copy, ["p"], settings={"T": 1.0}, compute=comp, cache_dir=root)
    assert len(comp.calls) == 3
    assert model_sha256(m1) == hashlib.sha256(b"weights one").hexdigest()

    class Loaded:  # a loaded model is identified by its .path
        path = m2

    cached_distributions(Loaded(), ["p"], settings={"T": 1.0}, compute=comp, cache_dir=root)
    assert len(comp.calls) == 3


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "other_text"])
def test_a_corrupted_entry_is_recomputed_and_repaired(damage, tmp_path):
    comp = Counter()
    kw = dict(settings={"k": 1}, compute=comp, cache_dir=tmp_path)
    cached_distributions(MODEL, ["alpha", "beta"], **kw)
    entry = entry_path(tmp_path, "1" * 64, _key("1" * 64, _settings_json({"k": 1}), "alpha"))
    assert entry.is_file()
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not a zip file at all")
    elif damage == "flip":
        with np.load(entry) as z:
            i = raw.index(z["a0"].tobytes())  # the first byte of the stored log-probs
        entry.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:  # a valid entry of another prompt placed under this key
        other = [p for p in _files(tmp_path) if p != entry][0]
        entry.write_bytes(other.read_bytes())
    stats = {}
    lp, h = cached_distributions(MODEL, ["alpha", "beta"], stats=stats, **kw)
    assert stats == {"hits": 1, "misses": 1, "corrupt": 1}
    assert comp.calls[-1] == ["alpha"]
    ref = comp(["alpha", "beta"])
    assert np.array_equal(lp, ref[0]) and np.array_equal(h, ref[1])
    stats = {}
    cached_distributions(MODEL, ["alpha", "beta"], stats=stats, **kw)  # repaired
    assert stats == {"hits": 2, "misses": 0, "corrupt": 0}


def test_disabled_cache_touches_no_file(tmp_path):
    comp = Counter()
    out = cached_distributions(MODEL, ["a", "b"], settings={}, compute=comp,
                               cache_dir=tmp_path / "c", enabled=False)
    assert comp.calls == [["a", "b"]] and not (tmp_path / "c").exists()
    assert np.array_equal(out[0], comp(["a", "b"])[0])


def test_a_single_array_stays_a_single_array_on_a_full_hit(tmp_path):
    def comp(ts):
        return np.arange(len(ts) * 2.0).reshape(len(ts), 2)

    kw = dict(settings={}, compute=comp, cache_dir=tmp_path)
    first = cached_distributions(MODEL, ["a", "b"], **kw)
    again = cached_distributions(MODEL, ["a", "b"], **kw)
    assert isinstance(first, np.ndarray) and isinstance(again, np.ndarray)
    assert np.array_equal(first, again)


def test_default_folder_is_under_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path / "root"))
    assert distribution_cache_dir() == tmp_path / "root" / "distributions"
    cached_distributions(MODEL, ["a"], settings={}, compute=Counter())
    assert len(_files(tmp_path / "root" / "distributions")) == 1


def test_unwritable_cache_warns_and_still_returns_results(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="cannot write under"):
        lp, _ = cached_distributions(MODEL, ["a"], settings={}, compute=Counter(),
                                     cache_dir=blocker / "sub")
    assert lp.shape == (1, 7)


def test_folder_models_hash_every_visible_file(tmp_path):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"w")
    first = model_sha256(d)
    (d / ".lock").write_text("ignored")
    assert model_sha256(d) == first
    (d / "model.safetensors").write_bytes(b"w2")
    assert model_sha256(d) != first


@pytest.mark.parametrize("call,exc,match", [
    (lambda p: cached_distributions(3.0, ["a"], settings={}, compute=Counter(), cache_dir=p),
     TypeError, "model: expected a loaded language model"),
    (lambda p: cached_distributions(p / "none.gguf", ["a"], settings={}, compute=Counter(),
                                    cache_dir=p), ValueError, "does not exist"),
    (lambda p: cached_distributions("sha256:xyz", ["a"], settings={}, compute=Counter(),
                                    cache_dir=p), ValueError, "64 hex digits"),
    (lambda p: cached_distributions(MODEL, ["a"], settings={"f": object()}, compute=Counter(),
                                    cache_dir=p), TypeError, "settings: must hold JSON"),
    (lambda p: cached_distributions(MODEL, ["a"], settings=[1], compute=Counter(),
                                    cache_dir=p), TypeError, "settings"),
    # names the argument: the package's own check says texts[1], and the test run's runtime
    # type checker, which samples one element, may reach the bad element first
    (lambda p: cached_distributions(MODEL, ["a", 3], settings={}, compute=Counter(),
                                    cache_dir=p), TypeError, "texts"),
    (lambda p: cached_distributions(MODEL, ["a", "b"], settings={},
                                    compute=lambda ts: np.zeros((1, 3)), cache_dir=p),
     ValueError, "compute: output 0 has shape \\(1, 3\\)"),
])
def test_bad_arguments_are_named(call, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        call(tmp_path)
