"""Concrete numerical metrics.

Structured metrics (`ConformalMetric`, `JacobiMetric`, `WeakFieldMetric`, `TangherliniMetric`)
apply `g`, `g⁻¹` and the geodesic acceleration `Γ(v, v)` with `O(n)` work, so that they can be
used at the dimension of real embeddings. `CompiledMetric` evaluates the SymPy metric and
Christoffel symbols of an [`infograv.symbolic.Metric`][] compiled with [`infograv.to_jax`][].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float

from .._compile import SymbolicFunction, to_jax
from .._custom_types import Christoffels, MetricMatrix, Point, Scalar, Vector
from ._base import AbstractMetric, _dense_solve, general_acceleration
from ._dense import lstsq
from ._potentials import safe_norm

__all__ = [
    "FunctionMetric",
    "CompiledMetric",
    "ConformalMetric",
    "JacobiMetric",
    "WeakFieldMetric",
    "TangherliniMetric",
    "PullbackMetric",
    "FisherMetric",
]


def _positive_dim(dim: Any, name: str = "dim") -> None:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"{name}: expected a positive int, got {dim!r}.")


def _concrete_positive(value: Any, name: str) -> None:
    """Raise if `value` is a concrete array with an entry ≤ 0 (no check under tracing)."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: must be finite and > 0, got {arr}.")


class FunctionMetric(AbstractMetric):
    r"""A metric given by any JAX function `x ↦ g(x)` (the general, unstructured case).

    `acceleration` uses the matrix-free form
    [`general_acceleration`][infograv.geometry.general_acceleration]: a JVP and a VJP of
    `x ↦ g(x) v` and one dense LU solve in plain XLA (`infograv.geometry._dense`, no LAPACK);
    no `n × n × n` array is formed.

    Attributes:
        fn: `x ↦ g(x)`, shape `(n,) → (n, n)`, symmetric and non-degenerate.
        dim: `n`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import FunctionMetric
        >>> polar = FunctionMetric(lambda x: jnp.diag(jnp.stack([1.0, x[0] ** 2])), dim=2)
        >>> polar.acceleration(jnp.array([2.0, 0.0]), jnp.array([0.0, 1.0])).tolist()  # Γ^r_θθ = −r
        [-2.0, 0.0]
    """

    fn: Callable[[Point], MetricMatrix]
    dim: int = eqx.field(static=True)

    def __init__(self, fn: Callable[[Point], MetricMatrix], dim: int):
        _positive_dim(dim)
        self.fn = fn
        self.dim = int(dim)

    def metric(self, x: Point) -> MetricMatrix:
        return self.fn(x)

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        return self.fn(x) @ w

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        return _dense_solve(self.fn(x), w)

    def acceleration(self, x: Point, v: Vector) -> Vector:
        return general_acceleration(self, x, v)


