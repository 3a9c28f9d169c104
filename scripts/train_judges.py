"""Train the offline classifier judges and write them to src/compsafe/data/judges (seeded, ~30 s on CPU).

    python scripts/train_judges.py [--seed 0] [--l2 0.001]

Refusal head: trained on the train split of data/judges/refusal_labelled.jsonl plus the responses of the
safety-adapter training sets the project owns (safety_train.jsonl: refusals; benign_train.jsonl: the base
model's own helpful answers), so it has seen what a small model's compliance looks like. Toxicity head: trained
on the train split of data/judges/toxicity_labelled.jsonl. Both are tested on the held-out split of their
labelled file (id-hash split, never trained on, minus items sharing a sentence with training), and the accuracy is
stored in the head's metadata json. Training texts that share a sentence with the hand-labelled judge test set
(data/judges/real_responses.jsonl) are dropped, so `compsafe judges` measures every judge on unseen text.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import json
from pathlib import Path

import numpy as np

from compsafe.judges.embedding import EMBEDDING_PACKAGE, get_encoder
from compsafe.judges.evaluation import TOXICITY_DATA
from compsafe.judges.heads import HELD_OUT_SHARE, fit_logistic, load_labelled, split
from compsafe.judges.testset import test_set_digest, without_test_sentences

REFUSAL_DATA = ("refusal_labelled.jsonl", "response")


def binary_scores(labels: list[int], predictions: list[bool]) -> tuple[float, float | None, float | None]:
    """Accuracy, precision and recall of the positive class (None when undefined)."""
    pairs = list(zip(labels, predictions, strict=True))
    tp = sum(1 for y, p in pairs if y and p)
    fp = sum(1 for y, p in pairs if not y and p)
    fn = sum(1 for y, p in pairs if y and not p)
    accuracy = sum(1 for y, p in pairs if bool(y) == bool(p)) / len(pairs) if pairs else float("nan")
    return accuracy, tp / (tp + fp) if tp + fp else None, tp / (tp + fn) if tp + fn else None

OUT = Path(__file__).resolve().parents[1] / "src" / "compsafe" / "data" / "judges"


def adapter_training_responses() -> list[tuple[str, str, int]]:
    data = importlib.resources.files("compsafe.data")
    rows = []
    for filename, label in (("safety_train.jsonl", 1), ("benign_train.jsonl", 0)):
        resource = data.joinpath(filename)
        if not resource.is_file():
            continue
        for line in resource.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append((str(row["id"]), str(row["response"]), label))
    return rows


def digest(rows: list[tuple[str, str, int]]) -> str:
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]


def train(name: str, data: tuple[str, str], extra: list[tuple[str, str, int]], seed: int, l2: float) -> dict:
    rows = load_labelled(*data)
    train_rows, test_rows = split(rows)
    train_rows = train_rows + extra
    # keep the hand-labelled judge test set independent: no training text shares a sentence with it
    keep = without_test_sentences([t for _, t, _ in train_rows])
    dropped = len(train_rows) - sum(keep)
    train_rows = [r for r, k in zip(train_rows, keep, strict=True) if k]
    encoder = get_encoder()
    x_train = encoder.encode([t for _, t, _ in train_rows])
    y_train = np.array([y for _, _, y in train_rows], dtype=np.float64)
    head = fit_logistic(x_train, y_train, l2=l2, seed=seed)
    test_p = head.probability(encoder.encode([t for _, t, _ in test_rows]))
    train_p = head.probability(x_train)
    acc, prec, rec = binary_scores([y for _, _, y in test_rows], list(test_p >= 0.5))
    head.meta.update(
        {
            "task": name,
            "embedding": f"{EMBEDDING_PACKAGE} (all-MiniLM-L6-v2, mean pooling, L2-normalised)",
            "labelled_file": data[0],
            "labelled_digest": digest(rows),
            "held_out_share": HELD_OUT_SHARE,
            "n_train": len(train_rows),
            "n_train_extra": len(extra),
            "n_dropped_sharing_test_sentences": dropped,
            "test_set_digest": test_set_digest(),
            "n_held_out": len(test_rows),
            "train_accuracy": float(np.mean((train_p >= 0.5) == (y_train > 0.5))),
            "held_out_accuracy": acc,
            "held_out_precision": prec,
            "held_out_recall": rec,
        }
    )
    head.save(OUT / f"{name}_head")
    return head.meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=1e-3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data, extra in (
        ("refusal", REFUSAL_DATA, adapter_training_responses()),
        ("toxicity", TOXICITY_DATA, []),
    ):
        meta = train(name, data, extra, args.seed, args.l2)
        print(
            f"{name}: train {meta['n_train']} (acc {meta['train_accuracy']:.3f}), "
            f"held-out {meta['n_held_out']} acc {meta['held_out_accuracy']:.3f}"
        )


if __name__ == "__main__":
    main()
