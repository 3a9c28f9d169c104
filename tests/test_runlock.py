"""One writer per run folder and store, compute time across invocations, NaN weights, and clean failed writes."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.errors import RunFolderError
from compsafe.runlock import RunClock, run_locks


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with run_locks(tmp_path / "out", tmp_path / "out" / "store.sqlite"):
        with pytest.raises(RunFolderError, match="in use by a running compsafe"), run_locks(
            tmp_path / "out", tmp_path / "other.sqlite"
        ):
            pass
        with pytest.raises(RunFolderError, match="results store"), run_locks(
            tmp_path / "out2", tmp_path / "out" / "store.sqlite"
        ):
            pass
    with run_locks(tmp_path / "out", tmp_path / "out" / "store.sqlite"):  # released on exit
        pass


def test_a_failed_run_leaves_no_folder_or_locks_behind(tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    store = tmp_path / "s" / "x.db"
    result = CliRunner().invoke(app, ["run", "--probes", "nope", "--out", str(out), "--store", str(store)])
    assert result.exit_code == 2 and "unknown probe" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the folders made for the locks are gone again


def test_a_failed_run_keeps_what_was_there_and_removes_only_its_locks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RuntimeError), run_locks(out, out / "store.sqlite"):
        raise RuntimeError("late failure")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with run_locks(out, out / "store.sqlite"):  # a finished run keeps its locks (they mark the folder as a run)
        pass
    assert (out / ".compsafe.lock").exists()


def test_a_refused_second_writer_does_not_remove_the_holders_lock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_locks(out, out / "store.sqlite"):
        with pytest.raises(RunFolderError), run_locks(out, out / "store.sqlite"):
            pass
        assert (out / ".compsafe.lock").exists() and (out / "store.sqlite.lock").exists()


def test_clock_adds_up_invocations(tmp_path: Path) -> None:
    first = RunClock(tmp_path)
    first.earlier_seconds = 0.0
    first.started -= 10  # pretend it ran 10 s
    first.save(force=True)
    second = RunClock(tmp_path)
    assert second.invocations == 2 and second.earlier_seconds >= 10
    assert second.to_dict()["all_invocations"] >= 10 > second.to_dict()["this_invocation"]


def test_run_reports_time_across_invocations(tiny_llama_dir: Path, tmp_path: Path) -> None:
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "", "--probes", "mcqa", "--limit", "2"]
    args += ["--device", "cpu", "--out", str(tmp_path / "run")]
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    compute = json.loads((tmp_path / "run" / "summary.json").read_text())["compute_seconds"]
    assert compute["invocations"] == 2 and compute["all_invocations"] >= compute["this_invocation"]


def _poison(folder: Path) -> None:
    path = next(folder.glob("*.safetensors"))
    tensors = load_file(path)
    name = next(n for n in tensors if n.endswith("mlp.down_proj.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, path, metadata={"format": "pt"})


def test_nan_folder_variant_is_broken_and_the_run_goes_on(tiny_llama_dir: Path, tiny_tokenizer, tmp_path) -> None:
    from conftest import save_tiny_llama

    variant = save_tiny_llama(tmp_path / "nan-variant", tiny_tokenizer)
    _poison(variant)
    args = ["run", "--model", str(tiny_llama_dir), "--variants", f"int8,{variant}", "--probes", "perplexity"]
    args += ["--limit", "2", "--device", "cpu", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    label = f"model:{variant}"
    assert "NaN/inf" in summary["models"][label]["broken"]
    assert label not in summary["metrics"] and "int8-rtn" in summary["comparisons"]
    assert "BROKEN" in result.output
    report_md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert any(label in line and "BROKEN" in line for line in report_md.splitlines())
    assert "BROKEN" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_nan_base_is_an_error_before_anything_runs(tiny_tokenizer, tmp_path: Path) -> None:
    from conftest import save_tiny_llama

    base = save_tiny_llama(tmp_path / "nan-base", tiny_tokenizer)
    _poison(base)
    args = ["run", "--model", str(base), "--variants", "int8", "--probes", "mcqa", "--limit", "2"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "NaN/inf" in result.output, result.output
    assert not (tmp_path / "run" / "store.sqlite").exists()


def test_a_full_disk_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    from compsafe.runfolder import atomic_write

    real_write = Path.write_text

    def full(self, *args, **kwargs):
        real_write(self, "partial", encoding="utf-8")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(RunFolderError, match="No space left"):
        atomic_write(tmp_path / "summary.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_nonfinite_check_sees_every_floating_parameter() -> None:
    from compsafe.compress import nonfinite_parameters

    layer = torch.nn.Linear(2, 2)
    assert nonfinite_parameters(layer) == []
    with torch.no_grad():
        layer.bias[0] = float("inf")
    assert nonfinite_parameters(layer) == ["bias"]


def test_an_out_past_the_os_name_limit_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / ("a" * 5000)
    result = CliRunner().invoke(app, ["run", "--probes", "mcqa", "--limit", "1", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit | None) and "Traceback" not in result.output
    assert "cannot create the lock file" in result.output
