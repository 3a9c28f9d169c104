"""Magnitude pruning: unstructured (per layer or one global threshold) and semi-structured N:M.

Magnitude is the calibration-free pruning baseline (as RTN is for quantization), so it shows what removing
weights does before any method gets to choose which weights matter for the calibration data.

Storage accounting (``bits_per_weight``), stated because it decides where a variant lands on a
size-vs-safety plot: the bytes of the sparse layout ``compsafe compress`` writes (``models.sparse_bitmask``,
compressed-tensors' layouts), counted from the stored weight:

* unstructured (and N:M other than 2:4): ``sparse-bitmask``: the non-zero values at the dtype's bits, 1 mask
  bit per weight, an int64 row offset per row. At 50% in bf16: 0.5 * 16 + 1 + 64 / in_features ~ 9.1 bits.
* 2:4: ``sparse-24-bitmask``: the kept half at the dtype's bits plus 1 mask bit per weight, which is the N:M
  metadata of ``NMConfig.bits_per_weight`` (``ceil(log2 4) = 2`` index bits per kept value): for fp16
  ``0.5 * 16 + 0.5 * 2 = 9`` bits per weight (NVIDIA's 2:4 sparse tensor cores store the same).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from compsafe.compress.accounting import dtype_bits
from compsafe.compress.base import CompressionConfig
from compsafe.compress.selection import Cut, cut_mask, find_cut
from compsafe.compress.sparsity import check_divisible, check_whole_percent
from compsafe.compress.targets import weight_view
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, pruned, register
from compsafe.errors import RecipeError

_MAG_RECIPE = re.compile(r"mag-(?P<pct>\d+)(?:-(?P<scope>layer|global))?(?P<head>-head)?")
_NM_RECIPE = re.compile(r"(?P<n>\d+):(?P<m>\d+)(?:-mag)?(?P<head>-head)?")


@dataclass(frozen=True)
class MagnitudeConfig(CompressionConfig):
    """Unstructured magnitude pruning of a whole-percent ``sparsity`` per layer or with one global cut."""

    method: ClassVar[str] = "magnitude"

    sparsity: float = 0.5
    scope: Literal["layer", "global"] = "layer"
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        check_whole_percent(self.sparsity, "mag-50")
        if self.scope not in ("layer", "global"):
            raise RecipeError(f"scope {self.scope!r} must be 'layer' or 'global'")

    @property
    def recipe(self) -> str:
        scope = "-global" if self.scope == "global" else ""
        head = "-head" if self.include_lm_head else ""
        return f"mag-{round(self.sparsity * 100)}{scope}{head}"


@dataclass(frozen=True)
class NMConfig(CompressionConfig):
    """Keep the ``n`` largest-magnitude weights in every ``m`` consecutive inputs of each output row."""

    method: ClassVar[str] = "nm"

    n: int = 2
    m: int = 4
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.n < self.m:
            raise RecipeError(f"{self.n}:{self.m}: need 1 <= n < m (e.g. 2:4)")

    @property
    def recipe(self) -> str:
        return f"{self.n}:{self.m}" + ("-head" if self.include_lm_head else "")

    def bits_per_weight(self, dtype: torch.dtype) -> float:
        """Kept values at the dtype's bits plus ``ceil(log2 m)`` index bits per kept value."""
        return self.n / self.m * (dtype_bits(dtype) + math.ceil(math.log2(self.m)))

    def packed_bytes(self, numel: int, dtype: torch.dtype) -> int:
        kept = numel // self.m * self.n
        return kept * dtype_bits(dtype) // 8 + math.ceil(kept * math.ceil(math.log2(self.m)) / 8)


class MagnitudeMethod(LinearMethod):
    """Parses ``mag-<percent>[-layer|-global][-head]``."""

    config_type = MagnitudeConfig
    grammar: ClassVar[str] = (
        "mag-<percent>[-layer|-global][-head]   unstructured magnitude pruning: zero exactly <percent>% "
        "of each layer's smallest |w| (-global: of all target layers together, one threshold)"
    )
    examples: ClassVar[tuple[str, ...]] = ("mag-50", "mag-30", "mag-50-global")

    def parse(self, recipe: str) -> MagnitudeConfig | None:
        match = _MAG_RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        return MagnitudeConfig(
            sparsity=int(match["pct"]) / 100,
            scope="global" if match["scope"] == "global" else "layer",
            include_lm_head=bool(match["head"]),
        )

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: MagnitudeConfig) -> _Cuts:
        if config.scope != "global":
            return _Cuts()
        sources = [lambda v=weight_view(m): v.abs().float().reshape(-1) for _, m in targets]
        total = sum(weight_view(m).numel() for _, m in targets)
        cut = find_cut(sources, round(config.sparsity * total))
        return _Cuts(cut, cut.tie_quota)

    def compress_layer(self, layer: Layer, config: MagnitudeConfig, state: _Cuts) -> LayerOutcome:
        magnitude = layer.weight.abs().reshape(-1)
        cut = state.global_cut
        if cut is None:
            cut = find_cut([lambda mag=magnitude: mag], round(config.sparsity * magnitude.numel()))
            state.ties_left = cut.tie_quota
        mask, state.ties_left = cut_mask(magnitude, cut, state.ties_left)
        return pruned(layer, mask.reshape(layer.weight.shape))

    def extra(self, config: MagnitudeConfig, state: _Cuts) -> dict[str, Any]:
        cut = state.global_cut
        return {"threshold": cut.threshold, "pruned": cut.k} if cut is not None else {}


@dataclass
class _Cuts:
    """Magnitude pruning state across layers: the global cut (if any) and how many tied weights it may still take."""

    global_cut: Cut | None = None
    ties_left: int = 0


@torch.no_grad()
def nm_keep_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean ``[out, in]`` mask keeping the n largest |w| of every m consecutive inputs per row.

    A stable sort breaks ties toward the earlier input, so the pattern is deterministic.
    """
    out_features, in_features = weight.shape
    groups = weight.abs().float().reshape(out_features, in_features // m, m)
    order = torch.argsort(groups, dim=-1, descending=True, stable=True)[..., :n]
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order, True)
    return keep.reshape(out_features, in_features)


class NMMethod(LinearMethod):
    """Parses ``<n>:<m>[-mag][-head]``."""

    config_type = NMConfig
    grammar: ClassVar[str] = (
        "<n>:<m>[-mag][-head]   semi-structured pruning: keep the n largest |w| in every m consecutive "
        "inputs of each row (2:4 runs on sparse tensor cores); in_features must be divisible by m"
    )
    examples: ClassVar[tuple[str, ...]] = ("2:4", "4:8", "1:4", "2:4-mag")

    def parse(self, recipe: str) -> NMConfig | None:
        match = _NM_RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        return NMConfig(n=int(match["n"]), m=int(match["m"]), include_lm_head=bool(match["head"]))

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: NMConfig) -> None:
        check_divisible(targets, config.recipe, config.m, f"mag-{round(100 * (1 - config.n / config.m))}")

    def compress_layer(self, layer: Layer, config: NMConfig, state: None) -> LayerOutcome:
        return pruned(layer, ~nm_keep_mask(layer.weight, config.n, config.m), config)


register(MagnitudeMethod())
register(NMMethod())
