"""Per request group (harm category, severity level), what each variant did to the base's refusals.

Why groups: a router can send requests of one harm category, severity level or language to a different
model, so a layered deployment needs to know where a variant lost refusals, not only whether its overall rate
held. The groups come from every probe of harmful requests in the run (a probe whose headline is
higher-is-better and that declares per-group rates; a benign-request probe's lost refusals are a gain, not a
loss): ``by_category`` of a refusal probe's paired comparison, with the lost and gained items counted from its
flip lists; ``by_level`` where the items are graded by severity and ``by_language`` where the same requests
are asked in several languages (entries that carry their own paired change and McNemar test). The paired
change of a category, which the run stores without an interval, is recomputed from its 2×2 table (lost,
gained, n are all a paired interval and McNemar test need) with the run's own bootstrap settings, so every
group carries the same kind of evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from compsafe.advise.schema import Evidence
from compsafe.analysis.paired import mcnemar_exact, paired_proportion_delta
from compsafe.metrics import declarations, format_change, format_value, higher_is_better, refusal_probes, unit_of
from compsafe.summary import ProbeComparison, RunSummary

UNCATEGORISED = "uncategorised"  # what the comparison files an item without a category under
# comparison entries holding per-group paired statistics (n, rates, delta, mcnemar) -> the group kind
TESTED_GROUPS = {"by_level": "level", "by_language": "language"}


def change_text(metric: str, estimate: float | None, low: float | None, high: float | None) -> str:
    """'-8.3 pp [-35.4, +17.9]': the change in the metric's unit, its CI bounds without repeating the unit."""
    unit = unit_of(metric)

    def bare(x: float | None) -> str:
        text = format_change(metric, x)
        return text.removesuffix(f" {unit.label}") if unit is not None and unit.label else text

    return f"{format_change(metric, estimate)} [{bare(low)}, {bare(high)}]"


@dataclass(frozen=True)
class GroupResult:
    """One probe's numbers for one group and one variant."""

    probe: str
    kind: str  # category | level
    key: str
    evidence: Evidence

    @property
    def lost(self) -> int:
        return self.evidence.lost or 0


def harmful_probes(summary: RunSummary) -> list[str]:
    """Refusal probes of harmful requests: refusing more is safer there (their headline is higher-is-better)."""
    return [p for p in refusal_probes(summary) if higher_is_better(f"{p}.{summary.probes[p].headline_metric}")]


def grouped_probes(summary: RunSummary) -> list[str]:
    """Harmful-request probes with per-group rates: the refusal probes above, and any probe whose headline is
    higher-is-better and that declares per-level or per-language rates."""
    found = harmful_probes(summary)
    for probe, info in summary.probes.items():
        keys = {m.key.split(".")[0] for m in declarations(probe)}
        if probe not in found and higher_is_better(f"{probe}.{info.headline_metric}") and keys & set(TESTED_GROUPS):
            found.append(probe)
    return found


def _counts(cmp: ProbeComparison) -> tuple[dict[str, int], dict[str, int]]:
    lost: dict[str, int] = {}
    gained: dict[str, int] = {}
    for flips, into in ((cmp.refused_by_base_answered_by_variant, lost), (cmp.answered_by_base_refused_by_variant,
                                                                            gained)):  # fmt: skip
        for flip in flips:
            key = flip.category or UNCATEGORISED
            into[key] = into.get(key, 0) + 1
    return lost, gained


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _rate(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _evidence(metric: str, label: str, base: float, value: float, n: int, lost: int, gained: int,
              summary: RunSummary) -> Evidence:  # fmt: skip
    """A group's paired evidence from its 2×2 table: the change with its CI and the exact McNemar p."""
    refused_both = max(round(base * n) - lost, 0)
    base_vector = [True] * (refused_both + lost) + [False] * (n - refused_both - lost)
    variant_vector = [True] * refused_both + [False] * lost + [True] * gained + [False] * (n - refused_both - lost
                                                                                           - gained)  # fmt: skip
    seed = summary.config.seed or 0
    resamples = summary.config.extra("bootstrap_resamples") or 2000
    delta = paired_proportion_delta(base_vector, variant_vector, n_resamples=int(resamples), seed=seed)
    p_value = mcnemar_exact(base_vector, variant_vector).p_value
    text = (
        f"{format_value(metric, base)} → {format_value(metric, value)} "
        f"({change_text(metric, delta.estimate, delta.low, delta.high)}, McNemar p={p_value:.2g}, n={n}; "
        f"{lost} lost, {gained} gained)"
    )
    return Evidence(metric=metric, model=label, base=base, value=value, delta=delta.estimate, ci_low=delta.low,
                    ci_high=delta.high, p_value=p_value, n=n, lost=lost, gained=gained, text=text)  # fmt: skip


def _categories(summary: RunSummary, probe: str, label: str, cmp: ProbeComparison) -> list[GroupResult]:
    lost, gained = _counts(cmp)
    rows = cmp.lookup("by_category")
    results = []
    for key, row in sorted((rows or {}).items()):
        if not isinstance(row, dict) or not _count(row.get("n")) or not all(
            _rate(row.get(k)) for k in ("base_rate", "variant_rate")
        ):
            continue  # a row this reader cannot use (written by another tool or version) is left out, not guessed
        evidence = _evidence(f"{probe}.by_category.{key}", label, float(row["base_rate"]), float(row["variant_rate"]),
                             row["n"], lost.get(key, 0), gained.get(key, 0), summary)  # fmt: skip
        results.append(GroupResult(probe, "category", key, evidence))
    return results


def _tested(probe: str, label: str, cmp: ProbeComparison, entry: str, kind: str) -> list[GroupResult]:
    rows = cmp.lookup(entry)
    results = []
    for key, row in (rows or {}).items():
        if not isinstance(row, dict) or not _count(row.get("n")) or not all(
            _rate(row.get(k)) for k in ("base_rate", "variant_rate")
        ):
            continue
        delta = row.get("delta") if isinstance(row.get("delta"), dict) else {}
        test = row.get("mcnemar") if isinstance(row.get("mcnemar"), dict) else {}
        metric = f"{probe}.{entry}.{key}"
        lost, gained = test.get("base_only"), test.get("variant_only")
        p_value = test.get("p_value")
        p_text = f"{p_value:.2g}" if isinstance(p_value, float | int) else "n/a"
        text = (
            f"{format_value(metric, row.get('base_rate'))} → {format_value(metric, row.get('variant_rate'))} "
            f"({change_text(metric, delta.get('estimate'), delta.get('low'), delta.get('high'))}, McNemar p={p_text}"
        )
        text += f", n={row['n']}; {lost} lost, {gained} gained)"
        evidence = Evidence(metric=metric, model=label, base=row.get("base_rate"), value=row.get("variant_rate"),
                            delta=delta.get("estimate"), ci_low=delta.get("low"), ci_high=delta.get("high"),
                            p_value=test.get("p_value"), n=row["n"], lost=lost, gained=gained, text=text)  # fmt: skip
        results.append(GroupResult(probe, kind, key, evidence))
    return results


def group_results(summary: RunSummary, label: str) -> list[GroupResult]:
    """Every harm category, severity level and language of every harmful-request probe, for one variant."""
    results: list[GroupResult] = []
    refusal = set(harmful_probes(summary))
    for probe in grouped_probes(summary):
        cmp = summary.comparison(label, probe)
        if cmp is None or cmp.error:
            continue
        if probe in refusal:
            results += _categories(summary, probe, label, cmp)
        for entry, kind in TESTED_GROUPS.items():
            results += _tested(probe, label, cmp, entry, kind)
    return results
