"""What a Ray task runs, without Ray: records and base artifacts travel as data, and a task holds no store path."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch

from compsafe.config import RunConfig
from compsafe.errors import ModelLoadError
from compsafe.executors.ray_executor import probe_query, seed_rows
from compsafe.executors.ray_task import Job, node_inputs, require_on_node, run_job, task_config
from compsafe.runner import plan_run, resolve_variant
from compsafe.runner import run as run_study
from compsafe.store import ResultStore


def test_rows_after_marks_are_exactly_the_new_rows(tmp_path: Path) -> None:
    store = ResultStore.memory()
    store.put_records("k1", [("a", "d", {"x": 1})])
    marks = store.marks()
    store.put_records("k1", [("a", "d", {"x": 2}), ("b", "d", {"x": 3})])  # a replaced row counts as new
    store.put_artifact("k1", "a", "d", {"t": torch.arange(3.0)})
    rows = store.rows_after(marks)
    assert sorted(r[1] for r in rows["records"]) == ["a", "b"] and len(rows["artifacts"]) == 1
    on_disk = ResultStore(tmp_path / "s.sqlite")
    assert on_disk.merge(rows) == 2
    assert on_disk.records("k1") == {("a", "d"): {"x": 2}, ("b", "d"): {"x": 3}}
    assert torch.equal(on_disk.get_artifact("k1", "a", "d")["t"], torch.arange(3.0))


def config_for(model: Path, out: Path, **options) -> RunConfig:
    return RunConfig(
        model=str(model), variants=["int8"], probes=["perplexity", "refusal"], limit=3, max_new_tokens=3,
        device="cpu", out=out, bootstrap_resamples=50, **options,
    )  # fmt: skip


def test_a_task_gets_no_run_folder_or_store_path(tiny_llama_dir: Path, tmp_path: Path) -> None:
    config = config_for(tiny_llama_dir, tmp_path / "run", store=tmp_path / "elsewhere" / "s.sqlite")
    portable = task_config(config)
    shipped = pickle.dumps(portable)
    assert str(tmp_path).encode() not in shipped  # neither --out nor --store reaches a worker
    assert node_inputs(portable) == [str(tiny_llama_dir.resolve())]  # what every node must hold


def test_tasks_rebuild_the_local_run_through_data_alone(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """The base task's rows (records + perplexity artifacts) feed the variant task as data; the driver's store,
    filled only by merging the returned rows, makes the local runner build nothing and match a local run."""
    config = config_for(tiny_llama_dir, tmp_path / "tasks")
    plan = plan_run(config)
    portable = task_config(config)
    threads = torch.get_num_threads()
    store = ResultStore(config.store_path)
    empty = store.rows_for([])
    for probe in plan.probes:
        base = run_job(portable, Job(None, probe), threads, empty)
        assert base["rows"]["records"] and (probe.name != "perplexity" or base["rows"]["artifacts"])
        variant = run_job(portable, Job("int8", probe), threads, empty, base)
        assert not {r[0] for r in variant["rows"]["records"]} & {r[0] for r in base["rows"]["records"]}
        store.merge(base["rows"])
        store.merge(variant["rows"])
    store.close()
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()  # a task run outside Ray never starts a local Ray
    stages: list[str] = []

    class Observer:
        def stage(self, message: str) -> None:
            stages.append(message)

        def task(self, description: str, total: int):
            stages.append(f"computing {description}")
            return lambda n: None

        def done(self, description: str) -> None:
            pass

    from_tasks = run_study(config, Observer())
    assert not [s for s in stages if s.startswith(("building", "computing"))], stages
    local = run_study(config_for(tiny_llama_dir, tmp_path / "local"))
    assert json.dumps(from_tasks["metrics"]) == json.dumps(local["metrics"])
    assert json.dumps(from_tasks["comparisons"]) == json.dumps(local["comparisons"])


def test_a_rerun_seeds_a_task_with_what_the_store_holds(tiny_llama_dir: Path, tmp_path: Path) -> None:
    config = config_for(tiny_llama_dir, tmp_path / "run")
    run_study(config)
    store = ResultStore(config.store_path)
    plan = plan_run(config)
    probe = plan.probes[0]
    descriptions = store.key_descriptions()
    query = probe_query(plan, probe)
    variant_seed = seed_rows(store, descriptions, query, resolve_variant("int8"))
    assert len(variant_seed["records"]) == 2 * 3  # the base's and int8's records of this probe, no other probe's
    assert len(seed_rows(store, descriptions, query, None)["records"]) == 3
    assert seed_rows(store, descriptions, query, resolve_variant("mag-50"))["records"] == seed_rows(
        store, descriptions, query, None
    )["records"]
    again = run_job(task_config(config), Job("int8", probe), torch.get_num_threads(), variant_seed)
    assert again["rows"]["records"] == []  # everything was finished: nothing recomputed, nothing re-sent


def test_a_node_without_the_model_folder_fails_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        require_on_node([str(tmp_path / "not-on-this-node")])
    message = str(info.value)
    assert "not-on-this-node is not on Ray node" in message and "same path" in message and "\n" not in message


def test_ray_resources_parse_and_reject_bad_amounts(tmp_path: Path) -> None:
    from compsafe.config import split_resources
    from compsafe.errors import ConfigError

    assert split_resources("worker_node=1, big_mem=0.5") == {"worker_node": 1.0, "big_mem": 0.5}
    for bad in ("worker_node", "=1", "worker_node=x"):
        with pytest.raises(ConfigError, match="--ray-resources"):
            split_resources(bad)
    with pytest.raises(ConfigError, match="must be > 0"):
        RunConfig(out=tmp_path, ray_resources={"worker_node": 0.0})


def test_a_resource_no_node_offers_fails_in_one_line_instead_of_waiting(tmp_path: Path) -> None:
    from compsafe.errors import ClusterError
    from compsafe.executors.ray_executor import check_feasible

    config = RunConfig(out=tmp_path, ray_resources={"worker_node": 1.0})
    check_feasible({"CPU": 2.0, "worker_node": 1.0}, config)
    with pytest.raises(ClusterError, match="no node of the Ray cluster offers 1 worker_node .*--ray-resources"):
        check_feasible({"CPU": 2.0}, config)
    with pytest.raises(ClusterError, match="offers 1 GPU .*--gpus-per-task"):
        check_feasible({"CPU": 2.0, "worker_node": 1.0}, RunConfig(out=tmp_path, gpus_per_task=1.0))
