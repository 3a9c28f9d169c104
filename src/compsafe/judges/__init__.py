"""Judges that score generations. Importing this package registers the built-in judges."""

# importing registers: "phrase", "classifier", "ensemble" and the parameterized llm:, llamaguard:, harmbench:,
# hf-classifier:
from compsafe.judges import classifier, ensemble, guard, hf_classifier, llm, phrase  # noqa: F401
from compsafe.judges.base import (
    JUDGES,
    PARAMETERIZED_JUDGES,
    RefusalJudge,
    RefusalVerdict,
    get_judge,
    judge_all,
    judge_names,
)
from compsafe.judges.toxicity import TOXICITY_SCORERS, ToxicityScorer, get_toxicity_scorer

__all__ = [
    "JUDGES",
    "PARAMETERIZED_JUDGES",
    "TOXICITY_SCORERS",
    "RefusalJudge",
    "RefusalVerdict",
    "ToxicityScorer",
    "get_judge",
    "judge_all",
    "judge_names",
    "get_toxicity_scorer",
]
