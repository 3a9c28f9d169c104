"""Bad user input fails in one line (a CompsafeError, exit 2 in the CLI), never a traceback or a silent accept."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.compress import parse_recipe
from compsafe.config import RunConfig, split_list, split_variants
from compsafe.errors import CompsafeError, ConfigError, DataFileError, ModelLoadError, RecipeError
from compsafe.jsonio import loads_checked


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"limit": "abc"}, "--limit"),
        ({"limit": True}, "--limit"),
        ({"variants": 5}, "--variants"),
        ({"variants": ["int8", " "]}, "empty entry"),
        ({"model": ""}, "--model is empty"),
        ({"model": "   "}, "--model is empty"),
        ({"batch_size": 2.5}, "--batch-size"),
        ({"screen_margin": float("nan")}, "--screen-margin"),
    ],
)
def test_run_config_rejects_bad_values(options, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        RunConfig(**options)


def test_config_file_values_are_validated_even_when_a_flag_overrides_them(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("limit: abc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="limit"):
        RunConfig.from_yaml(config, limit=5)
    config.write_text("variants: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="variants"):
        RunConfig.from_yaml(config)
    config.write_text("limit: 3\nlimit: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate key"):
        RunConfig.from_yaml(config)
    config.write_bytes(b"limit: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        RunConfig.from_yaml(config)
    config.write_text("limit: 3\nvariants: int8, mag-50\n", encoding="utf-8")
    assert RunConfig.from_yaml(config, limit=7).limit == 7


def test_empty_list_entries_are_errors_not_dropped() -> None:
    for value in ("int4,,int8", "int8,", ",int8"):
        with pytest.raises(ConfigError, match="empty entry"):
            split_variants(value)
    assert split_list("") == [] and split_list("refusal, mcqa") == ["refusal", "mcqa"]


@pytest.mark.parametrize("recipe", ["int４", "int4-g٣", "mag-５0", "int4\x00", ""])
def test_recipes_with_non_ascii_digits_or_control_characters_are_refused(recipe: str) -> None:
    with pytest.raises(RecipeError):
        parse_recipe(recipe)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1" + "0" * 5000, "digits"),
        ("[" * 100_000 + "]" * 100_000, "nesting"),
        ('{"prompt": "\\ud800"}', "surrogate"),
        ('{"prompt": NaN}', "NaN"),
        ("1e999", "overflows"),
    ],
)
def test_json_limits(text: str, needle: str) -> None:
    with pytest.raises(DataFileError, match=needle):
        loads_checked(text, "items.json")


def test_json_limits_can_be_raised(monkeypatch) -> None:
    deep = "[" * 80 + "]" * 80
    with pytest.raises(DataFileError):
        loads_checked(deep, "x")
    monkeypatch.setenv("COMPSAFE_JSON_MAX_DEPTH", "100")
    assert loads_checked(deep, "x") is not None


def test_markup_in_user_text_is_printed_not_interpreted(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--variants", "int4-[/red]", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "[/red]" in result.output and "Traceback" not in result.output


def test_over_long_strings_are_one_line_errors(tmp_path: Path) -> None:
    long = "x" * 5000
    for args in (["run", "--variants", long], ["run", "--model", long], ["verify", long], ["report", long]):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")] if args[0] == "run" else args)
        assert result.exit_code == 2, (args[:2], result.output)
        assert isinstance(result.exception, SystemExit), result.exception


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_broken_safetensors_files_are_named(tmp_path: Path) -> None:
    from compsafe.models.safetensors_check import check_safetensors_file

    good = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    cases = {
        "huge-header.safetensors": struct.pack("<Q", 2**40) + b"{}",
        "truncated.safetensors": _safetensors_bytes(good, b"\0" * 8),
        "short.safetensors": b"\1\2",
        "not-json.safetensors": struct.pack("<Q", 3) + b"abc",
        "wrong-size.safetensors": _safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16
        ),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelLoadError, match="not a valid safetensors"):
            check_safetensors_file(tmp_path / name)
    (tmp_path / "ok.safetensors").write_bytes(_safetensors_bytes(good, b"\0" * 16))
    check_safetensors_file(tmp_path / "ok.safetensors")


def test_weights_that_do_not_match_config_are_refused(tmp_path: Path, tiny_tokenizer) -> None:
    from compsafe.models import LoadOptions, load_model
    from conftest import save_tiny_llama

    folder = save_tiny_llama(tmp_path / "m", tiny_tokenizer, max_position_embeddings=64)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="shapes do not match"):
        load_model(str(folder), LoadOptions(device="cpu"))


def _recovery_folder(tmp_path: Path, **overrides) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    record = {
        "recipe": "int8",
        "calibration": None,
        "compressed_weights_digest": "0" * 64,
        "base_source": None,
        "targets": "base",
        **overrides,
    }
    (folder / "recovery.json").write_text(json.dumps(record))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(
        _safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    )
    return folder


def test_recovery_metadata_is_validated_before_a_model_loads(tmp_path: Path) -> None:
    from compsafe.training.recover import RecoveryInfo

    assert RecoveryInfo.load(_recovery_folder(tmp_path)).recipe == "int8"
    with pytest.raises(DataFileError, match="recipe"):
        RecoveryInfo.load(_recovery_folder(tmp_path, recipe=5))
    with pytest.raises(DataFileError, match="targets"):
        RecoveryInfo.load(_recovery_folder(tmp_path, targets="everything"))
    folder = _recovery_folder(tmp_path)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    with pytest.raises(DataFileError, match="peft_type"):
        RecoveryInfo.load(folder)
    folder = _recovery_folder(tmp_path)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(DataFileError, match="missing adapter_model.safetensors"):
        RecoveryInfo.load(folder)
    (folder / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(DataFileError, match="pickle"):
        RecoveryInfo.load(folder)


def test_every_user_error_is_a_compsafe_error() -> None:
    for error in (ConfigError, DataFileError, ModelLoadError, RecipeError):
        assert issubclass(error, CompsafeError)


def test_blank_lists_and_unreadable_model_configs_are_refused(tmp_path: Path, tiny_tokenizer) -> None:
    from compsafe.models import LoadOptions, load_model
    from conftest import save_tiny_llama

    with pytest.raises(ConfigError, match="only blanks"):
        split_variants("   ")
    folder = save_tiny_llama(tmp_path / "m", tiny_tokenizer, max_position_embeddings=64)
    for content, needle in ((b'{"model_type": "llama\xe9"}', "UTF-8"), (b"[1, 2]", "JSON object")):
        (folder / "config.json").write_bytes(content)
        with pytest.raises(ModelLoadError, match=needle):
            load_model(str(folder), LoadOptions(device="cpu"))
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 3}))
    with pytest.raises(ModelLoadError):
        load_model(str(folder), LoadOptions(device="cpu"))