class CompiledMetric(AbstractMetric):
    r"""A metric compiled from an [`infograv.symbolic.Metric`][]: `g` and `Γ` come from SymPy.

    The components, the Christoffel symbols and the geodesic acceleration
    `Γ^a_{bc} v^b v^c` (a SymPy expression in the coordinates and velocity symbols, so that
    structural zeros and common subexpressions are removed before compiling) of the symbolic
    metric are compiled once with [`infograv.to_jax`][] (parameters as differentiable
    leaves). Meant for the small dimensions where SymPy works (`n ≲ 10`).

    Attributes:
        g: compiled components, `(n, n)`.
        gamma: compiled Christoffel symbols, `(n, n, n)`, `[a, b, c] = Γ^a_{bc}`.
        geodesic_acc: compiled `Γ^a_{bc} v^b v^c`, arguments `(x¹ … xⁿ, v¹ … vⁿ)`.
        dim: `n`.
        coord_names: names of the coordinates, in order.

    Example:
        >>> import sympy as sp, jax.numpy as jnp
        >>> from infograv import symbolic
        >>> from infograv.geometry import CompiledMetric
        >>> th, ph = sp.symbols("theta phi")
        >>> sphere = CompiledMetric.from_symbolic(
        ...     symbolic.Metric(sp.diag(1, sp.sin(th) ** 2), [th, ph]))
        >>> round(float(sphere.ricci_scalar(jnp.array([1.0, 0.2]))), 10)
        2.0
    """

    g: SymbolicFunction
    gamma: SymbolicFunction
    geodesic_acc: SymbolicFunction
    dim: int = eqx.field(static=True)
    coord_names: tuple[str, ...] = eqx.field(static=True)

    @classmethod
    def from_symbolic(
        cls, metric: Any, params: Mapping[sp.Symbol, Any] | None = None
    ) -> CompiledMetric:
        """Compile a symbolic metric.

        Arguments:
            metric: an [`infograv.symbolic.Metric`][] (anything with `components`, `coords`
                and `christoffel()`).
            params: values for the metric's free parameters (e.g. `{M: 1.0}`); they become
                differentiable leaves `g.params[name]`, `gamma.params[name]`.

        Raises:
            TypeError: `metric` is not a symbolic metric.
            ValueError: a free symbol of the metric has no value in `params`.
        """
        if not all(hasattr(metric, a) for a in ("components", "coords", "christoffel")):
            raise TypeError(
                f"metric: expected an infograv.symbolic.Metric, got {type(metric).__name__}."
            )
        coords = list(metric.coords)
        params = dict(params or {})
        g = to_jax(metric.components, coords, params=params)
        gam = metric.christoffel()
        gamma = to_jax(gam, coords, params=params)
        n = len(coords)
        vel = [sp.Dummy(f"_vel{i}") for i in range(n)]
        acc = [sp.Add(*[gam[a, b, c] * vel[b] * vel[c] for b in range(n) for c in range(n)])
               for a in range(n)]
        geo_acc = to_jax(sp.Array(acc), coords + vel, params=params)
        return cls(g=g, gamma=gamma, geodesic_acc=geo_acc, dim=n,
                   coord_names=tuple(c.name for c in coords))

    def _args(self, x: Point) -> list[Any]:
        if x.shape != (self.dim,):
            raise ValueError(f"x: expected shape ({self.dim},), got {x.shape}.")
        return [x[i] for i in range(self.dim)]

    def metric(self, x: Point) -> MetricMatrix:
        return self.g(*self._args(x))

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        return self.metric(x) @ w

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        return _dense_solve(self.metric(x), w)

    def christoffel(self, x: Point) -> Christoffels:
        """The compiled SymPy Christoffel symbols `Γ^a_{bc}(x)`."""
        return self.gamma(*self._args(x))

    def acceleration(self, x: Point, v: Vector) -> Vector:
        return self.geodesic_acc(*self._args(x), *[v[i] for i in range(self.dim)])


def _conformal_acceleration(grad_phi: Vector, v: Vector) -> Vector:
    # Γ^a_{bc} = δ^a_b ∂_cφ + δ^a_c ∂_bφ − δ_bc ∂_aφ  ⇒  Γ(v, v) = 2 v (∇φ·v) − |v|² ∇φ
    return 2.0 * v * jnp.dot(grad_phi, v) - jnp.dot(v, v) * grad_phi


class ConformalMetric(AbstractMetric):
    r"""The conformally flat metric `g = e^{2φ(x)} δ` in `n` dimensions, `O(n)` geodesics.

    $$\Gamma^a_{bc} = \delta^a_b\,\partial_c\varphi + \delta^a_c\,\partial_b\varphi
      - \delta_{bc}\,\partial_a\varphi,\qquad
      \Gamma^a_{bc}v^bv^c = 2v^a(\nabla\varphi\cdot v) - |v|^2\,\partial_a\varphi,$$

    $$R = -e^{-2\varphi}\left[2(n-1)\,\Delta\varphi + (n-2)(n-1)\,|\nabla\varphi|^2\right].$$

    The semantic-space choices of formalism §5 are `φ = −Φ/c²` (the metric `e^{−2Φ/c²} δ`) and
    `φ = ½ log(1 − 2Φ/c²)`. `∇φ` is one reverse-mode gradient of `phi`, so a step costs `O(n)`.

    Attributes:
        phi: the conformal factor's exponent, a function `(n,) → ()` (e.g. a
            [`RadialPotential`][infograv.geometry.RadialPotential] or
            [`ScalarField`][infograv.geometry.ScalarField]; its parameters are differentiable).
        dim: `n`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import ConformalMetric
        >>> # the unit 2-sphere in stereographic coordinates: R = 2
        >>> m = ConformalMetric(lambda x: jnp.log(2.0 / (1.0 + x @ x)), dim=2)
        >>> round(float(m.ricci_scalar_closed_form(jnp.array([0.3, -0.2]))), 5)
        2.0

    References:
        Wald, *General Relativity* (1984), appendix D (conformal transformations).
    """

    phi: Callable[[Point], Scalar]
    dim: int = eqx.field(static=True)

    def __init__(self, phi: Callable[[Point], Scalar], dim: int):
        _positive_dim(dim)
        self.phi = phi
        self.dim = int(dim)

    def metric(self, x: Point) -> MetricMatrix:
        return jnp.exp(2.0 * self.phi(x)) * jnp.eye(self.dim, dtype=x.dtype)

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        return jnp.exp(2.0 * self.phi(x)) * w

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        return jnp.exp(-2.0 * self.phi(x)) * w

    def acceleration(self, x: Point, v: Vector) -> Vector:
        return _conformal_acceleration(jax.grad(self.phi)(x), v)

    def ricci_scalar_closed_form(self, x: Point) -> Scalar:
        """Scalar curvature from the closed form above (a Hessian trace: `O(n²)`)."""
        n = self.dim
        grad = jax.grad(self.phi)(x)
        lap = jnp.trace(jax.hessian(self.phi)(x))
        bracket = 2 * (n - 1) * lap + (n - 2) * (n - 1) * grad @ grad
        return -jnp.exp(-2.0 * self.phi(x)) * bracket


