"""The `compsafe` command: thin — parse options, call one `compsafe.api` function, print with rich.

One module per command group; each registers its commands on the shared ``app`` with ``common.command``,
which turns any ``CompsafeError`` into one line on stderr and exit code 2. ``COMMAND_GROUPS`` lists the
modules in the order their commands appear in ``compsafe --help``: a new group is one module added there.
"""

from __future__ import annotations

import importlib
import sys

from compsafe.cli.common import app, print_error
from compsafe.errors import CompsafeError

COMMAND_GROUPS = (
    "study",  # run, variants, probes
    "export",  # compress
    "training",  # align, plant-canaries, recover, plant-backdoor, distill
    "diagnose",  # scan, sensitivity, mitigate
    "attack",  # attack
    "judges",  # judges, judge, rejudge
    "review",  # report, gate, manifest, verify, compare, profiles
)
for _group in COMMAND_GROUPS:
    importlib.import_module(f"compsafe.cli.{_group}")

__all__ = ["COMMAND_GROUPS", "app", "main"]


def main() -> None:
    """Console-script and ``python -m compsafe`` entry point."""
    from compsafe.memory import apply_memory_setting

    apply_memory_setting()  # COMPSAFE_LOW_MEMORY=1: freed tensors go back to the OS (compsafe.memory)
    try:
        app()
    except CompsafeError as exc:  # pragma: no cover - raised outside a command (e.g. while parsing)
        print_error(exc)
        sys.exit(2)
