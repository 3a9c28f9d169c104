"""Recipe ranges (``mag-10..60/10``) expand to one recipe per rate, in the config and on the command line; a
malformed range is one line and exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress.ranges import expand_range, expand_ranges, is_range
from compsafe.config import RunConfig, split_variants
from compsafe.errors import ConfigError, RecipeError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mag-10..60/10", ["mag-10", "mag-20", "mag-30", "mag-40", "mag-50", "mag-60"]),
        ("mag-10..50/20", ["mag-10", "mag-30", "mag-50"]),
        ("wanda-20..40/20", ["wanda-20", "wanda-40"]),
        ("sparsegpt-30..30/10", ["sparsegpt-30"]),
        ("mag-10..50/20-global", ["mag-10-global", "mag-30-global", "mag-50-global"]),
        ("lowrank-r0.25..0.75/0.25", ["lowrank-r0.25", "lowrank-r0.50", "lowrank-r0.75"]),
        ("int8", ["int8"]),
        ("2:4", ["2:4"]),
    ],
)
def test_ranges_expand_to_every_rate(text, expected):
    assert expand_range(text) == expected
    assert is_range(text) == (expected != [text])


def test_a_list_mixes_ranges_and_plain_recipes_in_order():
    assert expand_ranges(["int8", "mag-10..30/10", "2:4"]) == ["int8", "mag-10", "mag-20", "mag-30", "2:4"]
    assert split_variants("int8,mag-20..40/20,int4-g128") == ["int8", "mag-20", "mag-40", "int4-g128"]
    assert RunConfig(variants=["wanda-10..30/20"]).variants == ["wanda-10", "wanda-30"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("mag-10..60", "needs a step"),
        ("mag-10..60/", "needs a step"),
        ("mag-10..60/0", "step must be > 0"),
        ("mag-60..10/10", "below the start"),
        ("mag-10..55/10", "do not reach 55"),
        ("mag-10..60/x", "not a number"),
        ("mag-1..99/1", "more than 50"),
        ("mag-90..110/10", "expands to 'mag-100'"),
        ("foo-10..30/10", "expands to 'foo-10', which is not a recipe"),
    ],
)
def test_bad_ranges_are_one_line_recipe_errors(text, needle):
    with pytest.raises(RecipeError, match=needle) as caught:
        expand_range(text)
    assert "\n" not in str(caught.value)


def test_a_range_that_repeats_a_listed_variant_is_refused():
    with pytest.raises(ConfigError, match="listed twice"):
        RunConfig(variants=["mag-10..30/10", "mag-20"])


def test_an_existing_path_with_dots_is_not_read_as_a_range(tmp_path, monkeypatch):
    folder = tmp_path / "model-1..2" / "x"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert split_variants("model-1..2/x") == ["model-1..2/x"]


def test_cli_bad_range_exits_2_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["run", "--variants", "mag-10..55/10", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "do not reach 55" in result.output
    assert "Traceback" not in result.output
