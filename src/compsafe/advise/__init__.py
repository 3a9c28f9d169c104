"""``compsafe advise``: a finished run turned into a layered deployment plan (``plan.py``), written as
``advice.json`` (``schema.py``) for automation and shown in the report and the terminal.

Why a command of its own: the gate answers "may this variant ship?" one variant at a time; a deployment
decision needs the whole picture at once -- which variant for which kind of request, what stays on the
uncompressed base, and what to monitor while rolling out (the survey's checklist, the drift benchmark's
layered deployment).
"""

from __future__ import annotations

from pathlib import Path

from compsafe.advise.plan import build_advice
from compsafe.advise.schema import ADVICE_SCHEMA_VERSION, Advice
from compsafe.policy import Policy
from compsafe.summary import RunSummary

ADVICE_FILE = "advice.json"


def choose_policy(
    summary: RunSummary, profile: str | None = None, policy: Path | None = None
) -> tuple[Policy, str]:
    """(policy, where it came from): a policy file, a profile's policy, else the run's own (profile or default)."""
    from compsafe.errors import ConfigError
    from compsafe.policy import load_policy, policy_for_run, profile_policy
    from compsafe.profiles import load_profile

    if profile is not None and policy is not None:
        raise ConfigError("give --profile or --policy, not both: both name the policy the plan follows")
    if policy is not None:
        return load_policy(Path(policy)), str(policy)
    if profile is not None:
        return profile_policy(load_profile(profile)), f"profile {profile}"
    own = summary.config.profile
    return policy_for_run(summary), (f"the run's profile {own}" if own else "shipped default")


def advise_run(
    run_dir: Path,
    *,
    profile: str | None = None,
    policy: Path | None = None,
    allow_insufficient: bool | None = None,
    max_lost: int = 0,
) -> tuple[Advice, Path]:
    """Build the plan of the run in ``run_dir`` and write it to ``run_dir/advice.json``; -> (plan, path)."""
    from compsafe.errors import ConfigError
    from compsafe.runfolder import atomic_write
    from compsafe.summary import load_summary

    if max_lost < 0:
        raise ConfigError(f"--max-lost must be 0 or more, got {max_lost}")
    summary = load_summary(Path(run_dir))
    chosen, source = choose_policy(summary, profile, policy)
    advice = build_advice(summary, chosen, policy_source=source, allow_insufficient=allow_insufficient,
                          max_lost=max_lost, run_dir=str(run_dir))  # fmt: skip
    path = Path(run_dir) / ADVICE_FILE
    atomic_write(path, advice.to_json())
    return advice, path


__all__ = ["ADVICE_FILE", "ADVICE_SCHEMA_VERSION", "Advice", "advise_run", "build_advice", "choose_policy"]
