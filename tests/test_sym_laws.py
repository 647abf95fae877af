"""Laws of Riemannian geometry, written once and run over every predefined metric.

Each law is checked numerically at random points (the tensors are not simplified, so exact
zero tests would need `simplify`). The numbers come from `sympy.lambdify` (NumPy, float64) of
the unsimplified expressions; residuals are compared with the size of the terms that cancel:
|residual| ≤ 1e-9 · (1 + scale). Reason for 1e-9: float64 round-off (1e-16) amplified by the
cancellation of up to ~10^4 unsimplified terms (the Kerr curvature) stays below 1e-10.
"""

import itertools

import numpy as np
import pytest
import sympy as sp

from infograv import symbolic as S

x1, x2, x3 = sp.symbols("x1 x2 x3")

# (id, factory, ranges by symbol name; default (0.3, 0.9))
CASES = [
    ("euclidean", lambda: S.euclidean(3), {}),
    ("sphere2", lambda: S.sphere(2), {"a": (0.5, 2.0)}),
    ("sphere4", lambda: S.sphere(4), {"a": (0.5, 2.0)}),
    ("hyperbolic-halfspace3", lambda: S.hyperbolic(3), {"y": (0.5, 2.0)}),
    ("hyperbolic-ball3", lambda: S.hyperbolic(3, model="ball"), {"x": (-0.5, 0.5)}),
    ("schwarzschild", S.schwarzschild, {"M": (0.5, 1.0), "r": (3.0, 6.0)}),
    ("kerr", S.kerr, {"M": (0.5, 1.0), "a": (0.1, 0.45), "r": (3.0, 6.0)}),
    ("tangherlini5", lambda: S.tangherlini(5), {"r_s": (0.5, 1.0), "r": (1.5, 3.0)}),
    ("tangherlini6", lambda: S.tangherlini(6), {"r_s": (0.5, 1.0), "r": (1.5, 3.0)}),
    (
        "weak-field3",
        lambda: S.weak_field(3, phi=-sp.exp(-(x1**2 + x2**2 + x3**2) / 2) / 4),
        {"c": (2.0, 3.0), "x": (-1.0, 1.0)},
    ),
    (
        "conformal3",
        lambda: S.conformally_flat(
            3, phi=-sp.exp(-((x1 - 0.5) ** 2 + x2**2 + x3**2)) - sp.exp(-(x1**2 + x3**2)) / 2
        ),
        {"x": (-1.0, 1.0)},
    ),
    ("jacobi2", lambda: S.jacobi(2, U=x1**2 / 2 + x2**4 / 4 + x1 * x2 / 5), {"E": (3.0, 4.0)}),
]

# every CLI name must be exercised by at least one case above
_COVERED = {
    "euclidean": "euclidean", "sphere": "sphere2", "hyperbolic": "hyperbolic-halfspace3",
    "schwarzschild": "schwarzschild", "kerr": "kerr", "tangherlini": "tangherlini5",
    "weak-field": "weak-field3", "conformal": "conformal3", "jacobi": "jacobi2",
}

TOL = 1e-9


def test_every_predefined_metric_is_covered():
    assert set(_COVERED) == set(S.PREDEFINED)
    assert set(_COVERED.values()) <= {c[0] for c in CASES}


def _range(sym, ranges):
    name = sym.name
    if name in ranges:
        return ranges[name]
    if name.rstrip("0123456789") in ranges:
        return ranges[name.rstrip("0123456789")]
    return (0.3, 0.9)


class Numeric:
    """All tensors of a metric evaluated at one point, as NumPy float64 arrays."""

    def __init__(self, values: dict, n: int):
        for k, v in values.items():
            setattr(self, k, v)
        self.R = float(self.R[0])
        self.K = float(self.K[0])
        self.n = n


def _evaluator(g: S.Metric):
    """Compile every tensor of `g` once (lambdify with CSE); return `(symbols, f)`."""
    n = g.dim
    syms = list(g.coords) + list(g.parameters)
    dg = sp.Array(
        [[[sp.diff(g.components[a, b], c) for c in g.coords] for b in range(n)]
         for a in range(n)]
    )
    parts = {
        "g": sp.Array(g.components),
        "gi": sp.Array(g.inverse()),
        "dg": dg,
        "Gam": g.christoffel(),
        "Gam1": g.christoffel_first_kind(),
        "Rup": g.riemann(),
        "Rlo": g.riemann_lowered(),
        "Ric": g.ricci(),
        "R": sp.Array([g.ricci_scalar()]),
        "Ein": g.einstein(),
        "K": sp.Array([g.kretschmann()]),
    }
    if n >= 3:
        parts["C"] = g.weyl()
    flat = [e for k in parts for e in sp.flatten(parts[k].tolist())]
    fn = sp.lambdify(syms, flat, modules="numpy", cse=True)

    def evaluate(vals):
        out = np.asarray(fn(*vals), dtype=float)
        values, i = {}, 0
        for k, arr in parts.items():
            size = int(np.prod(arr.shape))
            values[k] = out[i:i + size].reshape(arr.shape)
            i += size
        return Numeric(values, n)

    return syms, evaluate


