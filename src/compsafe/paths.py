"""Path checks on user strings that never raise.

``Path.exists()`` and friends raise on strings that cannot be paths at all: a name longer than the OS limit
(``OSError: File name too long``) or an embedded NUL byte (``ValueError``). A recipe or hub id is checked as a
path first, so such a string must read as "no such path" and reach the usual one-line error.
"""

from __future__ import annotations

from pathlib import Path


def exists(path: str | Path) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: expanduser of an unknown ~user
        return False


def is_file(path: str | Path) -> bool:
    try:
        return Path(path).expanduser().is_file()
    except (OSError, ValueError, RuntimeError):
        return False


def is_dir(path: str | Path) -> bool:
    try:
        return Path(path).expanduser().is_dir()
    except (OSError, ValueError, RuntimeError):
        return False
