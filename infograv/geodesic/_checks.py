"""Input checks shared by the geodesic solvers: static `ValueError` when values are concrete,
`eqx.error_if` when they are traced (under `jit`/`vmap`)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..geometry import AbstractMetric


def is_traced(*values: Any) -> bool:
    leaves = jax.tree_util.tree_leaves(values)
    return any(isinstance(v, jax.core.Tracer) for v in leaves)


def check_value(bad: Any, message: str, carrier: Any) -> Any:
    """Raise `ValueError(message)` if `bad` is concretely true; under tracing attach an
    `eqx.error_if` to `carrier` (returned) so that the check fires at run time."""
    if not is_traced(bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(message)
        return carrier
    return eqx.error_if(carrier, jnp.any(bad), message)


def check_point(metric: AbstractMetric, x: Any, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(float)
    if x.shape != (metric.dim,):
        raise ValueError(
            f"{name}: expected shape ({metric.dim},) for a {metric.dim}-dimensional metric, got "
            f"{x.shape}."
        )
    return x
