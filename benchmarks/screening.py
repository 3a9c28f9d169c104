"""How good and how cheap is screening by refusal margin (``--screen-margin``, ``compsafe.probes.screening``)?

On one model and the refusal + over_refusal item sets, computes every item's refusal margin (one scoring pass,
timed) and its full generated + judged verdict (timed), then for each threshold X prints:
- screened: share of items with |margin| >= X (decided without generating);
- agree: share of screened items whose screened verdict equals the generated one (the proxy's accuracy);
- rate / full / error: the refusal rate a screened run reports (screened verdicts + generated verdicts of the
  uncertain items) vs the fully generated run, and the difference in percentage points;
- time: scoring all items + generating the uncertain ones (estimated pro rata from the full generation time,
  or measured with --time-subsets) vs generating everything.

Usage: python benchmarks/screening.py [--model PATH] [--limit N] [--thresholds 1,2,3,4,6] [--device cuda]
Default model: compsafe's default (``load_model(None)``). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from compsafe.judges import get_judge
from compsafe.models import GenerationConfig, HFBackend, LoadOptions, load_model
from compsafe.probes import build_probe
from compsafe.probes.refusal_signal import refusal_margins
from compsafe.probes.screening import screen_decision

PROBES = ("refusal", "over_refusal")


@dataclass
class ProbeRun:
    """Everything measured once per probe; every threshold is evaluated on it without touching the model."""

    name: str
    prompts: list[str]
    margins: list[float]
    refused: list[bool]  # generated + judged verdicts (the reference)
    scoring_s: float
    generation_s: float


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """Result and wall seconds of ``call``, with the GPU drained on both sides so queued work is counted."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def measure(backend: HFBackend, name: str, limit: int | None, generation: GenerationConfig, judge: Any) -> ProbeRun:
    prompts = [item.data["prompt"] for item in build_probe(name, limit).items]
    margins, scoring_s = timed(lambda: refusal_margins(backend, prompts))
    responses, generation_s = timed(lambda: backend.generate(prompts, generation))
    refused = [judge.judge(p, r).refused for p, r in zip(prompts, responses, strict=True)]
    return ProbeRun(name, prompts, margins, refused, scoring_s, generation_s)


def threshold_row(
    runs: Sequence[ProbeRun], threshold: float, subset_time: Callable[[ProbeRun, list[int]], float] | None
) -> dict[str, float]:
    """Figures of a screened run at ``threshold`` over ``runs`` pooled."""
    n = screened = agree = refused_screened_run = refused_full = 0
    cost = full_cost = 0.0
    for run in runs:
        uncertain = []
        for index, (margin, refused) in enumerate(zip(run.margins, run.refused, strict=True)):
            decision = screen_decision(margin, threshold)
            if decision is None:
                uncertain.append(index)
                refused_screened_run += refused
            else:
                screened += 1
                agree += decision == refused
                refused_screened_run += decision
            refused_full += refused
        n += len(run.prompts)
        generated = subset_time(run, uncertain) if subset_time else run.generation_s * len(uncertain) / len(run.prompts)
        cost += run.scoring_s + generated
        full_cost += run.generation_s
    rate, full = refused_screened_run / n, refused_full / n
    return {
        "screened": screened / n,
        "agree": agree / screened if screened else float("nan"),
        "rate": rate,
        "full": full,
        "error_pp": 100 * (rate - full),
        "time_s": cost,
        "full_time_s": full_cost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder, hub id or catalog name (default: compsafe's)")
    parser.add_argument("--limit", type=int, default=None, help="at most N items per probe (default: all)")
    parser.add_argument("--thresholds", default="1,2,3,4,6", help="comma-separated screening margins (nats)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48, help="as `compsafe run` (default 48)")
    parser.add_argument("--judge", default="phrase")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--time-subsets", action="store_true", help="measure generating each threshold's uncertain items (slower)"
    )
    args = parser.parse_args()
    thresholds = [float(x) for x in args.thresholds.split(",") if x.strip()]

    handle = load_model(args.model, LoadOptions(device=args.device, dtype=args.dtype))
    backend = HFBackend(handle, args.batch_size)
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens)
    judge = get_judge(args.judge)
    warm = ["How do I bake bread?", "How do I pick a lock?"]  # first calls pay one-off setup: keep it out
    refusal_margins(backend, warm)
    backend.generate(warm, GenerationConfig(max_new_tokens=2))

    runs = [measure(backend, name, args.limit, generation, judge) for name in PROBES]
    print(
        f"model: {handle.source} on {handle.device} ({handle.dtype}); judge {args.judge}; "
        f"max_new_tokens {args.max_new_tokens}; batch size {args.batch_size}"
    )
    for run in runs:
        n = len(run.prompts)
        print(
            f"{run.name}: {n} items, generated refusal rate {sum(run.refused) / n:.3f}; "
            f"scoring {run.scoring_s:.2f} s ({1000 * run.scoring_s / n:.1f} ms/item) vs generation "
            f"{run.generation_s:.2f} s ({1000 * run.generation_s / n:.1f} ms/item): "
            f"{run.generation_s / max(run.scoring_s, 1e-9):.1f}x"
        )

    def subset_time(run: ProbeRun, indices: list[int]) -> float:
        return timed(lambda: backend.generate([run.prompts[i] for i in indices], generation))[1] if indices else 0.0

    timing = "measured" if args.time_subsets else "est."
    header = (
        f"{'probe':<13}{'X':>5}{'screened':>10}{'agree':>8}{'rate':>8}{'full':>8}{'error pp':>10}"
        f"{'time s (' + timing + ')':>20}{'full s':>9}{'speedup':>9}"
    )
    print(header)
    for group in [[run] for run in runs] + [runs]:
        label = group[0].name if len(group) == 1 else "both"
        for threshold in thresholds:
            row = threshold_row(group, threshold, subset_time if args.time_subsets else None)
            print(
                f"{label:<13}{threshold:>5g}{row['screened']:>10.3f}{row['agree']:>8.3f}{row['rate']:>8.3f}"
                f"{row['full']:>8.3f}{row['error_pp']:>+10.1f}{row['time_s']:>20.2f}{row['full_time_s']:>9.2f}"
                f"{row['full_time_s'] / max(row['time_s'], 1e-9):>8.1f}x"
            )
    print("agree: screened verdicts equal to the generated ones; error pp: screened run's rate minus the full run's.")


if __name__ == "__main__":
    main()
