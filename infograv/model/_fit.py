r"""Fitting a [`Potential`][infograv.model.Potential] to a language model's next-token
distributions.

The model of a real next-token distribution $P$ at a prompt with final hidden state $h$ is the
selection law (docs/model/formalism.md §4) at $T = 1$ with unit token masses,

$$Q_i(\theta) \propto e^{-U_i}, \qquad U_i = \Phi_\theta(|x_i - x_q|) + c\cdot x_i,
  \qquad x_q = a\,h + b,$$

with $x_i$ the token embeddings. Two query maps are offered, and every kernel family gets the
same one (like for like):

- `"affine"`: $x_q = a h + b$ and a uniform external field $c\cdot x_i$ ($2d + 1$ map
  parameters). The harmonic kernel turns $b$ into a linear token term $-k\,b\cdot x_i$; the
  field $c$ gives every other kernel that same linear term, so no family has a per-token freedom
  the others lack.
- `"scalar"`: $x_q = a h$, no field (one map parameter).

Distances are measured in a fixed length unit $\ell$ (the median distance from $h$ to its 8
most likely tokens, computed once from the data): the embedding and $h$ are divided by $\ell$,
so every kernel parameter is of order one at the start and a kernel of dimension 576
($r^{-574}$) stays representable in float64. Parameters are reported in that unit; $\ell$ is
saved with the fit. The query scale is fitted as $\log a$ and positive kernel parameters as
logarithms; $a$ is capped at $10^3$ length units and the parameters other than the strength
(`G` or `k`) are clipped to $[10^{-5}, 10^5]$ (beyond, a width that tends to infinity equals
its limit to about $10^{-4}$ nats at the fitted distances, while rounding of $|U| \sim G$ would
swamp the energy differences). Beyond a cap the gradient of the capped parameter is zero, so a
fit whose optimum lies in a limit (the harmonic well's $k \to 0$, $k a$ fixed, is the plain
softmax of $h\cdot x_i$; Yukawa's $\mu \to 0$ is Newton) stops on the cap by the gradient
clause below.

The loss is the exact mean over prompts of $\mathrm{KL}(P\,\|\,Q_\theta)$ over the whole
vocabulary. With $z_{bi} = h_b\cdot x_i$ computed once,
$|x_q - x_i|^2 = a^2|h|^2 + 2a\,h\cdot b + |b|^2 - 2a z_{bi} - 2\,b\cdot x_i + |x_i|^2$, so one
evaluation costs $O(BV + Vd)$; a test checks it against
[`energies`][infograv.model.energies]. Optimiser: L-BFGS (optax, zoom line search), the whole
run one compiled `while_loop` that stops by the **convergence rule**, judged at each
iterate: either (*gradient clause*) the loss changed by at most `ftol`·(1 + |loss|) in the
last step and the gradient norm is at most `gtol`, or (*bound clause*) the mean KL is at most
`ktol`: every KL is at least 0, so such a fit is within `ktol` of the global optimum of any
family. A start that has not lowered its best loss by $10^{-8}$·(1 + |loss|) in 10 steps has
*stalled* and stops; after `max_steps` steps, or stalled, without either clause, `converged`
is false. Several starts are run
(see [`fit_potential`][infograv.model._fit.fit_potential]); the best final loss wins, and every
start's loss curve and the clause that stopped it are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._potential import Potential
from ._query import Query
from ._selection import energies, log_probs
from ._space import SemanticSpace

__all__ = ["FIT_QUERY_MAPS", "FitData", "PotentialFit", "fit_potential", "kl_per_prompt",
           "length_unit",
           "prepare_fit_data", "potential_name", "potential_param_names", "set_potential_params"]

FIT_QUERY_MAPS = ("affine", "scalar")

_F = TypeVar("_F", bound=Callable[..., Any])
# older JAX kept the same context manager in jax.experimental
_enable_x64: Any = (jax.enable_x64 if hasattr(jax, "enable_x64")
                    else jax.experimental.enable_x64)  # type: ignore[attr-defined]


def _in_float64(fn: _F) -> _F:
    """Run `fn` with JAX's 64-bit types on, whatever the caller's `jax_enable_x64`: the loss
    subtracts sums of size |log Z| ~ 1e4, which float32 would round to nothing."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with _enable_x64(True):
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Potentials as fittable objects
# --------------------------------------------------------------------------------------------


def potential_name(potential: Potential) -> str:
    """The potential's name (`Potential.name` when present, else its kernel name)."""
    name = getattr(potential, "name", None)
    return str(name) if isinstance(name, str) else str(potential.kernel)


def potential_param_names(potential: Potential) -> tuple[str, ...]:
    """The fitted parameter names of `potential` (its leaves other than the mass `M`)."""
    names = getattr(potential, "param_names", None)
    if names is None or callable(names):
        names = tuple(potential.params)
    return tuple(n for n in names if n != "M")


