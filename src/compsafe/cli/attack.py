"""`compsafe attack`: search suffixes the base still refuses and a variant answers (differential GCG)."""

from __future__ import annotations

from pathlib import Path

import typer

from compsafe.cli.common import command, console, progress_observer, say
from compsafe.errors import ConfigError


@command()
def attack(
    variant: str = typer.Option(..., "--variant", "-r", help="Variant recipe (e.g. int4-g128) or model folder."),
    model: str = typer.Option(None, "--model", "-m", help="Base model (default: the embedded one)."),
    prompts: Path = typer.Option(None, "--prompts", help="Harmful requests file (.jsonl/.csv/.txt; default shipped)."),
    limit: int = typer.Option(10, "--limit", help="Attack at most N requests (round-robin over categories)."),
    objectives: str = typer.Option(
        "differential,base-only", "--objectives", help="differential, base-only (the classic-GCG baseline) or both."
    ),
    steps: int = typer.Option(6, "--steps", help="GCG steps per request (fewer when the goal is reached)."),
    candidates: int = typer.Option(8, "--candidates", help="Single-token swaps scored exactly per step."),
    topk: int = typer.Option(64, "--topk", help="Swaps per suffix position ranked by the one-hot gradient."),
    suffix_length: int = typer.Option(8, "--suffix-length", help="Suffix tokens appended to the request."),
    seed: int = typer.Option(0, "--seed", help="Seed of the candidate sampling (the search is deterministic)."),
    base_floor: float = typer.Option(1.0, "--base-floor", help="Refusal margin (nats) the base must keep."),
    weight: float = typer.Option(1.0, "--weight", help="Weight of the base-margin penalty below the floor."),
    target: float = typer.Option(0.0, "--target", help="Stop once the attacked margin is below this (nats)."),
    judge: str = typer.Option(None, "--judge", help="Refusal judge (default: the runs' default)."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Tokens generated per judged response."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 keeps search and re-scored margins equal."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for attack.json and the store (default runs/attack)."),
    store: Path = typer.Option(None, "--store", help="SQLite store (default OUT/attack.sqlite); reruns resume."),
) -> None:
    """Differential GCG: per request, a suffix keeping the base's refusal while the variant answers; ASR vs the
    base-only baseline. Replay the suffixes on other variants with `--probes jailbreak:attack:OUT/attack.json`."""
    from compsafe import api_attack
    from compsafe.attack.gcg import SearchConfig
    from compsafe.report.attack import print_attack

    if prompts is not None and not prompts.is_file():
        raise ConfigError(f"--prompts {prompts} is not a file: pass a .jsonl/.csv/.txt of harmful requests")
    search = SearchConfig(steps=steps, candidates=candidates, topk=topk, suffix_length=suffix_length, seed=seed,
                          weight=weight, base_floor=base_floor, target=target)  # fmt: skip
    chosen = tuple(o.strip() for o in objectives.split(",") if o.strip())
    with progress_observer() as observer:
        path, result = api_attack.attack(
            variant, model=model, prompts=str(prompts) if prompts else None, limit=limit, objectives=chosen,
            search=search, judge=judge, max_new_tokens=max_new_tokens, device=device, dtype=dtype, out=out,
            store=store, observer=observer,
        )  # fmt: skip
    print_attack(result, console)
    say(f"wrote {path}")
