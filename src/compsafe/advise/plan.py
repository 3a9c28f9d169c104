"""Turn a run into a layered deployment plan: per risk tier the most compressed variant that stays within
the policy, what stays on the uncompressed fallback, and what to keep checking.

The tiers follow the seeds' layered deployment (aggressive compression where the risk is low, light or none
where it is high) and the survey's checklist (gate on a policy, keep the uncompressed model as the fallback,
roll out progressively under monitoring):

* **general** — every rule of the policy (the run's profile policy, else the shipped default, or the one
  given). Its route serves all requests no other route takes: the most compressed variant the gate passes.
* **harm categories**, **severity levels** and **languages** — one route per category / level / language of
  the run's harmful-request probes (``groups.py``). A variant may serve a group only if it is eligible under
  the policy *and* lost at most ``max_lost`` of the base's refusals in that group in every probe that has it
  (default 0: a request kind where the variant was seen answering what the base refused stays off it). The
  most compressed such variant is chosen; none means the group stays on the base, and the plan says which
  variants were rejected and why, with their numbers.

Nothing here reruns a model: the plan is a pure function of the summary and the policy, so it is the same
for the report, the JSON and the terminal.
"""

from __future__ import annotations

from compsafe.advise.canary import item_canaries, rule_canaries
from compsafe.advise.groups import GroupResult, group_results
from compsafe.advise.schema import (
    BASE,
    Advice,
    Canaries,
    Evidence,
    Group,
    PolicyRef,
    Rejected,
    RolloutStage,
    Route,
    Tier,
    VariantStanding,
)
from compsafe.advise.standing import pending_checks, standings
from compsafe.gate import GateResult, evaluate_policy
from compsafe.metrics import declaration, format_value, paired_change, significance
from compsafe.policy import Policy
from compsafe.summary import RunSummary

KIND_TIERS = {
    "category": ("harm categories", "requests of one harm category (the harmful-request probes' categories)"),
    "level": ("severity levels", "requests of one harm-severity level (docs/severity_rubric.md)"),
    "language": ("languages", "requests in one language (the same requests asked in several languages)"),
}


def _rule_evidence(summary: RunSummary, result: GateResult, label: str) -> list[Evidence]:
    """The policy's checks on one variant as evidence lines: value, base, paired change and CI, test."""
    evidence = []
    for check in (c for c in result.checks if c.variant == label):
        metric = check.rule.metric
        change = paired_change(summary, label, metric)
        cmp = summary.comparison(label, metric.split(".")[0])
        test = significance(summary, label, metric)
        found = declaration(metric)
        mcnemar = cmp.test(found.test) if cmp is not None and found is not None else None
        p_value = mcnemar.p_value if mcnemar is not None else None
        text = (f"{check.status}: {check.rule.describe()} · {format_value(metric, check.base)} → "
                f"{format_value(metric, check.value)} ({test.evidence})")  # fmt: skip
        if check.reasons:
            text += f"; {'; '.join(check.reasons)}"
        evidence.append(Evidence(
            metric=metric, model=label, base=check.base, value=check.value,
            delta=change.estimate if change else None, ci_low=change.low if change else None,
            ci_high=change.high if change else None, p_value=p_value, n=cmp.n if cmp is not None else None,
            text=text,
        ))  # fmt: skip
    return evidence


def _general_route(summary: RunSummary, result: GateResult, ranked: list[VariantStanding]) -> Route:
    rejected = []
    for standing in ranked:
        if standing.label == BASE:
            break
        if standing.eligible:
            reason = "the most compressed variant the policy passes" + (
                " (undecided rules allowed)" if standing.gate == "pending" else "")
            return Route(group=Group(kind="all"), variant=standing.label, reason=reason,
                         evidence=_rule_evidence(summary, result, standing.label), rejected=rejected)  # fmt: skip
        why = standing.failing or [f"undecided on this sample: {r}" for r in standing.pending]
        rejected.append(Rejected(variant=standing.label, why=f"{standing.gate}: {'; '.join(why)}"))
    return Route(group=Group(kind="all"), variant=BASE, fallback=True, reason="no variant passes the policy",
                 rejected=rejected)  # fmt: skip


def _lost_text(results: list[GroupResult]) -> str:
    return "; ".join(f"{r.probe}: {r.lost} lost of {r.evidence.n}" for r in results)


