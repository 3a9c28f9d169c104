"""Threat-model profiles: which probes, variants and gate policy a deployment of a given kind needs.

A profile is a YAML file in this package (``chat-assistant``, ``code``, ``rag``, ``minimal``,
``fairness-sensitive``, ``privacy-sensitive``, ``agent``) with
``probes``, ``variants``, a ``description`` and a ``policy`` (a mapping in the gate grammar, or the name of a
shipped policy). ``compsafe run --profile NAME`` fills the probes and variants the user did not give, and
``compsafe gate`` uses the profile's policy for runs made with one: the threat model decides which
dimensions are security-sensitive, so it also decides what blocks a deployment.
"""

from __future__ import annotations

import difflib
import importlib.resources
from dataclasses import dataclass
from typing import Any

from compsafe.errors import PolicyError, UnknownNameError

PROFILE_KEYS = {"name", "description", "probes", "variants", "policy"}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    probes: tuple[str, ...]
    variants: tuple[str, ...]
    policy_spec: str | dict[str, Any]  # a shipped policy name or a policy mapping; gate.profile_policy parses it


def profile_names() -> list[str]:
    folder = importlib.resources.files(__name__)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def _strings(name: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"profile {name}: {key} must be a list of strings")
    return tuple(value)


def load_profile(name: str) -> Profile:
    """A shipped profile by name; unknown names get a did-you-mean."""
    names = profile_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=2, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown profile {name!r}.{hint} Known: {', '.join(names)}.")
    from compsafe.yamlfile import parse_yaml

    text = importlib.resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = parse_yaml(text, f"profile {name}", PolicyError)
    if not isinstance(data, dict):
        raise PolicyError(f"profile {name}: expected a mapping")
    unknown = sorted(set(data) - PROFILE_KEYS)
    if unknown:
        raise PolicyError(f"profile {name}: unknown key(s) {', '.join(unknown)}")
    policy_spec = data.get("policy", "default")
    if not isinstance(policy_spec, str | dict):
        raise PolicyError(f"profile {name}: policy must be a shipped policy name or a mapping of rules")
    return Profile(
        name=name,
        description=" ".join(str(data.get("description", "")).split()),
        probes=_strings(name, "probes", data.get("probes", [])),
        variants=_strings(name, "variants", data.get("variants", [])),
        policy_spec=policy_spec,
    )
