"""Property-based checks: whatever text a user passes as a recipe or a data file, compsafe either accepts it
or raises its own one-line error (CompsafeError) — never another exception (which would be a traceback)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compsafe.compress import parse_recipe
from compsafe.errors import CompsafeError
from compsafe.probes import build_probe
from compsafe.probes.datasets import read_data_file

RECIPE_ALPHABET = st.sampled_from(list("intgmagrswpq0123456789-:+=.,_ ")) | st.characters()


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=RECIPE_ALPHABET, max_size=24))
def test_recipe_parser_accepts_or_raises_recipe_error(text: str) -> None:
    try:
        config = parse_recipe(text)
    except CompsafeError as exc:
        assert "\n" not in str(exc)
        return
    assert parse_recipe(config.recipe) == config  # anything accepted has a canonical, round-tripping form


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".txt"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_data_files_load_or_raise_data_error(suffix: str, payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"items{suffix}"
        path.write_bytes(payload)
        try:
            read_data_file(path)
        except CompsafeError as exc:
            assert "\n" not in str(exc)
        for probe in ("refusal", "mcqa", "perplexity"):
            try:
                build_probe(f"{probe}:{path}")
            except CompsafeError as exc:
                assert "\n" not in str(exc)


def test_huge_line_and_wrong_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.jsonl"
    big.write_text('{"prompt": "' + "a" * 2_000_000 + '"}\n', encoding="utf-8")
    with pytest.raises(CompsafeError, match="COMPSAFE_MAX_ITEM_CHARS"):  # the item length limit, named
        build_probe(f"refusal:{big}")
    monkeypatch.setenv("COMPSAFE_MAX_ITEM_CHARS", "3000000")  # and overridable
    assert len(build_probe(f"refusal:{big}").items) == 1
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"prompt": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(CompsafeError, match="UTF-8"):
        build_probe(f"refusal:{latin}")
    empty = tmp_path / "empty.csv"
    empty.write_text("prompt\n")
    with pytest.raises(CompsafeError, match="no items"):
        build_probe(f"refusal:{empty}")
