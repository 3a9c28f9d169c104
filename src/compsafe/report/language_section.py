"""The report's per-language table: refusal and false refusal per language, base → variant, and the change of
each language's gap to English.

Why a section: the headline refusal rate pools every language, so a variant that keeps refusing in English and
stops in Indonesian looks fine there. The section reads the comparisons' ``by_language`` entries (any probe that
writes them, ``analysis/multilingual.py``), so it names no probe.
"""

from __future__ import annotations

from html import escape
from typing import Any

from compsafe.metrics import SIGNIFICANCE, variant_labels
from compsafe.summary import RunSummary

KINDS = (("by_language", "refusal_gap_change_by_language", "refused (harmful)"),
         ("false_refusal_by_language", "false_refusal_gap_change_by_language", "refused (benign)"))  # fmt: skip


def _pp(value: Any) -> str:
    return f"{100 * value:+.1f}" if isinstance(value, int | float) else "?"


def cell_text(entry: dict[str, Any], gap: dict[str, Any] | None) -> tuple[str, bool]:
    """'97.0% → 85.0% (-12.0 pp [-25.0, +0.0], p=0.06); gap to en -5.0 → -15.0 pp (-10.0 [-22.0, +0.0])' and
    whether the change is significant (McNemar p < 0.05)."""
    delta = entry.get("delta") or {}
    p_value = (entry.get("mcnemar") or {}).get("p_value")
    text = (f"{100 * entry.get('base_rate', 0):.1f}% → {100 * entry.get('variant_rate', 0):.1f}% "
            f"({_pp(delta.get('estimate'))} pp [{_pp(delta.get('low'))}, {_pp(delta.get('high'))}]"
            + (f", p={p_value:.2g})" if isinstance(p_value, int | float) else ")"))  # fmt: skip
    if gap:
        change = gap.get("delta") or {}
        text += (f"; gap to en {_pp(gap.get('base_gap'))} → {_pp(gap.get('variant_gap'))} pp "
                 f"({_pp(change.get('estimate'))} [{_pp(change.get('low'))}, {_pp(change.get('high'))}])")  # fmt: skip
    return text, isinstance(p_value, int | float) and p_value < SIGNIFICANCE


def language_html(summary: RunSummary) -> str:
    rows, languages = [], []
    for probe in summary.probes:
        for label in variant_labels(summary):
            cmp = summary.comparison(label, probe)
            for key, gap_key, what in KINDS:
                entries = cmp.lookup(key) if cmp is not None else None
                if not isinstance(entries, dict) or not entries:
                    continue
                gaps = cmp.lookup(gap_key) or {}  # type: ignore[union-attr]
                languages = languages or list(entries)
                cells = [f'<td class="label">{escape(probe)}</td><td class="label">{escape(label)}</td>'
                         f'<td class="label">{escape(what)}</td>']  # fmt: skip
                for lang in languages:
                    entry = entries.get(lang)
                    if not isinstance(entry, dict):
                        cells.append("<td>-</td>")
                        continue
                    text, significant = cell_text(entry, gaps.get(lang))
                    cells.append(f"<td{' class=changed' if significant else ''}>{escape(text)}</td>")
                rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        return ""
    head = "<th>probe</th><th>variant</th><th>rate</th>" + "".join(f"<th>{escape(lang)}</th>" for lang in languages)
    return (
        f"<h2>Languages</h2><table><tr>{head}</tr>{''.join(rows)}</table><p class=\"note\">The same requests in "
        "every language, base → variant with the paired change (95% CI) and McNemar p; the gap is the rate in the "
        "language minus in English on the same requests, before → after compression, with the paired change of "
        f"the gap. Shaded: a significant change (p &lt; {SIGNIFICANCE:g}). The refusal judges are English-only: "
        "the summary's english_response_by_language says how many responses they read in English.</p>"
    )
