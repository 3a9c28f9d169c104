"""The `compsafe` command on tiny models: end to end, reuse of finished work, resume, and one-line errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from conftest import save_tiny_llama, tiny_mcqa_run_args

runner = CliRunner()
PROBES = "refusal,over_refusal,perplexity,mcqa"


def run_cli(*args: str):
    return runner.invoke(app, ["run", *args])


def base_args(model: Path, out: Path, variants: str = "int8,int4-g32,mag-50,2:4") -> list[str]:
    return [
        "--model",
        str(model),
        "--variants",
        variants,
        "--probes",
        PROBES,
        "--limit",
        "6",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]


def comparable(summary: dict) -> dict:
    """The parts of a summary that must not depend on timing or on where records came from."""
    return {
        "metrics": summary["metrics"],
        "comparisons": summary["comparisons"],
        "digests": {k: v.get("weights_digest") for k, v in summary["models"].items()},
    }


def test_run_end_to_end_writes_records_and_summary(tiny_llama_dir: Path, tmp_path: Path) -> None:
    result = run_cli(*base_args(tiny_llama_dir, tmp_path / "run"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["models"]) == {"base", "int8-rtn", "int4-rtn-g32", "mag-50", "2:4"}
    for label in ("int8-rtn", "int4-rtn-g32", "mag-50", "2:4"):
        comparison = summary["comparisons"][label]
        assert set(comparison["probes"]) == set(PROBES.split(","))
        refusal = comparison["probes"]["refusal"]
        assert refusal["n"] == 6 and {"delta", "mcnemar", "refused_by_base_answered_by_variant"} <= set(refusal)
        assert comparison["probes"]["perplexity"]["mean_kl_from_base"] >= 0
        assert "headline" in comparison["alignment_drift_ratio"]
        assert (
            summary["models"][label]["weights_digest"] != summary["models"]["int8-rtn"]["weights_digest"]
            or label == "int8-rtn"
        )
    assert summary["models"]["mag-50"]["compression"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    for label in ("base", "int8-rtn", "2_4"):
        for probe in PROBES.split(","):
            lines = (tmp_path / "run" / "records" / label / f"{probe}.jsonl").read_text().splitlines()
            assert len(lines) == 6
    assert "drift ratio" in result.output


def test_second_run_rebuilds_nothing_and_reuses_base(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_cli(*base_args(tiny_llama_dir, out, "int8,2:4"))
    assert first.exit_code == 0, first.output
    rows_before = sqlite3.connect(out / "store.sqlite").execute("SELECT COUNT(*) FROM records").fetchone()[0]
    second = run_cli(*base_args(tiny_llama_dir, out, "int8,2:4"))
    assert second.exit_code == 0, second.output
    assert second.output.count("not rebuilt") == 2
    assert "building" not in second.output
    rows_after = sqlite3.connect(out / "store.sqlite").execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert rows_before == rows_after == 3 * 24
    summary_one = json.loads((out / "summary.json").read_text())
    third = run_cli(*base_args(tiny_llama_dir, out, "int8,mag-50"))  # base reused, only mag-50 computed
    assert third.exit_code == 0, third.output
    assert "building mag-50" in third.output and "building int8" not in third.output
    assert "base · refusal" not in third.output
    assert summary_one["metrics"]["base"] == json.loads((out / "summary.json").read_text())["metrics"]["base"]


def test_interrupted_run_resumes_to_the_same_summary(tiny_llama_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from compsafe.probes.refusal import GeneratedRefusalProbe

    original = GeneratedRefusalProbe.evaluate
    calls = {"n": 0}

    def dying_evaluate(self, items, context):
        for batch in original(self, items, context):
            yield batch
            calls["n"] += 1
            if calls["n"] == 3:  # killed in the middle of the first variant's refusal probe
                raise KeyboardInterrupt

    args = base_args(tiny_llama_dir, tmp_path / "resumed", "int8,mag-50") + ["--limit", "10", "--batch-size", "2"]
    monkeypatch.setattr(GeneratedRefusalProbe, "evaluate", dying_evaluate)
    interrupted = run_cli(*args)
    assert interrupted.exit_code != 0
    assert not (tmp_path / "resumed" / "summary.json").exists()
    monkeypatch.setattr(GeneratedRefusalProbe, "evaluate", original)
    resumed = run_cli(*args)
    assert resumed.exit_code == 0, resumed.output
    fresh = run_cli(
        *(base_args(tiny_llama_dir, tmp_path / "fresh", "int8,mag-50") + ["--limit", "10", "--batch-size", "2"])
    )
    assert fresh.exit_code == 0, fresh.output
    load = lambda name: json.loads((tmp_path / name / "summary.json").read_text())  # noqa: E731
    assert comparable(load("resumed")) == comparable(load("fresh"))
    store = sqlite3.connect(tmp_path / "resumed" / "store.sqlite")
    count, distinct = store.execute("SELECT COUNT(*), COUNT(DISTINCT key || item_id) FROM records").fetchone()
    assert count == distinct == 3 * 4 * 10


def test_user_supplied_model_is_a_variant(tiny_llama_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:
    other = save_tiny_llama(tmp_path / "other", tiny_tokenizer, seed=7)
    result = run_cli(*base_args(tiny_llama_dir, tmp_path / "run", f"int8,{other}"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    label = f"model:{other}"
    assert summary["models"][label]["kind"] == "model"
    assert summary["comparisons"][label]["probes"]["perplexity"]["mean_kl_from_base"] > 1e-3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "/no/such/folder"], "no model folder"),
        (["--variants", "int5-g7"], "unknown recipe"),
        (["--probes", "refusl"], "Did you mean 'refusal'"),
        (["--limit", "0"], "--limit"),
        (["--judge", "nope"], "unknown refusal judge"),
    ],
)
def test_user_errors_are_one_line_exit_2(tiny_llama_dir: Path, tmp_path: Path, args, needle) -> None:
    full = ["--model", str(tiny_llama_dir), "--out", str(tmp_path / "r"), "--limit", "2", *args]
    result = run_cli(*full)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if line.strip()]) <= 3  # one message, wrapped


def test_malformed_data_file_and_pickle_model(tiny_llama_dir: Path, tiny_tokenizer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{not json\n')
    result = run_cli("--model", str(tiny_llama_dir), "--probes", f"refusal:{bad}", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"  # transformers 5 only writes safetensors: write the pickle ourselves
    shutil.copytree(tiny_llama_dir, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    result = runner.invoke(app, tiny_mcqa_run_args(pickled, tmp_path / "p"))
    assert result.exit_code == 2 and "--allow-pickle" in result.output
    result = runner.invoke(app, tiny_mcqa_run_args(pickled, tmp_path / "p", "--allow-pickle"))
    assert result.exit_code == 0, result.output


def test_listing_commands() -> None:
    variants = runner.invoke(app, ["variants"])
    assert variants.exit_code == 0 and "int4-g128" in variants.output and "2:4" in variants.output
    probes = runner.invoke(app, ["probes"])
    assert probes.exit_code == 0
    for name in PROBES.split(","):
        assert name in probes.output
