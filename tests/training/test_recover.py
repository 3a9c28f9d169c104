"""Safety recovery: training data, adapter on frozen compressed weights, attach/detach, the side-by-side run."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from compsafe.errors import CompsafeError
from compsafe.training import safety_data
from compsafe.training.recover import RECOVER_TRAIN_CONFIG, RecoveryInfo, recovery_examples

FAST = replace(RECOVER_TRAIN_CONFIG, epochs=1, batch_size=32, max_length=96)


def test_recovery_examples_weights_and_targets():
    n_harm = len(safety_data.load_training_rows(safety_data.shipped_training_file(safety_data.SAFETY_TRAIN_FILE)))
    examples, n_safety = recovery_examples("data", safety_weight=3.0)
    assert n_safety == n_harm and sum(e.weight == 3.0 for e in examples) == n_harm
    assert all(e.weight in (1.0, 3.0) for e in examples)
    seen: list[str] = []

    def generate(prompts):
        seen.extend(prompts)
        return ["" if k == 0 else f"answer {k}" for k in range(len(prompts))]  # the first answer is empty

    from_base, _ = recovery_examples("base", safety_weight=1.0, generate=generate)
    assert len(from_base) == len(seen) - 1  # the empty answer is dropped
    assert from_base[0].response == "answer 1" and from_base[0].prompt == seen[1]
    with pytest.raises(CompsafeError):
        recovery_examples("teacher", safety_weight=1.0)
    with pytest.raises(CompsafeError):
        recovery_examples("data", safety_weight=0.0)
    with pytest.raises(CompsafeError):
        recovery_examples("base", safety_weight=1.0)  # no model to answer


@pytest.fixture(scope="module")
def recovered_dir(tiny_llama_dir, tmp_path_factory):
    from compsafe.training.recover import recover

    out = tmp_path_factory.mktemp("recovered") / "adapter"
    meta = recover(str(tiny_llama_dir), "int4-rtn-g32", out, targets="data", config=FAST, dtype="float32")
    return out, meta


def test_recover_trains_only_the_adapter(recovered_dir):
    out, meta = recovered_dir
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    info = RecoveryInfo.load(out)
    assert info.recipe == "int4-rtn-g32" and info.targets == "data" and info.calibration is None
    losses = meta["losses"]
    assert meta["steps"] >= 6 and sum(losses[-3:]) < sum(losses[:3])  # the adapter learns
    assert 0 < meta["adapter_bytes"] < 10 * 2**20


def test_attached_adapter_changes_outputs_and_detaches_exactly(recovered_dir, tiny_llama_dir):
    from compsafe.compress import apply_recipe, parse_recipe
    from compsafe.integrity import state_digest
    from compsafe.models import LoadOptions, load_model
    from compsafe.training.recover import attached_adapter

    out, meta = recovered_dir
    handle = load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="float32"))
    apply_recipe(handle.model, parse_recipe("int4-rtn-g32"), None)
    digest = state_digest(handle.model)
    assert digest == meta["compressed_weights_digest"]  # the same weights the adapter was trained on
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    with torch.no_grad():
        plain = handle.model(ids).logits
        with attached_adapter(handle, str(out), digest) as info:
            recovered = handle.model(ids).logits
            assert info["targets"] == "data" and info["adapter_bits_per_weight"] > 0
        after = handle.model(ids).logits
    assert not torch.allclose(plain, recovered)
    assert torch.equal(plain, after) and state_digest(handle.model) == digest
    with pytest.raises(CompsafeError, match="other compressed weights"), attached_adapter(handle, str(out), "0" * 64):
        pass


def test_run_compares_base_compressed_and_recovered(recovered_dir, tiny_llama_dir, tmp_path):
    from typer.testing import CliRunner

    from compsafe.cli import app

    out, _ = recovered_dir
    run_dir = tmp_path / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", f"int4-rtn-g32,recovered:{out}", "--probes",
            "refusal,perplexity", "--limit", "3", "--max-new-tokens", "4", "--device", "cpu", "--dtype", "float32",
            "--out", str(run_dir)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["metrics"]) == {"base", "int4-rtn-g32", "int4-rtn-g32+recovered"}
    recovered_model = summary["models"]["int4-rtn-g32+recovered"]
    assert recovered_model["recovery"]["targets"] == "data"
    ppl = summary["metrics"]
    assert ppl["int4-rtn-g32"]["perplexity"]["perplexity"] != ppl["int4-rtn-g32+recovered"]["perplexity"]["perplexity"]
    # the bf16 default would compress differently from the adapter's float32 weights: refused, one line
    args_bf16 = [a if a != "float32" else "bfloat16" for a in args[:-1]] + [str(tmp_path / "run2")]
    bad = CliRunner().invoke(app, args_bf16, terminal_width=200)
    assert bad.exit_code != 0 and "other compressed weights" in bad.output and "Traceback" not in bad.output


def test_recover_cli_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from compsafe.cli import app

    result = CliRunner().invoke(app, ["recover", "--recipe", "int9-nope", "--out", str(tmp_path / "a")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["run", "--variants", f"recovered:{tmp_path}", "--probes", "refusal"])
    assert missing.exit_code != 0 and "recovery.json" in missing.output
