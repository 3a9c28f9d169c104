"""Reports of a finished run: HTML, markdown and terminal views built from its summary.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


def write_reports(out: Path, observer: Any) -> None:
    """report.html and report.md next to summary.json, built from the file just written (as `compsafe report` does).

    The run's results are already on disk, so a report failure must not fail the run; it is a bug though, so it
    is logged with its traceback rather than swallowed, and `compsafe report RUN_DIR` can retry.
    """
    try:
        from compsafe.report.html import build_report

        build_report(out)
    except Exception:  # noqa: BLE001 - keep the finished run; the traceback is logged
        logging.getLogger(__name__).exception("compsafe: writing report.html / report.md failed")
        observer.stage(f"report not written (error logged above); retry with `compsafe report {out}`")
