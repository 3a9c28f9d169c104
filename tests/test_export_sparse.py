"""`compsafe compress --format sparse-bitmask / sparse-24-bitmask`: pruned variants in compressed-tensors' sparse
layouts, decoded by compsafe's loader to bit-identical weights, at the size the accounting reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from compsafe.compress import apply_recipe, needs_calibration, parse_recipe
from compsafe.errors import ConfigError
from compsafe.export import export_variant, read_manifest
from compsafe.integrity import state_digest
from compsafe.models import LoadOptions, load_model
from compsafe.models.sparse_bitmask import decode, encode, encoded_bytes
from compsafe.models.storage import folder_storage
from conftest import save_tiny_llama


def test_bitmask_layout_is_compressed_tensors_one() -> None:
    weight = torch.tensor([[0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2.0],
                           [3.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    leaves = encode(weight, "sparse-bitmask")
    assert leaves["shape"].tolist() == [2, 9] and leaves["compressed"].tolist() == [1.5, -2.0, 3.0, 4.0]
    assert leaves["row_offsets"].tolist() == [0, 2] and leaves["bitmask"].dtype == torch.uint8
    # little bit order: the first input is bit 0 of byte 0 (np.packbits(..., bitorder="little"))
    assert leaves["bitmask"].tolist() == [[0b00000010, 0b00000001], [0b00001001, 0]]
    assert np.array_equal(leaves["bitmask"].numpy(), np.packbits((weight != 0).numpy(), axis=-1, bitorder="little"))
    assert torch.equal(decode(leaves), weight)
    assert encoded_bytes(weight, "sparse-bitmask") == sum(t.numel() * t.element_size() for t in leaves.values())


def test_two_four_layout_keeps_two_of_every_four() -> None:
    weight = torch.tensor([[0.0, 0.0, 5.0, 0.0, 1.0, -2.0, 0.0, 0.0]], dtype=torch.bfloat16)
    leaves = encode(weight, "sparse-24-bitmask")
    assert leaves["shape"].tolist() == [[1], [8]] and leaves["compressed"].shape == (1, 4)
    assert set(leaves) == {"shape", "compressed", "bitmask"} and leaves["compressed"].dtype == torch.bfloat16
    assert torch.equal(decode(leaves), weight)
    assert encoded_bytes(weight, "sparse-24-bitmask") == sum(t.numel() * t.element_size() for t in leaves.values())


@pytest.mark.parametrize(
    ("recipe", "dtype", "layout"),
    [
        ("mag-50", "bfloat16", "sparse-bitmask"),
        ("2:4", "float32", "sparse-24-bitmask"),
        ("4:8", "bfloat16", "sparse-bitmask"),
        ("sparsegpt-50", "float32", "sparse-bitmask"),
        ("mag-50+keep=layers.0", "bfloat16", "sparse-bitmask"),
        ("mag-50+keep8=layers.0", "float32", "sparse-bitmask"),
        ("2:4+keep8=self_attn", "float32", "sparse-24-bitmask"),
    ],
)
def test_sparse_export_round_trips_exactly(tiny_llama_dir: Path, tmp_path: Path, recipe: str, dtype: str,
                                           layout: str) -> None:
    options = LoadOptions(device="cpu", dtype=dtype)
    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / "sparse", options)  # auto picks the layout
    manifest = read_manifest(out)
    quantization = json.loads((out / "config.json").read_text())["quantization_config"]
    assert manifest["export_format"] == layout and quantization["sparsity_config"]["format"] == layout
    assert quantization["quant_method"] == "compressed-tensors"
    names = set(load_file(str(out / "model.safetensors")))
    target = quantization["sparsity_config"]["targets"][0]
    assert {f"{target}.compressed", f"{target}.bitmask", f"{target}.shape"} <= names
    assert f"{target}.weight" not in names
    loaded = load_model(str(out), options)
    if "keep8" not in recipe:  # int8 code 0 reads back +0.0 where rounding left -0.0: equal values, other bits
        assert state_digest(loaded.model) == manifest["state_digest"]  # the weights that were measured, bit for bit
    if needs_calibration(parse_recipe(recipe)):
        return
    in_memory = load_model(str(tiny_llama_dir), options)
    apply_recipe(in_memory.model, recipe)
    _assert_same_model(loaded, in_memory)


def test_sparse_size_on_disk_is_the_accounting(tiny_tokenizer, tmp_path: Path) -> None:
    model = save_tiny_llama(tmp_path / "base", tiny_tokenizer, hidden_size=192, intermediate_size=512)
    options = LoadOptions(device="cpu", dtype="bfloat16")
    for recipe in ("mag-50", "2:4", "mag-50+keep8=layers.0", "2:4+keep8=self_attn"):
        out = export_variant(str(model), recipe, tmp_path / recipe.replace(":", "-"), options)
        manifest = read_manifest(out)
        on_disk = sum(f.stat().st_size for f in out.glob("*.safetensors"))
        accounted = manifest["compression"]["packed_size_bytes"]
        assert abs(on_disk - accounted) <= 0.10 * accounted
        bits = manifest["compression"]["effective_bits_per_weight"]
        if "keep8" not in recipe:
            assert 9.0 <= bits < 9.5  # half the values at 16 bits + 1 mask bit (+ row offsets / shapes)
        assert folder_storage(out)["effective_bits_per_weight"] == pytest.approx(bits, rel=0.01)
        assert manifest["storage"]["packed_size_bytes"] == pytest.approx(accounted, rel=0.10)


def test_sparse_format_needs_a_pruned_variant(tiny_llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prunes no layer"):
        export_variant(str(tiny_llama_dir), "int8", tmp_path / "x", LoadOptions(device="cpu", dtype="float32"),
                       export_format="sparse-bitmask")
    with pytest.raises(ConfigError, match="no quantized layer"):
        export_variant(str(tiny_llama_dir), "mag-50", tmp_path / "y", LoadOptions(device="cpu", dtype="float32"),
                       export_format="compressed-tensors")


def test_pruned_keep8_packs_its_int8_layers_beside_the_sparse_ones(tiny_tokenizer, tmp_path: Path) -> None:
    """``mag-50+keep8=layers.0``: the pruned layers as bitmasks, the kept ones as packed int8 codes (one
    ``config_groups`` entry naming them), so the folder is as small as the accounting and still decodes to the
    measured weights (bf16: one rounding step, as any packed export)."""
    model = save_tiny_llama(tmp_path / "base", tiny_tokenizer, hidden_size=192, intermediate_size=512)
    options = LoadOptions(device="cpu", dtype="bfloat16")
    out = export_variant(str(model), "mag-50+keep8=layers.0", tmp_path / "keep8", options)
    manifest = read_manifest(out)
    quantization = json.loads((out / "config.json").read_text())["quantization_config"]
    kept = {k["name"] for k in manifest["compression"]["kept_layers"]}
    (group,) = quantization["config_groups"].values()
    assert set(group["targets"]) == kept and group["weights"]["num_bits"] == 8 and group["format"] == "pack-quantized"
    assert not set(quantization["sparsity_config"]["targets"]) & kept
    names = set(load_file(str(out / "model.safetensors")))
    assert all(f"{name}.weight_packed" in names and f"{name}.weight" not in names for name in kept)
    assert manifest["packing"]["packed_layers"] == len(kept) and manifest["packing"]["sparse_layers"] > 0
    loaded = load_model(str(out), options)
    in_memory = load_model(str(model), options)
    apply_recipe(in_memory.model, "mag-50+keep8=layers.0")
    step = manifest["packing"]["max_abs_weight_difference"]
    for name, tensor in loaded.model.state_dict().items():
        expected = in_memory.model.state_dict()[name]
        assert (tensor.float() - expected.float()).abs().max().item() <= step, name
        assert torch.equal(tensor == 0, expected == 0), name  # every pruned zero and no other


@pytest.mark.parametrize(("recipe", "layout"), [("mag-50", "sparse-bitmask"), ("2:4", "sparse-24-bitmask")])
def test_gpt2_conv1d_layers_export_sparse_and_round_trip_exactly(tiny_gpt2_dir: Path, tmp_path: Path, recipe: str,
                                                                 layout: str) -> None:
    """GPT-2's Conv1D weights (stored ``[in, out]``) go into the sparse layout as ``[out, in]`` -- 2:4 groups along
    the input, as pruned -- and come back transposed: every tensor and the logits equal the in-memory variant."""
    options = LoadOptions(device="cpu", dtype="float32")
    out = export_variant(str(tiny_gpt2_dir), recipe, tmp_path / "gpt2", options)
    quantization = json.loads((out / "config.json").read_text())["quantization_config"]
    targets = quantization["sparsity_config"]["targets"]
    assert "transformer.h.0.attn.c_attn" in targets and "transformer.h.1.mlp.c_proj" in targets
    stored = load_file(str(out / "model.safetensors"))
    assert "transformer.h.0.attn.c_attn.weight" not in stored and "transformer.h.0.attn.c_attn.bias" in stored
    in_memory = load_model(str(tiny_gpt2_dir), options)
    apply_recipe(in_memory.model, recipe)
    c_fc = in_memory.model.transformer.h[0].mlp.c_fc.weight  # Conv1D: [in 64, out 256]
    leaves = {leaf: stored[f"transformer.h.0.mlp.c_fc.{leaf}"] for leaf in ("shape", "compressed", "bitmask")}
    assert [int(v) for v in leaves["shape"].flatten()] == [256, 64]  # [out, in]
    assert torch.equal(decode(leaves), c_fc.detach().t())
    loaded = load_model(str(out), options)
    assert state_digest(loaded.model) == read_manifest(out)["state_digest"]
    _assert_same_model(loaded, in_memory)
    on_disk = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    accounted = read_manifest(out)["compression"]["packed_size_bytes"]
    assert abs(on_disk - accounted) <= 0.10 * accounted


def test_gpt2_pruned_keep8_packs_its_conv1d_int8_layers(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    """GPT-2 ``mag-50+keep8=h.0``: the kept Conv1D layers packed as ``[out, in]`` int8 codes, transposed back on
    load; the folder is as large as accounted and reloads to the in-memory variant's values and logits."""
    options = LoadOptions(device="cpu", dtype="float32")
    recipe = "mag-50+keep8=h.0"
    out = export_variant(str(tiny_gpt2_dir), recipe, tmp_path / "gpt2", options)
    stored = load_file(str(out / "model.safetensors"))
    assert [int(v) for v in stored["transformer.h.0.mlp.c_fc.weight_shape"]] == [256, 64]  # [out, in]
    assert "transformer.h.0.mlp.c_fc.weight" not in stored and "transformer.h.1.mlp.c_fc.bitmask" in stored
    manifest = read_manifest(out)
    on_disk = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    assert abs(on_disk - manifest["compression"]["packed_size_bytes"]) <= 0.10 * on_disk
    loaded = load_model(str(out), options)
    in_memory = load_model(str(tiny_gpt2_dir), options)
    apply_recipe(in_memory.model, recipe)
    _assert_same_model(loaded, in_memory)


def _assert_same_model(loaded, in_memory) -> None:
    """The reloaded export equals the in-memory variant: every tensor bit for bit, and the logits."""
    expected = in_memory.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    batch = in_memory.tokenizer(["The cat sat on the mat because"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(loaded.model(**batch).logits, in_memory.model(**batch).logits)
