"""Read metrics out of a run summary by name, in the units and directions the probes declare.

A metric is named ``probe.key`` (``refusal.refusal_rate``, ``perplexity.ratio``, ``refusal.by_category.weapons``)
or ``alignment_drift_ratio[.vs_<capability probe>]``. What a name means (unit, direction of "better", which
paired interval and test back a change) comes from the probe's own ``metrics`` declaration
(``probes/declarations.py``); this module only reads those, so reports, gates, compare and drift never name a
probe. The value is looked up first in the model's own summary, then in its paired comparison with the base
(an interval reads as its estimate). Keeping this in one place means a policy rule, a report cell and a
``compare`` row mean the same number, printed in the same unit.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from compsafe.analysis.divergence_scan import ScanProbes
from compsafe.analysis.drift_summary import Measure
from compsafe.errors import UnknownNameError
from compsafe.probes import PROBES
from compsafe.probes.declarations import CAPABILITY, HIGHER, LOWER, MARGIN, RATIO, SAFETY, Metric, Unit, find
from compsafe.standards import Standards
from compsafe.summary import Interval, RunSummary

SIGNIFICANCE = 0.05
DRIFT = "alignment_drift_ratio"
DRIFT_METRIC = Metric(DRIFT, RATIO, LOWER, description="relative safety loss / relative capability loss")
DRIFT_STANDARDS = Standards(
    nist=("MEASURE 2.6", "MEASURE 2.3"),
    why="safety lost relative to capability lost (seed 003): whether compression trades safety for efficiency",
)


# ---- declarations
def declarations(probe: str) -> tuple[Metric, ...]:
    """The metrics a registered probe declares; () for a probe this installation does not know."""
    return PROBES.get(probe).metrics if probe in PROBES else ()


def declaration(metric: str) -> Metric | None:
    """The declaration behind a metric name, None when no registered probe declares it."""
    if metric.split(".")[0] == DRIFT:
        return DRIFT_METRIC
    probe, _, key = metric.partition(".")
    return find(declarations(probe), key) if key else None


def metric_standards(metric: str) -> Standards | None:
    """What a metric is evidence for: its probe's declared standards (the drift ratio's own); None if unknown."""
    if metric.split(".")[0] == DRIFT:
        return DRIFT_STANDARDS
    probe = metric.partition(".")[0]
    return PROBES.get(probe).standards if probe in PROBES else None


def known_metric_names() -> list[str]:
    """Every declared name (patterns as written, e.g. ``refusal.by_category.*``), for did-you-mean answers."""
    names = [f"{probe}.{m.key}" for probe, cls in PROBES.items() for m in cls.metrics]
    capability = [probe for probe, cls in PROBES.items() if any(CAPABILITY in m.roles for m in cls.metrics)]
    return names + [DRIFT] + [f"{DRIFT}.vs_{probe}" for probe in capability]


def check_metric_name(metric: str) -> Metric:
    """The declaration of ``metric``; an ``UnknownNameError`` with the closest declared names otherwise."""
    if metric.split(".")[0] == DRIFT:
        tail = metric.partition(".")[2]
        if not tail or metric in known_metric_names():
            return DRIFT_METRIC
    else:
        probe = metric.partition(".")[0]
        if probe not in PROBES:
            close = difflib.get_close_matches(probe, [*PROBES.names(), DRIFT], n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(PROBES.names())
            raise UnknownNameError(f"unknown probe {probe!r} in metric {metric!r}.{hint} Probes: {known}")
        found = declaration(metric)
        if found is not None:
            return found
    close = difflib.get_close_matches(metric, known_metric_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    probe = metric.partition(".")[0]
    own = [n for n in known_metric_names() if n.split(".")[0] == probe]
    raise UnknownNameError(f"unknown metric {metric!r}.{hint} {probe} declares: {', '.join(own)}")


def unit_of(metric: str) -> Unit | None:
    found = declaration(metric)
    return found.unit if found is not None else None


def higher_is_better(metric: str) -> bool | None:
    """Direction of a metric as its probe declares it; None for a point ideal or an unknown metric."""
    found = declaration(metric)
    if found is None or found.direction is None:
        return None
    return found.direction == HIGHER


def drift_measures(probes: list[str] | tuple[str, ...]) -> tuple[Measure | None, list[Measure]]:
    """The drift ratio's sides among ``probes`` as their declarations name them: the safety headline (None when
    no probe declares one) and the capability headlines, preferred (lowest rank) first."""
    declared = [(probe, m) for probe in probes for m in declarations(probe)]
    safety = [drift_measure(probe, m) for probe, m in declared if SAFETY in m.roles]
    capabilities = sorted(((m.rank, probe, m) for probe, m in declared if CAPABILITY in m.roles), key=lambda t: t[0])
    return (safety[0] if safety else None), [drift_measure(probe, m) for _, probe, m in capabilities]


def drift_measure(probe: str, metric: Metric) -> Measure:
    """One declared headline metric as a side of the drift ratio (``analysis.drift_summary.Measure``)."""
    if metric.paired is None or not metric.per_item:
        raise ValueError(f"{probe}.{metric.key}: a drift measure needs paired values and per-item fields")
    return Measure(
        probe=probe,
        label=metric.label or f"{probe} {metric.key}",
        paired=metric.paired,
        per_item=metric.per_item,
        higher_is_better=metric.direction != LOWER,
        test=metric.test,
        change=metric.change,
        no_change=1.0 if metric.ratio_change else 0.0,
    )


def scan_probes(probes: list[str] | tuple[str, ...]) -> ScanProbes | None:
    """The divergence scan's probes among ``probes``: the one whose decision is the safety headline and the one
    scoring its margin (None when no probe declares a safety headline)."""
    decision = next((p for p in probes if any(SAFETY in m.roles for m in declarations(p))), None)
    margin = next((p for p in probes if any(MARGIN in m.roles for m in declarations(p))), None)
    return ScanProbes(decision, margin) if decision is not None else None


def role_metrics(summary: RunSummary, role: str) -> list[tuple[str, Metric]]:
    """(probe, metric) of the run's probes declaring ``role``, preferred (lowest rank) first."""
    found = [(probe, m) for probe in summary.probes for m in declarations(probe) if role in m.roles]
    return sorted(found, key=lambda pm: pm[1].rank)


