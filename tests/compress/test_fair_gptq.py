"""Fair-GPTQ: the same as GPTQ when its weight is 0; with a positive weight it lowers the fairness term (the
quantized layer's squared output difference on paired inputs) against GPTQ and minimises the combined objective;
pair differences cover exactly the positions a group word can change; end to end on a tiny Llama it debiases only
the output projections and keeps GPTQ's storage."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import transformers

from compsafe.compress import CalibrationSet, CalibrationSpec, apply_recipe, parse_recipe
from compsafe.compress.fair_gptq import (
    FairGPTQConfig,
    collect_pair_differences,
    fair_gptq_quantize,
    fairness_hessian,
    fairness_term,
    pair_differences,
)
from compsafe.compress.gptq import GPTQConfig, gptq_quantize
from compsafe.compress.targets import compressible_linears
from compsafe.errors import RecipeError
from conftest import correlated_layer, tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def biased_layer(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A correlated layer plus pair differences ``D`` concentrated in a few input directions (a group direction)."""
    w, _, h = correlated_layer(seed, out=32, inp=128, n=512)
    gen = torch.Generator().manual_seed(seed + 1)
    direction = torch.randn(3, 128, generator=gen)
    d = torch.randn(64, 3, generator=gen) @ direction + 0.05 * torch.randn(64, 128, generator=gen)
    return w.double(), h.double(), d.double()


def objective(w: torch.Tensor, q: torch.Tensor, h: torch.Tensor, h_d: torch.Tensor, alpha: float) -> float:
    """GPTQ's output error plus alpha x the fairness term, summed over rows (the module docstring's objective)."""
    e = w - q
    return float(torch.einsum("ri,ij,rj->", e, h, e) + alpha * torch.einsum("ri,ij,rj->", q, h_d, q))


def test_weight_zero_is_exactly_gptq() -> None:
    w, h, d = biased_layer()
    config = FairGPTQConfig(bits=4, group_size=32, alpha=0.0)
    fair = fair_gptq_quantize(w, h, fairness_hessian(d), config)
    plain = gptq_quantize(w, h, GPTQConfig(bits=4, group_size=32))
    assert torch.equal(fair.weight, plain.weight)


@pytest.mark.parametrize("bits, group", [(4, 32), (3, 64), (4, None)])
def test_fair_gptq_lowers_the_fairness_term_and_the_combined_objective(bits: int, group: int | None) -> None:
    w, h, d = biased_layer(bits)
    h_d, alpha = fairness_hessian(d), 2.0
    config = FairGPTQConfig(bits=bits, group_size=group, alpha=alpha)
    fair = fair_gptq_quantize(w, h, h_d, config).weight
    plain = gptq_quantize(w, h, GPTQConfig(bits=bits, group_size=group)).weight
    assert fairness_term(fair, d) < 0.8 * fairness_term(plain, d)
    assert objective(w, fair, h, h_d, alpha) < objective(w, plain, h, h_d, alpha)
    # the stronger the weight, the smaller the term (and the larger GPTQ's own error)
    stronger = fair_gptq_quantize(w, h, h_d, replace(config, alpha=8.0)).weight
    assert fairness_term(stronger, d) < fairness_term(fair, d)


def test_values_stay_on_the_quantization_grid() -> None:
    w, h, d = biased_layer()
    result = fair_gptq_quantize(w, h, fairness_hessian(d), FairGPTQConfig(bits=4, group_size=32, alpha=1.0))
    scale = result.grid.scale.repeat_interleave(32, dim=1)
    steps = result.weight / scale
    assert torch.allclose(steps, steps.round(), atol=1e-6) and steps.abs().max() <= 8


def test_pair_differences_skip_the_shared_prefix_and_align_the_suffix() -> None:
    ids_a, ids_b = torch.tensor([5, 6, 7, 8, 9]), torch.tensor([5, 6, 17, 18, 19, 8, 9])  # 1 token vs 3, suffix 2
    xa, xb = torch.arange(5.0)[:, None].repeat(1, 4), 10 + torch.arange(7.0)[:, None].repeat(1, 4)
    rows = pair_differences(xa, xb, ids_a, ids_b)
    # middle spans differ in length: one row of mean differences; then the suffix tokens aligned from the end
    assert rows.shape == (3, 4)
    assert torch.equal(rows[0], torch.full((4,), 2.0 - (10 + 3.0)))
    assert torch.equal(rows[1:], xa[3:] - xb[5:])
    same_length = pair_differences(xa, xa + 1, ids_a, torch.tensor([5, 6, 70, 8, 9]))
    assert same_length.shape == (3, 4)  # the differing token and the 2-token suffix, position by position


