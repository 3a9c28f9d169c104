"""The plots of report.html: each a function from a summary to one captioned inline-SVG figure (or nothing).

Safety against capability (with drift ratios), cost against safety (Pareto fronts), per-category refusal
heatmaps and per-layer weight error for every run; calibration, long-context and layer-sensitivity sections
when a run's summary carries such curves. ``plot_sections`` draws them all and turns one broken plot into a
visible note, so a plotting bug never costs the whole report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape
from typing import Any

from compsafe.metrics import (
    CAPABILITY,
    higher_is_better,
    metric_value,
    refusal_probes,
    role_metrics,
    safety_probe,
    variant_labels,
)
from compsafe.report import plots
from compsafe.report.sweep_section import sweep_section
from compsafe.summary import RunSummary

log = logging.getLogger(__name__)


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


def plot_sections(summary: RunSummary) -> list[str]:
    """Every figure of the report's plots part, in page order (a plot that raises becomes a note)."""
    return [
        "<h2>Plots</h2>",
        _safe_plot("safety vs capability", lambda: _safety_capability_plot(summary)),
        _safe_plot("cost vs safety", lambda: _cost_plot(summary)),
        _safe_plot("category heatmap", lambda: _heatmaps(summary)),
        _safe_plot("layer error", lambda: _layer_plot(summary)),
        _safe_plot("reliability", lambda: _reliability_section(summary)),
        _safe_plot("long context", lambda: _length_section(summary)),
        _safe_plot("sensitivity", lambda: _sensitivity_section(summary)),
        _safe_plot("groups against the compression rate", lambda: sweep_section(summary)),
    ]
