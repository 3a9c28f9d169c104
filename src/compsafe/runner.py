"""Wire the stages: load base -> probe base -> (build variant -> probe -> restore)* -> analyse -> write.

One model is in memory at a time: variants are built in place and afterwards the tensors a recipe changed are
re-read from the base's weight files (``compress.snapshot``; checked by digest). Every finished batch of item
records is committed to the store, so a killed run resumes where it stopped, and a variant whose records are
all present is not rebuilt at all.
"""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from compsafe import __version__, paths
from compsafe.analysis.drift_summary import drift_ratios
from compsafe.artefacts import path_facts, rebuilt_recipe_cost, recipe_cost
from compsafe.comparisons import compare_probe
from compsafe.compress import (
    CalibrationSet,
    CompressionConfig,
    WeightSnapshot,
    applied,
    needs_calibration,
    nonfinite_parameters,
)
from compsafe.config import RunConfig
from compsafe.errors import ModelLoadError, RecipeError
from compsafe.integrity import weights_digest
from compsafe.judges import get_judge
from compsafe.memory import trim_freed_memory
from compsafe.metrics import drift_measures, scan_probes
from compsafe.models import GenerationConfig, HFBackend, LoadOptions, ModelHandle, load_model
from compsafe.models.cost import handle_cost
from compsafe.models.drafting import DraftBook, DraftRole
from compsafe.models.numerics import numerics
from compsafe.probes import Probe, ProbeContext, build_probe
from compsafe.store import ResultStore, item_digest, stable_hash
from compsafe.variant_spec import VariantSpec, resolve_variant


class RunObserver(Protocol):
    """What the runner tells its caller (the CLI shows it with rich; the API default is silent)."""

    def stage(self, message: str) -> None: ...
    def task(self, description: str, total: int) -> Callable[[int], None]: ...
    def done(self, description: str) -> None: ...


class SilentObserver:
    def stage(self, message: str) -> None:
        pass

    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None

    def done(self, description: str) -> None:
        pass


@dataclass
class RunPlan:
    """A validated run: probes with their items and parsed variants, built before any model is loaded."""

    config: RunConfig
    probes: list[Probe]
    variants: list[VariantSpec]


def plan_run(config: RunConfig) -> RunPlan:
    from compsafe.models.loading import check_model_spec

    check_model_spec(config.model)  # an unknown path or an unreachable hub id fails before anything is printed
    get_judge(config.judge)  # fail fast on an unknown judge
    probes = [build_probe(spec, config.limit) for spec in config.probes]
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise RecipeError("a probe is listed twice in --probes")
    variants = [resolve_variant(v) for v in config.variants]
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise RecipeError(f"two variants resolve to the same recipe: {labels}")
    return RunPlan(config, probes, variants)


