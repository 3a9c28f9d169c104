"""What the base-as-draft decoding saves a variant, and whether it changes any answer (models/drafting.py).

On the default model (or --model), for one generation probe's prompts: the base generates (recording its
answers as drafts), then the variant generates three ways -- drafted (compsafe's default), plain
(``--no-draft``) -- timed with the backend the probes use. Prints the variant's generation time as a share
of the base's in both modes, the share of identical answers drafted vs plain, the share of tokens accepted
from drafts, and for every answer that differs the variant's top-2 logit gap at the first differing token
(recomputed in float32 on the unpadded prompt + common prefix): a near-tie means bf16 batching noise, not a
drafting error.

Usage: flock /work/measure.lock nice -n 5 python benchmarks/bench_drafting.py --limit 40 [--recipe int8]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    from compsafe.compress import applied
    from compsafe.models import GenerationConfig, HFBackend, LoadOptions, load_model
    from compsafe.models.backend import length_sorted_batches
    from compsafe.models.drafting import DraftBook, DraftRole, draft_greedy, eos_set, until_eos
    from compsafe.probes import build_probe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model path (default: the embedded default model)")
    parser.add_argument("--recipe", default="int8")
    parser.add_argument("--probe", default="refusal")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    handle = load_model(args.model, LoadOptions(device="cpu", dtype="auto"))
    prompts = [item.data["prompt"] for item in build_probe(args.probe, args.limit).items]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    book = DraftBook()
    base = HFBackend(handle, args.batch_size)
    base.drafting = DraftRole(book, "base", record=True)
    started = time.perf_counter()
    base.generate(prompts, config)
    base_seconds = time.perf_counter() - started

    with applied(handle.model, args.recipe):
        drafted_backend = HFBackend(handle, args.batch_size)
        drafted_backend.drafting = DraftRole(book, args.recipe, record=False)
        started = time.perf_counter()
        drafted = drafted_backend.generate(prompts, config)
        drafted_seconds = time.perf_counter() - started
        plain_backend = HFBackend(handle, args.batch_size)
        started = time.perf_counter()
        plain = plain_backend.generate(prompts, config)
        plain_seconds = time.perf_counter() - started
        counts = book.counts[args.recipe]
        same = sum(a == b for a, b in zip(drafted, plain, strict=True))
        print(f"model: {handle.source} ({handle.dtype}); variant {args.recipe}; probe {args.probe}: "
              f"{len(prompts)} prompts, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}")  # fmt: skip
        print(f"base generation: {base_seconds:.1f} s")
        print(f"variant, drafted: {drafted_seconds:.1f} s = {drafted_seconds / base_seconds:.0%} of the base's")
        print(f"variant, plain (--no-draft): {plain_seconds:.1f} s = {plain_seconds / base_seconds:.0%} of the base's")
        print(f"identical answers drafted vs plain: {same}/{len(prompts)}")
        print(f"tokens accepted from drafts: {counts.accepted}/{counts.generated} "
              f"({counts.accepted / max(counts.generated, 1):.0%}); forward passes: {counts.forwards}")  # fmt: skip
        if same < len(prompts):
            differing_gaps(handle, plain_backend, prompts, book, config, length_sorted_batches, draft_greedy,
                           eos_set, until_eos)  # fmt: skip


@torch.inference_mode()
def differing_gaps(handle, backend, prompts, book, config, batches, draft_greedy, eos_set, until_eos) -> None:
    """Token ids of both decodings (the backend's batches), and the top-2 gap where they first part."""
    model, tokenizer = handle.model, handle.tokenizer
    eos = eos_set(model.generation_config.eos_token_id or tokenizer.eos_token_id)
    encoded = [backend._encode(backend.format_chat(p), chat_formatted=True) for p in prompts]
    for batch in batches([len(e) for e in encoded], backend.batch_size):
        rows = [encoded[i] for i in batch]
        ids, mask = backend._left_padded(rows)
        generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=config.max_new_tokens,
                                   do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=list(eos),
                                   temperature=None, top_p=None, top_k=None)  # fmt: skip
        plain = [until_eos(r, eos) for r in generated[:, ids.shape[1] :].tolist()]
        drafted, _ = draft_greedy(model, rows, [book.get(r, config) for r in rows],
                                  max_new_tokens=config.max_new_tokens, eos_ids=eos,
                                  pad_id=tokenizer.pad_token_id or 0)  # fmt: skip
        for prompt, a, b in zip(rows, plain, drafted, strict=True):
            if a == b:
                continue
            j = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            logits = model(input_ids=torch.tensor([prompt + a[:j]])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            print(f"  differs at token {j}: plain {a[j] if j < len(a) else None} vs drafted "
                  f"{b[j] if j < len(b) else None}; top-2 logit gap {float(top.values[0] - top.values[1]):.4f} "
                  f"(logits {top.values[0]:.3f}, {top.values[1]:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
