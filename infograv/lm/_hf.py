"""Reading a Hugging Face model folder: `config.json`, `*.safetensors`, `tokenizer.json`.

Supported `model_type`s: `llama`, `mistral`, `qwen2` (q/k/v biases), `gemma3_text` (and the
text part of `gemma3`) and `gpt2`. Weights may be one `model.safetensors` or several shards
listed in `model.safetensors.index.json` (or simply all `*.safetensors` of the folder). The
safetensors format is read here directly (an 8-byte header length, a JSON header, raw
little-endian data), so bfloat16 weights need no framework: they are widened to float32 by
a bit shift. Hugging Face layouts differ from GGUF in two places handled here: rotary
embeddings act on the two halves of each head (`position = "rope_half"`), and Gemma's RMSNorm
weights are stored as `w` with the model computing `x (1 + w)`, so 1 is added on loading. GPT-2
stores its projections as `(in, out)` ("Conv1D"), the layout `Block` keeps; the `(out, in)`
matrices of the other architectures are transposed once on loading.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ._decoder import Block, DecoderConfig, DecoderWeights, Norm

__all__ = ["HF_MODEL_TYPES", "config_from_hf", "read_safetensors", "weights_from_hf"]

#: `model_type` values of `config.json` that can be loaded.
HF_MODEL_TYPES: tuple[str, ...] = ("llama", "mistral", "qwen2", "gemma3_text", "gemma3", "gpt2")

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All tensors of one `.safetensors` file as float32 NumPy arrays (F32, F16, BF16, F64).

    Raises:
        ValueError: not a safetensors file, or a tensor of another dtype; names the file.

    Example:
        >>> import json, struct, tempfile, numpy as np
        >>> head = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})
        >>> raw = np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16  # top 16 bits
        >>> with tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False) as f:
        ...     _ = f.write(struct.pack("<Q", len(head)) + head.encode()
        ...                 + raw.astype("<u2").tobytes())
        >>> read_safetensors(f.name)["w"].tolist()
        [1.5, -2.0]
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if not 2 <= n <= 100_000_000:
                raise ValueError(f"implausible header length {n}")
            header = json.loads(fh.read(n))
            data = np.frombuffer(fh.read(), dtype=np.uint8)
    except (OSError, ValueError, struct.error) as exc:
        raise ValueError(f"path: {p} could not be read as a safetensors file ({exc}).") from exc
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (a, b) = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _DTYPES:
            raise ValueError(f"path: {p}: tensor {name} has dtype {dt}; only float weights load.")
        raw = data[a:b]
        if dt == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.view(np.dtype(_DTYPES[dt]).newbyteorder("<")).astype(np.float32)
        out[name] = arr.reshape(shape)
    return out


def read_hf_tensors(folder: Path) -> dict[str, np.ndarray]:
    """The tensors of every safetensors shard of `folder` (by the index when there is one)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        shards = [folder / f for f in files]
    else:
        shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise ValueError(f"path: {folder} holds no *.safetensors file.")
    tensors: dict[str, np.ndarray] = {}
    for s in shards:
        tensors.update(read_safetensors(s))
    return tensors


