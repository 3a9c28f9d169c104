"""HFBackend primitives against direct, unbatched forward passes of the same tiny model."""

from __future__ import annotations

import pytest
import torch
import transformers

from compsafe.models import GenerationConfig, HFBackend, LoadOptions, load_model
from compsafe.models.backend import length_sorted_batches
from conftest import CHAT_TEMPLATE, save_tiny_llama

transformers.logging.set_verbosity_error()

CPU32 = LoadOptions(device="cpu", dtype="float32")
PROMPTS = [
    "How do plants make food?",
    "Hi",
    "Explain in detail how the water cycle moves water between the oceans, the air and the land.",
    "What is the capital of France?",
    "Name a prime number.",
    "Why is the sky blue during the day but red at sunset?",
]
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@pytest.fixture(scope="module")
def handle(tiny_llama_dir):
    return load_model(str(tiny_llama_dir), CPU32)


@pytest.fixture(scope="module")
def gpt2_handle(tiny_gpt2_dir):
    return load_model(str(tiny_gpt2_dir), CPU32)


# ----- generate ---------------------------------------------------------------------------------------------
def test_greedy_generate_independent_of_batch_size(handle):
    config = GenerationConfig(max_new_tokens=8)
    one = HFBackend(handle, batch_size=1).generate(PROMPTS, config)
    four = HFBackend(handle, batch_size=4).generate(PROMPTS, config)
    assert one == four  # batch_size 1 runs every prompt alone: so the batched results are in caller order
    assert len(one) == len(PROMPTS)
    assert len(set(one)) > 1  # distinct continuations, so a permuted order could not pass


def test_generate_returns_plain_strings(handle):
    outputs = HFBackend(handle, batch_size=4).generate(PROMPTS, GenerationConfig(max_new_tokens=12))
    assert all(isinstance(o, str) for o in outputs)
    for output in outputs:
        assert not any(token in output for token in SPECIAL), output
        assert output == output.strip()
    # the random model does produce text (otherwise the checks above would hold vacuously)
    assert any(outputs)


