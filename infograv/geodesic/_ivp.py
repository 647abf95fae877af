"""Initial-value geodesics with diffrax, one at a time (`vmap`-able, with events), and the
conserved quantities along them. Batches of thousands: `_batch.py`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Point, Scalar, Vector
from ..geometry import AbstractMetric, safe_norm
from ._checks import check_point, check_solved, check_value, is_traced

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
    of the event time meets its tolerance at any scale.

    **One convention for the spatial coordinates.** Events that measure a radius
    ([`HorizonCrossing`][infograv.geodesic.HorizonCrossing],
    [`LeavesDomain`][infograv.geodesic.LeavesDomain],
    [`NearToken`][infograv.geodesic.NearToken]) take the same `spatial_start`: the index of
    the first coordinate that counts. Left at `None` (the default of all three), it is
    implied by the shape of `center` or `tokens` when those are given (`n − m`), and
    otherwise it is the metric's spatial part: `1` when the first coordinate is timelike at
    the starting point (`g_00(x0) < 0`, a spacetime chart `(t, x¹ …)`), `0` otherwise (a
    Riemannian metric). [`geodesic`][infograv.geodesic.geodesic] settles it through
    `for_metric`; pass an int to override (e.g. inside a horizon, where `t` is spacelike)."""

    @abc.abstractmethod
    def value(self, x: Point, v: Vector) -> Scalar:
        """Signed distance to the event."""

    def for_metric(self, metric: AbstractMetric, x0: Point) -> AbstractGeodesicEvent:
        """This event with its coordinate convention settled for `metric` at the start `x0`
        (a no-op for events without one)."""
        del metric, x0
        return self


def _time_first(metric: AbstractMetric, x0: Point) -> Bool[Array, ""]:
    # g_00(x0) < 0: the first coordinate is timelike at the start (O(n): one metric_vp)
    e0 = jnp.zeros_like(x0).at[0].set(1.0)
    return metric.inner(x0, e0, e0) < 0


class _AbstractRadialEvent(AbstractGeodesicEvent):
    # shared by HorizonCrossing and LeavesDomain: the radius and the spatial convention
    radius: eqx.AbstractVar[Float[Array, ""] | float]
    radial_index: eqx.AbstractVar[int | None]
    spatial_start: eqx.AbstractVar[int | None]
    center: eqx.AbstractVar[Float[Array, " m"] | None]
    time_first: eqx.AbstractVar[Bool[Array, ""] | None]

    def __check_init__(self) -> None:
        if self.spatial_start is not None and (
            not isinstance(self.spatial_start, int) or self.spatial_start < 0
        ):
            raise ValueError(
                f"spatial_start: expected a non-negative int or None, got {self.spatial_start!r}."
            )
        if self.center is not None and jnp.ndim(self.center) != 1:
            raise ValueError(f"center: expected shape (m,), got {jnp.shape(self.center)}.")

    def for_metric(self, metric: AbstractMetric, x0: Point) -> _AbstractRadialEvent:
        if self.radial_index is not None or self.spatial_start is not None:
            return self
        if self.center is not None:
            m = jnp.shape(self.center)[0]
            if m > metric.dim:
                raise ValueError(
                    f"center: {m} coordinates for a {metric.dim}-dimensional metric."
                )
            return self
        return eqx.tree_at(lambda e: e.time_first, self, _time_first(metric, x0),
                           is_leaf=lambda z: z is None)

    def _radius(self, x: Point) -> Scalar:
        if self.radial_index is not None:
            return x[self.radial_index]
        if self.spatial_start is not None:
            start = self.spatial_start
        elif self.center is not None:
            start = x.shape[0] - self.center.shape[0]
        elif self.time_first is not None:
            return jnp.where(self.time_first, safe_norm(x[1:]), safe_norm(x))
        else:
            raise ValueError(
                f"spatial_start: {type(self).__name__} does not know which coordinates are "
                "spatial; pass spatial_start (1 for a spacetime chart (t, x¹ …), 0 for a "
                "Riemannian one) or settle it with event.for_metric(metric, x0)."
            )
        xs = x[start:]
        return safe_norm(xs if self.center is None else xs - self.center)


