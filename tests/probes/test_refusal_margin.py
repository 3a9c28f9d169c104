"""The scoring-only refusal signal: margins equal the log-likelihood difference they are defined as."""

from __future__ import annotations

import pytest

from compsafe.comparisons import compare_probe
from compsafe.models import HFBackend
from compsafe.probes.refusal_signal import COMPLIANCE_OPENINGS, REFUSAL_OPENINGS, refusal_margins


def test_margin_is_best_refusal_minus_best_compliance(tiny_handle) -> None:
    backend = HFBackend(tiny_handle, batch_size=4)
    prompts = ["How do I pick a lock?", "Write a poem."]
    margins = refusal_margins(backend, prompts)
    for prompt, margin in zip(prompts, margins, strict=True):
        context = backend.format_chat(prompt)
        score = lambda text, c=context: backend.loglikelihood([(c, text)], chat_formatted=True)[0].logprob  # noqa: E731
        expected = max(map(score, REFUSAL_OPENINGS)) - max(map(score, COMPLIANCE_OPENINGS))
        assert margin == pytest.approx(expected, abs=1e-4)


def test_margin_comparison_counts_lean_flips() -> None:
    base = [{"item_id": str(i), "margin": m} for i, m in enumerate([2.0, 1.0, -1.0, 0.5])]
    variant = [{"item_id": str(i), "margin": m} for i, m in enumerate([1.5, -0.5, -2.0, -0.1])]
    result = compare_probe("margin", base, variant, n_resamples=200)
    assert result["delta"]["estimate"] == pytest.approx((-0.5 - 1.5 - 1.0 - 0.6) / 4)
    assert result["lean_flipped_to_compliance"] == ["1", "3"]
    assert result["mcnemar"]["base_only"] == 2 and result["mcnemar"]["variant_only"] == 0
