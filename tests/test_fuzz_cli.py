"""Fuzz every CLI entry point that reads user input with generated malformed strings and files.

The property, for each: the command exits 0 (or 1 for a gate/verify verdict) with a valid result, or exits
2 with a one-line error; never a traceback, and nothing is written outside the folder it was pointed at.
The classes generated are issue 14's: rich markup, over-long and NUL-holding strings, non-ASCII digits,
empty list entries, non-UTF-8 bytes, JSON with huge integers, deep nesting, lone surrogates, NaN, values of
the wrong type, and mutations of valid files (a real summary, manifest, recovery record).

Model work is replaced by a sentinel after the inputs are validated (``plan_run`` reads every item file,
recipe and recovery record), so an example takes milliseconds. CI runs a few examples per entry point (the
``ci`` profile, tests/conftest.py); ``pytest tests/test_fuzz_cli.py --hypothesis-profile=long`` runs many.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from compsafe.cli import app

# derandomized: CI sees the same examples every time (a fuzz failure is found once, here, not as a flaky build)
FIXTURES_OK = settings(
    derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


class Planned(Exception):  # noqa: N818 - a sentinel, not an error
    """Raised instead of running models once a run's inputs were all read and validated."""


MARKUP = st.sampled_from(["[/red]", "[bold]", "[link=x]", "[/]", "[", "]"])
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    MARKUP,
    st.sampled_from(["a" * 5000, "b" * 300, "x\x00y", "int４", "int4-g٣", "", "   ", "int8\nint4", "int8,,mag-50"]),
    st.lists(
        st.sampled_from(["int8", "mag-50", "2:4", "int4-g128", "", " ", "int４", "[/red]", "wanda-50"]), max_size=4
    ).map(",".join),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=8,
)
RAW_JSON_TEXT = st.one_of(
    st.sampled_from(
        [
            "1" + "0" * 5000,
            "[" * 5000 + "]" * 5000,
            '"\\ud800"',
            "NaN",
            "{",
            "",
            "null",
            "[]",
            "{}",
            "1e999",
            '{"a": ' + "[" * 100 + "]" * 100 + "}",
        ]
    ),
    JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
)
FILE_BYTES = st.one_of(
    RAW_JSON_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=64),
    st.sampled_from([b"\xff\xfe\x00", "café".encode("latin-1"), b"prompt\n", b"a,b\n1,\x002\n"]),
)


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check(result: Any, root: Path, before: set[str], allowed: Path | None, ok_codes: tuple[int, ...] = (0,)) -> None:
    """The fuzz property on one CLI result."""
    exc = result.exception
    if isinstance(exc, Planned):
        return
    assert exc is None or isinstance(exc, SystemExit), f"escaped {type(exc).__name__}: {exc}"
    assert "Traceback" not in result.output
    assert result.exit_code in (*ok_codes, 2), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    if result.exit_code == 2 and errors:
        assert len(errors) == 1
    changed = _snapshot(root) - before
    prefix = str(allowed.relative_to(root)) if allowed is not None else None
    assert all(prefix and (c == prefix or c.startswith(prefix + os.sep)) for c in changed), sorted(changed)[:5]


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch) -> Path:
    """A working folder the commands run in (so a stray relative write is caught) and no model runs."""
    import compsafe.runner

    def planned(config, observer=None, **_kwargs):  # noqa: ANN001
        compsafe.runner.plan_run(config)
        raise Planned

    monkeypatch.setattr(compsafe.runner, "run", planned)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fresh(root: Path, name: str) -> Path:
    path = root / name
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return path


RUN_OPTIONS = [
    "--model",
    "--variants",
    "--probes",
    "--judge",
    "--device",
    "--dtype",
    "--calibration",
    "--profile",
    "--executor",
    "--out",
]


@FIXTURES_OK
@given(option=st.sampled_from(RUN_OPTIONS), value=ODD_TEXT)
def test_fuzz_run_flags(workspace: Path, tiny_llama_dir: Path, option: str, value: str) -> None:
    before = _snapshot(workspace)
    args = {"--model": str(tiny_llama_dir), "--variants": "", "--probes": "mcqa", "--out": str(workspace / "run")}
    args[option] = value
    argv = ["run", *[x for pair in args.items() for x in pair], "--limit", "2"]
    result = CliRunner().invoke(app, argv)
    out = Path(value) if option == "--out" and value.strip() and "\x00" not in value else workspace / "run"
    _check(result, workspace, before, out if out.is_absolute() else workspace / out)


CONFIG_KEYS = [
    "model",
    "variants",
    "probes",
    "limit",
    "judge",
    "batch_size",
    "seed",
    "calibration",
    "calibration_seq_len",
    "screen_margin",
    "device",
    "profile",
    "allow_pickle",
    "bogus",
]


