"""The one error wrapper of the `compsafe` command: every user error is one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app


@pytest.mark.parametrize(
    "args",
    [
        ["gate", "{tmp}/[/red]missing"],
        ["verify", "{tmp}/[bold]not-a-model"],
        ["report", "{tmp}/[/]nothing"],
    ],
)
def test_user_error_with_markup_characters_is_one_plain_line(tmp_path: Path, args: list[str]) -> None:
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert argv[1].split("/")[-1] in lines[0]  # printed literally, not swallowed as a markup tag
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_console_script_entry_point_reports_errors_in_one_line(tmp_path: Path) -> None:
    code = "import sys; sys.argv = ['compsafe', 'gate', sys.argv[1]]; from compsafe.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "no-run")], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
