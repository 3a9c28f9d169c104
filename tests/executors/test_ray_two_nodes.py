"""`--executor ray` on a two-node cluster started here with `ray start`, with no filesystem shared for the store.

A head node and a worker node (custom resource ``worker_node``) run on this machine; every task is pinned to
the worker with ``--ray-resources worker_node=1``. The worker node is started in its own mount namespace with
an empty tmpfs over the driver's directory (where --out and the store live), so the workers truly cannot see
the store: the run must get every record back through Ray's object store. Without the privileges for that
(unshare + mount), the test still runs and the store's absence is only by construction (tasks get no path).

Teardown ends only this cluster's processes (those naming its temp dir, and their children), by pid: `ray stop`
would stop every Ray instance on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import compsafe
from compsafe.cli import app

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")
RAY = shutil.which("ray")
# slow (CI runs it; land.sh's quick pass does not): ~30-55 s on a quiet 2-core machine, and `ray start` takes
# minutes on a loaded one. It runs after test_ray_executor.py in the same process: that test's local Ray must not
# leave its token authentication behind (ray_executor.session), or every task here fails with OwnerDiedError.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(RAY is None, reason="the `ray` command is not installed"),
]


@dataclass
class Cluster:
    address: str
    temp_dir: Path
    driver_dir: Path  # the driver's directory: an empty tmpfs on the worker node when ``hidden``
    hidden: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_hide(folder: Path) -> bool:
    """Whether this process may mount a tmpfs over ``folder`` in a private mount namespace (root, unshare)."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "none", str(folder)]
    return subprocess.run(probe, capture_output=True).returncode == 0


def cluster_processes(temp_dir: Path) -> list:
    """This cluster's processes: those naming its temp dir, and everything they started (workers, agents)."""
    found: dict[int, object] = {}
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
            found[proc.pid] = proc
            with contextlib.suppress(psutil.NoSuchProcess):
                found.update({child.pid: child for child in proc.children(recursive=True)})
    return list(found.values())


