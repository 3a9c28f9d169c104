"""Probes: one file per dimension, registered by name. ``build_probe("refusal:harmbench", limit=20)``."""

from compsafe.probes import (  # noqa: F401  (register the built-in probes)
    backdoor,
    bbq,
    bold,
    crows,
    dialect,
    jailbreak,
    lmeval,
    long_context,
    mcqa,
    multilingual,
    perplexity,
    privacy,
    refusal,
    refusal_margin,
    severity,
    toxicity,
)
from compsafe.probes.base import PROBES, DatasetInfo, Item, Probe, ProbeContext, Record


def build_probe(spec: str, limit: int | None = None) -> Probe:
    """``name`` or ``name:set`` or ``name:path/to/file.jsonl`` -> a probe holding its items."""
    name, _, source = spec.partition(":")
    probe_cls = PROBES.get(name.strip())
    return probe_cls.from_spec(source.strip() or None, limit)


__all__ = ["PROBES", "DatasetInfo", "Item", "Probe", "ProbeContext", "Record", "build_probe"]
