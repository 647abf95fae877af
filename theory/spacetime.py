"""Semantic spacetime: the weak-field limit, Tangherlini, and the two couplings ([formalism §5](../model/formalism.md#5-semantic-spacetime-the-geometry))."""

from __future__ import annotations

import sympy as sp

try:
    from _doc import Doc, main
except ImportError:  # loaded by infograv paper from the installed copy
    from infograv._theory._doc import Doc, main  # type: ignore[no-redef]

from infograv import symbolic
from infograv.symbolic.kernels import kernel, radial_laplacian, sphere_area

TITLE = "Semantic spacetime: slow geodesics, Tangherlini, and which G"


def _weak_field(doc: Doc) -> None:
    doc.heading("Slow-motion geodesics of the weak-field spacetime")
    doc.text(
        r"""
The weak-field semantic spacetime ([formalism §5](../model/formalism.md#5-semantic-spacetime-the-geometry)) has
$ds^2 = -(1 + 2\Phi/c^2)c^2d\tau^2 + (1 - 2\Phi/c^2)\delta_{ij}dx^idx^j$ with a static
$\Phi(x)$. Parametrising a geodesic by the coordinate time $\tau$, the spatial coordinates obey

$$\ddot x^i = -\Gamma^i_{\mu\nu}\dot x^\mu\dot x^\nu + \Gamma^0_{\mu\nu}\dot x^\mu\dot x^\nu\,\dot x^i,
\qquad \dot x^\mu = (1, v^1, \dots, v^d).$$

We compute the Christoffel symbols of the metric for an arbitrary $\Phi$ in $d = 2, 3, 4$,
form this acceleration for an arbitrary velocity $v$, and expand in $1/c$:
"""
    )
    for d in (2, 3, 4):
        g = symbolic.weak_field(d)
        gam = g.christoffel()
        c = sp.Symbol("c")
        eps = sp.Symbol("epsilon_c", positive=True)  # 1/c
        xs = g.coords[1:]
        v = sp.symbols(f"v1:{d + 1}", real=True)
        u = (sp.Integer(1),) + v
        n = d + 1
        phi = g.components[1, 1]  # 1 - 2 Phi / c^2
        Phi = sp.expand((1 - phi) * c**2 / 2)
        leading_ok = True
        corr = []
        for i in range(1, n):
            acc = -sum(gam[i, a, b] * u[a] * u[b] for a in range(n) for b in range(n))
            acc += sum(gam[0, a, b] * u[a] * u[b] for a in range(n) for b in range(n)) * u[i]
            acc = acc.subs(c, 1 / eps)
            ser = sp.series(acc, eps, 0, 3).removeO()
            lead = sp.simplify(ser.subs(eps, 0))
            leading_ok = leading_ok and sp.simplify(lead + sp.diff(Phi, xs[i - 1])) == 0
            corr.append(sp.simplify(ser.coeff(eps, 2)))
        doc.check(
            rf"$d = {d}$: $\ddot x^i = -\partial_i\Phi + O(1/c^2)$ for every velocity, "
            "i.e. the Newtonian law of the potential well",
            leading_ok,
        )
        if d == 3:
            doc.text(r"For $d = 3$ the first correction (the coefficient of $1/c^2$) in $\ddot x^1$ is")
            doc.eq(r"c^2\left(\ddot x^1 + \partial_1\Phi\right)", corr[0])