def config_from_hf(cfg: dict[str, Any], vocab_size: int, where: str) -> DecoderConfig:
    """The `DecoderConfig` of a Hugging Face `config.json` (already parsed).

    Raises:
        ValueError: an unsupported `model_type` (the supported ones are listed) or feature
            (rope scaling, logit soft-capping); names `where`.
    """
    mt = cfg.get("model_type")
    if mt == "gemma3" and isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg["text_config"], "model_type": "gemma3_text"}
        mt = "gemma3_text"
    if mt not in HF_MODEL_TYPES:
        raise ValueError(
            f"path: {where} holds model_type {mt!r}; supported Hugging Face model types are "
            f"{list(HF_MODEL_TYPES)} (and GGUF files of llama, qwen2 and gemma3)."
        )
    eos = cfg.get("eos_token_id", 2)
    eos_ids = list(eos) if isinstance(eos, list) else [eos]
    eos_ids = [int(e) for e in eos_ids if e is not None] or [2]
    common: dict[str, Any] = dict(
        vocab_size=int(cfg.get("vocab_size", vocab_size)),
        bos_id=int(cfg.get("bos_token_id") or 0),
        eos_id=eos_ids[0],
        pad_id=int(cfg["pad_token_id"]) if cfg.get("pad_token_id") is not None else eos_ids[0],
        stop_ids=tuple(sorted(set(eos_ids))),
    )
    if mt == "gpt2":
        d = int(cfg["n_embd"])
        if cfg.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"path: {where}: only the tanh GELU of GPT-2 is supported.")
        return DecoderConfig(
            arch="gpt2", n_layers=int(cfg["n_layer"]), d_model=d, n_heads=int(cfg["n_head"]),
            n_kv_heads=int(cfg["n_head"]), d_ff=int(cfg.get("n_inner") or 4 * d),
            context_length=int(cfg["n_positions"]),
            norm_eps=float(cfg.get("layer_norm_epsilon", 1e-5)), norm="layer",
            position="learned", ffn="gelu_mlp", **common,
        )
    rope = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling")
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type"))
    if rope_type not in (None, "default") or rope.get("rope_type", "default") != "default":
        raise ValueError(f"path: {where}: rope scaling {scaling or rope} is not supported.")
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if cfg.get(key) is not None:
            raise ValueError(f"path: {where}: {key} is not supported.")
    n_heads = int(cfg["num_attention_heads"])
    n_layers = int(cfg["num_hidden_layers"])
    d = int(cfg["hidden_size"])
    theta = float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    kw: dict[str, Any] = {}
    if mt == "gemma3_text":
        types = cfg.get("layer_types")
        if types is None:
            pattern = int(cfg.get("sliding_window_pattern", 6))
            local = tuple((i + 1) % pattern != 0 for i in range(n_layers))
        else:
            local = tuple(t == "sliding_attention" for t in types)
        hd = int(cfg.get("head_dim", 256))
        kw = dict(
            head_dim=hd, rope_base_local=float(cfg.get("rope_local_base_freq", 10000.0)),
            sliding_window=int(cfg.get("sliding_window", 512)), local_layers=local,
            ffn="geglu", qk_norm=True, sandwich_norm=True,
            embed_scale=float(np.sqrt(np.float32(d))),
            attn_scale=1.0 / math.sqrt(float(cfg.get("query_pre_attn_scalar", hd))),
        )
        if "rope_parameters" in cfg and "full_attention" in rope:  # per-layer-type form
            theta = float(rope["full_attention"].get("rope_theta", 1e6))
            kw["rope_base_local"] = float(rope["sliding_attention"].get("rope_theta", 1e4))
    else:
        if cfg.get("head_dim"):
            kw["head_dim"] = int(cfg["head_dim"])
        window = cfg.get("sliding_window")
        if window and (mt == "mistral" or cfg.get("use_sliding_window")):
            kw.update(sliding_window=int(window), local_layers=(True,) * n_layers)
    return DecoderConfig(
        arch="gemma3" if mt == "gemma3_text" else mt, n_layers=n_layers, d_model=d,
        n_heads=n_heads, n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
        d_ff=int(cfg["intermediate_size"]),
        context_length=int(cfg.get("max_position_embeddings", 2048)),
        norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), rope_base=theta, position="rope_half",
        **kw, **common,
    )


def _strip_prefix(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for prefix in ("model.language_model.", "language_model.model.", "model.", "transformer."):
        if any(k.startswith(prefix + "layers.") or k.startswith(prefix + "h.") for k in tensors):
            return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in tensors.items()}
    return tensors