class JacobiMetric(AbstractMetric):
    r"""The Jacobi metric `g = 2(E − U(x)) δ` of a unit-mass particle at energy `E`.

    By Maupertuis' principle its geodesics are the trajectories of `ẍ = −∇U` with energy
    `½|ẋ|² + U = E`, reparametrised: the affine parameter `s` and Newtonian time obey
    `ds = 2(E − U) dt`. It is the conformal metric with `φ = ½ log(2(E − U))`, so
    `∇φ = −∇U / (2(E − U))` and the step costs `O(n)`. Defined where `U < E` only.

    Attributes:
        potential: `U`, a function `(n,) → ()`.
        energy: `E` (a differentiable leaf).
        dim: `n`.

    References:
        Arnold, *Mathematical Methods of Classical Mechanics*, §45D.
    """

    potential: Callable[[Point], Scalar]
    energy: Float[Array, ""]
    dim: int = eqx.field(static=True)

    def __init__(self, potential: Callable[[Point], Scalar], energy: Any, dim: int):
        _positive_dim(dim)
        self.potential = potential
        self.energy = jnp.asarray(energy, dtype=float)
        self.dim = dim

    def _factor(self, x: Point) -> Scalar:
        return 2.0 * (self.energy.astype(x.dtype) - self.potential(x))

    def metric(self, x: Point) -> MetricMatrix:
        return self._factor(x) * jnp.eye(self.dim, dtype=x.dtype)

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        return self._factor(x) * w

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        return w / self._factor(x)

    def acceleration(self, x: Point, v: Vector) -> Vector:
        u, grad_u = jax.value_and_grad(self.potential)(x)
        grad_phi = -grad_u / (2.0 * (self.energy.astype(x.dtype) - u))
        return _conformal_acceleration(grad_phi, v)


