"""The probe contract: items + how to query the model + how to score one item (Inspect AI's Task shape).

A probe never calls transformers: it asks the backend for generations, log-likelihoods or logits, scores
each item into a plain-dict record, and yields records in small batches so the runner can commit each batch
to the store as soon as it finishes (a killed run loses at most one batch). Statistics across models live
in ``compsafe.analysis``, not here.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from compsafe.errors import DataFileError
from compsafe.judges.base import RefusalJudge
from compsafe.models.backend import GenerationConfig, HFBackend
from compsafe.probes.datasets import balanced_limit, pick_source, read_data_file
from compsafe.probes.declarations import Metric
from compsafe.probes.rejudging import JudgedField, rejudge_records
from compsafe.probes.screening import screening_config
from compsafe.registry import Registry
from compsafe.standards import Standards

Record = dict[str, Any]
Artifact = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Item:
    id: str
    data: dict[str, Any]


@dataclass
class ProbeContext:
    """What a probe may use while evaluating one model."""

    backend: HFBackend
    judge: RefusalJudge
    generation: GenerationConfig
    is_base: bool
    save_artifact: Callable[[str, Artifact], None] = lambda item_id, artifact: None
    load_base_artifact: Callable[[str], Artifact | None] = lambda item_id: None
    progress: Callable[[int], None] = lambda n: None
    chunk_size: int = 32
    # refusal-margin threshold above which screenable probes decide an item without generating it (None: off)
    screen_margin: float | None = None

    @classmethod
    def for_keys(cls, judge: RefusalJudge, generation: GenerationConfig, screen_margin: float | None) -> ProbeContext:
        """A model-less context: enough for ``Probe.query_config``, the query half of every store key."""
        return cls(backend=None, judge=judge, generation=generation, is_base=False, screen_margin=screen_margin)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ItemRows:
    """The raw rows of one item set and where they came from (a shipped or package set, or a user file)."""

    set_name: str
    rows: list[dict[str, Any]]
    origin: str
    licence: str

    def row_id(self, row: dict[str, Any], index: int) -> str:
        """The row's own ``id``, else ``<set>-<index>`` (stable while the file is unchanged)."""
        return str(row.get("id", f"{self.set_name}-{index:04d}"))


@dataclass(frozen=True)
class DatasetInfo:
    """Where a probe's items came from (shown by `compsafe probes` and stored in summary.json)."""

    name: str
    source: str
    licence: str
    count: int
    extra: dict[str, Any] = field(default_factory=dict)


