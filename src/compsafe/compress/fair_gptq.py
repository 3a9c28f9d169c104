"""Fair-GPTQ: GPTQ with a group-fairness term in each layer's objective (Proskurina, Metzler and Velcin 2025,
"Fair-GPTQ: Bias-Aware Quantization for Large Language Models", arXiv:2509.15206; reference code
github.com/upunaprosk/fair-gptq, a patch of GPTQModel's ``gptq.py``).

Why: GPTQ picks the rounding that keeps a layer's output on the calibration text, and nothing stops that choice
from widening the gap between how the layer treats "the nurse said she ..." and "the nurse said he ...".
Fair-GPTQ adds that gap to the objective. For paired inputs that differ only in the group they mention
(stereotype / anti-stereotype sentences), with ``D`` the differences of the layer's inputs on the two sentences,
each row ``w`` of a debiased layer is quantized to minimise

    (w - w') H (w - w')^T + alpha * w' H_D w'^T,      H = 2/n X^T X,   H_D = 2/m D^T D,

the paper's objective: GPTQ's output error plus the squared output difference of the quantized layer on the
pairs. The sum is one quadratic in ``w'``: with ``H' = H + alpha H_D`` and ``w* = w H H'^-1`` it equals
``(w' - w*) H' (w' - w*)^T`` plus a constant. So Fair-GPTQ is GPTQ run on the shifted target ``w*`` with the
Hessian ``H'``: ``w*`` is the reference's ``sum_hessians`` update (``W -= W H_x01 (H + H_x01)^-1``), and
propagating the rounding errors through ``H'`` (the reference keeps ``H``'s inverse there) makes every step
minimise the whole objective, not only its first half. With ``alpha = 0`` it is exactly GPTQ (a test checks this).

Choices, stated:

* debiased layers: the attention output and MLP down projections (``o_proj``, ``down_proj`` and their GPT-2 /
  OPT / NeoX names), the reference's default (it leaves q/k/v and the MLP up projection at plain GPTQ); every
  other layer is plain GPTQ;
* pairs: ``data/fairness_calibration_pairs.jsonl`` (66 project-written pairs, 7 bias types, disjoint from the
  bias probes' sets), carried by the ``CalibrationSet``;
* ``D``: the differences are taken on the *uncompressed* model, once, before any layer is quantized (the
  reference takes them inside GPTQModel's sequential loop). A causal model's activations agree on the pair's
  common prefix, so ``D`` holds the positions from the first differing token on: the differing span position
  by position when both sides have the same token count (else the difference of their means), and the shared
  suffix aligned from the end (the same continuation tokens read in the two group contexts);
* ``alpha`` default 0.5 (the reference's default), ``-a<alpha>`` in the recipe; ``H`` and ``H_D`` are both
  per-token means, so ``alpha`` weighs a mean pair difference against a mean calibration token;
* damping: ``lambda = percdamp * mean(diag H)`` is added to ``H`` before the shift, and GPTQ then runs on the
  already-damped ``H'`` with no further damping, so the solved quadratic is exactly the damped objective.

Storage and accounting are GPTQ's (and RTN's) at the same bits and group size: only the grid points change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import torch
from torch import nn

from compsafe.compress.calibration import CalibrationSet
from compsafe.compress.gptq import DEFAULT_PERCDAMP, GPTQConfig, GPTQMethod, GPTQResult, GPTQState, gptq_quantize
from compsafe.compress.hessian import dead_columns
from compsafe.compress.rtn import GRID_SUFFIX
from compsafe.compress.targets import compressible_linears
from compsafe.compress.template import Layer, LayerOutcome, register
from compsafe.errors import RecipeError

DEFAULT_ALPHA = 0.5  # the reference implementation's default
# output projections of attention and MLP across the families compsafe compresses (Llama/Mistral/Qwen,
# GPT-2, OPT, GPT-NeoX/Pythia)
DEBIASED_LAYERS = ("o_proj", "down_proj", "c_proj", "out_proj", "fc2", "dense", "dense_4h_to_h")

_RECIPE = re.compile(
    r"int(?P<bits>\d+)-fairgptq(?:-g(?P<group>\d+))?(?P<asym>-asym)?(?P<act>-actorder)?(?:-a(?P<alpha>\d*\.?\d+))?"
)


@dataclass(frozen=True)
class FairGPTQConfig(GPTQConfig):
    """GPTQ plus the fairness term of weight ``alpha`` on the layers named in ``debias``."""

    method: ClassVar[str] = "fairgptq"

    alpha: float = DEFAULT_ALPHA
    debias: tuple[str, ...] = DEBIASED_LAYERS

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.alpha <= 1e6:
            raise RecipeError(f"Fair-GPTQ weight alpha={self.alpha!r} must be >= 0 (0 is plain GPTQ), e.g. 0.5")

    @property
    def recipe(self) -> str:
        group = f"-g{self.group_size}" if self.group_size else ""
        asym = GRID_SUFFIX[self.storage.grid_name]
        act = "-actorder" if self.act_order else ""
        alpha = "" if self.alpha == DEFAULT_ALPHA else f"-a{self.alpha:g}"
        return f"int{self.bits}-fairgptq{group}{asym}{act}{alpha}"

    def debiases(self, name: str) -> bool:
        return name.rsplit(".", 1)[-1] in self.debias


def _shared_ends(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """Lengths of the common token prefix and of the common suffix (not overlapping the prefix) of two id lists."""
    shortest = min(len(a), len(b))
    prefix = 0
    while prefix < shortest and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and a[len(a) - 1 - suffix] == b[len(b) - 1 - suffix]:
        suffix += 1
    return prefix, suffix


def pair_differences(xa: torch.Tensor, xb: torch.Tensor, ids_a: torch.Tensor, ids_b: torch.Tensor) -> torch.Tensor:
    """Rows of ``D`` for one pair: a layer's inputs ``[len, in]`` on the two sentences, compared where the group
    word can have changed them (see the module docstring); ``[k, in]``, possibly empty."""
    prefix, suffix = _shared_ends(ids_a, ids_b)
    mid_a, mid_b = xa[prefix : len(ids_a) - suffix], xb[prefix : len(ids_b) - suffix]
    rows = []
    if len(mid_a) == len(mid_b):
        rows.append(mid_a - mid_b)
    elif len(mid_a) and len(mid_b):
        rows.append(mid_a.mean(0, keepdim=True) - mid_b.mean(0, keepdim=True))
    if suffix:
        rows.append(xa[len(ids_a) - suffix :] - xb[len(ids_b) - suffix :])
    return torch.cat(rows) if rows else xa.new_zeros((0, xa.shape[-1]))


@torch.no_grad()
def collect_pair_differences(
    model: nn.Module, layers: list[tuple[str, nn.Module]], pairs: tuple[tuple[torch.Tensor, torch.Tensor], ...]
) -> dict[str, torch.Tensor]:
    """``D`` ``[m, in]`` (float32, CPU) of each named layer over the pairs, on the model as it is now."""
    captured: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def keep(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            captured[name] = args[0].detach()[0].float().cpu()

        return keep

    handles = [module.register_forward_hook(hook(name)) for name, module in layers]
    device = next(model.parameters()).device
    rows: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    try:
        for ids_a, ids_b in pairs:
            model(input_ids=ids_a[None].to(device), use_cache=False)
            inputs_a = dict(captured)
            model(input_ids=ids_b[None].to(device), use_cache=False)
            for name, _ in layers:
                rows[name].append(pair_differences(inputs_a[name], captured[name], ids_a, ids_b))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in rows.items()}


def fairness_hessian(differences: torch.Tensor) -> torch.Tensor:
    """``H_D = 2/m D^T D``: the per-row Hessian of the fairness term, on the same per-token scale as GPTQ's H."""
    return 2.0 / max(differences.shape[0], 1) * differences.t() @ differences


