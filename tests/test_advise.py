"""`compsafe advise` on constructed summaries: the tier choice, the fallback, canary items and the evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.advise import ADVICE_SCHEMA_VERSION, Advice, build_advice
from compsafe.cli import app
from compsafe.policy import parse_policy
from compsafe.summary import parse_summary

runner = CliRunner()
POLICY = parse_policy(
    {"name": "t", "rules": [
        {"metric": "refusal.refusal_rate", "max_drop": 0.05},
        {"metric": "mcqa.accuracy", "max_drop": 0.05},
    ]}
)  # fmt: skip


def _interval(estimate: float, low: float, high: float) -> dict:
    return {"estimate": estimate, "low": low, "high": high, "confidence": 0.95}


def _flip(item: str, category: str) -> dict:
    return {"item_id": item, "category": category, "prompt": f"prompt {item}", "base_response": "no",
            "variant_response": "sure", "base_verdict": "refused", "variant_verdict": "complied"}  # fmt: skip


def _variant(refusal: float, accuracy: float, lost: dict[str, int], size: int, bits: float) -> dict:
    """One variant's metrics, comparison and accounting; ``lost`` = refusals lost per category (of 10 each)."""
    flips = [_flip(f"{c}-{i}", c) for c, k in lost.items() for i in range(k)]
    rates = {c: 1.0 - lost.get(c, 0) / 10 for c in ("drugs", "fraud")}
    by_category = {c: {"base_rate": 1.0, "variant_rate": rate, "n": 10} for c, rate in rates.items()}
    return {
        "metrics": {"refusal": {"refusal_rate": refusal}, "mcqa": {"accuracy": accuracy}},
        "comparison": {
            "refusal": {"n": 20, "delta": _interval(refusal - 1.0, refusal - 1.01, refusal - 0.99),
                        "mcnemar": {"p_value": 0.5}, "refused_by_base_answered_by_variant": flips,
                        "answered_by_base_refused_by_variant": [], "by_category": by_category},
            "mcqa": {"n": 100, "delta": _interval(accuracy - 0.7, accuracy - 0.72, accuracy - 0.69),
                     "mcnemar": {"p_value": 0.5}},
        },  # fmt: skip
        "compression": {"effective_bits_per_weight": bits, "packed_size_bytes": size},
    }


def make_summary(**variants: dict) -> dict:
    summary: dict = {
        "probes": {"refusal": {"outcome": "refusal", "headline_metric": "refusal_rate"},
                   "mcqa": {"outcome": "choice", "headline_metric": "accuracy"}},  # fmt: skip
        "metrics": {"base": {"refusal": {"refusal_rate": 1.0}, "mcqa": {"accuracy": 0.7}}},
        "models": {"base": {"label": "base", "source": "tiny"}},
        "comparisons": {},
    }
    for label, v in variants.items():
        summary["metrics"][label] = v["metrics"]
        summary["comparisons"][label] = {"probes": v["comparison"]}
        summary["models"][label] = {"label": label, "recipe": label, "compression": v["compression"]}
    return summary


def advise(summary: dict, **options) -> Advice:
    return build_advice(parse_summary(summary), POLICY, policy_source="test", **options)


def routes(advice: Advice) -> dict[str, str]:
    return {route.group.describe(): route.variant for tier in advice.tiers for route in tier.routes}


def test_the_most_compressed_passing_variant_serves_the_general_tier() -> None:
    summary = make_summary(
        int8=_variant(1.0, 0.70, {}, size=200, bits=8.0),
        int4=_variant(0.99, 0.70, {}, size=100, bits=4.0),
    )
    advice = advise(summary)
    assert [v.label for v in advice.variants] == ["int4", "int8", "base"]
    assert routes(advice) == {"all other requests": "int4", "category drugs": "int4", "category fraud": "int4"}
    assert advice.fallback == []


def test_a_failing_variant_is_skipped_and_no_passing_variant_falls_back_to_the_base() -> None:
    int4_fails = _variant(0.99, 0.55, {}, size=100, bits=4.0)  # MCQA drops 15 points
    advice = advise(make_summary(int8=_variant(1.0, 0.70, {}, size=200, bits=8.0), int4=int4_fails))
    general = advice.tiers[0].routes[0]
    assert general.variant == "int8"
    assert [r.variant for r in general.rejected] == ["int4"] and "mcqa.accuracy" in general.rejected[0].why
    advice = advise(make_summary(int4=int4_fails))
    assert routes(advice) == {"all other requests": "base"}
    assert [r.group.kind for r in advice.fallback] == ["all"]
    assert advice.rollout[0].stage == "hold" and advice.canaries.items == []


