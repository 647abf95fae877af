"""Semantic space, query, compiled potentials, selection law and its thermodynamics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps
import sympy as sp

from infograv.model import (
    Potential,
    Query,
    SemanticSpace,
    background_energies,
    chunked_log_probs,
    energies,
    log_probs,
    selection_log_probs,
    specificity_mass,
    streaming_thermodynamics,
    surprisal_mass,
    thermodynamics,
    toy_clusters,
    toy_rings,
    toy_uniform,
    unigram_masses,
)
from infograv.symbolic import kernels as K

PARAMS = {"G": 1.3, "epsilon": 0.4, "mu": 0.7, "sigma": 0.9, "k": 1.7}
CASES = [(name, d) for name in K.KERNEL_NAMES for d in (2, 3, 4)]


@pytest.mark.parametrize("name,d", CASES)
def test_compiled_potential_matches_sympy(name, d, rng):
    # One source of truth: the JAX potential against the SymPy kernel at random points.
    # Tolerance 1e-10 relative: float64 round-off, and infograv.besselk's quadrature (< 1e-12)
    # for even-d Yukawa.
    phi = Potential(name, d, **PARAMS)
    kern = K.kernel(name, d)
    subs = {s: PARAMS[s.name] for s in kern.params if s.name in PARAMS}
    for _ in range(4):
        r, m = rng.uniform(0.2, 3.0, size=2)
        ref = float(kern.potential.subs(subs).subs({K.r: r, K.M: m}).evalf(30))
        if K.M not in kern.potential.free_symbols:
            ref *= m  # per-unit-mass kernel: the source of mass M has M * Phi
        assert float(phi(r, m)) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("name", K.KERNEL_NAMES)
def test_finite_gradient_with_query_on_a_token(name):
    # The query sits exactly on token 0 (r = 0): gradients wrt position, mass and all kernel
    # parameters must be finite (double-where for smooth kernels, clamp for singular ones).
    space = SemanticSpace(jnp.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]]))
    phi = Potential(name, 2, epsilon=0.3)

    def loss(x, m, phi):
        lp = log_probs(energies(space, Query(x, m), phi), 0.7)
        return jnp.sum(jnp.exp(lp) * jnp.arange(3.0))

    gx, gm, gp = jax.grad(loss, argnums=(0, 1, 2))(jnp.zeros(2), 1.5, phi)
    assert bool(jnp.all(jnp.isfinite(gx))) and bool(jnp.isfinite(gm))
    assert all(bool(jnp.isfinite(v)) for v in gp.fn.params.values())
    # smooth kernels: by symmetry the gradient of a token's own energy at r = 0 is exactly 0
    if name in ("plummer", "gaussian", "harmonic"):
        g0 = jax.grad(lambda x: energies(space, Query(x, 1.0), phi)[0])(jnp.zeros(2))
        assert jnp.allclose(g0, 0.0)


def _U(space, T, M=1.0, kernel="plummer", x=(0.1, -0.2)):
    return energies(space, Query(jnp.asarray(x), M), Potential(kernel, space.dim))


def test_free_energy_and_entropy_identities_by_autodiff():
    # dF/dT = -H and dH/dT = Var(U)/T^3, exact identities (formalism §4); autodiff vs the
    # closed forms agree to float64 round-off.
    space = toy_clusters(1, n_clusters=3, n_per_cluster=20)
    U = _U(space, 1.0)
    for T in (0.05, 0.3, 1.0, 4.0):
        T = jnp.asarray(T)
        th = thermodynamics(U, T)
        dF = jax.grad(lambda t: thermodynamics(U, t).free_energy)(T)
        dH = jax.grad(lambda t: thermodynamics(U, t).entropy)(T)
        assert float(dF) == pytest.approx(-float(th.entropy), rel=1e-10)
        assert float(dH) == pytest.approx(float(th.variance / T**3), rel=1e-9)
        assert float(dH) >= 0


def test_thermodynamics_against_numpy_reference(rng):
    U = rng.normal(size=(3, 40))
    T = np.array([0.5, 1.0, 2.0])
    th = thermodynamics(jnp.asarray(U), jnp.asarray(T))
    w = np.exp(-U / T[:, None] - (-U / T[:, None]).max(axis=1, keepdims=True))
    p = w / w.sum(axis=1, keepdims=True)
    H = -(p * np.log(p)).sum(axis=1)
    assert np.allclose(th.entropy, H, rtol=1e-12)
    assert np.allclose(th.log_z, sps.logsumexp(-U / T[:, None], axis=1), rtol=1e-12)
    mean = (p * U).sum(1)
    assert np.allclose(th.heat_capacity, (p * (U - mean[:, None]) ** 2).sum(1) / T**2, rtol=1e-10)


@pytest.mark.parametrize("kernel", ["newton", "plummer", "yukawa", "gaussian", "harmonic"])
def test_mass_temperature_invariance_and_its_break(kernel):
    # formalism §4: single query, U proportional to M (G M for the gravitational kernels), so
    # P depends on T/M only: scaling both by c leaves P unchanged (to round-off). A background
    # term breaks it; the size of the break is measured and must be clearly non-zero.
    space = toy_clusters(2, n_clusters=3, n_per_cluster=15)
    phi = Potential(kernel, 2)
    x = jnp.array([0.3, 0.1])
    bg = background_energies(space, Potential("plummer", 2), coupling=0.05)
    for c in (0.5, 3.0):
        lp1 = log_probs(energies(space, Query(x, 1.0), phi), 0.4)
        lp2 = log_probs(energies(space, Query(x, c), phi), 0.4 * c)
        assert jnp.allclose(lp1, lp2, atol=1e-11)
        b1 = log_probs(energies(space, Query(x, 1.0), phi, background=bg), 0.4)
        b2 = log_probs(energies(space, Query(x, c), phi, background=bg), 0.4 * c)
        tv = 0.5 * float(jnp.sum(jnp.abs(jnp.exp(b1) - jnp.exp(b2))))
        assert tv > 1e-3


def test_queries_by_temperatures_grid():
    # U (B, 1, N) with T (K,) gives (B, K) results equal to the one-by-one values.
    space = toy_clusters(6, n_clusters=2, n_per_cluster=10)
    U = energies(space, Query(jnp.array([[0.0, 0.0], [1.0, -1.0], [2.0, 0.5]]), jnp.ones(3)),
                 Potential("plummer", 2))
    T = jnp.array([0.1, 0.5, 2.0, 8.0])
    th = thermodynamics(U[:, None, :], T)
    lp = log_probs(U[:, None, :], T)
    assert th.entropy.shape == (3, 4) and lp.shape == (3, 4, 20)
    for b in range(3):
        for k in range(4):
            one = thermodynamics(U[b], T[k])
            assert float(th.entropy[b, k]) == pytest.approx(float(one.entropy), rel=1e-13)
            assert jnp.allclose(lp[b, k], log_probs(U[b], T[k]))


def test_top_k_and_top_p_against_reference(rng):
    U = jnp.asarray(rng.normal(size=30))
    p = np.exp(np.asarray(log_probs(U, 0.8)))
    lk = np.exp(np.asarray(log_probs(U, 0.8, top_k=5)))
    keep = np.argsort(-p)[:5]
    ref = np.zeros_like(p)
    ref[keep] = p[keep] / p[keep].sum()
    assert np.allclose(lk, ref, atol=1e-14)
    lpp = np.exp(np.asarray(log_probs(U, 0.8, top_p=0.6)))
    order = np.argsort(-p)
    n_keep = int(np.searchsorted(np.cumsum(p[order]), 0.6) + 1)  # smallest set reaching 0.6
    ref = np.zeros_like(p)
    ref[order[:n_keep]] = p[order[:n_keep]] / p[order[:n_keep]].sum()
    assert np.allclose(lpp, ref, atol=1e-14)


def test_chunked_equals_unchunked():
    space = toy_uniform(3, n=1001, d=16, box=2.0)
    pos = jnp.asarray(np.random.default_rng(0).normal(size=(5, 16)) * 0.3)
    q = Query(pos, jnp.arange(1.0, 6.0))
    phi = Potential("gaussian", 16, sigma=1.5)
    T = jnp.array([0.1, 0.3, 1.0, 3.0, 10.0])
    U = energies(space, q, phi)
    th = thermodynamics(U, T)
    for chunk in (7, 1000, 4096):
        s = streaming_thermodynamics(space, q, phi, T, chunk_size=chunk)
        for f in ("log_z", "free_energy", "mean_energy", "entropy", "heat_capacity"):
            assert jnp.allclose(getattr(s.thermo, f), getattr(th, f), rtol=1e-10, atol=1e-12), f
        assert (s.top1 == jnp.argmin(U, axis=-1)).all()
    lp = chunked_log_probs(space, q, phi, T, chunk_size=300)
    assert jnp.allclose(lp, log_probs(U, T), atol=1e-11)
    for block in (2, 5):  # 2 does not divide B = 5: padding
        lp = selection_log_probs(space, q, phi, T, query_block=block, top_k=50)
        assert jnp.allclose(lp, log_probs(U, T, top_k=50), atol=1e-12)


def test_float32_works():
    space32 = SemanticSpace(toy_clusters(4).embedding.astype(jnp.float32))
    for kernel in ("plummer", "yukawa"):
        phi = Potential(kernel, 2)
        q = Query(jnp.array([0.1, 0.2], jnp.float32), jnp.float32(1.0))
        U = energies(space32, q, phi)
        th = thermodynamics(U, jnp.float32(0.5))
        assert U.dtype == jnp.float32 and th.entropy.dtype == jnp.float32
        U64 = energies(toy_clusters(4), Query(jnp.array([0.1, 0.2]), 1.0), phi)
        th64 = thermodynamics(U64, 0.5)
        # float32 round-off (~1e-7 relative) amplified by the log-sum-exp: 1e-4 relative.
        assert float(th.entropy) == pytest.approx(float(th64.entropy), rel=1e-4)
        s = streaming_thermodynamics(space32, q, phi, jnp.float32(0.5), chunk_size=37)
        assert float(s.thermo.entropy) == pytest.approx(float(th64.entropy), rel=1e-4)


def test_density_kde_matches_scipy_normal_sum(rng):
    # Reference: sum of scipy.stats.multivariate_normal pdfs with covariance h^2 I, weighted by
    # the masses (float64 round-off only).
    from scipy.stats import multivariate_normal

    pts = rng.normal(size=(60, 2))
    m = rng.uniform(0.5, 2.0, size=60)
    space = SemanticSpace(jnp.asarray(pts), jnp.asarray(m), bandwidth=0.3)
    x = rng.normal(size=(7, 2))
    ref = sum(mi * multivariate_normal(p, 0.09 * np.eye(2)).pdf(x) for p, mi in zip(pts, m))
    assert np.allclose(np.asarray(space.density(jnp.asarray(x))), ref, rtol=1e-10)


def test_bandwidth_rules_and_angular():
    space = toy_clusters(5, n_clusters=2, n_per_cluster=30, bandwidth="knn", knn=5)
    assert space.bandwidths.shape == (60,) and bool(jnp.all(space.bandwidths > 0))
    scott = toy_clusters(5, n_clusters=2, n_per_cluster=30)
    assert jnp.allclose(scott.bandwidths, scott.bandwidths[0])
    ang = SemanticSpace(jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 3.0, 0.0]]),
                        angular=True, bandwidth=0.2)
    assert jnp.allclose(jnp.linalg.norm(ang.embedding, axis=1), 1.0)
    d = ang.distances(jnp.array([1.0, 1.0, 0.0]))
    assert jnp.allclose(d, jnp.array([np.pi / 4, np.pi / 4, 0.0]), atol=1e-7)


def test_unigram_masses_and_mass_models():
    m = unigram_masses(jnp.array([1.0, 2.0, 5.0]), alpha=0.5)
    assert float(jnp.mean(m)) == pytest.approx(1.0)
    assert float(m[2] / m[0]) == pytest.approx(np.sqrt(5.0))
    assert surprisal_mass("a b c", table={"a": 0.5, "b": 0.25}, floor=2**-10) == 13.0
    # specificity: uniform over V has H = log V, so mass 0; a delta has log2 V bits
    assert float(specificity_mass(jnp.full(8, -np.log(8.0)))) == pytest.approx(0.0, abs=1e-12)


def test_surprisal_mass_from_wordfreq():
    pytest.importorskip("wordfreq")
    # wordfreq's lists ship in the package (offline): a rare word carries more information
    assert surprisal_mass("gravity") > surprisal_mass("the") > 0


def test_toy_generators_are_seeded_and_shaped():
    a, b = toy_clusters(7, d=3), toy_clusters(7, d=3)
    assert jnp.array_equal(a.embedding, b.embedding) and a.embedding.shape == (200, 3)
    assert not jnp.array_equal(a.embedding, toy_clusters(8, d=3).embedding)
    rings = toy_rings(0, n_rings=3, n_per_ring=100, noise=0.0)
    radius = jnp.linalg.norm(rings.embedding, axis=1)
    assert jnp.allclose(radius, rings.labels.astype(radius.dtype) + 1.0)
    assert toy_uniform(0, n=50, d=10).embedding.shape == (50, 10)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SemanticSpace(jnp.zeros((0, 2))), "embedding: the vocabulary is empty"),
        (lambda: SemanticSpace(jnp.zeros(5)), "embedding: expected a 2-D"),
        (lambda: SemanticSpace(jnp.array([[0.0, jnp.nan]])), "embedding: contains NaN"),
        (lambda: SemanticSpace(jnp.zeros((2, 2)), jnp.array([1.0, -1.0])), "masses: .* >= 0"),
        (lambda: SemanticSpace(jnp.zeros((2, 2)), jnp.array([1.0, jnp.nan])), "masses: .*NaN"),
        (lambda: SemanticSpace(jnp.zeros((2, 2)), jnp.ones(3)), "masses: expected shape"),
        (lambda: SemanticSpace(jnp.zeros((2, 2)), bandwidth=-1.0), "bandwidth: "),
        (lambda: Query(jnp.zeros(2), -1.0), "mass: information mass must be >= 0"),
        (lambda: Query(jnp.zeros(2), jnp.nan), "mass: information mass is NaN"),
        (lambda: Query(jnp.array([jnp.nan, 0.0])), "position: contains NaN"),
        (lambda: Potential("coulomb", 2), "kernel: unknown kernel 'coulomb'"),
        (lambda: Potential("plummer", 2, epsilon=0.0), "epsilon: kernel parameters must be"),
        (lambda: log_probs(jnp.zeros(3), 0.0), "T: the temperature must be > 0"),
        (lambda: log_probs(jnp.zeros(3), -1.0), "T: the temperature must be > 0"),
        (lambda: log_probs(jnp.zeros(3), jnp.nan), "T: the temperature must be > 0"),
        (lambda: log_probs(jnp.zeros(3), 1.0, top_k=4), "top_k: "),
        (lambda: log_probs(jnp.zeros(3), 1.0, top_p=0.0), "top_p: "),
        (lambda: energies(SemanticSpace(jnp.zeros((2, 3))), Query(jnp.zeros(2)),
                          Potential("plummer", 3)), "query: position has dimension 2"),
    ],
)
def test_bad_input_names_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_temperature_error_under_jit():
    f = jax.jit(lambda T: log_probs(jnp.zeros(3), T))
    with pytest.raises(Exception, match="T: the temperature must be > 0"):
        f(jnp.asarray(-1.0)).block_until_ready()


def test_potential_is_differentiable_in_its_parameters():
    # d/dG of U_i = m_i Phi is U_i / G (Phi linear in G): compare autodiff to that closed form.
    space = toy_clusters(3, n_clusters=2, n_per_cluster=5)
    phi = Potential("yukawa", 3 - 1, G=2.0, mu=0.5)
    q = Query(jnp.array([0.2, 0.1]), 1.3)
    g = jax.jacfwd(lambda p: energies(space, q, p))(phi)
    assert jnp.allclose(g.fn.params["G"], energies(space, q, phi) / 2.0, rtol=1e-12)
    # SymPy derivative in mu at one point, against autodiff
    kern = K.kernel("yukawa", 2)
    dmu = sp.diff(kern.potential, K.mu).subs({K.G: 2.0, K.mu: 0.5, K.M: 1.3, K.r: 0.7})
    auto = jax.grad(lambda p: p(0.7, 1.3))(phi).fn.params["mu"]
    assert float(auto) == pytest.approx(float(dmu.evalf(30)), rel=1e-9)
