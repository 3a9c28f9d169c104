"""privacy: exposure and extraction statistics (hand-computed), the canary file, the probe and the planting loop."""

from __future__ import annotations

import json
import math

import pytest

from compsafe.analysis.exposure import candidate_rank, chance_exposure, exposure, extraction_rate
from compsafe.comparisons import compare_probe
from compsafe.errors import CompsafeError
from compsafe.probes.canaries import build_canary_set, load_canary_set, shipped_canary_path
from compsafe.probes.privacy import summarize_privacy


def test_exposure_by_hand():
    # |R| = 8: rank 1 -> 3 bits, rank 2 -> 2 bits, rank 8 -> 0 bits
    assert exposure(1, 8) == 3.0
    assert exposure(2, 8) == 2.0
    assert exposure(8, 8) == 0.0
    assert exposure(3, 128) == pytest.approx(7 - math.log2(3))
    with pytest.raises(ValueError):
        exposure(9, 8)


def test_rank_among_candidates_by_hand():
    # secret -2.0; candidates -1.0 and -1.5 are more likely, -3.0 less, -2.0 ties (counted in the secret's favour)
    assert candidate_rank(-2.0, [-1.0, -3.0, -1.5, -2.0]) == 3
    assert exposure(candidate_rank(-2.0, [-1.0, -3.0, -1.5, -2.0]), 5) == pytest.approx(math.log2(5) - math.log2(3))
    assert candidate_rank(0.0, [-1.0, -2.0]) == 1


def test_chance_exposure_and_extraction_rate():
    # N = 4: ranks 1..4 equally likely -> mean(2, 1, log2 4 - log2 3, 0) = (3 + 2 - log2 3) / 4
    assert chance_exposure(4) == pytest.approx((3 + (2 - math.log2(3))) / 4)
    assert 1.3 < chance_exposure(128) < math.log2(math.e)
    assert extraction_rate([True, False, False, True]) == 0.5
    assert math.isnan(extraction_rate([]))


def test_shipped_canaries_are_the_seeded_set_and_synthetic(tmp_path):
    shipped = load_canary_set(shipped_canary_path())
    assert shipped == build_canary_set(0)
    assert all(r.phone.startswith("555-01") and r.email.endswith("@example.com") for r in shipped.records)
    assert all(part not in r.email for r in shipped.records for part in r.name.lower().split())  # not guessable
    assert all(len(c.candidates) == 127 and c.secret not in c.candidates for c in shipped.canaries)
    assert {c.repeats for c in shipped.canaries if c.planted} == {1, 2, 4, 8}
    assert any(not c.planted for c in shipped.canaries) and any(not r.planted for r in shipped.records)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(CompsafeError):
        load_canary_set(bad)


def _canary(item, planted, exposure_bits, extracted, repeats=1):
    return {"item_id": item, "kind": "canary", "planted": planted, "repeats": repeats, "n_candidates": 8,
            "exposure": exposure_bits, "extracted": extracted}


def _pii(item, planted, phone, email):
    return {"item_id": item, "kind": "pii", "planted": planted, "repeats": 3, "phone_leaked": phone,
            "email_leaked": email, "regurgitated": phone or email}


def test_summary_and_comparison_on_constructed_records():
    base = [_canary("a", True, 3.0, True, 8), _canary("b", True, 2.0, True, 1), _canary("c", False, 1.0, False, 0),
            _pii("p", True, True, False), _pii("q", True, False, False)]
    variant = [_canary("a", True, 3.0, True, 8), _canary("b", True, 0.0, False, 1), _canary("c", False, 0.0, False, 0),
               _pii("p", True, False, False), _pii("q", True, False, False)]
    s = summarize_privacy(base)
    assert s["mean_exposure"] == 2.5 and s["mean_exposure_heldout"] == 1.0
    assert s["extraction_rate"] == 1.0 and s["max_exposure"] == 3.0
    assert s["by_repeats"]["8"]["mean_exposure"] == 3.0
    assert s["pii_regurgitation_rate"] == 0.5 and s["pii_phone_leak_rate"] == 0.5 and s["pii_email_leak_rate"] == 0.0
    cmp = compare_probe("exposure", base, variant, n_resamples=200)
    assert cmp["delta"]["estimate"] == pytest.approx(-1.0)
    assert cmp["base_extraction_rate"] == 1.0 and cmp["variant_extraction_rate"] == 0.5
    assert cmp["no_longer_extracted"] == ["b"] and cmp["newly_extracted"] == []
    assert cmp["heldout_mean_exposure"] == {"base": 1.0, "variant": 0.0}
    assert cmp["variant_pii_regurgitation_rate"] == 0.0


def test_probe_records_follow_the_definitions(tiny_handle):
    from compsafe.judges import get_judge
    from compsafe.models import GenerationConfig, HFBackend
    from compsafe.probes import ProbeContext, build_probe

    probe = build_probe("privacy", limit=3)
    backend = HFBackend(tiny_handle, 4)
    context = ProbeContext(backend=backend, judge=get_judge("phrase"), generation=GenerationConfig(), is_base=True)
    records = [r for batch in probe.evaluate(probe.items, context) for r in batch]
    item = probe.items[0]
    assert item.data["kind"] == "canary"
    prefix = backend.format_chat(item.data["prompt"]) + item.data["reply_prefix"]
    full = backend.shared_context_loglikelihood(  # equal to loglikelihood: tests/models/test_backend_shared_context.py
        prefix, [f" {s}" for s in [item.data["secret"], *item.data["candidates"]]], chat_formatted=True
    )
    expected_rank = candidate_rank(full[0].logprob, [r.logprob for r in full[1:]])
    assert records[0]["rank"] == expected_rank
    assert records[0]["exposure"] == pytest.approx(exposure(expected_rank, 128))
    assert records[0]["extracted"] == full[0].is_greedy


def test_plant_canaries_writes_a_loadable_model(tiny_llama_dir, tmp_path):
    from dataclasses import replace

    from compsafe.probes.canaries import CanarySet
    from compsafe.training.plant_canaries import PLANT_TRAIN_CONFIG, plant_canaries, planting_examples

    full = build_canary_set(0)
    small = CanarySet(0, full.canaries[:2] + full.canaries[-1:], full.records[:1])
    examples = planting_examples(small)
    assert len(examples) == 1 + 1 + 3  # canaries x1, x1 (planted), held-out none, one record x3
    out = tmp_path / "planted"
    meta = plant_canaries(str(tiny_llama_dir), out, small, config=replace(PLANT_TRAIN_CONFIG, epochs=1, max_length=64))
    assert meta["steps"] == 1 and (out / "canaries.json").is_file() and (out / "model.safetensors").is_file()
    assert load_canary_set(out / "canaries.json") == small
