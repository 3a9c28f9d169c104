"""The LoRA training loop on tiny random Llama models: loss goes down, weights and masks act as defined,
merging equals W + alpha/r * B A, runs are deterministic; and the adapter-merging catalog entry."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from compsafe.errors import ConfigError
from compsafe.training import (
    ChatExample,
    LoraSettings,
    TrainConfig,
    encode_chat_example,
    merge_lora,
    train_lora,
    weighted_lm_loss,
)
from compsafe.training.sft import IGNORE_INDEX, chat_prompt_ids, pad_batch, per_sample_loss

EXAMPLES = [
    ChatExample("How do I boil an egg?", "Put it in boiling water for eight minutes."),
    ChatExample("Tell me how to make a weapon.", "I'm sorry, but I can't help with that."),
    ChatExample("What is the capital of France?", "The capital of France is Paris."),
    ChatExample("Write a threat to my neighbour.", "I can't help with this request."),
]
FAST = TrainConfig(
    epochs=10,
    learning_rate=3e-2,
    batch_size=2,
    grad_accum=1,
    max_length=64,
    warmup_steps=1,
    seed=0,
    lora=LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj", "up_proj", "down_proj")),
)


@pytest.fixture()
def tiny_model(tiny_llama_dir: Path):
    return AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)


def test_loss_mask_covers_only_the_assistant_tokens(tiny_tokenizer) -> None:
    example = EXAMPLES[0]
    encoded = encode_chat_example(tiny_tokenizer, example, max_length=128)
    prompt_ids = chat_prompt_ids(tiny_tokenizer, example.prompt)
    assert encoded.input_ids[: len(prompt_ids)] == prompt_ids  # the prompt exactly as generation sees it
    assert all(label == IGNORE_INDEX for label in encoded.labels[: len(prompt_ids)])
    scored = [label for label in encoded.labels if label != IGNORE_INDEX]
    assert scored == encoded.input_ids[len(prompt_ids) :]
    assert scored[-1] == tiny_tokenizer.eos_token_id  # the model learns to stop
    assert tiny_tokenizer.decode(scored[:-1]) == example.response


def test_raw_text_examples_score_every_token(tiny_tokenizer) -> None:
    text = "the cat sat on the mat and the dog sat on the log"
    encoded = encode_chat_example(tiny_tokenizer, ChatExample("", text, 2.0, raw=True), max_length=128)
    ids = list(tiny_tokenizer(text, add_special_tokens=True)["input_ids"])
    assert encoded.input_ids == ids and encoded.labels == ids and encoded.weight == 2.0  # no chat template, no mask
    assert len(encode_chat_example(tiny_tokenizer, ChatExample("", text, raw=True), max_length=4).input_ids) == 4
    with pytest.raises(ConfigError):
        encode_chat_example(tiny_tokenizer, ChatExample("", "", raw=True), max_length=16)


def test_demo_anchor_is_the_calibration_prose_never_evaluation_text() -> None:
    from compsafe.probes.datasets import shipped
    from compsafe.training.align import anchor_examples

    anchors, digest = anchor_examples()
    assert len(anchors) >= 40 and all(a.raw and a.weight == 1.0 for a in anchors) and len(digest) == 64
    passages = {row["text"] for row in shipped("passages.jsonl")()}  # the perplexity evaluation set
    assert not passages & {a.response for a in anchors}


def test_long_reply_is_cut_and_long_prompt_is_an_error(tiny_tokenizer) -> None:
    prompt_len = len(chat_prompt_ids(tiny_tokenizer, EXAMPLES[0].prompt))
    encoded = encode_chat_example(tiny_tokenizer, EXAMPLES[0], max_length=prompt_len + 3)
    assert len(encoded.input_ids) == prompt_len + 3 and encoded.n_assistant_tokens == 3
    with pytest.raises(ConfigError, match="max_length"):
        encode_chat_example(tiny_tokenizer, EXAMPLES[0], max_length=prompt_len)


def test_per_sample_weights_give_the_weighted_mean(tiny_model, tiny_tokenizer) -> None:
    encoded = [encode_chat_example(tiny_tokenizer, e, 64) for e in EXAMPLES[:2]]
    batch = pad_batch(encoded, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        alone = []
        for example in encoded:  # each sample on its own, unpadded: padding must not change its loss
            single = pad_batch([example], tiny_tokenizer.pad_token_id)
            single_logits = tiny_model(input_ids=single["input_ids"]).logits
            alone.append(float(per_sample_loss(single_logits, single["labels"])[0]))
    losses = per_sample_loss(logits, batch["labels"])
    assert losses.tolist() == pytest.approx(alone, rel=1e-5)
    weighted = weighted_lm_loss(logits, batch["labels"], torch.tensor([1.0, 3.0]))
    assert float(weighted) == pytest.approx((alone[0] + 3 * alone[1]) / 4, rel=1e-5)
    only_second = weighted_lm_loss(logits, batch["labels"], torch.tensor([0.0, 2.0]))
    assert float(only_second) == pytest.approx(alone[1], rel=1e-5)
    with pytest.raises(ConfigError):
        weighted_lm_loss(logits, batch["labels"], torch.tensor([0.0, 0.0]))


def test_gradient_accumulation_reports_the_weighted_step_loss(tiny_model, tiny_tokenizer, tiny_llama_dir) -> None:
    """At step 1 LoRA's B is zero, so the model is the base: the step loss must equal the weighted mean."""
    examples = [replace(e, weight=w) for e, w in zip(EXAMPLES, (1.0, 2.0, 0.5, 4.0), strict=True)]
    config = replace(FAST, epochs=1, batch_size=1, grad_accum=4)
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
    encoded = [encode_chat_example(tiny_tokenizer, e, config.max_length) for e in examples]
    batch = pad_batch(encoded, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = float(weighted_lm_loss(logits, batch["labels"], batch["weights"]))
    result = train_lora(tiny_model, tiny_tokenizer, examples, config)
    assert result.steps == 1
    assert result.losses[0] == pytest.approx(expected, rel=1e-4)


def test_a_few_steps_reduce_the_loss_and_report_progress(tiny_model, tiny_tokenizer) -> None:
    seen: list[tuple[int, int]] = []
    result = train_lora(tiny_model, tiny_tokenizer, EXAMPLES, FAST, progress=lambda s, t, _: seen.append((s, t)))
    assert result.steps == 20 and len(result.losses) == 20 and seen[-1] == (20, 20)
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3 - 0.3  # nats per assistant token
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)  # the base stays frozen


