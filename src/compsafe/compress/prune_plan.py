"""Which units structured pruning removes: the lowest-scoring ones, the same number in every layer.

Why the same number per layer: transformers' config classes describe one ``num_attention_heads``, one
``num_key_value_heads`` and one ``intermediate_size`` for all layers, so a folder with per-layer counts would
not reload with plain ``from_pretrained``. Each layer still picks its own units by its own scores.

Grouped-query attention: ``group_size`` query heads share one key/value head, and the model class needs the
same ratio in every group. So heads are removed *within* groups, the same number ``r`` from each group (the
key/value heads all stay): a layer keeps ``n_kv * (group_size - r)`` query heads and the KV cache is
unchanged. The achievable fractions are therefore multiples of ``1 / group_size`` (the default model has 3
query heads per group: 33% or 67%); a requested percentage is rounded to the nearest one, and one that rounds
to none or to all is a ``RecipeError`` naming the steps. With plain multi-head attention (group size 1) a
removed head takes its key and value rows with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from compsafe.compress.structure import DecoderLayout
from compsafe.errors import RecipeError


@dataclass(frozen=True)
class PrunePlan:
    """What to remove: ``unit`` is heads, mlp or layers; ``removed[layer]`` the removed query-head or channel
    indices of that layer (sorted); for ``layers``, ``removed`` maps each dropped layer to ``()``."""

    unit: str
    removed: dict[int, tuple[int, ...]] = field(default_factory=dict)
    with_kv: bool = False  # heads of plain multi-head attention: their key/value rows go too

    def to_dict(self) -> dict[str, Any]:
        if self.unit == "layers":
            return {"unit": self.unit, "layers": sorted(self.removed)}
        removed = {str(k): list(v) for k, v in self.removed.items()}
        return {"unit": self.unit, "with_kv": self.with_kv, "removed": removed}


def _lowest(scores: torch.Tensor, count: int) -> tuple[int, ...]:
    """Indices of the ``count`` lowest scores, ties to the lower index (stable), sorted."""
    order = torch.sort(scores, stable=True).indices[:count]
    return tuple(sorted(int(i) for i in order))


def removal_count(layout: DecoderLayout, unit: str, amount: int) -> int:
    """Units removed per layer (heads with grouped-query attention: per KV group), or a ``RecipeError`` when the
    amount rounds to none or to all; needs no scores, so a run checks it before the base is probed."""
    recipe = f"{unit}-{amount}"
    if unit == "layers":
        return _checked(amount, layout.n_layers, recipe, "one layer")
    if unit == "mlp":
        return _checked(round(amount / 100 * layout.intermediate), layout.intermediate, recipe, "one channel")
    group = layout.group_size
    if group == 1:
        heads = layout.n_heads
        return _checked(round(amount / 100 * heads), heads, recipe, f"1/{heads} of the heads")
    steps = ", ".join(f"heads-{round(100 * r / group)}" for r in range(1, group))
    return _checked(round(amount / 100 * group), group, recipe, f"1/{group} of the heads ({steps})")


def plan_heads(layout: DecoderLayout, scores: torch.Tensor, percent: int) -> PrunePlan:
    """Remove about ``percent``% of each layer's query heads, the same number from every KV group."""
    group, n_kv = layout.group_size, layout.n_kv_heads
    count = removal_count(layout, "heads", percent)
    if group == 1:
        return PrunePlan("heads", {i: _lowest(scores[i], count) for i in range(layout.n_layers)}, with_kv=True)
    removed = {}
    for i in range(layout.n_layers):
        picks: list[int] = []
        for g in range(n_kv):
            members = scores[i, g * group : (g + 1) * group]
            picks += [g * group + j for j in _lowest(members, count)]
        removed[i] = tuple(sorted(picks))
    return PrunePlan("heads", removed)


def plan_channels(layout: DecoderLayout, scores: torch.Tensor, percent: int) -> PrunePlan:
    """Remove ``percent``% (rounded) of each layer's MLP intermediate channels."""
    count = removal_count(layout, "mlp", percent)
    return PrunePlan("mlp", {i: _lowest(scores[i], count) for i in range(layout.n_layers)})


def plan_layers(layout: DecoderLayout, scores: torch.Tensor, count: int) -> PrunePlan:
    """Drop the ``count`` layers with the lowest Block Influence."""
    removal_count(layout, "layers", count)
    return PrunePlan("layers", {i: () for i in _lowest(scores, count)})


def _checked(count: int, total: int, recipe: str, step: str) -> int:
    if not 0 < count < total:
        raise RecipeError(
            f"{recipe} would remove {count} of {total} units per layer on this model: it prunes in steps of {step} "
            "and must keep at least one"
        )
    return count