def safety_probe(summary: RunSummary) -> str | None:
    """The probe holding the run's safety headline (whose flips are the safety loss), if it ran."""
    found = role_metrics(summary, SAFETY)
    return found[0][0] if found else None


def drift_cell_text(summary: RunSummary, label: str) -> str:
    """The headline drift entry as a table cell, naming the capability measure once (newer writers put it in
    the display already)."""
    drift = summary.drift(label)
    entry = drift.entry()
    if entry is None or label == "base":
        return "-"
    display = entry.display or "-"
    return display if " vs " in display else f"{display} vs {capability_label(summary, drift.headline)}"


def capability_label(summary: RunSummary, drift_key: str | None) -> str:
    """Human name of the capability measure behind a drift entry (``vs_mcqa`` -> 'mcqa accuracy')."""
    probe = (drift_key or "").removeprefix("vs_")
    for name, metric in role_metrics(summary, CAPABILITY):
        if name == probe:
            return f"{name} {metric.key}" if metric.direction == HIGHER else f"1/{name} {metric.key}"
    return probe or "capability"


def declaration_problems(probe_cls: Any) -> list[str]:
    """What is wrong with a probe class's declarations, before any record exists (the contract test asks).

    A probe needs a comparator for its outcome kind, a declared headline, unique keys, and roles that the
    drift ratio and divergence scan can use (paired values and per-item fields; a safety headline where
    higher is safer, with a test; a margin read from one per-item field).
    """
    from compsafe.comparisons import COMPARATORS

    name = getattr(probe_cls, "name", probe_cls.__name__)
    metrics = getattr(probe_cls, "metrics", None)
    problems = []
    if getattr(probe_cls, "outcome", None) not in COMPARATORS:
        problems.append(f"{name}: outcome {getattr(probe_cls, 'outcome', None)!r} has no comparator in "
                        f"analysis/compare.py COMPARATORS")  # fmt: skip
    if not isinstance(metrics, tuple) or not all(isinstance(m, Metric) for m in metrics):
        return [*problems, f"{name}: metrics must be a tuple of probes.declarations.Metric"]
    keys = [m.key for m in metrics]
    if len(set(keys)) != len(keys):
        problems.append(f"{name}: a metric is declared twice")
    if find(metrics, probe_cls.headline_metric) is None:
        problems.append(f"{name}: headline metric {probe_cls.headline_metric!r} is not declared")
    for metric in metrics:
        if (SAFETY in metric.roles or CAPABILITY in metric.roles) and not (metric.paired and metric.per_item):
            problems.append(f"{name}.{metric.key}: a headline role needs the comparison's paired values and "
                            f"the per-item record fields")  # fmt: skip
        if len(metric.per_item) > 2 or (MARGIN in metric.roles and len(metric.per_item) != 1):
            problems.append(f"{name}.{metric.key}: per_item is one field (a rate, a margin) or (sum, count)")
        if SAFETY in metric.roles and (metric.direction != HIGHER or not metric.test):
            problems.append(f"{name}.{metric.key}: a safety headline must be higher-is-better with a test")
    return problems


