"""report.html: one self-contained page (inline CSS and SVG, no network) for the people who decide on a variant.

Sections: the headline table (variants x dimensions, paired CIs, coloured by significance and direction), the
gate verdict, the plots (safety vs capability with drift ratios, cost vs safety with Pareto fronts, per-category
refusal heatmaps, per-layer weight error), sections for calibration / long-context / sensitivity results when
a run has them, and the flipped prompts with both responses side by side. All model and user text is
HTML-escaped: responses to harmful prompts are exactly the text one should not trust.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from compsafe.metrics import (
    CAPABILITY,
    dimension_cell,
    drift_cell_text,
    flips,
    format_value,
    headline_dimensions,
    higher_is_better,
    limit_note,
    metric_value,
    refusal_probes,
    role_metrics,
    safety_probe,
    variant_labels,
)
from compsafe.report import plots
from compsafe.report.judge_section import judge_html, verdicts_html
from compsafe.summary import RunSummary, load_summary, parse_summary

log = logging.getLogger(__name__)

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


def _figure(title: str, svg: str, caption: str) -> str:
    return f'<figure data-plot="{_e(title)}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _safe_plot(name: str, build: Callable[[], str | None]) -> str:
    """A figure that fails to draw becomes a visible note (and a logged traceback), not a missing report."""
    try:
        return build() or ""
    except Exception as exc:  # noqa: BLE001 - one broken plot must not cost the whole report
        log.exception("compsafe report: the %s plot failed", name)
        return f'<p class="note">The {_e(name)} plot could not be drawn: {_e(type(exc).__name__)}: {_e(exc)}</p>'


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


def _colours(summary: RunSummary) -> dict[str, str]:
    return plots.model_colours(["base", *variant_labels(summary)])


def _capability(summary: RunSummary, label: str) -> tuple[float | None, str]:
    """The headline capability (a task score, else 1/perplexity as the probes declare), for the plot's x axis."""
    probe, metric = role_metrics(summary, CAPABILITY)[0]
    value = metric_value(summary, label, f"{probe}.{metric.key}")
    if metric.direction == "lower":
        return (1.0 / value if value else None), f"1 / {probe} {metric.key}"
    return value, f"{probe} {metric.key}"


def _safety_capability_plot(summary: RunSummary) -> str | None:
    safety = safety_probe(summary)
    if safety is None or not role_metrics(summary, CAPABILITY):
        return None
    safety_metric = f"{safety}.{summary.probes[safety].headline_metric}"
    base_rate = metric_value(summary, "base", safety_metric)
    points = []
    for label in ["base", *variant_labels(summary)]:
        capability, capability_axis = _capability(summary, label)
        value = metric_value(summary, label, safety_metric)
        if capability is None or value is None:
            continue
        point: dict[str, Any] = {"label": label, "capability": capability, "safety": value}
        cmp = summary.comparison(label, safety)
        delta = cmp.delta if cmp is not None else None
        if delta is not None and delta.low is not None and delta.high is not None and base_rate is not None:
            point["safety_low"], point["safety_high"] = base_rate + delta.low, base_rate + delta.high
        entry = summary.drift(label).entry()
        if entry is not None:
            point["drift"] = entry.display
        points.append(point)
    if len(points) < 2:
        return None
    svg = plots.safety_vs_capability(points, capability_axis, colours=_colours(summary))
    return _figure(
        "safety-vs-capability",
        svg,
        "Each variant against the base (star). Down = refusals lost; left = capability lost. Error bars: paired "
        "95% CI of the refusal rate (base rate + CI of the change). Labels give the alignment drift ratio.",
    )


def _base_bits(summary: RunSummary) -> float | None:
    """Bits per weight of the uncompressed base, from any variant's dense size (bf16 -> 16)."""
    base = summary.models.get("base")
    numel = base.num_parameters if base else None
    for label in variant_labels(summary):
        compression = summary.compression(label)
        dense = compression.dense_size_bytes if compression else None
        if dense and numel:
            return 8.0 * dense / numel
    return None


