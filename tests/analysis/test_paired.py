"""Paired statistics: hand-computed values, scipy agreement, and bootstrap sanity properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from compsafe.analysis import (
    Interval,
    McNemarResult,
    flip_share,
    mcnemar_exact,
    paired_bootstrap_mean_delta,
    paired_bootstrap_ratio_of_sums,
    perplexity,
    perplexity_ratio_interval,
    wilson_interval,
)

# ----------------------------------------------------------------------------- mean delta


def test_mean_delta_estimate_is_difference_of_means() -> None:
    base = [1, 0, 1, 1, 0, 1, 0, 0]
    variant = [0, 0, 1, 0, 0, 1, 0, 1]
    iv = paired_bootstrap_mean_delta(base, variant, n_resamples=500)
    assert iv.estimate == pytest.approx(3 / 8 - 4 / 8)
    assert iv.low <= iv.estimate <= iv.high
    assert iv.confidence == 0.95
    # Per-item differences are in {-1, 0, 1}, so resampled means are too; with 2 losses vs 1 gain out
    # of 8 items, no difference is plausible.
    assert -1.0 <= iv.low < 0.0 < iv.high <= 1.0


def test_mean_delta_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=50)
    variant = base + rng.normal(0.1, 0.5, size=50)
    a = paired_bootstrap_mean_delta(base, variant, seed=3)
    b = paired_bootstrap_mean_delta(base, variant, seed=3)
    c = paired_bootstrap_mean_delta(base, variant, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == c.estimate


def test_mean_delta_identical_pairs_give_degenerate_interval() -> None:
    iv = paired_bootstrap_mean_delta([0.2, 0.5, 0.9], [0.2, 0.5, 0.9])
    assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0)
    shifted = paired_bootstrap_mean_delta([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert shifted.low == shifted.estimate == shifted.high == pytest.approx(0.5)


def test_mean_delta_single_item() -> None:
    iv = paired_bootstrap_mean_delta([1.0], [0.0])
    assert (iv.estimate, iv.low, iv.high) == (-1.0, -1.0, -1.0)


def test_mean_delta_width_matches_normal_theory_for_large_n() -> None:
    rng = np.random.default_rng(7)
    n = 2000
    base = rng.normal(size=n)
    variant = base + rng.normal(0.3, 1.0, size=n)
    diffs = variant - base
    iv = paired_bootstrap_mean_delta(base, variant, n_resamples=2000)
    expected_half_width = 1.959964 * diffs.std(ddof=1) / math.sqrt(n)
    assert (iv.high - iv.low) / 2 == pytest.approx(expected_half_width, rel=0.1)
    assert iv.estimate == pytest.approx(diffs.mean())


def test_pairing_narrows_the_interval_for_correlated_scores() -> None:
    """Shared item difficulty must cancel: the paired CI is far narrower than the unpaired spread."""
    rng = np.random.default_rng(11)
    difficulty = rng.normal(0, 5, size=200)
    base = difficulty + rng.normal(0, 0.1, size=200)
    variant = difficulty + 0.2 + rng.normal(0, 0.1, size=200)
    iv = paired_bootstrap_mean_delta(base, variant, n_resamples=1000)
    unpaired_half_width = 1.96 * math.sqrt(base.var(ddof=1) / 200 + variant.var(ddof=1) / 200)
    assert (iv.high - iv.low) / 2 < unpaired_half_width / 10
    assert iv.low > 0.1 and iv.high < 0.3


def test_mean_delta_coverage_on_simulated_known_effect() -> None:
    """Across repeated simulated studies with a true delta of -0.1, a 90 % CI covers it ~90 % of the time."""
    rng = np.random.default_rng(2024)
    true_delta = -0.1
    replications = 400
    covered = 0
    for rep in range(replications):
        base = rng.binomial(1, 0.7, size=80).astype(float)
        # Variant flips some base refusals off and a few on; E[variant - base] = true_delta.
        flip_off = rng.random(80) < 0.2
        flip_on = rng.random(80) < (0.2 * 0.7 + true_delta) / 0.3
        variant = np.where(base == 1, np.where(flip_off, 0.0, 1.0), np.where(flip_on, 1.0, 0.0))
        iv = paired_bootstrap_mean_delta(base, variant, n_resamples=400, confidence=0.9, seed=rep)
        covered += iv.low <= true_delta <= iv.high
    coverage = covered / replications
    assert 0.85 <= coverage <= 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": [], "variant": []}, "empty"),
        ({"base": [1.0, 2.0], "variant": [1.0]}, "same number"),
        ({"base": [1.0, float("nan")], "variant": [1.0, 2.0]}, "NaN"),
        ({"base": [1.0], "variant": [1.0], "confidence": 1.0}, "confidence"),
        ({"base": [1.0], "variant": [1.0], "n_resamples": 0}, "n_resamples"),
    ],
)
def test_mean_delta_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap_mean_delta(**kwargs)


def test_interval_to_dict_is_json_safe() -> None:
    d = Interval(estimate=1.0, low=float("-inf"), high=float("nan"), confidence=0.9).to_dict()
    assert d == {"estimate": 1.0, "low": None, "high": None, "confidence": 0.9}
    json.dumps(d, allow_nan=False)
    real = paired_bootstrap_mean_delta([0, 1, 1], [1, 1, 0], n_resamples=50).to_dict()
    assert set(real) == {"estimate", "low", "high", "confidence"}
    json.dumps(real, allow_nan=False)


# ----------------------------------------------------------------------------- perplexity


def test_perplexity_pools_tokens() -> None:
    # Item 1: 10 tokens, NLL 20; item 2: 30 tokens, NLL 30 -> exp(50 / 40).
    assert perplexity([20.0, 30.0], [10, 30]) == pytest.approx(math.exp(1.25))
    assert perplexity([0.0], [5]) == 1.0


def test_perplexity_rejects_no_tokens() -> None:
    with pytest.raises(ValueError, match="zero"):
        perplexity([0.0, 0.0], [0, 0])
    with pytest.raises(ValueError, match="empty"):
        perplexity([], [])


def test_perplexity_ratio_estimate_matches_hand_computation() -> None:
    base_nll, base_tok = [20.0, 30.0, 12.0], [10, 30, 8]
    var_nll, var_tok = [22.0, 36.0, 12.5], [10, 30, 8]
    iv = perplexity_ratio_interval(base_nll, base_tok, var_nll, var_tok, n_resamples=500)
    expected = perplexity(var_nll, var_tok) / perplexity(base_nll, base_tok)
    assert iv.estimate == pytest.approx(expected)
    assert iv.estimate == pytest.approx(math.exp((70.5 - 62.0) / 48))
    assert iv.low <= iv.estimate <= iv.high
    assert iv.low >= 1.0  # every item got worse, so every resample does too


def test_perplexity_ratio_constant_per_token_shift_is_exact() -> None:
    """Adding c nats to every token multiplies perplexity by exp(c) in every resample: zero-width CI."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 50, size=30)
    base_nll = tokens * rng.uniform(1.5, 3.0, size=30)
    variant_nll = base_nll + 0.25 * tokens
    iv = perplexity_ratio_interval(base_nll, tokens, variant_nll, tokens, n_resamples=300)
    assert iv.estimate == pytest.approx(math.exp(0.25))
    assert iv.low == pytest.approx(math.exp(0.25))
    assert iv.high == pytest.approx(math.exp(0.25))


