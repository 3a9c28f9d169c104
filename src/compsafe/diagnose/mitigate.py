"""The cheapest safe compression: keep the most safety-sensitive blocks at higher precision until refusals hold.

``compsafe mitigate --recipe int4-rtn-g128 --max-refusal-drop 0.02 [--budget-bits B]``:

1. measure the base model on a *validation* split of the harmful prompts (and shipped passages);
2. rank blocks by the safety damage each does when it alone is compressed (``diagnose.sensitivity``);
3. greedily keep the top-k blocks (``+keep8=`` by default: int8 costs half the bits of bf16 and is close to
   lossless) for k = 0, 1, 2, ... and stop at the first k whose refusal rate is within ``max_drop`` of the base's;
   a candidate whose effective bits per weight would exceed ``budget_bits`` is never evaluated or returned;
4. confirm the chosen recipe on the *held-out* split with generated-and-judged refusals, next to the base and the
   unmitigated recipe, so the tolerance is not only met on the items the search tuned on.

Effective bits are predicted from the unmitigated report plus the kept layers' shapes (``KeepBits``), exactly as
``CompressionReport.effective_bits_per_weight`` counts them (tested), so the budget is checked before a model is
touched. Every evaluated candidate is a point of the size / refusal / perplexity trade-off; the non-dominated
ones are the Pareto front the report prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from compsafe.compress import CalibrationSet, CompressionReport, WeightSnapshot, applied, parse_recipe
from compsafe.compress.targets import module_matches, weight_view
from compsafe.config import DEFAULT_JUDGE
from compsafe.diagnose.signals import SignalProbe, Signals, variant_state
from compsafe.errors import RecipeError

KEEP_MODES = ("keep8", "keep")


@dataclass
class Evaluation:
    """What one candidate scored on the search split: the rate the tolerance is checked on, and context."""

    refusal_rate: float
    mean_margin: float | None = None
    perplexity: float | None = None


@dataclass
class Candidate:
    kept: tuple[str, ...]
    recipe: str
    bits: float
    evaluation: Evaluation

    def to_dict(self) -> dict[str, Any]:
        return {"kept": list(self.kept), "recipe": self.recipe, "bits": self.bits, **asdict(self.evaluation)}

    def point(self) -> dict[str, Any]:
        """This candidate on the size / refusal / perplexity plane (``pareto_front``)."""
        e = self.evaluation
        return {"recipe": self.recipe, "bits": self.bits, "refusal_rate": e.refusal_rate, "perplexity": e.perplexity}


@dataclass
class SearchResult:
    chosen: Candidate | None
    met_tolerance: bool
    stop_reason: str  # "tolerance", "budget" (next keep would exceed it) or "exhausted" (every block kept)
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "met_tolerance": self.met_tolerance,
            "stop_reason": self.stop_reason,
            "candidates": [c.to_dict() for c in self.candidates],
        }


def keep_recipe(recipe: str, kept: Sequence[str], mode: str = "keep8") -> str:
    """``recipe`` with ``kept`` module patterns protected (``+keep8=`` or ``+keep=``); the plain recipe if none."""
    if mode not in KEEP_MODES:
        raise RecipeError(f"keep mode must be one of {KEEP_MODES}, not {mode!r}")
    return f"{recipe}+{mode}={','.join(kept)}" if kept else recipe


def greedy_keep_search(
    order: Sequence[str],
    evaluate: Callable[[tuple[str, ...]], Evaluation],
    bits_of: Callable[[tuple[str, ...]], float],
    recipe_of: Callable[[tuple[str, ...]], str],
    *,
    base_rate: float,
    max_drop: float,
    budget_bits: float | None = None,
) -> SearchResult:
    """Keep ``order[:k]`` for k = 0, 1, ... until ``base_rate - refusal_rate <= max_drop``.

    Stops before evaluating a candidate over ``budget_bits`` (bits only grow with k, so none later fits either).
    When the tolerance is never met, the best evaluated candidate (highest refusal rate, then fewest bits) is
    returned with ``met_tolerance=False``: the caller reports that the budget, not the search, is the limit.
    """
    candidates: list[Candidate] = []
    stop = "exhausted"
    for k in range(len(order) + 1):
        kept = tuple(order[:k])
        bits = bits_of(kept)
        if budget_bits is not None and bits > budget_bits + 1e-9:
            stop = "budget"
            break
        candidate = Candidate(kept, recipe_of(kept), bits, evaluate(kept))
        candidates.append(candidate)
        if base_rate - candidate.evaluation.refusal_rate <= max_drop + 1e-12:
            return SearchResult(candidate, True, "tolerance", candidates)
    best = max(candidates, key=lambda c: (c.evaluation.refusal_rate, -c.bits), default=None)
    return SearchResult(best, False, stop, candidates)


def pareto_front(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points not dominated in (fewer ``bits``, higher ``refusal_rate``, lower ``perplexity``), by bits.

    A point with a missing perplexity is compared on bits and refusal rate only.
    """

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        keys = [("bits", -1), ("refusal_rate", 1)]
        if a.get("perplexity") is not None and b.get("perplexity") is not None:
            keys.append(("perplexity", -1))
        no_worse = all(sign * a[k] >= sign * b[k] for k, sign in keys)
        better = any(sign * a[k] > sign * b[k] for k, sign in keys)
        return no_worse and better

    front = [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
    return sorted(front, key=lambda p: (p["bits"], -p["refusal_rate"]))


class KeepBits:
    """Predicts the effective bits per weight of ``recipe+keep[8]=patterns`` from the unmitigated report.

    Why predict: the budget must hold before a (possibly calibrated, slow) candidate is built. The prediction
    uses the same accounting as ``apply_protected``: kept layers at int8 RTN's bits (``keep8``) or at
    ``dense_bits`` (``keep``; 16 for a bf16 checkpoint even when the scan runs in float32), every other target at
    the bits the inner method reported for it.
    """

    def __init__(self, model: nn.Module, report: CompressionReport, mode: str = "keep8", dense_bits: int = 16) -> None:
        from compsafe.compress.rtn import RTNConfig

        self.mode = mode
        self.dense_bits = dense_bits
        self.int8 = RTNConfig(bits=8)
        modules = dict(model.named_modules())
        self.layers = [(layer.name, layer.numel, layer.bits_per_weight) for layer in report.layers]
        self.in_features = {layer.name: int(weight_view(modules[layer.name]).shape[1]) for layer in report.layers}

    def __call__(self, kept: tuple[str, ...]) -> float:
        total, bits = 0, 0.0
        for name, numel, layer_bits in self.layers:
            if any(module_matches(name, p) for p in kept):
                layer_bits = (
                    self.int8.bits_per_weight(self.in_features[name]) if self.mode == "keep8" else self.dense_bits
                )
            total += numel
            bits += numel * layer_bits
        return bits / total if total else 0.0


@dataclass
class VariantMeter:
    """Measures recipe variants of one model on one probe: from the store when finished, else built with
    ``compress.applied`` (one shared snapshot of the base) and measured."""

    model: nn.Module
    probe: SignalProbe
    calibration: CalibrationSet | None
    snapshot: WeightSnapshot | None = None

    def __call__(self, recipe: str, *, judged: bool) -> Signals:
        state = variant_state(recipe, self.calibration)
        signals = self.probe.cached(state, judged=judged)
        if signals is not None:
            return signals
        self.snapshot = self.snapshot or WeightSnapshot(self.model)
        with applied(self.model, recipe, self.calibration, snapshot=self.snapshot):
            return self.probe.measure(judged=judged, state=state)


def split_probes(
    handle: Any,
    prompt_limit: int | None,
    passage_limit: int,
    max_new_tokens: int,
    store: Any = None,
    judge: str = DEFAULT_JUDGE,
) -> tuple[SignalProbe, SignalProbe]:
    """Probes on the validation and held-out halves of the harmful prompts (same passages, same store)."""
    from compsafe.diagnose.signals import shipped_passages, split_harmful
    from compsafe.integrity import model_identity
    from compsafe.models.backend import HFBackend

    validation, heldout = split_harmful()
    if prompt_limit:
        validation, heldout = validation[:prompt_limit], heldout[:prompt_limit]
    passages = shipped_passages(passage_limit)
    backend = HFBackend(handle, 16)
    identity = model_identity(handle) if store is not None else None
    return tuple(  # type: ignore[return-value]
        SignalProbe(backend, prompts, passages, judge, max_new_tokens, store=store, identity=identity)
        for prompts in (validation, heldout)
    )


def _check_options(recipe: str, signal: str, keep_mode: str, max_drop: float, budget_bits: float | None) -> None:
    """Every option checked before the model is probed (a negative tolerance would search every block in vain)."""
    from compsafe.errors import ConfigError

    if not (isinstance(max_drop, int | float) and 0 <= max_drop <= 1):  # NaN fails both comparisons
        raise ConfigError(f"--max-refusal-drop {max_drop}: use a fraction between 0 and 1, e.g. 0.02")
    if budget_bits is not None and not (isinstance(budget_bits, int | float) and 0 < budget_bits < float("inf")):
        raise ConfigError(f"--budget-bits {budget_bits}: use a positive number of bits per weight, e.g. 5")
    if "+keep" in recipe:
        raise RecipeError(f"{recipe!r}: pass the plain recipe; mitigate chooses the +keep clause itself")
    if signal not in ("fast", "judged"):
        raise RecipeError(f"--signal must be fast or judged, not {signal!r}")
    if keep_mode not in KEEP_MODES:
        raise RecipeError(f"--keep-mode must be one of {KEEP_MODES}, not {keep_mode!r}")


def _check_budget(budget_bits: float | None, unmitigated_bits: float, recipe: str) -> None:
    if budget_bits is not None and unmitigated_bits > budget_bits + 1e-9:
        from compsafe.errors import ConfigError

        raise ConfigError(
            f"--budget-bits {budget_bits} is below what {recipe} alone takes ({unmitigated_bits:.3f} bits/weight): "
            "raise the budget or pick a smaller recipe"
        )


def _confirm(
    measure: VariantMeter, held_probe: SignalProbe, search: SearchResult, recipe: str, bits_of: KeepBits
) -> dict[str, Any]:
    """Base, unmitigated and mitigated recipes on the held-out split, generated and judged."""
    confirm: dict[str, Any] = {"base": held_probe.measure(judged=True).to_dict()}
    recipes = {"unmitigated": recipe}
    if search.chosen is not None and search.chosen.kept:
        recipes["mitigated"] = search.chosen.recipe
    for label, candidate_recipe in recipes.items():
        state = variant_state(candidate_recipe, measure.calibration)
        with applied(measure.model, candidate_recipe, measure.calibration, snapshot=measure.snapshot) as variant:
            measured = held_probe.measure(judged=True, state=state).to_dict()
        kept = search.chosen.kept if label == "mitigated" and search.chosen else ()
        measured.update(recipe=candidate_recipe, bits=bits_of(kept), packed_size_bytes=variant.report.packed_size_bytes)
        confirm[label] = measured
    if "mitigated" not in confirm:
        confirm["mitigated"] = confirm["unmitigated"]
    return confirm


def mitigate(
    handle: Any,
    recipe: str,
    *,
    max_drop: float = 0.02,
    budget_bits: float | None = None,
    keep_mode: str = "keep8",
    signal: str = "fast",
    calibration: CalibrationSet | None = None,
    prompt_limit: int | None = None,
    passage_limit: int = 4,
    max_new_tokens: int = 32,
    dense_bits: int = 16,
    block_order: Sequence[str] | None = None,
    judge: str = DEFAULT_JUDGE,
    store: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the whole search on a loaded model (module docstring); returns a JSON-ready result. ``signal``: "fast"
    checks the tolerance on the share of validation prompts with a positive refusal margin, "judged" on the
    rate ``judge`` gives generated responses (slower, exact); the held-out confirmation is always judged.
    ``block_order``: block patterns, most damaging first, from a ``compsafe sensitivity`` scan of the same recipe
    (``ranking_from_sensitivity``); skips the scan. ``store``: per-item records of every measurement (resumes)."""
    from compsafe.diagnose.sensitivity import block_sensitivity, damaging_blocks
    _check_options(recipe, signal, keep_mode, max_drop, budget_bits)
    say, started, config = progress or (lambda message: None), time.time(), parse_recipe(recipe)
    model, judged = handle.model, signal == "judged"
    val_probe, held_probe = split_probes(handle, prompt_limit, passage_limit, max_new_tokens, store, judge)
    validation, heldout, passages = val_probe.prompts, held_probe.prompts, val_probe.passages
    measure = VariantMeter(model, val_probe, calibration)

    def rate(signals: Signals) -> float:
        return signals.judged_refusal_rate if judged else signals.fast_refusal_rate  # type: ignore[return-value]

    def recipe_of(kept: tuple[str, ...]) -> str:
        return keep_recipe(config.recipe, kept, keep_mode)

    say(f"base on the validation split ({len(validation)} prompts)")
    base_val = val_probe.measure(judged=judged)
    measure.snapshot = WeightSnapshot(model)
    with applied(model, config, calibration, snapshot=measure.snapshot) as full:
        bits_of = KeepBits(model, full.report, keep_mode, dense_bits)
    _check_budget(budget_bits, bits_of(()), config.recipe)  # no candidate could fit: say so before the scan
    scan = None
    if block_order is None:
        say(f"ranking blocks by the safety damage of {config.recipe} alone in each (validation split)")
        scan = block_sensitivity(model, config.recipe, val_probe, calibration, base=base_val, progress=say)
    order = list(block_order) if block_order is not None else damaging_blocks(scan)  # type: ignore[arg-type]

    def evaluate(kept: tuple[str, ...]) -> Evaluation:
        signals = measure(recipe_of(kept), judged=judged)
        bits = bits_of(kept)
        say(f"keep {len(kept)} block(s): refusal {rate(signals):.3f} (base {rate(base_val):.3f}), bits {bits:.3f}")
        return Evaluation(rate(signals), signals.mean_margin, signals.perplexity)

    search = greedy_keep_search(
        order, evaluate, bits_of, recipe_of, base_rate=rate(base_val), max_drop=max_drop, budget_bits=budget_bits
    )
    say(f"confirming on the held-out split ({len(heldout)} prompts, judged)")
    confirm = _confirm(measure, held_probe, search, config.recipe, bits_of)
    base_point = Candidate((), "base", float(dense_bits), Evaluation(rate(base_val), 0.0, base_val.perplexity))
    return {
        "model": handle.source,
        "recipe": config.recipe,
        "signal": signal,
        "judge": held_probe.judge_identity(),
        "max_refusal_drop": max_drop,
        "budget_bits": budget_bits,
        "keep_mode": keep_mode,
        "splits": {"validation": len(validation), "heldout": len(heldout), "passages": len(passages)},
        "base_validation": base_val.to_dict(),
        "block_order": order,
        "block_scan": scan.to_dict() if scan is not None else "order given (compsafe sensitivity --out ...)",
        "search": search.to_dict(),
        "recipe_out": search.chosen.recipe if search.chosen else None,
        "effective_bits_per_weight": search.chosen.bits if search.chosen else None,
        "heldout": confirm,
        "pareto_front": pareto_front([c.point() for c in [base_point, *search.candidates]]),
        "seconds": time.time() - started,
    }


def ranking_from_sensitivity(data: dict[str, Any], recipe: str) -> list[str]:
    """Block patterns that lost refusal margin, most damaging first, from a ``compsafe sensitivity`` JSON result.

    Refuses a result measured for another recipe: the blocks that matter for int4 are not those for 2:4 pruning.
    """
    canonical = parse_recipe(recipe).recipe
    if data.get("recipe") != canonical:
        raise RecipeError(f"the sensitivity result was measured for {data.get('recipe')!r}, not {canonical!r}")
    rows = {row["block"]: row for row in data["blocks"]["blocks"]}
    return [rows[b]["pattern"] for b in data["blocks"]["ranked_by_safety_damage"] if rows[b]["safety_damage"] > 0]
