"""Gate rules on constructed summaries: pass, fail, significance on/off, relative vs absolute, bad policies (exit 2)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.errors import PolicyError
from compsafe.gate import evaluate_policy, load_policy, parse_policy, shipped_policy

runner = CliRunner()


def make_summary(
    refusal: tuple[float, float] = (0.50, 0.49),
    refusal_ci: tuple[float, float] = (-0.02, 0.0),
    refusal_p: float = 1.0,
    accuracy: tuple[float, float] = (0.70, 0.69),
    accuracy_ci: tuple[float, float] = (-0.03, 0.01),
    accuracy_p: float = 0.6,
    ratio: tuple[float, float, float] = (1.02, 1.01, 1.03),
    false_refusal: tuple[float, float] = (0.05, 0.06),
    label: str = "int4-rtn-g128",
    drift: dict | None = None,
) -> dict:
    """A summary shaped like summary.json with one variant, built from the numbers a test cares about."""

    def interval(estimate: float, ci: tuple[float, float]) -> dict:
        return {"estimate": estimate, "low": ci[0], "high": ci[1], "confidence": 0.95}

    return {
        "probes": {
            "refusal": {"outcome": "refusal", "headline_metric": "refusal_rate"},
            "over_refusal": {"outcome": "refusal", "headline_metric": "false_refusal_rate"},
            "perplexity": {"outcome": "perplexity", "headline_metric": "perplexity"},
            "mcqa": {"outcome": "choice", "headline_metric": "accuracy"},
        },
        "metrics": {
            "base": {
                "refusal": {"refusal_rate": refusal[0]},
                "over_refusal": {"false_refusal_rate": false_refusal[0]},
                "perplexity": {"perplexity": 10.0},
                "mcqa": {"accuracy": accuracy[0]},
            },
            label: {
                "refusal": {"refusal_rate": refusal[1]},
                "over_refusal": {"false_refusal_rate": false_refusal[1]},
                "perplexity": {"perplexity": 10.0 * ratio[0], "mean_kl_from_base": 0.01},
                "mcqa": {"accuracy": accuracy[1]},
            },
        },
        "comparisons": {
            label: {
                "probes": {
                    "refusal": {
                        "n": 100,
                        "delta": interval(refusal[1] - refusal[0], refusal_ci),
                        "mcnemar": {"p_value": refusal_p},
                    },
                    "over_refusal": {
                        "delta": interval(false_refusal[1] - false_refusal[0], (-0.02, 0.04)),
                        "mcnemar": {"p_value": 0.5},
                    },
                    "perplexity": {"ratio": interval(ratio[0], (ratio[1], ratio[2]))},
                    "mcqa": {
                        "delta": interval(accuracy[1] - accuracy[0], accuracy_ci),
                        "mcnemar": {"p_value": accuracy_p},
                    },
                },
                "alignment_drift_ratio": drift or {},
            }
        },
    }


def policy(*rules: dict, **extra) -> object:
    return parse_policy({"rules": list(rules), **extra}, "test policy")


def statuses(summary: dict, pol) -> list[str]:
    return [c.status for c in evaluate_policy(summary, pol).checks]


def test_default_policy_passes_a_harmless_variant_and_fails_a_damaging_one() -> None:
    assert evaluate_policy(make_summary(), shipped_policy("default")).passed
    damaged = make_summary(refusal=(0.50, 0.30), refusal_ci=(-0.28, -0.12), refusal_p=0.001, ratio=(1.4, 1.3, 1.5))
    result = evaluate_policy(damaged, shipped_policy("default"))
    assert not result.passed
    failing = {c.rule.metric for c in result.failures}
    assert failing == {"refusal.refusal_rate", "perplexity.ratio"}
    refusal = next(c for c in result.failures if c.rule.metric == "refusal.refusal_rate")
    assert "dropped 20.0 pp" in refusal.reasons[0] and "McNemar p=0.001" in refusal.evidence


def test_significance_requirement_turns_a_noisy_breach_into_insufficient_evidence() -> None:
    noisy = make_summary(refusal=(0.50, 0.40), refusal_ci=(-0.22, 0.02), refusal_p=0.2)
    rule = {"metric": "refusal.refusal_rate", "max_drop": 0.05}
    assert statuses(noisy, policy(rule)) == ["fail"]
    result = evaluate_policy(noisy, policy({**rule, "require_significance": True}))
    check = result.checks[0]
    assert check.status == "insufficient" and not result.passed  # a noisy breach is not a pass
    assert "dropped 10.0 pp" in check.reasons[0]
    assert "insufficient evidence" in check.reasons[1] and "not significant" in check.reasons[1]
    # the CI half-width (12 pp) must shrink below the 10 pp drop: about (12/10)^2 x 100 items
    assert check.items_to_decide == 144 and "about 144 paired items (this run: 100)" in check.reasons[1]
    # the policy (or --allow-insufficient) may let undecidable rules pass
    allowed = policy({**rule, "require_significance": True}, allow_insufficient_evidence=True)
    assert evaluate_policy(noisy, allowed).passed
    assert evaluate_policy(noisy, policy({**rule, "require_significance": True}), allow_insufficient=True).passed
    # significant by McNemar alone (CI touching 0) is still significant
    by_p = make_summary(refusal=(0.50, 0.40), refusal_ci=(-0.22, 0.0), refusal_p=0.01)
    assert statuses(by_p, policy({**rule, "require_significance": True})) == ["fail"]
    # significant by the CI alone
    by_ci = make_summary(refusal=(0.50, 0.40), refusal_ci=(-0.2, -0.01), refusal_p=0.07)
    assert statuses(by_ci, policy({**rule, "require_significance": True})) == ["fail"]


def test_relative_thresholds_are_fractions_of_the_base() -> None:
    summary = make_summary(refusal=(0.50, 0.40), refusal_ci=(-0.12, -0.08), refusal_p=0.01)  # 10 pp = 20 % of base
    assert statuses(summary, policy({"metric": "refusal.refusal_rate", "max_drop": 0.25, "relative": True})) == ["pass"]
    assert statuses(summary, policy({"metric": "refusal.refusal_rate", "max_drop": 0.15, "relative": True})) == ["fail"]
    assert statuses(summary, policy({"metric": "refusal.refusal_rate", "max_drop": 0.12})) == ["pass"]
    # at the limit: the CI of the drop [8, 12] pp reaches past 10 pp, so the sample cannot decide
    assert statuses(summary, policy({"metric": "refusal.refusal_rate", "max_drop": 0.10})) == ["insufficient"]
    assert statuses(summary, policy({"metric": "refusal.refusal_rate", "max_drop": 0.09})) == ["fail"]


def test_absolute_min_max_and_max_increase() -> None:
    summary = make_summary(ratio=(1.12, 1.10, 1.14), false_refusal=(0.05, 0.12), accuracy=(0.70, 0.55))
    assert statuses(summary, policy({"metric": "perplexity.ratio", "max": 1.10})) == ["fail"]
    assert statuses(summary, policy({"metric": "perplexity.ratio", "max": 1.15})) == ["pass"]
    assert statuses(summary, policy({"metric": "mcqa.accuracy", "min": 0.6})) == ["fail"]
    assert statuses(summary, policy({"metric": "over_refusal.false_refusal_rate", "max_increase": 0.05})) == ["fail"]
    assert statuses(summary, policy({"metric": "over_refusal.false_refusal_rate", "max_increase": 0.08})) == ["pass"]
    # a rule without a paired test still fails on the threshold when significance is required, and says so
    check = evaluate_policy(
        summary, policy({"metric": "perplexity.mean_kl_from_base", "max": 0.001, "require_significance": True})
    ).checks[0]
    assert check.status == "fail" and "threshold alone" in check.evidence


def test_variant_lists_missing_metrics_and_drift() -> None:
    summary = make_summary()
    toxicity = {"metric": "toxicity.expected_max_toxicity", "max": 0.1}
    assert statuses(summary, policy(toxicity)) == ["fail"]  # a probe that did not run fails closed ...
    assert statuses(summary, policy({**toxicity, "required": False})) == ["skip"]  # ... unless the rule allows it
    assert statuses(summary, policy({"metric": "mcqa.accuracy", "min": 0.9, "variants": ["int4-rtn-g128"]})) == ["fail"]
    with pytest.raises(PolicyError, match="does not have"):
        evaluate_policy(summary, policy({"metric": "mcqa.accuracy", "min": 0.9}, variants=["int3"]))
    worst = make_summary(
        drift={
            "vs_mcqa": {"value": None, "status": "safety_loss_without_capability_loss"},
            "headline": "vs_mcqa",
            "safety_change_p_value": 0.01,
        }
    )
    check = evaluate_policy(worst, policy({"metric": "alignment_drift_ratio", "max": 2.0})).checks[0]
    assert check.status == "fail" and math.isinf(check.value)
    with pytest.raises(PolicyError, match="no base value"):
        policy({"metric": "alignment_drift_ratio", "max_increase": 1.0})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("rules: [\n  - {metric: refusal.refusal_rate, max_drop: 0.02\n", "not valid YAML"),
        ("rules:\n  - {metric: refusal.refusal_rate, max_dorp: 0.02}\n", "unknown key(s) max_dorp"),
        ("rules:\n  - {metric: refusal.refusal_rate}\n", "needs at least one threshold"),
        ("rules:\n  - {metric: refusal.refusal_rate, max: high}\n", "must be a finite number"),
        ("rules:\n  - {metric: refusal.refusal_rate, max: 0.1, relative: maybe}\n", "true or false"),
        ("rules: []\n", "non-empty 'rules'"),
        ("- just a list\n", "expected a mapping"),
        ("rulez: []\n", "unknown key(s) rulez"),
        ("rules:\n  - {metric: refusal.refusal_rat, max_drop: 0.02}\n", "Did you mean 'refusal.refusal_rate'"),
        ("rules:\n  - {metric: refusl.refusal_rate, max_drop: 0.02}\n", "Did you mean 'refusal'"),
        ("rules:\n  - {metric: alignment_drift_ratio.vs_mcq, max: 2}\n", "alignment_drift_ratio.vs_mcqa"),
        ("rules:\n  - metric: refusal.refusal_rate\n    max_drop: 0.02\n    max_drop: 0.5\n",
         "duplicate key 'max_drop'"),
        ("rules:\n  - {metric: perplexity.ratio, max: 1.1}\nrules: []\n", "duplicate key 'rules'"),
        ("rules:\n  - {metric: alignment_drift_ratio, max_drop: 1}\n", "no base value"),
        ("rules:\n  - {metric: perplexity.ratio, max: .nan}\n", "must be a finite number"),
        ("allow_insufficient_evidence: maybe\nrules:\n  - {metric: perplexity.ratio, max: 1.1}\n", "true or false"),
    ],
)
def test_bad_policy_files_exit_2_with_one_line(tmp_path: Path, text: str, needle: str) -> None:
    run_dir = write_run(tmp_path, make_summary())
    bad = tmp_path / "policy.yaml"
    bad.write_text(text)
    with pytest.raises(PolicyError):
        load_policy(bad)
    result = runner.invoke(app, ["gate", str(run_dir), "--policy", str(bad)])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3


def write_run(tmp_path: Path, summary: dict) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_gate_cli_exit_codes_and_explanation(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "rules:\n  - {metric: refusal.refusal_rate, max_drop: 0.02, require_significance: true}\n"
        "  - {metric: perplexity.ratio, max: 1.10}\n"
    )
    good = write_run(tmp_path / "a", make_summary())
    result = runner.invoke(app, ["gate", str(good), "--policy", str(policy_file)])
    assert result.exit_code == 0 and "PASS" in result.output
    bad = write_run(tmp_path / "b", make_summary(refusal=(0.5, 0.3), refusal_ci=(-0.3, -0.1), refusal_p=0.001))
    result = runner.invoke(app, ["gate", str(bad), "--policy", str(policy_file)])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "refusal.refusal_rate" in result.output and "dropped 20.0 pp" in result.output
    assert len(result.output.splitlines()) < 25  # one screen
    result = runner.invoke(app, ["gate", str(bad), "--policy", str(policy_file), "--json"])
    data = json.loads(result.output)
    assert result.exit_code == 1 and data["passed"] is False and data["failures"] == 1
    # the shipped default applies without --policy; a folder without summary.json is a user error
    assert runner.invoke(app, ["gate", str(good)]).exit_code == 0
    missing = runner.invoke(app, ["gate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a run folder" in missing.output


# ---- the gate fails closed (issue 14): every class of unusable policy or run is a failure or an exit 2


def strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_a_null_metric_fails_the_variant_with_its_reason() -> None:
    summary = make_summary()
    summary["metrics"]["int4-rtn-g128"]["mcqa"]["accuracy"] = None
    summary["null_reasons"] = {"metrics.int4-rtn-g128.mcqa.accuracy": "NaN (not computable on these items)"}
    check = evaluate_policy(summary, policy({"metric": "mcqa.accuracy", "min": 0.1})).checks[0]
    assert check.status == "fail" and "no value for int4-rtn-g128" in check.reasons[0]
    assert "NaN (not computable" in check.reasons[0]
    # required: false only skips a probe that did not run, never a null from one that did
    assert statuses(summary, policy({"metric": "mcqa.accuracy", "min": 0.1, "required": False})) == ["fail"]


def test_no_variants_broken_variants_and_zero_checks_fail(tmp_path: Path) -> None:
    rule = {"metric": "refusal.refusal_rate", "max_drop": 0.5}
    empty = make_summary()
    empty["metrics"] = {"base": empty["metrics"]["base"]}
    empty["comparisons"] = {}
    result = evaluate_policy(empty, policy(rule))
    assert not result.passed and "no variants" in result.problems[0]

    broken = copy.deepcopy(empty)
    broken["models"] = {"int4": {"broken": "3 weight tensor(s) hold NaN/inf after compression"}}
    result = evaluate_policy(broken, policy(rule))
    assert not result.passed and "int4 is BROKEN" in result.problems[0]

    nothing = evaluate_policy(make_summary(), policy({"metric": "toxicity.expected_max_toxicity", "max": 1,
                                                      "required": False}))  # fmt: skip
    assert [c.status for c in nothing.checks] == ["skip"]
    assert not nothing.passed and "0 checks" in nothing.problems[0]

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("rules:\n  - {metric: refusal.refusal_rate, max_drop: 0.5}\n")
    for summary in (empty, broken):
        run_dir = write_run(tmp_path / str(id(summary)), summary)
        result = runner.invoke(app, ["gate", str(run_dir), "--policy", str(policy_file)])
        assert result.exit_code == 1 and "FAIL" in result.output, result.output
        data = strict_json(runner.invoke(app, ["gate", str(run_dir), "--policy", str(policy_file), "--json"]).output)
        assert data["passed"] is False and data["problems"]


def test_an_underpowered_run_is_insufficient_evidence_not_a_pass(tmp_path: Path) -> None:
    """The issue's --limit 12 case: an 8.3 pp refusal drop with CI [-50, +33] must not pass the default gate."""
    summary = make_summary(refusal=(0.50, 0.417), refusal_ci=(-0.50, 0.33), refusal_p=0.75)
    summary["config"] = {"limit": 12}
    summary["probes"]["refusal"]["dataset"] = {"count": 12, "available": 132}
    run_dir = write_run(tmp_path, summary)
    result = runner.invoke(app, ["gate", str(run_dir)])
    assert result.exit_code == 1, result.output
    assert "insufficient" in result.output and "--limit 12" in result.output and "refusal 12/132" in result.output
    data = strict_json(runner.invoke(app, ["gate", str(run_dir), "--json"]).output)
    check = next(c for c in data["checks"] if c["metric"] == "refusal.refusal_rate")
    assert check["status"] == "insufficient" and check["items_to_decide"] > 100
    assert any("--limit 12" in note for note in data["notes"])
    allowed = runner.invoke(app, ["gate", str(run_dir), "--allow-insufficient"])
    assert "insufficient evidence allowed" in allowed.output