class Evaluator:
    """Runs probes on one loaded model against the store, computing only what is missing."""

    def __init__(
        self, plan: RunPlan, store: ResultStore, observer: RunObserver, on_commit: Callable[[], None] | None = None
    ) -> None:
        self.on_commit = on_commit or (lambda: None)  # e.g. RunClock.save: time is counted per committed batch
        self.plan = plan
        self.store = store
        self.observer = observer
        self.judge = get_judge(plan.config.judge)
        self.generation = GenerationConfig(max_new_tokens=plan.config.max_new_tokens, seed=plan.config.seed)
        self.base_keys: dict[str, str] = {}
        self.drafts = DraftBook(enabled=plan.config.draft)  # the base's greedy answers, drafts for the variants
        self.probe_seconds: dict[str, dict[str, float]] = {}  # model -> probe -> seconds spent computing

    def probe_key(self, probe: Probe, model_key: dict[str, Any], context: ProbeContext) -> str:
        return self.store.register_key({"model": model_key, "query": probe.query_config(context)})

    def missing(self, probe: Probe, key: str) -> list:
        done = self.store.records(key)
        return [i for i in probe.items if (i.id, item_digest(i.data)) not in done]

    def is_complete(self, model_key: dict[str, Any]) -> bool:
        context = ProbeContext.for_keys(self.judge, self.generation, self.plan.config.screen_margin)
        return all(not self.missing(p, self.probe_key(p, model_key, context)) for p in self.plan.probes)

    def artifact_io(self, key: str, base_key: str | None, digests: dict[str, str]):
        """Callbacks a probe uses to keep per-item tensors of the base (e.g. top-k log-probs) in the store."""

        def save(item_id: str, tensors: dict[str, torch.Tensor]) -> None:
            self.store.put_artifact(key, item_id, digests[item_id], tensors)

        def load(item_id: str) -> dict[str, torch.Tensor] | None:
            return self.store.get_artifact(base_key, item_id, digests[item_id]) if base_key else None

        return save, load

    def evaluate(
        self, label: str, handle: ModelHandle | None, model_key: dict[str, Any], is_base: bool
    ) -> dict[str, list[dict[str, Any]]]:
        """Records of every probe for this model (from the store, computing the missing ones)."""
        drafting = DraftRole(self.drafts, label, record=is_base)
        backend = HFBackend(handle, self.plan.config.batch_size, drafting=drafting) if handle is not None else None
        records: dict[str, list[dict[str, Any]]] = {}
        for probe in self.plan.probes:
            digests = {i.id: item_digest(i.data) for i in probe.items}
            context = ProbeContext(
                backend=backend,
                judge=self.judge,
                generation=self.generation,  # type: ignore[arg-type]
                is_base=is_base,
                chunk_size=max(self.plan.config.batch_size * 2, 8),
                screen_margin=self.plan.config.screen_margin,
            )
            key = self.probe_key(probe, model_key, context)
            if is_base:
                self.base_keys[probe.name] = key
            base_key = self.base_keys.get(probe.name)
            context.save_artifact, context.load_base_artifact = self.artifact_io(key, base_key, digests)
            todo = self.missing(probe, key)
            if todo:
                if backend is None:
                    raise RuntimeError("records missing but no model loaded")  # the runner prevents this
                description = f"{label} · {probe.name}"
                context.progress = self.observer.task(description, len(todo))
                probe_started = time.perf_counter()
                for batch in probe.evaluate(todo, context):
                    self.store.put_records(key, [(r["item_id"], digests[r["item_id"]], r) for r in batch])
                    self.on_commit()
                    trim_freed_memory()  # the next chunk starts from what the run holds (compsafe.memory)
                self.probe_seconds.setdefault(label, {})[probe.name] = round(time.perf_counter() - probe_started, 2)
                self.observer.done(description)
            stored = self.store.records(key)
            records[probe.name] = [stored[(i.id, digests[i.id])] for i in probe.items]
        return records


def run(config: RunConfig, observer: RunObserver | None = None) -> dict[str, Any]:
    """Execute a run and write its folder (records, summary.json, divergences); returns the summary.

    Records already in the store are reused, so after ``executors.ray_executor`` computed them this only
    summarises. The HTML/markdown reports are written by the caller (``api.run``), a layer above, which also
    holds the run folder's lock (``runlock.run_locks``) for the whole run. The summary's ``compute_seconds``
    adds up every invocation into this run folder (``runlock.RunClock``), so a resumed run reports its total.
    """
    from compsafe.analysis.divergence_scan import write_divergences
    from compsafe.runfolder import write_run
    from compsafe.runlock import RunClock

    started = time.time()
    clock = RunClock(config.out)
    study = Study.start(plan_run(config), observer or SilentObserver(), started, on_commit=clock.save)
    study.run_variants()
    from compsafe.summary import summary_document

    summary = summarize_run(study.plan, study.models, study.records, study.timings, started)
    summary.update(probe_seconds=study.evaluator.probe_seconds, drafting=study.evaluator.drafts.summary())
    clock.save(force=True)
    summary["compute_seconds"] = clock.to_dict()  # this invocation and every invocation into this folder
    summary = summary_document(summary)
    write_run(config.out, summary, study.records)
    # divergences.jsonl when the safety-decision and margin probes both ran
    write_divergences(config.out, study.records, scan_probes(list(study.records.get("base", {}))))
    study.store.close()
    return summary


