"""Per-example records of mteb 1.38.30's main scores, captured while mteb evaluates, without copying its code.

mteb keeps almost nothing per example (retrieval predictions only on request, reranking, STS, pair
classification and classification aggregates only). `TaskCapture` hooks the places where mteb itself holds
the per-unit values it averages, for the duration of one task's evaluation, and turns what it saw into one
record cell per (task or subtask, split, subset): the units' ids and data, and the metric kind
(`store/metrics.py`) that recomputes the cell's main score from them. The runner checks every cell's
recomputed score against the score mteb wrote before it keeps the records.

Where each type is seen (instance hooks on the task object, or on each subtask of an aggregate; class and
module hooks are process-wide while a task runs and inert outside it; all removed on exit):

- Retrieval: the task's RetrievalEvaluator gets an instance `evaluate` that calls mteb's and then scores the
  same qrels and run (identical ids already removed) per query with pytrec_eval: nDCG@10 per query id.
- Reranking: `RerankingEvaluator._collect_results` sees the average precision per query mteb averages.
- InstructionRetrieval: both runs and the qrel diff, then mteb's own `evaluate_change` per query (p-MRR).
- STS: `STSEvaluator.__call__` (gold) and its module's `paired_cosine_distances` (the cosines mteb ranks).
- Summarization: `SummarizationEvaluator.__call__` (gold) and its module's `cos_sim` / `dot_score` (per summary
  maxima); the per-text Spearman correlations mteb averages (texts it skips are left out).
- Pair classification: `PairClassificationEvaluator._compute_metrics`: the five score families and labels.
- Classification: its module's `accuracy_score` (y_true, y_pred per experiment).
- Multilabel classification: its module's `f1_score` (y_test, y_pred per experiment) and `train_test_split`.
- Clustering (fast and legacy): the per-subsample V-measures mteb returns.
- Bitext mining: its module's `accuracy_score` (gold and predicted pair per sentence).

Every task starts from mteb's seed 42 (each `mteb.MTEB(...)` reseeds numpy, and the runner makes one per task),
so sampled classification training sets and clustering draws are the same for every model: unit ids pair up.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..recipe.benchmarks import leaf_tasks

_OPEN: list[dict] = []  # the bucket of the (sub)task subset being evaluated; class and module spies write into it
FAMILIES = ("similarity", "cosine", "manhattan", "euclidean", "dot")  # mteb's call order of _compute_metrics


def unit_hash(value: Any) -> str:
    """A short content hash, so two models' units are paired only when they are the same text."""
    return hashlib.sha1(json.dumps(value, ensure_ascii=False, default=str).encode()).hexdigest()[:10]


def _tolist(x: Any) -> list:
    return x.tolist() if hasattr(x, "tolist") else [v.item() if hasattr(v, "item") else v for v in x]


def _current(kind: str) -> dict | None:
    return _OPEN[-1] if _OPEN and _OPEN[-1]["type"] == kind else None


@contextmanager
def _guard(bucket: dict | None) -> Iterator[dict | None]:
    """Recording never fails an evaluation: an error marks the bucket (its task keeps no records) and passes."""
    try:
        yield bucket
    except Exception as exc:  # noqa: BLE001 - whatever went wrong in the capture, mteb's call goes on
        if bucket is not None:
            bucket["error"] = f"{type(exc).__name__}: {exc}"


class _Patches:
    """setattr with undo, in reverse order."""

    def __init__(self) -> None:
        self.undo: list[tuple[Any, str, Any, bool]] = []

    def set(self, obj: Any, name: str, value: Any) -> None:
        had = name in obj.__dict__
        self.undo.append((obj, name, obj.__dict__.get(name), had))
        setattr(obj, name, value)

    def restore(self) -> None:
        for obj, name, old, had in reversed(self.undo):
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)
        self.undo.clear()


