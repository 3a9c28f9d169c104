"""llama.cpp's block formats as compsafe recipes (``q4_0``, ``q8_0``): the grid a GGUF file stores, bit for bit.

Why: a GGUF export of an ``int4-g128`` variant would quantize the weights a second time (llama.cpp's blocks are
not compsafe's grids), so the file would not be what was measured. These recipes quantize exactly as gguf-py's
reference ``gguf.quants.quantize`` (itself bit-exact with ggml-quants.c) does, so the variant compsafe evaluates
is ``gguf.quants.dequantize(gguf.quants.quantize(w))`` and ``compsafe compress --format gguf`` writes those blocks
(a test checks both against the gguf package). All arithmetic in float32, blocks of 32 along the input
dimension (``in_features`` must be a multiple of 32):

* ``q8_0``: ``d = absmax / 127``, codes ``roundf(x * (1 / d))`` (round half away from zero), stored
  ``fp16(d)`` and int8 codes: ``w' = code * fp16(d)``; 8.5 bits per weight.
* ``q4_0``: ``d = m / -8`` where ``m`` is the block's signed value of largest magnitude (the first on ties),
  codes ``clamp(trunc(x * (1 / d) + 8.5), 0, 15)``, stored ``fp16(d)``: ``w' = (code - 8) * fp16(d)``; 4.5
  bits per weight. ``d`` is negative when ``m`` is positive, so the grid is the signed int4 ``code - 8`` in
  ``-8..7`` times a scale of either sign.

The scale a weight is multiplied by is the fp16 one (what the file holds), while the codes come from the
float32 ``d``, as in the reference. The dequantized weights are written back in the model's dtype (in bf16 one
rounding of the same float32 value that transformers' GGUF loader rounds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.base import CompressionConfig
from compsafe.compress.rtn import QuantGrid
from compsafe.compress.targets import weight_view
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register
from compsafe.errors import RecipeError

BLOCK = 32
_RECIPE = re.compile(r"q(?P<bits>[48])_0(?P<head>-head)?")


@dataclass(frozen=True)
class GGMLConfig(CompressionConfig):
    """A llama.cpp block format: ``bits`` 4 (Q4_0) or 8 (Q8_0), blocks of 32, one fp16 scale per block."""

    method: ClassVar[str] = "ggml"

    bits: int = 4
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise RecipeError(f"q{self.bits}_0: llama.cpp's _0 block formats are q4_0 and q8_0")

    @property
    def recipe(self) -> str:
        return f"q{self.bits}_0" + ("-head" if self.include_lm_head else "")

    @property
    def ggml_type(self) -> str:
        """The ``gguf.GGMLQuantizationType`` name of the blocks."""
        return f"Q{self.bits}_0"

    @property
    def bits_per_weight(self) -> float:
        return self.bits + 16 / BLOCK

    def packed_bytes(self, numel: int) -> int:
        return numel // BLOCK * (2 + BLOCK * self.bits // 8)


@torch.no_grad()
def roundf(values: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, computed as gguf-py's ``np_roundf`` does (floor of |x| plus a carry)."""
    magnitude = values.abs()
    floored = torch.floor(magnitude)
    return torch.sign(values) * (floored + torch.floor(2 * (magnitude - floored)))


@torch.no_grad()
def quantize_blocks(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes [out, in] as signed ints in float32, fp16 scales [out, in / 32] as float32)`` of a float32
    ``[out, in]`` weight; the stored weight is ``codes * scale`` per block (see the module docstring)."""
    out_features, in_features = weight.shape
    blocks = weight.float().reshape(-1, BLOCK)
    if bits == 8:
        d = blocks.abs().amax(dim=-1, keepdim=True) / 127
        inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        codes = roundf(blocks * inverse)
    else:
        index = blocks.abs().argmax(dim=-1, keepdim=True)
        d = blocks.gather(-1, index) / -8
        inverse = torch.where(d == 0, torch.zeros_like(d), 1 / d)
        codes = torch.clamp(torch.trunc(blocks * inverse + 8.5), 0, 15) - 8
    scale = d.to(torch.float16).float()
    return codes.reshape(out_features, in_features), scale.reshape(out_features, in_features // BLOCK)


def dequantized(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``codes * scale`` with each block's scale repeated over its 32 weights (float32, exact)."""
    return codes * scale.repeat_interleave(BLOCK, dim=1)


class GGMLMethod(LinearMethod):
    """Parses ``q4_0`` / ``q8_0`` (``-head``: the output head too)."""

    config_type = GGMLConfig
    grammar: ClassVar[str] = (
        "q4_0 | q8_0 [-head]   llama.cpp's Q4_0 / Q8_0 blocks (32 weights, one fp16 scale), bit-exact with gguf-py's "
        "reference quantizer, so `compsafe compress --format gguf` writes exactly the evaluated weights"
    )
    examples: ClassVar[tuple[str, ...]] = ("q4_0", "q8_0")

    def parse(self, recipe: str) -> GGMLConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        return GGMLConfig(bits=int(match["bits"]), include_lm_head=bool(match["head"]))

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: GGMLConfig) -> None:
        bad = [(name, weight_view(m).shape[1]) for name, m in targets if weight_view(m).shape[1] % BLOCK]
        if bad:
            raise RecipeError(
                f"{config.recipe}: layer {bad[0][0]!r} has in_features {bad[0][1]}, not a multiple of llama.cpp's "
                f"block of {BLOCK}: use an int<bits>-g<group> recipe instead"
            )

    def compress_layer(self, layer: Layer, config: GGMLConfig, state: None) -> LayerOutcome:
        codes, scale = quantize_blocks(layer.weight, config.bits)
        grid = QuantGrid(bits=config.bits, group_size=BLOCK, symmetric=True, scale=scale)
        return LayerOutcome(dequantized(codes, scale), config.bits_per_weight,
                            config.packed_bytes(layer.weight.numel()), grid=grid)

    def extra(self, config: GGMLConfig, state: None) -> dict[str, Any]:
        return {"ggml_type": config.ggml_type, "block": BLOCK, "grid": "llama.cpp reference (gguf-py quants)"}


register(GGMLMethod())
