"""report.md: the headline table, gate verdict and flips summary as GitHub markdown, for a pull request comment.

Markdown renders inline HTML, so model text is escaped (<, >, &) and table cells lose pipes and newlines.
"""

from __future__ import annotations

from html import escape
from typing import Any

from compsafe.metrics import (
    dimension_cell,
    drift_cell_text,
    flips,
    headline_dimensions,
    limit_note,
    refusal_probes,
    safety_probe,
    variant_labels,
)
from compsafe.report.cost import cost_markdown
from compsafe.report.judge_section import judge_markdown, verdicts_markdown
from compsafe.report.severity_section import severity_markdown
from compsafe.report.standards_section import coverage_for_report, standards_markdown
from compsafe.summary import RunSummary, megabytes, parse_summary

MARKS = {"worse": "🔴 ", "better": "🟢 ", "changed": "🟡 "}
EXAMPLES = 5
PROMPT_CHARS = 120


def _cell(text: Any) -> str:
    return escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _short(text: str, limit: int = PROMPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _headline(summary: RunSummary) -> list[str]:
    dims = headline_dimensions(summary)
    safety = safety_probe(summary)
    header = ["model", "bits/w", "MB", "sparsity", *(metric for _, metric in dims)]
    if safety:
        header += ["refused→answered", "drift ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in ["base", *variant_labels(summary)]:
        compression = summary.compression(label)
        bits = compression.effective_bits_per_weight if compression else None
        sparsity = compression.sparsity if compression else None
        row = [f"**{_cell(label)}**", "-" if bits is None else f"{bits:.2f}", megabytes(compression)]
        row.append("-" if sparsity is None else f"{100 * sparsity:.1f}%")
        for _, metric in dims:
            cell = dimension_cell(summary, label, metric)
            text = MARKS.get(cell.state, "") + cell.text + (f" ({cell.change})" if cell.change else "")
            row.append(_cell(text))
        if safety:
            lost, _ = flips(summary, label, safety)
            row.append("-" if label == "base" else str(len(lost)))
            row.append(_cell(drift_cell_text(summary, label)))
        lines.append("| " + " | ".join(row) + " |")
    for label, reason in summary.broken().items():
        lines.append(f"| **{_cell(label)}** | BROKEN: {_cell(reason)} |" + " |" * (len(header) - 2))
    lines.append("")
    limited = limit_note(summary)
    if limited:
        lines += [f"**Warning: {_cell(limited)}.**", ""]
    lines.append(
        "Changes are variant − base on the same items with paired 95% CIs, in each metric's unit "
        "(pp = percentage points, × = ratio; nats, bits, score as the probe declares). "
        "🔴 significantly worse, 🟢 significantly better, 🟡 significant change (CI excludes no-change or McNemar "
        "p < 0.05); unmarked: not significant. Drift ratio > 1: safety erodes faster than capability."
    )
    return lines


def _definitions(summary: RunSummary) -> list[str]:
    """How probes whose published definitions differ were computed (toxicity's k, the first perplexity token)."""
    notes = [f"`{k}`: {_cell(v.extra('definition'))}" for k, v in summary.probes.items() if v.extra("definition")]
    return ["Definitions: " + "; ".join(notes), ""] if notes else []


def _gate(summary: RunSummary) -> list[str]:
    from compsafe.errors import CompsafeError
    from compsafe.gate import evaluate_policy, policy_for_run

    try:
        result = evaluate_policy(summary, policy_for_run(summary))
    except CompsafeError as exc:
        return ["## Gate", "", f"Not evaluated: {_cell(exc)}"]
    lines = ["## Gate", "", f"Policy `{result.policy.name}`: **{'PASS' if result.passed else 'FAIL'}**", ""]
    for problem in result.problems:
        lines.append(f"- ❌ {_cell(problem)}")
    for check in result.failures:
        lines.append(f"- ❌ `{check.variant}` · {_cell(check.rule.describe())}: {_cell('; '.join(check.reasons))}")
    return lines


def _flips(summary: RunSummary) -> list[str]:
    probes = refusal_probes(summary)
    if not probes:
        return []
    lines = [
        "## Flipped refusal decisions",
        "",
        "| variant | probe | refused by base, answered | answered by base, refused |",
    ]
    lines.append("|---|---|---|---|")
    for label in variant_labels(summary):
        for probe in probes:
            lost, gained = flips(summary, label, probe)
            lines.append(f"| {_cell(label)} | {probe} | {len(lost)} | {len(gained)} |")
    safety = safety_probe(summary)
    for label in variant_labels(summary) if safety in probes else []:
        lost, _ = flips(summary, label, safety)
        if not lost:
            continue
        lines += ["", "<details>", f"<summary>{_cell(label)}: harmful prompts refused by the base and answered "
                  f"({len(lost)})</summary>", ""]  # fmt: skip
        for item in lost[:EXAMPLES]:
            lines.append(f"- `{_cell(item.get('category', ''))}` {_cell(_short(item.get('prompt', '')))}")
        if len(lost) > EXAMPLES:
            lines.append(f"- … and {len(lost) - EXAMPLES} more (both responses in report.html)")
        lines += ["", "</details>"]
    return lines


def _sweeps(summary: RunSummary) -> list[str]:
    """Each group's bias metric along a sweep of the compression rate (the HTML report plots the same numbers)."""
    from compsafe.report.sweep_section import sweep_table_markdown

    tables = sweep_table_markdown(summary)
    return ["## Groups against the compression rate", "", *tables] if tables else []


def render_markdown(summary: RunSummary | dict[str, Any]) -> str:
    summary = parse_summary(summary)
    base = summary.models.get("base")
    judge = summary.judge
    lines = [
        f"# compsafe: {_cell((base.source if base else None) or 'run')}",
        "",
        f"Variants: {', '.join(f'`{v}`' for v in summary.variant_labels()) or 'none'} · judge "
        f"{_cell(judge.name)} v{_cell(judge.version)} · compsafe {_cell(summary.compsafe_version)}",
        "",
        *_headline(summary),
        "",
        *([cost_markdown(summary)] if cost_markdown(summary) else []),
        *_definitions(summary),
        *verdicts_markdown(summary),
        *_gate(summary),
        "",
        *standards_markdown(coverage_for_report(summary), variant_labels(summary)),
        *severity_markdown(summary),
        *_sweeps(summary),
        *_flips(summary),
        "",
        *judge_markdown(summary),
        "Full report with plots and both responses of every flipped prompt: `report.html` in the run folder.",
    ]
    return "\n".join(lines) + "\n"
