"""Offline data: point a registered mteb task at a local copy of its dataset repository.

`DATA_DIR/<dataset path of the task>` laid out like the hub repo replaces hub access for that task (an
aggregate task: each of its subtasks' folders). The task keeps its name, splits and upstream revision; only
its (deep-copied) metadata's path changes. The metadata is copied because mteb shares one metadata object
between every instance of a task class and the benchmark objects.

No code from data: mteb asks `datasets` to trust remote code for a few script-based repositories
(MTOPDomain, AmazonCounterfactual); a hub snapshot of such a repo holds its loading script, which `datasets`
would run. Local copies are always loaded with `trust_remote_code=False`, and a copy that holds a loading
script fails its task with a message instead of reaching `datasets` at all.

The content hash of a task's local data (every file, memoised like checkpoint weights: `files.file_sha256`)
goes into its plan, so an edited query file is a settings change, and a restart re-reads no unchanged file.

The `datasets` library (3.2.0) caches what it builds from a local folder whose README declares configs under
the folder's name and that README, neither its path nor its files: a second copy of a dataset with the same
name (a refreshed copy, another `--data_dir`) would silently be read as the first one. So every local task's
data is built into a cache folder named by its content hash (`local_datasets_cache`): another content, another
folder; the same content, the same folder (nothing is built twice).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..files import tree_sha256
from ..recipe.benchmarks import BenchmarkTask, leaf_tasks

HUB = "hub"


class TaskDataMissing(Exception):
    """The task's data is not under --data_dir; the runner reports it per task."""


class TaskDataNeedsScript(Exception):
    """The local copy is a script-based dataset repo; its script is never run."""


def hub_path(task: Any) -> str:
    return task.metadata.dataset["path"]


def loading_script(local: Path) -> Path | None:
    """The script `datasets` would run for this folder: `<folder name>.py` inside it (its rule for local dirs)."""
    script = local / f"{local.name}.py"
    return script if local.is_dir() and script.is_file() else None


def local_folders(data_dir: str | Path, dataset_path: str) -> list[Path]:
    """A dataset's local folder and, where it exists, its `-qrels` sibling (C-MTEB retrieval)."""
    local = Path(data_dir).resolve() / dataset_path
    return [local, Path(f"{local}-qrels")]


def _redirect(task: Any, data_dir: str | Path) -> str:
    local = Path(data_dir).resolve() / hub_path(task)
    if not local.is_dir():
        raise TaskDataMissing(
            f"{task.metadata.name}: no data at {local} (expected a copy of hub dataset {hub_path(task)})"
        )
    script = loading_script(local) or loading_script(Path(f"{local}-qrels"))
    if script is not None:
        raise TaskDataNeedsScript(
            f"{task.metadata.name}: {local} holds a dataset loading script ({script.name}); code from data is never "
            "run. Replace the copy with data files (e.g. the repo's parquet conversion, refs/convert/parquet)"
        )
    task.metadata = task.metadata.model_copy(deep=True)
    task.metadata.dataset["path"] = str(local)
    task.metadata.dataset["trust_remote_code"] = False
    return str(local)


def use_local_data(task: Any, data_dir: str | Path) -> list[str]:
    """Redirect `task` (each subtask of an aggregate) to `data_dir`; returns the local paths."""
    return [_redirect(leaf, data_dir) for leaf in leaf_tasks(task)]


def data_source(spec: BenchmarkTask, data_dir: str | None) -> str:
    """Where the task's data comes from: "hub", or its local folder(s)."""
    if not data_dir:
        return HUB
    return " + ".join(str(local_folders(data_dir, path)[0]) for path in spec.dataset_paths)


def data_sha256(spec: BenchmarkTask, data_dir: str | None) -> str:
    """sha256 over every file of the task's local copies (and `-qrels` siblings): names and content."""
    if not data_dir:
        return HUB
    folders = [folder for path in spec.dataset_paths for folder in local_folders(data_dir, path)]
    return tree_sha256(folders, Path(data_dir).resolve())[:16]


@contextmanager
def local_datasets_cache(data_sha256: str) -> Iterator[Path]:
    """`datasets` builds this task's local data under `<its cache>/qzhou_eval_local/<content hash>` for the block."""
    import datasets.config

    before = datasets.config.HF_DATASETS_CACHE
    folder = Path(before) / "qzhou_eval_local" / data_sha256
    datasets.config.HF_DATASETS_CACHE = folder
    try:
        yield folder
    finally:
        datasets.config.HF_DATASETS_CACHE = before
