"""Where a decoding row's next tokens can be guessed from, so one forward pass can confirm several of them.

Drafting (``models/drafting.py``) verifies guessed tokens with the model's own argmax and keeps only what
it confirms, so a guess changes the cost of greedy decoding, never its output. Three sources, tried in order:

1. **The base's answer to the same prompt** (``base_lookup``): a variant that reworded a phrase often
   realigns with the base a few tokens later.
2. **The row's own prompt and answer** (``self_lookup``, prompt-lookup decoding): answers quote their
   prompt, and a damaged model's babble repeats itself ("legal legal legal ...", ". . ."), which a copy
   from the earlier occurrence of the row's last tokens predicts exactly. The copy may overlap what it
   produces, so a loop of period ``d`` is continued for as long as the room allows, not only ``d`` tokens.
3. **Other answers** (``AnswerPool``, one per model, kept across calls): the base's answers to the other
   prompts and the answers this model has finished. Refusals and disclaimers recur across prompts ("I'm sorry, but I
   can't help with that."), so a row that parted from its own draft often continues like another answer.
"""

from __future__ import annotations

from collections.abc import Sequence

BASE_NGRAM = 2  # tokens of a row's tail matched in the base's answer to the same prompt
SELF_NGRAM = 2  # ... in the row's own prompt and answer
POOL_NGRAM = 3  # ... in other answers: longer, because a short phrase recurs with many continuations
POOL_ENTRIES = 200_000  # n-grams a pool indexes (~40 MB) before it starts over with the next answer


def base_lookup(draft: Sequence[int], generated: Sequence[int], room: int) -> list[int]:
    """The base's tokens after the place its answer contains the row's last ``BASE_NGRAM`` tokens, the one
    nearest to where the row is in its own answer."""
    if room <= 0 or len(generated) < BASE_NGRAM or not draft:
        return []
    tail = list(generated[-BASE_NGRAM:])
    position = len(generated) - 1
    best = None
    for start in range(len(draft) - BASE_NGRAM, -1, -1):
        matches = list(draft[start : start + BASE_NGRAM]) == tail
        if matches and (best is None or abs(start - position) < abs(best - position)):
            best = start
    if best is None:
        return []
    follow = best + BASE_NGRAM
    return list(draft[follow : follow + room])


def self_lookup(prompt: Sequence[int], generated: Sequence[int], room: int) -> list[int]:
    """A copy of what followed the latest earlier occurrence of the row's last ``SELF_NGRAM`` tokens in its
    prompt + answer; where the copy reaches the row's end it goes on copying its own proposal (a loop)."""
    if room <= 0 or len(generated) < SELF_NGRAM:
        return []
    text = [*prompt, *generated]
    end = len(text)
    tail = text[end - SELF_NGRAM :]
    first = tail[0]
    for start in range(end - SELF_NGRAM - 1, -1, -1):
        if text[start] == first and text[start : start + SELF_NGRAM] == tail:
            source = start + SELF_NGRAM
            for _ in range(room):
                text.append(text[source])
                source += 1
            return text[end:]
    return []


class AnswerPool:
    """Answers of one model (``HFBackend`` keeps one across its calls), indexed by every ``POOL_NGRAM`` tokens
    they contain (the latest answer added wins), so a row's tail finds how another answer went on."""

    def __init__(self) -> None:
        self._index: dict[tuple[int, ...], tuple[Sequence[int], int]] = {}

    def add(self, answer: Sequence[int]) -> None:
        """Index ``answer``'s n-grams; a repeated n-gram points at its last occurrence with a continuation."""
        answer = tuple(answer)
        if len(self._index) + len(answer) > POOL_ENTRIES:  # a long study: recent answers are the likely guesses
            self._index.clear()
        for start in range(len(answer) - POOL_NGRAM):
            self._index[answer[start : start + POOL_NGRAM]] = (answer, start + POOL_NGRAM)

    def lookup(self, generated: Sequence[int], room: int) -> list[int]:
        """The tokens that followed the row's last ``POOL_NGRAM`` tokens in an indexed answer."""
        if room <= 0 or len(generated) < POOL_NGRAM:
            return []
        found = self._index.get(tuple(generated[-POOL_NGRAM:]))
        if found is None:
            return []
        answer, follow = found
        return list(answer[follow : follow + room])
