"""Conformally flat metrics e^{2φ}δ in d dimensions: closed forms checked component-wise ([formalism §5](../model/formalism.md#5-semantic-spacetime-the-geometry))."""

from __future__ import annotations

import sympy as sp

try:
    from _doc import Doc, main
except ImportError:  # loaded by infograv paper from the installed copy
    from infograv._theory._doc import Doc, main  # type: ignore[no-redef]

from infograv import symbolic

TITLE = r"Conformally flat semantic space $g = e^{2\varphi}\delta$ in $d$ dimensions"


def _closed_christoffel(a: int, b: int, c: int, dphi: list[sp.Expr]) -> sp.Expr:
    return (
        sp.KroneckerDelta(a, b) * dphi[c]
        + sp.KroneckerDelta(a, c) * dphi[b]
        - sp.KroneckerDelta(b, c) * dphi[a]
    )


def run(doc: Doc) -> None:
    doc.heading("Christoffel symbols for general $d$, by index algebra")
    doc.text(
        r"""
With $g_{ab} = e^{2\varphi}\delta_{ab}$, $g^{ab} = e^{-2\varphi}\delta_{ab}$ and
$\partial_c g_{ab} = 2e^{2\varphi}\varphi_{,c}\,\delta_{ab}$, the definition
$\Gamma^a_{bc} = \tfrac12 g^{ae}(\partial_b g_{ec} + \partial_c g_{eb} - \partial_e g_{bc})$
is evaluated with symbolic indices and a symbolic dimension $n$ (SymPy sums over Kronecker deltas):
"""
    )
    n = sp.Symbol("n", integer=True, positive=True)
    a, b, c, e = sp.symbols("a b c e", integer=True, positive=True)
    phi_sym = sp.Symbol("varphi")
    dphi = sp.IndexedBase(r"\varphi_{,}")
    g_up = sp.exp(-2 * phi_sym)
    def dg(i: sp.Expr, j: sp.Expr, k: sp.Expr) -> sp.Expr:  # ∂_k g_ij
        return 2 * sp.exp(2 * phi_sym) * dphi[k] * sp.KroneckerDelta(i, j)
    summand = sp.Rational(1, 2) * g_up * sp.KroneckerDelta(a, e) * (
        dg(e, c, b) + dg(e, b, c) - dg(b, c, e)
    )
    gamma = sp.simplify(sp.Sum(summand, (e, 1, n)).doit())
    closed = (
        sp.KroneckerDelta(a, b) * dphi[c]
        + sp.KroneckerDelta(a, c) * dphi[b]
        - sp.KroneckerDelta(b, c) * dphi[a]
    )
    doc.eq(r"\Gamma^a_{bc}", closed)
    # the Sum over e carries the range condition 1 <= a <= n; inside the range it is `closed`.
    inside = gamma.subs({sp.KroneckerDelta(a, e): 1}).replace(
        lambda x: isinstance(x, sp.Piecewise), lambda x: x.args[0][0]
    )
    doc.check(r"$\Gamma^a_{bc} = \delta^a_b\varphi_{,c} + \delta^a_c\varphi_{,b} - "
              r"\delta_{bc}\varphi^{,a}$ for every $n$ (indices in range)",
              sp.simplify(inside - closed) == 0)
    doc.text(
        r"""
Contracted with a velocity, the geodesic acceleration needs only a gradient and two dot
products, $O(d)$ work per step (the rule `infograv.geometry` uses at $d$ in the hundreds):
"""
    )
    doc.eq(r"\Gamma^a_{bc}v^bv^c", r"2(\nabla\varphi\cdot v)\,v^a - |v|^2\,\partial_a\varphi")

    doc.heading("Scalar curvature")
    doc.text(
        r"""
For $g = e^{2\varphi}\delta$ (Wald 1984, eq. D.9 with $\Omega = e^{\varphi}$):
"""
    )
    doc.eq("R", r"-e^{-2\varphi}\left(2(d-1)\Delta\varphi + (d-2)(d-1)|\nabla\varphi|^2\right)")

    doc.heading("Component-wise check, $d = 2 \\dots 5$, arbitrary $\\varphi$")
    for d in (2, 3, 4, 5):
        g = symbolic.conformally_flat(d)
        xs = g.coords
        phi = sp.Function("phi")(*xs)
        grad = [sp.diff(phi, x) for x in xs]
        gam = g.christoffel()
        ok_gamma = all(
            sp.simplify(gam[i, j, k] - _closed_christoffel(i, j, k, grad)) == 0
            for i in range(d) for j in range(d) for k in range(j, d)
        )
        doc.check(rf"$d = {d}$: every $\Gamma^a_{{bc}}$ from `Metric.christoffel()` equals "
                  "the closed form", ok_gamma)
        v = sp.symbols(f"v1:{d + 1}", real=True)
        vdot = sum(gi * vi for gi, vi in zip(grad, v))
        v2 = sum(vi**2 for vi in v)
        ok_acc = all(
            sp.expand(
                sum(gam[i, j, k] * v[j] * v[k] for j in range(d) for k in range(d))
                - (2 * vdot * v[i] - v2 * grad[i])
            ) == 0
            for i in range(d)
        )
        doc.check(rf"$d = {d}$: $\Gamma(v, v) = 2(\nabla\varphi\cdot v)v - |v|^2\nabla\varphi$", ok_acc)
        lap = sum(sp.diff(phi, x, 2) for x in xs)
        closed_R = -sp.exp(-2 * phi) * (2 * (d - 1) * lap + (d - 2) * (d - 1) * sum(q**2 for q in grad))
        R = g.ricci_scalar()
        diff = sp.expand(sp.powsimp(sp.expand((R - closed_R) * sp.exp(2 * phi))))
        doc.check(rf"$d = {d}$: the scalar curvature from Riemann → Ricci → $R$ equals the "
                  "closed form", sp.simplify(diff) == 0)

    doc.heading("Numerical check with two Gaussian wells")
    d = 3
    g = symbolic.conformally_flat(d)
    xs = g.coords
    phi_c = -sp.Rational(3, 4) * sp.exp(-((xs[0] - 1) ** 2 + xs[1] ** 2 + xs[2] ** 2) / 2) \
        - sp.Rational(1, 2) * sp.exp(-((xs[0] + 1) ** 2 + xs[1] ** 2 + xs[2] ** 2))
    gc = symbolic.conformally_flat(d, phi_c)
    Rc = gc.ricci_scalar()
    grad = [sp.diff(phi_c, x) for x in xs]
    lap = sum(sp.diff(phi_c, x, 2) for x in xs)
    closed_R = -sp.exp(-2 * phi_c) * (2 * (d - 1) * lap + (d - 2) * (d - 1) * sum(q**2 for q in grad))
    pts = [(sp.Rational(1, 3), sp.Rational(-1, 2), sp.Rational(1, 5)),
           (sp.Rational(-7, 4), sp.Rational(2, 3), 0), (0, 0, sp.Rational(9, 10))]
    worst = max(abs(sp.N((Rc - closed_R).subs(dict(zip(xs, p))), 40)) for p in pts)
    doc.check(rf"$\varphi$ = two Gaussian wells in $d = 3$: $|R - R_{{closed}}| < 10^{{-30}}$ "
              f"at three points (40-digit arithmetic; worst {float(worst):.1e})", worst < 1e-30)


if __name__ == "__main__":
    main(__file__)
