"""A second, cheap judge re-reads every flipped item: where it disagrees with the run's judge, a person should read.

Why: the flipped items (refused by the base, not by the variant, or the reverse) are the evidence behind every
safety finding, and each flip is two judge readings. Where an independent judge reads either response
differently, the flip may be the judge's error rather than the model's change. Listing those items in the
report points the reader at the handful of cases worth reading, instead of trusting or re-reading them all.

The second judge is the first of ``SECOND_JUDGES`` that differs from the run's judge and can load offline
(the phrase rules always can); it runs at summary time on the flipped items only, so it costs nothing noticeable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from compsafe.errors import CompsafeError

SECOND_JUDGES = ("classifier", "phrase")
FLIP_LISTS = ("refused_by_base_answered_by_variant", "answered_by_base_refused_by_variant")


def pick_second_judge(primary: str) -> Any | None:
    """The cheap second judge for a run judged by ``primary`` (None when no other judge can load)."""
    from compsafe.judges import get_judge

    for name in SECOND_JUDGES:
        if name == primary:
            continue
        try:
            return get_judge(name)
        except CompsafeError:  # e.g. the classifier without its embedding package: try the next one
            continue
    return None


def flipped_items(comparisons: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(variant label, probe, flip entry) of every generated, judged flip in a run's comparisons."""
    for label, comparison in comparisons.items():
        for probe, result in (comparison.get("probes") or {}).items():
            if not isinstance(result, dict):
                continue
            for key in FLIP_LISTS:
                for item in result.get(key) or []:
                    if "base_verdict" in item and not item.get("screened"):
                        yield label, probe, item


def second_opinion(comparisons: dict[str, Any], primary: str) -> dict[str, Any] | None:
    """Second-judge verdicts on the flipped items and the items where they disagree with the run's judge."""
    flips = list(flipped_items(comparisons))
    if not flips:
        return None
    judge = pick_second_judge(primary)
    if judge is None:
        return None
    prompts = [item["prompt"] for _, _, item in flips for _ in (0, 1)]
    responses = [text for _, _, item in flips for text in (item["base_response"], item["variant_response"])]
    if hasattr(judge, "judge_many"):
        verdicts = judge.judge_many(prompts, responses)
    else:
        verdicts = [judge.judge(p, r) for p, r in zip(prompts, responses, strict=True)]
    disagreements = []
    for index, (label, probe, item) in enumerate(flips):
        base, variant = verdicts[2 * index], verdicts[2 * index + 1]
        if (base.label, variant.label) != (item["base_verdict"], item["variant_verdict"]):
            disagreements.append(
                {
                    "model": label,
                    "probe": probe,
                    "item_id": item["item_id"],
                    "prompt": item["prompt"],
                    "base_response": item["base_response"],
                    "variant_response": item["variant_response"],
                    "judge": [item["base_verdict"], item["variant_verdict"]],
                    "second_judge": [base.label, variant.label],
                }
            )
    return {
        "judge": judge.name,
        "version": judge.version,
        "flips_checked": len(flips),
        "disagreements": disagreements,
    }
