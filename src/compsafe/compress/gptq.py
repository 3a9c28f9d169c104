"""GPTQ weight quantization (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers"), following Algorithm 1 and the authors' reference ``fasterquant``.

RTN rounds every weight on its own. GPTQ quantizes a layer one input column at a time and, after each
column, moves the rounding error onto the columns not yet quantized so that the layer's *output* on the
calibration inputs changes as little as possible: it minimises ``||W X^T - W' X^T||_F^2`` (eq. 1) with the
OBS update (eq. 3)

    delta_F = -(w_q - quant(w_q)) / [H_F^-1]_qq * (H_F^-1)_{:,q},     H = 2 X^T X.

The rows of the successive inverses ``H_F^-1`` are the rows of the upper Cholesky factor of ``H^-1``
(section 3, step 3), and updates are applied lazily in blocks of 128 columns (step 2): exact, just faster.

Details, as in the reference:

* dead inputs (``H_ii == 0``: always-zero activations) get ``H_ii = 1`` and weight 0 (they never matter);
* damping ``lambda = percdamp * mean(diag(H))``, default 1% (``compress.hessian``; raised x10 automatically
  if H is still not positive definite, and reported);
* act-order (``-actorder``, the reference's ``--act-order``): quantize columns in order of decreasing
  ``H_ii`` (the inputs with the largest activations first, while there is most freedom left to compensate),
  then undo the permutation;
* symmetric (standard signed grid, default), narrow symmetric (``-narrow``) or asymmetric (``-asym``)
  quantization with exactly RTN's grid (``compress.rtn``): the same scale formula
  for one group, the same integer zero point, the same ``clamp(round(w / scale))``. With ``H = I`` GPTQ makes
  no updates and returns bit-for-bit the RTN result (a test checks this).

Group parameters (scale, zero) -- where GPTQ implementations differ, so stated exactly:

* no group (``int8-gptq``): one scale per output row from the whole row, before the loop (reference);
* groups, no act-order: a group's scale is computed when the loop *enters* the group, from the group's
  current weights, i.e. after the updates of all earlier columns (reference behaviour). The reference
  reads the group from its outer matrix, which still lacks the pending lazy-batch updates when a group
  starts inside a 128-column block (g32, g64); we add those pending updates, so the scale always sees the
  truly current weights and the result does not depend on the block size (a test checks this);
* groups with act-order: the reference's ``--static-groups`` behaviour. Scales of the contiguous groups of
  the original column order are computed from the weights before any update, and each column, visited in
  act-order, uses the scale of the group it belongs to in the original order. The stored model is then
  exactly RTN's format (contiguous groups, no per-column group index ``g_idx`` and no permutation at
  inference, the layout deployed kernels prefer), so the bit accounting is RTN's.

Storage and accounting are identical to RTN at the same bits/group/symmetry (``RTNConfig.bits_per_weight``
and ``packed_bytes``): GPTQ changes which grid point each weight gets, not the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.base import CompressionConfig
from compsafe.compress.hessian import column_blocks, dead_columns, inverse_cholesky
from compsafe.compress.rtn import GRID_SUFFIX, SCHEMES, QuantGrid, RTNConfig, quantize_dequantize
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, register
from compsafe.errors import RecipeError

BLOCK_SIZE = 128  # lazy-batch width (GPTQ section 3, step 2); only speed depends on it
DEFAULT_PERCDAMP = 0.01

_RECIPE = re.compile(
    r"int(?P<bits>\d+)-gptq(?:-g(?P<group>\d+))?(?:-(?P<sym>sym|asym|narrow))?(?P<act>-actorder)?"
    r"(?:-damp(?P<damp>\d*\.?\d+))?(?P<head>-head)?"
)


@dataclass(frozen=True)
class GPTQConfig(CompressionConfig):
    """GPTQ quantization; ``bits``/``group_size``/``symmetric`` mean exactly what they mean for RTN."""

    method: ClassVar[str] = "gptq"

    bits: int = 4
    group_size: int | None = None
    symmetric: bool = True
    act_order: bool = False
    percdamp: float = DEFAULT_PERCDAMP
    include_lm_head: bool = False
    narrow: bool = False  # as RTN's: the +-(2^(b-1) - 1) grid

    def __post_init__(self) -> None:
        _ = self.storage  # validates bits and group size with RTN's messages
        if not 0 <= self.percdamp <= 1:
            raise RecipeError(f"damping {self.percdamp!r} must be a fraction of mean(diag(H)) in [0, 1], e.g. 0.01")

    @property
    def storage(self) -> RTNConfig:
        """The RTN config with the same grid and storage format (used for the grid and the accounting)."""
        return RTNConfig(bits=self.bits, group_size=self.group_size, symmetric=self.symmetric, narrow=self.narrow)

    @property
    def grid(self) -> str:
        return self.storage.grid

    @property
    def recipe(self) -> str:
        group = f"-g{self.group_size}" if self.group_size else ""
        asym = GRID_SUFFIX[self.storage.grid_name]
        act = "-actorder" if self.act_order else ""
        damp = "" if self.percdamp == DEFAULT_PERCDAMP else f"-damp{self.percdamp:g}"
        head = "-head" if self.include_lm_head else ""
        return f"int{self.bits}-gptq{group}{asym}{act}{damp}{head}"


@dataclass
class GPTQResult:
    """Dequantized ``[out, in]`` weight, GPTQ's own loss estimate ``sum (w - q)^2 / [H^-1]_qq^2 / 2``
    (eq. 2, summed over the layer) and the absolute damping that was added to H."""

    weight: torch.Tensor
    loss: float
    damp: float
    grid: QuantGrid | None = None  # the group scales (and zeros) the weight sits on, ``[out, groups]``


def _group_params(block: torch.Tensor, storage: RTNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and integer zero point ``[out]`` of one group ``[out, k]``, by RTN's formulas (rtn.py)."""
    _, scale = quantize_dequantize(block, replace(storage, group_size=None))
    scale = scale[:, 0]
    if storage.symmetric:
        return scale, torch.zeros_like(scale)
    qmax = storage.levels[1]
    lo = block.amin(dim=1).clamp(max=0)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, torch.clamp(torch.round(-lo / safe), 0, qmax)


