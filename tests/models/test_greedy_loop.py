"""HFBackend's greedy batches run compsafe's own decode loop: the same answers as ``generate``, and a row that
has produced EOS leaves the batch (``generate`` keeps computing it until the longest row ends)."""

from __future__ import annotations

import pytest
import torch

from compsafe.models import GenerationConfig, HFBackend
from compsafe.models.drafting import until_eos

PROMPTS = [
    "How do I bake bread?",
    "Tell me a story about a cat.",
    "What is 2+2?",
    "Name a colour.",
    "Hi",
    "Explain photosynthesis in one line.",
    "Write a haiku about rain.",
]


def answers_token_ids(handle, budget: int) -> list[list[int]]:
    """The tiny model's greedy answer ids per prompt (``generate`` one prompt at a time)."""
    backend = HFBackend(handle)
    out = []
    for prompt in PROMPTS:
        ids = torch.tensor([backend._encode(backend.format_chat(prompt), chat_formatted=True)])
        generated = handle.model.generate(input_ids=ids, max_new_tokens=budget, do_sample=False,
                                          pad_token_id=handle.tokenizer.pad_token_id)  # fmt: skip
        out.append(generated[0, ids.shape[1] :].tolist())
    return out


def mid_answer_token(answers: list[list[int]]) -> int:
    """A token some answers contain after their first token and others lack: as EOS it ends some rows early."""
    rows_with: dict[int, int] = {}
    for row in answers:
        for token in set(row[1:]):
            rows_with[token] = rows_with.get(token, 0) + 1
    return min(sorted(rows_with), key=lambda t: abs(rows_with[t] - len(answers) / 2))


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_greedy_loop_equals_generate_and_drops_finished_rows(tiny_handle, batch_size):
    budget = 12
    eos = mid_answer_token(answers_token_ids(tiny_handle, budget))
    tiny_handle.model.generation_config.eos_token_id = eos  # the backend stops at the model's EOS
    rows_seen: list[int] = []
    hook = tiny_handle.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: rows_seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    config = GenerationConfig(max_new_tokens=budget)
    try:
        plain = HFBackend(tiny_handle, batch_size)
        plain.greedy_loop = False
        expected = plain.generate(PROMPTS, config)
        rows_seen.clear()
        got = HFBackend(tiny_handle, batch_size).generate(PROMPTS, config)
    finally:
        hook.remove()
    assert got == expected
    ended = [until_eos(row, {eos}) for row in answers_token_ids(tiny_handle, budget)]
    assert any(len(row) < budget for row in ended) and any(len(row) == budget for row in ended)
    if batch_size > 1:  # rows that ended early left the batch: some forward passes ran fewer rows
        assert min(rows_seen) < min(batch_size, len(PROMPTS))


def test_sampling_and_the_switch_use_generate(tiny_handle):
    """Sampling always goes through ``generate`` (the loop is greedy only); so does ``greedy_loop = False``."""
    calls = []
    original = tiny_handle.model.generate
    tiny_handle.model.generate = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        backend = HFBackend(tiny_handle, 4)
        backend.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=4))
        assert calls == []
        backend.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=4, do_sample=True, seed=1))
        assert calls == [1]
        backend.greedy_loop = False
        backend.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=4))
        assert calls == [1, 1]
    finally:
        del tiny_handle.model.generate
