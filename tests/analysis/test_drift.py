"""Alignment drift ratio: every status, hand-computed values, and JSON-safe output."""

from __future__ import annotations

import json
import math

import pytest

from compsafe.analysis import (
    DriftRatio,
    alignment_drift_ratio,
    capability_from_perplexity,
    describe_drift,
)


def test_ratio_hand_computed() -> None:
    # Safety 0.80 -> 0.60 loses 25 %; accuracy 0.50 -> 0.45 loses 10 % -> ratio 2.5 (drift).
    r = alignment_drift_ratio(0.80, 0.60, 0.50, 0.45)
    assert r.status == "ratio"
    assert r.relative_safety_loss == pytest.approx(0.25)
    assert r.relative_capability_loss == pytest.approx(0.10)
    assert r.value == pytest.approx(2.5)
    assert "drift" in r.explanation
    assert describe_drift(r) == "2.50"


def test_ratio_below_one_when_capability_degrades_faster() -> None:
    r = alignment_drift_ratio(0.9, 0.855, 0.6, 0.3)
    assert r.status == "ratio"
    assert r.value == pytest.approx(0.05 / 0.5)
    assert "no faster" in r.explanation


def test_no_safety_loss_is_zero_regardless_of_capability() -> None:
    for variant_capability in (0.1, 0.5, 0.7):  # big loss, no change, gain
        r = alignment_drift_ratio(0.9, 0.9, 0.5, variant_capability)
        assert r.status == "no_safety_loss"
        assert r.value == 0.0
        assert describe_drift(r) == "0 (no safety loss)"


def test_safety_gain_counts_as_no_safety_loss() -> None:
    r = alignment_drift_ratio(0.6, 0.9, 0.5, 0.4)
    assert r.status == "no_safety_loss"
    assert r.value == 0.0
    assert r.relative_safety_loss == pytest.approx(-0.5)


def test_losses_within_tolerance_are_no_loss() -> None:
    # 0.05 % safety loss is below the default 0.1 % tolerance.
    assert alignment_drift_ratio(1.0, 0.9995, 0.5, 0.4).status == "no_safety_loss"
    # Same numbers with a tighter tolerance become a real ratio.
    tight = alignment_drift_ratio(1.0, 0.9995, 0.5, 0.4, tolerance=1e-4)
    assert tight.status == "ratio"
    assert tight.value == pytest.approx(0.0005 / 0.2)


def test_safety_loss_without_capability_loss_is_unbounded_not_inf() -> None:
    for variant_capability in (0.5, 0.4996, 0.6):  # unchanged, within tolerance, improved
        r = alignment_drift_ratio(0.8, 0.4, 0.5, variant_capability)
        assert r.status == "safety_loss_without_capability_loss"
        assert r.value is None
        assert r.relative_safety_loss == pytest.approx(0.5)
        assert "capability metrics look fine" in r.explanation
        assert describe_drift(r) == "∞ (safety lost, capability kept)"


def test_base_never_refuses_is_undefined() -> None:
    r = alignment_drift_ratio(0.0, 0.3, 0.5, 0.4)
    assert r.status == "undefined_no_base_safety"
    assert r.value is None and r.relative_safety_loss is None
    assert r.relative_capability_loss == pytest.approx(0.2)
    assert describe_drift(r) == "n/a (base never refuses)"


def test_base_without_capability_is_undefined() -> None:
    r = alignment_drift_ratio(0.8, 0.4, 0.0, 0.0)
    assert r.status == "undefined_no_base_capability"
    assert r.value is None and r.relative_capability_loss is None
    assert r.relative_safety_loss == pytest.approx(0.5)
    assert describe_drift(r).startswith("n/a")


def test_capability_from_perplexity_gives_documented_relative_loss() -> None:
    base_ppl, variant_ppl = 8.0, 10.0
    r = alignment_drift_ratio(0.9, 0.6, capability_from_perplexity(base_ppl), capability_from_perplexity(variant_ppl))
    assert r.relative_capability_loss == pytest.approx(1 - base_ppl / variant_ppl)
    assert r.value == pytest.approx((1 / 3) / 0.2)
    assert capability_from_perplexity(2.0) == 0.5
    assert capability_from_perplexity(math.inf) == 0.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, "x"])
def test_capability_from_perplexity_rejects_non_positive(bad: object) -> None:
    with pytest.raises(ValueError, match="perplexity"):
        capability_from_perplexity(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((math.nan, 0.5, 0.5, 0.5), {}, "base_safety"),
        ((0.5, 0.5, 0.5, math.inf), {}, "variant_capability"),
        ((0.5, 0.5, 0.5, 0.5), {"tolerance": -0.1}, "tolerance"),
    ],
)
def test_rejects_bad_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        alignment_drift_ratio(*args, **kwargs)


def test_to_dict_is_json_safe_for_every_status() -> None:
    cases = [
        alignment_drift_ratio(0.8, 0.6, 0.5, 0.45),
        alignment_drift_ratio(0.8, 0.9, 0.5, 0.45),
        alignment_drift_ratio(0.8, 0.4, 0.5, 0.5),
        alignment_drift_ratio(0.0, 0.4, 0.5, 0.5),
        alignment_drift_ratio(0.8, 0.4, 0.0, 0.5),
    ]
    statuses = set()
    for r in cases:
        d = r.to_dict()
        assert set(d) == {
            "value",
            "status",
            "relative_safety_loss",
            "relative_capability_loss",
            "explanation",
        }
        json.dumps(d, allow_nan=False)
        statuses.add(d["status"])
    assert len(statuses) == 5
    forced = DriftRatio(math.inf, "ratio", math.nan, 0.1, "x").to_dict()
    assert forced["value"] is None and forced["relative_safety_loss"] is None


def test_describe_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="unknown drift status"):
        describe_drift(DriftRatio(None, "bogus", None, None, ""))
