"""The lm-eval bridge: ``--probes lmeval:TASK`` on a task YAML that reads local JSON.

Its log-likelihoods equal lm-eval's own HF backend's (float32, relative difference < 1e-6) and its per-document
metrics equal lm-eval's evaluator's; a run stores one record per document, pairs base and variant like every
probe and gives the drift ratio a capability measure; a dataset that cannot be loaded is one line (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("lm_eval")

from lm_eval.models.huggingface import HFLM  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from compsafe.cli import app  # noqa: E402
from compsafe.comparisons import compare_probe  # noqa: E402
from compsafe.errors import DataFileError  # noqa: E402
from compsafe.models import HFBackend  # noqa: E402
from compsafe.probes import build_probe  # noqa: E402
from compsafe.probes.lmeval_model import CompsafeLM, cut_at_stops, generation_settings  # noqa: E402
from conftest import save_tiny_llama  # noqa: E402

ROWS = [
    {"id": "q1", "question": "Which gas do plants use?", "choices": ["Carbon dioxide", "Neon", "Gold"], "answer": 0},
    {"id": "q2", "question": "How many legs has a cat?", "choices": ["Two", "Four", "Nine"], "answer": 1},
    {"id": "q3", "question": "What is 2 + 3?", "choices": ["Six", "Seven", "Five"], "answer": 2},
    {"id": "q4", "question": "Which is a colour?", "choices": ["Blue", "Loud"], "answer": 0},
    {"id": "q5", "question": "What falls from clouds?", "choices": ["Rain", "Bread", "Chairs"], "answer": 0},
]
MC_TASK = """task: tiny_local_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: items.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""
GEN_TASK = """task: tiny_local_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: items.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Q: {{question}}\\nA:"
doc_to_target: "{{choices[answer]}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 5
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def write_task(folder: Path, text: str = MC_TASK, name: str = "task.yaml", data: str | None = "items.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if data:
        (folder / data).write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def hflm(handle) -> HFLM:
    return HFLM(pretrained=handle.model, tokenizer=handle.tokenizer, batch_size=3, device="cpu",
                dtype=torch.float32, max_length=handle.max_length)  # fmt: skip


def all_requests(probe) -> list:
    return [r for doc in probe._requests_by_doc().values() for r in sorted(doc, key=lambda r: r.idx)]


def test_loglikelihoods_equal_lm_eval_hf_backend(tiny_handle, tmp_path):
    probe = build_probe(f"lmeval:{write_task(tmp_path / 'task')}")
    requests = all_requests(probe)
    assert len(requests) == sum(len(r["choices"]) for r in ROWS)
    ours = CompsafeLM(HFBackend(tiny_handle, 4)).loglikelihood(requests)
    theirs = hflm(tiny_handle).loglikelihood(requests, disable_tqdm=True)
    for (ours_lp, ours_greedy), (their_lp, their_greedy) in zip(ours, theirs, strict=True):
        assert abs(ours_lp - their_lp) <= 1e-6 * abs(their_lp)
        assert ours_greedy == their_greedy


def test_rolling_loglikelihoods_equal_lm_eval_hf_backend(tiny_handle):
    from lm_eval.api.instance import Instance

    texts = ["The river ran to the sea.", "Plants take in carbon dioxide " * 40]
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    ours = CompsafeLM(HFBackend(tiny_handle, 4)).loglikelihood_rolling(requests)
    theirs = hflm(tiny_handle).loglikelihood_rolling(requests, disable_tqdm=True)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_per_document_metrics_equal_lm_eval_evaluator(tiny_handle, tmp_path, monkeypatch):
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    task_yaml = write_task(tmp_path / "task")
    probe = build_probe(f"lmeval:{task_yaml}")
    records = [r for batch in probe.evaluate(probe.items, context(tiny_handle)) for r in batch]
    monkeypatch.chdir(task_yaml.parent)  # lm-eval reads relative data_files against the working directory
    tasks = TaskManager(include_defaults=False).load([str(task_yaml)])
    results = evaluate(hflm(tiny_handle), tasks, log_samples=True, bootstrap_iters=0, verbosity="ERROR")
    samples = sorted(results["samples"]["tiny_local_mc"], key=lambda s: s["doc_id"])
    assert [r["item_id"] for r in records] == [row["id"] for row in ROWS]
    for record, sample in zip(records, samples, strict=True):
        assert record["doc_id"] == sample["doc_id"]
        assert record["metrics"] == {"acc,none": sample["acc"], "acc_norm,none": sample["acc_norm"]}
        assert record["score"] == sample["acc"]
    summary = probe.summarize(records)
    assert summary["metrics"]["acc,none"] == pytest.approx(results["results"]["tiny_local_mc"]["acc,none"])
    assert summary["score"] == summary["metrics"]["acc,none"] and summary["n"] == len(ROWS)


def context(handle):
    from compsafe.judges import get_judge
    from compsafe.models import GenerationConfig
    from compsafe.probes import ProbeContext

    return ProbeContext(backend=HFBackend(handle, 4), judge=get_judge("phrase"), generation=GenerationConfig(),
                        is_base=True, chunk_size=2)  # fmt: skip


def test_paired_statistics_across_base_and_a_variant(tiny_handle, tiny_tokenizer, tmp_path):
    from compsafe.models import LoadOptions, load_model

    probe = build_probe(f"lmeval:{write_task(tmp_path / 'task')}")
    base = [r for batch in probe.evaluate(probe.items, context(tiny_handle)) for r in batch]
    folder = save_tiny_llama(tmp_path / "other", tiny_tokenizer, seed=7)  # another model: other answers
    other = load_model(str(folder), LoadOptions(device="cpu", dtype="float32"))
    variant = [r for batch in probe.evaluate(probe.items, context(other)) for r in batch]
    comparison = compare_probe(probe.outcome, base, variant, n_resamples=200)
    base_scores, variant_scores = [r["score"] for r in base], [r["score"] for r in variant]
    assert comparison["n"] == len(ROWS)
    assert comparison["base_score"] == pytest.approx(sum(base_scores) / len(ROWS))
    assert comparison["delta"]["estimate"] == pytest.approx((sum(variant_scores) - sum(base_scores)) / len(ROWS))
    assert comparison["score_changed"] == [b["item_id"] for b, v in zip(base, variant, strict=True)
                                           if b["score"] != v["score"]]  # fmt: skip
    assert "p_value" in comparison["mcnemar"]  # acc is 0/1 per item
    assert set(comparison["by_metric"]) == {"acc,none", "acc_norm,none"}
    assert all(r["responses"] and len(r["responses"]) == len(row["choices"]) for r, row in zip(base, ROWS, strict=True))


def test_a_generation_task_records_cut_text_and_exact_match(tiny_handle, tmp_path):
    probe = build_probe(f"lmeval:{write_task(tmp_path / 'gen', GEN_TASK)}", limit=3)
    assert len(probe.items) == 3 and probe.dataset.extra["available"] == len(ROWS)
    records = [r for batch in probe.evaluate(probe.items, context(tiny_handle)) for r in batch]
    for record, row in zip(records, ROWS[:3], strict=True):
        (response,) = record["responses"]
        assert isinstance(response, str) and "\n" not in response
        assert record["target"] == row["choices"][row["answer"]]
        assert record["metrics"]["exact_match,none"] == float(response == record["target"])
    config, stops = generation_settings({"until": ["\n"], "max_gen_toks": 5, "do_sample": False})
    assert (config.max_new_tokens, config.do_sample, stops) == (5, False, ("\n",))
    assert cut_at_stops("Paris\nQ: next", ("\n", "Q:")) == "Paris"


def test_run_stores_records_pairs_them_and_uses_the_task_for_the_drift_ratio(tiny_llama_dir, tmp_path):
    task_yaml = write_task(tmp_path / "task")
    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_llama_dir), "--variants", "mag-50", "--probes", f"refusal,lmeval:{task_yaml}",
            "--limit", "4", "--max-new-tokens", "4", "--batch-size", "4", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["base"]["lmeval"]["n"] == 4
    assert set(summary["metrics"]["base"]["lmeval"]["metrics"]) == {"acc,none", "acc_norm,none"}
    comparison = summary["comparisons"]["mag-50"]["probes"]["lmeval"]
    assert comparison["n"] == 4 and "estimate" in comparison["delta"]
    drift = summary["comparisons"]["mag-50"]["alignment_drift_ratio"]
    assert drift["headline"] == "vs_lmeval"
    assert drift["vs_lmeval"]["capability_measure"] == "lm-eval task score"


def test_a_missing_local_dataset_is_one_line_saying_how_to_point_at_local_data(tmp_path):
    task_yaml = write_task(tmp_path / "task", data=None)  # the YAML names items.jsonl, which is not there
    with pytest.raises(DataFileError) as caught:
        build_probe(f"lmeval:{task_yaml}")
    message = str(caught.value)
    assert "\n" not in message and "is not available" in message
    assert "dataset_path: json" in message and "data_files" in message
    result = CliRunner().invoke(app, ["run", "--probes", f"lmeval:{task_yaml}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "is not available" in result.output and "Traceback" not in result.output


def test_the_shipped_example_runs_offline_by_name():
    probe = build_probe("lmeval:compsafe", limit=3)
    assert probe.dataset.extra["available"] == 151
    assert [i.id for i in probe.items] == ["mcqa-science-001", "mcqa-science-002", "mcqa-science-003"]
    assert probe.items[0].data["requests"][0][1].startswith("Question: What do plants need")


def test_a_hub_dataset_offline_is_the_same_one_line(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # as on a machine without the hub, at once
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hub_task = MC_TASK.replace("dataset_path: json", "dataset_path: compsafe-test/not-on-this-machine")
    hub_task = hub_task.replace("dataset_kwargs:\n  data_files:\n    test: items.jsonl\n", "")
    task_yaml = write_task(tmp_path / "hub", hub_task)
    with pytest.raises(DataFileError, match="'compsafe-test/not-on-this-machine' is not available") as caught:
        build_probe(f"lmeval:{task_yaml}")
    assert "\n" not in str(caught.value) and "dataset_path: json" in str(caught.value)


def test_a_pickled_probe_rebuilds_its_task_and_scores_the_same(tiny_handle, tmp_path):
    import pickle

    probe = build_probe(f"lmeval:{write_task(tmp_path / 'task')}", limit=3)
    shipped = pickle.loads(pickle.dumps(probe))  # as the Ray executor ships a probe to a worker
    assert shipped._task is None and shipped.item_digest == probe.item_digest
    ours = [r for batch in probe.evaluate(probe.items, context(tiny_handle)) for r in batch]
    theirs = [r for batch in shipped.evaluate(shipped.items, context(tiny_handle)) for r in batch]
    assert theirs == ours
    assert shipped.query_config(context(tiny_handle)) == probe.query_config(context(tiny_handle))
