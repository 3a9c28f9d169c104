"""summary.json as a typed, schema-versioned document: the runner writes it, report/gate/compare read it.

Why a schema: report, gate and compare used to walk the JSON with ``.get(`` chains, so a malformed summary
(``comparisons: 5``, ``config: null``, a NaN metric) crashed them with a traceback or, worse, was read as
"nothing there" and passed a gate. ``RunSummary`` validates the whole document once, on load, and answers
with one line naming the first bad field.

Compatibility: every model allows extra fields, so a newer writer that adds a field (a CI of the drift
ratio, verdict rates) is read by an older reader; a newer *major* ``schema_version`` is refused with a
message saying so. Summaries written before the schema existed carry no version and are read as version 0
(their shape is the same). Numbers are finite or null: NaN/inf are rejected on read, and the writer turns
them into null with the reason in ``null_reasons`` (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from compsafe.errors import RunFolderError

SCHEMA_VERSION = 1


class SummaryError(RunFolderError):
    """summary.json exists but does not follow the schema (one line: the field and what is wrong)."""


class _Open(BaseModel):
    """Base of every summary model: known fields typed, unknown (newer) fields kept as they are."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)

    def extra(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)


class Interval(_Open):
    """A paired interval: ``estimate`` with its ``low``/``high`` bounds (a difference, or a ratio)."""

    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float = 0.95

    @property
    def bounded(self) -> bool:
        return self.estimate is not None and self.low is not None and self.high is not None


class McNemar(_Open):
    p_value: float | None = None


class Flip(_Open):
    """An item whose decision changed between base and variant, with both responses."""

    item_id: str = ""
    category: str | None = None
    prompt: str = ""
    base_response: str = ""
    variant_response: str = ""


class ProbeComparison(_Open):
    """Paired comparison of one probe: common entries typed; outcome-specific ones reached by ``path``."""

    n: int = 0
    error: str | None = None
    delta: Interval | None = None
    ratio: Interval | None = None
    mcnemar: McNemar | None = None
    refused_by_base_answered_by_variant: list[Flip] = Field(default_factory=list)
    answered_by_base_refused_by_variant: list[Flip] = Field(default_factory=list)

    def lookup(self, path: str) -> Any:
        """The entry at a dotted path (``calibration.ece.delta``), None where any step is missing."""
        data: Any = self
        for key in path.split("."):
            if isinstance(data, BaseModel):
                data = getattr(data, key, None) if key in type(data).model_fields else data.extra(key)
            elif isinstance(data, dict):
                data = data.get(key)
            else:
                return None
        return data

    def interval(self, path: str | None) -> Interval | None:
        value = self.lookup(path) if path else None
        if isinstance(value, Interval):
            return value
        if isinstance(value, dict) and "estimate" in value:
            return Interval.model_validate(value)
        return None

    def test(self, path: str | None) -> McNemar | None:
        value = self.lookup(path) if path else None
        if isinstance(value, McNemar):
            return value
        return McNemar.model_validate(value) if isinstance(value, dict) else None


class DriftEntry(_Open):
    value: float | None = None
    status: str = ""
    relative_safety_loss: float | None = None
    relative_capability_loss: float | None = None
    explanation: str = ""
    display: str = ""


class DriftSummary(_Open):
    """``alignment_drift_ratio`` of one variant: one ``vs_<capability probe>`` entry each, and the headline."""

    headline: str | None = None
    safety_change_p_value: float | None = None
    safety_change_significant: bool | None = None

    @model_validator(mode="after")
    def _entries_are_drift_entries(self) -> DriftSummary:
        for key, value in (self.model_extra or {}).items():
            if key.startswith("vs_"):
                self.model_extra[key] = DriftEntry.model_validate(value)  # type: ignore[index]
        return self

    def entries(self) -> dict[str, DriftEntry]:
        return {k: v for k, v in (self.model_extra or {}).items() if isinstance(v, DriftEntry)}

    def entry(self, key: str | None = None) -> DriftEntry | None:
        return self.entries().get(key or self.headline or "")


class VariantComparison(_Open):
    probes: dict[str, ProbeComparison] = Field(default_factory=dict)
    alignment_drift_ratio: DriftSummary = Field(default_factory=DriftSummary)


