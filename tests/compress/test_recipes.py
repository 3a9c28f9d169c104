"""Recipe grammar: parsing, canonical round-trip, registry dispatch, one-line errors with suggestions."""

from __future__ import annotations

import json

import pytest
from torch import nn

from compsafe.compress import METHODS, CompressionConfig, apply_recipe, method_for, parse_recipe
from compsafe.compress.magnitude import MagnitudeConfig, NMConfig
from compsafe.compress.registry import all_examples
from compsafe.compress.rtn import RTNConfig
from compsafe.errors import RecipeError


def test_registered_methods() -> None:
    assert {"awq", "lowrank", "magnitude", "nm", "rtn", "wanda"} <= set(METHODS.names())
    for name, method in METHODS.items():
        assert method.name == name and method.grammar and method.examples


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("int8", RTNConfig(bits=8)),
        ("int8-sym", RTNConfig(bits=8)),
        ("int4", RTNConfig(bits=4)),
        ("int4-g128", RTNConfig(bits=4, group_size=128)),
        ("int4-rtn-g128", RTNConfig(bits=4, group_size=128)),
        ("INT3-G128", RTNConfig(bits=3, group_size=128)),
        ("int2-g64", RTNConfig(bits=2, group_size=64)),
        ("int4-g128-asym", RTNConfig(bits=4, group_size=128, symmetric=False)),
        ("int4-g128-head", RTNConfig(bits=4, group_size=128, include_lm_head=True)),
        ("mag-50", MagnitudeConfig(sparsity=0.5)),
        ("mag-50-layer", MagnitudeConfig(sparsity=0.5)),
        (" Mag-30-Global ", MagnitudeConfig(sparsity=0.3, scope="global")),
        ("2:4", NMConfig(n=2, m=4)),
        ("2:4-mag", NMConfig(n=2, m=4)),
        ("4:8", NMConfig(n=4, m=8)),
        ("1:4-head", NMConfig(n=1, m=4, include_lm_head=True)),
    ],
)
def test_parse(recipe: str, expected: CompressionConfig) -> None:
    assert parse_recipe(recipe) == expected


@pytest.mark.parametrize(
    ("config", "canonical"),
    [
        (RTNConfig(bits=4, group_size=128, symmetric=False), "int4-rtn-g128-asym"),
        (RTNConfig(bits=8), "int8-rtn"),
        (RTNConfig(bits=2, group_size=64, include_lm_head=True), "int2-rtn-g64-head"),
        (MagnitudeConfig(sparsity=0.07), "mag-7"),
        (MagnitudeConfig(sparsity=0.5, scope="global"), "mag-50-global"),
        (NMConfig(n=2, m=4), "2:4"),
    ],
)
def test_canonical_recipe(config: CompressionConfig, canonical: str) -> None:
    assert config.recipe == canonical
    assert parse_recipe(canonical) == config


@pytest.mark.parametrize("example", all_examples())
def test_every_example_round_trips(example: str) -> None:
    config = parse_recipe(example)
    assert parse_recipe(config.recipe) == config
    assert parse_recipe(config.recipe).recipe == config.recipe
    assert method_for(config).name == config.method
    assert json.loads(json.dumps(config.to_dict()))["recipe"] == config.recipe


def test_methods_claim_disjoint_recipes() -> None:
    for example in all_examples():
        claims = [name for name, method in METHODS.items() if method.parse(example) is not None]
        assert len(claims) == 1, (example, claims)


def test_unknown_recipe_is_one_line_with_suggestion() -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe("int5-g7")
    message = str(info.value)
    assert message.startswith("unknown recipe 'int5-g7'")
    assert "bits must be one of 2, 3, 4, 8" in message
    assert "recipes look like int8, int4-g128, int3-g128-asym, mag-50, mag-50-global, 2:4" in message
    assert "run `compsafe variants` for the grammar" in message
    assert "Did you mean" in message and "\n" not in message


@pytest.mark.parametrize(
    ("recipe", "suggestion"), [("mag-50-globl", "'mag-50-global'"), ("int4-g128-asm", "'int4-g128-asym'")]
)
def test_typo_gets_did_you_mean(recipe: str, suggestion: str) -> None:
    with pytest.raises(RecipeError, match=f"Did you mean {suggestion}"):
        parse_recipe(recipe)


@pytest.mark.parametrize("recipe", ["", "fp8", "int4-g1", "mag-0", "mag-100", "mag-12.5", "4:2", "0:4"])
def test_invalid_recipes_raise(recipe: str) -> None:
    with pytest.raises(RecipeError, match="unknown recipe"):
        parse_recipe(recipe)


def test_configs_validate_on_construction() -> None:
    with pytest.raises(RecipeError):
        RTNConfig(bits=5)
    with pytest.raises(RecipeError):
        MagnitudeConfig(sparsity=0.333)
    with pytest.raises(RecipeError):
        MagnitudeConfig(sparsity=0.5, scope="row")  # type: ignore[arg-type]
    with pytest.raises(RecipeError):
        NMConfig(n=4, m=4)


def test_apply_recipe_accepts_string_or_config() -> None:
    for recipe in ("int8", RTNConfig(bits=8), "mag-50", NMConfig(2, 4)):
        report = apply_recipe(nn.Sequential(nn.Linear(16, 8)), recipe)
        expected = recipe if isinstance(recipe, CompressionConfig) else parse_recipe(recipe)
        assert report.recipe == expected.recipe and report.method == expected.method
        assert report.to_dict()["compressed_numel"] == 128


def test_variants_show_each_recipes_grid() -> None:
    from compsafe.api import list_variants

    rows = {row["name"]: row for row in list_variants()}
    standard = "int4 sym -8..7 (16 levels), scale absmax/7.5"
    assert rows["rtn"]["grids"]["int4-g128"] == standard
    assert rows["gptq"]["grids"]["int4-gptq-g128"] == standard
    assert rows["rtn"]["grids"]["int4-g128-narrow"] == "int4 sym narrow -7..7 (15 levels), scale absmax/7"
    assert rows["awq"]["grids"]["int4-awq-g128"] == standard  # same default grid for RTN, GPTQ and AWQ
    assert rows["awq"]["grids"]["int4-awq-g128-asym"].startswith("int4 asym 0..15")
    assert not rows["magnitude"]["grids"]  # pruning has no int grid
