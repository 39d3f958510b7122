"""Is model B better than baseline A? Task by task and for every mean, with paired intervals and tests.

For each task both models have, the scores come from the result files (as `summarize` reads them) and
Δ = model − baseline. Where both models kept per-example records (`store/records.py`), the same units are
resampled for both: a paired bootstrap gives Δ's interval, a paired approximate randomization test its p-value
(`paired.py`), and Holm's correction over the tasks compared says which Δ hold. A task with several cells (split,
subset; an aggregate's subtasks) combines its cells' resamples by index, as its score averages the cells.

The means (Mean(Task), Mean(TaskType), each type) get two intervals: one from resampling the units of every task
jointly (how much this test set's examples move the mean), one from resampling the tasks themselves (how much the
mean depends on which tasks the benchmark holds). Neither covers batching or bf16 noise (a separate, smaller floor:
README "Batching noise floor"). Without records in either model a task gets Δ only, and the row says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..store.records import arrays, vouched_records
from .paired import (
    MEAN_TASK,
    MEAN_TYPE,
    combine,
    holm,
    mean_weights,
    percentile_interval,
    randomization_p_value,
    summarize_means,
)
from .paired import compare as compare_records
from .summary import benchmark_cells, load_tree, merge_cells

COLUMNS = [
    "baseline",
    "model",
    "task",
    "task_type",
    "score_baseline",
    "score_model",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "task_ci_low",
    "task_ci_high",
    "n_units",
    "note",
]
NO_RECORDS = "no per-example records"


@dataclass
class ModelRun:
    """One (model, revision) of the result trees: its per-task scores and where its files are."""

    model: str
    revision: str
    scores: dict[str, float] = field(default_factory=dict)  # fraction; NaN when a kept cell is missing
    folders: dict[str, Path] = field(default_factory=dict)
    cells: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)  # task -> the result file's cells

    @property
    def label(self) -> str:
        return f"{self.model}@{self.revision[:12]}"


@dataclass
class TaskResult:
    task: str
    task_type: str
    score_a: float
    score_b: float
    delta: float
    ci: tuple[float, float] | None = None
    p_value: float = math.nan
    boot: np.ndarray | None = None
    n_units: int = 0
    note: str = ""


def kept_cells(benchmark: str | None, tasks: tuple[str, ...], duplicates: str) -> pd.DataFrame:
    """task, task_type, split, subset: the cells whose mean is a task's score (a benchmark's, else the task's own)."""
    if benchmark is not None:
        cells = benchmark_cells(benchmark, duplicates)
        return cells[cells["task"].isin(tasks)] if tasks else cells
    from ..recipe.benchmarks import standalone_task

    rows = []
    for name in tasks:
        spec = standalone_task(name)
        rows += [(name, spec.type, split, subset) for split in spec.splits for subset in spec.subsets]
    return pd.DataFrame(rows, columns=["task", "task_type", "split", "subset"])


def resolve_models(cells: pd.DataFrame, specs: list[str]) -> list[tuple[str, str]]:
    """`org/name` or `org/name@revision` (a prefix) -> one (model, revision) each, or an error naming what exists."""
    pairs = list(dict.fromkeys(zip(cells["model"], cells["revision"], strict=True)))
    listed = ", ".join(f"{m}@{r[:12]}" for m, r in pairs) or "none"
    out = []
    for spec in specs:
        name, _, revision = spec.partition("@")
        chosen = [(m, r) for m, r in pairs if m == name and r.startswith(revision)]
        if not chosen:
            raise UserError(f"--models {spec}: not in the result trees; they hold: {listed}")
        if len(chosen) > 1:
            revs = ", ".join(r[:12] for _, r in chosen)
            raise UserError(f"--models {spec}: several revisions ({revs}); name one as {name}@REVISION")
        out.append(chosen[0])
    if len(set(out)) < len(out):
        raise UserError("--models names the same model twice")
    return out


def model_runs(results_dirs: list[str], specs: list[str], keep: pd.DataFrame) -> list[ModelRun]:
    everything = pd.concat([load_tree(d) for d in results_dirs], ignore_index=True)
    chosen = resolve_models(everything, specs)  # a model is found by name whatever tasks it holds
    cells = everything[everything["task"].isin(set(keep["task"]))]
    runs = []
    for model, revision in chosen:
        mine = merge_cells(cells[(cells["model"] == model) & (cells["revision"] == revision)])
        run = ModelRun(model, revision)
        for task, group in keep.groupby("task", sort=False):
            have = mine.merge(group[["task", "split", "subset"]], on=["task", "split", "subset"], how="inner")
            complete = len(have) == len(group)
            run.scores[task] = float(have["main_score"].mean()) if complete else math.nan
            if len(have):
                run.folders[task] = Path(have["folder"].iloc[-1])
                mine_all = mine[mine["task"] == task]
                keys = zip(mine_all["split"], mine_all["subset"], strict=True)
                run.cells[task] = dict(zip(keys, mine_all["main_score"], strict=True))
        runs.append(run)
    return runs


