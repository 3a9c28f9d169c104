"""Guessed tokens for drafting (models.lookup): what each source proposes, and that a model decoding with
them still equals plain greedy decoding while confirming several tokens per forward pass."""

from __future__ import annotations

import pytest

from compsafe.models.drafting import draft_greedy
from compsafe.models.lookup import AnswerPool, base_lookup, self_lookup
from conftest import tiny_gpt2, tiny_llama
from greedy_helpers import PAD, hf_greedy, random_prompts


def test_base_lookup_realigns_after_an_inserted_token():
    draft = [5, 6, 7, 8, 9, 10, 11]
    assert base_lookup(draft, [5, 6, 42, 7, 8], room=3) == [9, 10, 11]
    assert base_lookup(draft, [5, 6, 42, 43], room=5) == []
    assert base_lookup(draft, [7, 8], room=0) == []


def test_self_lookup_continues_a_loop_past_its_period():
    assert self_lookup([1, 2], [7, 7, 7], room=5) == [7, 7, 7, 7, 7]
    assert self_lookup([], [4, 5, 6, 4, 5, 6, 4, 5], room=7) == [6, 4, 5, 6, 4, 5, 6]
    assert self_lookup([], [4, 5, 6, 4, 5], room=0) == []


def test_self_lookup_quotes_the_prompt_and_takes_the_latest_match():
    prompt = [10, 11, 12, 13, 14, 10, 11, 20]
    assert self_lookup(prompt, [3, 10, 11], room=2) == [20, 3]  # the later "10 11" in the prompt
    assert self_lookup(prompt, [3, 12, 13], room=3) == [14, 10, 11]
    assert self_lookup(prompt, [3, 99], room=3) == []
    assert self_lookup(prompt, [3], room=3) == []  # shorter than the n-gram


def test_answer_pool_continues_like_another_answer():
    pool = AnswerPool()
    pool.add([1, 2, 3, 4, 5, 6])
    assert pool.lookup([9, 2, 3, 4], room=2) == [5, 6]
    assert pool.lookup([9, 2, 3, 4], room=9) == [5, 6]
    assert pool.lookup([4, 5, 6], room=3) == []  # an answer's last n-gram has no continuation
    pool.add([2, 3, 4, 8])
    assert pool.lookup([2, 3, 4], room=2) == [8]  # the latest answer added wins
    assert pool.lookup([3, 4], room=2) == []


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_a_looping_model_without_drafts_confirms_its_loop_in_blocks(batch_size):
    """Tiny random GPT-2 repeats one token: lookups in its own answer cut the passes, the ids stay
    ``generate``'s."""
    model, prompts = tiny_gpt2(), random_prompts(8, seed=3)
    reference = hf_greedy(model, prompts, 24, None)
    tokens, counts = draft_greedy(model, prompts, [None] * 8, max_new_tokens=24, eos_ids=set(), pad_id=PAD,
                                  batch_size=batch_size)  # fmt: skip
    assert tokens == reference
    assert counts.accepted > len(prompts) * 24 // 2
    plain_passes = 24 * -(-len(prompts) // batch_size)
    assert counts.forwards < plain_passes // 2


def test_a_model_that_does_not_repeat_is_still_exact():
    model, prompts = tiny_llama(seed=0, initializer_range=0.2), random_prompts(8, seed=3)
    reference = hf_greedy(model, prompts, 24, eos=5)
    tokens, _ = draft_greedy(model, prompts, [None] * 8, max_new_tokens=24, eos_ids={5}, pad_id=PAD, batch_size=3)
    assert tokens == reference


def test_without_lookups_a_row_without_a_draft_takes_one_token_per_pass():
    """``--no-draft`` turns the lookups off too: the looping model then needs a pass per token."""
    model, prompts = tiny_gpt2(), random_prompts(4, seed=3)
    tokens, counts = draft_greedy(model, prompts, [None] * 4, max_new_tokens=12, eos_ids=set(), pad_id=PAD,
                                  lookups=False)  # fmt: skip
    assert tokens == hf_greedy(model, prompts, 12, None)
    assert (counts.accepted, counts.forwards) == (0, 12)


def test_a_full_pool_starts_over(monkeypatch):
    from compsafe.models import lookup

    monkeypatch.setattr(lookup, "POOL_ENTRIES", 8)
    pool = AnswerPool()
    pool.add([1, 2, 3, 4, 5, 6])
    assert pool.lookup([1, 2, 3], room=2) == [4, 5]
    pool.add([7, 8, 9, 10, 11, 12])
    assert pool.lookup([1, 2, 3], room=2) == []  # forgotten: the index would have passed 8 entries
    assert pool.lookup([7, 8, 9], room=2) == [10, 11]


def test_answers_of_an_earlier_call_are_guesses_for_the_next():
    """A pool kept across calls (one per backend) lets a later call confirm an earlier answer in blocks."""
    model, prompts = tiny_llama(seed=0, initializer_range=0.2), random_prompts(4, seed=5)
    pool = AnswerPool()
    first, cold = draft_greedy(model, prompts, [None] * 4, max_new_tokens=16, eos_ids=set(), pad_id=PAD, pool=pool)
    again, warm = draft_greedy(model, prompts, [None] * 4, max_new_tokens=16, eos_ids=set(), pad_id=PAD, pool=pool)
    assert again == first == hf_greedy(model, prompts, 16, None)
    assert warm.accepted > cold.accepted and warm.forwards < cold.forwards
