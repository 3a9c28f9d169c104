"""Judging with a local causal LM's first answer token: shared by the ``llm:``, ``llamaguard:`` and ``harmbench:``
judges.

Why the first token: every one of these judges is asked a question whose answer starts with one of two words
(yes/no, safe/unsafe). Reading the next-token log-probabilities of both costs one forward pass, gives a
probability rather than a string to parse, and cannot be derailed by a rambling generation. The words are
compared through their first tokens (every spelling given, with and without a leading space), and a token
that starts both a positive and a negative word is dropped, so the two sides never share probability mass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compsafe.errors import UnknownNameError


def require_local_model(path: str, form: str) -> str:
    """The model folder of a ``form:PATH`` judge, or a one-line error naming the form to use."""
    if not path or not Path(path).expanduser().exists():
        raise UnknownNameError(f"judge model {path!r} does not exist: use --judge {form}:/path/to/local/model")
    return str(Path(path).expanduser())


def path_digest(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:8]


def first_token_ids(tokenizer: Any, words: Sequence[str]) -> set[int]:
    """First token id of each spelling (as the tokenizer encodes it without special tokens)."""
    ids = set()
    for word in words:
        encoded = tokenizer(word, add_special_tokens=False)["input_ids"]
        if encoded:
            ids.add(int(encoded[0]))
    return ids


class FirstTokenScorer:
    """p(positive word | text) against a negative word, from one local causal LM (loaded on first use)."""

    def __init__(
        self,
        model_path: str,
        positive: Sequence[str],
        negative: Sequence[str],
        batch_size: int = 8,
        *,
        skip_whitespace: bool = False,
    ):
        self.model_path = model_path
        self.positive = tuple(positive)
        self.negative = tuple(negative)
        self.batch_size = batch_size
        self.skip_whitespace = skip_whitespace
        self._backend: Any = None
        self._ids: tuple[list[int], list[int]] = ([], [])

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from compsafe.models import HFBackend, LoadOptions, load_model

            handle = load_model(self.model_path, LoadOptions())
            self._backend = HFBackend(handle, self.batch_size)
            positive = first_token_ids(handle.tokenizer, self.positive)
            negative = first_token_ids(handle.tokenizer, self.negative)
            self._ids = (sorted(positive - negative), sorted(negative - positive))
            if not self._ids[0] or not self._ids[1]:
                from compsafe.judges.embedding import JudgeUnavailableError

                raise JudgeUnavailableError(
                    f"{self.model_path}: the tokenizer cannot tell {self.positive[0]!r} from {self.negative[0]!r} "
                    "by their first token; this model cannot be used as this judge"
                )
        return self._backend

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def token_ids(self) -> tuple[list[int], list[int]]:
        """(positive, negative) first-token ids, after loading."""
        self.backend  # noqa: B018  (loads the model and fills the ids)
        return self._ids

    def probability(self, texts: Sequence[str], *, templated: bool) -> list[float]:
        """p(positive) for each text. ``templated``: the texts already went through the chat template (special
        tokens included), so they are encoded as-is; otherwise they are encoded as plain text (BOS added)."""
        import torch

        if not texts:
            return []
        backend = self.backend
        logprobs = backend.next_token_logprobs(list(texts), chat=False, templated=templated)
        if self.skip_whitespace:
            logprobs = self._past_whitespace(list(texts), logprobs, templated)
        positive = torch.logsumexp(logprobs[:, self._ids[0]], dim=-1)
        negative = torch.logsumexp(logprobs[:, self._ids[1]], dim=-1)
        return [float(x) for x in torch.sigmoid(positive - negative)]

    def _past_whitespace(self, texts: list[str], logprobs: Any, templated: bool) -> Any:
        """Where the most likely first token is whitespace (a template that stops right after the assistant
        header, so the model writes "\\n\\n" before "safe"), read the answer one token later instead."""
        tokenizer = self.tokenizer
        top = [int(t) for t in logprobs.argmax(dim=-1)]
        answer_ids = set(self._ids[0]) | set(self._ids[1])
        redo = [i for i, t in enumerate(top) if t not in answer_ids and not tokenizer.decode([t]).strip()]
        if redo:
            extended = [texts[i] + tokenizer.decode([top[i]]) for i in redo]
            logprobs[redo] = self.backend.next_token_logprobs(extended, chat=False, templated=templated)
        return logprobs
