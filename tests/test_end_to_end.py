"""Full runs through mteb on tiny datasets of every loader family, in the hub layout."""

import json
from dataclasses import dataclass

import fixture_data as fd
import numpy as np
import pytest
from scipy.stats import spearmanr

from qzhou_eval.config import EvalConfig
from qzhou_eval.evaluate import runner as runner_module
from qzhou_eval.evaluate.adapter import MtebEncoder, model_meta
from qzhou_eval.evaluate.runner import run
from qzhou_eval.store.manifest import MANIFEST_NAME

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


@dataclass
class Call:
    """One `encode` call as mteb made it, what the embedder's input builder prepended, and what came back."""

    task: str
    side: str  # mteb's prompt type, "none" for None
    texts: list[str]
    prepended: set[str]
    batch_size: int | None
    vectors: np.ndarray


CALLS: list[Call] = []


class SpyEncoder(MtebEncoder):
    """The runner's own encoder, recording every call; the prefix is read off the strings the embedder built."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prepended: set[str] = set()
        build = self.embedder.model_inputs

        def model_inputs(texts, prefix="", strip_texts=False):
            full, empty = build(texts, prefix, strip_texts)
            for text, model_input in zip(texts, full, strict=True):
                text = text.strip() if strip_texts else text
                if text:
                    assert model_input.endswith(text)
                    self.prepended.add(model_input[: len(model_input) - len(text)])
            return full, empty

        self.embedder.model_inputs = model_inputs

    def encode(self, sentences, *, task_name, prompt_type=None, **kwargs):
        self.prepended = set()
        out = super().encode(sentences, task_name=task_name, prompt_type=prompt_type, **kwargs)
        side = getattr(prompt_type, "value", None) or "none"
        CALLS.append(Call(task_name, side, list(sentences), self.prepended, kwargs.get("batch_size"), out))
        return out


@pytest.fixture(scope="module")
def runs(qzhou_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("hub")
    for make in {**ENG, **CMN}.values():
        make(data)
    out = tmp_path_factory.mktemp("out")
    reports = {}
    CALLS.clear()
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
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(runner_module, "MtebEncoder", SpyEncoder)
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
    from qzhou_eval.model.embedder import Embedder
    from qzhou_eval.recipe.instructions import make_rule
    from qzhou_eval.recipe.presets import get_preset

    def qzhou_rule(bench):
        return make_rule(get_preset("qzhou").prompt)  # one rule for every benchmark

    from qzhou_eval.model.weights import load_model
    from qzhou_eval.recipe.checkpoint import resolve_checkpoint
    from qzhou_eval.recipe.tokenizer import load_tokenizer

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
        t2["prefixes"]["T2Retrieval"]["query"].startswith("Instruct: Given a Chinese search query")
        and t2["prefixes"]["T2Retrieval"]["passage"] == ""
    )
    assert t2["prefix_sources"] == {"T2Retrieval": {"query": "table", "passage": "none", "none": "none"}}
    assert t2["plan"]["batch_size"] == 32 and t2["plan"]["batch_size_reason"] == "--batch_size"
    assert t2["settings"]["batch_size"] == 32 and t2["settings"]["device_count"] == 1
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


# --- what mteb passes to encode, and scores recomputed from the vectors it got -----------------------------


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _vectors(task: str, side: str, strip: bool = False) -> dict[str, np.ndarray]:
    out = {}
    for call in CALLS:
        if call.task == task and call.side == side:
            out.update(zip([t.strip() for t in call.texts] if strip else call.texts, call.vectors, strict=True))
    assert out, f"no encode call recorded for {task} / {side}"
    return out


def _score(runs, task: str) -> float:
    reports = runs[0]
    report = reports["MTEB(eng, v2)"] if task in ENG else reports["MTEB(cmn, v1)"]
    (value,) = report.done[task].values()
    return value


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_encode_spy_records_what_mteb_passes(runs):
    _, data, _ = runs
    first = {}
    for call in CALLS:
        first.setdefault((call.task, call.side), call.texts[0])
    sts = _rows(data / "mteb/sts12-sts/test.jsonl")
    assert first["STS12", "none"] == sts[0]["sentence1"]  # mteb's first STS call is the sentence1 column
    assert {side for task, side in first if task == "ArguAna"} == {"query", "passage"}
    assert {side for task, side in first if task == "AskUbuntuDupQuestions"} == {"query", "passage"}
    assert {side for task, side in first if task in ("Banking77Classification", "Ocnli", "AFQMC")} == {"none"}
    queries = {r["text"] for r in _rows(data / "mteb/arguana/queries.jsonl")}
    assert set(_vectors("ArguAna", "query")) <= queries
    # the runner hands mteb a fresh dict with the configured batch size for every task (not mteb's defaults)
    assert {call.batch_size for call in CALLS} == {32}


def test_manifest_prefixes_equal_what_was_actually_prepended(runs):
    """Per (task, side): the one prefix the embedder's input builder put in front of every text."""
    reports = runs[0]
    manifests = {b: json.loads((r.folder / MANIFEST_NAME).read_text()) for b, r in reports.items()}
    checked = set()
    for call in CALLS:
        bench = "MTEB(eng, v2)" if call.task in ENG else "MTEB(cmn, v1)"
        recorded = manifests[bench]["tasks"][call.task]["prefixes"][call.task][call.side]
        assert call.prepended == {recorded}, (call.task, call.side)
        checked.add((call.task, call.side, recorded != ""))
    # both kinds were seen: instructed texts (symmetric tasks, queries) and bare ones (T2Retrieval passages)
    assert ("ArguAna", "passage", True) in checked and ("T2Retrieval", "passage", False) in checked
    assert ("STS12", "none", True) in checked and ("T2Retrieval", "query", True) in checked


