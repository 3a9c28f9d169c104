"""Which variants of a run form a sweep: the same recipe at two or more values of one number (``mag-10``,
``mag-30``, ``mag-50``), the inverse of ``compress.ranges``.

Why: a report can show how a measure moves as the compression rate grows only if it knows which variants lie
on one axis. Any recipe whose labels differ in exactly one number forms a family (``mag-{rate}``,
``wanda-{rate}``, ``mag-{rate}-global``, ``int{rate}-g128``); for pruning recipes (their config has a
``sparsity``) the uncompressed base is the family's rate 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from compsafe.errors import CompsafeError

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
RATE = "{rate}"


@dataclass(frozen=True)
class Sweep:
    """Variants of one recipe family ordered by their number; ``base_rate`` is where the base sits (or None)."""

    family: str  # the recipe with the swept number as "{rate}": "mag-{rate}"
    points: tuple[tuple[float, str], ...]  # (rate, variant label), increasing rate
    base_rate: float | None = None

    @property
    def labels(self) -> list[str]:
        return [label for _, label in self.points]


def _is_pruning(label: str) -> bool:
    """Whether the recipe prunes a share of weights (its config has a ``sparsity``): then the base is rate 0."""
    from compsafe.compress import parse_recipe

    try:
        config = parse_recipe(label)
    except CompsafeError:
        return False
    return "sparsity" in getattr(config, "__dataclass_fields__", {})


def find_sweeps(labels: Sequence[str]) -> list[Sweep]:
    """Every family of two or more labels that differ in one number, in order of first appearance."""
    families: dict[str, dict[float, str]] = {}
    for label in labels:
        for match in _NUMBER.finditer(label):
            family = label[: match.start()] + RATE + label[match.end() :]
            families.setdefault(family, {}).setdefault(float(match.group()), label)
    sweeps = []
    for family, points in families.items():
        if len(points) < 2:
            continue
        ordered = tuple(sorted(points.items()))
        base_rate = 0.0 if all(_is_pruning(label) for _, label in ordered) and ordered[0][0] > 0 else None
        sweeps.append(Sweep(family, ordered, base_rate))
    return sweeps