def _task_records(run: ModelRun, task: str, kept: set[tuple[str, str]]) -> tuple[dict | None, str]:
    """(cell key -> record cell) of the task's kept cells, or None and why not."""
    folder = run.folders.get(task)
    cells, why = vouched_records(folder, task, run.cells.get(task, {})) if folder is not None else (None, NO_RECORDS)
    if cells is None:
        return None, f"{why} for {run.label}"
    chosen = {(c["task"], c["split"], c["subset"]): c for c in cells if (c["split"], c["subset"]) in kept}
    if {(k[1], k[2]) for k in chosen} != kept:
        return None, f"{NO_RECORDS} for {run.label} in every cell that counts"
    unresampled = sorted({c.get("why", "") for c in chosen.values() if not c.get("metric")})
    if unresampled:
        return None, f"records of {run.label} are not resampled ({'; '.join(unresampled)})"
    return chosen, ""


def compare_task(
    task: str, task_type: str, kept: set[tuple[str, str]], a: ModelRun, b: ModelRun, options: dict[str, Any]
) -> TaskResult:
    result = TaskResult(task, task_type, a.scores[task], b.scores[task], b.scores[task] - a.scores[task])
    rec_a, why_a = _task_records(a, task, kept)
    rec_b, why_b = _task_records(b, task, kept)
    if rec_a is None or rec_b is None:
        result.note = "; ".join(w for w in (why_a, why_b) if w)
        return result
    if set(rec_a) != set(rec_b):
        result.note = "the two models' records hold different cells"
        return result
    parts = []
    try:
        for key in sorted(rec_a):
            _, ids_a, data_a = arrays(rec_a[key])
            _, ids_b, data_b = arrays(rec_b[key])
            kind = rec_a[key]["metric"]
            parts.append(compare_records("/".join(key), (kind, ids_a, data_a), (kind, ids_b, data_b), **options))
    except UserError as exc:  # records that do not pair (other data, other units): this task gets Δ only
        result.note = f"records do not pair: {exc}"
        return result
    result.boot = np.mean([p.boot_deltas for p in parts], axis=0)
    result.ci = percentile_interval(result.boot, options["alpha"])
    perm = np.mean([p.perm_deltas for p in parts], axis=0)
    result.p_value = randomization_p_value(float(np.mean([p.delta for p in parts])), perm)
    result.n_units = sum(p.n for p in parts)
    unpaired = sum(p.n_only_a + p.n_only_b for p in parts)
    if unpaired:
        result.note = f"{unpaired} units in one model's records only (left out)"
    return result


def compare_pair(
    keep: pd.DataFrame, a: ModelRun, b: ModelRun, options: dict[str, Any], complete_means: bool
) -> pd.DataFrame:
    """Rows for every task both models have, then the means; in points (100 x), as the leaderboard shows."""
    types = dict(zip(keep["task"], keep["task_type"], strict=True))
    results, absent = [], []
    for task, group in keep.groupby("task", sort=False):
        lacking = [run.label for run in (a, b) if math.isnan(run.scores.get(task, math.nan))]
        if lacking:
            absent.append(_absent_row(a, b, task, types[task], lacking))
            continue
        kept = set(zip(group["split"], group["subset"], strict=True))
        results.append(compare_task(task, types[task], kept, a, b, options))
    significant = holm({r.task: r.p_value for r in results}, options["alpha"])
    rows = [_task_row(a, b, r, significant[r.task]) for r in results]
    rows += absent if not complete_means else []  # with a benchmark, the summary's missing list says it
    rows += _mean_rows(keep, a, b, results, options, complete_means)
    return pd.DataFrame(rows, columns=COLUMNS)


def _absent_row(a: ModelRun, b: ModelRun, task: str, task_type: str, lacking: list[str]) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS, math.nan)
    row.update(baseline=a.label, model=b.label, task=task, task_type=task_type, significant=None, n_units=0)
    row.update(score_baseline=_points(a.scores.get(task)), score_model=_points(b.scores.get(task)))
    row["note"] = f"no complete result for {' and '.join(lacking)}: not compared"
    return row


