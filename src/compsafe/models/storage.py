"""What a model folder (or .gguf file) really costs on disk: bytes and bits per weight, read from its files.

Why from the files: a folder someone else compressed (a compressed-tensors, GPTQ or GGUF export) says its size
in its tensors, not in a recipe, so an imported variant gets the same accounting as a compsafe recipe --
``effective_bits_per_weight`` over the linear layers' weights (codes, scales, zero points and any other
per-layer metadata included) and the bytes of every tensor. Only headers and a few tiny shape tensors are
read, never the weights themselves.

A "target" is a 2-D weight of a linear layer: every module that stores a matrix, except embeddings, the output
head (``lm_head``/``output``; it is counted when it is quantized, i.e. stored packed) and norms, matching what
compsafe's recipes compress.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

NOT_TARGETS = ("embed", "wte", "wpe", "token_embd", "norm", "ln_")
HEADS = ("lm_head", "output")
PACKED_KEYS = ("weight_packed", "qweight", "bitmask")  # compressed-tensors packed/sparse, GPTQ


def _module(name: str) -> tuple[str, str]:
    module, _, leaf = name.rpartition(".")
    return module, leaf


def _is_target(module: str, leaves: dict[str, tuple[int, int]]) -> bool:
    """A linear layer's weight: a packed matrix, or a plain 2-D ``weight`` outside embeddings/norms/head."""
    lowered = module.lower()
    if any(part in lowered for part in NOT_TARGETS):
        return False
    if any(key in leaves for key in PACKED_KEYS):
        return True
    return "weight" in leaves and leaves["weight"][1] == 2 and lowered.rsplit(".", 1)[-1] not in HEADS


def _safetensors_tensors(folder: Path) -> dict[str, dict[str, tuple[int, int, int]]]:
    """module -> leaf -> (bytes, ndim, numel) for every tensor of every ``*.safetensors`` file."""
    from safetensors import safe_open

    modules: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                piece = handle.get_slice(name)
                shape = piece.get_shape()
                numel = 1
                for dim in shape:
                    numel *= dim
                size = _DTYPE_BYTES.get(piece.get_dtype(), 2)
                module, leaf = _module(name)
                if leaf in ("weight_shape", "shape"):  # compressed-tensors: the unpacked shape, 2 numbers
                    shape_values = handle.get_tensor(name).flatten().tolist()
                    numel_unpacked = int(shape_values[0]) * int(shape_values[1])
                    modules[module]["_unpacked"] = (0, 2, numel_unpacked)
                if leaf == "qweight":  # GPTQ: [in * bits / 32, out]; its weights are g_idx's length times out
                    modules[module]["_outputs"] = (0, 0, int(shape[-1]))
                modules[module][leaf] = (int(numel * size), len(shape), numel)
    return modules


_DTYPE_BYTES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
                "I8": 1, "U8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1}


def _gptq_numel(module: dict[str, tuple[int, int, int]], bits: int | None) -> int:
    """Weights in a GPTQ ``qweight`` ``[in * bits / 32, out]`` int32 matrix: ``in`` (``g_idx``'s length) times
    ``out`` -- right for a layer whose width a ``dynamic`` override changed -- else from the config's bits."""
    if "g_idx" in module:
        return module["g_idx"][2] * module["_outputs"][2]
    return module["qweight"][2] * 32 // (bits or 4)


def folder_storage(location: Path) -> dict[str, Any]:
    """``effective_bits_per_weight`` (targets), ``packed_size_bytes`` (all tensors) and ``target_numel``."""
    location = Path(location)
    if location.is_file() or location.suffix == ".gguf":
        return gguf_storage(location)
    ggufs = sorted(location.glob("*.gguf"))
    if ggufs and not list(location.glob("*.safetensors")):
        return gguf_storage(ggufs[0])
    bits_hint = _config_bits(location)
    modules = _safetensors_tensors(location)
    total = sum(b for leaves in modules.values() for b, _, _ in leaves.values())
    target_bytes = target_numel = 0
    for module, leaves in modules.items():
        if not _is_target(module, {k: (v[0], v[1]) for k, v in leaves.items()}):
            continue
        if "_unpacked" in leaves:
            numel = leaves["_unpacked"][2]
        elif "qweight" in leaves:
            numel = _gptq_numel(leaves, bits_hint)
        else:
            numel = leaves["weight"][2]
        target_numel += numel
        target_bytes += sum(b for leaf, (b, _, _) in leaves.items() if leaf != "bias")
    return _result(total, target_bytes, target_numel, "safetensors")


def gguf_storage(path: Path) -> dict[str, Any]:
    """The same accounting for a GGUF file, from its tensor table (types and byte counts)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    total = target_bytes = target_numel = 0
    for tensor in reader.tensors:
        total += int(tensor.n_bytes)
        name = tensor.name.lower()
        if len(tensor.shape) == 2 and not any(p in name for p in NOT_TARGETS) and not name.startswith("output."):
            target_bytes += int(tensor.n_bytes)
            target_numel += int(tensor.n_elements)
    return _result(total, target_bytes, target_numel, "gguf")


def _result(total: int, target_bytes: int, target_numel: int, source: str) -> dict[str, Any]:
    bits = 8 * target_bytes / target_numel if target_numel else None
    return {"effective_bits_per_weight": bits, "packed_size_bytes": total, "target_numel": target_numel,
            "accounted_from": source}


def _config_bits(folder: Path) -> int | None:
    """``bits`` of a GPTQ-style ``quantization_config`` (needed to count a ``qweight``'s weights)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    quant = config.get("quantization_config") if isinstance(config, dict) else None
    bits = quant.get("bits") if isinstance(quant, dict) else None
    return bits if isinstance(bits, int) else None


def stored_size(location: Path) -> dict[str, Any] | None:
    """``folder_storage``, or None when the files cannot be read as weights (the run reports "-" then)."""
    from safetensors import SafetensorError

    try:
        return folder_storage(location)
    except (OSError, ValueError, KeyError, IndexError, SafetensorError):
        return None
