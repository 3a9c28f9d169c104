"""fp16 / bf16 recipes: every weight holds its 16-bit value, 16 bits are accounted, the export reloads exactly."""

from __future__ import annotations

import json

import pytest
import torch

from compsafe.compress import applied, apply_recipe, parse_recipe
from compsafe.compress.precision import CastConfig
from compsafe.errors import RecipeError
from conftest import tiny_llama


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize(("recipe", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_every_weight_becomes_its_16_bit_value_and_counts_16_bits(recipe: str, dtype: torch.dtype) -> None:
    model = tiny_llama(tie=True)
    before = weights(model)
    report = apply_recipe(model, recipe)
    after = weights(model)
    assert after.keys() == before.keys()
    for name, original in before.items():  # embeddings and norms too, not only the linear layers
        assert after[name].dtype == torch.float32
        assert torch.equal(after[name], original.to(dtype).float()), name
    assert all(not torch.equal(before[n], after[n]) for n in before if "norm" not in n)  # norms are 1.0: exact
    assert report.effective_bits_per_weight == 16.0
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once by parameters()
    assert report.packed_size_bytes == 2 * n_params
    assert report.dense_size_bytes == 4 * n_params


def test_recipes_parse_round_trip_and_refuse_keep() -> None:
    assert parse_recipe("fp16") == CastConfig("fp16")
    assert parse_recipe("BFloat16").recipe == "bf16"
    with pytest.raises(RecipeError, match=r"fp16 cannot take \+keep"):
        parse_recipe("fp16+keep=layers.0")


def test_a_16_bit_base_is_refused_in_one_line() -> None:
    with pytest.raises(RecipeError, match="--dtype float32"):
        apply_recipe(tiny_llama().to(torch.bfloat16), "fp16")


def test_applied_restores_the_float32_base() -> None:
    model = tiny_llama()
    before = weights(model)
    with applied(model, "fp16") as variant:
        assert not variant.broken
        assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"].half().float())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


@pytest.mark.parametrize(("recipe", "stored"), [("fp16", "F16"), ("bf16", "BF16")])
def test_export_writes_16_bit_files_that_reload_to_the_measured_weights(
    tiny_llama_dir, tmp_path, recipe: str, stored: str
) -> None:
    from transformers import AutoModelForCausalLM

    from compsafe.export import export_variant
    from compsafe.models import LoadOptions, load_model
    from compsafe.models.safetensors_check import read_safetensors_header

    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / recipe, LoadOptions(device="cpu", dtype="float32"))
    header = read_safetensors_header(out / "model.safetensors")
    assert {entry["dtype"] for name, entry in header.items() if name != "__metadata__"} == {stored}
    base = load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="float32")).model
    apply_recipe(base, recipe)
    measured = weights(base)
    plain = AutoModelForCausalLM.from_pretrained(out)  # plain transformers: the folder's own dtype
    assert plain.dtype == {"F16": torch.float16, "BF16": torch.bfloat16}[stored]
    for name, param in plain.named_parameters():
        assert torch.equal(param.float(), measured[name]), name
    reloaded = load_model(str(out), LoadOptions(device="cpu", dtype="float32")).model  # what `compsafe run` loads
    ids = torch.arange(12).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, base(ids).logits)
    manifest = json.loads((out / "compsafe_manifest.json").read_text())
    assert manifest["compression"]["effective_bits_per_weight"] == 16.0


def test_the_precision_ladder_is_one_run(tiny_llama_dir, tmp_path) -> None:
    from typer.testing import CliRunner

    from compsafe.cli import app

    args = ["run", "--model", str(tiny_llama_dir), "--dtype", "float32", "--variants", "fp16,bf16,int8",
            "--probes", "perplexity,refusal", "--limit", "3", "--max-new-tokens", "4", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    models = json.loads((tmp_path / "r" / "summary.json").read_text())["models"]
    assert {label: models[label]["compression"]["effective_bits_per_weight"] for label in ("fp16", "bf16")} == {
        "fp16": 16.0, "bf16": 16.0}
    assert models["fp16"]["weights_digest"] != models["bf16"]["weights_digest"]
    refused = CliRunner().invoke(app, [*args[:-2], "--dtype", "bfloat16", "--out", str(tmp_path / "b")])
    assert refused.exit_code == 2 and "--dtype float32" in refused.output