def _quantize_column(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, storage: RTNConfig) -> torch.Tensor:
    """Round one column onto the group grid: the same arithmetic as ``rtn.quantize_dequantize``."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    qmin, qmax = storage.levels
    if storage.symmetric:
        return torch.clamp(torch.round(w * (1.0 / safe)), qmin, qmax) * scale
    q = torch.clamp(torch.round(w * (1.0 / safe)) + zero, 0, qmax)
    return (q - zero) * scale


@torch.no_grad()
def gptq_quantize(
    weight: torch.Tensor, hessian: torch.Tensor, config: GPTQConfig, *, block_size: int = BLOCK_SIZE
) -> GPTQResult:
    """GPTQ (Algorithm 1) on one ``[out, in]`` weight with input Hessian ``H`` ``[in, in]``; ``weight`` is not
    modified. Runs in ``weight``'s dtype (float32 normally, float64 in tests)."""
    storage = config.storage
    w_all = weight.clone()
    h = hessian.to(w_all.dtype).clone()
    rows, cols = w_all.shape
    dead = dead_columns(h)
    h[dead, dead] = 1.0
    w_all[:, dead] = 0
    group = min(config.group_size or cols, cols)
    per_row = group == cols
    static = config.act_order and not per_row
    if per_row:  # one scale per row, from the whole row before any update (reference find_params(W))
        row_scale, row_zero = _group_params(w_all, storage)
    if static:  # reference --static-groups: contiguous original-order groups, from the unchanged weights
        params = [_group_params(w_all[:, s : s + group], storage) for s in range(0, cols, group)]
        static_scale = torch.stack([p[0] for p in params], dim=1)
        static_zero = torch.stack([p[1] for p in params], dim=1)
    perm = torch.arange(cols, device=w_all.device)
    if config.act_order:
        perm = torch.argsort(torch.diagonal(h), descending=True, stable=True)
        w_all = w_all[:, perm]
        h = h[perm][:, perm]
    prepared = inverse_cholesky(h, config.percdamp)
    hinv = prepared.upper
    quantized = torch.zeros_like(w_all)
    loss = torch.zeros((), dtype=w_all.dtype, device=w_all.device)
    scale = zero = None
    found: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # dynamic groups: params by group index
    for block in column_blocks(w_all, hinv, block_size):
        i1, i2 = block.start, block.end
        for i in range(i2 - i1):
            column = i1 + i
            if per_row:
                scale, zero = row_scale, row_zero
            elif static:
                index = int(perm[column]) // group
                scale, zero = static_scale[:, index], static_zero[:, index]
            elif column % group == 0:  # entering a group: params from its current (updated) weights
                end = min(column + group, cols)
                current = block.weight[:, i : min(end, i2) - i1]
                if end > i2:  # the part beyond this block still owes the block's lazy updates
                    pending = w_all[:, i2:end] - block.error[:, :i] @ hinv[i1:column, i2:end]
                    current = torch.cat([current, pending], dim=1)
                scale, zero = _group_params(current, storage)
                found[column // group] = (scale, zero)
            assert scale is not None and zero is not None
            w = block.weight[:, i]
            q = _quantize_column(w, scale, zero, storage)
            loss += ((w - q) ** 2).sum() / block.hinv[i, i] ** 2 / 2
            block.process(i, q)
        quantized[:, i1:i2] = block.result
    if config.act_order:
        quantized = quantized[:, torch.argsort(perm)]
    if per_row:
        grid_scale, grid_zero = row_scale[:, None], row_zero[:, None]
    elif static:
        grid_scale, grid_zero = static_scale, static_zero
    else:
        grid_scale = torch.stack([found[i][0] for i in sorted(found)], dim=1)
        grid_zero = torch.stack([found[i][1] for i in sorted(found)], dim=1)
    grid = QuantGrid.of(storage, grid_scale, grid_zero)
    return GPTQResult(weight=quantized, loss=float(loss), damp=prepared.damp, grid=grid)


class GPTQMethod(LinearMethod):
    """Parses ``int<bits>-gptq[-g<group>][-sym|-asym|-narrow][-actorder][-damp<f>][-head]``."""

    config_type = GPTQConfig
    needs: ClassVar[frozenset[str]] = frozenset({"hessian"})
    seeded: ClassVar[bool] = True
    grammar: ClassVar[str] = (
        "int<bits>-gptq[-g<group>][-sym|-asym|-narrow][-actorder][-damp<frac>][-head]   GPTQ (needs calibration): "
        "quantize column by column, moving each rounding error onto the remaining columns through the "
        "calibration Hessian; bits in 2,3,4,8; grid and storage as RTN's; -actorder: largest activations "
        "first (static groups); -damp: damping as a fraction of mean(diag H), default 0.01"
    )
    examples: ClassVar[tuple[str, ...]] = (
        "int4-gptq-g128",
        "int3-gptq-g128",
        "int2-gptq-g64",
        "int8-gptq",
        "int4-gptq-g128-asym",
        "int4-gptq-g128-actorder",
    )

    def parse(self, recipe: str) -> GPTQConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        group = match["group"]
        return GPTQConfig(
            bits=int(match["bits"]),
            group_size=int(group) if group else None,
            symmetric=match["sym"] != "asym",
            narrow=match["sym"] == "narrow",
            act_order=bool(match["act"]),
            percdamp=float(match["damp"]) if match["damp"] else DEFAULT_PERCDAMP,
            include_lm_head=bool(match["head"]),
        )

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: GPTQConfig) -> GPTQState:
        return GPTQState()

    def compress_layer(self, layer: Layer, config: GPTQConfig, state: GPTQState) -> LayerOutcome:
        assert layer.stats is not None
        out_features, in_features = layer.weight.shape
        hessian = layer.stats.hessian
        if hessian is None:  # never ran on the calibration data: H = I makes GPTQ exactly RTN
            state.uncalibrated.append(layer.name)
            hessian = torch.eye(in_features, dtype=torch.float32, device=layer.weight.device)
        result = gptq_quantize(layer.weight, hessian, config)
        mean_diag = torch.diagonal(hessian).mean().item()
        if result.damp > config.percdamp * mean_diag * (1 + 1e-6) + 1e-30:
            state.raised_damping[layer.name] = result.damp / mean_diag if mean_diag else result.damp
        return self.outcome(result, config, hessian)

    @staticmethod
    def outcome(result: GPTQResult, config: GPTQConfig, hessian: torch.Tensor) -> LayerOutcome:
        """The layer as stored: RTN's format at the same bits and group (only the grid points differ)."""
        out_features, in_features = result.weight.shape
        storage = config.storage
        return LayerOutcome(
            result.weight,
            storage.bits_per_weight(in_features),
            storage.packed_bytes(out_features, in_features),
            hessian=hessian,
            grid=result.grid,
        )

    def extra(self, config: GPTQConfig, state: GPTQState) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "scheme": SCHEMES[config.storage.grid_name],
            "grid": config.storage.grid,
            "block_size": BLOCK_SIZE,
            "percdamp": config.percdamp,
            "groups": "per-row" if not config.group_size else ("static" if config.act_order else "dynamic"),
        }
        if state.raised_damping:
            extra["raised_damping"] = state.raised_damping
        if state.uncalibrated:
            extra["uncalibrated_layers"] = state.uncalibrated
        return extra


@dataclass
class GPTQState:
    raised_damping: dict[str, float] = field(default_factory=dict)
    uncalibrated: list[str] = field(default_factory=list)


register(GPTQMethod())

