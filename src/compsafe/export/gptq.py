"""Write a quantized variant in the GPTQ checkpoint format (``qweight``/``qzeros``/``scales``/``g_idx``).

Why: GPTQ folders are what gptqmodel, optimum and (through them) transformers and vLLM load, and many published
quantized models ship that way. As for the compressed-tensors export (``export.packed``), nothing is
re-quantized: every compsafe quantizer records its grid (``compress.rtn.QuantGrid``), ``export.packed.grid_codes``
checks that every stored weight is an integer code on it, and the codes are packed in the layout of
``models.gptq_packing`` (gptqmodel 7.7.0's ``pack_original``, cited there), which also decodes it.

Per layer: the unsigned code is the grid's code plus ``2^(b-1)`` (symmetric grids: ``sym: true``, zero point
``2^(b-1)``) or the grid's own code and zero point (asymmetric); ``g_idx[i] = i // g`` (no act-order:
``desc_act: false``; a ragged last group is a shorter group); scales in float16 as the format stores them.
Symmetric variants are written in checkpoint format ``gptq`` (v1: zero points minus one, the format AutoGPTQ,
optimum and gptqmodel all read); asymmetric ones in ``gptq_v2`` (zero points as they are), because v1 cannot
hold a zero point of 0 for every reader (gptqmodel's v1 -> v2 conversion adds one to whole packed words, so a
stored -1 carries into the next field).

Which layers: every ``nn.Linear`` or transformers ``Conv1D`` with a 2/4/8-bit grid that is not tied to another
parameter. ``quantization_config`` names the scheme most weights share (``bits``, ``group_size``, ``sym``); a
layer on another scheme (a ``+keep8`` variant's int8 layers) gets a gptqmodel ``dynamic`` override
(``"+:^name$": {bits, group_size, sym}``) and a linear layer left unquantized a ``"-:^name$"`` exclusion, so a
loader does not expect packed tensors for it.

The dequantized weight, ``fp16(scale) * (q - z)``, differs from compsafe's in-memory variant by the float16
rounding of the scale (relative <= 2^-11; the manifest records the largest weight difference).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import torch
from torch import nn

from compsafe.compress.targets import compressible_linears, is_transposed, weight_view
from compsafe.errors import ConfigError
from compsafe.export.packed import grid_codes, saveable_state, shared_pointers
from compsafe.models.gptq_packing import PACKABLE_BITS, V1, V2, dequantize, pack_columns, pack_rows


def pack_gptq_layer(weight: torch.Tensor, grid: Any, name: str) -> dict[str, torch.Tensor]:
    """``qweight``, ``qzeros``, ``scales`` and ``g_idx`` of one ``[out, in]`` weight on ``grid``."""
    out_features, in_features = weight.shape
    codes, _, _ = grid_codes(weight, grid, name)  # signed (symmetric) or with the zero added (asymmetric)
    group = min(grid.group_size or in_features, in_features)
    groups = grid.scale.shape[1]
    if grid.symmetric:
        unsigned = codes + 2 ** (grid.bits - 1)
        zeros = torch.full((groups, out_features), 2 ** (grid.bits - 1), dtype=torch.int64)
    else:
        unsigned = codes
        zeros = grid.zero.round().to(torch.int64).t()
    return {
        "qweight": pack_rows(unsigned.t(), grid.bits),
        "qzeros": pack_columns(zeros - 1 if grid.symmetric else zeros, grid.bits),  # v1 for symmetric grids
        "scales": grid.scale.t().to(torch.float16).contiguous(),
        "g_idx": (torch.arange(in_features) // group).to(torch.int32),
    }


def _scheme(grid: Any) -> tuple[int, int, bool]:
    return grid.bits, grid.group_size or -1, grid.symmetric


def gptq_layers(model: nn.Module, grids: dict[str, Any]) -> dict[str, Any]:
    """The layers the GPTQ export packs (see the module doc), or a one-line ``ConfigError`` naming why none."""
    shared = shared_pointers(model.state_dict())
    layers = {}
    for name, grid in grids.items():
        module = model.get_submodule(name)
        if not (isinstance(module, nn.Linear) or is_transposed(module)) or module.weight.data_ptr() in shared:
            continue
        if grid.bits not in PACKABLE_BITS:
            raise ConfigError(
                f"the GPTQ format is written for 2-, 4- and 8-bit grids ({name} is int{grid.bits}): export it with "
                "--format compressed-tensors"
            )
        layers[name] = grid
    if not layers:
        raise ConfigError("no layer of this variant is on an int grid: export it with --format dense")
    return layers


def quantization_config(model: nn.Module, layers: dict[str, Any]) -> dict[str, Any]:
    """config.json's ``quantization_config`` (transformers' ``GPTQConfig`` fields and gptqmodel's)."""
    from compsafe import __version__

    weights: Counter[tuple[int, int, bool]] = Counter()
    for name, grid in layers.items():
        weights[_scheme(grid)] += model.get_submodule(name).weight.numel()
    bits, group_size, sym = weights.most_common(1)[0][0]
    dynamic: dict[str, dict[str, Any]] = {}
    for name, grid in layers.items():
        if _scheme(grid) != (bits, group_size, sym):
            other_bits, other_group, other_sym = _scheme(grid)
            dynamic[f"+:^{re.escape(name)}$"] = {"bits": other_bits, "group_size": other_group, "sym": other_sym}
    for name, _ in compressible_linears(model, include_lm_head=False):
        if name not in layers:
            dynamic[f"-:^{re.escape(name)}$"] = {}
    if len({grid.symmetric for grid in layers.values()}) > 1:
        raise ConfigError("the GPTQ format holds one zero-point convention per folder: this variant mixes symmetric "
                          "and asymmetric grids; export it with --format compressed-tensors")
    checkpoint_format = V1 if sym else V2
    head = any(name.rsplit(".", 1)[-1] in ("lm_head", "output") for name in layers)
    return {
        "quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": False, "sym": sym,
        "checkpoint_format": checkpoint_format, "format": checkpoint_format, "pack_dtype": "int32",
        "lm_head": head, "true_sequential": True, "meta": {"quantizer": [f"compsafe:{__version__}"]},
        **({"dynamic": dynamic} if dynamic else {}),
    }


def write_gptq(model: nn.Module, grids: dict[str, Any], folder: Any) -> dict[str, Any]:
    """Write ``model``'s weights into ``folder`` with its quantized layers in the GPTQ layout; returns what the
    manifest records (and ``quantization_config`` for config.json)."""
    from huggingface_hub import save_torch_state_dict

    layers = gptq_layers(model, grids)
    config = quantization_config(model, layers)
    checkpoint_format = config["checkpoint_format"]
    state = model.state_dict()
    worst = 0.0
    for name, grid in layers.items():
        measured = weight_view(model.get_submodule(name)).detach().cpu()
        packed = pack_gptq_layer(measured, grid, name)
        worst = max(worst, (dequantize(packed, grid.bits, checkpoint_format) - measured.float()).abs().max().item())
        del state[f"{name}.weight"]
        state.update({f"{name}.{leaf}": tensor for leaf, tensor in packed.items()})
    save_torch_state_dict(saveable_state(state), folder, max_shard_size="5GB")
    return {"quantization_config": config, "gptq_layers": len(layers), "checkpoint_format": checkpoint_format,
            "max_abs_weight_difference": worst,
            "loads_with": "gptqmodel / optimum (transformers with them installed), compsafe"}