def _group_routes(summary: RunSummary, eligible: list[str], max_lost: int) -> dict[str, list[Route]]:
    """Routes per group kind, each group to the most compressed eligible variant losing <= max_lost there."""
    by_variant = {label: group_results(summary, label) for label in eligible}
    keys: dict[tuple[str, str], set[str]] = {}
    for results in by_variant.values():
        for r in results:
            keys.setdefault((r.kind, r.key), set()).add(r.probe)
    routes: dict[str, list[Route]] = {}
    for (kind, key), probes in sorted(keys.items(), key=lambda kv: (kv[0][0], _sort_key(kv[0][1]))):
        group = Group(kind=kind, key=key, probes=sorted(probes))
        rejected: list[Rejected] = []
        seen: list[Evidence] = []
        route = None
        for label in eligible:
            results = [r for r in by_variant[label] if (r.kind, r.key) == (kind, key)]
            if all(r.lost <= max_lost for r in results):
                route = Route(group=group, variant=label, evidence=[r.evidence for r in results], rejected=rejected,
                              reason=f"the most compressed eligible variant losing at most {max_lost} refusal(s) "
                                     f"here ({_lost_text(results)})")  # fmt: skip
                break
            rejected.append(Rejected(variant=label, why=f"lost refusals here ({_lost_text(results)})"))
            seen += [r.evidence for r in results]
        if route is None:
            route = Route(group=group, variant=BASE, fallback=True, evidence=seen, rejected=rejected,
                          reason=f"every eligible variant lost more than {max_lost} of the base's refusals here")
        routes.setdefault(kind, []).append(route)
    return routes


def _sort_key(key: str) -> tuple[int, str]:
    return (0, f"{int(key):09d}") if key.isdigit() else (1, key)


def _rollout(advice: Advice, general: Route) -> list[RolloutStage]:
    deployed = advice.deployed()
    if not deployed:
        undecided = {v.label for v in advice.variants if v.gate == "pending"}  # would pass if decided in favour
        pending = [f"{p.variant}: {p.rule} (~{p.items_to_decide} items)" for p in advice.canaries.pending
                   if p.items_to_decide and p.variant in undecided]  # fmt: skip
        return [RolloutStage(
            stage="hold", action="serve every request from the uncompressed base",
            proceed_when="a variant passes the policy" + (f"; a larger run would decide {', '.join(pending)}"
                                                           if pending else ""),
        )]  # fmt: skip
    fallback = [r.group.describe() for r in advice.fallback]
    n_items = len(advice.canaries.items)
    return [
        RolloutStage(stage="shadow",
                     action=f"run {', '.join(deployed)} beside the base on sampled requests without serving it; "
                            f"replay the {n_items} canary item(s)",
                     proceed_when="every canary item gets the base's decision and no rule canary alerts"),
        RolloutStage(stage="pilot",
                     action=f"serve {general.group.describe()} from {general.variant}; "
                            + (f"keep {', '.join(fallback)} on the base" if fallback else "no group needs the base"),
                     proceed_when="rule canaries hold through the pilot; rerun `compsafe run` and `compsafe advise` "
                                  "after any runtime, kernel or weight change"),
        RolloutStage(stage="widen",
                     action="move a group off the base only on new evidence",
                     proceed_when=f"a run with more items in that group shows at most {advice.max_lost_refusals} "
                                  "lost refusal(s) there, and every undecided rule is decided"),
    ]  # fmt: skip


def build_advice(
    summary: RunSummary,
    policy: Policy,
    *,
    policy_source: str,
    allow_insufficient: bool | None = None,
    max_lost: int = 0,
    run_dir: str = "",
) -> Advice:
    """The deployment plan of a finished run under ``policy`` (see the module docstring for the tiers)."""
    result = evaluate_policy(summary, policy, allow_insufficient=allow_insufficient)
    ranked = standings(summary, result)
    eligible = [s.label for s in ranked if s.eligible and s.label != BASE]
    general = _general_route(summary, result, ranked)
    tiers = [Tier(name="general", description=f"every rule of policy {policy.name}; serves all requests no other "
                                              "route takes", routes=[general])]  # fmt: skip
    for kind, routes in _group_routes(summary, eligible, max_lost).items():
        name, scope = KIND_TIERS.get(kind, (kind, kind))
        tiers.append(Tier(name=name, description=f"{scope}: eligible under the policy and at most {max_lost} of "
                                                 "the base's refusals lost there", routes=routes))  # fmt: skip
    base = summary.models.get(BASE)
    advice = Advice(
        compsafe_version=summary.compsafe_version,
        run_dir=run_dir,
        model=(base.source or base.label) if base else None,
        policy=PolicyRef(name=policy.name, source=policy_source, allow_insufficient=result.allow_insufficient),
        max_lost_refusals=max_lost,
        notes=[*result.problems, *result.notes, *([] if eligible else ["no variant is eligible: every request "
                                                                         "stays on the base"])],  # fmt: skip
        variants=ranked,
        tiers=tiers,
        fallback=[route for tier in tiers for route in tier.routes if route.fallback],
    )
    served_by = {r.group.key: r.variant for tier in tiers for r in tier.routes if r.group.kind == "category"}
    deployed = advice.deployed()
    advice.canaries = Canaries(
        rules=rule_canaries(result, deployed),
        items=item_canaries(summary, deployed, served_by, general.variant),
        pending=pending_checks(result),
    )
    advice.rollout = _rollout(advice, general)
    return advice

