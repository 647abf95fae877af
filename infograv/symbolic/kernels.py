r"""Potential kernels of the information-gravity model as SymPy expressions.

Each kernel is the radial potential $\Phi(r)$ of one source of information mass $M$ in the flat
semantic space $\mathbb{R}^d$, together with the field operator it solves, the source density it
implies, and its Gauss flux. Definitions and conventions: formalism §3, after
M. Vyshnyvetska, *Information Gravity: A Field-Theoretic Model for Token Selection in Large
Language Models*, arXiv:2504.20951 (2025).

- `newton`: $-GM/((d-2) r^{d-2})$ ($d \ne 2$), $GM \ln r$ ($d=2$); operator $\Delta_d$.
- `plummer`: Newton with $r \to \sqrt{r^2+\varepsilon^2}$; operator $\Delta_d$.
- `yukawa`: $-\omega_{d-1} G M (2\pi)^{-d/2} (\mu/r)^{d/2-1} K_{d/2-1}(\mu r)$;
  operator $\Delta_d - \mu^2$.
- `gaussian`: $-GM e^{-r^2/2\sigma^2}$; operator $\Delta_d$.
- `harmonic`: $\tfrac12 k r^2$; operator $\Delta_d$.

Here $\Delta_d f = f'' + \frac{d-1}{r} f'$ is the radial Laplacian in $d$ dimensions and
$\omega_{d-1} = 2\pi^{d/2}/\Gamma(d/2)$ is the area of the unit sphere $S^{d-1}$. The field
equation is $\mathcal{L}\Phi = \omega_{d-1} G \rho$, so the implied source density of a kernel is
$\rho = \mathcal{L}\Phi / (\omega_{d-1} G)$, derived here symbolically, never assumed.

Example:
    >>> from infograv.symbolic.kernels import kernel
    >>> k = kernel("newton", 3)
    >>> k.potential
    -G*M/r
    >>> k.density()
    0
    >>> k.flux()
    4*pi*G*M
"""

from __future__ import annotations

import dataclasses

import sympy as sp

__all__ = [
    "KERNEL_NAMES",
    "Kernel",
    "kernel",
    "sphere_area",
    "radial_laplacian",
    "green_function",
    "besselk_half_integer",
    "r",
    "G",
    "M",
    "epsilon",
    "mu",
    "sigma",
    "k",
]

#: The radial coordinate (positive).
r = sp.Symbol("r", positive=True)
#: Coupling constant of the Poisson equation $\Delta\Phi = \omega_{d-1} G\rho$.
G = sp.Symbol("G", positive=True)
#: Information mass of the source.
M = sp.Symbol("M", positive=True)
#: Plummer softening length.
epsilon = sp.Symbol("epsilon", positive=True)
#: Yukawa screening mass (inverse screening length).
mu = sp.Symbol("mu", positive=True)
#: Width of the Gaussian well.
sigma = sp.Symbol("sigma", positive=True)
#: Spring constant of the harmonic kernel.
k = sp.Symbol("k", positive=True)

#: The kernel names, in the order of formalism §3.
KERNEL_NAMES: tuple[str, ...] = ("newton", "plummer", "yukawa", "gaussian", "harmonic")


def sphere_area(d: int) -> sp.Expr:
    r"""Area of the unit sphere $S^{d-1}$: $\omega_{d-1} = 2\pi^{d/2}/\Gamma(d/2)$.

    Arguments:
        d: the dimension of the ambient space, an integer $\ge 1$.

    Returns:
        A SymPy number (`2` for $d=1$, `2*pi` for $d=2$, `4*pi` for $d=3$).

    Raises:
        ValueError: `d` is not an integer $\ge 1$.

    Example:
        >>> sphere_area(3)
        4*pi

    Reference: DLMF 5.19 (volumes of $n$-balls); formalism §3.
    """
    d = _check_d(d)
    # Gamma at integers and half-integers evaluates exactly (k! or a rational times sqrt(pi)),
    # so the quotient is already in closed form: no simplification pass is needed.
    return 2 * sp.pi ** sp.Rational(d, 2) / sp.gamma(sp.Rational(d, 2))


def radial_laplacian(f: sp.Expr, d: int, var: sp.Symbol = r) -> sp.Expr:
    r"""The Laplacian in $\mathbb{R}^d$ of a radial function: $f'' + \frac{d-1}{r} f'$.

    Arguments:
        f: a SymPy expression in `var`.
        d: the dimension.
        var: the radial symbol (default [`r`][infograv.symbolic.kernels.r]).

    Example:
        >>> radial_laplacian(r**2, 3)
        6
    """
    d = _check_d(d)
    return sp.diff(f, var, 2) + (d - 1) / var * sp.diff(f, var)


def _check_d(d: object) -> int:
    if isinstance(d, bool) or not isinstance(d, int | sp.Integer):
        raise TypeError(f"d: the dimension must be an integer >= 1, got {d!r}.")
    if int(d) < 1:
        raise ValueError(f"d: the dimension must be an integer >= 1, got {d}.")
    return int(d)


