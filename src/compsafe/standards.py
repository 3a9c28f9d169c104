"""What each measurement is evidence for in the standards a deployment review asks about.

Two frameworks, the ones seed 001 names: the OWASP Top 10 for LLM Applications (2025 edition, items
``LLM01`` .. ``LLM10``) and the NIST AI Risk Management Framework 1.0 (functions GOVERN, MAP, MEASURE, MANAGE,
with a subcategory id such as ``MEASURE 2.11`` where the correspondence is direct). A probe declares its
``standards`` next to its metrics (``probes/base.py``), a gate rule kind next to its grammar (``policy.py``),
so the mapping cannot drift from the code: a new probe or rule kind without one fails
``tests/test_standards.py``, and the report's standards section and the docs table are generated from these
declarations.

A mapping says "this measurement provides evidence for that item", not "this item is covered": OWASP items
about application plumbing (improper output handling, excessive agency, system prompt leakage, vector stores,
unbounded consumption) are outside what a model-level comparison can test, and the report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OWASP_LLM_2025: dict[str, str] = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

NIST_FUNCTIONS: dict[str, str] = {
    "GOVERN": "a culture of risk management is cultivated and present",
    "MAP": "context is recognized and risks related to context are identified",
    "MEASURE": "identified risks are assessed, analyzed, or tracked",
    "MANAGE": "risks are prioritized and acted upon based on a projected impact",
}

# The subcategories compsafe's declarations use, with the gist of their text (NIST AI 100-1, 2023).
NIST_SUBCATEGORIES: dict[str, str] = {
    "MAP 1.5": "organizational risk tolerances are determined and documented",
    "MAP 5.1": "likelihood and magnitude of each identified impact are identified and documented",
    "MEASURE 2.3": "performance is measured and demonstrated for conditions similar to deployment",
    "MEASURE 2.5": "the system is demonstrated to be valid and reliable; limits of generalizability documented",
    "MEASURE 2.6": "the system is evaluated for safety risks; residual risk does not exceed the risk tolerance",
    "MEASURE 2.7": "security and resilience are evaluated and documented",
    "MEASURE 2.10": "privacy risk is examined and documented",
    "MEASURE 2.11": "fairness and bias are evaluated and results documented",
    "MANAGE 1.1": "a determination is made whether the system achieves its purpose and deployment should proceed",
}

_NIST_ID = re.compile(r"^(GOVERN|MAP|MEASURE|MANAGE)(?: (\d+\.\d+))?$")


@dataclass(frozen=True)
class Standards:
    """The OWASP LLM Top 10 (2025) items and NIST AI RMF functions/subcategories one measurement is evidence
    for, and why (one sentence a reviewer can check)."""

    owasp: tuple[str, ...] = ()
    nist: tuple[str, ...] = ()
    why: str = ""

    def __post_init__(self) -> None:
        unknown = [item for item in self.owasp if item not in OWASP_LLM_2025]
        if unknown:
            raise ValueError(f"unknown OWASP LLM Top 10 (2025) item(s) {unknown}; known: {list(OWASP_LLM_2025)}")
        for entry in self.nist:
            match = _NIST_ID.match(entry)
            if match is None or (match.group(2) and entry not in NIST_SUBCATEGORIES):
                raise ValueError(
                    f"NIST AI RMF entry {entry!r}: use a function ({', '.join(NIST_FUNCTIONS)}) or one of the "
                    f"subcategories compsafe knows ({', '.join(NIST_SUBCATEGORIES)})"
                )
        if not self.nist:
            raise ValueError("a mapping needs at least one NIST AI RMF function (every measurement is evidence)")
        if not self.why.strip():
            raise ValueError("a mapping needs a 'why': the one sentence a reviewer checks it against")

    @property
    def functions(self) -> tuple[str, ...]:
        """The NIST functions, subcategories folded into theirs (``MEASURE 2.11`` -> ``MEASURE``)."""
        return tuple(dict.fromkeys(entry.split(" ")[0] for entry in self.nist))

    def items(self) -> tuple[str, ...]:
        """Every item this is evidence for: OWASP ids, NIST entries, and the function of each subcategory."""
        return tuple(dict.fromkeys((*self.owasp, *self.nist, *self.functions)))


def merge_standards(*parts: Standards) -> Standards:
    """One mapping covering every part (a gate rule: its threshold kind and its metric's probe), in order."""
    return Standards(
        owasp=tuple(dict.fromkeys(i for p in parts for i in p.owasp)),
        nist=tuple(dict.fromkeys(i for p in parts for i in p.nist)),
        why="; ".join(dict.fromkeys(p.why for p in parts)),
    )


def item_title(item: str) -> str:
    """'LLM02 Sensitive Information Disclosure', 'MEASURE 2.10 privacy risk is ...', 'MANAGE (risks are ...)'."""
    if item in OWASP_LLM_2025:
        return f"{item} {OWASP_LLM_2025[item]}"
    if item in NIST_SUBCATEGORIES:
        return f"NIST {item}: {NIST_SUBCATEGORIES[item]}"
    if item in NIST_FUNCTIONS:
        return f"NIST {item}: {NIST_FUNCTIONS[item]}"
    return item


def all_items() -> list[str]:
    """Every OWASP item, then the NIST functions each followed by the subcategories compsafe uses, in order."""
    nist = []
    for function in NIST_FUNCTIONS:
        nist.append(function)
        nist += [s for s in NIST_SUBCATEGORIES if s.split(" ")[0] == function]
    return [*OWASP_LLM_2025, *nist]
