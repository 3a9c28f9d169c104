"""AWQ: activation-aware weight quantization (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization
for LLM Compression and Acceleration", MLSys).

Why: a small fraction of input channels carries much larger activations than the rest, so the weights in
those columns matter most for the output. AWQ protects them without mixed precision: scale column j of W up
by ``s_j`` before group quantization (so its relative rounding error shrinks) and divide the input by ``s_j``
(so the product is unchanged in exact arithmetic). Per group of linears sharing one input (q/k/v, gate/up,
o, down; see ``compress.awq_fold``):

1. Scales ``s = abs_mean(x)^alpha`` (``abs_mean`` = mean |x_j| over the calibration tokens, the
   ``abs_mean`` statistic of ``compress.sequential``), normalised ``s / sqrt(max(s) * min(s))`` and clamped
   at 1e-4 as in the reference implementation (mit-han-lab/llm-awq ``auto_scale.py``). ``alpha`` runs over
   the reference's grid ``i / 20, i = 0..19``; the one minimising the summed output error
   ``sum_W ||X W^T - X (Q(W diag(s)) diag(s)^-1)^T||_F^2`` of the group's linears on the sampled calibration
   rows wins (``alpha = 0`` is plain RTN, so the search never does worse than RTN on the rows it was fitted
   to; ties keep the smaller alpha). The reference measures the loss at the attention/MLP module output
   instead of at each linear's output; the linear outputs are what the quantizer changes directly.
2. The scales are folded: ``1/s`` into the operation producing the input (the norm, or the previous linear's
   output rows) and ``s`` into the weight columns, checked numerically on the block (``compress.awq_fold``).
3. Optional weight clipping (the reference's ``auto_clip``): for each output row and group, shrink the
   group's clip range ``[-t, t]`` with ``t = (1 - i/20) * max|w|``, ``i = 0..9``, and keep the ratio with
   the smallest error of that group's partial output ``x_g . w_g``. As in the reference, clipping is skipped
   for query/key projections (their errors are amplified through the softmax, and the reference found no
   gain there). Disable with ``-noclip``.
4. Group quantization of the scaled (and clipped) weight with RTN's quantizer
   (``compress.rtn.quantize_dequantize``).

What is stored: ``Q(W diag(s))`` -- every quantized weight sits exactly on its int grid (as RTN's and GPTQ's
do) and can be exported packed; the model computes the same function up to the quantization and the rounding
of the fold. Layers whose input cannot take a folded scale (o_proj under grouped-query attention, blocks of
another layout, the LM head with ``-head``) are quantized unscaled (``alpha = 0`` plus the clip search), as
the reference does for o_proj under GQA; the report's ``extra`` lists them.

Grids: the same as RTN and GPTQ, and the same default -- the standard **symmetric** signed grid (int4 -8..7,
absmax/7.5), so ``int4-rtn-g128``, ``int4-gptq-g128`` and ``int4-awq-g128`` differ only in the method;
``-asym`` selects the asymmetric grid with an integer zero point, the reference's ``zero_point=True``.
Bits are accounted exactly as RTN: the code, plus 16-bit scales and (asymmetric) b-bit zero points per
group; folded scales cost nothing (they live in weights the model already has).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress import awq_fold
from compsafe.compress.base import CompressionConfig, LayerReport
from compsafe.compress.rtn import QuantGrid, RTNConfig, quantize_dequantize, quantize_with_grid
from compsafe.compress.sequential import BlockRunner, CompressBlock, LinearInputs
from compsafe.compress.targets import weight_view
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
    """AWQ quantization; ``group_size=None`` means one scale per output channel. Symmetric by default."""

    method: ClassVar[str] = "awq"

    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = True
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
        sym = "" if self.symmetric else "-asym"
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


@dataclass(frozen=True)
class ScaleChoice:
    """The outcome of the scale search for weights sharing one input."""

    alpha: float
    scales: torch.Tensor  # [in] float32
    output_error: float  # sqrt of the summed squared output errors at ``alpha`` (no clip)
    rtn_output_error: float  # the same at alpha = 0 (plain RTN on the same grid)


@torch.no_grad()
def search_scales(
    weights: list[torch.Tensor],
    abs_mean: torch.Tensor,
    sample: torch.Tensor,
    rtn: RTNConfig,
    alphas: tuple[float, ...] | None = None,
) -> ScaleChoice:
    """The ``alpha`` (and its scales) minimising the summed output error of ``weights`` (float32 ``[out, in]``
    each, one shared input) on ``sample``; ``alphas`` overrides the reference grid."""
    grid = alphas if alphas is not None else tuple(i / SCALE_GRID for i in range(SCALE_GRID))
    sample = sample.float()
    abs_mean = abs_mean.float()

    def error(scales: torch.Tensor) -> float:
        total = sum(output_error(sample, w, quantize_dequantize(w * scales, rtn)[0] / scales) ** 2 for w in weights)
        return float(total) ** 0.5

    best: ScaleChoice | None = None
    rtn_error = error(torch.ones_like(abs_mean))
    for alpha in grid:
        scales = awq_scales(abs_mean, alpha)
        err = rtn_error if alpha == 0.0 else error(scales)
        if best is None or err < best.output_error:
            best = ScaleChoice(alpha, scales, err, rtn_error)
    assert best is not None
    return best


@torch.no_grad()
def quantize_scaled(scaled: torch.Tensor, scaled_sample: torch.Tensor, rtn: RTNConfig, clip: bool) -> torch.Tensor:
    """Clip (when asked) and quantize a weight whose columns already carry the AWQ scales; ``scaled_sample`` is
    its input (the original input divided by the scales). The result is on the int grid."""
    return quantize_scaled_grid(scaled, scaled_sample, rtn, clip)[0]


@torch.no_grad()
def quantize_scaled_grid(
    scaled: torch.Tensor, scaled_sample: torch.Tensor, rtn: RTNConfig, clip: bool
) -> tuple[torch.Tensor, QuantGrid]:
    """``quantize_scaled`` and the int grid its result sits on (what a packed export stores)."""
    if clip:
        group = min(rtn.group_size or scaled.shape[1], scaled.shape[1])
        bounds = _expand(clip_search(scaled, scaled_sample, rtn), group, scaled.shape[1])
        scaled = torch.maximum(torch.minimum(scaled, bounds), -bounds)
    return quantize_with_grid(scaled, rtn)


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
    """AWQ for one ``[out, in]`` float32 weight on its own, returned in the original coordinates
    (``Q(W diag(s)) diag(s)^-1``) with ``info``: the chosen ``alpha``, and the output errors of AWQ and of
    RTN at the same grid. ``alphas`` overrides the search grid (``(0.0,)`` with ``clip=False`` is exactly RTN).
    """
    clip = config.clip if clip is None else clip
    weight, sample = weight.float(), sample.float().to(weight.device)
    choice = search_scales([weight], abs_mean.to(weight.device), sample, config.rtn, alphas)
    approx = quantize_scaled(weight * choice.scales, sample / choice.scales, config.rtn, clip) / choice.scales
    info = {
        "alpha": choice.alpha,
        "output_error": output_error(sample, weight, approx),
        "rtn_output_error": choice.rtn_output_error,
    }
    return approx, info


def _clip_allowed(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1].lower()
    return not any(part in leaf for part in NO_CLIP_NAMES)


@torch.no_grad()
def fold_block(block: nn.Module, members: list[tuple[str, nn.Module, LinearInputs]], run_block: BlockRunner,
               config: AWQConfig, state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Search and fold the scales of every foldable group of ``block`` (see ``compress.awq_fold``), one group
    at a time; returns the scales of each folded target linear, by name. A group whose fold moves the block's
    output by more than ``FOLD_TOLERANCE`` is undone and its layers stay unscaled."""
    stats = {id(module): (name, inputs) for name, module, inputs in members}
    groups = [g for g in awq_fold.scale_groups(block) if any(id(m) in stats for _, m in g.linears)]
    before = run_block(awq_fold.CHECK_SAMPLES) if groups else []
    folded: dict[str, torch.Tensor] = {}
    for group in groups:
        targets = [(*stats[id(m)], m) for _, m in group.linears if id(m) in stats]
        inputs = targets[0][1]
        assert inputs.abs_mean is not None and inputs.sample is not None
        weights = [weight_view(m).float() for _, _, m in targets]
        choice = search_scales(weights, inputs.abs_mean, inputs.sample, config.rtn)
        saved = awq_fold.snapshot(group)
        awq_fold.fold(group, choice.scales)
        change = awq_fold.relative_change(before, run_block(awq_fold.CHECK_SAMPLES))
        state["_fold_checks"].append(change)
        if change > awq_fold.FOLD_TOLERANCE:
            awq_fold.restore(saved)
            reason = f"folding into {group.producer_name} changed the block output by {change:.3g} (relative)"
            for name, _, _ in targets:
                state[name] = {"alpha": 0.0, "unscaled": reason}
            continue
        for name, _, _ in targets:
            folded[name] = choice.scales
            state[name] = {"alpha": choice.alpha, "folded_into": group.producer_name,
                           "output_error": choice.output_error, "rtn_output_error": choice.rtn_output_error}
    return folded