def stop_cluster(temp_dir: Path) -> None:
    for proc in cluster_processes(temp_dir):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def start_cluster(temp_dir: Path, driver_dir: Path, hidden: bool) -> str:
    """`ray start` a head and a worker node (1 CPU each); the cluster address. A start that fails (Ray gives a
    node 30 s to register, which a heavily loaded machine can miss) is cleaned up and tried once more."""
    src = str(Path(compsafe.__file__).parents[1])  # the workers import this compsafe, not another install
    path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": path}  # a local test cluster: no token
    common = ["--num-cpus", "1", "--temp-dir", str(temp_dir), "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    failure = ""
    for _ in range(2):
        port = free_port()
        head = [RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common]
        worker = [RAY, "start", "--address", f"127.0.0.1:{port}", "--resources", '{"worker_node": 1}', *common]
        if hidden:  # the worker node and every process it starts see an empty folder where the driver's store is
            hide = 'mount -t tmpfs none "$0" && exec "$@"'
            worker = ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide, str(driver_dir), *worker]
        for command in (head, worker):
            try:
                started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            except subprocess.TimeoutExpired:
                started = subprocess.CompletedProcess(command, 1, "", "`ray start` took over 180 s")
            if started.returncode != 0:
                failure = started.stdout[-1500:] + started.stderr[-1500:]
                stop_cluster(temp_dir)
                break
        else:
            return f"127.0.0.1:{port}"
    raise AssertionError(f"`ray start` failed twice: {failure}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    temp_dir = Path(tempfile.mkdtemp(prefix="csray", dir="/tmp"))  # Ray's socket paths must stay short
    driver_dir = tmp_path_factory.mktemp("driver-only")
    hidden = can_hide(driver_dir)
    if ray.is_initialized():  # the runs below must join this cluster, not a session an earlier test left open
        ray.shutdown()
    try:
        yield Cluster(start_cluster(temp_dir, driver_dir, hidden), temp_dir, driver_dir, hidden)
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def run_args(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--model", str(model), "--variants", "int8,mag-50", "--probes", "refusal,perplexity", "--limit", "3",
        "--max-new-tokens", "3", "--device", "cpu", "--out", str(out), *extra,
    ]  # fmt: skip


def comparable(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {"metrics": summary["metrics"], "comparisons": summary["comparisons"]}


def on_worker_node(cluster: Cluster, path: Path) -> tuple[str, bool]:
    """The worker node's id (first 12 hex digits) and whether ``path`` exists as seen from that node."""
    ray.init(address=cluster.address, log_to_driver=False)
    try:

        @ray.remote(num_cpus=1, resources={"worker_node": 1})
        def look(target: str) -> tuple[str, bool]:
            return ray.get_runtime_context().get_node_id()[:12], os.path.exists(target)

        return ray.get(look.remote(str(path)), timeout=120)
    finally:
        ray.shutdown()


def test_two_nodes_without_a_shared_store_match_a_local_run(
    cluster: Cluster, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    out = cluster.driver_dir / "run"
    args = run_args(tiny_llama_dir, out, "--executor", "ray", "--address", cluster.address)
    distributed = CliRunner().invoke(app, [*args, "--ray-resources", "worker_node=1"])
    assert distributed.exit_code == 0, distributed.output
    assert "every node needs" in distributed.output and str(tiny_llama_dir) in distributed.output
    assert "building" not in distributed.output  # the driver's own pass found every record in its store
    worker_node, store_visible = on_worker_node(cluster, out / "store.sqlite")
    assert (out / "store.sqlite").is_file() and store_visible is not cluster.hidden
    assert distributed.output.count(f" done on node {worker_node} ") == 6  # every task ran on the worker node
    local = CliRunner().invoke(app, run_args(tiny_llama_dir, tmp_path / "local"))
    assert local.exit_code == 0, local.output
    assert comparable(out) == comparable(tmp_path / "local")


class DriverKilled(Exception):
    pass


class Recorder:
    """Keeps the driver's stage lines; with ``die=True`` stops the driver right after its first committed task."""

    def __init__(self, die: bool = False) -> None:
        self.die = die
        self.stages: list[str] = []

    def stage(self, message: str) -> None:
        self.stages.append(message)
        if self.die and " done on node " in message:
            raise DriverKilled(message)

    def task(self, description: str, total: int):
        return lambda n: None

    def done(self, description: str) -> None:
        pass


def kill_a_running_task(cluster: Cluster, running: threading.Thread) -> int | None:
    """SIGKILL the first worker process seen executing a task of this cluster; its pid, or None if none ran."""
    deadline = time.time() + 240
    while running.is_alive() and time.time() < deadline:
        busy = [p for p in cluster_processes(cluster.temp_dir) if p.cmdline()[:1] == ["ray::run_job"]]
        if busy:
            os.kill(busy[0].pid, signal.SIGKILL)  # the worker process dies mid-task
            return busy[0].pid
        time.sleep(0.05)
    return None


def test_a_killed_driver_and_a_killed_worker_lose_nothing_finished(cluster: Cluster, tiny_llama_dir: Path) -> None:
    """The driver dies right after committing its first task: that task's records stay in the store. The rerun
    computes only the rest while a worker process is killed mid-task: Ray retries the task, nothing is lost."""
    from compsafe.config import RunConfig
    from compsafe.executors.ray_executor import precompute_with_ray
    from compsafe.store import ResultStore

    config = RunConfig(
        model=str(tiny_llama_dir), variants=["int8"], probes=["refusal", "perplexity"], limit=3, max_new_tokens=3,
        device="cpu", out=cluster.driver_dir / "killed", executor="ray", ray_address=cluster.address,
        ray_resources={"worker_node": 1.0},
    )  # fmt: skip

    def count() -> int:
        store = ResultStore(config.store_path)
        try:
            return store.connection.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        finally:
            store.close()

    with pytest.raises(DriverKilled):
        precompute_with_ray(config, Recorder(die=True))
    assert count() == 3  # the first task to finish is a base task: its 3 items were committed
    rerun = Recorder()
    reports: list[dict] = []
    runner = threading.Thread(target=lambda: reports.extend(precompute_with_ray(config, rerun)))
    runner.start()
    killed = kill_a_running_task(cluster, runner)
    runner.join(timeout=300)
    assert killed is not None, "no task was seen running"
    assert not runner.is_alive() and len(reports) == 4
    assert killed not in {r["pid"] for r in reports}  # the killed attempt was rerun in a new worker
    assert sum("(0 new record(s)" in s for s in rerun.stages) == 1  # the finished task was not computed again
    assert count() == 2 * 2 * 3
