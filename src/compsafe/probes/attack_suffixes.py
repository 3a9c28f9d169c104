"""``jailbreak:attack:RESULT.json``: replay the suffixes ``compsafe attack`` found on every variant of a run.

Why: a suffix searched against one variant (say int4) may also open another (int8, a pruned model) -- or the
base. Replaying it through the jailbreak probe measures that transfer with the run's own judge, paired over
the same items as every other probe. Items per attacked request: the plain request (family ``direct``) and the
request with each objective's suffix (family ``gcg_<objective>``), so the per-family ASR reads against direct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compsafe.errors import DataFileError
from compsafe.jsonio import read_json_file

PREFIX = "attack:"


def attack_rows(path: Path) -> list[dict[str, Any]]:
    """Jailbreak item rows from an attack result file (``attack.json`` in the attack's run folder)."""
    data = read_json_file(path, "attack result")
    objectives = data.get("objectives") if isinstance(data, dict) else None
    if not isinstance(objectives, dict) or not objectives:
        raise DataFileError(f"attack result {path} has no 'objectives': pass the attack.json `compsafe attack` wrote")
    rows: dict[str, dict[str, Any]] = {}
    for objective, result in objectives.items():
        records = result.get("records") if isinstance(result, dict) else None
        if not isinstance(records, list):
            raise DataFileError(f"attack result {path}: objective {objective!r} has no list of 'records'")
        for index, record in enumerate(records):
            try:
                request, request_id = str(record["request"]), str(record["item_id"])
                suffix, category = str(record["suffix"]), str(record.get("category", "uncategorised"))
            except (KeyError, TypeError):
                raise DataFileError(f"attack result {path}: record {index + 1} of {objective!r} lacks "
                                    "'request', 'item_id' or 'suffix'") from None  # fmt: skip
            common = {"request": request, "request_id": request_id, "category": category}
            rows.setdefault(f"direct:{request_id}", {"id": f"direct:{request_id}", "prompt": request,
                                                     "family": "direct", "template": "direct", **common})
            family = "gcg_" + str(objective).replace("-", "_")
            rows[f"{family}:{request_id}"] = {"id": f"{family}:{request_id}", "prompt": request + suffix,
                                              "family": family, "template": "attack-suffix", **common}  # fmt: skip
    return list(rows.values())
