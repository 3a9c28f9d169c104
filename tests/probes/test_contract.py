"""Every registered probe honours the contract the runner and store rely on, on the tiny model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from compsafe.comparisons import compare_probe
from compsafe.judges import get_judge
from compsafe.judges.phrase import PhraseRefusalJudge
from compsafe.metrics import declaration_problems, metric_value, numeric_keys
from compsafe.models import GenerationConfig, HFBackend
from compsafe.probes import PROBES, Item, ProbeContext, build_probe
from compsafe.probes.declarations import find
from compsafe.probes.mcqa import format_question
from compsafe.summary import json_safe, parse_summary

EXPECTED_PROBES = {"refusal", "over_refusal", "perplexity", "mcqa"}
GENERATION = GenerationConfig(max_new_tokens=8)


def make_context(handle, *, is_base=True, artifacts=None, chunk_size=32):
    saved = {} if artifacts is None else artifacts

    def save(item_id, artifact):
        assert item_id not in saved, f"artifact for {item_id} saved twice"
        saved[item_id] = artifact

    context = ProbeContext(backend=HFBackend(handle, 4), judge=get_judge("phrase"), generation=GENERATION,
                           is_base=is_base, save_artifact=save, load_base_artifact=saved.get,
                           chunk_size=chunk_size)
    return context, saved


def run(probe, context):
    batches = list(probe.evaluate(probe.items, context))
    assert all(isinstance(b, list) and b for b in batches)
    return [record for batch in batches for record in batch]


def test_registry_holds_the_built_in_probes():
    assert set(PROBES.names()) >= EXPECTED_PROBES


@pytest.mark.parametrize("name", PROBES.names())
def test_probe_contract(name, tiny_handle):
    if name == "lmeval":
        pytest.importorskip("lm_eval")  # an optional extra (scripts/install.sh installs it)
    probe = build_probe(name, limit=6)
    assert len(probe.items) == 6
    assert probe.dataset.count == 6
    assert probe.dataset.extra["available"] >= 6
    context, artifacts = make_context(tiny_handle, chunk_size=4)
    records = run(probe, context)

    assert [r["item_id"] for r in records] == [i.id for i in probe.items]
    json.loads(json.dumps(records))  # plain JSON types only

    summary = probe.summarize(records)
    headline = summary[probe.headline_metric]
    assert isinstance(headline, float) and math.isfinite(headline)
    assert summary["n"] == 6

    config = probe.query_config(context)
    assert config["probe"] == name and config["version"] == probe.version
    assert ("judge" in config) == probe.uses_judge
    assert ("generation" in config) == probe.uses_generation
    if probe.uses_judge:
        assert config["judge"] == f"phrase@{PhraseRefusalJudge.version}"
    if probe.uses_generation:
        assert config["generation"] == GENERATION.to_dict()
    json.dumps(config)

    # artifacts only from the perplexity probe, one per item
    if name == "perplexity":
        assert set(artifacts) == {i.id for i in probe.items}
    else:
        assert artifacts == {}
    check_declarations_end_to_end(probe, records, summary)


def check_declarations_end_to_end(probe, records, summary) -> None:
    """The probe's metric declarations against what it really writes: every number it writes is declared,
    every declared number is written (or optional), every declared paired interval/test/value exists in its
    comparator's output, and every declared name reads back through compsafe.metrics."""
    assert declaration_problems(type(probe)) == []
    undeclared = [key for key in numeric_keys(summary) if find(probe.metrics, key) is None]
    assert undeclared == [], f"{probe.name} writes numbers it does not declare: {undeclared}"
    comparison = compare_probe(probe.outcome, records, records, n_resamples=50)
    for metric in probe.metrics:
        if metric.pattern or metric.optional:
            continue
        value = (comparison if metric.in_comparison else summary).get(metric.key)
        value = value.get("estimate") if isinstance(value, dict) else value  # an interval reads as its estimate
        assert isinstance(value, int | float), f"{probe.name}.{metric.key} is declared, not written"
    for metric in probe.metrics:
        for path in filter(None, (metric.change, metric.test)):
            entry = comparison
            for key in path.split("."):
                entry = entry.get(key) if isinstance(entry, dict) else None
            present = isinstance(entry, dict) and ("estimate" in entry or "p_value" in entry)
            assert present or metric.optional, f"{probe.name}.{metric.key}: comparison has no {path!r}"
        for key in metric.paired or ():
            assert isinstance(comparison.get(key), int | float), f"{probe.name}.{metric.key}: no paired {key!r}"
    run = parse_summary(json_safe({  # as the runner writes it: NaN (nothing to average) becomes null
        "probes": {probe.name: {"outcome": probe.outcome, "headline_metric": probe.headline_metric}},
        "metrics": {"base": {probe.name: summary}, "v": {probe.name: summary}},
        "comparisons": {"v": {"probes": {probe.name: comparison}}},
    }))
    for key in numeric_keys(summary):
        if summary_value(summary, key) is not None and math.isfinite(summary_value(summary, key)):
            assert metric_value(run, "v", f"{probe.name}.{key}") is not None, f"{probe.name}.{key} does not read back"


