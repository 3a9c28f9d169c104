"""Low-rank compression: truncated SVD of every target weight, at a rank ratio or an energy threshold.

Why: low-rank factorisation (``W ~ A B`` with ``A: [out, r]``, ``B: [r, in]``) is the third family of weight
compression next to quantization and pruning (e.g. Hsu et al. 2022 "FWSVD", Yuan et al. 2023 "ASVD",
Wang et al. 2024 "SVD-LLM"); this is its calibration-free baseline, the plain truncated SVD. By the
Eckart-Young-Mirsky theorem it is the best rank-r approximation in Frobenius norm:
``||W - W_r||_F = sqrt(sum_{i > r} sigma_i^2)``.

Recipes:

* ``lowrank-r<ratio>``: keep ``r = ceil(ratio * min(out, in))`` singular values (a tolerance of 1e-9
  absorbs float noise in the product, so ``0.3 * 100`` gives 30, not 31);
* ``lowrank-e<energy>``: keep the smallest ``r`` whose singular values hold at least ``energy`` of the
  squared Frobenius norm, ``sum_{i <= r} sigma_i^2 >= energy * sum_i sigma_i^2`` (computed in float64).

What is stored: ``W' = U_r S_r V_r^T`` written back densely in the weight's dtype, so every backend runs
the variant unchanged. The accounting is the factorised storage a deployment would use: ``r * (out + in)``
values at the weight's dtype, i.e. ``r (out + in) dtype_bits / (out in)`` bits per weight. Where that is
larger than the dense matrix (high ratios/energies on near-square layers), a deployment keeps the layer
dense, so that layer is accounted at the dense dtype's bits (its W' is still the rank-r matrix); such layers
are listed in ``report.extra["kept_dense"]``. The SVD is computed in float32.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import dtype_bits
from compsafe.compress.base import CompressionConfig
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register
from compsafe.errors import RecipeError

_NUMBER = r"(?:0?\.\d+|1(?:\.0*)?)"
_RECIPE = re.compile(rf"lowrank-(?:r(?P<ratio>{_NUMBER})|e(?P<energy>{_NUMBER}))(?P<head>-head)?")


def _format_fraction(value: float) -> str:
    """Two decimals when exact (``0.25``, ``0.90``), else the shortest round-tripping repr (``0.995``)."""
    text = f"{value:.2f}"
    return text if float(text) == value else repr(value)


@dataclass(frozen=True)
class LowRankConfig(CompressionConfig):
    """Truncated SVD; exactly one of ``rank_ratio`` (of ``min(out, in)``) or ``energy`` (in (0, 1])."""

    method: ClassVar[str] = "lowrank"

    rank_ratio: float | None = None
    energy: float | None = None
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        if (self.rank_ratio is None) == (self.energy is None):
            raise RecipeError("lowrank needs exactly one of a rank ratio or an energy (lowrank-r0.25, lowrank-e0.90)")
        value = self.rank_ratio if self.rank_ratio is not None else self.energy
        assert value is not None
        if not 0 < value <= 1:
            raise RecipeError(f"lowrank fraction {value!r} must be in (0, 1], e.g. lowrank-r0.25 or lowrank-e0.90")

    @property
    def recipe(self) -> str:
        head = "-head" if self.include_lm_head else ""
        if self.rank_ratio is not None:
            return f"lowrank-r{_format_fraction(self.rank_ratio)}{head}"
        assert self.energy is not None
        return f"lowrank-e{_format_fraction(self.energy)}{head}"

    def rank(self, singular_values: torch.Tensor) -> int:
        """The rank to keep for a matrix with these singular values (descending)."""
        full = singular_values.numel()
        if self.rank_ratio is not None:
            return max(1, min(full, math.ceil(self.rank_ratio * full - 1e-9)))
        assert self.energy is not None
        squared = singular_values.double().pow(2)
        cumulative = torch.cumsum(squared, dim=0)
        target = torch.tensor([self.energy * cumulative[-1].item()], dtype=torch.float64)
        index = int(torch.searchsorted(cumulative, target, side="left").item())
        return max(1, min(full, index + 1))


def factorised_bits(rank: int, out_features: int, in_features: int, bits: int) -> int:
    """Storage bits of the two factors ``[out, r]`` and ``[r, in]`` at ``bits`` per value."""
    return rank * (out_features + in_features) * bits


@torch.no_grad()
def truncated_svd(weight: torch.Tensor, config: LowRankConfig) -> tuple[torch.Tensor, int, torch.Tensor]:
    """``(W_r, r, singular values)`` for an ``[out, in]`` weight, in float32."""
    u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
    rank = config.rank(s)
    return (u[:, :rank] * s[:rank]) @ vh[:rank], rank, s


class LowRankMethod(LinearMethod):
    """Parses ``lowrank-r<ratio>[-head]`` and ``lowrank-e<energy>[-head]``."""

    config_type = LowRankConfig
    grammar: ClassVar[str] = (
        "lowrank-r<ratio>[-head] | lowrank-e<energy>[-head]   truncated SVD of each weight: keep "
        "ceil(ratio x min(out,in)) singular values, or the fewest holding >= energy of ||W||_F^2"
    )
    examples: ClassVar[tuple[str, ...]] = ("lowrank-r0.25", "lowrank-r0.50", "lowrank-e0.90", "lowrank-e0.99")

    def parse(self, recipe: str) -> LowRankConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        ratio, energy = match["ratio"], match["energy"]
        return LowRankConfig(
            rank_ratio=float(ratio) if ratio else None,
            energy=float(energy) if energy else None,
            include_lm_head=bool(match["head"]),
        )

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: LowRankConfig) -> _Ranks:
        return _Ranks()

    def compress_layer(self, layer: Layer, config: LowRankConfig, state: _Ranks) -> LayerOutcome:
        approx, rank, _ = truncated_svd(layer.weight, config)
        out_features, in_features = layer.weight.shape
        bits = dtype_bits(layer.dtype)
        factor_bits = factorised_bits(rank, out_features, in_features, bits)
        state.ranks[layer.name] = rank
        if factor_bits < out_features * in_features * bits:
            return LayerOutcome(approx, factor_bits / (out_features * in_features), math.ceil(factor_bits / 8))
        state.kept_dense.append(layer.name)
        return LayerOutcome(approx, float(bits))

    def extra(self, config: LowRankConfig, state: _Ranks) -> dict[str, Any]:
        return {
            "ranks": state.ranks,
            "kept_dense": state.kept_dense,
            "storage": "factors U_r S_r [out, r] and V_r^T [r, in] at the weight dtype; dense where smaller",
        }


@dataclass
class _Ranks:
    ranks: dict[str, int] = field(default_factory=dict)
    kept_dense: list[str] = field(default_factory=list)


register(LowRankMethod())