class WeakFieldMetric(AbstractMetric):
    r"""The weak-field semantic spacetime of formalism §5, coordinates `(τ, x¹ … x^d)`:

    $$ds^2 = -(1 + 2\Phi/c^2)\,c^2 d\tau^2 + (1 - 2\Phi/c^2)\,\delta_{ij}dx^i dx^j.$$

    With `A = c² + 2Φ`, `B = 1 − 2Φ/c²` and `w` the spatial velocity, the geodesic acceleration
    is, in `O(d)`,

    $$\Gamma^0(v,v) = v^0\,\frac{\nabla A\cdot w}{A},\qquad
      \Gamma^i(v,v) = \frac{(v^0)^2\,\partial_i A + 2w^i(\nabla B\cdot w)
      - |w|^2\partial_i B}{2B}.$$

    For slow motion (`|w| ≪ c`, `|Φ| ≪ c²`, `τ` as parameter) it reduces to `ẍ = −∇Φ`.

    Attributes:
        potential: `Φ`, a function of the spatial point `(d,) → ()`.
        c: the characteristic semantic speed (a differentiable leaf).
        dim: `n = d + 1`.

    References:
        Carroll, *Spacetime and Geometry* (2004), §4.1 and §7.2; Vyshnyvetska,
        arXiv:2504.20951.
    """

    potential: Callable[[Point], Scalar]
    c: Float[Array, ""]
    dim: int = eqx.field(static=True)

    def __init__(self, potential: Callable[[Point], Scalar], d: int, c: Any = 1.0):
        _positive_dim(d, "d")
        _concrete_positive(c, "c")
        self.potential = potential
        self.c = jnp.asarray(c, dtype=float)
        self.dim = d + 1

    def _ab(self, x: Point) -> tuple[Scalar, Scalar, Float[Array, " d"]]:
        c2 = self.c.astype(x.dtype) ** 2
        phi, grad = jax.value_and_grad(self.potential)(x[1:])
        return c2 + 2.0 * phi, 1.0 - 2.0 * phi / c2, grad

    def metric(self, x: Point) -> MetricMatrix:
        a, b, _ = self._ab(x)
        diag = jnp.concatenate([-a[None], jnp.broadcast_to(b, (self.dim - 1,))])
        return jnp.diag(diag)

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        a, b, _ = self._ab(x)
        return jnp.concatenate([-a * w[:1], b * w[1:]])

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        a, b, _ = self._ab(x)
        return jnp.concatenate([-w[:1] / a, w[1:] / b])

    def acceleration(self, x: Point, v: Vector) -> Vector:
        a, b, grad = self._ab(x)
        c2 = self.c.astype(x.dtype) ** 2
        grad_a, grad_b = 2.0 * grad, -2.0 * grad / c2
        v0, w = v[0], v[1:]
        acc0 = v0 * jnp.dot(grad_a, w) / a
        accs = (v0**2 * grad_a + 2.0 * w * jnp.dot(grad_b, w) - jnp.dot(w, w) * grad_b) / (2.0 * b)
        return jnp.concatenate([acc0[None], accs])


class TangherliniMetric(AbstractMetric):
    r"""Schwarzschild–Tangherlini spacetime in `D ≥ 4` dimensions, Cartesian-like coordinates
    `(t, x¹ … x^{D−1})`, `r = |x|`, units `c = 1`:

    $$ds^2 = -f\,dt^2 + dx\cdot dx + (f^{-1} - 1)(\hat n\cdot dx)^2,\qquad
      f = 1 - (r_s/r)^{D-3}.$$

    This is `−f dt² + dr²/f + r² dΩ²_{D−2}` written without angles, so that `g v` and
    `g⁻¹ w = (−w_0/f,\; w − (1 − f)\hat n(\hat n\cdot w))` cost `O(D)`; `Γ(v, v)` is the
    matrix-free form of [`general_acceleration`][infograv.geometry.general_acceleration]
    (autodiff of the `O(D)` metric–vector product), still `O(D)`. The chart is singular at the
    horizon `r = r_s` (use an event to stop there) and at `r = 0`.

    Attributes:
        r_s: the horizon radius (a differentiable leaf); `D = 4` is Schwarzschild with
            `r_s = 2M`.
        dim: `D`.

    References:
        F. R. Tangherlini, Nuovo Cimento 27, 636 (1963); R. C. Myers and M. J. Perry,
        Ann. Phys. 172, 304 (1986).
    """

    r_s: Float[Array, ""]
    dim: int = eqx.field(static=True)

    def __init__(self, D: int, r_s: Any = 1.0):
        if not isinstance(D, (int, np.integer)) or D < 4:
            raise ValueError(f"D: Tangherlini needs an int D ≥ 4, got {D!r}.")
        _concrete_positive(r_s, "r_s")
        self.r_s = jnp.asarray(r_s, dtype=float)
        self.dim = int(D)

    def lapse(self, x: Point) -> Scalar:
        """`f(r) = 1 − (r_s / r)^{D−3}` at the point `x = (t, x⃗)`."""
        r = safe_norm(x[1:])
        return 1.0 - (self.r_s.astype(x.dtype) / r) ** (self.dim - 3)

    def _parts(self, x: Point) -> tuple[Scalar, Float[Array, " m"]]:
        xs = x[1:]
        r = safe_norm(xs)
        n = xs / jnp.where(r > 0, r, 1.0)
        return self.lapse(x), n

    def metric(self, x: Point) -> MetricMatrix:
        f, n = self._parts(x)
        spatial = jnp.eye(self.dim - 1, dtype=x.dtype) + (1.0 / f - 1.0) * jnp.outer(n, n)
        out = jnp.zeros((self.dim, self.dim), x.dtype).at[0, 0].set(-f)
        return out.at[1:, 1:].set(spatial)

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        f, n = self._parts(x)
        ws = w[1:]
        return jnp.concatenate([-f * w[:1], ws + (1.0 / f - 1.0) * n * jnp.dot(n, ws)])

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        f, n = self._parts(x)
        ws = w[1:]
        return jnp.concatenate([-w[:1] / f, ws - (1.0 - f) * n * jnp.dot(n, ws)])

    def acceleration(self, x: Point, v: Vector) -> Vector:
        return general_acceleration(self, x, v)


