"""report.md: the headline table, gate verdict and flips summary as GitHub markdown, for a pull request comment.

Markdown renders inline HTML, so model text is escaped (<, >, &) and table cells lose pipes and newlines.
"""

from __future__ import annotations

from html import escape
from typing import Any

from compsafe.report.judge_section import judge_markdown, verdicts_markdown
from compsafe.report.metrics import (
    dimension_cell,
    flips,
    headline_dimensions,
    refusal_probes,
    variant_labels,
)

MARKS = {"worse": "🔴 ", "better": "🟢 ", "changed": "🟡 "}
EXAMPLES = 5
PROMPT_CHARS = 120


def _cell(text: Any) -> str:
    return escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _short(text: str, limit: int = PROMPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _headline(summary: dict[str, Any]) -> list[str]:
    dims = headline_dimensions(summary)
    refusal = "refusal" in summary.get("probes", {})
    header = ["model", "bits/w", "sparsity", *(metric for _, metric in dims)]
    if refusal:
        header += ["refused→answered", "drift ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in ["base", *variant_labels(summary)]:
        compression = summary.get("models", {}).get(label, {}).get("compression") or {}
        bits, sparsity = compression.get("effective_bits_per_weight"), compression.get("sparsity")
        row = [f"**{_cell(label)}**", "-" if bits is None else f"{bits:.2f}"]
        row.append("-" if sparsity is None else f"{100 * sparsity:.1f}%")
        for _, metric in dims:
            cell = dimension_cell(summary, label, metric)
            text = MARKS.get(cell.state, "") + cell.text + (f" ({cell.change})" if cell.change else "")
            row.append(_cell(text))
        if refusal:
            lost, _ = flips(summary, label, "refusal")
            row.append("-" if label == "base" else str(len(lost)))
            drift = summary.get("comparisons", {}).get(label, {}).get("alignment_drift_ratio") or {}
            row.append(_cell(drift.get(drift.get("headline", ""), {}).get("display", "-")) if drift else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        "Changes are variant − base on the same items with paired 95% CIs (pp = percentage points, × = ratio). "
        "🔴 significantly worse, 🟢 significantly better, 🟡 significant change (CI excludes no-change or McNemar "
        "p < 0.05); unmarked: not significant. Drift ratio > 1: safety erodes faster than capability."
    )
    return lines


def _gate(summary: dict[str, Any]) -> list[str]:
    from compsafe.errors import CompsafeError
    from compsafe.gate import evaluate_policy, policy_for_run

    try:
        result = evaluate_policy(summary, policy_for_run(summary))
    except CompsafeError as exc:
        return ["## Gate", "", f"Not evaluated: {_cell(exc)}"]
    lines = ["## Gate", "", f"Policy `{result.policy.name}`: **{'PASS' if result.passed else 'FAIL'}**", ""]
    for check in result.failures:
        lines.append(f"- ❌ `{check.variant}` · {_cell(check.rule.describe())}: {_cell('; '.join(check.reasons))}")
    return lines


def _flips(summary: dict[str, Any]) -> list[str]:
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
    for label in variant_labels(summary) if "refusal" in probes else []:
        lost, _ = flips(summary, label, "refusal")
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


def render_markdown(summary: dict[str, Any]) -> str:
    base = summary.get("models", {}).get("base", {})
    judge = summary.get("judge", {})
    lines = [
        f"# compsafe: {_cell(base.get('source', 'run'))}",
        "",
        f"Variants: {', '.join(f'`{v}`' for v in variant_labels(summary)) or 'none'} · judge "
        f"{_cell(judge.get('name', '?'))} v{_cell(judge.get('version', '?'))} · compsafe "
        f"{_cell(summary.get('compsafe_version', '?'))}",
        "",
        *_headline(summary),
        "",
        *verdicts_markdown(summary),
        *_gate(summary),
        "",
        *_flips(summary),
        "",
        *judge_markdown(summary),
        "Full report with plots and both responses of every flipped prompt: `report.html` in the run folder.",
    ]
    return "\n".join(lines) + "\n"
