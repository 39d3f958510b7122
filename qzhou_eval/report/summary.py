"""Result trees -> leaderboard numbers, with the mteb 1.38.30 leaderboard's formulas in our own pandas.

Formulas (FACTS §2, mteb 1.38.30 `leaderboard/table.py`), for any mteb benchmark:
- a task's score is the mean of `main_score` over the (split, subset) cells the benchmark keeps
  (taken from mteb's benchmark task objects, never chosen by language) that the result file holds;
- Mean(Task) is the mean over the benchmark's tasks, Mean(TaskType) the unweighted mean of the
  per-type means (types named as mteb names them); a missing task makes its type mean and both
  overall means missing (skipna=False), never a smaller average;
- a task the benchmark lists twice (C-MTEB's MultilingualSentiment, test and validation) counts once:
  `last` keeps the benchmark's later listing (as 1.38.30's leaderboard does; `validation` is its old
  name), `mean` averages the cells of every listing (as mteb 2.x does).

Provenance: every cell carries the `settings` it was made with (a fingerprint of the embedding
recipe its folder's manifest recorded for that task, `unknown` without a record) and its `data`
(`hub` / `local` / `unknown`). A row of a table is one (model, revision, settings); several trees
merge only under an explicit rule (`merge_cells`), never by silently keeping one copy.
Scores are kept as fractions here; `points` turns them into the displayed `round(100 * x, 2)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..provenance import fingerprint
from ..recipe.benchmarks import benchmark_listing, canonical_benchmark
from ..store.manifest import MANIFEST_NAME, read_manifest

log = logging.getLogger("qzhou_eval")
DUPLICATE_RULES = {"last": "last", "mean": "mean", "validation": "last"}
DUPLICATES = ("last", "mean")  # the rules a flag offers (`validation` is the old name of `last`)
UNKNOWN = "unknown"
KEY = ["model", "revision", "settings"]
CELL_COLUMNS = ["model", "revision", "settings", "data", "folder", "task", "split", "subset", "main_score"]
SKIP_FILES = {"model_meta.json", MANIFEST_NAME}


def points(x: float | pd.Series) -> float | pd.Series:
    return np.round(100 * x, 2)


def duplicate_rule(name: str) -> str:
    """`last` or `mean`; `validation` (the old `--multilingual_sentiment` value) means `last`."""
    if name not in DUPLICATE_RULES:
        raise UserError(f"duplicate-task rule must be one of {', '.join(DUPLICATE_RULES)}, got {name!r}")
    return DUPLICATE_RULES[name]


# ---------------------------------------------------------------- reading


def _cells_from_scores(scores: Any) -> list[tuple[str, str, float]]:
    """(split, subset, main_score) of every well-formed entry; a malformed one is no cell (and no crash):
    a task that lacks a cell the benchmark needs is then incomplete, never scored from what remains."""
    if not isinstance(scores, dict):
        return []
    cells = []
    for split, entries in scores.items():
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            score, subset = entry.get("main_score"), entry.get("hf_subset", "default")
            if isinstance(score, (int, float)) and not isinstance(score, bool) and isinstance(subset, str):
                cells.append((str(split), subset, float(score)))
    return cells


def _read_result(path: Path) -> tuple[str, dict, str] | None:
    """(task name, scores, sha256 of the file) of one result file; old (pre-1.11) layouts go through
    mteb's converter."""
    try:
        data = path.read_bytes()
        raw = json.loads(data.decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        log.warning("skipping unreadable result file %s", path)
        return None
    if not isinstance(raw, dict):
        return None
    sha256 = hashlib.sha256(data).hexdigest()
    if isinstance(raw.get("task_name"), str) and isinstance(raw.get("scores"), dict):
        return raw["task_name"], raw["scores"], sha256
    if "mteb_dataset_name" in raw or "mteb_version" in raw:
        try:
            from mteb.load_results.task_results import TaskResult

            result = TaskResult.from_disk(path)
            return result.task_name, result.scores, sha256
        except Exception:  # noqa: BLE001 - an unconvertible historic file is skipped, not fatal
            log.warning("skipping result file mteb cannot read: %s", path)
    return None


def _model_name(revision_dir: Path) -> str:
    meta = revision_dir / "model_meta.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text(encoding="utf-8")).get("name")
            if isinstance(name, str) and name:
                return name
        except (OSError, ValueError, AttributeError):
            pass
    return revision_dir.parent.name.replace("__", "/")


def recipe(manifest: dict[str, Any], task: str) -> dict[str, Any] | None:
    """The embedding recipe a task's result was made with: the run-level settings its plan recorded
    (`run_settings`: without what is per task by nature, its data, prefixes and batch size, which the flags and
    the recipe decide); for older records, its settings restricted to the manifest's own `settings` keys, or
    everything but `data_source`. None when there is no usable record."""
    tasks = manifest.get("tasks")
    entry = tasks.get(task) if isinstance(tasks, dict) else None
    if not isinstance(entry, dict) or entry.get("status") != "done" or not isinstance(entry.get("settings"), dict):
        return None
    if isinstance(entry.get("run_settings"), dict):
        return entry["run_settings"]
    settings = entry["settings"]
    run_keys = manifest.get("settings")
    keys = list(run_keys) if isinstance(run_keys, dict) and run_keys else [k for k in settings if k != "data_source"]
    return {k: settings[k] for k in keys if k in settings}


def _record_matches(entry: dict[str, Any], cells: list[tuple[str, str, float]], sha256: str) -> bool:
    """Is the manifest's record about this very file? A kill between writing the manifest and renaming
    the result file into place leaves a record beside an older file. The record's `result_sha256`
    decides; older records without it are compared by scores (files hold them rounded to 6 places)."""
    if isinstance(entry.get("result_sha256"), str):
        return entry["result_sha256"] == sha256
    recorded = entry.get("scores")
    if not isinstance(recorded, dict):
        return True  # nothing recorded to compare with
    mine = {f"{split}/{subset}": v for split, subset, v in cells}
    return set(recorded) == set(mine) and all(abs(float(recorded[k]) - v) <= 1e-6 for k, v in mine.items())


def provenance(
    manifest: dict[str, Any], task: str, cells: list[tuple[str, str, float]], sha256: str
) -> tuple[str, str]:
    """(settings fingerprint, data kind) of one result file, from its folder's manifest."""
    made_with = recipe(manifest, task)
    if made_with is None:
        return UNKNOWN, UNKNOWN
    entry = manifest["tasks"][task]
    if not _record_matches(entry, cells, sha256):
        log.warning("the manifest's record of %s does not match its result file: provenance unknown", task)
        return UNKNOWN, UNKNOWN
    source = entry.get("data_source", entry["settings"].get("data_source"))
    data = "hub" if source == "hub" else "local" if isinstance(source, str) and source else UNKNOWN
    return fingerprint(made_with), data


def load_tree(root: str | Path) -> pd.DataFrame:
    """Every result file under `root` (`<org__name>/<revision>/<Task>.json`, or one revision folder),
    as one row per cell with the provenance its folder's manifest records."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results directory does not exist: {root}")
    rows: list[tuple] = []
    manifests: dict[Path, dict[str, Any]] = {}
    names: dict[Path, str] = {}
    for path in sorted(root.rglob("*.json")):
        if path.name in SKIP_FILES or path.name.startswith("."):
            continue
        read = _read_result(path)
        if read is None:
            continue
        task, scores, sha256 = read
        folder = path.parent
        if folder not in manifests:
            manifests[folder] = read_manifest(folder)
            names[folder] = _model_name(folder)
        cells = _cells_from_scores(scores)
        settings, data = provenance(manifests[folder], task, cells, sha256)
        head = (names[folder], folder.name, settings, data, str(folder), task)
        rows += [(*head, *cell) for cell in cells]
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def load_published(path: str | Path) -> pd.DataFrame:
    """A published-scores file (`results/reference/*.json`) or a result tree, as cells."""
    path = Path(path)
    if path.is_dir():
        return load_tree(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        model, revision, tasks = raw["model"], raw.get("model_revision", "published"), raw["tasks"]
        rows = [
            (model, revision, UNKNOWN, UNKNOWN, str(path), task, *cell)
            for task, entry in tasks.items()
            for cell in _cells_from_scores(entry["scores"])
        ]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise UserError(f"not a published-scores file or result tree: {path}") from None
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


# ---------------------------------------------------------------- merging trees


def _label(model: str, revision: str) -> str:
    return f"{model}@{revision[:12]}"


def mixed_settings_message(model: str, revision: str, group: pd.DataFrame, hint: str) -> str:
    """Name the settings keys that differ between the recipes found for one (model, revision)."""
    recipes: dict[str, dict[str, Any] | None] = {}
    where: dict[str, str] = {}
    for settings, part in group.groupby("settings", sort=False):
        first = part.iloc[0]
        recipes[settings] = None if settings == UNKNOWN else recipe(read_manifest(Path(first.folder)), first.task)
        folders = list(dict.fromkeys(part["folder"]))
        where[settings] = f"{settings} ({part['task'].nunique()} tasks in {', '.join(folders)})"
    known = [r for r in recipes.values() if r is not None]
    keys = sorted({k for r in known for k in r} if known else set())
    differing = [k for k in keys if len({json.dumps(r.get(k), sort_keys=True, default=str) for r in known}) > 1]
    parts = [f"{k} ({' / '.join(repr(r.get(k)) for r in known)})" for k in differing]
    if UNKNOWN in recipes:
        parts.append("provenance (no manifest record for some results)")
    return (
        f"{_label(model, revision)} has results made with different settings: {'; '.join(parts)}. "
        f"Settings: {'; '.join(where.values())}. {hint}"
    )


def merge_cells(cells: pd.DataFrame, allow_mixed: bool = False, hint: str = "") -> pd.DataFrame:
    """One value per (model, revision, settings, task, split, subset), by an explicit rule.

    - One (model, revision) made with several settings is refused, naming the differing keys, unless
      `allow_mixed` (then each settings is its own row).
    - The same cell found twice under the same settings (several trees, or a tree given twice) is
      fine when the values are equal; different values are refused unless `allow_mixed`, which keeps
      the later tree's value and says so.
    """
    hint = hint or "Pass --allow_mixed for one row per settings."
    if not allow_mixed:
        for (model, revision), group in cells.groupby(["model", "revision"], sort=False):
            if group["settings"].nunique() > 1:
                raise UserError(mixed_settings_message(model, revision, group, hint))
    cell_key = [*KEY, "task", "split", "subset"]
    values = cells.groupby(cell_key, sort=False)["main_score"].nunique()
    clashes = values[values > 1]
    if len(clashes):
        model, revision, settings, task, split, subset = clashes.index[0]
        same = cells[(cells[cell_key] == pd.Series(clashes.index[0], index=cell_key)).all(axis=1)]
        found = "; ".join(f"{v!r} in {f}" for v, f in zip(same["main_score"], same["folder"], strict=True))
        text = (
            f"{_label(model, revision)} ({settings} settings): {len(clashes)} cell(s) have different values in "
            f"different folders, e.g. {task} {split}/{subset}: {found}"
        )
        if not allow_mixed:
            raise UserError(f"{text}. Pass --allow_mixed to keep the later --results_dir's values")
        log.warning("%s; keeping the later value", text)
    return cells.drop_duplicates(cell_key, keep="last")


def select_reference(cells: pd.DataFrame, source: str, model: str | None) -> pd.DataFrame:
    """The one (model, revision) of a reference; `model` (`NAME` or `NAME@REVISION`) picks it where
    the reference holds several."""
    pairs = list(dict.fromkeys(zip(cells["model"], cells["revision"], strict=True)))
    if len(pairs) <= 1:
        return cells
    listed = ", ".join(_label(m, r) for m, r in pairs)
    if model is None:
        raise UserError(f"reference {source} holds several models ({listed}): pick one with --reference_model NAME")
    name, _, revision = model.partition("@")
    chosen = [(m, r) for m, r in pairs if m == name and r.startswith(revision)]
    if not chosen:
        raise UserError(f"--reference_model {model} is not in reference {source}; it holds: {listed}")
    if len(chosen) > 1:
        revs = ", ".join(r for _, r in chosen)
        raise UserError(f"reference {source} holds {name} at several revisions ({revs}): use NAME@REVISION")
    m, r = chosen[0]
    return cells[(cells["model"] == m) & (cells["revision"] == r)]


# ---------------------------------------------------------------- the benchmark's cells


def benchmark_cells(benchmark: str, duplicates: str = "last") -> pd.DataFrame:
    """task, task_type, split, subset: the cells that count, one set per task."""
    rule = duplicate_rule(duplicates)
    per_task: dict[str, list[tuple]] = {}
    for name, task_type, splits, subsets in benchmark_listing(canonical_benchmark(benchmark)):
        cells = [(name, task_type, s, sub) for s in splits for sub in subsets]
        if rule == "last":
            per_task[name] = cells  # the later listing wins, as in mteb 1.38.30's leaderboard
        else:
            per_task[name] = list(dict.fromkeys(per_task.get(name, []) + cells))
    rows = [cell for cells in per_task.values() for cell in cells]
    return pd.DataFrame(rows, columns=["task", "task_type", "split", "subset"])


# ---------------------------------------------------------------- the tables

PER_TASK_COLUMNS = [*KEY, "task", "task_type", "data", "score"]


def _joined(values: pd.Series) -> str:
    kinds = sorted(set(values.dropna()))
    return "+".join(kinds) if kinds else UNKNOWN


def task_scores(cells: pd.DataFrame, benchmark: str, duplicates: str = "last") -> pd.DataFrame:
    """One row per (model, revision, settings) and task of the benchmark: its type, where its data came
    from and its score (fraction; NaN when the task has no kept cell). Rows without any task of the
    benchmark are left out. `cells` must be merged already (`merge_cells`)."""
    keep = benchmark_cells(benchmark, duplicates)
    tasks = keep[["task", "task_type"]].drop_duplicates()
    kept = cells.merge(keep[["task", "split", "subset"]], on=["task", "split", "subset"], how="inner")
    if kept.empty:
        return pd.DataFrame(columns=PER_TASK_COLUMNS)
    scored = kept.groupby([*KEY, "task"], as_index=False, sort=False).agg(
        score=("main_score", "mean"), data=("data", _joined), n_cells=("main_score", "size")
    )
    # a task that lacks any cell the benchmark needs is incomplete: no score (listed as missing), never the mean
    # of the cells that happen to be there (STS17 with 1 of its 11 subsets is not STS17)
    needed = scored["task"].map(keep.groupby("task").size())
    scored.loc[scored["n_cells"] < needed, "score"] = np.nan
    grid = kept[KEY].drop_duplicates().merge(tasks, how="cross")
    out = grid.merge(scored, on=[*KEY, "task"], how="left")
    return out[PER_TASK_COLUMNS]


def type_columns(summary: pd.DataFrame) -> list[str]:
    """The per-type columns of a summary table (everything after Mean(TaskType))."""
    return list(summary.columns[list(summary.columns).index("mean_task_type") + 1 :])


def summary_table(per_task: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    """One row per (model, revision, settings): data, counts, Mean(Task), Mean(TaskType), each type's mean."""
    types = sorted(per_task["task_type"].unique())
    rows = []
    for (model, revision, settings), group in per_task.groupby(KEY, sort=False):
        type_means = group.groupby("task_type")["score"].apply(lambda s: s.mean(skipna=False))
        row = {
            "model": model,
            "revision": revision,
            "settings": settings,
            "data": _joined(group["data"]),
            "benchmark": benchmark,
            "n_tasks": int(group["score"].notna().sum()),
            "n_missing": int(group["score"].isna().sum()),
            "mean_task": points(group["score"].mean(skipna=False)),
            "mean_task_type": points(type_means.mean(skipna=False)),
        }
        row.update({t: points(type_means.get(t, np.nan)) for t in types})
        rows.append(row)
    columns = [*KEY, "data", "benchmark", "n_tasks", "n_missing", "mean_task", "mean_task_type", *types]
    return pd.DataFrame(rows, columns=columns)


def delta_table(
    run: pd.DataFrame, reference: pd.DataFrame, run_summary: pd.DataFrame, ref_summary: pd.DataFrame
) -> pd.DataFrame:
    """Per row of the run and per task or mean: run value, published value, delta (points)."""
    ref_name = _label(reference["model"].iloc[0], reference["revision"].iloc[0]) if len(reference) else "reference"
    ref_tasks = reference.groupby("task")["score"].first()
    ref_means = ref_summary.iloc[0] if len(ref_summary) else pd.Series(dtype=float)
    rows = []
    for key, group in run.groupby(KEY, sort=False):
        summ = run_summary.set_index(KEY).loc[key]
        for item in ("mean_task", "mean_task_type"):
            rows.append((*key, ref_name, item, "mean", summ[item], ref_means.get(item, np.nan)))
        for _, r in group.iterrows():
            rows.append(
                (
                    *key,
                    ref_name,
                    r["task"],
                    r["task_type"],
                    points(r["score"]),
                    points(ref_tasks.get(r["task"], np.nan)),
                )
            )
    out = pd.DataFrame(rows, columns=[*KEY, "reference", "item", "task_type", "run", "published"])
    out["delta"] = np.round(out["run"] - out["published"], 2)
    return out
