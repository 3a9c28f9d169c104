"""The keep-blocks search stops at the tolerance, never exceeds the bit budget, and predicts bits exactly."""

from __future__ import annotations

import json

import pytest
import torch

from compsafe.compress import apply_recipe
from compsafe.config import DEFAULT_JUDGE
from compsafe.diagnose.mitigate import Evaluation, KeepBits, greedy_keep_search, keep_recipe, pareto_front
from compsafe.errors import RecipeError

ORDER = ["layers.3", "layers.1", "layers.0", "layers.2"]


def _stub(gain: dict[str, float], calls: list[tuple[str, ...]]):
    def evaluate(kept: tuple[str, ...]) -> Evaluation:
        calls.append(kept)
        return Evaluation(refusal_rate=0.5 + sum(gain[k] for k in kept), perplexity=10.0 - len(kept))

    return evaluate


def _bits(kept: tuple[str, ...]) -> float:
    return 4.0 + 1.0 * len(kept)


def test_search_stops_at_the_first_keep_within_tolerance() -> None:
    calls: list[tuple[str, ...]] = []
    gain = {"layers.3": 0.2, "layers.1": 0.15, "layers.0": 0.1, "layers.2": 0.05}
    result = greedy_keep_search(
        ORDER, _stub(gain, calls), _bits, lambda k: keep_recipe("int4", k), base_rate=0.9, max_drop=0.05
    )
    assert result.met_tolerance and result.stop_reason == "tolerance"
    assert result.chosen is not None and result.chosen.kept == ("layers.3", "layers.1")
    assert result.chosen.recipe == "int4+keep8=layers.3,layers.1"
    assert calls == [(), ("layers.3",), ("layers.3", "layers.1")]  # nothing evaluated past the tolerance


def test_search_never_exceeds_the_budget() -> None:
    calls: list[tuple[str, ...]] = []
    gain = {"layers.3": 0.01, "layers.1": 0.01, "layers.0": 0.01, "layers.2": 0.01}
    result = greedy_keep_search(
        ORDER,
        _stub(gain, calls),
        _bits,
        lambda k: keep_recipe("int4", k),
        base_rate=0.9,
        max_drop=0.02,
        budget_bits=6.5,
    )
    assert not result.met_tolerance and result.stop_reason == "budget"
    assert all(_bits(kept) <= 6.5 for kept in calls) and len(calls) == 3
    assert result.chosen is not None and result.chosen.bits <= 6.5 and len(result.chosen.kept) == 2


def test_already_safe_recipe_keeps_nothing() -> None:
    calls: list[tuple[str, ...]] = []
    result = greedy_keep_search(
        ORDER,
        _stub(dict.fromkeys(ORDER, 0.0), calls),
        _bits,
        lambda k: keep_recipe("int4", k),
        base_rate=0.51,
        max_drop=0.02,
    )
    assert result.chosen is not None and result.chosen.kept == () and result.chosen.recipe == "int4"


def test_pareto_front_drops_dominated_points() -> None:
    points = [
        {"recipe": "a", "bits": 4.0, "refusal_rate": 0.5, "perplexity": 12.0},
        {"recipe": "b", "bits": 4.5, "refusal_rate": 0.5, "perplexity": 12.5},  # dominated by a
        {"recipe": "c", "bits": 5.0, "refusal_rate": 0.8, "perplexity": 11.0},
        {"recipe": "base", "bits": 16.0, "refusal_rate": 0.9, "perplexity": 10.0},
    ]
    assert [p["recipe"] for p in pareto_front(points)] == ["a", "c", "base"]


def test_keep_recipe_rejects_unknown_mode() -> None:
    with pytest.raises(RecipeError):
        keep_recipe("int4", ["layers.0"], "keep4")


@pytest.mark.parametrize("mode", ["keep8", "keep"])
def test_predicted_bits_equal_the_applied_report(tiny_handle, mode: str) -> None:
    model = tiny_handle.model
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = apply_recipe(model, "int4-g16")
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(snapshot[n])
    predict = KeepBits(model, report, mode, dense_bits=32)  # the tiny model runs in float32
    for kept in [(), ("model.layers.1",), ("model.layers.0", "model.layers.1.mlp")]:
        applied = apply_recipe(model, keep_recipe("int4-g16", kept, mode))
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(snapshot[n])
        assert predict(kept) == pytest.approx(applied.effective_bits_per_weight, rel=1e-12)


def test_mitigate_cli_on_tiny_model(tiny_llama_dir, tmp_path) -> None:
    from typer.testing import CliRunner

    from compsafe.cli import app

    out = tmp_path / "mitigate.json"
    args = ["mitigate", "--model", str(tiny_llama_dir), "--recipe", "int2-g16", "--prompts", "3", "--passages", "1"]
    args += ["--max-new-tokens", "4", "--device", "cpu", "--budget-bits", "8", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["effective_bits_per_weight"] <= 8
    assert data["judge"][0] == DEFAULT_JUDGE  # scans judge like runs do, not with the phrase baseline
    assert all(c["bits"] <= 8 for c in data["search"]["candidates"])
    assert set(data["heldout"]) == {"base", "unmitigated", "mitigated"} and data["pareto_front"]


def test_ranking_from_sensitivity_keeps_damaging_blocks_in_order() -> None:
    from compsafe.diagnose.mitigate import ranking_from_sensitivity

    blocks = [
        {"block": 0, "pattern": "model.layers.0", "safety_damage": 0.3},
        {"block": 1, "pattern": "model.layers.1", "safety_damage": -0.1},
        {"block": 2, "pattern": "model.layers.2", "safety_damage": 0.9},
    ]
    data = {"recipe": "int4-rtn-g128", "blocks": {"blocks": blocks, "ranked_by_safety_damage": [2, 0, 1]}}
    assert ranking_from_sensitivity(data, "int4-g128") == ["model.layers.2", "model.layers.0"]
    with pytest.raises(RecipeError):
        ranking_from_sensitivity(data, "int8")
