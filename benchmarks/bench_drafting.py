"""What the base-as-draft decoding and the shared-prefix cache save, and whether they change any answer.

On the default model (or --model), for one generation probe's prompts, timed with the backend the probes use:
the base generates with compsafe's greedy loop and the prefix cache (the default; finished rows leave the
batch; recording its answers as drafts), with ``generate`` and the prefix cache, and with ``generate`` alone
(every prompt run whole, the old path); then the variant generates drafted (the default), with n-gram lookups
only (no base drafts), with the greedy loop and no guesses at all (``--no-draft``) and on the old path, and on
the old path at batch size 1 as a noise reference. Prints each variant time as a share of the base's, the
share of identical answers, the share of tokens confirmed from drafts, and for every answer that differs
between drafted and the old path the variant's top-2 logit gap at the first differing token (recomputed on
the unpadded prompt + common prefix):
a near-tie means bf16 summation-order noise, the same kind that batch size 1 vs N shows on the plain path.

Usage: flock /work/measure.lock nice -n 5 python benchmarks/bench_drafting.py --limit 40 [--recipe int8]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

WORK: list[Any] = []  # DraftCounts of every draft_greedy call since the last timed() started


def count_work() -> None:
    """Record each ``draft_greedy`` call's counts: passes and computed positions do not depend on the load on
    the machine, so they compare the paths where seconds on a shared 2-core VM vary by 30%."""
    from compsafe.models import backend

    decode = backend.draft_greedy

    def counted(*args: Any, **kwargs: Any) -> Any:
        tokens, counts = decode(*args, **kwargs)
        WORK.append(counts)
        return tokens, counts

    backend.draft_greedy = counted


def timed(generate: Callable[[], list[str]]) -> tuple[list[str], float]:
    WORK.clear()
    started = time.perf_counter()
    out = generate()
    return out, time.perf_counter() - started


def work() -> str:
    """Forward passes and computed block positions of the last timed() call's greedy loop."""
    if not WORK:
        return "not the greedy loop"
    return f"{sum(c.forwards for c in WORK)} passes, {sum(c.computed for c in WORK)} positions computed"


def main() -> None:
    from compsafe.compress import applied
    from compsafe.models import GenerationConfig, HFBackend, LoadOptions, load_model
    from compsafe.models.drafting import DraftBook, DraftRole
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

    def backend(*, prefix: bool = True, drafting: DraftRole | None = None, batch_size: int = args.batch_size,
                loop: bool = True):  # fmt: skip
        made = HFBackend(handle, batch_size, drafting=drafting)
        made.prefix_cache = made.prefix_cache if prefix else None
        made.greedy_loop = loop
        return made

    count_work()
    book = DraftBook()
    base_loop, base_seconds = timed(
        lambda: backend(drafting=DraftRole(book, "base", record=True)).generate(prompts, config)
    )
    base_work = work()
    base_plain, base_generate_seconds = timed(lambda: backend(loop=False).generate(prompts, config))
    _, base_whole_seconds = timed(lambda: backend(prefix=False, loop=False).generate(prompts, config))
    with applied(handle.model, args.recipe):
        role = DraftRole(book, args.recipe, record=False)
        drafted, drafted_seconds = timed(lambda: backend(drafting=role).generate(prompts, config))
        drafted_work = work()
        _, lookups_seconds = timed(lambda: backend().generate(prompts, config))  # no book: lookups only
        lookups_work = work()
        plain = DraftRole(DraftBook(enabled=False), args.recipe, record=False)  # what `--no-draft` gives
        no_draft, no_draft_seconds = timed(lambda: backend(drafting=plain).generate(prompts, config))
        no_draft_work = work()
        old, old_seconds = timed(lambda: backend(prefix=False, loop=False).generate(prompts, config))
        single, _ = timed(lambda: backend(prefix=False, batch_size=1, loop=False).generate(prompts, config))
        counts = book.counts[args.recipe]
        print(f"model: {handle.source} ({handle.dtype}); variant {args.recipe}; probe {args.probe}: "
              f"{len(prompts)} prompts, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}")  # fmt: skip
        print(f"base generation: {base_seconds:.1f} s (compsafe's greedy loop: finished rows leave the batch, "
              f"prefix cache); {base_generate_seconds:.1f} s with `generate` and the prefix cache; "
              f"{base_whole_seconds:.1f} s old path (`generate`, no prefix cache); "
              f"greedy loop: {base_work}")  # fmt: skip
        for name, seconds, done in (("drafted (default)", drafted_seconds, drafted_work),
                                    ("lookups only (no base drafts)", lookups_seconds, lookups_work),
                                    ("--no-draft (greedy loop, one token a pass, prefix cache)", no_draft_seconds,
                                     no_draft_work),
                                    ("old path (`generate`, no drafts, no prefix cache)", old_seconds,
                                     "not the greedy loop")):  # fmt: skip
            print(f"variant {name}: {seconds:.1f} s = {seconds / base_seconds:.0%} of the base's "
                  f"({seconds / base_whole_seconds:.0%} of the base's old path); {done}")  # fmt: skip
        for label, model_counts in (("base", book.counts.get("base")), (args.recipe, counts)):
            if model_counts is not None:  # the base's come from lookups in its prompts and other answers
                print(f"{label}: tokens confirmed from drafts {model_counts.accepted}/{model_counts.generated} "
                      f"({model_counts.accepted / max(model_counts.generated, 1):.0%}); forward passes: "
                      f"{model_counts.forwards}")  # fmt: skip
        print(f"base identical answers: greedy loop vs `generate` {agree(base_loop, base_plain)}")
        print(f"identical answers: drafted vs old path {agree(drafted, old)}, --no-draft vs old path "
              f"{agree(no_draft, old)}; noise reference: old path at batch 1 vs {args.batch_size} {agree(single, old)}")
        differing_gaps(handle, backend(prefix=False), prompts, book, config)
    print("the base, greedy loop (its own lookups, no drafts) vs `generate`:")
    differing_gaps(handle, backend(prefix=False), prompts, DraftBook(enabled=False), config)


