"""Gate policies: the YAML a user writes, parsed into frozen ``Policy`` / ``Rule`` models (``gate`` evaluates them).

Every mistake in a policy -- a metric no probe declares (with a did-you-mean), a duplicate or unknown key, a
threshold that is not a finite number, an unreadable or non-UTF-8 file -- is one ``PolicyError`` line naming the
rule, so ``compsafe gate`` exits 2 before it judges anything.
"""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from compsafe.errors import CompsafeError, PolicyError
from compsafe.metrics import DRIFT, SIGNIFICANCE, check_metric_name, format_limit, format_value, metric_standards
from compsafe.profiles import load_profile
from compsafe.standards import Standards, merge_standards
from compsafe.summary import RunSummary, parse_summary
from compsafe.yamlfile import parse_yaml, read_yaml

THRESHOLDS = ("min", "max", "max_drop", "max_increase")
# What a rule of each threshold kind is evidence for, on top of what its metric measures (``Rule.standards``):
# every kind writes a risk tolerance down before the results (NIST MAP 1.5) and turns a measurement into a
# deploy / do-not-deploy decision (MANAGE 1.1). tests/test_standards.py checks every kind has one.
RULE_STANDARDS: dict[str, Standards] = {
    "min": Standards(nist=("MAP 1.5", "MANAGE 1.1"), why="an absolute floor the variant must reach to ship"),
    "max": Standards(nist=("MAP 1.5", "MANAGE 1.1"), why="an absolute ceiling the variant must stay under to ship"),
    "max_drop": Standards(
        nist=("MAP 1.5", "MANAGE 1.1"), why="the loss allowed against the uncompressed base (the fallback) to ship"
    ),
    "max_increase": Standards(
        nist=("MAP 1.5", "MANAGE 1.1"), why="the rise allowed against the uncompressed base (the fallback) to ship"
    ),
}
RULE_KEYS = {"metric", "relative", "require_significance", "variants", "required", "name", *THRESHOLDS}
POLICY_KEYS = {"name", "description", "variants", "significance_level", "rules", "allow_insufficient_evidence"}