def set_potential_params(potential: Potential, values: Mapping[str, Any]) -> Potential:
    """A copy of `potential` with new parameter values (works under `jit` and `grad`)."""
    if hasattr(potential, "with_params"):
        return potential.with_params(**values)
    new = {**potential.fn.params, **values}
    return eqx.tree_at(lambda p: p.fn.params, potential, new)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


class FitData(NamedTuple):
    """The arrays of a fit, in the length unit $\\ell$ (passed to compiled code as arguments).

    Attributes:
        z: `(B, V)`, $h_b\\cdot x_i/\\ell^2$.
        h: `(B, d)`, $h/\\ell$.
        hsq: `(B,)`, $|h|^2/\\ell^2$.
        emb: `(V, d)`, $x_i/\\ell$.
        esq: `(V,)`, $|x_i|^2/\\ell^2$.
        p: `(B, V)` real probabilities.
        negent: `(B,)`, $\\sum_i p_i\\log p_i$.
        cscale: $1/\\text{rms}|x_i/\\ell|$, the scale of the external-field parameter ($c =
            \\tilde c\\cdot$ `cscale`, so that $\\tilde c$ moves the logits by O(1) per unit).
    """

    z: jax.Array
    h: jax.Array
    hsq: jax.Array
    emb: jax.Array
    esq: jax.Array
    p: jax.Array
    negent: jax.Array
    cscale: jax.Array


#: elements of a (prompts x vocabulary) float64 block handled at once (32 MB)
_BLOCK_ELEMS = 1 << 22