def fairness_term(weight: torch.Tensor, differences: torch.Tensor) -> float:
    """``||W D^T||_F^2 / m``: the mean squared output difference of the layer on the pairs."""
    return float((differences @ weight.t()).pow(2).sum() / max(differences.shape[0], 1))


@torch.no_grad()
def fair_gptq_quantize(
    weight: torch.Tensor, hessian: torch.Tensor, fair_hessian: torch.Tensor, config: FairGPTQConfig
) -> GPTQResult:
    """Fair-GPTQ on one ``[out, in]`` weight: GPTQ of the shifted target ``w*`` under ``H' = H + lambda I +
    alpha H_D`` (module docstring); ``alpha = 0`` returns plain GPTQ's result."""
    plain = GPTQConfig(**{f.name: getattr(config, f.name) for f in fields(GPTQConfig)})
    if config.alpha == 0:
        return gptq_quantize(weight, hessian, plain)
    work = torch.float64
    w = weight.to(work).clone()
    h = hessian.to(work).clone()
    dead = dead_columns(h)
    h[dead, dead] = 1.0
    w[:, dead] = 0
    eye = torch.eye(h.shape[0], dtype=work, device=h.device)
    damped = h + config.percdamp * torch.diagonal(h).mean() * eye
    combined = damped + config.alpha * fair_hessian.to(work)
    target = torch.linalg.solve(combined, damped @ w.t()).t()  # w* = w H H'^-1 (H, H' symmetric)
    result = gptq_quantize(target.to(weight.dtype), combined.to(weight.dtype), replace(plain, percdamp=0.0))
    return replace(result, damp=result.damp + float(config.percdamp * torch.diagonal(h).mean()))


