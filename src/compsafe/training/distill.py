"""Safety-aware knowledge distillation: a smaller student learns a teacher's next-token distribution.

Why: distillation is a compression method like quantization or pruning, and it can lose safety the same way —
the student is trained to match the teacher on *some* data, and refusals are a thin slice of it. A distilled
student is saved as a normal model folder, so it is a variant like any other
(``compsafe run --variants STUDENT_DIR``), and a plain and a safety-weighted student can be compared on the
same probes.

**Student.** Built from a copy of the teacher's config with ``num_hidden_layers = n`` (and, optionally, a
narrower MLP), then initialised from the teacher rather than at random: embeddings, the final norm and the
output head are copied, and student layer ``k`` is a copy of teacher layer ``round(k * (L - 1) / (n - 1))``
(evenly spaced, first and last included; ``n = 1`` keeps the first), the "layer dropping" initialisation of
DistilBERT. Per-layer config lists (``layer_types``, ...) are sliced the same way. With ``width_ratio < 1``
each layer keeps the ``round(I * width_ratio)`` MLP channels with the largest product of their weight norms
(``|gate_j| |up_j| |down_:,j|`` for a Llama MLP), in their original order.

**Loss.** Per sample ``i``, over its assistant tokens ``t`` (the positions ``sft.per_sample_loss`` scores;
``z_t`` teacher logits, ``s_t`` student logits, ``y_t`` the reference token)::

    l_i = alpha * T^2 * mean_t KL(softmax(z_t / T) || softmax(s_t / T)) + (1 - alpha) * mean_t CE(s_t, y_t)

and the loss of one optimizer step is ``sum_i w_i l_i / sum_i w_i`` with ``w_i = safety_weight`` for safety
samples (``safety_train.jsonl``) and ``w_i = 1`` otherwise, so ``safety_weight = 1`` is plain distillation.
``T^2`` keeps the soft term's gradient scale independent of ``T`` (Hinton et al., 2015); the hard term keeps
the student on the reference replies. The teacher runs in eval mode without gradients; every student
parameter is trained (AdamW, the seeded step order, warm-up/decay schedule and gradient accumulation of
``sft.py``), so two students that differ only in ``safety_weight`` see the same data in the same order.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from compsafe.errors import ConfigError
from compsafe.training.sft import (
    IGNORE_INDEX,
    ChatExample,
    LoopSettings,
    ProgressCallback,
    encode_chat_example,
    optimize_weighted,
    per_sample_loss,
    progress_logger,
    training_record,
    weighted_mean,
)

Log = Callable[[str], None]
# config lists with one entry per decoder layer: sliced with the layers the student keeps
PER_LAYER_LISTS = ("layer_types", "mlp_layer_types", "no_rope_layers", "layers_block_type")
# config lists of layer *indices*: renumbered to the student's layers
LAYER_INDEX_LISTS = ("mlp_only_layers",)


@dataclass(frozen=True)
class DistillConfig(LoopSettings):
    """Everything that decides the student (recorded in ``distillation.json`` so a run can be reproduced)."""

    loop_name: ClassVar[str] = "distillation"

    learning_rate: float = 1e-4
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft (KL) term; 1 - alpha on the hard (CE) term
    safety_weight: float = 1.0  # w_i of safety rows, set by distill_to_folder; distill() reads ChatExample.weight
    student_layers: int | None = None  # None: half the teacher's layers, rounded up
    width_ratio: float = 1.0  # fraction of the MLP intermediate width the student keeps

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature {self.temperature} must be a positive number, e.g. 2.0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha {self.alpha} must lie in [0, 1] (1 = soft targets only, 0 = hard labels only)")
        if not (self.safety_weight >= 0 and math.isfinite(self.safety_weight)):
            raise ConfigError(f"safety_weight {self.safety_weight} must be >= 0 (1 = plain distillation)")
        if self.student_layers is not None and self.student_layers < 1:
            raise ConfigError(f"student_layers {self.student_layers} must be at least 1")
        if not 0.0 < self.width_ratio <= 1.0:
            raise ConfigError(f"width_ratio {self.width_ratio} must lie in (0, 1] (1 keeps the teacher's MLP width)")


@dataclass
class DistillResult:
    """The trained student and how training went (``losses``: one value per optimizer step)."""

    model: Any
    losses: list[float]
    steps: int
    seconds: float
    n_examples: int
    layer_sources: list[int]  # teacher layer each student layer was initialised from


# ---------------------------------------------------------------------------------------------------- student


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """``model.model.layers`` of a Llama-style causal LM, or a ConfigError naming what is supported."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or not hasattr(model.config, "num_hidden_layers"):
        raise ConfigError(
            f"cannot build a student from {type(model).__name__}: distillation supports Llama-style causal LMs "
            "(model.model.layers, config.num_hidden_layers) such as Llama, Mistral, Qwen2 or SmolLM"
        )
    return layers


