"""What a ``--variants`` entry names: a recipe applied to the base, a model folder someone else compressed, a
recovery adapter on top of a recipe (``recovered:DIR``) or a quantization-aware recovery (``qat:DIR``).

Resolved before any model loads, so a typo fails in a second, not after the base was probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compsafe import paths
from compsafe.compress import CompressionConfig, parse_recipe
from compsafe.errors import RecipeError


@dataclass
class VariantSpec:
    """A variant is either a recipe applied to the base or a model someone else compressed (a path)."""

    label: str
    config: CompressionConfig | None = None
    path: str | None = None
    adapter: str | None = None  # recovered:DIR: a recovery adapter attached (unmerged) after the recipe


def resolve_variant(spec: str) -> VariantSpec:
    if spec.startswith("model:"):
        return VariantSpec(label=spec, path=spec.removeprefix("model:"))
    if spec.startswith("qat:"):  # a quantization-aware recovery: an exported quantized folder (recover --qat)
        from compsafe.training.qat_recover import qat_label

        return VariantSpec(label=qat_label(spec.removeprefix("qat:")), path=spec.removeprefix("qat:"))
    if spec.startswith("recovered:"):
        from compsafe.training.recover import RecoveryInfo

        folder = spec.removeprefix("recovered:")
        info = RecoveryInfo.load(Path(folder).expanduser())
        config = parse_recipe(info.recipe)
        return VariantSpec(label=f"{config.recipe}+recovered", config=config, adapter=folder)
    try:
        config = parse_recipe(spec)
    except RecipeError:
        if paths.exists(spec):
            return VariantSpec(label=f"model:{spec}", path=spec)
        raise
    return VariantSpec(label=config.recipe, config=config)
