"""The signals a diagnosis reads off one model state: refusal margin, fast and judged refusal rate, perplexity.

They are measured with the run's own primitives (``probes.refusal_signal.refusal_margins`` on the backend's
shared-context scoring, the judge registry, ``HFBackend.text_logits``). Given a ``ResultStore``, every
measurement is a per-item record under a key that names the model state (base identity + what was done to it:
a recipe, a block, an ablated head), so an interrupted scan resumes: ``SignalProbe.cached(state)`` answers a
finished state from the store without the caller building it again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from compsafe.config import DEFAULT_JUDGE
from compsafe.models.backend import GenerationConfig, HFBackend
from compsafe.probes.refusal_signal import refusal_margins
from compsafe.store import ResultStore, item_digest

# Query versions: bump when a measurement's definition changes, so old records are never mixed in.
MARGIN_VERSION = 1
JUDGED_VERSION = 1
PERPLEXITY_VERSION = 1


def _shipped(name: str) -> list[dict[str, Any]]:
    from compsafe.probes.datasets import shipped

    return shipped(name)()


def split_harmful(rows: Sequence[dict[str, Any]] | None = None) -> tuple[list[str], list[str]]:
    """Harmful prompts split into (validation, held-out), alternating within each category.

    Why alternate within categories: both halves cover every harm category in the same proportion, so a search
    tuned on the validation half is confirmed on items of the same kind it never saw.
    """
    rows = list(rows) if rows is not None else _shipped("harmful.jsonl")
    seen: dict[str, int] = {}
    validation, heldout = [], []
    for row in rows:
        index = seen.get(row.get("category", ""), 0)
        seen[row.get("category", "")] = index + 1
        (validation if index % 2 == 0 else heldout).append(str(row["prompt"]))
    return validation, heldout


def shipped_passages(limit: int | None = None) -> list[str]:
    """Capability text: the perplexity probe's shipped passages (a prefix of them for speed)."""
    texts = [str(row["text"]) for row in _shipped("passages.jsonl")]
    return texts[:limit] if limit else texts


@dataclass
class Signals:
    """Safety and capability of one model state on fixed items.

    ``fast_refusal_rate``: share of prompts with a positive margin (the model leans to refusing), a rate on the
    same scale as the judged refusal rate, so a tolerance like "at most 2 points lost" reads the same for both.
    """

    mean_margin: float
    fast_refusal_rate: float
    perplexity: float
    judged_refusal_rate: float | None = None
    margins: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, with_items: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_items:
            data.pop("margins")
        return data


def signals_from(margins: Sequence[float], perplexity: float, judged_refusal_rate: float | None) -> Signals:
    return Signals(
        mean_margin=sum(margins) / len(margins),
        fast_refusal_rate=sum(m > 0 for m in margins) / len(margins),
        perplexity=perplexity,
        judged_refusal_rate=judged_refusal_rate,
        margins=list(margins),
    )


