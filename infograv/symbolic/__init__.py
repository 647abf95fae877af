"""Symbolic differential geometry and the model's equations in SymPy.

[`Metric`][infograv.symbolic.Metric] holds a metric of any dimension and signature and derives
its Christoffel symbols, Riemann, Ricci, scalar curvature, Einstein and Weyl tensors,
Kretschmann scalar, geodesic equations and Laplace–Beltrami operator, all unsimplified and
cached. [`simplified`][infograv.symbolic.simplified] is the opt-in, time-boxed beautifier for
printing.
"""

from . import kernels as kernels
from ._metric import (
    GeodesicEquations as GeodesicEquations,
    Metric as Metric,
    velocity_symbol as velocity_symbol,
)
from ._predefined import (
    PREDEFINED as PREDEFINED,
    conformally_flat as conformally_flat,
    euclidean as euclidean,
    hyperbolic as hyperbolic,
    jacobi as jacobi,
    kerr as kerr,
    predefined as predefined,
    schwarzschild as schwarzschild,
    sphere as sphere,
    tangherlini as tangherlini,
    weak_field as weak_field,
)
from ._simplify import simplified as simplified
