"""Helpers of the greedy-decoding tests (drafting, prefix cache): plain ``generate`` as the reference, a
perturbed copy of a model as a "variant", random prompts."""

from __future__ import annotations

import copy

import torch

from compsafe.models.drafting import until_eos

PAD = 0


def perturbed(model, scale: float, seed: int = 1):
    """A copy of ``model`` with small random weight changes: answers like it at first, then parts from it."""
    variant = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in variant.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return variant


def left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` as one left-padded batch of ids and its attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(rows):
        ids[row, width - len(tokens) :] = torch.tensor(tokens)
        mask[row, width - len(tokens) :] = 1
    return ids, mask


def hf_greedy(model, prompts: list[list[int]], max_new_tokens: int, eos: int | None) -> list[list[int]]:
    """``model.generate`` on the left-padded batch, each row cut after its first EOS."""
    ids, mask = left_padded(prompts)
    width = ids.shape[1]
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=PAD, eos_token_id=eos)  # fmt: skip
    return [until_eos(row, {eos} if eos is not None else set()) for row in out[:, width:].tolist()]


def random_prompts(n: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 14, (n,), generator=generator).tolist()
    return [torch.randint(3, 128, (length,), generator=generator).tolist() for length in lengths]
