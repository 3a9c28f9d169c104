"""Round-to-nearest (RTN) weight quantization, simulated: quantize, then store the dequantized values.

RTN is the baseline every smarter quantizer (GPTQ, AWQ) is measured against, and it needs no calibration
data, so it isolates "what does losing precision do" from "what did the calibration set teach the quantizer".

Scheme (all arithmetic in float32, one layer at a time, grouped along the input dimension):

* symmetric, restricted range: ``scale = absmax / (2^(b-1) - 1)``, ``q = clamp(round(w / scale),
  -(2^(b-1) - 1), 2^(b-1) - 1)``. The range is symmetric so +absmax and -absmax are both exact and no value
  is ever clipped: ``|w - q*scale| <= scale/2`` for every weight. It uses ``2^b - 1`` of the ``2^b`` codes
  (for int2 that is ternary {-s, 0, +s}); that is the price of never clipping.
* asymmetric: the range ``[min(w_min, 0), max(w_max, 0)]`` (widened to contain 0, as GPTQ does, so that
  zero -- and therefore pruned weights -- stay exactly representable and the zero point fits in b bits),
  ``scale = range / (2^b - 1)``, integer ``zero = round(-lo / scale)`` in ``[0, 2^b - 1]``, ``q =
  clamp(round(w / scale) + zero, 0, 2^b - 1)``, ``w' = (q - zero) * scale``. Also ``|w - w'| <= scale/2``.

The dequantized weight is written back in the weight's original dtype, so evaluation sees exactly the
values a real int kernel would produce (up to that dtype's rounding). Scales are kept in float32 for the
simulation while the accounting assumes 16-bit scales, the usual storage; the difference is ~2^-11 relative.

Groups run along the input dimension. When ``group_size`` does not divide a layer's ``in_features`` (e.g.
SmolLM2's 576 with g128), the last group of each row is shorter (576 = 4 x 128 + 64), as in the reference
GPTQ implementation. It is computed by zero-padding the row to a whole number of groups, which is exact:
zeros change neither the absmax (symmetric) nor the 0-containing range (asymmetric). The accounting counts
``ceil(in / group)`` scales per row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from compsafe.compress.base import CompressionConfig
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register
from compsafe.errors import RecipeError

SUPPORTED_BITS = (2, 3, 4, 8)
SCALE_BITS = 16  # scales stored as fp16/bf16, as in GPTQ/AWQ checkpoints and llama.cpp blocks

_RECIPE = re.compile(r"int(?P<bits>\d+)(?:-rtn)?(?:-g(?P<group>\d+))?(?:-(?P<sym>sym|asym))?(?P<head>-head)?")


@dataclass(frozen=True)
class RTNConfig(CompressionConfig):
    """Round-to-nearest quantization. ``group_size=None`` means one scale per output channel."""

    method: ClassVar[str] = "rtn"

    bits: int = 4
    group_size: int | None = None
    symmetric: bool = True
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        if self.bits not in SUPPORTED_BITS:
            raise RecipeError(f"int{self.bits}: bits must be one of {', '.join(map(str, SUPPORTED_BITS))}")
        if self.group_size is not None and self.group_size < 2:
            raise RecipeError(f"group size {self.group_size} is too small; use e.g. 32, 64 or 128")

    @property
    def recipe(self) -> str:
        group = f"-g{self.group_size}" if self.group_size else ""
        asym = "" if self.symmetric else "-asym"
        head = "-head" if self.include_lm_head else ""
        return f"int{self.bits}-rtn{group}{asym}{head}"

    def bits_per_weight(self, in_features: int) -> float:
        """Storage bits per weight: the code plus this weight's share of its group's scale (and zero)."""
        meta = SCALE_BITS + (0 if self.symmetric else self.bits)
        return self.bits + meta * self.groups_per_row(in_features) / in_features

    def groups_per_row(self, in_features: int) -> int:
        return math.ceil(in_features / (self.group_size or in_features))

    def packed_bytes(self, out_features: int, in_features: int) -> int:
        """Bytes of one packed layer: codes packed at ``bits``, 16-bit scales, b-bit zero points if asym."""
        n_groups = out_features * self.groups_per_row(in_features)
        codes = math.ceil(out_features * in_features * self.bits / 8)
        scales = n_groups * SCALE_BITS // 8
        zeros = 0 if self.symmetric else math.ceil(n_groups * self.bits / 8)
        return codes + scales + zeros


@torch.no_grad()
def quantize_dequantize(weight: torch.Tensor, config: RTNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantize an ``[out, in]`` float32 matrix; returns ``(dequantized, scale per group)``.

    ``scale`` has shape ``[out, ceil(in / group)]``; exposed so tests can check the ``scale/2`` error bound.
    """
    out_features, in_features = weight.shape
    group = min(config.group_size or in_features, in_features)
    n_groups = math.ceil(in_features / group)
    padded = torch.nn.functional.pad(weight, (0, n_groups * group - in_features))
    grouped = padded.reshape(out_features, n_groups, group)
    if config.symmetric:
        qmax = 2 ** (config.bits - 1) - 1
        scale = grouped.abs().amax(dim=-1, keepdim=True) / qmax
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        deq = torch.clamp(torch.round(grouped / safe), -qmax, qmax) * scale
    else:
        qmax = 2**config.bits - 1
        lo = grouped.amin(dim=-1, keepdim=True).clamp(max=0)
        hi = grouped.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = (hi - lo) / qmax
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.clamp(torch.round(-lo / safe), 0, qmax)
        q = torch.clamp(torch.round(grouped / safe) + zero, 0, qmax)
        deq = (q - zero) * scale
    return deq.reshape(out_features, n_groups * group)[:, :in_features], scale.squeeze(-1)


class RTNMethod(LinearMethod):
    """Parses ``int<bits>[-rtn][-g<group>][-sym|-asym][-head]``."""

    config_type = RTNConfig
    grammar: ClassVar[str] = (
        "int<bits>[-rtn][-g<group>][-sym|-asym][-head]   round-to-nearest weight quantization; bits in "
        "2,3,4,8; no -g = one scale per output channel; symmetric unless -asym; -head also quantizes lm_head"
    )
    examples: ClassVar[tuple[str, ...]] = (
        "int8",
        "int4",
        "int4-g128",
        "int3-g128",
        "int2-g64",
        "int4-g128-asym",
        "int8-sym",
        "int4-rtn-g128",
    )

    def parse(self, recipe: str) -> RTNConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        group = match["group"]
        return RTNConfig(
            bits=int(match["bits"]),
            group_size=int(group) if group else None,
            symmetric=match["sym"] != "asym",
            include_lm_head=bool(match["head"]),
        )

    def compress_layer(self, layer: Layer, config: RTNConfig, state: None) -> LayerOutcome:
        deq, _ = quantize_dequantize(layer.weight, config)
        out_features, in_features = layer.weight.shape
        return LayerOutcome(deq, config.bits_per_weight(in_features), config.packed_bytes(out_features, in_features))

    def extra(self, config: RTNConfig, state: None) -> dict[str, Any]:
        return {"scheme": "symmetric-restricted" if config.symmetric else "asymmetric-int-zero"}


register(RTNMethod())
