"""The batch size each task is encoded with, and why: the plan records both (FACTS §1, §3).

With `--sort_by tokens` or `chars` it is `--batch_size`. With `--sort_by reference` it is what the reference
scripts got from mteb 1.38.30, task by task:

The reference calls `evaluation.run(model, output_folder=...)` without `encode_kwargs`, so every task of
the process shares mteb's default `encode_kwargs={}` (one dict object, the signature's default). Some
evaluators write a `batch_size` into that dict when the key is missing (`if "batch_size" not in
encode_kwargs`), others only pass it on; the reference embedder's `_encode` falls back to its own 32
while the dict has none. So the first writing evaluator of the process fixes the batch size of every
later task, and of its own: for the full MTEB(eng, v2) run that is ArguAna (retrieval, 128), for
MTEB(cmn, v1) T2Retrieval (retrieval, 128) -- 128 for every task of both. Read from mteb 1.38.30
`evaluation/evaluators/*Evaluator.py`; pinned by tests/test_embedder.py against mteb itself.

With a benchmark, the reference process ran the whole benchmark in mteb's order, whatever part of it runs
now, so a resumed or sharded run batches as the full run did. Without one, there is no reference order:
each task gets what it would get alone in a fresh process, so the order of `--tasks` never changes a batch.
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
    """The batch size `task`'s evaluator writes into a shared encode_kwargs, or None if it writes none (an
    aggregate: its first subtask's, since mteb runs the subtasks with the same dict)."""
    if getattr(task, "is_aggregate", False):
        return written_default(task.metadata.tasks[0])
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


def batch_size_for(config: Any, task_name: str) -> tuple[int, str]:
    """The batch size every encode call of `task_name` gets, and the reason (recorded in the plan)."""
    if config.sort_by != "reference":
        return config.batch_size, "--batch_size"
    if config.benchmark is not None:
        sizes, first = _benchmark_sizes(config.benchmark)
        why = f"the first writer {first}" if first else "no evaluator writes one: the reference embedder's default"
        return sizes[task_name], f"reference: {config.benchmark} in one process in mteb's order; {why}"
    import mteb

    own = written_default(mteb.get_task(task_name))
    if own is None:
        return EMBEDDER_DEFAULT, "reference: the task alone in a process; its evaluator writes none (embedder default)"
    return own, "reference: the task alone in a process; its evaluator writes this size"


@cache
def _benchmark_sizes(benchmark: str) -> tuple[dict[str, int], str | None]:
    from ..recipe.benchmarks import benchmark_entries

    order = benchmark_entries(benchmark)
    first = next((t for t in order if written_default(t) is not None), None)
    label = f"{first.metadata.name} ({written_default(first)})" if first is not None else None
    return reference_batch_sizes(order), label
