"""A gate verdict bound to the files that ship: ``compsafe gate RUN_DIR --artefact DIR``.

A run's verdict is about the variants it measured; a deployment ships files. This module ties the two: the
artefact passes only when it is one of the run's variants -- its weight files' digest (``integrity.
weights_digest``) is the digest the run recorded for a folder variant (``--variants DIR``), or the folder's
export manifest (``compsafe_manifest.json``, written by ``compsafe compress``; for a GGUF export, the folder
holding ``NAME.gguf`` and ``NAME.gguf.compsafe_manifest.json``) records that it was written from
the in-memory state whose digest the run recorded for a recipe variant (same base, recipe, calibration and
dtype) -- and that variant passes the policy. The weight files must still be the ones the export manifest
names.

The verdict is written beside the weights as ``gate-result.json`` (run id, policy digest, artefact digest,
verdict, time), and then an integrity manifest (``compsafe-integrity.json``, every file's SHA-256, the verdict
file included) is written, so ``compsafe verify DIR`` fails when any file changes after the gate. A failing
artefact gets a record too: a pipeline reads ``verdict`` and never has to guess from a missing file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compsafe import __version__, paths
from compsafe.errors import ConfigError
from compsafe.gate import SKIP, GateResult
from compsafe.integrity import WEIGHT_SUFFIXES, file_sha256, weights_digest
from compsafe.summary import RunSummary

RESULT_NAME = "gate-result.json"
RESULT_FORMAT = "compsafe-gate-result/1"


@dataclass
class Binding:
    """Which of the run's variants the artefact's files are (``variant`` None: none of them, see ``problem``)."""

    files_digest: str
    state_digest: str | None
    variant: str | None
    problem: str | None = None


def _export_manifest(artefact: Path) -> dict[str, Any] | None:
    """The folder's export manifest, or the one beside its only ``.gguf`` (``NAME.gguf.compsafe_manifest.json``)."""
    from compsafe.export import MANIFEST_NAME, read_manifest

    if (artefact / MANIFEST_NAME).is_file():
        return read_manifest(artefact)
    beside = sorted(artefact.glob(f"*.gguf.{MANIFEST_NAME}"))
    return read_manifest(beside[0]) if len(beside) == 1 else None


def bind_artefact(summary: RunSummary, artefact: Path) -> Binding:
    """Match the artefact's digests against the digests of the variants the run evaluated."""
    if not paths.is_dir(artefact) or not any(p.name.endswith(WEIGHT_SUFFIXES) for p in artefact.iterdir()):
        raise ConfigError(f"--artefact {artefact} is not a model folder with weight files: pass the exported folder")
    files = weights_digest(artefact)
    manifest = _export_manifest(artefact)
    state = (manifest or {}).get("state_digest")
    if manifest is not None and manifest.get("weights_digest") != files:
        return Binding(files, state, None, f"the weight files changed since the export (manifest digest "
                                           f"{str(manifest.get('weights_digest'))[:16]}, files {files[:16]})")
    wanted = {files} | ({state} if state else set())
    matches = [label for label, info in summary.models.items() if label != "base" and info.weights_digest in wanted]
    if not matches:
        hint = "evaluate the folder itself (--variants DIR) or the recipe it was exported with"
        return Binding(files, state, None, f"no variant of this run has the artefact's digest ({files[:16]}): {hint}")
    return Binding(files, state, matches[0])


def _integrity_problem(artefact: Path) -> str | None:
    """A reason when the folder already has an integrity manifest that its files no longer match."""
    from compsafe.manifest import DEFAULT_NAME, verify_manifest

    path = artefact / DEFAULT_NAME
    if not path.is_file():
        return None
    check = verify_manifest(artefact, path)
    differ = [f for f in check.changed + check.missing + check.extra if f != RESULT_NAME]
    return f"{len(differ)} file(s) differ from {DEFAULT_NAME}, e.g. {differ[0]}" if differ else None


def _variant_verdict(result: GateResult, label: str) -> tuple[bool, list[str]]:
    """Pass/fail of one variant under the policy, with the reasons it fails."""
    reasons = [f"{c.rule.describe()}: {c.status}" for c in result.failures if c.variant == label]
    reasons += [p for p in result.problems if "variant " not in p or f"variant {label} " in p]
    if not any(c.variant == label and c.status != SKIP for c in result.checks):
        reasons.append(f"no rule of the policy was evaluated on {label}: nothing was shown to pass")
    return not reasons, reasons


def policy_digest(result: GateResult) -> str:
    """sha256 of the policy as evaluated (its canonical JSON), so a record names the exact rules."""
    text = json.dumps(result.policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def gate_record(run_dir: Path, summary: RunSummary, result: GateResult, artefact: Path) -> dict[str, Any]:
    """The verdict on ``artefact`` (see the module docstring) as the dict written to ``gate-result.json``."""
    binding = bind_artefact(summary, artefact)
    passed, reasons = False, [binding.problem] if binding.problem else []
    if binding.variant is not None:
        passed, reasons = _variant_verdict(result, binding.variant)
    tampered = _integrity_problem(artefact)
    if tampered:
        passed, reasons = False, [*reasons, tampered]
    summary_path = Path(run_dir) / "summary.json"
    return {
        "format": RESULT_FORMAT,
        "verdict": "pass" if passed else "fail",
        "reasons": reasons,
        "run": {"id": file_sha256(summary_path), "dir": str(Path(run_dir).resolve())},
        "policy": {"name": result.policy.name, "digest": policy_digest(result),
                   "allow_insufficient_evidence": result.allow_insufficient},
        "artefact": {"path": str(artefact.resolve()), "weights_digest": binding.files_digest,
                     "state_digest": binding.state_digest, "variant": binding.variant},
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - py3.10 support
        "compsafe_version": __version__,
    }


def write_gate_record(artefact: Path, record: dict[str, Any]) -> Path:
    """Write ``gate-result.json`` into the artefact; on a pass, then its integrity manifest (which covers the
    record). A failing verdict never rewrites the manifest: that would bless files that changed."""
    from compsafe.manifest import write_manifest

    path = artefact / RESULT_NAME
    try:
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    if record["verdict"] == "pass":
        write_manifest(artefact)
    return path
