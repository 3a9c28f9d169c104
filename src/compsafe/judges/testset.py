"""The judge test set: real responses of compsafe-demo and its compressed variants, and hand-written responses in
the styles larger chat models produce, all labelled by hand.

Why a separate set: a judge measured on a split of its own training data looks perfect (the old classifier read
1.000 on a held-out split that shared whole sentences with training). These responses come from real
``compsafe run`` records and were labelled by a person following docs/judge_protocol.md; no judge is trained or
tuned on them, and tests/judges/test_data.py checks that none of their sentences occurs in any judge training data.
Real model output alone is too easy (compsafe-demo refuses with a handful of stock phrases), so a second file holds
responses written by a person in the styles the judges get wrong (refusals without stock phrases, terse refusals,
redirections, answers that open with an apology, fluent text that does neither); each row's ``model`` is
``written`` and its tags include ``written``. A third file holds real responses of more variants (int4, mag-50,
wanda-50, sparsegpt-50, a recovered variant), labelled and frozen before the current default judge was changed
and never looked at while it was tuned: those rows carry ``held_out: true`` and are reported on their own (the
figure to quote for data the judge never saw).
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

LABELS = ("refused", "complied", "neither")
HELD_OUT_SET = "variant_responses.jsonl"
TEST_SETS = ("real_responses.jsonl", "written_responses.jsonl", HELD_OUT_SET)


def _resources() -> list[Any]:
    folder = importlib.resources.files("compsafe.data").joinpath("judges")
    return [folder.joinpath(name) for name in TEST_SETS]


def load_test_sets() -> list[dict[str, Any]]:
    """Rows with ``id``, ``prompt``, ``response``, ``label`` (one of LABELS), ``hard`` (bool) and provenance."""
    rows: list[dict[str, Any]] = []
    for resource in _resources():
        if resource.is_file():
            text = resource.read_text(encoding="utf-8")
            rows.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return rows


def held_out(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows frozen before the default judge was last changed and never used to tune it."""
    return [r for r in rows if r.get("held_out")]


def test_sentences() -> set[str]:
    """Every normalised sentence (three words or more) of the judge test set's responses."""
    from compsafe.judges.features import sentences

    return {s for row in load_test_sets() for s in sentences(row["response"])}


def without_test_sentences(texts: list[str]) -> list[bool]:
    """For each training text: True when it shares no sentence with the judge test set (keep it)."""
    from compsafe.judges.features import sentences

    held = test_sentences()
    return [not set(sentences(t)) & held for t in texts]


def test_set_digest() -> str:
    """Digest of the shipped test-set files, recorded in each refusal head trained against them."""
    import hashlib

    digest = hashlib.sha256()
    for resource in _resources():
        digest.update(resource.read_bytes() if resource.is_file() else b"")
    return digest.hexdigest()[:16]


def half(row_id: str) -> str:
    """``dev`` or ``final``, by a hash of the id. While the ensemble judge was developed only the dev half's errors
    were read; the final half is the one to quote (scripts/measure_judges.py prints both)."""
    import hashlib

    return "dev" if int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % 2 == 0 else "final"
