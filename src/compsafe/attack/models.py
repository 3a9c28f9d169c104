"""The two models an attack differentiates: the base and its variant, both in memory as backends.

Why two copies rather than one model switching weight sets: a search step scores the same candidates under both
models and takes gradients through both, so swapping weights (``compress.applied``) every step would cost a
restore per step. A recipe variant is a deep copy of the base compressed in place (for a 135M model, ~0.5 GB
more at float32); a folder variant is loaded as ``compsafe run`` loads one.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe.config import RunConfig
from compsafe.errors import ConfigError, ModelLoadError
from compsafe.integrity import model_identity, weights_digest
from compsafe.models import HFBackend, LoadOptions, ModelHandle, load_model


@dataclass
class ModelPair:
    """Base and variant backends, and what names each in the store."""

    base: HFBackend
    variant: HFBackend
    label: str
    identity: dict[str, Any]  # base and variant identities: part of every attack record's store key


def variant_handle(base: ModelHandle, spec: str, options: LoadOptions) -> tuple[ModelHandle, str, dict[str, Any]]:
    """(variant handle, label, identity) for a recipe (built on a copy of the base) or a model folder/file."""
    from compsafe import paths
    from compsafe.variant_spec import resolve_variant

    variant = resolve_variant(spec)
    if variant.adapter is not None:
        raise ConfigError(f"--variant {spec}: recovery adapters are not supported by attack; pass the recipe")
    if variant.config is not None:
        from compsafe.compress import apply_recipe, build_calibration, needs_calibration

        calibration = None
        identity: dict[str, Any] = {"recipe": variant.config.recipe}
        if needs_calibration(variant.config):
            spec_ = RunConfig().calibration_spec()
            calibration = build_calibration(base.tokenizer, spec_, base.max_length)
            identity["calibration"] = calibration.digest
        handle = dataclasses.replace(base, model=copy.deepcopy(base.model))
        apply_recipe(handle.model, variant.config, calibration)
        return handle, variant.label, identity
    assert variant.path is not None
    if not paths.exists(variant.path):
        raise ModelLoadError(f"variant model {variant.path} does not exist: pass a folder or .gguf file")
    path = Path(variant.path).expanduser()
    return load_model(str(path), options), variant.label, {"weights": weights_digest(path)}


def load_pair(model: str | None, variant: str, device: str = "auto", dtype: str = "float32") -> ModelPair:
    """Load the base and build (or load) the variant."""
    options = LoadOptions(device=device, dtype=dtype)
    base = load_model(model, options)
    handle, label, identity = variant_handle(base, variant, options)
    if len(handle.tokenizer) != len(base.tokenizer):
        raise ConfigError(f"--variant {variant}: its tokenizer differs from the base's; attack needs the same one")
    return ModelPair(HFBackend(base), HFBackend(handle), label, {"base": model_identity(base), "variant": identity})
