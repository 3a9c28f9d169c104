"""SparseGPT pruning (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot"), following Algorithm 1 and the authors' reference ``fasterprune``.

Magnitude pruning zeroes weights and leaves the rest alone. SparseGPT treats pruning as a layer-wise
reconstruction problem, ``min ||W X^T - W' X^T||_F^2`` subject to the mask (eq. 1), and after zeroing each
weight compensates with the OBS update of the weights not yet processed in its row (eq. 3, with the
Cholesky/lazy-batch machinery it shares with GPTQ, section 3.3-3.4):

    delta = -(w_q / [H^-1]_qq) * (H^-1)_{:,q},     H = 2 X^T X + lambda I.

Mask selection (section 3.4, "adaptive mask selection"): the mask is not fixed up front; for each block
of ``B_s = 128`` columns it is chosen when the algorithm reaches the block, from the *updated* weights, by
the OBS saliency ``w^2 / [H^-1]_qq^2`` (eq. 4, with the Cholesky diagonal as in the reference code):

* unstructured ``sparsegpt-<p>``: in each block the ``p``% lowest saliencies of the whole block (all rows
  together, as the reference). The reference prunes ``saliency <= sorted[int(p * size)]`` (one more than
  ``p``%, plus ties); we prune exactly ``round`` of the cumulative target per block, ties to the earlier
  element, so a layer ends with exactly ``round(p * numel)`` zeros, like ``mag-<p>``;
* semi-structured ``<n>:<m>-sparsegpt``: every ``m`` columns, each row drops the ``m - n`` lowest
  saliencies of those ``m`` (section 3.5; the reference's ``prunen``/``prunem``). Here ``n`` is the number
  *kept*, as in ``compress.magnitude``'s ``2:4``.

Dead inputs and damping (1% of mean(diag H)) as in GPTQ (``compress.hessian``). Storage accounting is
``compress.magnitude``'s: unstructured costs the dense dtype's bits; N:M the kept values plus
``ceil(log2 m)`` index bits per kept value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.base import CompressionConfig
from compsafe.compress.hessian import column_blocks, dead_columns, inverse_cholesky
from compsafe.compress.magnitude import NMConfig
from compsafe.compress.sparsity import check_divisible, pruning_recipe, pruning_sparsity
from compsafe.compress.template import Layer, LayerOutcome, LinearMethod, pruned, register
from compsafe.errors import RecipeError

BLOCK_SIZE = 128  # B_s: the adaptive-mask block (section 3.4); unlike GPTQ it changes which weights go
DEFAULT_PERCDAMP = 0.01

_DAMP_HEAD = r"(?:-damp(?P<damp>\d*\.?\d+))?(?P<head>-head)?"
_UNSTRUCTURED = re.compile(r"sparsegpt-(?P<pct>\d+)" + _DAMP_HEAD)
_NM = re.compile(r"(?P<n>\d+):(?P<m>\d+)-sparsegpt" + _DAMP_HEAD)


@dataclass(frozen=True)
class SparseGPTConfig(CompressionConfig):
    """SparseGPT: unstructured at ``sparsity``, or N:M (keep ``n`` of every ``m``) when ``n`` and ``m`` are set
    (then ``sparsity`` is ``1 - n/m``)."""

    method: ClassVar[str] = "sparsegpt"

    sparsity: float = 0.5
    n: int | None = None
    m: int | None = None
    percdamp: float = DEFAULT_PERCDAMP
    include_lm_head: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.percdamp <= 1:
            raise RecipeError(f"damping {self.percdamp!r} must be a fraction of mean(diag(H)) in [0, 1], e.g. 0.01")
        object.__setattr__(self, "sparsity", pruning_sparsity("sparsegpt", self.sparsity, self.n, self.m))

    @property
    def structured(self) -> bool:
        return self.n is not None

    @property
    def recipe(self) -> str:
        damp = "" if self.percdamp == DEFAULT_PERCDAMP else f"-damp{self.percdamp:g}"
        head = "-head" if self.include_lm_head else ""
        return pruning_recipe("sparsegpt", self.sparsity, self.n, self.m, damp + head)


@dataclass
class SparseGPTResult:
    """Pruned and updated ``[out, in]`` weight, its prune mask (True = zeroed), the absolute damping used."""

    weight: torch.Tensor
    mask: torch.Tensor
    damp: float


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` lowest entries of ``scores`` (flattened; ties to the earlier element)."""
    flat = scores.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.argsort(flat, stable=True)[:k]] = True
    return mask.reshape(scores.shape)


