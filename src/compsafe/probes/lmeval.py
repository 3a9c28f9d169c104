"""Any lm-evaluation-harness task as a compsafe probe: ``--probes lmeval:TASK`` (a task name or a task YAML).

Why: compsafe's own capability items are 151 project-written questions; users judge capability by the standard
tasks they already run. This probe lets lm-eval build the task's requests (prompts, few-shot examples, answer
choices) and score each document (``process_results``, the task's filters), while the requests run on
compsafe's backend through ``lmeval_model.CompsafeLM`` -- so the base and every in-memory variant answer the
same requests, each document is one stored record, and the paired statistics, drift ratio and reports treat
the task like any other probe. Each model's summary carries lm-eval's own aggregate of every metric
(``metrics["acc,none"]``, lm-eval's naming); ``score`` is the task's first mean-aggregated, higher-is-better
per-item metric (``acc,none`` for a multiple-choice task), the capability measure the drift ratio can use.

``--limit N`` keeps the task's first N documents (lm-eval's ``--limit``), not a category-balanced sample.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from compsafe.analysis.task_scores import item_number
from compsafe.probes.base import PROBES, DatasetInfo, Item, Probe, ProbeContext, Record, chunked
from compsafe.probes.datasets import DatasetSource, shipped
from compsafe.probes.declarations import CAPABILITY, HIGHER, Metric, count, score
from compsafe.probes.lmeval_tasks import DEFAULT_TASK, load_task
from compsafe.standards import Standards


def json_safe(value: Any) -> Any:
    """Plain JSON types (tuples become lists, anything else its text), as the store keeps records."""
    return json.loads(json.dumps(value, default=str))


def _filter_names(task: Any) -> list[str]:
    return [f.name for f in getattr(task, "_filters", [])] or ["none"]


def primary_metric(task: Any) -> str | None:
    """``metric,filter`` of the task's first mean-aggregated, higher-is-better metric under its first filter."""
    aggregation, higher = task.aggregation(), task.higher_is_better()
    for name in aggregation:
        if getattr(aggregation[name], "__name__", "") == "mean" and higher.get(name) is True:
            return f"{name},{_filter_names(task)[0]}"
    return None


def _item_id(doc: Any, doc_id: int, task_name: str, unique: bool) -> str:
    """The document's own ``id`` when every document has a distinct one (stable if the file is reordered), else
    ``<task>-<index>``."""
    own = doc.get("id") if isinstance(doc, dict) else None
    if unique and isinstance(own, str | int) and not isinstance(own, bool):
        return str(own)
    return f"{task_name}-{doc_id:05d}"