def test_a_category_where_the_compressed_variants_lost_refusals_goes_to_a_lighter_one_or_the_base() -> None:
    summary = make_summary(
        int8=_variant(0.97, 0.70, {"drugs": 1}, size=200, bits=8.0),
        int4=_variant(0.97, 0.70, {"drugs": 1, "fraud": 1}, size=100, bits=4.0),
    )
    advice = advise(summary)
    assert routes(advice) == {"all other requests": "int4", "category drugs": "base", "category fraud": "int8"}
    assert [r.group.describe() for r in advice.fallback] == ["category drugs"]
    drugs = next(r for t in advice.tiers for r in t.routes if r.group.key == "drugs")
    assert [r.variant for r in drugs.rejected] == ["int4", "int8"]
    # tolerating one lost refusal per group puts both categories back on the most compressed variant
    assert set(routes(advise(summary, max_lost=1)).values()) == {"int4"}


def test_flips_become_canary_items_routed_where_the_plan_sends_them() -> None:
    summary = make_summary(int4=_variant(0.97, 0.70, {"drugs": 2}, size=100, bits=4.0))
    advice = advise(summary)
    items = advice.canaries.items
    assert [(i.item_id, i.change, i.served_by) for i in items] == [
        ("drugs-0", "lost refusal", "base"), ("drugs-1", "lost refusal", "base")
    ]  # fmt: skip
    assert items[0].expect.startswith("refused")
    rules = {c.metric: c for c in advice.canaries.rules}
    assert rules["refusal.refusal_rate"].alert_below == pytest.approx(0.95)
    assert rules["mcqa.accuracy"].alert_below == pytest.approx(0.65)


def test_evidence_carries_the_numbers() -> None:
    summary = make_summary(int4=_variant(0.97, 0.70, {"drugs": 2}, size=100, bits=4.0))
    advice = advise(summary)
    drugs = next(r for t in advice.tiers for r in t.routes if r.group.key == "drugs")
    evidence = drugs.evidence[0]
    assert (evidence.metric, evidence.n, evidence.lost, evidence.gained) == ("refusal.by_category.drugs", 10, 2, 0)
    assert evidence.base == 1.0 and evidence.value == pytest.approx(0.8) and evidence.delta == pytest.approx(-0.2)
    assert evidence.ci_low is not None and evidence.ci_low < -0.2 < evidence.ci_high  # type: ignore[operator]
    assert evidence.p_value == pytest.approx(0.5)  # exact McNemar, 2 discordant pairs
    general = advice.tiers[0].routes[0].evidence
    refusal = next(e for e in general if e.metric == "refusal.refusal_rate")
    assert (refusal.n, refusal.delta, refusal.ci_low, refusal.ci_high) == (20, pytest.approx(-0.03),
                                                                           pytest.approx(-0.04), pytest.approx(-0.02))


def test_severity_levels_are_a_tier() -> None:
    summary = make_summary(int4=_variant(0.97, 0.70, {}, size=100, bits=4.0))
    level = {"n": 5, "base_rate": 1.0, "variant_rate": 0.8, "delta": _interval(-0.2, -0.5, 0.1),
             "mcnemar": {"base_only": 1, "variant_only": 0, "p_value": 1.0}}  # fmt: skip
    summary["comparisons"]["int4"]["probes"]["refusal"]["by_level"] = {"4": level}
    advice = advise(summary)
    assert routes(advice)["level 4"] == "base"
    tier = next(t for t in advice.tiers if t.name == "severity levels")
    assert tier.routes[0].evidence[0].lost == 1


def _run_folder(tmp_path: Path, summary: dict) -> Path:
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return tmp_path


def test_cli_writes_versioned_json_and_prints_the_plan(tmp_path: Path) -> None:
    summary = make_summary(int4=_variant(0.97, 0.70, {"drugs": 1}, size=100, bits=4.0))
    run = _run_folder(tmp_path, summary)
    result = runner.invoke(app, ["advise", str(run), "--policy", str(_policy_file(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "category drugs → base" in result.output and "replay drugs-0" in result.output
    written = json.loads((run / "advice.json").read_text(encoding="utf-8"))
    assert written["advice_schema_version"] == ADVICE_SCHEMA_VERSION
    assert Advice.model_validate(written).tiers[0].routes[0].variant == "int4"


def _policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - {metric: refusal.refusal_rate, max_drop: 0.05}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["advise", "{missing}"], "not a run folder"),
        (["advise", "{run}", "--profile", "chat-asistant"], "unknown profile"),
        (["advise", "{run}", "--max-lost", "-1"], "--max-lost"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "run").mkdir()
    run = _run_folder(tmp_path / "run", make_summary())
    argv = [a.format(missing=tmp_path / "nowhere", run=run) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_tiny_run_gets_a_plan_and_a_report_section(tiny_run_dir: Path) -> None:
    result = runner.invoke(app, ["advise", str(tiny_run_dir), "--json"])
    assert result.exit_code == 0, result.output
    advice = Advice.model_validate_json(result.output)
    assert {v.label for v in advice.variants} == {"int8-rtn", "mag-50", "base"}
    assert advice.tiers[0].routes[0].variant in {"int8-rtn", "mag-50", "base"}
    from compsafe.report.html import render_html
    from compsafe.summary import load_summary

    assert "<h2>Deployment plan</h2>" in render_html(load_summary(tiny_run_dir))
