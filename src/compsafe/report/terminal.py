"""The rich terminal summary: one row per model, one column per headline metric, changes with 95% CIs.

Cells come from ``compsafe.metrics.dimension_cell``, the same as report.html/report.md, so every value and
change prints in the unit its probe declares (pp for rates, nats, bits, × for ratios, score).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compsafe.metrics import (
    dimension_cell,
    drift_cell_text,
    flips,
    headline_dimensions,
    limit_note,
    safety_probe,
    variant_labels,
)
from compsafe.report.cost import cost_header, cost_rows
from compsafe.report.judge_section import judge_facts, verdict_breakdown
from compsafe.summary import RunSummary, megabytes, parse_summary

STYLES = {"worse": "bold red", "better": "bold green", "changed": "bold"}


def _cell(summary: RunSummary, label: str, metric: str) -> str:
    cell = dimension_cell(summary, label, metric)
    text = escape(cell.text + (f" ({cell.change})" if cell.change else ""))
    style = STYLES.get(cell.state)
    return f"[{style}]{text}*[/]" if style else text


def _verdicts(summary: RunSummary, label: str, probe: str) -> str:
    """Judged probes: refused / complied / neither shares under the cell, so a broken model's babble is visible."""
    shares = verdict_breakdown(summary, label, probe)
    if shares is None:
        return ""
    r, c, n = (f"{100 * shares[k]:.1f}%" for k in ("refused", "complied", "neither"))
    return f"\n[dim]R {r} C {c} N {n}[/]"


def summary_table(summary: RunSummary | dict[str, Any]) -> Table:
    summary = parse_summary(summary)
    dims = headline_dimensions(summary)
    safety = safety_probe(summary)
    table = Table(title="compsafe: variant vs base (change in the metric's unit, paired 95% CI)", show_lines=False)
    table.add_column("model", style="bold")
    table.add_column("bits/w", justify="right")
    table.add_column("MB", justify="right")
    table.add_column("sparsity", justify="right")
    for probe, metric in dims:
        table.add_column(f"{probe}\n{metric.split('.', 1)[1]}", justify="right")
    if safety:
        table.add_column("flips\nrefused→answered", justify="right")
        table.add_column("drift ratio", justify="right")
    for label in ["base", *variant_labels(summary)]:
        compression = summary.compression(label)
        bits = compression.effective_bits_per_weight if compression else None
        sparsity = compression.sparsity if compression else None
        row = [escape(label), f"{bits:.2f}" if bits else "-", megabytes(compression)]
        row.append("-" if sparsity is None else f"{100 * sparsity:.1f}%")
        row += [_cell(summary, label, metric) + _verdicts(summary, label, probe) for probe, metric in dims]
        if safety:
            lost, _ = flips(summary, label, safety)
            row.append("-" if label == "base" else str(len(lost)))
            row.append(escape(drift_cell_text(summary, label)))
        table.add_row(*row)
    n_columns = len(table.columns)
    for label, reason in summary.broken().items():
        table.add_row(escape(label), "-", "-", "-", f"[bold red]BROKEN: {escape(reason)}[/]", *([""] * (n_columns - 5)))
    caption = (
        "* significant (paired 95% CI excludes no-change or McNemar p < 0.05); red worse, green better. "
        "drift ratio = relative safety loss / relative capability loss; >1 means safety erodes faster. "
        "R/C/N: refused / complied / neither (degenerate) shares of all items. "
        + escape("judge: {} v{}, measured accuracy {}".format(*judge_facts(summary)))
    )
    limited = limit_note(summary)
    table.caption = caption + (f"\n[bold yellow]{escape(limited)}[/]" if limited else "")
    return table


def print_summary(summary: RunSummary | dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    # Logs and pipes get a fixed wide table instead of rich's 80-column default, which would wrap every cell.
    if not console.is_terminal:
        console = Console(file=console.file, width=160, color_system=None)
    console.print(summary_table(summary))
    parsed = parse_summary(summary)
    rows = cost_rows(parsed)
    if rows:
        table = Table(title="what each model file costs to run (fresh process each; compsafe run --cost)")
        for column in cost_header(parsed):
            table.add_column(escape(column), justify="left" if column == "model" else "right")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
