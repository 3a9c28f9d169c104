"""The standards mapping: every registered probe and gate-rule kind declares what it is evidence for, the
declarations are checked, and the report's standards section (and summary.json) say per item what was tested
and the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compsafe.gate import evaluate_policy, parse_policy, shipped_policy
from compsafe.metrics import known_metric_names, metric_standards
from compsafe.policy import RULE_STANDARDS, THRESHOLDS, Rule
from compsafe.probes import PROBES
from compsafe.report.html import build_report
from compsafe.report.standards_section import mapping_markdown, standards_coverage
from compsafe.standards import OWASP_LLM_2025, Standards, all_items
from compsafe.summary import parse_summary
from test_gate import make_summary

DOCS = Path(__file__).resolve().parents[1] / "docs" / "decisions.md"


@pytest.mark.parametrize("name", PROBES.names())
def test_every_registered_probe_declares_its_own_mapping(name) -> None:
    probe_cls = PROBES.get(name)
    assert "standards" in vars(probe_cls), f"{name} must declare `standards` itself (compsafe.standards)"
    assert isinstance(probe_cls.standards, Standards) and probe_cls.standards.nist


def test_every_rule_kind_and_every_metric_has_a_mapping() -> None:
    assert set(RULE_STANDARDS) == set(THRESHOLDS)
    assert all(metric_standards(name) is not None for name in known_metric_names())
    rule = Rule(metric="privacy.mean_exposure", max_increase=0.5)
    assert rule.standards().owasp == ("LLM02",)
    assert set(rule.standards().items()) >= {"MEASURE 2.10", "MAP 1.5", "MANAGE 1.1", "MEASURE", "MAP", "MANAGE"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"owasp": ("LLM11",), "nist": ("MEASURE",), "why": "x"}, "unknown OWASP"),
    ({"owasp": ("LLM01",), "nist": ("MEASURE 9.9",), "why": "x"}, "MEASURE 9.9"),
    ({"owasp": (), "nist": ("MEASURING",), "why": "x"}, "MEASURING"),
    ({"owasp": ("LLM01",), "nist": (), "why": "x"}, "at least one NIST"),
    ({"owasp": ("LLM01",), "nist": ("MAP",), "why": " "}, "why"),
])  # fmt: skip
def test_a_mapping_with_an_unknown_item_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Standards(**kwargs)


def by_item(coverage: dict) -> dict:
    return {entry["item"]: entry for entry in coverage["items"]}


def test_coverage_says_per_item_what_was_tested_and_the_result() -> None:
    damaged = parse_summary(make_summary(refusal=(0.50, 0.30), refusal_ci=(-0.28, -0.12), refusal_p=0.001))
    items = by_item(standards_coverage(damaged, evaluate_policy(damaged, shipped_policy("default"))))
    assert [e["item"] for e in items.values()] == all_items() and set(OWASP_LLM_2025) <= set(items)
    llm01 = items["LLM01"]
    assert llm01["probes"] == ["refusal"]
    assert llm01["rules"] == ["refusal.refusal_rate: drop <= 2.0 pp (if significant)"]
    assert llm01["results"] == {"int4-rtn-g128": "fail"}
    assert items["LLM02"] == {**items["LLM02"], "probes": [], "rules": [], "results": {"int4-rtn-g128": "not tested"}}
    assert items["LLM09"]["probes"] == ["mcqa"] and items["LLM09"]["results"] == {"int4-rtn-g128": "pass"}
    assert items["MANAGE 1.1"]["results"] == {"int4-rtn-g128": "fail"}  # every gate rule is a go/no-go decision
    # without a gate, a significant probe change still shows; a harmless variant passes its rules
    assert by_item(standards_coverage(damaged, None))["LLM01"]["results"] == {"int4-rtn-g128": "changed (worse)"}
    # a rule whose probe did not run fails the gate but is no evidence: the item stays "not tested"
    privacy = parse_policy({"rules": [{"metric": "privacy.mean_exposure", "max_increase": 1.0}]})
    gate = evaluate_policy(damaged, privacy)
    assert [c.status for c in gate.checks] == ["fail"]
    assert by_item(standards_coverage(damaged, gate))["LLM02"]["results"] == {"int4-rtn-g128": "not tested"}
    harmless = parse_summary(make_summary())
    rules = parse_policy({"rules": [{"metric": "refusal.refusal_rate", "max_drop": 0.05}]})
    assert by_item(standards_coverage(harmless, evaluate_policy(harmless, rules)))["LLM01"]["results"] == {
        "int4-rtn-g128": "pass"}


def test_the_report_and_summary_json_carry_the_standards_section(tmp_path) -> None:
    damaged = make_summary(refusal=(0.50, 0.30), refusal_ci=(-0.28, -0.12), refusal_p=0.001)
    (tmp_path / "summary.json").write_text(json.dumps(damaged))
    html_path, md_path = build_report(tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert by_item(written["standards"])["LLM01"]["results"] == {"int4-rtn-g128": "fail"}
    assert written["standards"]["policy"] == "default"
    assert "Standards: OWASP LLM Top 10 (2025) and NIST AI RMF" in html_path.read_text()
    markdown = md_path.read_text()
    row = "| LLM01 Prompt Injection | refusal | refusal.refusal_rate: drop &lt;= 2.0 pp (if significant) | fail |"
    assert row in markdown
    before = (tmp_path / "summary.json").stat().st_mtime_ns
    build_report(tmp_path)
    assert (tmp_path / "summary.json").stat().st_mtime_ns == before  # unchanged: not rewritten


def test_the_docs_table_is_the_declared_mapping() -> None:
    assert mapping_markdown() in DOCS.read_text(encoding="utf-8"), "regenerate the table: docs/decisions.md says how"
