"""Quantization-aware recovery: the fake quantizer's forward equals the recipe's quantizer, bit for bit, before and
after training (the merged weights quantized by the recipe are what the last step ran on); gradients pass
straight through; only RTN recipes are accepted."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers

from compsafe.compress import apply_recipe, parse_recipe
from compsafe.compress.targets import compressible_linears
from compsafe.errors import RecipeError
from compsafe.training.qat import QATSettings, check_qat_recipe, fake_quantize, quantization_aware
from conftest import tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("recipe", ["int4-g16", "int3-g32-asym", "int8", "int4-g16-narrow"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fake_quantizer_equals_the_recipe_in_forward(recipe: str, dtype: torch.dtype) -> None:
    model = tiny_llama().to(dtype)
    ptq = copy.deepcopy(model)
    apply_recipe(ptq, recipe)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(0))
    targets = compressible_linears(model)
    with quantization_aware(model, check_qat_recipe(parse_recipe(recipe)), QATSettings("lora")):
        seen = {name: module.weight.detach().clone() for name, module in targets}
        qat_logits = model(input_ids=ids).logits
    expected = dict(compressible_linears(ptq))
    for name, weight in seen.items():  # B = 0 at the start: the QAT forward is the PTQ model, exactly
        assert torch.equal(weight, expected[name].weight), name
    assert torch.equal(qat_logits, ptq(input_ids=ids).logits)


@pytest.mark.parametrize("mode", ["lora", "full"])
@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2])
def test_after_training_the_recipe_reproduces_the_last_forward(mode: str, make) -> None:
    model = make()
    before = weights(model)
    config = check_qat_recipe(parse_recipe("int4-g16"))
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(1))
    targets = compressible_linears(model)  # (parametrized weights are recomputed on access: list them before)
    with quantization_aware(model, config, QATSettings(mode)) as trainable:
        start = [p.detach().clone() for p in trainable]
        optimizer = torch.optim.SGD(trainable, lr=0.5 if mode == "lora" else 5.0)
        for _ in range(3):
            optimizer.zero_grad()
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
        # gradients reached every trainable tensor through the rounding (LoRA's A only once B is non-zero)
        assert all(not torch.equal(a, p) for a, p in zip(start, trainable, strict=True))
        last = {name: module.weight.detach().clone() for name, module in targets}
    assert not any(torch.equal(before[f"{name}.weight"], dict(compressible_linears(model))[name].weight)
                   for name in last)  # training moved every target weight
    apply_recipe(model, config)
    for name, module in compressible_linears(model):
        assert torch.equal(module.weight, last[name]), name
    untouched = [n for n in before if not any(n == f"{t}.weight" for t, _ in compressible_linears(model))]
    after = weights(model)
    assert all(torch.equal(before[n], after[n]) for n in untouched)  # norms, embeddings, head: frozen


def test_straight_through_gradient_is_the_identity() -> None:
    weight = torch.randn(4, 32, requires_grad=True)
    config = check_qat_recipe(parse_recipe("int4-g16"))
    out = fake_quantize(weight, config, torch.float32, transposed=False)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    assert torch.equal(weight.grad, upstream)


def test_only_round_to_nearest_recipes() -> None:
    with pytest.raises(RecipeError, match="RTN recipe"):
        check_qat_recipe(parse_recipe("int4-gptq-g128"))
    with pytest.raises(RecipeError, match="qat-mode"):
        QATSettings("half")


# ---------------------------------------------------------------- recover --qat, end to end


@pytest.fixture(scope="module")
def qat_dir(tiny_llama_dir, tmp_path_factory):
    from dataclasses import replace

    from compsafe.training.qat_recover import qat_recover
    from compsafe.training.recover import RECOVER_TRAIN_CONFIG

    out = tmp_path_factory.mktemp("qat") / "model"
    config = replace(RECOVER_TRAIN_CONFIG, epochs=1, batch_size=32, max_length=96)
    record = qat_recover(str(tiny_llama_dir), "int4-rtn-g32", out, targets="data", config=config, dtype="float32")
    return out, record


def test_qat_recover_writes_a_quantized_export_on_the_recipe_grid(qat_dir, tiny_llama_dir) -> None:
    from compsafe.export import read_manifest
    from compsafe.models import LoadOptions, load_model

    out, record = qat_dir
    assert record["recipe"] == "int4-rtn-g32" and record["qat"]["mode"] == "lora"
    assert record["steps"] >= 6 and sum(record["losses"][-3:]) < sum(record["losses"][:3])  # it learns
    manifest = read_manifest(out)
    assert manifest["recipe"] == "int4-rtn-g32" and manifest["export_format"] == "compressed-tensors"
    assert manifest["qat_recovery"]["targets"] == "data"
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    loaded = load_model(str(out), LoadOptions(device="cpu", dtype="float32")).model  # packed int codes, decoded
    ptq = load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="float32")).model
    apply_recipe(ptq, "int4-rtn-g32")
    with torch.no_grad():
        qat_logits, ptq_logits = loaded(input_ids=ids).logits, ptq(input_ids=ids).logits
    assert torch.isfinite(qat_logits).all()
    assert not torch.allclose(qat_logits, ptq_logits)  # training moved weights to other grid points than PTQ


def test_run_measures_qat_next_to_ptq_and_the_frozen_adapter(qat_dir, tiny_llama_dir, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from compsafe.cli import app

    out, _ = qat_dir
    run_dir = tmp_path / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", f"int4-rtn-g32,qat:{out}", "--probes",
            "perplexity", "--limit", "2", "--device", "cpu", "--dtype", "float32", "--out", str(run_dir)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["metrics"]) == {"base", "int4-rtn-g32", "int4-rtn-g32+qat"}
    ppl = summary["metrics"]
    assert ppl["int4-rtn-g32"]["perplexity"]["perplexity"] != ppl["int4-rtn-g32+qat"]["perplexity"]["perplexity"]
    missing = CliRunner().invoke(app, ["run", "--variants", f"qat:{tmp_path}", "--probes", "perplexity"])
    assert missing.exit_code == 2 and "qat.json" in missing.output and "Traceback" not in missing.output
    gptq = CliRunner().invoke(app, ["recover", "--qat", "--recipe", "int4-gptq-g128", "--out", str(tmp_path / "q")])
    assert gptq.exit_code == 2 and "RTN recipe" in gptq.output and not (tmp_path / "q").exists()