@pytest.mark.parametrize(
    "task, file",
    [
        ("STS12", "mteb/sts12-sts/test.jsonl"),
        ("STS17", "mteb/sts17-crosslingual-sts/test.jsonl"),
        ("AFQMC", "C-MTEB/AFQMC/validation.jsonl"),
    ],
)
def test_sts_scores_equal_spearman_of_the_recorded_vectors(runs, task, file):
    vec = _vectors(task, "none")
    rows = [r for r in _rows(runs[1] / file) if r.get("lang", "en-en") == "en-en"]
    cos = [_cos(vec[r["sentence1"]], vec[r["sentence2"]]) for r in rows]
    assert _score(runs, task) == pytest.approx(spearmanr([r["score"] for r in rows], cos).statistic, abs=1e-9)


def test_pair_classification_max_ap_equals_the_best_ap_over_mtebs_four_distances(runs):
    from sklearn.metrics import average_precision_score

    vec = _vectors("SprintDuplicateQuestions", "none")
    (row,) = _rows(runs[1] / "mteb/sprintduplicatequestions-pairclassification/test.jsonl")
    a = np.stack([vec[t] for t in row["sent1"]])
    b = np.stack([vec[t] for t in row["sent2"]])
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    scores = [cos, (a * b).sum(1), -np.abs(a - b).sum(1), -np.linalg.norm(a - b, axis=1)]  # larger = closer
    expected = max(average_precision_score(row["labels"], s) for s in scores)
    assert _score(runs, "SprintDuplicateQuestions") == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "task, file",
    [
        ("AskUbuntuDupQuestions", "mteb/askubuntudupquestions-reranking/test.jsonl"),
        ("T2Reranking", "C-MTEB/T2Reranking/dev.jsonl"),
    ],
)
def test_reranking_map_equals_mean_ap_of_the_recorded_cosines(runs, task, file):
    from sklearn.metrics import average_precision_score

    q, d = _vectors(task, "query"), _vectors(task, "passage")
    aps = []
    for row in _rows(runs[1] / file):
        docs = row["positive"] + row["negative"]
        relevant = [1] * len(row["positive"]) + [0] * len(row["negative"])
        aps.append(average_precision_score(relevant, [_cos(q[row["query"]], d[doc]) for doc in docs]))
    assert _score(runs, task) == pytest.approx(float(np.mean(aps)), abs=1e-9)


