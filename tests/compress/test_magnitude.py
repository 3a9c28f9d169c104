"""Magnitude and N:M pruning: exact counts, tie-breaking, global threshold, N:M pattern, accounting."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import apply_recipe
from compsafe.compress.magnitude import NMConfig, nm_keep_mask
from compsafe.compress.selection import cut_mask, find_cut
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError
from compsafe.models.sparse_bitmask import encoded_bytes
from conftest import tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def target_views(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every target weight as [out, in]."""
    return {name: weight_view(m).clone() for name, m in compressible_linears(model)}


@pytest.mark.parametrize("percent", [30, 50, 73])
def test_per_layer_count_is_exact_and_prunes_smallest(percent: int) -> None:
    model = tiny_llama()
    before = target_views(model)
    report = apply_recipe(model, f"mag-{percent}")
    after = target_views(model)
    assert [layer.name for layer in report.layers] == list(before)
    for layer in report.layers:
        orig, new = before[layer.name], after[layer.name]
        zeroed = new == 0
        assert int(zeroed.sum()) == round(percent / 100 * orig.numel())
        assert layer.sparsity == zeroed.float().mean().item()
        assert orig[zeroed].abs().max() <= orig[~zeroed].abs().min()
        assert torch.equal(new[~zeroed], orig[~zeroed])  # survivors are untouched
        assert layer.bits_per_weight == 8 * encoded_bytes(new, "sparse-bitmask") / new.numel()  # the bitmask layout
    assert report.packed_size_bytes < report.dense_size_bytes


