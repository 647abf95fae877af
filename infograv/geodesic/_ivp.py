"""Initial-value geodesics with diffrax, one at a time (`vmap`-able, with events), and the
conserved quantities along them. Batches of thousands: `_batch.py`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Point, Scalar, Vector
from ..geometry import AbstractMetric, safe_norm
from ._checks import check_point, check_value

__all__ = [
    "AbstractGeodesicEvent",
    "HorizonCrossing",
    "LeavesDomain",
    "NearToken",
    "GeodesicSolution",
    "geodesic",
    "norm",
    "momentum",
    "killing_charge",
    "energy",
    "nearest_token",
]

Kind = Literal["timelike", "null", "spacelike"]
_NULL_TOL = 1e-8


# -- conserved quantities ---------------------------------------------------------------------
def norm(metric: AbstractMetric, x: Point, v: Vector) -> Scalar:
    """`g(v, v)` at `x`: constant along any geodesic (−1 for unit timelike, 0 for null)."""
    return metric.inner(x, v, v)


def momentum(metric: AbstractMetric, x: Point, v: Vector, index: int) -> Scalar:
    r"""The covariant component `p_k = g_{kb} v^b`.

    Conserved along geodesics when the metric does not depend on the coordinate `x^k`
    (`∂_k` is a Killing vector): e.g. `k = 3` (`φ`) gives the angular momentum `L` of
    Schwarzschild in `(t, r, θ, φ)`.
    """
    return metric.metric_vp(x, v)[index]


def energy(metric: AbstractMetric, x: Point, v: Vector) -> Scalar:
    """`E = −g_{0b} v^b`, conserved for a static metric with time coordinate `x⁰`."""
    return -momentum(metric, x, v, 0)


def killing_charge(metric: AbstractMetric, x: Point, v: Vector, killing: Any) -> Scalar:
    r"""`g(K(x), v)` for a Killing vector field `K` (a function `(n,) → (n,)`): conserved.

    Example: a rotation in the `(i, j)` plane of Cartesian coordinates is
    `K(x) = x_i e_j − x_j e_i`; its charge is the angular momentum in that plane.
    """
    return jnp.dot(killing(x), metric.metric_vp(x, v))


# -- events -----------------------------------------------------------------------------------
class AbstractGeodesicEvent(eqx.Module):
    """A terminating event: `value(x, v)` is positive before and crosses zero when it fires.

    The concrete events return relative distances (`r / r_h − 1`, …) so that the root find
    of the event time meets its tolerance at any scale."""

    @abc.abstractmethod
    def value(self, x: Point, v: Vector) -> Scalar:
        """Signed distance to the event."""


def _radius(x: Point, radial_index: int | None, spatial_start: int, center: Any) -> Scalar:
    if radial_index is not None:
        return x[radial_index]
    xs = x[spatial_start:]
    if center is not None:
        xs = xs - center
    return safe_norm(xs)


class HorizonCrossing(AbstractGeodesicEvent):
    """Fires when the radius falls to `radius` (an information horizon).

    Attributes:
        radius: horizon radius `r_h`.
        radial_index: if given, the radius is the coordinate `x[radial_index]` (spherical
            charts such as `(t, r, θ, φ)`); otherwise `|x[spatial_start:] − center|`.
        spatial_start: first spatial coordinate in Cartesian charts (1 for spacetime).
        center: optional centre, shape `(n − spatial_start,)`.
    """

    radius: Float[Array, ""] | float = eqx.field(converter=jnp.asarray)
    radial_index: int | None = eqx.field(static=True, default=None)
    spatial_start: int = eqx.field(static=True, default=1)
    center: Float[Array, " m"] | None = None

    def value(self, x: Point, v: Vector) -> Scalar:
        r = _radius(x, self.radial_index, self.spatial_start, self.center)
        return r / self.radius - 1.0


class LeavesDomain(AbstractGeodesicEvent):
    """Fires when the trajectory leaves the ball `|x_s − center| < radius`.

    Attributes:
        radius: the domain radius.
        radial_index: if given, the radius is the coordinate `x[radial_index]` (spherical
            charts); otherwise `|x[spatial_start:] − center|`.
        spatial_start: first coordinate that counts (0 for Riemannian, 1 for spacetime).
        center: optional centre.
    """

    radius: Float[Array, ""] | float = eqx.field(converter=jnp.asarray)
    radial_index: int | None = eqx.field(static=True, default=None)
    spatial_start: int = eqx.field(static=True, default=0)
    center: Float[Array, " m"] | None = None

    def value(self, x: Point, v: Vector) -> Scalar:
        return 1.0 - _radius(x, self.radial_index, self.spatial_start, self.center) / self.radius


class NearToken(AbstractGeodesicEvent):
    """Fires when the trajectory comes within `radius` of any token.

    Attributes:
        tokens: `(N, m)` token positions.
        radius: the neighbourhood radius.
        spatial_start: first coordinate that counts.
    """

    tokens: Float[Array, "N m"]
    radius: Float[Array, ""] | float = eqx.field(converter=jnp.asarray)
    spatial_start: int = eqx.field(static=True, default=0)

    def value(self, x: Point, v: Vector) -> Scalar:
        d = safe_norm(x[None, self.spatial_start :] - self.tokens)
        return jnp.min(d) / self.radius - 1.0


def nearest_token(event: NearToken, x: Point) -> Int[Array, ""]:
    """Index of the token nearest to `x` (use after a `NearToken` event)."""
    return jnp.argmin(safe_norm(x[None, event.spatial_start :] - event.tokens))


# -- solutions --------------------------------------------------------------------------------
class GeodesicSolution(eqx.Module):
    """The result of [`geodesic`][infograv.geodesic.geodesic].

    Attributes:
        ts: saved parameter values, `(S,)` (the last one is the event time if an event fired;
            unused slots are `inf`).
        xs: positions, `(S, n)`.
        vs: velocities, `(S, n)`.
        result: a `diffrax.RESULTS` code (`successful`, `event_occurred`, `max_steps_reached`…).
        event_mask: one boolean per event (in the order given), or `None` without events.
        num_steps: accepted steps.
        solution: the underlying `diffrax.Solution` (dense output when asked for).
    """

    ts: Float[Array, " S"]
    xs: Float[Array, "S n"]
    vs: Float[Array, "S n"]
    result: diffrax.RESULTS
    event_mask: tuple[Bool[Array, ""], ...] | None
    num_steps: Int[Array, ""]
    solution: diffrax.Solution

    def evaluate(self, t: Any) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """Dense output `(x(t), v(t))`; needs `dense=True` when solving."""
        return self.solution.evaluate(t)

    @property
    def event_occurred(self) -> Bool[Array, ""]:
        """Whether any event fired."""
        return jnp.asarray(self.result == diffrax.RESULTS.event_occurred)


class _EventCondition(eqx.Module):
    # a module (not a closure) so that jit caches hit across calls with equal settings
    event: AbstractGeodesicEvent

    def __call__(self, t: Any, y: Any, args: Any, **kwargs: Any) -> Scalar:
        return self.event.value(y[0], y[1])


def _vector_field(t: Any, y: tuple[Vector, Vector], metric: AbstractMetric):
    x, v = y
    return v, -metric.acceleration(x, v)


def _check_kind(metric: AbstractMetric, x0: Point, v0: Vector, kind: str | None, normalize: bool):
    if kind is None:
        if normalize:
            raise ValueError("normalize: needs kind='timelike' or 'spacelike'.")
        return v0
    if kind not in ("timelike", "null", "spacelike"):
        raise ValueError(f"kind: expected 'timelike', 'null', 'spacelike' or None, got {kind!r}.")
    gv = metric.metric_vp(x0, v0)
    nrm = jnp.dot(v0, gv)
    scale = safe_norm(v0) * safe_norm(gv)
    v0 = check_value(
        ~(scale > 0),
        "v0: the initial velocity is zero (or the metric is degenerate at x0); a geodesic needs "
        "a nonzero velocity.",
        v0,
    )
    tol = _NULL_TOL * scale
    if kind == "timelike":
        bad, what = nrm >= -tol, "timelike needs g(v0, v0) < 0"
    elif kind == "spacelike":
        bad, what = nrm <= tol, "spacelike needs g(v0, v0) > 0"
    else:
        bad, what = jnp.abs(nrm) > tol, "null needs g(v0, v0) = 0 (to 1e-8 relative)"
    v0 = check_value(bad, f"v0: wrong causal character for kind={kind!r}: {what}.", v0)
    if normalize:
        if kind == "null":
            raise ValueError("normalize: a null vector cannot be normalised; use kind='null' "
                             "without normalize.")
        v0 = v0 / jnp.sqrt(jnp.abs(nrm))
    return v0


def geodesic(
    metric: AbstractMetric,
    x0: Any,
    v0: Any,
    t1: Any,
    *,
    t0: Any = 0.0,
    kind: str | None = None,
    normalize: bool = False,
    events: Sequence[AbstractGeodesicEvent] = (),
    ts: Any = None,
    dense: bool = False,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    dt0: float | None = None,
    dtmax: float | None = None,
    adaptive: bool = True,
    max_steps: int = 65536,
    throw: bool = True,
) -> GeodesicSolution:
    r"""Integrate the geodesic equation `ẍ^a = −Γ^a_{bc} ẋ^b ẋ^c` from `(x0, v0)`.

    Adaptive (default `diffrax.Dopri8`, PID step control at `rtol`, `atol`), in the dtype of
    the inputs (float64 when enabled). `vmap` it over initial conditions; or use
    [`geodesic_batch`][infograv.geodesic.geodesic_batch] for thousands of them at once.

    Arguments:
        metric: any [`AbstractMetric`][infograv.geometry.AbstractMetric].
        x0: initial point, `(n,)`.
        v0: initial velocity, `(n,)`.
        t1: final affine parameter (proper time for a normalised timelike geodesic).
        t0: initial affine parameter.
        kind: `"timelike"`, `"null"` or `"spacelike"` to check the causal character of `v0`
            (`g(v0, v0)` < 0, = 0 to 1e-8 relative, > 0); `None` skips the check.
        normalize: rescale `v0` to `g(v0, v0) = ∓1` (timelike/spacelike).
        events: terminating events
            ([`HorizonCrossing`][infograv.geodesic.HorizonCrossing],
            [`LeavesDomain`][infograv.geodesic.LeavesDomain],
            [`NearToken`][infograv.geodesic.NearToken]); the first that fires stops the solve,
            and its time is located by a Newton root find on the dense interpolant.
        ts: optional `(S,)` parameter values to save at; default saves the final state only.
        dense: keep the dense interpolant (`sol.evaluate(t)`).
        solver: a diffrax solver (default `Dopri8()`).
        rtol: relative tolerance of the step-size controller.
        atol: absolute tolerance of the step-size controller.
        dt0: initial step (default: chosen by diffrax); the step when `adaptive=False`.
        dtmax: largest step. Events are detected by a sign change of their value between
            the ends of a step, so a step must not jump over a whole event region (e.g. pass
            through a token's neighbourhood in one step on a nearly flat metric): bound it.
        adaptive: `False` takes constant steps `dt0` (for convergence studies).
        max_steps: step budget.
        throw: raise if the solve fails (e.g. `max_steps` reached); otherwise inspect `result`.

    Returns:
        A [`GeodesicSolution`][infograv.geodesic.GeodesicSolution].

    Raises:
        ValueError: `x0`/`v0` of the wrong shape, a zero `v0`, `v0` of the wrong causal
            character for `kind`, an unknown `kind` (raised at run time through `eqx.error_if`
            when the inputs are traced).

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import ConformalMetric
        >>> from infograv.geodesic import geodesic
        >>> flat = ConformalMetric(lambda x: 0.0 * x[0], dim=2)
        >>> sol = geodesic(flat, jnp.zeros(2), jnp.array([1.0, 2.0]), 1.0)
        >>> sol.xs[-1].round(12).tolist()
        [1.0, 2.0]
    """
    x0 = check_point(metric, x0, "x0")
    v0 = check_point(metric, v0, "v0").astype(x0.dtype)
    v0 = _check_kind(metric, x0, v0, kind, normalize)
    dtype = x0.dtype
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    if ts is None:
        saveat = diffrax.SaveAt(t1=True, dense=dense)
    else:
        saveat = diffrax.SaveAt(ts=jnp.asarray(ts, dtype), dense=dense)
    controller: diffrax.AbstractStepSizeController
    if adaptive:
        controller = diffrax.PIDController(rtol=rtol, atol=atol, dtmax=dtmax)
    else:
        if dt0 is None or not dt0 > 0:
            raise ValueError(f"dt0: constant steps (adaptive=False) need dt0 > 0, got {dt0}.")
        controller = diffrax.ConstantStepSize()
    event = None
    if events:
        for i, ev in enumerate(events):
            if not isinstance(ev, AbstractGeodesicEvent):
                raise TypeError(f"events[{i}]: expected a geodesic event, got {type(ev).__name__}.")
        conds = tuple(_EventCondition(ev) for ev in events)
        event = diffrax.Event(conds, root_finder=optx.Newton(rtol=1e-11, atol=1e-11))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver if solver is not None else diffrax.Dopri8(),
        t0,
        t1,
        dt0,
        (x0, v0),
        args=metric,
        saveat=saveat,
        stepsize_controller=controller,
        event=event,
        max_steps=max_steps,
        throw=throw,
    )
    xs, vs = sol.ys
    mask = None if sol.event_mask is None else tuple(sol.event_mask)
    return GeodesicSolution(
        ts=sol.ts, xs=xs, vs=vs, result=sol.result, event_mask=mask,
        num_steps=sol.stats["num_accepted_steps"], solution=sol,
    )
