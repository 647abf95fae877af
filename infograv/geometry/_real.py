r"""Metrics on the real embedding manifolds of a language model or sentence encoder.

- [`OutputMetric`][infograv.geometry.OutputMetric]: the Fisher–Rao metric of the model's own
  next-token distribution on hidden-state space,
  `g(h) = Jᵀ(diag P − P Pᵀ)J / T² + λ I`, with `Γ(v, v)` in `O(N d)` work per metric–vector
  product (never an `N × d × d` or `d × d × d` array).
- [`information_gravity_metric`][infograv.geometry.information_gravity_metric]: the Jacobi
  (optical) metric `2(E − U(h)) δ` of a fitted potential around the query position.
- [`density_metric`][infograv.geometry.density_metric]: the density-conformal metric
  `(ρ₀ / ρ(h))^{2/d} δ` of the token-embedding cloud ("voids are far").
- [`euclidean_metric`][infograv.geometry.euclidean_metric]: the flat null.

The formulas, the conditioning choice and the measured errors are in `docs/geometry/real.md`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._custom_types import MetricMatrix, Point, Scalar, Vector
from ._base import AbstractMetric
from ._dense import cho_solve, cholesky
from ._metrics import (
    ConformalMetric,
    JacobiMetric,
    _concrete_positive,
    fisher_from_energies,
    sqrt_embedding,
)

__all__ = [
    "SOLVERS",
    "OutputMetric",
    "information_gravity_metric",
    "density_metric",
    "euclidean_metric",
]

SOLVERS = ("cg", "cholesky")


def _identity(h: Point) -> Point:
    return h


def _pinned(x: Any, like: jax.Array) -> jax.Array:
    return jnp.asarray(x).astype(like.dtype)


class OutputMetric(AbstractMetric):
    r"""The Fisher–Rao metric of a model's output distribution, on hidden-state space.

    The head computes logits `z(h) = W u(h) + b` from the hidden state `h` (`u` is the head's
    input transform: the identity when `h` is the state after the final norm, the final norm
    itself when `h` is the residual stream before it), and `P(i | h) ∝ exp(z_i / T)`. With
    `J = ∂z/∂h = W ∂u/∂h` and `H = diag P − P Pᵀ`,

    $$g(h) = J^\top H J / T^2 + \lambda I
           = \mathrm{Cov}_{P}\big(J^\top e\big)/T^2 + \lambda I ,$$

    for a linear head on the post-norm state `Cov_P(e_i)/T²`, the covariance of the token
    embeddings under the model's own next-token distribution. `λ ≥ 0` (`ridge`) is the
    documented regularisation of the near-null directions (see `docs/geometry/real.md`).

    **Geodesic acceleration in `O(N d)`.** In the logit coordinates `a = z / T` the Fisher
    metric of the softmax is the Hessian of `A(a) = log Σ e^{a_i}`, so its Christoffel symbols
    of the first kind are `½ ∂³A`. Pulling back through `a(h)`,

    $$g\,\Gamma(v, v) = J^\top\Big[H\,\ddot a + \tfrac12 P\odot\big(\tilde x^{2}
      - \mathrm{Var}_P(x)\big)\Big]/T,\qquad x = Jv/T,\ \tilde x = x - \mathbb E_P x,\
      \ddot a = W\,D^2u[v, v]/T,$$

    (`ä = 0` for the identity transform): three passes over `W` (`z`, `Wv`, `Wᵀr`), then one
    solve with `g`. The solve is `solver="cg"` (default): matrix-free preconditioned conjugate
    gradients on `g + λI` (each iteration one `O(N d)` metric–vector product; the
    preconditioner is `AᵀA + μ I` with `A` the rows `√P_i (J_i − J̄)` of the `precond_rank`
    most probable tokens, applied by the Woodbury identity, and `μ` the remaining trace spread
    isotropically); or `solver="cholesky"`: the dense `g` (`O(N d²)` work, `d × d` memory) and
    a Cholesky factorisation, the exact reference.

    Attributes:
        head: `W`, shape `(N, d_u)` (tied embeddings for SmolLM2).
        bias: `b`, shape `(N,)`, or `None`.
        temperature: `T > 0`.
        ridge: `λ ≥ 0`.
        transform: `u(h)`, `(d,) → (d_u,)`; `None` for the identity.
        solver: `"cg"` or `"cholesky"`.
        precond_rank: tokens in the CG preconditioner.
        cg_rtol: relative residual of the CG solve.
        cg_max_steps: CG iteration budget.
        dim: `d`.

    Raises:
        ValueError: a head that is not `(N, d)`, a bias of the wrong shape, `temperature ≤ 0`,
            `ridge < 0`, an unknown `solver`, `precond_rank < 1`.

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> from infograv.geometry import OutputMetric
        >>> W = jnp.asarray(np.random.default_rng(0).normal(size=(50, 4)))
        >>> m = OutputMetric(W, temperature=1.0)
        >>> h = jnp.array([0.1, -0.2, 0.3, 0.0])
        >>> p = jnp.exp(m.log_prob(h))
        >>> cov = (W - p @ W).T @ ((W - p @ W) * p[:, None])
        >>> bool(jnp.allclose(m.metric(h), cov))
        True
    """

    head: Float[Array, "N du"]
    bias: Float[Array, " N"] | None
    temperature: Float[Array, ""]
    ridge: Float[Array, ""]
    transform: Callable[[Point], Any] | None
    solver: str = eqx.field(static=True)
    precond_rank: int = eqx.field(static=True)
    cg_rtol: float = eqx.field(static=True)
    cg_max_steps: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        head: Any,
        bias: Any = None,
        *,
        temperature: Any = 1.0,
        ridge: Any = 0.0,
        transform: Callable[[Point], Any] | None = None,
        dim: int | None = None,
        solver: str = "cg",
        precond_rank: int = 256,
        cg_rtol: float = 1e-10,
        cg_max_steps: int = 2000,
    ):
        head = jnp.asarray(head)
        if head.ndim != 2 or head.shape[0] < 2 or head.shape[1] < 1:
            raise ValueError(f"head: expected shape (N, d) with N ≥ 2, got {head.shape}.")
        if not jnp.issubdtype(head.dtype, jnp.floating):
            head = head.astype(float)
        if bias is not None:
            bias = jnp.asarray(bias).astype(head.dtype)
            if bias.shape != head.shape[:1]:
                raise ValueError(
                    f"bias: expected shape ({head.shape[0]},) to match head, got {bias.shape}."
                )
        _concrete_positive(temperature, "temperature")
        if not isinstance(ridge, jax.core.Tracer):
            r = np.asarray(ridge, dtype=float)
            if r.shape != () or not np.isfinite(r) or r < 0:
                raise ValueError(f"ridge: expected a finite number ≥ 0, got {ridge!r}.")
        if solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {', '.join(SOLVERS)}, got {solver!r}.")
        if not isinstance(precond_rank, int) or precond_rank < 1:
            raise ValueError(f"precond_rank: expected an int ≥ 1, got {precond_rank!r}.")
        if dim is None:
            if transform is not None:
                raise ValueError("dim: give the hidden-state dimension when a transform is set.")
            dim = int(head.shape[1])
        self.head = head
        self.bias = bias
        self.temperature = jnp.asarray(temperature, dtype=head.dtype)
        self.ridge = jnp.asarray(ridge, dtype=head.dtype)
        self.transform = transform
        self.solver = solver
        self.precond_rank = int(min(precond_rank, head.shape[0]))
        self.cg_rtol = float(cg_rtol)
        self.cg_max_steps = int(cg_max_steps)
        self.dim = int(dim)

    # -- construction from a model ------------------------------------------------------------
    @classmethod
    def from_language_model(
        cls,
        model: Any,
        temperature: Any = 1.0,
        *,
        state: str = "post_norm",
        ridge: Any = 0.0,
        dtype: Any = jnp.float64,
        **kwargs: Any,
    ) -> OutputMetric:
        """The output metric of a loaded [`LanguageModel`][infograv.lm.LanguageModel].

        Arguments:
            model: the language model. Its head is `model.output_head()` when it has one,
                else the tied `model.embedding` without bias.
            temperature: `T`.
            state: `"post_norm"` (default): `h` is the final hidden state after the final norm
                (what `next_token_logprobs` and `generation_states` return; the head is
                linear); `"pre_norm"`: `h` is the residual stream before the final norm, and
                the norm's Jacobian enters `J`.
            ridge: `λ`.
            dtype: the head's dtype in the metric (float64 by default; needs x64 enabled).
            **kwargs: `solver`, `precond_rank`, `cg_rtol`, `cg_max_steps`.

        Raises:
            ValueError: an unknown `state`.
        """
        if state not in ("post_norm", "pre_norm"):
            raise ValueError(f"state: expected 'post_norm' or 'pre_norm', got {state!r}.")
        if hasattr(model, "output_head"):
            head, bias = model.output_head()
        else:
            head, bias = model.embedding, None
        head = jnp.asarray(head, dtype=dtype)
        bias = None if bias is None else jnp.asarray(bias, dtype=dtype)
        transform = None
        if state == "pre_norm":
            transform = _final_norm_of(model, dtype)
        return cls(head, bias, temperature=temperature, ridge=ridge, transform=transform,
                   dim=int(head.shape[1]), **kwargs)

    def restrict(self, ids: Any) -> OutputMetric:
        """The same metric on a sub-vocabulary: `P` renormalised over the tokens `ids`.

        This is the top-K truncation; its error in `Γ(v, v)` against the full vocabulary is
        measured by [`truncation_error`][infograv.geometry.OutputMetric.truncation_error].

        Raises:
            ValueError: fewer than two ids, or ids outside `[0, N)`.
        """
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if ids.size < 2 or ids[0] < 0 or ids[-1] >= self.head.shape[0]:
            raise ValueError(
                f"ids: need at least two distinct token ids in [0, {self.head.shape[0]})."
            )
        sel = jnp.asarray(ids)
        return self._copy(head=self.head[sel],
                          bias=None if self.bias is None else self.bias[sel])

    def _copy(self, **changes: Any) -> OutputMetric:
        kw: dict[str, Any] = dict(head=self.head, bias=self.bias, temperature=self.temperature,
                  ridge=self.ridge, transform=self.transform, dim=self.dim, solver=self.solver,
                  precond_rank=self.precond_rank, cg_rtol=self.cg_rtol,
                  cg_max_steps=self.cg_max_steps)
        kw.update(changes)
        head, bias = kw.pop("head"), kw.pop("bias")
        return OutputMetric(head, bias, **kw)

    def top_tokens(self, points: Any, k: int) -> Int[Array, " K"]:
        """The union of the `k` most probable tokens at each of `points` `(M, d)`, sorted."""
        pts = jnp.atleast_2d(jnp.asarray(points, self.head.dtype))
        _, idx = jax.lax.top_k(jax.vmap(self.log_prob)(pts), int(k))
        return jnp.asarray(np.unique(np.asarray(idx)))

    def truncation_error(self, ids: Any, h: Any, v: Any) -> Scalar:
        """`|Γ_K(v, v) − Γ(v, v)|_g / |Γ(v, v)|_g` of the restricted metric at `h`, measured
        in the full metric's norm (both solved densely)."""
        full = self._copy(solver="cholesky")
        part = self.restrict(ids)._copy(solver="cholesky")
        h = jnp.asarray(h, self.head.dtype)
        v = jnp.asarray(v, self.head.dtype)
        a, b = full.acceleration(h, v), part.acceleration(h, v)
        return jnp.sqrt(full.inner(h, a - b, a - b) / full.inner(h, a, a))

    # -- the distribution ----------------------------------------------------------------------
    def _u(self, h: Point) -> Any:
        return _identity(h) if self.transform is None else self.transform(h)

    def logits(self, h: Point) -> Float[Array, " N"]:
        """`a(h) = z(h) / T`, shape `(N,)`."""
        z = self.head.astype(h.dtype) @ self._u(h)
        if self.bias is not None:
            z = z + self.bias.astype(h.dtype)
        return z / self.temperature.astype(h.dtype)

    def log_prob(self, h: Point) -> Float[Array, " N"]:
        """`log P(i | h)`, shape `(N,)`."""
        return jax.nn.log_softmax(self.logits(h))

    def _jvp_u(self, h: Point, w: Vector) -> Any:
        if self.transform is None:
            return w
        return jax.jvp(self.transform, (h,), (w,))[1]

    def _vjp_u(self, h: Point, c: Any) -> Vector:
        if self.transform is None:
            return c
        return jax.vjp(self.transform, h)[1](c)[0]

    def _tdt(self, h: Point) -> Scalar:
        return self.temperature.astype(h.dtype)

    def _fisher_vp(self, h: Point, p: Any, w: Vector) -> Vector:
        # Jᵀ H J w / T² without the ridge, O(N d)
        x = (self.head.astype(h.dtype) @ self._jvp_u(h, w)) / self._tdt(h)
        r = p * (x - jnp.dot(p, x))
        return self._vjp_u(h, (r @ self.head.astype(h.dtype)) / self._tdt(h))

    def embedding(self, h: Point) -> Float[Array, " M"]:
        r"""An isometric embedding `F(h) = (2√P(h), √λ h)` in `ℝ^{N + d}`.

        The Fisher metric is the pullback of four times the Euclidean metric on the square
        roots of the probabilities (`Σ_i dP_i²/P_i = 4 Σ_i (d√P_i)²`), so

        $$g(h) = \partial F(h)^\top \partial F(h),$$

        exactly, ridge included. A path's length in `g` is the length of its image, and the
        distance between `h` and `h'` is at least the chord `|F(h) − F(h')|` and at least the
        Fisher–Rao distance `2 arccos Σ_i √(P_i(h) P_i(h'))` of the simplex. A discrete path
        `p_0 … p_K` has the lower bound `Σ_k |F(p_{k+1}) − F(p_k)|` of its length, which a
        quadrature of `g` along the segments (the midpoint rule) does not: where `P`
        changes from one peaked distribution to another within one segment, the metric at the
        segment's midpoint can be tiny (see `docs/geometry/real.md`). `geodesic.path_energy`
        and `log_map(method="energy")` therefore use the chords for this metric
        (`isometric_embedding`).

        Returns:
            `(N + d,)`.

        Example:
            >>> import jax, jax.numpy as jnp, numpy as np
            >>> from infograv.geometry import OutputMetric
            >>> W = jnp.asarray(np.random.default_rng(0).normal(size=(50, 4)))
            >>> m = OutputMetric(W, ridge=0.1)
            >>> h = jnp.array([0.1, -0.2, 0.3, 0.0])
            >>> jac = jax.jacfwd(m.embedding)(h)
            >>> bool(jnp.allclose(jac.T @ jac, m.metric(h), atol=1e-5))
            True
        """
        return jnp.concatenate([sqrt_embedding(self.log_prob(h)),
                                jnp.sqrt(self.ridge.astype(h.dtype)) * h])

    def isometric_embedding(self) -> Callable[[Point], Any]:
        """[`embedding`][infograv.geometry.OutputMetric.embedding] (`g = ∂Fᵀ∂F`, ridge
        included): `geodesic.path_energy` measures this metric's discrete paths by its chords."""
        return self.embedding

    # -- AbstractMetric -------------------------------------------------------------------------
    def metric(self, h: Point) -> MetricMatrix:
        w = self.head.astype(h.dtype)
        if self.transform is None:
            jac = w
        else:
            jac = w @ jax.jacfwd(self.transform)(h)
        p = jnp.exp(self.log_prob(h))
        g = fisher_from_energies(jac, p, self._tdt(h))
        return g + self.ridge.astype(h.dtype) * jnp.eye(self.dim, dtype=h.dtype)

    def metric_vp(self, h: Point, w: Vector) -> Vector:
        p = jnp.exp(self.log_prob(h))
        return self._fisher_vp(h, p, w) + self.ridge.astype(h.dtype) * w

    def first_kind(self, h: Point, v: Vector) -> Vector:
        """`g(h) Γ(v, v)`, the Christoffel symbols of the first kind contracted with `v v`,
        shape `(d,)`, in three passes over the head."""
        w = self.head.astype(h.dtype)
        t = self._tdt(h)
        p = jnp.exp(self.log_prob(h))
        if self.transform is None:
            du, d2u = v, None
        else:
            transform = self.transform

            def du_fn(y: Point) -> Any:
                return jax.jvp(transform, (y,), (v,))[1]

            du, d2u = jax.jvp(du_fn, (h,), (v,))
        x = (w @ du) / t
        xt = x - jnp.dot(p, x)
        r = 0.5 * p * (xt * xt - jnp.dot(p, xt * xt))
        if d2u is not None:
            acc = (w @ d2u) / t
            r = r + p * (acc - jnp.dot(p, acc))
        return self._vjp_u(h, (r @ w) / t)

    def inverse_vp(self, h: Point, w: Vector) -> Vector:
        if self.solver == "cholesky":
            return cho_solve(cholesky(self.metric(h)), w)
        return self._cg_solve(h, w)

    def acceleration(self, h: Point, v: Vector) -> Vector:
        return self.inverse_vp(h, self.first_kind(h, v))

    # -- the matrix-free solve ------------------------------------------------------------------
    def _precond_parts(self, h: Point, p: Any) -> tuple[Any, Any]:
        # A = √P_S (J_S − J̄)/T for the top tokens S and μ = λ + (the trace of the Fisher term
        # not in AᵀA)/d, from stopped values
        h = jax.lax.stop_gradient(h)
        p = jax.lax.stop_gradient(p)
        w = self.head.astype(h.dtype)
        t = self._tdt(h)
        ps, idx = jax.lax.top_k(p, self.precond_rank)
        rows = w[idx]
        if self.transform is not None:
            jac_u = jax.jacfwd(self.transform)(h)
            rows = rows @ jac_u
            mean = (p @ w) @ jac_u
            scale = jnp.sum(jac_u * jac_u) / jac_u.shape[1]
        else:
            mean = p @ w
            scale = jnp.ones((), h.dtype)
        a = jnp.sqrt(ps)[:, None] * (rows - mean[None, :]) / t
        # trace of the full Fisher term: Σ P_i |e_i|² − |ē|² (× the transform's mean gain)
        total = (jnp.dot(p, jnp.sum(w * w, axis=1)) - jnp.dot(p @ w, p @ w)) * scale / t**2
        rest = jnp.maximum(total - jnp.sum(a * a), 0.0) / self.dim
        mu = self.ridge.astype(h.dtype) + rest + jnp.finfo(h.dtype).tiny
        return a, mu

    def approximate_metric(self, h: Point) -> MetricMatrix:
        r"""The CG preconditioner's matrix `M = AᵀA + μ I` at `h`, dense `(d, d)`: `A` the rows
        `√P_i (J_i − J̄)/T` of the `precond_rank` most probable tokens and `μ = λ +` (the trace
        of the Fisher term they leave out)`/d`. `O(k d²)` work for `k = precond_rank`, against
        `O(N d²)` for `metric(h)`; equal to it when
        `k = N` (no token is left out). Built from stopped values (no derivative flows).

        Example:
            >>> import jax.numpy as jnp, numpy as np
            >>> from infograv.geometry import OutputMetric
            >>> W = jnp.asarray(np.random.default_rng(0).normal(size=(50, 4)))
            >>> m = OutputMetric(W, ridge=0.1, precond_rank=50)
            >>> h = jnp.array([0.1, -0.2, 0.3, 0.0])
            >>> bool(jnp.allclose(m.approximate_metric(h), m.metric(h)))
            True
        """
        a, mu = self._precond_parts(h, jnp.exp(self.log_prob(h)))
        return a.T @ a + mu * jnp.eye(self.dim, dtype=h.dtype)

    def _preconditioner(self, h: Point, p: Any) -> Callable[[Vector], Vector]:
        # M = AᵀA + μI applied by Woodbury: M⁻¹ w = (w − Aᵀ (μ I + A Aᵀ)⁻¹ A w) / μ. A
        # preconditioner changes the number of iterations, never the answer.
        a, mu = self._precond_parts(h, p)
        small = mu * jnp.eye(a.shape[0], dtype=h.dtype) + a @ a.T
        factor = cholesky(small)

        def apply(x: Vector) -> Vector:
            y = cho_solve(factor, a @ x)
            return (x - a.T @ y) / mu

        return apply

    def _cg_solve(self, h: Point, rhs: Vector) -> Vector:
        p = jnp.exp(self.log_prob(h))
        lam = self.ridge.astype(h.dtype)
        precond = self._preconditioner(h, p)

        def matvec(w: Vector) -> Vector:
            return self._fisher_vp(h, p, w) + lam * w

        def solve(mv: Callable[[Vector], Vector], b: Vector) -> Vector:
            return _pcg(mv, precond, b, self.cg_rtol, self.cg_max_steps)

        # implicit differentiation of the solve (no derivative through the iterations)
        return jax.lax.custom_linear_solve(matvec, rhs, solve, symmetric=True)


