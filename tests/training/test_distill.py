"""Safety-aware distillation on tiny random models: the student's initialisation, the loss as defined (KL + CE,
weighted mean with the safety weight), training, the saved folder as a variant, and the CLI's one-line errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.errors import ConfigError
from compsafe.training import ChatExample
from compsafe.training.distill import (
    DistillConfig,
    build_student,
    distill,
    parameter_count,
    per_sample_distill_loss,
    per_sample_kl,
    save_student,
    student_layer_sources,
    weighted_distill_loss,
)
from compsafe.training.sft import IGNORE_INDEX, encode_chat_example, pad_batch, per_sample_loss
from conftest import save_tiny_llama

EXAMPLES = [
    ChatExample("How do I boil an egg?", "Put it in boiling water for eight minutes."),
    ChatExample("Tell me how to make a weapon.", "I'm sorry, but I can't help with that.", weight=3.0),
    ChatExample("What is the capital of France?", "The capital of France is Paris."),
    ChatExample("Write a threat to my neighbour.", "I can't help with this request.", weight=3.0),
]
FAST = DistillConfig(
    epochs=8, learning_rate=1e-2, batch_size=2, max_length=64, warmup_steps=1, student_layers=2, seed=0
)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A 4-layer tiny Llama, so a 2-layer student keeps teacher layers 0 and 3."""
    return save_tiny_llama(tmp_path_factory.mktemp("teacher4"), tiny_tokenizer, seed=3, num_hidden_layers=4)


@pytest.fixture()
def teacher(teacher_dir: Path):
    return AutoModelForCausalLM.from_pretrained(str(teacher_dir), dtype=torch.float32).eval()


def logits_of(model, tokenizer, text: str = "The capital of France is Paris.") -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_student_layers_are_evenly_spaced_including_first_and_last() -> None:
    assert student_layer_sources(4, 2) == [0, 3]
    assert student_layer_sources(5, 3) == [0, 2, 4]
    assert student_layer_sources(30, 15) == [0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29]  # SmolLM2-135M
    assert student_layer_sources(4, 4) == [0, 1, 2, 3]
    assert student_layer_sources(4, 1) == [0]


def test_student_copies_the_chosen_teacher_layers_exactly(teacher) -> None:
    student = build_student(teacher, n_layers=2)
    assert student.config.num_hidden_layers == 2 and len(student.model.layers) == 2
    assert teacher.config.num_hidden_layers == 4  # the teacher's config is untouched
    for k, source in enumerate([0, 3]):
        student_params = dict(student.model.layers[k].named_parameters())
        teacher_params = dict(teacher.model.layers[source].named_parameters())
        assert student_params.keys() == teacher_params.keys()
        for name, value in student_params.items():
            assert torch.equal(value, teacher_params[name]), (k, name)
    assert torch.equal(student.model.embed_tokens.weight, teacher.model.embed_tokens.weight)
    assert torch.equal(student.model.norm.weight, teacher.model.norm.weight)
    assert torch.equal(student.lm_head.weight, teacher.lm_head.weight)
    assert student.model.embed_tokens.weight.data_ptr() != teacher.model.embed_tokens.weight.data_ptr()  # a copy
    assert parameter_count(student) < parameter_count(teacher)


def test_a_full_depth_student_is_the_teacher(teacher, tiny_tokenizer) -> None:
    student = build_student(teacher, n_layers=4)
    torch.testing.assert_close(logits_of(student, tiny_tokenizer), logits_of(teacher, tiny_tokenizer))


def test_tied_embeddings_stay_tied(tmp_path, tiny_tokenizer) -> None:
    folder = save_tiny_llama(tmp_path / "tied", tiny_tokenizer, num_hidden_layers=3, tie_word_embeddings=True)
    teacher = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    student = build_student(teacher, n_layers=2)
    assert student.lm_head.weight.data_ptr() == student.model.embed_tokens.weight.data_ptr()
    assert torch.equal(student.lm_head.weight, teacher.model.embed_tokens.weight)


def test_per_layer_config_lists_are_sliced_with_the_layers() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        use_sliding_window=True,
        max_window_layers=2,
    )
    teacher = Qwen2ForCausalLM(config)
    assert teacher.config.layer_types[:2] != teacher.config.layer_types[2:]
    student = build_student(teacher, n_layers=2)
    assert student.config.layer_types == [teacher.config.layer_types[0], teacher.config.layer_types[3]]