class Probe(ABC):
    """Base class of probes. Subclasses set the class attributes and implement ``evaluate``/``summarize``."""

    name: ClassVar[str]
    description: ClassVar[str]
    outcome: ClassVar[str]  # "refusal" (binary refused), "perplexity", "choice" (MCQA): selects the analysis
    headline_metric: ClassVar[str]
    # every number ``summarize`` writes (and the comparison-only ones), with unit, direction and paired
    # statistics (probes.declarations); the contract test checks them against real records
    metrics: ClassVar[tuple[Metric, ...]]
    uses_judge: ClassVar[bool] = False
    uses_generation: ClassVar[bool] = False
    version: ClassVar[str] = "1"  # bump when scoring changes so stored records are not reused
    screenable: ClassVar[bool] = False  # honours ProbeContext.screen_margin (see probes.screening)
    sources: ClassVar[dict[str, Any]]  # named item sets (DatasetSource); the first is the default
    # the OWASP LLM Top 10 (2025) items and NIST AI RMF functions this probe is evidence for (compsafe.standards);
    # declared on every registered class itself, not inherited (tests/test_standards.py)
    standards: ClassVar[Standards]

    def __init__(self, items: Sequence[Item], dataset: DatasetInfo) -> None:
        self.items = list(items)
        self.dataset = dataset

    # Reading items, one hook shared by the probes: from_spec -> read_rows (the named set or a user file) ->
    # from_rows (parse_row per row, unique ids, a balanced --limit, Items keeping ``item_fields``).
    item_fields: ClassVar[tuple[str, ...]] = ()  # the parsed row's keys an Item keeps
    limit_key: ClassVar[str] = "category"  # --limit takes items round-robin over this key's values
    item_noun: ClassVar[str] = "item"  # what one row is, for the duplicate-id message ("question", "pair")

    @classmethod
    def from_spec(cls, spec: str | None, limit: int | None) -> Probe:
        """Build the probe on a named set or a user file (``spec``), keeping at most ``limit`` items."""
        return cls.from_rows(cls.read_rows(spec), limit)

    @classmethod
    def read_rows(cls, spec: str | None, **read_options: Any) -> ItemRows:
        """The rows of the set ``spec`` names (None: the probe's first source) or of a user file at ``spec``."""
        set_name, source = pick_source(cls.sources, spec, cls.name)
        if isinstance(source, Path):
            return ItemRows(set_name, read_data_file(source, **read_options), str(source), "user-supplied")
        return ItemRows(set_name, source.load(), source.source, source.licence)

    @classmethod
    def from_rows(
        cls, rows: ItemRows, limit: int | None, info: dict[str, Any] | None = None, **options: Any
    ) -> Probe:
        """The probe on ``rows``: each parsed (``parse_rows``), ids checked unique, at most ``limit`` kept
        round-robin over ``limit_key``; ``info`` joins the dataset's extra facts, ``options`` the constructor."""
        parsed = cls.parse_rows(rows)
        if len({p["id"] for p in parsed}) != len(parsed):
            noun = cls.item_noun
            raise DataFileError(f"{rows.origin}: {noun} ids are not unique; give every {noun} a distinct 'id'")
        picked = balanced_limit(parsed, limit, key=cls.limit_key)
        items = [Item(p["id"], {k: p[k] for k in cls.item_fields}) for p in picked]
        extra = {"available": len(parsed), **(info or {})}
        return cls(items, DatasetInfo(rows.set_name, rows.origin, rows.licence, len(items), extra), **options)

    @classmethod
    def parse_rows(cls, rows: ItemRows) -> list[dict[str, Any]]:
        """Every row parsed into a flat dict with an ``id`` (override to expand or reorder rows)."""
        return [cls.parse_row(row, index, rows) for index, row in enumerate(rows.rows)]

    @classmethod
    def parse_row(cls, row: dict[str, Any], index: int, rows: ItemRows) -> dict[str, Any]:
        """One row of an item file as a flat dict with an ``id``; a malformed row raises a DataFileError."""
        raise NotImplementedError(f"{cls.__name__} reads its items its own way: it overrides from_spec")

    # One line on how the headline is computed where published definitions differ (shown in the report).
    definition: ClassVar[str] = ""

    @property
    def item_digest(self) -> str:
        """Digest of exactly the items evaluated (so --limit and edited files get their own store keys)."""
        payload = json.dumps([[i.id, i.data] for i in self.items], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def query_config(self, context: ProbeContext) -> dict[str, Any]:
        """Everything besides model and items that determines a record: part of the store key."""
        config: dict[str, Any] = {"probe": self.name, "version": self.version}
        if self.uses_generation:
            config["generation"] = context.generation.to_dict()
        if self.uses_judge:
            config["judge"] = f"{context.judge.name}@{context.judge.version}"
        if self.screenable and context.screen_margin is not None:
            config["screen"] = screening_config(context.screen_margin)  # screened records get their own key
        return config

    @abstractmethod
    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        """Score ``items``; yield lists of records (each with ``item_id``) as they finish."""

    @abstractmethod
    def summarize(self, records: Sequence[Record]) -> dict[str, float]:
        """Per-model aggregates of this probe's records (no cross-model statistics)."""

    # The responses a judge reads (``uses_judge`` probes): ``compsafe rejudge`` reads them again with another judge.
    judged: ClassVar[tuple[JudgedField, ...]] = ()

    def rejudge(
        self, records: Sequence[Record], items: dict[str, Item], judge: RefusalJudge, previous: str
    ) -> list[Record]:
        """Copies of stored records re-scored by ``judge`` without generating (``previous`` names the old judge)."""
        return [
            self.rederive(r, items.get(str(r.get("item_id"))))
            for r in rejudge_records(records, items, self.judged, judge, previous)
        ]

    def rederive(self, record: Record, item: Item | None) -> Record:
        """Recompute the fields a record derives from its verdicts (e.g. ``attack_success``) after a rejudge."""
        return record


def chunked(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


PROBES: Registry[type[Probe]] = Registry("probe")
