"""The one item-reading hook every file-backed probe shares: read_rows -> from_rows (parse_row, unique ids, a
balanced --limit, the item fields kept)."""

from __future__ import annotations

import pytest

from compsafe.errors import DataFileError
from compsafe.probes import PROBES
from compsafe.probes.base import ItemRows
from compsafe.probes.mcqa import MCQAProbe
from compsafe.probes.refusal import RefusalProbe


def _rows(*rows: dict) -> ItemRows:
    return ItemRows("toy", list(rows), "toy.jsonl", "user-supplied")


def test_from_rows_parses_limits_round_robin_and_keeps_item_fields() -> None:
    rows = _rows(*({"prompt": f"p{i}", "category": "ab"[i % 2], "extra": i} for i in range(6)))
    probe = RefusalProbe.from_rows(rows, 3)
    assert [i.id for i in probe.items] == ["toy-0000", "toy-0001", "toy-0002"]
    assert probe.items[1].data == {"prompt": "p1", "category": "b"}  # only item_fields: no 'extra'
    assert (probe.dataset.name, probe.dataset.count, probe.dataset.extra) == ("toy", 3, {"available": 6})


def test_from_rows_rejects_duplicate_ids_naming_the_row_kind() -> None:
    rows = _rows({"id": "q", "question": "2+2?", "choices": ["3", "4"], "answer": 1},
                 {"id": "q", "question": "3+3?", "choices": ["6", "7"], "answer": 0})  # fmt: skip
    with pytest.raises(DataFileError, match="question ids are not unique"):
        MCQAProbe.from_rows(rows, None)


def test_every_file_backed_probe_reads_through_the_shared_hook() -> None:
    """A probe with item_fields parses rows in parse_row(s); a from_spec of its own only adds options."""
    readers = [cls for _, cls in PROBES.items() if cls.item_fields]
    assert len(readers) >= 8
    for cls in readers:
        own = vars(cls).get("from_spec")
        assert own is None or "from_rows" in own.__func__.__code__.co_names, f"{cls.__name__} reads items itself"
