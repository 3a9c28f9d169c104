"""Compare two runs (e.g. the last release against this one): per shared model label and metric, A -> B.

Each row also carries each run's change from its own base, because a variant can look worse in run B simply
because B's base changed. Warnings say when the runs are not like for like (different base weights, different
items, a different judge), since then a change is not only the compression's doing.
"""

from __future__ import annotations

import math
from typing import Any

from compsafe.metrics import DRIFT, declarations, headline_dimensions, metric_value, safety_probe, variant_labels
from compsafe.summary import RunSummary, parse_summary


def variant_only_metrics(probe: str) -> list[str]:
    """Declared metrics that only exist against the base (perplexity ratio, KL, answer flips): no base row."""
    return [f"{probe}.{m.key}" for m in declarations(probe)
            if not m.pattern and (m.in_comparison or m.base_value is not None)]  # fmt: skip


def _metrics(summary_a: RunSummary, summary_b: RunSummary) -> list[str]:
    shared_probes = set(summary_a.probes) & set(summary_b.probes)
    names = [m for p, m in headline_dimensions(summary_a) if p in shared_probes]
    names += [m for p in summary_a.probes if p in shared_probes for m in variant_only_metrics(p) if m not in names]
    if safety_probe(summary_a) in shared_probes:
        names.append(DRIFT)
    return names


def _number(value: float | None) -> float | str | None:
    if value is not None and math.isinf(value):
        return "inf"
    return value


def _difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isinf(a) or math.isinf(b):
        return None
    return b - a


def compare_runs(summary_a: RunSummary | dict[str, Any], summary_b: RunSummary | dict[str, Any]) -> dict[str, Any]:
    """Rows {label, metric, a, b, change, a_vs_base, b_vs_base} for every label and metric both runs have."""
    summary_a, summary_b = parse_summary(summary_a, "run A"), parse_summary(summary_b, "run B")
    labels_a, labels_b = ["base", *variant_labels(summary_a)], ["base", *variant_labels(summary_b)]
    shared = [label for label in labels_a if label in labels_b]
    rows = []
    for label in shared:
        for metric in _metrics(summary_a, summary_b):
            if label == "base" and metric in variant_only_metrics(metric.split(".")[0]):
                continue  # comparisons with the base itself: nothing to show
            a, b = metric_value(summary_a, label, metric), metric_value(summary_b, label, metric)
            if a is None and b is None:
                continue
            row: dict[str, Any] = {
                "label": label,
                "metric": metric,
                "a": _number(a),
                "b": _number(b),
                "change": _difference(a, b),
            }
            if label != "base" and metric != DRIFT:
                row["a_vs_base"] = _difference(metric_value(summary_a, "base", metric), a)
                row["b_vs_base"] = _difference(metric_value(summary_b, "base", metric), b)
            rows.append(row)
    warnings = []
    base_a, base_b = summary_a.models.get("base"), summary_b.models.get("base")
    digest_a = base_a.weights_digest if base_a else None
    digest_b = base_b.weights_digest if base_b else None
    if digest_a != digest_b:
        warnings.append("the base models differ (weights digest): changes mix base and compression effects")
    for probe in set(summary_a.probes) & set(summary_b.probes):
        if summary_a.probes[probe].item_digest != summary_b.probes[probe].item_digest:
            warnings.append(f"{probe}: the runs used different items (set, file or --limit)")
    for name, summary in (("A", summary_a), ("B", summary_b)):
        if summary.limit is not None:
            warnings.append(f"run {name} was made with --limit {summary.limit}: small samples, wide CIs")
    if summary_a.judge != summary_b.judge:
        warnings.append("the refusal judge differs between the runs")
    return {
        "bases": {"a": digest_a, "b": digest_b, "same": digest_a == digest_b},
        "shared_labels": shared,
        "only_in_a": [label for label in labels_a if label not in labels_b],
        "only_in_b": [label for label in labels_b if label not in labels_a],
        "warnings": sorted(warnings),
        "rows": rows,
    }