def _block_rows(width: int) -> int:
    # rows of a `_BLOCK_ELEMS` block of `width` columns
    return max(1, _BLOCK_ELEMS // max(1, width))


def normalised(lp: np.ndarray) -> np.ndarray:
    """Log-probabilities `(B, V)` renormalised in float64 (a float32 forward pass sums to 1 only
    to ~1e-7, which the KL's log-partition term would multiply).

    Example:
        >>> import numpy as np
        >>> lp = normalised(np.log(np.array([[1.0, 3.0]], np.float32)))
        >>> np.exp(lp).round(6).tolist()
        [[0.25, 0.75]]
    """
    lp = np.asarray(lp, np.float64)
    if lp.size == 0:
        return lp
    m = lp.max(axis=1, keepdims=True)
    return lp - (m + np.log(np.sum(np.exp(lp - m), axis=1, keepdims=True)))


def length_unit(hidden: Any, logp: Any, embedding: Any) -> float:
    """The fit's length unit: median distance from each `h` to its 8 most likely tokens."""
    h = np.asarray(hidden, np.float64)
    lp = np.asarray(logp)
    emb = np.asarray(embedding)
    step = _block_rows(lp.shape[1])
    top = np.concatenate([np.argpartition(-lp[i:i + step], 8, axis=1)[:, :8]
                          for i in range(0, len(lp), step)])
    diff = h[:, None, :] - emb[top].astype(np.float64)
    return float(np.median(np.sqrt(np.sum(diff * diff, axis=-1))))


@_in_float64
def prepare_fit_data(hidden: Any, logp: Any, embedding: Any, unit: float,
                     shared: FitData | None = None) -> FitData:
    """`FitData` from hidden states `(B, d)`, real log-probabilities
    `(B, V)` and the embedding `(V, d)`, in length unit `unit`.

    With `shared` (data of other prompts prepared from the same embedding and unit), its
    embedding arrays are reused instead of copied (a float64 copy of Gemma 3's embedding is
    1.3 GB). The arrays are float64 whether or not `jax_enable_x64` is on (as are the fit and
    its evaluation: `fit_potential`, `kl_per_prompt` and `PotentialFit.log_probs` switch 64-bit
    types on for their own work).

    Raises:
        ValueError: shapes that do not match, a non-positive `unit`, or a `shared` prepared
            from another embedding or unit.
    """
    h = np.asarray(hidden, np.float64)
    lp = np.asarray(logp, np.float64)
    emb = np.asarray(embedding, np.float64)
    if h.ndim != 2 or lp.ndim != 2 or emb.ndim != 2:
        raise ValueError("hidden, logp, embedding: must be 2-D arrays (B, d), (B, V), (V, d).")
    if h.shape[0] != lp.shape[0] or lp.shape[1] != emb.shape[0] or h.shape[1] != emb.shape[1]:
        raise ValueError(f"hidden {h.shape}, logp {lp.shape}, embedding {emb.shape}: need "
                         "(B, d), (B, V), (V, d) with matching B, V, d.")
    if not unit > 0:
        raise ValueError(f"unit: must be positive, got {unit!r}.")
    hs = h / unit
    if shared is not None:
        if shared.emb.shape != emb.shape or not np.allclose(
                np.asarray(shared.emb[:4]), emb[:4] / unit, rtol=1e-6, atol=0.0):
            raise ValueError("shared: prepared from another embedding or unit.")
        es = np.asarray(shared.emb)  # the same numbers, not divided again (1.3 GB for Gemma 3)
    else:
        es = emb / unit
    B, V = lp.shape
    p = np.empty((B, V), np.float64)
    negent = np.empty(B, np.float64)
    # in blocks of rows, so that the temporaries are one block, not (B, V) each
    step = _block_rows(V)
    for i in range(0, B, step):
        # renormalised: the loss's log-partition term (|log Z| ~ 1e4 at the fitted scale)
        # multiplies a float32 pass's error in the sum
        blk = normalised(lp[i:i + step])
        pb = np.exp(blk)
        p[i:i + step] = pb
        negent[i:i + step] = np.sum(np.where(pb > 0, pb * blk, 0.0), axis=1)
    if shared is None:
        emb_j, esq_j = jnp.asarray(es), jnp.asarray(np.sum(es * es, axis=1))
        cscale = jnp.asarray(1.0 / np.sqrt(np.mean(np.sum(es * es, axis=1))))
    else:
        emb_j, esq_j, cscale = shared.emb, shared.esq, shared.cscale
    p_j = jnp.asarray(p)
    del p
    return FitData(
        z=jnp.asarray(hs @ es.T), h=jnp.asarray(hs), hsq=jnp.asarray(np.sum(hs * hs, axis=1)),
        emb=emb_j, esq=esq_j, p=p_j, negent=jnp.asarray(negent), cscale=cscale)


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------


class _Spec(NamedTuple):
    """Static description of the fitted parameters: names and which are fitted as logs."""

    names: tuple[str, ...]
    log: tuple[bool, ...]


#: Positive parameters other than the strength are clipped to [1e-5, 1e5] (length units, or
#: inverse length units for `mu`): a width that
#: tends to infinity is then within its limit to about 1e-4 nats at the fitted distances
#: (a few hundred units), while |U| ~ G ~ k·width² stays small enough (~1e10) that float64
#: rounding (|U| x 1e-16) leaves the energy differences intact to ~1e-6.
_LOG_CAP = math.log(1e5)
#: The query scale a is fitted as log a and capped at 1e3 length units: the harmonic well's
#: limit k -> 0, k·a fixed (the plain softmax of h·x) is then reached to ~1e-7 nats, and a
#: width 30 times the largest fitted distance stays under the width cap (limit starts).
_LOG_A_CAP = math.log(1e3)
#: The query scale of the far-field start (families without a limit start).
_A_FAR = 1e2


def _kernel_values(theta: Mapping[str, Any], spec: _Spec) -> dict[str, jax.Array]:
    strength = _strength_name(spec)
    out = {}
    for n, lg in zip(spec.names, spec.log):
        v = theta["kernel"][n]
        out[n] = (jnp.exp(v if n == strength else jnp.clip(v, -_LOG_CAP, _LOG_CAP)) if lg
                  else v)
    return out


def _train_energies(pot: Potential, theta: Mapping[str, Any], spec: _Spec,
                    data: FitData) -> jax.Array:
    """Energies `(B, V)` from the precomputed products (see the module docstring)."""
    extra = eb = None
    if "b" in theta:  # one pass over the embedding for both the bias and the external field
        bc = data.emb @ jnp.stack([theta["b"], theta["c"] * data.cscale], axis=1)
        eb, extra = bc[:, 0], bc[:, 1][None, :]
    r2 = _train_energies_r2(theta, data, eb)
    phi = set_potential_params(pot, _kernel_values(theta, spec))
    u = phi.from_sq_distance(r2, jnp.ones((), r2.dtype))
    return u if extra is None else u + extra


def _kl_rows(pot: Potential, theta: Mapping[str, Any], spec: _Spec, data: FitData) -> jax.Array:
    u = _train_energies(pot, theta, spec, data)
    log_z = jax.nn.logsumexp(-u, axis=-1)
    return data.negent + jnp.sum(data.p * u, axis=-1) + log_z


#: Above this many (prompt, token) pairs the loss runs over chunks of prompts, each
#: rematerialised in the backward pass, so that memory stays ~ one chunk of (B, V) arrays.
_CHUNK_ELEMS = 1 << 24


#: With several devices (one process), the loss's prompts are split over them by
#: [`infograv.parallel.data_parallel`][] (each prompt's KL computed whole on one device).
_SHARD = True


def _kl_rows_chunked(pot: Potential, theta: Mapping[str, Any], spec: _Spec,
                     data: FitData) -> jax.Array:
    """`_kl_rows`, over chunks of prompts when `B·V > _CHUNK_ELEMS` (the same numbers), and
    data-parallel over the devices when there are several."""
    from ..parallel._data import data_parallel, splits_locally

    if _SHARD and splits_locally(data.z.shape[0]):

        def local(rows: tuple[jax.Array, ...], th: Any, shared: tuple[jax.Array, ...]
                  ) -> jax.Array:
            z, h, hsq, p, negent = rows
            emb, esq, cscale = shared
            return _kl_rows_local(pot, th, spec, FitData(z, h, hsq, emb, esq, p, negent, cscale))

        return data_parallel(local, batch_argnums=0)(
            (data.z, data.h, data.hsq, data.p, data.negent), theta,
            (data.emb, data.esq, data.cscale))
    return _kl_rows_local(pot, theta, spec, data)


def _kl_rows_local(pot: Potential, theta: Mapping[str, Any], spec: _Spec,
                   data: FitData) -> jax.Array:
    B, V = data.z.shape
    if B * V <= _CHUNK_ELEMS:
        return _kl_rows(pot, theta, spec, data)

    def one(row: tuple[jax.Array, ...]) -> jax.Array:
        z, h, hsq, p, negent = row
        sub = data._replace(z=z[None], h=h[None], hsq=hsq[None], p=p[None],
                            negent=negent[None])
        return _kl_rows(pot, theta, spec, sub)[0]

    return jax.lax.map(jax.checkpoint(one), (data.z, data.h, data.hsq, data.p, data.negent),
                       batch_size=max(1, _CHUNK_ELEMS // V))


def _loss(theta: Any, pot: Potential, spec: _Spec, data: FitData, w: jax.Array) -> jax.Array:
    return jnp.sum(w * _kl_rows_chunked(pot, theta, spec, data)) / jnp.sum(w)


@eqx.filter_jit
def _loss_many(thetas: Any, pot: Potential, spec: _Spec, data: FitData,
               w: jax.Array) -> jax.Array:
    """The loss at each of a stack of parameter sets (leading axis), one at a time."""
    return jax.lax.map(lambda th: _loss(th, pot, spec, data, w), thetas)


#: A start that has not lowered its best loss by `_STALL`·(1 + |loss|) for `_PATIENCE` steps
#: has stalled (its line searches find next to no decrease): it stops, not converged.
_PATIENCE = 10
_STALL = 1e-8

_BUFFER = 1024  # length of the stored loss curve (the step limit is a traced argument)


@eqx.filter_jit
def _lbfgs(theta0: Any, pot: Potential, spec: _Spec, data: FitData, w: jax.Array,
           ftol: jax.Array, gtol: jax.Array, ktol: jax.Array, max_steps: jax.Array
           ) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array,
                      jax.Array]:
    """L-BFGS in one `while_loop` with the convergence rule of the module docstring; also
    returns the number of loss evaluations of the line searches."""

    def f(th: Any) -> jax.Array:
        return _loss(th, pot, spec, data, w)

    opt = optax.lbfgs()
    vg = optax.value_and_grad_from_state(f)
    dtype = data.z.dtype
    losses0 = jnp.full((_BUFFER,), jnp.nan, dtype)

    def cond(c: Any) -> jax.Array:
        return (c[2] < max_steps) & ~c[6] & (c[9] < _PATIENCE)

    def body(c: Any) -> Any:
        th, st, k, prev, losses, _, _, nev, best, since = c
        val, g = vg(th, state=st)
        gn = optax.tree_utils.tree_norm(g)
        done = (jnp.abs(prev - val) <= ftol * (1 + jnp.abs(val))) & (gn <= gtol)
        done = done | (jnp.abs(val) <= ktol) | ~jnp.isfinite(val)
        upd, st = opt.update(g, st, th, value=val, grad=g, value_fn=f)
        nev = nev + optax.tree_utils.tree_get(st, "num_linesearch_steps").astype(jnp.int32)
        gained = val < best - _STALL * (1 + jnp.abs(best))
        since = jnp.where(gained, 0, since + 1)
        best = jnp.minimum(best, val)
        # the rule is judged at `th`; once it holds, `th` is kept (the reported point is the
        # one the rule was judged at)
        th = jax.tree_util.tree_map(lambda t, n: jnp.where(done, t, n), th,
                                    optax.apply_updates(th, upd))
        return th, st, k + 1, val, losses.at[k].set(val), gn, done, nev, best, since

    init = (theta0, opt.init(theta0), jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, dtype),
            losses0, jnp.asarray(jnp.inf, dtype), jnp.zeros((), bool), jnp.zeros((), jnp.int32),
            jnp.asarray(jnp.inf, dtype), jnp.zeros((), jnp.int32))
    # optax's L-BFGS memory indexing mixes int32 and int64 (an implicit promotion that strict
    # promotion refuses); allow the standard rules while tracing the loop
    with jax.numpy_dtype_promotion("standard"):
        th, _, k, _, losses, _, done, nev, _, since = jax.lax.while_loop(cond, body, init)
    val, g = jax.value_and_grad(f)(th)
    return th, losses, k, done, val, optax.tree_utils.tree_norm(g), nev, since


# --------------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PotentialFit:
    """A fitted potential and query map, reloadable from its
    [`to_dict`][infograv.model._fit.PotentialFit.to_dict].

    Attributes:
        name: the family's name.
        potential: the fitted [`Potential`][infograv.model.Potential] (distances in units of
            `unit`).
        query_map: `"affine"` or `"scalar"`.
        a: the query scale $a$.
        b: `(d,)` query offset (affine map) or `None`.
        c: `(d,)` external field (affine map) or `None`.
        unit: the length unit $\\ell$.
        train_kl: the final training loss (mean KL, nats).
        grad_norm: the gradient norm at the end.
        converged: whether the best start met the convergence rule.
        steps: L-BFGS steps of the best start.
        starts: one record per start: `label`, `losses` (curve), `final_loss`, `steps`,
            `converged`.
    """

    name: str
    potential: Potential
    query_map: str
    a: float
    b: np.ndarray | None
    c: np.ndarray | None
    unit: float
    train_kl: float
    grad_norm: float
    converged: bool
    steps: int
    starts: list[dict[str, Any]]

    @property
    def params(self) -> dict[str, float]:
        """The kernel parameters (in units of `unit`)."""
        return {n: float(v) for n, v in self.potential.params.items()
                if n in potential_param_names(self.potential)}

    @property
    def rule(self) -> str | None:
        """The clause of the convergence rule that stopped the best start (the one whose
        final loss is `train_kl`); `None` for a fit saved without per-start records."""
        best = [s for s in self.starts if s.get("final_loss") == self.train_kl]
        return best[0].get("rule") if best else None

    def query_positions(self, hidden: Any) -> np.ndarray:
        """$x_q = a h/\\ell + b$ for hidden states `(B, d)`, in units of $\\ell$."""
        q = self.a * np.asarray(hidden, np.float64) / self.unit
        return q + self.b if self.b is not None else q

    def energies(self, hidden: Any, space: SemanticSpace) -> jax.Array:
        """Energies `(B, V)` through [`energies`][infograv.model.energies].

        Arguments:
            hidden: `(B, d)` final hidden states.
            space: the embedding in units of $\\ell$ (`SemanticSpace(embedding / unit)`).
        """
        q = jnp.asarray(self.query_positions(hidden), space.embedding.dtype)
        bg = None if self.c is None else space.embedding @ jnp.asarray(self.c, q.dtype)
        return energies(space, Query(q, jnp.ones(q.shape[:1], q.dtype)), self.potential,
                        background=bg)

    @_in_float64
    def log_probs(self, hidden: Any, embedding: Any, *, chunk: int = 32) -> np.ndarray:
        """The fitted model's log-probabilities `(B, V)` at hidden states `(B, d)`."""
        space = SemanticSpace(jnp.asarray(np.asarray(embedding, np.float64) / self.unit))
        h = np.asarray(hidden, np.float64)
        out = [np.asarray(log_probs(self.energies(h[i:i + chunk], space), 1.0))
               for i in range(0, len(h), chunk)]
        return np.concatenate(out, axis=0)

    def to_dict(self) -> dict[str, Any]:
        """Every fitted number, JSON-ready (floats round-trip exactly through `json`)."""
        return {
            "name": self.name, "kernel": str(self.potential.kernel),
            "d": None if self.potential.d is None else int(self.potential.d),
            "params": self.params, "query_map": self.query_map, "a": float(self.a),
            "b": None if self.b is None else [float(v) for v in self.b],
            "c": None if self.c is None else [float(v) for v in self.c],
            "unit": float(self.unit), "train_kl": float(self.train_kl),
            "grad_norm": float(self.grad_norm), "converged": bool(self.converged),
            "steps": int(self.steps),
            "starts": [{k: (list(map(float, v)) if k == "losses" else v) for k, v in s.items()}
                       for s in self.starts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], potential: Potential | None = None
                  ) -> PotentialFit:
        """Rebuild a fit saved by `to_dict`.

        Arguments:
            data: the saved dictionary.
            potential: the family's potential (any parameter values); default: the built-in
                kernel `data["kernel"]` in dimension `data["d"]`.
        """
        if potential is None:
            if data.get("d") is None:
                raise ValueError("potential: a user-defined potential must be given to reload "
                                 f"the fit of {data.get('name')!r}.")
            potential = Potential(data["kernel"], int(data["d"]))
        pot = potential
        pot = set_potential_params(pot, {k: jnp.asarray(v) for k, v in data["params"].items()})
        vec = (lambda v: None if v is None else np.asarray(v, np.float64))
        return cls(name=data["name"], potential=pot, query_map=data["query_map"],
                   a=float(data["a"]), b=vec(data["b"]), c=vec(data["c"]),
                   unit=float(data["unit"]), train_kl=float(data["train_kl"]),
                   grad_norm=float(data["grad_norm"]), converged=bool(data["converged"]),
                   steps=int(data["steps"]), starts=list(data.get("starts", [])))


def _spec(potential: Potential) -> _Spec:
    names = potential_param_names(potential)
    vals = potential.params
    return _Spec(names, tuple(bool(float(vals[n]) > 0) for n in names))


def _theta_from(fit: PotentialFit | None, potential: Potential, spec: _Spec, query_map: str,
                data: FitData, values: Mapping[str, float] | None = None) -> dict[str, Any]:
    d = data.h.shape[1]
    vals = dict(potential.params) if values is None else dict(values)
    kernel = {n: jnp.asarray(math.log(float(vals[n])) if lg else float(vals[n]))
              for n, lg in zip(spec.names, spec.log)}
    a0 = 1.0 if fit is None else fit.a
    theta: dict[str, Any] = {"a": jnp.asarray(math.log(a0)), "kernel": kernel}
    if query_map == "affine":
        zero = np.zeros(d)
        theta["b"] = jnp.asarray(zero if fit is None or fit.b is None else fit.b)
        theta["c"] = jnp.asarray(zero if fit is None or fit.c is None else fit.c) / data.cscale
    return theta


def _strength_name(spec: _Spec) -> str | None:
    for n in ("G", "k"):
        if n in spec.names and spec.log[spec.names.index(n)]:
            return n
    return None


def _scan_strength(theta: dict[str, Any], pot: Potential, spec: _Spec, data: FitData,
                   w: jax.Array, typical_r2: float) -> dict[str, Any] | None:
    """Scale the strength so that |U| ~ 1 at the typical distance, then keep the best of 9
    factors e^-8 … e^8 (one compiled pass over the stack). `None` when the strength does not
    change the loss there (the kernel vanishes at those distances: a flat, degenerate start)."""
    name = _strength_name(spec)
    if name is None:
        return theta
    phi = set_potential_params(pot, _kernel_values(theta, spec))
    u0 = float(jnp.abs(phi.from_sq_distance(jnp.asarray(typical_r2), 1.0)))
    base = theta["kernel"][name]
    if np.isfinite(u0) and u0 > 0:
        base = base - math.log(u0)
    shifts = jnp.linspace(-8.0, 8.0, 9)
    stack = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (9, *jnp.shape(v))), theta)
    stack["kernel"] = {**stack["kernel"], name: base + shifts}
    vals = np.asarray(_loss_many(stack, pot, spec, data, w))
    vals = np.where(np.isfinite(vals), vals, np.inf)
    if np.all(vals == vals[0]):
        return None
    best = int(np.argmin(vals))
    out = dict(theta)
    out["kernel"] = {**theta["kernel"], name: base + shifts[best]}
    return out


