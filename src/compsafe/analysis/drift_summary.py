"""The run summary's ``alignment_drift_ratio`` entry: the ratio against each capability measure that ran, its
bootstrap interval, whether each side's change is significant, and the text every report prints.

Which probes are safety and capability is not decided here: the caller passes ``Measure``s built from the
probes' declarations (``compsafe.metrics.drift_measures``: the safety headline, and the capability headlines in
rank order, each with its paired comparison values, its test or interval, and its per-item record fields). A
lower-is-better capability (a perplexity) enters as its inverse. The headline is the best-ranked capability
that ran. The printed text always names the capability measure and carries the interval; it says "(n.s.)"
when either side's change is not significant (a declared McNemar test: p >= 0.05; otherwise the change's
interval containing no-change), so no report, table or gate message shows a bare ratio whose interval is
unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compsafe.analysis.drift import (
    STATUS_NO_SAFETY_LOSS,
    STATUS_RATIO,
    STATUS_SAFETY_LOSS_WITHOUT_CAPABILITY_LOSS,
    DriftRatio,
    alignment_drift_ratio,
    capability_from_perplexity,
    describe_drift,
)
from compsafe.analysis.drift_interval import (
    DriftInterval,
    LossSample,
    binary_losses,
    drift_ratio_interval,
    perplexity_losses,
)

Record = dict[str, Any]
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Measure:
    """One side of the drift ratio as its probe declares it (``probes/declarations.py``)."""

    probe: str  # whose comparison and records hold the measure
    label: str  # its name in the display ("MCQA accuracy"); a lower-is-better measure prints as "1/<label>"
    paired: tuple[str, str]  # the comparison's base and variant values on the paired items
    per_item: tuple[str, ...]  # (flag,) for a rate; (nll_sum, n_tokens) for a per-token perplexity
    higher_is_better: bool = True
    test: str | None = None  # the comparison entry holding an exact McNemar test (its ``p_value``)
    change: str | None = None  # else: the comparison entry holding the change's interval
    no_change: float = 0.0  # the interval's value for "no change" (1 for a ratio)

    @property
    def name(self) -> str:
        """The measure as a capability score (higher is better): ``MCQA accuracy``, ``1/perplexity``."""
        return self.label if self.higher_is_better else f"1/{self.label}"

    def score(self, value: float) -> float:
        return value if self.higher_is_better else capability_from_perplexity(value)


def _paired(base: Sequence[Record], variant: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    by_id = {r["item_id"]: r for r in variant}
    pairs = [(b, by_id[b["item_id"]]) for b in base if b["item_id"] in by_id]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _tested(measure: Measure, cmp: dict[str, Any]) -> tuple[float | None, bool]:
    """The McNemar p-value of a measure's change and whether it is significant."""
    p_value = (cmp.get(measure.test or "") or {}).get("p_value")
    return p_value, p_value is not None and p_value < SIGNIFICANCE


def _capability(measure: Measure, cmp: dict[str, Any]) -> tuple[float, float, bool, str]:
    """Base and variant capability scores, whether their change is significant, and the evidence for that."""
    base, variant = measure.score(cmp[measure.paired[0]]), measure.score(cmp[measure.paired[1]])
    if measure.test:
        p_value, significant = _tested(measure, cmp)
        return base, variant, significant, f"{measure.label} McNemar p={p_value:.3g}"
    interval = cmp.get(measure.change or "") or {}
    low, high = interval.get("low"), interval.get("high")
    significant = low is not None and high is not None and (low > measure.no_change or high < measure.no_change)
    bounded = low is not None and high is not None
    evidence = f"{measure.label} {measure.change} CI [{low:.3f}, {high:.3f}]" if bounded else "no CI"
    return base, variant, significant, evidence


def _losses(measure: Measure, base: list[Record], variant: list[Record]) -> LossSample:
    """Per-item losses for the bootstrap: a rate's flag, or a perplexity's per-token NLL sums."""
    if len(measure.per_item) == 1:
        (flag,) = measure.per_item
        # a 0/1 outcome or a graded per-item score (an lm-eval task's f1): the mean of the values either way
        return binary_losses([float(r[flag]) for r in base], [float(r[flag]) for r in variant])
    nll, tokens = measure.per_item
    return perplexity_losses(
        [r[nll] for r in base], [r[tokens] for r in base], [r[nll] for r in variant], [r[tokens] for r in variant]
    )


def display_drift(ratio: DriftRatio, interval: DriftInterval, measure: str, significant: bool) -> str:
    """``13.20 [4.10, 40.30] vs MCQA accuracy``, ``13.20 [2.10, ∞) vs MCQA accuracy (n.s.)``, ..."""
    if ratio.status == STATUS_RATIO and ratio.value is not None:
        text = f"{ratio.value:.2f} {interval.text()}"
    else:
        text = describe_drift(ratio)
    return f"{text} vs {measure}" + ("" if significant else " (n.s.)")


def drift_ratios(
    comparisons: dict[str, dict[str, Any]],
    base_records: dict[str, Sequence[Record]],
    variant_records: dict[str, Sequence[Record]],
    safety: Measure | None,
    capabilities: Sequence[Measure],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Alignment drift ratio of the safety measure against each capability measure that ran, best-ranked
    first (``capabilities`` in rank order; module docstring)."""
    safety_cmp = comparisons.get(safety.probe) if safety is not None else None
    if safety is None or not safety_cmp or safety.paired[0] not in safety_cmp:
        return {}
    p_value, safety_significant = _tested(safety, safety_cmp)
    safety_base, safety_variant = _paired(base_records.get(safety.probe, []), variant_records.get(safety.probe, []))
    safety_losses = _losses(safety, safety_base, safety_variant)
    result: dict[str, Any] = {}
    for measure in capabilities:
        cmp = comparisons.get(measure.probe)
        if not cmp or measure.paired[0] not in cmp:
            continue
        base_cap, variant_cap, cap_significant, cap_evidence = _capability(measure, cmp)
        ratio = alignment_drift_ratio(
            safety_cmp[safety.paired[0]], safety_cmp[safety.paired[1]], base_cap, variant_cap
        )
        capability_pairs = _paired(base_records.get(measure.probe, []), variant_records.get(measure.probe, []))
        interval = (
            drift_ratio_interval(
                safety_losses, _losses(measure, *capability_pairs), n_resamples=n_resamples, seed=seed
            )
            if capability_pairs[0] and safety_base
            else DriftInterval(None, None, 0.95)
        )
        if ratio.status in (STATUS_NO_SAFETY_LOSS, STATUS_SAFETY_LOSS_WITHOUT_CAPABILITY_LOSS):
            significant = safety_significant  # the claim rests on the safety change alone
        else:
            significant = safety_significant and cap_significant and interval.bounded
        result[f"vs_{measure.probe}"] = {
            **ratio.to_dict(),
            "capability_measure": measure.name,
            "interval": interval.to_dict(),
            "capability_change_significant": cap_significant,
            "capability_change_evidence": cap_evidence,
            "significant": significant,
            "display": display_drift(ratio, interval, measure.name, significant),
        }
    if result:
        result["safety_change_p_value"] = p_value
        result["safety_change_significant"] = safety_significant
        result["headline"] = next(iter(result))  # the best-ranked capability measure that ran
    return result
