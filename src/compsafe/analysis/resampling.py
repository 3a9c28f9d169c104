"""Paired bootstrap of any statistic of a set of items (ECE, a bias score, a between-group gap).

Why: many headline metrics are not means of per-item values (ECE bins items; a BBQ bias score is a ratio of
counts; a group gap is a max minus a min of group means), so ``paired_bootstrap_mean_delta`` does not apply.
Resampling item indices once and computing the statistic on the *same* indices for base and variant keeps the
pairing, exactly as in ``analysis.paired``. Resamples on which the statistic is undefined (None / NaN, e.g. no
non-"unknown" answers) are dropped; the number kept is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compsafe.analysis.paired import Interval, _percentile_interval

Statistic = Callable[[np.ndarray], float | None]


def paired_bootstrap_statistic(
    n_items: int,
    base_statistic: Statistic,
    variant_statistic: Statistic,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int | None | dict]:
    """Base value, variant value and ``variant - base`` with a paired percentile-bootstrap interval.

    Each statistic takes an index array into the (aligned) items and returns a float or None (undefined).
    """
    if n_items < 1:
        raise ValueError("paired bootstrap needs at least one item")
    everything = np.arange(n_items)
    base_value, variant_value = base_statistic(everything), variant_statistic(everything)
    defined = _finite(base_value) and _finite(variant_value)
    result: dict[str, float | int | None | dict] = {
        "base": base_value if _finite(base_value) else None,
        "variant": variant_value if _finite(variant_value) else None,
        "delta": None,
        "resamples_used": 0,
    }
    if not defined:
        return result
    estimate = float(variant_value) - float(base_value)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n_items, size=n_items)
        b, v = base_statistic(idx), variant_statistic(idx)
        if _finite(b) and _finite(v):
            deltas.append(float(v) - float(b))  # type: ignore[arg-type]
    interval = (
        _percentile_interval(estimate, np.asarray(deltas), confidence)
        if deltas
        else Interval(estimate, estimate, estimate, confidence)
    )
    result["delta"] = interval.to_dict()
    result["resamples_used"] = len(deltas)
    return result


def paired_bootstraps(
    base: Sequence[Any], variant: Sequence[Any], statistic_of: Callable[[Any, str], Statistic], keys: Sequence[str],
    *, n_resamples: int = 2000, seed: int = 0,
) -> list[dict[str, Any]]:
    """``paired_bootstrap_statistic`` of ``statistic_of(records, key)`` for each key, base against variant."""
    return [
        paired_bootstrap_statistic(
            len(base), statistic_of(base, key), statistic_of(variant, key), n_resamples=n_resamples, seed=seed
        )
        for key in keys
    ]  # fmt: skip


def headline_change(name: str, paired: dict[str, Any]) -> dict[str, Any]:
    """A comparison's headline from one paired bootstrap: ``base_<name>``, ``variant_<name>`` and ``delta``."""
    return {f"base_{name}": paired["base"], f"variant_{name}": paired["variant"], "delta": paired["delta"]}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(float(value))
