"""The shared prompt prefix computed once (models.prefix_cache) gives the same logits and greedy tokens."""

from __future__ import annotations

import torch

from compsafe.models.drafting import draft_greedy
from compsafe.models.prefix_cache import MIN_PREFIX_TOKENS, PrefixCache, cache_keyword, shared_prefix_length
from conftest import tiny_llama
from greedy_helpers import PAD, hf_greedy, left_padded, perturbed, random_prompts


def chat_like(n: int, seed: int) -> list[list[int]]:
    """A fixed 'system prompt' of 9 tokens, then each prompt's own tokens (as a chat template lays them out)."""
    system = [1, 40, 41, 42, 43, 44, 45, 2, 1]
    return [system + suffix for suffix in random_prompts(n, seed)]


def test_shared_prefix_leaves_every_prompt_a_token():
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter prompt keeps its last token
    assert shared_prefix_length([[7, 2], [1, 2]]) == 0


def test_prefix_cache_logits_equal_the_full_forward():
    model = tiny_llama(seed=0, initializer_range=0.2)
    prompts = chat_like(5, seed=2)
    ids, mask = left_padded(prompts)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        full = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        cached = PrefixCache(model)
        length, cache = cached.start(prompts, shared_prefix_length(prompts))
        assert length == 9
        # the same rows, the left padding now between the cached prefix and each suffix
        suffix, suffix_mask = left_padded([p[length:] for p in prompts])
        whole_mask = torch.cat([torch.ones(5, length, dtype=torch.long), suffix_mask], 1)
        suffix_positions = length + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=suffix, attention_mask=whole_mask, position_ids=suffix_positions,
                    **{cache_keyword(model): cache})  # fmt: skip
    torch.testing.assert_close(out.logits[:, -1], full, rtol=1e-5, atol=1e-5)
    assert not torch.equal(full[0], full[1])  # the rows really differ: the suffixes count


def test_greedy_with_prefix_cache_equals_generate():
    base = tiny_llama(seed=0, initializer_range=0.2)
    variant = perturbed(base, 0.003)
    prompts = chat_like(8, seed=5)
    expected = hf_greedy(variant, prompts, 12, None)
    cached = PrefixCache(variant)
    for drafts in ([None] * 8, hf_greedy(base, prompts, 12, None)):
        for start in (0, 4):
            got, _ = draft_greedy(variant, prompts[start : start + 4], drafts[start : start + 4], max_new_tokens=12,
                                  eos_ids=set(), pad_id=PAD, prefix_cache=cached,
                                  prefix_length=9)  # fmt: skip
            assert got == expected[start : start + 4]
    assert cached.reused == 3  # one prefix forward for the model, then reused across batches and calls


def test_short_shared_prefix_is_not_cached():
    model = tiny_llama(seed=0)
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    assert shared_prefix_length(prompts) < MIN_PREFIX_TOKENS
    length, cache = PrefixCache(model).start(prompts, 10)
    assert length == 0 and cache.get_seq_length() == 0


def test_backend_generation_with_prefix_cache_equals_without(tiny_handle):
    """HFBackend.generate (the base's path, sampling too) and the drafted path start from the cached chat
    prefix and answer as if every prompt ran whole."""
    from compsafe.models import GenerationConfig, HFBackend
    from compsafe.models.drafting import DraftBook, DraftRole
    from conftest import CHAT_TEMPLATE

    # a template with a default system prompt, as SmolLM2's and most chat models' have
    system = "<|im_start|>system\nYou are a careful assistant.<|im_end|>\n"
    tiny_handle.tokenizer.chat_template = "{{ '" + system.replace("\n", "\\n") + "' }}" + CHAT_TEMPLATE
    prompts = ["How do I bake bread?", "Tell me a story about a cat.", "What is 2+2?", "Name a colour.", "Hi"]
    assert HFBackend(tiny_handle).format_chat("Hi").startswith(system)
    whole = HFBackend(tiny_handle, batch_size=2)
    whole.prefix_cache = None
    cached = HFBackend(tiny_handle, batch_size=2)
    for config in (GenerationConfig(max_new_tokens=10), GenerationConfig(max_new_tokens=6, do_sample=True, seed=3)):
        assert cached.generate(prompts, config) == whole.generate(prompts, config)
    assert cached.prefix_cache.reused >= 4  # one prefix forward; every later batch reused it
    book = DraftBook()
    cached.drafting = DraftRole(book, "base", record=True)
    cached.generate(prompts, GenerationConfig(max_new_tokens=10))
    with torch.no_grad():
        for parameter in tiny_handle.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.002)
    variant = HFBackend(tiny_handle, batch_size=2, drafting=DraftRole(book, "v", record=False))
    plain = HFBackend(tiny_handle, batch_size=2)
    plain.prefix_cache = None
    assert variant.generate(prompts, GenerationConfig(max_new_tokens=10)) == plain.generate(
        prompts, GenerationConfig(max_new_tokens=10)
    )
    assert variant.prefix_cache.reused >= 2
