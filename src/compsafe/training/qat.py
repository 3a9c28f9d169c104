"""Quantization-aware recovery: fine-tune *through* the recipe's quantizer, then quantize (seed 003's QAT arm).

Why: ``compsafe recover`` (PTQ + adapter) trains a LoRA next to frozen quantized weights, so what deploys is
"int4 weights + a 16-bit adapter". Quantization-aware training instead lets training see the rounding: every
forward pass uses ``Q(W)``, the recipe's own fake quantizer, and the gradient passes straight through the
rounding (the straight-through estimator, Bengio et al. 2013; as in LLM-QAT, Liu et al. 2023). After training the
learned weights are quantized with the recipe, so the result is a plain quantized model at the recipe's bits,
with no adapter, whose weights are exactly those the last training step ran on.

Two modes:

* ``lora`` (default): ``W = W0 + (alpha / r) B A`` with ``W0`` frozen and ``A``, ``B`` trained (B starts at zero,
  so step 0 is exactly the PTQ model); after training ``B A`` is merged into ``W0`` and the merged weights are
  quantized;
* ``full``: ``W`` itself is trained (memory: AdamW's two moments for every target weight).

The fake quantizer is ``compress.rtn.quantize_dequantize`` with the recipe's ``RTNConfig``: the same group
scales (recomputed from the current weights at every step, as the recipe computes them when it is applied),
grid and rounding. So quantizing the merged weights with the recipe gives bit for bit what the last forward
used (a test checks this), including the rounding to the model's dtype that the write-back applies. Only the
round-to-nearest recipes (``int8``, ``int4-g128``, ``int3-g128``, ``-asym``/``-narrow`` grids) are supported:
GPTQ or AWQ pick their rounding from calibration data at quantization time, which a fixed fake quantizer
cannot reproduce in training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from compsafe.compress.base import CompressionConfig
from compsafe.compress.rtn import RTNConfig, quantize_dequantize
from compsafe.compress.targets import compressible_linears, is_transposed
from compsafe.errors import RecipeError

QAT_MODES = ("lora", "full")


def check_qat_recipe(config: CompressionConfig) -> RTNConfig:
    """The recipe as an ``RTNConfig``, or a one-line error naming what QAT supports."""
    if not isinstance(config, RTNConfig):
        raise RecipeError(
            f"--qat trains through a round-to-nearest quantizer; {config.recipe} ({config.method}) chooses its "
            "rounding from calibration data at quantization time: use an RTN recipe such as int4-g128 or int8"
        )
    return config


def fake_quantize(weight: torch.Tensor, config: RTNConfig, dtype: torch.dtype, transposed: bool) -> torch.Tensor:
    """``Q(weight)`` in ``dtype`` with a straight-through gradient: the value is exactly what applying the recipe
    to ``weight`` stored in ``dtype`` writes back; the gradient with respect to ``weight`` is the identity."""
    stored = weight.to(dtype).float()  # what a merge would store, before the recipe reads it
    matrix = stored.t() if transposed else stored
    quantized, _ = quantize_dequantize(matrix.detach(), config)
    quantized = quantized.t() if transposed else quantized
    # q + (w - w): exactly q in value (w - w.detach() is exactly zero), identity in gradient
    return (quantized + (stored - stored.detach())).to(dtype)


class QuantizedLoRA(nn.Module):
    """Parametrization ``W0 -> Q(W0 + (alpha / r) B A)`` of one linear weight (``A``, ``B`` trainable)."""

    def __init__(self, weight: torch.Tensor, config: RTNConfig, rank: int, alpha: float, transposed: bool) -> None:
        super().__init__()
        rows, cols = weight.shape
        self.config, self.transposed, self.scale = config, transposed, alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, cols, dtype=torch.float32, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # peft's LoRA initialisation
        self.lora_b = nn.Parameter(torch.zeros(rows, rank, dtype=torch.float32, device=weight.device))

    def merged(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.float() + self.scale * (self.lora_b @ self.lora_a)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(self.merged(weight), self.config, weight.dtype, self.transposed)


class QuantizedFull(nn.Module):
    """Parametrization ``W -> Q(W)`` for full QAT (``W`` itself trains)."""

    def __init__(self, config: RTNConfig, transposed: bool) -> None:
        super().__init__()
        self.config, self.transposed = config, transposed

    def merged(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.float()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(weight.float(), self.config, weight.dtype, self.transposed)


@dataclass(frozen=True)
class QATSettings:
    mode: str = "lora"
    rank: int = 8
    alpha: float = 16.0

    def __post_init__(self) -> None:
        if self.mode not in QAT_MODES:
            raise RecipeError(f"--qat-mode {self.mode!r}: use one of {', '.join(QAT_MODES)}")


@contextmanager
def quantization_aware(model: nn.Module, config: RTNConfig, settings: QATSettings) -> Iterator[list[nn.Parameter]]:
    """Inside the body every target linear of the recipe computes with ``Q(W)``; yields the trainable parameters.

    Everything else is frozen. On exit the learned weights (``W0 + B A`` or the trained ``W``) are written into the
    plain weights, unquantized: apply the recipe to them to get the quantized model.
    """
    targets = compressible_linears(model, include_lm_head=config.include_lm_head)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable: list[nn.Parameter] = []
    for _, module in targets:
        transposed = is_transposed(module)
        if settings.mode == "lora":
            hook: nn.Module = QuantizedLoRA(module.weight, config, settings.rank, settings.alpha, transposed)
            trainable += [hook.lora_a, hook.lora_b]
        else:
            hook = QuantizedFull(config, transposed)
            module.weight.requires_grad_(True)
            trainable.append(module.weight)
        parametrize.register_parametrization(module, "weight", hook, unsafe=True)
    try:
        yield trainable
    finally:
        with torch.no_grad():
            for _, module in targets:
                hook = module.parametrizations.weight[0]
                learned = hook.merged(module.parametrizations.weight.original)
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
                module.weight.copy_(learned.to(module.weight.dtype))
                module.weight.requires_grad_(False)