def test_perplexity_ratio_does_not_overflow() -> None:
    # Each perplexity is exp(800) (inf in float64), but their ratio exp(1) is finite.
    iv = perplexity_ratio_interval([800.0, 800.0], [1, 1], [801.0, 801.0], [1, 1], n_resamples=50)
    assert iv.estimate == pytest.approx(math.e)


def test_generic_ratio_of_sums_matches_perplexity_helper() -> None:
    rng = np.random.default_rng(5)
    tokens = rng.integers(5, 40, size=40).astype(float)
    base_nll = tokens * rng.uniform(2.0, 3.0, size=40)
    variant_nll = base_nll * rng.uniform(0.95, 1.2, size=40)
    generic = paired_bootstrap_ratio_of_sums(base_nll, tokens, variant_nll, tokens, transform=np.exp, seed=9)
    helper = perplexity_ratio_interval(base_nll, tokens, variant_nll, tokens, seed=9)
    assert generic.estimate == pytest.approx(helper.estimate)
    assert generic.low == pytest.approx(helper.low)
    assert generic.high == pytest.approx(helper.high)


def test_generic_ratio_of_sums_identity_transform() -> None:
    # Base pooled ratio 6/4 = 1.5, variant 9/4 = 2.25 -> 1.5.
    iv = paired_bootstrap_ratio_of_sums([2.0, 4.0], [2.0, 2.0], [3.0, 6.0], [2.0, 2.0], n_resamples=200)
    assert iv.estimate == pytest.approx(1.5)
    assert iv.low == pytest.approx(1.5) and iv.high == pytest.approx(1.5)


