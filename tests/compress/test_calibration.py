"""Calibration data and sampler: shipped files are well formed and disjoint from every evaluation set, the
sampler is seeded and mixes safety windows at the requested fraction, and the shared block-by-block pass
(``compress_sequentially``) collects the same statistics as hooks on the full, uncompressed model."""

from __future__ import annotations

import difflib
import importlib.resources
import json
import re

import pytest
import torch
import transformers
from torch import nn

from compsafe.compress import CalibrationSpec, build_calibration
from compsafe.compress.base import LayerReport
from compsafe.compress.calibration import load_texts, safety_texts
from compsafe.compress.sequential import LinearInputs, compress_sequentially
from compsafe.compress.targets import compressible_linears
from compsafe.errors import DataFileError
from conftest import tiny_gpt2, tiny_llama

transformers.logging.set_verbosity_error()


def rows(name: str) -> list[dict]:
    text = importlib.resources.files("compsafe.data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


# ---------------------------------------------------------------- shipped data


def test_calibration_text_is_well_formed_and_disjoint_from_passages() -> None:
    calib, passages = rows("calibration_text.jsonl"), rows("passages.jsonl")
    assert len(calib) >= 40
    for row in calib:
        assert set(row) == {"id", "topic", "text"}
        assert 150 <= len(row["text"].split()) <= 250, row["id"]
    assert len({r["topic"] for r in calib}) == len(calib)
    assert not {r["topic"] for r in calib} & {r["topic"] for r in passages}
    # no 8-word run of any evaluation passage appears in the calibration text
    ngrams = lambda t: {tuple(w[i : i + 8]) for w in [words(t)] for i in range(len(w) - 7)}  # noqa: E731
    evaluation = set().union(*(ngrams(r["text"]) for r in passages))
    assert not any(ngrams(r["text"]) & evaluation for r in calib)


def test_safety_calibration_is_well_formed_and_disjoint_from_evaluation_prompts() -> None:
    calib = rows("safety_calibration.jsonl")
    harmful, benign_eval = rows("harmful.jsonl") + rows("harm_severity.jsonl"), rows("over_refusal.jsonl")
    assert len(calib) >= 40
    for row in calib:
        assert set(row) == {"id", "prompt", "response", "category"} and row["prompt"] and row["response"]
    harm_categories = {r["category"] for r in rows("harmful.jsonl")}
    refusals = [r for r in calib if r["category"] != "benign"]
    assert {r["category"] for r in refusals} == harm_categories
    assert 8 <= sum(r["category"] == "benign" for r in calib) <= 14
    evaluation = [r["prompt"].lower() for r in harmful + benign_eval]
    for row in calib:
        prompt = row["prompt"].lower()
        assert prompt not in evaluation
        closest = max(difflib.SequenceMatcher(None, prompt, e).ratio() for e in evaluation)
        assert closest < 0.75, (row["id"], closest)  # not a paraphrase of an evaluation prompt


def test_fairness_pairs_are_minimal_pairs_disjoint_from_every_evaluation_file(tiny_tokenizer) -> None:
    from compsafe.compress.calibration import fairness_pairs

    pairs = rows("fairness_calibration_pairs.jsonl")
    assert len(pairs) >= 60 and len({r["bias_type"] for r in pairs}) == 7
    evaluation = [
        set(words(value))
        for path in importlib.resources.files("compsafe.data").iterdir()
        if path.name.endswith(".jsonl") and "calibration" not in path.name and "_train" not in path.name
        for row in rows(path.name)
        for value in row.values()
        if isinstance(value, str) and len(value) > 20
    ]
    for row in pairs:
        assert set(row) == {"id", "bias_type", "stereo", "antistereo"} and row["stereo"] != row["antistereo"]
        for sentence in (row["stereo"], row["antistereo"]):
            mine = set(words(sentence))
            closest = max(len(mine & other) / len(mine | other) for other in evaluation)
            assert closest < 0.5, (row["id"], closest)  # not a paraphrase of an evaluation item
    tokenized = fairness_pairs(tiny_tokenizer)
    assert len(tokenized) == len(pairs) and all(a.dtype == torch.long and len(a) for a, _ in tokenized)


def test_ids_unique_across_the_data_folder() -> None:
    names = ["harmful", "harm_severity", "over_refusal", "passages", "mcqa", "calibration_text", "safety_calibration"]
    names += ["fairness_calibration_pairs", "crows_pairs"]
    ids = [r["id"] for name in names for r in rows(f"{name}.jsonl")]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- sampler


def test_sampler_is_seeded_with_the_right_shape(tiny_tokenizer) -> None:
    spec = CalibrationSpec(n_samples=6, seq_len=32, seed=3)
    first, second = build_calibration(tiny_tokenizer, spec), build_calibration(tiny_tokenizer, spec)
    assert first.input_ids.shape == (6, 32) and first.input_ids.dtype == torch.long
    assert torch.equal(first.input_ids, second.input_ids) and first.digest == second.digest
    other = build_calibration(tiny_tokenizer, CalibrationSpec(n_samples=6, seq_len=32, seed=4))
    assert other.digest != first.digest and not torch.equal(other.input_ids, first.input_ids)
    assert first.to_dict()["shape"] == [6, 32] and first.to_dict()["seed"] == 3


def _stream(tokenizer, texts: list[str]) -> str:
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return "," + ",".join(map(str, ids)) + ","


@pytest.mark.parametrize(("fraction", "n_safety"), [(0.0, 0), (0.25, 2), (0.5, 4), (1.0, 8)])
def test_safety_fraction_puts_that_many_safety_windows(tiny_tokenizer, fraction: float, n_safety: int) -> None:
    calib = build_calibration(tiny_tokenizer, CalibrationSpec(n_samples=8, seq_len=24, safety_fraction=fraction))
    text_stream = _stream(tiny_tokenizer, load_texts("compsafe"))
    safety_stream = _stream(tiny_tokenizer, safety_texts(tiny_tokenizer))
    im_start = tiny_tokenizer.convert_tokens_to_ids("<|im_start|>")
    for index, row in enumerate(calib.input_ids.tolist()):
        window = "," + ",".join(map(str, row)) + ","
        from_safety = index >= 8 - n_safety
        assert window in (safety_stream if from_safety else text_stream), index
        if not from_safety:
            assert im_start not in row  # plain text windows never contain chat markup
    assert calib.to_dict()["safety_fraction"] == fraction


def test_user_file_source_and_errors(tmp_path, tiny_tokenizer) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("First paragraph of my own text.\n\nSecond paragraph, a little longer than the first.\n")
    assert load_texts(str(path)) == [
        "First paragraph of my own text.",
        "Second paragraph, a little longer than the first.",
    ]
    calib = build_calibration(tiny_tokenizer, CalibrationSpec(source=str(path), n_samples=3, seq_len=16))
    assert calib.input_ids.shape == (3, 16)
    with pytest.raises(DataFileError, match="does not exist"):
        load_texts(str(tmp_path / "missing.txt"))
    with pytest.raises(DataFileError):
        CalibrationSpec(safety_fraction=1.5)


# ---------------------------------------------------------------- the shared sequential pass


@torch.no_grad()
def direct_inputs(model: nn.Module, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every target layer's input rows [tokens, in], from hooks over full forward passes of the whole model."""
    seen: dict[str, list[torch.Tensor]] = {}
    handles = [
        module.register_forward_hook(
            lambda mod, args, out, name=name: seen.setdefault(name, []).append(args[0].reshape(-1, args[0].shape[-1]))
        )
        for name, module in compressible_linears(model, include_lm_head=True)
    ]
    for row in input_ids:
        model(input_ids=row[None], use_cache=False)
    for handle in handles:
        handle.remove()
    return {name: torch.cat(parts).double() for name, parts in seen.items()}


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_sequential_statistics_match_direct_computation(build) -> None:
    model = build()
    input_ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))
    direct = direct_inputs(model, input_ids)
    collected: dict[str, LinearInputs] = {}

    def record(name: str, module: nn.Module, stats: LinearInputs) -> LayerReport:  # leaves the weights alone
        collected[name] = stats
        return LayerReport(name=name, numel=module.weight.numel(), bits_per_weight=32.0, sparsity=0.0, relative_error=0)

    reports = compress_sequentially(
        model, input_ids, record, needs={"hessian", "sq_norm", "abs_mean"}, include_lm_head=True
    )
    assert [r.name for r in reports] == [name for name, _ in compressible_linears(model, include_lm_head=True)]
    assert set(collected) == set(direct) and len(collected) == len(reports)
    for name, x in direct.items():
        stats = collected[name]
        assert stats.n_tokens == x.shape[0] == 64
        hessian = 2 / x.shape[0] * x.T @ x
        assert (stats.hessian.double() - hessian).norm() / hessian.norm() < 1e-5, name
        torch.testing.assert_close(stats.sq_norm.double(), (x * x).sum(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats.abs_mean.double(), x.abs().mean(0), rtol=1e-5, atol=1e-6)
