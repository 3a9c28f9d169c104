"""Wanda: equals per-row magnitude with equal input norms, exact per-row counts, exact N:M, lower output error."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import CalibrationSet, CalibrationSpec, apply_recipe, parse_recipe
from compsafe.compress.magnitude import nm_keep_mask
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.compress.wanda import WandaConfig, wanda_prune_mask
from compsafe.errors import RecipeError
from compsafe.models.sparse_bitmask import encoded_bytes
from conftest import tiny_llama

transformers.logging.set_verbosity_error()


def calibration(n: int = 4, seq_len: int = 16, seed: int = 0) -> CalibrationSet:
    ids = torch.randint(0, 128, (n, seq_len), generator=torch.Generator().manual_seed(seed))
    return CalibrationSet(ids, CalibrationSpec(n_samples=n, seq_len=seq_len, seed=seed), f"random-{seed}")


def per_row_magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Reference: prune the round(s * in) smallest |w| of each row, ties to the earlier column."""
    k = round(sparsity * weight.shape[1])
    order = torch.argsort(weight.abs(), dim=1, stable=True)[:, :k]
    return torch.zeros_like(weight, dtype=torch.bool).scatter_(1, order, True)


def constant_sq_norm(in_features: int, value: float = 0.5, tokens: int = 16) -> torch.Tensor:
    """``sum x_j^2`` for ``tokens`` rows of a constant input: 16 * 0.25 = 4, so ||X_j|| = 2 (a power of two)."""
    x = torch.full((tokens, in_features), value)
    return (x * x).sum(0)


@pytest.mark.parametrize("percent", [30, 50, 73])
def test_equals_per_row_magnitude_when_activations_are_constant(percent: int) -> None:
    weight = torch.randn(32, 96, generator=torch.Generator().manual_seed(1))
    mask = wanda_prune_mask(weight, constant_sq_norm(96), WandaConfig(sparsity=percent / 100))
    assert torch.equal(mask, per_row_magnitude_mask(weight, percent / 100))


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
def test_nm_wanda_equals_nm_magnitude_when_activations_are_constant(n: int, m: int) -> None:
    weight = torch.randn(32, 96, generator=torch.Generator().manual_seed(2))
    mask = wanda_prune_mask(weight, constant_sq_norm(96), WandaConfig(n=n, m=m))
    assert torch.equal(mask, ~nm_keep_mask(weight, n, m))


def test_model_level_2_4_wanda_equals_2_4_when_input_norms_are_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the whole pass: with every ``||X_j||`` forced equal, ``2:4-wanda`` prunes exactly like ``2:4``."""
    import compsafe.compress.wanda as wanda

    monkeypatch.setattr(wanda, "wanda_scores", lambda weight, sq_norm: weight.abs().float() * 2.0)
    a, b = tiny_llama(), tiny_llama()
    apply_recipe(a, "2:4-wanda", calibration())
    apply_recipe(b, "2:4")
    for (name, ma), (_, mb) in zip(compressible_linears(a), compressible_linears(b), strict=True):
        assert torch.equal(weight_view(ma), weight_view(mb)), name


@pytest.mark.parametrize("percent", [30, 50])
def test_exact_per_row_counts_and_untouched_survivors(percent: int) -> None:
    model = tiny_llama()
    before = {name: weight_view(m).clone() for name, m in compressible_linears(model)}
    report = apply_recipe(model, f"wanda-{percent}", calibration())
    assert report.method == "wanda" and report.recipe == f"wanda-{percent}"
    assert [layer.name for layer in report.layers] == list(before)
    for layer in report.layers:
        orig = before[layer.name]
        new = weight_view(model.get_submodule(layer.name))
        zeroed = new == 0
        assert (zeroed.sum(dim=1) == round(percent / 100 * orig.shape[1])).all()
        assert torch.equal(new[~zeroed], orig[~zeroed])
        assert layer.sparsity == pytest.approx(percent / 100, abs=1 / orig.shape[1])
        assert layer.bits_per_weight == 8 * encoded_bytes(new, "sparse-bitmask") / new.numel()  # the bitmask layout
    assert report.packed_size_bytes < report.dense_size_bytes
    assert report.extra["calibration"]["digest"] == "random-0"


def test_first_layer_mask_matches_scores_from_the_calibration_inputs() -> None:
    """The first block's inputs do not depend on compression, so its q_proj mask is reproducible by hand."""
    model = tiny_llama()
    calib = calibration()
    q_proj = model.model.layers[0].self_attn.q_proj
    seen: list[torch.Tensor] = []
    handle = q_proj.register_forward_hook(lambda mod, args, out: seen.append(args[0].reshape(-1, 64)))
    with torch.no_grad():
        for row in calib.input_ids:
            model(input_ids=row[None], use_cache=False)
    handle.remove()
    x = torch.cat(seen)
    weight = q_proj.weight.detach().clone()
    scores = weight.abs() * torch.linalg.vector_norm(x, dim=0)[None, :]
    expected = per_row_magnitude_mask(scores, 0.5)  # per-row lowest scores
    apply_recipe(model, "wanda-50", calib)
    assert torch.equal(q_proj.weight == 0, expected)


