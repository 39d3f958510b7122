"""Per-example records (issue 17): every task type's main score recomputed from its record equals mteb's score,
on the real STSBenchmark with all-MiniLM-L6-v2 and on fixtures of every other type; records are byte-identical
across cached and sharded runs, vouched for by the manifest, and never fail a task."""

from __future__ import annotations

import json
import shutil

import fixture_data as fd
import pytest
from conftest import REPO

from qzhou_eval.config import EvalConfig
from qzhou_eval.evaluate import capture
from qzhou_eval.evaluate.runner import run
from qzhou_eval.store.manifest import MANIFEST_NAME
from qzhou_eval.store.records import SUFFIX, read_records, recompute

TASKS = {
    "SciFact": lambda d: fd.beir_retrieval(d, "mteb/scifact", n_queries=8),
    "ArguAna": lambda d: fd.beir_retrieval(d, "mteb/arguana", n_queries=8, seed=1),  # ignore_identical_ids
    "T2Retrieval": lambda d: fd.cmteb_retrieval(d, "C-MTEB/T2Retrieval", n_queries=8),
    "AskUbuntuDupQuestions": lambda d: fd.reranking_with_gap(d, "mteb/askubuntudupquestions-reranking"),
    "T2Reranking": lambda d: fd.reranking_with_gap(d, "C-MTEB/T2Reranking", split="dev", readme_split=True),
    "STS12": lambda d: fd.sts(d, "mteb/sts12-sts", n=40),
    "SummEvalSummarization.v2": lambda d: fd.summarization(d, "mteb/summeval"),
    "SprintDuplicateQuestions": lambda d: fd.pair_classification(
        d, "mteb/sprintduplicatequestions-pairclassification", n=60
    ),
    "Ocnli": lambda d: fd.pair_classification(d, "C-MTEB/OCNLI", split="validation", n=60),  # max_accuracy
    "Banking77Classification": lambda d: fd.classification(d, "mteb/banking77"),
    "WisesightSentimentClassification": lambda d: fd.classification(d, "mteb/WisesightSentimentClassification"),
    "CEDRClassification": lambda d: fd.multilabel(d, "ai-forever/cedr-classification"),
    "TwentyNewsgroupsClustering.v2": lambda d: fd.clustering_v2(d, "mteb/twentynewsgroups-clustering", n=120),
    "CLSClusteringS2S": lambda d: fd.clustering_legacy(d, "C-MTEB/CLSClusteringS2S"),
    "BornholmBitextMining": lambda d: fd.bitext(d, "strombergnlp/bornholmsk_parallel"),
    "Core17InstructionRetrieval": lambda d: fd.instruction_retrieval(d, "jhu-clsp/core17-instructions"),
}
RESAMPLED = {  # the metric kind that resamples each task's main score; None: recomputed, not resampled
    "SciFact": "mean",
    "ArguAna": "mean",
    "T2Retrieval": "mean",
    "AskUbuntuDupQuestions": "mean",
    "T2Reranking": "mean",
    "STS12": "spearman",
    "SummEvalSummarization.v2": "mean",
    "SprintDuplicateQuestions": "max_ap",
    "Ocnli": "max_accuracy",
    "Banking77Classification": "accuracy",
    "WisesightSentimentClassification": "f1_macro",  # main score f1
    "CEDRClassification": "accuracy",
    "TwentyNewsgroupsClustering.v2": "mean",
    "CLSClusteringS2S": "mean",
    "BornholmBitextMining": "f1_weighted",  # main score f1
    "Core17InstructionRetrieval": "mean",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    for make in TASKS.values():
        make(root)
    return root


def config(model, data, out, tasks, **kw):
    base = {"data_dir": str(data), "output_dir": str(out), "dtype": "float32", "cache": "off"}
    return EvalConfig(str(model), tasks=tuple(tasks), device="cpu", **{**base, **kw})


@pytest.fixture(scope="module")
def every_type(qzhou_dir, data, tmp_path_factory):
    return run(config(qzhou_dir, data, tmp_path_factory.mktemp("out"), TASKS))


@pytest.mark.parametrize("task", list(TASKS))
def test_every_types_main_score_is_recomputed_from_its_record(every_type, task):
    assert task in every_type.done, every_type.failed.get(task)
    entry = json.loads((every_type.folder / MANIFEST_NAME).read_text())["tasks"][task]
    assert entry["records"]["kept"] is True, entry["records"]
    cells = read_records(every_type.folder, task)
    result = json.loads((every_type.folder / f"{task}.json").read_text())
    written = {(split, e["hf_subset"]): e["main_score"] for split, es in result["scores"].items() for e in es}
    assert {(c["split"], c["subset"]) for c in cells} == set(written)
    for cell in cells:
        assert abs(recompute(cell) - written[(cell["split"], cell["subset"])]) <= 1e-6, cell["task"]
        assert cell["metric"] == RESAMPLED[task]
        assert len(cell["ids"]) == len(set(cell["ids"])) > 0  # unit ids are unique: records pair up by id
    assert entry["records"]["units"] == sum(len(c["ids"]) for c in cells)


def test_records_hold_the_units_the_score_is_made_of(every_type, data):
    def cell(task):
        (c,) = read_records(every_type.folder, task)
        return c

    assert len(cell("AskUbuntuDupQuestions")["ids"]) == 9  # the row without negatives is dropped, as mteb drops it
    assert all(i.endswith("#0") for i in cell("AskUbuntuDupQuestions")["ids"])  # content ids: query hash, repeat
    assert len(cell("Banking77Classification")["data"]["correct"]) == 10  # ten experiments, one test set
    assert len(cell("SprintDuplicateQuestions")["data"]["scores"]) == 5  # mteb's five similarity families
    qrels = (data / "mteb/scifact/qrels/test.jsonl").read_text().splitlines()
    judged = {json.loads(line)["query-id"] for line in qrels}  # mteb scores only the queries that have qrels
    assert sorted(cell("SciFact")["ids"]) == sorted(judged) and len(judged) < 8
    assert len(cell("SummEvalSummarization.v2")["ids"]) == 7  # the text with constant relevance is skipped
    assert all(i.startswith("Level 0#") for i in cell("TwentyNewsgroupsClustering.v2")["ids"])


def test_minilm_record_recomputes_the_real_stsbenchmark_score(minilm_dir, tmp_path):
    report = run(config(minilm_dir, REPO / "data" / "hub", tmp_path, ("STSBenchmark",), use_instruction=False))
    (cell,) = read_records(report.folder, "STSBenchmark")
    assert len(cell["ids"]) == 1379 and cell["metric"] == "spearman"
    assert abs(recompute(cell) - report.done["STSBenchmark"]["test/default"]) <= 1e-12
    written = json.loads((report.folder / "STSBenchmark.json").read_text())["scores"]["test"][0]["main_score"]
    assert abs(recompute(cell) - written) <= 1e-6 and abs(written - 0.8203247283) <= 1e-6  # the published score


def records_bytes(report, task):
    return (report.folder / f"{task}{SUFFIX}").read_bytes()


def test_cached_and_sharded_runs_write_byte_identical_records(qzhou_dir, data, tmp_path):
    tasks = ("SciFact", "STS12", "Banking77Classification", "SprintDuplicateQuestions")
    cache = {"cache": "keep", "cache_dir": str(tmp_path / "cache")}
    full = run(config(qzhou_dir, data, tmp_path / "full", tasks, **cache))
    cached = run(config(qzhou_dir, data, tmp_path / "cached", tasks, **cache))
    inputs = json.loads((cached.folder / MANIFEST_NAME).read_text())["tasks"]
    assert all(inputs[t]["inputs"]["texts_encoded"] == 0 for t in tasks)  # every vector from the cache
    shards = [run(config(qzhou_dir, data, tmp_path / "shards", tasks, shard=(k, 2))) for k in (1, 2)]
    for task in tasks:
        assert records_bytes(cached, task) == records_bytes(full, task), task
        (sharded,) = [s for s in shards if task in s.done]
        assert records_bytes(sharded, task) == records_bytes(full, task), task


def test_a_missing_records_file_is_redone_and_a_file_it_does_not_vouch_for_too(qzhou_dir, data, tmp_path):
    first = run(config(qzhou_dir, data, tmp_path, ("STS12",)))
    path = first.folder / f"STS12{SUFFIX}"
    original = path.read_bytes()
    path.unlink()
    again = run(config(qzhou_dir, data, tmp_path, ("STS12",)))
    assert "STS12" in again.done and path.read_bytes() == original
    shutil.copy(first.folder / "STS12.json", tmp_path / "keep.json")
    path.write_bytes(original[:-10])
    assert "STS12" in run(config(qzhou_dir, data, tmp_path, ("STS12",))).done
    assert run(config(qzhou_dir, data, tmp_path, ("STS12",))).skipped == ["STS12"]


def test_a_capture_that_goes_wrong_costs_the_records_never_the_result(qzhou_dir, data, tmp_path, monkeypatch):
    def broken(units, main):
        raise KeyError("cosine")

    monkeypatch.setitem(capture._BUILDERS, "sts", broken)
    report = run(config(qzhou_dir, data, tmp_path, ("STS12",)))
    assert "STS12" in report.done and not (report.folder / f"STS12{SUFFIX}").exists()
    records = json.loads((report.folder / MANIFEST_NAME).read_text())["tasks"]["STS12"]["records"]
    assert records["kept"] is False and "cosine" in records["why"]
