"""The base's greedy answers as drafts for its variants: speculative verification, exact for greedy decoding.

A study generates the same prompts with the base and with every compressed variant, and a variant mostly
answers like the base. So the base's generated tokens are kept in a ``DraftBook`` (keyed by the exact prompt
token ids and the generation config), and a variant's greedy generation starts from them: one teacher-forced
forward pass of the variant over prompt + draft gives its own argmax at every draft position; tokens are
accepted up to the first position where the variant disagrees, the variant's own token is taken there, and
decoding continues from the KV cache, re-drafting from the base's continuation (an n-gram lookup in the
base's answer) so a variant that differs by a word and then realigns is verified in blocks again; where the
base's answer has no match, from the row's own prompt and answer or the call's other answers
(``models/lookup.py``), which also gives the base itself, and any model without drafts, multi-token steps.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from compsafe.models.cache_holes import compact_holes, crop_common_holes, left_zeros
from compsafe.models.head_argmax import argmax_logits
from compsafe.models.lookup import AnswerPool, base_lookup, self_lookup
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

LOOKUP_TOKENS = 16  # at most this many re-drafted tokens verified per decode step
LOOKUP_START = 4  # a row's first re-draft after a rejection; doubled while accepted whole, halved when cut short
PAD_SHARE = 0.25  # a re-draft block's padding: at most this share of its real tokens ...
PAD_TOKENS = 16  # ... or this many tokens, whichever is more (padded_block_width)
FIRST_DRAFT_EVIDENCE = 16  # drafted rows seen before a model's first blocks are cut to what it accepts


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
    computed: int = 0  # block positions the passes ran, padding and rejected guesses included
    rows: int = 0
    verified_rows: int = 0  # drafted rows whose first block (prompt + draft) ran, and the draft tokens it
    verified_accepted: int = 0  # confirmed: how far this model follows the base's answers before parting

    def add(self, other: DraftCounts) -> None:
        self.generated += other.generated
        self.accepted += other.accepted
        self.forwards += other.forwards
        self.computed += other.computed
        self.rows += other.rows
        self.verified_rows += other.verified_rows
        self.verified_accepted += other.verified_accepted

    def first_draft_tokens(self, history: DraftCounts | None) -> int | None:
        """How much of a base answer a new batch's first block verifies (None: all of it). A model that parts
        from the base early (a heavily damaged variant) would pay for verifying whole answers it rejects: after
        enough rows, the cut is twice the model's mean accepted prefix plus ``LOOKUP_START``."""
        rows = self.verified_rows + (history.verified_rows if history else 0)
        if rows < FIRST_DRAFT_EVIDENCE:
            return None
        accepted = self.verified_accepted + (history.verified_accepted if history else 0)
        return LOOKUP_START + (2 * accepted) // rows

    def to_dict(self) -> dict[str, Any]:
        share = self.accepted / self.generated if self.generated else None
        return {"generated_tokens": self.generated, "accepted_tokens": self.accepted,
                "accepted_share": None if share is None else round(share, 4), "forward_passes": self.forwards,
                "computed_positions": self.computed,
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


class _Rows:
    """Per-row decoding state of one batch (the rows still active, in cache order)."""

    def __init__(self, prompts: Sequence[Sequence[int]], drafts: list[list[int]], max_new_tokens: int,
                 eos_ids: set[int], lookups: bool, pool: AnswerPool) -> None:  # fmt: skip
        self.prompts = prompts
        self.lookups = lookups
        self.drafts = drafts
        self.pool = pool  # the base's answers to every prompt, then this model's finished answers
        for draft in drafts if lookups else ():  # without lookups the pool is never read
            self.pool.add(draft)
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
                if self.lookups:
                    self.pool.add(self.outputs[row])

    def room(self, row: int) -> int:
        """Draft tokens worth verifying for ``row``: a block of n inputs yields n predictions."""
        return self.max_new - len(self.outputs[row]) - 1

    def redraft(self, row: int) -> list[int]:
        """``row``'s next tokens as guessed from the base's answer, else from its own prompt and answer, else
        from the pool of other answers (``models/lookup.py``), at most its lookahead long."""
        room, generated = min(self.room(row), self.lookahead[row]), self.outputs[row]
        found = base_lookup(self.drafts[row], generated, room)
        if found or not self.lookups:
            return found
        return self_lookup(self.prompts[row], generated, room) or self.pool.lookup(generated, room)


def padded_block_width(lengths: Sequence[int]) -> int:
    """The widest block whose padding stays within ``PAD_SHARE`` of the real tokens the rows put in it (each
    row ``min(length, width)``), or ``PAD_TOKENS`` for a block of few rows.

    Why so tight: a block's padded columns are computed like real ones, and on this project's CPU a token
    costs about 1/100 of a pass's fixed cost (fitted on the default model: ~69 ms a pass + ~0.67 ms a
    token). Verified guesses save time only where they cut the group's passes, which happens when most rows
    advance several tokens at once (a damaged model looping, a variant following the base); a few rows
    with guesses in a wide batch only add padding, whose cost the session-10 measurement showed (the base's
    passes unchanged, its tokens +27%). A few stragglers verify long guesses almost for free."""
    best = 1
    for width in sorted(set(lengths)):
        real = sum(min(length, width) for length in lengths)
        if len(lengths) * width - real <= max(PAD_SHARE * real, PAD_TOKENS):
            best = width
    return best


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
    batch_size: int | None = None,
    on_finished: Callable[[int], None] | None = None,
    history: DraftCounts | None = None,
    lookups: bool = True,
    pool: AnswerPool | None = None,
) -> tuple[list[list[int]], DraftCounts]:
    """Greedy continuations of ``prompts`` (token ids, up to and including EOS), verified against ``drafts``.

    Equal to ``model.generate(..., do_sample=False)`` on the left-padded batch up to floating-point
    summation order; a draft only decides how many tokens one forward pass can confirm. ``prefix_cache``:
    the prompts' first ``prefix_length`` tokens (shared by all) come from it instead of being run per row.

    ``batch_size`` (default: all prompts in one batch): new prompts start in batches of that many, in the
    order given (the caller sorts them by length). A batch's last few rows -- those still decoding once at
    most a quarter of the batch is left, typically answers that parted from their draft or run to the
    budget -- join the next batch instead of stepping alone: a decode pass costs about the same for 2 rows as
    for 32 on a CPU or a GPU, so a batch's stragglers would otherwise cost as many passes as the whole batch.
    A pass then runs at most ``batch_size + batch_size // 4`` rows, of short blocks: the batch's first pass
    (prompts and whole drafts) stays the largest.
    ``on_finished(n)``: n more rows have finished (progress). ``history``: the model's counts from earlier
    calls; with this call's, they cut later batches' drafts to what the model accepts
    (``DraftCounts.first_draft_tokens``). ``lookups`` False: no guesses beyond ``drafts`` (no n-gram lookups
    in the prompt or other answers), so a call without drafts decodes one token per pass. ``pool``: answers
    from earlier calls of the same model to guess from (it gains this call's drafts and answers).
    """
    rows = _Rows(prompts, [list(d or []) for d in drafts], max_new_tokens, eos_ids, lookups, pool or AnswerPool())
    counts = DraftCounts(rows=sum(1 for d in drafts if d))
    size = max(1, batch_size or len(prompts))
    straggling = size // 4
    context = _Context(model, device, pad_id, prefix_cache, prefix_length, counts, on_finished, history)
    carried: _Group | None = None
    for start in range(0, len(prompts), size):
        members = list(range(start, min(start + size, len(prompts))))
        group = _Group.first(context, rows, prompts, members)
        group.step(rows)
        if carried is not None and group.active:
            group.absorb(carried)
        elif carried is not None:  # the whole batch ended with its drafts: the stragglers go on alone
            group = carried
        while group.active and len(group.active) > straggling:
            group.step(rows)
        carried = group if group.active else None
    while carried is not None and carried.active:
        carried.step(rows)
    counts.generated = sum(len(o) for o in rows.outputs)
    return rows.outputs, counts


