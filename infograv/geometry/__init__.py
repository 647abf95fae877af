"""Numerical metrics, curvature by autodiff, and identity checks.

Structured metrics (`ConformalMetric`, `JacobiMetric`, `WeakFieldMetric`, `TangherliniMetric`,
`PullbackMetric`, `FisherMetric`, `OutputMetric`) give the geodesic acceleration `Γ(v, v)`
without any `n × n × n` array, so they work at the dimension of real embeddings;
`CompiledMetric` evaluates a symbolic metric compiled from SymPy; `FunctionMetric` wraps any
`x ↦ g(x)`.
"""

from ._base import (
    AbstractMetric as AbstractMetric,
    christoffel_autodiff as christoffel_autodiff,
    general_acceleration as general_acceleration,
)
from ._identities import (
    christoffel_symmetry_residual as christoffel_symmetry_residual,
    first_bianchi_residual as first_bianchi_residual,
    metric_compatibility_residual as metric_compatibility_residual,
    riemann_symmetry_residual as riemann_symmetry_residual,
    second_bianchi_residual as second_bianchi_residual,
    vacuum_residual as vacuum_residual,
)
from ._metrics import (
    CompiledMetric as CompiledMetric,
    ConformalMetric as ConformalMetric,
    FisherMetric as FisherMetric,
    FunctionMetric as FunctionMetric,
    JacobiMetric as JacobiMetric,
    PullbackMetric as PullbackMetric,
    TangherliniMetric as TangherliniMetric,
    WeakFieldMetric as WeakFieldMetric,
)
from ._potentials import (
    RadialPotential as RadialPotential,
    ScalarField as ScalarField,
    gaussian_kernel as gaussian_kernel,
    gaussian_wells as gaussian_wells,
    safe_norm as safe_norm,
)
from ._real import (
    SOLVERS as SOLVERS,
    OutputMetric as OutputMetric,
    density_metric as density_metric,
    euclidean_metric as euclidean_metric,
    information_gravity_metric as information_gravity_metric,
)
