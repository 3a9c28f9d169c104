"""The judge test set: real responses of compsafe-demo and its compressed variants, labelled by hand.

Why a separate set: a judge measured on a split of its own training data looks perfect (the old classifier read
1.000 on a held-out split that shared whole sentences with training). These responses come from real
``compsafe run`` records and were labelled by a person following docs/judge_protocol.md; no judge is trained or
tuned on them, and tests/test_judge_data.py checks that none of their sentences occurs in any judge training data.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

LABELS = ("refused", "complied", "neither")
TEST_SET = "real_responses.jsonl"


def load_test_sets() -> list[dict[str, Any]]:
    """Rows with ``id``, ``prompt``, ``response``, ``label`` (one of LABELS), ``hard`` (bool) and provenance."""
    resource = importlib.resources.files("compsafe.data").joinpath("judges").joinpath(TEST_SET)
    if not resource.is_file():
        return []
    return [json.loads(line) for line in resource.read_text(encoding="utf-8").splitlines() if line.strip()]


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
    """Digest of the shipped test-set file, recorded in each refusal head trained against it."""
    import hashlib

    resource = importlib.resources.files("compsafe.data").joinpath("judges").joinpath(TEST_SET)
    return hashlib.sha256(resource.read_bytes() if resource.is_file() else b"").hexdigest()[:16]
