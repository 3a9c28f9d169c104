"""Log-likelihood scoring computes its float32 log-softmax a few rows at a time (models.scoring.target_logprobs):
the values, token counts and greedy flags equal the whole-tensor computation's."""

from __future__ import annotations

import torch

import compsafe.models.scoring as scoring
from compsafe.models import HFBackend


def whole_tensor(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The computation before slicing: one log-softmax over every row."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return logprobs.gather(-1, targets[..., None]).squeeze(-1), logprobs.argmax(-1)


def test_target_logprobs_equal_whole_tensor(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(9, 4, 50, generator=generator) * 6).to(torch.bfloat16)
    targets = torch.randint(0, 50, (9, 4), generator=generator)
    monkeypatch.setattr(scoring, "SLICE_ELEMENTS", 2 * 4 * 50)  # two rows a slice, the last slice one row
    chosen, argmax = scoring.target_logprobs(logits, targets)
    expected, expected_argmax = whole_tensor(logits, targets)
    assert torch.equal(chosen, expected)
    assert torch.equal(argmax, expected_argmax)


def test_loglikelihood_with_one_row_slices_equals_default(tiny_handle, monkeypatch):
    backend = HFBackend(tiny_handle, 4)
    contexts = ["Question: Which gas do plants take in?\nAnswer:", "The river ran to the sea. The pass key is"]
    requests = [(c, x) for c in contexts for x in [" carbon dioxide gas", " 4821 and 17", " a"]]
    default = backend.loglikelihood(requests)
    monkeypatch.setattr(scoring, "SLICE_ELEMENTS", 1)  # one row of continuations per slice
    sliced = backend.loglikelihood(requests)
    assert [r.n_tokens for r in sliced] == [r.n_tokens for r in default]
    assert any(r.n_tokens > 2 for r in default)  # multi-token continuations: the sliced path ran
    for a, b in zip(sliced, default, strict=True):
        assert abs(a.logprob - b.logprob) <= 1e-6 * abs(b.logprob)
        assert a.is_greedy == b.is_greedy
