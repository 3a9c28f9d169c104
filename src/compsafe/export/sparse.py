"""Write a pruned variant in compressed-tensors' sparse layouts (``sparse-bitmask``, ``sparse-24-bitmask``).

Why: a pruned model stored dense is as large as the original; in the bitmask layout a 50% pruned bf16 layer
takes ~9.1 bits per weight (the non-zero values, one mask bit per weight, a row offset per row) and a 2:4 layer
9 bits. compressed-tensors 0.20 no longer ships these compressors, so ``models.sparse_bitmask`` writes the
layout it published (0.12.2's tensor names, dtypes and bit order); compsafe's loader decodes it bit for bit.
Which layers: every pruned ``nn.Linear`` of the report that is not tied to another parameter (a head tied to
the embedding stays at its dtype, as in the packed export); with the 2:4 layout, only layers whose zeros are
2:4 (every layer a 2:4 recipe pruned). Everything else is stored at its dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from compsafe.errors import ConfigError
from compsafe.export.packed import saveable_state, shared_pointers
from compsafe.models.sparse_bitmask import BITMASK_24, encode, is_two_four, sparsity_config


def sparse_targets(model: nn.Module, layer_names: list[str], layout: str) -> list[str]:
    """The pruned layers that ``layout`` stores (see the module docstring)."""
    shared = shared_pointers(model.state_dict())
    targets = []
    for name in layer_names:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear) or module.weight.data_ptr() in shared:
            continue
        if layout == BITMASK_24 and not is_two_four(module.weight.detach()):
            continue
        targets.append(name)
    return targets


def write_sparse(
    model: nn.Module, layer_names: list[str], sparsity: float, layout: str, folder: Path
) -> dict[str, Any]:
    """Write ``model``'s weights into ``folder`` with the pruned layers ``layer_names`` in ``layout``; returns
    what the manifest records (and ``quantization_config`` for config.json)."""
    from huggingface_hub import save_torch_state_dict

    targets = sparse_targets(model, layer_names, layout)
    if not targets:
        raise ConfigError(f"no pruned layer of this variant can be stored as {layout}: export it with --format dense")
    state = model.state_dict()
    for name in targets:
        del state[f"{name}.weight"]
        state.update({f"{name}.{leaf}": t for leaf, t in encode(model.get_submodule(name).weight, layout).items()})
    save_torch_state_dict(saveable_state(state), folder, max_shard_size="5GB")
    from compressed_tensors import __version__ as ct_version

    return {
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "version": ct_version,
            "sparsity_config": sparsity_config(layout, targets, sparsity),
            "transform_config": {},
        },
        "sparse_layers": len(targets),
        "sparse_format": layout,
    }
