"""The default study (base + the default variants x the default probes) through compsafe and through
lm-evaluation-harness's HF backend, in one run: wall-time ratio and whether the outputs are equal.

compsafe side: ``compsafe.api.run`` as a user runs it (load, probe the base, build/probe/restore each variant,
judge, analyse, write the run folder and reports), into a fresh folder and store, so it picks up whatever the
runner does by default (drafting from the base, shared prefixes, grouped scoring).
lm-eval side: the same model loaded by the same loader, wrapped in ``HFLM`` (the model object itself), each
variant built in place by the same ``compress.applied``; for every model the same work through lm-eval's
primitives: ``generate_until`` on the refusal and over-refusal prompts (chat template applied, the same greedy
length), ``loglikelihood_rolling`` on the perplexity passages and ``loglikelihood`` on the MCQA (question, choice)
pairs. It neither judges, nor computes KL from the base, nor writes anything: the ratio is conservative.

Outputs compared per model: identical generations (after strip), MCQA log-probabilities (max relative difference,
argmax agreement) and passage NLL (compsafe's default perplexity does not score the first token when the tokenizer
adds no BOS; lm-eval scores it after EOS, so that token's term is removed from lm-eval's sum, outside the timing).

Usage: python benchmarks/bench_study_vs_lm_eval.py [--model M] [--limit 8] [--variants int8,...] [--probes ...]
       [--max-new-tokens 48] [--batch-size 32] [--dtype auto]
Needs `pip install lm-eval` (not a compsafe dependency). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

GENERATION_PROBES = ("refusal", "over_refusal")


def parse_args() -> argparse.Namespace:
    from compsafe.config import DEFAULT_PROBES, DEFAULT_VARIANTS

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder or catalog name (default: embedded default)")
    parser.add_argument("--limit", type=int, default=8, help="items per probe")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--probes", default=",".join(DEFAULT_PROBES))
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", default="auto")
    return parser.parse_args()


def run_compsafe(args: argparse.Namespace, out: Path) -> tuple[float, dict[str, Any]]:
    from compsafe.api import run
    from compsafe.config import RunConfig

    config = RunConfig(
        model=args.model, variants=[v for v in args.variants.split(",") if v], probes=args.probes.split(","),
        out=out, limit=args.limit, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, dtype=args.dtype,
    )  # fmt: skip
    start = time.perf_counter()
    summary = run(config)
    return time.perf_counter() - start, summary


def study_requests(probes: list[str], limit: int) -> dict[str, list[Any]]:
    """What each probe asks every model, built from the probes' own items."""
    from compsafe.probes import build_probe
    from compsafe.probes.mcqa import format_question

    requests: dict[str, list[Any]] = {}
    for name in probes:
        items = build_probe(name, limit=limit).items
        if name in GENERATION_PROBES:
            requests[name] = [i.data["prompt"] for i in items]
        elif name == "perplexity":
            requests[name] = [i.data["text"] for i in items]
        elif name == "mcqa":
            requests[name] = [(format_question(i.data["question"]), f" {c}") for i in items for c in i.data["choices"]]
        else:
            raise SystemExit(f"no lm-eval equivalent wired for probe {name!r}")
    return requests


