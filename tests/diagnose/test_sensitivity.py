"""Sensitivity mechanics on tiny models: shared-context margins, one-block targeting, rankings, resuming."""

from __future__ import annotations

import pytest
import torch

from compsafe.compress import CalibrationSpec, build_calibration
from compsafe.compress.targets import compressible_linears, only_modules
from compsafe.diagnose.sensitivity import (
    BlockSensitivity,
    block_sensitivity,
    rank_blocks,
    validate_fast_signal,
    weight_sensitivity,
)
from compsafe.diagnose.signals import SignalProbe, Signals, split_harmful
from compsafe.models import HFBackend
from compsafe.probes.refusal_signal import refusal_margins


def test_split_is_disjoint_and_covers_every_category() -> None:
    validation, heldout = split_harmful()
    assert validation and heldout and not set(validation) & set(heldout)
    assert abs(len(validation) - len(heldout)) <= 10


def test_shared_context_margins_equal_the_batched_margins(tiny_handle) -> None:
    backend = HFBackend(tiny_handle, 4)
    prompts = split_harmful()[0][:6]
    expected = refusal_margins(backend, prompts)
    got = refusal_margins(backend, prompts, shared_context=True)
    assert torch.allclose(torch.tensor(got), torch.tensor(expected), atol=1e-4)


def test_only_modules_restricts_targets(tiny_handle) -> None:
    model = tiny_handle.model
    with only_modules(["model.layers.1"]):
        names = [name for name, _ in compressible_linears(model)]
    assert names and all(name.startswith("model.layers.1.") for name in names)
    assert len(compressible_linears(model)) == 2 * len(names)  # restored outside the block


def test_weight_sensitivity_ranks_the_damaged_module_first_and_restores(tiny_handle) -> None:
    model = tiny_handle.model
    damaged = model.model.layers[1].mlp.down_proj
    with torch.no_grad():  # equal magnitudes: pruning half of them loses sqrt(1/2) of the weight, far above Gaussians
        damaged.weight.copy_(torch.sign(damaged.weight) * 0.05)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calibration = build_calibration(tiny_handle.tokenizer, CalibrationSpec(n_samples=2, seq_len=32))
    rows = weight_sensitivity(model, "mag-50", calibration)
    assert rows[0].name == "model.layers.1.mlp.down_proj" and rows[0].block == 1
    assert rows[0].relative_error > max(r.relative_error for r in rows[1:])
    assert all(r.output_error is not None and r.output_error >= 0 for r in rows)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


class WeightReadingProbe:
    """Stub probe: the 'refusal margin' falls with the change of block 1's down_proj only."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.reference = model.model.layers[1].mlp.down_proj.weight.detach().clone()

    def cached(self, state: dict, **options: bool) -> None:
        return None  # no store: every block is built and measured

    def measure(self, *, judged: bool = False, capability: bool = True, state: dict | None = None) -> Signals:
        change = float((self.model.model.layers[1].mlp.down_proj.weight - self.reference).norm())
        return Signals(mean_margin=1.0 - 10 * change, fast_refusal_rate=1.0 - change, perplexity=10.0 + change)


def test_block_scan_ranks_a_damaging_block_first_and_restores(tiny_handle) -> None:
    model = tiny_handle.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scan = block_sensitivity(model, "int2-g16", WeightReadingProbe(model))  # type: ignore[arg-type]
    assert [r.block for r in scan.ranked("safety_damage")] == [1, 0]
    assert scan.ranked()[0].block == 1 and scan.blocks[0].safety_damage == 0
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_real_probe_scan_runs_on_tiny_model(tiny_handle) -> None:
    backend = HFBackend(tiny_handle, 4)
    probe = SignalProbe(backend, split_harmful()[0][:3], ["A short passage about rivers and the sea."])
    scan = block_sensitivity(tiny_handle.model, "int4-g16", probe, blocks=[1])
    assert len(scan.blocks) == 1 and scan.blocks[0].pattern == "model.layers.1"
    assert scan.to_dict()["ranked_by_selectivity"] == [1]


def test_block_scan_with_a_store_resumes_without_rebuilding(tiny_handle, tmp_path, monkeypatch) -> None:
    from compsafe.diagnose import sensitivity
    from compsafe.integrity import model_identity
    from compsafe.store import ResultStore

    store = ResultStore(tmp_path / "store.sqlite")
    probe = SignalProbe(
        HFBackend(tiny_handle, 4), split_harmful()[0][:3], ["A short passage about rivers and the sea."],
        store=store, identity=model_identity(tiny_handle),
    )
    first = block_sensitivity(tiny_handle.model, "int4-g16", probe)

    def no_build(*args, **kwargs):
        raise AssertionError("a finished block was rebuilt")

    monkeypatch.setattr(sensitivity, "applied", no_build)
    again = block_sensitivity(tiny_handle.model, "int4-g16", probe)
    assert [r.to_dict() for r in again.blocks] == [r.to_dict() for r in first.blocks]
    with pytest.raises(AssertionError, match="rebuilt"):  # a state not in the store is built
        block_sensitivity(tiny_handle.model, "int8", probe)
    store.close()


def test_rank_by_selectivity_and_spearman_validation() -> None:
    def row(block: int, margin: float, ppl: float, judged: float) -> BlockSensitivity:
        signals = Signals(mean_margin=margin, fast_refusal_rate=0.5, perplexity=ppl, judged_refusal_rate=judged)
        return BlockSensitivity(block, f"layers.{block}", signals, 1 - margin, ppl - 10, (1 - margin) / (ppl - 10))

    rows = [row(0, 0.9, 11.0, 0.8), row(1, 0.2, 10.5, 0.3), row(2, 0.5, 12.0, 0.6)]
    assert [r.block for r in rank_blocks(rows)] == [1, 2, 0]
    assert [r.block for r in rank_blocks(rows, "safety_damage")] == [1, 2, 0]
    result = validate_fast_signal(rows)
    assert result["spearman_margin"] == 1.0 and result["n_variants"] == 3


def test_sensitivity_cli_on_tiny_model(tiny_llama_dir, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from compsafe.cli import app

    out = tmp_path / "sensitivity.json"
    args = ["sensitivity", "--model", str(tiny_llama_dir), "--recipe", "int4-g16", "--prompts", "3"]
    args += ["--passages", "1", "--head-candidates", "2", "--calibration-samples", "2", "--max-new-tokens", "4"]
    args += ["--device", "cpu", "--judge", "phrase", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["judge"][0] == "phrase"  # the judge behind the judged rates is on record
    assert len(data["blocks"]["blocks"]) == 2 and data["blocks"]["fast_signal_validation"] is not None
    assert data["heads"]["screen"] == {"n_heads": 8, "exact": 2}  # too few for a screen correlation
    assert len(data["heads"]["ranked"]) == 2 and data["modules"][0]["output_error"] is not None


def test_sensitivity_cli_rejects_an_unknown_judge_before_loading(tmp_path) -> None:
    from typer.testing import CliRunner

    from compsafe.cli import app

    result = CliRunner().invoke(app, ["sensitivity", "--model", str(tmp_path / "absent"), "--judge", "nonesuch"])
    assert result.exit_code == 2
    assert "nonesuch" in result.output and "Traceback" not in result.output
