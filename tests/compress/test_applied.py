"""compress.applied: a variant lives only inside the `with`; the base comes back bit for bit, checked by digest."""

from __future__ import annotations

import pytest
import torch

from compsafe.compress import WeightSnapshot, applied, nonfinite_parameters
from compsafe.integrity import state_digest


def test_variant_inside_base_restored_after(tiny_handle) -> None:
    model = tiny_handle.model
    base = state_digest(model)
    with applied(model, "int4-rtn-g32") as variant:
        assert state_digest(model) != base
        assert variant.weights_digest == state_digest(model)
        assert variant.report.effective_bits_per_weight < 16
        assert variant.broken is None
    assert state_digest(model) == base


def test_restored_even_when_the_measurement_raises(tiny_handle) -> None:
    model = tiny_handle.model
    base = state_digest(model)
    with pytest.raises(ValueError, match="measurement failed"), applied(model, "mag-50"):
        raise ValueError("measurement failed")
    assert state_digest(model) == base


def test_only_compresses_the_given_modules(tiny_handle) -> None:
    model = tiny_handle.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with applied(model, "mag-50", only=["layers.1"]):
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".layers.1." in n for n in changed)


def test_a_shared_snapshot_serves_many_variants(tiny_handle) -> None:
    model = tiny_handle.model
    snapshot = WeightSnapshot(model)
    digests = []
    for recipe in ("int8", "mag-50", "2:4"):
        with applied(model, recipe, snapshot=snapshot) as variant:
            digests.append(variant.weights_digest)
        assert state_digest(model) == snapshot.digest
    assert len(set(digests)) == 3


def test_nan_weights_mark_the_variant_broken(tiny_handle) -> None:
    model = tiny_handle.model
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    assert nonfinite_parameters(model) == ["model.layers.0.mlp.up_proj.weight"]
    with applied(model, "int8") as variant:
        assert variant.broken is not None and "model.layers.0.mlp.up_proj.weight" in variant.broken


def test_a_restore_that_misses_state_fails_loudly(tiny_handle) -> None:
    model = tiny_handle.model
    model.register_buffer("scratch", torch.zeros(3))  # buffers are in the digest but not in the snapshot
    with pytest.raises(RuntimeError, match="not restored exactly"), applied(model, "int8"):
        model.scratch.fill_(1.0)
