"""The report's judge section: which judge read the responses, how accurate it is measured to be, how the rates
are counted, and the flipped items a second judge reads differently (the cases a person should read).

Why in every report: each safety number is a judge's reading of a response. A reader deciding whether a model
may ship needs the judge's measured accuracy next to the numbers, and the short list of flips where two judges
disagree, rather than trusting every flip or re-reading all of them.
"""

from __future__ import annotations

from html import escape
from typing import Any

from compsafe.judges.accuracy import accuracy_line
from compsafe.summary import RunSummary, SecondOpinion, parse_summary

RATES_NOTE = (
    "Each response is read as refused, complied or neither (degenerate: empty, looping, an echo of the prompt or "
    "system prompt, not language). Refusal, compliance and degenerate rates are shares of all items and sum to "
    "100%: a model that babbles gets no credit for refusing and is not counted as answering."
)
SHORT = 300


def verdict_breakdown(summary: RunSummary | dict[str, Any], label: str, probe: str) -> dict[str, float] | None:
    """Refused / complied / neither shares of a judged refusal probe (all of all items), None for other probes.

    The refusal rate is read under its probe's own name (``false_refusal_rate`` for over-refusal).
    """
    summary = parse_summary(summary)
    metrics = summary.probe_metrics(label, probe)
    if "complied_rate" not in metrics:
        return None
    info = summary.probes.get(probe)
    headline = info.headline_metric if info is not None else "refusal_rate"
    keys = {"refused": headline if headline.endswith("refusal_rate") else "refusal_rate"}
    keys.update({"complied": "complied_rate", "neither": "degenerate_rate"})
    values = {name: metrics.get(key) for name, key in keys.items()}
    if not all(isinstance(v, int | float) for v in values.values()):
        return None
    return {name: float(v) for name, v in values.items()}  # type: ignore[arg-type]


def _verdict_rows(summary: RunSummary) -> list[tuple[str, str, tuple[float, float, float]]]:
    """(probe, model, (refused, complied, neither) shares) for every judged probe and model, base first."""
    rows = []
    for probe in summary.probes:
        for label in ["base", *summary.probed_labels()]:
            shares = verdict_breakdown(summary, label, probe)
            if shares is not None:
                rows.append((probe, label, (shares["refused"], shares["complied"], shares["neither"])))
    return rows


def verdicts_markdown(summary: RunSummary | dict[str, Any]) -> list[str]:
    """Refused / complied / neither shares per judged probe and model: a broken model's babble is `neither`."""
    rows = [
        f"| {_md_cell(probe)} | {_md_cell(label)} | " + " | ".join(f"{100 * s:.1f}%" for s in shares) + " |"
        for probe, label, shares in _verdict_rows(parse_summary(summary))
    ]
    if not rows:
        return []
    return [
        "### Verdicts (shares of all items)",
        "",
        "| probe | model | refused | complied | neither (degenerate) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _md_cell(text: str) -> str:
    return escape(str(text)).replace("|", "\\|").replace("\n", " ")


def verdicts_html(summary: RunSummary | dict[str, Any]) -> str:
    """The same shares as an HTML table (after the headline)."""
    rows = [
        f'<tr><td class="label">{escape(probe)}</td><td class="label">{escape(label)}</td>'
        + "".join(f"<td>{100 * s:.1f}%</td>" for s in shares) + "</tr>"
        for probe, label, shares in _verdict_rows(parse_summary(summary))
    ]  # fmt: skip
    if not rows:
        return ""
    return (
        "<h2>Verdicts</h2><table><tr><th>probe</th><th>model</th><th>refused</th><th>complied</th>"
        f'<th>neither (degenerate)</th></tr>{"".join(rows)}</table><p class="note">{escape(RATES_NOTE)}</p>'
    )


def judge_facts(summary: RunSummary | dict[str, Any]) -> tuple[str, str, str]:
    """(judge as selected, its version, its measured accuracy line)."""
    summary = parse_summary(summary)
    judge = summary.judge
    spec = str(judge.spec or summary.config.extra("judge") or judge.name or "?")
    version = str(judge.version)
    return spec, version, accuracy_line(spec, version)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


def _second(summary: RunSummary) -> SecondOpinion | None:
    return summary.judge.second_opinion


def _rejudged_note(summary: RunSummary) -> str | None:
    if not summary.rejudged:
        return None
    first = summary.rejudged[0].previous
    judge = f"{first.get('judge')} v{first.get('version')}"
    return f"rejudged without regenerating; the responses were first judged by {judge}"


def judge_markdown(summary: RunSummary | dict[str, Any]) -> list[str]:
    summary = parse_summary(summary)
    spec, version, accuracy = judge_facts(summary)
    lines = ["### Judge", "", f"- judge: `{spec}` v{version}", f"- measured accuracy: {accuracy}"]
    note = _rejudged_note(summary)
    if note:
        lines.append(f"- {note}")
    lines += ["", RATES_NOTE, ""]
    second = _second(summary)
    if second is None:
        lines += ["No flipped item was checked by a second judge.", ""]
        return lines
    disagreements = second.disagreements
    lines.append(
        f"Second judge `{second.judge}` v{second.version} re-read {second.flips_checked} "
        f"flipped item(s) and disagrees on {len(disagreements)}" + (": read these first." if disagreements else ".")
    )
    if disagreements:
        lines += [
            "",
            "| model | probe | item | judge (base → variant) | second judge | prompt |",
            "|---|---|---|---|---|---|",
        ]
        for d in disagreements:
            cells = [d.model, d.probe, d.item_id, " → ".join(d.judge), " → ".join(d.second_judge), _short(d.prompt)]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines.append("")
    return lines


def judge_html(summary: RunSummary | dict[str, Any]) -> str:
    summary = parse_summary(summary)
    spec, version, accuracy = judge_facts(summary)
    facts = f"<p>judge <code>{escape(spec)}</code> v{escape(version)} · measured accuracy: {escape(accuracy)}</p>"
    note = _rejudged_note(summary)
    if note:
        facts += f'<p class="note">{escape(note)}</p>'
    facts += f'<p class="note">{escape(RATES_NOTE)}</p>'
    second = _second(summary)
    if second is None:
        return f"<h2>Judge</h2>{facts}<p class='note'>No flipped item was checked by a second judge.</p>"
    disagreements = second.disagreements
    intro = (
        f"<p>Second judge <code>{escape(str(second.judge))}</code> v{escape(str(second.version))} "
        f"re-read {second.flips_checked} flipped item(s) and disagrees on {len(disagreements)}"
        + (": the cases to read first.</p>" if disagreements else ".</p>")
    )
    blocks = []
    for d in disagreements:
        blocks.append(
            f'<div class="flip"><div class="prompt">{escape(d.prompt)}</div>'
            f'<div class="note">{escape(d.model)} · {escape(d.probe)} · {escape(d.item_id)} · judge '
            f"{escape(' → '.join(d.judge))}, second judge {escape(' → '.join(d.second_judge))}</div>"
            f'<div class="pair"><div><b>base</b><pre>{escape(d.base_response)}</pre></div>'
            f"<div><b>variant</b><pre>{escape(d.variant_response)}</pre></div></div></div>"
        )
    return f"<h2>Judge</h2>{facts}{intro}{''.join(blocks)}"
