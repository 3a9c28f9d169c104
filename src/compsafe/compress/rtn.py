"""Round-to-nearest (RTN) weight quantization, simulated: quantize, then store the dequantized values.

RTN is the baseline every smarter quantizer (GPTQ, AWQ) is measured against, and it needs no calibration
data, so it isolates "what does losing precision do" from "what did the calibration set teach the quantizer".

Grids (all arithmetic in float32, one layer at a time, grouped along the input dimension):

* symmetric (default, ``-sym``): the standard signed b-bit grid ``-2^(b-1) .. 2^(b-1) - 1`` (int4: -8..7, 16
  levels) with ``scale = absmax / ((2^b - 1) / 2)`` (int4: absmax / 7.5), ``q = clamp(round(w / scale),
  -2^(b-1), 2^(b-1) - 1)`` -- exactly torchao's ``IntxWeightOnlyConfig`` (MappingType.SYMMETRIC) and
  gptqmodel's ``sym=True`` (scale = 2 absmax / (2^b - 1), zero point 2^(b-1)). -absmax is exact, +absmax
  lands half a step low; ``|w - q*scale| <= scale/2`` for every weight.
* symmetric narrow range (``-narrow``; compsafe's grid before issue 13): ``scale = absmax / (2^(b-1) - 1)``,
  ``q`` in ``+-(2^(b-1) - 1)``: 2^b - 1 levels (int4: 15, int2: ternary), +-absmax both exact, never clips.
  On SmolLM2-135M int4 g128 it raised perplexity x1.529 where the standard grid gives x1.375 (torchao).
* asymmetric (``-asym``): the range ``[min(w_min, 0), max(w_max, 0)]`` (widened to contain 0, as GPTQ does,
  so that zero -- and therefore pruned weights -- stay exactly representable and the zero point fits in b
  bits), ``scale = range / (2^b - 1)``, integer ``zero = round(-lo / scale)`` in ``[0, 2^b - 1]``, ``q =
  clamp(round(w / scale) + zero, 0, 2^b - 1)``, ``w' = (q - zero) * scale``. Also ``|w - w'| <= scale/2``.

Codes are ``round(w * (1 / scale))``, as torchao's ``quantize_affine`` computes them: the standard grid puts
-absmax exactly on the tie -(2^(b-1) - 1/2), and multiplying by the reciprocal rather than dividing decides that
tie the way torchao does (a test checks every code against torchao's int4 RTN where torchao is installed).

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
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch

from compsafe.compress.base import CompressionConfig
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register
from compsafe.errors import RecipeError

SUPPORTED_BITS = (2, 3, 4, 8)
SCALE_BITS = 16  # scales stored as fp16/bf16, as in GPTQ/AWQ checkpoints and llama.cpp blocks

_RECIPE = re.compile(
    r"int(?P<bits>\d+)(?:-rtn)?(?:-g(?P<group>\d+))?(?:-(?P<sym>sym|asym|narrow))?(?P<head>-head)?"
)
SCHEMES = {"sym": "symmetric-signed", "narrow": "symmetric-restricted", "asym": "asymmetric-int-zero"}
GRID_SUFFIX = {"sym": "", "narrow": "-narrow", "asym": "-asym"}  # recipe suffix of each grid (sym is the default)


@dataclass(frozen=True)
class RTNConfig(CompressionConfig):
    """Round-to-nearest quantization. ``group_size=None`` means one scale per output channel."""

    method: ClassVar[str] = "rtn"

    bits: int = 4
    group_size: int | None = None
    symmetric: bool = True
    include_lm_head: bool = False
    narrow: bool = False  # symmetric only: the +-(2^(b-1) - 1) grid instead of the standard signed one

    def __post_init__(self) -> None:
        if self.bits not in SUPPORTED_BITS:
            raise RecipeError(f"int{self.bits}: bits must be one of {', '.join(map(str, SUPPORTED_BITS))}")
        if self.group_size is not None and self.group_size < 2:
            raise RecipeError(f"group size {self.group_size} is too small; use e.g. 32, 64 or 128")
        if self.narrow and not self.symmetric:
            raise RecipeError("the narrow grid is symmetric; use -narrow or -asym, not both")

    @property
    def grid_name(self) -> str:
        """``sym``, ``narrow`` or ``asym``: the recipe's grid token."""
        return "asym" if not self.symmetric else "narrow" if self.narrow else "sym"

    @property
    def levels(self) -> tuple[int, int]:
        """Smallest and largest integer code (asym: before subtracting the zero point)."""
        if not self.symmetric:
            return 0, 2**self.bits - 1
        top = 2 ** (self.bits - 1) - 1
        return (-top if self.narrow else -top - 1), top

    @property
    def scale_divisor(self) -> float:
        """``scale = absmax / divisor`` (symmetric) or ``range / divisor`` (asymmetric)."""
        if not self.symmetric:
            return float(2**self.bits - 1)
        return float(2 ** (self.bits - 1) - 1) if self.narrow else (2**self.bits - 1) / 2.0

    @property
    def grid(self) -> str:
        """One line saying which grid the stored weights sit on, for `compsafe variants` and reports."""
        low, high = self.levels
        if not self.symmetric:
            return f"int{self.bits} asym {low}..{high} + zero point, scale range/{self.scale_divisor:g}"
        kind = "sym narrow" if self.narrow else "sym"
        return f"int{self.bits} {kind} {low}..{high} ({high - low + 1} levels), scale absmax/{self.scale_divisor:g}"

    @property
    def recipe(self) -> str:
        group = f"-g{self.group_size}" if self.group_size else ""
        head = "-head" if self.include_lm_head else ""
        return f"int{self.bits}-rtn{group}{GRID_SUFFIX[self.grid_name]}{head}"

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


