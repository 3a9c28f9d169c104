"""The trade-off on one page: each model file's own cost (bits/weight, size, load time, memory, tokens/s)
beside its safety and perplexity changes, for the terminal and report.md.

Only models whose cost was measured appear (``compsafe run --cost``: the base's files, every folder or .gguf
variant, and every recipe variant through the files ``compsafe compress --format auto`` would write for it,
see ``models.cost`` and ``export.recipe_artefact_cost``).
"""

from __future__ import annotations

from typing import Any

from compsafe.metrics import dimension_cell, headline_dimensions, safety_probe, variant_labels
from compsafe.summary import RunSummary, megabytes

HEADER = ["model", "bits/w", "MB", "load s", "peak RSS MB", "model RSS MB", "tok/s"]


def _cost(summary: RunSummary, label: str) -> dict[str, Any] | None:
    model = summary.models.get(label)
    cost = getattr(model, "model_extra", None) or {}
    found = cost.get("cost")
    return found if isinstance(found, dict) else None


def _number(value: Any, spec: str) -> str:
    return "-" if not isinstance(value, int | float) else format(value, spec)


def cost_header(summary: RunSummary) -> list[str]:
    """The columns: the cost figures, then the safety headline and perplexity changes when they ran."""
    return HEADER + [metric for _, metric in _delta_dimensions(summary)]


def _delta_dimensions(summary: RunSummary) -> list[tuple[str, str]]:
    safety = safety_probe(summary)
    return [(probe, metric) for probe, metric in headline_dimensions(summary) if probe in (safety, "perplexity")]


def cost_rows(summary: RunSummary) -> list[list[str]]:
    """One row per model with a measured cost (an unmeasurable one shows its one-line error)."""
    rows = []
    for label in ["base", *variant_labels(summary)]:
        cost = _cost(summary, label)
        if cost is None:
            continue
        compression = summary.compression(label)
        bits = compression.effective_bits_per_weight if compression else None
        if "error" in cost:
            rows.append([label, _number(bits, ".2f"), megabytes(compression), str(cost["error"])[:80], "", "", ""])
        else:
            share = cost.get("peak_rss_mb", 0) - cost.get("baseline_rss_mb", 0) if "peak_rss_mb" in cost else None
            rows.append([label, _number(bits, ".2f"), megabytes(compression), _number(cost.get("load_seconds"), ".2f"),
                         _number(cost.get("peak_rss_mb"), ".0f"), _number(share, ".0f"),
                         _number(cost.get("tokens_per_second"), ".1f")])
        for _, metric in _delta_dimensions(summary):
            cell = dimension_cell(summary, label, metric)
            rows[-1].append(cell.text + (f" ({cell.change})" if cell.change else ""))
    return rows


def cost_markdown(summary: RunSummary) -> str:
    """A markdown section with the table, or "" when no cost was measured."""
    rows = cost_rows(summary)
    if not rows:
        return ""
    header = cost_header(summary)
    lines = ["## What each artefact costs to run", "",
             "Measured in a fresh process per model file (`compsafe run --cost`); model RSS = peak minus the "
             "interpreter's own.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
