"""The base's greedy answers as drafts for its variants: speculative verification, exact for greedy decoding.

A study generates the same prompts with the base and with every compressed variant, and a variant mostly
answers like the base. So the base's generated tokens are kept in a ``DraftBook`` (keyed by the exact prompt
token ids and the generation config), and a variant's greedy generation starts from them: one teacher-forced
forward pass of the variant over prompt + draft gives its own argmax at every draft position; tokens are
accepted up to the first position where the variant disagrees, the variant's own token is taken there, and
decoding continues from the KV cache, re-drafting from the base's continuation (an n-gram lookup in the
base's answer) so a variant that differs by a word and then realigns is verified in blocks again.

Why it is exact: every token kept is the variant's own argmax given the variant's own earlier tokens, the
same quantity plain greedy decoding computes one token at a time. Only floating-point summation order
differs (a block forward instead of single-token steps, masked-out cache columns), which can flip a top-2
near-tie in bf16; in float32 the tests compare token ids with ``model.generate``.

Ragged rows in one batch: rejected draft tokens stay in the KV cache as masked-out "holes" (attention mask
0) instead of cropping per row, and positions count only a row's valid tokens, as ``generate`` counts them
from the attention mask. Finished rows leave the batch (``batch_select_indices``), so a batch where most
variants agree with the base costs one forward pass plus a few short decode steps for the rows that differ.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from compsafe.models.prefix_cache import PrefixCache, cache_keyword

# generation_config fields that change greedy decoding when set (logits processors, stopping criteria, beam
# or contrastive search), with their neutral value: a model whose config sets one decodes with plain
# ``generate``, never with drafts, because the draft loop applies none of them.
_NEUTRAL_GENERATION = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "min_length": 0,
    "min_new_tokens": 0,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "exponential_decay_length_penalty": None,
    "stop_strings": None,
    "guidance_scale": 1.0,
    "watermarking_config": None,
    "max_time": None,
    "penalty_alpha": None,
    "dola_layers": None,
    "diversity_penalty": 0.0,
    "constraints": None,
    "force_words_ids": None,
    "token_healing": False,
}

LOOKUP_NGRAM = 2  # tokens of the variant's own tail matched in the base's answer to re-draft after a rejection
LOOKUP_TOKENS = 16  # at most this many re-drafted tokens verified per decode step
LOOKUP_START = 4  # a row's first re-draft after a rejection; doubled while accepted whole, halved when cut short


def plain_greedy_reason(model: Any) -> str | None:
    """Why drafting cannot reproduce ``model.generate``'s greedy output for this model (None: it can)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    generation = getattr(model, "generation_config", None)
    for name, neutral in _NEUTRAL_GENERATION.items():
        value = getattr(generation, name, None)
        if value is not None and value != neutral and value not in ((), []):
            return f"generation_config.{name}={value!r} changes greedy decoding"
    try:
        layers = DynamicCache(config=config).layers
    except Exception as exc:  # a config the dynamic cache cannot describe
        return f"no dynamic KV cache for this model ({exc})"
    if any(type(layer) is not DynamicLayer for layer in layers):
        return "sliding-window or recurrent cache layers"
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT passes kwargs on
    if not {"position_ids", "attention_mask", "logits_to_keep"} <= set(inspect.signature(inner.forward).parameters):
        return "forward takes no position_ids/attention_mask/logits_to_keep"
    return None


def eos_set(eos: int | Sequence[int] | None) -> set[int]:
    """``generate``'s eos_token_id (one id or a list) as a set."""
    if eos is None:
        return set()
    return {int(eos)} if isinstance(eos, int) else {int(e) for e in eos}


@dataclass
class DraftCounts:
    """What drafting saved for one model: output tokens, how many were accepted draft tokens, forward passes."""

    generated: int = 0
    accepted: int = 0
    forwards: int = 0
    rows: int = 0

    def add(self, other: DraftCounts) -> None:
        self.generated += other.generated
        self.accepted += other.accepted
        self.forwards += other.forwards
        self.rows += other.rows

    def to_dict(self) -> dict[str, Any]:
        share = self.accepted / self.generated if self.generated else None
        return {"generated_tokens": self.generated, "accepted_tokens": self.accepted,
                "accepted_share": None if share is None else round(share, 4), "forward_passes": self.forwards,
                "drafted_prompts": self.rows}  # fmt: skip


