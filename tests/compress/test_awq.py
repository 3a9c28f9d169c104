"""AWQ: beats RTN when a few input channels are salient, alpha=0 is RTN exactly, accounting, tiny model runs."""

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


@pytest.mark.parametrize("recipe", ["int4-awq-g128", "int3-awq-g128", "int4-awq-g64", "int4-awq-g128-sym"])
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
    assert (bounds > 0).all() and (bounds <= weight.abs()[:, :64].amax(1, keepdim=True).max() + 1e-6).all()


def test_tiny_model_end_to_end_accounting_and_finite_logits() -> None:
    model = tiny_llama()
    before = {name: weight_view(m).clone() for name, m in compressible_linears(model)}
    report = apply_recipe(model, "int4-awq-g64", calibration())
    assert report.method == "awq" and report.recipe == "int4-awq-g64"
    assert [layer.name for layer in report.layers] == list(before)
    rtn = RTNConfig(bits=4, group_size=64, symmetric=False)
    expected_packed = report.dense_size_bytes
    for layer in report.layers:
        out_features, in_features = before[layer.name].shape
        # asymmetric: 4-bit code + (16-bit scale + 4-bit zero) per 64 weights
        assert layer.bits_per_weight == pytest.approx(4 + 20 * math.ceil(in_features / 64) / in_features)
        assert 0 < layer.relative_error < 0.2
        search = report.extra["search"][layer.name]
        assert search["output_error"] <= search["rtn_output_error"] * 1.05
        expected_packed -= out_features * in_features * 4 - rtn.packed_bytes(out_features, in_features)
    assert report.packed_size_bytes == expected_packed
    assert report.extra["scheme"] == "asymmetric-int-zero"
    with torch.no_grad():
        logits = model(input_ids=torch.arange(12)[None]).logits
    assert torch.isfinite(logits).all()


def test_per_channel_and_symmetric_noclip_on_tiny_model() -> None:
    model = tiny_llama()
    report = apply_recipe(model, "int8-awq-sym-noclip", calibration())
    assert report.recipe == "int8-awq-sym-noclip"
    assert all(
        layer.bits_per_weight == pytest.approx(8 + 16 / weight_view(model.get_submodule(layer.name)).shape[1])
        for layer in report.layers
    )
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.arange(12)[None]).logits).all()


def test_recipes_and_errors() -> None:
    assert parse_recipe("int4-awq-g128") == AWQConfig(bits=4, group_size=128)
    assert parse_recipe("int4-awq-g128-asym") == AWQConfig(bits=4, group_size=128)
    assert parse_recipe("int4-awq-g128-sym") == AWQConfig(bits=4, group_size=128, symmetric=True)
    assert parse_recipe("int3-awq-g64-noclip-head") == AWQConfig(3, 64, clip=False, include_lm_head=True)
    assert parse_recipe("int4-awq") == AWQConfig(bits=4, group_size=None)
    assert parse_recipe("int4-g128").method == "rtn"
    with pytest.raises(RecipeError, match="bits must be one of"):
        parse_recipe("int5-awq-g128")
    with pytest.raises(RecipeError, match="needs calibration data"):
        apply_recipe(tiny_llama(), "int4-awq-g128")
