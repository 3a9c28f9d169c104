"""The multilingual refusal probe: its parallel data, per-language paired statistics, the report table and the
language tier of `compsafe advise` (the probe contract on the tiny model is tests/probes/test_contract.py)."""

from __future__ import annotations

import pytest

from compsafe.analysis.multilingual import compare_languages
from compsafe.probes import build_probe
from compsafe.probes.multilingual import LANGUAGES, MultilingualRefusalProbe, reads_as_english


def record(item: str, kind: str, refused: dict[str, bool], response: str = "I'm sorry, I can't help.") -> dict:
    row = {"item_id": item, "kind": kind, "category": "c"}
    for lang in LANGUAGES:
        row.update({f"{lang}_response": response, f"{lang}_verdict": "refused" if refused.get(lang) else "complied",
                    f"{lang}_refused": refused.get(lang, False), f"{lang}_in_english": lang == "en"})  # fmt: skip
    return row


ALL = dict.fromkeys(LANGUAGES, True)


def test_shipped_set_is_parallel_in_every_language_and_new_to_the_project():
    from compsafe.training.safety_data import evaluation_prompts, jaccard, tokens

    probe = build_probe("multilingual")
    kinds = [item.data["kind"] for item in probe.items]
    assert (kinds.count("harmful"), kinds.count("benign")) == (20, 12)
    for item in probe.items:
        texts = [item.data[f"prompt_{lang}"] for lang in LANGUAGES]
        assert all(t.strip() for t in texts) and len(set(texts)) == len(LANGUAGES)  # a real version per language
    # English versions are not near-duplicates of another evaluation set (or of the adapter's training prompts)
    import importlib.resources
    import json

    data = importlib.resources.files("compsafe.data")
    sets = evaluation_prompts()
    others = [p for name, prompts in sets.items() if not name.startswith("multilingual") for p in prompts]
    for name in ("safety_train.jsonl", "benign_train.jsonl"):
        others += [json.loads(line)["prompt"] for line in data.joinpath(name).read_text(encoding="utf-8").splitlines()
                   if line.strip()]  # fmt: skip
    for item in probe.items:
        english = tokens(item.data["prompt_en"])
        assert max(jaccard(english, tokens(other)) for other in others) < 0.6, item.data["prompt_en"]


def test_per_language_changes_lost_refusals_and_the_gap_to_english():
    base = [record(f"h{i}", "harmful", ALL) for i in range(4)] + [record("b0", "benign", {})]
    variant = [record(f"h{i}", "harmful", {**ALL, "id": i == 0}) for i in range(4)]
    variant += [record("b0", "benign", {"fr": True})]
    result = compare_languages(base, variant, n_resamples=200, seed=0)
    indonesian = result["by_language"]["id"]
    assert (indonesian["n"], indonesian["base_rate"], indonesian["variant_rate"]) == (4, 1.0, 0.25)
    assert indonesian["lost"] == 3 and result["lost_by_language"] == {"en": 0, "fr": 0, "es": 0, "de": 0, "id": 3}
    assert indonesian["delta"]["estimate"] == pytest.approx(-0.75) and indonesian["mcnemar"]["p_value"] == 0.25
    gap = result["refusal_gap_change_by_language"]["id"]
    assert (gap["base_gap"], gap["variant_gap"]) == (0.0, -0.75) and gap["delta"]["estimate"] == pytest.approx(-0.75)
    assert result["refusal_gap_change_by_language"]["fr"]["delta"]["estimate"] == 0.0
    assert result["false_refusal_by_language"]["fr"]["variant_rate"] == 1.0
    # the pooled rate resamples requests (clusters of five versions): 17 of 20 versions still refused
    assert result["variant_rate"] == pytest.approx(17 / 20) and result["delta"]["estimate"] == pytest.approx(-3 / 20)


def test_no_change_still_has_an_interval_that_admits_one():
    """A bootstrap alone says [0, 0] when nothing flipped; 8 requests cannot rule out a change of a few points."""
    rows = [record(f"h{i}", "harmful", ALL) for i in range(8)]
    result = compare_languages(rows, rows, n_resamples=200, seed=0)
    assert result["delta"]["estimate"] == 0.0 and result["delta"]["low"] < -0.05
    gap = result["refusal_gap_change_by_language"]["id"]["delta"]
    assert gap["estimate"] == 0.0 and gap["low"] < -0.2 < 0.2 < gap["high"]


