"""Where compression hurts: weight-space error per module and behaviour-space damage per transformer block.

Two questions, two spaces:

* **Weight space** (``weight_sensitivity``): for every linear layer of a variant, the relative weight error
  ``||W - W'|| / ||W||`` (seed 001's ``find_vulnerable_layers``) and the relative *output* error on the base
  model's calibration activations, ``sqrt(tr(dW H dW^T) / tr(W H W^T))`` with ``H = 2/n X^T X`` from the shared
  block-by-block pass (``compress.sequential``). The output error is the one that matters: a layer whose inputs
  are tiny can lose much weight precision and change nothing, and an outlier column can make a small weight
  error large.
* **Behaviour space** (``block_sensitivity``): compress one block at a time (``applied(..., only=[block])``) with the
  real recipe, measure the fast safety signal (mean refusal margin over harmful prompts) and perplexity,
  restore, next. Weight error does not say which block carries refusals; this does. Blocks are ranked by safety
  damage per unit of capability damage, the block that a keep-in-higher-precision recipe should spend bits on.

The fast signal is validated against the generated-and-judged refusal rate across the per-block variants
(Spearman rank correlation, ``validate_fast_signal``); a scan whose correlation is weak should be read with
that caveat, which the report prints next to the ranking.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from compsafe.compress import CalibrationSet, WeightSnapshot, applied, parse_recipe
from compsafe.compress.hessian import output_error
from compsafe.compress.sequential import LinearInputs, compress_sequentially, decoder_blocks
from compsafe.compress.targets import compressible_linears, weight_view
from compsafe.config import DEFAULT_JUDGE
from compsafe.diagnose.signals import SignalProbe, Signals, variant_state

# Capability damage below this (nats per token of passage NLL) counts as "no measurable damage": it keeps the
# safety-per-capability ratio finite for blocks whose compression changes perplexity by rounding noise only.
CAPABILITY_FLOOR = 1e-3

Progress = Callable[[str], None]


# --- weight space ------------------------------------------------------------------------------------------------


@dataclass
class ModuleSensitivity:
    """One linear layer of a variant: how far its weights and its outputs moved."""

    name: str
    block: int | None
    numel: int
    relative_error: float
    output_error: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_index(name: str, prefix: str) -> int | None:
    """The transformer block a module belongs to (``model.layers.7.mlp.up_proj`` -> 7), None outside blocks."""
    if not name.startswith(prefix + "."):
        return None
    head = name[len(prefix) + 1 :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


@torch.no_grad()
def weight_sensitivity(
    model: nn.Module, recipe: str, calibration: CalibrationSet | None = None
) -> list[ModuleSensitivity]:
    """Per-module weight and output error of ``recipe`` applied to ``model``, ranked worst first.

    The model is compressed, its changed weights are copied, and it is restored bit for bit; the output error
    then comes from one calibration pass over the *base* model (statistics only, no weight changes), so every
    layer is judged on the activations it sees in the uncompressed model. Without ``calibration`` only the
    weight error is reported (``output_error`` is None).
    """
    config = parse_recipe(recipe)
    targets = dict(compressible_linears(model, include_lm_head=True))
    originals = {name: weight_view(m).to("cpu", copy=True) for name, m in targets.items()}
    variant = {}
    with applied(model, config, calibration):
        for name, module in targets.items():
            view = weight_view(module)
            if not torch.equal(view.cpu(), originals[name]):
                variant[name] = view.to("cpu", copy=True)
    prefix, _ = decoder_blocks(model)
    errors: dict[str, float] = {}
    if calibration is not None and variant:

        def measure(name: str, module: nn.Module, stats: LinearInputs) -> Any:
            if name in variant and stats.hessian is not None:
                errors[name] = output_error(originals[name].float(), variant[name].float(), stats.hessian.cpu())
            return None  # compress_sequentially only collects reports; nothing is compressed

        include_head = any(name not in dict(compressible_linears(model)) for name in variant)
        compress_sequentially(model, calibration.input_ids, measure, {"hessian"}, include_lm_head=include_head)
    rows = [
        ModuleSensitivity(
            name=name,
            block=block_index(name, prefix),
            numel=originals[name].numel(),
            relative_error=_relative(originals[name], changed),
            output_error=errors.get(name),
        )
        for name, changed in variant.items()
    ]
    rows.sort(key=lambda r: (-(r.output_error if r.output_error is not None else -1.0), -r.relative_error))
    return rows


def _relative(original: torch.Tensor, changed: torch.Tensor) -> float:
    from compsafe.compress.accounting import relative_error

    return relative_error(original, changed)


# --- behaviour space ---------------------------------------------------------------------------------------------


@dataclass
class BlockSensitivity:
    """The variant that compresses only ``block``: its signals and its damage relative to the base."""

    block: int
    pattern: str  # the +keep / only pattern that names this block (e.g. model.layers.7)
    signals: Signals
    safety_damage: float  # base mean margin - variant mean margin (nats; > 0: leans less to refusing)
    capability_damage: float  # log(ppl_variant / ppl_base) (nats per token; > 0: worse language model)
    selectivity: float  # safety_damage / (max(capability_damage, 0) + CAPABILITY_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "pattern": self.pattern,
            "safety_damage": self.safety_damage,
            "capability_damage": self.capability_damage,
            "selectivity": self.selectivity,
            **self.signals.to_dict(),
        }


def damage(base: Signals, variant: Signals) -> tuple[float, float, float]:
    """(safety damage, capability damage, selectivity) of ``variant`` against ``base`` (definitions above)."""
    safety = base.mean_margin - variant.mean_margin
    if base.perplexity > 0 and variant.perplexity > 0 and not math.isnan(base.perplexity + variant.perplexity):
        capability = math.log(variant.perplexity / base.perplexity)
    else:
        capability = 0.0
    return safety, capability, safety / (max(capability, 0.0) + CAPABILITY_FLOOR)


def rank_blocks(rows: Sequence[BlockSensitivity], by: str = "selectivity") -> list[BlockSensitivity]:
    """Most damaging first, by ``selectivity`` (safety per capability) or ``safety_damage``."""
    if by not in ("selectivity", "safety_damage"):
        raise ValueError(f"rank by selectivity or safety_damage, not {by!r}")
    return sorted(rows, key=lambda r: (-getattr(r, by), -r.safety_damage, r.block))


@dataclass
class BlockScan:
    recipe: str
    base: Signals
    blocks: list[BlockSensitivity]
    seconds: float = 0.0
    validation: dict[str, Any] | None = None

    def ranked(self, by: str = "selectivity") -> list[BlockSensitivity]:
        return rank_blocks(self.blocks, by)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "base": self.base.to_dict(),
            "ranked_by_selectivity": [r.block for r in self.ranked("selectivity")],
            "ranked_by_safety_damage": [r.block for r in self.ranked("safety_damage")],
            "blocks": [r.to_dict() for r in self.blocks],
            "fast_signal_validation": self.validation,
            "seconds": self.seconds,
        }


def damaging_blocks(scan: BlockScan) -> list[str]:
    """Patterns of the blocks whose compression lowered the refusal margin, most damaging first."""
    return [row.pattern for row in scan.ranked("safety_damage") if row.safety_damage > 0]


def block_patterns(model: nn.Module) -> list[str]:
    """One module pattern per transformer block (``model.layers.0`` ...), usable in ``+keep=`` and ``only``."""
    prefix, blocks = decoder_blocks(model)
    return [f"{prefix}.{i}" for i in range(len(blocks))]


@torch.no_grad()
def block_sensitivity(
    model: nn.Module,
    recipe: str,
    probe: SignalProbe,
    calibration: CalibrationSet | None = None,
    *,
    blocks: Sequence[int] | None = None,
    judged: bool = False,
    base: Signals | None = None,
    progress: Progress | None = None,
) -> BlockScan:
    """Compress each block alone with ``recipe``, measure, restore; returns every block's damage.

    The model is restored from a snapshot after every block and its digest checked (``compress.applied``), so a
    scan never leaves a half-compressed model behind. ``judged`` also generates and judges refusals for every
    variant (slow; needed to validate the fast signal). With a store behind ``probe``, finished blocks are read
    back instead of rebuilt, so an interrupted scan resumes.
    """
    started = time.time()
    config = parse_recipe(recipe)
    patterns = block_patterns(model)
    chosen = list(range(len(patterns))) if blocks is None else list(blocks)
    outside = [b for b in chosen if not 0 <= b < len(patterns)]
    if outside:
        from compsafe.errors import ConfigError

        raise ConfigError(
            f"--blocks {outside[0]} is not a block of this model (it has {len(patterns)}: 0-{len(patterns) - 1})"
        )
    snapshot: WeightSnapshot | None = None  # taken only when a block is not in the store yet
    base = base or probe.measure(judged=judged)
    rows: list[BlockSensitivity] = []
    for i in chosen:
        state = variant_state(config.recipe, calibration, only=patterns[i])
        signals = probe.cached(state, judged=judged)
        if signals is None:
            snapshot = snapshot or WeightSnapshot(model)
            with applied(model, config, calibration, snapshot=snapshot, only=[patterns[i]]):
                signals = probe.measure(judged=judged, state=state)
        safety, capability, selectivity = damage(base, signals)
        rows.append(BlockSensitivity(i, patterns[i], signals, safety, capability, selectivity))
        if progress:
            progress(
                f"block {i}: margin {signals.mean_margin:+.3f} (base {base.mean_margin:+.3f}), "
                f"ppl {signals.perplexity:.3f} (base {base.perplexity:.3f})"
                + (f", judged {signals.judged_refusal_rate:.3f}" if signals.judged_refusal_rate is not None else "")
            )
    scan = BlockScan(config.recipe, base, rows, seconds=time.time() - started)
    if judged:
        scan.validation = validate_fast_signal(rows)
    return scan


def validate_fast_signal(rows: Sequence[BlockSensitivity]) -> dict[str, Any]:
    """Spearman rank correlation, across the per-block variants, of the fast signal with judged refusals.

    Both the mean margin and the fast refusal rate are correlated with the judged refusal rate; a rank
    correlation is what matters because the scan only uses the fast signal to *order* blocks. With constant
    judged rates (every variant refuses equally often) the correlation is undefined and reported as None.
    """
    from scipy.stats import spearmanr

    judged = [r.signals.judged_refusal_rate for r in rows]
    if len(rows) < 3 or any(j is None for j in judged):
        return {"n_variants": len(rows), "spearman_margin": None, "note": "needs >= 3 judged variants"}
    result: dict[str, Any] = {"n_variants": len(rows)}
    for key, values in (
        ("margin", [r.signals.mean_margin for r in rows]),
        ("fast_rate", [r.signals.fast_refusal_rate for r in rows]),
    ):
        if len(set(judged)) < 2 or len(set(values)) < 2:
            result[f"spearman_{key}"], result[f"p_{key}"] = None, None
            continue
        rho, p = spearmanr(values, judged)
        result[f"spearman_{key}"], result[f"p_{key}"] = float(rho), float(p)
    result["judged_range"] = [min(judged), max(judged)]  # type: ignore[type-var]
    return result


# --- everything the `compsafe sensitivity` command reports ------------------------------------------------------


def block_weight_errors(rows: Sequence[ModuleSensitivity]) -> dict[int, dict[str, float]]:
    """Per block: numel-weighted mean relative weight error and worst output error of its modules."""
    blocks: dict[int, dict[str, float]] = {}
    for row in rows:
        if row.block is None:
            continue
        entry = blocks.setdefault(row.block, {"numel": 0, "weighted_error": 0.0, "max_output_error": 0.0})
        entry["numel"] += row.numel
        entry["weighted_error"] += row.relative_error * row.numel
        if row.output_error is not None:
            entry["max_output_error"] = max(entry["max_output_error"], row.output_error)
    return {
        b: {"relative_error": e["weighted_error"] / e["numel"], "max_output_error": e["max_output_error"]}
        for b, e in sorted(blocks.items())
    }


# --- everything the `compsafe sensitivity` command reports ------------------------------------------------------


def sensitivity_report(
    handle: Any,
    recipe: str,
    *,
    calibration: CalibrationSet | None = None,
    prompt_limit: int | None = 24,
    passage_limit: int = 4,
    judged: bool = True,
    blocks: Sequence[int] | None = None,
    heads: bool = True,
    head_candidates: int = 12,
    head_prompts: int = 8,
    judged_heads: int = 5,
    max_new_tokens: int = 32,
    judge: str = DEFAULT_JUDGE,
    store: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Weight-space errors, the per-block scan (validated against judged refusals) and the head scan.

    Measured on the validation split of the harmful prompts (``prompt_limit`` of them) so that ``compsafe
    mitigate``'s held-out split stays unseen. ``head_candidates=0`` ablates every head exactly; otherwise the
    attribution screen (``diagnose.heads.head_attribution`` on ``head_prompts`` prompts) picks the candidates.
    ``store`` (a ``ResultStore``) keeps every measurement as per-item records, so a rerun resumes.
    """
    from compsafe.diagnose.signals import shipped_passages, split_harmful
    from compsafe.integrity import model_identity
    from compsafe.models.backend import HFBackend

    say = progress or (lambda message: None)
    started = time.time()
    config = parse_recipe(recipe)
    validation, _ = split_harmful()
    prompts = validation[:prompt_limit] if prompt_limit else validation
    identity = model_identity(handle) if store is not None else None
    probe = SignalProbe(
        HFBackend(handle, 16), prompts, shipped_passages(passage_limit), judge, max_new_tokens,
        store=store, identity=identity,
    )
    result: dict[str, Any] = {"model": handle.source, "recipe": config.recipe, "prompts": len(prompts)}
    if judged:
        result["judge"] = probe.judge_identity()

    say("weight space: relative weight error and output error on calibration activations")
    modules = weight_sensitivity(handle.model, config.recipe, calibration)
    result["modules"] = [m.to_dict() for m in modules]
    result["block_weight_errors"] = block_weight_errors(modules)

    say(f"behaviour space: {config.recipe} in one block at a time ({len(prompts)} prompts)")
    base = probe.measure(judged=judged)
    scan = block_sensitivity(
        handle.model, config.recipe, probe, calibration, blocks=blocks, judged=judged, base=base, progress=say
    )
    result["blocks"] = scan.to_dict()
    if heads:
        from compsafe.diagnose.heads import head_report

        result["heads"] = head_report(
            handle.model, probe, base, candidates=head_candidates, screen_prompts=head_prompts,
            judged_heads=judged_heads if judged else 0, progress=say,
        )
    result["seconds"] = time.time() - started
    return result
