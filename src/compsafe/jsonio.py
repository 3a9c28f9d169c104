"""Reading user JSON with limits: a file a user hands compsafe must fail in one line, never crash or hang.

Python's ``json`` accepts things that break later stages: a 5,000-digit integer (a ValueError from the int
conversion limit, or a huge number a probe then multiplies), nesting deep enough to overflow the recursion
limit, ``NaN``/``Infinity`` literals (not JSON), and lone surrogates (``"\\ud800"``) that cannot be written
back as UTF-8 (to the store, a report, a record). ``loads_checked`` rejects each with a ``DataFileError``.

Limits: nesting depth and integer digits, see ``compsafe.limits`` (environment variables override them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compsafe.errors import DataFileError
from compsafe.limits import json_max_depth as max_depth
from compsafe.limits import json_max_number_digits as max_number_digits


class _Rejected(ValueError):
    """A value json parsed but compsafe refuses (raised from a parse hook, reported with its reason)."""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > max_number_digits():
        raise _Rejected(
            f"an integer with {digits} digits (limit {max_number_digits()}, COMPSAFE_JSON_MAX_NUMBER_DIGITS)"
        )
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > max_number_digits() + 32:
        raise _Rejected(f"a {len(text)}-character number (limit {max_number_digits()} digits)")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Rejected(f"the number {text[:20]}... overflows a float")
    return value


def _parse_constant(name: str) -> Any:
    raise _Rejected(f"{name} (not JSON: write null or a number)")


def check_value(value: Any, limit_depth: int | None = None) -> None:
    """Walk a parsed value iteratively: depth within the limit, every string encodable as UTF-8."""
    limit_depth = limit_depth or max_depth()
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Rejected("a lone surrogate (\\ud800-\\udfff) in a string, which is not text") from None
            continue
        if isinstance(item, dict | list):
            if depth >= limit_depth:
                raise _Rejected(f"nesting deeper than {limit_depth} levels (COMPSAFE_JSON_MAX_DEPTH)")
            children = list(item.items()) if isinstance(item, dict) else item
            for child in children:
                if isinstance(child, tuple):  # a (key, value) pair of an object
                    stack.append((child[0], depth + 1))
                    stack.append((child[1], depth + 1))
                else:
                    stack.append((child, depth + 1))


def _keep_constant(name: str) -> float:
    return float(name)


def check_parsed(value: Any, origin: str) -> None:
    """``check_value`` for data parsed by another reader (YAML): a ``DataFileError`` naming ``origin``."""
    try:
        check_value(value)
    except _Rejected as exc:
        raise DataFileError(f"{origin}: refused {exc}") from None


def loads_checked(text: str, origin: str, *, non_finite: bool = False) -> Any:
    """``json.loads`` with compsafe's limits; a ``DataFileError`` naming ``origin`` on anything rejected.

    ``non_finite``: read ``NaN``/``Infinity`` as floats, for a reader whose schema then names where they are."""
    constant = _keep_constant if non_finite else _parse_constant
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=constant)
    except _Rejected as exc:
        raise DataFileError(f"{origin}: refused {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DataFileError(f"{origin}: refused nesting deeper than {max_depth()} levels") from None
    except ValueError as exc:  # e.g. the interpreter's own int conversion limit
        raise DataFileError(f"{origin}: refused {' '.join(str(exc).split())[:160]}") from None
    try:
        check_value(value)
    except _Rejected as exc:
        raise DataFileError(f"{origin}: refused {exc}") from None
    return value


def read_text_file(path: Path, what: str) -> str:
    """A user's text file as UTF-8, or a one-line ``DataFileError`` (missing, unreadable, not UTF-8)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataFileError(f"{what} {path} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise DataFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_json_file(path: Path, what: str, *, non_finite: bool = False) -> Any:
    """A user's JSON file, read and checked (``loads_checked``)."""
    return loads_checked(read_text_file(path, what), f"{what} {path}", non_finite=non_finite)


def jsonl_objects(text: str, origin: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL text, each read with compsafe's JSON limits
    (``loads_checked``); a line that is not one JSON object is a one-line DataFileError naming
    ``origin:line`` (every JSONL reader shares these messages)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = loads_checked(line, f"{origin}:{number}")
        if not isinstance(row, dict):
            raise DataFileError(f"{origin}:{number}: expected a JSON object per line, got {type(row).__name__}")
        yield number, row
