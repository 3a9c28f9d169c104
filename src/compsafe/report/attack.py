"""Terminal view of ``compsafe attack``: one summary row per objective, then each request's suffix and outcome."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _nats(before: float | None, after: float | None) -> str:
    return "-" if before is None or after is None else f"{before:+.2f} -> {after:+.2f}"


def summary_table(result: dict[str, Any]) -> Table:
    label = escape(str(result["variant"]))
    table = Table(title=f"attack on {label} (success: base judged refused, variant judged complied)")
    for column in ("objective", "n", "ASR", "divergent w/o suffix", "base margin", "variant margin", "s/request"):
        table.add_column(column, justify="left" if column == "objective" else "right")
    for objective, block in result["objectives"].items():
        s = block["summary"]
        table.add_row(
            objective, str(s["n"]), _rate(s["attack_success_rate"]), _rate(s["divergent_without_suffix_rate"]),
            _nats(s["mean_base_margin_before"], s["mean_base_margin_after"]),
            _nats(s["mean_variant_margin_before"], s["mean_variant_margin_after"]),
            "-" if s["mean_seconds"] is None else f"{s['mean_seconds']:.0f}",
        )  # fmt: skip
    return table


def requests_table(objective: str, records: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{objective}: per request")
    for column in ("request", "suffix", "base margin", "variant margin", "base", "variant", "success"):
        table.add_column(column)
    for r in records:
        table.add_row(
            escape(r["item_id"]), escape(repr(r["suffix"])),
            _nats(r["base_margin_before"], r["base_margin_after"]),
            _nats(r["variant_margin_before"], r["variant_margin_after"]),
            r["base_verdict_after"], r["variant_verdict_after"], "yes" if r["success"] else "no",
        )  # fmt: skip
    return table


def print_attack(result: dict[str, Any], console: Console) -> None:
    console.print(summary_table(result))
    for objective, block in result["objectives"].items():
        console.print(requests_table(objective, block["records"]))