def _pullback_acceleration(
    fn: Callable[[Point], Float[Array, " m"]], x: Point, v: Vector
) -> Vector:
    # f̈ = J ẍ + D²f[v, v]; the geodesic makes f̈ normal to the image: Jᵀ(J ẍ + D²f[v,v]) = 0,
    # so Γ(v, v) = (JᵀJ)⁻¹ Jᵀ D²f[v, v], a least-squares solve with J.
    def dfv(y: Point) -> Float[Array, " m"]:
        return jax.jvp(fn, (y,), (v,))[1]

    _, h = jax.jvp(dfv, (x,), (v,))
    jac = jax.jacfwd(fn)(x)
    # Householder QR in plain XLA operations: no LAPACK call, safe under vmap (_dense)
    return lstsq(jac, h)


class PullbackMetric(AbstractMetric):
    r"""The pull-back `g = JᵀJ` of the Euclidean metric by a map `f: ℝⁿ → ℝᵐ` (`m ≥ n`).

    $$g_{ab} = \partial_a f\cdot\partial_b f,\qquad
      \Gamma^a_{bc}v^bv^c = \big[(J^\top J)^{-1}J^\top\,D^2f[v,v]\big]^a,$$

    the second form because a geodesic's image has an acceleration normal to the image.
    `g v = Jᵀ(J v)` is a JVP and a VJP; `Γ(v, v)` is a second-order JVP and one least-squares
    (Householder QR, no LAPACK call) solve with the `m × n` Jacobian, never an `n × n × n` array.

    Attributes:
        fn: the map `(n,) → (m,)`.
        dim: `n`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infograv.geometry import PullbackMetric
        >>> def sphere(p):  # the unit sphere in (θ, φ)
        ...     s, c = jnp.sin(p[0]), jnp.cos(p[0])
        ...     return jnp.stack([s * jnp.cos(p[1]), s * jnp.sin(p[1]), c])
        >>> g = PullbackMetric(sphere, dim=2).metric(jnp.array([jnp.pi / 2, 0.0]))
        >>> jnp.allclose(g, jnp.eye(2)).item()
        True
    """

    fn: Callable[[Point], Float[Array, " m"]]
    dim: int = eqx.field(static=True)

    def __init__(self, fn: Callable[[Point], Float[Array, " m"]], dim: int):
        _positive_dim(dim)
        self.fn = fn
        self.dim = int(dim)

    def metric(self, x: Point) -> MetricMatrix:
        jac = jax.jacfwd(self.fn)(x)
        return jac.T @ jac

    def metric_vp(self, x: Point, w: Vector) -> Vector:
        jw = jax.jvp(self.fn, (x,), (w,))[1]
        _, vjp = jax.vjp(self.fn, x)
        return vjp(jw)[0]

    def inverse_vp(self, x: Point, w: Vector) -> Vector:
        return _dense_solve(self.metric(x), w)

    def acceleration(self, x: Point, v: Vector) -> Vector:
        return _pullback_acceleration(self.fn, x, v)

    def isometric_embedding(self) -> Callable[[Point], Float[Array, " m"]]:
        """`f` itself (`g = JᵀJ`)."""
        return self.fn


def sqrt_embedding(log_p: Any) -> Any:
    """`2√P` from `log P` `(N,)`: the Fisher metric of a distribution over `N` outcomes is the
    Euclidean metric of these coordinates (`Σ_i dP_i²/P_i = 4 Σ_i (d√P_i)²`)."""
    return 2.0 * jnp.exp(0.5 * log_p)


