"""Which mteb tasks (with which splits and subsets) a run evaluates.

Splits and subsets come from mteb's own objects, never from a hand list: with a benchmark, from the
benchmark's task objects (a task it lists twice, like C-MTEB's MultilingualSentiment on test and on
validation, runs once over the union of its splits, giving one result file); without one, from the
task's own metadata (its eval splits and every subset). Any of mteb 1.38.30's benchmarks and tasks works.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from functools import cache
from typing import Any

from .errors import UserError

# the two seed scripts, for "run it with the other script" hints
SEED_SCRIPTS = {"MTEB(eng, v2)": "run_mteb_all_v2.py", "MTEB(cmn, v1)": "run_cmteb_all.py"}


@dataclass(frozen=True)
class BenchmarkTask:
    name: str
    type: str
    splits: tuple[str, ...]
    subsets: tuple[str, ...]
    main_score: str
    dataset_path: str
    benchmark: str | None = None  # None: the task's own splits and subsets


@cache
def _benchmark(name: str) -> Any:
    import mteb

    try:
        return mteb.get_benchmark(name)
    except Exception:  # noqa: BLE001 - mteb raises a bare KeyError/ValueError with a long message
        known = [b.name for b in mteb.get_benchmarks()]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(f"unknown benchmark {name!r}.{hint} ({len(known)} benchmarks in mteb 1.38.30)") from None


def benchmark_entries(name: str) -> list[Any]:
    """The benchmark's task objects as mteb lists them (duplicates included), in its order."""
    return list(_benchmark(name).tasks)


def all_task_names() -> list[str]:
    from mteb.overview import TASKS_REGISTRY

    return sorted(TASKS_REGISTRY)


@cache
def benchmark_tasks(name: str) -> dict[str, BenchmarkTask]:
    """Task name -> the union of the (split, subset) cells the benchmark keeps for it."""
    out: dict[str, BenchmarkTask] = {}
    for t in benchmark_entries(name):
        prev = out.get(t.metadata.name)
        splits = tuple(dict.fromkeys((prev.splits if prev else ()) + tuple(t.eval_splits)))
        subsets = tuple(dict.fromkeys((prev.subsets if prev else ()) + tuple(t.hf_subsets)))
        out[t.metadata.name] = BenchmarkTask(
            t.metadata.name, t.metadata.type, splits, subsets, t.metadata.main_score, t.metadata.dataset["path"], name
        )
    return out


def standalone_task(name: str) -> BenchmarkTask:
    """A task outside any benchmark: its own eval splits and every subset."""
    import mteb

    if name not in all_task_names():
        raise UserError(unknown_task_message(name, None))
    t = mteb.get_task(name)
    meta = t.metadata
    splits, subsets = tuple(t.eval_splits), tuple(t.hf_subsets)
    return BenchmarkTask(name, meta.type, splits, subsets, meta.main_score, meta.dataset["path"])


def parse_task_list(values: list[str] | None) -> tuple[str, ...]:
    """`--tasks A B,C` -> ("A", "B", "C"), order kept, duplicates dropped; `--tasks ,` is an error."""
    if values is None:
        return ()
    names: list[str] = []
    for value in values:
        names.extend(part.strip() for part in value.split(","))
    out = tuple(dict.fromkeys(n for n in names if n))
    if not out:
        raise UserError(f"--tasks names no task: {' '.join(values)!r}")
    return out


def unknown_task_message(task: str, benchmark: str | None) -> str:
    """Close matches, and the right command when the task belongs elsewhere."""
    if benchmark is not None and task in all_task_names():
        owners = [b for b in SEED_SCRIPTS if b != benchmark and task in benchmark_tasks(b)]
        where = f"it belongs to {owners[0]}: run it with {SEED_SCRIPTS[owners[0]]}" if owners else ""
        alone = f"`python -m qzhou_eval run --tasks {task}` runs it on its own"
        return f"task {task!r} is not in {benchmark}; {where + ', or ' if where else ''}{alone}"
    pool = list(benchmark_tasks(benchmark)) if benchmark is not None else all_task_names()
    close = difflib.get_close_matches(task, pool, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    where = f"for {benchmark}" if benchmark is not None else "in mteb 1.38.30"
    listing = f"{len(pool)} tasks; see `python -m qzhou_eval prompts`"
    return f"unknown task {task!r} {where}.{hint} ({listing})"


def select_specs(benchmark: str | None, requested: tuple[str, ...]) -> list[BenchmarkTask]:
    """Validate names (before any model loads) and return what runs; no names = the whole benchmark."""
    if benchmark is None:
        if not requested:
            raise UserError("name a --benchmark, or the --tasks to run")
        return [standalone_task(name) for name in requested]
    known = benchmark_tasks(benchmark)
    if not requested:
        return list(known.values())
    for name in requested:
        if name not in known:
            raise UserError(unknown_task_message(name, benchmark))
    return [known[name] for name in requested]


def task_object(spec: BenchmarkTask) -> Any:
    """A private copy of the task object mteb evaluates, restricted to the spec's splits."""
    import mteb

    if spec.benchmark is None:
        task = copy.deepcopy(mteb.get_task(spec.name))
    else:
        base = next(t for t in benchmark_entries(spec.benchmark) if t.metadata.name == spec.name)
        task = copy.deepcopy(base)
    task._eval_splits = list(spec.splits)
    return task
