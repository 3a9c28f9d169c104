"""Where a compsafe command's peak memory is: run it in this process with a thread that samples the resident set.

Every ``--interval`` seconds the thread reads ``VmRSS`` and ``VmHWM`` (the kernel's exact high-water mark) from
/proc/self/status and the main thread's Python stack. It prints:

* per stage (the probe, compression step, judge, loader or report the main thread is in) the highest resident
  set sampled there, and the number of samples;
* every rise of the high-water mark by ``--step`` MiB or more, with the stack the main thread was in when the
  sampler saw it (a rise between two samples is charged to the later one's stack: with a 10 ms interval that is
  the operation running, or the one just finished).

Usage: python benchmarks/mem_trace.py [--interval 0.01] [--step 16] -- run --limit 8 [more compsafe flags]
(the words after ``--`` are a compsafe command line). Linux only. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from types import FrameType

STAGE_FOLDERS = ("probes", "compress", "judges", "report", "analysis", "diagnose", "training", "export")


def status_fields() -> dict[str, int]:
    """This process's VmRSS, VmHWM, RssAnon and RssFile (file pages mapped in, e.g. weight files) in KiB."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[name] = int(value.split()[0])
    return fields


def status_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    fields = status_fields()
    return fields["VmRSS"], fields["VmHWM"]


def compsafe_frames(frame: FrameType | None) -> list[str]:
    """``folder/module.py:function:line`` of the compsafe frames in a stack, outermost first."""
    frames = []
    for summary in traceback.extract_stack(frame):
        path = summary.filename.replace(os.sep, "/")
        if "/compsafe/" in path and "/benchmarks/" not in path:
            frames.append(f"{path.split('/compsafe/')[-1]}:{summary.name}:{summary.lineno}")
    return frames


def stage_of(frames: list[str]) -> str:
    """The innermost frame in a stage folder (``probes/perplexity.py:evaluate``), else the innermost frame."""
    for entry in reversed(frames):
        if entry.split("/")[0] in STAGE_FOLDERS or entry.startswith("models/loading.py"):
            return entry.rsplit(":", 1)[0]
    return frames[-1].rsplit(":", 1)[0] if frames else "(outside compsafe)"


@dataclass
class Trace:
    """What the sampler saw."""

    stage_peak_kib: dict[str, int] = field(default_factory=dict)
    stage_samples: dict[str, int] = field(default_factory=dict)
    # seconds, high-water mark, its rise, stack, innermost frame, (RssAnon, RssFile) in KiB
    rises: list[tuple[float, int, int, list[str], str, tuple[int, int]]] = field(default_factory=list)


def sample(trace: Trace, main_id: int, interval: float, step_kib: int, stop: threading.Event) -> None:
    """Sample until ``stop`` is set."""
    started = time.perf_counter()
    _, last_hwm = status_kib()
    while not stop.wait(interval):
        frame = sys._current_frames().get(main_id)
        fields = status_fields()
        rss, hwm = fields["VmRSS"], fields["VmHWM"]
        frames = compsafe_frames(frame)
        stage = stage_of(frames)
        trace.stage_peak_kib[stage] = max(trace.stage_peak_kib.get(stage, 0), rss)
        trace.stage_samples[stage] = trace.stage_samples.get(stage, 0) + 1
        if hwm - last_hwm >= step_kib:
            leaf = traceback.extract_stack(frame)[-1] if frame is not None else None
            where = f"{leaf.filename.split('site-packages/')[-1]}:{leaf.name}" if leaf else "?"
            split = (fields.get("RssAnon", 0), fields.get("RssFile", 0))
            trace.rises.append((time.perf_counter() - started, hwm, hwm - last_hwm, frames[-6:], where, split))
            last_hwm = hwm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--step", type=float, default=16.0, help="MiB rise of the high-water mark to report")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [word for word in args.command if word != "--"] or ["run", "--limit", "8"]

    trace, stop = Trace(), threading.Event()
    sampler = threading.Thread(
        target=sample, args=(trace, threading.get_ident(), args.interval, int(args.step * 1024), stop), daemon=True
    )
    before_import = status_kib()[1]
    sampler.start()
    started = time.perf_counter()
    code: int | str | None = 0
    try:
        from compsafe.cli import main as compsafe_main

        sys.argv = ["compsafe", *command]
        compsafe_main()
    except SystemExit as exc:
        code = exc.code
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - started
    rss, hwm = status_kib()
    print(f"command: compsafe {' '.join(command)}  (exit {code}, {wall:.0f} s)")
    print(f"peak (VmHWM) {hwm / 1024:.0f} MiB, at the end {rss / 1024:.0f}, before imports {before_import / 1024:.0f}")
    print("\nhighest sampled resident set per stage (MiB, samples):")
    for stage, kib in sorted(trace.stage_peak_kib.items(), key=lambda item: -item[1]):
        print(f"  {kib / 1024:7.0f}  {trace.stage_samples[stage]:6d}  {stage}")
    print(f"\nrises of the high-water mark by >= {args.step:g} MiB (seconds, new peak, rise, anon/file MiB, where):")
    for t, peak, rise, frames, leaf, (anon, mapped) in trace.rises:
        print(f"  {t:7.1f} {peak / 1024:7.0f} {rise / 1024:+6.0f} {anon / 1024:5.0f}/{mapped / 1024:<4.0f} {leaf}")
        for entry in reversed(frames):
            print(f"{'':28}{entry}")


if __name__ == "__main__":
    main()