def task_kind(task: Any) -> str:
    from mteb.abstasks.AbsTaskBitextMining import AbsTaskBitextMining
    from mteb.abstasks.AbsTaskClassification import AbsTaskClassification
    from mteb.abstasks.AbsTaskClustering import AbsTaskClustering
    from mteb.abstasks.AbsTaskClusteringFast import AbsTaskClusteringFast
    from mteb.abstasks.AbsTaskInstructionRetrieval import AbsTaskInstructionRetrieval
    from mteb.abstasks.AbsTaskMultilabelClassification import AbsTaskMultilabelClassification
    from mteb.abstasks.AbsTaskPairClassification import AbsTaskPairClassification
    from mteb.abstasks.AbsTaskReranking import AbsTaskReranking
    from mteb.abstasks.AbsTaskRetrieval import AbsTaskRetrieval
    from mteb.abstasks.AbsTaskSTS import AbsTaskSTS
    from mteb.abstasks.AbsTaskSummarization import AbsTaskSummarization

    order = (
        (AbsTaskInstructionRetrieval, "instruction_retrieval"),
        (AbsTaskRetrieval, "retrieval"),
        (AbsTaskReranking, "reranking"),
        (AbsTaskSTS, "sts"),
        (AbsTaskSummarization, "summarization"),
        (AbsTaskPairClassification, "pair_classification"),
        (AbsTaskMultilabelClassification, "multilabel"),
        (AbsTaskClassification, "classification"),
        (AbsTaskClusteringFast, "clustering_fast"),
        (AbsTaskClustering, "clustering"),
        (AbsTaskBitextMining, "bitext"),
    )
    return next((kind for cls, kind in order if isinstance(task, cls)), "unsupported")


# ------------------------------------------------------------------------------------ process-wide spies


