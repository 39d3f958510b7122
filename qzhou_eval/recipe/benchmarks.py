"""What a benchmark is: which mteb tasks (with which splits and subsets) a run evaluates and a table counts.

Splits and subsets come from mteb's own objects, never from a hand list: with a benchmark, from the
benchmark's task objects (a task it lists twice, like C-MTEB's MultilingualSentiment on test and on
validation, runs once over the union of its splits, giving one result file); without one, from the
task's own metadata (its eval splits and every subset). Any of mteb 1.38.30's benchmarks and tasks works.

Aggregate tasks (CQADupstackRetrieval, CQADupstackRetrieval-Fa, CQADupstack-NL,
SynPerChatbotConvSAClassification) have no data of their own: mteb runs each of their subtasks and
averages. A `BenchmarkTask` of an aggregate lists its subtasks, so data (`--data_dir` folders), prefixes,
the cache and the manifest follow the subtasks mteb really runs.

The summary reads benchmark definitions as data (`data/benchmark_cells.json.gz`, made from the installed
mteb by `data/make_benchmark_cells.py`), since importing mteb costs 10 s and a summary needs none of it.
"""

from __future__ import annotations

import copy
import difflib
import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import metadata as package_metadata
from typing import Any

from ..errors import UserError
from ..files import REPO_ROOT

SNAPSHOT = REPO_ROOT / "data" / "benchmark_cells.json.gz"

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
    subtasks: tuple[BenchmarkTask, ...] = ()  # an aggregate's: mteb runs these and averages them

    @property
    def names(self) -> tuple[str, ...]:
        """The task names mteb encodes under (`task_name` in encode): the subtasks of an aggregate, else itself."""
        return tuple(t.name for t in self.subtasks) or (self.name,)

    @property
    def dataset_paths(self) -> tuple[str, ...]:
        return tuple(t.dataset_path for t in self.subtasks) or (self.dataset_path,)


def _spec(t: Any, benchmark: str | None, splits: tuple[str, ...] | None = None, subsets: tuple[str, ...] | None = None):
    """A BenchmarkTask of an mteb task object (an aggregate with its subtasks)."""
    meta = t.metadata
    subtasks = tuple(_spec(sub, None) for sub in meta.tasks) if getattr(t, "is_aggregate", False) else ()
    return BenchmarkTask(
        meta.name,
        meta.type,
        tuple(t.eval_splits) if splits is None else splits,
        tuple(t.hf_subsets) if subsets is None else subsets,
        meta.main_score,
        meta.dataset["path"],
        benchmark,
        subtasks,
    )


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
        out[t.metadata.name] = _spec(t, name, splits, subsets)
    return out


def standalone_task(name: str) -> BenchmarkTask:
    """A task outside any benchmark: its own eval splits and every subset."""
    import mteb

    if name not in all_task_names():
        raise UserError(unknown_task_message(name, None))
    return _spec(mteb.get_task(name), None)


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
    """A private copy of the task object mteb evaluates, restricted to the spec's splits. An aggregate gets
    private copies of its metadata and subtasks too (mteb shares them between every instance)."""
    import mteb

    if spec.benchmark is None:
        task = copy.deepcopy(mteb.get_task(spec.name))
    else:
        base = next(t for t in benchmark_entries(spec.benchmark) if t.metadata.name == spec.name)
        task = copy.deepcopy(base)
    if getattr(task, "is_aggregate", False):
        task.metadata = task.metadata.model_copy(deep=True)
        task.metadata.tasks = [copy.deepcopy(sub) for sub in task.metadata.tasks]
        task.tasks = task.metadata.tasks
    task._eval_splits = list(spec.splits)
    return task


def leaf_tasks(task: Any) -> list[Any]:
    """The task objects mteb encodes for: an aggregate's subtasks, else the task itself."""
    return list(task.metadata.tasks) if getattr(task, "is_aggregate", False) else [task]


# ---------------------------------------------------------------- benchmark definitions as data (summaries)


def listing_from_mteb(name: str) -> list[list[Any]]:
    """[task, type, eval splits, hf_subsets] per entry of mteb's benchmark object, in its order, duplicates
    included."""
    return [
        [t.metadata.name, t.metadata.type, list(t.eval_splits), list(t.hf_subsets)] for t in benchmark_entries(name)
    ]


def names_from_mteb() -> tuple[list[str], dict[str, str]]:
    """Every benchmark name mteb knows, and its map of old names to current ones."""
    import mteb

    try:
        from mteb.benchmarks.get_benchmark import PREVIOUS_BENCHMARK_NAMES as previous
    except ImportError:  # pragma: no cover - the pinned mteb has it
        previous = {}
    return [b.name for b in mteb.get_benchmarks()], dict(previous)


@cache
def benchmark_snapshot() -> dict[str, Any] | None:
    """mteb's benchmark definitions as data, used only when made from the installed mteb version."""
    try:
        snap = json.loads(gzip.decompress(SNAPSHOT.read_bytes()))
        installed = package_metadata.version("mteb")
    except (OSError, ValueError, package_metadata.PackageNotFoundError):
        return None
    return snap if snap.get("mteb_version") == installed else None


def benchmark_listing(name: str) -> list[list[Any]]:
    snap = benchmark_snapshot()
    return snap["benchmarks"][name] if snap else listing_from_mteb(name)


def canonical_benchmark(name: str) -> str:
    """The registry name of an mteb benchmark (old names map to new ones); unknown names get close matches."""
    if not name:
        raise UserError("a summary needs --benchmark NAME (any mteb benchmark)")
    snap = benchmark_snapshot()
    known, previous = (list(snap["benchmarks"]), snap["previous_names"]) if snap else names_from_mteb()
    if name in known:
        return name
    if name in previous:
        return previous[name]
    lowered = {**{old.lower(): new for old, new in previous.items()}, **{n.lower(): n for n in known}}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.6)
    close = list(dict.fromkeys(lowered[c] for c in matches))[:3]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known)}"
    raise UserError(f"unknown benchmark {name!r}; {hint}")
