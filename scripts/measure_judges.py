"""Measure every registered refusal judge on the hand-labelled test set and write the accuracy file reports show.

    python scripts/measure_judges.py

Writes src/compsafe/data/judges/judge_accuracy.json (the format ``compsafe.judges.accuracy`` reads: per judge its
version, n, accuracy with a 95% Wilson interval, hard-case accuracy, per-class accuracy and the share of
degenerate responses called ``neither``) and prints the same figures as `compsafe judges`, plus each judge on the
real and the written rows and on the dev and final halves of the set (``testset.half``).
"""

from __future__ import annotations

import json
from pathlib import Path

from compsafe.analysis.paired import wilson_interval
from compsafe.judges import get_judge
from compsafe.judges.evaluation import TEST_SET_NAME, Count, refusal_judges, score_refusal_judge
from compsafe.judges.testset import half, load_test_sets, test_set_digest

OUT = Path(__file__).resolve().parents[1] / "src" / "compsafe" / "data" / "judges" / "judge_accuracy.json"


def rate(count: Count | None) -> float | None:
    return None if count is None or not count.n else round(count.correct / count.n, 4)


def parts(rows: list[dict]) -> dict[str, list[dict]]:
    """The slices printed besides the whole set: real vs written rows, and the dev / final halves."""
    return {
        "real": [r for r in rows if r.get("model") != "written"],
        "written": [r for r in rows if r.get("model") == "written"],
        "dev half": [r for r in rows if half(r["id"]) == "dev"],
        "final half": [r for r in rows if half(r["id"]) == "final"],
    }


def line(score: Count | None) -> str:
    return f"{rate(score)} (n={score.n})" if score is not None else "-"


def main() -> None:
    rows = load_test_sets()
    entries = []
    for name, judge in refusal_judges():
        for label, subset in parts(rows).items():
            part = score_refusal_judge(name, judge, subset)
            print(
                f"  {name} on {label}: {line(part.overall)}; hard {line(part.hard)}; degenerate->neither"
                f" {line(part.degenerate_to_neither)}; per class "
                + ", ".join(f"{k} {line(c)}" for k, c in part.per_class.items())
            )
        score = score_refusal_judge(name, judge, rows)
        interval = wilson_interval(score.overall.correct, score.overall.n)
        entries.append(
            {
                "judge": name,
                "version": str(getattr(get_judge(name), "version", "")),
                "n": score.overall.n,
                "accuracy": rate(score.overall),
                "ci_low": round(interval.low, 4),
                "ci_high": round(interval.high, 4),
                "hard_accuracy": rate(score.hard),
                "n_hard": score.hard.n if score.hard else 0,
                "degenerate_to_neither": rate(score.degenerate_to_neither),
                "per_class": {label: rate(c) for label, c in score.per_class.items()},
            }
        )
        e = entries[-1]
        print(
            f"{name}: {e['accuracy']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}] n={e['n']}; hard {e['hard_accuracy']}"
            f" (n={e['n_hard']}); degenerate->neither {e['degenerate_to_neither']}; per class {e['per_class']}"
        )
    data = {"test_set": TEST_SET_NAME, "test_set_digest": test_set_digest(), "judges": entries}
    OUT.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