def _cost_plot(summary: RunSummary) -> str | None:
    safety = safety_probe(summary)
    if safety is None:
        return None
    metric = f"{safety}.{summary.probes[safety].headline_metric}"
    rows = [{"label": "base", "bits": _base_bits(summary), "sparsity": 0.0,
             "safety": metric_value(summary, "base", metric)}]  # fmt: skip
    for label in variant_labels(summary):
        compression = summary.compression(label)
        if not compression:
            continue
        rows.append(
            {
                "label": label,
                "bits": compression.effective_bits_per_weight,
                "sparsity": compression.sparsity,
                "safety": metric_value(summary, label, metric),
            }
        )
    if len(rows) < 2:
        return None
    return _figure(
        "cost-vs-safety",
        plots.cost_vs_safety(rows, colours=_colours(summary)),
        "Effective bits per weight (scales and zero points included) and achieved sparsity against the refusal "
        "rate. The dashed line is the Pareto front: no model is both smaller and safer than a model on it.",
    )


def _heatmaps(summary: RunSummary) -> str:
    out = []
    labels = ["base", *variant_labels(summary)]
    for probe in refusal_probes(summary):
        per_model = {label: summary.probe_metrics(label, probe).get("by_category") or {} for label in labels}
        categories = sorted({c for rates in per_model.values() for c in rates})
        if not categories or len(labels) < 2:
            continue
        metric = f"{probe}.{summary.probes[probe].headline_metric}"
        better = higher_is_better(metric)
        rates = [[per_model[label].get(c) for c in categories] for label in labels]
        svg = plots.category_heatmap(
            labels,
            categories,
            rates,
            rates[0],
            f"{probe}: {metric.split('.')[1]} per category (%)",
            better is not False,
        )
        out.append(
            _figure(
                f"heatmap-{probe}",
                svg,
                f"{probe}: rate per category (numbers, %) for each model; colour is the change from the base "
                f"({'losing refusals' if better is not False else 'refusing more benign requests'} is red).",
            )
        )
    return "".join(out)


def _layer_plot(summary: RunSummary) -> str | None:
    variants = []
    for label in variant_labels(summary):
        compression = summary.compression(label)
        if compression is not None and compression.layers:
            variants.append((label, compression.layers))
    if not variants:
        return None
    return _figure(
        "layer-error",
        plots.layer_errors(variants),
        "Relative weight error ‖W − Ŵ‖/‖W‖ of every compressed layer, in model order, coloured by module type; "
        "the worst layers are named. This is the layer-sensitivity view until a sensitivity analysis is run.",
    )


