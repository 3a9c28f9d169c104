"""The run folder: per-item records as JSONL (one file per model and probe) and summary.json.

Files are written to a temporary name and renamed, so a killed run never leaves a half-written summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compsafe.errors import RunFolderError
from compsafe.summary import json_safe, summary_document


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", label).strip("_") or "model"


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename; on failure (full disk, permissions) the temporary file is
    removed and a one-line ``RunFolderError`` names the file and the fix."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise RunFolderError(
            f"cannot write {path} ({exc.strerror or exc}): free disk space or fix permissions and rerun "
            "(finished records are kept in the store)"
        ) from None


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A staging folder next to ``target`` to fill; on success it replaces ``target`` in one rename, and on any
    error it is removed, so ``target`` is never half-written (a cache entry, an exported model)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_run(out: Path, summary: dict[str, Any], records: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for label, by_probe in records.items():
        for probe, rows in by_probe.items():
            lines = "".join(json.dumps(json_safe(r), ensure_ascii=False) + "\n" for r in rows)
            atomic_write(record_file(out, label, probe), lines)
    atomic_write(out / "summary.json", json.dumps(summary_document(summary), indent=2, ensure_ascii=False) + "\n")


def record_file(run_dir: Path, label: str, probe: str) -> Path:
    """Where ``write_run`` keeps one model's records of one probe."""
    return Path(run_dir) / "records" / safe_name(label) / f"{probe}.jsonl"


def read_record_file(path: Path) -> list[dict[str, Any]]:
    """A run's records file read back with compsafe's JSON limits; a damaged file (not UTF-8, not one JSON object
    per line) is a one-line RunFolderError naming the file and line, with the way out."""
    from compsafe.errors import DataFileError
    from compsafe.jsonio import jsonl_objects, read_text_file

    try:
        return [row for _, row in jsonl_objects(read_text_file(path, "records file"), str(path))]
    except DataFileError as exc:
        raise RunFolderError(f"{exc} (the run folder is damaged: rerun `compsafe run` into it to rewrite it)") from None
