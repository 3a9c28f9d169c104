"""The public Python API of ``compsafe attack``: load the pair, search every request per objective, write the result.

Kept apart from ``compsafe.api`` (which re-exports nothing from here: the CLI imports it directly) because it
drives a search loop, not a run; heavy modules are imported inside so importing it stays cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compsafe.errors import ConfigError

RESULT_FILE = "attack.json"
DEFAULT_OUT = Path("runs/attack")


def attack(
    variant: str,
    *,
    model: str | None = None,
    prompts: str | None = None,
    limit: int | None = 10,
    objectives: tuple[str, ...] = ("differential", "base-only"),
    search: Any = None,
    judge: str | None = None,
    max_new_tokens: int = 48,
    device: str = "auto",
    dtype: str = "float32",
    out: str | Path | None = None,
    store: str | Path | None = None,
    observer: Any = None,
) -> tuple[Path, dict[str, Any]]:
    """Attack ``variant`` on the harmful set (or ``prompts``, a file); returns (result path, result).

    ``search``: a ``SearchConfig`` (the budget; its objective is replaced by each of ``objectives``). Records
    go to ``store`` (default ``OUT/attack.sqlite``) as each search finishes, so a rerun resumes.
    """
    from compsafe.attack.differential import AttackSettings, run_objective, summarize, with_objective
    from compsafe.attack.gcg import OBJECTIVES, SearchConfig
    from compsafe.attack.models import load_pair
    from compsafe.config import DEFAULT_JUDGE
    from compsafe.judges import get_judge
    from compsafe.models.loading import check_model_spec
    from compsafe.probes import build_probe
    from compsafe.runfolder import atomic_write
    from compsafe.runner import SilentObserver
    from compsafe.store import ResultStore
    from compsafe.variant_spec import resolve_variant

    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives:
        raise ConfigError(f"--objectives {','.join(objectives)}: use one or both of {', '.join(OBJECTIVES)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: use 1 or more")
    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {max_new_tokens}: use 1 or more")
    search = search or SearchConfig()
    observer = observer or SilentObserver()
    judge_impl = get_judge(judge or DEFAULT_JUDGE)  # an unknown judge fails before any model loads
    items = build_probe(f"refusal:{prompts}" if prompts else "refusal", limit).items
    if not items:
        raise ConfigError("no harmful requests to attack: the prompts file is empty")
    check_model_spec(model)  # an unknown model or variant fails before anything loads
    resolve_variant(variant)
    out = Path(out) if out is not None else DEFAULT_OUT
    observer.stage("loading the base and building the variant")
    pair = load_pair(model, variant, device, dtype)
    result: dict[str, Any] = {"model": model, "variant": pair.label, "identity": pair.identity,
                              "search": search.to_dict(), "judge": judge_impl.name, "objectives": {}}  # fmt: skip
    results = ResultStore(Path(store) if store is not None else out / "attack.sqlite")
    try:
        for objective in objectives:
            settings = AttackSettings(with_objective(search, objective), judge_impl, max_new_tokens)
            tick = observer.task(f"{objective} search steps", len(items) * search.steps)
            records = run_objective(pair, items, settings, results, tick, observer.stage)
            observer.done(f"{objective} search steps")
            result["objectives"][objective] = {"summary": summarize(records), "records": records}
    finally:
        results.close()
    path = out / RESULT_FILE
    atomic_write(path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path, result
