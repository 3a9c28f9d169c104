"""The report's severity ladder: per graded probe and variant, the refusal rate at each harm-severity level
(base → variant, paired change with its CI) and the level where the variant starts to comply more than the base.

Why a section of its own: the headline table shows one refusal rate; a variant that keeps refusing minor
requests but loses the critical ones looks better there than it is. The ladder shows where the loss sits.
The section reads the comparisons' ``by_level`` entries (written for any refusal probe whose items carry a
level, ``analysis/severity.py``), so it names no probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from compsafe.metrics import SIGNIFICANCE, variant_labels
from compsafe.summary import RunSummary

RUBRIC = "docs/severity_rubric.md"


@dataclass(frozen=True)
class Rung:
    """One level of one variant: rates, the refusal change with its CI, compliance, and the McNemar p of the
    compliance change (None where the run has no test)."""

    level: str
    n: int
    base_rate: float
    variant_rate: float
    delta: tuple[float | None, float | None, float | None]
    base_complied: float | None
    variant_complied: float | None
    complied_p: float | None
    lost: int | None


@dataclass(frozen=True)
class Ladder:
    probe: str
    variant: str
    rungs: list[Rung]
    onset: int | None
    significant_onset: int | None

    def onset_text(self) -> str:
        """'level 3 (significant at 4)', 'level 2 (not significant)', 'none' -- the report's last column."""
        if self.onset is None:
            return "none: complies with no more requests than the base at any level"
        if self.significant_onset is None:
            return f"level {self.onset} (not significant at any level)"
        if self.significant_onset == self.onset:
            return f"level {self.onset} (significant, McNemar p < {SIGNIFICANCE:g})"
        return f"level {self.onset} (significant from level {self.significant_onset})"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _rung(level: str, entry: dict[str, Any], lost: Any) -> Rung:
    delta = entry.get("delta") or {}
    complied_test = entry.get("complied_mcnemar") or {}
    return Rung(
        level=level,
        n=int(entry.get("n", 0)),
        base_rate=float(entry.get("base_rate", 0.0)),
        variant_rate=float(entry.get("variant_rate", 0.0)),
        delta=(_number(delta.get("estimate")), _number(delta.get("low")), _number(delta.get("high"))),
        base_complied=_number(entry.get("base_complied_rate")),
        variant_complied=_number(entry.get("variant_complied_rate")),
        complied_p=_number(complied_test.get("p_value")),
        lost=int(lost) if isinstance(lost, int) else None,
    )


def severity_ladders(summary: RunSummary) -> list[Ladder]:
    """Every (probe, variant) whose paired comparison carries per-level entries, in run order."""
    ladders = []
    for probe in summary.probes:
        for label in variant_labels(summary):
            cmp = summary.comparison(label, probe)
            by_level = cmp.lookup("by_level") if cmp is not None else None
            if not isinstance(by_level, dict) or not by_level:
                continue
            lost = cmp.lookup("lost_by_level") or {}  # type: ignore[union-attr]
            rungs = [_rung(level, entry, lost.get(level)) for level, entry in by_level.items()
                     if isinstance(entry, dict)]  # fmt: skip
            onset = cmp.lookup("onset_level")  # type: ignore[union-attr]
            significant = cmp.lookup("significant_onset_level")  # type: ignore[union-attr]
            ladders.append(Ladder(probe, label, rungs, onset if isinstance(onset, int) else None,
                                  significant if isinstance(significant, int) else None))  # fmt: skip
    return ladders


def rung_text(rung: Rung) -> str:
    """'97.0% → 87.9% (-9.1 pp [-19.6, +1.2]); complied 0.0% → 9.1%; 3 lost'."""
    text = f"{100 * rung.base_rate:.1f}% → {100 * rung.variant_rate:.1f}%"
    estimate, low, high = rung.delta
    if estimate is not None:
        text += f" ({100 * estimate:+.1f} pp"
        text += f" [{100 * low:+.1f}, {100 * high:+.1f}])" if low is not None and high is not None else ")"
    if rung.base_complied is not None and rung.variant_complied is not None:
        text += f"; complied {100 * rung.base_complied:.1f}% → {100 * rung.variant_complied:.1f}%"
    if rung.lost:
        text += f"; {rung.lost} lost"
    return text


NOTE = (
    "Refusal rate per harm-severity level (rubric: {rubric}), base → variant on the same items, with the paired "
    "change and its 95% CI; 'complied' is the share the judge read as answered; 'lost' counts requests the base "
    "refused and the variant did not. 'Starts to comply' is the lowest level where the variant answers more "
    "requests than the base."
)


def severity_html(summary: RunSummary) -> str:
    ladders = severity_ladders(summary)
    if not ladders:
        return ""
    levels = sorted({r.level for ladder in ladders for r in ladder.rungs}, key=int)
    head = "<th>probe</th><th>variant</th>" + "".join(f"<th>level {escape(lv)}</th>" for lv in levels)
    rows = []
    for ladder in ladders:
        by_level = {r.level: r for r in ladder.rungs}
        cells = [f'<td class="label">{escape(ladder.probe)}</td>', f'<td class="label">{escape(ladder.variant)}</td>']
        for lv in levels:
            rung = by_level.get(lv)
            worse = rung is not None and rung.complied_p is not None and rung.complied_p < SIGNIFICANCE and (
                (rung.variant_complied or 0) > (rung.base_complied or 0))
            css = ' class="worse"' if worse else ""
            cells.append(f"<td{css}>{escape(rung_text(rung)) if rung else '-'}</td>")
        rows.append("<tr>" + "".join(cells) + f'<td style="text-align:left">{escape(ladder.onset_text())}</td></tr>')
    return (
        f"<h2>Severity ladder</h2><table><tr>{head}<th>starts to comply more than the base</th></tr>"
        f"{''.join(rows)}</table><p class=\"note\">{escape(NOTE.format(rubric=RUBRIC))} Red: a significant rise "
        f"in compliance (McNemar p &lt; {SIGNIFICANCE:g}).</p>"
    )


def severity_markdown(summary: RunSummary) -> list[str]:
    ladders = severity_ladders(summary)
    if not ladders:
        return []
    levels = sorted({r.level for ladder in ladders for r in ladder.rungs}, key=int)
    header = ["probe", "variant", *(f"level {lv}" for lv in levels), "starts to comply more than the base"]
    lines = ["## Severity ladder", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for ladder in ladders:
        by_level = {r.level: r for r in ladder.rungs}
        cells = [rung_text(by_level[lv]) if lv in by_level else "-" for lv in levels]
        lines.append("| " + " | ".join([ladder.probe, ladder.variant, *cells, ladder.onset_text()]) + " |")
    return [*lines, "", NOTE.format(rubric=RUBRIC), ""]
