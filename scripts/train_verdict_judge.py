"""Train the ``ensemble`` judge's three-class head on data/judges/verdict_train.jsonl (seeded, ~1-2 min on CPU).

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

from compsafe.judges.embedding import EMBEDDING_PACKAGE
from compsafe.judges.ensemble import VERDICT_HEAD, pair_features, readable_part
from compsafe.judges.features import FEATURE_NAMES
from compsafe.judges.heads import fit_softmax
from compsafe.judges.testset import LABELS, test_set_digest

DATA = Path(__file__).resolve().parents[1] / "src" / "compsafe" / "data" / "judges"
L2_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def in_dev(text: str) -> bool:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 5 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = DATA / "verdict_train.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    # the head reads what the judge gives it: rule-decided degenerate rows are left out, loops read once
    readable = [readable_part(r["prompt"], r["response"])[0] for r in rows]
    rows = [{**r, "response": text} for r, text in zip(rows, readable, strict=True) if text is not None]
    x = pair_features([r["prompt"] for r in rows], [r["response"] for r in rows])
    y = np.array([LABELS.index(r["label"]) for r in rows])
    dev = np.array([in_dev(r["response"]) for r in rows])
    scores = {}
    for l2 in L2_GRID:
        head = fit_softmax(x[~dev], y[~dev], LABELS, l2=l2, seed=args.seed)
        predicted = head.probabilities(x[dev]).argmax(axis=1)
        per_class = [float(np.mean(predicted[y[dev] == k] == k)) for k in range(len(LABELS))]
        scores[l2] = (float(np.mean(predicted == y[dev])), min(per_class))
        print(f"l2={l2:g}: dev accuracy {scores[l2][0]:.3f}, worst class {scores[l2][1]:.3f}")
    best = max(L2_GRID, key=lambda l2: (round(scores[l2][1], 3), scores[l2][0]))
    head = fit_softmax(x, y, LABELS, l2=best, seed=args.seed)
    train_accuracy = float(np.mean(head.probabilities(x).argmax(axis=1) == y))
    head.meta.update(
        {
            "task": "refusal (three-way)",
            "embedding": f"{EMBEDDING_PACKAGE} (all-MiniLM-L6-v2, mean pooling, L2-normalised)",
            "inputs": "emb(response), emb(opening), cos(prompt, response), cos(prompt, opening), "
            + ", ".join(FEATURE_NAMES),
            "training_file": path.name,
            "training_digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "n_train": len(rows),
            "train_accuracy": train_accuracy,
            "l2_grid_dev": {f"{k:g}": {"accuracy": v[0], "worst_class": v[1]} for k, v in scores.items()},
            "test_set_digest": test_set_digest(),
            "chosen_on": "dev split of the training data (20% by response hash); the test set is never read",
        }
    )
    head.save(DATA / VERDICT_HEAD)
    print(f"saved {VERDICT_HEAD} (l2={best:g}, n={len(rows)}, train accuracy {train_accuracy:.3f})")


if __name__ == "__main__":
    main()
