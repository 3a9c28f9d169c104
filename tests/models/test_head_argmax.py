"""The sliced argmax of a forward pass (models.head_argmax) equals the argmax of the full logits."""

from __future__ import annotations

import pytest
import torch

from compsafe.models import head_argmax
from compsafe.models.head_argmax import argmax_logits
from conftest import tiny_gpt2, tiny_llama


@pytest.mark.parametrize("build", [lambda: tiny_llama(seed=0, initializer_range=0.2), tiny_gpt2,
                                   lambda: tiny_llama(seed=2, tie=True)])  # fmt: skip
def test_sliced_argmax_equals_the_full_logits_argmax(build, monkeypatch):
    model = build()
    ids = torch.randint(1, 128, (3, 11), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = model(input_ids=ids, logits_to_keep=7).logits.argmax(-1)
    monkeypatch.setattr(head_argmax, "SLICE_ELEMENTS", 3 * 128 * 2)  # two positions per slice: four slices
    calls, linear, head = [], torch.nn.functional.linear, model.get_output_embeddings()

    def spy(x, weight, bias=None):
        out = linear(x, weight, bias)
        if weight is head.weight:  # the output projection
            calls.append(tuple(out.shape))
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    with torch.inference_mode():
        sliced = argmax_logits(model, input_ids=ids, logits_to_keep=7)
    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    assert torch.equal(sliced, full)
    assert [shape[1] for shape in calls] == [2, 2, 2, 1]  # no slice as wide as the kept positions
    assert "forward" not in head.__dict__  # the module's own forward is back
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids, logits_to_keep=7).logits.argmax(-1), full)


def test_an_architecture_not_checked_gets_the_full_logits(monkeypatch):
    model = tiny_llama(seed=0)
    monkeypatch.setattr(head_argmax, "SLICEABLE", frozenset())
    ids = torch.randint(1, 128, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(argmax_logits(model, input_ids=ids), model(input_ids=ids).logits.argmax(-1))
