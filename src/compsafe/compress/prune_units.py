"""Carry out a ``PrunePlan`` two ways: zero the units in place (what a run measures) or cut them out (what is stored).

Why both: ``compress.applied`` builds every variant in place and restores the base afterwards, which needs the
tensors' shapes to stay. Zeroing a unit's weights removes exactly what cutting it out removes -- a head whose
``o_proj`` columns are zero adds nothing to the residual stream; a channel whose ``gate``/``up`` rows are zero is
``silu(0) * 0 = 0``; a layer whose projections are all zero adds 0 to both residuals, so it passes its input
through unchanged -- so the run measures the pruned model's behaviour (the tests check equal logits), while
``shrink`` builds the really smaller model (new tensor shapes, an updated config, re-indexed KV-cache layers)
that the export writes and plain ``AutoModelForCausalLM.from_pretrained`` reloads. A masked model runs at the
base's speed; the speed of the smaller one is measured on its exported folder (``compsafe run --cost``).
"""

from __future__ import annotations

import torch
from torch import nn

from compsafe.compress.prune_plan import PrunePlan
from compsafe.compress.structure import ATTENTION, MLP, DecoderLayout


def _rows(plan: PrunePlan, layout: DecoderLayout, layer: int) -> torch.Tensor:
    """Indices, in a projection's head-major rows/columns (heads) or channels (mlp), that the plan removes."""
    units = torch.tensor(plan.removed.get(layer, ()), dtype=torch.long)
    if plan.unit != "heads":
        return units
    d = layout.head_dim
    return (units[:, None] * d + torch.arange(d)).reshape(-1)


def removed_slices(layout: DecoderLayout, plan: PrunePlan) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """module name -> [(axis, indices)]: where each touched projection loses rows ("out") or columns ("in").

    For ``layers`` the whole module goes (axis ``"all"``)."""
    prefix = {id(m): name for name, m in layout.model.named_modules()}
    touched: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for layer in plan.removed:
        attn, mlp = layout.attention(layer), layout.mlp(layer)
        if plan.unit == "layers":
            for module in [getattr(attn, n) for n in ATTENTION] + [getattr(mlp, n) for n in MLP]:
                touched[prefix[id(module)]] = [("all", torch.empty(0, dtype=torch.long))]
            continue
        idx = _rows(plan, layout, layer)
        if plan.unit == "heads":
            rows = ["q_proj", "k_proj", "v_proj"] if plan.with_kv else ["q_proj"]
            for n in rows:
                touched[prefix[id(getattr(attn, n))]] = [("out", idx)]
            touched[prefix[id(attn.o_proj)]] = [("in", idx)]
        else:
            for n in ("gate_proj", "up_proj"):
                touched[prefix[id(getattr(mlp, n))]] = [("out", idx)]
            touched[prefix[id(mlp.down_proj)]] = [("in", idx)]
    return touched


@torch.no_grad()
def mask(layout: DecoderLayout, plan: PrunePlan) -> None:
    """Zero the plan's units in place (weights and the biases that belong to them)."""
    modules = dict(layout.model.named_modules())
    for name, cuts in removed_slices(layout, plan).items():
        module = modules[name]
        for axis, idx in cuts:
            if axis == "all":
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
            elif axis == "out":
                module.weight[idx] = 0
                if module.bias is not None:
                    module.bias[idx] = 0
            else:
                module.weight[:, idx] = 0


def _kept(total: int, removed: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(total, dtype=torch.bool)
    keep[removed] = False
    return keep.nonzero().squeeze(-1)


def _sliced(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new ``nn.Linear`` holding the kept ``rows`` (outputs) / ``cols`` (inputs) of ``linear``."""
    weight = linear.weight.data
    weight = weight[rows] if rows is not None else weight
    weight = weight[:, cols] if cols is not None else weight
    bias = linear.bias
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    new.weight.data.copy_(weight)
    if bias is not None:
        new.bias.data.copy_(bias.data[rows] if rows is not None else bias.data)
    return new


@torch.no_grad()
def shrink(layout: DecoderLayout, plan: PrunePlan) -> nn.Module:
    """Cut the plan's units out of ``layout.model`` in place (shapes and config) and return the model."""
    config = layout.config
    if plan.unit == "layers":
        kept = [layer for i, layer in enumerate(layout.layers) if i not in plan.removed]
        for new_index, layer in enumerate(kept):
            layer.self_attn.layer_idx = new_index  # the KV cache is indexed by position in the new stack
        layout.model.model.layers = nn.ModuleList(kept)
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = [t for i, t in enumerate(config.layer_types) if i not in plan.removed]
        config.num_hidden_layers = len(kept)
        return layout.model
    head_dim, n_heads, group, width = layout.head_dim, layout.n_heads, layout.group_size, layout.intermediate
    for i in range(layout.n_layers):
        idx = _rows(plan, layout, i)
        if plan.unit == "heads":
            attn = layout.attention(i)
            keep = _kept(n_heads * head_dim, idx)
            names = ("q_proj", "k_proj", "v_proj") if plan.with_kv else ("q_proj",)
            for n in names:
                setattr(attn, n, _sliced(getattr(attn, n), rows=keep))
            attn.o_proj = _sliced(attn.o_proj, cols=keep)
        else:
            mlp = layout.mlp(i)
            keep = _kept(width, idx)
            mlp.gate_proj = _sliced(mlp.gate_proj, rows=keep)
            mlp.up_proj = _sliced(mlp.up_proj, rows=keep)
            mlp.down_proj = _sliced(mlp.down_proj, cols=keep)
            mlp.intermediate_size = len(keep)
    if plan.unit == "heads":
        heads_left = n_heads - len(plan.removed[0])
        kv_left = heads_left if plan.with_kv else n_heads // group
        config.head_dim = head_dim  # else the config would derive it from hidden_size / the new head count
        config.num_attention_heads, config.num_key_value_heads = heads_left, kv_left
        for i in range(layout.n_layers):
            layout.attention(i).num_key_value_groups = heads_left // kv_left
    else:
        config.intermediate_size = layout.intermediate
    return layout.model
