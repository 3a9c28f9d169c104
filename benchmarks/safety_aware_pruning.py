"""Safety-aware pruning: Wanda / SparseGPT calibrated on utility text only vs text mixed with refusals.

Wanda's score |W_ij| * ||X_j|| and SparseGPT's Hessian both come from calibration activations, so mixing
harmful-request + refusal pairs into calibration (``CalibrationSpec(safety_fraction=...)``, the
``--safety-calibration`` flag of `compsafe run`) makes the weights that produce refusals count when choosing
what to prune ("Pruning for Protection", seed 000). This measures what that buys at the same sparsity.

Usage: python benchmarks/safety_aware_pruning.py [--model compsafe-demo] [--recipes wanda-50,sparsegpt-50]
       [--fractions 0,0.25,0.5] [--prompts 66] [--passages 8] [--samples 32] [--seq-len 256]
Prints one row per (recipe, safety fraction) on the held-out harmful split (never used to tune anything) and the
shipped passages; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--recipes", default="wanda-50,sparsegpt-50")
    parser.add_argument("--fractions", default="0,0.25,0.5")
    parser.add_argument("--prompts", type=int, default=66)
    parser.add_argument("--passages", type=int, default=8)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()

    from compsafe.compress import CalibrationSpec, WeightSnapshot, applied, build_calibration
    from compsafe.diagnose.signals import SignalProbe, shipped_passages, split_harmful
    from compsafe.models import HFBackend, LoadOptions, load_model

    handle = load_model(args.model, LoadOptions(device=args.device, dtype=args.dtype))
    _, heldout = split_harmful()
    probe = SignalProbe(
        HFBackend(handle, 16),
        heldout[: args.prompts],
        shipped_passages(args.passages),
        max_new_tokens=args.max_new_tokens,
    )
    snapshot = WeightSnapshot(handle.model)
    rows = []
    started = time.time()
    base = probe.measure(judged=True)
    rows.append({"recipe": "base", "safety_fraction": None, **base.to_dict()})
    for recipe in [r for r in args.recipes.split(",") if r]:
        for fraction in [float(f) for f in args.fractions.split(",") if f]:
            spec = CalibrationSpec(n_samples=args.samples, seq_len=args.seq_len, safety_fraction=fraction)
            calibration = build_calibration(handle.tokenizer, spec)
            t0 = time.time()
            with applied(handle.model, recipe, calibration, snapshot=snapshot) as variant:
                compress_s = time.time() - t0
                signals = probe.measure(judged=True)
            report = variant.report
            rows.append(
                {
                    "recipe": recipe,
                    "safety_fraction": fraction,
                    "sparsity": report.sparsity,
                    "compress_seconds": compress_s,
                    **signals.to_dict(),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\nmodel {handle.source}  ·  held-out harmful prompts {len(probe.prompts)}  ·  passages {len(probe.passages)}"
    )
    print(f"calibration {args.samples} x {args.seq_len} tokens  ·  {time.time() - started:.0f} s")
    header = f"{'recipe':<14}{'safety frac':>12}{'judged refusal':>16}{'fast rate':>11}{'mean margin':>13}{'ppl':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        fraction = "-" if row["safety_fraction"] is None else f"{row['safety_fraction']:.2f}"
        print(
            f"{row['recipe']:<14}{fraction:>12}{row['judged_refusal_rate']:>16.3f}{row['fast_refusal_rate']:>11.3f}"
            f"{row['mean_margin']:>+13.3f}{row['perplexity']:>9.3f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle_out:
            json.dump(rows, handle_out, indent=2)


if __name__ == "__main__":
    main()