@dataclass
class DraftBook:
    """The base's greedy tokens per (prompt token ids, generation config), shared by the models of one study.

    ``enabled`` False (``--no-draft``) records and serves nothing. ``counts`` keeps per-model statistics.
    """

    enabled: bool = True
    drafts: dict[tuple[tuple[int, ...], Any], tuple[int, ...]] = field(default_factory=dict)
    counts: dict[str, DraftCounts] = field(default_factory=dict)

    def record(self, prompt_ids: Sequence[int], config: Any, tokens: Sequence[int]) -> None:
        if self.enabled:
            self.drafts[(tuple(prompt_ids), config)] = tuple(tokens)

    def get(self, prompt_ids: Sequence[int], config: Any) -> tuple[int, ...] | None:
        return self.drafts.get((tuple(prompt_ids), config)) if self.enabled else None

    def summary(self) -> dict[str, Any]:
        """summary.json's ``drafting``: on or off, and per variant how many of its tokens drafts gave it."""
        return {"enabled": self.enabled, "models": {label: c.to_dict() for label, c in self.counts.items()}}


@dataclass
class DraftRole:
    """How one model's backend uses the study's book: the base records, a variant drafts from it."""

    book: DraftBook
    label: str
    record: bool

    @property
    def counts(self) -> DraftCounts:
        return self.book.counts.setdefault(self.label, DraftCounts())


def until_eos(tokens: Sequence[int], eos_ids: set[int]) -> list[int]:
    """``tokens`` up to and including the first EOS (what ``generate`` produced before its padding)."""
    out: list[int] = []
    for token in tokens:
        out.append(int(token))
        if token in eos_ids:
            break
    return out


def lookup_draft(draft: Sequence[int], generated: Sequence[int], room: int) -> list[int]:
    """The base's tokens after the last place its answer contains the variant's last ``LOOKUP_NGRAM`` tokens
    (prompt-lookup decoding on the base's answer): a variant that reworded a phrase often realigns."""
    if room <= 0 or len(generated) < LOOKUP_NGRAM or not draft:
        return []
    tail = list(generated[-LOOKUP_NGRAM:])
    position = len(generated) - 1  # prefer a match near where the variant is in its own answer
    best = None
    for start in range(len(draft) - LOOKUP_NGRAM, -1, -1):
        matches = list(draft[start : start + LOOKUP_NGRAM]) == tail
        if matches and (best is None or abs(start - position) < abs(best - position)):
            best = start
    if best is None:
        return []
    follow = best + LOOKUP_NGRAM
    return list(draft[follow : follow + min(room, LOOKUP_TOKENS)])


