"""The report's deployment plan: ``compsafe advise`` under the run's own policy, as a section of report.html.

Why in the report: the people who read the report decide the deployment; the plan puts the gate, the
per-group losses and the flipped items into the form of that decision (which model serves which requests,
what stays on the uncompressed base, what to watch). The section is built from the summary with the run's
policy and undecided rules failing, as ``compsafe gate`` judges; ``compsafe advise RUN_DIR`` writes the
same plan as advice.json and takes other options (``--allow-insufficient``, ``--max-lost``, ``--profile``).
"""

from __future__ import annotations

from html import escape

from compsafe.advise import build_advice, choose_policy
from compsafe.advise.schema import Advice, Route
from compsafe.errors import CompsafeError
from compsafe.summary import RunSummary


def _route_row(tier: str, route: Route) -> str:
    evidence = "<br>".join(escape(f"{e.model} {e.metric}: {e.text}") for e in route.evidence)
    rejected = "<br>".join(escape(f"{r.variant}: {r.why}") for r in route.rejected)
    css = "fail" if route.fallback else "pass"
    return (
        f'<tr><td class="label">{escape(tier)}</td><td style="text-align:left">{escape(route.group.describe())}</td>'
        f'<td class="{css}">{escape(route.variant)}</td><td style="text-align:left">{escape(route.reason)}</td>'
        f'<td style="text-align:left" class="note">{evidence}{"<br>" if evidence and rejected else ""}'
        f"{('not chosen: ' + rejected) if rejected else ''}</td></tr>"
    )


def _variants_table(advice: Advice) -> str:
    rows = []
    for v in advice.variants:
        bits = "-" if v.bits_per_weight is None else f"{v.bits_per_weight:.2f}"
        size = "-" if not v.packed_size_bytes else f"{v.packed_size_bytes / 1e6:.1f} MB"
        why = "; ".join(v.failing or [f"undecided: {p}" for p in v.pending])
        css = "pass" if v.eligible else "fail"
        rows.append(
            f'<tr><td class="label">{escape(v.label)}</td><td>{bits}</td><td>{size}</td>'
            f'<td class="{css}">{escape(v.gate)}</td><td style="text-align:left">{escape(why)}</td></tr>'
        )
    return ("<table><tr><th>model (most compressed first)</th><th>bits/w</th><th>size</th><th>gate</th>"
            f"<th>why not eligible</th></tr>{''.join(rows)}</table>")  # fmt: skip


def _canaries(advice: Advice) -> str:
    canaries = advice.canaries
    parts = [f"<li>{escape(r.variant)} · {escape(r.text)}</li>" for r in canaries.rules]
    parts += [f"<li>replay <code>{escape(i.item_id)}</code> ({escape(i.probe)}, {escape(i.change)}): "
              f"{escape(i.prompt)} — expect {escape(i.expect)}</li>" for i in canaries.items]  # fmt: skip
    parts += [f"<li>undecided: {escape(p.variant)} · {escape(p.rule)}"
              + (f" (~{p.items_to_decide} paired items would decide it)" if p.items_to_decide else "") + "</li>"
              for p in canaries.pending]  # fmt: skip
    return f"<h3>Canary checks</h3><ul>{''.join(parts)}</ul>" if parts else ""


def advice_html(summary: RunSummary) -> str:
    try:
        policy, source = choose_policy(summary)
        advice = build_advice(summary, policy, policy_source=source)
    except CompsafeError as exc:
        return f'<h2>Deployment plan</h2><p class="note">Plan not built: {escape(str(exc))}</p>'
    rows = [_route_row(tier.name, route) for tier in advice.tiers for route in tier.routes]
    general = advice.tiers[0].routes[0]
    fallback = ("every request" if general.fallback
                else ", ".join(r.group.describe() for r in advice.fallback) or "nothing")  # fmt: skip
    notes = "".join(f"<li>{escape(n)}</li>" for n in advice.notes)
    stages = "".join(f"<li><b>{escape(s.stage)}</b>: {escape(s.action)} (proceed when {escape(s.proceed_when)})</li>"
                     for s in advice.rollout)  # fmt: skip
    return (
        f"<h2>Deployment plan</h2><p>Policy <b>{escape(advice.policy.name)}</b> ({escape(advice.policy.source)}); "
        f"stays on the uncompressed base: <b>{escape(fallback)}</b>.</p>{f'<ul>{notes}</ul>' if notes else ''}"
        f"{_variants_table(advice)}<table><tr><th>tier</th><th>requests</th><th>served by</th><th>why</th>"
        f"<th>evidence</th></tr>{''.join(rows)}</table>{_canaries(advice)}<h3>Rollout</h3><ol>{stages}</ol>"
        '<p class="note">A harm category or severity level is served by a variant only if the variant passes the '
        "policy and lost none of the base's refusals there. <code>compsafe advise RUN_DIR</code> writes this plan "
        "as advice.json; <code>--allow-insufficient</code> counts variants whose only open rules are undecided on "
        "this sample, <code>--max-lost N</code> tolerates N lost refusals per group.</p>"
    )
