"""Coarse top-k KL: exact at k = V, a non-negative lower bound below that, zero for identical models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from compsafe.analysis import coarse_kl, topk_logprobs


def _full_kl(base_logits: torch.Tensor, variant_logits: torch.Tensor) -> torch.Tensor:
    log_p = torch.log_softmax(base_logits.double(), dim=-1)
    log_q = torch.log_softmax(variant_logits.double(), dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(dim=-1)


def _pair(seed: int, positions: int = 12, vocab: int = 50, noise: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(positions, vocab, generator=g) * 3
    variant = base + noise * torch.randn(positions, vocab, generator=g)
    return base, variant


def test_topk_logprobs_shapes_dtypes_and_values() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]], dtype=torch.bfloat16)
    values, ids = topk_logprobs(logits, 2)
    assert values.dtype == torch.float32 and ids.dtype == torch.int64
    assert ids.tolist() == [[1, 2]]
    full = torch.log_softmax(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), dim=-1)
    assert torch.allclose(values, full[:, [1, 2]])
    # Truncation after the full softmax: the kept mass is below 1.
    assert float(values.exp().sum()) < 1.0


def test_topk_logprobs_rejects_bad_k_and_shape() -> None:
    with pytest.raises(ValueError, match="k must"):
        topk_logprobs(torch.zeros(2, 5), 6)
    with pytest.raises(ValueError, match="k must"):
        topk_logprobs(torch.zeros(2, 5), 0)
    with pytest.raises(ValueError, match=r"\[T, V\]"):
        topk_logprobs(torch.zeros(5), 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_vocabulary_matches_torch_kl_div(seed: int) -> None:
    base, variant = _pair(seed)
    values, ids = topk_logprobs(base, base.shape[-1])
    kl = coarse_kl(values, ids, variant)
    assert kl.shape == (base.shape[0],)
    assert torch.allclose(kl, _full_kl(base, variant), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 10, 49])
def test_topk_is_a_nonnegative_lower_bound(k: int) -> None:
    base, variant = _pair(3, noise=2.0)
    values, ids = topk_logprobs(base, k)
    kl = coarse_kl(values, ids, variant)
    full = _full_kl(base, variant)
    assert bool((kl >= 0).all())
    assert bool((kl <= full + 1e-6).all())
    assert bool((kl > 0).any())


def test_bound_tightens_as_k_grows() -> None:
    base, variant = _pair(4, noise=1.5)
    means = [float(coarse_kl(*topk_logprobs(base, k), variant).mean()) for k in (2, 8, 32, 50)]
    assert means == sorted(means)  # merging fewer tokens can only keep more divergence
    assert means[-1] == pytest.approx(float(_full_kl(base, variant).mean()), rel=1e-4)


def test_identical_models_have_zero_kl() -> None:
    base, _ = _pair(5, vocab=1000)
    for k in (1, 16, 1000):
        kl = coarse_kl(*topk_logprobs(base, k), base.clone())
        assert torch.allclose(kl, torch.zeros_like(kl), atol=1e-6)


def test_hand_computed_two_bucket_case() -> None:
    # Base P = (0.5, 0.25, 0.25); variant Q = (0.25, 0.5, 0.25); k = 1 keeps token 0, rest = {1, 2}.
    base = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    variant = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    kl = coarse_kl(*topk_logprobs(base, 1), variant)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(kl[0]) == pytest.approx(expected, rel=1e-6)
    full = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    assert expected <= full


def test_zero_variant_probability_is_large_but_finite() -> None:
    base = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    variant = torch.tensor([[float("-inf"), 1.0, 0.0, -1.0]])
    kl = coarse_kl(*topk_logprobs(base, 2), variant)
    assert torch.isfinite(kl).all()
    assert float(kl[0]) > 10.0


def test_base_zero_mass_terms_contribute_nothing() -> None:
    # The base puts all mass on token 0; its other top-k entries are -inf log-probs (0 * log 0 = 0).
    base_lp = torch.tensor([[0.0, float("-inf")]])
    base_ids = torch.tensor([[0, 1]])
    variant = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    kl = coarse_kl(base_lp, base_ids, variant)
    assert float(kl[0]) == pytest.approx(math.log(2.0), rel=1e-6)


def test_empty_sequence_returns_empty() -> None:
    kl = coarse_kl(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, 10))
    assert kl.shape == (0,)


def test_validation_errors() -> None:
    values, ids = topk_logprobs(torch.randn(4, 10), 3)
    with pytest.raises(ValueError, match="positions"):
        coarse_kl(values, ids, torch.randn(5, 10))
    with pytest.raises(ValueError, match="tokenizer"):
        coarse_kl(values[:1], torch.tensor([[0, 1, 9]]), torch.randn(1, 5))
    with pytest.raises(ValueError, match=r"\[T, k\]"):
        coarse_kl(values, ids[:, :2], torch.randn(4, 10))
    with pytest.raises(ValueError, match="integer"):
        coarse_kl(values, ids.float(), torch.randn(4, 10))
    dup = ids.clone()
    dup[:, 1] = dup[:, 0]
    with pytest.raises(ValueError, match="repeat"):
        coarse_kl(values, dup, torch.randn(4, 10))