def test_training_is_deterministic(tiny_llama_dir, tiny_tokenizer) -> None:
    config = replace(FAST, epochs=2)
    runs = []
    for _ in range(2):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
        runs.append(train_lora(model, tiny_tokenizer, EXAMPLES, config).losses)
    assert runs[0] == runs[1]


def test_merged_adapter_equals_base_plus_scaled_BA(tiny_model, tiny_tokenizer, tiny_llama_dir) -> None:
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
    result = train_lora(tiny_model, tiny_tokenizer, EXAMPLES, replace(FAST, epochs=2))
    layer = result.model.base_model.model.model.layers[0].self_attn.q_proj
    lora_a = layer.lora_A["default"].weight.detach().clone()
    lora_b = layer.lora_B["default"].weight.detach().clone()
    assert lora_b.abs().max() > 0  # training moved B away from its zero init
    merged = merge_lora(result.model)
    expected = base.model.layers[0].self_attn.q_proj.weight + (FAST.lora.alpha / FAST.lora.r) * lora_b @ lora_a
    torch.testing.assert_close(merged.model.layers[0].self_attn.q_proj.weight, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        merged.model.layers[0].self_attn.k_proj.weight, base.model.layers[0].self_attn.k_proj.weight
    )


def test_adapter_model_merges_once_and_again_for_a_new_adapter(
    tiny_llama_dir, tiny_tokenizer, tmp_path, monkeypatch
) -> None:
    from compsafe.models.catalog import AdapterModel
    from compsafe.models.loading import load_model

    monkeypatch.setenv("COMPSAFE_CACHE_DIR", str(tmp_path / "cache"))
    adapter_dir = tmp_path / "adapter"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
    train_lora(model, tiny_tokenizer, EXAMPLES, replace(FAST, epochs=1)).model.save_pretrained(str(adapter_dir))

    class FolderBase:  # stands in for the GGUF-converted base folder
        name = "tiny"

        def materialize(self) -> Path:
            return tiny_llama_dir

    entry = AdapterModel("tiny-demo", FolderBase(), str(adapter_dir), "test", "tiny base + adapter")  # type: ignore[arg-type]
    folder = entry.materialize()
    marker = json.loads((folder / "compsafe_adapter.json").read_text())
    assert marker["adapter_sha256"] == entry.adapter_digest()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert entry.materialize() == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp

    merged = AutoModelForCausalLM.from_pretrained(str(folder))
    assert merged.dtype == torch.bfloat16
    handle = load_model(str(folder))
    assert handle.tokenizer.chat_template

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
    train_lora(model, tiny_tokenizer, EXAMPLES, replace(FAST, epochs=1, seed=1)).model.save_pretrained(str(adapter_dir))
    entry.materialize()
    assert json.loads((folder / "compsafe_adapter.json").read_text())["adapter_sha256"] == entry.adapter_digest()
    assert json.loads((folder / "compsafe_adapter.json").read_text()) != marker
