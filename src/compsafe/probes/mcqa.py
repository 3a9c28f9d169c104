"""Capability by multiple choice, scored by log-likelihood the way lm-evaluation-harness does it.

Each choice is a continuation of "Question: ...\\nAnswer:"; the prediction is the choice with the highest
summed log-probability (``acc``) and, length-normalised by the choice's byte length, ``acc_norm``. The
softmax over the choices' log-likelihoods gives a confidence per item, kept for calibration analysis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from compsafe.analysis.calibration import calibration_summary
from compsafe.errors import DataFileError
from compsafe.probes.base import PROBES, Item, ItemRows, Probe, ProbeContext, Record, chunked
from compsafe.probes.datasets import (
    DatasetSource,
    field,
    shipped,
)
from compsafe.probes.declarations import CAPABILITY, HIGHER, LOWER, Metric, count, rate, score
from compsafe.standards import Standards


def format_question(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


def _choices(row: dict[str, Any], origin: str, index: int) -> list[str]:
    choices = row.get("choices")
    if isinstance(choices, str):  # CSV: "a|b|c|d"
        choices = choices.split("|")
    if choices is None:
        choices = [row[k] for k in ("A", "B", "C", "D", "E") if row.get(k) not in (None, "")]
    if not isinstance(choices, list) or len(choices) < 2:
        raise DataFileError(f"{origin}: item {index + 1} needs 'choices' (a list of >= 2, or columns A..D)")
    if not all(isinstance(c, str | int | float) and not isinstance(c, bool) and str(c).strip() for c in choices):
        raise DataFileError(f"{origin}: item {index + 1} has a choice that is not text (or is empty)")
    return [str(c) for c in choices]


def _answer(row: dict[str, Any], choices: list[str], origin: str, index: int) -> int:
    raw = field(row, ("answer", "label", "gold"), origin, index, text=False)
    if isinstance(raw, str) and raw.strip().upper() in "ABCDE" and len(raw.strip()) == 1:
        answer = "ABCDE".index(raw.strip().upper())
    else:
        try:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            if isinstance(raw, str) and not (raw.strip().isascii() and raw.strip().lstrip("-").isdigit()):
                raise ValueError(raw)  # "١" must not read as 1
            answer = int(raw)
        except (TypeError, ValueError) as exc:
            raise DataFileError(
                f"{origin}: item {index + 1} answer {raw!r} must be a 0-based index or a letter"
            ) from exc
    if not 0 <= answer < len(choices):
        raise DataFileError(f"{origin}: item {index + 1} answer {answer} is out of range for {len(choices)} choices")
    return answer


@PROBES.register("mcqa")
class MCQAProbe(Probe):
    name: ClassVar[str] = "mcqa"
    description: ClassVar[str] = "multiple-choice questions by log-likelihood; accuracy (acc and acc_norm)"
    outcome: ClassVar[str] = "choice"
    headline_metric: ClassVar[str] = "accuracy"
    standards: ClassVar[Standards] = Standards(
        owasp=("LLM09",),
        nist=("MEASURE 2.3", "MEASURE 2.5"),
        why=(
            "accuracy and calibration on multiple-choice questions: a variant that answers wrongly with "
            "confidence produces misinformation (LLM09) and is less valid and reliable"
        ),
    )
    metrics: ClassVar[tuple[Metric, ...]] = (
        rate("accuracy", HIGHER, change="delta", test="mcnemar", paired=("base_accuracy", "variant_accuracy"),
             per_item=("correct",), label="MCQA accuracy", roles=(CAPABILITY,), rank=0),
        rate("accuracy_norm", HIGHER, change="delta_norm"),
        rate("answer_flip_share", LOWER, in_comparison=True),
        rate("mean_confidence"),
        rate("mean_confidence_wrong", LOWER),
        score("ece", LOWER, change="calibration.ece.delta"),
        score("brier_score", LOWER, change="calibration.brier_score.delta"),
        score("top_label_brier", LOWER),
        count("calibration_bins"),
        count("n"),
    )
    sources: ClassVar[dict[str, DatasetSource]] = {
        "compsafe": DatasetSource(
            "compsafe", "compsafe/data/mcqa.jsonl (project-authored)", "Apache-2.0", shipped("mcqa.jsonl")
        ),
    }

    item_fields: ClassVar[tuple[str, ...]] = ("question", "choices", "answer", "category")
    item_noun: ClassVar[str] = "question"

    @classmethod
    def parse_row(cls, row: dict[str, Any], index: int, rows: ItemRows) -> dict[str, Any]:
        question = str(field(row, ("question", "query", "prompt"), rows.origin, index))
        choices = _choices(row, rows.origin, index)
        return {
            "id": rows.row_id(row, index),
            "question": question,
            "choices": choices,
            "answer": _answer(row, choices, rows.origin, index),
            "category": str(row.get("subject", row.get("category", "general"))),
        }

    def evaluate(self, items: Sequence[Item], context: ProbeContext) -> Iterator[list[Record]]:
        for chunk in chunked(items, context.chunk_size):
            requests = [(format_question(i.data["question"]), f" {c}") for i in chunk for c in i.data["choices"]]
            results = iter(context.backend.loglikelihood(requests))
            records = []
            for item in chunk:
                choices = item.data["choices"]
                logprobs = [next(results).logprob for _ in choices]
                normalised = [lp / max(len(f" {c}".encode()), 1) for lp, c in zip(logprobs, choices, strict=True)]
                pred = max(range(len(choices)), key=logprobs.__getitem__)
                pred_norm = max(range(len(choices)), key=normalised.__getitem__)
                top = max(logprobs)
                weights = [math.exp(lp - top) for lp in logprobs]
                confidence = weights[pred] / sum(weights)
                answer = item.data["answer"]
                records.append(
                    {
                        "item_id": item.id,
                        "category": item.data["category"],
                        "answer": answer,
                        "logprobs": logprobs,
                        "pred": pred,
                        "pred_norm": pred_norm,
                        "correct": pred == answer,
                        "correct_norm": pred_norm == answer,
                        "confidence": confidence,
                    }
                )
            context.progress(len(chunk))
            yield records

    def summarize(self, records: Sequence[Record]) -> dict[str, float]:
        n = len(records)
        return {
            "accuracy": sum(r["correct"] for r in records) / n if n else 0.0,
            "accuracy_norm": sum(r["correct_norm"] for r in records) / n if n else 0.0,
            "mean_confidence": sum(r["confidence"] for r in records) / n if n else 0.0,
            "n": n,
            **calibration_summary(records),  # ECE, Brier, reliability curve (analysis/calibration.py)
        }
