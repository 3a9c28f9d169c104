"""Fan a run out over a Ray cluster: every (model, probe) pair is one Ray task; the driver alone owns the store.

Tasks (``executors.ray_task``) compute into a private in-memory store and return the rows they wrote through
Ray's object store; the driver commits each task's rows to the run's SQLite store the moment the task finishes
(``ray.wait``), so no node but the driver needs the store, there is no shared filesystem to put it on, and
SQLite never sees two writers. What a task needs from the store reaches it as data: the rows an earlier run
already finished for its probe (so a rerun after a killed driver resumes), and, for a variant's task, the base
task's own result (its records and artifacts, e.g. the perplexity probe's top-k log-probs) passed as an
object reference, so a variant's task starts as soon as its probe's base task is done.

A worker that dies mid-task (a killed process, a lost node) has its task retried by Ray (``MAX_RETRIES``); a
task that fails for a user reason (a model folder missing on a node) fails the run with its one-line message.
The driver then runs the ordinary local runner, which finds every record in the store and only summarises.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from compsafe.config import RunConfig
from compsafe.errors import ClusterError, CompsafeError, ConfigError
from compsafe.executors.ray_task import Job, node_inputs, run_job, task_config
from compsafe.runner import RunPlan, VariantSpec
from compsafe.store import ResultStore, StoreRows

MAX_RETRIES = 3  # a task whose worker died is rerun this many times before the run fails
AUTH_MODE = "RAY_AUTH_MODE"  # Ray's switch for token authentication, read from this process's environment


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


def probe_query(plan: RunPlan, probe: Any) -> dict[str, Any]:
    """The query half of ``probe``'s store keys, as it reads back from the store (JSON round trip)."""
    from compsafe.judges import get_judge
    from compsafe.models import GenerationConfig
    from compsafe.probes import ProbeContext

    config = plan.config
    generation = GenerationConfig(max_new_tokens=config.max_new_tokens, seed=config.seed)
    context = ProbeContext.for_keys(get_judge(config.judge), generation, config.screen_margin)
    return json.loads(json.dumps(probe.query_config(context), sort_keys=True))


def wanted(model: dict[str, Any], variant: VariantSpec | None) -> bool:
    """Whether a stored model key can serve a task for ``variant`` (None: the base): a base's records always
    (a variant's task compares against them), a recipe variant's own, or a model folder's."""
    if set(model) == {"base"}:
        return True
    if variant is None:
        return False
    if variant.config is not None:
        return model.get("recipe") == variant.config.recipe
    return "weights" in model


def seed_rows(store: ResultStore, descriptions: dict[str, Any], query: Any, variant: VariantSpec | None) -> StoreRows:
    """What the store already holds that a task for (``variant``, the probe of ``query``) would look up."""
    keys = [k for k, d in descriptions.items() if d.get("query") == query and wanted(d.get("model", {}), variant)]
    return store.rows_for(keys)


def connect(ray: Any, config: RunConfig) -> bool:
    """Join ``--address`` or start a local Ray; True when this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False}
    if config.ray_address:
        check_reachable(config.ray_address)
        kwargs["address"] = config.ray_address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError) as exc:
        if not config.ray_address:
            raise ClusterError(f"a local Ray did not start: {exc}".splitlines()[0]) from exc
        raise ConfigError(f"cannot reach the Ray cluster at {config.ray_address!r}: {exc}".splitlines()[0]) from exc
    except Exception as exc:  # Ray raises a bare Exception when a node misses its 30 s to register (a loaded host)
        raise ClusterError(
            f"Ray did not start ({str(exc).splitlines()[0]}): rerun, or start it with `ray start --head` and pass "
            "--address"
        ) from exc
    return True


def restore_auth_mode(previous: str | None) -> None:
    """Put this process's Ray authentication mode back to ``previous`` (the ``RAY_AUTH_MODE`` before ``ray.init``).

    A ``ray.init()`` that starts a local Ray (or joins ``auto`` with a saved token) sets ``RAY_AUTH_MODE=token`` in
    ``os.environ`` and in Ray's cached config, and ``ray.shutdown()`` leaves it so. A later run in the same process
    that joins a cluster without token authentication then rejects its workers' calls back to the driver (the
    owner of every object the driver put), and every task fails with ``OwnerDiedError``.
    """
    if os.environ.get(AUTH_MODE) == previous:
        return
    if previous is None:
        os.environ.pop(AUTH_MODE, None)
    else:
        os.environ[AUTH_MODE] = previous
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray from before token authentication: the environment was all there was
        return
    Config.initialize("")  # re-reads the environment; the config before the token cache, as Ray's own tests do
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def session(ray: Any, config: RunConfig) -> Iterator[None]:
    """Ray joined or started for one run; left as it was found, this process's authentication mode included."""
    previous = os.environ.get(AUTH_MODE)
    started_here = False
    try:
        started_here = connect(ray, config)
        yield
    finally:
        if started_here:
            ray.shutdown()
        if not ray.is_initialized():  # a Ray the caller had joined before keeps its mode
            restore_auth_mode(previous)