def student_layer_sources(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layer copied into each student layer: evenly spaced, first and last included."""
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(
            f"a student needs between 1 and {teacher_layers} layers (the teacher's count), not {student_layers}: "
            "pass --layers in that range"
        )
    if student_layers == 1:
        return [0]
    return [round(k * (teacher_layers - 1) / (student_layers - 1)) for k in range(student_layers)]


def student_config(teacher_config: Any, sources: Sequence[int], intermediate_size: int | None = None) -> Any:
    """A copy of the teacher's config with ``len(sources)`` layers and per-layer lists sliced to match."""
    config = copy.deepcopy(teacher_config)
    n_teacher = teacher_config.num_hidden_layers
    for name in PER_LAYER_LISTS:
        value = getattr(config, name, None)
        if isinstance(value, (list, tuple)) and len(value) == n_teacher:
            setattr(config, name, type(value)(value[i] for i in sources))
    for name in LAYER_INDEX_LISTS:
        value = getattr(config, name, None)
        if isinstance(value, (list, tuple)):
            kept = set(value)
            setattr(config, name, type(value)(k for k, i in enumerate(sources) if i in kept))
    config.num_hidden_layers = len(sources)
    if intermediate_size is not None:
        config.intermediate_size = intermediate_size
    return config


def _teacher_key(student_key: str, sources: Sequence[int]) -> str:
    """``model.layers.k.rest`` -> ``model.layers.<sources[k]>.rest``; other keys map to themselves."""
    prefix = "model.layers."
    if not student_key.startswith(prefix):
        return student_key
    index, rest = student_key[len(prefix) :].split(".", 1)
    return f"{prefix}{sources[int(index)]}.{rest}"


def _narrowed(
    student_state: dict[str, torch.Tensor], teacher_state: dict[str, torch.Tensor], sources: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Teacher tensors cut to the student's narrower MLP: per layer, the channels of largest norm product."""
    by_layer: dict[int, list[tuple[str, int]]] = {}  # student layer -> (key, narrowed dim)
    for key, tensor in student_state.items():
        source = teacher_state[_teacher_key(key, sources)]
        if source.shape == tensor.shape:
            continue
        dims = [d for d in range(tensor.dim()) if tensor.shape[d] != source.shape[d]]
        if not key.startswith("model.layers.") or len(dims) != 1:
            raise ConfigError(f"cannot narrow {key} from {tuple(source.shape)} to {tuple(tensor.shape)}: use width 1")
        by_layer.setdefault(int(key.split(".")[2]), []).append((key, dims[0]))
    cut: dict[str, torch.Tensor] = {}
    for layer_keys in by_layer.values():
        width = student_state[layer_keys[0][0]].shape[layer_keys[0][1]]
        score: torch.Tensor | None = None
        for key, dim in layer_keys:
            source = teacher_state[_teacher_key(key, sources)].float()
            if source.dim() < 2:
                continue  # biases do not rank channels (often all zero)
            norms = source.transpose(0, dim).reshape(source.shape[dim], -1).norm(dim=1)
            score = norms if score is None else score * norms
        if score is None:
            raise ConfigError("cannot rank MLP channels for a narrower student (no weight matrix): use width 1")
        keep = torch.topk(score, width).indices.sort().values
        for key, dim in layer_keys:
            cut[key] = teacher_state[_teacher_key(key, sources)].index_select(dim, keep)
    return cut


def build_student(teacher_model: Any, *, n_layers: int | None = None, width_ratio: float = 1.0) -> Any:
    """A smaller model of the teacher's architecture, initialised from the teacher's weights (module doc).

    ``n_layers`` None keeps half the teacher's layers (rounded up); ``width_ratio`` < 1 narrows the MLP.
    The student has the teacher's dtype, device and generation config, and ties embeddings as the teacher does.
    """
    from transformers import AutoModelForCausalLM

    decoder_layers(teacher_model)
    n_teacher = int(teacher_model.config.num_hidden_layers)
    n_layers = math.ceil(n_teacher / 2) if n_layers is None else n_layers
    sources = student_layer_sources(n_teacher, n_layers)
    intermediate = None
    if width_ratio != 1.0:
        teacher_width = getattr(teacher_model.config, "intermediate_size", None)
        if not isinstance(teacher_width, int) or not 0.0 < width_ratio < 1.0:
            raise ConfigError(
                f"width_ratio {width_ratio} needs a config with an integer intermediate_size and a ratio in (0, 1]"
            )
        intermediate = max(1, round(teacher_width * width_ratio))
    config = student_config(teacher_model.config, sources, intermediate)
    parameter = next(teacher_model.parameters())
    student = AutoModelForCausalLM.from_config(config, dtype=parameter.dtype).to(parameter.device)
    if len(decoder_layers(student)) != n_layers:
        raise ConfigError(f"{type(student).__name__} ignored num_hidden_layers={n_layers}: cannot distil it")
    teacher_state = teacher_model.state_dict()
    student_state = student.state_dict()
    missing = [key for key in student_state if _teacher_key(key, sources) not in teacher_state]
    if missing:
        raise ConfigError(f"the student has weights the teacher lacks ({missing[0]}): cannot initialise it")
    mapped = {key: teacher_state[_teacher_key(key, sources)] for key in student_state}
    mapped.update(_narrowed(student_state, teacher_state, sources))
    student.load_state_dict(mapped, strict=True)
    if getattr(teacher_model, "generation_config", None) is not None:
        student.generation_config = copy.deepcopy(teacher_model.generation_config)
    return student


# ---------------------------------------------------------------------------------------------------- loss


def per_sample_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``mean_t KL(softmax(z_t/T) || softmax(s_t/T))`` over each row's assistant tokens: shape [batch].

    Only the scored positions are softened, so the [tokens, vocab] tensors stay small on long prompts.
    """
    mask = labels[:, 1:] != IGNORE_INDEX  # position t-1 predicts the labelled token t, as in per_sample_loss
    student = student_logits[:, :-1, :][mask].float() / temperature
    teacher = teacher_logits[:, :-1, :][mask].float() / temperature
    token_kl = torch.nn.functional.kl_div(
        torch.log_softmax(student, dim=-1), torch.log_softmax(teacher, dim=-1), log_target=True, reduction="none"
    ).sum(dim=-1)
    rows = mask.nonzero(as_tuple=True)[0]
    sums = torch.zeros(labels.shape[0], dtype=token_kl.dtype, device=token_kl.device).index_add(0, rows, token_kl)
    return sums / mask.sum(dim=1).clamp(min=1)


def per_sample_distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``l_i = alpha T^2 mean_t KL + (1 - alpha) mean_t CE`` per sample (module doc): shape [batch]."""
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ: "
            "the student needs the teacher's vocabulary"
        )
    soft = per_sample_kl(student_logits, teacher_logits, labels, temperature)
    hard = per_sample_loss(student_logits, labels)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


def weighted_distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    weights: torch.Tensor,
) -> torch.Tensor:
    """The step loss ``sum_i w_i l_i / sum_i w_i`` (module doc)."""
    return weighted_mean(per_sample_distill_loss(student_logits, teacher_logits, labels, temperature, alpha), weights)


