"""What one forward pass of the model costs by rows and block width, after a prompt-length KV cache.

Why: drafting and straggler sharing (models/drafting.py) pay off only where a pass costs about the same for few
rows as for many (the fixed cost of reading the weights and dispatching every layer); this prints that fixed cost
and the per-token cost on this machine, the figures docs/speed.md reasons with.

Usage: python benchmarks/decode_pass_cost.py [--model M] [--dtype auto] [--context 60] [--repeat 6]
Prints figures (best of --repeat per shape); asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    from transformers.cache_utils import DynamicCache

    from compsafe.models import LoadOptions, load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model path (default: the embedded default model)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--context", type=int, default=60, help="cached tokens per row before the timed pass")
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args()
    handle = load_model(args.model, LoadOptions(device="cpu", dtype=args.dtype))
    model = handle.model
    print(f"model: {handle.source} ({handle.dtype}); {torch.get_num_threads()} threads; cache {args.context} tokens")
    for rows in (1, 4, 8, 16, 32):
        for width in (1, 17):
            context = torch.randint(100, 1000, (rows, args.context))
            block = torch.randint(100, 1000, (rows, width))
            seconds = []
            with torch.inference_mode():
                for _ in range(args.repeat):
                    cache = DynamicCache(config=model.config)
                    model(input_ids=context, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    started = time.perf_counter()
                    model(input_ids=block, past_key_values=cache, use_cache=True, logits_to_keep=width)
                    seconds.append(time.perf_counter() - started)
            tokens = rows * width
            print(f"rows {rows:2d} x width {width:2d} ({tokens:3d} tokens): {min(seconds) * 1000:6.1f} ms per pass")


if __name__ == "__main__":
    main()
