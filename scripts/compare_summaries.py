"""Compare two runs' summary.json value by value, for "behaviour unchanged" checks across a refactor.

    python scripts/compare_summaries.py RUN_A RUN_B

Both summaries are flattened to ``path -> value`` leaves. What cannot be the same by construction is dropped
first: timings (``timing_seconds``, every ``seconds``/``*_seconds`` key), the run's own paths (``config.out``,
``config.store``), ``schema_version`` and ``compsafe_version``. Keys found on one side only (fields a newer
writer adds) are listed by their top two path parts and not compared. Every shared leaf is then compared
exactly (numbers with ``==``, no tolerance); each difference is printed with both values. Exit 0 when every
shared leaf is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

DROPPED_TOP = {"timing_seconds", "schema_version", "compsafe_version"}
DROPPED_PATHS = {"config.out", "config.store"}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a.b[0]": 1, "a.b[1]": 2}``; empty containers are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def comparable(path: str) -> bool:
    """Whether a leaf can be the same in two runs at all (not a timing, a path or a version stamp)."""
    top = path.split(".")[0].split("[")[0]
    last = path.split(".")[-1]
    return top not in DROPPED_TOP and path not in DROPPED_PATHS and not (last == "seconds" or last.endswith("_seconds"))


def load(run_dir: Path) -> dict[str, Any]:
    return {k: v for k, v in flatten(json.loads((run_dir / "summary.json").read_text())).items() if comparable(k)}


def group(paths: set[str]) -> str:
    """Paths counted by their first two parts: 'metrics.base (12), judge.spec (1)'."""
    counts = Counter(".".join(p.replace("[", ".[").split(".")[:2]) for p in paths)
    return ", ".join(f"{name} ({n})" for name, n in sorted(counts.items())) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args()
    a, b = load(args.run_a), load(args.run_b)
    shared = sorted(set(a) & set(b))
    differing = [p for p in shared if a[p] != b[p]]
    print(f"A: {args.run_a}  B: {args.run_b}")
    same = len(shared) - len(differing)
    print(f"shared leaves compared: {len(shared)}; identical: {same}; differing: {len(differing)}")
    print(f"only in A ({len(set(a) - set(b))}): {group(set(a) - set(b))}")
    print(f"only in B ({len(set(b) - set(a))}): {group(set(b) - set(a))}")
    for path in differing:
        print(f"  {path}: {a[path]!r} -> {b[path]!r}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