def run_lm_eval(
    args: argparse.Namespace, requests: dict[str, list[Any]], labels: list[str]
) -> tuple[float, dict[str, dict[str, list[Any]]], Any, Any]:
    """(seconds, {label: {probe: outputs}}, handle, HFLM) for the same work through lm-eval's HF backend."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from compsafe.compress import WeightSnapshot, applied
    from compsafe.models import HFBackend, LoadOptions, load_model

    start = time.perf_counter()
    handle = load_model(args.model, LoadOptions(dtype=args.dtype))
    chat = HFBackend(handle)
    lm = HFLM(pretrained=handle.model, tokenizer=handle.tokenizer, batch_size=args.batch_size,
              device=str(handle.device), dtype=handle.dtype, max_length=handle.max_length)  # fmt: skip
    gen_kwargs = {"until": [], "max_gen_toks": args.max_new_tokens, "do_sample": False}

    def probe_all() -> dict[str, list[Any]]:
        outputs: dict[str, list[Any]] = {}
        for probe, items in requests.items():
            if probe in GENERATION_PROBES:
                calls = [Instance("generate_until", {}, (chat.format_chat(p), dict(gen_kwargs)), i)
                         for i, p in enumerate(items)]  # fmt: skip
                outputs[probe] = [t.strip() for t in lm.generate_until(calls, disable_tqdm=True)]
            elif probe == "perplexity":
                calls = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(items)]
                outputs[probe] = lm.loglikelihood_rolling(calls, disable_tqdm=True)
            else:
                calls = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(items)]
                outputs[probe] = [lp for lp, _ in lm.loglikelihood(calls, disable_tqdm=True)]
        return outputs

    results = {"base": probe_all()}
    snapshot = WeightSnapshot(handle.model, weight_files=handle.weight_files())
    for label in labels:
        with applied(handle.model, label, snapshot=snapshot):
            results[label] = probe_all()
    return time.perf_counter() - start, results, handle, lm


def first_token_terms(lm: Any, handle: Any, texts: list[str]) -> list[float]:
    """log P(first token | EOS) per passage: the term lm-eval's rolling sum has and compsafe's default lacks."""
    from lm_eval.api.instance import Instance

    tokenizer = handle.tokenizer
    if tokenizer("")["input_ids"]:  # the tokenizer adds a BOS: compsafe scores the first token too
        return [0.0] * len(texts)
    firsts = [tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"][:1]) for t in texts]
    calls = [Instance("loglikelihood", {}, ("", f), i) for i, f in enumerate(firsts)]
    return [lp for lp, _ in lm.loglikelihood(calls, disable_tqdm=True)]


def compare(out: Path, names: list[str], theirs: dict[str, dict[str, list[Any]]], first_terms: list[float]) -> None:
    """Print, per model, how compsafe's records (run folder ``out``; its models in ``names``' order) compare."""
    from compsafe.runfolder import read_record_file, record_file

    for label, key in zip(names, theirs, strict=True):
        parts = []
        for probe, outputs in theirs[key].items():
            records = read_record_file(record_file(out, label, probe))
            if probe in GENERATION_PROBES:
                same = sum(r["response"].strip() == t for r, t in zip(records, outputs, strict=True))
                parts.append(f"{probe} identical {same}/{len(records)}")
            elif probe == "perplexity":
                rel = [abs(r["nll_sum"] - (-t + f)) / abs(-t + f) for r, t, f in zip(records, outputs, first_terms,
                                                                                   strict=True)]  # fmt: skip
                parts.append(f"perplexity NLL max rel diff {max(rel):.1e}")
            else:
                ours = [lp for r in records for lp in r["logprobs"]]
                rel = [abs(a - b) / max(abs(b), 1e-9) for a, b in zip(ours, outputs, strict=True)]
                offset, agree = 0, 0
                for r in records:
                    k = len(r["logprobs"])
                    mine, other = r["logprobs"], outputs[offset : offset + k]
                    agree += mine.index(max(mine)) == other.index(max(other))
                    offset += k
                parts.append(f"mcqa max rel diff {max(rel):.1e}, argmax agree {agree}/{len(records)}")
        print(f"  {label:12s} " + "; ".join(parts))


def main() -> None:
    args = parse_args()
    from compsafe.models import LoadOptions, load_model

    load_model(args.model, LoadOptions(dtype=args.dtype))  # warm the page cache and torch for both sides
    labels = [v for v in args.variants.split(",") if v]
    requests = study_requests(args.probes.split(","), args.limit)
    out = Path(tempfile.mkdtemp(prefix="compsafe-study-")) / "run"
    theirs_s, theirs, handle, lm = run_lm_eval(args, requests, labels)
    ours_s, summary = run_compsafe(args, out)
    first_terms = first_token_terms(lm, handle, requests["perplexity"]) if "perplexity" in requests else []
    n_gen = sum(len(requests[p]) for p in GENERATION_PROBES if p in requests)
    print(f"model: {handle.source} ({handle.dtype}, {handle.device}); models: base + {', '.join(labels)}; "
          f"per model: {n_gen} generations x {args.max_new_tokens} tokens, "
          f"{len(requests.get('perplexity', []))} passages, {len(requests.get('mcqa', []))} MCQA pairs")  # fmt: skip
    print(f"lm-eval HF backend (model work only): {theirs_s:7.1f} s")
    print(f"compsafe run (everything):            {ours_s:7.1f} s   timing: {summary.get('timing_seconds')}")
    print(f"same-work ratio (lm-eval / compsafe): {theirs_s / ours_s:.2f}x")
    print("outputs:")
    compare(out, list(summary["models"]), theirs, first_terms)  # the run's labels ("int8-rtn"), in plan order
    print(f"run folder: {out}")


if __name__ == "__main__":
    main()
