"""Full runs through mteb on tiny datasets of every loader family, in the hub layout."""

import json

import fixture_data as fd
import numpy as np
import pytest
from scipy.stats import spearmanr

from qzhou_eval.config import EvalConfig
from qzhou_eval.manifest import MANIFEST_NAME
from qzhou_eval.runner import run

ENG = {
    "STS12": lambda d: fd.sts(d, "mteb/sts12-sts"),
    "STS17": lambda d: fd.sts(d, "mteb/sts17-crosslingual-sts", lang="en-en"),
    "Banking77Classification": lambda d: fd.classification(d, "mteb/banking77"),
    "MassiveIntentClassification": lambda d: fd.classification(d, "mteb/amazon_massive_intent", lang="en"),
    "MTOPDomainClassification": lambda d: fd.multilingual_slow(d, "mteb/mtop_domain"),
    "TwentyNewsgroupsClustering.v2": lambda d: fd.clustering_v2(d, "mteb/twentynewsgroups-clustering"),
    "SprintDuplicateQuestions": lambda d: fd.pair_classification(d, "mteb/sprintduplicatequestions-pairclassification"),
    "AskUbuntuDupQuestions": lambda d: fd.reranking(d, "mteb/askubuntudupquestions-reranking"),
    "ArguAna": lambda d: fd.beir_retrieval(d, "mteb/arguana"),
}
CMN = {
    "T2Retrieval": lambda d: fd.cmteb_retrieval(d, "C-MTEB/T2Retrieval"),
    "Ocnli": lambda d: fd.pair_classification(d, "C-MTEB/OCNLI", split="validation"),
    "TNews": lambda d: fd.classification(d, "C-MTEB/TNews-classification", splits=("train", "validation")),
    "T2Reranking": lambda d: fd.reranking(d, "C-MTEB/T2Reranking", split="dev", readme_split=True),
    "AFQMC": lambda d: fd.sts(d, "C-MTEB/AFQMC", split="validation"),
}
EXPECTED_CELLS = {
    "STS17": "test/en-en",
    "MassiveIntentClassification": "test/en",
    "MTOPDomainClassification": "test/en",
    "T2Retrieval": "dev/default",
    "Ocnli": "validation/default",
    "TNews": "validation/default",
    "T2Reranking": "dev/default",
    "AFQMC": "validation/default",
}


@pytest.fixture(scope="module")
def runs(qzhou_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("hub")
    for make in {**ENG, **CMN}.values():
        make(data)
    out = tmp_path_factory.mktemp("out")
    reports = {}
    for bench, tasks in (("MTEB(eng, v2)", ENG), ("MTEB(cmn, v1)", CMN)):
        config = EvalConfig(
            model_name_or_path=str(qzhou_dir),
            benchmark=bench,
            tasks=tuple(tasks),
            data_dir=str(data),
            output_dir=str(out),
            dtype="float32",
            device="cpu",
        )
        reports[bench] = run(config)
    return reports, data, out


def test_every_loader_family_produces_a_result_file(runs):
    reports, _, out = runs
    for bench, tasks in (("MTEB(eng, v2)", ENG), ("MTEB(cmn, v1)", CMN)):
        report = reports[bench]
        assert report.failed == {} and report.exit_code == 0
        assert set(report.done) == set(tasks)
        for task in tasks:
            result = json.loads((report.folder / f"{task}.json").read_text())
            assert result["task_name"] == task and result["mteb_version"] == "1.38.30"
            cell = EXPECTED_CELLS.get(task, "test/default")
            split, subset = cell.split("/")
            (entry,) = [e for e in result["scores"][split] if e["hf_subset"] == subset]
            assert 0.0 <= entry["main_score"] <= 1.0
            assert list(report.done[task]) == [cell]


def test_output_layout_is_mteb_and_never_unnamed(runs, qzhou_dir):
    reports, _, out = runs
    folder = reports["MTEB(eng, v2)"].folder
    assert folder.parent.name == "local__qzhou" and folder.name.startswith("local-")
    meta = json.loads((folder / "model_meta.json").read_text())
    assert meta["name"] == "local/qzhou" and meta["revision"] == folder.name
    assert not (out / "no_model_name_available").exists()


def test_sts_score_equals_spearman_of_our_own_cosines(runs, qzhou_dir):
    """The score is computed from the model's embeddings, not a constant: recompute it by hand."""
    from qzhou_eval.embedder import Embedder
    from qzhou_eval.instructions import load_table, make_rule
    from qzhou_eval.presets import get_preset

    def qzhou_rule(bench):
        return make_rule(load_table(bench), get_preset("qzhou").prompt)

    from qzhou_eval.loading import load_model, load_tokenizer, resolve_checkpoint

    reports, data, _ = runs
    rows = [json.loads(line) for line in (data / "mteb/sts12-sts/test.jsonl").read_text().splitlines()]
    ckpt = resolve_checkpoint(str(qzhou_dir))
    emb = Embedder(load_model(ckpt, "float32", "sdpa", "cpu", False), load_tokenizer(ckpt, "auto", False))
    prefix = qzhou_rule("MTEB(eng, v2)").prefix("STS12", None)
    a = emb.encode([r["sentence1"] for r in rows], prefix)
    b = emb.encode([r["sentence2"] for r in rows], prefix)
    expected = spearmanr((a * b).sum(1), [r["score"] for r in rows]).statistic
    assert reports["MTEB(eng, v2)"].done["STS12"]["test/default"] == pytest.approx(expected, abs=1e-6)


def test_manifest_records_settings_sources_prefixes_and_inputs(runs, qzhou_dir):
    reports, data, _ = runs
    manifest = json.loads((reports["MTEB(cmn, v1)"].folder / MANIFEST_NAME).read_text())
    assert manifest["versions"]["mteb"] == "1.38.30"
    assert manifest["config"]["dtype"] == "float32" and manifest["config"]["use_instruction"] is True
    assert manifest["resolved"]["padding_side"] == "left" and manifest["resolved"]["model_class"] == "QZhouModel"
    assert manifest["device_name"].startswith("cpu")
    t2 = manifest["tasks"]["T2Retrieval"]
    assert t2["status"] == "done"
    assert t2["data_source"] == str((data / "C-MTEB/T2Retrieval").resolve())
    assert (
        t2["prefixes"]["query"].startswith("Instruct: Given a Chinese search query") and t2["prefixes"]["passage"] == ""
    )
    assert t2["inputs"]["texts"] == 6 + 24 and t2["inputs"]["empty_replaced"] == 0
    assert t2["wall_time_s"] > 0
    # the English run's manifest holds the English tasks (one folder, tasks merged across runs)
    assert set(ENG) | set(CMN) <= set(manifest["tasks"])


def test_task_without_data_fails_alone_and_names_the_path(qzhou_dir, tmp_path):
    data = tmp_path / "hub"
    fd.sts(data, "mteb/sts12-sts")
    config = EvalConfig(
        model_name_or_path=str(qzhou_dir),
        benchmark="MTEB(eng, v2)",
        tasks=("STS13", "STS12"),
        data_dir=str(data),
        output_dir=str(tmp_path / "out"),
        dtype="float32",
        device="cpu",
    )
    report = run(config)
    assert list(report.done) == ["STS12"] and report.exit_code == 1
    assert str(data.resolve() / "mteb/sts13-sts") in report.failed["STS13"]
    assert np.isfinite(report.done["STS12"]["test/default"])
