r"""Predefined metrics, each with its source.

All symbols are created *without* assumptions (`sp.Symbol("M")`, not
`sp.Symbol("M", positive=True)`), so a symbol made elsewhere with the same name is the same
symbol. Coordinates in $d$ flat dimensions are `x1 … xd` (printed $x_1 \dots x_d$); angles
are `theta1 …` and `phi`; time is `t` (or `tau` for the semantic spacetime of formalism §5).

The registry [`PREDEFINED`][infograv.symbolic.PREDEFINED] maps the command-line names to the
constructors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from ._metric import Metric

__all__ = [
    "euclidean",
    "sphere",
    "hyperbolic",
    "schwarzschild",
    "kerr",
    "tangherlini",
    "weak_field",
    "conformally_flat",
    "jacobi",
    "PREDEFINED",
    "predefined",
]


#: The largest dimension a predefined metric accepts: its curvature tensors have n^4
#: components (65,536 at n = 16), each a symbolic expression.
MAX_DIM = 16


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer ≥ {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name}: must be ≥ {minimum}, got {value}.")
    if value > MAX_DIM:
        raise ValueError(f"{name}: must be ≤ {MAX_DIM} (the curvature tensors have n^4 "
                         f"symbolic components), got {value}.")
    return value


def _flat_coords(d: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"x{i}") for i in range(1, d + 1))


def _angles(k: int) -> tuple[sp.Symbol, ...]:
    """`k` angles of $S^k$: `theta` (k = 2) or `theta1 … theta{k-1}`, then `phi`."""
    if k == 1:
        return (sp.Symbol("phi"),)
    if k == 2:
        return (sp.Symbol("theta"), sp.Symbol("phi"))
    return tuple(sp.Symbol(f"theta{i}") for i in range(1, k)) + (sp.Symbol("phi"),)


def _round_sphere_diag(angles: tuple[sp.Symbol, ...]) -> list[sp.Expr]:
    r"""Diagonal of the unit round metric $d\Omega^2_k$ in hyperspherical angles:
    $d\theta_1^2 + \sin^2\theta_1 d\theta_2^2 + \dots + \prod_{i<k}\sin^2\theta_i\,d\phi^2$."""
    out: list[sp.Expr] = []
    factor: sp.Expr = sp.S.One
    for ang in angles:
        out.append(factor)
        factor = factor * sp.sin(ang) ** 2
    return out


def euclidean(n: int = 3) -> Metric:
    r"""Flat Euclidean space $\mathbb{R}^n$ in Cartesian coordinates `x1 … xn`.

    $$ds^2 = \delta_{ij}\,dx^i dx^j$$

    Arguments:
        n: dimension ($\ge 1$).

    Raises:
        TypeError, ValueError: `n` is not an integer ≥ 1.

    Example:
        >>> euclidean(2).components
        Matrix([
        [1, 0],
        [0, 1]])

    References:
        J. M. Lee, *Introduction to Riemannian Manifolds*, 2nd ed. (Springer, 2018), Ch. 2
        (the Euclidean metric).
    """
    n = _check_int(n, "n", 1)
    return Metric(sp.eye(n), _flat_coords(n))


def sphere(n: int = 2, a: Any = None) -> Metric:
    r"""The round sphere $S^n$ of radius $a$ in hyperspherical coordinates.

    $$ds^2 = a^2\left(d\theta_1^2 + \sin^2\theta_1\,d\theta_2^2 + \dots
    + \sin^2\theta_1\cdots\sin^2\theta_{n-1}\,d\phi^2\right)$$

    Coordinates: `theta, phi` for $n = 2$; `theta1 … theta{n-1}, phi` for $n \ge 3$; `phi`
    for $n = 1$. Scalar curvature $R = n(n-1)/a^2$ (sectional curvature $1/a^2$).

    Arguments:
        n: dimension of the sphere ($\ge 1$).
        a: radius; a SymPy expression or number (default the symbol `a`).

    Example:
        >>> import sympy as sp
        >>> sp.simplify(sphere(2).ricci_scalar())
        2/a**2

    References:
        L. E. Blumenson, "A derivation of n-dimensional spherical coordinates",
        *Amer. Math. Monthly* 67, 63–66 (1960); Lee (2018), Ch. 3 (spheres as model spaces,
        constant sectional curvature $1/a^2$).
    """
    n = _check_int(n, "n", 1)
    a = sp.Symbol("a") if a is None else sp.sympify(a)
    ang = _angles(n)
    return Metric(sp.diag(*[a**2 * e for e in _round_sphere_diag(ang)]), ang)


def hyperbolic(n: int = 2, model: str = "halfspace") -> Metric:
    r"""Hyperbolic space $H^n$ of sectional curvature $-1$.

    Upper half-space model (`model="halfspace"`, coordinates `x1 … x{n-1}, y`, $y > 0$):
    $$ds^2 = \frac{dx_1^2 + \dots + dx_{n-1}^2 + dy^2}{y^2}$$
    Poincaré ball (`model="ball"`, coordinates `x1 … xn`, $|x| < 1$):
    $$ds^2 = \frac{4\,\delta_{ij}dx^i dx^j}{(1 - |x|^2)^2}$$
    Scalar curvature $R = -n(n-1)$.

    Arguments:
        n: dimension ($\ge 2$).
        model: `"halfspace"` or `"ball"`.

    Raises:
        ValueError: unknown `model` or `n < 2`.

    References:
        Lee (2018), Ch. 3, "Hyperbolic spaces" (the half-space and ball models and their
        isometry); J. W. Cannon et al., "Hyperbolic geometry", in *Flavors of Geometry*,
        MSRI Publ. 31 (1997), §§7–8.
    """
    n = _check_int(n, "n", 2)
    if model == "halfspace":
        coords = tuple(sp.Symbol(f"x{i}") for i in range(1, n)) + (sp.Symbol("y"),)
        return Metric(sp.eye(n) / coords[-1] ** 2, coords)
    if model == "ball":
        coords = _flat_coords(n)
        rho2 = sp.Add(*[c**2 for c in coords])
        return Metric(4 * sp.eye(n) / (1 - rho2) ** 2, coords)
    raise ValueError(f"model: unknown {model!r}; use 'halfspace' or 'ball'.")


def schwarzschild(M: Any = None) -> Metric:
    r"""The Schwarzschild metric (units $G = c = 1$, signature $-+++$).

    $$ds^2 = -\left(1-\frac{2M}{r}\right)dt^2 + \left(1-\frac{2M}{r}\right)^{-1}dr^2
    + r^2(d\theta^2 + \sin^2\theta\,d\phi^2)$$

    Coordinates `t, r, theta, phi`; parameter `M` (default the symbol `M`). Ricci-flat, with
    Kretschmann scalar $K = 48M^2/r^6$.

    References:
        R. M. Wald, *General Relativity* (1984), eq. (6.1.44); K. Schwarzschild,
        *Sitzungsber. Preuss. Akad. Wiss.* 189 (1916).
    """
    t, r, th, ph = sp.symbols("t r theta phi")
    M = sp.Symbol("M") if M is None else sp.sympify(M)
    f = 1 - 2 * M / r
    return Metric(sp.diag(-f, 1 / f, r**2, r**2 * sp.sin(th) ** 2), [t, r, th, ph])


def kerr(M: Any = None, a: Any = None) -> Metric:
    r"""The Kerr metric in Boyer–Lindquist coordinates ($G = c = 1$, signature $-+++$).

    $$ds^2 = -\left(1 - \frac{2Mr}{\Sigma}\right)dt^2 - \frac{4Mar\sin^2\theta}{\Sigma}dt\,d\phi
    + \frac{\Sigma}{\Delta}dr^2 + \Sigma\,d\theta^2
    + \left(r^2 + a^2 + \frac{2Ma^2r\sin^2\theta}{\Sigma}\right)\sin^2\theta\,d\phi^2$$

    with $\Sigma = r^2 + a^2\cos^2\theta$, $\Delta = r^2 - 2Mr + a^2$. Coordinates
    `t, r, theta, phi`; parameters `M`, `a` (angular momentum per unit mass). Ricci-flat.

    References:
        Wald (1984), eq. (12.3.1); R. H. Boyer and R. W. Lindquist, *J. Math. Phys.* 8, 265
        (1967); R. P. Kerr, *Phys. Rev. Lett.* 11, 237 (1963).
    """
    t, r, th, ph = sp.symbols("t r theta phi")
    M = sp.Symbol("M") if M is None else sp.sympify(M)
    a = sp.Symbol("a") if a is None else sp.sympify(a)
    sig = r**2 + a**2 * sp.cos(th) ** 2
    delta = r**2 - 2 * M * r + a**2
    s2 = sp.sin(th) ** 2
    g = sp.zeros(4, 4)
    g[0, 0] = -(1 - 2 * M * r / sig)
    g[0, 3] = g[3, 0] = -2 * M * a * r * s2 / sig
    g[1, 1] = sig / delta
    g[2, 2] = sig
    g[3, 3] = (r**2 + a**2 + 2 * M * a**2 * r * s2 / sig) * s2
    return Metric(g, [t, r, th, ph])


def tangherlini(D: int = 5, r_s: Any = None) -> Metric:
    r"""The Schwarzschild–Tangherlini metric in $D \ge 4$ spacetime dimensions ($c = 1$).

    $$ds^2 = -f\,dt^2 + f^{-1}dr^2 + r^2 d\Omega^2_{D-2},\qquad
    f = 1 - \left(\frac{r_s}{r}\right)^{D-3}$$

    Coordinates `t, r` and the $D - 2$ angles of $S^{D-2}$ (`theta, phi` for $D = 4$,
    `theta1 … theta{D-3}, phi` above); parameter `r_s` (the horizon radius). Ricci-flat for
    every $D$; $D = 4$ is Schwarzschild with $r_s = 2M$. formalism §5 uses it with
    $D = d + 1$ as the field of an isolated query.

    Raises:
        TypeError, ValueError: `D` is not an integer ≥ 4.

    References:
        F. R. Tangherlini, "Schwarzschild field in n dimensions and the dimensionality of space
        problem", *Nuovo Cimento* 27, 636 (1963); R. Emparan and H. S. Reall, "Black holes in
        higher dimensions", *Living Rev. Relativ.* 11, 6 (2008), §3.1.
    """
    D = _check_int(D, "D", 4)
    t, r = sp.symbols("t r")
    rs = sp.Symbol("r_s") if r_s is None else sp.sympify(r_s)
    f = 1 - (rs / r) ** (D - 3)
    ang = _angles(D - 2)
    diag = [-f, 1 / f] + [r**2 * e for e in _round_sphere_diag(ang)]
    return Metric(sp.diag(*diag), (t, r) + ang)


def _field(value: Any, name: str, coords: tuple[sp.Symbol, ...]) -> sp.Expr:
    if value is None:
        return sp.Function(name)(*coords)
    return sp.sympify(value)


def weak_field(d: int = 3, phi: Any = None, c: Any = None) -> Metric:
    r"""The weak-field semantic spacetime of formalism §5, coordinates `tau, x1 … xd`.

    $$ds^2 = -\left(1 + \frac{2\Phi}{c^2}\right)c^2 d\tau^2
    + \left(1 - \frac{2\Phi}{c^2}\right)\delta_{ij}dx^i dx^j,\qquad |\Phi| \ll c^2$$

    Arguments:
        d: number of spatial (semantic) dimensions ($\ge 1$).
        phi: the potential $\Phi(x)$ as a SymPy expression in `x1 … xd`; default the undefined
            function `Phi(x1, …, xd)` (substitute a concrete one with
            [`Metric.subs`][infograv.symbolic.Metric.subs] before compiling).
        c: the characteristic semantic speed (default the symbol `c`).

    References:
        Vyshnyvetska, arXiv:2504.20951 (2025) and formalism §5; the metric is the standard
        Newtonian limit, S. M. Carroll, *Spacetime and Geometry* (2004), §7.2 (with the
        spatial part of the linearised metric in isotropic gauge).
    """
    d = _check_int(d, "d", 1)
    tau = sp.Symbol("tau")
    xs = _flat_coords(d)
    Phi = _field(phi, "Phi", xs)
    c = sp.Symbol("c") if c is None else sp.sympify(c)
    diag = [-(1 + 2 * Phi / c**2) * c**2] + [1 - 2 * Phi / c**2] * d
    return Metric(sp.diag(*diag), (tau,) + xs)


def conformally_flat(d: int = 3, phi: Any = None) -> Metric:
    r"""A conformally flat Riemannian metric $g = e^{2\varphi(x)}\delta$ on $\mathbb{R}^d$.

    $$ds^2 = e^{2\varphi(x)}\,\delta_{ij}dx^i dx^j$$

    Coordinates `x1 … xd`. Its scalar curvature is
    $R = -e^{-2\varphi}\left(2(d-1)\Delta\varphi + (d-2)(d-1)|\nabla\varphi|^2\right)$.

    Arguments:
        d: dimension ($\ge 1$).
        phi: $\varphi(x)$ as a SymPy expression in `x1 … xd`; default the undefined function
            `phi(x1, …, xd)`.

    References:
        Wald (1984), Appendix D, eq. (D.9) (scalar curvature under a conformal rescaling);
        formalism §5.
    """
    d = _check_int(d, "d", 1)
    xs = _flat_coords(d)
    p = _field(phi, "phi", xs)
    return Metric(sp.exp(2 * p) * sp.eye(d), xs)


def jacobi(d: int = 2, U: Any = None, E: Any = None) -> Metric:
    r"""The Jacobi metric $g = 2(E - U(x))\,\delta$ of motion at energy $E$ in potential $U$.

    $$ds^2 = 2\left(E - U(x)\right)\delta_{ij}dx^i dx^j \qquad (U < E)$$

    Its geodesics, reparametrised, are the trajectories of $\ddot x = -\nabla U$ with energy
    $E$ (Maupertuis' principle). Coordinates `x1 … xd`.

    Arguments:
        d: dimension ($\ge 1$).
        U: the potential as a SymPy expression in `x1 … xd`; default the undefined function
            `U(x1, …, xd)`.
        E: the energy (default the symbol `E`).

    References:
        V. I. Arnold, *Mathematical Methods of Classical Mechanics*, 2nd ed. (1989), §45
        (Maupertuis' principle, the Jacobi metric); formalism §5.
    """
    d = _check_int(d, "d", 1)
    xs = _flat_coords(d)
    u = _field(U, "U", xs)
    E = sp.Symbol("E") if E is None else sp.sympify(E)
    return Metric(2 * (E - u) * sp.eye(d), xs)


PREDEFINED: dict[str, Callable[..., Metric]] = {
    "euclidean": euclidean,
    "sphere": sphere,
    "hyperbolic": hyperbolic,
    "schwarzschild": schwarzschild,
    "kerr": kerr,
    "tangherlini": tangherlini,
    "weak-field": weak_field,
    "conformal": conformally_flat,
    "jacobi": jacobi,
}
"""Command-line names of the predefined metrics → constructors.

| name | constructor | keyword parameters (defaults) |
|------|-------------|-------------------------------|
| `euclidean` | [`euclidean`][infograv.symbolic.euclidean] | `n=3` |
| `sphere` | [`sphere`][infograv.symbolic.sphere] | `n=2`, `a` (symbol `a`) |
| `hyperbolic` | [`hyperbolic`][infograv.symbolic.hyperbolic] | `n=2`, `model` (`"halfspace"`) |
| `schwarzschild` | [`schwarzschild`][infograv.symbolic.schwarzschild] | `M` (symbol `M`) |
| `kerr` | [`kerr`][infograv.symbolic.kerr] | `M`, `a` (symbols) |
| `tangherlini` | [`tangherlini`][infograv.symbolic.tangherlini] | `D=5`, `r_s` (symbol `r_s`) |
| `weak-field` | [`weak_field`][infograv.symbolic.weak_field] | `d=3`, `phi` (`Phi(x)`), `c` |
| `conformal` | [`conformally_flat`][infograv.symbolic.conformally_flat] | `d=3`, `phi` (`phi(x)`) |
| `jacobi` | [`jacobi`][infograv.symbolic.jacobi] | `d=2`, `U` (`U(x)`), `E` (symbol `E`) |

Parameters given as strings are read by `sympy.sympify` only in the caller (the command line
uses its own restricted parser); the constructors accept SymPy expressions and numbers.
"""


def predefined(name: str, **params: Any) -> Metric:
    """Build the predefined metric called `name` (see
    [`PREDEFINED`][infograv.symbolic.PREDEFINED]) with keyword `params`.

    Raises:
        ValueError: unknown `name`, with the list of valid names.
        TypeError: a keyword the constructor does not take.

    Example:
        >>> predefined("sphere", n=3).dim
        3
    """
    try:
        ctor = PREDEFINED[name]
    except KeyError:
        raise ValueError(
            f"name: unknown metric {name!r}; valid names are {', '.join(sorted(PREDEFINED))}."
        ) from None
    return ctor(**params)
