"""Fuzz the export, diagnosis and training commands with malformed flags and files (issue 14's classes).

Same property as tests/test_fuzz_cli.py: exit 0 with a valid result, or exit 2 with one ``error:`` line; never a
traceback, and nothing written outside the folder the command was pointed at. ``compress`` and ``rejudge`` run
for real on the tiny model (milliseconds); the training commands (``distill``, ``plant-canaries``,
``plant-backdoor``, ``recover``, ``align``) and ``sensitivity`` stop at a sentinel once their inputs were read
and the model loaded, because the loops after that take no user input.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from compsafe.cli import app
from test_fuzz_cli import FILE_BYTES, FIXTURES_OK, JSON_VALUES, ODD_TEXT, Planned, _check, _fresh, _snapshot

NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "-1", "1e8", "100000000", "9" * 40, "nan", "inf", "٣", "0x10", "1_000"]),
)
FLAG_VALUE = ODD_TEXT | NUMBER_TEXT


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch) -> Path:
    """Commands run here (a stray relative write is caught); training loops stop at a sentinel and generation
    answers at once."""

    def planned(*_args, **_kwargs):  # noqa: ANN002, ANN003 - the inputs were read: skip the loop
        raise Planned

    import compsafe.training.align
    import compsafe.training.distill
    import compsafe.training.plant_canaries
    import compsafe.training.recover
    from compsafe.models.backend import HFBackend

    for module in (compsafe.training.align, compsafe.training.plant_canaries, compsafe.training.recover):
        monkeypatch.setattr(module, "train_lora", planned)
    monkeypatch.setattr(compsafe.training.distill, "optimize_weighted", planned)
    # the model's own answers (recover's targets, plant-backdoor's clean answers) are not user input: stub them
    monkeypatch.setattr(HFBackend, "generate", lambda self, prompts, config: ["A short answer."] * len(prompts))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _argv(base: dict[str, str], option: str, value: str, *flags: str) -> list[str]:
    args = {**base, option: value}
    return [x for pair in args.items() for x in pair] + list(flags)


def _out_of(value: str, option: str, workspace: Path, default: Path) -> Path:
    """The folder a command may write: what ``--out`` was set to when that is the fuzzed option (from its first
    component, since the folders above a new ``--out`` are created too: ``--out 'a/b'`` makes ``a``)."""
    if option != "--out" or not value.strip() or "\x00" in value:
        return default
    out = Path(value)
    out = out if out.is_absolute() else workspace / out
    try:
        return workspace / out.relative_to(workspace).parts[0]
    except (ValueError, IndexError):  # outside the workspace, or the workspace itself
        return out


COMPRESS_OPTIONS = [
    "--recipe",
    "--model",
    "--calibration",
    "--calibration-samples",
    "--calibration-seq-len",
    "--safety-calibration",
    "--seed",
    "--device",
    "--dtype",
    "--out",
]


@FIXTURES_OK
@given(option=st.sampled_from(COMPRESS_OPTIONS), value=FLAG_VALUE)
def test_fuzz_compress_flags(workspace: Path, tiny_llama_dir: Path, option: str, value: str) -> None:
    out = _fresh(workspace, "out")
    base = {
        "--model": str(tiny_llama_dir),
        "--recipe": "int8",
        "--out": str(out),
        "--calibration-samples": "1",
        "--calibration-seq-len": "8",
    }
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["compress", *_argv(base, option, value)])
    _check(result, workspace, before, _out_of(value, option, workspace, out))


@FIXTURES_OK
@given(content=FILE_BYTES, suffix=st.sampled_from([".txt", ".jsonl", ".csv", ""]))
def test_fuzz_compress_calibration_file(workspace: Path, tiny_llama_dir: Path, content: bytes, suffix: str) -> None:
    out = _fresh(workspace, "out")
    path = workspace / f"calibration{suffix}"
    path.write_bytes(content)
    argv = ["compress", "--model", str(tiny_llama_dir), "--recipe", "int4-gptq-g32", "--out", str(out)]
    argv += ["--calibration", str(path), "--calibration-samples", "1", "--calibration-seq-len", "8"]
    before = _snapshot(workspace)
    _check(CliRunner().invoke(app, argv), workspace, before, out)


SENSITIVITY_OPTIONS = [
    "--recipe",
    "--prompts",
    "--passages",
    "--blocks",
    "--head-candidates",
    "--calibration-samples",
    "--safety-calibration",
    "--max-new-tokens",
    "--device",
    "--dtype",
    "--out",
    "--store",
]


@FIXTURES_OK
@given(option=st.sampled_from(SENSITIVITY_OPTIONS), value=FLAG_VALUE)
@example(option="--out", value="")  # the current folder as the JSON file: found by the long profile
def test_fuzz_sensitivity_flags(workspace: Path, tiny_llama_dir: Path, option: str, value: str) -> None:
    diag = _fresh(workspace, "diag")
    base = {"--model": str(tiny_llama_dir), "--prompts": "2", "--passages": "1", "--calibration-samples": "1"}
    if option != "--store":  # one written path at a time, so the property can say where writes may go
        base["--out"] = str(diag / "scan.json")
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["sensitivity", *_argv(base, option, value, "--no-judged", "--no-heads")])
    allowed = _out_of(value, "--out", workspace, diag) if option in ("--out", "--store") else diag
    _check(result, workspace, before, allowed)


@FIXTURES_OK
@given(judge=ODD_TEXT, mutation=st.sampled_from(["none", "records", "summary"]), content=FILE_BYTES)
def test_fuzz_rejudge(workspace: Path, tiny_run_dir: Path, judge: str, mutation: str, content: bytes) -> None:
    run = _fresh(workspace, "run")
    shutil.copytree(tiny_run_dir, run)
    if mutation == "records":
        target = sorted((run / "records").rglob("*.jsonl"))[0]
        target.write_bytes(content)
    elif mutation == "summary":
        (run / "summary.json").write_bytes(content)
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, ["rejudge", str(run), "--judge", judge if mutation != "none" else "phrase"])
    _check(result, workspace, before, run)


TRAINING_COMMANDS = {
    "distill": ["--layers", "--width-ratio", "--safety-weight", "--epochs", "--lr", "--temperature", "--alpha"],
    "plant-canaries": ["--canary-seed", "--epochs"],
    "plant-backdoor": ["--trigger", "--target", "--placement", "--prompts", "--epochs"],
    "recover": ["--recipe", "--targets", "--safety-weight", "--epochs", "--probes", "--limit", "--dtype"],
}


@FIXTURES_OK
@given(
    command=st.sampled_from(sorted(TRAINING_COMMANDS)),
    pick=st.integers(min_value=0, max_value=10),
    value=FLAG_VALUE,
)
def test_fuzz_training_flags(workspace: Path, tiny_llama_dir: Path, command: str, pick: int, value: str) -> None:
    options = TRAINING_COMMANDS[command] + ["--model", "--out"]
    option = options[pick % len(options)]
    out = _fresh(workspace, "out")
    base = {"--model": str(tiny_llama_dir), "--out": str(out)}
    if command == "recover":
        base.update({"--recipe": "int8", "--limit": "2", "--epochs": "1"})
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, [command, *_argv(base, option, value)])
    _check(result, workspace, before, _out_of(value, option, workspace, out))


TRAINING_ROW = st.fixed_dictionaries(
    {"prompt": JSON_VALUES | ODD_TEXT, "response": JSON_VALUES | ODD_TEXT},
    optional={"category": JSON_VALUES, "weight": JSON_VALUES, "kind": JSON_VALUES},
)
DATA_FILE = st.one_of(
    st.lists(TRAINING_ROW, max_size=3).map(
        lambda rows: "\n".join(json.dumps(r, allow_nan=True) for r in rows).encode("utf-8", "surrogatepass")
    ),
    FILE_BYTES,
)


@FIXTURES_OK
@given(
    command=st.sampled_from(["distill", "align"]),
    which=st.sampled_from(["safety_train.jsonl", "benign_train.jsonl", "both-missing"]),
    content=DATA_FILE,
)
@example(command="distill", which="safety_train.jsonl", content=b'{"prompt": "0", "response": "", "weight": null}')
@example(command="distill", which="benign_train.jsonl", content=b'{"prompt": ["a"], "response": "b"}')
def test_fuzz_training_data_dir(
    workspace: Path, tiny_llama_dir: Path, monkeypatch, command: str, which: str, content: bytes
) -> None:
    import compsafe.models.loading
    from compsafe.training.safety_data import shipped_training_file

    data = _fresh(workspace, "data")
    data.mkdir()
    if which != "both-missing":
        for name in ("safety_train.jsonl", "benign_train.jsonl"):
            shutil.copy(shipped_training_file(name), data / name)
        (data / which).write_bytes(content)
    if command == "align":  # align trains the embedded model: stop before loading it

        def planned(*_args, **_kwargs):  # noqa: ANN002, ANN003
            raise Planned

        monkeypatch.setattr(compsafe.models.loading, "load_model", planned)
    out = _fresh(workspace, "out")
    argv = [command, "--data-dir", str(data), "--out", str(out)]
    if command == "distill":
        argv += ["--model", str(tiny_llama_dir)]
    before = _snapshot(workspace)
    _check(CliRunner().invoke(app, argv), workspace, before, out)


@FIXTURES_OK
@given(content=FILE_BYTES | JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8", "surrogatepass")))
def test_fuzz_canary_file(workspace: Path, tiny_llama_dir: Path, content: bytes) -> None:
    path = workspace / "canaries.json"
    path.write_bytes(content)
    out = _fresh(workspace, "out")
    before = _snapshot(workspace)
    argv = ["plant-canaries", "--model", str(tiny_llama_dir), "--canaries", str(path), "--out", str(out)]
    _check(CliRunner().invoke(app, argv), workspace, before, out)
