"""lm-evaluation-harness's model interface over compsafe's backend, so any lm-eval task runs on base and variants.

Why a bridge instead of lm-eval's own HF model: the variants exist only inside a compsafe run (compressed in
memory, restored after), and compsafe's backend already batches, runs each shared context once and backs off
on out-of-memory. lm-eval's three request kinds map onto the backend's primitives:

- ``loglikelihood`` -> ``HFBackend.loglikelihood`` (lm-eval's token split, prefix token and truncation; the
  numbers equal lm-eval's HF backend's, tests/probes/test_lmeval_bridge.py);
- ``loglikelihood_rolling`` -> ``HFBackend.text_logits(prefix=True)`` (lm-eval's disjoint rolling windows);
- ``generate_until`` -> ``HFBackend.generate`` on the raw context (no chat template, as lm-eval without
  ``--apply_chat_template``), cut at the first stop string. compsafe strips the generated text's surrounding
  whitespace, which lm-eval keeps; the task's filters and metrics then see the stripped text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lm_eval.api.model import LM

from compsafe.models.backend import GenerationConfig, HFBackend

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default when a task's generation_kwargs do not set max_gen_toks


def generation_settings(gen_kwargs: dict[str, Any]) -> tuple[GenerationConfig, tuple[str, ...]]:
    """A ``generate_until`` request's kwargs as compsafe's decoding settings and its stop strings."""
    until = gen_kwargs.get("until") or ()
    stops = (until,) if isinstance(until, str) else tuple(until)
    temperature = float(gen_kwargs.get("temperature", 0.0) or 0.0)
    sample = bool(gen_kwargs.get("do_sample", False)) and temperature > 0
    config = GenerationConfig(
        max_new_tokens=int(gen_kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
        do_sample=sample,
        temperature=temperature if sample else 1.0,
        top_p=float(gen_kwargs.get("top_p", 1.0) or 1.0) if sample else 1.0,
    )
    return config, stops


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """The text before the first occurrence of any stop string (lm-eval splits on each in turn: same result)."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


class CompsafeLM(LM):
    """An lm-eval ``LM`` whose requests run on one compsafe ``HFBackend`` (the base or a variant)."""

    def __init__(self, backend: HFBackend) -> None:
        super().__init__()
        self.backend = backend

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        results = self.backend.loglikelihood([tuple(r.args) for r in requests])
        return [(r.logprob, r.is_greedy) for r in results]

    @torch.inference_mode()
    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        totals = []
        for request in requests:
            (text,) = request.args
            total = 0.0
            for targets, logits in self.backend.text_logits(text, prefix=True):
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                total += float(logprobs.gather(-1, targets[:, None]).sum())
            totals.append(total)
        return totals

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        outputs: list[str] = [""] * len(requests)
        groups: dict[tuple[GenerationConfig, tuple[str, ...]], list[int]] = {}
        for index, request in enumerate(requests):
            context, gen_kwargs = request.args
            groups.setdefault(generation_settings(dict(gen_kwargs)), []).append(index)
        for (config, stops), indices in groups.items():
            contexts = [requests[i].args[0] for i in indices]
            for index, text in zip(indices, self.backend.generate(contexts, config, chat=False), strict=True):
                outputs[index] = cut_at_stops(text, stops)
        return outputs
