"""Real model artifacts (locate, fetch, verify by checksum, cache) and prompt sets.

See `infograv.lm` for the models built on the artifacts. Nothing is fetched at import time.
A user's prompts are read with [`load_prompts`][infograv.data.load_prompts] (JSONL, CSV or
plain text) and the shipped set is [`builtin_prompts`][infograv.data.builtin_prompts]; both
give a [`PromptSet`][infograv.data.PromptSet] (layout: `docs/model/your_prompts.md`).
"""

from ._artifacts import (
    ARTIFACTS as ARTIFACTS,
    ArtifactFile as ArtifactFile,
    ArtifactNotFoundError as ArtifactNotFoundError,
    ArtifactSpec as ArtifactSpec,
    ChecksumError as ChecksumError,
    FetchError as FetchError,
    cache_dir as cache_dir,
    fetch as fetch,
    file_sha256 as file_sha256,
    locate as locate,
    verify as verify,
)
from .prompts._user import (
    PromptFileError as PromptFileError,
    PromptItem as PromptItem,
    PromptSet as PromptSet,
    builtin_prompts as builtin_prompts,
    hash_split as hash_split,
    load_prompts as load_prompts,
)
