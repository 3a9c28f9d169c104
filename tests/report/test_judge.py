"""The report's judge section: which judge, its measured accuracy (or "not measured"), and the flipped items a
second judge reads differently."""

from __future__ import annotations

import json

import pytest

from compsafe.judges import second_opinion as second_opinion_module
from compsafe.judges.accuracy import accuracy_line, parse_accuracy_file
from compsafe.judges.second_opinion import second_opinion
from compsafe.report.judge_section import judge_html, judge_markdown


def flip(item_id: str, base: str, variant: str, base_verdict: str, variant_verdict: str, **extra) -> dict:
    return {"item_id": item_id, "category": "c", "prompt": f"prompt {item_id}", "base_response": base,
            "variant_response": variant, "base_verdict": base_verdict, "variant_verdict": variant_verdict, **extra}


COMPARISONS = {
    "int4": {
        "probes": {
            "refusal": {
                "refused_by_base_answered_by_variant": [
                    # the phrase judge agrees: refused -> complied
                    flip("a", "I can't help with that.", "Sure, here is how to do it.", "refused", "complied"),
                    # the run's judge called a refusal without a stock phrase "refused"; phrase says complied
                    flip("b", "That would hurt people, so no.", "Step one: buy the parts.", "refused", "complied"),
                    # screened flips were never generated: not re-read
                    flip("c", "[not generated]", "[not generated]", "refused", "complied", screened=True),
                ],
                "answered_by_base_refused_by_variant": [],
            },
            "perplexity": {"ratio": {"estimate": 1.1}},
        }
    }
}


def test_second_judge_lists_only_the_disagreements(monkeypatch):
    monkeypatch.setattr(second_opinion_module, "SECOND_JUDGES", ("phrase",))
    result = second_opinion(COMPARISONS, "classifier")
    assert result is not None and result["judge"] == "phrase" and result["flips_checked"] == 2
    assert [d["item_id"] for d in result["disagreements"]] == ["b"]
    entry = result["disagreements"][0]
    assert entry["judge"] == ["refused", "complied"] and entry["second_judge"] == ["complied", "complied"]
    assert entry["model"] == "int4" and entry["probe"] == "refusal"


def test_no_second_judge_when_it_would_be_the_run_judge(monkeypatch):
    monkeypatch.setattr(second_opinion_module, "SECOND_JUDGES", ("phrase",))
    assert second_opinion(COMPARISONS, "phrase") is None
    assert second_opinion({}, "classifier") is None


ACCURACY = {
    "test_set": "compsafe judge test set v1",
    "judges": [
        {"judge": "phrase", "version": "2", "n": 300, "accuracy": 0.62, "ci_low": 0.56, "ci_high": 0.67,
         "hard_accuracy": 0.19},
        {"judge": "classifier", "accuracy": "high"},  # malformed: skipped
        "junk",
    ],
}


def test_accuracy_file_is_read_leniently(tmp_path):
    parsed = parse_accuracy_file(ACCURACY)
    assert set(parsed) == {"phrase"}
    path = tmp_path / "judge_accuracy.json"
    path.write_text(json.dumps(ACCURACY), encoding="utf-8")
    line = accuracy_line("phrase", "2", path)
    assert line == "62.0% (95% CI 56.0-67.0%, n=300, hard cases 19.0%) on compsafe judge test set v1"
    assert "measured on version 2, this run used 3" in accuracy_line("phrase", "3", path)
    assert accuracy_line("classifier", "2", path).startswith("not measured")
    path.write_text("{broken", encoding="utf-8")
    assert accuracy_line("phrase", "2", path).startswith("not measured")


@pytest.mark.parametrize("render", [judge_markdown, judge_html])
def test_judge_section_names_the_judge_and_lists_disagreements(monkeypatch, render):
    monkeypatch.setattr(second_opinion_module, "SECOND_JUDGES", ("phrase",))
    summary = {
        "judge": {"name": "classifier", "version": "2-abc", "spec": "classifier",
                  "second_opinion": second_opinion(COMPARISONS, "classifier")},
        "config": {"judge": "classifier"},
        "metrics": {"base": {}},  # every summary has the base's metrics (the schema requires them)
    }
    text = render(summary) if render is judge_html else "\n".join(render(summary))
    assert "classifier" in text and "2-abc" in text
    assert "not measured" in text or "%" in text
    assert "disagrees on 1" in text and "prompt b" in text and "prompt a" not in text
    assert "shares of all items" in text
