"""GPTQ: beats RTN on the layer-wise output error it minimises, reduces to RTN when H = I, is exact under lazy
batching, keeps RTN's storage format and accounting, and runs end to end on tiny Llama and GPT-2 models."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import METHODS, CalibrationSet, CalibrationSpec, apply_recipe, parse_recipe
from compsafe.compress.gptq import GPTQConfig, gptq_quantize
from compsafe.compress.hessian import output_error
from compsafe.compress.rtn import RTNConfig, quantize_dequantize
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError
from conftest import correlated_layer, layer_error, tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


@pytest.mark.parametrize("bits, group", [(4, 128), (3, 128), (2, 64), (4, 32)])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_output_error_below_rtn(bits: int, group: int, symmetric: bool, act_order: bool) -> None:
    w, x, h = correlated_layer()
    config = GPTQConfig(bits=bits, group_size=group, symmetric=symmetric, act_order=act_order)
    gptq = gptq_quantize(w, h, config).weight
    rtn, _ = quantize_dequantize(w, config.storage)
    assert layer_error(w, gptq, x) < 0.8 * layer_error(w, rtn, x)


def test_int8_gptq_is_nearly_lossless() -> None:
    w, x, h = correlated_layer(seed=1)
    gptq = gptq_quantize(w, h, GPTQConfig(bits=8)).weight
    assert layer_error(w, gptq, x) < 5e-3
    assert ((w - gptq).norm() / w.norm()).item() < 3e-2  # weights move more than RTN, the output less


def test_hessian_output_error_matches_direct_computation() -> None:
    w, x, h = correlated_layer(seed=2)
    gptq = gptq_quantize(w, h, GPTQConfig(bits=3, group_size=64)).weight
    assert output_error(w, gptq, h) == pytest.approx(layer_error(w, gptq, x), rel=1e-4)


@pytest.mark.parametrize(
    "config",
    [
        GPTQConfig(bits=4, group_size=48),  # ragged last group: 256 = 5 x 48 + 16
        GPTQConfig(bits=3, group_size=100, symmetric=False),
        GPTQConfig(bits=2),
        GPTQConfig(bits=4, group_size=32, act_order=True),
        GPTQConfig(bits=8, symmetric=False, act_order=True),
    ],
    ids=lambda c: c.recipe,
)
def test_identity_hessian_gives_exactly_rtn(config: GPTQConfig) -> None:
    """With H = I no error propagates, so GPTQ's grid (scale, zero point, rounding) must be RTN's, bit for bit."""
    w, _, _ = correlated_layer(seed=3)
    rtn, _ = quantize_dequantize(w, config.storage)
    assert torch.equal(gptq_quantize(w, torch.eye(w.shape[1]), config).weight, rtn)


@pytest.mark.parametrize(
    "config",
    [
        GPTQConfig(bits=4, group_size=32),
        GPTQConfig(bits=3, group_size=96),
        GPTQConfig(bits=4, group_size=64, act_order=True),
    ],
    ids=lambda c: c.recipe,
)
def test_lazy_batching_is_exact(config: GPTQConfig) -> None:
    """Block size is only speed: groups that start inside a block (g32) or span blocks (g96) see the pending
    updates, so blocks of 128, 40 and 1 column give the same result (float64 to keep rounding ties away; the narrow
    grid, because the standard grid puts -absmax exactly on the tie -7.5, which one ulp of update order decides)."""
    config = replace(config, narrow=True)
    w, _, h = correlated_layer(seed=4)
    w, h = w.double(), h.double()
    reference = gptq_quantize(w, h, config, block_size=1).weight
    for block in (128, 40):
        torch.testing.assert_close(gptq_quantize(w, h, config, block_size=block).weight, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("symmetric", [True, False])
def test_values_stay_on_contiguous_group_grids(symmetric: bool) -> None:
    """Every contiguous group of 32 inputs holds at most 2^b levels: the format RTN stores (also with act-order,
    whose static groups are the original contiguous ones)."""
    w, _, h = correlated_layer(seed=5)
    for act_order in (False, True):
        q = gptq_quantize(w, h, GPTQConfig(bits=3, group_size=32, symmetric=symmetric, act_order=act_order)).weight
        for row in q.reshape(-1, 32):
            assert row.unique().numel() <= 8  # int3: -4..3 symmetric, 0..7 asymmetric
        narrow = gptq_quantize(w, h, GPTQConfig(bits=3, group_size=32, narrow=True, act_order=act_order)).weight
        assert all(row.unique().numel() <= 7 for row in narrow.reshape(-1, 32))  # -3..3


def test_dead_columns_are_zeroed_and_finite() -> None:
    w, x, _ = correlated_layer(seed=6)
    x[:, [3, 10, 200]] = 0
    h = 2 / x.shape[0] * x.T @ x
    q = gptq_quantize(w, h, GPTQConfig(bits=4, group_size=64, act_order=True)).weight
    assert torch.isfinite(q).all()
    assert (q[:, [3, 10, 200]] == 0).all()


def test_rank_deficient_hessian_raises_damping_instead_of_failing() -> None:
    w, x, _ = correlated_layer(seed=7, n=16)  # 16 tokens for 256 inputs: H has rank 16
    h = 2 / 16 * x.T @ x
    result = gptq_quantize(w, h, GPTQConfig(bits=4, group_size=64, percdamp=0.0))
    assert torch.isfinite(result.weight).all() and result.damp > 0


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("int4-gptq-g128", GPTQConfig(bits=4, group_size=128)),
        ("int3-gptq-g128", GPTQConfig(bits=3, group_size=128)),
        ("int2-gptq-g64", GPTQConfig(bits=2, group_size=64)),
        ("int8-gptq", GPTQConfig(bits=8)),
        ("int4-gptq-g128-asym", GPTQConfig(bits=4, group_size=128, symmetric=False)),
        ("int4-gptq-g128-actorder", GPTQConfig(bits=4, group_size=128, act_order=True)),
        ("INT4-GPTQ-G32-ASYM-ACTORDER-DAMP0.1-HEAD", GPTQConfig(4, 32, False, True, 0.1, True)),
    ],
)
def test_recipes_parse_and_round_trip(recipe: str, expected: GPTQConfig) -> None:
    config = parse_recipe(recipe)
    assert config == expected and config.method == "gptq"
    assert parse_recipe(config.recipe) == config
    assert METHODS.get("rtn").parse(recipe) is None  # rtn's fullmatch grammar does not claim gptq strings


def test_recipes_canonical_and_invalid() -> None:
    assert GPTQConfig(bits=4, group_size=128, act_order=True).recipe == "int4-gptq-g128-actorder"
    assert GPTQConfig(bits=4, group_size=128, symmetric=False).recipe == "int4-gptq-g128-asym"
    for bad in ("int5-gptq-g128", "int4-gptq-g1", "int4-gptq-damp2"):
        with pytest.raises(RecipeError):
            parse_recipe(bad)


def calibration(n: int = 8, seq_len: int = 32, seed: int = 0) -> CalibrationSet:
    ids = torch.randint(0, 128, (n, seq_len), generator=torch.Generator().manual_seed(seed))
    return CalibrationSet(ids, CalibrationSpec(n_samples=n, seq_len=seq_len, seed=seed), f"random-{seed}")


@torch.no_grad()
def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits


def test_end_to_end_llama_beats_rtn_and_accounts_like_rtn() -> None:
    calib = calibration()
    base = tiny_llama()
    reference = logits(base, calib.input_ids)
    gptq_model, rtn_model = tiny_llama(), tiny_llama()
    report = apply_recipe(gptq_model, "int4-gptq-g32", calib)
    rtn_report = apply_recipe(rtn_model, "int4-rtn-g32")
    out = logits(gptq_model, calib.input_ids)
    assert torch.isfinite(out).all()
    gptq_err = (out - reference).norm() / reference.norm()
    rtn_err = (logits(rtn_model, calib.input_ids) - reference).norm() / reference.norm()
    assert gptq_err < rtn_err
    # same storage format as RTN: identical per-layer bits, effective bits and packed size
    assert report.method == "gptq" and report.recipe == "int4-gptq-g32"
    assert [(lr.name, lr.bits_per_weight) for lr in report.layers] == [
        (lr.name, lr.bits_per_weight) for lr in rtn_report.layers
    ]
    assert report.effective_bits_per_weight == pytest.approx(
        RTNConfig(bits=4, group_size=32).bits_per_weight(64)
    )  # 4.5
    assert report.packed_size_bytes == rtn_report.packed_size_bytes
    assert report.extra["calibration"]["digest"] == "random-0"
    assert all(lr.output_error is not None and 0 < lr.output_error < 0.2 for lr in report.layers)
    untouched = dict(base.named_parameters())
    for name, param in gptq_model.named_parameters():  # only the target linears changed (not head/embeddings/norms)
        changed = not torch.equal(param, untouched[name])
        assert changed == any(name == f"{target}.weight" for target, _ in compressible_linears(gptq_model))


def test_end_to_end_gpt2_conv1d_groups_run_along_inputs() -> None:
    model = tiny_gpt2()
    report = apply_recipe(model, "int3-gptq-g32-actorder", calibration())
    assert torch.isfinite(logits(model, calibration().input_ids)).all()
    assert len(report.layers) == 8
    for _, module in compressible_linears(model):
        view = weight_view(module)  # [out, in]: each contiguous group of 32 inputs holds <= 8 levels (int3 -4..3)
        assert all(row.unique().numel() <= 8 for row in view.reshape(-1, 32))
