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
3. Group quantization of ``W diag(s)`` with RTN's quantizer (``compress.rtn.quantize_dequantize``) on the
   same grids as RTN and GPTQ: the standard signed grid by default (``-sym``), ``-asym`` (integer zero point,
   the reference's ``zero_point=True``) or ``-narrow``. Before issue 13 AWQ alone defaulted to asymmetric.

What is stored, as in the reference: ``Q(W diag(s))`` -- on the int grid, packable -- with ``diag(s)^-1``
folded into the operation before (``compress.awq_fold``: the RMSNorm weight for q/k/v and gate/up, v_proj's
output rows for o_proj, up_proj's rows for down_proj). Layers that share an input share one ``s`` (searched
on the sum of their output errors), as the reference does so that the fold is possible. A layer with no
foldable predecessor is quantized without scales (alpha = 0, clipping still applies). The reference measures
the search loss at the block output; here it is the layers' own outputs. Bits are accounted exactly as RTN.
Before issue 13 compsafe searched per layer and divided ``s`` back into the stored weight, which left the
weights off the grid (the x1.18 perplexity it reported was not that of a deployable int4 AWQ model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import (
    dense_size_bytes,
    packed_size_bytes,
    relative_error,
    storage_key,
    zero_fraction,
)
from compsafe.compress.awq_fold import ScaleGroup, fold, scale_groups, tie_statistic, untie
from compsafe.compress.base import CompressionConfig, CompressionReport, LayerReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.registry import METHODS
from compsafe.compress.rtn import GRID_SUFFIX, SCHEMES, RTNConfig, quantize_dequantize
from compsafe.compress.sequential import LinearInputs, compress_sequentially
from compsafe.compress.targets import weight_view

_RECIPE = re.compile(
    r"int(?P<bits>\d+)-awq(?:-g(?P<group>\d+))?(?:-(?P<sym>sym|asym|narrow))?(?P<noclip>-noclip)?(?P<head>-head)?"
)

SCALE_GRID = 20  # alpha = i / 20, i = 0..19 (reference auto_scale n_grid)
CLIP_GRID = 20  # shrink = 1 - i / 20 ...
CLIP_MAX_SHRINK = 0.5  # ... for i < 0.5 * 20 (reference auto_clip max_shrink)
CLIP_MAX_TOKENS = 512  # tokens used for the clip search (reference n_sample_token)
CLIP_ROW_CHUNK = 256  # output rows per clip-search batch, bounds memory to chunk x tokens x groups floats
NO_CLIP_NAMES = ("q_proj", "k_proj", "query", "key", "wqkv", "c_attn")  # reference skips clipping q/k


@dataclass(frozen=True)
class AWQConfig(CompressionConfig):
    """AWQ quantization; ``group_size=None`` means one scale per output channel. Symmetric by default, as RTN."""

    method: ClassVar[str] = "awq"

    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = True
    clip: bool = True
    include_lm_head: bool = False
    narrow: bool = False

    def __post_init__(self) -> None:
        _ = self.rtn  # validates bits and group size with RTN's messages

    @property
    def rtn(self) -> RTNConfig:
        """The RTN quantizer AWQ applies to the scaled weight (same grid, same accounting)."""
        return RTNConfig(bits=self.bits, group_size=self.group_size, symmetric=self.symmetric, narrow=self.narrow)

    @property
    def grid(self) -> str:
        return self.rtn.grid

    @property
    def recipe(self) -> str:
        group = f"-g{self.group_size}" if self.group_size else ""
        sym = GRID_SUFFIX[self.rtn.grid_name]
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


def search_shared_scales(
    weights: list[torch.Tensor], abs_mean: torch.Tensor, sample: torch.Tensor, config: AWQConfig, group: ScaleGroup
) -> tuple[float, torch.Tensor]:
    """The alpha (and its scales, tied per ``group.heads``) minimising the summed squared output error of layers
    that read the same input; alpha = 0 (RTN) is in the grid, so the search never does worse than RTN."""
    statistic = tie_statistic(abs_mean.float().to(sample.device), group.heads)
    best: tuple[float, float, torch.Tensor] | None = None
    for alpha in (i / SCALE_GRID for i in range(SCALE_GRID)):
        tied = awq_scales(statistic, alpha)
        scales = untie(tied, group.heads)
        error = sum(
            output_error(sample, w, quantize_dequantize(w * scales, config.rtn)[0] / scales) ** 2 for w in weights
        )
        if best is None or error < best[1]:
            best = (alpha, error, tied)
    assert best is not None
    return best[0], best[2]


def quantize_clipped(weight: torch.Tensor, sample: torch.Tensor, config: AWQConfig, clip: bool) -> torch.Tensor:
    """RTN of ``weight`` after the per-(row, group) clip search on ``sample`` (the input it will really see)."""
    if not clip:
        return quantize_dequantize(weight, config.rtn)[0]
    group = min(config.rtn.group_size or weight.shape[1], weight.shape[1])
    bounds = _expand(clip_search(weight, sample, config.rtn), group, weight.shape[1])
    return quantize_dequantize(torch.maximum(torch.minimum(weight, bounds), -bounds), config.rtn)[0]


@torch.no_grad()
def quantize_block(
    block: nn.Module, members: list[tuple[str, nn.Module, LinearInputs]], config: AWQConfig
) -> tuple[list[ScaleGroup], dict[str, tuple[torch.Tensor, torch.Tensor, dict[str, float]]]]:
    """AWQ on one block: search one scale per shared input, fold every scale, then clip and quantize each layer.

    Returns the groups and, per layer, ``(original weight, effective weight, info)``: the effective weight is the
    stored (on-grid) one with its folds undone, the function of the layer's original input; float32, [out, in].
    """
    stats = {name: s for name, _, s in members}
    originals = {name: weight_view(m).to(torch.float32, copy=True) for name, m, _ in members}
    groups = scale_groups(block, [(name, m) for name, m, _ in members])
    alphas: dict[str, float] = {}
    for group in groups:
        first = stats[group.names[0]]
        assert first.abs_mean is not None and first.sample is not None
        alpha = 0.0
        if group.foldable:
            sample = first.sample.float().to(originals[group.names[0]].device)
            alpha, group.scales = search_shared_scales(
                [originals[n] for n in group.names], first.abs_mean, sample, config, group
            )
            fold(group)
        alphas.update({name: alpha for name in group.names})
    columns = {n: untie(g.scales, g.heads) for g in groups if g.scales is not None for n in g.names}
    rows = {g.previous_name: g.scales for g in groups if g.scales is not None and g.kind == "linear"}
    results = {}
    for name, module, linear_stats in members:
        assert linear_stats.sample is not None
        view = weight_view(module)
        sample = linear_stats.sample.float().to(view.device)
        column = columns.get(name)
        seen = sample / column if column is not None else sample
        stored = quantize_clipped(view.to(torch.float32), seen, config, config.clip and _clip_allowed(name))
        view.copy_(stored.to(view.dtype))
        effective = stored / column[None, :] if column is not None else stored.clone()
        if name in rows:
            effective = effective * rows[name][:, None]
        original = originals[name]
        info = {
            "alpha": alphas[name],
            "output_error": output_error(sample, original, effective),
            "rtn_output_error": output_error(sample, original, quantize_dequantize(original, config.rtn)[0]),
        }
        results[name] = (original, effective, info)
    return groups, results


class AWQMethod:
    """Registered as ``awq``: parses ``int<bits>-awq[-g<group>][-sym|-asym|-narrow][-noclip][-head]``."""

    name: ClassVar[str] = "awq"
    needs_calibration: ClassVar[bool] = True
    grammar: ClassVar[str] = (
        "int<bits>-awq[-g<group>][-sym|-asym|-narrow][-noclip][-head]   AWQ (needs calibration): activation-aware "
        "per-channel scales folded into the previous norm/linear, then group quantization on RTN's grids "
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
            narrow=match["sym"] == "narrow",
            clip=not match["noclip"],
            include_lm_head=bool(match["head"]),
        )

    @torch.no_grad()
    def apply(self, model: nn.Module, config: CompressionConfig, calibration: CalibrationSet) -> CompressionReport:
        assert isinstance(config, AWQConfig), f"awq cannot apply {type(config).__name__}"
        rtn = config.rtn
        dense = dense_size_bytes(model)
        packed: dict[tuple[int, int, torch.dtype], int] = {}
        searched: dict[str, dict[str, Any]] = {}
        folds: dict[str, str] = {}

        def report(name: str, module: nn.Module, original: torch.Tensor, effective: torch.Tensor) -> LayerReport:
            view = weight_view(module)
            out_features, in_features = view.shape
            packed[storage_key(module.weight)] = rtn.packed_bytes(out_features, in_features)
            return LayerReport(
                name=name,
                numel=view.numel(),
                bits_per_weight=rtn.bits_per_weight(in_features),
                sparsity=zero_fraction(view),
                relative_error=relative_error(original, effective),
            )

        def compress_block(block: nn.Module, members: list[tuple[str, nn.Module, LinearInputs]]) -> dict:
            groups, results = quantize_block(block, members, config)
            folds.update({", ".join(g.names): g.previous_name for g in groups if g.foldable})
            reports = {}
            for name, module, _ in members:
                original, effective, info = results[name]
                searched[name] = info
                reports[name] = report(name, module, original, effective)
            return reports

        def compress_linear(name: str, module: nn.Module, stats: LinearInputs) -> LayerReport:
            """Outside the blocks (the LM head): nothing to fold into, so no scales; clipping still applies."""
            assert stats.sample is not None
            view = weight_view(module)
            original = view.to(torch.float32, copy=True)
            approx, info = awq_quantize(original, stats.abs_mean, stats.sample, config, alphas=(0.0,))
            view.copy_(approx.to(view.dtype))
            searched[name] = info
            return report(name, module, original, approx)

        layers = compress_sequentially(
            model,
            calibration.input_ids,
            compress_linear,
            needs={"abs_mean", "sample"},
            include_lm_head=config.include_lm_head,
            compress_block=compress_block,
        )
        return CompressionReport(
            recipe=config.recipe,
            method=self.name,
            layers=layers,
            packed_size_bytes=packed_size_bytes(model, packed),
            dense_size_bytes=dense,
            extra={
                "scheme": SCHEMES[rtn.grid_name],
                "grid": rtn.grid,
                "scales": "shared per input, folded into the previous norm / linear rows (see compress.awq_fold)",
                "folds": folds,
                "search": searched,
            },
        )


METHODS.register(AWQMethod.name)(AWQMethod())
