"""Log-likelihood scoring with each distinct context run once: the forward passes behind ``HFBackend.loglikelihood``.

Multiple-choice probes score one question against several answers, so most (context, continuation) pairs share
their context. lm-evaluation-harness runs every pair as a full sequence (it only shares a forward between
single-token answers of one context). Here a batch of distinct contexts runs once, left-padded, keeping only
the last position's logits (the distribution of each continuation's first token) and the KV cache; the
continuations' remaining tokens then run as one short batch on top of that cache. With four answers of one to
three tokens after a ~15-token question this is about a third of the tokens a full-sequence pass computes, and
the output projection (the vocabulary-sized matmul) runs only where a token is scored.

The numbers are lm-eval's (same tokens, same truncation, log-softmax in float32); they differ from a
full-sequence pass only by float rounding (about 1e-7 relative in float32).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

ScoredPair = tuple[float, int, bool]  # (summed log-probability, continuation tokens, every token the argmax)


@dataclass
class ContextGroup:
    """One distinct context and the requests scored after it."""

    context: list[int]
    requests: list[int] = field(default_factory=list)  # indices into the caller's request list
    continuations: list[list[int]] = field(default_factory=list)


def group_by_context(sequences: list[list[int]], n_continuation: list[int]) -> list[ContextGroup]:
    """Requests grouped by their (already truncated) context tokens, in order of first appearance.

    ``sequences[i]`` is context + continuation cut to the model's window; its last ``n_continuation[i]`` tokens
    are scored; its context (the rest) must not be empty.
    """
    groups: dict[tuple[int, ...], ContextGroup] = {}
    for index, (sequence, n) in enumerate(zip(sequences, n_continuation, strict=True)):
        context = sequence[:-n]
        assert context, "every scored pair needs at least one context token"
        group = groups.setdefault(tuple(context), ContextGroup(list(context)))
        group.requests.append(index)
        group.continuations.append(sequence[-n:])
    return list(groups.values())


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward can skip the output projection on positions nobody scores."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def cache_argument(model: Any) -> str:
    """The forward's keyword for a KV cache: ``cache`` since transformers 5.2x, ``past_key_values`` before."""
    try:
        return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    except (TypeError, ValueError):
        return "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def _right_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def continuation_chunks(widths: list[int], row_chunk: int) -> list[list[int]]:
    """Indices of continuation rows, longest first, in chunks of at most ``row_chunk`` rows padded to at most twice
    their shortest row: answers of one to six tokens pay for little padding, and few forwards run."""
    order = sorted(range(len(widths)), key=lambda i: -widths[i])
    chunks: list[list[int]] = []
    for index in order:
        if chunks and len(chunks[-1]) < row_chunk and 2 * widths[index] > widths[chunks[-1][0]]:
            chunks[-1].append(index)
        else:
            chunks.append([index])
    return chunks


SLICE_ELEMENTS = 1 << 22  # float32 log-probabilities computed at a time: 16 MiB, whatever the batch and vocabulary


def target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 log-softmax of ``logits [rows, width, vocab]`` at ``targets [rows, width]``, argmax [rows, width]),
    on CPU, computed a few rows at a time.

    Why: the whole float32 log-softmax of a 64-row chunk of continuations is ``[64, width, vocab]`` floats, beside
    its float32 copy of the logits (SmolLM2, 49152 tokens, width 5: 63 MB each); only one value per position and
    the argmax are kept. Rows are independent, so each value is what the whole-tensor computation gives.
    """
    rows, width, vocab = logits.shape
    step = max(1, SLICE_ELEMENTS // max(width * vocab, 1))
    chosen = torch.empty((rows, width), dtype=torch.float32)
    argmax = torch.empty((rows, width), dtype=torch.long)
    for start in range(0, rows, step):
        stop = start + step
        logprobs = torch.log_softmax(logits[start:stop].float(), dim=-1).cpu()
        chosen[start:stop] = logprobs.gather(-1, targets[start:stop, :, None]).squeeze(-1)
        argmax[start:stop] = logprobs.argmax(-1)
    return chosen, argmax


@torch.inference_mode()
def score_groups(
    model: Any, groups: list[ContextGroup], *, pad: int, device: torch.device, row_chunk: int = 64
) -> dict[int, ScoredPair]:
    """Score every request of ``groups``: one pass over the contexts, then the continuations on their caches.

    Returns {request index: (log-probability, tokens, greedy)}. ``row_chunk`` bounds how many continuation rows
    share one forward (a long context with hundreds of candidates is scored in slices of its cache).
    """
    ids, mask = _left_padded([g.context for g in groups], pad)
    # positions count from each row's first real token: left padding must not shift absolute positions
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    continuation_rows = [
        (g_index, r_index)
        for g_index, group in enumerate(groups)
        for r_index, cont in enumerate(group.continuations)
        if len(cont) > 1
    ]
    kwargs: dict[str, Any] = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=bool(continuation_rows),
        **kwargs,
    )
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()  # [groups, vocab]
    first_argmax = first.argmax(-1)
    results: dict[int, ScoredPair] = {}
    for g_index, group in enumerate(groups):
        for request, cont in zip(group.requests, group.continuations, strict=True):
            if len(cont) == 1:
                results[request] = (float(first[g_index, cont[0]]), 1, bool(first_argmax[g_index] == cont[0]))
    if not continuation_rows:
        return results
    context_lengths = mask.sum(-1)
    chunks = continuation_chunks([len(groups[g].continuations[r]) - 1 for g, r in continuation_rows], row_chunk)
    for number, chunk in enumerate(chunks):
        rows = [continuation_rows[i] for i in chunk]
        # the last chunk may consume the context cache; earlier ones select from a copy
        context_cache = output_cache(out)
        cache = context_cache if number == len(chunks) - 1 else copy.deepcopy(context_cache)
        g_of_row = torch.tensor([g for g, _ in rows], dtype=torch.long)
        cache.batch_select_indices(g_of_row.to(device))
        conts = [groups[g].continuations[r] for g, r in rows]
        tail_ids, tail_mask = _right_padded([c[:-1] for c in conts], pad)
        width = tail_ids.shape[1]
        tail_positions = context_lengths[g_of_row][:, None] + torch.arange(width)[None, :]
        logits = model(
            input_ids=tail_ids.to(device),
            attention_mask=torch.cat([mask[g_of_row], tail_mask], dim=1).to(device),
            position_ids=tail_positions.to(device),
            use_cache=True,
            **{cache_argument(model): cache},
        ).logits
        targets, valid = _right_padded([c[1:] for c in conts], 0)
        valid = valid.bool()
        token_lp, argmax = target_logprobs(logits, targets)
        token_lp = token_lp.masked_fill(~valid, 0.0)
        greedy_later = ((argmax == targets) | ~valid).all(-1)
        for row, (g, r) in enumerate(rows):
            cont = groups[g].continuations[r]
            scored = torch.cat([first[g, cont[0]].reshape(1), token_lp[row, : len(cont) - 1]])
            greedy = bool(first_argmax[g] == cont[0]) and bool(greedy_later[row])
            results[groups[g].requests[r]] = (float(scored.sum()), len(cont), greedy)
    return results
