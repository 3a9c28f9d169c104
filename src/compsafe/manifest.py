"""Integrity manifests: the SHA-256 of every file of a model folder plus how the model was made (its lineage).

A compressed model is shipped as files; the manifest lets whoever deploys it check that the files are exactly
the ones that were evaluated (``verify_manifest`` reports changed, missing and extra files). Files are hashed
in streamed chunks (``integrity.file_sha256``), so a 70 GB checkpoint never has to fit in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compsafe import __version__, paths
from compsafe.errors import ManifestError
from compsafe.integrity import file_sha256, weights_digest

FORMAT = "compsafe-integrity/1"
DEFAULT_NAME = "compsafe-integrity.json"
EXPORT_MANIFEST = "compsafe_manifest.json"  # provenance written by `compsafe compress` (compsafe.export)


@dataclass
class FolderContents:
    """What a folder holds: regular files, symlinks to regular files, and everything else (which no manifest
    can vouch for: dangling or folder symlinks, FIFOs, sockets, devices)."""

    files: dict[str, Path] = field(default_factory=dict)  # regular files and symlinks to regular files
    links: set[str] = field(default_factory=set)  # the keys of ``files`` that are symlinks
    irregular: dict[str, str] = field(default_factory=dict)  # relative path -> what it is


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def _contents(model_dir: Path, skip: set[Path]) -> FolderContents:
    """Walk without following symlinks (a symlinked folder is reported, never entered: no loops, no escape)."""
    found = FolderContents()
    for root, dirs, names in os.walk(model_dir, followlinks=False):
        for name in sorted(dirs):
            path = Path(root) / name
            if path.is_symlink():
                found.irregular[path.relative_to(model_dir).as_posix()] = "symlink to a folder"
        for name in names:
            path = Path(root) / name
            rel = path.relative_to(model_dir).as_posix()
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                if path.resolve() not in skip:
                    found.files[rel] = path
            elif stat.S_ISLNK(info.st_mode):
                try:
                    target_regular = stat.S_ISREG(path.stat().st_mode)
                except OSError:
                    found.irregular[rel] = "dangling symlink"
                    continue
                if target_regular and path.resolve() not in skip:
                    found.files[rel] = path
                    found.links.add(rel)
                elif not target_regular:
                    found.irregular[rel] = "symlink to a non-regular file"
            else:
                found.irregular[rel] = _kind(info.st_mode)
    found.files = dict(sorted(found.files.items()))
    return found


def _check_dir(model_dir: Path) -> Path:
    model_dir = Path(model_dir).expanduser()
    if not paths.is_dir(model_dir):
        raise ManifestError(f"{model_dir} is not a folder: pass the model folder whose files the manifest covers")
    return model_dir


def export_lineage(model_dir: Path) -> dict[str, Any]:
    """Lineage read from the provenance manifest of a folder written by `compsafe compress`, else {}."""
    path = model_dir / EXPORT_MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != "compsafe-variant/1":
        return {}
    source = data.get("source") or {}
    return {
        "recipe": data.get("recipe"),
        "source": source.get("model"),
        "source_weights_digest": source.get("weights_digest"),
        "calibration_digest": (data.get("calibration") or {}).get("digest"),
        "from": EXPORT_MANIFEST,
    }


def build_manifest(model_dir: Path, lineage: dict[str, Any] | None = None, skip: set[Path] | None = None) -> dict:
    """The manifest as a dict; without an explicit lineage, a `compsafe compress` folder supplies its own."""
    model_dir = _check_dir(model_dir)
    contents = _contents(model_dir, skip or set())
    if contents.irregular:
        rel, kind = next(iter(sorted(contents.irregular.items())))
        raise ManifestError(
            f"{model_dir} holds {rel} ({kind}), which is not a file a manifest can record: remove it and rerun"
        )
    files = contents.files
    if not files:
        raise ManifestError(f"{model_dir} holds no files to record")
    lineage = lineage or export_lineage(model_dir)
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - py3.10 support
        "compsafe_version": __version__,
        "model_dir": model_dir.name,
        "weights_digest": weights_digest(model_dir),
        "lineage": lineage,
        "files": [
            {"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)}
            | ({"symlink": True} if rel in contents.links else {})
            for rel, path in files.items()
        ],
    }


def write_manifest(model_dir: Path, lineage: dict[str, Any] | None = None, out: Path | None = None) -> Path:
    """Write the manifest (default: <model_dir>/compsafe-manifest.json, which then excludes itself)."""
    model_dir = _check_dir(model_dir)
    out = Path(out) if out is not None else model_dir / DEFAULT_NAME
    manifest = build_manifest(model_dir, lineage, skip={out.resolve()})
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ManifestError(f"cannot write the manifest {out}: {exc.strerror or exc}: choose another --out") from None
    return out


@dataclass
class VerifyResult:
    """What differs between a folder and its manifest; ``ok`` only when nothing does."""

    changed: list[str] = field(default_factory=list)  # in both, different size or sha256
    missing: list[str] = field(default_factory=list)  # in the manifest, not in the folder
    extra: list[str] = field(default_factory=list)  # in the folder, not in the manifest
    checked: int = 0
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "changed": self.changed,
            "missing": self.missing,
            "extra": self.extra,
            "lineage": self.lineage,
        }


def _manifest_model() -> Any:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, field_validator

    class FileEntry(BaseModel):
        """One recorded file: a relative path inside the folder (no '..', not absolute), its digest, size."""

        model_config = ConfigDict(strict=True)
        path: str = Field(min_length=1, max_length=4096)
        sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
        size: int | None = Field(default=None, ge=0)
        symlink: bool = False

        @field_validator("path")
        @classmethod
        def inside_folder(cls, value: str) -> str:
            parts = value.split("/")
            if value.startswith("/") or ".." in parts or "\x00" in value or "" in parts:
                raise ValueError(f"path {value[:60]!r} must be relative to the folder, without '..'")
            return value

    class Manifest(BaseModel):
        model_config = ConfigDict(extra="allow")
        format: Literal["compsafe-integrity/1"]
        files: list[FileEntry]
        lineage: dict[str, Any] | None = None

    return Manifest


ManifestSchema = _manifest_model()


def read_manifest(manifest_path: Path) -> dict[str, Any]:
    """The manifest, validated (``ManifestSchema``): a malformed one is a one-line ``ManifestError``."""
    from pydantic import ValidationError

    from compsafe.errors import DataFileError
    from compsafe.jsonio import read_json_file

    manifest_path = Path(manifest_path).expanduser()
    if not paths.is_file(manifest_path):
        raise ManifestError(f"cannot read manifest {manifest_path}: no such file (write one with `compsafe manifest`)")
    try:
        data = read_json_file(manifest_path, "manifest")
    except DataFileError as exc:
        raise ManifestError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f"{manifest_path} is not a {FORMAT} file: write one with `compsafe manifest MODEL_DIR`")
    try:
        checked = ManifestSchema.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ManifestError(
            f"{manifest_path}: {where}: {error['msg']}: rewrite it with `compsafe manifest MODEL_DIR`"
        ) from None
    paths_seen = [entry.path for entry in checked.files]
    if len(set(paths_seen)) != len(paths_seen):
        raise ManifestError(f"{manifest_path} lists a file twice: rewrite it with `compsafe manifest MODEL_DIR`")
    return {**data, "files": [entry.model_dump() for entry in checked.files]}


def verify_manifest(model_dir: Path, manifest_path: Path) -> VerifyResult:
    """Re-hash every file and compare with the manifest; a manifest stored inside the folder is not 'extra'."""
    model_dir = _check_dir(model_dir)
    manifest = read_manifest(manifest_path)
    expected = {f["path"]: f for f in manifest["files"]}
    contents = _contents(model_dir, skip={Path(manifest_path).expanduser().resolve()})
    present = contents.files
    result = VerifyResult(lineage=manifest.get("lineage") or {})
    for rel, entry in expected.items():
        path = present.get(rel)
        if path is None:
            result.missing.append(rel)
            continue
        if (rel in contents.links) != bool(entry.get("symlink")):  # a file swapped for a link, or back
            result.changed.append(f"{rel} (symlink)" if rel in contents.links else rel)
            continue
        result.checked += 1
        size = entry.get("size")
        if (size is not None and path.stat().st_size != size) or file_sha256(path) != entry["sha256"]:
            result.changed.append(rel)
    result.extra = [f"{rel} (symlink)" if rel in contents.links else rel for rel in present if rel not in expected]
    result.extra += [f"{rel} ({kind})" for rel, kind in sorted(contents.irregular.items())]
    return result
