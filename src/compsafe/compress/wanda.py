"""Wanda pruning (Sun et al. 2024, "A Simple and Effective Pruning Approach for Large Language Models").

Magnitude pruning treats every weight of a layer alike; but a weight multiplies one input feature, and LLMs
have a few input features with activations orders of magnitude larger than the rest (Dettmers et al. 2022).
Wanda scores each weight by the size of what it contributes to the output,

    S_ij = |W_ij| * ||X_j||_2        (X_j: input feature j over all calibration tokens),

and removes the lowest scores *within each output row* (the paper's "per-output" comparison group, their
Table 5: per-output beats per-layer for LLMs). No weight update and no second-order information: one
forward pass for ``||X_j||_2`` (the ``sq_norm`` statistic of the shared pass in ``compress.sequential``).

Variants:

* unstructured ``wanda-<percent>``: every row loses exactly ``round(s * in_features)`` weights (ties go
  to the earlier input column, so the pattern is deterministic);
* semi-structured ``<n>:<m>-wanda``: in every ``m`` consecutive inputs of a row keep the ``n`` highest
  scores, the pattern sparse tensor cores run (the paper's Table 3).

With ``||X_j||`` equal for all j the score is ``|W|`` times one constant, so Wanda reduces to per-row
magnitude pruning (and ``2:4-wanda`` to ``2:4``); that is exact whenever multiplying by the constant does
not merge two distinct float32 magnitudes into one (it never does for a power of two).

Storage accounting follows ``compress.magnitude``: unstructured sparsity costs the dense dtype's bits per
weight, N:M costs the kept values plus ``ceil(log2 m)`` index bits per kept value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.base import CompressionConfig
from compsafe.compress.magnitude import NMConfig, nm_keep_mask
from compsafe.compress.sparsity import check_divisible, pruning_recipe, pruning_sparsity
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, pruned, register

_UNSTRUCTURED = re.compile(r"wanda-(?P<pct>\d+)(?P<head>-head)?")
_NM = re.compile(r"(?P<n>\d+):(?P<m>\d+)-wanda(?P<head>-head)?")


@dataclass(frozen=True)
class WandaConfig(CompressionConfig):
    """Wanda pruning: unstructured at ``sparsity`` per output row, or N:M when ``n`` and ``m`` are set."""

    method: ClassVar[str] = "wanda"

    sparsity: float = 0.5
    n: int | None = None
    m: int | None = None
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsity", pruning_sparsity("wanda", self.sparsity, self.n, self.m))

    @property
    def structured(self) -> bool:
        return self.n is not None

    @property
    def recipe(self) -> str:
        return pruning_recipe("wanda", self.sparsity, self.n, self.m, "-head" if self.include_lm_head else "")


def wanda_scores(weight: torch.Tensor, sq_norm: torch.Tensor) -> torch.Tensor:
    """``|W_ij| * ||X_j||_2`` in float32 for an ``[out, in]`` weight and per-column ``sum x_j^2``."""
    return weight.abs().float() * sq_norm.float().clamp(min=0).sqrt().to(weight.device)[None, :]


@torch.no_grad()
def wanda_prune_mask(weight: torch.Tensor, sq_norm: torch.Tensor, config: WandaConfig) -> torch.Tensor:
    """Boolean ``[out, in]`` mask of the weights Wanda removes (True = prune).

    Unstructured: the ``round(s * in)`` lowest scores of each row, ties to the earlier column (stable sort).
    N:M: the complement of ``nm_keep_mask`` on the scores (scores are >= 0, so its ``abs`` is a no-op).
    """
    scores = wanda_scores(weight, sq_norm)
    if config.structured:
        assert config.n is not None and config.m is not None
        return ~nm_keep_mask(scores, config.n, config.m)
    out_features, in_features = scores.shape
    k = round(config.sparsity * in_features)
    order = torch.argsort(scores, dim=1, stable=True)[:, :k]
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, order, True)


class WandaMethod(LinearMethod):
    """Parses ``wanda-<percent>[-head]`` and ``<n>:<m>-wanda[-head]``."""

    config_type = WandaConfig
    needs: ClassVar[frozenset[str]] = frozenset({"sq_norm"})
    grammar: ClassVar[str] = (
        "wanda-<percent>[-head] | <n>:<m>-wanda[-head]   Wanda pruning (needs calibration): score |w| x ||x_j||, "
        "zero exactly <percent>% of each output row's lowest scores, or keep the n best of every m inputs"
    )
    examples: ClassVar[tuple[str, ...]] = ("wanda-50", "wanda-30", "2:4-wanda", "4:8-wanda")

    def parse(self, recipe: str) -> WandaConfig | None:
        text = recipe.strip().lower()
        if match := _UNSTRUCTURED.fullmatch(text):
            return WandaConfig(sparsity=int(match["pct"]) / 100, include_lm_head=bool(match["head"]))
        if match := _NM.fullmatch(text):
            return WandaConfig(n=int(match["n"]), m=int(match["m"]), include_lm_head=bool(match["head"]))
        return None

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: WandaConfig) -> NMConfig | None:
        """The N:M storage of a structured pattern (checked to divide every layer), None when unstructured."""
        if not config.structured:
            return None
        assert config.m is not None
        check_divisible(targets, config.recipe, config.m, f"wanda-{round(100 * config.sparsity)}")
        return NMConfig(n=config.n, m=config.m)  # type: ignore[arg-type]

    def compress_layer(self, layer: Layer, config: WandaConfig, state: NMConfig | None) -> LayerOutcome:
        assert layer.stats is not None and layer.stats.sq_norm is not None
        mask = wanda_prune_mask(layer.weight, layer.stats.sq_norm, config)
        return pruned(layer, mask, state)

    def extra(self, config: WandaConfig, state: NMConfig | None) -> dict[str, Any]:
        return {"comparison_group": "output row", "pattern": f"{config.n}:{config.m}" if state else "unstructured"}


register(WandaMethod())
