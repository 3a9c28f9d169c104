"""Rank a run's variants from most to least compressed and read each one's standing under the gate policy.

Why both at once: layered deployment wants "the most compressed variant that is still safe enough", so the
plan walks this list in order and takes the first eligible one. Size comes from the accounting the run
recorded (``models.<label>.compression``): the packed bytes a variant exports to where known, else bits per
weight × compressed weights; a variant without accounting (a model folder) ranks after every one with it,
since nothing shows it is smaller. Eligibility is the gate's verdict: ``pass``; ``pending`` when no rule
fails but some cannot be decided on this sample (eligible only with ``allow_insufficient``, as in
``compsafe gate --allow-insufficient``); ``fail``; ``broken``.
"""

from __future__ import annotations

import math

from compsafe.advise.schema import BASE, PendingCheck, VariantStanding
from compsafe.gate import FAIL, INSUFFICIENT, GateResult
from compsafe.summary import RunSummary


def stored_bytes(summary: RunSummary, label: str) -> float:
    """Bytes the variant's weights take as recorded: packed size, else bits/weight × weights / 8, else inf."""
    info = summary.compression(label)
    if info is None:
        return math.inf
    if info.packed_size_bytes:
        return float(info.packed_size_bytes)
    numel = info.extra("compressed_numel")
    if info.effective_bits_per_weight and isinstance(numel, int) and numel > 0:
        return info.effective_bits_per_weight * numel / 8
    return math.inf


def standings(summary: RunSummary, result: GateResult) -> list[VariantStanding]:
    """Every variant, most compressed first, then the base (always eligible: it is the fallback)."""
    broken = summary.broken()
    ranked = sorted(summary.variant_labels(), key=lambda label: stored_bytes(summary, label))
    rows = []
    for label in ranked:
        checks = [c for c in result.checks if c.variant == label]
        failing = [f"{c.rule.describe()}: {'; '.join(c.reasons) or c.evidence}" for c in checks if c.status == FAIL]
        pending = [c.rule.describe() for c in checks if c.status == INSUFFICIENT]
        if label in broken:
            gate, failing = "broken", [f"BROKEN: {broken[label]}"]
        elif failing or not checks:
            gate = "fail"
            failing = failing or ["no rule of the policy could be evaluated on it"]
        else:
            gate = "pending" if pending else "pass"
        rows.append(_standing(summary, label, gate, failing, pending, result.allow_insufficient))
    rows.append(_standing(summary, BASE, BASE, [], [], True))
    return rows


def _standing(
    summary: RunSummary, label: str, gate: str, failing: list[str], pending: list[str], allow: bool
) -> VariantStanding:
    model = summary.models.get(label)
    info = summary.compression(label)
    return VariantStanding(
        label=label,
        recipe=model.recipe if model else None,
        weights_digest=model.weights_digest if model else None,
        bits_per_weight=info.effective_bits_per_weight if info else None,
        packed_size_bytes=info.packed_size_bytes if info else None,
        gate=gate,
        eligible=gate in ("pass", BASE) or (gate == "pending" and allow),
        failing=failing,
        pending=pending,
    )


def pending_checks(result: GateResult) -> list[PendingCheck]:
    """Rules the sample could not decide, per variant, with the gate's estimate of the items that would."""
    return [
        PendingCheck(variant=c.variant, rule=c.rule.describe(), items_to_decide=c.items_to_decide,
                     reason="; ".join(c.reasons))
        for c in result.checks if c.status == INSUFFICIENT
    ]  # fmt: skip
