"""Green's functions of radial field operators: derived with dsolve, checked by substitution."""

from __future__ import annotations

import sympy as sp

try:
    from _doc import Doc, main
except ImportError:  # loaded by infograv paper from the installed copy
    from infograv._theory._doc import Doc, main  # type: ignore[no-redef]

from infograv.model import Potential
from infograv.symbolic.kernels import (
    G,
    M,
    green_function,
    kernel,
    mu,
    r,
    radial_laplacian,
    sphere_area,
)

TITLE = "Green's functions of radial field operators"

LAPLACE_DIMS = (1, 2, 3, 4, 5, 6, 7, 8)
SCREENED_DIMS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 31)
C1, C2 = sp.symbols("C1 C2")
R = sp.Symbol("R", positive=True)
lam = sp.Symbol("lambda")
m = sp.Symbol("m", positive=True)


def _zero(expr: sp.Expr) -> bool:
    expr = expr.rewrite(sp.besseli) if expr.has(sp.besselk) else expr
    return sp.simplify(expr) == 0


def _flux(g: sp.Expr, d: int) -> sp.Expr:
    return sphere_area(d) * r ** (d - 1) * sp.diff(g, r)


def _laplace(doc: Doc) -> None:
    doc.heading("The Laplacian: Newton's potential in every dimension")
    doc.text(
        r"The radial Laplacian in $\mathbb{R}^d$ is $\Delta_d g = g'' + \frac{d-1}{r}g'$. Away "
        r"from the source the Green's function solves $\Delta_d g = 0$; `sympy.dsolve` gives the "
        r"two-dimensional solution space below. The point source fixes the constant of the "
        r"singular solution by Gauss's law (the flux $\omega_{d-1}r^{d-1}g'(r)$ equals 1, the "
        r"unit source), and the additive constant is set to zero (decay at infinity for "
        r"$d \ge 3$, the usual convention for $d \le 2$). "
        r"`infograv.symbolic.kernels.green_function(d, 0)` is this closed form, with no "
        r"simplification pass at run time."
    )
    g = sp.Function("g")
    for d in LAPLACE_DIMS:
        sol = sp.dsolve(sp.Eq(g(r).diff(r, 2) + (d - 1) / r * g(r).diff(r), 0), g(r)).rhs
        doc.eq(sp.Symbol(rf"g^{{\rm hom}}_{{{d}}}"), sol)
        sing = sol.coeff(C2) if sol.has(C2) else sol
        const = sp.solve(sp.Eq(_flux(C2 * sing, d), 1), C2)
        doc.check(f"d={d}: Gauss's law fixes the singular solution's constant uniquely",
                  len(const) == 1)
        derived = const[0] * sing
        doc.eq(sp.Symbol(rf"g_{{{d}}}"), derived)
        doc.check(f"d={d}: the derived Green's function equals green_function({d}, 0)",
                  sp.simplify(derived - green_function(d, sp.Integer(0))) == 0)
        doc.check(f"d={d}: substituted back, Delta_d g = 0 for r > 0",
                  sp.simplify(radial_laplacian(derived, d)) == 0)


def _screened(doc: Doc) -> None:
    doc.heading("The screened operator: the Yukawa potential")
    doc.text(
        r"For $\Delta_d - \mu^2$, `dsolve` returns Bessel functions of imaginary argument "
        r"(shown for $d = 1 \dots 4$); the combination that decays at infinity is "
        r"$r^{-\nu}K_\nu(\mu r)$ with $\nu = d/2 - 1$, and Gauss's law at the source normalises "
        r"it: $g = -(2\pi)^{-d/2}(\mu/r)^{\nu}K_\nu(\mu r)$. For odd $d$ the half-integer order "
        r"is a finite sum, $K_{n+1/2}(x) = \sqrt{\pi/2x}\,e^{-x}\sum_{k=0}^{n}"
        r"\frac{(n+k)!}{k!(n-k)!(2x)^k}$, which `green_function` builds term by term; so "
        r"`Potential(\"yukawa\", d)` costs about the same at $d = 31$ as at $d = 3$. Each form is "
        r"checked here by substitution, decay and flux."
    )
    g = sp.Function("g")
    for d in (1, 2, 3, 4):
        sol = sp.dsolve(sp.Eq(g(r).diff(r, 2) + (d - 1) / r * g(r).diff(r) - mu**2 * g(r), 0),
                        g(r)).rhs
        doc.eq(sp.Symbol(rf"g^{{\rm hom}}_{{{d}}}"), sol)
    # d = 1: the whole derivation by dsolve (exponentials), constants from decay and flux
    sol = sp.dsolve(sp.Eq(g(r).diff(r, 2) - mu**2 * g(r), 0), g(r)).rhs
    growing = [c for c in (C1, C2) if sp.limit(sol.coeff(c), r, sp.oo) == sp.oo]
    decaying = sol.subs({c: 0 for c in growing})
    free = (decaying.free_symbols & {C1, C2}).pop()
    const = sp.solve(sp.Eq(sp.limit(_flux(decaying, 1), r, 0, "+"), 1), free)[0]
    derived = decaying.subs(free, const)
    doc.eq(sp.Symbol(r"g_{1}"), derived)
    doc.check("d=1: decay and flux select -exp(-mu r)/(2 mu) from the dsolve solution, which "
              "equals green_function(1, mu^2)",
              sp.simplify(derived - green_function(1, mu**2)) == 0)
    for d in SCREENED_DIMS:
        gd = green_function(d, mu**2)
        if d <= 6:
            doc.eq(sp.Symbol(rf"g_{{{d}}}"), gd)
        resid = radial_laplacian(gd, d) - mu**2 * gd
        doc.check(f"d={d}: substituted back, (Delta_d - mu^2) g = 0 for r > 0", _zero(resid))
        if d <= 8:
            f0 = sp.limit(_flux(gd, d).subs(mu, 1), r, 0, "+")
            doc.check(f"d={d}: the flux tends to 1 (the unit source) as r -> 0", f0 == 1)
        # decay: g(r) -> 0 as r -> oo, checked at mu = 1, r = 60 to 30 digits
        tail = abs(sp.N(gd.subs({mu: 1, r: 60}), 30))
        doc.check(f"d={d}: g decays, |g(60/mu)| < 1e-20", tail < sp.Float("1e-20"))


