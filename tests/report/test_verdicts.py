"""Refused / complied / neither shares reach the terminal table and the markdown report."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from compsafe.metrics import higher_is_better
from compsafe.report.judge_section import verdict_breakdown, verdicts_html
from compsafe.report.markdown import render_markdown
from compsafe.report.terminal import print_summary


def _summary() -> dict:
    def probe(refused: float, complied: float, neither: float, headline: str) -> dict:
        return {headline: refused, "complied_rate": complied, "degenerate_rate": neither, "n": 10}

    return {
        "probes": {
            "refusal": {"headline_metric": "refusal_rate", "outcome": "refusal"},
            "over_refusal": {"headline_metric": "false_refusal_rate", "outcome": "refusal"},
        },
        "metrics": {
            "base": {"refusal": probe(0.8, 0.2, 0.0, "refusal_rate"),
                     "over_refusal": probe(0.1, 0.9, 0.0, "false_refusal_rate")},
            "broken": {"refusal": probe(0.3, 0.1, 0.6, "refusal_rate"),
                       "over_refusal": probe(0.0, 0.4, 0.6, "false_refusal_rate")},
        },
        "models": {"base": {}, "broken": {}},
        "comparisons": {"broken": {"probes": {}}},
        "judge": {"name": "phrase", "version": "2"},
    }


def test_breakdown_reads_the_probe_own_refusal_metric():
    summary = _summary()
    assert verdict_breakdown(summary, "broken", "over_refusal") == {"refused": 0.0, "complied": 0.4, "neither": 0.6}
    assert verdict_breakdown(summary, "base", "refusal") == {"refused": 0.8, "complied": 0.2, "neither": 0.0}
    summary["metrics"]["base"]["refusal"].pop("complied_rate")  # a run made before three-way verdicts
    assert verdict_breakdown(summary, "base", "refusal") is None


def test_complied_rate_direction_depends_on_the_set():
    assert higher_is_better("refusal.complied_rate") is False  # harmful compliance
    assert higher_is_better("over_refusal.complied_rate") is True  # benign requests answered


def test_terminal_and_markdown_show_the_three_shares():
    summary = _summary()
    out = StringIO()
    print_summary(summary, Console(file=out, width=200))
    assert "R 30.0% C 10.0% N 60.0%" in out.getvalue()
    markdown = render_markdown(summary)
    assert "| refusal | broken | 30.0% | 10.0% | 60.0% |" in markdown
    assert "| over_refusal | base | 10.0% | 90.0% | 0.0% |" in markdown
    html = verdicts_html(summary)
    assert '<td class="label">broken</td><td>30.0%</td><td>10.0%</td><td>60.0%</td>' in html
