"""Units from one declaration: every registered metric's change renders in its declared unit, in every view."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from compsafe.gate import evaluate_policy, parse_policy
from compsafe.metrics import dimension_cell, format_change, format_value, unit_of
from compsafe.probes import PROBES
from compsafe.probes.declarations import RATE
from compsafe.report.html import render_html
from compsafe.report.markdown import render_markdown
from compsafe.report.terminal import summary_table
from compsafe.summary import parse_summary

DELTA = -0.0267


def nest(path: str, value) -> dict:
    data = value
    for key in reversed(path.split(".")):
        data = {key: data}
    return data


def merge(a: dict, b: dict) -> dict:
    for key, value in b.items():
        a[key] = merge(a.get(key, {}), value) if isinstance(value, dict) and isinstance(a.get(key), dict) else value
    return a


def one_metric_summary(probe: str, key: str, metric) -> dict:
    """A run where ``probe.key`` moved by DELTA (a ratio interval of 0.9 when the change is a ratio)."""
    interval = (
        {"estimate": 0.9, "low": 0.85, "high": 0.95} if metric.ratio_change
        else {"estimate": DELTA, "low": DELTA - 0.01, "high": DELTA + 0.01}
    )  # fmt: skip
    comparison = merge(nest(metric.change, interval), {"n": 50}) if metric.change else {"n": 50}
    cls = PROBES.get(probe)
    return {
        "probes": {probe: {"outcome": cls.outcome, "headline_metric": cls.headline_metric}},
        "metrics": {"base": {probe: nest(key, 0.5)}, "v": {probe: nest(key, 0.5 + DELTA)}},
        "comparisons": {"v": {"probes": {probe: comparison}}},
    }


@pytest.mark.parametrize("probe", PROBES.names())
def test_every_declared_metric_prints_its_change_in_its_unit(probe: str) -> None:
    for metric in PROBES.get(probe).metrics:
        key = metric.key.replace("*", "x")  # a concrete name for a pattern (by_category.x)
        name = f"{probe}.{key}"
        unit = metric.unit
        assert unit_of(name) is unit
        expected = f"{unit.scale * DELTA:+.{unit.decimals}f} {unit.label}"
        assert format_change(name, DELTA) == expected, name
        if unit is not RATE:
            assert not format_change(name, DELTA).endswith(" pp") and "%" not in format_value(name, 0.5), name
        else:
            assert format_change(name, DELTA) == "-2.7 pp" and format_value(name, 0.5) == "50.0%"
        if metric.change is None or metric.in_comparison:
            continue
        cell = dimension_cell(parse_summary(one_metric_summary(probe, key, metric)), "v", name)
        if metric.ratio_change:
            assert cell.change.startswith("×0.900 [0.850, 0.950]"), (name, cell.change)
        else:
            assert cell.change.startswith(expected), (name, cell.change)
        assert "CI" in cell.evidence and (unit.label in cell.evidence or metric.ratio_change), cell.evidence


def margin_run() -> dict:
    """The issue's example: a refusal-margin change of -2.67 nats (once printed as '-267.2 pp')."""
    return {
        "probes": {"refusal_margin": {"outcome": "margin", "headline_metric": "mean_margin"}},
        "metrics": {"base": {"refusal_margin": {"mean_margin": 1.0}}, "v": {"refusal_margin": {"mean_margin": -1.67}}},
        "comparisons": {"v": {"probes": {"refusal_margin": {
            "n": 40, "delta": {"estimate": -2.67, "low": -3.1, "high": -2.2}, "mcnemar": {"p_value": 0.01}}}}},
    }  # fmt: skip


def test_a_nats_change_prints_as_nats_in_every_view() -> None:
    summary = margin_run()
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(summary_table(summary))
    views = {"terminal": buffer.getvalue(), "markdown": render_markdown(summary), "html": render_html(summary)}
    for name, text in views.items():
        assert "-2.67 nats [-3.10, -2.20]" in text, name
        assert "267" not in text and "-2.67 pp" not in text, name
    rule = {"metric": "refusal_margin.mean_margin", "max_drop": 1.0}
    check = evaluate_policy(parse_summary(summary), parse_policy({"rules": [rule]})).checks[0]
    assert check.status == "fail" and "dropped 2.67 nats from base +1.00 nats" in check.reasons[0]
    assert parse_policy({"rules": [rule]}).rules[0].describe() == "refusal_margin.mean_margin: drop <= 1.00 nats"
