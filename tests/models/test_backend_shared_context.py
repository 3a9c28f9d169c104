"""HFBackend.shared_context_loglikelihood gives the same numbers as loglikelihood, with one context pass."""

from __future__ import annotations

import pytest

from compsafe.models import HFBackend


@pytest.mark.parametrize("chat", [True, False])
def test_shared_context_matches_loglikelihood(tiny_handle, chat):
    backend = HFBackend(tiny_handle, 2)
    context = (backend.format_chat("What is the code?") if chat else "Plants turn light into sugar.") + " The code is"
    continuations = [" 4821", " 12", " 99999", " 7", " 4821.", " river"]
    full = backend.loglikelihood([(context, c) for c in continuations], chat_formatted=chat)
    shared = backend.shared_context_loglikelihood(context, continuations, chat_formatted=chat)
    assert [s.n_tokens for s in shared] == [f.n_tokens for f in full]
    assert [s.logprob for s in shared] == pytest.approx([f.logprob for f in full], abs=1e-4)
    assert [s.is_greedy for s in shared] == [f.is_greedy for f in full]


def test_shared_context_gpt2_positions(tiny_gpt2_dir):
    from compsafe.models import LoadOptions, load_model

    backend = HFBackend(load_model(str(tiny_gpt2_dir), LoadOptions(device="cpu", dtype="float32")), 4)
    context = "The river ran to the sea. The pass key is"
    continuations = [" 12345", " 54321", " 1"]
    full = backend.loglikelihood([(context, c) for c in continuations])
    shared = backend.shared_context_loglikelihood(context, continuations)
    assert [s.logprob for s in shared] == pytest.approx([f.logprob for f in full], abs=1e-4)
