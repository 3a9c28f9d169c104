"""The report's standards section: per OWASP LLM Top 10 (2025) item and NIST AI RMF function/subcategory,
which probes and gate rules of this run provide evidence for it, and what that evidence says per variant.

Generated from the declarations (``Probe.standards``, ``policy.RULE_STANDARDS``; ``compsafe.standards``), so it
cannot drift from the code. ``standards_coverage`` is plain data: ``build_report`` writes it into summary.json
as ``standards`` (for automation) and both reports render it.

Result of an item for a variant, most severe first: ``fail`` (a gate rule on it failed), ``insufficient`` (a
rule could not be decided), ``changed (worse)`` / ``changed`` (a probe's headline moved significantly -- worse,
or in a direction it does not judge or for the better), ``pass`` (its rules passed, nothing moved
significantly), ``no significant change`` (probes ran, no rule on it), ``not tested`` (nothing in this run).
"""

from __future__ import annotations

from html import escape
from typing import Any

from compsafe.gate import FAIL, INSUFFICIENT, PASS, GateResult
from compsafe.metrics import DRIFT, dimension_cell, variant_labels
from compsafe.probes import PROBES
from compsafe.standards import all_items, item_title
from compsafe.summary import RunSummary

NOT_TESTED = "not tested"
PROBE_STATES = {"worse": "changed (worse)", "better": "changed (better)", "changed": "changed",
                "ns": "no significant change", "untested": "no paired test"}  # fmt: skip
ORDER = [FAIL, INSUFFICIENT, "changed (worse)", "changed", PASS, "no significant change", NOT_TESTED]


def _probe_result(summary: RunSummary, label: str, probe: str) -> str:
    info = summary.probes[probe]
    return PROBE_STATES.get(dimension_cell(summary, label, f"{probe}.{info.headline_metric}").state, "changed")


def _rule_ran(summary: RunSummary, metric: str) -> bool:
    probe = metric.split(".")[0]
    if probe == DRIFT:
        return any(summary.drift(label).entries() for label in variant_labels(summary))
    return probe in summary.probes


def _item_result(statuses: list[str]) -> str:
    folded = ["changed" if s in ("changed (better)", "changed") else s for s in statuses]
    folded = ["no significant change" if s == "no paired test" else s for s in folded]
    known = [s for s in folded if s in ORDER]
    return min(known, key=ORDER.index) if known else NOT_TESTED


def standards_coverage(summary: RunSummary, gate: GateResult | None) -> dict[str, Any]:
    """``{"policy", "items": [{item, title, probes, rules, results: {variant: result}, evidence}]}`` for every
    OWASP item and NIST entry compsafe knows, tested or not (an untested item says so)."""
    labels = variant_labels(summary)
    evidence: dict[str, list[dict[str, Any]]] = {item: [] for item in all_items()}
    for probe in summary.probes:
        if probe not in PROBES:
            continue
        declared = PROBES.get(probe).standards
        results = {label: _probe_result(summary, label, probe) for label in labels}
        for item in declared.items():
            evidence[item].append({"kind": "probe", "name": probe, "why": declared.why, "results": results})
    # a rule whose probe did not run is a gate failure (fail closed), but no evidence about any item
    checks = [c for c in (gate.checks if gate is not None else []) if _rule_ran(summary, c.rule.metric)]
    for rule in dict.fromkeys(check.rule for check in checks):
        declared = rule.standards()
        results = {c.variant: c.status for c in checks if c.rule == rule}
        for item in declared.items():
            evidence[item].append({"kind": "rule", "name": rule.describe(), "why": declared.why, "results": results})
    items = []
    for item, found in evidence.items():
        results = {label: _item_result([e["results"].get(label, NOT_TESTED) for e in found]) for label in labels}
        items.append({
            "item": item,
            "title": item_title(item),
            "probes": [e["name"] for e in found if e["kind"] == "probe"],
            "rules": [e["name"] for e in found if e["kind"] == "rule"],
            "results": results,
            "evidence": found,
        })  # fmt: skip
    return {"policy": gate.policy.name if gate is not None else None, "items": items}