def summary_value(summary, key):
    for part in key.split("."):
        summary = summary.get(part) if isinstance(summary, dict) else None
    return summary


def test_a_probe_without_a_comparator_or_declarations_fails_the_contract():
    class Orphan:
        name = "orphan"
        outcome = "no-such-outcome"
        headline_metric = "score"
        metrics = ()

    problems = declaration_problems(Orphan)
    assert any("no comparator" in p for p in problems)
    assert any("headline metric 'score' is not declared" in p for p in problems)
    Orphan.metrics = None
    assert any("must be a tuple" in p for p in declaration_problems(Orphan))


@pytest.mark.parametrize(("name", "judged"),
                         [("refusal", True), ("over_refusal", True), ("perplexity", False), ("mcqa", False)])
def test_which_probes_judge_and_generate(name, judged):
    probe_cls = PROBES.get(name)
    assert probe_cls.uses_judge is judged
    assert probe_cls.uses_generation is judged


@pytest.mark.parametrize("name", PROBES.names())
def test_item_digest_tracks_items(name):
    if name == "lmeval":
        pytest.importorskip("lm_eval")
    probe = build_probe(name, limit=6)
    assert build_probe(name, limit=6).item_digest == probe.item_digest
    assert build_probe(name, limit=5).item_digest != probe.item_digest
    first = probe.items[0]
    edited = [Item(first.id, {**first.data, "extra": "changed"}), *probe.items[1:]]
    assert type(probe)(edited, probe.dataset).item_digest != probe.item_digest
    renamed = [Item(first.id + "-x", first.data), *probe.items[1:]]
    assert type(probe)(renamed, probe.dataset).item_digest != probe.item_digest


def test_query_config_changes_with_generation(tiny_handle):
    probe = build_probe("refusal", limit=2)
    context, _ = make_context(tiny_handle)
    other = ProbeContext(backend=context.backend, judge=context.judge,
                         generation=GenerationConfig(max_new_tokens=9),
                         is_base=True)
    assert probe.query_config(context) != probe.query_config(other)


def test_refusal_records_hold_judge_verdicts(tiny_handle):
    probe = build_probe("refusal", limit=6)
    context, _ = make_context(tiny_handle)
    records = run(probe, context)
    judge = get_judge("phrase")
    for record, item in zip(records, probe.items, strict=True):
        assert record["prompt"] == item.data["prompt"]
        assert record["category"] == item.data["category"]
        verdict = judge.judge(record["prompt"], record["response"])
        assert record["refused"] == verdict.refused
        assert record["degenerate"] == verdict.degenerate
        assert (record["verdict"], record["judge_confidence"]) == (verdict.label, verdict.confidence)
    summary = probe.summarize(records)
    assert summary["refusal_rate"] == sum(r["refused"] for r in records) / 6
    assert summary["complied_rate"] == sum(r["verdict"] == "complied" for r in records) / 6
    assert summary["degenerate_rate"] == sum(r["verdict"] == "neither" for r in records) / 6
    assert summary["refusal_rate"] + summary["complied_rate"] + summary["degenerate_rate"] == pytest.approx(1.0)
    assert set(summary["by_category"]) == {r["category"] for r in records}


