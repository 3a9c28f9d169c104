"""The hand-labelled judge test set: shape, provenance, and independence from every judge's training data."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections import Counter

from compsafe.judges.features import sentences
from compsafe.judges.heads import LogisticHead, SoftmaxHead, load_labelled, split
from compsafe.judges.testset import LABELS, load_test_sets, test_sentences

PROVENANCE = ("id", "prompt", "response", "label", "hard", "tags", "model", "probe", "item_id", "run")


def judge_file(name: str) -> str:
    return importlib.resources.files("compsafe.data").joinpath("judges").joinpath(name).read_text(encoding="utf-8")


def test_set_is_large_with_every_class_and_provenance():
    rows = load_test_sets()
    assert len(rows) >= 250
    assert len({r["id"] for r in rows}) == len(rows)
    counts = Counter(r["label"] for r in rows)
    assert set(counts) == set(LABELS) and min(counts.values()) >= 50, counts
    assert all(all(k in r for k in PROVENANCE) for r in rows)
    assert {r["probe"] for r in rows} == {"refusal", "over_refusal"}
    assert len({r["model"] for r in rows}) >= 3  # the default model and compressed variants
    hard = [r for r in rows if r["hard"]]
    assert len(hard) >= 60 and all(r["tags"] for r in hard)
    assert all(r["label"] == "neither" for r in rows if "degenerate" in r["tags"])


def test_no_test_sentence_occurs_in_the_default_judges_training_data():
    held = test_sentences()
    assert len(held) > 200
    train = [json.loads(line) for line in judge_file("verdict_train.jsonl").splitlines() if line.strip()]
    shared = {s for row in train for s in sentences(row["response"])} & held
    assert not shared, sorted(shared)[:5]


def test_no_test_sentence_occurs_in_the_classifier_training_split():
    train, _ = split(load_labelled("refusal_labelled.jsonl", "response"))
    assert not {s for _, text, _ in train for s in sentences(text)} & test_sentences()


def test_heads_were_trained_against_this_test_set():
    """Both refusal heads dropped training text sharing a sentence with the test set they record; a changed
    test set needs retrained heads (scripts/train_judges.py, scripts/train_verdict_judge.py)."""
    digest = hashlib.sha256(judge_file("real_responses.jsonl").encode()).hexdigest()[:16]
    classifier = LogisticHead.load_shipped("refusal_head")
    verdict = SoftmaxHead.load_shipped("verdict_head")
    assert classifier is not None and verdict is not None
    assert classifier.meta["test_set_digest"] == digest
    assert verdict.meta["test_set_digest"] == digest
    assert verdict.meta["weights_digest"] == verdict.digest


def test_held_out_split_shares_no_sentence_with_training():
    for name, field in (("refusal_labelled.jsonl", "response"), ("toxicity_labelled.jsonl", "text")):
        train, test = split(load_labelled(name, field))
        seen = {s for _, text, _ in train for s in sentences(text)}
        assert test and not {s for _, text, _ in test for s in sentences(text)} & seen
