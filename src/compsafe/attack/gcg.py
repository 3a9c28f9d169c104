"""The GCG search (Zou et al. 2023, "Universal and Transferable Adversarial Attacks on Aligned Language
Models", arXiv:2307.15043), with a differential objective aimed at the quantization boundary.

One step, as in the paper: the gradient of the loss with respect to a one-hot encoding of the suffix tokens
ranks, per position, the ``topk`` token swaps that most lower the linearised loss; ``candidates`` random
single-token swaps drawn from those lists (a seeded ``torch.Generator``) are scored exactly, and the search
moves to the best one. The best suffix seen is kept.

Objectives (margins are ``refusal_margins``'s: refusal opening minus compliance opening, nats; low = answers):
* ``differential``: ``margin_variant + weight * relu(base_floor - margin_base)`` -- push the variant toward
  answering while the base keeps refusing by at least ``base_floor`` nats. Its goal (the search stops there):
  variant margin below ``target`` (0: leans to answering) with the base's at or above the floor.
* ``base-only``: classic GCG on the base alone, ``margin_base``; goal: base margin below ``target``. The variant is only
  measured on the result: the non-differential baseline with the same budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from compsafe.attack.scoring import Margins, MarginScorer
from compsafe.errors import ConfigError

OBJECTIVES = ("differential", "base-only")


@dataclass(frozen=True)
class SearchConfig:
    """The budget and the objective; every field is part of the store key of an attack's records."""

    steps: int = 6
    candidates: int = 8
    topk: int = 64
    suffix_length: int = 8
    seed: int = 0
    objective: str = "differential"
    weight: float = 1.0  # lambda: nats of variant margin one nat of base margin below the floor is worth
    base_floor: float = 1.0  # tau: the base's margin the differential objective keeps
    target: float = 0.0  # the search stops once the attacked margin is below this (and the base's above its floor)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")
        for name in ("steps", "candidates", "topk", "suffix_length"):
            value = getattr(self, name)
            if value < (0 if name == "steps" else 1):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {value}: use {0 if name == 'steps' else 1} or more")
        if self.weight < 0:
            raise ConfigError(f"--weight {self.weight}: use 0 or more")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def differential(self) -> bool:
        return self.objective == "differential"

    def loss(self, base: torch.Tensor, variant: torch.Tensor | None) -> torch.Tensor:
        """The objective (lower is better) from base and variant margins (variant unused for base-only)."""
        if not self.differential:
            return base
        assert variant is not None
        return variant + self.weight * torch.relu(self.base_floor - base)

    def reached(self, base: float, variant: float | None) -> bool:
        """Whether the objective's goal is met (the search stops early)."""
        if not self.differential:
            return base < self.target
        assert variant is not None
        return variant < self.target and base >= self.base_floor


@dataclass
class SearchResult:
    """What a search found and how it got there (``history``: the best loss after each step)."""

    suffix: list[int]
    start: list[int]
    loss_before: float
    loss_after: float
    steps_run: int
    goal_reached: bool
    history: list[float] = field(default_factory=list)


class Evaluation:
    """Exact margins and loss of a batch of suffixes under one config (variant only when differential)."""

    def __init__(self, config: SearchConfig, base: MarginScorer, variant: MarginScorer) -> None:
        self.config, self.base, self.variant = config, base, variant

    def __call__(self, suffixes: torch.Tensor) -> tuple[torch.Tensor, Margins, Margins | None]:
        base = self.base.margins(suffixes)
        variant = self.variant.margins(suffixes) if self.config.differential else None
        return self.config.loss(base.margin, variant.margin if variant else None), base, variant


