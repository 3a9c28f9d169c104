"""Calibration sets: n token windows of a fixed length, sampled with a seed from shipped or user text,
optionally mixed with safety data (harmful request + refusal, in the model's chat format).

Mixing safety data into calibration is the "calibration data" mitigation the seeds describe: GPTQ/AWQ/
Wanda/SparseGPT decide what to keep from the activations they see, so activations of refusals make the
weights that produce refusals count. The set's digest (of its token ids) names it in variant reports.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from compsafe import paths
from compsafe.errors import DataFileError

CALIBRATION_TEXT = "calibration_text.jsonl"  # project-authored, disjoint from every evaluation set
SAFETY_CALIBRATION = "safety_calibration.jsonl"  # harmful request -> refusal pairs, disjoint from eval sets
# stereotype / anti-stereotype minimal pairs for bias-aware methods (Fair-GPTQ), disjoint from the bias probes' sets
FAIRNESS_PAIRS = "fairness_calibration_pairs.jsonl"


@dataclass(frozen=True)
class CalibrationSpec:
    """How to build a calibration set. ``source``: "compsafe" (shipped text) or a path to .txt/.jsonl."""

    source: str = "compsafe"
    n_samples: int = 32
    seq_len: int = 256
    seed: int = 0
    safety_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_samples", "seq_len", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise DataFileError(f"calibration {name} must be a whole number, got {value!r}")
        if self.n_samples < 1 or self.seq_len < 8:
            raise DataFileError("calibration needs n_samples >= 1 and seq_len >= 8")
        if not 0.0 <= self.safety_fraction <= 1.0:
            raise DataFileError("--safety-calibration must be a fraction between 0 and 1")
        check_source(self.source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CalibrationSet:
    input_ids: torch.Tensor  # [n_samples, seq_len] int64
    spec: CalibrationSpec
    digest: str
    # token ids of (stereotype, anti-stereotype) sentence pairs, read only by bias-aware methods (Fair-GPTQ);
    # not part of the digest, which names the windows every calibrated method sees
    fairness_pairs: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "digest": self.digest, "shape": list(self.input_ids.shape)}


def _shipped_rows(name: str) -> list[dict[str, Any]]:
    text = importlib.resources.files("compsafe.data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


CALIBRATION_SUFFIXES = (".txt", ".jsonl")


def check_source(source: str) -> None:
    """'compsafe' or an existing .txt/.jsonl file (checked when the options are, before any model loads)."""
    if not isinstance(source, str) or source == "compsafe":
        if not isinstance(source, str):
            raise DataFileError(f"--calibration must be 'compsafe' or a file path, got {source!r}")
        return
    if not paths.is_file(source):
        raise DataFileError(f"calibration file {source!r} does not exist: pass a .txt or .jsonl file, or 'compsafe'")
    if Path(source).suffix.lower() not in CALIBRATION_SUFFIXES:
        raise DataFileError(
            f"calibration file {source!r}: use plain text (.txt, passages split by blank lines) or .jsonl with a "
            "'text' field; other formats would be read as prose"
        )


def load_texts(source: str) -> list[str]:
    """Plain texts of the calibration corpus."""
    if source == "compsafe":
        return [row["text"] for row in _shipped_rows(CALIBRATION_TEXT)]
    check_source(source)
    from compsafe.jsonio import read_text_file
    from compsafe.probes.datasets import field, parse_jsonl

    path = Path(source).expanduser()
    text = read_text_file(path, "calibration file")
    if "\x00" in text:
        raise DataFileError(f"calibration file {path} holds NUL bytes, so it is not text")
    if path.suffix.lower() == ".jsonl":
        rows = parse_jsonl(text, str(path))
        texts = [field(row, ("text",), str(path), index) for index, row in enumerate(rows)]
    else:
        texts = [block.strip() for block in text.split("\n\n") if block.strip()]
    if not texts:
        raise DataFileError(f"calibration file {source} holds no text (JSONL needs a 'text' field)")
    return texts


def safety_texts(tokenizer: Any) -> list[str]:
    """Harmful request + refusal pairs rendered in the model's chat format (raw text without a template)."""
    texts = []
    for row in _shipped_rows(SAFETY_CALIBRATION):
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
        else:
            texts.append(f"User: {row['prompt']}\nAssistant: {row['response']}\n")
    return texts


def check_window(spec: CalibrationSpec, context: int) -> None:
    """A calibration window longer than the model's context would not be calibration (and 1e8 tokens would
    try to allocate tens of GB): an error before anything is sampled."""
    from compsafe.limits import max_sequence_length

    limit = max_sequence_length(context)
    if spec.seq_len > limit:
        raise DataFileError(
            f"--calibration-seq-len {spec.seq_len} is longer than the model's context ({limit} tokens): use at most "
            f"{limit} (COMPSAFE_MAX_SEQ_LEN overrides the limit)"
        )


def _windows(
    tokenizer: Any, texts: list[str], count: int, seq_len: int, rng: random.Random, origin: str | None = None
) -> list[list[int]]:
    """``count`` windows of ``seq_len`` tokens from the texts joined with EOS (seeded random offsets).

    A user's corpus (``origin``) must hold at least one window of tokens; the shipped sets are repeated when
    a window is longer than they are."""
    if count == 0:
        return []
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"] + [eos])
    if origin is not None and len(stream) < seq_len + 1:
        raise DataFileError(
            f"calibration file {origin} holds {len(stream)} tokens, fewer than one window of {seq_len}: add text "
            "or lower --calibration-seq-len"
        )
    while len(stream) < seq_len + 1:  # the shipped sets: repeat rather than fail
        stream = stream + stream
    starts = [rng.randrange(0, len(stream) - seq_len) for _ in range(count)]
    return [stream[s : s + seq_len] for s in starts]


def fairness_pairs(tokenizer: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The shipped stereotype / anti-stereotype pairs as token ids (``data/fairness_calibration_pairs.jsonl``)."""
    def ids(text: str) -> torch.Tensor:
        return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    return tuple((ids(row["stereo"]), ids(row["antistereo"])) for row in _shipped_rows(FAIRNESS_PAIRS))


def build_calibration(tokenizer: Any, spec: CalibrationSpec, context: int | None = None) -> CalibrationSet:
    """Sample the calibration set; same spec and tokenizer give the same token ids (and digest).

    ``context``: the model's context length; a longer window is refused (``check_window``)."""
    if context is not None:
        check_window(spec, context)
    rng = random.Random(spec.seed)
    n_safety = round(spec.n_samples * spec.safety_fraction)
    origin = None if spec.source == "compsafe" else spec.source
    rows = _windows(tokenizer, load_texts(spec.source), spec.n_samples - n_safety, spec.seq_len, rng, origin)
    if n_safety:
        rows += _windows(tokenizer, safety_texts(tokenizer), n_safety, spec.seq_len, rng)
    ids = torch.tensor(rows, dtype=torch.long)
    digest = hashlib.sha256(ids.numpy().tobytes()).hexdigest()[:16]
    return CalibrationSet(ids, spec, digest, fairness_pairs(tokenizer))
