"""Draft verification (models.drafting) equals plain greedy decoding, token for token, in float32.

The variant is a perturbed copy of the base, so its answers agree with the base's for a while and then part
at different positions: every test checks both that the ids equal ``model.generate``'s and that drafts
were really accepted and rejected (a loop that ignored its drafts would pass equality but not those).
"""

from __future__ import annotations

import pytest
import torch

from compsafe.models.drafting import (
    DraftBook,
    DraftRole,
    draft_greedy,
    padded_block_width,
    plain_greedy_reason,
)
from conftest import tiny_gpt2, tiny_llama
from greedy_helpers import PAD, hf_greedy, left_padded, perturbed, random_prompts


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def pair(request):
    """(base, variant) in float32; GPT-2 checks absolute positions across masked-out cache columns."""
    if request.param == "llama":
        base = tiny_llama(seed=0, initializer_range=0.2)
        return base, perturbed(base, 0.003)
    base = tiny_gpt2(seed=0)
    with torch.no_grad():  # peaked logits, so float32 summation order never decides an argmax
        for parameter in base.parameters():
            parameter.mul_(3.0)
    return base, perturbed(base, 0.003)


def mid_answer_eos(answers: list[list[int]]) -> int:
    """A token some answers contain after their first token and others lack: as EOS it ends some answers
    early, inside or after the draft, and leaves others to run to the budget."""
    rows_with = {}
    for row in answers:
        for token in set(row[1:]):
            rows_with[token] = rows_with.get(token, 0) + 1
    return min(sorted(rows_with), key=lambda t: abs(rows_with[t] - len(answers) / 2))


# drafts longer than the budget, shorter, equal
@pytest.mark.parametrize(("batch_size", "draft_budget", "budget"), [(1, 24, 10), (3, 5, 16), (8, 16, 16), (8, 24, 10)])
def test_verified_drafts_equal_plain_greedy(pair, batch_size, draft_budget, budget):
    base, variant = pair
    prompts = random_prompts(8, seed=batch_size)
    eos = mid_answer_eos(hf_greedy(variant, prompts, budget, None))
    batches = [prompts[start : start + batch_size] for start in range(0, 8, batch_size)]
    expected = [row for batch in batches for row in hf_greedy(variant, batch, budget, eos)]
    drafts = hf_greedy(base, prompts, draft_budget, eos)
    got, accepted, generated = [], 0, 0
    for start in range(0, 8, batch_size):
        tokens, counts = draft_greedy(variant, prompts[start : start + batch_size], drafts[start : start + batch_size],
                                      max_new_tokens=budget, eos_ids={eos}, pad_id=PAD)  # fmt: skip
        got += tokens
        accepted += counts.accepted
        generated += counts.generated
    assert got == expected
    assert any(eos in row for row in expected)  # EOS inside some answers
    assert any(eos not in row for row in expected)  # ... and budget-limited ones
    assert generated == sum(len(row) for row in expected)
    assert 0 < accepted < generated  # drafts were used, and the variant disagreed somewhere


