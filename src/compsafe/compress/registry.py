"""The compression-method registry and the recipe entry points (parse a string, apply it to a model).

Each method module registers one instance of its method class here (plug-in style); importing
``compsafe.compress`` imports them all, so the registry is full before any lookup.
"""

from __future__ import annotations

import difflib

import torch

from compsafe.compress.base import CompressionConfig, CompressionMethod, CompressionReport
from compsafe.compress.calibration import CalibrationSet
from compsafe.errors import RecipeError
from compsafe.registry import Registry

METHODS: Registry[CompressionMethod] = Registry("compression method")

RECIPE_HINT = "recipes look like int8, int4-g128, int3-g128-asym, mag-50, mag-50-global, 2:4, fp16"


def all_examples() -> list[str]:
    """Every registered method's example recipes, in registry order (for help text and suggestions)."""
    return [example for _, method in METHODS.items() for example in method.examples]


def parse_recipe(recipe: str) -> CompressionConfig:
    """The config for ``recipe``; a ``RecipeError`` (one line, with a suggestion) when no method claims it.

    A method that recognises the shape of a recipe but rejects a value (``int5``) raises its own
    ``RecipeError``; its reason is folded into the same one-line message so the user sees both.
    ``<recipe>+keep=<modules>`` / ``+keep8=`` wraps any recipe in a ``ProtectedConfig`` (compress/protected.py).
    """
    if not isinstance(recipe, str) or not recipe.strip():
        raise RecipeError(f"unknown recipe {recipe!r} (empty): {RECIPE_HINT}")
    if not recipe.isascii() or not recipe.isprintable():  # int４ or int4-g٣ must not read as int4 / int4-g3
        raise RecipeError(f"unknown recipe {recipe!r} (a non-ASCII or control character): {RECIPE_HINT}")
    if "+keep" in recipe:
        from compsafe.compress.protected import parse_protected

        return parse_protected(recipe, parse_recipe)
    reason = ""
    for _, method in METHODS.items():
        try:
            config = method.parse(recipe)
        except RecipeError as exc:
            reason = f" ({exc})"
            break
        if config is not None:
            return config
    close = difflib.get_close_matches(recipe.strip().lower(), all_examples(), n=2, cutoff=0.4)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise RecipeError(
        f"unknown recipe {recipe!r}{reason}: {RECIPE_HINT} (run `compsafe variants` for the grammar).{hint}"
    )


def method_for(config: CompressionConfig) -> CompressionMethod:
    """The registered method that applies ``config``."""
    return METHODS.get(config.method)


def check_applicable(model: torch.nn.Module, config: CompressionConfig) -> None:
    """Fail before any work (before the base is probed) when ``config`` cannot apply to ``model``: a ``+keep``
    pattern that matches nothing, or a method's own ``check(model, config)`` (a base dtype, a model family)."""
    from compsafe.compress.protected import check_protected

    check_protected(model, config)
    inner = getattr(config, "inner", config)
    check = getattr(method_for(inner), "check", None)
    if check is not None:
        check(model, inner)


def needs_calibration(config: CompressionConfig) -> bool:
    """True for methods that learn from activations (GPTQ, AWQ, Wanda, SparseGPT)."""
    config = getattr(config, "inner", config)  # a +keep recipe calibrates when its inner method does
    return bool(getattr(method_for(config), "needs_calibration", False))


def apply_recipe(
    model: torch.nn.Module, recipe_or_config: str | CompressionConfig, calibration: CalibrationSet | None = None
) -> CompressionReport:
    """Compress ``model`` in place with a recipe string or config and return the accounting.

    Calibrated methods receive ``calibration`` (token windows, see ``compress.calibration``) and run on the
    shared block-by-block pass in ``compress.sequential``; the others ignore it.
    """
    config = parse_recipe(recipe_or_config) if isinstance(recipe_or_config, str) else recipe_or_config
    from compsafe.compress.protected import ProtectedConfig, apply_protected

    if isinstance(config, ProtectedConfig):  # the inner method runs with the kept modules hidden from it
        report = apply_protected(model, config, lambda m, inner: apply_recipe(m, inner, calibration))
        if calibration is not None and needs_calibration(config):
            report.extra.setdefault("calibration", calibration.to_dict())
        return report
    method = method_for(config)
    if getattr(method, "needs_calibration", False):
        if calibration is None:
            raise RecipeError(f"{config.recipe} needs calibration data: pass a CalibrationSet")
        report = method.apply(model, config, calibration)
        report.extra.setdefault("calibration", calibration.to_dict())
        return report
    return method.apply(model, config)