class DatasetRecord(_Open):
    name: str = "?"
    source: str = ""
    licence: str = ""
    count: int | None = None
    available: int | None = None  # items in the set before --limit (newer writers)


class ProbeInfo(_Open):
    outcome: str
    headline_metric: str
    description: str = ""
    dataset: DatasetRecord = Field(default_factory=DatasetRecord)
    item_digest: str | None = None


class CompressionInfo(_Open):
    effective_bits_per_weight: float | None = None
    sparsity: float | None = None
    packed_size_bytes: int | None = None
    dense_size_bytes: int | None = None
    layers: list[dict[str, Any]] = Field(default_factory=list)


def megabytes(compression: CompressionInfo | None) -> str:
    """A variant's stored size for tables: its packed bytes (recipes) or its files' tensors (folders), in MB."""
    size = compression.packed_size_bytes if compression else None
    return "-" if not size else f"{size / 1e6:.1f}"


class ModelInfo(_Open):
    label: str | None = None
    kind: str | None = None
    source: str | None = None
    recipe: str | None = None
    weights_digest: str | None = None
    architecture: str | None = None
    num_parameters: int | None = None
    description: str | None = None
    compression: CompressionInfo | None = None
    broken: str | None = None  # why the variant was not probed (NaN/inf weights)


class Disagreement(_Open):
    """A flipped item the second judge reads differently from the run's judge."""

    model: str = ""
    probe: str = ""
    item_id: str = ""
    prompt: str = ""
    base_response: str = ""
    variant_response: str = ""
    judge: list[str] = Field(default_factory=list)  # [base verdict, variant verdict]
    second_judge: list[str] = Field(default_factory=list)


class SecondOpinion(_Open):
    judge: str = "?"
    version: str | int = "?"
    flips_checked: int = 0
    disagreements: list[Disagreement] = Field(default_factory=list)


class JudgeInfo(_Open):
    name: str = "?"
    version: str | int = "?"
    spec: str | None = None  # the judge as selected (``llm:PATH``), when it differs from its name
    second_opinion: SecondOpinion | None = None


class RejudgeEntry(_Open):
    """One ``compsafe rejudge``: the judge before and after, and when."""

    previous: dict[str, Any] = Field(default_factory=dict, alias="from")
    to: dict[str, Any] = Field(default_factory=dict)
    at: float | None = None


class ConfigRecord(_Open):
    """The run's options as written (``RunConfig.to_dict``); the fields readers use are typed."""

    model: str | None = None
    profile: str | None = None
    limit: int | None = None
    seed: int | None = None
    probes: list[str] = Field(default_factory=list)
    variants: list[str] = Field(default_factory=list)


class RunSummary(_Open):
    schema_version: int = 0
    compsafe_version: str = "?"
    config: ConfigRecord = Field(default_factory=ConfigRecord)
    judge: JudgeInfo = Field(default_factory=JudgeInfo)
    generation: dict[str, Any] = Field(default_factory=dict)
    probes: dict[str, ProbeInfo] = Field(default_factory=dict)
    models: dict[str, ModelInfo] = Field(default_factory=dict)
    metrics: dict[str, dict[str, dict[str, Any]]]
    comparisons: dict[str, VariantComparison] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    timing_seconds: dict[str, float] = Field(default_factory=dict)
    null_reasons: dict[str, str] = Field(default_factory=dict)
    rejudged: list[RejudgeEntry] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _finite_and_known_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("schema_version", 0)
            if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
                raise ValueError(
                    f"schema_version {version} is newer than this compsafe reads ({SCHEMA_VERSION}): upgrade compsafe"
                )
            bad = first_non_finite(data)
            if bad is not None:
                raise ValueError(f"{bad} is not a finite number (summaries hold null for a missing number)")
        return data

    @model_validator(mode="after")
    def _has_base(self) -> RunSummary:
        if "base" not in self.metrics:
            raise ValueError("metrics has no entry for the base model")
        return self

    # ---- what readers ask, in one place
    @property
    def limit(self) -> int | None:
        return self.config.limit

    def variant_labels(self) -> list[str]:
        """Every variant of the run in order: probed ones (with metrics) and BROKEN ones (models only)."""
        labels = [label for label in self.metrics if label != "base"]
        return labels + [label for label in self.models if label != "base" and label not in labels]

    def probed_labels(self) -> list[str]:
        return [label for label in self.metrics if label != "base"]

    def broken(self) -> dict[str, str]:
        return {label: model.broken for label, model in self.models.items() if model.broken}

    def probe_metrics(self, label: str, probe: str) -> dict[str, Any]:
        return self.metrics.get(label, {}).get(probe) or {}

    def comparison(self, label: str, probe: str) -> ProbeComparison | None:
        variant = self.comparisons.get(label)
        return variant.probes.get(probe) if variant is not None else None

    def drift(self, label: str) -> DriftSummary:
        variant = self.comparisons.get(label)
        return variant.alignment_drift_ratio if variant is not None else DriftSummary()

    def compression(self, label: str) -> CompressionInfo | None:
        model = self.models.get(label)
        return model.compression if model is not None else None

    def to_json(self) -> str:
        """The document as written: exactly the fields that were set (nothing defaulted in), strict JSON."""
        return (
            json.dumps(self.model_dump(mode="json", exclude_unset=True, by_alias=True), indent=2, ensure_ascii=False)
            + "\n"
        )


