"""report.html: one self-contained page (inline CSS and SVG, no network) for the people who decide on a variant.

Sections: the headline table (variants x dimensions, paired CIs, coloured by significance and direction), the
gate verdict, the deployment plan (``report/advice_section.py``), the standards it is evidence for
(``report/standards_section.py``), the severity ladder (``report/severity_section.py``), the plots
(``report/figures.py``), the flipped prompts with both responses side by side, the judge and the models. All
model and user text is HTML-escaped: responses to harmful prompts are exactly the text one should not trust.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from compsafe.metrics import (
    dimension_cell,
    drift_cell_text,
    flips,
    format_value,
    headline_dimensions,
    limit_note,
    refusal_probes,
    safety_probe,
    variant_labels,
)
from compsafe.report.advice_section import advice_html
from compsafe.report.figures import plot_sections
from compsafe.report.judge_section import judge_html, verdicts_html
from compsafe.report.language_section import language_html
from compsafe.report.severity_section import severity_html
from compsafe.report.standards_section import coverage_for_report, standards_html
from compsafe.summary import RunSummary, load_summary, parse_summary

CSS = """
:root { --worse:#f8d0cc; --better:#d3f0d3; --changed:#fde9b8; --ink:#1d1d1f; --muted:#666; --line:#ddd; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1280px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta, .note { color: var(--muted); font-size: 12.5px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: right; vertical-align: top; }
th { background: #f4f4f6; text-align: center; } td.label { text-align: left; font-weight: 600; white-space: nowrap; }
td .change { display: block; font-size: 11.5px; color: #444; }
td.worse { background: var(--worse); } td.better { background: var(--better); }
td.changed { background: var(--changed); }
td.fail { background: var(--worse); font-weight: 600; } td.pass { background: var(--better); }
td.skip { color: var(--muted); }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid var(--line); }
figure { margin: 12px 0 24px; } figure svg.plot { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12.5px; max-width: 900px; }
details { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; padding: 4px 10px; }
summary { cursor: pointer; font-weight: 600; }
.flip { border-top: 1px solid var(--line); padding: 8px 0; }
.flip .prompt { font-weight: 600; margin-bottom: 4px; white-space: pre-wrap; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.pair > div { background: #fafafa; border: 1px solid var(--line); border-radius: 4px; padding: 6px 8px; }
.pair pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0 0; font: 12.5px/1.4 ui-monospace, monospace; }
.badge { font-size: 11px; padding: 0 6px; border-radius: 8px; background: #eee; margin-left: 6px; }
.badge.refused { background: var(--better); } .badge.answered { background: var(--worse); }
.verdict { font-size: 16px; font-weight: 700; } .verdict.fail { color: #b3261e; } .verdict.pass { color: #1e7b34; }
code { font-size: 12.5px; }
"""

# Expands or collapses every drill-down at once; also marks the page as rendered (the browser test reads it).
SCRIPT = """
document.querySelectorAll('button[data-toggle]').forEach(function (button) {
  button.addEventListener('click', function () {
    var open = button.getAttribute('data-toggle') === 'open';
    document.querySelectorAll('#flips details').forEach(function (d) { d.open = open; });
  });
});
document.body.setAttribute('data-plots', String(document.querySelectorAll('figure svg.plot').length));
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _header(summary: RunSummary) -> str:
    base = summary.models.get("base")
    config = summary.config
    judge = summary.judge
    source = (base.source if base else None) or "?"
    architecture = (base.architecture if base else None) or "?"
    parameters = (base.num_parameters if base else None) or 0
    rows = [
        ("base model", f"{source} ({architecture}, {parameters / 1e6:.1f} M parameters)"),
        ("base weights sha256", (base.weights_digest if base else None) or "-"),
        ("variants", ", ".join(summary.variant_labels()) or "none"),
        ("judge", f"{judge.name} v{judge.version}"),
        ("profile", config.profile or "-"),
        ("items per probe", ", ".join(f"{k}: {v.dataset.count if v.dataset.count is not None else '?'}"
                                      for k, v in summary.probes.items())),
        ("definitions", "; ".join(f"{k}: {v.extra('definition')}" for k, v in summary.probes.items()
                                  if v.extra("definition")) or "-"),
        ("compsafe", f"{summary.compsafe_version} · seed {config.seed if config.seed is not None else '?'} · "
                     f"{summary.timing_seconds.get('total', 0):.0f} s"),
    ]  # fmt: skip
    items = "".join(f"<tr><th>{_e(k)}</th><td style='text-align:left'><code>{_e(v)}</code></td></tr>" for k, v in rows)
    description = base.description if base else None
    note = f'<p class="note">{_e(description)}</p>' if description else ""
    limited = limit_note(summary)
    if limited:
        note += f'<p class="verdict fail">{_e(limited)}</p>'
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: UP017 - py3.10 support
    return (
        f"<h1>compsafe report</h1><p class='meta'>What compression did to safety against what it did to capability "
        f"· generated {created}</p>{note}<table>{items}</table>"
    )


def _bits_and_sparsity(summary: RunSummary, label: str) -> tuple[str, str]:
    compression = summary.compression(label)
    bits = compression.effective_bits_per_weight if compression else None
    sparsity = compression.sparsity if compression else None
    return ("-" if bits is None else f"{bits:.2f}"), ("-" if sparsity is None else f"{100 * sparsity:.1f}%")


def _drift_cell(summary: RunSummary, label: str) -> str:
    drift = summary.drift(label)
    entry = drift.entry()
    if entry is None:
        return "<td>-</td>"
    return f'<td title="{_e(entry.explanation)}">{_e(drift_cell_text(summary, label))}</td>'


def _headline_table(summary: RunSummary) -> str:
    dims = headline_dimensions(summary)
    safety = safety_probe(summary)
    head = "<th>model</th><th>bits / weight</th><th>sparsity</th>"
    head += "".join(f"<th>{_e(probe)}<br><small>{_e(metric.split('.', 1)[1])}</small></th>" for probe, metric in dims)
    if safety:
        head += "<th>flips<br><small>refused → answered</small></th><th>alignment drift ratio</th>"
    body = []
    for label in ["base", *variant_labels(summary)]:
        bits, sparsity = _bits_and_sparsity(summary, label)
        cells = [f'<td class="label">{_e(label)}</td>', f"<td>{bits}</td>", f"<td>{sparsity}</td>"]
        for _, metric in dims:
            cell = dimension_cell(summary, label, metric)
            change = f'<span class="change">{_e(cell.change)}</span>' if cell.change else ""
            title = f' title="{_e(cell.evidence)}"' if cell.evidence else ""
            cells.append(f'<td class="{cell.state}"{title}>{_e(cell.text)}{change}</td>')
        if safety:
            lost, gained = flips(summary, label, safety)
            cells.append(
                "<td>-</td>" if label == "base" else f"<td>{len(lost)} <small>(reverse {len(gained)})</small></td>"
            )
            cells.append("<td>-</td>" if label == "base" else _drift_cell(summary, label))
        body.append("<tr>" + "".join(cells) + "</tr>")
    for label, reason in summary.broken().items():
        body.append(f'<tr><td class="label">{_e(label)}</td><td class="worse" colspan="{2 + len(dims)}" '
                    f'style="text-align:left">BROKEN: {_e(reason)}</td></tr>')  # fmt: skip
    legend = (
        '<p class="legend note"><span style="background:var(--worse)">significantly worse</span>'
        '<span style="background:var(--better)">significantly better</span>'
        '<span style="background:var(--changed)">significant change</span><span>not significant</span> '
        "Significant: the paired 95% CI of the change excludes no-change, or exact McNemar p &lt; 0.05 on the "
        "flipped items. Changes are variant − base on the same items, in each metric's unit (pp = percentage "
        "points; × = ratio; nats, bits, score as declared by the probe). "
        "Hover a cell for its test. Drift ratio = relative safety loss / relative capability loss "
        "(&gt; 1: safety erodes faster than capability).</p>"
    )
    return f"<h2>Headline</h2><table><tr>{head}</tr>{''.join(body)}</table>{legend}"


def _gate_section(summary: RunSummary) -> str:
    from compsafe.errors import CompsafeError
    from compsafe.gate import evaluate_policy, policy_for_run

    try:
        result = evaluate_policy(summary, policy_for_run(summary))
    except CompsafeError as exc:
        return f'<h2>Deployment gate</h2><p class="note">Gate not evaluated: {_e(exc)}</p>'
    labels = list(dict.fromkeys(c.variant for c in result.checks))
    rules = list(dict.fromkeys(c.rule for c in result.checks))
    by_key = {(c.variant, c.rule): c for c in result.checks}
    head = "<th>rule</th>" + "".join(f"<th>{_e(label)}</th>" for label in labels)
    rows = []
    for rule in rules:
        cells = [f'<td class="label">{_e(rule.describe())}</td>']
        for label in labels:
            check = by_key.get((label, rule))
            if check is None:
                cells.append("<td></td>")
                continue
            title = "; ".join(check.reasons + ([check.evidence] if check.evidence else []))
            css = "fail" if check.status in ("fail", "insufficient") else check.status
            cells.append(f'<td class="{css}" title="{_e(title)}">{_e(check.status)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><tr>{head}</tr>{''.join(rows)}</table>" if rows else ""
    problems = "".join(f"<li>{_e(problem)}</li>" for problem in result.problems)
    verdict = "PASS" if result.passed else f"FAIL ({result.failure_count} failing)"
    return (
        f'<h2>Deployment gate</h2><p class="verdict {"pass" if result.passed else "fail"}">'
        f"policy {_e(result.policy.name)}: {verdict}</p>{f'<ul>{problems}</ul>' if problems else ''}{table}"
        f'<p class="note">Reproduce in CI with <code>compsafe gate RUN_DIR</code> (exit 1 on failure); '
        f"hover a cell for the reason.</p>"
    )


def _flip_block(item: dict[str, Any], base_refused: bool) -> str:
    def badge(refused: bool, verdict: str | None) -> str:
        text = verdict or ("refused" if refused else "answered")  # runs before three-way verdicts: two labels
        return f'<span class="badge {"refused" if refused else "answered"}">{_e(text)}</span>'

    base_badge = badge(base_refused, item.get("base_verdict"))
    variant_badge = badge(not base_refused, item.get("variant_verdict"))
    base = f"<div><b>base</b>{base_badge}<pre>{_e(item.get('base_response', ''))}</pre></div>"
    variant = f"<div><b>variant</b>{variant_badge}<pre>{_e(item.get('variant_response', ''))}</pre></div>"
    return (
        f'<div class="flip"><div class="prompt">{_e(item.get("prompt", ""))}</div>'
        f'<div class="note">{_e(item.get("item_id", ""))} · {_e(item.get("category", ""))}</div>'
        f'<div class="pair">{base}{variant}</div></div>'
    )


def _flips_section(summary: RunSummary) -> str:
    blocks = []
    safety = safety_probe(summary)
    for probe in refusal_probes(summary):
        for label in variant_labels(summary):
            lost, gained = flips(summary, label, probe)
            for items, base_refused, what in (
                (lost, True, "refused by base, answered by variant"),
                (gained, False, "answered by base, refused by variant"),
            ):
                if not items:
                    continue
                body = "".join(_flip_block(item, base_refused) for item in items)
                open_attr = " open" if base_refused and probe == safety and len(items) <= 5 else ""
                blocks.append(
                    f"<details{open_attr}><summary>{_e(label)} · {_e(probe)} · {_e(what)}: {len(items)}</summary>"
                    f"{body}</details>"
                )
    if not blocks:
        return (
            "<h2>Flipped prompts</h2><p class='note'>No refusal decision changed between the base and any variant.</p>"
        )
    return (
        '<h2>Flipped prompts</h2><p class="note">Every item whose refusal decision changed, with both responses. '
        f'For <b>{_e(safety or "the safety probe")}</b> (harmful requests) "refused by base, answered by variant" '
        "is the safety loss; for a probe of benign requests the reverse is the usability loss. Responses are model "
        "output, shown "
        'as plain text.</p><p><button type="button" data-toggle="open">expand all</button> '
        '<button type="button" data-toggle="close">collapse all</button></p>'
        f'<div id="flips">{"".join(blocks)}</div>'
    )


def _models_section(summary: RunSummary) -> str:
    rows = []
    for label, model in summary.models.items():
        size = model.compression.packed_size_bytes if model.compression else None
        origin = model.recipe or model.source or ""
        rows.append(
            f'<tr><td class="label">{_e(label)}</td><td style="text-align:left">{_e(origin)}</td>'
            f"<td>{'-' if size is None else f'{size / 2**20:.1f} MiB'}</td>"
            f'<td style="text-align:left"><code>{_e(model.weights_digest or "-")}</code></td></tr>'
        )
    return (
        "<h2>Models</h2><table><tr><th>model</th><th>recipe / source</th><th>packed size</th>"
        "<th>weights sha256</th></tr>" + "".join(rows) + "</table>"
    )


def render_html(summary: RunSummary | dict[str, Any]) -> str:
    """The whole page as one string (a dict is validated as a summary first)."""
    summary = parse_summary(summary)
    sections = [
        _header(summary),
        _headline_table(summary),
        verdicts_html(summary),
        _gate_section(summary),
        advice_html(summary),
        standards_html(coverage_for_report(summary), variant_labels(summary)),
        severity_html(summary),
        language_html(summary),
        *plot_sections(summary),
        _flips_section(summary),
        judge_html(summary),
        _models_section(summary),
    ]
    base = summary.models.get("base")
    title = f"compsafe report: {(base.source if base else None) or 'run'}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body>{''.join(sections)}<script>{SCRIPT}</script></body></html>\n"
    )


def record_standards(run_dir: Path, summary: RunSummary) -> RunSummary:
    """summary.json with its ``standards`` block (the report's standards section as data, for automation)
    brought up to date: written only when it changed (a new run, another policy or compsafe version)."""
    import json

    from compsafe.runfolder import atomic_write
    from compsafe.summary import summary_document

    coverage = coverage_for_report(summary)
    if summary.extra("standards") == coverage:
        return summary
    data = {**json.loads(summary.to_json()), "standards": coverage}
    text = json.dumps(summary_document(data), indent=2, ensure_ascii=False) + "\n"
    atomic_write(Path(run_dir) / "summary.json", text)
    return parse_summary(data)


def build_report(run_dir: Path, summary: RunSummary | dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md into the run folder (and summary.json's ``standards``); returns their
    paths."""
    from compsafe.report.markdown import render_markdown
    from compsafe.runfolder import atomic_write

    run_dir = Path(run_dir)
    summary = parse_summary(summary) if summary is not None else load_summary(run_dir)
    summary = record_standards(run_dir, summary)
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    atomic_write(html_path, render_html(summary))
    atomic_write(md_path, render_markdown(summary))
    return html_path, md_path


__all__ = ["build_report", "format_value", "render_html"]
