"""Capability by language modelling: perplexity on passages, and how far the variant's next-token
distributions moved from the base's on the same text (mean KL), which perplexity alone can hide.

First token: by default the text is encoded as the tokenizer does (with its special tokens); when the tokenizer
adds no BOS (SmolLM2's does not) the first token is context for the second and is not scored. ``perplexity:bos=1``
scores it the way lm-evaluation-harness's ``loglikelihood_rolling`` does: every token, the first after the BOS
(else EOS) token, in its rolling windows (``HFBackend.text_logits(prefix=True)``; a test checks the sum against
lm-eval's own code within 1e-6 relative). The run summary states which (``probes.perplexity.definition``).

For the base model the probe stores the top-k log-probabilities at every position as an artifact; for a
variant it compares against them with ``coarse_kl`` (a lower bound of the full KL; see analysis.divergence).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch

from compsafe.analysis.divergence import coarse_kl, topk_logprobs
from compsafe.probes.base import PROBES, DatasetInfo, Item, ItemRows, Probe, ProbeContext, Record
from compsafe.probes.datasets import DatasetSource, field, shipped
from compsafe.probes.declarations import CAPABILITY, LOWER, Metric, count, nats, perplexity, ratio
from compsafe.probes.sampling import split_options
from compsafe.standards import Standards

TOP_K = 64


@PROBES.register("perplexity")
class PerplexityProbe(Probe):
    name: ClassVar[str] = "perplexity"
    description: ClassVar[str] = "passages; perplexity (lower is better) and mean KL from the base"
    outcome: ClassVar[str] = "perplexity"
    headline_metric: ClassVar[str] = "perplexity"
    standards: ClassVar[Standards] = Standards(
        owasp=(),
        nist=("MEASURE 2.3", "MEASURE 2.5"),
        why=(
            "language-modelling quality on reference passages: the capability a compressed model must keep"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        perplexity("perplexity", LOWER, change="ratio", ratio_change=True,
                   paired=("base_perplexity", "variant_perplexity"), per_item=("nll_sum", "n_tokens"),
                   label="perplexity", roles=(CAPABILITY,), rank=1),
        ratio("ratio", LOWER, change="ratio", ratio_change=True, in_comparison=True, base_value=1.0),
        nats("mean_kl_from_base", LOWER, base_value=0.0, optional=True),  # variants only
        count("tokens"),
        count("n"),
    )
    sources: ClassVar[dict[str, DatasetSource]] = {
        "compsafe": DatasetSource(
            "compsafe", "compsafe/data/passages.jsonl (project-authored)", "Apache-2.0", shipped("passages.jsonl")
        ),
    }

    item_fields: ClassVar[tuple[str, ...]] = ("text",)
    item_noun: ClassVar[str] = "passage"

    def __init__(self, items: Sequence[Item], dataset: DatasetInfo, bos: bool = False) -> None:
        super().__init__(items, dataset)
        self.bos = bos

    @property
    def definition(self) -> str:
        if self.bos:
            return "every token scored, the first after BOS (lm-eval loglikelihood_rolling)"
        return "tokens as the tokenizer encodes them; no tokenizer BOS = first token not scored (bos=1: lm-eval)"

    @classmethod
    def from_spec(cls, spec: str | None, limit: int | None) -> PerplexityProbe:
        set_spec, options = split_options(spec, {"bos": 0})
        if options["bos"] > 1:
            from compsafe.errors import UnknownNameError

            raise UnknownNameError("perplexity:bos=1 scores the first token after BOS as lm-eval does; bos takes 1")
        return cls.from_rows(cls.read_rows(set_spec, text_blocks=True), limit, bos=options["bos"] == 1)

    @classmethod
    def parse_row(cls, row: dict[str, Any], index: int, rows: ItemRows) -> dict[str, Any]:
        return {"id": rows.row_id(row, index), "text": str(field(row, ("text", "passage"), rows.origin, index))}

    def query_config(self, context: ProbeContext) -> dict[str, Any]:
        config = {**super().query_config(context), "top_k": TOP_K}
        if self.bos:
            config["first_token"] = "bos"  # the default's key stays as it was, so its stored records are reused
        return config

    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        for item in items:
            reference = None if context.is_base else context.load_base_artifact(item.id)
            nll_sum, n_tokens, kl_sum = 0.0, 0, 0.0
            top_values, top_ids = [], []
            for targets, logits in context.backend.text_logits(item.data["text"], prefix=self.bos):
                logprobs = torch.log_softmax(logits, dim=-1)
                nll_sum += float(-logprobs.gather(-1, targets[:, None]).double().sum())
                if context.is_base:
                    values, ids = topk_logprobs(logits, TOP_K)
                    top_values.append(values.half())
                    top_ids.append(ids.int())
                elif reference is not None:
                    window = slice(n_tokens, n_tokens + targets.numel())
                    ref_values = reference["topk_logprobs"][window].float()
                    ref_ids = reference["topk_ids"][window].long()
                    kl_sum += float(coarse_kl(ref_values, ref_ids, logits).sum())
                n_tokens += int(targets.numel())
            record: Record = {"item_id": item.id, "nll_sum": nll_sum, "n_tokens": n_tokens}
            if context.is_base:
                context.save_artifact(item.id, {"topk_logprobs": torch.cat(top_values), "topk_ids": torch.cat(top_ids)})
            elif reference is not None:
                record["kl_from_base"] = kl_sum / max(n_tokens, 1)
            context.progress(1)
            yield [record]

    def summarize(self, records: Sequence[Record]) -> dict[str, float]:
        import math

        nll = sum(r["nll_sum"] for r in records)
        tokens = sum(r["n_tokens"] for r in records)
        summary: dict[str, Any] = {
            "perplexity": math.exp(nll / tokens) if tokens else float("nan"),
            "n": len(records),
            "tokens": tokens,
        }
        kls = [r["kl_from_base"] for r in records if "kl_from_base" in r]
        if kls:
            summary["mean_kl_from_base"] = sum(kls) / len(kls)
        return summary
