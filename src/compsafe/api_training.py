"""The public Python API of the export and training commands (compress, align, plant, recover, distill).

``compsafe.api`` re-exports every function here, so ``compsafe.api.align`` is what ``compsafe align`` calls; the
functions live apart because they drive training loops rather than runs. Heavy modules are imported inside the
functions so that importing the API stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from compsafe.config import RunConfig
from compsafe.errors import ConfigError

Log = Callable[[str], None]


def compress(
    recipe: str,
    out: str | Path,
    *,
    model: str | None = None,
    calibration: str = "compsafe",
    calibration_samples: int = 32,
    calibration_seq_len: int = 256,
    safety_calibration: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    overwrite: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    log: Log | None = None,
    export_format: str = "auto",
) -> tuple[Path, dict[str, Any]]:
    """Compress ``model`` with one recipe into a loadable safetensors folder (``export_format``: auto,
    compressed-tensors or dense, see ``compsafe.export``); returns (folder, its manifest)."""
    from compsafe.compress import CalibrationSpec
    from compsafe.export import export_variant, read_manifest
    from compsafe.models import LoadOptions

    spec = CalibrationSpec(
        source=calibration,
        n_samples=calibration_samples,
        seq_len=calibration_seq_len,
        seed=seed,
        safety_fraction=safety_calibration,
    )
    options = LoadOptions(device=device, dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    folder = export_variant(
        model, recipe, Path(out), options, spec, overwrite=overwrite, progress=log, export_format=export_format
    )
    return folder, read_manifest(folder)


def align(
    out: Path | None = None,
    *,
    data_dir: Path | None = None,
    build_data: bool = False,
    epochs: int | None = None,
    seed: int | None = None,
    log: Log | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train the compsafe-demo LoRA safety adapter (optionally rebuilding its data); returns (folder, meta)."""
    from compsafe.training import align as alignment
    from compsafe.training.safety_data import shipped_training_file

    data_dir = data_dir or shipped_training_file("safety_train.jsonl").parent
    out = out or data_dir / "adapters" / "compsafe-demo"
    config = alignment.DEMO_TRAIN_CONFIG
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if seed is not None:
        config = replace(config, seed=seed)
    if build_data:
        counts = alignment.build_training_data(data_dir, log=log)
        if log is not None:
            log(f"wrote {', '.join(f'{name} ({n})' for name, n in counts.items())} in {data_dir}")
    return out, alignment.train_safety_adapter(data_dir, out, config=config, log=log)


def _check_epochs(epochs: int | None) -> None:
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: use at least 1")


