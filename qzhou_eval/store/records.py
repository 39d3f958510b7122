"""Per-example records: the units a task's main score is made of, beside mteb's result file.

`<folder>/<Task>.records.json.gz`, one cell per (task or subtask, split, subset), each with stable unit ids (query
ids, pair index + text hash, test example index + text hash, level#draw), the units' data, the metric kind that
recomputes the cell's main score (`store/metrics.py`; None where no resampling kind fits a main score: a
multilabel F1, a bitext precision or recall) and mteb's own main score. The file is written through the one
atomic writer and vouched for by the manifest (its sha256), like the result file; gzip without a timestamp and
sorted keys make it byte-identical for the same units, so resumed, sharded and cached runs can be compared file to file.

`recompute(cell)` is the check that a record is what it claims: the runner keeps a task's records only when
every cell's recomputed score equals the score mteb wrote (to 1e-6).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..files import StagedFile
from .metrics import score

SUFFIX = ".records.json.gz"
FORMAT = 1
TOLERANCE = 1e-6


def records_path(folder: Path, task: str) -> Path:
    return Path(folder) / f"{task}{SUFFIX}"


def encode(task: str, cells: list[dict[str, Any]]) -> bytes:
    body = json.dumps({"format": FORMAT, "task": task, "cells": cells}, sort_keys=True, ensure_ascii=False)
    return gzip.compress(body.encode("utf-8"), mtime=0)


def stage_records(folder: Path, task: str, cells: list[dict[str, Any]]) -> StagedFile:
    """The records file under a temp name: the manifest records its sha256, then the runner publishes it."""
    stage = StagedFile(records_path(folder, task))
    stage.tmp.write_bytes(encode(task, cells))
    return stage


def read_records(folder: Path, task: str, content: bytes | None = None) -> list[dict[str, Any]] | None:
    """The cells of a task's records file (or of its bytes, already read); None when there is none or it cannot
    be read as records."""
    try:
        raw = json.loads(gzip.decompress(records_path(folder, task).read_bytes() if content is None else content))
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("cells"), list):
        return None
    return [c for c in raw["cells"] if isinstance(c, dict)]


# the data each metric kind reads (store/metrics.py); a cell may hold more (raw predictions) for the record's sake
KEYS = {
    "mean": ("value",),
    "accuracy": ("correct",),
    "spearman": ("pred", "gold"),
    "pearson": ("pred", "gold"),
    "max_ap": ("scores", "label", "position"),
    "max_accuracy": ("scores", "label", "position"),
    "f1_macro": ("gold", "pred"),
    "f1_weighted": ("gold", "pred"),
}


def vouched_records(folder: Path, task: str, scores: dict[tuple[str, str], float]) -> tuple[list | None, str]:
    """A task's record cells when its manifest vouches for the file (records kept, the same sha256) and the cells'
    scores are the result file's `scores` ((split, subset) -> main score); else None and why. A records file
    left by an earlier run (a rerun that kept none, a kill between two renames) is never used."""
    from .manifest import read_manifest

    tasks = read_manifest(folder).get("tasks")
    entry = tasks.get(task) if isinstance(tasks, dict) else None
    recorded = entry.get("records") if isinstance(entry, dict) else None
    path = records_path(folder, task)
    if not isinstance(recorded, dict) or not recorded.get("kept"):
        return None, "no per-example records"
    try:
        content = path.read_bytes()  # hashed and parsed from the same bytes
    except OSError:
        content = None
    if content is None or hashlib.sha256(content).hexdigest() != recorded.get("sha256"):
        return None, "records not vouched for by the manifest"
    cells = read_records(folder, task, content)
    if cells is None:
        return None, "records unreadable"
    by_cell: dict[tuple[str, str], list[float]] = {}
    for cell in cells:  # an aggregate's cells are its subtasks': the result holds their mean
        by_cell.setdefault((cell.get("split"), cell.get("subset")), []).append(cell["mteb_main_score"])
    for key, values in by_cell.items():
        if key in scores and abs(scores[key] - float(np.mean(values))) > TOLERANCE:
            return None, "records do not match the result file"
    return cells, ""


def arrays(cell: dict[str, Any]) -> tuple[str | None, np.ndarray, dict[str, np.ndarray]]:
    """(metric kind, unit ids, data as arrays) of a cell, as `report/paired.py` takes them."""
    kind = cell.get("metric")
    data = {k: np.asarray(cell["data"][k], dtype=np.float64) for k in KEYS.get(kind, ())}
    return kind, np.asarray(cell["ids"], dtype=str), data


def _metric_free(cell: dict[str, Any]) -> float:
    """Main scores no resampling kind covers, recomputed with sklearn as mteb computes them."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    main, data = cell["main_score_name"], cell["data"]
    if cell["type"] == "multilabel" and main == "f1":
        gold = np.asarray(data["gold"])
        return float(np.mean([f1_score(gold, np.asarray(p), average="macro") for p in data["pred"]]))
    if cell["type"] == "bitext" and main in ("precision", "recall"):
        fn = {"precision": precision_score, "recall": recall_score}[main]
        return float(fn(data["gold"], data["pred"], zero_division=0, average="weighted"))
    raise ValueError(f"no recompute rule for {cell['type']} main score {main}")


def recompute(cell: dict[str, Any]) -> float:
    """The cell's main score from its units alone."""
    kind, _, data = arrays(cell)
    if kind is None:
        return _metric_free(cell)
    value = score(kind, data)
    return round(value, cell["round"]) if cell.get("round") is not None else value


def verify(cells: list[dict[str, Any]]) -> tuple[bool, float, str]:
    """Do the cells recompute the scores mteb wrote? (ok, largest difference, what is wrong)."""
    if not cells:
        return False, float("nan"), "no cell was captured"
    worst = 0.0
    for cell in cells:
        try:
            diff = abs(recompute(cell) - cell["mteb_main_score"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return False, float("nan"), f"{cell.get('task')} {cell.get('split')}/{cell.get('subset')}: {exc}"
        if not diff <= TOLERANCE:
            where = f"{cell['task']} {cell['split']}/{cell['subset']}"
            return False, diff, f"{where}: recomputed {recompute(cell)!r}, mteb wrote {cell['mteb_main_score']!r}"
        worst = max(worst, diff)
    return True, worst, ""
