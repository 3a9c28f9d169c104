"""SparseGPT: beats magnitude pruning on the layer-wise output error, hits the exact sparsity and N:M pattern,
reduces to magnitude pruning when H = I, accounts like magnitude/N:M, and runs end to end on tiny models."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import METHODS, CalibrationSet, CalibrationSpec, apply_recipe, parse_recipe
from compsafe.compress.magnitude import MagnitudeConfig, NMConfig, nm_keep_mask
from compsafe.compress.sparsegpt import SparseGPTConfig, sparsegpt_prune
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.errors import RecipeError
from compsafe.models.sparse_bitmask import encoded_bytes
from conftest import correlated_layer, layer_error, tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def magnitude_pruned(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """What ``mag-<p>`` does to one layer: zero exactly round(p * numel) smallest |w|."""
    model = nn.Sequential(nn.Linear(w.shape[1], w.shape[0], bias=False))
    model[0].weight.data.copy_(w)
    apply_recipe(model, MagnitudeConfig(sparsity=sparsity))
    return model[0].weight.data


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "config", [SparseGPTConfig(sparsity=0.5), SparseGPTConfig(n=2, m=4), SparseGPTConfig(n=4, m=8)], ids=str
)
def test_output_error_below_magnitude(config: SparseGPTConfig, seed: int) -> None:
    w, x, h = correlated_layer(seed)
    pruned = sparsegpt_prune(w, h, config).weight
    structured = config.structured
    baseline = w * nm_keep_mask(w, config.n, config.m) if structured else magnitude_pruned(w, config.sparsity)
    assert layer_error(w, pruned, x) < 0.7 * layer_error(w, baseline, x)


@pytest.mark.parametrize("sparsity", [0.5, 0.3, 0.77])
def test_exact_unstructured_sparsity(sparsity: float) -> None:
    w, _, h = correlated_layer(seed=2, out=37, inp=200)  # odd sizes: per-block counts must add up exactly
    result = sparsegpt_prune(w, h, SparseGPTConfig(sparsity=sparsity))
    expected = round(sparsity * w.numel())
    assert int(result.mask.sum()) == expected == int((result.weight == 0).sum())


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
def test_exact_nm_pattern(n: int, m: int) -> None:
    w, _, h = correlated_layer(seed=3)
    q = sparsegpt_prune(w, h, SparseGPTConfig(n=n, m=m)).weight
    zeros_per_group = (q.reshape(q.shape[0], -1, m) == 0).sum(-1)
    assert (zeros_per_group == m - n).all()


def test_identity_hessian_reduces_to_magnitude() -> None:
    """With H = I there is no compensation and the saliency is w^2 times a constant: N:M equals magnitude N:M,
    and unstructured (with one block covering the layer) equals mag-<p>, ties broken the same way."""
    w, _, _ = correlated_layer(seed=4)
    eye = torch.eye(w.shape[1])
    assert torch.equal(sparsegpt_prune(w, eye, SparseGPTConfig(n=2, m=4)).weight, w * nm_keep_mask(w, 2, 4))
    unstructured = sparsegpt_prune(w, eye, SparseGPTConfig(sparsity=0.5), block_size=w.shape[1]).weight
    assert torch.equal(unstructured, magnitude_pruned(w, 0.5))


def test_dead_columns_and_nm_divisibility() -> None:
    w, x, _ = correlated_layer(seed=5)
    x[:, [7, 100]] = 0
    h = 2 / x.shape[0] * x.T @ x
    q = sparsegpt_prune(w, h, SparseGPTConfig(sparsity=0.5)).weight
    assert torch.isfinite(q).all() and (q[:, [7, 100]] == 0).all()
    with pytest.raises(ValueError, match="not divisible"):
        sparsegpt_prune(w[:, :254], h[:254, :254], SparseGPTConfig(n=2, m=4))


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("sparsegpt-50", SparseGPTConfig(sparsity=0.5)),
        ("sparsegpt-30-head", SparseGPTConfig(sparsity=0.3, include_lm_head=True)),
        ("2:4-sparsegpt", SparseGPTConfig(n=2, m=4)),
        ("4:8-sparsegpt", SparseGPTConfig(n=4, m=8)),
        ("1:4-sparsegpt-damp0.05", SparseGPTConfig(n=1, m=4, percdamp=0.05)),
    ],
)
def test_recipes_parse_and_round_trip(recipe: str, expected: SparseGPTConfig) -> None:
    config = parse_recipe(recipe)
    assert config == expected and config.method == "sparsegpt"
    assert parse_recipe(config.recipe) == config
    assert METHODS.get("nm").parse(recipe) is None  # nm's <n>:<m>[-mag][-head] fullmatch does not claim it
    assert METHODS.get("magnitude").parse(recipe) is None


def test_invalid_recipes() -> None:
    assert SparseGPTConfig(n=1, m=4).sparsity == 0.75
    for bad in ("sparsegpt-0", "sparsegpt-100", "4:4-sparsegpt", "0:4-sparsegpt"):
        with pytest.raises(RecipeError):
            parse_recipe(bad)


def calibration(n: int = 8, seq_len: int = 32) -> CalibrationSet:
    ids = torch.randint(0, 128, (n, seq_len), generator=torch.Generator().manual_seed(0))
    return CalibrationSet(ids, CalibrationSpec(n_samples=n, seq_len=seq_len), "random-0")


def test_end_to_end_nm_accounts_like_nm() -> None:
    model, reference = tiny_llama(), tiny_llama()
    report = apply_recipe(model, "2:4-sparsegpt", calibration())
    nm_report = apply_recipe(reference, "2:4")
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=calibration().input_ids).logits).all()
    assert report.sparsity == 0.5
    assert [lr.bits_per_weight for lr in report.layers] == [lr.bits_per_weight for lr in nm_report.layers]
    numel = report.layers[0].numel  # + the layout's 16-byte shape tensor
    assert report.layers[0].bits_per_weight == NMConfig(2, 4).bits_per_weight(torch.float32) + 128 / numel
    assert report.packed_size_bytes == nm_report.packed_size_bytes
    assert all(lr.output_error is not None for lr in report.layers)
    for _, module in compressible_linears(model):
        view = weight_view(module)
        assert ((view.reshape(view.shape[0], -1, 4) == 0).sum(-1) == 2).all()


def test_end_to_end_unstructured_beats_magnitude_on_gpt2() -> None:
    base, sparse, mag = tiny_gpt2(), tiny_gpt2(), tiny_gpt2()
    sparse.load_state_dict(base.state_dict())
    mag.load_state_dict(base.state_dict())
    calib = calibration()
    report = apply_recipe(sparse, "sparsegpt-50", calib)
    apply_recipe(mag, "mag-50")
    first = weight_view(sparse.get_submodule(report.layers[0].name))
    assert report.sparsity == 0.5
    assert report.layers[0].bits_per_weight == 8 * encoded_bytes(first, "sparse-bitmask") / first.numel()
    with torch.no_grad():
        ref = base(input_ids=calib.input_ids).logits
        err_sparse = (sparse(input_ids=calib.input_ids).logits - ref).norm()
        err_mag = (mag(input_ids=calib.input_ids).logits - ref).norm()
    assert err_sparse < err_mag
