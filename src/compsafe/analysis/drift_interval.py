"""A confidence interval for the alignment drift ratio, and whether each of its two sides changed significantly.

Why: the ratio divides two relative losses measured on different item sets; when the capability loss is
within noise (its interval contains 0), the ratio's interval contains +-infinity and its point value -- "13.2"
on an MCQA change of -2.6 points whose CI contained 0 -- says nothing. Each side is resampled by items (the
paired bootstrap: base and variant outcomes of an item stay together; the two probes' items are resampled
independently, as they are independent samples), the ratio recomputed per replicate, and the percentile
interval taken with replicates whose capability loss is <= 0 counted as +-infinity. An upper bound of
infinity is reported as ``None`` ("unbounded").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from compsafe.analysis.paired import _resampled_column_sums

__all__ = ["DriftInterval", "LossSample", "binary_losses", "drift_ratio_interval", "perplexity_losses"]


@dataclass(frozen=True)
class LossSample:
    """One side of the ratio: per-item columns and how resampled column sums give (base, variant) scores."""

    columns: np.ndarray  # (n_items, k)
    scores: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # sums (R, k) -> base (R,), variant (R,)

    def relative_losses(self, n_resamples: int, seed: int) -> np.ndarray:
        """(base - variant) / base per bootstrap replicate; NaN where the resampled base score is 0."""
        base, variant = self.scores(_resampled_column_sums(self.columns, n_resamples, seed))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(base > 0, (base - variant) / base, np.nan)


def binary_losses(base: Sequence[bool], variant: Sequence[bool]) -> LossSample:
    """A rate (refusal rate, accuracy) on paired binary outcomes."""
    columns = np.column_stack([np.asarray(base, dtype=np.float64), np.asarray(variant, dtype=np.float64)])
    n = len(columns)
    return LossSample(columns, lambda sums: (sums[:, 0] / n, sums[:, 1] / n))


def perplexity_losses(
    base_nll: Sequence[float],
    base_tokens: Sequence[float],
    variant_nll: Sequence[float],
    variant_tokens: Sequence[float],
) -> LossSample:
    """Capability 1/perplexity = exp(-sum nll / sum tokens) of each model, pooled over the resampled items."""
    values = (base_nll, base_tokens, variant_nll, variant_tokens)
    columns = np.column_stack([np.asarray(c, dtype=np.float64) for c in values])
    return LossSample(columns, lambda s: (np.exp(-s[:, 0] / s[:, 1]), np.exp(-s[:, 2] / s[:, 3])))


@dataclass(frozen=True)
class DriftInterval:
    """Percentile interval of the drift ratio; ``high`` (or ``low``) None means unbounded."""

    low: float | None
    high: float | None
    confidence: float

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None

    def to_dict(self) -> dict[str, float | bool | None]:
        return {"low": self.low, "high": self.high, "confidence": self.confidence, "bounded": self.bounded}

    def text(self) -> str:
        """``[2.10, 40.3]``, ``[2.10, ∞)`` or ``(-∞, ∞)``."""
        low = "(-∞" if self.low is None else f"[{self.low:.2f}"
        high = "∞)" if self.high is None else f"{self.high:.2f}]"
        return f"{low}, {high}"


def drift_ratio_interval(
    safety: LossSample,
    capability: LossSample,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DriftInterval:
    """Bootstrap interval of relative safety loss / relative capability loss (see the module docstring)."""
    s = safety.relative_losses(n_resamples, seed)
    c = capability.relative_losses(n_resamples, seed + 1)
    keep = np.isfinite(s) & np.isfinite(c)
    s, c = s[keep], c[keep]
    if s.size == 0:
        return DriftInterval(None, None, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(c > 0, s / np.where(c > 0, c, 1.0), np.sign(s) * np.inf)
    ratio = np.nan_to_num(ratio, nan=0.0, posinf=np.inf, neginf=-np.inf)
    alpha = 1.0 - confidence
    low, high = np.quantile(ratio, [alpha / 2.0, 1.0 - alpha / 2.0], method="inverted_cdf")
    return DriftInterval(
        float(low) if math.isfinite(low) else None, float(high) if math.isfinite(high) else None, confidence
    )