class FairGPTQMethod(GPTQMethod):
    """Parses ``int<bits>-fairgptq[-g<group>][-asym][-actorder][-a<alpha>]``."""

    config_type = FairGPTQConfig
    grammar: ClassVar[str] = (
        "int<bits>-fairgptq[-g<group>][-asym][-actorder][-a<alpha>]   Fair-GPTQ (needs calibration): GPTQ whose "
        "objective on the attention/MLP output projections adds alpha x the squared output difference on "
        "stereotype/anti-stereotype sentence pairs (Proskurina et al. 2025); alpha default 0.5, 0 = plain GPTQ; "
        "storage as GPTQ's"
    )
    examples: ClassVar[tuple[str, ...]] = ("int4-fairgptq-g128", "int4-fairgptq-g128-a2")

    def parse(self, recipe: str) -> FairGPTQConfig | None:
        match = _RECIPE.fullmatch(recipe.strip().lower())
        if match is None:
            return None
        group = match["group"]
        return FairGPTQConfig(
            bits=int(match["bits"]),
            group_size=int(group) if group else None,
            symmetric=not match["asym"],
            act_order=bool(match["act"]),
            percdamp=DEFAULT_PERCDAMP,
            alpha=float(match["alpha"]) if match["alpha"] else DEFAULT_ALPHA,
        )

    def prepare(self, model: nn.Module, targets: list[tuple[str, nn.Module]], config: FairGPTQConfig) -> _FairState:
        debiased = [(name, module) for name, module in targets if config.debiases(name)]
        if not debiased:
            names = ", ".join(sorted({name.rsplit(".", 1)[-1] for name, _ in targets})) or "none"
            raise RecipeError(
                f"{config.recipe}: this model has none of the output projections Fair-GPTQ debiases "
                f"({', '.join(config.debias)}); its linear layers are named {names}"
            )
        return _FairState(debiased=[name for name, _ in debiased])

    def calibrate(
        self, model: nn.Module, config: FairGPTQConfig, state: _FairState, calibration: CalibrationSet
    ) -> None:
        if not calibration.fairness_pairs:
            raise RecipeError(f"{config.recipe} needs stereotype/anti-stereotype pairs in its calibration set")
        layers = [(name, module) for name, module in compressible_linears(model) if name in state.debiased]
        state.differences = collect_pair_differences(model, layers, calibration.fairness_pairs)
        state.pairs = len(calibration.fairness_pairs)

    def compress_layer(self, layer: Layer, config: FairGPTQConfig, state: _FairState) -> LayerOutcome:  # type: ignore[override]
        differences = state.differences.get(layer.name)
        if differences is None or layer.stats is None or layer.stats.hessian is None:
            return super().compress_layer(layer, config, state)
        d = differences.to(layer.weight.device)
        hessian = layer.stats.hessian
        result = fair_gptq_quantize(layer.weight, hessian, fairness_hessian(d), config)
        before, after = fairness_term(layer.weight, d), fairness_term(result.weight, d)
        state.terms[layer.name] = (before, after)
        return self.outcome(result, config, hessian)

    def extra(self, config: FairGPTQConfig, state: _FairState) -> dict[str, Any]:  # type: ignore[override]
        extra = super().extra(config, state)
        before = sum(b for b, _ in state.terms.values())
        after = sum(a for _, a in state.terms.values())
        extra.update({
            "alpha": config.alpha,
            "debiased_layers": len(state.terms),
            "fairness_pairs": state.pairs,
            "difference_rows": next((int(d.shape[0]) for d in state.differences.values()), 0),
            # the fairness term summed over the debiased layers, of the original and of the quantized weights
            "fairness_term": {"original": before, "quantized": after},
        })
        return extra


@dataclass
class _FairState(GPTQState):
    """GPTQ's per-run state plus the pairs' input differences and the fairness term of each debiased layer."""

    debiased: list[str] = field(default_factory=list)
    differences: dict[str, torch.Tensor] = field(default_factory=dict)
    terms: dict[str, tuple[float, float]] = field(default_factory=dict)
    pairs: int = 0


register(FairGPTQMethod())
