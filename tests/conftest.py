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
