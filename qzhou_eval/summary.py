"""Result trees -> leaderboard numbers, with the mteb 1.38.30 leaderboard's formulas in our own pandas.

Formulas (FACTS §2, mteb 1.38.30 `leaderboard/table.py`):
- a task's score is the mean of `main_score` over the (split, subset) cells the benchmark keeps
  (taken from mteb's benchmark objects) that the result file holds;
- Mean(Task) is the mean over the benchmark's tasks, Mean(TaskType) the unweighted mean of the
  per-type means; a missing task makes its type mean and both overall means missing (skipna=False),
  never a smaller average;
- a task the benchmark lists twice (C-MTEB's MultilingualSentiment, test and validation) counts once:
  `validation` keeps the benchmark's last entry (its validation split, as 1.38.30's leaderboard does),
  `mean` averages the cells of every entry (as mteb 2.x does).
Scores are kept as fractions here; `points` turns them into the displayed `round(100 * x, 2)`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError

log = logging.getLogger("qzhou_eval")
DUPLICATE_RULES = ("validation", "mean")
CELL_COLUMNS = ["model", "revision", "task", "split", "subset", "main_score"]
SKIP_FILES = {"model_meta.json", "qzhou_eval_manifest.json"}


def points(x: float | pd.Series) -> float | pd.Series:
    return np.round(100 * x, 2)


# ---------------------------------------------------------------- reading


def _cells_from_scores(model: str, revision: str, task: str, scores: dict) -> list[tuple]:
    return [
        (model, revision, task, split, entry.get("hf_subset", "default"), float(entry["main_score"]))
        for split, entries in scores.items()
        for entry in entries
        if entry.get("main_score") is not None
    ]


def _read_result(path: Path) -> tuple[str, dict] | None:
    """(task name, scores) of one result file; old (pre-1.11) layouts go through mteb's converter."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        log.warning("skipping unreadable result file %s", path)
        return None
    if not isinstance(raw, dict):
        return None
    if "task_name" in raw and isinstance(raw.get("scores"), dict):
        return raw["task_name"], raw["scores"]
    if "mteb_dataset_name" in raw or "mteb_version" in raw:
        try:
            from mteb.load_results.task_results import TaskResult

            result = TaskResult.from_disk(path)
            return result.task_name, result.scores
        except Exception:  # noqa: BLE001 - an unconvertible historic file is skipped, not fatal
            log.warning("skipping result file mteb cannot read: %s", path)
    return None


def _model_name(revision_dir: Path) -> str:
    meta = revision_dir / "model_meta.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text(encoding="utf-8")).get("name")
            if name:
                return name
        except (OSError, json.JSONDecodeError):
            pass
    return revision_dir.parent.name.replace("__", "/")


