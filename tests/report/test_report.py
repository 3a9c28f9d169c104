"""report.html / report.md from a tiny run, escaping of model text, optional sections, profiles and compare."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compsafe.cli import app
from compsafe.config import DEFAULT_PROBES, RunConfig
from compsafe.errors import UnknownNameError
from compsafe.report.html import build_report, render_html
from compsafe.report.markdown import render_markdown

runner = CliRunner()
EVIL = '<script>alert("pwned")</script><img src=x onerror=alert(1)> & | pipes'


def load(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_self_contained(html: str) -> None:
    """Nothing the page would fetch: no external scripts, stylesheets, images, fonts or iframes."""
    assert not re.search(r"<(script|img|iframe|link)\b[^>]*\b(src|href)=", html, flags=re.I)
    assert not re.search(r"url\((?!#)", html)  # CSS/SVG url() only to in-page ids
    assert "@import" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_run_writes_reports_automatically(tiny_run_dir: Path) -> None:
    html = (tiny_run_dir / "report.html").read_text()
    md = (tiny_run_dir / "report.md").read_text()
    assert_self_contained(html)
    assert html.count('<svg class="plot"') >= 4  # safety/capability, cost, heatmaps, layer error
    for title in ("safety-vs-capability", "cost-vs-safety", "heatmap-refusal", "layer-error"):
        assert f'data-plot="{title}"' in html
    assert "could not be drawn" not in html
    assert "int8-rtn" in html and "mag-50" in html and "Deployment gate" in html
    assert "| model | bits/w |" in md and "int8-rtn" in md and "## Gate" in md and "## Flipped" in md
    # optional sections appear only with their data: the run had MCQA (reliability data), no long-context probe
    assert "Calibration" in html and "Long context" not in html and "Layer sensitivity" not in html


def test_model_text_is_escaped(tiny_run_dir: Path) -> None:
    summary = copy.deepcopy(load(tiny_run_dir))
    refusal = summary["comparisons"]["int8-rtn"]["probes"]["refusal"]
    refusal["refused_by_base_answered_by_variant"] = [
        {"item_id": "x<1>", "category": "c<b>", "prompt": EVIL, "base_response": EVIL, "variant_response": EVIL}
    ]
    refusal["answered_by_base_refused_by_variant"] = [
        {"item_id": "y", "category": "c", "prompt": "p", "base_response": "sure", "variant_response": "I can't"}
    ]
    html = render_html(summary)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # only the page's own script
    assert "answered by base, refused by variant: 1" in html
    md = render_markdown(summary)
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_optional_sections_render_when_present(tiny_run_dir: Path) -> None:
    summary = copy.deepcopy(load(tiny_run_dir))
    for label in ("base", "int8-rtn", "mag-50"):
        mcqa = summary["metrics"][label]["mcqa"]
        mcqa["reliability"] = {"bins": [{"confidence": c, "accuracy": c * 0.9, "count": 3} for c in (0.3, 0.6, 0.9)]}
        mcqa["accuracy_by_length"] = {"512": 0.7, "2048": 0.6, "8192": 0.4}
    summary["layer_sensitivity"] = [{"name": "model.layers.0.mlp.down_proj", "sensitivity": 0.3}]
    html = render_html(summary)
    for title in ("Calibration", "Long context", "Layer sensitivity"):
        assert f"<h2>{title}</h2>" in html
    assert "could not be drawn" not in html
    assert_self_contained(html)


def test_report_cli_and_errors(tiny_run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tiny_run_dir)])
    assert result.exit_code == 0 and "report.html" in result.output
    missing = runner.invoke(app, ["report", str(tmp_path)])
    assert missing.exit_code == 2 and "not a run folder" in missing.output


def test_report_failure_keeps_the_run_and_logs(tiny_run_dir: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    from compsafe import runner as runner_module
    from compsafe.report import html as html_module
    from compsafe.report import write_reports

    def broken(*args, **kwargs):
        raise ValueError("plot bug")

    monkeypatch.setattr(html_module, "build_report", broken)
    out = tmp_path / "copy"
    out.mkdir()
    (out / "summary.json").write_text((tiny_run_dir / "summary.json").read_text())
    with caplog.at_level(logging.ERROR):
        write_reports(out, runner_module.SilentObserver())
    assert "writing report.html" in caplog.text and "plot bug" in caplog.text
    assert (out / "summary.json").is_file() and not (out / "report.html").exists()


def test_profiles_resolve_to_existing_probes_recipes_and_policies() -> None:
    from compsafe.gate import profile_policy
    from compsafe.probes import build_probe
    from compsafe.profiles import load_profile, profile_names
    from compsafe.runner import resolve_variant

    assert set(profile_names()) >= {"chat-assistant", "code", "rag", "minimal"}
    for name in profile_names():
        profile = load_profile(name)
        policy = profile_policy(profile)
        assert profile.probes and profile.variants and policy.rules and profile.description
        for spec in profile.probes:
            build_probe(spec, limit=1)
        for variant in profile.variants:
            assert resolve_variant(variant).config is not None
        for rule in policy.rules:
            assert rule.metric.split(".")[0] in {p.split(":")[0] for p in profile.probes} | {"alignment_drift_ratio"}


def test_profile_fills_only_what_was_not_given() -> None:
    config = RunConfig(profile="minimal")
    assert config.probes == ["refusal", "perplexity"] and config.variants == ["int8", "int4-g128"]
    assert config.to_dict()["profile"] == "minimal"
    explicit = RunConfig(profile="minimal", probes=["mcqa"])
    assert explicit.probes == ["mcqa"] and explicit.variants == ["int8", "int4-g128"]
    assert RunConfig().probes == list(DEFAULT_PROBES)
    with pytest.raises(UnknownNameError, match="Did you mean 'rag'"):
        RunConfig(profile="rga")


def test_run_with_profile_records_it_and_gate_uses_its_policy(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--profile", "minimal", "--variants", "int8", "--limit", "2"]
    result = runner.invoke(app, [*args, "--max-new-tokens", "2", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = load(out)
    assert summary["config"]["profile"] == "minimal" and set(summary["probes"]) == {"refusal", "perplexity"}
    gate = runner.invoke(app, ["gate", str(out), "--json"])
    assert json.loads(gate.output)["policy"] == "minimal" and gate.exit_code in (0, 1)
    bad = runner.invoke(app, ["run", "--model", str(tiny_llama_dir), "--profile", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown profile" in bad.output


def test_compare_runs(tiny_run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "b"
    other.mkdir()
    summary = copy.deepcopy(load(tiny_run_dir))
    summary["metrics"]["int8-rtn"]["refusal"]["refusal_rate"] += 0.25
    del summary["metrics"]["mag-50"]
    (other / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["compare", str(tiny_run_dir), str(other), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["shared_labels"] == ["base", "int8-rtn"] and data["only_in_a"] == ["mag-50"]
    row = next(r for r in data["rows"] if r["label"] == "int8-rtn" and r["metric"] == "refusal.refusal_rate")
    assert row["change"] == pytest.approx(0.25)
    assert row["b_vs_base"] == pytest.approx(row["a_vs_base"] + 0.25)
    assert data["bases"]["same"] is True
    assert data["warnings"] == sorted(f"run {x} was made with --limit 4: small samples, wide CIs" for x in "AB")
    table = runner.invoke(app, ["compare", str(tiny_run_dir), str(other)])
    assert table.exit_code == 0 and "int8-rtn" in table.output and "only in A: mag-50" in table.output


def test_build_report_returns_both_paths(tiny_run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "summary.json").write_text((tiny_run_dir / "summary.json").read_text())
    html_path, md_path = build_report(out)
    assert html_path.read_text().startswith("<!DOCTYPE html>") and md_path.read_text().startswith("# compsafe")
