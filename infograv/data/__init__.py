"""Real model artifacts: locate, fetch, verify by checksum, cache.

See `infograv.lm` for the models built on them. Nothing is fetched at import time.
"""

from ._artifacts import (
    ARTIFACTS as ARTIFACTS,
    ArtifactFile as ArtifactFile,
    ArtifactNotFoundError as ArtifactNotFoundError,
    ArtifactSpec as ArtifactSpec,
    ChecksumError as ChecksumError,
    cache_dir as cache_dir,
    fetch as fetch,
    file_sha256 as file_sha256,
    locate as locate,
    verify as verify,
)
