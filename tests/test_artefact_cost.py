"""`compsafe run --cost`: each model file's load time, peak memory and tokens/s, measured in a fresh process and
shown beside its safety and perplexity changes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.export import export_variant
from compsafe.models import LoadOptions
from compsafe.models.cost import NEW_TOKENS, artefact_cost

runner = CliRunner()


def test_run_measures_the_cost_of_base_and_exported_folder(tiny_llama_dir: Path, tmp_path: Path) -> None:
    folder = export_variant(str(tiny_llama_dir), "int4-g32", tmp_path / "ct", LoadOptions(device="cpu"))
    args = ["run", "--model", str(tiny_llama_dir), "--variants", str(folder), "--probes", "perplexity,refusal"]
    args += ["--limit", "3", "--max-new-tokens", "4", "--device", "cpu", "--out", str(tmp_path / "run"), "--cost"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for label in ("base", f"model:{folder}"):
        cost = summary["models"][label]["cost"]
        assert cost["load_seconds"] > 0 and cost["tokens_per_second"] > 0 and cost["new_tokens"] == NEW_TOKENS
        assert cost["peak_rss_mb"] >= cost["baseline_rss_mb"] > 0 and cost["device"] == "cpu"
    assert "costs to run" in result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## What each artefact costs to run" in report and "tok/s" in report


def test_an_unloadable_artefact_is_an_error_entry_not_a_crash(tmp_path: Path) -> None:
    cost = artefact_cost(tmp_path / "missing")
    assert set(cost) == {"error"} and "no model folder" in cost["error"]


def test_run_measures_recipe_variants_through_the_files_auto_writes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    args = ["run", "--model", str(tiny_llama_dir), "--probes", "perplexity", "--limit", "2", "--device", "cpu",
            "--store", str(tmp_path / "store.sqlite")]
    first = runner.invoke(app, [*args, "--variants", "2:4", "--out", str(tmp_path / "first")])
    assert first.exit_code == 0, first.output
    # 2:4's records are complete (rebuilt only to write and measure its files); q4_0 is built, probed, measured
    result = runner.invoke(app, [*args, "--variants", "q4_0,2:4", "--cost", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for label, chosen in {"q4_0": "gguf", "2:4": "sparse-24-bitmask"}.items():
        cost = summary["models"][label]["cost"]
        assert cost["artefact_format"] == chosen and cost["artefact_bytes"] > 0
        assert cost["load_seconds"] > 0 and cost["tokens_per_second"] > 0 and cost["new_tokens"] == NEW_TOKENS
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| q4_0 |" in report and "| 2:4 |" in report