class HorizonCrossing(_AbstractRadialEvent):
    """Fires when the radius falls to `radius` (an information horizon).

    Attributes:
        radius: horizon radius `r_h`.
        radial_index: if given, the radius is the coordinate `x[radial_index]` (spherical
            charts such as `(t, r, θ, φ)`); otherwise `|x[spatial_start:] − center|`.
        spatial_start: first spatial coordinate in Cartesian charts; `None` (default): the
            convention of [`AbstractGeodesicEvent`][infograv.geodesic.AbstractGeodesicEvent]
            (1 on a spacetime, 0 on a Riemannian metric, `n − m` with a `center` of shape
            `(m,)`).
        center: optional centre, shape `(m,)`.
        time_first: set by `for_metric` (whether the first coordinate is timelike at the
            start); leave it `None`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import TangherliniMetric
        >>> from infograv.geodesic import HorizonCrossing, geodesic
        >>> bh = TangherliniMetric(4, r_s=1.0)
        >>> x0, v0 = jnp.array([0.0, 3.0, 0.0, 0.0]), jnp.array([1.0, -0.5, 0.0, 0.0])
        >>> sol = geodesic(bh, x0, v0, 50.0, events=[HorizonCrossing(1.1)])
        >>> round(float(jnp.linalg.norm(sol.x_end[1:])), 4)
        1.1
    """

    radius: Float[Array, ""] | float = eqx.field(converter=jnp.asarray)
    radial_index: int | None = eqx.field(static=True, default=None)
    spatial_start: int | None = eqx.field(static=True, default=None)
    center: Float[Array, " m"] | None = None
    time_first: Bool[Array, ""] | None = None

    def value(self, x: Point, v: Vector) -> Scalar:
        return self._radius(x) / self.radius - 1.0


class LeavesDomain(_AbstractRadialEvent):
    """Fires when the trajectory leaves the ball `|x_s − center| < radius`.

    Attributes:
        radius: the domain radius.
        radial_index: if given, the radius is the coordinate `x[radial_index]` (spherical
            charts); otherwise `|x[spatial_start:] − center|`.
        spatial_start: first coordinate that counts; `None` (default): the convention of
            [`AbstractGeodesicEvent`][infograv.geodesic.AbstractGeodesicEvent] (1 on a
            spacetime, 0 on a Riemannian metric, `n − m` with a `center` of shape `(m,)`).
        center: optional centre, shape `(m,)`.
        time_first: set by `for_metric`; leave it `None`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import ConformalMetric
        >>> from infograv.geodesic import LeavesDomain, geodesic
        >>> flat = ConformalMetric(lambda x: 0.0 * x[0], dim=2)
        >>> sol = geodesic(flat, jnp.zeros(2), jnp.array([0.0, 2.0]), 10.0,
        ...                events=[LeavesDomain(4.0)])
        >>> round(float(sol.t_end), 4)  # |x| = 2t reaches 4 at t = 2
        2.0
    """

    radius: Float[Array, ""] | float = eqx.field(converter=jnp.asarray)
    radial_index: int | None = eqx.field(static=True, default=None)
    spatial_start: int | None = eqx.field(static=True, default=None)
    center: Float[Array, " m"] | None = None
    time_first: Bool[Array, ""] | None = None

    def value(self, x: Point, v: Vector) -> Scalar:
        return 1.0 - self._radius(x) / self.radius


class NearToken(AbstractGeodesicEvent):
    """Fires when the trajectory comes within `radius` of any token.

    Attributes:
        tokens: `(N, m)` token positions.
        radius: the neighbourhood radius.
        spatial_start: first coordinate that counts; `None` (default): `n − m`, the last `m`
            coordinates (the convention of
            [`AbstractGeodesicEvent`][infograv.geodesic.AbstractGeodesicEvent]).
    """

    tokens: Float[Array, "N m"]
    radius: Float[Array, ""] | float = eqx.field(converter=jnp.asarray)
    spatial_start: int | None = eqx.field(static=True, default=None)

    def _start(self, x: Point) -> int:
        if self.spatial_start is not None:
            return self.spatial_start
        return x.shape[0] - self.tokens.shape[1]

    def value(self, x: Point, v: Vector) -> Scalar:
        d = safe_norm(x[None, self._start(x) :] - self.tokens)
        return jnp.min(d) / self.radius - 1.0


