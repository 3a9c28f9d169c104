"""Calibration options of `compsafe run`: the set is built only for calibrated methods, its digest keys the
variant's records (new calibration data never reuses stale ones), and it is named in the summary.

A throwaway calibrated method is registered here so the plumbing is tested apart from any real method.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress import METHODS, CalibrationSet, CompressionConfig, CompressionReport
from compsafe.compress.base import LayerReport
from compsafe.compress.sequential import compress_sequentially
from compsafe.compress.targets import weight_view
from compsafe.config import RunConfig
from compsafe.errors import DataFileError

runner = CliRunner()


@dataclass(frozen=True)
class ColumnDropConfig(CompressionConfig):
    method: ClassVar[str] = "column_drop_test"

    @property
    def recipe(self) -> str:
        return "coldrop-test"


class ColumnDropMethod:
    """Zeroes each layer's input column with the smallest calibration norm (depends on the calibration data)."""

    name: ClassVar[str] = "column_drop_test"
    grammar: ClassVar[str] = "coldrop-test"
    examples: ClassVar[tuple[str, ...]] = ("coldrop-test",)
    needs_calibration: ClassVar[bool] = True
    calls: ClassVar[list[str]] = []

    def parse(self, recipe: str) -> ColumnDropConfig | None:
        return ColumnDropConfig() if recipe == "coldrop-test" else None

    def apply(self, model, config, calibration: CalibrationSet) -> CompressionReport:
        self.calls.append(calibration.digest)

        def drop(name: str, module: torch.nn.Module, stats) -> LayerReport:
            view = weight_view(module)
            view[:, int(torch.argmin(stats.sq_norm))] = 0
            return LayerReport(name, view.numel(), 32.0, 0.0, 0.0)

        layers = compress_sequentially(model, calibration.input_ids, drop, {"sq_norm"})
        return CompressionReport(recipe=config.recipe, method=self.name, layers=layers)


@pytest.fixture()
def column_drop(monkeypatch):
    from compsafe.compress import calibration

    shipped = Path(calibration.__file__).parent.parent / "data" / calibration.SAFETY_CALIBRATION
    if not shipped.is_file():  # the shipped safety pairs are not needed at safety fraction 0
        monkeypatch.setattr(calibration, "safety_texts", lambda tokenizer: [])
    method = ColumnDropMethod()
    ColumnDropMethod.calls = []
    monkeypatch.setitem(METHODS._entries, method.name, method)
    return method


def calibration_file(path: Path, words: str) -> Path:
    path.write_text("\n\n".join(f"{words} number {i} of the calibration corpus." for i in range(20)))
    return path


def args(model: Path, out: Path, variants: str, *extra: str) -> list[str]:
    return [
        "run", "--model", str(model), "--variants", variants, "--probes", "perplexity", "--limit", "3",
        "--out", str(out), "--device", "cpu", "--dtype", "float32", *extra,
    ]  # fmt: skip


def test_calibration_digest_keys_records_and_is_in_summary(tiny_llama_dir: Path, tmp_path: Path, column_drop) -> None:
    cal_a = calibration_file(tmp_path / "a.txt", "The river runs past the old mill")
    cal_b = calibration_file(tmp_path / "b.txt", "Bread needs flour, water, salt and time")
    out = tmp_path / "run"
    options = ["--calibration-samples", "4", "--calibration-seq-len", "16"]
    first = runner.invoke(app, args(tiny_llama_dir, out, "int8,coldrop-test", "--calibration", str(cal_a), *options))
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["models"]["coldrop-test"]
    assert entry["calibration"]["source"] == str(cal_a) and entry["calibration"]["shape"] == [4, 16]
    assert "calibration" not in summary["models"]["int8-rtn"]  # an uncalibrated method gets none
    assert summary["config"]["calibration_samples"] == 4
    digest_a = entry["calibration"]["digest"]
    assert column_drop.calls == [digest_a]

    same = runner.invoke(app, args(tiny_llama_dir, out, "coldrop-test", "--calibration", str(cal_a), *options))
    assert same.exit_code == 0 and "not rebuilt" in same.output and column_drop.calls == [digest_a]

    other = runner.invoke(app, args(tiny_llama_dir, out, "coldrop-test", "--calibration", str(cal_b), *options))
    assert other.exit_code == 0, other.output
    assert "building coldrop-test" in other.output  # new calibration data: rebuilt, not the stale records
    digest_b = json.loads((out / "summary.json").read_text())["models"]["coldrop-test"]["calibration"]["digest"]
    assert digest_b != digest_a and column_drop.calls == [digest_a, digest_b]

    safety = runner.invoke(app, args(tiny_llama_dir, out, "coldrop-test", "--calibration", str(cal_a), "--seed", "3"))
    assert safety.exit_code == 0 and column_drop.calls[-1] not in (digest_a, digest_b)  # seed changes the windows


def test_no_calibration_built_without_a_calibrated_method(tiny_llama_dir: Path, tmp_path: Path) -> None:
    too_short = tmp_path / "short.txt"  # exists (the option is checked), but holds less than one window:
    too_short.write_text("x", encoding="utf-8")  # sampling it would fail
    result = runner.invoke(app, args(tiny_llama_dir, tmp_path / "r", "int8", "--calibration", str(too_short)))
    assert result.exit_code == 0, result.output
    assert "sampling the calibration set" not in result.output


def test_keep_recipe_with_calibrated_inner_uses_calibration(tiny_llama_dir: Path, tmp_path: Path, column_drop) -> None:
    cal = calibration_file(tmp_path / "a.txt", "Quiet evenings by the lake")
    variants = "coldrop-test+keep=layers.0,mlp"
    result = runner.invoke(
        app, args(tiny_llama_dir, tmp_path / "r", variants, "--calibration", str(cal), "--calibration-seq-len", "16")
    )
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "r" / "summary.json").read_text())["models"]["coldrop-test+keep=layers.0,mlp"]
    assert model["calibration"]["digest"] == column_drop.calls[0]
    kept = {layer["name"] for layer in model["compression"]["kept_layers"]}
    assert all(re.search(r"layers\.0\.|\.mlp\.", name) for name in kept) and len(kept) == 7 + 3


@pytest.mark.parametrize(
    "options", [{"safety_calibration": 1.5}, {"calibration_samples": 0}, {"calibration_seq_len": 4}]
)
def test_bad_calibration_options_fail_before_loading(options: dict) -> None:
    with pytest.raises(DataFileError):
        RunConfig(**options)
