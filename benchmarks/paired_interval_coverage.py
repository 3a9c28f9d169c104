"""Coverage of the intervals for a change in a paired rate (variant - base), by simulation.

For each n and each true flip pattern (expected number of flipped items, and the share of flips that go the
variant's way), draws the three cell counts (gained, lost, unchanged) many times and reports how often each
interval contains the true change, and the narrowest interval seen. Columns: the paired percentile bootstrap
alone, Tango's score interval alone, and what compsafe reports (score below SCORE_BELOW_DISCORDANT discordant
pairs, bootstrap above).

Usage: python benchmarks/paired_interval_coverage.py [draws per cell, default 4000]
Prints the table; asserts nothing (tests/test_analysis_paired_proportions.py asserts >= 93% on a smaller grid).
"""

from __future__ import annotations

import sys

import numpy as np

from compsafe.analysis.paired_proportions import (
    SCORE_BELOW_DISCORDANT,
    bootstrap_interval,
    paired_proportion_bounds,
    tango_interval,
)

SIZES = (30, 40, 100, 400)
EXPECTED_FLIPS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
FLIP_RATES = (0.1, 0.3, 0.6)
TOWARD_VARIANT = (0.5, 0.75, 1.0)


def coverage(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth + 1e-12) & (truth - 1e-12 <= high)))


def main() -> None:
    draws = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    rng = np.random.default_rng(2026)
    print(f"{draws} draws per cell; compsafe = score below {SCORE_BELOW_DISCORDANT} discordant pairs, else bootstrap")
    print(f"{'n':>4} {'flips':>6} {'toward':>6} {'bootstrap':>9} {'score':>6} {'compsafe':>8} {'min width':>9}")
    worst = 1.0
    for n in SIZES:
        for flips in (*EXPECTED_FLIPS, *(rate * n for rate in FLIP_RATES)):
            for share in TOWARD_VARIANT:
                p_gain, p_loss = flips * share / n, flips * (1 - share) / n
                counts = rng.multinomial(n, [p_gain, p_loss, 1 - p_gain - p_loss], size=draws)
                gained, lost, truth = counts[:, 0], counts[:, 1], p_gain - p_loss
                boot = coverage(*bootstrap_interval(gained, lost, n, n_resamples=500), truth)
                score = coverage(*tango_interval(gained, lost, n), truth)
                low, high = paired_proportion_bounds(gained, lost, n, n_resamples=500)
                used = coverage(low, high, truth)
                worst = min(worst, used)
                width = float(np.min(high - low))
                print(f"{n:>4} {flips:>6.1f} {share:>6.2f} {boot:>9.1%} {score:>6.1%} {used:>8.1%} {width:>9.3f}")
    print(f"lowest compsafe coverage: {worst:.1%}")


if __name__ == "__main__":
    main()
