"""Paired comparison of per-item task scores (lm-eval tasks through ``--probes lmeval:TASK``).

Why not the MCQA comparator: an lm-eval task's per-item metric may be a 0/1 outcome (acc, exact_match) or a
graded score (f1, rouge), so the headline change is a paired bootstrap interval on the per-item mean, which
holds for both; an exact McNemar test is added when every score is 0 or 1. Each other per-item metric the
task writes (``acc_norm,none``, ``exact_match,flexible-extract``) gets the same interval under ``by_metric``.
Metrics that lm-eval aggregates over the whole corpus (BLEU, perplexity) have no per-item value to pair and
appear only in each model's summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from compsafe.analysis.paired import mcnemar_exact, paired_bootstrap_mean_delta

Record = dict[str, Any]


def item_number(value: Any) -> float | None:
    """A per-item metric value as a finite float (bools count as 0/1), else None (tuples, text, NaN)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _paired_values(base: Sequence[Record], variant: Sequence[Record], read) -> tuple[list[float], list[float]]:  # noqa: ANN001
    pairs = [(item_number(read(b)), item_number(read(v))) for b, v in zip(base, variant, strict=True)]
    kept = [(b, v) for b, v in pairs if b is not None and v is not None]
    return [b for b, _ in kept], [v for _, v in kept]


def compare_task_scores(base: list[Record], variant: list[Record], *, n_resamples: int, seed: int) -> dict[str, Any]:
    """Headline score change (interval; McNemar when binary), the items whose score changed, and every per-item
    metric's change."""
    kwargs = {"n_resamples": n_resamples, "seed": seed}
    result: dict[str, Any] = {"n": len(base)}
    b, v = _paired_values(base, variant, lambda r: r.get("score"))
    if b:
        result.update(
            n_scored=len(b),
            base_score=sum(b) / len(b),
            variant_score=sum(v) / len(v),
            delta=paired_bootstrap_mean_delta(b, v, **kwargs).to_dict(),
            score_changed=[
                rb["item_id"] for rb, rv in zip(base, variant, strict=True) if rb.get("score") != rv.get("score")
            ],
        )
        if set(b) | set(v) <= {0.0, 1.0}:
            result["mcnemar"] = mcnemar_exact([x == 1.0 for x in b], [x == 1.0 for x in v]).to_dict()
    by_metric = {}
    names = sorted({name for r in base for name in (r.get("metrics") or {})})
    for name in names:
        mb, mv = _paired_values(base, variant, lambda r, name=name: (r.get("metrics") or {}).get(name))
        if mb:
            by_metric[name] = {
                "n": len(mb),
                "base": sum(mb) / len(mb),
                "variant": sum(mv) / len(mv),
                "delta": paired_bootstrap_mean_delta(mb, mv, **kwargs).to_dict(),
            }
    result["by_metric"] = by_metric
    return result