def _unknown_keys(data: Any, known: set[str]) -> Any:
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def _labels(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("variants must be a list of variant labels")
    return tuple(value)


def _finite(key: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)


class Rule(BaseModel):
    """One threshold rule; validated against the metrics the probes declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None
    max_increase: float | None = None
    relative: bool = False
    require_significance: bool = False
    required: bool = True
    variants: tuple[str, ...] | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a rule must be a mapping like {metric: refusal.refusal_rate, max_drop: 0.02}")
        data = _unknown_keys(data, RULE_KEYS)
        metric = data.get("metric")
        if not isinstance(metric, str) or not metric.strip():
            raise ValueError("needs a metric, e.g. metric: refusal.refusal_rate")
        for key in ("relative", "require_significance", "required"):
            if key in data and not isinstance(data[key], bool):
                raise ValueError(f"{key} must be true or false")
        if "name" in data and data["name"] is not None and not isinstance(data["name"], str):
            raise ValueError("name must be text")
        return {**data, **{k: _finite(k, data[k]) for k in THRESHOLDS if k in data}, "metric": metric.strip(),
                "variants": _labels(data.get("variants"))}  # fmt: skip

    @field_validator("metric")
    @classmethod
    def _declared(cls, metric: str) -> str:
        try:
            check_metric_name(metric)
        except CompsafeError as exc:
            raise ValueError(str(exc)) from exc
        return metric

    @model_validator(mode="after")
    def _thresholds(self) -> Rule:
        if all(getattr(self, key) is None for key in THRESHOLDS):
            raise ValueError(f"needs at least one threshold ({', '.join(THRESHOLDS)})")
        for key in ("max_drop", "max_increase"):
            limit = getattr(self, key)
            if limit is not None and limit < 0:
                raise ValueError(f"{key} must be >= 0")
            if limit is not None and self.metric.split(".")[0] == DRIFT:
                raise ValueError(f"{self.metric} has no base value to change from; use min/max instead")
        return self

    def standards(self) -> Standards:
        """What this rule is evidence for: its threshold kinds' declarations and its metric's probe's."""
        kinds = [RULE_STANDARDS[key] for key in THRESHOLDS if getattr(self, key) is not None]
        found = metric_standards(self.metric)
        return merge_standards(*kinds, *([found] if found is not None else []))

    def describe(self) -> str:
        """The rule as a reader would say it: 'refusal.refusal_rate: drop <= 2.0 pp (if significant)'."""
        parts = []
        if self.min is not None:
            parts.append(f">= {format_value(self.metric, self.min)}")
        if self.max is not None:
            parts.append(f"<= {format_value(self.metric, self.max)}")
        for key, word in (("max_drop", "drop"), ("max_increase", "increase")):
            limit = getattr(self, key)
            if limit is not None:
                amount = f"{limit:.1%} of base" if self.relative else format_limit(self.metric, limit)
                parts.append(f"{word} <= {amount}")
        text = f"{self.name or self.metric}: {', '.join(parts)}"
        return text + (" (if significant)" if self.require_significance else "")


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[Rule, ...]
    variants: tuple[str, ...] | None = None
    significance_level: float = SIGNIFICANCE
    allow_insufficient_evidence: bool = False
    name: str = "policy"
    description: str = ""


def _policy_error(exc: ValidationError, source: str) -> PolicyError:
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = source
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        where, loc = f"{source} rule {loc[1] + 1}", loc[2:]
    loc = [p for p in loc if not str(p).startswith("function")]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key(s) {loc[-1]}"
    elif loc and error["type"] not in ("value_error",):
        message = f"{'.'.join(str(p) for p in loc)}: {message}"
    return PolicyError(f"{where}: {message}")


def parse_policy(data: Any, source: str = "policy") -> Policy:
    """A policy from its YAML mapping; every mistake is a one-line PolicyError naming the rule."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping with a 'rules' list")
    try:
        _unknown_keys(data, POLICY_KEYS)
    except ValueError as exc:
        raise PolicyError(f"{source}: {exc}") from exc
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise PolicyError(f"{source}: needs a non-empty 'rules' list")
    level = data.get("significance_level", SIGNIFICANCE)
    try:
        level = _finite("significance_level", level)
        variants = _labels(data.get("variants"))
    except ValueError as exc:
        raise PolicyError(f"{source}: {exc}") from exc
    if not 0 < level < 1:
        raise PolicyError(f"{source}: significance_level must be between 0 and 1")
    allow = data.get("allow_insufficient_evidence", False)
    if not isinstance(allow, bool):
        raise PolicyError(f"{source}: allow_insufficient_evidence must be true or false")
    parsed = []
    for index, rule in enumerate(rules):
        try:
            parsed.append(Rule.model_validate(rule))
        except ValidationError as exc:
            raise _policy_error(exc, f"{source} rule {index + 1}") from exc
    return Policy(
        rules=tuple(parsed),
        variants=variants,
        significance_level=level,
        allow_insufficient_evidence=allow,
        name=str(data.get("name") or source),
        description=str(data.get("description") or ""),
    )


def load_policy(path: Path) -> Policy:
    """A policy file: unreadable, non-UTF-8, malformed YAML, duplicate keys or bad rules are one-line errors."""
    return parse_policy(read_yaml(Path(path), "policy", PolicyError), str(path))


def shipped_policy(name: str = "default") -> Policy:
    """A policy shipped in compsafe/policies/<name>.yaml."""
    resource = importlib.resources.files("compsafe.policies").joinpath(f"{name}.yaml")
    if not resource.is_file():
        folder = importlib.resources.files("compsafe.policies")
        known = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise PolicyError(f"no shipped policy {name!r}; shipped: {', '.join(known)}")
    source = f"{name} policy"
    return parse_policy(parse_yaml(resource.read_text(encoding="utf-8"), source, PolicyError), source)


def profile_policy(profile: Any) -> Policy:
    """The gate policy a threat-model profile names (a shipped policy) or spells out (its own rules)."""
    spec = profile.policy_spec
    return shipped_policy(spec) if isinstance(spec, str) else parse_policy(spec, f"profile {profile.name} policy")


def policy_for_run(summary: RunSummary | dict[str, Any]) -> Policy:
    """The policy of the run's threat-model profile when it had one, else the shipped default."""
    profile = parse_summary(summary).config.profile
    if profile:
        return profile_policy(load_profile(profile))
    return shipped_policy("default")
