"""The batch size the reference scripts got from mteb 1.38.30, task by task (FACTS §1, §3).

The reference calls `evaluation.run(model, output_folder=...)` without `encode_kwargs`, so every task of
the process shares mteb's default `encode_kwargs={}` (one dict object, the signature's default). Some
evaluators write a `batch_size` into that dict when the key is missing (`if "batch_size" not in
encode_kwargs`), others only pass it on; the reference embedder's `_encode` falls back to its own 32
while the dict has none. So the first writing evaluator of the process fixes the batch size of every
later task, and of its own: for the full MTEB(eng, v2) run that is ArguAna (retrieval, 128), for
MTEB(cmn, v1) T2Retrieval (retrieval, 128) -- 128 for every task of both. Read from mteb 1.38.30
`evaluation/evaluators/*Evaluator.py`; pinned by tests/test_embedder.py against mteb itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

EMBEDDER_DEFAULT = 32  # the reference embedder's `_encode(batch_size=32)`
# abstask class -> the batch_size its evaluator writes into a shared encode_kwargs without one.
# AbsTaskSTS, AbsTaskClusteringFast, AbsTaskBitextMining, AbsTaskMultilabelClassification write none.
WRITERS = {
    "AbsTaskRetrieval": 128,  # RetrievalEvaluator
    "AbsTaskInstructionRetrieval": 128,  # InstructionRetrievalEvaluator(RetrievalEvaluator)
    "AbsTaskReranking": 512,  # RerankingEvaluator
    "AbsTaskClassification": 32,  # logReg / kNN ClassificationEvaluator
    "AbsTaskClustering": 32,  # ClusteringEvaluator (the legacy, non-"Fast" clustering)
    "AbsTaskPairClassification": 32,  # PairClassificationEvaluator
    "AbsTaskSummarization": 32,  # SummarizationEvaluator
}


def written_default(task: Any) -> int | None:
    """The batch size `task`'s evaluator writes into a shared encode_kwargs, or None if it writes none."""
    for cls in type(task).__mro__:
        if cls.__name__ in WRITERS:
            return WRITERS[cls.__name__]
    return None


def reference_batch_sizes(tasks_in_process_order: Iterable[Any]) -> dict[str, int]:
    """Task name -> the batch size the reference got for it, when its process ran these tasks in this order."""
    shared: int | None = None
    out: dict[str, int] = {}
    for task in tasks_in_process_order:
        if shared is None:
            shared = written_default(task)
        out.setdefault(task.metadata.name, shared or EMBEDDER_DEFAULT)
    return out


def batch_size_for(config: Any, task_name: str) -> int:
    """The `encode_kwargs["batch_size"]` the runner hands mteb for `task_name` (a fresh dict per task).

    With sort_by="reference": what the reference got in its own process, which ran the whole benchmark in
    mteb's order (or, without a benchmark, the --tasks in the order given), whatever part of it runs now,
    so a resumed or sharded run batches as the full run did. Otherwise the configured batch size.
    """
    if config.sort_by != "reference":
        return config.batch_size
    return _process_sizes(config.benchmark, tuple(config.tasks))[task_name]


@cache
def _process_sizes(benchmark: str | None, tasks: tuple[str, ...]) -> dict[str, int]:
    import mteb

    from .tasks import benchmark_entries

    order = benchmark_entries(benchmark) if benchmark is not None else [mteb.get_task(name) for name in tasks]
    return reference_batch_sizes(order)
