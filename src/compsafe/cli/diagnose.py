"""Commands that look inside a compressed model: `scan` (divergences), `sensitivity`, `mitigate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compsafe import api
from compsafe.cli.common import command, console, log_step, progress_observer, say
from compsafe.config import DEFAULT_JUDGE
from compsafe.errors import ConfigError


def parse_blocks(spec: str | None) -> list[int] | None:
    """'0-3,7' -> [0, 1, 2, 3, 7]; None -> every block."""
    if not spec:
        return None
    blocks: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        high = high or low
        if not (low.isascii() and low.isdigit() and high.isascii() and high.isdigit()) or int(high) < int(low):
            raise ConfigError(f"--blocks {spec!r}: use block numbers and ranges, e.g. 0-3,7")
        blocks.extend(range(int(low), int(high) + 1))
    return blocks


def check_counts(**counts: int | None) -> None:
    """Counts of items must not be negative (a negative --prompts would slice items from the end)."""
    for name, value in counts.items():
        if value is not None and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: use 0 or more")


@command()
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
    from compsafe.analysis.divergence_scan import FILENAME
    from compsafe.config import split_variants
    from compsafe.report.divergences import print_divergences

    variants = split_variants(variant) if variant else None
    with progress_observer() as observer:
        run_dir, scans = api.scan(
            run_dir, model=model, variants=variants, probes=probes, limit=limit, out=out, device=device,
            observer=observer,
        )
    print_divergences(scans, console, top)
    say(f"wrote {run_dir / FILENAME}")


# Options `sensitivity` and `mitigate` share (declared once; their defaults differ only in the samples).
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Model folder, hub id or catalog name (default: embedded).")
]
PassagesOption = Annotated[int, typer.Option("--passages", help="Shipped passages for perplexity.")]
SamplesOption = Annotated[int, typer.Option("--calibration-samples", help="Windows for Hessians/calibration.")]
SafetyCalibrationOption = Annotated[
    float, typer.Option("--safety-calibration", help="Refusal share of calibration.")
]
MaxNewTokensOption = Annotated[int, typer.Option("--max-new-tokens", help="Tokens generated per judged response.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda.")]
JudgeOption = Annotated[
    str, typer.Option("--judge", help=f"Judge of the judged rates (default {DEFAULT_JUDGE}; see `compsafe judges`).")
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Write the full result as JSON here.")]
StoreOption = Annotated[
    Path, typer.Option("--store", help="SQLite file keeping every measurement, so rerunning the same scan resumes.")
]


def check_judge(name: str) -> None:
    """Fail on an unknown judge before the model loads (a scan can run for many minutes before it judges)."""
    from compsafe.judges import get_judge

    get_judge(name)


@command()
def sensitivity(
    model: ModelOption = None,
    recipe: str = typer.Option("int4-rtn-g128", "--recipe", "-r", help="Recipe whose sensitivity is measured."),
    prompts: int = typer.Option(24, "--prompts", help="Harmful prompts of the validation split (0: all 66)."),
    passages: PassagesOption = 4,
    blocks: str = typer.Option(None, "--blocks", help="Blocks to scan, e.g. 0-3,7 (default all)."),
    judged: bool = typer.Option(True, "--judged/--no-judged", help="Also generate+judge (validates the fast signal)."),
    heads: bool = typer.Option(True, "--heads/--no-heads", help="Scan attention heads."),
    head_candidates: int = typer.Option(12, "--head-candidates", help="Heads ablated exactly (0: every head)."),
    calibration_samples: SamplesOption = 8,
    safety_calibration: SafetyCalibrationOption = 0.0,
    max_new_tokens: MaxNewTokensOption = 32,
    judge: JudgeOption = DEFAULT_JUDGE,
    device: DeviceOption = "auto",
    dtype: str = typer.Option("float32", "--dtype", help="Scan dtype (float32: margins stable across batchings)."),
    out: OutOption = None,
    store: StoreOption = None,
) -> None:
    """Where a recipe hurts: per-module weight/output error, per-block safety vs capability damage, safety heads."""
    from compsafe.report.views import print_sensitivity

    check_counts(prompts=prompts, passages=passages, calibration_samples=calibration_samples)
    if judged:
        check_judge(judge)
    setup = api.DiagnosisSetup(model, device, dtype, calibration_samples, safety_calibration, out, store)
    result = api.sensitivity(
        recipe,
        setup,
        prompt_limit=prompts or None,
        passage_limit=passages,
        judged=judged,
        blocks=parse_blocks(blocks),
        heads=heads,
        head_candidates=head_candidates,
        max_new_tokens=max_new_tokens,
        judge=judge,
        progress=log_step,
    )
    print_sensitivity(result, console, str(out) if out else None)


@command()
def mitigate(
    model: ModelOption = None,
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
    passages: PassagesOption = 4,
    calibration_samples: SamplesOption = 16,
    safety_calibration: SafetyCalibrationOption = 0.0,
    max_new_tokens: MaxNewTokensOption = 32,
    judge: JudgeOption = DEFAULT_JUDGE,
    device: DeviceOption = "auto",
    dtype: str = typer.Option("float32", "--dtype", help="Search dtype (bits are counted at 16-bit storage)."),
    ranking: Path = typer.Option(
        None, "--ranking", help="Block order from `compsafe sensitivity --out` (same recipe); skips the block scan."
    ),
    out: OutOption = None,
    store: StoreOption = None,
) -> None:
    """Keep the most safety-sensitive blocks at higher precision until refusals hold; confirm on held-out items."""
    from compsafe.report.views import print_mitigation

    check_counts(prompts=prompts, passages=passages, calibration_samples=calibration_samples)
    check_judge(judge)  # the held-out confirmation is always judged
    setup = api.DiagnosisSetup(model, device, dtype, calibration_samples, safety_calibration, out, store)
    result = api.mitigate(
        recipe,
        setup,
        ranking=ranking,
        max_drop=max_refusal_drop,
        budget_bits=budget_bits,
        keep_mode=keep_mode,
        signal=signal,
        prompt_limit=prompts or None,
        passage_limit=passages,
        max_new_tokens=max_new_tokens,
        judge=judge,
        progress=log_step,
    )
    print_mitigation(result, console, str(out) if out else None)
