"""RTN quantization: error bound, level counts, accounting, what is (not) touched, Conv1D orientation."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import apply_recipe, parse_recipe
from compsafe.compress.rtn import RTNConfig, quantize_dequantize
from compsafe.compress.targets import compressible_linears
from conftest import tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


CONFIGS = [
    RTNConfig(bits=b, group_size=g, symmetric=s, narrow=n)
    for b in (2, 3, 4, 8)
    for g in (None, 32)
    for s, n in ((True, False), (True, True), (False, False))
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.recipe)
def test_error_within_half_a_step_and_levels_per_group(config: RTNConfig) -> None:
    torch.manual_seed(1)
    weight = torch.randn(16, 128) * torch.rand(16, 1) + 0.3 * torch.randn(16, 1)
    deq, scale = quantize_dequantize(weight, config)
    group = config.group_size or 128
    step = scale.repeat_interleave(group, dim=1)
    assert torch.all((weight - deq).abs() <= step / 2 * (1 + 1e-5) + 1e-7)
    if config.symmetric:  # standard grid: absmax / ((2^b - 1) / 2), int4 absmax / 7.5; narrow: absmax / 7
        divisor = 2 ** (config.bits - 1) - 1 if config.narrow else (2**config.bits - 1) / 2
        expected = weight.reshape(16, -1, group).abs().amax(-1) / divisor
        torch.testing.assert_close(scale, expected)
    for row in deq.reshape(-1, group):
        assert row.unique().numel() <= 2**config.bits
    if config.narrow:  # restricted symmetric range: at most 2^b - 1 levels, and +-absmax exact
        for row, orig in zip(deq.reshape(-1, group), weight.reshape(-1, group), strict=True):
            assert row.unique().numel() <= 2**config.bits - 1
            i = orig.abs().argmax()
            torch.testing.assert_close(row[i], orig[i])


def test_zero_group_stays_zero() -> None:
    weight = torch.zeros(4, 64)
    weight[0, :32] = torch.randn(32)
    for symmetric in (True, False):
        deq, _ = quantize_dequantize(weight, RTNConfig(bits=4, group_size=32, symmetric=symmetric))
        assert torch.isfinite(deq).all()
        assert torch.equal(deq[1:], weight[1:]) and torch.equal(deq[0, 32:], weight[0, 32:])


def _mean_error(recipe: str) -> float:
    report = apply_recipe(tiny_llama(), recipe)
    return sum(layer.relative_error * layer.numel for layer in report.layers) / report.compressed_numel


def test_error_grows_as_bits_shrink() -> None:
    int8, int4, int2 = _mean_error("int8-g32"), _mean_error("int4-g32"), _mean_error("int2-g32")
    assert 0 < int8 < int4 / 5
    assert int4 < int2 / 2
    assert int2 < 1.0


def test_asymmetric_beats_symmetric_on_shifted_weights() -> None:
    torch.manual_seed(2)
    errors = {}
    for recipe in ("int4-g64", "int4-g64-asym"):
        model = nn.Sequential(nn.Linear(128, 32, bias=False))
        with torch.no_grad():
            model[0].weight.copy_(torch.randn(32, 128) * 0.05 + 0.4)
        errors[recipe] = apply_recipe(model, recipe).layers[0].relative_error
    assert errors["int4-g64-asym"] < errors["int4-g64"] / 2


@pytest.mark.parametrize(
    ("recipe", "bits", "packed_weight"),
    [
        # codes numel*b/8 + fp16 scales (2 bytes per group) [+ b-bit zero points per group]
        ("int4-g128", 4 + 16 / 128, 64 * 256 // 2 + 64 * 2 * 2),
        ("int4-g128-asym", 4 + 20 / 128, 64 * 256 // 2 + 64 * 2 * 2 + 64 * 2 * 4 // 8),
        ("int3", 3 + 16 / 256, 64 * 256 * 3 // 8 + 64 * 2),
        ("int8", 8 + 16 / 256, 64 * 256 + 64 * 2),
        ("int2-g64-asym", 2 + 18 / 64, 64 * 256 // 4 + 64 * 4 * 2 + 64 * 4 * 2 // 8),
    ],
)
def test_bit_accounting_exact(recipe: str, bits: float, packed_weight: int) -> None:
    model = nn.Sequential(nn.Linear(256, 64), nn.LayerNorm(64))
    report = apply_recipe(model, recipe)
    (layer,) = report.layers
    assert layer.numel == 64 * 256
    assert layer.bits_per_weight == pytest.approx(bits)
    assert report.effective_bits_per_weight == pytest.approx(bits)
    other = (64 + 64 + 64) * 4  # bias + LayerNorm weight and bias stay fp32
    assert report.packed_size_bytes == packed_weight + other
    assert report.dense_size_bytes == (64 * 256 + 64 * 3) * 4


def test_head_and_embeddings_untouched_unless_asked() -> None:
    model = tiny_llama()
    before = snapshot(model)
    report = apply_recipe(model, "int4-g32")
    names = {layer.name for layer in report.layers}
    assert "lm_head" not in names and len(names) == 2 * 7
    assert torch.equal(model.lm_head.weight, before["lm_head.weight"])
    assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])
    assert torch.equal(model.model.norm.weight, before["model.norm.weight"])
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, before["model.layers.0.mlp.up_proj.weight"])

    model = tiny_llama()
    report = apply_recipe(model, "int4-g32-head")
    assert "lm_head" in {layer.name for layer in report.layers}
    assert not torch.equal(model.lm_head.weight, before["lm_head.weight"])


def test_tied_head_is_excluded_and_counted_once() -> None:
    model = tiny_llama(tie=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    before = snapshot(model)
    report = apply_recipe(model, "int8")
    assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])
    unique = {p.data_ptr(): p.numel() for p in model.parameters()}
    assert report.dense_size_bytes == sum(unique.values()) * 4


def test_gpt2_conv1d_quantized_along_input_dimension() -> None:
    model = tiny_gpt2()
    before = snapshot(model)
    targets = [name for name, _ in compressible_linears(model)]
    assert targets[:4] == [
        "transformer.h.0.attn.c_attn",
        "transformer.h.0.attn.c_proj",
        "transformer.h.0.mlp.c_fc",
        "transformer.h.0.mlp.c_proj",
    ]
    assert "lm_head" not in targets
    report = apply_recipe(model, "int4")
    assert len(report.layers) == 8
    assert torch.equal(model.transformer.wte.weight, before["transformer.wte.weight"])
    assert torch.equal(model.transformer.wpe.weight, before["transformer.wpe.weight"])
    assert torch.equal(model.lm_head.weight, before["transformer.wte.weight"])
    stored = model.transformer.h[0].mlp.c_fc.weight  # Conv1D: [in=64, out=256]
    expected, _ = quantize_dequantize(before["transformer.h.0.mlp.c_fc.weight"].t(), RTNConfig(bits=4))
    torch.testing.assert_close(stored, expected.t())
    for column in stored.t():  # one scale per output channel = per stored column
        assert column.unique().numel() <= 16
    assert report.layers[2].bits_per_weight == pytest.approx(4 + 16 / 64)


def test_bf16_weights_stay_bf16() -> None:
    model = tiny_llama().to(torch.bfloat16)
    report = apply_recipe(model, "int4-g32")
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert all(0 < layer.relative_error < 0.5 for layer in report.layers)
    assert report.dense_size_bytes == sum(p.numel() for p in model.parameters()) * 2


@pytest.mark.parametrize("symmetric", [True, False])
def test_ragged_last_group_equals_quantizing_that_group_alone(symmetric: bool) -> None:
    """576 inputs with g128 (SmolLM2's width): 4 full groups and one of 64, each with its own scale."""
    torch.manual_seed(3)
    weight = torch.randn(8, 576)
    config = RTNConfig(bits=4, group_size=128, symmetric=symmetric)
    deq, scale = quantize_dequantize(weight, config)
    assert scale.shape == (8, 5)
    tail, _ = quantize_dequantize(weight[:, 512:], RTNConfig(bits=4, group_size=64, symmetric=symmetric))
    head, _ = quantize_dequantize(weight[:, :512], config)
    assert torch.equal(deq[:, 512:], tail) and torch.equal(deq[:, :512], head)
    meta = 16 + (0 if symmetric else 4)
    assert config.bits_per_weight(576) == pytest.approx(4 + meta * 5 / 576)


def test_non_divisible_group_size_applies_to_a_model() -> None:
    model = nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 100), nn.Linear(100, 4))
    report = apply_recipe(model, "int4-g64")
    assert [layer.bits_per_weight for layer in report.layers][2] == pytest.approx(4 + 16 * 2 / 100)
    assert all(0 < layer.relative_error < 0.3 for layer in report.layers)


