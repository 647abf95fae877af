"""The study's streamed distributions: rows read back from disk are the rows computed, the
per-prompt summaries are those of the full rows, and the kernel comparison gives the same numbers
whether the held-out prompts are in memory or read chunk by chunk."""

import numpy as np
import pytest
from test_val_study import FakeLM

from infograv.experiments import _kernel_fit as kf, _stats as st, _validation as val
from infograv.experiments._stream import (
    DistributionStore,
    Rows,
    chunk_rows,
    next_token_summaries,
    normalised,
    stream_distributions,
)


def _softmax_rows(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _fake_compute(emb, seed=0, dtype=np.float32):
    """Raw log-probabilities h·x_i of a text-seeded hidden state, as a model would return."""
    calls = []

    def compute(texts):
        calls.append(len(texts))
        h = np.stack([np.random.default_rng(abs(hash((t, seed))) % 2**32).normal(
            size=emb.shape[1]) for t in texts])
        return _softmax_rows(h @ emb.T).astype(dtype), h.astype(dtype)

    return compute, calls


def test_streamed_rows_and_summaries_equal_the_whole_arrays(rng, tmp_path):
    emb = rng.normal(size=(97, 6))
    compute, calls = _fake_compute(emb)
    texts = [f"prompt {i}" for i in range(23)]
    lp, h = compute(texts)
    calls.clear()
    store = stream_distributions(compute, texts, emb, neighbourhood_k=5, chunk=4,
                                 directory=tmp_path)
    assert calls == [4] * 5 + [3]  # memory per call bounded by the chunk
    whole = next_token_summaries(lp, h, emb / np.linalg.norm(emb, axis=1, keepdims=True), 5)
    # float32 rows are stored exactly and renormalised in float64 on every read
    idx = [0, 1, 2, 7, 22, 21, 5]
    np.testing.assert_array_equal(store.rows(idx), normalised(lp.astype(np.float64)[idx]))
    np.testing.assert_array_equal(store.hidden, h.astype(np.float64))
    np.testing.assert_allclose(store.entropy, whole["entropy"], rtol=1e-12)
    np.testing.assert_allclose(store.entropy, -np.sum(np.exp(normalised(lp)) * normalised(lp),
                                                      axis=1), rtol=1e-10)
    np.testing.assert_allclose(store.outside_mass, whole["outside_mass"], rtol=1e-12)
    np.testing.assert_array_equal(store.top1, np.argmax(lp, axis=1))
    path = store.path
    assert path is not None and path.stat().st_size == 23 * 97 * 4  # float32 on disk
    store.close()
    assert not path.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="closed"):
        store.rows([0])


def test_float64_rows_that_float32_would_round_are_kept_in_float64(rng, tmp_path):
    emb = rng.normal(size=(11, 3))
    compute, _ = _fake_compute(emb, dtype=np.float64)
    with stream_distributions(compute, ["a", "b", "c"], emb, neighbourhood_k=2,
                              directory=tmp_path) as s:
        lp, _ = compute(["a", "b", "c"])
        np.testing.assert_array_equal(s.rows([2, 0]), normalised(lp[[2, 0]]))
        assert s.path.stat().st_size == 3 * 11 * 8
        with pytest.raises(IndexError, match="idx"):
            s.rows([3])


