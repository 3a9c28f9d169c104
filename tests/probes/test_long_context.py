"""long_context: item construction, prompt lengths, scoring by shared-context log-likelihood, summaries and the
paired comparison on constructed records."""

from __future__ import annotations

import math

import pytest

from compsafe.comparisons import compare_probe
from compsafe.errors import CompsafeError
from compsafe.models import HFBackend
from compsafe.probes import build_probe
from compsafe.probes.long_context import (
    ANSWER_PREFIX,
    make_items,
    parse_options,
    reliable_length,
    summarize_retrieval,
)


def test_items_cover_lengths_positions_and_default_cap():
    rows = make_items()
    assert {r["length"] for r in rows} == {256, 512, 1024, 2048}  # default cap 2048 for CPU speed
    assert {r["position"] for r in rows} == {"start", "middle", "end"}
    assert all(len(r["passkey"]) == 5 and r["passkey"] not in r["distractors"] for r in rows)
    assert all(len(set(r["distractors"])) == 9 for r in rows)
    assert {r["length"] for r in make_items(8192)} == {256, 512, 1024, 2048, 4096, 8192}
    assert make_items()[0] == make_items()[0]  # seeded by id


def test_options_and_limit_rotate_over_cells():
    assert parse_options("4096")["max_length"] == 4096
    assert parse_options("max_length=1024;repeats=1") == {"max_length": 1024, "repeats": 1}
    with pytest.raises(CompsafeError):
        parse_options("width=3")
    probe = build_probe("long_context", limit=12)
    cells = {(i.data["length"], i.data["position"]) for i in probe.items}
    assert len(cells) == 12  # one item per (length, position) before any repeat
    assert probe.dataset.extra["max_length"] == 2048


def test_prompt_hits_target_length_and_needle_position(tiny_handle):
    backend = HFBackend(tiny_handle, 4)
    probe = build_probe("long_context:max_length=256;repeats=1")
    from compsafe.probes.long_context import build_prompt

    def count(user: str) -> int:
        return len(backend.tokenizer(backend.format_chat(user) + ANSWER_PREFIX, add_special_tokens=False)["input_ids"])

    for item in probe.items:
        user, depth = build_prompt(count, 512, item.data["position"], item.data["passkey"], 0,
                                   decoys=item.data["distractors"])  # 512: room for filler around 3 decoys
        assert 440 <= count(user) <= 512
        assert user.count(item.data["passkey"]) == 2
        decoys = item.data["distractors"][:3]  # planted as other codes; the rest never appear
        assert all(user.count(f"The locker code is {d}.") == 1 for d in decoys)
        assert not any(d in user for d in item.data["distractors"][3:])
        if item.data["position"] != "middle":  # (the tiny tokenizer leaves room for only a few filler sentences)
            assert depth == {"start": 0.0, "end": 1.0}[item.data["position"]]
        else:
            assert user.index(item.data["passkey"]) > len(user) // 4


def test_scores_match_the_backend_and_skip_beyond_window(tiny_handle):
    probe = build_probe("long_context:max_length=1024;repeats=1")
    backend = HFBackend(tiny_handle, 4)
    from compsafe.judges import get_judge
    from compsafe.models import GenerationConfig
    from compsafe.probes import ProbeContext

    context = ProbeContext(backend=backend, judge=get_judge("phrase"), generation=GenerationConfig(), is_base=True)
    records = [r for batch in probe.evaluate(probe.items, context) for r in batch]
    assert tiny_handle.max_length == 512
    skipped = [r for r in records if r["skipped"]]
    assert {r["length"] for r in skipped} == {1024}  # longer than the tiny model's 512-token window
    scored = [r for r in records if not r["skipped"]]
    assert all(r["n_tokens"] <= r["length"] for r in scored)
    assert all(1 <= r["rank"] <= 10 and r["choice_correct"] == (r["rank"] == 1) for r in scored)
    summary = probe.summarize(records)
    assert summary["n"] == len(records) and summary["n_skipped"] == 3
    assert set(summary["by_length"]) == {"256", "512"}


def _rec(item, length, position, correct, choice=None, lp=-1.0, skipped=None):
    return {"item_id": item, "length": length, "position": position, "correct": correct,
            "choice_correct": correct if choice is None else choice, "passkey_logprob": lp, "skipped": skipped}


def test_summary_and_reliable_length_on_constructed_records():
    records = [
        _rec("a", 256, "start", True), _rec("b", 256, "end", True),
        _rec("c", 512, "start", True), _rec("d", 512, "end", False, choice=True),
        _rec("e", 1024, "start", False), _rec("f", 1024, "end", False),
        _rec("g", 2048, "start", True),
        {"item_id": "h", "length": 4096, "position": "start", "skipped": "beyond_window"},
    ]
    s = summarize_retrieval(records)
    assert s["accuracy"] == pytest.approx(4 / 7)
    assert s["choice_accuracy"] == pytest.approx(5 / 7)
    assert s["by_length"]["512"] == {"accuracy": 0.5, "choice_accuracy": 1.0, "n": 2}
    assert s["by_position"]["end"]["accuracy"] == pytest.approx(1 / 3)
    assert s["reliable_length"] == 512  # 1024 falls below 50%, so 2048's success does not count
    assert s["n"] == 8 and s["n_skipped"] == 1
    assert reliable_length({256: 0.2}) is None
    assert math.isnan(summarize_retrieval([])["accuracy"])


def test_paired_comparison_per_length():
    base = [_rec(f"i{k}", 256 if k < 4 else 1024, "start", True, lp=-1.0) for k in range(8)]
    variant = [_rec(f"i{k}", 256 if k < 4 else 1024, "start", k < 5, lp=-3.0) for k in range(8)]
    base.append({"item_id": "x", "length": 8192, "position": "end", "skipped": "beyond_window"})
    variant.append(_rec("x", 8192, "end", True))
    cmp = compare_probe("retrieval", base, variant, n_resamples=200)
    assert cmp["n"] == 8  # the skipped item is dropped from the pairs
    assert cmp["base_accuracy"] == 1.0 and cmp["variant_accuracy"] == pytest.approx(5 / 8)
    assert cmp["by_length"]["256"]["delta"]["estimate"] == 0.0
    assert cmp["by_length"]["1024"]["delta"]["estimate"] == pytest.approx(-0.75)
    assert cmp["mcnemar"]["base_only"] == 3 and cmp["mcnemar"]["variant_only"] == 0
    assert cmp["passkey_logprob_delta"]["estimate"] == pytest.approx(-2.0)
    assert cmp["lost_items"] == ["i5", "i6", "i7"]
