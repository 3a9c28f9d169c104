"""Pre-compressed checkpoints: GGUF at other quantization types loads (dequantized); packed formats that
cannot load here fail in one line naming the format and what it needs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.errors import ModelLoadError
from compsafe.models import LoadOptions, load_model
from compsafe.models.formats import FORMATS, decodes_gptq_here, describe, quantized_load_kwargs
from gguf_writer import write_llama_gguf

CPU32 = LoadOptions(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tiny_gguf_dir(tmp_path_factory, tiny_llama_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("gguf")
    write_llama_gguf(tiny_llama_dir, folder / "tiny-q8_0.gguf", "Q8_0")
    write_llama_gguf(tiny_llama_dir, folder / "tiny-q4_0.gguf", "Q4_0")
    return folder


@pytest.mark.parametrize(
    ("name", "qtype", "tolerance"), [("tiny-q8_0.gguf", "Q8_0", 0.02), ("tiny-q4_0.gguf", "Q4_0", 0.5)]
)
def test_gguf_at_other_quantization_types_loads_dequantized(
    tiny_llama_dir: Path, tiny_gguf_dir: Path, name: str, qtype: str, tolerance: float
) -> None:
    import gguf

    base = load_model(str(tiny_llama_dir), CPU32)
    variant = load_model(str(tiny_gguf_dir / name), CPU32)
    assert variant.meta["gguf_file"] == name
    v_base = base.model.model.layers[1].self_attn.v_proj.weight.detach().numpy()
    kind = gguf.GGMLQuantizationType[qtype]
    expected = gguf.quants.dequantize(gguf.quants.quantize(v_base, kind), kind)
    loaded = variant.model.model.layers[1].self_attn.v_proj.weight.detach().numpy()
    np.testing.assert_array_equal(loaded, expected.astype(np.float32))  # exactly the values the GGUF encodes
    q_error = variant.model.model.layers[0].self_attn.q_proj.weight - base.model.model.layers[0].self_attn.q_proj.weight
    assert q_error.abs().max() < 0.05  # q/k rows un-permuted correctly
    text = "The cat sat on the mat"
    assert variant.tokenizer(text).input_ids == base.tokenizer(text).input_ids
    ids = base.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (variant.model(ids).logits - base.model(ids).logits).abs().max().item()
    assert 0 < diff < tolerance


def test_gguf_variant_runs_against_its_base(tiny_llama_dir: Path, tiny_gguf_dir: Path, tmp_path: Path) -> None:
    gguf_file = tiny_gguf_dir / "tiny-q4_0.gguf"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", str(gguf_file), "--probes", "perplexity"]
    args += ["--limit", "3", "--out", str(tmp_path / "run"), "--device", "cpu", "--dtype", "float32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["comparisons"][f"model:{gguf_file}"]["probes"]["perplexity"]["mean_kl_from_base"] > 0


def fake_quantized(tiny_llama_dir: Path, tmp_path: Path, quantization: dict) -> Path:
    folder = tmp_path / f"q-{quantization['quant_method']}"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = quantization
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("quantization", "expected"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, ["AWQ-packed", "quant_method=awq", "CUDA GPU"]),
        ({"quant_method": "eetq"}, ["EETQ", "CUDA GPU"]),
        ({"quant_method": "fbgemm_fp8"}, ["FBGEMM FP8", "CUDA GPU"]),
    ],
)
def test_packed_formats_fail_in_one_line_naming_format_and_need(
    tiny_llama_dir: Path, tmp_path: Path, quantization: dict, expected: list[str]
) -> None:
    folder = fake_quantized(tiny_llama_dir, tmp_path, quantization)
    with pytest.raises(ModelLoadError) as error:
        load_model(str(folder), LoadOptions(device="cpu"))
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in expected), message
    assert "export a dequantized" in message


@pytest.mark.parametrize("method", ["bitsandbytes", "compressed-tensors", "torchao", "hqq"])
def test_cpu_formats_load_or_name_the_missing_package(tiny_llama_dir: Path, tmp_path: Path, method: str) -> None:
    fmt = FORMATS[method]
    folder = fake_quantized(tiny_llama_dir, tmp_path, {"quant_method": method, "load_in_8bit": True})
    try:
        kwargs = quantized_load_kwargs(folder, torch.device("cpu"))
    except ModelLoadError as error:  # the package is not installed here: the message says which and how
        assert fmt.label in str(error) and f"pip install {fmt.install}" in str(error)
    else:
        assert kwargs == dict(fmt.cpu_kwargs)


def test_cli_exits_2_for_a_gptq_variant(tiny_llama_dir: Path, tmp_path: Path) -> None:
    folder = fake_quantized(tiny_llama_dir, tmp_path, {"quant_method": "gptq", "bits": 4, "group_size": 128})
    if not decodes_gptq_here(folder):
        pytest.skip("gptqmodel and optimum are installed: transformers loads GPTQ folders here")
    args = ["run", "--model", str(folder), "--probes", "perplexity", "--limit", "2", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--variants", ""])
    # compsafe decodes GPTQ folders itself (models.gptq_packing): this one's files hold plain weights, no qweight
    assert result.exit_code == 2 and "GPTQ-packed" in result.output and "Traceback" not in result.output
    assert "no file holds a qweight" in result.output


def test_plain_folders_and_descriptions() -> None:
    assert describe({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}) == (
        "bitsandbytes-quantized (quant_method=bitsandbytes, nf4)"
    )
    assert describe({"quant_method": "newthing"}) == "newthing (quant_method=newthing)"
    assert quantized_load_kwargs(Path("/nonexistent"), torch.device("cpu")) == {}
