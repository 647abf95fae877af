"""LaTeX / Markdown export of a metric's tensors (independent nonzero components only)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sympy as sp

from ._simplify import simplified
from ._tensor import is_zero

if TYPE_CHECKING:
    from ._metric import Metric

__all__ = ["latex_quantity", "independent_components", "components_markdown", "QUANTITIES"]


def _sym_pairs(n: int) -> list[tuple[int, ...]]:
    return [(a, b) for a in range(n) for b in range(a, n)]


def _christoffel_idx(n: int) -> list[tuple[int, ...]]:
    return [(a, b, c) for a in range(n) for b in range(n) for c in range(b, n)]


def _riemann_up_idx(n: int) -> list[tuple[int, ...]]:
    return [(a, b, c, d) for a, b, c in itertools.product(range(n), repeat=3)
            for d in range(c + 1, n)]


def _riemann_low_idx(n: int) -> list[tuple[int, ...]]:
    # a < b, c < d, (a, b) ≤ (c, d): the independent components up to pair symmetry
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    return [p + q for i, p in enumerate(pairs) for q in pairs[i:]]


# name → (title, symbol pattern, index positions ('u'/'l'), getter, independent indices)
QUANTITIES: dict[str, tuple[str, str, str, Callable[[Metric], Any], Callable[[int], Any]]] = {
    "metric": ("Metric", "g", "ll", lambda g: g.components, _sym_pairs),
    "inverse": ("Inverse metric", "g", "uu", lambda g: g.inverse(), _sym_pairs),
    "christoffel": (
        "Christoffel symbols", r"\Gamma", "ull", lambda g: g.christoffel(), _christoffel_idx
    ),
    "christoffel_first_kind": (
        "Christoffel symbols of the first kind", r"\Gamma", "lll",
        lambda g: g.christoffel_first_kind(), _christoffel_idx,
    ),
    "riemann": ("Riemann tensor", "R", "ulll", lambda g: g.riemann(), _riemann_up_idx),
    "riemann_lowered": (
        "Riemann tensor", "R", "llll", lambda g: g.riemann_lowered(), _riemann_low_idx
    ),
    "ricci": ("Ricci tensor", "R", "ll", lambda g: g.ricci(), _sym_pairs),
    "einstein": ("Einstein tensor", "G", "ll", lambda g: g.einstein(), _sym_pairs),
    "weyl": ("Weyl tensor", "C", "llll", lambda g: g.weyl(), _riemann_low_idx),
    "ricci_scalar": ("Ricci scalar", "R", "", lambda g: g.ricci_scalar(), lambda n: [()]),
    "kretschmann": (
        "Kretschmann scalar", "K", "", lambda g: g.kretschmann(), lambda n: [()]
    ),
}

_RULES = {
    "christoffel": "b \\le c",
    "christoffel_first_kind": "b \\le c",
    "riemann": "c < d",
    "riemann_lowered": "a < b,\\ c < d,\\ (a,b) \\le (c,d)",
    "weyl": "a < b,\\ c < d,\\ (a,b) \\le (c,d)",
    "metric": "a \\le b",
    "inverse": "a \\le b",
    "ricci": "a \\le b",
    "einstein": "a \\le b",
}


def index_tex(symbol: str, positions: str, names: Sequence[str]) -> str:
    r"""`\Gamma^{a}{}_{b c}`-style LaTeX for `symbol` with indices `names` at `positions`."""
    out = symbol
    groups: list[tuple[str, list[str]]] = []
    for pos, name in zip(positions, names):
        if groups and groups[-1][0] == pos:
            groups[-1][1].append(name)
        else:
            groups.append((pos, [name]))
    for i, (pos, items) in enumerate(groups):
        glue = "^" if pos == "u" else "_"
        if i > 0:
            out += "{}"
        out += glue + "{" + " ".join(items) + "}"
    return out


def independent_components(
    metric: Metric, quantity: str, *, simplify: float | int | None = None
) -> tuple[str, dict[tuple[int, ...], sp.Expr]]:
    """The Markdown heading and the independent nonzero components of `quantity`.

    Components are listed once per symmetry class (see `_RULES`), optionally passed through
    [`simplified`][infograv.symbolic.simplified] with a per-component budget of `simplify`
    seconds; those that are (or simplify to) zero are left out.

    Raises:
        ValueError: unknown `quantity`.
    """
    if quantity not in QUANTITIES:
        raise ValueError(
            f"quantity: unknown {quantity!r}; choose one of {', '.join(sorted(QUANTITIES))}."
        )
    title, sym, pos, get, indices = QUANTITIES[quantity]
    value = get(metric)
    generic = "abcd"[: len(pos)]
    head = f"**{title}** ${index_tex(sym, pos, list(generic))}$" if pos else f"**{title}** ${sym}$"
    if quantity in _RULES:
        head += f" (nonzero, ${_RULES[quantity]}$)"
    comps: dict[tuple[int, ...], sp.Expr] = {}
    for idx in indices(metric.dim):
        e = value[idx] if idx else value
        if is_zero(e):
            continue
        if simplify is not None:
            e = simplified(e, simplify)
            if is_zero(e):
                continue
        comps[tuple(idx)] = e
    return head, comps


def components_markdown(
    metric: Metric, quantity: str, head: str, comps: dict[tuple[int, ...], sp.Expr]
) -> str:
    """Markdown for `independent_components`' output: the heading and one equation each."""
    _, sym, pos, _, _ = QUANTITIES[quantity]
    names = [sp.latex(c) for c in metric.coords]
    lines = [head, ""]
    for idx, e in comps.items():
        lhs = index_tex(sym, pos, [names[i] for i in idx]) if idx else sym
        lines += [f"$${lhs} = {sp.latex(e)}$$", ""]
    if not comps:
        lines += ["All components are zero.", ""]
    return "\n".join(lines).rstrip("\n")


def latex_quantity(metric: Metric, quantity: str, *, simplify: float | int | None = None) -> str:
    """See [`Metric.latex`][infograv.symbolic.Metric.latex]."""
    head, comps = independent_components(metric, quantity, simplify=simplify)
    return components_markdown(metric, quantity, head, comps)
