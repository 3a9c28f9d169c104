"""Compression methods and recipes: ``parse_recipe("int4-g128")`` then ``apply_recipe(model, recipe)``, or
``with applied(model, recipe, calibration) as variant:`` to measure a variant and get the base back.

Importing this package registers every built-in method (rtn, magnitude, nm, wanda, awq, lowrank, gptq,
fair-gptq, sparsegpt, ggml, cast, structured) in ``METHODS``.
"""

from compsafe.compress import (  # noqa: F401  (imported to register the methods)
    awq,
    fair_gptq,
    ggml,
    gptq,
    lowrank,
    magnitude,
    precision,
    rtn,
    sparsegpt,
    structured,
    wanda,
)
from compsafe.compress.applied import AppliedVariant, WeightSnapshot, applied, nonfinite_parameters
from compsafe.compress.base import CompressionConfig, CompressionReport
from compsafe.compress.calibration import CalibrationSet, CalibrationSpec, build_calibration
from compsafe.compress.registry import METHODS, apply_recipe, method_for, needs_calibration, parse_recipe

__all__ = [
    "METHODS",
    "AppliedVariant",
    "CalibrationSet",
    "CalibrationSpec",
    "CompressionConfig",
    "CompressionReport",
    "WeightSnapshot",
    "applied",
    "apply_recipe",
    "build_calibration",
    "method_for",
    "needs_calibration",
    "nonfinite_parameters",
    "parse_recipe",
]
