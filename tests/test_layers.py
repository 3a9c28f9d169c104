"""Imports point down the layers and packages never import each other in a circle (docs/design.md).

Every ``import compsafe.X`` / ``from compsafe.X import`` anywhere in a module counts, including imports inside
functions: a lazy import is still a dependency. A new top-level module or package must be given a layer here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import compsafe

SRC = Path(compsafe.__file__).parent

# Lowest first. A unit may import its own layer and the layers below it, never a layer above.
LAYERS: list[set[str]] = [
    # primitives: errors, the plug-in registry, digests, the store and the run-folder writer; analysis is pure
    # statistics over records (probes' summaries use it), so it sits here and may import only errors/runfolder
    # paths/limits/jsonio: never-raising path checks and the input limits every reader of user files applies;
    # runlock: one writer per run folder and store; memory: the allocator setting the CLI applies at start
    {"errors", "registry", "integrity", "store", "runfolder", "summary", "yamlfile", "analysis", "data", "policies",
     "paths", "limits", "jsonio", "runlock", "standards", "memory"},
    # the ground floor proper: models, compression, probes, judges, configuration, training, export
    {"models", "compress", "probes", "judges", "config", "profiles", "training", "export", "manifest"},
    {"comparisons", "metrics"},  # paired comparisons and metric lookup: read the probes' declarations
    # artefacts: a variant's files, their size, manifest and cost; variant_spec: what a --variants entry names
    # attack: the differential GCG search (drives two models, records in the store)
    {"runner", "diagnose", "executors", "artefacts", "variant_spec", "attack"},
    # judging: rejudge a finished run (reads runner, writes reports); gate_artefact: a verdict bound to files
    {"report", "gate", "gate_artefact", "policy", "advise", "judging"},
    {"api", "api_training", "api_attack"},
    {"cli", "__main__"},
]
# units that may import only these (besides themselves)
PURE = {"analysis": {"errors", "runfolder", "paths", "jsonio", "limits"}}
# Cycles that exist today and are being removed; the list may only shrink. (gate <-> report went when the metric
# lookup left report/: report/metrics.py -> compsafe/metrics.py, issue 15.3.)
KNOWN_CYCLES: set[frozenset[str]] = set()


def unit_of(module: str) -> str:
    """compsafe.compress.rtn -> compress; compsafe.api -> api; compsafe -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the modules that import it (for the failure message)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("compsafe.") and unit_of(target) != unit_of(module):
                    graph[unit_of(module)][unit_of(target)].add(module)
    return graph


def layer_of(unit: str) -> int:
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"compsafe.{unit} has no layer: add it to LAYERS in tests/test_layers.py")


def test_every_unit_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if not p.name.startswith((".", "_"))}
    units = {u for u in units if (SRC / u).is_dir() or (SRC / f"{u}.py").is_file()} | {"__main__"}
    for unit in units:
        layer_of(unit)


def test_no_import_points_up() -> None:
    upward = [
        f"{', '.join(sorted(importers))} (layer {layer_of(unit)}) imports compsafe.{target} (layer {layer_of(target)})"
        for unit, targets in import_graph().items()
        if unit != "__init__"
        for target, importers in targets.items()
        if target != "__init__" and layer_of(target) > layer_of(unit)
    ]
    assert not upward, "imports against the flow:\n" + "\n".join(upward)


def test_pure_units_import_only_primitives() -> None:
    graph = import_graph()
    wrong = [
        f"{', '.join(sorted(graph[unit][target]))} imports compsafe.{target}"
        for unit, allowed in PURE.items()
        for target in graph[unit]
        if target not in allowed
    ]
    assert not wrong, "pure statistics reaching into other packages:\n" + "\n".join(wrong)


def test_no_package_cycles() -> None:
    graph = {unit: set(targets) - {"__init__"} for unit, targets in import_graph().items()}
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    new = sorted({c for c in cycles if frozenset(c.split(" -> ")) not in KNOWN_CYCLES}, key=len)
    assert not new, "package import cycles:\n" + "\n".join(new[:10])


def test_known_cycles_still_exist() -> None:
    """A cycle that was removed must leave KNOWN_CYCLES too, so the list only ever shrinks."""
    graph = import_graph()
    for cycle in KNOWN_CYCLES:
        a, b = sorted(cycle)
        assert b in graph[a] and a in graph[b], f"{a} <-> {b} is gone: remove it from KNOWN_CYCLES"
