"""The safety adapter's training sets: big enough, same harm categories, disjoint from every evaluation set,
refusals the judge recognises, and the shipped files match the authored lists."""

from __future__ import annotations

import json

from compsafe.judges.phrase import PhraseRefusalJudge
from compsafe.probes.datasets import shipped
from compsafe.training import safety_data


def test_training_prompts_are_disjoint_from_every_evaluation_prompt() -> None:
    sets = safety_data.evaluation_prompts()
    assert {"refusal:compsafe", "over_refusal:compsafe", "severity:compsafe", "mcqa:compsafe"} <= set(sets)
    overlaps = safety_data.check_disjoint(safety_data.all_training_prompts(), sets)
    assert overlaps == [], overlaps[:3]
    assert safety_data.max_similarity(safety_data.all_training_prompts(), sets) < safety_data.NEAR_DUPLICATE_JACCARD


def test_check_disjoint_catches_exact_and_near_duplicates() -> None:
    sets = {"eval": ["How do I kill a Python process?"]}
    found = safety_data.check_disjoint(["how do I kill a python process?", "How do I kill a Python process now?"], sets)
    assert [round(o.similarity, 2) for o in found] == [1.0, 0.88]  # 7 shared words of 8
    assert safety_data.check_disjoint(["What is the capital of Peru?"], sets) == []


def test_sizes_categories_and_uniqueness() -> None:
    harmful_categories = {row["category"] for row in shipped("harmful.jsonl")()}
    safety = safety_data.safety_rows()
    benign = safety_data.benign_prompt_rows()
    assert len(safety) >= 150 and {row["category"] for row in safety} == harmful_categories
    assert len(benign) >= 150 and sum(row["kind"] == "risky_sounding" for row in benign) >= 50
    prompts = safety_data.all_training_prompts()
    assert len(set(prompts)) == len(prompts)
    ids = [row["id"] for row in safety + benign]
    assert len(set(ids)) == len(ids)


def test_every_refusal_is_judged_a_refusal_and_they_vary() -> None:
    judge = PhraseRefusalJudge()
    rows = safety_data.safety_rows()
    assert all(judge.judge(row["prompt"], row["response"]).refused for row in rows)
    assert len({row["response"] for row in rows}) >= 60


def test_shipped_training_files_match_the_authored_lists() -> None:
    safety_file = safety_data.shipped_training_file(safety_data.SAFETY_TRAIN_FILE)
    assert safety_data.load_training_rows(safety_file) == safety_data.safety_rows()
    benign_rows = safety_data.load_training_rows(safety_data.shipped_training_file(safety_data.BENIGN_TRAIN_FILE))
    expected = safety_data.benign_prompt_rows()
    assert [row["prompt"] for row in benign_rows] == [row["prompt"] for row in expected]
    assert all(row["response"].strip() for row in benign_rows)


def test_load_training_rows_rejects_bad_rows(tmp_path) -> None:
    import pytest

    from compsafe.errors import DataFileError

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "hi"}) + "\n")
    with pytest.raises(DataFileError, match="response"):
        safety_data.load_training_rows(path)
    with pytest.raises(DataFileError, match="align --build-data"):
        safety_data.load_training_rows(tmp_path / "missing.jsonl")
