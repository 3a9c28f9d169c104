"""Wall time and peak memory of the default `compsafe run` matrix (variants x probes) on this machine.

compsafe's own peak memory is the run's peak resident set minus the peak of a bare
`import torch, transformers, compsafe` (the libraries' code and allocator arenas, which any harness pays), shown as
a multiple of the model's size in memory in the run's dtype (target: < 2x; the base is restored after each variant
by re-reading only the changed tensors from its weight files, so no second copy of the model is held).

Usage: python benchmarks/bench_matrix.py [extra compsafe run flags...]
Prints figures; asserts nothing (targets live in the issue notes, not in tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

BARE_IMPORT = "import torch, transformers, compsafe, compsafe.runner"


def run_child(command: list[str]) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS in KiB) of one child process, measured for that child alone."""
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, time.perf_counter() - started, usage.ru_maxrss


def main() -> None:
    out = tempfile.mkdtemp(prefix="compsafe-bench-")
    _, _, bare_kib = run_child([sys.executable, "-c", BARE_IMPORT])
    command = [sys.executable, "-m", "compsafe", "run", "--out", out, *sys.argv[1:]]
    code, wall, peak_kib = run_child(command)
    own_mib = (peak_kib - bare_kib) / 1024
    print(f"command: {' '.join(command)}")
    print(f"exit code: {code}")
    print(f"wall time: {wall:.1f} s")
    print(f"peak resident memory: run {peak_kib / 1024:.0f} MiB, bare import {bare_kib / 1024:.0f} MiB "
          f"({BARE_IMPORT!r}) -> compsafe's own {own_mib:.0f} MiB")  # fmt: skip
    try:
        with open(f"{out}/summary.json", encoding="utf-8") as handle:
            summary = json.load(handle)
        base = summary["models"]["base"]
        n_params = base.get("num_parameters")
        dtype = str(base.get("dtype", "?"))
        if n_params:
            sizes = {"bfloat16": 2, "float16": 2, "float32": 4}
            for name, size in sorted({dtype: sizes.get(dtype, 4), "bfloat16": 2}.items()):
                model_mib = n_params * size / 2**20
                print(f"model in memory ({name}): {model_mib:.0f} MiB -> compsafe's own peak = "
                      f"{own_mib / model_mib:.2f}x (whole run peak {peak_kib / 1024 / model_mib:.2f}x)")  # fmt: skip
        print(f"run dtype: {dtype}; timing: {summary['timing_seconds']}")
    except (OSError, KeyError, ValueError) as exc:
        print(f"(no summary to read: {exc})")
    print(f"run folder: {out}")


if __name__ == "__main__":
    main()