def test_retrieval_ndcg_at_10_equals_pytrec_eval_over_the_recorded_cosines(runs):
    import pytrec_eval

    data = runs[1]
    layouts = {
        "ArguAna": ("mteb/arguana/corpus.jsonl", "mteb/arguana/queries.jsonl", "mteb/arguana/qrels/test.jsonl"),
        "T2Retrieval": (
            "C-MTEB/T2Retrieval/corpus.jsonl",
            "C-MTEB/T2Retrieval/queries.jsonl",
            "C-MTEB/T2Retrieval-qrels/dev.jsonl",
        ),
    }
    for task, (corpus_file, query_file, qrels_file) in layouts.items():
        q, d = _vectors(task, "query"), _vectors(task, "passage", strip=True)
        qrels: dict[str, dict[str, int]] = {}
        for r in _rows(data / qrels_file):
            qid, did = r.get("query-id", r.get("qid")), r.get("corpus-id", r.get("pid"))
            qrels.setdefault(qid, {})[did] = int(r["score"])
        docs = {
            r.get("_id", r.get("id")): (r.get("title", "") + " " + r["text"]).strip() for r in _rows(data / corpus_file)
        }
        run_scores = {
            r.get("_id", r.get("id")): {did: _cos(q[r["text"]], d[text]) for did, text in docs.items()}
            for r in _rows(data / query_file)
            if r.get("_id", r.get("id")) in qrels
        }
        per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run_scores)
        expected = np.mean([v["ndcg_cut_10"] for v in per_query.values()])
        assert _score(runs, task) == pytest.approx(expected, abs=1e-5), task  # mteb rounds to 5 decimals


# --- the reference's batch size: mteb's own evaluators, and the runner's wiring -----------------------------

WRITES = {  # what mteb 1.38.30 writes into an encode_kwargs dict without a batch_size (read from its evaluators)
    "STS12": None,
    "TwentyNewsgroupsClustering.v2": None,
    "Banking77Classification": 32,
    "SprintDuplicateQuestions": 32,
    "AskUbuntuDupQuestions": 512,
    "ArguAna": 128,
}


def test_mteb_evaluators_write_the_batch_sizes_reference_batch_assumes(runs, qzhou_dir):
    """Run real mteb with an empty shared dict per task, as the reference did, and read what it wrote."""
    import mteb

    from qzhou_eval.evaluate.batch_sizes import written_default
    from qzhou_eval.evaluate.data import use_local_data
    from qzhou_eval.evaluate.plan import build_plan
    from qzhou_eval.model.build import build_embedder
    from qzhou_eval.recipe import benchmarks as registry
    from qzhou_eval.recipe.resolve import prepare

    config = EvalConfig(model_name_or_path=str(qzhou_dir), benchmark="MTEB(eng, v2)", dtype="float32", device="cpu")
    recipe = prepare(config, quiet=True)
    embedder, _ = build_embedder(recipe)
    encoder = MtebEncoder(embedder, model_meta("local/qzhou", "test", 64, 1024, None, True))
    for name, expected in WRITES.items():
        (spec,) = registry.select_specs("MTEB(eng, v2)", (name,))
        task = registry.task_object(spec)
        use_local_data(task, runs[1])
        encoder.start(build_plan(recipe, spec, str(runs[1])))
        shared: dict = {}
        mteb.MTEB(tasks=[task]).run(encoder, output_folder=None, verbosity=0, encode_kwargs=shared)
        assert shared.get("batch_size") == expected == written_default(task), name


def test_reference_batch_sizes_follow_the_first_writing_task_of_the_process():
    import mteb

    from qzhou_eval.evaluate.batch_sizes import reference_batch_sizes

    def sizes(*names):
        return list(reference_batch_sizes([mteb.get_task(n) for n in names]).values())

    assert sizes("STS12", "Banking77Classification", "ArguAna") == [32, 32, 32]
    assert sizes("STS12", "ArguAna", "Banking77Classification") == [32, 128, 128]
    assert sizes("TwentyNewsgroupsClustering.v2", "AskUbuntuDupQuestions", "ArguAna") == [32, 512, 512]
    for bench in ("MTEB(eng, v2)", "MTEB(cmn, v1)"):  # both start with a retrieval task
        assert set(reference_batch_sizes(mteb.get_benchmark(bench).tasks).values()) == {128}


def test_reference_mode_run_batches_at_the_references_size_and_scores_as_tokens_in_fp32(runs, qzhou_dir, tmp_path):
    reports, data, _ = runs
    config = EvalConfig(
        model_name_or_path=str(qzhou_dir),
        benchmark="MTEB(eng, v2)",
        tasks=("STS12",),
        data_dir=str(data),
        output_dir=str(tmp_path),
        dtype="float32",
        device="cpu",
        sort_by="reference",
    )
    before = len(CALLS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_module, "MtebEncoder", SpyEncoder)
        report = run(config)
    calls = CALLS[before:]
    del CALLS[before:]
    assert {c.batch_size for c in calls} == {128}  # STSBenchmark's place in the full MTEB(eng, v2) process
    score = report.done["STS12"]["test/default"]
    assert score == pytest.approx(reports["MTEB(eng, v2)"].done["STS12"]["test/default"], abs=1e-6)