def _polynomial(doc: Doc) -> None:
    doc.heading("Polynomials in the Laplacian: partial fractions")
    doc.text(
        r"`Potential.from_operator` accepts a field operator $P(\Delta_d)$, a polynomial in the "
        r"radial Laplacian with constant coefficients and simple roots $\lambda_i \ge 0$. Since "
        r"$1/P(\lambda) = \sum_i 1/(P'(\lambda_i)(\lambda - \lambda_i))$, the point-source "
        r"solution of $P(\Delta_d)\Phi = \omega_{d-1}GM\delta$ is "
        r"$\Phi = \omega_{d-1}GM\sum_i g_{\lambda_i}/P'(\lambda_i)$ with the Green's functions "
        r"above. The example is a fourth-order term, $P = \Delta - \Delta^2/m^2$ "
        r"(Bopp–Podolsky), whose roots are $0$ and $m^2$."
    )
    P = lam - lam**2 / m**2
    roots = sp.roots(sp.Poly(P, lam))
    doc.check("Bopp-Podolsky: the roots of P are 0 and m^2, both simple",
              roots == {sp.Integer(0): 1, m**2: 1})
    pf = sum(1 / (sp.diff(P, lam).subs(lam, li) * (lam - li)) for li in roots)
    doc.check("partial fractions: sum_i 1/(P'(l_i)(l - l_i)) = 1/P(l)",
              sp.simplify(pf - 1 / P) == 0)
    for d in (3, 5):
        phi = Potential.from_operator("lap - lap**2/m**2", {"m": 2.0}, name="bopp", d=d).expr
        phi = phi.xreplace({s: {"m": m, "G": G}.get(s.name, s) for s in phi.free_symbols})
        doc.eq(sp.Symbol(rf"\Phi^{{\rm BP}}_{{{d}}}"), phi)
        L1 = radial_laplacian(phi, d)
        resid = L1 - radial_laplacian(L1, d) / m**2
        doc.check(f"d={d}: substituted back, (Delta - Delta^2/m^2) Phi = 0 for r > 0",
                  _zero(resid))
        if d == 3:
            doc.check("d=3: Phi = -G M (1 - exp(-m r))/r, finite at the origin (-G M m)",
                      sp.simplify(phi + G * M * (1 - sp.exp(-m * r)) / r) == 0
                      and sp.limit(phi, r, 0) == -G * M * m)


def _builtins(doc: Doc) -> None:
    doc.heading("The built-in kernels are instances of the same mechanism")
    doc.text(
        r"`Potential(\"newton\", d)` and `Potential(\"yukawa\", d)` are the Green's functions "
        r"of $\Delta_d$ and $\Delta_d - \mu^2$ scaled by $\omega_{d-1}GM$; the Plummer kernel is "
        r"Newton's with $r \to \sqrt{r^2+\varepsilon^2}$. The field-operator path gives the same "
        r"expressions:"
    )
    for d in (1, 2, 3, 4, 5, 6):
        newton = Potential.from_operator("lap", {}, name="poisson", d=d).expr
        doc.check(f"d={d}: from_operator('lap') equals the built-in Newton kernel",
                  sp.simplify(newton.subs({s: G for s in newton.free_symbols if s.name == "G"})
                              - kernel("newton", d).potential) == 0)
        yuk = Potential.from_operator("lap - mu**2", {"mu": 1.0}, name="screened", d=d).expr
        yuk = yuk.xreplace({s: {"mu": mu, "G": G}.get(s.name, s) for s in yuk.free_symbols})
        doc.check(f"d={d}: from_operator('lap - mu**2') equals the built-in Yukawa kernel",
                  _zero(yuk - kernel("yukawa", d).elementary()))


def run(doc: Doc) -> None:
    doc.text(
        "A user potential can be given by its field equation instead of its formula "
        "(`Potential.from_operator`, or `operator = \"...\"` in a kernel file). This page "
        "derives the Green's functions that path uses, with `sympy.dsolve` where it gives them "
        "in closed form, and checks every closed form by substituting it back into its "
        "operator, by its decay, and by Gauss's law at the source. The convention is that of "
        "the built-in kernels: $P(\\Delta_d)\\Phi = \\omega_{d-1}GM\\delta$, with "
        "$\\omega_{d-1} = 2\\pi^{d/2}/\\Gamma(d/2)$ the area of the unit sphere."
    )
    _laplace(doc)
    _screened(doc)
    _polynomial(doc)
    _builtins(doc)


if __name__ == "__main__":
    main(__file__)
