"""Peak memory of each stage of the default study, one stage at a time, in one process.

Before each stage the kernel's high-water mark is reset (``/proc/self/clear_refs`` = 5); after it the script
prints the resident set before, the stage's peak, the peak's rise over "before" (the stage's transient) and
what stayed resident after the heap's free pages were handed back (``compsafe.memory.trim_freed_memory``, as
the runner does after each chunk of items, variant build and restore). Stages: load the base, the ensemble
judge, each default probe on the base, the weight snapshot, then per variant: build, each probe on the variant
(drafted from the base, as a run does), restore.
Each probe sees ``--items`` items (default 64: one full chunk of the runner at its default batch size of 32, the
shapes a full run uses; perplexity sees at most 8 passages, which are scored one at a time).

Usage: python benchmarks/bench_stage_memory.py [--items 64] [--batch-size 32]
[--variants int8,int4-g128,mag-50,2:4] [--probe-variants int8]
[--dtype auto] [--model PATH]. Linux only; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from mem_trace import status_fields  # this folder's script: /proc/self/status in KiB

from compsafe.memory import trim_freed_memory


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")


def stage(name: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` with the peak reset before it; print before / peak / rise / after in MiB and the seconds."""
    gc.collect()
    before = status_fields()["VmRSS"]
    reset_peak()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    trim_freed_memory()  # as the runner does after each chunk, build and restore
    after = status_fields()
    print(
        f"{name:34} before {before / 1024:6.0f}  peak {after['VmHWM'] / 1024:6.0f}  "
        f"rise {(after['VmHWM'] - before) / 1024:+5.0f}  after {after['VmRSS'] / 1024:6.0f} "
        f"(anon {after['RssAnon'] / 1024:4.0f}, file {after['RssFile'] / 1024:4.0f})  ({seconds:.0f} s)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="the run's default (chunks of twice this)")
    parser.add_argument("--variants", default="int8,int4-g128,mag-50,2:4")
    parser.add_argument("--probe-variants", default="int8", help="variants whose probes run (others: build only)")
    parser.add_argument("--probes", default="refusal,over_refusal,perplexity,mcqa")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--model", default=None, help="default: the embedded default model")
    args = parser.parse_args()

    stage("imports", lambda: __import__("compsafe.runner"))
    from compsafe.compress import applied
    from compsafe.compress.snapshot import WeightSnapshot
    from compsafe.judges import get_judge
    from compsafe.models import GenerationConfig, HFBackend, LoadOptions, load_model
    from compsafe.models.drafting import DraftBook, DraftRole
    from compsafe.probes import ProbeContext, build_probe
    from compsafe.runner import check_finite_base

    def load() -> Any:
        handle = load_model(args.model, LoadOptions(device="cpu", dtype=args.dtype))
        check_finite_base(handle)
        return handle

    handle = stage("load the base", load)
    print(f"model: {handle.source}, {handle.dtype}, {sum(p.numel() for p in handle.model.parameters()):,} parameters")
    judge = stage("ensemble judge, load", lambda: get_judge("ensemble"))
    stage("ensemble judge, first call", lambda: judge.judge_many(["Say hi."], ["Hi there!"]))
    generation = GenerationConfig(max_new_tokens=48)
    book = DraftBook()
    artifacts: dict[str, dict] = {}
    probes = [
        build_probe(name, limit=min(args.items, 8) if name == "perplexity" else args.items)
        for name in args.probes.split(",")
    ]

    def probe_all(label: str, is_base: bool) -> None:
        backend = HFBackend(handle, args.batch_size, drafting=DraftRole(book, label, record=is_base))
        for probe in probes:
            context = ProbeContext(
                backend=backend, judge=judge, generation=generation, is_base=is_base, chunk_size=2 * args.batch_size,
                save_artifact=artifacts.__setitem__, load_base_artifact=artifacts.get,
            )  # fmt: skip
            stage(f"{label} {probe.name}", lambda p=probe, c=context: [r for b in p.evaluate(p.items, c) for r in b])

    probe_all("base", True)
    snapshot = stage("weight snapshot", lambda: WeightSnapshot(handle.model, handle.weight_files(), spill=True))
    for recipe in args.variants.split(","):
        manager = applied(handle.model, recipe, None, snapshot=snapshot)
        stage(f"{recipe} build", manager.__enter__)
        if recipe in args.probe_variants.split(","):
            probe_all(recipe, False)
        stage(f"{recipe} restore", lambda m=manager: m.__exit__(None, None, None))


if __name__ == "__main__":
    main()