def test_ratio_of_sums_rejects_zero_denominators() -> None:
    with pytest.raises(ValueError, match="positive"):
        perplexity_ratio_interval([1.0, 2.0], [3, 0], [1.0, 2.0], [3, 1])
    with pytest.raises(ValueError, match="same number"):
        perplexity_ratio_interval([1.0], [3], [1.0, 2.0], [3, 1])


# ----------------------------------------------------------------------------- McNemar


def _pairs(b: int, c: int, both: int = 3, neither: int = 2) -> tuple[list[bool], list[bool]]:
    base = [True] * b + [False] * c + [True] * both + [False] * neither
    variant = [False] * b + [True] * c + [True] * both + [False] * neither
    return base, variant


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (0, 5, 0.0625),
        (5, 0, 0.0625),
        (1, 9, 2 * 11 / 1024),
        (3, 3, 1.0),
        (0, 1, 1.0),
        (2, 8, 2 * 56 / 1024),
    ],
)
def test_mcnemar_hand_values(b: int, c: int, expected: float) -> None:
    base, variant = _pairs(b, c)
    result = mcnemar_exact(base, variant)
    assert result == McNemarResult(n_pairs=b + c + 5, base_only=b, variant_only=c, p_value=result.p_value)
    assert result.p_value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(0, 5), (1, 9), (4, 7), (10, 30), (17, 17), (50, 71), (0, 200)])
def test_mcnemar_agrees_with_scipy_binomtest(b: int, c: int) -> None:
    base, variant = _pairs(b, c)
    expected = stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(base, variant).p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_no_discordant_pairs() -> None:
    result = mcnemar_exact([True, False, True], [True, False, True])
    assert result.to_dict() == {"n_pairs": 3, "base_only": 0, "variant_only": 0, "p_value": 1.0}


def test_mcnemar_accepts_zero_one_and_rejects_scores() -> None:
    assert mcnemar_exact([1, 1, 0], [0, 1, 0]).base_only == 1
    with pytest.raises(ValueError, match="booleans"):
        mcnemar_exact([0.7, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="same number"):
        mcnemar_exact([True], [True, False])
    with pytest.raises(ValueError, match="empty"):
        mcnemar_exact([], [])


# ----------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 10), (47, 100), (1, 1), (999, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_agrees_with_scipy(k: int, n: int, confidence: float) -> None:
    iv = wilson_interval(k, n, confidence)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert iv.estimate == pytest.approx(k / n)
    assert iv.low == pytest.approx(ref.low, abs=1e-12)
    assert iv.high == pytest.approx(ref.high, abs=1e-12)
    assert 0.0 <= iv.low <= iv.estimate <= iv.high <= 1.0


def test_wilson_hand_value() -> None:
    # k=0, n=10, z=1.959964: upper = z^2 / (n + z^2) = 3.841459 / 13.841459.
    iv = wilson_interval(0, 10)
    assert iv.low == 0.0
    assert iv.high == pytest.approx(3.8414588 / 13.8414588, rel=1e-6)


@pytest.mark.parametrize(
    ("k", "n", "message"),
    [(0, 0, "positive"), (5, 4, "between"), (-1, 4, "between"), (1.0, 4, "integer")],
)
def test_wilson_rejects_bad_input(k: object, n: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(k, n)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- flip share


def test_flip_share_counts_changed_outcomes() -> None:
    assert flip_share([0, 1, 2, 3], [0, 2, 2, 1]) == 0.5
    assert flip_share(["A", "B"], ["A", "B"]) == 0.0
    assert flip_share([True, False, True], [False, True, False]) == 1.0
    # Same accuracy, different items right: the churn aggregate accuracy hides.
    assert flip_share([True, False], [False, True]) == 1.0


def test_flip_share_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        flip_share([], [])
    with pytest.raises(ValueError, match="same number"):
        flip_share([1, 2], [1])
