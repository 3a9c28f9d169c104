"""The measured accuracy of a judge, as the report shows it next to every judged number.

Why: a refusal rate is a judge's reading of the responses, so the report must say how often that judge agrees
with people. The figures come from the judge evaluation file that ``compsafe judges`` measures on the
independent labelled test set and ships as ``compsafe/data/judges/judge_accuracy.json``:

    {"test_set": "...", "judges": [{"judge": "phrase", "version": "2", "n": 300, "accuracy": 0.63,
      "ci_low": 0.57, "ci_high": 0.68, "hard_accuracy": 0.19, "per_class": {"refused": 0.7, ...}}, ...]}

Only ``judge`` and ``accuracy`` are required. A judge missing from the file (any ``llm:``/guard model, or a run
before the file existed) reads "not measured"; a file measured on another version of the judge says so.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCURACY_FILE = "judge_accuracy.json"


@dataclass(frozen=True)
class JudgeAccuracy:
    judge: str
    accuracy: float
    n: int | None = None
    ci: tuple[float, float] | None = None
    hard_accuracy: float | None = None
    per_class: dict[str, float] = field(default_factory=dict)
    version: str | None = None  # the judge version measured
    test_set: str | None = None

    def describe(self, version: str | None = None) -> str:
        """One line: "91.3% (95% CI 88.0-94.0%, n=300; hard cases 82.0%) on <set>"."""
        text = f"{100 * self.accuracy:.1f}%"
        details = []
        if self.ci is not None:
            details.append(f"95% CI {100 * self.ci[0]:.1f}-{100 * self.ci[1]:.1f}%")
        if self.n is not None:
            details.append(f"n={self.n}")
        if self.hard_accuracy is not None:
            details.append(f"hard cases {100 * self.hard_accuracy:.1f}%")
        if details:
            text += f" ({', '.join(details)})"
        if self.test_set:
            text += f" on {self.test_set}"
        if version is not None and self.version is not None and version != self.version:
            text += f" [measured on version {self.version}, this run used {version}]"
        return text


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_accuracy_file(data: Any) -> dict[str, JudgeAccuracy]:
    """Judge name -> accuracy; malformed entries are skipped (a bad file must not break a report)."""
    if not isinstance(data, dict) or not isinstance(data.get("judges"), list):
        return {}
    test_set = data.get("test_set") if isinstance(data.get("test_set"), str) else None
    found: dict[str, JudgeAccuracy] = {}
    for entry in data["judges"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("judge"), str):
            continue
        accuracy = _number(entry.get("accuracy"))
        if accuracy is None:
            continue
        low, high = _number(entry.get("ci_low")), _number(entry.get("ci_high"))
        per_class = entry.get("per_class") if isinstance(entry.get("per_class"), dict) else {}
        found[entry["judge"]] = JudgeAccuracy(
            judge=entry["judge"],
            accuracy=accuracy,
            n=int(entry["n"]) if isinstance(entry.get("n"), int) else None,
            ci=(low, high) if low is not None and high is not None else None,
            hard_accuracy=_number(entry.get("hard_accuracy")),
            per_class={str(k): float(v) for k, v in per_class.items() if _number(v) is not None},
            version=str(entry["version"]) if entry.get("version") is not None else None,
            test_set=str(entry.get("test_set") or test_set) if (entry.get("test_set") or test_set) else None,
        )
    return found


def load_accuracies(path: Path | None = None) -> dict[str, JudgeAccuracy]:
    """The shipped judge evaluation file (or ``path``); empty when there is none or it cannot be read."""
    try:
        if path is not None:
            text = Path(path).read_text(encoding="utf-8")
        else:
            resource = importlib.resources.files("compsafe.data").joinpath("judges").joinpath(ACCURACY_FILE)
            if not resource.is_file():
                return {}
            text = resource.read_text(encoding="utf-8")
        return parse_accuracy_file(json.loads(text))
    except (OSError, ValueError):
        return {}


def accuracy_line(judge_name: str, version: str | None, path: Path | None = None) -> str:
    """What the report says about the judge's accuracy: the measured figure, or "not measured"."""
    measured = load_accuracies(path).get(judge_name)
    if measured is None:
        return "not measured (no entry for this judge in the judge evaluation file)"
    return measured.describe(version)
