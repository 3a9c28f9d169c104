"""`compsafe compress --out DIR`: a loadable safetensors folder whose logits equal the in-memory variant's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress import apply_recipe
from compsafe.export import MANIFEST_NAME, export_variant, read_manifest
from compsafe.integrity import state_digest, weights_digest
from compsafe.models import LoadOptions, load_model

runner = CliRunner()
CPU32 = LoadOptions(device="cpu", dtype="float32")
PROMPTS = ["The cat sat on the mat because", "How do I bake bread?"]


def logits(handle) -> torch.Tensor:
    batch = handle.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return handle.model(**batch).logits


@pytest.mark.parametrize(("recipe", "dtype"), [("int4-g32+keep=layers.0", "float32"), ("2:4", "bfloat16")])
def test_export_round_trip_gives_identical_logits(tiny_llama_dir: Path, tmp_path: Path, recipe: str, dtype: str):
    options = LoadOptions(device="cpu", dtype=dtype)
    out = export_variant(str(tiny_llama_dir), recipe, tmp_path / "variant", options, export_format="dense")
    in_memory = load_model(str(tiny_llama_dir), options)
    apply_recipe(in_memory.model, recipe)
    exported = load_model(str(out), options)
    assert exported.dtype == in_memory.dtype == getattr(torch, dtype)
    assert torch.equal(logits(exported), logits(in_memory))
    assert state_digest(exported.model) == state_digest(in_memory.model)
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert (out / "tokenizer.json").is_file() and list(out.glob("*.safetensors"))


def test_manifest_names_recipe_source_and_digests(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = export_variant(str(tiny_llama_dir), "int4-g32+keep8=self_attn", tmp_path / "v", CPU32)
    manifest = read_manifest(out)
    assert manifest["recipe"] == "int4-rtn-g32+keep8=self_attn"
    assert manifest["method_config"]["keep"] == ["self_attn"] and manifest["method_config"]["method"] == "rtn"
    assert manifest["source"]["model"] == str(tiny_llama_dir)
    assert manifest["source"]["weights_digest"] == weights_digest(tiny_llama_dir)
    assert manifest["weights_digest"] == weights_digest(out)
    assert manifest["calibration"] is None  # RTN needs none
    assert manifest["compsafe_version"] and manifest["dtype"] == "float32"
    compression = manifest["compression"]
    assert 4 < compression["effective_bits_per_weight"] < 8.5
    assert {k["name"].split(".")[-1] for k in compression["kept_layers"]} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert "layers" not in compression


def test_cli_compress_writes_folder_and_bad_recipe_exits_2(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["compress", "--model", str(tiny_llama_dir), "--recipe", "mag-50", "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / MANIFEST_NAME).is_file() and "wrote" in result.output
    again = runner.invoke(app, args)  # an existing export is not overwritten silently
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    bad = runner.invoke(app, ["compress", "--model", str(tiny_llama_dir), "--recipe", "int5-g32", "--out", str(out)])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error:") and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) <= 3  # one message (rich may wrap it)
    unmatched = runner.invoke(
        app,
        ["compress", "--model", str(tiny_llama_dir), "--recipe", "int8+keep=layers.7", "--out", str(tmp_path / "x")],
    )
    assert unmatched.exit_code == 2 and "layers.7" in unmatched.output
    assert not (tmp_path / "x").exists()


def test_exported_folder_is_a_run_variant_equal_to_the_recipe(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = export_variant(str(tiny_llama_dir), "int4-g32", tmp_path / "exported", CPU32)
    args = ["run", "--model", str(tiny_llama_dir), "--variants", f"int4-g32,{out}", "--probes", "perplexity,mcqa"]
    args += ["--limit", "4", "--batch-size", "4", "--out", str(tmp_path / "run"), "--device", "cpu"]
    args += ["--dtype", "float32"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    label = f"model:{out}"
    assert summary["models"][label]["export"]["recipe"] == "int4-rtn-g32"
    assert summary["models"][label]["export"]["source_weights_digest"] == weights_digest(tiny_llama_dir)
    assert summary["metrics"][label] == summary["metrics"]["int4-rtn-g32"]  # the same model, measured twice
    stored = summary["models"][label]["compression"]  # read from the packed files, as the export recorded it
    assert stored == read_manifest(out)["storage"] and 4 < stored["effective_bits_per_weight"] < 5.5
    assert abs(stored["packed_size_bytes"] - sum(f.stat().st_size for f in out.glob("*.safetensors"))) < 0.1 * (
        stored["packed_size_bytes"]
    )
    assert f"{stored['packed_size_bytes'] / 1e6:.1f}" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("out", [".", "", ".."])
def test_compress_never_replaces_the_folder_it_runs_in(
    tiny_llama_dir: Path, tmp_path: Path, monkeypatch, out: str
) -> None:
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    (here / "keep.txt").write_text("mine", encoding="utf-8")
    monkeypatch.chdir(here)
    result = CliRunner().invoke(app, ["compress", "--recipe", "int8", "--model", str(tiny_llama_dir), "--out", out])
    assert result.exit_code == 2 and "current folder" in result.output
    assert sorted(p.name for p in here.iterdir()) == ["keep.txt"]
