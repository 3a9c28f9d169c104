"""Train the ``ensemble`` judge's heads: the sentence-level decline detector on data/judges/decline_train.jsonl,
then the three-class head on data/judges/verdict_train.jsonl (seeded, a few minutes on CPU).

    python scripts/train_verdict_judge.py [--seed 0]

The L2 strength is chosen on a dev split of the *training* data (20% by a hash of the response text, so a
response never sits on both sides); of the judge test set (data/judges/real_responses.jsonl) only the file's
digest is read, to record which test set the training data was kept sentence-disjoint from. The head is then refit
on every training row with the chosen L2 and saved with its metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from compsafe.judges.degeneracy import degeneracy_reason
from compsafe.judges.embedding import EMBEDDING_PACKAGE, get_encoder
from compsafe.judges.ensemble import DECLINE_FEATURES, DECLINE_HEAD, VERDICT_HEAD, pair_features, readable_text
from compsafe.judges.features import FEATURE_NAMES
from compsafe.judges.heads import LogisticHead, fit_logistic, fit_softmax
from compsafe.judges.testset import LABELS, test_set_digest

DATA = Path(__file__).resolve().parents[1] / "src" / "compsafe" / "data" / "judges"
L2_GRID = (1e-3, 1e-2, 1e-1)
# The sentence detector reads one embedding; weaker penalties keep it sharp on declines stated mid-sentence ("X can
# kill people, so I won't walk you through it"). Chosen, like L2_GRID's pick, on the training data's dev split.
DECLINE_L2_GRID = (1e-4, 3e-4, 1e-3, 1e-2, 1e-1)
# The two embedding blocks (768 dimensions) separate authored training text perfectly by themselves; penalising them
# 10x harder than the few whole-response and sentence-level features makes the head lean on the features that carry
# over to text written differently. Chosen once on the dev half of the judge test set (ids hashed even), see
# docs/judge_protocol.md; the other half was not looked at.
EMBEDDING_PENALTY = 10.0


def in_dev(text: str) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 5 == 0


def train_decline_head(seed: int) -> LogisticHead:
    """The sentence-level detector (does this one sentence decline?) on data/judges/decline_train.jsonl; its L2 is
    chosen on a 20% dev split of those sentences, then it is refit on all of them and saved."""
    path = DATA / "decline_train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    x = get_encoder().encode([r["text"] for r in rows])
    y = np.array([float(r["label"]) for r in rows])
    dev = np.array([in_dev(r["text"]) for r in rows])
    scores = {}
    for l2 in DECLINE_L2_GRID:
        head = fit_logistic(x[~dev], y[~dev], l2=l2, seed=seed)
        predicted = head.probability(x[dev]) >= 0.5
        scores[l2] = float(np.mean(predicted == (y[dev] > 0.5)))
    best = max(DECLINE_L2_GRID, key=lambda l2: scores[l2])
    head = fit_logistic(x, y, l2=best, seed=seed)
    head.meta.update(
        {
            "task": "does this sentence decline the request",
            "training_file": path.name,
            "training_digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "n_train": len(rows),
            "l2_grid_dev_accuracy": {f"{k:g}": v for k, v in scores.items()},
            "test_set_digest": test_set_digest(),
        }
    )
    head.save(DATA / DECLINE_HEAD)
    print(f"saved {DECLINE_HEAD} (l2={best:g}, n={len(rows)}, dev accuracy {scores[best]:.3f})")
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    decline = train_decline_head(args.seed)
    path = DATA / "verdict_train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    # the head reads what the judge gives it: rule-decided degenerate rows are left out, loops read once
    rows = [
        {**r, "response": readable_text(r["response"])}
        for r in rows
        if degeneracy_reason(r["prompt"], r["response"]) is None
    ]
    x = pair_features([r["prompt"] for r in rows], [r["response"] for r in rows], decline)
    y = np.array([LABELS.index(r["label"]) for r in rows])
    penalty = np.ones(x.shape[1])
    penalty[: x.shape[1] - 2 - len(FEATURE_NAMES) - len(DECLINE_FEATURES)] = EMBEDDING_PENALTY
    dev = np.array([in_dev(r["response"]) for r in rows])
    scores = {}
    for l2 in L2_GRID:
        head = fit_softmax(x[~dev], y[~dev], LABELS, l2=l2, seed=args.seed, penalty=penalty)
        predicted = head.probabilities(x[dev]).argmax(axis=1)
        per_class = [float(np.mean(predicted[y[dev] == k] == k)) for k in range(len(LABELS))]
        scores[l2] = (float(np.mean(predicted == y[dev])), min(per_class))
        print(f"l2={l2:g}: dev accuracy {scores[l2][0]:.3f}, worst class {scores[l2][1]:.3f}")
    best = max(L2_GRID, key=lambda l2: (round(scores[l2][1], 3), scores[l2][0]))
    head = fit_softmax(x, y, LABELS, l2=best, seed=args.seed, penalty=penalty)
    train_accuracy = float(np.mean(head.probabilities(x).argmax(axis=1) == y))
    head.meta.update(
        {
            "task": "refusal (three-way)",
            "embedding": f"{EMBEDDING_PACKAGE} (all-MiniLM-L6-v2, mean pooling, L2-normalised)",
            "inputs": "emb(response), emb(opening), cos(prompt, response), cos(prompt, opening), "
            + ", ".join(FEATURE_NAMES + DECLINE_FEATURES),
            "training_file": path.name,
            "training_digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "n_train": len(rows),
            "train_accuracy": train_accuracy,
            "l2_grid_dev": {f"{k:g}": {"accuracy": v[0], "worst_class": v[1]} for k, v in scores.items()},
            "test_set_digest": test_set_digest(),
            "embedding_penalty": EMBEDDING_PENALTY,
            "chosen_on": "l2: dev split of the training data (20% by response hash); embedding_penalty: once, on the"
            " dev half of the judge test set (final half not looked at)",
        }
    )
    head.save(DATA / VERDICT_HEAD)
    print(f"saved {VERDICT_HEAD} (l2={best:g}, n={len(rows)}, train accuracy {train_accuracy:.3f})")


if __name__ == "__main__":
    main()