def test_generate_matches_manual_greedy_decoding(handle):
    backend = HFBackend(handle, batch_size=4)
    prompt = PROMPTS[0]
    output = backend.generate([prompt], GenerationConfig(max_new_tokens=5))[0]
    ids = handle.tokenizer(backend.format_chat(prompt), add_special_tokens=False)["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(5):
            logits = handle.model(input_ids=torch.tensor([ids + new])).logits[0, -1]
            token = int(logits.argmax())
            new.append(token)
            if token == handle.tokenizer.eos_token_id:
                break
    assert output == handle.tokenizer.decode(new, skip_special_tokens=True).strip()


def test_progress_reports_every_prompt(handle):
    seen = []
    backend = HFBackend(handle, batch_size=4)
    backend.generate(PROMPTS, GenerationConfig(max_new_tokens=2), progress=seen.append)
    assert sum(seen) == len(PROMPTS)
    assert seen == [4, 2]


# ----- loglikelihood ----------------------------------------------------------------------------------------
def manual_loglik(handle, context: str, continuation: str) -> tuple[float, int, bool]:
    """One full forward of context+continuation; the context's tokens are cut off at its own length."""
    tokenizer = handle.tokenizer
    stripped = context.rstrip()
    continuation = context[len(stripped) :] + continuation
    whole = tokenizer(stripped + continuation)["input_ids"]
    n_context = len(tokenizer(stripped)["input_ids"])
    with torch.no_grad():
        logits = handle.model(input_ids=torch.tensor([whole])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(whole[n_context:])
    positions = logprobs[n_context - 1 : len(whole) - 1]
    total = float(positions.gather(-1, targets[:, None]).sum())
    return total, len(targets), bool((positions.argmax(-1) == targets).all())


REQUESTS = [
    ("Question: What do plants need?\nAnswer:", " Carbon dioxide"),
    ("The capital of France is", " Paris"),
    ("Water boils at ", "100 degrees"),  # trailing space moves to the continuation
    ("A", " very long continuation that has many more tokens than the others in the batch"),
    ("Photosynthesis is the process by which green plants turn light into", " chemical energy"),
]


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_loglikelihood_matches_manual_forward(handle, batch_size):
    results = HFBackend(handle, batch_size=batch_size).loglikelihood(REQUESTS)
    assert len(results) == len(REQUESTS)
    for (context, continuation), result in zip(REQUESTS, results, strict=True):
        logprob, n_tokens, greedy = manual_loglik(handle, context, continuation)
        assert result.n_tokens == n_tokens
        assert result.logprob == pytest.approx(logprob, abs=1e-4)
        assert result.is_greedy == greedy
        assert result.logprob < 0


def test_loglikelihood_is_greedy_true_for_argmax_continuation(handle):
    tokenizer = handle.tokenizer
    backend = HFBackend(handle, batch_size=4)
    found = 0
    for context in ("The capital of France is", "Plants need light", "Question: What is two plus two?"):
        ids = tokenizer(context)["input_ids"]
        with torch.no_grad():
            token = int(handle.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        continuation = tokenizer.decode([token])
        if not continuation.strip() or tokenizer(context + continuation)["input_ids"] != ids + [token]:
            continue  # this token does not round-trip through the tokenizer; try another context
        greedy = backend.loglikelihood([(context, continuation)])[0]
        assert greedy.is_greedy and greedy.n_tokens == 1
        found += 1
    assert found, "no context had a round-tripping argmax token"


def test_loglikelihood_rejects_empty_continuation(handle):
    with pytest.raises(ValueError, match="non-empty continuation"):
        HFBackend(handle).loglikelihood([("context", "")])


# ----- next_token_logprobs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_next_token_logprobs_match_unpadded_forward(request, which):
    handle = request.getfixturevalue("handle" if which == "llama" else "gpt2_handle")
    backend = HFBackend(handle, batch_size=4)
    rows = backend.next_token_logprobs(PROMPTS)
    assert rows.shape == (len(PROMPTS), handle.model.config.vocab_size)
    assert torch.allclose(torch.logsumexp(rows, dim=-1), torch.zeros(len(PROMPTS)), atol=1e-4)
    for index, prompt in enumerate(PROMPTS):
        text = backend.format_chat(prompt)
        ids = handle.tokenizer(text, add_special_tokens=not handle.has_chat_template)["input_ids"]
        with torch.no_grad():
            logits = handle.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        expected = torch.log_softmax(logits, dim=-1)
        assert torch.allclose(rows[index], expected, atol=1e-4), (which, index)


# ----- text_logits ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_window_handle(tmp_path_factory, tiny_tokenizer):
    folder = tmp_path_factory.mktemp("short-window")
    save_tiny_llama(folder, tiny_tokenizer, max_position_embeddings=32)
    return load_model(str(folder), CPU32)


LONG_TEXT = (
    "Photosynthesis is the process by which green plants, algae and some bacteria turn light into chemical "
    "energy. Inside the leaves, tiny structures called chloroplasts contain a green pigment named "
    "chlorophyll, "
    "which absorbs mostly red and blue light and reflects green, giving plants their familiar colour."
)


def test_text_logits_cover_long_text_once(short_window_handle):
    handle = short_window_handle
    assert handle.max_length == 32
    ids = handle.tokenizer(LONG_TEXT)["input_ids"]
    assert len(ids) > 3 * 32
    chunks = list(HFBackend(handle).text_logits(LONG_TEXT))
    assert len(chunks) == -(-(len(ids) - 1) // 32)
    targets = torch.cat([t for t, _ in chunks])
    assert targets.tolist() == ids[1:]
    for chunk_targets, logits in chunks:
        assert logits.shape == (chunk_targets.numel(), handle.model.config.vocab_size)
        assert chunk_targets.numel() <= 32
    # the first window's logits are those of a plain forward over its tokens
    first_targets, first_logits = chunks[0]
    with torch.no_grad():
        direct = handle.model(input_ids=torch.tensor([ids[:32]])).logits[0].float()
    assert torch.allclose(first_logits, direct, atol=1e-5)


def test_text_logits_short_text_is_one_window(handle):
    text = "Plants need light and water."
    ids = handle.tokenizer(text)["input_ids"]
    chunks = list(HFBackend(handle).text_logits(text))
    assert len(chunks) == 1
    assert chunks[0][0].tolist() == ids[1:]


# ----- formatting and batching ------------------------------------------------------------------------------
def test_format_chat_uses_template(handle):
    backend = HFBackend(handle)
    expected = "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
    assert backend.format_chat("Hello there") == expected
    with_system = backend.format_chat("Hello there", system="Be brief.")
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello there")
    assert handle.tokenizer.chat_template == CHAT_TEMPLATE


def test_format_chat_without_template_is_raw_text(gpt2_handle):
    assert not gpt2_handle.has_chat_template
    assert HFBackend(gpt2_handle).format_chat("Hello there", system="ignored") == "Hello there"


def test_gpt2_generate_batch_invariant(gpt2_handle):
    config = GenerationConfig(max_new_tokens=4)
    one = HFBackend(gpt2_handle, batch_size=1).generate(PROMPTS, config)
    four = HFBackend(gpt2_handle, batch_size=4).generate(PROMPTS, config)
    assert one == four


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 20])
def test_length_sorted_batches_partition_indices(batch_size):
    lengths = [5, 1, 9, 3, 9, 2, 7]
    batches = list(length_sorted_batches(lengths, batch_size))
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == -(-len(lengths) // batch_size)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_length_sorted_batches_empty():
    assert list(length_sorted_batches([], 4)) == []
