"""compsafe's backend against lm-evaluation-harness's HF backend (`lm-eval` from PyPI), in one run.

Same model, same chat-formatted prompts, same greedy generation length, same batch size:
- generation throughput of both (new tokens / s) and their ratio (target: compsafe >= 2x);
- log-likelihood on the same (context, continuation) pairs (MCQA choices): time of both (best of --repeat runs,
  alternating, so background load hits both alike) and their ratio (target: compsafe >= 1.5x), relative
  difference of the summed log-probabilities (target < 1e-5 in float32), and whether the argmax choices agree.

Usage: python benchmarks/bench_vs_lm_eval.py [--model M] [--n 64] [--max-new-tokens 48] [--batch-size 32] [--dtype D]
       [--only generation|scoring] [--repeat 3]
Needs `pip install lm-eval` (not a compsafe dependency). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder or catalog name (default: embedded default)")
    parser.add_argument("--n", type=int, default=64, help="prompts for the generation timing")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mcqa", type=int, default=40, help="MCQA items for the log-likelihood comparison")
    parser.add_argument("--dtype", default="float32", help="float32 makes the log-likelihood comparison exact")
    parser.add_argument("--only", choices=["generation", "scoring"], default=None, help="run one half")
    parser.add_argument("--repeat", type=int, default=3, help="log-likelihood timings: best of this many runs")
    args = parser.parse_args()

    from lm_eval.models.huggingface import HFLM

    from compsafe.models import HFBackend, LoadOptions, load_model
    from compsafe.probes import build_probe

    handle = load_model(args.model, LoadOptions(dtype=args.dtype))
    backend = HFBackend(handle, args.batch_size)
    prompts = [item.data["prompt"] for item in build_probe("refusal", limit=args.n).items]
    contexts = [backend.format_chat(p) for p in prompts]
    lm = HFLM(
        pretrained=handle.model,
        tokenizer=handle.tokenizer,
        batch_size=args.batch_size,
        device=str(handle.device),
        dtype=handle.dtype,
        max_length=handle.max_length,
    )
    print(
        f"model: {handle.source} ({handle.meta.get('num_parameters', 0) / 1e6:.0f} M params, {handle.dtype}, "
        f"{handle.device}); {len(prompts)} prompts, {args.max_new_tokens} new tokens, batch {args.batch_size}"
    )

    if args.only != "scoring":
        compare_generation(args, handle, backend, lm, prompts, contexts)
    if args.only != "generation":
        compare_scoring(args, backend, lm)


def compare_generation(args, handle, backend, lm, prompts: list[str], contexts: list[str]) -> None:  # noqa: ANN001
    from lm_eval.api.instance import Instance

    from compsafe.models import GenerationConfig

    def count_new_tokens(texts: list[str]) -> int:
        return sum(len(handle.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)

    start = time.perf_counter()
    ours = backend.generate(prompts, GenerationConfig(max_new_tokens=args.max_new_tokens))
    ours_s = time.perf_counter() - start
    gen_kwargs = {"until": [], "max_gen_toks": args.max_new_tokens, "do_sample": False}
    requests = [Instance("generate_until", {}, (c, dict(gen_kwargs)), i) for i, c in enumerate(contexts)]
    start = time.perf_counter()
    theirs = lm.generate_until(requests, disable_tqdm=True)
    theirs_s = time.perf_counter() - start
    ours_tok, theirs_tok = count_new_tokens(ours), count_new_tokens(theirs)
    same = sum(a.strip() == b.strip() for a, b in zip(ours, theirs, strict=True))
    print(f"generation  compsafe: {ours_s:6.1f} s, {ours_tok / ours_s:7.1f} new tok/s")
    print(f"generation  lm-eval : {theirs_s:6.1f} s, {theirs_tok / theirs_s:7.1f} new tok/s")
    ratio = (ours_tok / ours_s) / (theirs_tok / theirs_s)
    print(f"throughput ratio (compsafe / lm-eval, tokens per second): {ratio:.2f}x")
    print(f"identical greedy outputs: {same}/{len(prompts)}")


def compare_scoring(args, backend, lm) -> None:  # noqa: ANN001
    from lm_eval.api.instance import Instance

    from compsafe.probes import build_probe
    from compsafe.probes.mcqa import format_question

    items = build_probe("mcqa", limit=args.mcqa).items
    pairs = [(format_question(i.data["question"]), f" {c}") for i in items for c in i.data["choices"]]
    instances = [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)]
    ours_times, theirs_times = [], []
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        ours = backend.loglikelihood(pairs)
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = lm.loglikelihood(instances, disable_tqdm=True)
        theirs_times.append(time.perf_counter() - start)
    ours_ll, theirs_ll = [r.logprob for r in ours], [lp for lp, _ in theirs]
    ours_s, theirs_s = min(ours_times), min(theirs_times)
    rel = [abs(a - b) / max(abs(b), 1e-9) for a, b in zip(ours_ll, theirs_ll, strict=True)]
    print(
        f"loglikelihood: {len(pairs)} pairs ({len(items)} questions), best of {len(ours_times)}: compsafe "
        f"{ours_s:.2f} s, lm-eval {theirs_s:.2f} s -> {theirs_s / ours_s:.2f}x; relative difference "
        f"max {max(rel):.2e}, mean {sum(rel) / len(rel):.2e}"
    )
    greedy_same = sum(a.is_greedy == b for a, (_, b) in zip(ours, theirs, strict=True))
    print(f"is_greedy agreement: {greedy_same}/{len(pairs)}")
    offset, agree = 0, 0
    for item in items:
        k = len(item.data["choices"])
        a, b = ours_ll[offset : offset + k], theirs_ll[offset : offset + k]
        agree += a.index(max(a)) == b.index(max(b))
        offset += k
    print(f"MCQA argmax agreement: {agree}/{len(items)}")


if __name__ == "__main__":
    main()
