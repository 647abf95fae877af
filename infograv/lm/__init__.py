"""Real models in JAX: the SmolLM2 causal language model and the MiniLM sentence encoder.

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
from ._encoder import (
    SentenceEncoder as SentenceEncoder,
    load_sentence_encoder as load_sentence_encoder,
)
from ._gguf import (
    LlamaConfig as LlamaConfig,
    build_bpe_tokenizer as build_bpe_tokenizer,
    read_gguf as read_gguf,
)
from ._language_model import (
    BUCKETS as BUCKETS,
    Generation as Generation,
    LanguageModel as LanguageModel,
    bucket_length as bucket_length,
    filter_logits as filter_logits,
    load_language_model as load_language_model,
)
from ._llama import (
    LlamaLayers as LlamaLayers,
    LlamaWeights as LlamaWeights,
    apply_rope as apply_rope,
    llama_decode_step as llama_decode_step,
    llama_forward as llama_forward,
    rms_norm as rms_norm,
    rope_angles as rope_angles,
)
