"""Protected layers / mixed precision: any recipe can keep named modules at higher precision.

Grammar (suffix to any recipe, at most one clause):

    <recipe>+keep=<pattern>[,<pattern>...]     kept modules stay exactly as they were (full precision)
    <recipe>+keep8=<pattern>[,<pattern>...]    kept modules get int8 RTN (per output channel, symmetric)

e.g. ``int4-gptq-g128+keep=layers.0,layers.29``, ``mag-50+keep=self_attn``, ``int4-g128+keep8=mlp.down_proj``.
How a pattern selects modules (dot-separated components, globs, ranges, ``re:``) is documented at
``compress.targets.module_matches``; a pattern that matches no linear layer of the model is a ``RecipeError``.

Why a wrapper and not a per-method option: protection is applied by hiding the kept modules from
``compressible_linears`` (``targets.excluded_modules``) while the inner method runs, so every method --
present or future, calibrated or not -- respects it without code changes, and a calibrated method still sees
the kept layers' real outputs in its block-by-block pass. Practitioners keep the first/last blocks or
attention in higher precision (llama.cpp's k-quant mixes, "keep the sensitive layers" recipes); this lets
compsafe measure what that buys for safety.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.accounting import dtype_bits, relative_error, storage_key, zero_fraction
from compsafe.compress.base import CompressionConfig, CompressionReport, LayerReport
from compsafe.compress.registry import METHODS
from compsafe.compress.targets import compressible_linears, excluded_modules, module_matches, weight_view
from compsafe.errors import RecipeError

KEEP8_RECIPE = "int8-rtn"  # what +keep8 applies to kept modules
_CLAUSE = re.compile(r"keep(?P<bits>8)?=(?P<patterns>.*)")


@dataclass(frozen=True)
class ProtectedConfig(CompressionConfig):
    """``inner`` applied to every target except the modules matching ``keep``; those stay as they are
    (``keep_recipe=None``) or get ``keep_recipe`` (int8 RTN for ``+keep8``)."""

    method: ClassVar[str] = "protected"

    inner: CompressionConfig
    keep: tuple[str, ...]
    keep_recipe: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.inner, ProtectedConfig):
            raise RecipeError("only one +keep clause per recipe")
        if not self.keep or any(not p for p in self.keep):
            raise RecipeError(f"{self.recipe}: +keep needs module patterns, e.g. +keep=layers.0,lm_head")
        if any("+" in p or "," in p for p in self.keep):
            raise RecipeError(f"keep patterns cannot contain '+' or ',': {list(self.keep)}")
        inner_method = METHODS.get(self.inner.method) if self.inner.method in METHODS.names() else None
        if not getattr(inner_method, "supports_keep", True):
            raise RecipeError(
                f"{self.inner.recipe} cannot take +keep: it changes the whole model's storage or shape, so no module "
                "can be kept as it was (use +keep with a quantization or pruning recipe)"
            )
        if self.keep_recipe not in (None, KEEP8_RECIPE):
            raise RecipeError(f"kept modules can stay as they are (+keep) or get int8 (+keep8), not {self.keep_recipe}")
        for pattern in self.keep:
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise RecipeError(f"keep pattern {pattern!r} is not a valid regular expression: {exc}") from exc

    @property
    def recipe(self) -> str:
        clause = "keep8" if self.keep_recipe == KEEP8_RECIPE else "keep"
        return f"{self.inner.recipe}+{clause}={','.join(self.keep)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.inner.method,
            "recipe": self.recipe,
            "inner": self.inner.to_dict(),
            "keep": list(self.keep),
            "keep_recipe": self.keep_recipe,
        }


def parse_protected(recipe: str, parse_inner: Callable[[str], CompressionConfig]) -> ProtectedConfig:
    """Parse ``<inner>+keep[8]=p1,p2``; ``parse_inner`` parses the inner recipe (``registry.parse_recipe``)."""
    inner_text, _, rest = recipe.strip().partition("+keep")
    match = _CLAUSE.fullmatch("keep" + rest.strip())
    if match is None:
        raise RecipeError(
            f"cannot read the clause {'+keep' + rest!r} in {recipe!r}: use +keep=<modules> or +keep8=<modules>, "
            "e.g. int4-g128+keep=layers.0,layers.29"
        )
    if "+keep" in match["patterns"]:
        raise RecipeError(f"{recipe!r}: only one +keep clause per recipe")
    patterns = tuple(dict.fromkeys(p.strip() for p in match["patterns"].split(",") if p.strip()))
    if not patterns:
        raise RecipeError(f"{recipe!r}: +keep needs module patterns, e.g. +keep=layers.0,lm_head")
    return ProtectedConfig(
        inner=parse_inner(inner_text), keep=patterns, keep_recipe=KEEP8_RECIPE if match["bits"] else None
    )


def kept_modules(model: nn.Module, config: ProtectedConfig) -> list[tuple[str, nn.Module]]:
    """The linear layers (head included) matched by ``config.keep``; ``RecipeError`` naming any pattern that
    matches none, so a typo never silently protects nothing."""
    candidates = compressible_linears(model, include_lm_head=True)
    for pattern in config.keep:
        if not any(module_matches(name, pattern) for name, _ in candidates):
            sample = ", ".join(name for name, _ in candidates[:3])
            raise RecipeError(
                f"keep pattern {pattern!r} matches no linear layer of this model (names look like {sample}); "
                "patterns match whole dot-separated parts, e.g. layers.0, self_attn, mlp.down_proj, lm_head"
            )
    return [(name, m) for name, m in candidates if any(module_matches(name, p) for p in config.keep)]


def check_protected(model: nn.Module, config: CompressionConfig) -> None:
    """Fail before any work when a ``+keep`` pattern matches nothing (no-op for other configs)."""
    if isinstance(config, ProtectedConfig):
        kept_modules(model, config)


@torch.no_grad()
def apply_protected(
    model: nn.Module, config: ProtectedConfig, apply_inner: Callable[[nn.Module, CompressionConfig], CompressionReport]
) -> CompressionReport:
    """Run ``apply_inner(model, config.inner)`` with the kept modules hidden, then account for them.

    Kept layers are compared with a snapshot taken before the inner method ran, so their reported error is
    what really happened to them (0 for +keep, the int8 error for +keep8). A kept module the inner recipe would
    not have compressed anyway (the head without ``-head``) is not a target under +keep and is not counted in
    the effective bits, so ``int4-g128+keep=lm_head`` reports exactly what ``int4-g128`` does.
    """
    kept = kept_modules(model, config)
    inner_targets = {
        name for name, _ in compressible_linears(model, include_lm_head=getattr(config.inner, "include_lm_head", False))
    }
    if config.keep_recipe is None:  # the head is kept by default: keeping it again changes nothing to account for
        untargeted = [name for name, _ in kept if name not in inner_targets]
        kept = [(name, m) for name, m in kept if name in inner_targets]
    else:
        untargeted = []
    snapshots = {name: weight_view(m).to(torch.float32, copy=True) for name, m in kept}
    with excluded_modules(config.keep):
        report = apply_inner(model, config.inner)
    int8 = None
    if config.keep_recipe is not None:
        from compsafe.compress.rtn import RTNConfig, quantize_with_grid

        int8 = RTNConfig(bits=8)
    kept_reports: list[LayerReport] = []
    seen: set[tuple[int, int, torch.dtype]] = set()
    for name, module in kept:
        view = weight_view(module)
        out_features, in_features = view.shape
        if int8 is not None:
            deq, grid = quantize_with_grid(view.to(torch.float32), int8)
            view.copy_(deq.to(view.dtype))
            report.grids[name] = grid.on_cpu()
            key = storage_key(module.weight)
            if key not in seen:  # packed size: this layer stored as int8 codes + scales, not at its dtype
                seen.add(key)
                report.packed_size_bytes += int8.packed_bytes(out_features, in_features) - (
                    view.numel() * view.element_size()
                )
        kept_reports.append(
            LayerReport(
                name=name,
                numel=view.numel(),
                bits_per_weight=int8.bits_per_weight(in_features) if int8 else float(dtype_bits(view.dtype)),
                sparsity=zero_fraction(view),
                relative_error=relative_error(snapshots[name], view),
            )
        )
    report.recipe = config.recipe
    report.kept_layers = kept_reports
    report.extra["keep"] = {"patterns": list(config.keep), "recipe": config.keep_recipe or "unchanged"}
    if untargeted:
        report.extra["keep"]["not_targeted_anyway"] = untargeted
    return report
