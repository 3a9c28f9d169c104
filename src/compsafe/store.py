"""The results store: every finished item record is committed as it finishes (SQLite, WAL mode).

A record's key is (model key, probe query config) plus the item's id and a digest of its content, so
- a killed run resumes where it stopped and never duplicates a record (primary keys + INSERT OR REPLACE);
- ``--limit 20`` followed by a full run reuses the 20 finished items; an edited item is recomputed;
- a change of generation config, judge or probe version gets new keys (old records are not reused).
The base model's records are shared by every variant and by later runs pointed at the same store.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from compsafe.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key TEXT NOT NULL, item_id TEXT NOT NULL, item_digest TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (key, item_id, item_digest));
CREATE TABLE IF NOT EXISTS artifacts (
    key TEXT NOT NULL, item_id TEXT NOT NULL, item_digest TEXT NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (key, item_id, item_digest));
CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS variants (key TEXT PRIMARY KEY, info TEXT NOT NULL);
"""


def stable_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]


def item_digest(item_data: dict[str, Any]) -> str:
    return stable_hash(item_data)[:16]


CORRUPT_MARKERS = ("not a database", "malformed", "corrupt", "no such table", "no such column", "file is encrypted")


def is_corrupt(exc: BaseException) -> bool:
    return not isinstance(exc, sqlite3.OperationalError) or any(m in str(exc) for m in CORRUPT_MARKERS)


def corrupt_store(path: Path, exc: BaseException) -> StoreError:
    return StoreError(
        f"the results store {path} is damaged ({' '.join(str(exc).split())[:80]}): pass --store NEW.sqlite, or "
        f"delete {path} (its records are recomputed)"
    )


TABLES = ("keys", "records", "artifacts", "variants")
StoreRows = dict[str, list[tuple[Any, ...]]]  # table -> its rows, as plain data (what a Ray task returns)


