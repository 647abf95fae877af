"""Fisher sensitivity, curvature, saddles, Poisson solvers, voids, hallucination, trajectories,
sharding, and the paper's qualitative claims as property tests."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import erf

from infograv.model import (
    Potential,
    Query,
    SemanticSpace,
    energies,
    find_flip,
    find_saddle,
    find_voids,
    fisher_eigenvalues,
    fisher_metric,
    generate,
    grid,
    grid_green_sum,
    hallucination,
    kl_divergence,
    log_probs,
    neighbourhood,
    poisson_free_space,
    poisson_periodic,
    scalar_curvature,
    semantic_curvature,
    thermodynamics,
    toy_clusters,
)

ROOT = Path(__file__).resolve().parent.parent


def _lp(space, x, phi, T, M=1.0):
    return log_probs(energies(space, Query(x, M), phi), T)


def test_kl_is_half_fisher_quadratic_form_with_cubic_error():
    # KL(P(x) || P(x + delta)) = 1/2 delta^T g_F delta + O(|delta|^3): the error, fitted on a
    # log-log scale over two decades of |delta|, must have slope ~3 (2.7..3.3: the next term is
    # cubic; round-off is far below at these sizes in float64).
    space = toy_clusters(11, n_clusters=3, n_per_cluster=20)
    phi = Potential("plummer", 2, epsilon=0.3)
    x = jnp.array([0.4, -0.3])
    T = 0.5
    g = fisher_metric(space, Query(x, 1.0), phi, T)
    u = jnp.array([0.6, 0.8])
    hs = np.geomspace(1e-3, 1e-1, 7)
    errs = []
    for h in hs:
        delta = h * u
        kl = kl_divergence(_lp(space, x, phi, T), _lp(space, x + delta, phi, T))
        errs.append(abs(float(kl) - 0.5 * float(delta @ g @ delta)))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert 2.7 < slope < 3.3
    # and the quadratic form itself dominates at small delta
    kl = float(kl_divergence(_lp(space, x, phi, T), _lp(space, x + 1e-3 * u, phi, T)))
    assert kl == pytest.approx(0.5e-6 * float(u @ g @ u), rel=1e-2)


def test_fisher_metric_equals_score_outer_product():
    # Independent form: sum_i P_i d log P_i d log P_i^T from jacfwd of log P.
    space = toy_clusters(12, n_clusters=2, n_per_cluster=15, d=3)
    phi = Potential("gaussian", 3, sigma=0.8)
    x = jnp.array([0.1, 0.2, -0.1])
    T = 0.7
    g = fisher_metric(space, Query(x, 1.3), phi, T)
    J = jax.jacfwd(lambda y: _lp(space, y, phi, T, 1.3))(x)
    p = jnp.exp(_lp(space, x, phi, T, 1.3))
    ref = jnp.einsum("i,ia,ib->ab", p, J, J)
    assert jnp.allclose(g, ref, rtol=1e-10, atol=1e-14)
    ev = fisher_eigenvalues(g)
    assert bool(jnp.all(ev >= -1e-12)) and jnp.allclose(g, g.T)


def test_scalar_curvature_closed_forms():
    # Round sphere of radius a: R = 2/a^2; Poincare half-plane dx^2+dy^2 over y^2: R = -2;
    # flat metric in polar coordinates: R = 0.
    a = 1.7
    sph = lambda x: jnp.diag(jnp.stack([a**2 * jnp.ones_like(x[0]), (a * jnp.sin(x[0])) ** 2]))
    hyp = lambda x: jnp.eye(2) / x[1] ** 2
    polar = lambda x: jnp.diag(jnp.stack([jnp.ones_like(x[0]), x[0] ** 2]))
    assert float(scalar_curvature(sph, jnp.array([0.9, 0.1]))) == pytest.approx(2 / a**2, rel=1e-10)
    assert float(scalar_curvature(hyp, jnp.array([0.3, 1.4]))) == pytest.approx(-2.0, rel=1e-10)
    assert abs(float(scalar_curvature(polar, jnp.array([1.3, 0.4])))) < 1e-12


def test_semantic_curvature_of_three_tokens_is_that_of_the_radius_2_sphere():
    # With N = 3 tokens in d = 2 the query map x -> P(x) is a local diffeomorphism onto the
    # 2-simplex, and the Fisher metric is the pull-back of the round metric of the sphere of
    # radius 2 (x -> 2 sqrt(P)); so R = 2 / 2^2 = 1/2 whatever the kernel, masses and T.
    space = SemanticSpace(jnp.array([[0.0, 0.0], [1.3, 0.2], [0.4, 1.1]]), jnp.array([1.0, 2.0,
                                                                                     0.7]))
    for x, pot, T in (([0.2, 0.1], Potential("plummer", 2, epsilon=0.5), 0.5),
                      ([-0.4, 0.7], Potential("gaussian", 2), 1.3)):
        R = semantic_curvature(space, Query(jnp.array(x), 1.0), pot, T)
        assert float(R) == pytest.approx(0.5, rel=1e-6)  # float64 autodiff to 4th order


def test_saddle_and_flip_between_two_wells():
    # Two equal wells at (+-1, 0): by symmetry the saddle is the midpoint, index 1; the top token
    # flips exactly halfway along the segment between the two tokens.
    phi = Potential("plummer", 2, epsilon=0.3)
    src = jnp.array([[-1.0, 0.0], [1.0, 0.0]])
    s = find_saddle(lambda x: phi.field(x, src, jnp.ones(2)), jnp.array([0.2, 0.05]))
    assert jnp.allclose(s.position, 0.0, atol=1e-7) and s.index == 1
    space = SemanticSpace(src)
    f = find_flip(space, Query(jnp.array([-0.9, 0.3]), 1.0), phi, jnp.array([0.9, 0.3]))
    assert f.t == pytest.approx(0.5, abs=1e-9)
    assert {f.token_before, f.token_after} == {0, 1}
    with pytest.raises(ValueError, match="target: the top token is the same"):
        find_flip(space, Query(jnp.array([-0.9, 0.3]), 1.0), phi, jnp.array([-0.8, 0.3]))


@pytest.mark.parametrize("d", [2, 3])
def test_periodic_poisson_single_mode_exact(d):
    # rho = cos(k x_1) on a periodic box: Phi = -omega G rho / k^2 exactly (spectral solver).
    n, L = 16, 2.0
    h = L / n
    x = grid([0.0] * d, [L - h] * d, n)
    kx = 2 * np.pi * 2 / L
    rho = jnp.cos(kx * x[..., 0]) + 0.3 * jnp.sin(2 * np.pi / L * x[..., -1])
    omega = 2 * np.pi if d == 2 else 4 * np.pi
    phi = poisson_periodic(rho, h, G=1.5)
    ref = -omega * 1.5 * (jnp.cos(kx * x[..., 0]) / kx**2
                          + 0.3 * jnp.sin(2 * np.pi / L * x[..., -1]) / (2 * np.pi / L) ** 2)
    assert jnp.allclose(phi, ref, atol=1e-12)


def test_free_space_fft_equals_direct_green_sum(rng):
    # Domain doubling makes the FFT convolution identical to the direct Green's sum.
    rho = jnp.asarray(rng.uniform(size=(9, 11)))
    for kernel in ("newton", "yukawa"):
        phi = Potential(kernel, 2, mu=0.8)
        a = poisson_free_space(rho, 0.2, phi)
        b = grid_green_sum(rho, 0.2, phi)
        assert jnp.allclose(a, b, rtol=1e-11, atol=1e-11)


def test_free_space_poisson_converges_to_gaussian_blob_closed_form():
    # 3-D Gaussian blob of mass M, width s: Phi(r) = -G M erf(r / (sqrt2 s)) / r (Newton).
    # Midpoint discretisation: the error must fall as the grid is refined (roughly h^2).
    M, s, L = 1.0, 0.35, 3.0
    errs = []
    for n in (16, 32):
        h = L / n
        x = grid([-L / 2 + h / 2] * 3, [L / 2 - h / 2] * 3, n)
        r = jnp.linalg.norm(x, axis=-1)
        rho = M * jnp.exp(-(r**2) / (2 * s**2)) / (2 * np.pi * s**2) ** 1.5
        phi = poisson_free_space(rho, h, Potential("newton", 3))
        ref = -M * erf(np.asarray(r) / (np.sqrt(2) * s)) / np.asarray(r)
        errs.append(float(jnp.max(jnp.abs(phi - ref))) / float(jnp.max(jnp.abs(ref))))
    assert errs[1] < 0.02
    assert errs[1] < errs[0] / 2.5


def test_voids_and_neighbourhoods():
    # Two tight clusters at (-2, 0) and (2, 0), single tokens at (0, +-2) and the box corners:
    # the largest empty ball is centred at the origin with radius 2 (up to the grid step 0.1).
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal([-2, 0], 0.05, (40, 2)), rng.normal([2, 0], 0.05, (40, 2)),
                          np.array([[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0], [2.0, -2.0],
                                    [0.0, 2.0], [0.0, -2.0]])])
    labels = jnp.asarray(np.r_[[0] * 40, [1] * 40, [2] * 6])
    space = SemanticSpace(jnp.asarray(pts), labels=labels)
    v = find_voids(space, n_balls=2, resolution=41)
    assert float(jnp.linalg.norm(v.centres[0])) < 0.15
    assert 1.85 < float(v.radii[0]) < 2.01
    assert bool(jnp.all(jnp.exp(v.log_density[v.in_void]) < v.threshold))
    x = jnp.array([-1.9, 0.0])
    assert int(neighbourhood(space, x, "knn", k=7).sum()) == 7
    assert bool(jnp.all(neighbourhood(space, x, "cluster") == (space.labels == 0)))
    near = neighbourhood(space, x, "radius", radius=0.5)
    assert bool(jnp.all(near == (jnp.linalg.norm(space.embedding - x[None, :], axis=1) < 0.5)))
    with pytest.raises(ValueError, match="rule: unknown"):
        neighbourhood(space, x, "ball")
    with pytest.raises(ValueError, match="radius: "):
        neighbourhood(space, x, "radius")


def test_hallucination_sample_rate_matches_probability():
    # Sample rate of n draws is Binomial(n, p_out)/n: within 5 standard deviations.
    space = toy_clusters(14, n_clusters=3, n_per_cluster=20)
    x = jnp.array([0.0, 0.0])
    lp = _lp(space, x, Potential("plummer", 2), 0.5)
    inside = neighbourhood(space, x, "knn", k=10)
    h = hallucination(lp, inside, key=jax.random.key(3), n_samples=20000)
    p = float(h.outside_probability)
    assert p == pytest.approx(1 - float(jnp.sum(jnp.where(inside, jnp.exp(lp), 0.0))), abs=1e-12)
    assert abs(float(h.sample_rate) - p) < 5 * np.sqrt(p * (1 - p) / 20000) + 1e-12


def test_trajectories_rules():
    space = toy_clusters(15, n_clusters=3, n_per_cluster=20)
    phi = Potential("plummer", 2, epsilon=0.2)
    q = Query(jnp.array([0.3, -0.2]), 1.0)
    key = jax.random.key(7)
    a = generate(key, space, q, phi, 0.3, 12, rule="accrete")
    b = generate(key, space, q, phi, 0.3, 12, rule="accrete")
    assert jnp.array_equal(a.tokens, b.tokens)  # seeded and reproducible
    assert jnp.allclose(a.positions, space.embedding[a.tokens])
    f = generate(key, space, q, phi, 0.3, 12, rule="fixed")
    assert jnp.allclose(f.centres, jnp.broadcast_to(q.position, f.centres.shape))
    # fixed: every draw's log-probability is that of the query-only law
    lp = _lp(space, q.position, phi, 0.3)
    assert jnp.allclose(f.log_probs, lp[f.tokens])
    dr = generate(key, space, q, phi, 0.3, 12, rule="drift", accrete_mass=0.5)
    # drift: centre k is the mass-weighted mean of x_q (weight M) and tokens 0..k-1 (0.5 m_t)
    w = 0.5 * space.masses[dr.tokens]
    for k in range(12):
        num = q.position + jnp.sum(w[:k, None] * dr.positions[:k], axis=0)
        assert jnp.allclose(dr.centres[k], num / (1.0 + jnp.sum(w[:k])))
    with pytest.raises(ValueError, match="rule: unknown context rule"):
        generate(key, space, q, phi, 0.3, 3, rule="wander")


def test_sharding_across_four_host_devices_matches_one_device():
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_enable_x64", True)
        assert len(jax.devices()) == 4, jax.devices()
        from infograv.model import (Query, Potential, toy_uniform, sharded_thermodynamics,
                                    streaming_thermodynamics)
        space = toy_uniform(1, n=700, d=8)
        pos = jnp.asarray(np.random.default_rng(2).normal(size=(10, 8)))
        q = Query(pos, jnp.linspace(0.5, 2.0, 10))
        phi = Potential("plummer", 8, epsilon=0.5)
        T = jnp.linspace(0.2, 2.0, 10)
        a = sharded_thermodynamics(space, q, phi, T, chunk_size=128)
        b = streaming_thermodynamics(space, q, phi, T, chunk_size=128)
        assert len(a.thermo.entropy.sharding.device_set) == 4
        for f in ("log_z", "entropy", "heat_capacity", "mean_energy"):
            assert np.allclose(getattr(a.thermo, f), getattr(b.thermo, f), rtol=1e-12), f
        assert (np.asarray(a.top1) == np.asarray(b.top1)).all()
        print("OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")


# ---- the paper's qualitative claims (formalism §7) over seeded random clouds --------------

_PHI = Potential("plummer", 2, epsilon=0.1)


def _void_and_cluster_entropy(seed, spread, T):
    space = toy_clusters(seed, n_clusters=3, n_per_cluster=30, spread=spread)
    v = find_voids(space, n_balls=1, resolution=30)
    xc = jnp.mean(space.embedding[space.labels == 0], axis=0)
    T = jnp.asarray(T)
    Uv = energies(space, Query(v.centres[0], 1.0), _PHI)
    Uv = jnp.broadcast_to(Uv, T.shape + Uv.shape)
    Uc = jnp.broadcast_to(energies(space, Query(xc, 1.0), _PHI), Uv.shape)
    return thermodynamics(Uv, T).entropy, thermodynamics(Uc, T).entropy, space


@settings(max_examples=8)
@given(seed=st.integers(0, 10**6), spread=st.floats(0.2, 0.35))
def test_claim_void_queries_more_diffuse_and_gap_opens_then_closes(seed, spread):
    # Scale: the well depth G M / eps = 10. For T in [0.1, 0.4] the void query's entropy exceeds
    # the cluster query's; the gap opens from ~0 at T -> 0 and closes again as T -> oo (both
    # tend to log N), so "the gap widens with T" holds on the low-temperature side only.
    # (At T = 0.05 the claim fails for some clouds, e.g. seed=417046, spread=0.25: a void centre
    # close to one isolated token is sharper than a cluster centre; see docs/model/phenomena.md.)
    T = jnp.array([1e-3, 0.1, 0.2, 0.4, 1e4])
    Hv, Hc, space = _void_and_cluster_entropy(seed, spread, T)
    gap = Hv - Hc
    assert bool(jnp.all(gap[1:4] > 0))
    assert float(jnp.max(gap[1:4])) > float(gap[0]) + 0.5
    assert float(jnp.max(gap[1:4])) > float(gap[4]) + 0.5
    assert float(jnp.abs(Hv[4] - np.log(space.n_tokens))) < 1e-2


@settings(max_examples=6)
@given(seed=st.integers(0, 10**6), T=st.sampled_from([0.1, 0.3, 1.0]))
def test_claim_outside_mass_rises_as_query_density_falls(seed, T):
    # formalism §7: over queries spread across the cloud, the probability outside the query's
    # 10 nearest tokens is anti-correlated (Spearman) with log rho_sem(x_q).
    from scipy.stats import spearmanr

    space = toy_clusters(seed, n_clusters=4, n_per_cluster=25, spread=0.3)
    xs = jnp.asarray(np.random.default_rng(seed).uniform(-3.0, 3.0, size=(120, 2)))
    U = energies(space, Query(xs, jnp.ones(120)), _PHI)
    inside = jax.vmap(lambda x: neighbourhood(space, x, "knn", k=10))(xs)
    out = hallucination(log_probs(U, T), inside).outside_probability
    rho = spearmanr(np.asarray(space.log_density(xs)), np.asarray(out))[0]
    assert rho < -0.3


@settings(max_examples=10)
@given(seed=st.integers(0, 10**6), t1=st.floats(0.01, 5.0), ratio=st.floats(1.01, 10.0))
def test_claim_entropy_rises_with_temperature(seed, t1, ratio):
    space = toy_clusters(seed, n_clusters=3, n_per_cluster=10)
    x = jnp.asarray(np.random.default_rng(seed).normal(size=2))
    U = energies(space, Query(x, 1.0), _PHI)
    h = thermodynamics(jnp.stack([U, U]), jnp.array([t1, t1 * ratio])).entropy
    assert float(h[1]) >= float(h[0]) - 1e-12
