"""What an artefact costs to run: load time, peak resident memory and generation speed, measured on its files
(a recipe variant's are written first: ``compsafe.artefacts``).

Why a child process: the run's own process already holds the base model, its records and the judge, so its
memory says nothing about the artefact; a fresh interpreter that loads only the artefact (with compsafe's
loader: safetensors folders, compressed-tensors folders, which transformers dequantizes on load when there is
no int kernel, and GGUF files) measures what a user's process would pay. Figures (CPU here; CUDA where a GPU is
present and chosen):

* ``load_seconds``: from the loader call to a model ready to answer, one warm-up forward pass included (a
  compressed-tensors folder is decompressed on its first forward);
* ``peak_rss_mb``: the child's peak resident set (``ru_maxrss``); ``baseline_rss_mb`` is its resident set after
  importing torch and transformers, before loading, so ``peak_rss_mb - baseline_rss_mb`` is the model's share;
* ``tokens_per_second``: greedy decoding of ``NEW_TOKENS`` tokens for one short prompt, batch 1, after the
  warm-up (exactly that many tokens: ``min_new_tokens`` stops an early end-of-sequence from flattering it).

``python -m compsafe.models.cost LOCATION --device cpu --dtype bfloat16`` prints the figures as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NEW_TOKENS = 32
PROMPT = "Explain in two sentences why the sky is blue."
TIMEOUT_SECONDS = 900


def _rss_mb() -> float:
    """Current resident set of this process in MB (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure_here(location: str, device: str, dtype: str) -> dict[str, Any]:
    """The figures above for ``location``, measured in this process (call it in a fresh one)."""
    import resource

    import torch

    from compsafe.models import LoadOptions, load_model

    baseline = _rss_mb()
    started = time.perf_counter()
    handle = load_model(location, LoadOptions(device=device, dtype=dtype))
    batch = handle.tokenizer([PROMPT], return_tensors="pt").to(handle.device)
    with torch.no_grad():
        handle.model(**batch)  # warm-up: decompression and kernel selection belong to loading
        load_seconds = time.perf_counter() - started
        pad = handle.tokenizer.pad_token_id or handle.tokenizer.eos_token_id
        tick = time.perf_counter()
        out = handle.model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                                    pad_token_id=pad)
        seconds = time.perf_counter() - tick
    generated = int(out.shape[1] - batch["input_ids"].shape[1])
    return {
        "load_seconds": round(load_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),  # KB on Linux
        "baseline_rss_mb": round(baseline, 1),
        "tokens_per_second": round(generated / seconds, 2) if seconds > 0 else None,
        "new_tokens": generated,
        "device": handle.device.type,
        "dtype": str(handle.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }


def artefact_cost(location: str | Path, device: str = "cpu", dtype: str = "auto") -> dict[str, Any]:
    """``measure_here`` in a child process; ``{"error": ...}`` (one line) when the child fails, never raises:
    a cost that cannot be measured must not cost the run its safety numbers."""
    command = [sys.executable, "-m", "compsafe.models.cost", str(location), "--device", device, "--dtype", dtype]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"cost measurement did not finish: {exc}"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"cost measurement failed: {tail[:200]}"}
    return json.loads(lines[-1])


def handle_cost(location: str | Path, like: Any) -> dict[str, Any]:
    """``artefact_cost`` of ``location`` on the device and in the dtype of the loaded model ``like``."""
    return artefact_cost(location, like.device.type, str(like.dtype).removeprefix("torch."))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Measure an artefact's load time, peak memory and tokens/s.")
    parser.add_argument("location")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    print(json.dumps(measure_here(args.location, args.device, args.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
