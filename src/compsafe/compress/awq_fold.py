"""Where AWQ's per-input-channel scales go: into the operation that produces the scaled layers' input.

AWQ multiplies the input columns of a linear layer by ``s`` before quantizing and must divide its input by
``s``. Deployed AWQ models (mit-han-lab/llm-awq ``apply_scale``, AutoAWQ ``scale_ln_fcs`` / ``scale_fc_fc``)
never store the division: they fold ``1/s`` into the previous operation, so the stored linear weights are
``Q(W diag(s))`` -- on the int grid, packable -- and the function is unchanged:

* q/k/v projections: one shared ``s``, folded into the input RMSNorm/LayerNorm weight (and bias);
* gate/up projections: one shared ``s``, folded into the post-attention norm;
* o_proj: folded into v_proj's output rows (attention mixes tokens, not channels, so scaling a value channel
  scales the same attention-output channel). With grouped-query attention several query heads read one value
  head, so ``s`` is tied across the query heads of a group (the statistic is averaged over them first);
* down_proj: folded into up_proj's output rows (``act(gate) * up`` is linear in ``up``);
* GPT-2 style blocks: c_attn into ln_1, c_fc into ln_2 (their c_proj inputs pass a nonlinearity or a fused
  q/k/v output, so they are not scaled).

A layer whose predecessor cannot absorb a scale (unknown architecture, a norm that adds 1 to its weight as
Gemma's does, a predecessor kept out of compression) is quantized without scales: AWQ then reduces to RTN
with clipping for it, never to a weight that is off the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from compsafe.compress.targets import weight_view

# (previous operation on the block, owner of the scaled layers on the block, the scaled layers)
NORM_FOLDS = (
    ("input_layernorm", "self_attn", ("q_proj", "k_proj", "v_proj")),
    ("post_attention_layernorm", "mlp", ("gate_proj", "up_proj")),
    ("ln_1", "attn", ("c_attn",)),
    ("ln_2", "mlp", ("c_fc",)),
)
# (owner, previous linear whose output rows absorb the scale, the scaled layer)
LINEAR_FOLDS = (("self_attn", "v_proj", "o_proj"), ("mlp", "up_proj", "down_proj"))


@dataclass
class ScaleGroup:
    """Target layers that read the same input and share one scale vector, and where that scale is folded."""

    names: list[str]
    modules: list[nn.Module]
    previous: nn.Module | None = None  # a norm (kind "norm") or a linear whose rows feed them (kind "linear")
    previous_name: str = ""
    kind: str = ""
    heads: tuple[int, int, int] | None = None  # (kv heads, query heads per kv head, head dim) for tied scales
    scales: torch.Tensor | None = field(default=None, repr=False)

    @property
    def foldable(self) -> bool:
        return self.previous is not None


def _foldable_norm(norm: nn.Module | None, width: int) -> bool:
    """A norm whose output is ``normalised(x) * weight (+ bias)``, so dividing weight and bias divides the output."""
    if norm is None:
        return False
    kind = type(norm).__name__
    plain = isinstance(norm, nn.LayerNorm) or (kind.endswith("RMSNorm") and "Gemma" not in kind)
    weight = getattr(norm, "weight", None)
    return plain and isinstance(weight, torch.Tensor) and weight.shape == (width,)


def _gqa_layout(attention: nn.Module, v_proj: nn.Module, o_proj: nn.Module) -> tuple[int, int, int] | None:
    """(kv heads, query heads per kv head, head dim) when o_proj's input channels map onto v_proj's outputs."""
    v_out, o_in = weight_view(v_proj).shape[0], weight_view(o_proj).shape[1]
    if v_out == o_in:
        return None
    head_dim = getattr(attention, "head_dim", None)
    per_kv = getattr(attention, "num_key_value_groups", None)
    if not head_dim or not per_kv or v_out % head_dim or v_out * per_kv != o_in:
        raise ValueError("heads do not allow")
    return v_out // head_dim, per_kv, head_dim


def scale_groups(block: nn.Module, members: list[tuple[str, nn.Module]]) -> list[ScaleGroup]:
    """Every target layer of ``block`` in exactly one group; groups that cannot fold have ``previous`` None."""
    by_id = {id(m): name for name, m in members}
    grouped: set[int] = set()
    groups: list[ScaleGroup] = []

    def owned(owner: nn.Module | None, names: tuple[str, ...]) -> list[nn.Module] | None:
        found = [getattr(owner, n, None) for n in names] if owner is not None else [None]
        if any(m is None or id(m) not in by_id or id(m) in grouped for m in found):
            return None
        return found  # type: ignore[return-value]

    for norm_name, owner_name, names in NORM_FOLDS:
        norm, layers = getattr(block, norm_name, None), owned(getattr(block, owner_name, None), names)
        if layers and _foldable_norm(norm, weight_view(layers[0]).shape[1]):
            first = by_id[id(layers[0])]
            block_name = first[: -len(f"{owner_name}.{names[0]}")]  # "model.layers.3."
            groups.append(ScaleGroup([by_id[id(m)] for m in layers], layers, norm, f"{block_name}{norm_name}", "norm"))
            grouped.update(id(m) for m in layers)
    for owner_name, previous_name, name in LINEAR_FOLDS:
        owner = getattr(block, owner_name, None)
        previous, layers = getattr(owner, previous_name, None), owned(owner, (name,))
        if not layers or previous is None or id(previous) not in by_id:
            continue  # a predecessor kept out of compression stays bit-for-bit unchanged
        try:
            heads = _gqa_layout(owner, previous, layers[0])
        except ValueError:
            continue
        groups.append(ScaleGroup([by_id[id(layers[0])]], layers, previous, by_id[id(previous)], "linear", heads))
        grouped.add(id(layers[0]))
    groups += [ScaleGroup([name], [m]) for name, m in members if id(m) not in grouped]
    return groups


def tie_statistic(abs_mean: torch.Tensor, heads: tuple[int, int, int] | None) -> torch.Tensor:
    """The per-channel statistic a tied scale is computed from: averaged over the query heads of a kv group."""
    if heads is None:
        return abs_mean
    kv, per_kv, head_dim = heads
    return abs_mean.reshape(kv, per_kv, head_dim).mean(dim=1).reshape(-1)


def untie(scales: torch.Tensor, heads: tuple[int, int, int] | None) -> torch.Tensor:
    """A scale over v_proj's output channels, repeated over o_proj's input channels (query heads)."""
    if heads is None:
        return scales
    kv, per_kv, head_dim = heads
    return scales.reshape(kv, 1, head_dim).expand(kv, per_kv, head_dim).reshape(-1)


@torch.no_grad()
def fold(group: ScaleGroup) -> None:
    """Multiply the group's input columns by its scales and divide the previous operation's output by them."""
    assert group.previous is not None and group.scales is not None
    column_scales = untie(group.scales, group.heads)
    for module in group.modules:
        view = weight_view(module)
        view.copy_((view.float() * column_scales.to(view.device)[None, :]).to(view.dtype))
    if group.kind == "norm":
        targets = [group.previous.weight, getattr(group.previous, "bias", None)]
        for tensor in targets:
            if tensor is not None:
                tensor.copy_((tensor.float() / group.scales.to(tensor.device)).to(tensor.dtype))
        return
    view = weight_view(group.previous)
    view.copy_((view.float() / group.scales.to(view.device)[:, None]).to(view.dtype))
    bias = getattr(group.previous, "bias", None)
    if bias is not None:
        bias.copy_((bias.float() / group.scales.to(bias.device)).to(bias.dtype))
