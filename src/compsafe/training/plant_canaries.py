"""Plant a canary set into a copy of a model with the project's LoRA loop, for the ``privacy`` probe.

Why a fine-tune and not the pre-training data: we cannot retrain the base, but a short supervised fine-tune on
sentences that contain random secrets reproduces the setting of Carlini et al. (2019) — secrets seen k times
in training — on a model we then compress. Each planted canary (``<owner>'s PIN is <secret>.``) and planted PII
record is a chat example repeated ``repeats`` times; held-out entries are never trained on and stay as controls.
The adapter is merged and the model saved in float32 (bf16 rounding would blur the small merged deltas that
carry the memorized secrets), next to the canary file and ``planting.json`` (config, loss curve, time).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from compsafe.probes.canaries import CanarySet
from compsafe.training.sft import (
    ChatExample,
    LoraSettings,
    TrainConfig,
    TrainResult,
    merge_lora,
    progress_logger,
    train_lora,
    training_record,
)

PLANT_TRAIN_CONFIG = TrainConfig(
    epochs=4, learning_rate=1e-3, max_length=96, warmup_steps=3, lora=LoraSettings(r=16, alpha=32)
)
Log = Callable[[str], None]


def planting_examples(canary_set: CanarySet) -> list[ChatExample]:
    """Every planted canary and PII record as chat examples, each repeated its ``repeats`` times."""
    examples = []
    for canary in canary_set.canaries:
        if canary.planted:
            examples += [ChatExample(canary.prompt, canary.reply)] * canary.repeats
    for record in canary_set.records:
        if record.planted:
            examples += [ChatExample(record.prompt, record.reply)] * record.repeats
    return examples


def linear_leaf_names(model: Any) -> tuple[str, ...]:
    """Short names of the model's Linear layers except the output head: LoRA targets for any architecture."""
    import torch

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }
    return tuple(sorted(names))


def plant_by_fine_tune(
    handle: Any, examples: list[ChatExample], config: TrainConfig, out_dir: Path, log: Log | None
) -> tuple[TrainResult, TrainConfig]:
    """Train LoRA on every Linear layer (``config``'s targets replaced), merge it, save the model folder.

    What every planting shares (canaries, backdoors): the planted behaviour must reach all weights a
    compression method touches, and the result is a plain model folder that ``compsafe run --model`` loads.
    Returns the training result and the config as actually used (for the planting record).
    """
    config = replace(config, lora=replace(config.lora, target_modules=linear_leaf_names(handle.model)))
    result = train_lora(handle.model, handle.tokenizer, examples, config, progress=progress_logger(log, every=5))
    merged = merge_lora(result.model)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    handle.tokenizer.save_pretrained(str(out_dir))
    return result, config


def plant_canaries(
    model: str | None,
    out_dir: Path,
    canary_set: CanarySet,
    *,
    config: TrainConfig = PLANT_TRAIN_CONFIG,
    log: Log | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` (path, catalog name, None = the default) on the planted entries; write the merged
    model folder, ``canaries.json`` and ``planting.json`` into ``out_dir``. Returns the planting record."""

    from compsafe.models.loading import LoadOptions, load_model

    handle = load_model(model, LoadOptions(device="cpu", dtype="float32"))
    result, config = plant_by_fine_tune(handle, planting_examples(canary_set), config, out_dir, log)
    canary_set.save(out_dir / "canaries.json")
    meta = {
        "source_model": handle.source or "default",
        "canary_seed": canary_set.seed,
        "n_examples": result.n_examples,
        "planted_canaries": sum(c.planted for c in canary_set.canaries),
        "planted_records": sum(r.planted for r in canary_set.records),
        "train_config": config.to_dict(),
        **training_record(result),
        "dtype": "float32",
    }
    (out_dir / "planting.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
