"""Paired refusal statistics for the same requests asked in several languages (the ``multilingual`` probe).

Why parallel items: each request exists in every language, so a language's refusal rate and its gap to
English are measured on the same requests (a paired comparison, not two samples of different prompts), and
compression's effect on that gap is a difference of paired differences on the same items.

A record is one parallel request (``item_id``, ``kind`` harmful | benign) holding, per language ``L``,
``L_refused`` and ``L_verdict``; languages are read from the records in the order they were written (English
first). Per language, base and variant are paired on the items: the change of the refusal rate (harmful
items) and of the false-refusal rate (benign items) with the paired interval and an exact McNemar test, and
the refusals lost and gained. The gap of a language is rate(L) - rate(English) on the same items; its change
under compression is mean over items of (variant_L - variant_en) - (base_L - base_en). The pooled rates over
every language treat a request's versions as one cluster: their bootstrap resamples requests, not (request,
language) pairs, which are not independent.

Intervals never claim more than the data hold: a percentile bootstrap has zero width when no item changed (the
failure ``paired_proportion_delta`` avoids with Tango's score interval), so each interval here is the wider of
its bootstrap and ``paired_proportion_delta``'s -- on the pooled pairs for the pooled rate, and for a gap
change the difference of the two languages' intervals at 97.5% each (Bonferroni: at least 95% together).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compsafe.analysis.paired import mcnemar_exact, paired_bootstrap_mean_delta, paired_proportion_delta
from compsafe.analysis.resampling import paired_bootstrap_statistic

Record = dict[str, Any]
REFERENCE = "en"
SUFFIX = "_refused"
KINDS = {"harmful": "by_language", "benign": "false_refusal_by_language"}


def record_languages(records: Sequence[Record]) -> list[str]:
    """Languages a record set holds decisions for, in the order written (the reference first)."""
    if not records:
        return []
    return [key.removesuffix(SUFFIX) for key in records[0] if key.endswith(SUFFIX) and key != "refused"]


def refused(records: Sequence[Record], language: str) -> list[bool]:
    return [bool(r[f"{language}{SUFFIX}"]) for r in records]


def _rate(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _pooled(records: Sequence[Record], languages: Sequence[str]) -> Callable[[np.ndarray], float | None]:
    """Refusal share over every (request, language) of the requests picked by an index array (a cluster)."""
    table = np.array([[bool(r[f"{lang}{SUFFIX}"]) for lang in languages] for r in records], dtype=float)
    return lambda idx: float(table[idx].mean()) if len(idx) and table.size else None


def _wider(interval: dict[str, Any] | None, low: float, high: float, method: str) -> dict[str, Any] | None:
    """The interval widened to cover [low, high] (see the module docstring), its method named."""
    if interval is None or interval.get("low") is None or interval.get("high") is None:
        return interval
    return {**interval, "low": min(interval["low"], low), "high": max(interval["high"], high),
            "method": f"wider of the bootstrap and {method}"}  # fmt: skip


def _paired(base: Sequence[bool], variant: Sequence[bool], confidence: float, seed: int) -> tuple[float, float]:
    interval = paired_proportion_delta(base, variant, confidence=confidence, seed=seed)
    return interval.low, interval.high


def _language_entry(base: Sequence[Record], variant: Sequence[Record], language: str, *, n_resamples: int,
                    seed: int) -> dict[str, Any]:  # fmt: skip
    b, v = refused(base, language), refused(variant, language)
    test = mcnemar_exact(b, v)
    return {
        "n": len(b),
        "base_rate": _rate(b),
        "variant_rate": _rate(v),
        "delta": paired_proportion_delta(b, v, n_resamples=n_resamples, seed=seed).to_dict(),
        "mcnemar": test.to_dict(),
        "lost": test.base_only,
        "gained": test.variant_only,
    }


def _gap_entry(base: Sequence[Record], variant: Sequence[Record], language: str, *, n_resamples: int,
               seed: int) -> dict[str, Any]:  # fmt: skip
    """The language's gap to the reference in each model, and the paired change of the gap."""
    base_gaps = [float(x) - float(y) for x, y in zip(refused(base, language), refused(base, REFERENCE), strict=True)]
    variant_gaps = [float(x) - float(y) for x, y in zip(refused(variant, language), refused(variant, REFERENCE),
                                                        strict=True)]  # fmt: skip
    own = _paired(refused(base, language), refused(variant, language), 0.975, seed)
    reference = _paired(refused(base, REFERENCE), refused(variant, REFERENCE), 0.975, seed)
    delta = paired_bootstrap_mean_delta(base_gaps, variant_gaps, n_resamples=n_resamples, seed=seed).to_dict()
    return {
        "n": len(base_gaps),
        "base_gap": float(np.mean(base_gaps)),
        "variant_gap": float(np.mean(variant_gaps)),
        "delta": _wider(delta, own[0] - reference[1], own[1] - reference[0],
                        "the difference of the languages' 97.5% paired intervals"),
    }


def compare_languages(base: list[Record], variant: list[Record], *, n_resamples: int, seed: int) -> dict[str, Any]:
    """Per language and kind: paired changes, McNemar tests, lost/gained, gap changes; pooled headlines."""
    kwargs = {"n_resamples": n_resamples, "seed": seed}
    languages = record_languages(base)
    result: dict[str, Any] = {"n": len(base)}
    for kind, key in KINDS.items():
        pairs = [(b, v) for b, v in zip(base, variant, strict=True) if b.get("kind") == kind]
        b_rows, v_rows = [p[0] for p in pairs], [p[1] for p in pairs]
        if not pairs:
            continue
        pooled = paired_bootstrap_statistic(len(pairs), _pooled(b_rows, languages), _pooled(v_rows, languages),
                                            **kwargs)  # fmt: skip
        head = "refusal" if kind == "harmful" else "false_refusal"
        flat_base = [x for lang in languages for x in refused(b_rows, lang)]
        flat_variant = [x for lang in languages for x in refused(v_rows, lang)]
        low, high = _paired(flat_base, flat_variant, 0.95, seed)
        pooled["delta"] = _wider(pooled["delta"], low, high, "the paired interval of the pooled pairs")  # type: ignore[arg-type]
        result[head] = {"base_rate": pooled["base"], "variant_rate": pooled["variant"], "delta": pooled["delta"],
                        "n": len(pairs)}  # fmt: skip
        result[key] = {lang: _language_entry(b_rows, v_rows, lang, **kwargs) for lang in languages}
        result[f"{head}_gap_change_by_language"] = {
            lang: _gap_entry(b_rows, v_rows, lang, **kwargs) for lang in languages if lang != REFERENCE
        }
        if kind == "harmful":
            result["base_rate"], result["variant_rate"], result["delta"] = (
                pooled["base"], pooled["variant"], pooled["delta"])  # fmt: skip
            result["lost_by_language"] = {lang: entry["lost"] for lang, entry in result[key].items()}
    return result
