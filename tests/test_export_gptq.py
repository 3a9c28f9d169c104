"""`compsafe compress --format gptq`: qweight/qzeros/scales/g_idx as gptqmodel packs them, a quantization_config
transformers' GPTQConfig reads, decoded by compsafe's loader (gptqmodel/optimum are not installed here) to the
in-memory variant's weights up to the float16 rounding of the scales, at the size the accounting reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from compsafe.compress import apply_recipe
from compsafe.errors import ConfigError
from compsafe.export import export_variant, read_manifest
from compsafe.models import LoadOptions, load_model
from compsafe.models.gptq_packing import dequantize, pack_columns, pack_rows, unpack_columns, unpack_rows
from conftest import save_tiny_llama

FP16_STEP = 2.0**-11  # float16's relative rounding: the scale's only change


def gptqmodel_pack(int_weight: np.ndarray, zeros: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """gptqmodel 7.7.0's ``PackableQuantLinear.pack_original`` loops for 2/4/8 bits, as written there
    (``int_weight`` [in, out], ``zeros`` [groups, out]): the reference compsafe's vectorised packing must equal."""
    factor = 32 // bits
    qweight = np.zeros((math.ceil(int_weight.shape[0] * bits / 32), int_weight.shape[1]), dtype=np.uint32)
    for row in range(qweight.shape[0]):
        for j in range(min(factor, int_weight.shape[0] - row * factor)):
            qweight[row] |= int_weight[row * factor + j].astype(np.uint32) << (bits * j)
    qzeros = np.zeros((zeros.shape[0], math.ceil(zeros.shape[1] * bits / 32)), dtype=np.uint32)
    for col in range(qzeros.shape[1]):
        for j in range(min(factor, zeros.shape[1] - col * factor)):
            qzeros[:, col] |= zeros[:, col * factor + j].astype(np.uint32) << (bits * j)
    return qweight.view(np.int32), qzeros.view(np.int32)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_packing_is_gptqmodels(bits: int) -> None:
    gen = torch.Generator().manual_seed(bits)
    codes = torch.randint(0, 2**bits, (72, 40), generator=gen)  # 72 inputs: a partial last word at 8 bits/4 a word
    zeros = torch.randint(0, 2**bits, (3, 40), generator=gen)
    qweight, qzeros = gptqmodel_pack(codes.numpy(), zeros.numpy(), bits)
    assert np.array_equal(pack_rows(codes, bits).numpy(), qweight)
    assert np.array_equal(pack_columns(zeros, bits).numpy(), qzeros)
    assert torch.equal(unpack_rows(pack_rows(codes, bits), bits, 72), codes)
    assert torch.equal(unpack_columns(pack_columns(zeros, bits), bits, 40), zeros)


def test_dequantize_reads_v1_zero_points_minus_one() -> None:
    codes = torch.tensor([[0, 15], [8, 9]])  # [in 2, out 2]
    leaves = {"qweight": pack_rows(codes, 4), "g_idx": torch.zeros(2, dtype=torch.int32),
              "scales": torch.tensor([[0.5, 2.0]], dtype=torch.float16)}
    expected = torch.tensor([[-4.0, 0.0], [14.0, 2.0]])  # W[o, i] = scale[o] * (q[i, o] - 8)
    v1 = dequantize({**leaves, "qzeros": pack_columns(torch.tensor([[7, 7]]), 4)}, 4, "gptq")
    v2 = dequantize({**leaves, "qzeros": pack_columns(torch.tensor([[8, 8]]), 4)}, 4, "gptq_v2")
    assert torch.equal(v1, expected) and torch.equal(v2, expected)


