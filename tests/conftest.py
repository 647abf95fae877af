"""Strict numerical configuration for the whole test suite.

float64 on, strict dtype promotion, rank promotion raises; warnings are errors (pyproject);
jaxtyping runtime checks on the `infograv` package (pyproject `addopts`). Seeds are fixed.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile("infograv", deadline=None, derandomize=True, max_examples=25)
settings.load_profile("infograv")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator; every test that draws numbers uses this."""
    return np.random.default_rng(20250429)


@pytest.fixture
def key() -> jax.Array:
    """A seeded JAX key."""
    return jax.random.key(20250429)


@pytest.fixture(scope="module")
def sphere():
    """The unit 2-sphere in `(θ, φ)`, compiled from SymPy."""
    from infograv import geometry, symbolic

    return geometry.CompiledMetric.from_symbolic(symbolic.sphere(2, 1))


def _sphere_to_cartesian(p):
    import jax.numpy as jnp

    th, ph = p[..., 0], p[..., 1]
    return jnp.stack([jnp.sin(th) * jnp.cos(ph), jnp.sin(th) * jnp.sin(ph), jnp.cos(th)], -1)


@pytest.fixture(scope="session")
def cart():
    """`(θ, φ) ↦ (x, y, z)` on the unit sphere, batched over leading axes."""
    return _sphere_to_cartesian