def test_pair_differences_are_zero_on_the_shared_prefix_of_a_causal_model() -> None:
    model = tiny_llama()
    layers = [(n, m) for n, m in compressible_linears(model) if n.endswith("o_proj")]
    ids_a, ids_b = torch.tensor([3, 4, 5, 6, 7]), torch.tensor([3, 4, 9, 6, 7])
    d = collect_pair_differences(model, layers, ((ids_a, ids_b),))
    assert all(rows.shape[0] == 3 for rows in d.values())  # positions 2..4: the swap and what follows
    assert all(rows.abs().sum() > 0 for rows in d.values())
    same = collect_pair_differences(model, layers, ((ids_a, ids_a.clone()),))
    assert all(rows.shape[0] == 0 for rows in same.values())


def calibration(seed: int = 0) -> CalibrationSet:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 128, (8, 32), generator=gen)
    pairs = tuple(
        (torch.cat([p, torch.tensor([10 + i]), s]), torch.cat([p, torch.tensor([60 + i]), s]))
        for i, (p, s) in enumerate(zip(torch.randint(0, 128, (12, 4), generator=gen),
                                       torch.randint(0, 128, (12, 6), generator=gen), strict=True))
    )
    return CalibrationSet(ids, CalibrationSpec(n_samples=8, seq_len=32, seed=seed), f"random-{seed}", pairs)


def test_end_to_end_debiases_only_output_projections_and_stores_like_gptq() -> None:
    calib = calibration()
    fair_model, gptq_model = tiny_llama(), tiny_llama()
    report = apply_recipe(fair_model, "int4-fairgptq-g32-a4", calib)
    plain = apply_recipe(gptq_model, "int4-gptq-g32", calib)
    assert report.method == "fairgptq" and report.recipe == "int4-fairgptq-g32-a4"
    assert report.packed_size_bytes == plain.packed_size_bytes
    assert report.effective_bits_per_weight == pytest.approx(plain.effective_bits_per_weight)
    extra = report.extra
    assert extra["alpha"] == 4.0 and extra["fairness_pairs"] == 12 and extra["difference_rows"] == 12 * 7
    assert extra["debiased_layers"] == 4  # o_proj and down_proj of the 2 blocks
    assert extra["fairness_term"]["quantized"] < extra["fairness_term"]["original"]
    fair, gptq = dict(fair_model.named_parameters()), dict(gptq_model.named_parameters())
    for name, _ in compressible_linears(fair_model):
        same = torch.equal(fair[f"{name}.weight"], gptq[f"{name}.weight"])
        debiased = name.endswith(("o_proj", "down_proj"))
        # the first block's q/k/v/gate/up see the same inputs in both models, so they are plain GPTQ exactly
        if ".0." in name or debiased:
            assert same != debiased, name


def test_gpt2_debiases_its_c_proj_layers() -> None:
    report = apply_recipe(tiny_gpt2(), "int4-fairgptq-g32", calibration())
    assert report.extra["debiased_layers"] == 4  # attn.c_proj and mlp.c_proj of 2 blocks


def test_recipes_and_errors() -> None:
    assert parse_recipe("int4-fairgptq-g128") == FairGPTQConfig(bits=4, group_size=128)
    assert parse_recipe("int3-fairgptq-g64-asym-actorder-a2").recipe == "int3-fairgptq-g64-asym-actorder-a2"
    with pytest.raises(RecipeError):
        parse_recipe("int5-fairgptq-g128")
    without_pairs = replace(calibration(), fairness_pairs=())
    with pytest.raises(RecipeError, match="pairs"):
        apply_recipe(tiny_llama(), "int4-fairgptq-g32", without_pairs)