def first_non_finite(data: Any, path: str = "") -> str | None:
    """Dotted path of the first NaN/inf float in a JSON-like value, None when every number is finite."""
    if isinstance(data, float) and not math.isfinite(data):
        return path or "value"
    if isinstance(data, dict):
        for key, value in data.items():
            found = first_non_finite(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            found = first_non_finite(value, f"{path}[{index}]")
            if found:
                return found
    return None


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}" if where else message + more


def parse_summary(data: Any, source: str = "summary") -> RunSummary:
    """A ``RunSummary`` from parsed JSON; a ``SummaryError`` (one line) for anything the schema rejects."""
    if isinstance(data, RunSummary):
        return data
    if not isinstance(data, dict):
        raise SummaryError(f"{source} is not a compsafe summary (expected a JSON object)")
    try:
        return RunSummary.model_validate(data)
    except ValidationError as exc:
        raise SummaryError(f"{source} is not a valid compsafe summary: {_one_line(exc)}") from exc


def load_summary(run_dir: Path) -> RunSummary:
    """summary.json of a run folder, validated; one-line errors say what is wrong or what to pass instead."""
    from compsafe import paths
    from compsafe.errors import DataFileError
    from compsafe.jsonio import read_json_file

    path = Path(run_dir) / "summary.json"
    if not paths.is_file(path):
        raise RunFolderError(
            f"{run_dir} is not a run folder (no summary.json): pass the --out folder of `compsafe run`"
        )
    try:
        # limits: huge integers, deep nesting, lone surrogates; NaN is read so that the schema names where it is
        data = read_json_file(path, "run summary", non_finite=True)
    except DataFileError as exc:
        raise RunFolderError(str(exc)) from None
    return parse_summary(data, str(path))


def load_summary_data(run_dir: Path) -> dict[str, Any]:
    """summary.json validated by the schema, returned as the plain dict that was written (for rewriters)."""
    return json.loads(load_summary(run_dir).to_json())


def json_safe(value: Any, path: str = "", reasons: dict[str, str] | None = None) -> Any:
    """Replace NaN/inf by None so the JSON is strict; record each replaced path and why in ``reasons``."""
    if isinstance(value, float) and not math.isfinite(value):
        if reasons is not None:
            reasons[path] = "NaN (not computable on these items)" if math.isnan(value) else f"{value} (unbounded)"
        return None
    if isinstance(value, dict):
        return {k: json_safe(v, f"{path}.{k}" if path else str(k), reasons) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, f"{path}[{i}]", reasons) for i, v in enumerate(value)]
    return value


def summary_document(summary: dict[str, Any]) -> dict[str, Any]:
    """The dict the runner built, as it is written: schema version first, NaN/inf as null with reasons.

    Validated against the schema before writing, so a writer bug fails the run instead of every reader.
    """
    reasons: dict[str, str] = {}
    document = {"schema_version": SCHEMA_VERSION, **json_safe(summary, reasons=reasons)}
    if reasons:
        document["null_reasons"] = {**document.get("null_reasons", {}), **reasons}
    parse_summary(document, "the summary being written")
    return document