def coverage_for_report(summary: RunSummary) -> dict[str, Any]:
    """The coverage under the policy the gate section uses (the run's profile's, else the default)."""
    from compsafe.errors import CompsafeError
    from compsafe.gate import evaluate_policy, policy_for_run

    try:
        gate = evaluate_policy(summary, policy_for_run(summary))
    except CompsafeError:
        gate = None
    return standards_coverage(summary, gate)


NOTE = (
    "What each probe and gate rule of this run is evidence for (declared next to the code: Probe.standards, "
    "policy.RULE_STANDARDS; table in docs/decisions.md). Per variant: fail / insufficient (a gate rule), changed "
    "(worse) / changed (a probe's headline moved significantly), pass (its rules passed, nothing moved), no "
    "significant change (probes only), not tested (gate rules whose probe did not run are left out). Evidence, "
    "not coverage: OWASP items about application plumbing (output handling, agency, system prompts, vector "
    "stores, consumption) are outside a model-level test."
)


def standards_html(coverage: dict[str, Any], labels: list[str]) -> str:
    head = "<th>item</th><th>probes</th><th>gate rules</th>" + "".join(f"<th>{escape(v)}</th>" for v in labels)
    rows = []
    for entry in coverage["items"]:
        cells = [f'<td class="label">{escape(entry["title"])}</td>',
                 f'<td style="text-align:left">{escape(", ".join(entry["probes"]) or "-")}</td>',
                 f'<td style="text-align:left">{escape("; ".join(entry["rules"]) or "-")}</td>']  # fmt: skip
        for label in labels:
            result = entry["results"].get(label, NOT_TESTED)
            css = {FAIL: "fail", INSUFFICIENT: "fail", PASS: "pass", "changed (worse)": "worse"}.get(result, "")
            cells.append(f'<td class="{css}">{escape(result)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<h2>Standards: OWASP LLM Top 10 (2025) and NIST AI RMF</h2><table><tr>{head}</tr>{''.join(rows)}</table>"
        f'<p class="note">{escape(NOTE)}</p>'
    )


def standards_markdown(coverage: dict[str, Any], labels: list[str]) -> list[str]:
    header = ["item", "probes", "gate rules", *labels]
    lines = ["## Standards: OWASP LLM Top 10 (2025) and NIST AI RMF", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    for entry in coverage["items"]:
        cells = [entry["title"], ", ".join(entry["probes"]) or "-", "; ".join(entry["rules"]) or "-"]
        cells += [entry["results"].get(label, NOT_TESTED) for label in labels]
        lines.append("| " + " | ".join(escape(c, quote=False).replace("|", "\\|") for c in cells) + " |")
    return [*lines, "", NOTE, ""]


def mapping_markdown() -> str:
    """The declared mapping as one markdown table (every registered probe, the drift ratio, every rule kind):
    what docs/decisions.md shows, regenerated from the code (a test keeps the two equal)."""
    from compsafe.metrics import DRIFT, DRIFT_STANDARDS
    from compsafe.policy import RULE_STANDARDS

    rows = [(f"probe `{name}`", cls.standards) for name, cls in PROBES.items()]
    rows.append((f"metric `{DRIFT}`", DRIFT_STANDARDS))
    rows += [(f"gate rule `{kind}`", declared) for kind, declared in RULE_STANDARDS.items()]
    lines = ["| measurement | OWASP LLM Top 10 (2025) | NIST AI RMF | why |", "|---|---|---|---|"]
    for name, declared in rows:
        owasp = ", ".join(declared.owasp) or "-"
        lines.append(f"| {name} | {owasp} | {', '.join(declared.nist)} | {declared.why} |")
    return "\n".join(lines) + "\n"
