"""The perplexity probe on float32 logits in slices of positions (models.backend.float_slices) gives what it gave on
whole windows: the same NLL, the same stored top-k, the same KL from the base (1e-6 relative in float32)."""

from __future__ import annotations

import pytest
import torch

import compsafe.models.backend as backend_module
from compsafe.analysis.divergence import coarse_kl, topk_logprobs
from compsafe.models import HFBackend
from compsafe.probes import build_probe
from compsafe.probes.perplexity import TOP_K
from probes.test_contract import make_context, run


def whole_window_reference(backend: HFBackend, text: str, reference: dict | None) -> tuple[float, dict, float]:
    """The probe's computation before slicing: whole-window float32 logits (nll, top-k artifact, KL sum)."""
    ids = backend.tokenizer(text, add_special_tokens=True)["input_ids"]
    window = backend.handle.max_length
    nll, kl, n_tokens, values, top_ids = 0.0, 0.0, 0, [], []
    with torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start : start + window + 1]
            logits = backend.model(input_ids=torch.tensor([chunk[:-1]])).logits[0].float()
            targets = torch.tensor(chunk[1:])
            logprobs = torch.log_softmax(logits, dim=-1)
            nll += float(-logprobs.gather(-1, targets[:, None]).double().sum())
            top = topk_logprobs(logits, TOP_K)
            values.append(top[0].half())
            top_ids.append(top[1].int())
            if reference is not None:
                span = slice(n_tokens, n_tokens + targets.numel())
                ref_values, ref_ids = reference["topk_logprobs"][span].float(), reference["topk_ids"][span].long()
                kl += float(coarse_kl(ref_values, ref_ids, logits).sum())
            n_tokens += targets.numel()
    return nll, {"topk_logprobs": torch.cat(values), "topk_ids": torch.cat(top_ids)}, kl / n_tokens


def perturbed(handle):
    """The same tiny model with every weight moved a little: a variant whose distributions differ."""
    import copy

    variant = copy.copy(handle)
    variant.model = copy.deepcopy(handle.model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in variant.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return variant


@pytest.mark.parametrize("rows", [1, 7])
def test_sliced_perplexity_equals_whole_window_computation(tiny_handle, monkeypatch, rows):
    monkeypatch.setattr(backend_module, "TEXT_LOGITS_ROWS", rows)
    probe = build_probe("perplexity", limit=2)
    assert len(tiny_handle.tokenizer(probe.items[0].data["text"])["input_ids"]) > tiny_handle.max_length
    base_context, artifacts = make_context(tiny_handle)
    base = run(probe, base_context)
    variant_handle = perturbed(tiny_handle)
    variant_context, _ = make_context(variant_handle, is_base=False, artifacts=artifacts)
    variant = run(probe, variant_context)
    for item, b, v in zip(probe.items, base, variant, strict=True):
        nll, artifact, _ = whole_window_reference(base_context.backend, item.data["text"], None)
        assert b["nll_sum"] == pytest.approx(nll, rel=1e-6)
        assert torch.equal(artifacts[item.id]["topk_ids"], artifact["topk_ids"])
        assert torch.equal(artifacts[item.id]["topk_logprobs"], artifact["topk_logprobs"])
        v_nll, _, kl = whole_window_reference(variant_context.backend, item.data["text"], artifact)
        assert v["nll_sum"] == pytest.approx(v_nll, rel=1e-6)
        assert v["kl_from_base"] == pytest.approx(kl, rel=1e-6)
        assert v["kl_from_base"] > 1e-4  # a real difference, so the comparison can fail


def test_text_logits_slices_are_bounded(tiny_handle, monkeypatch):
    monkeypatch.setattr(backend_module, "TEXT_LOGITS_ROWS", 7)
    text = build_probe("perplexity", limit=1).items[0].data["text"]
    ids = tiny_handle.tokenizer(text)["input_ids"]
    slices = list(HFBackend(tiny_handle).text_logits(text))
    assert max(t.numel() for t, _ in slices) == 7
    assert torch.cat([t for t, _ in slices]).tolist() == ids[1:]
    assert all(logits.dtype == torch.float32 and logits.shape[0] == t.numel() for t, logits in slices)
