"""A forward pass that returns only the argmax of the next-token logits, computed a few positions at a time.

Verifying a draft needs the model's argmax at every draft position, not its logits. A drafted batch's first
pass keeps ``rows x (draft + 1)`` positions, and their logits are the largest tensor of the whole run on a
model with a large vocabulary (32 rows x 49 positions x SmolLM2's 49,152 entries: 154 MB in bf16; with
Llama 3's 128,256: 400 MB). Here the output projection runs on slices of the kept positions and only each
slice's argmax is kept, so the whole ``[rows, positions, vocab]`` tensor never exists.

How: the output embedding module's ``forward`` is replaced for the one call by one that computes the sliced
argmax from the hidden states it receives and returns a one-wide placeholder as the logits. That is exact
only where the model's own forward turns the projection into logits by an increasing elementwise map, which
keeps the argmax: ``SLICEABLE`` lists the architectures checked in transformers' source (a plain
projection; Gemma 2/3's tanh soft-capping, Granite's division by ``logits_scaling`` and Cohere's positive
``logit_scale`` are increasing). Any other architecture gets the full logits.
"""

from __future__ import annotations

from typing import Any

import torch

# config.model_type of causal LMs whose logits are the output projection's output under an increasing
# elementwise map (checked in transformers 5.x modeling files)
SLICEABLE = frozenset({
    "llama", "mistral", "qwen2", "qwen3", "gpt2", "phi3", "gemma", "gemma2", "gemma3_text", "granite",
    "olmo2", "smollm3", "cohere",
})  # fmt: skip
SLICE_ELEMENTS = 1 << 23  # logits computed at once (8M values: 16 MB in bf16)


def _head(model: Any) -> torch.nn.Module | None:
    """The output projection to slice, or None where slicing is not known to keep the argmax."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in SLICEABLE or not hasattr(model, "get_output_embeddings"):
        return None
    head = model.get_output_embeddings()
    return head if isinstance(head, torch.nn.Module) else None


def argmax_logits(model: Any, **forward_kwargs: Any) -> torch.Tensor:
    """``model(**forward_kwargs).logits.argmax(-1)`` ([rows, kept positions], on the model's device),
    without the full logits tensor where the architecture allows (module docstring)."""
    head = _head(model)
    if head is None:
        logits = model(**forward_kwargs).logits
        return logits.argmax(-1)
    taken: list[torch.Tensor] = []
    project = head.forward  # the module's own forward (or a wrapper someone installed on the instance)

    def sliced(hidden: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        rows, positions = hidden.shape[0], hidden.shape[1]
        vocab = int(getattr(head, "out_features", 0) or head.weight.shape[0])
        step = max(1, SLICE_ELEMENTS // max(1, rows * vocab))
        parts = [project(hidden[:, start : start + step], *args, **kwargs).argmax(-1)
                 for start in range(0, positions, step)]  # fmt: skip
        taken.append(torch.cat(parts, dim=1))
        return hidden.new_zeros((rows, positions, 1))

    had_own = "forward" in head.__dict__
    head.forward = sliced
    try:
        model(**forward_kwargs)
    finally:
        if had_own:
            head.forward = project
        else:
            del head.forward
    if len(taken) != 1:  # the projection did not run exactly once: the placeholder logits are meaningless
        raise RuntimeError(f"the output projection ran {len(taken)} times in one forward pass")
    return taken[0]
