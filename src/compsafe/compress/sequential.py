"""One calibration pass, block by block, shared by every calibrated method (GPTQ, SparseGPT, Wanda, AWQ).

The pass follows GPTQ's sequential recipe (and llm-compressor's pipeline): capture the inputs of the first
transformer block, then for each block
1. run the calibration samples through it with hooks on its linear layers, collecting only the input
   statistics the method asked for (Hessian ``2/n X^T X``, squared column norms, mean |x|, a row sample);
2. compress each of its linear layers with those statistics;
3. run the samples through the *compressed* block to get the next block's inputs, so later layers are
   calibrated on what they will really see.
Only one block's statistics are alive at a time, so memory grows with the block, not the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compsafe.compress.base import LayerReport
from compsafe.compress.targets import compressible_linears, is_transposed

STATISTICS = frozenset({"hessian", "sq_norm", "abs_mean", "sample"})


@dataclass
class LinearInputs:
    """Statistics of one linear layer's inputs over the calibration tokens (float32, on the weight's device).

    ``hessian`` = 2/n sum x x^T ([in, in], GPTQ's H); ``sq_norm`` = sum x_j^2 per input column ([in], Wanda's
    ||X_j||^2); ``abs_mean`` = mean |x_j| ([in], AWQ's activation scale); ``sample`` = up to ``max_rows``
    input rows ([k, in], for reconstruction losses); ``n_tokens`` = tokens seen.
    """

    n_tokens: int = 0
    hessian: torch.Tensor | None = None
    sq_norm: torch.Tensor | None = None
    abs_mean: torch.Tensor | None = None
    sample: torch.Tensor | None = None
    _abs_sum: torch.Tensor | None = field(default=None, repr=False)
    _rows: list[torch.Tensor] = field(default_factory=list, repr=False)


class _Collector:
    """Forward hook that accumulates ``LinearInputs`` for one module."""

    def __init__(self, needs: frozenset[str], max_rows: int, generator: torch.Generator) -> None:
        self.needs = needs
        self.max_rows = max_rows
        self.generator = generator
        self.stats = LinearInputs()

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
        s = self.stats
        n_new = x.shape[0]
        if "hessian" in self.needs:
            if s.hessian is None:
                s.hessian = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float32, device=x.device)
            # running mean of 2 x x^T, as in the GPTQ reference implementation
            s.hessian.mul_(s.n_tokens / (s.n_tokens + n_new))
            scaled = x * (2.0 / (s.n_tokens + n_new)) ** 0.5
            s.hessian.addmm_(scaled.t(), scaled)
        if "sq_norm" in self.needs:
            col = (x * x).sum(0)
            s.sq_norm = col if s.sq_norm is None else s.sq_norm + col
        if "abs_mean" in self.needs:
            col = x.abs().sum(0)
            s._abs_sum = col if s._abs_sum is None else s._abs_sum + col
        if "sample" in self.needs:
            kept = sum(r.shape[0] for r in s._rows)
            if kept < self.max_rows:
                take = min(self.max_rows - kept, n_new)
                index = torch.randperm(n_new, generator=self.generator)[:take].to(x.device)
                s._rows.append(x[index].clone())
        s.n_tokens += n_new

    def finish(self) -> LinearInputs:
        s = self.stats
        if s._abs_sum is not None:
            s.abs_mean = s._abs_sum / max(s.n_tokens, 1)
        if s._rows:
            s.sample = torch.cat(s._rows)
        s._abs_sum, s._rows = None, []
        return s


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of transformer blocks: the ModuleList with ``num_hidden_layers`` entries."""
    n_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers:
            return name, module
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__} (no ModuleList of {n_layers})")


class _StopForward(Exception):
    pass


@torch.no_grad()
def capture_block_inputs(model: nn.Module, blocks: nn.ModuleList, input_ids: torch.Tensor) -> list[tuple]:
    """(args, kwargs) with which the first block is called, one entry per calibration sample."""
    captured: list[tuple] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append((args, dict(kwargs)))
        raise _StopForward

    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    device = next(model.parameters()).device
    try:
        for row in input_ids:
            with contextlib.suppress(_StopForward):
                model(input_ids=row[None].to(device), use_cache=False)
    finally:
        handle.remove()
    return captured


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _run_block(block: nn.Module, inputs: list[tuple]) -> list[torch.Tensor]:
    outputs = []
    for args, kwargs in inputs:
        out = block(*args, **kwargs)
        outputs.append(out[0] if isinstance(out, tuple) else out)
    return outputs


