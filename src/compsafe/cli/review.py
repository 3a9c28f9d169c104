"""Commands over a finished run or model folder: `report`, `gate`, `manifest`, `verify`, `compare`, `profiles`,
`advise`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from compsafe import api
from compsafe.cli.common import command, console, say


@command()
def report(run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`.")) -> None:
    """Write RUN_DIR/report.html (self-contained, opens offline) and RUN_DIR/report.md (for pull requests)."""
    html_path, md_path = api.report(run_dir)
    say(f"wrote {html_path} and {md_path}")


@command()
def gate(
    run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`."),
    policy: Path = typer.Option(
        None, "--policy", help="Policy YAML (default: the run's profile policy, else the shipped default)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON instead of the summary."),
    allow_insufficient: bool = typer.Option(
        None,
        "--allow-insufficient/--no-allow-insufficient",
        help="Let rules the sample cannot decide pass (default: the policy's allow_insufficient_evidence, false).",
    ),
    artefact: Path = typer.Option(
        None, "--artefact", help="Exported model folder to bind the verdict to: passes only if the run evaluated "
        "exactly these files and that variant passes; writes gate-result.json (and compsafe-integrity.json) into it."
    ),
) -> None:
    """Check a run against a deployment policy: exit 0 pass, 1 fail, 2 error."""
    from compsafe.report.views import print_gate

    if artefact is None:
        result = api.gate(run_dir, policy, allow_insufficient)
        passed = result.passed
    else:
        result, record, written = api.gate_artefact(run_dir, artefact, policy, allow_insufficient)
        passed = record["verdict"] == "pass"
    if as_json:
        payload = result.to_dict() if artefact is None else {**result.to_dict(), "artefact": record}
        typer.echo(json.dumps(payload, indent=2, allow_nan=False))
    else:
        print_gate(result, console)
        if artefact is not None:
            variant = record["artefact"]["variant"] or "no variant of this run"
            why = f" ({'; '.join(record['reasons'])})" if record["reasons"] else ""
            say(f"artefact {artefact}: {record['verdict'].upper()} as {variant}{why}; wrote {written}")
    raise typer.Exit(code=0 if passed else 1)


@command()
def manifest(
    model_dir: Path = typer.Argument(..., help="Model folder to record."),
    out: Path = typer.Option(None, "--out", help="Manifest path (default MODEL_DIR/compsafe-integrity.json)."),
    lineage_recipe: str = typer.Option(None, "--lineage-recipe", help="Recipe that produced the model."),
    lineage_source: str = typer.Option(None, "--lineage-source", help="Model it was compressed from."),
) -> None:
    """Write the SHA-256 of every file in MODEL_DIR (streamed) plus the recipe lineage."""
    path = api.write_manifest(model_dir, out, lineage_recipe=lineage_recipe, lineage_source=lineage_source)
    say(f"wrote {path}")


@command()
def verify(
    model_dir: Path = typer.Argument(..., help="Model folder to check."),
    manifest_path: Path = typer.Option(
        None, "--manifest", help="Manifest from `compsafe manifest` (default MODEL_DIR/compsafe-integrity.json)."
    ),
) -> None:
    """Re-hash MODEL_DIR and compare with its manifest: exit 1 on any changed, missing or extra file."""
    from compsafe.report.views import print_verify

    result = api.verify(model_dir, manifest_path)
    print_verify(result, console, str(model_dir))
    raise typer.Exit(code=0 if result.ok else 1)


@command()
def compare(
    run_a: Path = typer.Argument(..., help="The earlier run folder (e.g. last release)."),
    run_b: Path = typer.Argument(..., help="The later run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Per shared model and metric: the change from run A to run B, and each run's change from its base."""
    from compsafe.report.views import print_compare

    result = api.compare(run_a, run_b)
    if as_json:
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
    else:
        print_compare(result, str(run_a), str(run_b), console)


@command()
def profiles() -> None:
    """List the threat-model profiles for `compsafe run --profile`: probes, variants and gate policy."""
    from compsafe.report.views import print_profiles

    print_profiles(api.list_profiles(), console)


@command()
def advise(
    run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`."),
    profile: str = typer.Option(None, "--profile", help="Follow this profile's policy (default: the run's own)."),
    policy: Path = typer.Option(None, "--policy", help="Follow this policy YAML instead of the run's."),
    allow_insufficient: bool = typer.Option(
        None, "--allow-insufficient/--no-allow-insufficient",
        help="Count variants whose only open rules are undecided on this sample as eligible (as in `gate`).",
    ),
    max_lost: int = typer.Option(
        0, "--max-lost", help="Refusals of the base a variant may lose in a harm category / severity level and "
        "still serve it (default 0)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print advice.json instead of the summary."),
) -> None:
    """A layered deployment plan: per risk tier the most compressed variant within the policy, what stays on
    the uncompressed base, canary checks; writes RUN_DIR/advice.json."""
    from compsafe.report.advice_view import print_advice

    advice, path = api.advise(run_dir, profile=profile, policy=policy, allow_insufficient=allow_insufficient,
                              max_lost=max_lost)  # fmt: skip
    if as_json:
        typer.echo(advice.to_json(), nl=False)
    else:
        print_advice(advice, console, path)
