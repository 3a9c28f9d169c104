"""``compsafe advise`` in the terminal: the plan in one screen, the full detail in advice.json.

Why a summary and not the whole plan: a person reads the decision (which model serves what, what stays on the
base, what to watch); automation reads the JSON. Group routes that agree with the general route are counted,
not listed, so the lines that differ -- the layered part of the deployment -- stand out.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compsafe.advise.schema import BASE, Advice, Route


def _mb(size: int | None) -> str:
    return "-" if not size else f"{size / 1e6:.1f} MB"


def _short(text: str, limit: int = 240) -> str:
    """A table cell kept to a few lines; the full reasons are in advice.json."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _route_line(route: Route) -> str:
    colour = "yellow" if route.fallback else "green"
    return f"  {escape(route.group.describe())} → [{colour}]{escape(route.variant)}[/]: {escape(route.reason)}"


def print_advice(advice: Advice, console: Console, path: Path | None = None) -> None:
    policy = advice.policy
    allowed = " (undecided rules allowed)" if policy.allow_insufficient else ""
    console.print(f"compsafe advise · policy [bold]{escape(policy.name)}[/] ({escape(policy.source)}){allowed} · "
                  f"max lost refusals per group {advice.max_lost_refusals}", highlight=False)  # fmt: skip
    for note in advice.notes:
        console.print(f"[bold yellow]! {escape(note)}[/]", highlight=False)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("model", "bits/w", "size", "gate", "why not eligible"):
        table.add_column(column, justify="left" if column in ("model", "gate", "why not eligible") else "right")
    for v in advice.variants:
        why = "" if v.eligible else "; ".join(v.failing or [f"undecided: {p}" for p in v.pending])
        bits = "-" if v.bits_per_weight is None else f"{v.bits_per_weight:.2f}"
        gate = f"[green]{v.gate}[/]" if v.eligible else f"[red]{v.gate}[/]"
        table.add_row(escape(v.label), bits, _mb(v.packed_size_bytes), gate, escape(_short(why)))
    console.print(table)
    for tier in advice.tiers:
        console.print(f"[bold]{escape(tier.name)}[/] [dim]({escape(tier.description)})[/]", highlight=False)
        general = advice.tiers[0].routes[0].variant
        differing = [r for r in tier.routes if r.variant != general or tier is advice.tiers[0]]
        for route in differing:
            console.print(_route_line(route), highlight=False)
            for evidence in route.evidence[:4]:
                line = f"{evidence.model} {evidence.metric}: {evidence.text}"
                console.print(f"    [dim]{escape(line)}[/]", highlight=False)
        same = len(tier.routes) - len(differing)
        if same:
            console.print(f"  {same} more group(s) → {escape(general)} (no refusal lost there)", highlight=False)
    if advice.fallback:
        groups = ", ".join(r.group.describe() for r in advice.fallback)
        console.print(f"[bold]fallback[/] (uncompressed {BASE}): {escape(groups)}", highlight=False)
    canaries = advice.canaries
    if canaries.rules or canaries.items or canaries.pending:
        console.print(f"[bold]canaries[/]: {len(canaries.rules)} rule threshold(s), {len(canaries.items)} replay "
                      f"item(s), {len(canaries.pending)} undecided rule(s)", highlight=False)  # fmt: skip
        for rule in canaries.rules:
            console.print(f"  {escape(rule.variant)} · {escape(rule.text)}", highlight=False)
        for item in canaries.items:
            console.print(f"  replay {escape(item.item_id)} ({escape(item.probe)}, {escape(item.change)}): expect "
                          f"{escape(item.expect)}", highlight=False)  # fmt: skip
        for pending in canaries.pending:
            items = f"~{pending.items_to_decide} paired items" if pending.items_to_decide else "more items"
            console.print(f"  undecided: {escape(pending.variant)} · {escape(pending.rule)} ({items} would decide it)",
                          highlight=False)  # fmt: skip
    console.print("[bold]rollout[/]", highlight=False)
    for stage in advice.rollout:
        when = f"(proceed when {stage.proceed_when})"
        console.print(f"  {escape(stage.stage)}: {escape(stage.action)} [dim]{escape(when)}[/]", highlight=False)
    if path is not None:
        console.print(f"wrote {escape(str(path))}", highlight=False)