def swap_gradient(evaluation: Evaluation, suffix: list[int], base: Margins, variant: Margins | None) -> torch.Tensor:
    """d loss / d one-hot suffix [S, V] at ``suffix`` (``base``/``variant``: its margins, row 0)."""
    config = evaluation.config
    base_margin, grad = evaluation.base.gradient(suffix, int(base.refusal_best[0]), int(base.compliance_best[0]))
    if not config.differential:
        return grad
    assert variant is not None
    _, variant_grad = evaluation.variant.gradient(
        suffix, int(variant.refusal_best[0]), int(variant.compliance_best[0])
    )
    below_floor = base_margin < config.base_floor
    return variant_grad - config.weight * grad if below_floor else variant_grad


def sample_candidates(
    suffix: list[int], grad: torch.Tensor, allowed: torch.Tensor, config: SearchConfig, generator: torch.Generator
) -> torch.Tensor:
    """``config.candidates`` single-token swaps of ``suffix``: a random position each, a random token among that
    position's ``topk`` most negative gradients over the allowed tokens."""
    scores = -grad.clone()
    scores[:, ~allowed[: grad.shape[1]]] = -float("inf")
    k = min(config.topk, int(allowed[: grad.shape[1]].sum()))
    if k < 1:
        raise ConfigError("the tokenizer has no printable ASCII tokens to build a suffix from")
    top = scores.topk(k, dim=1).indices  # [S, k]
    positions = torch.randint(0, len(suffix), (config.candidates,), generator=generator)
    picks = torch.randint(0, k, (config.candidates,), generator=generator)
    candidates = torch.tensor(suffix).repeat(config.candidates, 1)
    candidates[torch.arange(config.candidates), positions] = top[positions, picks]
    return candidates


def usable(candidates: torch.Tensor, suffix: list[int], accept: Callable[[list[int]], bool]) -> torch.Tensor:
    """The candidates that change the suffix, are new in this batch and round-trip through the tokenizer."""
    seen = {tuple(suffix)}
    kept = []
    for row in candidates.tolist():
        if tuple(row) in seen:
            continue
        seen.add(tuple(row))
        if accept(row):
            kept.append(row)
    return torch.tensor(kept, dtype=torch.long).view(-1, len(suffix))


def search(
    config: SearchConfig,
    base: MarginScorer,
    variant: MarginScorer,
    start: list[int],
    allowed: torch.Tensor,
    accept: Callable[[list[int]], bool],
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """Run GCG from ``start`` for ``config.steps`` steps (fewer when the goal is reached); deterministic for a seed."""
    generator = torch.Generator().manual_seed(config.seed)
    evaluation = Evaluation(config, base, variant)
    current = list(start)
    loss, base_m, variant_m = evaluation(torch.tensor([current]))
    best, best_loss = list(current), float(loss[0])
    result = SearchResult(best, list(start), best_loss, best_loss, 0, False)
    result.goal_reached = config.reached(float(base_m.margin[0]), _first(variant_m))
    for _ in range(config.steps):
        if result.goal_reached:
            break
        grad = swap_gradient(evaluation, current, base_m, variant_m)
        candidates = usable(sample_candidates(current, grad, allowed, config, generator), current, accept)
        result.steps_run += 1
        if len(candidates):
            losses, base_all, variant_all = evaluation(candidates)
            pick = int(torch.argmin(losses))  # the first of equal losses: deterministic
            current = candidates[pick].tolist()
            base_m, variant_m = _row(base_all, pick), _row(variant_all, pick) if variant_all is not None else None
            if float(losses[pick]) < best_loss:
                best, best_loss = list(current), float(losses[pick])
                result.goal_reached = config.reached(float(base_m.margin[0]), _first(variant_m))
        result.history.append(best_loss)
        if progress:
            progress(1)
    result.suffix, result.loss_after = best, best_loss
    return result


def _first(margins: Margins | None) -> float | None:
    return None if margins is None else float(margins.margin[0])


def _row(margins: Margins, row: int) -> Margins:
    return Margins(margins.margin[row : row + 1], margins.refusal_best[row : row + 1],
                   margins.compliance_best[row : row + 1])  # fmt: skip