def test_stream_bad_input_names_the_argument(rng, tmp_path):
    emb = rng.normal(size=(11, 3))
    compute, _ = _fake_compute(emb)
    with pytest.raises(ValueError, match="chunk"):
        stream_distributions(compute, ["a"], emb, chunk=0)
    with pytest.raises(ValueError, match="texts"):
        stream_distributions(compute, [], emb)
    with pytest.raises(ValueError, match="neighbourhood_k"):
        stream_distributions(compute, ["a"], emb, neighbourhood_k=11, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []  # a failed stream leaves no scratch file

    def wrong(texts):
        return np.zeros((len(texts), 10), np.float32), np.zeros((len(texts), 3), np.float32)

    with pytest.raises(ValueError, match="compute: returned"):
        stream_distributions(wrong, ["a"], emb, directory=tmp_path)


def test_chunks_pad_the_last_one_and_mark_the_real_rows():
    lp = np.log(np.full((7, 3), 1 / 3))
    rows = Rows(lp, np.arange(14.0).reshape(7, 2))
    out = list(rows.chunks(3))
    assert [(c[0].shape[0], c[2]) for c in out] == [(3, 3), (3, 3), (3, 1)]
    np.testing.assert_array_equal(out[-1][1], np.repeat([[12.0, 13.0]], 3, axis=0))
    assert chunk_rows(10_000, 49_152, 1 << 22) == 85  # 118 chunks, none above 2**22 elements
    with pytest.raises(ValueError, match="hidden"):
        Rows(lp)


def test_heldout_kl_is_the_same_in_memory_and_streamed_in_chunks(rng, tmp_path, monkeypatch):
    emb = rng.normal(size=(150, 5))
    h = rng.normal(size=(60, 5))
    logp = _softmax_rows(-0.4 * ((1.5 * h[:, None, :] - emb[None]) ** 2).sum(-1))
    settings = dict(query_maps=("scalar",), n_refits=2, refit_steps=10, max_steps=60,
                    n_boot=200)
    pots = {n: kf.family_potential(n, 3) for n in ("harmonic", "gaussian")}
    mem = kf.compare_families({"train": (logp[:30], h[:30]), "heldout": (logp[30:], h[30:])},
                              emb, pots, **settings)

    def compute(texts):
        i = np.asarray([int(t) for t in texts])
        return logp[i], h[i]

    store = stream_distributions(compute, [str(i) for i in range(60)], emb, chunk=7,
                                 directory=tmp_path)
    # force the chunked paths: 4 held-out prompts per chunk, and prepared data per chunk
    monkeypatch.setattr(kf, "_CHUNK_ELEMS", 4 * 150)
    monkeypatch.setattr("infograv.experiments._stream._BLOCK_ELEMS", 4 * 150)
    held = Rows(store, idx=np.arange(30, 60))
    assert [c[2] for c in held.chunks()] == [4] * 7 + [2]
    streamed = kf.compare_families({"train": (store.rows(np.arange(30)), store.hidden[:30]),
                                    "heldout": held}, emb, pots, **settings)
    for name in pots:
        for key in ("kl", "top1", "entropy_model", "entropy_real"):
            np.testing.assert_allclose(streamed["per_prompt"][name][key],
                                       mem["per_prompt"][name][key], rtol=1e-9, atol=1e-13)
        # refits stop on a rule, so last-bit differences of the data move them by round-off:
        # KL is a difference of two O(|log Z|) sums, resolved to about 1e-11 nats
        np.testing.assert_allclose(streamed["refit_kl"][name], mem["refit_kl"][name],
                                   rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(streamed["per_prompt"]["dot"]["kl"], mem["per_prompt"]["dot"]["kl"],
                               rtol=1e-9)
    store.close()


def test_voids_and_mass_read_the_same_summaries_as_the_full_rows(rng):
    d = 4
    emb = rng.normal(size=(80, d))
    h = rng.normal(size=(30, d))
    logp = _softmax_rows(h @ emb.T)
    s = val.ValidationSettings(n_boot=100, neighbourhood_k=8, min_prompts=5)
    full = val.voids_study(logp, h, emb, None, s)
    summ = next_token_summaries(logp, h, emb / np.linalg.norm(emb, axis=1, keepdims=True), 8)
    streamed = val.voids_study(None, h, emb, None, s, summaries=summ)
    assert streamed["density_outside"]["estimate"] == full["density_outside"]["estimate"]
    np.testing.assert_allclose(streamed["entropy"], full["entropy"], rtol=1e-12)
    with pytest.raises(ValueError, match="summaries"):
        val.voids_study(None, h, emb, None, s)


def test_bootstrap_in_blocks_keeps_the_count_and_the_interval(monkeypatch):
    x = np.random.default_rng(3).normal(size=400)
    small = st.bootstrap_ci(st.mean, x, n_boot=600, seed=1)
    # one block below the threshold: exactly the one-call draws
    blocks = list(st.index_blocks(400, 600, seed=1))
    assert len(blocks) == 1
    np.testing.assert_array_equal(blocks[0], np.random.default_rng(1).integers(0, 400,
                                                                               (600, 400)))
    monkeypatch.setattr(st, "_BOOT_BLOCK", 400 * 64)
    blocks = list(st.index_blocks(400, 600, seed=1))
    assert [b.shape[0] for b in blocks] == [64] * 9 + [24]
    _, stats = st.bootstrap(st.mean, x, n_boot=600, seed=1)
    assert stats.shape == (600,)
    est, lo, hi = st.bootstrap_ci(st.mean, x, n_boot=600, seed=1)
    assert est == small[0]
    assert abs(lo - small[1]) < 0.03 and abs(hi - small[2]) < 0.03  # se of a quantile ~0.01
    strata = np.repeat(["a", "b"], 200)
    blocks = list(st.index_blocks(400, 100, seed=2, strata=strata))
    for b in blocks:  # each stratum resampled within itself, in every block
        assert np.all(b[:, :200] < 200) and np.all(b[:, 200:] >= 200)


def test_the_fit_uses_a_seeded_subsample_and_the_heldout_all_prompts(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="max_fit_prompts"):
        val.ValidationSettings(max_fit_prompts=1)
    with pytest.raises(ValueError, match="figure_prompts"):
        val.ValidationSettings(figure_prompts=0)
    made: list[DistributionStore] = []
    real = val.stream_distributions

    def spy(*a, **kw):
        made.append(real(*a, **kw))
        return made[-1]

    monkeypatch.setattr(val, "stream_distributions", spy)
    settings = val.ValidationSettings(
        families=("harmonic",), kernel_dims=(), query_maps=("scalar",), max_steps=30,
        n_refits=0, max_train=30, max_heldout=20, max_fit_prompts=12, figure_prompts=5,
        n_boot=100, min_prompts=5, temperatures=(1.0,), n_temperature_prompts=2, n_samples=2,
        max_new_tokens=3, n_trajectories=1, trajectory_steps=3)
    res = val.run_validation(tmp_path, settings=settings, model=FakeLM())
    assert res["fit"]["n_fit_prompts"] == 12
    assert len(res["fit"]["per_prompt"]["harmonic"]["kl"]) == 20
    assert len(res["voids"]["entropy"]) == 50
    # the scratch file of the rows is gone once the study is written
    assert len(made) == 1 and made[0].path is None
