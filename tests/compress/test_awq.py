"""AWQ: beats RTN when a few input channels are salient, alpha=0 is RTN exactly, scales folded into the preceding
norm/linear so the stored weights sit on the int grid, a fold that would change the block is refused, accounting."""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from compsafe.compress import CalibrationSet, CalibrationSpec, apply_recipe, parse_recipe
from compsafe.compress.awq import AWQConfig, awq_quantize, awq_scales, clip_search
from compsafe.compress.rtn import RTNConfig, quantize_dequantize
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError
from conftest import tiny_llama

transformers.logging.set_verbosity_error()


def calibration(n: int = 4, seq_len: int = 16, seed: int = 0) -> CalibrationSet:
    ids = torch.randint(0, 128, (n, seq_len), generator=torch.Generator().manual_seed(seed))
    return CalibrationSet(ids, CalibrationSpec(n_samples=n, seq_len=seq_len, seed=seed), f"random-{seed}")


def salient_layer(in_features: int = 256, out_features: int = 64, tokens: int = 512, seed: int = 0):
    """Weights ~ N(0, 1); inputs ~ N(0, 1) except 4 salient channels 30x larger (LLM-like outliers)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, in_features, generator=gen)
    salient = torch.randperm(in_features, generator=gen)[:4]
    x[:, salient] *= 30.0
    weight = torch.randn(out_features, in_features, generator=gen)
    return weight, x


def output_error(x: torch.Tensor, weight: torch.Tensor, approx: torch.Tensor) -> float:
    return torch.linalg.vector_norm(x @ (weight - approx).t()).item()


@pytest.mark.parametrize("recipe", ["int4-awq-g128", "int3-awq-g128", "int4-awq-g64", "int4-awq-g128-asym"])
def test_awq_output_error_below_rtn_with_salient_channels(recipe: str) -> None:
    config = parse_recipe(recipe)
    assert isinstance(config, AWQConfig)
    weight, x = salient_layer()
    rtn = quantize_dequantize(weight, config.rtn)[0]  # RTN at the same bits, group and scheme
    approx, info = awq_quantize(weight, x.abs().mean(0), x, config)
    assert output_error(x, weight, approx) < 0.85 * output_error(x, weight, rtn)
    assert info["alpha"] > 0
    assert info["rtn_output_error"] == pytest.approx(output_error(x, weight, rtn), rel=1e-5)
    assert info["output_error"] == pytest.approx(output_error(x, weight, approx), rel=1e-5)


def test_alpha_zero_is_rtn_exactly() -> None:
    weight, x = salient_layer()
    for symmetric in (True, False):
        config = AWQConfig(bits=4, group_size=64, symmetric=symmetric, clip=False)
        approx, info = awq_quantize(weight, x.abs().mean(0), x, config, alphas=(0.0,))
        assert torch.equal(approx, quantize_dequantize(weight, config.rtn)[0])
        assert info["alpha"] == 0.0
    assert torch.equal(awq_scales(x.abs().mean(0), 0.0), torch.ones(256))


def test_scale_search_never_worse_than_rtn_and_clip_helps_on_its_groups() -> None:
    weight, x = salient_layer(in_features=96, seed=1)  # 96 = 64 + 32: a ragged last group with g64
    config = AWQConfig(bits=3, group_size=64, clip=False)
    noclip, info = awq_quantize(weight, x.abs().mean(0), x, config)
    assert info["output_error"] <= info["rtn_output_error"]
    clipped, _ = awq_quantize(weight, x.abs().mean(0), x, config, clip=True)
    assert torch.isfinite(clipped).all() and clipped.shape == weight.shape
    assert output_error(x, weight, clipped) <= output_error(x, weight, noclip) * 1.01
    bounds = clip_search(weight, x, config.rtn)
    assert bounds.shape == (64, 2)
    group_max = torch.stack([weight[:, :64].abs().amax(1), weight[:, 64:].abs().amax(1)], dim=1)
    assert (bounds > 0).all() and (bounds <= group_max + 1e-6).all() and (bounds >= 0.5 * group_max - 1e-6).all()


def test_tiny_model_end_to_end_accounting_and_finite_logits() -> None:
    model = tiny_llama()
    before = {name: weight_view(m).clone() for name, m in compressible_linears(model)}
    report = apply_recipe(model, "int4-awq-g64", calibration())
    assert report.method == "awq" and report.recipe == "int4-awq-g64"
    assert [layer.name for layer in report.layers] == list(before)
    rtn = RTNConfig(bits=4, group_size=64)
    expected_packed = report.dense_size_bytes
    for layer in report.layers:
        out_features, in_features = before[layer.name].shape
        # symmetric (the default, like RTN and GPTQ): 4-bit code + a 16-bit scale per 64 weights
        assert layer.bits_per_weight == pytest.approx(4 + 16 * math.ceil(in_features / 64) / in_features)
        assert 0 < layer.relative_error < 0.2
        search = report.extra["search"][layer.name]
        if "output_error" in search:  # folded layers: the scale search never does worse than RTN
            assert search["output_error"] <= search["rtn_output_error"] * (1 + 1e-6)
        expected_packed -= out_features * in_features * 4 - rtn.packed_bytes(out_features, in_features)
    assert report.packed_size_bytes == expected_packed
    assert report.extra["scheme"] == "symmetric-signed"
    assert report.extra["unscaled"] == ["model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj"]  # GQA
    with torch.no_grad():
        logits = model(input_ids=torch.arange(12)[None]).logits
    assert torch.isfinite(logits).all()


def test_per_channel_and_symmetric_noclip_on_tiny_model() -> None:
    model = tiny_llama()
    report = apply_recipe(model, "int8-awq-sym-noclip", calibration())
    assert report.recipe == "int8-awq-noclip"  # symmetric is the default, as for RTN and GPTQ
    assert all(
        layer.bits_per_weight == pytest.approx(8 + 16 / weight_view(model.get_submodule(layer.name)).shape[1])
        for layer in report.layers
    )
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.arange(12)[None]).logits).all()


def test_recipes_and_errors() -> None:
    assert parse_recipe("int4-awq-g128") == AWQConfig(bits=4, group_size=128)
    assert parse_recipe("int4-awq-g128-asym") == AWQConfig(bits=4, group_size=128, symmetric=False)
    assert parse_recipe("int4-awq-g128-sym") == AWQConfig(bits=4, group_size=128, symmetric=True)
    assert parse_recipe("int4-awq-g128-asym").recipe == "int4-awq-g128-asym"
    assert parse_recipe("int3-awq-g64-noclip-head") == AWQConfig(3, 64, clip=False, include_lm_head=True)
    assert parse_recipe("int4-awq") == AWQConfig(bits=4, group_size=None)
    assert parse_recipe("int4-g128").method == "rtn"
    with pytest.raises(RecipeError, match="bits must be one of"):
        parse_recipe("int5-awq-g128")
    with pytest.raises(RecipeError, match="needs calibration data"):
        apply_recipe(tiny_llama(), "int4-awq-g128")


def group_levels(weight: torch.Tensor, group: int) -> int:
    """The most distinct values any (row, group) block of ``weight`` holds."""
    out_features, in_features = weight.shape
    most = 0
    for start in range(0, in_features, group):
        block = weight[:, start : start + group]
        most = max(most, max(len(torch.unique(row)) for row in block))
    return most


@pytest.mark.parametrize("recipe, levels", [("int4-awq-g32", 16), ("int3-awq-g32-asym", 8), ("int2-awq-g32", 4)])
def test_folded_weights_sit_on_the_int_grid(recipe: str, levels: int) -> None:
    model = tiny_llama(num_key_value_heads=4)  # no GQA: every linear's scales can be folded
    norms = model.model.layers[0].input_layernorm.weight.clone()
    report = apply_recipe(model, recipe, calibration(n=8, seq_len=32))
    assert report.extra["unscaled"] == []
    assert report.extra["fold_check_max_relative_change"] < 1e-5  # fp32: the fold is exact up to rounding
    assert not torch.equal(model.model.layers[0].input_layernorm.weight, norms)  # 1/s went into the norm
    for name, module in compressible_linears(model):
        assert group_levels(weight_view(module), 32) <= levels, name
        assert report.extra["search"][name]["folded_into"]
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.arange(12)[None]).logits).all()


def test_unfolded_division_is_off_grid_which_is_why_awq_folds() -> None:
    """The old storage, Q(W diag(s)) diag(s)^-1, spreads a group over many values: not packable at 4 bits."""
    weight, x = salient_layer(in_features=64, out_features=8)
    approx, info = awq_quantize(weight, x.abs().mean(0), x, AWQConfig(bits=4, group_size=32, clip=False))
    assert info["alpha"] > 0 and group_levels(approx, 32) > 16


def test_fold_is_exact_in_float32_and_keeps_the_model_function() -> None:
    from compsafe.compress import awq_fold

    model = tiny_llama(num_key_value_heads=4)
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        for block in model.model.layers:
            groups = awq_fold.scale_groups(block)
            assert [g.producer_name for g in groups] == [
                "input_layernorm", "self_attn.v_proj", "post_attention_layernorm", "mlp.up_proj"]
            for group in groups:
                width = weight_view(group.linears[0][1]).shape[1]
                awq_fold.fold(group, torch.rand(width, generator=torch.Generator().manual_seed(1)) * 4 + 0.25)
        folded = model(input_ids=ids).logits
    assert torch.allclose(folded, reference, atol=1e-4, rtol=1e-4)


def test_grouped_query_attention_leaves_o_proj_unfolded() -> None:
    from compsafe.compress import awq_fold

    block = tiny_llama().model.layers[0]  # 4 query heads, 2 key/value heads: v has half o's inputs
    assert [g.producer_name for g in awq_fold.scale_groups(block)] == [
        "input_layernorm", "post_attention_layernorm", "mlp.up_proj"]


def test_a_fold_that_changes_the_block_is_undone() -> None:
    """OLMo2 normalises after attention: its post_attention_layernorm is not the MLP's input, so folding the
    gate/up scales into it would change the model. The numerical check refuses that fold and those layers are
    quantized unscaled (still on the grid); the v -> o fold, which is valid there, stays."""
    from transformers import Olmo2Config, Olmo2ForCausalLM

    torch.manual_seed(0)
    config = Olmo2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, eos_token_id=1, pad_token_id=0)
    model = Olmo2ForCausalLM(config).eval()
    report = apply_recipe(model, "int4-awq-g32", calibration(n=8, seq_len=32))
    unscaled = report.extra["unscaled"]
    assert "model.layers.0.mlp.gate_proj" in unscaled and "model.layers.0.mlp.up_proj" in unscaled
    assert "post_attention_layernorm" in report.extra["search"]["model.layers.0.mlp.gate_proj"]["unscaled"]
    assert report.extra["search"]["model.layers.0.self_attn.o_proj"]["folded_into"] == "self_attn.v_proj"
    for name, module in compressible_linears(model):
        assert group_levels(weight_view(module), 32) <= 16, name


def test_gpt2_conv1d_layers_are_quantized_unscaled_on_the_grid() -> None:
    from conftest import tiny_gpt2

    model = tiny_gpt2()
    report = apply_recipe(model, "int4-awq-g32", calibration(n=4, seq_len=16))
    assert len(report.extra["unscaled"]) == len(report.layers) > 0
    for name, module in compressible_linears(model):
        assert group_levels(weight_view(module), 32) <= 16, name
