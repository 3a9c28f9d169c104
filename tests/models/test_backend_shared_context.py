"""HFBackend.loglikelihood runs each distinct context once and gives the numbers of a full-sequence pass
(lm-evaluation-harness's way) in the caller's order, for shared and unshared contexts, one- and many-token
continuations, truncation to the window and several batch sizes."""

from __future__ import annotations

import random

import pytest
import torch

from compsafe.models import HFBackend, LoadOptions, load_model
from conftest import save_tiny_llama

CONTEXTS = [
    "Question: Which gas do plants take in to make food?\nAnswer:",
    "The river ran to the sea. The pass key is",
    "Hi",
    "Explain how the water cycle moves water between the oceans, the air and the land, step by step:",
]
CONTINUATIONS = [" carbon dioxide", " 4821", " oxygen", " 7", " the sea and back again.", " river", " a"]


def mixed_requests(seed: int = 0) -> list[tuple[str, str]]:
    """Every context with several continuations, shuffled so groups interleave in the caller's order."""
    requests = [(c, x) for c in CONTEXTS for x in CONTINUATIONS]
    random.Random(seed).shuffle(requests)
    return requests


@torch.inference_mode()
def full_sequence(backend: HFBackend, requests: list[tuple[str, str]], chat_formatted: bool = False):
    """The reference: every pair as its own full sequence, unbatched (lm-eval's ``_loglikelihood_tokens``)."""
    scored = []
    for context, continuation in requests:
        context_ids, cont_ids = backend._encode_pair(context, continuation, special_tokens=not chat_formatted)
        context_ids = context_ids or [backend.tokenizer.bos_token_id]
        sequence = (context_ids + cont_ids)[-(backend.handle.max_length + 1) :]
        logits = backend.model(input_ids=torch.tensor([sequence[:-1]])).logits[0, -len(cont_ids) :]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        targets = torch.tensor(cont_ids)
        token_lp = logprobs.gather(-1, targets[:, None]).squeeze(-1)
        scored.append((float(token_lp.sum()), len(cont_ids), bool((logprobs.argmax(-1) == targets).all())))
    return scored


def assert_same(results, reference) -> None:
    assert [r.n_tokens for r in results] == [n for _, n, _ in reference]
    assert [r.logprob for r in results] == pytest.approx([lp for lp, _, _ in reference], rel=1e-5, abs=1e-6)
    assert [r.is_greedy for r in results] == [g for _, _, g in reference]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_grouped_scoring_equals_full_sequences_llama(tiny_handle, batch_size):
    backend = HFBackend(tiny_handle, batch_size)
    requests = mixed_requests()
    assert_same(backend.loglikelihood(requests), full_sequence(backend, requests))


def test_grouped_scoring_equals_full_sequences_gpt2_absolute_positions(tiny_gpt2_dir):
    # GPT-2 adds learned position embeddings: left-padded contexts must keep each row's own positions
    backend = HFBackend(load_model(str(tiny_gpt2_dir), LoadOptions(device="cpu", dtype="float32")), 4)
    requests = mixed_requests(seed=1)
    assert_same(backend.loglikelihood(requests), full_sequence(backend, requests))


def test_chat_formatted_contexts(tiny_handle):
    backend = HFBackend(tiny_handle, 4)
    requests = [(backend.format_chat(c), x) for c, x in mixed_requests(seed=2)[:12]]
    results = backend.loglikelihood(requests, chat_formatted=True)
    assert_same(results, full_sequence(backend, requests, chat_formatted=True))
    assert backend.shared_context_loglikelihood(requests[0][0], [x for _, x in requests], chat_formatted=True)


def test_truncation_empty_context_and_too_long_continuation(tmp_path, tiny_tokenizer):
    # a 24-token window: long contexts are cut from the left; an empty context is scored after BOS (lm-eval's
    # prefix token); a continuation longer than the window is refused, as lm-eval asserts
    folder = save_tiny_llama(tmp_path / "short", tiny_tokenizer, max_position_embeddings=24)
    backend = HFBackend(load_model(str(folder), LoadOptions(device="cpu", dtype="float32")), 2)
    long_context = " ".join(CONTEXTS)
    requests = [(long_context, " oxygen"), ("", " water water water"), (long_context, " the sea and back"),
                (CONTEXTS[0], " carbon dioxide"), (CONTEXTS[0], " " + " ".join(["water"] * 7))]  # fmt: skip
    assert len(backend._encode_pair(*requests[0])[0]) > 24 and not backend._encode_pair(*requests[1])[0]
    assert 12 < len(backend._encode_pair(*requests[4])[1]) <= 24  # its context is cut to a few tokens
    assert_same(backend.loglikelihood(requests), full_sequence(backend, requests))
    with pytest.raises(ValueError, match="does not fit"):
        backend.loglikelihood([(CONTEXTS[2], " " + " ".join(["water"] * 40))])


def test_each_context_runs_once(tiny_handle):
    backend = HFBackend(tiny_handle, 16)
    context = CONTEXTS[3]
    continuations = CONTINUATIONS
    fed: list[int] = []
    hook = tiny_handle.model.model.embed_tokens.register_forward_hook(lambda m, i, o: fed.append(int(i[0].numel())))
    try:
        backend.loglikelihood([(context, x) for x in continuations])
    finally:
        hook.remove()
    n_context = len(backend._encode_pair(context, continuations[0])[0])
    tails = [len(backend._encode_pair(context, x)[1]) - 1 for x in continuations]
    # the context once, then the multi-token continuations' own tokens on its cache, padded at most twofold
    assert fed[0] == n_context
    assert sum(tails) <= sum(fed[1:]) <= 2 * sum(tails) < len(continuations) * n_context


def test_agrees_with_lm_eval(tiny_handle):
    huggingface = pytest.importorskip("lm_eval.models.huggingface")
    from lm_eval.api.instance import Instance

    lm = huggingface.HFLM(pretrained=tiny_handle.model, tokenizer=tiny_handle.tokenizer, batch_size=4)
    requests = mixed_requests(seed=3)
    theirs = lm.loglikelihood([Instance("loglikelihood", {}, r, i) for i, r in enumerate(requests)], disable_tqdm=True)
    ours = HFBackend(tiny_handle, 4).loglikelihood(requests)
    assert [r.logprob for r in ours] == pytest.approx([lp for lp, _ in theirs], rel=1e-5, abs=1e-6)
    assert [r.is_greedy for r in ours] == [g for _, g in theirs]
