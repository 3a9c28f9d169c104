"""Write a pruned variant in compressed-tensors' sparse layouts (``sparse-bitmask``, ``sparse-24-bitmask``).

Why: a pruned model stored dense is as large as the original; in the bitmask layout a 50% pruned bf16 layer
takes ~9.1 bits per weight (the non-zero values, one mask bit per weight, a row offset per row) and a 2:4 layer
9 bits. compressed-tensors 0.20 no longer ships these compressors, so ``models.sparse_bitmask`` writes the
layout it published (0.12.2's tensor names, dtypes and bit order); compsafe's loader decodes it bit for bit.
Which layers: every pruned ``nn.Linear`` -- or transformers ``Conv1D`` (GPT-2) -- of the report that is not
tied to another parameter (a head tied to the embedding stays at its dtype, as in the packed export); with the
2:4 layout, only layers whose zeros are 2:4 (every layer a 2:4 recipe pruned). Everything else is stored at its
dtype.

A ``Conv1D`` holds its weight transposed, ``[in, out]``. The layouts store every matrix as ``[out, in]``, the
orientation of an ``nn.Linear`` weight and of compsafe's pruning (``compress.targets.weight_view``): a row is an
output, and 2:4's groups of four run along the input dimension, as the pruning chose them (stored ``[in,
out]``, the groups would run along outputs and a 2:4 layer would not be 2:4). compsafe's loader transposes a
decoded ``Conv1D`` weight back (``models.loading.load_sparse_folder``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from compsafe.compress.targets import is_transposed, weight_view
from compsafe.errors import ConfigError
from compsafe.export.packed import max_weight_difference, packed_state, quantization_config, shared_pointers
from compsafe.models.sparse_bitmask import BITMASK_24, encode, is_two_four, sparsity_config


def sparse_targets(model: nn.Module, layer_names: list[str], layout: str) -> list[str]:
    """The pruned layers that ``layout`` stores (see the module docstring)."""
    shared = shared_pointers(model.state_dict())
    targets = []
    for name in layer_names:
        module = model.get_submodule(name)
        linear = isinstance(module, nn.Linear) or is_transposed(module)
        if not linear or module.weight.data_ptr() in shared:
            continue
        if layout == BITMASK_24 and not is_two_four(weight_view(module).detach()):
            continue
        targets.append(name)
    return targets


def write_sparse(
    model: nn.Module, layer_names: list[str], sparsity: float, layout: str, folder: Path,
    grids: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model``'s weights into ``folder`` with the pruned layers ``layer_names`` in ``layout`` and the
    layers with an int grid in ``grids`` (a pruned ``+keep8`` variant's int8 layers) packed as
    ``export.packed`` packs them; returns what the manifest records (and ``quantization_config`` for
    config.json: the ``sparsity_config`` and, when layers were packed, their ``config_groups``)."""
    from compressed_tensors import __version__ as ct_version
    from huggingface_hub import save_torch_state_dict

    targets = sparse_targets(model, layer_names, layout)
    if not targets:
        raise ConfigError(f"no pruned layer of this variant can be stored as {layout}: export it with --format dense")
    grids = {name: grid for name, grid in (grids or {}).items() if name not in targets}
    state, packed = packed_state(model, grids, conv1d=True)
    for name in targets:
        del state[f"{name}.weight"]
        leaves = encode(weight_view(model.get_submodule(name)), layout)
        state.update({f"{name}.{leaf}": tensor for leaf, tensor in leaves.items()})
    save_torch_state_dict(state, folder, max_shard_size="5GB")
    quantization: dict[str, Any] = {"quant_method": "compressed-tensors", "version": ct_version}
    info: dict[str, Any] = {"sparse_layers": len(targets), "sparse_format": layout}
    if packed:  # mixed: the quantized layers' config groups beside the sparsity config, as llm-compressor writes
        quantization.update(quantization_config(packed))
        info.update(packed_layers=len(packed), packed_formats=sorted({layer.format for layer in packed.values()}),
                    max_abs_weight_difference=max_weight_difference(model, packed, grids))
    quantization.update(sparsity_config=sparsity_config(layout, targets, sparsity), transform_config={})
    return {"quantization_config": quantization, **info}
