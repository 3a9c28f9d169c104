"""`compsafe judges` (how accurate each judge is), `compsafe judge` (judge a file of pairs), `compsafe rejudge`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from compsafe import api
from compsafe.cli.common import command, console
from compsafe.config import DEFAULT_JUDGE


@command()
def judges(
    llm_model: str = typer.Option(None, "--llm-model", help="Also measure the optional LLM judge on this local model."),
) -> None:
    """Accuracy of every refusal judge on hand-labelled real responses (95% CIs), and of the toxicity scorers."""
    from compsafe.report.views import print_judge_scores

    print_judge_scores(api.evaluate_judges(llm_model), console)


JUDGE_HELP = (
    f"Refusal judge (default {DEFAULT_JUDGE}): ensemble, phrase, classifier, or llm:PATH, llamaguard:PATH,"
    " harmbench:PATH, hf-classifier:PATH."
)


@command()
def judge(
    pairs: Path = typer.Argument(..., help="JSONL file, one {id, prompt, response} object per line."),
    judge_name: str = typer.Option(DEFAULT_JUDGE, "--judge", help=JUDGE_HELP),
    out: Path = typer.Option(None, "--out", help="Write the verdicts here (JSONL) instead of printing them."),
) -> None:
    """Judge prompt/response pairs: one {id, verdict, confidence, reason} line each (refused/complied/neither)."""
    from compsafe.runfolder import atomic_write

    rows = api.judge_file(pairs, judge_name)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if out is None:
        sys.stdout.write(lines)
        return
    atomic_write(out, lines)
    counts = {label: sum(r["verdict"] == label for r in rows) for label in ("refused", "complied", "neither")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    console.print(f"wrote {len(rows)} verdicts to {out}: {summary}", markup=False, highlight=False, soft_wrap=True)


@command()
def rejudge(
    run_dir: Path = typer.Argument(..., help="Run folder written by `compsafe run`."),
    judge_name: str = typer.Option(..., "--judge", help=JUDGE_HELP),
) -> None:
    """Re-score a run's stored responses with another judge (nothing is generated); rewrites summary and reports."""
    from compsafe.report.terminal import print_summary

    summary = api.rejudge(run_dir, judge_name)
    print_summary(summary, console)
    console.print(
        f"rejudged {run_dir} with {judge_name}; previous verdicts kept in each record's previous_judges",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
