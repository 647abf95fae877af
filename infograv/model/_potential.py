r"""Potentials compiled from SymPy, with the parameters as differentiable leaves.

One mechanism builds every [`Potential`][infograv.model.Potential]: a SymPy expression
$\Phi(r; M, \theta)$ in the radius $r$, the source mass $M$ and named parameters $\theta$ is
prepared once (rewritten in $r^2$ where that is exact, its behaviour at $r = 0$ probed) and
compiled with [`infograv.to_jax`][infograv.to_jax]. The built-in kernels
(`Potential("plummer", d)`) take their expression from
[`infograv.symbolic.kernels`][infograv.symbolic.kernels]; a user's kernel comes from an
expression string ([`Potential.from_expr`][infograv.model.Potential.from_expr]), a TOML file
([`Potential.from_toml`][infograv.model.Potential.from_toml]) or a field equation
([`Potential.from_operator`][infograv.model.Potential.from_operator]).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float

from .._compile import SymbolicFunction, to_jax
from .._parse import ExpressionError, parse_expression, read_toml
from ..symbolic import kernels as _k

__all__ = ["Potential", "KERNEL_NAMES"]

KERNEL_NAMES = _k.KERNEL_NAMES

_DEFAULTS = {"G": 1.0, "epsilon": 0.1, "mu": 1.0, "sigma": 1.0, "k": 1.0}

_R2 = sp.Symbol("r2", positive=True)
_LAP = sp.Symbol("lap")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
_RESERVED = {"r", "M", "r2", "lap"}
_MAX_OPERATOR_DEGREE = 4

_TOML_KEYS = {
    "name": "the kernel's name (a string)",
    "potential": "Phi(r) as an expression in r, M and the parameters",
    "operator": "a field operator, a polynomial in lap (the radial Laplacian), e.g. 'lap - mu**2'",
    "d": "the dimension (an integer >= 1; required with 'operator')",
    "r_min": "the clamp radius of a kernel singular at r = 0 (a positive number)",
    "description": "free text",
    "params": "a table of initial parameter values",
}


def _fractional_in(expr: sp.Expr, s: sp.Symbol) -> bool:
    """Whether `expr` contains `s` raised to a non-integer power (i.e. is not smooth at s=0)."""
    return any(p.base == s and not p.exp.is_integer for p in expr.atoms(sp.Pow))


_INT32 = 2**31 - 1


def _float_large_constants(expr: sp.Expr) -> sp.Expr:
    """Rationals beyond int32 in sums and products as 20-digit Floats.

    The printed code would otherwise hold integer literals (e.g. 15! in the sphere area of
    d = 32) that JAX cannot convert without 64-bit integers; the value is unchanged to float64
    precision. Function arguments and exponents are left exact: a Float there would make SymPy
    evaluate `exp(1e12)` numerically when the expression is rebuilt.
    """
    if isinstance(expr, sp.Rational):
        return sp.Float(expr, 20) if abs(expr.p) > _INT32 or expr.q > _INT32 else expr
    if isinstance(expr, (sp.Add, sp.Mul)):
        return expr.func(*[_float_large_constants(a) for a in expr.args], evaluate=False)
    if isinstance(expr, sp.Pow):
        return sp.Pow(_float_large_constants(expr.base), expr.exp, evaluate=False)
    return expr


@functools.lru_cache(maxsize=256)
def _prepare(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Symbol]:
    """`(expr in r, expr in r2, the argument to compile)`: `r2` when smooth in `r2 = r^2`.

    The substitution `r = sqrt(r2)` is exact (`r` is positive). Kernels that depend on `r^2`
    only (Plummer, Gaussian, harmonic, a log well) then need no square root per token and have a
    finite gradient at `r = 0`.
    """
    expr = _float_large_constants(expr)
    expr_s = expr.subs(_k.r, sp.sqrt(_R2))
    if not _fractional_in(expr_s, _R2) and _k.r not in expr_s.free_symbols:
        return expr, expr_s, _R2
    return expr, expr_s, _k.r


def _concrete(value: Any) -> float | None:
    """`float(value)` for a concrete number, `None` for a tracer."""
    if isinstance(value, jax.core.Tracer):
        return None
    return float(np.asarray(value))


_X = sp.Symbol("x")  # no assumptions: differentiating in it asks SymPy nothing about signs


def _numeric(expr: sp.Expr, values: Mapping[str, Any]) -> sp.Expr:
    """`expr` with M = 1, the parameters at their (concrete, else 1) values, r -> `_X`."""
    syms = sorted(expr.free_symbols - {_k.r, _k.M}, key=lambda s: s.name)
    probe = {s: sp.Float(1.0 if (v := _concrete(values[s.name])) is None else v) for s in syms}
    return expr.xreplace({**probe, _k.M: sp.Integer(1), _k.r: _X})


def _evaluate(f: sp.Expr, at: float) -> complex | None:
    """`f(at)` in NumPy float64 (SciPy for special functions), `None` when it raises."""
    special = f.has(sp.besselk, sp.erf)  # importing scipy.special costs ~0.5 s: only if needed
    modules = ["scipy", "numpy"] if special else ["numpy"]
    with np.errstate(all="ignore"):
        try:
            return complex(sp.lambdify(_X, f, modules=modules)(np.float64(at)))
        except (ZeroDivisionError, OverflowError, ValueError, TypeError, NameError):
            return None


def _finite_real(v: complex | None) -> bool:
    return v is not None and bool(np.isfinite(v.real)) and v.imag == 0


def _is_singular(expr: sp.Expr, values: Mapping[str, Any]) -> bool:
    r"""Whether $\Phi$ or $d\Phi/dr$ is not finite at $r = 0$ (M = 1, the given parameters).

    A numerical probe in NumPy/SciPy float64 of $\Phi$ and $\Phi'$ (no symbolic limit, whose
    cost grows fast with the expression, and no JAX compilation): NaN (e.g. $0\cdot\infty$)
    counts as singular, which is the safe side (the clamp keeps values and gradients finite).
    """
    key = tuple(sorted((n, 1.0 if (c := _concrete(v)) is None else c)
                       for n, v in values.items()))
    return _singular_at(expr, key)


@functools.lru_cache(maxsize=256)
def _singular_at(expr: sp.Expr, values: tuple[tuple[str, float], ...]) -> bool:
    at = _numeric(expr, dict(values))
    return not all(_finite_real(_evaluate(f, 0.0)) for f in (at, sp.diff(at, _X)))


@functools.lru_cache(maxsize=64)
def _builtin(name: str, d: int) -> tuple[sp.Expr, tuple[str, ...]]:
    """The built-in kernel `name` in `d` dimensions as a field of a source of mass M."""
    kern = _k.kernel(name, d)
    expr = kern.elementary()
    if _k.M not in expr.free_symbols:
        # per-unit-mass kernels (harmonic): a source of mass M has the field M * Phi
        expr = _k.M * expr
    params = tuple(s.name for s in sorted(expr.free_symbols - {_k.r, _k.M},
                                          key=lambda s: s.name))
    return expr, params


def _check_name(name: Any, where: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{where}: expected a name of 1-64 characters starting with a letter (letters, "
            f"digits, '_', '-', '.'), got {name!r}."
        )
    if name in KERNEL_NAMES:
        raise ValueError(
            f"{where}: {name!r} is a built-in kernel (Potential({name!r}, d)); choose another "
            f"name for a user kernel (built-ins: {', '.join(KERNEL_NAMES)})."
        )
    return name


def _check_params(params: Any, where: str = "params") -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: expected a mapping {{name: initial value}}, got "
                        f"{type(params).__name__}.")
    out: dict[str, Any] = {}
    for n, v in params.items():
        if not isinstance(n, str) or not n.isidentifier() or n.startswith("_") or n in _RESERVED:
            raise ValueError(
                f"{where}: {n!r} is not a valid parameter name (an identifier not starting "
                f"with '_', other than {', '.join(sorted(_RESERVED))})."
            )
        if isinstance(v, bool) or not (isinstance(v, (int, float, np.number)) or
                                       isinstance(v, (jax.Array, np.ndarray))):
            raise ValueError(f"{where}.{n}: expected a number, got {v!r}.")
        c = _concrete(v)
        if c is not None and (np.ndim(v) != 0 or not math.isfinite(c)):
            raise ValueError(f"{where}.{n}: expected a finite scalar, got {v!r}.")
        out[n] = v
    return out


def _check_r_min(r_min: Any) -> float:
    if isinstance(r_min, bool) or not isinstance(r_min, (int, float)) or not r_min > 0 \
            or not math.isfinite(r_min):
        raise ValueError(f"r_min: must be a positive finite number, got {r_min!r}.")
    return float(r_min)


def _check_dim(d: Any, required: bool) -> int | None:
    if d is None and not required:
        return None
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or int(d) < 1:
        raise ValueError(f"d: the dimension must be an integer >= 1, got {d!r}.")
    return int(d)


class Potential(eqx.Module):
    r"""The field $\Phi(r; M)$ of one source of information mass $M$, compiled from SymPy.

    Built-in kernels: `Potential(kernel, d, **params)` compiles
    [`infograv.symbolic.kernels.kernel(kernel, d)`][infograv.symbolic.kernels.kernel]; user
    kernels come from [`from_expr`][infograv.model.Potential.from_expr],
    [`from_toml`][infograv.model.Potential.from_toml] or
    [`from_operator`][infograv.model.Potential.from_operator]. Every one goes through the same
    preparation and [`infograv.to_jax`][infograv.to_jax]: the parameters are differentiable leaves
    in `fn.params` ([`with_params`][infograv.model.Potential.with_params] replaces them), and the
    source mass $M$ is an argument (so queries and context tokens of different masses share one
    compiled function). Superposition (docs/model/formalism.md §3) is the sum over sources,
    [`field`][infograv.model.Potential.field].

    An expression without $M$ (the harmonic kernel $\tfrac12 k r^2$, or a user's per-unit-mass
    kernel) is given the field $M\cdot\Phi$ for a source of mass $M$ (so $M = k = 1$ is the
    dot-product softmax, see `docs/model/choices.md`).

    Kernels that depend on $r^2$ only (Plummer, Gaussian, harmonic) are compiled as functions of
    $r^2$ (the exact substitution $r = \sqrt{r^2}$ done in SymPy), so no square root is taken per
    token and the gradient at $r = 0$ is finite (zero by symmetry); other smooth kernels use the
    double-`where` square root. A kernel is *singular* when $\Phi$ or $\Phi'$ is not finite at
    $r = 0$ (probed numerically at the initial parameters: Newton and Yukawa for $d \ge 2$, a
    power law $r^{-a}$); it is evaluated at $\max(r, r_{\min})$, a clamp applied to $r^2$, so the
    gradient is finite (zero inside $r_{\min}$).

    Arguments:
        kernel: `"newton"`, `"plummer"`, `"yukawa"`, `"gaussian"` or `"harmonic"`.
        d: the dimension of the semantic space.
        r_min: the clamp radius for singular kernels.
        **params: kernel parameters `G`, `epsilon`, `mu`, `sigma`, `k` (defaults 1, 0.1, 1, 1,
            1; only those the kernel uses are kept).

    Attributes:
        fn: the compiled $\Phi$ of (`r2` or `r`, `M`); `fn.params` are the parameters.
        kernel: the kernel's name (same as [`name`][infograv.model.Potential.name]).
        d: the dimension, or `None` for a user kernel that does not depend on it.
        expr: the SymPy expression $\Phi(r; M, \theta)$ that was compiled.
        origin: how it was given: `("kernel", "")` for a built-in, `("potential", text)` or
            `("operator", text)` for a user kernel (see
            [`to_dict`][infograv.model.Potential.to_dict]).
        singular: whether the clamp at `r_min` is applied.
        r_min: the clamp radius.

    Raises:
        ValueError: unknown `kernel` (listing the valid names), `d` < 1, non-positive parameters.
        TypeError: an unknown parameter name.

    Example:
        >>> import jax
        >>> phi = Potential("plummer", 3, G=1.0, epsilon=0.5)
        >>> round(float(phi(0.0, 2.0)), 6)   # -G M / eps
        -4.0
        >>> g = jax.grad(lambda p: p(1.0, 1.0))(phi)
        >>> round(float(g.fn.params["epsilon"]), 6)   # d/d eps of -1/sqrt(1 + eps^2)
        0.357771

    Reference: docs/model/formalism.md §3; Vyshnyvetska, arXiv:2504.20951.
    """

    fn: SymbolicFunction
    kernel: str = eqx.field(static=True)
    d: int | None = eqx.field(static=True)
    singular: bool = eqx.field(static=True)
    r_min: float = eqx.field(static=True)
    expr: sp.Expr = eqx.field(static=True)
    origin: tuple[str, str] = eqx.field(static=True)

    def __init__(self, kernel: str = "plummer", d: int | None = 2, *, r_min: float = 1e-6,
                 _expr: sp.Expr | None = None, _origin: tuple[str, str] = ("kernel", ""),
                 **params: Any):
        if _expr is None:
            if not isinstance(kernel, str) or kernel not in KERNEL_NAMES:
                raise ValueError(
                    f"kernel: unknown kernel {kernel!r}; valid names are "
                    f"{', '.join(KERNEL_NAMES)} (user kernels: Potential.from_expr, "
                    "Potential.from_toml, Potential.from_operator)."
                )
            dim = _check_dim(d, required=True)
            assert dim is not None
            expr, names = _builtin(kernel, dim)
            unknown = sorted(set(params) - set(_DEFAULTS))
            if unknown:
                raise TypeError(
                    f"params: unknown parameter(s) {', '.join(unknown)}; valid are "
                    f"{', '.join(_DEFAULTS)}."
                )
            values = {}
            for n in names:
                v = params.get(n, _DEFAULTS[n])
                c = _concrete(v)
                if c is not None and not c > 0:
                    raise ValueError(f"{n}: kernel parameters must be positive, got {v!r}.")
                values[n] = v
        else:
            # a user kernel, already parsed and checked by a classmethod
            expr, dim, values = _expr, d, dict(params)
            if _k.M not in expr.free_symbols:
                expr = _k.M * expr
        self.r_min = _check_r_min(r_min)
        expr_r, expr_s, arg = _prepare(expr)
        singular = _is_singular(expr_r, values)
        # the clamp of a singular kernel acts on r^2
        arg_expr = expr_s if singular or arg is _R2 else expr_r
        arg = _R2 if singular else arg
        symbols = {s.name: s for s in arg_expr.free_symbols}
        self.fn = to_jax(arg_expr, [arg, _k.M],
                         params={symbols[n]: values[n] for n in values if n in symbols})
        self.kernel = kernel
        self.d = dim
        self.singular = singular
        self.expr = expr
        self.origin = _origin

    # -- user kernels ---------------------------------------------------------------------

    @classmethod
    def from_expr(cls, expr: str | sp.Expr, params: Mapping[str, float], *, name: str,
                  d: int | None = None, r_min: float = 1e-6) -> Potential:
        r"""A user kernel $\Phi(r; M, \theta)$ from an expression in `r`, `M` and the parameters.

        A string is read by the restricted parser [`infograv._parse.parse_expression`][] (never
        `eval` or `sympify`): numbers, `r`, `M`, the names in `params`, `pi`, `E`,
        `+ - * / **` and the functions `exp`, `log`, `sqrt`, `sin`, `erf`, `besselk`, ...; the
        size bounds of that parser apply (length, depth, exponents). A SymPy expression (built
        in Python) is used as given, with its free symbols matched to `r`, `M` and `params` by
        name. The parameters become the differentiable leaves `fn.params` (any real value;
        the expression is compiled as written, no sign is assumed). Without `M`, a source of
        mass $M$ gets $M\cdot\Phi$.

        Arguments:
            expr: $\Phi$, e.g. `"G*M*log(1 + r**2/s**2)"`.
            params: `{name: initial value}` for every parameter in `expr` (and no others).
            name: the kernel's name (reported by [`name`][infograv.model.Potential.name]); not
                one of the built-in names.
            d: the dimension the kernel belongs to, if any (`None`: any dimension).
            r_min: clamp radius, used when $\Phi$ or $\Phi'$ is not finite at $r = 0$.

        Returns:
            A [`Potential`][infograv.model.Potential].

        Raises:
            ExpressionError: the expression is not in the parser's language (the message names
                the construct), or a size bound is exceeded.
            ValueError: a bad `name`, a parameter that is not in `expr` or is not a finite
                number, an expression that does not depend on `r`, or is not finite and real at
                $r = 1$ with the initial parameters.

        Example:
            >>> import jax
            >>> well = Potential.from_expr("G*M*log(1 + r**2/s**2)", {"G": 1.0, "s": 2.0},
            ...                            name="logwell")
            >>> well.name, well.param_names
            ('logwell', ('G', 's'))
            >>> round(float(well(2.0, 1.0)), 6)   # log 2
            0.693147
            >>> g = jax.grad(lambda p: p(2.0, 1.0))(well)   # d/ds = -2 r^2/(s (s^2 + r^2))
            >>> round(float(g.fn.params["s"]), 6)
            -0.5
        """
        name = _check_name(name)
        values = _check_params(params)
        dim = _check_dim(d, required=False)
        table: dict[str, sp.Symbol] = {"r": _k.r, "M": _k.M}
        table.update({n: sp.Symbol(n, real=True) for n in values})
        if isinstance(expr, str):
            phi = parse_expression(expr, table)
            text = expr
        elif isinstance(expr, sp.Expr):
            known = {s.name for s in expr.free_symbols}
            extra = sorted(known - set(table))
            if extra:
                raise ValueError(f"expr: free symbols {', '.join(extra)} are neither r, M nor "
                                 f"in params ({', '.join(values) or 'none'}).")
            phi = expr.xreplace({s: table[s.name] for s in expr.free_symbols})
            text = str(phi)
        else:
            raise TypeError(f"expr: expected an expression string or a SymPy Expr, got "
                            f"{type(expr).__name__}.")
        return cls._from_sympy(phi, values, name=name, d=dim, r_min=r_min, what="expr",
                               origin=("potential", text))

    @classmethod
    def _from_sympy(cls, phi: sp.Expr, values: dict[str, Any], *, name: str, d: int | None,
                    r_min: float, what: str, origin: tuple[str, str]) -> Potential:
        used = {s.name for s in phi.free_symbols}
        unused = sorted(set(values) - used)
        if unused:
            raise ValueError(
                f"params: {', '.join(unused)} do(es) not appear in the {what} (a parameter that "
                "does not enter cannot be fitted); remove it or use it."
            )
        if _k.r not in phi.free_symbols:
            raise ValueError(f"{what}: the potential must depend on r, got {phi}.")
        if phi.atoms(sp.I) or phi.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise ValueError(f"{what}: the potential must be real and finite, got {phi}.")
        probe = _evaluate(_numeric(phi, values), 1.0)
        if not _finite_real(probe):
            raise ValueError(
                f"{what}: the potential is not a finite real number at r = 1, M = 1 with the "
                f"initial parameters {values} (got {probe}); check the expression and the "
                "values."
            )
        return cls(name, d, r_min=r_min, _expr=phi, _origin=origin, **values)

    @classmethod
    def from_toml(cls, path: str | Path) -> Potential:
        r"""A user kernel from a TOML file (`tomllib`; expressions by the restricted parser).

        The minimal form (an expression):

        ```toml
        name = "logwell"
        potential = "G*M*log(1 + r**2/s**2)"   # an expression in r, M and the parameters
        [params]                                # initial values; each one is fitted
        G = 1.0
        s = 30.0
        ```

        The field-equation form replaces `potential` by `operator` (a polynomial in `lap`, the
        radial Laplacian $\Delta_d$, see [`from_operator`][infograv.model.Potential.from_operator])
        and needs `d`:

        ```toml
        name = "screened"
        operator = "lap - mu**2"
        d = 3
        [params]
        G = 1.0
        mu = 0.5
        ```

        Optional keys: `d` (the dimension), `r_min` (the clamp radius), `description`.

        Arguments:
            path: the `.toml` file.

        Raises:
            ValueError: the file is missing, unreadable or not TOML; a missing, unknown or
                malformed key (the message names the file and the key and lists the valid keys);
                an expression the parser rejects (`ExpressionError`, with the key).

        Example:
            >>> import pathlib, tempfile
            >>> f = pathlib.Path(tempfile.mkdtemp()) / "logwell.toml"
            >>> _ = f.write_text('name = "logwell"\npotential = "G*M*log(1 + r**2/s**2)"\n'
            ...                  '[params]\nG = 1.0\ns = 30.0\n')
            >>> Potential.from_toml(f).param_names
            ('G', 's')
        """
        data = read_toml(path, "kernel file")
        where = f"kernel file {str(Path(path))!r}"
        return cls._from_mapping(data, where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Potential:
        """Rebuild a potential from [`to_dict`][infograv.model.Potential.to_dict]'s output.

        A user kernel's dictionary has the keys of a kernel file (`name`, `potential` or
        `operator`, `params`, `d`, `r_min`); a built-in's has `kernel`, `d`, `params`, `r_min`.

        Raises:
            ValueError: what [`from_toml`][infograv.model.Potential.from_toml] raises for a
                file with these keys, or a bad built-in `kernel`.

        Example:
            >>> phi = Potential.from_expr("G*M*r**(-a)", {"G": 1.0, "a": 0.5}, name="power")
            >>> bool(Potential.from_dict(phi.to_dict())(4.0, 1.0) == phi(4.0, 1.0))
            True
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"data: expected a dict from Potential.to_dict, got "
                            f"{type(data).__name__}.")
        if "kernel" in data:
            extra = sorted(set(data) - {"kernel", "d", "params", "r_min"})
            if extra:
                raise ValueError(f"data: unknown key(s) {extra} for a built-in kernel; valid: "
                                 "kernel, d, params, r_min.")
            params = data.get("params", {})
            if not isinstance(params, Mapping):
                raise ValueError("data: 'params' must be a dict of numbers.")
            return cls(data["kernel"], data.get("d", 2), r_min=data.get("r_min", 1e-6),
                       **params)
        return cls._from_mapping(data, "data")

    def to_dict(self) -> dict[str, Any]:
        """The kernel as plain data (JSON- and TOML-ready), with the current parameter values.

        For a user kernel these are the keys of a kernel file (the original expression or
        operator text), so writing the dict as TOML gives a file
        [`from_toml`][infograv.model.Potential.from_toml] reads back; for a built-in, `kernel`,
        `d`, `params`, `r_min`. [`from_dict`][infograv.model.Potential.from_dict] inverts it.

        Raises:
            ValueError: a parameter is a traced value (call outside `jit`).

        Example:
            >>> Potential("plummer", 3, epsilon=0.5).to_dict()["params"]
            {'G': 1.0, 'epsilon': 0.5}
        """
        params = {}
        for n in self.param_names:
            c = _concrete(self.fn.params[n])
            if c is None:
                raise ValueError(f"to_dict: parameter {n} is traced; call it outside jit.")
            params[n] = c
        if self.origin[0] == "kernel":
            return {"kernel": self.kernel, "d": self.d, "params": params, "r_min": self.r_min}
        out: dict[str, Any] = {"name": self.kernel, self.origin[0]: self.origin[1]}
        if self.d is not None:
            out["d"] = self.d
        out["r_min"] = self.r_min
        out["params"] = params
        return out

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], where: str) -> Potential:
        """A user kernel from the keys of a kernel file; errors start with `where`."""
        valid = "; ".join(f"{k} ({v})" for k, v in _TOML_KEYS.items())
        extra = sorted(set(data) - set(_TOML_KEYS))
        if extra:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; valid keys: "
                             f"{valid}.")
        if "name" not in data:
            raise ValueError(f"{where}: missing key 'name' ({_TOML_KEYS['name']}).")
        has_p, has_o = "potential" in data, "operator" in data
        if has_p == has_o:
            raise ValueError(
                f"{where}: give exactly one of 'potential' ({_TOML_KEYS['potential']}) or "
                f"'operator' ({_TOML_KEYS['operator']})."
            )
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise ValueError(f"{where}: 'params' must be a table, e.g. [params] then G = 1.0 on "
                             "the next line.")
        for key in ("potential", "operator", "name", "description"):
            if key in data and not isinstance(data[key], str):
                raise ValueError(f"{where}: '{key}' must be a string ({_TOML_KEYS[key]}), got "
                                 f"{data[key]!r}.")
        kwargs: dict[str, Any] = {}
        try:
            if "r_min" in data:
                kwargs["r_min"] = _check_r_min(data["r_min"])
            if "d" in data:
                kwargs["d"] = _check_dim(data["d"], required=True)
            name = _check_name(data["name"], "'name'")
            values = _check_params(params, "'params'")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        try:
            if has_p:
                return cls.from_expr(data["potential"], values, name=name, **kwargs)
            if "d" not in kwargs:
                raise ValueError(f"'d' is required with 'operator' ({_TOML_KEYS['d']}).")
            return cls.from_operator(data["operator"], values, name=name, **kwargs)
        except ExpressionError as exc:
            key = "potential" if has_p else "operator"
            raise ExpressionError(f"{where}: '{key}': {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    @classmethod
    def from_operator(cls, operator: str | sp.Expr, params: Mapping[str, float], *, name: str,
                      d: int, r_min: float = 1e-6) -> Potential:
        r"""A user kernel: the point-source solution of a radial linear field equation.

        The operator is a polynomial $P(\Delta_d) = \sum_k c_k \Delta_d^k$ in the radial
        Laplacian $\Delta_d f = f'' + \frac{d-1}{r} f'$, written as an expression in `lap` and
        the parameters (`"lap"`: Poisson; `"lap - mu**2"`: screened; `"lap - lap**2/m**2"`: a
        fourth-order term). The field equation is $P(\Delta_d)\Phi = \omega_{d-1} G M\delta$
        (the convention of the built-in kernels; `G` is added to the parameters with value 1 when
        not given). The Green's function is derived by partial fractions: with the simple roots
        $\lambda_i$ of $P$,

        $$\frac{1}{P(\lambda)} = \sum_i \frac{1}{P'(\lambda_i)\,(\lambda - \lambda_i)},\qquad
          \Phi = \omega_{d-1} G M \sum_i \frac{g_{\lambda_i}(r)}{P'(\lambda_i)},$$

        where $g_\lambda$ is the Green's function of $\Delta_d - \lambda$
        ([`green_function`][infograv.symbolic.kernels.green_function]: Newton for
        $\lambda = 0$, Yukawa for $\lambda > 0$). The result is then checked by substituting it
        back: the residual $P(\Delta_d)\Phi$ vanishes at sample radii $r > 0$ (to 1e-20 relative
        in 40-digit arithmetic), and for a second-order operator the flux
        $\omega_{d-1} r^{d-1}\Phi'(r)$ tends to $\omega_{d-1}GM/c_1$ as $r \to 0$.
        `theory/green_functions.py` derives $g_\lambda$ with `dsolve` and checks it symbolically.

        Arguments:
            operator: the polynomial in `lap` (a string, read by the restricted parser, or a
                SymPy expression in the symbol `lap`).
            params: `{name: initial value}`; operator parameters are positive (a root
                $\lambda_i$ must be zero or positive at the initial values).
            name: the kernel's name.
            d: the dimension (an integer $\ge 1$).
            r_min: clamp radius for a singular result.

        Raises:
            ExpressionError: the operator is not in the parser's language.
            ValueError: not a polynomial in `lap` of degree 1 to 4 with constant coefficients;
                a repeated root (e.g. `lap**2`); a negative or complex root (oscillating
                Green's function); a failed substitution check.

        Example:
            >>> phi = Potential.from_operator("lap - mu**2", {"mu": 0.5}, name="screened", d=3)
            >>> phi.expr   # Yukawa in d = 3
            -G*M*exp(-mu*r)/r
        """
        name = _check_name(name)
        dim = _check_dim(d, required=True)
        assert dim is not None
        values = _check_params(params)
        for n, v in values.items():
            c = _concrete(v)
            if c is not None and not c > 0:
                raise ValueError(f"params.{n}: operator parameters must be positive, got {v!r}.")
        values.setdefault("G", 1.0)
        psyms = {n: sp.Symbol(n, positive=True) for n in values}
        table: dict[str, sp.Symbol] = {"lap": _LAP, **psyms}
        if isinstance(operator, str):
            op = parse_expression(operator, table)
            text = operator
        elif isinstance(operator, sp.Expr):
            bad = sorted({s.name for s in operator.free_symbols} - set(table))
            if bad:
                raise ValueError(f"operator: unknown symbols {', '.join(bad)}; use lap and the "
                                 "parameters.")
            op = operator.xreplace({s: table[s.name] for s in operator.free_symbols})
            text = str(op)
        else:
            raise TypeError(f"operator: expected a string or a SymPy Expr, got "
                            f"{type(operator).__name__}.")
        phi = _operator_green(op, dim, psyms, values)
        return cls._from_sympy(phi, values, name=name, d=dim, r_min=r_min, what="operator",
                               origin=("operator", text))

    # -- evaluation -----------------------------------------------------------------------

    def __call__(self, r: Any, mass: Any) -> Float[Array, "*batch"]:
        r"""$\Phi(r; M)$, broadcasting `r` and `mass`."""
        r = jnp.asarray(r)
        if not jnp.issubdtype(r.dtype, jnp.floating):
            r = r.astype(jnp.zeros(()).dtype)
        return self.from_sq_distance(r * r, mass)

    def from_sq_distance(self, r2: Any, mass: Any) -> Float[Array, "*batch"]:
        r"""$\Phi(\sqrt{r^2}; M)$ from squared distances, with finite gradients at $r = 0$."""
        r2 = jnp.asarray(r2)
        mass = jnp.asarray(mass, r2.dtype)
        if self.singular:
            floor = jnp.asarray(self.r_min**2, r2.dtype)
            rad = jnp.where(r2 > floor, r2, floor)  # the compiled argument is r^2
        elif self.fn.arg_names[0] == _R2.name:
            rad = r2  # smooth in r^2: no square root, finite gradient at 0
        else:
            pos = r2 > 0
            rad = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)
        if self.expr.has(sp.besselk):
            # infograv.besselk broadcasts a scalar order against array arguments implicitly;
            # allow that rank promotion locally (the result's shape is that of `rad`).
            with jax.numpy_rank_promotion("allow"):
                return self.fn(rad, mass)
        return self.fn(rad, mass)

    def field(self, x: Any, sources: Any, masses: Any) -> Float[Array, "*batch"]:
        r"""Superposed potential $\Phi(x) = \sum_s \Phi(|x - x_s|; M_s)$ at points `x` `(..., d)`.

        Arguments:
            x: `(..., d)` evaluation points.
            sources: `(S, d)` source positions.
            masses: `(S,)` source masses.
        """
        x = jnp.asarray(x)
        sources = jnp.asarray(sources, x.dtype)
        masses = jnp.asarray(masses, x.dtype)
        if sources.ndim != 2 or sources.shape[1] != x.shape[-1]:
            raise ValueError(
                f"sources: expected shape (S, {x.shape[-1]}), got {sources.shape}."
            )
        if masses.shape != sources.shape[:1]:
            raise ValueError(f"masses: expected shape ({sources.shape[0]},), got {masses.shape}.")
        diff = x[..., None, :] - jnp.reshape(sources, (1,) * (x.ndim - 1) + sources.shape)
        r2 = jnp.sum(diff * diff, axis=-1)
        return jnp.sum(self.from_sq_distance(r2, jnp.broadcast_to(masses, r2.shape)), axis=-1)

    # -- parameters -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The kernel's name: the built-in name, or the user's `name`."""
        return self.kernel

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names, sorted (the keys of `fn.params`)."""
        return tuple(sorted(self.fn.params))

    @property
    def params(self) -> dict[str, jax.Array]:
        """The kernel parameters, `{name: value}`."""
        return dict(self.fn.params)

    def with_params(self, **values: Any) -> Potential:
        """A copy with some parameters replaced (values may be traced: works under jit/grad).

        Raises:
            ValueError: a name that is not a parameter of this kernel (the valid ones listed).

        Example:
            >>> phi = Potential("gaussian", 2, sigma=1.0)
            >>> float(phi.with_params(G=2.0)(0.0, 1.0))
            -2.0
        """
        unknown = sorted(set(values) - set(self.fn.params))
        if unknown:
            raise ValueError(
                f"with_params: {', '.join(unknown)} is/are not parameters of {self.kernel!r}; "
                f"valid: {', '.join(self.param_names)}."
            )
        new = dict(self.fn.params)
        for n, v in values.items():
            arr = jnp.asarray(v)
            if not jnp.issubdtype(arr.dtype, jnp.inexact):
                arr = arr.astype(new[n].dtype)
            if arr.shape != ():
                raise ValueError(f"with_params: {n} must be a scalar, got shape {arr.shape}.")
            new[n] = arr
        return eqx.tree_at(lambda p: p.fn.params, self, new)


def _operator_green(op: sp.Expr, d: int, psyms: Mapping[str, sp.Symbol],
                    values: Mapping[str, Any]) -> sp.Expr:
    """Φ = ω G M Σ_i g_{λ_i}/P'(λ_i) for the operator polynomial `op` in `lap`, checked."""
    try:
        poly = sp.Poly(sp.expand(op), _LAP)
    except sp.PolynomialError:
        raise ValueError(f"operator: {op} is not a polynomial in lap with constant "
                         "coefficients.") from None
    if any(c.has(_LAP) for c in poly.coeffs()) or not poly.coeffs() or not all(
            c.is_finite is not False for c in poly.coeffs()):
        raise ValueError(f"operator: {op} is not a polynomial in lap with constant coefficients.")
    deg = poly.degree()
    if not 1 <= deg <= _MAX_OPERATOR_DEGREE:
        raise ValueError(f"operator: the degree in lap must be 1 to {_MAX_OPERATOR_DEGREE} "
                         f"(second to {2 * _MAX_OPERATOR_DEGREE}th order), got {deg}.")
    roots = sp.roots(poly)
    if sum(roots.values()) != deg:
        raise ValueError(f"operator: SymPy cannot find the roots of {op} in lap in closed form.")
    repeated = [rt for rt, m in roots.items() if m > 1]
    if repeated:
        raise ValueError(f"operator: repeated root lap = {repeated[0]} (e.g. lap**2); only "
                         "simple roots are supported.")
    # exact rationals (the binary values of the floats), so the 40-digit check below is exact
    num = {psyms[n]: sp.Rational(1.0 if (c := _concrete(v)) is None else c)
           for n, v in values.items()}
    dpoly = poly.diff(_LAP)
    G = psyms["G"]
    scale = _k.sphere_area(d) * G * _k.M
    terms = []
    for lam in roots:
        lam = sp.simplify(lam)
        if not lam.is_zero:
            val = complex(sp.N(lam.subs(num), 30))
            if abs(val.imag) > 1e-12 * max(1.0, abs(val.real)) or val.real <= 0:
                raise ValueError(
                    f"operator: root lap = {lam} (= {val:.6g} at the initial parameters) is "
                    "not positive; supported roots are 0 (Newton) and > 0 (screened), a "
                    "negative or complex root gives an oscillating Green's function."
                )
            lam = sp.refine(lam, sp.Q.positive(lam))
        terms.append(scale * _k.green_function(d, lam) / dpoly.as_expr().subs(_LAP, lam))
    phi = sp.Add(*terms)
    _check_green(phi, poly, d, num, G)
    return phi