def _matched_start(ref: PotentialFit, pot: Potential, spec: _Spec, shape: Mapping[str, float],
                   data: FitData, query_map: str) -> dict[str, Any] | None:
    r"""A start in `pot`'s limit that reproduces `ref`: the map of `ref`, the shape parameters
    `shape` (e.g. a very large width) and the strength that best matches
    $\Phi_\text{ref}(r) \approx G\,\Phi_1(r) + C$ on the fitted distances (least squares)."""
    name = _strength_name(spec)
    if name is None:
        return None
    th_ref = _theta_from(ref, ref.potential, _spec(ref.potential), query_map, data)
    r2 = np.asarray(_train_energies_r2(th_ref, data))
    pp = np.asarray(data.p)
    top = min(32, pp.shape[1])
    idx = (np.argpartition(-pp, top - 1, axis=1)[:, :top] if top < pp.shape[1]
           else np.broadcast_to(np.arange(top), pp.shape))
    sample = np.take_along_axis(r2, idx, axis=1).reshape(-1)
    rmax, rmin = float(np.sqrt(sample.max())), float(np.sqrt(max(sample.min(), 1e-300)))
    values = {n: float(v) for n, v in pot.params.items() if n in spec.names}
    for n, rule in shape.items():
        values[n] = rule * (rmax if rule >= 1 else rmin) if n != "mu" else rule / rmax
    values[name] = 1.0
    unit_pot = set_potential_params(pot, {k: jnp.asarray(v) for k, v in values.items()})
    f1 = np.asarray(unit_pot.from_sq_distance(jnp.asarray(sample), 1.0))
    fr = np.asarray(ref.potential.from_sq_distance(jnp.asarray(sample), 1.0))
    f1c, frc = f1 - f1.mean(), fr - fr.mean()
    den = float(f1c @ f1c)
    g = float(f1c @ frc) / den if den > 0 else float("nan")
    if not (np.isfinite(g) and g > 0):
        return None
    values[name] = g
    return _theta_from(ref, pot, spec, query_map, data, values)


