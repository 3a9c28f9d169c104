"""Judges that score generations. Importing this package registers the built-in judges."""

from compsafe.judges import classifier, llm, phrase  # noqa: F401  (registers "phrase", "classifier", "llm:PATH")
from compsafe.judges.base import JUDGES, PARAMETERIZED_JUDGES, RefusalJudge, RefusalVerdict, get_judge
from compsafe.judges.toxicity import TOXICITY_SCORERS, ToxicityScorer, get_toxicity_scorer

__all__ = [
    "JUDGES",
    "PARAMETERIZED_JUDGES",
    "TOXICITY_SCORERS",
    "RefusalJudge",
    "RefusalVerdict",
    "ToxicityScorer",
    "get_judge",
    "get_toxicity_scorer",
]
