"""What every command shares: the typer app, the consoles, the one error wrapper, progress display.

A command module registers its commands with ``@command()`` (not ``@app.command()``): the wrapper turns a
``CompsafeError`` into one line on stderr and exit code 2, so no command repeats a ``try/except`` and the
behaviour is the same through the console script, ``python -m compsafe`` and typer's test runner.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from compsafe.cli.log_progress import LogObserver
from compsafe.errors import CompsafeError
from compsafe.paths import check_path_option

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure what compression does to an LLM's safety alignment, against capability.",
)
for _stream in (sys.stdout, sys.stderr):  # a path from argv can hold undecodable bytes: print them escaped
    if hasattr(_stream, "reconfigure"):
        _stream.reconfigure(errors="backslashreplace")
console = Console()
err_console = Console(stderr=True)

Command = TypeVar("Command", bound=Callable[..., Any])


def print_error(exc: BaseException) -> None:
    """One line on stderr: the message is user text (paths, recipes), so it is escaped, never read as markup,
    and any line breaks in it (a multi-line library message, a file name with a newline) are folded."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    # lone surrogates (undecodable argv bytes, a "\ud800" escape in a user's file) cannot be encoded: escape them
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(exc: CompsafeError) -> None:
    """Print a user error as one line (its text never read as markup) and exit 2."""
    print_error(exc)
    raise typer.Exit(code=2)


def _is_argument(function: Callable[..., Any], name: str) -> bool:
    """Whether ``name`` is a positional argument (typer.Argument) rather than an option of ``function``."""
    import inspect
    import typing

    parameter = inspect.signature(function).parameters.get(name)
    if parameter is None:
        return False
    hints = typing.get_type_hints(function, include_extras=True)
    metadata = getattr(hints.get(name), "__metadata__", ())
    return any(isinstance(m, typer.models.ArgumentInfo) for m in (*metadata, parameter.default))


def check_path_arguments(function: Callable[..., Any], arguments: dict[str, Any]) -> None:
    """Every path-typed option of every command refuses a blank path, a NUL byte or a line break, named by the
    flag the user typed (``--out``) or the argument's metavar (``RUN_DIR``)."""
    for name, value in arguments.items():
        if isinstance(value, Path):
            option = name.upper() if _is_argument(function, name) else "--" + name.replace("_", "-")
            check_path_option(option, value)


def command(name: str | None = None) -> Callable[[Command], Command]:
    """Register a command on ``app`` inside the one CompsafeError -> exit 2 wrapper."""

    def register(function: Command) -> Command:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                check_path_arguments(function, kwargs)
                return function(*args, **kwargs)
            except CompsafeError as exc:
                fail(exc)

        app.command(name)(guarded)
        return function

    return register


@app.callback()
def quiet_libraries() -> None:
    """Silence transformers/tokenizers chatter once, before any command runs."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def log_step(message: str) -> None:
    """One dimmed progress line (training, export, sensitivity, mitigation); the message is plain text."""
    console.print(f"[dim]·[/] {escape(message)}", highlight=False)


def say(text: str) -> None:
    """Print plain user text (paths, recipes, numbers): never read as markup, never highlighted."""
    console.print(text, markup=False, highlight=False)


class RichObserver:
    """Progress bars for long work, one line per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def stage(self, message: str) -> None:
        self.progress.console.print(f"[dim]·[/] {escape(message)}")

    def task(self, description: str, total: int) -> Callable[[int], None]:
        task_id = self.progress.add_task(escape(description), total=total)
        self.tasks[description] = task_id
        return lambda n: self.progress.advance(task_id, n)

    def done(self, description: str) -> None:
        task_id = self.tasks.pop(description, None)
        if task_id is not None:
            self.progress.update(task_id, completed=self.progress.tasks[task_id].total)


@contextmanager
def progress_observer() -> Iterator[RichObserver | LogObserver]:
    """The run observer every command that runs a study uses: bars with counts and elapsed time on a terminal,
    plain timed lines (items done, rate, ETA) when stdout is a file or a CI log (``cli/log_progress.py``)."""
    if not console.is_terminal:
        yield LogObserver(lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        yield RichObserver(progress)
