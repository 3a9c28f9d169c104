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
from typing import ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import (
    dense_size_bytes,
    dtype_bits,
    packed_size_bytes,
    relative_error,
    storage_key,
    zero_fraction,
)
from compsafe.compress.base import CompressionConfig, CompressionReport, LayerReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.magnitude import NMConfig, nm_keep_mask
from compsafe.compress.registry import METHODS
from compsafe.compress.sequential import LinearInputs, compress_sequentially
from compsafe.compress.sparsity import pruning_recipe, pruning_sparsity
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError

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


def _check_divisible(targets: list[tuple[str, nn.Module]], config: WandaConfig) -> None:
    assert config.m is not None
    bad = [(name, weight_view(m).shape[1]) for name, m in targets if weight_view(m).shape[1] % config.m]
    if bad:
        name, width = bad[0]
        raise RecipeError(
            f"{config.recipe}: layer {name!r} has in_features {width}, not divisible by m={config.m} "
            f"({len(bad)} layer(s) affected); use an m that divides it or unstructured "
            f"wanda-{round(100 * config.sparsity)}"
        )


class WandaMethod:
    """Registered as ``wanda``: parses ``wanda-<percent>[-head]`` and ``<n>:<m>-wanda[-head]``."""

    name: ClassVar[str] = "wanda"
    needs_calibration: ClassVar[bool] = True
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

    @torch.no_grad()
    def apply(self, model: nn.Module, config: CompressionConfig, calibration: CalibrationSet) -> CompressionReport:
        assert isinstance(config, WandaConfig), f"wanda cannot apply {type(config).__name__}"
        targets = compressible_linears(model, include_lm_head=config.include_lm_head)
        nm = NMConfig(n=config.n, m=config.m) if config.structured else None  # type: ignore[arg-type]
        if nm is not None:
            _check_divisible(targets, config)
        dense = dense_size_bytes(model)
        packed: dict[tuple[int, int, torch.dtype], int] = {}

        def compress_linear(name: str, module: nn.Module, stats: LinearInputs) -> LayerReport:
            assert stats.sq_norm is not None
            view = weight_view(module)
            original = view.to(torch.float32, copy=True)
            view.masked_fill_(wanda_prune_mask(original, stats.sq_norm, config), 0)
            if nm is not None:
                packed[storage_key(module.weight)] = nm.packed_bytes(view.numel(), view.dtype)
                bits = nm.bits_per_weight(view.dtype)
            else:
                bits = float(dtype_bits(view.dtype))
            return LayerReport(
                name=name,
                numel=view.numel(),
                bits_per_weight=bits,
                sparsity=zero_fraction(view),
                relative_error=relative_error(original, view),
            )

        layers = compress_sequentially(
            model,
            calibration.input_ids,
            compress_linear,
            needs={"sq_norm"},
            include_lm_head=config.include_lm_head,
        )
        return CompressionReport(
            recipe=config.recipe,
            method=self.name,
            layers=layers,
            packed_size_bytes=packed_size_bytes(model, packed),
            dense_size_bytes=dense,
            extra={"comparison_group": "output row", "pattern": f"{config.n}:{config.m}" if nm else "unstructured"},
        )


METHODS.register(WandaMethod.name)(WandaMethod())
