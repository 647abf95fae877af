"""Identity checks: each returns the largest absolute residual of a law at a point.

The laws hold exactly for any smooth metric, so a residual at round-off level says the
Christoffels/curvature (symbolic, compiled or autodiff) are consistent; a large one finds a bug or
a non-smooth metric. Each check works on any [`AbstractMetric`][infograv.geometry.AbstractMetric]
and builds `n³`–`n⁵` arrays: for small `n`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._custom_types import Point, Scalar
from ._base import AbstractMetric

__all__ = [
    "christoffel_symmetry_residual",
    "metric_compatibility_residual",
    "riemann_symmetry_residual",
    "first_bianchi_residual",
    "second_bianchi_residual",
    "vacuum_residual",
]


def christoffel_symmetry_residual(metric: AbstractMetric, x: Point) -> Scalar:
    r"""`max |Γ^a_{bc} − Γ^a_{cb}|` (torsion-free connection)."""
    gam = metric.christoffel(x)
    return jnp.max(jnp.abs(gam - jnp.swapaxes(gam, 1, 2)))


def metric_compatibility_residual(metric: AbstractMetric, x: Point) -> Scalar:
    r"""`max |∇_c g_{ab}|` with `∇_c g_{ab} = ∂_c g_{ab} − Γ^d_{ca} g_{db} − Γ^d_{cb} g_{ad}`."""
    g = metric.metric(x)
    dg = jax.jacfwd(metric.metric)(x)  # [a, b, c] = ∂_c g_ab
    gam = metric.christoffel(x)
    cov = dg - jnp.einsum("dca,db->abc", gam, g) - jnp.einsum("dcb,ad->abc", gam, g)
    return jnp.max(jnp.abs(cov))


def riemann_symmetry_residual(metric: AbstractMetric, x: Point) -> Scalar:
    r"""Largest violation of `R_{abcd} = −R_{bacd} = −R_{abdc} = R_{cdab}`,
    with `R_{abcd} = g_{ae} R^e_{bcd}`."""
    low = jnp.einsum("ae,ebcd->abcd", metric.metric(x), metric.riemann(x))
    r1 = low + jnp.einsum("abcd->bacd", low)
    r2 = low + jnp.einsum("abcd->abdc", low)
    r3 = low - jnp.einsum("abcd->cdab", low)
    return jnp.max(jnp.abs(jnp.stack([r1, r2, r3])))


def first_bianchi_residual(metric: AbstractMetric, x: Point) -> Scalar:
    r"""`max |R^a_{bcd} + R^a_{cdb} + R^a_{dbc}|`."""
    r = metric.riemann(x)
    return jnp.max(jnp.abs(r + jnp.einsum("acdb->abcd", r) + jnp.einsum("adbc->abcd", r)))


def second_bianchi_residual(metric: AbstractMetric, x: Point) -> Scalar:
    r"""`max |∇_e R^a_{bcd} + ∇_c R^a_{bde} + ∇_d R^a_{bec}|` (differential Bianchi identity).

    `∇_e R^a_{bcd} = ∂_e R^a_{bcd} + Γ^a_{ef}R^f_{bcd} − Γ^f_{eb}R^a_{fcd} − Γ^f_{ec}R^a_{bfd}
    − Γ^f_{ed}R^a_{bcf}`, the derivative `∂_e` by forward-mode autodiff of the Riemann tensor.
    """
    r = metric.riemann(x)
    dr = jax.jacfwd(metric.riemann)(x)  # [a, b, c, d, e] = ∂_e R^a_bcd
    gam = metric.christoffel(x)
    cov = (
        dr
        + jnp.einsum("aef,fbcd->abcde", gam, r)
        - jnp.einsum("feb,afcd->abcde", gam, r)
        - jnp.einsum("fec,abfd->abcde", gam, r)
        - jnp.einsum("fed,abcf->abcde", gam, r)
    )
    # cyclic sum over (c, d, e): T[c,d,e] + T[d,e,c] + T[e,c,d]
    total = (
        cov
        + jnp.einsum("abdec->abcde", cov)
        + jnp.einsum("abecd->abcde", cov)
    )
    return jnp.max(jnp.abs(total))


def vacuum_residual(metric: AbstractMetric, x: Point) -> Scalar:
    r"""`max |R_{ab}|`: zero for a vacuum (Ricci-flat) solution of Einstein's equation."""
    return jnp.max(jnp.abs(metric.ricci(x)))