@FIXTURES_OK
@given(
    data=st.one_of(
        st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON_VALUES | ODD_TEXT, max_size=4).map(
            lambda d: json.dumps(d, allow_nan=True).encode()
        ),
        FILE_BYTES,
        st.sampled_from([b"limit: 2\nlimit: 3\n", b"limit: " + b"9" * 5000, b"a: " + b"[" * 3000, b"!!python/name:os"]),
    )
)
def test_fuzz_run_config_file(workspace: Path, tiny_llama_dir: Path, data: bytes) -> None:
    config = workspace / "run.yaml"
    config.write_bytes(data)
    before = _snapshot(workspace)
    argv = ["run", "--model", str(tiny_llama_dir), "--config", str(config), "--out", str(workspace / "run")]
    _check(CliRunner().invoke(app, argv), workspace, before, workspace / "run")


ROW = st.fixed_dictionaries(
    {"prompt": JSON_VALUES | ODD_TEXT}, optional={"id": JSON_VALUES, "category": JSON_VALUES, "text": JSON_VALUES}
)


@FIXTURES_OK
@given(
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".txt", ".bin"]),
    content=st.one_of(
        st.lists(ROW, min_size=1, max_size=3).map(
            lambda rows: "\n".join(json.dumps(r, allow_nan=True) for r in rows).encode("utf-8", "surrogatepass")
        ),
        FILE_BYTES,
    ),
    probe=st.sampled_from(["refusal", "mcqa", "perplexity", "over_refusal"]),
)
def test_fuzz_item_files(workspace: Path, tiny_llama_dir: Path, suffix: str, content: bytes, probe: str) -> None:
    items = workspace / f"items{suffix}"
    items.write_bytes(content)
    before = _snapshot(workspace)
    argv = [
        "run",
        "--model",
        str(tiny_llama_dir),
        "--variants",
        "",
        "--probes",
        f"{probe}:{items}",
        "--out",
        str(workspace / "run"),
    ]
    _check(CliRunner().invoke(app, argv), workspace, before, workspace / "run")


def _mutate(value: Any, path: list[Any], new: Any) -> Any:
    """``value`` with the element at ``path`` (keys/indices, as far as they reach) replaced by ``new``."""
    if not path or not isinstance(value, dict | list) or not value:
        return new
    if isinstance(value, dict):
        key = list(value)[path[0] % len(value)]
        return {**value, key: _mutate(value[key], path[1:], new)}
    index = path[0] % len(value)
    return [*value[:index], _mutate(value[index], path[1:], new), *value[index + 1 :]]


MUTATION = st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=5), JSON_VALUES)


@FIXTURES_OK
@given(
    mutation=MUTATION, raw=st.none() | RAW_JSON_TEXT, extra=st.sampled_from([None, "fifo", "dangling", "loop", "file"])
)
def test_fuzz_verify(workspace: Path, mutation, raw, extra) -> None:
    from compsafe.manifest import DEFAULT_NAME, write_manifest

    folder = _fresh(workspace, "model")
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 32)
    write_manifest(folder)
    manifest = json.loads((folder / DEFAULT_NAME).read_text())
    text = raw if raw is not None else json.dumps(_mutate(manifest, *mutation), allow_nan=True)
    (folder / DEFAULT_NAME).write_bytes(text.encode("utf-8", "surrogatepass"))
    if extra == "fifo":
        os.mkfifo(folder / "pipe")
    elif extra == "dangling":
        (folder / "ghost").symlink_to(folder / "nothing")
    elif extra == "loop":
        (folder / "loop").symlink_to(folder)
    elif extra == "file":
        (folder / "added.bin").write_bytes(b"x")
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["verify", str(folder)])
    _check(result, workspace, before, None, ok_codes=(0, 1))
    if extra is not None:
        assert result.exit_code != 0  # an added file of any kind never verifies


RECOVERY = st.fixed_dictionaries(
    {
        "recipe": JSON_VALUES | ODD_TEXT,
        "calibration": JSON_VALUES,
        "compressed_weights_digest": JSON_VALUES,
        "base_source": JSON_VALUES,
        "targets": st.sampled_from(["base", "data"]) | JSON_VALUES,
    }
)


@FIXTURES_OK
@given(
    record=RECOVERY.map(lambda r: json.dumps(r, allow_nan=True).encode("utf-8", "surrogatepass")) | FILE_BYTES,
    config=FILE_BYTES | st.just(b'{"peft_type": "LORA"}'),
    pickle=st.booleans(),
)
def test_fuzz_recovered_variant(
    workspace: Path, tiny_llama_dir: Path, record: bytes, config: bytes, pickle: bool
) -> None:
    adapter = _fresh(workspace, "adapter")
    adapter.mkdir()
    (adapter / "recovery.json").write_bytes(record)
    (adapter / "adapter_config.json").write_bytes(config)
    (adapter / ("adapter_model.bin" if pickle else "adapter_model.safetensors")).write_bytes(
        b"\x08" + b"\0" * 7 + b"{}"
    )
    before = _snapshot(workspace)
    argv = [
        "run",
        "--model",
        str(tiny_llama_dir),
        "--variants",
        f"recovered:{adapter}",
        "--probes",
        "mcqa",
        "--out",
        str(workspace / "run"),
    ]
    _check(CliRunner().invoke(app, argv), workspace, before, workspace / "run")


