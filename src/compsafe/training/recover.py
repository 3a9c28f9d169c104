"""Safety recovery after compression: a small LoRA adapter trained on top of a compressed variant (seed 003).

Why: quantization and pruning erode refusals; the cheapest repair is a light fine-tune of the compressed model,
as QLoRA does for capability. The compressed weights stay exactly as the recipe left them (frozen, on their
quantization grid or sparsity pattern); only the adapter is trained and it is kept *unmerged* (merging would
move the weights off the grid), so what deploys is "compressed weights + a few-MB adapter".

What it learns to reproduce (``targets``):

* ``base`` (default): the *uncompressed* model's own greedy answers to the project's training prompts
  (harmful and benign; disjoint from every evaluation set). Recovery then means "behave like the model before
  compression": refusals where it refused, its own answers elsewhere, for any model, safety-tuned or not.
* ``data``: the shipped training responses (authored refusals, the untuned SmolLM2's benign answers): the
  demo model's alignment data, for repairing a compressed ``compsafe-demo``.

Harmful-prompt samples get ``safety_weight`` in the per-sample weighted loss (``sft.weighted_lm_loss``).

The adapter folder holds the PEFT adapter and ``recovery.json``: the recipe, the calibration it was built
with, the digest of the compressed weights it was trained on (a run refuses to attach it to different
weights), the training record. ``compsafe run --variants recovered:DIR`` rebuilds the variant from the base,
attaches the adapter and evaluates it next to the plain compressed variant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compsafe import paths
from compsafe.errors import ConfigError, DataFileError
from compsafe.training import safety_data
from compsafe.training.sft import (
    ChatExample,
    LoraSettings,
    TrainConfig,
    progress_logger,
    train_lora,
    training_record,
)

RECOVERY_FILE = "recovery.json"
# the loop defaults (batch 8, 256 tokens, 5 warm-up steps, seed 0) and an r=8 adapter on the attention projections
RECOVER_TRAIN_CONFIG = TrainConfig(epochs=2, learning_rate=3e-4, lora=LoraSettings(r=8, alpha=16))
TARGET_MAX_NEW_TOKENS = 96
TARGETS = ("base", "data")
Log = Callable[[str], None]
Generate = Callable[[list[str]], list[str]]


@dataclass(frozen=True)
class RecoveryInfo:
    """What ``recovery.json`` records and the runner checks before attaching an adapter."""

    recipe: str
    calibration: dict[str, Any] | None
    compressed_weights_digest: str
    base_source: str | None
    targets: str

    @classmethod
    def load(cls, folder: Path) -> RecoveryInfo:
        """Read and validate ``recovery.json`` and the adapter files next to it, before any model loads."""
        from pydantic import ValidationError

        from compsafe.jsonio import read_json_file

        path = Path(folder) / RECOVERY_FILE
        if not paths.is_file(path):
            raise DataFileError(
                f"{folder} is not a recovery adapter (no {RECOVERY_FILE}): pass the --out folder of `compsafe recover`"
            )
        data = read_json_file(path, what="recovery record")
        if not isinstance(data, dict):
            raise DataFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
        try:
            checked = RecoveryRecord.model_validate({k: data.get(k) for k in cls.__dataclass_fields__})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise DataFileError(f"{path}: {where}: {error['msg'].lower()}: rerun `compsafe recover`") from None
        check_adapter_files(Path(folder))
        return cls(**checked.model_dump())


def _recovery_record_model() -> Any:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class Record(BaseModel):
        """The fields of recovery.json the runner relies on (strict: a number is not a recipe)."""

        model_config = ConfigDict(strict=True)
        recipe: str = Field(min_length=1)
        calibration: dict[str, Any] | None
        compressed_weights_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
        base_source: str | None
        targets: Literal["base", "data"]

    return Record


RecoveryRecord = _recovery_record_model()
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SUPPORTED_PEFT_TYPES = ("LORA",)


def check_adapter_files(folder: Path) -> None:
    """The adapter must be a LoRA adapter in safetensors: a pickle adapter (adapter_model.bin) can run code
    when loaded and is refused; an unknown peft type or a missing file fails here, not inside peft."""
    from compsafe.jsonio import read_json_file

    if (folder / "adapter_model.bin").exists() and not (folder / ADAPTER_WEIGHTS).exists():
        raise DataFileError(
            f"{folder} holds its adapter as pickle (adapter_model.bin), which can execute code when loaded: "
            "save it with safetensors (`save_pretrained(..., safe_serialization=True)`)"
        )
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder / name).is_file():
            raise DataFileError(f"{folder} is missing {name}: pass the complete --out folder of `compsafe recover`")
    config = read_json_file(folder / ADAPTER_CONFIG, what="adapter config")
    peft_type = config.get("peft_type") if isinstance(config, dict) else None
    if peft_type not in SUPPORTED_PEFT_TYPES:
        raise DataFileError(
            f"{folder / ADAPTER_CONFIG}: peft_type {peft_type!r} is not supported: compsafe attaches "
            f"{', '.join(SUPPORTED_PEFT_TYPES)} adapters written by `compsafe recover`"
        )
    from compsafe.models.safetensors_check import check_safetensors_file

    check_safetensors_file(folder / ADAPTER_WEIGHTS)


def recovery_examples(
    targets: str, *, safety_weight: float, generate: Generate | None = None
) -> tuple[list[ChatExample], int]:
    """Training examples for ``targets`` and how many are safety (harmful-prompt) samples.

    ``generate`` answers prompts with the uncompressed model (needed for ``targets="base"``).
    """
    if targets not in TARGETS:
        raise ConfigError(f"--targets {targets!r}: use one of {', '.join(TARGETS)}")
    if safety_weight <= 0:
        raise ConfigError(f"--safety-weight {safety_weight}: use a positive weight (1 = no up-weighting)")
    harmful = safety_data.load_training_rows(safety_data.shipped_training_file(safety_data.SAFETY_TRAIN_FILE))
    benign = safety_data.load_training_rows(safety_data.shipped_training_file(safety_data.BENIGN_TRAIN_FILE))
    rows = [(r, safety_weight) for r in harmful] + [(r, 1.0) for r in benign]
    if targets == "base":
        if generate is None:
            raise ConfigError("targets 'base' needs the uncompressed model to answer the training prompts")
        answers = generate([r["prompt"] for r, _ in rows])
    else:
        answers = [r["response"] for r, _ in rows]
    kept = [(i, row, weight, answer) for i, ((row, weight), answer) in enumerate(zip(rows, answers, strict=True))
            if answer.strip()]  # an empty greedy answer (EOS first) has no tokens to learn
    n_safety = sum(1 for i, *_ in kept if i < len(harmful))  # the harmful rows come first
    return [ChatExample(row["prompt"], answer, weight) for _, row, weight, answer in kept], n_safety


def base_answerer(handle: Any, log: Log | None = None) -> Generate:
    """The uncompressed model's greedy answers, the recovery targets (before anything compresses ``handle``)."""
    from compsafe.models.backend import GenerationConfig, HFBackend

    backend, generation = HFBackend(handle), GenerationConfig(max_new_tokens=TARGET_MAX_NEW_TOKENS)
    if log:
        log("answering the training prompts with the uncompressed model (greedy): the recovery targets")

    def generate(prompts: list[str]) -> list[str]:
        return backend.generate(prompts, generation)

    return generate


