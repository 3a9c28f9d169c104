"""FP16 / BF16 variants (``fp16``, ``bf16``): the first step of the precision ladder FP32 -> FP16 -> INT8 -> INT4.

Why a recipe and not just ``--dtype float16``: a ``--dtype`` run changes the base, so nothing is compared with
the FP32 model. As a recipe, ``compsafe run --dtype float32 --variants fp16,int8,int4-g128`` measures every
step of the ladder against one FP32 base in one run, with the same paired statistics as any other variant.

What is measured: every floating-point weight of the model (linear layers, embeddings, norms, the head) is
rounded to the 16-bit dtype and written back in the base's float32, so the variant *is* the 16-bit weights.
Activations stay float32 in the run: ``compress.applied`` restores the base in place, which needs the base's
dtype, and fp16 matmuls on a CPU are slow. This isolates the cost of storing the weights in 16 bits; a GPU
deployment that also computes in 16 bits adds activation rounding on top (load the exported folder with
``--dtype float16`` / ``bfloat16`` to measure that: both run on CPU torch, fp16 more slowly).

Accounting: 16 bits per weight for every rounded tensor (``packed_size_bytes`` counts all of them at 2 bytes).
The export writes the folder in the 16-bit dtype (``CompressionReport.stored_form``), which reloads to
exactly these values. The base must be float32: rounding bf16 weights to fp16 and back measures nothing
meaningful, so any other base dtype is a one-line ``RecipeError``. ``+keep`` is refused: a 16-bit folder has
no place to keep a module at 32 bits (measure mixed precision with ``int8+keep=...`` instead).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import packed_size_bytes, storage_key
from compsafe.compress.base import CompressionConfig, CompressionReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.targets import is_excluded, is_selected
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register
from compsafe.errors import RecipeError

DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class CastConfig(CompressionConfig):
    """Round every floating weight to ``dtype`` (``fp16`` or ``bf16``)."""

    method: ClassVar[str] = "cast"

    dtype: str = "fp16"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise RecipeError(f"cast dtype {self.dtype!r}: use fp16 or bf16")

    @property
    def recipe(self) -> str:
        return self.dtype

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def rounded(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor``'s values stored in ``dtype`` and read back in its own dtype (round to nearest even)."""
    return tensor.to(dtype).to(tensor.dtype)


def cast_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` stored in ``dtype`` (what the export saves); the measured model is left as it is."""
    return copy.deepcopy(model).to(dtype)


def check_float32(model: nn.Module, recipe: str) -> None:
    """The base must be float32 (``RecipeError`` otherwise): the ladder's steps are measured from FP32."""
    found = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if found - {torch.float32}:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in found))
        raise RecipeError(f"{recipe} rounds float32 weights, but the base is {names}: run with --dtype float32")


class CastMethod(LinearMethod):
    """Parses ``fp16`` / ``bf16``: linear layers through the shared template, every other weight in ``apply``."""

    config_type = CastConfig
    grammar: ClassVar[str] = (
        "fp16 | bf16   store every floating weight in 16 bits (measured against a float32 base: --dtype float32)"
    )
    examples: ClassVar[tuple[str, ...]] = ("fp16", "bf16")
    supports_keep: ClassVar[bool] = False

    def parse(self, recipe: str) -> CastConfig | None:
        text = recipe.strip().lower()
        aliases = {"fp16": "fp16", "float16": "fp16", "bf16": "bf16", "bfloat16": "bf16"}
        return CastConfig(dtype=aliases[text]) if text in aliases else None

    def check(self, model: nn.Module, config: CastConfig) -> None:
        """Called before the base is probed (``registry.check_applicable``) and again when applied."""
        check_float32(model, config.recipe)

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: CastConfig) -> None:
        check_float32(model, config.recipe)

    def compress_layer(self, layer: Layer, config: CastConfig, state: None) -> LayerOutcome:
        bits = torch.finfo(config.torch_dtype).bits
        return LayerOutcome(rounded(layer.weight, config.torch_dtype), float(bits), layer.weight.numel() * bits // 8)

    @torch.no_grad()
    def apply(
        self, model: nn.Module, config: CompressionConfig, calibration: CalibrationSet | None = None
    ) -> CompressionReport:
        """The template's pass over the linear layers, then every other selected floating weight (embeddings,
        norms, an untied head), so the variant holds no float32 value at all."""
        assert isinstance(config, CastConfig)
        report = super().apply(model, config, calibration)
        linears = {layer.name for layer in report.layers}
        bits = torch.finfo(config.torch_dtype).bits
        packed = {storage_key(m.weight): m.weight.numel() * bits // 8 for n, m in model.named_modules() if n in linears}
        others, diff_sq, norm_sq = 0, 0.0, 0.0
        for name, param in model.named_parameters():  # tied tensors appear once
            module = name.rpartition(".")[0]
            if module in linears or not param.is_floating_point() or is_excluded(module) or not is_selected(module):
                continue
            new = rounded(param.data, config.torch_dtype)
            diff_sq += float((param.data.float() - new.float()).square().sum())
            norm_sq += float(param.data.float().square().sum())
            param.data.copy_(new)
            packed[storage_key(param)] = param.numel() * bits // 8
            others += param.numel()
        report.packed_size_bytes = packed_size_bytes(model, packed)
        report.extra.update(
            other_parameters_rounded=others,
            other_parameters_relative_error=(diff_sq / norm_sq) ** 0.5 if norm_sq else 0.0,
            activations="float32 (the weights hold 16-bit values; see compress.precision)",
        )
        report.stored_form = lambda m: cast_copy(m, config.torch_dtype)
        return report

    def extra(self, config: CastConfig, state: None) -> dict[str, str]:
        return {"dtype": config.dtype}


register(CastMethod())
