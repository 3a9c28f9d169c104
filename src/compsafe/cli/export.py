"""`compsafe compress`: one recipe, written as a loadable safetensors folder (packed or dense) with a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from compsafe import api
from compsafe.cli.common import command, log_step, say


@command()
def compress(
    recipe: str = typer.Option(
        ..., "--recipe", "-r", help="Recipe, e.g. int4-g128, wanda-50, int4-g128+keep=layers.0."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (safetensors model + compsafe_manifest.json)."),
    export_format: str = typer.Option(
        "auto", "--format", help="compressed-tensors (packed int codes + scales), sparse-bitmask / sparse-24-bitmask "
        "(pruned weights; compsafe loads them), gptq (qweight/qzeros/scales/g_idx, for gptqmodel/optimum; compsafe "
        "loads it too), gguf (q4_0/q8_0 recipes), dense (dequantized at the model's dtype), or auto: packed when the "
        "recipe quantizes, the sparse layout when it prunes, else dense."
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="Model folder, .gguf file, hub id or catalog name (default: the embedded model)."
    ),
    calibration: str = typer.Option("compsafe", "--calibration", help="Calibration text: 'compsafe' or a file."),
    calibration_samples: int = typer.Option(32, "--calibration-samples", help="Calibration windows."),
    calibration_seq_len: int = typer.Option(256, "--calibration-seq-len", help="Tokens per calibration window."),
    safety_calibration: float = typer.Option(
        0.0, "--safety-calibration", help="Fraction of calibration windows that are refusals (0-1)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration sampler."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="Dtype to compress and save in (auto: as `compsafe run`)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export at --out."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle weight files."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run model code from its repo."),
) -> None:
    """Compress a model with one recipe and write it as a loadable safetensors folder with a manifest."""
    folder, manifest = api.compress(
        recipe,
        out,
        model=model,
        calibration=calibration,
        calibration_samples=calibration_samples,
        calibration_seq_len=calibration_seq_len,
        safety_calibration=safety_calibration,
        seed=seed,
        device=device,
        dtype=dtype,
        overwrite=force,
        export_format=export_format,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        log=log_step,
    )
    bits = manifest["compression"].get("effective_bits_per_weight", 0.0)
    say(
        f"wrote {folder}  ·  {manifest['recipe']}  ·  {manifest['export_format']}  ·  {bits:.2f} bits/weight  ·  "
        f"weights sha256 {manifest['weights_digest'][:16]}  (use it as a variant: compsafe run --variants {folder})"
    )
