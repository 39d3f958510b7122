"""Offline data: point a registered mteb task at a local copy of its dataset repository.

`DATA_DIR/<dataset path of the task>` laid out like the hub repo replaces hub access for that task.
The task keeps its name, splits and upstream revision; only its (deep-copied) metadata's path
changes. The metadata is copied because mteb shares one metadata object between every instance of
a task class and the benchmark objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TaskDataMissing(Exception):
    """The task's data is not under --data_dir; the runner reports it per task."""


def hub_path(task: Any) -> str:
    return task.metadata.dataset["path"]


def use_local_data(task: Any, data_dir: str | Path) -> str:
    """Redirect `task` to `data_dir`; returns the local path, for the manifest."""
    local = Path(data_dir).resolve() / hub_path(task)
    if not local.is_dir():
        raise TaskDataMissing(
            f"{task.metadata.name}: no data at {local} (expected a copy of hub dataset {hub_path(task)})"
        )
    task.metadata = task.metadata.model_copy(deep=True)
    task.metadata.dataset["path"] = str(local)
    return str(local)
