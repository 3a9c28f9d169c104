"""``compsafe recover --qat``: quantization-aware safety recovery, written as a quantized model folder.

The same training data and loss as the frozen-weight recovery (``training.recover``: the uncompressed model's
own answers, or the shipped responses, harmful prompts up-weighted), but trained through the recipe's fake
quantizer (``training.qat``) and then quantized with the recipe. What it writes is an ordinary compsafe export
(``export.write_export``: packed compressed-tensors for int recipes, with the provenance manifest) plus
``qat.json``, so ``compsafe run --variants qat:DIR`` (or the folder itself) measures it next to the PTQ variant
and the frozen-weight adapter, at the recipe's real bits.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from compsafe import paths
from compsafe.errors import DataFileError
from compsafe.training.qat import QATSettings, check_qat_recipe, quantization_aware
from compsafe.training.recover import Log, base_answerer, recovery_examples
from compsafe.training.sft import TrainConfig, TrainResult, encode_chat_example, per_sample_loss, progress_logger

QAT_FILE = "qat.json"
FULL_QAT_LEARNING_RATE = 2e-5  # full fine-tuning of every target weight (LoRA trains at 3e-4)


def qat_label(folder: str | Path) -> str:
    """A run's label for a QAT folder: ``<recipe>+qat``."""
    from compsafe.compress import parse_recipe

    return f"{parse_recipe(qat_recipe(folder)).recipe}+qat"


def qat_recipe(folder: str | Path) -> str:
    """The recipe a QAT folder was trained for (its ``qat.json``), checked before any model loads."""
    from compsafe.jsonio import read_json_file

    path = Path(folder).expanduser() / QAT_FILE
    if not paths.is_file(path):
        raise DataFileError(f"{folder} is not a QAT model (no {QAT_FILE}): pass the --out folder of `recover --qat`")
    data = read_json_file(path, what="QAT record")
    recipe = data.get("recipe") if isinstance(data, dict) else None
    if not isinstance(recipe, str) or not recipe:
        raise DataFileError(f"{path}: no recipe recorded: rerun `compsafe recover --qat`")
    return recipe


def qat_recover(
    model: str | None,
    recipe: str,
    out_dir: Path,
    *,
    settings: QATSettings = QATSettings(),
    targets: str = "base",
    safety_weight: float = 2.0,
    config: TrainConfig,
    dtype: str = "auto",
    log: Log | None = None,
) -> dict[str, Any]:
    """Train ``model`` through ``recipe``'s quantizer on the recovery data, quantize, export to ``out_dir``."""
    import torch

    from compsafe.compress import apply_recipe, parse_recipe
    from compsafe.export import write_export
    from compsafe.models.loading import LoadOptions, load_model
    from compsafe.training.sft import optimize_weighted, training_record

    compression = check_qat_recipe(parse_recipe(recipe))
    handle = load_model(model, LoadOptions(device="cpu", dtype=dtype))
    started = time.perf_counter()
    generate = base_answerer(handle, log) if targets == "base" else None
    examples, n_safety = recovery_examples(targets, safety_weight=safety_weight, generate=generate)
    tokenizer = handle.tokenizer
    encoded = [encode_chat_example(tokenizer, example, config.max_length) for example in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(config.seed)
    network = handle.model
    if log:
        log(f"training through the {compression.recipe} fake quantizer ({settings.mode})")
    train_started = time.perf_counter()
    with quantization_aware(network, compression, settings) as trainable:

        def sample_losses(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            logits = network(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return per_sample_loss(logits, batch["labels"])

        network.train()
        losses = optimize_weighted(
            trainable, encoded, config, pad_id=pad_id, device=handle.device, sample_losses=sample_losses,
            progress=progress_logger(log),
        )
        network.eval()
    train_seconds = time.perf_counter() - train_started
    report = apply_recipe(network, compression)  # the weights the last step ran on (training.qat)
    record = {
        "recipe": compression.recipe,
        "qat": asdict(settings),
        "targets": targets,
        "safety_weight": safety_weight,
        "n_examples": len(encoded),
        "n_safety_examples": n_safety,
        "train_config": config.to_dict(),
        **training_record(TrainResult(network, losses, len(losses), train_seconds, len(encoded))),
        "total_seconds": round(time.perf_counter() - started, 1),
        "dtype": str(handle.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }
    write_export(handle, model, compression, report, None, out_dir, progress=log, record={"qat_recovery": record})
    (out_dir / QAT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record

