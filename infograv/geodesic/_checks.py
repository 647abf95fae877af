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


def check_value(
    bad: Any, message: str, carrier: Any, error: type[Exception] = ValueError
) -> Any:
    """Raise `error(message)` if `bad` is concretely true; under tracing attach an
    `eqx.error_if` to `carrier` (returned) so that the check fires at run time.

    Outside `jit` the exception therefore leads with `message`; under `jit` equinox raises
    `eqx.EquinoxRuntimeError` with the message inside its own report."""
    if not is_traced(bad):
        if bool(np.any(np.asarray(bad))):
            raise error(message)
        return carrier
    return eqx.error_if(carrier, jnp.any(bad), message)


def check_solved(failed: Any, message: str, carrier: Any) -> Any:
    """A failed solve: `eqx.EquinoxRuntimeError(message)` at once when `failed` is concrete
    (the message first), else `eqx.error_if` (the same class, raised at run time)."""
    return check_value(failed, message, carrier, eqx.EquinoxRuntimeError)


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