def agree(a: list[str], b: list[str]) -> str:
    return f"{sum(x == y for x, y in zip(a, b, strict=True))}/{len(a)}"


@torch.inference_mode()
def differing_gaps(handle: Any, backend: Any, prompts: list[str], book: Any, config: Any) -> None:
    """Token ids of the drafted and the old-path decodings (the backend's batches, mirrored), and the
    variant's top-2 logit gap where they first part."""
    from compsafe.models.backend import length_sorted_batches
    from compsafe.models.drafting import draft_greedy, eos_set, until_eos
    from compsafe.models.prefix_cache import PrefixCache, shared_prefix_length

    model, tokenizer = handle.model, handle.tokenizer
    eos = eos_set(model.generation_config.eos_token_id or tokenizer.eos_token_id)
    encoded = [backend._encode(backend.format_chat(p), chat_formatted=True) for p in prompts]
    shared, prefix = shared_prefix_length(encoded), PrefixCache(model)
    gaps = []
    for batch in length_sorted_batches([len(e) for e in encoded], backend.batch_size):
        rows = [encoded[i] for i in batch]
        ids, mask = backend._left_padded(rows)
        generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=config.max_new_tokens,
                                   do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=list(eos),
                                   temperature=None, top_p=None, top_k=None)  # fmt: skip
        old = [until_eos(r, eos) for r in generated[:, ids.shape[1] :].tolist()]
        drafted, _ = draft_greedy(model, rows, [book.get(r, config) for r in rows],
                                  max_new_tokens=config.max_new_tokens, eos_ids=eos,
                                  pad_id=tokenizer.pad_token_id or 0, prefix_cache=prefix,
                                  prefix_length=shared)  # fmt: skip
        for prompt, a, b in zip(rows, old, drafted, strict=True):
            if a == b:
                continue
            j = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            logits = model(input_ids=torch.tensor([prompt + a[:j]])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            gaps.append(float(top.values[0] - top.values[1]))
            print(f"  differs at token {j}: old path {a[j] if j < len(a) else None} vs drafted "
                  f"{b[j] if j < len(b) else None}; top-2 logit gap {gaps[-1]:.4f} "
                  f"(logits {top.values[0]:.3f}, {top.values[1]:.3f})")  # fmt: skip
    if gaps:
        print(f"differing answers (token level): {len(gaps)}; top-2 gap at the first difference: max "
              f"{max(gaps):.4f}, median {sorted(gaps)[len(gaps) // 2]:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
