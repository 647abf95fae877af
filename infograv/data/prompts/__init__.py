"""The validation prompt set: categories, a fixed train / held-out split, perturbation pairs."""

from ._load import (
    CATEGORIES as CATEGORIES,
    SPLITS as SPLITS,
    PerturbationPair as PerturbationPair,
    Prompt as Prompt,
    answer_matches as answer_matches,
    load_perturbations as load_perturbations,
    load_prompts as load_prompts,
    prompt_set_info as prompt_set_info,
)
