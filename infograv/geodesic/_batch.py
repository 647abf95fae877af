"""Batched initial-value geodesics: one fused explicit Runge–Kutta loop per block of orbits.

The batch is cut into blocks of `block_size` orbits; each block is integrated by its own
adaptive loop (one `lax.while_loop`, all stages of a step unrolled into the loop body), with
the step size shared by the orbits of the block and the blocks run one after another. A block's
state (`2n × block_size` numbers per stage) stays in cache, the error norm is one reduction per
step, and an easy block does not wait for a hard one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._custom_types import Scalar
from ..geometry import AbstractMetric
from ._checks import check_solved, is_traced

__all__ = ["BatchGeodesicSolution", "geodesic_batch"]

_SAFETY = 0.9
_FAC_MIN = 0.2
_FAC_MAX = 10.0


class BatchGeodesicSolution(eqx.Module):
    """The result of [`geodesic_batch`][infograv.geodesic.geodesic_batch].

    Attributes:
        ts: saved parameter values, `(S,)`, shared by the batch.
        xs: positions, `(S, B, n)`; `inf` at save points that a failed block (with
            `throw=False`) did not reach, as in [`geodesic`][infograv.geodesic.geodesic].
        vs: velocities, `(S, B, n)`; `inf` where `xs` is.
        result: a `diffrax.RESULTS` code for the whole batch (`successful`,
            `max_steps_reached`, `dt_min_reached`); the first failing block's code.
        num_steps: accepted steps of the block that needed the most.
        block_steps: accepted steps of each block, `(K,)`.
        block_rejected: rejected steps of each block, `(K,)`.
    """

    ts: Float[Array, " S"]
    xs: Float[Array, "S B n"]
    vs: Float[Array, "S B n"]
    result: diffrax.RESULTS
    num_steps: Int[Array, ""]
    block_steps: Int[Array, " K"]
    block_rejected: Int[Array, " K"]


class _Tableau(NamedTuple):
    a: np.ndarray  # (s, s), strictly lower triangular
    b: np.ndarray  # (s,)
    e: np.ndarray  # (s,), b − b̂ (the error weights)
    fsal: bool
    order: int


def _tableau(solver: Any) -> _Tableau:
    """The Butcher tableau of an explicit embedded diffrax Runge–Kutta solver (without the nodes
    `c`: the geodesic equations do not depend on the parameter)."""
    if solver is None:
        solver = diffrax.Dopri8()
    tab = getattr(type(solver), "tableau", None)
    if (
        not isinstance(tab, diffrax.ButcherTableau)
        or tab.implicit
        or tab.b_error is None
        or not isinstance(solver, diffrax.AbstractERK)
    ):
        raise ValueError(
            "solver: expected an explicit embedded Runge–Kutta solver of diffrax (Dopri8, "
            f"Dopri5, Tsit5, Bosh3, …), got {type(solver).__name__}."
        )
    s = tab.num_stages
    a = np.zeros((s, s))
    for i, row in enumerate(tab.a_lower, start=1):
        a[i, : len(row)] = np.asarray(row)
    order = solver.order(None)
    if order is None:
        raise ValueError(f"solver: {type(solver).__name__} does not state its order.")
    return _Tableau(
        a=a, b=np.asarray(tab.b_sol, float), e=np.asarray(tab.b_error, float),
        fsal=bool(tab.fsal), order=int(order),
    )


def _combine(weights: np.ndarray, ks: list[Array]) -> Array | None:
    # Σ_j w_j k_j with the zero weights skipped (traced once per stage, at compile time)
    out: Array | None = None
    for w, k in zip(weights, ks, strict=False):
        if w != 0.0:
            term = float(w) * k
            out = term if out is None else out + term
    return out


def _error_norm(err: Array, y0: Array, y1: Array, rtol: Scalar, atol: Scalar) -> Scalar:
    # RMS over each orbit's 2n components of err / (atol + rtol max(|y0|, |y1|)), then the
    # worst orbit of the block: every orbit meets the tolerance. NaN propagates (→ reject).
    scale = atol + rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1))
    per_orbit = jnp.sqrt(jnp.mean((err / scale) ** 2, axis=0))
    return jnp.max(per_orbit)


class _State(NamedTuple):
    t: Scalar
    y: Array
    k0: Array
    h: Scalar
    accepted: Int[Array, ""]
    rejected: Int[Array, ""]
    save_index: Int[Array, ""]
    out: Array
    status: Int[Array, ""]


_OK, _MAX_STEPS, _DT_MIN = 0, 1, 2


def _solve_block(
    f: Any, tab: _Tableau, y0: Array, ss: Array, rtol: Scalar, atol: Scalar, h0: Any,
    max_steps: int, adaptive: bool,
) -> _State:
    """Integrate `y' = f(y)` from `s = 0` with shared step control (or constant steps `h0`),
    saving at `ss` (≥ 0, nondecreasing); `y` has shape `(2n, block)`."""
    dtype = y0.dtype
    tiny = 16 * jnp.finfo(dtype).eps
    s_end = ss[-1]
    k0 = f(y0)

    if h0 is None:
        # Hairer, Nørsett & Wanner, Solving ODEs I, §II.4: the starting step size
        def rms(z: Array) -> Scalar:
            return _error_norm(z, y0, y0, rtol, atol)

        d0, d1 = rms(y0), rms(k0)
        ha = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
        d2 = rms(f(y0 + ha * k0) - k0) / ha
        hb = jnp.where(
            jnp.maximum(d1, d2) <= 1e-15,
            jnp.maximum(1e-6, ha * 1e-3),
            (0.01 / jnp.maximum(d1, d2)) ** (1.0 / (tab.order + 1)),
        )
        h = jnp.minimum(100 * ha, hb)
    else:
        h = jnp.asarray(h0, dtype)
    h = jnp.minimum(h, jnp.maximum(s_end, tiny))
    # save slots not reached (a failed block with throw=False) stay inf: never finite-looking
    out = jnp.full((ss.shape[0], *y0.shape), jnp.inf, dtype)
    state = _State(
        t=jnp.zeros((), dtype), y=y0, k0=k0, h=h, accepted=jnp.array(0), rejected=jnp.array(0),
        save_index=jnp.array(0), out=out, status=jnp.array(_OK),
    )
    n_save = ss.shape[0]

    def cond(st: _State) -> Any:
        return (st.save_index < n_save) & (st.status == _OK)

    def step(st: _State) -> _State:
        # one path per iteration, no branch: a step lands exactly on the next save point when
        # it reaches it, and the state is then written into its slot (a save point at the
        # current parameter is a step of length zero, which y + 0·Σ leaves exactly y)
        target = ss[st.save_index]
        remaining = target - st.t
        hit = st.h >= remaining
        h = jnp.where(hit, remaining, st.h)
        ks = [st.k0]
        for i in range(1, tab.a.shape[0]):
            inc = _combine(tab.a[i, :i], ks)
            ks.append(f(st.y if inc is None else st.y + h * inc))
        inc, err_inc = _combine(tab.b, ks), _combine(tab.e, ks)
        assert inc is not None and err_inc is not None  # b and b − b̂ are never all zero
        y1 = st.y + h * inc
        err = h * err_inc
        en = _error_norm(err, st.y, y1, rtol, atol)
        if adaptive:
            ok = en <= 1.0  # False for NaN
            # the elementary controller h ← h·0.9·err^(−1/p); after a rejection the step may
            # only shrink, and a non-finite error shrinks it by the most
            fac = _SAFETY * jnp.maximum(en, 1e-12) ** (-1.0 / tab.order)
            fac = jnp.where(
                ok,
                jnp.clip(fac, _FAC_MIN, _FAC_MAX),
                jnp.where(jnp.isfinite(en), jnp.clip(fac, _FAC_MIN, 1.0), _FAC_MIN),
            )
            h_next = h * fac
            # a step shortened to land on a save point does not shrink the next one
            h_next = jnp.where(ok & hit, jnp.maximum(h_next, st.h), h_next)
        else:
            ok = jnp.isfinite(en)
            h_next = jnp.where(ok, st.h, 0.0)
        k_next = ks[-1] if tab.fsal else f(y1)
        t1 = jnp.where(hit, target, st.t + h)
        # the budget is checked before a step counts, so a run that needs exactly max_steps
        # steps succeeds; a step of length zero (onto a save point) does not count
        moves = h > 0
        in_budget = (st.accepted + st.rejected < max_steps) | ~moves
        tiny_step = ~ok & (h_next <= tiny * jnp.maximum(jnp.abs(st.t), 1.0))
        ok = ok & in_budget
        accepted = st.accepted + (ok & moves).astype(st.accepted.dtype)
        rejected = st.rejected + (~ok & in_budget).astype(st.rejected.dtype)
        status = jnp.where(~in_budget, _MAX_STEPS, jnp.where(tiny_step, _DT_MIN, _OK))
        saving = ok & hit
        slot = st.out[st.save_index]
        return _State(
            t=jnp.where(ok, t1, st.t),
            y=jnp.where(ok, y1, st.y),
            k0=jnp.where(ok, k_next, st.k0),
            h=h_next,
            accepted=accepted,
            rejected=rejected,
            save_index=st.save_index + saving.astype(st.save_index.dtype),
            out=st.out.at[st.save_index].set(jnp.where(saving, y1, slot)),
            status=status,
        )

    return jax.lax.while_loop(cond, step, state)


def geodesic_batch(
    metric: AbstractMetric,
    x0: Any,
    v0: Any,
    t1: Any,
    *,
    t0: Any = 0.0,
    ts: Any = None,
    solver: Any = None,
    rtol: float = 1e-9,
    atol: float = 1e-9,
    dt0: float | None = None,
    block_size: int | None = 128,
    adaptive: bool = True,
    max_steps: int = 65536,
    throw: bool = True,
) -> BatchGeodesicSolution:
    r"""Integrate a batch of geodesics `ẍ^a = −Γ^a_{bc}(x) ẋ^b ẋ^c`, block by block.

    The `B` orbits are cut into blocks of `block_size`. Each block is one system of
    `2n × block_size` equations, integrated by an adaptive explicit Runge–Kutta loop fused
    into one compiled `lax.while_loop` (the Butcher tableau of `solver`, default the 8th-order
    Dormand–Prince pair of `diffrax.Dopri8`), with the step size shared by the orbits of the
    block: the error norm is the worst orbit's RMS of `err / (atol + rtol·|y|)`, so every orbit
    meets `rtol`/`atol`. `Γ(v, v)` is evaluated for the whole block at once. Blocks run one
    after another, so a block's stages stay in cache and an easy block takes its own (fewer)
    steps instead of the hardest orbit's; `block_size=None` makes the whole batch one block.
    Save points are hit exactly (steps are shortened to land on them), with no interpolation.
    No events: use [`geodesic`][infograv.geodesic.geodesic] under `vmap` for those.

    Arguments:
        metric: the metric, shared by the batch.
        x0: `(B, n)` initial points.
        v0: `(B, n)` initial velocities.
        t1: final affine parameter (before `t0` integrates backwards).
        t0: initial affine parameter.
        ts: optional `(S,)` parameter values to save at, ordered from `t0` towards `t1`;
            default the final state only.
        solver: an explicit embedded Runge–Kutta solver of diffrax whose tableau is used
            (`Dopri8()` by default; `Tsit5()`, `Dopri5()` for loose tolerances).
        rtol: relative tolerance, met by every orbit.
        atol: absolute tolerance, met by every orbit.
        dt0: initial step size (default: the starting-step estimate of Hairer, Nørsett and
            Wanner, per block).
        block_size: orbits per block (default 128: a block's stages then stay in a CPU core's
            L2 cache; 64 to 256 are within 15 % of each other on the benchmark, see
            `docs/geometry/benchmark.md`); `None` for one block.
        adaptive: `False` takes constant steps `dt0` (shortened only to land on save points),
            for convergence studies.
        max_steps: step budget per block (accepted and rejected).
        throw: raise if a block fails (`max_steps` reached, or the step size fell to rounding
            level, e.g. at a curvature singularity); otherwise inspect `result` (the save
            points a failed block did not reach are `inf`).

    Returns:
        A [`BatchGeodesicSolution`][infograv.geodesic.BatchGeodesicSolution].

    Raises:
        ValueError: `x0`, `v0` not both of shape `(B, n)`; `block_size` not a positive
            integer; `ts` not ordered from `t0` towards `t1`; `solver` not an explicit
            embedded Runge–Kutta method; `rtol`, `atol` not positive.
        equinox.EquinoxRuntimeError: with `throw=True`, a failed solve; outside `jit` its
            text is the reason itself, under `jit` equinox raises it at run time inside its
            report.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import ConformalMetric
        >>> from infograv.geodesic import geodesic_batch
        >>> flat = ConformalMetric(lambda x: 0.0 * x[0], dim=2)
        >>> x0 = jnp.zeros((3, 2))
        >>> v0 = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
        >>> sol = geodesic_batch(flat, x0, v0, 1.0)
        >>> sol.xs[-1].round(12).tolist()
        [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    """
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(float)
    v0 = jnp.asarray(v0, dtype=x0.dtype)
    n = metric.dim
    if x0.ndim != 2 or x0.shape[1] != n or v0.shape != x0.shape:
        raise ValueError(
            f"x0, v0: expected equal shapes (B, {n}), got {x0.shape} and {v0.shape}."
        )
    n_orbits = x0.shape[0]
    if n_orbits == 0:
        raise ValueError("x0, v0: the batch is empty (B = 0).")
    if block_size is not None and (not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size: expected a positive integer or None, got {block_size!r}.")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol, atol: expected positive tolerances, got {rtol}, {atol}.")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps: expected a positive integer, got {max_steps!r}.")
    tab = _tableau(solver)
    if not adaptive and (dt0 is None or not dt0 > 0):
        raise ValueError(f"dt0: constant steps (adaptive=False) need dt0 > 0, got {dt0}.")
    dtype = x0.dtype
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    direction = jnp.where(t1 >= t0, 1.0, -1.0).astype(dtype)
    ts_arr = t1[None] if ts is None else jnp.asarray(ts, dtype).reshape(-1)
    if ts_arr.shape[0] == 0:
        raise ValueError("ts: expected at least one save point, got an empty array.")
    ss = direction * (ts_arr - t0)  # parameter along the direction of integration, ≥ 0
    if not is_traced(ss, t1):
        s_np, span = np.asarray(ss), float(np.abs(np.asarray(t1 - t0)))
        if np.any(s_np < 0) or np.any(np.diff(s_np) < 0) or s_np[-1] > span * (1 + 1e-12):
            raise ValueError(
                "ts: save points must lie between t0 and t1 and be ordered from t0 towards t1."
            )

    bs = n_orbits if block_size is None else min(block_size, n_orbits)
    n_blocks = -(-n_orbits // bs)
    pad = n_blocks * bs - n_orbits
    y0 = jnp.concatenate([x0, v0], axis=1)  # (B, 2n)
    if pad:
        # pad with copies of the last orbit, a neighbour of the last block's own orbits
        y0 = jnp.concatenate([y0, jnp.broadcast_to(y0[-1:], (pad, 2 * n))], axis=0)
    y0 = y0.reshape(n_blocks, bs, 2 * n).transpose(0, 2, 1)  # (K, 2n, bs): components as rows

    acc = jax.vmap(metric.acceleration, in_axes=(1, 1), out_axes=1)

    def f(y: Array) -> Array:
        x, v = y[:n], y[n:]
        return direction * jnp.concatenate([v, -acc(x, v)], axis=0)

    rtol_ = jnp.asarray(rtol, dtype)
    atol_ = jnp.asarray(atol, dtype)

    def one_block(yb: Array) -> _State:
        return _solve_block(f, tab, yb, ss, rtol_, atol_, dt0, max_steps, adaptive)

    final = jax.lax.map(one_block, y0)
    out = final.out.transpose(1, 0, 3, 2).reshape(ts_arr.shape[0], n_blocks * bs, 2 * n)
    out = out[:, :n_orbits]
    status = final.status
    worst = jnp.max(status)
    result = diffrax.RESULTS.where(
        worst == _OK,
        diffrax.RESULTS.successful,
        diffrax.RESULTS.where(
            worst == _MAX_STEPS, diffrax.RESULTS.max_steps_reached, diffrax.RESULTS.dt_min_reached
        ),
    )
    if throw:
        # outside jit the status is concrete and the error is raised here, message first
        out = check_solved(
            worst == _MAX_STEPS,
            f"geodesic_batch: a block used all max_steps={max_steps} steps before t1; raise "
            "max_steps, loosen rtol/atol, or use a smaller block_size.", out,
        )
        out = check_solved(
            worst == _DT_MIN,
            "geodesic_batch: the step size fell to rounding level: a non-finite state (an "
            "orbit reaching a singularity of the metric or the edge of the chart; check the "
            "initial conditions or stop the orbits earlier), or rtol/atol below the "
            "floating-point precision of the inputs.", out,
        )
    return BatchGeodesicSolution(
        ts=ts_arr, xs=out[..., :n], vs=out[..., n:], result=result,
        num_steps=jnp.max(final.accepted), block_steps=final.accepted,
        block_rejected=final.rejected,
    )
