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

import difflib
import gzip
import hashlib
import json
import logging
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError
from .manifest import MANIFEST_NAME, read_manifest

log = logging.getLogger("qzhou_eval")
DUPLICATE_RULES = {"last": "last", "mean": "mean", "validation": "last"}
UNKNOWN = "unknown"
KEY = ["model", "revision", "settings"]
CELL_COLUMNS = ["model", "revision", "settings", "data", "folder", "task", "split", "subset", "main_score"]
SKIP_FILES = {"model_meta.json", MANIFEST_NAME}
SNAPSHOT = Path(__file__).resolve().parent.parent / "data" / "benchmark_cells.json.gz"


def points(x: float | pd.Series) -> float | pd.Series:
    return np.round(100 * x, 2)


def duplicate_rule(name: str) -> str:
    """`last` or `mean`; `validation` (the old `--multilingual_sentiment` value) means `last`."""
    if name not in DUPLICATE_RULES:
        raise UserError(f"duplicate-task rule must be one of {', '.join(DUPLICATE_RULES)}, got {name!r}")
    return DUPLICATE_RULES[name]


# ---------------------------------------------------------------- mteb's benchmark definitions


def listing_from_mteb(name: str) -> list[list[Any]]:
    """[task, type, eval splits, hf_subsets] per entry of mteb's benchmark object, in its order,
    duplicates included (importing mteb takes 10+ s; `benchmark_snapshot` saves that)."""
    from .tasks import benchmark_entries

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
    """mteb's benchmark definitions as data (`data/benchmark_cells.json.gz`, written by
    `data/make_benchmark_cells.py`), used only when made from the installed mteb version."""
    try:
        snap = json.loads(gzip.decompress(SNAPSHOT.read_bytes()))
        installed = metadata.version("mteb")
    except (OSError, ValueError, metadata.PackageNotFoundError):
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


# ---------------------------------------------------------------- reading


def _cells_from_scores(scores: dict) -> list[tuple[str, str, float]]:
    return [
        (split, entry.get("hf_subset", "default"), float(entry["main_score"]))
        for split, entries in scores.items()
        for entry in entries
        if entry.get("main_score") is not None
    ]


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
    if "task_name" in raw and isinstance(raw.get("scores"), dict):
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
            if name:
                return name
        except (OSError, json.JSONDecodeError):
            pass
    return revision_dir.parent.name.replace("__", "/")


def recipe(manifest: dict[str, Any], task: str) -> dict[str, Any] | None:
    """The embedding recipe a task's result was made with: its recorded settings without the per-task
    data keys (those are the `data` column). Run-level keys are the manifest's own `settings` keys;
    without them everything but `data_source` counts. None when there is no usable record."""
    entry = manifest.get("tasks", {}).get(task)
    if not isinstance(entry, dict) or entry.get("status") != "done" or not isinstance(entry.get("settings"), dict):
        return None
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
    from .resume import fingerprint

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
        cells = _cells_from_scores(scores)
        settings, data = provenance(manifests[folder], task, cells, sha256)
        head = (_model_name(folder), folder.name, settings, data, str(folder), task)
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
        score=("main_score", "mean"), data=("data", _joined)
    )
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
