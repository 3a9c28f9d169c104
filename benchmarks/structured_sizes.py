"""What fp16/bf16 and structured pruning leave of a model: parameters, packed bytes, and how close the stored form is.

For each recipe: build it in place with ``compress.applied`` (the run's form: rounded values / zeroed units),
then ``report.stored_form`` (what the export writes: a 16-bit copy / a physically smaller copy), and print the
parameter count, packed MB, effective bits, the per-layer head/channel/layer counts and the largest logit
difference between the two forms on one prompt (structured: float noise only; fp16/bf16: the cost of also
computing in 16 bits). Usage (loads the default model at float32, about a minute per calibrated recipe)::

    PYTHONPATH=src nice python benchmarks/structured_sizes.py [--model M] [--recipes fp16,heads-25,...]
"""

from __future__ import annotations

import argparse
import time

import torch

from compsafe.compress import CalibrationSpec, WeightSnapshot, applied, build_calibration, needs_calibration
from compsafe.compress.registry import parse_recipe
from compsafe.models import LoadOptions, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model (default: the embedded default)")
    parser.add_argument("--recipes", default="fp16,bf16,heads-25,mlp-30,layers-4")
    args = parser.parse_args()
    handle = load_model(args.model, LoadOptions(device="cpu", dtype="float32"))
    calibration = build_calibration(handle.tokenizer, CalibrationSpec(), handle.max_length)
    snapshot = WeightSnapshot(handle.model, handle.weight_files(), spill=True)
    ids = handle.tokenizer("The capital of France is", return_tensors="pt").input_ids
    print(f"base: {sum(p.numel() for p in handle.model.parameters()):,} parameters")
    for recipe in args.recipes.split(","):
        config = parse_recipe(recipe)
        started = time.time()
        with applied(handle.model, config, calibration if needs_calibration(config) else None, snapshot=snapshot) as v:
            report = v.report
            with torch.no_grad():
                measured = handle.model(ids).logits.float()
                stored = report.stored_form(handle.model) if report.stored_form else handle.model
                diff = (stored(ids).logits.float() - measured).abs().max().item()
            extra = {k: val for k, val in report.extra.items() if k not in ("plan", "calibration")}
            print(
                f"{recipe}: {time.time() - started:.0f} s, {report.effective_bits_per_weight:.2f} bits/weight, "
                f"{report.packed_size_bytes / 1e6:.1f} MB, max logit diff stored vs measured {diff:.2g}, {extra}"
            )


if __name__ == "__main__":
    main()
