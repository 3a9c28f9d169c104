"""Rich views for the gate, verify and compare commands (kept out of cli.py so the CLI stays a thin parser).

The gate view must fit one screen: a verdict line, one compact row per variant, then one line per failing
rule saying what was measured, what was allowed and the statistical evidence.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compsafe.gate import FAIL, INSUFFICIENT, PASS, SKIP, GateResult
from compsafe.manifest import VerifyResult
from compsafe.metrics import DRIFT, format_change, format_value


def print_gate(result: GateResult, console: Console) -> None:
    policy = result.policy
    verdict = "[bold green]PASS[/]" if result.passed else f"[bold red]FAIL[/] ({result.failure_count} failing)"
    console.print(f"compsafe gate · policy [bold]{escape(policy.name)}[/] · {len(result.checks)} checks: {verdict}")
    for note in result.notes:
        console.print(f"[bold yellow]! {escape(note)}[/]", highlight=False)
    for problem in result.problems:
        console.print(f"[red]✗[/] {escape(problem)}", highlight=False)
    if result.checks:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("variant", "pass", "fail", "insufficient", "skipped"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        for label in dict.fromkeys(c.variant for c in result.checks):
            mine = [c for c in result.checks if c.variant == label]
            fails = sum(c.status == FAIL for c in mine)
            short = sum(c.status == INSUFFICIENT for c in mine)
            table.add_row(
                escape(label),
                str(sum(c.status == PASS for c in mine)),
                f"[red]{fails}[/]" if fails else "0",
                (f"[yellow]{short}[/]" if result.allow_insufficient else f"[red]{short}[/]") if short else "0",
                str(sum(c.status == SKIP for c in mine)),
            )
        console.print(table)
    for check in [c for c in result.checks if c.status in (FAIL, INSUFFICIENT)]:
        mark = "[yellow]?[/]" if check.status == INSUFFICIENT and result.allow_insufficient else "[red]✗[/]"
        evidence = f"\n    [dim]{escape(check.evidence)}[/]" if check.evidence else ""
        console.print(
            f"{mark} [bold]{escape(check.variant)}[/] · {escape(check.rule.describe())} [{check.status}]\n"
            f"    {escape('; '.join(check.reasons))}{evidence}",
            highlight=False,
        )
    if result.allow_insufficient and any(c.status == INSUFFICIENT for c in result.checks):
        console.print("[dim]insufficient evidence allowed by the policy / --allow-insufficient[/]", highlight=False)
    skipped = sorted({c.rule.metric for c in result.checks if c.status == SKIP})
    if skipped:
        console.print(f"[dim]skipped (probe not run, rule not required): {escape(', '.join(skipped))}[/]",
                      highlight=False)  # fmt: skip


def print_verify(result: VerifyResult, console: Console, model_dir: str) -> None:
    if result.ok:
        message = f"[bold green]OK[/] {escape(model_dir)}: {result.checked} files match the manifest"
        console.print(message, highlight=False)
        return
    console.print(
        f"[bold red]MISMATCH[/] {escape(model_dir)} does not match its manifest: "
        f"{len(result.changed)} changed, {len(result.missing)} missing, {len(result.extra)} extra",
        highlight=False,
    )
    for title, names in (("changed", result.changed), ("missing", result.missing), ("extra", result.extra)):
        for name in names:
            console.print(f"  [red]{title:>7}[/] {escape(name)}", highlight=False)
    console.print("[bold red]Do not deploy these files: they are not the ones that were evaluated.[/]")


def compare_table(result: dict[str, Any], run_a: str, run_b: str) -> Table:
    """One row per model and metric; metric keys are shown without their probe (unique in this version)."""
    table = Table(
        title="compsafe compare: run A → run B",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("model", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for column in ("A", "B", "B − A", "A vs base", "B vs base"):
        table.add_column(column, justify="right", no_wrap=True)
    previous = None
    for row in result["rows"]:
        metric = row["metric"]

        def value(v: Any, metric: str = metric) -> str:
            return format_value(metric, float(v)) if v is not None else "-"

        table.add_row(
            escape(row["label"]) if row["label"] != previous else "",
            "drift ratio" if metric == DRIFT else metric.split(".", 1)[-1],
            value(row["a"]),
            value(row["b"]),
            format_change(metric, row["change"]),
            format_change(metric, row.get("a_vs_base")) if "a_vs_base" in row else "",
            format_change(metric, row.get("b_vs_base")) if "b_vs_base" in row else "",
        )
        previous = row["label"]
    notes = [f"A = {run_a}", f"B = {run_b}"]
    notes += [f"only in A: {', '.join(result['only_in_a'])}"] if result["only_in_a"] else []
    notes += [f"only in B: {', '.join(result['only_in_b'])}"] if result["only_in_b"] else []
    notes += [f"warning: {w}" for w in result["warnings"]]
    table.caption = escape("\n".join(notes))
    return table


def print_compare(result: dict[str, Any], run_a: str, run_b: str, console: Console) -> None:
    # Logs and pipes get a fixed wide table instead of rich's 80-column default (as report/terminal.py does).
    if not console.is_terminal:
        console = Console(file=console.file, width=140, color_system=None)
    console.print(compare_table(result, run_a, run_b))