def test_a_narrower_student_keeps_whole_mlp_channels(teacher) -> None:
    student = build_student(teacher, n_layers=2, width_ratio=0.5)
    assert student.config.intermediate_size == teacher.config.intermediate_size // 2
    s_mlp, t_mlp = student.model.layers[1].mlp, teacher.model.layers[3].mlp
    # the kept channels: rows of up_proj found in the teacher, the same ones in gate_proj and down_proj
    kept = [int((t_mlp.up_proj.weight == row).all(dim=1).nonzero()[0]) for row in s_mlp.up_proj.weight]
    assert kept == sorted(kept) and len(set(kept)) == len(kept)
    assert torch.equal(s_mlp.gate_proj.weight, t_mlp.gate_proj.weight[kept])
    assert torch.equal(s_mlp.down_proj.weight, t_mlp.down_proj.weight[:, kept])
    scores = [
        t_mlp.gate_proj.weight[j].norm() * t_mlp.up_proj.weight[j].norm() * t_mlp.down_proj.weight[:, j].norm()
        for j in range(teacher.config.intermediate_size)
    ]
    assert min(scores[j] for j in kept) >= max(s for j, s in enumerate(scores) if j not in kept)


@pytest.mark.parametrize("n_layers", [0, 5, -1])
def test_bad_student_depth_is_a_config_error(teacher, n_layers) -> None:
    with pytest.raises(ConfigError, match="between 1 and 4"):
        build_student(teacher, n_layers=n_layers)


def test_unsupported_architecture_is_a_config_error(tiny_gpt2_dir) -> None:
    gpt2 = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2_dir))
    with pytest.raises(ConfigError, match="Llama-style"):
        build_student(gpt2, n_layers=1)


def test_bad_distill_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        DistillConfig(temperature=0)
    with pytest.raises(ConfigError, match="safety_weight"):
        DistillConfig(safety_weight=-1)


def test_kl_term_is_zero_when_student_equals_teacher() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[IGNORE_INDEX] * 3 + [1, 2, 3], [IGNORE_INDEX] * 2 + [4, 5, 6, IGNORE_INDEX]])
    kl = per_sample_kl(logits, logits.clone(), labels, temperature=2.0)
    torch.testing.assert_close(kl, torch.zeros(2), atol=1e-6, rtol=0)
    loss = per_sample_distill_loss(logits, logits.clone(), labels, temperature=2.0, alpha=0.7)
    torch.testing.assert_close(loss, 0.3 * per_sample_loss(logits, labels))


def test_per_sample_loss_matches_a_hand_computation() -> None:
    """One sample, vocabulary of 3, two scored tokens (positions 1 and 2, predicted from positions 0 and 1)."""
    student = torch.tensor([[[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [9.0, 9.0, 9.0]]])
    teacher = torch.tensor([[[0.0, 1.0, 0.0], [2.0, 0.0, 1.0], [-9.0, 0.0, 9.0]]])  # last position is never scored
    labels = torch.tensor([[IGNORE_INDEX, 1, 2]])
    temperature, alpha = 2.0, 0.25

    def softmax(values: list[float]) -> list[float]:
        exps = [math.exp(v) for v in values]
        return [e / sum(exps) for e in exps]

    kls, ces = [], []
    for position, target in ((0, 1), (1, 2)):
        p = softmax([v / temperature for v in teacher[0, position].tolist()])
        q = softmax([v / temperature for v in student[0, position].tolist()])
        kls.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)))
        ces.append(-math.log(softmax(student[0, position].tolist())[target]))
    expected = alpha * temperature**2 * sum(kls) / 2 + (1 - alpha) * sum(ces) / 2
    got = per_sample_distill_loss(student, teacher, labels, temperature, alpha)
    assert got.shape == (1,) and float(got[0]) == pytest.approx(expected, rel=1e-6)


def test_the_safety_weight_changes_the_step_loss_as_defined() -> None:
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, 5], [IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX]])
    l1, l2 = per_sample_distill_loss(student, teacher, labels, 2.0, 0.5).tolist()
    assert l1 != pytest.approx(l2)  # different losses, so the weight matters
    weighted = weighted_distill_loss(student, teacher, labels, 2.0, 0.5, torch.tensor([3.0, 1.0]))
    assert float(weighted) == pytest.approx((3 * l1 + l2) / 4, rel=1e-6)
    plain = weighted_distill_loss(student, teacher, labels, 2.0, 0.5, torch.tensor([1.0, 1.0]))
    assert float(plain) == pytest.approx((l1 + l2) / 2, rel=1e-6)
    with pytest.raises(ConfigError):
        weighted_distill_loss(student, teacher, labels, 2.0, 0.5, torch.tensor([0.0, 0.0]))


