"""Write a variant as a llama.cpp GGUF file with the maintained ``gguf`` package (``--format gguf``).

Why only the ``q4_0`` / ``q8_0`` recipes quantize here: they are llama.cpp's own block formats, reproduced bit
for bit (``compress.ggml``), so the blocks this writer packs from the variant's grid are exactly the weights
that were evaluated (checked before writing: ``gguf.quants.dequantize`` of every packed tensor must equal the
in-memory weight). Any other variant is written unquantized (its weights at the model's dtype: BF16/F16/F32
tensors), never re-quantized to a format it was not measured in. 1-D tensors (norms) are F32, as llama.cpp
expects.

Scope: llama-architecture models (SmolLM2, Llama, ...). The metadata and tokenizer come from the base's own
GGUF when the base was one (the embedded default model, a ``.gguf`` file): every key but the file type is
copied. For a Hugging Face folder they are written as llama.cpp's ``convert_hf_to_gguf.py`` does for a llama
model with a byte-level BPE tokenizer (``tokenizer.ggml.model = gpt2``). Tensors are named by gguf-py's own
llama name map, and the query/key rows are permuted to llama.cpp's rotary layout (transformers' GGUF loader
undoes it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compsafe.errors import ConfigError

SUPPORTED = ("llama",)
SKIPPED_KEYS = ("GGUF.", "general.architecture", "general.file_type", "general.quantization_version")


def check_architecture(model: nn.Module) -> None:
    """A one-line ``ConfigError`` for an architecture this writer does not support."""
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED:
        raise ConfigError(
            f"GGUF export supports llama-architecture models only (this one is {model_type!r}): export it with "
            "--format compressed-tensors or dense"
        )


def permute_rows(data: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's query/key row order (``convert_hf_to_gguf.LlamaModel.permute``); rows may be packed blocks."""
    return data.reshape(n_head, 2, data.shape[0] // n_head // 2, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


def block_bytes(codes: torch.Tensor, scale: torch.Tensor, bits: int) -> np.ndarray:
    """``[rows, in / 32 * type_size]`` uint8 blocks of Q4_0 / Q8_0: fp16 scale, then the codes (Q4_0: the first
    16 codes + 8 in the low nibbles, the last 16 in the high ones), as ggml lays them out."""
    rows = codes.shape[0]
    n_blocks = codes.numel() // 32
    d = scale.to(torch.float16).numpy().reshape(n_blocks, 1).view(np.uint8)
    if bits == 8:
        qs = codes.to(torch.int8).numpy().reshape(n_blocks, 32).view(np.uint8)
    else:
        nibbles = (codes + 8).to(torch.uint8).numpy().reshape(n_blocks, 2, 16)
        qs = nibbles[:, 0, :] | (nibbles[:, 1, :] << np.uint8(4))
    return np.concatenate([d, qs], axis=1).reshape(rows, -1)


def float_type(tensor: torch.Tensor) -> tuple[np.ndarray, Any]:
    """A tensor at its own precision: ``(array, GGML type)``; 1-D ones as F32 (llama.cpp's norms)."""
    import gguf

    if tensor.ndim == 1 or tensor.dtype == torch.float32:
        return tensor.float().numpy(), gguf.GGMLQuantizationType.F32
    if tensor.dtype == torch.float16:
        return tensor.numpy(), gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(tensor.float().numpy(), gguf.GGMLQuantizationType.BF16), gguf.GGMLQuantizationType.BF16


def quantized_tensor(weight: torch.Tensor, grid: Any, name: str, ggml_type: str) -> tuple[np.ndarray, Any]:
    """The blocks of one quantized weight, checked to decode to exactly the weight that was evaluated."""
    import gguf

    from compsafe.export.packed import grid_codes

    codes, scale, _ = grid_codes(weight, grid, name)
    qtype = gguf.GGMLQuantizationType[ggml_type]
    blocks = block_bytes(codes, scale, grid.bits)
    decoded = torch.from_numpy(gguf.quants.dequantize(blocks, qtype).reshape(weight.shape).copy())
    if not torch.equal(decoded.to(weight.dtype), weight):
        raise ConfigError(f"the weights of {name} are not on llama.cpp's {ggml_type} grid: cannot write them exactly")
    return blocks, qtype


def gguf_tensors(model: nn.Module, grids: dict[str, Any], ggml_type: str | None) -> list[tuple[str, np.ndarray, Any]]:
    """``(gguf name, data, type)`` for every tensor of a llama ``model`` (a tied head once, as token_embd)."""
    import gguf

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    seen: set[int] = set()
    out = []
    for hf_name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        target = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ConfigError(f"GGUF export: no llama.cpp name for tensor {hf_name!r}: export --format dense instead")
        module = hf_name.rsplit(".", 1)[0]
        tensor = tensor.detach().cpu()
        grid = grids.get(module)
        if grid is not None and ggml_type is not None and hf_name.endswith(".weight") and (
            grid.group_size, f"Q{grid.bits}_0") == (32, ggml_type):  # a +keep8 layer's int8 grid is not a block
            data, qtype = quantized_tensor(tensor, grid, module, ggml_type)
        else:
            data, qtype = float_type(tensor)
        leaf = module.rsplit(".", 1)[-1]
        if leaf in heads and tensor.ndim == 2:
            data = permute_rows(data, heads[leaf])
        out.append((target, data, qtype))
    return out


def copy_metadata(writer: Any, source: Path) -> None:
    """Every key of the base's GGUF (architecture, hyper-parameters, tokenizer, chat template) but the file type."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(source))
    for key, field in reader.fields.items():
        if key.startswith(SKIPPED_KEYS) or not field.types:
            continue
        sub_type = field.types[-1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub_type)


def hf_metadata(writer: Any, model: nn.Module, tokenizer: Any) -> None:
    """Llama hyper-parameters and a byte-level BPE tokenizer, as ``convert_hf_to_gguf.py`` writes them."""
    config = model.config
    writer.add_name(str(getattr(config, "_name_or_path", "") or "compsafe-export").rsplit("/", 1)[-1])
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_rope_dimension_count(head_dim)
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta") or getattr(config, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    bpe_tokenizer(writer, tokenizer)


def bpe_tokenizer(writer: Any, tokenizer: Any) -> None:
    """``tokenizer.ggml.*`` for a byte-level BPE tokenizer (GPT-2 style, as SmolLM2's); else a one-line error."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise ConfigError(
            "GGUF export writes byte-level BPE tokenizers (GPT-2 style) only; this model's is not: export it with "
            "--format compressed-tensors or dense"
        )
    vocab = model["vocab"]
    size = max([*vocab.values(), *(a["id"] for a in spec.get("added_tokens", []))]) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [5] * size  # UNUSED until named
    for token, index in vocab.items():
        tokens[index], types[index] = token, 1  # NORMAL
    for added in spec.get("added_tokens", []):
        tokens[added["id"]], types[added["id"]] = added["content"], 3 if added.get("special") else 4
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    for setter, value in ((writer.add_bos_token_id, tokenizer.bos_token_id), (writer.add_eos_token_id,
                          tokenizer.eos_token_id), (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if value is not None:
            setter(value)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(handle: Any, grids: dict[str, Any], ggml_type: str | None, path: Path,
               base_gguf: Path | None) -> dict[str, Any]:
    """Write ``handle``'s model to ``path``; returns what the manifest records."""
    import gguf

    model = handle.model
    check_architecture(model)
    tensors = gguf_tensors(model, grids, ggml_type)
    writer = gguf.GGUFWriter(str(path), "llama")
    if base_gguf is not None:
        copy_metadata(writer, base_gguf)
    else:
        hf_metadata(writer, model, handle.tokenizer)
    file_type = {"Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    fallback = {torch.bfloat16: gguf.LlamaFileType.MOSTLY_BF16, torch.float16: gguf.LlamaFileType.MOSTLY_F16}
    writer.add_file_type(file_type.get(ggml_type or "", fallback.get(handle.dtype, gguf.LlamaFileType.ALL_F32)))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, data, qtype in tensors:
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    quantized = sum(1 for _, _, qtype in tensors if qtype.name == ggml_type)
    return {"ggml_type": ggml_type, "quantized_tensors": quantized, "tensors": len(tensors),
            "metadata_from": str(base_gguf) if base_gguf is not None else "the model's config and tokenizer"}