@dataclass
class SignalProbe:
    """Measures ``Signals`` of whatever weights the backend's model holds right now.

    ``store`` + ``identity`` (the base model's, from ``integrity.model_identity``) make the measurements
    per-item records keyed by (identity, ``state``), so a scan that is run again skips finished states.
    Without a store every call measures afresh.
    """

    backend: HFBackend
    prompts: list[str]
    passages: list[str]
    judge: str = DEFAULT_JUDGE  # the run's default, so a scan's judged rates read like a run's
    max_new_tokens: int = 32
    store: ResultStore | None = None
    identity: dict[str, Any] | None = None

    def judge_identity(self) -> list[str]:
        """[name, version] of the judge behind the judged rates, for the result file (bad names fail here)."""
        from compsafe.judges import get_judge

        judge = get_judge(self.judge)
        return [judge.name, judge.version]

    # --- items and keys -----------------------------------------------------------------------------------------

    def _items(self, kind: str) -> list[tuple[str, str, str]]:
        """(item id, item digest, text) of the prompts (margins, judged) or the passages (perplexity)."""
        texts = self.passages if kind == "perplexity" else self.prompts
        field_name = "text" if kind == "perplexity" else "prompt"
        return [(f"{kind[0]}{i}", item_digest({field_name: t}), t) for i, t in enumerate(texts)]

    def _query(self, kind: str) -> dict[str, Any]:
        if kind == "margin":
            return {"kind": "refusal_margin", "version": MARGIN_VERSION}
        if kind == "judged":
            from compsafe.judges import get_judge

            judge = get_judge(self.judge)
            return {"kind": "judged_refusal", "version": JUDGED_VERSION, "judge": [judge.name, judge.version],
                    "max_new_tokens": self.max_new_tokens}
        return {"kind": "perplexity", "version": PERPLEXITY_VERSION}

    def _key(self, state: dict[str, Any], kind: str) -> str | None:
        if self.store is None or self.identity is None:
            return None
        return self.store.register_key({"model": {**self.identity, **state}, "query": self._query(kind)})

    def _stored(self, state: dict[str, Any], kind: str) -> list[dict[str, Any]] | None:
        key = self._key(state, kind)
        if key is None:
            return None
        done = self.store.records(key)  # type: ignore[union-attr]
        rows = [done.get((item_id, digest)) for item_id, digest, _ in self._items(kind)]
        return None if any(r is None for r in rows) else rows  # type: ignore[return-value]

    def _records(self, state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        """This kind's records for the current weights: from the store when complete, else computed and stored."""
        stored = self._stored(state, kind)
        if stored is not None:
            return stored
        items = self._items(kind)
        rows = self._compute(kind, [text for _, _, text in items])
        records = [{"item_id": item_id, **row} for (item_id, _, _), row in zip(items, rows, strict=True)]
        key = self._key(state, kind)
        if key is not None:
            self.store.put_records(  # type: ignore[union-attr]
                key, [(r["item_id"], digest, r) for r, (_, digest, _) in zip(records, items, strict=True)]
            )
        return records

    # --- the three measurements ----------------------------------------------------------------------------------

    def _compute(self, kind: str, texts: list[str]) -> list[dict[str, Any]]:
        if kind == "margin":
            return [{"margin": m} for m in refusal_margins(self.backend, texts, shared_context=True)]
        if kind == "judged":
            from compsafe.judges import get_judge

            judge = get_judge(self.judge)
            responses = self.backend.generate(texts, GenerationConfig(max_new_tokens=self.max_new_tokens))
            return [
                {"response": r, "refused": judge.judge(p, r).refused} for p, r in zip(texts, responses, strict=True)
            ]
        rows = []
        with torch.inference_mode():
            for text in texts:
                nll, tokens = 0.0, 0
                for targets, logits in self.backend.text_logits(text):
                    logprobs = torch.log_softmax(logits, dim=-1)
                    nll += float(-logprobs.gather(-1, targets[:, None]).sum())
                    tokens += int(targets.numel())
                rows.append({"nll": nll, "tokens": tokens})
        return rows

    @staticmethod
    def _perplexity(rows: Sequence[dict[str, Any]]) -> float:
        tokens = sum(r["tokens"] for r in rows)
        return math.exp(sum(r["nll"] for r in rows) / tokens) if tokens else float("nan")

    def perplexity(self, state: dict[str, Any] | None = None) -> float:
        return self._perplexity(self._records(state or {}, "perplexity"))

    def judged_refusal_rate(self, prompts: Sequence[str] | None = None, state: dict[str, Any] | None = None) -> float:
        """Generated-and-judged refusal rate (of ``prompts``, default this probe's, which are then stored)."""
        if prompts is not None:
            other = SignalProbe(self.backend, list(prompts), [], self.judge, self.max_new_tokens)
            return other.judged_refusal_rate()
        refused = [r["refused"] for r in self._records(state or {}, "judged")]
        return sum(refused) / len(refused) if refused else 0.0

    def measure(self, *, judged: bool = False, capability: bool = True, state: dict[str, Any] | None = None) -> Signals:
        """Signals of the current weights; ``state`` names them in the store (``{}``: the base model)."""
        state = state or {}
        margins = [r["margin"] for r in self._records(state, "margin")]
        ppl = self.perplexity(state) if capability and self.passages else float("nan")
        return signals_from(margins, ppl, self.judged_refusal_rate(state=state) if judged else None)

    def cached(self, state: dict[str, Any], *, judged: bool = False, capability: bool = True) -> Signals | None:
        """The signals of ``state`` when the store holds every record of them, else None (build and measure)."""
        margins = self._stored(state, "margin")
        if margins is None:
            return None
        ppl = float("nan")
        if capability and self.passages:
            rows = self._stored(state, "perplexity")
            if rows is None:
                return None
            ppl = self._perplexity(rows)
        rate = None
        if judged:
            rows = self._stored(state, "judged")
            if rows is None:
                return None
            rate = sum(r["refused"] for r in rows) / len(rows) if rows else 0.0
        return signals_from([r["margin"] for r in margins], ppl, rate)


def variant_state(recipe: str, calibration: Any = None, **extra: Any) -> dict[str, Any]:
    """The store name of a model state built from the base: its canonical recipe (plus the calibration set's
    digest when the recipe uses one, as the runner keys variants) and anything else done to it (a block, a head)."""
    from compsafe.compress import needs_calibration, parse_recipe

    config = parse_recipe(recipe)
    state: dict[str, Any] = {"recipe": config.recipe, **extra}
    if calibration is not None and needs_calibration(config):
        state["calibration"] = calibration.digest
    return state
