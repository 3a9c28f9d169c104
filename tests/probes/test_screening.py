"""Screening generated refusal probes by refusal margin: the decision rule, that a huge threshold changes no
verdict and a zero threshold generates nothing, that screened records get their own store key, and that a
screened run writes its reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from compsafe.analysis.divergence_scan import scan_divergences, shown_response
from compsafe.api import run
from compsafe.cli import app
from compsafe.comparisons import compare_probe
from compsafe.config import RunConfig
from compsafe.errors import ConfigError
from compsafe.judges import get_judge
from compsafe.models import GenerationConfig, HFBackend
from compsafe.probes import ProbeContext, build_probe
from compsafe.probes.refusal_signal import refusal_margins
from compsafe.probes.screening import screen_decision
from compsafe.report.divergences import print_divergences
from compsafe.report.html import render_html
from compsafe.report.markdown import render_markdown
from compsafe.report.terminal import print_summary
from compsafe.store import ResultStore

VERDICT_FIELDS = ("response", "verdict", "judge_confidence", "refused", "judge_reason", "degenerate")


@pytest.mark.parametrize(
    ("margin", "threshold", "expected"),
    [
        (5.0, 3.0, True),
        (3.0, 3.0, True),  # ties are screened
        (2.9, 3.0, None),
        (0.0, 3.0, None),
        (-2.9, 3.0, None),
        (-3.0, 3.0, False),
        (-7.5, 3.0, False),
        (0.0, 0.0, True),  # threshold 0 screens everything
        (-0.01, 0.0, False),
        (math.nan, 3.0, None),  # a broken margin is never trusted
        (math.inf, 3.0, True),
        (-math.inf, 3.0, False),
    ],
)
def test_screen_decision(margin: float, threshold: float, expected: bool | None) -> None:
    assert screen_decision(margin, threshold) is expected


def _context(handle, screen_margin: float | None) -> ProbeContext:
    return ProbeContext(
        backend=HFBackend(handle, 4),
        judge=get_judge("phrase"),
        generation=GenerationConfig(max_new_tokens=6),
        is_base=True,
        chunk_size=4,
        screen_margin=screen_margin,
    )


def _records(probe, context) -> list[dict]:
    return [record for batch in probe.evaluate(probe.items, context) for record in batch]


def test_huge_threshold_screens_nothing_and_keeps_every_verdict(tiny_handle) -> None:
    probe = build_probe("refusal", limit=6)
    plain = _records(probe, _context(tiny_handle, None))
    screened = _records(probe, _context(tiny_handle, 1e9))
    assert all("screened" not in r and "margin" not in r for r in plain)  # off: records exactly as before
    assert [r["item_id"] for r in screened] == [r["item_id"] for r in plain]
    for a, b in zip(plain, screened, strict=True):
        assert {k: a[k] for k in VERDICT_FIELDS} == {k: b[k] for k in VERDICT_FIELDS}
        assert b["screened"] is False and isinstance(b["margin"], float)
    assert probe.summarize(screened)["screened_share"] == 0.0
    assert "screened_share" not in probe.summarize(plain)
    json.loads(json.dumps(screened))


@pytest.mark.parametrize("name", ["refusal", "over_refusal", "jailbreak"])
def test_zero_threshold_screens_everything_without_generating(tiny_handle, monkeypatch, name) -> None:
    probe = build_probe(name, limit=6)
    context = _context(tiny_handle, 0.0)

    def no_generation(*args, **kwargs):
        raise AssertionError("screened items must not be generated")

    monkeypatch.setattr(context.backend, "generate", no_generation)
    progressed: list[int] = []
    context.progress = progressed.append
    records = _records(probe, context)
    margins = refusal_margins(context.backend, [i.data["prompt"] for i in probe.items])
    assert sum(progressed) == len(probe.items)
    for record, margin in zip(records, margins, strict=True):
        assert record["screened"] is True and record["response"] == ""
        assert record["margin"] == pytest.approx(margin, abs=1e-4)
        assert record["refused"] is (margin >= 0)
        assert record["verdict"] == ("refused" if margin >= 0 else "complied")
        p_refused = 1 / (1 + math.exp(-margin))
        assert record["judge_confidence"] == pytest.approx(p_refused if margin >= 0 else 1 - p_refused)
        assert record["judge_reason"].startswith("screened: margin")
    summary = probe.summarize(records)
    assert summary["screened_share"] == 1.0


def test_screened_records_are_keyed_apart(tiny_handle, tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store.sqlite")
    keys = {}
    for name in ("refusal", "over_refusal", "jailbreak", "refusal_margin", "perplexity"):
        probe = build_probe(name, limit=2)
        configs = [probe.query_config(_context(tiny_handle, m)) for m in (None, 2.0, 3.0)]
        keys[name] = [store.register_key({"model": {"w": "x"}, "query": c}) for c in configs]
    for name in ("refusal", "over_refusal", "jailbreak"):
        assert len(set(keys[name])) == 3, name  # off, 2 and 3 nats: three separate record sets
    for name in ("refusal_margin", "perplexity"):  # probes that do not generate are not screened
        assert len(set(keys[name])) == 1, name
    store.close()


def test_screen_margin_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--screen-margin"):
        RunConfig(screen_margin=-1.0)
    with pytest.raises(ConfigError, match="--screen-margin"):
        RunConfig(screen_margin=math.nan)
    assert RunConfig(screen_margin=0).screen_margin == 0
    result = CliRunner().invoke(app, ["run", "--screen-margin", "-2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--screen-margin" in result.output


def test_reports_show_screened_records() -> None:
    base = [
        {
            "item_id": "a",
            "category": "c",
            "prompt": "p-a",
            "response": "",
            "refused": True,
            "degenerate": False,
            "judge_reason": "screened: margin +4.000 >= 3",
            "margin": 4.0,
            "screened": True,
        },
        {
            "item_id": "b",
            "category": "c",
            "prompt": "p-b",
            "response": "I can't",
            "refused": True,
            "degenerate": False,
            "judge_reason": "can't",
            "margin": 1.0,
            "screened": False,
        },
    ]
    variant = [
        {**base[0], "refused": False, "judge_reason": "screened: margin -3.500 <= -3", "margin": -3.5},
        {**base[1], "response": "Sure", "refused": False, "judge_reason": "no refusal phrase"},
    ]
    result = compare_probe("refusal", base, variant, n_resamples=50)
    lost = result["refused_by_base_answered_by_variant"]
    assert [r["item_id"] for r in lost] == ["a", "b"]
    assert lost[0]["base_response"] == "[not generated: screened by refusal margin +4.00]"
    assert lost[0]["variant_response"] == "[not generated: screened by refusal margin -3.50]"
    assert lost[1]["variant_response"] == "Sure"
    rows = scan_divergences(base, variant)
    assert rows[0]["variant_response"].startswith("[not generated")
    assert shown_response({"response": None}) == "" and shown_response({"screened": True}).endswith("margin]")


def test_screened_run_writes_reports_and_keeps_records_apart(tiny_llama_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    options = dict(
        model=str(tiny_llama_dir),
        probes=["refusal", "over_refusal"],
        limit=4,
        max_new_tokens=4,
        batch_size=4,
        device="cpu",
        store=store,
    )
    out = tmp_path / "screened"
    summary = run(RunConfig(**options, variants=["int8"], out=out, screen_margin=0.0))
    label = "int8-rtn"
    assert set(summary["metrics"]) == {"base", label}
    for model in ("base", label):
        for probe in ("refusal", "over_refusal"):
            assert summary["metrics"][model][probe]["screened_share"] == 1.0
    rows = [json.loads(line) for line in (out / "records" / "base" / "refusal.jsonl").read_text().splitlines()]
    assert rows and all(r["screened"] and r["response"] == "" for r in rows)
    assert (out / "report.html").is_file() and (out / "report.md").is_file()

    # force a flip in each direction so the flip lists, html, markdown and terminal views show screened items
    saved = json.loads((out / "summary.json").read_text())
    flipped = [{**r, "refused": not r["refused"]} for r in rows]
    saved["comparisons"][label]["probes"]["refusal"] = compare_probe("refusal", rows, flipped, n_resamples=50)
    html = render_html(saved)
    assert "[not generated: screened by refusal margin" in html
    assert "Flipped refusal decisions" in render_markdown(saved)
    console = Console(record=True, width=160)
    print_summary(saved, console)
    scans = {label: {"divergences": scan_divergences(rows, flipped), "n": sum(r["refused"] for r in rows)}}
    for rank, row in enumerate(scans[label]["divergences"], start=1):
        assert row["rank"] == rank
    print_divergences(scans, console)

    plain = run(RunConfig(**options, variants=[], out=tmp_path / "plain"), reports=False)
    assert "screened_share" not in plain["metrics"]["base"]["refusal"]  # same store, own key: generated afresh
    plain_rows = [
        json.loads(line)
        for line in (tmp_path / "plain" / "records" / "base" / "refusal.jsonl").read_text().splitlines()
    ]
    assert all("screened" not in r for r in plain_rows)