def result(ray: Any, ref: Any, label: str) -> dict[str, Any]:
    """A finished task's report; its user error (one line) or a lost-worker failure past the retries as a
    ``CompsafeError``, anything else (a bug) as it is."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, CompsafeError):
            raise exc.cause from None
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError) as exc:
        raise ClusterError(
            f"the Ray task {label} was lost {MAX_RETRIES + 1} times ({type(exc).__name__}): every finished task is "
            "in the store; rerun to resume"
        ) from None


def check_feasible(available: dict[str, float], config: RunConfig) -> None:
    """One line now, instead of tasks that wait forever for a resource no node of the cluster offers."""
    wanted = {**(config.ray_resources or {}), "GPU": config.gpus_per_task, "CPU": 1.0}
    for name, amount in wanted.items():
        if amount and available.get(name, 0.0) < amount:
            flag = "--gpus-per-task" if name == "GPU" else "--ray-resources"
            raise ClusterError(
                f"no node of the Ray cluster offers {amount:g} {name} (it has {available.get(name, 0.0):g}): start "
                f"nodes with `ray start --resources '{{\"{name}\": 1}}'` (or --num-gpus), or change {flag}"
            )


def submit(ray: Any, plan: RunPlan, store: ResultStore) -> dict[Any, str]:
    """Every task, base tasks first; a variant's task takes its probe's base task's result as an argument."""
    import torch

    config = plan.config
    remote = ray.remote(run_job).options(
        num_cpus=1,
        num_gpus=config.gpus_per_task,
        resources=config.ray_resources or None,
        max_retries=MAX_RETRIES,
        retry_exceptions=False,  # a user error is not retried; a dead worker is
    )
    portable = task_config(config)
    shared = ray.put(portable)
    threads = torch.get_num_threads()
    descriptions = store.key_descriptions()
    pending: dict[Any, str] = {}
    for probe in plan.probes:
        query = probe_query(plan, probe)
        base = Job(None, probe)
        base_ref = remote.remote(shared, base, threads, seed_rows(store, descriptions, query, None))
        pending[base_ref] = base.label
        for spec, variant in zip(plan.variants, portable.variants, strict=True):
            job = Job(variant, probe)
            seed = seed_rows(store, descriptions, query, spec)
            pending[remote.remote(shared, job, threads, seed, base_ref)] = job.label
    return pending


def precompute_with_ray(config: RunConfig, observer: Any) -> list[dict[str, Any]]:
    """Run every task of ``config`` on Ray, committing each task's rows as it arrives; returns their reports."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--executor ray needs Ray: pip install 'compsafe[ray]' (or pip install ray)") from exc
    from compsafe.runner import plan_run

    plan = plan_run(config)  # every user error surfaces on the driver, before a cluster is touched
    with session(ray, config):
        return run_tasks(ray, plan, observer)


def run_tasks(ray: Any, plan: RunPlan, observer: Any) -> list[dict[str, Any]]:
    """Submit every task of ``plan`` to the joined Ray and commit each task's rows as it arrives."""
    config = plan.config
    config.out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(config.store_path)
    reports: list[dict[str, Any]] = []
    pending: dict[Any, str] = {}
    try:
        check_feasible(ray.cluster_resources(), config)
        pending = submit(ray, plan, store)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        needs = node_inputs(task_config(config)) if config.ray_address else []
        observer.stage(
            f"ray: {len(plan.probes)} base and {len(pending) - len(plan.probes)} variant task(s) on {cpus} CPU(s)"
            + (f"; every node needs {', '.join(needs)}" if needs else "")
        )
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            label = pending.pop(done[0])
            report = result(ray, done[0], label)
            added = store.merge(report.pop("rows"))  # committed now: a killed driver loses no finished task
            observer.stage(f"ray: {label} done on node {report['node']} ({added} new record(s), {report['seconds']} s)")
            reports.append(report)
    finally:
        for ref in pending:  # a failed run leaves nothing running on a cluster it joined
            ray.cancel(ref)
        store.close()
    return reports