def test_ties_are_broken_by_earliest_index() -> None:
    model = nn.Sequential(nn.Linear(8, 4, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].weight[3, 7] = 0.5
    apply_recipe(model, "mag-25")  # 8 of 32: the 0.5, then the first 7 ones in row-major order
    zeros = (model[0].weight == 0).reshape(-1)
    assert int(zeros.sum()) == 8
    assert zeros[:7].all() and zeros[31] and not zeros[7:31].any()


def test_global_count_is_exact_with_one_threshold() -> None:
    model = tiny_llama()
    with torch.no_grad():  # make layers differ so a global cut prunes them unevenly
        model.model.layers[0].mlp.down_proj.weight.mul_(10)
        model.model.layers[1].self_attn.v_proj.weight.mul_(0.1)
    before = target_views(model)
    report = apply_recipe(model, "mag-50-global")
    after = target_views(model)
    total = sum(t.numel() for t in before.values())
    assert sum(int((t == 0).sum()) for t in after.values()) == round(0.5 * total) == report.extra["pruned"]
    pruned = torch.cat([before[n][after[n] == 0].abs() for n in before])
    kept = torch.cat([before[n][after[n] != 0].abs() for n in before])
    assert pruned.max() <= report.extra["threshold"] <= kept.min()
    by_name = {layer.name: layer.sparsity for layer in report.layers}
    assert by_name["model.layers.0.mlp.down_proj"] < 0.1
    assert by_name["model.layers.1.self_attn.v_proj"] > 0.95
    assert report.sparsity == pytest.approx(0.5)


def test_global_ties_across_layers_are_exact() -> None:
    model = nn.Sequential(nn.Linear(8, 4, bias=False), nn.Linear(4, 8, bias=False))
    with torch.no_grad():
        for layer in model:
            layer.weight.fill_(-2.0)
    apply_recipe(model, "mag-75-global")  # 48 of 64 tied values: all 32 of layer 0, first 16 of layer 1
    assert (model[0].weight == 0).all()
    assert (model[1].weight.reshape(-1)[:16] == 0).all() and (model[1].weight.reshape(-1)[16:] == -2).all()


def test_radix_and_kthvalue_cuts_match_sorting() -> None:
    torch.manual_seed(3)
    parts = [torch.randn(n).abs() for n in (100, 257, 31)]
    parts[1][:50] = parts[0][5]  # ties that straddle tensors
    flat = torch.cat(parts)
    for k in (1, 60, 200, flat.numel()):
        cut = find_cut([lambda p=p: p for p in parts], k)
        assert cut.threshold == torch.sort(flat).values[k - 1].item()
        assert find_cut([lambda: flat], k) == cut
        ties_left, masks = cut.tie_quota, []
        for part in parts:
            mask, ties_left = cut_mask(part, cut, ties_left)
            masks.append(mask)
        assert int(torch.cat(masks).sum()) == k and ties_left == 0


def test_head_and_embeddings_untouched() -> None:
    for recipe in ("mag-50", "mag-50-global", "2:4"):
        model = tiny_llama()
        head, embed = model.lm_head.weight.clone(), model.model.embed_tokens.weight.clone()
        apply_recipe(model, recipe)
        assert torch.equal(model.lm_head.weight, head) and torch.equal(model.model.embed_tokens.weight, embed)
    model = tiny_llama()
    report = apply_recipe(model, "mag-50-head")
    assert report.layers[-1].name == "lm_head" and report.layers[-1].sparsity == 0.5


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
def test_nm_pattern_is_exact(n: int, m: int) -> None:
    model = tiny_llama()
    before = target_views(model)
    report = apply_recipe(model, f"{n}:{m}")
    after = target_views(model)
    for name, orig in before.items():
        groups_new = after[name].reshape(-1, m)
        groups_old = orig.reshape(-1, m).abs()
        zero = groups_new == 0
        assert (zero.sum(-1) == m - n).all()
        kept_min = torch.where(zero, torch.inf, groups_old).amin(-1)
        pruned_max = torch.where(zero, groups_old, -torch.inf).amax(-1)
        assert (kept_min >= pruned_max).all()
    assert all(layer.sparsity == (m - n) / m for layer in report.layers)


def test_nm_groups_run_along_conv1d_input_dimension() -> None:
    model = tiny_gpt2()
    apply_recipe(model, "2:4")
    stored = model.transformer.h[0].mlp.c_fc.weight  # Conv1D [in=64, out=256]
    groups = stored.t().reshape(256, 16, 4)  # per output channel, 4 consecutive inputs
    assert ((groups == 0).sum(-1) == 2).all()


def test_nm_mask_keeps_earlier_on_ties() -> None:
    keep = nm_keep_mask(torch.ones(2, 8), 2, 4)
    assert keep.tolist() == [[True, True, False, False] * 2] * 2


def test_nm_accounting_exact() -> None:
    model = nn.Sequential(nn.Linear(256, 64)).to(torch.float16)
    report = apply_recipe(model, "2:4")
    (layer,) = report.layers
    shape_bytes = 16  # the layout's int64 [2, 1] shape tensor
    assert layer.bits_per_weight == 0.5 * 16 + 0.5 * 2 + 8 * shape_bytes / (64 * 256)
    assert NMConfig(2, 4).bits_per_weight(torch.float16) == 0.5 * 16 + 0.5 * 2
    kept = 64 * 256 // 2
    assert report.packed_size_bytes == kept * 2 + kept * 2 // 8 + shape_bytes + 64 * 2
    assert report.dense_size_bytes == (64 * 256 + 64) * 2
    assert NMConfig(4, 8).bits_per_weight(torch.bfloat16) == 0.5 * (16 + 3)
    assert NMConfig(1, 4).bits_per_weight(torch.float32) == 0.25 * (32 + 2)


def test_nm_non_divisible_raises_before_touching_weights() -> None:
    model = nn.Sequential(nn.Linear(64, 6), nn.Linear(6, 8))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(RecipeError, match=r"layer '1' has in_features 6, not divisible by m=4"):
        apply_recipe(model, "2:4")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("recipe", ["mag-50", "mag-30-global", "2:4", "4:8-head"])
@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_model_still_runs(recipe: str, build) -> None:
    model = build()
    apply_recipe(model, recipe)
    with torch.no_grad():
        logits = model(torch.arange(16).reshape(2, 8)).logits
    assert logits.shape == (2, 8, 128) and torch.isfinite(logits).all()