def _check_green(phi: sp.Expr, poly: sp.Poly, d: int, num: Mapping[sp.Symbol, sp.Expr],
                 G: sp.Symbol) -> None:
    """Substitute Φ back: P(Δ_d)Φ = 0 at sample radii; flux → ω G M / c_1 for degree 1."""
    term = phi.subs(_k.M, 1)
    powers = [term]
    for _ in range(poly.degree()):
        powers.append(_k.radial_laplacian(powers[-1], d))
    coeffs = poly.all_coeffs()[::-1]  # c_0, c_1, ...
    subs = dict(num)
    for rv in (sp.Rational(1, 3), sp.Rational(7, 5), sp.Integer(3)):
        subs[_k.r] = rv
        parts = [sp.N((c * p).subs(subs), 40) for c, p in zip(coeffs, powers, strict=True)]
        scale = max(abs(complex(x)) for x in parts)
        resid = abs(complex(sp.N(sp.Add(*parts), 40)))
        if not resid <= 1e-20 * max(scale, 1e-300):
            raise ValueError(f"operator: the derived Green's function fails the substitution "
                             f"check at r = {rv} (residual {resid:.3g}, scale {scale:.3g}).")
    if poly.degree() == 1:
        c1 = poly.all_coeffs()[0]
        flux = _k.sphere_area(d) * _k.r ** (d - 1) * sp.diff(term, _k.r)
        small = dict(num)
        small[_k.r] = sp.Rational(1, 10**8)
        got = complex(sp.N(flux.subs(small), 40))
        want = complex(sp.N((_k.sphere_area(d) * G / c1).subs(num), 40))
        if not abs(got - want) <= 1e-6 * abs(want):
            raise ValueError(f"operator: flux normalisation check failed ({got:.6g} != "
                             f"{want:.6g}).")