@torch.no_grad()
def sparsegpt_prune(
    weight: torch.Tensor, hessian: torch.Tensor, config: SparseGPTConfig, *, block_size: int = BLOCK_SIZE
) -> SparseGPTResult:
    """SparseGPT (Algorithm 1) on one ``[out, in]`` weight with input Hessian ``[in, in]``; ``weight`` is not
    modified. N:M needs ``in % m == 0``; the block is rounded down to a multiple of ``m`` so that every
    ``m``-group lies inside one block."""
    w_all = weight.clone()
    h = hessian.to(w_all.dtype)
    rows, cols = w_all.shape
    w_all[:, dead_columns(h)] = 0
    prepared = inverse_cholesky(h, config.percdamp)
    hinv = prepared.upper
    prune_mask = torch.zeros_like(w_all, dtype=torch.bool)
    if config.structured:
        assert config.n is not None and config.m is not None
        n_keep, m = config.n, config.m
        if cols % m:
            raise ValueError(f"in_features {cols} is not divisible by m={m}")
        block_size = max(m, block_size - block_size % m)
    for block in column_blocks(w_all, hinv, block_size):
        i1, i2, w1 = block.start, block.end, block.weight
        diag1 = torch.diagonal(block.hinv)
        if config.structured:
            mask1 = torch.zeros_like(w1, dtype=torch.bool)
        else:  # exact cumulative count: the layer ends with round(p * numel) zeros
            k = round(config.sparsity * rows * i2) - round(config.sparsity * rows * i1)
            mask1 = _lowest(w1**2 / diag1[None, :] ** 2, k)
        for i in range(i2 - i1):
            if config.structured and i % m == 0:
                saliency = w1[:, i : i + m] ** 2 / diag1[None, i : i + m] ** 2
                drop = torch.argsort(saliency, dim=1, stable=True)[:, : m - n_keep]
                mask1[:, i : i + m].scatter_(1, drop, True)
            w = w1[:, i]
            block.process(i, torch.where(mask1[:, i], torch.zeros_like(w), w))
        w_all[:, i1:i2] = block.result
        prune_mask[:, i1:i2] = mask1
    return SparseGPTResult(weight=w_all, mask=prune_mask, damp=prepared.damp)


class SparseGPTMethod(LinearMethod):
    """Parses ``sparsegpt-<percent>`` and ``<n>:<m>-sparsegpt`` (+ ``-damp``,
    ``-head``)."""

    config_type = SparseGPTConfig
    needs: ClassVar[frozenset[str]] = frozenset({"hessian"})
    seeded: ClassVar[bool] = True
    grammar: ClassVar[str] = (
        "sparsegpt-<percent>[-damp<frac>][-head] | <n>:<m>-sparsegpt[-damp<frac>][-head]   SparseGPT pruning "
        "(needs calibration): OBS pruning with weight updates through the calibration Hessian; exactly "
        "<percent>% zeros per layer (mask chosen per 128-column block), or keep n of every m inputs"
    )
    examples: ClassVar[tuple[str, ...]] = ("sparsegpt-50", "sparsegpt-30", "2:4-sparsegpt", "4:8-sparsegpt")

    def parse(self, recipe: str) -> SparseGPTConfig | None:
        text = recipe.strip().lower()
        match = _UNSTRUCTURED.fullmatch(text) or _NM.fullmatch(text)
        if match is None:
            return None
        damp = float(match["damp"]) if match["damp"] else DEFAULT_PERCDAMP
        head = bool(match["head"])
        if "pct" in match.groupdict():
            return SparseGPTConfig(sparsity=int(match["pct"]) / 100, percdamp=damp, include_lm_head=head)
        return SparseGPTConfig(n=int(match["n"]), m=int(match["m"]), percdamp=damp, include_lm_head=head)

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: SparseGPTConfig) -> _State:
        nm = None
        if config.structured:
            assert config.m is not None
            check_divisible(targets, config.recipe, config.m, f"sparsegpt-{round(100 * config.sparsity)}")
            nm = NMConfig(n=config.n, m=config.m)  # type: ignore[arg-type]
        return _State(nm)

    def compress_layer(self, layer: Layer, config: SparseGPTConfig, state: _State) -> LayerOutcome:
        assert layer.stats is not None
        hessian = layer.stats.hessian
        if hessian is None:  # never ran on the calibration data: H = I: magnitude pruning per 128-column block
            state.uncalibrated.append(layer.name)
            hessian = torch.eye(layer.weight.shape[1], dtype=torch.float32, device=layer.weight.device)
        result = sparsegpt_prune(layer.weight, hessian, config)
        outcome = pruned(layer, result.mask, state.nm, weight=result.weight)  # exact zeros whatever the rounding
        outcome.hessian = hessian
        return outcome

    def extra(self, config: SparseGPTConfig, state: _State) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "pattern": f"{config.n}:{config.m}" if state.nm else "unstructured",
            "block_size": BLOCK_SIZE,
            "percdamp": config.percdamp,
        }
        if state.uncalibrated:
            extra["uncalibrated_layers"] = state.uncalibrated
        return extra


@dataclass
class _State:
    nm: NMConfig | None
    uncalibrated: list[str] = field(default_factory=list)


register(SparseGPTMethod())

