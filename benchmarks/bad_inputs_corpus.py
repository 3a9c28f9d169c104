"""A corpus of bad inputs run against the `compsafe` CLI, each outcome classified.

Every case is one command line with a malformed value, file or folder (the classes of issue 14: markup in
user text, over-long strings, NUL bytes, non-ASCII digits, empty list entries, non-UTF-8 files, JSON with huge
integers / deep nesting / lone surrogates / NaN, non-string prompts, header-only CSVs, broken model folders,
NaN weights, broken recovery adapters and manifests, malformed summaries and policies, non-regular files in a
verified folder, an offline hub id). Outcomes:

- ``clean``: the expected outcome (a one-line error with exit 2, or for a case that may succeed, exit 0 with
  a result; verify/gate "mismatch" cases exit 1), and no traceback;
- ``traceback``: a Python exception escaped, or a traceback was printed, or it hung past the timeout;
- ``silent``: exit 0 where the input should have been refused;
- ``noisy``: refused, but slowly or with more than one line of warnings (the offline hub id case).

Tiny model folders are built from a config (tests/conftest.py), so no case runs a real model. Usage::

    PYTHONPATH=src nice python benchmarks/bad_inputs_corpus.py [--filter SUBSTRING] [--json OUT]

Run it with another checkout's ``src`` on PYTHONPATH to measure that code instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# cases run in a workspace folder (and some in a fresh interpreter): a relative PYTHONPATH=src would silently
# measure the installed compsafe there instead of this checkout, so make it absolute once, here
os.environ["PYTHONPATH"] = os.pathsep.join(
    str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
)

ERROR, ANY, EXIT1, BROKEN = "error", "any", "exit1", "broken"


@dataclass
class Case:
    name: str
    args: list[str]
    expect: str = ERROR  # ERROR: must exit 2; ANY: 0 or 2; EXIT1: must exit 1; BROKEN: exit 0 showing BROKEN
    env: dict[str, str] = field(default_factory=dict)
    subprocess: bool = False  # run in a fresh interpreter (environment read at import, or may hang)
    max_seconds: float | None = None  # a refusal slower than this is "noisy"


@dataclass
class Outcome:
    case: str
    verdict: str
    exit_code: int | None
    seconds: float
    detail: str


STRINGS: dict[str, str] = {
    "markup": "x[/red][bold]y",
    "long5000": "a" * 5000,
    "longcomponent300": "b" * 300,
    "nul": "ab\x00cd",
    "fullwidth-digit": "int４",
    "arabic-digit": "int4-g٣",
    "empty": "",
    "blank": "   ",
    "newline": "int8\nint4",
    "surrogate": "ab\udcffcd",
}


class Workspace:
    """Tiny model folders and files the cases point at, built once in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.counter = 0

    def path(self, name: str) -> Path:
        return self.root / name

    def out(self) -> str:
        self.counter += 1
        return str(self.root / "outs" / f"o{self.counter}")

    def file(self, name: str, content: bytes | str) -> str:
        path = self.root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        return str(path)

    def folder_copy(self, source: Path, name: str, edit: Callable[[Path], None]) -> str:
        target = self.root / "models" / name
        shutil.copytree(source, target)
        edit(target)
        return str(target)


def build_workspace(root: Path) -> Workspace:
    from conftest import build_tokenizer, save_tiny_llama

    ws = Workspace(root)
    tokenizer = build_tokenizer()
    save_tiny_llama(root / "tiny", tokenizer, max_position_embeddings=128)
    return ws


