"""Property tests of the selection law at extreme inputs (hypothesis, derandomized).

Laws, for any energies and any temperature from 1e-12 to 1e12 and +inf:
0 <= H <= log N, log P <= 0, sum P = 1, no NaN anywhere except the documented F = -inf at
T = inf; the streaming computation agrees; +inf energies exclude a token; NaN and -inf energies
and zero vectors with `angular=True` raise an error that names them.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from infograv.model import (
    Potential,
    Query,
    SemanticSpace,
    energies,
    log_probs,
    streaming_thermodynamics,
    thermodynamics,
)

temperatures = st.one_of(
    st.floats(min_value=-12, max_value=12).map(lambda e: float(10.0**e)),
    st.just(float("inf")),
)
# a few fixed sizes, so that each compiled shape is reused across examples
energy_rows = st.sampled_from([1, 2, 5, 40]).flatmap(lambda n: st.lists(
    st.one_of(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
              st.just(float("inf"))),
    min_size=n, max_size=n,
).filter(lambda u: any(np.isfinite(u))))


@settings(max_examples=40)
@given(U=energy_rows, T=temperatures)
def test_entropy_and_log_probabilities_stay_in_their_ranges(U, T):
    U = jnp.asarray(U)
    n = int(U.shape[0])
    th = thermodynamics(U, T)
    lp = log_probs(U, T)
    H = float(th.entropy)
    # 1e-12 relative: the log-sum-exp and the sum over N <= 40 terms in float64
    assert -0.0 <= H <= np.log(n) * (1 + 1e-12) + 1e-15, (H, n)
    assert not bool(jnp.any(jnp.isnan(lp)))
    assert float(jnp.max(lp)) <= 0.0
    assert float(jnp.sum(jnp.exp(lp))) == pytest.approx(1.0, rel=1e-12)
    excluded = ~jnp.isfinite(U)
    assert bool(jnp.all(jnp.where(excluded, lp == -jnp.inf, True)))
    for name in ("log_z", "mean_energy", "variance", "entropy", "heat_capacity"):
        assert np.isfinite(float(getattr(th, name))), name
    F = float(th.free_energy)
    assert np.isfinite(F) or (F == -np.inf and (T == np.inf or T * float(th.log_z) > 1e300))


def test_low_temperature_entropy_keeps_its_precision(rng):
    """The cases of the report: 500 standard-normal energies at T = 1e-6, 1e-8, 1e-12."""
    U = jnp.asarray(rng.standard_normal(500))
    gap = np.diff(np.sort(np.asarray(U))[:2])[0]
    for T in (1e-6, 1e-8, 1e-12):
        th = thermodynamics(U, T)
        # exact: H <= (1 + gap/T) * e^{-gap/T} * (N - 1), far below 1e-300 here
        assert gap / T > 800
        assert float(th.entropy) == 0.0
        assert float(jnp.max(log_probs(U, T))) == 0.0


def test_infinite_temperature_is_the_uniform_limit():
    U = jnp.asarray([0.0, 3.0, -2.0, 7.0])
    th = thermodynamics(U, jnp.inf)
    assert float(th.entropy) == pytest.approx(np.log(4), rel=1e-15)
    assert float(th.mean_energy) == pytest.approx(2.0, rel=1e-15)
    assert float(th.heat_capacity) == 0.0 and float(th.free_energy) == -np.inf
    assert np.allclose(np.exp(np.asarray(log_probs(U, jnp.inf))), 0.25, rtol=1e-15)
    # the limit is approached continuously
    assert float(thermodynamics(U, 1e12).entropy) == pytest.approx(np.log(4), rel=1e-11)


@settings(max_examples=15)
@given(T=temperatures, seed=st.integers(0, 2**16), chunk=st.sampled_from([1, 4, 23]))
def test_streaming_agrees_at_every_temperature(T, seed, chunk):
    x = np.random.default_rng(seed).standard_normal((23, 3))
    space = SemanticSpace(jnp.asarray(x))
    q, phi = Query(jnp.zeros(3)), Potential("gaussian", 3)
    th = thermodynamics(energies(space, q, phi), T)
    s = streaming_thermodynamics(space, q, phi, T, chunk_size=chunk)
    # 1e-10 absolute: a different summation order, entropies of order 1
    assert float(s.thermo.entropy) == pytest.approx(float(th.entropy), abs=1e-10)
    assert 0.0 <= float(s.thermo.entropy) <= np.log(23) + 1e-12
    assert float(s.top1_log_prob) <= 0.0


@pytest.mark.parametrize("bad, words", [
    ([0.0, np.nan, 1.0], r"found nan at index \(1,\)"),
    ([0.0, 1.0, -np.inf], r"found -inf at index \(2,\)"),
    ([np.inf, np.inf], "every energy is \\+inf"),
])
def test_nan_and_minus_infinite_energies_raise_naming_the_index(bad, words):
    for fn in (lambda U: log_probs(U, 1.0), lambda U: thermodynamics(U, 1.0)):
        with pytest.raises(ValueError, match=words):
            fn(jnp.asarray(bad))


@pytest.mark.parametrize("T", [0.0, -1.0, np.nan])
def test_non_positive_or_nan_temperature_raises(T):
    with pytest.raises(ValueError, match="T: the temperature must be > 0"):
        thermodynamics(jnp.zeros(3), T)


def test_angular_space_refuses_a_zero_vector_naming_the_row():
    with pytest.raises(ValueError, match="row 2 is the zero vector"):
        SemanticSpace(jnp.asarray([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), angular=True)
    space = SemanticSpace(jnp.asarray([[1.0, 0.0], [0.0, 1.0]]), angular=True)
    with pytest.raises(ValueError, match="x: a zero vector has no direction"):
        space.distances(jnp.zeros(2))
