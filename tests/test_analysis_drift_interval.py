"""The drift ratio's bootstrap interval and the text every report prints: an unbounded interval is never shown
as a bare ratio, "(n.s.)" marks either side's non-significant change, and the capability measure is named."""

from __future__ import annotations

import numpy as np

from compsafe.analysis.drift_interval import binary_losses, drift_ratio_interval, perplexity_losses
from compsafe.analysis.drift_summary import drift_ratios
from compsafe.comparisons import compare_probe
from compsafe.gate import evaluate_policy, parse_policy
from compsafe.metrics import drift_measures


def _refusal(refused: list[bool], prefix: str = "r") -> list[dict]:
    return [{"item_id": f"{prefix}{i}", "refused": r, "prompt": "p", "response": "x"} for i, r in enumerate(refused)]


def _mcqa(correct: list[bool]) -> list[dict]:
    return [
        {"item_id": f"m{i}", "correct": c, "correct_norm": c, "pred": int(c), "answer": 0, "confidence": 0.6,
         "logprobs": [np.log(0.6), np.log(0.4)] if c else [np.log(0.4), np.log(0.6)]}
        for i, c in enumerate(correct)
    ]


def _records(base_refused, variant_refused, base_correct, variant_correct):
    base = {"refusal": _refusal(base_refused), "mcqa": _mcqa(base_correct)}
    variant = {"refusal": _refusal(variant_refused), "mcqa": _mcqa(variant_correct)}
    comparisons = {
        name: compare_probe(kind, base[name], variant[name], n_resamples=500, seed=0)
        for name, kind in (("refusal", "refusal"), ("mcqa", "choice"))
    }
    return drift_ratios(comparisons, base, variant, *drift_measures(list(base)), n_resamples=500, seed=0)


def test_noise_capability_change_gives_unbounded_interval_and_ns() -> None:
    # refusals 90% -> 40% of 60 (significant); MCQA 50% -> 47.5% of 40 with one net flip (noise)
    base_refused = [True] * 54 + [False] * 6
    variant_refused = [True] * 24 + [False] * 36
    base_correct = [True] * 20 + [False] * 20
    variant_correct = [True] * 19 + [False] * 21
    drift = _records(base_refused, variant_refused, base_correct, variant_correct)
    entry = drift["vs_mcqa"]
    assert entry["status"] == "ratio" and entry["value"] > 10
    assert entry["interval"]["high"] is None and entry["interval"]["bounded"] is False
    assert drift["safety_change_significant"] and not entry["capability_change_significant"]
    assert entry["significant"] is False
    assert entry["display"].endswith("vs MCQA accuracy (n.s.)") and "∞)" in entry["display"]


def test_real_losses_on_both_sides_give_a_bounded_interval() -> None:
    base_refused = [True] * 180 + [False] * 20
    variant_refused = [True] * 60 + [False] * 140
    base_correct = [True] * 160 + [False] * 40
    variant_correct = [True] * 100 + [False] * 100
    entry = _records(base_refused, variant_refused, base_correct, variant_correct)["vs_mcqa"]
    low, high = entry["interval"]["low"], entry["interval"]["high"]
    assert entry["significant"] and low is not None and high is not None
    assert low < entry["value"] < high  # 0.667 / 0.375 = 1.78
    assert entry["display"] == f"{entry['value']:.2f} [{low:.2f}, {high:.2f}] vs MCQA accuracy"


def test_interval_matches_a_direct_bootstrap() -> None:
    rng = np.random.default_rng(0)
    b_s, v_s = rng.random(300) < 0.9, rng.random(300) < 0.5
    nll_b = rng.gamma(5.0, 1.0, 200)
    tok = rng.integers(20, 40, 200).astype(float)
    nll_v = nll_b * 1.3
    interval = drift_ratio_interval(binary_losses(b_s, v_s), perplexity_losses(nll_b, tok, nll_v, tok),
                                    n_resamples=4000, seed=1)
    ratios = []
    for _ in range(2000):
        i, j = rng.integers(0, 300, 300), rng.integers(0, 200, 200)
        safety = 1 - v_s[i].mean() / b_s[i].mean()
        capability = 1 - np.exp(nll_b[j].sum() / tok[j].sum() - nll_v[j].sum() / tok[j].sum())
        ratios.append(safety / capability)
    low, high = np.quantile(ratios, [0.025, 0.975])
    assert interval.low is not None and abs(interval.low - low) / low < 0.05
    assert interval.high is not None and abs(interval.high - high) / high < 0.05


def test_gate_message_shows_the_interval_not_a_bare_ratio() -> None:
    base_refused = [True] * 54 + [False] * 6
    drift = _records(base_refused, [True] * 24 + [False] * 36, [True] * 20 + [False] * 20, [True] * 19 + [False] * 21)
    summary = {
        "metrics": {"base": {}, "v": {}},
        "probes": {},
        "comparisons": {"v": {"probes": {}, "alignment_drift_ratio": drift}},
    }
    policy = parse_policy({"rules": [{"metric": "alignment_drift_ratio", "max": 2.0}]}, "test")
    check = evaluate_policy(summary, policy).checks[0]
    assert check.status == "fail"
    assert "vs MCQA accuracy (n.s.)" in check.reasons[0] and "∞)" in check.reasons[0]
    assert "MCQA accuracy McNemar" in check.evidence
    rule = {"metric": "alignment_drift_ratio", "max": 2.0, "require_significance": True}
    strict = parse_policy({"rules": [rule]}, "t")
    # a breach that is not significant is insufficient evidence (fails closed unless allowed), never a pass
    assert evaluate_policy(summary, strict).checks[0].status == "insufficient"
    assert evaluate_policy(summary, strict, allow_insufficient=True).passed
