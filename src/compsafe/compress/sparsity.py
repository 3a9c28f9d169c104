"""The sparsity target every pruning method shares: a whole percent of each row, or N:M.

Why one place: magnitude, Wanda and SparseGPT accept the same two kinds of target and name them the same way in
recipe strings (``wanda-50``, ``2:4-wanda``); validating and naming them here keeps the error messages and the
recipe grammar identical across methods.
"""

from __future__ import annotations

from typing import Any

from compsafe.errors import RecipeError


def check_whole_percent(sparsity: float, example: str) -> None:
    """``sparsity`` must be a whole percent strictly between 0 and 100 (``example``: a recipe to suggest)."""
    percent = sparsity * 100
    if not 0 < sparsity < 1 or abs(percent - round(percent)) > 1e-6:
        raise RecipeError(f"sparsity {sparsity!r} must be a whole percent from 1 to 99, e.g. {example}")


def pruning_sparsity(method: str, sparsity: float, n: int | None, m: int | None) -> float:
    """The validated sparsity of an unstructured (``n``, ``m`` None) or N:M target (then ``1 - n/m``)."""
    if (n is None) != (m is None):
        raise RecipeError(f"{method} N:M needs both n and m (e.g. 2:4-{method})")
    if n is not None and m is not None:
        if not 1 <= n < m:
            raise RecipeError(f"{n}:{m}-{method}: need 1 <= n < m (e.g. 2:4-{method})")
        return 1 - n / m
    check_whole_percent(sparsity, f"{method}-50")
    return sparsity


def pruning_recipe(method: str, sparsity: float, n: int | None, m: int | None, suffix: str = "") -> str:
    """``<n>:<m>-<method><suffix>`` for N:M, else ``<method>-<percent><suffix>``."""
    if n is not None:
        return f"{n}:{m}-{method}{suffix}"
    return f"{method}-{round(sparsity * 100)}{suffix}"


def check_divisible(targets: list[tuple[str, Any]], recipe: str, m: int, unstructured: str) -> None:
    """Every target's ``in_features`` must divide into groups of ``m`` (an N:M pattern); ``unstructured`` is
    the unstructured recipe of the same sparsity to suggest instead."""
    from compsafe.compress.targets import weight_view

    bad = [(name, weight_view(module).shape[1]) for name, module in targets if weight_view(module).shape[1] % m]
    if bad:
        name, width = bad[0]
        raise RecipeError(
            f"{recipe}: layer {name!r} has in_features {width}, not divisible by m={m} "
            f"({len(bad)} layer(s) affected); use an m that divides it or unstructured {unstructured}"
        )
