r"""The symbolic metric tensor and everything derived from it.

Conventions (fixed; other parts of infograv and outside checks rely on them):

* `christoffel()[a, b, c]` $= \Gamma^a{}_{bc} = \tfrac12 g^{ad}(\partial_b g_{dc}
  + \partial_c g_{db} - \partial_d g_{bc})$.
* `riemann()[a, b, c, d]` $= R^a{}_{bcd} = \partial_c \Gamma^a{}_{db} - \partial_d \Gamma^a{}_{cb}
  + \Gamma^a{}_{ce}\Gamma^e{}_{db} - \Gamma^a{}_{de}\Gamma^e{}_{cb}$.
* `ricci()[b, d]` $= R_{bd} = R^a{}_{bad}$, so the unit 2-sphere has scalar curvature $+2$.
* `ricci_scalar()` $= R = g^{bd} R_{bd}$; `einstein()` $= G_{ab} = R_{ab} - \tfrac12 R g_{ab}$.

Nothing is simplified: tensors are built from derivatives, products and sums only, skipping
terms that are structurally zero and using the symmetries $\Gamma^a{}_{bc} = \Gamma^a{}_{cb}$,
$R^a{}_{bcd} = -R^a{}_{bdc}$, $R_{bd} = R_{db}$ to compute each independent component once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ._tensor import (
    ZERO,
    block_inverse,
    dot,
    freeze,
    is_zero,
    nested,
    random_numeric_check,
)

__all__ = ["Metric", "GeodesicEquations", "velocity_symbol"]

_HALF = sp.Rational(1, 2)


def velocity_symbol(coord: sp.Symbol) -> sp.Symbol:
    r"""The velocity symbol $\dot x$ used for coordinate `coord` in geodesic equations.

    Its LaTeX is `\dot{<coord>}`: for a plain name such as `r` or `theta` it is the symbol
    `rdot` / `thetadot` (SymPy prints the `dot` suffix as an accent); otherwise (e.g. `x_1`)
    it is the symbol literally named `\dot{x_{1}}`.

    Example:
        >>> import sympy as sp
        >>> velocity_symbol(sp.Symbol("theta"))
        thetadot
    """
    plain = sp.Symbol(coord.name + "dot")
    target = r"\dot{" + sp.latex(coord) + "}"
    if sp.latex(plain) == target:
        return plain
    return sp.Symbol(target)


@dataclass(frozen=True)
class GeodesicEquations:
    r"""Second-order equations of motion $\ddot x^a = F^a(x, \dot x)$ in first-order-ready form.

    Attributes:
        coords: the coordinates $x^a$ (SymPy Symbols).
        velocities: the symbols standing for $\dot x^a = dx^a/d\lambda$, see
            [`velocity_symbol`][infograv.symbolic.velocity_symbol].
        accelerations: `ImmutableMatrix` $(n, 1)$ of right-hand sides $F^a$, expressions in the
            coordinates, velocities and the metric's parameters.
        parameter: the curve parameter $\lambda$.

    The first-order system for an ODE solver is $y = (x, \dot x)$,
    $\dot y = (\dot x, F(x, \dot x))$, which compiles directly with
    `infograv.to_jax(eqs.accelerations, [*eqs.coords, *eqs.velocities])`.
    """

    coords: tuple[sp.Symbol, ...]
    velocities: tuple[sp.Symbol, ...]
    accelerations: sp.ImmutableDenseMatrix
    parameter: sp.Symbol

    def odes(self) -> list[sp.Eq]:
        r"""The equations as `Eq(d²x^a/dλ², F^a)` with $x^a(\lambda)$ as functions of λ."""
        lam = self.parameter
        funcs = [sp.Function(c.name)(lam) for c in self.coords]
        sub: dict[Any, Any] = {}
        for c, v, f in zip(self.coords, self.velocities, funcs):
            sub[v] = sp.Derivative(f, lam)
            sub[c] = f
        return [
            sp.Eq(sp.Derivative(f, (lam, 2)), acc.xreplace(sub))
            for f, acc in zip(funcs, self.accelerations)
        ]


def _as_matrix(components: Any) -> sp.ImmutableDenseMatrix:
    if isinstance(components, sp.MatrixBase):
        m = components
    elif isinstance(components, sp.NDimArray):
        if components.rank() != 2:
            raise ValueError(
                f"components: expected a 2-index array (n×n), got rank {components.rank()}."
            )
        m = sp.Matrix(components.tolist())
    elif isinstance(components, (list, tuple)):
        rows = list(components)
        if not rows or not all(isinstance(r, (list, tuple)) for r in rows):
            raise ValueError(
                "components: expected an n×n SymPy Matrix or a nested list of n rows of n "
                "entries."
            )
        lens = {len(r) for r in rows}
        if lens != {len(rows)}:
            raise ValueError(
                f"components: not square: {len(rows)} rows with lengths {sorted(lens)}; a metric "
                "needs n rows of n entries."
            )
        m = sp.Matrix([[sp.sympify(e) for e in r] for r in rows])
    else:
        raise TypeError(
            "components: expected an n×n SymPy Matrix, 2-index Array or nested list, got "
            f"{type(components).__name__}."
        )
    if m.rows != m.cols:
        raise ValueError(f"components: not square: shape {m.rows}×{m.cols}; a metric is n×n.")
    if m.rows == 0:
        raise ValueError("components: empty matrix; a metric needs n ≥ 1.")
    for i in range(m.rows):
        for j in range(m.cols):
            problem = entry_problem(m[i, j])
            if problem:
                raise ValueError(f"components: g[{i},{j}] = {_short(m[i, j])} {problem}.")
    return sp.ImmutableDenseMatrix(m)


def _short(e: Any, limit: int = 80) -> str:
    text = str(e)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_problem(e: Any) -> str | None:
    """Why `e` cannot be a metric entry (not an expression, not finite, complex), else None.

    `0/0` is `nan`, `1/0` is `zoo` (complex infinity), `log(-1)` is `I*pi`: each is refused.

    Example:
        >>> import sympy as sp
        >>> entry_problem(sp.Integer(0) / 0), entry_problem(sp.log(-1)), entry_problem(sp.S(2))
        ('is not a number (0/0 gives nan)', 'is complex (e.g. log(-1) = I*pi)', None)
    """
    if not isinstance(e, sp.Expr):
        return f"is not an expression ({type(e).__name__})"
    if e.has(sp.nan):
        return "is not a number (0/0 gives nan)"
    if e.has(sp.zoo, sp.oo, -sp.oo):
        return "is infinite (e.g. 1/0 gives zoo)"
    if e.has(sp.I) or (e.is_number and e.is_extended_real is False):
        return "is complex (e.g. log(-1) = I*pi)"
    return None


def _check_coords(coords: Any, n: int) -> tuple[sp.Symbol, ...]:
    if isinstance(coords, sp.Symbol):
        coords = (coords,)
    try:
        out = tuple(coords)
    except TypeError:
        raise TypeError(
            f"coords: expected a sequence of SymPy Symbols, got {type(coords).__name__}."
        ) from None
    for c in out:
        if not isinstance(c, sp.Symbol):
            raise ValueError(
                f"coords: every coordinate must be a SymPy Symbol, got {c!r} "
                f"({type(c).__name__}); use sympy.symbols('t r theta phi')."
            )
    if len(set(out)) != len(out) or len({c.name for c in out}) != len(out):
        names = [c.name for c in out]
        dup = sorted({x for x in names if names.count(x) > 1})
        raise ValueError(f"coords: coordinates must be distinct; repeated: {', '.join(dup)}.")
    if len(out) != n:
        raise ValueError(
            f"coords: length mismatch: {len(out)} coordinates for a {n}×{n} metric; give one "
            "coordinate per row."
        )
    return out


class Metric:
    r"""A (pseudo-)Riemannian metric $g_{ab}(x)$ in SymPy, with its curvature.

    $$ds^2 = g_{ab}(x)\,dx^a dx^b$$

    Any dimension $n \ge 1$ and any signature. Every derived quantity is computed on first
    use and cached on the object; the object is immutable. Nothing is simplified (see
    [`simplified`][infograv.symbolic.simplified] for opt-in, time-boxed simplification for
    printing); components that are not literally zero may still vanish identically, so check
    vanishing quantities numerically (e.g. compile with `infograv.to_jax`).

    Index conventions: `christoffel()[a, b, c]` $=\Gamma^a{}_{bc}$;
    `riemann()[a, b, c, d]` $= R^a{}_{bcd} = \partial_c\Gamma^a{}_{db} - \partial_d
    \Gamma^a{}_{cb} + \Gamma^a{}_{ce}\Gamma^e{}_{db} - \Gamma^a{}_{de}\Gamma^e{}_{cb}$;
    `ricci()[b, d]` $= R^a{}_{bad}$ (the unit 2-sphere has $R = +2$);
    $R = g^{bd}R_{bd}$; $G_{ab} = R_{ab} - \frac12 R g_{ab}$.

    Arguments:
        components: $n\times n$ SymPy `Matrix`, 2-index `Array` or nested list; symmetric and
            not identically degenerate. Entries may contain parameters (any other Symbols)
            and undefined functions of the coordinates such as `Function("phi")(x, y)`.
        coords: $n$ distinct SymPy `Symbol`s, in the order of the rows.

    Raises:
        TypeError: `components` or `coords` is not of a supported type.
        ValueError: `components` is not square, not symmetric, or has a determinant that is
            identically zero; `coords` holds a non-Symbol or a repeated symbol, or its length
            differs from $n$.

    Example:
        >>> import sympy as sp
        >>> from infograv.symbolic import Metric
        >>> th, ph = sp.symbols("theta phi")
        >>> g = Metric(sp.diag(1, sp.sin(th) ** 2), [th, ph])   # unit 2-sphere
        >>> g.christoffel()[0, 1, 1]
        -sin(theta)*cos(theta)
        >>> sp.simplify(g.ricci_scalar())
        2

    References:
        R. M. Wald, *General Relativity* (1984), eqs. (3.1.30) and (3.4.4) for the Christoffel
        symbols and the Riemann tensor in components (we use the $R^a{}_{bcd}$ index order and
        sign of Misner, Thorne and Wheeler, *Gravitation* (1973), Ch. 14).
    """

    __slots__ = ("_g", "_coords", "_cache")

    def __init__(self, components: Any, coords: Any) -> None:
        g = _as_matrix(components)
        n = g.rows
        coords_t = _check_coords(coords, n)
        # symmetry: structural first, numerical when entries differ in form only
        asym = []
        for i, j in itertools.combinations(range(n), 2):
            diff = g[i, j] - g[j, i]
            if is_zero(diff):
                continue
            vals = random_numeric_check(diff, coords_t)
            if not vals or any(abs(v) > 1e-20 for v in vals):
                asym.append((i, j))
        if asym:
            i, j = asym[0]
            raise ValueError(
                f"components: not symmetric: g[{i},{j}] = {g[i, j]} but g[{j},{i}] = "
                f"{g[j, i]}; a metric must satisfy g[a,b] == g[b,a]."
            )
        # entries equal in value but not in form: use the upper triangle for both
        g = sp.ImmutableDenseMatrix(n, n, lambda i, j: g[min(i, j), max(i, j)])
        self._g = g
        self._coords = coords_t
        self._cache: dict[str, Any] = {}
        det = self.det()
        if is_zero(det):
            raise ValueError(
                "components: degenerate: the determinant is identically 0, so the metric has "
                "no inverse; check for a repeated row or a zero row."
            )
        # relative to Hadamard's bound |det g| ≤ Π_i |row_i|, so the scale of g does not matter
        bound = sp.Mul(*[sp.sqrt(sp.Add(*[e**2 for e in g.row(i)])) for i in range(n)])
        vals = random_numeric_check(det / bound, coords_t, trials=3, seed=1)
        if vals and all(abs(v) < 1e-25 for v in vals):
            raise ValueError(
                "components: degenerate: the determinant vanishes at random points (it is "
                f"identically 0 although it reads {det}); the metric has no inverse."
            )

    # ----------------------------------------------------------------------------- basics
    @property
    def components(self) -> sp.ImmutableDenseMatrix:
        """The metric components $g_{ab}$ (immutable $n\\times n$ matrix)."""
        return self._g

    @property
    def coords(self) -> tuple[sp.Symbol, ...]:
        """The coordinates $x^a$."""
        return self._coords

    @property
    def dim(self) -> int:
        """The dimension $n$."""
        return self._g.rows

    @property
    def parameters(self) -> tuple[sp.Symbol, ...]:
        """Free symbols of the components other than the coordinates, sorted by name."""
        free = self._g.free_symbols - set(self._coords)
        return tuple(sorted(free, key=lambda s: s.name))

    def __repr__(self) -> str:
        return f"Metric({self._g.tolist()!r}, {list(self._coords)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Metric)
            and self._g == other._g
            and self._coords == other._coords
        )

    def __hash__(self) -> int:
        return hash((self._g, self._coords))

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            value = build()
            self._cache[name] = value
            return value

    def _inverse_and_det(self) -> tuple[sp.ImmutableDenseMatrix, sp.Expr]:
        return self._cached("_invdet", lambda: block_inverse(self._g))

    def det(self) -> sp.Expr:
        r"""The determinant $\det g$ (block-diagonal structure exploited; not simplified)."""
        return self._inverse_and_det()[1]

    def inverse(self) -> sp.ImmutableDenseMatrix:
        r"""The inverse metric $g^{ab}$ (immutable $n\times n$ matrix).

        Diagonal entries of diagonal blocks are $1/g_{aa}$; larger blocks use the adjugate over
        the determinant, so no simplification is needed.
        """
        return self._inverse_and_det()[0]

    def subs(self, mapping: Mapping[Any, Any]) -> Metric:
        """A new metric with `mapping` substituted into the components and derivatives
        evaluated (`doit`); use it to give a concrete `phi(x)` or numbers for parameters.

        Example:
            >>> import sympy as sp
            >>> x, a = sp.symbols("x a", positive=True)
            >>> Metric([[a**2]], [x]).subs({a: 2}).components
            Matrix([[4]])
        """
        g = self._g.subs(dict(mapping)).doit()
        return Metric(g, self._coords)

    # ----------------------------------------------------------------------- derivatives
    def _dg(self) -> list[list[list[sp.Expr]]]:
        """`dg[a][b][c]` = ∂_c g_ab, computed once per independent entry."""

        def build() -> Any:
            n, x, g = self.dim, self._coords, self._g
            out = nested((n, n, n))
            for a in range(n):
                for b in range(a, n):
                    if is_zero(g[a, b]):
                        continue
                    free = g[a, b].free_symbols
                    for c in range(n):
                        if x[c] not in free:
                            continue
                        d = sp.diff(g[a, b], x[c])
                        out[a][b][c] = d
                        out[b][a][c] = d
            return out

        return self._cached("_dg", build)

    def _gamma1(self) -> list[list[list[sp.Expr]]]:
        def build() -> Any:
            n, dg = self.dim, self._dg()
            out = nested((n, n, n))
            for a in range(n):
                for b in range(n):
                    for c in range(b, n):
                        s = dg[a][c][b] + dg[a][b][c] - dg[b][c][a]
                        if not is_zero(s):
                            s = _HALF * s
                        out[a][b][c] = s
                        out[a][c][b] = s
            return out

        return self._cached("_gamma1", build)

    def christoffel_first_kind(self) -> sp.ImmutableDenseNDimArray:
        r"""Christoffel symbols of the first kind, `[a, b, c]` $=\Gamma_{abc} = g_{ad}
        \Gamma^d{}_{bc} = \tfrac12(\partial_b g_{ac} + \partial_c g_{ab} - \partial_a g_{bc})$.

        Returns:
            SymPy array of shape $(n, n, n)$, symmetric in the last two indices.
        """
        n = self.dim
        return self._cached("christoffel_first_kind", lambda: freeze(self._gamma1(), (n,) * 3))

    def _gamma(self) -> list[list[list[sp.Expr]]]:
        def build() -> Any:
            n, g1, gi = self.dim, self._gamma1(), self.inverse()
            out = nested((n, n, n))
            for a in range(n):
                for b in range(n):
                    for c in range(b, n):
                        s = dot((gi[a, d], g1[d][b][c]) for d in range(n))
                        out[a][b][c] = s
                        out[a][c][b] = s
            return out

        return self._cached("_gamma", build)

    def christoffel(self) -> sp.ImmutableDenseNDimArray:
        r"""Christoffel symbols of the second kind, `[a, b, c]` $=\Gamma^a{}_{bc}$.

        $$\Gamma^a{}_{bc} = \tfrac12 g^{ad}(\partial_b g_{dc} + \partial_c g_{db}
        - \partial_d g_{bc})$$

        Returns:
            SymPy array of shape $(n, n, n)$, symmetric in the last two indices.

        Example:
            >>> import sympy as sp
            >>> r, th = sp.symbols("r theta", positive=True)
            >>> Metric(sp.diag(1, r**2), [r, th]).christoffel()[0, 1, 1]   # polar coordinates
            -r
        """
        n = self.dim
        return self._cached("christoffel", lambda: freeze(self._gamma(), (n,) * 3))

    # ------------------------------------------------------------------------- curvature
    def _riemann(self) -> list[list[list[list[sp.Expr]]]]:
        def build() -> Any:
            n, x, G = self.dim, self._coords, self._gamma()
            out = nested((n, n, n, n))
            nz = [[[e for e in range(n) if not is_zero(G[a][c][e])] for c in range(n)]
                  for a in range(n)]
            free = {}
            dG: dict[tuple[int, int, int, int], sp.Expr] = {}

            def deriv(a: int, b: int, c: int, f: int) -> sp.Expr:
                # ∂_f Γ^a_bc, computed once per independent (a, {b, c}, f)
                key = (a, min(b, c), max(b, c), f)
                if key not in dG:
                    e = G[a][b][c]
                    if key[:3] not in free:
                        free[key[:3]] = e.free_symbols
                    dG[key] = sp.diff(e, x[f]) if x[f] in free[key[:3]] else ZERO
                return dG[key]

            for a in range(n):
                for b in range(n):
                    for c in range(n):
                        for d in range(c + 1, n):
                            terms = []
                            if not is_zero(G[a][d][b]):
                                t1 = deriv(a, d, b, c)
                                if not is_zero(t1):
                                    terms.append(t1)
                            if not is_zero(G[a][c][b]):
                                t2 = deriv(a, c, b, d)
                                if not is_zero(t2):
                                    terms.append(-t2)
                            for e in nz[a][c]:
                                if not is_zero(G[e][d][b]):
                                    terms.append(G[a][c][e] * G[e][d][b])
                            for e in nz[a][d]:
                                if not is_zero(G[e][c][b]):
                                    terms.append(-G[a][d][e] * G[e][c][b])
                            s = sp.Add(*terms) if terms else ZERO
                            out[a][b][c][d] = s
                            out[a][b][d][c] = -s
            return out

        return self._cached("_riemann", build)

    def riemann(self) -> sp.ImmutableDenseNDimArray:
        r"""The Riemann tensor, `[a, b, c, d]` $= R^a{}_{bcd}$.

        $$R^a{}_{bcd} = \partial_c \Gamma^a{}_{db} - \partial_d \Gamma^a{}_{cb}
        + \Gamma^a{}_{ce}\Gamma^e{}_{db} - \Gamma^a{}_{de}\Gamma^e{}_{cb}$$

        Only the components with $c < d$ are computed; the others follow from antisymmetry.

        Returns:
            SymPy array of shape $(n, n, n, n)$.
        """
        n = self.dim
        return self._cached("riemann", lambda: freeze(self._riemann(), (n,) * 4))

    def _riemann_lowered(self) -> Any:
        def build() -> Any:
            n, g, R = self.dim, self._g, self._riemann()
            out = nested((n, n, n, n))
            for a in range(n):
                for b in range(n):
                    for c in range(n):
                        for d in range(c + 1, n):
                            s = dot((g[a, e], R[e][b][c][d]) for e in range(n))
                            out[a][b][c][d] = s
                            out[a][b][d][c] = -s
            return out

        return self._cached("_riemann_lowered", build)

    def riemann_lowered(self) -> sp.ImmutableDenseNDimArray:
        r"""The Riemann tensor with all indices down, `[a, b, c, d]` $= R_{abcd} = g_{ae}
        R^e{}_{bcd}$.

        Returns:
            SymPy array of shape $(n, n, n, n)$; $R_{abcd} = -R_{bacd} = -R_{abdc} = R_{cdab}$.
        """
        n = self.dim
        return self._cached("riemann_lowered", lambda: freeze(self._riemann_lowered(), (n,) * 4))

    def _ricci(self) -> Any:
        def build() -> Any:
            n, R = self.dim, self._riemann()
            out = nested((n, n))
            for b in range(n):
                for d in range(b, n):
                    terms = [R[a][b][a][d] for a in range(n) if not is_zero(R[a][b][a][d])]
                    s = sp.Add(*terms) if terms else ZERO
                    out[b][d] = s
                    out[d][b] = s
            return out

        return self._cached("_ricci", build)

    def ricci(self) -> sp.ImmutableDenseNDimArray:
        r"""The Ricci tensor, `[b, d]` $= R_{bd} = R^a{}_{bad}$ (symmetric).

        With this sign the unit 2-sphere has $R_{bd} = g_{bd}$ and scalar curvature $+2$.

        Returns:
            SymPy array of shape $(n, n)$.
        """
        n = self.dim
        return self._cached("ricci", lambda: freeze(self._ricci(), (n, n)))

    def ricci_scalar(self) -> sp.Expr:
        r"""The scalar curvature $R = g^{bd} R_{bd}$ (SymPy expression).

        Example:
            >>> import sympy as sp
            >>> th, ph = sp.symbols("theta phi")
            >>> sp.simplify(Metric(sp.diag(1, sp.sin(th) ** 2), [th, ph]).ricci_scalar())
            2
        """

        def build() -> sp.Expr:
            n, gi, Ric = self.dim, self.inverse(), self._ricci()
            return dot((gi[b, d], Ric[b][d]) for b in range(n) for d in range(n))

        return self._cached("ricci_scalar", build)

    def einstein(self) -> sp.ImmutableDenseNDimArray:
        r"""The Einstein tensor, `[a, b]` $= G_{ab} = R_{ab} - \tfrac12 R g_{ab}$.

        Its trace is $g^{ab}G_{ab} = (1 - n/2) R$.

        Returns:
            SymPy array of shape $(n, n)$.
        """

        def build() -> Any:
            n, Ric, g, R = self.dim, self._ricci(), self._g, self.ricci_scalar()
            out = nested((n, n))
            for a in range(n):
                for b in range(a, n):
                    s = Ric[a][b]
                    if not (is_zero(g[a, b]) or is_zero(R)):
                        s = s - _HALF * R * g[a, b]
                    out[a][b] = s
                    out[b][a] = s
            return freeze(out, (n, n))

        return self._cached("einstein", build)

    def weyl(self) -> sp.ImmutableDenseNDimArray:
        r"""The Weyl tensor with all indices down, `[a, b, c, d]` $= C_{abcd}$ ($n \ge 3$).

        $$C_{abcd} = R_{abcd} - \frac{1}{n-2}\left(g_{ac}R_{bd} - g_{ad}R_{bc} - g_{bc}R_{ad}
        + g_{bd}R_{ac}\right) + \frac{R}{(n-1)(n-2)}\left(g_{ac}g_{bd} - g_{ad}g_{bc}\right)$$

        It has the symmetries of $R_{abcd}$, all its traces vanish, and it is zero for a
        conformally flat metric (identically so for $n = 3$).

        Raises:
            ValueError: $n < 3$ (the Weyl tensor is not defined by this formula there).

        References:
            Wald, *General Relativity* (1984), eq. (3.2.28).
        """
        n = self.dim
        if n < 3:
            raise ValueError(
                f"weyl: the Weyl tensor needs dimension n ≥ 3, this metric has n = {n}."
            )

        def build() -> Any:
            L, Ric, g, R = self._riemann_lowered(), self._ricci(), self._g, self.ricci_scalar()
            k1 = sp.Rational(1, n - 2)
            k2 = R / ((n - 1) * (n - 2))
            out = nested((n, n, n, n))
            # independent components a < b, c < d; the rest by antisymmetry (C_aacd = 0)
            for a, c in itertools.product(range(n), repeat=2):
                for b, d in itertools.product(range(a + 1, n), range(c + 1, n)):
                    t1 = dot(
                        [
                            (g[a, c], Ric[b][d]),
                            (-g[a, d], Ric[b][c]),
                            (-g[b, c], Ric[a][d]),
                            (g[b, d], Ric[a][c]),
                        ]
                    )
                    t2 = dot([(g[a, c], g[b, d]), (-g[a, d], g[b, c])])
                    s = L[a][b][c][d]
                    if not is_zero(t1):
                        s = s - k1 * t1
                    if not (is_zero(t2) or is_zero(R)):
                        s = s + k2 * t2
                    out[a][b][c][d] = s
                    out[a][b][d][c] = -s
                    out[b][a][c][d] = -s
                    out[b][a][d][c] = s
            return freeze(out, (n,) * 4)

        return self._cached("weyl", build)

    def kretschmann(self) -> sp.Expr:
        r"""The Kretschmann scalar $K = R_{abcd} R^{abcd}$.

        Example: for Schwarzschild $K = 48 M^2 / r^6$ (see
        [`schwarzschild`][infograv.symbolic.schwarzschild]).
        """

        def build() -> sp.Expr:
            # With antisymmetric index pairs p = (a<b), q = (c<d): L_pq = R_abcd and
            # A_pq = g^ac g^bd − g^ad g^bc (symmetric), so R^abcd = (A L A)_pq and
            # K = 4 Σ_pq L_pq (A L A)_pq = 4 tr(L A L A) = 4 Σ_pq B_pq B_qp with B = L A.
            n, gi, L = self.dim, self.inverse(), self._riemann_lowered()
            pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
            A = [
                [dot([(gi[a, c], gi[b, d]), (-gi[a, d], gi[b, c])]) for (c, d) in pairs]
                for (a, b) in pairs
            ]
            Lp = [[L[a][b][c][d] for (c, d) in pairs] for (a, b) in pairs]
            m = len(pairs)
            B = [[dot((Lp[p][r], A[r][q]) for r in range(m)) for q in range(m)]
                 for p in range(m)]
            return 4 * dot((B[p][q], B[q][p]) for p in range(m) for q in range(m))

        return self._cached("kretschmann", build)

    # ------------------------------------------------------------------- geodesics, Δ
    def geodesic_equations(self, parameter: sp.Symbol | None = None) -> GeodesicEquations:
        r"""Geodesic equations $\ddot x^a = -\Gamma^a{}_{bc}\dot x^b \dot x^c$.

        Arguments:
            parameter: the curve parameter $\lambda$ (default `Symbol("lambda")`); it only
                appears in [`GeodesicEquations.odes`][infograv.symbolic.GeodesicEquations.odes].

        Returns:
            [`GeodesicEquations`][infograv.symbolic.GeodesicEquations]: the accelerations as
            expressions of the coordinates and the velocity symbols
            (`velocity_symbol(x)`, printed $\dot x$).

        Example:
            >>> import sympy as sp
            >>> r, th = sp.symbols("r theta", positive=True)
            >>> eqs = Metric(sp.diag(1, r**2), [r, th]).geodesic_equations()
            >>> eqs.accelerations[0]
            r*thetadot**2
        """
        lam = parameter if parameter is not None else sp.Symbol("lambda")
        n, G = self.dim, self._gamma()
        v = tuple(velocity_symbol(c) for c in self._coords)
        acc = []
        for a in range(n):
            terms = []
            for b in range(n):
                for c in range(b, n):
                    if is_zero(G[a][b][c]):
                        continue
                    k = 1 if b == c else 2
                    terms.append(-k * G[a][b][c] * v[b] * v[c])
            acc.append(sp.Add(*terms) if terms else ZERO)
        return GeodesicEquations(self._coords, v, sp.ImmutableDenseMatrix(n, 1, acc), lam)

    def lagrangian(self, potential: Any = 0) -> sp.Expr:
        r"""The Lagrangian $L = \tfrac12 g_{ab}\dot x^a \dot x^b - V(x)$ in the velocity symbols."""
        n, g = self.dim, self._g
        v = [velocity_symbol(c) for c in self._coords]
        kin = dot((g[a, b], v[a] * v[b]) for a in range(n) for b in range(n))
        return _HALF * kin - sp.sympify(potential)

    def lagrangian_equations(
        self, potential: Any = 0, parameter: sp.Symbol | None = None
    ) -> GeodesicEquations:
        r"""Equations of motion of $L = \tfrac12 g_{ab}\dot x^a\dot x^b - V(x)$ (Euler–Lagrange).

        $$\frac{d}{d\lambda}\frac{\partial L}{\partial \dot x^a} = \frac{\partial L}{\partial x^a}
        \;\Rightarrow\; H_{ab}\ddot x^b = \frac{\partial L}{\partial x^a}
        - \frac{\partial^2 L}{\partial \dot x^a \partial x^c}\dot x^c,\quad
        H_{ab} = \frac{\partial^2 L}{\partial \dot x^a\partial\dot x^b}$$

        derived by differentiating $L$ (not from the Christoffel symbols). With $V = 0$ the
        result equals [`geodesic_equations`][infograv.symbolic.Metric.geodesic_equations]; with
        $V \ne 0$ it is Newtonian motion in the potential on the curved space.

        Arguments:
            potential: $V(x)$, a SymPy expression in the coordinates (and parameters).
            parameter: the curve parameter (default `Symbol("lambda")`).

        Returns:
            [`GeodesicEquations`][infograv.symbolic.GeodesicEquations].
        """
        lam = parameter if parameter is not None else sp.Symbol("lambda")
        n, x = self.dim, self._coords
        v = [velocity_symbol(c) for c in x]
        L = self.lagrangian(potential)
        p = [sp.diff(L, vi) for vi in v]
        H = sp.Matrix(n, n, lambda a, b: sp.diff(p[a], v[b]))
        rhs = [
            sp.diff(L, x[a]) - dot((sp.diff(p[a], x[c]), v[c]) for c in range(n))
            for a in range(n)
        ]
        Hinv, _ = block_inverse(H)
        acc = [dot((Hinv[a, b], rhs[b]) for b in range(n)) for a in range(n)]
        return GeodesicEquations(x, tuple(v), sp.ImmutableDenseMatrix(n, 1, acc), lam)

    def laplace_beltrami(self, f: Any) -> sp.Expr:
        r"""The Laplace–Beltrami operator $\Delta_g f = |g|^{-1/2}\partial_a(|g|^{1/2}
        g^{ab}\partial_b f)$.

        Computed as $\partial_a(g^{ab}\partial_b f) + \Gamma^c{}_{ca} g^{ab}\partial_b f$, which is
        the same operator (since $\Gamma^c{}_{ca} = \partial_a \ln\sqrt{|g|}$) and needs no
        square root or absolute value, so it holds for any signature.

        Example:
            >>> import sympy as sp
            >>> x, y = sp.symbols("x y")
            >>> Metric(sp.eye(2), [x, y]).laplace_beltrami(x**2 * y)
            2*y
        """
        f = sp.sympify(f)
        n, x, gi, G = self.dim, self._coords, self.inverse(), self._gamma()
        df = [sp.diff(f, xi) for xi in x]
        grad = [dot((gi[a, b], df[b]) for b in range(n)) for a in range(n)]
        trace = [sp.Add(*[G[c][c][a] for c in range(n)]) for a in range(n)]
        div = [sp.diff(grad[a], x[a]) for a in range(n)]
        return sp.Add(*div) + dot((trace[a], grad[a]) for a in range(n))

    # ------------------------------------------------------------------------------ LaTeX
    def latex(
        self,
        quantity: str = "christoffel",
        *,
        simplify: float | int | None = None,
    ) -> str:
        r"""Markdown with one display equation per independent nonzero component.

        Arguments:
            quantity: one of `"metric"`, `"inverse"`, `"christoffel"`,
                `"christoffel_first_kind"`, `"riemann"`, `"riemann_lowered"`, `"ricci"`,
                `"ricci_scalar"`, `"einstein"`, `"weyl"`, `"kretschmann"`.
            simplify: if given, a per-component time budget in seconds for
                [`simplified`][infograv.symbolic.simplified] before printing; `None` prints
                the unsimplified expressions.

        Returns:
            A Markdown string: a heading line and `$$ … $$` blocks such as
            `$$\Gamma^{r}{}_{t t} = …$$`, or a line saying that all components are zero.

        Raises:
            ValueError: unknown `quantity`.

        Example:
            >>> import sympy as sp
            >>> th, ph = sp.symbols("theta phi")
            >>> print(Metric(sp.diag(1, sp.sin(th)**2), [th, ph]).latex("ricci"))
            **Ricci tensor** $R_{a b}$ (nonzero, $a \le b$)
            <BLANKLINE>
            $$R_{\theta \theta} = 1$$
            <BLANKLINE>
            $$R_{\phi \phi} = \sin^{2}{\left(\theta \right)}$$
        """
        from ._latex import latex_quantity

        return latex_quantity(self, quantity, simplify=simplify)

