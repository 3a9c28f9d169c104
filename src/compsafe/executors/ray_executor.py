"""Fan a run out over a Ray cluster: every (variant, probe) pair is one Ray task.

The design keeps one code path for the science: each task is a small ``compsafe run`` restricted to one
variant and one probe, writing its item records into the run's shared results store. Stage 1 runs the
base model's probes (variants need the base's records, e.g. the perplexity probe's top-k artifacts);
stage 2 runs every (variant, probe) pair. The driver then runs the ordinary local runner, which finds
every record in the store, rebuilds nothing and only writes the summary and reports. A task that fails or
a cluster that dies loses nothing finished: rerunning resumes from the store.

The store is SQLite, so all tasks must see the same file: on one machine that is automatic; on a
multi-node cluster put ``--store`` (and ``--out``) on a shared filesystem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from typing import Any

from compsafe.config import RunConfig
from compsafe.errors import ConfigError


def run_job(config: RunConfig, variant: str | None, probe: str, threads: int | None = None) -> dict[str, Any]:
    """One task: the base (``variant=None``) or one variant, on one probe; records go to the shared store.

    ``threads``: the driver's CPU thread count. Ray starts workers with one thread; the thread count changes
    CPU numerics and is part of every store key (models.numerics), so a task computes with the driver's count
    and its records are the ones the driver (and a local rerun) would compute and find.
    """
    import torch

    from compsafe.runner import run

    if threads:
        torch.set_num_threads(threads)
    label = f"{variant or 'base'}|{probe}"
    job_dir = config.out / ".jobs" / hashlib.sha256(label.encode()).hexdigest()[:12]
    sub = dataclasses.replace(
        config,
        variants=[variant] if variant else [],
        probes=[probe],
        out=job_dir,
        store=config.store_path,
        executor="local",
        profile=None,
    )
    summary = run(sub)
    return {"job": label, "seconds": summary["timing_seconds"]["total"], "pid": os.getpid()}


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with one line, when a ``host:port`` cluster address does not answer.

    Ray itself retries a dead GCS address for minutes before giving up.
    """
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({reason}): is it running?") from exc


def precompute_with_ray(config: RunConfig, observer: Any) -> list[dict[str, Any]]:
    """Run every job of ``config`` as Ray tasks (base jobs first); returns the jobs' reports."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--executor ray needs Ray: pip install 'compsafe[ray]' (or pip install ray)") from exc
    from compsafe.runner import plan_run

    plan_run(config)  # every user error surfaces on the driver, before a cluster is touched
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False}
        if config.ray_address:
            check_reachable(config.ray_address)
            kwargs["address"] = config.ray_address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {config.ray_address!r}: {exc}".splitlines()[0]) from exc
    config.out.mkdir(parents=True, exist_ok=True)
    import torch

    remote_job = ray.remote(num_gpus=config.gpus_per_task, max_retries=1)(run_job)
    threads = torch.get_num_threads()
    reports: list[dict[str, Any]] = []
    try:
        stages = [
            [(None, probe) for probe in config.probes],
            [(variant, probe) for variant in config.variants for probe in config.probes],
        ]
        for name, jobs in zip(("base", "variants"), stages, strict=True):
            if not jobs:
                continue
            observer.stage(f"ray: {len(jobs)} {name} job(s) on {int(ray.cluster_resources().get('CPU', 0))} CPU(s)")
            reports.extend(ray.get([remote_job.remote(config, variant, probe, threads) for variant, probe in jobs]))
    finally:
        if started_here:
            ray.shutdown()
    return reports
