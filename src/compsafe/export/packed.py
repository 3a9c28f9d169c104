"""Write a quantized variant in the compressed-tensors format: packed int codes plus compsafe's own group scales.

Why this format: it is what llm-compressor writes and what vLLM and plain ``transformers`` load (transformers
dequantizes it on load when no int kernel exists, as on a CPU), so the folder a user ships is the one that was
measured, at its real size. The codes are not re-derived by a second quantizer: every quantizer in compsafe
records the grid its weights sit on (``compress.rtn.QuantGrid``: per-group scale and zero point), and the
exporter divides the stored weights by those scales, checks that every code is an integer on the grid, and
packs it with the package's own ``pack_to_int32``. AWQ's scales are already folded into the preceding
operation (``compress.awq_fold``), so its stored weights are on the grid like RTN's and GPTQ's.

Layout, per quantized linear layer (names and shapes as compressed-tensors 0.20 defines them):

* symmetric grids (standard and narrow): ``pack-quantized``: ``weight_packed`` int32 (``bits`` per code),
  ``weight_scale`` ``[out, groups]`` in the model's dtype, ``weight_shape``;
* asymmetric grids: ``int-quantized``: ``weight`` int8 codes, ``weight_scale`` and an int8
  ``weight_zero_point``. compressed-tensors 0.20.1 cannot load a packed zero point through transformers (its
  load path allocates the zero point unpacked, its writer packs it), so asymmetric codes take a byte each;
* a group that does not divide the row (SmolLM2's 576 with g128: 4 x 128 + 64) is stored as groups of
  ``gcd(in, group)`` with the scale repeated, because the format needs equal groups: exact, at a few more
  scale bytes (counted in the size accounting).

The dequantized weight is ``code * scale`` in the scale's dtype: bit-exact with compsafe's in-memory variant in
float32; in bfloat16 it can differ by one bf16 rounding step (the in-memory variant rounds ``q * scale``
computed in float32, the loader multiplies by the bf16 scale). The export reports the max difference.
Layers without a grid (pruned, low-rank, kept layers) and tied weights are stored at their dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compsafe.compress.targets import is_transposed, weight_view
from compsafe.errors import ConfigError

PACKED = "pack-quantized"
INT_CODES = "int-quantized"


@dataclass
class PackedLayer:
    """One layer as the format stores it: its tensors (local names) and its ``QuantizationArgs`` fields."""

    tensors: dict[str, torch.Tensor]
    args: dict[str, Any]
    format: str


def storage_group(in_features: int, group_size: int | None) -> int | None:
    """The equal group size the format stores: compsafe's group when it divides the row, else the largest
    size that divides both (a ragged last group becomes whole groups with repeated scales); None: per row."""
    if group_size is None or group_size >= in_features:
        return None
    return math.gcd(in_features, group_size)


def _expand(params: torch.Tensor, in_features: int, group: int | None, stored: int | None) -> torch.Tensor:
    """``[out, compsafe groups]`` -> ``[out, stored groups]`` (each compsafe group repeated, cut at the row)."""
    if stored is None:
        return params[:, :1]
    group = min(group or in_features, in_features)
    return params.repeat_interleave(group // stored, dim=1)[:, : in_features // stored]


def grid_codes(weight: torch.Tensor, grid: Any, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(codes [out, in] int64, scale [out, stored groups], zero or None)`` of a stored weight on ``grid``.

    Raises ``ConfigError`` when a weight is not on its grid (a bug or a weight changed after compression):
    an export must never silently store different values than were measured.
    """
    out_features, in_features = weight.shape
    stored = storage_group(in_features, grid.group_size)
    scale = _expand(grid.scale, in_features, grid.group_size, stored)
    zero = None if grid.zero is None else _expand(grid.zero, in_features, grid.group_size, stored)
    width = stored or in_features
    full_scale = scale.repeat_interleave(width, dim=1)
    safe = torch.where(full_scale != 0, full_scale, torch.ones_like(full_scale))  # q4_0's d may be negative
    raw = weight.float() / safe
    codes = torch.round(raw)
    if zero is not None:
        codes = codes + zero.repeat_interleave(width, dim=1)
    low, high = (-(2 ** (grid.bits - 1)), 2 ** (grid.bits - 1) - 1) if grid.symmetric else (0, 2**grid.bits - 1)
    # a stored weight is q * scale rounded to its dtype: |raw - q| <= |q| * unit roundoff (bf16 int8: <= 0.25)
    slack = 0.01 + torch.round(raw).abs() * torch.finfo(weight.dtype).eps / 2
    off_grid = bool(((raw - torch.round(raw)).abs() > slack).any()) if raw.numel() else False
    if off_grid or (raw.numel() and (codes.min().item() < low or codes.max().item() > high)):
        raise ConfigError(f"the weights of {name} are not on their int{grid.bits} grid: cannot pack them exactly")
    return codes.long(), scale, zero