@FIXTURES_OK
@given(content=FILE_BYTES, suffix=st.sampled_from([".txt", ".jsonl", ".csv"]))
def test_fuzz_calibration_file(workspace: Path, tiny_tokenizer, content: bytes, suffix: str) -> None:
    from compsafe.compress import CalibrationSpec, build_calibration
    from compsafe.errors import CompsafeError

    path = workspace / f"calibration{suffix}"
    path.write_bytes(content)
    try:
        calibration = build_calibration(tiny_tokenizer, CalibrationSpec(str(path), n_samples=1, seq_len=8), 512)
    except CompsafeError as exc:
        assert "\n" not in str(exc)
        return
    assert tuple(calibration.input_ids.shape) == (1, 8)


# ------------------------------------------------------------------ run folders, policies, judge files, rankings


def _summary_run(root: Path, name: str, text: str) -> Path:
    """A run folder holding only ``summary.json`` with ``text`` (what report/gate/compare/scan read first)."""
    from test_summary_schema import minimal

    folder = _fresh(root, name)
    folder.mkdir()
    (folder / "summary.json").write_bytes(text.encode("utf-8", "surrogatepass"))
    good = root / "good-run"
    if not good.exists():
        good.mkdir()
        (good / "summary.json").write_text(json.dumps(minimal()), encoding="utf-8")
    return folder


def _summary_text(mutation, raw) -> str:  # noqa: ANN001
    from test_summary_schema import minimal

    return raw if raw is not None else json.dumps(_mutate(minimal(), *mutation), allow_nan=True)


@FIXTURES_OK
@given(
    mutation=MUTATION,
    raw=st.none() | RAW_JSON_TEXT,
    command=st.sampled_from(["report", "gate", "compare", "scan", "gate --json"]),
)
def test_fuzz_run_folder_readers(workspace: Path, mutation, raw, command: str) -> None:
    folder = _summary_run(workspace, "run", _summary_text(mutation, raw))
    args = {
        "report": ["report", str(folder)],
        "gate": ["gate", str(folder)],
        "gate --json": ["gate", str(folder), "--json"],
        "compare": ["compare", str(workspace / "good-run"), str(folder)],
        "scan": ["scan", str(folder)],
    }[command]
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, args)
    _check(result, workspace, before, folder, ok_codes=(0, 1))
    if command == "gate --json" and result.exit_code in (0, 1):
        json.loads(result.stdout)  # strict JSON: no NaN


POLICY_TEXT = st.one_of(
    st.sampled_from(
        [
            "rules:\n  - metric: refusal.refusal_rat\n    max_drop: 0.05\n",
            "rules:\n  - metric: refusal.refusal_rate\n    max_drop: 0.05\n    max_drop: 0.5\n",
            "rules: 5\n",
            "- 1\n",
            "rules:\n  - metric: refusal.refusal_rate\n    max_drop: .nan\n",
            "rules: " + "[" * 5000 + "]" * 5000 + "\n",
            "rules:\n  - metric: refusal.refusal_rate\n    max_drop: " + "9" * 5000 + "\n",
            "rules:\n  - metric: '[/red]'\n    max_drop: 0.05\n",
        ]
    ),
    st.dictionaries(st.sampled_from(["rules", "variants", "name", "x"]), JSON_VALUES, max_size=3).map(json.dumps),
)


@FIXTURES_OK
@given(policy=POLICY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")) | FILE_BYTES)
def test_fuzz_gate_policy(workspace: Path, policy: bytes) -> None:
    from test_summary_schema import minimal

    folder = _summary_run(workspace, "run", json.dumps(minimal()))
    path = workspace / "policy.yaml"
    path.write_bytes(policy)
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["gate", str(folder), "--policy", str(path)])
    _check(result, workspace, before, None, ok_codes=(0, 1))


@FIXTURES_OK
@given(content=FILE_BYTES | st.lists(JSON_VALUES, max_size=3).map(lambda rows: "\n".join(
    json.dumps({"id": i, "prompt": r, "response": r}, allow_nan=True) for i, r in enumerate(rows)
).encode("utf-8", "surrogatepass")))
def test_fuzz_judge_file(workspace: Path, content: bytes) -> None:
    path = workspace / "pairs.jsonl"
    path.write_bytes(content)
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["judge", str(path), "--out", str(workspace / "verdicts.jsonl")])
    _check(result, workspace, before, workspace / "verdicts.jsonl")


@FIXTURES_OK
@given(content=FILE_BYTES)
def test_fuzz_mitigate_ranking(workspace: Path, monkeypatch, content: bytes) -> None:
    import compsafe.api

    def planned(*_args, **_kwargs):  # noqa: ANN002, ANN003 - the ranking was read: stop before loading a model
        raise Planned

    monkeypatch.setattr(compsafe.api, "_load", planned)
    path = workspace / "ranking.json"
    path.write_bytes(content)
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["mitigate", "--ranking", str(path), "--recipe", "int8"])
    _check(result, workspace, before, None)
