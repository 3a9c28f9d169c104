"""Structured pruning recipes: ``heads-<percent>``, ``mlp-<percent>``, ``layers-<count>``.

Seed 001's pruning step removes whole units -- attention heads, MLP channels, decoder layers -- so the model
really gets smaller and faster on any hardware, unlike unstructured sparsity. Each recipe scores its units on
the calibration set (``compress.importance``), removes the lowest-scoring ones the same number per layer
(``compress.prune_plan``: grouped-query attention keeps a valid head ratio), and zeroes them in place for the
run while the export cuts them out (``compress.prune_units``): new tensor shapes, an updated config
(``num_attention_heads``, ``intermediate_size``, ``num_hidden_layers``, re-indexed KV-cache layers), a folder
plain ``AutoModelForCausalLM.from_pretrained`` reloads.

Accounting: every linear layer of the body is reported (untouched ones at their dtype's bits), with a pruned
layer's bits per *original* weight at ``dtype_bits * kept_fraction`` and its removed share as its sparsity, so
``effective_bits_per_weight`` shrinks with what was removed; ``packed_size_bytes`` and ``extra.parameters_after``
are the smaller model's bytes and parameter count (a dropped layer's norms included).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import dense_size_bytes, dtype_bits, relative_error
from compsafe.compress.base import CompressionConfig, CompressionReport, LayerReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.importance import unit_scores
from compsafe.compress.prune_plan import PrunePlan, plan_channels, plan_heads, plan_layers, removal_count
from compsafe.compress.prune_units import mask, removed_slices, shrink
from compsafe.compress.registry import METHODS
from compsafe.compress.structure import DecoderLayout, decoder_layout
from compsafe.compress.targets import compressible_linears, is_output_head, weight_view
from compsafe.errors import RecipeError

_RECIPE = re.compile(r"(?P<unit>heads|mlp|layers)-(?P<amount>\d+)")


@dataclass(frozen=True)
class StructuredConfig(CompressionConfig):
    """Remove ``amount`` percent of each layer's heads / MLP channels, or ``amount`` whole layers."""

    method: ClassVar[str] = "structured"

    unit: str = "heads"
    amount: int = 25

    def __post_init__(self) -> None:
        if self.unit not in ("heads", "mlp", "layers"):
            raise RecipeError(f"structured unit {self.unit!r}: use heads, mlp or layers")
        if self.unit != "layers" and not 1 <= self.amount <= 99:
            raise RecipeError(f"{self.unit}-{self.amount}: the percentage must be 1..99")
        if self.unit == "layers" and self.amount < 1:
            raise RecipeError("layers-N drops N >= 1 whole layers")

    @property
    def recipe(self) -> str:
        return f"{self.unit}-{self.amount}"


def plan_for(layout: DecoderLayout, config: StructuredConfig, calibration: CalibrationSet) -> PrunePlan:
    """Score the units on ``calibration`` and pick the ones to remove."""
    scores = unit_scores(layout, calibration.input_ids, config.unit)
    planner = {"heads": plan_heads, "mlp": plan_channels, "layers": plan_layers}[config.unit]
    return planner(layout, scores, config.amount)


def removed_weights(layout: DecoderLayout, plan: PrunePlan) -> dict[str, int]:
    """module name -> how many of its weight elements the smaller model no longer has."""
    modules = dict(layout.model.named_modules())
    counts = {}
    for name, cuts in removed_slices(layout, plan).items():
        weight = modules[name].weight
        per_index = {"all": 0, "out": weight.shape[1], "in": weight.shape[0]}
        counts[name] = sum(weight.numel() if axis == "all" else len(idx) * per_index[axis] for axis, idx in cuts)
    return counts


