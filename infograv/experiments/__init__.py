"""The paper's phenomena and the empirical study, as functions that return datasets.

Each experiment returns its numbers together with every setting that produced them; the
`paper_section` functions of the private modules turn them into figures and tables for
`infograv paper`.
"""

from ._geometry import (
    bundle_experiment as bundle_experiment,
    curvature_experiment as curvature_experiment,
    distance_experiment as distance_experiment,
    horizon_experiment as horizon_experiment,
    langevin_experiment as langevin_experiment,
)
from ._phenomena import (
    collapse_experiment as collapse_experiment,
    potential_well_experiment as potential_well_experiment,
    sensitivity_experiment as sensitivity_experiment,
    temperature_experiment as temperature_experiment,
    trajectory_experiment as trajectory_experiment,
    voids_experiment as voids_experiment,
)
from ._stats import (
    apply_holm as apply_holm,
    bootstrap as bootstrap,
    holm as holm,
    mean as mean,
    p_value as p_value,
    percentile_interval as percentile_interval,
    within_between as within_between,
)
from ._validation import (
    ValidationSettings as ValidationSettings,
    Verdict as Verdict,
    bootstrap_ci as bootstrap_ci,
    correlation_claim as correlation_claim,
    dot_baseline as dot_baseline,
    extract_distributions as extract_distributions,
    family_potential as family_potential,
    fit_study as fit_study,
    mass_study as mass_study,
    run_validation as run_validation,
    sensitivity_study as sensitivity_study,
    spearman as spearman,
    temperature_study as temperature_study,
    trajectory_study as trajectory_study,
    verdict as verdict,
    verdict_table as verdict_table,
    voids_study as voids_study,
)
