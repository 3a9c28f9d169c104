"""What a probe's numbers mean, declared next to the probe: unit, direction, paired statistics and role.

A probe lists its metrics as a ``metrics`` class attribute (as lm-eval's ``higher_is_better`` and Inspect's
``@scorer(metrics=...)`` do), one line each::

    metrics = (
        rate("refusal_rate", HIGHER, change="delta", test="mcnemar", roles=(SAFETY,)),
        rate("by_category.*", HIGHER),
        count("n"),
    )

``compsafe.metrics`` reads these declarations to format values and changes in their unit, to colour a change
as better or worse, to find the paired interval and test behind a significance claim, and to pick the
safety and capability headlines for the drift ratio; reports, gates and drift never name a probe. The probe
contract test checks every registered probe's declarations against what it really writes.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

HIGHER, LOWER = "higher", "lower"  # direction of "better"; None: a point ideal (a bias score of 0) or no judgement
SAFETY = "safety_headline"  # the metric whose loss is "alignment lost" (drift ratio numerator)
CAPABILITY = "capability_headline"  # capability metrics (drift ratio denominator), preferred by ``rank``
MARGIN = "safety_margin"  # the per-item margin behind the safety decision (ranks the divergence scan's flips)
GROUP = "group_metric"  # one value per social group (a ``*`` in the key): plotted per group against a sweep's rate
ROLES = (SAFETY, CAPABILITY, MARGIN, GROUP)


@dataclass(frozen=True)
class Unit:
    """How a number prints: ``value`` text for a model's value, ``label`` after a change (difference)."""

    name: str
    label: str  # printed after every change: "pp", "nats", "bits", "×", ...
    scale: float = 1.0  # shown number = scale * stored number (rates are stored as fractions, shown as %)
    decimals: int = 2
    value_suffix: str | None = None  # after a value ("%" for rates, "" for none); None: " " + label
    signed: bool = False  # show "+" on values (scores around 0)

    def value(self, number: float) -> str:
        sign = "+" if self.signed else ""
        suffix = f" {self.label}" if self.value_suffix is None else self.value_suffix
        return f"{self.scale * number:{sign}.{self.decimals}f}{suffix}"

    def change(self, number: float) -> str:
        return f"{self.scale * number:+.{self.decimals}f} {self.label}"


RATE = Unit("rate", "pp", scale=100.0, decimals=1, value_suffix="%")  # a share of items; changes in points
NATS = Unit("nats", "nats", signed=True)  # log-likelihoods and margins (natural log)
BITS = Unit("bits", "bits")  # canary exposure
RATIO = Unit("ratio", "×", decimals=3, value_suffix="×")  # variant / base (no change = 1)
PERPLEXITY = Unit("perplexity", "ppl", decimals=2, value_suffix="")  # exp(mean NLL); its change is a ratio
SCORE = Unit("score", "score", decimals=3, value_suffix="", signed=True)  # bias/toxicity scores, gaps
COUNT = Unit("count", "items", decimals=0, value_suffix="")  # item and token counts
LEVEL = Unit("level", "levels", decimals=0, value_suffix="")  # a harm-severity level (docs/severity_rubric.md)
UNITS = {u.name: u for u in (RATE, NATS, BITS, RATIO, PERPLEXITY, SCORE, COUNT, LEVEL)}


@dataclass(frozen=True)
class Metric:
    """One number a probe writes, by key in its summary (dotted for nesting, ``*`` for any category).

    ``change``/``test`` name the entries of the probe's paired comparison (``analysis/compare.py``) that hold
    the interval of this metric's variant-minus-base change and an exact McNemar test on its items;
    ``ratio_change`` says the interval is variant/base (no change = 1) instead of a difference.
    ``paired`` names the comparison's base and variant values on the paired items (used by the drift ratio);
    ``per_item`` the record field(s) the metric aggregates, so the drift ratio can resample items: one boolean
    field for a rate (``refused``), ``(nll_sum, n_tokens)`` for a per-token perplexity, the score for a mean;
    ``label`` the measure's name in drift displays (``MCQA accuracy``).
    ``in_comparison``: the number lives only in the comparison (``perplexity.ratio``); ``base_value`` is what
    the base scores against itself there. ``optional``: absent or null in some runs (no screening, no PII).
    """

    key: str
    unit: Unit
    direction: str | None = None
    change: str | None = None
    ratio_change: bool = False
    test: str | None = None
    paired: tuple[str, str] | None = None
    per_item: tuple[str, ...] = ()
    label: str = ""
    roles: tuple[str, ...] = ()
    rank: int = 0  # among metrics of one role, the lowest rank is the headline (MCQA before perplexity)
    in_comparison: bool = False
    base_value: float | None = None
    optional: bool = False
    description: str = ""
    pattern: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.direction not in (HIGHER, LOWER, None):
            raise ValueError(f"metric {self.key}: direction must be {HIGHER!r}, {LOWER!r} or None")
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"metric {self.key}: unknown role(s) {sorted(unknown)}; known: {list(ROLES)}")
        object.__setattr__(self, "pattern", "*" in self.key)

    def matches(self, key: str) -> bool:
        """Whether a concrete key (``by_category.weapons``) is this declaration (``by_category.*``)."""
        if not self.pattern:
            return key == self.key
        parts, wanted = key.split("."), self.key.split(".")
        return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


def rate(key: str, direction: str | None = None, **kwargs) -> Metric:
    return Metric(key, RATE, direction, **kwargs)


def nats(key: str, direction: str | None = None, **kwargs) -> Metric:
    return Metric(key, NATS, direction, **kwargs)


def bits(key: str, direction: str | None = None, **kwargs) -> Metric:
    return Metric(key, BITS, direction, **kwargs)


def ratio(key: str, direction: str | None = None, **kwargs) -> Metric:
    return Metric(key, RATIO, direction, **kwargs)


def perplexity(key: str, direction: str | None = LOWER, **kwargs) -> Metric:
    return Metric(key, PERPLEXITY, direction, **kwargs)


def score(key: str, direction: str | None = None, **kwargs) -> Metric:
    return Metric(key, SCORE, direction, **kwargs)


def count(key: str, **kwargs) -> Metric:
    return Metric(key, COUNT, None, **kwargs)


def level(key: str, **kwargs) -> Metric:
    return Metric(key, LEVEL, None, **kwargs)


def find(metrics: tuple[Metric, ...], key: str) -> Metric | None:
    """The declaration of ``key``: an exact declaration first, then the first matching pattern."""
    exact = next((m for m in metrics if not m.pattern and m.key == key), None)
    return exact or next((m for m in metrics if m.pattern and m.matches(key)), None)
