"""A seeded supervised fine-tuning loop with PEFT LoRA: the one trainer every training feature shares.

Why this shape:

* **Chat-formatted, loss on the assistant tokens only.** An example is a user message and the reply the model
  should give. It is encoded exactly as ``HFBackend.generate`` will later prompt the model (the chat template
  with the generation prompt), followed by the reply tokens and the end-of-turn token. Only the reply and the
  end-of-turn token are scored: training on the prompt would teach the model to predict users, not to answer.
* **Per-sample weights.** Safety-aware distillation and safety recovery up-weight some samples. The loss of
  one optimizer step is the *weighted mean of per-sample losses*, where a sample's loss is the mean token
  negative log-likelihood over its assistant tokens::

      step_loss = sum_i w_i * l_i / sum_i w_i        l_i = mean_{t in assistant(i)} -log p(x_t | x_<t)

  so a sample's influence does not depend on its length, and weights of all 1 give the plain mean.
* **Gradient accumulation** splits a step into micro-batches; each micro-batch contributes
  ``sum_{i in micro} w_i l_i / sum_{i in step} w_i``, so the accumulated gradient is exactly the gradient of
  ``step_loss`` whatever the micro-batch size.
* **Deterministic.** ``torch.manual_seed(seed)`` before the adapter is created (LoRA's A matrices are random)
  and the data order drawn from ``random.Random(seed)``; the same inputs give the same adapter.
* **LoRA from peft** (``LoraConfig`` / ``get_peft_model``) and torch's ``AdamW``: no home-made adapters, so a
  saved adapter is a standard PEFT folder anyone can load.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from compsafe.errors import ConfigError

IGNORE_INDEX = -100
ProgressCallback = Callable[[int, int, float], None]  # (step, total_steps, step_loss)
SampleLosses = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # a padded batch on the device -> losses [batch]


@dataclass(frozen=True)
class ChatExample:
    """One training example: the user turn, the assistant reply to learn, and its loss weight."""

    prompt: str
    response: str
    weight: float = 1.0
    system: str | None = None
    # plain text (no chat template), every token scored: language-modelling data mixed in as an anchor that keeps
    # an adapter from drifting on ordinary prose (InstructGPT's "PTX" term); ``response`` holds the text
    raw: bool = False


@dataclass(frozen=True)
class EncodedExample:
    """Token ids with labels: ``IGNORE_INDEX`` everywhere except the assistant tokens."""

    input_ids: list[int]
    labels: list[int]
    weight: float

    @property
    def n_assistant_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass(frozen=True)
class LoraSettings:
    """The adapter's shape: rank, scale (alpha / r) and which linear layers get one."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def to_peft(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )


@dataclass(frozen=True)
class LoopSettings:
    """What the optimizer loop reads from a config; ``TrainConfig`` and distillation's ``DistillConfig`` extend it
    (both recorded next to what they trained, so a run can be reproduced)."""

    loop_name: ClassVar[str] = "training"  # in error messages

    epochs: int = 2
    learning_rate: float = 2e-4
    batch_size: int = 8  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_length: int = 256  # tokens per example (prompt + reply); longer replies are cut
    weight_decay: float = 0.0
    warmup_steps: int = 5
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError(f"{self.loop_name} needs epochs, batch_size and grad_accum >= 1")
        if self.max_length < 8:
            raise ConfigError(f"max_length {self.max_length} is too short: use at least 8 tokens")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):  # NaN would compare False to 0
            raise ConfigError(f"learning_rate {self.learning_rate} must be a positive number, e.g. 1e-4")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class TrainConfig(LoopSettings):
    """Everything that decides the trained adapter: the loop settings and the LoRA shape."""

    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class TrainResult:
    """The trained PEFT model and how training went (``losses``: one value per optimizer step)."""

    model: Any
    losses: list[float]
    steps: int
    seconds: float
    n_examples: int


