"""Which mteb tasks (with which splits and subsets) a run evaluates.

Splits and subsets come from mteb's own benchmark objects, never from a hand list. A benchmark may
list a task twice with different splits (C-MTEB's MultilingualSentiment: test and validation); it
is run once over the union of its splits, giving one result file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

from .errors import UserError
from .instructions import InstructionTable, unknown_task_message


@dataclass(frozen=True)
class BenchmarkTask:
    name: str
    type: str
    splits: tuple[str, ...]
    subsets: tuple[str, ...]
    main_score: str
    dataset_path: str


@cache
def _benchmark(name: str) -> Any:
    import mteb

    try:
        return mteb.get_benchmark(name)
    except Exception:  # noqa: BLE001 - mteb raises a bare KeyError/ValueError with a long message
        raise UserError(f"unknown benchmark {name!r}") from None


def benchmark_entries(name: str) -> list[Any]:
    """The benchmark's task objects as mteb lists them (duplicates included), in its order."""
    return list(_benchmark(name).tasks)


def benchmark_tasks(name: str) -> dict[str, BenchmarkTask]:
    """Task name -> the union of the (split, subset) cells the benchmark keeps for it."""
    out: dict[str, BenchmarkTask] = {}
    for t in benchmark_entries(name):
        prev = out.get(t.metadata.name)
        splits = tuple(dict.fromkeys((prev.splits if prev else ()) + tuple(t.eval_splits)))
        subsets = tuple(dict.fromkeys((prev.subsets if prev else ()) + tuple(t.hf_subsets)))
        out[t.metadata.name] = BenchmarkTask(
            t.metadata.name, t.metadata.type, splits, subsets, t.metadata.main_score, t.metadata.dataset["path"]
        )
    return out


def parse_task_list(values: list[str] | None) -> tuple[str, ...]:
    """`--tasks A B,C` -> ("A", "B", "C"), order kept, duplicates dropped."""
    names: list[str] = []
    for value in values or []:
        names.extend(part.strip() for part in value.split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def select(benchmark: str, requested: tuple[str, ...], table: InstructionTable) -> list[str]:
    """Validate names against the benchmark (before any model loads); empty = all tasks."""
    known = benchmark_tasks(benchmark)
    if not requested:
        return list(known)
    for name in requested:
        if name not in known:
            raise UserError(unknown_task_message(name, table))
    return list(requested)


def task_object(benchmark: str, name: str) -> Any:
    """A private copy of the benchmark's task object, restricted to the benchmark's splits/subsets."""
    spec = benchmark_tasks(benchmark)[name]
    base = next(t for t in benchmark_entries(benchmark) if t.metadata.name == name)
    task = copy.deepcopy(base)
    task._eval_splits = list(spec.splits)
    return task