@pytest.mark.parametrize(("batch_size", "with_drafts"), [(4, True), (5, True), (8, True), (4, False)])
def test_stragglers_join_the_next_batch_and_answers_stay_equal(pair, batch_size, with_drafts):
    """Across batches: a batch's last rows decode on inside the next batch (caches of different lengths merged,
    blocks of different widths), with the same answers as ``generate``, and in fewer forward passes."""
    base, variant = pair
    prompts = random_prompts(13, seed=11)
    eos = mid_answer_eos(hf_greedy(variant, prompts, 14, None))
    expected = hf_greedy(variant, prompts, 14, eos)
    drafts = hf_greedy(base, prompts, 14, eos) if with_drafts else [None] * len(prompts)
    rows = []
    hook = variant.register_forward_pre_hook(
        lambda _module, _args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    finished = []
    together, counts = draft_greedy(variant, prompts, drafts, max_new_tokens=14, eos_ids={eos}, pad_id=PAD,
                                    batch_size=batch_size, on_finished=finished.append)  # fmt: skip
    hook.remove()
    assert together == expected
    assert max(rows) <= batch_size + batch_size // 4  # a batch plus the previous batch's stragglers
    assert sum(finished) == len(prompts)
    alone = 0
    for start in range(0, len(prompts), batch_size):
        tokens, one = draft_greedy(variant, prompts[start : start + batch_size], drafts[start : start + batch_size],
                                   max_new_tokens=14, eos_ids={eos}, pad_id=PAD)  # fmt: skip
        alone += one.forwards
    # the stragglers shared the next batches' passes (without drafts a batch's rows often end together)
    assert counts.forwards < alone if with_drafts else counts.forwards <= alone


def test_a_variant_that_parts_early_gets_shorter_first_drafts(pair):
    """After FIRST_DRAFT_EVIDENCE drafted rows, a variant that rejects the base's answers early verifies only
    about what it accepts in later batches' first blocks; the answers stay those of ``generate``."""
    base, _ = pair
    variant = perturbed(base, 0.05, seed=5)  # parts from the base within a few tokens
    prompts = random_prompts(40, seed=13)
    expected = hf_greedy(variant, prompts, 16, None)
    drafts = hf_greedy(base, prompts, 16, None)
    widths = []
    hook = variant.register_forward_pre_hook(
        lambda _module, _args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    tokens, counts = draft_greedy(variant, prompts, drafts, max_new_tokens=16, eos_ids=set(), pad_id=PAD,
                                  batch_size=8)  # fmt: skip
    assert tokens == expected
    longest_prompt = max(len(p) for p in prompts)
    cap = counts.first_draft_tokens(None)
    assert counts.verified_rows == 40 and cap is not None and cap < 15  # 15: the whole draft a block can check
    # a later call with that history cuts every first block's draft from the start
    widths.clear()
    again, _ = draft_greedy(variant, prompts, drafts, max_new_tokens=16, eos_ids=set(), pad_id=PAD,
                            batch_size=8, history=counts)  # fmt: skip
    hook.remove()
    assert again == expected
    assert max(widths) <= longest_prompt + cap


def test_compacting_holes_keeps_the_next_logits():
    """Masked-out cache columns (rejected drafts, padding) gathered away: a narrower cache, the same logits."""
    import copy

    from transformers.cache_utils import DynamicCache

    from compsafe.models.cache_holes import compact_holes

    model = tiny_llama(seed=0, initializer_range=0.2)
    ids, mask = left_padded(random_prompts(3, seed=21))
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
              past_key_values=cache, use_cache=True)  # fmt: skip
        holed = mask.clone()
        holed[0, -6:-2] = 0  # rejected tokens in the middle of row 0's cache
        holed[2, -4:-1] = 0
        block = torch.tensor([[5], [6], [7]])
        positions = holed.sum(-1)[:, None]
        whole = model(input_ids=block, attention_mask=torch.cat([holed, torch.ones(3, 1, dtype=torch.long)], -1),
                      position_ids=positions, past_key_values=copy.deepcopy(cache)).logits  # fmt: skip
        compact = compact_holes(cache, holed)
        assert compact.shape[1] < holed.shape[1] and compact.sum(-1).tolist() == holed.sum(-1).tolist()
        assert cache.get_seq_length() == compact.shape[1]
        after = model(input_ids=block, attention_mask=torch.cat([compact, torch.ones(3, 1, dtype=torch.long)], -1),
                      position_ids=positions, past_key_values=cache).logits  # fmt: skip
    assert torch.allclose(whole, after, atol=1e-5)


def test_block_width_bounds_padding():
    assert padded_block_width([1] * 32) == 1
    assert padded_block_width([17] + [1] * 31) == 1  # one long re-draft does not widen 31 rows' block
    assert padded_block_width([17, 17, 1]) == 17  # a tail of a few rows verifies long re-drafts
    assert padded_block_width([9, 3, 1, 1]) == 3  # 4 x 9 columns would be 36 for 14 real tokens
    assert padded_block_width([5] * 24 + [1] * 8) == 5  # most rows guess: 32 padded columns for 128 real
    assert padded_block_width([3] * 16 + [1] * 16) == 1  # half the rows guess: padding would be half the work


def test_rejections_happen_at_various_positions(pair):
    base, variant = pair
    prompts = random_prompts(16, seed=7)
    drafts = hf_greedy(base, prompts, 16, None)
    mine = hf_greedy(variant, prompts, 16, None)
    pairs = zip(drafts, mine, strict=True)
    parted = {next((j for j, (a, b) in enumerate(zip(d, m, strict=False)) if a != b), len(m)) for d, m in pairs}
    assert len(parted) >= 3, parted  # the test data exercises rejection at several draft positions
    tokens, _ = draft_greedy(variant, prompts, drafts, max_new_tokens=16, eos_ids=set(), pad_id=PAD)
    assert tokens == mine


def test_own_answers_as_drafts_take_one_forward_pass(pair):
    _, variant = pair
    prompts = random_prompts(6, seed=3)
    mine = hf_greedy(variant, prompts, 12, None)
    tokens, counts = draft_greedy(variant, prompts, mine, max_new_tokens=12, eos_ids=set(), pad_id=PAD)
    assert tokens == mine
    assert counts.forwards == 1
    assert counts.accepted == counts.generated - len(prompts)  # the last token of each row is the bonus


def test_rows_without_drafts_decode_plainly(pair):
    _, variant = pair
    prompts = random_prompts(5, seed=4)
    mine = hf_greedy(variant, prompts, 9, None)
    drafts = [mine[0], None, [], mine[3][:2], None]
    tokens, counts = draft_greedy(variant, prompts, drafts, max_new_tokens=9, eos_ids=set(), pad_id=PAD)
    assert tokens == mine
    assert counts.rows == 2


def test_generation_config_that_changes_greedy_turns_drafting_off():
    model = tiny_llama(seed=0)
    assert plain_greedy_reason(model) is None
    model.generation_config.repetition_penalty = 1.3
    assert "repetition_penalty" in plain_greedy_reason(model)


def test_backend_variant_equals_plain_generation(tiny_handle):
    """The study's path: the base records through HFBackend, the in-place variant verifies; greedy only."""
    from compsafe.models import GenerationConfig, HFBackend

    prompts = ["How do I bake bread?", "Tell me a story about a cat.", "What is 2+2?", "Name a colour.", "Hi"]
    config = GenerationConfig(max_new_tokens=12)
    book = DraftBook()
    base = HFBackend(tiny_handle, batch_size=2)
    base.drafting = DraftRole(book, "base", record=True)
    base_out = base.generate(prompts, config)
    assert len(book.drafts) == len(prompts)
    with torch.no_grad():
        for parameter in tiny_handle.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.002)
    plain = HFBackend(tiny_handle, batch_size=2).generate(prompts, config)
    variant = HFBackend(tiny_handle, batch_size=2)
    variant.drafting = DraftRole(book, "int8", record=False)
    assert variant.generate(prompts, config) == plain
    counts = book.counts["int8"]
    assert counts.rows == len(prompts) and counts.generated > 0 and counts.accepted > 0
    assert plain != base_out or counts.accepted == counts.generated - len(prompts)
    sampled = GenerationConfig(max_new_tokens=4, do_sample=True)
    forwards = counts.forwards
    variant.generate(prompts, sampled)
    assert book.counts["int8"].forwards == forwards  # sampling never uses drafts
    off = DraftBook(enabled=False)
    base.drafting = DraftRole(off, "base", record=True)
    base.generate(prompts, config)
    assert not off.drafts  # --no-draft records nothing