def invoke_inprocess(args: list[str], env: dict[str, str], timeout: int = 180) -> tuple[int | None, str, bool, float]:
    """(exit code, output, traceback seen, seconds) of one CLI call in this interpreter."""
    from typer.testing import CliRunner

    from compsafe.cli import app

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def on_alarm(signum, frame):  # noqa: ANN001
        raise TimeoutError("case timed out")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    started = time.time()
    try:
        result = CliRunner().invoke(app, args, catch_exceptions=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.time() - started
    output = result.output or ""
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    if escaped:
        output += f"\n{type(result.exception).__name__}: {result.exception}"
    traceback = escaped or "Traceback (most recent call last)" in output
    return result.exit_code, output, traceback, seconds


SUBPROCESS_MAIN = """
import sys, time
import compsafe.cli, compsafe.runner, transformers  # imported before the clock starts: import time is not the case's
started = time.time()
code = 0
try:
    compsafe.cli.main() if hasattr(compsafe.cli, "main") else compsafe.cli.app()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    sys.stderr.write(f"\\nCORPUS_SECONDS={time.time() - started:.2f}\\n")
sys.exit(code)
"""


def invoke_subprocess(args: list[str], env: dict[str, str], timeout: int = 180) -> tuple[int | None, str, bool, float]:
    """One CLI call in a fresh interpreter; the seconds exclude importing compsafe, torch and transformers."""
    started = time.time()
    try:
        done = subprocess.run(
            [sys.executable, "-c", SUBPROCESS_MAIN, *args],
            env={**os.environ, **env},
            capture_output=True,
            timeout=timeout,
            errors="replace",
            text=True,
        )
    except subprocess.TimeoutExpired:
        return None, "timed out", True, time.time() - started
    output = done.stdout + done.stderr
    seconds = time.time() - started
    kept = []
    for line in output.splitlines():
        if line.startswith("CORPUS_SECONDS="):
            seconds = float(line.split("=", 1)[1])
        else:
            kept.append(line)
    output = "\n".join(kept)
    return done.returncode, output, "Traceback (most recent call last)" in output, seconds


def classify(case: Case, code: int | None, output: str, traceback: bool, seconds: float) -> str:
    if traceback or code is None:
        return "traceback"
    if case.expect == ANY:
        return "clean" if code in (0, 2) else ("traceback" if code not in (1,) else "clean")
    if case.expect == BROKEN:
        return "clean" if code == 0 and "BROKEN" in output else ("silent" if code == 0 else "clean")
    if case.expect == EXIT1:
        return "clean" if code == 1 else ("silent" if code == 0 else "clean")
    if code == 0:
        return "silent"
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if case.max_seconds is not None and (seconds > case.max_seconds or len(lines) > 1):
        return "noisy"
    return "clean"


# ----- the cases ---------------------------------------------------------------------------------------------


def run_args(ws: Workspace, **overrides: str) -> list[str]:
    """A quick valid `run` (tiny model, one probe, two items, no variants) with some options replaced."""
    options = {
        "--model": str(ws.path("tiny")),
        "--variants": "",
        "--probes": "mcqa",
        "--limit": "2",
        "--device": "cpu",
        "--max-new-tokens": "4",
        "--out": ws.out(),
    }
    options.update(overrides)
    args = ["run"]
    for key, value in options.items():
        args += [key, value]
    return args


def string_cases(ws: Workspace) -> list[Case]:
    """Every string class in every string option of `run` (and a few of other commands)."""
    cases = []
    must_refuse = ["--model", "--variants", "--probes", "--judge", "--device", "--dtype", "--profile", "--executor"]
    for option in must_refuse:
        for klass, value in STRINGS.items():
            expect = ANY if (option == "--variants" and klass == "empty") else ERROR
            cases.append(Case(f"run {option} {klass}", run_args(ws, **{option: value}), expect))
    for option in ("--out", "--store"):
        for klass, value in STRINGS.items():
            # a folder may be named with markup, non-ASCII digits or a newline; it must not be empty, over-long,
            # hold a NUL byte or bytes that are not UTF-8 (the summary could not record it)
            valid_names = ("markup", "fullwidth-digit", "arabic-digit", "blank", "newline")
            expect = ANY if klass in valid_names else ERROR
            target = value if klass in ("empty",) else str(ws.root / "outs" / f"{option[2:]}-{klass}" / value)
            cases.append(Case(f"run {option} {klass}", run_args(ws, **{option: target}), expect))
    for klass, value in STRINGS.items():
        cases.append(
            Case(f"run --calibration {klass}", run_args(ws, **{"--calibration": value, "--variants": "wanda-50"}))
        )
    for klass in ("markup", "long5000", "nul", "fullwidth-digit", "empty"):
        value = STRINGS[klass]
        cases.append(
            Case(
                f"compress --recipe {klass}",
                ["compress", "--recipe", value, "--out", ws.out(), "--model", str(ws.path("tiny"))],
            )
        )
        expect = ANY if klass == "empty" else ERROR  # a folder argument '' is the working folder, as in a shell
        cases.append(Case(f"report {klass}", ["report", value], expect))
        cases.append(Case(f"verify {klass}", ["verify", value], expect))
        cases.append(Case(f"manifest {klass}", ["manifest", value], expect))
        cases.append(Case(f"scan {klass}", ["scan", value], expect))
    cases += [
        Case("run --variants empty entry", run_args(ws, **{"--variants": "int8,,mag-50"})),
        Case("run --variants trailing comma", run_args(ws, **{"--variants": "int8,"})),
        Case("run --probes empty entry", run_args(ws, **{"--probes": "mcqa,,perplexity"})),
        Case("run --variants int4 fullwidth in list", run_args(ws, **{"--variants": "int8,int４"})),
        Case("run --variants mag fullwidth", run_args(ws, **{"--variants": "mag-５0"})),
        Case("run --model empty string", run_args(ws, **{"--model": ""})),
        Case("run --limit 0", run_args(ws, **{"--limit": "0"})),
        Case("run --batch-size 0", run_args(ws, **{"--batch-size": "0"})),
        Case("run --screen-margin nan", run_args(ws, **{"--screen-margin": "nan"})),
        Case("run --safety-calibration 2", run_args(ws, **{"--safety-calibration": "2"})),
        Case("run --calibration-samples 0", run_args(ws, **{"--calibration-samples": "0", "--variants": "wanda-50"})),
    ]
    return cases


def config_cases(ws: Workspace) -> list[Case]:
    texts = {
        "limit-abc": "limit: abc\n",
        "limit-abc-overridden": "limit: abc\n",
        "variants-int": "variants: 5\n",
        "limit-bool": "limit: true\n",
        "duplicate-key": "limit: 2\nlimit: 3\n",
        "not-mapping": "- a\n- b\n",
        "unknown-key": "limt: 2\n",
        "model-empty": "model: ''\n",
        "huge-int": "limit: " + "9" * 5000 + "\n",
        "deep": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "python-tag": "limit: !!python/object/apply:os.system ['true']\n",
        "batch-negative": "batch_size: -1\n",
        "executor-bad": "executor: spark\n",
        "probes-list-int": "probes: [1, 2]\n",
        "variants-empty-entry": "variants: 'int8,,mag-50'\n",
        "seq-len-float": "calibration_seq_len: 2.5\n",
        "markup-value": "judge: '[/red]'\n",
    }
    cases = []
    for name, text in texts.items():
        path = ws.file(f"config-{name}.yaml", text)
        extra = {"--limit": "2"} if name == "limit-abc-overridden" else {}
        cases.append(Case(f"run --config {name}", [*run_args(ws, **extra), "--config", path]))
    cases.append(
        Case("run --config non-utf8", [*run_args(ws), "--config", ws.file("config-latin1.yaml", b"judge: \xe9\xff\n")])
    )
    cases.append(
        Case("run --config binary", [*run_args(ws), "--config", ws.file("config-bin.yaml", os.urandom(64) + b"\0")])
    )
    cases.append(Case("run --config folder", [*run_args(ws), "--config", str(ws.root)]))
    return cases


def item_file_cases(ws: Workspace) -> list[Case]:
    rows = {
        "non-string-object.jsonl": '{"prompt": {"a": 1}}\n',
        "non-string-int.jsonl": '{"prompt": 5}\n',
        "non-string-false.jsonl": '{"prompt": false}\n',
        "non-string-nan.jsonl": '{"prompt": NaN}\n',
        "non-string-list.jsonl": '{"prompt": ["a", "b"]}\n',
        "whitespace.jsonl": '{"prompt": "   "}\n',
        "huge-int.jsonl": '{"prompt": "x", "id": ' + "1" * 5000 + "}\n",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "surrogate.jsonl": '{"prompt": "\\ud800"}\n',
        "header-only.csv": "prompt,category\n",
        "empty.jsonl": "",
        "not-list.json": '{"prompt": "x"}',
        "binary.jsonl": os.urandom(256),
        "latin1.jsonl": '{"prompt": "caf\xe9"}\n'.encode("latin-1"),
        "unknown.parquet": "PAR1",
        "markup[red].jsonl": '{"prompt": "[/red]"}\n',
        "null-id.jsonl": '{"prompt": "hello", "id": null}\n{"prompt": "hi", "id": null}\n',
        "dup-ids.jsonl": '{"prompt": "hello", "id": "a"}\n{"prompt": "bye", "id": "a"}\n',
    }
    cases = []
    for name, content in rows.items():
        path = ws.file(name, content)
        expect = ANY if name.startswith("markup") else ERROR
        cases.append(Case(f"run refusal:{name}", run_args(ws, **{"--probes": f"refusal:{path}"}), expect))
    perplexity = {
        "ppl-non-string.jsonl": '{"text": 12345}\n',
        "ppl-whitespace.txt": "   \n\n  \n",
        "ppl-header-only.csv": "text\n",
        "ppl-latin1.txt": "caf\xe9 au lait\n".encode("latin-1"),
    }
    for name, content in perplexity.items():
        cases.append(
            Case(f"run perplexity:{name}", run_args(ws, **{"--probes": f"perplexity:{ws.file(name, content)}"}))
        )
    big = ws.file("one-mb-prompt.jsonl", json.dumps({"prompt": "word " * 200_000}) + "\n")
    cases.append(Case("run refusal 1MB prompt", run_args(ws, **{"--probes": f"refusal:{big}"}), subprocess=True))
    mcqa = ws.file("mcqa-bad-answer.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 7}\n')
    cases.append(Case("run mcqa answer out of range", run_args(ws, **{"--probes": f"mcqa:{mcqa}"})))
    mcqa = ws.file("mcqa-choices-str.jsonl", '{"question": "q", "choices": "ab", "answer": 0}\n')
    cases.append(Case("run mcqa choices a string", run_args(ws, **{"--probes": f"mcqa:{mcqa}"})))
    return cases


def calibration_cases(ws: Workspace) -> list[Case]:
    files = {
        "cal-latin1.txt": "caf\xe9 " * 50,
        "cal-header-only.csv": "text\n",
        "cal-table.csv": "a,b\n1,2\n",
        "cal-binary.bin": os.urandom(512),
        "cal-empty.txt": "",
        "cal-huge-int.jsonl": '{"text": ' + "7" * 5000 + "}\n",
        "cal-deep.jsonl": "[" * 5000 + "]" * 5000 + "\n",
        "cal-surrogate.jsonl": '{"text": "\\udc00 abc"}\n',
        "cal-non-string.jsonl": '{"text": {"a": 1}}\n',
        "cal-nan.jsonl": '{"text": NaN}\n',
    }
    cases = []
    for name, content in files.items():
        raw = content.encode("latin-1") if name == "cal-latin1.txt" else content
        path = ws.file(name, raw)
        cases.append(
            Case(f"run --calibration {name}", run_args(ws, **{"--calibration": path, "--variants": "wanda-50"}))
        )
    for value in ("100000000", "5000"):
        cases.append(
            Case(
                f"run --calibration-seq-len {value}",
                run_args(ws, **{"--calibration-seq-len": value, "--variants": "wanda-50"}),
                subprocess=True,
            )
        )
    cases.append(
        Case(
            "compress --calibration-seq-len 100000000",
            [
                "compress",
                "--recipe",
                "wanda-50",
                "--model",
                str(ws.path("tiny")),
                "--out",
                ws.out(),
                "--calibration-seq-len",
                "100000000",
                "--device",
                "cpu",
            ],
            subprocess=True,
        )
    )
    return cases


def _safetensors_file(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


def _truncate(folder: Path) -> None:
    path = _safetensors_file(folder)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _huge_header(folder: Path) -> None:
    path = _safetensors_file(folder)
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", 2**40) + data[8:])


def _config_edit(key: str, value: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config[key] = value
        (folder / "config.json").write_text(json.dumps(config))

    return edit


def _nan_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = _safetensors_file(folder)
    tensors = load_file(path)
    name = next(n for n in tensors if n.endswith("mlp.down_proj.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, path, metadata={"format": "pt"})


def _write(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(content)


def _remove(pattern: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        for path in folder.glob(pattern):
            path.unlink()

    return edit


def model_cases(ws: Workspace) -> list[Case]:
    tiny = ws.path("tiny")
    broken = {
        "truncated": _truncate,
        "huge-header": _huge_header,
        "shape-mismatch": _config_edit("intermediate_size", 96),
        "layers-mismatch": _config_edit("num_hidden_layers", 3),
        "config-not-json": _write("config.json", b"{not json"),
        "config-latin1": _write("config.json", b'{"model_type": "llama\xe9"}'),
        "config-huge-int": _write("config.json", b'{"model_type": "llama", "hidden_size": ' + b"6" * 5000 + b"}"),
        "config-missing": _remove("config.json"),
        "no-weights": _remove("*.safetensors"),
        "pickle-only": lambda f: (
            _remove("*.safetensors")(f),
            (f / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01."),
        ),
        "garbage-gguf": lambda f: (
            _remove("*.safetensors")(f),
            (f / "model.gguf").write_bytes(b"GGUF" + os.urandom(64)),
        ),
        "nan-weights": _nan_weights,
        "vocab-mismatch": _config_edit("vocab_size", 100),
    }
    cases = []
    for name, edit in broken.items():
        folder = ws.folder_copy(tiny, f"base-{name}", edit)
        cases.append(Case(f"run --model {name}", run_args(ws, **{"--model": folder})))
        variant = ws.folder_copy(tiny, f"variant-{name}", edit)
        expect = BROKEN if name == "nan-weights" else ERROR
        probes = "perplexity" if name == "nan-weights" else "mcqa"
        cases.append(
            Case(f"run --variants {name}-folder", run_args(ws, **{"--variants": variant, "--probes": probes}), expect)
        )
    cases.append(Case("run --model a file", run_args(ws, **{"--model": ws.file("plain.txt", "x")})))
    cases.append(Case("run --model empty folder", run_args(ws, **{"--model": str(ws.root / "files")})))
    cases.append(
        Case(
            "compress --model truncated",
            ["compress", "--recipe", "int8", "--out", ws.out(), "--model", str(ws.root / "models" / "base-truncated")],
        )
    )
    offline = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "60", "HF_HUB_DOWNLOAD_TIMEOUT": "60"}
    for hub_id in ("someorg/not-cached-model", "another/Model-7B"):
        cases.append(
            Case(
                f"run --model hub id offline {hub_id}",
                run_args(ws, **{"--model": hub_id}),
                env=offline,
                subprocess=True,
                max_seconds=5,
            )
        )
    return cases


def recovered_cases(ws: Workspace) -> list[Case]:
    def adapter(name: str, record: object, files: dict[str, bytes]) -> str:
        folder = ws.root / "adapters" / name
        folder.mkdir(parents=True)
        if record is not None:
            data = record if isinstance(record, bytes) else json.dumps(record).encode()
            (folder / "recovery.json").write_bytes(data)
        for file_name, content in files.items():
            (folder / file_name).write_bytes(content)
        return str(folder)

    good = {
        "recipe": "int8",
        "calibration": None,
        "compressed_weights_digest": "0" * 64,
        "base_source": None,
        "targets": "base",
    }
    lora = {
        "adapter_config.json": json.dumps({"peft_type": "LORA", "r": 8}).encode(),
        "adapter_model.safetensors": struct.pack("<Q", 2) + b"{}",
    }
    variants = {
        "unknown-peft": adapter("unknown-peft", good, {**lora, "adapter_config.json": b'{"peft_type": "WEIRD"}'}),
        "missing-files": adapter("missing-files", good, {}),
        "non-string-recipe": adapter("non-string-recipe", {**good, "recipe": 5}, lora),
        "null-recipe": adapter("null-recipe", {**good, "recipe": None}, lora),
        "pickle-adapter": adapter(
            "pickle-adapter",
            good,
            {"adapter_config.json": lora["adapter_config.json"], "adapter_model.bin": b"\x80\x04K\x01."},
        ),
        "not-json": adapter("not-json", b"{oops", lora),
        "huge-int": adapter("huge-int", b'{"recipe": ' + b"1" * 5000 + b"}", lora),
        "list": adapter("list", [1, 2], lora),
        "no-record": adapter("no-record", None, lora),
        "bad-recipe": adapter("bad-recipe", {**good, "recipe": "int４"}, lora),
        "digest-int": adapter("digest-int", {**good, "compressed_weights_digest": 7}, lora),
    }
    return [
        Case(f"run recovered:{name}", run_args(ws, **{"--variants": f"recovered:{path}"}))
        for name, path in variants.items()
    ]


def run_folder_cases(ws: Workspace, make_run: Callable[[str], str]) -> list[Case]:
    """report, gate and compare on malformed summaries; gate on malformed policies."""
    good = make_run("good-run")
    summary = json.loads((Path(good) / "summary.json").read_text())

    def broken_run(name: str, content: bytes | str | dict) -> str:
        folder = ws.root / "runs" / name
        shutil.copytree(good, folder)
        raw = json.dumps(content) if isinstance(content, dict) else content
        (folder / "summary.json").write_bytes(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        return str(folder)

    nan_metrics = json.dumps(summary).replace('"accuracy": ', '"accuracy": NaN, "x": ', 1)
    variants = {
        "comparisons-int": {**summary, "comparisons": 5},
        "config-null": {**summary, "config": None},
        "metrics-base-int": {**summary, "metrics": {"base": 5}},
        "nan-metric": nan_metrics,
        "not-json": "{oops",
        "huge-int": '{"metrics": {"base": {}}, "x": ' + "3" * 5000 + "}",
        "deep": '{"metrics": {"base": {}}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "surrogate": json.dumps(summary).replace('"base"', '"\\ud800"', 1),
        "empty-object": "{}",
        "list": "[]",
        "latin1": b'{"metrics": {"base": {"x": "\xe9"}}}',
        "models-null": {**summary, "models": None},
        "probes-str": {**summary, "probes": "refusal"},
    }
    cases = []
    for name, content in variants.items():
        folder = broken_run(name, content)
        cases.append(Case(f"report {name}", ["report", folder]))
        cases.append(Case(f"gate {name}", ["gate", folder]))
        cases.append(Case(f"compare {name}", ["compare", good, folder]))
    garbage = ws.file("garbage.sqlite", os.urandom(8192))
    truncated = ws.root / "files" / "truncated.sqlite"
    data = (Path(good) / "store.sqlite").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    text_store = ws.file("text.sqlite", "this is not a database\n" * 200)
    for name, store in (("garbage", garbage), ("truncated", str(truncated)), ("text", text_store)):
        cases.append(Case(f"run --store {name}", run_args(ws, **{"--store": store})))
    policies = {
        "typo-metric": "rules:\n  - metric: mcqa.accuracyy\n    max_drop: 0.05\n",
        "unknown-probe": "rules:\n  - metric: nosuch.rate\n    max_drop: 0.05\n",
        "duplicate-key": "rules:\n  - metric: mcqa.accuracy\n    max_drop: 0.05\n    max_drop: 0.5\n",
        "latin1": "rules:\n  - metric: mcqa.accur\xe9cy\n",
        "not-mapping": "- 1\n- 2\n",
        "rules-int": "rules: 5\n",
        "nan-threshold": "rules:\n  - metric: mcqa.accuracy\n    max_drop: .nan\n",
        "markup": "rules:\n  - metric: '[/red]'\n    max_drop: 0.1\n",
        "huge-int": "rules:\n  - metric: mcqa.accuracy\n    max_drop: " + "9" * 5000 + "\n",
        "empty": "",
    }
    for name, text in policies.items():
        raw = text.encode("latin-1") if name == "latin1" else text
        path = ws.file(f"policy-{name}.yaml", raw)
        cases.append(Case(f"gate --policy {name}", ["gate", good, "--policy", path], ERROR))
    return cases


def manifest_cases(ws: Workspace) -> list[Case]:
    tiny = ws.path("tiny")
    base = {"format": "compsafe-integrity/1", "files": [{"path": "config.json", "sha256": "0" * 64}]}
    manifests = {
        "non-string-path": {**base, "files": [{"path": 5, "sha256": "0" * 64}]},
        "list-path": {**base, "files": [{"path": ["a"], "sha256": "0" * 64}]},
        "files-int": {**base, "files": 5},
        "sha-int": {**base, "files": [{"path": "config.json", "sha256": 5}]},
        "size-str": {**base, "files": [{"path": "config.json", "sha256": "0" * 64, "size": "big"}]},
        "traversal": {**base, "files": [{"path": "../../etc/passwd", "sha256": "0" * 64}]},
        "absolute": {**base, "files": [{"path": "/etc/hostname", "sha256": "0" * 64}]},
        "wrong-format": {"format": "other", "files": []},
        "huge-int": '{"format": "compsafe-integrity/1", "files": [], "x": ' + "1" * 5000 + "}",
        "not-json": "{oops",
        "deep": "[" * 100_000 + "]" * 100_000,
        "latin1": b'{"format": "compsafe-integrity/1", "files": [{"path": "\xe9", "sha256": "0"}]}',
        "surrogate-path": '{"format": "compsafe-integrity/1", "files": [{"path": "\\ud800", "sha256": "00"}]}',
    }
    cases = []
    for name, content in manifests.items():
        raw = json.dumps(content) if isinstance(content, dict) else content
        path = ws.file(f"manifest-{name}.json", raw)
        cases.append(Case(f"verify manifest {name}", ["verify", str(tiny), "--manifest", path]))

    def verified_folder(name: str, edit: Callable[[Path], None]) -> str:
        folder = ws.root / "verified" / name
        shutil.copytree(tiny, folder)
        from compsafe.manifest import write_manifest

        write_manifest(folder)
        edit(folder)
        return str(folder)

    outside = ws.file("outside.txt", "secret")
    extra = {
        "dangling-symlink": lambda f: (f / "ghost.safetensors").symlink_to(f / "does-not-exist"),
        "fifo": lambda f: os.mkfifo(f / "pipe"),
        "symlink-outside": lambda f: (f / "link.txt").symlink_to(outside),
        "symlink-dir-loop": lambda f: (f / "loop").symlink_to(f),
        "swap-weights-for-symlink": lambda f: (
            (f / "real.bin").write_bytes(_safetensors_file(f).read_bytes()),
            _safetensors_file(f).unlink(),
            (f / "model.safetensors").symlink_to(f / "real.bin"),
        ),
    }
    for name, edit in extra.items():
        cases.append(Case(f"verify {name}", ["verify", verified_folder(name, edit)], EXIT1))
    cases.append(Case("manifest --out long", ["manifest", str(tiny), "--out", "x" * 5000]))
    cases.append(
        Case("manifest fifo folder", ["manifest", verified_folder("fifo-manifest", lambda f: os.mkfifo(f / "p"))], ANY)
    )
    return cases


def other_command_cases(ws: Workspace) -> list[Case]:
    tiny = str(ws.path("tiny"))
    cases = []
    for name, content in {
        "latin1": b"\xe9\xff",
        "huge-int": b'{"blocks": {"ranked_by_selectivity": [' + b"1" * 5000 + b"]}}",
        "list": b"[1, 2]",
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "recipe-mismatch": b'{"recipe": 5, "blocks": {"ranked_by_selectivity": "abc"}}',
    }.items():
        path = ws.file(f"ranking-{name}.json", content)
        cases.append(
            Case(
                f"mitigate --ranking {name}",
                ["mitigate", "--model", tiny, "--ranking", path, "--device", "cpu", "--recipe", "int8"],
                subprocess=True,
            )
        )
    for name, content in {
        "latin1": b"\xe9\xff",
        "not-json": b"{oops",
        "huge-int": b'{"seed": ' + b"1" * 5000 + b"}",
        "list": b"[1]",
        "deep": b"[" * 100_000 + b"]" * 100_000,
    }.items():
        path = ws.file(f"canaries-{name}.json", content)
        cases.append(
            Case(
                f"plant-canaries --canaries {name}",
                ["plant-canaries", "--model", tiny, "--out", ws.out(), "--canaries", path],
            )
        )
        cases.append(Case(f"run privacy:{name}", run_args(ws, **{"--probes": f"privacy:{path}"})))
        cases.append(Case(f"run backdoor:{name}", run_args(ws, **{"--probes": f"backdoor:{path}"})))
    for option, value in (
        ("--placement", "middle"),
        ("--trigger", ""),
        ("--target", ""),
        ("--prompts", "0"),
        ("--epochs", "0"),
        ("--trigger", "x" * 5000),
    ):
        cases.append(
            Case(
                f"plant-backdoor {option} {value[:10]!r}",
                ["plant-backdoor", "--model", tiny, "--out", ws.out(), option, value],
                subprocess=True,
            )
        )
    for option, value in (
        ("--layers", "0"),
        ("--width-ratio", "5"),
        ("--temperature", "-1"),
        ("--alpha", "2"),
        ("--epochs", "0"),
        ("--lr", "nan"),
        ("--data-dir", str(ws.root / "files")),
    ):
        cases.append(
            Case(
                f"distill {option} {value[:10]}",
                ["distill", "--model", tiny, "--out", ws.out(), option, value],
                subprocess=True,
            )
        )
    for option, value in (
        ("--targets", "everything"),
        ("--safety-weight", "-1"),
        ("--epochs", "0"),
        ("--recipe", "int４"),
        ("--probes", "mcqa,,perplexity"),
    ):
        cases.append(
            Case(
                f"recover {option} {value}",
                ["recover", "--model", tiny, "--out", ws.out(), "--recipe", "int8", option, value],
                subprocess=True,
            )
        )
    for option, value in (
        ("--blocks", "a-b"),
        ("--blocks", "5-2"),
        ("--blocks", "99"),
        ("--prompts", "-1"),
        ("--recipe", "[/red]"),
    ):
        cases.append(
            Case(
                f"sensitivity {option} {value}",
                ["sensitivity", "--model", tiny, "--device", "cpu", option, value, "--no-judged", "--no-heads"],
                subprocess=True,
            )
        )
    for option, value in (
        ("--keep-mode", "keep4"),
        ("--signal", "vibes"),
        ("--max-refusal-drop", "-1"),
        ("--budget-bits", "0"),
    ):
        cases.append(
            Case(
                f"mitigate {option} {value}",
                ["mitigate", "--model", tiny, "--device", "cpu", option, value],
                subprocess=True,
            )
        )
    cases.append(Case("scan not a run folder", ["scan", str(ws.root / "files")]))
    cases.append(
        Case(
            "compress --out existing file",
            ["compress", "--recipe", "int8", "--model", tiny, "--out", ws.file("occupied.txt", "x")],
        )
    )
    return cases


def path_and_training_data_cases(ws: Workspace, make_run: Callable[[str], str]) -> list[Case]:
    """Blank / multi-line path options of every command, malformed training data, damaged record files."""
    tiny = str(ws.path("tiny"))
    cases = []
    for label, value in (("blank", "   "), ("newline", "out\nmore")):
        for command in (
            ["compress", "--recipe", "int8", "--model", tiny, "--out"],
            ["sensitivity", "--model", tiny, "--no-judged", "--no-heads", "--out"],
            ["distill", "--model", tiny, "--out"],
            ["plant-canaries", "--model", tiny, "--out"],
            ["manifest"],
            ["verify"],
            ["report"],
            ["gate"],
            ["judge"],
        ):
            cases.append(Case(f"{command[0]} path {label}", [*command, value], subprocess=True))
    shipped = ROOT / "src" / "compsafe" / "data"
    for name, content in {
        "latin1": b"\xe9\xff",
        "not-json": b"{oops\n",
        "no-response": b'{"prompt": "hi"}\n',
        "nan": b'{"prompt": "hi", "response": NaN}\n',
        "huge-int": b'{"prompt": "hi", "response": "x", "n": ' + b"1" * 5000 + b"}\n",
    }.items():
        folder = ws.root / "data-dirs" / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped / "benign_train.jsonl", folder / "benign_train.jsonl")
        (folder / "safety_train.jsonl").write_bytes(content)
        cases.append(
            Case(
                f"distill --data-dir {name}", ["distill", "--model", tiny, "--out", ws.out(), "--data-dir", str(folder)]
            )
        )
    good = make_run("records-run")
    for name, content in {
        "latin1": b"\xe9\xff",
        "not-json": b"{oops\n",
        "deep": b"[" * 100_000 + b"]" * 100_000,
    }.items():
        folder = ws.root / "runs" / f"records-{name}"
        shutil.copytree(good, folder)
        for records in (folder / "records").rglob("*.jsonl"):
            records.write_bytes(content)
        cases.append(Case(f"rejudge damaged records {name}", ["rejudge", str(folder), "--judge", "phrase"]))
    return cases


def make_run_factory(ws: Workspace) -> Callable[[str], str]:
    def make(name: str) -> str:
        out = str(ws.root / "runs" / f"{name}-source")
        code, output, _, _ = invoke_inprocess(run_args(ws, **{"--out": out, "--variants": "int8"}), {})
        if code != 0:
            raise SystemExit(f"could not build the reference run: {output[-400:]}")
        return out

    return make


def all_cases(ws: Workspace) -> list[Case]:
    make_run = make_run_factory(ws)
    return [
        *string_cases(ws),
        *config_cases(ws),
        *item_file_cases(ws),
        *calibration_cases(ws),
        *model_cases(ws),
        *recovered_cases(ws),
        *run_folder_cases(ws, make_run),
        *manifest_cases(ws),
        *other_command_cases(ws),
        *path_and_training_data_cases(ws, make_run),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filter", default="", help="Only cases whose name contains this.")
    parser.add_argument("--json", type=Path, help="Write every outcome here.")
    parser.add_argument("--timeout", type=int, default=120, help="Seconds before a case counts as hung.")
    options = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = Path(tempfile.mkdtemp(prefix="compsafe-corpus-"))
    cwd = os.getcwd()
    os.chdir(root)  # a case that writes into the working directory writes here, not into the checkout
    try:
        ws = build_workspace(root)
        cases = [c for c in all_cases(ws) if options.filter in c.name]
        outcomes = []
        for index, case in enumerate(cases, start=1):
            # a surrogate in an argument leaves click's in-process streams unusable: those go to a subprocess
            isolated = case.subprocess or any("\udc80" <= ch <= "\udcff" for arg in case.args for ch in arg)
            invoke = invoke_subprocess if isolated else invoke_inprocess
            code, output, traceback, seconds = invoke(case.args, case.env, options.timeout)
            if not isolated and "PYTHONIOENCODING" in output:  # rich kept an unprintable earlier case buffered
                code, output, traceback, seconds = invoke_subprocess(case.args, case.env, options.timeout)
            verdict = classify(case, code, output, traceback, seconds)
            last = [line for line in output.strip().splitlines() if line.strip()]
            detail = last[-1][:200] if last else ""
            outcomes.append(Outcome(case.name, verdict, code, round(seconds, 1), detail))
            print(
                f"[{index}/{len(cases)}] {verdict:9} exit={code} {seconds:5.1f}s {case.name[:70]!r}: {detail[:110]!r}",
                flush=True,
            )
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)
    counts = Counter(o.verdict for o in outcomes)
    print(
        f"tried {len(outcomes)}: "
        + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("clean", "traceback", "silent", "noisy"))
    )
    if options.json:
        options.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
