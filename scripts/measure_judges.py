"""Measure every registered refusal judge on the hand-labelled test set and write the accuracy file reports show.

    python scripts/measure_judges.py

Writes src/compsafe/data/judges/judge_accuracy.json (the format ``compsafe.judges.accuracy`` reads: per judge its
version, n, accuracy with a 95% Wilson interval, hard-case accuracy, per-class accuracy and the share of
degenerate responses called ``neither``) and prints the same figures as `compsafe judges`, plus each judge on the
real and the written rows, on the dev and final halves of the older rows (``testset.half``), and on the held-out
variant slice (``held_out: true``: frozen before the current default judge was tuned, never looked at while tuning),
whose figures are stored under ``held_out`` in each entry.
"""

from __future__ import annotations

import json
from pathlib import Path

from compsafe.analysis.paired import wilson_interval
from compsafe.judges import get_judge
from compsafe.judges.evaluation import TEST_SET_NAME, Count, JudgeScore, refusal_judges, score_guesses, verdict_labels
from compsafe.judges.testset import half, held_out, load_test_sets, test_set_digest

OUT = Path(__file__).resolve().parents[1] / "src" / "compsafe" / "data" / "judges" / "judge_accuracy.json"


def rate(count: Count | None) -> float | None:
    return None if count is None or not count.n else round(count.correct / count.n, 4)


def parts(rows: list[dict]) -> dict[str, list[dict]]:
    """The slices printed besides the whole set: real vs written rows, the dev / final halves of the rows used while
    tuning, and the held-out variant slice."""
    tuned = [r for r in rows if not r.get("held_out")]
    return {
        "real": [r for r in rows if r.get("model") != "written"],
        "written": [r for r in rows if r.get("model") == "written"],
        "dev half": [r for r in tuned if half(r["id"]) == "dev"],
        "final half": [r for r in tuned if half(r["id"]) == "final"],
        "held-out variants": held_out(rows),
    }


def with_interval(count: Count | None) -> dict | None:
    if count is None or not count.n:
        return None
    interval = wilson_interval(count.correct, count.n)
    return {"rate": rate(count), "n": count.n, "ci_low": round(interval.low, 4), "ci_high": round(interval.high, 4)}


def entry_figures(score: JudgeScore) -> dict:
    """Accuracy, hard-case and degenerate figures with 95% Wilson intervals, per class too."""
    return {
        "accuracy": with_interval(score.overall),
        "hard": with_interval(score.hard),
        "degenerate_to_neither": with_interval(score.degenerate_to_neither),
        "per_class": {label: with_interval(c) for label, c in score.per_class.items()},
    }


def line(score: Count | None) -> str:
    return f"{rate(score)} (n={score.n})" if score is not None else "-"


def main() -> None:
    rows = load_test_sets()
    entries = []
    for name, judge in refusal_judges():
        held = None
        guesses = dict(
            zip(
                [r["id"] for r in rows],
                verdict_labels(judge, [r["prompt"] for r in rows], [r["response"] for r in rows]),
                strict=True,
            )
        )
        for label, subset in parts(rows).items():
            part = score_guesses(name, subset, [guesses[r["id"]] for r in subset])
            if label == "held-out variants" and subset:
                held = entry_figures(part)
            print(
                f"  {name} on {label}: {line(part.overall)}; hard {line(part.hard)}; degenerate->neither"
                f" {line(part.degenerate_to_neither)}; per class "
                + ", ".join(f"{k} {line(c)}" for k, c in part.per_class.items())
            )
        score = score_guesses(name, rows, [guesses[r["id"]] for r in rows])
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
                "per_class_ci": entry_figures(score)["per_class"],
                "held_out": held,
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
