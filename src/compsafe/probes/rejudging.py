"""Which responses of a probe's records a judge read, so ``compsafe rejudge`` can read them again.

A judging probe declares its judged responses as ``JudgedField`` entries (the item field holding the request
the judge is told was asked, the record field holding the response, and the prefix of the verdict fields);
``rejudge_records`` re-scores all of them in one batched judge call and rewrites the verdict fields, keeping
the earlier judge's reading in ``previous_judges``. Screened records (``probes.screening``) were never
generated and keep their screened verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compsafe.judges.base import judge_all

if TYPE_CHECKING:
    from compsafe.judges.base import RefusalJudge, RefusalVerdict
    from compsafe.probes.base import Item

Record = dict[str, Any]
# Verdict fields of an unprefixed judged response (the refusal-style records of probes.screening).
FULL_FIELDS = ("verdict", "judge_confidence", "refused", "judge_reason", "degenerate")
# Verdict fields of a prefixed judged response (``sae_``, ``clean_``): the label and the refused flag.
SHORT_FIELDS = ("verdict", "refused")


@dataclass(frozen=True)
class JudgedField:
    prompt: str  # item data key: what the judge is told was asked
    response: str  # record key: the response the judge read
    prefix: str = ""  # prefix of the verdict fields ("" -> verdict, refused, ...; "sae_" -> sae_verdict, ...)

    @property
    def names(self) -> tuple[str, ...]:
        return FULL_FIELDS if not self.prefix else SHORT_FIELDS

    def fields(self, verdict: RefusalVerdict) -> dict[str, Any]:
        values = {
            "verdict": verdict.label,
            "judge_confidence": verdict.confidence,
            "refused": verdict.refused,
            "judge_reason": verdict.reason,
            "degenerate": verdict.degenerate,
        }
        return {self.prefix + name: values[name] for name in self.names}


def rejudge_records(
    records: Sequence[Record],
    items: Mapping[str, Item],
    judged: Sequence[JudgedField],
    judge: RefusalJudge,
    previous: str,
) -> list[Record]:
    """Copies of ``records`` with every declared response re-judged by ``judge``; ``previous`` names the old one."""
    out = [dict(r) for r in records]
    todo: list[tuple[int, JudgedField]] = []
    prompts: list[str] = []
    responses: list[str] = []
    for index, record in enumerate(out):
        item = items.get(str(record.get("item_id")))
        if record.get("screened") or item is None:
            continue
        for field in judged:
            if field.response in record and field.prompt in item.data:
                todo.append((index, field))
                prompts.append(str(item.data[field.prompt]))
                responses.append(str(record[field.response]))
    for (index, field), verdict in zip(todo, judge_all(judge, prompts, responses), strict=True):
        record = out[index]
        old = {"judge": previous, **{name: record.get(field.prefix + name) for name in field.names}}
        key = f"{field.prefix}previous_judges"
        record[key] = [*record.get(key, []), old]
        record.update(field.fields(verdict))
    return out
