"""How much each prunable unit contributes on calibration text: the scores structured pruning removes the least of.

One forward pass over the calibration windows, with hooks, gives per layer:

* ``heads``: the mean norm of each query head's contribution to the residual stream, ``||W_o[:, h] a_h||``
  (``a_h`` the head's attention output, ``W_o[:, h]`` its slice of ``o_proj``). This is exactly what removing
  the head takes out of the layer's output, measured in the space where it lands; a gradient-free stand-in
  for Michel et al. 2019's gradient-based head importance, in one pass instead of one per head
  (``diagnose.heads`` ablates heads one at a time for analysis).
* ``mlp``: ``sqrt(mean x_i^2) * ||W_down[:, i]||`` for intermediate channel ``i`` (``x`` the input of
  ``down_proj``): the Wanda score (Sun et al. 2023) summed over a whole channel, as LLM-Pruner-style channel
  pruning uses activation x weight magnitude.
* ``layers``: ShortGPT's Block Influence (Men et al. 2024), ``1 - mean cos(h_in, h_out)`` over tokens: a layer
  that barely turns the hidden state is the cheapest to drop ("The Unreasonable Ineffectiveness of the Deeper
  Layers", Gromov et al. 2024, uses the same angular distance).

Scores are computed once on the unpruned model (ShortGPT's one-shot ranking), in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from compsafe.compress.structure import DecoderLayout

BATCH = 4  # calibration windows per forward pass: bounds the activations held at once


def _hidden(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _head_hook(layout: DecoderLayout, index: int, total: torch.Tensor) -> Callable[..., None]:
    o_proj = layout.attention(index).o_proj
    d = layout.head_dim

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0].float()  # [B, T, H * d]
        w = o_proj.weight.float().reshape(o_proj.out_features, -1, d)  # [out, H, d]
        heads = x.reshape(*x.shape[:-1], -1, d)  # [B, T, H, d]
        contribution = torch.einsum("bthd,ohd->btho", heads, w)
        total[index] += contribution.norm(dim=-1).sum(dim=(0, 1)).double().cpu()

    return hook


def _channel_hook(index: int, total: torch.Tensor) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0].float()
        total[index] += x.square().sum(dim=tuple(range(x.dim() - 1))).double().cpu()

    return hook


def _layer_hook(index: int, total: torch.Tensor) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        before = _hidden(args, kwargs).float()
        after = (output[0] if isinstance(output, tuple) else output).float()
        total[index] += (1 - torch.nn.functional.cosine_similarity(before, after, dim=-1)).sum().double().cpu()

    return hook


@torch.no_grad()
def unit_scores(layout: DecoderLayout, input_ids: torch.Tensor, unit: str) -> torch.Tensor:
    """Per-layer scores of ``unit`` (``heads``: ``[layers, heads]``, ``mlp``: ``[layers, channels]``, ``layers``:
    ``[layers]``) on ``input_ids`` (``[n, seq]`` calibration windows); higher means more important."""
    n = layout.n_layers
    size = {"heads": layout.n_heads, "mlp": layout.intermediate, "layers": 1}[unit]
    total = torch.zeros(n, size, dtype=torch.float64)
    handles = []
    for i in range(n):
        if unit == "heads":
            handles.append(layout.attention(i).o_proj.register_forward_pre_hook(_head_hook(layout, i, total)))
        elif unit == "mlp":
            handles.append(layout.mlp(i).down_proj.register_forward_pre_hook(_channel_hook(i, total)))
        else:
            handles.append(layout.layers[i].register_forward_hook(_layer_hook(i, total), with_kwargs=True))
    model = layout.model
    device = next(model.parameters()).device
    try:
        for start in range(0, input_ids.shape[0], BATCH):
            model(input_ids=input_ids[start : start + BATCH].to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    tokens = input_ids.numel()
    if unit == "mlp":
        norms = torch.stack([layout.mlp(i).down_proj.weight.float().norm(dim=0).double().cpu() for i in range(n)])
        return (total / tokens).sqrt() * norms
    return (total / tokens).squeeze(-1) if unit == "layers" else total / tokens