class ResultStore:
    """A thin, explicit layer over one SQLite file (or, for a Ray task, over memory: ``ResultStore.memory()``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(str(path), timeout=60)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.executescript(SCHEMA)
            self.connection.commit()
            self.connection.execute("SELECT count(*) FROM keys").fetchone()
        except sqlite3.DatabaseError as exc:
            if is_corrupt(exc):
                raise corrupt_store(path, exc) from None
            raise StoreError(
                f"cannot open the results store {path} ({exc}): choose a writable --out or --store"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot open the results store {path} ({exc}): choose a writable --out or --store"
            ) from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read; a store found damaged mid-run is named with the way out, not a sqlite traceback."""
        try:
            yield self.connection
        except sqlite3.DatabaseError as exc:
            raise corrupt_store(self.path, exc) from None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction; a failure (disk full, read-only) rolls it back, so the store stays consistent."""
        try:
            with self.connection:
                yield self.connection
        except sqlite3.DatabaseError as exc:
            if is_corrupt(exc):  # anything but an OperationalError (disk full, read-only, locked) is damage
                raise corrupt_store(self.path, exc) from None
            raise StoreError(
                f"cannot write to the results store {self.path} ({exc}): free disk space or fix permissions and "
                "rerun; every record committed so far is kept and will not be recomputed"
            ) from exc

    def close(self) -> None:
        self.connection.close()

    def register_key(self, description: dict[str, Any]) -> str:
        key = stable_hash(description)
        with self._writing():
            self.connection.execute(
                "INSERT OR IGNORE INTO keys VALUES (?, ?)", (key, json.dumps(description, sort_keys=True))
            )
        return key

    def records(self, key: str) -> dict[tuple[str, str], dict[str, Any]]:
        with self._reading():
            rows = self.connection.execute(
                "SELECT item_id, item_digest, record FROM records WHERE key = ?", (key,)
            ).fetchall()
        try:
            return {(item_id, digest): json.loads(record) for item_id, digest, record in rows}
        except (ValueError, TypeError) as exc:
            raise corrupt_store(self.path, exc) from None

    def put_records(self, key: str, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Commit a batch of (item_id, item_digest, record) atomically."""
        with self._writing():
            self.connection.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                [(key, item_id, digest, json.dumps(record, ensure_ascii=False)) for item_id, digest, record in rows],
            )

    def put_artifact(self, key: str, item_id: str, digest: str, tensors: dict[str, torch.Tensor]) -> None:
        blob = save_safetensors({k: v.contiguous() for k, v in tensors.items()})
        with self._writing():
            self.connection.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?)", (key, item_id, digest, blob)
            )

    def get_artifact(self, key: str, item_id: str, digest: str) -> dict[str, torch.Tensor] | None:
        with self._reading():
            row = self.connection.execute(
                "SELECT blob FROM artifacts WHERE key = ? AND item_id = ? AND item_digest = ?", (key, item_id, digest)
            ).fetchone()
        return load_safetensors(io.BytesIO(row[0]).getvalue()) if row else None

    def put_variant(self, key: str, info: dict[str, Any]) -> None:
        with self._writing():
            self.connection.execute("INSERT OR REPLACE INTO variants VALUES (?, ?)", (key, json.dumps(info)))

    def get_variant(self, key: str) -> dict[str, Any] | None:
        with self._reading():
            row = self.connection.execute("SELECT info FROM variants WHERE key = ?", (key,)).fetchone()
        try:
            return json.loads(row[0]) if row else None
        except (ValueError, TypeError) as exc:
            raise corrupt_store(self.path, exc) from None

    # Rows as data: a Ray task computes into an in-memory store seeded with what it needs and hands back what it
    # wrote; the driver, the only process that opens the run's file, merges it (executors.ray_executor).

    @classmethod
    def memory(cls) -> ResultStore:
        """A private store in this process's memory: nothing on disk, nothing another process can see."""
        return cls(Path(":memory:"))

    def marks(self) -> dict[str, int]:
        """The highest row id of every table: ``rows_after(marks)`` is then exactly what was written since."""
        with self._reading():
            highest = "SELECT COALESCE(MAX(rowid), 0) FROM {}"
            return {t: self.connection.execute(highest.format(t)).fetchone()[0] for t in TABLES}

    def rows_after(self, marks: dict[str, int]) -> StoreRows:
        """Every row written after ``marks`` (INSERT OR REPLACE gives a replaced row a new, higher row id)."""
        with self._reading():
            return {
                t: [tuple(r) for r in self.connection.execute(f"SELECT * FROM {t} WHERE rowid > ?", (marks[t],))]
                for t in TABLES
            }

    def key_descriptions(self) -> dict[str, dict[str, Any]]:
        """Every registered key with what it stands for (model identity and probe query)."""
        with self._reading():
            rows = self.connection.execute("SELECT key, description FROM keys").fetchall()
        return {key: json.loads(description) for key, description in rows}

    def rows_for(self, keys: Iterable[str]) -> StoreRows:
        """The keys, records and artifacts under ``keys``, and the (small) variants table whole."""
        rows: StoreRows = {t: [] for t in TABLES}
        with self._reading():
            for key in keys:
                for table in ("keys", "records", "artifacts"):
                    found = self.connection.execute(f"SELECT * FROM {table} WHERE key = ?", (key,)).fetchall()
                    rows[table].extend(tuple(r) for r in found)
            rows["variants"] = [tuple(r) for r in self.connection.execute("SELECT * FROM variants")]
        return rows

    def merge(self, rows: StoreRows) -> int:
        """Commit ``rows`` (from ``rows_after``/``rows_for``) in one transaction; returns the records added."""
        with self._writing():
            for table in TABLES:
                if rows.get(table):
                    marks = ", ".join("?" * len(rows[table][0]))
                    verb = "INSERT OR IGNORE" if table == "keys" else "INSERT OR REPLACE"
                    self.connection.executemany(f"{verb} INTO {table} VALUES ({marks})", rows[table])
        return len(rows.get("records", []))
