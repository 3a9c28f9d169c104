"""``long_context``: passkey retrieval at increasing context lengths and needle positions.

Why: compression error accumulates with depth *and* with distance (attention over thousands of positions
amplifies small weight errors), so a variant can look fine on 100-token probes and fail at 2k tokens. The
passkey test (Mohtashami & Jaggi 2023) isolates retrieval: a random 5-digit key is hidden at the start, middle
or end of a long haystack of unrelated text and asked for at the end.

Item = (target length in tokens, needle position, a seeded 5-digit passkey, 9 seeded distractor keys). The
haystack is the project's own prose (``passages.jsonl``, sentences in order from a per-item offset, repeated
as needed), assembled at evaluation time with the model's tokenizer so the chat-formatted prompt is the
target length. Scoring is by log-likelihood, not generation: the prompt ends with the assistant's "The pass key
is" and the backend scores " <key>" for the true key and the distractors with one shared context pass.

* ``correct`` (headline ``accuracy``): every token of the true key is the argmax given the prompt, i.e.
  exactly what greedy decoding would write; chance is ~1e-5. One context pass instead of prefill + decode.
* ``choice_correct`` (``choice_accuracy``): the true key outranks the 9 distractors (chance 10%); a softer
  signal that still moves when exact retrieval is already lost. Three of the distractors are planted in the
  haystack as decoys ("The locker code is <key>."), so copying any in-context number does not win.
* ``passkey_logprob``: log P(true key), a graded signal for paired deltas.

Lengths: 256, 512, 1024, 2048, 4096, 8192, kept up to ``max_length`` (default **2048**, because one CPU
forward at 8k tokens of the default 135M model takes minutes; ``long_context:max_length=8192`` or
``long_context:8192`` raises it). Items longer than the evaluated model's window are recorded as skipped
(``skipped: beyond_window``) and excluded from every rate, so a short-window model is not scored as failing.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, ClassVar

from compsafe.errors import DataFileError, UnknownNameError
from compsafe.probes.base import PROBES, DatasetInfo, Item, Probe, ProbeContext, Record
from compsafe.probes.datasets import DatasetSource, balanced_limit, shipped
from compsafe.probes.declarations import HIGHER, Metric, count, nats, rate
from compsafe.standards import Standards

ALL_LENGTHS: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8192)
DEFAULT_MAX_LENGTH = 2048
POSITIONS: dict[str, float] = {"start": 0.0, "middle": 0.5, "end": 1.0}
REPEATS = 3
N_DISTRACTORS = 9
INTRO = (
    "There is a pass key hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the pass key."
)
QUESTION = "What is the pass key?"
ANSWER_PREFIX = "The pass key is"
NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."
# Decoys: the first distractor keys also appear in the haystack, as other 5-digit codes, so the 10-way choice
# tests retrieving *the pass key* rather than copying any number seen in context (without them every model,
# even a 50%-pruned one with perplexity x38, chose the true key 100% of the time).
DECOY = "The locker code is {key}."
DECOY_DEPTHS: tuple[float, ...] = (0.2, 0.45, 0.8)
ANSWER_RESERVE = 8  # tokens kept free for the scored key after the prompt


def passkey_rng(item_id: str) -> random.Random:
    """A per-item RNG seeded by the item id, so keys never depend on item order or --limit."""
    return random.Random(int(hashlib.sha256(item_id.encode()).hexdigest()[:16], 16))


def make_items(max_length: int = DEFAULT_MAX_LENGTH, repeats: int = REPEATS) -> list[dict[str, Any]]:
    """Every (length, position, repeat) cell up to ``max_length``, in the order a --limit should take them."""
    rows = []
    for length in [n for n in ALL_LENGTHS if n <= max_length]:
        for position in POSITIONS:
            for rep in range(repeats):
                item_id = f"passkey-{length}-{position}-{rep}"
                rng = passkey_rng(item_id)
                key = rng.randint(10000, 99999)
                distractors: list[int] = []
                while len(distractors) < N_DISTRACTORS:
                    d = rng.randint(10000, 99999)
                    if d != key and d not in distractors:
                        distractors.append(d)
                rows.append(
                    {
                        "id": item_id,
                        "cell": f"{length}/{position}",
                        "length": length,
                        "position": position,
                        "passkey": str(key),
                        "distractors": [str(d) for d in distractors],
                        "filler_offset": rng.randrange(1000),
                    }
                )
    return rows


@lru_cache(maxsize=1)
def haystack_sentences() -> tuple[str, ...]:
    """Sentences of the shipped passages, without any 5-digit number that could be mistaken for a key."""
    text = " ".join(row["text"] for row in shipped("passages.jsonl")())
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    return tuple(s for s in sentences if not re.search(r"\d{5,}", s))


def build_prompt(
    count_tokens: Any,
    length: int,
    position: str,
    passkey: str,
    filler_offset: int,
    decoys: Sequence[str] = (),
) -> tuple[str, float]:
    """User message whose chat-formatted prompt is about ``length`` tokens; returns it and the needle depth.

    ``count_tokens(text) -> int`` measures the whole prompt (chat template included) the way it will be scored;
    filler sentences are added until the budget is reached, then the needle goes in at ``POSITIONS[position]``
    and each decoy key (at most ``len(DECOY_DEPTHS)``) at its depth in ``DECOY_DEPTHS``.
    """
    sentences = haystack_sentences()
    needle = NEEDLE.format(key=passkey)
    decoy_lines = [DECOY.format(key=key) for key in decoys[: len(DECOY_DEPTHS)]]

    def render(filler: list[str], at: int) -> str:
        inserts = [(at, 0, needle)] + [
            (int(depth * len(filler) + 0.5), 1, line) for depth, line in zip(DECOY_DEPTHS, decoy_lines, strict=False)
        ]
        body = list(filler)
        for index, _, line in sorted(inserts, reverse=True):  # from the back, so earlier indices stay valid
            body.insert(index, line)
        return f"{INTRO}\n\n{' '.join(body)}\n\n{QUESTION}"

    budget = length - ANSWER_RESERVE
    filler: list[str] = []
    # grow in coarse steps (one tokenization per step), then back off one sentence at a time
    step = 8
    index = filler_offset
    while count_tokens(render(filler, 0)) < budget:
        filler += [sentences[(index + i) % len(sentences)] for i in range(step)]
        index += step
    while filler and count_tokens(render(filler, 0)) > budget:
        filler.pop()
    at = int(POSITIONS[position] * len(filler) + 0.5)  # half up: 'middle' of one sentence is after it
    return render(filler, at), at / max(len(filler), 1)


def parse_options(spec: str | None) -> dict[str, int]:
    """``None`` | ``compsafe`` | ``4096`` | ``max_length=4096`` | ``max_length=4096;repeats=2``."""
    options = {"max_length": DEFAULT_MAX_LENGTH, "repeats": REPEATS}
    if spec in (None, "", "compsafe"):
        return options
    assert spec is not None
    for part in spec.split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = "max_length", key
        key = key.strip()
        if key not in options or not value.strip().isdigit() or int(value) < 1:
            raise UnknownNameError(
                f"long_context option {part!r} not understood: use long_context:max_length=N (tokens, e.g. 4096) "
                "or long_context:repeats=N"
            )
        options[key] = int(value)
    if options["max_length"] < ALL_LENGTHS[0]:
        raise DataFileError(f"long_context max_length must be at least {ALL_LENGTHS[0]} tokens")
    return options


@PROBES.register("long_context")
class LongContextProbe(Probe):
    name: ClassVar[str] = "long_context"
    description: ClassVar[str] = (
        "passkey retrieval at 256..2048 tokens (start/middle/end); accuracy per length (cap: long_context:N)"
    )
    outcome: ClassVar[str] = "retrieval"
    headline_metric: ClassVar[str] = "accuracy"
    standards: ClassVar[Standards] = Standards(
        owasp=(),
        nist=("MEASURE 2.3", "MEASURE 2.5"),
        why=(
            "retrieval of a passkey from long inputs: a capability short tests miss (seed 000's long-context "
            "risk)"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        rate("accuracy", HIGHER, change="delta", test="mcnemar", paired=("base_accuracy", "variant_accuracy")),
        rate("choice_accuracy", HIGHER),
        nats("mean_passkey_logprob", HIGHER, change="passkey_logprob_delta"),
        count("reliable_length", optional=True),  # tokens
        rate("by_length.*.*accuracy", HIGHER),
        rate("by_position.*.*accuracy", HIGHER),
        count("by_length.*.n"),
        count("by_position.*.n"),
        count("n"),
        count("n_evaluated"),
        count("n_skipped"),
    )
    version: ClassVar[str] = "2"  # 2: decoy keys in the haystack
    sources: ClassVar[dict[str, DatasetSource]] = {
        "compsafe": DatasetSource(
            "compsafe",
            "seeded 5-digit passkeys in compsafe/data/passages.jsonl prose (project-authored)",
            "Apache-2.0",
            make_items,
        ),
    }

    @classmethod
    def from_spec(cls, spec: str | None, limit: int | None) -> LongContextProbe:
        options = parse_options(spec)
        rows = make_items(options["max_length"], options["repeats"])
        picked = balanced_limit(rows, limit, key="cell")
        items = [Item(r["id"], {k: v for k, v in r.items() if k not in ("id", "cell")}) for r in picked]
        info = DatasetInfo(
            "compsafe", cls.sources["compsafe"].source, "Apache-2.0", len(items), {"available": len(rows), **options}
        )
        return cls(items, info)

    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        backend = context.backend
        window = backend.handle.max_length
        chat = backend.handle.has_chat_template

        def full_prompt(user: str) -> str:
            return backend.format_chat(user) + ANSWER_PREFIX

        def count_tokens(user: str) -> int:
            return len(backend.tokenizer(full_prompt(user), add_special_tokens=not chat)["input_ids"])

        for item in items:
            data = item.data
            record: Record = {
                "item_id": item.id,
                "length": data["length"],
                "position": data["position"],
                "passkey": data["passkey"],
            }
            if data["length"] > window:
                record.update(skipped="beyond_window", window=window)
                context.progress(1)
                yield [record]
                continue
            user, depth = build_prompt(count_tokens, data["length"], data["position"], data["passkey"],
                                       data["filler_offset"], decoys=data["distractors"])
            keys = [data["passkey"], *data["distractors"]]
            scores = backend.shared_context_loglikelihood(full_prompt(user), [f" {k}" for k in keys],
                                                          chat_formatted=chat)
            true = scores[0]
            rank = 1 + sum(s.logprob > true.logprob for s in scores[1:])
            record.update(
                skipped=None,
                n_tokens=count_tokens(user),
                depth=round(depth, 4),
                correct=bool(true.is_greedy),
                choice_correct=rank == 1,
                rank=rank,
                passkey_logprob=true.logprob,
            )
            context.progress(1)
            yield [record]

    def summarize(self, records: Sequence[Record]) -> dict[str, Any]:
        return summarize_retrieval(records)


def _rate(values: list[bool]) -> float:
    return sum(values) / len(values) if values else math.nan


def evaluated(records: Sequence[Record]) -> list[Record]:
    """Records the model could be scored on (within its window)."""
    return [r for r in records if not r.get("skipped")]


def reliable_length(by_length: dict[int, float], threshold: float = 0.5) -> int | None:
    """Largest length L such that accuracy >= ``threshold`` at every evaluated length up to L (None: not even
    the shortest). A single number a report can show for "where the model falls off"."""
    best = None
    for length in sorted(by_length):
        if by_length[length] >= threshold:
            best = length
        else:
            break
    return best


def summarize_retrieval(records: Sequence[Record]) -> dict[str, Any]:
    scored = evaluated(records)
    by_length: dict[int, list[Record]] = {}
    by_position: dict[str, list[Record]] = {}
    for r in scored:
        by_length.setdefault(int(r["length"]), []).append(r)
        by_position.setdefault(str(r["position"]), []).append(r)

    def cell(rows: list[Record]) -> dict[str, float]:
        return {
            "accuracy": _rate([bool(r["correct"]) for r in rows]),
            "choice_accuracy": _rate([bool(r["choice_correct"]) for r in rows]),
            "n": len(rows),
        }

    length_acc = {length: cell(rows)["accuracy"] for length, rows in by_length.items()}
    logprobs = [float(r["passkey_logprob"]) for r in scored]
    return {
        "accuracy": _rate([bool(r["correct"]) for r in scored]),
        "choice_accuracy": _rate([bool(r["choice_correct"]) for r in scored]),
        "mean_passkey_logprob": sum(logprobs) / len(logprobs) if logprobs else math.nan,
        "n": len(records),
        "n_evaluated": len(scored),
        "n_skipped": len(records) - len(scored),
        "reliable_length": reliable_length(length_acc),
        "by_length": {str(k): cell(v) for k, v in sorted(by_length.items())},
        "by_position": {k: cell(by_position[k]) for k in POSITIONS if k in by_position},
    }

