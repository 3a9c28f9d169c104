"""Intervals for a change in a paired rate: Tango's score interval, the multinomial bootstrap, and the rule that
picks between them, checked by simulation (coverage >= 93%, never zero width) and against the score equation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from compsafe.analysis import paired_proportion_delta
from compsafe.analysis.paired_proportions import (
    SCORE_BELOW_DISCORDANT,
    _tango_statistic,
    bootstrap_interval,
    paired_proportion_bounds,
    tango_interval,
)

Z95 = float(stats.norm.ppf(0.975))


def test_tango_with_no_flips_has_the_closed_form_width() -> None:
    for n in (30, 40, 100, 400):
        low, high = tango_interval(0, 0, n)
        half = Z95**2 / (n + Z95**2)
        assert float(high) == pytest.approx(half, rel=1e-9) and float(low) == pytest.approx(-half, rel=1e-9)


@pytest.mark.parametrize(("gained", "lost", "n"), [(3, 0, 40), (1, 4, 30), (12, 5, 100), (0, 9, 400), (20, 20, 40)])
def test_tango_bounds_solve_the_score_equation(gained: int, lost: int, n: int) -> None:
    low, high = (float(v) for v in tango_interval(gained, lost, n))
    args = (np.float64(gained), np.float64(lost), np.float64(n))
    assert float(_tango_statistic(*args, np.float64(low))) == pytest.approx(Z95, abs=1e-6)
    assert float(_tango_statistic(*args, np.float64(high))) == pytest.approx(-Z95, abs=1e-6)
    # at no change the statistic is McNemar's (gained - lost) / sqrt(gained + lost)
    expected = (gained - lost) / np.sqrt(gained + lost)
    assert float(_tango_statistic(*args, np.float64(0.0))) == pytest.approx(expected)


def test_bootstrap_matches_item_resampling_in_distribution() -> None:
    low, high = bootstrap_interval(10, 4, 60, n_resamples=20000, seed=1)
    items = np.array([1] * 10 + [-1] * 4 + [0] * 46)
    means = np.random.default_rng(2).choice(items, size=(20000, 60)).mean(axis=1)
    assert float(low) == pytest.approx(np.quantile(means, 0.025), abs=0.02)
    assert float(high) == pytest.approx(np.quantile(means, 0.975), abs=0.02)


def test_coverage_at_least_93_percent_and_never_zero_width() -> None:
    """The simulation the issue asks for: n in {30, 40, 100, 400}, 0-3 expected flips and larger flip rates."""
    rng = np.random.default_rng(13)
    draws = 1500
    for n in (30, 40, 100, 400):
        for flips in (0.0, 0.5, 1.0, 2.0, 3.0, 6.0, 0.1 * n, 0.3 * n):
            for share in (0.5, 1.0):
                p_gain, p_loss = flips * share / n, flips * (1 - share) / n
                counts = rng.multinomial(n, [p_gain, p_loss, 1 - p_gain - p_loss], size=draws)
                low, high = paired_proportion_bounds(counts[:, 0], counts[:, 1], n, n_resamples=400)
                truth = p_gain - p_loss
                covered = np.mean((low <= truth + 1e-12) & (truth - 1e-12 <= high))
                assert covered >= 0.93, (n, flips, share, covered)
                assert np.min(high - low) > 0.0, (n, flips, share)


def test_paired_proportion_delta_picks_the_method_by_discordant_pairs() -> None:
    base = [True] * 20 + [False] * 20
    few = paired_proportion_delta(base, base)
    assert few.estimate == 0.0 and few.low < 0.0 < few.high and few.method == "score (Tango)"
    assert few.to_dict()["method"] == "score (Tango)"
    flipped = [not x for x in base[:SCORE_BELOW_DISCORDANT]] + base[SCORE_BELOW_DISCORDANT:]
    many = paired_proportion_delta(base, flipped)
    assert many.method == "bootstrap" and many.low <= many.estimate <= many.high
    with pytest.raises(ValueError, match="booleans"):
        paired_proportion_delta([0.5, 1.0], [1.0, 0.0])