def _tangherlini(doc: Doc) -> None:
    doc.heading("Schwarzschild–Tangherlini: an isolated query in $D = d + 1$ dimensions")
    doc.text(
        r"""
$ds^2 = -f\,c^2d\tau^2 + dr^2/f + r^2d\Omega^2_{d-1}$ with $f = 1 - (r_s/r)^{d-2}$
(`infograv.symbolic.tangherlini`, written with $c = 1$). Every Ricci component, computed without
simplification and then simplified component by component, vanishes:
"""
    )
    for D in (4, 5, 6, 7):
        ric = symbolic.tangherlini(D).ricci()
        zero = all(sp.simplify(ric[a, b]) == 0 for a in range(D) for b in range(a, D))
        doc.check(rf"$D = {D}$: $R_{{ab}} = 0$ (all {D * (D + 1) // 2} independent components)",
                  zero)
    d = sp.Symbol("d", integer=True, positive=True)
    G, M, c, rs, r = sp.symbols("G M c r_s r", positive=True)
    omega = 2 * sp.pi ** (d / 2) / sp.gamma(d / 2)
    rs_pow = 16 * sp.pi * G * M / ((d - 1) * omega * c**2)
    doc.text(
        r"""
The horizon radius is fixed by matching the Einstein equation $G_{\mu\nu} = 8\pi G T_{\mu\nu}/c^4$
(this $G$ is the *Einstein coupling*) to a point mass $M$ (R. C. Myers and M. J. Perry, Ann. Phys. 172, 304 (1986); with
$\Omega_{d-1} = \omega_{d-1}$):
"""
    )
    doc.eq(r"r_s^{d-2}", rs_pow)
    # weak-field limit: -g_tt / c^2 = f = 1 + 2 Phi / c^2
    Phi = sp.Symbol("Phi")
    f = 1 - rs_pow / r ** (d - 2)
    Phi_E = sp.solve(sp.Eq(f, 1 + 2 * Phi / c**2), Phi)[0]
    doc.text(r"Reading $\Phi$ off $-g_{\tau\tau}/c^2 = f = 1 + 2\Phi/c^2$ gives the weak-field potential")
    doc.eq(r"\Phi_E(r)", Phi_E)
    target = -8 * sp.pi * G * M / ((d - 1) * omega * r ** (d - 2))
    doc.check(r"$\Phi = -8\pi G M / ((d-1)\,\omega_{d-1}\,r^{d-2})$ (exact in $d$)",
              sp.simplify(Phi_E - target) == 0)
    ok_harm, fluxes = True, []
    for dd in range(3, 8):
        phi_d = Phi_E.subs(d, dd)
        rr = sp.Symbol("r", positive=True)
        phi_d = phi_d.subs(r, rr)
        ok_harm = ok_harm and sp.simplify(radial_laplacian(phi_d, dd, rr)) == 0
        fluxes.append(sp.simplify(sphere_area(dd) * rr ** (dd - 1) * sp.diff(phi_d, rr)))
    doc.check(r"$\Delta_d\Phi_E = 0$ for $r > 0$, $d = 3 \dots 7$", ok_harm)
    flux_ok = all(
        sp.simplify(fl - 8 * sp.pi * G * M * (dd - 2) / (dd - 1)) == 0
        for dd, fl in zip(range(3, 8), fluxes)
    )
    doc.check(r"Gauss flux $\oint\nabla\Phi_E\cdot dA = 8\pi G M (d-2)/(d-1)$, $d = 3\dots7$", flux_ok)
    doc.text(
        r"""
So the Einstein equation's weak-field limit is the Poisson equation
$\Delta\Phi = 8\pi G\,\frac{d-2}{d-1}\,\rho$, while [formalism §3](../model/formalism.md#3-field-equation-and-potential) writes
$\Delta\Phi = \omega_{d-1} G_P\,\rho$ (this $G_P$ is the *Poisson coupling*, the one every kernel
in `infograv.symbolic.kernels` uses). The two describe the same field when
"""
    )
    GP = sp.Symbol("G_P", positive=True)
    conv = sp.solve(sp.Eq(omega * GP, 8 * sp.pi * G * (d - 2) / (d - 1)), GP)[0]
    doc.eq(r"G_P", conv)
    ok_newton = True
    for dd in range(3, 8):
        kn = kernel("newton", dd)
        gsym = [s for s in kn.potential.free_symbols if s.name == "G"][0]
        msym = [s for s in kn.potential.free_symbols if s.name == "M"][0]
        pot = kn.potential.subs({gsym: conv.subs(d, dd), msym: M}).subs(kn.r, r)
        ok_newton = ok_newton and sp.simplify(pot - Phi_E.subs(d, dd)) == 0
    doc.check(r"with $G_P$ from this conversion, the Newton kernel of `kernels` equals "
              r"$\Phi_E$ exactly, $d = 3\dots7$", ok_newton)
    doc.check(r"at $d = 3$ the two couplings coincide, $G_P = G$",
              sp.simplify(conv.subs(d, 3) - G) == 0)
    doc.check(r"at $d = 3$, $r_s = 2GM/c^2$ (Schwarzschild)",
              sp.simplify(rs_pow.subs(d, 3) - 2 * G * M / c**2) == 0)
    doc.text(
        r"""
infograv keeps **one** $G$: the Poisson coupling $G_P$ of [formalism §3](../model/formalism.md#3-field-equation-and-potential) in every potential and
selection law, and converts with the relation above wherever a Tangherlini horizon radius is
needed: $r_s^{d-2} = 2 G_P M / ((d-2) c^2)$, which follows by substituting $G$:
"""
    )
    rs_in_GP = sp.simplify(rs_pow.subs(G, sp.solve(sp.Eq(conv, GP), G)[0]))
    doc.eq(r"r_s^{d-2}", rs_in_GP)
    doc.check(r"$r_s^{d-2} = 2 G_P M/((d-2)c^2)$",
              sp.simplify(rs_in_GP - 2 * GP * M / ((d - 2) * c**2)) == 0)


def run(doc: Doc) -> None:
    _weak_field(doc)
    _tangherlini(doc)


if __name__ == "__main__":
    main(__file__)