def removed_elements(layout: DecoderLayout, plan: PrunePlan) -> int:
    """Parameters the smaller model no longer has: weights, their biases, and a dropped layer's norms."""
    modules = dict(layout.model.named_modules())
    total = sum(removed_weights(layout, plan).values())
    for name, cuts in removed_slices(layout, plan).items():
        bias = modules[name].bias
        if bias is not None:
            total += sum(bias.numel() if axis == "all" else len(idx) for axis, idx in cuts if axis != "in")
    if plan.unit == "layers":
        for i in plan.removed:
            total += sum(p.numel() for n, p in layout.layers[i].named_parameters() if "norm" in n)
    return total


class StructuredMethod:
    """Parses ``heads-<percent>``, ``mlp-<percent>``, ``layers-<count>`` and prunes on calibration scores."""

    name: ClassVar[str] = StructuredConfig.method
    grammar: ClassVar[str] = (
        "heads-<percent> | mlp-<percent> | layers-<count>   structured pruning of a Llama-family model: the "
        "lowest-scoring attention heads (same number per KV group), MLP channels, or whole layers (ShortGPT "
        "block influence), scored on the calibration set; the exported model is really smaller"
    )
    examples: ClassVar[tuple[str, ...]] = ("heads-25", "mlp-30", "layers-4")
    needs_calibration: ClassVar[bool] = True
    supports_keep: ClassVar[bool] = False

    def parse(self, recipe: str) -> StructuredConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        return StructuredConfig(match["unit"], int(match["amount"])) if match else None

    def check(self, model: nn.Module, config: StructuredConfig) -> None:
        """Before the base is probed (``registry.check_applicable``): the family is supported and the amount
        removes some but not all units."""
        removal_count(decoder_layout(model), config.unit, config.amount)

    @torch.no_grad()
    def apply(
        self, model: nn.Module, config: CompressionConfig, calibration: CalibrationSet | None = None
    ) -> CompressionReport:
        """Score, plan, zero the units in place; the report's ``stored_form`` builds the smaller model."""
        assert isinstance(config, StructuredConfig)
        if calibration is None:
            raise RecipeError(f"{config.recipe} needs calibration data: pass a CalibrationSet")
        layout = decoder_layout(model)
        body = [
            (n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and not is_output_head(n, m, model)
        ]
        if len(compressible_linears(model)) != len(body):
            raise RecipeError(f"{config.recipe} prunes every layer alike: it cannot be limited to some modules")
        plan = plan_for(layout, config, calibration)
        dense = dense_size_bytes(model)
        before = {name: weight_view(m).to(torch.float32, copy=True) for name, m in body}
        n_before = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
        removed, cut = removed_elements(layout, plan), removed_weights(layout, plan)
        element = next(model.parameters()).element_size()
        mask(layout, plan)
        layers = [self._layer_report(name, m, before[name], cut.get(name, 0)) for name, m in body]
        return CompressionReport(
            recipe=config.recipe,
            method=self.name,
            layers=layers,
            packed_size_bytes=dense - removed * element,
            dense_size_bytes=dense,
            extra={
                "plan": plan.to_dict(),
                "parameters": n_before,
                "parameters_after": n_before - removed,
                "heads_per_layer": layout.n_heads - (len(plan.removed[0]) if plan.unit == "heads" else 0),
                "kv_heads_per_layer": layout.n_kv_heads - (len(plan.removed[0]) if plan.with_kv else 0),
                "intermediate_size": layout.intermediate - (len(plan.removed[0]) if plan.unit == "mlp" else 0),
                "num_hidden_layers": layout.n_layers - (len(plan.removed) if plan.unit == "layers" else 0),
            },
            stored_form=lambda m: shrink(decoder_layout(copy.deepcopy(m)), plan),
        )

    @staticmethod
    def _layer_report(name: str, module: nn.Module, original: torch.Tensor, n_removed: int) -> LayerReport:
        view = weight_view(module)
        removed = n_removed / view.numel()
        return LayerReport(
            name=name,
            numel=view.numel(),
            bits_per_weight=dtype_bits(view.dtype) * (1 - removed),
            sparsity=removed,
            relative_error=relative_error(original, view),
        )


METHODS.register(StructuredMethod.name)(StructuredMethod())