def pack_layer(weight: torch.Tensor, grid: Any, name: str, dtype: torch.dtype) -> PackedLayer:
    """The tensors compressed-tensors stores for one quantized ``[out, in]`` weight (see the module doc)."""
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32

    out_features, in_features = weight.shape
    codes, scale, zero = grid_codes(weight, grid, name)
    stored = storage_group(in_features, grid.group_size)
    args = {"num_bits": grid.bits, "type": "int", "symmetric": grid.symmetric, "dynamic": False,
            "strategy": "group" if stored else "channel", "group_size": stored}
    tensors: dict[str, torch.Tensor] = {"weight_scale": scale.to(dtype).contiguous()}
    if grid.symmetric:
        tensors["weight_packed"] = pack_to_int32(codes.to(torch.int8), grid.bits)
        tensors["weight_shape"] = torch.tensor([out_features, in_features], dtype=torch.int64)
        return PackedLayer(tensors, args, PACKED)
    offset = 2 ** (grid.bits - 1)  # the format's codes are signed: [0, 2^b) -> [-2^(b-1), 2^(b-1))
    assert zero is not None
    tensors["weight"] = (codes - offset).to(torch.int8).contiguous()
    tensors["weight_zero_point"] = (zero - offset).to(torch.int8).contiguous()
    return PackedLayer(tensors, args, INT_CODES)


def packed_state(
    model: nn.Module, grids: dict[str, Any], conv1d: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, PackedLayer]]:
    """The model's state dict with every packable layer replaced by its packed tensors.

    A layer is packed when it has a grid, is an ``nn.Linear`` and its weight is not shared with another
    parameter (a head tied to the embedding stays at its dtype: packing it would untie it). ``conv1d``: a
    transformers ``Conv1D`` (GPT-2) too, packed as its ``[out, in]`` matrix -- only for folders compsafe's own
    loader reads (the sparse ones), which transposes it back; compressed-tensors' loader replaces only
    ``nn.Linear`` modules, so a plain compressed-tensors folder keeps a ``Conv1D`` at its dtype.
    """
    state = model.state_dict()
    shared = shared_pointers(state)
    layers: dict[str, PackedLayer] = {}
    for name, grid in grids.items():
        module = model.get_submodule(name)
        linear = isinstance(module, nn.Linear) or (conv1d and is_transposed(module))
        if not linear or module.weight.data_ptr() in shared:
            continue
        layer = pack_layer(weight_view(module).detach().cpu(), grid, name, module.weight.dtype)
        layers[name] = layer
        del state[f"{name}.weight"]
        state.update({f"{name}.{key}": tensor for key, tensor in layer.tensors.items()})
    return saveable_state(state), layers


def shared_pointers(state: dict[str, torch.Tensor]) -> set[int]:
    """Storage pointers used by more than one entry of ``state`` (tied weights)."""
    counts: dict[int, int] = {}
    for value in state.values():
        counts[value.data_ptr()] = counts.get(value.data_ptr(), 0) + 1
    return {pointer for pointer, count in counts.items() if count > 1}


def saveable_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` on the CPU, contiguous, tied parameters once under their first name (as save_pretrained does)."""
    seen: set[int] = set()
    for key in list(state):
        tensor = state[key]
        if tensor.device.type != "meta" and tensor.numel() and tensor.data_ptr() in seen:
            del state[key]
            continue
        seen.add(tensor.data_ptr())
        state[key] = tensor.detach().cpu().contiguous()
    return state


def quantization_config(layers: dict[str, PackedLayer]) -> dict[str, Any]:
    """The ``quantization_config`` of config.json: one config group per distinct scheme, naming its layers."""
    from compressed_tensors import __version__ as ct_version
    from compressed_tensors.quantization import QuantizationConfig

    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for name, layer in layers.items():
        key = (layer.format, *sorted(layer.args.items(), key=lambda kv: kv[0]))
        group = groups.setdefault(key, {"targets": [], "weights": layer.args, "format": layer.format})
        group["targets"].append(name)
    formats = {layer.format for layer in layers.values()}
    config = {
        "quant_method": "compressed-tensors",
        "format": formats.pop() if len(formats) == 1 else "mixed-precision",
        "quantization_status": "compressed",
        "config_groups": {f"group_{i}": group for i, group in enumerate(groups.values())},
        "ignore": [],
        "version": ct_version,
    }
    QuantizationConfig.model_validate(config)  # the package's own check of what we wrote
    return config


def dequantized(layer: PackedLayer, grid: Any) -> torch.Tensor:
    """What a loader rebuilds from ``layer`` (codes times the stored scale, in the scale's dtype)."""
    from compsafe.models.ct_quantized import dequantize

    return dequantize(layer.tensors, grid.bits)


def max_weight_difference(model: nn.Module, layers: dict[str, PackedLayer], grids: dict[str, Any]) -> float:
    """The largest |rebuilt - measured| over the packed ``layers`` (0 in float32; one rounding step in bf16)."""
    worst = 0.0
    for name, layer in layers.items():
        measured = weight_view(model.get_submodule(name)).detach().cpu().float()
        worst = max(worst, (dequantized(layer, grids[name]).float() - measured).abs().max().item())
    return worst


def write_packed(model: nn.Module, grids: dict[str, Any], folder: Any) -> dict[str, Any]:
    """Write ``model``'s weights into ``folder`` (safetensors, sharded like save_pretrained) with the packed
    layers, and return what the manifest records: the format, how many layers were packed and the largest
    difference between a rebuilt weight and the measured one."""
    from huggingface_hub import save_torch_state_dict

    state, layers = packed_state(model, grids)
    if not layers:
        raise ConfigError("no layer of this variant is on an int grid: export it with --format dense")
    worst = max_weight_difference(model, layers, grids)
    save_torch_state_dict(state, folder, max_shard_size="5GB")
    formats = sorted({layer.format for layer in layers.values()})
    return {
        "quantization_config": quantization_config(layers),
        "packed_layers": len(layers),
        "packed_formats": formats,
        "max_abs_weight_difference": worst,
    }
