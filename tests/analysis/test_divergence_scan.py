"""The divergence scanner on constructed records, its run-folder file, and `compsafe scan` / the new probes on the
tiny model through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from compsafe.analysis.divergence_scan import (
    ScanProbes,
    margin_flip_rates,
    read_run_records,
    scan_divergences,
    scan_run_records,
    write_divergences,
)
from compsafe.cli import app
from compsafe.metrics import scan_probes

PROBES = ScanProbes("refusal", "refusal_margin")


def _ref(item, refused, degenerate=False):
    return {"item_id": item, "category": "c", "prompt": f"p-{item}", "response": f"r-{item}", "refused": refused,
            "degenerate": degenerate}


def _m(item, margin):
    return {"item_id": item, "margin": margin}


BASE = [_ref("a", True), _ref("b", True), _ref("c", True), _ref("d", False), _ref("e", True)]
VARIANT = [_ref("a", False), _ref("b", True), _ref("c", False), _ref("d", False), _ref("e", False, degenerate=True)]
BASE_M = [_m("a", 2.5), _m("b", 0.1), _m("c", 0.4), _m("d", -1.0), _m("e", 1.0)]
VARIANT_M = [_m("a", -0.5), _m("b", 0.2), _m("c", -1.0), _m("d", -2.0), _m("e", 0.5)]


def test_divergences_ranked_by_base_margin():
    rows = scan_divergences(BASE, VARIANT, BASE_M, VARIANT_M)
    assert [r["item_id"] for r in rows] == ["c", "e", "a"]  # refused -> answered, lowest base margin first
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["margin_drop"] == 1.4 and rows[0]["base_response"] == "r-c"
    assert rows[1]["variant_degenerate"] is True
    unranked = scan_divergences(BASE, VARIANT)  # without margins: file order, margins None
    assert [r["item_id"] for r in unranked] == ["a", "c", "e"] and unranked[0]["base_margin"] is None


def test_flip_rates_by_margin_half():
    rates = margin_flip_rates(BASE, VARIANT, BASE_M)
    # base refusals by margin: b 0.1 (kept), c 0.4 (flipped) | e 1.0 (flipped), a 2.5 (flipped)
    assert rates["n_base_refusals"] == 4
    assert rates["flip_rate_low_margin_half"] == 0.5 and rates["flip_rate_high_margin_half"] == 1.0


def test_run_records_to_file(tmp_path):
    records = {"base": {"refusal": BASE, "refusal_margin": BASE_M},
               "int4": {"refusal": VARIANT, "refusal_margin": VARIANT_M}}
    scans = scan_run_records(records, PROBES)
    assert scans["int4"]["n"] == 3 and scans["int4"]["ranked_by_margin"]
    unranked = scan_run_records(records, ScanProbes("refusal"))["int4"]
    assert unranked["n"] == 3 and not unranked["ranked_by_margin"] and "margin_flip_rates" not in unranked
    path = write_divergences(tmp_path, records, PROBES)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["variant"], r["item_id"]) for r in rows] == [("int4", "c"), ("int4", "e"), ("int4", "a")]
    assert write_divergences(tmp_path / "x", {"base": {"refusal": BASE}}, PROBES) is None


def test_scan_probes_come_from_the_declarations():
    """The safety headline's probe decides, the probe declaring its margin ranks; no probe name in the scan."""
    assert scan_probes(["perplexity", "refusal_margin", "refusal"]) == PROBES
    assert scan_probes(["refusal", "mcqa"]) == ScanProbes("refusal", None)
    assert scan_probes(["over_refusal", "refusal_margin", "mcqa"]) is None


def test_cli_run_with_new_probes_and_scan(tiny_llama_dir, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "mag-50", "--limit", "3", "--max-new-tokens", "4",
            "--batch-size", "4", "--device", "cpu", "--out", str(out),
            "--probes", "long_context,jailbreak,privacy,refusal,refusal_margin"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    cmp = summary["comparisons"]["mag-50"]["probes"]
    assert "by_length" in cmp["long_context"] and "by_family" in cmp["jailbreak"] and "delta" in cmp["privacy"]
    assert (out / "divergences.jsonl").is_file()
    records = read_run_records(out, PROBES)
    assert set(records) == {"base", "mag-50"}
    scanned = CliRunner().invoke(app, ["scan", str(out)])
    assert scanned.exit_code == 0, scanned.output
    assert "divergences" in scanned.output
