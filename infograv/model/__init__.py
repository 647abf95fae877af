"""The information-gravity model: semantic space, query mass, potentials, selection law, fits.

Definitions: formalism §1–4, 6, 7, 9 (Vyshnyvetska, arXiv:2504.20951). Every kernel is compiled
from a SymPy expression: the built-in ones from
[`infograv.symbolic.kernels`][infograv.symbolic.kernels], a user's from an expression, a kernel
file or a field equation ([`Potential.from_expr`][infograv.model.Potential.from_expr],
[`from_toml`][infograv.model.Potential.from_toml],
[`from_operator`][infograv.model.Potential.from_operator]); `fit_potential` fits any of them to
a language model's next-token distributions.
"""

from ._fisher import (
    FlipResult as FlipResult,
    SaddleResult as SaddleResult,
    find_flip as find_flip,
    find_saddle as find_saddle,
    fisher_eigenvalues as fisher_eigenvalues,
    fisher_metric as fisher_metric,
    scalar_curvature as scalar_curvature,
    semantic_curvature as semantic_curvature,
)
from ._fit import (
    FIT_QUERY_MAPS as FIT_QUERY_MAPS,
    FitData as FitData,
    PotentialFit as PotentialFit,
    fit_potential as fit_potential,
    kl_per_prompt as kl_per_prompt,
    length_unit as length_unit,
    prepare_fit_data as prepare_fit_data,
)
from ._poisson import (
    grid_green_sum as grid_green_sum,
    poisson_free_space as poisson_free_space,
    poisson_periodic as poisson_periodic,
)
from ._potential import KERNEL_NAMES as KERNEL_NAMES, Potential as Potential
from ._query import (
    MASS_MODELS as MASS_MODELS,
    Query as Query,
    specificity_mass as specificity_mass,
    surprisal_mass as surprisal_mass,
)
from ._selection import (
    StreamingResult as StreamingResult,
    Thermodynamics as Thermodynamics,
    background_energies as background_energies,
    chunked_log_probs as chunked_log_probs,
    energies as energies,
    kl_divergence as kl_divergence,
    log_probs as log_probs,
    sample_tokens as sample_tokens,
    selection_log_probs as selection_log_probs,
    sharded_thermodynamics as sharded_thermodynamics,
    streaming_thermodynamics as streaming_thermodynamics,
    thermodynamics as thermodynamics,
)
from ._space import (
    SemanticSpace as SemanticSpace,
    toy_clusters as toy_clusters,
    toy_rings as toy_rings,
    toy_uniform as toy_uniform,
    unigram_masses as unigram_masses,
)
from ._trajectory import (
    CONTEXT_RULES as CONTEXT_RULES,
    Trajectory as Trajectory,
    generate as generate,
)
from ._voids import (
    NEIGHBOURHOODS as NEIGHBOURHOODS,
    Hallucination as Hallucination,
    VoidResult as VoidResult,
    find_voids as find_voids,
    grid as grid,
    hallucination as hallucination,
    neighbourhood as neighbourhood,
)
