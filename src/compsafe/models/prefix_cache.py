"""The prompts' shared token prefix (the chat template's system prompt and role header) encoded once per model.

Every chat prompt of a study starts with the same tokens (``<|im_start|>system ... <|im_end|>
<|im_start|>user``), often as many as the user's message itself. ``PrefixCache`` runs them once per model
and hands each batch a copy of their KV cache expanded to the batch; the batch then feeds only its
suffixes. Layout: ``[prefix][left padding][suffix]``: the padding sits between the shared prefix and each
row's suffix as masked-out cache columns, and positions count a row's real tokens only (the prefix is
positions 0..L-1 for every row, the suffix continues at L), which is exactly what left-padded generation
computes, so greedy outputs are unchanged (tests/models/test_prefix_cache.py compares token ids).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import torch

MIN_PREFIX_TOKENS = 4  # a shorter shared prefix is not worth a separate forward pass
KEPT_PREFIXES = 8  # prefix caches kept per model (a batch whose prompts share more than the template adds one)


def cache_keyword(model: Any) -> str:
    """The forward's name for the KV cache (transformers 5 renamed ``past_key_values`` to ``cache``)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own (the last prompt token
    is what the first new token is predicted from)."""
    if not sequences:
        return 0
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n


class PrefixCache:
    """KV caches of shared prompt prefixes for one model (the backend of one model holds one)."""

    def __init__(self, model: Any, device: torch.device | str = "cpu") -> None:
        self.model = model
        self.device = device
        self._caches: dict[tuple[int, ...], Any] = {}
        self.reused = 0  # batches that started from a cached prefix

    def start(self, prompts: Sequence[Sequence[int]], length: int) -> tuple[int, Any]:
        """(prefix length, a KV cache holding the prompts' first ``length`` tokens for every row); (0, an empty
        cache) when that is under ``MIN_PREFIX_TOKENS``. ``length``: what all prompts of the caller's request
        share (``shared_prefix_length`` over the request, not one batch, so every batch reuses one prefix)."""
        from transformers.cache_utils import DynamicCache

        length = min(length, shared_prefix_length(prompts))
        if length < MIN_PREFIX_TOKENS:
            return 0, DynamicCache(config=self.model.config)
        prefix = tuple(int(t) for t in prompts[0][:length])
        if prefix not in self._caches:
            cache = DynamicCache(config=self.model.config)
            ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
            self.model(input_ids=ids, use_cache=True, **{cache_keyword(self.model): cache})
            if len(self._caches) >= KEPT_PREFIXES:  # batches share the system prompt; a few more are rare
                self._caches.pop(next(iter(self._caches)))
            self._caches[prefix] = cache
        else:
            self.reused += 1
        cache = copy.deepcopy(self._caches[prefix])
        cache.batch_repeat_interleave(len(prompts))
        return length, cache

    def generate_inputs(
        self, prompts: Sequence[Sequence[int]], length: int, pad_id: int
    ) -> tuple[torch.Tensor, torch.Tensor, Any] | None:
        """``model.generate`` inputs that start from the cached prefix: ids and attention mask laid out as
        ``[prefix][left padding][suffix]`` and the prefix's KV cache (generate feeds only the uncached
        columns and counts positions from the mask); None when the prompts share no prefix worth caching."""
        length, cache = self.start(prompts, length)
        if not length:
            return None
        width = max(len(p) for p in prompts) - length
        ids = torch.full((len(prompts), length + width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        ids[:, :length] = torch.tensor(list(prompts[0][:length]), dtype=torch.long)
        mask[:, :length] = 1
        for row, prompt in enumerate(prompts):
            ids[row, length + width - (len(prompt) - length) :] = torch.tensor(list(prompt[length:]), dtype=torch.long)
            mask[row, length + width - (len(prompt) - length) :] = 1
        return ids.to(self.device), mask.to(self.device), cache