def test_perplexity_variant_of_same_model_has_zero_kl(tiny_handle):
    probe = build_probe("perplexity", limit=3)
    base_context, artifacts = make_context(tiny_handle)
    base = run(probe, base_context)
    assert all("kl_from_base" not in r for r in base)
    for record in base:
        artifact = artifacts[record["item_id"]]
        assert artifact["topk_logprobs"].shape[0] == record["n_tokens"]
        assert artifact["topk_ids"].shape == artifact["topk_logprobs"].shape

    variant_context, _ = make_context(tiny_handle, is_base=False, artifacts=artifacts)
    variant = run(probe, variant_context)
    assert len(variant) == len(base)
    for b, v in zip(base, variant, strict=True):
        assert v["item_id"] == b["item_id"]
        assert v["nll_sum"] == b["nll_sum"]
        assert v["n_tokens"] == b["n_tokens"]
        assert 0 <= v["kl_from_base"] < 1e-3
    summary = probe.summarize(variant)
    assert summary["perplexity"] == pytest.approx(probe.summarize(base)["perplexity"])
    assert summary["mean_kl_from_base"] < 1e-3


def test_perplexity_nll_matches_direct_forward(tiny_handle, tmp_path):
    path = tmp_path / "passages.txt"
    path.write_text("Plants turn light into sugar.\n\nThe river ran to the sea past the old mill.\n")
    probe = build_probe(f"perplexity:{path}")
    context, _ = make_context(tiny_handle)
    records = run(probe, context)
    assert len(records) == 2
    for record, item in zip(records, probe.items, strict=True):
        ids = tiny_handle.tokenizer(item.data["text"])["input_ids"]
        assert record["n_tokens"] == len(ids) - 1
        with torch.no_grad():
            logits = tiny_handle.model(input_ids=torch.tensor([ids[:-1]])).logits[0]
        nll = float(torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
        assert record["nll_sum"] == pytest.approx(nll, rel=1e-4)
    summary = probe.summarize(records)
    tokens = sum(r["n_tokens"] for r in records)
    assert summary["tokens"] == tokens
    assert summary["perplexity"] == pytest.approx(math.exp(sum(r["nll_sum"] for r in records) / tokens))


def test_perplexity_long_passage_counts_every_token(tiny_handle):
    probe = build_probe("perplexity", limit=1)
    ids = tiny_handle.tokenizer(probe.items[0].data["text"])["input_ids"]
    assert len(ids) > tiny_handle.max_length  # the shipped passages need more than one window here
    context, _ = make_context(tiny_handle)
    assert run(probe, context)[0]["n_tokens"] == len(ids) - 1


def test_perplexity_variant_without_base_artifact_has_no_kl(tiny_handle):
    probe = build_probe("perplexity", limit=2)
    context, _ = make_context(tiny_handle, is_base=False)
    records = run(probe, context)
    assert all("kl_from_base" not in r for r in records)
    assert "mean_kl_from_base" not in probe.summarize(records)


def test_mcqa_accuracy_against_answers(tiny_handle):
    probe = build_probe("mcqa", limit=6)
    context, _ = make_context(tiny_handle)
    records = run(probe, context)
    for record, item in zip(records, probe.items, strict=True):
        choices = item.data["choices"]
        assert record["answer"] == item.data["answer"]
        assert len(record["logprobs"]) == len(choices)
        assert record["pred"] == max(range(len(choices)), key=record["logprobs"].__getitem__)
        assert record["correct"] == (record["pred"] == record["answer"])
        assert record["correct_norm"] == (record["pred_norm"] == record["answer"])
        assert 1 / len(choices) - 1e-9 <= record["confidence"] <= 1
    # log-likelihoods are the backend's, for " choice" after the formatted question
    first = probe.items[0]
    expected = context.backend.loglikelihood([(format_question(first.data["question"]), f" {c}")
                                              for c in first.data["choices"]])
    assert records[0]["logprobs"] == pytest.approx([r.logprob for r in expected], abs=1e-4)
    summary = probe.summarize(records)
    assert summary["accuracy"] == sum(r["pred"] == r["answer"] for r in records) / len(records)
    assert summary["accuracy_norm"] == sum(r["pred_norm"] == r["answer"] for r in records) / len(records)


def test_mcqa_summary_on_hand_made_records():
    probe = build_probe("mcqa", limit=2)
    records = [
        {"item_id": "a", "correct": True, "correct_norm": False, "confidence": 0.5},
        {"item_id": "b", "correct": False, "correct_norm": False, "confidence": 0.3},
        {"item_id": "c", "correct": True, "correct_norm": True, "confidence": 0.7},
        {"item_id": "d", "correct": True, "correct_norm": True, "confidence": 0.9},
    ]
    summary = probe.summarize(records)
    assert summary["accuracy"] == 0.75
    assert summary["accuracy_norm"] == 0.5
    assert summary["mean_confidence"] == pytest.approx(0.6)
