"""`compsafe compress --format compressed-tensors`: packed int codes with compsafe's own scales, loaded by plain
transformers, giving the in-memory variant's logits; sizes on disk as accounted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress import apply_recipe
from compsafe.export import export_variant, read_manifest
from compsafe.models import LoadOptions, load_model
from conftest import save_tiny_llama

runner = CliRunner()
PROMPTS = ["The cat sat on the mat because", "How do I bake bread?"]


def weight_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits.float()


@pytest.mark.parametrize(
    ("recipe", "dtype", "layout"),
    [
        ("int4-g48", "float32", "pack-quantized"),  # 64 = 48 + 16: a ragged last group, stored as g16
        ("int3-g32-asym", "float32", "int-quantized"),
        ("int2-g32-narrow", "float32", "pack-quantized"),
        ("int8", "bfloat16", "pack-quantized"),
        ("int4-g32+keep8=self_attn", "float32", "pack-quantized"),
    ],
)
def test_packed_export_loads_in_plain_transformers_with_the_variant_logits(
    tiny_llama_dir: Path, tmp_path: Path, recipe: str, dtype: str, layout: str
) -> None:
    options = LoadOptions(device="cpu", dtype=dtype)
    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / "ct", options, export_format="compressed-tensors")
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == layout
    in_memory = load_model(str(tiny_llama_dir), options)
    apply_recipe(in_memory.model, recipe)
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=getattr(torch, dtype))
    difference = (logits(plain, in_memory.tokenizer) - logits(in_memory.model, in_memory.tokenizer)).abs().max()
    manifest = read_manifest(out)
    assert manifest["export_format"] == "compressed-tensors"
    if dtype == "float32":  # codes * float32 scale is exactly the in-memory weight
        assert difference.item() == 0.0 and manifest["packing"]["max_abs_weight_difference"] == 0.0
    else:  # bf16: the loader multiplies by the bf16 scale, one rounding step from the in-memory weight
        assert 0 < manifest["packing"]["max_abs_weight_difference"] < 2e-3 and difference.item() < 0.05


def test_packed_int4_is_small_and_sized_as_accounted(tiny_tokenizer, tmp_path: Path) -> None:
    # linear layers dominate, and the head is tied to the embedding, as in SmolLM2 (576 = 4 x 128 + 64 there)
    model = save_tiny_llama(tmp_path / "base", tiny_tokenizer, hidden_size=192, intermediate_size=512,
                            tie_word_embeddings=True)
    options = LoadOptions(device="cpu", dtype="bfloat16")
    packed = export_variant(str(model), "int4-g128", tmp_path / "ct", options)  # auto: packed
    dense = export_variant(str(model), "int4-g128", tmp_path / "dense", options, export_format="dense")
    assert read_manifest(packed)["export_format"] == "compressed-tensors"
    assert read_manifest(dense)["export_format"] == "dense"
    assert weight_bytes(packed) < 0.45 * weight_bytes(dense)
    accounted = read_manifest(packed)["compression"]["packed_size_bytes"]
    assert abs(weight_bytes(packed) - accounted) <= 0.10 * accounted
    plain = AutoModelForCausalLM.from_pretrained(packed, dtype=torch.bfloat16)
    reference = load_model(str(dense), options)
    assert plain.config.tie_word_embeddings and plain.lm_head.weight is plain.model.embed_tokens.weight
    assert (logits(plain, reference.tokenizer) - logits(reference.model, reference.tokenizer)).abs().max() < 0.05


def test_format_errors_are_one_line(tiny_llama_dir: Path, tmp_path: Path) -> None:
    base = ["compress", "--model", str(tiny_llama_dir), "--device", "cpu"]
    bad = runner.invoke(app, [*base, "--recipe", "int4", "--format", "gguf2", "--out", str(tmp_path / "a")])
    assert bad.exit_code == 2 and "compressed-tensors" in bad.output and "Traceback" not in bad.output
    sparse = runner.invoke(
        app, [*base, "--recipe", "mag-50", "--format", "compressed-tensors", "--out", str(tmp_path / "b")]
    )
    assert sparse.exit_code == 2 and "--format dense" in sparse.output and not (tmp_path / "b").exists()
    auto = runner.invoke(app, [*base, "--recipe", "mag-50", "--out", str(tmp_path / "c")])
    assert auto.exit_code == 0 and read_manifest(tmp_path / "c")["export_format"] == "sparse-bitmask"
    assert "plain transformers" in auto.output  # the one-line note: load it with compsafe
    lowrank = runner.invoke(app, [*base, "--recipe", "lowrank-r0.50", "--out", str(tmp_path / "d")])
    assert lowrank.exit_code == 0 and read_manifest(tmp_path / "d")["export_format"] == "dense"


@pytest.mark.parametrize("recipe", ["int4-gptq-g32-actorder", "int3-awq-g32"])
def test_calibrated_quantizers_export_packed_exactly(tiny_llama_dir: Path, tmp_path: Path, recipe: str) -> None:
    from compsafe.compress import CalibrationSpec

    options, spec = LoadOptions(device="cpu", dtype="float32"), CalibrationSpec(n_samples=4, seq_len=32)
    packed = export_variant(str(tiny_llama_dir), recipe, tmp_path / "ct", options, spec)
    dense = export_variant(str(tiny_llama_dir), recipe, tmp_path / "d", options, spec, export_format="dense")
    assert read_manifest(packed)["state_digest"] == read_manifest(dense)["state_digest"]  # the same variant
    plain = AutoModelForCausalLM.from_pretrained(packed, dtype=torch.float32)
    reference = load_model(str(dense), options)
    assert torch.equal(logits(plain, reference.tokenizer), logits(reference.model, reference.tokenizer))
