"""The GPTQ checkpoint layout (AutoGPTQ / gptqmodel / optimum): pack, unpack, and decode a folder to dense weights.

Why written out here: loading a GPTQ folder through transformers needs ``gptqmodel`` and ``optimum`` (compiled
kernels; neither is installed on this CPU stack), yet a user should be able to evaluate the GPTQ folder they
received (``--variants DIR``) and compsafe's own GPTQ export (``export.gptq``) must round-trip. The layout is
the one gptqmodel 7.7.0 writes, read from its source (``gptqmodel/nn_modules/qlinear/__init__.py``:
``PackableQuantLinear.pack_original`` packs, ``dequantize_weight`` and the buffers of ``_register_buffers``
define the shapes; ``gptqmodel/utils/model.py``: ``convert_gptq_v2_to_v1_format_module`` the v1 zero offset).
Per quantized linear layer with ``in`` inputs, ``out`` outputs, ``b`` bits (2, 4 or 8; pack factor
``pf = 32 / b``) and group size ``g`` (``-1``: one group, ``g = in``):

* ``qweight`` int32 ``[ceil(in * b / 32), out]``: code ``q[i, o]`` (unsigned, ``0 .. 2^b - 1``) sits in row
  ``i // pf`` at bit ``b * (i % pf)``;
* ``qzeros`` int32 ``[ceil(in / g), ceil(out * b / 32)]``: zero point ``z[k, o]`` in column ``o // pf`` at bit
  ``b * (o % pf)``; checkpoint format ``gptq`` (v1) stores ``z - 1``, ``gptq_v2`` stores ``z``;
* ``scales`` float16 ``[ceil(in / g), out]``; ``g_idx`` int32 ``[in]``, the group of each input (``i // g``
  without act-order);
* the weight is ``W[o, i] = scales[g_idx[i], o] * (q[i, o] - z[g_idx[i], o])`` (the ``[out, in]`` matrix an
  ``nn.Linear`` holds; gptqmodel packs a ``Conv1D``'s weight transposed to this orientation too).

A ragged last group (576 inputs with ``g = 128``) is simply a shorter group: ``ceil`` rows of scales and zeros,
as gptqmodel allocates them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from compsafe.errors import ModelLoadError

PACKABLE_BITS = (2, 4, 8)  # 3-bit GPTQ straddles words (a different layout): not written or read here
LEAVES = ("qweight", "qzeros", "scales", "g_idx")
V1, V2 = "gptq", "gptq_v2"


def _to_int32(words: torch.Tensor) -> torch.Tensor:
    """int64 words holding 32 unsigned bits -> the int32 with the same bits."""
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def pack_rows(values: torch.Tensor, bits: int) -> torch.Tensor:
    """``[n, m]`` unsigned codes -> int32 ``[ceil(n * bits / 32), m]``, ``32 / bits`` consecutive rows a word."""
    factor = 32 // bits
    rows = math.ceil(values.shape[0] / factor)
    padded = torch.nn.functional.pad(values.to(torch.int64), (0, 0, 0, rows * factor - values.shape[0]))
    shifts = (torch.arange(factor, dtype=torch.int64) * bits).view(1, factor, 1)
    words = (padded.view(rows, factor, -1) << shifts).sum(dim=1)  # disjoint bit fields: sum == bitwise or
    return _to_int32(words)


def unpack_rows(words: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """The inverse of ``pack_rows``: int32 ``[rows, m]`` -> int64 ``[n, m]`` unsigned codes."""
    factor = 32 // bits
    shifts = (torch.arange(factor, dtype=torch.int64) * bits).view(1, factor, 1)
    values = (words.to(torch.int64).unsqueeze(1) >> shifts) & (2**bits - 1)
    return values.reshape(-1, words.shape[1])[:n]


def pack_columns(values: torch.Tensor, bits: int) -> torch.Tensor:
    """``[k, m]`` unsigned values -> int32 ``[k, ceil(m * bits / 32)]`` (the ``qzeros`` packing)."""
    return pack_rows(values.t(), bits).t().contiguous()


def unpack_columns(words: torch.Tensor, bits: int, m: int) -> torch.Tensor:
    """The inverse of ``pack_columns``."""
    return unpack_rows(words.t(), bits, m).t()


def dequantize(leaves: dict[str, torch.Tensor], bits: int, checkpoint_format: str) -> torch.Tensor:
    """The ``[out, in]`` weight of one layer from its ``qweight``/``qzeros``/``scales``/``g_idx``, computed in
    float32 from the float16 scales (what the module doc's formula gives)."""
    g_idx = leaves["g_idx"].to(torch.int64)
    scales = leaves["scales"].float()
    out_features = scales.shape[1]
    codes = unpack_rows(leaves["qweight"], bits, g_idx.numel())
    zeros = unpack_columns(leaves["qzeros"], bits, out_features)
    if checkpoint_format == V1:  # AutoGPTQ's reading of v1: each stored field plus one, within b bits
        zeros = (zeros + 1) & (2**bits - 1)
    weight = (codes - zeros[g_idx]).float() * scales[g_idx]
    return weight.t().contiguous()


def checkpoint_format_of(quantization: dict[str, Any]) -> str:
    """``gptq`` (v1, zero points minus one) or ``gptq_v2``, from ``checkpoint_format`` or ``format``."""
    value = quantization.get("checkpoint_format") or quantization.get("format") or V1
    return V2 if str(value).lower() == V2 else V1


def layer_bits(leaves: dict[str, torch.Tensor], bits: int | None, module: str) -> int:
    """A layer's bit width: the config's when the ``qweight`` has its shape, else the one its shape implies
    (gptqmodel's ``dynamic`` overrides give some layers other widths); 3-bit and other widths are refused."""
    inputs, rows = leaves["g_idx"].numel(), leaves["qweight"].shape[0]
    candidates = ([bits] if bits in PACKABLE_BITS else []) + list(PACKABLE_BITS)
    for candidate in candidates:
        if math.ceil(inputs * candidate / 32) == rows:
            return candidate
    raise ModelLoadError(
        f"{module}: its GPTQ qweight is not a 2/4/8-bit layout compsafe can read (bits {bits}): load it with "
        "gptqmodel (`pip install gptqmodel optimum`) or export a dequantized safetensors copy"
    )


def dense_state(folder: Path) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Every tensor of ``folder``'s safetensors files with each GPTQ layer decoded to ``<module>.weight``
    (float32; the loader casts to the run's dtype), and the names of the decoded modules (``[out, in]``)."""
    from safetensors.torch import load_file

    quantization = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    checkpoint_format = checkpoint_format_of(quantization)
    bits = quantization.get("bits")
    raw: dict[str, torch.Tensor] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        raw.update(load_file(str(path)))
    modules = {name.rpartition(".")[0] for name in raw if name.endswith(".qweight")}
    if not modules:
        from compsafe.models.formats import describe

        raise ModelLoadError(f"{folder} is {describe(quantization)} but no file holds a qweight tensor: re-export it")
    state = {name: tensor for name, tensor in raw.items()
             if not (name.rpartition(".")[0] in modules and name.rpartition(".")[2] in LEAVES)}
    for module in modules:
        leaves = {leaf: raw[f"{module}.{leaf}"] for leaf in LEAVES if f"{module}.{leaf}" in raw}
        if len(leaves) != len(LEAVES):
            raise ModelLoadError(f"{folder}: GPTQ layer {module} lacks one of {', '.join(LEAVES)}: re-export it")
        state[f"{module}.weight"] = dequantize(leaves, layer_bits(leaves, bits, module), checkpoint_format)
    return state, modules
