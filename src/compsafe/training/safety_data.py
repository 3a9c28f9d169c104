"""compsafe's project-authored TRAINING sets for the ``compsafe-demo`` safety adapter, and their checks.

Why these exist: the embedded SmolLM2-135M-Instruct answers harmful requests, so a refusal drift measured on it
is 0 -> 0 and means nothing. The demo model is the same weights plus a small LoRA safety adapter trained on:

* ``safety_train.jsonl`` — harmful requests across the 11 categories of ``harmful.jsonl`` (written separately,
  never copied from an evaluation set) each paired with a short, polite refusal;
* ``benign_train.jsonl`` — ordinary requests plus requests that only *sound* risky (the kind
  ``over_refusal.jsonl`` measures, written separately), answered with the **base model's own greedy answers**,
  so the adapter learns "refuse these, answer those as before" and capability is kept.

The prompts live only in those two data files (``data/PROVENANCE.md``) and the refusal parts in
``data/refusal_templates.json``; ``build_safety_train`` rewrites the refusals from the templates and
``build_benign_train`` regenerates the base model's answers, both for the same prompts. ``check_disjoint``
proves the training prompts share no exact or near duplicate (token Jaccard >= ``NEAR_DUPLICATE_JACCARD``) with
any evaluation prompt, shipped or external.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from compsafe.errors import DataFileError
from compsafe.jsonio import jsonl_objects, read_text_file

NEAR_DUPLICATE_JACCARD = 0.6
SAFETY_TRAIN_FILE = "safety_train.jsonl"
BENIGN_TRAIN_FILE = "benign_train.jsonl"
BENIGN_MAX_NEW_TOKENS = 96

REFUSAL_TEMPLATES_FILE = "refusal_templates.json"


@lru_cache(maxsize=1)
def refusal_templates() -> dict[str, Any]:
    """The shipped refusal parts: ``openings`` (the phrase judge recognises each), and per harm category two
    ``reasons`` and two ``offers`` of safe help (``data/refusal_templates.json``)."""
    text = importlib.resources.files("compsafe.data").joinpath(REFUSAL_TEMPLATES_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def refusal_for(category: str, index: int) -> str:
    """A short, polite refusal: an opening the phrase judge recognises, a reason and an offer, varied by index.

    Deterministic (no RNG): the i-th prompt of a category always gets the same refusal, so rebuilding the file
    gives the same bytes. Steps 5 and 7 are coprime with the pools' sizes, so neighbours get different texts.
    """
    parts = refusal_templates()
    openings = parts["openings"]
    opening = openings[(index * 5 + len(category)) % len(openings)]
    reason = parts["reasons"][category][index % 2]
    offer = parts["offers"][category][(index // 2) % 2]
    if category == "self_harm":  # a caring opening first; the judge still sees a refusal opening
        offer = offer[0].lower() + offer[1:]
        return f"I'm really sorry you're feeling this way. {reason} I can't help with that, but {offer}"
    if index % 3 == 2:  # some refusals are just the opening and an offer: short answers are fine
        return f"{opening} {offer}"
    return f"{opening} {reason} {offer}"


WORD = re.compile(r"[a-z0-9']+")


def tokens(text: str) -> frozenset[str]:
    """Lower-cased word set: what the near-duplicate check compares."""
    return frozenset(WORD.findall(text.lower().replace("\u2019", "'")))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True)
class Overlap:
    """A training prompt too close to an evaluation prompt."""

    train_prompt: str
    eval_prompt: str
    eval_set: str
    similarity: float


def evaluation_prompts() -> dict[str, list[str]]:
    """Every prompt compsafe evaluates with: the shipped sets and the external ones where installed."""
    from compsafe.probes.refusal import OverRefusalProbe, RefusalProbe
    from compsafe.probes.severity import SeverityProbe

    sets: dict[str, list[str]] = {}
    for probe in (RefusalProbe, OverRefusalProbe, SeverityProbe):
        for set_name, source in probe.sources.items():
            if source.available:
                sets[f"{probe.name}:{set_name}"] = [
                    str(row.get("prompt") or row.get("text") or "") for row in source.load()
                ]
    data = importlib.resources.files("compsafe.data")
    mcqa = [json.loads(line) for line in data.joinpath("mcqa.jsonl").read_text(encoding="utf-8").splitlines() if line]
    sets["mcqa:compsafe"] = [str(row["question"]) for row in mcqa]
    from compsafe.probes.multilingual import MultilingualRefusalProbe  # every language version is evaluation text

    sets["multilingual:compsafe"] = [str(row[key]) for row in MultilingualRefusalProbe.sources["compsafe"].load()
                                     for key in row if key.startswith("prompt_")]  # fmt: skip
    return sets


def check_disjoint(
    train_prompts: Iterable[str], eval_sets: dict[str, Sequence[str]], threshold: float = NEAR_DUPLICATE_JACCARD
) -> list[Overlap]:
    """Training prompts that equal, or have token Jaccard >= ``threshold`` with, any evaluation prompt."""
    indexed = [(name, prompt, tokens(prompt)) for name, prompts in eval_sets.items() for prompt in prompts]
    overlaps = []
    for train in train_prompts:
        train_tokens = tokens(train)
        for name, prompt, prompt_tokens in indexed:
            similarity = (
                1.0 if train.strip().lower() == prompt.strip().lower() else jaccard(train_tokens, prompt_tokens)
            )
            if similarity >= threshold:
                overlaps.append(Overlap(train, prompt, name, similarity))
    return overlaps


def max_similarity(train_prompts: Iterable[str], eval_sets: dict[str, Sequence[str]]) -> float:
    """The largest token Jaccard between any training and any evaluation prompt (reported in PROVENANCE.md)."""
    eval_tokens = [tokens(p) for prompts in eval_sets.values() for p in prompts]
    return max((jaccard(tokens(t), e) for t in train_prompts for e in eval_tokens), default=0.0)


def _prompt_rows(name: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The authored prompt rows of a shipped training file (its ``keys`` only; responses are rebuilt)."""
    return [{key: row[key] for key in keys} for row in load_training_rows(shipped_training_file(name))]