def chat_prompt_ids(tokenizer: Any, prompt: str, system: str | None = None) -> list[int]:
    """The prompt as ``HFBackend.generate`` builds it: chat template + generation prompt, or raw text."""
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def encode_chat_example(tokenizer: Any, example: ChatExample, max_length: int) -> EncodedExample:
    """Prompt ids (label ``IGNORE_INDEX``) + reply ids + end-of-turn id (both labelled), cut at ``max_length``.

    A ``raw`` example is the tokenized text alone, every token labelled (cut at ``max_length``).
    """
    if example.weight < 0 or not math.isfinite(example.weight):
        raise ConfigError(f"training example {example.prompt[:40]!r} has weight {example.weight}: use a weight >= 0")
    if example.raw:
        ids = list(tokenizer(example.response, add_special_tokens=True)["input_ids"])[:max_length]
        if len(ids) < 2:
            raise ConfigError(f"raw training text {example.response[:40]!r} is shorter than two tokens")
        return EncodedExample(ids, list(ids), float(example.weight))
    prompt_ids = chat_prompt_ids(tokenizer, example.prompt, example.system)
    reply_ids = list(tokenizer(example.response, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        reply_ids.append(int(tokenizer.eos_token_id))
    if not reply_ids:
        raise ConfigError(f"training example {example.prompt[:40]!r} has an empty response")
    if len(prompt_ids) >= max_length:
        raise ConfigError(
            f"training prompt {example.prompt[:40]!r} is {len(prompt_ids)} tokens, not shorter than max_length "
            f"{max_length}: shorten it or raise max_length"
        )
    reply_ids = reply_ids[: max_length - len(prompt_ids)]
    return EncodedExample(prompt_ids + reply_ids, [IGNORE_INDEX] * len(prompt_ids) + reply_ids, float(example.weight))


def pad_batch(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, labels (padding is ``IGNORE_INDEX``) and per-sample weights."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
    weights = torch.tensor([e.weight for e in batch], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": weights}


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over each row's labelled (assistant) tokens: shape [batch]."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    token_nll = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shift_labels.shape)
    counts = (shift_labels != IGNORE_INDEX).sum(dim=1)
    return token_nll.sum(dim=1) / counts.clamp(min=1)


def weighted_mean(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i l_i / sum_i w_i``: the step loss of any per-sample loss (LM here, distillation elsewhere)."""
    weights = weights.to(losses.device, losses.dtype)
    total = weights.sum()
    if total <= 0:
        raise ConfigError("the per-sample weights of a training step sum to zero: give some sample a weight > 0")
    return (losses * weights).sum() / total


def weighted_lm_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i l_i / sum_i w_i`` with ``l_i`` the per-sample assistant-token loss (see the module doc)."""
    return weighted_mean(per_sample_loss(logits, labels), weights)


def step_order(n: int, config: LoopSettings) -> list[list[int]]:
    """Example indices grouped per optimizer step, shuffled per epoch by a seeded RNG (last step may be short)."""
    rng = random.Random(config.seed)
    per_step = config.batch_size * config.grad_accum
    steps: list[list[int]] = []
    for _ in range(config.epochs):
        order = list(range(n))
        rng.shuffle(order)
        steps.extend(order[start : start + per_step] for start in range(0, n, per_step))
    return steps


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then linear decay to 10% of the peak at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(1, total_steps - warmup_steps)
    return max(0.1, 1.0 - 0.9 * (step - warmup_steps) / remaining)


def optimize_weighted(
    parameters: Sequence[torch.nn.Parameter],
    encoded: Sequence[EncodedExample],
    config: LoopSettings,
    *,
    pad_id: int,
    device: torch.device,
    sample_losses: SampleLosses,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """AdamW on ``parameters`` over the seeded step order; returns the loss of every optimizer step.

    ``sample_losses`` maps a padded micro-batch (tensors already on ``device``) to per-sample losses; each
    micro-batch adds ``sum_{i in micro} w_i l_i / sum_{i in step} w_i`` to the step's gradient (module doc).
    """
    parameters = list(parameters)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    plan = step_order(len(encoded), config)
    total_steps = len(plan)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, config.warmup_steps)
    )
    losses: list[float] = []
    for step, indices in enumerate(plan):
        step_weight = sum(encoded[i].weight for i in indices)
        if step_weight <= 0:  # nothing to learn from this step (all weights zero): keep the schedule moving
            scheduler.step()
            losses.append(0.0)
            continue
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for start in range(0, len(indices), config.batch_size):
            batch = pad_batch([encoded[i] for i in indices[start : start + config.batch_size]], pad_id)
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            contribution = (sample_losses(batch) * batch["weights"]).sum() / step_weight
            contribution.backward()
            step_loss += float(contribution.detach())
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(step_loss)
        if progress:
            progress(step + 1, total_steps, step_loss)
    return losses


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[ChatExample],
    config: TrainConfig,
    *,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Wrap ``model`` in a fresh LoRA adapter and train it on ``examples``; the base weights stay frozen.

    Returns the PEFT model (``merge_lora`` folds the adapter in; ``save_pretrained`` writes the adapter only)
    and the loss of every optimizer step.
    """
    from peft import get_peft_model

    if not examples:
        raise ConfigError("no training examples: give at least one prompt/response pair")
    encoded = [encode_chat_example(tokenizer, example, config.max_length) for example in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(config.seed)
    peft_model = get_peft_model(model, config.lora.to_peft())
    device = next(peft_model.parameters()).device
    trainable = [p for p in peft_model.parameters() if p.requires_grad]

    def sample_losses(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return per_sample_loss(logits, batch["labels"])

    peft_model.train()
    started = time.perf_counter()
    losses = optimize_weighted(
        trainable, encoded, config, pad_id=pad_id, device=device, sample_losses=sample_losses, progress=progress
    )
    peft_model.eval()
    return TrainResult(peft_model, losses, len(losses), time.perf_counter() - started, len(encoded))


def merge_lora(peft_model: Any) -> Any:
    """Fold the adapter into the base weights (W + alpha/r * B A) and return the plain transformers model."""
    return peft_model.merge_and_unload()


def progress_logger(log: Callable[[str], None] | None, every: int = 10) -> ProgressCallback | None:
    """A progress callback that logs step 1, every ``every``-th step and the last, with loss and elapsed time."""
    if log is None:
        return None
    started = time.perf_counter()

    def progress(step: int, total: int, loss: float) -> None:
        if step == 1 or step % every == 0 or step == total:
            log(f"step {step}/{total}  loss {loss:.4f}  ({time.perf_counter() - started:.0f}s)")

    return progress


def training_record(result: Any) -> dict[str, Any]:
    """How a training run went and on what software (steps, seconds, loss curve, versions, threads): the part of
    every ``*.json`` training record that lets someone reproduce or audit it."""
    import platform

    import peft
    import transformers

    return {
        "steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "losses": [round(loss, 5) for loss in result.losses],
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
    }