def besselk_half_integer(order: sp.Expr, x: sp.Expr) -> sp.Expr | None:
    r"""$K_\nu(x)$ for a half-integer order $\nu = \pm(n+\tfrac12)$ as a finite sum, else `None`.

    $K_{n+1/2}(x) = \sqrt{\pi/(2x)}\,e^{-x}\sum_{k=0}^{n}\frac{(n+k)!}{k!\,(n-k)!\,(2x)^k}$ and
    $K_{-\nu} = K_\nu$ (DLMF 10.27.3, 10.49.12). Built term by term, so its cost grows linearly
    with $n$ (no `expand_func` or `simplify` pass, which grow much faster with the order).

    Arguments:
        order: the order $\nu$ (a SymPy number).
        x: the argument.

    Returns:
        The elementary expression, or `None` when `order` is not a half-integer.

    Example:
        >>> x = sp.Symbol("x", positive=True)
        >>> besselk_half_integer(sp.Rational(1, 2), x)
        sqrt(2)*sqrt(pi)*exp(-x)/(2*sqrt(x))
    """
    order = sp.sympify(order)
    twice = 2 * order
    if not (order.is_Rational and twice.is_Integer and twice.is_odd):
        return None
    n = int(abs(order) - sp.Rational(1, 2))
    total = sp.Add(*[
        sp.Integer(sp.factorial(n + j) / (sp.factorial(j) * sp.factorial(n - j)))
        / (2 * x) ** j for j in range(n + 1)
    ])
    return sp.sqrt(sp.pi / (2 * x)) * sp.exp(-x) * total


def green_function(d: int, lam: sp.Expr, var: sp.Expr = r) -> sp.Expr:
    r"""The radial Green's function $g$ of $\Delta_d - \lambda$: $(\Delta_d-\lambda)g = \delta$.

    The decaying (or, for $\lambda = 0$ and $d \le 2$, the standard) solution, normalised so that
    the flux $\omega_{d-1} r^{d-1} g'(r) \to 1$ as $r \to 0$:

    - $\lambda = 0$ (Laplacian): $g = -r^{2-d}/((d-2)\,\omega_{d-1})$ for $d \ne 2$,
      $g = \ln r/(2\pi)$ for $d = 2$ ($g = r/2$ for $d = 1$);
    - $\lambda = \mu^2 > 0$ (screened): $g = -(2\pi)^{-d/2}(\mu/r)^{d/2-1}K_{d/2-1}(\mu r)$,
      written with elementary functions for odd $d$
      ([`besselk_half_integer`][infograv.symbolic.kernels.besselk_half_integer]).

    Every expression is a closed form in $d$, so the cost does not grow with a simplification
    pass; `theory/green_functions.py` derives these forms (`dsolve`) and checks them by
    substitution and flux for a range of $d$.

    Arguments:
        d: the dimension, an integer $\ge 1$.
        lam: $\lambda$, zero or a positive SymPy expression (e.g. `mu**2`).
        var: the radius (a symbol or an expression such as $\sqrt{r^2+\varepsilon^2}$).

    Raises:
        ValueError: `d` < 1, or `lam` is known to be negative (an oscillating Helmholtz
            Green's function, not supported).

    Example:
        >>> green_function(3, sp.Integer(0))
        -1/(4*pi*r)
        >>> green_function(3, mu**2)
        -exp(-mu*r)/(4*pi*r)

    Reference: DLMF 10.25, 10.27.3, 10.49.12; Gel'fand and Shilov, *Generalized Functions* I.
    """
    d = _check_d(d)
    lam = sp.sympify(lam)
    if lam.is_zero:
        if d == 2:
            return sp.log(var) / (2 * sp.pi)
        return -(var ** (2 - d)) / ((d - 2) * sphere_area(d))
    if lam.is_negative:
        raise ValueError(
            f"lam: {lam} < 0 gives an oscillating (Helmholtz) Green's function; supported are "
            "lam = 0 (Laplacian) and lam > 0 (screened)."
        )
    m = sp.sqrt(lam)
    nu = sp.Rational(d, 2) - 1
    kv = besselk_half_integer(nu, m * var)
    if kv is None:
        kv = sp.besselk(nu, m * var)
    return -((2 * sp.pi) ** (-sp.Rational(d, 2))) * (m / var) ** nu * kv


def _newton(d: int, radius: sp.Expr) -> sp.Expr:
    return sphere_area(d) * G * M * green_function(d, sp.Integer(0), radius)


def _yukawa(d: int) -> sp.Expr:
    nu = sp.Rational(d, 2) - 1
    return (
        -sphere_area(d) * G * M * (2 * sp.pi) ** (-sp.Rational(d, 2))
        * (mu / r) ** nu * sp.besselk(nu, mu * r)
    )


