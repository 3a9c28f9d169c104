"""Protected layers (+keep / +keep8): kept modules untouched or int8, the rest compressed, bits exact."""

from __future__ import annotations

import pytest
import torch

from compsafe.compress import METHODS, CalibrationSet, CalibrationSpec, apply_recipe, needs_calibration, parse_recipe
from compsafe.compress.accounting import dtype_bits
from compsafe.compress.protected import ProtectedConfig
from compsafe.compress.rtn import RTNConfig, quantize_dequantize
from compsafe.compress.targets import compressible_linears, excluded_modules, module_matches, weight_view
from compsafe.config import split_variants
from compsafe.errors import RecipeError
from conftest import tiny_llama


def protected_llama(n_layers: int = 12, tie: bool = False):
    """The shared tiny Llama with enough blocks for keep patterns (``layers.0-3``) and a 96-token vocab."""
    return tiny_llama(tie=tie, num_hidden_layers=n_layers, vocab_size=96, max_position_embeddings=128)


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def fake_calibration() -> CalibrationSet:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 96, (4, 16), generator=gen)
    rows = torch.randint(0, 90, (3, 8), generator=gen)
    pairs = tuple((row, torch.cat([row[:3], row[3:4] + 1, row[4:]])) for row in rows)  # one token swapped
    return CalibrationSet(ids, CalibrationSpec(n_samples=4, seq_len=16), "testdigest", pairs)  # pairs: Fair-GPTQ


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("model.layers.0.self_attn.q_proj", "layers.0", True),
        ("model.layers.10.self_attn.q_proj", "layers.0", False),
        ("model.layers.10.self_attn.q_proj", "layers.1", False),
        ("model.layers.1.self_attn.q_proj", "layers.1", True),
        ("model.layers.3.self_attn.q_proj", "self_attn", True),
        ("model.layers.3.mlp.down_proj", "self_attn", False),
        ("model.layers.3.mlp.down_proj", "mlp.down_proj", True),
        ("model.layers.3.mlp.up_proj", "mlp.down_proj", False),
        ("model.layers.3.mlp.up_proj", "layers.0-3", True),
        ("model.layers.4.mlp.up_proj", "layers.0-3", False),
        ("model.layers.4.mlp.up_proj", "*_proj", True),
        ("model.layers.4.mlp.up_proj", "attn", False),  # whole components, never substrings
        ("lm_head", "lm_head", True),
        ("model.layers.10.mlp.up_proj", r"re:layers\.1\d\.", True),
        ("model.layers.1.mlp.up_proj", r"re:layers\.1\d\.", False),
    ],
)
def test_pattern_matches_whole_dot_separated_components(name: str, pattern: str, expected: bool) -> None:
    assert module_matches(name, pattern) is expected


def test_excluded_modules_hides_layers_from_every_target_list() -> None:
    model = protected_llama(n_layers=2)
    names = [n for n, _ in compressible_linears(model)]
    with excluded_modules(["layers.0"]), excluded_modules(["mlp"]):
        inside = [n for n, _ in compressible_linears(model)]
    assert inside == [n for n in names if ".layers.0." not in n and ".mlp." not in n]
    assert [n for n, _ in compressible_linears(model)] == names  # restored on exit


@pytest.mark.parametrize(
    "recipe",
    [
        "int4-g128+keep=layers.0,layers.29",
        "int4-g32-asym+keep8=self_attn",
        "mag-50+keep=self_attn",
        "2:4+keep=layers.0-3.mlp,lm_head",
        r"int8+keep=re:layers\.1\d\.",
    ],
)
def test_recipe_round_trips(recipe: str) -> None:
    config = parse_recipe(recipe)
    assert isinstance(config, ProtectedConfig)
    assert parse_recipe(config.recipe) == config
    assert parse_recipe(config.recipe).recipe == config.recipe


@pytest.mark.parametrize(
    "recipe", ["int4+keep=", "int4+keepx=layers.0", "int4+keep=a+keep=b", "int5+keep=layers.0", "int4+keep=re:("]
)
def test_bad_keep_clauses_are_recipe_errors(recipe: str) -> None:
    with pytest.raises(RecipeError):
        parse_recipe(recipe)


def test_kept_layers_bit_identical_and_bits_exact() -> None:
    model = protected_llama(n_layers=12)
    before = weights(model)
    report = apply_recipe(model, "int4-g32+keep=layers.0,layers.1")
    after = weights(model)
    kept = {n for n in before if n.startswith(("model.layers.0.", "model.layers.1.")) and "proj" in n}
    compressed = {n for n in before if n.startswith("model.layers.") and "proj" in n} - kept
    assert all(torch.equal(before[n], after[n]) for n in kept)
    assert all(not torch.equal(before[n], after[n]) for n in compressed)
    assert torch.equal(before["lm_head.weight"], after["lm_head.weight"])
    assert {layer.name + ".weight" for layer in report.kept_layers} == kept
    assert all(layer.relative_error == 0.0 and layer.bits_per_weight == 32.0 for layer in report.kept_layers)
    inner = RTNConfig(bits=4, group_size=32)
    total_bits = sum(
        inner.bits_per_weight(weight_view(m).shape[1]) * weight_view(m).numel()
        for _, m in [(n, m) for n, m in compressible_linears(model) if n + ".weight" in compressed]
    ) + 32 * sum(before[n].numel() for n in kept)
    total = sum(before[n].numel() for n in kept | compressed)
    assert report.target_numel == total
    assert report.effective_bits_per_weight == pytest.approx(total_bits / total, rel=1e-12)
    assert report.to_dict()["kept_numel"] == sum(before[n].numel() for n in kept)
    assert report.recipe == "int4-rtn-g32+keep=layers.0,layers.1"