@dataclass
class _Context:
    """What every group of one ``draft_greedy`` call shares."""

    model: Any
    device: torch.device | str
    pad_id: int
    prefix_cache: PrefixCache | None
    prefix_length: int
    counts: DraftCounts
    on_finished: Callable[[int], None] | None
    history: DraftCounts | None  # this model's counts from earlier calls (how far it follows the base)


class _Group:
    """Rows decoding together: their KV cache, the attention mask over it plus the next block, and the block.

    The block is each row's next input: first the prompt (after the cached prefix) and the whole draft,
    left-padded; then the row's last token and a re-draft, right-padded. ``ends[i]``: block column after
    row ``i``'s last real token. Rejected tokens and padding stay in the cache as masked-out holes.
    """

    def __init__(self, context: _Context, cache: Any, active: list[int], ids: torch.Tensor, mask: torch.Tensor,
                 positions: torch.Tensor, proposals: dict[int, list[int]], ends: list[int], keep: int,
                 redrafted: bool) -> None:  # fmt: skip
        self.context, self.cache, self.active = context, cache, active
        self.ids, self.mask, self.positions = ids, mask, positions
        self.proposals, self.ends, self.keep, self.redrafted = proposals, ends, keep, redrafted

    @classmethod
    def first(cls, context: _Context, rows: _Rows, prompts: Sequence[Sequence[int]], members: list[int]) -> _Group:
        """The group of ``members``: prompt + draft as its first block, the cached prefix in its cache."""
        from transformers.cache_utils import DynamicCache

        chosen = [prompts[m] for m in members]
        prefix, cache = 0, DynamicCache(config=context.model.config)
        if context.prefix_cache is not None:
            prefix, cache = context.prefix_cache.start(chosen, context.prefix_length)
        cap = context.counts.first_draft_tokens(context.history)
        ids, mask, positions, proposals = _first_block(rows, members, chosen, prefix, context.pad_id, cap)
        keep = max(len(q) for q in proposals.values()) + 1
        return cls(context, cache, list(members), ids, mask, positions, proposals, [ids.shape[1]] * len(members),
                   keep, redrafted=False)  # fmt: skip

    def step(self, rows: _Rows) -> None:
        """One forward pass over the block: accept each row's confirmed tokens, drop finished rows, and lay
        out the next block."""
        context = self.context
        predicted = argmax_logits(  # [rows, keep]: the model's own next tokens, without the whole logits tensor
            context.model,
            input_ids=self.ids.to(context.device),
            attention_mask=self.mask.to(context.device),
            position_ids=self.positions.to(context.device),
            use_cache=True,
            logits_to_keep=self.keep,
            **{cache_keyword(context.model): self.cache},
        )[:, -self.keep :].cpu()
        context.counts.forwards += 1
        context.counts.computed += self.ids.numel()
        block_width = self.ids.shape[1]
        offset = block_width - self.keep  # block column of the first kept logit
        block_start = self.mask.shape[1] - block_width  # cache column of the block's first column
        for cache_row, row in enumerate(self.active):
            proposal = self.proposals[row]
            # the prediction after the row's last confirmed token, then one after each proposed token
            first = self.ends[cache_row] - len(proposal) - 1
            guess = predicted[cache_row, first - offset : self.ends[cache_row] - offset].tolist()
            k = accepted_prefix(guess, proposal)
            before = len(rows.outputs[row])
            rows.take(row, guess[: k + 1])
            context.counts.accepted += min(k, len(rows.outputs[row]) - before)
            if self.redrafted:  # the first block verified the base's answer; later blocks are re-drafts
                rows.adapt(row, len(proposal), k)
            elif proposal:
                context.counts.verified_rows += 1
                context.counts.verified_accepted += k
            # rejected proposal tokens stay in the cache as masked-out holes
            self.mask[cache_row, block_start + first + 1 + k : block_start + self.ends[cache_row]] = 0
        still = [i for i, row in enumerate(self.active) if not rows.done[row]]
        if len(still) < len(self.active):
            if context.on_finished is not None:
                context.on_finished(len(self.active) - len(still))
            if not still:
                self.active = []
                return
            index = torch.tensor(still, dtype=torch.long)
            self.cache.batch_select_indices(index.to(context.device))
            self.mask = self.mask[index]
            self.active = [self.active[i] for i in still]
        self.mask = crop_common_holes(self.cache, self.mask)
        self.mask = compact_holes(self.cache, self.mask)
        # next block: each row's last token, then a re-draft (``_Rows.redraft``), cut so that padding
        # (computed like real tokens) stays within ``padded_block_width``'s allowance
        proposals = {row: rows.redraft(row) for row in self.active}
        width = padded_block_width([1 + len(q) for q in proposals.values()])
        self.proposals = {row: q[: width - 1] for row, q in proposals.items()}
        blocks = [[rows.outputs[row][-1], *self.proposals[row]] for row in self.active]
        self.ids, block_mask = _padded(blocks, context.pad_id, left=False)
        self.ends = [len(b) for b in blocks]
        self.positions = self.mask.sum(-1)[:, None] + torch.arange(self.ids.shape[1])[None, :]  # valid tokens only
        self.mask = torch.cat([self.mask, block_mask], dim=-1)
        self.keep, self.redrafted = self.ids.shape[1], True

    def absorb(self, other: _Group) -> None:
        """Take ``other``'s rows into this group (both between steps, past their first block): the shorter
        cache gets masked-out columns on the left, the narrower block padding on the right. Cache columns
        hold keys that already carry their positions, so where a column sits changes nothing."""
        width = max(self.ids.shape[1], other.ids.shape[1])
        columns = max(self.mask.shape[1] - self.ids.shape[1], other.mask.shape[1] - other.ids.shape[1])
        parts = [group._widened(columns, width) for group in (self, other)]
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            if not (mine.is_initialized and theirs.is_initialized):  # a layer sharing another's cache
                continue
            mine.keys = torch.cat([left_zeros(mine.keys, columns), left_zeros(theirs.keys, columns)])
            mine.values = torch.cat([left_zeros(mine.values, columns), left_zeros(theirs.values, columns)])
        self.ids, self.positions, self.mask = (torch.cat([a[n] for a in parts]) for n in range(3))
        self.active = self.active + other.active
        self.proposals = {**self.proposals, **other.proposals}
        self.ends = self.ends + other.ends
        self.keep = width

    def _widened(self, columns: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This group's block ids, positions and mask for a cache of ``columns`` columns and a block of ``width``."""
        block = self.ids.shape[1]
        cached, block_mask = self.mask[:, : self.mask.shape[1] - block], self.mask[:, -block:]
        more = width - block
        ids = torch.nn.functional.pad(self.ids, (0, more), value=self.context.pad_id)
        positions = torch.nn.functional.pad(self.positions, (0, more), value=0)
        mask = torch.cat([torch.nn.functional.pad(cached, (columns - cached.shape[1], 0)),
                          torch.nn.functional.pad(block_mask, (0, more))], dim=-1)  # fmt: skip
        return ids, positions, mask


def _first_block(
    rows: _Rows, members: list[int], prompts: Sequence[Sequence[int]], prefix: int, pad_id: int, cap: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[int, list[int]]]:
    """Each member's prompt after the cached ``prefix`` + its draft (cut to what the budget can check, and to
    ``cap`` tokens), left-padded: ids, the attention mask over prefix + block, positions counting real
    tokens, proposals."""
    room = {row: max(rows.room(row), 0) for row in members}
    proposals = {row: rows.drafts[row][: room[row] if cap is None else min(room[row], cap)] for row in members}
    blocks = [list(prompt[prefix:]) + proposals[row] for row, prompt in zip(members, prompts, strict=True)]
    ids, mask = _padded(blocks, pad_id, left=True)
    positions = prefix + (mask.cumsum(-1) - 1).clamp(min=0)
    mask = torch.cat([torch.ones((len(members), prefix), dtype=torch.long), mask], dim=-1)
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
