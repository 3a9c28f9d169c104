"""Apply a recipe, measure, restore: the one way code outside compress/ builds a variant in place.

``with applied(model, recipe, calibration) as variant:`` compresses the model in place, says whether any
weight came out NaN/inf, and on exit (also on an exception) rewrites the base weights the recipe changed
(``compress.snapshot``) and checks their digests, so a measurement never leaves a half-compressed model
behind. A caller that builds many variants of one model takes the ``WeightSnapshot`` once and passes it in,
with the model's weight files so nothing is copied (without them it holds a CPU copy of every parameter).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cached_property

import torch

from compsafe.compress.base import CompressionConfig, CompressionReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.registry import apply_recipe, parse_recipe
from compsafe.compress.snapshot import WeightSnapshot
from compsafe.integrity import state_digest


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of parameters holding NaN or inf (a compression method diverged). Checked in slices of 1M values:
    ``isfinite`` on a whole bf16 embedding upcasts it, a transient of 4.5x its size at the run's memory peak."""
    def finite(p: torch.Tensor) -> bool:
        flat = p.detach().reshape(-1)
        return all(bool(torch.isfinite(part).all()) for part in flat.split(1 << 20))

    return [name for name, p in model.named_parameters() if p.is_floating_point() and not finite(p)]


@dataclass
class AppliedVariant:
    """What ``applied`` yields: the method's accounting and the compressed model's health."""

    model: torch.nn.Module
    config: CompressionConfig
    report: CompressionReport
    nonfinite: list[str]

    @property
    def broken(self) -> str | None:
        """One-line reason when the compressed weights hold NaN/inf (measuring such a model is noise)."""
        if not self.nonfinite:
            return None
        return f"{len(self.nonfinite)} weight tensor(s) hold NaN/inf after compression, e.g. {self.nonfinite[0]}"

    @cached_property
    def weights_digest(self) -> str:
        """Digest of the compressed in-memory state (computed on first use)."""
        return state_digest(self.model)


@contextmanager
def applied(
    model: torch.nn.Module,
    recipe: str | CompressionConfig,
    calibration: CalibrationSet | None = None,
    *,
    snapshot: WeightSnapshot | None = None,
    only: Sequence[str] | None = None,
) -> Iterator[AppliedVariant]:
    """Compress ``model`` in place with ``recipe`` for the ``with`` body, then restore and check the base.

    ``only``: module patterns (``compress.targets`` grammar) that alone are compressed, e.g. one block.
    """
    from compsafe.compress.targets import only_modules

    config = parse_recipe(recipe) if isinstance(recipe, str) else recipe
    snapshot = snapshot or WeightSnapshot(model)
    try:
        with only_modules(list(only)) if only is not None else nullcontext():
            report = apply_recipe(model, config, calibration)
        yield AppliedVariant(model, config, report, nonfinite_parameters(model))
    finally:
        snapshot.restore(model)
