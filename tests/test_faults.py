"""Faults: a variant that diverges to NaN is reported as broken (not crashed on, not probed); an output folder
that cannot be written fails in one line; a full disk during a commit leaves the store consistent."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress.base import CompressionConfig, CompressionReport
from compsafe.compress.registry import METHODS
from compsafe.errors import StoreError
from compsafe.store import ResultStore
from conftest import tiny_mcqa_run_args


@dataclass(frozen=True)
class NaNConfig(CompressionConfig):
    method: ClassVar[str] = "test-nan"

    @property
    def recipe(self) -> str:
        return "test-nan"


class NaNMethod:
    name: ClassVar[str] = "test-nan"
    grammar: ClassVar[str] = "test-nan"
    examples: ClassVar[tuple[str, ...]] = ("test-nan",)

    def parse(self, recipe: str) -> NaNConfig | None:
        return NaNConfig() if recipe == "test-nan" else None

    def apply(self, model: torch.nn.Module, config: CompressionConfig) -> CompressionReport:
        with torch.no_grad():
            model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
        return CompressionReport(recipe=config.recipe, method=self.name)


@pytest.fixture()
def nan_method():
    METHODS._entries["test-nan"] = NaNMethod()
    yield
    del METHODS._entries["test-nan"]


def test_nan_variant_is_reported_broken(nan_method, tiny_llama_dir: Path, tmp_path: Path) -> None:
    args = [
        "run",
        "--model",
        str(tiny_llama_dir),
        "--variants",
        "test-nan,int8",
        "--probes",
        "mcqa,perplexity",
        "--limit",
        "3",
        "--out",
        str(tmp_path / "run"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "BROKEN" in result.output and "down_proj" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "NaN/inf" in summary["models"]["test-nan"]["broken"]
    assert "test-nan" not in summary["metrics"] and "int8-rtn" in summary["comparisons"]  # the next variant ran
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "not rebuilt" in again.output


def test_unwritable_output_folder_is_one_line(tiny_llama_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, tiny_mcqa_run_args(tiny_llama_dir, blocker / "run"))
    assert result.exit_code == 2, result.output
    assert "writable" in result.output and "Traceback" not in result.output


def test_failed_commit_rolls_back_and_keeps_earlier_records(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store.sqlite")
    store.put_records("k", [("a", "d", {"item_id": "a"})])

    class FullDisk:
        """A connection whose writes fail like SQLITE_FULL, mid-transaction."""

        def __init__(self, real: sqlite3.Connection) -> None:
            self.real = real

        def __enter__(self):
            return self.real.__enter__()

        def __exit__(self, *exc):
            return self.real.__exit__(*exc)

        def executemany(self, sql, rows):
            self.real.execute("INSERT INTO records VALUES ('k', 'b', 'd', '{}')")  # half of the batch written
            raise sqlite3.OperationalError("database or disk is full")

    real = store.connection
    store.connection = FullDisk(real)  # type: ignore[assignment]
    with pytest.raises(StoreError, match="free disk space"):
        store.put_records("k", [("b", "d", {"item_id": "b"}), ("c", "d", {"item_id": "c"})])
    store.connection = real
    assert set(store.records("k")) == {("a", "d")}  # the failed batch left nothing behind