@dataclass
class QuantGrid:
    """Where one layer's stored weights sit, kept so an export can pack the codes exactly (``compsafe.export``).

    ``scale`` and ``zero`` are ``[out, ceil(in / group)]`` float32 (``zero`` integer-valued, asymmetric only):
    the stored weight of row r, column c is ``(q - zero[r, c // group]) * scale[r, c // group]`` with integer
    ``q`` in ``levels``. ``group_size`` None: one group per row.
    """

    bits: int
    group_size: int | None
    symmetric: bool
    scale: torch.Tensor
    zero: torch.Tensor | None = None

    @classmethod
    def of(cls, config: RTNConfig, scale: torch.Tensor, zero: torch.Tensor | None) -> QuantGrid:
        """The grid of ``config`` with these ``[out, groups]`` group parameters."""
        return cls(config.bits, config.group_size, config.symmetric, scale, None if config.symmetric else zero)

    def on_cpu(self) -> QuantGrid:
        """A detached float32 CPU copy (what a report keeps, however many layers ran on a GPU)."""
        zero = None if self.zero is None else self.zero.detach().float().cpu()
        return replace(self, scale=self.scale.detach().float().cpu(), zero=zero)


@torch.no_grad()
def quantize_with_grid(weight: torch.Tensor, config: RTNConfig) -> tuple[torch.Tensor, QuantGrid]:
    """Fake-quantize an ``[out, in]`` float32 matrix; returns ``(dequantized, its grid)``."""
    out_features, in_features = weight.shape
    group = min(config.group_size or in_features, in_features)
    n_groups = math.ceil(in_features / group)
    padded = torch.nn.functional.pad(weight, (0, n_groups * group - in_features))
    grouped = padded.reshape(out_features, n_groups, group)
    qmin, qmax = config.levels
    zero = None
    if config.symmetric:
        scale = grouped.abs().amax(dim=-1, keepdim=True) / config.scale_divisor
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        deq = torch.clamp(torch.round(grouped * (1.0 / safe)), qmin, qmax) * scale
    else:
        lo = grouped.amin(dim=-1, keepdim=True).clamp(max=0)
        hi = grouped.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = (hi - lo) / config.scale_divisor
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.clamp(torch.round(-lo / safe), 0, qmax)
        q = torch.clamp(torch.round(grouped * (1.0 / safe)) + zero, 0, qmax)
        deq = (q - zero) * scale
        zero = zero.squeeze(-1)
    deq = deq.reshape(out_features, n_groups * group)[:, :in_features]
    return deq, QuantGrid.of(config, scale.squeeze(-1), zero)


@torch.no_grad()
def quantize_dequantize(weight: torch.Tensor, config: RTNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake-quantize an ``[out, in]`` float32 matrix; returns ``(dequantized, scale per group)``.

    ``scale`` has shape ``[out, ceil(in / group)]``; exposed so tests can check the ``scale/2`` error bound.
    """
    deq, grid = quantize_with_grid(weight, config)
    return deq, grid.scale


class RTNMethod(LinearMethod):
    """Parses ``int<bits>[-rtn][-g<group>][-sym|-asym|-narrow][-head]``."""

    config_type = RTNConfig
    grammar: ClassVar[str] = (
        "int<bits>[-rtn][-g<group>][-sym|-asym|-narrow][-head]   round-to-nearest weight quantization; bits in "
        "2,3,4,8; no -g = one scale per output channel; grid: -sym (default) the standard signed grid "
        "(int4 -8..7, absmax/7.5), -asym with a zero point, -narrow the +-(2^(b-1)-1) grid; -head also lm_head"
    )
    examples: ClassVar[tuple[str, ...]] = (
        "int8",
        "int4",
        "int4-g128",
        "int3-g128",
        "int2-g64",
        "int4-g128-asym",
        "int4-g128-narrow",
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
            narrow=match["sym"] == "narrow",
        )

    def compress_layer(self, layer: Layer, config: RTNConfig, state: None) -> LayerOutcome:
        deq, grid = quantize_with_grid(layer.weight, config)
        out_features, in_features = layer.weight.shape
        return LayerOutcome(
            deq, config.bits_per_weight(in_features), config.packed_bytes(out_features, in_features), grid=grid
        )

    def extra(self, config: RTNConfig, state: None) -> dict[str, Any]:
        return {"scheme": SCHEMES[config.grid_name], "grid": config.grid}


register(RTNMethod())