def fisher_from_energies(grad_u: Any, p: Any, temperature: Any) -> MetricMatrix:
    r"""`Cov_P(∂_a U, ∂_b U) / T²`: the Fisher metric of `P ∝ e^{−U/T}` from the energy gradients.

    Arguments:
        grad_u: `(N, d)`, `∂U_i/∂x^a` at the point.
        p: `(N,)` selection probabilities at the point.
        temperature: `T`.
    """
    centred = grad_u - (p @ grad_u)[None, :]
    return (centred * p[:, None]).T @ centred / jnp.asarray(temperature, grad_u.dtype) ** 2


class FisherMetric(AbstractMetric):
    r"""The Fisher metric of the selection law over query positions (formalism §6).

    Token energies `U_i(x_q) = m_i\,k(|x_i − x_q|)`, selection `P_i = e^{−U_i/T}/Z`,

    $$g_F(x_q)_{ab} = \sum_i P_i\,\partial_a\log P_i\,\partial_b\log P_i
      = \mathrm{Cov}_P(\partial_a U, \partial_b U)/T^2 .$$

    It is also the pull-back of the Euclidean metric by `x_q ↦ 2\sqrt{P(x_q)} ∈ ℝ^N` (the
    sphere embedding of the probability simplex), which gives `Γ(v, v)` by
    [`PullbackMetric`][infograv.geometry.PullbackMetric]'s formula in `O(N d)` work.

    Attributes:
        kernel: `k(r)`, vectorised over an array of distances (e.g. a compiled SymPy kernel).
        tokens: `(N, d)` token positions `x_i`.
        masses: `(N,)` token masses `m_i`.
        temperature: `T > 0`.
        dim: `d`.

    Raises:
        ValueError: `temperature ≤ 0`, or shapes that do not match.

    References:
        Amari, *Information Geometry and Its Applications* (2016), §2.1.
    """

    kernel: Callable[[Float[Array, " N"]], Float[Array, " N"]]
    tokens: Float[Array, "N d"]
    masses: Float[Array, " N"]
    temperature: Float[Array, ""]
    dim: int = eqx.field(static=True)

    def __init__(self, kernel: Callable[..., Any], tokens: Any, masses: Any, temperature: Any):
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[0] < 1:
            raise ValueError(f"tokens: expected shape (N, d) with N ≥ 1, got {tokens.shape}.")
        masses = jnp.asarray(masses, dtype=tokens.dtype)
        if masses.shape != tokens.shape[:1]:
            raise ValueError(
                f"masses: expected shape ({tokens.shape[0]},) to match tokens, got {masses.shape}."
            )
        _concrete_positive(temperature, "temperature")
        self.kernel = kernel
        self.tokens = tokens
        self.masses = masses
        self.temperature = jnp.asarray(temperature, dtype=tokens.dtype)
        self.dim = int(tokens.shape[1])

    def energies(self, q: Point) -> Float[Array, " N"]:
        """`U_i(q) = m_i k(|x_i − q|)`."""
        return self.masses * self.kernel(safe_norm(self.tokens - q[None, :]))

    def log_prob(self, q: Point) -> Float[Array, " N"]:
        """`log P_i(q)` by log-sum-exp."""
        return jax.nn.log_softmax(-self.energies(q) / self.temperature)

    def _sqrt_embedding(self, q: Point) -> Float[Array, " N"]:
        return sqrt_embedding(self.log_prob(q))

    def metric(self, q: Point) -> MetricMatrix:
        return fisher_from_energies(jax.jacfwd(self.energies)(q), jnp.exp(self.log_prob(q)),
                                    self.temperature)

    def metric_vp(self, q: Point, w: Vector) -> Vector:
        u, du = jax.jvp(self.energies, (q,), (w,))
        del u
        p = jnp.exp(self.log_prob(q))
        coeff = p * (du - jnp.dot(p, du))
        _, vjp = jax.vjp(self.energies, q)
        return vjp(coeff)[0] / self.temperature**2

    def inverse_vp(self, q: Point, w: Vector) -> Vector:
        return _dense_solve(self.metric(q), w)

    def acceleration(self, q: Point, v: Vector) -> Vector:
        return _pullback_acceleration(self._sqrt_embedding, q, v)

    def isometric_embedding(self) -> Callable[[Point], Float[Array, " N"]]:
        """`q ↦ 2√P(q)` (`Σ_i dP_i²/P_i = 4 Σ_i (d√P_i)²`)."""
        return self._sqrt_embedding
