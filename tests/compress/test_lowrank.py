"""Low-rank (truncated SVD): exact rank, smallest rank meeting the energy, Eckart-Young error, accounting."""

from __future__ import annotations

import math

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import apply_recipe, parse_recipe
from compsafe.compress.lowrank import LowRankConfig
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError
from conftest import tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def originals(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: weight_view(m).clone() for name, m in compressible_linears(model)}


@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5])
def test_rank_is_exact(ratio: float) -> None:
    model = tiny_llama()
    before = originals(model)
    report = apply_recipe(model, f"lowrank-r{ratio}")
    for layer in report.layers:
        shape = before[layer.name].shape
        expected = math.ceil(ratio * min(shape))
        stored = weight_view(model.get_submodule(layer.name)).double()
        assert int(torch.linalg.matrix_rank(stored, rtol=1e-5)) == expected
        assert report.extra["ranks"][layer.name] == expected


@pytest.mark.parametrize("energy", [0.5, 0.9, 0.99])
def test_energy_threshold_met_with_the_smallest_rank(energy: float) -> None:
    model = tiny_llama()
    before = originals(model)
    report = apply_recipe(model, f"lowrank-e{energy}")
    for layer in report.layers:
        s = torch.linalg.svdvals(before[layer.name].double())
        fraction = torch.cumsum(s**2, 0) / (s**2).sum()
        rank = report.extra["ranks"][layer.name]
        assert fraction[rank - 1] >= energy - 1e-6  # met (float32 SVD vs float64 reference)
        assert rank == 1 or fraction[rank - 2] < energy + 1e-6  # and one fewer would not be


def test_error_is_the_discarded_energy_eckart_young() -> None:
    model = tiny_llama()
    before = originals(model)
    report = apply_recipe(model, "lowrank-e0.90")
    for layer in report.layers:
        orig = before[layer.name].double()
        s = torch.linalg.svdvals(orig)
        rank = report.extra["ranks"][layer.name]
        stored = weight_view(model.get_submodule(layer.name)).double()
        error = torch.linalg.matrix_norm(orig - stored).item()
        assert error == pytest.approx(s[rank:].pow(2).sum().sqrt().item(), rel=1e-4)
        assert layer.relative_error == pytest.approx(error / torch.linalg.matrix_norm(orig).item(), rel=1e-4)


def test_accounting_factorised_or_dense_whichever_is_smaller() -> None:
    model = tiny_llama()
    report = apply_recipe(model, "lowrank-r0.25")
    saved = 0
    for layer in report.layers:
        out_features, in_features = weight_view(model.get_submodule(layer.name)).shape
        rank = math.ceil(0.25 * min(out_features, in_features))
        factor_bits = rank * (out_features + in_features) * 32
        assert layer.bits_per_weight == pytest.approx(factor_bits / (out_features * in_features))
        saved += out_features * in_features * 4 - factor_bits // 8
    # q_proj 64x64 at rank 16: 16 * 128 * 32 / 4096 = 16 bits; gate_proj 128x64: 16 * 192 * 32 / 8192 = 12 bits
    assert report.layers[0].bits_per_weight == 16.0
    assert report.packed_size_bytes == report.dense_size_bytes - saved
    assert report.extra["kept_dense"] == []

    model = tiny_llama()
    report = apply_recipe(model, "lowrank-r0.75")  # 64x64 at rank 48: 48 * 128 > 4096, so it stays dense
    square = [layer for layer in report.layers if layer.name.endswith(("q_proj", "o_proj"))]
    assert square and all(layer.bits_per_weight == 32.0 for layer in square)
    assert {layer.name for layer in square} <= set(report.extra["kept_dense"])
    gate = next(layer for layer in report.layers if layer.name.endswith("gate_proj"))  # 128x64 rank 48: 36 bits
    assert gate.name in report.extra["kept_dense"] and gate.bits_per_weight == 32.0
    kv = next(layer for layer in report.layers if layer.name.endswith("k_proj"))  # 32x64, rank 24: 36 bits
    assert kv.bits_per_weight == 32.0


def test_gpt2_conv1d_and_finite_logits() -> None:
    model = tiny_gpt2()
    report = apply_recipe(model, "lowrank-r0.25")
    c_attn = report.layers[0]
    assert c_attn.name.endswith("c_attn") and report.extra["ranks"][c_attn.name] == 16  # [192, 64] as [out, in]
    assert int(torch.linalg.matrix_rank(model.transformer.h[0].attn.c_attn.weight.double(), rtol=1e-5)) == 16
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.arange(10)[None]).logits).all()


def test_recipes_round_trip_and_errors() -> None:
    assert parse_recipe("lowrank-r0.25") == LowRankConfig(rank_ratio=0.25)
    assert parse_recipe("lowrank-e0.90") == LowRankConfig(energy=0.9)
    assert LowRankConfig(energy=0.9).recipe == "lowrank-e0.90"
    assert LowRankConfig(energy=0.995).recipe == "lowrank-e0.995"
    assert parse_recipe("lowrank-r1").recipe == "lowrank-r1.00"
    assert parse_recipe("lowrank-r.5-head") == LowRankConfig(rank_ratio=0.5, include_lm_head=True)
    assert LowRankConfig(rank_ratio=0.3).rank(torch.ones(100)) == 30  # 0.3 * 100 is 30.000000000000004
    for bad in ("lowrank-r0", "lowrank-r0.0", "lowrank-e1.5", "lowrank-r0.25-e0.9", "lowrank"):
        with pytest.raises(RecipeError, match="unknown recipe"):
            parse_recipe(bad)
    with pytest.raises(RecipeError):
        LowRankConfig()
    with pytest.raises(RecipeError):
        LowRankConfig(rank_ratio=0.5, energy=0.9)
