"""Hessian helpers shared by the OBS-style methods (GPTQ, SparseGPT): dead columns, damping, the upper Cholesky
factor of the inverse, and the output reconstruction error measured through the Hessian.

Both methods minimise the layer-wise loss ``||W X^T - W' X^T||_F^2`` (X: calibration inputs, one token per
row), whose Hessian with respect to each row of W is ``H = 2 X^T X`` (GPTQ eq. 1-2; the calibration pass in
``compress.sequential`` stores ``2/n X^T X``, the scale does not change the solution). After fixing column
``q`` the optimal update of the not-yet-fixed columns is ``delta = -(w_q - q(w_q)) / [H^-1]_qq * H^-1_{:,q}``
(OBS, GPTQ eq. 3); GPTQ's Cholesky reformulation (section 3, "Step 3") reads every needed row of the
successive inverses off the upper Cholesky factor of ``H^-1``, which is what ``inverse_cholesky`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PreparedHessian:
    """``upper``: upper Cholesky factor U of ``(H + damp I)^-1`` (``U^T U = (H + damp I)^-1``); ``dead``: input
    columns that never saw a non-zero activation; ``damp``: the damping actually added (absolute)."""

    upper: torch.Tensor
    dead: torch.Tensor
    damp: float


def dead_columns(hessian: torch.Tensor) -> torch.Tensor:
    """Input columns with ``H_ii == 0``: their activations were always zero, so their weights never matter."""
    return torch.diagonal(hessian) == 0


def inverse_cholesky(hessian: torch.Tensor, percdamp: float, max_retries: int = 4) -> PreparedHessian:
    """The upper Cholesky factor of ``(H + lambda I)^-1`` with ``lambda = percdamp * mean(diag(H))``.

    As in the reference ``fasterquant``/``fasterprune``: dead columns get ``H_ii = 1`` (so H stays invertible;
    the caller zeroes their weights), then dampening (GPTQ section 4, "Cholesky reformulation": 1% of the mean
    diagonal). If the damped H is still not numerically positive definite (few calibration tokens, float32),
    the damping is multiplied by 10 up to ``max_retries`` times instead of failing; ``damp`` records it.
    """
    h = hessian.clone()
    dead = dead_columns(h)
    h[dead, dead] = 1.0
    mean_diag = torch.diagonal(h).mean().item()
    damp = percdamp * mean_diag
    for _ in range(max_retries + 1):
        damped = h + damp * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        factor, info = torch.linalg.cholesky_ex(damped)
        if int(info) == 0:
            inverse = torch.cholesky_inverse(factor)
            upper, info = torch.linalg.cholesky_ex(inverse, upper=True)
            if int(info) == 0:
                return PreparedHessian(upper=upper, dead=dead, damp=damp)
        damp = damp * 10 if damp > 0 else 1e-6 * max(mean_diag, 1e-12)
    raise ValueError(
        f"the calibration Hessian is not positive definite even with damping {damp:.3g}: use more calibration "
        "samples or a larger damping"
    )


def output_error(original: torch.Tensor, compressed: torch.Tensor, hessian: torch.Tensor) -> float:
    """``||W X^T - W' X^T||_F / ||W X^T||_F`` from ``H = c X^T X`` alone: ``tr(dW H dW^T) / tr(W H W^T)``.

    The constant ``c`` cancels, so this is the exact relative output error on the calibration tokens, without
    keeping the tokens (the quantity GPTQ and SparseGPT minimise, reported for every calibrated layer).
    """
    w = original.to(hessian.dtype)
    delta = w - compressed.to(hessian.dtype)
    num = torch.sum((delta @ hessian) * delta).clamp(min=0).item()
    den = torch.sum((w @ hessian) * w).item()
    if den <= 0:
        return 0.0 if num == 0 else float("inf")
    return (num / den) ** 0.5


@dataclass
class ColumnBlock:
    """One block of columns in the OBS sweep (GPTQ's lazy batch updates, section 3 "Step 2"): a working copy of
    the block's weights, the processed columns, their scaled errors, and the block's part of ``upper``."""

    start: int
    end: int
    weight: torch.Tensor  # updated as each column's error is pushed onto the columns after it
    result: torch.Tensor  # the processed (quantized or pruned) columns
    error: torch.Tensor  # (w - q) / [H^-1]_qq per processed column
    hinv: torch.Tensor

    def process(self, i: int, q: torch.Tensor) -> None:
        """Fix column ``i`` (of the block) to ``q`` and push its error onto the block's later columns."""
        w = self.weight[:, i]
        d = self.hinv[i, i]
        self.result[:, i] = q
        err = (w - q) / d
        self.weight[:, i:] -= err[:, None] @ self.hinv[i, i:][None, :]
        self.error[:, i] = err


def column_blocks(w_all: torch.Tensor, upper: torch.Tensor, block_size: int) -> Iterator[ColumnBlock]:
    """The blocks of ``block_size`` columns of ``w_all`` left to right; after the caller has processed a block,
    its accumulated error is applied to every column after it in ``w_all`` (one matrix product per block)."""
    cols = w_all.shape[1]
    for start in range(0, cols, block_size):
        end = min(start + block_size, cols)
        w1 = w_all[:, start:end].clone()
        block = ColumnBlock(start, end, w1, torch.zeros_like(w1), torch.zeros_like(w1), upper[start:end, start:end])
        yield block
        w_all[:, end:] -= block.error @ upper[start:end, end:]
