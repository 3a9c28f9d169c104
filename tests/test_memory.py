"""compsafe.memory: freed heap memory goes back to the OS at stage boundaries (glibc keeps it otherwise)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh interpreter (a test process's heap has a history that changes where blocks land): 60 KB blocks
# (under glibc's mmap threshold: heap memory), each followed by a 1 KB block that stays, so freeing them leaves
# holes in the middle of the heap that free() itself does not return. Prints resident anonymous KiB after the
# frees and after the trim, and what trim_freed_memory returned.
FRAGMENT = """
from compsafe.memory import trim_freed_memory
def anon():
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("RssAnon:"))
blocks, kept = [], []
for _ in range(1000):
    blocks.append(b"x" * 60_000)
    kept.append(b"k" * 1_000)
del blocks
holding = anon()
trimmed = trim_freed_memory()
print(holding, anon(), trimmed, len(kept))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_hands_freed_heap_pages_back() -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, env=env, check=True)
    holding, after, trimmed, kept = out.stdout.split()
    assert holding != after and trimmed == "True" and kept == "1000"
    assert int(holding) - int(after) > 30_000  # most of the ~57 MiB freed is no longer resident


def test_trim_is_a_no_op_without_glibc(monkeypatch) -> None:
    import compsafe.memory as memory

    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.trim_freed_memory() is False
    assert memory.return_freed_memory() is False
