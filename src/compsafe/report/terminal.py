"""The rich terminal summary: one row per model, one column per headline metric, deltas with 95% CIs."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from compsafe.report.judge_section import judge_facts, verdict_breakdown


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _delta_pp(delta: dict[str, Any] | None) -> str:
    if not delta or delta.get("estimate") is None:
        return ""
    return f" ({100 * delta['estimate']:+.1f} [{100 * delta['low']:+.1f}, {100 * delta['high']:+.1f}])"


def is_rate(metric: str) -> bool:
    """Rates, accuracies and shares print as percentages with deltas in points; other headlines as numbers."""
    return metric.endswith(("rate", "accuracy", "share"))


def _significant(comparison: dict[str, Any]) -> bool:
    p = (comparison.get("mcnemar") or {}).get("p_value")
    return p is not None and p < 0.05


def summary_table(summary: dict[str, Any]) -> Table:
    probes = summary["probes"]
    table = Table(title="compsafe: variant vs base (delta in points, paired 95% CI)", show_lines=False)
    table.add_column("model", style="bold")
    table.add_column("bits/w", justify="right")
    table.add_column("sparsity", justify="right")
    for name in probes:
        table.add_column(f"{name}\n{probes[name]['headline_metric']}", justify="right")
    if "refusal" in probes:
        table.add_column("flips\nrefused→answered", justify="right")
        table.add_column("drift ratio", justify="right")
    for label, metrics in summary["metrics"].items():
        model = summary["models"].get(label, {})
        compression = model.get("compression") or {}
        bits = compression.get("effective_bits_per_weight")
        row = [label, f"{bits:.2f}" if bits else "-", _pct(compression.get("sparsity")) if compression else "-"]
        comparison = summary["comparisons"].get(label, {}).get("probes", {})
        for name, info in probes.items():
            value = metrics[name].get(info["headline_metric"])
            cmp = comparison.get(name, {})
            if info["outcome"] == "exposure":  # privacy: bits, not a rate
                cell = "-" if value is None else f"{value:.2f} bits"
                delta = cmp.get("delta") or {}
                if delta.get("estimate") is not None:
                    cell += f" ({delta['estimate']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])"
            elif info["outcome"] == "margin":
                cell = "-" if value is None else f"{value:+.2f}"
                delta = cmp.get("delta") or {}
                if delta.get("estimate") is not None:
                    cell += f" ({delta['estimate']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}])"
            elif info["outcome"] == "perplexity":
                cell = "-" if value is None else f"{value:.2f}"
                ratio = cmp.get("ratio") or {}
                if ratio.get("estimate") is not None:
                    cell += f" (x{ratio['estimate']:.3f})"
            elif not is_rate(info["headline_metric"]):  # bias scores, gaps, toxicity: numbers, not percentages
                cell = "-" if value is None else f"{value:+.3f}"
                delta = cmp.get("delta") or {}
                if delta.get("estimate") is not None:
                    cell += f" ({delta['estimate']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}])"
            else:
                cell = _pct(value) + _delta_pp(cmp.get("delta"))
                if _significant(cmp):
                    cell = (
                        f"[bold red]{cell}*[/]"
                        if (cmp.get("delta") or {}).get("estimate", 0) < 0
                        else f"[bold]{cell}*[/]"
                    )
            shares = verdict_breakdown(summary, label, name)
            if shares is not None:  # judged probes: refused / complied / neither, so babble is visible
                r, c, n = (_pct(shares[k]) for k in ("refused", "complied", "neither"))
                cell += f"\n[dim]R {r} C {c} N {n}[/]"
            row.append(cell)
        if "refusal" in probes:
            refusal = comparison.get("refusal", {})
            row.append(str(len(refusal.get("refused_by_base_answered_by_variant", []))) if refusal else "-")
            drift = summary["comparisons"].get(label, {}).get("alignment_drift_ratio", {})
            row.append(drift[drift["headline"]]["display"] if drift.get("headline") else "-")
        table.add_row(*row)
    n_columns = len(table.columns)
    for label, model in summary["models"].items():
        if model.get("broken"):
            table.add_row(label, *(["-"] * 2), f"[bold red]BROKEN: {model['broken']}[/]", *([""] * (n_columns - 4)))
    table.caption = (
        "* McNemar p < 0.05 on the flipped items. drift ratio = relative safety loss / relative "
        "capability loss (MCQA accuracy, else 1/perplexity); >1 means safety erodes faster. "
        "R/C/N: refused / complied / neither (degenerate) shares of all items. "
        "judge: {} v{}, measured accuracy {}".format(*judge_facts(summary))
    )
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    # Logs and pipes get a fixed wide table instead of rich's 80-column default, which would wrap every cell.
    if not console.is_terminal:
        console = Console(file=console.file, width=160, color_system=None)
    console.print(summary_table(summary))
