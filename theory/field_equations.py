"""Field equations of the potential kernels: operators, sources, Gauss's law, softmax identity."""

from __future__ import annotations

import sympy as sp

try:
    from _doc import Doc, main
except ImportError:  # loaded by infograv paper from the installed copy
    from infograv._theory._doc import Doc, main  # type: ignore[no-redef]

from infograv.symbolic.kernels import (
    KERNEL_NAMES,
    G,
    M,
    epsilon,
    k,
    kernel,
    mu,
    r,
    sphere_area,
)

TITLE = "Field equations of the potential kernels"

DIMS = (2, 3, 4, 5, 6)
R = sp.Symbol("R", positive=True)


def _zero(expr: sp.Expr) -> bool:
    expr = sp.simplify(expr.rewrite(sp.besseli) if expr.has(sp.besselk) else expr)
    return expr == 0


def _newton(doc: Doc) -> None:
    doc.heading("Newton kernel (point mass)")
    doc.text(
        r"The point-mass potential of [formalism §3](../model/formalism.md#3-field-equation-and-potential), $\Phi = -GM/((d-2)r^{d-2})$ for $d\ge3$ and "
        r"$\Phi = GM\ln r$ for $d=2$, solves $\Delta_d\Phi = \omega_{d-1}G\rho$ with "
        r"$\Delta_d f = f'' + \frac{d-1}{r}f'$ and $\omega_{d-1} = 2\pi^{d/2}/\Gamma(d/2)$."
    )
    for d in DIMS:
        kn = kernel("newton", d)
        doc.eq(sp.Symbol(rf"\Phi_{{{d}}}"), kn.potential)
        doc.check(f"d={d}: Newton potential is harmonic away from the source (Delta Phi = 0)",
                  sp.simplify(kn.operator(kn.potential)) == 0)
        doc.check(f"d={d}: Gauss flux equals omega_(d-1) G M = {sphere_area(d) * G * M} "
                  "for every R",
                  sp.simplify(kn.flux(R) - sphere_area(d) * G * M) == 0)


def _plummer(doc: Doc) -> None:
    doc.heading("Plummer kernel (softened point mass)")
    doc.text(
        r"Replacing $r\to\sqrt{r^2+\varepsilon^2}$ in the Newton potential gives a smooth "
        r"potential; "
        r"the source it implies, $\rho = \Delta_d\Phi/(\omega_{d-1}G)$, is derived, not assumed. "
        r"It is positive, finite at the origin, and carries total mass $M$; the flux reaches "
        r"$\omega_{d-1}GM$ as $R\to\infty$, and $\varepsilon\to0$ recovers Newton."
    )
    for d in DIMS:
        kp = kernel("plummer", d)
        rho = kp.density()
        doc.eq(sp.Symbol(rf"\rho_{{{d}}}"), rho)
        total = sp.integrate(sphere_area(d) * r ** (d - 1) * rho, (r, 0, sp.oo))
        doc.check(f"d={d}: Plummer density integrates to M", sp.simplify(total - M) == 0)
        doc.check(f"d={d}: Plummer density is positive at r = epsilon",
                  bool(sp.simplify(rho.subs(r, epsilon)).is_positive))
        doc.check(f"d={d}: Plummer flux tends to omega_(d-1) G M as R -> oo",
                  sp.simplify(sp.limit(kp.flux(R), R, sp.oo) - sphere_area(d) * G * M) == 0)
        newton = kernel("newton", d).potential
        doc.check(f"d={d}: Plummer -> Newton as epsilon -> 0",
                  sp.simplify(sp.limit(kp.potential, epsilon, 0) - newton) == 0)


