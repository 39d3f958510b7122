"""Each score's own interval in a summary: a bootstrap of the units in the task's per-example records.

A task's score is the mean of its kept cells; each cell is resampled (its own seed, from the task, split and
subset) and the resamples are averaged by index, as the score averages the cells. Mean(Task) and
Mean(TaskType) get an interval when every task of the row has one (their units resampled jointly). Rows and tasks
without records (runs made before records existed, published trees) get none: never an invented interval.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..store.records import arrays, vouched_records
from .paired import MEAN_TASK, MEAN_TYPE, bootstrap_scores, combine, mean_weights, percentile_interval
from .summary import KEY, benchmark_cells

RESAMPLES = 2_000  # a summary's intervals: their bounds move by ~0.1 point between seeds at this size


def task_boot(
    folder: Path, task: str, kept: set[tuple[str, str]], scores: dict, resamples: int, seed: int
) -> np.ndarray | None:
    """The task's score on bootstrap resamples of its vouched records (None without them)."""
    cells, _ = vouched_records(folder, task, scores)
    chosen = [c for c in cells or [] if (c["split"], c["subset"]) in kept and c.get("metric")]
    covered = {(c["split"], c["subset"]) for c in chosen}
    if not chosen or covered != kept:
        return None
    boots = []
    for cell in chosen:
        kind, _, data = arrays(cell)
        boots.append(bootstrap_scores(kind, data, task=f"{cell['task']}/{cell['split']}/{cell['subset']}",
                                      resamples=resamples, seed=seed))  # fmt: skip
    return np.mean(boots, axis=0)


def score_intervals(
    cells: pd.DataFrame,
    per_task: pd.DataFrame,
    benchmark: str,
    duplicates: str = "last",
    resamples: int = RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per task (KEY, task, ci_low, ci_high) and per row (KEY, the means' ci columns), as fractions."""
    keep = benchmark_cells(benchmark, duplicates)
    kept = {t: set(zip(g["split"], g["subset"], strict=True)) for t, g in keep.groupby("task")}
    types = dict(zip(keep["task"], keep["task_type"], strict=True))
    folders = cells.groupby([*KEY, "task"])["folder"].last()
    written = {
        key: dict(zip(zip(g["split"], g["subset"], strict=True), g["main_score"], strict=True))
        for key, g in cells.groupby([*KEY, "task"])
    }
    task_rows, mean_rows = [], []
    for key, group in per_task.groupby(KEY, sort=False):
        boots = {}
        for task, score in zip(group["task"], group["score"], strict=True):
            folder = folders.get((*key, task))
            boot = None
            if folder is not None and not math.isnan(score):
                boot = task_boot(Path(folder), task, kept[task], written.get((*key, task), {}), resamples, seed)
            low, high = percentile_interval(boot, alpha) if boot is not None else (math.nan, math.nan)
            task_rows.append((*key, task, low, high))
            if boot is not None:
                boots[task] = boot
        mean_rows.append((*key, *_mean_intervals(list(group["task"]), boots, types, alpha)))
    tasks = pd.DataFrame(task_rows, columns=[*KEY, "task", "ci_low", "ci_high"])
    means = pd.DataFrame(
        mean_rows,
        columns=[*KEY, "mean_task_ci_low", "mean_task_ci_high", "mean_task_type_ci_low", "mean_task_type_ci_high"],
    )
    return tasks, means


def _mean_intervals(
    tasks: list[str], boots: dict[str, np.ndarray], types: dict[str, str], alpha: float
) -> tuple[float, float, float, float]:
    if not tasks or set(boots) != set(tasks):
        return (math.nan,) * 4
    weights = mean_weights({task: types[task] for task in tasks})
    return (
        *percentile_interval(combine(weights[MEAN_TASK], boots), alpha),
        *percentile_interval(combine(weights[MEAN_TYPE], boots), alpha),
    )
