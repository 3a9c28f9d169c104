"""`compsafe run --executor ray` on a local Ray instance: same summary as a local run, records in one store.

The two-node cluster (no shared store) is tested in test_ray_two_nodes.py."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from conftest import tiny_mcqa_run_args

ray = pytest.importorskip("ray")


def test_ray_executor_matches_local_run(tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    common = [
        "run",
        "--model",
        str(tiny_llama_dir),
        "--variants",
        "int8,mag-50",
        "--probes",
        "refusal,perplexity",
        "--limit",
        "4",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
    ]
    runner = CliRunner()
    distributed = runner.invoke(app, [*common, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert distributed.exit_code == 0, distributed.output
    assert "ray: 2 base and 4 variant task(s)" in distributed.output
    assert distributed.output.count(" done on node ") == 6  # each task's rows committed as it finished
    assert "building" not in distributed.output  # the driver found every record in the store
    # the local Ray's token mode ends with the run: a later run joining a cluster without token auth must not
    # reject its workers' calls (OwnerDiedError; test_ray_two_nodes runs after this in the same process)
    assert "RAY_AUTH_MODE" not in os.environ
    if hasattr(ray._raylet, "get_authentication_mode"):  # a Ray with token authentication: its cached config too
        assert ray._raylet.get_authentication_mode() == ray._raylet.AuthenticationMode.DISABLED
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output

    def comparable(name: str) -> dict:
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        return {"metrics": summary["metrics"], "comparisons": summary["comparisons"]}

    assert comparable("ray") == comparable("local")
    with sqlite3.connect(tmp_path / "ray" / "store.sqlite") as store:
        assert store.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 3 * 2 * 4


def test_unreachable_cluster_is_one_line_error(tiny_llama_dir: Path, tmp_path: Path) -> None:
    args = tiny_mcqa_run_args(tiny_llama_dir, tmp_path / "r", "--executor", "ray", "--address", "127.0.0.1:1")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "cannot reach the Ray cluster" in result.output