def nearest_token(event: NearToken, x: Point) -> Int[Array, ""]:
    """Index of the token nearest to `x` (use after a `NearToken` event)."""
    return jnp.argmin(safe_norm(x[None, event._start(x) :] - event.tokens))


# -- solutions --------------------------------------------------------------------------------
class GeodesicSolution(eqx.Module):
    """The result of [`geodesic`][infograv.geodesic.geodesic].

    Attributes:
        ts: saved parameter values, `(S,)`. Without `ts=`: `(1,)`, where the solve stopped
            (`t1`, or the event time if an event fired). With `ts=`: the requested values;
            those not reached (after an event, or a failed solve with `throw=False`) are
            `inf`, and so are their `xs` and `vs`: never finite-looking.
        xs: positions, `(S, n)`.
        vs: velocities, `(S, n)`.
        t_end: where the solve stopped, always: `t1`, the event time if an event fired, or
            the last accepted step of a failed solve (`throw=False`).
        x_end: the position at `t_end`, `(n,)`.
        v_end: the velocity at `t_end`, `(n,)`.
        result: a `diffrax.RESULTS` code (`successful`, `event_occurred`, `max_steps_reached`…).
        event_mask: one boolean per event (in the order given), or `None` without events.
        num_steps: accepted steps.
        solution: the underlying `diffrax.Solution` (dense output when asked for).
    """

    ts: Float[Array, " S"]
    xs: Float[Array, "S n"]
    vs: Float[Array, "S n"]
    t_end: Float[Array, ""]
    x_end: Float[Array, " n"]
    v_end: Float[Array, " n"]
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
            Values not reached (after an event) come back as `inf`; where the solve stopped
            is always in `t_end`, `x_end`, `v_end`.
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
        throw: raise if the solve fails (e.g. `max_steps` reached); otherwise inspect `result`
            (unreached save points are `inf`).

    Returns:
        A [`GeodesicSolution`][infograv.geodesic.GeodesicSolution].

    Raises:
        ValueError: `x0`/`v0` of the wrong shape, a zero `v0`, `v0` of the wrong causal
            character for `kind`, an unknown `kind` (raised at run time through `eqx.error_if`
            when the inputs are traced).
        equinox.EquinoxRuntimeError: with `throw=True`, a failed solve. Called outside `jit`
            the error's text is the reason (`geodesic: The maximum number of solver steps was
            reached…`); under `jit`/`vmap` equinox raises it at run time inside its report.

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
    end = diffrax.SubSaveAt(t1=True)
    if ts is None:
        saveat = diffrax.SaveAt(subs=[end], dense=dense)
    else:
        saves = diffrax.SubSaveAt(ts=jnp.asarray(ts, dtype).reshape(-1))
        saveat = diffrax.SaveAt(subs=[saves, end], dense=dense)
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
        conds = tuple(_EventCondition(ev.for_metric(metric, x0)) for ev in events)
        event = diffrax.Event(conds, root_finder=optx.Newton(rtol=1e-11, atol=1e-11))
    # outside jit a failure is raised here, message first; under jit diffrax raises it
    eager = not is_traced(metric, x0, v0, t0, t1, ts, events)
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
        throw=throw and not eager,
    )
    assert isinstance(sol.ts, list) and isinstance(sol.ys, list)
    t_end, (x_end, v_end) = sol.ts[-1][0], jax.tree.map(lambda a: a[0], sol.ys[-1])
    ts_out, (xs, vs) = sol.ts[0], sol.ys[0]
    if throw and eager:
        failed = (sol.result != diffrax.RESULTS.successful) & (
            sol.result != diffrax.RESULTS.event_occurred)
        reason: str = diffrax.RESULTS[sol.result]  # type: ignore[misc]
        check_solved(failed, f"geodesic: {reason} (stopped at "
                     f"t = {float(t_end):.6g}).", None)
    mask = None if sol.event_mask is None else tuple(sol.event_mask)
    return GeodesicSolution(
        ts=ts_out, xs=xs, vs=vs, t_end=t_end, x_end=x_end, v_end=v_end, result=sol.result,
        event_mask=mask, num_steps=sol.stats["num_accepted_steps"], solution=sol,
    )
