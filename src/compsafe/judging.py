"""Judging responses that already exist, without generating: ``compsafe judge FILE`` and ``compsafe rejudge RUN``.

Why: generation is the expensive part of a run and judges improve. ``judge_file`` scores any prompt/response
pairs (JSONL lines with ``id``, ``prompt``, ``response``); ``rejudge_run`` re-scores a run folder's stored
responses with another judge and rewrites its records, summary.json and reports.

Rejudged records carry the NEW judge's fields (``verdict``, ``judge_confidence``, ``refused``, ``judge_reason``,
``degenerate`` and the probe's derived fields such as ``attack_success``), and keep every earlier judge's
reading in ``previous_judges`` (a list of ``{judge, verdict, judge_confidence, judge_reason}``, oldest first),
so nothing is lost and a second rejudge stacks. The summary records the change in ``rejudged``. Records decided
by refusal-margin screening were never generated, so they keep their screened verdict. The result store
(store.sqlite) is not changed: its keys name the judge, so a later ``compsafe run --judge NEW`` on the same
store regenerates rather than mixing judges.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from compsafe.errors import DataFileError, RunFolderError
from compsafe.jsonio import jsonl_objects, read_text_file
from compsafe.judges import RefusalJudge, RefusalVerdict, get_judge

BATCH = 64
PAIR_FIELDS = ("id", "prompt", "response")


def judge_batch(judge: RefusalJudge, prompts: Sequence[str], responses: Sequence[str]) -> list[RefusalVerdict]:
    """Verdicts for pairs, through the judge's batched form when it has one (one encoder/model call per batch)."""
    many = getattr(judge, "judge_many", None)
    if many is not None:
        return list(many(list(prompts), list(responses)))
    return [judge.judge(p, r) for p, r in zip(prompts, responses, strict=True)]


def read_pairs(path: Path) -> list[dict[str, str]]:
    """The pairs of a JSONL file, validated line by line (one-line errors naming the line)."""
    from compsafe import paths

    if not paths.is_file(path):
        raise DataFileError(f"{path} does not exist: pass a .jsonl file of {{id, prompt, response}} lines")
    text = read_text_file(path, "pairs file")
    pairs: list[dict[str, str]] = []
    seen: set[str] = set()
    for number, row in jsonl_objects(text, str(path)):
        missing = [key for key in PAIR_FIELDS if key not in row]
        if missing:
            raise DataFileError(f"{path}:{number}: missing {', '.join(missing)} (each line needs id, prompt, response)")
        if not isinstance(row["id"], str | int) or isinstance(row["id"], bool):
            raise DataFileError(f"{path}:{number}: id must be a string or an integer")
        if not isinstance(row["prompt"], str) or not isinstance(row["response"], str):
            raise DataFileError(f"{path}:{number}: prompt and response must be strings")
        item_id = str(row["id"])
        if item_id in seen:
            raise DataFileError(f"{path}:{number}: id {item_id!r} appears twice; give every line a distinct id")
        seen.add(item_id)
        pairs.append({"id": item_id, "prompt": row["prompt"], "response": row["response"]})
    if not pairs:
        raise DataFileError(f"{path} holds no pairs")
    return pairs


def judge_file(path: Path, judge_name: str) -> Iterator[dict[str, Any]]:
    """One ``{id, verdict, confidence, reason}`` per pair of ``path``, in file order (judged in batches)."""
    pairs = read_pairs(Path(path))
    judge = get_judge(judge_name)
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start : start + BATCH]
        verdicts = judge_batch(judge, [p["prompt"] for p in chunk], [p["response"] for p in chunk])
        for pair, verdict in zip(chunk, verdicts, strict=True):
            yield {
                "id": pair["id"],
                "verdict": verdict.label,
                "confidence": verdict.confidence,
                "reason": verdict.reason,
            }


def _run_config(summary: dict[str, Any], run_dir: Path, judge_name: str) -> Any:
    from compsafe.config import RunConfig

    stored = dict(summary.get("config") or {})
    known = {f.name for f in fields(RunConfig)}
    options = {k: v for k, v in stored.items() if k in known}
    options.update(out=run_dir, store=None, judge=judge_name)
    try:
        return RunConfig(**options)
    except (TypeError, ValueError) as exc:
        raise RunFolderError(f"{run_dir}/summary.json: its run config cannot be read back ({exc})") from exc


def _read_records(run_dir: Path, label: str, probe: str) -> list[dict[str, Any]]:
    from compsafe.runfolder import read_record_file, record_file

    path = record_file(run_dir, label, probe)
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: rejudge needs the run's records folder as `compsafe run` wrote it")
    return read_record_file(path)


def rejudge_run(run_dir: Path, judge_name: str) -> dict[str, Any]:
    """Re-score every judged record of ``run_dir`` with ``judge_name``; rewrite records and summary.json.

    Returns the new summary. Reports are left to the caller (``api.rejudge`` rebuilds them).
    """
    from compsafe.runfolder import write_run
    from compsafe.runner import plan_run, summarize_run
    from compsafe.summary import load_summary_data as load_summary

    run_dir = Path(run_dir)
    old = load_summary(run_dir)
    plan = plan_run(_run_config(old, run_dir, judge_name))
    judge = get_judge(judge_name)
    previous = {
        "judge": (old.get("config") or {}).get("judge") or old.get("judge", {}).get("name"),
        "version": old.get("judge", {}).get("version"),
    }
    records: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for label in old["metrics"]:
        records[label] = {}
        for probe in plan.probes:
            stored_digest = old.get("probes", {}).get(probe.name, {}).get("item_digest")
            if stored_digest is not None and stored_digest != probe.item_digest:
                raise RunFolderError(
                    f"{run_dir}: the {probe.name} items changed since this run (compsafe or data file updated); "
                    "rejudge only works on the items the run generated for"
                )
            rows = _read_records(run_dir, label, probe.name)
            if probe.uses_judge:
                items = {item.id: item for item in probe.items}
                rows = probe.rejudge(rows, items, judge, f"{previous['judge']}@{previous['version']}")
            records[label][probe.name] = rows
    summary = summarize_run(plan, old["models"], records, {}, time.time())
    summary["timing_seconds"] = old.get("timing_seconds", {})
    summary["environment"] = old.get("environment", summary.get("environment"))
    summary["rejudged"] = [*old.get("rejudged", []), {"from": previous, "to": summary["judge"], "at": time.time()}]
    write_run(run_dir, summary, records)
    return summary
