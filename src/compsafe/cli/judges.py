"""`compsafe judges`: how accurate each judge is on labelled items it was not trained on."""

from __future__ import annotations

import typer

from compsafe import api
from compsafe.cli.common import command, console


@command()
def judges(
    llm_model: str = typer.Option(None, "--llm-model", help="Also measure the optional LLM judge on this local model."),
) -> None:
    """Held-out accuracy of every offline judge (refusal: phrase, classifier; toxicity: classifier)."""
    from compsafe.report.views import print_judge_scores

    print_judge_scores(api.evaluate_judges(llm_model), console)
