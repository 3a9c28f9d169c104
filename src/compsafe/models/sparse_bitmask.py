"""The compressed-tensors sparse layouts (``sparse-bitmask``, ``sparse-24-bitmask``): encode, decode, recognise.

Why here, written out: compressed-tensors defined these layouts (0.12 and earlier: ``BitmaskCompressor``,
``Sparse24BitMaskCompressor``), and vLLM and older transformers read them, but compressed-tensors 0.15+ (0.20.1
is installed here) removed the compressors while keeping the config classes. A pruned variant is only smaller
on disk in a sparse layout, so compsafe writes the published layout itself, tensor for tensor, and decodes it
in its own loader (``load_sparse_folder``): plain ``transformers.from_pretrained`` with compressed-tensors 0.20
ignores ``sparsity_config`` and would leave those weights random.

Per compressed weight ``<module>.weight`` (names, dtypes and bit order as compressed-tensors 0.12.2):

* ``sparse-bitmask``: ``<module>.shape`` int64 ``[2]``; ``<module>.compressed`` the non-zero values in row-major
  order at the weight's dtype; ``<module>.bitmask`` uint8 ``[rows, ceil(cols / 8)]``, ``numpy.packbits(mask,
  axis=-1, bitorder="little")``; ``<module>.row_offsets`` int64 ``[rows]``, where each row's values start;
* ``sparse-24-bitmask``: ``<module>.shape`` int64 ``[2, 1]``; ``<module>.compressed`` ``[rows, cols / 2]`` (the
  two kept values of every 4, in order); ``<module>.bitmask`` as above (the kept positions, two per group of
  four: a group with fewer than two non-zeros keeps its first zeros, exactly as compressed-tensors' top-2).

Decoding scatters the values into zeros at the mask: bit-identical to the weights written (a ``-0.0`` reads back
as ``0.0``; pruning writes ``+0.0``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

BITMASK = "sparse-bitmask"
BITMASK_24 = "sparse-24-bitmask"
LAYOUTS = (BITMASK, BITMASK_24)
LEAVES = ("shape", "compressed", "bitmask", "row_offsets")
PLAIN_TRANSFORMERS_NOTE = (
    "plain transformers.from_pretrained cannot load a sparse-bitmask folder with compressed-tensors >= 0.15 "
    "(it ignores sparsity_config and leaves those weights random): load it with compsafe or compressed-tensors "
    "<= 0.14, or export --format dense"
)


def pack_bitmask(mask: torch.Tensor) -> torch.Tensor:
    """``[rows, cols]`` bool -> ``[rows, ceil(cols / 8)]`` uint8, little bit order (compressed-tensors')."""
    return torch.from_numpy(np.packbits(mask.cpu().numpy(), axis=-1, bitorder="little"))


def unpack_bitmask(packed: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """The inverse of ``pack_bitmask``."""
    bits = np.unpackbits(packed.cpu().numpy(), axis=-1, count=shape[-1], bitorder="little")
    return torch.from_numpy(bits.reshape(shape).astype(bool))


def is_two_four(weight: torch.Tensor) -> bool:
    """Every group of 4 consecutive inputs of every row holds at most 2 non-zeros (storable as 2:4)."""
    rows, cols = weight.shape
    return cols % 4 == 0 and bool(((weight != 0).reshape(rows, cols // 4, 4).sum(-1) <= 2).all())


def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """compressed-tensors' 2:4 bytemask: the top-2 |w| of every group of 4 (``topk``, as its writer chose)."""
    groups = weight.reshape(-1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, groups.abs().float().topk(2, dim=1).indices, True)
    return keep.reshape(weight.shape)


def encode(weight: torch.Tensor, layout: str) -> dict[str, torch.Tensor]:
    """The tensors (leaf name -> tensor) that store one ``[rows, cols]`` weight in ``layout``."""
    weight = weight.detach().cpu()
    rows, cols = weight.shape
    if layout == BITMASK_24:
        mask = two_four_mask(weight)
        return {"shape": torch.tensor([rows, cols], dtype=torch.int64).reshape(-1, 1),
                "compressed": weight[mask].reshape(rows, cols // 2).contiguous(), "bitmask": pack_bitmask(mask)}
    mask = weight != 0
    counts = mask.sum(dim=-1)
    return {"shape": torch.tensor([rows, cols], dtype=torch.int64), "compressed": weight[mask].contiguous(),
            "bitmask": pack_bitmask(mask), "row_offsets": (torch.cumsum(counts, 0) - counts).to(torch.int64)}


def decode(leaves: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense weight from its ``encode`` tensors (either layout)."""
    shape = [int(v) for v in leaves["shape"].flatten().tolist()]
    values = leaves["compressed"].flatten()
    dense = torch.zeros(shape, dtype=values.dtype)
    dense[unpack_bitmask(leaves["bitmask"], shape)] = values
    return dense


def encoded_bytes(weight: torch.Tensor, layout: str) -> int:
    """Bytes ``encode(weight, layout)`` writes, computed without encoding (the size accounting uses it)."""
    rows, cols = weight.shape
    mask_bytes = rows * ((cols + 7) // 8)
    if layout == BITMASK_24:
        return rows * cols // 2 * weight.element_size() + mask_bytes + 16
    return int((weight != 0).sum().item()) * weight.element_size() + mask_bytes + 8 * rows + 16


def sparsity_layout(folder: Path) -> str | None:
    """``sparse-bitmask`` / ``sparse-24-bitmask`` when ``folder/config.json`` declares that sparsity format."""
    quantization = _quantization_config(folder)
    sparsity = quantization.get("sparsity_config") if quantization else None
    layout = sparsity.get("format") if isinstance(sparsity, dict) else None
    return layout if layout in LAYOUTS else None


def dense_state(folder: Path) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Every tensor of ``folder``'s safetensors files, sparse weights decoded to ``<module>.weight``, and the
    layers a mixed folder stores quantized (the int8 layers of a pruned ``+keep8`` variant) dequantized as
    compressed-tensors does (``models.ct_quantized``); and the names of the modules so decoded (their weights
    are ``[out, in]``, which a ``Conv1D`` stores transposed)."""
    from safetensors.torch import load_file

    from compsafe.models.ct_quantized import QUANTIZED_LEAVES, dequantize, is_quantized_module, layer_bits

    raw: dict[str, torch.Tensor] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        raw.update(load_file(str(path)))
    by_module: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in raw.items():
        module, _, leaf = name.rpartition(".")
        by_module.setdefault(module, {})[leaf] = tensor
    sparse = {module for module, leaves in by_module.items() if "bitmask" in leaves}
    quantized = {module for module, leaves in by_module.items() if is_quantized_module(leaves)} - sparse
    state = {name: tensor for name, tensor in raw.items() if name.rpartition(".")[0] not in sparse | quantized}
    quantization = _quantization_config(folder) if quantized else None
    for module in sparse | quantized:
        leaves = by_module[module]
        encoded = LEAVES if module in sparse else QUANTIZED_LEAVES
        weight = {k: v for k, v in leaves.items() if k in encoded}
        state[f"{module}.weight"] = (
            decode(weight) if module in sparse else dequantize(weight, layer_bits(quantization, module))
        )
        state.update({f"{module}.{k}": v for k, v in leaves.items() if k not in encoded})  # a bias stays as it is
    return state, sparse | quantized


def _quantization_config(folder: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    quantization = config.get("quantization_config") if isinstance(config, dict) else None
    return quantization if isinstance(quantization, dict) else None


def sparsity_config(layout: str, targets: list[str], global_sparsity: float) -> dict[str, Any]:
    """The ``sparsity_config`` block, validated by compressed-tensors' own (still shipped) config classes."""
    from compressed_tensors.config import SparsityCompressionConfig

    structure = "2:4" if layout == BITMASK_24 else "unstructured"
    config = {"format": layout, "targets": targets, "ignore": [], "global_sparsity": global_sparsity,
              "sparsity_structure": structure}
    SparsityCompressionConfig.load_from_registry(layout, **config)
    return config