# ---------------------------------------------------------------------------------------------------- training


def parameter_count(model: Any) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def distill(
    teacher_model: Any,
    tokenizer: Any,
    examples: Sequence[ChatExample],
    config: DistillConfig,
    *,
    student: Any | None = None,
    progress: ProgressCallback | None = None,
) -> DistillResult:
    """Train every parameter of ``student`` (default: ``build_student`` from ``config``) to match the teacher."""
    if not examples:
        raise ConfigError("no distillation examples: give at least one prompt/response pair")
    encoded = [encode_chat_example(tokenizer, example, config.max_length) for example in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n_teacher = int(teacher_model.config.num_hidden_layers)
    torch.manual_seed(config.seed)
    if student is None:
        student = build_student(teacher_model, n_layers=config.student_layers, width_ratio=config.width_ratio)
        n_student = int(student.config.num_hidden_layers)
        sources = student_layer_sources(n_teacher, n_student)
    else:
        sources = []  # a student given by the caller: its initialisation is the caller's
    if student.get_output_embeddings().weight.shape[0] != teacher_model.get_output_embeddings().weight.shape[0]:
        raise ConfigError("the student's vocabulary differs from the teacher's: build it with build_student")
    device = next(teacher_model.parameters()).device
    student.to(device)
    teacher_model.eval()
    for parameter in student.parameters():
        parameter.requires_grad_(True)

    def sample_losses(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        student_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return per_sample_distill_loss(
            student_logits, teacher_logits, batch["labels"], config.temperature, config.alpha
        )

    student.train()
    started = time.perf_counter()
    losses = optimize_weighted(
        list(student.parameters()),
        encoded,
        config,
        pad_id=pad_id,
        device=device,
        sample_losses=sample_losses,
        progress=progress,
    )
    student.eval()
    return DistillResult(student, losses, len(losses), time.perf_counter() - started, len(encoded), sources)


def distillation_examples(data_dir: Path, safety_weight: float) -> tuple[list[ChatExample], dict[str, str], int]:
    """The demo training files as examples (safety rows weighted ``safety_weight``) plus the plain-prose anchor
    passages (the student must also match the teacher on ordinary text, or its perplexity is lost), their
    digests, and the number of safety rows."""
    from compsafe.training import safety_data
    from compsafe.training.align import ANCHOR_FILE, anchor_examples, training_examples

    examples, digests = training_examples(data_dir, safety_weight=safety_weight)
    anchors, digests[ANCHOR_FILE] = anchor_examples()
    examples += anchors
    n_safety = len(safety_data.load_training_rows(data_dir / safety_data.SAFETY_TRAIN_FILE))
    return examples, digests, n_safety


def save_student(result: DistillResult, tokenizer: Any, out_dir: Path, meta: dict[str, Any]) -> None:
    """The student as a normal model folder (safetensors + tokenizer) with ``distillation.json`` next to it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "distillation.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def distill_to_folder(
    teacher: str | None,
    out_dir: Path,
    config: DistillConfig,
    data_dir: Path | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Distil ``teacher`` (path, catalog name, None = the default) on the demo training files into ``out_dir``.

    Returns the record also written as ``distillation.json``; the folder loads with ``load_model`` and can be
    passed to ``compsafe run --variants``.
    """

    from compsafe.models.loading import LoadOptions, load_model
    from compsafe.training.safety_data import shipped_training_file

    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file: pass a folder to write the student into")
    data_dir = data_dir or shipped_training_file("safety_train.jsonl").parent
    examples, digests, n_safety = distillation_examples(data_dir, config.safety_weight)
    handle = load_model(teacher, LoadOptions(device="cpu", dtype="float32"))
    result = distill(handle.model, handle.tokenizer, examples, config, progress=progress_logger(log))
    meta = {
        "teacher": handle.source or "default",
        "distill_config": config.to_dict(),
        "student_layers": int(result.model.config.num_hidden_layers),
        "teacher_layers": int(handle.model.config.num_hidden_layers),
        "layer_sources": result.layer_sources,
        "teacher_parameters": parameter_count(handle.model),
        "student_parameters": parameter_count(result.model),
        "data_files": digests,
        "n_examples": result.n_examples,
        "n_safety_examples": n_safety,
        **training_record(result),
        "dtype": "float32",
    }
    save_student(result, handle.tokenizer, out_dir, meta)
    return meta
