"""Real models in JAX: causal language models (SmolLM2, Gemma 3, a user's GGUF or Hugging Face
model) and the MiniLM sentence encoder.

Artifacts are located, fetched and verified by `infograv.data` (re-exported here). Nothing is
fetched at import time; a missing model raises `ArtifactNotFoundError` whose message gives
`infograv fetch NAME`.
"""

from ..data._artifacts import (
    ARTIFACTS as ARTIFACTS,
    ArtifactNotFoundError as ArtifactNotFoundError,
    ArtifactSpec as ArtifactSpec,
    ChecksumError as ChecksumError,
    FetchError as FetchError,
    cache_dir as cache_dir,
    fetch as fetch,
    locate as locate,
    verify as verify,
)
from ._bert import (
    BertConfig as BertConfig,
    BertLayers as BertLayers,
    BertWeights as BertWeights,
    bert_forward as bert_forward,
    mean_pool_normalize as mean_pool_normalize,
)
from ._decoder import (
    ARCHITECTURES as ARCHITECTURES,
    Block as Block,
    DecoderConfig as DecoderConfig,
    DecoderWeights as DecoderWeights,
    Norm as Norm,
    apply_rope as apply_rope,
    decode_step as decode_step,
    decoder_forward as decoder_forward,
    output_logits as output_logits,
    rms_norm as rms_norm,
    rope_angles as rope_angles,
)
from ._encoder import (
    SentenceEncoder as SentenceEncoder,
    load_sentence_encoder as load_sentence_encoder,
)
from ._gguf import (
    build_bpe_tokenizer as build_bpe_tokenizer,
    build_spm_tokenizer as build_spm_tokenizer,
    read_gguf as read_gguf,
)
from ._hf import read_safetensors as read_safetensors
from ._language_model import (
    BUCKETS as BUCKETS,
    LANGUAGE_MODELS as LANGUAGE_MODELS,
    Generation as Generation,
    LanguageModel as LanguageModel,
    bucket_length as bucket_length,
    filter_logits as filter_logits,
    load_language_model as load_language_model,
)
from ._trajectories import (
    ObservedTrajectory as ObservedTrajectory,
    depth_trajectory as depth_trajectory,
    encoder_layer_trajectory as encoder_layer_trajectory,
    generation_trajectory as generation_trajectory,
)
