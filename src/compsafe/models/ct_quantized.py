"""Decode the compressed-tensors quantized layers compsafe writes (``pack-quantized``, ``int-quantized``) to dense
weights.

Why compsafe decodes them itself: plain transformers does this for a folder that is only quantized, but a folder
that also stores pruned layers in a sparse layout (a ``mag-50+keep8=...`` variant: pruned layers as bitmasks, the
kept layers as int8 codes) is read by compsafe's sparse loader (``models.sparse_bitmask.dense_state``), which has
to rebuild both kinds. The arithmetic is the format's own: codes unpacked with compressed-tensors'
``unpack_from_int32`` (or read as int8 minus the int8 zero point), times the group scale, in the scale's dtype --
what compressed-tensors' decompressor computes, so the weights are those a compressed-tensors loader would see.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from compsafe.errors import ModelLoadError

QUANTIZED_LEAVES = ("weight_packed", "weight_shape", "weight_scale", "weight_zero_point", "weight")


def is_quantized_module(leaves: dict[str, torch.Tensor]) -> bool:
    """The stored tensors of one module hold a quantized weight (a scale beside packed or int8 codes)."""
    return "weight_scale" in leaves and ("weight_packed" in leaves or "weight_zero_point" in leaves)


def dequantize(leaves: dict[str, torch.Tensor], bits: int) -> torch.Tensor:
    """The ``[out, in]`` weight of one layer from its compressed-tensors tensors (local names), in the scale's
    dtype: ``code * scale`` (``pack-quantized``, symmetric) or ``(code - zero) * scale`` (``int-quantized``)."""
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    scale = leaves["weight_scale"]
    if "weight_packed" in leaves:
        shape = torch.Size(int(v) for v in leaves["weight_shape"].flatten().tolist())
        codes = unpack_from_int32(leaves["weight_packed"], bits, shape).to(scale.dtype)
    else:
        codes = leaves["weight"].to(scale.dtype)
        zero = leaves["weight_zero_point"].to(scale.dtype)
        codes = codes - zero.repeat_interleave(codes.shape[1] // zero.shape[1], dim=1)
    return codes * scale.repeat_interleave(codes.shape[1] // scale.shape[1], dim=1)


def layer_bits(quantization: dict[str, Any] | None, module: str) -> int:
    """``num_bits`` of the config group whose targets name ``module`` (a module name or ``re:`` pattern); a
    module no group names is a one-line ``ModelLoadError`` (its codes cannot be read without their width)."""
    groups = (quantization or {}).get("config_groups") or {}
    for group in groups.values():
        for target in group.get("targets", []):
            named = re.fullmatch(target[3:], module) if target.startswith("re:") else target == module
            if named:
                return int(group["weights"]["num_bits"])
    raise ModelLoadError(
        f"{module} is stored quantized but no config group of config.json's quantization_config names it: "
        "re-export the model"
    )
