"""The limits compsafe puts on user input, in one place, each overridable by an environment variable.

| limit | default | override |
|---|---|---|
| nesting depth of a JSON file | 64 | ``COMPSAFE_JSON_MAX_DEPTH`` |
| digits of one JSON integer | 100 | ``COMPSAFE_JSON_MAX_NUMBER_DIGITS`` |
| characters of one item text field (prompt, passage, question) | 100,000 | ``COMPSAFE_MAX_ITEM_CHARS`` |
| tokens fed at once (prompt + new tokens; calibration window) | model context | ``COMPSAFE_MAX_SEQ_LEN`` |

Why: each was a crash or a hang in issue 14 (a 5,000-digit integer, 100,000-deep nesting, a 1 MB prompt
tokenized and run for minutes, ``--calibration-seq-len 1e8`` allocating 25 GB). A limit fails in one line
naming the limit and its variable, before the expensive work starts.
"""

from __future__ import annotations

import os

from compsafe.errors import ConfigError

JSON_MAX_DEPTH = 64
JSON_MAX_NUMBER_DIGITS = 100
MAX_ITEM_CHARS = 100_000


def _from_env(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise ConfigError(f"{name}={raw!r} must be a whole number >= {minimum}: unset it or give e.g. {default}")
    return int(raw)


def json_max_depth() -> int:
    return _from_env("COMPSAFE_JSON_MAX_DEPTH", JSON_MAX_DEPTH)


def json_max_number_digits() -> int:
    return _from_env("COMPSAFE_JSON_MAX_NUMBER_DIGITS", JSON_MAX_NUMBER_DIGITS)


def max_item_chars() -> int:
    return _from_env("COMPSAFE_MAX_ITEM_CHARS", MAX_ITEM_CHARS)


def max_sequence_length(context: int) -> int:
    """Longest token sequence fed to a model whose config gives ``context`` positions."""
    return _from_env("COMPSAFE_MAX_SEQ_LEN", context, minimum=8)
