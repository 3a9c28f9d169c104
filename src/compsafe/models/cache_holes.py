"""Masked-out columns ("holes") in a drafting group's KV cache: rejected draft tokens and padding.

``models.drafting`` keeps rejected tokens in the cache with attention mask 0 rather than cropping per row, so
rows of one batch can accept different numbers of tokens. These helpers keep that cache small: drop columns
that are holes in every row at the right end, gather each row's valid columns together once holes are a
large share, and pad a cache with hole columns on the left so two groups' caches can be stacked. Keys already
carry their positions (rotary or absolute embeddings were applied when they were computed) and positions count
valid columns only, so where a column sits in the cache changes nothing but memory and attention cost.
"""

from __future__ import annotations

from typing import Any

import torch


def left_zeros(states: torch.Tensor, columns: int) -> torch.Tensor:
    """KV states ``[rows, heads, length, dim]`` with zero (masked-out) columns prepended up to ``columns``."""
    missing = columns - states.shape[-2]
    return torch.nn.functional.pad(states, (0, 0, missing, 0)) if missing > 0 else states


def compact_holes(cache: Any, mask: torch.Tensor) -> torch.Tensor:
    """Gather each row's valid cache columns to the right once holes are a quarter of the cache or more.

    Rejected draft tokens and padding stay in the cache as masked-out columns, and a group that takes in the
    next batch's stragglers lives for the whole call, so without this its cache (and the attention over it)
    would grow by every pass's block width. Keys already carry their positions and positions count valid
    columns only, so moving columns changes nothing but the memory; the order within a row is kept.
    """
    valid = mask.bool()
    width = int(valid.sum(-1).max()) if valid.numel() else 0
    if mask.shape[1] == 0 or 4 * (mask.shape[1] - width) < mask.shape[1]:
        return mask
    # stable sort on validity: each row's holes first, then its valid columns in their order; keep the last
    order = torch.sort(valid.to(torch.int8), dim=-1, stable=True).indices[:, mask.shape[1] - width :]
    for layer in cache.layers:
        if not layer.is_initialized:
            continue
        index = order.to(layer.keys.device)[:, None, :, None]
        layer.keys = layer.keys.gather(2, index.expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1]))
        layer.values = layer.values.gather(2, index.expand(-1, layer.values.shape[1], -1, layer.values.shape[-1]))
    return mask.gather(1, order)


def crop_common_holes(cache: Any, mask: torch.Tensor) -> torch.Tensor:
    """Drop cache columns that are holes in every active row at the right end (less attention to compute)."""
    valid = mask.any(dim=0).nonzero()
    last = int(valid.max()) + 1 if len(valid) else 0
    trim = mask.shape[1] - last
    if trim > 0:
        cache.crop(-trim)
        mask = mask[:, :last]
    return mask
