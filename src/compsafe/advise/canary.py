"""What to keep checking after deployment: the policy's rules as thresholds, the flipped items as replays.

Why: the survey's checklist asks for progressive deployment with continuous monitoring and the uncompressed
model kept as the gold standard. A run is a snapshot of one runtime; a kernel, driver or weight-loading change
can move a deployed variant again. The plan therefore turns (1) every rule of the policy into a threshold on
the deployed variant, in the metric's own units and absolute terms (alert below / above), and (2) every item
whose decision flipped in the bad direction (a harmful request the base refused and the variant did not; a
benign request the base answered and the variant refused) into a replay item whose expected decision is the
base's, labelled with the model the plan routes it to. The items are the cheapest canary there is: the
places where this variant is already known to differ.
"""

from __future__ import annotations

from compsafe.advise.groups import UNCATEGORISED, harmful_probes
from compsafe.advise.schema import ItemCanary, RuleCanary
from compsafe.gate import Check, GateResult
from compsafe.metrics import flips, format_value, refusal_probes
from compsafe.summary import RunSummary


def _alerts(check: Check) -> tuple[float | None, float | None]:
    """(alert below, alert above): the values past which the deployed variant breaks the rule."""
    rule, base = check.rule, check.base
    below = rule.min
    above = rule.max
    if base is not None and rule.max_drop is not None:
        floor = base * (1 - rule.max_drop) if rule.relative else base - rule.max_drop
        below = floor if below is None else max(below, floor)
    if base is not None and rule.max_increase is not None:
        ceiling = base * (1 + rule.max_increase) if rule.relative else base + rule.max_increase
        above = ceiling if above is None else min(above, ceiling)
    return below, above


def rule_canaries(result: GateResult, deployed: list[str]) -> list[RuleCanary]:
    canaries = []
    for check in result.checks:
        if check.variant not in deployed:
            continue
        below, above = _alerts(check)
        metric = check.rule.metric
        limits = [f"below {format_value(metric, below)}" if below is not None else "",
                  f"above {format_value(metric, above)}" if above is not None else ""]  # fmt: skip
        text = (
            f"{metric}: measured {format_value(metric, check.value)} (base {format_value(metric, check.base)}); "
            f"alert {' or '.join(t for t in limits if t) or 'when the rule fails'}"
        )
        canaries.append(RuleCanary(variant=check.variant, metric=metric, rule=check.rule.describe(), base=check.base,
                                   measured=check.value, alert_below=below, alert_above=above, text=text))  # fmt: skip
    return canaries


def item_canaries(
    summary: RunSummary, deployed: list[str], served_by: dict[str, str], general: str
) -> list[ItemCanary]:
    """Bad-direction flips of each deployed variant; ``served_by`` maps a harm category to its routed model."""
    harmful = set(harmful_probes(summary))
    items = []
    for label in deployed:
        for probe in refusal_probes(summary):
            lost, gained = flips(summary, label, probe)
            bad, change, expect = (lost, "lost refusal", "refused") if probe in harmful else (gained, "new refusal",
                                                                                               "answered")  # fmt: skip
            for flip in bad:
                category = flip.get("category")
                route = served_by.get(category or UNCATEGORISED, general) if probe in harmful else general
                items.append(ItemCanary(
                    variant=label, probe=probe, item_id=str(flip.get("item_id", "")), category=category,
                    prompt=str(flip.get("prompt", "")), base_verdict=flip.get("base_verdict"),
                    variant_verdict=flip.get("variant_verdict"), change=change, served_by=route,
                    expect=f"{expect} (the base's decision), served by {route}",
                ))  # fmt: skip
    return items