def test_keep8_gives_kept_layers_int8_and_packs_them() -> None:
    model = protected_llama(n_layers=2)
    before = weights(model)
    plain = protected_llama(n_layers=2)
    plain_report = apply_recipe(plain, "int4-g32")
    report = apply_recipe(model, "int4-g32+keep8=self_attn")
    int8 = RTNConfig(bits=8)
    for name, module in compressible_linears(model):
        if ".self_attn." in name:
            expected, _ = quantize_dequantize(before[name + ".weight"].float(), int8)
            assert torch.equal(module.weight, expected.to(module.weight.dtype))
    kept = {layer.name: layer for layer in report.kept_layers}
    assert set(kept) == {n for n, _ in compressible_linears(model) if ".self_attn." in n}
    assert all(layer.bits_per_weight == pytest.approx(8 + 16 / 64) for layer in kept.values())
    assert all(0 < layer.relative_error < 0.01 for layer in kept.values())
    # packed size: attention stored at int8 instead of int4 (scales 16-bit per row for int8, per 32 for int4)
    attention = [m for n, m in compressible_linears(model) if ".self_attn." in n]
    int4 = RTNConfig(bits=4, group_size=32)
    delta = sum(int8.packed_bytes(*weight_view(m).shape) - int4.packed_bytes(*weight_view(m).shape) for m in attention)
    assert report.packed_size_bytes == plain_report.packed_size_bytes + delta


def test_keep_head_changes_nothing_when_the_head_is_kept_anyway() -> None:
    plain, kept = protected_llama(n_layers=2, tie=True), protected_llama(n_layers=2, tie=True)
    a = apply_recipe(plain, "int4-g32")
    b = apply_recipe(kept, "int4-g32+keep=lm_head")
    assert a.effective_bits_per_weight == b.effective_bits_per_weight
    assert b.kept_layers == [] and b.extra["keep"]["not_targeted_anyway"] == ["lm_head"]
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), kept.parameters(), strict=True))


def test_pattern_matching_nothing_names_the_pattern() -> None:
    with pytest.raises(RecipeError, match="'layers.99'"):
        apply_recipe(protected_llama(n_layers=2), "int4+keep=layers.0,layers.99")


@pytest.mark.parametrize("method", [name for name, _ in METHODS.items()])
def test_every_registered_method_respects_keep(method: str) -> None:
    """Contract: any method, present or future, leaves kept modules bit-identical without knowing about them."""
    recipe = METHODS.get(method).examples[0].replace("-g128", "-g32")
    if not getattr(METHODS.get(method), "supports_keep", True):  # whole-model recipes (fp16, structured) refuse it
        with pytest.raises(RecipeError, match="cannot take \\+keep"):
            parse_recipe(f"{recipe}+keep=layers.1.mlp")
        return
    config = parse_recipe(f"{recipe}+keep=layers.1.mlp,layers.0.self_attn.q_proj")
    model = protected_llama(n_layers=2)
    before = weights(model)
    calibration = fake_calibration() if needs_calibration(config) else None
    report = apply_recipe(model, config, calibration)
    after = weights(model)
    kept = [n for n in before if n.startswith(("model.layers.1.mlp.", "model.layers.0.self_attn.q_proj"))]
    assert kept and all(torch.equal(before[n], after[n]) for n in kept), method
    assert any(not torch.equal(before[n], after[n]) for n in before if n not in kept), method
    assert {layer.name for layer in report.layers}.isdisjoint({layer.name for layer in report.kept_layers})
    assert all(layer.bits_per_weight == dtype_bits(torch.float32) for layer in report.kept_layers)


def test_variants_list_keeps_module_lists_together() -> None:
    assert split_variants("int8,int4-g128+keep=layers.0,layers.29,mag-50,2:4+keep8=self_attn,mlp,int4") == [
        "int8",
        "int4-g128+keep=layers.0,layers.29",
        "mag-50",
        "2:4+keep8=self_attn,mlp",
        "int4",
    ]


def test_run_accepts_keep_lists_and_rejects_unmatched_patterns_before_probing(tiny_llama_dir, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from compsafe.cli import app

    common = ["--model", str(tiny_llama_dir), "--probes", "perplexity", "--limit", "2", "--device", "cpu"]
    ok = CliRunner().invoke(
        app, ["run", *common, "--variants", "int8,int4-g32+keep=layers.0,self_attn", "--out", str(tmp_path / "a")]
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    entry = summary["models"]["int4-rtn-g32+keep=layers.0,self_attn"]
    assert entry["config"]["keep"] == ["layers.0", "self_attn"] and len(entry["compression"]["kept_layers"]) == 7 + 4
    bad = CliRunner().invoke(app, ["run", *common, "--variants", "int8+keep=layers.7", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "'layers.7'" in bad.output and "base · perplexity" not in bad.output
