"""Path checks on user strings that never raise.

``Path.exists()`` and friends raise on strings that cannot be paths at all: a name longer than the OS limit
(``OSError: File name too long``) or an embedded NUL byte (``ValueError``). A recipe or hub id is checked as a
path first, so such a string must read as "no such path" and reach the usual one-line error.
"""

from __future__ import annotations

from pathlib import Path

MAX_NAME_BYTES = 255  # NAME_MAX of Linux, macOS and Windows file systems
MAX_PATH_BYTES = 4095  # PATH_MAX - 1 on Linux


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


def check_path_option(option: str, path: Path) -> None:
    """Refuse a path a user cannot have meant: blank (``--out '   '`` would write a folder named by spaces),
    holding a NUL byte (no OS accepts one) or a line break (a pasted second line)."""
    from compsafe.errors import ConfigError

    text = str(path)
    if not text.strip():
        raise ConfigError(f"{option} is blank: pass a file or folder path")
    if "\x00" in text:
        raise ConfigError(f"{option} holds a NUL byte: pass a file or folder path")
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{option} holds a line break: pass a single file or folder path")
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in Path(text).parts), default=0)
    if longest > MAX_NAME_BYTES or len(text.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise ConfigError(
            f"{option} is too long for a path ({len(text)} characters, a name of {longest} bytes; "
            f"the limits are {MAX_NAME_BYTES} per name and {MAX_PATH_BYTES} in all): pass a shorter path"
        )