def _yukawa(doc: Doc) -> None:
    doc.heading("Yukawa kernel (screened field)")
    doc.text(
        r"$(\Delta_d-\mu^2)\Phi = \omega_{d-1}G\rho$ has the point-source solution "
        r"$\Phi = -\omega_{d-1}GM(2\pi)^{-d/2}(\mu/r)^{d/2-1}K_{d/2-1}(\mu r)$ "
        r"(DLMF 10.25; the Green's function of $\mu^2-\Delta$ in $d$ dimensions), normalised "
        r"so that "
        r"the short-distance flux is $\omega_{d-1}GM$. Integrating $(\Delta-\mu^2)\Phi = "
        r"\omega_{d-1}GM\delta$ over the ball $B_R$ gives the screened flux law "
        r"$\mathrm{flux}(R) = \omega_{d-1}GM + \mu^2\int_{B_R}\Phi\,dV$, checked here in its "
        r"differential form $\mathrm{flux}'(R) = \mu^2\omega_{d-1}R^{d-1}\Phi(R)$ together with "
        r"$\mathrm{flux}(0^+) = \omega_{d-1}GM$."
    )
    for d in DIMS:
        ky = kernel("yukawa", d)
        phi = ky.elementary()
        doc.eq(sp.Symbol(rf"\Phi_{{{d}}}"), phi)
        doc.check(f"d={d}: Yukawa potential solves (Delta - mu^2) Phi = 0 away from the source",
                  ky.density() == 0)
        flux = sphere_area(d) * R ** (d - 1) * sp.diff(phi, r).subs(r, R)
        lim0 = sp.limit(flux, R, 0, "+")
        doc.check(f"d={d}: Yukawa flux tends to omega_(d-1) G M as R -> 0",
                  sp.simplify(lim0 - sphere_area(d) * G * M) == 0)
        law = sp.diff(flux, R) - mu**2 * sphere_area(d) * R ** (d - 1) * phi.subs(r, R)
        doc.check(f"d={d}: screened flux law flux'(R) = mu^2 omega R^(d-1) Phi(R)", _zero(law))
        if d >= 3:
            newton = kernel("newton", d).potential
            doc.check(f"d={d}: Yukawa -> Newton as mu -> 0",
                      sp.simplify(sp.limit(phi, mu, 0) - newton) == 0)


def _comparison(doc: Doc) -> None:
    doc.heading("Comparison kernels: Gaussian well and harmonic")
    doc.text(
        r"The Gaussian well $-GMe^{-r^2/2\sigma^2}$ is not a Green's function: its implied "
        r"source is "
        r"a positive core surrounded by a negative shell whose total charge is zero (the flux "
        r"vanishes at infinity). The harmonic kernel $\tfrac12 kr^2$ implies a uniform density "
        r"$dk/(\omega_{d-1}G)$."
    )
    for d in DIMS:
        kg = kernel("gaussian", d)
        rho = kg.density()
        doc.eq(sp.Symbol(rf"\rho^{{\rm gauss}}_{{{d}}}"), rho)
        total = sp.integrate(sphere_area(d) * r ** (d - 1) * rho, (r, 0, sp.oo))
        doc.check(f"d={d}: Gaussian kernel's implied source has zero total charge",
                  sp.simplify(total) == 0)
        kh = kernel("harmonic", d)
        rho_h = kh.density()
        doc.check(f"d={d}: harmonic kernel implies the uniform density d k / (omega G)",
                  sp.simplify(rho_h - d * k / (sphere_area(d) * G)) == 0)


def _softmax(doc: Doc) -> None:
    doc.heading("The dot-product softmax is the harmonic kernel")
    doc.text(
        r"For any $d$, $-x_q\cdot x_i = \tfrac12|x_q-x_i|^2 - \tfrac12|x_q|^2 - \tfrac12|x_i|^2$: "
        r"the logits $z_i = x_q\cdot x_i$ of a language model are minus the energies of a harmonic "
        r"kernel ($k=1$) plus a per-token background $-\tfrac12|x_i|^2$; the term "
        r"$-\tfrac12|x_q|^2$ is the same for all tokens and cancels in the softmax."
    )
    for d in DIMS:
        xq = sp.Matrix(sp.symbols(f"q1:{d + 1}", real=True))
        xi = sp.Matrix(sp.symbols(f"x1:{d + 1}", real=True))
        lhs = -xq.dot(xi)
        rhs = (xq - xi).dot(xq - xi) / 2 - xq.dot(xq) / 2 - xi.dot(xi) / 2
        doc.check(f"d={d}: -x_q.x_i = |x_q - x_i|^2/2 - |x_q|^2/2 - |x_i|^2/2",
                  sp.expand(lhs - rhs) == 0)


def run(doc: Doc) -> None:
    doc.text(
        "Each kernel of [formalism §3](../model/formalism.md#3-field-equation-and-potential) is a SymPy expression in `infograv.symbolic.kernels`. This "
        "page derives, for $d = 2 … 6$, that it solves its field operator away from the source, "
        "that Gauss's law gives the flux $\\omega_{d-1}GM$ (exactly, at infinity, or at the "
        f"origin, depending on the kernel), and what source density it implies. Kernels: "
        f"{', '.join(KERNEL_NAMES)}."
    )
    _newton(doc)
    _plummer(doc)
    _yukawa(doc)
    _comparison(doc)
    _softmax(doc)


if __name__ == "__main__":
    main(__file__)
