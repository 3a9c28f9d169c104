"""Issue 5 metrics against hand-computed cases: ECE, Brier, BBQ bias scores, expected max toxicity, toxicity
probability, stereotype preference rate, dialect gaps, group gaps, and the paired comparators."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compsafe.analysis.bias import (
    bbq_scores,
    bias_score,
    compare_bbq,
    compare_dialect,
    compare_preference,
    perplexity_gap,
    preference_rate,
    rate_gap,
)
from compsafe.analysis.calibration import (
    brier_score,
    calibration_summary,
    compare_calibration,
    expected_calibration_error,
    mean_confidence_wrong,
    reliability_curve,
    top_label_brier,
)
from compsafe.analysis.resampling import paired_bootstrap_statistic
from compsafe.analysis.toxicity import (
    compare_toxicity,
    domain_gaps,
    expected_maximum_toxicity,
    mean_gap,
    toxicity_probability,
)
from compsafe.comparisons import COMPARATORS, compare_probe


def test_ece_hand_computed():
    # bins of width 0.5: {0.2, 0.4} acc 1/2 conf 0.3 -> |0.5-0.3| * 2/4; {0.6, 0.9} acc 1 conf 0.75 -> 0.25 * 2/4
    conf, correct = [0.2, 0.4, 0.6, 0.9], [True, False, True, True]
    assert expected_calibration_error(conf, correct, n_bins=2) == pytest.approx(0.1 + 0.125)
    # 10 bins: every item alone in its bin -> mean |conf - correct|
    assert expected_calibration_error(conf, correct) == pytest.approx((0.8 + 0.4 + 0.4 + 0.1) / 4)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0  # 1.0 falls in the last bin
    assert expected_calibration_error([0.25, 0.25, 0.25, 0.25], [True, False, False, False]) == pytest.approx(0.0)


def test_reliability_curve_and_wrong_confidence():
    curve = reliability_curve([0.2, 0.4, 0.6, 0.9], [True, False, True, True], n_bins=2)
    assert [b["count"] for b in curve] == [2, 2]
    assert curve[0]["confidence"] == pytest.approx(0.3) and curve[0]["accuracy"] == 0.5
    assert curve[1]["low"] == 0.5 and curve[1]["high"] == 1.0
    assert reliability_curve([0.9], [True], n_bins=4)[0] == {"low": 0.0, "high": 0.25, "confidence": None,
                                                             "accuracy": None, "count": 0}
    assert mean_confidence_wrong([0.2, 0.4, 0.6], [True, False, False]) == pytest.approx(0.5)
    assert mean_confidence_wrong([0.2], [True]) is None


def test_brier_hand_computed():
    # item 1: p = (0.5, 0.5), answer 0 -> 0.25 + 0.25; item 2: p = (1, 0), answer 1 -> 1 + 1
    assert brier_score([[0.5, 0.5], [1.0, 0.0]], [0, 1]) == pytest.approx((0.5 + 2.0) / 2)
    assert top_label_brier([0.5, 1.0], [True, False]) == pytest.approx((0.25 + 1.0) / 2)
    records = [
        {"confidence": 0.5, "correct": True, "logprobs": [math.log(0.5), math.log(0.5)], "answer": 0},
        {"confidence": 0.8, "correct": False, "logprobs": [math.log(0.8), math.log(0.2)], "answer": 1},
    ]
    summary = calibration_summary(records)
    assert summary["brier_score"] == pytest.approx((0.5 + (0.64 + 0.64)) / 2)
    assert summary["mean_confidence_wrong"] == pytest.approx(0.8)
    assert summary["ece"] == pytest.approx((0.5 + 0.8) / 2)


def test_calibration_comparison_identical_models_is_zero():
    records = [{"item_id": str(i), "confidence": c, "correct": ok, "logprobs": [0.0, -1.0], "answer": 0}
               for i, (c, ok) in enumerate([(0.3, True), (0.7, False), (0.9, True), (0.55, True)])]
    result = compare_calibration(records, records, n_resamples=50, seed=0)
    assert result["ece"]["delta"] == {"estimate": 0.0, "low": 0.0, "high": 0.0, "confidence": 0.95}
    assert result["brier_score"]["delta"]["estimate"] == 0.0


def test_paired_bootstrap_statistic_skips_undefined_resamples():
    values = np.array([0.0, 1.0, 2.0])
    result = paired_bootstrap_statistic(3, lambda idx: None if len(set(idx)) == 1 else float(values[idx].mean()),
                                        lambda idx: float(values[idx].mean()) + 1, n_resamples=200, seed=1)
    assert result["delta"]["estimate"] == pytest.approx(1.0)
    assert 150 < result["resamples_used"] < 200


def test_toxicity_metrics_hand_computed():
    scores = [[0.1, 0.7, 0.2], [0.3, 0.4, 0.1], [0.5, 0.0, 0.0], [0.05, 0.05, 0.05]]
    assert expected_maximum_toxicity(scores) == pytest.approx((0.7 + 0.4 + 0.5 + 0.05) / 4)
    assert toxicity_probability(scores) == pytest.approx(2 / 4)  # 0.7 and exactly 0.5 count
    assert toxicity_probability(scores, threshold=0.8) == 0.0


def _tox(item_id, scores):
    return {"item_id": item_id, "prompt": item_id, "continuations": [f"c{i}" for i in range(len(scores))],
            "toxicity": scores, "max_toxicity": max(scores), "toxic": max(scores) >= 0.5}


def test_compare_toxicity_counts_new_toxic_items():
    base = [_tox("a", [0.1, 0.2]), _tox("b", [0.6, 0.1]), _tox("c", [0.1, 0.1])]
    variant = [_tox("a", [0.1, 0.9]), _tox("b", [0.6, 0.1]), _tox("c", [0.2, 0.1])]
    result = compare_toxicity(base, variant, n_resamples=100, seed=0)
    assert result["delta"]["estimate"] == pytest.approx((0.7 + 0 + 0.1) / 3)
    assert result["variant_toxicity_probability"] - result["base_toxicity_probability"] == pytest.approx(1 / 3)
    assert [x["item_id"] for x in result["became_toxic"]] == ["a"]
    assert result["became_toxic"][0]["variant_worst"] == "c1"
    assert result["mcnemar"]["variant_only"] == 1


def test_group_gaps_hand_computed():
    domains = ["g", "g", "g", "r", "r", "x"]
    groups = ["g/w", "g/w", "g/m", "r/a", "r/b", "x/only"]
    values = [0.2, 0.4, -0.1, 0.5, 0.0, 1.0]
    gaps = domain_gaps(domains, groups, values)
    assert gaps == pytest.approx({"g": 0.3 - (-0.1), "r": 0.5})  # "x" has one group: no gap
    assert mean_gap(domains, groups, values) == pytest.approx((0.4 + 0.5) / 2)
    assert mean_gap(["x"], ["x/only"], [1.0]) is None


def _bbq(pred, context, answer=0, unknown=2, biased=1, item="i"):
    return {"item_id": item, "category": "c", "context": context, "pred": pred, "answer": answer,
            "unknown_idx": unknown, "biased_idx": biased, "correct": pred == answer}


def test_bbq_bias_scores_hand_computed():
    # disambiguated: 4 answers, 3 non-unknown of which 2 biased -> s_DIS = 2*2/3 - 1 = 1/3
    dis = [_bbq(1, "disambiguated"), _bbq(1, "disambiguated"), _bbq(0, "disambiguated"), _bbq(2, "disambiguated")]
    # ambiguous (correct = unknown = 2): preds 2, 1, 1, 0 -> acc 1/4; non-unknown 3, biased 2 -> (1 - 1/4) * 1/3
    amb = [_bbq(p, "ambiguous", answer=2) for p in (2, 1, 1, 0)]
    scores = bbq_scores(dis + amb)
    assert scores["bias_score_disambiguated"] == pytest.approx(1 / 3)
    assert scores["accuracy_ambiguous"] == pytest.approx(0.25)
    assert scores["accuracy_disambiguated"] == pytest.approx(0.25)
    assert scores["bias_score_ambiguous"] == pytest.approx(0.75 * (1 / 3))
    assert bias_score([2, 2], [2, 2], [1, 1]) is None
    all_unknown = bbq_scores([_bbq(2, "ambiguous", answer=2), _bbq(2, "disambiguated")])
    assert all_unknown["bias_score_ambiguous"] == 0.0 and all_unknown["bias_score_disambiguated"] is None
    assert bias_score([0, 0], [2, 2], [1, 1]) == -1.0  # always the anti-stereotypical answer


def test_compare_bbq_and_preference():
    base = [_bbq(p, "ambiguous", answer=2, item=str(i)) for i, p in enumerate((2, 1, 1, 0))]
    variant = [_bbq(p, "ambiguous", answer=2, item=str(i)) for i, p in enumerate((1, 1, 1, 0))]
    result = compare_bbq(base, variant, n_resamples=100, seed=0)
    assert result["base_bias_score_ambiguous"] == pytest.approx(0.75 / 3)
    assert result["variant_bias_score_ambiguous"] == pytest.approx(1.0 * (2 * 3 / 4 - 1))
    assert result["answer_flip_share"] == 0.25
    assert preference_rate([True, False, True, True]) == 0.75
    b = [{"item_id": str(i), "prefers_stereo": x, "margin": m} for i, (x, m) in enumerate([(True, 0.2), (False, -0.1)])]
    v = [{"item_id": str(i), "prefers_stereo": x, "margin": m} for i, (x, m) in enumerate([(True, 0.3), (True, 0.1)])]
    pref = compare_preference(b, v, n_resamples=100, seed=0)
    assert (pref["base_rate"], pref["variant_rate"]) == (0.5, 1.0)
    assert pref["margin_delta"]["estimate"] == pytest.approx(0.15)


def test_dialect_gaps_hand_computed():
    records = [
        {"item_id": "s", "sae_nll": 10.0, "sae_tokens": 10, "aae_nll": 12.0, "aae_tokens": 10},
        {"item_id": "r", "sae_nll": 10.0, "sae_tokens": 10, "aae_nll": 10.0, "aae_tokens": 10,
         "sae_refused": False, "aae_refused": True, "sae_answered_correctly": True, "aae_answered_correctly": False},
    ]
    assert perplexity_gap(records) == pytest.approx(math.exp(22 / 20 - 20 / 20) - 1)
    assert rate_gap(records, "refused") == 1.0
    assert rate_gap(records, "answered_correctly") == -1.0
    assert rate_gap(records[:1], "refused") is None
    same = compare_dialect(records, records, n_resamples=50, seed=0)
    assert same["delta"]["estimate"] == 0.0 and same["refusal_gap"]["delta"]["estimate"] == 0.0


def test_every_issue5_outcome_has_a_comparator():
    from compsafe.probes import PROBES

    for name in ("toxicity", "bold", "bbq", "crows", "dialect", "mcqa"):
        assert PROBES.get(name).outcome in COMPARATORS
    records = [{"item_id": "a", "confidence": 0.6, "correct": True, "correct_norm": True, "pred": 0,
                "logprobs": [-0.5, -1.0], "answer": 0}]
    assert "calibration" in compare_probe("choice", records, records, n_resamples=20)
