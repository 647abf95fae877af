"""Thermodynamics of the selection law, the Fisher metric, and Langevin stationarity ([formalism §4](../model/formalism.md#4-token-selection-law-and-its-thermodynamics), §6, §9)."""

from __future__ import annotations

import sympy as sp

try:
    from _doc import Doc, main
except ImportError:  # loaded by infograv paper from the installed copy
    from infograv._theory._doc import Doc, main  # type: ignore[no-redef]

TITLE = "Selection law: thermodynamic identities, Fisher metric, Langevin stationarity"


def run(doc: Doc) -> None:
    T, G, M = sp.symbols("T G M", positive=True)
    doc.text(
        r"""
Token $i$ has energy $U_i = m_i\Phi(x_i)$ in the query's field and is selected with the
Boltzmann law $P_i = e^{-U_i/T}/Z$, $Z = \sum_j e^{-U_j/T}$ ([formalism §4](../model/formalism.md#4-token-selection-law-and-its-thermodynamics)). With
$F = -T\ln Z$, $\langle U\rangle = \sum_i P_i U_i$ and $H = -\sum_i P_i \ln P_i$:
"""
    )

    # --- General N: Z, A = sum U e^{-U/T}, B = sum U^2 e^{-U/T} as functions of T ------------
    doc.heading("Identities for any vocabulary size")
    doc.text(
        r"""
For any $N$, write $Z(T)$, $A(T) = \sum_i U_i e^{-U_i/T}$ and $B(T) = \sum_i U_i^2 e^{-U_i/T}$.
Differentiating term by term, $\partial_T e^{-U/T} = (U/T^2)\,e^{-U/T}$, so the three sums close
under $d/dT$:
"""
    )
    Z, A, B = (sp.Function(n)(T) for n in ("Z", "A", "B"))
    rules = {Z.diff(T): A / T**2, A.diff(T): B / T**2}
    doc.eq(sp.Derivative(Z, T), A / T**2)
    doc.eq(sp.Derivative(A, T), B / T**2)

    def d(expr: sp.Expr) -> sp.Expr:
        return expr.diff(T).subs(rules)

    F = -T * sp.log(Z)
    U_mean = A / Z
    U2_mean = B / Z
    H = (U_mean - F) / T
    var = U2_mean - U_mean**2
    doc.eq("F", F)
    doc.eq(r"H", H)
    dF = d(F)
    doc.check(r"$dF/dT = -H$ for every $N$", sp.simplify(dF + H) == 0)
    doc.eq(r"\frac{dF}{dT}", sp.simplify(dF))
    dH = d(H)
    doc.check(r"$dH/dT = \mathrm{Var}(U)/T^3$ for every $N$", sp.simplify(dH - var / T**3) == 0)
    doc.eq(r"\frac{dH}{dT}", r"\frac{\langle U^2\rangle - \langle U\rangle^2}{T^3}")
    dU = d(U_mean)
    doc.check(r"heat capacity $C = d\langle U\rangle/dT = \mathrm{Var}(U)/T^2$",
              sp.simplify(dU - var / T**2) == 0)
    doc.check(r"$H = -\sum_i P_i \ln P_i$ equals $(\langle U\rangle - F)/T$ "
              r"(since $\ln P_i = -U_i/T - \ln Z$)",
              sp.simplify(-(-U_mean / T - sp.log(Z)) - H) == 0)

    # --- Concrete N = 3 by direct differentiation ---------------------------------------------
    doc.heading("A direct check with three tokens")
    u = sp.symbols("U1:4", real=True)
    z3 = sum(sp.exp(-ui / T) for ui in u)
    p3 = [sp.exp(-ui / T) / z3 for ui in u]
    F3 = -T * sp.log(z3)
    H3 = -sum(pi * sp.log(pi) for pi in p3)
    m1 = sum(pi * ui for pi, ui in zip(p3, u))
    m2 = sum(pi * ui**2 for pi, ui in zip(p3, u))
    vals = {u[0]: sp.Rational(-3, 2), u[1]: sp.Rational(1, 3), u[2]: 2, T: sp.Rational(7, 10)}
    r1 = (F3.diff(T) + H3).subs(vals)
    r2 = (H3.diff(T) - (m2 - m1**2) / T**3).subs(vals)
    doc.check(r"$dF/dT + H = 0$ at a rational point, to 40 digits", abs(sp.N(r1, 50)) < 1e-40)
    doc.check(r"$dH/dT - \mathrm{Var}(U)/T^3 = 0$ at a rational point, to 40 digits",
              abs(sp.N(r2, 50)) < 1e-40)

    # --- Mass–temperature scaling ---------------------------------------------------------------
    doc.heading("Mass–temperature scaling")
    doc.text(
        r"""
For one query and no background, $U_i = G M\,u_i$ with $u_i$ independent of $G$, $M$. Then
$P_i$ depends on $T$, $G$, $M$ only through $\theta = T/(GM)$:
"""
    )
    theta = sp.symbols("theta", positive=True)
    p_scaled = [pi.subs({ui: G * M * ui for ui in u}) for pi in p3]
    invariant = all(
        sp.simplify(pi.subs(T, theta * G * M) - pi.subs({T: theta, G: 1, M: 1})) == 0
        for pi in p_scaled
    )
    doc.check(r"$P_i(T, G, M) = P_i(T/(GM), 1, 1)$", invariant)
    b = sp.symbols("b", real=True)
    doc.text(
        r"""
A background term $b_i$ (context tokens, a density-dependent offset) gives
$U_i = GM u_i + b_i$, and $P_i$ then depends on $T$ and $GM$ separately; the size of the break
is measured numerically in `infograv.model`.
"""
    )
    p_bg = sp.exp(-(G * M * u[0] + b) / T) / (
        sp.exp(-(G * M * u[0] + b) / T) + sp.exp(-G * M * u[1] / T)
    )
    brk = sp.simplify(p_bg.subs(T, theta * G * M) - p_bg.subs({T: theta, G: 1, M: 1}))
    at = {G: 2, M: sp.Rational(3, 2), theta: sp.Rational(1, 2), b: 1, u[0]: -1, u[1]: 1}
    doc.check(r"with a background $b \neq 0$ the scaling is broken (residual $\neq 0$ at a point)",
              abs(sp.N(brk.subs(at), 30)) > 1e-3)

    # --- Fisher metric ----------------------------------------------------------------------------
    doc.heading("Fisher metric of the selection law")
    doc.text(
        r"""
Let the energies depend on the query position $x_q$. From
$\ln P_i = -U_i/T - \ln Z$, $\partial_a \ln P_i = -(\partial_a U_i - \langle\partial_a U\rangle)/T$,
so the Fisher metric $g_F = \sum_i P_i\,\partial_a\ln P_i\,\partial_b\ln P_i$ is a covariance:
"""
    )
    x1, x2 = sp.symbols("x1 x2", real=True)
    xs = (x1, x2)
    us = [sp.Function(f"U{i}")(x1, x2) for i in range(1, 4)]
    zf = sum(sp.exp(-ui / T) for ui in us)
    pf = [sp.exp(-ui / T) / zf for ui in us]
    # After differentiating, name the atoms: dU_i/dx_a -> g_ia, U_i -> u_i, exp(-u_i/T) -> w_i,
    # so the comparison is between rational functions and `cancel` decides it exactly.
    g = {(i, a): sp.Symbol(f"g{i}{a}", real=True) for i in range(3) for a in range(2)}
    w = [sp.Symbol(f"w{i}", positive=True) for i in range(3)]
    uu = [sp.Symbol(f"u{i}", real=True) for i in range(3)]

    def atoms(expr: sp.Expr) -> sp.Expr:
        expr = expr.subs({us[i].diff(xs[a]): g[i, a] for i in range(3) for a in range(2)})
        expr = expr.subs({us[i]: uu[i] for i in range(3)})
        return expr.subs({sp.exp(-uu[i] / T): w[i] for i in range(3)})

    ok = True
    for a in range(2):
        for bb in range(2):
            fisher = sum(pi * sp.log(pi).diff(xs[a]) * sp.log(pi).diff(xs[bb]) for pi in pf)
            ea = sum(pi * ui.diff(xs[a]) for pi, ui in zip(pf, us))
            eb = sum(pi * ui.diff(xs[bb]) for pi, ui in zip(pf, us))
            eab = sum(pi * ui.diff(xs[a]) * ui.diff(xs[bb]) for pi, ui in zip(pf, us))
            cov = (eab - ea * eb) / T**2
            ok = ok and sp.cancel(atoms(sp.expand_log(fisher - cov, force=True))) == 0
    doc.eq(r"g_F(x_q)_{ab}", r"\frac{\mathrm{Cov}_P(\partial_a U, \partial_b U)}{T^2}")
    doc.check(r"$g_F = \mathrm{Cov}_P(\partial_a U,\partial_b U)/T^2$ (three tokens, two "
              "coordinates, arbitrary energy functions)", ok)

    # --- Langevin stationarity -------------------------------------------------------------------
    doc.heading("Overdamped Langevin dynamics and the Boltzmann density")
    doc.text(
        r"""
The overdamped Langevin equation $dx = -\nabla U\,dt + \sqrt{2T}\,dW$ has the Fokker–Planck
equation $\partial_t p = \nabla\cdot(p\nabla U) + T\Delta p$. The Boltzmann density
$p \propto e^{-U/T}$, the continuous twin of the selection law, makes the probability current
vanish and is therefore stationary:
"""
    )
    y1, y2, y3 = sp.symbols("y1 y2 y3", real=True)
    ys = (y1, y2, y3)
    Uf = sp.Function("U")(*ys)
    p = sp.exp(-Uf / T)
    current = [p * Uf.diff(v) + T * p.diff(v) for v in ys]
    doc.check(r"the current $J = -(p\nabla U + T\nabla p)$ vanishes for $p = e^{-U/T}$ "
              r"($d = 3$, arbitrary $U$)", all(sp.simplify(j) == 0 for j in current))
    fp = sum((p * Uf.diff(v)).diff(v) + T * p.diff(v, 2) for v in ys)
    doc.check(r"$\nabla\cdot(p\nabla U) + T\Delta p = 0$", sp.simplify(fp) == 0)


if __name__ == "__main__":
    main(__file__)
