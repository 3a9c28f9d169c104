"""What one Ray task runs: one model (the base or one variant) on one probe, into a private in-memory store.

A task never opens the run's store and is never told where it or the run folder is: it receives, as data,
the rows it needs (the base's records and artifacts for its probe, and whatever an earlier, killed run already
finished), computes what is missing with the ordinary runner, and returns the rows it wrote. The driver
(``executors.ray_executor``) alone writes the store. This module does not import Ray: it is plain code that
Ray ships to a worker, so it is tested without a cluster too.

What still has to reach a worker is the model: the embedded default ships inside a package (installed on every
node, converted into each node's own cache); a model folder, a ``model:`` variant folder, a ``recovered:``
adapter or a calibration file must exist at the same absolute path on every node (or the model is a hub id).
A node that lacks one fails the task with one line naming the node and the path.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compsafe import paths
from compsafe.config import RunConfig
from compsafe.errors import ModelLoadError
from compsafe.probes import Probe
from compsafe.store import ResultStore, StoreRows

# A task's RunConfig carries no run folder and no store: nothing on a worker reads or writes either.
NO_RUN_FOLDER = Path("no-run-folder-on-a-ray-task")
PATH_PREFIXES = ("model:", "recovered:", "qat:")


@dataclass(frozen=True)
class Job:
    """One Ray task's work: the base (``variant=None``) or one variant, on one probe (items shipped as data)."""

    variant: str | None
    probe: Probe

    @property
    def label(self) -> str:
        return f"{self.variant or 'base'}|{self.probe.name}"


def _absolute(spec: str) -> str:
    """A path the driver sees, made absolute: a worker's working directory is its Ray session folder."""
    for prefix in PATH_PREFIXES:
        if spec.startswith(prefix) and paths.exists(spec.removeprefix(prefix)):
            return prefix + str(Path(spec.removeprefix(prefix)).expanduser().resolve())
    return str(Path(spec).expanduser().resolve()) if paths.exists(spec) else spec


def task_config(config: RunConfig) -> RunConfig:
    """``config`` as a task gets it: no run folder or store path, local paths absolute, run in-process."""
    return dataclasses.replace(
        config,
        model=_absolute(config.model) if config.model else None,
        variants=[_absolute(v) for v in config.variants or []],
        calibration=_absolute(config.calibration) if config.calibration != "compsafe" else config.calibration,
        out=NO_RUN_FOLDER,
        store=None,
        executor="local",
        profile=None,
    )


def node_inputs(config: RunConfig) -> list[str]:
    """The files and folders of ``config`` (from ``task_config``) that every node must hold at the same path."""
    found = set()
    for spec in [config.model or "", config.calibration, *(config.variants or [])]:
        for prefix in PATH_PREFIXES:
            spec = spec.removeprefix(prefix)
        if spec and Path(spec).is_absolute():
            found.add(spec)
    return sorted(found)


def require_on_node(inputs: list[str]) -> None:
    """One line naming this node and the missing path, instead of a hub look-up or a loader traceback."""
    for path in inputs:
        if not paths.exists(path):
            raise ModelLoadError(
                f"{path} is not on Ray node {socket.gethostname()}: without a shared filesystem every node needs "
                "the model (and variant folders, adapters, calibration file) at the same path, or use a hub id"
            )


def run_job(
    config: RunConfig, job: Job, threads: int | None, seed: StoreRows, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Compute ``job``'s missing records into an in-memory store seeded with ``seed`` (and the base task's rows,
    ``base``); return the rows written, for the driver to commit.

    ``threads``: the driver's CPU thread count. Ray starts workers with one thread; the thread count changes
    CPU numerics and is part of every store key (models.numerics), so a task computes with the driver's count
    and its records are the ones the driver (and a local rerun) would compute and find.
    """
    import torch

    from compsafe.runner import RunPlan, SilentObserver, Study, resolve_variant

    require_on_node(node_inputs(config))
    if threads:
        torch.set_num_threads(threads)
    store = ResultStore.memory()
    store.merge(seed)
    if base is not None:
        store.merge(base["rows"])
    marks = store.marks()
    started = time.time()
    plan = RunPlan(config, [job.probe], [resolve_variant(job.variant)] if job.variant else [])
    study = Study.start(plan, SilentObserver(), started, store=store)
    study.run_variants()
    rows = store.rows_after(marks)
    store.close()
    return {
        "job": job.label,
        "rows": rows,
        "seconds": round(time.time() - started, 2),
        "pid": os.getpid(),
        "node": node_id(),
    }


def node_id() -> str:
    """The Ray node this runs on (its id's first 12 hex digits), else the host name (a call outside Ray).

    Only asks Ray when this process is connected already: ``get_runtime_context`` would start a local Ray."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()[:12]
    return socket.gethostname()