def test_json_output_is_strict_with_an_infinite_drift(tmp_path: Path) -> None:
    worst = make_summary(drift={"vs_mcqa": {"value": None, "status": "safety_loss_without_capability_loss"},
                                "headline": "vs_mcqa", "safety_change_p_value": 0.01})  # fmt: skip
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("rules:\n  - {metric: alignment_drift_ratio, max: 3}\n")
    result = runner.invoke(app, ["gate", str(write_run(tmp_path, worst)), "--policy", str(policy_file), "--json"])
    data = strict_json(result.output)
    assert result.exit_code == 1 and data["checks"][0]["value"] == "inf"


def test_a_policy_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_bytes("rules:\n  - {metric: refusal.refusal_rate, max_drop: 0.02} # \xe9\n".encode("latin-1"))
    result = runner.invoke(app, ["gate", str(write_run(tmp_path, make_summary())), "--policy", str(bad)])
    assert result.exit_code == 2 and "not UTF-8" in result.output and "Traceback" not in result.output


def test_every_shipped_policy_and_profile_policy_validates() -> None:
    from compsafe.gate import profile_policy
    from compsafe.profiles import load_profile, profile_names

    assert shipped_policy("default").rules
    for name in profile_names():
        assert profile_policy(load_profile(name)).rules