def _pcg(
    matvec: Callable[[Vector], Vector],
    precond: Callable[[Vector], Vector],
    b: Vector,
    rtol: float,
    max_steps: int,
) -> Vector:
    """Preconditioned conjugate gradients for `A x = b`, `A` symmetric positive definite;
    stops at `|A x − b| ≤ rtol |b|` or after `max_steps` iterations."""
    tol2 = (rtol**2) * jnp.dot(b, b)
    z0 = precond(b)
    x0 = jnp.zeros_like(b)
    state0 = (x0, b, z0, jnp.dot(b, z0), jnp.asarray(0))

    def cond(state: Any) -> Any:
        _, r, _, _, k = state
        return (jnp.dot(r, r) > tol2) & (k < max_steps)

    def body(state: Any) -> Any:
        x, r, d, rz, k = state
        ad = matvec(d)
        alpha = rz / jnp.dot(d, ad)
        x = x + alpha * d
        r = r - alpha * ad
        z = precond(r)
        rz_new = jnp.dot(r, z)
        d = z + (rz_new / rz) * d
        return x, r, d, rz_new, k + 1

    return jax.lax.while_loop(cond, body, state0)[0]


def _final_norm_of(model: Any, dtype: Any) -> Callable[[Point], Any]:
    if hasattr(model, "final_norm"):
        fn = model.final_norm

        def transform(h: Point) -> Any:
            return jnp.asarray(fn(h)).astype(h.dtype)

        return transform
    from ..lm._llama import rms_norm

    weight = jnp.asarray(model.weights.final_norm, dtype=dtype)
    eps = float(model.config.norm_eps)

    def rms(h: Point) -> Any:
        return rms_norm(h[None, :], weight.astype(h.dtype), eps)[0]

    return rms