class _Rows:
    """Per-row decoding state of one batch (the rows still active, in cache order)."""

    def __init__(self, drafts: list[list[int]], max_new_tokens: int, eos_ids: set[int]) -> None:
        self.drafts = drafts
        self.max_new = max_new_tokens
        self.eos_ids = eos_ids
        self.outputs: list[list[int]] = [[] for _ in drafts]
        self.done = [False] * len(drafts)
        self.lookahead = [LOOKUP_START] * len(drafts)  # adaptive: verifying tokens that get rejected costs compute

    def adapt(self, row: int, proposed: int, accepted: int) -> None:
        """Grow a row's re-draft length while its re-drafts are accepted whole, shrink it when they are not."""
        if proposed:
            grown = min(2 * self.lookahead[row], LOOKUP_TOKENS)
            self.lookahead[row] = grown if accepted == proposed else max(1, self.lookahead[row] // 2)

    def take(self, row: int, tokens: Sequence[int]) -> None:
        """Append the variant's tokens to ``row``, stopping at EOS or the token budget."""
        for token in tokens:
            if self.done[row]:
                return
            self.outputs[row].append(int(token))
            if token in self.eos_ids or len(self.outputs[row]) >= self.max_new:
                self.done[row] = True

    def room(self, row: int) -> int:
        """Draft tokens worth verifying for ``row``: a block of n inputs yields n predictions."""
        return self.max_new - len(self.outputs[row]) - 1

    def redraft(self, row: int) -> list[int]:
        """The base's continuation where it lines up with ``row``'s answer, at most its lookahead long."""
        return lookup_draft(self.drafts[row], self.outputs[row], min(self.room(row), self.lookahead[row]))


def accepted_prefix(predicted: Sequence[int], proposal: Sequence[int]) -> int:
    """How many proposed tokens the variant's own argmax confirms, from the start."""
    k = 0
    while k < len(proposal) and predicted[k] == proposal[k]:
        k += 1
    return k


@torch.inference_mode()
def draft_greedy(
    model: Any,
    prompts: Sequence[Sequence[int]],
    drafts: Sequence[Sequence[int] | None],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    pad_id: int,
    device: torch.device | str = "cpu",
    prefix_cache: PrefixCache | None = None,
    prefix_length: int = 0,
) -> tuple[list[list[int]], DraftCounts]:
    """Greedy continuations of ``prompts`` (token ids, up to and including EOS), verified against ``drafts``.

    Equal to ``model.generate(..., do_sample=False)`` on the left-padded batch up to floating-point
    summation order; a draft only decides how many tokens one forward pass can confirm. ``prefix_cache``:
    the prompts' first ``prefix_length`` tokens (shared by all) come from it instead of being run per row.
    """
    from transformers.cache_utils import DynamicCache

    rows = _Rows([list(d or []) for d in drafts], max_new_tokens, eos_ids)
    counts = DraftCounts(rows=sum(1 for d in drafts if d))
    prefix, cache = (0, DynamicCache(config=model.config))
    if prefix_cache is not None:
        prefix, cache = prefix_cache.start(prompts, prefix_length)
    cache_arg = cache_keyword(model)
    active = list(range(len(prompts)))  # original row index of each cache row
    ids, mask, positions, proposals = _first_block(rows, prompts, prefix, pad_id)
    ends = [ids.shape[1]] * len(active)  # block column after each row's last real token
    keep = max(len(q) for q in proposals.values()) + 1
    redrafted = False
    while True:
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            logits_to_keep=keep,
            **{cache_arg: cache},
        ).logits
        counts.forwards += 1
        predicted = logits[:, -keep:, :].argmax(-1).cpu()  # [rows, keep]: the variant's own next tokens
        block_width = ids.shape[1]
        offset = block_width - keep  # block column of the first kept logit
        block_start = mask.shape[1] - block_width  # cache column of the block's first column
        for cache_row, row in enumerate(active):
            proposal = proposals[row]
            # the prediction after the row's last confirmed token, then one after each proposed token
            first = ends[cache_row] - len(proposal) - 1
            guess = predicted[cache_row, first - offset : ends[cache_row] - offset].tolist()
            k = accepted_prefix(guess, proposal)
            before = len(rows.outputs[row])
            rows.take(row, guess[: k + 1])
            counts.accepted += min(k, len(rows.outputs[row]) - before)
            if redrafted:  # the first block verified the base's whole answer; later blocks are re-drafts
                rows.adapt(row, len(proposal), k)
            # rejected proposal tokens stay in the cache as masked-out holes
            mask[cache_row, block_start + first + 1 + k : block_start + ends[cache_row]] = 0
        still = [i for i, row in enumerate(active) if not rows.done[row]]
        if not still:
            break
        if len(still) < len(active):
            index = torch.tensor(still, dtype=torch.long)
            cache.batch_select_indices(index.to(device))
            mask = mask[index]
            active = [active[i] for i in still]
        mask = _crop_common_holes(cache, mask)
        # next block: each row's last token, then a re-draft from the base's answer where one lines up
        proposals = {row: rows.redraft(row) for row in active}
        blocks = [[rows.outputs[row][-1], *proposals[row]] for row in active]
        ids, block_mask = _padded(blocks, pad_id, left=False)
        ends = [len(b) for b in blocks]
        positions = mask.sum(-1)[:, None] + torch.arange(ids.shape[1])[None, :]  # counting valid tokens only
        mask = torch.cat([mask, block_mask], dim=-1)
        keep, redrafted = ids.shape[1], True
    counts.generated = sum(len(o) for o in rows.outputs)
    return rows.outputs, counts


def _first_block(
    rows: _Rows, prompts: Sequence[Sequence[int]], prefix: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[int, list[int]]]:
    """Each row's prompt after the cached ``prefix`` + its draft (cut to what the budget can check),
    left-padded: ids, the attention mask over prefix + block, positions counting real tokens, proposals."""
    proposals = {row: rows.drafts[row][: max(rows.room(row), 0)] for row in range(len(prompts))}
    ids, mask = _padded([list(prompts[row][prefix:]) + proposals[row] for row in proposals], pad_id, left=True)
    positions = prefix + (mask.cumsum(-1) - 1).clamp(min=0)
    mask = torch.cat([torch.ones((len(prompts), prefix), dtype=torch.long), mask], dim=-1)
    return ids, mask, positions, proposals


def _padded(blocks: list[list[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``blocks``, padded on the left (a prompt block) or the right."""
    width = max(len(b) for b in blocks)
    ids = torch.full((len(blocks), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(blocks), width), dtype=torch.long)
    for row, block in enumerate(blocks):
        columns = slice(width - len(block), width) if left else slice(0, len(block))
        ids[row, columns] = torch.tensor(block, dtype=torch.long)
        mask[row, columns] = 1
    return ids, mask


def _crop_common_holes(cache: Any, mask: torch.Tensor) -> torch.Tensor:
    """Drop cache columns that are holes in every active row at the right end (less attention to compute)."""
    valid = mask.any(dim=0).nonzero()
    last = int(valid.max()) + 1 if len(valid) else 0
    trim = mask.shape[1] - last
    if trim > 0:
        cache.crop(-trim)
        mask = mask[:, :last]
    return mask
