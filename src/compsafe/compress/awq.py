"""AWQ: activation-aware weight quantization (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization
for LLM Compression and Acceleration", MLSys).

Why: a small fraction of input channels carries much larger activations than the rest, so the weights in
those columns matter most for the output. AWQ protects them without mixed precision: scale column j of W up
by ``s_j`` before group quantization (so its relative rounding error shrinks) and divide the input by ``s_j``
(so the product is unchanged in exact arithmetic). What is searched, per linear layer:

1. Scales ``s = abs_mean(x)^alpha`` (``abs_mean`` = mean |x_j| over the calibration tokens, the
   ``abs_mean`` statistic of ``compress.sequential``), normalised ``s / sqrt(max(s) * min(s))`` and clamped
   at 1e-4 as in the reference implementation (mit-han-lab/llm-awq ``auto_scale.py``). ``alpha`` runs over
   the reference's grid ``i / 20, i = 0..19``; the one minimising the output error
   ``||X W^T - X W'^T||_F`` on the sampled calibration rows wins (``alpha = 0`` is plain RTN, so AWQ never
   does worse than RTN on the rows it was fitted to; ties keep the smaller alpha).
2. Optional weight clipping (the reference's ``auto_clip``): for each output row and group, shrink the
   group's clip range ``[-t, t]`` with ``t = (1 - i/20) * max|w|``, ``i = 0..9``, and keep the ratio with
   the smallest error of that group's partial output ``x_g . w_g``. As in the reference, clipping is skipped
   for query/key projections (their errors are amplified through the softmax, and the reference found no
   gain there). Disable with ``-noclip``.
3. Group quantization of ``W diag(s)`` with RTN's quantizer (``compress.rtn.quantize_dequantize``).
   AWQ's default here is **asymmetric** (integer zero point), as in the reference (``zero_point=True``);
   ``-sym`` selects the symmetric restricted range.

What is stored: ``W' = Q(W diag(s)) diag(s)^-1``, dequantized, in the weight's dtype. The reference instead
folds ``diag(s)^-1`` into the previous operation (the RMSNorm weight, or the previous linear's output rows)
and stores ``Q(W diag(s))``; the product ``x W'^T`` is the same function of ``x``, so evaluation sees the
same model (up to float rounding of the fold). Two deliberate differences from the reference: the search
here is per linear layer (the reference shares one scale across linears with the same input, q/k/v and
gate/up, so it can fold into one norm, and measures the loss at the block output); a per-linear scale is at
least as good on each layer's own loss, but a deployment that cannot fold it would keep one 16-bit vector
per layer (``16 / out_features`` bits per weight, negligible and not counted). Bits are accounted exactly as
RTN: the code, plus 16-bit scales and (asymmetric) b-bit zero points per group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.base import CompressionConfig
from compsafe.compress.rtn import RTNConfig, quantize_dequantize
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register

_RECIPE = re.compile(
    r"int(?P<bits>\d+)-awq(?:-g(?P<group>\d+))?(?:-(?P<sym>sym|asym))?(?P<noclip>-noclip)?(?P<head>-head)?"
)

SCALE_GRID = 20  # alpha = i / 20, i = 0..19 (reference auto_scale n_grid)
CLIP_GRID = 20  # shrink = 1 - i / 20 ...
CLIP_MAX_SHRINK = 0.5  # ... for i < 0.5 * 20 (reference auto_clip max_shrink)
CLIP_MAX_TOKENS = 512  # tokens used for the clip search (reference n_sample_token)
CLIP_ROW_CHUNK = 256  # output rows per clip-search batch, bounds memory to chunk x tokens x groups floats
NO_CLIP_NAMES = ("q_proj", "k_proj", "query", "key", "wqkv", "c_attn")  # reference skips clipping q/k


@dataclass(frozen=True)
class AWQConfig(CompressionConfig):
    """AWQ quantization; ``group_size=None`` means one scale per output channel. Asymmetric by default."""

    method: ClassVar[str] = "awq"

    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = False
    clip: bool = True
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        _ = self.rtn  # validates bits and group size with RTN's messages

    @property
    def rtn(self) -> RTNConfig:
        """The RTN quantizer AWQ applies to the scaled weight (same grid, same accounting)."""
        return RTNConfig(bits=self.bits, group_size=self.group_size, symmetric=self.symmetric)

    @property
    def grid(self) -> str:
        return self.rtn.grid

    @property
    def recipe(self) -> str:
        group = f"-g{self.group_size}" if self.group_size else ""
        sym = "-sym" if self.symmetric else ""
        noclip = "" if self.clip else "-noclip"
        head = "-head" if self.include_lm_head else ""
        return f"int{self.bits}-awq{group}{sym}{noclip}{head}"


def awq_scales(abs_mean: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-input-channel scales ``abs_mean^alpha`` normalised by ``sqrt(max * min)`` (reference formula)."""
    scales = abs_mean.float().pow(alpha).clamp(min=1e-4)
    return scales / (scales.max() * scales.min()).sqrt()


