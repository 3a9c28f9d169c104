"""`compsafe run` and the catalogs a user reads before one: `variants`, `probes`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from compsafe import api
from compsafe.cli.common import command, console, progress_observer, say
from compsafe.config import DEFAULT_JUDGE

# Options of `compsafe run` (declared apart so the command reads as its body).
ModelOption = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model folder, .gguf file, hub id or catalog name (default: the embedded compsafe-demo)."
    ),
]
VariantsOption = Annotated[
    str,
    typer.Option(
        "--variants",
        "-v",
        help="Comma-separated recipes or model paths, e.g. "
        "int8,int4-g128,mag-50,2:4 (see `compsafe variants`); '' for none.",
    ),
]
ProbesOption = Annotated[
    str,
    typer.Option(
        "--probes",
        "-p",
        help="Comma-separated probes, optionally with a set or file: "
        "refusal:harmbench,perplexity:my.txt (see `compsafe probes`).",
    ),
]
# --out/--store are text, not Path: typer turns '' into Path('.') (the working folder); RunConfig refuses ''
OutOption = Annotated[str, typer.Option("--out", "-o", help="Run folder (default runs/latest).")]
LimitOption = Annotated[int, typer.Option("--limit", help="At most N items per probe (a quick look).")]
JudgeOption = Annotated[str, typer.Option("--judge", help=f"Refusal judge (default {DEFAULT_JUDGE}).")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", help="Batch size for generation and scoring.")]
MaxNewTokensOption = Annotated[int, typer.Option("--max-new-tokens", help="Tokens generated per response.")]
ScreenMarginOption = Annotated[
    float,
    typer.Option(
        "--screen-margin",
        help="Screen refusal/over_refusal/jailbreak items by refusal margin (nats): items with |margin| >= X are "
        "recorded as refused/answered without generating (a proxy verdict, marked screened); off by default.",
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed for bootstrap and sampling.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]
DtypeOption = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]
StoreOption = Annotated[
    str, typer.Option("--store", help="SQLite results store to share across runs (default <out>/store.sqlite).")
]
ConfigOption = Annotated[Path, typer.Option("--config", help="YAML file with run options (flags override it).")]
ProfileOption = Annotated[
    str,
    typer.Option(
        "--profile",
        help="Threat-model profile (see `compsafe profiles`): chat-assistant, code, rag, minimal, fairness-sensitive, "
        "privacy-sensitive, agent (picks probes, variants, gate policy).",
    ),
]
AllowPickleOption = Annotated[bool, typer.Option("--allow-pickle", help="Allow loading pickle weight files.")]
TrustRemoteCodeOption = Annotated[bool, typer.Option("--trust-remote-code", help="Run model code from its repo.")]
CalibrationOption = Annotated[
    str,
    typer.Option(
        "--calibration", help="Calibration text for GPTQ/AWQ/Wanda/SparseGPT: 'compsafe' or a .txt/.jsonl file."
    ),
]
CalibrationSamplesOption = Annotated[
    int, typer.Option("--calibration-samples", help="Calibration windows (default 32).")
]
CalibrationSeqLenOption = Annotated[int, typer.Option("--calibration-seq-len", help="Tokens per window (default 256).")]
SafetyCalibrationOption = Annotated[
    float,
    typer.Option("--safety-calibration", help="Fraction of calibration windows that are refusals (0-1, default 0)."),
]
ExecutorOption = Annotated[
    str, typer.Option("--executor", help="local (default) or ray: one Ray task per (variant, probe).")
]
AddressOption = Annotated[str, typer.Option("--address", help="Ray cluster address (default: start a local Ray).")]
GpusPerTaskOption = Annotated[float, typer.Option("--gpus-per-task", help="GPUs each Ray task requests (default 0).")]
RayResourcesOption = Annotated[
    str,
    typer.Option("--ray-resources", help="Custom Ray resources each task requests, e.g. worker_node=1 (pins nodes)."),
]


@command()
def run(
    model: ModelOption = None,
    variants: VariantsOption = None,
    probes: ProbesOption = None,
    out: OutOption = None,
    limit: LimitOption = None,
    judge: JudgeOption = None,
    batch_size: BatchSizeOption = None,
    max_new_tokens: MaxNewTokensOption = None,
    screen_margin: ScreenMarginOption = None,
    seed: SeedOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    store: StoreOption = None,
    config: ConfigOption = None,
    profile: ProfileOption = None,
    allow_pickle: AllowPickleOption = False,
    trust_remote_code: TrustRemoteCodeOption = False,
    calibration: CalibrationOption = None,
    calibration_samples: CalibrationSamplesOption = None,
    calibration_seq_len: CalibrationSeqLenOption = None,
    safety_calibration: SafetyCalibrationOption = None,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    gpus_per_task: GpusPerTaskOption = None,
    ray_resources: RayResourcesOption = None,
    artefact_cost: bool = typer.Option(
        False, "--cost", help="Also measure each model file's own cost (load time, peak memory, tokens/s) in a "
        "fresh process: the base's files, every folder/.gguf variant, and each recipe variant written (to a temporary "
        "folder) as `compsafe compress` would write it."
    ),
    no_draft: bool = typer.Option(
        False, "--no-draft", help="One token per pass: no guesses verified (the base's answers, n-gram lookups). "
        "Same results; use it to check that, or to time the plain path."
    ),
) -> None:
    """Compress, probe base and variants on the same items, and report the paired deltas."""
    from compsafe.config import RunConfig, split_list, split_resources, split_variants
    from compsafe.report.terminal import print_summary

    overrides = {
        "model": model,
        "variants": split_variants(variants) if variants is not None else None,
        "probes": split_list(probes) if probes is not None else None,
        "profile": profile,
        "draft": False if no_draft else None,
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
        "ray_resources": split_resources(ray_resources) if ray_resources is not None else None,
        "artefact_cost": artefact_cost or None,
    }
    if config is not None:
        run_config = RunConfig.from_yaml(config, **overrides)
    else:
        run_config = RunConfig(**{k: v for k, v in overrides.items() if v is not None})
    with progress_observer() as observer:
        summary = api.run(run_config, observer)
    print_summary(summary, console)
    say_drafting(summary)
    say(
        f"run folder: {run_config.out}  (summary.json, records/, report.html)  ·  "
        f"{summary['timing_seconds']['total']:.0f} s"
    )


def say_drafting(summary: dict) -> None:
    """How much of each model's generation came from confirmed drafts: the base's answers for a variant,
    then n-gram lookups in the prompt and the other answers (models/drafting.py, models/lookup.py)."""
    drafted = {k: m for k, m in summary.get("drafting", {}).get("models", {}).items() if m.get("generated_tokens")}
    if drafted:
        shares = ", ".join(f"{label} {m['accepted_share']:.0%}" for label, m in drafted.items())
        say(f"tokens confirmed from drafts (the base's answers, lookups): {shares}")


@command()
def variants() -> None:
    """List the recipe grammar and every registered compression method."""
    table = Table(title="compression methods (a recipe string selects one)")
    for column in ("method", "grammar", "examples"):
        table.add_column(column)
    for row in api.list_variants():
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
    console.print(
        "A range sweeps one number of a recipe: mag-10..60/10 is mag-10,mag-20,...,mag-60 (also wanda-20..60/20, "
        "sparsegpt-10..50/20, lowrank-r0.25..0.75/0.25); the report then plots each group's bias against the rate."
    )


@command()
def probes() -> None:
    """List probes with their item sets, item counts and data provenance."""
    table = Table(title="probes (select a set with probe:set or probe:path/to/file.jsonl)")
    for column in ("probe", "metric", "set", "items", "source", "licence"):
        table.add_column(column)
    for row in api.list_probes():
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
