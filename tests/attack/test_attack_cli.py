"""`compsafe attack` end to end on a tiny model: records per request and objective, resume from the store, the
jailbreak transfer set built from the result, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.attack import differential
from compsafe.cli import app
from compsafe.errors import DataFileError
from compsafe.probes import build_probe

BUDGET = ["--steps", "1", "--candidates", "3", "--topk", "8", "--suffix-length", "3", "--max-new-tokens", "3"]


def attack_args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["attack", "--model", str(model_dir), "--variant", "int4-g32", "--judge", "phrase", "--device", "cpu",
            "--out", str(out), *BUDGET, *extra]  # fmt: skip


@pytest.fixture()
def counted(monkeypatch):
    """Counts the searches actually run (a resumed request is not searched again)."""
    calls: list[str] = []
    real = differential.attack_request

    def counting(pair, item, *args, **kwargs):
        calls.append(item.id)
        return real(pair, item, *args, **kwargs)

    monkeypatch.setattr(differential, "attack_request", counting)
    return calls


def test_attack_writes_records_and_resumes(tiny_llama_dir: Path, tmp_path: Path, counted: list[str]) -> None:
    out = tmp_path / "attack"
    first = CliRunner().invoke(app, attack_args(tiny_llama_dir, out, "--limit", "1"))
    assert first.exit_code == 0, first.output
    assert len(counted) == 2  # one request, two objectives
    second = CliRunner().invoke(app, attack_args(tiny_llama_dir, out, "--limit", "2"))
    assert second.exit_code == 0, second.output
    assert len(counted) == 4  # only the new request was searched, once per objective
    result = json.loads((out / "attack.json").read_text())
    assert set(result["objectives"]) == {"differential", "base-only"}
    for block in result["objectives"].values():
        records = block["records"]
        assert len(records) == 2 and block["summary"]["n"] == 2
        for r in records:
            assert len(r["suffix_ids"]) == 3 and r["steps_run"] <= 1
            assert r["success"] == (r["base_verdict_after"] == "refused" and r["variant_verdict_after"] == "complied")
            assert r["loss_after"] <= r["loss_before"]
    again = CliRunner().invoke(app, attack_args(tiny_llama_dir, out, "--limit", "2"))
    assert again.exit_code == 0 and len(counted) == 4
    assert json.loads((out / "attack.json").read_text())["objectives"] == result["objectives"]
    # a different seed is a different search: not reused
    CliRunner().invoke(app, attack_args(tiny_llama_dir, out, "--limit", "1", "--seed", "1",
                                        "--objectives", "base-only"))  # fmt: skip
    assert len(counted) == 5

    transfer = build_probe(f"jailbreak:attack:{out / 'attack.json'}")
    families = {item.data["family"] for item in transfer.items}
    assert families == {"direct", "gcg_base_only"}  # the file now holds the seed-1 base-only run
    suffixed = [i for i in transfer.items if i.data["family"] != "direct"]
    record = json.loads((out / "attack.json").read_text())["objectives"]["base-only"]["records"][0]
    assert suffixed[0].data["prompt"] == record["request"] + record["suffix"]


def test_transfer_set_rejects_a_file_that_is_no_attack_result(tmp_path: Path) -> None:
    bad = tmp_path / "attack.json"
    bad.write_text('{"runs": []}')
    with pytest.raises(DataFileError, match="no 'objectives'"):
        build_probe(f"jailbreak:attack:{bad}")
    with pytest.raises(DataFileError, match="cannot read"):
        build_probe(f"jailbreak:attack:{tmp_path / 'missing.json'}")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--objectives", "greedy"], "--objectives"),
        (["--steps", "-1"], "--steps"),
        (["--suffix-length", "0"], "--suffix-length"),
        (["--limit", "0"], "--limit"),
        (["--prompts", "/nonexistent/requests.jsonl"], "--prompts"),
        (["--judge", "nosuchjudge"], "nosuchjudge"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_llama_dir: Path, tmp_path: Path, extra: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, attack_args(tiny_llama_dir, tmp_path / "a", *extra))
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_variant_is_one_line_exit_2(tiny_llama_dir: Path, tmp_path: Path) -> None:
    args = attack_args(tiny_llama_dir, tmp_path / "a")
    args[args.index("int4-g32")] = "int3-nonsense"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
