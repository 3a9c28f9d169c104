"""summary.json schema: what RunSummary accepts, rejects (one line, exit 2 in every reader) and tolerates."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.summary import SCHEMA_VERSION, SummaryError, load_summary, parse_summary, summary_document

runner = CliRunner()


def minimal() -> dict:
    return {
        "probes": {"refusal": {"outcome": "refusal", "headline_metric": "refusal_rate"}},
        "metrics": {"base": {"refusal": {"refusal_rate": 0.8}}, "int8": {"refusal": {"refusal_rate": 0.7}}},
        "comparisons": {
            "int8": {"probes": {"refusal": {"n": 10, "delta": {"estimate": -0.1, "low": -0.2, "high": 0.0}}}}
        },
    }


def write(tmp_path: Path, text: str, name: str = "run") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(text)
    return folder


def test_a_minimal_summary_reads_with_typed_access() -> None:
    summary = parse_summary(minimal())
    assert summary.schema_version == 0  # written before the schema: read as version 0
    assert summary.variant_labels() == ["int8"]
    assert summary.comparison("int8", "refusal").delta.low == -0.2
    assert summary.config.limit is None and summary.judge.name == "?"


def test_unknown_fields_from_newer_writers_are_kept() -> None:
    data = minimal()
    data["new_section"] = {"x": 1}
    data["comparisons"]["int8"]["probes"]["refusal"]["verdict_rates"] = {"complied": 0.1}
    data["comparisons"]["int8"]["alignment_drift_ratio"] = {
        "vs_mcqa": {"value": 2.0, "status": "ratio", "ci": {"low": 1.0, "high": 4.0}},
        "headline": "vs_mcqa",
        "capability_measure": "mcqa accuracy",
    }
    summary = parse_summary(data)
    assert summary.extra("new_section") == {"x": 1}
    assert summary.comparison("int8", "refusal").lookup("verdict_rates.complied") == 0.1
    drift = summary.drift("int8")
    assert drift.entry().value == 2.0 and drift.entry().extra("ci") == {"low": 1.0, "high": 4.0}
    assert drift.extra("capability_measure") == "mcqa accuracy"
    assert json.loads(summary.to_json())["new_section"] == {"x": 1}


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(comparisons=5), "comparisons"),
        (lambda d: d.update(config=None), "config"),
        (lambda d: d["metrics"]["int8"]["refusal"].update(refusal_rate=math.nan), "metrics.int8.refusal.refusal_rate"),
        (lambda d: d["comparisons"]["int8"]["probes"]["refusal"]["delta"].update(low=math.inf), "delta.low"),
        (lambda d: d["metrics"].pop("base"), "no entry for the base"),
        (lambda d: d.update(metrics=[1, 2]), "metrics"),
        (lambda d: d.update(probes={"refusal": {"outcome": "refusal"}}), "headline_metric"),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer than this compsafe"),
        (lambda d: d["models"].update(int8={"compression": "4 bits"}) if "models" in d else d.update(
            models={"int8": {"compression": "4 bits"}}), "models.int8.compression"),
    ],
)
def test_malformed_summaries_are_rejected_in_one_line(tmp_path: Path, mutate, needle: str) -> None:
    data = minimal()
    mutate(data)
    with pytest.raises(SummaryError, match="not a valid compsafe summary"):
        parse_summary(data)
    folder = write(tmp_path, json.dumps(data))  # json.dumps writes NaN/Infinity, as a buggy writer would
    good = write(tmp_path, json.dumps(minimal()), "good")
    for args in (["gate", str(folder)], ["report", str(folder)], ["compare", str(good), str(folder)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and "Traceback" not in result.output, result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) <= 3
    assert not (folder / "report.html").exists()  # nothing written from a rejected summary


@pytest.mark.parametrize("text", ["", "[1, 2]", '{"metrics": ', "5", '"summary"'])
def test_unreadable_summaries_exit_2(tmp_path: Path, text: str) -> None:
    folder = write(tmp_path, text)
    with pytest.raises(SummaryError.__mro__[1]):  # RunFolderError
        load_summary(folder)
    result = runner.invoke(app, ["gate", str(folder)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_the_writer_nulls_nan_with_a_reason_and_stamps_the_version() -> None:
    data = minimal()
    data["metrics"]["int8"]["refusal"]["by_category"] = {"weapons": math.nan}
    document = summary_document(data)
    assert next(iter(document)) == "schema_version" and document["schema_version"] == SCHEMA_VERSION
    assert document["metrics"]["int8"]["refusal"]["by_category"]["weapons"] is None
    assert "NaN" in document["null_reasons"]["metrics.int8.refusal.by_category.weapons"]
    text = json.dumps(document, allow_nan=False)  # strict JSON
    assert parse_summary(json.loads(text)).null_reasons


def test_the_runner_writes_a_versioned_summary_that_reads_back(tiny_run_dir: Path) -> None:
    raw = json.loads((tiny_run_dir / "summary.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and next(iter(raw)) == "schema_version"
    summary = load_summary(tiny_run_dir)
    assert summary.limit == 4
    assert all(info.dataset.count == 4 and info.dataset.available >= 4 for info in summary.probes.values())
    # the typed document dumps back to exactly what was written (nothing defaulted in)
    assert json.loads(summary.to_json()) == raw
