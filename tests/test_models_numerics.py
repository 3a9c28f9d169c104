"""The settings that change CPU numerics (threads, torch, dtype, device) are part of every store key and of the
run summary, so records computed under different settings are never mixed."""

from __future__ import annotations

import json

import torch

from compsafe.models.numerics import numerics
from compsafe.store import ResultStore


def test_numerics_follow_the_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = numerics(torch.bfloat16, "cpu")
        torch.set_num_threads(2)
        two = numerics(torch.bfloat16, "cpu")
    finally:
        torch.set_num_threads(before)
    assert one["threads"] == 1 and two["threads"] == 2 and one != two
    assert one["torch"] == torch.__version__ and one["dtype"] == "bfloat16" and one["device"] == "cpu"


def test_run_summary_and_store_keys_carry_the_numerics(tiny_run_dir) -> None:
    summary = json.loads((tiny_run_dir / "summary.json").read_text())
    expected = numerics(torch.float32, "cpu")
    assert summary["models"]["base"]["numerics"]["threads"] == expected["threads"]
    assert summary["environment"]["numerics"]["torch"] == torch.__version__
    store = ResultStore(tiny_run_dir / "store.sqlite")
    try:
        descriptions = [json.loads(row[0]) for row in store.connection.execute("SELECT description FROM keys")]
    finally:
        store.close()
    assert descriptions and all(
        (d["model"].get("base") or d["model"]).get("numerics", {}).get("threads") == expected["threads"]
        for d in descriptions
    )
