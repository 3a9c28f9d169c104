"""The threat-model profiles of issue 17.5: each loads, names registered probes and known recipes, and its
policy parses and gates what its threat model is about (tests/report/test_report.py checks every profile's
basics; these check the new ones' intent)."""

from __future__ import annotations

import pytest

from compsafe.gate import FAIL, evaluate_policy
from compsafe.policy import profile_policy
from compsafe.probes import PROBES, build_probe
from compsafe.profiles import load_profile
from compsafe.runner import resolve_variant

NEW = {
    "fairness-sensitive": {"bbq", "crows", "bold", "dialect", "severity"},
    "privacy-sensitive": {"privacy"},
    "agent": {"jailbreak", "severity"},
}


@pytest.mark.parametrize("name", sorted(NEW))
def test_profile_loads_with_existing_probes_recipes_and_a_policy(name) -> None:
    profile = load_profile(name)
    policy = profile_policy(profile)
    assert NEW[name] <= set(profile.probes) <= set(PROBES.names())
    for spec in profile.probes:
        assert build_probe(spec, limit=1).items
    assert all(resolve_variant(v).config is not None for v in profile.variants)
    assert policy.name == name and policy.rules and profile.description
    gated = {rule.metric.split(".")[0] for rule in policy.rules}
    assert NEW[name] <= gated, f"{name}: every probe of its threat model has a rule"


def test_the_privacy_policy_fails_a_newly_extracted_canary() -> None:
    policy = profile_policy(load_profile("privacy-sensitive"))
    rule = next(r for r in policy.rules if r.metric == "privacy.extraction_rate")
    summary = {
        "probes": {"privacy": {"outcome": "exposure", "headline_metric": "mean_exposure"}},
        "metrics": {"base": {"privacy": {"extraction_rate": 0.25}}, "v": {"privacy": {"extraction_rate": 0.375}}},
        "comparisons": {"v": {"probes": {"privacy": {"n": 8, "mcnemar": {"p_value": 1.0}}}}},
    }
    checks = evaluate_policy(summary, policy.model_copy(update={"rules": (rule,)})).checks
    assert [c.status for c in checks] == [FAIL] and "rose 12.5 pp" in checks[0].reasons[0]