def safety_rows() -> list[dict[str, Any]]:
    """Harmful training requests (from the shipped ``safety_train.jsonl``) with their refusals, in file order."""
    rows = _prompt_rows(SAFETY_TRAIN_FILE, ("id", "prompt", "category"))
    seen: dict[str, int] = {}
    for row in rows:  # the i-th request of a category gets refusal i (deterministic, see refusal_for)
        index = seen.get(row["category"], 0)
        seen[row["category"]] = index + 1
        row["response"] = refusal_for(row["category"], index)
    return [{"id": r["id"], "prompt": r["prompt"], "response": r["response"], "category": r["category"]} for r in rows]


def benign_prompt_rows() -> list[dict[str, Any]]:
    """Benign training requests (risky-sounding first, then general), responses still to be generated."""
    return _prompt_rows(BENIGN_TRAIN_FILE, ("id", "prompt", "category", "kind"))


def all_training_prompts() -> list[str]:
    return [row["prompt"] for row in safety_rows()] + [row["prompt"] for row in benign_prompt_rows()]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_safety_train(path: Path) -> int:
    """Write ``safety_train.jsonl`` (no model needed). Returns the row count."""
    rows = safety_rows()
    write_jsonl(path, rows)
    return len(rows)


def build_benign_train(
    path: Path,
    generate: Callable[[list[str]], list[str]],
    *,
    model_name: str,
    max_new_tokens: int = BENIGN_MAX_NEW_TOKENS,
) -> int:
    """Write ``benign_train.jsonl``: each benign prompt with the BASE model's own greedy answer.

    ``generate`` is the base model's batched greedy generation (``HFBackend.generate``), so the adapter is
    trained to reproduce what the model already says on benign requests: it learns where to refuse without
    being pulled towards another model's style or knowledge.
    """
    rows = benign_prompt_rows()
    responses = generate([row["prompt"] for row in rows])
    for row, response in zip(rows, responses, strict=True):
        row["response"] = response
        row["response_source"] = f"{model_name}, greedy, max_new_tokens={max_new_tokens}"
    write_jsonl(path, rows)
    return len(rows)


def load_training_rows(path: Path) -> list[dict[str, Any]]:
    """Read a training JSONL file; every row needs ``prompt`` and ``response``."""
    if not path.exists():
        raise DataFileError(f"training file {path} does not exist: build it with `compsafe align --build-data`")
    rows = []
    for number, row in jsonl_objects(read_text_file(path, "training file"), str(path)):
        prompt, response = row.get("prompt"), row.get("response")
        if not isinstance(prompt, str) or not prompt.strip() or not isinstance(response, str):
            raise DataFileError(f"{path}:{number} needs 'prompt' and 'response' strings: fix or rebuild the file")
        weight = row.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < float("inf"):
            raise DataFileError(f"{path}:{number}: 'weight' must be a number >= 0 (or left out for 1), not {weight!r}")
        rows.append(row)
    return rows


def shipped_training_file(name: str) -> Path:
    """Path of a shipped training file inside the installed package."""
    return Path(str(importlib.resources.files("compsafe.data").joinpath(name)))
