"""advice.json: the deployment plan ``compsafe advise`` writes, as typed, schema-versioned models.

Why a schema: the plan is meant for automation (a router's configuration, a canary job's item list), so its
shape is a contract. ``ADVICE_SCHEMA_VERSION`` rises on any change a reader must know about; models forbid
nothing extra on read so an older reader still reads a newer plan's known fields. Numbers are finite or null.

Shape (version 1)::

    advice_schema_version, compsafe_version, run_dir, model, policy {name, source, allow_insufficient},
    max_lost_refusals, notes [str]
    variants [VariantStanding]           most compressed first; the base last
    tiers [Tier {name, description, routes [Route {group, variant, fallback, reason, evidence [Evidence],
                                                   rejected [{variant, why}]}]}]
    fallback [Route]                     every route that stays on the uncompressed base
    canaries {rules [RuleCanary], items [ItemCanary], pending [PendingCheck]}
    rollout [RolloutStage]
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ADVICE_SCHEMA_VERSION = 1
BASE = "base"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class Evidence(_Model):
    """One number behind a line of the plan: the metric, both models' values, the paired change, its CI, n."""

    metric: str
    model: str
    base: float | None = None
    value: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: int | None = None
    lost: int | None = None  # items the base refused and the model did not (refusal groups)
    gained: int | None = None  # items the model refused and the base did not
    text: str = ""


class Group(_Model):
    """A slice of requests a router can send somewhere: all traffic, a harm category, a severity level."""

    kind: str  # all | category | level
    key: str = ""
    probes: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "all":
            return "all other requests"
        return f"{self.kind} {self.key}"


class Rejected(_Model):
    variant: str
    why: str


class Route(_Model):
    """Where one group of requests goes, why, and the numbers that say so."""

    group: Group
    variant: str
    fallback: bool = False  # True: stays on the uncompressed base
    reason: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    rejected: list[Rejected] = Field(default_factory=list)


class Tier(_Model):
    name: str
    description: str
    routes: list[Route] = Field(default_factory=list)


class VariantStanding(_Model):
    """A model of the run ranked by how compressed it is, with its gate standing under the policy."""

    label: str
    recipe: str | None = None
    weights_digest: str | None = None
    bits_per_weight: float | None = None
    packed_size_bytes: int | None = None
    gate: str  # pass | pending (only undecided rules) | fail | broken | base
    eligible: bool = False
    failing: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)


class RuleCanary(_Model):
    """A policy rule turned into a monitoring threshold on a deployed variant."""

    variant: str
    metric: str
    rule: str
    base: float | None = None
    measured: float | None = None
    alert_below: float | None = None
    alert_above: float | None = None
    text: str = ""


class ItemCanary(_Model):
    """An item whose decision flipped: replay it after every change and compare with the base's decision."""

    variant: str
    probe: str
    item_id: str
    category: str | None = None
    prompt: str = ""
    base_verdict: str | None = None
    variant_verdict: str | None = None
    change: str  # lost refusal | new refusal
    served_by: str  # the model the plan routes this item's group to
    expect: str = ""


class PendingCheck(_Model):
    """A rule this run could not decide, and roughly how many paired items would."""

    variant: str
    rule: str
    items_to_decide: int | None = None
    reason: str = ""


class Canaries(_Model):
    rules: list[RuleCanary] = Field(default_factory=list)
    items: list[ItemCanary] = Field(default_factory=list)
    pending: list[PendingCheck] = Field(default_factory=list)


class RolloutStage(_Model):
    stage: str
    action: str
    proceed_when: str


class PolicyRef(_Model):
    name: str
    source: str
    allow_insufficient: bool = False


class Advice(_Model):
    advice_schema_version: int = ADVICE_SCHEMA_VERSION
    compsafe_version: str = "?"
    run_dir: str = ""
    model: str | None = None
    policy: PolicyRef
    max_lost_refusals: int = 0
    notes: list[str] = Field(default_factory=list)
    variants: list[VariantStanding] = Field(default_factory=list)
    tiers: list[Tier] = Field(default_factory=list)
    fallback: list[Route] = Field(default_factory=list)
    canaries: Canaries = Field(default_factory=Canaries)
    rollout: list[RolloutStage] = Field(default_factory=list)

    def deployed(self) -> list[str]:
        """The compressed variants the plan serves some traffic with (most compressed first)."""
        used = {route.variant for tier in self.tiers for route in tier.routes}
        return [v.label for v in self.variants if v.label in used and v.label != BASE]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
