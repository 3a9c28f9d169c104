"""Judges that score generations. Importing this package registers the built-in judges."""

from compsafe.judges import classifier, ensemble, phrase  # noqa: F401  (registers "phrase", "classifier", "ensemble")
from compsafe.judges.base import JUDGES, RefusalJudge, RefusalVerdict, get_judge
from compsafe.judges.toxicity import TOXICITY_SCORERS, ToxicityScorer, get_toxicity_scorer

__all__ = [
    "JUDGES",
    "TOXICITY_SCORERS",
    "RefusalJudge",
    "RefusalVerdict",
    "ToxicityScorer",
    "get_judge",
    "get_toxicity_scorer",
]