def logits(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(["The cat sat on the mat because", "How do I bake bread?"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits.float()


@pytest.mark.parametrize(
    ("recipe", "checkpoint_format"),
    [
        ("int4-g48", "gptq"),  # 64 = 48 + 16: a ragged last group, ceil(64 / 48) = 2 rows of scales
        ("int8", "gptq"),  # per output channel: group_size -1
        ("int4-g32-asym", "gptq_v2"),
        ("int4-gptq-g32", "gptq"),
        ("int4-g32+keep8=self_attn", "gptq"),  # the kept int8 layers: gptqmodel dynamic overrides
    ],
)
def test_gptq_export_reloads_as_the_variant(tiny_llama_dir: Path, tmp_path: Path, recipe: str,
                                            checkpoint_format: str) -> None:
    options = LoadOptions(device="cpu", dtype="float32")
    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / "gptq", options, export_format="gptq")
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "gptq" and config["checkpoint_format"] == checkpoint_format
    assert {"bits", "group_size", "desc_act", "sym"} <= set(config) and config["desc_act"] is False
    stored = load_file(str(out / "model.safetensors"))
    layer = "model.layers.0.mlp.down_proj"  # [out 64, in 128]
    assert f"{layer}.weight" not in stored and stored[f"{layer}.scales"].dtype == torch.float16
    assert stored[f"{layer}.qweight"].shape == (128 * config["bits"] // 32, 64)
    if "keep8" in recipe:
        assert config["bits"] == 4 and config["dynamic"]["+:^model\\.layers\\.0\\.self_attn\\.q_proj$"]["bits"] == 8
    manifest = read_manifest(out)
    assert manifest["export_format"] == "gptq"
    loaded = load_model(str(out), options)
    in_memory = load_model(str(tiny_llama_dir), options)
    if "gptq" in recipe:  # calibrated: the export's own calibration set, as `compsafe compress` samples it
        from compsafe.compress import CalibrationSpec, build_calibration

        calibration = build_calibration(in_memory.tokenizer, CalibrationSpec(), in_memory.max_length)
        apply_recipe(in_memory.model, recipe, calibration)
    else:
        apply_recipe(in_memory.model, recipe)
    expected = in_memory.model.state_dict()
    worst = 0.0
    for name, tensor in loaded.model.state_dict().items():
        difference = (tensor - expected[name]).abs()
        assert (difference <= expected[name].abs() * FP16_STEP + 1e-7).all(), name  # the fp16 scale, no more
        worst = max(worst, difference.max().item())
    assert worst == pytest.approx(manifest["packing"]["max_abs_weight_difference"], abs=1e-7)
    difference = (logits(loaded.model, loaded.tokenizer) - logits(in_memory.model, in_memory.tokenizer)).abs()
    assert difference.max().item() < 1e-2


def test_gptq_size_on_disk_is_the_accounting(tiny_tokenizer, tmp_path: Path) -> None:
    model = save_tiny_llama(tmp_path / "base", tiny_tokenizer, hidden_size=192, intermediate_size=512)
    options = LoadOptions(device="cpu", dtype="bfloat16")
    dense = None
    for recipe in ("int4-g64", "int8"):
        out = export_variant(str(model), recipe, tmp_path / recipe, options, export_format="gptq")
        manifest = read_manifest(out)
        on_disk = sum(f.stat().st_size for f in out.glob("*.safetensors"))
        accounted = manifest["compression"]["packed_size_bytes"]
        assert abs(on_disk - accounted) <= 0.10 * accounted, (recipe, on_disk, accounted)
        storage = manifest["storage"]  # read from the files: qweight, qzeros, scales, g_idx per layer
        bits = manifest["compression"]["effective_bits_per_weight"]
        assert bits <= storage["effective_bits_per_weight"] <= bits * 1.10
        dense = dense or manifest["compression"]["dense_size_bytes"]
    assert on_disk < 0.6 * dense  # int8 of a bf16 model (with its 16-bit embeddings)


def test_gpt2_conv1d_exports_as_gptq(tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    """A Conv1D's [in, out] weight is packed as gptqmodel packs it (transposed to [out, in]) and comes back."""
    options = LoadOptions(device="cpu", dtype="float32")
    out = export_variant(str(tiny_gpt2_dir), "int8", tmp_path / "gpt2", options, export_format="gptq")
    stored = load_file(str(out / "model.safetensors"))
    assert stored["transformer.h.0.mlp.c_fc.qweight"].shape == (64 * 8 // 32, 256)  # [in * bits / 32, out]
    assert "transformer.h.0.mlp.c_fc.bias" in stored
    loaded = load_model(str(out), options)
    in_memory = load_model(str(tiny_gpt2_dir), options)
    apply_recipe(in_memory.model, "int8")
    expected = in_memory.model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert (tensor - expected[name]).abs().max().item() <= expected[name].abs().max().item() * FP16_STEP, name


def test_gptq_format_needs_a_packable_quantized_variant(tiny_llama_dir: Path, tmp_path: Path) -> None:
    options = LoadOptions(device="cpu", dtype="float32")
    for recipe, message in (("mag-50", "no quantized layer"), ("int3-g32", "2-, 4- and 8-bit"),
                            ("mag-50+keep8=layers.0", "no sparse layout")):
        with pytest.raises(ConfigError, match=message):
            export_variant(str(tiny_llama_dir), recipe, tmp_path / "x", options, export_format="gptq")


def test_gptq_folder_is_a_run_variant(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """`compsafe compress --format gptq` then `compsafe run --variants DIR`: compsafe decodes the folder, the table
    and summary show its size read from the files (qweight, qzeros, scales, g_idx)."""
    from typer.testing import CliRunner

    from compsafe.cli import app

    out = tmp_path / "gptq"
    base = ["--model", str(tiny_llama_dir), "--device", "cpu", "--dtype", "float32"]
    made = CliRunner().invoke(app, ["compress", "--recipe", "int4-g32", "--format", "gptq", "--out", str(out), *base])
    assert made.exit_code == 0, made.output
    args = ["run", *base, "--variants", str(out), "--probes", "mcqa", "--limit", "2", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    stored = summary["models"][f"model:{out}"]["compression"]
    assert stored == read_manifest(out)["storage"] and 4 < stored["effective_bits_per_weight"] < 5.5
