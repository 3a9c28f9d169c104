"""Shared fixtures: tiny models built from a config (random weights) with a real, offline-trained tokenizer.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in memory on compsafe's own shipped texts,
and the models are random Llama / GPT-2 configs saved with safetensors.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# Fuzz/property tests: few examples in CI (the default profile), many with `--hypothesis-profile=long`.
settings.register_profile("ci", max_examples=6, deadline=None)
settings.register_profile("long", max_examples=500, deadline=None)
settings.load_profile("ci")

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    data = importlib.resources.files("compsafe.data")
    texts = []
    for name in ("passages.jsonl", "harmful.jsonl", "over_refusal.jsonl", "mcqa.jsonl"):
        for line in data.joinpath(name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.append(" ".join(str(v) for v in row.values()))
    return texts


def build_tokenizer(chat_template: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(seed: int = 0, tie: bool = False, **config_overrides):
    """The tiny random Llama every compression test uses: 2 blocks, hidden 64, GQA 4/2 heads, vocab 128, eval mode.

    Built from a config in memory (no tokenizer, no files); ``config_overrides`` change any LlamaConfig field.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    fields = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, tie_word_embeddings=tie)
    return LlamaForCausalLM(LlamaConfig(**{**fields, **config_overrides})).eval()


def tiny_gpt2(seed: int = 0):
    """A tiny random GPT-2 (Conv1D weights stored transposed), eval mode: GPT-2 has dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


# ---- OBS-method test layers (GPTQ, SparseGPT)
def correlated_layer(seed: int = 0, out: int = 64, inp: int = 256, n: int = 1024):
    """A weight and inputs X = Z diag(s) Q^T (random rotation Q, log-spread scales s, four outlier channels):
    the Hessian is far from diagonal (~40% of its Frobenius norm off the diagonal), as for real LLM layers."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(inp, inp, generator=gen))
    s = torch.logspace(-1, 0.5, inp)[torch.randperm(inp, generator=gen)]
    x = (torch.randn(n, inp, generator=gen) * s) @ q.T
    x[:, :4] *= 8
    w = torch.randn(out, inp, generator=gen) * 0.05
    return w, x, 2 / n * x.T @ x


def layer_error(w: torch.Tensor, w_new: torch.Tensor, x: torch.Tensor) -> float:
    """||W X^T - W' X^T||_F / ||W X^T||_F computed directly from the inputs."""
    return ((x @ (w - w_new).T).norm() / (x @ w.T).norm()).item()


def tiny_mcqa_run_args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    """`compsafe run` arguments for the smallest real run: the base only, two MCQA items (fault and executor
    tests that need a run to start, fail or resume, not to measure)."""
    args = ["--model", str(model_dir), "--variants", "", "--probes", "mcqa", "--limit", "2", "--out", str(out)]
    return ["run", *args, *extra]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


def save_tiny_llama(folder: Path, tokenizer, seed: int = 0, **config_overrides) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    settings = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    config = LlamaConfig(**{**settings, **config_overrides})
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_tokenizer(chat_template=False)
    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_handle(tiny_llama_dir):
    from compsafe.models import LoadOptions, load_model

    return load_model(str(tiny_llama_dir), LoadOptions(device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    """One small `compsafe run` (two variants, all four probes) shared by the report/gate/compare tests."""
    from typer.testing import CliRunner

    from compsafe.cli import app

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "int8,mag-50", "--limit", "4"]
    args += ["--max-new-tokens", "4", "--batch-size", "4", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out