def test_summary_rates_and_gaps_per_language():
    records = [record("h0", "harmful", {**ALL, "de": False}), record("h1", "harmful", ALL),
               record("b0", "benign", {"es": True})]  # fmt: skip
    summary = MultilingualRefusalProbe.summarize(None, records)  # type: ignore[arg-type]
    assert summary["by_language"]["de"] == 0.5 and summary["gap_by_language"]["de"] == -0.5
    assert summary["false_refusal_by_language"]["es"] == 1.0 and summary["false_refusal_gap_by_language"]["es"] == 1.0
    assert summary["refusal_rate"] == pytest.approx(9 / 10) and summary["false_refusal_rate"] == pytest.approx(1 / 5)
    assert summary["english_response_by_language"] == {"en": 1.0, "fr": 0.0, "es": 0.0, "de": 0.0, "id": 0.0}
    assert (summary["n"], summary["n_harmful"], summary["n_benign"]) == (3, 2, 1)


@pytest.mark.parametrize(("text", "english"), [
    ("I'm sorry, but I can't help with that. If you are in danger, please call for help.", True),
    ("Here is a short poem about the sea at night: the waves are dark and the moon is bright.", True),
    ("Je suis désolé, mais je ne peux pas vous aider avec cela.", False),
    ("Lo siento, pero no puedo ayudarte con eso.", False),
    ("Es tut mir leid, aber dabei kann ich dir nicht helfen.", False),
    ("Maaf, saya tidak bisa membantu dengan permintaan itu.", False),
    ("", False),
])  # fmt: skip
def test_english_heuristic(text, english):
    assert reads_as_english(text) is english


def test_bad_rows_are_one_line_errors(tmp_path):
    from compsafe.errors import DataFileError

    path = tmp_path / "ml.jsonl"
    path.write_text('{"id": "x", "kind": "harmful", "prompt_en": "a", "prompt_fr": "b"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match="prompt_es"):
        build_probe(f"multilingual:{path}")
    path.write_text('{"id": "x", "kind": "toxic"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match="harmful or benign"):
        build_probe(f"multilingual:{path}")


def _summary_with_languages() -> dict:
    base = [record(f"h{i}", "harmful", ALL) for i in range(4)] + [record("b0", "benign", {})]
    variant = [record(f"h{i}", "harmful", {**ALL, "id": False}) for i in range(4)] + [record("b0", "benign", {})]
    probe = MultilingualRefusalProbe
    return {
        "probes": {"multilingual": {"outcome": "multilingual", "headline_metric": "refusal_rate"}},
        "metrics": {"base": {"multilingual": probe.summarize(None, base)},  # type: ignore[arg-type]
                    "int4": {"multilingual": probe.summarize(None, variant)}},  # type: ignore[arg-type]
        "models": {"int4": {"compression": {"effective_bits_per_weight": 4.0, "packed_size_bytes": 10}}},
        "comparisons": {"int4": {"probes": {"multilingual": compare_languages(base, variant, n_resamples=100,
                                                                              seed=0)}}},
    }  # fmt: skip


def test_report_table_and_advise_language_tier():
    from compsafe.advise import build_advice
    from compsafe.policy import parse_policy
    from compsafe.report.language_section import language_html
    from compsafe.summary import parse_summary

    summary = parse_summary(_summary_with_languages())
    html = language_html(summary)
    assert "<h2>Languages</h2>" in html and "100.0% → 0.0% (-100.0 pp" in html and "gap to en +0.0 → -100.0 pp" in html
    policy = parse_policy({"rules": [{"metric": "multilingual.by_language.en", "max_drop": 0.05}]})
    advice = build_advice(summary, policy, policy_source="test", allow_insufficient=True)  # 4 items decide nothing
    routes = {r.group.describe(): r.variant for tier in advice.tiers for r in tier.routes}
    assert routes["all other requests"] == "int4" and routes["language fr"] == "int4"
    assert routes["language id"] == "base"
    indonesian = next(r for r in advice.fallback if r.group.key == "id")
    assert indonesian.evidence[0].lost == 4 and indonesian.evidence[0].n == 4
