"""One run folder, one writer: an advisory lock on ``--out`` and on the store, and the run's compute clock.

Two runs into the same ``--out`` used to both compute everything and race on ``summary.json``; the second now
refuses at once, naming the holder's process id. The lock is ``fcntl.flock`` on a small file, so it is
released by the kernel when the holder exits, however it exits (a kill -9 leaves no stale lock).

A resumed run used to report only the last invocation's time. ``RunClock`` keeps the compute time of every
invocation in ``OUT/.compsafe-clock.json``, saved after each committed batch, so the summary can report both
the last invocation's seconds and the total across invocations (a killed invocation counts up to its last
committed batch).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import IO

from compsafe import paths
from compsafe.errors import RunFolderError

LOCK_NAME = ".compsafe.lock"
CLOCK_NAME = ".compsafe-clock.json"


@contextmanager
def _locked(lock_path: Path, what: str, fix: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, run unguarded
        yield
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = lock_path.open("a+", encoding="utf-8")
    except OSError as exc:
        raise RunFolderError(
            f"cannot create the lock file {lock_path} ({exc.strerror or exc}): choose a writable folder, or {fix}"
        ) from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunFolderError(
                f"{what} is in use by a running compsafe ({holder}): wait for it to finish, or {fix}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first (what creating it would add)."""
    missing = []
    for parent in Path(path).absolute().parents:
        if paths.exists(parent):  # never raises: a name past the OS limit reads as missing
            break
        missing.append(parent)
    return missing


def _remove_if_ours(files: list[Path], folders: list[Path]) -> None:
    """Undo what taking the locks created: the lock files, then the folders made for them if left empty."""
    for path in files:
        with suppress(OSError):
            path.unlink(missing_ok=True)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with suppress(OSError):
            folder.rmdir()  # only succeeds on an empty folder: a folder the run wrote into stays


@contextmanager
def run_locks(out: Path, store: Path) -> Iterator[None]:
    """Hold the run folder and the results store for the duration of a run (refuse when either is held).

    A run that fails (bad input found late, a model that does not load) leaves nothing behind that taking the
    locks created: the lock files it made and the folders made only to hold them are removed again, so a typo
    does not leave a run folder with nothing in it but locks.
    """
    out_lock = Path(out) / LOCK_NAME
    store_lock = Path(store).with_name(Path(store).name + ".lock")
    created = [p for p in dict.fromkeys((out_lock, store_lock)) if not paths.exists(p)]
    folders = list(dict.fromkeys(_missing_parents(out_lock) + _missing_parents(store_lock)))
    try:
        with ExitStack() as stack:
            stack.enter_context(_locked(out_lock, f"run folder {out}", "pass another --out"))
            stack.enter_context(_locked(store_lock, f"results store {store}", "pass another --store"))
            yield
    except BaseException:
        if created:
            _remove_if_ours(created, folders)
        raise


class RunClock:
    """Seconds of compute of this invocation and of all invocations into one run folder."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / CLOCK_NAME
        self.started = time.time()
        earlier = self._read()
        self.earlier_seconds = float(earlier.get("seconds", 0.0))
        self.invocations = int(earlier.get("invocations", 0)) + 1
        self.last_saved = 0.0

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        valid = isinstance(data, dict) and isinstance(data.get("seconds"), int | float) and data["seconds"] >= 0
        return data if valid and isinstance(data.get("invocations"), int) else {}

    @property
    def this_invocation(self) -> float:
        return time.time() - self.started

    @property
    def all_invocations(self) -> float:
        return self.earlier_seconds + self.this_invocation

    def save(self, force: bool = False) -> None:
        """Persist the running total (at most every few seconds unless forced); a failed write is not fatal."""
        now = time.time()
        if not force and now - self.last_saved < 5:
            return
        self.last_saved = now
        payload = json.dumps({"seconds": round(self.all_invocations, 2), "invocations": self.invocations})
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(payload, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "this_invocation": round(self.this_invocation, 2),
            "all_invocations": round(self.all_invocations, 2),
            "invocations": self.invocations,
        }