def load_tree(root: str | Path) -> pd.DataFrame:
    """Every result file under `root` (`<org__name>/<revision>/<Task>.json`), as one row per cell."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results directory does not exist: {root}")
    rows: list[tuple] = []
    for path in sorted(root.rglob("*.json")):
        if path.name in SKIP_FILES or path.name.startswith("."):
            continue
        read = _read_result(path)
        if read is None:
            continue
        task, scores = read
        rows += _cells_from_scores(_model_name(path.parent), path.parent.name, task, scores)
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def load_published(path: str | Path) -> pd.DataFrame:
    """A published-scores file (`results/reference/*.json`) or a result tree, as cells."""
    path = Path(path)
    if path.is_dir():
        return load_tree(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        model, revision, tasks = raw["model"], raw.get("model_revision", "published"), raw["tasks"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"not a published-scores file or result tree: {path}") from None
    rows: list[tuple] = []
    for task, entry in tasks.items():
        rows += _cells_from_scores(model, revision, task, entry["scores"])
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


# ---------------------------------------------------------------- the benchmark's cells


def benchmark_cells(benchmark: str, duplicates: str = "validation") -> pd.DataFrame:
    """task, task_type, split, subset: the cells that count, one set per task."""
    from .tasks import benchmark_entries

    if duplicates not in DUPLICATE_RULES:
        raise UserError(f"duplicate-task rule must be one of {', '.join(DUPLICATE_RULES)}")
    per_task: dict[str, list[tuple]] = {}
    for task in benchmark_entries(benchmark):
        name = task.metadata.name
        cells = [(name, task.metadata.type, s, sub) for s in task.eval_splits for sub in task.hf_subsets]
        if duplicates == "validation":
            per_task[name] = cells  # the last entry wins, as in mteb 1.38.30's leaderboard
        else:
            per_task[name] = list(dict.fromkeys(per_task.get(name, []) + cells))
    rows = [cell for cells in per_task.values() for cell in cells]
    return pd.DataFrame(rows, columns=["task", "task_type", "split", "subset"])


# ---------------------------------------------------------------- the tables


def task_scores(cells: pd.DataFrame, benchmark: str, duplicates: str = "validation") -> pd.DataFrame:
    """model, revision, task, task_type, score (fraction; NaN when the task has no kept cell)."""
    keep = benchmark_cells(benchmark, duplicates)
    tasks = keep[["task", "task_type"]].drop_duplicates()
    models = cells[["model", "revision"]].drop_duplicates()
    if models.empty:
        return pd.DataFrame(columns=["model", "revision", "task", "task_type", "score"])
    kept = cells.merge(keep, on=["task", "split", "subset"], how="inner")
    kept = kept.drop_duplicates(["model", "revision", "task", "split", "subset"], keep="last")
    scored = kept.groupby(["model", "revision", "task"], as_index=False)["main_score"].mean()
    grid = models.merge(tasks, how="cross")
    out = grid.merge(scored, on=["model", "revision", "task"], how="left")
    return out.rename(columns={"main_score": "score"})[["model", "revision", "task", "task_type", "score"]]


def summary_table(per_task: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """One row per (model, revision): counts, Mean(Task), Mean(TaskType), each type's mean (points)."""
    types = sorted(per_task["task_type"].unique())
    rows = []
    for (model, revision), group in per_task.groupby(["model", "revision"], sort=False):
        type_means = group.groupby("task_type")["score"].apply(lambda s: s.mean(skipna=False))
        row = {
            "model": model,
            "revision": revision,
            "benchmark": benchmark,
            "n_tasks": int(group["score"].notna().sum()),
            "n_missing": int(group["score"].isna().sum()),
            "mean_task": points(group["score"].mean(skipna=False)),
            "mean_task_type": points(type_means.mean(skipna=False)),
        }
        row.update({t: points(type_means.get(t, np.nan)) for t in types})
        rows.append(row)
    columns = ["model", "revision", "benchmark", "n_tasks", "n_missing", "mean_task", "mean_task_type", *types]
    return pd.DataFrame(rows, columns=columns)


def delta_table(
    run: pd.DataFrame, reference: pd.DataFrame, run_summary: pd.DataFrame, ref_summary: pd.DataFrame
) -> pd.DataFrame:
    """Per (model, revision) of the run and per task or mean: run value, published value, delta (points)."""
    ref_name = f"{reference['model'].iloc[0]}@{reference['revision'].iloc[0]}" if len(reference) else "reference"
    ref_tasks = reference.groupby("task")["score"].first()
    ref_means = ref_summary.iloc[0] if len(ref_summary) else pd.Series(dtype=float)
    rows = []
    for (model, revision), group in run.groupby(["model", "revision"], sort=False):
        summ = run_summary[(run_summary["model"] == model) & (run_summary["revision"] == revision)].iloc[0]
        for item in ("mean_task", "mean_task_type"):
            rows.append((model, revision, ref_name, item, "mean", summ[item], ref_means.get(item, np.nan)))
        for _, r in group.iterrows():
            rows.append(
                (
                    model,
                    revision,
                    ref_name,
                    r["task"],
                    r["task_type"],
                    points(r["score"]),
                    points(ref_tasks.get(r["task"], np.nan)),
                )
            )
    out = pd.DataFrame(rows, columns=["model", "revision", "reference", "item", "task_type", "run", "published"])
    out["delta"] = np.round(out["run"] - out["published"], 2)
    return out