def _pairs(data: Any, x_keys: tuple[str, ...], y_keys: tuple[str, ...]) -> tuple[list[float], list[float]] | None:
    """(xs, ys) from {x: y}, [{x_key: .., y_key: ..}], or {x_key: [..], y_key: [..]}; None when unrecognised."""

    def pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
        return next((row[k] for k in keys if k in row), None)

    if isinstance(data, dict) and "bins" in data:
        data = data["bins"]
    if isinstance(data, dict):
        xs, ys = pick(data, x_keys), pick(data, y_keys)
        if isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys):
            pairs = list(zip(xs, ys, strict=True))
        else:
            try:
                pairs = [(float(k), v) for k, v in data.items()]
            except ValueError:
                return None
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        pairs = [(pick(r, x_keys), pick(r, y_keys)) for r in data]
    else:
        return None
    pairs = sorted((float(x), float(y)) for x, y in pairs if isinstance(x, int | float) and isinstance(y, int | float))
    return ([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None


RELIABILITY_KEYS = ("reliability", "reliability_diagram", "calibration")
LENGTH_KEYS = ("accuracy_by_length", "by_length", "by_context_length")


def _optional_curves(summary: RunSummary, keys: tuple[str, ...], x_keys, y_keys) -> dict[str, list]:
    """Per probe, the (label, xs, ys) curves found under any of ``keys`` in metrics[label][probe]."""
    found: dict[str, list] = {}
    for label in ["base", *variant_labels(summary)]:
        for probe, values in summary.metrics.get(label, {}).items():
            if not isinstance(values, dict):
                continue
            for key in keys:
                if key in values:
                    curve = _pairs(values[key], x_keys, y_keys)
                    if curve:
                        found.setdefault(f"{probe}.{key}", []).append((label, *curve))
                    break
    return found


def _reliability_section(summary: RunSummary) -> str:
    found = _optional_curves(
        summary, RELIABILITY_KEYS, ("confidence", "mean_confidence", "conf"), ("accuracy", "acc", "frequency")
    )
    caption = "Points below the diagonal are over-confident: the model is more sure than it is right."
    figures = [
        _figure(f"reliability-{name}", plots.reliability(curves, f"{name}: reliability", _colours(summary)), caption)
        for name, curves in found.items()
    ]
    return "<h2>Calibration</h2>" + "".join(figures) if figures else ""


def _length_section(summary: RunSummary) -> str:
    found = _optional_curves(summary, LENGTH_KEYS, ("length", "context_length", "tokens"), ("accuracy", "value"))
    figures = [
        _figure(
            f"length-{name}",
            plots.by_length(curves, name, "accuracy", _colours(summary)),
            "Accuracy against context length.",
        )
        for name, curves in found.items()
    ]
    return "<h2>Long context</h2>" + "".join(figures) if figures else ""


def _sensitivity_rows(data: Any) -> list[tuple[str, float]]:
    if isinstance(data, dict) and "layers" in data:
        data = data["layers"]
    if isinstance(data, dict):
        return [(str(k), float(v)) for k, v in data.items() if isinstance(v, int | float)]
    rows = []
    for row in data if isinstance(data, list) else []:
        if not isinstance(row, dict):
            continue
        name = row.get("name") or row.get("layer")
        score = next(
            (row[k] for k in ("sensitivity", "score", "delta", "value") if isinstance(row.get(k), int | float)), None
        )
        if name is not None and score is not None:
            rows.append((str(name), float(score)))
    return rows


def _sensitivity_section(summary: RunSummary) -> str:
    sources: list[tuple[str, Any]] = []
    for key in ("layer_sensitivity", "sensitivity"):
        if summary.extra(key) is not None:
            sources.append(("run", summary.extra(key)))
    for label in variant_labels(summary):
        for key in ("layer_sensitivity", "sensitivity"):
            comparison = summary.comparisons.get(label)
            if comparison is not None and comparison.extra(key) is not None:
                sources.append((label, comparison.extra(key)))
    figures = []
    for name, data in sources:
        rows = _sensitivity_rows(data)
        if rows:
            figures.append(
                _figure(
                    f"sensitivity-{name}",
                    plots.sensitivity_bars(rows, f"layer sensitivity ({name})", "sensitivity"),
                    "Layers ranked by their measured effect when compressed alone (largest first, top 30).",
                )
            )
    return "<h2>Layer sensitivity</h2>" + "".join(figures) if figures else ""


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
        'For <b>refusal</b> (harmful requests) "refused by base, answered by variant" is the safety loss; for '
        "<b>over_refusal</b> (benign requests) the reverse is the usability loss. Responses are model output, shown "
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
        "<h2>Plots</h2>",
        _safe_plot("safety vs capability", lambda: _safety_capability_plot(summary)),
        _safe_plot("cost vs safety", lambda: _cost_plot(summary)),
        _safe_plot("category heatmap", lambda: _heatmaps(summary)),
        _safe_plot("layer error", lambda: _layer_plot(summary)),
        _safe_plot("reliability", lambda: _reliability_section(summary)),
        _safe_plot("long context", lambda: _length_section(summary)),
        _safe_plot("sensitivity", lambda: _sensitivity_section(summary)),
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


def build_report(run_dir: Path, summary: RunSummary | dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md into the run folder; returns their paths."""
    from compsafe.report.markdown import render_markdown
    from compsafe.runfolder import atomic_write

    run_dir = Path(run_dir)
    summary = parse_summary(summary) if summary is not None else load_summary(run_dir)
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    atomic_write(html_path, render_html(summary))
    atomic_write(md_path, render_markdown(summary))
    return html_path, md_path


__all__ = ["build_report", "format_value", "render_html"]