def _points(x: float | None) -> float:
    return math.nan if x is None or (isinstance(x, float) and math.isnan(x)) else 100.0 * x


def _task_row(a: ModelRun, b: ModelRun, r: TaskResult, significant: bool) -> dict[str, Any]:
    low, high = r.ci if r.ci is not None else (math.nan, math.nan)
    return {
        "baseline": a.label,
        "model": b.label,
        "task": r.task,
        "task_type": r.task_type,
        "score_baseline": _points(r.score_a),
        "score_model": _points(r.score_b),
        "delta": _points(r.delta),
        "ci_low": _points(low),
        "ci_high": _points(high),
        "p_value": r.p_value,
        "significant": bool(significant) if not math.isnan(r.p_value) else None,
        "task_ci_low": math.nan,
        "task_ci_high": math.nan,
        "n_units": r.n_units,
        "note": r.note,
    }


def _mean_rows(
    keep: pd.DataFrame, a: ModelRun, b: ModelRun, results: list[TaskResult], options: dict, complete: bool
) -> list[dict[str, Any]]:
    needed = list(dict.fromkeys(keep["task"]))
    have = {r.task: r for r in results}
    missing = [t for t in needed if t not in have]
    if not results or (complete and missing):
        note = f"{len(missing)} of {len(needed)} tasks missing in one model: no mean (leaderboard rule)"
        return [_empty_mean(a, b, column, note) for column in (MEAN_TASK, MEAN_TYPE)]
    types = {t: have[t].task_type for t in have}
    summaries = summarize_means(
        {t: have[t].delta for t in have},
        types,
        {t: have[t].boot for t in have if have[t].boot is not None},
        resamples=options["resamples"],
        seed=options["seed"],
        alpha=options["alpha"],
    )
    weights = mean_weights(types)
    rows = []
    for column, summary in summaries.items():
        scores_a = combine(weights[column], {t: have[t].score_a for t in have})
        scores_b = combine(weights[column], {t: have[t].score_b for t in have})
        members = list(weights[column])
        without = [t for t in members if have[t].boot is None]
        note = (
            f"{NO_RECORDS} for {len(without)} of {len(members)} tasks: task-resampling interval only" if without else ""
        )
        if missing and not complete:
            note = "; ".join(filter(None, [note, f"over the {len(have)} tasks both have, not {', '.join(missing)}"]))
        unit = summary.unit_ci or (math.nan, math.nan)  # every task of the column resampled jointly, or none
        rows.append(
            {
                "baseline": a.label,
                "model": b.label,
                "task": column,
                "task_type": "mean",
                "score_baseline": _points(scores_a),
                "score_model": _points(scores_b),
                "delta": _points(summary.delta),
                "ci_low": _points(unit[0]),
                "ci_high": _points(unit[1]),
                "p_value": math.nan,
                "significant": None,
                "task_ci_low": _points(summary.task_ci[0]),
                "task_ci_high": _points(summary.task_ci[1]),
                "n_units": sum(have[t].n_units for t in members),
                "note": note,
            }
        )
    return rows


def _empty_mean(a: ModelRun, b: ModelRun, column: str, note: str) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS, math.nan)
    row.update(baseline=a.label, model=b.label, task=column, task_type="mean", significant=None, note=note)
    row["n_units"] = 0
    return row


def verdict(frame: pd.DataFrame) -> list[str]:
    """One line per model pair and mean: Δ, the unit interval, the task interval, how many tasks hold."""
    lines = []
    for (base, model), rows in frame.groupby(["baseline", "model"], sort=False):
        tasks = rows[rows["task_type"] != "mean"]
        tested = tasks["p_value"].notna().sum()
        held = int((tasks["significant"] == True).sum())  # noqa: E712 - a column of True / False / None
        for _, row in rows[rows["task"].isin([MEAN_TASK, MEAN_TYPE])].iterrows():
            if math.isnan(row["delta"]):
                lines.append(f"{model} − {base}: no {row['task']} ({row['note']})")
                continue
            unit = "" if math.isnan(row["ci_low"]) else f" [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] over units;"
            lines.append(
                f"{model} − {base}: {row['delta']:+.2f}{unit} [{row['task_ci_low']:+.2f}, {row['task_ci_high']:+.2f}] "
                f"over tasks, on {row['task']}; {held} of {len(tasks)} tasks hold after Holm ({tested} tested)"
            )
    return lines