@dataclasses.dataclass(frozen=True)
class Kernel:
    r"""A radial potential kernel $\Phi(r)$ in $\mathbb{R}^d$ and the field equation it solves.

    Build one with [`kernel`][infograv.symbolic.kernels.kernel]. All expressions are exact SymPy
    expressions in the positive symbols `r`, `G`, `M`, `epsilon`, `mu`, `sigma`, `k`.

    Attributes:
        name: one of [`KERNEL_NAMES`][infograv.symbolic.kernels.KERNEL_NAMES].
        d: the dimension of the semantic space.
        r: the radial symbol (positive).
        potential: $\Phi(r)$ of a source of mass $M$ at the origin.
        params: the parameter symbols the potential depends on (other than `r`), sorted by name.
        screening: $\mu$ for the Yukawa kernel (operator $\Delta_d - \mu^2$), else `0`.

    Reference: formalism §3; Vyshnyvetska, arXiv:2504.20951, §3 (field equation); Yukawa Green's
    function in $d$ dimensions: DLMF 10.25, 10.30 (small-argument form of $K_\nu$).
    """

    name: str
    d: int
    r: sp.Symbol
    potential: sp.Expr
    params: tuple[sp.Symbol, ...]
    screening: sp.Expr = sp.Integer(0)

    def operator(self, f: sp.Expr) -> sp.Expr:
        r"""Apply the kernel's field operator to a radial expression `f(r)`.

        $\mathcal{L} f = f'' + \frac{d-1}{r}f' - \mu^2 f$ (the $\mu^2$ term only for Yukawa).
        """
        return radial_laplacian(f, self.d, self.r) - self.screening**2 * f

    def density(self, *, simplify: bool = True) -> sp.Expr:
        r"""The source density the kernel implies: $\rho = \mathcal{L}\Phi / (\omega_{d-1} G)$.

        Zero away from the source for Newton and Yukawa; Plummer's smoothed density, e.g.
        $\rho = \frac{3M}{4\pi}\frac{\varepsilon^2}{(r^2+\varepsilon^2)^{5/2}}$ in $d=3$.
        """
        rho = self.operator(self.potential) / (sphere_area(self.d) * G)
        if not simplify:
            return rho
        if rho.has(sp.besselk):
            rho = rho.rewrite(sp.besseli)
        return sp.simplify(rho)

    def flux(self, R: sp.Expr | None = None) -> sp.Expr:
        r"""Gauss flux of $\nabla\Phi$ through the sphere of radius $R$.

        $\mathrm{flux}(R) = \omega_{d-1}R^{d-1}\Phi'(R)$.

        Arguments:
            R: the radius (default: the symbol `r` itself).
        """
        R = self.r if R is None else R
        dphi = sp.diff(self.potential, self.r)
        out = sphere_area(self.d) * self.r ** (self.d - 1) * dphi
        out = out.subs(self.r, R)
        return sp.simplify(out) if not out.has(sp.besselk) else out

    def elementary(self) -> sp.Expr:
        r"""The potential with half-integer-order Bessel functions expanded (odd-$d$ Yukawa).

        The same function as [`potential`][infograv.symbolic.kernels.Kernel], written with
        elementary functions where SymPy can (`sympy.expand_func`), which is cheaper to evaluate
        numerically. For other kernels this is `potential` unchanged.
        """
        if self.potential.has(sp.besselk):
            # the closed form of green_function, built term by term: no simplify pass, so the
            # cost stays small at any d (odd d: elementary; even d: K_nu kept)
            return sphere_area(self.d) * G * M * green_function(self.d, self.screening**2)
        return self.potential


def kernel(name: str, d: int) -> Kernel:
    r"""The potential kernel `name` in $d$ dimensions.

    Arguments:
        name: `"newton"`, `"plummer"`, `"yukawa"`, `"gaussian"` or `"harmonic"`.
        d: the dimension of the semantic space, an integer $\ge 1$ (for Newton $d=1$ gives
            $GM r$, $d=2$ the logarithm).

    Returns:
        A [`Kernel`][infograv.symbolic.kernels.Kernel].

    Raises:
        ValueError: unknown `name`, or `d` < 1.
        TypeError: `d` is not an integer.

    Example:
        >>> kernel("plummer", 3).potential
        -G*M/sqrt(epsilon**2 + r**2)
        >>> kernel("yukawa", 3).elementary()
        -G*M*exp(-mu*r)/r
    """
    if not isinstance(name, str) or name not in KERNEL_NAMES:
        raise ValueError(
            f"name: unknown kernel {name!r}; valid names are {', '.join(KERNEL_NAMES)}."
        )
    d = _check_d(d)
    screening: sp.Expr = sp.Integer(0)
    if name == "newton":
        phi = _newton(d, r)
    elif name == "plummer":
        phi = _newton(d, sp.sqrt(r**2 + epsilon**2))
    elif name == "yukawa":
        phi = _yukawa(d)
        screening = mu
    elif name == "gaussian":
        phi = -G * M * sp.exp(-(r**2) / (2 * sigma**2))
    else:
        phi = k * r**2 / 2
    params = tuple(sorted(phi.free_symbols - {r}, key=lambda s: s.name))
    return Kernel(name=name, d=d, r=r, potential=phi, params=params, screening=screening)
