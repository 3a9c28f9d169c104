"""Published definitions: perplexity's first token as lm-eval's loglikelihood_rolling scores it (bos=1), CrowS
pairs as lm-eval's crows_pairs task scores them, and toxicity's k shown with the published k=25 available. Each is
checked against lm-eval's own code where lm-eval is installed, and against a hand implementation always."""

from __future__ import annotations

import pytest
import torch

from compsafe.judges import get_judge
from compsafe.models import GenerationConfig, HFBackend
from compsafe.models.backend import prefix_token_id, rolling_windows
from compsafe.probes import ProbeContext, build_probe

TEXT = "The river carried the old boat past the mill, and the children ran along the bank to watch it go."


def _context(handle, is_base: bool = False) -> ProbeContext:
    return ProbeContext(backend=HFBackend(handle, 4), judge=get_judge("phrase"),
                        generation=GenerationConfig(max_new_tokens=4), is_base=is_base, chunk_size=8,
                        load_base_artifact=lambda item_id: None)


def _records(probe, context, items):
    return [r for batch in probe.evaluate(items, context) for r in batch]


def test_bos_option_scores_every_token_after_the_prefix_token(tiny_handle) -> None:
    probe = build_probe("perplexity:bos=1", limit=2)
    assert probe.bos and "lm-eval" in probe.definition
    item = type(probe.items[0])("short", {"text": TEXT})  # one window: shorter than the tiny model's context
    record = _records(probe, _context(tiny_handle), [item])[0]
    tokenizer = tiny_handle.tokenizer
    assert len(tokenizer(TEXT)["input_ids"]) < tiny_handle.max_length
    tokens = tokenizer(item.data["text"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # the definition by hand: log P(t_i | prefix, t_<i) summed over every token
        logits = tiny_handle.model(input_ids=torch.tensor([[prefix_token_id(tokenizer), *tokens[:-1]]])).logits[0]
    logprobs = torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None]).double().sum()
    assert record["n_tokens"] == len(tokens)
    assert record["nll_sum"] == pytest.approx(-float(logprobs), rel=1e-6)
    default = build_probe("perplexity", limit=2)
    assert not default.bos and "first token" in default.definition
    assert _records(default, _context(tiny_handle), [item])[0]["n_tokens"] < len(tokens) + 1


def test_rolling_windows_cover_every_token_once_like_lm_eval() -> None:
    tokens = list(range(100, 137))
    windows = list(rolling_windows(tokens, 1, 8))
    assert [t for _, predicted in windows for t in predicted] == tokens
    assert all(len(inputs) <= 8 and len(inputs) >= len(predicted) for inputs, predicted in windows)
    utils = pytest.importorskip("lm_eval.utils")
    expected = [
        utils.make_disjoint_window(w) for w in utils.get_rolling_token_windows(tokens, 1, max_seq_len=8, context_len=1)
    ]
    for (inputs, predicted), (context, continuation) in zip(windows, expected, strict=True):
        assert predicted == continuation and inputs == (context + continuation)[-9:][:-1]


@pytest.mark.parametrize("text", [TEXT, " ".join([TEXT] * 12)], ids=["one-window", "rolling-windows"])
def test_bos_perplexity_equals_lm_eval_loglikelihood_rolling(tiny_handle, text) -> None:
    huggingface = pytest.importorskip("lm_eval.models.huggingface")
    from lm_eval.api.instance import Instance

    lm = huggingface.HFLM(pretrained=tiny_handle.model, tokenizer=tiny_handle.tokenizer, batch_size=1)
    request = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
    expected = lm.loglikelihood_rolling([request], disable_tqdm=True)[0]
    probe = build_probe("perplexity:bos=1", limit=1)
    item = type(probe.items[0])("t", {"text": text})
    record = _records(probe, _context(tiny_handle), [item])[0]
    assert -record["nll_sum"] == pytest.approx(expected, rel=1e-6)


def test_crows_prefers_by_summed_loglikelihood_as_lm_eval(tiny_handle) -> None:
    probe = build_probe("crows", limit=6)
    assert probe.version == "2" and "lm-eval" in probe.definition
    records = _records(probe, _context(tiny_handle), probe.items)
    for r in records:
        assert r["prefers_stereo"] == (r["stereo_logprob"] > r["anti_logprob"])
        assert r["margin"] == pytest.approx(r["stereo_logprob"] - r["anti_logprob"])
    summary = probe.summarize(records)
    assert summary["likelihood_diff"] == pytest.approx(sum(abs(r["margin"]) for r in records) / len(records))
    try:
        from lm_eval.tasks.crows_pairs.utils import process_results
    except ImportError:
        return
    for r in records:
        scored = process_results({}, [(r["stereo_logprob"], False), (r["anti_logprob"], False)])
        assert scored["pct_stereotype"] == float(r["prefers_stereo"])
        assert scored["likelihood_diff"] == pytest.approx(abs(r["margin"]))


def test_toxicity_k_is_configurable_to_the_published_25_and_stated() -> None:
    default = build_probe("toxicity", limit=2)
    assert default.k == 4 and "k=4" in default.definition and "k=25" in default.definition
    published = build_probe("toxicity:k=25", limit=2)
    assert published.k == 25 and published.definition.startswith("k=25")


def test_reports_state_the_definitions(tiny_run_dir) -> None:
    import json

    summary = json.loads((tiny_run_dir / "summary.json").read_text())
    stated = summary["probes"]["perplexity"]["definition"]
    assert "first token" in stated
    assert f"`perplexity`: {stated}" in (tiny_run_dir / "report.md").read_text()
    assert "definitions" in (tiny_run_dir / "report.html").read_text()
