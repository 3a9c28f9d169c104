"""Which weight matrices a compression method may touch, and how to see each one as ``[out, in]``.

Every method compresses the same set: all linear projections of the transformer body. The output head is
left alone by default because (a) it is usually tied to the input embedding, so compressing it silently
compresses the embedding too, and (b) common deployment recipes (GPTQ/AWQ defaults, llama.cpp's k-quants)
keep it at higher precision, so including it would exaggerate what a real variant does to the model.

GPT-2-family models use transformers' ``Conv1D`` (a linear layer whose weight is stored ``[in, out]``);
it is supported so those models compress the same way. ``weight_view`` hides the orientation difference.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import re
from collections.abc import Iterator, Sequence

import torch
from torch import nn

try:  # transformers is a hard dependency, but keep this module importable without it (e.g. for docs).
    from transformers.pytorch_utils import Conv1D as _HFConv1D
except ImportError:  # pragma: no cover
    _HFConv1D = None

WEIGHT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear,) + ((_HFConv1D,) if _HFConv1D else ())


def is_transposed(module: nn.Module) -> bool:
    """True when the module stores its weight ``[in, out]`` (transformers' Conv1D)."""
    return _HFConv1D is not None and isinstance(module, _HFConv1D)


def weight_view(module: nn.Module) -> torch.Tensor:
    """The module's weight data as an ``[out, in]`` view (no copy), so writes through it land in place.

    All methods group along the input dimension (the reduction dimension of the matmul), which is what
    group-wise quantization and N:M sparsity hardware both assume.
    """
    data = module.weight.data
    return data.t() if is_transposed(module) else data


def _tied_to(module: nn.Module, other: nn.Module | None) -> bool:
    if other is None or getattr(other, "weight", None) is None:
        return False
    a, b = module.weight, other.weight
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape)


def _embedding_modules(model: nn.Module) -> tuple[nn.Module | None, nn.Module | None]:
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    try:
        inp = get_in() if callable(get_in) else None
    except (NotImplementedError, AttributeError):
        inp = None
    try:
        out = get_out() if callable(get_out) else None
    except (NotImplementedError, AttributeError):
        out = None
    return inp, out


def is_output_head(name: str, module: nn.Module, model: nn.Module) -> bool:
    """The LM head: ``model.get_output_embeddings()``, anything named ``lm_head``, or a layer tied to the
    input embedding (the head by another name)."""
    inp, out = _embedding_modules(model)
    return module is out or name.rsplit(".", 1)[-1] == "lm_head" or _tied_to(module, inp)


def compressible_linears(model: nn.Module, *, include_lm_head: bool = False) -> list[tuple[str, nn.Module]]:
    """Every ``nn.Linear`` / HF ``Conv1D`` with a floating-point weight, in ``named_modules`` order.

    The output head is excluded unless ``include_lm_head``; embeddings are never linear layers so they are
    always kept. A weight shared by several layers is listed once (the first name), so no method compresses
    the same storage twice. With ``include_lm_head=True`` and a head tied to the embedding, compressing the
    head also changes the embedding, because they are one tensor.
    """
    found: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        if not isinstance(module, WEIGHT_LAYER_TYPES):
            continue
        weight = getattr(module, "weight", None)
        if weight is None or weight.is_meta or not weight.is_floating_point() or weight.dim() != 2:
            continue
        if not include_lm_head and is_output_head(name, module, model):
            continue
        if is_excluded(name) or not is_selected(name):
            continue
        if weight.data_ptr() in seen:
            continue
        seen.add(weight.data_ptr())
        found.append((name, module))
    return found


# --- protected layers: modules every method must leave alone (see compress/protected.py) ----------------------
#
# Matching rule for a keep pattern against a module name (``model.layers.0.self_attn.q_proj``):
# * ``re:<regex>``: ``re.search`` over the full dotted name;
# * otherwise the pattern is split on dots and must equal a contiguous run of the name's dot-separated
#   components. Each pattern component is a shell glob (``*``, ``?``) or a numeric range ``a-b`` (inclusive).
#   So ``layers.0`` matches ``model.layers.0.mlp.up_proj`` but not ``model.layers.10.mlp.up_proj``;
#   ``self_attn`` matches every attention projection; ``layers.0-3.mlp`` the MLPs of blocks 0 to 3;
#   ``*_proj`` every projection; ``lm_head`` the head.
# Component matching (not substring) is what makes ``layers.1`` safe on a 30-layer model.

_EXCLUDED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("compsafe_excluded", default=())
_RANGE = re.compile(r"(\d+)-(\d+)")


def _component_matches(part: str, component: str) -> bool:
    numeric = _RANGE.fullmatch(part)
    if numeric:
        return component.isdigit() and int(numeric[1]) <= int(component) <= int(numeric[2])
    return fnmatch.fnmatchcase(component, part)


def module_matches(name: str, pattern: str) -> bool:
    """True when module ``name`` is selected by keep ``pattern`` (rule above)."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    parts = [p for p in pattern.split(".") if p]
    components = name.split(".")
    if not parts:
        return False
    width = len(parts)
    return any(
        all(_component_matches(p, c) for p, c in zip(parts, components[start : start + width], strict=True))
        for start in range(len(components) - width + 1)
    )


def is_excluded(name: str) -> bool:
    """True when ``name`` matches a pattern of an active ``excluded_modules`` block."""
    return any(module_matches(name, pattern) for pattern in _EXCLUDED.get())


@contextlib.contextmanager
def excluded_modules(patterns: Sequence[str]) -> Iterator[None]:
    """Hide modules matching ``patterns`` from ``compressible_linears`` inside the block (nestable).

    Every method finds its targets through ``compressible_linears``, so excluding here makes any method --
    present or future, calibrated or not -- leave the protected modules untouched without knowing about them.
    """
    token = _EXCLUDED.set(_EXCLUDED.get() + tuple(patterns))
    try:
        yield
    finally:
        _EXCLUDED.reset(token)


# --- only these modules: the complement of excluded_modules, for one-block-at-a-time sensitivity scans ---------

_ONLY: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("compsafe_only", default=None)


def is_selected(name: str) -> bool:
    """False when an ``only_modules`` block is active and ``name`` matches none of its patterns."""
    only = _ONLY.get()
    return only is None or any(module_matches(name, pattern) for pattern in only)


@contextlib.contextmanager
def only_modules(patterns: Sequence[str]) -> Iterator[None]:
    """Show only modules matching ``patterns`` to ``compressible_linears`` inside the block.

    Why: a sensitivity scan compresses one block at a time with the unchanged method (diagnose/sensitivity.py);
    restricting the targets here, as ``excluded_modules`` does, lets any method do that without knowing about it.
    """
    token = _ONLY.set(tuple(patterns))
    try:
        yield
    finally:
        _ONLY.reset(token)
