"""A harmful request laid out as token ids around a suffix slot, exactly as ``refusal_margins`` scores it.

Why this exists: the search edits token ids, but the claim it makes ("this suffix lowers the variant's refusal
margin") is about text, re-scored through ``HFBackend.loglikelihood``. So the search scores the very token
sequence that path builds -- the chat template with the user's message ``request + decode(suffix)``, its
trailing whitespace moved into each opening (lm-eval's split, ``HFBackend._encode_pair``) -- and only accepts a
suffix whose text tokenizes back to the same ids (``AttackPrompt.round_trips``). Then search numbers and
re-scored numbers are the same numbers, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from compsafe.errors import ConfigError
from compsafe.models.backend import HFBackend
from compsafe.probes.refusal_signal import COMPLIANCE_OPENINGS, REFUSAL_OPENINGS

MARKER = "\ue000"  # a private-use character: where the suffix goes in the rendered chat template
SUFFIX_SEEDS = (" !", "!", " x", "x")  # GCG starts from "! ! ! ..."; the others when "!" does not round-trip


def suffix_text(tokenizer: Any, ids: Sequence[int]) -> str:
    """The text a suffix's ids decode to (what a user would paste after the request)."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


@dataclass(frozen=True)
class AttackPrompt:
    """``prefix + suffix + tail`` is the scored context; each opening continues it.

    ``prefix``: the chat template up to and including the request; ``tail``: what follows the suffix up to the
    assistant header (trailing whitespace removed: it belongs to the openings); ``openings``: the continuation
    ids of ``REFUSAL_OPENINGS`` then ``COMPLIANCE_OPENINGS``.
    """

    backend: HFBackend
    request: str
    prefix: tuple[int, ...]
    tail: tuple[int, ...]
    openings: tuple[tuple[int, ...], ...]

    @property
    def n_refusal(self) -> int:
        return len(REFUSAL_OPENINGS)

    def user_message(self, suffix: Sequence[int]) -> str:
        """The user message the backend sees for ``suffix`` (the request, then the suffix's text)."""
        return self.request + suffix_text(self.backend.tokenizer, suffix)

    def scored_ids(self, suffix: Sequence[int]) -> tuple[list[int], list[list[int]]]:
        """(context ids, continuation ids per opening) as ``loglikelihood`` encodes this suffix's prompt."""
        context = self.backend.format_chat(self.user_message(suffix))
        pairs = [self.backend._encode_pair(context, opening, special_tokens=False) for opening in _openings()]
        return pairs[0][0], [cont for _, cont in pairs]

    def round_trips(self, suffix: Sequence[int]) -> bool:
        """Whether the suffix's text re-tokenizes to exactly the ids the search scores."""
        context, continuations = self.scored_ids(suffix)
        expected = [*self.prefix, *suffix, *self.tail]
        return context == expected and all(
            tuple(c) == o for c, o in zip(continuations, self.openings, strict=True)
        )


def _openings() -> tuple[str, ...]:
    return REFUSAL_OPENINGS + COMPLIANCE_OPENINGS


def build_prompt(backend: HFBackend, request: str) -> AttackPrompt:
    """Lay ``request`` out around an empty suffix slot (the template split at a marker character)."""
    rendered = backend.format_chat(request + MARKER)
    if rendered.count(MARKER) != 1:
        raise ConfigError("the chat template does not copy the user message verbatim: cannot place a suffix")
    before, after = rendered.split(MARKER)
    encode = backend.tokenizer
    prefix = encode(before, add_special_tokens=False)["input_ids"]
    # what _encode_pair does to the context: trailing whitespace moves into every continuation
    tail = encode(after.rstrip(), add_special_tokens=False)["input_ids"] if after.rstrip() else []
    context = backend.format_chat(request)
    openings = tuple(tuple(backend._encode_pair(context, o, special_tokens=False)[1]) for o in _openings())
    return AttackPrompt(backend, request, tuple(prefix), tuple(tail), openings)


def initial_suffix(prompt: AttackPrompt, length: int) -> list[int]:
    """GCG's "! ! ! ..." start (or the first seed that round-trips at this length)."""
    if length < 1:
        raise ConfigError(f"--suffix-length {length}: use 1 or more")
    for seed in SUFFIX_SEEDS:
        ids = prompt.backend.tokenizer(seed, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and prompt.round_trips(ids * length):
            return ids * length
    raise ConfigError(f"no starting suffix round-trips through the tokenizer for request {prompt.request[:40]!r}")


class AllowedTokens:
    """Which token ids a suffix may use: printable ASCII text, not special tokens (GCG's filter)."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size

    @cached_property
    def mask(self) -> torch.Tensor:
        special = set(self.tokenizer.all_special_ids)
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool)
        for token in range(min(self.vocab_size, len(self.tokenizer))):
            if token in special:
                continue
            text = self.tokenizer.decode([token])
            allowed[token] = bool(text.strip()) and text.isascii() and text.isprintable()
        return allowed
