"""Symbolic differential geometry and the model's equations in SymPy."""

from . import kernels as kernels
