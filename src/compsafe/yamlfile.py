"""Strict YAML reading for user files (policies, profiles): duplicate keys and undecodable bytes are errors.

PyYAML's ``safe_load`` keeps the last of two equal keys, so a policy with ``max_drop`` written twice silently
checks one of them; a file that is not UTF-8 raised a UnicodeDecodeError traceback. Both are user mistakes
that deserve one line naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from compsafe.errors import CompsafeError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping holding the same key twice."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: let the constructor report it
            break
        if duplicate:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (line {line})",
                                                    key_node.start_mark)  # fmt: skip
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


MAX_YAML_DEPTH = 64


def flow_depth(text: str) -> int:
    """Deepest nesting of YAML flow brackets (``[[[...``), found without parsing: PyYAML takes seconds and
    then overflows the stack on 5,000 levels."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _problem(exc: BaseException) -> str:
    """One line for a YAML failure: the problem and its line, without PyYAML's multi-line excerpt."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark is not None else ""
        return f"{exc.problem}{line}"
    return " ".join(str(exc).split())[:300]


def parse_yaml(text: str, source: str, error: type[CompsafeError]) -> Any:
    """Parse YAML text strictly; any problem is ``error`` with one line naming ``source``."""
    if flow_depth(text) > MAX_YAML_DEPTH:
        raise error(f"{source} is not valid YAML: nested deeper than {MAX_YAML_DEPTH} levels")
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        if exc.problem and exc.problem.startswith("duplicate key"):
            raise error(f"{source}: {exc.problem}; each key may appear once") from exc
        raise error(f"{source} is not valid YAML: {_problem(exc)}") from exc
    except (yaml.YAMLError, RecursionError, ValueError) as exc:  # ValueError: a 5,000-digit integer
        raise error(f"{source} is not valid YAML: {_problem(exc)}") from exc
    from compsafe.errors import DataFileError
    from compsafe.jsonio import check_parsed

    try:
        check_parsed(data, source)  # YAML's "\ud800" escapes make lone surrogates: not text
    except DataFileError as exc:
        raise error(str(exc)) from None
    return data


def read_yaml(path: Path, what: str, error: type[CompsafeError]) -> Any:
    """Read and parse a YAML file strictly: unreadable, non-UTF-8, malformed or duplicate-key files are ``error``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
    return parse_yaml(text, f"{what} {path}", error)