@pytest.mark.parametrize("recipe", ["int8", "int4-g32", "int3-g32", "int2-g32-asym", "int4-g64-head"])
@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_model_still_runs(recipe: str, build) -> None:
    model = build()
    apply_recipe(model, parse_recipe(recipe))
    with torch.no_grad():
        logits = model(torch.arange(16).reshape(2, 8)).logits
    assert logits.shape == (2, 8, 128) and torch.isfinite(logits).all()


def test_standard_grid_matches_the_documented_torchao_and_gptqmodel_formula() -> None:
    """int4 symmetric: q = clamp(round(w / s), -8, 7) with s = absmax / 7.5 (torchao MappingType.SYMMETRIC,
    gptqmodel sym=True: s = 2 absmax / 15, zero point 8); checked against torchao itself where it is installed."""
    torch.manual_seed(3)
    weight = torch.randn(32, 256)
    deq, scale = quantize_dequantize(weight, RTNConfig(bits=4, group_size=32))
    grouped = weight.reshape(32, 8, 32)
    s = grouped.abs().amax(-1, keepdim=True) / 7.5
    by_formula = (torch.clamp(torch.round(grouped * (1 / s)), -8, 7) * s).reshape(32, 256)
    torch.testing.assert_close(deq, by_formula, rtol=0, atol=0)
    codes = (deq.reshape(32, 8, 32) / s).round()
    assert codes.min() == -8 and codes.max() == 7  # all 16 levels are used
    assert RTNConfig(bits=4, group_size=32).grid == "int4 sym -8..7 (16 levels), scale absmax/7.5"
    try:
        from torchao.quantization import IntxWeightOnlyConfig, quantize_
        from torchao.quantization.granularity import PerGroup
    except ImportError:
        return
    layer = nn.Linear(256, 32, bias=False)
    layer.weight.data.copy_(weight)
    quantize_(layer, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))
    reference = layer(torch.eye(256)).t()  # the dequantized weight, read through the layer
    torch.testing.assert_close(deq, reference, rtol=1e-6, atol=1e-6)
