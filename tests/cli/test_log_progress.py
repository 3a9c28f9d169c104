"""Non-terminal progress: timed plain lines (done, rate, ETA) instead of a final dump of rich bars."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.cli.log_progress import LogObserver, interval_from_env


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_the_interval_with_rate_and_eta() -> None:
    lines: list[str] = []
    clock = FakeClock()
    observer = LogObserver(lines.append, interval=10, clock=clock)
    advance = observer.task("base · refusal", 100)
    for _ in range(9):  # 9 items over 45 s: one line at 10 s, 20 s, 30 s, 40 s
        clock.now += 5
        advance(1)
    clock.now += 5
    observer.done("base · refusal")
    assert lines[0] == "base · refusal: 0/100"
    assert lines[1] == "base · refusal: 2/100 (2%, 0.20 items/s, ETA 8 min 10 s)"
    assert len(lines) == 1 + 4 + 1
    assert lines[-1] == "base · refusal: 100/100 done in 50 s, 2.00 items/s"


def test_zero_interval_prints_every_advance_but_not_the_last_twice() -> None:
    lines: list[str] = []
    clock = FakeClock()
    observer = LogObserver(lines.append, interval=0, clock=clock)
    advance = observer.task("t", 3)
    for _ in range(3):
        clock.now += 1
        advance(1)
    observer.done("t")
    assert [line.split(" (")[0] for line in lines] == ["t: 0/3", "t: 1/3", "t: 2/3", "t: 3/3 done in 3 s, 1.00 items/s"]


@pytest.mark.parametrize(("raw", "expected"), [("", 10.0), ("2.5", 2.5), ("-1", 10.0), ("nan", 10.0), ("x", 10.0)])
def test_interval_from_env(monkeypatch, raw: str, expected: float) -> None:
    monkeypatch.setenv("COMPSAFE_PROGRESS_INTERVAL", raw)
    assert interval_from_env() == expected


def test_a_run_into_a_log_prints_plain_progress_lines(tiny_llama_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from conftest import tiny_mcqa_run_args

    monkeypatch.setenv("COMPSAFE_PROGRESS_INTERVAL", "0")
    result = CliRunner().invoke(app, tiny_mcqa_run_args(tiny_llama_dir, tmp_path / "run"))  # not a terminal
    assert result.exit_code == 0, result.output
    assert "base · mcqa: 0/" in result.output and "done in" in result.output
    assert "━" not in result.output.split("compsafe: variant vs base")[0]  # no bar frames before the table
