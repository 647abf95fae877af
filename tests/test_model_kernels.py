"""The SymPy potential kernels: construction, errors, closed forms, and the derivation script."""

from pathlib import Path

import numpy as np
import pytest
import scipy.special as sps
import sympy as sp

from infograv.symbolic import kernels as K

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7])
def test_sphere_area_matches_ball_volume_derivative(d):
    # Independent reference: omega_(d-1) = d * V_d with V_d = pi^(d/2)/Gamma(d/2+1) (DLMF 5.19).
    ball = np.pi ** (d / 2) / sps.gamma(d / 2 + 1)
    assert float(K.sphere_area(d)) == pytest.approx(d * ball, rel=1e-14)


def test_kernel_errors_name_the_argument():
    with pytest.raises(ValueError, match="name: unknown kernel 'coulomb'"):
        K.kernel("coulomb", 3)
    with pytest.raises(ValueError, match="d: "):
        K.kernel("newton", 0)
    with pytest.raises(TypeError, match="d: "):
        K.kernel("newton", 2.5)


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
def test_yukawa_is_the_d_dim_screened_green_function(d, rng):
    # Reference: the Green's function of (mu^2 - Delta) in d dims,
    # (2 pi)^(-d/2) (mu/r)^(d/2-1) K_(d/2-1)(mu r), via scipy.special.kv; scaled by -omega G M.
    ky = K.kernel("yukawa", d)
    for _ in range(5):
        rv, muv, gv, mv = rng.uniform(0.2, 3.0, size=4)
        nu = d / 2 - 1
        ref = -float(K.sphere_area(d)) * gv * mv * (2 * np.pi) ** (-d / 2) * (muv / rv) ** nu \
            * sps.kv(nu, muv * rv)
        val = float(ky.elementary().subs({K.r: rv, K.mu: muv, K.G: gv, K.M: mv}).evalf(30))
        assert val == pytest.approx(ref, rel=1e-12)  # double-precision round-off of scipy.kv


def test_yukawa_3d_is_the_textbook_form():
    ref = -K.G * K.M * sp.exp(-K.mu * K.r) / K.r
    assert sp.simplify(K.kernel("yukawa", 3).elementary() - ref) == 0


def test_plummer_3d_density_is_the_textbook_plummer_sphere():
    # Plummer (1911) / Binney & Tremaine eq. 2.44a: rho = 3M/(4 pi eps^3) (1 + r^2/eps^2)^(-5/2).
    rho = K.kernel("plummer", 3).density()
    ref = 3 * K.M / (4 * sp.pi * K.epsilon**3) * (1 + K.r**2 / K.epsilon**2) ** sp.Rational(-5, 2)
    assert sp.simplify(rho - ref) == 0


def test_params_and_operator():
    kp = K.kernel("plummer", 4)
    assert [s.name for s in kp.params] == ["G", "M", "epsilon"]
    assert K.kernel("harmonic", 3).params == (K.k,)
    # the screened operator subtracts mu^2 f
    ky = K.kernel("yukawa", 3)
    assert sp.simplify(ky.operator(sp.Integer(1)) + K.mu**2) == 0