def _install_module_spies(patches: _Patches) -> None:
    import torch

    rerank = importlib.import_module("mteb.evaluation.evaluators.RerankingEvaluator").RerankingEvaluator
    collect = rerank.__dict__["_collect_results"]

    def _collect_results(self: Any, all_mrr_scores: Any, all_ap_scores: Any, all_conf_scores: Any) -> Any:
        with _guard(_current("reranking")) as bucket:
            if bucket is not None:
                bucket["units"]["ap"] = [float(x) for x in all_ap_scores]
                bucket["units"]["query_hash"] = [unit_hash(s["query"]) for s in self.samples]
        return collect(self, all_mrr_scores, all_ap_scores, all_conf_scores)

    patches.set(rerank, "_collect_results", _collect_results)

    sts = importlib.import_module("mteb.evaluation.evaluators.STSEvaluator")
    sts_call, distances = sts.STSEvaluator.__dict__["__call__"], sts.paired_cosine_distances

    def sts_evaluate(self: Any, model: Any, *, encode_kwargs: dict = {}) -> Any:  # noqa: B006 - mteb's signature
        with _guard(_current("sts")) as bucket:
            if bucket is not None:
                bucket["units"]["gold"] = [float(x) for x in self.gold_scores]
                bucket["units"]["pair_hash"] = [
                    unit_hash([a, b]) for a, b in zip(self.sentences1, self.sentences2, strict=True)
                ]
        return sts_call(self, model, encode_kwargs=encode_kwargs)

    def cosine_distances(x: Any, y: Any) -> Any:
        d = distances(x, y)
        with _guard(_current("sts")) as bucket:
            if bucket is not None:
                bucket["units"]["cosine"] = _tolist(1 - d)  # the very expression mteb ranks
        return d

    patches.set(sts.STSEvaluator, "__call__", sts_evaluate)
    patches.set(sts, "paired_cosine_distances", cosine_distances)

    summ = importlib.import_module("mteb.evaluation.evaluators.SummarizationEvaluator")
    summ_call, cos_sim, dot_score = summ.SummarizationEvaluator.__dict__["__call__"], summ.cos_sim, summ.dot_score

    def summ_evaluate(self: Any, model: Any, *, encode_kwargs: dict = {}) -> Any:  # noqa: B006 - mteb's signature
        with _guard(_current("summarization")) as bucket:
            if bucket is not None:
                bucket["units"].update(
                    gold=[[float(v) for v in g] for g in self.gold_scores],
                    n_machine=[len(m) for m in self.machine_summaries],
                    cos_max=[],
                    dot_max=[],
                )
        return summ_call(self, model, encode_kwargs=encode_kwargs)

    def spy_max(original: Any, key: str) -> Any:
        def call(a: Any, b: Any) -> Any:
            out = original(a, b)
            with _guard(_current("summarization")) as bucket:
                if bucket is not None and key in bucket["units"]:
                    bucket["units"][key].append(torch.max(out).item())  # mteb's per-summary maximum
            return out

        return call

    patches.set(summ.SummarizationEvaluator, "__call__", summ_evaluate)
    patches.set(summ, "cos_sim", spy_max(cos_sim, "cos_max"))
    patches.set(summ, "dot_score", spy_max(dot_score, "dot_max"))

    pair = importlib.import_module("mteb.evaluation.evaluators.PairClassificationEvaluator")
    compute = pair.PairClassificationEvaluator.__dict__["_compute_metrics"].__func__

    def compute_metrics(scores: Any, labels: Any, high_score_more_similar: bool) -> Any:
        with _guard(_current("pair_classification")) as bucket:
            if bucket is not None:
                families = bucket["units"].setdefault("families", [])
                sign = 1.0 if high_score_more_similar else -1.0  # distances negated: higher = more similar
                families.append([sign * float(v) for v in np.asarray(scores)])
                bucket["units"]["label"] = [int(v) for v in labels]
        return compute(scores, labels, high_score_more_similar)

    patches.set(pair.PairClassificationEvaluator, "_compute_metrics", staticmethod(compute_metrics))

    clf = importlib.import_module("mteb.evaluation.evaluators.ClassificationEvaluator")
    clf_accuracy = clf.accuracy_score

    def classification_accuracy(y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
        with _guard(_current("classification")) as bucket:
            if bucket is not None:
                bucket["units"].setdefault("gold", _tolist(y_true))
                bucket["units"].setdefault("pred", []).append(_tolist(y_pred))
        return clf_accuracy(y_true, y_pred, *args, **kwargs)

    patches.set(clf, "accuracy_score", classification_accuracy)

    multi = importlib.import_module("mteb.abstasks.AbsTaskMultilabelClassification")
    multi_f1, split = multi.f1_score, multi.train_test_split

    def multilabel_f1(y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
        with _guard(_current("multilabel")) as bucket:
            if bucket is not None:
                bucket["units"].setdefault("gold", np.asarray(y_true).astype(int).tolist())
                bucket["units"].setdefault("pred", []).append(np.asarray(y_pred).astype(int).tolist())
        return multi_f1(y_true, y_pred, *args, **kwargs)

    def multilabel_split(*arrays: Any, **kwargs: Any) -> Any:
        bucket = _current("multilabel")
        if bucket is None:
            return split(*arrays, **kwargs)
        # the split depends on the sample count, stratify and the RNG, not on how many arrays are passed: one
        # more arange gives the original indices of the rows mteb keeps as its test set, outputs unchanged
        out = split(*arrays, np.arange(len(arrays[0])), **kwargs)
        bucket["units"]["test_index"] = _tolist(out[-2])
        return out[:-2]

    patches.set(multi, "f1_score", multilabel_f1)
    patches.set(multi, "train_test_split", multilabel_split)

    bitext = importlib.import_module("mteb.evaluation.evaluators.BitextMiningEvaluator")
    bitext_accuracy = bitext.accuracy_score

    def bitext_pairs(labels: Any, predictions: Any, *args: Any, **kwargs: Any) -> Any:
        with _guard(_current("bitext")) as bucket:
            if bucket is not None:
                bucket["units"].setdefault("pairs", []).append({"gold": _tolist(labels), "pred": _tolist(predictions)})
        return bitext_accuracy(labels, predictions, *args, **kwargs)

    patches.set(bitext, "accuracy_score", bitext_pairs)


def _retrieval_per_query(main: str, qrels: Any, results: Any) -> dict[str, Any]:
    """Per query, the task's main metric as pytrec_eval gives it to mteb (the same qrels and run)."""
    import pytrec_eval

    name, k = main.rsplit("_at_", 1)
    measure = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P"}.get(name)
    if measure is None:
        return {}
    per = pytrec_eval.RelevanceEvaluator(qrels, {f"{measure}.{k}"}).evaluate(results)
    return {"qid": list(per), "value": [per[q][f"{measure}_{k}"] for q in per]}


# ------------------------------------------------------------------------------------------ the capture


class TaskCapture:
    """`with TaskCapture(task): mteb runs it`; then `cells()` gives one record cell per (task, split, subset)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.patches = _Patches()
        self.buckets: list[dict] = []

    def __enter__(self) -> TaskCapture:
        _install_module_spies(self.patches)
        for leaf in leaf_tasks(self.task):
            self._hook(leaf)
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.patches.restore()
        _OPEN.clear()
        return False

    def _hook(self, task: Any) -> None:
        kind, state, opened = task_kind(task), {"split": None}, []
        evaluate_split = task.evaluate

        def evaluate(model: Any, split: str = "test", *args: Any, **kwargs: Any) -> Any:
            state["split"] = split
            start = len(opened)
            scores = evaluate_split(model, split, *args, **kwargs)
            self._close(task, kind, opened[start:], scores)
            return scores

        self.patches.set(task, "evaluate", evaluate)
        name = "_evaluate_subset_lang" if kind == "instruction_retrieval" else "_evaluate_subset"
        subset = getattr(task, name)

        def evaluate_subset(*args: Any, **kwargs: Any) -> Any:
            bucket = {"task": task.metadata.name, "type": kind, "split": state["split"], "units": {}}
            bucket["main_score_name"] = task.metadata.main_score
            undo = None
            with _guard(bucket):
                undo = self._before(kind, bucket, args, kwargs)
            _OPEN.append(bucket)
            try:
                out = subset(*args, **kwargs)
            finally:
                _OPEN.pop()
                if undo is not None:
                    undo()
            with _guard(bucket):
                self._after(kind, bucket, out)
            opened.append(bucket)
            return out

        self.patches.set(task, name, evaluate_subset)
        if kind == "instruction_retrieval":
            self._hook_instruction_retrieval(task)

    def _hook_instruction_retrieval(self, task: Any) -> None:
        runs, diff = task._evaluate_subset, task.create_qrel_diff

        def evaluate_subset(*args: Any, **kwargs: Any) -> Any:
            scores, results = runs(*args, **kwargs)
            with _guard(_current("instruction_retrieval")) as bucket:
                if bucket is not None:
                    bucket.setdefault("_runs", []).append(results)
            return scores, results

        def create_qrel_diff(og: Any, changed: Any) -> Any:
            out = diff(og, changed)
            with _guard(_current("instruction_retrieval")) as bucket:
                if bucket is not None:
                    bucket["_diff"] = out
            return out

        self.patches.set(task, "_evaluate_subset", evaluate_subset)
        self.patches.set(task, "create_qrel_diff", create_qrel_diff)

    def _before(self, kind: str, bucket: dict, args: tuple, kwargs: dict) -> Any:
        if kind == "retrieval":
            retriever = args[0] if args else kwargs["retriever"]
            original = type(retriever).evaluate
            main = bucket["main_score_name"]

            def evaluate(qrels: Any, results: Any, k_values: Any, ignore_identical_ids: bool = False) -> Any:
                out = original(qrels, results, k_values, ignore_identical_ids=ignore_identical_ids)
                with _guard(bucket):
                    bucket["units"].update(_retrieval_per_query(main, qrels, results))  # ids already removed
                return out

            retriever.evaluate = evaluate  # shadows the staticmethod for this evaluator object only

            def undo() -> None:
                retriever.__dict__.pop("evaluate", None)

            return undo
        if kind == "pair_classification":
            row = (args[1] if len(args) > 1 else kwargs["dataset"])[0]
            bucket["units"]["pair_hash"] = [
                unit_hash([a, b]) for a, b in zip(row["sentence1"], row["sentence2"], strict=True)
            ]
        if kind == "classification":
            data, split = args[1], args[2] if len(args) > 2 else kwargs.get("eval_split", "test")
            bucket["units"]["text_hash"] = [unit_hash(x) for x in data[split]["text"]]
        if kind == "multilabel":
            data, split = args[1], args[2] if len(args) > 2 else kwargs.get("eval_split", "test")
            bucket["units"]["test_index"] = list(range(len(data[split])))  # replaced where mteb subsamples
        return None

    def _after(self, kind: str, bucket: dict, out: Any) -> None:
        if kind == "clustering_fast":
            bucket["units"]["v_measures"] = {lvl: [float(v) for v in vs] for lvl, vs in out["v_measures"].items()}
        elif kind == "clustering":
            bucket["units"]["v_measures"] = [float(v) for v in out["v_measures"]]
        elif kind == "instruction_retrieval":
            from mteb.evaluation.evaluators import utils

            og, changed = bucket.pop("_runs")[:2]
            diff = bucket.pop("_diff")
            qids = [q for q, docs in diff.items() if docs]  # a query without changed judgements is not in mteb's table
            values = [float(utils.evaluate_change(og, changed, {q: diff[q]})["p-MRR"]) for q in qids]
            bucket["units"] = {"qid": qids, "value": values}

    def _close(self, task: Any, kind: str, buckets: list[dict], scores: dict) -> None:
        """Name each bucket of one `evaluate(split)` call by its subset (mteb fills `scores` in call order)."""
        keys = list(scores)
        if kind == "bitext" and len(buckets) == 1 and len(buckets[0]["units"].get("pairs", [])) > 1:
            one = buckets[0]  # parallel subsets: one call covers every subset, in mteb's pair order
            buckets = [dict(one, units={"pairs": [p]}) for p in one["units"]["pairs"]]
        if len(buckets) != len(keys):
            return  # not understood: no records for this split (the runner says so)
        for bucket, key in zip(buckets, keys, strict=True):
            bucket["subset"] = key
            bucket["mteb_main_score"] = float(scores[key]["main_score"])
            self.buckets.append(bucket)

    def cells(self) -> list[dict]:
        return [record_cell(b) for b in self.buckets]


# --------------------------------------------------------------------------- buckets -> record cells


def record_cell(bucket: dict) -> dict:
    """A bucket as a record cell: ids, data, the metric kind that resamples it (`store/metrics.py`) and how its
    main score is recomputed (`store/records.py`); `metric` None where no resampling kind fits the main score."""
    kind, units, main = bucket["type"], bucket["units"], bucket["main_score_name"]
    cell: dict[str, Any] = {k: bucket[k] for k in ("task", "split", "subset", "type", "main_score_name")}
    cell["mteb_main_score"] = bucket["mteb_main_score"]
    cell["round"] = None
    builder = _BUILDERS.get(kind)
    if "error" in bucket:
        metric, ids, data, extra = None, [], {}, {"why": f"capture failed: {bucket['error']}"}
    elif builder is None:
        metric, ids, data, extra = None, [], {}, {"why": f"{kind} tasks are not captured"}
    else:
        try:
            metric, ids, data, extra = builder(units, main)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            metric, ids, data, extra = None, [], {}, {"why": f"capture incomplete: {type(exc).__name__}: {exc}"}
    cell.update(metric=metric, ids=[str(i) for i in ids], data=data, **extra)
    return cell


def content_ids(hashes: list[str]) -> list[str]:
    """Unit ids from the units' content (`hash#k`, k counting repeats), so two runs pair the same texts whatever
    order their data files list them in."""
    seen: dict[str, int] = {}
    out = []
    for h in hashes:
        out.append(f"{h}#{seen.get(h, 0)}")
        seen[h] = seen.get(h, 0) + 1
    return out


def label_codes(gold: list, preds: list[list]) -> tuple[list[int], list[list[int]]]:
    """Labels (ints or strings) as integer codes over the sorted union, for the F1 kinds."""
    labels = sorted({str(x) for x in gold} | {str(x) for p in preds for x in p})
    code = {label: i for i, label in enumerate(labels)}
    return [code[str(x)] for x in gold], [[code[str(x)] for x in p] for p in preds]


def _retrieval(units: dict, main: str) -> tuple:
    if "value" not in units:
        return None, [], {}, {"why": f"main score {main}"}
    return "mean", units["qid"], {"value": units["value"]}, {"round": 5}  # mteb rounds the mean to 5 places


def _reranking(units: dict, main: str) -> tuple:
    if main != "map" or "ap" not in units:
        return None, [], {}, {"why": f"main score {main}"}
    return "mean", content_ids(units["query_hash"]), {"value": units["ap"]}, {}


def _sts(units: dict, main: str) -> tuple:
    if main != "cosine_spearman":
        return None, [], {}, {"why": f"main score {main}"}
    return "spearman", content_ids(units["pair_hash"]), {"pred": units["cosine"], "gold": units["gold"]}, {}


def _summarization(units: dict, main: str) -> tuple:
    from scipy.stats import spearmanr

    if main != "cosine_spearman":
        return None, [], {}, {"why": f"main score {main}"}
    bounds = np.cumsum(units["n_machine"])[:-1]
    cos, dot = np.split(np.asarray(units["cos_max"]), bounds), np.split(np.asarray(units["dot_max"]), bounds)
    ids, values = [], []
    for i, (gold, c, d) in enumerate(zip(units["gold"], cos, dot, strict=True)):
        if len(set(gold)) == 1 or len(set(d.tolist())) == 1 or len(set(c.tolist())) == 1:
            continue  # mteb skips a text whose gold or predictions are constant
        ids.append(i)
        values.append(float(spearmanr(gold, c.tolist()).statistic))
    return "mean", ids, {"value": values}, {}


def _pair_classification(units: dict, main: str) -> tuple:
    if main not in ("max_ap", "max_accuracy") or len(units.get("families", [])) != len(FAMILIES):
        return None, [], {}, {"why": f"main score {main}"}
    n = len(units["label"])
    data = {"scores": units["families"], "label": units["label"], "position": list(range(n))}
    return main, content_ids(units["pair_hash"]), data, {}


def _classification(units: dict, main: str) -> tuple:
    if "pred" not in units:
        return None, [], {}, {"why": "no predictions seen"}
    ids = content_ids(units["text_hash"])
    gold, pred = label_codes(units["gold"], units["pred"])
    data = {"gold": gold, "pred": pred}
    if main in ("f1", "f1_weighted"):
        return {"f1": "f1_macro", "f1_weighted": "f1_weighted"}[main], ids, data, {}
    if main != "accuracy":
        return None, ids, data, {"why": f"main score {main}"}
    data["correct"] = [(np.asarray(p) == np.asarray(gold)).astype(int).tolist() for p in pred]
    return "accuracy", ids, data, {}


def _multilabel(units: dict, main: str) -> tuple:
    if "pred" not in units:
        return None, [], {}, {"why": "no predictions seen"}
    gold = np.asarray(units["gold"])
    correct = [(np.asarray(p) == gold).all(axis=1).astype(int).tolist() for p in units["pred"]]
    data = {"gold": units["gold"], "pred": units["pred"]}
    if main != "accuracy":
        return None, units["test_index"], data, {"why": f"main score {main}"}
    return "accuracy", units["test_index"], {**data, "correct": correct}, {}


def _clustering_fast(units: dict, main: str) -> tuple:
    ids = [f"{lvl}#{i}" for lvl, vs in units["v_measures"].items() for i in range(len(vs))]
    return "mean", ids, {"value": list(itertools.chain.from_iterable(units["v_measures"].values()))}, {}


def _clustering(units: dict, main: str) -> tuple:
    return "mean", list(range(len(units["v_measures"]))), {"value": units["v_measures"]}, {}


def _bitext(units: dict, main: str) -> tuple:
    pairs = units.get("pairs") or []
    if len(pairs) != 1:
        return None, [], {}, {"why": "no pairs seen"}
    gold, pred = pairs[0]["gold"], pairs[0]["pred"]
    data = {"gold": gold, "pred": pred}
    if main == "f1":
        return "f1_weighted", list(range(len(gold))), {"gold": gold, "pred": [pred]}, {}
    if main != "accuracy":
        return None, list(range(len(gold))), data, {"why": f"main score {main}"}
    return (
        "mean",
        list(range(len(gold))),
        {**data, "value": [float(g == p) for g, p in zip(gold, pred, strict=True)]},
        {},
    )


def _instruction_retrieval(units: dict, main: str) -> tuple:
    return "mean", units.get("qid", []), {"value": units.get("value", [])}, {}


_BUILDERS = {
    "retrieval": _retrieval,
    "reranking": _reranking,
    "sts": _sts,
    "summarization": _summarization,
    "pair_classification": _pair_classification,
    "classification": _classification,
    "multilabel": _multilabel,
    "clustering_fast": _clustering_fast,
    "clustering": _clustering,
    "bitext": _bitext,
    "instruction_retrieval": _instruction_retrieval,
}
