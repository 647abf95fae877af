"""Observed trajectories of the real models (`infograv.lm._trajectories`).

Checked against the models' own outputs: the last depth point is the final state the head reads,
greedy generation states emit the tokens generated, and the last encoder-layer point is the
sentence embedding. Needs the artifacts (skipped with the reason when absent)."""

import jax.numpy as jnp
import numpy as np
import pytest

from infograv.lm._trajectories import (
    depth_trajectory,
    encoder_layer_trajectory,
    generation_trajectory,
)


def _load(kind):
    from infograv.lm import ArtifactNotFoundError, load_language_model, load_sentence_encoder

    try:
        return load_language_model("smollm2") if kind == "lm" else load_sentence_encoder("minilm")
    except ArtifactNotFoundError as err:
        pytest.skip(str(err))


@pytest.mark.artifact
def test_generation_and_depth_trajectories_are_what_the_head_reads():
    model = _load("lm")
    prompt = "The capital of France is"
    gen = generation_trajectory(model, prompt, 4)
    assert gen.points.shape == (4, model.config.d_model)
    w = np.asarray(model.embedding, np.float64)
    np.testing.assert_array_equal(np.argmax(gen.points @ w.T, axis=1), gen.token_ids)
    _, hid = model.next_token_logprobs([prompt])
    np.testing.assert_allclose(gen.points[0], np.asarray(hid[0]), atol=1e-4)
    depth = depth_trajectory(model, prompt)
    assert depth.points.shape == (model.config.n_layers + 1, model.config.d_model)
    np.testing.assert_allclose(depth.points[-1], np.asarray(hid[0]), atol=1e-4)
    # the logit-lens norm makes layers comparable: RMS of every normed layer within a factor 3
    # of the last, while the raw residual norm grows by more than 10×
    rms = np.linalg.norm(depth.points, axis=1)
    assert np.all((rms > rms[-1] / 3) & (rms < rms[-1] * 3))
    raw = np.asarray(depth.meta["raw_norms"])
    assert raw[-2] / raw[0] > 10
    sampled = generation_trajectory(model, prompt, 4, temperature=1.0, seed=1)
    assert sampled.points.shape == (4, model.config.d_model)
    with pytest.raises(ValueError, match="n_new"):
        generation_trajectory(model, prompt, 1)


@pytest.mark.artifact
def test_encoder_layer_path_ends_at_the_sentence_embedding():
    enc = _load("encoder")
    sentence = "A cat sits on the mat."
    traj = encoder_layer_trajectory(enc, sentence)
    assert traj.points.shape[0] == int(enc.weights.layers.wq.shape[0]) + 1
    np.testing.assert_allclose(np.linalg.norm(traj.points, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(traj.points[-1], np.asarray(enc.embed([sentence])[0]), atol=1e-6)
    assert not np.allclose(traj.points[0], traj.points[-1], atol=1e-2)
    with pytest.raises(ValueError, match="sentence"):
        encoder_layer_trajectory(enc, "  ")
    assert jnp.asarray(traj.points).dtype == jnp.float64