def _scale(theta: Mapping[str, Any]) -> jax.Array:
    """The query scale $a = e^{\\theta_a}$ (fitted as a logarithm, capped at `_A_CAP`)."""
    return jnp.exp(jnp.minimum(theta["a"], _LOG_A_CAP))


def _train_energies_r2(theta: Mapping[str, Any], data: FitData,
                       eb: jax.Array | None = None) -> jax.Array:
    """Squared distances `(B, V)` from the query `a·h (+ b)` to every token, from the
    precomputed products; `eb` is `emb @ b` when the caller already has it."""
    a = _scale(theta)
    r2 = (a * a) * data.hsq[:, None] - (2 * a) * data.z + data.esq[None, :]
    if "b" in theta:
        b = theta["b"]
        eb = data.emb @ b if eb is None else eb
        r2 = r2 + (2 * a * (data.h @ b) + b @ b)[:, None] - 2 * eb[None, :]
    return jnp.maximum(r2, 0.0)


def _run(theta0: dict[str, Any], pot: Potential, spec: _Spec, data: FitData, w: jax.Array,
         ftol: float, gtol: float, ktol: float, max_steps: int, label: str
         ) -> tuple[dict[str, Any], dict[str, Any]]:
    dt = data.z.dtype
    th, losses, n, done, val, gn, nev, since = _lbfgs(
        theta0, pot, spec, data, w, jnp.asarray(ftol, dt), jnp.asarray(gtol, dt),
        jnp.asarray(ktol, dt), jnp.asarray(min(max_steps, _BUFFER), jnp.int32))
    k = int(n)
    conv = bool(done) and bool(np.isfinite(float(val)))
    rule = (("bound" if abs(float(val)) <= ktol else "gradient") if conv else
            "stalled" if int(since) >= _PATIENCE else "step limit")
    rec = {"label": label, "losses": np.asarray(losses)[:k].tolist(), "final_loss": float(val),
           "steps": k, "converged": conv, "rule": rule, "grad_norm": float(gn),
           "evaluations": int(nev)}
    return th, rec


