"""Safety-critical attention heads: which heads, removed one at a time, most weaken refusals.

A head is ablated by masking its *output*: a forward pre-hook on the attention output projection (``o_proj``;
GPT-2's ``c_proj``) zeroes that head's ``head_dim`` slice of the projection's input, i.e. removes exactly the
head's term ``W_o[:, h] z_h`` from the residual stream, and nothing else. Seed 001's sketch zeroes a whole
projection weight, which removes every head of the layer (or, for q/k/v, corrupts all of them) and so cannot
attribute anything to one head. Every other head's output stays bit-identical (tested).

Exact ablation costs one evaluation per head (270 for SmolLM2-135M). ``head_attribution`` screens all heads
at the cost of one forward+backward pass (attribution patching: the first-order change of the refusal margin
when the head's output goes to zero, ``-sum_t z_h(t) . dmargin/dz_h(t)``), so a CPU scan ablates exactly only
the top candidates; ``scan_heads`` with every head is the exhaustive version for a GPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from compsafe.compress.sequential import decoder_blocks
from compsafe.diagnose.signals import SignalProbe, Signals
from compsafe.models.backend import HFBackend
from compsafe.probes.refusal_signal import COMPLIANCE_OPENINGS, REFUSAL_OPENINGS

Head = tuple[int, int]  # (block index, head index)

_OUTPUT_PROJECTIONS = ("self_attn.o_proj", "attn.c_proj", "self_attention.dense", "attention.dense", "attn.out_proj")


def attention_output_projection(block: nn.Module) -> nn.Module:
    """The linear layer that mixes the heads' outputs back into the residual stream (Llama's ``o_proj``)."""
    for path in _OUTPUT_PROJECTIONS:
        module: nn.Module | None = block
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if module is not None:
            return module
    raise ValueError(
        f"cannot find the attention output projection of {type(block).__name__} (looked for {_OUTPUT_PROJECTIONS})"
    )


def head_layout(model: nn.Module) -> tuple[int, int, int]:
    """(blocks, heads per block, head_dim) of the model's attention (query heads: GQA shares K/V, not outputs)."""
    config = model.config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if hidden and heads else None)
    if not heads or not head_dim:
        raise ValueError(f"cannot read the attention head layout of {type(model).__name__}")
    _, blocks = decoder_blocks(model)
    return len(blocks), int(heads), int(head_dim)


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[Head]) -> Iterator[None]:
    """Inside the block, the listed heads contribute nothing: their slice of ``o_proj``'s input is zero.

    The hook writes into a copy of the input (the attention module's own tensor is left intact), so other
    heads' values are the same numbers, not recomputed ones.
    """
    _, blocks = decoder_blocks(model)
    _, n_heads, head_dim = head_layout(model)
    by_block: dict[int, list[int]] = {}
    for block, head in heads:
        if not 0 <= head < n_heads or not 0 <= block < len(blocks):
            raise ValueError(f"no head {head} in block {block} (model has {len(blocks)} blocks x {n_heads} heads)")
        by_block.setdefault(block, []).append(head)
    handles = []

    def make_hook(indices: list[int]) -> Callable[..., tuple[Any, ...]]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0].clone()
            for h in indices:
                x[..., h * head_dim : (h + 1) * head_dim] = 0
            return (x, *args[1:])

        return hook

    try:
        for block, indices in by_block.items():
            projection = attention_output_projection(blocks[block])
            handles.append(projection.register_forward_pre_hook(make_hook(sorted(set(indices)))))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class HeadEffect:
    """Signals with one head ablated, and their change from the intact model."""

    block: int
    head: int
    margin_change: float  # ablated mean margin - base (nats; negative: the head supported refusing)
    fast_rate_change: float
    perplexity: float
    judged_refusal_rate: float | None = None
    attribution: float | None = None  # first-order estimate of margin_change, when screened

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_attribution(backend: HFBackend, prompts: Sequence[str]) -> dict[Head, float]:
    """First-order estimate, for every head, of the mean refusal margin's change when the head is ablated.

    One forward and backward pass per prompt over its six (prompt, opening) sequences, capturing each
    ``o_proj`` input and its gradient: zeroing head ``h`` changes the margin by about ``-<z_h, dm/dz_h>`` summed
    over positions. Cheap and global, but only an estimate: ``scan_heads`` measures the candidates exactly.
    """
    model = backend.model
    n_blocks, n_heads, head_dim = head_layout(model)
    _, blocks = decoder_blocks(model)
    openings = REFUSAL_OPENINGS + COMPLIANCE_OPENINGS
    captured: dict[int, torch.Tensor] = {}
    totals = torch.zeros(n_blocks, n_heads, dtype=torch.float64)

    def make_hook(index: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            args[0].retain_grad()
            captured[index] = args[0]

        return hook

    handles = [attention_output_projection(b).register_forward_pre_hook(make_hook(i)) for i, b in enumerate(blocks)]
    # gradients must flow even when the weights are frozen: make the embedding output the graph's leaf
    handles.append(
        model.get_input_embeddings().register_forward_hook(lambda module, args, out: out.detach().requires_grad_(True))
    )
    was_training = model.training
    model.eval()
    pad = backend.tokenizer.pad_token_id if backend.tokenizer.pad_token_id is not None else 0
    try:
        for prompt in prompts:
            context = backend.format_chat(prompt)
            pairs = [backend._encode_pair(context, opening, special_tokens=False) for opening in openings]
            sequences = [c + x for c, x in pairs]
            width = max(len(s) for s in sequences) - 1
            ids = torch.full((len(sequences), width), pad, dtype=torch.long)
            for row, seq in enumerate(sequences):  # right padding: real tokens never attend to it
                ids[row, : len(seq) - 1] = torch.tensor(seq[:-1])
            with torch.enable_grad():
                logits = model(input_ids=ids.to(backend.device), use_cache=False).logits.float()
                scores = []
                for row, (context_ids, cont) in enumerate(pairs):
                    start = len(context_ids) - 1
                    logprobs = torch.log_softmax(logits[row, start : start + len(cont)], dim=-1)
                    scores.append(logprobs.gather(-1, torch.tensor(cont, device=logits.device)[:, None]).sum())
                stacked = torch.stack(scores)
                margin = stacked[: len(REFUSAL_OPENINGS)].max() - stacked[len(REFUSAL_OPENINGS) :].max()
                model.zero_grad(set_to_none=True)
                margin.backward()
            for index in range(n_blocks):
                z = captured[index]
                grad = z.grad
                per_head = -(z.detach() * grad).reshape(*z.shape[:-1], n_heads, head_dim).sum(-1)  # [rows, T, heads]
                totals[index] += per_head.sum(dim=(0, 1)).double().cpu()
            captured.clear()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    totals /= max(len(prompts), 1)
    return {(b, h): float(totals[b, h]) for b in range(n_blocks) for h in range(n_heads)}


def head_state(head: Head) -> dict[str, Any]:
    """The store name of the model state with ``head`` ablated (see ``diagnose.signals``)."""
    return {"ablated_head": list(head)}


def scan_heads(
    model: nn.Module,
    measure: Callable[[dict[str, Any]], Any],
    heads: Sequence[Head],
    base: Any,
    *,
    attribution: dict[Head, float] | None = None,
    cached: Callable[[dict[str, Any]], Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[HeadEffect]:
    """Ablate each head alone, ``measure(state)`` it (returns ``Signals``), rank by margin loss.

    ``cached(state)`` answers a head already measured (from the store) without ablating it. Ranked most
    refusal-reducing first (most negative margin change), ties by fast-rate change.
    """
    effects = []
    for block, head in heads:
        state = head_state((block, head))
        signals = cached(state) if cached is not None else None
        if signals is None:
            with ablate_heads(model, [(block, head)]):
                signals = measure(state)
        effect = HeadEffect(
            block=block,
            head=head,
            margin_change=signals.mean_margin - base.mean_margin,
            fast_rate_change=signals.fast_refusal_rate - base.fast_refusal_rate,
            perplexity=signals.perplexity,
            judged_refusal_rate=signals.judged_refusal_rate,
            attribution=attribution.get((block, head)) if attribution else None,
        )
        effects.append(effect)
        if progress:
            progress(f"head {block}.{head}: margin {effect.margin_change:+.3f}")
    return sorted(effects, key=lambda e: (e.margin_change, e.fast_rate_change, e.block, e.head))


def top_candidates(attribution: dict[Head, float], k: int) -> list[Head]:
    """The ``k`` heads whose estimated ablation lowers the margin most."""
    return [head for head, _ in sorted(attribution.items(), key=lambda kv: (kv[1], kv[0]))[:k]]


def head_report(
    model: nn.Module,
    probe: SignalProbe,
    base: Signals,
    *,
    candidates: int = 12,
    screen_prompts: int = 8,
    judged_heads: int = 5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The head part of ``compsafe sensitivity``: screen by attribution, ablate the candidates exactly, judge the top.

    ``candidates=0`` (or at least every head) ablates every head; ``judged_heads`` of the most refusal-reducing
    heads are also generated and judged. ``base`` is the intact model's signals on ``probe``.
    """
    say = progress or (lambda message: None)
    n_blocks, n_heads, _ = head_layout(model)
    all_heads = [(b, h) for b in range(n_blocks) for h in range(n_heads)]
    attribution = None
    chosen = all_heads
    if candidates and candidates < len(all_heads):
        say(f"heads: attribution screen of {len(all_heads)} heads on {min(screen_prompts, len(probe.prompts))} prompts")
        attribution = head_attribution(probe.backend, probe.prompts[:screen_prompts])
        chosen = top_candidates(attribution, candidates)
    say(f"heads: exact ablation of {len(chosen)} heads")
    head_probe = replace(probe, passages=probe.passages[:1])
    head_base = head_probe.measure()
    effects = scan_heads(
        model,
        lambda state: head_probe.measure(state=state),
        chosen,
        head_base,
        attribution=attribution,
        cached=head_probe.cached,
        progress=say,
    )
    for effect in effects[:judged_heads]:
        state = head_state((effect.block, effect.head))
        with ablate_heads(model, [(effect.block, effect.head)]):
            effect.judged_refusal_rate = probe.judged_refusal_rate(state=state)
    screen: dict[str, Any] = {"n_heads": len(all_heads), "exact": len(chosen)}
    if attribution is not None and len(effects) >= 3:
        from scipy.stats import spearmanr

        rho = spearmanr([e.attribution for e in effects], [e.margin_change for e in effects])[0]
        screen["spearman_attribution_vs_exact"] = None if math.isnan(rho) else float(rho)
    return {
        "base": head_base.to_dict(),
        "base_judged_refusal_rate": base.judged_refusal_rate,
        "screen": screen,
        "ranked": [e.to_dict() for e in effects],
    }
