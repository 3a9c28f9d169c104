"""Structured pruning (heads-/mlp-/layers-): the smaller model equals masking the same units, exports, reloads,
and is accounted at its real size."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from compsafe.compress import CalibrationSet, CalibrationSpec, applied, apply_recipe, parse_recipe
from compsafe.compress.structure import decoder_layout
from compsafe.errors import RecipeError
from conftest import tiny_gpt2, tiny_llama

IDS = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))


def calibration(vocab: int = 128) -> CalibrationSet:
    ids = torch.randint(0, vocab, (6, 32), generator=torch.Generator().manual_seed(0))
    return CalibrationSet(ids, CalibrationSpec(n_samples=6, seq_len=32), "testdigest")


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def skip_layer(layer) -> None:
    """The test's own "skip this layer": its forward returns its input."""
    layer.register_forward_hook(lambda m, args, kwargs, out: kwargs.get("hidden_states", args[0] if args else None),
                                with_kwargs=True)


def reference(model, plan: dict, head_dim: int):
    """The unpruned model with the plan's units masked the plain way: heads' o_proj input columns zeroed,
    channels' down_proj input columns zeroed, layers skipped."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for layer, units in plan.get("removed", {}).items():
            block = model.model.layers[int(layer)]
            for unit in units:
                if plan["unit"] == "heads":
                    block.self_attn.o_proj.weight[:, unit * head_dim : (unit + 1) * head_dim] = 0
                else:
                    block.mlp.down_proj.weight[:, unit] = 0
    for layer in plan.get("layers", []):
        skip_layer(model.model.layers[layer])
    return model


CASES = [  # recipe, model overrides, what the config says afterwards
    ("heads-50", {}, {"num_attention_heads": 2, "num_key_value_heads": 2}),  # GQA 4/2: one head per group
    ("heads-25", {"num_key_value_heads": 4}, {"num_attention_heads": 3, "num_key_value_heads": 3}),  # MHA
    ("mlp-30", {}, {"intermediate_size": 128 - 38}),
    ("layers-2", {"num_hidden_layers": 4}, {"num_hidden_layers": 2}),
]


@pytest.mark.parametrize(("recipe", "overrides", "expected"), CASES)
def test_pruned_model_equals_masking_and_is_smaller(recipe: str, overrides: dict, expected: dict) -> None:
    model = tiny_llama(**overrides)
    base = copy.deepcopy(model)
    report = apply_recipe(model, recipe, calibration())
    plan = report.extra["plan"]
    masked = logits(model)
    pruned = report.stored_form(model)
    assert pruned is not model and torch.equal(logits(model), masked)  # the measured model is left as it is
    assert {k: getattr(pruned.config, k) for k in expected} == expected
    torch.testing.assert_close(logits(pruned), masked, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits(pruned), logits(reference(base, plan, 16)), atol=1e-5, rtol=1e-5)
    n_after = sum(p.numel() for p in pruned.parameters())
    assert report.extra["parameters_after"] == n_after < report.extra["parameters"]
    assert report.packed_size_bytes == 4 * n_after
    assert report.effective_bits_per_weight < 32.0
    assert report.dense_size_bytes == 4 * sum(p.numel() for p in base.parameters())


def test_layer_pruned_model_generates_with_its_kv_cache_as_the_masked_one() -> None:
    model = tiny_llama(num_hidden_layers=4)
    report = apply_recipe(model, "layers-1", calibration())
    pruned = report.stored_form(model)
    assert [layer.self_attn.layer_idx for layer in pruned.model.layers] == [0, 1, 2]
    prompt = IDS[:1, :6]
    settings = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(pruned.generate(prompt, **settings), model.generate(prompt, **settings))


def test_scores_pick_the_unit_that_does_least() -> None:
    model = tiny_llama(num_hidden_layers=3)
    with torch.no_grad():
        for block in model.model.layers:
            block.self_attn.o_proj.weight[:, 16:32] *= 1e-3  # head 1 barely writes to the residual stream
            block.mlp.down_proj.weight[:, 5] *= 1e-3  # channel 5 barely writes either
        model.model.layers[1].self_attn.o_proj.weight.mul_(1e-3)  # layer 1 barely turns the hidden state
        model.model.layers[1].mlp.down_proj.weight.mul_(1e-3)
    heads = apply_recipe(copy.deepcopy(model), "heads-50", calibration()).extra["plan"]
    assert all(1 in units for units in heads["removed"].values())
    channels = apply_recipe(copy.deepcopy(model), "mlp-1", calibration()).extra["plan"]
    assert all(units == [5] for units in channels["removed"].values())
    assert apply_recipe(copy.deepcopy(model), "layers-1", calibration()).extra["plan"]["layers"] == [1]


def test_unachievable_amounts_and_other_families_are_one_line_errors() -> None:
    with pytest.raises(RecipeError, match="steps of 1/2 of the heads"):
        apply_recipe(tiny_llama(), "heads-10", calibration())  # 2 query heads per KV group: 50% steps
    with pytest.raises(RecipeError, match="keep at least one"):
        apply_recipe(tiny_llama(), "layers-2", calibration())
    with pytest.raises(RecipeError, match=r"Llama-family decoders \(llama, mistral, qwen2.*this model is gpt2"):
        apply_recipe(tiny_gpt2(), "mlp-30", calibration())
    with pytest.raises(RecipeError, match=r"cannot take \+keep"):
        parse_recipe("heads-25+keep=layers.0")
    with pytest.raises(RecipeError, match="1..99"):
        parse_recipe("mlp-100")
    assert parse_recipe("Layers-4").recipe == "layers-4"


def test_applied_restores_the_base_after_a_structured_variant() -> None:
    model = tiny_llama()
    before = {n: p.clone() for n, p in model.named_parameters()}
    with applied(model, "mlp-30", calibration()) as variant:
        assert variant.report.sparsity > 0
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert decoder_layout(model).intermediate == 128


@pytest.mark.parametrize("recipe", ["heads-50", "mlp-30", "layers-1"])
def test_export_is_smaller_and_reloads_with_plain_transformers(tiny_llama_dir, tmp_path, recipe: str) -> None:
    from transformers import AutoModelForCausalLM

    from compsafe.compress import build_calibration
    from compsafe.export import export_variant
    from compsafe.models import LoadOptions, load_model

    options = LoadOptions(device="cpu", dtype="float32")
    spec = CalibrationSpec(n_samples=4, seq_len=32)
    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / recipe, options, spec)
    handle = load_model(str(tiny_llama_dir), options)
    report = apply_recipe(handle.model, recipe, build_calibration(handle.tokenizer, spec, handle.max_length))
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in plain.parameters()) == report.extra["parameters_after"]
    ids = torch.arange(3, 15).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, handle.model(ids).logits, atol=1e-5, rtol=1e-5)
    manifest = json.loads((out / "compsafe_manifest.json").read_text())
    assert manifest["compression"]["extra"]["parameters_after"] == report.extra["parameters_after"]
    assert manifest["storage"]["packed_size_bytes"] < 4 * report.extra["parameters"]


def test_structured_recipes_in_a_tiny_run(tiny_llama_dir, tmp_path) -> None:
    from typer.testing import CliRunner

    from compsafe.cli import app

    args = ["run", "--model", str(tiny_llama_dir), "--dtype", "float32", "--variants", "heads-50,mlp-30,layers-1",
            "--probes", "perplexity,refusal", "--limit", "3", "--max-new-tokens", "4", "--calibration-samples", "4",
            "--calibration-seq-len", "32", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    models = json.loads((tmp_path / "r" / "summary.json").read_text())["models"]
    extra = {label: models[label]["compression"]["extra"] for label in ("heads-50", "mlp-30", "layers-1")}
    assert extra["heads-50"]["heads_per_layer"] == 2 and extra["layers-1"]["num_hidden_layers"] == 1
    assert all(e["parameters_after"] < e["parameters"] for e in extra.values())
    refused = CliRunner().invoke(app, [*args[:6], "heads-10", *args[7:-1], str(tmp_path / "x")])
    assert refused.exit_code == 2 and "steps of 1/2" in refused.output
    assert not (tmp_path / "x" / "records").exists()  # refused before the base was probed


def test_gqa_amounts_round_to_whole_heads_per_group_as_on_the_default_model() -> None:
    from compsafe.compress.prune_plan import removal_count

    layout = decoder_layout(tiny_llama(hidden_size=96, num_attention_heads=6, num_key_value_heads=2))  # 3 per group
    assert [removal_count(layout, "heads", pct) for pct in (25, 33, 50, 67)] == [1, 1, 2, 2]
    with pytest.raises(RecipeError, match=r"heads-33, heads-67"):
        removal_count(layout, "heads", 90)
