"""Paired statistics for base-vs-compressed comparisons on the same items.

* :mod:`.paired` -- bootstrap intervals for mean deltas and perplexity ratios, exact McNemar,
  Wilson intervals, flip share.
* :mod:`.drift` -- the alignment drift ratio (relative safety loss / relative capability loss);
  its module docstring is the definition users read.
* :mod:`.divergence` -- next-token KL between base and variant from the base's stored top-k.
"""

from compsafe.analysis.divergence import coarse_kl, topk_logprobs
from compsafe.analysis.drift import (
    DriftRatio,
    alignment_drift_ratio,
    capability_from_perplexity,
    describe_drift,
)
from compsafe.analysis.paired import (
    Interval,
    McNemarResult,
    flip_share,
    mcnemar_exact,
    paired_bootstrap_mean_delta,
    paired_bootstrap_ratio_of_sums,
    paired_proportion_delta,
    perplexity,
    perplexity_ratio_interval,
    wilson_interval,
)

__all__ = [
    "DriftRatio",
    "Interval",
    "McNemarResult",
    "alignment_drift_ratio",
    "capability_from_perplexity",
    "coarse_kl",
    "describe_drift",
    "flip_share",
    "mcnemar_exact",
    "paired_bootstrap_mean_delta",
    "paired_proportion_delta",
    "paired_bootstrap_ratio_of_sums",
    "perplexity",
    "perplexity_ratio_interval",
    "topk_logprobs",
    "wilson_interval",
]
