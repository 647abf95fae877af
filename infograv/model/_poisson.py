"""Grid solvers for the field equation in d <= 3 (spectral), against the Green's-function sum."""

from __future__ import annotations

import itertools
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..symbolic.kernels import sphere_area
from ._potential import Potential

__all__ = ["poisson_periodic", "poisson_free_space", "grid_green_sum"]


def _check_grid(rho: Any, spacing: float) -> jnp.ndarray:
    rho = jnp.asarray(rho)
    if not 1 <= rho.ndim <= 3:
        raise ValueError(f"rho: grid solvers need a 1-, 2- or 3-D grid, got shape {rho.shape}.")
    if not spacing > 0:
        raise ValueError(f"spacing: must be positive, got {spacing!r}.")
    return rho


def poisson_periodic(
    rho: Any, spacing: float, *, G: float = 1.0, mu: float = 0.0
) -> Float[Array, "*grid"]:
    r"""Spectral solution of $(\Delta - \mu^2)\Phi = \omega_{d-1} G \rho$ on a periodic box.

    $\hat\Phi(k) = -\omega_{d-1}G\hat\rho(k)/(|k|^2 + \mu^2)$. For $\mu = 0$ the $k = 0$ mode
    is set to zero: on a torus only the mean-free part $\rho - \bar\rho$ has a solution (the
    boundary treatment: periodic with a neutralising uniform background), and $\Phi$ has zero mean.

    Arguments:
        rho: density on an `(n, …)` grid with $d$ = `rho.ndim` $\le 3$ axes (equal spacing).
        spacing: the grid spacing $h$ (box side $n h$).
        G: the coupling.
        mu: the screening mass (0: Poisson).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(64) * (2 * jnp.pi / 64)
        >>> phi = poisson_periodic(jnp.cos(x), 2 * jnp.pi / 64)   # d = 1: omega_0 = 2
        >>> bool(jnp.allclose(phi, -2 * jnp.cos(x), atol=1e-5))
        True
    """
    rho = _check_grid(rho, spacing)
    d = rho.ndim
    ks = [2 * np.pi * np.fft.fftfreq(n, d=spacing) for n in rho.shape]
    k2 = sum(np.meshgrid(*[k**2 for k in ks], indexing="ij"))
    denom = k2 + mu**2
    inv = np.where(denom > 0, 1.0 / np.where(denom > 0, denom, 1.0), 0.0)
    coef = -float(sphere_area(d)) * G
    rho_hat = jnp.fft.fftn(rho)
    phi_hat = rho_hat * jnp.asarray(coef * inv).astype(rho_hat.dtype)
    return jnp.real(jnp.fft.ifftn(phi_hat)).astype(rho.dtype)


def _kernel_grid(shape: tuple[int, ...], spacing: float, potential: Potential,
                 self_points: int) -> jnp.ndarray:
    d = len(shape)
    axes = []
    for n in shape:
        j = np.arange(2 * n)
        axes.append(spacing * np.minimum(j, 2 * n - j).astype(float))
    mesh = np.meshgrid(*axes, indexing="ij")
    r = np.sqrt(sum(m**2 for m in mesh))
    K = potential(jnp.asarray(r), 1.0)
    # self cell: the mean of Phi over the cell (midpoint rule on self_points^d sub-points, none at
    # r = 0), i.e. the potential at the centre of a uniformly filled cell.
    off = ((np.arange(self_points) + 0.5) / self_points - 0.5) * spacing
    sub = np.array(list(itertools.product(off, repeat=d)))
    k0 = jnp.mean(potential(jnp.asarray(np.linalg.norm(sub, axis=1)), 1.0))
    return K.at[(0,) * d].set(k0)


def poisson_free_space(
    rho: Any, spacing: float, potential: Potential, *, self_points: int = 8
) -> Float[Array, "*grid"]:
    r"""Potential of a gridded density in free space: $\Phi = \rho * \Phi_1$ by zero-padded FFT.

    The Green's-function solution $\Phi(x_a) = \sum_b \rho_b h^d\, \Phi(|x_a - x_b|; 1)$ of the
    kernel's field equation, evaluated for all grid points at once with the domain-doubling method
    of Hockney & Eastwood (*Computer Simulation Using Particles*, 1988, §6-5): the density is
    zero-padded to twice the box, so the circular convolution equals the free-space (isolated)
    sum exactly; there are no periodic images. The self-cell term uses the mean of $\Phi$ over the
    cell. Works with any kernel (`potential.d` must equal `rho.ndim`).

    Arguments:
        rho: density on an `(n, …)` grid, $d \le 3$ axes, spacing `spacing`.
        spacing: grid spacing $h$.
        potential: the [`Potential`][infograv.model.Potential] whose Green's function to use.
        self_points: sub-points per axis for the self-cell average.

    Raises:
        ValueError: `potential.d` differs from `rho.ndim`; bad grid or spacing.
    """
    rho = _check_grid(rho, spacing)
    if potential.d != rho.ndim:
        raise ValueError(f"potential: kernel dimension {potential.d} differs from the grid's "
                         f"{rho.ndim} axes.")
    shape = rho.shape
    K = _kernel_grid(shape, spacing, potential, self_points).astype(rho.dtype)
    mass = rho * spacing**rho.ndim
    padded = jnp.zeros(tuple(2 * n for n in shape), rho.dtype)
    padded = padded.at[tuple(slice(0, n) for n in shape)].set(mass)
    conv = jnp.fft.irfftn(jnp.fft.rfftn(padded) * jnp.fft.rfftn(K), s=padded.shape)
    return conv[tuple(slice(0, n) for n in shape)].astype(rho.dtype)


def grid_green_sum(
    rho: Any, spacing: float, potential: Potential, *, self_points: int = 8
) -> Float[Array, "*grid"]:
    r"""The same free-space potential as `poisson_free_space`, by the direct $O(n^{2d})$ sum.

    A reference for tests and small grids: $\Phi_a = \sum_b \rho_b h^d\,K(x_a - x_b)$ with the
    same kernel table (including the self-cell average).
    """
    rho = _check_grid(rho, spacing)
    shape = rho.shape
    K = _kernel_grid(shape, spacing, potential, self_points).astype(rho.dtype)
    mass = (rho * spacing**rho.ndim).reshape(-1)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1,
                                                                                          rho.ndim)
    diff = np.abs(idx[:, None, :] - idx[None, :, :])
    Kab = K[tuple(diff[..., i] for i in range(rho.ndim))]
    return (Kab @ mass).reshape(shape)
