"""The validation prompt set (categories, a fixed train / held-out split, perturbation pairs), and
a user's own prompts read from JSONL, CSV or plain text into a `PromptSet`."""

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
from ._user import (
    FORMATS as FORMATS,
    PROMPT_SPLITS as PROMPT_SPLITS,
    PromptFileError as PromptFileError,
    PromptItem as PromptItem,
    PromptSet as PromptSet,
    builtin_prompts as builtin_prompts,
    hash_split as hash_split,
)