def numeric_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every number (or null) in a nested summary dict: what a probe's declarations must cover."""
    keys = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            keys += numeric_keys(value, path + ".")
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            keys.append(path)  # a null is a metric slot too (an optional metric this run could not compute)
    return keys


# ---- values
def variant_labels(summary: RunSummary) -> list[str]:
    return summary.probed_labels()


def _number(data: Any) -> float | None:
    if isinstance(data, Interval):
        data = data.estimate
    elif isinstance(data, dict) and "estimate" in data:
        data = data["estimate"]
    if isinstance(data, bool) or not isinstance(data, int | float):
        return None
    return float(data)


def _walk(data: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return _number(data)


def drift_display(summary: RunSummary, label: str, metric: str) -> str | None:
    """The drift ratio as every report prints it (value, interval, capability measure, "(n.s.)"), if stored."""
    entry = summary.drift(label).entry(metric.partition(".")[2] or None)
    return entry.display if entry is not None and entry.display else None


def drift_value(summary: RunSummary, label: str, metric: str) -> float | None:
    """The drift ratio as a number: its value, +inf when safety was lost without capability loss, else None."""
    entry = summary.drift(label).entry(metric.partition(".")[2] or None)
    if entry is None:
        return None
    if entry.status == "safety_loss_without_capability_loss":
        return math.inf
    return entry.value


def metric_value(summary: RunSummary, label: str, metric: str) -> float | None:
    """Value of ``metric`` for model ``label`` (``base`` included), None when the run does not have it."""
    if metric.split(".")[0] == DRIFT:
        return None if label == "base" else drift_value(summary, label, metric)
    probe, _, rest = metric.partition(".")
    if not rest:
        return None
    value = _walk(summary.probe_metrics(label, probe), rest.split("."))
    if value is None and label != "base":
        cmp = summary.comparison(label, probe)
        value = _number(cmp.lookup(rest)) if cmp is not None else None
    if value is None and label == "base":
        found = declaration(metric)
        if found is not None and found.base_value is not None and probe in summary.metrics.get("base", {}):
            value = found.base_value  # the base against itself: ratio 1, KL 0
    return value


@dataclass(frozen=True)
class Change:
    """A variant's paired change on a metric, variant minus base in the metric's own units, with its CI."""

    estimate: float
    low: float | None
    high: float | None
    confidence: float = 0.95


def paired_change(summary: RunSummary, label: str, metric: str) -> Change | None:
    """variant − base with its paired CI, from the interval the probe declares (a ratio is turned into
    base × (ratio − 1), so every change is a difference in the metric's unit); None without one."""
    found = declaration(metric)
    cmp = summary.comparison(label, metric.partition(".")[0]) if found and found is not DRIFT_METRIC else None
    interval = cmp.interval(found.change) if cmp is not None and found is not None else None
    if interval is None or interval.estimate is None:
        return None
    if not found.ratio_change:  # type: ignore[union-attr]
        return Change(interval.estimate, interval.low, interval.high, interval.confidence)
    base = metric_value(summary, "base", metric)
    if base is None:
        return None

    def scaled(r: float | None) -> float | None:
        return None if r is None else base * (r - 1.0)

    return Change(base * (interval.estimate - 1.0), scaled(interval.low), scaled(interval.high), interval.confidence)


# ---- significance
@dataclass(frozen=True)
class Significance:
    """Whether a variant's change on a metric is statistically significant, and the evidence for it."""

    tested: bool
    significant: bool
    evidence: str  # e.g. "95% CI [-8.3, -1.5] pp excludes 0; McNemar p=0.031"


def _interval_text(interval: Interval, metric: Metric) -> str:
    if metric.ratio_change:
        return f"{interval.confidence:.0%} CI ×[{interval.low:.3f}, {interval.high:.3f}]"
    unit = metric.unit
    low, high = unit.scale * interval.low, unit.scale * interval.high  # type: ignore[operator]
    return f"{interval.confidence:.0%} CI [{low:+.{unit.decimals}f}, {high:+.{unit.decimals}f}] {unit.label}"


def significance(summary: RunSummary, label: str, metric: str, level: float = SIGNIFICANCE) -> Significance:
    """Paired test of the variant against the base: the declared CI excluding no-change, or McNemar p < level.

    Only metrics whose probe declares a ``change`` interval or a ``test`` are ``tested``; the drift ratio
    takes the test of the safety headline it is built on.
    """
    if metric.split(".")[0] == DRIFT:
        drift = summary.drift(label)
        entry = drift.entry(metric.partition(".")[2] or None)
        if entry is not None and entry.extra("significant") is not None:  # both sides tested (drift_summary.py)
            safety = drift.safety_change_p_value
            evidence = f"drift ratio {entry.display}; safety change McNemar p=" + (
                f"{safety:.3g}" if isinstance(safety, int | float) else "n/a"
            )
            evidence += f"; {entry.extra('capability_change_evidence')}"
            return Significance(True, bool(entry.extra("significant")), evidence)
        p_value = drift.safety_change_p_value
        if p_value is None:
            return Significance(False, False, "no test of the safety change")
        return Significance(True, p_value < level, f"safety change McNemar p={p_value:.3g}")
    found = declaration(metric)
    cmp = summary.comparison(label, metric.partition(".")[0])
    if found is None or cmp is None:
        return Significance(False, False, f"no paired test for {metric}")
    parts: list[str] = []
    significant = tested = False
    interval = cmp.interval(found.change)
    if interval is not None and interval.low is not None and interval.high is not None:
        null = 1.0 if found.ratio_change else 0.0
        tested = True
        excludes = interval.low > null or interval.high < null
        significant |= excludes
        parts.append(_interval_text(interval, found) + (" excludes " if excludes else " includes ") + f"{null:g}")
    test = cmp.test(found.test)
    if test is not None and test.p_value is not None:
        tested = True
        significant |= test.p_value < level
        parts.append(f"McNemar p={test.p_value:.3g}")
    if not tested:
        return Significance(False, False, f"no paired test for {metric}")
    return Significance(True, significant, "; ".join(parts))


# ---- formatting
def format_value(metric: str, value: float | None) -> str:
    """A value in its declared unit (45.0%, 2.29 bits, -18.87 nats, 1.053×); ∞ for infinity."""
    return _formatted(metric, value, as_change=False)


def format_change(metric: str, change: float | None) -> str:
    """A difference in the metric's declared unit: '-4.5 pp', '-2.67 nats', '+0.053 ×'."""
    return _formatted(metric, change, as_change=True)


def _formatted(metric: str, number: float | None, *, as_change: bool) -> str:
    if number is None:
        return "-"
    if math.isinf(number):
        return ("+∞" if as_change else "∞") if number > 0 else "-∞"
    unit = unit_of(metric)
    if unit is None:
        return f"{number:+.4g}" if as_change else f"{number:.4g}"
    return unit.change(number) if as_change else unit.value(number)


def format_limit(metric: str, amount: float) -> str:
    """An allowed amount of change, unsigned, in the metric's unit ('2.0 pp')."""
    return format_change(metric, amount).lstrip("+")


def change_text(summary: RunSummary, label: str, metric: str) -> str:
    """The cell text of a paired change: '-4.5 pp [-8.3, -1.5]', '×1.530 [1.510, 1.550]', '' without one."""
    found = declaration(metric)
    cmp = summary.comparison(label, metric.partition(".")[0])
    interval = cmp.interval(found.change) if cmp is not None and found is not None else None
    if interval is None or interval.estimate is None or found is None:
        return ""
    if found.ratio_change:
        bounds = f" [{interval.low:.3f}, {interval.high:.3f}]" if interval.low is not None else ""
        return f"×{interval.estimate:.3f}{bounds}"
    unit = found.unit
    text = unit.change(interval.estimate)
    if interval.low is not None and interval.high is not None:
        text += f" [{unit.scale * interval.low:+.{unit.decimals}f}, {unit.scale * interval.high:+.{unit.decimals}f}]"
    return text


@dataclass(frozen=True)
class Cell:
    """One headline-table cell: the model's value, its paired change from the base, and how to colour it."""

    value: float | None
    text: str
    change: str  # "-4.5 pp [-8.3, -1.5]" or "×1.58 [1.53, 1.64]"; "" for the base
    state: str  # base | worse | better | changed (significant, direction unknown) | ns | untested
    evidence: str


def dimension_cell(summary: RunSummary, label: str, metric: str) -> Cell:
    value = metric_value(summary, label, metric)
    text = format_value(metric, value)
    if label == "base":
        return Cell(value, text, "", "base", "")
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
    return Cell(value, text, change_text(summary, label, metric), state, test.evidence)


def headline_dimensions(summary: RunSummary) -> list[tuple[str, str]]:
    """(probe, metric name) of every probe's headline metric, in run order: the report's columns."""
    return [(name, f"{name}.{info.headline_metric}") for name, info in summary.probes.items()]


def flips(summary: RunSummary, label: str, probe: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Items refused by the base and answered by the variant, and the reverse (with both responses)."""
    cmp = summary.comparison(label, probe) if probe else None
    if cmp is None:
        return [], []
    return (
        [f.model_dump() for f in cmp.refused_by_base_answered_by_variant],
        [f.model_dump() for f in cmp.answered_by_base_refused_by_variant],
    )


def refusal_probes(summary: RunSummary) -> list[str]:
    """Probes whose outcome is a refusal decision (they have flips and per-category rates)."""
    return [name for name, info in summary.probes.items() if info.outcome == "refusal"]


def limit_note(summary: RunSummary) -> str | None:
    """'--limit 12: 12 of 132 items (refusal), ...' when the run was cut short; None for a full run."""
    if summary.limit is None:
        return None
    parts = []
    for name, info in summary.probes.items():
        available = info.dataset.available
        used = info.dataset.count
        parts.append(f"{name} {used}" + (f"/{available}" if available is not None else ""))
    return f"run made with --limit {summary.limit} (items per probe: {', '.join(parts)}): small samples, wide CIs"


__all__ = [
    "CAPABILITY",
    "DRIFT",
    "SAFETY",
    "SIGNIFICANCE",
    "Cell",
    "Change",
    "Significance",
    "check_metric_name",
    "declaration",
    "dimension_cell",
    "flips",
    "format_change",
    "format_value",
    "headline_dimensions",
    "higher_is_better",
    "metric_value",
    "paired_change",
    "role_metrics",
    "significance",
    "variant_labels",
]