@pytest.fixture(scope="module")
def numerics():
    """Two random points per case (fixed seed), computed once for all laws."""
    rng = np.random.default_rng(20250429)
    out = {}
    for name, factory, ranges in CASES:
        g = factory()
        syms, evaluate = _evaluator(g)
        pts = [evaluate([rng.uniform(*_range(s, ranges)) for s in syms]) for _ in range(2)]
        out[name] = (g, pts)
    return out


def _assert_small(residual, scale, what):
    residual = np.max(np.abs(residual))
    scale = float(np.max(np.abs(scale)))
    assert residual <= TOL * (1.0 + scale), f"{what}: residual {residual:.3g} at scale {scale:.3g}"


IDS = [c[0] for c in CASES]


# ---------------------------------------------------------------------------- the laws
def law_christoffel_symmetric(g, N):
    G = g.christoffel()
    n = g.dim
    for a, b, c in itertools.product(range(n), repeat=3):
        assert G[a, b, c] == G[a, c, b]  # structurally identical, by construction
    _assert_small(N.Gam - N.Gam.transpose(0, 2, 1), N.Gam, "Γ^a_bc − Γ^a_cb")


def law_metric_compatible(g, N):
    # ∇_c g_ab = ∂_c g_ab − Γ^e_ca g_eb − Γ^e_cb g_ae = 0
    nab = (N.dg - np.einsum("eca,eb->abc", N.Gam, N.g) - np.einsum("ecb,ae->abc", N.Gam, N.g))
    _assert_small(nab, N.dg, "∇g")
    _assert_small(np.einsum("ad,dbc->abc", N.g, N.Gam) - N.Gam1, N.Gam1, "g·Γ − Γ_abc")


def law_riemann_symmetries(g, N):
    L = N.Rlo
    _assert_small(L + L.transpose(1, 0, 2, 3), L, "R_abcd + R_bacd")
    _assert_small(L + L.transpose(0, 1, 3, 2), L, "R_abcd + R_abdc")
    _assert_small(L - L.transpose(2, 3, 0, 1), L, "R_abcd − R_cdab")
    _assert_small(np.einsum("ae,ebcd->abcd", N.g, N.Rup) - L, L, "lowering")


def law_first_bianchi(g, N):
    R = N.Rup
    cyc = R + R.transpose(0, 2, 3, 1) + R.transpose(0, 3, 1, 2)
    _assert_small(cyc, R, "R^a_bcd + R^a_cdb + R^a_dbc")


def law_ricci(g, N):
    _assert_small(N.Ric - N.Ric.T, N.Ric, "R_bd − R_db")
    _assert_small(N.Ric - np.einsum("abad->bd", N.Rup), N.Rup, "R_bd − R^a_bad")
    _assert_small(N.R - np.einsum("bd,bd->", N.gi, N.Ric), N.Ric, "R − g^bd R_bd")


def law_einstein_trace(g, N):
    tr = np.einsum("ab,ab->", N.gi, N.Ein)
    _assert_small(tr - (1 - N.n / 2) * N.R, N.R, "g^ab G_ab − (1 − n/2) R")


def law_kretschmann(g, N):
    up = np.einsum("ae,bf,cg,dh,efgh->abcd", N.gi, N.gi, N.gi, N.gi, N.Rlo)
    K = np.einsum("abcd,abcd->", N.Rlo, up)
    _assert_small(N.K - K, abs(K), "K − R_abcd R^abcd")


def law_weyl_traceless(g, N):
    if N.n < 3:
        with pytest.raises(ValueError):
            g.weyl()
        return
    C = N.C
    _assert_small(np.einsum("ac,abcd->bd", N.gi, C), N.Rlo, "g^ac C_abcd")
    _assert_small(C + C.transpose(1, 0, 2, 3), C, "C_abcd + C_bacd")
    _assert_small(C - C.transpose(2, 3, 0, 1), C, "C_abcd − C_cdab")


LAWS = [
    law_christoffel_symmetric,
    law_metric_compatible,
    law_riemann_symmetries,
    law_first_bianchi,
    law_ricci,
    law_einstein_trace,
    law_kretschmann,
    law_weyl_traceless,
]


@pytest.mark.parametrize("law", LAWS, ids=[f.__name__ for f in LAWS])
@pytest.mark.parametrize("case", IDS)
def test_law(numerics, case, law):
    g, points = numerics[case]
    for N in points:
        law(g, N)


def test_laws_detect_a_wrong_tensor(numerics):
    """The helpers can fail: a Riemann tensor with a flipped sign term breaks Bianchi."""
    _, points = numerics["sphere4"]
    N = points[0]

    class Broken:
        pass

    b = Broken()
    b.Rup = N.Rup.copy()
    b.Rup[0, 1, 0, 1] += 0.5
    with pytest.raises(AssertionError):
        law_first_bianchi(None, b)
