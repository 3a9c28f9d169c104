"""Where AWQ's per-input-channel scales go: folded into the operation that produces the layer's input.

AWQ multiplies column j of a weight by ``s_j`` before quantizing it, so the layer's input must be divided by
``s_j`` for the product to stay the same. A deployable AWQ model does not divide at run time: as the
reference (mit-han-lab/llm-awq ``auto_scale.py``, ``scale_ln_fcs`` / ``scale_fc_fc``) and AutoAWQ do, it folds
``1/s`` into the previous operation once, so every stored linear weight is ``Q(W diag(s))``, exactly on the
int grid, and can be packed. In a pre-norm decoder block (Llama, Mistral, Qwen2/3, SmolLM) that is:

* ``input_layernorm``          -> q, k, v projections (one scale shared by the three, as they share the input)
* ``self_attn.v_proj``         -> o_proj (its output rows; only when v's outputs are o's inputs one-to-one,
  i.e. no grouped-query attention -- with GQA o_proj is not scaled, as in the reference)
* ``post_attention_layernorm`` -> gate and up projections (``pre_feedforward_layernorm`` where a block has it)
* ``mlp.up_proj``              -> down_proj (its output rows: ``down(act(gate) * up)`` is linear in up's rows)

Folding into a norm divides its weight (and bias) by ``s``; into a linear, divides that linear's output rows
(and bias). Both are exact in real arithmetic, so the fold is checked numerically: the block is run on the
calibration inputs before and after each group's fold, and a fold that moved the block's output more than
``FOLD_TOLERANCE`` (relative, which covers the rounding of the weights' own dtype) is undone and that group
left unscaled. That check is what makes
the name-based layout safe on blocks it does not describe (post-norm blocks, Gemma's ``1 + w`` norms, fused
projections): there the scales cannot be folded and AWQ quantizes those layers unscaled (RTN plus AWQ's
clip search), which keeps them on the grid too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compsafe.compress.targets import weight_view

# Each entry: (candidate names of the producing op, the linears that consume its output), in fold order.
# For a producer, the first candidate name present in the block is used.
PRE_NORM_LAYOUT: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("input_layernorm",), ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    (("self_attn.v_proj",), ("self_attn.o_proj",)),
    (("pre_feedforward_layernorm", "post_attention_layernorm"), ("mlp.gate_proj", "mlp.up_proj")),
    (("mlp.up_proj",), ("mlp.down_proj",)),
)
FOLD_TOLERANCE = 0.02  # relative change of the block output allowed by the fold (bf16 weights round ~0.4%)
CHECK_SAMPLES = 4  # calibration samples the block is run on to check each fold


@dataclass(frozen=True)
class ScaleGroup:
    """Linears sharing one input, and the module whose output that input is (where ``1/s`` is folded)."""

    producer_name: str
    producer: nn.Module
    linears: tuple[tuple[str, nn.Module], ...]  # names relative to the block

    @property
    def into_linear(self) -> bool:
        return isinstance(self.producer, nn.Linear)


def _find(block: nn.Module, name: str) -> nn.Module | None:
    try:
        return block.get_submodule(name)
    except AttributeError:
        return None


def _in_features(module: nn.Module) -> int:
    return weight_view(module).shape[1]


def scale_groups(block: nn.Module) -> list[ScaleGroup]:
    """The block's foldable groups under the pre-norm layout; groups whose modules are absent or whose shapes
    do not line up (GQA's v -> o) are left out."""
    groups = []
    for producer_names, linear_names in PRE_NORM_LAYOUT:
        producer_name = next((n for n in producer_names if _find(block, n) is not None), None)
        linears = [(n, _find(block, n)) for n in linear_names]
        if producer_name is None or any(m is None or not isinstance(m, nn.Linear) for _, m in linears):
            continue
        producer = _find(block, producer_name)
        width = _in_features(linears[0][1])
        if any(_in_features(m) != width for _, m in linears):
            continue
        if isinstance(producer, nn.Linear):
            if producer.weight.shape[0] != width:
                continue  # e.g. GQA: v_proj has fewer outputs than o_proj has inputs
        elif getattr(producer, "weight", None) is None or producer.weight.shape != (width,):
            continue
        groups.append(ScaleGroup(producer_name, producer, tuple(linears)))  # type: ignore[arg-type]
    return groups


def _parameters(group: ScaleGroup) -> list[torch.Tensor]:
    params = [group.producer.weight.data]
    if getattr(group.producer, "bias", None) is not None:
        params.append(group.producer.bias.data)
    return params + [m.weight.data for _, m in group.linears]


@torch.no_grad()
def fold(group: ScaleGroup, scales: torch.Tensor) -> None:
    """Multiply the group's weight columns by ``scales`` and divide the producer's output by them, in place."""
    for _, linear in group.linears:
        view = weight_view(linear)
        view.copy_((view.float() * scales.to(view.device)).to(view.dtype))
    producer = group.producer
    inverse = (1.0 / scales).to(producer.weight.device)
    if group.into_linear:
        view = weight_view(producer)
        view.copy_((view.float() * inverse[:, None]).to(view.dtype))
    else:
        producer.weight.data.copy_((producer.weight.data.float() * inverse).to(producer.weight.dtype))
    bias = getattr(producer, "bias", None)
    if bias is not None:
        bias.data.copy_((bias.data.float() * inverse).to(bias.dtype))


def snapshot(group: ScaleGroup) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every tensor ``fold`` may change, to undo a fold that the numerical check rejects."""
    return [(tensor, tensor.clone()) for tensor in _parameters(group)]


@torch.no_grad()
def restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for tensor, copy in saved:
        tensor.copy_(copy)


def relative_change(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    """``||after - before|| / ||before||`` over the given block outputs, one per checked sample (float32)."""
    num = sum(torch.linalg.vector_norm(a.float() - b.float()).pow(2) for a, b in zip(after, before, strict=True))
    den = sum(torch.linalg.vector_norm(b.float()).pow(2) for b in before)
    return float((num / den).sqrt()) if den > 0 else 0.0
