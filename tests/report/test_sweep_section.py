"""A run with a sweep (mag-10, mag-30, mag-50) gets a per-group bias plot against the rate: one line per group,
the base at rate 0 for pruning, the numbers in a table; a run without a sweep gets none."""

from __future__ import annotations

import json
import re

import pytest

from compsafe.compress.sweeps import find_sweeps
from compsafe.report.html import render_html
from compsafe.report.markdown import render_markdown
from compsafe.report.sweep_section import group_figures, sweep_section, sweep_table_markdown
from compsafe.summary import parse_summary

RATES = {"base": 0, "mag-10": 10, "mag-30": 30, "mag-50": 50}
GROUPS = {"age": 0.02, "gender": -0.01, "religion": 0.05}  # slope of each group's bias score per 10 points of rate


def bbq_metrics(rate: int) -> dict:
    by_category = {
        group: {"bias_score_ambiguous": round(slope * rate / 10, 4), "bias_score_disambiguated": 0.0, "accuracy": 0.5}
        for group, slope in GROUPS.items()
    }
    return {"bias_score_ambiguous": 0.01, "accuracy": 0.5, "n": 30, "by_category": by_category}


def summary_with(labels: list[str], probes: dict | None = None):
    probes = probes or {"bbq": {"outcome": "bbq", "headline_metric": "bias_score_ambiguous"}}
    return parse_summary({
        "probes": probes,
        "metrics": {label: {"bbq": bbq_metrics(RATES.get(label, 20))} for label in labels},
    })  # fmt: skip


def test_sweeps_are_variants_that_differ_in_one_number():
    sweeps = find_sweeps(["int8", "mag-30", "mag-10", "2:4", "mag-50-global", "wanda-20", "mag-50", "int4-g128"])
    (mag,) = sweeps
    assert mag.family == "mag-{rate}" and mag.labels == ["mag-10", "mag-30", "mag-50"] and mag.base_rate == 0.0
    (bits,) = find_sweeps(["int4-g128", "int8-g128"])
    assert bits.family == "int{rate}-g128" and bits.base_rate is None  # not pruning: the base is not bits 0
    assert find_sweeps(["int8", "int4-g128", "mag-50", "2:4"]) == []


def test_one_line_per_group_against_the_rate():
    summary = summary_with(["base", "mag-10", "mag-30", "mag-50"])
    figures = group_figures(summary)
    metrics = ["by_category.*.bias_score_ambiguous", "by_category.*.bias_score_disambiguated"]
    assert [f.metric for f in figures] == metrics
    ambiguous = figures[0]
    assert ambiguous.rates == (0.0, 10.0, 30.0, 50.0) and ambiguous.labels == ("base", "mag-10", "mag-30", "mag-50")
    assert set(ambiguous.groups) == set(GROUPS)
    assert ambiguous.groups["religion"] == pytest.approx([0.0, 0.05, 0.15, 0.25])
    assert ambiguous.spread() == pytest.approx([0.0, 0.06, 0.18, 0.30])  # the groups fan out as the rate grows

    html = sweep_section(summary)
    first_svg = html[: html.index("</svg>")]
    lines = re.findall(r'id="f\d+-group-line-(\d+)"', first_svg)
    assert len(lines) == len(GROUPS)
    for group in GROUPS:
        assert f">{group}<" in first_svg  # each line's legend entry
    assert "spread (max − min)" in html
    assert "Groups against the compression rate" in render_html(summary)
    table = "\n".join(sweep_table_markdown(summary))
    assert "| religion | +0.000 | +0.050 | +0.150 | +0.250 |" in table
    assert table in render_markdown(summary)


def test_no_plot_without_a_sweep_or_without_groups():
    assert sweep_section(summary_with(["base", "mag-50", "int8"])) == ""
    summary = parse_summary({
        "probes": {"mcqa": {"outcome": "choice", "headline_metric": "accuracy"}},
        "metrics": {label: {"mcqa": {"accuracy": 0.5, "n": 4}} for label in ("base", "mag-10", "mag-30")},
    })  # fmt: skip
    assert sweep_section(summary) == ""


def test_a_range_run_reports_each_group_against_the_rate(tiny_llama_dir, tmp_path):
    from typer.testing import CliRunner

    from compsafe.cli import app

    out = tmp_path / "sweep"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "mag-10..50/40", "--probes", "crows", "--limit", "8",
            "--batch-size", "4", "--device", "cpu", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text(encoding="utf-8")
    section = html[html.index("Groups against the compression rate") :]
    figure = section[: section.index("</svg>")]
    assert 'data-plot="sweep-crows-by_category.*"' in section
    bias_types = json.loads((out / "summary.json").read_text())["metrics"]["base"]["crows"]["by_category"]
    assert len(bias_types) >= 2
    assert len(re.findall(r'id="f\d+-group-line-\d+"', figure)) == len(bias_types)  # one line per bias type
    assert "<th>base</th><th>mag-10</th><th>mag-50</th>" in section