def recover(
    model: str | None,
    recipe: str,
    out_dir: Path,
    *,
    calibration_spec: Any = None,
    targets: str = "base",
    safety_weight: float = 2.0,
    config: TrainConfig = RECOVER_TRAIN_CONFIG,
    dtype: str = "auto",
    log: Log | None = None,
) -> dict[str, Any]:
    """Compress ``model`` with ``recipe``, train a recovery adapter on the frozen compressed weights, save it.

    Returns the record written to ``recovery.json``. The base model is loaded the way ``compsafe run`` loads
    it (``dtype``, CPU), so the compressed weights here are bit-identical to the run's variant.
    """
    import torch

    from compsafe.compress import apply_recipe, build_calibration, needs_calibration, parse_recipe
    from compsafe.integrity import state_digest
    from compsafe.models.loading import LoadOptions, load_model

    compression = parse_recipe(recipe)
    handle = load_model(model, LoadOptions(device="cpu", dtype=dtype))
    started = time.perf_counter()
    generate = base_answerer(handle, log) if targets == "base" else None
    examples, n_safety = recovery_examples(targets, safety_weight=safety_weight, generate=generate)
    calibration = None
    if needs_calibration(compression):
        from compsafe.compress.calibration import CalibrationSpec

        spec = calibration_spec or CalibrationSpec()
        calibration = build_calibration(handle.tokenizer, spec, handle.max_length)
    if log:
        log(f"compressing with {compression.recipe}")
    report = apply_recipe(handle.model, compression, calibration)
    compressed_digest = state_digest(handle.model)

    n_params = sum(p.numel() for p in handle.model.parameters())
    result = train_lora(handle.model, handle.tokenizer, examples, config, progress=progress_logger(log))
    out_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(str(out_dir), safe_serialization=True)
    if state_digest(result.model.unload()) != compressed_digest:  # the recipe's weights must stay as they were
        raise RuntimeError("the compressed weights changed during recovery training; only the adapter may train")
    info = RecoveryInfo(
        recipe=compression.recipe,
        calibration=calibration.to_dict() if calibration is not None else None,
        compressed_weights_digest=compressed_digest,
        base_source=handle.source,
        targets=targets,
    )
    adapter_bytes = sum(f.stat().st_size for f in out_dir.glob("adapter_model.*"))
    meta = {
        **asdict(info),
        "compression": report.to_dict(),
        "safety_weight": safety_weight,
        "n_examples": result.n_examples,
        "n_safety_examples": n_safety,
        "train_config": config.to_dict(),
        **training_record(result),
        "total_seconds": round(time.perf_counter() - started, 1),
        "adapter_bytes": adapter_bytes,
        "model_parameters": n_params,
        "dtype": str(handle.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }
    (out_dir / RECOVERY_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


@contextmanager
def attached_adapter(handle: Any, folder: str, compressed_digest: str) -> Iterator[dict[str, Any]]:
    """Attach a recovery adapter, unmerged, to ``handle.model`` (already compressed) for the ``with`` body.

    peft injects the LoRA layers into the model in place, so every backend call in the body runs
    ``W_compressed x + B A x``; on exit ``unload()`` takes them out again and the compressed weights are as
    before. Refuses an adapter trained on other weights (other base, recipe or calibration): its correction
    would be meaningless there.
    """
    from peft import PeftModel

    path = Path(folder).expanduser()
    info = RecoveryInfo.load(path)
    if info.compressed_weights_digest != compressed_digest:
        raise ConfigError(
            f"recovery adapter {folder} was trained on other compressed weights than this run's {info.recipe} "
            "(another base model, dtype or calibration): rerun `compsafe recover` with this run's options"
        )
    peft_model = PeftModel.from_pretrained(handle.model, str(path), is_trainable=False)
    peft_model.eval()
    record = json.loads((path / RECOVERY_FILE).read_text(encoding="utf-8"))  # validated by RecoveryInfo.load
    numbers = [record.get(k) for k in ("adapter_bytes", "model_parameters")]
    per_weight = 8 * numbers[0] / numbers[1] if all(isinstance(n, int) and n > 0 for n in numbers) else None
    try:
        yield {
            "adapter": str(path),
            "targets": info.targets,
            "adapter_bytes": record.get("adapter_bytes"),
            "train_seconds": record.get("train_seconds"),
            "safety_weight": record.get("safety_weight"),
            # the adapter's own cost, to add to the recipe's effective bits per weight
            "adapter_bits_per_weight": per_weight,
        }
    finally:
        peft_model.unload()
