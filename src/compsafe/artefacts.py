"""What a run records about a variant's files: their size on disk, their export manifest, and (``--cost``) what
they cost to load and run.

Why one place: a folder or ``.gguf`` variant is measured on the files the user gave, and a recipe variant on
the files ``compsafe compress --format auto`` would write for it (``export.recipe_artefact_cost``: written to a
temporary folder, measured in a fresh process, deleted), so every row of the cost table is an artefact's cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compsafe.compress import CalibrationSet, CompressionConfig, WeightSnapshot, applied
from compsafe.models import ModelHandle
from compsafe.models.cost import handle_cost
from compsafe.models.storage import stored_size


def path_facts(path: Path, like: ModelHandle, cost: bool) -> dict[str, Any]:
    """``compression`` (bits/weight and bytes read from the files), ``export`` (the summary of a manifest that
    ``compsafe compress`` wrote: inside a folder or beside a .gguf) and, when ``cost``, ``cost``."""
    from compsafe.export import manifest_path, manifest_summary

    facts: dict[str, Any] = {"compression": stored_size(path)}
    if cost:
        facts["cost"] = handle_cost(path, like)
    manifest = manifest_path(path) if path.is_dir() or path.suffix == ".gguf" else None
    if manifest is not None and manifest.is_file():
        facts["export"] = manifest_summary(manifest)
    return facts


def recipe_cost(handle: ModelHandle, report: Any) -> dict[str, Any]:
    """The cost of the recipe variant now applied to ``handle`` (see the module docstring)."""
    from compsafe.export import recipe_artefact_cost

    return recipe_artefact_cost(handle, report)


def rebuilt_recipe_cost(handle: ModelHandle, config: CompressionConfig, calibration: CalibrationSet | None,
                        snapshot: WeightSnapshot) -> dict[str, Any]:
    """``recipe_cost`` of a variant whose records were all in the store: built again only to write its files."""
    with applied(handle.model, config, calibration, snapshot=snapshot) as built:
        return recipe_cost(handle, built.report)