def weights_from_hf(
    config: DecoderConfig, tensors: dict[str, np.ndarray], dtype: Any
) -> DecoderWeights:
    """Assemble `DecoderWeights` from Hugging Face tensor names.

    Raises:
        ValueError: a tensor the architecture needs is missing (named).
    """
    import jax.numpy as jnp

    t = _strip_prefix(tensors)

    def raw(name: str) -> np.ndarray:
        if name not in t:
            raise ValueError(f"tensors: the safetensors files have no tensor {name!r}.")
        return t[name]

    def get(name: str, *, transpose: bool = False, plus: float = 0.0) -> Any:
        a = raw(name)
        return jnp.asarray((a.T if transpose else a) + plus, dtype=dtype)

    def opt(name: str) -> Any:
        return jnp.asarray(t[name], dtype=dtype) if name in t else None

    c = config
    blocks = []
    if c.arch == "gpt2":
        d = c.d_model
        for i in range(c.n_layers):
            p = f"h.{i}."
            qkv = raw(p + "attn.c_attn.weight")  # Conv1D: (d, 3d), already (in, out)
            bqkv = raw(p + "attn.c_attn.bias")
            blocks.append(Block(
                attn_norm=Norm(get(p + "ln_1.weight"), get(p + "ln_1.bias")),
                wq=jnp.asarray(qkv[:, :d], dtype), wk=jnp.asarray(qkv[:, d:2 * d], dtype),
                wv=jnp.asarray(qkv[:, 2 * d:], dtype), bq=jnp.asarray(bqkv[:d], dtype),
                bk=jnp.asarray(bqkv[d:2 * d], dtype), bv=jnp.asarray(bqkv[2 * d:], dtype),
                wo=get(p + "attn.c_proj.weight"), bo=get(p + "attn.c_proj.bias"),
                ffn_norm=Norm(get(p + "ln_2.weight"), get(p + "ln_2.bias")),
                w_up=get(p + "mlp.c_fc.weight"), b_up=get(p + "mlp.c_fc.bias"),
                w_down=get(p + "mlp.c_proj.weight"),
                b_down=get(p + "mlp.c_proj.bias"),
            ))
        return DecoderWeights(
            config=c, embedding=get("wte.weight"), blocks=tuple(blocks),
            final_norm=Norm(get("ln_f.weight"), get("ln_f.bias")), positions=get("wpe.weight"),
            unembedding=None,
        )
    gemma = c.arch == "gemma3"
    one = 1.0 if gemma else 0.0
    for i in range(c.n_layers):
        p = f"layers.{i}."
        a = p + "self_attn."
        m = p + "mlp."
        ffn_norm = p + ("pre_feedforward_layernorm.weight" if gemma
                        else "post_attention_layernorm.weight")
        blocks.append(Block(
            attn_norm=Norm(get(p + "input_layernorm.weight", plus=one)),
            wq=get(a + "q_proj.weight", transpose=True),
            wk=get(a + "k_proj.weight", transpose=True),
            wv=get(a + "v_proj.weight", transpose=True),
            wo=get(a + "o_proj.weight", transpose=True),
            bq=opt(a + "q_proj.bias"), bk=opt(a + "k_proj.bias"), bv=opt(a + "v_proj.bias"),
            ffn_norm=Norm(get(ffn_norm, plus=one)),
            w_gate=get(m + "gate_proj.weight", transpose=True),
            w_up=get(m + "up_proj.weight", transpose=True),
            w_down=get(m + "down_proj.weight", transpose=True),
            q_norm=get(a + "q_norm.weight", plus=1.0) if gemma else None,
            k_norm=get(a + "k_norm.weight", plus=1.0) if gemma else None,
            post_attn_norm=Norm(get(p + "post_attention_layernorm.weight", plus=1.0))
            if gemma else None,
            post_ffn_norm=Norm(get(p + "post_feedforward_layernorm.weight", plus=1.0))
            if gemma else None,
        ))
    head = tensors.get("lm_head.weight")
    return DecoderWeights(
        config=c, embedding=get("embed_tokens.weight"), blocks=tuple(blocks),
        final_norm=Norm(get("norm.weight", plus=one)),
        unembedding=None if head is None else jnp.asarray(head, dtype=dtype),
    )


def read_hf_folder(folder: Path) -> tuple[dict[str, Any], Any]:
    """`config.json` (parsed) and the `tokenizers.Tokenizer` of `tokenizer.json`.

    Raises:
        ValueError: a file is missing or unreadable (named).
    """
    from tokenizers import Tokenizer

    for f in ("config.json", "tokenizer.json"):
        if not (folder / f).is_file():
            raise ValueError(
                f"path: {folder} is not a Hugging Face model folder: it has no {f} (expected "
                "config.json, *.safetensors and tokenizer.json)."
            )
    try:
        cfg = json.loads((folder / "config.json").read_text())
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the cause
        raise ValueError(
            f"path: {folder}: config.json or tokenizer.json unreadable ({exc})."
        ) from exc
    return cfg, tok