def check_finite_base(handle: ModelHandle) -> None:
    """A base model with NaN/inf weights makes every comparison meaningless: an error before anything runs."""
    broken = nonfinite_parameters(handle.model)
    if broken:
        raise ModelLoadError(
            f"the base model {handle.source} holds NaN/inf in {len(broken)} weight tensor(s), e.g. {broken[0]}: "
            "fix or re-download its weights"
        )


@dataclass
class Study:
    """One run in progress: the loaded base, the store, and what every model has produced so far."""

    plan: RunPlan
    observer: RunObserver
    options: LoadOptions
    handle: ModelHandle
    base_identity: dict[str, Any]
    store: ResultStore
    evaluator: Evaluator
    models: dict[str, dict[str, Any]]
    records: dict[str, dict[str, list[dict[str, Any]]]]
    timings: dict[str, float]
    snapshot: WeightSnapshot | None = None  # taken once, when the first recipe variant is built
    calibration: CalibrationSet | None = None  # sampled once, when the first calibrated recipe needs it

    @classmethod
    def start(
        cls, plan: RunPlan, observer: RunObserver, started: float, on_commit: Callable[[], None] | None = None,
        store: ResultStore | None = None,
    ) -> Study:  # fmt: skip
        """Load the base, check its weights are finite, every +keep pattern against it and the calibration
        window against its context, then probe it (timed from ``started``); ``store``: a Ray task's in-memory one."""
        from compsafe.compress.registry import check_applicable

        config = plan.config
        options = LoadOptions(
            device=config.device,
            dtype=config.dtype,
            allow_pickle=config.allow_pickle,
            trust_remote_code=config.trust_remote_code,
        )
        torch.manual_seed(config.seed)
        observer.stage(f"loading {config.model or 'the embedded default model'}")
        handle = load_model(config.model, options)
        check_finite_base(handle)
        trim_freed_memory()  # the loader's temporaries
        base_digest = weights_digest(Path(handle.resolved_path)) if Path(handle.resolved_path).exists() else None
        base_identity = {
            "weights": base_digest or handle.resolved_path,
            "dtype": str(handle.dtype),
            "device": handle.device.type,
            "numerics": numerics(handle.dtype, handle.device),  # threads & torch change CPU results
        }
        for variant in plan.variants:  # a +keep pattern matching nothing, fp16 on a bf16 base: fail before probing
            if variant.config is not None:
                check_applicable(handle.model, variant.config)
        if any(v.config is not None and needs_calibration(v.config) for v in plan.variants):
            from compsafe.compress.calibration import check_window

            check_window(config.calibration_spec(), handle.max_length)  # before the base is probed
        store = store or ResultStore(config.store_path)
        evaluator = Evaluator(plan, store, observer, on_commit)
        base = {
            "label": "base",
            "source": handle.source,
            "weights_digest": base_digest,
            "dtype": str(handle.dtype).removeprefix("torch."),
            "device": handle.device.type,
            "numerics": base_identity["numerics"],
            **handle.meta,
            **({"cost": handle_cost(handle.resolved_path, handle)} if config.artefact_cost else {}),
        }
        records = {"base": evaluator.evaluate("base", handle, {"base": base_identity}, is_base=True)}
        timings = {"base": time.time() - started}
        return cls(plan, observer, options, handle, base_identity, store, evaluator, {"base": base}, records, timings)

    def run_variants(self) -> None:
        """Every variant's records: recipes built in place first, then (the base unloaded) model folders."""
        for variant in self.plan.variants:
            if variant.config is not None:
                self.recipe_variant(variant)
        path_variants = [v for v in self.plan.variants if v.path is not None]
        if path_variants:  # one model in memory at a time: the base goes before the first folder is loaded
            self.snapshot = None
            self.handle.model = None
            gc.collect()
        for variant in path_variants:
            self.path_variant(variant)

    def calibration_for(self, config: CompressionConfig, model_key: dict[str, Any]) -> CalibrationSet | None:
        """The run's calibration set when ``config`` needs one (built once, from the base tokenizer); its digest
        joins ``model_key`` so new calibration data never reuses old records."""
        if not needs_calibration(config):
            return None
        if self.calibration is None:
            from compsafe.compress import build_calibration

            self.observer.stage("sampling the calibration set")
            self.calibration = build_calibration(
                self.handle.tokenizer, self.plan.config.calibration_spec(), self.handle.max_length
            )
        model_key["calibration"] = self.calibration.digest
        return self.calibration

    def recipe_variant(self, variant: VariantSpec) -> None:
        """Records of a recipe variant: from the store when complete, else built in place, probed, restored."""
        t0 = time.time()
        assert variant.config is not None
        model_key: dict[str, Any] = {"base": self.base_identity, "recipe": variant.config.recipe}
        if variant.adapter is not None:
            model_key["adapter"] = weights_digest(Path(variant.adapter).expanduser())
        calibration = self.calibration_for(variant.config, model_key)
        model_key_str = stable_hash(model_key)
        info = self.store.get_variant(model_key_str)
        if info is not None and info.get("broken"):
            self.observer.stage(f"{variant.label}: BROKEN ({info['broken']}), not rebuilt")
        elif info is not None and self.evaluator.is_complete(model_key):
            self.observer.stage(f"{variant.label}: all records present, not rebuilt")
            self.records[variant.label] = self.evaluator.evaluate(variant.label, None, model_key, is_base=False)
            if self.plan.config.artefact_cost and "cost" not in info and variant.adapter is None:
                self.snapshot = self.snapshot or WeightSnapshot(self.handle.model)
                info["cost"] = rebuilt_recipe_cost(self.handle, variant.config, calibration, self.snapshot)
                self.store.put_variant(model_key_str, info)
        else:
            info = self.build_and_probe(variant, model_key, model_key_str, calibration)
        self.models[variant.label] = {"label": variant.label, "kind": "recipe", **info}
        self.timings[variant.label] = time.time() - t0

    def build_and_probe(
        self, variant: VariantSpec, model_key: dict[str, Any], key: str, calibration: CalibrationSet | None
    ) -> dict[str, Any]:
        """Build ``variant`` with ``compress.applied``, record it in the store, probe it unless broken."""
        assert variant.config is not None
        self.snapshot = self.snapshot or WeightSnapshot(self.handle.model, self.handle.weight_files(), spill=True)
        self.observer.stage(f"building {variant.label}")
        with applied(self.handle.model, variant.config, calibration, snapshot=self.snapshot) as built:
            trim_freed_memory()  # the compression method's per-layer temporaries
            info = {
                "recipe": variant.config.recipe,
                "config": variant.config.to_dict(),
                "compression": built.report.to_dict(),
                "weights_digest": built.weights_digest,
            }
            if calibration is not None:
                info["calibration"] = calibration.to_dict()
            if built.broken:  # reported as broken, not probed: a NaN model's "answers" are noise, not findings
                info["broken"] = built.broken
                self.observer.stage(f"{variant.label}: BROKEN ({info['broken']})")
            self.store.put_variant(key, info)
            if built.broken:
                return info
            if variant.adapter is not None:
                from compsafe.training.recover import attached_adapter

                with attached_adapter(self.handle, variant.adapter, info["weights_digest"]) as adapter_info:
                    info["recovery"] = adapter_info
                    self.store.put_variant(key, info)
                    self.records[variant.label] = self.evaluator.evaluate(variant.label, self.handle, model_key, False)
            else:
                self.records[variant.label] = self.evaluator.evaluate(variant.label, self.handle, model_key, False)
                if self.plan.config.artefact_cost:  # the files `compsafe compress` would write, measured
                    info["cost"] = recipe_cost(self.handle, built.report)
                    self.store.put_variant(key, info)
        trim_freed_memory()  # the restore's reads
        return info

    def path_variant(self, variant: VariantSpec) -> None:
        """Records of a model someone else compressed (a folder or .gguf), loaded only when records are missing."""
        t0 = time.time()
        assert variant.path is not None
        if not paths.exists(variant.path):
            raise ModelLoadError(f"variant model {variant.path} does not exist: pass a folder or .gguf file")
        path = Path(variant.path).expanduser()
        digest = weights_digest(path)
        model_key = {
            "weights": digest,
            "dtype": str(self.handle.dtype),
            "device": self.handle.device.type,
            "numerics": numerics(self.handle.dtype, self.handle.device),
        }
        loaded = None if self.evaluator.is_complete(model_key) else load_model(str(path), self.options)
        entry: dict[str, Any] = {"label": variant.label, "kind": "model", "source": str(path), "weights_digest": digest}
        broken = nonfinite_parameters(loaded.model) if loaded is not None else []
        if broken:  # as for a recipe variant: reported BROKEN, not probed, and the run goes on
            entry["broken"] = f"{len(broken)} weight tensor(s) hold NaN/inf, e.g. {broken[0]}"
            self.observer.stage(f"{variant.label}: BROKEN ({entry['broken']})")
        else:
            self.records[variant.label] = self.evaluator.evaluate(variant.label, loaded, model_key, is_base=False)
        entry.update(path_facts(path, self.handle, self.plan.config.artefact_cost))  # size, manifest, cost
        self.models[variant.label] = entry
        del loaded
        gc.collect()
        self.timings[variant.label] = time.time() - t0