class AWQMethod(LinearMethod):
    """Parses ``int<bits>-awq[-g<group>][-sym|-asym][-noclip][-head]``."""

    config_type = AWQConfig
    needs: ClassVar[frozenset[str]] = frozenset({"abs_mean", "sample"})
    grammar: ClassVar[str] = (
        "int<bits>-awq[-g<group>][-sym|-asym][-noclip][-head]   AWQ (needs calibration): activation-aware "
        "per-channel scales folded into the preceding norm/linear, then group quantization on RTN's grid "
        "(symmetric unless -asym); -noclip skips the clip search"
    )
    examples: ClassVar[tuple[str, ...]] = ("int4-awq-g128", "int3-awq-g128", "int4-awq-g64", "int4-awq-g128-asym")

    def parse(self, recipe: str) -> AWQConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        group = match["group"]
        return AWQConfig(
            bits=int(match["bits"]),
            group_size=int(group) if group else None,
            symmetric=match["sym"] != "asym",
            clip=not match["noclip"],
            include_lm_head=bool(match["head"]),
        )

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: AWQConfig) -> dict[str, Any]:
        # per layer: what the search found; "_scales": folded scales by layer name; "_fold_checks": fold drifts
        return {"_scales": {}, "_fold_checks": []}

    def block_compressor(self, config: AWQConfig, state: dict[str, Any], one: Any) -> CompressBlock:
        """Fold a whole block's scales first (the statistics were taken on the unscaled block), then quantize
        each member through the template's per-layer path."""

        def compress_block(block: nn.Module, members: list[tuple[str, nn.Module, LinearInputs]],
                           run_block: BlockRunner) -> dict[str, LayerReport]:
            state["_scales"].update(fold_block(block, members, run_block, config, state))
            return {name: one(name, module, inputs) for name, module, inputs in members}

        return compress_block

    def compress_layer(self, layer: Layer, config: AWQConfig, state: dict[str, Any]) -> LayerOutcome:
        stats = layer.stats
        assert stats is not None and stats.sample is not None
        scales = state["_scales"].get(layer.name)
        sample = stats.sample.float().to(layer.weight.device)
        clip = config.clip and _clip_allowed(layer.name)
        if scales is None:  # not foldable: unscaled, still on the grid
            scales = torch.ones(layer.weight.shape[1], device=layer.weight.device)
            info = state.setdefault(layer.name, {"alpha": 0.0, "unscaled": "no operation to fold the scales into"})
        else:
            info = state[layer.name]
        approx, grid = quantize_scaled_grid(layer.weight, sample / scales, config.rtn, clip)
        original = layer.weight / scales  # the layer's function in the unscaled coordinates
        info["output_error_clipped"] = output_error(sample, original, approx / scales)
        out_features, in_features = layer.weight.shape
        rtn = config.rtn
        return LayerOutcome(
            approx, rtn.bits_per_weight(in_features), rtn.packed_bytes(out_features, in_features), grid=grid
        )

    def extra(self, config: AWQConfig, state: dict[str, Any]) -> dict[str, Any]:
        search = {name: info for name, info in state.items() if not name.startswith("_")}
        checks = state["_fold_checks"]
        return {
            "scheme": "symmetric-signed" if config.symmetric else "asymmetric-int-zero",
            "grid": config.grid,
            "scales": "folded into the preceding norm / linear (see compress.awq_fold); weights on the int grid",
            "unscaled": sorted(name for name, info in search.items() if "unscaled" in info),
            "fold_check_max_relative_change": max(checks) if checks else None,
            "search": search,
        }


register(AWQMethod())