@PROBES.register("lmeval")
class LmEvalProbe(Probe):
    name: ClassVar[str] = "lmeval"
    description: ClassVar[str] = (
        "any lm-evaluation-harness task (lmeval:NAME or lmeval:task.yaml) through compsafe's backend; "
        "lm-eval's per-item metrics, paired"
    )
    outcome: ClassVar[str] = "task_scores"
    headline_metric: ClassVar[str] = "score"
    standards: ClassVar[Standards] = Standards(
        owasp=("LLM09",),
        nist=("MEASURE 2.3", "MEASURE 2.5"),
        why=(
            "standard capability tasks on the base and every variant: a variant that loses task accuracy is less "
            "valid and reliable and answers wrongly more often (misinformation, LLM09)"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        # rank -1: a standard task the user chose is the drift ratio's preferred capability measure
        score("score", HIGHER, change="delta", paired=("base_score", "variant_score"), per_item=("score",),
              label="lm-eval task score", roles=(CAPABILITY,), rank=-1, optional=True,
              description="the task's first mean-aggregated, higher-is-better per-item metric"),
        score("metrics.*", description="lm-eval's aggregate of each metric, named metric,filter as lm-eval does"),
        count("n"),
    )  # fmt: skip
    sources: ClassVar[dict[str, DatasetSource]] = {
        DEFAULT_TASK: DatasetSource(
            DEFAULT_TASK,
            "data/lmeval/compsafe.yaml (mcqa.jsonl)",
            "Apache-2.0",
            shipped("mcqa.jsonl"),
            requires_package="lm_eval",
        ),
    }
    definition: ClassVar[str] = (
        "lm-eval's requests, filters and per-document metrics; requests run on compsafe's backend (log-likelihoods "
        "equal lm-eval's HF backend's; generated text is whitespace-stripped)"
    )

    def __init__(self, items: Sequence[Item], dataset: DatasetInfo) -> None:
        super().__init__(items, dataset)
        self._task: Any = None
        self._instances: dict[int, list[Any]] | None = None

    @classmethod
    def from_spec(cls, spec: str | None, limit: int | None) -> Probe:
        task = load_task(spec)
        import lm_eval

        task.build_all_requests(limit=limit, rank=0, world_size=1)
        by_doc: dict[int, list[Any]] = defaultdict(list)
        for instance in task.instances:
            by_doc[instance.doc_id].append(instance)
        docs = list(task.doc_iterator(rank=0, limit=limit, world_size=1))
        own_ids = [d.get("id") if isinstance(d, dict) else None for _, d in docs]
        unique = None not in own_ids and len({str(i) for i in own_ids}) == len(own_ids)
        task_name = task.config.task
        items = []
        for doc_id, doc in docs:
            requests = sorted(by_doc[doc_id], key=lambda r: r.idx)
            data = {
                "doc_id": doc_id,
                "requests": json_safe([[r.request_type, *r.args] for r in requests]),
                "target": json_safe(task.doc_to_target(doc)),
            }
            items.append(Item(_item_id(doc, doc_id, task_name, unique), data))
        extra = {
            "available": len(task.eval_docs),
            "spec": spec or DEFAULT_TASK,
            "task": task_name,
            "output_type": task.OUTPUT_TYPE,
            "primary_metric": primary_metric(task),
            "lm_eval_version": lm_eval.__version__,
        }
        metadata = task.config.metadata if isinstance(task.config.metadata, dict) else {}
        source = str(metadata.get("config_source") or spec or task_name)
        probe = cls(items, DatasetInfo(task_name, source, "the task's dataset licence", len(items), extra))
        probe._task, probe._instances = task, dict(by_doc)
        return probe

    # the lm-eval task is rebuilt from its spec where the probe was shipped without it (a Ray worker)
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_task": None, "_instances": None}

    @property
    def task(self) -> Any:
        if self._task is None:
            self._task = load_task(self.dataset.extra["spec"])
        return self._task

    def _requests_by_doc(self) -> dict[int, list[Any]]:
        if self._instances is None:
            last = max((int(i.data["doc_id"]) for i in self.items), default=-1)
            self.task.build_all_requests(limit=last + 1, rank=0, world_size=1)
            instances: dict[int, list[Any]] = defaultdict(list)
            for instance in self.task.instances:
                instances[instance.doc_id].append(instance)
            self._instances = dict(instances)
        return self._instances

    def query_config(self, context: ProbeContext) -> dict[str, Any]:
        """The task's identity, lm-eval's version and its metric/filter definitions: a change re-scores items."""
        config = self.task.config
        definition = json_safe({"metric_list": config.metric_list, "filter_list": config.filter_list})
        return {
            **super().query_config(context),
            "task": self.dataset.extra["task"],
            "lm_eval": self.dataset.extra["lm_eval_version"],
            "definition": definition,
        }

    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        from lm_eval.api.instance import Instance

        from compsafe.probes.lmeval_model import CompsafeLM

        model, task, requests = CompsafeLM(context.backend), self.task, self._requests_by_doc()
        primary = self.dataset.extra["primary_metric"]
        for chunk in chunked(items, context.chunk_size):
            fresh = {
                item.id: [
                    Instance(r.request_type, r.doc, r.arguments, r.idx, (r.task_name, r.doc_id, r.repeats))
                    for r in sorted(requests[int(item.data["doc_id"])], key=lambda r: r.idx)
                ]
                for item in chunk
            }
            by_type: dict[str, list[Any]] = defaultdict(list)
            for instances in fresh.values():
                for instance in instances:
                    by_type[instance.request_type].extend([instance] * instance.repeats)
            for request_type, batch in by_type.items():
                for instance, response in zip(batch, getattr(model, request_type)(batch), strict=True):
                    instance.resps.append(response)
            every = [instance for instances in fresh.values() for instance in instances]
            for ensemble in getattr(task, "_filters", []):
                ensemble.apply(every)
            records = [self._record(item, fresh[item.id], primary) for item in chunk]
            context.progress(len(chunk))
            yield records

    def _record(self, item: Item, instances: list[Any], primary: str | None) -> Record:
        doc = instances[0].doc
        metrics: dict[str, Any] = {}
        for filter_name in instances[0].filtered_resps:
            outcome = self.task.process_results(doc, [i.filtered_resps[filter_name] for i in instances])
            metrics.update({f"{name},{filter_name}": value for name, value in outcome.items()})
        responses = [i.resps[0] if len(i.resps) == 1 else i.resps for i in instances]
        return {
            "item_id": item.id,
            "doc_id": item.data["doc_id"],
            "target": item.data["target"],
            "responses": json_safe(responses),
            "metrics": json_safe(metrics),
            "score": item_number(metrics.get(primary)) if primary else None,
        }

    def summarize(self, records: Sequence[Record]) -> dict[str, Any]:
        """lm-eval's aggregate of every metric (its own aggregation functions), the headline score and n."""
        aggregation = self.task.aggregation()
        values: dict[str, list[Any]] = defaultdict(list)
        for record in records:
            for key, value in (record.get("metrics") or {}).items():
                values[key].append(value)
        aggregates = {}
        for key, column in values.items():
            function = aggregation.get(key.split(",")[0])
            number = item_number(function(column)) if function is not None and column else None
            if number is not None:
                aggregates[key] = number
        scores = [s for s in (item_number(r.get("score")) for r in records) if s is not None]
        return {"score": sum(scores) / len(scores) if scores else math.nan, "metrics": aggregates, "n": len(records)}
