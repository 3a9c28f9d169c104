"""q4_0 / q8_0: compsafe's variant is exactly what gguf-py's reference quantizer stores."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from torch import nn

from compsafe.compress import apply_recipe, parse_recipe
from compsafe.compress.ggml import quantize_blocks
from compsafe.errors import RecipeError
from conftest import tiny_llama


def reference(weight: torch.Tensor, name: str) -> torch.Tensor:
    qtype = gguf.GGMLQuantizationType[name]
    blocks = gguf.quants.quantize(weight.numpy(), qtype)
    return torch.from_numpy(gguf.quants.dequantize(blocks, qtype).reshape(weight.shape).copy())


@pytest.mark.parametrize(("bits", "name"), [(4, "Q4_0"), (8, "Q8_0")])
def test_blocks_match_gguf_reference_bit_for_bit(bits: int, name: str) -> None:
    gen = torch.Generator().manual_seed(bits)
    weight = torch.randn(48, 256, generator=gen) * torch.exp(torch.randn(48, 1, generator=gen))
    weight[0, :32] = 0  # an all-zero block
    weight[1, :32] = torch.linspace(-1, 1, 32)  # ties in magnitude: the first one decides the sign of d
    weight[2, 5] = 7.0  # a block whose largest value is positive (q4_0: negative d)
    weight[3, :32] = torch.arange(32) / 2 - 8  # values exactly on half steps
    codes, scale = quantize_blocks(weight, bits)
    stored = codes * scale.repeat_interleave(32, dim=1)
    assert torch.equal(stored, reference(weight, name))


@pytest.mark.parametrize(("recipe", "name"), [("q4_0", "Q4_0"), ("q8_0", "Q8_0")])
def test_recipe_variant_is_the_gguf_dequantization(recipe: str, name: str) -> None:
    model = tiny_llama()
    before = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    report = apply_recipe(model, recipe)
    assert report.effective_bits_per_weight == (4.5 if recipe == "q4_0" else 8.5)
    for layer in report.layers:
        after = model.get_submodule(layer.name).weight.detach()
        assert torch.equal(after, reference(before[layer.name], name)), layer.name
        assert report.grids[layer.name].group_size == 32
    assert "lm_head" not in report.grids


def test_rows_must_be_whole_blocks() -> None:
    assert parse_recipe("Q4_0").recipe == "q4_0"
    with pytest.raises(RecipeError, match="multiple of llama.cpp's block of 32"):
        apply_recipe(nn.Sequential(nn.Linear(48, 8)), "q8_0")
    assert np.isclose(parse_recipe("q8_0-head").bits_per_weight, 8.5)
