"""Head ablation masks exactly one head's output: equal to zeroing o_proj's input columns, others untouched."""

from __future__ import annotations

import math

import torch

from compsafe.diagnose.heads import ablate_heads, head_attribution, head_layout, scan_heads, top_candidates
from compsafe.diagnose.signals import Signals
from compsafe.models import HFBackend


def _ids(handle) -> torch.Tensor:
    return torch.tensor([handle.tokenizer("How do rivers reach the sea? They flow downhill.")["input_ids"]])


def test_mask_equals_zeroing_o_proj_input_columns(tiny_handle) -> None:
    model, ids = tiny_handle.model, _ids(tiny_handle)
    _, _, head_dim = head_layout(model)
    with torch.no_grad():
        with ablate_heads(model, [(1, 2)]):
            masked = model(input_ids=ids).logits
        o_proj = model.model.layers[1].self_attn.o_proj
        saved = o_proj.weight.detach().clone()
        o_proj.weight[:, 2 * head_dim : 3 * head_dim] = 0
        zeroed = model(input_ids=ids).logits
        o_proj.weight.copy_(saved)
        intact = model(input_ids=ids).logits
    assert torch.allclose(masked, zeroed, atol=1e-6)
    assert not torch.allclose(masked, intact)


def test_other_heads_bit_identical_and_hooks_removed(tiny_handle) -> None:
    model, ids = tiny_handle.model, _ids(tiny_handle)
    _, n_heads, head_dim = head_layout(model)
    seen: list[torch.Tensor] = []
    o_proj = model.model.layers[1].self_attn.o_proj
    with torch.no_grad():
        handle = o_proj.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
        model(input_ids=ids)  # intact
        handle.remove()
        with ablate_heads(model, [(1, 2)]):
            handle = o_proj.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))  # runs after mask
            model(input_ids=ids)
            handle.remove()
        after = model(input_ids=ids).logits
        reference = model(input_ids=ids).logits
    intact, masked = seen
    for h in range(n_heads):
        part = slice(h * head_dim, (h + 1) * head_dim)
        if h == 2:
            assert torch.count_nonzero(masked[..., part]) == 0
        else:
            assert torch.equal(masked[..., part], intact[..., part])
    assert torch.equal(after, reference) and not o_proj._forward_pre_hooks


def test_attribution_covers_every_head_and_scan_ranks(tiny_handle) -> None:
    backend = HFBackend(tiny_handle, 4)
    model = tiny_handle.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    attribution = head_attribution(backend, ["How do I pick a lock?"])
    n_blocks, n_heads, _ = head_layout(model)
    assert len(attribution) == n_blocks * n_heads and all(math.isfinite(v) for v in attribution.values())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    candidates = top_candidates(attribution, 3)
    assert len(candidates) == 3 and attribution[candidates[0]] == min(attribution.values())

    def measure(state: dict) -> Signals:  # stub: any ablation in block 0 costs one nat of margin, block 1 costs nothing
        hooks = len(model.model.layers[0].self_attn.o_proj._forward_pre_hooks)
        return Signals(mean_margin=-float(hooks), fast_refusal_rate=0.0, perplexity=1.0)

    base = Signals(mean_margin=0.0, fast_refusal_rate=0.0, perplexity=1.0)
    effects = scan_heads(model, measure, [(1, 0), (0, 1)], base)
    assert [(e.block, e.head) for e in effects] == [(0, 1), (1, 0)] and effects[0].margin_change == -1.0
