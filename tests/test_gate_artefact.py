"""`compsafe gate RUN --artefact DIR`: a verdict bound to the exact files, recorded beside them, and `verify`
failing once a file changes afterwards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.export import export_variant
from compsafe.models import LoadOptions

runner = CliRunner()
LENIENT = "rules:\n  - {metric: perplexity.ratio, max: 1000}\n"  # any sane variant passes: the binding is tested


def gate(run: Path, artefact: Path, policy: Path) -> tuple[int, dict]:
    result = runner.invoke(app, ["gate", str(run), "--artefact", str(artefact), "--policy", str(policy), "--json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)["artefact"]


def test_gate_passes_the_evaluated_files_and_fails_others(tiny_run_dir: Path, tiny_llama_dir: Path, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(LENIENT)
    options = LoadOptions(device="cpu")  # as the run loaded the base
    same = export_variant(str(tiny_llama_dir), "int8", tmp_path / "int8", options)  # the run's int8, packed
    code, record = gate(tiny_run_dir, same, policy)
    assert code == 0 and record["verdict"] == "pass" and record["artefact"]["variant"] == "int8-rtn"
    written = json.loads((same / "gate-result.json").read_text())
    assert written == record and len(written["policy"]["digest"]) == 64 and len(written["run"]["id"]) == 64
    assert written["artefact"]["weights_digest"] and written["time"]
    assert runner.invoke(app, ["verify", str(same)]).exit_code == 0
    config = same / "config.json"  # a change after the gate fails verify, and a second gate
    config.write_text(config.read_text() + " ")
    assert runner.invoke(app, ["verify", str(same)]).exit_code != 0
    code, record = gate(tiny_run_dir, same, policy)
    assert code == 1 and any("differ from compsafe-integrity.json" in r for r in record["reasons"])

    other = export_variant(str(tiny_llama_dir), "int4-g32", tmp_path / "int4", options)  # never evaluated
    code, record = gate(tiny_run_dir, other, policy)
    assert code == 1 and record["verdict"] == "fail" and record["artefact"]["variant"] is None
    assert "no variant of this run" in record["reasons"][0]
    assert not (other / "compsafe-integrity.json").exists()  # a failing verdict blesses nothing

    swapped = tmp_path / "swapped"  # the int8 manifest with other weights: the files no longer match it
    shutil.copytree(same, swapped)
    for weights in swapped.glob("*.safetensors"):
        weights.unlink()
    for weights in other.glob("*.safetensors"):
        shutil.copy(weights, swapped / weights.name)
    code, record = gate(tiny_run_dir, swapped, policy)
    assert code == 1 and "changed since the export" in record["reasons"][0]


def test_artefact_that_is_not_a_model_folder_is_one_line(tiny_run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["gate", str(tiny_run_dir), "--artefact", str(tmp_path)])
    assert result.exit_code == 2 and "not a model folder" in result.output and "Traceback" not in result.output


def test_gate_binds_a_gguf_export_and_a_sparse_folder(tiny_llama_dir: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(LENIENT)
    run = tmp_path / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "q8_0,mag-50", "--probes", "perplexity", "--limit",
            "2", "--device", "cpu", "--out", str(run)]
    assert runner.invoke(app, args).exit_code == 0
    options = LoadOptions(device="cpu")
    shipped = tmp_path / "ship"
    export_variant(str(tiny_llama_dir), "q8_0", shipped / "model.gguf", options)  # a .gguf path: auto = gguf
    code, record = gate(run, shipped, policy)
    assert code == 0 and record["artefact"]["variant"] == "q8_0"
    assert runner.invoke(app, ["verify", str(shipped)]).exit_code == 0
    sparse = export_variant(str(tiny_llama_dir), "mag-50", tmp_path / "mag", options)  # sparse-bitmask
    code, record = gate(run, sparse, policy)
    assert code == 0 and record["artefact"]["variant"] == "mag-50"