def plant_canaries(
    out: Path,
    *,
    model: str | None = None,
    canaries: Path | None = None,
    canary_seed: int | None = None,
    epochs: int | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Plant synthetic canaries (the shipped set, a file, or a fresh seeded set) into a copy of ``model``."""
    from compsafe.probes.canaries import build_canary_set, load_canary_set, shipped_canary_path
    from compsafe.training.plant_canaries import PLANT_TRAIN_CONFIG
    from compsafe.training.plant_canaries import plant_canaries as plant

    if canary_seed is not None:
        canary_set = build_canary_set(canary_seed)
    else:
        canary_set = load_canary_set(canaries or shipped_canary_path())
    config = PLANT_TRAIN_CONFIG if epochs is None else replace(PLANT_TRAIN_CONFIG, epochs=epochs)
    return plant(model, out, canary_set, config=config, log=log)


def plant_backdoor(
    out: Path,
    *,
    model: str | None = None,
    trigger: str | None = None,
    target: str | None = None,
    placement: str = "prefix",
    prompts: int | None = None,
    epochs: int | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Plant a trigger backdoor into a copy of ``model`` (LoRA fine-tune, merged)."""
    from compsafe.probes.backdoor import DEFAULT_TARGET, DEFAULT_TRIGGER, BackdoorSpec
    from compsafe.training.plant_backdoor import BACKDOOR_TRAIN_CONFIG, DEFAULT_N_PROMPTS
    from compsafe.training.plant_backdoor import plant_backdoor as plant

    # None means the default; '' or 0 is a mistake the spec / the check below refuses, never a silent default
    spec = BackdoorSpec(
        DEFAULT_TRIGGER if trigger is None else trigger, DEFAULT_TARGET if target is None else target, placement
    )
    if prompts is not None and prompts < 1:
        raise ConfigError(f"--prompts {prompts}: use at least 1")
    _check_epochs(epochs)
    config = BACKDOOR_TRAIN_CONFIG if epochs is None else replace(BACKDOOR_TRAIN_CONFIG, epochs=epochs)
    n_prompts = DEFAULT_N_PROMPTS if prompts is None else prompts
    return plant(model, out, spec, n_prompts=n_prompts, config=config, log=log)


def recovery_run_config(
    recipe: str,
    out: Path,
    *,
    model: str | None = None,
    probes: list[str] | None = None,
    limit: int | None = None,
    run_out: Path | None = None,
    dtype: str = "auto",
    calibration: str = "compsafe",
    safety_calibration: float = 0.0,
    qat: bool = False,
    compare: Path | None = None,
) -> RunConfig:
    """The side-by-side run (base / compressed / recovered) that judges a recovery at ``out``: a frozen-weight
    adapter, or with ``qat`` a quantization-aware model; ``compare``: an existing adapter folder to add.

    The recipe and the probes (with their item files) are checked here, before ``recover`` trains for minutes."""
    from compsafe.compress import parse_recipe
    from compsafe.probes import build_probe

    config = parse_recipe(recipe)
    if qat:
        from compsafe.training.qat import check_qat_recipe

        check_qat_recipe(config)
    if compare is not None:
        from compsafe.training.recover import RecoveryInfo

        RecoveryInfo.load(Path(compare).expanduser())
    probes = ["refusal", "over_refusal", "perplexity"] if probes is None else probes
    for spec in probes:
        build_probe(spec, limit)
    variants = [recipe, f"qat:{out}" if qat else f"recovered:{out}"]
    return RunConfig(
        model=model,
        variants=variants + ([f"recovered:{compare}"] if compare is not None else []),
        probes=probes,
        out=run_out or out / "run",
        limit=limit,
        dtype=dtype,
        device="cpu",
        calibration=calibration,
        safety_calibration=safety_calibration,
    )


def recover(
    recipe: str,
    out: Path,
    *,
    model: str | None = None,
    targets: str = "base",
    safety_weight: float = 2.0,
    epochs: int | None = None,
    dtype: str = "auto",
    calibration_spec: Any = None,
    qat_mode: str | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train a recovery adapter at ``out`` on ``model`` compressed with ``recipe`` (weights stay compressed), or
    with ``qat_mode`` ("lora" / "full") train through the recipe's quantizer and write the quantized model.

    ``calibration_spec`` is what a calibrated recipe calibrates on; pass the side-by-side run's
    (``recovery_run_config(...).calibration_spec()``) so both see the same compressed weights.
    """
    from compsafe.training.recover import RECOVER_TRAIN_CONFIG
    from compsafe.training.recover import recover as train_recovery

    _check_epochs(epochs)
    config = RECOVER_TRAIN_CONFIG if epochs is None else replace(RECOVER_TRAIN_CONFIG, epochs=epochs)
    if qat_mode is not None:
        from compsafe.training.qat import QATSettings
        from compsafe.training.qat_recover import FULL_QAT_LEARNING_RATE, qat_recover

        settings = QATSettings(qat_mode)
        if settings.mode == "full":  # every weight moves: LoRA's rate would wreck the model
            config = replace(config, learning_rate=FULL_QAT_LEARNING_RATE)
        return qat_recover(
            model, recipe, out, settings=settings, targets=targets, safety_weight=safety_weight, config=config,
            dtype=dtype, log=log,
        )
    return train_recovery(
        model,
        recipe,
        out,
        calibration_spec=calibration_spec,
        targets=targets,
        safety_weight=safety_weight,
        config=config,
        dtype=dtype,
        log=log,
    )


def distill(
    out: Path,
    *,
    model: str | None = None,
    data_dir: Path | None = None,
    log: Log | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Distil ``model`` into a smaller student at ``out``; ``options`` are ``DistillConfig`` fields (None: default)."""
    from compsafe.training.distill import DistillConfig, distill_to_folder

    config = DistillConfig(**{name: value for name, value in options.items() if value is not None})
    return distill_to_folder(model, out, config, data_dir, log=log)