@_in_float64
def fit_potential(
    potential: Potential,
    data: FitData,
    *,
    unit: float,
    query_map: str = "affine",
    name: str | None = None,
    limit_starts: Sequence[tuple[PotentialFit, Mapping[str, float]]] = (),
    warm_start: PotentialFit | None = None,
    weights: Any = None,
    max_steps: int = 300,
    ftol: float = 1e-10,
    gtol: float = 1e-6,
    ktol: float = 0.0,
) -> PotentialFit:
    r"""Fit `potential` and the query map to real next-token distributions by minimising KL.

    Starts: the *default* start ($a = 1$, $b = c = 0$, the potential's own parameter values,
    the strength scaled so that $|\Phi| \approx 1$ at the typical distance and then the best of
    nine factors $e^{-8}\dots e^{8}$); one start per `limit_starts` entry `(ref, shape)`: the map
    of the fitted family `ref`, the shape parameters set by `shape` (multiples of the largest
    fitted distance for a width that tends to infinity, of the smallest for one that tends to
    zero; for `mu` the value times 1/largest distance) and the strength matched to
    $\Phi_\text{ref}$ by least squares; without any limit start, a *far-field* start ($a =
    10^2$ length units, the strength scanned as for the default start), where every kernel with
    a smooth far field tends to the plain softmax of $h\cdot x_i$ (skipped when the kernel
    vanishes there); with `warm_start`, only that fit's parameters (used for bootstrap refits).
    The starts at a limit (or the far field) run first, the default start last; once a start
    meets the bound clause (a certificate of the global optimum, within `ktol`) the remaining
    ones are not run. The lowest final loss wins. Each start's record keeps its loss curve and
    the clause of the convergence rule that stopped it (`rule`: `"gradient"` or `"bound"`;
    `"stalled"` or `"step limit"` when it did not converge) and its number of line-search
    evaluations.

    Arguments:
        potential: a [`Potential`][infograv.model.Potential] (built-in or user-defined).
        data: from [`prepare_fit_data`][infograv.model._fit.prepare_fit_data] in length unit `unit`.
        unit: the length unit of `data`.
        query_map: `"affine"` or `"scalar"` (module docstring).
        name: the family's name (default: the potential's name).
        limit_starts: fitted families this one contains as a limit, with the limit's shape.
        warm_start: start only from this fit.
        weights: `(B,)` non-negative prompt weights (bootstrap counts; default all 1).
        max_steps: the step limit of each start.
        ftol: the relative loss change of the convergence rule (module docstring).
        gtol: the gradient norm of the convergence rule.
        ktol: the bound clause of the convergence rule: a mean KL at most `ktol` is within
            `ktol` of 0, the lower bound of every KL, and so of the global optimum of any family
            (default 0: off; the study uses 1e-6).

    Returns:
        A [`PotentialFit`][infograv.model._fit.PotentialFit].

    Raises:
        ValueError: unknown `query_map`, weights of the wrong shape or all zero, or `data`
            not in float64 (one not made by `prepare_fit_data`).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> emb, h = rng.normal(size=(40, 3)), rng.normal(size=(12, 3))
        >>> u = 0.5 * ((emb[None] - 2.0 * h[:, None]) ** 2).sum(-1)   # harmonic, k = 1, a = 2
        >>> logp = -u - np.log(np.exp(-u).sum(1, keepdims=True))
        >>> fit = fit_potential(Potential("harmonic", 3), prepare_fit_data(h, logp, emb, 1.0),
        ...                     unit=1.0, query_map="scalar")
        >>> fit.train_kl < 1e-4, round(fit.a * fit.params["k"], 2)
        (True, 2.0)
    """
    if query_map not in FIT_QUERY_MAPS:
        raise ValueError(f"query_map: expected one of {FIT_QUERY_MAPS}, got {query_map!r}.")
    dt = data.z.dtype
    if dt != jnp.float64:
        raise ValueError(f"data: arrays are {dt}; the loss needs float64 (make it with "
                         "prepare_fit_data).")
    B = data.z.shape[0]
    w = jnp.ones((B,), dt) if weights is None else jnp.asarray(weights, dt)
    if w.shape != (B,) or not float(jnp.sum(w)) > 0:
        raise ValueError(f"weights: need shape ({B},) with a positive sum.")
    spec = _spec(potential)
    starts: list[tuple[str, dict[str, Any]]] = []
    if warm_start is not None:
        starts.append(("warm", _theta_from(warm_start, potential, spec, query_map, data,
                                           warm_start.params)))
    else:
        th0 = _theta_from(None, potential, spec, query_map, data)
        typical = float(np.median(np.asarray(_train_energies_r2(th0, data))))
        scanned = _scan_strength(th0, potential, spec, data, w, typical)
        starts.append(("default", th0 if scanned is None else scanned))
        for ref, shape in limit_starts:
            th = _matched_start(ref, potential, spec, shape, data, query_map)
            if th is not None:
                starts.append((f"limit:{ref.name}", th))
        if len(starts) == 1 and _strength_name(spec) is not None:
            # the far field: the query far from the cloud (a = _A_FAR), where every kernel
            # with a smooth far field tends to the plain softmax of h·x
            far = dict(th0, a=jnp.asarray(math.log(_A_FAR)))
            r2far = float(np.median(np.asarray(_train_energies_r2(far, data))))
            scanned = _scan_strength(far, potential, spec, data, w, r2far)
            if scanned is not None:
                starts.append(("far field", scanned))
        # the starts at a limit first: once a start meets the bound clause (a certificate of
        # the global optimum) the others cannot do better by more than ktol and are not run
        starts = starts[1:] + starts[:1]
    best: tuple[dict[str, Any], dict[str, Any]] | None = None
    records = []
    for label, th0 in starts:
        th, rec = _run(th0, potential, spec, data, w, ftol, gtol, ktol, max_steps, label)
        records.append(rec)
        if best is None or rec["final_loss"] < best[1]["final_loss"] or not np.isfinite(
                best[1]["final_loss"]):
            best = (th, rec)
        if rec["rule"] == "bound":
            break
    assert best is not None
    th, rec = best
    fitted = set_potential_params(potential, _kernel_values(th, spec))
    return PotentialFit(
        name=name or potential_name(potential), potential=fitted, query_map=query_map,
        a=float(_scale(th)), b=None if "b" not in th else np.asarray(th["b"]),
        c=None if "c" not in th else np.asarray(th["c"] * data.cscale), unit=float(unit),
        train_kl=rec["final_loss"], grad_norm=rec["grad_norm"], converged=rec["converged"],
        steps=rec["steps"], starts=records)


@eqx.filter_jit
def _kl_rows_jit(theta: Any, pot: Potential, spec: _Spec, data: FitData) -> jax.Array:
    return _kl_rows_chunked(pot, theta, spec, data)


@_in_float64
def kl_per_prompt(fit: PotentialFit, data: FitData) -> np.ndarray:
    r"""$\mathrm{KL}(P_b\,\|\,Q_b)$ of a fit on each prompt of `data` (prepared in `fit.unit`),
    by the fast path of the training loss (the same numbers as
    [`PotentialFit.log_probs`][infograv.model._fit.PotentialFit.log_probs], without the matmul)."""
    spec = _spec(fit.potential)
    theta = _theta_from(fit, fit.potential, spec, fit.query_map, data, fit.params)
    return np.asarray(_kl_rows_jit(theta, fit.potential, spec, data))