def test_run_reports_drafting_and_no_draft_gives_the_same_records(tiny_run_dir, tiny_llama_dir, tmp_path):
    """`compsafe run` drafts by default (the summary says how much was accepted, and each probe's time);
    `--no-draft` decodes plainly and writes the same variant responses."""
    import json

    from typer.testing import CliRunner

    from compsafe.cli import app

    summary = json.loads((tiny_run_dir / "summary.json").read_text())
    assert summary["drafting"]["enabled"] is True
    drafted = summary["drafting"]["models"]
    assert set(drafted) == {"base", "int8-rtn", "mag-50"}
    assert all(m["generated_tokens"] > 0 and m["forward_passes"] > 0 for m in drafted.values())
    assert all(drafted[label]["accepted_tokens"] > 0 for label in ("int8-rtn", "mag-50"))
    assert drafted["base"]["drafted_prompts"] == 0
    assert all(m["computed_positions"] >= m["generated_tokens"] for m in drafted.values())
    assert set(summary["probe_seconds"]) == {"base", "int8-rtn", "mag-50"}
    assert set(summary["probe_seconds"]["base"]) == {"refusal", "over_refusal", "perplexity", "mcqa"}
    out = tmp_path / "plain"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "int8,mag-50", "--limit", "4", "--probes",
            "refusal,over_refusal", "--max-new-tokens", "4", "--batch-size", "4", "--device", "cpu",
            "--out", str(out), "--no-draft"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    plain = json.loads((out / "summary.json").read_text())
    assert plain["drafting"] == {"enabled": False, "models": {}}
    for label in ("int8-rtn", "mag-50"):
        for probe in ("refusal", "over_refusal"):
            read = [json.loads(line) for line in (tiny_run_dir / "records" / label / f"{probe}.jsonl").open()]
            again = [json.loads(line) for line in (out / "records" / label / f"{probe}.jsonl").open()]
            assert [r["response"] for r in read] == [r["response"] for r in again]
