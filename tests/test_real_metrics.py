"""The metrics of the real manifolds (`infograv.geometry._real`) against independent references.

The output metric is checked against NumPy formulas from the logits, the KL divergence, autodiff
Christoffels of the dense metric, SciPy's DOP853 on the same equations, and the closed-form
great circles of the categorical Fisher–Rao metric at d = 576.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from infograv.geodesic import geodesic, log_map
from infograv.geometry import (
    FunctionMetric,
    OutputMetric,
    christoffel_autodiff,
    density_metric,
    euclidean_metric,
    general_acceleration,
    information_gravity_metric,
)
from infograv.model import Potential, SemanticSpace


def _head(rng, n, d, spread=3.5):
    # a realistic head: anisotropic rows (singular values over two decades) and logits of
    # standard deviation `spread`, so that P is peaked with a long tail and g is badly
    # conditioned, as for the real models
    w = rng.normal(size=(n, d)) * np.geomspace(1.0, 0.01, d)[None, :]
    h = rng.normal(size=d)
    w *= spread / np.std(w @ h)
    return w, h


def _np_probs(w, h, t):
    z = w @ h / t
    p = np.exp(z - z.max())
    return p / p.sum()


def _np_metric(w, h, t):
    p = _np_probs(w, h, t)
    c = w - p @ w
    return (c * p[:, None]).T @ c / t**2


def _kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


def test_metric_is_the_logit_covariance_and_twice_the_kl_at_minilm_size(rng):
    w, h = _head(rng, 30522, 384)
    t = 0.8
    m = OutputMetric(jnp.asarray(w), temperature=t)
    g_np = _np_metric(w, h, t)
    g = np.asarray(m.metric(jnp.asarray(h)))
    np.testing.assert_allclose(g, g_np, rtol=1e-9, atol=1e-12 * np.abs(g_np).max())
    eig = np.linalg.eigvalsh(g_np)
    assert eig[-1] / eig[0] > 1e4  # the test head is badly conditioned, as the real one
    u = rng.normal(size=384)
    np.testing.assert_allclose(np.asarray(m.metric_vp(jnp.asarray(h), jnp.asarray(u))),
                               g_np @ u, rtol=1e-9, atol=1e-12 * np.abs(g_np @ u).max())
    for eps in (1e-3, 1e-4):
        delta = eps * u / np.linalg.norm(u) * np.linalg.norm(h)
        quad = float(delta @ g_np @ delta)
        two_kl = 2.0 * _kl(_np_probs(w, h, t), _np_probs(w, h + delta, t))
        # KL = ½ δᵀgδ + O(|δ|³): relative error shrinks with eps
        assert abs(two_kl - quad) / quad < 50 * eps


def test_log_map_length_squared_matches_quadratic_form_and_kl(rng):
    w, h = _head(rng, 1000, 24)
    t = 1.0
    m = OutputMetric(jnp.asarray(w), temperature=t, solver="cholesky")
    u = rng.normal(size=24)
    for eps, tol in ((1e-2, 3e-2), (1e-3, 3e-3)):
        delta = eps * u / np.linalg.norm(u) * np.linalg.norm(h)
        sol = log_map(m, jnp.asarray(h), jnp.asarray(h + delta), n_steps=16)
        length2 = float(sol.length) ** 2
        quad = float(delta @ _np_metric(w, h + 0.5 * delta, t) @ delta)
        two_kl = 2.0 * _kl(_np_probs(w, h, t), _np_probs(w, h + delta, t))
        assert abs(length2 - quad) / quad < tol
        assert abs(length2 - two_kl) / two_kl < tol


@pytest.mark.parametrize("transform", [False, True])
def test_acceleration_matches_autodiff_christoffels(rng, transform):
    d = 8
    w, h = _head(rng, 400, d)
    kw = {}
    if transform:  # the head on the pre-norm state: an RMS norm with a weight
        gain = jnp.asarray(rng.uniform(0.5, 1.5, size=d))
        kw = dict(transform=lambda x: x / jnp.sqrt(jnp.mean(x * x) + 1e-5) * gain, dim=d)
    for solver in ("cg", "cholesky"):
        m = OutputMetric(jnp.asarray(w), temperature=0.7, ridge=1e-4, solver=solver, **kw)
        x, v = jnp.asarray(h), jnp.asarray(rng.normal(size=d))
        ref = jnp.einsum("abc,b,c->a", christoffel_autodiff(m.metric, x), v, v)
        np.testing.assert_allclose(np.asarray(m.acceleration(x, v)), np.asarray(ref),
                                   rtol=1e-7, atol=1e-9 * float(jnp.abs(ref).max()))


def test_cg_solve_matches_cholesky_on_a_badly_conditioned_metric(rng):
    w, h = _head(rng, 8000, 96)
    x, v = jnp.asarray(h), jnp.asarray(rng.normal(size=96))
    for ridge in (0.0, 1e-6, 1e-4):
        cg = OutputMetric(jnp.asarray(w), ridge=ridge, precond_rank=64)
        ch = OutputMetric(jnp.asarray(w), ridge=ridge, solver="cholesky")
        a, b = cg.acceleration(x, v), ch.acceleration(x, v)
        # compare in the metric's own norm: near-null directions count by their length
        err = float(jnp.sqrt(ch.inner(x, a - b, a - b) / ch.inner(x, b, b)))
        assert err < 1e-6


def test_geodesic_lengths_are_stable_in_the_ridge(rng):
    # the regularisation g + λI: a geodesic's length converges as λ → 0 (error O(λ))
    w, h = _head(rng, 800, 12)
    x0 = jnp.asarray(h)
    x1 = jnp.asarray(h + 0.05 * rng.normal(size=12) * np.linalg.norm(h) / 4)
    lengths = []
    for ridge in (1e-4, 1e-5, 1e-6, 0.0):
        m = OutputMetric(jnp.asarray(w), ridge=ridge, solver="cholesky")
        lengths.append(float(log_map(m, x0, x1, n_steps=12).length))
    diffs = np.abs(np.diff(lengths))
    assert diffs[1] < diffs[0] and diffs[2] < diffs[1]
    assert diffs[-1] / lengths[-1] < 1e-3


def test_geodesic_at_d576_agrees_with_scipy_dop853_on_the_same_equations(rng):
    d = 576
    w, h = _head(rng, 600, d)
    m = OutputMetric(jnp.asarray(w), ridge=1e-6)
    dense = FunctionMetric(lambda x: m.metric(x), dim=d)  # the same metric, dense autodiff Γ
    acc = jax.jit(lambda x, v: general_acceleration(dense, x, v))
    x0 = jnp.asarray(h)
    v0 = jnp.asarray(rng.normal(size=d)) * 0.05

    def rhs(_t, y):
        x, v = y[:d], y[d:]
        return np.concatenate([v, -np.asarray(acc(jnp.asarray(x), jnp.asarray(v)))])

    ref = solve_ivp(rhs, (0.0, 1.0), np.concatenate([h, np.asarray(v0)]), method="DOP853",
                    rtol=1e-10, atol=1e-10)
    sol = geodesic(m, x0, v0, 1.0, rtol=1e-10, atol=1e-10)
    scale = np.abs(ref.y[:d, -1] - h).max()
    np.testing.assert_allclose(np.asarray(sol.xs[-1]), ref.y[:d, -1], atol=1e-6 * scale)


def test_great_circles_of_the_categorical_fisher_metric_at_d576(rng):
    # head [I; 0]: N = d + 1 categories with logits (h, 0), the whole simplex. Its Fisher–Rao
    # metric is the pull-back of the sphere of radius 2 by s = 2√P, so geodesics are great
    # circles: s(t) = cos(ωt) s₀ + sin(ωt) ṡ₀/ω with ω = |ṡ₀|/2.
    d = 576
    w = np.vstack([np.eye(d), np.zeros((1, d))])
    m = OutputMetric(jnp.asarray(w))
    h0 = rng.normal(size=d) * 0.5
    v0 = rng.normal(size=d) * 0.3

    def s_of(h):
        return 2.0 * np.sqrt(_np_probs(w, h, 1.0))

    s0 = s_of(h0)
    eps = 1e-6
    sdot = (s_of(h0 + eps * v0) - s_of(h0 - eps * v0)) / (2 * eps)
    omega = np.linalg.norm(sdot) / 2.0
    ts = np.array([0.5, 1.0])
    sol = geodesic(m, jnp.asarray(h0), jnp.asarray(v0), float(ts[-1]), ts=ts,
                   rtol=1e-10, atol=1e-10)
    for t, x in zip(ts, np.asarray(sol.xs), strict=True):
        expect = np.cos(omega * t) * s0 + np.sin(omega * t) * sdot / omega
        np.testing.assert_allclose(s_of(x), expect, atol=1e-7)


def test_restriction_and_its_measured_truncation_error(rng):
    w, h = _head(rng, 5000, 32)
    m = OutputMetric(jnp.asarray(w))
    x, v = jnp.asarray(h), jnp.asarray(rng.normal(size=32))
    errs = [float(m.truncation_error(m.top_tokens(x[None], k), x, v)) for k in (100, 4999)]
    assert errs[1] < errs[0]
    assert errs[1] < 1e-3
    sub = m.restrict(jnp.arange(10))
    p = np.exp(np.asarray(sub.log_prob(x)))
    np.testing.assert_allclose(p, _np_probs(w[:10], h, 1.0), rtol=1e-10)


def test_output_metric_rejects_bad_input():
    w = jnp.ones((5, 3))
    with pytest.raises(ValueError, match="head"):
        OutputMetric(jnp.ones(5))
    with pytest.raises(ValueError, match="bias"):
        OutputMetric(w, jnp.ones(4))
    with pytest.raises(ValueError, match="temperature"):
        OutputMetric(w, temperature=0.0)
    with pytest.raises(ValueError, match="ridge"):
        OutputMetric(w, ridge=-1.0)
    with pytest.raises(ValueError, match="solver"):
        OutputMetric(w, solver="lu")
    with pytest.raises(ValueError, match="dim"):
        OutputMetric(w, transform=lambda x: x)
    with pytest.raises(ValueError, match="ids"):
        OutputMetric(w).restrict([7])


def test_information_gravity_metric_is_the_jacobi_metric_of_the_fitted_field(rng):
    toks = rng.normal(size=(40, 5))
    pot = Potential("plummer", 5, G=0.7, epsilon=0.4)
    pts = rng.normal(size=(3, 5))
    m = information_gravity_metric(pot, jnp.asarray(toks), jnp.asarray(pts), scale=1.3,
                                   shift=0.1, margin=0.5)
    u = np.asarray(pot.field(jnp.asarray(1.3 * pts + 0.1), jnp.asarray(toks), jnp.ones(40)))
    assert u.max() < 0  # attractive: E = max(max U, 0) + margin · spread
    energy = 0.5 * (u.max() - u.min())
    g = np.asarray(m.metric(jnp.asarray(pts[0])))
    np.testing.assert_allclose(g, 2 * (energy - u[0]) * np.eye(5), rtol=1e-10)
    with pytest.raises(ValueError, match="margin"):
        information_gravity_metric(pot, jnp.asarray(toks), jnp.asarray(pts), margin=0.0)


def test_density_metric_is_the_kde_to_the_power_minus_two_over_d(rng):
    space = SemanticSpace(jnp.asarray(rng.normal(size=(60, 4))))
    ref = jnp.zeros(4)
    m = density_metric(space, ref)
    x = jnp.asarray(rng.normal(size=4) * 2)
    ratio = float(space.density(ref) / space.density(x))
    np.testing.assert_allclose(np.asarray(m.metric(x)), ratio ** 0.5 * np.eye(4), rtol=1e-10)
    assert float(jnp.abs(euclidean_metric(4).acceleration(x, x)).max()) == 0.0


@pytest.mark.artifact
def test_smollm2_output_metric_is_twice_the_kl():
    from infograv.lm import ArtifactNotFoundError, load_language_model

    try:
        model = load_language_model("smollm2")
    except ArtifactNotFoundError as err:
        pytest.skip(str(err))
    logp, hid = model.next_token_logprobs(["The capital of France is"])
    m = OutputMetric.from_language_model(model)
    h = jnp.asarray(hid[0], jnp.float64)
    w = np.asarray(model.embedding, np.float64)
    g = _np_metric(w, np.asarray(h), 1.0)
    eig = np.linalg.eigvalsh(g)
    assert 1e4 < eig[-1] / eig[0] < 1e8
    np.testing.assert_allclose(np.exp(np.asarray(m.log_prob(h))),
                               np.exp(np.asarray(logp[0], np.float64)), atol=1e-4)
    delta = 1e-4 * np.linalg.norm(np.asarray(h)) * eig[-1] ** -0.5 * np.linalg.eigh(g)[1][:, -1]
    quad = float(m.inner(h, jnp.asarray(delta), jnp.asarray(delta)))
    two_kl = 2 * _kl(_np_probs(w, np.asarray(h), 1.0), _np_probs(w, np.asarray(h) + delta, 1.0))
    assert abs(quad - two_kl) / quad < 1e-2


def test_dense_factorisations_match_numpy_and_need_no_lapack_under_vmap(rng):
    # jaxlib's CPU LAPACK kernels split a vmapped batch over the intra-op thread pool and block a
    # pool thread on it: as many of them at once as the pool has threads never finish. The output
    # metric's factorisations are plain XLA operations instead.
    from infograv.geometry._dense import cho_solve, cholesky, solve_lower

    x = rng.normal(size=(40, 40))
    a = x @ x.T / 40 + 1e-3 * np.eye(40)
    low = np.asarray(cholesky(jnp.asarray(a)))
    np.testing.assert_allclose(low, np.linalg.cholesky(a), rtol=1e-10, atol=1e-12)
    b = rng.normal(size=(40, 3))
    np.testing.assert_allclose(np.asarray(cho_solve(jnp.asarray(low), jnp.asarray(b))),
                               np.linalg.solve(a, b), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(solve_lower(jnp.asarray(low), jnp.asarray(b[:, 0]),
                                                      transpose=True)),
                               np.linalg.solve(low.T, b[:, 0]), rtol=1e-8)
    assert np.isnan(np.asarray(cholesky(jnp.asarray(-a)))).any()
    with pytest.raises(ValueError, match="a: expected a square"):
        cholesky(jnp.ones((2, 3)))
    w, h = _head(rng, 300, 16)
    hs, vs = jnp.asarray(np.stack([h, 1.1 * h])), jnp.asarray(rng.normal(size=(2, 16)))
    for solver in ("cg", "cholesky"):
        m = OutputMetric(jnp.asarray(w), ridge=1e-5, solver=solver, precond_rank=32)
        text = jax.jit(jax.vmap(m.acceleration)).lower(hs, vs).as_text()
        assert "lapack" not in text and "custom_call" not in text
        ref = OutputMetric(jnp.asarray(w), ridge=1e-5, solver="cholesky")
        np.testing.assert_allclose(np.asarray(jax.vmap(m.acceleration)(hs, vs)),
                                   np.asarray(jax.vmap(ref.acceleration)(hs, vs)), rtol=1e-6)


def test_approximate_metric_is_the_preconditioner_and_bounds_its_error(rng):
    # M = AᵀA + μI from the top-k tokens: exact at k = N; at k < N it differs from g only by
    # the left-out tokens' part, replaced by its trace spread isotropically (same trace as g)
    from infograv.geometry import OutputMetric

    w = jnp.asarray(rng.normal(size=(200, 6)))
    h = jnp.asarray(0.5 * rng.normal(size=6))
    full = OutputMetric(w, ridge=1e-3, precond_rank=200)
    np.testing.assert_allclose(np.asarray(full.approximate_metric(h)),
                               np.asarray(full.metric(h)), rtol=1e-10, atol=1e-14)
    part = OutputMetric(w, ridge=1e-3, precond_rank=20)
    m, g = np.asarray(part.approximate_metric(h)), np.asarray(part.metric(h))
    np.testing.assert_allclose(np.trace(m), np.trace(g), rtol=1e-10)
    np.testing.assert_allclose(m, m.T, rtol=1e-12, atol=1e-15)
    assert np.min(np.linalg.eigvalsh(m)) > 0
    # and it is the matrix the preconditioner inverts
    x = jnp.asarray(rng.normal(size=6))
    p = jnp.exp(part.log_prob(h))
    np.testing.assert_allclose(np.asarray(part._preconditioner(h, p)(jnp.asarray(m) @ x)),
                               np.asarray(x), rtol=1e-8)