CompressLinear = Callable[[str, nn.Module, LinearInputs], LayerReport]
# Runs the current block on the first n calibration inputs (all when None) and returns its outputs.
BlockRunner = Callable[[int | None], list[torch.Tensor]]
# A method that must see a whole block at once (AWQ folds scales across layers) compresses its members together.
CompressBlock = Callable[[nn.Module, list[tuple[str, nn.Module, LinearInputs]], BlockRunner], dict[str, LayerReport]]


@torch.no_grad()
def compress_sequentially(
    model: nn.Module,
    input_ids: torch.Tensor,
    compress_linear: CompressLinear,
    needs: set[str] | frozenset[str],
    *,
    include_lm_head: bool = False,
    max_rows: int = 4096,
    seed: int = 0,
    compress_block: CompressBlock | None = None,
) -> list[LayerReport]:
    """Compress every target linear layer inside the transformer blocks with calibration statistics.

    ``compress_linear(name, module, stats)`` must modify ``module.weight`` in place and return its report.
    ``compress_block(block, [(name, module, stats), ...], run_block)``, when given, compresses a block's targets
    together instead (and may change other parameters of the block, as AWQ's folding does); the statistics of
    every member are collected before any of them changes, and ``run_block(None)`` returns the block's outputs on
    the calibration inputs as it is at the time of the call (to check a change that should be exact);
    ``run_block(n)`` runs it on the first ``n`` samples only.
    Targets outside the blocks (only the LM head, when ``include_lm_head``) get statistics from the final
    hidden states. Returns reports in ``compressible_linears`` order.
    """
    unknown = set(needs) - STATISTICS
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; known: {sorted(STATISTICS)}")
    needs = frozenset(needs)
    targets = compressible_linears(model, include_lm_head=include_lm_head)
    target_ids = {id(m): name for name, m in targets}
    prefix, blocks = decoder_blocks(model)
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    reports: dict[str, LayerReport] = {}
    inputs = capture_block_inputs(model, blocks, input_ids)
    for block in blocks:
        members = [(target_ids[id(m)], m) for m in block.modules() if id(m) in target_ids]
        collectors = {name: _Collector(needs, max_rows, generator) for name, _ in members}
        handles = [m.register_forward_hook(collectors[name]) for name, m in members]
        try:
            _run_block(block, inputs)
        finally:
            for h in handles:
                h.remove()
        if compress_block is not None:
            stats = [(name, m, collectors.pop(name).finish()) for name, m in members]
            run = lambda n, block=block, inputs=inputs: _run_block(block, inputs[:n])  # noqa: E731
            reports.update(compress_block(block, stats, run))
        else:
            for name, module in members:
                reports[name] = compress_linear(name, module, collectors.pop(name).finish())
        outputs = _run_block(block, inputs)
        inputs = [_with_hidden(args, kwargs, hidden) for (args, kwargs), hidden in zip(inputs, outputs, strict=True)]
    leftover = [(name, m) for name, m in targets if name not in reports]
    if leftover:  # the LM head: its input is the final normalised hidden state
        collectors = {name: _Collector(needs, max_rows, generator) for name, _ in leftover}
        handles = [m.register_forward_hook(collectors[name]) for name, m in leftover]
        device = next(model.parameters()).device
        try:
            for row in input_ids:
                model(input_ids=row[None].to(device), use_cache=False)
        finally:
            for h in handles:
                h.remove()
        for name, module in leftover:
            reports[name] = compress_linear(name, module, collectors[name].finish())
    model.train(was_training)
    del prefix
    return [reports[name] for name, _ in targets]


def transposed(module: nn.Module) -> bool:
    """Re-exported for methods: True when the weight is stored [in, out] (GPT-2 Conv1D)."""
    return is_transposed(module)