def output_error(sample: torch.Tensor, weight: torch.Tensor, approx: torch.Tensor) -> float:
    """``||X W^T - X W'^T||_F`` over the sampled input rows."""
    return torch.linalg.vector_norm(sample @ (weight - approx).t()).item()


@torch.no_grad()
def clip_search(scaled: torch.Tensor, sample: torch.Tensor, rtn: RTNConfig) -> torch.Tensor:
    """Per (row, group) clip bound ``t`` for ``scaled`` (``[out, in]``), chosen to minimise the error of the
    group's partial output on ``sample`` (already divided by the scales). Returns ``t`` as ``[out, groups]``.
    """
    out_features, in_features = scaled.shape
    group = min(rtn.group_size or in_features, in_features)
    n_groups = -(-in_features // group)
    pad = n_groups * group - in_features
    x = sample[:: max(1, sample.shape[0] // CLIP_MAX_TOKENS)][:CLIP_MAX_TOKENS]
    x = torch.nn.functional.pad(x, (0, pad)).reshape(-1, n_groups, group)  # [t, g, k]
    bounds = []
    for start in range(0, out_features, CLIP_ROW_CHUNK):
        w = scaled[start : start + CLIP_ROW_CHUNK]
        wg = torch.nn.functional.pad(w, (0, pad)).reshape(w.shape[0], n_groups, group)  # [o, g, k]
        reference = torch.einsum("tgk,ogk->otg", x, wg)
        max_abs = wg.abs().amax(dim=-1)  # [o, g]
        best_err = torch.full_like(max_abs, float("inf"))
        best_t = max_abs.clone()
        for i in range(int(CLIP_MAX_SHRINK * CLIP_GRID)):
            t = max_abs * (1 - i / CLIP_GRID)
            clipped = torch.maximum(torch.minimum(w, _expand(t, group, in_features)), -_expand(t, group, in_features))
            deq, _ = quantize_dequantize(clipped, rtn)
            dg = torch.nn.functional.pad(deq, (0, pad)).reshape(w.shape[0], n_groups, group)
            err = (torch.einsum("tgk,ogk->otg", x, dg) - reference).pow(2).mean(dim=1)  # [o, g]
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_t = torch.where(better, t, best_t)
        bounds.append(best_t)
    return torch.cat(bounds)


def _expand(per_group: torch.Tensor, group: int, in_features: int) -> torch.Tensor:
    """``[out, groups]`` -> ``[out, in]`` by repeating each group's value over its columns."""
    return per_group.repeat_interleave(group, dim=1)[:, :in_features]


@torch.no_grad()
def awq_quantize(
    weight: torch.Tensor,
    abs_mean: torch.Tensor,
    sample: torch.Tensor,
    config: AWQConfig,
    *,
    alphas: tuple[float, ...] | None = None,
    clip: bool | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """AWQ for one ``[out, in]`` float32 weight; returns ``(W' dequantized, info)``.

    ``alphas`` overrides the search grid (``(0.0,)`` with ``clip=False`` is exactly RTN); ``info`` holds the
    chosen ``alpha``, the output errors of AWQ and of RTN at the same grid (``alpha = 0``, no clip).
    """
    rtn = config.rtn
    clip = config.clip if clip is None else clip
    grid = alphas if alphas is not None else tuple(i / SCALE_GRID for i in range(SCALE_GRID))
    weight = weight.float()
    sample = sample.float().to(weight.device)
    abs_mean = abs_mean.float().to(weight.device)
    best: tuple[float, float, torch.Tensor] | None = None
    rtn_error = float("nan")
    for alpha in grid:
        scales = awq_scales(abs_mean, alpha)
        deq, _ = quantize_dequantize(weight * scales, rtn)
        approx = deq / scales
        error = output_error(sample, weight, approx)
        if alpha == 0.0:
            rtn_error = error
        if best is None or error < best[1]:
            best = (alpha, error, scales)
    assert best is not None
    alpha, error, scales = best
    approx, _ = quantize_dequantize(weight * scales, rtn)
    if clip:
        scaled = weight * scales
        group = min(rtn.group_size or weight.shape[1], weight.shape[1])
        bounds = _expand(clip_search(scaled, sample / scales, rtn), group, weight.shape[1])
        approx, _ = quantize_dequantize(torch.maximum(torch.minimum(scaled, bounds), -bounds), rtn)
    approx = approx / scales
    if rtn_error != rtn_error:  # alpha = 0 not in the grid: measure RTN for the report anyway
        rtn_error = output_error(sample, weight, quantize_dequantize(weight, rtn)[0])
    info = {"alpha": alpha, "output_error": output_error(sample, weight, approx), "rtn_output_error": rtn_error}
    return approx, info


def _clip_allowed(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1].lower()
    return not any(part in leaf for part in NO_CLIP_NAMES)


class AWQMethod(LinearMethod):
    """Parses ``int<bits>-awq[-g<group>][-sym|-asym][-noclip][-head]``."""

    config_type = AWQConfig
    needs: ClassVar[frozenset[str]] = frozenset({"abs_mean", "sample"})
    grammar: ClassVar[str] = (
        "int<bits>-awq[-g<group>][-sym|-asym][-noclip][-head]   AWQ (needs calibration): activation-aware "
        "per-channel scale search, then group quantization; asymmetric unless -sym; -noclip skips the clip search"
    )
    examples: ClassVar[tuple[str, ...]] = ("int4-awq-g128", "int3-awq-g128", "int4-awq-g64", "int4-awq-g128-sym")

    def parse(self, recipe: str) -> AWQConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        group = match["group"]
        return AWQConfig(
            bits=int(match["bits"]),
            group_size=int(group) if group else None,
            symmetric=match["sym"] == "sym",
            clip=not match["noclip"],
            include_lm_head=bool(match["head"]),
        )

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: AWQConfig) -> dict[str, Any]:
        return {}  # layer name -> what the scale/clip search found

    def compress_layer(self, layer: Layer, config: AWQConfig, state: dict[str, Any]) -> LayerOutcome:
        stats = layer.stats
        assert stats is not None and stats.abs_mean is not None and stats.sample is not None
        clip = config.clip and _clip_allowed(layer.name)
        approx, state[layer.name] = awq_quantize(layer.weight, stats.abs_mean, stats.sample, config, clip=clip)
        out_features, in_features = layer.weight.shape
        rtn = config.rtn
        return LayerOutcome(approx, rtn.bits_per_weight(in_features), rtn.packed_bytes(out_features, in_features))

    def extra(self, config: AWQConfig, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "scheme": "symmetric-restricted" if config.symmetric else "asymmetric-int-zero",
            "scales": "per linear, folded into W' (see compress.awq)",
            "search": state,
        }


register(AWQMethod())

