"""Training: one small, seeded fine-tuning loop shared by safety tuning, recovery, distillation and backdoors.

``sft.py`` holds the loop (chat-formatted examples, loss on assistant tokens only, per-sample weights, gradient
accumulation; LoRA via ``train_lora``, any parameters via ``optimize_weighted``); ``safety_data.py`` the
project-authored training sets; ``align.py`` builds the ``compsafe-demo`` safety adapter; ``distill.py`` distils
a teacher into a smaller student with safety samples up-weighted.
"""

from compsafe.training.sft import (
    ChatExample,
    EncodedExample,
    LoraSettings,
    TrainConfig,
    TrainResult,
    encode_chat_example,
    merge_lora,
    train_lora,
    weighted_lm_loss,
)

__all__ = [
    "ChatExample",
    "EncodedExample",
    "LoraSettings",
    "TrainConfig",
    "TrainResult",
    "encode_chat_example",
    "merge_lora",
    "train_lora",
    "weighted_lm_loss",
]