# -- the other geometries -----------------------------------------------------------------------
def euclidean_metric(dim: int) -> ConformalMetric:
    """The flat metric `δ` in `dim` dimensions (the null geometry): straight lines.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import euclidean_metric
        >>> euclidean_metric(3).acceleration(jnp.ones(3), jnp.ones(3)).tolist()
        [0.0, 0.0, 0.0]
    """
    return ConformalMetric(_zero_phi, dim=dim)


def _zero_phi(x: Point) -> Scalar:
    return jnp.zeros((), x.dtype) * x[0]


class _FittedPotential(eqx.Module):
    potential: Any
    sources: Float[Array, "S d"]
    masses: Float[Array, " S"]
    scale: Float[Array, " d"]
    shift: Float[Array, " d"]

    def __call__(self, h: Point) -> Scalar:
        q = self.scale.astype(h.dtype) * h + self.shift.astype(h.dtype)
        src = self.sources.astype(h.dtype)
        r2 = jnp.maximum(jnp.dot(q, q) + jnp.sum(src * src, axis=1) - 2.0 * (src @ q), 0.0)
        return jnp.sum(self.potential.from_sq_distance(r2, self.masses.astype(h.dtype)))


def information_gravity_metric(
    potential: Any,
    tokens: Any,
    points: Any,
    *,
    masses: Any = None,
    scale: Any = 1.0,
    shift: Any = 0.0,
    margin: float = 1.0,
) -> JacobiMetric:
    r"""The Jacobi (optical) metric of a fitted information-gravity potential on `h`-space.

    The query position is the study's map `x_q(h) = a ⊙ h + b`; the potential energy is the
    superposition `U(h) = Σ_i Φ(|x_q(h) − x_i|; m_i)` over the token positions `x_i`; the metric

    $$g(h) = 2\,(E - U(h))\,\delta,\qquad E = \max\big(\max_k U(h_k), 0\big) + \text{margin}
      \cdot\big(\max_k U(h_k) - \min_k U(h_k)\big)$$

    is Maupertuis' metric, whose geodesics are the trajectories `ḧ = −∇U(h)` at energy `E`
    (docs/model/formalism.md §5). `E` is fixed from the points of interest `h_k` so that
    `E − U > 0` on them, and everywhere for an attractive potential (`U < 0`, `U → 0` far
    away): geodesics are then unbound orbits and the metric is positive on every path.
    Each `Γ(v, v)` is one gradient of `U`: `O(N d)`.

    Arguments:
        potential: an [`infograv.model.Potential`][] with the fitted parameters.
        tokens: `(N, d)` token positions `x_i` (e.g. the embedding matrix).
        points: `(M, d)` hidden states that fix `E`.
        masses: `(N,)` token masses (default 1).
        scale: `a` (scalar or `(d,)`).
        shift: `b` (scalar or `(d,)`).
        margin: `> 0`, see `E` (the spread is floored at `10⁻³ max(|max U|, 1)`).

    Raises:
        ValueError: shapes that do not match, `margin ≤ 0`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import Potential
        >>> from infograv.geometry import information_gravity_metric
        >>> toks = jnp.array([[0.0, 0.0], [2.0, 0.0]])
        >>> m = information_gravity_metric(Potential("plummer", 2), toks, jnp.array([[1.0, 1.0]]))
        >>> m.dim
        2
    """
    tokens = jnp.asarray(tokens)
    if not jnp.issubdtype(tokens.dtype, jnp.floating):
        tokens = tokens.astype(float)
    if tokens.ndim != 2:
        raise ValueError(f"tokens: expected shape (N, d), got {tokens.shape}.")
    n, d = tokens.shape
    pts = jnp.atleast_2d(jnp.asarray(points, tokens.dtype))
    if pts.shape[1] != d:
        raise ValueError(f"points: expected shape (M, {d}), got {pts.shape}.")
    m = jnp.ones((n,), tokens.dtype) if masses is None else jnp.asarray(masses, tokens.dtype)
    if m.shape != (n,):
        raise ValueError(f"masses: expected shape ({n},), got {m.shape}.")
    if not margin > 0:
        raise ValueError(f"margin: expected > 0, got {margin!r}.")
    a = jnp.broadcast_to(jnp.asarray(scale, tokens.dtype), (d,))
    b = jnp.broadcast_to(jnp.asarray(shift, tokens.dtype), (d,))
    u = _FittedPotential(potential, tokens, m, a, b)
    vals = jax.vmap(u)(pts)
    top, low = jnp.max(vals), jnp.min(vals)
    spread = jnp.maximum(top - low, jnp.maximum(jnp.abs(top), 1.0) * 1e-3)
    energy = jnp.maximum(top, 0.0) + margin * spread
    return JacobiMetric(u, energy, dim=d)


