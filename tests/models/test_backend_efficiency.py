"""Out-of-memory back-off and the static-cache decoding path, on the tiny model."""

from __future__ import annotations

import pytest
import torch

from compsafe.models import GenerationConfig, HFBackend
from compsafe.models.backend import is_out_of_memory

PROMPTS = [
    "How do I bake bread?",
    "Name a planet.",
    "What is two plus two?",
    "Tell me about rivers.",
    "Hi",
    "Why?",
    "Count to five.",
    "Say hello.",
]


class OOMAbove:
    """Wraps a model so any forward with more than ``limit`` rows raises like a CUDA OOM."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.calls = model, limit, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def _check(self, ids: torch.Tensor) -> None:
        self.calls.append(ids.shape[0])
        if ids.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def __call__(self, input_ids, **kwargs):
        self._check(input_ids)
        return self.model(input_ids=input_ids, **kwargs)

    def generate(self, input_ids, **kwargs):
        self._check(input_ids)
        return self.model.generate(input_ids=input_ids, **kwargs)


def test_backoff_halves_batch_and_gives_identical_results(tiny_handle) -> None:
    config = GenerationConfig(max_new_tokens=6)
    reference = HFBackend(tiny_handle, batch_size=8).generate(PROMPTS, config)
    ref_loglik = HFBackend(tiny_handle, batch_size=8).loglikelihood([(p, " yes") for p in PROMPTS])
    backend = HFBackend(tiny_handle, batch_size=8)
    backend.model = OOMAbove(tiny_handle.model, limit=2)
    assert backend.generate(PROMPTS, config) == reference
    assert backend.batch_size == 2 and backend.oom_backoffs == 2  # 8 -> 4 -> 2, then kept
    assert backend.model.calls[:3] == [8, 4, 2]
    got = backend.loglikelihood([(p, " yes") for p in PROMPTS])
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in ref_loglik], abs=1e-4)
    logprobs = backend.next_token_logprobs(PROMPTS)
    assert torch.allclose(logprobs, HFBackend(tiny_handle, 8).next_token_logprobs(PROMPTS), atol=1e-5)


def test_other_errors_and_batch_one_oom_are_not_swallowed(tiny_handle) -> None:
    backend = HFBackend(tiny_handle, batch_size=4)
    backend.model = OOMAbove(tiny_handle.model, limit=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        backend.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=2))
    assert not is_out_of_memory(ValueError("shape mismatch"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))


def test_static_cache_path_matches_dynamic_cache(tiny_handle) -> None:
    """The GPU path (static KV cache, bucketed left padding) must not change greedy outputs."""
    config = GenerationConfig(max_new_tokens=8)
    dynamic = HFBackend(tiny_handle, batch_size=3, static_cache=False).generate(PROMPTS, config)
    static = HFBackend(tiny_handle, batch_size=3, static_cache=True).generate(PROMPTS, config)
    assert static == dynamic
    assert HFBackend(tiny_handle).static_cache is (tiny_handle.device.type == "cuda")
