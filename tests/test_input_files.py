"""User files compsafe reads: item sets, calibration text, stores, manifests, folders under verify."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from compsafe.errors import DataFileError, ManifestError, ModelLoadError, StoreError


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"prompt": {"a": 1}}\n', "not text"),
        ('{"prompt": 5}\n', "not text"),
        ('{"prompt": false}\n', "not text"),
        ('{"prompt": NaN}\n', "NaN"),
        ('{"prompt": "   "}\n', "whitespace"),
        ('{"prompt": "\\ud800"}\n', "surrogate"),
        ('{"prompt": "x", "n": ' + "1" * 5000 + "}\n", "digits"),
    ],
)
def test_item_files_refuse_non_text_prompts(tmp_path: Path, content: str, needle: str) -> None:
    from compsafe.probes import build_probe

    path = tmp_path / "items.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=needle):
        build_probe(f"refusal:{path}")


def test_item_files_refuse_header_only_csv_nul_bytes_and_overlong_prompts(tmp_path: Path, monkeypatch) -> None:
    from compsafe.probes import build_probe

    header = tmp_path / "items.csv"
    header.write_text("prompt,category\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="no items"):
        build_probe(f"refusal:{header}")
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"prompt\nab\x00c\n")
    with pytest.raises(DataFileError, match="NUL"):
        build_probe(f"refusal:{nul}")
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"prompt": "word " * 30_000}) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="COMPSAFE_MAX_ITEM_CHARS"):
        build_probe(f"refusal:{long}")
    monkeypatch.setenv("COMPSAFE_MAX_ITEM_CHARS", "200000")
    assert len(build_probe(f"refusal:{long}").items) == 1


def test_mcqa_answers_must_be_plain_indices(tmp_path: Path) -> None:
    from compsafe.probes import build_probe

    for answer in ('"١"', "true", "1.5"):
        path = tmp_path / "q.jsonl"
        path.write_text('{"question": "q", "choices": ["a", "b"], "answer": ' + answer + "}\n", encoding="utf-8")
        with pytest.raises(DataFileError, match="answer"):
            build_probe(f"mcqa:{path}")


def test_calibration_files_are_checked_before_a_model_loads(tmp_path: Path) -> None:
    from compsafe.compress import CalibrationSpec

    csv = tmp_path / "cal.csv"
    csv.write_text("text\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="use plain text"):
        CalibrationSpec(source=str(csv))
    with pytest.raises(DataFileError, match="does not exist"):
        CalibrationSpec(source=str(tmp_path / "missing.txt"))


def test_calibration_text_must_be_utf8_text_and_hold_a_window(tmp_path: Path, tiny_tokenizer) -> None:
    from compsafe.compress import CalibrationSpec, build_calibration

    latin = tmp_path / "cal.txt"
    latin.write_bytes("café ".encode("latin-1") * 100)
    with pytest.raises(DataFileError, match="UTF-8"):
        build_calibration(tiny_tokenizer, CalibrationSpec(source=str(latin), n_samples=2, seq_len=16))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a few words", encoding="utf-8")
    with pytest.raises(DataFileError, match="fewer than one window"):
        build_calibration(tiny_tokenizer, CalibrationSpec(source=str(tiny), n_samples=2, seq_len=64))
    rows = tmp_path / "cal.jsonl"
    rows.write_text('{"text": {"a": 1}}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match="not text"):
        build_calibration(tiny_tokenizer, CalibrationSpec(source=str(rows), n_samples=2, seq_len=16))


def test_calibration_window_is_limited_by_the_model_context(tiny_tokenizer, monkeypatch) -> None:
    from compsafe.compress import CalibrationSpec, build_calibration

    spec = CalibrationSpec(n_samples=2, seq_len=100_000_000)
    started = time.time()
    with pytest.raises(DataFileError, match="longer than the model's context"):
        build_calibration(tiny_tokenizer, spec, context=512)
    assert time.time() - started < 1
    monkeypatch.setenv("COMPSAFE_MAX_SEQ_LEN", "1024")
    assert build_calibration(tiny_tokenizer, CalibrationSpec(n_samples=1, seq_len=600), context=512).input_ids.shape[1]


def test_prompts_longer_than_the_context_fail_before_generating(tiny_handle) -> None:
    from compsafe.models import GenerationConfig, HFBackend

    backend = HFBackend(tiny_handle)
    with pytest.raises(DataFileError, match="COMPSAFE_MAX_SEQ_LEN"):
        backend.generate(["word " * 2000], GenerationConfig(max_new_tokens=4))


def test_corrupt_and_truncated_stores_are_named_with_the_way_out(tmp_path: Path) -> None:
    from compsafe.store import ResultStore

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="--store NEW"):
        ResultStore(garbage)
    path = tmp_path / "store.sqlite"
    store = ResultStore(path)
    store.put_records("k", [(f"i{n}", "d", {"text": "x" * 500}) for n in range(200)])
    store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="damaged"):
        ResultStore(path).records("k")


def test_an_offline_hub_id_fails_fast_in_one_line(monkeypatch) -> None:
    from compsafe.models import LoadOptions, load_model

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.time()
    with pytest.raises(ModelLoadError, match="--model DIR"):
        load_model("someorg/not-a-cached-model", LoadOptions(device="cpu"))
    assert time.time() - started < 5


def _manifested(tmp_path: Path) -> Path:
    from compsafe.manifest import write_manifest

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    write_manifest(folder)
    return folder


@pytest.mark.parametrize("kind", ["dangling", "fifo", "outside-link", "folder-link", "swapped-for-link"])
def test_verify_reports_symlinks_and_special_files(tmp_path: Path, kind: str) -> None:
    from compsafe.manifest import DEFAULT_NAME, verify_manifest

    folder = _manifested(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    if kind == "dangling":
        (folder / "ghost.safetensors").symlink_to(folder / "nothing")
    elif kind == "fifo":
        os.mkfifo(folder / "pipe")
    elif kind == "outside-link":
        (folder / "extra.txt").symlink_to(outside)
    elif kind == "folder-link":
        (folder / "loop").symlink_to(folder)
    else:
        real = tmp_path / "real.safetensors"
        real.write_bytes((folder / "model.safetensors").read_bytes())
        (folder / "model.safetensors").unlink()
        (folder / "model.safetensors").symlink_to(real)
    result = verify_manifest(folder, folder / DEFAULT_NAME)
    assert not result.ok
    assert result.extra or result.changed


def test_manifest_refuses_special_files_and_validates_entries(tmp_path: Path) -> None:
    from compsafe.manifest import DEFAULT_NAME, read_manifest, write_manifest

    folder = _manifested(tmp_path)
    os.mkfifo(folder / "pipe")
    with pytest.raises(ManifestError, match="FIFO"):
        write_manifest(folder)
    manifest = json.loads((folder / DEFAULT_NAME).read_text())
    for bad in ({"path": 5}, {"path": "../../etc/passwd"}, {"sha256": 7}, {"size": "big"}):
        broken = {**manifest, "files": [{**manifest["files"][0], **bad}]}
        (tmp_path / "m.json").write_text(json.dumps(broken))
        with pytest.raises(ManifestError):
            read_manifest(tmp_path / "m.json")


def test_store_errors_do_not_hide_disk_problems(tmp_path: Path) -> None:
    from compsafe.store import is_corrupt

    assert not is_corrupt(sqlite3.OperationalError("database or disk is full"))
    assert is_corrupt(sqlite3.DatabaseError("file is not a database"))


def test_an_offline_hub_id_is_one_line_before_any_progress(monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from compsafe.cli import app

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    args = ["run", "--model", "someorg/not-a-cached-model", "--probes", "mcqa", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "--model DIR" in lines[0], result.output


def test_mitigate_and_recover_options_fail_before_any_model_work(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from compsafe.cli import app

    base = ["mitigate", "--model", str(tiny_llama_dir), "--device", "cpu"]
    for option, value, needle in (("--max-refusal-drop", "-1", "fraction"), ("--budget-bits", "0", "positive")):
        result = CliRunner().invoke(app, [*base, option, value])
        assert result.exit_code == 2 and needle in result.output, result.output
    recover = ["recover", "--model", str(tiny_llama_dir), "--out", str(tmp_path / "a"), "--recipe"]
    for extra in (["int４"], ["int8", "--probes", "mcqa,,perplexity"]):
        started = time.time()
        result = CliRunner().invoke(app, [*recover, *extra])
        assert result.exit_code == 2 and time.time() - started < 30, result.output
        assert not (tmp_path / "a" / "recovery.json").exists()
