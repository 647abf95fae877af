"""The llama forward pass moved to `infograv.lm._decoder`, which serves every architecture.

Kept only so that older imports of `rms_norm` from here keep working; import from
`infograv.lm` (or `infograv.lm._decoder`) instead.
"""

from ._decoder import rms_norm as rms_norm

__all__ = ["rms_norm"]
