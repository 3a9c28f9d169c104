"""Read metrics out of a run summary by name: one lookup shared by the HTML/markdown reports, gates and compare.

A metric is named ``probe.key`` (``refusal.refusal_rate``, ``mcqa.accuracy``, ``perplexity.ratio``,
``refusal.by_category.weapons``) or ``alignment_drift_ratio[.vs_mcqa|.vs_perplexity]``. The key is looked up
first in the model's own summary (``metrics[label][probe]``), then in its paired comparison with the base
(``comparisons[label]["probes"][probe]``; an interval ``{estimate, low, high}`` reads as its estimate).
Keeping the naming in one place means a policy file, a report column and a ``compare`` row mean the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe.errors import RunFolderError

SIGNIFICANCE = 0.05
DRIFT = "alignment_drift_ratio"

# Direction of "better" for the metrics compsafe ships; None (unknown) is coloured as a neutral change.
HIGHER_IS_BETTER: dict[str, bool] = {
    "refusal_rate": True,
    "false_refusal_rate": False,
    "accuracy": True,
    "accuracy_norm": True,
    "perplexity": False,
    "ratio": False,
    "mean_kl_from_base": False,
    "degenerate_rate": False,
    "answer_flip_share": False,
    "flip_share": False,
    "alignment_drift_ratio": False,
    "attack_success_rate": False,
    "mean_exposure": False,
    "extraction_rate": False,
    "pii_regurgitation_rate": False,
    "expected_max_toxicity": False,
    "toxicity_probability": False,
    "mean_margin": True,
    "leans_refusal_rate": True,
    "false_trigger_rate": False,
}
# Headlines whose ideal is a point (0 bias score, 50% stereotype preference, no dialect gap) have no direction
# and stay out of this table: a move either way can be worse.
UNITS: dict[str, str] = {"mean_exposure": " bits", "mean_margin": " nats"}


def load_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run folder, or a one-line error saying what to pass instead."""
    import json

    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise RunFolderError(
            f"{run_dir} is not a run folder (no summary.json): pass the --out folder of `compsafe run`"
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(summary, dict) or "metrics" not in summary or "base" not in summary["metrics"]:
        raise RunFolderError(f"{path} is not a compsafe summary (no metrics for the base model)")
    return summary


def variant_labels(summary: dict[str, Any]) -> list[str]:
    return [label for label in summary.get("metrics", {}) if label != "base"]


def higher_is_better(metric: str) -> bool | None:
    """Direction of a metric name (its last component), None when compsafe does not know it."""
    last = metric.split(".")[-1]
    if metric.startswith(DRIFT):
        return False
    if metric.startswith(("refusal.by_category", "refusal.refusal_rate")):
        return True
    if metric.startswith("over_refusal.by_category"):
        return False
    if last == "complied_rate":  # harmful compliance is bad; answering a benign request is good
        return metric.startswith("over_refusal.")
    return HIGHER_IS_BETTER.get(last)


def _walk(data: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    if isinstance(data, dict) and "estimate" in data:
        data = data["estimate"]
    if isinstance(data, bool) or not isinstance(data, int | float):
        return None
    return float(data)


def drift_value(summary: dict[str, Any], label: str, metric: str) -> float | None:
    """The drift ratio as a number: its value, +inf when safety was lost without capability loss, else None."""
    drift = summary.get("comparisons", {}).get(label, {}).get(DRIFT) or {}
    key = metric.partition(".")[2] or drift.get("headline")
    entry = drift.get(key) if key else None
    if not isinstance(entry, dict):
        return None
    if entry.get("status") == "safety_loss_without_capability_loss":
        return math.inf
    value = entry.get("value")
    return float(value) if isinstance(value, int | float) else None


def metric_value(summary: dict[str, Any], label: str, metric: str) -> float | None:
    """Value of ``metric`` for model ``label`` (``base`` included), None when the run does not have it."""
    if metric.split(".")[0] == DRIFT:
        return None if label == "base" else drift_value(summary, label, metric)
    probe, _, rest = metric.partition(".")
    if not rest:
        return None
    keys = rest.split(".")
    value = _walk(summary.get("metrics", {}).get(label, {}).get(probe), keys)
    if value is None and label != "base":
        value = _walk(summary.get("comparisons", {}).get(label, {}).get("probes", {}).get(probe), keys)
    if value is None and label == "base" and keys == ["ratio"]:
        value = 1.0  # the base relative to itself
    if value is None and label == "base" and keys == ["mean_kl_from_base"]:
        value = 0.0
    return value


@dataclass(frozen=True)
class Significance:
    """Whether a variant's change on a metric is statistically significant, and the evidence for it."""

    tested: bool
    significant: bool
    evidence: str  # e.g. "95% CI [-8.3, -1.5] pp excludes 0; McNemar p=0.031"


def _interval_text(interval: dict[str, Any], scale: float, unit: str, signed: bool = True) -> str:
    confidence = interval.get("confidence", 0.95)
    spec = "+.2f" if signed else ".3f"
    return f"{confidence:.0%} CI [{scale * interval['low']:{spec}}, {scale * interval['high']:{spec}}]{unit}"


def significance(summary: dict[str, Any], label: str, metric: str, level: float = SIGNIFICANCE) -> Significance:
    """Paired test of the variant against the base for this metric: CI excluding no-change, or McNemar p < level.

    Only the metrics a test was computed for are ``tested``: headline rates and accuracies (delta CI and
    McNemar), ``accuracy_norm`` (CI), perplexity and its ratio (ratio CI excluding 1), and the drift ratio
    (the significance of the refusal change it is built on).
    """
    comparisons = summary.get("comparisons", {}).get(label, {})
    if metric.split(".")[0] == DRIFT:
        drift = comparisons.get(DRIFT) or {}
        p_value = drift.get("safety_change_p_value")
        if p_value is None:
            p_value = ((comparisons.get("probes", {}).get("refusal") or {}).get("mcnemar") or {}).get("p_value")
        if p_value is None:
            return Significance(False, False, "no test of the refusal change")
        return Significance(True, p_value < level, f"refusal change McNemar p={p_value:.3g}")
    probe, _, key = metric.partition(".")
    cmp = comparisons.get("probes", {}).get(probe) or {}
    headline = summary.get("probes", {}).get(probe, {}).get("headline_metric")
    outcome = summary.get("probes", {}).get(probe, {}).get("outcome")
    interval: dict[str, Any] | None = None
    null = 0.0
    scale, unit = 100.0, " pp"
    use_mcnemar = False
    if outcome == "perplexity" or key in ("perplexity", "ratio"):
        if key in ("perplexity", "ratio"):
            interval, null, scale, unit = cmp.get("ratio"), 1.0, 1.0, " of the perplexity ratio"
    elif key == "accuracy_norm":
        interval = cmp.get("delta_norm")
    elif key == headline or key in ("refusal_rate", "false_refusal_rate", "accuracy"):
        interval = cmp.get("delta")
        use_mcnemar = True
        if not key.endswith(("rate", "accuracy", "share")):  # bits, nats, scores: no percentage points
            scale, unit = 1.0, UNITS.get(key, "")
    parts: list[str] = []
    significant = False
    tested = False
    if isinstance(interval, dict) and interval.get("low") is not None and interval.get("high") is not None:
        tested = True
        excludes = interval["low"] > null or interval["high"] < null
        significant |= excludes
        text = _interval_text(interval, scale, unit, signed=null == 0.0)
        parts.append(text + (" excludes " if excludes else " includes ") + f"{null:g}")
    p_value = (cmp.get("mcnemar") or {}).get("p_value") if use_mcnemar else None
    if p_value is not None:
        tested = True
        significant |= p_value < level
        parts.append(f"McNemar p={p_value:.3g}")
    if not tested:
        return Significance(False, False, f"no paired test for {metric}")
    return Significance(True, significant, "; ".join(parts))


def headline_dimensions(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(probe, metric name) of every probe's headline metric, in run order: the report's columns."""
    return [(name, f"{name}.{info['headline_metric']}") for name, info in summary.get("probes", {}).items()]


def format_value(metric: str, value: float | None) -> str:
    """Rates and accuracies as percentages, ratios and perplexities as numbers, inf as ∞."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞"
    last = metric.split(".")[-1]
    if metric.startswith(DRIFT) or last in ("perplexity", "ratio", "mean_kl_from_base", "tokens", "n"):
        return f"{value:.3g}" if last != "n" else f"{value:.0f}"
    if last.endswith(("rate", "accuracy", "accuracy_norm", "share", "confidence")) or ".by_category." in metric:
        return f"{100 * value:.1f}%"
    return f"{value:.4g}"


def format_change(metric: str, change: float | None) -> str:
    """A difference in the metric's units: percentage points for rates, plain for everything else."""
    if change is None:
        return "-"
    if math.isinf(change):
        return "+∞" if change > 0 else "-∞"
    text = format_value(metric, abs(change))
    if text.endswith("%"):
        text = text[:-1] + " pp"
    return ("+" if change >= 0 else "-") + text


@dataclass(frozen=True)
class Cell:
    """One headline-table cell: the model's value, its paired change from the base, and how to colour it."""

    value: float | None
    text: str
    change: str  # "-4.5 pp [-8.3, -1.5]" or "×1.58 [1.53, 1.64]"; "" for the base
    state: str  # base | worse | better | changed (significant, direction unknown) | ns | untested
    evidence: str


def dimension_cell(summary: dict[str, Any], label: str, metric: str) -> Cell:
    value = metric_value(summary, label, metric)
    text = format_value(metric, value)
    if label == "base":
        return Cell(value, text, "", "base", "")
    probe, _, key = metric.partition(".")
    cmp = summary.get("comparisons", {}).get(label, {}).get("probes", {}).get(probe) or {}
    change = ""
    if isinstance(cmp.get("ratio"), dict) and cmp["ratio"].get("estimate") is not None:
        r = cmp["ratio"]
        change = f"×{r['estimate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
    else:
        delta = cmp.get("delta_norm" if key == "accuracy_norm" else "delta")
        if isinstance(delta, dict) and delta.get("estimate") is not None:
            change = (
                f"{100 * delta['estimate']:+.1f} pp [{100 * delta['low']:+.1f}, {100 * delta['high']:+.1f}]"
                if delta.get("low") is not None
                else f"{100 * delta['estimate']:+.1f} pp"
            )
    test = significance(summary, label, metric)
    base = metric_value(summary, "base", metric)
    if not test.tested:
        state = "untested"
    elif not test.significant:
        state = "ns"
    else:
        direction = higher_is_better(metric)
        moved = 0.0 if value is None or base is None else value - base
        state = "changed" if direction is None or moved == 0 else ("better" if (moved > 0) == direction else "worse")
    return Cell(value, text, change, state, test.evidence)


def flips(summary: dict[str, Any], label: str, probe: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Items refused by the base and answered by the variant, and the reverse (with both responses)."""
    cmp = summary.get("comparisons", {}).get(label, {}).get("probes", {}).get(probe) or {}
    return list(cmp.get("refused_by_base_answered_by_variant") or []), list(
        cmp.get("answered_by_base_refused_by_variant") or []
    )


def refusal_probes(summary: dict[str, Any]) -> list[str]:
    """Probes whose outcome is a refusal decision (they have flips and per-category rates)."""
    return [name for name, info in summary.get("probes", {}).items() if info.get("outcome") == "refusal"]