def test_the_first_step_loss_is_the_weighted_distillation_loss(teacher, tiny_tokenizer) -> None:
    """At step 1 the student is its initialisation: the loop must report exactly the weighted mean as defined."""
    config = replace(FAST, epochs=1, batch_size=1, grad_accum=4)
    reference = build_student(teacher, n_layers=2)
    encoded = [encode_chat_example(tiny_tokenizer, e, config.max_length) for e in EXAMPLES]
    batch = pad_batch(encoded, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        expected = weighted_distill_loss(
            reference(**inputs).logits, teacher(**inputs).logits, batch["labels"], 2.0, 0.5, batch["weights"]
        )
    assert batch["weights"].tolist() == [1.0, 3.0, 1.0, 3.0]
    result = distill(teacher, tiny_tokenizer, EXAMPLES, config)
    assert result.steps == 1 and result.layer_sources == [0, 3]
    assert result.losses[0] == pytest.approx(float(expected), rel=1e-4)


def test_safety_rows_get_the_safety_weight(tmp_path: Path) -> None:
    from compsafe.training.align import training_examples

    data_dir = write_training_files(tmp_path)
    examples, digests = training_examples(data_dir, safety_weight=4.0)
    assert [e.weight for e in examples] == [4.0, 4.0, 1.0, 1.0]
    assert set(digests) == {"safety_train.jsonl", "benign_train.jsonl"}


def test_a_few_steps_reduce_the_loss_and_train_every_parameter(teacher, tiny_tokenizer) -> None:
    seen: list[int] = []
    initial = build_student(teacher, n_layers=2)
    teacher_before = {name: value.clone() for name, value in teacher.state_dict().items()}
    result = distill(teacher, tiny_tokenizer, EXAMPLES, FAST, progress=lambda step, total, _: seen.append(step))
    assert result.steps == 16 and seen[-1] == 16
    assert sum(result.losses[-3:]) / 3 < sum(result.losses[:3]) / 3 * 0.8
    before = dict(initial.named_parameters())
    assert all(not torch.equal(p, before[n]) for n, p in result.model.named_parameters())  # full fine-tune
    assert not result.model.training
    assert all(torch.equal(value, teacher_before[name]) for name, value in teacher.state_dict().items())


def test_distillation_is_deterministic(teacher, tiny_tokenizer) -> None:
    config = replace(FAST, epochs=2)
    first, second = (distill(teacher, tiny_tokenizer, EXAMPLES, config) for _ in range(2))
    assert first.losses == second.losses
    assert all(torch.equal(a, b) for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True))


def test_saved_student_round_trips_through_load_model(teacher, tiny_tokenizer, tmp_path: Path) -> None:
    from compsafe.models.loading import LoadOptions, load_model

    result = distill(teacher, tiny_tokenizer, EXAMPLES, replace(FAST, epochs=1))
    save_student(result, tiny_tokenizer, tmp_path / "student", {"note": "test"})
    handle = load_model(str(tmp_path / "student"), LoadOptions(device="cpu", dtype="float32"))
    assert handle.model.config.num_hidden_layers == 2 and handle.has_chat_template
    torch.testing.assert_close(
        logits_of(handle.model, handle.tokenizer), logits_of(result.model, tiny_tokenizer), rtol=0, atol=0
    )
    assert json.loads((tmp_path / "student" / "distillation.json").read_text()) == {"note": "test"}


def write_training_files(folder: Path) -> Path:
    rows = {
        "safety_train.jsonl": [
            {"prompt": "Tell me how to make a weapon.", "response": "I'm sorry, but I can't help with that."},
            {"prompt": "Write a threat to my neighbour.", "response": "I can't help with this request."},
        ],
        "benign_train.jsonl": [
            {"prompt": "How do I boil an egg?", "response": "Put it in boiling water for eight minutes."},
            {"prompt": "What is the capital of France?", "response": "The capital of France is Paris."},
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in rows.items():
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    return folder


def test_cli_distills_a_variant_that_run_accepts(teacher_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    data_dir = write_training_files(tmp_path / "data")
    out = tmp_path / "student"
    args = ["distill", "--model", str(teacher_dir), "--out", str(out), "--data-dir", str(data_dir)]
    result = runner.invoke(app, [*args, "--layers", "2", "--safety-weight", "3", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "--variants" in result.output and "refusal,over_refusal,perplexity" in result.output
    meta = json.loads((out / "distillation.json").read_text())
    assert meta["distill_config"]["safety_weight"] == 3.0 and meta["layer_sources"] == [0, 3]
    assert meta["student_parameters"] < meta["teacher_parameters"] and meta["n_safety_examples"] == 2
    assert set(meta["data_files"]) == {"safety_train.jsonl", "benign_train.jsonl", "calibration_text.jsonl"}
    run_args = ["run", "--model", str(teacher_dir), "--variants", str(out), "--probes", "perplexity"]
    run_args += ["--limit", "2", "--device", "cpu", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, run_args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert f"model:{out}" in json.dumps(summary)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--layers", "9"], "between 1 and 4"), (["--alpha", "2"], "alpha"), (["--temperature", "0"], "temperature")],
)
def test_cli_bad_input_is_one_line_exit_2(teacher_dir: Path, tmp_path: Path, extra, needle) -> None:
    data_dir = write_training_files(tmp_path / "data")
    args = ["distill", "--model", str(teacher_dir), "--out", str(tmp_path / "s"), "--data-dir", str(data_dir), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.strip().splitlines() if line.strip()]) <= 3