class _LogDensityPhi(eqx.Module):
    space: Any
    log_rho0: Float[Array, ""]

    def __call__(self, x: Point) -> Scalar:
        return -(self.space.log_density(x) - self.log_rho0.astype(x.dtype)) / self.space.dim


def density_metric(space: Any, reference: Any) -> ConformalMetric:
    r"""The density-conformal metric of a token cloud: "voids are far".

    $$g(x) = \big(\rho_0/\rho(x)\big)^{2/d}\,\delta,\qquad
      \varphi(x) = -\tfrac1d\big(\log\rho(x) - \log\rho_0\big),$$

    with `ρ` the kernel density estimate of the cloud
    ([`SemanticSpace.log_density`][infograv.model.SemanticSpace.log_density]) and
    `ρ₀ = ρ(reference)`. A length element is `ρ^{−1/d}|dx|`: distance measured in units of
    the local spacing between tokens, so crossing a void (low `ρ`) is long. A
    [`ConformalMetric`][infograv.geometry.ConformalMetric]; `Γ(v, v)` is one gradient of the
    KDE, `O(N d)`.

    Arguments:
        space: an [`infograv.model.SemanticSpace`][] (its embedding, masses and bandwidths).
        reference: `(d,)` the point where `g = δ`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.model import SemanticSpace
        >>> from infograv.geometry import density_metric
        >>> space = SemanticSpace(jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        >>> m = density_metric(space, jnp.zeros(2))
        >>> bool(m.metric(jnp.array([5.0, 5.0]))[0, 0] > 1.0)
        True
    """
    ref = jnp.asarray(reference, space.embedding.dtype)
    if ref.shape != (space.dim,):
        raise ValueError(f"reference: expected shape ({space.dim},), got {ref.shape}.")
    return ConformalMetric(_LogDensityPhi(space, space.log_density(ref)), dim=space.dim)

