"""`compsafe compress --recipe q4_0 --format gguf --out model.gguf`: a llama.cpp GGUF that holds exactly the
evaluated weights, loads as a variant and gives the in-memory variant's logits."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
import torch
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress import apply_recipe
from compsafe.errors import ConfigError
from compsafe.export import export_variant, read_manifest
from compsafe.integrity import weights_digest
from compsafe.models import LoadOptions, load_model
from compsafe.models.storage import folder_storage
from conftest import save_tiny_llama
from gguf_writer import write_llama_gguf

F32 = LoadOptions(device="cpu", dtype="float32")
PROMPT = ["The cat sat on the mat because", "How do I bake bread?"]


def logits(handle, tokenizer) -> torch.Tensor:
    batch = tokenizer(PROMPT, return_tensors="pt", padding=True)
    with torch.no_grad():
        return handle.model(**batch).logits


@pytest.mark.parametrize(("recipe", "ggml_type", "tie", "dtype"),
                         [("q4_0", "Q4_0", True, "bfloat16"), ("q8_0", "Q8_0", False, "float32")])
def test_gguf_export_from_a_folder_gives_the_variant_logits(tiny_tokenizer, tmp_path: Path, recipe: str,
                                                            ggml_type: str, tie: bool, dtype: str) -> None:
    base = save_tiny_llama(tmp_path / "base", tiny_tokenizer, tie_word_embeddings=tie)
    options = LoadOptions(device="cpu", dtype=dtype)
    out = export_variant(str(base), recipe, tmp_path / "model.gguf", options, export_format="gguf")
    reader = gguf.GGUFReader(str(out))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == ggml_type and types["blk.1.ffn_down.weight"] == ggml_type
    assert types["token_embd.weight"] == ("BF16" if dtype == "bfloat16" else "F32")  # at the model's dtype
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert ("output.weight" in types) is not tie
    manifest = read_manifest(out)
    assert manifest["export_format"] == "gguf" and manifest["weights_digest"] == weights_digest(out)
    assert manifest["storage"]["effective_bits_per_weight"] == pytest.approx(4.5 if recipe == "q4_0" else 8.5)
    in_memory = load_model(str(base), options)
    apply_recipe(in_memory.model, recipe)
    loaded = load_model(str(out), options)  # what --variants model.gguf loads (bf16: the same one rounding)
    assert torch.equal(logits(loaded, in_memory.tokenizer), logits(in_memory, in_memory.tokenizer))
    assert loaded.tokenizer(PROMPT[0])["input_ids"] == in_memory.tokenizer(PROMPT[0])["input_ids"]
    accounted = manifest["compression"]["packed_size_bytes"]
    assert abs(manifest["storage"]["packed_size_bytes"] - accounted) <= 0.10 * accounted


def test_gguf_export_from_a_gguf_base_keeps_its_metadata(tiny_llama_dir: Path, tmp_path: Path) -> None:
    source = write_llama_gguf(tiny_llama_dir, tmp_path / "base.gguf", "F32")
    out = export_variant(str(source), "q8_0", tmp_path / "q8.gguf", F32, export_format="auto")  # .gguf: auto = gguf
    fields = gguf.GGUFReader(str(out)).fields
    assert fields["general.name"].contents() == "tiny-llama"
    assert fields["general.file_type"].contents() == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    base_fields = gguf.GGUFReader(str(source)).fields
    assert fields["tokenizer.ggml.merges"].contents() == base_fields["tokenizer.ggml.merges"].contents()
    in_memory = load_model(str(source), F32)
    apply_recipe(in_memory.model, "q8_0")
    loaded = load_model(str(out), F32)
    assert torch.equal(logits(loaded, in_memory.tokenizer), logits(in_memory, in_memory.tokenizer))


def test_gguf_errors_are_one_line(tiny_llama_dir: Path, tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="q4_0 or q8_0"):
        export_variant(str(tiny_llama_dir), "int4-g32", tmp_path / "a.gguf", F32, export_format="gguf")
    with pytest.raises(ConfigError, match="llama-architecture"):
        export_variant(str(tiny_gpt2_dir), "q8_0", tmp_path / "b.gguf", F32, export_format="gguf")
    with pytest.raises(ConfigError, match=r"\.gguf"):
        export_variant(str(tiny_llama_dir), "q8_0", tmp_path / "c", F32, export_format="gguf")
    result = CliRunner().invoke(app, ["compress", "--model", str(tiny_llama_dir), "--recipe", "q4_0", "--format",
                                      "gguf", "--out", str(tmp_path / "d.gguf"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert folder_storage(tmp_path / "d.gguf")["effective_bits_per_weight"] == pytest.approx(4.5)
    packed = export_variant(str(tiny_llama_dir), "q4_0", tmp_path / "ct", F32)  # a folder: compressed-tensors
    assert read_manifest(packed)["export_format"] == "compressed-tensors"