def summarize_run(
    plan: RunPlan,
    models: dict[str, dict[str, Any]],
    records: dict[str, dict[str, list]],
    timings: dict[str, float],
    started: float,
) -> dict[str, Any]:
    import transformers

    config = plan.config
    per_model = {label: {p.name: p.summarize(records[label][p.name]) for p in plan.probes} for label in records}
    comparisons: dict[str, dict[str, Any]] = {}
    measures = drift_measures([p.name for p in plan.probes])  # safety and capability sides, as declared
    for label in records:
        if label == "base":
            continue
        probe_comparisons = {
            p.name: compare_probe(
                p.outcome,
                records["base"][p.name],
                records[label][p.name],
                n_resamples=config.bootstrap_resamples,
                seed=config.seed,
            )
            for p in plan.probes
        }
        drift = drift_ratios(
            probe_comparisons, records["base"], records[label], *measures,
            n_resamples=config.bootstrap_resamples, seed=config.seed,
        )  # fmt: skip
        comparisons[label] = {"probes": probe_comparisons, "alignment_drift_ratio": drift}
    judge = get_judge(config.judge)
    return {
        "compsafe_version": __version__,
        "config": config.to_dict(),
        "judge": judge_summary(config.judge, judge, comparisons),
        "generation": GenerationConfig(max_new_tokens=config.max_new_tokens, seed=config.seed).to_dict(),
        "probes": {
            p.name: {
                "description": p.description,
                "outcome": p.outcome,
                "headline_metric": p.headline_metric,
                "definition": p.definition,
                "dataset": {
                    "name": p.dataset.name,
                    "source": p.dataset.source,
                    "licence": p.dataset.licence,
                    "count": p.dataset.count,
                    "available": p.dataset.extra.get("available", p.dataset.count),  # before --limit
                },
                "item_digest": p.item_digest,
            }
            for p in plan.probes
        },
        "models": models,
        "metrics": per_model,
        "comparisons": comparisons,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numerics": models["base"].get("numerics"),
            "platform": platform.platform(),
            "seed": config.seed,
        },
        "timing_seconds": {**{k: round(v, 2) for k, v in timings.items()}, "total": round(time.time() - started, 2)},
    }


def judge_summary(spec: str, judge: Any, comparisons: dict[str, Any]) -> dict[str, Any]:
    """The run's judge as selected and versioned, with a second judge's reading of every flipped item."""
    from compsafe.judges.second_opinion import second_opinion

    entry: dict[str, Any] = {"name": judge.name, "version": judge.version, "spec": spec}
    second = second_opinion(comparisons, spec)
    if second is not None:
        entry["second_opinion"] = second
    return entry