@pytest.mark.parametrize(("recipe", "n", "m"), [("2:4-wanda", 2, 4), ("4:8-wanda", 4, 8)])
def test_exact_nm_pattern_and_accounting(recipe: str, n: int, m: int) -> None:
    model = tiny_llama()
    before = {name: weight_view(mod).clone() for name, mod in compressible_linears(model)}
    report = apply_recipe(model, recipe, calibration())
    packed = report.dense_size_bytes
    for layer in report.layers:
        new = weight_view(model.get_submodule(layer.name))
        kept = (new != 0).reshape(new.shape[0], -1, m).sum(-1)
        assert (kept == n).all()
        assert torch.equal(new[new != 0], before[layer.name][new != 0])
        layout = "sparse-24-bitmask" if (n, m) == (2, 4) else "sparse-bitmask"  # what the export writes
        assert layer.bits_per_weight == 8 * encoded_bytes(new, layout) / layer.numel
        if (n, m) == (2, 4):  # its mask bits are the N:M metadata: 2 index bits per kept value, + a 16-byte shape
            assert layer.bits_per_weight == pytest.approx(n / m * (32 + 2) + 128 / layer.numel)
        packed -= layer.numel * 4 - encoded_bytes(new, layout)
    assert report.packed_size_bytes == packed


def test_wanda_output_error_below_magnitude_with_uneven_input_norms() -> None:
    """The point of Wanda: with a few loud input channels, pruning by |w| x ||x|| keeps the output closer."""
    gen = torch.Generator().manual_seed(3)
    in_features, out_features, tokens = 128, 64, 512
    channel_scale = torch.exp(torch.randn(in_features, generator=gen) * 1.5)  # log-normal channel norms
    channel_scale[torch.randperm(in_features, generator=gen)[:6]] *= 20.0  # plus a few outlier channels
    x = torch.randn(tokens, in_features, generator=gen) * channel_scale
    weight = torch.randn(out_features, in_features, generator=gen)
    reference = x @ weight.t()

    def output_error(mask: torch.Tensor) -> float:
        return torch.linalg.vector_norm(reference - x @ weight.masked_fill(mask, 0).t()).item()

    for percent, structured in ((50, None), (None, (2, 4))):
        if structured:
            config = WandaConfig(n=structured[0], m=structured[1])
            magnitude = ~nm_keep_mask(weight, *structured)
        else:
            config = WandaConfig(sparsity=percent / 100)
            magnitude = per_row_magnitude_mask(weight, percent / 100)
        layer = nn.Linear(in_features, out_features, bias=False)
        with torch.no_grad():
            layer.weight.copy_(weight)
        apply_recipe(nn.Sequential(layer), "mag-50" if percent else "2:4")
        per_layer = layer.weight.detach() == 0
        wanda = output_error(wanda_prune_mask(weight, (x * x).sum(0), config))
        assert wanda < 0.8 * output_error(magnitude), config.recipe
        assert wanda < 0.8 * output_error(per_layer), config.recipe


def test_finite_logits_and_deterministic() -> None:
    outputs = []
    for _ in range(2):
        model = tiny_llama()
        apply_recipe(model, "wanda-50", calibration())
        with torch.no_grad():
            logits = model(input_ids=torch.arange(12)[None]).logits
        assert torch.isfinite(logits).all()
        outputs.append(logits)
    assert torch.equal(outputs[0], outputs[1])


def test_recipes_and_errors() -> None:
    assert parse_recipe("wanda-50") == WandaConfig(sparsity=0.5)
    assert parse_recipe("2:4-wanda") == WandaConfig(n=2, m=4)
    assert parse_recipe(" 4:8-Wanda-head ") == WandaConfig(n=4, m=8, include_lm_head=True)
    assert WandaConfig(n=2, m=4).sparsity == 0.5
    for bad in ("wanda-0", "wanda-100", "4:4-wanda", "wanda-12.5"):
        with pytest.raises(RecipeError, match="unknown recipe"):
            parse_recipe(bad)
    with pytest.raises(RecipeError, match="needs calibration data"):
        apply_recipe(tiny_llama(), "wanda-50")
    with pytest.raises(RecipeError, match="not divisible by m=4"):
        apply_recipe(nn.Sequential(nn.Linear(6, 4)), "2:4-wanda", calibration())
