"""Progress for logs: plain lines at a steady interval when stdout is not a terminal.

rich's live bars redraw in place; written to a file or a CI log they show nothing until the end and then dump
the final frame, so a long run in CI looks hung. When the console is not a terminal the CLI uses this observer
instead: one line when a task starts, one every ``interval`` seconds while it advances (items done, rate, ETA),
one when it finishes. ``COMPSAFE_PROGRESS_INTERVAL`` sets the interval in seconds (default 10; 0 prints every
advance).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_INTERVAL_SECONDS = 10.0


def interval_from_env() -> float:
    """The interval ``COMPSAFE_PROGRESS_INTERVAL`` asks for, or the default when unset or not a number >= 0."""
    raw = os.environ.get("COMPSAFE_PROGRESS_INTERVAL", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_INTERVAL_SECONDS
    return value if value >= 0 and value == value and value != float("inf") else DEFAULT_INTERVAL_SECONDS


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class _Task:
    total: int
    started: float
    done: int = 0
    last_line: float = field(default=0.0)


class LogObserver:
    """A ``RunObserver`` that writes plain progress lines (``write`` gets each line, without markup)."""

    def __init__(
        self,
        write: Callable[[str], None],
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.interval = interval_from_env() if interval is None else interval
        self.clock = clock
        self.tasks: dict[str, _Task] = {}

    def stage(self, message: str) -> None:
        self.write(f"· {message}")

    def task(self, description: str, total: int) -> Callable[[int], None]:
        now = self.clock()
        state = _Task(total=total, started=now, last_line=now)
        self.tasks[description] = state
        self.write(f"{description}: 0/{total}")

        def advance(n: int) -> None:
            state.done += n
            now = self.clock()
            if now - state.last_line >= self.interval and state.done < state.total:
                state.last_line = now
                self.write(self._line(description, state, now))

        return advance

    def done(self, description: str) -> None:
        state = self.tasks.pop(description, None)
        if state is None:
            return
        elapsed = self.clock() - state.started
        rate = f", {state.total / elapsed:.2f} items/s" if elapsed > 0 else ""
        self.write(f"{description}: {state.total}/{state.total} done in {_duration(elapsed)}{rate}")

    @staticmethod
    def _line(description: str, state: _Task, now: float) -> str:
        elapsed = now - state.started
        rate = state.done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {_duration((state.total - state.done) / rate)}" if rate > 0 else ""
        share = 100 * state.done / state.total if state.total else 100.0
        return f"{description}: {state.done}/{state.total} ({share:.0f}%, {rate:.2f} items/s{eta})"
